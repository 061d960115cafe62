#!/usr/bin/env bash
# MariaDB primary + two GTID replicas on one host, no Docker or systemd: each server has its own
# data directory, socket and port under $XINTU_RUN_DIR/mariadb (a link to memory, see below).
#   mariadb-pair.sh up     start fresh servers (wipes $XINTU_RUN_DIR/mariadb)
#   mariadb-pair.sh down   stop them and remove their files
# The second replica ("lagging") exists so tests can stop its SQL thread without disturbing
# others. Ports: XINTU_MYSQL_PRIMARY_PORT, XINTU_MYSQL_REPLICA_PORT, XINTU_MYSQL_LAGGING_PORT;
# the replication user's password: MYSQL_REPLICATION_PASSWORD (a local default when unset).
set -Eeuo pipefail
trap 'echo "[mariadb-pair] failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
RUN_DIR=${XINTU_RUN_DIR:-/tmp/xintu}
LINK=$RUN_DIR/mariadb
# The servers' files (data, binary and relay logs) are kept in memory where /dev/shm is a tmpfs
# with room: every test makes and migrates a database of its own, which both replicas replay,
# and on a disk the file creations and syncs of that DDL took half of the servers' CPU (the
# whole test suite on the 2-core CI machine: 163-176 s, the servers 72 s of CPU; in memory
# 126 s and 38 s). A full run leaves some 2 GiB there; nothing is kept past `down`.
# XINTU_MYSQL_ON_DISK=1 keeps them under the run directory.
IN_MEMORY_MIN_FREE_GIB=6
# Where the last `up` put them (the link's target, or the directory itself).
BASE=$(readlink -m "$LINK")
P_PORT=${XINTU_MYSQL_PRIMARY_PORT:-3316}
R_PORT=${XINTU_MYSQL_REPLICA_PORT:-3317}
L_PORT=${XINTU_MYSQL_LAGGING_PORT:-3318}
HERE=$(cd "$(dirname "$0")" && pwd)

write_cnf() { # role port server_id extra
  cat > "$BASE/$1/my.cnf" <<CNF
[mariadbd]
datadir=$BASE/$1/data
port=$2
bind-address=127.0.0.1
socket=$BASE/$1/mysqld.sock
pid-file=$BASE/$1/mysqld.pid
log-error=$BASE/$1/log/error.log
tmpdir=$BASE/$1/tmp
server_id=$3
log_bin=$BASE/$1/log/bin
binlog_format=ROW
gtid_strict_mode=1
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
innodb_buffer_pool_size=128M
innodb_flush_log_at_trx_commit=2
sync_binlog=0
max_connections=500
$4
CNF
}

# Servers started from this base: by pid file, and by command line for any whose pid file is gone
# (a run killed half-way). One left running would hold its port and write into the next run's
# fresh data directory when it finally shuts down.
server_pids() {
  for role in l r p; do
    [ -f "$BASE/$role/mysqld.pid" ] && cat "$BASE/$role/mysqld.pid"
  done
  pgrep -f -- "--defaults-file=$BASE/[prl]/my.cnf" || true
}

down() {
  stop_servers
  remove_files
}

stop_servers() {
  local pids; pids=$(server_pids | sort -u)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 300); do
    # shellcheck disable=SC2086
    kill -0 $pids 2>/dev/null || return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -9 $pids 2>/dev/null || true
}

# mariadb-install-db's own message names no cause; the server's error log does. A failed install
# is shown with both and tried once more on an empty data directory.
install_db() { # role
  local role=$1 try
  for try in 1 2; do
    rm -rf "${BASE:?}/$role/data" && install -d -o mysql -g mysql "$BASE/$role/data"
    mariadb-install-db --defaults-file="$BASE/$role/my.cnf" --user=mysql --skip-test-db \
      --auth-root-authentication-method=socket > "$BASE/$role/log/install.log" 2>&1 && return 0
    echo "[mariadb-pair] installing $role's system tables failed (try $try); its server log:" >&2
    tail -30 "$BASE/$role/log/error.log" >&2 || true
  done
  tail -30 "$BASE/$role/log/install.log" >&2
  return 1
}

sock() { echo "$BASE/$1/mysqld.sock"; }

