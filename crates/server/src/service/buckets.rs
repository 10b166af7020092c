//! The home's S3 folder as buckets of objects, for S3's API on the listener: `s3://<bucket>/<key>`
//! is the file `<home>/s3/<bucket>/<key>`, so what `aws s3 cp` puts there a training job's
//! channel reads. A key's parts are folders. A body is written beside the folder first
//! (`<home>/s3-uploads`, on the same filesystem) and renamed into place, so no object is ever
//! half-written; a multipart upload's parts wait there until it is completed. Only plain files
//! and folders are objects: a link in a bucket is neither listed nor followed.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::Digest;

use super::Service;

/// A key's longest, as S3's.
const MAX_KEY: usize = 1024;
/// A multipart upload's most parts, as S3's.
pub const MAX_PARTS: u32 = 10_000;

/// What S3's API may not do to the folder, each one of S3's error codes.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("the bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("the key {0} does not exist")]
    NoSuchKey(String),
    #[error("the upload {0} does not exist: it was completed or aborted, or never begun")]
    NoSuchUpload(String),
    #[error("the bucket {0} exists already, and it is yours")]
    BucketExists(String),
    #[error("the bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error(
        "{0:?} is not a bucket name: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit"
    )]
    InvalidBucketName(String),
    /// A key a folder cannot hold, or one that collides with another object's folder.
    #[error("{0}")]
    InvalidKey(String),
    /// A CompleteMultipartUpload's part list that does not match what was uploaded.
    #[error("{0}")]
    InvalidPart(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

type Result<T> = std::result::Result<T, BucketError>;

/// A bucket: a folder of the S3 folder.
pub struct Bucket {
    pub name: String,
    pub created: SystemTime,
}

/// An object: a file under a bucket.
#[derive(Clone, Debug)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
    /// Opaque, as S3 says of a multipart object's (and shaped like one, so no tool takes it for
    /// an MD5): the file's size and time, so it changes when the file does without reading it.
    pub etag: String,
}

/// One page of a bucket's keys, in S3's order (by their bytes).
pub struct Listing {
    pub objects: Vec<Object>,
    /// With a delimiter: the keys' common prefixes up to it, each once.
    pub prefixes: Vec<String>,
    /// Where the next page starts (after this key or prefix), when there is one.
    pub next: Option<String>,
}

/// Which keys to list.
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Only keys after this one (a continuation token, `StartAfter` or `Marker`).
    pub after: Option<&'a str>,
    pub max: usize,
}

/// The S3 folder.
#[derive(Clone, Debug)]
pub struct Buckets {
    root: PathBuf,
    uploads: PathBuf,
}

impl Buckets {
    pub fn new(root: PathBuf, uploads: PathBuf) -> Buckets {
        Buckets { root, uploads }
    }

