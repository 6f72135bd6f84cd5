#!/bin/bash
# The etcd v2 source (etcd2://) against real etcd 3.4 servers with the v2 API:
# round trip of nested keys, empty directories, empty values, awkward names
# and TTLs; create-only, --overwrite, --dry-run, --path/--into; an empty key
# space, a missing prefix, hidden '_' keys, v2 auth, a server without the v2
# API, an unreachable server and the legacy -i etcd form. Every check reads
# the servers with curl, independently of burry.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/etcd.sh"; t_tmpdir

etcd_start src || exit 1
PA=$ETCD_PORT
etcd_start dst || exit 1
PB=$ETCD_PORT
etcd_start third || exit 1
PC=$ETCD_PORT
S=$T_TMP/store
SRC=etcd2://127.0.0.1:$PA
DST=etcd2://127.0.0.1:$PB

# v2put PORT KEY-URL-PATH [curl args...]: a PUT through the v2 keys API
v2put() {
    local port=$1 key=$2; shift 2
    curl -sf -o /dev/null -XPUT "http://127.0.0.1:$port/v2/keys$key" "$@"
}
# v2get PORT KEY-URL-PATH: the raw JSON answer
v2get() { curl -s "http://127.0.0.1:$1/v2/keys$2"; }

# e2_tree PORT [PREFIX]: the whole v2 tree below PREFIX as sorted lines
# "key<TAB>dir" or "key<TAB>value (JSON)<TAB>ttl|-", read with curl + python
e2_tree() {
    curl -s "http://127.0.0.1:$1/v2/keys${2:-/}?recursive=true&sorted=true" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
out = []
def walk(n):
    k = n.get("key", "/")
    if n.get("dir"):
        out.append("%s\tdir" % json.dumps(k))
        for c in n.get("nodes", []):
            walk(c)
    else:
        out.append("%s\t%s\t%s" % (json.dumps(k), json.dumps(n["value"]), "ttl" if "ttl" in n else "-"))
if "node" in d:
    walk(d["node"])
print("\n".join(sorted(out)))'
}
# no_ttl: drop the TTL column (restored keys have none by default)
no_ttl() { sed 's/\t\(ttl\|-\)$//'; }

# --- fixture on the source ---
{
    v2put "$PA" /app/conf/db -d value=postgres://db:5432 &&
    v2put "$PA" /app/conf/empty -d value= &&
    v2put "$PA" "/app/emptydir?dir=true" &&
    v2put "$PA" "/app/deep/er/still/empty?dir=true" &&
    v2put "$PA" /app/_hidden -d value=hidden-under-app &&
    v2put "$PA" /_hdir/k -d value=in-a-hidden-dir &&
    v2put "$PA" "/sp%20ace/per%25cent%3Acolon" --data-urlencode "value=a:b %c" &&
    v2put "$PA" "/%C3%A9t%C3%A9/cl%C3%A9" --data-urlencode "value=ünï cödé" &&
    v2put "$PA" /multi --data-urlencode "value=$(printf 'line 1\nline 2\n\ttab')" &&
    v2put "$PA" /withttl -d value=expires -d ttl=3600
} || { not_ok "source fixture could not be created"; exit 1; }

