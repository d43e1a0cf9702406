//! The changing commands: `up`, `start`, `stop`, `down`. Each opens the lab with its lock
//! held for the whole command, hands the work to the engine, and prints the recap with the
//! exit code design.md gives.

use super::{block_on, open_lab, select, FileArgs};
use crate::engine::events::{Reporter, Stage};
use crate::engine::plan::{Lifecycle, NodePlan};
use crate::engine::{Engine, NodeReport, Options, Provisioning, Reprovision};
use crate::error::{Error, Exit, Result};
use crate::lab::{self, Node};
use crate::state::{State, StateDir};
use crate::ui::{self, Mode};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Only these nodes: names, cluster=NAME, role=NAME or all (default: all)
    #[arg(add = super::complete::selectors())]
    pub nodes: Vec<String>,
    /// How many nodes are created and provisioned at once (1 to 1024)
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = super::parallelism())]
    pub parallel: usize,
    /// Create and boot, but skip provisioning
    #[arg(long)]
    pub no_provision: bool,
    /// Delete and recreate VMs whose image changed, or whose change the provider cannot make
    /// in place (their disks are lost); on a terminal, `up` asks instead
    #[arg(long)]
    pub recreate: bool,
    /// Take over VMs with the lab's names that this lab did not create
    #[arg(long)]
    pub adopt: bool,
    /// Run provisioning steps even when unchanged: every step, or only --reprovision=STEP
    #[arg(long, value_name = "STEP", num_args = 0..=1, require_equals = true, default_missing_value = "", add = super::complete::steps())]
    pub reprovision: Option<String>,
    /// Delete the VMs this lab created that the lab file no longer declares (orphans)
    #[arg(long)]
    pub remove_orphans: bool,
}

#[derive(clap::Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Only these nodes: names, cluster=NAME, role=NAME or all (default: all)
    #[arg(add = super::complete::selectors())]
    pub nodes: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub nodes: NodesArgs,
    /// Keep the lab's snapshots (a `down` of the whole lab deletes them otherwise);
    /// `tartlab snapshot restore` brings the lab back from them
    #[arg(long)]
    pub keep_snapshots: bool,
    /// A lab of `tartlab labs` by its name (or its lab file): the `down` of its lab file, or,
    /// when that is gone, its VMs deleted by the list's record of them (each only if it is
    /// still the VM the lab created)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["file", "nodes"])]
    pub lab: Option<String>,
    /// Delete without asking (on a terminal, `down` lists what it deletes and asks first;
    /// off a terminal or in CI it never asks)
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Opens the lab for a changing command: `.tartlab/` made, the lab lock taken (and shared
/// with the tart commands that will run), tart found and checked, the state and tart's
/// inventory read.
pub(super) async fn open_engine(file: &FileArgs, options: Options) -> Result<Engine> {
    let lab = open_lab(file, true)?;
    let dir = StateDir::create_beside(&lab.source.path).map_err(|e| Error::fatal(e, ""))?;
    let lock = dir
        .lock_telling(&|note| eprintln!("tartlab: {note}"))
        .map_err(|e| Error::fatal(e, ""))?;
    super::labs::follow_rename(&lab, &dir)?;
    let provider = crate::provider::open(Some(&lab), Some(lock.share()))
        .map_err(|e| Error::fatal(e.message, e.hint))?;
    provider
        .preflight()
        .await
        .map_err(|e| Error::fatal(e.message, e.hint))?;
    let mut engine = Engine::open(lab, dir, Some(lock), provider, options).await?;
    super::labs::keep_listed(&mut engine);
    settle(engine, file).await
}

/// A snapshot save or restore that was cut short is settled before anything else is done
/// (`engine/snapshots/`), with its own lines on stderr (or JSON lines with `--json`).
async fn settle(engine: Engine, file: &FileArgs) -> Result<Engine> {
    let Some(journal) = engine.state().journal.clone() else {
        return Ok(engine);
    };
    let reporter = ui::reporter(
        Mode::detect(file.json),
        &journal.nodes,
        Some(&engine.dir().events_path()),
    );
    let settled = engine.settle_journal(reporter.clone(), file.json).await;
    reporter.finish();
    Ok(settled?.0)
}

/// Runs the work, or stops at Ctrl-C with the state saved and the VMs running.
pub(super) async fn interruptible<T, F>(reporter: &Reporter, work: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            reporter.finish();
            Err(Error::Interrupted)
        }
    }
}

