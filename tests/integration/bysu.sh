#!/bin/bash
# bysu end to end: real sshd nodes whose key forces `bysu agent`, a real
# ZooKeeper for an infrastructure job, and a directory repository. Checks
# retention, fetching and extracting with stock tar, refusals, failing,
# hanging and unreachable nodes, the run lock and a run killed mid-way, and
# read-only job directories that fail jobs before anything is contacted.
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/zk.sh"
. "$(dirname "$0")/../lib/sshd.sh"
BYSU=$(dirname "$BURRY")/bysu
t_tmpdir
trap 'sshd_stop_all; t_cleanup' EXIT

# --- what the nodes hold ---
D=$T_TMP/data
mkdir -p "$D/sub" "$T_TMP/outside"
printf 'alpha\n' >"$D/a.txt"
head -c 300000 /dev/urandom >"$D/sub/blob.bin"
printf 'secret\n' >"$T_TMP/outside/secret"
ln -s "$T_TMP/outside/secret" "$D/escape"
ln -s ../../etc "$D/dotdot"

cat >"$T_TMP/agent1.conf" <<CONF
[snapshot cmd]
command = printf 'dump\n'; echo data
[snapshot dir]
paths = $D
pre = true
post = true
[snapshot bad]
command = echo partial; exit 3
[snapshot hang]
command = sleep 30
[snapshot slow]
paths = $D
pre = sleep 3
CONF
cat >"$T_TMP/agent2.conf" <<CONF
[snapshot etc]
command = echo node2
CONF

sshd_start n1 "$BYSU agent -c $T_TMP/agent1.conf" || exit 1
P1=$SSHD_PORT
sshd_start n2 "$BYSU agent -c $T_TMP/agent2.conf" || exit 1
P2=$SSHD_PORT
# a node whose manifest lies about a file's checksum
cat >"$T_TMP/liar.py" <<'PY'
import hashlib, io, json, sys, tarfile
t = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
def add(name, data):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
add("output/x.out", b"tampered\n")
m = {"format": "bysu-snapshot", "format_version": 1, "host": "liar", "snapshot": "x", "files": [
     {"path": "output/x.out", "type": "file", "size": 9, "sha256": hashlib.sha256(b"original\n").hexdigest()}]}
add("MANIFEST.json", json.dumps(m).encode())
t.close()
PY
sshd_start liar "python3 $T_TMP/liar.py" || exit 1
PL=$SSHD_PORT
zk_start z || exit 1
zk_py "$ZK_PORT" "zk.create('/app', b'v1'); zk.create('/app/k', b'v2')"
DOWN=$(free_port)
KEY=$T_TMP/client-key
KH=$T_TMP/known_hosts
R=$T_TMP/repo

node() { printf '[node %s]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n' "$1" "$2" "$KEY" "$KH"; }
{
    printf '[repository]\nurl = %s\nkeep = 2\n' "$R"
    node n1 "$P1"; node n2 "$P2"; node gone "$DOWN"; node liar "$PL"
    printf '[job cmd]\nnode = n1\nsnapshot = cmd\n'
    printf '[job dir]\nnode = n1\nsnapshot = dir\n'
    printf '[job etc]\nnode = n2\nsnapshot = etc\nkeep = 1\n'
    printf '[job zk]\nsource = zk://127.0.0.1:%s\ntimeout = 20\n' "$ZK_PORT"
    printf '[job bad]\nnode = n1\nsnapshot = bad\n'
    printf '[job hang]\nnode = n1\nsnapshot = hang\ntimeout = 2\n'
    printf '[job down]\nnode = gone\nsnapshot = cmd\ntimeout = 5\n'
    printf '[job unconf]\nnode = n1\nsnapshot = nope\n'
    printf '[job liar]\nnode = liar\nsnapshot = x\n'
    printf '[job slow]\nnode = n1\nsnapshot = slow\ntimeout = 20\n'
} >"$T_TMP/bysu.conf"
C=$T_TMP/bysu.conf

