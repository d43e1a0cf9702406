//! The lifecycle commands: `up`, `start`, `stop`, `down`, `status` and `plan`. Each loads
//! the lab, takes the lab lock when it changes anything, reads tart once, hands the work to
//! the engine, and prints a recap with the exit code design.md gives.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{
    checked, fatal, out, report_invalid, FileArgs, LabView, EXIT_FAILED, EXIT_INTERRUPTED,
    EXIT_INVALID, EXIT_OK, EXIT_PARTIAL,
};
use crate::engine::watch::{AddressBoard, RunningVms};
use crate::engine::{
    self, base, cache_name, Context, Lab, NodeReport, Observed, Options, Presence, Timeouts,
};
use crate::lab::{self, Node};
use crate::provider::tart::MINIMUM_VERSION;
use crate::provider::Tart;
use crate::state::{KnownHosts, LabDir, LabLock, State, StateStore};
use crate::ui::{self, Mode, Ui};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Only these nodes: names, cluster=NAME, role=NAME or all (default: all)
    pub nodes: Vec<String>,
    /// How many nodes are created and provisioned at once
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub parallel: usize,
    /// Create and boot, but skip provisioning
    #[arg(long)]
    pub no_provision: bool,
    /// Delete and recreate VMs whose image changed (their disks are lost)
    #[arg(long)]
    pub recreate: bool,
    /// Take over VMs with the lab's names that this lab did not create
    #[arg(long)]
    pub adopt: bool,
    /// Run provisioning steps even when unchanged: every step, or only --reprovision=STEP
    #[arg(long, value_name = "STEP", num_args = 0..=1, require_equals = true, default_missing_value = "")]
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
    pub nodes: Vec<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fatal(&format!("cannot start the async runtime: {e}"), ""))
}

/// tart found and recent enough.
async fn find_tart() -> Result<Tart, i32> {
    let tart = Tart::locate().map_err(|e| {
        fatal(
            &format!("cannot find tart: {e}"),
            "install it (`brew install cirruslabs/cli/tart`), or point TARTLAB_TART at it",
        )
    })?;
    let version = tart.version().await.map_err(|e| {
        fatal(
            &format!("tart does not work: {e}"),
            "check the tart installation",
        )
    })?;
    if (version.0, version.1) < MINIMUM_VERSION {
        return Err(fatal(
            &format!(
                "tart {}.{}.{} is too old; tartlab needs {}.{} or newer",
                version.0, version.1, version.2, MINIMUM_VERSION.0, MINIMUM_VERSION.1
            ),
            "update it: `brew upgrade cirruslabs/cli/tart`",
        ));
    }
    Ok(tart)
}

/// The selected VM names in lab order; every selector must match something.
fn select(nodes: &[Node], selectors: &[String]) -> Result<Vec<String>, i32> {
    for selector in selectors {
        if !nodes.iter().any(|n| lab::selects(selector, n)) {
            eprintln!("error: `{selector}` matches no node of the lab");
            eprintln!(
                "  hint: use all, a node name (e.g. {}), cluster=NAME or role=NAME",
                nodes.first().map_or("dev-master", |n| n.vm_name.as_str())
            );
            return Err(EXIT_INVALID);
        }
    }
    Ok(nodes
        .iter()
        .filter(|n| selectors.is_empty() || selectors.iter().any(|s| lab::selects(s, n)))
        .map(|n| n.vm_name.clone())
        .collect())
}

/// Everything a changing command needs: the lab, its directory (locked), its state, tart.
struct Session {
    lab: Lab,
    dir: LabDir,
    state: State,
    tart: Tart,
    observed: Observed,
    lock: LabLock,
}

async fn open_session(args: &FileArgs) -> Result<Session, i32> {
    let (loaded, nodes) = checked(args)?;
    let dir = LabDir::beside(&loaded.source.path, true).map_err(|e| {
        fatal(
            &format!("cannot create .tartlab/ beside the lab file: {e}"),
            "check the directory's permissions",
        )
    })?;
    let lock = dir.lock().map_err(|e| fatal(&e, ""))?;
    let state = dir
        .read_state(&loaded.file.lab)
        .map_err(|e| fatal(&e, ""))?;
    let mut tart = find_tart().await?;
    tart.lock = Some(lock.share());
    let list = tart.list().await.map_err(|e| {
        fatal(
            &format!("cannot list tart's VMs: {e}"),
            "check the tart installation",
        )
    })?;
    Ok(Session {
        lab: Lab {
            file: loaded.file,
            source: loaded.source,
            nodes,
        },
        dir,
        state,
        tart,
        observed: Observed::from_list(list),
        lock,
    })
}

