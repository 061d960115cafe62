-- Request logs of the gateway and model calls of the photo service.
-- Clustered by time (the primary key starts with `at`): time-range queries read contiguous pages
-- and retention deletes from the oldest end, at tens of millions of rows.
CREATE TABLE request_logs (
    id BIGINT NOT NULL AUTO_INCREMENT,
    at DATETIME(3) NOT NULL,
    endpoint VARCHAR(96) NOT NULL,
    method VARCHAR(8) NOT NULL DEFAULT '',
    status SMALLINT UNSIGNED NOT NULL,
    latency_ms INT UNSIGNED NOT NULL,
    client_id VARCHAR(64) NOT NULL DEFAULT '',
    openid VARCHAR(64) NOT NULL DEFAULT '',
    source VARCHAR(8) NOT NULL DEFAULT '',
    model_tokens INT UNSIGNED NOT NULL DEFAULT 0,
    error_code VARCHAR(48) NOT NULL DEFAULT '',
    request_id VARCHAR(64) NOT NULL DEFAULT '',
    PRIMARY KEY (at, id),
    -- AUTO_INCREMENT must lead some key.
    KEY idx_request_logs_id (id),
    KEY idx_request_logs_endpoint_at (endpoint, at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
