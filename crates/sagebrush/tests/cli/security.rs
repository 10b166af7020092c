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
        request("DELETE", &format!("/api/endpoints/{encoded}"), ""),
        request("DELETE", "/api/endpoints/..", ""),
        request("POST", &format!("/api/endpoints/{encoded}/deploy"), r#"{"model_group":"iris"}"#),
        request("POST", "/api/endpoints/ok/deploy", r#"{"model_group":"../../x"}"#),
        request("GET", "/api/runs?project=..%2Fx", ""),
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
    for path in ["/api/runs", "/endpoints/iris-prod/invocations", "/metrics"] {
        let (status, answer) =
            raw_http(&served.url, &browser_request("GET", path, &format!("evil.example:{port}"), None, ""));
        assert_eq!(status, 421, "{path}: {answer}");
        assert!(answer.contains("host_not_allowed"), "{answer}");
    }
    let rebound = browser_request(
        "POST",
        "/api/runs",
        &format!("evil.example:{port}"),
        Some(&format!("http://evil.example:{port}")),
        run,
    );
    assert_eq!(raw_http(&served.url, &rebound).0, 421);
    // A cross-site form post: right Host, another page's Origin.
    let cross = browser_request("POST", "/api/runs", &own, Some("http://evil.example"), run);
    let (status, answer) = raw_http(&served.url, &cross);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("cross_origin"), "{answer}");
    let other_port = browser_request("POST", "/api/runs", &own, Some("http://127.0.0.1:1"), run);
    assert_eq!(raw_http(&served.url, &other_port).0, 403);
    // Nothing ran.
    assert_eq!(sandbox.json(&["runs", "--json"]), serde_json::json!([]));

    // The server's own origin, localhost and plain clients (no Origin) are served.
    assert_eq!(
        raw_http(&served.url, &browser_request("GET", "/api/runs", &format!("localhost:{port}"), None, "")).0,
        200
    );
    let own_page = browser_request("POST", "/api/runs", &own, Some(&served.url), run);
    let (status, answer) = raw_http(&served.url, &own_page);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(sandbox.wait_for_run("iris", 1)["run"]["status"], "succeeded");
}

#[test]
fn a_public_name_is_served_when_configured() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server", "--public-name", "ml.example.com"]);
    let (status, answer) = raw_http(&served.url, &browser_request("GET", "/api/runs", "ml.example.com", None, ""));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(raw_http(&served.url, &browser_request("GET", "/api/runs", "ml.example.org", None, "")).0, 421);
}

#[test]
fn listening_off_loopback_needs_an_explicit_override() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["server", "--listen", "0.0.0.0:0"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0") && stderr.contains("--insecure-no-auth"), "{stderr}");
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
    let (status, answer) = post("/api/runs", r#"{"project":"/etc/shadow"}"#);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("invalid_name") && !answer.contains(":1:"), "{answer}");
    let (status, answer) = post("/api/runs", r#"{"project":"iris"}"#);
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("unknown_project") && answer.contains("sagebrush project add"), "{answer}");
    for path in ["/etc/shadow", "/etc/passwd", "/etc"] {
        let (status, answer) = post("/api/projects", &format!(r#"{{"path":"{path}"}}"#));
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("is not a project") && !answer.contains(":1:"), "{answer}");
    }
    // A link named sagebrush.toml is not read either.
    let linked = sandbox.dir.path().join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", linked.join("sagebrush.toml")).unwrap();
    let (status, answer) = post("/api/projects", &format!(r#"{{"path":"{}"}}"#, linked.display()));
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
    partial.write_all(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:").unwrap();
    let (took, _) = closed_after(partial, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // Kept alive after an answer, then idle: closed after the same time.
    let mut idle = std::net::TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let (took, answer) = closed_after(idle, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // Half a body: 408, on the SageMaker routes and the API alike.
    for path in ["/endpoints/any/feedback", "/api/runs"] {
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
        let response = client.get(format!("{}/api/runs", served.url)).send();
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
