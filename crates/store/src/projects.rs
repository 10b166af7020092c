//! Projects: the folders a server was given, by pipeline name. The API runs only these.

use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow};

use crate::db::{query, query_as};
use crate::{Error, Store, now_ms};

/// A project the server may run.
#[derive(Clone, Debug, FromRow, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ProjectRecord {
    /// The pipeline name in its `sagebrush.toml`.
    pub name: String,
    /// The project folder, canonical; for a git project, the server's mirror of its repository.
    pub path: String,
    /// When it was added (ms).
    pub added_at: i64,
    /// For a git project: the repository it was added from.
    pub repo: Option<String>,
    /// For a git project: the branch its runs build.
    pub branch: Option<String>,
}

const COLUMNS: &str = "name, path, added_at, repo, branch";

impl Store {
    /// Records a project; adding the same folder again changes nothing. Another folder under a
    /// name already taken is [`Error::Conflict`].
    pub async fn add_project(&self, name: &str, path: &str) -> Result<ProjectRecord, Error> {
        self.add_project_from(name, path, None).await
    }

    /// [`Store::add_project`], for a git project also recording its `(repository, branch)`.
    pub async fn add_project_from(
        &self,
        name: &str,
        path: &str,
        git: Option<(&str, &str)>,
    ) -> Result<ProjectRecord, Error> {
        let mut tx = self.db.begin().await?;
        let existing: Option<ProjectRecord> =
            query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM projects WHERE name = $1")))
                .bind(name)
                .fetch_optional(&mut tx)
                .await?;
        let record = match existing {
            Some(existing) if existing.path == path && existing.repo.as_deref() == git.map(|g| g.0) => existing,
            Some(existing) => {
                return Err(Error::Conflict(format!(
                    "project {name} is already added from {}; remove it first with `sagebrush project remove {name}`",
                    existing.path
                )));
            }
            None => {
                let record = ProjectRecord {
                    name: name.to_owned(),
                    path: path.to_owned(),
                    added_at: now_ms(),
                    repo: git.map(|g| g.0.to_owned()),
                    branch: git.map(|g| g.1.to_owned()),
                };
                query("INSERT INTO projects (name, path, added_at, repo, branch) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&record.name)
                    .bind(&record.path)
                    .bind(record.added_at)
                    .bind(&record.repo)
                    .bind(&record.branch)
                    .execute(&mut tx)
                    .await?;
                record
            }
        };
        tx.commit().await?;
        Ok(record)
    }

    /// A project by name.
    pub async fn project(&self, name: &str) -> Result<ProjectRecord, Error> {
        query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM projects WHERE name = $1")))
            .bind(name)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("project {name}")))
    }

    /// Every project, by name.
    pub async fn projects(&self) -> Result<Vec<ProjectRecord>, Error> {
        query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM projects ORDER BY name"))).fetch_all(&self.db).await
    }

    /// Forgets a project (its runs stay); whether it was there.
    pub async fn remove_project(&self, name: &str) -> Result<bool, Error> {
        let done = query("DELETE FROM projects WHERE name = $1").bind(name).execute(&self.db).await?;
        Ok(done == 1)
    }
}
