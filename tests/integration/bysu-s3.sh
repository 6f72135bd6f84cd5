#!/bin/bash
# bysu with its repository in S3 (a real radosgw, started once per test run
# by tests/run.sh) and a real sshd node: runs publish into the bucket, keep
# is enforced there, ls/get/verify read from it, the repository credentials
# stay on the central host (the node's agent sees none) and never appear in
# output. A wrong secret or a missing bucket fails a job before the node (or,
# for an infrastructure job, a real ZooKeeper) is contacted. verify reports
# an infrastructure snapshot the store fails to deliver "not checked", as a
# node's, and real damage DAMAGED.
# needs: rgw
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/sshd.sh"
. "$(dirname "$0")/../lib/rgw.sh"
. "$(dirname "$0")/../lib/zk.sh"
BYSU=$(dirname "$BURRY")/bysu
t_tmpdir
trap 'sshd_stop_all; t_cleanup' EXIT

if [ -z "${RGW_ENDPOINT:-}" ]; then
    not_ok "radosgw is running (RGW_ENDPOINT is not set: run through tests/run.sh)"
    exit 1
fi
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$RGW_ENDPOINT
B=bysu-$$-$RANDOM
rgw_py "s3.create_bucket(Bucket='$B')" || { not_ok "create the test bucket"; exit 1; }

D=$T_TMP/data
mkdir -p "$D"
head -c 200000 /dev/urandom >"$D/blob.bin"
printf 'config\n' >"$D/app.conf"
# the agent records its environment: the node must see no repository key
cat >"$T_TMP/agent.conf" <<CONF
[snapshot files]
paths = $D
[snapshot env]
command = env
CONF
sshd_start n1 "$BYSU agent -c $T_TMP/agent.conf" || exit 1
{
    printf '[repository]\nurl = s3://%s/bysu\nkeep = 2\n' "$B"
    printf '[node n1]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n' \
        "$SSHD_PORT" "$T_TMP/client-key" "$T_TMP/known_hosts"
    printf '[job files]\nnode = n1\nsnapshot = files\n'
    printf '[job env]\nnode = n1\nsnapshot = env\nkeep = 1\n'
} >"$T_TMP/bysu.conf"
C=$T_TMP/bysu.conf
LEAKS=0
leak_check() { printf '%s\n%s' "$OUT" "$ERR" | grep -qF -- "$RGW_SECRET_KEY" && LEAKS=$((LEAKS + 1)); }
count() { "$BYSU" ls -c "$C" --json "$1" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))'; }

for i in 1 2 3; do
    run_bysu run -c "$C" --json
    leak_check
    expect_eq "run $i into the S3 repository exits 0" 0 "$RC"
done
expect_eq "job files keeps exactly 2 snapshots in the bucket" 2 "$(count files)"
expect_eq "job env keeps exactly 1 snapshot (its own keep)" 1 "$(count env)"
NOBJ=$(rgw_py "print(len(s3.list_objects_v2(Bucket='$B', Prefix='bysu/').get('Contents', [])))")
expect_eq "the bucket holds an archive and a manifest per kept snapshot" 6 "$NOBJ"
expect_eq "no multipart upload is left open" 0 \
    "$(rgw_py "print(len(s3.list_multipart_uploads(Bucket='$B').get('Uploads', [])))")"

run_bysu get -c "$C" files latest -o "$T_TMP/f.tar.zst"
leak_check
expect_eq "bysu get from S3 exits 0" 0 "$RC"
mkdir -p "$T_TMP/x"
check "the fetched archive extracts with stock tar" tar --zstd -xf "$T_TMP/f.tar.zst" -C "$T_TMP/x"
check "the file equals the original" cmp "$D/blob.bin" "$T_TMP/x/files$D/blob.bin"
run_bysu verify -c "$C"
leak_check
expect_eq "bysu verify of the S3 repository exits 0" 0 "$RC"

"$BYSU" get -c "$C" env latest -o - | tar --zstd -xOf - output/env.out >"$T_TMP/node-env" 2>/dev/null
check "the node's agent ran (its environment was captured)" test -s "$T_TMP/node-env"
check "the node never sees the repository's key" sh -c "! grep -q AWS_SECRET_ACCESS_KEY '$T_TMP/node-env'"

