//! Stopping a VM the lab owns: a shutdown from inside the guest (over SSH with the lab key),
//! waiting for the VM to stop; the provider's own stop when the guest does not go down in
//! time (`TARTLAB_STOP_TIMEOUT`). The login, the shutdown command and the wait all fit in
//! that time, however slowly the guest answers.

use std::time::{Duration, Instant};

use crate::engine::events::{Stage, StopHow};
use crate::engine::{Context, Failure};
use crate::guest::runner::{Command, GuestSession};
use crate::guest::ssh::{self, Auth};
use crate::provider::Stopped;

/// Shuts the VM down from inside; the provider stops it if that does not work in time.
pub async fn gracefully(ctx: &Context, vm: &str) -> Result<StopHow, Failure> {
    ctx.reporter
        .started(vm, Stage::Stop, "shutdown from the guest");
    let owned = ctx.store.vm(vm).unwrap_or_default();
    let login = ctx.node(vm).map(|n| n.login.clone());
    let mut asked = false;
    let deadline = Instant::now() + ctx.timeouts.stop;
    let left = || deadline.saturating_duration_since(Instant::now());
    // No pinned key, no login: the lab key goes only to a VM that proved to be the one.
    let pins = ssh::Pins::of(ctx.known.pinned(vm));
    if let (Some(ip), Some(login), Some(pins)) = (owned.ip.as_deref(), login, pins) {
        let dialer = ctx.provider.dialer(vm, ip);
        let login = ssh::connect(
            dialer.as_ref(),
            &login.user,
            Auth::Key(&ctx.key),
            ssh::HostKeys::Pinned(pins),
            left().min(Duration::from_secs(10)),
        )
        .await;
        if let Ok(connection) = login {
            let session = GuestSession::new(
                vm,
                connection,
                ctx.dir.provision_log(vm),
                left().min(Duration::from_secs(30)),
                ctx.masker.clone(),
            );
            let command = "sudo -n shutdown -h now";
            asked = session
                .run_plain(Command::plain("shutting down", command))
                .await
                .is_ok();
            session.close().await;
        }
    }
    if asked && ctx.provider.wait_stopped(vm, left()).await {
        return Ok(StopHow::ShutDown);
    }
    ctx.reporter
        .started(vm, Stage::Stop, "the guest did not go down: forcing it off");
    let stopped = ctx
        .provider
        .stop(vm, Duration::from_secs(10))
        .await
        .map_err(|e| Failure::from_provider(Stage::Stop, e))?;
    if stopped == Stopped::WasNotRunning {
        return Ok(StopHow::AlreadyStopped);
    }
    if ctx.provider.wait_stopped(vm, Duration::from_secs(15)).await {
        Ok(StopHow::Forced)
    } else {
        Err(Failure::new(
            Stage::Stop,
            format!(
                "{vm} still runs after {} was told to stop it",
                ctx.provider.name()
            ),
            format!(
                "`tartlab logs {vm}` shows its console output; `tartlab stop {vm}` tries again"
            ),
        ))
    }
}
