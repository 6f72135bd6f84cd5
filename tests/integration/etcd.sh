#!/bin/bash
# etcd v3 (etcd://) against real etcd 3.4 servers: keys of arbitrary bytes
# round-trip into an empty server, leases are recorded and restored only
# with --with-leases, create-only / --overwrite / --dry-run / --path /
# --into, prefix backups, a point-in-time read, an empty key space, wrong
# credentials, a value too large for the target, and a server that goes
# away mid-restore, TLS with a private CA, and the gRPC read with its
# fallback to the JSON gateway; restores into servers with lower limits than
# the defaults, a transaction whose answer is lost, and a server that says
# "too many requests"; several members, the first not answering. Checked
# through the gateway and etcdctl.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/etcd.sh"; t_tmpdir

etcd_start src --max-request-bytes 4194304 || exit 1
PA=$ETCD_PORT
etcd_start dst || exit 1
PB=$ETCD_PORT
etcd_start third || exit 1
PC=$ETCD_PORT
S=$T_TMP/store
SRC=etcd://127.0.0.1:$PA

# sorted "key value lease?" lines (hex) of a server, for comparisons
kv_list() { etcd_py "$1" "
for k, v, l in kv.all(${2:-b''}):
    print(k.hex(), v.hex(), 'leased' if l else '-')
"; }

etcd_py "$PA" "$(cat <<'PY'
kv.put(b'plain', b'value 1')
kv.put(b'/leading', b'L')
kv.put(b'//runs///of//slashes', b'S')
kv.put(b'trailing/', b'T')
kv.put(b'a/b/c', b'deep')
kv.put(b'a.c', b'sorts between a and a/')
kv.put(b'nul\x00inside', b'N\x00ul')
kv.put(b'\xff\xfe\x80 not utf-8', b'\xc3\x28 bad utf-8 value')
kv.put(b'empty', b'')
kv.put(b'big', bytes(range(256)) * 4096)   # 1 MiB
kv.put(b'leased', b'with lease', lease=kv.grant(600))
kv.put(b'huge', b'h' * (2 << 20))         # 2 MiB: more than a default server takes
PY
)" || { not_ok "source fixture could not be created"; exit 1; }
NKEYS=12

# --- backup ---
run_burry backup "$SRC" "$S" --json
expect_eq "backup exits 0" 0 "$RC"
expect_eq "backup counts every key" "$NKEYS" "$(jget 'd["nodes"]')"
ID=$(jget 'd["snapshot"]')
NAME=$(jget 'd["name"]')
expect_eq "default name is etcd-HOST-PORT" "etcd-127.0.0.1-$PA" "$NAME"
A=$S/$NAME/$ID.tar.zst
mkdir -p "$T_TMP/x" && zstd -qdc "$A" | tar -x -C "$T_TMP/x"
expect_eq "key '/leading' is tree/%/leading" 'L' "$(cat "$T_TMP/x/tree/%/leading/@data")"
expect_eq "key 'trailing/' is tree/trailing/%" 'T' "$(cat "$T_TMP/x/tree/trailing/%/@data")"
check "the empty value is an empty @data" test -f "$T_TMP/x/tree/empty/@data" -a ! -s "$T_TMP/x/tree/empty/@data"
check "the 1 MiB value is stored whole" test "$(stat -c %s "$T_TMP/x/tree/big/@data")" -eq 1048576
check "'a/b' without a key 'a/b' is only a path (no @meta)" test ! -e "$T_TMP/x/tree/a/b/@meta"
META=$(cat "$T_TMP/x/tree/leased/@meta")
LEASE_SRC=$(etcd_py "$PA" "print(int(kv.get(b'leased')['lease']))")
expect_eq "the lease ID is recorded" "$LEASE_SRC" "$(json_get "$META" 'd["attrs"]["lease"]')"
expect_match "the remaining TTL is recorded" '^(5[0-9][0-9]|600)$' "$(json_get "$META" 'd["attrs"]["lease_ttl"]')"
expect_match "revisions are recorded" '"create_revision":[0-9]+' "$META"
REV=$(json_get "$(cat "$S/$NAME/$ID.json")" 'd["source_info"]["revision"]')
expect_eq "the manifest records the revision read" \
    "$(etcdctl3 "$PA" endpoint status -w json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')" "$REV"
run_burry verify "$S" --snapshot "$ID"
expect_eq "verify accepts the archive (keys in byte order)" 0 "$RC"

# --- the range is read through gRPC; a member reached only over HTTP/1.1
# (tests/lib/faultproxy.py, a forwarding proxy in front of the real etcd,
# refusing the HTTP/2 preface) is read through the JSON gateway instead ---
run_burry backup "$SRC" "$S" -v --name via-grpc
expect_eq "backup -v exits 0" 0 "$RC"
expect_match "the key range is read through gRPC" "read $NKEYS keys at revision [0-9]+ through gRPC" "$ERR"
rm -f "$T_TMP/proxy.port"
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy.port" "$PA" \
    --match 'PRI * HTTP/2.0' --fail 1000 --status 505 --stats "$T_TMP/proxy.stats" 2>>"$T_TMP/proxy.log" &
PROXY_PID=$!
trap 'kill $PROXY_PID 2>/dev/null; t_cleanup' EXIT
wait_until 10 test -s "$T_TMP/proxy.port" || not_ok "the fault proxy did not start"
run_burry backup "etcd://127.0.0.1:$(cat "$T_TMP/proxy.port")" "$S" -v --json --name via-gw
expect_eq "HTTP/1.1 only: backup exits 0 with every key" "0 $NKEYS" "$RC $(jget 'd["nodes"]')"
expect_match "... saying it reads through the JSON gateway" \
    "does not answer gRPC range requests; reading through its JSON gateway" "$ERR"
expect_match "... after the proxy refused HTTP/2" 'injected=[1-9]' "$(cat "$T_TMP/proxy.stats")"
kill $PROXY_PID 2>/dev/null

# --- compaction passing the backup's revision: it fails clearly and
# publishes nothing. Through the proxy, which refuses gRPC and holds every
# range page for 1.5 s: the server compacts while the second page waits ---
etcd_start cmp || exit 1
PK=$ETCD_PORT
etcd_py "$PK" "kv.load((b'c/%03d' % i, b'v') for i in range(40))" || not_ok "load 40 keys"
rm -f "$T_TMP/proxy2.port"
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy2.port" "$PK" \
    --match 'PRI * HTTP/2.0' --fail 1000 --status 505 --delay 1.5 --delay-match /v3/kv/range \
    --stats "$T_TMP/proxy2.stats" 2>>"$T_TMP/proxy.log" &
PROXY_PID=$!
wait_until 10 test -s "$T_TMP/proxy2.port" || not_ok "the fault proxy did not start"
"$BURRY" backup "etcd://127.0.0.1:$(cat "$T_TMP/proxy2.port")" "$T_TMP/cmp" --name cmp \
    >"$T_TMP/cmp.out" 2>"$T_TMP/cmp.err" &
BPID=$!
second_page() { grep -q 'delayed=2' "$T_TMP/proxy2.stats" 2>/dev/null; }
check "the backup asks for its second page" wait_until 20 second_page
etcdctl3 "$PK" put c/new v >/dev/null
etcdctl3 "$PK" compact "$(etcd_py "$PK" "print(kv.put(b'c/newer', b'v'))")" >/dev/null ||
    not_ok "compact the server"
wait "$BPID"
expect_eq "compaction past the backup's revision: exit 1" 1 "$?"
expect_match "... saying the revision was compacted and nothing was published" \
    "compacted revision [0-9]+ while the backup was reading it.*nothing was published" "$(cat "$T_TMP/cmp.err")"