fn context(
    session: Session,
    options: Options,
    ui: Arc<Ui>,
) -> Result<(Arc<Context>, Observed), i32> {
    let key = session
        .dir
        .lab_key()
        .map_err(|e| fatal(&e, "check .tartlab/id_ed25519"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| fatal(&e.to_string(), ""))?;
    let user_keys = engine::user_keys(&session.lab, &public)
        .map_err(|e| fatal(&e, "fix the path in the lab file"))?;
    let addresses = AddressBoard::new(
        session
            .lab
            .nodes
            .iter()
            .map(|n| (n.vm_name.clone(), engine::watch::Address::Pending))
            .collect(),
    );
    let ctx = Context {
        running: RunningVms::start(session.tart.clone()),
        known: KnownHosts::new(&session.dir),
        store: StateStore::new(&session.dir, session.state),
        key: Arc::new(key),
        limit: Semaphore::new(options.parallel.max(1)),
        tart: session.tart,
        lab: session.lab,
        dir: session.dir,
        ui,
        addresses,
        run_options: Default::default(),
        secrets: Default::default(),
        leases: crate::provider::leases::LeaseWatcher::from_env(),
        options,
        timeouts: Timeouts::from_env(),
        user_keys,
        _lock: session.lock,
    };
    Ok((Arc::new(ctx), session.observed))
}

/// Pulls every image the nodes to create need and the cache lacks, once each.
async fn pull_images(tart: &Tart, ui: &Ui, images: Vec<String>) -> Result<(), i32> {
    for image in images {
        ui.info("pull", &format!("{image}: pulling"));
        let progress = |p: u32| ui.info("pull", &format!("{image}: {p}%"));
        tart.pull(&image, progress).await.map_err(|e| {
            fatal(
                &format!("cannot pull {image}: {e}"),
                "check the image name and your network, then run `tartlab up` again",
            )
        })?;
        ui.info("pull", &format!("{image}: pulled"));
    }
    Ok(())
}

/// Refuses, before anything is made or changed, a `disk` that tart would refuse to apply:
/// smaller than the image's disk or the VM's own. Exit 2, located in the lab file.
fn refuse_shrinking_disks(session: &Session, selected: &[String], ui: &Ui) -> Result<(), i32> {
    let problems: Vec<lab::Diagnostic> = session
        .lab
        .nodes
        .iter()
        .filter(|n| selected.contains(&n.vm_name))
        .filter_map(|node| {
            let problem = session
                .observed
                .disk_problem(node, session.state.vms.get(&node.vm_name))?;
            Some(session.lab.source.problem(
                "disk",
                &node.disk?.to_string(),
                0,
                format!("{}: {problem}", node.vm_name),
                "give at least that size, or leave `disk` out to keep the image's".into(),
            ))
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    ui.finish();
    Err(report_invalid(ui.mode() == Mode::Json, &problems))
}

/// The recap: a table on stdout, each failure with its stage, message and hint on stderr;
/// with `--json` one object. Returns the exit code.
fn recap(json: bool, verb: &str, reports: &[NodeReport]) -> i32 {
    let failed = reports.iter().filter(|r| r.failure.is_some()).count();
    let code = match failed {
        0 => EXIT_OK,
        n if n == reports.len() => EXIT_FAILED,
        _ => EXIT_PARTIAL,
    };
    if json {
        out(&serde_json::json!({ "recap": reports, "exit_code": code }).to_string());
        return code;
    }
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let (result, detail) = match &r.failure {
                Some(f) => ("failed".to_string(), format!("at {}", f.stage)),
                None if r.actions.is_empty() => ("ok".to_string(), "unchanged".to_string()),
                None => ("ok".to_string(), r.actions.join(", ")),
            };
            vec![
                r.node.clone(),
                result,
                r.ip.clone().unwrap_or_else(|| "-".into()),
                format!("{:.1}s", r.seconds),
                detail,
            ]
        })
        .collect();
    if !rows.is_empty() {
        out(&ui::table(&["NODE", "RESULT", "IP", "TIME", "DONE"], &rows));
    }
    // A failure that refers to another node's ("see its error above") comes after it.
    let mut failures: Vec<(&NodeReport, &engine::Failure)> = reports
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| (r, f)))
        .collect();
    failures.sort_by_key(|(_, f)| f.caused_by.is_some());
    for (r, f) in failures {
        eprintln!(
            "error: {} failed at stage `{}`: {}",
            r.node, f.stage, f.message
        );
        if !f.hint.is_empty() {
            eprintln!("  hint: {}", f.hint);
        }
    }
    if reports.is_empty() {
        out(&format!("{verb}: nothing to do"));
        return code;
    }
    let ok = reports.len() - failed;
    out(&format!(
        "{verb}: {ok} of {} node{} ok{}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    ));
    code
}

/// Runs the work, or stops at Ctrl-C with the state saved and the VMs running.
async fn interruptible<F>(ui: &Ui, work: F) -> Result<i32, i32>
where
    F: std::future::Future<Output = Result<i32, i32>>,
{
    tokio::select! {
        code = work => code,
        _ = tokio::signal::ctrl_c() => {
            ui.finish();
            eprintln!("interrupted: the VMs keep running and the state is saved; `tartlab up` finishes the lab");
            Ok(EXIT_INTERRUPTED)
        }
    }
}

/// Runs a command's async body; `Err(code)` is an early exit whose message was printed.
fn block_on<F: std::future::Future<Output = Result<i32, i32>>>(work: F) -> i32 {
    match runtime() {
        Ok(rt) => rt.block_on(work).unwrap_or_else(|code| code),
        Err(code) => code,
    }
}

pub fn up(args: &UpArgs) -> i32 {
    let options = Options {
        parallel: args.parallel,
        adopt: args.adopt,
        recreate: args.recreate,
        no_provision: args.no_provision,
        create: true,
        reprovision: args
            .reprovision
            .as_ref()
            .map(|s| Some(s.clone()).filter(|s| !s.is_empty())),
        remove_orphans: args.remove_orphans,
    };
    bring_up(&args.file, &args.nodes, options, "up")
}

pub fn start(args: &NodesArgs) -> i32 {
    let options = Options {
        parallel: 16,
        adopt: false,
        recreate: false,
        no_provision: false,
        create: false,
        reprovision: None,
        remove_orphans: false,
    };
    bring_up(&args.file, &args.nodes, options, "start")
}

fn bring_up(file: &FileArgs, selectors: &[String], options: Options, verb: &'static str) -> i32 {
    block_on(async {
        let session = open_session(file).await?;
        let selected = select(&session.lab.nodes, selectors)?;
        if let Some(Some(step)) = &options.reprovision {
            if !session.lab.file.provision.iter().any(|s| &s.name == step) {
                eprintln!("error: --reprovision={step}: the lab file has no step named `{step}`");
                return Err(EXIT_INVALID);
            }
        }
        let orphans = engine::orphans(&session.lab.nodes, &session.state);
        let orphan_teardown = (options.remove_orphans && !orphans.is_empty())
            .then(|| Teardown::of(&session, &orphans));
        if orphan_teardown.is_none() {
            for vm in &orphans {
                eprintln!("warning: {vm} is an orphan: this lab created it and the lab file no longer declares it; it is kept (`tartlab up --remove-orphans` or `tartlab down {vm}` deletes it)");
            }
        }
        let mut shown = selected.clone();
        if let Some(t) = &orphan_teardown {
            shown.extend(t.names());
        }
        let ui = Ui::new(
            Mode::detect(file.json),
            &shown,
            Some(&session.dir.events_path()),
        );
        let presences: Vec<(String, Presence)> = selected
            .iter()
            .map(|vm| {
                (
                    vm.clone(),
                    session
                        .observed
                        .presence(&session.tart, vm, session.state.vms.get(vm)),
                )
            })
            .collect();
        let mut images: Vec<String> = Vec::new();
        for (vm, presence) in &presences {
            let Some(node) = session.lab.nodes.iter().find(|n| &n.vm_name == vm) else {
                continue;
            };
            let image_changed = session
                .state
                .vms
                .get(vm)
                .is_some_and(|o| o.image != node.image);
            let creates =
                matches!(presence, Presence::Missing) || (options.recreate && image_changed);
            if creates
                && node.image.contains('/')
                && !session
                    .observed
                    .cached
                    .contains_key(&cache_name(&node.image))
                && !images.contains(&node.image)
            {
                images.push(node.image.clone());
            }
        }
        let json = file.json;
        let mut session = session;
        let code = interruptible(&ui, async {
            if !images.is_empty() {
                pull_images(&session.tart, &ui, images).await?;
                // The pulled images' disk sizes, for the check below.
                session.observed = Observed::from_list(session.tart.list().await.map_err(|e| {
                    fatal(
                        &format!("cannot list tart's VMs: {e}"),
                        "check the tart installation",
                    )
                })?);
            }
            refuse_shrinking_disks(&session, &selected, &ui)?;
            let (ctx, observed) = context(session, options, ui.clone())?;
            let started = std::time::Instant::now();
            let removed = match orphan_teardown {
                Some(teardown) => teardown.run(ctx.clone()).await?,
                None => Vec::new(),
            };
            let mut reports = engine::converge(ctx.clone(), &observed, &selected).await;
            if !ctx.options.no_provision {
                engine::provision::run(ctx.clone(), &mut reports).await;
                // Steps run in phases across nodes: a node that ran one was busy until the end.
                for r in reports.iter_mut() {
                    let in_steps = r.actions.iter().any(|a| a.starts_with("ran "))
                        || r.failure
                            .as_ref()
                            .is_some_and(|f| matches!(f.stage, "provision" | "ready"));
                    if in_steps {
                        r.seconds = started.elapsed().as_secs_f64();
                    }
                }
            }
            for r in reports.iter().filter(|r| r.failure.is_none()) {
                let summary = if r.actions.is_empty() {
                    "unchanged".to_string()
                } else {
                    r.actions.join(", ")
                };
                ui.done(&r.node, "ready", &summary);
            }
            reports.extend(removed.into_iter().map(|mut r| {
                if r.failure.is_none() {
                    r.actions = vec!["deleted (orphan)".into()];
                }
                r
            }));
            ui.finish();
            Ok(recap(json, verb, &reports))
        })
        .await;
        ui.finish();
        code
    })
}

pub fn stop(args: &NodesArgs) -> i32 {
    block_on(async {
        let session = open_session(&args.file).await?;
        let selected = select(&session.lab.nodes, &args.nodes)?;
        let running: Vec<String> = selected
            .into_iter()
            .filter(|vm| {
                matches!(
                    session
                        .observed
                        .presence(&session.tart, vm, session.state.vms.get(vm)),
                    Presence::Owned { running: true }
                )
            })
            .collect();
        let ui = Ui::new(
            Mode::detect(args.file.json),
            &running,
            Some(&session.dir.events_path()),
        );
        let json = args.file.json;
        let options = Options::teardown(64);
        let code = interruptible(&ui, async {
            let (ctx, _) = context(session, options, ui.clone())?;
            let reports = engine::stop_all(ctx, running).await;
            ui.finish();
            Ok(recap(json, "stop", &reports))
        })
        .await;
        ui.finish();
        code
    })
}

/// The VMs of the state that `down` deletes: all of them, or those the selectors name (a
/// declared node by name, `cluster=`, `role=`, `all`, or an orphan by its name).
fn select_owned(nodes: &[Node], state: &State, selectors: &[String]) -> Result<Vec<String>, i32> {
    let orphans = engine::orphans(nodes, state);
    let matches = |selector: &str, vm: &str| {
        selector == "all"
            || orphans.iter().any(|o| o == vm && o == selector)
            || nodes
                .iter()
                .any(|n| n.vm_name == vm && lab::selects(selector, n))
    };
    for selector in selectors {
        let known = selector == "all"
            || orphans.contains(selector)
            || nodes.iter().any(|n| lab::selects(selector, n));
        if !known {
            eprintln!("error: `{selector}` matches no node of the lab and no VM it owns");
            let mut names: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
            names.extend(orphans.iter().map(String::as_str));
            eprintln!(
                "  hint: use all, cluster=NAME, role=NAME or a name: {}",
                names.join(", ")
            );
            return Err(EXIT_INVALID);
        }
    }
    Ok(state
        .vms
        .keys()
        .filter(|vm| selectors.is_empty() || selectors.iter().any(|s| matches(s, vm)))
        .cloned()
        .collect())
}

/// The owned VMs among `vms`, sorted by what is to be done with them: delete (with whether
/// they run), forget because they are gone, or forget and leave alone because their MAC
/// changed (they are not the lab's any more).
struct Teardown {
    delete: Vec<(String, bool)>,
    gone: Vec<String>,
    left_alone: Vec<String>,
}

impl Teardown {
    fn of(session: &Session, vms: &[String]) -> Teardown {
        let mut teardown = Teardown {
            delete: Vec::new(),
            gone: Vec::new(),
            left_alone: Vec::new(),
        };
        for vm in vms {
            let record = session.state.vms.get(vm);
            match session.observed.presence(&session.tart, vm, record) {
                Presence::Owned { running } => teardown.delete.push((vm.clone(), running)),
                Presence::Unconfirmed => teardown.delete.push((
                    vm.clone(),
                    session
                        .observed
                        .local
                        .get(vm)
                        .is_some_and(|e| e.is_running()),
                )),
                Presence::Foreign { .. } => teardown.left_alone.push(vm.clone()),
                Presence::Missing => teardown.gone.push(vm.clone()),
            }
        }
        teardown
    }

    fn names(&self) -> Vec<String> {
        self.delete.iter().map(|(vm, _)| vm.clone()).collect()
    }

    /// Forgets the VMs that are gone or no longer the lab's (saying so), then deletes the rest.
    async fn run(self, ctx: Arc<Context>) -> Result<Vec<NodeReport>, i32> {
        let forget: Vec<String> = self.gone.iter().chain(&self.left_alone).cloned().collect();
        if !forget.is_empty() {
            ctx.store
                .update(|s| {
                    for vm in &forget {
                        s.vms.remove(vm);
                    }
                })
                .map_err(|e| fatal(&e, "check that .tartlab/ is writable"))?;
        }
        for vm in &self.left_alone {
            eprintln!("warning: {vm} is no longer the VM this lab created (its MAC changed); it was left alone and forgotten");
        }
        Ok(engine::delete_all(ctx, self.delete).await)
    }
}

pub fn down(args: &NodesArgs) -> i32 {
    block_on(async {
        let session = open_session(&args.file).await?;
        let selected = select_owned(&session.lab.nodes, &session.state, &args.nodes)?;
        let teardown = Teardown::of(&session, &selected);
        let ui = Ui::new(
            Mode::detect(args.file.json),
            &teardown.names(),
            Some(&session.dir.events_path()),
        );
        let json = args.file.json;
        let options = Options::teardown(16);
        let code = interruptible(&ui, async {
            let (ctx, _) = context(session, options, ui.clone())?;
            let reports = teardown.run(ctx).await?;
            ui.finish();
            Ok(recap(json, "down", &reports))
        })
        .await;
        ui.finish();
        code
    })
}

/// One row of `tartlab status`.
#[derive(serde::Serialize)]
struct StatusRow {
    node: String,
    cluster: String,
    role: String,
    state: String,
    ip: Option<String>,
    cpu: u32,
    memory: u32,
    /// A VM the lab created that the lab file no longer declares.
    orphan: bool,
}

/// What to do about orphans, after a table that lists some.
const ORPHAN_NOTE: &str = "orphan: a VM this lab created that the lab file no longer declares; `tartlab up` keeps it, `tartlab up --remove-orphans` or `tartlab down NAME` deletes it";

pub fn status(args: &FileArgs) -> i32 {
    block_on(async {
        let LabView {
            lab_name,
            nodes,
            state,
            ..
        } = LabView::open(args)?;
        let tart = Tart::locate().map_err(|e| {
            fatal(
                &format!("cannot find tart: {e}"),
                "install it, or point TARTLAB_TART at it",
            )
        })?;
        let list = tart.list().await.map_err(|e| {
            fatal(
                &format!("cannot list tart's VMs: {e}"),
                "check the tart installation: `tart list`",
            )
        })?;
        let observed = Observed::from_list(list);
        let mut rows = Vec::new();
        for node in &nodes {
            let owned = state.vms.get(&node.vm_name);
            let presence = observed.presence(&tart, &node.vm_name, owned);
            let (state_word, running) = match presence {
                Presence::Missing => ("missing", false),
                Presence::Owned { running: true } => ("running", true),
                Presence::Owned { running: false } | Presence::Unconfirmed => ("stopped", false),
                Presence::Foreign { .. } => ("foreign", false),
            };
            rows.push(StatusRow {
                node: node.vm_name.clone(),
                cluster: node.cluster.clone(),
                role: node.role.clone(),
                state: state_word.into(),
                ip: owned.and_then(|o| o.ip.clone()).filter(|_| running),
                cpu: owned.map_or(node.cpu, |o| o.cpu),
                memory: owned.map_or(node.memory, |o| o.memory),
                orphan: false,
            });
        }
        let orphans = engine::orphans(&nodes, &state);
        for vm in &orphans {
            let Some(owned) = state.vms.get(vm) else {
                continue;
            };
            let presence = observed.presence(&tart, vm, Some(owned));
            let state_word = match presence {
                Presence::Missing => "missing",
                Presence::Owned { running: true } => "running",
                Presence::Owned { running: false } | Presence::Unconfirmed => "stopped",
                Presence::Foreign { .. } => "foreign",
            };
            rows.push(StatusRow {
                node: vm.clone(),
                cluster: "-".into(),
                role: "-".into(),
                state: state_word.into(),
                ip: owned.ip.clone().filter(|_| state_word == "running"),
                cpu: owned.cpu,
                memory: owned.memory,
                orphan: true,
            });
        }
        if args.json {
            out(&serde_json::json!({ "lab": lab_name, "nodes": rows }).to_string());
            return Ok(EXIT_OK);
        }
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.node.clone(),
                    r.cluster.clone(),
                    r.role.clone(),
                    if r.orphan {
                        format!("{} (orphan)", r.state)
                    } else {
                        r.state.clone()
                    },
                    r.ip.clone().unwrap_or_else(|| "-".into()),
                    r.cpu.to_string(),
                    format!("{} MiB", r.memory),
                ]
            })
            .collect();
        out(&ui::table(
            &["NODE", "CLUSTER", "ROLE", "STATE", "IP", "CPU", "MEMORY"],
            &table,
        ));
        if !orphans.is_empty() {
            out(ORPHAN_NOTE);
        }
        Ok(EXIT_OK)
    })
}

