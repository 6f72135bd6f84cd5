# A throwaway single-node Ceph with radosgw (Debian's Ceph 16) as a real S3
# server that verifies SigV4 signatures, for tests and benchmarks.
#   rgw_start DIR     one monitor, one memstore OSD and radosgw, all inside DIR
#                     (config, data, logs, sockets, PID files); exports
#                     RGW_PORT, RGW_ENDPOINT, RGW_ACCESS_KEY, RGW_SECRET_KEY
#   rgw_stop DIR      stops every daemon listed in DIR/pids (TERM, then KILL)
#   rgw_gateway_start DIR NAME PORT   one more radosgw of that cluster on
#                     PORT, its files in $T_TMP/NAME.*; sets RGW_GW_PID
#                     (a test may kill it and start it again: the cluster
#                     and its objects stay)
#   rgw_py CODE       Python with `s3`, a boto3 client of that server
#   rgw_aws ARGS...   Debian's /usr/bin/aws against that server
# Needs nothing else from tests/lib. Start it once per test run (tests/run.sh
# does for scripts marked "# needs: rgw"): it takes about 15 s.
# The secret is never printed; keep it out of test output too.

RGW_TEST_ACCESS_KEY=BURRYTESTACCESSKEY00
RGW_TEST_SECRET_KEY=burryTestSecretKey0000000000000000000000

_rgw_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# _rgw_fail DIR MESSAGE LOG...: the message and the tail of each log, on stderr.
_rgw_fail() {
    local dir=$1 msg=$2 log; shift 2
    echo "rgw: $msg" >&2
    for log in "$@"; do
        [ -s "$log" ] || continue
        echo "rgw: last lines of ${log#"$dir"/}:" >&2
        tail -n 15 "$log" | sed 's/^/    /' >&2
    done
    rgw_stop "$dir"
    return 1
}

# _rgw_wait DIR DEADLINE PID COMMAND...: polls COMMAND until it succeeds,
# the daemon PID exits (status 2) or SECONDS passes DEADLINE (status 1).
_rgw_wait() {
    local dir=$1 deadline=$2 pid=$3; shift 3
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || return 2
        [ $SECONDS -ge "$deadline" ] && return 1
        sleep 0.25
    done
}

_rgw_ceph() { timeout 10 ceph -c "$1/ceph.conf" --connect-timeout 5 "${@:2}"; }

_rgw_osd_up() { _rgw_ceph "$1" osd dump 2>/dev/null | grep -q '^osd\.0 up'; }

_rgw_s3_up() {
    curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" | grep -q '^[2-4]'
}