/// The end of a changing command: the recap, as an event the sinks render (a table, the
/// `--json` object, the journal's line), and the exit code design.md gives.
pub(super) fn recap(reporter: &Reporter, verb: &str, reports: &[NodeReport]) -> Exit {
    let failed = reports.iter().filter(|r| r.failure.is_some()).count();
    let exit = Exit::for_results(failed, reports.len());
    reporter.run_finished(verb, reports, exit.code());
    exit
}

pub fn up(args: &UpArgs) -> Result<Exit> {
    let options = Options {
        parallel: args.parallel,
        adopt: args.adopt,
        recreate: args.recreate,
        provision: if args.no_provision {
            Provisioning::Skip
        } else {
            Provisioning::Full
        },
        create_missing: true,
        reprovision: match args.reprovision.as_deref() {
            None => Reprovision::Changed,
            Some("") => Reprovision::All,
            Some(step) => Reprovision::Step(step.to_string()),
        },
        remove_orphans: args.remove_orphans,
    };
    bring_up(&args.file, &args.nodes, options, "up")
}

pub fn start(args: &NodesArgs) -> Result<Exit> {
    let options = Options {
        create_missing: false,
        ..Options::up()
    };
    bring_up(&args.file, &args.nodes, options, "start")
}

/// `up` or `start`; when the host needs a one-time set-up first (softnet's SUID bit) and
/// the user is at a terminal, offers to run it with sudo, as tart does, then goes on.
fn bring_up(
    file: &FileArgs,
    selectors: &[String],
    options: Options,
    verb: &'static str,
) -> Result<Exit> {
    match bring_up_once(file, selectors, options.clone(), verb) {
        Err(Error::NeedsSetup {
            message,
            hint,
            command,
        }) if at_a_terminal() => {
            if offer_setup(&message, &command) {
                return bring_up_once(file, selectors, options, verb);
            }
            Err(Error::NeedsSetup {
                message,
                hint,
                command,
            })
        }
        other => other,
    }
}

use super::ask::at_a_terminal;

/// The plan's lines for the nodes only a recreate brings up (`--recreate`), as their
/// failure would say: "dev-worker: cpu 2 -> 4 cannot be changed ...".
fn recreate_lines(plans: &[NodePlan]) -> Vec<String> {
    plans
        .iter()
        .filter_map(|p| match &p.lifecycle {
            Lifecycle::Blocked(blocker) if blocker.recreate_unblocks() => {
                Some(blocker.explain(&p.vm).0)
            }
            _ => None,
        })
        .collect()
}

/// Shows the recreates and asks whether to do them; the answer, or `None` at the end of
/// input.
fn ask_recreate(lines: &[String]) -> Option<String> {
    use std::io::Write;
    let mut shown = String::from("Only deleting and making anew brings these nodes up (their disks are lost, provisioning runs again):\n");
    for line in lines {
        shown.push_str(&format!("  {line}\n"));
    }
    eprint!("{shown}Recreate {} node(s)? [y/N] ", lines.len());
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    match std::io::stdin().read_line(&mut answer) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(answer),
    }
}

/// Whether `up` recreates the nodes that need it without `--recreate`: only when asked on a
/// terminal and answered yes. Off a terminal, at the end of input or on any other answer,
/// they stay blocked with the blocker's message.
fn recreate_confirmed(at_a_terminal: bool, answer: Option<&str>) -> bool {
    at_a_terminal && super::ask::is_yes(answer)
}

/// Says what is missing, shows the command, and runs it with sudo if the user says yes.
fn offer_setup(message: &str, command: &[String]) -> bool {
    use std::io::Write;
    let shown = crate::quote::command(command);
    eprint!("{message}.\nThis one-time set-up fixes it (tart does the same when run on a terminal):\n  sudo {shown}\nRun it now? sudo may ask for your password. [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return false;
    }
    std::process::Command::new("sudo")
        .args(command)
        .status()
        .is_ok_and(|s| s.success())
}

