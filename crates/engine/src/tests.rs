//! The engine's logic on the fake backend: the stage loop, retries, timeouts and cancellation,
//! with a real store in a temporary home and no process or container started.

use std::sync::Arc;
use std::time::Duration;

use store::{RunRecord, RunStatus, StageRecord, StageStatus};

use crate::backend::fake::{self, FakeTraining, Job};
use crate::{Engine, Home};

struct Fixture {
    dir: tempfile::TempDir,
    engine: Engine,
    training: Arc<FakeTraining>,
}

/// An engine on the fake backend whose jobs do what `script` says, in order.
async fn fixture(script: &[Job]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let training = FakeTraining::new(script);
    let backends = fake::backends(training.clone());
    let home = Home::new(dir.path().join("home"));
    let engine = Engine::open_with(home, router::Router::new(), String::new(), backends).await.unwrap();
    Fixture { dir, engine, training }
}

impl Fixture {
    /// A project whose pipeline is a built-in algorithm and `stages` (TOML of `[[stage]]` tables).
    fn project(&self, stages: &str) -> std::path::PathBuf {
        let dir = self.dir.path().join("p");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/train.csv"), "0,1.0\n1,2.0\n").unwrap();
        let file = format!("[pipeline]\nname = \"p\"\n[algorithm]\nbuiltin = \"decision-tree\"\n{stages}");
        std::fs::write(dir.join("sagebrush.toml"), file).unwrap();
        dir
    }

    async fn submit(&self, stages: &str) -> i64 {
        let project = self.project(stages);
        self.engine.submit(&project, &[], &store::Trigger::manual("local")).await.unwrap().run.id
    }

