#!/bin/sh
# First start (an empty data directory): makes the system tables, gives root the password of
# MARIADB_ROOT_PASSWORD (root@localhost and root@'%'), runs each executable *.sh of
# /docker-entrypoint-initdb.d with this environment against a server that listens on its socket
# only, then stops it. Every start then runs the server in the foreground. A failed init script
# fails the first start and leaves no half-made data directory behind.
set -eu
DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

if [ ! -d "$DATADIR/mysql" ]; then
  [ -n "${MARIADB_ROOT_PASSWORD:-}" ] || { echo "$0: MARIADB_ROOT_PASSWORD is not set" >&2; exit 1; }
  case $MARIADB_ROOT_PASSWORD in
    *\'* | *\\*) echo "$0: MARIADB_ROOT_PASSWORD may not hold a quote or a backslash" >&2; exit 1 ;;
  esac
  mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  mariadbd --datadir="$DATADIR" --skip-networking --socket="$SOCKET" &
  pid=$!
  for _ in $(seq 1 300); do
    mariadb-admin -S "$SOCKET" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  # Not in the binary log: each server makes its own root, and a replica must start from the
  # primary's first GTID with none of its own.
  mariadb -S "$SOCKET" -uroot <<SQL
SET SESSION sql_log_bin=0;
ALTER USER 'root'@'localhost' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';
CREATE USER 'root'@'%' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
SQL
  status=0
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -x "$script" ] || continue
    echo "$0: running $script"
    "$script" || { status=$?; break; }
  done
  mariadb-admin -S "$SOCKET" -uroot -p"$MARIADB_ROOT_PASSWORD" shutdown
  wait "$pid" || true
  if [ "$status" -ne 0 ]; then
    echo "$0: $script failed; the data directory is emptied" >&2
    find "$DATADIR" -mindepth 1 -delete
    exit "$status"
  fi
fi
exec "$@" --datadir="$DATADIR" --socket="$SOCKET"
