//! `[triggers]`: what starts a project's runs besides a person.

use toml::de::{DeTable, DeValue};

use super::{Cx, Item, get, type_name};
use crate::triggers::{
    CronTrigger, DEFAULT_DRIFT_THRESHOLD, DataTrigger, DriftTrigger, NOTIFY_EVENTS, Notify, NotifyFormat, PollTrigger,
    PushTrigger, Triggers,
};
use crate::{Error, SecretSource};

pub(super) fn triggers(cx: &Cx<'_>, table: &DeTable<'_>) -> Result<Triggers, Error> {
    cx.allow(table, "[triggers]", &["push", "poll", "cron", "data", "drift"])?;
    let push = match get(table, "push") {
        None => None,
        Some(item) => {
            let push = cx.table("push", item)?;
            cx.allow(push, "[triggers.push]", &["secret", "branches", "paths"])?;
            let hint =
                || Some("e.g. secret = \"env:SAGEBRUSH_WEBHOOK_SECRET\" (or \"file:/run/secrets/hook\")".to_owned());
            let Some(secret) = get(push, "secret") else {
                let message = "[triggers.push] needs the `secret` its webhooks are signed with";
                return Err(cx.error(&item.span(), message, hint()));
            };
            let source = match secret.get_ref() {
                DeValue::String(text) => SecretSource::parse(text)
                    .map_err(|why| cx.error(&secret.span(), format!("`secret`: {why}"), hint()))?,
                other => {
                    let message = format!("`secret` must be a string, not {}", type_name(other));
                    return Err(cx.error(&secret.span(), message, hint()));
                }
            };
            let globs = |key: &str| -> Result<Vec<String>, Error> {
                let Some(list) = get(push, key) else { return Ok(Vec::new()) };
                cx.array(key, list)?.iter().map(|g| glob(cx, key, g)).collect()
            };
            let (branches, paths) = (globs("branches")?, globs("paths")?);
            let trigger = PushTrigger::new(source, branches, paths)
                .map_err(|why| cx.error(&item.span(), format!("[triggers.push]: {why}"), None))?;
            Some(trigger)
        }
    };
    let poll = match get(table, "poll") {
        None => None,
        Some(item) => {
            let poll = cx.table("poll", item)?;
            cx.allow(poll, "[triggers.poll]", &["interval"])?;
            let interval = match get(poll, "interval") {
                Some(interval) => cx.duration("interval", interval)?,
                None => {
                    return Err(cx.error(
                        &item.span(),
                        "[triggers.poll] needs an `interval`",
                        Some("e.g. interval = \"1m\"".to_owned()),
                    ));
                }
            };
            if interval < std::time::Duration::from_secs(1) {
                return Err(cx.error(&item.span(), "[triggers.poll] `interval` is at least 1s", None));
            }
            Some(PollTrigger { interval })
        }
    };
    let cron = match get(table, "cron") {
        None => None,
        Some(item) => {
            let cron = cx.table("cron", item)?;
            cx.allow(cron, "[triggers.cron]", &["schedule", "timezone"])?;
            let hint =
                || Some("e.g. schedule = \"0 3 * * *\" (03:00 every day), timezone = \"Europe/Berlin\"".to_owned());
            let Some(schedule) = get(cron, "schedule") else {
                return Err(cx.error(&item.span(), "[triggers.cron] needs a `schedule`", hint()));
            };
            let timezone = match get(cron, "timezone") {
                None => chrono_tz::UTC,
                Some(zone) => {
                    let text = literal(cx, "timezone", zone)?;
                    text.parse::<chrono_tz::Tz>().map_err(|_| {
                        let hint = Some("a name from the tz database, e.g. \"UTC\", \"America/New_York\"".to_owned());
                        cx.error(&zone.span(), format!("`timezone`: no time zone \"{text}\""), hint)
                    })?
                }
            };
            let text = literal(cx, "schedule", schedule)?;
            let trigger = CronTrigger::new(&text, timezone)
                .map_err(|why| cx.error(&schedule.span(), format!("`schedule`: {why}"), hint()))?;
            Some(trigger)
        }
    };
    let data = match get(table, "data") {
        None => None,
        Some(item) => {
            let data = cx.table("data", item)?;
            cx.allow(data, "[triggers.data]", &["path", "debounce"])?;
            let Some(path) = get(data, "path") else {
                let hint = Some("e.g. path = \"data\"".to_owned());
                return Err(cx.error(&item.span(), "[triggers.data] needs the `path` it watches", hint));
            };
            let text = literal(cx, "path", path)?;
            let bucket = text.strip_prefix("s3://").map(|rest| rest.split('/').next().unwrap_or_default());
            if bucket == Some("") {
                let hint = Some("e.g. path = \"s3://bucket/incoming/\" (everything under the prefix)".to_owned());
                return Err(cx.error(&path.span(), format!("`path` = \"{text}\" names no bucket"), hint));
            }
            if bucket.is_none() && !cx.paths_anywhere && !super::inside_project(&text) {
                let hint = Some("set [pipeline] allow_absolute_paths = true to watch a folder elsewhere".to_owned());
                return Err(cx.error(&path.span(), format!("`path` = \"{text}\" is outside the project"), hint));
            }
            let debounce = match get(data, "debounce") {
                Some(debounce) => cx.duration("debounce", debounce)?,
                None => std::time::Duration::from_secs(5),
            };
            Some(DataTrigger { path: text, debounce })
        }
    };
    let drift = match get(table, "drift") {
        None => None,
        Some(item) => Some(drift(cx, item)?),
    };
    Ok(Triggers { push, poll, cron, data, drift })
}