run_burry ls "$T_TMP/cmp" --json
expect_eq "... and no snapshot is listed" "0 0" "$RC $(jget 'len(d["snapshots"])')"
check "... nor any file left behind" test -z "$(find "$T_TMP/cmp" -type f 2>/dev/null)"
kill $PROXY_PID 2>/dev/null
etcd_stop cmp
for n in via-grpc via-gw; do
    mkdir -p "$T_TMP/$n" && zstd -qdc "$S"/$n/*.tar.zst | tar -x -C "$T_TMP/$n"
done
# the remaining TTL of 'leased' may tick between the two reads
check "both ways give the same tree" diff -r -x leased "$T_TMP/via-grpc/tree" "$T_TMP/via-gw/tree"
check "... and both hold the same keys" test "$(cd "$T_TMP/via-grpc" && find tree | sort)" = "$(cd "$T_TMP/via-gw" && find tree | sort)"

# --- round trip into an empty server (default limits: etcd refuses 'huge',
# which burry sends anyway: only the server knows what it takes) ---
run_burry restore "etcd://127.0.0.1:$PB" "$S" --json -v
expect_eq "restore with a value too large for the target exits 1" 1 "$RC"
expect_eq "the other keys are created" $((NKEYS - 1)) "$(jget 'd["created"]')"
expect_eq "one key failed" 1 "$(jget 'd["failed"]')"
expect_match "the failure names the key, the size and the server's reason" \
    "'/huge'.*value too large for etcd \(2097152 bytes\): .*received message larger than max" "$ERR"
expect_match "the summary says leases are not restored" 'restored without one.*--with-leases' "$ERR"
kv_list "$PA" | grep -v "^$(printf huge | xxd -p) " | sed 's/ leased$/ -/' >"$T_TMP/a.kv"
kv_list "$PB" >"$T_TMP/b.kv"
check "every key and value but 'huge' is equal on the target (NUL, non-UTF-8, slashes, empty, 1 MiB)" \
    cmp -s "$T_TMP/a.kv" "$T_TMP/b.kv"
expect_eq "the leased key has no lease on the target" 0 \
    "$(etcdctl3 "$PB" get leased -w json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0].get("lease", 0))')"
expect_eq "no lease was granted on the target" "" "$(etcdctl3 "$PB" lease list | tail -n +2)"
# one through the gateway: 'huge', whose stream etcd's gRPC server resets
# unread, goes there alone to hear why
expect_match "the create-only transactions went through gRPC, only 'huge' through the gateway" \
    "etcd at 127.0.0.1:$PB: [1-9][0-9]* transactions sent through gRPC, 1 through the JSON gateway" "$ERR"

# --- a server that takes larger requests (--max-request-bytes 4 MiB) takes
# the 2 MiB value: burry has no limit of its own ---
etcd_start wide --max-request-bytes 4194304 || exit 1
run_burry restore "etcd://127.0.0.1:$ETCD_PORT" "$S" --path huge --json
expect_eq "a 2 MiB value into a server taking 4 MiB requests: exit 0, created" "0 1" "$RC $(jget 'd["created"]')"
expect_eq "... with its value whole" "$((2 << 20))" \
    "$(etcd_py "$ETCD_PORT" "print(len(kv.all(b'huge')[0][1]))")"
etcd_stop wide

# --- a member reached only over HTTP/1.1 (the fault proxy refusing the
# HTTP/2 preface) is written through the JSON gateway, with the same result ---
etcd_start gw || exit 1
PW=$ETCD_PORT
rm -f "$T_TMP/proxy4.port"
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy4.port" "$PW" \
    --match 'PRI * HTTP/2.0' --fail 1000 --status 505 --stats "$T_TMP/proxy4.stats" 2>>"$T_TMP/proxy.log" &
PROXY_PID=$!
wait_until 10 test -s "$T_TMP/proxy4.port" || not_ok "the fault proxy did not start"
run_burry restore "etcd://127.0.0.1:$(cat "$T_TMP/proxy4.port")" "$S" --json -v
expect_eq "HTTP/1.1 only: the restore creates every key but 'huge'" "1 $((NKEYS - 1)) 1" \
    "$RC $(jget 'd["created"]') $(jget 'd["failed"]')"
expect_match "... saying it writes through the JSON gateway" \
    "does not answer gRPC transactions; writing through its JSON gateway" "$ERR"
expect_match "... after the proxy refused HTTP/2" 'injected=[1-9]' "$(cat "$T_TMP/proxy4.stats")"
kv_list "$PW" >"$T_TMP/w.kv"
check "... and the target holds exactly what the restore through gRPC wrote" cmp -s "$T_TMP/b.kv" "$T_TMP/w.kv"
kill $PROXY_PID 2>/dev/null
etcd_stop gw

# --- a server with lower limits than etcd's defaults: requests of up to
# 256 KiB (its gRPC server then reads messages of up to 768 KiB, less than a
# batch of 1 MiB) and 64 operations per transaction. The restore learns both
# from the server's refusals and sends smaller transactions, all through
# gRPC, neither failing nor falling back to the JSON gateway ---
etcd_start limsrc || exit 1
etcd_py "$ETCD_PORT" "kv.load([(b'a/%05d' % i, b'v') for i in range(1200)] +
                              [(b'b/%05d' % i, b'x' * 8000) for i in range(300)] +
                              [(b'd/%03d' % i, b'v') for i in range(100)])" || not_ok "load 1,600 keys"
run_burry backup "etcd://127.0.0.1:$ETCD_PORT" "$T_TMP/lim" --name lim --json
expect_eq "backup of 1,600 keys (300 of them 8000 bytes) for the limited servers" "0 1600" "$RC $(jget 'd["nodes"]')"
etcd_stop limsrc
count_all() { etcd_py "$1" "print(kv.call('/v3/kv/range', {'key': kv.b(b'\0'), 'range_end': kv.b(b'\0'), 'count_only': True}).get('count', 0))"; }
etcd_start lim1 --max-request-bytes 262144 --max-txn-ops 64 || exit 1
run_burry restore "etcd://127.0.0.1:$ETCD_PORT" "$T_TMP/lim" --name lim --json -v
expect_eq "limited server: the restore exits 0 and creates every key" "0 1600 0" \
    "$RC $(jget 'd["created"]') $(jget 'd["failed"]')"
# (the first txn refused holds up to 128 operations: how many were queued
# when it was built depends on timing)
expect_match "... after learning the operations per transaction it takes" \
    "refused a transaction of (6[5-9]|[7-9][0-9]|1[01][0-9]|12[0-8]) operations \(etcdserver: too many operations in txn request\); sending at most [0-9]+ per" "$ERR"
expect_match "... and the size of transaction it takes" \
    "did not take a transaction of [0-9]+ bytes .*; sending transactions of at most [0-9]+ bytes from now on" "$ERR"
expect_match "... all through gRPC" "[1-9][0-9]* transactions sent through gRPC, 0 through the JSON gateway" "$ERR"
expect_eq "... and the server holds every key" 1600 "$(count_all "$ETCD_PORT")"
etcd_stop lim1
# large values first: the transactions that are too large come before any
# gRPC transaction succeeded, and are no sign that the member lacks gRPC
etcd_start lim2 --max-request-bytes 262144 || exit 1
run_burry restore "etcd://127.0.0.1:$ETCD_PORT" "$T_TMP/lim" --name lim --path b --json -v
expect_eq "limited server, only the 8000-byte values: exit 0, every key created" "0 300" "$RC $(jget 'd["created"]')"
expect_no_match "... without taking the member for one that lacks gRPC" "does not answer gRPC" "$ERR"
expect_match "... all through gRPC" "[1-9][0-9]* transactions sent through gRPC, 0 through the JSON gateway" "$ERR"
etcd_stop lim2

# --- the answer to a transaction is lost after the server applied it (the
# fault proxy drops the connection when the server starts its answer): the
# restore sends it again, and counts its keys as created, not as existing;
# and the member is not taken for one that lacks gRPC ---
etcd_start lost || exit 1
PL=$ETCD_PORT
rm -f "$T_TMP/proxy5.port"
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy5.port" "$PL" \
    --h2-drop-answers 1 --stats "$T_TMP/proxy5.stats" 2>>"$T_TMP/proxy.log" &
PROXY_PID=$!
wait_until 10 test -s "$T_TMP/proxy5.port" || not_ok "the fault proxy did not start"
run_burry restore "etcd://127.0.0.1:$(cat "$T_TMP/proxy5.port")" "$T_TMP/lim" --name lim --path d --json -v
expect_eq "an answer lost: exit 0, the 100 keys created, none existing" "0 100 0" \
    "$RC $(jget 'd["created"]') $(jget 'd["existing"]')"
expect_match "... saying the answer was lost and the transaction sent again" \
    "the answer to a transaction was lost .*; sending it again" "$ERR"
expect_no_match "... without taking the member for one that lacks gRPC" "does not answer gRPC" "$ERR"
expect_match "... after the proxy dropped an answer" 'dropped=1' "$(cat "$T_TMP/proxy5.stats")"
expect_eq "... and the server holds the 100 keys" 100 "$(count_all "$PL")"
kill $PROXY_PID 2>/dev/null
etcd_stop lost

# --- etcd "too many requests" (it applies its log slower than it commits
# it) is a moment of overload, not a refusal of the keys: the restore waits
# and sends again, and stops with a clear message when it lasts. Through the
# fault proxy, which refuses HTTP/2 (so the gateway's answers can be
# injected) and answers the first transactions with the gateway's 429 ---
etcd_start busy || exit 1
PBZ=$ETCD_PORT
busy_proxy() { # busy_proxy N: the first N transactions get "too many requests"
    rm -f "$T_TMP/proxy6.port"
    /usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy6.port" "$PBZ" --refuse-h2 \
        --match /v3/kv/txn --fail "$1" --status 429 --json-error 'etcdserver: too many requests' \
        --stats "$T_TMP/proxy6.stats" 2>>"$T_TMP/proxy.log" &
    PROXY_PID=$!
    wait_until 10 test -s "$T_TMP/proxy6.port" || not_ok "the fault proxy did not start"
}
busy_proxy 4
run_burry restore "etcd://127.0.0.1:$(cat "$T_TMP/proxy6.port")" "$T_TMP/lim" --name lim --path d --json -v
expect_eq "etcd busy four times: exit 0, the 100 keys created, none failed" "0 100 0" \
    "$RC $(jget 'd["created"]') $(jget 'd["failed"]')"
expect_match "... saying it waits and sends again" \
    "etcd at 127.0.0.1:[0-9]+ is busy \(etcdserver: too many requests\); sending again in" "$ERR"
expect_match "... after the proxy answered 'too many requests'" 'injected=4' "$(cat "$T_TMP/proxy6.stats")"
expect_eq "... and the server holds the 100 keys" 100 "$(count_all "$PBZ")"
kill $PROXY_PID 2>/dev/null
etcdctl3 "$PBZ" del d/ --prefix >/dev/null
busy_proxy 1000
run_burry restore "etcd://127.0.0.1:$(cat "$T_TMP/proxy6.port")" "$T_TMP/lim" --name lim --path d --json
expect_eq "etcd busy for good: exit 1, nothing created, no key counted as failed" "1 0 0" \
    "$RC $(jget 'd["created"]') $(jget 'd["failed"]')"
expect_match "... saying it is overloaded after a bounded number of tries" \
    "kept refusing writes with 'etcdserver: too many requests' \(6 times in a row.*overloaded" "$ERR"
kill $PROXY_PID 2>/dev/null
etcd_stop busy

# --- --with-leases into an empty server ---
run_burry restore "etcd://127.0.0.1:$PC" "$S" --with-leases --path leased --json
expect_eq "restore --with-leases exits 0" 0 "$RC"
expect_eq "restore --with-leases creates the key" 1 "$(jget 'd["created"]')"
NEWLEASE=$(etcdctl3 "$PC" get leased -w json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0].get("lease", 0))')
check "--with-leases attaches a lease" test "$NEWLEASE" != 0
# etcdctl prints lease IDs in hex, zero-padded to 16 digits: compare as numbers
LISTED=$(etcdctl3 "$PC" lease list | tail -n +2 | tr -d ' ')
expect_eq "the lease list holds exactly that lease" "$NEWLEASE" "$( [ -n "$LISTED" ] && printf '%d' "0x$LISTED")"
TTL=$(etcdctl3 "$PC" lease timetolive "$(printf '%x' "$NEWLEASE")" | sed -n 's/.*granted with TTL(\([0-9]*\)s).*/\1/p')
expect_match "the fresh lease has the recorded TTL" '^(5[0-9][0-9]|600)$' "$TTL"
# A create-only restore grants a lease before it learns that the keys
# holding it exist; such a lease is revoked at the end: 300 keys on 2 leases,
# restored twice into an empty server.
etcd_start lz || exit 1
PLZ=$ETCD_PORT
etcd_py "$PLZ" "
a, b = kv.grant(600), kv.grant(900)
for i in range(300):
    kv.put(b'lz/%03d' % i, b'v', lease=a if i % 2 else b)" || not_ok "load 300 keys on 2 leases"
