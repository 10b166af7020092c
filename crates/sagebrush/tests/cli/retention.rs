//! Retention: `gc` removes the runs past `keep_runs` with their files, keeps what prod serves and
//! what was approved, and a dry run removes nothing; a server collects after each run by itself.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Sandbox, text, wait_until};

fn numbers(sandbox: &Sandbox) -> Vec<i64> {
    let runs = sandbox.json(&["runs", "iris", "--json"]);
    runs.as_array().unwrap().iter().map(|r| r["number"].as_i64().unwrap()).collect()
}

fn versions(sandbox: &Sandbox) -> Vec<i64> {
    let models = sandbox.json(&["models", "--json"]);
    let mut versions: Vec<i64> = models.as_array().unwrap().iter().map(|m| m["version"].as_i64().unwrap()).collect();
    versions.sort();
    versions
}

/// The files a run leaves in the home: its logs, its work folder, its stored model.
fn files_of(home: &Path, number: i64) -> [std::path::PathBuf; 3] {
    [
        home.join(format!("logs/iris/{number}")),
        home.join(format!("work/iris-{number}")),
        home.join(format!("artifacts/iris-{number}/output/model.tar.gz")),
    ]
}

#[test]
fn gc_keeps_what_prod_serves_and_what_was_approved_removes_the_rest_and_a_dry_run_removes_nothing() {
    let sandbox = Sandbox::new();
    let dir = sandbox.project("iris", "iris");
    let file = dir.join("sagebrush.toml");
    // Ten while the runs are made (a process that runs a queue collects after each run), one after.
    let plain =
        std::fs::read_to_string(&file).unwrap().replacen("name = \"iris\"", "name = \"iris\"\nkeep_runs = 10", 1);
    let prod = "[[stage]]\nname = \"deploy-prod\"";
    let approving = plain.replacen(prod, &format!("[[stage]]\nname = \"approve\"\nkind = \"approval\"\n\n{prod}"), 1);
    let project = dir.to_str().unwrap();

    // Runs 1 and 2 reach prod in turn; run 3 is approved on its way; run 4 is what prod serves now.
    std::fs::write(&file, &plain).unwrap();
    for _ in 1..=2 {
        let run = sandbox.run(&["run", project]);
        assert!(run.status.success(), "{}", text(&run));
    }
    std::fs::write(&file, &approving).unwrap();
    assert_eq!(sandbox.run(&["run", project]).status.code(), Some(4));
    let approved = sandbox.run(&["approve", "iris", "3", "--reason", "kept for an audit"]);
    assert!(approved.status.success(), "{}", text(&approved));
    std::fs::write(&file, &plain).unwrap();
    assert!(sandbox.run(&["run", project]).status.success());
    std::fs::write(&file, plain.replace("keep_runs = 10", "keep_runs = 1")).unwrap();
    let ghost = sandbox.home.join("capture/gone-endpoint");
    std::fs::create_dir_all(&ghost).unwrap();
    std::fs::write(ghost.join("capture-0000000000001-000001.jsonl"), "{}\n").unwrap();
    for number in 1..=4 {
        for path in files_of(&sandbox.home, number) {
            assert!(path.exists(), "{}", path.display());
        }
    }

    // A dry run lists what would go and touches nothing.
    let dry = sandbox.json(&["gc", "--dry-run", "--json"]);
    let listed: Vec<i64> = dry["removed"].as_array().unwrap().iter().map(|r| r["number"].as_i64().unwrap()).collect();
    assert_eq!(listed, [1, 2], "{dry:#}");
    assert_eq!(dry["removed"][0]["model_versions"], serde_json::json!(["iris v1"]));
    assert!(dry["removed"][0]["bytes"].as_u64().unwrap() > 0, "{dry:#}");
    assert_eq!(dry["kept"][0]["number"], 3);
    assert_eq!(dry["kept"][0]["why"], "iris v3 is approved", "{dry:#}");
    assert_eq!(dry["captures"], serde_json::json!(["gone-endpoint"]));
    let table = sandbox.run(&["gc", "--dry-run"]);
    assert!(text(&table).contains("would remove iris #1: "), "{}", text(&table));
    assert_eq!(numbers(&sandbox), [4, 3, 2, 1]);
    assert_eq!(versions(&sandbox), [1, 2, 3, 4]);
    assert!(files_of(&sandbox.home, 1).iter().all(|p| p.exists()) && ghost.exists());

    // The real one: runs 1 and 2 go with their files; 3 (approved) and 4 (in prod) stay whole.
    let done = sandbox.json(&["gc", "--json"]);
    assert_eq!(done["removed"].as_array().unwrap().len(), 2, "{done:#}");
    assert_eq!(numbers(&sandbox), [4, 3]);
    assert_eq!(versions(&sandbox), [3, 4]);
    for number in [1, 2] {
        for path in files_of(&sandbox.home, number) {
            assert!(!path.exists(), "{} is still there", path.display());
        }
        let shown = sandbox.run(&["show", "iris", &number.to_string()]);
        assert_eq!(shown.status.code(), Some(1), "{}", text(&shown));
    }
    for number in [3, 4] {
        for path in files_of(&sandbox.home, number) {
            assert!(path.exists(), "{}", path.display());
        }
    }
    assert!(!ghost.exists());
    let audit = sandbox.json(&["audit", "--json"]);
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "POST /api/v1/gc"), "{audit:#}");
    assert_eq!(sandbox.json(&["gc", "--json"])["removed"], serde_json::json!([]), "nothing more to remove");

    // A server collects by itself after each run: run 5 replaces 4 in prod, so 4 goes.
    let served = sandbox.serve(&["server"]);
    assert!(sandbox.run(&["run", project]).status.success());
    wait_until(Duration::from_secs(30), "run 4 to be collected", || (numbers(&sandbox) == [5, 3]).then_some(()));
    assert_eq!(versions(&sandbox), [3, 5]);
    assert_eq!(served.invoke("iris-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 200);
    let bad = sandbox.run(&["gc", "--dry-run", "--json", "--bogus"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

/// Whether the local registry of the home holds `tiny@digest`.
fn in_registry(sandbox: &Sandbox, digest: &str) -> bool {
    let registry = std::fs::read_to_string(sandbox.home.join("registry/registry.json")).unwrap();
    let address: serde_json::Value = serde_json::from_str(&registry).unwrap();
    let url = format!("http://{}/v2/tiny/manifests/{digest}", address["address"].as_str().unwrap());
    let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
    let status = crate::harness::client().head(&url).header("accept", accept).send().unwrap().status();
    assert!(status == 200 || status == 404, "HEAD {url}: {status}");
    status == 200
}

fn docker_has(image: &str) -> bool {
    let inspected = std::process::Command::new("docker").args(["image", "inspect", image]).output().unwrap();
    inspected.status.success()
}

#[test]
fn gc_removes_the_images_a_removed_run_pushed_unless_a_kept_run_names_the_same_one() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("tiny");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY payload /payload\n").unwrap();
    let pipeline = |keep: usize| {
        format!(
            "[pipeline]\nname = \"tiny\"\nkeep_runs = {keep}\n[algorithm]\nimage = \"tiny\"\n[[stage]]\nkind = \"build\"\n"
        )
    };
    std::fs::write(dir.join("sagebrush.toml"), pipeline(10)).unwrap();
    let _served = sandbox.serve(&["server"]);
    // Runs 1 and 3 build the same image; run 2 another.
    let mut images = Vec::new();
    for (number, payload) in [(1, "one"), (2, "two"), (3, "one")] {
        std::fs::write(dir.join("payload"), payload).unwrap();
        let run = sandbox.run(&["run", dir.to_str().unwrap()]);
        assert!(run.status.success(), "{}", text(&run));
        let shown = sandbox.json(&["show", "tiny", &number.to_string(), "--json"]);
        let built = &shown["stages"][0]["outputs"];
        let digest = built["digest"].as_str().unwrap().to_owned();
        let repository = built["reference"].as_str().unwrap().split('@').next().unwrap().to_owned();
        assert!(docker_has(&format!("{repository}:{number}")), "{built:#}");
        images.push((format!("{repository}:{number}"), digest));
    }
    assert_eq!(images[0].1, images[2].1, "the same build, the same digest");
    assert_ne!(images[0].1, images[1].1);
    std::fs::write(dir.join("sagebrush.toml"), pipeline(1)).unwrap();

    let collected = sandbox.json(&["gc", "--json"]);
    let removed: Vec<&str> = collected["removed"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["images"].as_array().unwrap())
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 2, "{collected:#}");
    assert!(!docker_has(&images[0].0) && !docker_has(&images[1].0), "the removed runs' tags are gone");
    assert!(docker_has(&images[2].0), "the kept run's tag stays");
    assert!(!in_registry(&sandbox, &images[1].1), "run 2's image left the registry");
    assert!(in_registry(&sandbox, &images[0].1), "run 3 still names run 1's image");
}