# Where `up` puts the servers' files: memory when it has room (above), else the run directory.
choose_base() {
  local shm=/dev/shm free_kib
  if [ "${XINTU_MYSQL_ON_DISK:-0}" != 1 ] && [ "$(stat -f -c %T "$shm" 2>/dev/null)" = tmpfs ]; then
    free_kib=$(df -Pk "$shm" | awk 'NR == 2 { print $4 }')
    if [ "$free_kib" -ge $((IN_MEMORY_MIN_FREE_GIB * 1024 * 1024)) ]; then
      # One directory per run directory: two setups on other ports do not share it.
      echo "$shm/xintu-mariadb${RUN_DIR//\//-}"
      return
    fi
  fi
  echo "$LINK"
}

# Stopped servers' files, and the link to them.
remove_files() {
  rm -rf "${BASE:?}"
  rm -rf "$LINK"
}

up() {
  down
  BASE=$(choose_base)
  mkdir -p "$RUN_DIR" "$BASE"/{p,r,l}/{data,log,tmp}
  [ "$BASE" = "$LINK" ] || ln -sfn "$BASE" "$LINK"
  # Migrations create triggers; without SUPER that needs this while the binlog is on.
  write_cnf p "$P_PORT" 1 "log_bin_trust_function_creators=1"
  for role in r l; do
    port=$R_PORT; id=2
    [ "$role" = l ] && { port=$L_PORT; id=3; }
    write_cnf "$role" "$port" "$id" "relay_log=$BASE/$role/log/relay
log_slave_updates=1
read_only=1"
  done
  chown -R mysql:mysql "$BASE"
  for role in p r l; do
    install_db "$role"
    nohup mariadbd --defaults-file="$BASE/$role/my.cnf" --user=mysql \
      > "$BASE/$role/log/stdout.log" 2>&1 &
  done
  for role in p r l; do
    for _ in $(seq 1 300); do
      mariadb-admin -S "$(sock $role)" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    mariadb-admin -S "$(sock $role)" ping >/dev/null || { cat "$BASE/$role/log/error.log"; exit 1; }
  done
  # Users and schemas are made on the primary and reach the replicas through the binlog. The
  # replication user and the replicas' CHANGE MASTER come from the deploy's own init script, as
  # root on each server's socket, with the password from the environment (a local default).
  local repl=$HERE/../mysql/init/00-replication.sh
  export MYSQL_REPLICATION_PASSWORD=${MYSQL_REPLICATION_PASSWORD:-local-only-replication}
  MARIADB_ROOT_PASSWORD='' XINTU_MARIADB_SOCKET=$(sock p) MYSQL_REPLICATION_PRIMARY_HOST='' "$repl"
  # The services' schemas and users, by the deploy's own script, with the local passwords the
  # test environment's database URLs carry.
  MEMBERSHIP_DB_PASSWORD=membership-local MEMBERSHIP_MIGRATE_DB_PASSWORD=membership-migrate-local \
    PHOTO_DB_PASSWORD=photo-local PHOTO_MIGRATE_DB_PASSWORD=photo-migrate-local \
    STATS_DB_PASSWORD=stats-local STATS_MIGRATE_DB_PASSWORD=stats-migrate-local \
    XINTU_ENV='' MARIADB_ROOT_PASSWORD='' XINTU_MARIADB_SOCKET=$(sock p) \
    "$HERE/../mysql/init/10-services.sh"
  mariadb -S "$(sock p)" < "$HERE/local-users.sql"
  for role in r l; do
    MARIADB_ROOT_PASSWORD='' XINTU_MARIADB_SOCKET=$(sock $role) MYSQL_REPLICATION_PRIMARY_HOST=127.0.0.1 \
      MYSQL_REPLICATION_PRIMARY_PORT=$P_PORT "$repl"
  done
  # The lagging replica's controller may stop and start replication there, nothing else.
  # Made locally without binlogging, so no replica-side GTID is ever created.
  mariadb -S "$(sock l)" <<SQL
SET SESSION sql_log_bin=0;
CREATE USER 'replctl'@'127.0.0.1' IDENTIFIED BY 'replctlpass';
GRANT REPLICATION SLAVE ADMIN ON *.* TO 'replctl'@'127.0.0.1';
SQL
  pos=$(mariadb -S "$(sock p)" -N -e "SELECT @@gtid_binlog_pos")
  for role in r l; do
    reached=$(mariadb -S "$(sock $role)" -N -e "SELECT MASTER_GTID_WAIT('$pos', 30)")
    [ "$reached" = 0 ] || { echo "replica $role did not catch up" >&2; exit 1; }
  done
  echo "mariadb primary 127.0.0.1:$P_PORT, replicas 127.0.0.1:$R_PORT and 127.0.0.1:$L_PORT (gtid $pos)"
}

"${@:-up}"
