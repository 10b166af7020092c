//! Push webhooks in GitHub's, GitLab's and Gitea's own formats and signatures, against a real git
//! repository: a good delivery runs the pushed commit once; a bad, missing or replayed one, or a
//! push the project's filters leave out, starts nothing.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::harness::{Sandbox, client, git, text, wait_until};

const SECRET: &str = "It's a Secret to Everybody";

const PIPELINE: &str = r#"[pipeline]
name = "hooked"

[triggers.push]
secret = "env:SB_HOOK_SECRET"
branches = ["main"]
paths = ["src/**", "sagebrush.toml"]

[[stage]]
name = "show"
kind = "shell"
command = "cat src/marker.txt"
"#;

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Commits `marker` as `src/marker.txt` on the checked-out branch; the new head.
fn commit_marker(repo: &Path, marker: &str) -> String {
    std::fs::write(repo.join("src/marker.txt"), marker).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "--quiet", "-m", marker]);
    git(repo, &["rev-parse", "HEAD"])
}

fn github_push(branch: &str, after: &str, files: &[&str]) -> String {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"), "before": "0".repeat(40), "after": after,
        "commits": [{ "id": after, "added": [], "modified": files, "removed": [] }],
        "pusher": { "name": "octocat", "email": "octocat@example.com" },
        "repository": { "full_name": "octo/hooked" },
    })
    .to_string()
}

struct Hook<'a> {
    url: String,
    sandbox: &'a Sandbox,
}

impl Hook<'_> {
    fn post(&self, provider: &str, headers: &[(&str, String)], body: &str) -> (u16, serde_json::Value) {
        let mut request = client()
            .post(format!("{}/hooks/{provider}/hooked", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(serde_json::Value::Null))
    }

    fn github(&self, delivery: &str, event: &str, body: &str, secret: &str) -> (u16, serde_json::Value) {
        let signature = format!("sha256={}", hmac_hex(secret, body.as_bytes()));
        let headers = [
            ("X-GitHub-Event", event.to_owned()),
            ("X-GitHub-Delivery", delivery.to_owned()),
            ("X-Hub-Signature-256", signature),
            ("User-Agent", "GitHub-Hookshot/044aadd".to_owned()),
        ];
        self.post("github", &headers, body)
    }

    fn runs(&self) -> usize {
        self.sandbox.json(&["runs", "hooked", "--json"]).as_array().unwrap().len()
    }

    /// Waits for run `number` to end; its `show --json`.
    fn finished(&self, number: u64) -> serde_json::Value {
        wait_until(Duration::from_secs(60), "the pushed run to end", || {
            let shown = self.sandbox.json(&["show", "hooked", &number.to_string(), "--json"]);
            (shown["run"]["finished_at"].is_i64()).then_some(shown)
        })
    }
}

