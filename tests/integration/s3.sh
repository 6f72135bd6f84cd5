#!/bin/bash
# The S3 store against a real Ceph radosgw (started once per test run by
# tests/run.sh; it verifies SigV4 signatures and payload hashes) and real
# ZooKeeper servers: backup, ls, show, verify, restore, multipart uploads,
# interoperability with Debian's aws CLI and boto3 both ways, prune, the
# original tool's -t s3 -c form, and faults: wrong secret, missing bucket,
# the server gone mid-upload, transient 5xx answers. Faults are injected by
# tests/lib/faultproxy.py, a forwarding proxy in front of the real radosgw.
# needs: rgw
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/zk.sh"
. "$(dirname "$0")/../lib/rgw.sh"
t_tmpdir

if [ -z "${RGW_ENDPOINT:-}" ]; then
    not_ok "radosgw is running (RGW_ENDPOINT is not set: run through tests/run.sh)"
    exit 1
fi
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_SESSION_TOKEN AWS_DEFAULT_REGION
# one bucket per script run: scripts run in parallel and once per build variant
B=s3t-$$-$RANDOM
EP=(--endpoint-url "$RGW_ENDPOINT")
PROXY_PIDS=""

# no command's output may ever hold the secret
secret_free() { ! printf '%s\n%s' "$OUT" "$ERR" | grep -qF -- "$RGW_SECRET_KEY"; }
LEAKS=0
run_s3() { run_burry "$@"; secret_free || LEAKS=$((LEAKS + 1)); }

# proxy_start NAME ARGS...: a fault proxy in front of radosgw; sets PROXY_PORT
proxy_start() {
    local name=$1; shift
    rm -f "$T_TMP/proxy-$name.port"
    /usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy-$name.port" "$RGW_PORT" \
        --stats "$T_TMP/proxy-$name.stats" "$@" 2>>"$T_TMP/proxy.log" &
    PROXY_PIDS="$PROXY_PIDS $!"
    wait_until 10 test -s "$T_TMP/proxy-$name.port" || return 1
    PROXY_PORT=$(cat "$T_TMP/proxy-$name.port")
}
cleanup_s3() {
    local p
    for p in $PROXY_PIDS; do kill "$p" 2>/dev/null; done
    t_cleanup
}
trap cleanup_s3 EXIT

# open multipart uploads in the bucket, as boto3 sees them
open_uploads() {
    rgw_py "print(len(s3.list_multipart_uploads(Bucket='$B').get('Uploads', [])))"
}

zk_start src || exit 1
PA=$ZK_PORT
zk_start dst || exit 1
PB=$ZK_PORT
# 12 values of 1 MB of random bytes (the archive does not compress: several
# 5 MiB parts) and a few small nodes
zk_py "$PA" "$(cat <<'PY'
import os
zk.create('/app', b'inner')
zk.create('/app/config', b'{"threads": 4}')
for i in range(12):
    zk.create('/blob/n%02d' % i, os.urandom(1000000), makepath=True)
PY
)"
NAME=zk-src

# --- errors before anything is written --------------------------------------
run_s3 backup "zk://127.0.0.1:$PA" "s3://$B/daily" "${EP[@]}" --name $NAME
expect_eq "a missing bucket fails the backup (exit 1)" 1 "$RC"
expect_match "and says the bucket does not exist" "bucket '$B'.*does not exist.*--create-bucket" "$ERR"
run_s3 ls "s3://$B/daily" "${EP[@]}"
expect_eq "ls of a missing bucket fails (exit 1)" 1 "$RC"
expect_match "ls names the missing bucket" "NoSuchBucket|does not exist" "$ERR"

AWS_SECRET_ACCESS_KEY=not-the-secret run_s3 backup "zk://127.0.0.1:$PA" "s3://$B" "${EP[@]}" --create-bucket
expect_eq "a wrong secret fails the backup (exit 1)" 1 "$RC"
expect_match "a wrong secret gets a clear 403 message" "SignatureDoesNotMatch|access denied" "$ERR"
expect_no_match "a wrong secret is not echoed" "not-the-secret" "$ERR$OUT"
AWS_ACCESS_KEY_ID= run_s3 ls "s3://$B" "${EP[@]}"
expect_eq "missing credentials are a usage error (exit 2)" 2 "$RC"
expect_match "missing credentials name the variables" "AWS_ACCESS_KEY_ID" "$ERR"
run_s3 ls "s3://NO_such" "${EP[@]}"
expect_eq "an invalid bucket name is a usage error" 2 "$RC"

