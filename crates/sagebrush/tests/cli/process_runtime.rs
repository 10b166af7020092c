//! Process-runtime algorithms: a folder's `train` and `serve`, unmodified, each job with a private /opt/ml.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::harness::{Sandbox, SteadyLoad, endpoint, payload, text, wait_until};

#[test]
fn the_python_algorithm_goes_to_prod_and_is_updated_in_place() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris-python", "iris-python");
    let served = sandbox.serve(&["server"]);
    let first = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());

    let response = served.invoke("iris-python-prod", "text/csv", payload());
    assert_eq!(response.status(), 200);
    let body = response.text().unwrap();
    assert_eq!(body.lines().count(), 29, "{body}");
    assert!(body.lines().all(|l| ["setosa", "versicolor", "virginica"].contains(&l)), "{body}");
    // The container's own 415 comes back as SageMaker's ModelError, with the container's status.
    let refused = served.invoke("iris-python-prod", "application/json", "{}");
    assert_eq!(refused.status(), 424);
    assert_eq!(refused.json::<serde_json::Value>().unwrap()["OriginalStatusCode"], 415);

    // The new `serve` takes traffic only once it answers /ping; the old one drains: no request fails.
    let load = SteadyLoad::start(&served, "iris-python-prod");
    let second = sandbox.run(&["run", project.to_str().unwrap(), "-p", "max_leaf_nodes=3"]);
    let (ok, failed) = load.finish();
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(failed, 0, "requests failed during the update ({ok} succeeded)");
    assert!(ok > 0);
    assert_eq!(endpoint(&sandbox, "iris-python-prod")["model_version"], 2);
    assert_eq!(served.invoke("iris-python-prod", "text/csv", payload()).text().unwrap().lines().count(), 29);
}

/// An algorithm whose `train` waits for its sibling job to start, then records what it sees in /opt/ml.
fn write_peeking_algorithm(project: &Path, rendezvous: &Path) {
    let algorithm = project.join("algorithm");
    std::fs::create_dir_all(&algorithm).unwrap();
    let train = format!(
        r#"#!/bin/sh
set -e
me=$(cat /opt/ml/input/config/hyperparameters.json | tr -d '{{}}" ' | cut -d: -f2)
touch "{dir}/$me.started"
# Both jobs must be running at once for the isolation check to mean anything.
n=0
while [ "$(ls {dir} | wc -l)" -lt 2 ]; do n=$((n+1)); [ $n -lt 600 ] || exit 3; sleep 0.05; done
ls /opt/ml/input/data/training > /opt/ml/model/seen.txt
echo "train_accuracy=1.0"
"#,
        dir = rendezvous.display()
    );
    std::fs::write(algorithm.join("train"), train).unwrap();
    std::fs::write(algorithm.join("serve"), "#!/bin/sh\nexit 1\n").unwrap();
    for name in ["train", "serve"] {
        std::fs::set_permissions(algorithm.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn concurrent_jobs_see_only_their_own_opt_ml() {
    let sandbox = Sandbox::new();
    let rendezvous = sandbox.dir.path().join("rendezvous");
    std::fs::create_dir_all(&rendezvous).unwrap();
    let mut children = Vec::new();
    for name in ["left", "right"] {
        let project = sandbox.dir.path().join(name);
        std::fs::create_dir_all(project.join("data")).unwrap();
        std::fs::write(project.join(format!("data/{name}-only.csv")), "a,1\n").unwrap();
        write_peeking_algorithm(&project, &rendezvous);
        std::fs::write(
            project.join("sagebrush.toml"),
            format!(
                r#"[pipeline]
name = "{name}"
[algorithm]
process = "algorithm"
[[stage]]
kind = "train"
channels = {{ training = "data/{name}-only.csv" }}
hyperparameters = {{ who = "{name}" }}
max_runtime = "60s"
"#
            ),
        )
        .unwrap();
        children.push(
            sandbox
                .command(&["run", project.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    for name in ["left", "right"] {
        let archive = sandbox.home.join(format!("artifacts/{name}-1/output/model.tar.gz"));
        let unpacked = sandbox.dir.path().join(format!("{name}-model"));
        std::fs::create_dir_all(&unpacked).unwrap();
        let tar =
            std::process::Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&unpacked).output().unwrap();
        assert!(tar.status.success(), "{}", text(&tar));
        let seen = std::fs::read_to_string(unpacked.join("seen.txt")).unwrap();
        assert_eq!(seen.trim(), format!("{name}-only.csv"));
    }
    wait_until(Duration::from_secs(5), "both jobs to have started", || {
        (std::fs::read_dir(&rendezvous).unwrap().count() == 2).then_some(())
    });
}
