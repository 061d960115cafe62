-- Batches of records already stored, by the id the sender gave them: a batch sent again (its
-- answer came too late, the sender tried again) is stored once. Kept for a day; a sender gives up
-- on a batch long before that.
CREATE TABLE record_batches (
    batch_id CHAR(32) NOT NULL,
    received_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (batch_id),
    KEY ix_record_batches_received (received_at)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;
