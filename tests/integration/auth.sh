#!/bin/bash
# Unreadable nodes and digest authentication: a node burry may not read fails
# the backup (naming it) unless --skip-unreadable; --auth and --auth-file
# read it; a wrong password fails clearly; no password ever shows up in
# output, in the store, or in the process list.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

zk_start src || exit 1
PA=$ZK_PORT
zk_start dst || exit 1
PB=$ZK_PORT
PW='Pw-7d1f3a-SECRET'
WRONG='Wrong-9c2e-GUESS'
AUTH="digest:alice:$PW"

zk_py "$PA" "$(cat <<'PY'
zk.add_auth('digest', 'alice:Pw-7d1f3a-SECRET')
ALICE = make_digest_acl('alice', 'Pw-7d1f3a-SECRET', all=True)
zk.create('/open/deep', b'anyone', makepath=True)
zk.create('/open/deep/locked', b'locked value', acl=[ALICE])
zk.create('/secret', b'top secret value', acl=[ALICE])
zk.create('/secret/inner', b'inner secret', acl=[ALICE])
PY
)" || { not_ok "fixture could not be created"; exit 1; }

# no_secret NAME TEXT...: neither password appears in the texts
no_secret() {
    local name=$1; shift
    if printf '%s\n' "$@" | grep -Fq -e "$PW" -e "$WRONG"; then not_ok "$name"; else ok "$name"; fi
}
# store_has_secret DIR: grep every file of a store, archives decompressed
store_has_secret() {
    local f
    for f in $(files_in "$1"); do
        case $f in
            *.zst) zstd -dc "$1/$f" ;;
            *.gz) gzip -dc "$1/$f" ;;
            *) cat "$1/$f" ;;
        esac
    done 2>/dev/null | grep -aFq -e "$PW" -e "$WRONG" -e "alice:$PW"
}

# --- no --auth: the backup fails, names the path, publishes nothing ---
S1=$T_TMP/s1
run_burry backup "zk://127.0.0.1:$PA" "$S1" --json
expect_eq "unreadable node: backup exits 1" 1 "$RC"
expect_match "unreadable node: the message names the path" "'?/(secret|open/deep/locked)'?" "$ERR"
expect_match "unreadable node: the message says why" '(not authori[sz]ed|permission|denied|NoAuth|auth)' "$ERR"
run_burry ls "$S1" --json
expect_eq "unreadable node: ls shows no snapshot" 0 "$(jget 'len(d["snapshots"])')"
expect_eq "unreadable node: no file left in the store" "" "$(files_in "$S1")"

# --- --skip-unreadable: succeeds and records each skipped path ---
run_burry backup "zk://127.0.0.1:$PA" "$S1" --skip-unreadable --json
expect_eq "--skip-unreadable: backup exits 0" 0 "$RC"
expect_eq "--skip-unreadable: skipped.unreadable counts both" 2 "$(jget 'd["skipped"].get("unreadable")')"
expect_eq "--skip-unreadable: summary JSON names the paths" "/open/deep/locked /secret" "$(jget '" ".join(sorted(d["skipped_paths"]))')"
SK_ID=$(jget 'd["snapshot"]')
run_burry show "$S1" --snapshot "$SK_ID" --json
expect_eq "--skip-unreadable: manifest skipped_paths" "/open/deep/locked /secret" "$(jget '" ".join(sorted(d["skipped_paths"]))')"
LIST=$(tar -tf "$S1/zk-127.0.0.1-$PA/$SK_ID.tar.zst")
expect_no_match "--skip-unreadable: the archive holds no unreadable node" '^tree/(secret|open/deep/locked)/' "$LIST"
expect_match "--skip-unreadable: the readable rest is saved" '^tree/open/deep/@data$' "$LIST"
run_burry backup "zk://127.0.0.1:$PA" "$S1" --skip-unreadable
expect_eq "--skip-unreadable (human): exits 0" 0 "$RC"
expect_match "--skip-unreadable (human): the summary names the path" '/secret' "$OUT$ERR"
run_burry show "$S1" --snapshot "$SK_ID"
expect_match "show (human) lists the unreadable paths" '/open/deep/locked' "$OUT"

# --- the right password reads everything ---
S2=$T_TMP/s2
run_burry backup "zk://127.0.0.1:$PA" "$S2" --auth "$AUTH" --json -v
expect_eq "--auth: backup exits 0" 0 "$RC"
expect_eq "--auth: nothing skipped" 0 "$(jget 'sum(d["skipped"].values())')"
AU_ID=$(jget 'd["snapshot"]')
X=$T_TMP/x2
mkdir -p "$X" && tar -xf "$S2/zk-127.0.0.1-$PA/$AU_ID.tar.zst" -C "$X"
expect_eq "--auth: the protected value is saved" "top secret value" "$(cat "$X/tree/secret/@data" 2>&1)"
expect_match "--auth: the digest ACL is saved" '"scheme":"digest"' "$(cat "$X/tree/secret/@meta" 2>&1)"
no_secret "--auth: the password is not in stdout or stderr (-v)" "$OUT" "$ERR"
if store_has_secret "$S2"; then not_ok "--auth: the password is not in the store's files"; else ok "--auth: the password is not in the store's files"; fi
run_burry show "$S2" --json
no_secret "--auth: the password is not in the manifest" "$OUT"

