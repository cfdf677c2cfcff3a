#!/usr/bin/env bash
# Renders the shipped pipeline (pipelines/credit-risk.toml) as Argo Workflows, with the demo's
# defaults and with cluster settings, and validates both against Argo's pinned JSON schema
# (deploy/schemas/, strict: unknown fields refused). Run by .ci/run after the tests.
#
#   scripts/validate-deploy.sh     (VANE_BIN=path/to/vane; default target/debug/vane, built
#                                   if missing; needs python3 with jsonschema and PyYAML)
set -euo pipefail
cd "$(dirname "$0")/.."

vane="${VANE_BIN:-target/debug/vane}"
[ -x "$vane" ] || cargo build -q --locked -p vane-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$vane" pipeline render --argo pipelines/credit-risk.toml > "$out/demo-defaults.yaml"
"$vane" pipeline render --argo pipelines/credit-risk.toml --image ghcr.io/example/vane:0.1.0 \
  --volume-claim vane-data --mount /data \
  --set work=/data --set repo=/data/repo/features.toml \
  --set applications=/data/offline/applications.parquet \
  --set verdict_rows=/data/offline/joined.parquet \
  --set store=redis://redis:6379 --set registry=mlflow://mlflow:5000 \
  --set server=http://vane:8080 > "$out/cluster.yaml"
python3 scripts/validate-deploy.py deploy/schemas/argo-workflows-v4.1.2.schema.json "$out"/*.yaml
