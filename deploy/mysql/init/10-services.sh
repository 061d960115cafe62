#!/bin/sh
# One schema and one user per service, with rights on its own schema only, made on the primary's
# first start (the MariaDB image runs the executable *.sh of /docker-entrypoint-initdb.d with the
# container's environment; deploy/local/mariadb-pair.sh runs it on the local primary). No user
# here holds SUPER or READ ONLY ADMIN, so the read-only replica refuses their writes.
#
# Each service has two users: `<service>_migrate` owns the schema and runs its migrations (the
# explicit `migrate` step); `<service>` is what the running service connects as: rows only, no
# DDL, so it cannot drop a table or the triggers that keep the credit ledger append-only.
# Their passwords come from the same variables the services' database URLs are built from
# (MEMBERSHIP_DB_PASSWORD, MEMBERSHIP_MIGRATE_DB_PASSWORD, and so on for PHOTO and STATS); no file
# holds one. The script exits non-zero, so the first start fails, when one is unset or holds a
# quote, a backslash or a URL's reserved character, or, with XINTU_ENV=production, is a
# template's placeholder or shorter than 16 characters.
set -eu

refuse() {
  echo "$0: $1 $2" >&2
  exit 1
}

# The password in variable $1, checked.
password_of() {
  eval "value=\${$1:-}"
  [ -n "$value" ] || refuse "$1" "is not set"
  case $value in
    *\'* | *\\* | *@* | *:* | */* | *\?* | *\#* | *%*)
      refuse "$1" "may not hold a quote, a backslash or any of @ : / ? # %" ;;
  esac
  if [ "${XINTU_ENV:-}" = production ]; then
    case $(printf '%s' "$value" | tr '[:upper:]' '[:lower:]') in
      *change-me* | *changeme* | *change_me* | *-local | *local-only* | *placeholder* | *example* | *sandbox*)
        refuse "$1" "is a template's placeholder" ;;
    esac
    [ "${#value}" -ge 16 ] || refuse "$1" "is shorter than 16 characters"
  fi
  printf '%s' "$value"
}

# Every password is checked before anything is sent.
membership=$(password_of MEMBERSHIP_DB_PASSWORD)
membership_migrate=$(password_of MEMBERSHIP_MIGRATE_DB_PASSWORD)
photo=$(password_of PHOTO_DB_PASSWORD)
photo_migrate=$(password_of PHOTO_MIGRATE_DB_PASSWORD)
stats=$(password_of STATS_DB_PASSWORD)
stats_migrate=$(password_of STATS_MIGRATE_DB_PASSWORD)

# Root on this server (`client`).
. "$(dirname "$0")/root-client.inc"

client <<SQL
CREATE DATABASE IF NOT EXISTS xintu_membership CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS xintu_photo CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS xintu_stats CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE USER IF NOT EXISTS 'membership_migrate'@'%' IDENTIFIED BY '$membership_migrate';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, TRIGGER
  ON xintu_membership.* TO 'membership_migrate'@'%';
CREATE USER IF NOT EXISTS 'membership'@'%' IDENTIFIED BY '$membership';
GRANT SELECT, INSERT, UPDATE, DELETE ON xintu_membership.* TO 'membership'@'%';

CREATE USER IF NOT EXISTS 'photo_migrate'@'%' IDENTIFIED BY '$photo_migrate';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, TRIGGER
  ON xintu_photo.* TO 'photo_migrate'@'%';
CREATE USER IF NOT EXISTS 'photo'@'%' IDENTIFIED BY '$photo';
GRANT SELECT, INSERT, UPDATE, DELETE ON xintu_photo.* TO 'photo'@'%';

CREATE USER IF NOT EXISTS 'stats_migrate'@'%' IDENTIFIED BY '$stats_migrate';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, TRIGGER
  ON xintu_stats.* TO 'stats_migrate'@'%';
CREATE USER IF NOT EXISTS 'stats'@'%' IDENTIFIED BY '$stats';
GRANT SELECT, INSERT, UPDATE, DELETE ON xintu_stats.* TO 'stats'@'%';

-- Read-only replication status (SHOW REPLICA STATUS) for the replica lag gauges; it shows no data.
GRANT SLAVE MONITOR ON *.* TO 'membership'@'%', 'photo'@'%', 'stats'@'%';
SQL
