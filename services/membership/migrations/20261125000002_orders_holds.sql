-- Payment orders (WeChat Pay v2 JSAPI) and credit holds (reserve → commit / release).

-- Credits reserved by running work; spendable = remaining_credits - held_credits.
ALTER TABLE wechat_users
    ADD COLUMN held_credits BIGINT NOT NULL DEFAULT 0 AFTER total_credits,
    ADD CONSTRAINT ck_wechat_users_held CHECK (held_credits >= 0 AND held_credits <= remaining_credits);

CREATE TABLE payment_orders (
    out_trade_no VARCHAR(32) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    openid VARCHAR(64) NOT NULL,
    order_type ENUM('member', 'credits') NOT NULL,
    credits_amount INT NOT NULL,
    membership_days INT NOT NULL,
    -- Integer fen, computed by us; a notify with another amount changes nothing.
    total_fee BIGINT NOT NULL,
    -- notpay: WeChat may take the payment; paid: applied once; closed: WeChat confirmed it closed;
    -- failed: WeChat refused to create it.
    status ENUM('notpay', 'paid', 'closed', 'failed') NOT NULL DEFAULT 'notpay',
    prepay_id VARCHAR(64) NULL,
    transaction_id VARCHAR(32) NULL,
    client_ip VARCHAR(45) NOT NULL,
    failure VARCHAR(128) NOT NULL DEFAULT '',
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    expire_at DATETIME(3) NOT NULL,
    paid_at DATETIME(3) NULL,
    closed_at DATETIME(3) NULL,
    -- The reconciler's claim on the order for one round (safe with several instances).
    checked_at DATETIME(3) NULL,
    UNIQUE KEY uq_payment_orders_transaction (transaction_id),
    KEY idx_payment_orders_status_created (status, created_at),
    KEY idx_payment_orders_user (user_id, created_at),
    CONSTRAINT ck_payment_orders_fee CHECK (total_fee > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE credit_holds (
    reference VARCHAR(128) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    captured BIGINT NOT NULL DEFAULT 0,
    status ENUM('held', 'captured', 'released') NOT NULL DEFAULT 'held',
    expires_at DATETIME(3) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY idx_credit_holds_expiry (status, expires_at),
    CONSTRAINT ck_credit_holds_amount CHECK (amount > 0 AND captured >= 0 AND captured <= amount)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
