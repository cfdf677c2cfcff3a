#!/usr/bin/env bash
# Renders the drift report in headless Chromium (Debian's `chromium` package) and saves a
# screenshot, to check the page a person reads.
#
#   scripts/report-screenshot.sh [URL|report.html] [out.png]
#
# Without arguments it builds vane-monitor, writes the report of the committed comparison
# fixtures (monitor/tests/fixtures: a shifted income, a changed purpose mix, an unseen term)
# and screenshots it to target/report.png. Pass a live monitor's URL
# (http://127.0.0.1:9102/report) or an HTML file to screenshot that instead.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${2:-target/report.png}"
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "report-screenshot: install Chromium first (apt-get install chromium)" >&2; exit 1; }

src="${1:-}"
if [ -z "$src" ]; then
  cargo build --quiet -p vane-monitor
  src=target/report.html
  target/debug/vane-monitor compare \
    --reference monitor/tests/fixtures/reference.csv \
    --current monitor/tests/fixtures/current.csv \
    --categorical grade --html "$src" > target/report.json
fi
case "$src" in
  http://*|https://*) url="$src" ;;
  *) url="file://$(realpath "$src")" ;;
esac
mkdir -p "$(dirname "$out")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# The flags keep Chromium off the network (this machine has none) and out of the sandbox
# (root in a container).
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1400,1600 \
  --screenshot="$(realpath -m "$out")" "$url" 2>/dev/null
[ -s "$out" ] || { echo "report-screenshot: no screenshot written" >&2; exit 1; }
echo "$out"
