-- Projects a server was given (by `up`, `server --project` or `project add`): the only folders the API runs.
CREATE TABLE projects (
    name     TEXT PRIMARY KEY,
    path     TEXT    NOT NULL,
    added_at INTEGER NOT NULL
);
