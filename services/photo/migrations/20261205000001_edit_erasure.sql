-- A user who asks for deletion has their personal data erased here (ImageEditService.ForgetUser):
-- the stored objects of their tasks are deleted, and each row keeps only what the credit records
-- need (id, user, function, model, status, credits, times). erased_at marks a row done, so that
-- asking again changes and counts nothing more.
ALTER TABLE edit_tasks
    ADD COLUMN erased_at DATETIME(3) NULL AFTER results_purged_at,
    ADD KEY ix_edit_tasks_user (user_id, erased_at);
