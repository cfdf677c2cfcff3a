#!/usr/bin/env bash
# Builds the `vane` container image (the Dockerfile) and smoke-tests it the way
# deploy/k8s/base/vane.yaml runs it.
#
#   scripts/build-image.sh [--tag vane:0.1.0] [--offline-bases] [--no-smoke | --smoke-only]
#
# --offline-bases  for machines that reach Debian's mirror and static.rust-lang.org but not
#                  Docker Hub: first builds local stand-ins for the two base images,
#                  debian:bookworm-slim (debootstrap --variant=minbase) and rust:1.95-bookworm
#                  (deploy/docker/rust-bookworm.Dockerfile). They trust this machine's extra
#                  CAs (/usr/local/share/ca-certificates), so a TLS-intercepting egress proxy
#                  works inside them. Needs root and debootstrap.
#
# The smoke test, each step as the cluster does it:
#   1. `vane --version` and `--help` in the image;
#   2. the init container: `vane-setup-ort` into a fresh named volume at /var/cache/vane;
#   3. `vane demo` inside the container (the whole loop) with that cache: a model with its AUC,
#      drift flagged after the injection and not before;
#   4. the pod: `vane serve` (user 10001, read-only root filesystem, the ORT cache) and the
#      `vane monitor serve` sidecar (read-only root, its own cache volume) in its network
#      namespace, both reading MLflow (when `mlflow` is installed: a local server the demo's
#      data is trained into) or else the demo's directory registry; ready, served by ONNX
#      Runtime, 3 s of load from `vane loadtest` without an error, the sidecar scoring the
#      server's samples against the reference profile;
#   5. `docker stop`: SIGTERM drains the server, which exits 0 within the grace period;
#   6. with kubectl, redis-server and mlflow installed: deploy/k8s's own workloads, as
#      rendered, run in Docker (scripts/k8s-in-docker.py).
set -euo pipefail
cd "$(dirname "$0")/.."

tag=vane:0.1.0
offline=0
build=1
smoke=1
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --offline-bases) offline=1; shift ;;
    --no-smoke) smoke=0; shift ;;
    --smoke-only) build=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { printf '\n== %s\n' "$*"; }
fail() { echo "build-image: FAILED: $*" >&2; exit 1; }
command -v docker >/dev/null || fail "docker not found"
docker info >/dev/null 2>&1 || fail "no Docker daemon answers (start dockerd)"

if [ "$offline" = 1 ]; then
  say "stand-in base images (Docker Hub not used)"
  command -v debootstrap >/dev/null || fail "debootstrap not found (apt-get install debootstrap)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" \
    http://deb.debian.org/debian >/dev/null
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  docker build -q -t rust:1.95-bookworm -f deploy/docker/rust-bookworm.Dockerfile deploy/docker >/dev/null
  echo "debian:bookworm-slim and rust:1.95-bookworm built locally"
fi

if [ "$build" = 1 ]; then
  say "docker build -t $tag ."
  start=$(date +%s)
  docker build -t "$tag" .
  echo "built $tag in $(( $(date +%s) - start )) s"
fi
echo "image $tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"

[ "$smoke" = 1 ] || exit 0

run_id=vane-smoke-$$
cache=$run_id-cache
mcache=$run_id-monitor-cache
work=$run_id-work
mlflow_pid=
mdir=
cleanup() {
  docker rm -f "$run_id-monitor" "$run_id-server" >/dev/null 2>&1 || true
  docker volume rm "$cache" "$mcache" "$work" >/dev/null 2>&1 || true
  [ -z "$mlflow_pid" ] || kill -- "-$mlflow_pid" 2>/dev/null || true
  [ -z "$mdir" ] || rm -rf "$mdir"
}
trap 'cleanup; [ -z "${root:-}" ] || rm -rf "$root"' EXIT

say "1. the binary"
docker run --rm "$tag" --version
help=$(docker run --rm "$tag" --help)
printf '%s\n' "$help" | head -n 3

say "2. init container: ONNX Runtime from the PyPI wheel into a fresh volume"
docker volume create "$cache" >/dev/null
docker volume create "$work" >/dev/null
docker run --rm -v "$cache:/var/cache/vane" --entrypoint sh "$tag" -c vane-setup-ort

say "3. vane demo inside the container"
docker run --rm -v "$cache:/var/cache/vane" -v "$work:/home/vane/work" "$tag" \
  demo --dir /home/vane/work/demo 2>&1 | tee "/tmp/$run_id-demo.log"
summary=$(grep "done. Model" "/tmp/$run_id-demo.log") || fail "the demo printed no summary"
case "$summary" in
  *"AUC"*"before injection: none, after: none"*) fail "the demo flagged no drift after injection" ;;
  *"AUC"*"before injection: none, after: "*) ;;
  *) fail "unexpected demo summary: $summary" ;;
esac

