//! Durable state (SQLite through sqlx) and artifacts (object_store), the only crate that speaks SQL or touches stored files.
