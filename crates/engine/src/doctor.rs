//! `sagebrush doctor`: what this configuration needs, checked one by one, each failure with its fix.

use serde::Serialize;

use crate::{Home, which};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Missing, but only some pipelines need it (images, git projects).
    Warn,
    /// This configuration cannot work without it.
    Fail,
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to do, when it is not ok.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, status: CheckStatus::Ok, detail: detail.into(), fix: None }
    }

    fn not(name: &'static str, status: CheckStatus, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, status, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Checks the home, its state database, the artifact store, the AWS credentials and ECR (in a
/// build with AWS), the process runtime's sandbox, the Docker Engine, the registry and git.
pub async fn check(home: &Home, backends: &crate::Backends) -> Vec<Check> {
    let mut checks = vec![database(home).await, artifacts(home).await];
    if let Some(sagemaker) = &backends.sagemaker_training {
        let fix = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role, and AWS_REGION";
        let missing = format!("{fix}; only backend = \"sagemaker\" stages and s3:// need them");
        checks.push(identity_check("aws", sagemaker.identity().await, &missing, fix));
    }
    if let Some(ecr) = &backends.ecr {
        checks.push(identity_check(
            "ecr",
            ecr.reachable().await,
            "set the AWS credentials and region as for `aws`; only registry = \"ecr\" build stages need ECR",
            "let the credentials call ecr:GetAuthorizationToken, ecr:CreateRepository and the push actions",
        ));
    }
    checks.push(process_runtime().await);
    checks.push(match runtime::docker::check_engine().await {
        Ok(()) => Check::ok("docker", "the Docker Engine answers"),
        Err(e) => Check::not(
            "docker",
            CheckStatus::Warn,
            e.to_string(),
            "start the Docker Engine (systemctl start docker); only image algorithms and `container = true` need it",
        ),
    });
    checks.push(match crate::registry::program() {
        Some(path) => Check::ok("registry", format!("{} (started on demand)", path.display())),
        None => Check::not(
            "registry",
            CheckStatus::Warn,
            "no docker-registry on PATH",
            "apt-get install docker-registry, or set `registry` on the build stage; only build stages need it",
        ),
    });
    checks.push(match which("git") {
        Some(path) => Check::ok("git", path.display().to_string()),
        None => Check::not(
            "git",
            CheckStatus::Warn,
            "no git on PATH",
            "apt-get install git; git projects and webhooks need it",
        ),
    });
    checks
}

/// A model server's sandbox made and ended here, as the process runtime makes one.
async fn process_runtime() -> Check {
    // Not in the home: doctor makes nothing there.
    let scratch = std::env::temp_dir().join(format!("sagebrush-doctor-{}", runtime::unique_suffix()));
    let checked = match std::env::current_exe() {
        Ok(exe) => runtime::process::check_sandbox(&exe, &scratch).await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("cannot find this program: {e}")),
    };
    match checked {
        Ok(()) => {
            Check::ok("process", "sandboxes for process algorithms (namespaces, /opt/ml, port 8080 of their own)")
        }
        Err(why) => Check::not(
            "process",
            CheckStatus::Warn,
            why,
            "only process algorithms need it; image and built-in algorithms run without it",
        ),
    }
}

async fn database(home: &Home) -> Check {
    let at = home.database();
    if let store::Database::Sqlite(path) = &at
        && !path.exists()
    {
        return Check::ok("database", format!("{} (created by the first command that needs it)", path.display()));
    }
    let kind = match at {
        store::Database::Sqlite(_) => "SQLite",
        store::Database::Postgres(_) => "Postgres",
    };
    match store::Store::open_at(&at).await {
        Ok(store) => match store.schema_version().await {
            Ok((applied, known)) if applied as usize == known => {
                Check::ok("database", format!("{kind} {at}, schema {applied}"))
            }
            Ok((applied, known)) => Check::not(
                "database",
                CheckStatus::Fail,
                format!("{at}: schema {applied}, this sagebrush knows {known}"),
                "a newer sagebrush wrote it: use that version, or a database of this version's own (--database)",
            ),
            Err(e) => database_failed(&at, &e),
        },
        Err(e) => database_failed(&at, &e),
    }
}

fn database_failed(at: &store::Database, e: &store::Error) -> Check {
    let fix = match at {
        store::Database::Sqlite(_) => "check the file's owner and mode and the free space, or give another --home",
        store::Database::Postgres(_) => {
            "check that the server is up and the URL's host, port, user, password and database name (psql \"$SAGEBRUSH_DATABASE\" -c 'select 1')"
        }
    };
    let why = match e {
        store::Error::Unreachable { source, .. } => format!("{at}: {source}"),
        e => format!("{at}: {e}"),
    };
    Check::not("database", CheckStatus::Fail, why, fix)
}

async fn artifacts(home: &Home) -> Check {
    let location = home.artifact_location();
    let fix = match &location {
        store::Location::Local(_) => "check the folder's owner and the free space, or give --artifacts".to_owned(),
        store::Location::S3 { bucket, .. } => format!(
            "check that bucket {bucket} exists and that AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION \
             (and AWS_ENDPOINT_URL, for a store other than AWS) let this user write to it"
        ),
    };
    let probed = match store::Artifacts::open(&location, &home.artifacts()) {
        Ok(artifacts) => artifacts.probe().await,
        Err(e) => Err(e),
    };
    match probed {
        Ok(()) => Check::ok("artifacts", format!("{location} is writable")),
        Err(e) => Check::not("artifacts", CheckStatus::Fail, format!("{location}: {e}"), fix),
    }
}

/// An AWS service's line: ok with who or what answered, a warning without credentials (most
/// pipelines need none), a failure when they are refused.
fn identity_check(name: &'static str, identity: crate::Identity, missing: &str, refused: &str) -> Check {
    match identity {
        crate::Identity::Accepted(who) => Check::ok(name, who),
        crate::Identity::Missing(why) => Check::not(name, CheckStatus::Warn, why, missing),
        crate::Identity::Refused(why) => Check::not(name, CheckStatus::Fail, why, refused),
    }
}
