//! What starts a project's runs besides a person: `[triggers]` in the pipeline file.

use globset::{GlobSet, GlobSetBuilder};

use crate::SecretSource;

/// A project's triggers.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// Push webhooks from GitHub, GitLab or Gitea (`[triggers.push]`).
    pub push: Option<PushTrigger>,
    /// A git project's branch fetched at an interval; a new commit starts a run (`[triggers.poll]`).
    pub poll: Option<PollTrigger>,
    /// A cron schedule (`[triggers.cron]`).
    pub cron: Option<CronTrigger>,
    /// New or changed files under a folder (`[triggers.data]`).
    pub data: Option<DataTrigger>,
    /// An endpoint's requests drifting from its model's training data (`[triggers.drift]`).
    pub drift: Option<DriftTrigger>,
}

/// An outgoing webhook told of a project's events (`[[notify]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// Where the events are POSTed (http or https).
    pub url: String,
    /// Which kinds of event (`run_finished`, ...); empty: all of them.
    pub events: Vec<String>,
    pub format: NotifyFormat,
    /// Signs each body: `X-Sagebrush-Signature-256: sha256=<hex HMAC-SHA256>`.
    pub secret: Option<SecretSource>,
}

/// How a notification's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// The event as the API lists it.
    Json,
    /// `{"text": "..."}`, as Slack's (and Mattermost's, Teams') incoming webhooks take it.
    Slack,
}

/// The events a project's notifications can be told of.
pub const NOTIFY_EVENTS: [&str; 9] = [
    "run_queued",
    "run_started",
    "run_waiting",
    "run_finished",
    "stage_started",
    "stage_finished",
    "model_registered",
    "endpoint_updated",
    "endpoint_deleted",
];

/// How often a git project's branch is fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct PollTrigger {
    pub interval: std::time::Duration,
}

/// A 5-field cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    /// As written, e.g. `0 3 * * 1-5`.
    pub schedule: String,
    pub timezone: chrono_tz::Tz,
    cron: croner::Cron,
}

impl CronTrigger {
    /// `schedule` with exactly five fields (minute, hour, day of month, month, day of week).
    pub(crate) fn new(schedule: &str, timezone: chrono_tz::Tz) -> Result<CronTrigger, String> {
        if schedule.split_whitespace().count() != 5 && !schedule.trim_start().starts_with('@') {
            return Err(format!("`{schedule}` is not 5 fields: minute hour day-of-month month day-of-week"));
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser.parse(schedule).map_err(|e| format!("`{schedule}`: {e}"))?;
        Ok(CronTrigger { schedule: schedule.to_owned(), timezone, cron })
    }

    /// Whether the schedule had a time in `(after, now]`: so a server that was down across several
    /// of them fires once when it is back, not once per time missed.
    pub fn due(&self, after: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> bool {
        let after = after.with_timezone(&self.timezone);
        self.cron.find_next_occurrence(&after, false).is_ok_and(|next| next.with_timezone(&chrono::Utc) <= now)
    }
}

/// A folder whose files start a run when they change.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTrigger {
    /// The folder (or file), relative to the project unless absolute; or an `s3://bucket/prefix`
    /// whose objects are watched by key, size and ETag.
    pub path: String,
    /// How long the files must stay the same after a change before the run starts.
    pub debounce: std::time::Duration,
}

/// The usual reading of the population stability index: under 0.1 no shift, 0.1 to 0.2 a
/// moderate one, above 0.2 a real one.
pub const DEFAULT_DRIFT_THRESHOLD: f64 = 0.2;

/// An endpoint whose captured requests start a run when they drift from the training data.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftTrigger {
    /// The endpoint, which must capture its requests (`capture_percent`).
    pub endpoint: names::Name,
    /// A feature whose population stability index passes this has drifted.
    pub threshold: f64,
    /// How many of the newest captured rows are compared; a check waits until there are this many.
    pub window: usize,
    /// How often it is checked.
    pub every: std::time::Duration,
}

/// Pushes that start a run: signed with `secret`, to a matching branch, changing a matching path.
#[derive(Debug, Clone)]
pub struct PushTrigger {
    /// The webhook's shared secret, read by the server when a delivery comes.
    pub secret: SecretSource,
    /// Branch globs; empty: only the branch the project was added with.
    pub branches: Vec<String>,
    /// Path globs one changed file must match; empty: any change.
    pub paths: Vec<String>,
    branch_set: GlobSet,
    path_set: GlobSet,
}

