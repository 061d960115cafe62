#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that face the internet (tests/fuzz), with libFuzzer on
# the stable toolchain: the targets are built with LLVM's sanitizer-coverage pass, which
# libfuzzer-sys's libFuzzer reads. No sanitizer is needed: the code is safe Rust, and each
# target caps its own memory (the `cap` allocator), so an allocation over the cap aborts.
#
#   deploy/local/fuzz.sh build
#   deploy/local/fuzz.sh smoke [scale]        every target from the committed corpus, as many at
#                                             once as there are cores, a fixed number of
#                                             executions (3 to 12 s each here, times `scale`,
#                                             default 1) from a fixed seed: repeatable rather
#                                             than exploring; part of `xintu test`. Built apart
#                                             (build_smoke below): coverage of the workspace's
#                                             own crates only
#   deploy/local/fuzz.sh smoke-build          the smoke's build alone (`xintu test` runs it beside
#                                             the tests, then `smoke-run`)
#   deploy/local/fuzz.sh smoke-run [scale]    the smoke on what smoke-build made
#   deploy/local/fuzz.sh run TARGET [runs]    one target for `runs` executions (default ten
#                                             million) on a corpus kept under the cache
#   deploy/local/fuzz.sh targets
#
# Findings are written under $XINTU_FUZZ_DIR/artifacts (crash-*, timeout-*, oom-*): replay one
# with `$BIN/TARGET FILE`, then fix it with a regression test beside the code it concerns.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$PATH:$HOME/.cargo/bin"
FUZZ_DIR=${XINTU_FUZZ_DIR:-$HOME/.cache/xintu/fuzz}
# `build` (every crate instrumented) apart from the main target directory: it shares no artefact
# with it.
TARGET_DIR=${XINTU_FUZZ_TARGET_DIR:-$HOME/.cache/xintu/fuzz-target}
# The smoke's build lives beside the test build, whose dependencies it reuses.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/xintu/target}
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN=$TARGET_DIR/$HOST/fuzz
CORPUS=$ROOT/tests/fuzz/corpus
DICTS=$ROOT/tests/fuzz/dict
TARGETS=(wechat_xml wechat_push pay_notify photo_decode edit_form api_queries session_cookie)
# Executions per target in the smoke: 3 to 12 s each on a 2-core machine, two at a time (the dev
# build's dependencies are unoptimised: about four times slower than a release build, which ran
# four times these in 2 to 8 s).
declare -A SMOKE_RUNS=([wechat_xml]=375000 [wechat_push]=175000 [pay_notify]=300000
  [photo_decode]=60000 [edit_form]=125000 [api_queries]=300000 [session_cookie]=200000)

log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*" >&2; }

build() {
  log "building the instrumented targets"
  # --target keeps the flags off build scripts and proc macros, which libFuzzer never links.
  RUSTFLAGS=$(sh "$ROOT/deploy/local/fuzz-rustc.sh" --flags) cargo build --locked --profile fuzz \
    --target "$HOST" --target-dir "$TARGET_DIR" -p fuzz --bins
}

# The smoke's build: the test build (`xintu test` runs the smoke after it; the dev profile) made
# every dependency, and only the workspace's crates are built again, instrumented by
# deploy/local/fuzz-rustc.sh as `build` instruments every crate. On a new machine that is about 2
# minutes of building where `build` takes 8 (and a release build of every dependency, 8 more).
# Coverage then guides the smoke through the workspace's own code only, which is all a
# fixed-seed run from the committed corpus asks; `run`, which explores, has every crate
# instrumented and optimised.
build_smoke() {
  check_features_shared
  log "building the targets for the smoke (the workspace's crates instrumented)"
  # Cargo knows a wrapper by its path, not by what it does: a copy named by the hash of its
  # content makes a change of the flags rebuild the crates they apply to.
  local wrapper bins=() target
  wrapper=$CARGO_TARGET_DIR/fuzz-rustc-$(sha256sum "$ROOT/deploy/local/fuzz-rustc.sh" | cut -c1-12).sh
  [ -x "$wrapper" ] || install -D -m 755 "$ROOT/deploy/local/fuzz-rustc.sh" "$wrapper"
  for target in "${TARGETS[@]}"; do bins+=(--bin "$target"); done
  # The whole workspace selected, its targets built: cargo resolves the dependencies' features for
  # the packages selected, as the test build does.
  (cd "$ROOT" && RUSTC_WORKSPACE_WRAPPER=$wrapper cargo build --locked --workspace "${bins[@]}")
}

