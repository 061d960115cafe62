-- The daily reconciliation of WeChat Pay's bill (pay/downloadbill) against our orders and
-- refunds: one row per bill day (China time) with the bill's totals, and one row per difference
-- for a person to look at. Checking a day again replaces its differences.
CREATE TABLE bill_checks (
    bill_date DATE NOT NULL PRIMARY KEY,
    -- running: an instance claimed the day; matched; differences; no_bill: WeChat Pay has no
    -- bill for the day (no transactions); failed: the bill could not be fetched or read.
    status ENUM('running', 'matched', 'differences', 'no_bill', 'failed') NOT NULL,
    wechat_payments INT NOT NULL DEFAULT 0,
    wechat_payment_fen BIGINT NOT NULL DEFAULT 0,
    wechat_refunds INT NOT NULL DEFAULT 0,
    wechat_refund_fen BIGINT NOT NULL DEFAULT 0,
    differences INT NOT NULL DEFAULT 0,
    failure VARCHAR(255) NOT NULL DEFAULT '',
    checked_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE bill_differences (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    bill_date DATE NOT NULL,
    kind VARCHAR(32) NOT NULL,
    out_trade_no VARCHAR(64) NOT NULL,
    out_refund_no VARCHAR(64) NULL,
    -- Integer fen as the bill says and as we have it; NULL where one side has nothing.
    wechat_fee BIGINT NULL,
    our_fee BIGINT NULL,
    KEY idx_bill_differences_date (bill_date, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