/// What `up` would do to one node.
fn planned_action(
    lab: &Lab,
    tart: &Tart,
    observed: &Observed,
    state: &State,
    keys: &std::collections::HashMap<String, Vec<String>>,
    node: &Node,
) -> String {
    let owned = state.vms.get(&node.vm_name);
    if let Some(problem) = observed.disk_problem(node, owned) {
        return format!("blocked: {problem}");
    }
    match observed.presence(tart, &node.vm_name, owned) {
        Presence::Missing => "create".into(),
        Presence::Unconfirmed => "create (finish an interrupted create)".into(),
        Presence::Foreign { .. } => {
            "blocked: a VM of this name is not the lab's (--adopt takes it over)".into()
        }
        Presence::Owned { running } => {
            let Some(owned) = owned else {
                return "create".into();
            };
            if owned.image != node.image {
                return format!(
                    "blocked: image {} -> {} (--recreate)",
                    owned.image, node.image
                );
            }
            let changes = engine::resource_changes(node, owned);
            if !changes.is_empty() {
                return format!(
                    "{} ({})",
                    if running { "restart" } else { "boot" },
                    changes.join(", ")
                );
            }
            if !running {
                return "boot".into();
            }
            let mut parts = vec![base::identity(&node.hostname)];
            parts.extend(
                lab.file
                    .users
                    .iter()
                    .map(|u| base::user(u, keys.get(&u.name).map_or(&[][..], |k| &k[..]))),
            );
            let mut stale: Vec<String> = parts
                .iter()
                .filter(|p| owned.applied.get(&p.name) != Some(&p.hash))
                .map(|p| p.name.split(':').next().unwrap_or("").to_string())
                .collect();
            let scope = engine::hosts_scope(&lab.file, &lab.nodes, node);
            let entries: Vec<(String, String)> = scope
                .iter()
                .filter_map(|vm| {
                    let ip = state.vms.get(vm)?.ip.clone()?;
                    observed.local.get(vm).filter(|e| e.is_running())?;
                    Some((vm.clone(), ip))
                })
                .collect();
            if owned.applied.get("hosts") != Some(&base::hosts(&entries).hash) {
                stale.push("hosts".into());
            }
            stale.dedup();
            stale.extend(engine::provision::pending(lab, state, node));
            if stale.is_empty() {
                "nothing".into()
            } else {
                format!("provision ({})", stale.join(", "))
            }
        }
    }
}