run_burry backup "etcd://127.0.0.1:$PLZ/lz/" "$T_TMP/lz" --name lz --json
etcd_stop lz
etcd_start lz2 || exit 1
PLZ2=$ETCD_PORT
nleases() { etcdctl3 "$PLZ2" lease list | tail -n +2 | grep -c .; }
run_burry restore "etcd://127.0.0.1:$PLZ2" "$T_TMP/lz" --name lz --with-leases --json
expect_eq "--with-leases, 300 keys on 2 leases: exit 0, all created, 2 leases" "0 300 2" \
    "$RC $(jget 'd["created"]') $(nleases)"
run_burry restore "etcd://127.0.0.1:$PLZ2" "$T_TMP/lz" --name lz --with-leases --json -v
expect_eq "... again: exit 0, all existing, and still 2 leases (the 2 it granted are revoked)" "0 300 2" \
    "$RC $(jget 'd["existing"]') $(nleases)"
expect_match "... saying so" "revoked 2 leases granted for keys that turned out to exist already" "$ERR"
etcd_stop lz2

# --- create-only against existing keys, dry run, overwrite ---
etcdctl3 "$PB" put plain 'CHANGED' >/dev/null
etcdctl3 "$PB" del a/b/c >/dev/null
etcdctl3 "$PB" put only-on-target keep >/dev/null
kv_list "$PB" >"$T_TMP/before.kv"
run_burry restore "etcd://127.0.0.1:$PB" "$S" --dry-run
expect_eq "dry run exits 0" 0 "$RC"
# the server's request limit shows only when it refuses a write
expect_match "dry run plans to create 'huge' (the server refuses it only when written)" '^create +/huge$' "$OUT"
expect_match "dry run plans to create the deleted key" '^create +/a/b/c$' "$OUT"
expect_match "dry run reports a differing key" '^exists-different +/plain' "$OUT"
expect_match "dry run reports an equal key" '^exists-same +/empty$' "$OUT"
kv_list "$PB" >"$T_TMP/after-dry.kv"
check "dry run changes nothing" cmp -s "$T_TMP/before.kv" "$T_TMP/after-dry.kv"
run_burry restore "etcd://127.0.0.1:$PB" "$S" --json --path a
expect_eq "create-only --path a exits 0" 0 "$RC"
expect_eq "create-only --path a creates a/b/c only ('a' is a key prefix, not a byte prefix)" 1 "$(jget 'd["created"]')"
run_burry restore "etcd://127.0.0.1:$PB" "$S" --json
expect_eq "create-only: the rest exists" $((NKEYS - 1)) "$(jget 'd["existing"]')"
expect_eq "create-only: nothing more to create" 0 "$(jget 'd["created"]')"
expect_eq "create-only leaves a differing key untouched" "CHANGED" "$(etcdctl3 "$PB" get plain --print-value-only)"
expect_eq "nothing deleted" "keep" "$(etcdctl3 "$PB" get only-on-target --print-value-only)"
REV_PLAIN=$(etcdctl3 "$PB" get empty -w json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0]["mod_revision"])')
run_burry restore "etcd://127.0.0.1:$PB" "$S" --json --overwrite
expect_eq "--overwrite: overwrites the differing key only" 1 "$(jget 'd["overwritten"]')"
expect_eq "--overwrite: equal keys count as existing" $((NKEYS - 2)) "$(jget 'd["existing"]')"
expect_eq "--overwrite sets the value" "value 1" "$(etcdctl3 "$PB" get plain --print-value-only)"
expect_eq "--overwrite does not rewrite an equal key" "$REV_PLAIN" \
    "$(etcdctl3 "$PB" get empty -w json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0]["mod_revision"])')"

