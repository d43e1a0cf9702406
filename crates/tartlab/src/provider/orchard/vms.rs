//! The lab's VMs on the controller, made, waited on and deleted by their uid: the uid a
//! create got back is recorded before any wait (`ownership.rs`), every look while tartlab
//! waits checks that the VM of that name still has it, and a VM is deleted only when it has
//! the uid the lab recorded. One with another uid is someone else's: it is left alone, and
//! the message says so.

use std::time::{Duration, Instant};

use super::api::{Refusal, Vm};
use super::{doctor, OrchardProvider, EVENTS_SHOWN, POLL};
use crate::provider::{CreateFrom, Created, ProviderError, VmSpec};

impl OrchardProvider {
    /// The VM's last events, as lines for a message (empty when it has none, or they cannot
    /// be read).
    async fn last_events(&self, vm: &str) -> String {
        match self.controller.events(vm, EVENTS_SHOWN).await {
            Ok(events) if !events.is_empty() => {
                let lines: Vec<String> = events
                    .iter()
                    .map(|e| format!("  {}", crate::text::printable(&e.payload, 300)))
                    .collect();
                format!("; its last events:\n{}", lines.join("\n"))
            }
            _ => "; it has no events".to_string(),
        }
    }

    /// Deletes the VM this create made (uid `uid`) and could not finish, so that the next
    /// `up` starts over, if it is still that VM; what became of it, for the message.
    async fn give_up(&self, vm: &str, uid: &str) -> String {
        match self.controller.vm(vm).await {
            Ok(None) => "it is gone already".into(),
            Ok(Some(found)) if found.uid != uid => format!(
                "a VM named {vm} with another uid ({}) is there now, someone else's: tartlab left it alone",
                found.uid
            ),
            Ok(Some(_)) => match self.controller.delete(vm).await {
                Ok(()) => {
                    self.ownership.forget(vm);
                    "tartlab deleted it, so the next `tartlab up` makes it anew".into()
                }
                Err(_) => "tartlab could not delete it: `tartlab down` does".into(),
            },
            Err(_) => "tartlab could not check that it is still the VM it made, so left it: `tartlab down` deletes it if it is".into(),
        }
    }

