//! Artifacts: files such as `model.tar.gz` behind object_store, with their sha256.
//!
//! The local backend writes to a temporary file and renames it into place, so a
//! reader sees either the whole artifact or none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// A stored artifact.
#[derive(Clone, Debug, Serialize)]
pub struct StoredArtifact {
    /// `file://...` (later `s3://...`).
    pub uri: String,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The artifact store.
#[derive(Clone, Debug)]
pub struct Artifacts {
    root: PathBuf,
    store: Arc<dyn ObjectStore>,
}

impl Artifacts {
    /// A store rooted at a local directory, created if needed.
    pub fn local(root: &Path) -> Result<Artifacts, Error> {
        std::fs::create_dir_all(root).map_err(|source| Error::Io { path: root.display().to_string(), source })?;
        let root = root.canonicalize().map_err(|source| Error::Io { path: root.display().to_string(), source })?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Artifacts { root, store: Arc::new(store) })
    }

    /// Stores a local file under `key` (e.g. `iris-3/output/model.tar.gz`).
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<StoredArtifact, Error> {
        let bytes =
            tokio::fs::read(file).await.map_err(|source| Error::Io { path: file.display().to_string(), source })?;
        self.put_bytes(key, bytes).await
    }

    /// Stores `bytes` under `key` (e.g. `iris-3/sbom.json`).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<StoredArtifact, Error> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        self.store.put(&ObjectPath::from(key), PutPayload::from(bytes)).await?;
        // Only the home's owner reads models and SBOMs.
        let path = self.root.join(key);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Ok(StoredArtifact { uri: self.uri(key), sha256, bytes: size })
    }

    /// Reads an artifact by the URI `put_file` returned, checking its sha256 when given.
    pub async fn get(&self, uri: &str, expected_sha256: Option<&str>) -> Result<bytes::Bytes, Error> {
        let key = self.key_of(uri)?;
        let bytes = self.store.get(&ObjectPath::from(key.as_str())).await?.bytes().await?;
        if let Some(expected) = expected_sha256 {
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != expected {
                return Err(Error::NotFound(format!(
                    "artifact {uri} with sha256 {expected} (stored bytes hash to {actual}; the file was changed)"
                )));
            }
        }
        Ok(bytes)
    }

    /// The bytes stored under `prefix` (e.g. `iris-3`), and with `remove` deletes them.
    pub async fn under(&self, prefix: &str, remove: bool) -> Result<u64, Error> {
        use futures::TryStreamExt;
        let prefix = ObjectPath::from(prefix);
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut bytes = 0;
        for object in objects {
            bytes += object.size;
            if remove {
                self.store.delete(&object.location).await?;
            }
        }
        if remove {
            // The local store leaves the emptied folders behind.
            let _ = std::fs::remove_dir_all(self.root.join(prefix.as_ref()));
        }
        Ok(bytes)
    }

    fn uri(&self, key: &str) -> String {
        format!("file://{}/{key}", self.root.display())
    }

    fn key_of(&self, uri: &str) -> Result<String, Error> {
        let prefix = format!("file://{}/", self.root.display());
        uri.strip_prefix(&prefix)
            .map(str::to_owned)
            .ok_or_else(|| Error::NotFound(format!("artifact {uri} in the store at {}", self.root.display())))
    }
}

/// Hex sha256 of a file, for lineage (data checksums).
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
