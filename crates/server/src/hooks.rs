//! Push webhooks as GitHub, GitLab and Gitea send them: each provider's signature check, and what
//! its payload says was pushed. Pure functions of the request; `Service::hook` acts on them.

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ServiceError;

/// A git host that sends push webhooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

impl Provider {
    /// The provider of `/hooks/{provider}/...`.
    pub fn parse(text: &str) -> Option<Provider> {
        match text {
            "github" => Some(Provider::GitHub),
            "gitlab" => Some(Provider::GitLab),
            "gitea" => Some(Provider::Gitea),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
        }
    }
}

/// A delivery whose signature checked out.
#[derive(Debug, PartialEq)]
pub struct Delivery {
    /// The provider's delivery id (the body's sha256 when it sends none), the same when redelivered.
    pub id: String,
    pub event: Event,
}

#[derive(Debug, PartialEq)]
pub enum Event {
    /// GitHub's check that the hook is set up.
    Ping,
    Push(Push),
    /// Any other event, by the provider's name for it.
    Other(String),
}

/// What a push changed.
#[derive(Debug, PartialEq)]
pub struct Push {
    /// The pushed branch; `None` for a tag.
    pub branch: Option<String>,
    /// The branch's new head; all zeros when the branch was deleted.
    pub commit: String,
    /// The files the pushed commits added, changed or removed, as far as the payload lists them.
    pub files: Vec<String>,
    /// Whether the payload lists every pushed commit (providers cap the list).
    pub listed_all: bool,
    /// Who pushed, as the provider names them.
    pub pusher: Option<String>,
}

impl Push {
    pub fn deletes_branch(&self) -> bool {
        self.commit.chars().all(|c| c == '0')
    }
}

