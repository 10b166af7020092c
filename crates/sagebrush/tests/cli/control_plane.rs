//! SageMaker's control-plane API on `sagebrush up`'s listener, driven by the AWS CLI (PyPI
//! `awscli`) with `--endpoint-url`, as a workshop script drives SageMaker: list, describe, wait,
//! invoke through sagemaker-runtime, shift weights, delete, and SageMaker's errors for mistakes;
//! training jobs made, waited for, described, listed and stopped, their data at `s3://` URIs.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Sandbox, Served, client, repo_root, text, wait_until};

/// `aws <args> --endpoint-url <server>` with made-up credentials (the server is on loopback).
pub(crate) fn aws(served: &Served, args: &[&str]) -> std::process::Output {
    aws_as(served, "sagebrush", args)
}

/// `aws <args>` with `key` as the access key id: a token, for a server that needs one.
pub(crate) fn aws_as(served: &Served, key: &str, args: &[&str]) -> std::process::Output {
    Command::new("aws")
        .args(args)
        .args(["--endpoint-url", &served.url, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", "not-checked-on-loopback")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run the AWS CLI: install awscli from PyPI (the test script does)")
}

pub(crate) fn json(served: &Served, args: &[&str]) -> serde_json::Value {
    let output = aws(served, args);
    assert!(output.status.success(), "aws {args:?}: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn the_aws_cli_lists_describes_waits_for_invokes_reweights_and_deletes_an_endpoint() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["up", project.to_str().unwrap()]);
    assert_eq!(sandbox.wait_for_run("iris", 1)["run"]["status"], "succeeded", "{}", served.output());

    let listed = json(&served, &["sagemaker", "list-endpoints"]);
    let endpoints = listed["Endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "the test endpoint went with its run: {listed:#}");
    assert_eq!(endpoints[0]["EndpointName"], "iris-prod");
    assert_eq!(endpoints[0]["EndpointStatus"], "InService");
    assert_eq!(endpoints[0]["EndpointArn"], "arn:aws:sagemaker:eu-west-1:000000000000:endpoint/iris-prod");

    assert!(
        aws(&served, &["sagemaker", "wait", "endpoint-in-service", "--endpoint-name", "iris-prod"]).status.success()
    );
    let described = json(&served, &["sagemaker", "describe-endpoint", "--endpoint-name", "iris-prod"]);
    let variant = &described["ProductionVariants"][0];
    assert_eq!(variant["VariantName"], "AllTraffic", "{described:#}");
    assert_eq!((variant["CurrentWeight"].as_f64(), variant["CurrentInstanceCount"].as_u64()), (Some(1.0), Some(1)));

    // The workshop's invocation, through the same listener.
    let answer = sandbox.dir.path().join("answer.csv");
    let payload = repo_root().join("examples/iris/data/payload.csv");
    let invoked = json(
        &served,
        &[
            "sagemaker-runtime",
            "invoke-endpoint",
            "--endpoint-name",
            "iris-prod",
            "--content-type",
            "text/csv",
            "--body",
            &format!("fileb://{}", payload.display()),
            answer.to_str().unwrap(),
        ],
    );
    assert_eq!(invoked["InvokedProductionVariant"], "AllTraffic", "{invoked:#}");
    assert_eq!(std::fs::read_to_string(&answer).unwrap().lines().count(), 29);

    let reweigh = |weights: &str| {
        let args = ["--endpoint-name", "iris-prod", "--desired-weights-and-capacities", weights];
        aws(&served, &[&["sagemaker", "update-endpoint-weights-and-capacities"][..], &args].concat())
    };
    let updated = reweigh("VariantName=AllTraffic,DesiredWeight=0.5");
    assert!(updated.status.success(), "{}", text(&updated));
    let updated: serde_json::Value = serde_json::from_slice(&updated.stdout).unwrap();
    assert_eq!(updated["EndpointArn"], "arn:aws:sagemaker:eu-west-1:000000000000:endpoint/iris-prod");
    let described = json(&served, &["sagemaker", "describe-endpoint", "--endpoint-name", "iris-prod"]);
    assert_eq!(described["ProductionVariants"][0]["CurrentWeight"], 0.5, "{described:#}");

    // Tags, on an endpoint a pipeline deployed as on any other.
    let arn = "arn:aws:sagemaker:eu-west-1:000000000000:endpoint/iris-prod";
    let tagged = aws(&served, &["sagemaker", "add-tags", "--resource-arn", arn, "--tags", "Key=team,Value=ml"]);
    assert!(tagged.status.success(), "{}", text(&tagged));
    let tags = json(&served, &["sagemaker", "list-tags", "--resource-arn", arn]);
    assert_eq!(tags["Tags"], serde_json::json!([{ "Key": "team", "Value": "ml" }]), "{tags:#}");

    // Mistakes get SageMaker's errors, and change nothing.
    let reserved = aws(&served, &["sagemaker", "add-tags", "--resource-arn", arn, "--tags", "Key=aws:x,Value=1"]);
    assert!(
        text(&reserved).contains("(ValidationException)") && text(&reserved).contains("aws:"),
        "{}",
        text(&reserved)
    );
    assert_eq!(json(&served, &["sagemaker", "list-tags", "--resource-arn", arn])["Tags"].as_array().unwrap().len(), 1);
    let wrong = aws(&served, &["sagemaker", "describe-endpoint", "--endpoint-name", "iris-nope"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains(
            "An error occurred (ValidationException) when calling the DescribeEndpoint operation: \
             Could not find endpoint \"arn:aws:sagemaker:eu-west-1:000000000000:endpoint/iris-nope\""
        ),
        "{}",
        text(&wrong)
    );
    let refused = reweigh("VariantName=AllTraffic,DesiredInstanceCount=3");
    assert!(
        text(&refused).contains("(ValidationException)") && text(&refused).contains("instances"),
        "{}",
        text(&refused)
    );
    let raw = |target: &str, body: &str| {
        let answer = client()
            .post(format!("{}/", served.url))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_owned())
            .send()
            .unwrap();
        (answer.status().as_u16(), answer.json::<serde_json::Value>().unwrap())
    };
    let (status, body) = raw("SageMaker.CreateSpaceship", "{}");
    assert_eq!((status, body["__type"].as_str()), (400, Some("UnknownOperationException")), "{body:#}");
    let (status, body) = raw("SageMaker.DescribeEndpoint", "{}");
    assert_eq!((status, body["__type"].as_str()), (400, Some("ValidationException")), "{body:#}");
    assert!(body["message"].as_str().unwrap().contains("EndpointName"), "{body:#}");
    let (status, body) = raw("SageMaker.DescribeEndpoint", "{not json");
    assert_eq!((status, body["__type"].as_str()), (400, Some("SerializationException")), "{body:#}");
    let (status, body) = raw("SageMaker.DescribeEndpoint", r#"{"EndpointName": "../etc"}"#);
    assert_eq!((status, body["__type"].as_str()), (400, Some("ValidationException")), "{body:#}");
    assert_eq!(served.invoke("iris-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 200, "still serving");

    assert!(aws(&served, &["sagemaker", "delete-endpoint", "--endpoint-name", "iris-prod"]).status.success());
    assert!(aws(&served, &["sagemaker", "wait", "endpoint-deleted", "--endpoint-name", "iris-prod"]).status.success());
    assert_eq!(json(&served, &["sagemaker", "list-endpoints"])["Endpoints"], serde_json::json!([]));
    assert_eq!(served.invoke("iris-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 400, "gone from the router");
    let audit = sandbox.json(&["audit", "--json"]);
    let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"POST / SageMaker.DeleteEndpoint"), "{audit:#}");
}

/// A CreateTrainingJob request as a workshop script writes it (`--cli-input-json`), training
/// sagebrush's built-in decision tree on the file at `data`.
pub(crate) fn training_job(name: &str, data: &str) -> String {
    serde_json::json!({
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "builtin:decision-tree",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{ "Name": "train:accuracy", "Regex": "train_accuracy=([0-9.]+)" }],
        },
        "RoleArn": "arn:aws:iam::000000000000:role/SageMakerRole",
        "InputDataConfig": [{
            "ChannelName": "training",
            "DataSource": { "S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": data, "S3DataDistributionType": "FullyReplicated" } },
            "ContentType": "text/csv",
        }],
        "OutputDataConfig": { "S3OutputPath": "s3://workshop/output" },
        "ResourceConfig": { "InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5 },
        "StoppingCondition": { "MaxRuntimeInSeconds": 600 },
        "HyperParameters": { "max_leaf_nodes": "5" },
    })
    .to_string()
}

/// The workshop's iris training data at s3://workshop/iris/train.csv: with local artifacts,
/// s3://<bucket>/<key> is <home>/s3/<bucket>/<key>. Returns that folder.
fn workshop_data(sandbox: &Sandbox) -> std::path::PathBuf {
    let bucket = sandbox.home.join("s3/workshop/iris");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::copy(repo_root().join("examples/iris/data/train.csv"), bucket.join("train.csv")).unwrap();
    bucket
}

/// DescribeTrainingJob until the job is no longer in progress.
pub(crate) fn ended(served: &Served, name: &str) -> serde_json::Value {
    wait_until(Duration::from_secs(60), &format!("training job {name} to end"), || {
        let described = json(served, &["sagemaker", "describe-training-job", "--training-job-name", name]);
        (described["TrainingJobStatus"] != "InProgress").then_some(described)
    })
}

#[test]
fn the_aws_cli_trains_on_s3_data_waits_describes_lists_and_sees_a_failed_jobs_reason() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server"]);
    let bucket = workshop_data(&sandbox);
    std::fs::write(bucket.join("garbage.csv"), "this,is,not\na,number,row\n").unwrap();
    let request = sandbox.dir.path().join("job.json");
    let create = |name: &str, data: &str| {
        std::fs::write(&request, training_job(name, data)).unwrap();
        let input = format!("file://{}", request.display());
        aws(&served, &["sagemaker", "create-training-job", "--cli-input-json", &input])
    };

    let created = create("iris-api", "s3://workshop/iris/train.csv");
    assert!(created.status.success(), "{}", text(&created));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["TrainingJobArn"], "arn:aws:sagemaker:eu-west-1:000000000000:training-job/iris-api");
    let described = ended(&served, "iris-api");
    let waited =
        aws(&served, &["sagemaker", "wait", "training-job-completed-or-stopped", "--training-job-name", "iris-api"]);
    assert!(waited.status.success(), "{}", text(&waited));
    assert_eq!(
        (&described["TrainingJobStatus"], &described["SecondaryStatus"]),
        (&"Completed".into(), &"Completed".into())
    );
    let transitions: Vec<&str> = described["SecondaryStatusTransitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["Status"].as_str())
        .collect();
    assert_eq!(transitions.first(), Some(&"Starting"), "{described:#}");
    assert_eq!(transitions.last(), Some(&"Completed"), "{described:#}");
    assert!(transitions.contains(&"Training"), "{described:#}");
    let first = &described["SecondaryStatusTransitions"][0];
    assert!(first["EndTime"].as_f64() >= first["StartTime"].as_f64(), "{described:#}");
    let model = described["ModelArtifacts"]["S3ModelArtifacts"].as_str().unwrap();
    assert!(model.ends_with("model.tar.gz"), "{described:#}");
    assert_eq!(described["HyperParameters"]["max_leaf_nodes"], "5");
    assert_eq!(described["ResourceConfig"]["InstanceType"], "ml.m5.large");
    assert_eq!(described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"], "s3://workshop/iris/train.csv");
    let accuracy = &described["FinalMetricDataList"][0];
    assert_eq!(accuracy["MetricName"], "train:accuracy", "{described:#}");
    assert!(accuracy["Value"].as_f64().unwrap() > 0.9, "{described:#}");
    // The job is a run of its own project, as any other.
    assert_eq!(sandbox.wait_for_run("iris-api", 1)["run"]["status"], "succeeded");

    // A job whose data the algorithm cannot read fails, and says why.
    assert!(create("iris-garbage", "s3://workshop/iris/garbage.csv").status.success());
    let failed = ended(&served, "iris-garbage");
    assert_eq!((&failed["TrainingJobStatus"], &failed["SecondaryStatus"]), (&"Failed".into(), &"Failed".into()));
    let reason = aws(
        &served,
        &["sagemaker", "describe-training-job", "--training-job-name", "iris-garbage", "--query", "FailureReason"],
    );
    assert!(String::from_utf8_lossy(&reason.stdout).len() > 4, "a reason: {}", text(&reason));
    let waited = aws(
        &served,
        &["sagemaker", "wait", "training-job-completed-or-stopped", "--training-job-name", "iris-garbage"],
    );
    assert!(!waited.status.success() && text(&waited).contains("terminal failure state"), "{}", text(&waited));

    let listed = json(&served, &["sagemaker", "list-training-jobs", "--status-equals", "Completed"]);
    let names: Vec<&str> = listed["TrainingJobSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["TrainingJobName"].as_str())
        .collect();
    assert_eq!(names, ["iris-api"], "{listed:#}");
    // As SageMaker answers it, stopping a job that has ended is refused with its status; it stays as it ended.
    let late = aws(&served, &["sagemaker", "stop-training-job", "--training-job-name", "iris-api"]);
    assert!(
        text(&late).contains("(ValidationException)") && text(&late).contains("training job is in status Completed"),
        "{}",
        text(&late)
    );
    assert_eq!(ended(&served, "iris-api")["TrainingJobStatus"], "Completed", "an ended job stays as it ended");

    // Mistakes get SageMaker's errors, and make nothing.
    let again = create("iris-api", "s3://workshop/iris/train.csv");
    assert!(text(&again).contains("(ResourceInUse)"), "{}", text(&again));
    let nowhere = create("iris-nowhere", "s3://workshop/iris/missing.csv");
    assert!(text(&nowhere).contains("(ValidationException)"), "{}", text(&nowhere));
    assert!(text(&nowhere).contains(&sandbox.home.join("s3/workshop/iris/missing.csv").display().to_string()));
    let escape = create("iris-escape", "s3://workshop/../../etc/passwd");
    assert!(text(&escape).contains("(ValidationException)"), "{}", text(&escape));
    let missing = aws(&served, &["sagemaker", "describe-training-job", "--training-job-name", "iris-nowhere"]);
    assert!(
        text(&missing).contains("(ValidationException)") && text(&missing).contains("Requested resource not found")
    );
    let projects = sandbox.json(&["project", "list", "--json"]);
    assert_eq!(projects.as_array().unwrap().len(), 2, "only the two jobs made projects: {projects:#}");
}

/// A finished training job's model, trained with `leaves` leaves on the workshop's iris data.
fn trained(sandbox: &Sandbox, served: &Served, name: &str, leaves: &str) -> String {
    workshop_data(sandbox);
    let mut request: serde_json::Value =
        serde_json::from_str(&training_job(name, "s3://workshop/iris/train.csv")).unwrap();
    request["HyperParameters"]["max_leaf_nodes"] = leaves.into();
    let file = sandbox.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, request.to_string()).unwrap();
    json(served, &["sagemaker", "create-training-job", "--cli-input-json", &format!("file://{}", file.display())]);
    let described = ended(served, name);
    assert_eq!(described["TrainingJobStatus"], "Completed", "{described:#}");
    described["ModelArtifacts"]["S3ModelArtifacts"].as_str().unwrap().to_owned()
}

/// DescribeEndpoint until the endpoint is in service on `config`.
fn in_service(served: &Served, endpoint: &str, config: &str) -> serde_json::Value {
    wait_until(Duration::from_secs(60), &format!("{endpoint} in service on {config}"), || {
        let described = json(served, &["sagemaker", "describe-endpoint", "--endpoint-name", endpoint]);
        assert_ne!(described["EndpointStatus"], "Failed", "{described:#}");
        (described["EndpointStatus"] == "InService" && described["EndpointConfigName"] == config).then_some(described)
    })
}

#[test]
fn the_aws_cli_hosts_trained_models_and_updates_the_endpoint_to_another_without_a_failed_request() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server"]);
    let first = trained(&sandbox, &served, "iris-train-a", "5");
    let second = trained(&sandbox, &served, "iris-train-b", "3");
    let role = "arn:aws:iam::000000000000:role/SageMakerRole";
    for (model, artifact) in [("iris-a", &first), ("iris-b", &second)] {
        let container = format!("Image=builtin:decision-tree,ModelDataUrl={artifact}");
        let args = ["--model-name", model, "--primary-container", &container, "--execution-role-arn", role];
        let created = json(&served, &[&["sagemaker", "create-model"][..], &args].concat());
        assert_eq!(created["ModelArn"], format!("arn:aws:sagemaker:eu-west-1:000000000000:model/{model}"));
        let variants =
            format!("VariantName=AllTraffic,ModelName={model},InitialInstanceCount=1,InstanceType=ml.m5.large");
        let config = format!("{model}-config");
        let args = ["--endpoint-config-name", &config, "--production-variants", &variants];
        json(&served, &[&["sagemaker", "create-endpoint-config"][..], &args].concat());
    }
    let described = json(&served, &["sagemaker", "describe-model", "--model-name", "iris-a"]);
    assert_eq!(described["PrimaryContainer"]["ModelDataUrl"], first.as_str(), "{described:#}");
    let config = json(&served, &["sagemaker", "describe-endpoint-config", "--endpoint-config-name", "iris-b-config"]);
    assert_eq!(config["ProductionVariants"][0]["ModelName"], "iris-b", "{config:#}");
    let models = json(&served, &["sagemaker", "list-models"]);
    assert_eq!(models["Models"].as_array().unwrap().len(), 2, "{models:#}");

    let created = json(
        &served,
        &["sagemaker", "create-endpoint", "--endpoint-name", "iris-prod", "--endpoint-config-name", "iris-a-config"],
    );
    assert_eq!(created["EndpointArn"], "arn:aws:sagemaker:eu-west-1:000000000000:endpoint/iris-prod");
    in_service(&served, "iris-prod", "iris-a-config");
    let waited = aws(&served, &["sagemaker", "wait", "endpoint-in-service", "--endpoint-name", "iris-prod"]);
    assert!(waited.status.success(), "{}", text(&waited));
    let answer = sandbox.dir.path().join("answer.csv");
    let payload = format!("fileb://{}", repo_root().join("examples/iris/data/payload.csv").display());
    let invoke = ["--endpoint-name", "iris-prod", "--content-type", "text/csv", "--body", &payload];
    json(&served, &[&["sagemaker-runtime", "invoke-endpoint"][..], &invoke, &[answer.to_str().unwrap()]].concat());
    assert_eq!(std::fs::read_to_string(&answer).unwrap().lines().count(), 29);
    // The endpoint is sagebrush's own, as one a pipeline deployed: it serves iris-b v1's group's model.
    assert_eq!(crate::harness::endpoint(&sandbox, "iris-prod")["model_group"], "iris-a");

    let load = crate::harness::SteadyLoad::start(&served, "iris-prod");
    json(
        &served,
        &["sagemaker", "update-endpoint", "--endpoint-name", "iris-prod", "--endpoint-config-name", "iris-b-config"],
    );
    in_service(&served, "iris-prod", "iris-b-config");
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "no request failed during the update ({ok} answered)");
    assert!(ok > 0);
    assert_eq!(crate::harness::endpoint(&sandbox, "iris-prod")["model_group"], "iris-b");

    // Mistakes get SageMaker's errors, and change nothing.
    let container = "Image=builtin:decision-tree,ModelDataUrl=s3://workshop/nothing/model.tar.gz";
    let stray =
        aws(&served, &["sagemaker", "create-model", "--model-name", "iris-c", "--primary-container", container]);
    assert!(
        text(&stray).contains("(ValidationException)") && text(&stray).contains("S3ModelArtifacts"),
        "{}",
        text(&stray)
    );
    let container = format!("Image=builtin:decision-tree,ModelDataUrl={first}");
    let again =
        aws(&served, &["sagemaker", "create-model", "--model-name", "iris-a", "--primary-container", &container]);
    assert!(text(&again).contains("Cannot create already existing model"), "{}", text(&again));
    let nowhere = aws(
        &served,
        &["sagemaker", "create-endpoint", "--endpoint-name", "iris-x", "--endpoint-config-name", "iris-z"],
    );
    assert!(text(&nowhere).contains("Could not find endpoint configuration"), "{}", text(&nowhere));
    let twice = aws(
        &served,
        &["sagemaker", "create-endpoint", "--endpoint-name", "iris-prod", "--endpoint-config-name", "iris-a-config"],
    );
    assert!(text(&twice).contains("Cannot create already existing endpoint"), "{}", text(&twice));
    assert_eq!(json(&served, &["sagemaker", "list-endpoints"])["Endpoints"].as_array().unwrap().len(), 1);

    assert!(aws(&served, &["sagemaker", "delete-endpoint", "--endpoint-name", "iris-prod"]).status.success());
    assert!(aws(&served, &["sagemaker", "wait", "endpoint-deleted", "--endpoint-name", "iris-prod"]).status.success());
    for config in ["iris-a-config", "iris-b-config"] {
        assert!(
            aws(&served, &["sagemaker", "delete-endpoint-config", "--endpoint-config-name", config]).status.success()
        );
    }
    assert!(aws(&served, &["sagemaker", "delete-model", "--model-name", "iris-a"]).status.success());
    let gone = aws(&served, &["sagemaker", "describe-model", "--model-name", "iris-a"]);
    assert!(text(&gone).contains("Could not find model"), "{}", text(&gone));
    assert_eq!(json(&served, &["sagemaker", "list-endpoint-configs"])["EndpointConfigs"], serde_json::json!([]));
}

#[test]
fn boto3_puts_data_in_a_bucket_trains_hosts_updates_and_deletes_and_catches_each_mistake_as_its_class() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server"]);
    let script = repo_root().join("tests/runtime/boto3_control_plane.py");
    let data = repo_root().join("examples/iris/data/train.csv");
    let checked = Command::new("python3")
        .arg(script)
        .arg(&served.url)
        .arg(data)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run python3 with boto3 (the test script installs it)");
    assert!(checked.status.success() && text(&checked).contains("ok"), "{}\n{}", text(&checked), served.output());
}

#[test]
fn the_workshop_script_pushes_a_byo_image_trains_hosts_updates_in_place_and_shows_a_failed_jobs_reason() {
    let sandbox = Sandbox::new();
    let tag = format!("sagebrush-test/cli-byo:{}", std::process::id());
    crate::containers::build_image(&sandbox, &tag, &[]);
    let served = sandbox.serve(&["server"]);
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sagebrush"));
    let path = format!("{}:{}", binary.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let mut script = Command::new("bash");
    script.arg(repo_root().join("examples/scikit-byo/sagemaker-cli.sh")).args([&served.url, &tag, "t"]);
    sandbox.environment(&mut script);
    let output = script.env("PATH", path).env_remove("AWS_ENDPOINT_URL").output().unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}\n{}", served.output());
    for line in [
        "byo-a-t: Completed: Starting>Downloading>Training>Uploading>Completed",
        "invoke-endpoint: 29 predictions",
        "byo-prod-t serves byo-b-t:",
        " 0 failed",
        "byo-broken-t: Failed: Exception during training: could not convert string to float",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
    assert!(String::from_utf8_lossy(&output.stdout).trim_end().ends_with("  ok"), "{out}");
    // The jobs ran in the image's containers, as runs of their own projects.
    assert_eq!(sandbox.wait_for_run("byo-a-t", 1)["run"]["status"], "succeeded");
    let registry = sandbox.run(&["registry"]);
    let registry = String::from_utf8_lossy(&registry.stdout).trim().to_owned();
    for image in [tag.clone(), format!("{registry}/scikit-byo:t")] {
        let _ = Command::new("docker").args(["rmi", "--force", &image]).output();
    }
}

#[test]
fn off_loopback_the_access_key_id_is_the_token_and_refusals_are_sagemakers() {
    let sandbox = Sandbox::new();
    let (viewer, operator, admin) =
        (sandbox.token("dashboard", "viewer"), sandbox.token("ci", "operator"), sandbox.token("root", "admin"));
    let served = sandbox.serve(&["server", "--listen", "0.0.0.0:0"]);
    let bucket = workshop_data(&sandbox);
    let request = sandbox.dir.path().join("job.json");
    std::fs::write(&request, training_job("iris-ci", "s3://workshop/iris/train.csv")).unwrap();
    let input = format!("file://{}", request.display());
    let create = ["sagemaker", "create-training-job", "--cli-input-json", &input];

    let unknown = aws_as(&served, "sb_not-a-token", &["sagemaker", "list-training-jobs"]);
    assert!(text(&unknown).contains("(UnrecognizedClientException)"), "{}", text(&unknown));
    let listed = aws_as(&served, &viewer, &["sagemaker", "list-training-jobs"]);
    assert!(listed.status.success(), "a viewer lists: {}", text(&listed));
    let denied = aws_as(&served, &viewer, &create);
    assert!(
        text(&denied).contains("(AccessDeniedException)") && text(&denied).contains("operator"),
        "{}",
        text(&denied)
    );
    let created = aws_as(&served, &operator, &create);
    assert!(created.status.success(), "an operator trains: {}", text(&created));
    let describe =
        ["sagemaker", "describe-training-job", "--training-job-name", "iris-ci", "--query", "TrainingJobStatus"];
    wait_until(Duration::from_secs(60), "iris-ci to complete", || {
        String::from_utf8_lossy(&aws_as(&served, &viewer, &describe).stdout).contains("Completed").then_some(())
    });
    let audit = sandbox.command(&["audit", "--json"]).env("SAGEBRUSH_TOKEN", &admin).output().unwrap();
    assert!(audit.status.success(), "{}", text(&audit));
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let calls: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["actor"].as_str()?, e["action"].as_str()?)))
        .filter(|(_, action)| action.contains("CreateTrainingJob"))
        .collect();
    assert!(calls.contains(&("ci", "POST / SageMaker.CreateTrainingJob")), "{audit:#}");
    assert!(calls.contains(&("dashboard", "POST / SageMaker.CreateTrainingJob")), "refusals are audited: {audit:#}");
    assert!(bucket.join("train.csv").exists());
}