# --- --path / --into ---
run_burry restore "etcd://127.0.0.1:$PC" "$S" --path a --into moved/here --json
expect_eq "--path a --into moved/here exits 0" 0 "$RC"
expect_eq "--into places a/b/c at moved/here/b/c" "deep" "$(etcdctl3 "$PC" get moved/here/b/c --print-value-only)"
expect_eq "--into creates no key for the ancestors" "" "$(etcdctl3 "$PC" get moved --print-value-only)$(etcdctl3 "$PC" get moved/here --print-value-only)"
run_burry restore "etcd://127.0.0.1:$PC" "$S" --path /leading --into /elsewhere --json
expect_eq "--path /leading --into /elsewhere" "L" "$(etcdctl3 "$PC" get /elsewhere --print-value-only)"

# --- prefix backups ---
run_burry backup "etcd://127.0.0.1:$PA/a" "$S" --json
expect_eq "prefix backup exits 0" 0 "$RC"
expect_eq "prefix 'a' holds a/b/c and a.c" 2 "$(jget 'd["nodes"]')"
expect_eq "prefix backup name" "etcd-127.0.0.1-$PA-a" "$(jget 'd["name"]')"
run_burry backup "etcd://127.0.0.1:$PA//" "$S" --json
expect_eq "prefix '/' (etcd://H:P//) holds the two keys with a leading '/'" 2 "$(jget 'd["nodes"]')"
run_burry backup "etcd://127.0.0.1:$PA/%FF%FE" "$S" --json
expect_eq "a %XX-encoded byte prefix" 1 "$(jget 'd["nodes"]')"
run_burry backup "etcd://127.0.0.1:$PA/nothing-here" "$S" --json
expect_eq "a prefix matching nothing exits 0" 0 "$RC"
expect_eq "... with an empty snapshot" 0 "$(jget 'd["nodes"]')"
expect_match "... and a warning" "no key in etcd at 127.0.0.1:$PA starts with 'nothing-here'" "$ERR"
run_burry dump "etcd://127.0.0.1:$PA/nothing-here"
expect_match "a dump of that prefix warns without speaking of a snapshot" \
    "starts with 'nothing-here'; there is nothing to read \(a backup is empty\)" "$ERR"

# --- a restore into etcd://HOST:PORT/prefix: the snapshot holds whole keys,
# and the URL's prefix selects which of them are written, never moves them;
# nothing is written outside it. And --path/--into ending in '/' ---
etcd_start pfx || exit 1
PP=$ETCD_PORT
etcd_start pfx2 || exit 1
PQ=$ETCD_PORT
P3=$T_TMP/pfx
keys_of() { etcdctl3 "$1" get "" --prefix --keys-only | grep . | tr '\n' ' ' | sed 's/ $//'; }
etcd_py "$PP" "for k, v in [(b'x', b'X'), (b'app', b'K'), (b'app/', b'D'), (b'app/x', b'1'), (b'app/y/z', b'2'), (b'apple', b'A')]: kv.put(k, v)" ||
    not_ok "prefix fixture could not be created"
run_burry backup "etcd://127.0.0.1:$PP" "$P3" --name v3 --json
expect_eq "backup of the prefix fixture: 6 keys" "0 6" "$RC $(jget 'd["nodes"]')"
etcdctl3 "$PP" put x changed >/dev/null
etcdctl3 "$PP" del app/x >/dev/null
run_burry restore "etcd://127.0.0.1:$PP/app" "$P3" --name v3 --dry-run --overwrite
expect_no_match "restore into etcd://H:P/app --dry-run plans nothing for the key 'x' outside it" ' /x$' "$OUT"
expect_match "... and says it leaves it out" "left out 1 keys of the snapshot that lie outside the prefix of etcd://127.0.0.1:$PP/app" "$OUT"
run_burry restore "etcd://127.0.0.1:$PP/app" "$P3" --name v3 --overwrite --json
expect_eq "restore into etcd://H:P/app --overwrite: exit 0, app/x created, 1 key left out" "0 1 1" \
    "$RC $(jget 'd["created"]') $(jget 'd["outside_prefix"]')"
expect_eq "... the key 'x' outside the prefix keeps its value" changed "$(etcdctl3 "$PP" get x --print-value-only)"
etcdctl3 "$PP" del x >/dev/null
run_burry restore "etcd://127.0.0.1:$PP/app" "$P3" --name v3 --json
expect_eq "create-only into etcd://H:P/app does not create the key 'x' outside it" "0 0 " \
    "$RC $(jget 'd["created"]') $(etcdctl3 "$PP" get x --print-value-only)"
run_burry backup "etcd://127.0.0.1:$PP/app" "$P3" --name app --json
expect_eq "backup of etcd://H:P/app: app, app/, app/x, app/y/z, apple" "0 5" "$RC $(jget 'd["nodes"]')"
run_burry restore "etcd://127.0.0.1:$PQ/other" "$P3" --name app --json
expect_eq "that snapshot into etcd://H2:P2/other: exit 1, nothing created" "1 0" "$RC $(jget 'd["created"]')"
expect_match "... saying none of its keys lies under the prefix" \
    "none of the 5 keys of snapshot .* would go under the prefix of etcd://127.0.0.1:$PQ/other.*--path and --into" "$ERR"
expect_eq "... and no key is written" "" "$(keys_of "$PQ")"
run_burry restore "etcd://127.0.0.1:$PQ/other" "$P3" --name app --path app --into other --json
expect_eq "... with --path app --into other: 4 keys created under 'other'" "0 4 other other/ other/x other/y/z" \
    "$RC $(jget 'd["created"]') $(keys_of "$PQ")"
etcdctl3 "$PQ" del "" --prefix >/dev/null
run_burry restore "etcd://127.0.0.1:$PQ" "$P3" --name v3 --path app/ --into new/ --json
expect_eq "--path app/ --into new/: the key app/ and every key under it" "0 3 new/ new/x new/y/z" \
    "$RC $(jget 'd["created"]') $(keys_of "$PQ")"
etcdctl3 "$PQ" del "" --prefix >/dev/null
run_burry restore "etcd://127.0.0.1:$PQ" "$P3" --name v3 --path app/ --into new --json
expect_eq "--path app/ --into new: the same (a final '/' of --into follows --path)" "0 3 new/ new/x new/y/z" \
    "$RC $(jget 'd["created"]') $(keys_of "$PQ")"
etcdctl3 "$PQ" del "" --prefix >/dev/null
run_burry restore "etcd://127.0.0.1:$PQ" "$P3" --name v3 --path app --into new/ --json
expect_eq "--path app --into new/: app/x at new/x, never new//x" "0 4 new new/ new/x new/y/z" \
    "$RC $(jget 'd["created"]') $(keys_of "$PQ")"
etcd_stop pfx
etcd_stop pfx2

# --- empty key space ---
etcd_start empty || exit 1
PE=$ETCD_PORT
run_burry backup "etcd://127.0.0.1:$PE" "$S" --json --name empty
expect_eq "empty key space: backup exits 0" 0 "$RC"
expect_eq "empty key space: 0 nodes" 0 "$(jget 'd["nodes"]')"
EID=$(jget 'd["snapshot"]')
run_burry verify "$S" --snapshot "$EID"
expect_eq "the empty snapshot verifies" 0 "$RC"
run_burry restore "etcd://127.0.0.1:$PE" "$S" --snapshot "$EID" --json
expect_eq "the empty snapshot restores (nothing to do)" "0 0" "$RC $(jget 'd["created"]')"
etcd_stop empty

# --- point in time: keys written while the backup runs are not in it ---
etcd_py "$PC" "kv.load((b'pit/%06d' % i, b'v' * 500) for i in range(20000))" ||
    not_ok "could not load 20,000 keys"
"$BURRY" backup "etcd://127.0.0.1:$PC/pit" "$S" --name pit --json >"$T_TMP/pit.out" 2>"$T_TMP/pit.err" &
BPID=$!
# writes that sort after every key read so far, for as long as the backup runs
etcd_py "$PC" "$(cat <<PY
import os, time
n = 0
while n < 2000:
    kv.put(b'pit/zz-%05d' % n, b'late')
    n += 1
    try:
        os.kill($BPID, 0)
    except OSError:
        break
    if open('/proc/$BPID/stat').read().split()[2] == 'Z':
        break
print(n)
PY
)" >"$T_TMP/pit.writes"
wait "$BPID"
expect_eq "point-in-time backup exits 0" 0 "$?"
PID_ID=$(json_get "$(cat "$T_TMP/pit.out")" 'd["snapshot"]')
PREV=$(json_get "$(cat "$S/pit/$PID_ID.json")" 'd["source_info"]["revision"]')
# every key created at or before R is in the archive, none created after
etcd_py "$PC" "
R = $PREV
import sys
for k, v, l in kv.all(b'pit/zz-'):
    kvr = kv.get(k)
    print(k.decode(), 'in' if int(kvr['create_revision']) <= R else 'out')
