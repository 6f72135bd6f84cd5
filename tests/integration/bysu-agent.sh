#!/bin/bash
# The bysu agent while the world changes under it, and the collector's side
# of the same, against real processes: the agent run directly (as sshd runs
# it, SSH_ORIGINAL_COMMAND set, its output a fifo this test reads), and a
# real sshd node for what only a collector shows.
#
# To change the tree in the middle of a snapshot, the test reads the first
# 64 KiB of the stream and stops reading: the agent then blocks inside a
# 16 MiB file (the pipe and its buffers hold about 1.3 MiB), the test
# changes what comes after that file, and reads on.
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/sshd.sh"
BYSU=$(dirname "$BURRY")/bysu
BYSU=$(cd "$(dirname "$BYSU")" && pwd)/$(basename "$BYSU")
t_tmpdir
# post commands run detached from the agent: stop any still running
trap 'sshd_stop_all; for f in "$T_TMP"/*.pid; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; t_cleanup' EXIT

# gone PID: the process has exited (a zombie child of this shell counts)
gone() { [ ! -e "/proc/$1" ] || grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null; }

# agent_paused NAME: starts the agent on snapshot NAME of $T_TMP/agent.conf
# with its stream into a fifo, reads the first 64 KiB into $T_TMP/part1 and
# returns with the agent blocked; APID is its PID. agent_rest then reads the
# rest (bounded: 60 s) into $T_TMP/out.tar and sets ARC, its exit status
# (124 if it had to be killed).
agent_paused() {
    rm -f "$T_TMP/fifo" "$T_TMP/rc"
    mkfifo "$T_TMP/fifo"
    (SSH_ORIGINAL_COMMAND="snapshot $1" "$BYSU" agent -c "$T_TMP/agent.conf" >"$T_TMP/fifo" 2>"$T_TMP/agent.err"
     echo $? >"$T_TMP/rc") &
    APID=$!
    exec 3<"$T_TMP/fifo"
    dd bs=65536 count=1 iflag=fullblock <&3 >"$T_TMP/part1" 2>/dev/null
}
agent_rest() {
    timeout 60 cat <&3 >"$T_TMP/part2"
    exec 3<&-
    if ! wait_until 60 test -s "$T_TMP/rc"; then
        pkill -KILL -f "agent -c $T_TMP/agent.conf"
        echo 124 >"$T_TMP/rc"
    fi
    wait "$APID" 2>/dev/null
    ARC=$(cat "$T_TMP/rc")
    cat "$T_TMP/part1" "$T_TMP/part2" >"$T_TMP/out.tar"
}

W=$T_TMP/walk S=$T_TMP/shrink F=$T_TMP/swap V=$T_TMP/victim
mkdir -p "$W/a_big" "$W/sub" "$S" "$F" "$V"
truncate -s 16M "$W/a_big/f" "$S/big" "$F/a_big"
echo ordinary >"$W/sub/file"
echo ROOT-ONLY-SECRET >"$V/secret"
echo data >"$F/g"
cat >"$T_TMP/agent.conf" <<CONF
[snapshot walk]
paths = $W
[snapshot shrink]
paths = $S
[snapshot swap]
paths = $F
[snapshot slow]
command = echo \$\$ >$T_TMP/slow.pid; exec sleep 300
[snapshot pipe]
command = yes | head -c 5
[snapshot post]
command = echo hi
post = sleep 5; touch $T_TMP/post-done
CONF

# --- a directory swapped for a symlink to elsewhere, after the walk began ---
agent_paused walk
mv "$W/sub" "$W/sub.real"
ln -s "$V" "$W/sub"
agent_rest
expect_eq "a snapshot whose directory became a symlink mid-walk completes" 0 "$ARC"
expect_no_match "nothing of the symlink's target is read" 'ROOT-ONLY-SECRET' "$(tar -xOf "$T_TMP/out.tar" 2>/dev/null | tr -d '\0')"
expect_match "the swapped directory is recorded as the symlink it now is" "sub -> $V\$" "$(tar -tvf "$T_TMP/out.tar")"
expect_no_match "and nothing below it is in the snapshot" "files$W/sub/" "$(tar -tf "$T_TMP/out.tar")"