# --- backup, ls, show, verify, restore --------------------------------------
run_s3 backup "zk://127.0.0.1:$PA" "s3://$B/daily" "${EP[@]}" --create-bucket --part-size 5 --name $NAME --json
expect_eq "backup to S3 with --create-bucket exits 0" 0 "$RC"
ID=$(jget 'd["snapshot"]')
run_s3 ls "s3://$B/daily" "${EP[@]}" --json
expect_eq "ls lists the snapshot" "$ID" "$(jget '" ".join(s["id"] for s in d["snapshots"])')"
run_s3 show "s3://$B/daily" "${EP[@]}" --snapshot latest --json
expect_eq "show latest finds it" "$ID" "$(jget 'd["snapshot"]')"
SIZE=$(jget 'd["archive"]["size"]')
run_s3 verify "s3://$B/daily" "${EP[@]}"
expect_eq "verify of the S3 snapshot passes" 0 "$RC"
KEYS=$(rgw_py "print(' '.join(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='$B')['Contents'])))")
expect_eq "the bucket holds the archive and its manifest under the prefix" \
    "daily/$NAME/$ID.json daily/$NAME/$ID.tar.zst" "$KEYS"
ETAG=$(rgw_py "print(s3.head_object(Bucket='$B', Key='daily/$NAME/$ID.tar.zst')['ETag'])")
expect_match "the archive went up as a multipart upload (ETag ends in -PARTS)" '-[3-9]"?$' "$ETAG"
expect_eq "no multipart upload is left open" 0 "$(open_uploads)"

run_s3 restore "zk://127.0.0.1:$PB" "s3://$B/daily" "${EP[@]}" --name $NAME
expect_eq "restore from S3 exits 0" 0 "$RC"
zk_tree "$PA" >"$T_TMP/a.tree"
zk_tree "$PB" >"$T_TMP/b.tree"
check "the restored tree equals the original" cmp -s "$T_TMP/a.tree" "$T_TMP/b.tree"

# --- interoperability: Debian's aws CLI and tar read what burry wrote ---------
mkdir -p "$T_TMP/dl"
rgw_aws s3 cp "s3://$B/daily/$NAME/$ID.tar.zst" "$T_TMP/dl/a.tar.zst" >/dev/null 2>"$T_TMP/aws.err"
expect_eq "aws s3 cp downloads the archive" "$SIZE" "$(stat -c %s "$T_TMP/dl/a.tar.zst" 2>/dev/null)"
check "stock tar lists the downloaded archive" tar --zstd -tf "$T_TMP/dl/a.tar.zst" manifest.json
rgw_aws s3 cp "s3://$B/daily/$NAME/$ID.json" "$T_TMP/dl/a.json" >/dev/null 2>>"$T_TMP/aws.err"
SUM=$(sha256sum "$T_TMP/dl/a.tar.zst" | cut -d' ' -f1)
expect_eq "the archive's SHA-256 matches the published manifest" \
    "$SUM" "$(json_get "$(cat "$T_TMP/dl/a.json")" 'd["archive"]["sha256"]')"

# ... and burry restores a snapshot that boto3 copied up
S=$T_TMP/store
run_s3 backup "zk://127.0.0.1:$PA" "$S" --name copied --json
CID=$(jget 'd["snapshot"]')
rgw_py "
s3.upload_file('$S/copied/$CID.tar.zst', '$B', 'other/copied/$CID.tar.zst')
s3.upload_file('$S/copied/$CID.json', '$B', 'other/copied/$CID.json')"
run_s3 verify "s3://$B/other" "${EP[@]}" --snapshot "$CID" --name copied
expect_eq "a snapshot uploaded by boto3 verifies" 0 "$RC"
zk_start dst2 || exit 1
run_s3 restore "zk://127.0.0.1:$ZK_PORT" "s3://$B/other" "${EP[@]}" --name copied
expect_eq "a snapshot uploaded by boto3 restores" 0 "$RC"
zk_tree "$ZK_PORT" >"$T_TMP/c.tree"
check "and equals the original tree" cmp -s "$T_TMP/a.tree" "$T_TMP/c.tree"

