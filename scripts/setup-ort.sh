#!/usr/bin/env bash
# Fetches ONNX Runtime's shared library from the PyPI wheel onnxruntime==1.31.1 into Vane's
# cache and prints its path. Idempotent: a second run only prints the path.
#
#   ORT_DYLIB_PATH=$(scripts/setup-ort.sh)
#
# Cache: $VANE_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/vane)/onnxruntime/<version>/
set -euo pipefail

version=1.31.1
cache_root="${VANE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vane}"
dest="$cache_root/onnxruntime/$version"
lib="$dest/libonnxruntime.so.$version"

if [ -s "$lib" ]; then
  echo "$lib"
  exit 0
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "setup-ort: $python not found (needed to fetch the onnxruntime wheel with pip)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup-ort: downloading onnxruntime==$version from PyPI" >&2
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "onnxruntime==$version" -d "$tmp" >&2
whl=$(ls "$tmp"/onnxruntime-"$version"-*.whl 2>/dev/null | head -n 1)
[ -n "$whl" ] || { echo "setup-ort: pip did not produce an onnxruntime $version wheel" >&2; exit 1; }

mkdir -p "$dest"
"$python" - "$whl" "$dest" "$version" <<'PY'
import os, sys, zipfile
whl, dest, version = sys.argv[1:4]
member = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(whl) as z:
    data = z.read(member)
tmp = os.path.join(dest, f".libonnxruntime.so.{version}.{os.getpid()}")
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, os.path.join(dest, f"libonnxruntime.so.{version}"))
PY
echo "setup-ort: installed $lib" >&2
echo "$lib"