# a repository that cannot take the snapshot fails the job before ssh: the
# node does not run the snapshot for nothing
sessions() { grep -c 'Connection from' "$T_TMP/sshd-n1/log"; }
S0=$(sessions)
AWS_SECRET_ACCESS_KEY=wrong run_bysu run -c "$C" --json files
leak_check
expect_eq "a wrong repository secret fails the run (exit 1)" 1 "$RC"
expect_match "and the job says why" "SignatureDoesNotMatch|access denied|403" "$OUT$ERR"
expect_match "naming the bucket and the cause" "^S3 bucket '$B' \(prefix 'bysu'\) at .*: access denied \(HTTP 403" \
    "$(jget 'd["jobs"][0]["message"]')"
expect_eq "before the node was contacted (no connection reached its sshd)" "$S0" "$(sessions)"
expect_eq "nothing new is listed after the failed run" 2 "$(count files)"
sed "s|^url = .*|url = s3://$B-gone/bysu|" "$C" >"$T_TMP/gone.conf"
run_bysu run -c "$T_TMP/gone.conf" --json files
leak_check
expect_eq "a missing bucket fails the run (exit 1)" 1 "$RC"
expect_match "naming the bucket and the cause" "^S3 bucket '$B-gone' .*: the bucket does not exist" \
    "$(jget 'd["jobs"][0]["message"]')"
expect_no_match "without advice bysu cannot follow (burry's --create-bucket)" "create-bucket" \
    "$(jget 'd["jobs"][0]["message"]')"
expect_eq "before the node was contacted (no connection reached its sshd)" "$S0" "$(sessions)"
expect_eq "and the bucket is not created" absent \
    "$(rgw_py "
try:
    s3.head_bucket(Bucket='$B-gone'); print('exists')
except Exception:
    print('absent')")"
S1=$(sessions)
run_bysu run -c "$C" --json files
expect_eq "with the right secret the same job runs, over one connection to the node" "0 $((S1 + 1))" "$RC $(sessions)"
expect_eq "no output ever held the secret" 0 "$LEAKS"

# --- interrupts, the timeout backstop and a store that goes away, through
# tests/lib/faultproxy.py (a forwarding proxy in front of the real radosgw) ---
PROXY_PIDS=""
trap 'for p in $PROXY_PIDS; do kill "$p" 2>/dev/null; done; sshd_stop_all; t_cleanup' EXIT
# proxy_start NAME ARGS...: sets PROXY_PORT and STATS
proxy_start() {
    local name=$1; shift
    STATS=$T_TMP/proxy-$name.stats
    /usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy-$name.port" "$RGW_PORT" \
        --stats "$STATS" "$@" 2>>"$T_TMP/proxy.log" &
    PROXY_PIDS="$PROXY_PIDS $!"
    wait_until 10 test -s "$T_TMP/proxy-$name.port" || return 1
    PROXY_PORT=$(cat "$T_TMP/proxy-$name.port")
}
# settle: one more request the proxy delays like the ones before it; once it
# is answered, those (cut short by the client or not) have been passed on
settle() { curl -s -o /dev/null -X PUT "http://127.0.0.1:$PROXY_PORT/$B/settle.json"; }
# interrupt_at N ARGS...: bysu ARGS through the proxy, SIGINT once the proxy
# holds its Nth delayed request; RC, OUT, ERR as run_bysu leaves them
interrupt_at() {
    local n=$1 pid; shift
    AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT "$BYSU" "$@" >"$T_TMP/int.out" 2>"$T_TMP/int.err" &
    pid=$!
    wait_until 60 grep -q "delayed=$n " "$STATS" || not_ok "the proxy saw delayed request $n"
    kill -INT "$pid"
    wait "$pid"
    RC=$?
    OUT=$(cat "$T_TMP/int.out") ERR=$(cat "$T_TMP/int.err")
    leak_check
}
res() { jget "[j for j in d['jobs'] if j['job']=='$1'][0].get('$2')"; }
listed() { "$BYSU" ls -c "$C" --json "$1" | /usr/bin/python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)["snapshots"]))'; }
# orphans: archives in the bucket without their sidecar (never listed, never pruned)
orphans() {
    rgw_py "
keys = {o['Key'] for o in s3.list_objects_v2(Bucket='$B', Prefix='bysu/').get('Contents', [])}
print(sum(1 for k in keys if '.tar' in k and k.split('.tar')[0] + '.json' not in keys))"
}