    pub fn list_buckets(&self) -> Result<Vec<Bucket>> {
        let mut buckets = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(buckets),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() && bucket_name_ok(&name) {
                let created = metadata.created().or_else(|_| metadata.modified())?;
                buckets.push(Bucket { name, created });
            }
        }
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(buckets)
    }

    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let path = self.root.join(checked_bucket(name)?);
        fs::create_dir_all(&self.root)?;
        match fs::create_dir(&path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(BucketError::BucketExists(name.to_owned())),
            other => Ok(other?),
        }
    }

    /// The bucket's folder, which must exist (and not be a link).
    pub fn bucket(&self, name: &str) -> Result<PathBuf> {
        let path = self.root.join(checked_bucket(name)?);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => Ok(path),
            _ => Err(BucketError::NoSuchBucket(name.to_owned())),
        }
    }

    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        let path = self.bucket(name)?;
        fs::remove_dir(&path).map_err(|e| match e.kind() {
            io::ErrorKind::DirectoryNotEmpty => BucketError::BucketNotEmpty(name.to_owned()),
            _ => e.into(),
        })
    }

    /// A new file beside the folder for a body on its way in; removed when dropped unless put.
    pub fn scratch(&self) -> Result<Scratch> {
        fs::create_dir_all(&self.uploads)?;
        let path = self.uploads.join(format!("body-{}", random_hex()?));
        let file = File::create_new(&path)?;
        Ok(Scratch { path, file: Some(file) })
    }

    /// Puts `body` at `key`, replacing what was there. A key ending in `/` with no body is a
    /// folder, as S3's console makes one.
    pub fn put(&self, bucket: &str, key: &str, body: Scratch) -> Result<Object> {
        let folder = self.bucket(bucket)?;
        let path = folder.join(checked_key(key)?);
        if key.ends_with('/') {
            if body.size()? != 0 {
                return Err(BucketError::InvalidKey(format!(
                    "{key:?} ends with /, which here is a folder: it can hold no body"
                )));
            }
            self.make_parents(&folder, &path.join("_"), key)?;
            return Ok(Object { key: key.to_owned(), size: 0, modified: SystemTime::now(), etag: etag(0, None) });
        }
        self.make_parents(&folder, &path, key)?;
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(BucketError::InvalidKey(format!(
                "{key:?} is a prefix of other keys here, and this folder cannot hold a file of the same name"
            )));
        }
        body.persist(&path)?;
        Ok(object(key.to_owned(), &fs::symlink_metadata(&path)?))
    }

    /// Checks, before a body comes, that it could be put at `key`.
    pub fn check_put(&self, bucket: &str, key: &str) -> Result<()> {
        self.bucket(bucket)?;
        checked_key(key)?;
        Ok(())
    }

    /// The key's object: a plain file, or (for a key ending in `/`) an empty folder.
    pub fn head(&self, bucket: &str, key: &str) -> Result<Object> {
        self.object_at(bucket, key).map(|(object, _)| object)
    }

    /// The key's object and its file, open for reading (`None` for a folder's, which is empty).
    pub fn open(&self, bucket: &str, key: &str) -> Result<(Object, Option<File>)> {
        use std::os::unix::fs::OpenOptionsExt;
        let (object, file) = self.object_at(bucket, key)?;
        let Some(path) = file else { return Ok((object, None)) };
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|_| BucketError::NoSuchKey(key.to_owned()))?;
        Ok((object, Some(file)))
    }

    /// The key's object, and its file's path when it is a file.
    fn object_at(&self, bucket: &str, key: &str) -> Result<(Object, Option<PathBuf>)> {
        match self.find(bucket, key)? {
            Found::File(path, metadata) if !key.ends_with('/') => Ok((object(key.to_owned(), &metadata), Some(path))),
            Found::Folder(path, metadata) if key.ends_with('/') && is_empty_dir(&path) => {
                Ok((object(key.to_owned(), &metadata), None))
            }
            _ => Err(BucketError::NoSuchKey(key.to_owned())),
        }
    }

    /// A copy of the key's body, or of bytes `start..end` of it, to put elsewhere.
    pub fn copy(&self, bucket: &str, key: &str, range: Option<(u64, u64)>) -> Result<Scratch> {
        use std::io::{Read, Seek};
        let (object, source) = self.open(bucket, key)?;
        let (start, end) = range.unwrap_or((0, object.size));
        if start > end || end > object.size {
            return Err(BucketError::InvalidKey(format!(
                "{key:?} is {} bytes: it has no bytes {start} to {end}",
                object.size
            )));
        }
        let mut scratch = self.scratch()?;
        if let Some(mut source) = source {
            source.seek(io::SeekFrom::Start(start))?;
            io::copy(&mut source.take(end - start), scratch.file()?)?;
        }
        Ok(scratch)
    }

    /// Deletes the key's object, and the folders it leaves empty; a missing key is no error, as on S3.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let folder = self.bucket(bucket)?;
        let path = match self.find(bucket, key)? {
            Found::File(path, _) if !key.ends_with('/') => {
                fs::remove_file(&path)?;
                path
            }
            Found::Folder(path, _) if key.ends_with('/') => match fs::remove_dir(&path) {
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => return Ok(()),
                other => {
                    other?;
                    path
                }
            },
            _ => return Ok(()),
        };
        let mut parent = path.parent();
        while let Some(dir) = parent.filter(|dir| *dir != folder && dir.starts_with(&folder)) {
            if fs::remove_dir(dir).is_err() {
                break;
            }
            parent = dir.parent();
        }
        Ok(())
    }

    /// What `key` is under its bucket's folder, found part by part without following a link: a
    /// link anywhere on the way (a dataset linked into a bucket, say) is as if nothing were there.
    fn find(&self, bucket: &str, key: &str) -> Result<Found> {
        let mut at = self.bucket(bucket)?;
        let parts: Vec<&str> = checked_key(key)?.split('/').collect();
        for (n, part) in parts.iter().enumerate() {
            at.push(part);
            let last = n + 1 == parts.len();
            match fs::symlink_metadata(&at) {
                Ok(metadata) if metadata.is_dir() && last => return Ok(Found::Folder(at, metadata)),
                Ok(metadata) if metadata.is_dir() => {}
                Ok(metadata) if metadata.is_file() && last => return Ok(Found::File(at, metadata)),
                Ok(_) => return Ok(Found::Nothing),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Found::Nothing)
    }

    /// One page of the bucket's keys, walked in their order and no further than the page.
    pub fn list(&self, bucket: &str, query: &ListQuery) -> Result<Listing> {
        let folder = self.bucket(bucket)?;
        let mut page = Page {
            query,
            listing: Listing { objects: Vec::new(), prefixes: Vec::new(), next: None },
            last: None,
            full: false,
        };
        // Only the folder the prefix names is walked: `train/2024-` is under `train/`.
        let start = query.prefix.rfind('/').map_or("", |at| &query.prefix[..=at]);
        if start.is_empty() {
            page.walk(&folder, start)?;
        } else if let Found::Folder(path, _) = self.find(bucket, start)? {
            page.walk(&path, start)?;
        }
        Ok(page.listing)
    }

    /// Begins a multipart upload to `key`: its id.
    pub fn begin_upload(&self, bucket: &str, key: &str) -> Result<String> {
        self.bucket(bucket)?;
        checked_key(key)?;
        let id = random_hex()?;
        let folder = self.uploads.join(format!("upload-{id}"));
        fs::create_dir_all(&folder)?;
        fs::write(folder.join("target"), format!("{bucket}/{key}"))?;
        Ok(id)
    }

    /// Checks, before a part comes, that it could be kept.
    pub fn check_part(&self, bucket: &str, key: &str, id: &str, number: u32) -> Result<()> {
        self.upload(bucket, key, id)?;
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(BucketError::InvalidPart(format!("a part number is 1 to {MAX_PARTS}, not {number}")));
        }
        Ok(())
    }

    /// Removes what an interrupted server left beside the folder: bodies that never arrived
    /// whole (an hour old) and multipart uploads neither completed nor aborted in a week.
    pub fn sweep(&self) -> Result<usize> {
        let now = SystemTime::now();
        let older = |path: &Path, age: u64| {
            fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|at| now.duration_since(at).is_ok_and(|d| d.as_secs() > age))
        };
        let mut removed = 0;
        let entries = match fs::read_dir(&self.uploads) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        for entry in entries.flatten() {
            let (path, name) = (entry.path(), entry.file_name());
            let name = name.to_string_lossy();
            if name.starts_with("body-") && older(&path, 3600) {
                removed += usize::from(fs::remove_file(&path).is_ok());
            } else if name.starts_with("upload-") && older(&path, 7 * 24 * 3600) {
                removed += usize::from(fs::remove_dir_all(&path).is_ok());
            }
        }
        Ok(removed)
    }

    /// Keeps part `number` of the upload: its ETag.
    pub fn put_part(&self, bucket: &str, key: &str, id: &str, number: u32, body: Scratch) -> Result<String> {
        self.check_part(bucket, key, id, number)?;
        let path = self.upload(bucket, key, id)?.join(number.to_string());
        body.persist(&path)?;
        Ok(object(String::new(), &fs::metadata(&path)?).etag)
    }

    /// Joins the listed parts, in their order, into the object at `key`.
    pub fn complete_upload(&self, bucket: &str, key: &str, id: &str, parts: &[(u32, String)]) -> Result<Object> {
        let folder = self.upload(bucket, key, id)?;
        if parts.is_empty() {
            return Err(BucketError::InvalidPart("the upload's completion lists no part".to_owned()));
        }
        if parts.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(BucketError::InvalidPart("the parts must be listed in ascending order of number".to_owned()));
        }
        let mut scratch = self.scratch()?;
        for (number, tag) in parts {
            let path = folder.join(number.to_string());
            let metadata =
                fs::metadata(&path).map_err(|_| BucketError::InvalidPart(format!("part {number} was not uploaded")))?;
            if tag.trim_matches('"') != object(String::new(), &metadata).etag.trim_matches('"') {
                return Err(BucketError::InvalidPart(format!("part {number}'s ETag is not {tag}")));
            }
            io::copy(&mut File::open(&path)?, scratch.file()?)?;
        }
        let object = self.put(bucket, key, scratch)?;
        fs::remove_dir_all(&folder)?;
        Ok(object)
    }

    pub fn abort_upload(&self, bucket: &str, key: &str, id: &str) -> Result<()> {
        let folder = self.upload(bucket, key, id)?;
        Ok(fs::remove_dir_all(folder)?)
    }

    /// The folder of an upload begun for this bucket and key.
    fn upload(&self, bucket: &str, key: &str, id: &str) -> Result<PathBuf> {
        let unknown = || BucketError::NoSuchUpload(names::excerpt(id, 64));
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let folder = self.uploads.join(format!("upload-{id}"));
        let target = fs::read_to_string(folder.join("target")).map_err(|_| unknown())?;
        if target != format!("{bucket}/{key}") {
            return Err(unknown());
        }
        Ok(folder)
    }

    /// Makes the folders above `path`, refusing where a part of the key is a file already.
    fn make_parents(&self, folder: &Path, path: &Path, key: &str) -> Result<()> {
        let Some(parent) = path.parent() else { return Ok(()) };
        let mut at = folder.to_path_buf();
        for part in parent.strip_prefix(folder).map_err(|_| BucketError::InvalidKey(key.to_owned()))?.iter() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => {
                    let shown = at.strip_prefix(folder).unwrap_or(&at).display().to_string();
                    return Err(BucketError::InvalidKey(format!(
                        "{key:?} would be under the object {shown:?}: here keys are files and folders, \
                         so an object's key cannot also be a prefix of others"
                    )));
                }
                Err(_) => fs::create_dir(&at)?,
            }
        }
        Ok(())
    }
}

