#!/usr/bin/env bash
# Time from `up` to ready, and memory per container, of the compose lab
# (compose/docker-compose.yml, images already built: scripts/build-images.sh).
#
#   bench/compose/measure.sh [RUNS]      (default 3)
#
# Each run: `down -v`, then `up -d` timed until every node container is healthy (what
# `docker compose up --wait` waits for), then `docker stats` samples of each container
# SETTLE (default 20) and STEADY (default 120) seconds after that; then `down -v`. The
# peak is the highest of the node containers' figures read every second from `up -d`
# until the STEADY sample (the cgroup's usage less inactive file pages: docker stats'
# figure, read from the cgroup directly).
# It waits while the e2e tier runs (one lab per machine). Prints a Markdown table, with
# the CPU time the lab's containers used until healthy (what bounds the ready time on a
# busy machine: ready >= CPU / cores).
# The project is kubewire-bench; nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
settle=${SETTLE:-20}
steady=${STEADY:-120}
project=kubewire-bench
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
dc() { "${compose[@]}" -p "$project" -f compose/docker-compose.yml "$@"; }
now() { date +%s.%N; }
# CPU time a container has used, in ns (cgroup v1 or v2; 0 when neither is readable).
cpu_ns() {
  local f1=/sys/fs/cgroup/cpuacct/docker/$1/cpuacct.usage f2=/sys/fs/cgroup/system.slice/docker-$1.scope/cpu.stat
  if [ -r "$f1" ]; then cat "$f1"; elif [ -r "$f2" ]; then echo "$(awk '/^usage_usec/ {print $2}' "$f2") * 1000" | bc; else echo 0; fi
}
# A container's memory as docker stats shows it, in bytes: the cgroup's usage less its
# inactive file pages (cgroup v1 or v2; empty when neither is readable).
mem_bytes() {
  local d1=/sys/fs/cgroup/memory/docker/$1 d2=/sys/fs/cgroup/system.slice/docker-$1.scope
  if [ -r "$d1/memory.usage_in_bytes" ]; then
    awk -v u="$(cat "$d1/memory.usage_in_bytes")" '$1 == "total_inactive_file" { print u - $2 }' "$d1/memory.stat"
  elif [ -r "$d2/memory.current" ]; then
    awk -v u="$(cat "$d2/memory.current")" '$1 == "inactive_file" { print u - $2 }' "$d2/memory.stat"
  fi
}
# Raises peak[service] to each node container's current figure.
declare -A peak
sample_peaks() {
  local id svc b
  while read -r id svc; do
    case "$svc" in control-plane | worker-1 | worker-2) ;; *) continue ;; esac
    b=$(mem_bytes "$id" 2>/dev/null || true)
    [ -n "$b" ] && [ "$b" -gt "${peak[$svc]:-0}" ] && peak[$svc]=$b
  done < <(docker ps --no-trunc --filter "label=com.docker.compose.project=$project" \
    --format '{{.ID}} {{.Label "com.docker.compose.service"}}')
  return 0
}
# Sleeps $1 seconds, sampling the peaks every second.
sleep_sampling() {
  local end=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$end" ]; do
    sample_peaks
    sleep 1
  done
}
peaks() {
  local out="" s
  for s in control-plane worker-1 worker-2; do
    out="${out:+$out / }$(awk -v b="${peak[$s]:-0}" 'BEGIN { printf "%.1f", b / 1048576 }')"
  done
  printf '%s' "$out"
}

# One compose lab per machine: the e2e tier's lock (test/e2e/compose-harness.ts).
lock=${TMPDIR:-/tmp}/kubewire-e2e.lock
until mkdir "$lock" 2>/dev/null; do
  owner=$(cat "$lock/pid" 2>/dev/null || true)
  if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then rm -rf "$lock"; continue; fi
  echo "waiting for pid ${owner:-?} ($lock)" >&2
  sleep 5
done
echo $$ >"$lock/pid"
trap 'dc down -v -t 20 >/dev/null 2>&1 || true; rm -rf "$lock"' EXIT
# "service MiB" lines, one per container of the project, from one `docker stats` sample.
mem_sample() {
  docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' \
    $(docker ps -q --filter "label=com.docker.compose.project=$project") |
    sed -E "s/^${project}[-_]([a-z0-9-]+)[-_][0-9]+ ([0-9.]+)([KMG]i?B) .*/\1 \2 \3/" |
    awk '{ v=$2; if ($3 ~ /^K/) v/=1024; if ($3 ~ /^G/) v*=1024; printf "%s %.1f\n", $1, v }'
}
# The values of the named services in a sample, joined with " / ".
pick() {
  local sample=$1 out="" s v
  shift
  for s in "$@"; do
    v=$(printf '%s\n' "$sample" | awk -v s="$s" '$1 == s { print $2 }')
    out="${out:+$out / }${v:-?}"
  done
  printf '%s' "$out"
}

echo "compose: $("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -1)," \
  "engine $(docker version -f '{{.Server.Version}}'), $(nproc) CPUs," \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | up -d returned (s) | all nodes healthy (s) | CPU used until healthy (s) | peak MiB: control-plane / worker-1 / worker-2 | MiB at +${settle} s: control-plane / worker-1 / worker-2 | MiB at +${steady} s: control-plane / worker-1 / worker-2 | router, client MiB | load avg |"
echo "|---|---|---|---|---|---|---|---|---|"
for run in $(seq 1 "$runs"); do
  dc down -v -t 20 >/dev/null 2>&1 || true
  peak=()
  t0=$(now)
  dc up -d --no-build >/dev/null 2>&1
  t1=$(now)
  deadline=$(($(date +%s) + 180))
  next_sample=0
  while :; do
    if [ "$(date +%s%N)" -ge "$next_sample" ]; then
      sample_peaks
      next_sample=$(($(date +%s%N) + 1000000000))
    fi
    healthy=$(docker ps --filter "label=com.docker.compose.project=$project" --format '{{.Status}}' | grep -c '(healthy)' || true)
    [ "$healthy" -ge 3 ] && break
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "run $run: not ready after 180 s" >&2
      dc ps >&2
      exit 1
    fi
    sleep 0.1
  done
  t2=$(now)
  cpu=0
  for id in $(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$project"); do
    cpu=$(echo "$cpu + $(cpu_ns "$id")" | bc)
  done
  sleep_sampling "$settle"
  early=$(mem_sample)
  sleep_sampling $((steady - settle))
  late=$(mem_sample)
  printf '| %d | %.1f | %.1f | %.1f | %s | %s | %s | %s | %s |\n' "$run" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)" "$(echo "$cpu / 1000000000" | bc -l)" \
    "$(peaks)" "$(pick "$early" control-plane worker-1 worker-2)" "$(pick "$late" control-plane worker-1 worker-2)" \
    "$(pick "$late" router client)" "$(cut -d' ' -f1 /proc/loadavg)"
done