# The registry the pod reads: MLflow, as deploy/k8s configures it, when `mlflow` is installed
# (a server on the Docker bridge, the demo's training data published to it from the image);
# else the demo's directory registry, read-only.
registry=/work/demo/registry
if command -v mlflow >/dev/null 2>&1 && mlflow --version >/dev/null 2>&1; then
  gw=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
  mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mdir=$(mktemp -d)
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid mlflow server \
    --backend-store-uri "sqlite:///$mdir/mlflow.db" --artifacts-destination "$mdir/art" \
    --serve-artifacts --host "$gw" --port "$mport" --workers 1 >"$mdir/mlflow.log" 2>&1 &
  mlflow_pid=$!
  for _ in $(seq 1 120); do
    curl -fsS "http://$gw:$mport/health" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS "http://$gw:$mport/health" >/dev/null || { tail "$mdir/mlflow.log"; fail "MLflow did not start"; }
  registry=mlflow://$gw:$mport
  docker run --rm -v "$work:/home/vane/work" --entrypoint sh "$tag" -c \
    "cd /home/vane/work/demo && vane train --repo data/features.toml --data data/applications.parquet \
     --label default_12m --exclude application_id,applicant_id --registry $registry \
     --model credit-risk --alias champion --out train-mlflow" 2>&1 | tail -n 2
fi

say "4. the pod: server (read-only root, user 10001) + monitor sidecar; registry $registry"
docker run -d --name "$run_id-server" --read-only -p 127.0.0.1::8080 \
  -v "$cache:/var/cache/vane" -v "$work:/work:ro" \
  -e VANE_REGISTRY="$registry" -e VANE_MONITOR=tcp://127.0.0.1:9101 \
  -e VANE_SAMPLE_PERCENT=100 -e VANE_ALLOW_MISSING=true -e VANE_HTTP_THREADS=1 -e VANE_WORKERS=1 \
  -e VANE_SHUTDOWN_GRACE_S=20 \
  "$tag" serve --addr 0.0.0.0:8080 --backend ort >/dev/null
docker run -d --name "$run_id-monitor" --read-only --network "container:$run_id-server" \
  -v "$mcache:/var/cache/vane" -v "$work:/work:ro" -e VANE_REGISTRY="$registry" \
  "$tag" monitor serve --listen tcp://127.0.0.1:9101 --http 127.0.0.1:9102 >/dev/null
port=$(docker port "$run_id-server" 8080/tcp | head -n 1 | sed 's/.*://')
base=http://127.0.0.1:$port
for _ in $(seq 1 120); do
  curl -fsS "$base/v2/health/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$base/v2/health/ready" >/dev/null || { docker logs "$run_id-server"; fail "server not ready"; }
meta=$(curl -fsS "$base/v2/models/credit-risk")
echo "metadata: $meta" | cut -c1-300
backend=$(printf '%s' "$meta" | python3 -c 'import json,sys; print(json.load(sys.stdin)["parameters"]["backend"])')
[ "$backend" = ort ] || fail "served by $backend, not ONNX Runtime"
docker run --rm --network "container:$run_id-server" -v "$work:/work:ro" --entrypoint sh "$tag" -c \
  'vane loadtest --target http://127.0.0.1:8080 --model credit-risk --data /work/demo/data/joined.parquet --format tensor --rate 500 --duration 3s --json /home/vane/load.json >&2 && cat /home/vane/load.json' \
  > "/tmp/$run_id-load.json" || fail "loadtest failed"
python3 - "/tmp/$run_id-load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"loadtest: {r['ok']} ok of {r['requests']}, errors {r['errors']}, "
      f"p99 {r['latency_us'].get('p99')} us")
if not r["ok"] or r["errors"]:
    sys.exit("loadtest saw errors or no request")
PY
rows=$(docker run --rm --network "container:$run_id-server" --entrypoint sh "$tag" -c \
  "python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:9102/metrics').read().decode())\"" \
  | awk '/^vane_monitor_rows_total\{.*outcome="accepted"/ {s += $2} END {print s + 0}')
echo "monitor sidecar received $rows sampled rows"
[ "${rows%.*}" -gt 0 ] || fail "the monitor sidecar received no samples"

say "5. docker stop: SIGTERM → drain → exit 0"
t0=$(date +%s.%N)
docker stop -t 30 "$run_id-server" >/dev/null
t1=$(date +%s.%N)
code=$(docker inspect -f '{{.State.ExitCode}}' "$run_id-server")
printf 'server stopped in %.1f s, exit code %s\n' "$(echo "$t1 - $t0" | bc)" "$code"
[ "$code" = 0 ] || { docker logs --tail 20 "$run_id-server"; fail "server exit code $code"; }
rm -f "/tmp/$run_id-demo.log" "/tmp/$run_id-load.json"

if command -v kubectl >/dev/null && command -v redis-server >/dev/null && command -v mlflow >/dev/null; then
  say "6. deploy/k8s's workloads in Docker (scripts/k8s-in-docker.py)"
  python3 scripts/k8s-in-docker.py --image "$tag"
else
  echo "(skipped deploy/k8s's workloads in Docker: needs kubectl, redis-server and mlflow)"
fi
say "image $tag: build and smoke test passed"
