//! `tartlab snapshot save | list | restore | delete`: whole-lab snapshots (the engine's
//! `snapshots/` does the work). The changing ones hold the lab lock as `up` does; `list`
//! reads the state and one inventory, without it; it and `status` say when a save or a
//! restore is at work or was cut short, and what settles it.

use super::lifecycle::{interruptible, open_engine, recap};
use super::{block_on, out, select, FileArgs, LabSnapshot};
use crate::engine::snapshots;
use crate::engine::Options;
use crate::error::{Error, Exit, Result};
use crate::state::{JournalOp, State, StateDir};
use crate::ui::{self, Mode};

#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Shut the nodes down from inside, copy each VM (copy-on-write), start them again
    #[command(
        after_long_help = "Examples:\n  tartlab snapshot save provisioned\n  tartlab snapshot save --force provisioned cluster=dev"
    )]
    Save(SaveArgs),
    /// The lab's snapshots: when, which nodes, their size on disk as tart reports it
    List(FileArgs),
    /// Put the nodes back as they were in the snapshot: disk, address, host keys, records
    #[command(
        after_long_help = "Examples:\n  tartlab snapshot restore provisioned\n  tartlab snapshot restore provisioned dev-worker-1"
    )]
    Restore(NamedArgs),
    /// Delete a snapshot's VMs and forget it
    Delete(NameArgs),
}

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    #[command(flatten)]
    pub named: NamedArgs,
    /// Replace a snapshot of that name (the old one is deleted once the new one is whole)
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct NamedArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The snapshot's name (lower-case letters, digits and `-`, as a node's)
    #[arg(add = super::complete::snapshots())]
    pub name: String,
    /// Only these nodes: names, cluster=NAME, role=NAME or all (default: all)
    #[arg(add = super::complete::selectors())]
    pub nodes: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct NameArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The snapshot's name
    #[arg(add = super::complete::snapshots())]
    pub name: String,
}

pub fn snapshot(args: &SnapshotArgs) -> Result<Exit> {
    match &args.command {
        SnapshotCommand::Save(args) => save(args),
        SnapshotCommand::List(args) => list(args),
        SnapshotCommand::Restore(args) => restore(args),
        SnapshotCommand::Delete(args) => delete(args),
    }
}

fn checked(name: &str) -> Result<()> {
    crate::lab::check_snapshot_name(name)
        .map_err(|problem| Error::usage(problem, "nothing was changed; choose another name"))
}

/// After a save or restore, the nodes come up as `start` brings them (nothing created).
fn options() -> Options {
    Options {
        create_missing: false,
        ..Options::up()
    }
}

fn save(args: &SaveArgs) -> Result<Exit> {
    let named = &args.named;
    checked(&named.name)?;
    block_on(async {
        let engine = open_engine(&named.file, options()).await?;
        engine.refuse_snapshots()?;
        let selected = select(&engine.lab().nodes, &named.nodes)?;
        let reporter = ui::reporter(
            Mode::detect(named.file.json),
            &selected,
            Some(&engine.dir().events_path()),
        );
        reporter.run_started("snapshot save", &selected);
        let reports = interruptible(
            &reporter,
            engine.snapshot_save(
                &named.name,
                selected,
                args.force,
                reporter.clone(),
                named.file.json,
            ),
        )
        .await;
        let exit = reports.map(|reports| recap(&reporter, "snapshot save", &reports));
        reporter.finish();
        exit
    })
}

fn restore(args: &NamedArgs) -> Result<Exit> {
    checked(&args.name)?;
    block_on(async {
        let engine = open_engine(&args.file, options()).await?;
        engine.refuse_snapshots()?;
        let selected = select(&engine.lab().nodes, &args.nodes)?;
        let shown = if args.nodes.is_empty() {
            engine
                .state()
                .snapshots
                .get(&args.name)
                .map(|s| s.nodes.keys().cloned().collect())
                .unwrap_or_default()
        } else {
            selected.clone()
        };
        let reporter = ui::reporter(
            Mode::detect(args.file.json),
            &shown,
            Some(&engine.dir().events_path()),
        );
        reporter.run_started("snapshot restore", &shown);
        let reports = interruptible(
            &reporter,
            engine.snapshot_restore(
                &args.name,
                !args.nodes.is_empty(),
                selected,
                reporter.clone(),
                args.file.json,
            ),
        )
        .await;
        let exit = reports.map(|reports| recap(&reporter, "snapshot restore", &reports));
        reporter.finish();
        exit
    })
}

