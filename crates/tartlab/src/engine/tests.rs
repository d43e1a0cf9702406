//! The engine's decisions against the in-memory provider, in milliseconds: what a fresh lab,
//! a converged lab, a changed cpu, a foreign VM, a failing node and an orphan lead to, and
//! that what `plan` predicts is what `up` then does. Provisioning is skipped (it needs real
//! guests: the end-to-end tests through tart-sim cover it).
//!
//! Over 500 lines, for a reason: one table of engine scenarios over one fake provider, each
//! test a few lines of lab text and assertions.

use std::path::Path;
use std::sync::Arc;

use super::events::{Action, Change, Reporter, Stage};
use super::plan::{Blocker, Lifecycle};
use super::{Engine, NodeReport, Options, Provisioning};
use crate::lab::{self, Lab, Source};
use crate::provider::fake::FakeProvider;
use crate::state::StateDir;

const TWO_CLUSTERS: &str = "lab: t\nclusters:\n  - name: a\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\n  - name: b\n    nodes:\n      - { name: master, role: master }\n";

fn lab(dir: &Path, yaml: &str) -> Lab {
    lab::read(Source::new(&dir.join("tartlab.yaml"), yaml.to_string()))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn options() -> Options {
    Options {
        provision: Provisioning::Skip,
        ..Options::up()
    }
}

async fn engine(dir: &Path, yaml: &str, provider: &Arc<FakeProvider>, options: Options) -> Engine {
    let lab = lab(dir, yaml);
    let state_dir = StateDir::create_beside(&lab.source.path).unwrap();
    Engine::open(lab, state_dir, None, provider.clone(), options)
        .await
        .unwrap()
}

fn all(engine: &Engine) -> Vec<String> {
    engine
        .lab()
        .nodes
        .iter()
        .map(|n| n.vm_name.clone())
        .collect()
}

/// Plans, then runs `up`; asserts that every node did what its plan said.
async fn up_as_planned(engine: Engine) -> Vec<NodeReport> {
    let selected = all(&engine);
    let plans = engine.plan(&selected);
    let reports = engine
        .up(selected, Reporter::silent(), false)
        .await
        .unwrap();
    for (plan, report) in plans.iter().zip(&reports) {
        assert_eq!(plan.vm, report.node);
        if report.failure.is_none() {
            assert_eq!(
                report.actions,
                plan.expected_actions(),
                "{}: plan said {}",
                plan.vm,
                plan.summary()
            );
        }
    }
    reports
}

fn mutating_calls(provider: &FakeProvider, vm: &str) -> Vec<String> {
    provider
        .calls()
        .into_iter()
        .filter(|c| c.ends_with(&format!(" {vm}")))
        .collect()
}

#[tokio::test]
async fn a_fresh_lab_is_created_and_booted_and_owned() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    let engine = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let plans = engine.plan(&all(&engine));
    assert!(plans.iter().all(|p| p.lifecycle == Lifecycle::Create));
    assert!(plans.iter().all(|p| p.summary() == "create"));
    let reports = up_as_planned(engine).await;
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    let state = StateDir::beside(&dir.path().join("tartlab.yaml"))
        .read_state("t")
        .unwrap();
    for vm in ["a-master", "a-worker", "b-master"] {
        let fake = provider.vm(vm).unwrap();
        assert!(fake.running, "{vm}");
        assert_eq!(
            state.vms[vm].mac.as_deref(),
            Some(fake.mac.as_str()),
            "{vm} owned"
        );
        assert_eq!(state.vms[vm].ip.as_deref(), Some(fake.address.as_str()));
        assert_eq!(
            mutating_calls(&provider, vm),
            [format!("create {vm}"), format!("start {vm}")]
        );
    }
}