" >"$T_TMP/pit.expect"
zstd -qdc "$S/pit/$PID_ID.tar.zst" | tar -t | sed -n 's|^tree/pit/\(zz-[0-9]*\)/@meta$|pit/\1|p' >"$T_TMP/pit.have"
LATE=$(grep -c ' out$' "$T_TMP/pit.expect")
check "keys were written during the backup, after its revision ($LATE of $(cat "$T_TMP/pit.writes"))" test "$LATE" -gt 0
expect_eq "the archive holds exactly the keys created at or before revision R" \
    "$(sed -n 's/ in$//p' "$T_TMP/pit.expect")" "$(cat "$T_TMP/pit.have")"
expect_eq "the archive holds all 20,000 older keys" 20000 "$(zstd -qdc "$S/pit/$PID_ID.tar.zst" | tar -t | grep -c '^tree/pit/[0-9]*/@meta$')"

# --- server gone mid-restore; running again completes ---
etcd_start gone || exit 1
PG=$ETCD_PORT
"$BURRY" restore "etcd://127.0.0.1:$PG" "$S" --name pit --json >"$T_TMP/gone.out" 2>"$T_TMP/gone.err" &
RPID=$!
count_keys() { etcd_py "$PG" "print(kv.call('/v3/kv/range', {'key': kv.b(b'pit/'), 'range_end': kv.b(b'pit0'), 'count_only': True}).get('count', 0))" 2>/dev/null || echo 0; }
has_some() { [ "$(count_keys)" -gt 0 ]; }
check "the restore starts writing" wait_until 20 has_some
kill -9 "$(eval echo "\$ETCD_PID_gone")"
wait "$RPID"
expect_eq "restore into a server that went away exits 1" 1 "$?"
expect_match "the failure says how far it got and that a re-run is safe" \
    'stopped after [0-9]+ nodes \([0-9]+ created\).*running it again is safe' "$(cat "$T_TMP/gone.err")"
expect_match "the failure names the server" \
    "(cannot reach etcd at|the answer of etcd at) .*127.0.0.1:$PG" "$(cat "$T_TMP/gone.err")"
etcd_restart gone || exit 1
BEFORE=$(count_keys)
run_burry restore "etcd://127.0.0.1:$PG" "$S" --name pit --json
expect_eq "the second restore exits 0" 0 "$RC"
TOTAL=$(zstd -qdc "$S/pit/$PID_ID.tar.zst" | tar -t | grep -c '/@meta$')
expect_eq "created + existing = every key" "$TOTAL" "$(( $(jget 'd["created"]') + $(jget 'd["existing"]') ))"
expect_eq "what the first run wrote counts as existing" "$BEFORE" "$(jget 'd["existing"]')"
expect_eq "every key is on the server" "$TOTAL" "$(count_keys)"

# restore_acting BASE ACTION SOURCE STORE ARGS...: burry restore in the
# background, its stdout in BASE.out and its stderr, line by line, in
# BASE.err; once it says "restoring snapshot" (it starts writing), ACTION is
# run, with RPID its PID. RESTORE_RC: its exit status.
restore_acting() {
    local base=$1 action=$2 line
    shift 2
    rm -f "$base.fifo" && mkfifo "$base.fifo"
    "$BURRY" restore "$@" >"$base.out" 2>"$base.fifo" &
    RPID=$!
    : >"$base.err"
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$base.err"
        case $line in
        *"restoring snapshot"*) eval "$action" ;;
        esac
    done <"$base.fifo"
    wait "$RPID"
    RESTORE_RC=$?
}

# --- SIGINT mid-restore: the restore is stopped (SIGSTOP) as soon as it says
# it starts writing, SIGINT is queued, and it goes on; it says it was
# interrupted, counts every key the transactions in flight created, and a
# second run completes the rest ---
etcd_start int || exit 1
PG=$ETCD_PORT # count_keys counts there
restore_acting "$T_TMP/int" 'kill -STOP "$RPID"; kill -INT "$RPID"; kill -CONT "$RPID"' \
    "etcd://127.0.0.1:$PG" "$S" --name pit --json -v
IRC=$RESTORE_RC
check "SIGINT mid-restore: exit non-zero" test "$IRC" -ne 0
expect_match "... saying it was interrupted, how far it got and that a re-run is safe" \
    'stopped after [0-9]+ nodes \([0-9]+ created\).*running it again is safe.*interrupted' "$(cat "$T_TMP/int.err")"
ICREATED=$(sed -n 's/.*stopped after [0-9]* nodes (\([0-9]*\) created).*/\1/p' "$T_TMP/int.err")
expect_eq "... and what it says it created is what the server holds" "$ICREATED" "$(count_keys)"
run_burry restore "etcd://127.0.0.1:$PG" "$S" --name pit --json
expect_eq "the run after the interrupted one completes: created + existing = every key" "0 $TOTAL" \
    "$RC $(( $(jget 'd["created"]') + $(jget 'd["existing"]') ))"
expect_eq "... what the interrupted run wrote counts as existing" "$ICREATED" "$(jget 'd["existing"]')"
etcd_stop int

# --- SIGINT while transactions are in flight: 100,000 keys; the restore is
# stopped (SIGSTOP) once the server holds some of them, SIGINT is queued and
# it goes on. The transactions in flight are not cut short: they end and are
# counted, so what it says it created is exactly what the server holds ---
etcd_start manysrc --max-txn-ops 1000 || exit 1
etcd_py "$ETCD_PORT" "
for j in range(100):
    kv.call('/v3/kv/txn', {'success': [{'request_put': {'key': kv.b(b'm/%06d' % (j * 1000 + i)),
                                                        'value': kv.b(b'v')}} for i in range(1000)]})" ||
    not_ok "load 100,000 keys"
run_burry backup "etcd://127.0.0.1:$ETCD_PORT" "$S" --name many --json
expect_eq "backup of 100,000 keys for the interrupted restore" "0 100000" "$RC $(jget 'd["nodes"]')"
etcd_stop manysrc
etcd_start int2 || exit 1
PI=$ETCD_PORT
m_range() { curl -s -X POST "http://127.0.0.1:$PI/v3/kv/range" -d '{"key":"bS8=","range_end":"bTA=","count_only":true}'; }
m_written() { m_range | grep -q '"count"'; }
"$BURRY" restore "etcd://127.0.0.1:$PI" "$S" --name many --json >"$T_TMP/int2.out" 2>"$T_TMP/int2.err" &
RPID=$!
check "the restore of 100,000 keys starts writing" wait_until 30 m_written
kill -STOP "$RPID"
kill -INT "$RPID"
kill -CONT "$RPID"
wait "$RPID"
IRC=$?
ICREATED=$(sed -n 's/.*stopped after [0-9]* nodes (\([0-9]*\) created).*/\1/p' "$T_TMP/int2.err")
check "SIGINT with transactions in flight: exit non-zero" test "$IRC" -ne 0
check "... part-way through ($ICREATED of 100000 created)" test "${ICREATED:-0}" -gt 0 -a "${ICREATED:-0}" -lt 100000
expect_eq "... and the keys the transactions in flight wrote are counted: created = keys on the server" \
    "$ICREATED" "$(m_range | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", 0))')"
etcd_stop int2

# --- authentication ---
etcd_start auth || exit 1
PU=$ETCD_PORT
etcdctl3 "$PU" user add root:s3cret-pw --interactive=false >/dev/null &&
    etcdctl3 "$PU" auth enable >/dev/null &&
    etcdctl3 "$PU" --user root:s3cret-pw put k v >/dev/null || not_ok "could not enable auth"
run_burry backup "etcd://127.0.0.1:$PU" "$S" --user root:wrong-pw --name auth
expect_eq "wrong password exits 1" 1 "$RC"
expect_match "wrong password: a clear message" \
    "authentication to etcd at 127.0.0.1:$PU failed for user 'root': .*authentication failed" "$ERR"
