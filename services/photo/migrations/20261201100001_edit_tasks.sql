-- Image edits (SYSTEM.md §5). A task lives here from the request to its end, so any instance can
-- carry it on after another one stopped: every step is taken under a short lease
-- (lease_owner, lease_until), and a step whose lease ran out is taken again.
--
-- status: new        the row exists, credits are being reserved
--         queued     credits held; waiting for the provider's capacity (next_attempt_at)
--         submitting claimed for the provider call (counts as in flight)
--         running    at the provider (provider_task_id), polled at next_attempt_at
--         settling   results stored; the credits for them are being committed
--         succeeded  delivered and paid
--         failed     nothing delivered, nothing charged (error_code)
CREATE TABLE edit_tasks (
    id CHAR(32) NOT NULL,
    user_id BIGINT NOT NULL,
    client_id VARCHAR(128) NOT NULL,
    -- Who asked, for the records of the model calls made for the task.
    openid VARCHAR(64) NOT NULL DEFAULT '',
    request_id VARCHAR(64) NOT NULL DEFAULT '',
    -- The client's idempotency key, or the digest of the request's content. Cleared when the
    -- task fails, so that the same request may be tried again.
    request_key VARCHAR(200) NULL,
    `function` VARCHAR(40) NOT NULL,
    model VARCHAR(64) NOT NULL,
    prompt VARCHAR(2000) NOT NULL,
    -- The provider's parameters of the function, as JSON.
    parameters JSON NOT NULL,
    outputs INT UNSIGNED NOT NULL,
    -- Objects in our storage while the task needs them.
    input_key VARCHAR(255) NOT NULL,
    input_content_type VARCHAR(32) NOT NULL,
    mask_key VARCHAR(255) NULL,
    mask_content_type VARCHAR(32) NULL,
    width INT UNSIGNED NOT NULL,
    height INT UNSIGNED NOT NULL,
    status ENUM('new', 'queued', 'submitting', 'running', 'settling', 'succeeded', 'failed') NOT NULL,
    provider_task_id VARCHAR(64) NULL,
    attempts INT UNSIGNED NOT NULL DEFAULT 0,
    polls INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(3) NOT NULL,
    lease_owner CHAR(32) NULL,
    lease_until DATETIME(3) NULL,
    -- When the provider call was claimed: the provider's submissions-per-second limit counts these.
    submitted_at DATETIME(3) NULL,
    deadline_at DATETIME(3) NOT NULL,
    -- Stored results: [{"key": ..., "width": .., "height": .., "bytes": .., "content_type": ..}].
    results JSON NULL,
    credits_reserved INT UNSIGNED NOT NULL,
    credits_charged INT UNSIGNED NOT NULL DEFAULT 0,
    error_code VARCHAR(64) NULL,
    error_message VARCHAR(500) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    finished_at DATETIME(3) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_edit_tasks_request (client_id, request_key),
    KEY ix_edit_tasks_due (status, next_attempt_at),
    KEY ix_edit_tasks_model (model, status),
    KEY ix_edit_tasks_submitted (model, submitted_at),
    CONSTRAINT ck_edit_tasks_charge CHECK (credits_charged <= credits_reserved)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per provider model: locked (SELECT ... FOR UPDATE) while an instance claims tasks for
-- that model, so that the provider's limits (tasks in flight, submissions per second) hold across
-- every instance.
CREATE TABLE edit_dispatch (
    model VARCHAR(64) NOT NULL,
    PRIMARY KEY (model)
) ENGINE = InnoDB;