#[tokio::test]
async fn a_running_vm_whose_boot_was_never_seen_ready_is_waited_for_then_kept_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    // As a command cut short right after it started a-worker leaves the state.
    let path = dir.path().join(".tartlab/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state["vms"]["a-worker"]["boot_unconfirmed"] = true.into();
    std::fs::write(&path, state.to_string()).unwrap();
    let calls = provider.calls().len();
    let again = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let plans = again.plan(&all(&again));
    for plan in &plans {
        let (lifecycle, summary) = if plan.vm == "a-worker" {
            (
                Lifecycle::FinishBoot,
                "its last boot was cut short: up waits for it",
            )
        } else {
            (Lifecycle::Keep, "nothing")
        };
        assert_eq!(
            (&plan.lifecycle, plan.summary().as_str()),
            (&lifecycle, summary)
        );
    }
    // It is not booted again, and once it came up the lab is converged.
    up_as_planned(again).await;
    assert_eq!(provider.calls().len(), calls, "{:?}", provider.calls());
    let last = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    assert!(last
        .plan(&all(&last))
        .iter()
        .all(|p| p.lifecycle == Lifecycle::Keep));
}

#[tokio::test]
async fn a_converged_lab_plans_nothing_and_up_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let calls = provider.calls().len();
    let again = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let plans = again.plan(&all(&again));
    assert!(plans
        .iter()
        .all(|p| p.lifecycle == Lifecycle::Keep && p.summary() == "nothing"));
    let reports = up_as_planned(again).await;
    assert!(reports
        .iter()
        .all(|r| r.actions.is_empty() && r.failure.is_none()));
    assert_eq!(provider.calls().len(), calls, "{:?}", provider.calls());
}

#[tokio::test]
async fn a_changed_cpu_restarts_only_that_node() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let changed = TWO_CLUSTERS.replace(
        "{ name: worker, role: worker }",
        "{ name: worker, role: worker, cpu: 4 }",
    );
    let engine = engine(dir.path(), &changed, &provider, options()).await;
    let plans = engine.plan(&all(&engine));
    let worker = plans.iter().find(|p| p.vm == "a-worker").unwrap();
    let change = Change {
        setting: "cpu",
        from: "2".into(),
        to: "4".into(),
    };
    assert_eq!(
        worker.lifecycle,
        Lifecycle::Reconfigure {
            changes: vec![change.clone()],
            running: true
        }
    );
    assert_eq!(worker.summary(), "restart (cpu 2 -> 4)");
    let reports = up_as_planned(engine).await;
    let report = reports.iter().find(|r| r.node == "a-worker").unwrap();
    assert_eq!(
        report.actions,
        [Action::Changed(vec![change]), Action::Booted]
    );
    assert_eq!(
        mutating_calls(&provider, "a-worker")[2..],
        ["stop a-worker", "resize a-worker", "start a-worker"]
    );
    assert_eq!(provider.vm("a-worker").unwrap().cpu, 4);
    for vm in ["a-master", "b-master"] {
        assert_eq!(mutating_calls(&provider, vm).len(), 2, "{vm} untouched");
    }
}

#[tokio::test]
async fn a_foreign_vm_is_reported_and_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    let before = provider.add_vm("a-worker", crate::provider::Power::Stopped);
    let engine = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let plans = engine.plan(&all(&engine));
    let worker = plans.iter().find(|p| p.vm == "a-worker").unwrap();
    assert_eq!(worker.lifecycle, Lifecycle::Blocked(Blocker::Foreign));
    let reports = up_as_planned(engine).await;
    let report = reports.iter().find(|r| r.node == "a-worker").unwrap();
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(failure.stage, Stage::Check);
    assert!(
        failure.message.contains("this lab did not create it"),
        "{failure:?}"
    );
    assert!(
        !failure.hint.contains("delete"),
        "never a hint to delete it: {failure:?}"
    );
    assert!(mutating_calls(&provider, "a-worker").is_empty());
    assert_eq!(provider.vm("a-worker").unwrap(), before);
    assert_eq!(reports.iter().filter(|r| r.failure.is_none()).count(), 2);

    // Down leaves it alone too: the lab does not own it.
    let down =
        super::tests::engine(dir.path(), TWO_CLUSTERS, &provider, Options::teardown(4)).await;
    let owned: Vec<String> = down.state().vms.keys().cloned().collect();
    assert!(!owned.contains(&"a-worker".to_string()));
    let teardown = down.teardown(&owned);
    down.down(teardown, Reporter::silent(), true).await.unwrap();
    assert_eq!(provider.vm("a-worker").unwrap(), before);
    assert!(provider.vm("a-master").is_none());
}