# restore into an empty server: the nodes the restore creates itself come
# back exactly, protected subtree included, even without the password
run_burry restore "zk://127.0.0.1:$PB" "$S2" --json
expect_eq "restore of a protected subtree it creates itself exits 0" 0 "$RC"
expect_eq "restored protected subtree equals the source (ACLs included)" "$(zk_tree "$PA" --auth "$AUTH")" "$(zk_tree "$PB" --auth "$AUTH")"
# under a protected node that already exists, creating children needs the auth
zk_py "$PB" "zk.add_auth('digest', 'alice:$PW')" "zk.delete('/secret/inner')"
run_burry restore "zk://127.0.0.1:$PB" "$S2" --json
expect_eq "restore without --auth under an existing protected node exits 1" 1 "$RC"
expect_match "restore without --auth names the node it could not create" '/secret/inner' "$ERR"
expect_match "restore without --auth says why" 'not authorized to create' "$ERR"
expect_eq "restore without --auth counts the failure" 1 "$(jget 'd["failed"]')"
run_burry restore "zk://127.0.0.1:$PB" "$S2" --auth "$AUTH" --json
expect_eq "restore with --auth completes it" "0 1" "$RC $(jget 'd["created"]')"
expect_eq "restored protected subtree equals the source" "$(zk_tree "$PA" --auth "$AUTH")" "$(zk_tree "$PB" --auth "$AUTH")"
no_secret "restore: the password is not in stdout or stderr" "$OUT" "$ERR"

# --- a wrong password: exit 1, clear message, no password anywhere ---
S3=$T_TMP/s3
run_burry backup "zk://127.0.0.1:$PA" "$S3" --auth "digest:alice:$WRONG" -v
expect_eq "wrong password: backup exits 1" 1 "$RC"
expect_match "wrong password: the message names the unreadable path" '/secret|/open/deep/locked' "$ERR"
expect_match "wrong password: the message points at the credentials" '(auth|credential|not authori[sz]ed|permission)' "$ERR"
no_secret "wrong password: the password is not in stdout or stderr" "$OUT" "$ERR"
expect_eq "wrong password: no file left in the store" "" "$(files_in "$S3")"

# --- --auth-file ---
printf '# burry credentials\ndigest:alice:%s\n' "$PW" >"$T_TMP/auth"
chmod 600 "$T_TMP/auth"
S4=$T_TMP/s4
run_burry backup "zk://127.0.0.1:$PA" "$S4" --auth-file "$T_TMP/auth" --json
expect_eq "--auth-file: backup exits 0" 0 "$RC"
expect_eq "--auth-file: nothing skipped" 0 "$(jget 'sum(d["skipped"].values())')"
no_secret "--auth-file: the password is not in stdout or stderr" "$OUT" "$ERR"
if store_has_secret "$S4"; then not_ok "--auth-file: the password is not in the store's files"; else ok "--auth-file: the password is not in the store's files"; fi
run_burry backup "zk://127.0.0.1:$PA" "$S4" --auth-file "$T_TMP/no-such-file"
expect_eq "--auth-file that does not exist: exit 2" 2 "$RC"
expect_match "--auth-file that does not exist: named" 'no-such-file' "$ERR"
run_burry backup "zk://127.0.0.1:$PA" "$S4" --auth "alice-$PW"
expect_eq "--auth without a scheme: exit 2" 2 "$RC"
no_secret "--auth without a scheme: the value is not echoed" "$OUT" "$ERR"

# --- the process list does not show the password given with --auth ---
# A restore against a server that accepts connections but never answers waits
# up to --timeout; meanwhile its command line is read from /proc and ps.
HOLE_PORT_FILE=$T_TMP/hole.port
/usr/bin/python3 - "$HOLE_PORT_FILE" <<'PY' &
import socket, sys, time
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(16)
open(sys.argv[1] + '.tmp', 'w').write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + '.tmp', sys.argv[1])
conns = []
end = time.time() + 60
while time.time() < end:
    s.settimeout(1)
    try:
        conns.append(s.accept()[0])
        open(sys.argv[1] + '.accepted', 'w').write('yes')
    except OSError:
        pass
PY
HOLE=$!
wait_until 10 test -s "$HOLE_PORT_FILE"
HP=$(cat "$HOLE_PORT_FILE")
"$BURRY" restore "zk://127.0.0.1:$HP" "$S2" --auth "$AUTH" --timeout 3 >"$T_TMP/ps.out" 2>"$T_TMP/ps.err" &
BP=$!
# burry scrubs the value right after parsing its arguments (the help says it
# is visible in ps until burry starts); once it has connected it must be gone
wait_until 10 test -e "$HOLE_PORT_FILE.accepted" || not_ok "the restore did not connect to the silent server"
seen_args=0 leaked=0
for _ in $(seq 1 10); do
    kill -0 "$BP" 2>/dev/null || break
    CMDLINE=$(tr '\0' ' ' <"/proc/$BP/cmdline" 2>/dev/null)
    PSLINE=$(ps -o args= -p "$BP" 2>/dev/null)
    case $CMDLINE in *--auth*) seen_args=$((seen_args + 1)) ;; esac
    case "$CMDLINE $PSLINE" in *"$PW"*) leaked=1 ;; esac
    sleep 0.1
done
wait "$BP"; BRC=$?
kill "$HOLE" 2>/dev/null; wait "$HOLE" 2>/dev/null
if [ "$seen_args" -ge 3 ]; then ok "a waiting restore's command line was read ($seen_args times)"; else not_ok "a waiting restore's command line was read (only $seen_args times: the run did not wait)"; fi
expect_eq "/proc/PID/cmdline and ps never show the --auth password" 0 "$leaked"
expect_eq "a server that never answers: restore exits 1 after --timeout" 1 "$BRC"
expect_match "a server that never answers: the message names it" "127.0.0.1:$HP" "$(cat "$T_TMP/ps.err")"
no_secret "a server that never answers: no password in the output" "$(cat "$T_TMP/ps.out" "$T_TMP/ps.err")"

t_done
