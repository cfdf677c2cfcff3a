#!/usr/bin/env bash
# Validates everything Vane ships for a cluster, against pinned schemas:
# - the pipeline file rendered as Argo Workflows (the demo's settings and a cluster's) against
#   Argo's JSON schema (deploy/schemas/argo-workflows-v4.1.2.schema.json);
# - deploy/k8s (the base, and the example overlay rendered with `kubectl kustomize`) with
#   kubernetes-validate --strict against Kubernetes $K8S_VERSION, and the ServiceMonitor and
#   PrometheusRule against prometheus-operator's CRDs (deploy/schemas/, v0.93.0);
# - the PrometheusRule is the shipped deploy/prometheus/vane-rules.yml (regenerate: --write).
# Unknown fields are refused everywhere. Run by .ci/run after the tests.
#
#   scripts/validate-deploy.sh            (VANE_BIN=path/to/vane, default target/debug/vane,
#                                          built if missing; K8S_VERSION, default 1.32.0)
#   scripts/validate-deploy.sh --write    regenerate deploy/k8s/base/prometheusrule.yaml
#
# Needs python3 with jsonschema, PyYAML and kubernetes-validate (PyPI), and kubectl (for its
# built-in kustomize).
set -euo pipefail
cd "$(dirname "$0")/.."

schemas=deploy/schemas
crds=(--crd "$schemas/prometheus-operator-v0.93.0-servicemonitors.crd.yaml"
      --crd "$schemas/prometheus-operator-v0.93.0-prometheusrules.crd.yaml")
if [ "${1:-}" = --write ]; then
  exec python3 scripts/validate-deploy.py --rules deploy/prometheus/vane-rules.yml \
    --write-rule deploy/k8s/base/prometheusrule.yaml
fi

vane="${VANE_BIN:-target/debug/vane}"
[ -x "$vane" ] || cargo build -q --locked -p vane-cli
command -v kubectl >/dev/null || { echo "validate-deploy: kubectl (with kustomize) is needed" >&2; exit 1; }
command -v kubernetes-validate >/dev/null || { echo "validate-deploy: pip install kubernetes-validate" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$vane" pipeline render --argo pipelines/credit-risk.toml > "$out/workflow-demo.yaml"
"$vane" pipeline render --argo pipelines/credit-risk.toml --image registry.example.com/ml/vane:0.1.0 \
  --volume-claim vane-data --mount /data \
  --set work=/data --set repo=/data/repo/features.toml \
  --set applications=/data/offline/applications.parquet \
  --set verdict_rows=/data/offline/joined.parquet \
  --set store=redis://redis:6379 --set registry=mlflow://mlflow:5000 \
  --set server=http://vane:8080 > "$out/workflow-cluster.yaml"
kubectl kustomize deploy/k8s/base > "$out/k8s-base.yaml"
kubectl kustomize deploy/k8s/overlays/example > "$out/k8s-example.yaml"

version="${K8S_VERSION:-1.32.0}"
# Built-in kinds (warnings off: it has no schema for the CRD kinds, checked below).
files=("$out/k8s-base.yaml" "$out/k8s-example.yaml" deploy/k8s/overlays/example/namespace.yaml)
for f in deploy/k8s/base/*.yaml; do [ "$(basename "$f")" = kustomization.yaml ] || files+=("$f"); done
kubernetes-validate --strict --quiet --no-warn -k "$version" "${files[@]}"
echo "kubernetes-validate --strict -k $version: deploy/k8s base, overlay and files valid"
python3 scripts/validate-deploy.py --argo "$schemas/argo-workflows-v4.1.2.schema.json" "${crds[@]}" \
  --rules deploy/prometheus/vane-rules.yml "$out"/*.yaml
