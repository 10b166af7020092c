//! SageMaker's control-plane API on `sagebrush up`'s listener, driven by the AWS CLI (PyPI
//! `awscli`) with `--endpoint-url`, as a workshop script drives SageMaker: list, describe, wait,
//! invoke through sagemaker-runtime, shift weights, delete, and SageMaker's errors for mistakes.

use std::process::Command;

use crate::harness::{Sandbox, Served, client, repo_root, text};

/// `aws <args> --endpoint-url <server>` with made-up credentials (the server is on loopback).
fn aws(served: &Served, args: &[&str]) -> std::process::Output {
    Command::new("aws")
        .args(args)
        .args(["--endpoint-url", &served.url, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "sagebrush")
        .env("AWS_SECRET_ACCESS_KEY", "not-checked-on-loopback")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run the AWS CLI: install awscli from PyPI (the test script does)")
}

fn json(served: &Served, args: &[&str]) -> serde_json::Value {
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

    let weights = "VariantName=AllTraffic,DesiredWeight=0.5";
    let updated = json(
        &served,
        &[
            "sagemaker",
            "update-endpoint-weights-and-capacities",
            "--endpoint-name",
            "iris-prod",
            "--desired-weights-and-capacities",
            weights,
        ],
    );
    assert_eq!(updated["EndpointArn"], "arn:aws:sagemaker:eu-west-1:000000000000:endpoint/iris-prod");
    let described = json(&served, &["sagemaker", "describe-endpoint", "--endpoint-name", "iris-prod"]);
    assert_eq!(described["ProductionVariants"][0]["CurrentWeight"], 0.5, "{described:#}");

    // Mistakes get SageMaker's errors, and change nothing.
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
    let capacity = "VariantName=AllTraffic,DesiredInstanceCount=3";
    let refused = aws(
        &served,
        &[
            "sagemaker",
            "update-endpoint-weights-and-capacities",
            "--endpoint-name",
            "iris-prod",
            "--desired-weights-and-capacities",
            capacity,
        ],
    );
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