fn bring_up_once(
    file: &FileArgs,
    selectors: &[String],
    options: Options,
    verb: &'static str,
) -> Result<Exit> {
    block_on(async {
        let remove_orphans = options.remove_orphans;
        let mut engine = open_engine(file, options.clone()).await?;
        if verb == "start" {
            engine.refuse_lifecycle(verb)?;
        }
        check_reprovision(engine.lab(), selectors, &options.reprovision)?;
        let selected = select(&engine.lab().nodes, selectors)?;
        if verb == "up" && !options.recreate {
            let lines = recreate_lines(&engine.plan(&selected));
            let terminal = !lines.is_empty() && at_a_terminal();
            let answer = if terminal { ask_recreate(&lines) } else { None };
            if recreate_confirmed(terminal, answer.as_deref()) {
                engine.allow_recreate();
            }
        }
        let orphans = engine.orphans();
        let mut shown = selected.clone();
        if remove_orphans {
            shown.extend(engine.teardown(&orphans).names());
        }
        let reporter = ui::reporter(
            Mode::detect(file.json),
            &shown,
            Some(&engine.dir().events_path()),
        );
        reporter.run_started(verb, &shown);
        if let Some(note) = (verb == "up")
            .then(|| engine.kept_names_note_once())
            .flatten()
        {
            reporter.info(Stage::Check, &note);
        }
        if !remove_orphans {
            for vm in &orphans {
                reporter.warning(Some(vm), Stage::Check, &format!("{vm} is an orphan: this lab created it and the lab file no longer declares it; it is kept (`tartlab up --remove-orphans` or `tartlab down {vm}` deletes it)"));
            }
        }
        let reports =
            interruptible(&reporter, engine.up(selected, reporter.clone(), file.json)).await;
        let exit = reports.map(|reports| recap(&reporter, verb, &reports));
        reporter.finish();
        exit
    })
}

/// `--reprovision=STEP` names a step; a step's name given as a node (`--reprovision STEP`,
/// with a space) is never taken for a selector.
fn check_reprovision(lab: &lab::Lab, selectors: &[String], wanted: &Reprovision) -> Result<()> {
    let steps: Vec<&str> = lab.file.provision.iter().map(|s| s.name.as_str()).collect();
    if let Reprovision::Step(step) = wanted {
        if !steps.contains(&step.as_str()) {
            let mut message = format!("--reprovision={step}: the lab file has no step `{step}`");
            if let Some(near) = lab::closest(step, steps.iter().copied()) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
            return Err(Error::usage(
                message,
                format!("the steps are: {}", steps.join(", ")),
            ));
        }
    }
    for selector in selectors {
        let is_node = lab.nodes.iter().any(|n| lab::selects(selector, n));
        if !is_node && steps.contains(&selector.as_str()) {
            return Err(Error::usage(
                format!("`{selector}` is a step, not a node"),
                format!("to run it again, write --reprovision={selector} (with `=`)"),
            ));
        }
    }
    Ok(())
}

pub fn stop(args: &NodesArgs) -> Result<Exit> {
    block_on(async {
        let engine = open_engine(&args.file, Options::teardown(64)).await?;
        engine.refuse_lifecycle("stop")?;
        let selected = select(&engine.lab().nodes, &args.nodes)?;
        let running = engine.running_of(&selected);
        let reporter = ui::reporter(
            Mode::detect(args.file.json),
            &running,
            Some(&engine.dir().events_path()),
        );
        reporter.run_started("stop", &running);
        let reports = interruptible(&reporter, async {
            Ok(engine.stop(&running, reporter.clone()).await)
        })
        .await;
        let exit = reports.map(|reports| recap(&reporter, "stop", &reports));
        reporter.finish();
        exit
    })
}

pub fn restart(args: &NodesArgs) -> Result<Exit> {
    block_on(async {
        let options = Options {
            create_missing: false,
            ..Options::up()
        };
        let engine = open_engine(&args.file, options).await?;
        engine.refuse_lifecycle("restart")?;
        let selected = select(&engine.lab().nodes, &args.nodes)?;
        let reporter = ui::reporter(
            Mode::detect(args.file.json),
            &selected,
            Some(&engine.dir().events_path()),
        );
        reporter.run_started("restart", &selected);
        let reports = interruptible(
            &reporter,
            engine.restart(selected, reporter.clone(), args.file.json),
        )
        .await;
        let exit = reports.map(|reports| recap(&reporter, "restart", &reports));
        reporter.finish();
        exit
    })
}