impl PushTrigger {
    /// A trigger; a glob that does not compile is the error.
    pub(crate) fn new(secret: SecretSource, branches: Vec<String>, paths: Vec<String>) -> Result<PushTrigger, String> {
        Ok(PushTrigger { branch_set: glob_set(&branches)?, path_set: glob_set(&paths)?, secret, branches, paths })
    }

    /// Whether a push to `branch` starts a run; `default_branch` is the project's own.
    pub fn takes_branch(&self, branch: &str, default_branch: Option<&str>) -> bool {
        if self.branches.is_empty() {
            return default_branch.is_none_or(|own| own == branch);
        }
        self.branch_set.is_match(branch)
    }

    /// Whether a push that changed `files` starts a run. A push that names no files (a provider
    /// that lists none, or more than it lists) counts as touching everything.
    pub fn takes_files<'a>(&self, mut files: impl Iterator<Item = &'a str>, listed_all: bool) -> bool {
        if self.paths.is_empty() || !listed_all {
            return true;
        }
        files.any(|file| self.path_set.is_match(file))
    }
}

/// A glob: `*` stays within a path segment, `**` crosses them.
fn compile(glob: &str) -> Result<globset::Glob, String> {
    globset::GlobBuilder::new(glob).literal_separator(true).build().map_err(|e| format!("`{glob}` is not a glob: {e}"))
}

/// Whether `glob` compiles, and why not.
pub(crate) fn check_glob(glob: &str) -> Result<(), String> {
    compile(glob).map(drop)
}

fn glob_set(globs: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        set.add(compile(glob)?);
    }
    set.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(branches: &[&str], paths: &[&str]) -> PushTrigger {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        PushTrigger::new(SecretSource::Env("S".into()), owned(branches), owned(paths)).unwrap()
    }

    fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&chrono::Utc)
    }

    #[test]
    fn a_schedule_is_due_once_for_any_number_of_missed_times_in_its_zone() {
        let nightly = CronTrigger::new("0 3 * * *", chrono_tz::Europe::Berlin).unwrap();
        // 03:00 in Berlin is 02:00 UTC in winter.
        assert!(!nightly.due(utc("2026-12-01T01:00:00Z"), utc("2026-12-01T01:59:59Z")));
        assert!(nightly.due(utc("2026-12-01T01:00:00Z"), utc("2026-12-01T02:00:00Z")));
        assert!(!nightly.due(utc("2026-12-01T02:00:00Z"), utc("2026-12-01T02:30:00Z")), "03:00 itself is past");
        assert!(nightly.due(utc("2026-11-20T12:00:00Z"), utc("2026-12-01T12:00:00Z")), "eleven missed: due");
        let weekdays = CronTrigger::new("*/15 9-17 * * 1-5", chrono_tz::UTC).unwrap();
        // 2026-12-05 is a Saturday.
        assert!(!weekdays.due(utc("2026-12-05T08:00:00Z"), utc("2026-12-05T18:00:00Z")));
        assert!(weekdays.due(utc("2026-12-04T16:50:00Z"), utc("2026-12-04T17:00:00Z")));
    }

    #[test]
    fn a_schedule_has_five_fields() {
        assert!(CronTrigger::new("0 0 3 * * *", chrono_tz::UTC).is_err(), "seconds");
        assert!(CronTrigger::new("0 3 * *", chrono_tz::UTC).is_err());
        assert!(CronTrigger::new("61 * * * *", chrono_tz::UTC).is_err());
        assert!(CronTrigger::new("@daily", chrono_tz::UTC).is_ok());
    }

    #[test]
    fn branches_default_to_the_projects_own_and_globs_stay_in_a_segment() {
        assert!(trigger(&[], &[]).takes_branch("main", Some("main")));
        assert!(!trigger(&[], &[]).takes_branch("dev", Some("main")));
        let release = trigger(&["release/*", "main"], &[]);
        assert!(release.takes_branch("release/1.2", Some("main")));
        assert!(!release.takes_branch("release/1.2/hotfix", Some("main")));
        assert!(!release.takes_branch("feature", Some("main")));
    }

    #[test]
    fn paths_filter_only_a_push_whose_files_are_all_listed() {
        let data = trigger(&[], &["data/**", "*.toml"]);
        assert!(data.takes_files(["README.md", "data/iris/train.csv"].into_iter(), true));
        assert!(data.takes_files(["sagebrush.toml"].into_iter(), true));
        assert!(!data.takes_files(["docs/sagebrush.toml", "README.md"].into_iter(), true));
        assert!(data.takes_files(std::iter::empty(), false), "an unlisted push may touch anything");
    }
}