    /// Waits until the VM `vm` of uid `uid` runs on a worker: scheduled within
    /// `schedule_timeout`, then running (a first clone pulls the image, which can take long:
    /// the engine's create timeout bounds it). A VM that failed, or found no worker, is
    /// reported and deleted; one of that name with another uid is someone else's: the wait
    /// ends, and it is left alone.
    async fn wait_running(&self, vm: &str, uid: &str) -> Result<Vm, ProviderError> {
        let started = Instant::now();
        loop {
            let found = self
                .controller
                .vm(vm)
                .await
                .map_err(|e| self.controller.explain(&format!("waiting for {vm}"), e))?;
            let Some(found) = found else {
                return Err(ProviderError::new(
                    format!("{vm} was deleted on the Orchard controller at {} while tartlab waited for it to run", self.controller.url()),
                    "someone else deleted it; `tartlab up` makes it anew",
                ));
            };
            if found.uid != uid {
                return Err(self.replaced(vm, uid, &found.uid));
            }
            if found.is_running() {
                return Ok(found);
            }
            if found.is_failed() {
                // A worker killed before it picked the VM up: the controller fails the VM
                // once the worker is offline, and the message says when it was last seen.
                let seen = self.failed_worker_words(&found).await;
                let events = self.last_events(vm).await;
                let gone = self.give_up(vm, uid).await;
                let worker = if found.worker.is_empty() {
                    String::new()
                } else {
                    format!(" on worker {}", found.worker)
                };
                return Err(ProviderError::new(
                    format!(
                        "{vm} failed{worker}: {}{seen}{events}",
                        crate::text::printable(&found.status_message, 500)
                    ),
                    format!("{gone}; if it failed in the clone, check the image name and the worker's free disk (`orchard get vm {vm}` while it exists)"),
                ));
            }
            if found.worker.is_empty() && started.elapsed() >= self.schedule_timeout {
                let fleet = doctor::fleet_words(&self.controller).await;
                let gone = self.give_up(vm, uid).await;
                let labels = self.labels_words(&found);
                let resources = if found.resources.is_empty() {
                    ""
                } else {
                    " and the free resources it asks"
                };
                return Err(ProviderError::new(
                    format!(
                        "no Orchard worker took {vm} within {} s: none that is online has arch {}, runtime {}{labels}{resources}",
                        self.schedule_timeout.as_secs(),
                        self.spec.arch.name(),
                        self.spec.runtime.name(),
                    ),
                    format!("{gone}. {fleet}; change the lab's `placement` (or `provider.orchard.arch`/`labels`), or start a worker that fits (raise TARTLAB_ORCHARD_SCHEDULE_TIMEOUT to wait longer)"),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A VM named `vm` that has `found` for uid, not the `ours` the lab made: someone
    /// replaced it.
    fn replaced(&self, vm: &str, ours: &str, found: &str) -> ProviderError {
        ProviderError::new(
            format!(
                "{vm} on the Orchard controller at {} is no longer the VM tartlab created: it has another uid ({found}; tartlab's was {ours}), so someone deleted and replaced it",
                self.controller.url()
            ),
            format!("tartlab left it alone: it deletes and waits on only the VMs it made. If that VM is yours and may go, delete it (`orchard delete vm {vm}`) and run `tartlab up` again; else give this node another name (`vm_prefix`)"),
        )
    }

    /// A VM named `vm` the lab cannot prove it made: `lab_uid` is the uid it recorded for
    /// that name, if any.
    fn unproven(&self, vm: &str, found: &str, lab_uid: Option<&str>) -> ProviderError {
        let why = match lab_uid {
            Some(ours) => format!("it has uid {found}, and the VM this lab made had {ours}"),
            None => format!("it has uid {found}, and this lab recorded none: its create of {vm} was cut off before the controller answered, so that VM may be the lab's or anyone's"),
        };
        ProviderError::new(
            format!(
                "a VM named {vm} is on the Orchard controller at {} that this lab cannot prove it created ({why})",
                self.controller.url()
            ),
            format!("tartlab left it alone. If it is this lab's (or yours) and may go, delete it (`orchard delete vm {vm}`), then run `tartlab up` again; else give this node another name (`vm_prefix`)"),
        )
    }

    fn labels_words(&self, vm: &Vm) -> String {
        if vm.labels.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = vm.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(", labels {}", pairs.join(","))
    }

    /// Makes the node's VM, or finishes the interrupted create of it, and waits until it runs.
    pub(super) async fn create_vm(
        &self,
        spec: &VmSpec,
        from: CreateFrom,
    ) -> Result<Created, ProviderError> {
        let vm = spec.name.as_str();
        if from == CreateFrom::Image {
            self.check_some_worker_fits(spec).await?;
        }
        let created = match self.controller.create(&self.new_vm(spec)).await {
            Ok(created) => {
                // Recorded before any wait: a create cut off from here on leaves the
                // proof that the VM is the lab's.
                if let Err(why) = self.ownership.record(vm, &created.uid) {
                    let gone = self.give_up(vm, &created.uid).await;
                    return Err(ProviderError::new(
                        format!("{vm} was created on the Orchard controller, but tartlab {why}, so it could not prove later that the VM is the lab's"),
                        format!("{gone}; check that .tartlab/ is writable, then `tartlab up` again"),
                    ));
                }
                created
            }
            // An earlier create was cut off after the POST: the VM of that name is the
            // one it made only if it has the uid that create recorded.
            Err(Refusal::Status(409, _)) if from == CreateFrom::Interrupted => {
                let found = self
                    .controller
                    .vm(vm)
                    .await
                    .map_err(|e| self.controller.explain(&format!("reading {vm}"), e))?
                    .ok_or_else(|| {
                        ProviderError::new(
                            format!("{vm} was there a moment ago and is gone"),
                            "run `tartlab up` again",
                        )
                    })?;
                let recorded = self.ownership.recorded(vm);
                if recorded.as_deref() != Some(found.uid.as_str()) {
                    return Err(self.unproven(vm, &found.uid, recorded.as_deref()));
                }
                found
            }
            Err(Refusal::Status(409, _)) => {
                return Err(ProviderError::new(
                    format!("a VM named {vm} exists on the Orchard controller at {}, and this lab did not create it", self.controller.url()),
                    "tartlab leaves it alone: rename the node (or set `vm_prefix`), or delete that VM yourself (`orchard delete vm`) if it is yours",
                ))
            }
            Err(e) => return Err(self.controller.explain(&format!("creating {vm}"), e)),
        };
        self.wait_running(vm, &created.uid).await?;
        Ok(Created {
            identity: created.uid,
            running: true,
        })
    }

    /// Deletes the lab's VM `vm` and waits until the controller has it no more.
    pub(super) async fn delete_owned(&self, vm: &str) -> Result<(), ProviderError> {
        let doing = format!("deleting {vm}");
        let look = |e| self.controller.explain(&doing, e);
        let Some(found) = self.controller.vm(vm).await.map_err(look)? else {
            self.ownership.forget(vm);
            return Ok(());
        };
        // Checked right before the DELETE, which names the VM (Orchard's API deletes by
        // name only): a VM of that name with another uid is someone else's.
        let lab_uid = self.ownership.lab_uid(vm);
        if lab_uid.as_deref() != Some(found.uid.as_str()) {
            return Err(self.unproven(vm, &found.uid, lab_uid.as_deref()));
        }
        self.controller.delete(vm).await.map_err(look)?;
        // The record goes at once; the worker stops and deletes the tart VM on its next
        // sync, which the API does not report. A VM of that name with another uid is a
        // new one, someone else's: the lab's is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.controller.vm(vm).await {
                Ok(Some(still)) if still.uid == found.uid => {
                    if Instant::now() >= deadline {
                        return Err(ProviderError::new(
                            format!(
                                "{vm} is still on the Orchard controller 30 s after its deletion"
                            ),
                            "check the controller's log, then `tartlab down` again",
                        ));
                    }
                    tokio::time::sleep(POLL).await;
                }
                Ok(_) => {
                    self.ownership.forget(vm);
                    return Ok(());
                }
                Err(e) => return Err(look(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::super::api::Controller;
    use super::super::testing::{controller, Answer};
    use super::super::Ownership;
    use super::*;

    /// A controller that answers each `GET /v1/vms/a-master` with the next of `looks` (a
    /// uid, or `None` for no such VM; the last again once they run out) and each `DELETE`
    /// with 200, counting them.
    fn scripted(looks: Vec<Option<&'static str>>) -> (Controller, Arc<AtomicUsize>) {
        let deletes = Arc::new(AtomicUsize::new(0));
        let looks = Mutex::new(looks);
        let counted = deletes.clone();
        let controller = controller(move |request| {
            if request.starts_with("DELETE ") {
                counted.fetch_add(1, Ordering::SeqCst);
                return Answer::json(200, "{}");
            }
            let mut looks = looks.lock().unwrap();
            let look = if looks.len() > 1 {
                looks.remove(0)
            } else {
                looks[0]
            };
            match look {
                Some(uid) => Answer::json(
                    200,
                    &format!(r#"{{"name":"a-master","uid":"{uid}","status":"running"}}"#),
                ),
                None => Answer::json(404, ""),
            }
        });
        (controller, deletes)
    }

    /// The provider of a lab whose create of `a-master` got back `ours`, on that controller.
    fn provider(controller: Controller, ours: &str) -> (OrchardProvider, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".tartlab")).unwrap();
        let ownership = Ownership::beside(dir.path());
        ownership.record("a-master", ours).unwrap();
        let provider = OrchardProvider {
            controller,
            spec: Default::default(),
            schedule_timeout: Duration::from_secs(60),
            ownership,
            workers: Default::default(),
        };
        (provider, dir)
    }

    #[tokio::test]
    async fn a_vm_of_the_name_with_another_uid_is_not_deleted_and_the_error_says_why() {
        let (controller, deletes) = scripted(vec![Some("theirs")]);
        let (provider, _dir) = provider(controller, "ours");
        let error = provider.delete_owned("a-master").await.unwrap_err();
        assert_eq!(deletes.load(Ordering::SeqCst), 0, "no DELETE sent");
        assert!(
            error
                .message
                .contains("it has uid theirs, and the VM this lab made had ours"),
            "{}",
            error.message
        );
        assert!(
            error.hint.contains("tartlab left it alone"),
            "{}",
            error.hint
        );
    }

    #[tokio::test]
    async fn a_new_vm_of_the_name_after_the_delete_means_the_lab_s_is_gone() {
        let (controller, deletes) = scripted(vec![Some("ours"), Some("a-new-one")]);
        let (provider, _dir) = provider(controller, "ours");
        let deleted = provider.delete_owned("a-master").await;
        assert!(deleted.is_ok(), "{:?}", deleted.err().map(|e| e.message));
        assert_eq!(deletes.load(Ordering::SeqCst), 1);
        assert_eq!(provider.ownership.recorded("a-master"), None, "forgotten");
    }

    #[tokio::test]
    async fn a_wait_on_a_vm_that_was_replaced_ends_at_the_next_look_without_a_delete() {
        let (controller, deletes) = scripted(vec![Some("theirs")]);
        let (provider, _dir) = provider(controller, "ours");
        let error = provider.wait_running("a-master", "ours").await.unwrap_err();
        assert_eq!(deletes.load(Ordering::SeqCst), 0);
        assert!(
            error
                .message
                .contains("it has another uid (theirs; tartlab's was ours)"),
            "{}",
            error.message
        );
    }
}
