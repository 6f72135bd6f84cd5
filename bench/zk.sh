#!/bin/bash
# ZooKeeper benchmark: burry's backup and restore of the standard tree
# (100,000 znodes, fan-out 10, 100-byte values) against two references built
# here from bench/: zkref, a pipelined single-threaded walker (with and
# without ACLs), and zkload, a pipelined bulk creator, each on a fresh real
# server. Prints every figure, peak memory and the ratios.
#   BENCH_1M=1          also back up 1,000,000 znodes to compare peak memory
#   BENCH_ZK_COUNT=N    size of the standard tree (default 100000)
#   BENCH_REPEAT=N      runs of each reader, the best counts (default 3)
#   BURRY=path          the binary under test (default bin/burry)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
BURRY=${BURRY:-$ROOT/bin/burry}
. tests/lib/lib.sh
. tests/lib/zk.sh
t_tmpdir

COUNT=${BENCH_ZK_COUNT:-100000}
BIG=1000000
BIN=$ROOT/build/bench
mkdir -p "$BIN"
for p in zkload zkref; do
    cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$BIN/$p" "bench/$p.c" -lzookeeper_st ||
        { echo "zk.sh: cannot build bench/$p.c" >&2; exit 1; }
done
[ -x "$BURRY" ] || { echo "zk.sh: $BURRY is not built (run make)" >&2; exit 1; }

REPEAT=${BENCH_REPEAT:-3}

now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -n | head -n 1; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

# measure NAME CMD...: runs CMD with its output in $T_TMP/NAME.{out,err};
# sets M_RC, M_SECS (wall clock) and M_KB (peak resident set size).
measure() {
    local name=$1 t0 t1
    shift
    t0=$(now)
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f %M -o "$T_TMP/$name.rss" "$@" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err"
        M_RC=$?
        M_KB=$(tail -n 1 "$T_TMP/$name.rss")
    else
        local pid hwm=0 v
        "$@" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err" &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            [ -n "$v" ] && hwm=$v
            sleep 0.05
        done
        wait "$pid"
        M_RC=$?
        M_KB=$hwm
    fi
    t1=$(now)
    M_SECS=$(calc "$t1 - $t0" 3)
    if [ "$M_RC" -ne 0 ]; then
        echo "zk.sh: '$*' failed (exit status $M_RC):" >&2
        tail -n 5 "$T_TMP/$name.err" "$T_TMP/$name.out" >&2
        exit 1
    fi
}

# The number of znodes zkref found, from its output line.
ref_nodes() { awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "znodes") print $i }' "$T_TMP/$1.out"; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

zk_start src >/dev/null || exit 1
SRC=$ZK_PORT
measure load "$BIN/zkload" "127.0.0.1:$SRC" "$COUNT"
echo "tree:    $COUNT znodes, fan-out 10, 100-byte values (loaded in ${M_SECS}s)"

# The server's JIT warms up on a first walk; then the three readers take
# turns, and the best of REPEAT runs counts (the machine may be shared).
measure warm "$BIN/zkref" "127.0.0.1:$SRC"
STORE=$T_TMP/store
age-keygen -o "$T_TMP/age.key" 2>/dev/null || { echo "zk.sh: age-keygen failed" >&2; exit 1; }
AGE_PUB=$(age-keygen -y "$T_TMP/age.key")
REF_S= REFACL_S= BK_S= BK_KB=0 ENC_S=
for i in $(seq 1 "$REPEAT"); do
    measure encbackup "$BURRY" backup "zk://127.0.0.1:$SRC" "$T_TMP/encstore" --name bench --encrypt-to "$AGE_PUB" --json
    ENC_S="$ENC_S $M_SECS"
    measure ref "$BIN/zkref" "127.0.0.1:$SRC"
    REF_S="$REF_S $M_SECS"
    measure refacl "$BIN/zkref" -a "127.0.0.1:$SRC"
    REFACL_S="$REFACL_S $M_SECS"
    measure backup "$BURRY" backup "zk://127.0.0.1:$SRC" "$STORE" --name bench --json
    BK_S="$BK_S $M_SECS"
    [ "$M_KB" -gt "$BK_KB" ] && BK_KB=$M_KB
done
BK_NODES=$(json_get "$(cat "$T_TMP/backup.out")" 'd.get("nodes", "?")' 2>/dev/null)
echo "zkref:    $(ref_nodes ref) znodes read in $(best $REF_S)s (runs:$REF_S; getData, getChildren when there are children)"
echo "zkref -a: $(ref_nodes refacl) znodes read in $(best $REFACL_S)s (runs:$REFACL_S; the same plus getACL, what a backup needs)"
echo "burry backup:  ${BK_NODES:-?} znodes in $(best $BK_S)s (runs:$BK_S), peak RSS ${BK_KB} KB"
echo "burry backup --encrypt-to (age): $(best $ENC_S)s (runs:$ENC_S)"
REF_S=$(best $REF_S) REFACL_S=$(best $REFACL_S) BK_S=$(best $BK_S) ENC_S=$(best $ENC_S)
zk_stop src

zk_start dst >/dev/null || exit 1
DST=$ZK_PORT
measure restore "$BURRY" restore "zk://127.0.0.1:$DST" "$STORE" --name bench --snapshot latest --json
RS_S=$M_SECS
RS_KB=$M_KB
RS_CREATED=$(json_get "$(cat "$T_TMP/restore.out")" 'd.get("created", "?")' 2>/dev/null)
measure check "$BIN/zkref" "127.0.0.1:$DST"
echo "burry restore: ${RS_CREATED:-?} znodes created in ${RS_S}s, peak RSS ${RS_KB} KB ($(ref_nodes check) znodes now on the server)"
zk_stop dst

zk_start ref >/dev/null || exit 1
measure reload "$BIN/zkload" "127.0.0.1:$ZK_PORT" "$COUNT"
LOAD_S=$M_SECS
echo "zkload:  $COUNT znodes created in ${LOAD_S}s on an empty server (the bulk-creator reference)"
zk_stop ref

echo "ratio backup / zkref -a:   $(calc "$BK_S / $REFACL_S")"
echo "ratio backup / zkref:      $(calc "$BK_S / $REF_S")"
echo "ratio restore / zkload:    $(calc "$RS_S / $LOAD_S")"
echo "ratio encrypted / plain backup: $(calc "$ENC_S / $BK_S")  (encryption adds $(calc "($ENC_S / $BK_S - 1) * 100" 1)%)"

if [ "${BENCH_1M:-0}" = 1 ]; then
    zk_start big -Xmx4g >/dev/null || exit 1
    measure bigload "$BIN/zkload" "127.0.0.1:$ZK_PORT" "$BIG"
    echo "big tree: $BIG znodes loaded in ${M_SECS}s"
    measure bigbackup "$BURRY" backup "zk://127.0.0.1:$ZK_PORT" "$T_TMP/bigstore" --name big --json
    echo "burry backup of $BIG znodes: ${M_SECS}s, peak RSS ${M_KB} KB"
    echo "ratio peak RSS 1M / 100k:  $(calc "$M_KB / $BK_KB")"
    zk_stop big
fi
