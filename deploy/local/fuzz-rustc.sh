#!/bin/sh
# The fuzz targets' compiler flags: LLVM's sanitizer-coverage pass, which libFuzzer reads, and the
# checks of a debug build, since an overflow found is a finding.
#
#   fuzz-rustc.sh --flags        prints them (deploy/local/fuzz.sh's `build`: every crate, RUSTFLAGS)
#   fuzz-rustc.sh RUSTC ARGS...  rustc with them (RUSTC_WORKSPACE_WRAPPER of the smoke's build:
#                                the workspace's crates only; the dependencies stay as the test
#                                build made them, and that build is reused), and the crates that
#                                build leaves unoptimised optimised: in the smoke their code runs
#                                millions of times, twice as fast so (the smoke's 202 s of
#                                executions took 379 s unoptimised)
# Build scripts run on this machine, not under libFuzzer: compiled as they are.
FLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cforce-frame-pointers=yes \
-Cdebug-assertions=on -Coverflow-checks=on"
case " $* " in
  " --flags ") echo "$FLAGS"; exit 0 ;;
  *" --crate-name build_script_"*) exec "$@" ;;
  # In the smoke, the workspace's crates that hold no parser a target reaches (configuration,
  # telemetry, pools; the generated messages) are compiled as the test build compiles them:
  # instrumented and optimised they took a minute of the smoke's build, for coverage of code no
  # input steers.
  *" --crate-name platform "* | *" --crate-name proto "*) exec "$@" ;;
esac
# Cargo names no opt-level for an unoptimised crate.
case " $* " in
  *" opt-level="*) ;;
  *) FLAGS="$FLAGS -Copt-level=2" ;;
esac
# shellcheck disable=SC2086 # the flags are words
exec "$@" $FLAGS
