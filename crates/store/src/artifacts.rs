//! Artifacts: files such as `model.tar.gz` behind object_store, with their sha256.
//!
//! New artifacts go where [`Location`] says: the home's folder, or an S3 prefix (SageMaker's
//! layout, `<prefix>/<job>/output/model.tar.gz`). An artifact is read back by its URI from
//! whichever of the two holds it, so a home that moved to S3 still serves its older models.
//! The local backend writes to a temporary file and renames it into place, so a reader sees
//! either the whole artifact or none; on S3 the sha256 also travels as the object's metadata
//! (`x-amz-meta-sha256`), and every read checks the bytes against it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// A stored artifact.
#[derive(Clone, Debug, Serialize)]
pub struct StoredArtifact {
    /// `file://...` or `s3://bucket/...`.
    pub uri: String,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Where new artifacts are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A folder on this machine.
    Local(PathBuf),
    /// `s3://bucket/prefix`: an S3 bucket (or one that speaks S3), credentials and endpoint from
    /// the environment (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/`; may be empty.
        prefix: String,
    },
}

impl Location {
    /// `s3://bucket/prefix`, or a folder.
    pub fn parse(text: &str) -> Result<Location, Error> {
        let Some(rest) = text.strip_prefix("s3://") else {
            if text.contains("://") {
                return Err(Error::Invalid(format!(
                    "artifact store {text}: give a folder or s3://bucket/prefix; no other scheme is known"
                )));
            }
            return Ok(Location::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = bucket_and_key(rest);
        if bucket.is_empty() {
            return Err(Error::Invalid(format!("artifact store {text}: no bucket; write s3://bucket/prefix")));
        }
        Ok(Location::S3 { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// `bucket/key` (what follows `s3://`) split at its first `/`; the key may be empty.
fn bucket_and_key(rest: &str) -> (&str, &str) {
    rest.split_once('/').unwrap_or((rest, ""))
}

/// One place artifacts are kept.
#[derive(Clone, Debug)]
struct Backend {
    /// What every URI of this backend starts with, ending in `/`.
    uri_prefix: String,
    store: Arc<dyn ObjectStore>,
    /// The folder, for a local backend: its files are made private and emptied folders removed.
    root: Option<PathBuf>,
}

impl Backend {
    fn local(root: &Path) -> Result<Backend, Error> {
        std::fs::create_dir_all(root).map_err(|source| Error::Io { path: root.display().to_string(), source })?;
        let root = root.canonicalize().map_err(|source| Error::Io { path: root.display().to_string(), source })?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Backend { uri_prefix: format!("file://{}/", root.display()), store: Arc::new(store), root: Some(root) })
    }

    fn s3(bucket: &str, prefix: &str) -> Result<Backend, Error> {
        let bucket_store = s3_bucket(bucket)?;
        let (uri_prefix, store): (String, Arc<dyn ObjectStore>) = if prefix.is_empty() {
            (format!("s3://{bucket}/"), bucket_store)
        } else {
            (format!("s3://{bucket}/{prefix}/"), Arc::new(PrefixStore::new(bucket_store, prefix)))
        };
        Ok(Backend { uri_prefix, store, root: None })
    }
}

/// A client of one S3 bucket, configured from the environment as the AWS tools are.
#[cfg(feature = "aws")]
pub(crate) fn s3_bucket(bucket: &str) -> Result<Arc<dyn ObjectStore>, Error> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
    // An endpoint given as http:// (an emulator on loopback, a MinIO on the LAN) is asked for.
    if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| url.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build()?))
}

#[cfg(not(feature = "aws"))]
pub(crate) fn s3_bucket(bucket: &str) -> Result<Arc<dyn ObjectStore>, Error> {
    Err(Error::Invalid(format!(
        "s3://{bucket}: this sagebrush was built without S3; build it with `cargo build --release --features aws`"
    )))
}

/// The artifact store.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// Where writes go first, then the others that reads may find older artifacts in.
    backends: Vec<Backend>,
}

/// The object metadata key that carries an artifact's sha256 on S3.
const SHA256_METADATA: &str = "sha256";

impl Artifacts {
    /// A store rooted at a local directory, created if needed.
    pub fn local(root: &Path) -> Result<Artifacts, Error> {
        Ok(Artifacts { backends: vec![Backend::local(root)?] })
    }

