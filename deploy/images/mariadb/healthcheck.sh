#!/bin/sh
# The probes compose uses, as the official image names them:
#   --connect              the server answers on its socket
#   --innodb_initialized   InnoDB has started (the server's tables can be read)
#   --replication_io       this replica's IO thread runs
#   --replication_sql      this replica's SQL thread runs
set -eu
SOCKET=/run/mysqld/mysqld.sock
client() { mariadb -S "$SOCKET" -uroot -p"${MARIADB_ROOT_PASSWORD:-}" "$@"; }
q() { client -N -B -e "$1"; }
replica_status() { client -e "SHOW REPLICA STATUS\G"; }
for check in "$@"; do
  case $check in
    --connect) q "SELECT 1" >/dev/null ;;
    --innodb_initialized)
      [ "$(q "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE='InnoDB' AND SUPPORT IN ('YES','DEFAULT')")" = 1 ] ;;
    --replication_io)
      replica_status | grep -q "Slave_IO_Running: Yes" ;;
    --replication_sql)
      replica_status | grep -q "Slave_SQL_Running: Yes" ;;
    *) echo "$0: unknown check $check" >&2; exit 2 ;;
  esac
done
