# Start and stop real OpenSSH servers for tests, on free loopback ports with
# throwaway host keys, accepting only a test key whose authorized_keys line
# forces a command.
#   sshd_client_key                 makes $T_TMP/client-key (once) and SSHD_KNOWN_HOSTS
#   sshd_start NAME FORCED_COMMAND  starts $T_TMP/sshd-NAME; sets SSHD_PORT, SSHD_PORT_<NAME>
#                                   (SSHD_LOG_LEVEL: its LogLevel, default VERBOSE)
#   sshd_stop NAME / sshd_stop_all  stop by PID
# Needs lib.sh (T_TMP, free_port).

SSHD_PIDS=""
SSHD_KNOWN_HOSTS=""

sshd_client_key() {
    [ -f "$T_TMP/client-key" ] && return 0
    ssh-keygen -q -t ed25519 -N '' -C bysu-test -f "$T_TMP/client-key" || return 1
    SSHD_KNOWN_HOSTS=$T_TMP/known_hosts
    : >"$SSHD_KNOWN_HOSTS"
}

sshd_start() {
    local name=$1 forced=$2 port pid i
    local dir="$T_TMP/sshd-$name"
    sshd_client_key || return 1
    mkdir -p "$dir" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host-key" || return 1
    printf 'command="%s",restrict %s\n' "$forced" "$(cat "$T_TMP/client-key.pub")" >"$dir/authorized_keys"
    port=$(free_port)
    cat >"$dir/sshd_config" <<CFG
ListenAddress 127.0.0.1:$port
HostKey $dir/host-key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers root
PermitUserEnvironment no
X11Forwarding no
AllowTcpForwarding no
LogLevel ${SSHD_LOG_LEVEL:-VERBOSE}
CFG
    /usr/sbin/sshd -D -e -f "$dir/sshd_config" >"$dir/log" 2>&1 &
    pid=$!
    SSHD_PIDS="$SSHD_PIDS $pid"
    eval "SSHD_PID_$name=$pid"
    for i in $(seq 1 100); do
        if /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null; then
            printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host-key.pub")" >>"$T_TMP/known_hosts"
            SSHD_PORT=$port
            eval "SSHD_PORT_$name=$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "sshd '$name' did not start on port $port; its log:" >&2
    tail -20 "$dir/log" >&2
    return 1
}

sshd_stop() {
    local pid
    eval "pid=\${SSHD_PID_$1:-}"
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    eval "SSHD_PID_$1="
}

sshd_stop_all() {
    local pid
    for pid in $SSHD_PIDS; do kill "$pid" 2>/dev/null; done
    for pid in $SSHD_PIDS; do wait "$pid" 2>/dev/null; done
    SSHD_PIDS=""
}