rgw_start() {
    local dir=$1 mon_port rgw_port fsid osd_uuid pid rc deadline
    local limit=${RGW_START_TIMEOUT:-60}
    [ -n "$dir" ] || { echo "rgw_start: no directory given" >&2; return 1; }
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
    if [ -s "$dir/pids" ]; then
        echo "rgw_start: $dir/pids exists; run rgw_stop $dir first" >&2
        return 1
    fi
    mkdir -p "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run" "$dir/log" "$dir/crash" || return 1
    : >"$dir/pids"
    deadline=$((SECONDS + limit))
    mon_port=$(_rgw_port)
    rgw_port=$(_rgw_port)
    fsid=$(/usr/bin/python3 -c 'import uuid; print(uuid.uuid4())')
    osd_uuid=$(/usr/bin/python3 -c 'import uuid; print(uuid.uuid4())')

    # Every path the daemons and tools use points into DIR.
    cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.\$pid.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $dir/log/cluster.log
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon data avail warn = 2
mon data avail crit = 1
mon warn on pool no redundancy = false

[mon]
mon data = $dir/mon

[osd]
osd data = $dir/osd
osd objectstore = memstore
# RAM-backed: room for a few GB of objects (a benchmark uploads 1 GB).
memstore device bytes = 8589934592
osd crush update on start = true
osd max object size = 1073741824

[client]
log file = $dir/log/client.log

[client.rgw]
log file = $dir/log/rgw.log
rgw data = $dir/rgw
# radosgw asks the monitor for a secure connection, impossible without auth
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw enable usage log = false
rgw max put size = 5368709120
# deleted objects leave the RAM-backed OSD within seconds, not hours
rgw gc obj min wait = 0
rgw gc processor period = 5
EOF

    # The keyring only names the monitor (auth is off, but mkfs wants one).
    ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' \
        >"$dir/log/setup.log" 2>&1 &&
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" \
        >>"$dir/log/setup.log" 2>&1 &&
    ceph-mon -c "$dir/ceph.conf" -i a --mkfs --monmap "$dir/monmap" --keyring "$dir/keyring" \
        >>"$dir/log/setup.log" 2>&1 ||
        { _rgw_fail "$dir" "creating the monitor failed" "$dir/log/setup.log"; return 1; }

    ceph-mon -c "$dir/ceph.conf" -i a -f >"$dir/log/mon.out" 2>&1 &
    pid=$!
    echo "$pid mon" >>"$dir/pids"
    _rgw_wait "$dir" "$deadline" "$pid" _rgw_ceph "$dir" mon stat
    rc=$?
    [ $rc -eq 0 ] || { _rgw_fail "$dir" "the monitor did not answer on 127.0.0.1:$mon_port ($([ $rc -eq 2 ] && echo exited || echo "timeout ${limit}s"))" \
        "$dir/log/mon.out" "$dir/log/mon.a.log"; return 1; }

    _rgw_ceph "$dir" osd new "$osd_uuid" >>"$dir/log/setup.log" 2>&1 &&
    ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/setup.log" 2>&1 ||
        { _rgw_fail "$dir" "creating the OSD failed" "$dir/log/setup.log" "$dir/log/osd.0.log"; return 1; }
    ceph-osd -c "$dir/ceph.conf" -i 0 -f >"$dir/log/osd.out" 2>&1 &
    pid=$!
    echo "$pid osd" >>"$dir/pids"
    _rgw_wait "$dir" "$deadline" "$pid" _rgw_osd_up "$dir"
    rc=$?
    [ $rc -eq 0 ] || { _rgw_fail "$dir" "the OSD did not come up ($([ $rc -eq 2 ] && echo exited || echo "timeout ${limit}s"))" \
        "$dir/log/osd.out" "$dir/log/osd.0.log"; return 1; }

    radosgw -c "$dir/ceph.conf" -n client.rgw -f >"$dir/log/rgw.out" 2>&1 &
    pid=$!
    echo "$pid rgw" >>"$dir/pids"
    _rgw_wait "$dir" "$deadline" "$pid" _rgw_s3_up "$rgw_port"
    rc=$?
    [ $rc -eq 0 ] || { _rgw_fail "$dir" "radosgw did not answer on 127.0.0.1:$rgw_port ($([ $rc -eq 2 ] && echo exited || echo "timeout ${limit}s"))" \
        "$dir/log/rgw.out" "$dir/log/rgw.log"; return 1; }

    # The JSON radosgw-admin prints holds the secret: it goes nowhere.
    if ! timeout 30 radosgw-admin -c "$dir/ceph.conf" user create --uid=burry-test \
        --display-name="burry tests" --access-key="$RGW_TEST_ACCESS_KEY" \
        --secret-key="$RGW_TEST_SECRET_KEY" >/dev/null 2>"$dir/log/user.err"; then
        _rgw_fail "$dir" "radosgw-admin user create failed" "$dir/log/user.err"
        return 1
    fi

    echo "$rgw_port" >"$dir/port"
    export RGW_PORT=$rgw_port
    export RGW_ENDPOINT=http://127.0.0.1:$rgw_port
    export RGW_ACCESS_KEY=$RGW_TEST_ACCESS_KEY
    export RGW_SECRET_KEY=$RGW_TEST_SECRET_KEY
    return 0
}

rgw_stop() {
    local dir=$1 pid pids=()
    [ -n "$dir" ] && [ -f "$dir/pids" ] || return 0
    while read -r pid _; do
        [ -n "$pid" ] && pids=("$pid" "${pids[@]}")
    done <"$dir/pids"
    # One at a time, radosgw first: an OSD stops quickly only while the
    # monitor is still there.
    for pid in "${pids[@]}"; do
        # Only our daemon, not a process that reused its PID.
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-c $dir/ceph.conf" || continue
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    : >"$dir/pids"
    return 0
}

# rgw_py CODE: runs Python with `s3` bound to a boto3 client of
# RGW_ENDPOINT (path-style addressing, region us-east-1, the test keys).
rgw_py() {
    /usr/bin/python3 - "$1" <<'PY'
import os, sys
import boto3
from botocore.config import Config
s3 = boto3.client(
    's3',
    endpoint_url=os.environ['RGW_ENDPOINT'],
    region_name='us-east-1',
    aws_access_key_id=os.environ['RGW_ACCESS_KEY'],
    aws_secret_access_key=os.environ['RGW_SECRET_KEY'],
    config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 2},
                  connect_timeout=10, read_timeout=120),
)
exec(sys.argv[1])
PY
}

# rgw_aws ARGS...: Debian's aws CLI (the first `aws` on PATH may be a broken
# pip one) with the endpoint and keys, credentials passed in the environment.
rgw_aws() {
    env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN \
        AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_KEY" \
        AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        AWS_PAGER= AWS_EC2_METADATA_DISABLED=true \
        /usr/bin/aws --endpoint-url "$RGW_ENDPOINT" "$@"
}

rgw_gateway_start() {
    local dir=$1 name=$2 port=$3 i
    radosgw -c "$dir/ceph.conf" -n client.rgw --rgw-frontends "beast endpoint=127.0.0.1:$port" \
        --pid-file "$T_TMP/$name.pid" --log-file "$T_TMP/$name.log" \
        --admin-socket "$T_TMP/$name.asok" -f >>"$T_TMP/$name.out" 2>&1 &
    RGW_GW_PID=$!
    for i in $(seq 1 300); do
        curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/" && return 0
        kill -0 "$RGW_GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "rgw: gateway $name did not answer on 127.0.0.1:$port" >&2
    tail -5 "$T_TMP/$name.out" >&2
    return 1
}