# --- backup ---
run_burry backup "$SRC" "$S" --json
expect_eq "backup exits 0" 0 "$RC"
[ "$RC" -eq 0 ] || echo "# stderr: $ERR"
ID=$(jget 'd["snapshot"]')
expect_eq "backup: default name etcd2-HOST-PORT" "etcd2-127.0.0.1-$PA" "$(jget 'd["name"]')"
expect_eq "backup: service etcd2" etcd2 "$(jget 'd["service"]')"
# /, /app, /app/conf, db, empty, /app/deep, er, still, empty, /app/emptydir,
# /multi, /sp ace, its key, /withttl, /été, its key = 16 (hidden keys are not listed by etcd)
expect_eq "backup: node count (directories included)" 16 "$(jget 'd["nodes"]')"
mkdir -p "$T_TMP/x" && tar -xf "$S/etcd2-127.0.0.1-$PA/$ID.tar.zst" -C "$T_TMP/x"
META=$(cat "$T_TMP/x/tree/withttl/@meta" 2>/dev/null)
expect_match "the TTL is recorded in @meta" '"ttl":[0-9]+' "$META"
expect_match "the expiration is recorded in @meta" '"expiration":"20[0-9-]+T' "$META"
expect_match "createdIndex and modifiedIndex are recorded" '"createdIndex":[0-9]+.*"modifiedIndex":[0-9]+' "$META"
expect_match "an empty directory is a node with dir:true" '"dir":true' "$(cat "$T_TMP/x/tree/app/emptydir/@meta" 2>/dev/null)"
check "a directory has no @data" test ! -e "$T_TMP/x/tree/app/emptydir/@data"
check "an empty value is an empty @data" test -f "$T_TMP/x/tree/app/conf/empty/@data" -a ! -s "$T_TMP/x/tree/app/conf/empty/@data"
expect_eq "a key with space, % and : is stored under its encoded name" "a:b %c" \
    "$(cat "$T_TMP/x/tree/sp%20ace/per%25cent%3Acolon/@data" 2>/dev/null)"
expect_eq "a non-ASCII key keeps its value" "ünï cödé" "$(cat "$T_TMP/x/tree/%C3%A9t%C3%A9/cl%C3%A9/@data" 2>/dev/null)"
expect_eq "manifest records the API and prefix" "v2 /" \
    "$(json_get "$(cat "$S/etcd2-127.0.0.1-$PA/$ID.json")" 'd["source_info"]["api"] + " " + d["source_info"]["prefix"]')"

# --- round trip into an empty server ---
run_burry restore "$DST" "$S" --json
expect_eq "restore exits 0" 0 "$RC"
[ "$RC" -eq 0 ] || echo "# stderr: $ERR"
expect_eq "restore: created (all but the root)" 15 "$(jget 'd["created"]')"
expect_eq "restore: the root exists" 1 "$(jget 'd["existing"]')"
e2_tree "$PA" | no_ttl >"$T_TMP/a.tree"
e2_tree "$PB" >"$T_TMP/b-ttl.tree"
no_ttl <"$T_TMP/b-ttl.tree" >"$T_TMP/b.tree"
check "the restored tree equals the source (keys, values, empty directories)" cmp -s "$T_TMP/a.tree" "$T_TMP/b.tree"
cmp -s "$T_TMP/a.tree" "$T_TMP/b.tree" || diff "$T_TMP/a.tree" "$T_TMP/b.tree" | sed 's/^/# /'
expect_match "the empty directory came back" '^"/app/deep/er/still/empty"	dir$' "$(cat "$T_TMP/b.tree")"
expect_match "the empty value came back empty" '^"/app/conf/empty"	""$' "$(cat "$T_TMP/b.tree")"
expect_match "a key with TTL is restored without TTL (default)" '^"/withttl"	"expires"	-$' "$(cat "$T_TMP/b-ttl.tree")"
expect_no_match "no TTL anywhere on the target" 'ttl$' "$(cat "$T_TMP/b-ttl.tree")"

# --- --with-leases: recorded TTLs are applied ---
run_burry restore "etcd2://127.0.0.1:$PC" "$S" --with-leases --path /withttl --json
expect_eq "--with-leases restore exits 0" 0 "$RC"
TTL=$(json_get "$(v2get "$PC" /withttl)" 'd["node"].get("ttl", 0)')
check "--with-leases: the key gets the recorded remaining TTL" test "$TTL" -gt 3000 -a "$TTL" -le 3600

