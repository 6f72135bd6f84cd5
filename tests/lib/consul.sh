# Start and stop real Consul agents (1.8.7 from the Debian 11 package that
# scripts/get-consul.sh unpacks into .cache/consul) for tests and benchmarks.
#   consul_start NAME [EXTRA_HCL]  a -dev agent in $T_TMP/consul-NAME on free
#                                  loopback ports; sets CONSUL_PORT and
#                                  CONSUL_PORT_<NAME>; ready once it has a leader
#   consul_start_acl NAME TOKEN    the same with ACLs on: default deny, TOKEN
#                                  as the master (management) token
#   CONSUL_PERSIST=1 consul_start  a one-node server keeping its data in
#                                  $T_TMP/consul-NAME/data instead of -dev
#   consul_restart NAME            starts NAME again on the same ports (after
#                                  consul_stop or a kill)
#   consul_stop NAME               stops it by PID
#   consul_stop_all                stops every agent this script started
#   consul_kv PORT ARGS...         the consul CLI's kv command against one agent
# Needs lib.sh (T_TMP, free_port). t_cleanup calls consul_stop_all.

: "${CONSUL_BIN:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.cache/consul/usr/bin/consul}"
CONSUL_PIDS=""

# Four consecutive free ports starting at the one printed (http, serf_lan,
# serf_wan, server).
consul_ports() {
    /usr/bin/python3 - <<'PY'
import socket, random
for _ in range(200):
    base = random.randint(20000, 60000)
    socks = []
    try:
        for p in range(base, base + 4):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}

consul_start() {
    local name=$1 extra=${2:-}
    local dir="$T_TMP/consul-$name" port pid i
    if [ ! -x "$CONSUL_BIN" ]; then
        echo "consul is not in $CONSUL_BIN; run scripts/get-consul.sh" >&2
        return 1
    fi
    mkdir -p "$dir"
    port=${CONSUL_REUSE_PORT:-$(consul_ports)}
    local mode=(-dev)
    [ "${CONSUL_PERSIST:-0}" = 1 ] && mode=(-server -bootstrap-expect 1 -data-dir "$dir/data")
    eval "CONSUL_MODE_$name='${CONSUL_PERSIST:-0}'"
    "$CONSUL_BIN" agent "${mode[@]}" -bind 127.0.0.1 -client 127.0.0.1 -node "$name" \
        -hcl "ports { http = $port, dns = -1, grpc = -1, serf_lan = $((port + 1)), serf_wan = $((port + 2)), server = $((port + 3)) }" \
        ${extra:+-hcl "$extra"} >>"$dir/out.log" 2>&1 &
    pid=$!
    CONSUL_PIDS="$CONSUL_PIDS $pid"
    eval "CONSUL_PID_$name=$pid"
    for i in $(seq 1 200); do
        if [ -n "$(curl -s --max-time 1 "http://127.0.0.1:$port/v1/status/leader" 2>/dev/null | tr -d '"')" ]; then
            CONSUL_PORT=$port
            eval "CONSUL_PORT_$name=$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "consul '$name' did not start on port $port; its log:" >&2
    tail -20 "$dir/out.log" >&2
    return 1
}

consul_restart() {
    local port persist
    eval "port=\${CONSUL_PORT_$1:-}; persist=\${CONSUL_MODE_$1:-0}"
    CONSUL_REUSE_PORT=$port CONSUL_PERSIST=$persist consul_start "$1"
}

consul_start_acl() {
    consul_start "$1" "acl { enabled = true, default_policy = \"deny\", enable_token_persistence = false, tokens { master = \"$2\" } }"
}

consul_stop() {
    local pid
    eval "pid=\${CONSUL_PID_$1:-}"
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    eval "CONSUL_PID_$1="
}

consul_stop_all() {
    local pid
    for pid in $CONSUL_PIDS; do kill "$pid" 2>/dev/null; done
    for pid in $CONSUL_PIDS; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    CONSUL_PIDS=""
}

consul_kv() {
    local port=$1; shift
    CONSUL_HTTP_ADDR="127.0.0.1:$port" "$CONSUL_BIN" kv "$@"
}