# ... a damaged copy (one byte flipped) is refused before anything is written
/usr/bin/python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 1
open(sys.argv[2], "wb").write(b)' "$S/copied/$CID.tar.zst" "$T_TMP/damaged.tar.zst"
rgw_py "
s3.upload_file('$T_TMP/damaged.tar.zst', '$B', 'damaged/copied/$CID.tar.zst')
s3.upload_file('$S/copied/$CID.json', '$B', 'damaged/copied/$CID.json')"
run_s3 verify "s3://$B/damaged" "${EP[@]}" --snapshot "$CID" --name copied
expect_eq "verify of a damaged archive in S3 fails (exit 1)" 1 "$RC"
expect_match "and says the snapshot is damaged" "damaged|SHA-256|checksum" "$ERR"
zk_start dst3 || exit 1
run_s3 restore "zk://127.0.0.1:$ZK_PORT" "s3://$B/damaged" "${EP[@]}" --name copied
expect_eq "restore of a damaged archive from S3 fails (exit 1)" 1 "$RC"
expect_eq "and writes nothing (the root alone)" 1 "$(zk_tree "$ZK_PORT" | grep -vc '^"/zookeeper')"
zk_stop dst3

# --- an endpoint nothing listens on ---------------------------------------------
run_s3 ls "s3://$B/daily" --endpoint-url "http://127.0.0.1:$(free_port)"
expect_eq "an unreachable endpoint fails (exit 1)" 1 "$RC"
expect_match "and names the endpoint it could not reach" "cannot reach S3 at http://127\.0\.0\.1:[0-9]+" "$ERR"

# --- gs:// is the same code path with its own keys and default endpoint;
# radosgw stands in for GCS's XML API (there is no GCS server here) ---------
GS_ACCESS_KEY_ID=$RGW_ACCESS_KEY GS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY AWS_ACCESS_KEY_ID= \
    AWS_SECRET_ACCESS_KEY= run_s3 backup "zk://127.0.0.1:$PA" "gs://$B/gcs" "${EP[@]}" --name $NAME --json
expect_eq "gs:// with GS_ACCESS_KEY_ID/GS_SECRET_ACCESS_KEY backs up" 0 "$RC"
GS_ACCESS_KEY_ID=$RGW_ACCESS_KEY GS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY run_s3 verify "gs://$B/gcs" "${EP[@]}"
expect_eq "gs:// verifies" 0 "$RC"
GS_ACCESS_KEY_ID= GS_SECRET_ACCESS_KEY= AWS_ACCESS_KEY_ID= run_s3 ls "gs://$B/gcs"
expect_match "gs:// without keys names GS_ACCESS_KEY_ID" "GS_ACCESS_KEY_ID" "$ERR"
expect_match "gs:// defaults to Google's endpoint" "storage.googleapis.com" "$ERR"

# --- retention ---------------------------------------------------------------
for i in 1 2; do run_s3 backup "zk://127.0.0.1:$PA" "s3://$B/daily" "${EP[@]}" --name $NAME --json; done
run_s3 ls "s3://$B/daily" "${EP[@]}" --json
expect_eq "three snapshots before pruning" 3 "$(jget 'len(d["snapshots"])')"
NEWEST=$(jget 'd["snapshots"][-1]["id"]')
run_s3 prune "s3://$B/daily" "${EP[@]}" --keep 1 --dry-run --json
expect_eq "prune --dry-run on S3 deletes nothing" "0 2" "$RC $(jget 'len(d["deleted"])')"
run_s3 backup "zk://127.0.0.1:$PA" "s3://$B/daily" "${EP[@]}" --name $NAME --keep 2 --json
expect_eq "backup --keep 2 to S3 exits 0" 0 "$RC"
run_s3 ls "s3://$B/daily" "${EP[@]}" --json
expect_eq "backup --keep 2 left two snapshots" 2 "$(jget 'len(d["snapshots"])')"
run_s3 prune "s3://$B/daily" "${EP[@]}" --keep 1
expect_eq "prune --keep 1 on S3 exits 0" 0 "$RC"
run_s3 ls "s3://$B/daily" "${EP[@]}" --json
LEFT=$(jget '" ".join(s["id"] for s in d["snapshots"])')
NOBJ=$(rgw_py "print(len([o for o in s3.list_objects_v2(Bucket='$B', Prefix='daily/')['Contents']]))")
expect_eq "prune leaves exactly the newest archive and manifest" "1 2" "$(echo $LEFT | wc -w) $NOBJ"

