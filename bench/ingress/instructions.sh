#!/usr/bin/env bash
# User-space instructions per request of each proxy, counted by valgrind (callgrind), on
# loopback only: the same setup as run.sh, but a count that does not depend on what else
# the machine runs (requests/s and CPU time do, a lot, on a shared VM). Kernel time (the
# socket calls, the same for both proxies) is not counted.
#
#   bash bench/ingress/instructions.sh     (after `npx tsc -p .`; needs nginx and valgrind)
#   BASELINE=/path/to/other/checkout bash bench/ingress/instructions.sh
#
# Each proxy runs under callgrind with instrumentation off; WARM requests warm it up (the
# JIT), then instrumentation is switched on for REQUESTS requests (16 keep-alive
# connections, dist/bench/ingress/load.js). Takes a few minutes.
# Env: WARM (default 10000), REQUESTS (5000), BASELINE.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
WARM="${WARM:-10000}"
REQUESTS="${REQUESTS:-5000}"
BASELINE="${BASELINE:-}"
UP_PORT=18290 NGINX_PORT=18291 PORT=18292 TLS_PORT=18692
work="$(mktemp -d /tmp/kw-ingress-instr.XXXXXX)"
vg=''
cleanup() {
  [ -n "$vg" ] && kill "$vg" 2>/dev/null || true
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT

. "$here/configs.sh"
write_configs
# nginx in the foreground, one process, on the port the proxies under test use
sed -e 's/^worker_processes 1;/worker_processes 1;\ndaemon off;\nmaster_process off;/' \
  -e "s/listen 127.0.0.1:$NGINX_PORT;/listen 127.0.0.1:$PORT;/" -e "s#$work/px.pid#$work/pxv.pid#" \
  "$work/proxy.conf" >"$work/proxy-fg.conf"
nginx -c "$work/upstream.conf" -p "$work"
load="$root/dist/bench/ingress/load.js"

count() { # name command...
  local name=$1
  shift
  rm -f "$work"/cg.*
  valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
    --callgrind-out-file="$work/cg.%p" "$@" >/dev/null 2>"$work/$name.err" &
  vg=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null -H 'Host: blog.webapp.com' "http://127.0.0.1:$PORT/blog/x" && break
    sleep 0.2
  done
  node "$load" "$PORT" "$WARM" 16 >/dev/null
  callgrind_control -i on "$vg" >/dev/null 2>&1
  node "$load" "$PORT" "$REQUESTS" 16 >/dev/null
  callgrind_control -i off "$vg" >/dev/null 2>&1
  callgrind_control -d "$vg" >/dev/null 2>&1
  sleep 1
  kill "$vg"
  wait "$vg" 2>/dev/null || true
  vg=''
  local ir
  ir="$(cat "$work"/cg.* | awk '/^(summary|totals):/ {s += $2} END {printf "%.0f", s}')"
  awk -v name="$name" -v ir="$ir" -v n="$REQUESTS" \
    'BEGIN { printf "%-10s %8.0f instructions/request\n", name, ir / n }'
}

kw() { # checkout
  count "$2" node "$1/dist/src/ingress/main.js" --manifests "$work/manifests" \
    --listen-address 127.0.0.1 --http-port "$PORT" --https-port "$TLS_PORT"
}
count nginx nginx -c "$work/proxy-fg.conf" -p "$work"
kw "$root" kubewire
[ -n "$BASELINE" ] && kw "$BASELINE" baseline
exit 0
