//! The operations the stages and the lifecycle commands compose, so that no stage calls
//! another: the wait for an address (`address.rs`), a graceful stop (`stop.rs`), a delete
//! and the teardown of `down` (`delete.rs`), a power cycle (`restart.rs`), and running one
//! of them on many VMs at once (`per_node`).

pub mod address;
pub mod delete;
pub mod restart;
pub mod stop;

use std::sync::Arc;
use std::time::Instant;

use super::{fanout, internal_failure, Context, Failure, NodeReport};

/// Runs `work` for every VM, at most `parallel` at once, each filling its own report; a
/// failure is shown and recorded, and a task that panics becomes a failed report too.
/// Reports keep the VMs' order.
pub async fn per_node<F, Fut>(
    ctx: &Arc<Context>,
    vms: Vec<String>,
    parallel: usize,
    work: F,
) -> Vec<NodeReport>
where
    F: Fn(Arc<Context>, String) -> Fut,
    Fut: std::future::Future<Output = (NodeReport, Result<(), Failure>)> + Send + 'static,
{
    let names = vms.clone();
    let results = fanout::each(vms, parallel, |vm| {
        let ctx = ctx.clone();
        let job = work(ctx.clone(), vm.clone());
        async move {
            let started = Instant::now();
            let (mut report, result) = job.await;
            if let Err(failure) = result {
                ctx.reporter.failed(&vm, failure.stage, &failure.message);
                report.failure = Some(failure);
            }
            report.seconds = started.elapsed().as_secs_f64();
            report
        }
    })
    .await;
    results
        .into_iter()
        .zip(names)
        .map(|(report, vm)| {
            report.unwrap_or_else(|| {
                let mut report = NodeReport::new(&vm);
                report.failure = Some(internal_failure());
                report
            })
        })
        .collect()
}