# --- create-only: existing keys untouched and counted ---
v2put "$PB" /app/conf/db -d value=changed-on-target || not_ok "target key could not be changed"
v2put "$PB" /onlyontarget -d value=keep || not_ok "target key could not be created"
curl -sf -o /dev/null -XDELETE "http://127.0.0.1:$PB/v2/keys/multi" || not_ok "target key could not be deleted"
e2_tree "$PB" >"$T_TMP/b-before.tree"
run_burry restore "$DST" "$S" --dry-run
expect_eq "dry run exits 0" 0 "$RC"
expect_match "dry run plans the missing key" '^create +/multi$' "$OUT"
expect_match "dry run reports the differing key" '^exists-different +/app/conf/db$' "$OUT"
expect_match "dry run reports an equal key" '^exists-same +/app/conf/empty$' "$OUT"
run_burry restore "$DST" "$S" --dry-run --overwrite --json
expect_eq "dry run --overwrite: would overwrite 1" 1 "$(jget 'd["overwritten"]')"
expect_eq "dry run --overwrite: would create 1" 1 "$(jget 'd["created"]')"
e2_tree "$PB" >"$T_TMP/b-after-dry.tree"
check "dry runs change nothing" cmp -s "$T_TMP/b-before.tree" "$T_TMP/b-after-dry.tree"
run_burry restore "$DST" "$S" --json
expect_eq "create-only restore exits 0" 0 "$RC"
expect_eq "create-only: creates the missing key" 1 "$(jget 'd["created"]')"
expect_eq "create-only: counts the existing nodes" 15 "$(jget 'd["existing"]')"
expect_eq "create-only: overwrites nothing" 0 "$(jget 'd["overwritten"]')"
expect_eq "create-only leaves the differing key untouched" '"changed-on-target"' \
    "$(json_get "$(v2get "$PB" /app/conf/db)" 'json.dumps(d["node"]["value"])' 2>/dev/null || echo missing)"
expect_eq "the missing key came back" "$(printf 'line 1\nline 2\n\ttab')" \
    "$(json_get "$(v2get "$PB" /multi)" 'd["node"]["value"]')"

# --- --overwrite ---
run_burry restore "$DST" "$S" --overwrite --json
expect_eq "--overwrite exits 0" 0 "$RC"
expect_eq "--overwrite: one key set" 1 "$(jget 'd["overwritten"]')"
expect_eq "--overwrite: the key has the snapshot's value" postgres://db:5432 \
    "$(json_get "$(v2get "$PB" /app/conf/db)" 'd["node"]["value"]')"
expect_eq "--overwrite deletes nothing" keep "$(json_get "$(v2get "$PB" /onlyontarget)" 'd["node"]["value"]')"
run_burry restore "$DST" "$S" --overwrite --json
expect_eq "a second --overwrite sets nothing" "0 0" "$(jget 'str(d["overwritten"]) + " " + str(d["created"])')"

# --- a key where a directory is expected and vice versa ---
curl -sf -o /dev/null -XDELETE "http://127.0.0.1:$PC/v2/keys/withttl" || not_ok "third: cleanup failed"
v2put "$PC" /app/emptydir -d value=a-key-here &&
v2put "$PC" /multi/sub -d value=a-dir-here || not_ok "conflict fixture could not be created"
run_burry restore "etcd2://127.0.0.1:$PC" "$S" --json
expect_eq "conflicting kinds: exit 1" 1 "$RC"
expect_eq "conflicting kinds: two nodes failed" 2 "$(jget 'd["failed"]')"
expect_match "a key where a directory is expected is named" "'/app/emptydir': it exists as a key, not a directory" "$ERR"
expect_match "a directory where a key is expected is named" "'/multi': it exists as a directory, not a key" "$ERR"
expect_eq "the conflicting key is untouched" a-key-here "$(json_get "$(v2get "$PC" /app/emptydir)" 'd["node"]["value"]')"
expect_eq "the rest was restored" postgres://db:5432 "$(json_get "$(v2get "$PC" /app/conf/db)" 'd["node"]["value"]')"

