-- Membership expiry reminders through the official account's template messages. A member opts
-- in on the member page; a reminder is sent once per membership end (the end it was sent for is
-- kept, so a renewal earns a new one and a repeated round sends nothing).
ALTER TABLE wechat_users
    ADD COLUMN expiry_reminders BOOLEAN NOT NULL DEFAULT FALSE AFTER member_expire_at,
    ADD COLUMN reminded_for_expiry DATETIME(3) NULL AFTER expiry_reminders,
    ADD KEY idx_wechat_users_reminders (expiry_reminders, member_expire_at);
