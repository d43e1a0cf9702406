//! What the fleet's workers say before and while a VM is waited on, so that tartlab does
//! not wait for an answer it already has: the online workers are read once per provider (one
//! `GET /v1/workers` for a whole `up`), and a node that none of them could ever take (arch,
//! runtime, labels, or more of a resource than the worker has at all) fails before anything
//! is created for it; and the worker a VM waits on is looked at between short asks, so that
//! one that stopped heartbeating fails its node with its name and when it was last seen.

use std::collections::BTreeMap;

use super::api::{Vm, Worker};
use super::doctor::{unix_seconds, OFFLINE_AFTER_SECS};
use super::OrchardProvider;
use crate::provider::{ProviderError, VmSpec};

/// Why no online worker could ever take a VM, in words for the message and the hint.
struct Homeless {
    /// `arch amd64, runtime tart, labels worker=v1`.
    asked: String,
    hint: String,
}

/// Whether `worker` could take a VM of this arch, runtime, labels and resources once it is
/// free (its whole resources, not those left now: a busy worker is waited for).
fn could_ever_take(
    worker: &Worker,
    arch: &str,
    runtime: &str,
    labels: &BTreeMap<String, String>,
    resources: &BTreeMap<String, u64>,
) -> bool {
    worker.arch == arch
        && worker.runtime == runtime
        && labels.iter().all(|(k, v)| worker.labels.get(k) == Some(v))
        && resources
            .iter()
            .all(|(k, asked)| worker.resources.get(k).is_some_and(|has| has >= asked))
}

/// Whether the controller holds `worker` online (seen within Orchard's offline threshold).
/// One whose scheduling is paused counts: it takes VMs again once resumed, as a busy one
/// does once freed, so a VM that fits it is waited for.
fn seen_lately(worker: &Worker) -> bool {
    unix_seconds(&worker.last_seen)
        .is_some_and(|seen| super::doctor::now() - seen < OFFLINE_AFTER_SECS)
}

