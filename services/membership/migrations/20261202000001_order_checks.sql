-- The reconciler's schedule per order: how often WeChat Pay was asked about it, and when to ask
-- next (a backoff, pulled forward to the time the order may be closed). An order whose state at
-- WeChat Pay needs a person (a refund we never applied, a payment stuck in USERPAYING) is taken
-- off the schedule with the reason, and an alert is raised.
ALTER TABLE payment_orders
    ADD COLUMN checks INT NOT NULL DEFAULT 0 AFTER checked_at,
    ADD COLUMN next_check_at DATETIME(3) NULL AFTER checks,
    ADD COLUMN attention VARCHAR(64) NOT NULL DEFAULT '' AFTER next_check_at,
    ADD KEY idx_payment_orders_next_check (status, next_check_at);
