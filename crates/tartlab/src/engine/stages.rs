//! The stages one node goes through, each a small function with its own timeout, failure
//! message and hint: check ownership, create, configure, boot, wait for an IP, connect over
//! SSH, base provisioning. Also the stop and delete paths.

use std::io::Write;
use std::time::{Duration, Instant};

use super::base::{self, Part};
use super::watch::Address;
use super::{resource_changes, Context, Failure, NodeReport, Presence};
use crate::guest::quote;
use crate::guest::ssh::{self, Auth, Session, SshError};
use crate::lab::Node;
use crate::provider::tart::last_lines;
use crate::state::OwnedVm;

/// The whole `up` of one node, recording what it did in `report`.
pub async fn run_node(
    ctx: &Context,
    vm: &str,
    presence: Presence,
    report: &mut NodeReport,
) -> Result<(), Failure> {
    let node = ctx
        .node(vm)
        .ok_or_else(|| Failure::new("check", format!("{vm} is not in the lab file"), ""))?
        .clone();
    let mut running = match presence {
        Presence::Foreign { running } => {
            if !ctx.options.adopt {
                return Err(Failure::new(
                    "check",
                    format!("a VM named {vm} exists, and this lab did not create it; it was left untouched"),
                    "another lab or a hand-made VM has this name: give this lab's VMs their own names with `vm_prefix` (e.g. `vm_prefix: mylab-`) or another cluster or node name; if it is this lab's own VM whose state was lost, `tartlab up --adopt` takes it over",
                ));
            }
            adopt(ctx, &node).await?;
            report.actions.push("adopted".into());
            running
        }
        Presence::Missing => {
            if !ctx.options.create {
                return Err(Failure::new(
                    "check",
                    format!("{vm} does not exist"),
                    "`tartlab up` creates it",
                ));
            }
            create(ctx, &node, true).await?;
            report.actions.push("created".into());
            false
        }
        Presence::Unconfirmed => {
            create(ctx, &node, false).await?;
            report.actions.push("created".into());
            false
        }
        Presence::Owned { running } => running,
    };
    let owned = ctx.store.vm(vm).unwrap_or_default();
    if owned.image != node.image {
        if !ctx.options.recreate {
            return Err(Failure::new(
                "check",
                format!("{vm} was made from {}, the lab file now says {}", owned.image, node.image),
                "a VM cannot change its image: `tartlab up --recreate` deletes and recreates it (its disk is lost)",
            ));
        }
        delete(ctx, vm, running).await?;
        create(ctx, &node, true).await?;
        report.actions.push("recreated".into());
        running = false;
    }
    let owned = ctx.store.vm(vm).unwrap_or_default();
    let changes = resource_changes(&node, &owned);
    if !changes.is_empty() {
        if running {
            ctx.ui.started(
                vm,
                "stop",
                &format!("restart to apply {}", changes.join(", ")),
            );
            stop_gracefully(ctx, vm).await?;
            running = false;
        }
        configure(ctx, &node, &owned).await?;
        report.actions.push(changes.join(", "));
    }
    let mut run_child = None;
    if !running {
        run_child = Some(boot(ctx, &node).await?);
        report.actions.push("booted".into());
    }
    let booted = run_child.is_some();
    let result = reach_and_provision(ctx, &node, run_child.as_mut(), &owned, report).await;
    match result {
        // A VM booted now that never became reachable is stopped, so the next `up` starts
        // it afresh instead of waiting on the same broken boot.
        Err(mut failure) if booted && matches!(failure.stage, "ip" | "ssh") => {
            let _ = ctx.tart.output(&["stop", vm, "--timeout", "5"]).await;
            failure
                .message
                .push_str(&format!("\n{vm} was stopped; `tartlab up` boots it again"));
            Err(failure)
        }
        other => other,
    }
}