res() { jget "[j for j in d['jobs'] if j['job']=='$1'][0]['$2']"; }
count() { "$BYSU" ls -c "$C" --json "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))'; }

# --- the first run: every kind of job at once ---
START=$SECONDS
run_bysu run -c "$C" --json --parallel 8 cmd dir etc zk bad hang down unconf liar
expect_eq "a run with failed jobs exits 1" 1 "$RC"
for j in cmd dir etc zk; do expect_eq "job $j succeeds" ok "$(res $j result)"; done
for j in bad hang down unconf liar; do expect_eq "job $j fails" failed "$(res $j result)"; done
expect_match "the failing command's status is reported" 'exited with status 3' "$(res bad message)"
expect_match "the hanging job times out" 'timed out after 2 s' "$(res hang message)"
expect_match "the unreachable node is reported" 'ssh to node .gone. exited with status 255' "$(res down message)"
expect_match "an unconfigured snapshot name is refused and recorded" "refused 'snapshot nope'" "$(res unconf message)"
expect_match "a checksum that disagrees with the manifest fails the job" "checksum mismatch on 'output/x.out'" "$(res liar message)"
expect_eq "the hanging job does not hold up the run" 1 $(( SECONDS - START < 12 ))
for j in bad hang down unconf liar; do expect_eq "nothing is published for $j" 0 "$(count $j)"; done
expect_eq "no temporary or partial files are left in the repository" "" \
    "$(cd "$R" && find . -type f ! -name '*.tar.zst' ! -name '*.json' ! -name .bysu.lock)"
expect_eq "archives are mode 0600" "" "$(find "$R" -name '*.tar.zst' ! -perm 0600)"

# --- two more runs, then retention ---
run_bysu run -c "$C" --metrics-file "$T_TMP/bysu.prom" cmd dir etc zk
expect_eq "a run of good jobs exits 0" 0 "$RC"
expect_match "the summary table has a header" 'JOB +RESULT +SECONDS +BYTES +MESSAGE' "$OUT"
expect_match "the metrics file records success" 'bysu_job_success\{job="dir"\} 1' "$(cat "$T_TMP/bysu.prom" 2>/dev/null)"
expect_match "the metrics file records the last success" 'bysu_job_last_success_timestamp_seconds\{job="zk"\}' "$(cat "$T_TMP/bysu.prom" 2>/dev/null)"
run_bysu run -c "$C" cmd dir etc zk
expect_eq "the third run exits 0" 0 "$RC"
for j in cmd dir zk; do expect_eq "job $j keeps exactly 2 snapshots" 2 "$(count $j)"; done
expect_eq "job etc keeps exactly 1 snapshot (its own keep)" 1 "$(count etc)"
expect_eq "every archive has its sidecar" "$(find "$R" -name '*.tar.zst' | wc -l)" "$(find "$R" -name '*.json' | wc -l)"

# --- a repository that cannot take the snapshot fails the job before the
# node (or the service) is contacted: job directories made read-only in a
# mount namespace of this run alone ---
if unshare -m --propagation private true 2>/dev/null; then
    sessions() { grep -c 'Connection from' "$T_TMP/sshd-n1/log"; }
    zk_received() { zk_4lw "$ZK_PORT" srvr | sed -n 's/^Received: //p'; }
    S0=$(sessions)
    Z0=$(zk_received)
    run_prog unshare -m --propagation private sh -c '
        for d in "$1" "$2"; do mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 99; done
        shift 2; exec "$@"' sh "$R/cmd" "$R/zk" "$BYSU" run -c "$C" --json cmd zk
    Z1=$(zk_received)
    expect_eq "read-only job directories fail the run (exit 1)" "1 failed failed" "$RC $(res cmd result) $(res zk result)"
    expect_eq "the node job names the directory and the cause" \
        "cannot write to directory '$R/cmd': Read-only file system" "$(res cmd message)"
    expect_eq "the infrastructure job too" "cannot write to directory '$R/zk': Read-only file system" "$(res zk message)"
    expect_eq "the node was not contacted (no connection reached its sshd)" "$S0" "$(sessions)"
    # each srvr query counts one packet; a ZooKeeper session would add more
    expect_eq "ZooKeeper was not contacted (only the srvr query came in)" 1 "$((Z1 - Z0))"
    expect_eq "nothing was published" "2 2" "$(count cmd) $(count zk)"
    S1=$(sessions)
    run_bysu run -c "$C" cmd
    expect_eq "writable again, the job runs, over one connection to the node" "0 $((S1 + 1))" "$RC $(sessions)"
else
    # not counted as passed: a skipped check is not a passed one
    echo "# skip - read-only repository checks: this machine does not allow a private mount namespace (unshare -m)"
fi

# --- fetching and reading a snapshot ---
run_bysu get -c "$C" dir latest -o "$T_TMP/dir.tar.zst"
expect_eq "bysu get exits 0" 0 "$RC"
mkdir -p "$T_TMP/x"
check "the archive extracts with stock tar --zstd" tar --zstd -xf "$T_TMP/dir.tar.zst" -C "$T_TMP/x"
# zstd level 1 (see bysu.conf(5)): its frame asks for a 512 KiB window to
# decompress, where libarchive's default level 3 asks for 2 MiB
expect_eq "the archive is compressed at zstd level 1 (a 512 KiB window)" 524288 "$(python3 -c '
import sys
h = open(sys.argv[1], "rb").read(6)
assert h[:4] == bytes.fromhex("28b52ffd") and not h[4] & 0x20, "not a streamed zstd frame"
e, m = h[5] >> 3, h[5] & 7
print((1 << (10 + e)) + ((1 << (10 + e)) // 8) * m)' "$T_TMP/dir.tar.zst")"
check "a top-level file equals the original" cmp "$D/a.txt" "$T_TMP/x/files${D}/a.txt"
check "a file in a subdirectory equals the original" cmp "$D/sub/blob.bin" "$T_TMP/x/files${D}/sub/blob.bin"
expect_eq "a symlink pointing outside is kept as a symlink" "$T_TMP/outside/secret" "$(readlink "$T_TMP/x/files${D}/escape")"
expect_eq "a .. symlink is kept as a symlink" "../../etc" "$(readlink "$T_TMP/x/files${D}/dotdot")"
expect_eq "nothing outside the listed paths was read" "" "$(find "$T_TMP/x" -name secret)"
expect_match "the manifest lists checksums" '"sha256"' "$(cat "$T_TMP/x/MANIFEST.json")"
expect_eq "the manifest checksum matches the file" \
    "$(sha256sum <"$D/sub/blob.bin" | cut -d' ' -f1)" \
    "$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print([f["sha256"] for f in m["files"] if f["path"].endswith("blob.bin")][0])' "$T_TMP/x/MANIFEST.json")"
expect_eq "a command snapshot holds the command's output" "$(printf 'dump\ndata')" \
    "$("$BYSU" get -c "$C" cmd | tar --zstd -xOf - output/cmd.out)"
ID=$("$BYSU" ls -c "$C" --json cmd | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][0]["id"])')
"$BYSU" get -c "$C" cmd "$ID" -o - >"$T_TMP/byid"
expect_eq "bysu get by ID to standard output exits 0" 0 "$?"
check "the archive by ID is the one the sidecar describes" sh -c "[ \"\$(sha256sum <'$T_TMP/byid' | cut -d' ' -f1)\" = \"\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"archive\"][\"sha256\"])' '$R/cmd/$ID.json')\" ]"
run_bysu get -c "$C" bad latest -o "$T_TMP/none"
expect_eq "bysu get of a job without snapshots exits 1" "1 no" "$RC $([ -e "$T_TMP/none" ] && echo yes || echo no)"
run_bysu ls -c "$C"
expect_match "bysu ls lists every job" 'zk' "$OUT"
run_bysu prune -c "$C" --json
expect_eq "bysu prune with nothing to delete exits 0" "0 0" "$RC $(jget 'len(d["deleted"])')"

# --- refusals, straight over ssh ---
ssh_n1() { ssh -n -p "$P1" -i "$KEY" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KH" -o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1 "$@"; }
for req in 'rm -rf /' 'snapshot ../../etc' 'snapshot nope' 'snapshot cmd; id'; do
    E=$(ssh_n1 "$req" 2>&1 >/dev/null); rc=$?
    expect_eq "'$req' is refused with status 2" 2 "$rc"
    expect_match "'$req' refusal names the request" "bysu agent: refused '" "$E"
done
expect_eq "list names the configured snapshots" "cmd dir bad hang slow" "$(ssh_n1 list | tr '\n' ' ' | sed 's/ $//')"
expect_match "version answers" '^bysu [0-9]' "$(ssh_n1 version)"

# --- the lock, and a run killed mid-way ---
"$BYSU" run -c "$C" slow >"$T_TMP/slow.out" 2>&1 &
SLOW=$!
sleep 1
run_bysu run -c "$C" cmd
expect_eq "a second run at once exits 1" 1 "$RC"
expect_match "the second run says why" 'another bysu run holds the lock' "$ERR"
kill -9 "$SLOW"
wait "$SLOW" 2>/dev/null
wait_until 10 sh -c "! pgrep -f '$BYSU run -c $C slow' >/dev/null"
sleep 0.5
expect_eq "a killed run publishes nothing" 0 "$(count slow)"
expect_eq "a killed run leaves no partial file" "" "$(cd "$R" && find . -type f ! -name '*.tar.zst' ! -name '*.json' ! -name .bysu.lock)"
run_bysu run -c "$C" slow
expect_eq "the next run succeeds" "0 1" "$RC $(count slow)"

# --- a stop as systemd sends it (SIGTERM to the whole group: bysu, its
# workers and their ssh clients) is reported as an interrupt, not as ssh's
# exit status ---
sed 's/^timeout = 2$/timeout = 60/' "$C" >"$T_TMP/stop.conf"
setsid "$BYSU" run -c "$T_TMP/stop.conf" --json hang >"$T_TMP/stop.out" 2>"$T_TMP/stop.err" &
STOP=$!
wait_until 20 pgrep -f 'sleep 30' >/dev/null || not_ok "the hanging command started"
# the order that loses the reason: ssh ends first (its stream ends), then
# the worker, held stopped meanwhile, learns of the signal
WORKER=$(pgrep -P "$STOP" -x bysu | head -1)
SSHC=$(pgrep -P "$WORKER" -x ssh | head -1)
kill -STOP "$WORKER"
kill -TERM "$SSHC"
sleep 0.5
kill -TERM "$STOP" "$WORKER"
kill -CONT "$WORKER"
wait "$STOP"
expect_eq "SIGTERM to the run's process group: exit 1" 1 "$?"
expect_eq "... and the job says it was interrupted" "failed|interrupted" \
    "$(json_get "$(cat "$T_TMP/stop.out")" "'|'.join((d['jobs'][0]['result'], d['jobs'][0]['message']))")"
expect_eq "... and publishes nothing" 0 "$(count hang)"

# --- verify: every stored snapshot against its sidecar and manifest ---
flip() { python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=0xff; open(p,"wb").write(b)' "$1"; }
NSNAP=$(find "$R" -name '*.json' | wc -l)
run_bysu verify -c "$C"
expect_eq "bysu verify of the repository exits 0" 0 "$RC"
expect_eq "bysu verify reports every snapshot ok" "$NSNAP" "$(grep -c '  ok$' <<<"$OUT")"
run_bysu verify -c "$C" --json
expect_eq "bysu verify --json reports every snapshot ok" "0 $NSNAP" "$RC $(jget 'sum(1 for s in d["snapshots"] if s["ok"])')"
VA=$(ls "$R"/dir/*.tar.zst | tail -n 1)
VID=$(basename "$VA" .tar.zst)
cp -p "$VA" "$T_TMP/orig.tar.zst"
flip "$VA"
run_bysu verify -c "$C"
expect_eq "bysu verify with a flipped byte exits 1" 1 "$RC"
expect_match "bysu verify names the damaged snapshot" "$VID  dir  DAMAGED: " "$OUT"
expect_eq "the other snapshots are still ok" "$((NSNAP - 1))" "$(grep -c '  ok$' <<<"$OUT")"
run_bysu verify -c "$C" --json dir
expect_eq "bysu verify --json of the job marks it damaged" "1 False" \
    "$RC $(jget '[s["ok"] for s in d["snapshots"] if s["id"] == "'"$VID"'"][0]')"
# the sidecar rewritten to match the damaged bytes: the content check catches it
cp -p "$R/dir/$VID.json" "$T_TMP/orig.json"
python3 -c 'import hashlib,json,os,sys; a,j=sys.argv[1:]; m=json.load(open(j)); m["archive"]["sha256"]=hashlib.sha256(open(a,"rb").read()).hexdigest(); m["archive"]["size"]=os.path.getsize(a); json.dump(m,open(j,"w"))' "$VA" "$R/dir/$VID.json"
run_bysu verify -c "$C" dir
expect_eq "damage behind a matching sidecar is found when reading the content" 1 "$RC"
expect_match "and it names the snapshot" "$VID  dir  DAMAGED: " "$OUT"
cp -p "$T_TMP/orig.json" "$R/dir/$VID.json"
cp -p "$T_TMP/orig.tar.zst" "$VA"
run_bysu verify -c "$C"
expect_eq "with the original bytes back bysu verify exits 0" 0 "$RC"
expect_match "and the snapshot is ok again" "$VID  dir  ok" "$OUT"
ZA=$(ls "$R"/zk/*.tar.zst | tail -n 1)
ZID=$(basename "$ZA" .tar.zst)
cp -p "$ZA" "$T_TMP/zk.orig"
flip "$ZA"
run_bysu verify -c "$C" zk
expect_eq "a damaged infrastructure snapshot fails verify" 1 "$RC"
expect_match "and is named" "$ZID  zk  DAMAGED: " "$OUT"
cp -p "$T_TMP/zk.orig" "$ZA"
run_bysu verify -c "$C" zk
expect_eq "and is ok once restored" 0 "$RC"

# --- arguments: one JOB at most, and a name that is neither configured nor stored ---
run_bysu ls -c "$C" cmd extra
expect_eq "bysu ls with two jobs is a usage error" 2 "$RC"
run_bysu prune -c "$C" cmd extra
expect_eq "bysu prune with two jobs is a usage error" 2 "$RC"
expect_eq "and prunes nothing" 2 "$(ls "$R"/cmd/*.json | wc -l)"
run_bysu ls -c "$C" nosuch
expect_eq "bysu ls of a job neither configured nor stored exits 2" 2 "$RC"
expect_match "naming it" "no job 'nosuch'" "$ERR"
sed '/^\[job etc\]/,/^\[/{/^\[job etc\]/d;/^\[/!d}' "$C" >"$T_TMP/retired.conf"
run_bysu ls -c "$T_TMP/retired.conf" --json etc
expect_eq "a job no longer configured still lists what the repository holds of it" "0 1" "$RC $(jget 'len(d["snapshots"])')"

# --- an empty section is an error, not a job or snapshot quietly left out ---
printf '[snapshot e]\n\n[snapshot x]\ncommand = true\n' >"$T_TMP/empty-agent.conf"
SSH_ORIGINAL_COMMAND=list run_bysu agent -c "$T_TMP/empty-agent.conf"
expect_eq "an agent.conf with an empty [snapshot] is refused" 2 "$RC"
expect_match "naming its line" "empty-agent.conf' line 1: \[snapshot e\] is empty" "$ERR"

t_done
