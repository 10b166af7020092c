//! S3's API on `sagebrush server`'s listener, driven by the AWS CLI as the workshop's setup does:
//! `aws s3 mb` and `aws s3 cp` put the training data where a training job's `s3://` channel reads
//! it; listing, paging, ranged and whole downloads, copies, deletes, and S3's errors for mistakes.

use std::time::Duration;

use crate::control_plane::{aws, aws_as, ended, json, training_job};
use crate::harness::{Sandbox, repo_root, text, wait_until};

#[test]
fn aws_s3_cp_puts_training_data_where_a_training_job_reads_it_and_gets_it_back() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server"]);
    let s3 = |args: &[&str]| aws(&served, &[&["s3"][..], args].concat());
    let ok = |args: &[&str]| {
        let output = s3(args);
        assert!(output.status.success(), "aws s3 {args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let train = repo_root().join("examples/iris/data/train.csv");
    let train = train.to_str().unwrap();

    // Before its bucket exists, an object has nowhere to go.
    let early = s3(&["cp", train, "s3://workshop/iris/train.csv"]);
    assert!(!early.status.success() && text(&early).contains("NoSuchBucket"), "{}", text(&early));
    ok(&["mb", "s3://workshop"]);
    let again = s3(&["mb", "s3://workshop"]);
    assert!(text(&again).contains("BucketAlreadyOwnedByYou"), "{}", text(&again));
    ok(&["cp", train, "s3://workshop/iris/train.csv"]);
    let kept = sandbox.home.join("s3/workshop/iris/train.csv");
    assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(train).unwrap());

    // A training job reads what was put there.
    let request = sandbox.dir.path().join("job.json");
    std::fs::write(&request, training_job("iris-s3", "s3://workshop/iris/train.csv")).unwrap();
    json(&served, &["sagemaker", "create-training-job", "--cli-input-json", &format!("file://{}", request.display())]);
    assert_eq!(ended(&served, "iris-s3")["TrainingJobStatus"], "Completed");

    // Past 8 MB the CLI uploads in parts and downloads in ranges.
    let big = sandbox.dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..20_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&big, &bytes).unwrap();
    ok(&["cp", big.to_str().unwrap(), "s3://workshop/big/big.bin"]);
    assert!(std::fs::read(sandbox.home.join("s3/workshop/big/big.bin")).unwrap() == bytes);
    let back = sandbox.dir.path().join("back.bin");
    ok(&["cp", "s3://workshop/big/big.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == bytes, "the download is the upload");
    let uploads = std::fs::read_dir(sandbox.home.join("s3-uploads")).unwrap().count();
    assert_eq!(uploads, 0, "no part or body is left beside the folder");
    assert_eq!(ok(&["cp", "s3://workshop/iris/train.csv", "-"]).as_bytes(), std::fs::read(train).unwrap());

    // Copies (past 8 MB in parts copied from the source), listings by prefix, and pages of one
    // key (the CLI follows the continuation tokens).
    ok(&["cp", "s3://workshop/iris/train.csv", "s3://workshop/copy/train.csv"]);
    ok(&["cp", "s3://workshop/big/big.bin", "s3://workshop/copy/big.bin"]);
    assert!(std::fs::read(sandbox.home.join("s3/workshop/copy/big.bin")).unwrap() == bytes);
    let top = ok(&["ls", "s3://workshop/"]);
    let prefixes: Vec<&str> = top.lines().map(str::trim).collect();
    assert_eq!(prefixes, ["PRE big/", "PRE copy/", "PRE iris/"], "{top}");
    let paged = json(&served, &["s3api", "list-objects-v2", "--bucket", "workshop", "--page-size", "1"]);
    let keys: Vec<&str> = paged["Contents"].as_array().unwrap().iter().filter_map(|o| o["Key"].as_str()).collect();
    assert_eq!(keys, ["big/big.bin", "copy/big.bin", "copy/train.csv", "iris/train.csv"], "{paged:#}");
    assert_eq!(paged["Contents"][0]["Size"], 20_000_000);
    let head = json(&served, &["s3api", "head-object", "--bucket", "workshop", "--key", "iris/train.csv"]);
    assert_eq!(head["ContentLength"].as_u64(), Some(std::fs::metadata(train).unwrap().len()), "{head:#}");

    // Mistakes get S3's errors and change nothing.
    let missing = aws(&served, &["s3api", "get-object", "--bucket", "workshop", "--key", "nope.csv", "/dev/null"]);
    assert!(text(&missing).contains("(NoSuchKey)"), "{}", text(&missing));
    let outside =
        aws(&served, &["s3api", "put-object", "--bucket", "workshop", "--key", "a/../../../escape", "--body", train]);
    assert!(text(&outside).contains("(InvalidArgument)"), "{}", text(&outside));
    assert!(!sandbox.home.join("escape").exists() && !sandbox.home.join("s3/escape").exists());
    let across =
        aws(&served, &["s3api", "put-object", "--bucket", "workshop", "--key", "iris/train.csv/x", "--body", train]);
    assert!(text(&across).contains("(InvalidArgument)"), "{}", text(&across));
    let full = s3(&["rb", "s3://workshop"]);
    assert!(text(&full).contains("BucketNotEmpty"), "{}", text(&full));
    let versions = aws(&served, &["s3api", "get-bucket-versioning", "--bucket", "workshop"]);
    assert!(text(&versions).contains("(NotImplemented)"), "{}", text(&versions));

    // A bucket may have any name, even one of the server's own paths.
    ok(&["mb", "s3://endpoints"]);
    ok(&["cp", train, "s3://endpoints/train.csv"]);
    assert!(sandbox.home.join("s3/endpoints/train.csv").exists());

    // Removing every key removes its folders; then the bucket can go.
    ok(&["rm", "--recursive", "s3://workshop/"]);
    ok(&["rb", "s3://workshop"]);
    assert!(!sandbox.home.join("s3/workshop").exists());
    let buckets = json(&served, &["s3api", "list-buckets"]);
    assert_eq!(buckets["Buckets"][0]["Name"], "endpoints", "{buckets:#}");
}

#[test]
fn off_loopback_s3_takes_the_token_as_its_access_key_and_audits_each_change() {
    let sandbox = Sandbox::new();
    let (viewer, operator, admin) =
        (sandbox.token("dashboard", "viewer"), sandbox.token("ci", "operator"), sandbox.token("root", "admin"));
    let served = sandbox.serve(&["server", "--listen", "0.0.0.0:0"]);
    let train = repo_root().join("examples/iris/data/train.csv");
    let put = ["s3", "cp", train.to_str().unwrap(), "s3://data/train.csv"];

    let unknown = aws_as(&served, "sb_not-a-token", &["s3", "mb", "s3://data"]);
    assert!(text(&unknown).contains("InvalidAccessKeyId"), "{}", text(&unknown));
    assert!(aws_as(&served, &operator, &["s3", "mb", "s3://data"]).status.success());
    let denied = aws_as(&served, &viewer, &put);
    assert!(text(&denied).contains("AccessDenied"), "{}", text(&denied));
    assert!(!sandbox.home.join("s3/data/train.csv").exists());
    let put = aws_as(&served, &operator, &put);
    assert!(put.status.success(), "{}", text(&put));
    let listed = aws_as(&served, &viewer, &["s3", "ls", "s3://data/"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("train.csv"), "{}", text(&listed));

    let audit = wait_until(Duration::from_secs(10), "the audit of the put", || {
        let audit = sandbox.command(&["audit", "--json"]).env("SAGEBRUSH_TOKEN", &admin).output().unwrap();
        let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).ok()?;
        let actions: Vec<(String, String)> = audit
            .as_array()?
            .iter()
            .filter_map(|e| Some((e["actor"].as_str()?.to_owned(), e["action"].as_str()?.to_owned())))
            .collect();
        actions.iter().any(|(_, action)| action.contains("PutObject")).then_some(actions)
    });
    assert!(audit.contains(&("ci".to_owned(), "PUT /data/train.csv S3.PutObject".to_owned())), "{audit:?}");
    assert!(audit.contains(&("dashboard".to_owned(), "PUT /data/train.csv S3.PutObject".to_owned())), "{audit:?}");
    assert!(!audit.iter().any(|(_, action)| action.contains("ListObjects")), "reads are not audited: {audit:?}");
}