# a SIGINT while the sidecar is being written: it is let to finish, and the
# job reports what the repository holds
proxy_start side --delay 3 --delay-match .json || not_ok "start the fault proxy"
interrupt_at 2 run -c "$C" --json files
SID=$(res files snapshot)
expect_eq "SIGINT during the sidecar's PUT: the job reports ok, its snapshot having been published" ok "$(res files result)"
settle
case " $(listed files) " in
*" $SID "*) ok "and the snapshot it reports is the one listed" ;;
*) not_ok "and the snapshot it reports is the one listed (reported '$SID', listed: $(listed files))" ;;
esac
expect_eq "no archive is left without its sidecar" 0 "$(orphans)"

# a SIGINT while the archive is being stored: nothing is published, nothing
# is left behind, the next job is not started and the last success stays
proxy_start arch --delay 3 --delay-match "PUT /" || not_ok "start the fault proxy"
BEFORE=$(listed files)
interrupt_at 1 run -c "$C" --json --parallel 1 --metrics-file "$T_TMP/m.prom" files env
settle
expect_eq "SIGINT during the archive's PUT: the job fails" failed "$(res files result)"
expect_eq "and publishes nothing" "$BEFORE" "$(listed files)"
expect_eq "and leaves no archive without a sidecar in the bucket (the clean-up is not cut short)" 0 "$(orphans)"
expect_eq "a job not yet started when the run was interrupted is not started" "not run" "$(res env result)"
expect_eq "the interrupted job keeps its last_success (its newest snapshot) in --json" True \
    "$(jget "isinstance([j for j in d['jobs'] if j['job']=='files'][0].get('last_success'), float)")"
expect_match "and in the metrics file" '^bysu_job_last_success_timestamp_seconds\{job="files"\} [0-9]' \
    "$(cat "$T_TMP/m.prom" 2>/dev/null)"

# a SIGINT while the job prunes, after its snapshot was published: the job
# is ok (the next run prunes)
proxy_start prune --delay 4 --delay-match list-type || not_ok "start the fault proxy"
interrupt_at 1 run -c "$C" --json files
settle
expect_eq "SIGINT during the prune after publishing: the job is ok, saying pruning was cut short" \
    "ok|stored; interrupted while pruning" "$(res files result)|$(res files message)"
case " $(listed files) " in
*" $(res files snapshot) "*) ok "and its snapshot is listed" ;;
*) not_ok "and its snapshot is listed (reported '$(res files snapshot)', listed: $(listed files))" ;;
esac

# a job stopped by the run's backstop (its timeout + 2 s) while a request to
# the store hangs is reported as timed out, not as interrupted
{ cat "$C"; printf '[job slow]\nnode = n1\nsnapshot = files\ntimeout = 2\n'; } >"$T_TMP/slow.conf"
proxy_start slow --delay 30 --delay-match .tar.zst || not_ok "start the fault proxy"
AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT run_bysu run -c "$T_TMP/slow.conf" --json slow
leak_check
expect_eq "the backstopped job fails (exit 1)" "1 failed" "$RC $(res slow result)"
expect_eq "and says it timed out" "timed out after 2 s" "$(res slow message)"

# a repository that cannot be reached: each job fails before ssh, and
# looking up the failed jobs' last successes warns once, not once per job
AWS_ENDPOINT_URL=http://127.0.0.1:$(free_port) run_bysu run -c "$C" --json files env
leak_check
expect_eq "an unreachable repository fails every job (exit 1)" "1 failed failed" "$RC $(res files result) $(res env result)"
expect_eq "the last successes cannot be looked up: said once" 1 \
    "$(grep -c 'last success' <<<"$ERR")"

# the store going away during verify is not damage
proxy_start gone --die-at 1 --match .tar.zst || not_ok "start the fault proxy"
AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT run_bysu verify -c "$C" files
leak_check
expect_eq "verify with the store gone midway exits 1" 1 "$RC"
expect_no_match "and calls no snapshot DAMAGED" DAMAGED "$OUT"
expect_match "but says they were not checked, and why" "not checked: .*(cannot reach|broke off)" "$OUT"
expect_eq "no output ever held the secret (interrupts, backstop, verify)" 0 "$LEAKS"