impl Service {
    /// The home's S3 folder, when this server keeps its artifacts on this machine; `None` when
    /// they are on S3, where `s3://` URIs are S3's own objects.
    pub fn buckets(&self) -> Option<Buckets> {
        let home = self.engine.home();
        match home.artifact_location() {
            store::Location::Local(_) => Some(Buckets::new(home.s3_folder(), home.s3_uploads())),
            store::Location::S3 { .. } => None,
        }
    }
}

/// A body on its way in, in a file beside the S3 folder.
pub struct Scratch {
    path: PathBuf,
    file: Option<File>,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, open for writing its body.
    pub fn file(&mut self) -> Result<&mut File> {
        self.file.as_mut().ok_or_else(|| io::Error::other("the body was put already").into())
    }

    pub fn size(&self) -> Result<u64> {
        Ok(fs::metadata(&self.path)?.len())
    }

    /// Moves the body to `path`, whole.
    fn persist(mut self, path: &Path) -> Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        fs::rename(&self.path, path)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// S3's rule for a bucket's name (less its rule against names shaped like IP addresses).
pub fn bucket_name_ok(name: &str) -> bool {
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(name.as_bytes().first())
        && edge(name.as_bytes().last())
        && !name.contains("..")
}

/// Whether a key can be a path under a bucket's folder: no part empty, `.` or `..` (but a last
/// `/`, a folder), no NUL, at most 1024 bytes.
pub fn key_ok(key: &str) -> bool {
    let body = key.strip_suffix('/').unwrap_or(key);
    !body.is_empty()
        && key.len() <= MAX_KEY
        && !key.contains('\0')
        && body.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && part.len() <= 255)
}

