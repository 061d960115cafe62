#!/bin/sh
# First start of the compose replica: follow the primary from its first GTID (the primary's
# binlog holds the schema and user creation, so no dump is needed), as deploy/local does.
set -eu
mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" <<SQL
SET GLOBAL gtid_slave_pos='';
CHANGE MASTER TO MASTER_HOST='mysql-primary', MASTER_PORT=3306, MASTER_USER='repl',
  MASTER_PASSWORD='replpass', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=2;
START SLAVE;
SQL
