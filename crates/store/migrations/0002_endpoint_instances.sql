-- How many instances serve an endpoint, and of which instance type, so a restart and a health check bring back the same shape.
ALTER TABLE endpoints ADD COLUMN instances INTEGER NOT NULL DEFAULT 1;
ALTER TABLE endpoints ADD COLUMN instance_type TEXT;
