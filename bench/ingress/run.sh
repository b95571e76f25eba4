#!/usr/bin/env bash
# kubewire ingress vs Debian's nginx, side by side in one run, on loopback only.
#
#   bash bench/ingress/run.sh            (after `npx tsc -p .`; needs nginx and wrk)
#   BASELINE=/path/to/other/checkout bash bench/ingress/run.sh
#                                        (also that checkout's dist/, e.g. main's, as "baseline")
#
# Both proxies serve host blog.webapp.com with the seed's location and rewrite
#   location ~* "^/blog(/|$)(.*)" { rewrite "(?i)/blog(/|$)(.*)" /blogroll/$2 break; }
# to one upstream (an nginx `return 200` server) over keep-alive HTTP/1.1, and write an
# access log in ingress-nginx's format (to /dev/null). Proxies run on CPU 0 (nginx: 1
# worker; kubewire: 1 process); wrk and the upstream share CPU 1.
# Besides wrk's requests/s, each proxy's own CPU time per request is printed (all its
# threads, from /proc/PID/task/*/schedstat over the measured run): on a shared machine
# it moves much less than requests/s, which also depends on what else runs on the CPUs.
# Env: DURATION (default 10s), CONNECTIONS (64), CPU_PROXY (0), CPU_LOAD (1), BASELINE.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
CPU_PROXY="${CPU_PROXY:-0}"
CPU_LOAD="${CPU_LOAD:-1}"
BASELINE="${BASELINE:-}"
UP_PORT=18090 NGINX_PORT=18091 KW_PORT=18092 KW_TLS=18493 BASE_PORT=18094 BASE_TLS=18494
work="$(mktemp -d /tmp/kw-ingress-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/px.pid" ] && kill "$(cat "$work/px.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT

. "$here/configs.sh"
write_configs

taskset -c "$CPU_LOAD" nginx -c "$work/upstream.conf" -p "$work"
taskset -c "$CPU_PROXY" nginx -c "$work/proxy.conf" -p "$work"
taskset -c "$CPU_PROXY" node "$root/dist/src/ingress/main.js" --manifests "$work/manifests" \
  --listen-address 127.0.0.1 --http-port "$KW_PORT" --https-port "$KW_TLS" >/dev/null 2>"$work/kw.err" &
kw_pid=$!
pids+=($kw_pid)
if [ -n "$BASELINE" ]; then
  taskset -c "$CPU_PROXY" node "$BASELINE/dist/src/ingress/main.js" --manifests "$work/manifests" \
    --listen-address 127.0.0.1 --http-port "$BASE_PORT" --https-port "$BASE_TLS" >/dev/null 2>"$work/base.err" &
  base_pid=$!
  pids+=($base_pid)
fi
for port in $KW_PORT ${BASELINE:+$BASE_PORT}; do
  for i in $(seq 100); do
    curl -s -o /dev/null -H 'Host: blog.webapp.com' "http://127.0.0.1:$port/blog/x" && break
    sleep 0.1
  done
done

check() { curl -s -H 'Host: blog.webapp.com' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/blog/hello-world"; }
[ "$(check $NGINX_PORT)" = 200 ] || { echo "nginx proxy not answering" >&2; exit 1; }
[ "$(check $KW_PORT)" = 200 ] || { echo "kubewire ingress not answering" >&2; cat "$work/kw.err" >&2; exit 1; }
if [ -n "$BASELINE" ]; then
  [ "$(check $BASE_PORT)" = 200 ] || { echo "baseline not answering" >&2; cat "$work/base.err" >&2; exit 1; }
fi

# On-CPU nanoseconds of every thread of the given processes.
cpu_ns() {
  local t=0 p f a
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r a _ <"$f" 2>/dev/null && t=$((t + a))
    done
  done
  echo "$t"
}

bench() { # name port pid...
  local name=$1 port=$2
  shift 2
  taskset -c "$CPU_LOAD" wrk -t1 -c"$CONNECTIONS" -d5s -H 'Host: blog.webapp.com' "http://127.0.0.1:$port/blog/hello-world" >/dev/null # warm-up
  local c0 c1
  c0="$(cpu_ns "$@")"
  taskset -c "$CPU_LOAD" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H 'Host: blog.webapp.com' \
    "http://127.0.0.1:$port/blog/hello-world" >"$work/$name.txt"
  c1="$(cpu_ns "$@")"
  local rps p99 n
  rps="$(awk '/Requests\/sec/ {print $2}' "$work/$name.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$work/$name.txt")"
  n="$(awk '/requests in/ {print $1}' "$work/$name.txt")"
  awk -v name="$name" -v rps="$rps" -v p99="$p99" -v n="$n" -v c=$((c1 - c0)) \
    'BEGIN { printf "%-18s %12s req/s   p99 %-9s %7.1f µs CPU/request\n", name, rps, p99, c / n / 1000 }'
  echo "$rps" >"$work/$name.rps"
}
echo "wrk -t1 -c$CONNECTIONS -d$DURATION, proxy on CPU $CPU_PROXY, wrk + upstream on CPU $CPU_LOAD; load average $(cut -d' ' -f1-3 /proc/loadavg)"
nginx_master="$(cat "$work/px.pid")"
bench nginx "$NGINX_PORT" "$nginx_master" $(pgrep -P "$nginx_master")
bench kubewire "$KW_PORT" "$kw_pid"
[ -n "$BASELINE" ] && bench baseline "$BASE_PORT" "$base_pid"
awk -v a="$(cat "$work/kubewire.rps")" -v b="$(cat "$work/nginx.rps")" \
  'BEGIN { printf "kubewire / nginx: %.1f%%\n", 100 * a / b }'
if [ -n "$BASELINE" ]; then
  awk -v a="$(cat "$work/baseline.rps")" -v b="$(cat "$work/nginx.rps")" \
    'BEGIN { printf "baseline / nginx: %.1f%%\n", 100 * a / b }'
fi
