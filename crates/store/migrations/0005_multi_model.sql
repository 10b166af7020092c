-- A multi-model endpoint serves every model.tar.gz in a folder, under a memory budget.
ALTER TABLE endpoints ADD COLUMN multi_model_dir TEXT;
ALTER TABLE endpoints ADD COLUMN memory_budget_bytes INTEGER;
