-- A run's approval stage: what it asks to let through, with the evidence, and who decided, when and why.
CREATE TABLE approvals (
    run_id        INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    stage         TEXT    NOT NULL,
    model_group   TEXT,
    model_version INTEGER,
    evidence      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    requested_at  INTEGER NOT NULL,
    expires_at    INTEGER,
    decided_by    TEXT,
    decided_at    INTEGER,
    reason        TEXT,
    PRIMARY KEY (run_id, position)
);
CREATE INDEX approvals_pending ON approvals (status, expires_at);
