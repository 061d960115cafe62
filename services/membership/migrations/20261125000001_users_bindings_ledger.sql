-- WeChat users, their credits and the append-only credit ledger, app-client bindings, and the
-- record of applied official-account events (which makes WeChat's retries harmless).

CREATE TABLE wechat_users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    openid VARCHAR(64) NOT NULL,
    subscribed TINYINT(1) NOT NULL DEFAULT 1,
    remaining_credits BIGINT NOT NULL DEFAULT 0,
    total_credits BIGINT NOT NULL DEFAULT 0,
    is_member TINYINT(1) NOT NULL DEFAULT 0,
    member_expire_at DATETIME(3) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    last_active_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    unsubscribed_at DATETIME(3) NULL,
    UNIQUE KEY uq_wechat_users_openid (openid),
    CONSTRAINT ck_wechat_users_remaining_non_negative CHECK (remaining_credits >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Every credit change, with a unique (reason, reference): the same effect can never apply twice.
-- remaining_credits of a user always equals the sum of their deltas.
CREATE TABLE credit_ledger (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    delta BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    reason VARCHAR(32) NOT NULL,
    reference VARCHAR(128) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_credit_ledger_reference (reason, reference),
    KEY idx_credit_ledger_user (user_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per app install. Its id is the QR_SCENE scene_id of the client's QR code.
CREATE TABLE client_bindings (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    client_id VARCHAR(64) NOT NULL,
    -- SHA-256 of the client's bearer token; the token itself is never stored.
    client_token_hash BINARY(32) NOT NULL,
    status ENUM('pending', 'completed') NOT NULL DEFAULT 'pending',
    openid VARCHAR(64) NULL,
    user_id BIGINT NULL,
    ticket VARCHAR(255) NULL,
    qr_url VARCHAR(255) NULL,
    expire_at DATETIME(3) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    completed_at DATETIME(3) NULL,
    UNIQUE KEY uq_client_bindings_client (client_id),
    UNIQUE KEY uq_client_bindings_token (client_token_hash),
    KEY idx_client_bindings_openid (openid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Official-account events already applied, keyed like WeChat's retries (openid, CreateTime,
-- event, key): a retried delivery finds its row and changes nothing.
CREATE TABLE wechat_events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    dedup_key VARCHAR(191) NOT NULL,
    openid VARCHAR(64) NOT NULL,
    event VARCHAR(16) NOT NULL,
    event_key VARCHAR(128) NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    detail VARCHAR(32) NOT NULL DEFAULT '',
    received_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_wechat_events_dedup (dedup_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