/// The VMs of the state that `down` deletes: all of them, or those the selectors name (a
/// declared node by name, `cluster=`, `role=`, `all`, or an orphan by its name).
fn select_owned(nodes: &[Node], state: &State, selectors: &[String]) -> Result<Vec<String>> {
    let orphans = crate::engine::plan::orphans(nodes, state);
    // A selector that is an orphan's own name picks that orphan alone, as a node's does.
    let matches = |selector: &str, vm: &str| {
        selector == "all"
            || orphans.iter().any(|o| o == vm && o == selector)
            || (!orphans.iter().any(|o| o == selector)
                && nodes
                    .iter()
                    .any(|n| n.vm_name == vm && lab::picks(selector, n, nodes)))
    };
    for selector in selectors {
        let known = selector == "all"
            || orphans.contains(selector)
            || nodes.iter().any(|n| lab::selects(selector, n));
        if !known {
            let mut names: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
            names.extend(orphans.iter().map(String::as_str));
            let mut message = format!("`{selector}` matches no node of the lab and no VM it owns");
            let selectors: Vec<String> = nodes
                .iter()
                .flat_map(|n| [format!("cluster={}", n.cluster), format!("role={}", n.role)])
                .collect();
            let candidates = names
                .iter()
                .copied()
                .chain(selectors.iter().map(String::as_str));
            if let Some(near) = lab::closest(selector, candidates) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
            return Err(Error::usage(
                message,
                format!(
                    "use all, cluster=NAME, role=NAME or a name: {}",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(state
        .vms
        .keys()
        .filter(|vm| selectors.is_empty() || selectors.iter().any(|s| matches(s, vm)))
        .cloned()
        .collect())
}

pub fn down(args: &DownArgs) -> Result<Exit> {
    let keep = args.keep_snapshots;
    let file = match &args.lab {
        None => args.nodes.file.clone(),
        Some(wanted) => {
            match super::labs::down_lab(wanted, args.nodes.file.json, keep, args.yes)? {
                Ok(file) => file,
                Err(exit) => return Ok(exit),
            }
        }
    };
    let yes = args.yes;
    let args = &args.nodes;
    block_on(async {
        let engine = open_engine(&file, Options::teardown(16)).await?;
        let selected = select_owned(&engine.lab().nodes, engine.state(), &args.nodes)?;
        let teardown = engine.teardown(&selected);
        let going: Vec<(String, bool)> = teardown
            .delete
            .iter()
            .map(|(vm, power)| (vm.clone(), *power == crate::provider::Power::Running))
            .collect();
        let whole_lab = args.nodes.is_empty() && !keep;
        let snapshots_going = if whole_lab {
            engine.state().snapshots.len()
        } else {
            0
        };
        if !super::ask::down_confirmed(&going, snapshots_going, yes) {
            eprintln!("down: nothing deleted");
            return Ok(Exit::Failed);
        }
        let reporter = ui::reporter(
            Mode::detect(file.json),
            &teardown.names(),
            Some(&engine.dir().events_path()),
        );
        reporter.run_started("down", &teardown.names());
        // Only a down of the whole lab takes its snapshots with it.
        let snapshots = whole_lab;
        let kept = engine.state().snapshots.len();
        let result = interruptible(
            &reporter,
            engine.down(teardown, reporter.clone(), snapshots),
        )
        .await;
        let exit = result.map(|(reports, deleted)| {
            if deleted > 0 {
                reporter.info(Stage::Delete, &format!("{deleted} snapshot(s) deleted with the lab's VMs (`down --keep-snapshots` keeps them)"));
            } else if !snapshots && kept > 0 {
                reporter.info(Stage::Delete, &format!("{kept} snapshot(s) kept: `tartlab snapshot restore NAME` brings the lab back"));
            }
            recap(&reporter, "down", &reports)
        });
        reporter.finish();
        exit
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::Blocker;

    #[test]
    fn up_recreates_without_the_flag_only_when_a_person_said_yes() {
        assert!(recreate_confirmed(true, Some("y\n")));
        assert!(recreate_confirmed(true, Some(" yes \n")));
        assert!(recreate_confirmed(true, Some("Y")));
        // No, an empty line (the default), another word, the end of input.
        for answer in [Some("n\n"), Some("\n"), Some("sure\n"), None] {
            assert!(!recreate_confirmed(true, answer), "{answer:?}");
        }
        // Off a terminal (a pipe, CI), never: an answer there was not given by a person.
        assert!(!recreate_confirmed(false, Some("y\n")));
    }

    #[test]
    fn the_question_lists_only_the_nodes_a_recreate_brings_up() {
        let plan = |vm: &str, lifecycle| NodePlan {
            vm: vm.into(),
            lifecycle,
            provision: Vec::new(),
        };
        let lines = recreate_lines(&[
            plan(
                "dev-a",
                Lifecycle::Blocked(Blocker::NeedsRecreate {
                    why: "cpu 2 -> 4 cannot be changed".into(),
                }),
            ),
            plan("dev-b", Lifecycle::Blocked(Blocker::Foreign)),
            plan(
                "dev-c",
                Lifecycle::Blocked(Blocker::ImageChanged {
                    from: "old".into(),
                    to: "new".into(),
                }),
            ),
            plan("dev-d", Lifecycle::Keep),
        ]);
        assert_eq!(
            lines,
            [
                "dev-a: cpu 2 -> 4 cannot be changed",
                "dev-c was made from old, the lab file now says new"
            ]
        );
    }
}
