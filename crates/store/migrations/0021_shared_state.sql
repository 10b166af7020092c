-- Run and version numbers come from one counter row per project or group, taken in the
-- transaction that creates the run or the version: servers sharing a database never hand out the
-- same number twice. version_floor becomes the groups' counter; retention no longer lowers it.
CREATE TABLE run_numbers (
    project TEXT    PRIMARY KEY,
    last    INTEGER NOT NULL
);
INSERT INTO run_numbers (project, last) SELECT project, MAX(number) FROM runs WHERE true GROUP BY project;
INSERT INTO version_floor (model_group, version)
    SELECT model_group, MAX(version) FROM model_versions WHERE true GROUP BY model_group
    ON CONFLICT (model_group) DO UPDATE SET version = MAX(version_floor.version, excluded.version);
-- A running run belongs to the server that runs it for as long as that server renews this (ms).
ALTER TABLE runs ADD COLUMN lease_until INTEGER;