expect_no_match "the password appears nowhere" 'wrong-pw' "$OUT$ERR"
run_burry backup "etcd://127.0.0.1:$PU" "$S" --name auth
expect_eq "no credentials on an auth-enabled server exits 1" 1 "$RC"
expect_match "... saying authentication is needed" 'requires authentication.*--user' "$ERR"
printf 's3cret-pw\n' >"$T_TMP/pw"
run_burry backup "etcd://127.0.0.1:$PU" "$S" --user root --password-file "$T_TMP/pw" --name auth --json -v
expect_eq "right password from a file: backup exits 0" "0 1" "$RC $(jget 'd["nodes"]')"
expect_match "... reading through gRPC with the token" 'read 1 keys at revision [0-9]+ through gRPC' "$ERR"
expect_no_match "the password is not in the manifest" 's3cret' "$(cat "$S"/auth/*.json)"
etcdctl3 "$PU" --user root:s3cret-pw del k >/dev/null
ETCD_PASSWORD=s3cret-pw run_burry restore "etcd://127.0.0.1:$PU" "$S" --user root --name auth --json
expect_eq "restore with ETCD_PASSWORD creates the key" "0 1" "$RC $(jget 'd["created"]')"
expect_eq "... checked with etcdctl" v "$(etcdctl3 "$PU" --user root:s3cret-pw get k --print-value-only)"

# --- a user who may write only under ok/: etcd refuses the gRPC transaction
# as a whole, the gateway then tries each key alone; the one outside fails,
# named, and every other is created ---
etcd_start rbacsrc || exit 1
etcdctl3 "$ETCD_PORT" put ok/a 1 >/dev/null && etcdctl3 "$ETCD_PORT" put ok/b 2 >/dev/null &&
    etcdctl3 "$ETCD_PORT" put no/c 3 >/dev/null || not_ok "write the keys for the limited user"
run_burry backup "etcd://127.0.0.1:$ETCD_PORT" "$S" --name rbac
etcd_stop rbacsrc
etcdctl3 "$PU" --user root:s3cret-pw role add okonly >/dev/null &&
    etcdctl3 "$PU" --user root:s3cret-pw role grant-permission okonly --prefix=true readwrite ok/ >/dev/null &&
    etcdctl3 "$PU" --user root:s3cret-pw user add lim:Lim-pw-5 --interactive=false >/dev/null &&
    etcdctl3 "$PU" --user root:s3cret-pw user grant-role lim okonly >/dev/null ||
    not_ok "make a user who may write only under ok/"
run_burry restore "etcd://127.0.0.1:$PU" "$S" --name rbac --user lim:Lim-pw-5 --json -v
expect_eq "a key the user may not write: exit 1, the two others created, one failed" "1 2 1" \
    "$RC $(jget 'd["created"]') $(jget 'd["failed"]')"
expect_match "... the failure names the key and etcd's reason" "'/no/c'.*permission denied" "$ERR"
expect_match "... after the gRPC transaction, the gateway's" \
    "1 transactions sent through gRPC, [1-9][0-9]* through the JSON gateway" "$ERR"
expect_eq "... and the server holds the two keys under ok/ only" "ok/a ok/b" \
    "$(etcdctl3 "$PU" --user root:s3cret-pw get "" --prefix --keys-only | grep -v '^$' | grep -v '^k$' | tr '\n' ' ' | sed 's/ $//')"
expect_no_match "... and the password is in no message" "Lim-pw-5" "$OUT$ERR"

# --- an auth token that expires in the middle of a read is renewed once ---
# The server forgets a token unused for a second (--auth-token-ttl 1). The
# dump's output goes into a pipe nobody reads for 3 s, so the dump stalls
# inside its second page of 10,000 keys; the read of the fourth page then
# finds its token expired. Through gRPC, then through the JSON gateway (the
# fault proxy refusing HTTP/2).
etcd_start ttl --auth-token-ttl 1 || exit 1
PTTL=$ETCD_PORT
etcd_py "$PTTL" "kv.load((b'ttl/%05d' % i, b'v') for i in range(20100))" || not_ok "load 20,100 keys"
etcdctl3 "$PTTL" user add root:Ttl-pw-31 --interactive=false >/dev/null 2>&1 &&
    etcdctl3 "$PTTL" auth enable >/dev/null 2>&1 || not_ok "enable auth on the short-token server"
stalled_dump() { # stalled_dump PORT: the dump's exit status, its line count, its log in ttl.err
    "$BURRY" dump "etcd://127.0.0.1:$1" --user root:Ttl-pw-31 -v 2>"$T_TMP/ttl.err" |
        { sleep 3; wc -l >"$T_TMP/ttl.lines"; }
    echo "${PIPESTATUS[0]} $(tr -d ' ' <"$T_TMP/ttl.lines")"
}
expect_eq "token expired mid-read (gRPC): the dump completes with every key" "0 20100" "$(stalled_dump "$PTTL")"
expect_match "... after asking for a new token" "auth token expired; asking for a new one" "$(cat "$T_TMP/ttl.err")"
expect_match "... reading through gRPC" "read 20100 keys at revision [0-9]+ through gRPC" "$(cat "$T_TMP/ttl.err")"
expect_no_match "... and the password is in no message" "Ttl-pw-31" "$(cat "$T_TMP/ttl.err")"
rm -f "$T_TMP/proxy3.port"
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy3.port" "$PTTL" \
    --match 'PRI * HTTP/2.0' --fail 1000 --status 505 2>>"$T_TMP/proxy.log" &
PROXY_PID=$!
wait_until 10 test -s "$T_TMP/proxy3.port" || not_ok "the fault proxy did not start"
expect_eq "token expired mid-read (gateway): the dump completes with every key" "0 20100" \
    "$(stalled_dump "$(cat "$T_TMP/proxy3.port")")"
expect_match "... after asking for a new token" "auth token expired; asking for a new one" "$(cat "$T_TMP/ttl.err")"
expect_match "... reading through the JSON gateway" "reading through its JSON gateway" "$(cat "$T_TMP/ttl.err")"
kill $PROXY_PID 2>/dev/null

# --- a token that expires again after it was renewed is renewed again:
# 60,100 keys, and a reader that stops four times for 3 s, reading 15,000
# lines (19 bytes each) in between; the gRPC read finds its token expired
# after two of the stops (it used to give up at the second) ---
etcd_start ttl3 --auth-token-ttl 1 || exit 1
PT3=$ETCD_PORT
etcd_py "$PT3" "kv.load((b'ttm/%06d' % i, b'v') for i in range(60100))" || not_ok "load 60,100 keys"
etcdctl3 "$PT3" user add root:Ttl-pw-31 --interactive=false >/dev/null 2>&1 &&
    etcdctl3 "$PT3" auth enable >/dev/null 2>&1 || not_ok "enable auth on the third short-token server"
"$BURRY" dump "etcd://127.0.0.1:$PT3/ttm/" --user root:Ttl-pw-31 -v 2>"$T_TMP/ttl3.err" |
    /usr/bin/python3 -c '
import sys, time
n = 0
for _ in range(4):
    time.sleep(3)
    n += sys.stdin.buffer.read(19 * 15000).count(b"\n")
print(n + sys.stdin.buffer.read().count(b"\n"))' >"$T_TMP/ttl3.lines"
expect_eq "token expired twice in one read: the dump completes with every key" "0 60100" \
    "${PIPESTATUS[0]} $(cat "$T_TMP/ttl3.lines")"
expect_match "... asking for a new token more than once" \
    "auth token expired; asking for a new one.*auth token expired; asking for a new one" \
    "$(tr '\n' ' ' <"$T_TMP/ttl3.err")"
expect_no_match "... and the password is in no message" "Ttl-pw-31" "$(cat "$T_TMP/ttl3.err")"
etcd_stop ttl3

# --- an auth token that expires in the middle of a restore is renewed: the
# restore is stopped (SIGSTOP) for 3 s as soon as it says it starts writing,
# so the gRPC transactions after it find their token expired ---
run_burry backup "etcd://127.0.0.1:$PTTL" "$S" --name ttl --user root:Ttl-pw-31 --json
expect_eq "backup of the 20,100 keys for the restore" "0 20100" "$RC $(jget 'd["nodes"]')"
etcd_stop ttl
etcd_start ttl2 --auth-token-ttl 1 || exit 1
PT2=$ETCD_PORT
etcdctl3 "$PT2" user add root:Ttl-pw-31 --interactive=false >/dev/null 2>&1 &&
    etcdctl3 "$PT2" auth enable >/dev/null 2>&1 || not_ok "enable auth on the second short-token server"
