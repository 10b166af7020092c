//! The store against a real SQLite file and a real Postgres server, each test on both: numbering
//! (also under concurrency), transitions that cannot be overwritten, registry versions, leases,
//! events, endpoints; and artifacts.

#[path = "support/postgres.rs"]
mod postgres;

use store::{Artifacts, NewModelVersion, NewRun, ResourceKind, SecondaryStatus, Store, TrainingJobStatus};

/// Where a test's state lives; [`Backend::open`] may be called again to reopen it.
enum Backend {
    Sqlite(tempfile::TempDir),
    /// The server, kept running for as long as the test holds the backend, and the database's URL.
    Postgres(#[allow(dead_code)] postgres::Postgres, String),
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Backend {
        let server = postgres::Postgres::start();
        let url = server.database("state");
        Backend::Postgres(server, url)
    }

    async fn open(&self) -> Store {
        match self {
            Backend::Sqlite(dir) => Store::open(&dir.path().join("state.db")).await.unwrap(),
            Backend::Postgres(_, url) => Store::connect(url).await.unwrap(),
        }
    }
}

/// Runs the test `$name(Backend)` once on SQLite and once on Postgres.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::sqlite()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::postgres()).await
            }
        }
    )*};
}

on_both!(
    runs_are_numbered_per_project_and_survive_reopening,
    an_interrupted_run_cannot_be_finished_later,
    model_versions_count_up_per_group,
    retention_removes_ended_runs_only_and_never_numbers_a_removed_version_again,
    concurrent_writers_never_share_a_number,
    a_queued_run_is_claimed_once,
    leases_are_renewed_by_their_owner_and_lapse_without_it,
    events_follow_changes_in_order,
    endpoints_of_every_kind_round_trip,
    sagemaker_resources_are_made_once_and_kept_as_json,
    training_jobs_keep_their_json,
    approvals_are_decided_once,
    tokens_the_audit_projects_and_deliveries_round_trip,
);

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

async fn runs_are_numbered_per_project_and_survive_reopening(backend: Backend) {
    let stages = vec![("train".to_owned(), "train".to_owned())];
    {
        let store = backend.open().await;
        assert_eq!(store.create_run(new_run("a", &stages)).await.unwrap().number, 1);
        assert_eq!(store.create_run(new_run("a", &stages)).await.unwrap().number, 2);
        assert_eq!(store.create_run(new_run("b", &stages)).await.unwrap().number, 1);
    }
    let store = backend.open().await;
    let run = store.run("a", None).await.unwrap();
    assert_eq!(run.number, 2);
    assert_eq!(store.stages(run.id).await.unwrap()[0].status, store::StageStatus::Pending);
    assert!(store.run("c", None).await.is_err());
}

