#!/usr/bin/env bash
# Builds the lab's images, kubewire/node:dev and kubewire/host:dev (images/Dockerfile),
# the way the machine allows:
#
#   online   FROM node:22-bookworm-slim (pulled), `npm ci` from the npm registry inside
#            the build: what `docker compose build` does on a machine with registries.
#   offline  FROM a base image built here (scripts/build-base-image.sh: debootstrap +
#            Node.js), npm packages from a cache filled on the host and copied into the
#            build context (images/offline/npm-cache), `npm ci --offline` inside the build:
#            for machines without an image registry, or whose containers cannot reach the
#            npm registry (these CI machines: TLS interception the containers don't trust).
#   auto     (default) online when node:22-bookworm-slim is present or can be pulled,
#            offline otherwise.
#
# It also writes compose/.env with the build arguments it used, so that afterwards
# `docker compose -f compose/docker-compose.yml build` (or docker-compose) builds the
# same way. Docker's layer cache makes a second run take seconds; the base image and
# the npm cache (KUBEWIRE_CACHE_DIR, default /var/cache/kubewire) are kept between runs.
#
# Usage: scripts/build-images.sh [--offline | --online] [--tag TAG]
set -euo pipefail
cd "$(dirname "$0")/.."

mode=auto
tag=dev
while [ $# -gt 0 ]; do
  case "$1" in
    --offline) mode=offline ;;
    --online) mode=online ;;
    --tag)
      tag=$2
      shift
      ;;
    -h | --help)
      sed -n '2,21p' "$0"
      exit 0
      ;;
    *)
      echo "build-images: unknown argument $1" >&2
      exit 2
      ;;
  esac
  shift
done

log() { printf 'build-images: %s\n' "$*" >&2; }
official=node:22-bookworm-slim
local_base=${KUBEWIRE_LOCAL_BASE_IMAGE:-kubewire/base:node22-bookworm-slim}
cache=${KUBEWIRE_CACHE_DIR:-/var/cache/kubewire}
started=$(date +%s)

if ! docker info >/dev/null 2>&1; then
  log "no Docker engine answers (docker info failed): start dockerd first (scripts/docker-setup.sh)"
  exit 1
fi

if [ "$mode" = auto ]; then
  if [ -n "${KUBEWIRE_BASE_IMAGE:-}" ] && [ "${KUBEWIRE_BASE_IMAGE}" != "$official" ]; then
    mode=offline
  elif docker image inspect "$official" >/dev/null 2>&1 || timeout 60 docker pull -q "$official" >/dev/null 2>&1; then
    mode=online
  else
    log "$official cannot be pulled: building the offline way"
    mode=offline
  fi
fi

if [ "$mode" = online ]; then
  base=${KUBEWIRE_BASE_IMAGE:-$official}
  npm_offline=${KUBEWIRE_NPM_OFFLINE:-0}
else
  base=${KUBEWIRE_BASE_IMAGE:-$local_base}
  npm_offline=${KUBEWIRE_NPM_OFFLINE:-1}
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [ "$base" = "$local_base" ]; then
      bash scripts/build-base-image.sh "$base"
    else
      log "base image $base not found"
      exit 1
    fi
  fi
fi

mkdir -p images/offline
rm -rf images/offline/npm-cache
if [ "$npm_offline" = 1 ]; then
  # Every package of the lockfile, fetched by the host's npm into a cache kept between
  # runs; only what is missing is downloaded.
  log "filling the npm cache $cache/npm from package-lock.json"
  mkdir -p "$cache/npm"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp package.json package-lock.json "$tmp/"
  (cd "$tmp" && npm ci --ignore-scripts --prefer-offline --cache "$cache/npm" \
    --no-audit --no-fund --loglevel=error >/dev/null)
  cp -al "$cache/npm" images/offline/npm-cache 2>/dev/null || cp -a "$cache/npm" images/offline/npm-cache
fi

# The legacy builder unless buildx is there (the Dockerfile works with both).
if [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi
buildlog=$(mktemp /tmp/kubewire-build.XXXXXX.log)
for target in host node; do
  log "building kubewire/$target:$tag (base $base, npm $([ "$npm_offline" = 1 ] && echo offline || echo online))"
  if ! docker build --force-rm -f images/Dockerfile --target "$target" \
    --build-arg BASE_IMAGE="$base" --build-arg NPM_OFFLINE="$npm_offline" \
    -t "kubewire/$target:$tag" . >"$buildlog" 2>&1; then
    tail -n 40 "$buildlog" >&2
    log "docker build failed (whole log: $buildlog)"
    exit 1
  fi
done
rm -f "$buildlog"
# images/offline/npm-cache stays (git ignores it): `docker compose build` with the
# compose/.env below uses it too.

cat >compose/.env <<EOF
# Written by scripts/build-images.sh ($mode build): the build arguments it used.
KUBEWIRE_BASE_IMAGE=$base
KUBEWIRE_NPM_OFFLINE=$npm_offline
EOF
log "kubewire/node:$tag and kubewire/host:$tag ready in $(($(date +%s) - started)) s"
