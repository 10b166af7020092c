//! The built-in algorithms as a SageMaker container image: `FROM scratch`, this binary and the libraries it loads.
//!
//! The image runs `sagebrush algorithm train|serve`, so `docker run <image> train` and
//! `docker run <image> serve` follow the same contract as any bring-your-own image. It is
//! tagged with the binary's hash and built once per binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::Error;
use crate::backend::Images;
use crate::error::io_error;

const REPOSITORY: &str = "sagebrush/builtin";

/// The image's tag for the binary at `exe`, building the image if the Docker Engine does not have it.
pub(crate) async fn ensure(images: &dyn Images, exe: &Path, scratch: &Path) -> Result<String, Error> {
    let tag = tag(exe)?;
    if images.inspect(&tag).await.is_ok() {
        return Ok(tag);
    }
    images.check().await?;
    let context = scratch.join(format!("builtin-image-{}", runtime::unique_suffix()));
    let result = build(images, exe, &context, &tag).await;
    let _ = std::fs::remove_dir_all(&context);
    result.map(|()| tag)
}

fn tag(exe: &Path) -> Result<String, Error> {
    use sha2::Digest;
    let bytes = std::fs::read(exe).map_err(io_error(exe))?;
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    Ok(format!("{REPOSITORY}:{}-{}", env!("CARGO_PKG_VERSION"), &digest[..12]))
}

async fn build(images: &dyn Images, exe: &Path, context: &Path, tag: &str) -> Result<(), Error> {
    let rootfs = context.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(io_error(&rootfs))?;
    copy_binary(exe, &rootfs.join("sagebrush")).await?;
    for library in shared_libraries(exe).await? {
        let relative = library.strip_prefix("/").unwrap_or(&library);
        let target = rootfs.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        // `copy` follows symlinks, so the image gets the library itself under the name the loader asks for.
        std::fs::copy(&library, &target).map_err(io_error(&library))?;
    }
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/sagebrush\", \"algorithm\"]\n";
    let path = context.join("Dockerfile");
    std::fs::write(&path, dockerfile).map_err(io_error(&path))?;
    // The build output goes nowhere: the image is two COPY steps, and a failure's message is in the error.
    let mut output = tokio::io::sink();
    images.build(context, tag, &mut output).await.map_err(|e| {
        Error::Runtime(runtime::Error::Docker(format!("building the built-in algorithm's image {tag}: {e}")))
    })?;
    Ok(())
}

/// Copies the binary without its debug sections when `strip` is installed: a quarter of the size.
async fn copy_binary(exe: &Path, target: &Path) -> Result<(), Error> {
    let stripped = tokio::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(target)
        .arg(exe)
        .stdin(Stdio::null())
        .output()
        .await
        .is_ok_and(|output| output.status.success());
    if !stripped {
        std::fs::copy(exe, target).map_err(io_error(exe))?;
    }
    Ok(())
}

/// The absolute paths `ldd` lists for `exe`: its shared libraries and the loader.
async fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>, Error> {
    let output = tokio::process::Command::new("ldd")
        .arg(exe)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| Error::Runtime(runtime::Error::Spawn { program: "ldd".to_owned(), source }))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // Lines look like `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`.
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().find(|t| t.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}
