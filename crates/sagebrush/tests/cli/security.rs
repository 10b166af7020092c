//! What an attacker or an unlucky operator tries: names that climb out of the home, requests from
//! other sites, silent connections, huge answers, processes left behind.

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
