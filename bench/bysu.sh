#!/bin/bash
# bysu benchmark: `bysu run --parallel P` pulls JOBS directory snapshots of
# MB megabytes each (one file of random, incompressible bytes per job) from
# loopback sshd nodes whose collector key forces `bysu agent`, against the
# reference measured in the same run: plain `ssh node tar -cf - -C DIR .`
# into a file, for the same directories, at the same parallelism (at most P
# ssh processes at once, started by xargs -P). The reference logs in with a
# second key of its own whose authorized_keys line has `restrict` but no
# forced command, so ssh runs tar itself. Both sides use the same ssh client
# options and the same nodes, except that bysu prefers AES-GCM (`ciphers` in
# bysu.conf(5)) where plain ssh takes its default, and gives its ssh larger
# malloc thresholds (GLIBC_TUNABLES in bysu(1); they matter to an ssh that
# writes into a pipe, not to one that writes into a file). Each round runs the
# reference, the reference again with `ssh -c aes128-gcm@openssh.com` (to
# tell bysu's own cost from the cipher's saving), then bysu with
# `compress = none` (which stores the node's tar as it came, like the
# reference), then bysu with the default `compress = zstd`. Prints the
# bytes, the wall times, the ratios of the best runs and of each round with
# their median (target: within 1.3x), bysu's peak memory, and checks that
# the repository then holds one snapshot per job.
#   BENCH_BYSU_JOBS=N     jobs (default 20)
#   BENCH_BYSU_MB=N       megabytes per job (default 50)
#   BENCH_BYSU_PARALLEL=P parallelism of both sides (default 4)
#   BENCH_BYSU_NODES=N    sshd nodes the jobs are spread over (default 2)
#   BENCH_REPEAT=N        rounds (default 3)
#   BYSU=path             the binary under test (default bin/bysu)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
BYSU=${BYSU:-$ROOT/bin/bysu}
. tests/lib/lib.sh
. tests/lib/sshd.sh
t_tmpdir
trap 'sshd_stop_all; t_cleanup' EXIT

