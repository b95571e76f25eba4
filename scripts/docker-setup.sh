#!/usr/bin/env bash
# Makes sure a Docker engine and compose are installed and running, on Debian-like
# machines (CI, fresh VMs): installs Debian's docker.io and docker-compose when they are
# missing, starts dockerd when no engine answers (systemd's docker service where systemd
# runs, else dockerd in the background, logging to /var/log/kubewire-dockerd.log), and
# waits until it answers. Exits non-zero, saying why, when it cannot.
#
# Usage (as root): scripts/docker-setup.sh
set -euo pipefail

log() { printf 'docker-setup: %s\n' "$*" >&2; }
compose_ok() { docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker >/dev/null 2>&1 || need+=(docker.io)
compose_ok || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing ${need[*]} and not root: install them (apt-get install docker.io docker-compose)"
    exit 1
  fi
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  log "engine running: $(docker version -f '{{.Server.Version}}' 2>/dev/null), compose: $(docker compose version --short 2>/dev/null || docker-compose version --short 2>/dev/null)"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "no Docker engine answers and not root: start it (systemctl start docker)"
  exit 1
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  log "starting the docker service"
  systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is running but not answering yet"
  else
    log "starting dockerd (log: /var/log/kubewire-dockerd.log)"
    setsid dockerd >>/var/log/kubewire-dockerd.log 2>&1 </dev/null &
  fi
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "engine running: $(docker version -f '{{.Server.Version}}' 2>/dev/null)"
    exit 0
  fi
  sleep 1
done
log "the Docker engine did not start within 60 s; last lines of its log:"
tail -n 30 /var/log/kubewire-dockerd.log >&2 2>/dev/null || true
exit 1
