-- The durable copy of classification results (Redis holds the hot copy). A result is keyed by the
-- image bytes' SHA-256 and the model and prompt versions that produced it, so a new model or
-- prompt never serves an old answer, and the same image is never paid for twice.
CREATE TABLE classification_cache (
    sha256 BINARY(32) NOT NULL,
    model_version VARCHAR(64) NOT NULL,
    -- Empty for the local model, which has no prompt.
    prompt_version VARCHAR(64) NOT NULL DEFAULT '',
    -- An album category code (people, landscape, food, ..., other).
    category VARCHAR(32) NOT NULL,
    -- Top labels with scores: [{"label": "...", "score": 0.93}, ...].
    labels JSON NOT NULL,
    confidence DOUBLE NOT NULL,
    -- Who answered: the local model or the cloud model.
    source ENUM('local', 'model') NOT NULL,
    -- Token usage of the cloud call that produced the row; NULL for the local model.
    prompt_tokens INT UNSIGNED NULL,
    completion_tokens INT UNSIGNED NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (sha256, model_version, prompt_version),
    CONSTRAINT ck_classification_cache_confidence CHECK (confidence >= 0 AND confidence <= 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
