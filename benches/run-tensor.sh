#!/usr/bin/env bash
# The tensor-signature (pass-through) path against the feature-signature path on the same
# graph, recorded in BENCHMARKS.md ("Tensor-signature models"): the example logistic
# regression and the MLP 20-256-256-1, each published twice — by `vane-models` with its
# feature signature, and as a bare model.onnx (`vane-registry publish model.onnx`), whose
# signature is read from the graph. Both take the same single-row V2 JSON request (the
# `input` tensor, [1, 20] FP32). Server on core 0 (1 HTTP thread, 1 worker), client on core
# 1; the hello-world ceiling in the same rounds; compared as ratios within a round.
#
#   benches/run-tensor.sh      (DURATION=8 s per run, ROUNDS=3)
#
# Needs target/release/{vane-server,vane-models,vane-registry,vane-loadtest,hello}
#   (cargo build --release -p vane-server -p vane-models -p vane-registry -p vane-loadtest
#    -p vane-benches --bins) and ONNX Runtime (scripts/setup-ort.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

dur="${DURATION:-8}"
rounds="${ROUNDS:-3}"
. benches/lib.sh

"$bin/vane-models" example --registry "$tmp/lr-feature" >/dev/null
"$bin/vane-models" mlp --registry "$tmp/mlp-feature" --name credit-risk --width 256 --depth 2 >/dev/null
for m in lr mlp; do
  "$bin/vane-registry" --registry "$tmp/$m-tensor" publish \
    "$tmp/$m-feature/credit-risk/versions/1/model.onnx" --model credit-risk --alias champion >/dev/null
done

measure() { loadtest_rate "$1" "http://$addr/v2/models/credit-risk/infer"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), ${dur}s per run, server on core 0 (1 HTTP thread, 1 worker), client on core 1"
for r in $(seq 1 "$rounds"); do
  for model in lr mlp; do
    for s in hello feature tensor; do
      case $s in
        hello) pin_start 0 "$bin/hello" 127.0.0.1:0 1 ;;
        *) pin_start 0 "$bin/vane-server" --registry "$tmp/$model-$s" --addr 127.0.0.1:0 \
             --backend ort --http-threads 1 --workers 1 ;;
      esac
      for c in 1 32; do
        v=$(measure "$c")
        printf 'round %s  %-4s %-8s c=%-3s %9.0f req/s\n' "$r" "$model" "$s" "$c" "$v"
        echo "$r $model $s $c $v" >> "$tmp/results"
      done
      pin_stop
    done
  done
done
echo "## medians over rounds of per-round ratios"
python3 - "$tmp/results" <<'PY'
import sys, statistics
from collections import defaultdict
res = defaultdict(dict)
for line in open(sys.argv[1]):
    r, model, s, c, v = line.split()
    res[(r, model, c)][s] = float(v)
for model in ("lr", "mlp"):
    for c in ("1", "32"):
        rows = [d for (r, m, cc), d in res.items() if m == model and cc == c]
        med = lambda f: statistics.median(f(d) for d in rows)
        print(f"{model:4} c={c:3} feature {med(lambda d: d['feature']):8.0f} req/s "
              f"({med(lambda d: d['feature'] / d['hello']):.0%} of hello)  "
              f"tensor {med(lambda d: d['tensor']):8.0f} req/s "
              f"({med(lambda d: d['tensor'] / d['hello']):.0%} of hello)  "
              f"tensor/feature {med(lambda d: d['tensor'] / d['feature']):.2f}")
PY
