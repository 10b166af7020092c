-- The production variants of each endpoint, so a restart brings back an A/B layout as it was.
CREATE TABLE endpoint_variants (
    endpoint      TEXT    NOT NULL,
    variant       TEXT    NOT NULL,
    model_group   TEXT    NOT NULL,
    model_version INTEGER NOT NULL,
    weight        REAL    NOT NULL,
    instances     INTEGER NOT NULL,
    instance_type TEXT,
    PRIMARY KEY (endpoint, variant)
);