/// The address, then SSH and the base provisioning.
async fn reach_and_provision(
    ctx: &Context,
    node: &Node,
    run_child: Option<&mut tokio::process::Child>,
    owned: &OwnedVm,
    report: &mut NodeReport,
) -> Result<(), Failure> {
    let vm = &node.vm_name;
    let booted = run_child.is_some();
    // A VM that was already running keeps its lease (same MAC): no `tart ip` needed.
    let ip = match (booted, owned.ip.clone()) {
        (false, Some(ip)) => ip,
        _ => wait_for_ip(ctx, node, run_child, owned.ip.as_deref()).await?,
    };
    report.ip = Some(ip.clone());
    ctx.addresses.publish(vm, Address::Known(ip.clone()));
    if ctx.options.no_provision {
        return Ok(());
    }
    // A VM booted now is ready when SSH answers: `tart ip` may return the lease of its
    // previous boot at once (tart reads the lease file, not the VM).
    provision_base(ctx, node, &ip, booted, report).await
}

/// The hint for a failed write of the state, the pinned keys or the logs.
pub(super) const WRITABLE: &str = "check that .tartlab/ is writable and the disk is not full";

fn tart_failure(stage: &'static str, e: crate::provider::TartError, hint: &str) -> Failure {
    Failure::new(stage, e.to_string(), hint)
}

async fn adopt(ctx: &Context, node: &Node) -> Result<(), Failure> {
    let vm = &node.vm_name;
    let settings = ctx.tart.get(vm).await.map_err(|e| {
        tart_failure(
            "adopt",
            e,
            "check that tart can read it: `tart get` with its name",
        )
    })?;
    let mac = ctx.tart.mac(vm).ok_or_else(|| {
        Failure::new(
            "adopt",
            format!("cannot read the MAC address of {vm}"),
            "check that tart's VM directory is readable",
        )
    })?;
    ctx.known
        .pin(vm, &[])
        .map_err(|e| Failure::new("adopt", e, WRITABLE))?;
    ctx.store
        .update(|s| {
            s.vms.insert(
                vm.clone(),
                OwnedVm {
                    mac: Some(mac),
                    image: node.image.clone(),
                    cpu: settings.cpu,
                    memory: settings.memory,
                    disk: node.disk,
                    network: node.network.clone(),
                    ip: None,
                    applied: Default::default(),
                    outputs: Default::default(),
                },
            );
        })
        .map_err(|e| Failure::new("adopt", e, WRITABLE))
}

