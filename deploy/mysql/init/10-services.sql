-- One schema and one user per service, with rights on its own schema only (SYSTEM.md §7).
-- No user here holds SUPER or READ ONLY ADMIN, so the read-only replica refuses their writes.
-- Passwords are the local defaults; production sets its own through the deploy's secrets.
CREATE DATABASE IF NOT EXISTS xintu_membership CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS xintu_photo CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS xintu_stats CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- Each service has two users: `<service>_migrate` owns the schema and runs its migrations (the
-- explicit `migrate` step); `<service>` is what the running service connects as: rows only, no
-- DDL, so it cannot drop a table or the triggers that keep the credit ledger append-only.
CREATE USER IF NOT EXISTS 'membership_migrate'@'%' IDENTIFIED BY 'membership-migrate-local';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, TRIGGER
  ON xintu_membership.* TO 'membership_migrate'@'%';
CREATE USER IF NOT EXISTS 'membership'@'%' IDENTIFIED BY 'membership-local';
GRANT SELECT, INSERT, UPDATE, DELETE ON xintu_membership.* TO 'membership'@'%';

CREATE USER IF NOT EXISTS 'photo_migrate'@'%' IDENTIFIED BY 'photo-migrate-local';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, TRIGGER
  ON xintu_photo.* TO 'photo_migrate'@'%';
CREATE USER IF NOT EXISTS 'photo'@'%' IDENTIFIED BY 'photo-local';
GRANT SELECT, INSERT, UPDATE, DELETE ON xintu_photo.* TO 'photo'@'%';

CREATE USER IF NOT EXISTS 'stats_migrate'@'%' IDENTIFIED BY 'stats-migrate-local';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, TRIGGER
  ON xintu_stats.* TO 'stats_migrate'@'%';
CREATE USER IF NOT EXISTS 'stats'@'%' IDENTIFIED BY 'stats-local';
GRANT SELECT, INSERT, UPDATE, DELETE ON xintu_stats.* TO 'stats'@'%';

-- Read-only replication status (SHOW REPLICA STATUS) for the replica lag gauges; it shows no data.
GRANT SLAVE MONITOR ON *.* TO 'membership'@'%', 'photo'@'%', 'stats'@'%';
