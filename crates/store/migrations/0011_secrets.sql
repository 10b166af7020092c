-- Where each secret parameter of a run is read (`env:NAME` or `file:PATH`), never its value;
-- `parameters` holds `***` for them.
ALTER TABLE runs ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';