#[tokio::test]
async fn a_node_that_fails_leaves_every_other_node_up() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    provider.fail_start("a-master");
    let reports = up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let failed: Vec<&NodeReport> = reports.iter().filter(|r| r.failure.is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].node, "a-master");
    assert_eq!(failed[0].failure.as_ref().unwrap().stage, Stage::Boot);
    assert!(provider.vm("a-worker").unwrap().running);
    assert!(provider.vm("b-master").unwrap().running);
}

#[tokio::test]
async fn an_orphan_is_found_kept_and_removed_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let smaller = TWO_CLUSTERS.replace(
        "  - name: b\n    nodes:\n      - { name: master, role: master }\n",
        "",
    );
    let kept = engine(dir.path(), &smaller, &provider, options()).await;
    assert_eq!(kept.orphans(), ["b-master"]);
    assert!(kept.plan(&all(&kept)).iter().all(|p| p.vm != "b-master"));
    let calls = provider.calls().len();
    up_as_planned(kept).await;
    assert_eq!(provider.calls().len(), calls, "kept");
    assert!(provider.vm("b-master").unwrap().running);

    let removing = engine(
        dir.path(),
        &smaller,
        &provider,
        Options {
            remove_orphans: true,
            ..options()
        },
    )
    .await;
    let reports = removing
        .up(
            vec!["a-master".into(), "a-worker".into()],
            Reporter::silent(),
            false,
        )
        .await
        .unwrap();
    let orphan = reports.iter().find(|r| r.node == "b-master").unwrap();
    assert_eq!(orphan.actions, [Action::DeletedOrphan]);
    assert!(provider.vm("b-master").is_none());
    assert!(provider.vm("a-master").unwrap().running && provider.vm("a-worker").unwrap().running);
}

#[tokio::test]
async fn an_orchard_like_provider_creates_vms_running_and_a_converged_lab_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    let fresh = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    assert!(fresh
        .plan(&all(&fresh))
        .iter()
        .all(|p| p.summary() == "create"));
    let reports = up_as_planned(fresh).await;
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    for vm in ["a-master", "a-worker", "b-master"] {
        assert_eq!(
            mutating_calls(&provider, vm),
            [format!("create {vm}")],
            "no start, no pull"
        );
        let report = reports.iter().find(|r| r.node == vm).unwrap();
        assert_eq!(report.actions, [Action::Created, Action::Booted]);
        assert_eq!(
            report.ip.as_deref(),
            Some(provider.vm(vm).unwrap().address.as_str())
        );
    }
    assert!(
        !provider.calls().iter().any(|c| c.starts_with("fetch")),
        "no local images"
    );
    let calls = provider.calls().len();
    let again = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    assert!(again
        .plan(&all(&again))
        .iter()
        .all(|p| p.summary() == "nothing"));
    let reports = up_as_planned(again).await;
    assert!(reports
        .iter()
        .all(|r| r.actions.is_empty() && r.failure.is_none()));
    assert_eq!(provider.calls().len(), calls, "{:?}", provider.calls());
}

#[tokio::test]
async fn an_orchard_like_provider_plans_a_cpu_change_as_a_recreate_and_does_it_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let changed = TWO_CLUSTERS.replace(
        "{ name: worker, role: worker }",
        "{ name: worker, role: worker, cpu: 4 }",
    );
    let changed_lab = engine(dir.path(), &changed, &provider, options()).await;
    let plans = changed_lab.plan(&all(&changed_lab));
    let worker = plans.iter().find(|p| p.vm == "a-worker").unwrap();
    assert!(
        matches!(&worker.lifecycle, Lifecycle::Blocked(Blocker::NeedsRecreate { why }) if why.contains("cpu 2 -> 4")),
        "{:?}",
        worker.lifecycle
    );
    assert_eq!(
        worker.summary(),
        "blocked: cpu 2 -> 4 cannot be changed on an existing VM of this provider (--recreate)"
    );
    let reports = up_as_planned(changed_lab).await;
    let failure = reports
        .iter()
        .find(|r| r.node == "a-worker")
        .and_then(|r| r.failure.clone())
        .unwrap();
    assert_eq!(failure.stage, Stage::Check);
    assert!(failure.hint.contains("--recreate"), "{failure:?}");
    assert_eq!(mutating_calls(&provider, "a-worker").len(), 1, "untouched");

    let recreating = engine(
        dir.path(),
        &changed,
        &provider,
        Options {
            recreate: true,
            ..options()
        },
    )
    .await;
    let worker = recreating
        .plan(&all(&recreating))
        .into_iter()
        .find(|p| p.vm == "a-worker")
        .unwrap();
    assert_eq!(worker.summary(), "recreate (--recreate: its disk is lost)");
    let old = provider.vm("a-worker").unwrap();
    let reports = up_as_planned(recreating).await;
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    let new = provider.vm("a-worker").unwrap();
    assert_eq!(new.cpu, 4);
    assert_ne!(new.mac, old.mac);
    assert!(
        !mutating_calls(&provider, "a-worker")
            .iter()
            .any(|c| c.starts_with("resize") || c.starts_with("start")),
        "{:?}",
        provider.calls()
    );
}

