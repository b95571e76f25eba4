#!/bin/sh
# Entrypoint of a kubewire node container (images/Dockerfile, target node).
#
#   KUBEWIRE_NODE     the Node object this container emulates (default: the hostname)
#   KUBEWIRE_GATEWAY  the underlay's router (10.1.110.1 in the reference lab); becomes the
#                     default route before the agent takes eth0 over, so the agent adopts it
#   KUBEWIRE_SEED     read-only manifest directories, ':'-separated, copied into the
#                     lab's shared manifests (default /etc/kubewire/nodes:/etc/kubewire/manifests)
#   KUBEWIRE_RUN_DIR  the volume the node containers share (default /run/kubewire)
#
# Then the agent runs in the foreground: it owns eth0 (tc redirect to its TAP), creates
# this node's pods as network namespaces in this container, and serves its control socket
# on the shared volume. Any arguments are passed to the agent.
set -eu

node_name=${KUBEWIRE_NODE:-$(hostname)}
export KUBEWIRE_NODE="$node_name"
run_dir=${KUBEWIRE_RUN_DIR:-/run/kubewire}
app=/opt/kubewire

if [ -n "${KUBEWIRE_GATEWAY:-}" ]; then
  ip route replace default via "$KUBEWIRE_GATEWAY" dev eth0
fi

mkdir -p "$run_dir"
# The node containers start together: one at a time seeds the shared manifests.
flock "$run_dir/.prepare.lock" node "$app/dist/src/lab/compose.js" prepare

# The healthcheck (kubewire-health) tests a marker the agent writes once it has converged
# (--ready-file); a marker of an earlier run on the same volume does not count.
ready="$run_dir/${KUBEWIRE_LAB:-kw}/nodes/$node_name/ready"
rm -f "$ready"

# The agent's Node.js flags are those of src/agent/workloads.ts BUILTIN_NODE_FLAGS (why: there).
exec node --max-semi-space-size=1 "$app/dist/src/agent/main.js" --node "$node_name" --ready-file "$ready" "$@"
