#!/usr/bin/env bash
# Materialize and online-lookup figures of two builds in one run (BENCHMARKS.md, "Feature
# store … before/after"): OLD and NEW are directories holding `vane-models` and
# `featurebench` release binaries. One 10 M-application world (made by NEW), then per round
# a full materialize into a fresh embedded store by each build, interleaved; then per round
# the embedded lookup latency of each build on its own store (batch 1 and 20, 10 s each),
# interleaved.
#   OLD=/tmp/old NEW=/tmp/new ROUNDS=2 benches/run-features-ab.sh [WORK_DIR]
set -euo pipefail
W="${1:-/tmp/vane-features-ab}"
rounds="${ROUNDS:-2}"
mkdir -p "$W"
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
[ -f "$W/w10m/features.toml" ] ||
  "$NEW/vane-models" datagen --out "$W/w10m" --applicants 500000 --applications 10000000 >/dev/null
for r in $(seq 1 "$rounds"); do
  for b in old new; do
    bin=$OLD; [ $b = new ] && bin=$NEW
    rm -f "$W/$b.redb"
    printf 'round %s %-4s materialize: ' "$r" "$b"
    "$bin/vane-models" materialize --repo "$W/w10m/features.toml" --store "$W/$b.redb" 2>&1 | tail -1
  done
done
# Lookups interleaved too: each round runs both builds back to back per batch size.
for r in $(seq 1 "$rounds"); do
  for batch in 1 20; do
    for b in old new; do
      bin=$OLD; [ $b = new ] && bin=$NEW
      printf 'round %s %-4s lookup batch %-2s: ' "$r" "$b" "$batch"
      "$bin/featurebench" lookup "$W/$b.redb" credit_activity 500000 10 "$batch" 1 | tail -1
    done
  done
done
