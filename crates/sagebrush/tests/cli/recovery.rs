//! `kill -9` in the middle of training: the next start fails the run as interrupted, and earlier runs and artifacts stay intact.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{Sandbox, text, wait_until};

#[test]
fn a_killed_run_is_failed_as_interrupted_on_the_next_start() {
    let sandbox = Sandbox::new();
    let iris = sandbox.project("iris", "iris");
    let first = sandbox.run(&["run", iris.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));
    let model = sandbox.json(&["models", "iris", "--json"])[0].clone();
    let artifact = sandbox.home.join("artifacts/iris-1/output/model.tar.gz");
    let sha_before = sha256(&artifact);
    assert_eq!(model["artifact_sha256"], sha_before);

    // A training job that runs until it is killed; its marker lets the test find it.
    let slow = sandbox.dir.path().join("slow");
    std::fs::create_dir_all(slow.join("algorithm")).unwrap();
    std::fs::create_dir_all(slow.join("data")).unwrap();
    std::fs::write(slow.join("data/train.csv"), "a,1\n").unwrap();
    std::fs::write(slow.join("algorithm/train"), "#!/bin/sh\necho training slowly\nexec sleep 3001\n").unwrap();
    std::fs::set_permissions(slow.join("algorithm/train"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        slow.join("sagebrush.toml"),
        "[pipeline]\nname = \"slow\"\n[algorithm]\nprocess = \"algorithm\"\n[[stage]]\nkind = \"train\"\nchannels = { training = \"data/train.csv\" }\n",
    )
    .unwrap();
    let mut running = sandbox.command(&["run", slow.to_str().unwrap()]).spawn().unwrap();
    let log = sandbox.home.join("logs/slow/1/train.log");
    wait_until(Duration::from_secs(30), "training to start", || {
        std::fs::read_to_string(&log).ok().filter(|l| l.contains("training slowly"))
    });
    running.kill().unwrap(); // SIGKILL
    running.wait().unwrap();

    // The training process dies with its parent.
    wait_until(Duration::from_secs(10), "the training process to be gone", || {
        let found = std::process::Command::new("pgrep").args(["-f", "sleep 3001"]).output().unwrap();
        (!found.status.success()).then_some(())
    });

    let shown = sandbox.json(&["show", "slow", "1", "--json"]);
    assert_eq!(shown["run"]["status"], "failed");
    assert!(shown["run"]["reason"].as_str().unwrap().contains("interrupted"), "{shown:#}");
    assert_eq!(shown["stages"][0]["status"], "failed");
    assert!(!sandbox.home.join("work/slow-1/jobs").exists(), "scratch files of the interrupted job are removed");
    assert!(!sandbox.home.join("artifacts/slow-1").exists(), "no half-written artifact");

    let earlier = sandbox.json(&["show", "iris", "1", "--json"]);
    assert_eq!(earlier["run"]["status"], "succeeded");
    assert_eq!(sha256(&artifact), sha_before);
    assert_eq!(sandbox.json(&["models", "--json"]).as_array().unwrap().len(), 1);
}

fn sha256(path: &std::path::Path) -> String {
    let output = std::process::Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or_default().to_owned()
}