    /// A store writing to `location`; artifacts already in `home_folder` stay readable.
    pub fn open(location: &Location, home_folder: &Path) -> Result<Artifacts, Error> {
        let write = match location {
            Location::Local(root) => Backend::local(root)?,
            Location::S3 { bucket, prefix } => Backend::s3(bucket, prefix)?,
        };
        let home = Backend::local(home_folder)?;
        let backends = if home.uri_prefix == write.uri_prefix { vec![write] } else { vec![write, home] };
        Ok(Artifacts { backends })
    }

    /// Stores a local file under `key` (e.g. `iris-3/output/model.tar.gz`).
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<StoredArtifact, Error> {
        let bytes =
            tokio::fs::read(file).await.map_err(|source| Error::Io { path: file.display().to_string(), source })?;
        self.put_bytes(key, bytes).await
    }

    /// Stores `bytes` under `key` (e.g. `iris-3/sbom.json`).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<StoredArtifact, Error> {
        let sha256 = sha256_bytes(&bytes);
        let size = bytes.len() as u64;
        let backend = &self.backends[0];
        let path = ObjectPath::from(key);
        match &backend.root {
            Some(root) => {
                backend.store.put(&path, PutPayload::from(bytes)).await?;
                // Only the home's owner reads models and SBOMs.
                let file = root.join(key);
                std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .map_err(|source| Error::Io { path: file.display().to_string(), source })?;
            }
            None => {
                let mut attributes = Attributes::new();
                attributes.insert(Attribute::Metadata(SHA256_METADATA.into()), sha256.clone().into());
                let options = PutOptions { attributes, ..Default::default() };
                backend.store.put_opts(&path, PutPayload::from(bytes), options).await?;
            }
        }
        Ok(StoredArtifact { uri: format!("{}{key}", backend.uri_prefix), sha256, bytes: size })
    }

    /// Reads an artifact by the URI `put_file` returned. Its bytes must hash to `expected_sha256`
    /// when given, and always to the sha256 the object carries, if it carries one.
    pub async fn get(&self, uri: &str, expected_sha256: Option<&str>) -> Result<bytes::Bytes, Error> {
        let found = self.backends.iter().find_map(|b| uri.strip_prefix(b.uri_prefix.as_str()).map(|key| (b, key)));
        let result = match (found, uri.strip_prefix("s3://")) {
            (Some((backend, key)), _) => backend.store.get(&ObjectPath::from(key)).await?,
            // Written by a process configured with another prefix: any bucket the credentials reach will do.
            (None, Some(rest)) => {
                let (bucket, key) = bucket_and_key(rest);
                s3_bucket(bucket)?.get(&ObjectPath::from(key)).await?
            }
            (None, None) => {
                let places: Vec<&str> = self.backends.iter().map(|b| b.uri_prefix.as_str()).collect();
                return Err(Error::NotFound(format!("artifact {uri} in the artifact store ({})", places.join(", "))));
            }
        };
        let carried = result.attributes.get(&Attribute::Metadata(SHA256_METADATA.into())).map(|v| v.to_string());
        let bytes = result.bytes().await?;
        let actual = sha256_bytes(&bytes);
        for (what, recorded) in [("recorded", expected_sha256.map(str::to_owned)), ("carried", carried)] {
            if let Some(recorded) = recorded
                && recorded != actual
            {
                return Err(Error::Integrity(format!(
                    "artifact {uri}: its bytes hash to {actual}, not to the sha256 {recorded} {what} when it was \
                     written; it was changed since, so it is not used"
                )));
            }
        }
        Ok(bytes)
    }

    /// Writes, reads back and deletes a small object where new artifacts go: can this process store models?
    pub async fn probe(&self) -> Result<(), Error> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let key = format!(".sagebrush-doctor/{}-{nanos}", std::process::id());
        let stored = self.put_bytes(&key, b"sagebrush doctor".to_vec()).await?;
        let read = self.get(&stored.uri, Some(&stored.sha256)).await;
        let removed = self.under(".sagebrush-doctor", true).await;
        read.and(removed).map(|_| ())
    }

    /// The bytes stored under `prefix` (e.g. `iris-3`), and with `remove` deletes them.
    pub async fn under(&self, prefix: &str, remove: bool) -> Result<u64, Error> {
        use futures::TryStreamExt;
        let prefix = ObjectPath::from(prefix);
        let mut bytes = 0;
        for backend in &self.backends {
            let objects: Vec<_> = backend.store.list(Some(&prefix)).try_collect().await?;
            for object in objects {
                bytes += object.size;
                if remove {
                    backend.store.delete(&object.location).await?;
                }
            }
            if let (true, Some(root)) = (remove, &backend.root) {
                // The local store leaves the emptied folders behind.
                let _ = std::fs::remove_dir_all(root.join(prefix.as_ref()));
            }
        }
        Ok(bytes)
    }
}

