# Configuration shared by run.sh and instructions.sh: write_configs writes, under $work,
# the upstream nginx (return 200 on $UP_PORT), the nginx proxy under test ($NGINX_PORT:
# the seed's location, ingress-nginx's headers and log format) and the manifests of the
# equivalent Ingress for kubewire (an Endpoints object pointing at the upstream).
# shellcheck shell=bash
write_configs() {
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
}
