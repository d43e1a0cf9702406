//! What `doctor` and the failures say of an Orchard fleet: the controller and its version,
//! whether the credentials work, the online workers (arch, runtime, labels, free
//! resources), whether each node of the lab has a worker that fits it; and a VM's events
//! written out for `tartlab logs`.

use std::collections::BTreeMap;
use std::path::Path;

use super::api::{Controller, Refusal, Vm, Worker};
use crate::doctor::Check;
use crate::lab::model::OrchardSpec;
use crate::lab::Lab;

/// A worker is offline when it has not been seen for this long (the controller's default
/// `--worker-offline-timeout`).
pub(super) const OFFLINE_AFTER_SECS: i64 = 180;

/// Seconds since 1970 of an RFC 3339 time as Go writes it (`2026-12-02T01:20:00.5Z`,
/// `...+01:00`), or `None`.
pub fn unix_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        (
            clock,
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
        )
    };
    let clock = clock.split('.').next()?;
    let mut parts = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    // Days from civil (Howard Hinnant's algorithm), as clock.rs goes the other way.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(super) fn online(worker: &Worker) -> bool {
    !worker.scheduling_paused
        && unix_seconds(&worker.last_seen).is_some_and(|seen| now() - seen < OFFLINE_AFTER_SECS)
}

/// A worker's resources less those of the VMs scheduled on it.
fn free(worker: &Worker, vms: &[Vm]) -> BTreeMap<String, u64> {
    let mut free = worker.resources.clone();
    for vm in vms.iter().filter(|vm| vm.worker == worker.name) {
        for (key, used) in &vm.resources {
            if let Some(left) = free.get_mut(key) {
                *left = left.saturating_sub(*used);
            }
        }
    }
    free
}

