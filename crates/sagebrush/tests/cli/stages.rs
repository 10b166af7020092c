//! Stage behaviour a pipeline author relies on: git checkout at a revision, max runtime, retries and timeouts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{Sandbox, git, text};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn shown(sandbox: &Sandbox, project: &str, number: u32) -> serde_json::Value {
    sandbox.json(&["show", project, &number.to_string(), "--json"])
}

#[test]
fn checkout_clones_a_git_repository_at_a_revision_and_records_its_commit() {
    let sandbox = Sandbox::new();
    // The algorithm's repository: a good commit, then a commit that breaks the training data.
    let repo = sandbox.dir.path().join("repo");
    let iris =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/iris/data/train.csv")).unwrap();
    write(&repo.join("data/train.csv"), &iris);
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "good data"]);
    let good = git(&repo, &["rev-parse", "HEAD"]);
    write(&repo.join("data/train.csv"), "setosa,not-a-number\n");
    git(&repo, &["commit", "--quiet", "-am", "broken data"]);
    let broken = git(&repo, &["rev-parse", "HEAD"]);

    let project = sandbox.dir.path().join("from-git");
    write(
        &project.join("sagebrush.toml"),
        &format!(
            r#"[pipeline]
name = "from-git"
[parameters]
rev = {{ type = "string", default = "main" }}
[algorithm]
builtin = "decision-tree"
[[stage]]
kind = "checkout"
repo = "{}"
rev = "${{rev}}"
[[stage]]
kind = "train"
channels = {{ training = "data/train.csv" }}
"#,
            repo.display()
        ),
    );
    let dir = project.to_str().unwrap();
    let at_good = sandbox.run(&["run", dir, "-p", &format!("rev={good}")]);
    assert!(at_good.status.success(), "{}", text(&at_good));
    assert_eq!(shown(&sandbox, "from-git", 1)["run"]["commit_sha"], good.as_str());

    let at_main = sandbox.run(&["run", dir]);
    assert_eq!(at_main.status.code(), Some(1), "{}", text(&at_main));
    let run = shown(&sandbox, "from-git", 2);
    assert_eq!(run["run"]["commit_sha"], broken.as_str());
    assert!(run["run"]["reason"].as_str().unwrap().contains("not-a-number"), "{run:#}");

    // A plain folder is used as it is and recorded as not being a repository.
    let plain = sandbox.project("iris", "iris");
    assert!(sandbox.run(&["run", plain.to_str().unwrap()]).status.success());
    let run = shown(&sandbox, "iris", 1);
    let checkout = run["stages"].as_array().unwrap().iter().find(|s| s["name"] == "checkout").unwrap();
    assert_eq!(checkout["outputs"]["git"], false, "{checkout:#}");
}

#[test]
fn a_job_past_its_max_runtime_is_stopped() {
    let sandbox = Sandbox::new();
    let project = sandbox.dir.path().join("slow");
    write(&project.join("data/train.csv"), "a,1\n");
    write(&project.join("algorithm/train"), "#!/bin/sh\necho started\nexec sleep 600\n");
    write(&project.join("algorithm/serve"), "#!/bin/sh\nexit 1\n");
    for name in ["train", "serve"] {
        std::fs::set_permissions(project.join("algorithm").join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    write(
        &project.join("sagebrush.toml"),
        r#"[pipeline]
name = "slow"
[algorithm]
process = "algorithm"
[[stage]]
kind = "train"
channels = { training = "data/train.csv" }
max_runtime = "1s"
"#,
    );
    let output = sandbox.run(&["run", project.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let run = shown(&sandbox, "slow", 1);
    let reason = run["run"]["reason"].as_str().unwrap();
    assert!(reason.contains("MaxRuntimeExceeded"), "{reason}");
}

#[test]
fn shell_stages_retry_and_time_out() {
    let sandbox = Sandbox::new();
    let project = sandbox.dir.path().join("shell");
    write(
        &project.join("sagebrush.toml"),
        r#"[pipeline]
name = "shell"
[[stage]]
name = "flaky"
kind = "shell"
command = "if [ -f tried ]; then echo second try; else touch tried; echo first try; exit 1; fi"
retries = 1
[[stage]]
name = "stuck"
kind = "shell"
command = "sleep 600"
timeout = "1s"
"#,
    );
    let output = sandbox.run(&["run", project.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let run = shown(&sandbox, "shell", 1);
    let stage = |name: &str| run["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(stage("flaky")["status"], "succeeded", "{run:#}");
    assert_eq!(stage("stuck")["status"], "failed", "{run:#}");
    assert!(run["run"]["reason"].as_str().unwrap().contains("timed out after 1s"), "{run:#}");
    let log = sandbox.run(&["logs", "shell", "1", "--stage", "flaky"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("first try") && log.contains("second try"), "{log}");
}
