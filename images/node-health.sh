#!/bin/sh
# Healthcheck of a node container: healthy once its agent has converged (the marker
# the agent writes with --ready-file) and while its control socket exists. A `test`, not a
# Node.js process, so checking every second costs nothing.
d=${KUBEWIRE_RUN_DIR:-/run/kubewire}/${KUBEWIRE_LAB:-kw}/nodes/${KUBEWIRE_NODE:-$(hostname)}
test -e "$d/ready" && test -S "$d/agent.sock"
