//! Projects: the folders a server was given, by pipeline name. The API runs only these.

use serde::Serialize;
use sqlx::FromRow;

use crate::{Error, Store, now_ms};

/// A project the server may run.
#[derive(Clone, Debug, FromRow, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ProjectRecord {
    /// The pipeline name in its `sagebrush.toml`.
    pub name: String,
    /// The project folder, canonical.
    pub path: String,
    /// When it was added (ms).
    pub added_at: i64,
}

impl Store {
    /// Records a project; adding the same folder again changes nothing. Another folder under a
    /// name already taken is [`Error::Conflict`].
    pub async fn add_project(&self, name: &str, path: &str) -> Result<ProjectRecord, Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<ProjectRecord> =
            sqlx::query_as("SELECT name, path, added_at FROM projects WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let record = match existing {
            Some(existing) if existing.path == path => existing,
            Some(existing) => {
                return Err(Error::Conflict(format!(
                    "project {name} is already added from {}; remove it first with `sagebrush project remove {name}`",
                    existing.path
                )));
            }
            None => {
                let record = ProjectRecord { name: name.to_owned(), path: path.to_owned(), added_at: now_ms() };
                sqlx::query("INSERT INTO projects (name, path, added_at) VALUES ($1, $2, $3)")
                    .bind(&record.name)
                    .bind(&record.path)
                    .bind(record.added_at)
                    .execute(&mut *tx)
                    .await?;
                record
            }
        };
        tx.commit().await?;
        Ok(record)
    }

    /// A project by name.
    pub async fn project(&self, name: &str) -> Result<ProjectRecord, Error> {
        sqlx::query_as("SELECT name, path, added_at FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("project {name}")))
    }

    /// Every project, by name.
    pub async fn projects(&self) -> Result<Vec<ProjectRecord>, Error> {
        Ok(sqlx::query_as("SELECT name, path, added_at FROM projects ORDER BY name").fetch_all(&self.pool).await?)
    }

    /// Forgets a project (its runs stay); whether it was there.
    pub async fn remove_project(&self, name: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM projects WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }
}
