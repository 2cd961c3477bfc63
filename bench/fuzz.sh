#!/usr/bin/env bash
# One cargo-fuzz (libFuzzer) target of fuzz/, niced, for a bounded time,
# with the JSON dictionary; outside CI.
#
#   bench/fuzz.sh TARGET [SECONDS]     # TARGET: request or outcome_list; 300 s by default
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# New inputs go to fuzz/corpus/TARGET (git-ignored but the seeds); a crash
# leaves its input in fuzz/artifacts/TARGET: minimise it into
# fuzz/regressions/ (see its README).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: bench/fuzz.sh TARGET [SECONDS]}
seconds=${2:-300}
nice -n 19 cargo +nightly fuzz run "$target" -- -dict=fuzz/dicts/json.dict -max_total_time="$seconds"
