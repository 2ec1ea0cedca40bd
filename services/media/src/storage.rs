//! Where images live: any `object_store` store, chosen by URL. `file:///dir` (or a bare path)
//! is a local directory, the default; `memory://` keeps them in process (one replica only);
//! `s3://bucket/prefix` needs the crate's `s3` feature and the usual `AWS_*` variables.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl Storage {
    /// Opens the store at `url`; a local directory is created if missing.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let parsed = match url::Url::parse(url) {
            Ok(u) => u,
            // A bare path: a local directory, relative to the working directory.
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                std::fs::create_dir_all(url)?;
                let abs = std::fs::canonicalize(url)?;
                url::Url::from_directory_path(&abs)
                    .map_err(|()| anyhow::anyhow!("{} is not a directory path", abs.display()))?
            }
            Err(e) => anyhow::bail!("MEDIA_STORE_URL={url:?}: {e}"),
        };
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| anyhow::anyhow!("{url:?} is not a local path"))?;
            std::fs::create_dir_all(&dir)?;
            (
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir)?),
                Path::default(),
            )
        } else {
            // Options such as AWS_ACCESS_KEY_ID / AWS_ENDPOINT come from the environment.
            let options = std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .map(|(k, v)| (k.to_ascii_lowercase(), v));
            let (store, prefix) = object_store::parse_url_opts(&parsed, options)?;
            (Arc::from(store), prefix)
        };
        Ok(Self {
            store,
            prefix,
            url: parsed.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `key`'s segments under the store's prefix.
    fn full(&self, key: &str) -> Path {
        key.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> anyhow::Result<()> {
        self.store
            .put(&self.full(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// The object's bytes; `None` if there is no such object.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        match self.store.get(&self.full(key)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes every object under `prefix` (a folder: `photos/{user}/`); how many went.
    pub async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize> {
        use futures_util::TryStreamExt;
        anyhow::ensure!(
            !self.full(prefix).as_ref().is_empty() && self.full(prefix) != self.prefix,
            "refusing to purge the whole store"
        );
        let objects: Vec<_> = self
            .store
            .list(Some(&self.full(prefix)))
            .try_collect()
            .await?;
        for o in &objects {
            match self.store.delete(&o.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(objects.len())
    }

    /// Removes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&self.full(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
