#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders that read untrusted bytes (fuzz/fuzz_targets/):
# v2_json, v2_binary, v1_records, tensors (vane-protocol) and monitor_frames
# (vane-sample-stream).
#   scripts/fuzz.sh [RUNS] [TARGET...]      default: 10000000 runs of every target
#   FUZZ_MAX_SECONDS=60 caps each target's run (CI's smoke run uses it)
# Stable toolchain only: cargo-fuzz passes nightly -Z flags for sanitizers, so the targets
# build without one (-s none) and RUSTC_BOOTSTRAP=1 lets stable rustc take the rest.
# Seeds: fuzz/seeds/<target> (committed; fuzz/seeds.py writes them). New inputs go to
# target/fuzz-corpus/<target>; a crash is saved under fuzz/artifacts/<target> and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-10000000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(v2_json v2_binary v1_records tensors monitor_frames)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    corpus="$PWD/target/fuzz-corpus/$t"
    mkdir -p "$corpus"
    echo "== $t: $runs runs" >&2
    (cd fuzz && cargo fuzz run --sanitizer none "$t" "$corpus" "seeds/$t" -- \
        -runs="$runs" -max_total_time="${FUZZ_MAX_SECONDS:-0}" -max_len=4096 \
        -rss_limit_mb=2048 -print_final_stats=1)
done
