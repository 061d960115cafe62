#!/usr/bin/env bash
# Checks deploy/local/reuse-builds.py on a one-file crate in fresh clones sharing one target
# directory, as the test command uses it: a clone of what was built, where it was built, builds
# nothing; a clone elsewhere, a clone with a changed file or a file fewer, a clone after a run
# that left no record, and a clone made before another run built other content all build again.
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
# A build script that watches a directory, as the services' do for their migrations: cargo then
# reads the times of the directory and of everything in it.
echo 'fn main() { println!("cargo:rerun-if-changed=migrations"); }' >build.rs
mkdir src migrations
echo 'fn main() { println!("one"); }' >src/main.rs
echo 'CREATE TABLE one (id INT);' >migrations/1_one.sql
echo 'CREATE TABLE two (id INT);' >migrations/2_two.sql
git_ add -A && git_ commit -qm one

# One run in a fresh clone at $work/clone (or at $work/$2, or in the clone already there when $2
# is "kept"): restore, build, and (unless $1 is "failed") record.
run() {
  local clone=$work/${2:-clone}
  if [ "${2:-}" = kept ]; then
    clone=$work/clone
  else
    rm -rf "$clone" && git_ clone -q "$work/origin" "$clone"
  fi
  (cd "$clone" && python3 "$REUSE" restore "$record" 2>/dev/null \
    && cargo build --offline 2>"$clone.log" && { [ "$1" = failed ] || python3 "$REUSE" record "$record" 2>/dev/null; })
  grep -q 'Compiling reuse-probe' "$clone.log" && echo built || echo reused
}

expect() {
  local got=$1 want=$2 what=$3
  [ "$got" = "$want" ] || { echo "reuse-builds: $what: $got, expected $want" >&2; exit 1; }
}

expect "$(run ok)" built "the first run"
expect "$(run ok)" reused "a clone of the same commit"
expect "$(run ok elsewhere)" built "a clone of the same commit at another path"
expect "$(run ok)" built "a clone back at the first path, after a run at another"
echo 'fn main() { println!("two"); }' >src/main.rs && git_ commit -qam two
expect "$(run ok)" built "a clone with a changed file"
expect "$(run failed)" reused "a clone of the same commit, in a run that then fails"
expect "$(run ok)" built "the run after one that left no record"
expect "$(run ok)" reused "a clone of the same commit again"
# A build that no run recorded (it removed the record first, as every run does) replaces the
# artefact with the other content; the next clone must not take it for its own.
echo 'fn main() { println!("one"); }' >src/main.rs && git_ commit -qam one-again
expect "$(run failed)" built "a clone of the first content, in a run that then fails"
echo 'fn main() { println!("two"); }' >src/main.rs && git_ commit -qam two-again
expect "$(run ok)" built "a clone of the second content after that unrecorded build"
git_ rm -q migrations/2_two.sql && git_ commit -qm "one migration fewer"
expect "$(run ok)" built "a clone with a file fewer in a watched directory"
expect "$(run ok)" reused "a clone of the same commit again"
# A clone made before another run built other content (it waited for that run to end): its files
# are older than that build.
rm -rf "$work/clone" && git_ clone -q "$work/origin" "$work/clone" && mv "$work/clone" "$work/early"
sleep 0.1
echo 'fn main() { println!("three"); }' >src/main.rs && git_ commit -qam three
expect "$(run ok)" built "a clone with a changed file"
rm -rf "$work/clone" && mv "$work/early" "$work/clone"
expect "$(run ok kept)" built "a clone made before the last run built other content"
echo "reuse-builds: a build is reused only for the files it was built from, where it was built" >&2