# --- the original tool's form: -t s3 -c ENDPOINT,KEYS,BUCKET,PREFIX,SSL ---------
(cd "$T_TMP" && AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= \
    "$BURRY" -e "127.0.0.1:$PA" -t s3 \
    -c "${RGW_ENDPOINT#http://},ACCESS_KEY_ID=$RGW_ACCESS_KEY,SECRET_ACCESS_KEY=$RGW_SECRET_KEY,BUCKET=$B,PREFIX=legacy,SSL=false" \
    >"$T_TMP/legacy.out" 2>&1)
RC=$?
expect_eq "burry -t s3 -c ... backs up (exit 0)" 0 "$RC"
check "the legacy run's output holds no secret" sh -c "! grep -qF -- '$RGW_SECRET_KEY' '$T_TMP/legacy.out'"
run_s3 ls "s3://$B/legacy" "${EP[@]}" --json
expect_eq "the legacy backup is listed under PREFIX" 1 "$(jget 'len(d["snapshots"])')"

# --- transient 5xx: retried, then success -------------------------------------
proxy_start flaky --fail 3 --match "partNumber=" || not_ok "fault proxy starts"
run_s3 backup "zk://127.0.0.1:$PA" "s3://$B/flaky" --endpoint-url "http://127.0.0.1:$PROXY_PORT" \
    --part-size 5 --name $NAME -v
expect_eq "a backup through three injected 503 answers still succeeds" 0 "$RC"
expect_match "the three 503 answers were injected" "injected=3" "$(cat "$T_TMP/proxy-flaky.stats")"
expect_match "the retries are logged" "answered 503; trying again" "$ERR"
run_s3 verify "s3://$B/flaky" "${EP[@]}"
expect_eq "the snapshot written through the retries verifies" 0 "$RC"

# --- a store that cannot deliver the archive: not checked, not damaged -----------
proxy_start unread --fail 1000 --match ".tar.zst" || not_ok "fault proxy starts"
run_s3 verify "s3://$B/flaky" --endpoint-url "http://127.0.0.1:$PROXY_PORT"
expect_eq "verify through a store that answers 503 to the archive exits 1" 1 "$RC"
expect_match "the snapshot's line says it was not checked" "  NOT CHECKED \(the store failed\)$" "$OUT"
expect_no_match "and does not call it damaged" "DAMAGED|damaged" "$OUT$ERR"
expect_match "the error says the store failed" "could not be read from it, so they were not checked" "$ERR"
run_s3 verify "s3://$B/flaky" --endpoint-url "http://127.0.0.1:$PROXY_PORT" --json
expect_eq "--json: not ok, not_checked" "False True" \
    "$(jget 'd["snapshots"][0]["ok"]') $(jget 'd["snapshots"][0].get("not_checked")')"

# --- a permanent error is not retried -------------------------------------------
proxy_start denied --fail 100 --status 403 --match "uploads=" || not_ok "fault proxy starts"
run_s3 backup "zk://127.0.0.1:$PA" "s3://$B/denied" --endpoint-url "http://127.0.0.1:$PROXY_PORT" \
    --part-size 5 --name $NAME
expect_eq "a 403 fails the backup (exit 1)" 1 "$RC"
expect_match "a 403 is asked only once" "injected=1" "$(cat "$T_TMP/proxy-denied.stats")"

# --- a store too slow for ZooKeeper's session: parts of 5 MiB taken at
# 700 KB/s each, four at a time; once every buffer is in flight the walk
# (32 MB of values, then 10,000 small nodes still to read) waits for one,
# longer than the 4 s session allows. The error says the session was lost
# because burry itself was held up, and nothing is left ---
zk_py "$PA" "$(cat <<'PY'
import os
for i in range(32):
    zk.create('/slow/a/n%02d' % i, os.urandom(1000000), makepath=True)
zk.create('/slow/b', b'')
for i in range(10):
    tx = zk.transaction()
    for j in range(1000):
        tx.create('/slow/b/m%d-%04d' % (i, j), b'x' * 20)
    tx.commit()
PY
)"
proxy_start sluggish --body-rate 700000 --body-rate-match "partNumber=" || not_ok "fault proxy starts"
# (under ASAN, a leak inside libzookeeper on a lost session is suppressed:
# tests/lib/zk-lost-session.supp says which)
LSAN_OPTIONS=suppressions=$ZK_LIB/zk-lost-session.supp \
    run_s3 backup "zk://127.0.0.1:$PA/slow" "s3://$B/sluggish" --endpoint-url "http://127.0.0.1:$PROXY_PORT" \
    --part-size 5 --timeout 4 --name slow
