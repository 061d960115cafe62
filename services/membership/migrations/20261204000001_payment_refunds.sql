-- Refunds of paid orders, asked for by an operator. What a refund takes back (credits not yet
-- spent, membership days) is taken in the same transaction that writes its row, before WeChat
-- Pay is asked, and given back only when WeChat Pay refuses or closes the refund: a balance
-- never goes below zero and nothing is taken twice (the ledger reference is out_refund_no).
CREATE TABLE payment_refunds (
    out_refund_no VARCHAR(64) NOT NULL PRIMARY KEY,
    out_trade_no VARCHAR(32) NOT NULL,
    user_id BIGINT NOT NULL,
    -- Integer fen; the refunds of an order never add up to more than its total_fee.
    refund_fee BIGINT NOT NULL,
    -- What this refund took back: credits (a ledger row 'refund'), and membership days counted
    -- against the order with the milliseconds actually taken off the membership's end.
    credits_taken BIGINT NOT NULL,
    membership_days INT NOT NULL,
    membership_ms_taken BIGINT NOT NULL,
    -- pending: asked, WeChat Pay's answer not known yet; processing: WeChat Pay accepted it;
    -- success: the money went back; failed: refused or closed, what was taken was given back;
    -- abnormal: WeChat Pay could not pay it out (CHANGE), a person looks.
    status ENUM('pending', 'processing', 'success', 'failed', 'abnormal') NOT NULL DEFAULT 'pending',
    refund_id VARCHAR(64) NULL,
    reason VARCHAR(255) NOT NULL,
    admin VARCHAR(64) NOT NULL,
    failure VARCHAR(128) NOT NULL DEFAULT '',
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    settled_at DATETIME(3) NULL,
    -- The reconciler asks WeChat Pay about pending and processing refunds on a backoff.
    checks INT NOT NULL DEFAULT 0,
    next_check_at DATETIME(3) NULL,
    KEY idx_payment_refunds_order (out_trade_no),
    KEY idx_payment_refunds_check (status, next_check_at),
    KEY idx_payment_refunds_created (created_at),
    CONSTRAINT ck_payment_refunds_amounts CHECK (
        refund_fee > 0 AND credits_taken >= 0 AND membership_days >= 0 AND membership_ms_taken >= 0
    )
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

