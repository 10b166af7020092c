-- The scheduler reads only the oldest queued run of each project, whatever the backlog.
CREATE INDEX runs_by_project_queue ON runs (status, project, id);
