#!/usr/bin/env bash
# Latency below saturation and memory under overload, recorded in BENCHMARKS.md ("Request
# path"): vane-server (example logistic regression, ort, pinned to core 0, one HTTP thread and
# one worker) is saturated by a closed loop to find its rate, then driven open loop at half that
# rate (p50/p99 from each request's intended send time), then at three times it for OVERLOAD_S
# seconds while its resident memory is sampled. The client (vane-loadtest) runs on core 1.
#
#   benches/run-overload.sh      (OVERLOAD_S=60)
#
# Needs target/release/{vane-server,vane-models,vane-loadtest} and ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

overload_s="${OVERLOAD_S:-60}"
. benches/lib.sh

"$bin/vane-models" example --registry "$tmp/lr" >/dev/null
pin_start 0 "$bin/vane-server" --registry "$tmp/lr" --addr 127.0.0.1:0 --backend ort \
  --http-threads 1 --workers 1
url="http://$addr/v2/models/credit-risk/infer"
lt() { taskset -c 1 "$bin/vane-loadtest" --body "$tmp/row.json" --target "$url" --progress off "$@"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), server on core 0, client on core 1"
echo "RSS after start: $(rss_mib) MiB"
sat=$(lt -c 32 -d 8s --warmup 1s | achieved)
echo "saturation (closed loop, 32 connections): $sat req/s; RSS $(rss_mib) MiB"
half=$(awk -v s="$sat" 'BEGIN {printf "%d", s / 2}')
echo "## open loop at half saturation ($half req/s, 64 connections, 10 s, 2 s warm-up)"
lt --rate "$half" -c 64 -d 10s --warmup 2s | sed -n '1,6p'
over=$(awk -v s="$sat" 'BEGIN {printf "%d", s * 3}')
echo "## open loop at 3x saturation ($over req/s offered, 256 connections, ${overload_s} s)"
lt --rate "$over" -c 256 -d "${overload_s}s" --json "$tmp/over.json" > "$tmp/over.txt" &
lpid=$!
max=0
while kill -0 "$lpid" 2>/dev/null; do
  r=$(rss_mib)
  max=$(awk -v a="$max" -v b="$r" 'BEGIN {print (b > a) ? b : a}')
  sleep 2
done
wait "$lpid" || true
sed -n '1,2p' "$tmp/over.txt"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('errors by kind:', d['errors'])" "$tmp/over.json"
echo "RSS during overload: max $max MiB; after: $(rss_mib) MiB"
curl -s "http://$addr/v2/health/ready"; echo
