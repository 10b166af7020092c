//! SageMaker and ECR through the official SDK, against moto's server on loopback: images pushed
//! to ECR, training jobs created with the pipeline's settings and followed to their end (their
//! CloudWatch lines in the stage log), models registered from S3, endpoints hosted, invoked
//! through the runtime and deleted. moto runs no container and completes every job at once, so
//! each test puts in the bucket the `model.tar.gz` that SageMaker's container would have written,
//! and queues what the runtime answers; it has no registry, so a registry on loopback taking
//! ECR's login stands in for ECR's host. The paths moto cannot show (a failed or stopped job, an
//! update, a rollback, an endpoint stuck in Creating) are the `sagemaker` crate's tests, on the
//! SDK's mocks.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Sandbox, client, text, wait_until};
use crate::s3::{Moto, hex_sha256};

const ROLE: &str = "arn:aws:iam::123456789012:role/SageMakerRole";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris-byo:1";

/// The iris project with a pipeline that trains on SageMaker and registers the model.
fn project(sandbox: &Sandbox) -> std::path::PathBuf {
    let project = sandbox.project("iris", "byo");
    let pipeline = format!(
        "[pipeline]\nname = \"byo\"\n[algorithm]\nimage = \"{IMAGE}\"\n\
         [[stage]]\nkind = \"train\"\nbackend = \"sagemaker\"\nrole = \"{ROLE}\"\ninstance_type = \"ml.m5.xlarge\"\n\
         channels = {{ training = \"data/train.csv\", validation = \"s3://data/iris/validation.csv\" }}\n\
         hyperparameters = {{ max_leaf_nodes = 5 }}\nmax_runtime = \"1h\"\n\
         [[stage]]\nkind = \"register\"\n"
    );
    std::fs::write(project.join("sagebrush.toml"), pipeline).unwrap();
    project
}