fn pairs<V: std::fmt::Display>(map: &BTreeMap<String, V>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One worker in words: `w1 (amd64/tart, labels zone=a, free org.cirruslabs.tart-vms=2)`.
fn worker_words(worker: &Worker, vms: &[Vm]) -> String {
    format!(
        "{} ({}/{}, labels {}, free {})",
        worker.name,
        worker.arch,
        worker.runtime,
        pairs(&worker.labels),
        pairs(&free(worker, vms))
    )
}

/// The online workers in a sentence, for a hint.
pub async fn fleet_words(controller: &Controller) -> String {
    let (workers, vms) = match (controller.workers().await, controller.vms().await) {
        (Ok(w), Ok(v)) => (w, v),
        _ => return "the controller's workers could not be listed".into(),
    };
    let up: Vec<String> = workers
        .iter()
        .filter(|w| online(w))
        .map(|w| worker_words(w, &vms))
        .collect();
    if up.is_empty() {
        format!("no worker is online ({} registered)", workers.len())
    } else {
        format!("online workers: {}", up.join("; "))
    }
}

/// Whether a worker can take a VM of this arch, runtime and labels.
fn fits(worker: &Worker, spec: &OrchardSpec, labels: &BTreeMap<String, String>) -> bool {
    worker.arch == spec.arch.name()
        && worker.runtime == spec.runtime.name()
        && labels.iter().all(|(k, v)| worker.labels.get(k) == Some(v))
}

/// `doctor`'s checks of the controller, the credentials, the workers, and the lab's nodes'
/// placement.
pub async fn checks(controller: &Controller, spec: &OrchardSpec, lab: Option<&Lab>) -> Vec<Check> {
    let url = controller.url().to_string();
    let mut checks = Vec::new();
    match controller.info().await {
        Ok(info) => checks.push(Check::ok(
            "orchard controller",
            format!(
                "{url}, version {}",
                if info.version.is_empty() {
                    "unknown"
                } else {
                    &info.version
                }
            ),
        )),
        Err(e) => {
            let error = controller.explain("checking the controller", e);
            checks.push(Check::failed(
                "orchard controller",
                error.message,
                error.hint,
            ));
            return checks;
        }
    }
    let account = controller.credentials.account.clone();
    let vms = match controller.vms().await {
        Ok(vms) => {
            checks.push(Check::ok(
                "orchard credentials",
                format!("service account {account} lists VMs ({}); creating them needs compute:write too", controller.credentials.from),
            ));
            vms
        }
        Err(e) => {
            let error = controller.explain("listing the VMs", e);
            checks.push(Check::failed(
                "orchard credentials",
                error.message,
                error.hint,
            ));
            return checks;
        }
    };
    let workers = match controller.workers().await {
        Ok(workers) => workers,
        Err(e) => {
            let error = controller.explain("listing the workers", e);
            checks.push(Check::failed("orchard workers", error.message, error.hint));
            return checks;
        }
    };
    let up: Vec<&Worker> = workers.iter().filter(|w| online(w)).collect();
    if up.is_empty() {
        checks.push(Check::failed(
            "orchard workers",
            format!("none online ({} registered)", workers.len()),
            "start `orchard worker run` on the Macs of the fleet",
        ));
    } else {
        let words: Vec<String> = up.iter().map(|w| worker_words(w, &vms)).collect();
        checks.push(Check::ok(
            "orchard workers",
            format!("{} online: {}", up.len(), words.join("; ")),
        ));
    }
    if let Some(lab) = lab {
        let homeless: Vec<String> = lab
            .nodes
            .iter()
            .filter(|node| {
                let mut labels = spec.labels.clone();
                labels.extend(node.placement.labels.clone());
                !up.iter().any(|w| fits(w, spec, &labels))
            })
            .map(|node| node.vm_name.clone())
            .collect();
        if homeless.is_empty() {
            checks.push(Check::ok(
                "orchard placement",
                format!(
                    "every node has an online worker of arch {} and runtime {} with its labels",
                    spec.arch.name(),
                    spec.runtime.name()
                ),
            ));
        } else {
            checks.push(Check::failed(
                "orchard placement",
                format!(
                    "no online worker of arch {}, runtime {} has the labels of {}",
                    spec.arch.name(),
                    spec.runtime.name(),
                    homeless.join(", ")
                ),
                "change the lab's `placement` labels (or `provider.orchard.arch`), or start a worker with them",
            ));
        }
    }
    checks
}

/// Writes the VM's events (the controller keeps them, not a console) to `path`, one per
/// line, for `tartlab logs`. Runs on a thread of its own: `logs` has no runtime.
pub fn write_events(controller: &Controller, vm: &str, path: &Path) -> Result<(), String> {
    let events = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime
                    .block_on(controller.events(vm, 1000))
                    .map_err(|e| match e {
                        Refusal::Status(404, _) => format!("the controller has no VM {vm}"),
                        other => controller.explain("reading the VM's events", other).message,
                    })
            })
            .join()
            .map_err(|_| "the events could not be read".to_string())?
    })?;
    let mut text = format!(
        "# the events of {vm} on the Orchard controller at {}\n",
        controller.url()
    );
    for event in events {
        text.push_str(&format!("{} {}\n", event.timestamp, event.payload));
    }
    if let Some(dir) = path.parent() {
        if !dir.is_dir() {
            return Err("no log directory".into());
        }
    }
    crate::files::write_atomic(path, text.as_bytes(), 0o600).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_timestamps_are_read_in_any_zone() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2026-12-02T01:20:00.123456789Z"),
            Some(1_796_174_400)
        );
        assert_eq!(
            unix_seconds("2026-12-02T02:20:00+01:00"),
            unix_seconds("2026-12-02T01:20:00Z")
        );
        assert_eq!(
            unix_seconds("0001-01-01T00:00:00Z").map(|s| s < 0),
            Some(true)
        );
        assert_eq!(unix_seconds("yesterday"), None);
    }

    #[test]
    fn free_resources_are_the_workers_less_its_vms() {
        let worker = Worker {
            name: "w1".into(),
            resources: BTreeMap::from([("org.cirruslabs.tart-vms".to_string(), 2)]),
            ..Worker::default()
        };
        let vm = Vm {
            worker: "w1".into(),
            resources: BTreeMap::from([("org.cirruslabs.tart-vms".to_string(), 1)]),
            ..Vm::default()
        };
        assert_eq!(free(&worker, &[vm])["org.cirruslabs.tart-vms"], 1);
    }
}
