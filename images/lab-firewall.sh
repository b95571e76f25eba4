#!/bin/sh
# The compose lab's `lab-firewall` service (host network, NET_ADMIN): while the lab runs,
# lets frames that enter and leave the same lab bridge through the host's firewall, and
# removes that exception when the lab stops.
#
# Why: Docker isolates an `internal: true` network with two rules, in the host's FORWARD
# path (DOCKER-ISOLATION-STAGE-1): drop what enters the bridge with a destination outside
# the network's subnet, and what leaves it with a source outside. Where br_netfilter is
# loaded (net.bridge.bridge-nf-call-iptables=1, as on most Docker hosts) these rules also
# see frames bridged between two containers of the same network, so everything the lab
# router forwards between the client network (10.1.0.0/24) and the underlay
# (10.1.110.0/24) would be dropped. An ACCEPT in DOCKER-USER for `-i BRIDGE -o BRIDGE`
# only lets a lab bridge carry the lab's frames between its own ports: nothing leaves a
# lab network, which stays internal.
#
#   KUBEWIRE_BRIDGES  the lab's bridges (default: kw-underlay kw-clients, the names the
#                     compose file gives its networks)
set -u
bridges=${KUBEWIRE_BRIDGES:-kw-underlay kw-clients}
first=${bridges%% *}

# The iptables backend Docker uses here: the one whose isolation chain names our bridge.
ipt=""
for i in 1 2 3 4 5 6 7 8 9 10; do
  for cand in iptables-nft iptables-legacy; do
    if "$cand" -w -S DOCKER-ISOLATION-STAGE-1 2>/dev/null | grep -q -- "$first"; then
      ipt=$cand
      break 2
    fi
  done
  sleep 1
done
if [ -z "$ipt" ]; then
  echo "lab-firewall: Docker's isolation rules for $first not found (iptables disabled, or another firewall): nothing to do"
  exec sleep infinity
fi

rule() { "$ipt" -w "$1" DOCKER-USER -i "$2" -o "$2" -j ACCEPT; }
cleanup() {
  for br in $bridges; do
    while rule -C "$br" 2>/dev/null; do rule -D "$br"; done
  done
  echo "lab-firewall: removed the exceptions for $bridges"
  exit 0
}
trap cleanup TERM INT
for br in $bridges; do
  rule -C "$br" 2>/dev/null || rule -I "$br"
done
echo "lab-firewall: $ipt: DOCKER-USER accepts frames bridged within $bridges"
sleep infinity &
wait $!
cleanup