fn checked_bucket(name: &str) -> Result<&str> {
    bucket_name_ok(name).then_some(name).ok_or_else(|| BucketError::InvalidBucketName(names::excerpt(name, 70)))
}

fn checked_key(key: &str) -> Result<&str> {
    key_ok(key).then_some(key.trim_end_matches('/')).ok_or_else(|| {
        BucketError::InvalidKey(format!(
            "{:?} cannot be a key here: this server keeps objects as files, so a key is at most 1024 bytes \
             and its parts between / are not empty, . or ..",
            names::excerpt(key, 120)
        ))
    })
}

/// A listing being filled, in S3's order (by the keys' bytes).
struct Page<'a> {
    query: &'a ListQuery<'a>,
    listing: Listing,
    /// The last key or prefix given, where the next page starts.
    last: Option<String>,
    full: bool,
}

impl Page<'_> {
    /// Gives the keys under `dir`, each starting `base`, in order until the page is full: a
    /// folder sorts as its name and `/` (the keys in it do), so a walk of sorted folders is sorted.
    /// Plain files are objects, empty folders `name/` objects; links are not followed, and what
    /// goes while the walk runs is not listed.
    fn walk(&mut self, dir: &Path, base: &str) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let (Some(name), Ok(metadata)) = (entry.file_name().to_str().map(str::to_owned), entry.metadata()) else {
                continue;
            };
            if metadata.is_dir() {
                keys.push((format!("{base}{name}/"), Some(entry.path()), metadata));
            } else if metadata.is_file() {
                keys.push((format!("{base}{name}"), None, metadata));
            }
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let (prefix, after) = (self.query.prefix, self.query.after);
        for (key, folder, metadata) in keys {
            if self.full {
                break;
            }
            let Some(folder) = folder else {
                self.offer(key, &metadata);
                continue;
            };
            // A folder whose keys cannot be on the page: outside the prefix, or all before `after`.
            let outside = !key.starts_with(prefix) && !prefix.starts_with(key.as_str());
            if outside || after.is_some_and(|after| after > key.as_str() && !after.starts_with(key.as_str())) {
                continue;
            }
            if is_empty_dir(&folder) {
                self.offer(key, &metadata);
            } else if let Some(common) = self.common_prefix(&key) {
                // Every key in the folder has this common prefix: one entry, and no walk.
                self.give_prefix(common);
            } else {
                self.walk(&folder, &key)?;
            }
        }
        Ok(())
    }

    /// The common prefix a key is listed under, when the delimiter is in it past the prefix.
    fn common_prefix(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(self.query.prefix)?;
        let delimiter = self.query.delimiter.filter(|d| !d.is_empty())?;
        rest.find(delimiter).map(|at| format!("{}{}", self.query.prefix, &rest[..at + delimiter.len()]))
    }

    fn offer(&mut self, key: String, metadata: &fs::Metadata) {
        if !key.starts_with(self.query.prefix) {
            return;
        }
        if let Some(common) = self.common_prefix(&key) {
            return self.give_prefix(common);
        }
        if let Some(after) = self.query.after {
            // After a common prefix, the keys under it were given already.
            let under =
                self.query.delimiter.is_some_and(|d| !d.is_empty() && after.ends_with(d)) && key.starts_with(after);
            if key.as_str() <= after || under {
                return;
            }
        }
        if self.room() {
            self.last = Some(key.clone());
            self.listing.objects.push(object(key, metadata));
        }
    }

    fn give_prefix(&mut self, common: String) {
        if self.query.after.is_some_and(|after| common.as_str() <= after)
            || self.listing.prefixes.last() == Some(&common)
        {
            return;
        }
        if self.room() {
            self.last = Some(common.clone());
            self.listing.prefixes.push(common);
        }
    }

    /// Whether one more entry fits; when not, the page is full and says where the next starts.
    fn room(&mut self) -> bool {
        if self.listing.objects.len() + self.listing.prefixes.len() < self.query.max {
            return true;
        }
        self.full = true;
        self.listing.next = self.last.clone();
        false
    }
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// Where a key is: a plain file, a folder, or nothing (which a link on the way also is).
enum Found {
    File(PathBuf, fs::Metadata),
    Folder(PathBuf, fs::Metadata),
    Nothing,
}

