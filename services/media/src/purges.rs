//! Emptying what a deleted account left in storage. `storage_purges` rows are written in the
//! account's deletion transaction; every replica polls them and deletes every object under the
//! prefix, twice: at once, and again once a photo job still running at the deletion has surely
//! lost its lease (a job that made its image after the first pass cannot deliver it, and its
//! file is caught by the second). Deleting an object twice is harmless, so replicas need not
//! coordinate.

use std::time::Duration;

use service_kit::Kit;
use tokio::task::JoinHandle;

use crate::jobs::Media;

/// Polls for due purges every `poll` until the process ends.
pub fn spawn(kit: Kit, media: Media) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Two leases: a job that held one at the deletion has lost it by then.
        let again = media.jobs.lease * 2 + Duration::from_secs(1);
        loop {
            match kit.store.account().purges_due(16).await {
                Ok(due) => {
                    for purge in due {
                        match media.storage.delete_prefix(&purge.prefix).await {
                            Ok(n) => {
                                tracing::info!(
                                    prefix = purge.prefix,
                                    pass = purge.passes + 1,
                                    objects = n,
                                    "storage purged"
                                );
                                let next = (purge.passes == 0).then_some(again);
                                if let Err(e) =
                                    kit.store.account().purge_passed(purge.id, next).await
                                {
                                    tracing::warn!(error = %e, "purge pass not recorded; it will run again");
                                }
                            }
                            Err(e) => {
                                tracing::warn!(prefix = purge.prefix, error = %e, "storage purge failed; retried")
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "storage purges not polled"),
            }
            tokio::time::sleep(media.jobs.poll).await;
        }
    })
}
