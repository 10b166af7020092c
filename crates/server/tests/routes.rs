//! Every route of the API in-process (`tower::ServiceExt::oneshot`): its mistakes get the right
//! status and a stable code, in the one error shape, and nothing changes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

struct Api {
    app: axum::Router,
    _home: tempfile::TempDir,
}

async fn api() -> Api {
    let home = tempfile::tempdir().unwrap();
    let engine =
        engine::Engine::open(engine::Home::new(home.path().join("home")), router::Router::new(), String::new())
            .await
            .unwrap();
    Api { app: server::api_routes(server::Service::new(engine), Duration::from_secs(5)), _home: home }
}

impl Api {
    async fn call(&self, method: Method, uri: &str, body: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

#[tokio::test]
async fn every_route_answers_its_mistakes_with_a_status_and_a_code() {
    let api = api().await;
    let big = format!(r#"{{"path": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let cases: &[(Method, &str, &str, StatusCode, &str)] = &[
        (Method::POST, "/api/v1/projects", "not json", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/v1/projects", r#"{"path": "/etc/passwd"}"#, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/v1/projects", &big, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        (Method::DELETE, "/api/v1/projects/a..b", "", StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::DELETE, "/api/v1/projects/iris", "", StatusCode::NOT_FOUND, "unknown_project"),
        (Method::POST, "/api/v1/runs", r#"{"project": "/etc/shadow"}"#, StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::POST, "/api/v1/runs", r#"{"project": "iris"}"#, StatusCode::NOT_FOUND, "unknown_project"),
        (Method::POST, "/api/v1/runs", r#"{"parameters": 3}"#, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/runs?limit=0", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/runs?limit=many", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/runs?status=asleep", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/runs?project=..%2Fx", "", StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::GET, "/api/v1/runs/iris/1", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/runs/iris/first", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/runs/-iris/latest", "", StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::POST, "/api/v1/runs/iris/1/cancel", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::POST, "/api/v1/runs/iris/1/retry", "{}", StatusCode::NOT_FOUND, "not_found"),
        (Method::POST, "/api/v1/runs/iris/1/retry", r#"{"from": "../x"}"#, StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::GET, "/api/v1/runs/iris/latest/logs", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::POST, "/api/v1/runs/iris/1/approve", r#"{"reason": "ok"}"#, StatusCode::NOT_FOUND, "not_found"),
        (Method::POST, "/api/v1/runs/iris/1/approve", "{}", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/v1/runs/iris/1/reject", r#"{"reason": " "}"#, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/v1/runs/iris/x/reject", r#"{"reason": "no"}"#, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/hooks/github/iris", "{}", StatusCode::NOT_FOUND, "unknown_project"),
        (Method::POST, "/hooks/svn/iris", "{}", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/runs/iris/latest/logs?stage=a/b", "", StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::GET, "/api/v1/models?group=a_b", "", StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::GET, "/api/v1/endpoints/nope", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/endpoints/nope/history", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/endpoints/nope/history?at=noon", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/v1/gc", "{\"dry_run\": \"yes\"}", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/v1/gc", "{\"keep\": 1}", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/endpoints/nope/drift", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/endpoints/nope/drift?window=0", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/endpoints/nope/drift?window=many", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/endpoints/..", "", StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::DELETE, "/api/v1/endpoints/nope", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::POST, "/api/v1/endpoints/e/deploy", r#"{"model_group": "iris"}"#, StatusCode::NOT_FOUND, "not_found"),
        (Method::PUT, "/api/v1/endpoints/e/weights", r#"{"weights": {"B": 1}}"#, StatusCode::NOT_FOUND, "not_found"),
        (Method::PUT, "/api/v1/endpoints/e/weights", r#"{"weights": {}}"#, StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Method::PUT,
            "/api/v1/endpoints/e/weights",
            r#"{"weights": {"B": -1}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::PUT,
            "/api/v1/endpoints/e/weights",
            r#"{"weights": {"a/b": 1}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            Method::PUT,
            "/api/v1/endpoints/e/weights",
            r#"{"weights": "all"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/endpoints/e/deploy",
            r#"{"model_group": "i_ris"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            Method::POST,
            "/api/v1/endpoints/e/deploy",
            r#"{"model_group": "iris", "traffic": "slowly"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/endpoints/e/deploy",
            r#"{"model_group": "iris", "instances": 99}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/endpoints/e/deploy",
            r#"{"model_group": "iris", "instance_type": "ml.p5.48xlarge"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/projects",
            r#"{"path": "/p", "repo": "file:///r"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/projects",
            r#"{"repo": "--upload-pack=x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/projects",
            r#"{"repo": "file:///no/such/repo"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (Method::POST, "/api/v1/tokens", r#"{"name": "ci"}"#, StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Method::POST,
            "/api/v1/tokens",
            r#"{"name": "ci", "role": "root"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            r#"{"name": "c/i", "role": "viewer"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (Method::DELETE, "/api/v1/tokens/nope", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/audit?limit=0", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/events?after=x", "", StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/v1/events?project=a..b", "", StatusCode::BAD_REQUEST, "invalid_name"),
        (Method::GET, "/api/v1/nothing-here", "", StatusCode::NOT_FOUND, "not_found"),
        (Method::PUT, "/api/v1/runs", "", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ];
    for (method, uri, body, status, code) in cases {
        let (got, answer) = api.call(method.clone(), uri, body).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (*status, Some(*code)), "{method} {uri}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty() && m.len() < 600), "{answer}");
    }
    // Nothing changed.
    assert_eq!(api.call(Method::GET, "/api/v1/projects", "").await.1, serde_json::json!([]));
    assert_eq!(api.call(Method::GET, "/api/v1/runs", "").await.1["runs"], serde_json::json!([]));
    assert_eq!(api.call(Method::GET, "/api/v1/endpoints", "").await.1, serde_json::json!([]));
    assert_eq!(api.call(Method::GET, "/api/v1/tokens", "").await.1, serde_json::json!([]));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = api().await;
    let (status, document) = api.call(Method::GET, "/api/v1/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for path in [
        "/api/v1/health",
        "/api/v1/version",
        "/api/v1/projects",
        "/api/v1/projects/{project}",
        "/api/v1/runs",
        "/api/v1/runs/{project}/{number}",
        "/api/v1/runs/{project}/{number}/cancel",
        "/api/v1/runs/{project}/{number}/retry",
        "/api/v1/runs/{project}/{number}/logs",
        "/api/v1/models",
        "/api/v1/endpoints",
        "/api/v1/endpoints/{endpoint}",
        "/api/v1/endpoints/{endpoint}/deploy",
        "/api/v1/tokens",
        "/api/v1/tokens/{token}",
        "/api/v1/audit",
        "/api/v1/events",
    ] {
        assert!(paths.contains(&path), "{path} is not in the document: {paths:?}");
    }
    // Tokens are in it: a bearer scheme, and the 401 and 403 of every route that takes one.
    assert_eq!(document["components"]["securitySchemes"]["token"]["scheme"], "bearer");
    let submit = &document["paths"]["/api/v1/runs"]["post"];
    assert!(submit["responses"]["401"].is_object() && submit["responses"]["403"].is_object(), "{submit}");
    assert!(document["paths"]["/api/v1/health"]["get"]["responses"]["401"].is_null(), "health answers anyone");
}

/// A server that stopped mid-create or mid-update left its endpoints so: the next one ends them.
#[tokio::test]
async fn endpoint_changes_a_stopped_server_left_unfinished_are_ended_with_their_reason() {
    let home = tempfile::tempdir().unwrap();
    let engine =
        engine::Engine::open(engine::Home::new(home.path().join("home")), router::Router::new(), String::new())
            .await
            .unwrap();
    let kept = |status: &str| serde_json::json!({"config": "c1", "status": status, "failure_reason": null});
    for (name, status) in [("made", "Creating"), ("moved", "Updating"), ("fine", "InService")] {
        engine.store().create_resource(store::ResourceKind::Endpoint, name, &kept(status)).await.unwrap();
    }
    let service = server::Service::for_server(engine, false, Vec::new()).await.unwrap();
    let ended: std::collections::BTreeMap<String, server::service::EndpointResource> =
        service.endpoint_resources().await.unwrap().into_iter().map(|(r, e)| (r.name, e)).collect();
    use server::service::EndpointStatus::{Failed, InService};
    assert_eq!(ended["made"].status, Failed);
    assert!(ended["made"].failure_reason.as_deref().unwrap().contains("create it again"));
    assert_eq!((ended["moved"].status, ended["moved"].config.as_str()), (InService, "c1"));
    assert!(ended["moved"].failure_reason.as_deref().unwrap().contains("update it again"));
    assert_eq!((ended["fine"].status, &ended["fine"].failure_reason), (InService, &None));
}
