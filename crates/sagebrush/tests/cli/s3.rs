//! Artifacts on S3: moto's server on loopback stands in for the bucket, reached the way a user
//! reaches AWS (`AWS_*` variables, `--artifacts s3://...`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{Sandbox, client, text, wait_until};

/// A moto server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    /// Starts `moto_server` (PyPI `moto[server]`, which the test script installs) and waits until it answers.
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server: install moto[server] from PyPI (the test script does)");
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        wait_until(Duration::from_secs(30), "moto_server to answer", || {
            client().get(format!("{}/moto-api/", moto.url)).send().ok().filter(|r| r.status().is_success())
        });
        moto
    }

    /// `aws <args>` (the AWS CLI from PyPI) against this server; its stdout, failing the test when it fails.
    pub fn aws(&self, args: &[&str]) -> String {
        let mut command = Command::new("aws");
        let output = self
            .env(command.args(args).arg("--endpoint-url").arg(&self.url))
            .output()
            .expect("run the AWS CLI: install awscli from PyPI (the test script does)");
        assert!(output.status.success(), "aws {args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Creates a bucket.
    pub fn bucket(&self, name: &str) {
        self.aws(&["s3api", "create-bucket", "--bucket", name]);
    }

    /// The environment the AWS tools would read, pointed at this server.
    pub fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            // The AWS CLI reads only this one.
            .env("AWS_DEFAULT_REGION", "us-east-1")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn models_go_to_s3_with_their_sha256_and_a_changed_object_is_refused() {
    let moto = Moto::start();
    moto.bucket("models");
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let mut run = sandbox.command(&["--artifacts", "s3://models/team-a", "run", project.to_str().unwrap()]);
    let run = moto.env(&mut run).output().unwrap();
    // The run trains, stores the model on S3, and deploys and smoke-tests it from there.
    assert!(run.status.success(), "{}", text(&run));

    let models = sandbox.json(&["models", "--json"]);
    let version = &models.as_array().unwrap()[0];
    let uri = version["artifact_uri"].as_str().unwrap();
    let sha256 = version["artifact_sha256"].as_str().unwrap();
    assert_eq!(uri, "s3://models/team-a/iris-1/output/model.tar.gz", "SageMaker's layout: {version:#}");
    let key = ["--bucket", "models", "--key", "team-a/iris-1/output/model.tar.gz"];
    let head: serde_json::Value =
        serde_json::from_str(&moto.aws(&[&["s3api", "head-object"], &key[..]].concat())).unwrap();
    assert_eq!(head["Metadata"]["sha256"], sha256, "the checksum travels with the object: {head:#}");
    let copy = sandbox.dir.path().join("model.tar.gz");
    moto.aws(&["s3", "cp", uri, copy.to_str().unwrap()]);
    assert_eq!(hex_sha256(&std::fs::read(&copy).unwrap()), sha256);
    assert!(!sandbox.home.join("artifacts/iris-1").exists(), "nothing of it is kept locally");

    // A server of the same team serves prod, reading the model from the bucket.
    let url = format!("AWS_ENDPOINT_URL={}", moto.url);
    let aws_env = ["env", &url, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_REGION=us-east-1"];
    let served = sandbox.serve_under(&aws_env, &["server"]);
    let answer = |served: &crate::harness::Served| served.invoke("iris-prod", "text/csv", "5.1,3.5,1.4,0.2\n");
    wait_until(Duration::from_secs(60), "iris-prod served from S3", || {
        answer(&served).status().is_success().then_some(())
    });

    // Someone overwrites the model in the bucket: a deploy of that version refuses it and changes nothing.
    let other = sandbox.dir.path().join("other.tar.gz");
    std::fs::write(&other, "not the model").unwrap();
    moto.aws(&["s3", "cp", other.to_str().unwrap(), uri]);
    let deploy = sandbox.run(&["deploy", "tampered", "iris", "--model-version", "1"]);
    assert!(!deploy.status.success(), "{}", text(&deploy));
    assert!(text(&deploy).contains("it was changed since, so it is not used"), "{}", text(&deploy));
    let endpoints = sandbox.json(&["endpoints", "--json"]);
    assert!(endpoints.as_array().unwrap().iter().all(|e| e["name"] != "tampered"), "{endpoints:#}");
    assert_eq!(answer(&served).text().unwrap().trim(), "setosa", "prod goes on serving what it loaded");
}

#[test]
fn doctor_writes_to_the_bucket_and_names_the_fix_when_it_cannot() {
    let moto = Moto::start();
    moto.bucket("models");
    let sandbox = Sandbox::new();
    let mut good = sandbox.command(&["--artifacts", "s3://models/team-a", "doctor"]);
    let good = moto.env(&mut good).output().unwrap();
    assert!(good.status.success(), "{}", text(&good));
    assert!(text(&good).contains("ok   artifacts  s3://models/team-a is writable"), "{}", text(&good));
    let left = moto.aws(&["s3api", "list-objects-v2", "--bucket", "models"]);
    assert!(!left.contains("sagebrush-doctor"), "the probe is removed: {left}");

    let mut missing = sandbox.command(&["--artifacts", "s3://no-such-bucket/x", "doctor"]);
    let missing = moto.env(&mut missing).output().unwrap();
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    let out = text(&missing);
    assert!(out.contains("FAIL artifacts") && out.contains("check that bucket no-such-bucket exists"), "{out}");
}

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_s3_channel_is_downloaded_for_a_local_job_and_its_checksum_is_in_the_lineage() {
    let moto = Moto::start();
    moto.bucket("data");
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    // The workshop's step: `aws s3 cp` of the training file to the bucket.
    let file = project.join("data/train.csv");
    moto.aws(&["s3", "cp", file.to_str().unwrap(), "s3://data/iris/v1/train.csv"]);
    let train = std::fs::read(&file).unwrap();

    // A prefix, as SageMaker's S3Prefix: every object under it lands in /opt/ml/input/data/training.
    let mut run = sandbox.command(&["run", project.to_str().unwrap(), "-p", "train_data=s3://data/iris/v1/"]);
    let run = moto.env(&mut run).output().unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let logs = sandbox.run(&["logs", "iris", "1", "--stage", "train"]);
    assert!(
        text(&logs).contains("channel `training`: downloaded 1 file(s) from s3://data/iris/v1/"),
        "{}",
        text(&logs)
    );
    let models = sandbox.json(&["models", "--json"]);
    let lineage = models[0]["lineage"]["data"]["training"].to_string();
    assert!(lineage.contains(&hex_sha256(&train)), "the downloaded file's sha256: {lineage}");

    // A prefix with nothing under it fails the run with the reason, before any job starts.
    let mut missing = sandbox.command(&["run", project.to_str().unwrap(), "-p", "train_data=s3://data/iris/v2/"]);
    let missing = moto.env(&mut missing).output().unwrap();
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    let shown = sandbox.json(&["show", "iris", "2", "--json"]);
    let reason = shown["run"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("channel `training`") && reason.contains("s3://data/iris/v2/"), "{shown:#}");
}

#[test]
fn new_objects_under_a_watched_s3_prefix_start_one_run() {
    let moto = Moto::start();
    moto.bucket("data");
    let sandbox = Sandbox::new();
    let project = sandbox.dir.path().join("watched");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("sagebrush.toml"),
        "[pipeline]\nname = \"watched\"\n[triggers.data]\npath = \"s3://data/incoming/\"\ndebounce = \"1s\"\n\
         [[stage]]\nname = \"show\"\nkind = \"shell\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let csv = sandbox.dir.path().join("a.csv");
    std::fs::write(&csv, "5.1,3.5,1.4,0.2\n").unwrap();
    moto.aws(&["s3", "cp", csv.to_str().unwrap(), "s3://data/incoming/a.csv"]);
    let mut serve = vec!["env", "SAGEBRUSH_LOG=info"];
    let settings = [
        format!("AWS_ENDPOINT_URL={}", moto.url),
        "AWS_ACCESS_KEY_ID=testing".to_owned(),
        "AWS_SECRET_ACCESS_KEY=testing".to_owned(),
        "AWS_REGION=us-east-1".to_owned(),
    ];
    serve.extend(settings.iter().map(String::as_str));
    let served = sandbox.serve_under(&serve, &["server"]);
    let added = sandbox.run(&["project", "add", project.to_str().unwrap()]);
    assert!(added.status.success(), "{}", text(&added));
    wait_until(Duration::from_secs(30), "the trigger to watch the prefix", || {
        served.output().contains("watched: [triggers.data] watches s3://data/incoming/").then_some(())
    });
    let runs = || sandbox.json(&["runs", "watched", "--json"]).as_array().unwrap().clone();

    // The same bytes again: the same ETag and size, no change. An object beside the prefix neither.
    moto.aws(&["s3", "cp", csv.to_str().unwrap(), "s3://data/incoming/a.csv"]);
    moto.aws(&["s3", "cp", csv.to_str().unwrap(), "s3://data/elsewhere/a.csv"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(runs().is_empty(), "{}", served.output());

    moto.aws(&["s3", "cp", csv.to_str().unwrap(), "s3://data/incoming/b.csv"]);
    let started = wait_until(Duration::from_secs(60), "a run for the new object", || {
        let runs = runs();
        runs.first().filter(|r| r["finished_at"].is_i64()).cloned()
    });
    assert_eq!((started["trigger"].as_str(), started["status"].as_str()), (Some("data"), Some("succeeded")));
    assert_eq!(started["trigger_detail"], "files changed under s3://data/incoming/");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs().len(), 1, "one change, one run");
}
