//! `[triggers]`: what starts a project's runs besides a person.

use toml::de::{DeTable, DeValue};

use super::{Cx, Item, get, type_name};
use crate::triggers::{CronTrigger, DataTrigger, PollTrigger, PushTrigger, Triggers};
use crate::{Error, SecretSource};

pub(super) fn triggers(cx: &Cx<'_>, table: &DeTable<'_>) -> Result<Triggers, Error> {
    cx.allow(table, "[triggers]", &["push", "poll", "cron", "data"])?;
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
            if !cx.paths_anywhere && !super::inside_project(&text) {
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
    Ok(Triggers { push, poll, cron, data })
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
