-- Model calls of the services (endpoint `model:<model>`, method MODEL; one row per call) are
-- recorded next to the gateway's requests, which already count the classification that made the
-- call. The rollups tell the two kinds apart, so the overview counts requests, errors and
-- latencies of HTTP requests only and takes model calls and tokens from the model-call rows.
-- The kind follows from the endpoint (route templates start with '/', model calls with
-- 'model:'), so the key stays (hour, endpoint) and every rollup row is of one kind.
ALTER TABLE hourly_endpoint_stats
    ADD COLUMN kind ENUM('http', 'model') NOT NULL DEFAULT 'http' AFTER endpoint;

-- Model calls folded before this migration (by 20261125000002 or since) get their kind.
UPDATE hourly_endpoint_stats SET kind = 'model' WHERE endpoint LIKE 'model:%';
