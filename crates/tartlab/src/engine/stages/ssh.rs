//! Logging in to a node: with the lab key once it is installed, with the image's password
//! before (the base stage then installs the key in the same session). The host key is pinned
//! on first contact and checked ever after. A VM booted in this run is ready only once SSH
//! answers: `Connect` waits for it, as the requirement "sshd answers" (requirements.rs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{NodeRun, NodeStage};
use crate::dial::{Dialer, SshRoute};
use crate::engine::events::Stage;
use crate::engine::inputs;
use crate::engine::operations::address::console_log;
use crate::engine::requirements::{Check, Requirement, Unmet};
use crate::engine::{Context, Failure, WRITABLE};
use crate::guest::runner::GuestSession;
use crate::guest::ssh::{self, Auth, Connection, FirstContact, HostKeys, Pins, SshError};
use crate::lab::Node;
use crate::provider::BoxFuture;
use russh::keys::PublicKey;

pub struct Connect;

impl NodeStage for Connect {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            if run.booted && run.provisioning(ctx) {
                run.hold_slot(ctx).await;
                run.guest(ctx).await?;
            }
            Ok(())
        })
    }
}

/// Logs in as the node's login user, retrying until sshd answers or the SSH timeout passes.
pub async fn connect(ctx: &Context, node: &Node, ip: &str) -> Result<GuestSession, Failure> {
    let vm = &node.vm_name;
    let user = &node.login.user;
    ctx.reporter
        .started(vm, Stage::Ssh, &format!("{user}@{ip}"));
    let dialer = ctx.provider.dialer(vm, ip);
    let way = dialer.describe();
    let key_installed = ctx
        .store
        .vm(vm)
        .is_some_and(|o| o.applied.contains_key(inputs::LAB_KEY));
    let login = Login {
        ctx,
        node,
        ip,
        dialer: dialer.as_ref(),
        use_key: AtomicBool::new(key_installed),
        stalled: AtomicBool::new(false),
    };
    let sshd_answers = Requirement {
        name: format!("sshd on {vm} ({way}) answers"),
        hint: format!("the VM has an address but no SSH yet; look at its console output (`tartlab logs {vm}`), or raise TARTLAB_SSH_TIMEOUT"),
        log: console_log(ctx, vm),
        timeout: ctx.timeouts.ssh,
        interval: Duration::from_millis(300),
    };
    // sshd starts a moment after the lease: a direct TCP dial that is refused costs nothing,
    // so for the first 2 s it is tried every 50 ms, not every 300 (a tunnel through a
    // controller keeps the slower pace).
    let eager = matches!(dialer.route(), SshRoute::Direct { .. })
        .then_some((Duration::from_millis(50), Duration::from_secs(2)));
    let connection = sshd_answers
        .wait_eagerly_for(eager, |left| login.attempt(left.min(Duration::from_secs(15))))
        .await
        .map_err(|unmet| match unmet {
            Unmet::Fatal(failure) => failure,
            Unmet::TimedOut { last } if login.stalled.load(Ordering::SeqCst) => Failure::new(
                Stage::Ssh,
                format!(
                    "sshd on {vm} ({way}) answered, but no login finished within {} s: {last}",
                    ctx.timeouts.ssh.as_secs()
                ),
                "something in the guest's login hangs (PAM, NSS, a profile script): look at its auth log on the VM's console",
            ),
            Unmet::TimedOut { last } => sshd_answers.failure(
                Stage::Ssh,
                format!(
                    "sshd on {vm} ({way}) did not answer within {} s: {last}",
                    sshd_answers.secs()
                ),
            ),
        })?;
    ctx.reporter.done(vm, Stage::Ssh, &format!("{user}@{ip}"));
    Ok(GuestSession::new(
        vm,
        connection,
        ctx.dir.provision_log(vm),
        ctx.timeouts.command,
        ctx.masker.clone(),
    ))
}

/// Logging in to one node: with the lab key while it works, else the image's password.
struct Login<'a> {
    ctx: &'a Context,
    node: &'a Node,
    ip: &'a str,
    dialer: &'a dyn Dialer,
    use_key: AtomicBool,
    /// Whether sshd answered but a login did not finish in time.
    stalled: AtomicBool,
}

impl Login<'_> {
    /// One attempt, within `time`, and what it means for the wait.
    async fn attempt(&self, time: Duration) -> Check<Connection, Failure> {
        let (ctx, vm, ip) = (self.ctx, &self.node.vm_name, self.ip);
        let user = &self.node.login.user;
        let with_key = self.use_key.load(Ordering::SeqCst);
        let auth = if with_key {
            Auth::Key(&ctx.key)
        } else {
            Auth::Password(&self.node.login.password)
        };
        // The key it meets at a first contact is pinned before anything is sent.
        let pin = |key: &PublicKey| {
            ctx.known
                .pin(vm, std::slice::from_ref(key))
                .map_err(String::from)
        };
        let keys = Pins::of(ctx.known.pinned(vm)).map_or_else(
            || HostKeys::FirstContact(FirstContact::pinning(&pin)),
            HostKeys::Pinned,
        );
        match ssh::connect(self.dialer, user, auth, keys, time).await {
            Ok(connection) => Check::Met(connection),
            Err(SshError::AuthRejected) if with_key => {
                // The key is not (or no longer) there: the password, and the base stage
                // installs the key again.
                self.use_key.store(false, Ordering::SeqCst);
                let _ = ctx.store.update_vm(vm, |o| {
                    o.applied.remove(inputs::LAB_KEY);
                });
                Check::NotYet("the lab key was refused".into())
            }
            Err(SshError::AuthRejected) => Check::Fatal(Failure::new(
                Stage::Ssh,
                format!("{user}@{ip} refused the login password"),
                "set defaults.login (user and password) to the image's own account; the cirruslabs images use admin/admin",
            )),
            Err(SshError::HostKeyChanged { presented }) => Check::Fatal(Failure::new(
                Stage::Ssh,
                format!("{vm} at {ip} presented a host key other than the one pinned for it ({presented}); nothing was sent to it"),
                format!("if you recreated {vm} outside tartlab, remove its lines from {}; otherwise another machine may answer at {ip}", ctx.dir.known_hosts_path().display()),
            )),
            Err(SshError::NotPinned(e)) => Check::Fatal(Failure::new(
                Stage::Ssh,
                format!("{vm}'s host key could not be pinned, so nothing was sent to it: {e}"),
                WRITABLE,
            )),
            Err(e @ SshError::LoginStalled(_)) => {
                self.stalled.store(true, Ordering::SeqCst);
                Check::NotYet(e.to_string())
            }
            Err(e) => Check::NotYet(e.to_string()),
        }
    }
}
