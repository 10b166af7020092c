-- The percentage of an endpoint's requests captured with their answers; NULL captures none.
ALTER TABLE endpoints ADD COLUMN capture_percent REAL;
