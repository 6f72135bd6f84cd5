# Start and stop real etcd servers (Debian's etcd-server 3.4) for tests.
#   etcd_start NAME [EXTRA_ETCD_FLAGS...]  starts a server in $T_TMP/etcd-NAME on free
#                                          loopback ports with the v2 API enabled;
#                                          sets ETCD_PORT and ETCD_PORT_<NAME>
#   etcd_stop NAME                          stops it by PID
#   etcd_stop_all                           stops every server this script started
# Needs lib.sh (T_TMP, free_port). t_cleanup calls etcd_stop_all.

ETCD_PIDS=""

etcd_start() {
    local name=$1; shift
    local dir="$T_TMP/etcd-$name" port peer pid i
    mkdir -p "$dir"
    port=$(free_port)
    peer=$(free_port)
    ETCD_UNSUPPORTED_ARCH= etcd --name "$name" --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$name=http://127.0.0.1:$peer" --initial-cluster-state new \
        --enable-v2 "$@" >"$dir/out.log" 2>&1 &
    pid=$!
    ETCD_PIDS="$ETCD_PIDS $pid"
    eval "ETCD_PID_$name=$pid"
    for i in $(seq 1 100); do
        if curl -s --max-time 1 "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"health":"true"'; then
            ETCD_PORT=$port
            eval "ETCD_PORT_$name=$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "etcd '$name' did not start on port $port; its log:" >&2
    tail -20 "$dir/out.log" >&2
    return 1
}

etcd_stop() {
    local pid
    eval "pid=\${ETCD_PID_$1:-}"
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    eval "ETCD_PID_$1="
}

etcd_stop_all() {
    local pid
    for pid in $ETCD_PIDS; do kill "$pid" 2>/dev/null; done
    for pid in $ETCD_PIDS; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    ETCD_PIDS=""
}

# etcdctl3 PORT ARGS...: the v3 etcdctl against one server.
etcdctl3() {
    local port=$1; shift
    ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$port" "$@"
}
