#!/usr/bin/env bash
# Feature store figures for BENCHMARKS.md: datagen, point-in-time join (1 M and 10 M entity
# rows), materialize (embedded and Redis), online lookup latency (embedded and Redis).
#   benches/run-features.sh [WORK_DIR]      (default /tmp/vane-features; needs redis-server)
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-/tmp/vane-features}"
mkdir -p "$W"
cargo build --release -p vane-models -p vane-benches --bin vane-models --bin featurebench
M=target/release/vane-models
B=target/release/featurebench
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"

echo "## datagen"
$M datagen --out "$W/w1m" --applicants 50000 --applications 1000000
$M datagen --out "$W/w10m" --applicants 500000 --applications 10000000

echo "## point-in-time join (credit_risk_v1: 2 views, 14 features), 2 threads, best of 3"
$B pit "$W/w1m" 1000000 2 3
$B pit "$W/w10m" 10000000 2 3

echo "## materialize (all rows, 10 M-application world), twice (second run: every row already stored)"
rm -f "$W/online.redb"
$M materialize --repo "$W/w10m/features.toml" --store "$W/online.redb" 2>/dev/null
$M materialize --repo "$W/w10m/features.toml" --store "$W/online.redb" 2>/dev/null
PORT=6391
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$W/redis.pid" --logfile "$W/redis.log"
trap 'kill "$(cat "$W/redis.pid")" 2>/dev/null || true' EXIT
sleep 0.5
$M materialize --repo "$W/w10m/features.toml" --store "redis://127.0.0.1:$PORT/0" 2>/dev/null
$M materialize --repo "$W/w10m/features.toml" --store "redis://127.0.0.1:$PORT/0" 2>/dev/null
echo "## materialize, 2 shards in parallel into one embedded file"
rm -f "$W/sharded.redb"
for i in 0 1; do
  $M materialize --repo "$W/w10m/features.toml" --store "$W/sharded.redb" --shard $i/2 2>/dev/null &
done
wait

echo "## online lookup (credit_activity, 496 k entities), 10 s closed loop, 1 thread"
for batch in 1 20; do
  $B lookup "$W/online.redb" credit_activity 500000 10 "$batch" 1
done
# Redis: unpinned, then client and server pinned to one vCPU. On this VM a wake-up across
# vCPUs costs tens of µs, which dominates a loopback round trip.
for batch in 1 20; do
  $B lookup "redis://127.0.0.1:$PORT/0" credit_activity 500000 10 "$batch" 1
done
taskset -p -c 0 "$(cat "$W/redis.pid")" >/dev/null
for batch in 1 20; do
  echo -n "(pinned to cpu 0) "
  taskset -c 0 $B lookup "redis://127.0.0.1:$PORT/0" credit_activity 500000 10 "$batch" 1
done
