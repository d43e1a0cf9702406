//! The images `up` needs, each pulled once, all at once, before any clone; a pull that fails
//! blocks only the nodes to be made from that image (their failure at stage `pull` says why,
//! and where the lab file gives the image), so the other nodes go on.

use std::collections::HashMap;
use std::sync::Arc;

use super::events::{Reporter, Stage, Wait};
use super::fanout;
use super::plan::{Blocker, Lifecycle, NodePlan};
use crate::lab::Lab;
use crate::provider::Provider;

/// Pulls `images` at once, showing each one's progress; the images that could not be
/// pulled, each with why in the provider's words.
pub async fn each(
    provider: &Arc<dyn Provider>,
    reporter: &Arc<Reporter>,
    images: Vec<String>,
) -> HashMap<String, String> {
    let pulls = fanout::each(images.clone(), images.len(), |image: String| {
        let (provider, reporter) = (provider.clone(), reporter.clone());
        async move {
            reporter.pull(&image, None, false);
            let progress = |p: u32| reporter.pull(&image, Some(p), false);
            let pulled = provider.fetch_image(&image, &progress).await;
            match &pulled {
                Ok(()) => reporter.pull(&image, None, true),
                Err(e) => reporter.pull_failed(&image, &e.message),
            }
            pulled.map_err(|e| e.message)
        }
    })
    .await;
    images
        .into_iter()
        .zip(pulls)
        .filter_map(|(image, pulled)| match pulled {
            Some(Ok(())) => None,
            Some(Err(why)) => Some((image, why)),
            None => Some((image, "the pull's task ended abnormally".to_string())),
        })
        .collect()
}

/// Tells, for each node to be made from an image about to be pulled, that it waits for it.
pub fn tell_who_waits(reporter: &Reporter, lab: &Lab, plans: &[NodePlan], images: &[String]) {
    for plan in plans {
        let creates = matches!(
            plan.lifecycle,
            Lifecycle::Create | Lifecycle::Recreate { .. }
        );
        let Some(node) = lab
            .node(&plan.vm)
            .filter(|n| creates && images.contains(&n.image))
        else {
            continue;
        };
        reporter.waiting(
            &plan.vm,
            Stage::Pull,
            Wait::Image {
                image: node.image.clone(),
            },
            &format!("waiting for the image {}", node.image),
        );
    }
}

/// Blocks each plan that would make a VM from an image that could not be pulled.
pub fn block_unavailable(lab: &Lab, plans: &mut [NodePlan], unavailable: &HashMap<String, String>) {
    let file = lab.source.path.display();
    for plan in plans {
        let creates = matches!(
            plan.lifecycle,
            Lifecycle::Create | Lifecycle::Recreate { .. }
        );
        let Some(node) = lab.node(&plan.vm).filter(|_| creates) else {
            continue;
        };
        if let Some(why) = unavailable.get(&node.image) {
            plan.lifecycle = Lifecycle::Blocked(Blocker::ImageUnavailable {
                image: node.image.clone(),
                given_at: node
                    .image_at
                    .map(|(line, column)| format!("{file}:{line}:{column}")),
                why: why.clone(),
            });
        }
    }
}