#[test]
fn a_stage_trains_on_sagemaker_and_registers_the_model_it_wrote() {
    let moto = Moto::start();
    moto.bucket("models");
    moto.bucket("data");
    let sandbox = Sandbox::new();
    let project = project(&sandbox);
    let validation = project.join("data/validation.csv");
    moto.aws(&["s3", "cp", validation.to_str().unwrap(), "s3://data/iris/validation.csv"]);
    // What the job's container would write.
    let model = sandbox.dir.path().join("model.tar.gz");
    std::fs::write(&model, b"a model SageMaker trained").unwrap();
    moto.aws(&["s3", "cp", model.to_str().unwrap(), "s3://models/team/byo-1/output/model.tar.gz"]);
    // What the job's instance would print, where SageMaker puts it.
    let group = "/aws/sagemaker/TrainingJobs";
    moto.aws(&["logs", "create-log-group", "--log-group-name", group]);
    let stream = "byo-1/algo-1-1764547200";
    moto.aws(&["logs", "create-log-stream", "--log-group-name", group, "--log-stream-name", stream]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let events = format!(
        "[{{\"timestamp\":{now},\"message\":\"loading 150 rows\"}},{{\"timestamp\":{now},\"message\":\"train_accuracy=0.97\"}}]"
    );
    moto.aws(&[
        "logs",
        "put-log-events",
        "--log-group-name",
        group,
        "--log-stream-name",
        stream,
        "--log-events",
        &events,
    ]);

    let mut run = sandbox.command(&["--artifacts", "s3://models/team", "run", project.to_str().unwrap()]);
    let run = moto.env(&mut run).output().unwrap();
    assert!(run.status.success(), "{}", text(&run));

    // SageMaker got the pipeline's job: image, role, instance, channels (the project's file uploaded
    // first), hyperparameters as strings, the output path and the stopping condition.
    let described: serde_json::Value =
        serde_json::from_str(&moto.aws(&["sagemaker", "describe-training-job", "--training-job-name", "byo-1"]))
            .unwrap();
    assert_eq!(described["TrainingJobStatus"], "Completed", "{described:#}");
    assert_eq!(described["AlgorithmSpecification"]["TrainingImage"], IMAGE);
    assert_eq!(described["RoleArn"], ROLE);
    assert_eq!(described["ResourceConfig"]["InstanceType"], "ml.m5.xlarge");
    assert_eq!(described["ResourceConfig"]["InstanceCount"], 1);
    assert_eq!(described["HyperParameters"]["max_leaf_nodes"], "5");
    assert_eq!(described["StoppingCondition"]["MaxRuntimeInSeconds"], 3600);
    assert_eq!(described["OutputDataConfig"]["S3OutputPath"], "s3://models/team");
    let channels = described["InputDataConfig"].as_array().unwrap();
    let uri = |name: &str| {
        channels.iter().find(|c| c["ChannelName"] == name).unwrap()["DataSource"]["S3DataSource"]["S3Uri"].clone()
    };
    assert_eq!(uri("training"), "s3://models/team/byo-1/input/data/training/");
    assert_eq!(uri("validation"), "s3://data/iris/validation.csv");
    let uploaded = moto.aws(&["s3", "ls", "s3://models/team/byo-1/input/data/training/"]);
    assert!(uploaded.contains("train.csv"), "{uploaded}");

    let logs = text(&sandbox.run(&["logs", "byo", "1", "--stage", "train"]));
    assert!(logs.contains("training job byo-1 on SageMaker (ml.m5.xlarge, 1 instance(s))"), "{logs}");
    assert!(logs.contains("created arn:aws:sagemaker:us-east-1:123456789012:training-job/byo-1"), "{logs}");
    assert!(logs.contains("training job byo-1: Starting"), "SageMaker's transitions are logged: {logs}");
    assert!(
        logs.contains("[algo-1] loading 150 rows\n[algo-1] train_accuracy=0.97\n"),
        "and the job's own lines: {logs}"
    );

    // The model is registered where SageMaker wrote it, with the sha256 of its bytes then.
    let models = sandbox.json(&["models", "--json"]);
    let version = &models.as_array().unwrap()[0];
    assert_eq!(version["artifact_uri"], "s3://models/team/byo-1/output/model.tar.gz", "{version:#}");
    assert_eq!(version["artifact_sha256"], hex_sha256(&std::fs::read(&model).unwrap()).as_str());
    let shown = sandbox.json(&["show", "byo", "1", "--json"]);
    let train = &shown["stages"][0]["outputs"];
    assert_eq!((train["status"].as_str(), train["job"].as_str()), (Some("Completed"), Some("byo-1")), "{shown:#}");
    let lineage = &version["lineage"]["data"];
    assert_eq!(lineage["training"], hex_sha256(&std::fs::read(project.join("data/train.csv")).unwrap()).as_str());
    assert_eq!(lineage["validation"]["s3"], "s3://data/iris/validation.csv", "{lineage:#}");

    // A job SageMaker calls completed whose model is not there fails the run, saying so.
    let mut second = sandbox.command(&["--artifacts", "s3://models/team", "run", project.to_str().unwrap()]);
    let second = moto.env(&mut second).output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let shown = sandbox.json(&["show", "byo", "2", "--json"]);
    let reason = shown["run"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("reading the model SageMaker wrote") && reason.contains("byo-2/output/model.tar.gz"),
        "{reason}"
    );
    assert_eq!(sandbox.json(&["models", "--json"]).as_array().unwrap().len(), 1, "nothing more registered");
}

#[test]
fn doctor_says_whose_credentials_these_are_and_refused_ones_fail_the_run_clearly() {
    let moto = Moto::start();
    let sandbox = Sandbox::new();
    let mut doctor = sandbox.command(&["doctor"]);
    let doctor = moto.env(&mut doctor).output().unwrap();
    assert!(
        text(&doctor)
            .contains("ok   aws        account 123456789012 as arn:aws:sts::123456789012:user/moto, region us-east-1"),
        "{}",
        text(&doctor)
    );
    assert!(
        text(&doctor).contains("ok   ecr        logged in to 123456789012.dkr.ecr.us-east-1.amazonaws.com"),
        "{}",
        text(&doctor)
    );

    // moto checking every request's key, as AWS does.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut checking = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "moto_server to answer", || {
        client().get(format!("{url}/moto-api/")).send().ok()
    });
    let wrong = |command: &mut Command| {
        command
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-do-not-print")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    let refused = wrong(&mut sandbox.command(&["doctor"]));
    let out = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL aws") && out.contains("InvalidClientTokenId"), "{out}");
    assert!(out.contains("FAIL ecr") && out.contains("ecr:GetAuthorizationToken"), "{out}");
    let project = project(&sandbox);
    let run = wrong(&mut sandbox.command(&["--artifacts", "s3://models/team", "run", project.to_str().unwrap()]));
    let out = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(!out.contains("wrong-secret-do-not-print"), "no secret in what is printed: {out}");
    let shown = sandbox.json(&["show", "byo", "1", "--json"]);
    let reason = shown["run"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("InvalidAccessKeyId") && reason.contains("check the AWS credentials"), "{reason}");

    assert!(sandbox.json(&["models", "--json"]).as_array().unwrap().is_empty(), "nothing registered");
    let _ = checking.kill();
    let _ = checking.wait();
}