    /// The run once it has ended (within a deadline: a hung loop fails the test, it does not hang it).
    async fn ended(&self, run_id: i64) -> (RunRecord, Vec<StageRecord>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (run, stages) = self.engine.run_view(run_id).await.unwrap();
            if run.status.is_finished() {
                return (run, stages);
            }
            assert!(tokio::time::Instant::now() < deadline, "run {run_id} did not end: {run:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn log(&self, stage: &str) -> String {
        let path = self.dir.path().join(format!("home/logs/p/1/{stage}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

const TRAIN: &str = "[[stage]]\nkind = \"train\"\nchannels = { train = \"data/train.csv\" }\n";
const GATE: &str = "[[stage]]\nkind = \"gate\"\nrequire = [{ metric = \"train:accuracy\", min = 0.9 }]\n";

#[tokio::test]
async fn a_failing_stage_is_retried_and_its_attempts_counted() {
    let f = fixture(&[Job::Fails, Job::Fails]).await;
    let run = f.submit(&format!("{TRAIN}retries = 2\n{GATE}")).await;
    let (run, stages) = f.ended(run).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!((stages[0].status, stages[0].attempts), (StageStatus::Succeeded, 3));
    assert_eq!(stages[1].status, StageStatus::Succeeded, "the gate read the third attempt's metrics");
    assert_eq!(f.training.started.lock().unwrap().len(), 3);
    assert!(f.log("train").contains("--- attempt 3 of 3 ---"), "{}", f.log("train"));
}

#[tokio::test]
async fn a_stage_failing_past_its_retries_fails_the_run_and_skips_the_rest() {
    let f = fixture(&[Job::Fails, Job::Fails]).await;
    let run = f.submit(&format!("{TRAIN}retries = 1\n{GATE}")).await;
    let (run, stages) = f.ended(run).await;
    assert_eq!(run.status, RunStatus::Failed);
    let reason = run.reason.unwrap();
    assert!(reason.starts_with("stage `train` failed") && reason.contains("scripted to fail"), "{reason}");
    assert_eq!((stages[0].status, stages[0].attempts), (StageStatus::Failed, 2));
    assert_eq!(stages[1].status, StageStatus::Skipped);
    let job = f.engine.store().training_job("p-1").await.unwrap();
    assert_eq!(job.status, store::TrainingJobStatus::Failed, "the training job records it too");
}

#[tokio::test]
async fn a_stage_past_its_timeout_fails_with_how_long_it_had() {
    let f = fixture(&[Job::Hangs]).await;
    let run = f.submit(&format!("{TRAIN}timeout = \"50ms\"\n")).await;
    let (run, stages) = f.ended(run).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(stages[0].reason.as_deref(), Some("timed out after 50ms"));
}

#[tokio::test]
async fn a_cancelled_run_stops_its_running_stage_and_ends_cancelled() {
    let f = fixture(&[Job::Hangs]).await;
    let run_id = f.submit(&format!("{TRAIN}{GATE}")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.training.started.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(f.engine.cancel(run_id).await.unwrap());
    let (run, stages) = f.ended(run_id).await;
    assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
    assert_eq!(stages[0].status, StageStatus::Cancelled);
    assert_eq!(stages[1].status, StageStatus::Skipped);
    assert!(!f.engine.cancel(run_id).await.unwrap(), "an ended run cannot be cancelled again");
}

#[tokio::test]
async fn queued_runs_start_in_order_within_the_limit() {
    let f = fixture(&[Job::Hangs, Job::Hangs]).await;
    f.engine.run_queue(1);
    let project = f.project(TRAIN);
    let first = f.engine.submit(&project, &[], &store::Trigger::manual("local")).await.unwrap().run;
    let second = f.engine.submit(&project, &[("x".into(), "1".into())], &store::Trigger::manual("local")).await;
    // Undeclared parameters are refused before anything is queued.
    assert!(second.is_err());
    let second = f.engine.submit(&project, &[], &store::Trigger::manual("other")).await.unwrap().run;
    assert_eq!((first.status, second.status), (RunStatus::Queued, RunStatus::Queued));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.training.started.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the first run never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // One at a time: the second waits while the first hangs.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(*f.training.started.lock().unwrap(), ["p-1"]);
    assert_eq!(f.engine.store().run_by_id(second.id).await.unwrap().status, RunStatus::Queued);
    f.engine.cancel(first.id).await.unwrap();
    assert_eq!(f.ended(first.id).await.0.status, RunStatus::Cancelled);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.training.started.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the second run never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(*f.training.started.lock().unwrap(), ["p-1", "p-2"]);
    f.engine.cancel(second.id).await.unwrap();
    assert_eq!(f.ended(second.id).await.0.status, RunStatus::Cancelled);
}

const REGISTER: &str = "[[stage]]\nkind = \"register\"\n";
const APPROVAL: &str = "[[stage]]\nname = \"approve\"\nkind = \"approval\"\n";

impl Fixture {
    /// The run once it waits (within a deadline).
    async fn waiting(&self, run_id: i64) -> (RunRecord, Vec<StageRecord>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (run, stages) = self.engine.run_view(run_id).await.unwrap();
            if run.status == RunStatus::Waiting {
                return (run, stages);
            }
            assert!(tokio::time::Instant::now() < deadline, "run {run_id} did not wait: {run:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[tokio::test]
async fn an_approval_waits_with_its_evidence_then_goes_on_after_it_once_approved() {
    let f = fixture(&[]).await;
    f.engine.run_queue(1);
    let run = f.submit(&format!("{TRAIN}{REGISTER}{APPROVAL}{GATE}")).await;
    let (_, stages) = f.waiting(run).await;
    let statuses: Vec<StageStatus> = stages.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StageStatus::Succeeded, StageStatus::Succeeded, StageStatus::Waiting, StageStatus::Pending]);
    let approval = &f.engine.store().approvals(run).await.unwrap()[0];
    assert_eq!((approval.model_group.as_deref(), approval.model_version), (Some("p"), Some(1)));
    assert_eq!(approval.evidence.0["metrics"]["train:accuracy"], 0.97, "{:?}", approval.evidence);
    let version = f.engine.store().model_version("p", 1).await.unwrap();
    assert_eq!(version.approval_status, store::ModelApprovalStatus::PendingManualApproval);

    f.engine.decide(run, true, "alice", "metrics hold").await.unwrap();
    let (run, stages) = f.ended(run).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert!(stages.iter().all(|s| s.status == StageStatus::Succeeded), "{stages:?}");
    assert_eq!(f.training.started.lock().unwrap().len(), 1, "the stages before the approval did not run again");
    let version = f.engine.store().model_version("p", 1).await.unwrap();
    assert_eq!(version.approval_status, store::ModelApprovalStatus::Approved);
    assert!(f.engine.decide(run.id, false, "bob", "late").await.is_err(), "decided once");
}

#[tokio::test]
async fn a_rejected_or_expired_approval_fails_the_run_before_the_stages_after_it() {
    let f = fixture(&[]).await;
    f.engine.run_queue(1);
    let run = f.submit(&format!("{TRAIN}{REGISTER}{APPROVAL}{GATE}")).await;
    f.waiting(run).await;
    f.engine.decide(run, false, "bob", "worse than prod").await.unwrap();
    let (run, stages) = f.ended(run).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.reason.as_deref(), Some("stage `approve` failed: rejected by bob: worse than prod"));
    assert_eq!((stages[2].status, stages[3].status), (StageStatus::Failed, StageStatus::Skipped));
    let version = f.engine.store().model_version("p", 1).await.unwrap();
    assert_eq!(version.approval_status, store::ModelApprovalStatus::Rejected);

    let run = f.submit(&format!("{TRAIN}{REGISTER}{APPROVAL}reject_after = \"50ms\"\n{GATE}")).await;
    let (run, _) = f.ended(run).await;
    assert_eq!(run.status, RunStatus::Failed);
    let reason = run.reason.unwrap_or_default();
    assert!(reason.contains("rejected by timeout: nobody decided within"), "{reason}");
}

#[tokio::test]
async fn a_sagemaker_stage_this_engine_cannot_run_is_refused_before_anything_is_recorded() {
    let f = fixture(&[]).await;
    let dir = f.dir.path().join("byo");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |instance_type: &str| {
        let file = format!(
            "[pipeline]\nname = \"byo\"\n[algorithm]\nimage = \"byo\"\n[[stage]]\nkind = \"train\"\n\
             channels = {{ training = \"s3://data/train.csv\" }}\nbackend = \"sagemaker\"\n\
             role = \"arn:aws:iam::123456789012:role/SageMakerRole\"\ninstance_type = \"{instance_type}\"\n"
        );
        std::fs::write(dir.join("sagebrush.toml"), file).unwrap();
    };
    let refusal = |engine: Engine| {
        let dir = dir.clone();
        async move { engine.submit(&dir, &[], &store::Trigger::manual("local")).await.unwrap_err().to_string() }
    };
    write("ml.m5.large");
    let without = refusal(f.engine.clone()).await;
    assert!(without.contains("--features aws"), "a build without SageMaker names the flag: {without}");

    let mut backends = fake::backends(FakeTraining::new(&[]));
    backends.sagemaker_training = Some(Arc::new(crate::managed::fake::FakeManaged));
    backends.sagemaker_hosting = Some(Arc::new(crate::managed::fake::FakeManaged));
    let home = Home::new(f.dir.path().join("home"));
    let with = Engine::open_with(home, router::Router::new(), String::new(), backends).await.unwrap();
    write("ml.m5.huge");
    let unknown = refusal(with.clone()).await;
    assert!(unknown.contains("stage `train`: SageMaker has no training instance type `ml.m5.huge`"), "{unknown}");
    write("ml.m5.xlarge");
    let local = refusal(with.clone()).await;
    assert!(local.contains("--artifacts s3://bucket/prefix"), "SageMaker writes models to S3: {local}");

    let deploy = |instance_type: &str| {
        let file = format!(
            "[pipeline]\nname = \"byo\"\n[algorithm]\nimage = \"byo\"\n[[stage]]\nkind = \"deploy\"\n\
             endpoint = \"byo\"\nbackend = \"sagemaker\"\nrole = \"arn:aws:iam::123456789012:role/SageMakerRole\"\n\
             instance_type = \"{instance_type}\"\n"
        );
        std::fs::write(dir.join("sagebrush.toml"), file).unwrap();
    };
    deploy("ml.m5.large");
    let hosting = refusal(f.engine.clone()).await;
    assert!(hosting.contains("stage `deploy`: backend = \"sagemaker\" needs"), "{hosting}");
    deploy("ml.m5.huge");
    let unknown = refusal(with.clone()).await;
    assert!(unknown.contains("stage `deploy`: SageMaker has no training instance type `ml.m5.huge`"), "{unknown}");
    deploy("ml.m5.large");
    let local = refusal(with.clone()).await;
    assert!(local.contains("stage `deploy`: SageMaker keeps models on S3"), "{local}");

    let build =
        "[pipeline]\nname = \"byo\"\n[algorithm]\nimage = \"byo\"\n[[stage]]\nkind = \"build\"\nregistry = \"ecr\"\n";
    std::fs::write(dir.join("sagebrush.toml"), build).unwrap();
    let ecr = refusal(f.engine.clone()).await;
    assert!(ecr.contains("stage `build`: registry = \"ecr\" needs a sagebrush built with AWS"), "{ecr}");
    assert!(with.store().runs(None, 10).await.unwrap().is_empty(), "no run was recorded");
    assert!(f.engine.store().runs(None, 10).await.unwrap().is_empty(), "no run was recorded");
}
