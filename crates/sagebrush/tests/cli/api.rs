//! The HTTP API against its own OpenAPI document, fuzzed by schemathesis on a live server, and the
//! CLI answering the same through a server as in-process.

use crate::harness::{Sandbox, client, text};

/// schemathesis from PyPI, as test.sh installs it (or `SAGEBRUSH_SCHEMATHESIS`).
fn schemathesis() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SAGEBRUSH_SCHEMATHESIS") {
        return path.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let path = std::path::Path::new(&home).join(".cache/sagebrush-test/venv/bin/schemathesis");
    assert!(path.is_file(), "schemathesis is not at {}; ./test.sh installs it", path.display());
    path
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["server"]);
    // A home with a project, runs, model versions and endpoints for the generated requests to meet.
    for _ in 0..2 {
        let output = sandbox.run(&["run", project.to_str().unwrap()]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let output = std::process::Command::new(schemathesis())
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", served.url))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "40",
            "--seed",
            "1",
        ])
        .env("NO_COLOR", "1")
        // Its reports go beside the sandbox, not into the checkout.
        .current_dir(sandbox.dir.path())
        .output()
        .expect("run schemathesis");
    assert!(output.status.success(), "schemathesis found failures:\n{}\n{}", text(&output), served.output());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let document: serde_json::Value =
        client().get(format!("{}/api/v1/openapi.json", served.url)).send().unwrap().json().unwrap();
    let operations: usize = document["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert!(
        stdout.contains(&format!("{operations} selected / {operations} total")),
        "every operation was tested: {stdout}"
    );
}

/// The same command through the server and in-process: same exit code, same `--json`.
#[test]
fn the_cli_answers_alike_through_a_server_and_in_process() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let dir = project.to_str().unwrap();
    let output = sandbox.run(&["run", dir]);
    assert!(output.status.success(), "{}", text(&output));
    let output = sandbox.run(&["project", "add", dir]);
    assert!(output.status.success(), "{}", text(&output));
    let commands: &[&[&str]] = &[
        &["runs", "--json"],
        &["runs", "iris", "--json"],
        &["show", "iris", "--json"],
        &["show", "iris", "1", "--json"],
        &["show", "iris", "9"],
        &["show", "-x"],
        &["models", "--json"],
        &["models", "nope", "--json"],
        &["logs", "iris", "1", "--stage", "train"],
        &["logs", "iris", "1", "--stage", "nope"],
        &["logs", "iris", "7"],
        &["project", "list", "--json"],
        &["project", "remove", "nope"],
        &["cancel", "iris", "1"],
        &["cancel", "iris", "5"],
        &["delete-endpoint", "nope"],
        &["retry", "iris", "1", "--from", "nope"],
        &["token", "list", "--json"],
        &["token", "revoke", "nope"],
        &["events", "iris", "--limit", "3", "--json"],
        &["events", "nope", "--json"],
    ];
    let answers = |sandbox: &Sandbox| -> Vec<(Option<i32>, String)> {
        commands
            .iter()
            .map(|args| {
                let output = sandbox.run(args);
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                (output.status.code(), stdout)
            })
            .collect()
    };
    let in_process = answers(&sandbox);
    let served = sandbox.serve(&["server"]);
    let through_server = answers(&sandbox);
    drop(served);
    for ((args, local), remote) in commands.iter().zip(&in_process).zip(&through_server) {
        assert_eq!(local, remote, "sagebrush {args:?} answered differently through the server");
    }
    // Each error class has its exit code.
    let codes: Vec<Option<i32>> = in_process.iter().map(|(code, _)| *code).collect();
    assert_eq!(
        codes,
        [0, 0, 0, 0, 1, 2, 0, 0, 0, 2, 1, 0, 1, 2, 1, 1, 2, 0, 1, 0, 0].map(Some),
        "exit codes of {commands:?}"
    );
}
