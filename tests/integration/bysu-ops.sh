#!/bin/bash
# bysu operations, end to end against a real sshd node: the metrics file
# keeps a failed job's last success (its newest snapshot in the repository),
# `compress = none` stores the node's tar as it came, and the agent sends its
# refusals to syslog with the client's address. Syslog is observed through a
# listener on /dev/log inside a private mount namespace of this test (skipped
# where unshare or mount is not allowed).
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/sshd.sh"
BYSU=$(dirname "$BURRY")/bysu
BYSU=$(cd "$(dirname "$BYSU")" && pwd)/$(basename "$BYSU")
LIB=$(cd "$(dirname "$0")/../lib" && pwd)
t_tmpdir
trap 'sshd_stop_all; t_cleanup' EXIT

D=$T_TMP/data
mkdir -p "$D/sub"
printf 'alpha\n' >"$D/a.txt"
head -c 200000 /dev/urandom >"$D/sub/blob.bin"
cat >"$T_TMP/agent.conf" <<CONF
[snapshot good]
command = echo good
[snapshot bad]
command = echo partial; exit 4
[snapshot dir]
paths = $D
[snapshot latin]
command = printf 'Acc\350s refus\351 %01100d\n' 0 >&2; exit 1
[snapshot long]
command = sh $T_TMP/long.sh
CONF
# long lines on standard error, before the agent's own: the message is the
# node's; 700 three-byte characters are cut by the collector's length limits
printf '%s\n' "for i in \$(seq 700); do printf '\\342\\202\\254' >&2; done; exit 1" >"$T_TMP/long.sh"
sshd_start n1 "$BYSU agent -c $T_TMP/agent.conf" || exit 1
P1=$SSHD_PORT
KEY=$T_TMP/client-key
KH=$T_TMP/known_hosts
R=$T_TMP/repo

conf() { # conf SNAPSHOT-OF-JOB-flaky
    printf '[repository]\nurl = %s\nkeep = 3\n' "$R"
    printf '[node n1]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n' "$P1" "$KEY" "$KH"
    printf '[job flaky]\nnode = n1\nsnapshot = %s\n' "$1"
    printf '[job never]\nnode = n1\nsnapshot = bad\n'
    printf '[job raw]\nnode = n1\nsnapshot = dir\ncompress = none\n'
}
conf good >"$T_TMP/good.conf"
conf bad >"$T_TMP/bad.conf"
PROM=$T_TMP/bysu.prom
metric() { sed -n "s/^$1{job=\"$2\"} //p" "$PROM"; }
res() { jget "[j for j in d['jobs'] if j['job']=='$1'][0].get('$2')"; }
id_time() { python3 -c 'import calendar,sys,time; i=sys.argv[1]; print("%.3f" % (calendar.timegm(time.strptime(i[:15], "%Y%m%dT%H%M%S")) + int(i[16:19]) / 1000))' "$1"; }

# --- the metrics file: a failed job keeps its last success ---
BEFORE=$(date +%s)
run_bysu run -c "$T_TMP/good.conf" --metrics-file "$PROM" flaky never
expect_eq "the first run: flaky succeeds, never fails" 1 "$RC"
OK_TIME=$(metric bysu_job_last_success_timestamp_seconds flaky)
expect_eq "a job that succeeded has this run's time" 1 "$(python3 -c "print(int($BEFORE <= float('${OK_TIME:-0}') <= $(date +%s) + 1))")"
expect_eq "a job that never succeeded has no last-success sample" "" "$(metric bysu_job_last_success_timestamp_seconds never)"
expect_eq "its success gauge is 0" "0.000" "$(metric bysu_job_success never)"
FID=$("$BYSU" ls -c "$T_TMP/good.conf" --json flaky | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])')
sleep 1.2
run_bysu run -c "$T_TMP/bad.conf" --json --metrics-file "$PROM" flaky never
expect_eq "the second run: flaky now fails" "1 failed" "$RC $(res flaky result)"
expect_eq "the failed job's success gauge is 0" "0.000" "$(metric bysu_job_success flaky)"
expect_eq "its last success is its newest snapshot's time, carried over from the repository" \
    "$(id_time "$FID")" "$(metric bysu_job_last_success_timestamp_seconds flaky)"
