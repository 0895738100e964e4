#!/usr/bin/env bash
# A multi-node Docker Swarm on one machine (issue 18): N "machines", each a real dockerd in its own
# network namespace, joined to a host bridge by a veth pair with its own address.
#
#   scripts/swarm-lab.sh up     [--nodes N] [--rate R] [--delay D] [--image IMAGE]
#   scripts/swarm-lab.sh status [--nodes N]
#   scripts/swarm-lab.sh shape K RATE|none
#   scripts/swarm-lab.sh delay K D|none
#   scripts/swarm-lab.sh down
#
# Layout (K = 1..N, N <= 9):
#   bridge snlab0 10.78.0.1/24 on the host; namespace snlab-K, its eth0 10.78.0.1K (veth, host end
#   snlab-hK); dockerd --data-root /var/lib/splitnet-lab/K --exec-root /run/splitnet-lab/K
#   -H unix:///run/splitnet-lab/K.sock --pidfile /run/splitnet-lab/K.pid --cgroup-parent
#   /splitnet-lab-K, its own UTS namespace (hostname snlab-K), its own iptables (the namespace's);
#   it starts its own containerd under its exec root. Use a node: docker -H unix:///run/splitnet-lab/K.sock
#   Node 1 is the manager (swarm init --advertise-addr 10.78.0.11, overlay pools from 10.79.0.0/16,
#   so they never overlap the bridge); nodes 2..N join as workers. Node K carries the label
#   splitnet_client_K=true: docker-compose-swarm.yml's placement (node.labels.splitnet_client_K == true).
# The host gets one iptables rule (FORWARD, comment splitnet-lab) so that the main engine's
# FORWARD DROP policy does not drop bridged traffic between the nodes; down removes it.
#
# The image on every node: `docker save IMAGE` from the main engine once, to a tar under
# /var/lib/splitnet-lab, then `docker load` into each node. Chosen over Debian's docker-registry on
# the bridge: the same bytes are written into every engine either way (each has its own layer
# store), a load needs no registry process, no insecure-registry setting and no push (a push of
# the 1.5 GB image re-hashes and copies it once more); measured on the dev machine (2 cores):
# save 21-31 s once, load 28-47 s a node, lab up 2.5-3.5 min in all (figures printed by `up`).
#
# --rate R (tc rate, e.g. 20mbit) shapes both directions of every node's link with tbf: the host
# end's egress (to the node) and the node's eth0 egress (from the node). This kernel has no netem,
# so no added delay here. Measured: --rate 20mbit, 10 MiB over TCP from node 1 to node 2 in 4.4 s
# (19.1 Mbit/s). `shape K RATE` does the same to node K alone on a running lab (a weak node on a
# slow link), `shape K none` removes node K's shaping; both print the qdiscs they leave.
#
# --delay D (e.g. 20ms) / `delay K D|none`: node K's packets to the other nodes wait D, one way,
# as netem on its eth0 would make them (RTT between two delayed nodes = the sum of their delays).
# No netem here, so the WAN emulation's relay does it (splitnet/ops/wan_relay.py, stdlib only):
# in node K's namespace a policy rule (`iif lo to 10.78.0.0/24 lookup 100`) sends every packet
# the node itself sends to another node -- gRPC, the direct channel, BitTorrent, and the overlay's
# VXLAN-wrapped container traffic alike -- into tun0, where the relay holds it D and writes it
# back; the kernel then forwards it out of eth0 (tun0 accepts the node's own source address,
# rp_filter off, one FORWARD accept for tun0 since dockerd's FORWARD policy is DROP). Packets to
# the host's 10.78.0.1 wait too; those between a node's own containers do not. `down` stops the
# relays with everything else in the namespaces.
#
# `up` first runs `down`, so an `up` after a half-failed `up` starts clean. `down` removes exactly
# what `up` made (engines and their containers, namespaces, veths, bridge, data/exec roots, cgroups,
# the iptables rule) and is idempotent. The main engine (/var/run/docker.sock) is only read from.
set -euo pipefail

LAB_ROOT=/var/lib/splitnet-lab
RUN_ROOT=/run/splitnet-lab
BRIDGE=snlab0
NET=10.78.0
NODES=3
RATE=""
DELAY=""
RELAY=$(cd "$(dirname "$0")/.." && pwd)/splitnet/ops/wan_relay.py
IMAGE=${SPLITNET_IMAGE:-splitnet:local}
MAIN_DOCKER=(docker -H unix:///var/run/docker.sock)
RULE=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment splitnet-lab -j ACCEPT)

