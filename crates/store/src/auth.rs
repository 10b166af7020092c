//! API tokens (by name, with a role; only their hash is kept) and the audit of every change.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, FromRow};

use crate::db::{DatabaseKind, query, query_as};
use crate::{Error, Store, now_ms};

/// What a token may do. Each role may do everything the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Runs, cancels and retries pipelines; deploys and deletes endpoints.
    Operator,
    /// Manages projects and tokens.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err("a role is viewer, operator or admin".to_owned()),
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A token as listed: never its value or its hash.
#[derive(Clone, Debug, FromRow, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// When it was made (ms).
    pub created_at: i64,
}

/// One call that changed something.
#[derive(Clone, Debug, FromRow, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// The token's name, or `local` for a call from this machine with no token.
    pub actor: String,
    /// The method and path called, e.g. `POST /api/v1/runs`.
    pub action: String,
    /// The HTTP status it was answered with.
    pub status: i64,
}

/// Which entries of the audit a page lists.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter<'a> {
    /// Only entries older than this id (the cursor).
    pub before_id: Option<i64>,
    /// Only this caller's.
    pub actor: Option<&'a str>,
    /// Only actions containing this text (`approve`, `/api/v1/runs`).
    pub action: Option<&'a str>,
}

impl Store {
    /// Records a token by the SHA-256 (hex) of its value; a name taken already is [`Error::Conflict`].
    pub async fn create_token(&self, name: &str, role: Role, hash: &str) -> Result<TokenRecord, Error> {
        let record = TokenRecord { name: name.to_owned(), role, created_at: now_ms() };
        let inserted = query("INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&record.name)
            .bind(role)
            .bind(hash)
            .bind(record.created_at)
            .execute(&self.db)
            .await;
        match inserted {
            Ok(_) => Ok(record),
            Err(Error::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => Err(Error::Conflict(format!(
                "a token named {name} exists already; revoke it first with `sagebrush token revoke {name}`"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Every token with its hash, for checking a presented one.
    pub async fn token_hashes(&self) -> Result<Vec<(TokenRecord, String)>, Error> {
        let rows: Vec<(String, Role, i64, String)> =
            query_as("SELECT name, role, created_at, hash FROM tokens ORDER BY name").fetch_all(&self.db).await?;
        Ok(rows
            .into_iter()
            .map(|(name, role, created_at, hash)| (TokenRecord { name, role, created_at }, hash))
            .collect())
    }

    /// Deletes a token; an unknown name is [`Error::NotFound`].
    pub async fn revoke_token(&self, name: &str) -> Result<(), Error> {
        let deleted = query("DELETE FROM tokens WHERE name = $1").bind(name).execute(&self.db).await?;
        if deleted == 0 {
            return Err(Error::NotFound(format!("token {name}")));
        }
        Ok(())
    }

    pub async fn record_audit(&self, actor: &str, action: &str, status: u16) -> Result<(), Error> {
        query("INSERT INTO audit (at, actor, action, status) VALUES ($1, $2, $3, $4)")
            .bind(now_ms())
            .bind(actor)
            .bind(action)
            .bind(i64::from(status))
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// The newest audit records first, older than `before_id` when given.
    pub async fn audit(&self, filter: &AuditFilter<'_>, limit: i64) -> Result<Vec<AuditRecord>, Error> {
        // A plain substring, not a LIKE pattern: `_` and `%` in what is looked for are themselves.
        let contains = match self.db.kind() {
            DatabaseKind::Sqlite => "instr(action, $3) > 0",
            DatabaseKind::Postgres => "strpos(action, $3) > 0",
        };
        query_as(AssertSqlSafe(format!(
            "SELECT id, at, actor, action, status FROM audit
             WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR {contains})
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(filter.before_id)
        .bind(filter.actor)
        .bind(filter.action)
        .bind(limit)
        .fetch_all(&self.db)
        .await
    }
}
crate::db::text_enum!(Role);