#[tokio::test]
async fn an_orchard_like_provider_refuses_stop_start_and_restart_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let engine = engine(dir.path(), TWO_CLUSTERS, &provider, Options::teardown(4)).await;
    for verb in ["stop", "start", "restart"] {
        let error = engine.refuse_lifecycle(verb).unwrap_err();
        assert_eq!(
            error.exit(),
            crate::error::Exit::Invalid,
            "bad usage: exit 2"
        );
        let (_, text) = error.render();
        assert!(
            text.contains(&format!("`tartlab {verb}` is not possible with fake")),
            "{text}"
        );
        assert!(text.contains("can never start again"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
    }
    assert!(provider.vm("a-master").unwrap().running);
    // Local tart's can.
    let local = Arc::new(FakeProvider::new());
    let tart = super::tests::engine(dir.path(), TWO_CLUSTERS, &local, Options::teardown(4)).await;
    assert!(tart.refuse_lifecycle("stop").is_ok());
}

#[tokio::test]
async fn a_snapshot_saved_and_restored_gives_back_a_vanished_node_with_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let before = provider.vm("a-worker").unwrap();
    let save = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let selected = all(&save);
    let reports = save
        .snapshot_save("base", selected, false, Reporter::silent(), false)
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    let copy = provider.vm("a-worker.snapshot.base.1").unwrap();
    assert!(!copy.running, "a snapshot VM is never booted");
    assert_ne!(copy.mac, before.mac, "a copy has its own identity");
    assert!(provider.vm("a-worker").unwrap().running, "started again");

    provider.vanish("a-worker");
    let restore = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let reports = restore
        .snapshot_restore(
            "base",
            true,
            vec!["a-worker".into()],
            Reporter::silent(),
            false,
        )
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    assert!(
        reports[0].actions.contains(&Action::Restored),
        "{reports:?}"
    );
    let back = provider.vm("a-worker").unwrap();
    assert_eq!(back.mac, before.mac, "its identity put back");
    assert!(back.running);
    // The others were left as they were: no restore, no delete.
    let calls = provider.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c == "restore a-master" || c == "delete a-master"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn an_orchard_like_provider_refuses_snapshots_with_its_name_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let before = provider.calls().len();
    let engine = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let selected = all(&engine);
    let error = engine
        .snapshot_save("base", selected, false, Reporter::silent(), false)
        .await
        .unwrap_err();
    assert_eq!(error.exit(), crate::error::Exit::Invalid, "refused: exit 2");
    let (_, text) = error.render();
    assert!(
        text.contains("`tartlab snapshot` is not possible with fake"),
        "{text}"
    );
    assert!(text.contains("can never start again"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    // Nothing was stopped, copied or deleted: only the inventory was read.
    let calls = provider.calls();
    assert!(
        calls[before..].iter().all(|c| c.starts_with("inventory")),
        "{calls:?}"
    );
    assert!(provider.vm("a-master").unwrap().running);
}

#[tokio::test]
async fn an_orchard_like_vm_that_vanished_is_made_again_and_one_that_moved_is_found_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    provider.vanish("a-worker");
    provider.move_vm("b-master", "127.200.9.9");
    let engine = engine(dir.path(), TWO_CLUSTERS, &provider, options()).await;
    let plans = engine.plan(&all(&engine));
    let summary = |vm: &str| plans.iter().find(|p| p.vm == vm).unwrap().summary();
    assert_eq!(summary("a-worker"), "create");
    assert_eq!(summary("b-master"), "nothing");
    let reports = up_as_planned(engine).await;
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    let state = StateDir::beside(&dir.path().join("tartlab.yaml"))
        .read_state("t")
        .unwrap();
    let worker = provider.vm("a-worker").unwrap();
    assert_eq!(
        state.vms["a-worker"].mac.as_deref(),
        Some(worker.mac.as_str())
    );
    assert_eq!(
        state.vms["a-worker"].ip.as_deref(),
        Some(worker.address.as_str())
    );
    assert_eq!(
        state.vms["b-master"].ip.as_deref(),
        Some("127.200.9.9"),
        "the moved VM's address, asked"
    );
}

#[tokio::test]
async fn an_orchard_like_node_that_fails_leaves_the_others_up() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    provider.fail_create("a-worker");
    let reports = up_as_planned(engine(dir.path(), TWO_CLUSTERS, &provider, options()).await).await;
    let failed: Vec<&NodeReport> = reports.iter().filter(|r| r.failure.is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].node, "a-worker");
    assert_eq!(failed[0].failure.as_ref().unwrap().stage, Stage::Create);
    assert!(provider.vm("a-master").unwrap().running);
    assert!(provider.vm("b-master").unwrap().running);
}