/// Records the intent, clones (unless the clone is already there), gives the VM its own MAC
/// and size, and records the MAC that makes it the lab's.
async fn create(ctx: &Context, node: &Node, clone: bool) -> Result<(), Failure> {
    let vm = &node.vm_name;
    let _permit = ctx.limit.acquire().await;
    ctx.ui
        .started(vm, "create", &format!("tart clone {}", node.image));

    ctx.store
        .update(|s| {
            s.vms.insert(
                vm.clone(),
                OwnedVm {
                    mac: None,
                    image: node.image.clone(),
                    cpu: node.cpu,
                    memory: node.memory,
                    disk: node.disk,
                    network: node.network.clone(),
                    ip: None,
                    applied: Default::default(),
                    outputs: Default::default(),
                },
            );
        })
        .map_err(|e| Failure::new("create", e, WRITABLE))?;
    ctx.known
        .pin(vm, &[])
        .map_err(|e| Failure::new("create", e, WRITABLE))?;
    if clone {
        let args = ["clone", node.image.as_str(), vm.as_str()];
        let cloning = ctx.tart.output(&args);
        tokio::time::timeout(ctx.timeouts.create, cloning)
            .await
            .map_err(|_| {
                Failure::new(
                    "create",
                    format!("`tart clone {} {vm}` did not finish within {} s", node.image, ctx.timeouts.create.as_secs()),
                    "it goes on by itself; check the free disk space, then `tartlab up` again (or raise TARTLAB_CREATE_TIMEOUT)",
                )
            })?
            .map_err(|e| {
                tart_failure(
                    "create",
                    e,
                    "check the image name and the free disk space (`tart list`)",
                )
            })?;
    }
    let mut args = vec![
        "set".to_string(),
        vm.clone(),
        "--random-mac".into(),
        "--cpu".into(),
        node.cpu.to_string(),
        "--memory".into(),
        node.memory.to_string(),
    ];
    if let Some(disk) = node.disk {
        args.extend(["--disk-size".into(), disk.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ctx.tart.output(&args).await.map_err(|e| {
        tart_failure(
            "create",
            e,
            "the clone exists but could not be sized; `tartlab up` tries again",
        )
    })?;
    let mac = ctx.tart.mac(vm).ok_or_else(|| {
        Failure::new(
            "create",
            format!("cannot read the MAC address of {vm}"),
            "check that tart's VM directory is readable",
        )
    })?;
    ctx.store
        .update_vm(vm, |o| o.mac = Some(mac))
        .map_err(|e| Failure::new("create", e, WRITABLE))
}

/// Applies new cpu, memory or disk to a stopped VM.
async fn configure(ctx: &Context, node: &Node, owned: &OwnedVm) -> Result<(), Failure> {
    let vm = &node.vm_name;
    let mut args = vec!["set".to_string(), vm.clone()];
    if node.cpu != owned.cpu {
        args.extend(["--cpu".into(), node.cpu.to_string()]);
    }
    if node.memory != owned.memory {
        args.extend(["--memory".into(), node.memory.to_string()]);
    }
    if let Some(disk) = node.disk.filter(|d| owned.disk != Some(*d)) {
        args.extend(["--disk-size".into(), disk.to_string()]);
    }
    if args.len() > 2 {
        ctx.ui.started(vm, "configure", &args[2..].join(" "));
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        ctx.tart.output(&words).await.map_err(|e| {
            tart_failure("configure", e, "tart can grow a disk but never shrink it")
        })?;
    }
    ctx.store
        .update_vm(vm, |o| {
            o.cpu = node.cpu;
            o.memory = node.memory;
            o.disk = node.disk.or(o.disk);
            o.network = node.network.clone();
        })
        .map_err(|e| Failure::new("configure", e, WRITABLE))
}

/// The `tart run` flags for a network mode, each checked against `tart run --help`.
async fn network_flags(ctx: &Context, network: &str) -> Result<Vec<String>, Failure> {
    let options = ctx
        .run_options
        .get_or_try_init(|| ctx.tart.run_options())
        .await
        .map_err(|e| tart_failure("boot", e, "check the tart installation"))?;
    let flags: Vec<String> = match network.split_once(':') {
        Some(("bridged", interface)) => vec!["--net-bridged".into(), interface.into()],
        _ if network == "softnet" => vec!["--net-softnet".into()],
        _ if network == "host" => vec!["--net-host".into()],
        _ => Vec::new(),
    };
    for flag in flags
        .iter()
        .filter(|f| f.starts_with("--"))
        .chain(["--no-graphics".to_string()].iter())
    {
        if !options.contains(flag) {
            return Err(Failure::new(
                "boot",
                format!("this tart's `run` has no {flag} option (it is not in `tart run --help`)"),
                "update tart (`brew upgrade cirruslabs/cli/tart`), or choose another network mode",
            ));
        }
    }
    Ok(flags)
}

/// Starts `tart run` detached, after removing a stale control socket (tart #1220).
async fn boot(ctx: &Context, node: &Node) -> Result<tokio::process::Child, Failure> {
    let vm = &node.vm_name;
    let flags = network_flags(ctx, &node.network).await?;
    ctx.ui.started(vm, "boot", "tart run --no-graphics");
    let socket = ctx.tart.vm_dir(vm).join("control.sock");
    if socket.exists() {
        let _ = std::fs::remove_file(&socket);
    }
    let log = ctx.dir.run_log(vm);
    ctx.tart.spawn_run(vm, &flags, &log).map_err(|e| {
        Failure::new(
            "boot",
            format!("cannot start `tart run {vm}`: {e}"),
            format!("see {}", log.display()),
        )
    })
}

/// The VM's address: `tart ip --wait` while watching that `tart run` stays alive.
async fn wait_for_ip(
    ctx: &Context,
    node: &Node,
    run_child: Option<&mut tokio::process::Child>,
    known: Option<&str>,
) -> Result<String, Failure> {
    let vm = node.vm_name.as_str();
    let wait = if run_child.is_some() || known.is_none() {
        ctx.timeouts.ip
    } else {
        5
    };
    let mac = ctx.store.vm(vm).and_then(|o| o.mac);
    let dhcp = !node.network.starts_with("bridged");
    let mut lookup = match (&ctx.leases, mac, dhcp) {
        // One watcher of the lease file answers every node, within 100 ms of the lease.
        (Some(watcher), Some(mac), true) => {
            ctx.ui.started(vm, "ip", "waiting for its DHCP lease");
            let watcher = watcher.clone();
            let file = crate::provider::leases::lease_file();
            tokio::spawn(async move {
                match watcher
                    .address(&mac, Duration::from_secs(u64::from(wait)))
                    .await
                {
                    Some(ip) => Ok(ip.to_string()),
                    None => Err(format!("no lease for its MAC {mac} in {}", file.display())),
                }
            })
        }
        _ => {
            ctx.ui.started(vm, "ip", "tart ip --wait");
            let child = ctx.tart.spawn_ip(vm, wait).map_err(|e| {
                Failure::new(
                    "ip",
                    format!("cannot run `tart ip {vm}`: {e}"),
                    "check that tart is installed",
                )
            })?;
            let tart = ctx.tart.clone();
            let name = vm.to_string();
            tokio::spawn(async move {
                tart.ip_result(&name, child)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    };
    let log = ctx.dir.run_log(vm);
    let result = match run_child {
        None => (&mut lookup).await,
        Some(run) => loop {
            tokio::select! {
                result = &mut lookup => break result,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    if let Ok(Some(status)) = run.try_wait() {
                        let text = std::fs::read_to_string(&log).unwrap_or_default();
                        // Started moments ago by a tartlab that was killed: tart takes its
                        // lock late, so `tart list` still said stopped. Wait on that boot.
                        if status.code() == Some(2) && last_lines(&text, 1).contains("is already running") {
                            break lookup.await;
                        }
                        lookup.abort();
                        return Err(Failure::new(
                            "ip",
                            format!("`tart run {vm}` exited ({status}) before the VM got an IP address; last lines of its log:\n{}", last_lines(&text, 10)),
                            format!("the whole log is {}", log.display()),
                        ));
                    }
                }
            }
        },
    };
    let ip = match result {
        Ok(Ok(ip)) => ip,
        Ok(Err(e)) => {
            return Err(Failure::new(
                "ip",
                format!("no IP address for {vm} within {wait} s: {e}"),
                format!("the VM runs but took no DHCP lease; see {} and check the host's DHCP lease time (tart's FAQ), or raise TARTLAB_IP_TIMEOUT", log.display()),
            ))
        }
        Err(e) => return Err(Failure::new("ip", format!("`tart ip` did not finish: {e}"), "")),
    };
    ctx.store
        .update_vm(vm, |o| o.ip = Some(ip.clone()))
        .map_err(|e| Failure::new("ip", e, WRITABLE))?;
    ctx.ui.done(vm, "ip", &ip);
    Ok(ip)
}

/// Logs one remote command (as `shown`), its status and output in the node's provisioning
/// transcript, with every secret output masked.
pub(super) fn transcript(
    ctx: &Context,
    vm: &str,
    shown: &str,
    output: Option<&ssh::Output>,
    error: Option<&str>,
) {
    let path = ctx.dir.provision_log(vm);
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let mut text = format!("=== {} {vm}\n$ {shown}\n", crate::state::now_rfc3339());
    if let Some(out) = output {
        let status = out
            .status
            .map_or("none (killed or disconnected)".to_string(), |s| {
                s.to_string()
            });
        text.push_str(&format!("[exit status {status}]\n{}", out.stdout_text()));
        if !out.stderr.is_empty() {
            text.push_str(&format!("[stderr]\n{}", out.stderr_text()));
        }
    }
    if let Some(e) = error {
        text.push_str(&format!("[error] {e}\n"));
    }
    let _ = file.write_all(ctx.mask(&text).as_bytes());
}

/// Runs a command on the node, logged; a failure (at `stage`) carries the output's last lines.
pub(super) async fn remote(
    ctx: &Context,
    session: &Session,
    vm: &str,
    stage: &'static str,
    what: &str,
    command: &str,
    stdin: Option<&str>,
) -> Result<ssh::Output, Failure> {
    remote_shown(ctx, session, vm, stage, what, command, command, stdin).await
}

/// `remote`, logging `shown` instead of the command itself (e.g. the script it feeds).
/// What the command says it waits for (`tartlab-note:` lines) is shown as it happens.
#[allow(clippy::too_many_arguments)]
pub(super) async fn remote_shown(
    ctx: &Context,
    session: &Session,
    vm: &str,
    stage: &'static str,
    what: &str,
    command: &str,
    shown: &str,
    stdin: Option<&str>,
) -> Result<ssh::Output, Failure> {
    let log = ctx.dir.provision_log(vm);
    let hint = format!("the whole transcript is in {}", log.display());
    let on_note = |note: &str| ctx.ui.started(vm, stage, &format!("{what}: {note}"));
    let running = session.exec_noting(command, stdin.map(str::as_bytes), &on_note);
    let limit = ctx.timeouts.command;
    let result = match tokio::time::timeout(limit, running).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "did not finish within {} s (TARTLAB_COMMAND_TIMEOUT)",
            limit.as_secs()
        )),
    };
    match result {
        Err(e) => {
            transcript(ctx, vm, shown, None, Some(&e));
            Err(Failure::new(stage, format!("{what}: {e}"), hint))
        }
        Ok(out) => {
            ctx.learn_secrets(&out.stdout_text());
            transcript(ctx, vm, shown, Some(&out), None);
            if out.success() {
                return Ok(out);
            }
            let text = ctx.mask(&format!("{}{}", out.stdout_text(), out.stderr_text()));
            let hint = if text.contains("a password is required") {
                format!("the login user needs passwordless sudo on the image; {hint}")
            } else {
                hint
            };
            Err(Failure::new(
                stage,
                format!(
                    "{what} failed (exit status {}):\n{}",
                    out.status.map_or("none".into(), |s| s.to_string()),
                    last_lines(&text, 8)
                ),
                hint,
            ))
        }
    }
}

/// Connects as the login user with the lab key, installing the key with the login password
/// first if needed. Pins the host key on first contact.
pub(super) async fn connect(ctx: &Context, node: &Node, ip: &str) -> Result<Session, Failure> {
    let vm = &node.vm_name;
    let user = &node.login.user;
    ctx.ui.started(vm, "ssh", &format!("{user}@{ip}"));
    let deadline = Instant::now() + ctx.timeouts.ssh;
    let key_installed = ctx
        .store
        .vm(vm)
        .is_some_and(|o| o.applied.contains_key("lab-key"));
    let mut use_key = key_installed;
    let mut installed_now = false;
    loop {
        let pinned = ctx.known.pinned(vm);
        let first_contact = pinned.is_empty();
        let auth = if use_key {
            Auth::Key(&ctx.key)
        } else {
            Auth::Password(&node.login.password)
        };
        let attempt_timeout = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_secs(1), Duration::from_secs(15));
        match ssh::connect(ip, user, auth, pinned, attempt_timeout).await {
            Ok(session) => {
                if first_contact {
                    if let Some(key) = &session.host_key {
                        ctx.known
                            .pin(vm, std::slice::from_ref(key))
                            .map_err(|e| Failure::new("ssh", e, WRITABLE))?;
                    }
                }
                if use_key {
                    if installed_now || !key_installed {
                        ctx.store
                            .update_vm(vm, |o| {
                                o.applied.insert("lab-key".into(), "installed".into());
                            })
                            .map_err(|e| Failure::new("ssh", e, WRITABLE))?;
                    }
                    ctx.ui.done(vm, "ssh", &format!("{user}@{ip}"));
                    return Ok(session);
                }
                install_lab_key(ctx, &session, vm).await?;
                session.close().await;
                use_key = true;
                installed_now = true;
            }
            Err(SshError::AuthRejected) if use_key && !installed_now => use_key = false,
            Err(SshError::AuthRejected) if use_key => {
                return Err(Failure::new(
                    "ssh",
                    format!("{user}@{ip} refused the lab key right after it was installed"),
                    format!("look at the guest's sshd settings (AuthorizedKeysFile, PubkeyAuthentication); {}", ctx.dir.provision_log(vm).display()),
                ))
            }
            Err(SshError::AuthRejected) => {
                return Err(Failure::new(
                    "ssh",
                    format!("{user}@{ip} refused the login password"),
                    "set defaults.login (user and password) to the image's own account; the cirruslabs images use admin/admin",
                ))
            }
            Err(SshError::HostKeyChanged { presented }) => {
                return Err(Failure::new(
                    "ssh",
                    format!("{vm} at {ip} presented a host key other than the one pinned for it ({presented}); nothing was sent to it"),
                    format!("if you recreated {vm} outside tartlab, remove its lines from {}; otherwise another machine may answer at {ip}", ctx.dir.known_hosts_path().display()),
                ))
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(Failure::new(
                        "ssh",
                        format!("sshd on {vm} ({ip}:22) did not answer within {} s: {e}", ctx.timeouts.ssh.as_secs()),
                        format!("the VM has an address but no SSH yet; look at {} and at the VM's console (`tart run {vm}` without --no-graphics), or raise TARTLAB_SSH_TIMEOUT", ctx.dir.run_log(vm).display()),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

async fn install_lab_key(ctx: &Context, session: &Session, vm: &str) -> Result<(), Failure> {
    let public = ctx
        .key
        .public_key()
        .to_openssh()
        .map_err(|e| Failure::new("ssh", e.to_string(), ""))?;
    let script = "umask 077; mkdir -p ~/.ssh; touch ~/.ssh/authorized_keys; grep -qxF \"$1\" ~/.ssh/authorized_keys || printf '%s\\n' \"$1\" >> ~/.ssh/authorized_keys";
    let command = quote::command(&["/bin/sh", "-c", script, "tartlab", public.trim()]);
    remote(
        ctx,
        session,
        vm,
        "ssh",
        "installing the lab key",
        &command,
        None,
    )
    .await
    .map(|_| ())
}

/// Hostname, machine identity, users and /etc/hosts, each only when its inputs changed.
async fn provision_base(
    ctx: &Context,
    node: &Node,
    ip: &str,
    must_connect: bool,
    report: &mut NodeReport,
) -> Result<(), Failure> {
    let vm = &node.vm_name;
    let applied = ctx.store.vm(vm).map(|o| o.applied).unwrap_or_default();
    let mut parts = vec![base::identity(&node.hostname)];
    for user in &ctx.lab.file.users {
        let keys = ctx.user_keys.get(&user.name).cloned().unwrap_or_default();
        parts.push(base::user(user, &keys));
    }
    parts.retain(|p| applied.get(&p.name) != Some(&p.hash));
    let mut session = None;
    let mut done = Vec::new();
    if !parts.is_empty() || must_connect {
        let _permit = ctx.limit.acquire().await;
        let s = connect(ctx, node, ip).await?;
        if !parts.is_empty() {
            ctx.ui
                .started(vm, "base", "hostname, machine-id, host keys, users");
        }
        for part in &parts {
            apply(ctx, &s, vm, part).await?;
            done.push(part.name.split(':').next().unwrap_or("").to_string());
        }
        session = Some(s);
    }
    let scope = super::hosts_scope(&ctx.lab.file, &ctx.lab.nodes, node);
    ctx.ui.started(
        vm,
        "hosts",
        &format!("waiting for the addresses of {} node(s)", scope.len()),
    );
    let entries = ctx.addresses.settled(&scope).await;
    let hosts = base::hosts(&entries);
    if applied.get("hosts") != Some(&hosts.hash) {
        let s = match session.take() {
            Some(s) => s,
            None => {
                let _permit = ctx.limit.acquire().await;
                connect(ctx, node, ip).await?
            }
        };
        apply(ctx, &s, vm, &hosts).await?;
        done.push("hosts".into());
        session = Some(s);
    }
    let uploaded = super::provision::upload_files(ctx, node, ip, &mut session).await?;
    if !uploaded.is_empty() {
        done.push(format!("files {}", uploaded.join(" ")));
    }
    if let Some(s) = session {
        s.close().await;
    }
    done.dedup();
    if !done.is_empty() {
        report
            .actions
            .push(format!("provisioned {}", done.join(", ")));
    }
    Ok(())
}

/// The public keys a command printed, one per line; at least one.
fn printed_keys(vm: &str, out: &ssh::Output) -> Result<Vec<russh::keys::PublicKey>, Failure> {
    let keys: Vec<_> = out
        .stdout_text()
        .lines()
        .filter_map(|l| russh::keys::PublicKey::from_openssh(l.trim()).ok())
        .collect();
    if keys.is_empty() {
        return Err(Failure::new(
            "base",
            format!("{vm} printed no SSH host keys"),
            "check that ssh-keygen works on the image; the provisioning transcript shows what ran",
        ));
    }
    Ok(keys)
}

async fn apply(ctx: &Context, session: &Session, vm: &str, part: &Part) -> Result<(), Failure> {
    if part.name == "identity" {
        // Pin the VM's new host keys next to the current ones before sshd presents them.
        let out = remote(
            ctx,
            session,
            vm,
            "base",
            "making new host keys",
            &base::stage_host_keys(),
            None,
        )
        .await?;
        let mut keys = ctx.known.pinned(vm);
        keys.extend(printed_keys(vm, &out)?);
        ctx.known
            .pin(vm, &keys)
            .map_err(|e| Failure::new("base", e, WRITABLE))?;
    }
    let out = remote(
        ctx,
        session,
        vm,
        "base",
        &part.name,
        &part.command,
        part.stdin.as_deref(),
    )
    .await?;
    if part.name == "identity" {
        let keys = printed_keys(vm, &out)?;
        ctx.known
            .pin(vm, &keys)
            .map_err(|e| Failure::new("base", e, WRITABLE))?;
    }
    ctx.store
        .update_vm(vm, |o| {
            o.applied.insert(part.name.clone(), part.hash.clone());
        })
        .map_err(|e| Failure::new("base", e, WRITABLE))
}

/// A shutdown from inside the guest, waiting for `tart run` to end; `tart stop` if it does
/// not in time. Returns how it stopped.
pub async fn stop_gracefully(ctx: &Context, vm: &str) -> Result<String, Failure> {
    ctx.ui.started(vm, "stop", "shutdown from the guest");
    let owned = ctx.store.vm(vm).unwrap_or_default();
    let login = ctx.node(vm).map(|n| n.login.clone());
    let mut asked = false;
    if let (Some(ip), Some(login)) = (owned.ip.as_deref(), login) {
        let pinned = ctx.known.pinned(vm);
        if let Ok(session) = ssh::connect(
            ip,
            &login.user,
            Auth::Key(&ctx.key),
            pinned,
            Duration::from_secs(10),
        )
        .await
        {
            let command = "sudo -n shutdown -h now";
            let out = session.exec(command, None).await;
            transcript(
                ctx,
                vm,
                command,
                out.as_ref().ok(),
                out.as_ref().err().map(String::as_str),
            );
            asked = out.is_ok_and(|o| o.success());
            session.close().await;
        }
    }
    if asked && ctx.running.wait_stopped(vm, ctx.timeouts.stop).await {
        return Ok("shut down".into());
    }
    ctx.ui.started(vm, "stop", "tart stop");
    match ctx.tart.output(&["stop", vm, "--timeout", "10"]).await {
        Ok(_) => {}
        // Exit 2: it is not running (any more).
        Err(e) if e.code == Some(2) => return Ok("already stopped".into()),
        Err(e) => return Err(tart_failure("stop", e, "stop it yourself with `tart stop`")),
    }
    if ctx.running.wait_stopped(vm, Duration::from_secs(15)).await {
        Ok("stopped (tart stop)".into())
    } else {
        Err(Failure::new(
            "stop",
            format!("{vm} still runs after `tart stop`"),
            format!(
                "look for its `tart run` process (see {})",
                ctx.dir.run_log(vm).display()
            ),
        ))
    }
}

/// Stops (hard: it is being deleted) and deletes an owned VM, then forgets it.
pub async fn delete(ctx: &Context, vm: &str, running: bool) -> Result<(), Failure> {
    if running {
        ctx.ui.started(vm, "stop", "tart stop");
        if let Err(e) = ctx.tart.output(&["stop", vm, "--timeout", "5"]).await {
            if e.code != Some(2) {
                return Err(tart_failure(
                    "stop",
                    e,
                    "stop it yourself with `tart stop`, then run `tartlab down` again",
                ));
            }
        }
    }
    ctx.ui.started(vm, "delete", "tart delete");
    // `tart stop` can return before the VM's lock is released (its SIGKILL path): retry.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ctx.tart.output(&["delete", vm]).await {
            Ok(_) => break,
            Err(e) if e.code == Some(2) => break,
            Err(e) if Instant::now() < deadline && e.output.contains("is running") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(tart_failure(
                    "delete",
                    e,
                    "delete it yourself with `tart delete`",
                ))
            }
        }
    }
    ctx.known
        .pin(vm, &[])
        .map_err(|e| Failure::new("delete", e, WRITABLE))?;
    ctx.store
        .update(|s| {
            s.vms.remove(vm);
        })
        .map_err(|e| Failure::new("delete", e, WRITABLE))
}