restore_acting "$T_TMP/rttl" 'kill -STOP "$RPID"; sleep 3; kill -CONT "$RPID"' \
    "etcd://127.0.0.1:$PT2" "$S" --name ttl --user root:Ttl-pw-31 --json -v
expect_eq "token expired mid-restore: the restore exits 0 and creates every key" "0 20100" \
    "$RESTORE_RC $(json_get "$(cat "$T_TMP/rttl.out")" 'd["created"]')"
expect_match "... after asking for a new token" "auth token expired; asking for a new one" "$(cat "$T_TMP/rttl.err")"
expect_match "... writing through gRPC" "[1-9][0-9]* transactions sent through gRPC" "$(cat "$T_TMP/rttl.err")"
expect_no_match "... and the password is in no message" "Ttl-pw-31" "$(cat "$T_TMP/rttl.err")"
expect_eq "... every key is on the server" 20100 \
    "$(etcdctl3 "$PT2" --user root:Ttl-pw-31 get ttl/ --prefix --keys-only | grep -c .)"
etcd_stop ttl2

# --- a restore reads a snapshot once when its nodes fit in memory (64 MiB),
# and reads it again when they do not: 48 values of 1.4 MiB ---
etcd_start bigsrc || exit 1
PBS=$ETCD_PORT
etcd_py "$PBS" "
for i in range(48):
    kv.put(b'big/%02d' % i, (b'%02d' % i) * (700 * 1024))" || not_ok "load 48 values of 1.4 MiB"
run_burry backup "etcd://127.0.0.1:$PBS/big/" "$T_TMP/big" --name big --json
expect_eq "backup of 67 MiB of values exits 0" "0 48" "$RC $(jget 'd["nodes"]')"
etcd_start bigdst || exit 1
run_burry restore "etcd://127.0.0.1:$ETCD_PORT" "$T_TMP/big" --name big --json -v
expect_eq "restore of a snapshot too large to keep in memory exits 0" "0 48" "$RC $(jget 'd["created"]')"
expect_match "... saying it reads the snapshot again" "too large to keep in memory: reading it again" "$ERR"
expect_eq "... and every value is back" True "$(etcd_py "$ETCD_PORT" "
got = kv.all(b'big/')
print(len(got) == 48 and all(v == k[-2:] * (700 * 1024) for k, v, _ in got))")"
etcd_stop bigsrc
etcd_stop bigdst
run_burry restore "etcd://127.0.0.1:$PB" "$S" --name auth --dry-run --json -v
expect_match "a small snapshot is restored from the nodes its check read" \
    "restoring the [0-9]+ checked nodes from memory" "$ERR"

# --- TLS: a private CA with --cacert; gRPC then goes over TLS (ALPN h2) ---
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$T_TMP/tls.key" -out "$T_TMP/tls.crt" \
    >/dev/null 2>&1 || not_ok "make a test certificate"
ETCD_TLS_CERT=$T_TMP/tls.crt ETCD_TLS_KEY=$T_TMP/tls.key etcd_start tls || exit 1
PT=$ETCD_PORT
curl -s --cacert "$T_TMP/tls.crt" -X POST "https://127.0.0.1:$PT/v3/kv/put" \
    -d '{"key":"dGxzL2E=","value":"c2VjdXJl"}' >/dev/null || not_ok "put a key over TLS"
run_burry backup "etcd+https://127.0.0.1:$PT" "$S" --name tls
expect_eq "etcd+https://: a certificate from an unknown CA is refused (exit 1)" 1 "$RC"
expect_match "... saying it is about the certificate" "certificate|SSL" "$ERR"
expect_match "... with what TLS said of it" "SSL certificate problem: self-signed certificate" "$ERR"
run_burry dump "etcd+https://127.0.0.1:$PB" --cacert "$T_TMP/tls.crt"
expect_eq "etcd+https:// to a member that speaks plain HTTP: exit 1" 1 "$RC"
expect_match "... saying the server closed the connection in the handshake, maybe not speaking TLS" \
    "closed the connection during the TLS handshake: it may not speak TLS on that port" "$ERR"
# A plain HTTP server (Python's http.server, standing in for a proxy's
# plain port) answers a TLS hello with an HTTP error.
PLAIN=$(free_port)
/usr/bin/python3 -m http.server "$PLAIN" --bind 127.0.0.1 --directory "$T_TMP" >/dev/null 2>&1 &
PLAIN_PID=$!
wait_until 10 curl -s -o /dev/null "http://127.0.0.1:$PLAIN/" || not_ok "the plain HTTP server did not start"
run_burry dump "etcd+https://127.0.0.1:$PLAIN" --cacert "$T_TMP/tls.crt"
expect_match "TLS to a plain HTTP server: the message says it does not speak TLS there" \
    "wrong version number\); the server does not speak TLS on that port" "$ERR"
