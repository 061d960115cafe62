#!/bin/sh
# `redis-server ARGS` runs with ARGS, listening on every interface, protected mode off; any other
# command runs as given.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --bind 0.0.0.0 --protected-mode no "$@"
fi
exec "$@"
