-- The highest model version each group ever had, so versions that retention removed are never
-- numbered again.
CREATE TABLE version_floor (
    model_group TEXT PRIMARY KEY,
    version     INTEGER NOT NULL
);
