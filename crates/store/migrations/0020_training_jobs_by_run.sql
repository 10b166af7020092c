-- The dashboard shows a run's training jobs.
CREATE INDEX training_jobs_by_run ON training_jobs (run_id);
