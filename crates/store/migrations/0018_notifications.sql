-- Notifications that could not be delivered after every retry.
CREATE TABLE notify_failures (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    project   TEXT    NOT NULL,
    url       TEXT    NOT NULL,
    event_id  INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    attempts  INTEGER NOT NULL,
    error     TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
