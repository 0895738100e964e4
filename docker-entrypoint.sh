#!/bin/sh
# splitnet container entrypoint: apply traffic shaping with tc (unless NO_TC), then exec the
# client as the unprivileged splitnet user so that signals (docker stop) reach it directly.
#   UPLOAD_BANDWIDTH    egress rate, e.g. 100mbit          (tc tbf)
#   DOWNLOAD_BANDWIDTH  ingress rate, e.g. 100mbit         (tc ingress policer)
#   NETWORK_DELAY / NETWORK_JITTER / NETWORK_LOSS          (tc netem), e.g. 50ms / 5ms / 0.5%
#   NO_TC=true          skip shaping; SHAPING_OPTIONAL=true: warn instead of failing when tc
#                       cannot be applied (no NET_ADMIN)
set -eu

is_true() { case "$(echo "${1:-}" | tr '[:upper:]' '[:lower:]')" in 1|true|yes|on) return 0;; esac; return 1; }

shaping_wanted() {
    [ -n "${UPLOAD_BANDWIDTH:-}${DOWNLOAD_BANDWIDTH:-}${NETWORK_DELAY:-}${NETWORK_JITTER:-}${NETWORK_LOSS:-}" ]
}

apply_shaping() {
    dev="${SHAPING_DEVICE:-eth0}"
    tc qdisc del dev "$dev" root 2>/dev/null || true
    tc qdisc del dev "$dev" ingress 2>/dev/null || true
    netem=""
    if [ -n "${NETWORK_DELAY:-}" ]; then
        netem="delay ${NETWORK_DELAY}${NETWORK_JITTER:+ ${NETWORK_JITTER}}"
    elif [ -n "${NETWORK_JITTER:-}" ]; then
        netem="delay 0ms ${NETWORK_JITTER}"
    fi
    [ -n "${NETWORK_LOSS:-}" ] && netem="$netem loss ${NETWORK_LOSS}"
    if [ -n "$netem" ] && [ -n "${UPLOAD_BANDWIDTH:-}" ]; then
        tc qdisc add dev "$dev" root handle 1: netem $netem || return 1
        tc qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "$UPLOAD_BANDWIDTH" burst 64kb latency 400ms || return 1
    elif [ -n "$netem" ]; then
        tc qdisc add dev "$dev" root netem $netem || return 1
    elif [ -n "${UPLOAD_BANDWIDTH:-}" ]; then
        tc qdisc add dev "$dev" root tbf rate "$UPLOAD_BANDWIDTH" burst 64kb latency 400ms || return 1
    fi
    if [ -n "${DOWNLOAD_BANDWIDTH:-}" ]; then
        tc qdisc add dev "$dev" handle ffff: ingress || return 1
        tc filter add dev "$dev" parent ffff: protocol all u32 match u32 0 0 \
            police rate "$DOWNLOAD_BANDWIDTH" burst 256k drop flowid :1 || return 1
    fi
    echo "splitnet: shaping on $dev: up=${UPLOAD_BANDWIDTH:-none} down=${DOWNLOAD_BANDWIDTH:-none} netem=${netem:-none}"
}

if ! is_true "${NO_TC:-}" && shaping_wanted; then
    if ! apply_shaping; then
        echo "splitnet: traffic shaping was asked for (UPLOAD_BANDWIDTH/DOWNLOAD_BANDWIDTH/NETWORK_*) but tc could not apply it; run the container with cap_add: NET_ADMIN, or set NO_TC=true to skip shaping" >&2
        if ! is_true "${SHAPING_OPTIONAL:-}"; then
            exit 3
        fi
    fi
fi

# TLS files arrive read-only and root-owned (bind mounts, Docker secrets): give the client user
# a private copy (key 0600) before dropping privileges.
private_tls_copy() {
    src="${TLS_DIR:-./certs}"
    dst=/home/splitnet/.tls
    [ -d "$src" ] || return 0
    install -d -m 0700 -o splitnet -g splitnet "$dst"
    for name in ca.crt "client${CLIENT_NUMBER:-0}.crt" "client${CLIENT_NUMBER:-0}.key"; do
        [ -f "$src/$name" ] && install -m 0600 -o splitnet -g splitnet "$src/$name" "$dst/$name"
    done
    export TLS_DIR="$dst"
}

# The client's rule (transport/tls.py tls_wanted): TLS=on, or auto (the default; empty is unset)
# with the cluster CA in TLS_DIR.
tls_wanted() {
    case "$(echo "${TLS:-}" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]')" in
        on) return 0;;
        ""|auto) [ -f "${TLS_DIR:-./certs}/ca.crt" ];;
        *) return 1;;
    esac
}

if [ "$(id -u)" = "0" ] && id splitnet >/dev/null 2>&1; then
    if tls_wanted; then
        private_tls_copy
    fi
    chown splitnet:splitnet "${RESULTS_DIR:-/results}" 2>/dev/null || true
    chown splitnet:splitnet "${CHECKPOINT_DIR:-/checkpoints}" 2>/dev/null || true
    exec setpriv --reuid=splitnet --regid=splitnet --init-groups --inh-caps=-all -- "$@"
fi
exec "$@"
