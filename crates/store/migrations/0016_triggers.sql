-- What started each run, beyond its kind: the delivery or schedule, and who.
ALTER TABLE runs ADD COLUMN trigger_detail TEXT;
ALTER TABLE runs ADD COLUMN triggered_by TEXT;

-- Webhook deliveries seen, so a redelivered one starts nothing.
CREATE TABLE deliveries (
    provider    TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    project     TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (provider, id)
);

-- What each of a project's own triggers (poll, cron, data) last saw: a commit, a time, a digest.
CREATE TABLE trigger_state (
    project    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, kind)
);