/// Checks that `body` was sent by someone holding `secret`, as `provider` proves it: GitHub's
/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`, Gitea's `X-Gitea-Signature: <hex HMAC-SHA256>`,
/// GitLab's `X-Gitlab-Token: <secret>`. Every comparison is constant-time.
pub fn verify(provider: Provider, headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), ServiceError> {
    let header = match provider {
        Provider::GitHub => "X-Hub-Signature-256",
        Provider::Gitea => "X-Gitea-Signature",
        Provider::GitLab => "X-Gitlab-Token",
    };
    let value = headers.get(header).and_then(|v| v.to_str().ok()).map(str::trim);
    let valid = match provider {
        Provider::GitHub => {
            value.and_then(|v| v.strip_prefix("sha256=")).is_some_and(|hex| hmac_matches(secret, body, hex))
        }
        Provider::Gitea => value.is_some_and(|hex| hmac_matches(secret, body, hex)),
        Provider::GitLab => value.is_some_and(|token| bool::from(token.as_bytes().ct_eq(secret.as_bytes()))),
    };
    if valid {
        return Ok(());
    }
    Err(ServiceError::new(StatusCode::UNAUTHORIZED, "bad_signature", format!("{header} is missing or wrong"))
        .hint("the webhook's secret must be the one [triggers.push] `secret` names"))
}

fn hmac_matches(secret: &str, body: &[u8], hex_signature: &str) -> bool {
    let Ok(signature) = hex::decode(hex_signature) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// What a (verified) delivery says.
pub fn read(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, ServiceError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (event_header, id_headers): (&str, &[&str]) = match provider {
        Provider::GitHub => ("x-github-event", &["x-github-delivery"]),
        Provider::Gitea => ("x-gitea-event", &["x-gitea-delivery"]),
        Provider::GitLab => ("x-gitlab-event", &["x-gitlab-event-uuid", "idempotency-key"]),
    };
    let id = id_headers
        .iter()
        .find_map(|name| header(name))
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .unwrap_or_else(|| format!("sha256:{:x}", Sha256::digest(body)));
    let Some(event) = header(event_header) else {
        return Err(invalid(format!("the delivery has no {event_header} header")));
    };
    let event = match (provider, event.as_str()) {
        (Provider::GitHub, "ping") => Event::Ping,
        (Provider::GitHub | Provider::Gitea, "push") | (Provider::GitLab, "Push Hook") => {
            Event::Push(push(provider, body)?)
        }
        (_, other) => Event::Other(names::excerpt(other, 64)),
    };
    Ok(Delivery { id, event })
}

fn invalid(message: String) -> ServiceError {
    ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "ref")]
    reference: String,
    after: Option<String>,
    /// GitLab's head after the push (`after` is there too).
    checkout_sha: Option<String>,
    #[serde(default)]
    commits: Vec<Commit>,
    /// GitLab: how many commits were pushed (it lists at most 20).
    total_commits_count: Option<usize>,
    pusher: Option<Person>,
    /// GitLab's pusher.
    user_username: Option<String>,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

#[derive(Deserialize)]
struct Person {
    /// GitHub's.
    name: Option<String>,
    /// Gitea's.
    username: Option<String>,
    login: Option<String>,
}

fn push(provider: Provider, body: &[u8]) -> Result<Push, ServiceError> {
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the push payload is not what {} sends: {e}", provider.as_str())))?;
    let commit = match provider {
        Provider::GitLab => payload.checkout_sha.clone().or(payload.after.clone()),
        Provider::GitHub | Provider::Gitea => payload.after.clone(),
    }
    // GitLab sends no checkout_sha when a branch is deleted.
    .unwrap_or_else(|| "0".repeat(40));
    let listed_all = match payload.total_commits_count {
        Some(total) => total == payload.commits.len() && total > 0,
        None => !payload.commits.is_empty(),
    };
    let files =
        payload.commits.into_iter().flat_map(|c| c.added.into_iter().chain(c.modified).chain(c.removed)).collect();
    let pusher = match provider {
        Provider::GitLab => payload.user_username,
        Provider::GitHub | Provider::Gitea => payload.pusher.and_then(|p| p.username.or(p.login).or(p.name)),
    };
    Ok(Push {
        branch: payload.reference.strip_prefix("refs/heads/").map(str::to_owned),
        commit,
        files,
        listed_all,
        pusher,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn githubs_worked_example_verifies() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let good = headers(&[("x-hub-signature-256", signature)]);
        assert!(verify(Provider::GitHub, &good, b"Hello, World!", "It's a Secret to Everybody").is_ok());
        assert!(verify(Provider::GitHub, &good, b"Hello, World?", "It's a Secret to Everybody").is_err());
        assert!(verify(Provider::GitHub, &good, b"Hello, World!", "It's a Secret to Nobody").is_err());
        assert!(verify(Provider::GitHub, &HeaderMap::new(), b"Hello, World!", "It's a Secret to Everybody").is_err());
        let unprefixed = headers(&[("x-hub-signature-256", &signature[7..])]);
        assert!(verify(Provider::GitHub, &unprefixed, b"Hello, World!", "It's a Secret to Everybody").is_err());
    }

    #[test]
    fn gitea_signs_without_a_prefix_and_gitlab_sends_the_token() {
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let secret = "It's a Secret to Everybody";
        assert!(verify(Provider::Gitea, &headers(&[("x-gitea-signature", hex)]), b"Hello, World!", secret).is_ok());
        assert!(verify(Provider::Gitea, &headers(&[("x-gitea-signature", "zz")]), b"Hello, World!", secret).is_err());
        assert!(verify(Provider::GitLab, &headers(&[("x-gitlab-token", secret)]), b"{}", secret).is_ok());
        let wrong = headers(&[("x-gitlab-token", "It's a Secret to Everybod")]);
        let refused = verify(Provider::GitLab, &wrong, b"{}", secret).unwrap_err();
        assert_eq!((refused.status, refused.code.as_ref()), (StatusCode::UNAUTHORIZED, "bad_signature"));
    }

    #[test]
    fn a_github_push_names_its_branch_head_files_and_pusher() {
        let body =
            br#"{"ref": "refs/heads/main", "before": "0a1b", "after": "4f3c2d1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
            "commits": [{"added": ["data/new.csv"], "modified": ["sagebrush.toml"], "removed": []},
                        {"added": [], "modified": [], "removed": ["old.txt"]}],
            "pusher": {"name": "octocat", "email": "o@example.com"}}"#;
        let delivery = read(
            Provider::GitHub,
            &headers(&[("x-github-event", "push"), ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")]),
            body,
        )
        .unwrap();
        assert_eq!(delivery.id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        let Event::Push(push) = delivery.event else { panic!("{delivery:?}") };
        assert_eq!(push.branch.as_deref(), Some("main"));
        assert_eq!(push.commit, "4f3c2d1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d");
        assert_eq!(push.files, ["data/new.csv", "sagebrush.toml", "old.txt"]);
        assert!(push.listed_all && !push.deletes_branch());
        assert_eq!(push.pusher.as_deref(), Some("octocat"));
    }

    #[test]
    fn gitlab_caps_its_commit_list_and_tags_have_no_branch() {
        let body = br#"{"object_kind": "push", "ref": "refs/heads/dev", "after": "aa", "checkout_sha": "bb",
            "user_username": "jsmith", "total_commits_count": 25, "commits": [{"added": ["a"]}]}"#;
        let delivery = read(Provider::GitLab, &headers(&[("x-gitlab-event", "Push Hook")]), body).unwrap();
        assert!(delivery.id.starts_with("sha256:"), "no id header: the body's digest");
        let Event::Push(push) = delivery.event else { panic!() };
        assert_eq!((push.commit.as_str(), push.listed_all), ("bb", false));
        assert_eq!(push.pusher.as_deref(), Some("jsmith"));
        let tag = br#"{"ref": "refs/tags/v1", "after": "cc", "commits": []}"#;
        let delivery = read(Provider::Gitea, &headers(&[("x-gitea-event", "push")]), tag).unwrap();
        let Event::Push(push) = delivery.event else { panic!() };
        assert_eq!(push.branch, None);
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    proptest::proptest! {
        #[test]
        fn a_signature_holds_for_its_body_and_secret_only(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            secret in "[ -~]{1,40}",
            flip in 0usize..4096,
        ) {
            let hex = sign(&secret, &body);
            let github = headers(&[("x-hub-signature-256", &format!("sha256={hex}"))]);
            let gitea = headers(&[("x-gitea-signature", &hex)]);
            proptest::prop_assert!(verify(Provider::GitHub, &github, &body, &secret).is_ok());
            proptest::prop_assert!(verify(Provider::Gitea, &gitea, &body, &secret).is_ok());
            // One bit of the body changed, or another secret: refused.
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip % body.len()] ^= 1 << (flip % 8);
                proptest::prop_assert!(verify(Provider::GitHub, &github, &changed, &secret).is_err());
                proptest::prop_assert!(verify(Provider::Gitea, &gitea, &changed, &secret).is_err());
            }
            let other = format!("{secret}x");
            proptest::prop_assert!(verify(Provider::GitHub, &github, &body, &other).is_err());
            let token = headers(&[("x-gitlab-token", &secret)]);
            proptest::prop_assert!(verify(Provider::GitLab, &token, &body, &other).is_err());
        }

        #[test]
        fn any_payload_is_read_or_refused_never_a_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            event in proptest::sample::select(vec!["push", "Push Hook", "ping", "issues"]),
        ) {
            for provider in [Provider::GitHub, Provider::GitLab, Provider::Gitea] {
                let name = match provider {
                    Provider::GitHub => "x-github-event",
                    Provider::GitLab => "x-gitlab-event",
                    Provider::Gitea => "x-gitea-event",
                };
                if let Err(refused) = read(provider, &headers(&[(name, event)]), &body) {
                    proptest::prop_assert_eq!(refused.status, StatusCode::BAD_REQUEST);
                }
            }
        }

        #[test]
        fn a_push_shaped_payload_names_what_it_pushed(
            branch in "[a-z][a-z0-9/_-]{0,30}",
            commit in "[0-9a-f]{40}",
            files in proptest::collection::vec("[a-z0-9/._-]{1,30}", 0..20),
        ) {
            let body = serde_json::json!({
                "ref": format!("refs/heads/{branch}"), "after": commit,
                "commits": [{ "added": files, "modified": [], "removed": [] }],
            })
            .to_string();
            let delivery = read(Provider::GitHub, &headers(&[("x-github-event", "push")]), body.as_bytes()).unwrap();
            let Event::Push(push) = delivery.event else { panic!("not a push") };
            proptest::prop_assert_eq!(push.branch.as_deref(), Some(branch.as_str()));
            proptest::prop_assert_eq!(push.commit, commit);
            proptest::prop_assert_eq!(push.files, files);
        }
    }

    #[test]
    fn other_events_and_bad_payloads() {
        let ping = read(Provider::GitHub, &headers(&[("x-github-event", "ping")]), b"{}").unwrap();
        assert_eq!(ping.event, Event::Ping);
        let issue = read(Provider::GitHub, &headers(&[("x-github-event", "issues")]), b"{}").unwrap();
        assert_eq!(issue.event, Event::Other("issues".into()));
        let bad = read(Provider::GitHub, &headers(&[("x-github-event", "push")]), b"[1, 2]").unwrap_err();
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(read(Provider::GitHub, &HeaderMap::new(), b"{}").is_err(), "no event header");
    }
}