usage() {
    echo "usage: $0 up|down|status [--nodes N] [--rate R] [--delay D] [--image IMAGE]" \
        "| shape K RATE|none | delay K D|none" >&2
    exit 2
}
log() { echo "swarm-lab: $*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }
node_docker() { docker -H "unix://$RUN_ROOT/$1.sock" "${@:2}"; }

[ $# -ge 1 ] || usage
CMD=$1; shift
RATE_INPUT=--rate
DELAY_INPUT=--delay
if [ "$CMD" = shape ] || [ "$CMD" = delay ]; then
    [ $# -eq 2 ] || usage
    SHAPE_NODE=$1; shift
    if ! [[ $SHAPE_NODE =~ ^[1-9]$ ]]; then
        echo "$CMD $SHAPE_NODE: the node must be a whole number from 1 to 9" >&2; exit 2
    fi
    if [ "$CMD" = shape ]; then RATE=$1; RATE_INPUT="shape $SHAPE_NODE"; [ "$RATE" != none ] || RATE=""
    else DELAY=$1; DELAY_INPUT="delay $SHAPE_NODE"; [ "$DELAY" != none ] || DELAY=""; fi
    shift
fi
while [ $# -gt 0 ]; do
    case $1 in
        --nodes) NODES=${2:?--nodes needs a number}; shift 2 ;;
        --rate) RATE=${2:?--rate needs a tc rate such as 20mbit}; shift 2 ;;
        --delay) DELAY=${2:?--delay needs a one-way delay such as 20ms}; shift 2 ;;
        --image) IMAGE=${2:?--image needs an image name}; shift 2 ;;
        *) usage ;;
    esac
done
if ! [[ $NODES =~ ^[1-9]$ ]]; then
    echo "--nodes $NODES: must be a whole number from 1 to 9" >&2; exit 2
fi
if [ -n "$RATE" ] && ! [[ $RATE =~ ^[0-9]+(\.[0-9]+)?([kmg]?bit|[kmg]?bps)$ ]]; then
    echo "$RATE_INPUT $RATE: must be a tc rate such as 20mbit, 512kbit or 1gbit" >&2; exit 2
fi

if [ -n "$DELAY" ] && ! [[ $DELAY =~ ^[0-9]+(\.[0-9]+)?ms$ && ! $DELAY =~ ^0+(\.0+)?ms$ ]]; then
    echo "$DELAY_INPUT $DELAY: must be a one-way delay in ms above 0, such as 20ms or 2.5ms" >&2
    exit 2
fi

