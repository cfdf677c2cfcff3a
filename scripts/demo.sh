#!/usr/bin/env bash
# End-to-end demo on embedded defaults: fetch ONNX Runtime, build, write the example
# credit-risk registry, serve it, and print a ready-to-paste request.
#   scripts/demo.sh            (VANE_ADDR=127.0.0.1:8080, VANE_DEMO_REGISTRY=target/demo-registry)
set -euo pipefail
cd "$(dirname "$0")/.."

addr="${VANE_ADDR:-127.0.0.1:8080}"
registry="${VANE_DEMO_REGISTRY:-target/demo-registry}"

if lib="$(scripts/setup-ort.sh)"; then
  export ORT_DYLIB_PATH="$lib"
else
  echo "demo: ONNX Runtime unavailable; serving with tract" >&2
fi

echo "demo: building (release; the first build takes a while)" >&2
cargo build --release --locked -p vane-server -p vane-models

if [ ! -d "$registry" ]; then
  target/release/vane-models example --registry "$registry"
fi

target/release/vane-server --registry "$registry" --addr "$addr" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' INT TERM EXIT

for _ in $(seq 1 600); do
  if curl -fsS "http://$addr/v2/health/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 $server 2>/dev/null; then echo "demo: server exited" >&2; exit 1; fi
  sleep 0.1
done

cat <<EOT

Vane is serving the example credit-risk models from $registry on http://$addr
Score an applicant (per-feature request, Open Inference Protocol v2):

curl -s http://$addr/v2/models/credit-risk/infer -H 'content-type: application/json' -d '{
  "inputs": [
    {"name": "annual_income", "shape": [1], "datatype": "FP64", "data": [58000]},
    {"name": "debt_to_income", "shape": [1], "datatype": "FP64", "data": [21.4]},
    {"name": "revolving_utilization", "shape": [1], "datatype": "FP64", "data": [62.0]},
    {"name": "delinquencies_2y", "shape": [1], "datatype": "FP64", "data": [1]},
    {"name": "inquiries_6m", "shape": [1], "datatype": "FP64", "data": [2]},
    {"name": "credit_history_months", "shape": [1], "datatype": "FP64", "data": [84]},
    {"name": "employment_length_years", "shape": [1], "datatype": "FP64", "data": [3]},
    {"name": "loan_amount", "shape": [1], "datatype": "FP64", "data": [15000]},
    {"name": "interest_rate", "shape": [1], "datatype": "FP64", "data": [13.9]},
    {"name": "installment", "shape": [1], "datatype": "FP64", "data": [512]},
    {"name": "open_accounts", "shape": [1], "datatype": "FP64", "data": [9]},
    {"name": "total_accounts", "shape": [1], "datatype": "FP64", "data": [21]},
    {"name": "public_records", "shape": [1], "datatype": "FP64", "data": [0]},
    {"name": "months_since_last_delinquency", "shape": [1], "datatype": "FP64", "data": [14]},
    {"name": "fico_score", "shape": [1], "datatype": "FP64", "data": [684]},
    {"name": "loan_to_income", "shape": [1], "datatype": "FP64", "data": [0.26]},
    {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["60 months"]},
    {"name": "purpose", "shape": [1], "datatype": "BYTES", "data": ["debt_consolidation"]},
    {"name": "home_ownership", "shape": [1], "datatype": "BYTES", "data": ["RENT"]},
    {"name": "verification_status", "shape": [1], "datatype": "BYTES", "data": ["verified"]}
  ]
}'

Other models: credit-risk-mlp, credit-risk-gbdt. Metrics: curl -s http://$addr/metrics
Stop with Ctrl-C.
EOT
wait $server
