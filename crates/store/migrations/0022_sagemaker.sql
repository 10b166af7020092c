-- Each secondary status a training job went through, with when it began (DescribeTrainingJob's
-- SecondaryStatusTransitions): a JSON array of {"status", "start_ms"}.
ALTER TABLE training_jobs ADD COLUMN transitions TEXT NOT NULL DEFAULT '[]';
-- What SageMaker's control plane made that has no table of its own (a model's name for a
-- registered version, an endpoint configuration, an endpoint's SageMaker status): JSON bodies.
CREATE TABLE sagemaker_resources (
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
);
