#!/usr/bin/env bash
# End-to-end benchmark, recorded in BENCHMARKS.md. Every figure comes from vane-loadtest
# (closed loop for saturation, open loop for latency below saturation, a sweep for the
# saturation throughput under a p99 SLO); wrk (Debian package) is kept only as the reference
# client for the client-parity ratio. Vane and a minimal hyper hello-world server are driven
# in the same run; runs are interleaved over several rounds because the machine is shared and
# noisy, and ratios are per round.
#
#   benches/run-e2e.sh          (DURATION=10 s per run, ROUNDS=3, CONNS=32)
#
# Needs: target/release/{vane-server,vane-models,hello,vane-loadtest}
#   (cargo build --release -p vane-server -p vane-models -p vane-loadtest -p vane-benches --bins) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

dur="${DURATION:-10}"
rounds="${ROUNDS:-3}"
conns="${CONNS:-32}"
bin=target/release
lt="$bin/vane-loadtest"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin/vane-models" example --registry "$tmp/reg" >/dev/null
"$bin/vane-models" mlp --registry "$tmp/wide" --name mlp-4x512 --width 512 --depth 4 >/dev/null
# One applicant as the model tensor (signature order; categorical columns as codes).
row='[58000, 21.4, 62.0, 1, 2, 84, 3, 15000, 13.9, 512, 9, 21, 0, 14, 684, 0.26, 1, 0, 0, 2]'
echo "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,20],\"datatype\":\"FP32\",\"data\":$row}]}" > "$tmp/row.json"

