#!/usr/bin/env bash
# Joins this node to the k3s server named in K3S_URL with K3S_TOKEN (from the master).
set -euo pipefail
if ! systemctl is-active --quiet k3s-agent; then
  curl -sfL https://get.k3s.io | K3S_URL="$K3S_URL" K3S_TOKEN="$K3S_TOKEN" sh -s - agent
fi
