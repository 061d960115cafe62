-- Local and CI only: the test suite's user, which creates and drops one database per test.
-- Broad rights on data, but no SUPER / READ ONLY ADMIN, so replicas stay read-only for it too.
CREATE USER IF NOT EXISTS 'tester'@'127.0.0.1' IDENTIFIED BY 'testerpass';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES,
  CREATE TEMPORARY TABLES, LOCK TABLES, TRIGGER, SLAVE MONITOR ON *.* TO 'tester'@'127.0.0.1';
