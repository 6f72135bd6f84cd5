#!/bin/bash
# etcd v3 benchmark on a real etcd 3.4 server: backup of 100,000 keys with
# 100-byte values against `etcdctl get "" --prefix -w json > file` measured
# in the same run (target: within 1.5x), and restore of 10,000 keys into an
# empty server against the original Go tool's 4.8 s measured on this kind of
# machine (target: at least 10x faster). Prints every figure and the ratios.
#   BENCH_ETCD_COUNT=N   keys for the backup figure (default 100000)
#   BENCH_REPEAT=N       runs of each reader and of the restore (default 7)
#   BURRY=path           the binary under test (default bin/burry)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
BURRY=${BURRY:-$ROOT/bin/burry}
. tests/lib/lib.sh
. tests/lib/etcd.sh
t_tmpdir

COUNT=${BENCH_ETCD_COUNT:-100000}
RCOUNT=10000
REPEAT=${BENCH_REPEAT:-7}
GO_RESTORE=4.8   # the original tool, 10,000 keys, one request per key (../shared/LAB.md)
[ -x "$BURRY" ] || { echo "etcd.sh: $BURRY is not built (run make)" >&2; exit 1; }

now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -n | head -n 1; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

# timed NAME CMD...: runs CMD, output in $T_TMP/NAME.{out,err}; sets T_SECS.
timed() {
    local name=$1 t0 rc
    shift
    t0=$(now)
    "$@" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err"
    rc=$?
    T_SECS=$(calc "$(now) - $t0" 3)
    if [ "$rc" -ne 0 ]; then
        echo "etcd.sh: '$*' failed (status $rc):" >&2
        tail -5 "$T_TMP/$name.err" >&2
        exit 1
    fi
}

etcd_start big || exit 1
PB=$ETCD_PORT
echo "loading $COUNT keys (100-byte values) into etcd at 127.0.0.1:$PB"
t0=$(now)
etcd_py "$PB" "kv.load((b'bench/%02d/key-%07d' % (i % 97, i), b'%0100d' % i) for i in range($COUNT))" ||
    { echo "etcd.sh: loading failed" >&2; exit 1; }
echo "  loaded in $(calc "$(now) - $t0")s"

S=$T_TMP/store
ref=() mine=()
for r in $(seq 1 "$REPEAT"); do
    timed ref env ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$PB" get "" --prefix -w json
    ref+=("$T_SECS")
    rm -rf "$S"
    timed backup "$BURRY" backup "etcd://127.0.0.1:$PB" "$S" --json
    mine+=("$T_SECS")
done
N=$(json_get "$(cat "$T_TMP/backup.out")" 'd["nodes"]')
[ "$N" = "$COUNT" ] || { echo "etcd.sh: backup holds $N keys, not $COUNT" >&2; exit 1; }
REF=$(best "${ref[@]}")
MINE=$(best "${mine[@]}")
RATIO=$(calc "$MINE / $REF")
echo "backup of $COUNT keys: etcdctl get -w json ${REF}s, burry backup ${MINE}s: ratio ${RATIO}x (target <= 1.5x)"
echo "  runs: etcdctl ${ref[*]}; burry ${mine[*]}"
# on a noisy machine the ratio of each pair (run one after the other) says more
pairs=()
for i in "${!ref[@]}"; do pairs+=("$(calc "${mine[$i]} / ${ref[$i]}")"); done
echo "  ratio of each pair: ${pairs[*]}; median $(median "${pairs[@]}")x"

# restore: an archive of the first 10,000 keys into a fresh empty server each time
etcd_py "$PB" "kv.load((b'restore/key-%05d' % i, b'%0100d' % i) for i in range($RCOUNT))" ||
    { echo "etcd.sh: loading failed" >&2; exit 1; }
rm -rf "$S"
timed small "$BURRY" backup "etcd://127.0.0.1:$PB/restore/" "$S" --name small --json
etcd_stop big
rest=()
for r in $(seq 1 "$REPEAT"); do
    etcd_start "r$r" || exit 1
    timed restore "$BURRY" restore "etcd://127.0.0.1:$ETCD_PORT" "$S" --name small --json
    rest+=("$T_SECS")
    C=$(json_get "$(cat "$T_TMP/restore.out")" 'd["created"]')
    [ "$C" = "$RCOUNT" ] || { echo "etcd.sh: the restore created $C keys, not $RCOUNT" >&2; exit 1; }
    ON=$(env ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ETCD_PORT" get "" --prefix --keys-only | grep -c .)
    [ "$ON" = "$RCOUNT" ] || { echo "etcd.sh: the server holds $ON keys after the restore, not $RCOUNT" >&2; exit 1; }
    etcd_stop "r$r"
done
RESTORE=$(best "${rest[@]}")
RMED=$(median "${rest[@]}")
echo "restore of $C keys into an empty server: burry best ${RESTORE}s, median ${RMED}s; original tool" \
     "${GO_RESTORE}s for 10,000: $(calc "$GO_RESTORE / $RESTORE" 1)x faster at best," \
     "$(calc "$GO_RESTORE / $RMED" 1)x at the median (target >= 10x)"
echo "  runs: ${rest[*]}"
