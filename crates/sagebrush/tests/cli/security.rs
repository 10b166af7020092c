//! What an attacker or an unlucky operator tries: names that climb out of the home, requests from
//! other sites, silent connections, huge answers, processes left behind.

use std::time::{Duration, Instant};

use crate::harness::{Sandbox, raw_http, text};

/// A folder outside the home that a traversal name would reach from `<home>/endpoints/<name>`.
fn victim(sandbox: &Sandbox) -> std::path::PathBuf {
    let victim = sandbox.dir.path().join("somewhere/victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "precious").unwrap();
    victim
}

/// An HTTP/1.1 request from a local client, written out as it goes on the wire.
fn request(method: &str, path: &str, json: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{json}",
        json.len()
    )
}

#[test]
fn names_that_climb_out_of_the_home_are_refused_and_touch_nothing() {
    let sandbox = Sandbox::new();
    let victim = victim(&sandbox);
    let traversal = "../../somewhere/victim";

    // The CLI with no server: refused as invalid input before anything opens.
    for args in [
        vec!["delete-endpoint", traversal],
        vec!["deploy", traversal, "iris"],
        vec!["deploy", "ok", "../x"],
        vec!["show", "../x"],
        vec!["logs", "iris", "--stage", "../../x"],
        vec!["invoke", "a/b", "-d", "/dev/null"],
    ] {
        let output = sandbox.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(String::from_utf8_lossy(&output.stderr).contains("is not a valid name"), "{}", text(&output));
    }
    assert!(victim.join("keep.txt").is_file());

    let served = sandbox.serve(&["server"]);
    let encoded = "..%2F..%2Fsomewhere%2Fvictim";
    for request in [
        request("DELETE", &format!("/api/v1/endpoints/{encoded}"), ""),
        request("DELETE", "/api/v1/endpoints/..", ""),
        request("POST", &format!("/api/v1/endpoints/{encoded}/deploy"), r#"{"model_group":"iris"}"#),
        request("POST", "/api/v1/endpoints/ok/deploy", r#"{"model_group":"../../x"}"#),
        request("GET", "/api/v1/runs?project=..%2Fx", ""),
    ] {
        let (status, answer) = raw_http(&served.url, &request);
        assert_eq!(status, 400, "{request}\n{answer}");
        assert!(answer.contains("\"code\":\"invalid_name\""), "{answer}");
    }
    // Through the running server, the CLI refuses the same way.
    let output = sandbox.run(&["delete-endpoint", traversal]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(victim.join("keep.txt").is_file());

    // Nothing was recorded, so a restart empties nothing either.
    drop(served);
    assert_eq!(sandbox.json(&["endpoints", "--json"]), serde_json::json!([]));
    let served = sandbox.serve(&["server"]);
    drop(served);
    assert!(victim.join("keep.txt").is_file(), "the victim folder outside the home was touched");
}

/// A request as a browser would send it for a page of `origin`, to the server named `host`.
fn browser_request(method: &str, path: &str, host: &str, origin: Option<&str>, json: &str) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
}

#[test]
fn a_web_page_cannot_reach_the_api_by_dns_rebinding_or_a_cross_site_request() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["server", "--project", project.to_str().unwrap()]);
    let own = served.url.trim_start_matches("http://").to_owned();
    let port = own.rsplit(':').next().unwrap().to_owned();
    let run = r#"{"project":"iris"}"#;

    // DNS rebinding: the page's origin is the attacker's name, which resolves to 127.0.0.1.
    for path in ["/api/v1/runs", "/endpoints/iris-prod/invocations", "/metrics"] {
        let (status, answer) =
            raw_http(&served.url, &browser_request("GET", path, &format!("evil.example:{port}"), None, ""));
        assert_eq!(status, 421, "{path}: {answer}");
        assert!(answer.contains("host_not_allowed"), "{answer}");
    }
    let rebound = browser_request(
        "POST",
        "/api/v1/runs",
        &format!("evil.example:{port}"),
        Some(&format!("http://evil.example:{port}")),
        run,
    );
    assert_eq!(raw_http(&served.url, &rebound).0, 421);
    // A cross-site form post: right Host, another page's Origin.
    let cross = browser_request("POST", "/api/v1/runs", &own, Some("http://evil.example"), run);
    let (status, answer) = raw_http(&served.url, &cross);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("cross_origin"), "{answer}");
    let other_port = browser_request("POST", "/api/v1/runs", &own, Some("http://127.0.0.1:1"), run);
    assert_eq!(raw_http(&served.url, &other_port).0, 403);
    // Nothing ran.
    assert_eq!(sandbox.json(&["runs", "--json"]), serde_json::json!([]));

    // The server's own origin, localhost and plain clients (no Origin) are served.
    assert_eq!(
        raw_http(&served.url, &browser_request("GET", "/api/v1/runs", &format!("localhost:{port}"), None, "")).0,
        200
    );
    let own_page = browser_request("POST", "/api/v1/runs", &own, Some(&served.url), run);
    let (status, answer) = raw_http(&served.url, &own_page);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(sandbox.wait_for_run("iris", 1)["run"]["status"], "succeeded");
}

