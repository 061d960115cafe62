#!/bin/sh
# Replication, set up on a server's first start: the MariaDB image runs the executable *.sh of
# /docker-entrypoint-initdb.d with the container's environment (deploy/local/mariadb-pair.sh
# runs this script too, on the local servers).
#   primary (MYSQL_REPLICATION_PRIMARY_HOST unset): creates the replication user `repl`, which
#     can read the binlog and nothing else;
#   replica (MYSQL_REPLICATION_PRIMARY_HOST set, and _PORT, 3306 by default): follows that
#     primary from its first GTID (its binlog holds the schemas and users, so no dump is needed).
# Both take the password from MYSQL_REPLICATION_PASSWORD; no file holds one. The script exits
# non-zero, so the server's first start fails, when the password is unset, holds a quote or a
# backslash, or, with XINTU_ENV=production, is a template's placeholder or shorter than 16.
set -eu

refuse() {
  echo "$0: MYSQL_REPLICATION_PASSWORD $1" >&2
  exit 1
}

password=${MYSQL_REPLICATION_PASSWORD:-}
[ -n "$password" ] || refuse "is not set"
case $password in
  *\'* | *\\*) refuse "may not hold a quote or a backslash" ;;
esac
if [ "${XINTU_ENV:-}" = production ]; then
  case $(printf '%s' "$password" | tr '[:upper:]' '[:lower:]') in
    *change-me* | *changeme* | *change_me* | *local-only* | *placeholder* | *example* | *sandbox*)
      refuse "is a template's placeholder" ;;
  esac
  [ "${#password}" -ge 16 ] || refuse "is shorter than 16 characters"
fi

# Root on this server (`client`).
. "$(dirname "$0")/root-client.inc"

if [ -z "${MYSQL_REPLICATION_PRIMARY_HOST:-}" ]; then
  client <<SQL
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY '$password';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
SQL
else
  client <<SQL
SET GLOBAL gtid_slave_pos='';
CHANGE MASTER TO MASTER_HOST='$MYSQL_REPLICATION_PRIMARY_HOST',
  MASTER_PORT=${MYSQL_REPLICATION_PRIMARY_PORT:-3306}, MASTER_USER='repl',
  MASTER_PASSWORD='$password', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=2;
START SLAVE;
SQL
fi
