-- The credit ledger is append-only in the database itself: no UPDATE or DELETE of a ledger row
-- succeeds, whoever asks (the service's runtime user cannot drop these triggers: it has no DDL).
-- A correction is a new row, never an edit.
CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger FOR EACH ROW
  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'credit_ledger is append-only';
CREATE TRIGGER credit_ledger_no_delete BEFORE DELETE ON credit_ledger FOR EACH ROW
  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'credit_ledger is append-only';

-- Grants by other services leave an audit row, like an operator's adjustment, with the
-- reference of their ledger row.
ALTER TABLE admin_audit ADD COLUMN reference VARCHAR(128) NULL AFTER reason;
