-- Retention deletes by age: events by when they arrived, bindings that bind nothing by expiry
-- (credit holds already have their status-and-expiry key).
ALTER TABLE wechat_events ADD KEY idx_wechat_events_received (received_at);
ALTER TABLE client_bindings ADD KEY idx_client_bindings_expiry (status, expire_at);
