#!/usr/bin/env bash
# End-to-end benchmark, recorded in BENCHMARKS.md. Vane and a minimal hyper hello-world server
# are driven by the same client (wrk, Debian package) in the same run; runs are interleaved
# over several rounds because the machine is shared and noisy, and ratios are per round.
#
#   benches/run-e2e.sh          (DURATION=10 s per run, ROUNDS=3, CONNS=32)
#
# Needs: target/release/{vane-server,vane-models,hello,pace}
#   (cargo build --release -p vane-server -p vane-models -p vane-benches --bins) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

dur="${DURATION:-10}"
rounds="${ROUNDS:-3}"
conns="${CONNS:-32}"
bin=target/release
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

# run LABEL URL [DELAY_MS] [CONNS]: prints one line; sets $rps.
run() {
  local label=$1 url=$2 delay=${3:-0} c=${4:-$conns} out p50 p99 non200
  out=$(WRK_BODY_FILE="$tmp/row.json" WRK_DELAY_MS=$delay wrk -t1 -c"$c" -d"${dur}s" --latency -s benches/wrk/post.lua "$url")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non200=$(awk '$1=="non200" {print $2}' <<<"$out")
  printf '  %-46s %10.0f req/s  p50 %-9s p99 %-9s non-200 %s\n' "$label" "$rps" "$p50" "$p99" "${non200:-?}"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), wrk -t1 -d${dur}s"
echo "## single-row credit-risk (logistic regression) tensor request, $conns connections, $rounds interleaved rounds"
start hello "$bin/hello" 127.0.0.1:0; hello=$addr
start vane-ort "$bin/vane-server" --registry "$tmp/reg" --addr 127.0.0.1:0 --backend ort; vane_ort=$addr
start vane-tract "$bin/vane-server" --registry "$tmp/reg" --addr 127.0.0.1:0 --backend tract; vane_tract=$addr
: > "$tmp/ratios-ort"; : > "$tmp/ratios-tract"; : > "$tmp/sat-ort"; : > "$tmp/sat-tract"
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  run "hello-world hyper (ceiling)" "http://$hello/v2/models/credit-risk/infer"; h=$rps
  for b in ort tract; do
    a=vane_$b
    run "vane $b, saturation" "http://${!a}/v2/models/credit-risk/infer"
    echo "$rps" >> "$tmp/sat-$b"
    awk -v v="$rps" -v h="$h" 'BEGIN {print 100 * v / h}' >> "$tmp/ratios-$b"
  done
done
for b in ort tract; do
  printf 'vane %s / hello-world ceiling: median %.1f %% (rounds: %s)\n' "$b" "$(median < "$tmp/ratios-$b")" "$(awk '{printf "%.1f%% ", $1}' "$tmp/ratios-$b")"
done

echo "## half saturation: open-loop at half the median saturated rate (benches/src/bin/pace.rs, latency from each request's due time)"
for b in ort tract; do
  a=vane_$b
  sat=$(median < "$tmp/sat-$b")
  half=$(awk -v r="$sat" 'BEGIN { printf "%d", r / 2 }')
  printf '  vane %-5s ' "$b"
  "$bin/pace" "http://${!a}/v2/models/credit-risk/infer" "$tmp/row.json" "$half" "$dur" 64
done

echo "## rows/s, 64 connections sending single-row requests: batching (max_batch_rows=64) vs none (=1), 2 rounds"
for spec in "reg credit-risk-mlp ort" "reg credit-risk-mlp tract" "wide mlp-4x512 ort"; do
  set -- $spec
  for rows in 64 1; do
    start "b-$2-$3-$rows" "$bin/vane-server" --registry "$tmp/$1" --addr 127.0.0.1:0 --backend "$3" --max-batch-rows "$rows"
    eval "addr_$rows=$addr"
  done
  : > "$tmp/gain"
  for r in 1 2; do
    run "$2 $3 max_batch_rows=64" "http://$addr_64/v2/models/$2/infer" 0 64; on=$rps
    run "$2 $3 max_batch_rows=1" "http://$addr_1/v2/models/$2/infer" 0 64; off=$rps
    awk -v a="$on" -v b="$off" 'BEGIN {print a / b}' >> "$tmp/gain"
  done
  printf 'batching gain %s %s: %.2fx (rounds: %s)\n' "$2" "$3" "$(median < "$tmp/gain")" "$(awk '{printf "%.2fx ", $1}' "$tmp/gain")"
  stop_last; stop_last
done
