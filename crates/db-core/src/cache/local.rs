//! The in-process tier, for data that rarely changes (the character catalogue): a small memory
//! cache in front of Redis. A change is published on a Redis channel; every replica listening
//! drops its copy, so no replica serves an old catalogue for longer than the publish takes.
//! Entries also expire on their own (`Ttls::local_catalogue`, one minute by default), bounding
//! staleness if a message is missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::Cache;
use crate::models::Character;

const ALL: &str = "characters";

pub(crate) struct LocalTier {
    pub(crate) catalogue: moka::future::Cache<(), Arc<Vec<Character>>>,
}

impl LocalTier {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            catalogue: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(ttl)
                .build(),
        }
    }

    async fn drop_message(&self, _message: &str) {
        // Any change to any character: the catalogue is one value.
        self.catalogue.invalidate_all();
    }
}

impl Cache {
    /// Tells every replica (this one included) to drop its in-process copy of a character
    /// (`None`: of the whole catalogue), and drops the Redis copies.
    pub async fn invalidate_characters(&self, id: Option<&str>) {
        let keys = self.keys();
        let mut drop = vec![keys.character_list()];
        drop.extend(id.map(|id| keys.character(id)));
        self.delete(&drop).await;
        let message = id.map_or_else(|| ALL.to_owned(), |id| format!("character:{id}"));
        self.local().drop_message(&message).await;
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(keys.invalidation_channel()).arg(&message);
        let _: Option<i64> = self.cmd(publish).await;
    }

    /// Listens for invalidations from other replicas until the process ends, reconnecting
    /// after failures. Call once at start-up.
    pub fn spawn_invalidation_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        let client = self.redis_pool()?.client().ok()?;
        let channel = self.keys().invalidation_channel();
        let cache = self.clone();
        Some(tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if pubsub.subscribe(&channel).await.is_ok() {
                            // Whatever changed while we were not listening is unknown: start clean.
                            cache.local().drop_message(ALL).await;
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                if let Ok(text) = msg.get_payload::<String>() {
                                    cache.local().drop_message(&text).await;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "invalidation listener cannot connect"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }
}
