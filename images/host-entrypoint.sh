#!/bin/sh
# Entrypoint of the lab's client and router containers (images/Dockerfile, target host).
#
#   KUBEWIRE_GATEWAY  default route for this host (the client's is the router, 10.1.0.1);
#                     unset for the router, which forwards between its two networks
#                     (net.ipv4.ip_forward=1 is set by the compose file)
set -eu
if [ -n "${KUBEWIRE_GATEWAY:-}" ]; then
  ip route replace default via "$KUBEWIRE_GATEWAY"
fi
exec "$@"
