#!/usr/bin/env bash
# The end-to-end demo on embedded defaults: fetch ONNX Runtime, build, generate the synthetic
# credit-risk world, materialize its features into the embedded online store, train and
# publish a model (point-in-time training set, LR vs GBDT), serve it with a drift monitor
# sidecar that every request is sampled to, send it 3 000 applications with the load tester
# so the monitor's first windows fill, and print ready-to-paste requests (entity-keyed and
# full) and the drift report's URL.
#
#   scripts/demo.sh        (VANE_ADDR=127.0.0.1:8080, VANE_MONITOR_HTTP=127.0.0.1:9102,
#                           VANE_MONITOR_INGEST=127.0.0.1:9101, VANE_DEMO_DIR=target/demo;
#                           rm -rf the demo dir to start over)
set -euo pipefail
cd "$(dirname "$0")/.."

addr="${VANE_ADDR:-127.0.0.1:8080}"
monitor_http="${VANE_MONITOR_HTTP:-127.0.0.1:9102}"
monitor_ingest="${VANE_MONITOR_INGEST:-127.0.0.1:9101}"
demo="${VANE_DEMO_DIR:-target/demo}"

if lib="$(scripts/setup-ort.sh)"; then
  export ORT_DYLIB_PATH="$lib"
else
  echo "demo: ONNX Runtime unavailable; serving with tract" >&2
fi

echo "demo: building (release; the first build takes several minutes)" >&2
cargo build --release --locked -p vane-server -p vane-models -p vane-registry -p vane-monitor -p vane-loadtest
bin=target/release

if [ ! -f "$demo/data/applications.parquet" ]; then
  # Applications over the last 24 months, so the latest features are fresh today.
  start=$(date -u -d "-24 months" +%Y-%m-01)
  "$bin/vane-models" datagen --out "$demo/data" --applicants 10000 --applications 50000 --start "$start"
fi
if [ ! -f "$demo/online.redb" ]; then
  "$bin/vane-models" materialize --repo "$demo/data/features.toml" --store "$demo/online.redb"
fi
if [ ! -d "$demo/registry/credit-risk" ]; then
  "$bin/vane-models" train --repo "$demo/data/features.toml" --data "$demo/data/applications.parquet" \
    --label default_12m --exclude application_id,applicant_id \
    --registry "$demo/registry" --model credit-risk --alias champion --out "$demo/train-out"
fi

"$bin/vane-monitor" serve --registry "$demo/registry" --http "$monitor_http" \
  --listen "tcp://$monitor_ingest" > "$demo/monitor.out" 2> "$demo/monitor.log" &
monitor=$!
"$bin/vane-server" --registry "$demo/registry" --online-store "$demo/online.redb" --addr "$addr" \
  --monitor "tcp://$monitor_ingest" --sample-percent 100 --allow-missing true &
server=$!
trap 'kill -TERM $server $monitor 2>/dev/null; wait $server $monitor' INT TERM EXIT

for _ in $(seq 1 600); do
  if curl -fsS "http://$addr/v2/health/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 $server 2>/dev/null; then echo "demo: server exited" >&2; exit 1; fi
  sleep 0.1
done

# Traffic for the monitor: 3 000 applications joined point-in-time (as in training), sampled
# across the whole period, one per request.
if [ ! -f "$demo/data/joined.parquet" ]; then
  "$bin/vane-models" join --repo "$demo/data/features.toml" --data "$demo/data/applications.parquet" \
    --out "$demo/data/joined.parquet"
fi
"$bin/vane-loadtest" --target "http://$addr" --model credit-risk --format tensor \
  --data "$demo/data/joined.parquet" --order sample --requests 3000 --connections 4 \
  --progress off --json "$demo/traffic.json" > "$demo/traffic.txt"

request() {
  cat <<JSON
{"inputs": [
  {"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": [$1]},
  {"name": "loan_amount", "shape": [1], "datatype": "FP64", "data": [15000]},
  {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["60 months"]},
  {"name": "purpose", "shape": [1], "datatype": "BYTES", "data": ["debt_consolidation"]},
  {"name": "interest_rate", "shape": [1], "datatype": "FP64", "data": [13.9]},
  {"name": "installment", "shape": [1], "datatype": "FP64", "data": [512]},
  {"name": "loan_to_income", "shape": [1], "datatype": "FP64", "data": [0.26]}
]}
JSON
}
# An applicant whose stored features are fresh (the rest come from the online store).
id=1
for candidate in $(seq 1 50); do
  if curl -fsS "http://$addr/v2/models/credit-risk/infer" -H 'content-type: application/json' \
       -d "$(request "$candidate")" >/dev/null 2>&1; then id=$candidate; break; fi
done

cat <<EOT

Vane is serving credit-risk (trained on $demo/data, registry $demo/registry) on http://$addr,
reading 14 of its 20 features from the online store $demo/online.redb.

Score applicant $id (the request carries only the request-time features):

curl -s http://$addr/v2/models/credit-risk/infer -H 'content-type: application/json' -d '$(request "$id" | tr -d '\n')'

The same through the records route:

curl -s http://$addr/v1/models/credit-risk:predict -H 'content-type: application/json' -d '{"instances": [{"applicant_id": $id, "loan_amount": 15000, "term": "60 months", "purpose": "debt_consolidation", "interest_rate": 13.9, "installment": 512, "loan_to_income": 0.26}]}'

Model metadata: curl -s http://$addr/v2/models/credit-risk | metrics: curl -s http://$addr/metrics
Test metrics of the trained models: $demo/train-out/metrics.json.

Every request is sampled to the drift monitor (log: $demo/monitor.log); 3000 applications were
just scored ($demo/traffic.txt), so its first count windows are in: open
http://$monitor_http/report (the HTML report), http://$monitor_http/drift (JSON) or
http://$monitor_http/metrics. Stop with Ctrl-C.
EOT
wait $server
