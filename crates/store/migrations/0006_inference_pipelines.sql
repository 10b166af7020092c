-- A serial inference pipeline: the endpoints a request goes through, in order, as a JSON array.
ALTER TABLE endpoints ADD COLUMN chain TEXT;
