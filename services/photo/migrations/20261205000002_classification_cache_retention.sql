-- Retention deletes stored classification results by age.
ALTER TABLE classification_cache ADD KEY idx_classification_cache_created (created_at);