# --- a file that shrinks while it is being read ---
agent_paused shrink
truncate -s 100000 "$S/big"
agent_rest
expect_eq "a file that shrank mid-read fails the snapshot" 1 "$ARC"
expect_match "the message names the file and says it shrank" "'files$S/big' shrank while being read" "$(cat "$T_TMP/agent.err")"
expect_no_match "no MANIFEST.json is sent, so no collector could take it as whole" 'MANIFEST.json' "$(tar -tf "$T_TMP/out.tar" 2>/dev/null)"

# --- a file replaced by a fifo before the agent gets to it ---
agent_paused swap
rm "$F/g"
mkfifo "$F/g"
agent_rest
expect_eq "a file replaced by a fifo mid-walk does not hang the agent" 0 "$ARC"
expect_no_match "the fifo is not in the snapshot" "files$F/g\$" "$(tar -tf "$T_TMP/out.tar")"

# --- SIGTERM: the agent stops, and takes its command along ---
rm -f "$T_TMP/slow.pid"
SSH_ORIGINAL_COMMAND="snapshot slow" "$BYSU" agent -c "$T_TMP/agent.conf" >"$T_TMP/slow.out" 2>"$T_TMP/slow.err" &
APID=$!
if wait_until 20 test -s "$T_TMP/slow.pid"; then
    CPID=$(cat "$T_TMP/slow.pid")
    kill -TERM "$APID"
    check "the agent exits on SIGTERM while its command runs" wait_until 20 gone "$APID"
    wait "$APID"
    expect_eq "with status 1" 1 "$?"
    check "its command is gone too" wait_until 20 gone "$CPID"
    expect_match "it says why" "interrupted" "$(cat "$T_TMP/slow.err")"
else
    not_ok "the slow command did not start: $(cat "$T_TMP/slow.err")"
fi
kill -KILL "$APID" "${CPID:-}" 2>/dev/null

# --- the collector goes away (its end of the stream closes) ---
rm -f "$T_TMP/slow.pid" "$T_TMP/rc"
# (the reading end closes once the command runs, as ssh's would at a timeout)
( (SSH_ORIGINAL_COMMAND="snapshot slow" "$BYSU" agent -c "$T_TMP/agent.conf" 2>"$T_TMP/slow.err"
   echo $? >"$T_TMP/rc") | wait_until 20 test -s "$T_TMP/slow.pid" ) &
check "an agent whose collector left stops within seconds, not when its command would end" wait_until 30 test -s "$T_TMP/rc"
expect_eq "it exits 1" 1 "$(cat "$T_TMP/rc" 2>/dev/null)"
expect_match "saying the collector went away" "the command was stopped: the collector went away" "$(cat "$T_TMP/slow.err")"
if [ -s "$T_TMP/slow.pid" ]; then
    check "and its command is gone" wait_until 20 gone "$(cat "$T_TMP/slow.pid")"
else
    not_ok "the slow command never started: $(cat "$T_TMP/slow.err")"
fi
wait

# --- commands see SIGPIPE as usual (the agent itself ignores it) ---
SSH_ORIGINAL_COMMAND="snapshot pipe" "$BYSU" agent -c "$T_TMP/agent.conf" >"$T_TMP/pipe.tar" 2>"$T_TMP/pipe.err"
expect_eq "a command pipeline cut short by head succeeds" 0 "$?"
expect_no_match "without a 'Broken pipe' error from its writer" 'Broken pipe' "$(cat "$T_TMP/pipe.err")"
expect_eq "its output is the 5 bytes" "y
y
y" "$(tar -xOf "$T_TMP/pipe.tar" output/pipe.out)"

