# Start and stop real ZooKeeper servers (Debian's package) for tests.
#   zk_start NAME [EXTRA_JVM_OPTS...]   starts a server in $T_TMP/zk-NAME on a free
#                                      loopback port; sets ZK_PORT and ZK_PID_<NAME>
#   zk_stop NAME                       stops it by PID
#   zk_stop_all                        stops every server this script started
# Needs lib.sh (T_TMP, free_port).

ZK_CP="/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar"
for j in slf4j-api slf4j-nop netty-handler netty-transport netty-common netty-buffer netty-resolver netty-codec netty-transport-native-unix-common netty-transport-native-epoll jline commons-io commons-cli audience-annotations metrics-core snappy-java jackson-databind jackson-core jackson-annotations; do
    [ -e "/usr/share/java/$j.jar" ] && ZK_CP="$ZK_CP:/usr/share/java/$j.jar"
done
ZK_PIDS=""
ZK_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

zk_start() {
    local name=$1; shift
    local dir="$T_TMP/zk-$name" port i
    mkdir -p "$dir/data"
    port=$(free_port)
    cat >"$dir/zoo.cfg" <<CFG
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
jute.maxbuffer=4194304
CFG
    java -Xmx512m -Dzookeeper.extendedTypesEnabled=true -Djute.maxbuffer=4194304 "$@" \
        -cp "$dir:$ZK_CP" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
        >"$dir/out.log" 2>&1 &
    local pid=$!
    ZK_PIDS="$ZK_PIDS $pid"
    eval "ZK_PID_$name=$pid"
    for i in $(seq 1 150); do
        if [ "$(zk_4lw "$port" ruok)" = imok ]; then
            ZK_PORT=$port
            eval "ZK_PORT_$name=$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "zookeeper '$name' did not start on port $port; its log:" >&2
    tail -20 "$dir/out.log" >&2
    return 1
}

# zk_4lw PORT WORD: a four-letter-word command with a bounded wait.
zk_4lw() {
    /usr/bin/python3 - "$1" "$2" <<'PY' 2>/dev/null
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.settimeout(1)
    s.sendall(sys.argv[2].encode())
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    print(out.decode(errors="replace"), end="")
except Exception:
    pass
PY
}

zk_stop() {
    local pid
    eval "pid=\${ZK_PID_$1:-}"
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    eval "ZK_PID_$1="
}

zk_stop_all() {
    local pid
    for pid in $ZK_PIDS; do kill "$pid" 2>/dev/null; done
    for pid in $ZK_PIDS; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    ZK_PIDS=""
}

# zk_py PORT SCRIPT: run Python with a connected kazoo client `zk` (an
# independent client, used to build fixtures and to check results).
zk_py() {
    local port=$1; shift
    /usr/bin/python3 -c "
import sys
sys.path.insert(0, '$ZK_LIB')
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl, make_acl, OPEN_ACL_UNSAFE
zk = KazooClient(hosts='127.0.0.1:$port', timeout=10)
zk.start(timeout=10)
try:
$(printf '%s\n' "$@" | sed 's/^/    /')
finally:
    zk.stop()
"
}

# zk_kill NAME: stops a server at once (SIGKILL), as a crash would.
zk_kill() {
    local pid
    eval "pid=\${ZK_PID_$1:-}"
    [ -n "$pid" ] || return 0
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    eval "ZK_PID_$1="
}

# zk_restart NAME [EXTRA_JVM_OPTS...]: starts a stopped server again on the
# same port with the same data directory; sets ZK_PORT.
zk_restart() {
    local name=$1; shift
    local dir="$T_TMP/zk-$name" port i
    port=$(sed -n 's/^clientPort=//p' "$dir/zoo.cfg")
    java -Xmx512m -Dzookeeper.extendedTypesEnabled=true -Djute.maxbuffer=4194304 "$@" \
        -cp "$dir:$ZK_CP" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
        >>"$dir/out.log" 2>&1 &
    local pid=$!
    ZK_PIDS="$ZK_PIDS $pid"
    eval "ZK_PID_$name=$pid"
    for i in $(seq 1 150); do
        if [ "$(zk_4lw "$port" ruok)" = imok ]; then
            ZK_PORT=$port
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "zookeeper '$name' did not restart on port $port" >&2
    return 1
}

# zk_tree PORT [ARGS...]: the canonical text form of a tree (tests/lib/zktree.py).
zk_tree() {
    /usr/bin/python3 "$ZK_LIB/zktree.py" "$@"
}

# zk_znodes PORT: the server's own node count (mntr), /zookeeper included.
zk_znodes() {
    zk_4lw "$1" mntr | sed -n 's/^zk_znode_count[[:space:]]*//p'
}
