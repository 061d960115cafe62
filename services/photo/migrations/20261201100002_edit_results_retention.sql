-- Stored edit results are deleted some time after their task succeeded (edit_result_retention_secs):
-- the clients keep what they want in their albums, and the volume must not grow without end.
-- results_purged_at tells a client that the results were there and are gone.
ALTER TABLE edit_tasks
    ADD COLUMN results_purged_at DATETIME(3) NULL AFTER results,
    ADD KEY ix_edit_tasks_finished (status, finished_at);
