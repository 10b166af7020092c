-- A project from a git repository: its URL and branch; `path` is then the server's mirror of it.
ALTER TABLE projects ADD COLUMN repo TEXT;
ALTER TABLE projects ADD COLUMN branch TEXT;