#[test]
fn a_public_name_is_served_when_configured() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server", "--public-name", "ml.example.com"]);
    let (status, answer) = raw_http(&served.url, &browser_request("GET", "/api/v1/runs", "ml.example.com", None, ""));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(raw_http(&served.url, &browser_request("GET", "/api/v1/runs", "ml.example.org", None, "")).0, 421);
}

#[test]
fn listening_off_loopback_needs_a_token_or_an_explicit_override() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["server", "--listen", "0.0.0.0:0"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0") && stderr.contains("sagebrush token create NAME --role admin"),
        "{stderr}"
    );
    assert!(!sandbox.home.join("server.json").exists());
    let project = sandbox.project("iris", "iris");
    let output = sandbox.run(&["up", project.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing to listen"), "{}", text(&output));
    assert_eq!(sandbox.json(&["runs", "--json"]), serde_json::json!([]), "up ran nothing");

    let served = sandbox.serve(&["server", "--listen", "0.0.0.0:0", "--insecure-no-auth"]);
    crate::harness::wait_until(std::time::Duration::from_secs(10), "the warning", || {
        served.output().contains("WARNING: listening on 0.0.0.0").then_some(())
    });
}

#[test]
fn the_api_runs_only_the_projects_the_server_was_given() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["server"]);
    let own = served.url.trim_start_matches("http://").to_owned();
    let post = |path: &str, json: &str| raw_http(&served.url, &browser_request("POST", path, &own, None, json));

    // A path is not a project name, and no file is opened for one.
    let (status, answer) = post("/api/v1/runs", r#"{"project":"/etc/shadow"}"#);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("invalid_name") && !answer.contains(":1:"), "{answer}");
    let (status, answer) = post("/api/v1/runs", r#"{"project":"iris"}"#);
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("unknown_project") && answer.contains("sagebrush project add"), "{answer}");
    for path in ["/etc/shadow", "/etc/passwd", "/etc"] {
        let (status, answer) = post("/api/v1/projects", &format!(r#"{{"path":"{path}"}}"#));
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("is not a project") && !answer.contains(":1:"), "{answer}");
    }
    // A link named sagebrush.toml is not read either.
    let linked = sandbox.dir.path().join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", linked.join("sagebrush.toml")).unwrap();
    let (status, answer) = post("/api/v1/projects", &format!(r#"{{"path":"{}"}}"#, linked.display()));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(sandbox.json(&["runs", "--json"]), serde_json::json!([]));

    // `sagebrush run <folder>` gives the server the project, then runs it by name.
    let output = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let projects = sandbox.json(&["project", "list", "--json"]);
    assert_eq!(projects[0]["name"], "iris", "{projects:#}");
    assert_eq!(projects[0]["path"], project.canonicalize().unwrap().to_str().unwrap());
    // Another folder cannot take a name that is given.
    let other = sandbox.project("iris", "other");
    std::fs::write(other.join("sagebrush.toml"), std::fs::read_to_string(project.join("sagebrush.toml")).unwrap())
        .unwrap();
    let output = sandbox.run(&["run", other.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already added"), "{}", text(&output));
    let output = sandbox.run(&["project", "remove", "iris"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(sandbox.json(&["project", "list", "--json"]), serde_json::json!([]));
}

/// How long until the server closes `stream` (reads until EOF), and what it sent before.
fn closed_after(mut stream: std::net::TcpStream, limit: Duration) -> (Duration, String) {
    use std::io::Read;
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut answer = Vec::new();
    let result = stream.read_to_end(&mut answer);
    assert!(result.is_ok(), "the connection was still open after {limit:?}: {result:?}");
    (started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn silent_and_slow_connections_are_closed_after_their_timeouts() {
    use std::io::Write;
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server", "--header-timeout", "1", "--body-timeout", "1"]);
    let address = served.url.trim_start_matches("http://").to_owned();

    let silent = std::net::TcpStream::connect(&address).unwrap();
    let (took, _) = closed_after(silent, Duration::from_secs(10));
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "closed after {took:?}");

    let mut partial = std::net::TcpStream::connect(&address).unwrap();
    partial.write_all(b"GET /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:").unwrap();
    let (took, _) = closed_after(partial, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // Kept alive after an answer, then idle: closed after the same time.
    let mut idle = std::net::TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let (took, answer) = closed_after(idle, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // Half a body: 408, on the SageMaker routes and the API alike.
    for path in ["/endpoints/any/feedback", "/api/v1/runs"] {
        let mut slow = std::net::TcpStream::connect(&address).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n5.1,"
        );
        slow.write_all(head.as_bytes()).unwrap();
        let (took, answer) = closed_after(slow, Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(took < Duration::from_secs(5), "{path}: answered after {took:?}");
    }
}

#[test]
fn fifteen_hundred_silent_connections_do_not_stop_another_clients_requests() {
    // The test holds 1,500 sockets of its own.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(hard >= 2048, "this test needs an open-files limit of at least 2048, not {hard}");

    let sandbox = Sandbox::new();
    // systemd's usual limit, soft and hard alike, so the server cannot raise it.
    let served = sandbox.serve_under(&["prlimit", "--nofile=1024:1024", "--"], &["server"]);
    let address = served.url.trim_start_matches("http://").to_owned();
    let silent: Vec<std::net::TcpStream> =
        (0..1500).filter_map(|_| std::net::TcpStream::connect(&address).ok()).collect();
    assert!(silent.len() > 1000, "only {} connections were made", silent.len());

    let client = crate::harness::client();
    for n in 0..50 {
        let response = client.get(format!("{}/api/v1/runs", served.url)).send();
        match response {
            Ok(r) => assert_eq!(r.status(), 200, "request {n}"),
            Err(e) => panic!("request {n} failed: {e}\n{}", served.output()),
        }
    }
    let response = client.get(format!("{}/ping", served.url)).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(!served.output().contains("Too many open files"), "{}", served.output());
    drop(silent);
}

/// The resident memory of a process, in MiB.
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// The bound the README states for what remembering answers for A/B feedback may add, with room for the allocator.
const SERVER_MEMORY_BOUND_MIB: f64 = 64.0;

#[test]
fn a_hundred_six_megabyte_requests_to_a_two_variant_endpoint_leave_memory_bounded() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "ab");
    std::fs::write(
        project.join("sagebrush.toml"),
        r#"[pipeline]
name = "ab"
[parameters]
variant = { type = "string", default = "AllTraffic" }
[algorithm]
builtin = "decision-tree"
[[stage]]
kind = "train"
channels = { training = "data/train.csv" }
[[stage]]
kind = "deploy"
endpoint = "ab-prod"
variant = "${variant}"
weight = 1.0
"#,
    )
    .unwrap();
    let served = sandbox.serve(&["server"]);
    let dir = project.to_str().unwrap();
    for variant in ["AllTraffic", "B"] {
        let output = sandbox.run(&["run", dir, "-p", &format!("variant={variant}")]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let pid = served.child.id();
    let before = resident_mib(pid);
    let row = "5.1,3.5,1.4,0.2\n";
    let body = row.repeat((6 * 1024 * 1024) / row.len() - 1);
    let client = crate::harness::client();
    let mut variants = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let response = client
            .post(format!("{}/endpoints/ab-prod/invocations", served.url))
            .header("content-type", "text/csv")
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        variants.insert(response.headers()["x-amzn-invoked-production-variant"].to_str().unwrap().to_owned());
        let _ = response.bytes().unwrap();
    }
    assert_eq!(variants.len(), 2, "both variants answered: {variants:?}");
    let after = resident_mib(pid);
    eprintln!("server resident memory: {before:.1} MiB before, {after:.1} MiB after 100 requests of 6 MiB");
    assert!(after < SERVER_MEMORY_BOUND_MIB, "{after:.1} MiB after the requests ({before:.1} MiB before)");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("mount");
        assert!(output.status.success(), "this test mounts a tmpfs (it needs root): {}", text(&output));
        SmallDisk(at)
    }

    fn free_bytes(&self) -> u64 {
        let output = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(&self.0).output().unwrap();
        String::from_utf8_lossy(&output.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("--lazy").arg(&self.0).output();
    }
}

#[test]
fn a_run_on_a_full_disk_fails_with_the_reason_and_the_cli_exits() {
    let mut sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let disk = SmallDisk::mount(sandbox.dir.path().join("disk"), "24m");
    sandbox.home = disk.0.join("home");
    let run = |args: &[&str]| sandbox.run(args);
    let first = run(&["run", project.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));

    // About 100 KB left, as an unlucky operator would have.
    let filler = disk.0.join("filler");
    let leave = 100 * 1024;
    std::fs::write(&filler, vec![1u8; usize::try_from(disk.free_bytes() - leave).unwrap()]).unwrap();
    let started = Instant::now();
    let mut child = sandbox
        .command(&["run", project.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = crate::harness::wait_until(Duration::from_secs(120), "the CLI to exit on a full disk", || {
        child.try_wait().unwrap()
    });
    let output = child.wait_with_output().unwrap();
    let output = std::process::Output { status, ..output };
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(stderr.contains("disk is full") || stderr.contains("no space left"), "{}", text(&output));
    eprintln!("the CLI exited {:?} after the disk filled:\n{}", started.elapsed(), text(&output));

    // With room again, the run is recorded as failed for the disk, not as interrupted.
    std::fs::remove_file(&filler).unwrap();
    let shown = run(&["show", "iris", "2", "--json"]);
    assert!(shown.status.success(), "{}", text(&shown));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["run"]["status"], "failed", "{shown:#}");
    let reason = shown["run"]["reason"].as_str().unwrap().to_lowercase();
    assert!(reason.contains("disk is full") || reason.contains("no space left"), "{reason}");
    let stages = shown["stages"].as_array().unwrap();
    assert!(stages.iter().all(|s| s["status"] != "running" && s["status"] != "pending"), "{shown:#}");
}

#[test]
fn a_server_on_a_full_disk_records_the_real_reason_once_it_can() {
    let mut sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let disk = SmallDisk::mount(sandbox.dir.path().join("disk"), "24m");
    sandbox.home = disk.0.join("home");
    let home = sandbox.home.clone();
    let served = sandbox.serve(&["server"]);
    let run = |args: &[&str]| sandbox.run(args);
    let first = run(&["run", project.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));

    // No reserve left to free: the server must keep the reason until a write goes through.
    let _ = std::fs::remove_file(home.join("state.reserve"));
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![1u8; usize::try_from(disk.free_bytes() - 100 * 1024).unwrap()]).unwrap();
    let output = run(&["run", project.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(stderr.contains("disk is full") || stderr.contains("no space left"), "{}", text(&output));

    std::fs::remove_file(&filler).unwrap();
    let shown = crate::harness::wait_until(Duration::from_secs(30), "the server to record the run", || {
        let output = run(&["show", "iris", "2", "--json"]);
        let shown: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        (!["queued", "running"].contains(&shown["run"]["status"].as_str()?)).then_some(shown)
    });
    assert_eq!(shown["run"]["status"], "failed", "{shown:#}");
    let reason = shown["run"]["reason"].as_str().unwrap().to_lowercase();
    assert!(reason.contains("disk is full") || reason.contains("no space left"), "{reason}\n{}", served.output());
}

/// A project whose only stage is a shell command that leaves `sleep <marker>` running in the background.
fn background_project(sandbox: &Sandbox, name: &str, marker: u32, timeout: &str) -> std::path::PathBuf {
    let dir = sandbox.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sagebrush.toml"),
        format!(
            "[pipeline]\nname = \"{name}\"\n[[stage]]\nkind = \"shell\"\ntimeout = \"{timeout}\"\n\
             command = \"sleep {marker} & sh -c 'sleep {marker}' & sleep {marker}\"\n"
        ),
    )
    .unwrap();
    dir
}

fn wait_for_processes(marker: &str, alive: bool) {
    let what = if alive { "the stage's processes to start" } else { "the stage's processes to be gone" };
    crate::harness::wait_until(Duration::from_secs(20), what, || {
        let count = crate::harness::processes_with(marker).len();
        let done = if alive { count >= 3 } else { count == 0 };
        done.then_some(())
    });
}

#[test]
fn a_shell_stage_leaves_no_process_behind_after_cancel_timeout_or_a_killed_server() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server"]);

    // Cancel.
    let cancelled = background_project(&sandbox, "cancelled", 31_337, "1h");
    let mut waiting = sandbox.command(&["run", cancelled.to_str().unwrap()]).spawn().unwrap();
    wait_for_processes("sleep 31337", true);
    let output = sandbox.run(&["cancel", "cancelled"]);
    assert!(output.status.success(), "{}", text(&output));
    wait_for_processes("sleep 31337", false);
    assert_eq!(waiting.wait().unwrap().code(), Some(3), "the CLI reports the cancelled run");

    // Timeout.
    let timed = background_project(&sandbox, "timed", 31_338, "1s");
    let output = sandbox.run(&["run", timed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("timed out"), "{}", text(&output));
    wait_for_processes("sleep 31338", false);

    // kill -9 of the server: the stage's processes go, and the CLI waiting on it says the server is gone.
    let killed = background_project(&sandbox, "killed", 31_339, "1h");
    let waiting =
        sandbox.command(&["run", killed.to_str().unwrap()]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_for_processes("sleep 31339", true);
    served.kill();
    wait_for_processes("sleep 31339", false);
    let output = waiting.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is gone"), "{}", text(&output));
}

#[test]
fn a_server_s_secrets_do_not_reach_a_shell_stage() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("envy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sagebrush.toml"),
        "[pipeline]\nname = \"envy\"\n[[stage]]\nkind = \"shell\"\ncommand = \"env\"\n",
    )
    .unwrap();
    let output = sandbox
        .command(&["run", dir.to_str().unwrap()])
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-value-1")
        .env("SAGEBRUSH_TOKEN", "sagebrush-token-value-2")
        .env("HARMLESS_SETTING", "plain-value-3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let log = sandbox.run(&["logs", "envy"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("plain-value-3"), "the stage has the server's environment: {log}");
    assert!(!log.contains("aws-secret-value-1") && !log.contains("sagebrush-token-value-2"), "{log}");
}

#[test]
fn ctrl_c_of_up_leaves_no_process_or_container_of_the_home() {
    let sandbox = Sandbox::new();
    // A build stage starts the home's registry; the image is FROM scratch, so nothing is pulled.
    let dir = sandbox.dir.path().join("tiny");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY payload /payload\n").unwrap();
    std::fs::write(dir.join("payload"), "x").unwrap();
    std::fs::write(
        dir.join("sagebrush.toml"),
        "[pipeline]\nname = \"tiny\"\n[algorithm]\nimage = \"tiny\"\n[[stage]]\nkind = \"build\"\n",
    )
    .unwrap();
    let served = sandbox.serve(&["up", dir.to_str().unwrap()]);
    assert_eq!(sandbox.wait_for_run("tiny", 1)["run"]["status"], "succeeded", "{}", served.output());
    let home = sandbox.home.display().to_string();
    assert!(!crate::harness::processes_with(&home).is_empty(), "the registry runs for the home");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(served.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    crate::harness::wait_until(Duration::from_secs(30), "up to stop and everything it started with it", || {
        crate::harness::processes_with(&home).is_empty().then_some(())
    });
    let filter = format!("label=dev.sagebrush.home={home}");
    let listed =
        std::process::Command::new("docker").args(["ps", "--all", "--quiet", "--filter", &filter]).output().unwrap();
    assert!(listed.stdout.is_empty(), "containers of the home are left: {}", String::from_utf8_lossy(&listed.stdout));
}

#[test]
fn paths_outside_the_project_and_missing_path_parameters_are_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let file = project.join("sagebrush.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    assert!(original.contains("\"${train_data}\""), "the example's training channel is the train_data parameter");

    // A path parameter that does not exist: refused, and no run is recorded.
    let output = sandbox.run(&["run", project.to_str().unwrap(), "-p", "train_data=data/nope.csv"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("data/nope.csv does not exist"), "{}", text(&output));
    // Outside the project, through a parameter or in the file.
    for outside in ["../../../../etc/passwd", "/etc/shadow"] {
        let output = sandbox.run(&["run", project.to_str().unwrap(), "-p", &format!("train_data={outside}")]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(String::from_utf8_lossy(&output.stderr).contains("is outside the project"), "{}", text(&output));
        std::fs::write(&file, original.replace("\"data/test.csv\"", &format!("\"{outside}\""))).unwrap();
        let output = sandbox.run(&["run", project.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("sagebrush.toml:") && stderr.contains("is outside the project"), "{stderr}");
    }
    assert_eq!(sandbox.json(&["runs", "--json"]), serde_json::json!([]));

    // Allowed when the pipeline says so.
    let data = sandbox.dir.path().join("elsewhere.csv");
    std::fs::copy(project.join("data/train.csv"), &data).unwrap();
    std::fs::write(&file, original.replacen("[pipeline]\n", "[pipeline]\nallow_absolute_paths = true\n", 1)).unwrap();
    let output = sandbox.run(&["run", project.to_str().unwrap(), "-p", &format!("train_data={}", data.display())]);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn the_home_and_its_files_are_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["up", project.to_str().unwrap()]);
    assert_eq!(sandbox.wait_for_run("iris", 1)["run"]["status"], "succeeded");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sandbox.home), 0o700);
    for file in ["state.db", "server.json", "logs/iris/1/train.log", "artifacts/iris-1/output/model.tar.gz"] {
        assert_eq!(mode(&sandbox.home.join(file)), 0o600, "{file}");
    }
    drop(served);
}

#[test]
fn a_model_that_training_wrote_as_a_link_is_refused_at_training_time() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let dir = sandbox.project("iris", "linked");
    let algorithm = dir.join("algorithm");
    std::fs::create_dir_all(&algorithm).unwrap();
    for (name, script) in [
        ("train", "#!/bin/sh\necho '{}' > /opt/ml/model/model.json\nln -s /etc/passwd /opt/ml/model/passwd\n"),
        ("serve", "#!/bin/sh\nexit 1\n"),
    ] {
        std::fs::write(algorithm.join(name), script).unwrap();
        std::fs::set_permissions(algorithm.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        dir.join("sagebrush.toml"),
        "[pipeline]\nname = \"linked\"\n[algorithm]\nprocess = \"algorithm\"\n[[stage]]\nkind = \"train\"\n\
         channels = { training = \"data/train.csv\" }\n[[stage]]\nkind = \"register\"\n",
    )
    .unwrap();
    let output = sandbox.run(&["run", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = sandbox.json(&["show", "linked", "--json"]);
    let train = &shown["stages"][0];
    assert_eq!(train["status"], "failed", "{shown:#}");
    assert!(train["reason"].as_str().unwrap().contains("symbolic link"), "{shown:#}");
    assert_eq!(sandbox.json(&["models", "--json"]), serde_json::json!([]), "nothing undeployable was registered");
}

#[test]
fn listings_never_print_control_characters_raw() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let output = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    // A record written before names were checked, as an older version let the API do.
    let script = "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\n\
                  db.execute(\"INSERT INTO endpoints (name, model_group, model_version, run_id, instances, updated_at) \
                  VALUES (?, 'iris', 1, 1, 1, 0)\", ('evil\\x1b[2J\\x07',))\ndb.commit()\n";
    let inserted =
        std::process::Command::new("python3").args(["-c", script]).arg(sandbox.home.join("state.db")).output().unwrap();
    assert!(inserted.status.success(), "{}", text(&inserted));
    let output = sandbox.run(&["endpoints"]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("evil\\u{1b}[2J\\u{7}"), "{stdout}");
    assert!(!stdout.chars().any(|c| c.is_control() && c != '\n'), "{stdout:?}");
}
