//! One handle on either database: SQLite (one file, the default) or Postgres (shared by servers).
//!
//! The store's SQL is written once, in the subset both speak (`$N` placeholders, `RETURNING`,
//! `ON CONFLICT`, `->>` on JSON). A query is built with [`query`], [`query_as`] or
//! [`query_scalar`], its arguments kept as [`Arg`] values, and only when it runs is it handed to
//! the sqlx driver of the database it runs on. Where the dialects really differ, [`Db::kind`]
//! picks the text.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::types::Json;
use sqlx::{Decode, FromRow, Postgres, SqlSafeStr, SqlStr, Sqlite, Transaction, Type};

use crate::Error;

/// Which database a store is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A connection pool of either kind.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction of either kind; dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Db {
    pub(crate) fn kind(&self) -> DatabaseKind {
        match self {
            Db::Sqlite(_) => DatabaseKind::Sqlite,
            Db::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    /// Starts a transaction that writes. SQLite's takes the write lock up front: a deferred
    /// read-then-write fails at once (SQLITE_BUSY) when another process wrote in between.
    /// Postgres locks the rows a statement changes, and the store's writes are written for that
    /// (conditional updates, upserts on a counter row).
    pub(crate) async fn begin(&self) -> Result<Tx, Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

impl Tx {
    pub(crate) fn kind(&self) -> DatabaseKind {
        match self {
            Tx::Sqlite(_) => DatabaseKind::Sqlite,
            Tx::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Where a query runs: on the pool, or inside a transaction.
pub(crate) enum Conn<'a> {
    Pool(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Conn<'a> {
    fn from(db: &'a Db) -> Conn<'a> {
        Conn::Pool(db)
    }
}

impl<'a> From<&'a mut Tx> for Conn<'a> {
    fn from(tx: &'a mut Tx) -> Conn<'a> {
        Conn::Tx(tx)
    }
}

/// A bound value, typed as both databases store it. JSON is its own kind: Postgres keeps it as
/// `jsonb`, SQLite as text.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Json(Option<serde_json::Value>),
}

macro_rules! arg_from {
    ($variant:ident: $($t:ty => $conv:expr),* $(,)?) => {
        $(impl From<$t> for Arg {
            #[allow(clippy::redundant_closure_call)]
            fn from(v: $t) -> Arg {
                Arg::$variant(($conv)(v))
            }
        })*
    };
}

arg_from!(Int: i64 => Some, Option<i64> => |v| v);
arg_from!(Real: f64 => Some, Option<f64> => |v| v);
arg_from!(Bool: bool => Some);
arg_from!(Text:
    &str => |v: &str| Some(v.to_owned()),
    Option<&str> => |v: Option<&str>| v.map(str::to_owned),
    String => Some,
    &String => |v: &String| Some(v.clone()),
    Option<String> => |v| v,
    &Option<String> => |v: &Option<String>| v.clone(),
);
arg_from!(Json:
    &serde_json::Value => |v: &serde_json::Value| Some(v.clone()),
    serde_json::Value => Some,
    Option<serde_json::Value> => |v| v,
);

/// Binds each argument to a sqlx query of one driver.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Real(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Json(v) => q.bind(v.map(Json)),
            };
        }
        q
    }};
}

/// Runs one built sqlx query on whichever connection `$conn` is.
macro_rules! on_conn {
    ($conn:expr, $make:ident, $sql:expr, $args:expr, $method:ident) => {
        match $conn.into() {
            Conn::Pool(Db::Sqlite(pool)) => bind_all!(sqlx::$make::<Sqlite, _>($sql), $args).$method(pool).await,
            Conn::Pool(Db::Postgres(pool)) => bind_all!(sqlx::$make::<Postgres, _>($sql), $args).$method(pool).await,
            Conn::Tx(Tx::Sqlite(tx)) => bind_all!(sqlx::$make::<Sqlite, _>($sql), $args).$method(&mut **tx).await,
            Conn::Tx(Tx::Postgres(tx)) => bind_all!(sqlx::$make::<Postgres, _>($sql), $args).$method(&mut **tx).await,
        }
    };
}

/// A statement whose rows are not read.
pub(crate) struct Query {
    sql: SqlStr,
    args: Vec<Arg>,
}

pub(crate) fn query(sql: impl SqlSafeStr) -> Query {
    Query { sql: sql.into_sql_str(), args: Vec::new() }
}

impl Query {
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Query {
        self.args.push(value.into());
        self
    }

    /// Runs it; how many rows it changed.
    pub(crate) async fn execute<'a>(self, conn: impl Into<Conn<'a>>) -> Result<u64, Error> {
        let sql = self.sql;
        let done = match conn.into() {
            Conn::Pool(Db::Sqlite(pool)) => {
                bind_all!(sqlx::query::<Sqlite>(sql), self.args).execute(pool).await?.rows_affected()
            }
            Conn::Pool(Db::Postgres(pool)) => {
                bind_all!(sqlx::query::<Postgres>(sql), self.args).execute(pool).await?.rows_affected()
            }
            Conn::Tx(Tx::Sqlite(tx)) => {
                bind_all!(sqlx::query::<Sqlite>(sql), self.args).execute(&mut **tx).await?.rows_affected()
            }
            Conn::Tx(Tx::Postgres(tx)) => {
                bind_all!(sqlx::query::<Postgres>(sql), self.args).execute(&mut **tx).await?.rows_affected()
            }
        };
        Ok(done)
    }
}

