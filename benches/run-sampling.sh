#!/usr/bin/env bash
# What drift sampling costs the server, recorded in BENCHMARKS.md: the same model served three
# ways in one run — no monitor, a monitor with --sample-percent 0, and one with 100 % — driven
# by the same closed-loop client (vane-loadtest, rows drawn from the model's reference profile
# so the monitor sees realistic values), interleaved over several rounds; ratios are per
# round. Two measures: throughput, and CPU time per request of the server process (and of the
# monitor sidecar), read from /proc — the second is far less disturbed by other load on a
# shared machine. The server is pinned to one core, the client and the monitor sidecar to the
# other (taskset), so what is measured is the server's own capacity.
#
#   benches/run-sampling.sh          (DURATION=10 s per run, ROUNDS=5, CONNS=32)
#
# Needs: target/release/{vane-server,vane-models,vane-monitor,vane-loadtest}
#   (cargo build --release -p vane-server -p vane-models -p vane-monitor -p vane-loadtest).
set -euo pipefail
cd "$(dirname "$0")/.."

dur="${DURATION:-10}"
rounds="${ROUNDS:-5}"
conns="${CONNS:-32}"
bin=target/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin/vane-models" example --registry "$tmp/reg" >/dev/null
profile="$tmp/reg/credit-risk/versions/1/profile.json"

# wait_line FILE PREFIX: the rest of the first line of FILE starting with PREFIX.
wait_line() {
  local v=
  for _ in $(seq 1 600); do
    v=$(sed -n "s|^$2||p" "$1" | head -n1)
    [ -n "$v" ] && { echo "$v"; return 0; }
    sleep 0.1
  done
  echo "no '$2' in $1" >&2; cat "${1%.out}.err" >&2; exit 1
}
start_server() {
  local name=$1; shift
  taskset -c 0 "$bin/vane-server" --registry "$tmp/reg" --addr 127.0.0.1:0 --backend ort \
    --http-threads 1 --workers 1 "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  pids+=($!); pid=$!
  addr=$(wait_line "$tmp/$name.out" "listening on http://")
  for _ in $(seq 1 600); do curl -fsS "http://$addr/v2/health/ready" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$name not ready" >&2; exit 1
}
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

taskset -c 1 "$bin/vane-monitor" serve --registry "$tmp/reg" \
  --http 127.0.0.1:0 --listen tcp://127.0.0.1:0 > "$tmp/monitor.out" 2> "$tmp/monitor.err" &
pids+=($!); monitor_pid=$!
monitor_http=$(wait_line "$tmp/monitor.out" "listening on http://")
ingest=$(wait_line "$tmp/monitor.out" "ingest on ")

start_server plain; plain=$addr; plain_pid=$pid
start_server off --monitor "$ingest" --sample-percent 0; off=$addr; off_pid=$pid
start_server on --monitor "$ingest" --sample-percent 100; on=$addr; on_pid=$pid

# run ADDR PID: prints "req/s server-µs/request monitor-µs/request".
run() {
  local hz before mbefore after mafter json
  hz=$(getconf CLK_TCK)
  before=$(cpu_ticks "$2"); mbefore=$(cpu_ticks "$monitor_pid")
  json="$tmp/run.json"
  taskset -c 1 "$bin/vane-loadtest" --target "http://$1" --model credit-risk --format tensor --profile "$profile" \
    -c "$conns" -d "${dur}s" --progress off --json "$json" >/dev/null 2>&1
  after=$(cpu_ticks "$2"); mafter=$(cpu_ticks "$monitor_pid")
  python3 - "$json" "$((after - before))" "$((mafter - mbefore))" "$hz" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
n = max(s["ok"], 1)
hz = float(sys.argv[4])
print(f'{s["achieved_rps"]:.0f} {int(sys.argv[2]) / hz * 1e6 / n:.2f} {int(sys.argv[3]) / hz * 1e6 / n:.2f}')
PY
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), server on core 0 (1 http thread, 1 worker), vane-loadtest (closed loop -c$conns -d${dur}s) and monitor on core 1; single-row credit-risk (LR, ort), rows from its profile"
: > "$tmp/t0"; : > "$tmp/t100"; : > "$tmp/c0"; : > "$tmp/c100"
for r in $(seq 1 "$rounds"); do
  read -r pr pc _ <<<"$(run "$plain" "$plain_pid")"
  read -r orr oc _ <<<"$(run "$off" "$off_pid")"
  read -r nr nc nm <<<"$(run "$on" "$on_pid")"
  printf 'round %d: no monitor %6.0f req/s %5.2f µs/req | 0 %% %6.0f req/s %5.2f µs/req | 100 %% %6.0f req/s %5.2f µs/req (+ monitor %4.2f µs/req)\n' \
    "$r" "$pr" "$pc" "$orr" "$oc" "$nr" "$nc" "$nm"
  awk -v a="$orr" -v b="$pr" 'BEGIN {print a / b}' >> "$tmp/t0"
  awk -v a="$nr" -v b="$orr" 'BEGIN {print a / b}' >> "$tmp/t100"
  awk -v a="$oc" -v b="$pc" 'BEGIN {print a / b}' >> "$tmp/c0"
  awk -v a="$nc" -v b="$oc" 'BEGIN {print a / b}' >> "$tmp/c100"
done
printf 'throughput, sampling 0 %% / no monitor: median %.3f (rounds: %s)\n' "$(median < "$tmp/t0")" "$(tr '\n' ' ' < "$tmp/t0")"
printf 'throughput, sampling 100 %% / 0 %%:       median %.3f (rounds: %s)\n' "$(median < "$tmp/t100")" "$(tr '\n' ' ' < "$tmp/t100")"
printf 'server CPU per request, 0 %% / no monitor: median %.3f (rounds: %s)\n' "$(median < "$tmp/c0")" "$(tr '\n' ' ' < "$tmp/c0")"
printf 'server CPU per request, 100 %% / 0 %%:       median %.3f (rounds: %s)\n' "$(median < "$tmp/c100")" "$(tr '\n' ' ' < "$tmp/c100")"
m=$(curl -s "http://$monitor_http/metrics")
echo "monitor: $(awk '/^vane_monitor_rows_total/ {s += $2} END {printf "%d rows ingested", s}' <<<"$m"), $(awk '/^vane_monitor_evaluations_total/ {s += $2} END {printf "%d windows evaluated", s}' <<<"$m"), $(awk '/^vane_monitor_evaluations_skipped_total/ {printf "%d skipped", $2}' <<<"$m")"
s=$(curl -s "http://$on/metrics")
echo "server (100 %): $(awk '/^vane_samples_sent_total/ {printf "%d samples sent", $2}' <<<"$s"), $(awk '/^vane_samples_dropped_total/ {d += $2} END {printf "%d dropped", d}' <<<"$s")"
