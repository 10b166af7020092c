-- The run queue: when a queued run started, the stage a retry starts from, and the commit a run was asked for.
ALTER TABLE runs ADD COLUMN started_at INTEGER;
ALTER TABLE runs ADD COLUMN retry_from TEXT;
ALTER TABLE runs ADD COLUMN requested_commit TEXT;
CREATE INDEX runs_by_status ON runs (status, id);