lab_down() {
    local ns k pid cg pids="" namespaces alive
    namespaces=$(ip netns list 2>/dev/null | awk '$1 ~ /^snlab-[0-9]+$/ {print $1}')
    for ns in $namespaces; do  # every engine stops its containers (5 s each at most) at once
        pid=$(cat "$RUN_ROOT/${ns#snlab-}.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then pids="$pids $pid"; fi
    done
    for _ in $(seq 1 100); do
        alive=""
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -n "$alive" ] || break
        sleep 0.2
    done
    for ns in $namespaces; do
        k=${ns#snlab-}
        # whatever is left in the node's namespace (dockerd, containerd, shims) ...
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        # ... and in its containers' cgroups (their processes have network namespaces of their own)
        for cg in /sys/fs/cgroup/*/"splitnet-lab-$k"; do
            [ -d "$cg" ] || continue
            find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true  # takes its veth pair with it
    done
    # mounts the engines left (overlay layers, network namespace files), deepest first
    awk -v a="$LAB_ROOT" -v b="$RUN_ROOT" 'index($5, a) == 1 || index($5, b) == 1 {print $5}' \
        /proc/self/mountinfo | sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf "$LAB_ROOT" "$RUN_ROOT"
    for cg in /sys/fs/cgroup/*/splitnet-lab-[0-9]*; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^snlab-h[0-9]+$' || true); do
        ip link del "$link" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    while iptables -C "${RULE[@]}" 2>/dev/null; do iptables -D "${RULE[@]}"; done
}

shape() {  # shape DEVICE [netns]: tbf at RATE on DEVICE's egress
    local burst=64kb
    if [ -n "${2:-}" ]; then
        ip netns exec "$2" tc qdisc replace dev "$1" root tbf rate "$RATE" burst $burst latency 100ms
    else
        tc qdisc replace dev "$1" root tbf rate "$RATE" burst $burst latency 100ms
    fi
}

start_node() {  # start_node K: namespace, veth, address, dockerd
    local k=$1 ns=snlab-$1
    ip netns add "$ns"
    ip link add "snlab-h$k" type veth peer name "snlab-n$k"
    ip link set "snlab-n$k" netns "$ns"
    ip link set "snlab-h$k" master "$BRIDGE" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip link set "snlab-n$k" name eth0
    ip netns exec "$ns" ip addr add "$NET.1$k/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip route add default via "$NET.1"
    if [ -n "$RATE" ]; then shape "snlab-h$k"; shape eth0 "$ns"; fi
    mkdir -p "$LAB_ROOT/$k" "$RUN_ROOT/$k"
    echo '{}' > "$LAB_ROOT/$k/daemon.json"
    # nsenter (not `ip netns exec`): enter the network namespace only, keeping the host's /sys
    # and its cgroup mounts, which dockerd needs.
    nsenter --net="/run/netns/$ns" unshare --uts sh -c "hostname $ns && exec dockerd \
        --config-file $LAB_ROOT/$k/daemon.json --data-root $LAB_ROOT/$k/data \
        --exec-root $RUN_ROOT/$k --pidfile $RUN_ROOT/$k.pid -H unix://$RUN_ROOT/$k.sock \
        --cgroup-parent /splitnet-lab-$k --shutdown-timeout 5" \
        > "$LAB_ROOT/$k/dockerd.log" 2>&1 < /dev/null &
}

wait_node() {  # wait_node K: until the engine answers (60 s)
    for _ in $(seq 1 120); do
        node_docker "$1" info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "node $1: dockerd did not answer in 60 s; its log:" >&2
    tail -20 "$LAB_ROOT/$1/dockerd.log" >&2
    return 1
}

lab_up() {
    local t0 t k image_tar token node_id
    t0=$(date +%s.%N)
    lab_down
    log "no lab left over after $(since $t0) s"
    if ! "${MAIN_DOCKER[@]}" image inspect "$IMAGE" >/dev/null 2>&1; then
        log "$IMAGE is not in the main engine: building it (scripts/build-image.sh)"
        nice -n 19 ionice -c3 "$(dirname "$0")/build-image.sh" "$IMAGE"
    fi
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    iptables -I "${RULE[@]}"
    for k in $(seq 1 "$NODES"); do start_node "$k"; done
    for k in $(seq 1 "$NODES"); do wait_node "$k"; done
    log "$NODES engines up after $(since $t0) s"
    t=$(date +%s.%N)
    node_docker 1 swarm init --advertise-addr "$NET.11" --default-addr-pool 10.79.0.0/16 >/dev/null
    token=$(node_docker 1 swarm join-token -q worker)
    for k in $(seq 2 "$NODES"); do
        node_docker "$k" swarm join --token "$token" --advertise-addr "$NET.1$k" "$NET.11:2377" >/dev/null
    done
    for k in $(seq 1 "$NODES"); do
        node_id=$(node_docker "$k" info --format '{{.Swarm.NodeID}}')
        node_docker 1 node update --label-add "splitnet_client_$k=true" "$node_id" >/dev/null
    done
    log "swarm of $NODES node(s) formed in $(since $t) s"
    t=$(date +%s.%N)
    image_tar=$LAB_ROOT/image.tar
    nice -n 19 ionice -c3 "${MAIN_DOCKER[@]}" save -o "$image_tar" "$IMAGE"
    log "saved $IMAGE in $(since $t) s"
    for k in $(seq 1 "$NODES"); do
        t=$(date +%s.%N)
        nice -n 19 ionice -c3 docker -H "unix://$RUN_ROOT/$k.sock" load -q -i "$image_tar" >/dev/null
        log "loaded $IMAGE into node $k in $(since $t) s"
    done
    rm -f "$image_tar"
    if [ -n "$DELAY" ]; then for k in $(seq 1 "$NODES"); do delay_node "$k"; done; fi
    lab_status
    log "lab up: $(since $t0) s"
}

shape_node() {  # shape_node K: tbf at RATE on both directions of node K's link ("" removes it)
    local k=$1 ns=snlab-$1
    node_up "$k" shape
    if [ -n "$RATE" ]; then
        shape "snlab-h$k"; shape eth0 "$ns"
        log "node $k: tbf $RATE on both directions of its link (snlab-h$k egress to the node, eth0 egress in $ns)"
    else
        tc qdisc del dev "snlab-h$k" root 2>/dev/null || true
        ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
        log "node $k: shaping removed from both directions of its link"
    fi
    echo "host snlab-h$k: $(tc qdisc show dev "snlab-h$k" | head -1)"
    echo "$ns eth0: $(ip netns exec "$ns" tc qdisc show dev eth0 | head -1)"
}

node_up() {  # node_up K WHAT: exit 2 naming WHAT unless node K's namespace and link exist
    if ! ip netns list | awk '{print $1}' | grep -qx "snlab-$1" || ! ip link show "snlab-h$1" >/dev/null 2>&1; then
        echo "$2 $1: node $1 is not up (no namespace snlab-$1 or link snlab-h$1); bring the lab" \
            "up first: $0 up" >&2
        exit 2
    fi
}

delay_node() {  # delay_node K: node K's packets to the other nodes wait DELAY in a relay ("" removes it)
    local k=$1 ns=snlab-$1 pidfile=$RUN_ROOT/relay-$1.pid seconds line
    local accept=(FORWARD -i tun0 -m comment --comment splitnet-lab -j ACCEPT)
    node_up "$k" delay
    if [ -f "$pidfile" ]; then kill -KILL "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
    ip netns exec "$ns" ip rule del priority 100 2>/dev/null || true
    ip netns exec "$ns" ip link del tun0 2>/dev/null || true  # takes table 100's route with it
    while ip netns exec "$ns" iptables -C "${accept[@]}" 2>/dev/null; do
        ip netns exec "$ns" iptables -D "${accept[@]}"
    done
    if [ -z "$DELAY" ]; then log "node $k: no added delay"; return 0; fi
    seconds=$(awk -v d="${DELAY%ms}" 'BEGIN {printf "%.6f", d / 1000}')
    ip netns exec "$ns" ip tuntap add dev tun0 mode tun
    ip netns exec "$ns" ip link set tun0 mtu 1500 txqueuelen 10000 up
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.tun0.rp_filter=0 net.ipv4.conf.tun0.accept_local=1
    ip netns exec "$ns" ip route add default dev tun0 table 100
    ip netns exec "$ns" iptables -I "${accept[@]}"
    rm -f "$RUN_ROOT/relay-$k.out"
    mkfifo "$RUN_ROOT/relay-$k.out"
    ip netns exec "$ns" python3 "$RELAY" --tun tun0 --link "*:$seconds:0:0" \
        > "$RUN_ROOT/relay-$k.out" 2>"$RUN_ROOT/relay-$k.log" < /dev/null &
    echo $! > "$pidfile"
    read -r -t 10 line < "$RUN_ROOT/relay-$k.out" || line=""
    if [ "$line" != ready ]; then
        echo "delay $k: the relay did not start: $(cat "$RUN_ROOT/relay-$k.log")" >&2; exit 1
    fi
    ip netns exec "$ns" ip rule add iif lo to "$NET.0/24" lookup 100 priority 100
    log "node $k: its packets to the other nodes wait $DELAY (relay pid $(cat "$pidfile") on tun0 in $ns)"
}

lab_status() {
    local k
    for k in $(seq 1 "$NODES"); do
        if [ -S "$RUN_ROOT/$k.sock" ] && node_docker "$k" info >/dev/null 2>&1; then
            echo "node $k: snlab-$k $NET.1$k $(node_docker "$k" info --format \
                'engine {{.ServerVersion}} swarm {{.Swarm.LocalNodeState}} node {{.Swarm.NodeID}}')" \
                "shaping: $(ip netns exec "snlab-$k" tc qdisc show dev eth0 | awk '/tbf/ {print $8} !/tbf/ {print "none"}' | head -1)"
        else
            echo "node $k: down"
        fi
    done
    if [ -S "$RUN_ROOT/1.sock" ] && node_docker 1 info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null | grep -q true; then
        node_docker 1 node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'
    fi
}

case $CMD in
    up) lab_up ;;
    down)
        t0=$(date +%s.%N)
        lab_down
        log "lab down: $(since $t0) s" ;;
    status) lab_status ;;
    shape) shape_node "$SHAPE_NODE" ;;
    delay) delay_node "$SHAPE_NODE" ;;
    *) usage ;;
esac
