//! Retention: which of a project's old runs may go, and removing their rows in one transaction.
//!
//! A run is kept whole while anything still uses it: an endpoint it deployed, a model version it
//! registered that an endpoint serves or that was approved. Runs that have not ended are never
//! candidates.

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;

use crate::db::{id_list, query, query_as, query_scalar};
use crate::{Error, RunRecord, Store};

impl Store {
    /// A project's ended runs past its newest `keep` ended ones, newest first.
    pub async fn runs_past(&self, project: &str, keep: i64) -> Result<Vec<RunRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {} FROM runs WHERE project = $1 AND finished_at IS NOT NULL ORDER BY number DESC LIMIT $3 OFFSET $2",
            crate::runs::RUN_COLUMNS
        )))
        .bind(project)
        .bind(keep.max(0))
        .bind(i64::MAX)
        .fetch_all(&self.db)
        .await
    }

    /// The projects that have runs.
    pub async fn projects_with_runs(&self) -> Result<Vec<String>, Error> {
        query_scalar("SELECT DISTINCT project FROM runs ORDER BY project").fetch_all(&self.db).await
    }

    /// Why each run that something still uses must stay, by run id.
    pub async fn runs_in_use(&self) -> Result<BTreeMap<i64, String>, Error> {
        let mut uses = BTreeMap::new();
        let deployed: Vec<(i64, String)> = query_as("SELECT run_id, name FROM endpoints").fetch_all(&self.db).await?;
        for (run, endpoint) in deployed {
            uses.entry(run).or_insert(format!("it deployed endpoint {endpoint}"));
        }
        let served: Vec<(i64, String, i64, String)> = query_as(
            "SELECT m.run_id, m.model_group, m.version, v.endpoint FROM model_versions m
               JOIN endpoint_variants v ON v.model_group = m.model_group AND v.model_version = m.version
             UNION
             SELECT m.run_id, m.model_group, m.version, e.name FROM model_versions m
               JOIN endpoints e ON e.model_group = m.model_group AND e.model_version = m.version",
        )
        .fetch_all(&self.db)
        .await?;
        for (run, group, version, endpoint) in served {
            uses.entry(run).or_insert(format!("{endpoint} serves {group} v{version}"));
        }
        let approved: Vec<(i64, String, i64)> =
            query_as("SELECT run_id, model_group, version FROM model_versions WHERE approval_status = 'Approved'")
                .fetch_all(&self.db)
                .await?;
        for (run, group, version) in approved {
            uses.entry(run).or_insert(format!("{group} v{version} is approved"));
        }
        Ok(uses)
    }

    /// Removes ended runs with their stages, training jobs, approvals and model versions. A run
    /// that has not ended, or that something uses now, is left as it is; the ids removed.
    pub async fn remove_runs(&self, ids: &[i64]) -> Result<Vec<i64>, Error> {
        let in_use = self.runs_in_use().await?;
        let mut tx = self.db.begin().await?;
        let mut removed = Vec::new();
        for &id in ids {
            if in_use.contains_key(&id) {
                continue;
            }
            let ended: Option<i64> = query_scalar("SELECT id FROM runs WHERE id = $1 AND finished_at IS NOT NULL")
                .bind(id)
                .fetch_optional(&mut tx)
                .await?;
            if ended.is_none() {
                continue;
            }
            for table in ["approvals", "training_jobs", "model_versions", "stages"] {
                query(AssertSqlSafe(format!("DELETE FROM {table} WHERE run_id = $1")))
                    .bind(id)
                    .execute(&mut tx)
                    .await?;
            }
            query("DELETE FROM runs WHERE id = $1").bind(id).execute(&mut tx).await?;
            removed.push(id);
        }
        tx.commit().await?;
        Ok(removed)
    }
}

impl Store {
    /// The image digests that build stages of runs other than `except` recorded: an image a kept
    /// run still names must stay in the registry even when a removed run pushed the same one.
    pub async fn image_digests_except(&self, except: &[i64]) -> Result<std::collections::HashSet<String>, Error> {
        let except = if except.is_empty() { String::new() } else { format!("AND run_id NOT IN {}", id_list(except)) };
        let digests: Vec<String> = query_scalar(AssertSqlSafe(format!(
            "SELECT DISTINCT outputs ->> 'digest' FROM stages WHERE outputs ->> 'digest' IS NOT NULL {except}"
        )))
        .fetch_all(&self.db)
        .await?;
        Ok(digests.into_iter().collect())
    }
}
