#!/usr/bin/env bash
# Checks deploy/local/reuse-builds.py on a one-file crate in fresh clones sharing one target
# directory, as the test command uses it: a clone of what was built builds nothing; a clone
# with a changed file, a clone after a run that left no record, and a clone of content that an
# unrecorded build replaced in between all build again.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REUSE=$ROOT/deploy/local/reuse-builds.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR=$work/target
record=$work/record
git_() { git -c user.name=check -c user.email=check@localhost -c init.defaultBranch=main "$@"; }

mkdir "$work/origin"
cd "$work/origin"
git_ init -q
cat >Cargo.toml <<'EOF'
[package]
name = "reuse-probe"
version = "0.1.0"
edition = "2021"
EOF
mkdir src
echo 'fn main() { println!("one"); }' >src/main.rs
git_ add -A && git_ commit -qm one

# One run in a fresh clone (or in the one made earlier under that name): restore, build, and
# (when it succeeded) record.
run() {
  local clone=$work/clone-$1
  [ -d "$clone" ] || git_ clone -q "$work/origin" "$clone"
  (cd "$clone" && python3 "$REUSE" restore "$record" 2>/dev/null \
    && cargo build --offline 2>"$clone.log" && { [ "${2:-}" = failed ] || python3 "$REUSE" record "$record" 2>/dev/null; })
  grep -q 'Compiling reuse-probe' "$clone.log" && echo built || echo reused
}

expect() {
  local got=$1 want=$2 what=$3
  [ "$got" = "$want" ] || { echo "reuse-builds: $what: $got, expected $want" >&2; exit 1; }
}

expect "$(run 1)" built "the first run"
expect "$(run 2)" reused "a clone of the same commit"
echo 'fn main() { println!("two"); }' >src/main.rs && git_ commit -qam two
expect "$(run 3)" built "a clone with a changed file"
expect "$(run 4 failed)" reused "a clone of the same commit, in a run that then fails"
expect "$(run 5)" built "the run after one that left no record"
expect "$(run 6)" reused "a clone of the same commit again"
# A build that no run recorded (it removed the record first, as every run does) replaces the
# artefact with the other content; the next clone must not take it for its own.
echo 'fn main() { println!("one"); }' >src/main.rs && git_ commit -qam one-again
expect "$(run 7 failed)" built "a clone of the first content, in a run that then fails"
echo 'fn main() { println!("two"); }' >src/main.rs && git_ commit -qam two-again
expect "$(run 8)" built "a clone of the second content after that unrecorded build"
# A clone made before another run built other content (it waited for that run to end): its files
# are older than that build.
git_ clone -q "$work/origin" "$work/clone-early"
sleep 0.1
echo 'fn main() { println!("three"); }' >src/main.rs && git_ commit -qam three
expect "$(run 9)" built "a clone with a changed file"
expect "$(run early)" built "a clone made before the last run built other content"
echo "reuse-builds: a build is reused only for the files it was built from" >&2