/// A row type both drivers can decode.
pub(crate) trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// A query whose rows decode into `T`.
pub(crate) struct QueryAs<T> {
    sql: SqlStr,
    args: Vec<Arg>,
    row: std::marker::PhantomData<fn() -> T>,
}

pub(crate) fn query_as<T: Row>(sql: impl SqlSafeStr) -> QueryAs<T> {
    QueryAs { sql: sql.into_sql_str(), args: Vec::new(), row: std::marker::PhantomData }
}

impl<T: Row> QueryAs<T> {
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> QueryAs<T> {
        self.args.push(value.into());
        self
    }

    pub(crate) async fn fetch_one<'a>(self, conn: impl Into<Conn<'a>>) -> Result<T, Error> {
        Ok(on_conn!(conn, query_as, self.sql, self.args, fetch_one)?)
    }

    pub(crate) async fn fetch_all<'a>(self, conn: impl Into<Conn<'a>>) -> Result<Vec<T>, Error> {
        Ok(on_conn!(conn, query_as, self.sql, self.args, fetch_all)?)
    }

    pub(crate) async fn fetch_optional<'a>(self, conn: impl Into<Conn<'a>>) -> Result<Option<T>, Error> {
        Ok(on_conn!(conn, query_as, self.sql, self.args, fetch_optional)?)
    }
}

/// A single value both drivers can decode.
pub(crate) trait Scalar:
    Type<Sqlite> + for<'r> Decode<'r, Sqlite> + Type<Postgres> + for<'r> Decode<'r, Postgres> + Send + Unpin
{
}
impl<T> Scalar for T where
    T: Type<Sqlite> + for<'r> Decode<'r, Sqlite> + Type<Postgres> + for<'r> Decode<'r, Postgres> + Send + Unpin
{
}

/// A query whose rows are one value each.
pub(crate) struct QueryScalar<T> {
    sql: SqlStr,
    args: Vec<Arg>,
    value: std::marker::PhantomData<fn() -> T>,
}

pub(crate) fn query_scalar<T: Scalar>(sql: impl SqlSafeStr) -> QueryScalar<T> {
    QueryScalar { sql: sql.into_sql_str(), args: Vec::new(), value: std::marker::PhantomData }
}

impl<T: Scalar> QueryScalar<T> {
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> QueryScalar<T> {
        self.args.push(value.into());
        self
    }

    pub(crate) async fn fetch_one<'a>(self, conn: impl Into<Conn<'a>>) -> Result<T, Error> {
        Ok(on_conn!(conn, query_scalar, self.sql, self.args, fetch_one)?)
    }

    pub(crate) async fn fetch_optional<'a>(self, conn: impl Into<Conn<'a>>) -> Result<Option<T>, Error> {
        Ok(on_conn!(conn, query_scalar, self.sql, self.args, fetch_optional)?)
    }

    pub(crate) async fn fetch_all<'a>(self, conn: impl Into<Conn<'a>>) -> Result<Vec<T>, Error> {
        Ok(on_conn!(conn, query_scalar, self.sql, self.args, fetch_all)?)
    }
}

/// `(1,2,3)` for `IN`: ids are integers, so writing them into the SQL is safe, and it is the one
/// list syntax both databases have. An empty list is `(NULL)`, which no id equals; callers that
/// mean "none excluded" must leave out the `NOT IN` instead.
pub(crate) fn id_list(ids: &[i64]) -> String {
    if ids.is_empty() {
        return "(NULL)".to_owned();
    }
    format!("({})", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
}

/// Stores an enum as the text of its serde name: `Type`, `Decode` for both databases, and [`Arg`].
macro_rules! text_enum {
    ($($t:ty),* $(,)?) => {$(
        impl<DB: sqlx::Database> sqlx::Type<DB> for $t where str: sqlx::Type<DB> {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $t where &'r str: sqlx::Decode<'r, DB> {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<$t, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<DB>>::decode(value)?;
                Ok(serde_json::from_value(serde_json::Value::String(text.to_owned()))?)
            }
        }

        impl From<$t> for $crate::db::Arg {
            fn from(value: $t) -> $crate::db::Arg {
                $crate::db::Arg::Text(serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)))
            }
        }

        impl From<Option<$t>> for $crate::db::Arg {
            fn from(value: Option<$t>) -> $crate::db::Arg {
                $crate::db::Arg::Text(value.and_then(|v| serde_json::to_value(v).ok()).and_then(|v| v.as_str().map(str::to_owned)))
            }
        }
    )*};
}
pub(crate) use text_enum;
