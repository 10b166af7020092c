-- Every change of a run, stage, model version or endpoint, appended in the transaction that made it.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    project TEXT,
    data TEXT NOT NULL
);
CREATE INDEX events_project ON events (project, id);
