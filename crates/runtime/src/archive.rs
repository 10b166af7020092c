//! `model.tar.gz`: packing a model directory and unpacking it safely.

use std::path::{Component, Path};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::{Error, io_error};

/// Packs the contents of `dir` (not the directory itself) into a gzipped tar at `archive`.
///
/// Only regular files and directories are packed: a link would make a model that [`unpack`]
/// refuses, so it is refused here, while the training job can still fail with the reason.
pub fn pack(dir: &Path, archive: &Path) -> Result<(), Error> {
    refuse_special_files(dir, dir)?;
    let file = std::fs::File::create(archive).map_err(io_error(archive))?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).map_err(io_error(dir))?;
    let encoder = builder.into_inner().map_err(io_error(archive))?;
    encoder.finish().map_err(io_error(archive))?;
    Ok(())
}

fn refuse_special_files(root: &Path, dir: &Path) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let kind = entry.file_type().map_err(io_error(&entry.path()))?;
        let shown = || entry.path().strip_prefix(root).unwrap_or(&entry.path()).display().to_string();
        if kind.is_dir() {
            refuse_special_files(root, &entry.path())?;
        } else if kind.is_symlink() {
            return Err(Error::UnsafeArchive {
                entry: shown(),
                why: "the model holds a symbolic link, which SageMaker-style unpacking refuses; write regular files to /opt/ml/model",
            });
        } else if !kind.is_file() {
            return Err(Error::UnsafeArchive {
                entry: shown(),
                why: "the model may hold only regular files and directories",
            });
        }
    }
    Ok(())
}

/// The contents of the file `name` in a `model.tar.gz`, read in memory (nothing is written, so no path can escape).
pub fn read_member(bytes: &[u8], name: &str) -> Result<Option<Vec<u8>>, Error> {
    let broken = |e: std::io::Error| Error::UnsafeArchive {
        entry: name.to_owned(),
        why: if e.kind() == std::io::ErrorKind::InvalidData {
            "the archive is damaged"
        } else {
            "the archive cannot be read"
        },
    };
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = entry.path().map_err(broken)?.to_string_lossy().trim_start_matches("./").to_owned();
        if path == name && entry.header().entry_type().is_file() {
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut contents).map_err(broken)?;
            return Ok(Some(contents));
        }
    }
    Ok(None)
}

/// Unpacks a gzipped tar into `dir` (absent or empty), refusing links, devices, absolute paths and `..`.
///
/// Model archives come from user code, so nothing in one may write outside `dir`; and a refused
/// archive leaves nothing behind: it is unpacked beside `dir` and moved into place only whole.
pub fn unpack(bytes: &[u8], dir: &Path) -> Result<(), Error> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = dir.with_file_name(format!(".{name}.partial-{}", crate::unique_suffix()));
    let unpacked = unpack_into(bytes, &partial).and_then(|()| {
        if dir.is_dir() {
            // An empty folder made for it; a full one is an error of the caller's, reported by the rename.
            let _ = std::fs::remove_dir(dir);
        }
        std::fs::rename(&partial, dir).map_err(io_error(dir))
    });
    if unpacked.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    unpacked
}

fn unpack_into(bytes: &[u8], dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let entries = archive.entries().map_err(io_error(dir))?;
    for entry in entries {
        let mut entry = entry.map_err(io_error(dir))?;
        let path = entry.path().map_err(io_error(dir))?.into_owned();
        let shown = path.display().to_string();
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(Error::UnsafeArchive { entry: shown, why: "only regular files and directories are allowed" });
        }
        if path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(Error::UnsafeArchive { entry: shown, why: "the path leaves the model directory" });
        }
        entry.unpack_in(dir).map_err(io_error(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_files() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        std::fs::write(model.join("a.json"), "{}").unwrap();
        std::fs::write(model.join("sub/b.bin"), [1u8, 2, 3]).unwrap();
        let archive = tmp.path().join("model.tar.gz");
        pack(&model, &archive).unwrap();
        let out = tmp.path().join("out");
        unpack(&std::fs::read(&archive).unwrap(), &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.json")).unwrap(), "{}");
        assert_eq!(std::fs::read(out.join("sub/b.bin")).unwrap(), vec![1, 2, 3]);
    }

    fn archive_with(build: impl FnOnce(&mut tar::Builder<GzEncoder<Vec<u8>>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        build(&mut builder);
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn refuses_parent_traversal() {
        let bytes = archive_with(|b| {
            let mut header = tar::Header::new_gnu();
            let data = b"owned";
            header.set_size(data.len() as u64);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses "..", so write the raw name the way a hostile archive would.
            header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
            header.set_cksum();
            b.append(&header, &data[..]).unwrap();
        });
        let tmp = tempfile::tempdir().unwrap();
        let err = unpack(&bytes, &tmp.path().join("out")).unwrap_err();
        assert!(err.to_string().contains("leaves the model directory"), "{err}");
        assert!(!tmp.path().join("escape").exists());
    }

    #[test]
    fn refuses_symlinks() {
        let bytes = archive_with(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            b.append_link(&mut header, "link", "/etc").unwrap();
        });
        let tmp = tempfile::tempdir().unwrap();
        let err = unpack(&bytes, &tmp.path().join("out")).unwrap_err();
        assert!(err.to_string().contains("only regular files"), "{err}");
    }

    #[test]
    fn a_refused_archive_leaves_nothing_unpacked() {
        let bytes = archive_with(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_size(2);
            header.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut header, "model.json", &b"{}"[..]).unwrap();
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            b.append_link(&mut link, "zz-link", "/etc").unwrap();
        });
        let tmp = tempfile::tempdir().unwrap();
        assert!(unpack(&bytes, &tmp.path().join("model-a")).is_err());
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_model_with_a_link_is_refused_when_packed() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        std::fs::write(model.join("a.json"), "{}").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", model.join("sub/passwd")).unwrap();
        let err = pack(&model, &tmp.path().join("model.tar.gz")).unwrap_err();
        assert!(err.to_string().contains("sub/passwd") && err.to_string().contains("symbolic link"), "{err}");
    }
}
