-- As SQLite's 0022: the secondary statuses a training job went through, and the control plane's resources.
ALTER TABLE training_jobs ADD COLUMN transitions JSONB NOT NULL DEFAULT '[]';
CREATE TABLE sagemaker_resources (
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    body       JSONB  NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);
