#!/bin/bash
# Object-store upload benchmark on a real Ceph radosgw on loopback: a backup
# of about 1 GiB of incompressible values of 1 MB streams to s3:// while it
# runs. The source is ZooKeeper by default (BENCH_S3_SOURCE=etcd: etcd v3
# with 1 MiB values and a raised backend quota; etcd 3.4 itself serves such
# values at about 30 MB/s here, so that figure measures etcd, not the
# upload). The reference is Debian's
# `aws s3 cp` of a local file of the same size as burry's archive to the same
# server, measured in the same run (target: burry's throughput at least 80%
# of the reference's, with burry's peak RSS under 64 MB). Prints every figure
# and the ratio. Objects are deleted after each run (radosgw's memstore OSD
# keeps them in RAM).
#   BENCH_S3_MIB=N      values of 1 MB (default 1024)
#   BENCH_S3_SOURCE=zk|etcd
#   BENCH_REPEAT=N      runs of each, the best counts (default 3)
#   BURRY=path          the binary under test (default bin/burry)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
BURRY=${BURRY:-$ROOT/bin/burry}
. tests/lib/lib.sh
. tests/lib/etcd.sh
. tests/lib/zk.sh
. tests/lib/rgw.sh
t_tmpdir
RGW_DIR=$T_TMP/rgw
trap 'rgw_stop "$RGW_DIR"; t_cleanup' EXIT

MIB=${BENCH_S3_MIB:-1024}
SOURCE=${BENCH_S3_SOURCE:-zk}
REPEAT=${BENCH_REPEAT:-3}
[ -x "$BURRY" ] || { echo "s3.sh: $BURRY is not built (run make)" >&2; exit 1; }
[ -x /usr/bin/aws ] || { echo "s3.sh: Debian's awscli (/usr/bin/aws) is missing (make setup)" >&2; exit 1; }

now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -n | head -n 1; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

echo "starting $SOURCE and radosgw..."
if [ "$SOURCE" = etcd ]; then
    etcd_start bench --quota-backend-bytes 8589934592 || exit 1
    SRC=etcd://127.0.0.1:$ETCD_PORT
    echo "loading $MIB values of 1 MiB of random bytes into etcd..."
    etcd_py "$ETCD_PORT" "
import os
for i in range($MIB):
    kv.put(b'/bench/v%05d' % i, os.urandom(1 << 20))
" || exit 1
else
    zk_start bench -Xmx12g || exit 1
    SRC=zk://127.0.0.1:$ZK_PORT
    echo "loading $MIB values of 1,000,000 random bytes into ZooKeeper..."
    zk_py "$ZK_PORT" "
import os
for i in range($MIB):
    zk.create('/bench/v%05d' % i, os.urandom(1000000), makepath=True)
" || exit 1
fi
rgw_start "$RGW_DIR" >"$T_TMP/rgw.log" 2>&1 || { cat "$T_TMP/rgw.log" >&2; exit 1; }
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL
rgw_py "s3.create_bucket(Bucket='bench')" || exit 1

clear_bucket() {
    rgw_py "
for o in s3.list_objects_v2(Bucket='bench').get('Contents', []):
    s3.delete_object(Bucket='bench', Key=o['Key'])" >/dev/null
}

B_T=() A_T=() RSS=()
SIZE=0
for r in $(seq 1 "$REPEAT"); do
    t0=$(now)
    /usr/bin/time -f '%M' -o "$T_TMP/rss" "$BURRY" backup "$SRC" \
        s3://bench/burry --endpoint-url "$RGW_ENDPOINT" --name bench --json >"$T_TMP/b.json" 2>"$T_TMP/b.err" ||
        { echo "s3.sh: burry backup failed:" >&2; tail -5 "$T_TMP/b.err" >&2; exit 1; }
    B_T+=("$(calc "$(now) - $t0" 3)")
    RSS+=("$(cat "$T_TMP/rss")")
    ID=$(json_get "$(cat "$T_TMP/b.json")" 'd["snapshot"]')
    SIZE=$(rgw_py "print(s3.head_object(Bucket='bench', Key='burry/bench/$ID.tar.zst')['ContentLength'])")
    clear_bucket
    if [ ! -f "$T_TMP/ref.bin" ]; then
        head -c "$SIZE" /dev/urandom >"$T_TMP/ref.bin"
    fi
    t0=$(now)
    rgw_aws s3 cp "$T_TMP/ref.bin" s3://bench/ref.bin >/dev/null 2>"$T_TMP/aws.err" ||
        { echo "s3.sh: aws s3 cp failed:" >&2; tail -5 "$T_TMP/aws.err" >&2; exit 1; }
    A_T+=("$(calc "$(now) - $t0" 3)")
    clear_bucket
    echo "run $r: burry ${B_T[-1]} s (peak RSS $(calc "${RSS[-1]} / 1024" 1) MB), aws s3 cp ${A_T[-1]} s"
done

BT=$(best "${B_T[@]}")
AT=$(best "${A_T[@]}")
MAXRSS=$(printf '%s\n' "${RSS[@]}" | sort -n | tail -n 1)
MB=$(calc "$SIZE / 1048576" 1)
echo
echo "archive: $MB MiB from $MIB $SOURCE values of 1 MB (best of $REPEAT)"
echo "burry backup $SOURCE -> s3:  $BT s  $(calc "$SIZE / 1048576 / $BT" 1) MiB/s  peak RSS $(calc "$MAXRSS / 1024" 1) MB (target < 64 MB)"
echo "aws s3 cp (same size):    $AT s  $(calc "$SIZE / 1048576 / $AT" 1) MiB/s"
echo "throughput ratio burry/aws: $(calc "$AT / $BT" 2) (target >= 0.80)"
