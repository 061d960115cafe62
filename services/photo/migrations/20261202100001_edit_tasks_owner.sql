-- An edit task belongs to the WeChat user on the app client that asked for it (user_id and
-- client_id, both recorded since the table was made). A client may be re-bound to another user
-- (a shared PC): the idempotency key is then that user's own, so the same key from the new user
-- makes a task of theirs instead of returning the first user's.
ALTER TABLE edit_tasks
    DROP INDEX uq_edit_tasks_request,
    ADD UNIQUE KEY uq_edit_tasks_request (client_id, user_id, request_key);
