#!/usr/bin/env bash
# The README's main job: the whole production loop on embedded defaults, through `vane demo`
# (synthetic data → features → training → registry → serving + drift monitor → traffic →
# canary + shadow → load-tester verdict → promotion or rollback → drift injection). Builds
# the `vane` binary (release; the first build takes several minutes), fetches ONNX Runtime's
# library from PyPI (tract serves without it), and passes its arguments on:
#
#   scripts/demo.sh                   (artifacts in target/demo; VANE_DEMO_DIR to change)
#   scripts/demo.sh --keep-serving    (leave the server and the monitor up; Ctrl-C stops)
#   scripts/demo.sh --help            (sizes, addresses)
set -euo pipefail
cd "$(dirname "$0")/.."

if lib="$(scripts/setup-ort.sh)"; then
  export ORT_DYLIB_PATH="$lib"
else
  echo "demo: ONNX Runtime unavailable; serving with tract" >&2
fi
echo "demo: building vane (release; the first build takes several minutes)" >&2
cargo build --release --locked -p vane-cli
exec target/release/vane demo "$@"