expect_eq "a store slower than the ZooKeeper session fails the backup (exit 1)" 1 "$RC"
expect_match "the error says burry itself was held up, and what to do" \
    "(ZooKeeper session expired|no answer from ZooKeeper|lost the connection to ZooKeeper).*burry itself was held up for [0-9.]+ s.*larger --timeout" "$ERR"
run_s3 ls "s3://$B/sluggish" "${EP[@]}" --json
expect_eq "nothing is listed after it" 0 "$(jget 'len(d["snapshots"])')"
expect_eq "no multipart upload is left open" 0 "$(open_uploads)"
zk_py "$PA" "zk.delete('/slow', recursive=True)"

# --- the server gone in the middle of the upload -------------------------------
P=$(free_port)
proxy_start dying --port "$P" --die-at 2 --match "partNumber=" || not_ok "fault proxy starts"
"$BURRY" backup "zk://127.0.0.1:$PA" "s3://$B/cut" --endpoint-url "http://127.0.0.1:$P" \
    --part-size 5 --name $NAME -v >"$T_TMP/cut.out" 2>"$T_TMP/cut.err" &
BPID=$!
# the server comes back once burry has given up on the parts and is aborting
if wait_until 60 grep -q "aborting the multipart upload" "$T_TMP/cut.err"; then
    proxy_start back --port "$P" || not_ok "fault proxy restarts"
else
    not_ok "burry says it aborts the upload ($(tail -3 "$T_TMP/cut.err"))"
fi
wait "$BPID"
RC=$?
expect_eq "a backup whose server died mid-upload exits 1" 1 "$RC"
expect_match "the error names what failed" "cannot reach S3|uploading part" "$(cat "$T_TMP/cut.err")"
expect_match "the upload was aborted once the server was back" "aborted the multipart upload" "$(cat "$T_TMP/cut.err")"
run_s3 ls "s3://$B/cut" "${EP[@]}" --json
expect_eq "nothing is listed after the failed backup" 0 "$(jget 'len(d["snapshots"])')"
expect_eq "no multipart upload is left open" 0 "$(open_uploads)"
NCUT=$(rgw_py "print(len(s3.list_objects_v2(Bucket='$B', Prefix='cut/').get('Contents', [])))")
expect_eq "no object was written under the failed backup's prefix" 0 "$NCUT"

# --- the real radosgw process killed mid-upload: a gateway of our own on the
# shared cluster, killed with SIGKILL once the multipart upload is open, and
# started again while burry is aborting ------------------------------------
if [ -n "${RGW_CLUSTER_DIR:-}" ]; then
    zk_start big -Xmx2g || exit 1
    PBIG=$ZK_PORT
    zk_py "$PBIG" "$(printf 'import os\nfor i in range(100):\n    zk.create("/big/v%%03d" %% i, os.urandom(1000000), makepath=True)')"
    GP=$(free_port)
    if rgw_gateway_start "$RGW_CLUSTER_DIR" gw2 "$GP"; then
        "$BURRY" backup "zk://127.0.0.1:$PBIG" "s3://$B/killed" --endpoint-url "http://127.0.0.1:$GP" \
            --part-size 5 --name big -v >"$T_TMP/kill.out" 2>"$T_TMP/kill.err" &
        BPID=$!
        # kill the gateway as soon as the upload is open
        rgw_py "
import os, time
for _ in range(2000):
    if s3.list_multipart_uploads(Bucket='$B', Prefix='killed/').get('Uploads'):
        os.kill($RGW_GW_PID, 9)
        print('killed')
        break
    time.sleep(0.01)
