#!/usr/bin/env bash
# How batches form under closed-loop load, run by run (BENCHMARKS.md, run W): vane-server on
# the example logistic regression, pinned to core 0 (one HTTP thread, one worker), a client on
# core 1 at CONNS connections posting the single-row V2 JSON request. Per run it prints the
# achieved req/s, the server's CPU per request (user + kernel, from /proc/PID/stat over the
# middle of the run), and from the model's statistics (GET /v2/models/credit-risk/stats): the
# mean rows per backend call and the backend's time per request.
#
#   benches/run-batching.sh   (ROUNDS=4, DURATION=6 s per run, CONNS=32, CLIENT=loadtest|wrk,
#                              BEFORE=path/to/an/older/vane-server, interleaved with this one)
#
# Needs target/release/{vane-server,vane-models} (and vane-loadtest for CLIENT=loadtest),
# ONNX Runtime (scripts/setup-ort.sh) and, for CLIENT=wrk, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-4}"
dur="${DURATION:-6}"
conns="${CONNS:-32}"
client="${CLIENT:-loadtest}"
. benches/lib.sh
"$bin/vane-models" example --registry "$tmp/lr" >/dev/null
hz=$(getconf CLK_TCK)
window=$((dur - 2))

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), client $client (1 thread, $conns connections), ${dur}s per run, ${window}s CPU window"
servers=(vane)
[ -n "${BEFORE:-}" ] && servers+=(before)
for r in $(seq 1 "$rounds"); do
  for s in "${servers[@]}"; do
    server="$bin/vane-server"
    [ "$s" = before ] && server="$BEFORE"
    pin_start 0 "$server" --registry "$tmp/lr" --addr 127.0.0.1:0 --backend ort \
      --http-threads 1 --workers 1
    url="http://$addr/v2/models/credit-risk/infer"
    client_bg "$conns" "$url" "$tmp/client"
    sleep 1
    a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sleep "$window"
    b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    wait "$client_pid"
    rps=$(client_rate "$tmp/client")
    curl -s "http://$addr/v2/models/credit-risk/stats" > "$tmp/stats.json"
    python3 - "$tmp/stats.json" "$s" "$r" "$rps" "$a" "$b" "$hz" "$window" <<'PY'
import json, sys
path, server, rnd, rps, a, b, hz, window = sys.argv[1:]
stats = json.load(open(path))["model_stats"][0]
rps = float(rps)
cpu_us = (int(b) - int(a)) / int(hz) * 1e6 / (rps * int(window))
requests, calls = stats["inference_count"], max(stats["execution_count"], 1)
model_ns = sum(s["compute_infer"]["ns"] for s in stats["batch_stats"])
print(f"round {rnd}  {server:6} {rps:8.0f} req/s  cpu {cpu_us:5.2f} us/req  "
      f"{requests / calls:5.1f} rows per call  model {model_ns / max(requests, 1) / 1000:4.2f} us/req")
PY
    pin_stop
  done
done
