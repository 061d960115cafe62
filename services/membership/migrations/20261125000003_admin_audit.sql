-- Operators' actions on user data (credit adjustments), kept for audit; its id is the ledger
-- reference of the adjustment.
CREATE TABLE admin_audit (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    admin VARCHAR(64) NOT NULL,
    action VARCHAR(32) NOT NULL,
    user_id BIGINT NOT NULL,
    delta BIGINT NOT NULL,
    reason VARCHAR(255) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY idx_admin_audit_user (user_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The admin lists and revenue sums scan by time.
CREATE INDEX idx_payment_orders_paid ON payment_orders (status, paid_at);
CREATE INDEX idx_wechat_users_created ON wechat_users (created_at);
