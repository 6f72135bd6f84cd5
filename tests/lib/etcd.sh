# Start and stop real etcd servers (Debian's etcd-server 3.4) for tests.
#   etcd_start NAME [EXTRA_ETCD_FLAGS...]  starts a server in $T_TMP/etcd-NAME on free
#                                          loopback ports with the v2 API enabled;
#                                          sets ETCD_PORT and ETCD_PORT_<NAME>; with
#                                          ETCD_TLS_CERT and ETCD_TLS_KEY set, clients
#                                          speak https (trusting ETCD_TLS_CA, default
#                                          the cert itself); with ETCD_TLS_CLIENT_CA
#                                          too, clients need a certificate it signed
#                                          (the check uses ETCD_TLS_CLIENT_CERT/_KEY)
#   etcd_stop NAME                          stops it by PID
#   etcd_stop_all                           stops every server this script started
#   etcd_restart NAME                       starts a stopped server again (same ports, data)
#   etcd_py PORT CODE                       Python against the v3 JSON gateway (see below)
# Needs lib.sh (T_TMP, free_port). t_cleanup calls etcd_stop_all.

ETCD_PIDS=""

etcd_start() {
    local name=$1; shift
    local dir="$T_TMP/etcd-$name" port peer pid i scheme=http tls=()
    mkdir -p "$dir"
    port=$(free_port)
    peer=$(free_port)
    local check=()
    if [ -n "${ETCD_TLS_CERT:-}" ]; then
        scheme=https
        tls=(--cert-file "$ETCD_TLS_CERT" --key-file "$ETCD_TLS_KEY")
        check=(--cacert "${ETCD_TLS_CA:-$ETCD_TLS_CERT}")
    fi
    if [ -n "${ETCD_TLS_CLIENT_CA:-}" ]; then
        tls+=(--client-cert-auth --trusted-ca-file "$ETCD_TLS_CLIENT_CA")
        check+=(--cert "$ETCD_TLS_CLIENT_CERT" --key "$ETCD_TLS_CLIENT_KEY")
    fi
    ETCD_UNSUPPORTED_ARCH= etcd --name "$name" --data-dir "$dir/data" "${tls[@]}" \
        --listen-client-urls "$scheme://127.0.0.1:$port" --advertise-client-urls "$scheme://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$name=http://127.0.0.1:$peer" --initial-cluster-state new \
        --enable-v2 "$@" >"$dir/out.log" 2>&1 &
    pid=$!
    ETCD_PIDS="$ETCD_PIDS $pid"
    eval "ETCD_PID_$name=$pid"
    echo "peer=$peer" >"$dir/ports"
    for i in $(seq 1 100); do
        if curl -s --max-time 1 "${check[@]}" "$scheme://127.0.0.1:$port/health" 2>/dev/null |
            grep -q '"health":"true"'; then
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

# etcd_restart NAME: starts a stopped server again on its old ports and data.
etcd_restart() {
    local name=$1 dir="$T_TMP/etcd-$1" port peer pid
    eval "port=\${ETCD_PORT_$name:-}"
    peer=$(sed -n 's/^peer=//p' "$dir/ports" 2>/dev/null)
    [ -n "$port" ] && [ -n "$peer" ] || { echo "etcd '$name' was never started" >&2; return 1; }
    ETCD_UNSUPPORTED_ARCH= etcd --name "$name" --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$name=http://127.0.0.1:$peer" --initial-cluster-state new \
        --enable-v2 >>"$dir/out.log" 2>&1 &
    pid=$!
    ETCD_PIDS="$ETCD_PIDS $pid"
    eval "ETCD_PID_$name=$pid"
    for _ in $(seq 1 100); do
        curl -s --max-time 1 "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"health":"true"' && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "etcd '$name' did not restart on port $port" >&2
    return 1
}

# etcd_py PORT CODE: runs Python with `kv` bound to a tiny client of the v3
# JSON gateway (bytes in, bytes out): kv.put(k, v, lease=0), kv.get(k),
# kv.all(prefix=b'') -> [(key, value, lease)], kv.load(pairs) (txns of 128
# puts), kv.grant(ttl) -> lease ID.
etcd_py() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import base64, json, sys, urllib.request
port, code = sys.argv[1], sys.argv[2]
class KV:
    def __init__(self, port):
        self.base = 'http://127.0.0.1:%s' % port
    def call(self, ep, body):
        r = urllib.request.Request(self.base + ep, data=json.dumps(body).encode(), method='POST')
        with urllib.request.urlopen(r, timeout=30) as f:
            return json.loads(f.read())
    @staticmethod
    def b(x):
        return base64.b64encode(x).decode()
    def put(self, k, v, lease=0):
        body = {'key': self.b(k), 'value': self.b(v)}
        if lease:
            body['lease'] = str(lease)
        return int(self.call('/v3/kv/put', body)['header']['revision'])
    def grant(self, ttl):
        return int(self.call('/v3/lease/grant', {'TTL': str(ttl)})['ID'])
    def get(self, k):
        kvs = self.call('/v3/kv/range', {'key': self.b(k)}).get('kvs', [])
        if not kvs:
            return None
        return kvs[0]
    def all(self, prefix=b''):
        body = {'key': self.b(prefix or b'\0'), 'range_end': self.b(b'\0')}
        if prefix:
            end = bytearray(prefix)
            end[-1] += 1
            body['range_end'] = self.b(bytes(end))
        out = []
        for kv in self.call('/v3/kv/range', body).get('kvs', []):
            out.append((base64.b64decode(kv['key']), base64.b64decode(kv.get('value', '')), int(kv.get('lease', '0'))))
        return out
    def load(self, pairs):
        pairs = list(pairs)
        for i in range(0, len(pairs), 128):
            ops = [{'request_put': {'key': self.b(k), 'value': self.b(v)}} for k, v in pairs[i:i + 128]]
            self.call('/v3/kv/txn', {'success': ops})
kv = KV(port)
exec(code)
PY
}