expect_no_match "... without the client certificate hint" "give --cert" "$ERR"
kill "$PLAIN_PID" 2>/dev/null
run_burry backup "etcd://127.0.0.1:$PT" "$S" --name tls
expect_eq "etcd:// without TLS options speaks plain HTTP to it and fails (exit 1)" 1 "$RC"
run_burry backup "etcd+https://127.0.0.1:$PT" "$S" --name tls --cacert "$T_TMP/tls.crt" --json -v
expect_eq "etcd+https:// with --cacert: the backup exits 0 with the key" "0 1" "$RC $(jget 'd["nodes"]')"
expect_match "... read through gRPC over TLS" 'read 1 keys at revision [0-9]+ through gRPC' "$ERR"
expect_eq "... the manifest names the https form" "etcd+https://127.0.0.1:$PT" \
    "$(json_get "$(cat "$S"/tls/*.json)" 'd["source"]')"
run_burry backup "etcd://127.0.0.1:$PT" "$S" --name tls --cacert "$T_TMP/tls.crt" --json
expect_eq "etcd:// with --cacert speaks TLS too" "0 1" "$RC $(jget 'd["nodes"]')"
run_burry backup "etcd2+https://127.0.0.1:$PT/tls" "$S" --name tls2 --cacert "$T_TMP/tls.crt" --json
expect_eq "etcd2+https:// (the v2 API over TLS) exits 0" 0 "$RC"
curl -s --cacert "$T_TMP/tls.crt" -X POST "https://127.0.0.1:$PT/v3/kv/deleterange" \
    -d '{"key":"dGxzL2E="}' >/dev/null
run_burry restore "etcd://127.0.0.1:$PT" "$S" --name tls --cacert "$T_TMP/tls.crt" --json -v
expect_eq "restore over TLS creates the key" "0 1" "$RC $(jget 'd["created"]')"
expect_match "... with a gRPC transaction over TLS" '1 transactions sent through gRPC, 0 through the JSON gateway' "$ERR"
expect_eq "... checked over TLS" "secure" "$(ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$PT" \
    --cacert "$T_TMP/tls.crt" get tls/a --print-value-only)"
# many transactions at once, as streams of one TLS connection
run_burry restore "etcd://127.0.0.1:$PT" "$S" --name pit --cacert "$T_TMP/tls.crt" --json -v
expect_eq "restore of the $TOTAL-key snapshot over TLS creates every key" "0 $TOTAL" "$RC $(jget 'd["created"]')"
expect_match "... through gRPC only" '[1-9][0-9]+ transactions sent through gRPC, 0 through the JSON gateway' "$ERR"
expect_eq "... and the server holds them" "$TOTAL" "$(ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$PT" \
    --cacert "$T_TMP/tls.crt" get pit/ --prefix --keys-only | grep -c .)"

# --- mutual TLS, as Kubernetes runs etcd: a CA signs the server's and the
# client's certificates; --cert/--key present the client's ---
mkcert() { # NAME CN [EXTRA openssl x509 args...]: a key and a certificate signed by ca
    local n=$1 cn=$2; shift 2
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$T_TMP/$n.key" \
        -out "$T_TMP/$n.csr" >/dev/null 2>&1 &&
        openssl x509 -req -in "$T_TMP/$n.csr" -CA "$T_TMP/ca.crt" -CAkey "$T_TMP/ca.key" \
            -CAcreateserial -days 2 -out "$T_TMP/$n.crt" "$@" >/dev/null 2>&1
}
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=burry test CA" \
    -keyout "$T_TMP/ca.key" -out "$T_TMP/ca.crt" >/dev/null 2>&1 || not_ok "make a test CA"
printf 'subjectAltName=IP:127.0.0.1\n' >"$T_TMP/san.ext"
mkcert server 127.0.0.1 -extfile "$T_TMP/san.ext" || not_ok "make the server certificate"
mkcert client root || not_ok "make the client certificate"
ETCD_TLS_CERT=$T_TMP/server.crt ETCD_TLS_KEY=$T_TMP/server.key ETCD_TLS_CA=$T_TMP/ca.crt \
    ETCD_TLS_CLIENT_CA=$T_TMP/ca.crt ETCD_TLS_CLIENT_CERT=$T_TMP/client.crt \
    ETCD_TLS_CLIENT_KEY=$T_TMP/client.key etcd_start mtls || exit 1
PM=$ETCD_PORT
curl -s --cacert "$T_TMP/ca.crt" --cert "$T_TMP/client.crt" --key "$T_TMP/client.key" \
    -X POST "https://127.0.0.1:$PM/v3/kv/put" -d '{"key":"bS9h","value":"bXV0dWFs"}' >/dev/null ||
    not_ok "put a key over mutual TLS"
run_burry backup "etcd+https://127.0.0.1:$PM" "$S" --name mtls --cacert "$T_TMP/ca.crt"
expect_eq "mutual TLS without a client certificate: exit 1" 1 "$RC"
expect_match "... and the message names the server and the missing certificate" \
    "etcd at https://127.0.0.1:$PM.*give --cert and --key" "$ERR"
run_burry backup "etcd+https://127.0.0.1:$PM" "$S" --name mtls --cacert "$T_TMP/ca.crt" \
    --cert "$T_TMP/client.crt" --key "$T_TMP/client.key" --json -v
expect_eq "with --cert/--key: the backup exits 0 with the key" "0 1" "$RC $(jget 'd["nodes"]')"
expect_match "... read through gRPC with the client certificate" 'read 1 keys at revision [0-9]+ through gRPC' "$ERR"
MID=$(jget 'd["snapshot"]')
run_burry restore "etcd+https://127.0.0.1:$PM" "$S" --name mtls --snapshot "$MID" --cacert "$T_TMP/ca.crt" \
    --cert "$T_TMP/client.crt" --key "$T_TMP/client.key" --into /copy --json
expect_eq "... and the restore over mutual TLS creates it elsewhere" "0 1" "$RC $(jget 'd["created"]')"
expect_eq "... checked with etcdctl" "mutual" "$(ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$PM" \
    --cacert "$T_TMP/ca.crt" --cert "$T_TMP/client.crt" --key "$T_TMP/client.key" get /copy/m/a --print-value-only)"

# --- several members: one that takes connections but does not answer
# (SIGSTOP), or answers 503 "no leader", is skipped for the next one, said
# at info level (-v); a refusal that any member would give ends the run at once;
# with no member serving, the error names each ---
etcd_start ma || exit 1
PMA=$ETCD_PORT
etcd_start mb || exit 1
PMB=$ETCD_PORT
etcd_py "$PMB" "kv.load([(b'mem/1', b'one'), (b'mem/2', b'two'), (b'mem/3', b'three')])" ||
    not_ok "load 3 keys into the second member"
MEMBERS="etcd://127.0.0.1:$PMA,127.0.0.1:$PMB"
kill -STOP "$ETCD_PID_ma"
run_burry backup "$MEMBERS" "$S" --name members --timeout 3 --json -v
R1="$RC $(jget 'd["nodes"]')"
E1=$ERR
run_burry restore "$MEMBERS" "$S" --name members --into /copy --timeout 3 --json -v
R2="$RC $(jget 'd["created"]')"
E2=$ERR
kill -STOP "$ETCD_PID_mb"
run_burry backup "$MEMBERS" "$S" --name members --timeout 3
R3=$RC
E3=$ERR
kill -CONT "$ETCD_PID_ma" "$ETCD_PID_mb"
expect_eq "first member stopped: the backup reads the 3 keys of the second" "0 3" "$R1"
expect_match "... saying which member it skipped and why" \
    "no answer from etcd at http://127.0.0.1:$PMA/v3/maintenance/status within 3s; trying the next member" "$E1"
expect_eq "first member stopped: the restore writes into the second" "0 3" "$R2"
expect_match "... saying which member it skipped" "etcd at http://127.0.0.1:$PMA/.*trying the next member" "$E2"
expect_eq "... checked on the second member" "/copy/mem/1=one /copy/mem/2=two /copy/mem/3=three" \
    "$(etcd_py "$PMB" "print(' '.join('%s=%s' % (k.decode(), v.decode()) for k, v, _ in kv.all(b'/copy/')))" 2>&1)"
expect_eq "both members stopped: exit 1" 1 "$R3"
expect_match "... the error names both members" \
    "none of the 2 etcd members serves: no answer from etcd at http://127.0.0.1:$PMA/.* within 3s; no answer from etcd at http://127.0.0.1:$PMB/.* within 3s" "$E3"
rm -f "$T_TMP/proxy6.port" "$T_TMP/proxy7.port" "$T_TMP/proxy8.port"
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy6.port" "$PMA" \
    --match /v3/maintenance/status --fail 1000 --status 503 --json-error "etcdserver: no leader" \
    2>>"$T_TMP/proxy.log" &
PROXY_PID=$!
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy7.port" "$PMA" \
    --match /v3/maintenance/status --fail 1000 --status 403 --json-error "etcdserver: permission denied" \
    2>>"$T_TMP/proxy.log" &
PROXY2_PID=$!
# a member whose status names no leader (the field renamed on the way)
/usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$T_TMP/proxy8.port" "$PMA" \
    --rewrite '"leader"="leadex"' --rewrite-match /v3/maintenance/status 2>>"$T_TMP/proxy.log" &
PROXY3_PID=$!
trap 'kill $PROXY_PID $PROXY2_PID $PROXY3_PID 2>/dev/null; t_cleanup' EXIT
wait_until 10 test -s "$T_TMP/proxy6.port" || not_ok "the fault proxy did not start"
wait_until 10 test -s "$T_TMP/proxy7.port" || not_ok "the fault proxy did not start"
wait_until 10 test -s "$T_TMP/proxy8.port" || not_ok "the fault proxy did not start"
run_burry backup "etcd://127.0.0.1:$(cat "$T_TMP/proxy6.port"),127.0.0.1:$PMB" "$S" --name members --json -v
expect_eq "a member answering 503 'no leader': the backup reads the next one (3 keys and their 3 copies)" \
    "0 6" "$RC $(jget 'd["nodes"]')"
expect_match "... saying why it skipped it" "etcd at 127.0.0.1:$(cat "$T_TMP/proxy6.port") .*no leader; trying the next member" "$ERR"
run_burry backup "etcd://127.0.0.1:$(cat "$T_TMP/proxy8.port"),127.0.0.1:$PMB" "$S" --name members --json -v
expect_eq "a member without a leader: the backup reads the next one" "0 6" "$RC $(jget 'd["nodes"]')"
expect_match "... saying why it skipped it" \
    "etcd at 127.0.0.1:$(cat "$T_TMP/proxy8.port") has no leader; trying the next member" "$ERR"
run_burry backup "etcd://127.0.0.1:$(cat "$T_TMP/proxy7.port"),127.0.0.1:$PMB" "$S" --name members
expect_eq "a member refusing with 'permission denied': exit 1, no other member tried" 1 "$RC"
expect_match "... with the refusal" "permission denied" "$ERR"
expect_no_match "... without trying the next member" "trying the next member" "$ERR"
kill $PROXY_PID $PROXY2_PID $PROXY3_PID 2>/dev/null
etcd_stop ma
etcd_stop mb

# --- malformed URLs ---
run_burry backup "etcd://user:pw@127.0.0.1:$PA" "$S"
expect_eq "credentials in the URL: usage error" 2 "$RC"
expect_no_match "... not echoed" 'pw@' "$ERR"
run_burry backup "etcd://127.0.0.1" "$S"
expect_match "missing port: clear message" "malformed etcd URL.*missing ':PORT'" "$ERR"

t_done
