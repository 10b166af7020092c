//! State in Postgres: the iris loop on it, and several servers sharing one database, each with its
//! own home: no run runs twice, and when a server dies or hangs, another finishes its queue.

use std::time::Duration;

use crate::harness::{Sandbox, Served, payload, text, wait_until};
use crate::queue::{add_project, runs};

#[path = "../../../store/tests/support/postgres.rs"]
mod pg;

/// A Postgres server and one fresh database on it.
fn database() -> (pg::Postgres, String) {
    let server = pg::Postgres::start();
    let url = server.database("sagebrush");
    (server, url)
}

#[test]
fn the_iris_loop_runs_on_postgres_and_keeps_nothing_in_the_home() {
    let (_server, url) = database();
    let sandbox = Sandbox::with_database(&url);
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["up", project.to_str().unwrap()]);
    let first = sandbox.wait_for_run("iris", 1);
    assert_eq!(first["run"]["status"], "succeeded", "{first:#}\n{}", served.output());
    let response = served.invoke("iris-prod", "text/csv", payload());
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap().lines().count(), 29);

    let second = sandbox.run(&["run", project.to_str().unwrap(), "-p", "max_leaf_nodes=3"]);
    assert!(second.status.success(), "{}", text(&second));
    let models = sandbox.json(&["models", "iris", "--json"]);
    let versions: Vec<i64> = models.as_array().unwrap().iter().map(|m| m["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(models[0]["lineage"]["hyperparameters"]["max_leaf_nodes"], "3");
    assert!(!sandbox.home.join("state.db").exists(), "the state went to Postgres, not the home");

    // Another home on the same database sees the same runs and models.
    let other = Sandbox::with_database(&url);
    let runs = other.json(&["runs", "iris", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#}");
    let doctor = other.run(&["doctor"]);
    assert!(text(&doctor).contains("Postgres postgres://sagebrush:***@127.0.0.1"), "{}", text(&doctor));
}

#[test]
fn doctor_says_what_to_do_when_postgres_is_not_there() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sandbox = Sandbox::with_database(&format!("postgres://sagebrush:hunter2@127.0.0.1:{port}/none"));
    let output = sandbox.run(&["doctor"]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("check that the server is up"), "{shown}");
    assert!(!shown.contains("hunter2"), "the password is never printed: {shown}");
    let run = sandbox.run(&["runs"]);
    assert!(!run.status.success());
    assert!(!text(&run).contains("hunter2"), "{}", text(&run));
}

/// A project whose shell stage appends `<project> <run>` to `marker`, then sleeps `${seconds}`.
fn marking_project(sandbox: &Sandbox, name: &str, marker: &std::path::Path) -> std::path::PathBuf {
    let dir = sandbox.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let command =
        format!("echo \\\"$SAGEBRUSH_PROJECT $SAGEBRUSH_RUN\\\" >> {} && sleep ${{seconds}}", marker.display());
    std::fs::write(
        dir.join("sagebrush.toml"),
        format!(
            "[pipeline]\nname = \"{name}\"\n[parameters]\nseconds = {{ type = \"float\", default = 0 }}\n\
             [[stage]]\nname = \"mark\"\nkind = \"shell\"\ncommand = \"{command}\"\n"
        ),
    )
    .unwrap();
    dir
}

/// Queues a run through the API; it must be accepted.
fn queue(served: &Served, project: &str, seconds: &str) {
    let (status, answer) = crate::queue::queue(served, project, seconds);
    assert_eq!(status, 201, "{answer}");
}

fn owned_by(run: &serde_json::Value, served: &Served) -> bool {
    run["owner"].as_str().is_some_and(|owner| owner.starts_with(&format!("{}:", served.child.id())))
}

#[test]
fn two_servers_share_ten_queued_runs_and_one_finishes_what_a_killed_one_left() {
    let (_server, url) = database();
    let (a, b) = (Sandbox::with_database(&url), Sandbox::with_database(&url));
    let marker = a.dir.path().join("ran.txt");
    let server_a = a.serve(&["server", "--max-runs", "2"]);
    let server_b = b.serve(&["server", "--max-runs", "2"]);
    for p in 0..5 {
        // Projects are state too: added on one server, the other runs them.
        add_project(&server_a, &marking_project(&a, &format!("p{p}"), &marker));
    }
    for n in 0..10 {
        queue(if n % 2 == 0 { &server_a } else { &server_b }, &format!("p{}", n % 5), "1.5");
    }
    wait_until(Duration::from_secs(30), "server a to be running a run", || {
        runs(&b).iter().any(|r| r["status"] == "running" && owned_by(r, &server_a)).then_some(())
    });
    let a_was_running: Vec<i64> = runs(&b)
        .iter()
        .filter(|r| r["status"] == "running" && owned_by(r, &server_a))
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    server_a.kill();

    wait_until(Duration::from_secs(90), "every run to end", || {
        runs(&b).iter().all(|r| !["queued", "running"].contains(&r["status"].as_str().unwrap())).then_some(())
    });
    let all = runs(&b);
    assert_eq!(all.len(), 10);
    let ran = std::fs::read_to_string(&marker).unwrap();
    let mut lines: Vec<&str> = ran.lines().collect();
    lines.sort();
    let before = lines.len();
    lines.dedup();
    assert_eq!(lines.len(), before, "a run ran twice:\n{ran}");
    for run in &all {
        let id = run["id"].as_i64().unwrap();
        let mark = format!("{} {}", run["project"].as_str().unwrap(), run["number"]);
        assert!(lines.contains(&mark.as_str()), "run {mark} never ran:\n{ran}");
        if a_was_running.contains(&id) {
            assert_eq!(run["status"], "failed", "{run:#}");
            let reason = run["reason"].as_str().unwrap();
            assert!(reason.contains("while stage `mark` was running"), "{reason}");
            assert!(reason.contains("stopped before the run finished"), "{reason}");
        } else {
            assert_eq!(run["status"], "succeeded", "{run:#}\n{}", server_b.output());
        }
    }
    assert!(all.iter().any(|r| owned_by(r, &server_b)), "server b ran none of them");
}

#[test]
fn a_hung_server_loses_its_running_run_when_its_lease_lapses() {
    let (_server, url) = database();
    let (a, b) = (Sandbox::with_database(&url), Sandbox::with_database(&url));
    let marker = a.dir.path().join("ran.txt");
    let server_a = a.serve(&["server", "--max-runs", "1"]);
    add_project(&server_a, &marking_project(&a, "slow", &marker));
    queue(&server_a, "slow", "45.75");
    wait_until(Duration::from_secs(30), "the slow run to start", || {
        runs(&a).iter().any(|r| r["status"] == "running" && owned_by(r, &server_a)).then_some(())
    });
    queue(&server_a, "slow", "0");
    let server_b = b.serve(&["server", "--max-runs", "1"]);
    // Stopped, not killed: its process is still there, but it renews nothing.
    let pid = nix::unistd::Pid::from_raw(server_a.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let lapsed = wait_until(Duration::from_secs(60), "the stopped server's run to fail", || {
        let first = b.json(&["show", "slow", "1", "--json"]);
        (first["run"]["status"] == "failed").then_some(first)
    });
    let reason = lapsed["run"]["reason"].as_str().unwrap();
    assert!(reason.contains("stopped renewing its lease on the run"), "{reason}");
    let second = b.wait_for_run("slow", 2);
    assert_eq!(second["run"]["status"], "succeeded", "{second:#}\n{}", server_b.output());
    assert!(owned_by(&second["run"], &server_b));
    server_a.kill();
    for pid in crate::harness::processes_with("sleep 45.75") {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(feature = "aws")]
#[test]
fn a_database_that_takes_only_tls_is_reached_over_tls() {
    let (server, cert) = pg::Postgres::start_tls_only();
    let url = server.database("sagebrush");
    let sandbox = Sandbox::with_database(&format!("{url}?sslmode=verify-full&sslrootcert={}", cert.display()));
    let doctor = sandbox.run(&["doctor"]);
    assert!(text(&doctor).contains("ok   database   Postgres"), "{}", text(&doctor));
    let project = sandbox.dir.path().join("tls");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("sagebrush.toml"),
        "[pipeline]\nname = \"tls\"\n[[stage]]\nname = \"hello\"\nkind = \"shell\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(sandbox.json(&["runs", "tls", "--json"])[0]["status"], "succeeded");

    // The server refuses a connection without TLS: the one above was encrypted.
    let plain = Sandbox::with_database(&format!("{url}?sslmode=disable"));
    let refused = plain.run(&["runs"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("no encryption"), "{}", text(&refused));
}