# --- --path and --into ---
run_burry restore "$DST" "$S" --path /app/conf --into /copy/of/conf --json
expect_eq "--path --into exits 0" 0 "$RC"
expect_eq "--path --into: creates the subtree and the missing ancestors" 5 "$(jget 'd["created"]')"
expect_eq "--path --into: the key lands under the new prefix" postgres://db:5432 \
    "$(json_get "$(v2get "$PB" /copy/of/conf/db)" 'd["node"]["value"]')"
expect_eq "--path --into: nothing outside the subtree (/copy, /copy/of, conf, db, empty)" 5 \
    "$(e2_tree "$PB" /copy | wc -l)"
run_burry restore "$DST" "$S" --path '/sp ace' --into /x --dry-run
expect_match "--dry-run shows the awkward name under --into" '^create +/x/per%cent:colon$' "$OUT"
# missing parents of --into count beside the nodes: below a plain key,
# /plainkey and /plainkey/x fail with the 3 nodes of /app/conf, and the dry
# run, the JSON and the summary all say 5
v2put "$PB" /plainkey -d value=p || not_ok "plain key could not be created"
run_burry restore "$DST" "$S" --path /app/conf --into /plainkey/x/y --dry-run
DRY_FAILED=$(printf '%s\n' "$OUT" | grep -c '^failed ')
run_burry restore "$DST" "$S" --path /app/conf --into /plainkey/x/y --json
expect_eq "--into below a plain key: exit 1, 3 nodes and 2 missing parents failed" "1 5" "$RC $(jget 'd["failed"]')"
expect_eq "... the dry run prints a 'failed' line for each of the 5" 5 "$DRY_FAILED"
expect_match "... and the error's numbers add up" "5 of 5 nodes could not be restored" "$ERR"

# --- a prefix: backup of a subtree, restore below a prefix ---
run_burry backup "$SRC/app/conf" "$S" --json
expect_eq "prefix backup exits 0" 0 "$RC"
expect_eq "prefix backup: default name has the prefix" "etcd2-127.0.0.1-$PA-app-conf" "$(jget 'd["name"]')"
expect_eq "prefix backup: the prefix dir and its two keys" 3 "$(jget 'd["nodes"]')"
run_burry restore "etcd2://127.0.0.1:$PC/moved" "$S" --name "etcd2-127.0.0.1-$PA-app-conf" --json
expect_eq "restore into another prefix exits 0" 0 "$RC"
expect_eq "restore into another prefix: keys land below it" postgres://db:5432 \
    "$(json_get "$(v2get "$PC" /moved/db)" 'd["node"]["value"]')"

# --- hidden keys ---
# etcd leaves keys whose names start with '_' out of every listing (checked
# here, so a change in etcd shows), so a backup of the root cannot see them;
# naming a hidden directory as the prefix backs it up.
expect_eq "etcd hides '_' keys from a recursive listing" "" "$(e2_tree "$PA" | grep -F _hid)"
expect_match "etcd gives a hidden key when asked by name" '"value":"hidden-under-app"' "$(v2get "$PA" /app/_hidden)"
run_burry backup "$SRC/_hdir" "$S" --json
expect_eq "backup of a hidden directory exits 0" 0 "$RC"
expect_eq "backup of a hidden directory: it and its key" 2 "$(jget 'd["nodes"]')"
run_burry restore "$DST/_hdir" "$S" --name "etcd2-127.0.0.1-$PA-_hdir" --json
expect_eq "restore of a hidden directory exits 0" 0 "$RC"
expect_eq "the hidden directory's key is restored (read by name)" in-a-hidden-dir \
    "$(json_get "$(v2get "$PB" /_hdir/k)" 'd["node"]["value"]')"

