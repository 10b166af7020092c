//! Tokens and roles: open on loopback, a token for every call off it, each role refused what it
//! may not do, every change in the audit with who made it, and no token in any log or file.

use crate::harness::{Sandbox, Served, client, files_under, payload, text};

fn call(served: &Served, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client().request(method, format!("{}{path}", served.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.json(&serde_json::json!({})).send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(serde_json::Value::Null))
}

/// Every route of the OpenAPI document that changes something, with its parameters filled in.
fn mutating_routes(served: &Served) -> Vec<(String, String)> {
    let document: serde_json::Value =
        client().get(format!("{}/api/v1/openapi.json", served.url)).send().unwrap().json().unwrap();
    let mut routes = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            // Webhooks are signed with a project's secret instead of a token.
            let tokenless = operation["security"] == serde_json::json!([{}]);
            if method != "get" && !tokenless {
                let path = path
                    .replace("{project}", "iris")
                    .replace("{number}", "1")
                    .replace("{endpoint}", "iris-prod")
                    .replace("{token}", "ci");
                routes.push((method.to_uppercase(), path));
            }
        }
    }
    routes
}

#[test]
fn off_loopback_every_call_needs_a_token_and_each_role_does_only_its_part() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let admin = sandbox.token("admin", "admin");
    let viewer = sandbox.token("dashboard", "viewer");
    let operator = sandbox.token("ci", "operator");
    let served = sandbox.serve(&["server", "--listen", "0.0.0.0:0", "--public-endpoint", "iris-test"]);

    // No token, or one the server does not know: 401, for reads too.
    assert_eq!(call(&served, "GET", "/api/v1/runs", None).0, 401);
    let (status, answer) = call(&served, "GET", "/api/v1/runs", Some("sb_not-a-token"));
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("invalid_token")), "{answer}");
    // Health answers anyone, as a load balancer needs.
    assert_eq!(call(&served, "GET", "/api/v1/health", None).0, 200);
    assert_eq!(call(&served, "GET", "/api/v1/runs", Some(&viewer)).0, 200);

    // A viewer changes nothing: 403 on every mutating route, whatever its parameters.
    let routes = mutating_routes(&served);
    assert!(routes.len() >= 9, "{routes:?}");
    for (method, path) in &routes {
        let (status, answer) = call(&served, method, path, Some(&viewer));
        assert_eq!(status, 403, "{method} {path} as a viewer: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    }
    // An operator runs and deploys, but does not manage projects or tokens.
    let dir = project.to_str().unwrap();
    let output = sandbox.command(&["project", "add", dir]).env("SAGEBRUSH_TOKEN", &operator).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("needs the admin role"), "{}", text(&output));
    let output = sandbox.command(&["project", "add", dir]).env("SAGEBRUSH_TOKEN", &admin).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let output = sandbox.command(&["run", dir]).env("SAGEBRUSH_TOKEN", &operator).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let output = sandbox
        .command(&["deploy", "iris-prod", "iris", "--model-version", "1"])
        .env("SAGEBRUSH_TOKEN", &operator)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(call(&served, "POST", "/api/v1/tokens", Some(&operator)).0, 403);
    assert_eq!(call(&served, "POST", "/api/v1/gc", Some(&operator)).0, 403, "retention is an admin's");
    // Without a token the CLI is told what to do.
    let output = sandbox.run(&["runs"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("SAGEBRUSH_TOKEN"), "{}", text(&output));

    // Invocations need a token too, unless the endpoint is public.
    let invoke = |endpoint: &str, token: Option<&str>| {
        let mut request = client()
            .post(format!("{}/endpoints/{endpoint}/invocations", served.url))
            .header("content-type", "text/csv")
            .body(payload());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(invoke("iris-prod", None), 401);
    assert_eq!(invoke("iris-prod", Some(&viewer)), 200);
    assert_eq!(call(&served, "DELETE", "/api/v1/endpoints/iris-test", Some(&operator)).0, 404, "deleted with its run");

    // Every change is in the audit under the token's name, refusals too.
    let audit: serde_json::Value = client()
        .get(format!("{}/api/v1/audit?limit=100", served.url))
        .bearer_auth(&viewer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let entries: Vec<(String, String, i64)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(entries.contains(&("ci".into(), "POST /api/v1/runs".into(), 201)), "{entries:?}");
    assert!(entries.contains(&("ci".into(), "POST /api/v1/endpoints/iris-prod/deploy".into(), 200)), "{entries:?}");
    assert!(entries.contains(&("admin".into(), "POST /api/v1/projects".into(), 201)), "{entries:?}");
    assert!(entries.contains(&("dashboard".into(), "POST /api/v1/runs".into(), 403)), "a refusal too: {entries:?}");
    // A revoked token is refused from the next call on.
    let output = sandbox.command(&["token", "revoke", "dashboard"]).env("SAGEBRUSH_TOKEN", &admin).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(call(&served, "GET", "/api/v1/runs", Some(&viewer)).0, 401);

    // No token is in the server's log or any file of the home (only their hashes).
    let log = served.output();
    drop(served);
    for value in [&admin, &viewer, &operator] {
        assert!(!log.contains(value.as_str()), "a token is in the server's log");
        let secret = value.trim_start_matches("sb_");
        for file in files_under(&sandbox.home) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "a token is in {}", file.display());
        }
    }
}

#[test]
fn on_loopback_no_token_is_needed_and_changes_are_audited_as_local() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let dir = project.to_str().unwrap();
    // In-process, then through a loopback server: both audited as `local`.
    let output = sandbox.run(&["project", "add", dir]);
    assert!(output.status.success(), "{}", text(&output));
    let served = sandbox.serve(&["server"]);
    let output = sandbox.run(&["run", dir]);
    assert!(output.status.success(), "{}", text(&output));
    let audit = sandbox.json(&["audit", "--json"]);
    let actions: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    let local: Vec<&String> = actions.iter().filter(|a| a.starts_with("local ")).collect();
    assert_eq!(local, ["local POST /api/v1/runs", "local POST /api/v1/projects"], "newest first: {actions:?}");
    // What the run itself did is there too, under the run's name.
    assert!(actions.contains(&"run iris #1 promote iris v1 to iris-prod".to_owned()), "{actions:?}");
    // A token that is presented must still be a known one.
    assert_eq!(call(&served, "GET", "/api/v1/runs", Some("sb_wrong")).0, 401);
    // Tokens are managed through the server too, and a name is taken once.
    let output = sandbox.run(&["token", "create", "ci", "--role", "operator"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).trim().starts_with("sb_"), "{}", text(&output));
    let output = sandbox.run(&["token", "create", "ci", "--role", "viewer"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("exists already"), "{}", text(&output));
    let output = sandbox.run(&["token", "create", "x", "--role", "root"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert_eq!(sandbox.json(&["token", "list", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let sandbox = Sandbox::new();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef sagebrush"), ("fish", "complete -c sagebrush")] {
        let output = sandbox.run(&["completions", shell]);
        assert!(output.status.success(), "{}", text(&output));
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(marker) && script.contains("delete-endpoint"), "{shell}: {script}");
    }
}