/// Downloads what `uri` (`s3://bucket/key-or-prefix`) names into the folder `into`, as SageMaker
/// fills a channel: every object whose key starts with the prefix, at its path after the prefix's
/// last `/`. Returns how many files were written; none is an error.
pub async fn download(uri: &str, into: &Path) -> Result<usize, Error> {
    let listing = S3Listing::of(uri).await?;
    let mut written = 0;
    for object in &listing.objects {
        let relative = Path::new(&object.location.as_ref()[listing.folder.len()..]);
        // A key is any string: only plain names may become a path under the channel.
        if !relative.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(Error::Invalid(format!("{uri}: the key {} is not a plain relative path", object.location)));
        }
        let target = into.join(relative);
        let bytes = listing.store.get(&object.location).await?.bytes().await?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| Error::Io { path: parent.display().to_string(), source })?;
        }
        tokio::fs::write(&target, &bytes)
            .await
            .map_err(|source| Error::Io { path: target.display().to_string(), source })?;
        written += 1;
    }
    if written == 0 {
        return Err(Error::NotFound(format!("any object under {uri}")));
    }
    Ok(written)
}

/// The objects an `s3://bucket/key-or-prefix` URI names: those whose key starts with it.
struct S3Listing {
    store: std::sync::Arc<dyn ObjectStore>,
    /// The key up to the prefix's last `/`: what a channel's file paths are relative to.
    folder: String,
    objects: Vec<object_store::ObjectMeta>,
}

impl S3Listing {
    async fn of(uri: &str) -> Result<S3Listing, Error> {
        use futures::TryStreamExt;
        let rest = uri.strip_prefix("s3://").ok_or_else(|| Error::Invalid(format!("{uri} is not an s3:// URI")))?;
        let (bucket, prefix) = bucket_and_key(rest);
        let store = s3_bucket(bucket)?;
        let folder = prefix[..prefix.rfind('/').map_or(0, |i| i + 1)].to_owned();
        let listed = if folder.is_empty() { None } else { Some(ObjectPath::from(folder.as_str())) };
        let mut objects: Vec<_> = store.list(listed.as_ref()).try_collect().await?;
        objects.retain(|o| o.location.as_ref().starts_with(prefix));
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(S3Listing { store, folder, objects })
    }
}

/// One digest of what is under an `s3://` URI now: each object's key, size and ETag. It changes
/// when an object is added, removed or rewritten with other bytes, and costs one listing, not a
/// download. Nothing under it is a digest too (of nothing), as a missing folder is.
pub async fn s3_digest(uri: &str) -> Result<String, Error> {
    let listing = S3Listing::of(uri).await?;
    let mut digest = Sha256::new();
    for object in &listing.objects {
        digest.update(object.location.as_ref().as_bytes());
        digest.update([0]);
        digest.update(object.size.to_le_bytes());
        digest.update(object.e_tag.as_deref().unwrap_or_default().as_bytes());
        digest.update([0]);
    }
    Ok(hex::encode(digest.finalize()))
}

/// Hex sha256 of a file, for lineage (data checksums).
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    Ok(sha256_bytes(&bytes))
}

/// Hex sha256 of bytes, as artifacts are recorded.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_folder_or_an_s3_prefix() {
        assert_eq!(Location::parse("/srv/artifacts").unwrap(), Location::Local("/srv/artifacts".into()));
        let s3 = Location::parse("s3://models/team/a/").unwrap();
        assert_eq!(s3, Location::S3 { bucket: "models".into(), prefix: "team/a".into() });
        assert_eq!(s3.to_string(), "s3://models/team/a");
        assert_eq!(Location::parse("s3://models").unwrap().to_string(), "s3://models");
        assert!(Location::parse("s3:///x").unwrap_err().to_string().contains("no bucket"));
        assert!(Location::parse("gs://b/p").unwrap_err().to_string().contains("s3://bucket/prefix"));
    }
}