# --- an empty key space, a missing prefix ---
etcd_start empty || exit 1
PE=$ETCD_PORT
run_burry backup "etcd2://127.0.0.1:$PE" "$S" --json
expect_eq "empty key space: backup exits 0" 0 "$RC"
expect_eq "empty key space: one node, the root" 1 "$(jget 'd["nodes"]')"
run_burry restore "$DST" "$S" --name "etcd2-127.0.0.1-$PE" --json
expect_eq "empty key space: restore exits 0" 0 "$RC"
run_burry backup "$SRC/no/such/prefix" "$S" --json
expect_eq "missing prefix: backup exits 0" 0 "$RC"
expect_eq "missing prefix: empty snapshot" 0 "$(jget 'd["nodes"]')"
expect_match "missing prefix: warns" "prefix '/no/such/prefix' does not exist" "$ERR"
run_burry dump "etcd2://127.0.0.1:$PA/no/such/prefix"
expect_match "missing prefix: a dump warns without speaking of a snapshot" \
    "prefix '/no/such/prefix' does not exist in etcd at .*; there is nothing to read \(a backup is empty\)" "$ERR"
run_burry verify "$S" --all
expect_eq "every snapshot verifies" 0 "$RC"

# --- v2 auth ---
curl -sf -o /dev/null -XPUT "http://127.0.0.1:$PE/v2/auth/users/root" -d '{"user":"root","password":"pw-Secret-9"}' &&
curl -sf -o /dev/null -XPUT "http://127.0.0.1:$PE/v2/auth/enable" &&
curl -sf -o /dev/null -u root:pw-Secret-9 -XPUT "http://127.0.0.1:$PE/v2/auth/roles/guest" \
    -d '{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}' || not_ok "auth could not be enabled"
v2put "$PE" /secret -u root:pw-Secret-9 -d value=s || not_ok "auth fixture"
run_burry backup "etcd2://127.0.0.1:$PE" "$S" --user root:wrong-Password-7
expect_eq "wrong password: exit 1" 1 "$RC"
expect_match "wrong password: says so, names the user" "refused user 'root'" "$ERR"
expect_no_match "wrong password: not shown" 'wrong-Password-7' "$ERR$OUT"
run_burry backup "etcd2://127.0.0.1:$PE" "$S"
expect_eq "no credentials: exit 1" 1 "$RC"
expect_match "no credentials: asks for --user" 'requires authentication; give --user' "$ERR"
printf 'pw-Secret-9\n' >"$T_TMP/pw" && chmod 600 "$T_TMP/pw"
run_burry backup "etcd2://127.0.0.1:$PE" "$S" --user root --password-file "$T_TMP/pw" --json
expect_eq "right password: backup exits 0" 0 "$RC"
expect_eq "right password: the protected key is saved" 2 "$(jget 'd["nodes"]')"
run_burry restore "etcd2://127.0.0.1:$PE/again" "$S" --name "etcd2-127.0.0.1-$PA-app-conf" --user root:wrong-Password-7
expect_eq "restore with a wrong password: exit 1" 1 "$RC"
expect_match "restore with a wrong password: says so" "refused user 'root'" "$ERR"
ETCD_PASSWORD=pw-Secret-9 run_burry restore "etcd2://127.0.0.1:$PE/again" "$S" --name "etcd2-127.0.0.1-$PA-app-conf" --user root
expect_eq "restore with the right password (ETCD_PASSWORD): exit 0" 0 "$RC"
expect_eq "restore with auth: the key is there" postgres://db:5432 \
    "$(json_get "$(curl -s -u root:pw-Secret-9 "http://127.0.0.1:$PE/v2/keys/again/db")" 'd["node"]["value"]')"
check "no password in any manifest" sh -c "! grep -rq 'pw-Secret-9' '$S'"

