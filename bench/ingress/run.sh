#!/usr/bin/env bash
# kubewire ingress vs Debian's nginx, side by side in one run, on loopback only.
#
#   bash bench/ingress/run.sh            (after `npx tsc -p .`; needs nginx and wrk)
#
# Both proxies serve host blog.webapp.com with the seed's location and rewrite
#   location ~* "^/blog(/|$)(.*)" { rewrite "(?i)/blog(/|$)(.*)" /blogroll/$2 break; }
# to one upstream (an nginx `return 200` server) over keep-alive HTTP/1.1, and write an
# access log in ingress-nginx's format (to /dev/null). Proxies run on CPU 0 (nginx: 1
# worker; kubewire: 1 process); wrk and the upstream share CPU 1.
# Env: DURATION (default 10s), CONNECTIONS (64), CPU_PROXY (0), CPU_LOAD (1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
CPU_PROXY="${CPU_PROXY:-0}"
CPU_LOAD="${CPU_LOAD:-1}"
UP_PORT=18090 NGINX_PORT=18091 KW_PORT=18092 KW_TLS=18493
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

cat >"$work/upstream.conf" <<CONF
worker_processes 1;
pid $work/up.pid;
error_log $work/up-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$UP_PORT;
    keepalive_requests 1000000;
    location / { return 200 "ok\n"; }
  }
}
CONF

cat >"$work/proxy.conf" <<CONF
worker_processes 1;
pid $work/px.pid;
error_log $work/px-error.log;
events { worker_connections 4096; }
http {
  log_format upstreaminfo '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" \$request_length \$request_time [\$proxy_host] [] \$upstream_addr \$upstream_response_length \$upstream_response_time \$upstream_status \$request_id';
  access_log /dev/null upstreaminfo;
  upstream upstream_balancer { server 127.0.0.1:$UP_PORT; keepalive 320; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    server_name blog.webapp.com;
    keepalive_requests 1000000;
    location ~* "^/blog(/|\$)(.*)" {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Request-ID \$request_id;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-Port \$server_port;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Scheme \$scheme;
      proxy_set_header X-Scheme \$scheme;
      rewrite "(?i)/blog(/|\$)(.*)" /blogroll/\$2 break;
      proxy_pass http://upstream_balancer;
    }
  }
}
CONF

mkdir -p "$work/manifests"
cat >"$work/manifests/bench.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: v1
kind: Service
metadata: {name: blog}
spec:
  ports: [{port: 80, targetPort: $UP_PORT}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: blog}
subsets:
- addresses: [{ip: 127.0.0.1}]
  ports: [{port: $UP_PORT}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: blog
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /blogroll/\$2
spec:
  rules:
  - host: blog.webapp.com
    http:
      paths:
      - path: /blog(/|$)(.*)
        pathType: ImplementationSpecific
        backend: {service: {name: blog, port: {number: 80}}}
YAML

taskset -c "$CPU_LOAD" nginx -c "$work/upstream.conf" -p "$work"
taskset -c "$CPU_PROXY" nginx -c "$work/proxy.conf" -p "$work"
taskset -c "$CPU_PROXY" node "$root/dist/src/ingress/main.js" --manifests "$work/manifests" \
  --listen-address 127.0.0.1 --http-port "$KW_PORT" --https-port "$KW_TLS" >/dev/null 2>"$work/kw.err" &
pids+=($!)
for i in $(seq 50); do
  curl -s -o /dev/null -H 'Host: blog.webapp.com' "http://127.0.0.1:$KW_PORT/blog/x" && break
  sleep 0.1
done

check() { curl -s -H 'Host: blog.webapp.com' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/blog/hello-world"; }
[ "$(check $NGINX_PORT)" = 200 ] || { echo "nginx proxy not answering" >&2; exit 1; }
[ "$(check $KW_PORT)" = 200 ] || { echo "kubewire ingress not answering" >&2; cat "$work/kw.err" >&2; exit 1; }

bench() { # name port
  taskset -c "$CPU_LOAD" wrk -t1 -c"$CONNECTIONS" -d5s -H 'Host: blog.webapp.com' "http://127.0.0.1:$2/blog/hello-world" >/dev/null # warm-up
  taskset -c "$CPU_LOAD" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H 'Host: blog.webapp.com' \
    "http://127.0.0.1:$2/blog/hello-world" >"$work/$1.txt"
  local rps p99
  rps="$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$work/$1.txt")"
  printf '%-18s %12s req/s   p99 %s\n' "$1" "$rps" "$p99"
  echo "$rps" >"$work/$1.rps"
}
echo "wrk -t1 -c$CONNECTIONS -d$DURATION, proxy on CPU $CPU_PROXY, wrk + upstream on CPU $CPU_LOAD"
bench nginx "$NGINX_PORT"
bench kubewire "$KW_PORT"
awk -v a="$(cat "$work/kubewire.rps")" -v b="$(cat "$work/nginx.rps")" \
  'BEGIN { printf "kubewire / nginx: %.1f%%\n", 100 * a / b }'
