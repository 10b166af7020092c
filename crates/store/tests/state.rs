//! The store against a real SQLite file: numbering, transitions that cannot be overwritten, registry versions, artifacts.

use store::{Artifacts, NewModelVersion, NewRun, Store};

static MANUAL: store::Trigger = store::Trigger { kind: store::TriggerKind::Manual, detail: None, by: None };

fn new_run<'a>(project: &'a str, stages: &'a [(String, String)]) -> NewRun<'a> {
    NewRun {
        project,
        project_path: "/p",
        parameters: "{}",
        secrets: "{}",
        trigger: &MANUAL,
        status: store::RunStatus::Running,
        owner: Some("1:1"),
        retry_of: None,
        retry_from: None,
        requested_commit: None,
        stages,
    }
}

#[tokio::test]
async fn runs_are_numbered_per_project_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let stages = vec![("train".to_owned(), "train".to_owned())];
    {
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.create_run(new_run("a", &stages)).await.unwrap().number, 1);
        assert_eq!(store.create_run(new_run("a", &stages)).await.unwrap().number, 2);
        assert_eq!(store.create_run(new_run("b", &stages)).await.unwrap().number, 1);
    }
    let store = Store::open(&path).await.unwrap();
    let run = store.run("a", None).await.unwrap();
    assert_eq!(run.number, 2);
    assert_eq!(store.stages(run.id).await.unwrap()[0].status, store::StageStatus::Pending);
    assert!(store.run("c", None).await.is_err());
}

#[tokio::test]
async fn an_interrupted_run_cannot_be_finished_later() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    let stages = vec![("train".to_owned(), "train".to_owned()), ("deploy".to_owned(), "deploy".to_owned())];
    let run = store.create_run(new_run("a", &stages)).await.unwrap();
    store.start_stage(run.id, 0).await.unwrap();
    store.fail_interrupted(run.id, "interrupted").await.unwrap();
    store.finish_run(run.id, store::RunStatus::Succeeded, None).await.unwrap();
    let run = store.run_by_id(run.id).await.unwrap();
    assert_eq!((run.status.as_str(), run.reason.as_deref()), ("failed", Some("interrupted")));
    let stages = store.stages(run.id).await.unwrap();
    assert_eq!(stages[0].status, store::StageStatus::Failed);
    assert_eq!(stages[1].status, store::StageStatus::Skipped);
    assert!(!store.request_cancel(run.id).await.unwrap(), "an ended run cannot be cancelled");
}

fn version_of<'a>(group: &'a str, run_id: i64, lineage: &'a serde_json::Value) -> NewModelVersion<'a> {
    NewModelVersion {
        model_group: group,
        run_id,
        algorithm: "builtin:decision-tree",
        artifact_uri: "file:///x",
        artifact_sha256: "00",
        lineage,
        approval_status: store::ModelApprovalStatus::PendingManualApproval,
    }
}

#[tokio::test]
async fn model_versions_count_up_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    let run = store.create_run(new_run("a", &[])).await.unwrap();
    let lineage = serde_json::json!({ "commit": "abc" });
    let register = |group| version_of(group, run.id, &lineage);
    assert_eq!(store.register_model(register("g")).await.unwrap().version, 1);
    assert_eq!(store.register_model(register("g")).await.unwrap().version, 2);
    assert_eq!(store.register_model(register("h")).await.unwrap().version, 1);
    assert_eq!(store.model_versions(Some("g")).await.unwrap().len(), 2);
}

#[tokio::test]
async fn retention_removes_ended_runs_only_and_never_numbers_a_removed_version_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    let lineage = serde_json::json!({});
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = store.create_run(new_run("a", &[])).await.unwrap();
        store.register_model(version_of("g", run.id, &lineage)).await.unwrap();
        runs.push(run);
    }
    let running = store.create_run(new_run("a", &[])).await.unwrap();
    store.finish_run(runs[1].id, store::RunStatus::Succeeded, None).await.unwrap();
    assert_eq!(store.remove_runs(&[runs[1].id, running.id]).await.unwrap(), [runs[1].id], "a running run stays");
    assert_eq!(store.model_versions(Some("g")).await.unwrap().len(), 1);
    let next = version_of("g", runs[0].id, &lineage);
    assert_eq!(store.register_model(next).await.unwrap().version, 3, "v2 was removed, not forgotten");
}

#[tokio::test]
async fn artifacts_keep_their_checksum_and_detect_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = Artifacts::local(&dir.path().join("artifacts")).unwrap();
    let file = dir.path().join("model.tar.gz");
    std::fs::write(&file, b"model bytes").unwrap();
    let stored = artifacts.put_file("iris-1/output/model.tar.gz", &file).await.unwrap();
    assert_eq!(stored.sha256, "9cb7487000bc86ac36ce83c4acfabe8878552be99572a6770f65ab1d048a5c48");
    assert!(dir.path().join("artifacts/iris-1/output/model.tar.gz").is_file());
    assert_eq!(&artifacts.get(&stored.uri, Some(&stored.sha256)).await.unwrap()[..], b"model bytes");
    std::fs::write(dir.path().join("artifacts/iris-1/output/model.tar.gz"), b"changed").unwrap();
    assert!(artifacts.get(&stored.uri, Some(&stored.sha256)).await.is_err());
}

#[tokio::test]
async fn artifacts_moved_to_another_folder_keep_the_older_ones_readable() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("artifacts");
    let before =
        Artifacts::local(&home).unwrap().put_bytes("iris-1/output/model.tar.gz", b"v1".to_vec()).await.unwrap();
    let moved = store::Location::parse(dir.path().join("shared").to_str().unwrap()).unwrap();
    let artifacts = Artifacts::open(&moved, &home).unwrap();
    let after = artifacts.put_bytes("iris-2/output/model.tar.gz", b"v2".to_vec()).await.unwrap();
    assert!(after.uri.contains("/shared/iris-2/"), "{}", after.uri);
    assert_eq!(&artifacts.get(&before.uri, Some(&before.sha256)).await.unwrap()[..], b"v1");
    assert_eq!(&artifacts.get(&after.uri, Some(&after.sha256)).await.unwrap()[..], b"v2");
    assert!(artifacts.get("file:///elsewhere/x", None).await.unwrap_err().to_string().contains("not found"));
}