# --- post runs on its own, after the agent has sent everything and exited ---
rm -f "$T_TMP/fifo" "$T_TMP/post-done" "$T_TMP/rc"
mkfifo "$T_TMP/fifo"
(SSH_ORIGINAL_COMMAND="snapshot post" "$BYSU" agent -c "$T_TMP/agent.conf" >"$T_TMP/fifo" 2>"$T_TMP/post.err"
 echo $? >"$T_TMP/rc") &
APID=$!
timeout 60 cat "$T_TMP/fifo" >"$T_TMP/post.tar"
check "the whole snapshot arrives before post is done" test ! -e "$T_TMP/post-done"
expect_match "and the stream is a complete snapshot" '^MANIFEST.json$' "$(tar -tf "$T_TMP/post.tar")"
check "the agent exits 0 while post still runs" wait_until 20 test -s "$T_TMP/rc"
expect_eq "(its status)" "0 no" "$(cat "$T_TMP/rc") $([ -e "$T_TMP/post-done" ] && echo yes || echo no)"
wait "$APID"
check "post runs to its end" wait_until 30 test -e "$T_TMP/post-done"

# --- through a collector: a slow post, a command left running, a rejected stream ---
cat >"$T_TMP/node.conf" <<CONF
[snapshot slowpost]
command = echo hi
post = echo \$\$ >$T_TMP/slowpost.pid; exec sleep 9
[snapshot hang]
command = echo \$\$ >$T_TMP/hang.pid; exec sleep 300
CONF
sshd_start n1 "$BYSU agent -c $T_TMP/node.conf" || exit 1
P1=$SSHD_PORT
# a node that sends a path escaping upwards, then much more
cat >"$T_TMP/trav.py" <<'PY'
import io, sys, tarfile
t = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
i = tarfile.TarInfo("../escape"); i.size = 5; t.addfile(i, io.BytesIO(b"evil\n"))
i = tarfile.TarInfo("files/big"); i.size = 64 << 20
t.addfile(i, io.BytesIO(bytes(64 << 20)))
t.close()
PY
sshd_start trav "python3 $T_TMP/trav.py" || exit 1
PT=$SSHD_PORT
R=$T_TMP/repo
{
    printf '[repository]\nurl = %s\nkeep = 2\n' "$R"
    for n in n1:$P1 trav:$PT; do
        printf '[node %s]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n' \
            "${n%%:*}" "${n#*:}" "$T_TMP/client-key" "$T_TMP/known_hosts"
    done
    printf '[job slowpost]\nnode = n1\nsnapshot = slowpost\ntimeout = 5\n'
    printf '[job hang]\nnode = n1\nsnapshot = hang\ntimeout = 3\n'
    printf '[job trav]\nnode = trav\nsnapshot = x\n'
} >"$T_TMP/bysu.conf"
res() { jget "[j for j in d['jobs'] if j['job']=='$1'][0].get('$2')"; }
run_bysu run -c "$T_TMP/bysu.conf" --json --parallel 3
expect_eq "a job whose post command outlasts the timeout is stored" "ok " "$(res slowpost result) $(res slowpost message)"
expect_eq "its snapshot is in the repository" 1 "$(ls "$R"/slowpost/*.tar.zst 2>/dev/null | wc -l)"
expect_eq "a hanging command's job times out" "failed timed out after 3 s" "$(res hang result) $(res hang message)"
if [ -s "$T_TMP/hang.pid" ]; then
    check "the node stops the hanging command once the collector has left" wait_until 20 gone "$(cat "$T_TMP/hang.pid")"
else
    not_ok "the hanging command never started"
fi
expect_eq "a stream with an escaping path fails" failed "$(res trav result)"
expect_match "and says why, not how ssh ended after being stopped" "absolute, empty or has '\.\.': '\.\./escape'" "$(res trav message)"
expect_eq "the run exits 1" 1 "$RC"
t_done
