#!/usr/bin/env bash
# Waits until the compose lab's node containers are healthy: `up --wait` for
# docker-compose 1.29, which does not have it.
#
#   docker-compose -f compose/docker-compose.yml up -d && scripts/compose-wait.sh [TIMEOUT_S]
#
# Extra compose options (-p PROJECT, another -f) go in COMPOSE_OPTS. Exits non-zero,
# with the containers' last log lines, if a node container exits or turns unhealthy,
# or after TIMEOUT_S (default 180) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout=${1:-180}
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
# shellcheck disable=SC2206
dc=("${compose[@]}" -f compose/docker-compose.yml ${COMPOSE_OPTS:-})
nodes=(control-plane worker-1 worker-2)
start=$(date +%s)
declare -A ids=()
while :; do
  states=()
  for s in "${nodes[@]}"; do
    [ -n "${ids[$s]:-}" ] || ids[$s]=$("${dc[@]}" ps -q "$s" 2>/dev/null || true)
    if [ -z "${ids[$s]}" ]; then
      states+=("$s:missing")
      continue
    fi
    states+=("$s:$(docker inspect -f '{{.State.Status}}{{if .State.Health}}/{{.State.Health.Status}}{{end}}' "${ids[$s]}")")
  done
  case " ${states[*]} " in
    *exited* | *dead* | *unhealthy*)
      echo "compose-wait: ${states[*]}" >&2
      "${dc[@]}" logs --tail 20 "${nodes[@]}" >&2 || true
      exit 1
      ;;
  esac
  ready=1
  for st in "${states[@]}"; do [ "${st#*:}" = running/healthy ] || ready=0; done
  if [ "$ready" = 1 ]; then
    echo "compose-wait: lab ready in $(($(date +%s) - start)) s"
    exit 0
  fi
  if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
    echo "compose-wait: not ready after $timeout s: ${states[*]}" >&2
    exit 1
  fi
  sleep 0.5
done
