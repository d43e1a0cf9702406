//! Running one piece of work per item at once, at most `limit` at a time, results in the
//! items' order; a task that panics gives `None`. One fan-out for the engine's nodes and for
//! `tartlab exec`.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

pub async fn each<I, R, F, Fut>(items: Vec<I>, limit: usize, work: F) -> Vec<Option<R>>
where
    I: Send + 'static,
    R: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = Vec::new();
    for item in items {
        let permits = permits.clone();
        let job = work(item);
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            job.await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.ok());
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_keep_the_items_order_and_the_limit_holds() {
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let out = each((0..20).collect(), 3, |i: u32| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..20).map(|i| Some(i * 2)).collect::<Vec<_>>());
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 3);
    }
}