#[test]
fn model_packages_are_the_registry_and_approving_one_lets_the_waiting_run_go_on() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server"]);
    let artifact = trained(&sandbox, &served, "iris-pkg", "5");
    let described = json(
        &served,
        &[
            "sagemaker",
            "create-model-package-group",
            "--model-package-group-name",
            "iris-pkgs",
            "--model-package-group-description",
            "iris, by hand",
        ],
    );
    assert_eq!(
        described["ModelPackageGroupArn"],
        "arn:aws:sagemaker:eu-west-1:000000000000:model-package-group/iris-pkgs"
    );
    let specification = serde_json::json!({
        "Containers": [{ "Image": "builtin:decision-tree", "ModelDataUrl": artifact }],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
    })
    .to_string();
    for version in [1, 2] {
        let args = ["--model-package-group-name", "iris-pkgs", "--inference-specification", &specification];
        let created = json(&served, &[&["sagemaker", "create-model-package"][..], &args].concat());
        let arn = format!("arn:aws:sagemaker:eu-west-1:000000000000:model-package/iris-pkgs/{version}");
        assert_eq!(created["ModelPackageArn"], arn);
    }
    let pending = ["--model-package-group-name", "iris-pkgs", "--model-approval-status", "PendingManualApproval"];
    let listed = json(&served, &[&["sagemaker", "list-model-packages"][..], &pending].concat());
    assert_eq!(listed["ModelPackageSummaryList"].as_array().unwrap().len(), 2, "{listed:#}");
    let first = "arn:aws:sagemaker:eu-west-1:000000000000:model-package/iris-pkgs/1";
    let args = ["--model-package-arn", first, "--model-approval-status", "Approved", "--approval-description", "0.97"];
    json(&served, &[&["sagemaker", "update-model-package"][..], &args].concat());
    let described = json(&served, &["sagemaker", "describe-model-package", "--model-package-name", first]);
    assert_eq!(described["ModelApprovalStatus"], "Approved", "{described:#}");
    assert_eq!(described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"], artifact.as_str());
    // The same registry as `sagebrush models`.
    let models = sandbox.json(&["models", "iris-pkgs", "--json"]);
    let statuses: Vec<(i64, &str)> = models
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| Some((m["version"].as_i64()?, m["approval_status"].as_str()?)))
        .collect();
    assert_eq!(statuses, [(2, "PendingManualApproval"), (1, "Approved")], "{models:#}");

    // A pipeline's version waiting at its approval stage is a pending package; approving it
    // through SageMaker's API lets the run go on to prod.
    let project = crate::approvals::approving_project(&sandbox);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(4), "waits for its approval: {}", text(&run));
    let pending = ["--model-package-group-name", "iris", "--model-approval-status", "PendingManualApproval"];
    let listed = json(&served, &[&["sagemaker", "list-model-packages"][..], &pending].concat());
    let arn = listed["ModelPackageSummaryList"][0]["ModelPackageArn"].as_str().unwrap().to_owned();
    assert!(arn.ends_with("model-package/iris/1"), "{listed:#}");
    let args =
        ["--model-package-arn", &arn, "--model-approval-status", "Approved", "--approval-description", "reviewed"];
    json(&served, &[&["sagemaker", "update-model-package"][..], &args].concat());
    assert_eq!(sandbox.wait_for_run("iris", 1)["run"]["status"], "succeeded");
    assert_eq!(crate::harness::endpoint(&sandbox, "iris-prod")["model_version"], 1);
    let groups = json(&served, &["sagemaker", "list-model-package-groups"]);
    let names: Vec<&str> = groups["ModelPackageGroupSummaryList"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["ModelPackageGroupName"].as_str())
        .collect();
    assert!(names.contains(&"iris") && names.contains(&"iris-pkgs"), "{groups:#}");

    // Mistakes get SageMaker's errors, and change nothing.
    let again = aws(&served, &["sagemaker", "create-model-package-group", "--model-package-group-name", "iris"]);
    assert!(
        text(&again).contains("(ValidationException)") && text(&again).contains("already exists"),
        "{}",
        text(&again)
    );
    let none = aws(&served, &["sagemaker", "describe-model-package-group", "--model-package-group-name", "iris-none"]);
    assert!(text(&none).contains("does not exist"), "{}", text(&none));
    let missing = "arn:aws:sagemaker:eu-west-1:000000000000:model-package/iris-pkgs/9";
    let args = ["--model-package-arn", missing, "--model-approval-status", "Approved"];
    let nine = aws(&served, &[&["sagemaker", "update-model-package"][..], &args].concat());
    assert!(text(&nine).contains("does not exist"), "{}", text(&nine));
}
