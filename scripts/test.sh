#!/usr/bin/env bash
# The whole test suite, both backends: fetches ONNX Runtime (once) and runs every test.
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_DYLIB_PATH="$(scripts/setup-ort.sh)"
export ORT_DYLIB_PATH
# Tests that need ONNX Runtime fail instead of skipping.
export VANE_REQUIRE_ORT=1
# tract builds an error value per tree-leaf visit; with RUST_BACKTRACE set, each one would
# capture a backtrace (see BENCHMARKS.md). Panics keep their backtraces.
export RUST_LIB_BACKTRACE=0

cargo test --workspace --locked "$@"
