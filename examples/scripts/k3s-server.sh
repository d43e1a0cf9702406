#!/usr/bin/env bash
# Installs the k3s server once and prints its join token for the workers.
set -euo pipefail
if ! command -v k3s >/dev/null; then
  curl -sfL https://get.k3s.io | sh -s - server --write-kubeconfig-mode 644
fi
echo "tartlab-output token=$(cat /var/lib/rancher/k3s/server/node-token)"
