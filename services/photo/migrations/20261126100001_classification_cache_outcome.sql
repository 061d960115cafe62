-- What the classification service needs beyond the first cut of the cache table:
-- `sure`: whether a local answer was strong enough to stand alone (an unsure one may still be
--   sent to the cloud model later, without running the local model again);
-- `outcome`: a cloud model's content-moderation refusal is stored too, so the image is never sent
--   (and paid for) again. Such a row has category 'other', no labels and confidence 0.
-- For local results, prompt_version holds the version of the label-to-category rules.
ALTER TABLE classification_cache
    ADD COLUMN sure BOOLEAN NOT NULL DEFAULT TRUE AFTER confidence,
    ADD COLUMN outcome ENUM('classified', 'moderation_rejected') NOT NULL DEFAULT 'classified' AFTER source;