# --- the target stops answering mid-restore; running it again completes ---
etcd_start big || exit 1
PBIG=$ETCD_PORT
/usr/bin/python3 - "$PBIG" <<'PY' || not_ok "big fixture could not be loaded"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for d in range(30):
    for k in range(100):
        c.request("PUT", "/v2/keys/big/d%02d/k%03d" % (d, k), "value=" + "v" * 100,
                  {"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read()
        assert r.status == 201, r.status
PY
run_burry backup "etcd2://127.0.0.1:$PBIG/big" "$S" --json
expect_eq "3,000 keys: backup exits 0" 0 "$RC"
expect_eq "3,000 keys: 3,031 nodes (/big, 30 directories)" 3031 "$(jget 'd["nodes"]')"
etcd_start victim || exit 1
PV=$ETCD_PORT
"$BURRY" restore "etcd2://127.0.0.1:$PV/big" "$S" --name "etcd2-127.0.0.1-$PBIG-big" --window 1 --timeout 2 \
    >"$T_TMP/v.out" 2>"$T_TMP/v.err" &
RPID=$!
has_keys() { curl -s "http://127.0.0.1:$PV/v2/keys/big/d00" | grep -q '"key"'; }
check "the restore starts writing" wait_until 20 has_keys
kill -STOP "$ETCD_PID_victim"
wait "$RPID"
RC=$?
kill -CONT "$ETCD_PID_victim"
expect_eq "target stopped mid-restore: exit 1" 1 "$RC"
expect_match "target stopped mid-restore: says how far it got, and that a re-run is safe" \
    "stopped after [0-9]+ nodes \([0-9]+ created\); running it again is safe.*no answer from etcd at 127.0.0.1:$PV within 2s" "$(cat "$T_TMP/v.err")"
run_burry restore "etcd2://127.0.0.1:$PV/big" "$S" --name "etcd2-127.0.0.1-$PBIG-big" --json
expect_eq "the re-run exits 0" 0 "$RC"
expect_eq "the re-run accounts for every node" 3031 "$(jget 'd["created"] + d["existing"]')"
check "the re-run created what was missing" test "$(jget 'd["created"]')" -gt 0
expect_eq "after the re-run the trees are equal" "$(e2_tree "$PBIG" /big)" "$(e2_tree "$PV" /big)"

# --- the target answers 5xx, or shuts down mid-restore ---
# A server answering 5xx (or etcd's "Raft Internal Error", error 300, the
# answer of a stopping etcd to the writes it was given) may or may not have
# applied those writes: the restore stops there, naming the server, instead
# of counting them as failed nodes. Through tests/lib/faultproxy.py first,
# which answers 503 to three creates and passes the rest to a real etcd.
etcd_start p5 || exit 1
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/p5.port" "$ETCD_PORT" \
    --match 'PUT /v2/keys/big/d01/' --fail 3 --status 503 2>>"$T_TMP/proxy.log" &
PROXY_PID=$!
wait_until 10 test -s "$T_TMP/p5.port" || not_ok "the fault proxy starts"
PP=$(cat "$T_TMP/p5.port")
run_burry restore "etcd2://127.0.0.1:$PP/big" "$S" --name "etcd2-127.0.0.1-$PBIG-big" --json
kill "$PROXY_PID" 2>/dev/null
wait "$PROXY_PID" 2>/dev/null
expect_eq "a 503 mid-restore: exit 1, the restore stopped, no node counted as failed" "1 True 0" \
    "$RC $(jget 'd["stopped"]') $(jget 'd["failed"]')"
expect_match "... saying the server failed a request, naming it" \
    "stopped after [0-9]+ nodes \([0-9]+ created\); running it again is safe.*etcd at 127.0.0.1:$PP failed a request \(HTTP 503\)" "$ERR"
expect_no_match "... and no node is reported as refused" "cannot restore" "$ERR"
etcd_stop p5

# Then a real etcd stopped (SIGTERM) while 20,000 keys are being restored:
# the writes in flight get error 300 or no answer; either way the restore
# stops, says how far it got and names the server, and no node is counted
# as failed.
/usr/bin/python3 - "$PBIG" <<'PY' || not_ok "20,000-key fixture could not be loaded"
import http.client, sys, threading
port, n, T = int(sys.argv[1]), 20000, 32
def work(t):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(t, n, T):
        c.request("PUT", "/v2/keys/many/d%03d/k%05d" % (i // 100, i), "value=v%d" % i,
                  {"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read()
        assert r.status == 201, r.status
ts = [threading.Thread(target=work, args=(t,)) for t in range(T)]
[t.start() for t in ts]
[t.join() for t in ts]
PY
run_burry backup "etcd2://127.0.0.1:$PBIG/many" "$S" --name many --json
expect_eq "20,000 keys: backup exits 0 (with /many and 200 directories)" "0 20201" "$RC $(jget 'd["nodes"]')"
etcd_start term || exit 1
PT=$ETCD_PORT
"$BURRY" restore "etcd2://127.0.0.1:$PT/many" "$S" --name many --json >"$T_TMP/term.out" 2>"$T_TMP/term.err" &
RPID=$!
has_d010() { curl -s "http://127.0.0.1:$PT/v2/keys/many/d010" | grep -q '"key"'; }
check "the restore of 20,000 keys starts writing" wait_until 30 has_d010
kill -TERM "$ETCD_PID_term"
wait "$RPID"
RC=$?
OUT=$(cat "$T_TMP/term.out")
expect_eq "etcd stopped mid-restore: exit 1, the restore stopped, no node counted as failed" "1 True 0" \
    "$RC $(jget 'd["stopped"]') $(jget 'd["failed"]')"
check "... before its end" test "$(jget 'd["created"]')" -lt 20201
expect_match "... saying how far it got, naming the server that went away" \
    "stopped after [0-9]+ nodes \([0-9]+ created\); running it again is safe.*(etcd at 127.0.0.1:$PT failed a request \(Raft Internal Error, error 300\)|cannot reach etcd at 127.0.0.1:$PT|answer of etcd at 127.0.0.1:$PT broke off)" \
    "$(cat "$T_TMP/term.err")"
expect_no_match "... and no node is reported as refused" "cannot restore" "$(cat "$T_TMP/term.err")"
etcd_stop term
etcd_stop big
etcd_stop victim

# --- no v2 API, unreachable server, the legacy command line ---
etcd_start nov2 --enable-v2=false || exit 1
run_burry backup "etcd2://127.0.0.1:$ETCD_PORT" "$S"
expect_eq "v2 disabled: exit 1" 1 "$RC"
expect_match "v2 disabled: says so and points to etcd://" "etcd at 127.0.0.1:$ETCD_PORT does not serve the v2 API \(started without --enable-v2\?\); for etcd v3 use etcd://" "$ERR"
run_burry restore "etcd2://127.0.0.1:$ETCD_PORT" "$S" --name "etcd2-127.0.0.1-$PA"
expect_eq "v2 disabled: restore exits 1" 1 "$RC"
expect_match "v2 disabled: restore says so" 'does not serve the v2 API' "$ERR"
DEAD=$(free_port)
run_burry backup "etcd2://127.0.0.1:$DEAD" "$S"
expect_eq "unreachable: exit 1" 1 "$RC"
expect_match "unreachable: says so" "cannot reach etcd at .*127.0.0.1:$DEAD" "$ERR"
W=$T_TMP/legacy
mkdir -p "$W" && cd "$W" || exit 1
run_burry -e "127.0.0.1:$PA" -i etcd -t local
expect_eq "legacy -i etcd -t local: exit 0" 0 "$RC"
expect_match "legacy -i etcd: success line" '^Operation successfully completed\. The snapshot ID is: ' "$OUT"
run_burry ls . --json
expect_eq "legacy -i etcd: an etcd2 snapshot in the current directory" "etcd2-127.0.0.1-$PA" "$(jget 'd["snapshots"][0]["name"]')"
cd "$T_TMP" || exit 1

t_done
