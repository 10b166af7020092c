//! The triggers a server fires by itself: a polled git branch, a cron schedule (one run for any
//! number of times missed while the server was down), and a watched data folder (by content,
//! debounced).

use std::path::Path;
use std::time::Duration;

use crate::harness::{Sandbox, Served, git, text, wait_until};

fn write_project(dir: &Path, name: &str, triggers: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let pipeline = format!(
        "[pipeline]\nname = \"{name}\"\n\n{triggers}\n[[stage]]\nname = \"show\"\nkind = \"shell\"\ncommand = \"ls\"\n"
    );
    std::fs::write(dir.join("sagebrush.toml"), pipeline).unwrap();
}

fn serve(sandbox: &Sandbox) -> Served {
    sandbox.serve_under(&["env", "SAGEBRUSH_LOG=info"], &["server"])
}

fn runs(sandbox: &Sandbox, project: &str) -> Vec<serde_json::Value> {
    sandbox.json(&["runs", project, "--json"]).as_array().unwrap().clone()
}

/// Waits until `project` has `count` runs, all ended; them, newest first.
fn ended_runs(sandbox: &Sandbox, project: &str, count: usize) -> Vec<serde_json::Value> {
    wait_until(Duration::from_secs(60), &format!("{count} ended runs of {project}"), || {
        let runs = runs(sandbox, project);
        (runs.len() == count && runs.iter().all(|r| r["finished_at"].is_i64())).then_some(runs)
    })
}

fn logged(served: &Served, what: &str) {
    wait_until(Duration::from_secs(30), what, || served.output().contains(what).then_some(()));
}

#[test]
fn polling_a_branch_runs_each_new_commit_once() {
    let sandbox = Sandbox::new();
    let repo = sandbox.dir.path().join("polled");
    write_project(&repo, "polled", "[triggers.poll]\ninterval = \"1s\"\n");
    git(&repo, &["init", "--quiet", "--initial-branch", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "one"]);
    let served = serve(&sandbox);
    let added = sandbox.run(&["project", "add", &format!("file://{}", repo.display())]);
    assert!(added.status.success(), "{}", text(&added));
    logged(&served, "polled: [triggers.poll] watches main from");
    assert_eq!(runs(&sandbox, "polled").len(), 0, "the commit it found is where it starts, not a run");

    for (count, marker) in [(1, "two"), (2, "three")] {
        std::fs::write(repo.join(marker), marker).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "--quiet", "-m", marker]);
        let head = git(&repo, &["rev-parse", "HEAD"]);
        let runs = ended_runs(&sandbox, "polled", count);
        let newest = &runs[0];
        assert_eq!(newest["status"], "succeeded", "{newest:#}\n{}", served.output());
        assert_eq!((newest["trigger"].as_str(), newest["commit_sha"].as_str()), (Some("poll"), Some(head.as_str())));
        let detail = newest["trigger_detail"].as_str().unwrap();
        assert!(detail.contains(&head[..12]) && detail.ends_with("on main"), "{detail}");
    }
}

#[test]
fn a_schedule_missed_while_the_server_was_down_runs_once_when_it_is_back() {
    let sandbox = Sandbox::new();
    let project = sandbox.dir.path().join("scheduled");
    // An hourly schedule whose minute is half an hour away, so no time of it comes during the test.
    let minute = (chrono_minute() + 30) % 60;
    let schedule = format!("[triggers.cron]\nschedule = \"{minute} * * * *\"\ntimezone = \"Europe/Berlin\"\n");
    write_project(&project, "scheduled", &schedule);
    let served = serve(&sandbox);
    let added = sandbox.run(&["project", "add", project.to_str().unwrap()]);
    assert!(added.status.success(), "{}", text(&added));
    logged(&served, "scheduled: [triggers.cron] follows");
    drop(served);

    // Down for five hours: five times of the schedule passed.
    let five_hours_ago = now_ms() - 5 * 3600 * 1000;
    let script = "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\n\
                  n = db.execute(\"UPDATE trigger_state SET state = ? WHERE project = 'scheduled' AND kind = 'cron'\", \
                  (sys.argv[2],)).rowcount\ndb.commit()\nassert n == 1, n\n";
    let updated = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(sandbox.home.join("state.db"))
        .arg(five_hours_ago.to_string())
        .output()
        .unwrap();
    assert!(updated.status.success(), "{}", text(&updated));

    let served = serve(&sandbox);
    let runs = ended_runs(&sandbox, "scheduled", 1);
    assert_eq!(runs[0]["trigger"], "cron", "{:#}", runs[0]);
    assert_eq!(runs[0]["trigger_detail"], format!("schedule {minute} * * * * (Europe/Berlin)"));
    // Three more ticks of the trigger loop: had it owed one run per missed time, they would start now.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs_now(&sandbox, "scheduled"), 1, "{}", served.output());
}

#[test]
fn new_or_changed_data_starts_one_run_and_touching_a_file_starts_none() {
    let sandbox = Sandbox::new();
    let project = sandbox.dir.path().join("watched");
    write_project(&project, "watched", "[triggers.data]\npath = \"incoming\"\ndebounce = \"1s\"\n");
    std::fs::create_dir_all(project.join("incoming")).unwrap();
    std::fs::write(project.join("incoming/a.csv"), "1,2\n").unwrap();
    let served = serve(&sandbox);
    let added = sandbox.run(&["project", "add", project.to_str().unwrap()]);
    assert!(added.status.success(), "{}", text(&added));
    logged(&served, "watched: [triggers.data] watches incoming");

    // The same bytes written again: a new modification time, no change.
    std::fs::write(project.join("incoming/a.csv"), "1,2\n").unwrap();
    // Several scans (every half debounce) and more than one debounce.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs_now(&sandbox, "watched"), 0, "{}", served.output());

    std::fs::write(project.join("incoming/b.csv"), "3,4\n").unwrap();
    let runs = ended_runs(&sandbox, "watched", 1);
    assert_eq!((runs[0]["trigger"].as_str(), runs[0]["status"].as_str()), (Some("data"), Some("succeeded")));
    assert_eq!(runs[0]["trigger_detail"], "files changed under incoming");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs_now(&sandbox, "watched"), 1, "one change, one run");
}

fn runs_now(sandbox: &Sandbox, project: &str) -> usize {
    runs(sandbox, project).len()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn chrono_minute() -> i64 {
    (now_ms() / 60_000) % 60
}
