-- Callers whose identity was erased (ForgetCaller), by SHA-256 of 'openid:<openid>' or
-- 'client:<client id>', never the id itself: records of theirs that arrive afterwards (batches
-- still on their way) are blanked on arrival. Looked at for a day after the erasure, then purged.
CREATE TABLE erased_callers (
    digest BINARY(32) NOT NULL,
    erased_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (digest),
    KEY ix_erased_callers_erased_at (erased_at)
) ENGINE = InnoDB;