" >"$T_TMP/killer.out" 2>&1
        expect_eq "the gateway was killed while the upload was open" killed "$(head -n 1 "$T_TMP/killer.out")"
        wait "$RGW_GW_PID" 2>/dev/null
        if wait_until 60 grep -q "aborting the multipart upload" "$T_TMP/kill.err"; then
            rgw_gateway_start "$RGW_CLUSTER_DIR" gw2 "$GP" || not_ok "the gateway starts again"
        else
            not_ok "burry says it aborts the upload ($(grep -a burry: "$T_TMP/kill.err" | tail -2))"
        fi
        wait "$BPID"
        RC=$?
        kill "$RGW_GW_PID" 2>/dev/null
        expect_eq "a backup whose radosgw was killed mid-upload exits 1" 1 "$RC"
        expect_match "the kill is reported as an unreachable server" "cannot reach S3" "$(cat "$T_TMP/kill.err")"
        expect_match "the upload was aborted once radosgw was back" "aborted the multipart upload" "$(cat "$T_TMP/kill.err")"
        run_s3 ls "s3://$B/killed" "${EP[@]}" --json
        expect_eq "nothing is listed after the killed backup" 0 "$(jget 'len(d["snapshots"])')"
        expect_eq "no multipart upload is left open after the killed backup" 0 "$(open_uploads)"
    else
        not_ok "a second radosgw gateway starts"
    fi
    zk_stop big
else
    not_ok "RGW_CLUSTER_DIR is set by tests/run.sh (needed to start a gateway to kill)"
fi

# --- TLS: verified by default, a private CA with --cacert ---------------------
if [ -n "${RGW_CLUSTER_DIR:-}" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1" -keyout "$T_TMP/tls.key" -out "$T_TMP/tls.crt" \
        >/dev/null 2>&1 || not_ok "make a test certificate"
    TP=$(free_port)
    radosgw -c "$RGW_CLUSTER_DIR/ceph.conf" -n client.rgw \
        --rgw-frontends "beast ssl_endpoint=127.0.0.1:$TP ssl_certificate=$T_TMP/tls.crt ssl_private_key=$T_TMP/tls.key" \
        --pid-file "$T_TMP/tls.pid" --log-file "$T_TMP/tls.log" --admin-socket "$T_TMP/tls.asok" \
        -f >"$T_TMP/tls.out" 2>&1 &
    TLS_PID=$!
    wait_until 30 curl -s -m 1 -o /dev/null --cacert "$T_TMP/tls.crt" "https://127.0.0.1:$TP/" ||
        not_ok "a TLS gateway starts"
    run_s3 ls "s3://$B/daily" --endpoint-url "https://127.0.0.1:$TP"
    expect_eq "a certificate from an unknown CA is refused (exit 1)" 1 "$RC"
    expect_match "and the message says it is about the certificate" "certificate|SSL" "$ERR"
    run_s3 ls "s3://$B/daily" --endpoint-url "https://127.0.0.1:$TP" --cacert "$T_TMP/tls.crt" --json
    expect_eq "with --cacert the private CA is trusted" "0 1" "$RC $(jget 'len(d["snapshots"])')"
    run_s3 verify "s3://$B/daily" --endpoint-url "https://127.0.0.1:$TP" --cacert "$T_TMP/tls.crt"
    expect_eq "a snapshot verifies over TLS" 0 "$RC"
    kill "$TLS_PID" 2>/dev/null
    wait "$TLS_PID" 2>/dev/null
fi

# --- SIGINT during an upload -------------------------------------------------------
proxy_start slow --fail 1000 --status 503 --match "partNumber=2&" || not_ok "fault proxy starts"
"$BURRY" backup "zk://127.0.0.1:$PA" "s3://$B/int" --endpoint-url "http://127.0.0.1:$PROXY_PORT" \
    --part-size 5 --name $NAME -v >"$T_TMP/int.out" 2>"$T_TMP/int.err" &
BPID=$!
wait_until 30 grep -q "answered 503" "$T_TMP/int.err"
kill -INT "$BPID"
wait "$BPID"
RC=$?
expect_match "an interrupted backup exits non-zero" "^[1-9]" "$RC"
expect_eq "an interrupted backup leaves no open multipart upload" 0 "$(open_uploads)"
run_s3 ls "s3://$B/int" "${EP[@]}" --json
expect_eq "an interrupted backup lists nothing" 0 "$(jget 'len(d["snapshots"])')"

expect_eq "no command printed the secret" 0 "$LEAKS"
check "the cut and interrupted runs printed no secret" \
    sh -c "! cat '$T_TMP/cut.err' '$T_TMP/int.err' | grep -qF -- '$RGW_SECRET_KEY'"
rgw_py "
b = s3.list_objects_v2(Bucket='$B').get('Contents', [])
for o in b: s3.delete_object(Bucket='$B', Key=o['Key'])
s3.delete_bucket(Bucket='$B')" >/dev/null 2>&1
t_done