# The smoke reuses the test build's dependencies only where cargo gives each the same features in
# both builds: the test build resolves them with the workspace's dev-dependencies, the smoke's
# without. A dependency that differs is built again, and so is everything above it.
check_features_shared() {
  local tree=(cargo tree --locked --offline --workspace --prefix none --format '{p} {f}')
  local smoke tests differing
  # Registry crates only (a workspace crate prints its path, and is built for the smoke anyway).
  smoke=$(cd "$ROOT" && "${tree[@]}" -e normal,build | grep -v ' (/' | sed 's/ (\*)$//' | sort -u)
  tests=$(cd "$ROOT" && "${tree[@]}" -e normal,build,dev | grep -v ' (/' | sed 's/ (\*)$//' | sort -u)
  differing=$(comm -23 <(printf '%s\n' "$smoke") <(printf '%s\n' "$tests"))
  if [ -n "$differing" ]; then
    log "these dependencies have fewer features in the smoke's build than in the test build:"
    printf '%s\n' "$differing" >&2
    log "give tests/fuzz/Cargo.toml the test build's features, or the smoke builds them again"
    exit 1
  fi
}

# api_queries reads the geodata where the photo service would: GEODATA_DIR, by default where
# deploy/local/fetch-geodata.sh writes it.
export GEODATA_DIR=${GEODATA_DIR:-${XINTU_DATA_DIR:-$HOME/.cache/xintu/data}/geo}

# The options every run shares: a hang after 10 s, 2 GiB of RSS at most (the caps inside are
# lower), findings kept apart from the corpus.
fuzz_options() {
  local target=$1
  mkdir -p "$FUZZ_DIR/artifacts"
  local options=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$FUZZ_DIR/artifacts/$target-"
    -print_final_stats=1)
  [ -f "$DICTS/$target.dict" ] && options+=(-dict="$DICTS/$target.dict")
  printf '%s\n' "${options[@]}"
}

# One smoke target: a fixed number of executions from a fixed seed. New inputs go to a scratch
# directory; the committed corpus is only read. The log is kept for a failure.
smoke_one() {
  local target=$1 scale=$2 scratch=$3
  local runs=$(( ${SMOKE_RUNS[$target]} * scale ))
  # Failed until it is seen to pass, whatever stops it on the way.
  touch "$scratch/$target.failed"
  mapfile -t options < <(fuzz_options "$target")
  mkdir -p "$scratch/$target"
  if "$BIN/$target" "${options[@]}" -seed=1 -runs="$runs" "$scratch/$target" "$CORPUS/$target" \
    >"$scratch/$target.log" 2>&1; then
    log "$target: $(grep -E '^Done' "$scratch/$target.log")"
    rm "$scratch/$target.failed"
  fi
}

# The targets side by side, as many at once as there are cores: each runs a fixed number of
# executions single-threaded, so running them together changes what they do not at all, and
# their time only by sharing the machine.
smoke() {
  local scale=${1:-1} failed=() scratch jobs target
  BIN=$CARGO_TARGET_DIR/debug
  for target in "${TARGETS[@]}"; do
    [ -x "$BIN/$target" ] || { log "$BIN/$target is missing: run smoke-build first"; exit 1; }
  done
  scratch=$(mktemp -d)
  jobs=$(nproc)
  log "${#TARGETS[@]} targets, $jobs at a time"
  for target in "${TARGETS[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    smoke_one "$target" "$scale" "$scratch" &
  done
  wait
  for target in "${TARGETS[@]}"; do
    if [ -e "$scratch/$target.failed" ]; then
      failed+=("$target")
      tail -40 "$scratch/$target.log"
    fi
  done
  rm -rf "$scratch"
  if [ ${#failed[@]} -gt 0 ]; then
    log "findings in: ${failed[*]} (see $FUZZ_DIR/artifacts)"
    exit 1
  fi
}

run() {
  local target=$1 runs=${2:-10000000}
  local corpus=$FUZZ_DIR/corpus/$target
  mkdir -p "$corpus"
  mapfile -t options < <(fuzz_options "$target")
  log "$target: $runs executions, corpus $corpus"
  "$BIN/$target" "${options[@]}" -runs="$runs" "$corpus" "$CORPUS/$target"
}

case "${1:-}" in
  build) build ;;
  smoke) shift; build_smoke; smoke "$@" ;;
  smoke-build) build_smoke ;;
  smoke-run) shift; smoke "$@" ;;
  run) shift; [ $# -ge 1 ] || { echo "usage: $0 run TARGET [runs]" >&2; exit 2; }; build; run "$@" ;;
  targets) printf '%s\n' "${TARGETS[@]}" ;;
  *) sed -n '2,23p' "$0"; exit 2 ;;
esac
