//! Where a process-runtime program is put in its sandbox: what an image's `WORKDIR` would be.

use std::path::{Component, Path};

/// Where a container built from the workshop's Dockerfile has its program: its `WORKDIR`, first on `PATH`.
pub const DEFAULT_WORKDIR: &str = "/opt/program";

/// What SageMaker lays out in `/opt/ml`, which a program folder cannot take.
const SAGEMAKERS: &[&str] = &["model", "input", "output", "checkpoints", "failure"];

/// Paths the sandbox makes itself, which a program folder cannot take.
const RESERVED: &[&str] = &["/opt/ml", "/tmp", "/var/tmp", "/run", "/var/run", "/var/log", "/dev", "/proc", "/sys"];

/// Whether `workdir` can hold a program: an absolute path of plain names (letters, digits, `.`,
/// `_`, `-`; never `.` or `..` alone), not `/`, nor a place the sandbox makes itself (its
/// `/tmp`, `/run`, ...), though it may be inside the job's `/opt/ml`.
pub fn check_workdir(workdir: &Path) -> Result<(), String> {
    let plain_name = |c: Component<'_>| match c {
        Component::Normal(name) => name.to_str().is_some_and(|n| {
            !n.is_empty()
                && n != "."
                && n != ".."
                && n.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        }),
        _ => false,
    };
    let text = workdir.to_string_lossy();
    let plain = text.starts_with('/')
        && !text.contains("//")
        && !text.ends_with('/')
        && !text.split('/').skip(1).any(|part| part == "." || part == "..")
        && workdir.components().skip(1).all(plain_name);
    if !plain || workdir == Path::new("/") {
        return Err(format!(
            "`{}` must be an absolute path of names of letters, digits, `.`, `_` and `-`, like {DEFAULT_WORKDIR}",
            crate::excerpt(&text, 80)
        ));
    }
    // Not one of them, nor in one (but the job's own /opt/ml, beside what SageMaker puts there),
    // nor above one: the program laid there would cover it.
    let taken = RESERVED.iter().map(Path::new).find(|reserved| {
        let inside = if *reserved == Path::new("/opt/ml") {
            SAGEMAKERS.iter().any(|own| workdir.starts_with(Path::new("/opt/ml").join(own)))
        } else {
            workdir.starts_with(reserved)
        };
        inside || reserved.starts_with(workdir)
    });
    match taken {
        Some(reserved) => Err(format!(
            "`{}` would cover the sandbox's own {}; put the program elsewhere, like {DEFAULT_WORKDIR} or /opt/ml/code",
            workdir.display(),
            reserved.display()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workdir_is_an_absolute_plain_path_the_sandbox_does_not_make_itself() {
        for good in ["/opt/program", "/opt/ml/code", "/usr/src/app", "/srv/model-1.0"] {
            assert_eq!(check_workdir(Path::new(good)), Ok(()), "{good}");
        }
        for bad in [
            "opt/program",
            "/opt/../etc",
            "/opt/./x",
            "/opt//x",
            "/opt/x/",
            "/",
            "/tmp",
            "/tmp/x",
            "/opt/ml",
            "/proc/1",
            "/run/x",
            "/a b",
            "/a]:b",
            "/opt",
            "/var",
            "/opt/ml/model",
            "/opt/ml/input/data",
            "/opt/ml/output",
        ] {
            assert!(check_workdir(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
