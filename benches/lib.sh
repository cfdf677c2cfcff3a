# Shared by the end-to-end bench scripts (sourced): a temp dir removed on exit with the
# server started last, and starting a server pinned to a core.
#
#   . benches/lib.sh
#   pin_start CORE CMD...   runs CMD on CORE in the background; sets $pid and $addr (from its
#                           "listening on http://ADDR" line) once /v2/health/ready answers
#   pin_stop                stops it
#   loadtest_rate CONNS URL closed-loop req/s from core 1 (needs $dur)
#   client_bg CONNS URL OUT [get]  starts $client (wrk|loadtest) on core 1 for $dur s in the
#                           background, its report in OUT; sets $client_pid
#   client_rate OUT         the achieved req/s of that report
#   client_run CONNS URL    both in the foreground: prints the achieved req/s
#   achieved                the achieved req/s of a vane-loadtest report on stdin
bin=target/release
ORT_DYLIB_PATH="$(scripts/setup-ort.sh)"
export ORT_DYLIB_PATH
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

pin_start() {
  local core=$1; shift
  taskset -c "$core" "$@" > "$tmp/out" 2> "$tmp/err" &
  pid=$!
  addr=
  for _ in $(seq 1 600); do
    addr=$(sed -n 's|^listening on http://||p' "$tmp/out" | head -n1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "server did not start: $*" >&2; cat "$tmp/err" >&2; exit 1; }
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://$addr/v2/health/ready" && return 0
    sleep 0.1
  done
}
pin_stop() { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=; }

# achieved: the achieved req/s of a vane-loadtest report on stdin.
achieved() { awk '/^requests/ {for (i = 1; i <= NF; i++) if ($i == "achieved") {sub("/s", "", $(i+1)); print $(i+1)}}'; }

# loadtest_rate CONNS URL: closed-loop req/s of vane-loadtest on core 1 posting $tmp/row.json
# for $dur seconds (after a 1 s warm-up).
loadtest_rate() {
  local client=loadtest
  client_run "$@"
}

# The example row as a V2 JSON tensor request, in $tmp/row.json.
row='[58000, 21.4, 62.0, 1, 2, 84, 3, 15000, 13.9, 512, 9, 21, 0, 14, 684, 0.26, 1, 0, 0, 2]'
echo "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,20],\"datatype\":\"FP32\",\"data\":$row}]}" > "$tmp/row.json"

# client_bg CONNS URL OUT [get]: $client (wrk, or vane-loadtest after a 1 s warm-up)
# closed-loop from core 1 for $dur seconds in the background, posting $tmp/row.json (with
# `get`: a bodiless GET, wrk only); its report goes to OUT.
client_bg() {
  if [ "$client" = wrk ] && [ "${4:-}" = get ]; then
    taskset -c 1 wrk -t1 -c"$1" -d"${dur}s" "$2" > "$3" &
  elif [ "$client" = wrk ]; then
    WRK_BODY_FILE="$tmp/row.json" taskset -c 1 wrk -t1 -c"$1" -d"${dur}s" \
      -s benches/wrk/post.lua "$2" > "$3" &
  else
    taskset -c 1 "$bin/vane-loadtest" --body "$tmp/row.json" --target "$2" -c "$1" \
      -d "${dur}s" --warmup 1s --progress off > "$3" &
  fi
  client_pid=$!
}

# client_rate OUT: the achieved req/s of a client_bg report.
client_rate() {
  if [ "$client" = wrk ]; then awk '/^Requests\/sec/ {print $2}' "$1"; else achieved < "$1"; fi
}

# client_run CONNS URL: client_bg in the foreground; prints its achieved req/s.
client_run() {
  client_bg "$1" "$2" "$tmp/client.out"
  wait "$client_pid"
  client_rate "$tmp/client.out"
}
