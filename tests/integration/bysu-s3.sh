#!/bin/bash
# bysu with its repository in S3 (a real radosgw, started once per test run
# by tests/run.sh) and a real sshd node: runs publish into the bucket, keep
# is enforced there, ls/get/verify read from it, the repository credentials
# stay on the central host (the node's agent sees none) and never appear in
# output.
# needs: rgw
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/sshd.sh"
. "$(dirname "$0")/../lib/rgw.sh"
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

AWS_SECRET_ACCESS_KEY=wrong run_bysu run -c "$C" --json files
leak_check
expect_eq "a wrong repository secret fails the run (exit 1)" 1 "$RC"
expect_match "and the job says why" "SignatureDoesNotMatch|access denied|403" "$OUT$ERR"
expect_eq "nothing new is listed after the failed run" 2 "$(count files)"
expect_eq "no output ever held the secret" 0 "$LEAKS"

rgw_py "
for o in s3.list_objects_v2(Bucket='$B').get('Contents', []): s3.delete_object(Bucket='$B', Key=o['Key'])
s3.delete_bucket(Bucket='$B')" >/dev/null 2>&1
t_done
