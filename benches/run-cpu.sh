#!/usr/bin/env bash
# Server CPU per request, split into user and kernel time, for the hello-world ceiling, the
# naive hyper + ort server and vane-server (BENCHMARKS.md "Where the time goes"): each server
# pinned to core 0 with one HTTP thread, wrk -t1 on core 1 at 32 connections posting the
# single-row V2 JSON request to the example logistic regression. utime/stime come from
# /proc/PID/stat over a window in the middle of each run; also prints the syscalls per
# request when `perf` can read the syscall tracepoints.
#
#   benches/run-cpu.sh        (ROUNDS=3, DURATION=6 s per run, CLIENT=wrk|loadtest,
#                              FLOOR=1 adds the transport floor: hello-world and vane-server
#                              answering a bodiless GET (/v2/health/ready), wrk only,
#                              BEFORE=path/to/an/older/vane-server to compare with,
#                              BEFORE_MODELS=path/to/an/older/vane-models: "before" serves its
#                              exports, by BEFORE or this tree's vane-server)
#
# Needs target/release/{vane-server,vane-models,hello,naive} (and vane-loadtest for
# CLIENT=loadtest), ONNX Runtime (scripts/setup-ort.sh) and, for CLIENT=wrk, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-3}"
dur="${DURATION:-6}"
client="${CLIENT:-wrk}"
. benches/lib.sh
"$bin/vane-models" example --registry "$tmp/lr" >/dev/null
# "before" serves the same models, or BEFORE_MODELS's exports of them.
before_lr="$tmp/lr"
if [ -n "${BEFORE_MODELS:-}" ]; then
  before_lr="$tmp/before-lr"
  "$BEFORE_MODELS" example --registry "$before_lr" >/dev/null
  BEFORE="${BEFORE:-$bin/vane-server}"
fi
hz=$(getconf CLK_TCK)
window=$((dur - 2))

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), client $client (1 thread, 32 connections), ${dur}s per run, ${window}s CPU window"
servers=(hello naive vane)
[ -n "${BEFORE:-}" ] && servers+=(before)
if [ -n "${FLOOR:-}" ]; then
  [ "$client" = wrk ] || { echo "FLOOR=1 needs CLIENT=wrk" >&2; exit 1; }
  servers+=(hello-get vane-get)
fi
for r in $(seq 1 "$rounds"); do
  for s in "${servers[@]}"; do
    path=/v2/models/credit-risk/infer method=post
    case $s in
      hello) pin_start 0 "$bin/hello" 127.0.0.1:0 1 ;;
      hello-get) pin_start 0 "$bin/hello" 127.0.0.1:0 1; path=/ method=get ;;
      vane-get) pin_start 0 "$bin/vane-server" --registry "$tmp/lr" --addr 127.0.0.1:0 \
        --backend ort --http-threads 1 --workers 1; path=/v2/health/ready method=get ;;
      naive) pin_start 0 "$bin/naive" "$tmp/lr/credit-risk/versions/1/model.onnx" 127.0.0.1:0 1 ;;
      vane) pin_start 0 "$bin/vane-server" --registry "$tmp/lr" --addr 127.0.0.1:0 --backend ort \
        --http-threads 1 --workers 1 ;;
      before) pin_start 0 "$BEFORE" --registry "$before_lr" --addr 127.0.0.1:0 --backend ort \
        --http-threads 1 --workers 1 ;;
    esac
    client_bg 32 "http://$addr$path" "$tmp/wrk" "$method"
    wrk_pid=$client_pid
    sleep 1
    a=$(awk '{print $14, $15}' "/proc/$pid/stat")
    sc=$(perf stat -x, -e 'raw_syscalls:sys_enter' -p "$pid" -- sleep "$window" 2>&1 >/dev/null |
      awk -F, '/raw_syscalls/ {print $1}' || true)
    b=$(awk '{print $14, $15}' "/proc/$pid/stat")
    wait "$wrk_pid"
    rps=$(client_rate "$tmp/wrk")
    echo "$a $b" | awk -v r="$rps" -v w="$window" -v hz="$hz" -v s="$s" -v round="$r" -v sc="${sc:-}" '{
      n = r * w; u = ($3 - $1) / hz * 1e6 / n; k = ($4 - $2) / hz * 1e6 / n
      printf "round %s  %-9s %8.0f req/s  user %5.2f us/req  kernel %5.2f us/req  total %5.2f", round, s, r, u, k, u + k
      if (sc != "" && sc ~ /^[0-9]+$/) printf "  syscalls %.2f/req", sc / n
      printf "\n"
    }'
    pin_stop
  done
done