fn pairs(map: &BTreeMap<String, impl std::fmt::Display>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl OrchardProvider {
    /// The online workers (paused ones too), read on the first call and kept for the
    /// provider's life; `None` when they cannot be read (then the scheduler's wait decides,
    /// as before).
    async fn online_workers(&self) -> Option<&[Worker]> {
        self.workers
            .get_or_init(|| async {
                let workers = self.controller.workers().await.ok()?;
                Some(workers.into_iter().filter(seen_lately).collect())
            })
            .await
            .as_deref()
    }

    /// Fails at once a node no online worker could ever take, with the same words as a VM
    /// left unscheduled; nothing is created for it.
    pub(super) async fn check_some_worker_fits(&self, spec: &VmSpec) -> Result<(), ProviderError> {
        let Some(workers) = self.online_workers().await else {
            return Ok(());
        };
        let Some(homeless) = self.homeless(workers, spec) else {
            return Ok(());
        };
        let fleet = super::doctor::fleet_words(&self.controller).await;
        Err(ProviderError::new(
            format!(
                "no Orchard worker can take {}: none that is online has {}",
                spec.name, homeless.asked
            ),
            format!("nothing was created for it. {fleet}; {}", homeless.hint),
        ))
    }

    fn homeless(&self, workers: &[Worker], spec: &VmSpec) -> Option<Homeless> {
        let (arch, runtime) = (self.spec.arch.name(), self.spec.runtime.name());
        let labels = self.labels(spec);
        let resources = &spec.placement.resources;
        if workers
            .iter()
            .any(|w| could_ever_take(w, arch, runtime, &labels, resources))
        {
            return None;
        }
        let mut asked = format!("arch {arch}, runtime {runtime}");
        if !labels.is_empty() {
            asked.push_str(&format!(", labels {}", pairs(&labels)));
        }
        if !resources.is_empty() {
            asked.push_str(&format!(", resources {}", pairs(resources)));
        }
        // Workers that would fit but for their runtime: the runtime is what to change.
        let other_runtimes: Vec<&str> = workers
            .iter()
            .filter(|w| w.runtime != runtime)
            .filter(|w| could_ever_take(w, arch, &w.runtime, &labels, resources))
            .map(|w| w.runtime.as_str())
            .collect();
        let hint = if let Some(theirs) = other_runtimes.first() {
            format!("the workers that would fit run the {theirs} runtime, and the lab's VMs ask for {runtime}: start workers of the {runtime} runtime (a Mac's `orchard worker run` runs tart; Orchard's Linux build runs vetu), or change `provider.orchard.runtime`")
        } else {
            "change the lab's `placement` (or `provider.orchard.arch`/`labels`), or start a worker that fits".to_string()
        };
        Some(Homeless { asked, hint })
    }

    /// For the message of a VM that failed: when its worker was last seen, if the controller
    /// failed it for its worker (offline too long, or gone); else empty.
    pub(super) async fn failed_worker_words(&self, vm: &Vm) -> String {
        if vm.worker.is_empty() || !vm.status_message.contains("assigned to a worker that") {
            return String::new();
        }
        self.last_seen_words(&vm.worker).await
    }

    /// When the worker `name` was last seen, for a message: ` (w2 was last seen 31 s ago, at
    /// ...)`, or empty when it cannot be read.
    async fn last_seen_words(&self, name: &str) -> String {
        let Ok(workers) = self.controller.workers().await else {
            return String::new();
        };
        let Some(worker) = workers.iter().find(|w| w.name == name) else {
            return format!(" ({name} is no longer registered with the controller)");
        };
        match unix_seconds(&worker.last_seen) {
            Some(seen) => format!(
                " ({name} was last seen {} s ago, at {})",
                super::doctor::now() - seen,
                worker.last_seen
            ),
            None => String::new(),
        }
    }

    /// A VM's worker that stopped heartbeating longer ago than Orchard's offline threshold,
    /// as the failure of the node, or `None` while it is alive (or cannot be read).
    pub(super) async fn worker_lost(&self, vm: &Vm) -> Option<ProviderError> {
        if vm.worker.is_empty() {
            return None;
        }
        let workers = self.controller.workers().await.ok()?;
        let lost = |why: String| {
            ProviderError::new(
                format!("{}'s worker {} {why}", vm.name, vm.worker),
                format!("start `orchard worker run` on {} again (`orchard list workers` shows when each was last seen), then `tartlab up`: a worker that comes back fails the VMs it lost, and `tartlab up` makes them anew", vm.worker),
            )
        };
        let Some(worker) = workers.iter().find(|w| w.name == vm.worker) else {
            return Some(lost("is no longer registered with the controller".into()));
        };
        let seen = unix_seconds(&worker.last_seen)?;
        let ago = super::doctor::now() - seen;
        (ago > OFFLINE_AFTER_SECS).then(|| {
            lost(format!(
                "was last seen {ago} s ago (at {}), longer than Orchard's offline threshold of {OFFLINE_AFTER_SECS} s: it is down or cut off from the controller",
                worker.last_seen
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(runtime: &str, labels: &[(&str, &str)], resources: &[(&str, u64)]) -> Worker {
        Worker {
            name: "w1".into(),
            arch: "amd64".into(),
            runtime: runtime.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            resources: resources.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_worker_fits_by_arch_runtime_labels_and_its_whole_resources() {
        let labels: BTreeMap<String, String> = [("zone".to_string(), "a".to_string())].into();
        let two: BTreeMap<String, u64> = [("gpu".to_string(), 2)].into();
        let w = worker("tart", &[("zone", "a"), ("x", "y")], &[("gpu", 2)]);
        assert!(could_ever_take(&w, "amd64", "tart", &labels, &two));
        assert!(!could_ever_take(&w, "arm64", "tart", &labels, &two));
        assert!(!could_ever_take(&w, "amd64", "vetu", &labels, &two));
        let three: BTreeMap<String, u64> = [("gpu".to_string(), 3)].into();
        assert!(!could_ever_take(&w, "amd64", "tart", &labels, &three));
        let other: BTreeMap<String, String> = [("zone".to_string(), "b".to_string())].into();
        assert!(!could_ever_take(&w, "amd64", "tart", &other, &two));
    }
}