fn delete(args: &NameArgs) -> Result<Exit> {
    checked(&args.name)?;
    block_on(async {
        let engine = open_engine(&args.file, options()).await?;
        let reporter = ui::reporter(
            Mode::detect(args.file.json),
            &[],
            Some(&engine.dir().events_path()),
        );
        let deleted = engine.snapshot_delete(&args.name, reporter.clone()).await;
        reporter.finish();
        let deleted = deleted?;
        if args.file.json {
            out(&serde_json::json!({ "snapshot": args.name, "deleted_vms": deleted }).to_string());
        } else {
            eprintln!("snapshot `{}` deleted ({deleted} VM(s))", args.name);
        }
        Ok(Exit::Ok)
    })
}

/// A save or restore the state's journal says has begun and not ended, as the read-only
/// commands report it: at work now (the lab lock's holder is alive), or cut short, and what
/// the next changing command does about it.
#[derive(Debug, serde::Serialize)]
pub(super) struct Unsettled {
    pub op: &'static str,
    pub snapshot: String,
    pub nodes: Vec<String>,
    /// The pid of the tartlab at work on it, when one is.
    pub pid: Option<i32>,
    #[serde(skip)]
    pub words: String,
}

pub(super) fn unsettled(dir: &StateDir, state: &State) -> Option<Unsettled> {
    let journal = state.journal.as_ref()?;
    let op = match journal.op {
        JournalOp::Save => "save",
        JournalOp::Restore => "restore",
    };
    let command = format!("`tartlab snapshot {op} {}`", journal.snapshot);
    let nodes = journal.nodes.join(", ");
    let pid = super::Busy::now(dir).map(|b| b.pid);
    let words = match (pid, journal.op) {
        (Some(pid), _) => {
            format!("{command} (pid {pid}) is at work on {nodes}; what is shown here may change as it ends")
        }
        (None, JournalOp::Save) => format!(
            "{command} was cut short on {nodes}; the next `tartlab up` or snapshot command finishes it if the snapshot is whole, or else undoes it (the lab's snapshots as before), and starts again the nodes it stopped"
        ),
        (None, JournalOp::Restore) => format!(
            "{command} was cut short on {nodes}; the next `tartlab up` or snapshot command finishes it (the snapshot is intact)"
        ),
    };
    Some(Unsettled {
        op,
        snapshot: journal.snapshot.clone(),
        nodes: journal.nodes.clone(),
        pid,
        words,
    })
}

fn list(args: &FileArgs) -> Result<Exit> {
    let LabSnapshot { lab, dir, state } = LabSnapshot::open(args)?;
    let (_, inventory) = super::inspect::inventory(&lab)?;
    let rows = snapshots::rows(&state, &inventory, &snapshots::lab_hash(&lab));
    let unsettled = unsettled(&dir, &state);
    if args.json {
        out(
            &serde_json::json!({ "lab": lab.name(), "snapshots": rows, "unsettled": unsettled })
                .to_string(),
        );
        return Ok(Exit::Ok);
    }
    if let Some(u) = &unsettled {
        eprintln!("note: {}", u.words);
    }
    if rows.is_empty() {
        eprintln!("the lab has no snapshots; `tartlab snapshot save NAME` makes one");
        return Ok(Exit::Ok);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.at.clone(),
                r.nodes.join(","),
                r.size_gb.map_or("-".into(), |gb| format!("{gb} GB")),
                if r.lab_changed {
                    "changed since"
                } else {
                    "same"
                }
                .into(),
            ]
        })
        .collect();
    out(&ui::table(
        &["SNAPSHOT", "SAVED", "NODES", "SIZE", "LAB FILE"],
        &cells,
    ));
    Ok(Exit::Ok)
}