expect_eq "the JSON report carries it too" "$(id_time "$FID")" "$(python3 -c "print('%.3f' % float('$(res flaky last_success)'))")"
expect_eq "a job that never succeeded still has no last-success sample" "" "$(metric bysu_job_last_success_timestamp_seconds never)"
expect_match "the help text says where the time comes from" 'HELP bysu_job_last_success_timestamp_seconds .*newest snapshot' "$(cat "$PROM")"
run_bysu run -c "$T_TMP/good.conf" --metrics-file "$PROM" flaky
NEW=$(metric bysu_job_last_success_timestamp_seconds flaky)
expect_eq "a later success moves it forward" 1 "$(python3 -c "print(int(float('${NEW:-0}') > $(id_time "$FID")))")"

# --- compress = none: the node's tar, stored as it came ---
run_bysu run -c "$T_TMP/good.conf" raw
expect_eq "a compress = none job succeeds" 0 "$RC"
RA=$(ls "$R"/raw/*.tar 2>/dev/null | tail -n 1)
check "it is stored as .tar" test -n "$RA"
check "the stored file is a plain tar" sh -c "tar -tf '$RA' | grep -q '^MANIFEST.json$'"
expect_eq "and is mode 0600" "" "$(find "$R/raw" -name '*.tar' ! -perm 0600)"
run_bysu get -c "$T_TMP/good.conf" raw latest -o "$T_TMP/raw.tar"
expect_eq "bysu get of it exits 0" 0 "$RC"
mkdir -p "$T_TMP/x"
check "it extracts with stock tar" tar -xf "$T_TMP/raw.tar" -C "$T_TMP/x"
check "its files equal the originals" cmp "$D/sub/blob.bin" "$T_TMP/x/files${D}/sub/blob.bin"
check "the stored bytes are the bytes the node sent (same size as the reported bytes)" \
    sh -c "[ \"\$(stat -c %s '$RA')\" = \"\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"bytes\"])' '${RA%.tar}.json')\" ]"
run_bysu verify -c "$T_TMP/good.conf" raw
expect_eq "bysu verify checks it" 0 "$RC"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[700]^=1; open(p,"wb").write(b)' "$RA"
run_bysu verify -c "$T_TMP/good.conf" raw
expect_eq "and finds a flipped byte" 1 "$RC"

# --- retention beside damaged snapshots and an ID in the future ---
R2=$T_TMP/repo2
{
    printf '[repository]\nurl = %s\nkeep = 3\n' "$R2"
    printf '[node n1]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n' "$P1" "$KEY" "$KH"
    printf '[job dmg]\nnode = n1\nsnapshot = good\n'
    printf '[job more]\nnode = n1\nsnapshot = good\n'
    printf '[job gone]\nnode = n1\nsnapshot = good\nkeep = 2\n'
    printf '[job ahead]\nnode = n1\nsnapshot = good\nkeep = 1\n'
} >"$T_TMP/ret.conf"
ids() { "$BYSU" ls -c "$T_TMP/ret.conf" --json "$1" | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)["snapshots"]))'; }
for i in 1 2 3; do "$BYSU" run -c "$T_TMP/ret.conf" dmg more gone >/dev/null 2>&1; done
DI=$(ids dmg)
D1=$(echo $DI | cut -d' ' -f1) D2=$(echo $DI | cut -d' ' -f2)
echo '{"snapshot": "x' >"$R2/dmg/$D1.json"
run_bysu run -c "$T_TMP/ret.conf" --json dmg
expect_eq "a run beside a damaged old sidecar succeeds" "0 ok" "$RC $(res dmg result)"
expect_eq "it pruned nothing (the damaged one does not count, nor goes)" 0 "$(res dmg pruned)"
check "the damaged sidecar stays for an operator" test -f "$R2/dmg/$D1.json"
run_bysu ls -c "$T_TMP/ret.conf"
expect_eq "bysu ls exits 0" 0 "$RC"
expect_match "bysu ls marks the damaged one" "dmg +$D1 +DAMAGED" "$OUT"
run_bysu get -c "$T_TMP/ret.conf" dmg latest -o "$T_TMP/dl.tar.zst"
expect_eq "bysu get latest exits 0" 0 "$RC"
run_bysu get -c "$T_TMP/ret.conf" dmg "$D2" -o "$T_TMP/d2.tar.zst"
expect_eq "bysu get of a good ID exits 0" 0 "$RC"
run_bysu get -c "$T_TMP/ret.conf" dmg "$D1" -o "$T_TMP/d1.tar.zst"
expect_eq "bysu get of the damaged ID fails" 1 "$RC"
run_bysu verify -c "$T_TMP/ret.conf" dmg
expect_eq "bysu verify exits 1" 1 "$RC"
expect_match "bysu verify prints a DAMAGED line for it" "$D1  dmg  DAMAGED: " "$OUT"
expect_match "and checks the others" "$D2  dmg  ok" "$OUT"
sed 's/^keep = 3$/keep = 2/' "$T_TMP/ret.conf" >"$T_TMP/ret2.conf"
run_bysu prune -c "$T_TMP/ret2.conf"
expect_eq "bysu prune (keep = 2) beside a damaged sidecar exits 0" 0 "$RC"
expect_eq "it prunes the job with the damaged sidecar down to two good ones" "2 yes" \
    "$(echo $(ids dmg) | tr ' ' '\n' | grep -vc "$D1") $(test -f "$R2/dmg/$D1.json" && echo yes)"
expect_eq "and goes on to prune the next job" 2 "$(ids more | wc -w)"

# a snapshot whose archive is gone does not push out a good one
GI=$(ids gone)
G1=$(echo $GI | cut -d' ' -f1) G2=$(echo $GI | cut -d' ' -f2)
rm "$R2"/gone/"$G2".tar*
run_bysu run -c "$T_TMP/ret.conf" --json gone
expect_eq "a run beside a snapshot without archive succeeds" "0 ok" "$RC $(res gone result)"
check "the good older snapshot stays (keep = 2: the new one and it)" test -f "$R2/gone/$G1.json"
check "the one without archive is not deleted either" test -f "$R2/gone/$G2.json"
run_bysu verify -c "$T_TMP/ret.conf" gone
expect_match "verify names the one without archive DAMAGED" "$G2  gone  DAMAGED" "$OUT"

# an ID in the future (a clock that was ahead once) does not push out new snapshots
FUT=20301121T000000.000Z-0001
"$BYSU" run -c "$T_TMP/ret.conf" ahead >/dev/null 2>&1
A1=$(ids ahead)
for f in "$R2"/ahead/"$A1".*; do sed "s/$A1/$FUT/g" "$f" >"${f/$A1/$FUT}"; done
run_bysu run -c "$T_TMP/ret.conf" --json ahead
A2=$(res ahead snapshot)
expect_eq "a run beside a future ID succeeds" "0 ok" "$RC $(res ahead result)"
check "it keeps the snapshot it just wrote" test -f "$R2/ahead/$A2.json"
expect_match "and warns about the future ID" "$FUT.*later than now" "$ERR"
for f in "$R2"/ahead/"$A2".*; do sed "s/$A2/$FUT/g" "$f" >"${f/$A2/$FUT}"; done
run_bysu ls -c "$T_TMP/ret.conf" ahead
expect_match "bysu ls warns about a future ID" "$FUT.*later than now" "$ERR"

# --- a job named twice is refused before anything runs ---
nsnap() { "$BYSU" ls -c "$T_TMP/good.conf" --json "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))'; }
N0=$(nsnap flaky)
run_bysu run -c "$T_TMP/good.conf" --json flaky raw flaky
expect_eq "a job named twice is a usage error (exit 2)" 2 "$RC"
expect_match "which names the job" "job 'flaky' is named twice" "$ERR"
expect_eq "and nothing ran: no new snapshot" "$N0" "$(nsnap flaky)"

# --- a failure message that is not UTF-8 still reaches the report ---
{ conf good; printf '[job latin]\nnode = n1\nsnapshot = latin\n[job long]\nnode = n1\nsnapshot = long\n'; } >"$T_TMP/msg.conf"
run_bysu run -c "$T_TMP/msg.conf" --json latin long
expect_eq "the jobs fail (exit 1)" 1 "$RC"
expect_match "a Latin-1 message from the node is in --json, its bad bytes replaced" 'Acc\?s refus\?' "$(res latin message)"
expect_match "a message cut in the middle of a character is kept" '€€€' "$(res long message)"
run_bysu run -c "$T_TMP/msg.conf" latin
expect_match "and in the table" 'latin +failed .*Acc\?s refus\?' "$OUT"

# --- the metrics file is readable by node_exporter whatever the umask ---
rm -f "$T_TMP/mode.prom"
(umask 077 && "$BYSU" run -c "$T_TMP/good.conf" --metrics-file "$T_TMP/mode.prom" flaky >/dev/null 2>&1)
expect_eq "the metrics file is mode 0644 under umask 077" 644 "$(stat -c %a "$T_TMP/mode.prom" 2>/dev/null)"

# --- refusals go to syslog ---
if unshare -m --propagation private true 2>/dev/null; then
    cat >"$T_TMP/listen.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.2)
end = time.time() + float(sys.argv[3])
with open(sys.argv[2], "ab") as out:
    while time.time() < end:
        try:
            d = s.recv(8192)
        except socket.timeout:
            continue
        out.write(d + b"\n")
        out.flush()
PY
    : >"$T_TMP/devnull"
    # A private /dev holding only null and the listener's log socket; the
    # sshd started in here, and the agent it runs, see that /dev/log.
    T_TMP=$T_TMP LIB=$LIB BYSU=$BYSU unshare -m --propagation private bash -c '
        set -u
        mount --bind /dev/null "$T_TMP/devnull" && mount -t tmpfs tmpfs /dev && : >/dev/null &&
            mount --bind "$T_TMP/devnull" /dev/null && mkdir -p /dev/pts || exit 3
        python3 "$T_TMP/listen.py" /dev/log "$T_TMP/syslog.txt" 30 &
        LP=$!
        for i in $(seq 1 50); do [ -S /dev/log ] && break; sleep 0.1; done
        T_FAILED=0
        . "$LIB/lib.sh"
        . "$LIB/sshd.sh"
        sshd_start ns "$BYSU agent -c $T_TMP/agent.conf" || exit 4
        for req in "rm -rf /" "snapshot ../../etc" "snapshot nope" list "snapshot good"; do
            ssh -n -p "$SSHD_PORT" -i "$T_TMP/client-key" -o IdentitiesOnly=yes -o UserKnownHostsFile="$T_TMP/known_hosts" \
                -o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1 "$req" 2>>"$T_TMP/ns-stderr" >/dev/null
        done
        sleep 0.5
        sshd_stop_all
        kill $LP
        wait $LP 2>/dev/null
        exit 0
    '
    NS=$?
    expect_eq "the namespace with a /dev/log listener and an sshd ran" 0 "$NS"
    LOG=$(cat "$T_TMP/syslog.txt" 2>/dev/null)
    for req in 'rm -rf /' 'snapshot ../../etc' 'snapshot nope'; do
        expect_match "'$req' is logged to syslog with the client's address" \
            "bysu-agent\[[0-9]+\]: refused '$(printf '%s' "$req" | sed 's/[.[\*^$/]/\\&/g')' from 127\.0\.0\.1 port [0-9]+" "$LOG"
        expect_match "'$req' is also refused on standard error" "bysu agent: refused '" "$(cat "$T_TMP/ns-stderr" 2>/dev/null)"
    done
    expect_match "refusals are logged as authentication warnings (LOG_AUTH | LOG_WARNING = <36>)" '^<36>' "$LOG"
    expect_eq "the served requests (list, a snapshot) log nothing" 3 "$(grep -c 'bysu-agent' <<<"$LOG")"
    # control characters in a request do not reach the log as they are
    : >"$T_TMP/syslog.txt"
    T_TMP=$T_TMP BYSU=$BYSU unshare -m --propagation private bash -c '
        mount --bind /dev/null "$T_TMP/devnull" && mount -t tmpfs tmpfs /dev && : >/dev/null &&
            mount --bind "$T_TMP/devnull" /dev/null || exit 3
        python3 "$T_TMP/listen.py" /dev/log "$T_TMP/syslog.txt" 5 &
        LP=$!
        for i in $(seq 1 50); do [ -S /dev/log ] && break; sleep 0.1; done
        SSH_CLIENT="10.1.2.3 4242 22" SSH_ORIGINAL_COMMAND="$(printf "list\nforged line")" "$BYSU" agent -c "$T_TMP/agent.conf" >/dev/null 2>&1
        sleep 0.3
        kill $LP
        wait $LP 2>/dev/null
        exit 0
    '
    LOG=$(cat "$T_TMP/syslog.txt" 2>/dev/null)
    expect_match "SSH_CLIENT is used without SSH_CONNECTION, and a newline is masked" \
        "refused 'list\?forged line' from 10\.1\.2\.3 port 4242" "$LOG"
else
    # not counted as passed: a skipped check is not a passed one
    echo "# skip - syslog checks: this machine does not allow a private mount namespace (unshare -m)"
fi

t_done