pub fn plan(args: &FileArgs) -> i32 {
    let (loaded, nodes) = match checked(args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let dir = LabDir::beside(&loaded.source.path, false).ok();
    let state = dir.as_ref().map(|d| d.read_state(&loaded.file.lab));
    let lab = Lab {
        file: loaded.file,
        source: loaded.source,
        nodes,
    };
    let observed = match runtime() {
        Ok(rt) => rt.block_on(async {
            let tart = Tart::locate().map_err(|e| format!("cannot find tart: {e}"))?;
            let list = tart.list().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((tart, Observed::from_list(list)))
        }),
        Err(code) => return code,
    };
    let public = dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.key_path().with_extension("pub")).ok())
        .unwrap_or_default();
    let keys = engine::user_keys(&lab, &public).unwrap_or_default();
    let actions: Vec<String> = match (&observed, &state) {
        (Ok((tart, observed)), Some(Ok(state))) => lab
            .nodes
            .iter()
            .map(|n| planned_action(&lab, tart, observed, state, &keys, n))
            .collect(),
        (Err(e), _) => {
            eprintln!(
                "note: {e}; showing the declared nodes without comparing them with what exists"
            );
            vec!["unknown".into(); lab.nodes.len()]
        }
        (_, Some(Err(e))) => return fatal(e, ""),
        (_, None) => vec!["unknown".into(); lab.nodes.len()],
    };
    let orphans: Vec<(String, crate::state::OwnedVm)> = match &state {
        Some(Ok(state)) => engine::orphans(&lab.nodes, state)
            .into_iter()
            .filter_map(|vm| Some((vm.clone(), state.vms.get(&vm)?.clone())))
            .collect(),
        _ => Vec::new(),
    };
    let orphan_action = "orphan: kept (`up --remove-orphans` or `down NAME` deletes it)";
    if args.json {
        let mut nodes: Vec<serde_json::Value> = lab
            .nodes
            .iter()
            .zip(&actions)
            .map(|(n, a)| {
                let mut v = serde_json::to_value(n).unwrap_or_default();
                v["action"] = serde_json::Value::String(a.clone());
                v
            })
            .collect();
        nodes.extend(orphans.iter().map(|(vm, o)| {
            serde_json::json!({
                "vm_name": vm, "image": o.image, "cpu": o.cpu, "memory": o.memory,
                "disk": o.disk, "network": o.network, "orphan": true, "action": orphan_action,
            })
        }));
        out(&serde_json::json!({ "lab": lab.file.lab, "nodes": nodes }).to_string());
        return EXIT_OK;
    }
    let disk = |d: Option<u32>| d.map_or("image".to_string(), |d| format!("{d} GB"));
    let mut rows: Vec<Vec<String>> = lab
        .nodes
        .iter()
        .zip(&actions)
        .map(|(n, a)| {
            vec![
                n.vm_name.clone(),
                n.cluster.clone(),
                n.role.clone(),
                n.image.clone(),
                n.cpu.to_string(),
                format!("{} MiB", n.memory),
                disk(n.disk),
                n.network.clone(),
                a.clone(),
            ]
        })
        .collect();
    rows.extend(orphans.iter().map(|(vm, o)| {
        vec![
            vm.clone(),
            "-".into(),
            "-".into(),
            o.image.clone(),
            o.cpu.to_string(),
            format!("{} MiB", o.memory),
            disk(o.disk),
            o.network.clone(),
            orphan_action.into(),
        ]
    }));
    out(&format!(
        "lab `{}`: {} nodes (hostname = VM name)",
        lab.file.lab,
        lab.nodes.len()
    ));
    out(&ui::table(
        &[
            "VM", "CLUSTER", "ROLE", "IMAGE", "CPU", "MEMORY", "DISK", "NETWORK", "ACTION",
        ],
        &rows,
    ));
    EXIT_OK
}
