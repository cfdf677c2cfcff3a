#!/usr/bin/env bash
# The whole test suite, both backends: fetches ONNX Runtime (once) and runs every test.
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_DYLIB_PATH="$(scripts/setup-ort.sh)"
export ORT_DYLIB_PATH
# Tests that need ONNX Runtime fail instead of skipping.
export VANE_REQUIRE_ORT=1

cargo test --workspace --locked "$@"