fn drift(cx: &Cx<'_>, item: &Item<'_>) -> Result<DriftTrigger, Error> {
    let drift = cx.table("drift", item)?;
    cx.allow(drift, "[triggers.drift]", &["endpoint", "threshold", "window", "every"])?;
    let Some(endpoint) = get(drift, "endpoint") else {
        let hint = Some("e.g. endpoint = \"iris-prod\", an endpoint deployed with capture_percent".to_owned());
        return Err(cx.error(&item.span(), "[triggers.drift] needs the `endpoint` whose requests it watches", hint));
    };
    let endpoint = cx.name("endpoint", endpoint)?;
    let threshold = match get(drift, "threshold") {
        None => DEFAULT_DRIFT_THRESHOLD,
        Some(threshold) => {
            let value = cx.float("threshold", threshold)?;
            if !(value > 0.0 && value.is_finite()) {
                let hint = Some("0.1 is a moderate shift, 0.2 (the default) a real one".to_owned());
                return Err(cx.error(&threshold.span(), "`threshold` must be a positive number", hint));
            }
            value
        }
    };
    let window = match get(drift, "window") {
        None => 1000,
        Some(window) => match usize::try_from(cx.int("window", window)?) {
            Ok(rows) if rows >= 10 => rows,
            _ => return Err(cx.error(&window.span(), "`window` is at least 10 rows", None)),
        },
    };
    let every = match get(drift, "every") {
        None => std::time::Duration::from_secs(60),
        Some(every) => cx.duration("every", every)?,
    };
    if every < std::time::Duration::from_secs(1) {
        return Err(cx.error(&item.span(), "[triggers.drift] `every` is at least 1s", None));
    }
    Ok(DriftTrigger { endpoint, threshold, window, every })
}

/// A string taken as written: triggers are read before any parameter has a value.
fn literal(cx: &Cx<'_>, key: &str, item: &Item<'_>) -> Result<String, Error> {
    match item.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        other => Err(cx.error(&item.span(), format!("`{key}` must be a string, not {}", type_name(other)), None)),
    }
}

/// A glob, taken as written: a trigger is read before any parameter has a value.
fn glob(cx: &Cx<'_>, key: &str, item: &Item<'_>) -> Result<String, Error> {
    match item.get_ref() {
        DeValue::String(s) => match crate::triggers::check_glob(s) {
            Ok(()) => Ok(s.to_string()),
            Err(why) => Err(cx.error(&item.span(), format!("`{key}`: {why}"), None)),
        },
        other => Err(cx.error(&item.span(), format!("`{key}` holds strings, not {}", type_name(other)), None)),
    }
}

/// `[[notify]]`: the webhooks told of the project's events.
pub(super) fn notify(cx: &Cx<'_>, item: &Item<'_>) -> Result<Vec<Notify>, Error> {
    let example = Some("write [[notify]] tables, e.g. [[notify]]\nurl = \"https://hooks.example.com/ml\"".to_owned());
    let DeValue::Array(tables) = item.get_ref() else {
        return Err(cx.error(&item.span(), "notifications are written as [[notify]] tables", example));
    };
    let mut all = Vec::new();
    for entry in tables {
        let table = cx.table("notify", entry)?;
        cx.allow(table, "[[notify]]", &["url", "events", "format", "secret"])?;
        let Some(url_item) = get(table, "url") else {
            return Err(cx.error(&entry.span(), "[[notify]] needs the `url` it POSTs to", example));
        };
        let url = literal(cx, "url", url_item)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(char::is_whitespace) {
            return Err(cx.error(&url_item.span(), format!("`url` = \"{url}\" is not an http(s) URL"), None));
        }
        let mut events = Vec::new();
        if let Some(list) = get(table, "events") {
            for event in cx.array("events", list)? {
                let name = literal(cx, "events", event)?;
                if !NOTIFY_EVENTS.contains(&name.as_str()) {
                    let hint = format!("the events are {}", NOTIFY_EVENTS.join(", "));
                    return Err(cx.error(&event.span(), format!("no event \"{name}\""), Some(hint)));
                }
                events.push(name);
            }
        }
        let format = match get(table, "format") {
            None => NotifyFormat::Json,
            Some(format) => match literal(cx, "format", format)?.as_str() {
                "json" => NotifyFormat::Json,
                "slack" => NotifyFormat::Slack,
                other => {
                    let hint =
                        Some("json (the event, signed when a secret is set) or slack ({\"text\": ...})".to_owned());
                    return Err(cx.error(&format.span(), format!("no format \"{other}\""), hint));
                }
            },
        };
        let secret = match get(table, "secret") {
            None => None,
            Some(secret) => {
                let text = literal(cx, "secret", secret)?;
                Some(
                    SecretSource::parse(&text)
                        .map_err(|why| cx.error(&secret.span(), format!("`secret`: {why}"), None))?,
                )
            }
        };
        all.push(Notify { url, events, format, secret });
    }
    Ok(all)
}
