-- As SQLite's 0021: counters for run and version numbers, and the lease of a running run.
CREATE TABLE run_numbers (
    project TEXT   PRIMARY KEY,
    last    BIGINT NOT NULL
);
INSERT INTO run_numbers (project, last) SELECT project, MAX(number) FROM runs GROUP BY project;
INSERT INTO version_floor (model_group, version)
    SELECT model_group, MAX(version) FROM model_versions GROUP BY model_group
    ON CONFLICT (model_group) DO UPDATE SET version = GREATEST(version_floor.version, excluded.version);
ALTER TABLE runs ADD COLUMN lease_until BIGINT;
