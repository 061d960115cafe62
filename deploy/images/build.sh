#!/usr/bin/env bash
# Images without a registry, for tests and for operators who have none:
#   deploy/images/build.sh           the Debian base, then xintu/<bin>:latest for the four service
#                                    binaries and the sandbox, from this machine's release builds
#                                    (or, with XINTU_IMAGE_BINARIES=DIR, from the binaries in DIR
#                                    as they are: nothing is built),
#                                    and the infrastructure: xintu/mariadb, xintu/redis and
#                                    xintu/nginx (deploy/images/*) and xintu/lighttpd
#                                    (deploy/lighttpd), all :latest
#   deploy/images/build.sh base      the base alone
#   deploy/images/build.sh infra     the base and the infrastructure images
#   deploy/images/build.sh services  the base and the service images
# The base is Debian bookworm made by debootstrap (minbase) and imported with `docker import`; its
# root filesystem is cached under $XINTU_IMAGE_CACHE (default ~/.cache/xintu/images), keyed by the
# hash of its recipe below, and made again only when the recipe changes. The service images are
# deploy/images/service.Dockerfile on that base: the same runtime stage as the registry path
# (deploy/docker/Dockerfile), with the binary built here rather than in a builder stage.
# Needs a running Docker engine, debootstrap, and the binaries' runtime: glibc of bookworm, which
# is what this machine builds against.
set -Eeuo pipefail
trap 'echo "[images] failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${XINTU_IMAGE_CACHE:-$HOME/.cache/xintu/images}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/xintu/target}
# Where the service images' binaries come from: given, they are used as they are.
BINARIES_DIR=${XINTU_IMAGE_BINARIES:-}
DATA=${XINTU_DATA_DIR:-$HOME/.cache/xintu/data}
export PATH="$PATH:/usr/sbin:/sbin"
# The classic builder: no BuildKit plugin is installed from Debian's packages.
export DOCKER_BUILDKIT=0

# The base's recipe: change any of it and the base is made again.
SUITE=bookworm
VARIANT=minbase
MIRROR=${XINTU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
RECIPE="debootstrap --variant=$VARIANT $SUITE $MIRROR; apt lists and caches removed"
BASE_HASH=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)
BASE=xintu/debian:$SUITE-$BASE_HASH

log() { printf '\033[1m[images]\033[0m %s\n' "$*" >&2; }

# docker build, quiet: its output (and the client's notice about the classic builder) only when
# it fails.
# Every image made here carries the label, so the copies a rebuild replaces (left untagged) can be
# removed without touching anybody else's images: each build would otherwise keep its old layers
# on disk, run after run.
IMAGE_LABEL=org.xintu.built-by=deploy-images
build_image() {
  local out
  out=$(docker build -q --label "$IMAGE_LABEL" "$@" 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
}

prune_replaced() {
  docker image prune -f --filter "label=$IMAGE_LABEL" >/dev/null
}

build_base() {
  if docker image inspect "$BASE" >/dev/null 2>&1; then
    docker tag "$BASE" "xintu/debian:$SUITE"
    return
  fi
  mkdir -p "$CACHE"
  local tarball=$CACHE/debian-$SUITE-$BASE_HASH.tar
  if [ ! -s "$tarball" ]; then
    log "debootstrap $SUITE ($VARIANT; about a minute)"
    local rootfs
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    debootstrap --variant="$VARIANT" "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$rootfs"; exit 1; }
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $BASE"
  docker import "$tarball" "$BASE" >/dev/null
  docker tag "$BASE" "xintu/debian:$SUITE"
}

# The build context of one binary: the binary as `app`, and `data/` (the photo service's model
# and location data, empty for the others; never the sample photos).
context_of() {
  local bin=$1 dir=$CACHE/context/$1
  rm -rf "$dir"
  mkdir -p "$dir/data"
  cp "${BINARIES_DIR:-$CARGO_TARGET_DIR/release}/$bin" "$dir/app"
  if [ "$bin" = photo-svc ]; then
    cp -r "$DATA/models" "$DATA/geo" "$dir/data/"
    # The service's binary copy of the parsed location data, which tests leave beside the files:
    # its key is the files' times, which this copy does not keep, so an image would carry it
    # unused. The image holds the data files alone, whatever ran on this machine before.
    rm -f "$dir/data/geo/.locator-prepared.bin" "$dir/data/geo/".locator-prepared.bin.*.tmp
  fi
  printf '%s' "$dir"
}

# The images' binaries, one per package of the same name.
BINARIES=(gateway membership-svc photo-svc stats-svc sandbox)

build_binaries() {
  log "release builds"
  local args=() bin
  for bin in "${BINARIES[@]}"; do args+=(-p "$bin" --bin "$bin"); done
  (cd "$ROOT" && cargo build --release --locked "${args[@]}")
}

build_services() {
  if [ -n "$BINARIES_DIR" ]; then
    log "the binaries in $BINARIES_DIR"
  else
    build_binaries
  fi
  local bin
  for bin in "${BINARIES[@]}"; do
    log "xintu/$bin:latest"
    build_image -t "xintu/$bin:latest" --build-arg "BASE=$BASE" \
      -f "$ROOT/deploy/images/service.Dockerfile" "$(context_of "$bin")"
  done
}

# MariaDB, Redis and nginx from Debian's packages, with the conventions compose relies on, and the
# web tier's lighttpd image on the same base.
build_infra() {
  local name
  for name in mariadb redis nginx; do
    log "xintu/$name:latest"
    build_image -t "xintu/$name:latest" --build-arg "BASE=$BASE" "$ROOT/deploy/images/$name"
  done
  log "xintu/lighttpd:latest"
  build_image -t xintu/lighttpd:latest --build-arg "BASE=$BASE" \
    -f "$ROOT/deploy/lighttpd/Dockerfile" "$ROOT"
}

case "${1:-all}" in
  base) build_base ;;
  infra) build_base; build_infra; prune_replaced ;;
  services) build_base; build_services; prune_replaced ;;
  all) build_base; build_services; build_infra; prune_replaced ;;
  *) echo "usage: $0 [base|infra|services|all]" >&2; exit 2 ;;
esac
