-- Runs, their stages, training jobs, model versions and endpoints.
-- Timestamps are milliseconds since the Unix epoch; JSON columns hold objects.
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    project          TEXT    NOT NULL,
    number           INTEGER NOT NULL,
    project_path     TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    reason           TEXT,
    parameters       TEXT    NOT NULL,
    trigger          TEXT    NOT NULL,
    commit_sha       TEXT,
    owner            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    retry_of         INTEGER,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    UNIQUE (project, number)
);

CREATE TABLE stages (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    reason      TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    outputs     TEXT    NOT NULL DEFAULT '{}',
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE training_jobs (
    name             TEXT PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs (id),
    algorithm        TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    secondary_status TEXT    NOT NULL,
    failure_reason   TEXT,
    hyperparameters  TEXT    NOT NULL,
    metrics          TEXT    NOT NULL DEFAULT '{}',
    model_uri        TEXT,
    model_sha256     TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER
);

CREATE TABLE model_versions (
    model_group     TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    algorithm       TEXT    NOT NULL,
    artifact_uri    TEXT    NOT NULL,
    artifact_sha256 TEXT    NOT NULL,
    lineage         TEXT    NOT NULL,
    approval_status TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (model_group, version)
);

CREATE TABLE endpoints (
    name          TEXT PRIMARY KEY,
    model_group   TEXT    NOT NULL,
    model_version INTEGER NOT NULL,
    run_id        INTEGER NOT NULL REFERENCES runs (id),
    updated_at    INTEGER NOT NULL
);