# start NAME CMD... : runs CMD in the background, waits for its address (and readiness); sets $addr.
start() {
  local name=$1; shift
  "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  pids+=($!)
  addr=
  for _ in $(seq 1 600); do
    addr=$(sed -n 's|^listening on http://||p' "$tmp/$name.out" | head -n1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "$name did not start" >&2; cat "$tmp/$name.err" >&2; exit 1; }
  [ "$name" = hello ] && return 0
  for _ in $(seq 1 600); do
    curl -fsS "http://$addr/v2/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$name not ready" >&2; exit 1
}
stop_last() { kill -TERM "${pids[-1]}" 2>/dev/null; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

# lt_run LABEL URL [CONNS] [EXTRA ARGS...]: vane-loadtest with the fixed body; prints one line;
# sets $rps (achieved) from its table.
lt_run() {
  local label=$1 url=$2 c=${3:-$conns} out p50 p99 errs
  shift 3 || shift $#
  out=$("$lt" --body "$tmp/row.json" --target "$url" -c "$c" -d "${dur}s" --progress off "$@")
  rps=$(awk '/^requests/ {for (i = 1; i <= NF; i++) if ($i == "achieved") {sub("/s", "", $(i+1)); print $(i+1)}}' <<<"$out")
  errs=$(awk '/^requests/ {for (i = 1; i <= NF; i++) if ($i == "errors") print $(i+1)}' <<<"$out")
  p50=$(awk '$1 == "target" {print $4}' <<<"$out")
  p99=$(awk '$1 == "target" {print $6}' <<<"$out")
  printf '  %-46s %10.0f req/s  p50 %-9s p99 %-9s errors %s\n' "$label" "$rps" "$p50" "$p99" "$errs"
}
# wrk_run LABEL URL [CONNS]: the reference client; sets $rps.
wrk_run() {
  local label=$1 url=$2 c=${3:-$conns} out p50 p99 non200
  out=$(WRK_BODY_FILE="$tmp/row.json" wrk -t1 -c"$c" -d"${dur}s" --latency -s benches/wrk/post.lua "$url")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non200=$(awk '$1=="non200" {print $2}' <<<"$out")
  printf '  %-46s %10.0f req/s  p50 %-9s p99 %-9s non-200 %s\n' "$label" "$rps" "$p50" "$p99" "${non200:-?}"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), ${dur}s per run, one client thread"
start hello "$bin/hello" 127.0.0.1:0; hello=$addr

echo "## client parity: vane-loadtest vs wrk -t1 against hello-world, closed loop, $conns connections, $rounds interleaved rounds"
: > "$tmp/parity"
for r in $(seq 1 "$rounds"); do
  wrk_run "wrk -t1 (reference)" "http://$hello/v2/models/credit-risk/infer"; w=$rps
  lt_run "vane-loadtest -t1" "http://$hello/v2/models/credit-risk/infer" "$conns"; l=$rps
  awk -v l="$l" -v w="$w" 'BEGIN {print 100 * l / w}' >> "$tmp/parity"
done
printf 'vane-loadtest / wrk: median %.1f %% (rounds: %s)\n' "$(median < "$tmp/parity")" "$(awk '{printf "%.1f%% ", $1}' "$tmp/parity")"

echo "## single-row credit-risk (logistic regression) tensor request, closed loop, $conns connections, $rounds interleaved rounds"
start vane-ort "$bin/vane-server" --registry "$tmp/reg" --addr 127.0.0.1:0 --backend ort; vane_ort=$addr
start vane-tract "$bin/vane-server" --registry "$tmp/reg" --addr 127.0.0.1:0 --backend tract; vane_tract=$addr
: > "$tmp/ratios-ort"; : > "$tmp/ratios-tract"; : > "$tmp/sat-ort"; : > "$tmp/sat-tract"
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  lt_run "hello-world hyper (ceiling)" "http://$hello/v2/models/credit-risk/infer" "$conns"; h=$rps
  for b in ort tract; do
    a=vane_$b
    lt_run "vane $b, saturation" "http://${!a}/v2/models/credit-risk/infer" "$conns"
    echo "$rps" >> "$tmp/sat-$b"
    awk -v v="$rps" -v h="$h" 'BEGIN {print 100 * v / h}' >> "$tmp/ratios-$b"
  done
done
for b in ort tract; do
  printf 'vane %s / hello-world ceiling: median %.1f %% (rounds: %s)\n' "$b" "$(median < "$tmp/ratios-$b")" "$(awk '{printf "%.1f%% ", $1}' "$tmp/ratios-$b")"
done

echo "## half saturation: open loop at half the median saturated rate (vane-loadtest --rate, latency from each request's intended send time, 64 connections, 2 s warm-up)"
for b in ort tract; do
  a=vane_$b
  sat=$(median < "$tmp/sat-$b")
  half=$(awk -v r="$sat" 'BEGIN { printf "%d", r / 2 }')
  lt_run "vane $b at $half/s" "http://${!a}/v2/models/credit-risk/infer" 64 --rate "$half" --warmup 2s
  lt_run "hello-world at $half/s" "http://$hello/v2/models/credit-risk/infer" 64 --rate "$half" --warmup 2s
done

echo "## saturation throughput under p99 < ${SLO:-10ms} (vane-loadtest --sweep, open loop, 5 s steps)"
for b in ort tract; do
  a=vane_$b
  printf '  vane %-5s ' "$b"
  "$lt" --body "$tmp/row.json" --target "http://${!a}/v2/models/credit-risk/infer" -c 64 --progress off \
    --sweep --sweep-rates "${SWEEP:-2000:100000:x1.25}" --slo-p99 "${SLO:-10ms}" --step-duration 5s --warmup 1s \
    | sed -n 's/^saturation throughput: //p' || true
done
stop_last; stop_last

echo "## rows/s, 64 connections sending single-row requests (closed loop): batching (max_batch_rows=64) vs none (=1), 2 rounds"
for spec in "reg credit-risk-mlp ort" "reg credit-risk-mlp tract" "wide mlp-4x512 ort"; do
  set -- $spec
  for rows in 64 1; do
    start "b-$2-$3-$rows" "$bin/vane-server" --registry "$tmp/$1" --addr 127.0.0.1:0 --backend "$3" --max-batch-rows "$rows"
    eval "addr_$rows=$addr"
  done
  : > "$tmp/gain"
  for r in 1 2; do
    lt_run "$2 $3 max_batch_rows=64" "http://$addr_64/v2/models/$2/infer" 64; on=$rps
    lt_run "$2 $3 max_batch_rows=1" "http://$addr_1/v2/models/$2/infer" 64; off=$rps
    awk -v a="$on" -v b="$off" 'BEGIN {print a / b}' >> "$tmp/gain"
  done
  printf 'batching gain %s %s: %.2fx (rounds: %s)\n' "$2" "$3" "$(median < "$tmp/gain")" "$(awk '{printf "%.2fx ", $1}' "$tmp/gain")"
  stop_last; stop_last
done
