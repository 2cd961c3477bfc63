#!/bin/sh
# Reproduces the stack figures in ../amq-protocol-types/PATCH.md.
# Builds the probe against the pristine and the patched amq-protocol-types, in
# debug and release, then bisects (each run is a child process, since a stack
# overflow aborts it).
set -e
cd "$(dirname "$0")"
T=${CARGO_TARGET_DIR:-../../target-patch}/parser-probe
PATCH='patch.crates-io.amq-protocol-types.path="../amq-protocol-types"'
for p in dev release; do
  cargo build -q --offline --profile $p --target-dir $T/pristine
  cargo build -q --offline --profile $p --target-dir $T/patched --config "$PATCH"
done
max_depth() { # BINARY KIND STACK_KIB -> deepest nesting that parses
  lo=1 hi=200000
  while [ $((hi - lo)) -gt 1 ]; do
    mid=$(( (lo + hi) / 2 ))
    if "$1" "$2" $mid "$3" >/dev/null 2>&1; then lo=$mid; else hi=$mid; fi
  done
  echo $lo
}
min_stack() { # BINARY KIND DEPTH -> smallest stack (KiB, to 4 KiB) that parses
  lo=16 hi=65536
  while [ $((hi - lo)) -gt 4 ]; do
    mid=$(( (lo + hi) / 2 ))
    if "$1" "$2" "$3" $mid >/dev/null 2>&1; then hi=$mid; else lo=$mid; fi
  done
  echo $hi
}
for prof in debug release; do
  for kind in table array; do
    b=$T/pristine/$prof/parser-probe
    d256=$(max_depth $b $kind 256) d2048=$(max_depth $b $kind 2048)
    echo "pristine $prof $kind: max depth 256KiB=$d256 2MiB=$d2048" \
      "bytes/level=$(( (2048 - 256) * 1024 / (d2048 - d256) ))" \
      "min stack at 64=$(min_stack $b $kind 64)KiB"
    b=$T/patched/$prof/parser-probe
    echo "patched  $prof $kind: min stack at 64=$(min_stack $b $kind 64)KiB" \
      "3000=$(min_stack $b $kind 3000)KiB 26210=$(min_stack $b $kind 26210)KiB"
  done
done 2>/dev/null
