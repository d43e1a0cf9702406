//! The `ready` probes, after the steps, every time: each runs as root on the nodes it selects
//! that came up and whose cluster did not fail; a failing probe shows its own hint. Probes
//! only look, so they take no provisioning lock on the guest.

use std::sync::Arc;

use super::failed_clusters;
use super::{command_failure, NodeRun};
use crate::engine::events::Stage;
use crate::engine::remote::as_root;
use crate::engine::Context;
use crate::guest::runner::Command;
use crate::guest::ssh::Input;
use crate::lab::selects;

pub async fn run(ctx: &Arc<Context>, runs: &mut [NodeRun]) {
    let failed = failed_clusters(runs);
    let mut tasks = Vec::new();
    for (i, probe) in ctx.lab.file.ready.iter().enumerate() {
        for run in runs.iter().filter(|r| selects(&probe.on, &r.node)) {
            let Some(ip) = run.ip.clone() else {
                continue;
            };
            if run.report.failure.is_some() || failed.contains_key(&run.node.cluster) {
                continue;
            }
            let (ctx, node, guest) = (ctx.clone(), run.node.clone(), run.guest.clone());
            tasks.push(tokio::spawn(async move {
                let probe = &ctx.lab.file.ready[i];
                let vm = node.vm_name.clone();
                ctx.reporter.started(&vm, Stage::Ready, &probe.run);
                let what = format!("ready probe `{}`", probe.run);
                let result = async {
                    let session = guest.get(&ctx, &node, &ip).await?;
                    let command = as_root(&format!("set -euo pipefail\n{}", probe.run), &[]);
                    let shown = format!("ready probe: {}", probe.run);
                    session
                        .run_plain(Command {
                            what: &what,
                            line: &command,
                            shown: &shown,
                            input: Input::Given(None),
                        })
                        .await
                        .map(|_| ())
                        .map_err(|e| command_failure(&ctx, &vm, Stage::Ready, &what, e))
                }
                .await
                .map_err(|mut f| {
                    f.stage = Stage::Ready;
                    if let Some(hint) = &probe.hint {
                        f.hint = hint.clone();
                    }
                    f
                });
                (vm, result)
            }));
        }
    }
    for task in tasks {
        let Ok((vm, Err(failure))) = task.await else {
            continue;
        };
        ctx.reporter.failed(&vm, failure.stage, &failure.message);
        if let Some(run) = runs
            .iter_mut()
            .find(|r| r.node.vm_name == vm && r.report.failure.is_none())
        {
            run.report.failure = Some(failure);
        }
    }
}