# --- an infrastructure job (a real ZooKeeper) in the same bucket ---
zk_start z || exit 1
# 10 MB that does not compress: the archive takes two ranged GETs to read
zk_py "$ZK_PORT" "
import os
zk.create('/big', b'')
for i in range(10): zk.create('/big/%d' % i, os.urandom(1000000))"
{ sed -n '/^\[repository\]/,/^keep/p' "$C"; printf '[job zk]\nsource = zk://127.0.0.1:%s\ntimeout = 60\n' "$ZK_PORT"; } \
    >"$T_TMP/infra.conf"
I=$T_TMP/infra.conf
zk_received() { zk_4lw "$ZK_PORT" srvr | sed -n 's/^Received: //p'; }

# the repository is checked before ZooKeeper is read
Z0=$(zk_received)
AWS_SECRET_ACCESS_KEY=wrong run_bysu run -c "$I" --json zk
Z1=$(zk_received)
leak_check
expect_eq "an infrastructure job with a wrong repository secret fails (exit 1)" "1 failed" \
    "$RC $(jget 'd["jobs"][0]["result"]')"
expect_match "naming the bucket and the cause" "^S3 bucket '$B' .*: access denied \(HTTP 403" \
    "$(jget 'd["jobs"][0]["message"]')"
# each srvr query counts one packet; a ZooKeeper session would add more
expect_eq "and ZooKeeper was not contacted (only the srvr query came in)" 1 "$((Z1 - Z0))"
run_bysu run -c "$I" --json zk
leak_check
expect_eq "the infrastructure job runs into S3" "0 ok" "$RC $(jget 'd["jobs"][0]["result"]')"
ZID=$(jget 'd["jobs"][0]["snapshot"]')
run_bysu verify -c "$I" zk
expect_eq "and its snapshot verifies" "0 $ZID  zk  ok" "$RC $OUT"

# the store failing during verify is not damage: infrastructure snapshots
# are reported as node snapshots are, "not checked"
verify_through() { # verify_through LABEL PROXY-ARGS...
    local label=$1; shift
    proxy_start "$label" "$@" || not_ok "start the fault proxy ($label)"
    AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT run_bysu verify -c "$I" zk
    leak_check
    expect_eq "$label: verify exits 1" 1 "$RC"
    expect_no_match "$label: and calls no snapshot DAMAGED" 'DAMAGED|damaged' "$OUT"
    expect_match "$label: but says it was not checked, and why" "^$ZID  zk  not checked: .*$ZID\.tar\.zst" "$OUT"
}
verify_through "the store gone before the archive is read" --die-at 1 --match .tar.zst
verify_through "the store gone in the middle of the archive" --die-at 2 --match .tar.zst
verify_through "the store answering 503" --fail 1000 --match .tar.zst
expect_match "... with the server's answer" "not checked: .*ServiceUnavailable" "$OUT"
proxy_start json --fail 1000 --match .tar.zst || not_ok "start the fault proxy (json)"
AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT run_bysu verify -c "$I" --json zk
expect_eq "--json marks it not_checked, not damaged" "1 False True" \
    "$RC $(jget 'd["snapshots"][0]["ok"]') $(jget 'd["snapshots"][0].get("not_checked")')"

# real damage stays DAMAGED: one flipped byte in the stored object
ZKEY=bysu/zk/$ZID.tar.zst
rgw_py "s3.download_file('$B', '$ZKEY', '$T_TMP/zk.orig')"
python3 -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[len(b)//2]^=1; open(sys.argv[2],"wb").write(b)' \
    "$T_TMP/zk.orig" "$T_TMP/zk.flipped"
rgw_py "s3.upload_file('$T_TMP/zk.flipped', '$B', '$ZKEY')"
run_bysu verify -c "$I" zk
leak_check
expect_eq "a flipped byte in the stored infrastructure archive: verify exits 1" 1 "$RC"
expect_match "and calls it DAMAGED" "^$ZID  zk  DAMAGED: " "$OUT"
rgw_py "s3.upload_file('$T_TMP/zk.orig', '$B', '$ZKEY')"
run_bysu verify -c "$I" zk
expect_eq "with the original bytes back it is ok" "0 $ZID  zk  ok" "$RC $OUT"
expect_eq "no output ever held the secret (infrastructure job)" 0 "$LEAKS"

rgw_py "
for o in s3.list_objects_v2(Bucket='$B').get('Contents', []): s3.delete_object(Bucket='$B', Key=o['Key'])
s3.delete_bucket(Bucket='$B')" >/dev/null 2>&1
t_done