fn object(key: String, metadata: &fs::Metadata) -> Object {
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let size = if metadata.is_dir() { 0 } else { metadata.len() };
    Object { key, size, modified, etag: etag(size, Some(modified)) }
}

fn etag(size: u64, modified: Option<SystemTime>) -> String {
    let nanos = modified.and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let digest = sha2::Sha256::digest(format!("{size}:{nanos}"));
    // `-1`, as a multipart object's ETag ends, says it is no MD5 of the body.
    format!("\"{}-1\"", hex::encode(&digest[..16]))
}

fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets() -> (tempfile::TempDir, Buckets) {
        let dir = tempfile::tempdir().unwrap();
        let buckets = Buckets::new(dir.path().join("s3"), dir.path().join("s3-uploads"));
        (dir, buckets)
    }

    fn put(buckets: &Buckets, key: &str, body: &[u8]) -> Result<Object> {
        let mut scratch = buckets.scratch()?;
        scratch.file()?.write_all(body)?;
        buckets.put("data", key, scratch)
    }

    #[test]
    fn keys_are_files_and_a_listing_groups_them_by_delimiter_in_pages() {
        let (_dir, buckets) = buckets();
        buckets.create_bucket("data").unwrap();
        for key in ["a.csv", "train/x.csv", "train/y.csv", "test/z.csv", "b.csv"] {
            put(&buckets, key, key.as_bytes()).unwrap();
        }
        let all = ListQuery { prefix: "", delimiter: Some("/"), after: None, max: 1000 };
        let listing = buckets.list("data", &all).unwrap();
        let keys: Vec<_> = listing.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a.csv", "b.csv"]);
        assert_eq!(listing.prefixes, ["test/", "train/"]);
        assert!(listing.next.is_none());
        // Pages of two, each starting after the last page's last key or prefix.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = buckets.list("data", &ListQuery { after: after.as_deref(), max: 2, ..all }).unwrap();
            seen.extend(page.objects.iter().map(|o| o.key.clone()).chain(page.prefixes.iter().cloned()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, ["a.csv", "b.csv", "test/", "train/"]);
        let train = ListQuery { prefix: "train/", delimiter: None, after: None, max: 1000 };
        let keys: Vec<_> = buckets.list("data", &train).unwrap().objects.into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["train/x.csv", "train/y.csv"]);
    }

    #[test]
    fn every_page_of_every_listing_is_what_sorting_all_keys_gives() {
        let (_dir, buckets) = buckets();
        buckets.create_bucket("data").unwrap();
        let keys =
            ["a-b", "a/b", "a/c/d", "a/c/e", "a0", "b/x-y/z", "b/x/z", "b/x0", "b/y/", "c-", "c-d/e", "c.d/e", "c/"];
        for key in keys {
            put(&buckets, key, b"").unwrap();
        }
        // What S3 answers: all keys sorted, those under the prefix, grouped at the delimiter.
        let expected = |prefix: &str, delimiter: Option<&str>| {
            let mut sorted: Vec<&str> = keys.iter().copied().filter(|k| k.starts_with(prefix)).collect();
            sorted.sort();
            let mut entries: Vec<String> = Vec::new();
            for key in sorted {
                let rest = &key[prefix.len()..];
                let entry = match delimiter.and_then(|d| rest.find(d).map(|at| (at, d))) {
                    Some((at, d)) => format!("{prefix}{}", &rest[..at + d.len()]),
                    None => key.to_owned(),
                };
                if entries.last() != Some(&entry) {
                    entries.push(entry);
                }
            }
            entries
        };
        for prefix in ["", "a", "a/", "a/c", "b/", "b/x", "c", "zz"] {
            for delimiter in [None, Some("/"), Some("-"), Some("/c/")] {
                for max in [1, 2, 3, 1000] {
                    let (mut got, mut after) = (Vec::new(), None::<String>);
                    loop {
                        let query = ListQuery { prefix, delimiter, after: after.as_deref(), max };
                        let page = buckets.list("data", &query).unwrap();
                        assert!(page.objects.len() + page.prefixes.len() <= max);
                        let mut entries: Vec<String> =
                            page.objects.iter().map(|o| o.key.clone()).chain(page.prefixes.iter().cloned()).collect();
                        entries.sort();
                        got.extend(entries);
                        match page.next {
                            Some(next) => after = Some(next),
                            None => break,
                        }
                    }
                    assert_eq!(
                        got,
                        expected(prefix, delimiter),
                        "prefix {prefix:?}, delimiter {delimiter:?}, pages of {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_key_outside_its_bucket_or_across_an_object_is_refused_and_changes_nothing() {
        let (dir, buckets) = buckets();
        buckets.create_bucket("data").unwrap();
        for key in ["../escape", "a/../../escape", "./a", "a//b", "", "/a", "a\0b"] {
            assert!(matches!(put(&buckets, key, b"x"), Err(BucketError::InvalidKey(_))), "{key:?}");
        }
        put(&buckets, "a", b"file").unwrap();
        assert!(matches!(put(&buckets, "a/b", b"x"), Err(BucketError::InvalidKey(_))));
        put(&buckets, "c/d", b"x").unwrap();
        assert!(matches!(put(&buckets, "c", b"x"), Err(BucketError::InvalidKey(_))));
        assert!(!dir.path().join("escape").exists());
        assert!(matches!(buckets.create_bucket("../x"), Err(BucketError::InvalidBucketName(_))));
        assert!(matches!(put(&buckets, "x", b"").and(buckets.head("nope", "x")), Err(BucketError::NoSuchBucket(_))));
        // Nothing was left half-written beside the folder.
        let left: Vec<_> = fs::read_dir(dir.path().join("s3-uploads")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn deleting_the_last_key_under_a_prefix_removes_its_folders_and_a_bucket_must_be_empty_to_go() {
        let (_dir, buckets) = buckets();
        buckets.create_bucket("data").unwrap();
        put(&buckets, "p/q/r.csv", b"x").unwrap();
        assert!(matches!(buckets.delete_bucket("data"), Err(BucketError::BucketNotEmpty(_))));
        buckets.delete("data", "p/q/r.csv").unwrap();
        buckets.delete("data", "p/q/r.csv").unwrap();
        buckets.delete_bucket("data").unwrap();
        assert!(buckets.list_buckets().unwrap().is_empty());
    }

    #[test]
    fn a_link_in_a_bucket_is_as_if_nothing_were_there_and_nothing_beyond_it_is_touched() {
        let (dir, buckets) = buckets();
        buckets.create_bucket("data").unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("s3/data/link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), dir.path().join("s3/data/file")).unwrap();
        for key in ["link/secret", "file"] {
            assert!(matches!(buckets.head("data", key), Err(BucketError::NoSuchKey(_))), "{key}");
            assert!(matches!(buckets.open("data", key), Err(BucketError::NoSuchKey(_))), "{key}");
            assert!(matches!(buckets.copy("data", key, None), Err(BucketError::NoSuchKey(_))), "{key}");
            buckets.delete("data", key).unwrap();
        }
        assert!(matches!(put(&buckets, "link/new", b"x"), Err(BucketError::InvalidKey(_))));
        assert_eq!(fs::read_to_string(outside.join("secret")).unwrap(), "secret");
        assert!(!outside.join("new").exists());
        for prefix in ["", "link/"] {
            let query = ListQuery { prefix, delimiter: None, after: None, max: 1000 };
            assert!(buckets.list("data", &query).unwrap().objects.is_empty(), "{prefix:?}");
        }
        std::os::unix::fs::symlink(&outside, dir.path().join("s3/linked")).unwrap();
        assert!(matches!(buckets.bucket("linked"), Err(BucketError::NoSuchBucket(_))));
        assert_eq!(buckets.list_buckets().unwrap().len(), 1);
    }

    #[test]
    fn a_key_ending_in_a_slash_is_an_empty_folder_listed_until_it_is_deleted() {
        let (_dir, buckets) = buckets();
        buckets.create_bucket("data").unwrap();
        put(&buckets, "empty/", b"").unwrap();
        put(&buckets, "file", b"x").unwrap();
        let all = ListQuery { prefix: "", delimiter: None, after: None, max: 1000 };
        let keys: Vec<_> = buckets.list("data", &all).unwrap().objects.into_iter().map(|o| (o.key, o.size)).collect();
        assert_eq!(keys, [("empty/".to_owned(), 0), ("file".to_owned(), 1)]);
        assert_eq!(buckets.head("data", "empty/").unwrap().size, 0);
        assert!(matches!(buckets.head("data", "empty"), Err(BucketError::NoSuchKey(_))));
        assert!(matches!(buckets.head("data", "file/"), Err(BucketError::NoSuchKey(_))));
        buckets.delete("data", "file/").unwrap();
        assert!(buckets.head("data", "file").is_ok(), "file/ is not file");
        buckets.delete("data", "empty/").unwrap();
        buckets.delete("data", "file").unwrap();
        buckets.delete_bucket("data").unwrap();
    }

    #[test]
    fn a_multipart_upload_joins_the_listed_parts_in_order_and_checks_their_etags() {
        let (_dir, buckets) = buckets();
        buckets.create_bucket("data").unwrap();
        let id = buckets.begin_upload("data", "big.csv").unwrap();
        let mut tags = Vec::new();
        for (number, body) in [(1, b"first,".as_slice()), (2, b"second")] {
            let mut scratch = buckets.scratch().unwrap();
            scratch.file().unwrap().write_all(body).unwrap();
            tags.push((number, buckets.put_part("data", "big.csv", &id, number, scratch).unwrap()));
        }
        let wrong = [(1, tags[0].1.clone()), (2, tags[0].1.clone())];
        assert!(matches!(buckets.complete_upload("data", "big.csv", &id, &wrong), Err(BucketError::InvalidPart(_))));
        let backwards = [tags[1].clone(), tags[0].clone()];
        assert!(matches!(
            buckets.complete_upload("data", "big.csv", &id, &backwards),
            Err(BucketError::InvalidPart(_))
        ));
        assert!(matches!(buckets.complete_upload("data", "other", &id, &tags), Err(BucketError::NoSuchUpload(_))));
        let object = buckets.complete_upload("data", "big.csv", &id, &tags).unwrap();
        assert_eq!(object.size, 12);
        let (_, file) = buckets.open("data", "big.csv").unwrap();
        let mut file = file.unwrap();
        let mut body = String::new();
        io::Read::read_to_string(&mut file, &mut body).unwrap();
        assert_eq!(body, "first,second");
        assert!(matches!(buckets.abort_upload("data", "big.csv", &id), Err(BucketError::NoSuchUpload(_))));
        assert!(matches!(buckets.abort_upload("data", "big.csv", "../../etc"), Err(BucketError::NoSuchUpload(_))));
    }
}