#[tokio::test]
async fn a_network_mode_the_provider_lacks_is_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    let nat = TWO_CLUSTERS.replace("lab: t\n", "lab: t\ndefaults: { network: nat }\n");
    let engine = engine(dir.path(), &nat, &provider, options()).await;
    let selected = all(&engine);
    let error = engine
        .up(selected, Reporter::silent(), false)
        .await
        .unwrap_err();
    let (_, text) = error.render();
    assert!(text.contains("fake has no network mode nat"), "{text}");
    assert!(text.contains("softnet, bridged"), "{text}");
    assert!(provider.calls().is_empty(), "{:?}", provider.calls());
}

#[test]
fn a_provider_failure_keeps_its_one_time_fix_as_a_command_in_the_hint() {
    let mut error = crate::provider::ProviderError::new("softnet cannot run as root", "set it up");
    error.fix = Some(vec![
        "sh".into(),
        "-c".into(),
        "chown root /x && chmod u+s /x".into(),
    ]);
    let failure = super::Failure::from_provider(Stage::Boot, error);
    assert_eq!(failure.message, "softnet cannot run as root");
    assert_eq!(
        failure.hint,
        "set it up; once: `sudo sh -c 'chown root /x && chmod u+s /x'`"
    );

    let plain = crate::provider::ProviderError::new("tart failed", "see the log");
    assert_eq!(
        super::Failure::from_provider(Stage::Boot, plain).hint,
        "see the log"
    );
}

#[tokio::test]
async fn a_moved_placement_is_a_recreate_where_the_provider_places_and_nothing_where_it_does_not() {
    let placed = TWO_CLUSTERS.replace(
        "  - name: b\n",
        "  - name: b\n    placement: { labels: { mac: mini-1 } }\n",
    );
    let moved = placed.replace("mini-1", "mini-2");
    // Orchard-like: the placement is recorded at create, and a move is named as a recreate.
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::orchard_like());
    up_as_planned(engine(dir.path(), &placed, &provider, options()).await).await;
    let lab = engine(dir.path(), &moved, &provider, options()).await;
    let plans = lab.plan(&all(&lab));
    let b = plans.iter().find(|p| p.vm == "b-master").unwrap();
    assert!(
        matches!(&b.lifecycle, Lifecycle::Blocked(Blocker::NeedsRecreate { why })
            if why.contains("placement labels mac=mini-1 -> labels mac=mini-2")),
        "{:?}",
        b.lifecycle
    );
    assert!(plans
        .iter()
        .filter(|p| p.vm != "b-master")
        .all(|p| p.summary() == "nothing"));
    // Local tart places nothing: the same move changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(FakeProvider::new());
    up_as_planned(engine(dir.path(), &placed, &provider, options()).await).await;
    let lab = engine(dir.path(), &moved, &provider, options()).await;
    assert!(lab
        .plan(&all(&lab))
        .iter()
        .all(|p| p.summary() == "nothing"));
}
