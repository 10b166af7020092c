//! Secret parameters: read from the environment or a file by the process that runs the run, given
//! to shell stages and training jobs as a variable, and `***` in every log, listing, answer and file of the home.

use sha2::{Digest, Sha256};

use crate::harness::{Sandbox, client, files_under, text};

const VALUE: &str = "s3cr3t-Value-0f-the-test";

/// A project whose shell stage prints its secret, and the secret's sha256 to show it arrived whole.
fn project(sandbox: &Sandbox) -> std::path::PathBuf {
    let dir = sandbox.dir.path().join("secretive");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sagebrush.toml"),
        "[pipeline]\nname = \"secretive\"\n[parameters]\n\
         token = { type = \"secret\", default = \"env:SB_TEST_SECRET\" }\n\
         [[stage]]\nname = \"leak\"\nkind = \"shell\"\n\
         command = \"echo token is $TOKEN; printf %s \\\"$TOKEN\\\" | sha256sum; echo \\\"$TOKEN\\\" >&2\"\n",
    )
    .unwrap();
    dir
}

fn digest() -> String {
    format!("{:x}", Sha256::digest(VALUE.as_bytes()))
}

/// Every file under `dir` whose bytes contain the secret.
fn files_with_secret(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in files_under(dir) {
        if std::fs::read(&entry).is_ok_and(|bytes| bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes())) {
            found.push(entry);
        }
    }
    found
}

#[test]
fn a_secret_reaches_the_stage_and_is_masked_everywhere_through_the_server() {
    let sandbox = Sandbox::new();
    let dir = project(&sandbox);
    let secret_env = format!("SB_TEST_SECRET={VALUE}");
    let served = sandbox.serve_under(&["env", &secret_env], &["server"]);
    // The CLI has no such variable: the server reads it.
    let output = sandbox.run(&["run", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let logs = sandbox.run(&["logs", "secretive", "1"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("token is ***"), "{logs}");
    assert!(logs.contains(&digest()), "the stage got the whole secret: {logs}");
    let show = sandbox.json(&["show", "secretive", "1", "--json"]);
    assert_eq!(show["run"]["parameters"]["token"], "***", "{show}");
    let mut answers = String::new();
    for path in ["/api/v1/runs/secretive/1", "/api/v1/runs/secretive/1/logs", "/api/v1/runs?limit=10", "/api/v1/events"]
    {
        let response = client().get(format!("{}{path}", served.url)).send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        answers.push_str(&response.text().unwrap());
    }
    for shown in [&logs.to_string(), &show.to_string(), &answers, &text(&output)] {
        assert!(!shown.contains(VALUE), "the secret was shown: {shown}");
    }
    assert!(answers.contains("***"), "{answers}");
    let output_log = served.output();
    drop(served);
    assert!(!output_log.contains(VALUE), "the server's log has the secret: {output_log}");
    assert_eq!(files_with_secret(&sandbox.home), Vec::<std::path::PathBuf>::new(), "files of the home with the secret");
}

#[test]
fn a_secret_is_named_by_where_it_is_read_never_given_as_its_value() {
    let sandbox = Sandbox::new();
    let dir = project(&sandbox);
    let dir = dir.to_str().unwrap();
    // Unset: refused before anything is recorded, naming the variable.
    let output = sandbox.command(&["run", dir]).env_remove("SB_TEST_SECRET").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("SB_TEST_SECRET is not set"), "{}", text(&output));
    // The value itself on the command line: refused, and not repeated.
    let given = format!("token={VALUE}");
    let output = sandbox.run(&["run", dir, "-p", &given]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(!text(&output).contains(VALUE) && text(&output).contains("env:NAME or file:PATH"), "{}", text(&output));
    assert_eq!(sandbox.json(&["runs", "--json"]), serde_json::json!([]), "nothing was recorded");
    // From a file, in-process.
    let file = sandbox.dir.path().join("token.txt");
    std::fs::write(&file, format!("{VALUE}\n")).unwrap();
    let from_file = format!("token=file:{}", file.display());
    let output = sandbox.run(&["run", dir, "-p", &from_file]);
    assert!(output.status.success(), "{}", text(&output));
    let logs = sandbox.run(&["logs", "secretive", "1"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("token is ***") && logs.contains(&digest()), "{logs}");
    // A retry reads it again from the same file.
    let output = sandbox.run(&["retry", "secretive", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(files_with_secret(&sandbox.home), Vec::<std::path::PathBuf>::new(), "files of the home with the secret");
}

#[test]
fn a_training_job_gets_the_secret_in_its_environment_and_its_log_is_masked() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let dir = sandbox.project("iris", "secret-training");
    let algorithm = dir.join("algorithm");
    std::fs::create_dir_all(&algorithm).unwrap();
    // The job proves it got the whole value by the model it writes: the secret's sha256.
    let train = "#!/bin/sh\necho \"token is $TOKEN\"\necho \"$TOKEN\" >&2\n\
                 printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1 > /opt/ml/model/digest\n";
    for (name, script) in [("train", train), ("serve", "#!/bin/sh\nexit 1\n")] {
        std::fs::write(algorithm.join(name), script).unwrap();
        std::fs::set_permissions(algorithm.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        dir.join("sagebrush.toml"),
        "[pipeline]\nname = \"secret-training\"\n[parameters]\n\
         token = { type = \"secret\", default = \"env:SB_TEST_SECRET\" }\n\
         [algorithm]\nprocess = \"algorithm\"\n[[stage]]\nkind = \"train\"\n\
         channels = { training = \"data/train.csv\" }\n",
    )
    .unwrap();
    let output = sandbox.command(&["run", dir.to_str().unwrap()]).env("SB_TEST_SECRET", VALUE).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let logs = sandbox.run(&["logs", "secret-training", "1"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("token is ***"), "{logs}");
    assert!(!logs.contains(VALUE), "{logs}");
    let archive = sandbox.home.join("artifacts/secret-training-1/output/model.tar.gz");
    let unpacked = sandbox.dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let untar = std::process::Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&unpacked).output().unwrap();
    assert!(untar.status.success(), "{}", text(&untar));
    let got = std::fs::read_to_string(unpacked.join("digest")).unwrap();
    assert_eq!(got.trim(), digest(), "the job got the whole secret");
    assert_eq!(files_with_secret(&sandbox.home), Vec::<std::path::PathBuf>::new(), "files of the home with the secret");
}
