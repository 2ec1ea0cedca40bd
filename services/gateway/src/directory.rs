//! What the services declare: each one's OpenAPI document, fetched from a replica at start and
//! refreshed every little while (a rolling update may add routes), turned into the route table
//! and the merged public document. Until every service's document is in, the gateway is not
//! ready; a service that stops answering keeps its last known routes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use utoipa::openapi::OpenApi;

use crate::routes::RouteTable;
use crate::upstream::Upstreams;

/// What the gateway routes by, swapped whole when a document changes.
#[derive(Default)]
pub struct Snapshot {
    pub table: RouteTable,
    /// The merged document, serialized once.
    pub document: Bytes,
    /// Services whose document has not been fetched yet.
    pub missing: Vec<&'static str>,
    docs: Vec<(&'static str, serde_json::Value)>,
}

pub struct Directory {
    current: RwLock<Arc<Snapshot>>,
}

/// While some document is missing, how often to ask again; once all are in, how often to
/// look for changes.
const RETRY: Duration = Duration::from_millis(300);
const REFRESH: Duration = Duration::from_secs(30);

impl Directory {
    pub fn new(services: &[&'static str]) -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot {
                missing: services.to_vec(),
                ..Snapshot::default()
            })),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Fetches every service's document once and swaps in a new snapshot if anything changed.
    pub async fn refresh(&self, upstreams: &Upstreams, client: &reqwest::Client) {
        let old = self.snapshot();
        let mut docs = Vec::new();
        let mut missing = Vec::new();
        for s in &upstreams.services {
            let mut fetched = None;
            for r in &s.replicas {
                let res = client
                    .get(format!("{}/openapi.json", r.url))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(res) = res
                    && res.status().is_success()
                    && let Ok(doc) = res.json::<serde_json::Value>().await
                {
                    fetched = Some(doc);
                    break;
                }
            }
            match fetched.or_else(|| {
                old.docs
                    .iter()
                    .find(|(n, _)| *n == s.name)
                    .map(|(_, d)| d.clone())
            }) {
                Some(doc) => docs.push((s.name, doc)),
                None => missing.push(s.name),
            }
        }
        if docs == old.docs && missing == old.missing {
            return;
        }
        match build(docs, missing) {
            Ok(snapshot) => {
                tracing::info!(
                    routes = snapshot.table.len(),
                    missing = ?snapshot.missing,
                    "route table updated"
                );
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(snapshot);
                }
            }
            Err(e) => tracing::error!(error = %e, "route table not updated"),
        }
    }

    /// Keeps the snapshot current until the process ends.
    pub fn spawn(
        self: &Arc<Self>,
        upstreams: Arc<Upstreams>,
        client: reqwest::Client,
    ) -> tokio::task::JoinHandle<()> {
        let directory = self.clone();
        tokio::spawn(async move {
            loop {
                directory.refresh(&upstreams, &client).await;
                let wait = if directory.snapshot().missing.is_empty() {
                    REFRESH
                } else {
                    RETRY
                };
                tokio::time::sleep(wait).await;
            }
        })
    }
}

fn build(
    docs: Vec<(&'static str, serde_json::Value)>,
    missing: Vec<&'static str>,
) -> Result<Snapshot, String> {
    let parsed: Vec<(&'static str, OpenApi)> = docs
        .iter()
        .map(|(n, d)| {
            serde_json::from_value::<OpenApi>(d.clone())
                .map(|doc| (*n, doc))
                .map_err(|e| format!("{n}'s document: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let table = RouteTable::from_documents(parsed.iter().map(|(n, d)| (*n, d)))?;
    let mut merged = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Dream API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Every route the gateway serves, merged from the services' own documents.",
                ))
                .build(),
        )
        .build();
    for (_, doc) in parsed {
        merged.merge(doc);
    }
    let document = serde_json::to_vec(&merged).map_err(|e| e.to_string())?;
    Ok(Snapshot {
        table,
        document: Bytes::from(document),
        missing,
        docs,
    })
}
