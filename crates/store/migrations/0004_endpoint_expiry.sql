-- When an endpoint with a TTL is deleted (ms since the epoch); NULL keeps it until it is deleted by hand.
ALTER TABLE endpoints ADD COLUMN expires_at INTEGER;