JOBS=${BENCH_BYSU_JOBS:-20}
MB=${BENCH_BYSU_MB:-50}
PAR=${BENCH_BYSU_PARALLEL:-4}
NODES=${BENCH_BYSU_NODES:-2}
REPEAT=${BENCH_REPEAT:-3}
[ -x "$BYSU" ] || { echo "bysu.sh: $BYSU is not built (run make)" >&2; exit 1; }
[ -x /usr/sbin/sshd ] || { echo "bysu.sh: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }

now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -n | head -n 1; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
die() { echo "bysu.sh: $*" >&2; exit 1; }

# Samples the process tree under a PID (not the PID itself, which is
# /usr/bin/time) every 0.1 s and writes, when the PID is gone, the peak of the
# summed RSS of the whole tree, of its bysu processes only, and the largest
# number of bysu processes alive at once (all in KB, from /proc).
cat >"$T_TMP/treerss.py" <<'PY'
import os, sys, time
root, out = int(sys.argv[1]), sys.argv[2]
page = os.sysconf("SC_PAGE_SIZE") // 1024
peak_all = peak_bysu = peak_n = 0
while os.path.exists("/proc/%d" % root):
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append((int(p), comm))
    tot = mine = n = 0
    todo = list(kids.get(root, []))
    while todo:
        pid, comm = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            with open("/proc/%d/statm" % pid) as f:
                rss = int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        tot += rss
        if comm == "bysu":
            mine += rss
            n += 1
    peak_all, peak_bysu, peak_n = max(peak_all, tot), max(peak_bysu, mine), max(peak_n, n)
    time.sleep(0.1)
with open(out, "w") as f:
    f.write("%d %d %d\n" % (peak_all, peak_bysu, peak_n))
PY

# measure NAME CMD...: runs CMD with its output in $T_TMP/NAME.{out,err};
# sets M_SECS (wall clock), M_KB (/usr/bin/time's peak RSS: the largest single
# process of the tree, since wait4 reports the maximum over reaped
# descendants), M_TREE_KB (peak summed RSS of the tree), M_BYSU_KB (the same,
# bysu processes only) and M_NBYSU (most bysu processes alive at once).
measure() {
    local name=$1 t0 t1 pid spid rc
    shift
    t0=$(now)
    /usr/bin/time -f %M -o "$T_TMP/$name.rss" "$@" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err" &
    pid=$!
    python3 "$T_TMP/treerss.py" "$pid" "$T_TMP/$name.tree" &
    spid=$!
    wait "$pid"
    rc=$?
    t1=$(now)
    wait "$spid"
    M_SECS=$(calc "$t1 - $t0" 3)
    if [ "$rc" -ne 0 ]; then
        echo "bysu.sh: '$*' failed (exit status $rc):" >&2
        tail -n 20 "$T_TMP/$name.err" "$T_TMP/$name.out" >&2
        exit 1
    fi
    M_KB=$(tail -n 1 "$T_TMP/$name.rss")
    read -r M_TREE_KB M_BYSU_KB M_NBYSU <"$T_TMP/$name.tree"
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the data: one directory per job holding one file of random bytes ---
D=$T_TMP/data
t0=$(now)
for i in $(seq 1 "$JOBS"); do
    j=$(printf 'j%02d' "$i")
    mkdir -p "$D/$j"
    head -c "$((MB * 1048576))" /dev/urandom >"$D/$j/blob.bin" || die "cannot write $D/$j/blob.bin"
done
TOTAL=$(du -cb "$D"/*/blob.bin | tail -n 1 | cut -f1)
echo "data:    $JOBS jobs x $MB MB of random bytes = $TOTAL bytes (made in $(calc "$(now) - $t0" 1)s)"

# --- the nodes: job i lives on node (i-1) mod NODES ---
ssh-keygen -q -t ed25519 -N '' -C bysu-bench-ref -f "$T_TMP/ref-key" || die "ssh-keygen failed"
for n in $(seq 1 "$NODES"); do
    : >"$T_TMP/agent$n.conf"
done
for i in $(seq 1 "$JOBS"); do
    j=$(printf 'j%02d' "$i")
    n=$(( (i - 1) % NODES + 1 ))
    printf '[snapshot %s]\npaths = %s\n' "$j" "$D/$j" >>"$T_TMP/agent$n.conf"
done
for n in $(seq 1 "$NODES"); do
    sshd_start "n$n" "$BYSU agent -c $T_TMP/agent$n.conf" || exit 1
    eval "PORT_$n=$SSHD_PORT"
    printf 'restrict %s\n' "$(cat "$T_TMP/ref-key.pub")" >>"$T_TMP/sshd-n$n/authorized_keys"
done
KEY=$T_TMP/client-key
KH=$T_TMP/known_hosts
R=$T_TMP/repo
C=$T_TMP/bysu.conf
{
    printf '[repository]\nurl = %s\nkeep = 3\n' "$R"
    for n in $(seq 1 "$NODES"); do
        eval "p=\$PORT_$n"
        printf '[node n%s]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n' "$n" "$p" "$KEY" "$KH"
    done
    for i in $(seq 1 "$JOBS"); do
        printf '[job j%02d]\nnode = n%s\nsnapshot = j%02d\ntimeout = 600\n' "$i" $(( (i - 1) % NODES + 1 )) "$i"
    done
} >"$C"
CN=$T_TMP/bysu-none.conf
sed 's/^keep = 3$/keep = 3\ncompress = none/' "$C" >"$CN"

# The reference: one line per job (port, directory, output file) for
# xargs -P, each line one plain ssh that runs tar on the node. The ssh
# options are the ones bysu passes to its own ssh client.
REFD=$T_TMP/ref
: >"$T_TMP/ref.list"
for i in $(seq 1 "$JOBS"); do
    j=$(printf 'j%02d' "$i")
    eval "p=\$PORT_$(( (i - 1) % NODES + 1 ))"
    printf '%s %s %s\n' "$p" "$D/$j" "$REFD/$j.tar" >>"$T_TMP/ref.list"
done
cat >"$T_TMP/ref1.sh" <<SH
#!/bin/sh
exec ssh -n -p "\$1" -i "$T_TMP/ref-key" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KH" \\
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=30 -- root@127.0.0.1 \\
    "tar -cf - -C '\$2' ." >"\$3"
SH
printf '#!/bin/sh\nexec xargs -P %s -L 1 "%s" <"%s"\n' "$PAR" "$T_TMP/ref1.sh" "$T_TMP/ref.list" >"$T_TMP/reference.sh"
# The second reference is the same with the cipher bysu prefers (see
# ciphers in bysu.conf(5)), to tell what bysu itself costs from what the
# cipher saves.
sed 's/^exec ssh -n /exec ssh -n -c aes128-gcm@openssh.com /' "$T_TMP/ref1.sh" >"$T_TMP/ref1-gcm.sh"
sed "s|$T_TMP/ref1.sh|$T_TMP/ref1-gcm.sh|" "$T_TMP/reference.sh" >"$T_TMP/reference-gcm.sh"
chmod +x "$T_TMP/ref1.sh" "$T_TMP/reference.sh" "$T_TMP/ref1-gcm.sh" "$T_TMP/reference-gcm.sh"

# Both read the data from the page cache; the runs take turns, with the
# previous run's output removed and written back before each measurement.
cat "$D"/*/blob.bin >/dev/null
REF_S= RG_S= BY_S= BN_S= BY_KB=0 BY_TREE=0 BY_ONLY=0 BY_N=0 REF_TREE=0
for r in $(seq 1 "$REPEAT"); do
    rm -rf "$REFD" && mkdir -p "$REFD" && sync
    measure ref "$T_TMP/reference.sh"
    REF_S="$REF_S $M_SECS"
    [ "$M_TREE_KB" -gt "$REF_TREE" ] && REF_TREE=$M_TREE_KB
    REF_BYTES=$(du -cb "$REFD"/*.tar | tail -n 1 | cut -f1)
    [ "$(find "$REFD" -name '*.tar' -size +0 | wc -l)" -eq "$JOBS" ] ||
        die "the reference did not write $JOBS archives"
    rm -rf "$REFD" && mkdir -p "$REFD" && sync
    measure ref-gcm "$T_TMP/reference-gcm.sh"
    RG_S="$RG_S $M_SECS"
    [ "$(find "$REFD" -name '*.tar' -size +0 | wc -l)" -eq "$JOBS" ] ||
        die "the AES-GCM reference did not write $JOBS archives"
    rm -rf "$REFD" "$R" && sync
    measure bysu-none "$BYSU" run -c "$CN" --parallel "$PAR" --json
    BN_S="$BN_S $M_SECS"
    [ "$M_KB" -gt "$BY_KB" ] && BY_KB=$M_KB
    [ "$M_TREE_KB" -gt "$BY_TREE" ] && BY_TREE=$M_TREE_KB
    [ "$M_BYSU_KB" -gt "$BY_ONLY" ] && BY_ONLY=$M_BYSU_KB
    [ "$M_NBYSU" -gt "$BY_N" ] && BY_N=$M_NBYSU
    SNAPS_NONE=$("$BYSU" ls -c "$CN" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))')
    REPO_BYTES=$(find "$R" -name '*.tar' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    rm -rf "$R" && sync
    measure bysu "$BYSU" run -c "$C" --parallel "$PAR" --json
    BY_S="$BY_S $M_SECS"
    [ "$M_KB" -gt "$BY_KB" ] && BY_KB=$M_KB
    [ "$M_TREE_KB" -gt "$BY_TREE" ] && BY_TREE=$M_TREE_KB
    [ "$M_BYSU_KB" -gt "$BY_ONLY" ] && BY_ONLY=$M_BYSU_KB
    [ "$M_NBYSU" -gt "$BY_N" ] && BY_N=$M_NBYSU
    BN_OUT=$("$BYSU" ls -c "$C" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))')
done

read -r BY_OK BY_BYTES < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(j["result"] == "ok" for j in d["jobs"]), sum(j.get("bytes", 0) for j in d["jobs"]))' "$T_TMP/bysu.out")
read -r BN_OK BN_BYTES < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(j["result"] == "ok" for j in d["jobs"]), sum(j.get("bytes", 0) for j in d["jobs"]))' "$T_TMP/bysu-none.out")
SNAPS=$SNAPS_NONE
REF_RUNS=$REF_S RG_RUNS=$RG_S BY_RUNS=$BY_S BN_RUNS=$BN_S
# the ratio of each round (its runs one right after the other), which the
# drift of a shared machine moves less than the best runs of each side
pair_ratios() { # pair_ratios "REF RUNS" "RUNS": one ratio per round
    paste -d' ' <(printf '%s\n' $1) <(printf '%s\n' $2) | awk '{ printf "%.2f\n", $2 / $1 }'
}
BN_PAIRS=$(pair_ratios "$REF_RUNS" "$BN_RUNS" | tr '\n' ' ')
BY_PAIRS=$(pair_ratios "$REF_RUNS" "$BY_RUNS" | tr '\n' ' ')
BNG_PAIRS=$(pair_ratios "$RG_RUNS" "$BN_RUNS" | tr '\n' ' ')
BYG_PAIRS=$(pair_ratios "$RG_RUNS" "$BY_RUNS" | tr '\n' ' ')
REF_S=$(best $REF_S) RG_S=$(best $RG_S) BY_S=$(best $BY_S) BN_S=$(best $BN_S)

echo "reference: $REF_BYTES tar bytes by plain ssh + tar, $PAR at once: ${REF_S}s (runs:$REF_RUNS; $(calc "$REF_BYTES / 1048576 / $REF_S" 1) MB/s), its ssh clients together peak at ${REF_TREE} KB"
echo "reference with ssh -c aes128-gcm@openssh.com (the cipher bysu prefers): ${RG_S}s (runs:$RG_RUNS; $(calc "$REF_BYTES / 1048576 / $RG_S" 1) MB/s)"
echo "bysu run --parallel $PAR (compress = zstd, the default): $BY_OK of $JOBS jobs ok, $BY_BYTES snapshot bytes: ${BY_S}s (runs:$BY_RUNS; $(calc "$BY_BYTES / 1048576 / $BY_S" 1) MB/s)"
echo "bysu run --parallel $PAR (compress = none): $BN_OK of $JOBS jobs ok, $BN_BYTES snapshot bytes, $REPO_BYTES stored: ${BN_S}s (runs:$BN_RUNS; $(calc "$BN_BYTES / 1048576 / $BN_S" 1) MB/s)"
echo "bysu peak RSS: largest process ${BY_KB} KB (/usr/bin/time %M, over the reaped tree);" \
    "all bysu processes together ${BY_ONLY} KB (up to $BY_N at once, parent and workers, sampled from /proc);" \
    "whole tree with its ssh clients ${BY_TREE} KB"
echo "ratio bysu / reference, compress = none (stored as the reference stores it): best runs $(calc "$BN_S / $REF_S"), each round: ${BN_PAIRS}median $(median $BN_PAIRS) (target: within 1.30)"
echo "ratio bysu / reference, compress = zstd (the default; compresses what the reference does not): best runs $(calc "$BY_S / $REF_S"), each round: ${BY_PAIRS}median $(median $BY_PAIRS)"
echo "ratio bysu / AES-GCM reference (what bysu costs beyond ssh, with the cipher saving on both sides): compress = none each round: ${BNG_PAIRS}median $(median $BNG_PAIRS); compress = zstd each round: ${BYG_PAIRS}median $(median $BYG_PAIRS)"
echo "repository: $BN_OUT snapshots after the zstd run, $SNAPS after the none run (expected $JOBS each)"
[ "$BY_OK" -eq "$JOBS" ] || die "only $BY_OK of $JOBS jobs succeeded (compress = zstd)"
[ "$BN_OK" -eq "$JOBS" ] || die "only $BN_OK of $JOBS jobs succeeded (compress = none)"
[ "$BN_OUT" -eq "$JOBS" ] || die "the repository held $BN_OUT snapshots after the zstd run, not $JOBS"
[ "$SNAPS" -eq "$JOBS" ] || die "the repository holds $SNAPS snapshots, not $JOBS"