/// What `sagemaker-runtime invoke-endpoint` answers next on moto, which runs no model: answers are queued.
fn answer_next(moto: &Moto, body: &str) {
    let results = serde_json::json!({ "results": [{ "Body": body, "ContentType": "text/csv" }] });
    let url = format!("{}/moto-api/static/sagemaker/endpoint-results", moto.url);
    assert!(client().post(url).json(&results).send().unwrap().status().is_success());
}

#[test]
fn a_run_pushes_to_ecr_hosts_its_model_on_sagemaker_smoke_tests_it_through_the_runtime_and_deletes_the_test_endpoint() {
    let moto = Moto::start();
    moto.bucket("models");
    let registry = LoginRegistry::start();
    let sandbox = Sandbox::new();
    let project = image_project(&sandbox);
    let deploy = |name: &str, endpoint: &str, rest: &str| {
        format!(
            "[[stage]]\nname = \"{name}\"\nkind = \"deploy\"\nendpoint = \"{endpoint}\"\nbackend = \"sagemaker\"\n\
             role = \"{ROLE}\"\ninstance_type = \"ml.c5.large\"\n{rest}"
        )
    };
    let pipeline = format!(
        "[pipeline]\nname = \"byo\"\n[algorithm]\nimage = \"iris-byo\"\n\
         [[stage]]\nkind = \"build\"\nregistry = \"ecr\"\n\
         [[stage]]\nkind = \"train\"\nbackend = \"sagemaker\"\nrole = \"{ROLE}\"\n\
         channels = {{ training = \"data/train.csv\" }}\n\
         [[stage]]\nkind = \"register\"\n{}\
         [[stage]]\nkind = \"smoke-test\"\nendpoint = \"byo-test\"\ndata = \"data/test.csv\"\nmin_accuracy = 0.9\n{}",
        deploy("deploy-test", "byo-test", "delete_after_run = true\n"),
        deploy("deploy-prod", "byo-prod", "instances = 2\n"),
    );
    std::fs::write(project.join("sagebrush.toml"), pipeline).unwrap();
    let test_rows = std::fs::read_to_string(project.join("data/test.csv")).unwrap();
    let labels: Vec<&str> = test_rows.lines().filter_map(|l| l.split(',').next()).collect();
    let run = |sandbox: &Sandbox, number: u32| {
        let model = sandbox.dir.path().join("model.tar.gz");
        std::fs::write(&model, format!("model {number}")).unwrap();
        let key = format!("s3://models/team/byo-{number}/output/model.tar.gz");
        moto.aws(&["s3", "cp", model.to_str().unwrap(), &key]);
        let mut command = sandbox.command(&["--artifacts", "s3://models/team", "run", project.to_str().unwrap()]);
        moto.env(&mut command).env("SAGEBRUSH_ECR_PUSH_REGISTRY", &registry.address).output().unwrap()
    };
    answer_next(&moto, &labels.join("\n"));
    let first = run(&sandbox, 1);
    assert!(first.status.success(), "{}", text(&first));
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&moto.aws(args)).unwrap() };

    // Production serves version 1 as the SageMaker model byo-v1: the image the run pushed to
    // ECR, the model SageMaker wrote, the role, the stage's instances.
    let endpoints = json(&["sagemaker", "list-endpoints"]);
    let names: Vec<&str> =
        endpoints["Endpoints"].as_array().unwrap().iter().filter_map(|e| e["EndpointName"].as_str()).collect();
    assert_eq!(names, ["byo-prod"], "the test endpoint was deleted when the run ended");
    let prod = json(&["sagemaker", "describe-endpoint", "--endpoint-name", "byo-prod"]);
    assert_eq!(prod["EndpointStatus"], "InService");
    let config_name = prod["EndpointConfigName"].as_str().unwrap();
    assert!(config_name.starts_with("byo-prod-"), "{config_name}");
    let config = json(&["sagemaker", "describe-endpoint-config", "--endpoint-config-name", config_name]);
    let variant = &config["ProductionVariants"][0];
    assert_eq!(variant["ModelName"], "byo-v1", "{config:#}");
    assert_eq!(
        (variant["VariantName"].as_str(), variant["InstanceType"].as_str()),
        (Some("AllTraffic"), Some("ml.c5.large"))
    );
    assert_eq!(variant["InitialInstanceCount"], 2);
    let model = json(&["sagemaker", "describe-model", "--model-name", "byo-v1"]);
    let pushed = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/iris-byo@{}", registry.digest("iris-byo", "1"));
    assert_eq!(model["PrimaryContainer"]["Image"], pushed.as_str(), "{model:#}");
    assert_eq!(model["PrimaryContainer"]["ModelDataUrl"], "s3://models/team/byo-1/output/model.tar.gz");
    assert_eq!(model["ExecutionRoleArn"], ROLE);
    // Nothing of the test endpoint is left: only production's configuration.
    let configs = json(&["sagemaker", "list-endpoint-configs"]);
    let configs: Vec<&str> = configs["EndpointConfigs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["EndpointConfigName"].as_str())
        .collect();
    assert_eq!(configs, [config_name]);

    let logs = text(&sandbox.run(&["logs", "byo", "1"]));
    assert!(logs.contains("InvokeEndpoint byo-test on SageMaker with 3 rows (text/csv)"), "{logs}");
    assert!(logs.contains("3 rows answered; accuracy 1.0000"), "{logs}");
    assert!(logs.contains("endpoint byo-prod serves byo v1 on SageMaker"), "{logs}");
    let shown = sandbox.json(&["show", "byo", "1", "--json"]);
    let deployed = &shown["stages"][5]["outputs"];
    assert_eq!((deployed["model"].as_str(), deployed["config"].as_str()), (Some("byo-v1"), Some(config_name)));

    // A model whose answers are wrong stops at the smoke test: production is not touched, and
    // the test endpoint is deleted all the same.
    std::fs::write(project.join("data/test.csv"), test_rows.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    answer_next(&moto, "virginica\nvirginica");
    let second = run(&sandbox, 2);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let shown = sandbox.json(&["show", "byo", "2", "--json"]);
    let reason = shown["run"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("accuracy 0.0000 on data/test.csv is below the required 0.9"), "{reason}");
    let endpoints = json(&["sagemaker", "list-endpoints"]);
    assert_eq!(endpoints["Endpoints"].as_array().unwrap().len(), 1, "{endpoints:#}");
    let prod = json(&["sagemaker", "describe-endpoint", "--endpoint-name", "byo-prod"]);
    assert_eq!(prod["EndpointConfigName"], config_name, "production still serves version 1");
    let models = json(&["sagemaker", "list-models"]);
    let models: Vec<&str> =
        models["Models"].as_array().unwrap().iter().filter_map(|m| m["ModelName"].as_str()).collect();
    assert_eq!(models, ["byo-v1"], "version 2's model went with the test endpoint");
    remove_images(&registry, &["1", "2"]);
}

/// The iris project with an image to build: a tiny one, as moto runs none.
fn image_project(sandbox: &Sandbox) -> std::path::PathBuf {
    let project = sandbox.project("iris", "byo");
    std::fs::write(project.join("Dockerfile"), "FROM scratch\nCOPY sagebrush.toml /opt/program/\n").unwrap();
    project
}

/// The tags a test's runs built in the Docker Engine.
fn remove_images(registry: &LoginRegistry, tags: &[&str]) {
    for tag in tags {
        let _ = Command::new("docker").args(["rmi", &format!("{}/iris-byo:{tag}", registry.address)]).output();
    }
}

/// A registry on loopback that takes only ECR's login, standing in for the ECR host moto names
/// (moto answers ECR's API but has no registry to push to); stopped when dropped.
struct LoginRegistry {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

/// The password in moto's authorization token for the account (`AWS:<account>-auth-token`).
const ECR_PASSWORD: &str = "123456789012-auth-token";

impl LoginRegistry {
    fn start() -> LoginRegistry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", "AWS", ECR_PASSWORD])
            .output()
            .expect("run htpasswd: install apache2-utils (the test script does)");
        assert!(htpasswd.status.success(), "{}", text(&htpasswd));
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n\
             http:\n  addr: {address}\nauth:\n  htpasswd:\n    realm: ecr\n    path: {root}/htpasswd\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry: install Debian's docker-registry (the test script does)");
        let registry = LoginRegistry { child, address, _dir: dir };
        wait_until(Duration::from_secs(30), "the registry to answer", || {
            client().get(format!("http://{}/v2/", registry.address)).send().ok().filter(|r| r.status() == 401)
        });
        registry
    }

    /// The digest the registry holds for `repository:tag`, asked with the login.
    fn digest(&self, repository: &str, tag: &str) -> String {
        let answer = client()
            .get(format!("http://{}/v2/{repository}/manifests/{tag}", self.address))
            .basic_auth("AWS", Some(ECR_PASSWORD))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .unwrap();
        assert!(answer.status().is_success(), "{repository}:{tag}: {}", answer.status());
        answer.headers()["Docker-Content-Digest"].to_str().unwrap().to_owned()
    }
}

impl Drop for LoginRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_build_pushes_to_ecr_with_its_login_and_sagemaker_trains_the_image_by_its_digest() {
    let moto = Moto::start();
    moto.bucket("models");
    let registry = LoginRegistry::start();
    let sandbox = Sandbox::new();
    let project = image_project(&sandbox);
    let pipeline = format!(
        "[pipeline]\nname = \"byo\"\n[algorithm]\nimage = \"iris-byo\"\n\
         [[stage]]\nkind = \"build\"\nregistry = \"ecr\"\n\
         [[stage]]\nkind = \"train\"\nbackend = \"sagemaker\"\nrole = \"{ROLE}\"\ninstance_type = \"ml.m5.large\"\n\
         channels = {{ training = \"data/train.csv\" }}\n"
    );
    std::fs::write(project.join("sagebrush.toml"), pipeline).unwrap();
    // What the jobs' containers would write (moto runs none).
    let model = sandbox.dir.path().join("model.tar.gz");
    std::fs::write(&model, b"a model SageMaker trained").unwrap();
    for job in ["byo-1", "byo-2"] {
        moto.aws(&["s3", "cp", model.to_str().unwrap(), &format!("s3://models/team/{job}/output/model.tar.gz")]);
    }
    let run = || {
        let mut command = sandbox.command(&["--artifacts", "s3://models/team", "run", project.to_str().unwrap()]);
        moto.env(&mut command).env("SAGEBRUSH_ECR_PUSH_REGISTRY", &registry.address).output().unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", text(&first));

    // The repository was made, scanned on push; the image is in the registry under the login, and
    // SageMaker was given it by ECR's name and the digest the push returned.
    let repositories: serde_json::Value =
        serde_json::from_str(&moto.aws(&["ecr", "describe-repositories", "--repository-names", "iris-byo"])).unwrap();
    let repository = &repositories["repositories"][0];
    assert_eq!(repository["imageScanningConfiguration"]["scanOnPush"], true, "{repositories:#}");
    let digest = registry.digest("iris-byo", "1");
    let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let described: serde_json::Value =
        serde_json::from_str(&moto.aws(&["sagemaker", "describe-training-job", "--training-job-name", "byo-1"]))
            .unwrap();
    assert_eq!(described["AlgorithmSpecification"]["TrainingImage"], format!("{ecr}/iris-byo@{digest}"));
    let shown = sandbox.json(&["show", "byo", "1", "--json"]);
    let built = &shown["stages"][0]["outputs"];
    assert_eq!(built["digest"], digest.as_str(), "{built:#}");
    assert_eq!(built["registry"], ecr, "{built:#}");

    let logs = text(&sandbox.run(&["logs", "byo", "1", "--stage", "build"]));
    assert!(logs.contains(&format!("created ECR repository iris-byo (scan on push); logged in to {ecr}")), "{logs}");
    assert!(!logs.contains(ECR_PASSWORD), "the login is never logged: {logs}");

    // The next run finds the repository and pushes its own tag.
    let second = run();
    assert!(second.status.success(), "{}", text(&second));
    let logs = text(&sandbox.run(&["logs", "byo", "2", "--stage", "build"]));
    assert!(logs.contains("ECR repository iris-byo exists"), "{logs}");
    registry.digest("iris-byo", "2");

    // A registry that cannot be reached fails the build with where it pushed, and nothing is trained.
    let mut wrong = sandbox.command(&["--artifacts", "s3://models/team", "run", project.to_str().unwrap()]);
    let refused = moto.env(&mut wrong).env("SAGEBRUSH_ECR_PUSH_REGISTRY", "127.0.0.1:9").output().unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    let shown = sandbox.json(&["show", "byo", "3", "--json"]);
    assert!(shown["run"]["reason"].as_str().unwrap().contains("could not be pushed to 127.0.0.1:9"), "{shown:#}");
    let jobs: serde_json::Value = serde_json::from_str(&moto.aws(&["sagemaker", "list-training-jobs"])).unwrap();
    assert_eq!(jobs["TrainingJobSummaries"].as_array().unwrap().len(), 2, "{jobs:#}");

    remove_images(&registry, &["1", "2", "3"]);
}