#[test]
fn pushes_from_github_gitlab_and_gitea_run_the_pushed_commit_once_and_nothing_else_starts_a_run() {
    let sandbox = Sandbox::new();
    let repo = sandbox.dir.path().join("hooked");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(repo.join("sagebrush.toml"), PIPELINE).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch", "main"]);
    commit_marker(&repo, "one");
    let served = sandbox.serve_under(&["env", &format!("SB_HOOK_SECRET={SECRET}")], &["server"]);
    let added = sandbox.run(&["project", "add", &format!("file://{}", repo.display())]);
    assert!(added.status.success(), "{}", text(&added));
    let hook = Hook { url: served.url.clone(), sandbox: &sandbox };

    // GitHub's ping when the hook is made.
    let (status, answer) =
        hook.github("ping-1", "ping", r#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#, SECRET);
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("pong")), "{answer}");

    // A push to main: one run, of the pushed commit, recorded as started by that delivery.
    let two = commit_marker(&repo, "two");
    let push = github_push("main", &two, &["src/marker.txt"]);
    let (status, answer) = hook.github("72d3162e-cc78-11e3-81ab-4c9367dc0958", "push", &push, SECRET);
    assert_eq!((status, answer["outcome"].as_str()), (201, Some("started")), "{answer}\n{}", served.output());
    assert_eq!(answer["run"]["number"], 1);
    let shown = hook.finished(1);
    assert_eq!(shown["run"]["status"], "succeeded", "{shown:#}");
    assert_eq!(shown["run"]["commit_sha"], two.as_str());
    assert_eq!(shown["run"]["trigger"], "push");
    assert_eq!(shown["run"]["trigger_detail"], "github delivery 72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(shown["run"]["triggered_by"], "octocat");
    let logs = sandbox.run(&["logs", "hooked", "1"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("two"), "{}", text(&logs));

    // The same delivery again (GitHub's "Redeliver") starts nothing.
    let (status, answer) = hook.github("72d3162e-cc78-11e3-81ab-4c9367dc0958", "push", &push, SECRET);
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("duplicate")), "{answer}");

    // Signed with another secret, unsigned, or changed after signing: 401, and nothing starts.
    let three = commit_marker(&repo, "three");
    let push = github_push("main", &three, &["src/marker.txt"]);
    let (status, answer) = hook.github("d-wrong", "push", &push, "It's a Secret to Nobody");
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("bad_signature")), "{answer}");
    let (status, _) =
        hook.post("github", &[("X-GitHub-Event", "push".into()), ("X-GitHub-Delivery", "d-none".into())], &push);
    assert_eq!(status, 401);
    let signature = format!("sha256={}", hmac_hex(SECRET, push.as_bytes()));
    let tampered = push.replace("octocat", "mallory");
    let headers = [("X-GitHub-Event", "push".to_owned()), ("X-Hub-Signature-256", signature)];
    assert_eq!(hook.post("github", &headers, &tampered).0, 401);

    // Filtered out: another branch, or only files outside `paths`.
    git(&repo, &["checkout", "--quiet", "-b", "dev"]);
    let dev = commit_marker(&repo, "dev");
    let (status, answer) = hook.github("d-dev", "push", &github_push("dev", &dev, &["src/marker.txt"]), SECRET);
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("pushes to dev start nothing"), "{answer}");
    git(&repo, &["checkout", "--quiet", "main"]);
    let (status, answer) = hook.github("d-docs", "push", &github_push("main", &three, &["README.md"]), SECRET);
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")), "{answer}");
    assert_eq!(hook.runs(), 1, "nothing but the first push started a run");

    // GitLab: its token header and its payload.
    let body = serde_json::json!({
        "object_kind": "push", "event_name": "push", "ref": "refs/heads/main", "before": two, "after": three,
        "checkout_sha": three, "user_username": "jsmith", "total_commits_count": 1,
        "commits": [{ "id": three, "added": [], "modified": ["src/marker.txt"], "removed": [] }],
        "project": { "path_with_namespace": "group/hooked" },
    })
    .to_string();
    let headers = [
        ("X-Gitlab-Event", "Push Hook".to_owned()),
        ("X-Gitlab-Token", SECRET.to_owned()),
        ("X-Gitlab-Event-UUID", "b8f5c3a1-2d4e-4f6a-8b9c-0d1e2f3a4b5c".to_owned()),
    ];
    let (status, answer) = hook.post("gitlab", &headers, &body);
    assert_eq!((status, answer["outcome"].as_str()), (201, Some("started")), "{answer}");
    let shown = hook.finished(2);
    assert_eq!(
        (shown["run"]["commit_sha"].as_str(), shown["run"]["triggered_by"].as_str()),
        (Some(three.as_str()), Some("jsmith"))
    );
    let wrong =
        [headers[0].clone(), ("X-Gitlab-Token", "guess".to_owned()), ("X-Gitlab-Event-UUID", "other".to_owned())];
    assert_eq!(hook.post("gitlab", &wrong, &body).0, 401);

    // Gitea: its signature header (hex, no prefix) and payload.
    let four = commit_marker(&repo, "four");
    let body = serde_json::json!({
        "ref": "refs/heads/main", "before": three, "after": four,
        "commits": [{ "id": four, "added": [], "modified": ["src/marker.txt"], "removed": [] }],
        "pusher": { "login": "gitea-user", "username": "gitea-user" },
    })
    .to_string();
    let headers = [
        ("X-Gitea-Event", "push".to_owned()),
        ("X-Gitea-Delivery", "0f4bb1b5-5d4f-4d0c-9a3e-1c9b8f9d2e7a".to_owned()),
        ("X-Gitea-Signature", hmac_hex(SECRET, body.as_bytes())),
    ];
    let (status, answer) = hook.post("gitea", &headers, &body);
    assert_eq!((status, answer["outcome"].as_str()), (201, Some("started")), "{answer}");
    let shown = hook.finished(3);
    assert_eq!(shown["run"]["commit_sha"], four.as_str());
    let logs = sandbox.run(&["logs", "hooked", "3"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("four"), "{}", text(&logs));

    // Unknown providers and projects.
    assert_eq!(hook.post("bitbucket", &[], "{}").0, 404);
    let response = client().post(format!("{}/hooks/github/nope", served.url)).body("{}").send().unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(hook.runs(), 3);
}
