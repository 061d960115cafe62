-- Erasing a user's personal data at their (or an operator's) request. The user row stays, under
-- a random pseudonym in place of the openid, because orders and ledger rows (financial records
-- that must be kept) point at it; everything else that names the user is deleted.
ALTER TABLE wechat_users ADD COLUMN erased_at DATETIME(3) NULL AFTER unsubscribed_at;

-- One row per erasure: what the other services must still forget (the photo service the
-- user's edits, the stats service the request logs of the openid and the clients). The openid
-- and client ids are kept here only until they have; then they are cleared too.
CREATE TABLE erasures (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    pseudonym VARCHAR(64) NOT NULL,
    openid VARCHAR(64) NULL,
    -- ["client-id", ...]; NULL once the other services are done.
    client_ids JSON NULL,
    actor VARCHAR(64) NOT NULL,
    credits_forfeited BIGINT NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    completed_at DATETIME(3) NULL,
    UNIQUE KEY uq_erasures_user (user_id),
    KEY idx_erasures_pending (completed_at, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The ledger stays append-only, with one exception: the welcome bonus is referenced by the
-- openid, and an erasure replaces that reference by `erased:` and the SHA-256 of the openid
-- (so the same WeChat account following again gets no second welcome bonus). Nothing else of
-- any row may change.
DROP TRIGGER credit_ledger_no_update;
CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger FOR EACH ROW
BEGIN
  IF NOT (OLD.reason = 'follow_bonus' AND NEW.reason = OLD.reason
          AND NEW.reference LIKE 'erased:%' AND OLD.reference NOT LIKE 'erased:%'
          AND NEW.id = OLD.id AND NEW.user_id = OLD.user_id AND NEW.delta = OLD.delta
          AND NEW.balance_after = OLD.balance_after AND NEW.created_at = OLD.created_at) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'credit_ledger is append-only';
  END IF;
END;
