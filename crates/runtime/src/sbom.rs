//! A software bill of materials for an image: the Debian and Python packages in its file system, as CycloneDX JSON.
//!
//! The image's file system is read from `docker export` as a tar stream, so nothing
//! runs inside the image and images without a shell (`FROM scratch`) work too. Those
//! have no package database; their regular files are listed instead.

use std::collections::BTreeMap;
use std::io::Read;

use futures::StreamExt;
use serde::Serialize;

use crate::{Error, docker};

/// One thing found in the image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Component {
    /// `deb`, `pypi` or `file`.
    pub kind: &'static str,
    /// The package name (or the file's path).
    pub name: String,
    /// The package version (or the file's size in bytes).
    pub version: String,
}

/// What an image is made of.
#[derive(Clone, Debug, Serialize)]
pub struct Sbom {
    /// The image as it was named.
    pub image: String,
    /// Its packages (and, without a package database, its files), sorted.
    pub components: Vec<Component>,
}

impl Sbom {
    /// Reads the image's file system and lists what is installed in it.
    pub async fn of_image(image: &str, labels: &docker::Labels) -> Result<Sbom, Error> {
        let name = docker::unique_name("sbom");
        docker::create_stopped(&name, image, labels).await?;
        let listed = match docker::export(&name) {
            Ok(stream) => {
                let reader =
                    tokio_util::io::StreamReader::new(stream.map(|chunk| chunk.map_err(std::io::Error::other)));
                let reader = tokio_util::io::SyncIoBridge::new(reader);
                tokio::task::spawn_blocking(move || components(reader))
                    .await
                    .unwrap_or_else(|e| Err(Error::Docker(format!("reading the image's files: {e}"))))
            }
            Err(e) => Err(e),
        };
        docker::remove(&name).await;
        Ok(Sbom { image: image.to_owned(), components: listed? })
    }

    /// Whether a package of that name is in the image.
    pub fn has_package(&self, name: &str) -> bool {
        self.components.iter().any(|c| c.kind != "file" && c.name.eq_ignore_ascii_case(name))
    }

    /// The CycloneDX 1.5 document, with package URLs for Debian and PyPI packages.
    pub fn cyclonedx(&self) -> serde_json::Value {
        let components: Vec<serde_json::Value> = self
            .components
            .iter()
            .map(|c| match c.kind {
                "file" => serde_json::json!({ "type": "file", "name": c.name, "properties": [{ "name": "size", "value": c.version }] }),
                kind => serde_json::json!({
                    "type": "library",
                    "name": c.name,
                    "version": c.version,
                    "purl": if kind == "deb" { format!("pkg:deb/debian/{}@{}", c.name, c.version) } else { format!("pkg:pypi/{}@{}", c.name.to_lowercase(), c.version) },
                }),
            })
            .collect();
        serde_json::json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": { "component": { "type": "container", "name": self.image } },
            "components": components,
        })
    }
}

/// Lists the packages in a file system tar stream.
pub fn components(tar: impl Read) -> Result<Vec<Component>, Error> {
    let read_error = |e: std::io::Error| Error::Docker(format!("reading the image's file system: {e}"));
    let mut archive = tar::Archive::new(tar);
    let mut found = Vec::new();
    let mut files = Vec::new();
    let mut has_dpkg = false;
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let path = entry.path().map_err(read_error)?.to_string_lossy().trim_start_matches("./").to_owned();
        let is_python_metadata = (path.contains(".dist-info/") && path.ends_with("/METADATA"))
            || (path.contains(".egg-info") && (path.ends_with(".egg-info") || path.ends_with(".egg-info/PKG-INFO")));
        if path == "var/lib/dpkg/status" {
            has_dpkg = true;
            found.extend(debian_packages(&read_text(&mut entry).map_err(read_error)?));
        } else if is_python_metadata && entry.header().entry_type().is_file() {
            found.extend(python_package(&read_text(&mut entry).map_err(read_error)?));
        } else if entry.header().entry_type().is_file() {
            files.push(Component { kind: "file", name: format!("/{path}"), version: entry.size().to_string() });
        }
    }
    if !has_dpkg && found.is_empty() {
        found = files;
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn read_text(entry: &mut impl Read) -> std::io::Result<String> {
    let mut text = String::new();
    entry.read_to_string(&mut text)?;
    Ok(text)
}

/// Installed packages in dpkg's status file: paragraphs of `Field: value` lines.
fn debian_packages(status: &str) -> Vec<Component> {
    status
        .split("\n\n")
        .filter_map(|paragraph| {
            let fields: BTreeMap<&str, &str> =
                paragraph.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k, v.trim())).collect();
            let installed = fields.get("Status").is_some_and(|s| s.ends_with(" installed"));
            match (installed, fields.get("Package"), fields.get("Version")) {
                (true, Some(name), Some(version)) => {
                    Some(Component { kind: "deb", name: (*name).to_owned(), version: (*version).to_owned() })
                }
                _ => None,
            }
        })
        .collect()
}

/// A Python distribution's `Name` and `Version` from its METADATA or PKG-INFO headers.
fn python_package(metadata: &str) -> Option<Component> {
    let header = metadata.split("\n\n").next().unwrap_or("");
    let field = |key: &str| header.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_owned());
    Some(Component { kind: "pypi", name: field("Name:")?, version: field("Version:")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, text.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn finds_debian_and_python_packages() {
        let status = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                      Package: python3-sklearn\nStatus: install ok installed\nVersion: 1.2.1+dfsg-1\n";
        let tar = tar_of(&[
            ("var/lib/dpkg/status", status),
            (
                "usr/lib/python3/dist-packages/Flask-2.2.2.egg-info/PKG-INFO",
                "Metadata-Version: 2.1\nName: Flask\nVersion: 2.2.2\n\nbody",
            ),
            ("usr/local/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA", "Name: six\nVersion: 1.16.0\n"),
            ("usr/bin/true", "elf"),
        ]);
        let found = components(tar.as_slice()).unwrap();
        let names: Vec<(&str, &str, &str)> =
            found.iter().map(|c| (c.kind, c.name.as_str(), c.version.as_str())).collect();
        assert_eq!(
            names,
            [
                ("deb", "libc6", "2.36-9"),
                ("deb", "python3-sklearn", "1.2.1+dfsg-1"),
                ("pypi", "Flask", "2.2.2"),
                ("pypi", "six", "1.16.0")
            ]
        );
    }

    #[test]
    fn lists_files_when_there_is_no_package_database() {
        let tar = tar_of(&[("sagebrush", "elf"), ("lib/x86_64-linux-gnu/libc.so.6", "so")]);
        let sbom = Sbom { image: "scratch".into(), components: components(tar.as_slice()).unwrap() };
        assert_eq!(sbom.components.len(), 2);
        assert_eq!(sbom.components[1].name, "/sagebrush");
        assert!(!sbom.has_package("sagebrush"), "files are not packages");
        assert_eq!(sbom.cyclonedx()["components"][1]["type"], "file");
    }
}
