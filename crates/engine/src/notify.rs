//! Notifications: each project's `[[notify]]` webhooks are POSTed the project's events, in order,
//! as JSON (signed with HMAC-SHA256 when a secret is set) or as a Slack-compatible `{"text"}`.
//!
//! A target that fails is retried with back-off, the same event again, so it gets them in order;
//! after the last attempt the failure is recorded (the API lists it) and the next event goes.
//! It all happens on a task of its own: no run ever waits for a notification.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use names::Name;
use pipeline::{Notify, NotifyFormat};
use sha2::Sha256;
use store::EventRecord;

use crate::{Engine, Error};

/// How often the events are looked at when nothing woke the notifier.
const TICK: Duration = Duration::from_secs(1);
/// Tries of one event to one target, with these waits between them.
const BACKOFF: [Duration; 3] = [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)];
/// How long a target has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// An event a target has not taken yet: how many times it was tried, and when to try again.
struct Retrying {
    event_id: i64,
    attempts: usize,
    next: Instant,
}

impl Engine {
    /// Delivers the projects' notifications from now on. Call once, in the process that serves.
    pub fn run_notifications(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(http) = reqwest::Client::builder().no_proxy().timeout(TIMEOUT).build() else { return };
            let mut retrying: HashMap<String, Retrying> = HashMap::new();
            let appended = engine.store().appended_notify();
            loop {
                if let Err(e) = engine.notify_all(&http, &mut retrying).await {
                    tracing::warn!("notifications: {e}");
                }
                tokio::select! {
                    () = appended.notified() => {}
                    () = tokio::time::sleep(TICK) => {}
                }
            }
        });
    }

    async fn notify_all(&self, http: &reqwest::Client, retrying: &mut HashMap<String, Retrying>) -> Result<(), Error> {
        for project in self.store().projects().await? {
            let Ok(name) = Name::parse(&project.name) else { continue };
            let Ok(pipeline) = crate::projects::pipeline_of(&project).await else { continue };
            for target in &pipeline.notify {
                self.notify_target(http, &name, target, retrying).await?;
            }
        }
        Ok(())
    }

    async fn notify_target(
        &self,
        http: &reqwest::Client,
        name: &Name,
        target: &Notify,
        retrying: &mut HashMap<String, Retrying>,
    ) -> Result<(), Error> {
        let store = self.store();
        let key = format!("notify {}", target.url);
        let Some(cursor) = store.trigger_state(name, &key).await?.and_then(|c| c.parse::<i64>().ok()) else {
            // Told of what happens from when it was first seen, not of the whole history.
            return Ok(store.set_trigger_state(name, &key, &store.last_event().await?.to_string()).await?);
        };
        let secret = match &target.secret {
            Some(source) => match source.read() {
                Ok(secret) => Some(secret),
                Err(why) => {
                    return Err(Error::Invalid(format!("{name}: [[notify]] {}: secret {source}: {why}", target.url)));
                }
            },
            None => None,
        };
        for event in store.events(cursor, Some(name), 100).await? {
            let wanted = target.events.is_empty() || target.events.iter().any(|k| *k == kind_name(&event));
            if wanted {
                let retry = retrying.get(&key).filter(|r| r.event_id == event.id);
                if retry.is_some_and(|r| Instant::now() < r.next) {
                    return Ok(());
                }
                let attempts = retry.map_or(0, |r| r.attempts) + 1;
                if let Err(why) = send(http, target, secret.as_deref(), &event).await {
                    if let Some(wait) = BACKOFF.get(attempts - 1) {
                        retrying.insert(key, Retrying { event_id: event.id, attempts, next: Instant::now() + *wait });
                        return Ok(());
                    }
                    tracing::warn!(
                        "{name}: gave up notifying {} of event {} after {attempts} tries: {why}",
                        target.url,
                        event.id
                    );
                    let kind = kind_name(&event);
                    store.record_notify_failure(name, &target.url, event.id, &kind, attempts as i64, &why).await?;
                }
                retrying.remove(&key);
            }
            store.set_trigger_state(name, &key, &event.id.to_string()).await?;
        }
        Ok(())
    }
}

/// An event's kind as the API names it (`run_finished`).
fn kind_name(event: &EventRecord) -> String {
    serde_json::to_value(event.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// POSTs one event; the answer's status or the error, when it is not a success.
async fn send(
    http: &reqwest::Client,
    target: &Notify,
    secret: Option<&str>,
    event: &EventRecord,
) -> Result<(), String> {
    let body = match target.format {
        NotifyFormat::Json => serde_json::to_vec(event).map_err(|e| e.to_string())?,
        NotifyFormat::Slack => {
            serde_json::to_vec(&serde_json::json!({ "text": sentence(event) })).map_err(|e| e.to_string())?
        }
    };
    let mut request = http
        .post(&target.url)
        .header("content-type", "application/json")
        .header("x-sagebrush-event", kind_name(event))
        .header("x-sagebrush-delivery", event.id.to_string());
    if let Some(secret) = secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
        mac.update(&body);
        request =
            request.header("x-sagebrush-signature-256", format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
    }
    match request.body(body).send().await {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(format!("answered {}", answer.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// An event in words, for a chat channel: `iris #3 run_finished: failed (stage `approve` failed: ...)`.
fn sentence(event: &EventRecord) -> String {
    let data = &event.data.0;
    let subject = match (data["project"].as_str(), data["number"].as_i64()) {
        (Some(project), Some(number)) => format!("{project} #{number}"),
        _ => data["endpoint"].as_str().or(data["model_group"].as_str()).unwrap_or("sagebrush").to_owned(),
    };
    let stage = data["stage"].as_str().map(|s| format!(" `{s}`")).unwrap_or_default();
    let status = data["status"].as_str().map(|s| format!(": {s}")).unwrap_or_default();
    let reason = data["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
    format!("{subject}{stage} {}{status}{reason}", kind_name(event))
}
