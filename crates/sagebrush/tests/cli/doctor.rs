//! `sagebrush doctor` on this machine: every check named, each failure with its fix.

use crate::harness::{Sandbox, text};

#[test]
fn doctor_checks_the_home_and_what_pipelines_need_and_fails_on_an_unwritable_store() {
    let sandbox = Sandbox::new();
    let fresh = sandbox.json(&["doctor", "--json"]);
    let names: Vec<&str> = fresh.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    let mut expected = vec!["database", "artifacts", "process", "docker", "registry", "git"];
    if cfg!(feature = "aws") {
        // A build with AWS checks the credentials and ECR, which this test has none of.
        expected.splice(2..2, ["aws", "ecr"]);
        for (i, fix) in [(2, "AWS_ACCESS_KEY_ID"), (3, "only registry = \"ecr\" build stages need ECR")] {
            assert_eq!(fresh[i]["status"], "warn", "{fresh:#}");
            assert!(fresh[i]["fix"].as_str().unwrap().contains(fix), "{fresh:#}");
        }
    }
    assert_eq!(names, expected, "{fresh:#}");
    // The test script installs and starts all of these.
    let aws = |c: &serde_json::Value| c["name"] == "aws" || c["name"] == "ecr";
    assert!(fresh.as_array().unwrap().iter().all(|c| c["status"] == "ok" || aws(c)), "{fresh:#}");
    assert!(fresh[0]["detail"].as_str().unwrap().contains("created by the first command"), "{fresh:#}");

    let run = sandbox.run(&["run", sandbox.project("iris", "iris").to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run));
    let human = sandbox.run(&["doctor"]);
    assert!(human.status.success(), "{}", text(&human));
    assert!(String::from_utf8_lossy(&human.stdout).starts_with("ok   database   SQLite "), "{}", text(&human));

    // An artifact folder this user cannot write: the line fails, says why and what to do, and doctor exits 1.
    let file = sandbox.dir.path().join("not-a-folder");
    std::fs::write(&file, "").unwrap();
    let broken = sandbox.run(&["--artifacts", file.to_str().unwrap(), "doctor"]);
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(out.contains("FAIL artifacts") && out.contains("fix: check the folder's owner"), "{out}");
}
