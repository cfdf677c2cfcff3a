#!/usr/bin/env bash
# Vane against its peers, recorded in BENCHMARKS.md ("Request path"): the hyper hello-world
# ceiling (benches/src/bin/hello.rs), the naive hyper + serde_json + ort server
# (benches/src/bin/naive.rs) and vane-server, on the example logistic regression and an MLP
# 20-256-256-1, single-row V2 JSON tensor requests, at 1 and 32 connections. Every server is
# pinned to core 0 with one HTTP thread (Vane: one worker too), the client to core 1, one
# client thread; runs are interleaved over rounds and compared as ratios within a round.
#
#   benches/run-peers.sh      (DURATION=8 s per run, ROUNDS=2, CLIENT=loadtest|wrk,
#                              MODELS="lr mlp", CONNS="1 32" to measure fewer cells in
#                              more rounds (this machine's round-to-round spread is ±10 %),
#                              BEFORE=path/to/an/older/vane-server to compare with,
#                              BEFORE_MODELS=path/to/an/older/vane-models: "before" serves its
#                              exports, by BEFORE or this tree's vane-server)
#
# Needs target/release/{vane-server,vane-models,vane-loadtest,hello,naive}
#   (cargo build --release -p vane-server -p vane-models -p vane-loadtest -p vane-benches --bins),
# ONNX Runtime (scripts/setup-ort.sh) and, for CLIENT=wrk, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

dur="${DURATION:-8}"
models="${MODELS:-lr mlp}"
conns="${CONNS:-1 32}"
rounds="${ROUNDS:-2}"
client="${CLIENT:-loadtest}"
. benches/lib.sh

"$bin/vane-models" example --registry "$tmp/lr" >/dev/null
"$bin/vane-models" mlp --registry "$tmp/mlp" --name credit-risk --width 256 --depth 2 >/dev/null
# "before" serves the same models ($tmp/{lr,mlp}), or BEFORE_MODELS's exports of them.
before="$tmp"
if [ -n "${BEFORE_MODELS:-}" ]; then
  before="$tmp/before"
  "$BEFORE_MODELS" example --registry "$before/lr" >/dev/null
  "$BEFORE_MODELS" mlp --registry "$before/mlp" --name credit-risk --width 256 --depth 2 >/dev/null
  BEFORE="${BEFORE:-$bin/vane-server}"
fi
start() { pin_start 0 "$@"; }
stop() { pin_stop; }

# measure CONNS: closed-loop req/s against $addr from core 1.
measure() { client_run "$1" "http://$addr/v2/models/credit-risk/infer"; }

vane() { start "$1" --registry "$2" --addr 127.0.0.1:0 --backend ort --http-threads 1 --workers 1; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), client $client, ${dur}s per run, server on core 0 (1 HTTP thread), client on core 1"
declare -A sum
for r in $(seq 1 "$rounds"); do
  for model in $models; do
    servers=(hello naive vane)
    [ -n "${BEFORE:-}" ] && servers+=(before)
    for s in "${servers[@]}"; do
      case $s in
        hello) start "$bin/hello" 127.0.0.1:0 1 ;;
        naive) start "$bin/naive" "$tmp/$model/credit-risk/versions/1/model.onnx" 127.0.0.1:0 1 ;;
        vane) vane "$bin/vane-server" "$tmp/$model" ;;
        before) vane "$BEFORE" "$before/$model" ;;
      esac
      for c in $conns; do
        v=$(measure "$c")
        printf 'round %s  %-4s %-7s c=%-3s %9.0f req/s\n' "$r" "$model" "$s" "$c" "$v"
        echo "$r $model $s $c $v" >> "$tmp/results"
      done
      stop
    done
  done
done
echo "## medians over rounds of per-round ratios [lowest-highest round]"
python3 - "$tmp/results" "$models" "$conns" <<'PY'
import sys, statistics
from collections import defaultdict
res = defaultdict(dict)
for line in open(sys.argv[1]):
    r, model, s, c, v = line.split()
    res[(r, model, c)][s] = float(v)
servers = sorted({s for d in res.values() for s in d} - {"hello", "naive"})
for model in sys.argv[2].split():
    for c in sys.argv[3].split():
        rows = [d for (r, m, cc), d in res.items() if m == model and cc == c]
        for s in servers + ["naive"]:
            vals = [d[s] for d in rows if s in d]
            hello = [d[s] / d["hello"] for d in rows if s in d]
            naive = [d[s] / d["naive"] for d in rows if s in d]
            print(
                f"{model:4} c={c:3} {s:7} median {statistics.median(vals):9.0f} req/s  "
                f"{statistics.median(hello):6.1%} [{min(hello):.1%}-{max(hello):.1%}] of hello-world  "
                f"{statistics.median(naive):5.2f}x [{min(naive):.2f}-{max(naive):.2f}] naive"
            )
PY