async fn an_interrupted_run_cannot_be_finished_later(backend: Backend) {
    let store = backend.open().await;
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

async fn model_versions_count_up_per_group(backend: Backend) {
    let store = backend.open().await;
    let run = store.create_run(new_run("a", &[])).await.unwrap();
    let lineage = serde_json::json!({ "commit": "abc" });
    let register = |group| version_of(group, run.id, &lineage);
    assert_eq!(store.register_model(register("g")).await.unwrap().version, 1);
    assert_eq!(store.register_model(register("g")).await.unwrap().version, 2);
    assert_eq!(store.register_model(register("h")).await.unwrap().version, 1);
    assert_eq!(store.model_versions(Some("g")).await.unwrap().len(), 2);
}

async fn retention_removes_ended_runs_only_and_never_numbers_a_removed_version_again(backend: Backend) {
    let store = backend.open().await;
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

async fn concurrent_writers_never_share_a_number(backend: Backend) {
    // Two handles are two pools, as two servers on one database would have.
    let (a, b) = (backend.open().await, backend.open().await);
    let lineage = serde_json::json!({});
    let seed = a.create_run(new_run("p", &[])).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let lineage = lineage.clone();
        tasks.spawn(async move {
            let run = store.create_run(new_run("p", &[])).await.unwrap();
            let version = store.register_model(version_of("g", seed.id, &lineage)).await.unwrap();
            (run.number, version.version)
        });
    }
    let (mut runs, mut versions): (Vec<i64>, Vec<i64>) = tasks.join_all().await.into_iter().unzip();
    runs.sort();
    versions.sort();
    assert_eq!(runs, (2..=41).collect::<Vec<_>>());
    assert_eq!(versions, (1..=40).collect::<Vec<_>>());
}

async fn a_queued_run_is_claimed_once(backend: Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let mut new = new_run("q", &[]);
    new.status = store::RunStatus::Queued;
    new.owner = None;
    let parameters = r#"{"b": 1, "a": "x"}"#;
    new.parameters = parameters;
    let run = a.create_run(new).await.unwrap();
    assert!(run.lease_until.is_none(), "a queued run has no lease");
    assert_eq!(a.queue_heads().await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [run.id]);
    let (first, second) = tokio::join!(a.claim_run(run.id, "server-a"), b.claim_run(run.id, "server-b"));
    assert!(first.unwrap() ^ second.unwrap(), "exactly one server claims it");
    let claimed = a.run_by_id(run.id).await.unwrap();
    assert_eq!(claimed.status, store::RunStatus::Running);
    assert!(claimed.lease_until.unwrap() > store::now_ms(), "claiming takes a lease");
    assert_eq!(claimed.parameters.0["b"], 1, "parameters are kept as JSON");
    assert!(a.queue_heads().await.unwrap().is_empty());
}

async fn leases_are_renewed_by_their_owner_and_lapse_without_it(backend: Backend) {
    let store = backend.open().await;
    let mine = store.create_run(new_run("l", &[])).await.unwrap();
    let mut other = new_run("m", &[]);
    other.owner = Some("another-server");
    let theirs = store.create_run(other).await.unwrap();
    let now = store::now_ms();
    assert!(store.lapsed_runs(now).await.unwrap().is_empty(), "fresh leases have not lapsed");
    assert_eq!(store.renew_leases("1:1").await.unwrap(), 1, "the owner renews its own run only");
    // Seen from later than a lease lasts, without a renewal, both have lapsed.
    let later = now + store::LEASE_MS + 1_000;
    let lapsed: Vec<i64> = store.lapsed_runs(later).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(lapsed, [mine.id, theirs.id]);
    store.fail_interrupted(theirs.id, "its server stopped renewing its lease").await.unwrap();
    assert_eq!(store.renew_leases("another-server").await.unwrap(), 0, "a failed run is not revived");
    let failed = store.run_by_id(theirs.id).await.unwrap();
    assert_eq!(failed.status, store::RunStatus::Failed);
    assert_eq!(failed.reason.as_deref(), Some("its server stopped renewing its lease"));
}

async fn events_follow_changes_in_order(backend: Backend) {
    let store = backend.open().await;
    let stages = vec![("train".to_owned(), "train".to_owned())];
    let run = store.create_run(new_run("e", &stages)).await.unwrap();
    store.start_stage(run.id, 0).await.unwrap();
    store
        .finish_stage(run.id, 0, store::StageStatus::Succeeded, None, &serde_json::json!({"digest": "sha256:1"}))
        .await
        .unwrap();
    store.finish_run(run.id, store::RunStatus::Succeeded, None).await.unwrap();
    let events = store.events(0, Some("e"), 100).await.unwrap();
    let kinds: Vec<store::EventKind> = events.iter().map(|e| e.kind).collect();
    use store::EventKind::*;
    assert_eq!(kinds, [RunStarted, StageStarted, StageFinished, RunFinished]);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(events[2].data.0["stage"], "train");
    assert_eq!(events[3].data.0["status"], "succeeded");
    assert_eq!(store.last_event().await.unwrap(), events[3].id);
    assert_eq!(store.stages_of(&[run.id]).await.unwrap()[0].outputs.0["digest"], "sha256:1");
    assert!(store.stages_of(&[]).await.unwrap().is_empty());
    let digests = store.image_digests_except(&[]).await.unwrap();
    assert!(digests.contains("sha256:1"), "{digests:?}");
    assert!(store.image_digests_except(&[run.id]).await.unwrap().is_empty());
}

async fn endpoints_of_every_kind_round_trip(backend: Backend) {
    let store = backend.open().await;
    let run = store.create_run(new_run("x", &[])).await.unwrap();
    let kinds = [
        store::EndpointKind::Model { model_group: "g".to_owned(), model_version: 3 },
        store::EndpointKind::MultiModel { dir: "/models".to_owned(), memory_budget_bytes: 1 << 30, image: None },
        store::EndpointKind::Chain { steps: vec!["a".to_owned(), "b".to_owned()] },
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let record = store::EndpointRecord {
            name: format!("ep{i}"),
            kind: kind.clone(),
            run_id: run.id,
            instances: 2,
            instance_type: Some("ml.m5.large".to_owned()),
            expires_at: None,
            capture_percent: None,
            updated_at: 0,
        };
        store.set_endpoint(&record).await.unwrap();
        store.set_endpoint_capture(&record.name, Some(12.5)).await.unwrap();
        let back = store.endpoint(&record.name).await.unwrap().unwrap();
        assert_eq!((&back.kind, back.instances, back.capture_percent), (kind, 2, Some(12.5)));
    }
    assert_eq!(store.endpoints().await.unwrap().len(), 3);
    let events = store.endpoint_events("ep0").await.unwrap();
    assert!(events.is_empty(), "set_endpoint alone appends no event: {events:?}");
    assert!(store.delete_endpoint("ep0").await.unwrap());
    assert_eq!(store.endpoint_events("ep0").await.unwrap().len(), 1);
    assert!(store.endpoint("ep0").await.unwrap().is_none());
}

async fn training_jobs_keep_their_json(backend: Backend) {
    let store = backend.open().await;
    let run = store.create_run(new_run("t", &[])).await.unwrap();
    store.create_training_job("t-1", run.id, "builtin:decision-tree", r#"{"max_depth": "3"}"#).await.unwrap();
    store
        .set_training_job_output("t-1", &serde_json::json!({"accuracy": 0.97}), Some("file:///m"), Some("00"))
        .await
        .unwrap();
    let job = store.training_job("t-1").await.unwrap();
    assert_eq!(job.hyperparameters.0["max_depth"], "3");
    assert_eq!(job.metrics.0["accuracy"], 0.97);
    assert!(store.training_job("none").await.is_err());
    assert_eq!(store.training_job_by_model("file:///m").await.unwrap().map(|j| j.name), Some("t-1".to_owned()));
    assert!(store.training_job_by_model("file:///other").await.unwrap().is_none());

    // Each secondary status is a transition once, in order, from the Starting the job began in.
    for (status, secondary) in [
        (TrainingJobStatus::InProgress, SecondaryStatus::Training),
        (TrainingJobStatus::InProgress, SecondaryStatus::Training),
        (TrainingJobStatus::Completed, SecondaryStatus::Completed),
    ] {
        store.set_training_job_status("t-1", status, secondary, None).await.unwrap();
    }
    let job = store.training_job("t-1").await.unwrap();
    let seen: Vec<SecondaryStatus> = job.transitions.0.iter().map(|t| t.status).collect();
    assert_eq!(seen, [SecondaryStatus::Starting, SecondaryStatus::Training, SecondaryStatus::Completed]);
    assert!(job.transitions.0.windows(2).all(|w| w[0].start_ms <= w[1].start_ms));
    assert!(job.finished_at.is_some());
}

async fn sagemaker_resources_are_made_once_and_kept_as_json(backend: Backend) {
    let store = backend.open().await;
    let body = serde_json::json!({"variants": [{"variant": "AllTraffic"}]});
    assert!(store.create_resource(ResourceKind::EndpointConfig, "c", &body).await.unwrap());
    assert!(!store.create_resource(ResourceKind::EndpointConfig, "c", &serde_json::json!({})).await.unwrap());
    // The same name is free in another kind.
    assert!(
        store.create_resource(ResourceKind::Endpoint, "c", &serde_json::json!({"status": "Creating"})).await.unwrap()
    );
    assert_eq!(store.resource(ResourceKind::EndpointConfig, "c").await.unwrap().unwrap().body.0, body);
    assert!(
        store.update_resource(ResourceKind::Endpoint, "c", &serde_json::json!({"status": "InService"})).await.unwrap()
    );
    assert!(!store.update_resource(ResourceKind::Model, "c", &serde_json::json!({})).await.unwrap());
    let endpoints = store.resources(ResourceKind::Endpoint).await.unwrap();
    assert_eq!(endpoints.iter().map(|r| r.body.0["status"].clone()).collect::<Vec<_>>(), ["InService"]);
    assert!(store.delete_resource(ResourceKind::EndpointConfig, "c").await.unwrap());
    assert!(!store.delete_resource(ResourceKind::EndpointConfig, "c").await.unwrap());
    assert!(store.resource(ResourceKind::EndpointConfig, "c").await.unwrap().is_none());
}

async fn approvals_are_decided_once(backend: Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let stages = vec![("approve".to_owned(), "approval".to_owned())];
    let run = a.create_run(new_run("ap", &stages)).await.unwrap();
    a.start_stage(run.id, 0).await.unwrap();
    let evidence = serde_json::json!({"accuracy": 0.9});
    let ask = store::NewApproval {
        run_id: run.id,
        position: 0,
        stage: "approve",
        model: None,
        evidence: &evidence,
        expires_at: Some(1),
    };
    a.request_approval(&ask).await.unwrap();
    assert_eq!(a.run_by_id(run.id).await.unwrap().status, store::RunStatus::Waiting);
    assert_eq!(a.expired_approvals(2).await.unwrap().len(), 1);
    let (yes, no) =
        tokio::join!(a.decide_approval(run.id, true, "ann", "ok"), b.decide_approval(run.id, false, "bob", "no"));
    assert!(yes.is_ok() ^ no.is_ok(), "one decision wins: {yes:?} {no:?}");
    let approvals = a.approvals(run.id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].evidence.0["accuracy"], 0.9);
    let status = a.run_by_id(run.id).await.unwrap().status;
    assert!(matches!(status, store::RunStatus::Queued | store::RunStatus::Failed), "{status:?}");
}

async fn tokens_the_audit_projects_and_deliveries_round_trip(backend: Backend) {
    let store = backend.open().await;
    store.create_token("ci", store::Role::Operator, "hash-1").await.unwrap();
    assert!(store.create_token("ci", store::Role::Viewer, "hash-2").await.unwrap_err().to_string().contains("exists"));
    let tokens = store.token_hashes().await.unwrap();
    assert_eq!((tokens[0].0.role, tokens[0].1.as_str()), (store::Role::Operator, "hash-1"));
    store.revoke_token("ci").await.unwrap();
    assert!(store.revoke_token("ci").await.is_err());

    for action in ["POST /api/v1/runs", "POST /api/v1/runs/1/approve", "GET /api/v1/a_b%"] {
        store.record_audit("ci", action, 201).await.unwrap();
    }
    let filter = |action| store::AuditFilter { action: Some(action), ..Default::default() };
    assert_eq!(store.audit(&filter("approve"), 10).await.unwrap().len(), 1);
    assert_eq!(store.audit(&filter("/runs"), 10).await.unwrap().len(), 2);
    assert_eq!(store.audit(&filter("a_b%"), 10).await.unwrap().len(), 1, "a substring, not a pattern");
    assert_eq!(store.audit(&filter("a%b"), 10).await.unwrap().len(), 0);
    let all = store.audit(&store::AuditFilter::default(), 10).await.unwrap();
    assert_eq!(all.len(), 3);
    let older = store::AuditFilter { before_id: Some(all[0].id), ..Default::default() };
    assert_eq!(store.audit(&older, 10).await.unwrap().len(), 2);

    store.add_project("iris", "/srv/iris").await.unwrap();
    assert_eq!(store.project("iris").await.unwrap().path, "/srv/iris");
    assert_eq!(store.projects().await.unwrap().len(), 1);
    assert!(store.remove_project("iris").await.unwrap());

    assert!(store.record_delivery("github", "d-1", "iris").await.unwrap());
    assert!(!store.record_delivery("github", "d-1", "iris").await.unwrap(), "a redelivery is seen");
    store.set_trigger_state("iris", "data", "abc").await.unwrap();
    store.set_trigger_state("iris", "data", "def").await.unwrap();
    assert_eq!(store.trigger_state("iris", "data").await.unwrap().as_deref(), Some("def"));
    store.record_notify_failure("iris", "https://x", 7, "run_finished", 3, "timed out").await.unwrap();
    assert_eq!(store.notify_failures(10).await.unwrap()[0].event_id, 7);
}
