#!/bin/bash
# Consul KV against real Consul 1.8.7 agents: a round trip with flags, empty
# values, folder/ keys, awkward names and a 400 KB value; create-only,
# --overwrite, --dry-run, --path/--into, prefixes, an empty key space, ACL
# tokens, an unreachable server, a server killed mid-restore, the legacy
# flags. Results are checked with curl and the consul binary.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/consul.sh"; t_tmpdir

consul_start a || { not_ok "consul a starts"; exit 1; }
PA=$CONSUL_PORT
consul_start b || { not_ok "consul b starts"; exit 1; }
PB=$CONSUL_PORT
S=$T_TMP/store

# kv_load PORT [TOKEN] < lines "KEY_JSON<TAB>VALUE_B64<TAB>FLAGS": writes in
# transactions (any key bytes), the big values alone: in a transaction of
# their own when it fits Consul's 512 KiB request limit, else through /v1/kv
KV_LOAD_PY=$(cat <<'PY'
import base64, json, sys, urllib.request, urllib.parse
port, tok = sys.argv[1], sys.argv[2]
hdr = {"X-Consul-Token": tok} if tok else {}
ops = []
def flush():
    global ops
    if ops:
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s/v1/txn" % port, json.dumps(ops).encode(), hdr, method="PUT")).read()
    ops = []
for line in sys.stdin.read().splitlines():
    k, v, f = line.split("\t")
    k = json.loads(k)
    if len(v) > 300000:
        flush()
        op = {"KV": {"Verb": "set", "Key": k, "Value": v, "Flags": int(f)}}
        if len(json.dumps([op])) < 512 * 1024:
            ops = [op]
            flush()
            continue
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s/v1/kv/%s?flags=%s" % (port, urllib.parse.quote(k), f), base64.b64decode(v), hdr, method="PUT")).read()
        continue
    ops.append({"KV": {"Verb": "set", "Key": k, "Value": v, "Flags": int(f)}})
    if len(ops) == 64:
        flush()
flush()
PY
)
kv_load() { /usr/bin/python3 -c "$KV_LOAD_PY" "$1" "${2:-}"; }

# kv_dump PORT [PREFIX] [TOKEN]: every key under PREFIX as "key flags sha256(value)",
# read with curl
kv_dump() {
    curl -s ${3:+-H "X-Consul-Token: $3"} "http://127.0.0.1:$1/v1/kv/${2:-}?recurse" |
        /usr/bin/python3 -c '
import base64, hashlib, json, sys
t = sys.stdin.read()
for e in (json.loads(t) if t.strip() else []):
    v = base64.b64decode(e["Value"]) if e["Value"] else b""
    print(json.dumps(e["Key"]), e["Flags"], hashlib.sha256(v).hexdigest(), len(v))'
}
nkeys() { kv_dump "$@" | wc -l; }

BIG=$(head -c 400000 /dev/urandom | base64 -w0)
kv_load "$PA" <<EOF
"plain"	$(printf 'hello' | base64)	0
"flagged"	$(printf 'x' | base64)	42
"empty"		7
"folder/"		0
"dir/sub/k"	$(printf 'deep' | base64)	0
"dir/other"	$(printf 'o' | base64)	1
"sp ace/50%:x/é"	$(printf 'odd' | base64)	0
"runs//of///slash"	$(printf 'r' | base64)	0
"/lead"	$(printf 'l' | base64)	0
"trail//"		3
"bin"	$(printf 'a\000b\377c' | base64)	0
"big"	$BIG	9
EOF
N=$(nkeys "$PA")
expect_eq "fixture: 12 keys in the source" 12 "$N"

# --- backup -------------------------------------------------------------
run_burry backup "consul://127.0.0.1:$PA" "$S" --json
expect_eq "backup exits 0" 0 "$RC"
expect_eq "backup counts every key" 12 "$(jget 'd["nodes"]')"
expect_eq "default name" "consul-127.0.0.1-$PA" "$(jget 'd["name"]')"
ID=$(jget 'd["snapshot"]')
ARCH="$S/consul-127.0.0.1-$PA/$ID.tar.zst"
LIST=$(tar -tf "$ARCH" 2>/dev/null)
expect_match "folder/ key is a node with an empty last segment" '^tree/folder/%/@meta$' "$LIST"
expect_match "empty value kept as an empty @data" '^tree/empty/@data$' "$LIST"
expect_match "leading '/' is an empty first segment" '^tree/%/lead/@meta$' "$LIST"
expect_match "odd names encoded" '^tree/sp%20ace/50%25%3Ax/%C3%A9/@data$' "$LIST"
MX=$(tar -xOf "$ARCH" tree/flagged/@meta 2>/dev/null)
expect_match "flags recorded in @meta" '"flags":42' "$MX"
expect_match "indexes recorded in @meta" '"create_index":[0-9]+.*"modify_index":[0-9]+' "$MX"
EMPTY_SIZE=$(tar -xOf "$ARCH" tree/empty/@data 2>/dev/null | wc -c)
expect_eq "empty value is 0 bytes" 0 "$EMPTY_SIZE"
MAN=$(cat "$S/consul-127.0.0.1-$PA/$ID.json")
expect_match "manifest records the service" '"service": "consul"' "$MAN"
expect_match "manifest records prefix and index" '"index": [1-9]' "$MAN"

# --- round trip ---------------------------------------------------------
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --json
expect_eq "restore exits 0" 0 "$RC"
expect_eq "restore creates every key" 12 "$(jget 'd["created"]')"
expect_eq "round trip: keys, values and flags equal (curl)" "$(kv_dump "$PA")" "$(kv_dump "$PB")"
expect_match "flags restored (consul kv get -detailed)" 'Flags +42' "$(consul_kv "$PB" get -detailed flagged)"
expect_eq "400 KB value restored (consul kv get)" "$(consul_kv "$PA" get big | sha256sum)" "$(consul_kv "$PB" get big | sha256sum)"
expect_eq "odd name restored (consul kv get)" "odd" "$(consul_kv "$PB" get 'sp ace/50%:x/é')"

# --- create-only ----------------------------------------------------------
curl -s -X PUT --data-binary 'CHANGED' "http://127.0.0.1:$PB/v1/kv/plain" >/dev/null
curl -s -X DELETE "http://127.0.0.1:$PB/v1/kv/empty" >/dev/null
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --json
expect_eq "create-only restore exits 0" 0 "$RC"
expect_eq "create-only: the missing key is created" 1 "$(jget 'd["created"]')"
expect_eq "create-only: existing keys counted" 11 "$(jget 'd["existing"]')"
expect_eq "create-only: changed key left untouched" "CHANGED" "$(consul_kv "$PB" get plain)"
expect_match "create-only: deleted empty key back with its flags" 'Flags +7' "$(consul_kv "$PB" get -detailed empty)"

# --- dry run ------------------------------------------------------------------
curl -s -X DELETE "http://127.0.0.1:$PB/v1/kv/dir/sub/k" >/dev/null
BEFORE=$(kv_dump "$PB")
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --dry-run --json
expect_eq "dry-run exits 0" 0 "$RC"
expect_eq "dry-run: would create 1" 1 "$(jget 'd["created"]')"
expect_eq "dry-run: 1 differs" 1 "$(jget 'd["different"]')"
expect_eq "dry-run changes nothing" "$BEFORE" "$(kv_dump "$PB")"
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --dry-run
expect_match "dry-run plan names the missing key" 'create.*/dir/sub/k' "$OUT$ERR"
expect_match "dry-run plan names the differing key" 'exists-different.*/plain' "$OUT$ERR"

# --- overwrite -----------------------------------------------------------------
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --overwrite --json
expect_eq "overwrite exits 0" 0 "$RC"
expect_eq "overwrite: 1 overwritten" 1 "$(jget 'd["overwritten"]')"
expect_eq "overwrite: 1 created" 1 "$(jget 'd["created"]')"
expect_eq "after --overwrite both servers are equal" "$(kv_dump "$PA")" "$(kv_dump "$PB")"

# --- --path / --into, prefixes --------------------------------------------------
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --path /dir --into /moved/here --json
expect_eq "--path/--into exits 0" 0 "$RC"
expect_eq "--path/--into: 2 keys created" 2 "$(jget 'd["created"]')"
expect_eq "--into places the subtree" "deep" "$(consul_kv "$PB" get moved/here/sub/k)"
expect_eq "--into creates no keys for the ancestors" "2" "$(nkeys "$PB" moved)"
# a final '/' of --path and --into is dropped, as from a URL's prefix:
# dir/ is the subtree dir, whose folder key folder/ is part of folder
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --path dir/ --into slashed/ --json
expect_eq "--path dir/ --into slashed/: exit 0, the 2 keys under dir created" "0 2" "$RC $(jget 'd["created"]')"
expect_eq "... at slashed/sub/k and slashed/other, no doubled '/'" '"slashed/other" "slashed/sub/k"' \
    "$(kv_dump "$PB" slashed | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')"
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --path // --dry-run
expect_eq "--path // is the key '/' and the keys under it: only /lead is planned" "//lead" \
    "$(grep -E '^(create|exists[a-z-]*|failed) ' <<<"$OUT" | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//')"
run_burry restore "consul://127.0.0.1:$PB" "$S" --snapshot "$ID" --path folder/ --into f2 --json
expect_eq "--path folder/ --into f2: the folder key becomes f2/" "0 1 \"f2/\"" \
    "$RC $(jget 'd["created"]') $(kv_dump "$PB" f2 | cut -d' ' -f1)"

run_burry backup "consul://127.0.0.1:$PA/dir" "$S" --json
expect_eq "prefix backup exits 0" 0 "$RC"
expect_eq "prefix backup holds only keys under dir/" 2 "$(jget 'd["nodes"]')"
PID=$(jget 'd["snapshot"]')
run_burry restore "consul://127.0.0.1:$PB/copy" "$S" --snapshot "$PID" --json
expect_eq "restore under another prefix exits 0" 0 "$RC"
expect_eq "restore under another prefix" "o" "$(consul_kv "$PB" get copy/other)"

# --- empty key space, missing prefix, unreachable ---------------------------------
consul_start c || not_ok "consul c starts"
PC=$CONSUL_PORT
run_burry backup "consul://127.0.0.1:$PC" "$S" --json
expect_eq "empty key space: exit 0" 0 "$RC"
expect_eq "empty key space: 0 nodes" 0 "$(jget 'd["nodes"]')"
expect_match "empty key space: a warning" 'no keys' "$ERR"
run_burry backup "consul://127.0.0.1:$PA/nothere" "$S" --json
expect_eq "missing prefix: exit 0" 0 "$RC"
expect_eq "missing prefix: 0 nodes" 0 "$(jget 'd["nodes"]')"
expect_match "missing prefix: a warning naming it" "no keys under 'nothere'" "$ERR"
DEAD=$(free_port)
run_burry backup "consul://127.0.0.1:$DEAD" "$S" --timeout 3
expect_eq "unreachable server: exit 1" 1 "$RC"
expect_match "unreachable server: says so" "cannot reach Consul at .*127.0.0.1:$DEAD" "$ERR"
consul_stop c

# --- ACL tokens ------------------------------------------------------------------
TOK=5f0d3b1e-6a43-4bd6-9d1c-a11ce0000001
consul_start_acl acl "$TOK" || not_ok "consul with ACLs starts"
PACL=$CONSUL_PORT
printf '"sec/one"\t%s\t5\n"sec/two"\t\t0\n' "$(printf 1 | base64)" | kv_load "$PACL" "$TOK"
expect_eq "ACL fixture: 2 keys" 2 "$(nkeys "$PACL" "" "$TOK")"
CONSUL_HTTP_TOKEN=$TOK run_burry backup "consul://127.0.0.1:$PACL" "$S" --name acl --json
expect_eq "CONSUL_HTTP_TOKEN: backup exits 0" 0 "$RC"
expect_eq "CONSUL_HTTP_TOKEN: both keys read" 2 "$(jget 'd["nodes"]')"
AID=$(jget 'd["snapshot"]')
expect_no_match "token not in the manifest" "$TOK" "$(cat "$S"/acl/*.json)"
printf '%s\n' "$TOK" >"$T_TMP/tok"; chmod 600 "$T_TMP/tok"
run_burry backup "consul://127.0.0.1:$PACL/sec" "$S" --name acl2 --token-file "$T_TMP/tok" --json
expect_eq "--token-file: backup exits 0" 0 "$RC"
expect_eq "--token-file: both keys read" 2 "$(jget 'd["nodes"]')"
CONSUL_HTTP_TOKEN=not-the-token-0000 run_burry backup "consul://127.0.0.1:$PACL" "$S" --name acl3
expect_eq "wrong token: exit 1" 1 "$RC"
expect_match "wrong token: permission denied" 'refused the request: permission denied \(check the ACL token\)' "$ERR"
expect_no_match "wrong token never shown" 'not-the-token-0000' "$OUT$ERR"
curl -s -X DELETE -H "X-Consul-Token: $TOK" "http://127.0.0.1:$PACL/v1/kv/sec/one" >/dev/null
CONSUL_HTTP_TOKEN=not-the-token-0000 run_burry restore "consul://127.0.0.1:$PACL" "$S" --snapshot "$AID" --name acl
expect_eq "wrong token restore: exit 1" 1 "$RC"
expect_no_match "wrong token restore: token never shown" 'not-the-token-0000' "$OUT$ERR"
run_burry restore "consul://127.0.0.1:$PACL" "$S" --snapshot "$AID" --name acl
expect_eq "no token restore (default deny): exit 1" 1 "$RC"
expect_match "no token restore: permission denied" 'permission denied' "$ERR"
run_burry restore "consul://127.0.0.1:$PACL" "$S" --snapshot "$AID" --name acl --token-file "$T_TMP/tok" --json
expect_eq "token restore: exit 0" 0 "$RC"
expect_eq "token restore: 1 created, 1 existing" "1 1" "$(jget 'd["created"]') $(jget 'd["existing"]')"
expect_match "token restore: flags back" 'Flags +5' "$(CONSUL_HTTP_TOKEN=$TOK consul_kv "$PACL" get -detailed sec/one)"
expect_no_match "token never in any output" "$TOK" "$OUT$ERR"
# Without a token, an agent with ACLs shows no keys at all (Consul answers the
# recursive read 404): that is refused, not saved as an empty snapshot.
run_burry backup "consul://127.0.0.1:$PACL" "$S" --name acl-none --json
expect_eq "no token, ACLs on, no key visible: the backup exits 1" 1 "$RC"
expect_match "... saying a token is needed" \
    "shows no keys to a request without an ACL token, and it has ACLs enabled: give a token" "$ERR"
expect_eq "... and publishes nothing" 0 "$(find "$S" -path '*acl-none*' -type f | wc -l)"
run_burry dump "consul://127.0.0.1:$PACL"
expect_eq "... dump without a token fails the same way (exit 1)" 1 "$RC"
printf '\n%s\n' "$TOK" >"$T_TMP/blanktok"
run_burry backup "consul://127.0.0.1:$PACL" "$S" --name acl-none --token-file "$T_TMP/blanktok"
expect_eq "a token file whose first line is blank is refused (exit 2)" 2 "$RC"
expect_match "... as empty" "secret file '.*blanktok' is empty" "$ERR"
expect_no_match "... without showing the token" "$TOK" "$OUT$ERR"
# An agent whose ACL default policy is allow shows a request without a token
# every key: an empty answer is then really empty.
consul_start allow "acl { enabled = true, default_policy = \"allow\", enable_token_persistence = false, tokens { master = \"$TOK\" } }" ||
    not_ok "consul with ACLs, default allow, starts"
run_burry backup "consul://127.0.0.1:$CONSUL_PORT" "$S" --name acl-allow --json
expect_eq "no token, ACLs on with default allow, no keys: exit 0, an empty snapshot" "0 0" "$RC $(jget 'd["nodes"]')"
expect_match "... with the usual warning" "has no keys; there is nothing to read" "$ERR"
consul_stop allow
# The legacy flags read CONSUL_HTTP_TOKEN too.
mkdir -p "$T_TMP/legacy-acl"
(cd "$T_TMP/legacy-acl" && CONSUL_HTTP_TOKEN=$TOK run_burry -e "127.0.0.1:$PACL" -i consul -t local &&
    printf '%s\n%s\n' "$RC" "$ERR" >out.txt)
expect_eq "legacy -i consul with CONSUL_HTTP_TOKEN exits 0" 0 "$(head -1 "$T_TMP/legacy-acl/out.txt")"
expect_eq "... and its snapshot holds both keys" 2 \
    "$(json_get "$(find "$T_TMP/legacy-acl" -name '*.json' -exec cat {} +)" 'd["nodes"]')"
expect_no_match "... without showing the token" "$TOK" "$(cat "$T_TMP/legacy-acl/out.txt")"

# A token that may read and write only ok/: Consul leaves the keys it cannot
# read out of a "get" transaction's results without a word, so --overwrite
# and --dry-run must match each result to its key, not to its position.
# ok/a differs on the server and ok/b is the same; read by position, ok/a
# would be compared with ok/b's value and found the same.
acl_put() { curl -s -X PUT -H "X-Consul-Token: $TOK" "http://127.0.0.1:$PACL/v1/acl/$1" -d "$2"; }
acl_put policy '{"Name":"ok-only","Rules":"key_prefix \"ok/\" { policy = \"write\" }"}' >/dev/null
acl_put token '{"Description":"burry test","Policies":[{"Name":"ok-only"}]}' |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["SecretID"])' >"$T_TMP/ltok"
chmod 600 "$T_TMP/ltok"
LTOK=$(cat "$T_TMP/ltok")
curl -s -X DELETE -H "X-Consul-Token: $TOK" "http://127.0.0.1:$PACL/v1/kv/sec?recurse" >/dev/null
printf '"no/a"\t%s\t0\n"ok/a"\t%s\t0\n"ok/b"\t%s\t0\n' "$(printf hidden | base64)" \
    "$(printf same | base64)" "$(printf same | base64)" | kv_load "$PACL" "$TOK"
run_burry backup "consul://127.0.0.1:$PACL" "$S" --name part --token-file "$T_TMP/tok" --json
expect_eq "partial token: the management token's backup holds the 3 keys" "0 3" "$RC $(jget 'd["nodes"]')"
run_burry backup "consul://127.0.0.1:$PACL" "$S" --name part-ltok --token-file "$T_TMP/ltok" --json
expect_eq "partial token: a backup with it sees only the 2 keys it may read (Consul 1.8 says nothing)" \
    "0 2" "$RC $(jget 'd["nodes"]')"
run_burry backup "consul://127.0.0.1:$PACL/no/" "$S" --name part-none --token-file "$T_TMP/ltok" --json
expect_eq "a token that reads nothing under the prefix: exit 0, an empty snapshot" "0 0" "$RC $(jget 'd["nodes"]')"
expect_match "... with a warning that says it may be the token" "has no keys under 'no' that this ACL token may read" "$ERR"
printf '"ok/a"\t%s\t0\n' "$(printf changed | base64)" | kv_load "$PACL" "$TOK"
run_burry restore "consul://127.0.0.1:$PACL" "$S" --name part --token-file "$T_TMP/ltok" --dry-run
expect_eq "partial token --dry-run: exit 1 (a key cannot be read)" 1 "$RC"
expect_match "... the unreadable key fails, saying why" \
    '^failed +/no/a +\(not readable with this ACL token \(permission denied\)' "$OUT"
expect_match "... the differing key is exists-different" '^exists-different +/ok/a$' "$OUT"
expect_match "... the equal key is exists-same" '^exists-same +/ok/b$' "$OUT"
run_burry restore "consul://127.0.0.1:$PACL" "$S" --name part --token-file "$T_TMP/ltok" --overwrite --json
expect_eq "partial token --overwrite: exit 1, 1 overwritten, 1 existing, 1 failed, 0 created" "1 1 1 1 0" \
    "$RC $(jget 'd["overwritten"]') $(jget 'd["existing"]') $(jget 'd["failed"]') $(jget 'd["created"]')"
expect_match "... the failed key is named" "cannot restore '/no/a': not readable with this ACL token" "$ERR"
expect_eq "... the differing key is overwritten, the others are as they were" "same same hidden" \
    "$(for k in ok/a ok/b no/a; do CONSUL_HTTP_TOKEN=$TOK consul_kv "$PACL" get "$k"; done | tr '\n' ' ' | sed 's/ $//')"
expect_no_match "partial token: no token in any output" "$TOK|$LTOK" "$OUT$ERR"
consul_stop acl

# --- TLS: consul+https:// with a private CA --------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$T_TMP/tls.key" -out "$T_TMP/tls.crt" \
    >/dev/null 2>&1 || not_ok "make a test certificate"
HP=$(free_port)
consul_start tls "$(printf 'ports { https = %s }\ncert_file = "%s"\nkey_file = "%s"\n' \
    "$HP" "$T_TMP/tls.crt" "$T_TMP/tls.key")" || not_ok "consul with TLS starts"
printf '"tls/a"\t%s\t7\n' "$(printf secure | base64)" | kv_load "$CONSUL_PORT"
run_burry backup "consul+https://127.0.0.1:$HP" "$S" --name tls
expect_eq "consul+https://: a certificate from an unknown CA is refused (exit 1)" 1 "$RC"
expect_match "... saying it is about the certificate" "certificate|SSL" "$ERR"
run_burry backup "consul+https://127.0.0.1:$HP" "$S" --name tls --cacert "$T_TMP/tls.crt" --json
expect_eq "consul+https:// with --cacert: the backup exits 0 with the key" "0 1" "$RC $(jget 'd["nodes"]')"
TID=$(jget 'd["snapshot"]')
expect_eq "... the manifest names the https form" "consul+https://127.0.0.1:$HP" \
    "$(json_get "$(cat "$S"/tls/"$TID".json)" 'd["source"]')"
curl -s -X DELETE "http://127.0.0.1:$CONSUL_PORT/v1/kv/tls/a" >/dev/null
run_burry restore "consul+https://127.0.0.1:$HP" "$S" --name tls --cacert "$T_TMP/tls.crt" --json
expect_eq "restore over TLS creates the key" "0 1" "$RC $(jget 'd["created"]')"
expect_eq "... with its value and flags" "secure 7" \
    "$(curl -s "http://127.0.0.1:$CONSUL_PORT/v1/kv/tls/a" | /usr/bin/python3 -c \
        'import base64,json,sys; d=json.load(sys.stdin)[0]; print(base64.b64decode(d["Value"]).decode(), d["Flags"])')"

# --- legacy flags ----------------------------------------------------------------
mkdir -p "$T_TMP/legacy"
(cd "$T_TMP/legacy" && run_burry -e "127.0.0.1:$PA" -i consul -t local && printf '%s\n%s\n%s\n' "$RC" "$OUT" "$ERR" >out.txt)
LEG=$(cat "$T_TMP/legacy/out.txt")
expect_eq "legacy -i consul -t local exits 0" 0 "$(head -1 <<<"$LEG")"
expect_match "legacy prints the original success line" 'Operation successfully completed. The snapshot ID is: ' "$LEG"
LEGID=$(sed -n 's/.*The snapshot ID is: //p' <<<"$LEG" | head -1)
expect_eq "legacy snapshot in the current directory" 1 "$(find "$T_TMP/legacy" -name "$LEGID*.json" | wc -l)"

# --- server killed mid-restore, then a re-run completes ---------------------------
consul_stop b
CONSUL_PERSIST=1 consul_start d || not_ok "persistent consul d starts"
PD=$CONSUL_PORT
/usr/bin/python3 -c '
import base64
for i in range(20000):
    print("\"many/%05d\"\t%s\t%d" % (i, base64.b64encode(b"v%d" % i).decode(), i % 3))' | kv_load "$PA"
run_burry backup "consul://127.0.0.1:$PA/many" "$S" --name many --json
expect_eq "20,000-key backup exits 0" 0 "$RC"
MID=$(jget 'd["snapshot"]')
"$BURRY" restore "consul://127.0.0.1:$PD/many" "$S" --snapshot "$MID" --name many --timeout 3 >"$T_TMP/kill.out" 2>"$T_TMP/kill.err" &
RPID=$!
has_some() { [ "$(curl -s "http://127.0.0.1:$PD/v1/kv/many/?keys" | tr ',' '\n' | grep -c many)" -ge 500 ]; }
wait_until 30 has_some || not_ok "restore started writing"
eval "kill -9 \$CONSUL_PID_d; wait \$CONSUL_PID_d 2>/dev/null"
wait "$RPID"; KRC=$?
expect_eq "restore into a killed server: exit 1" 1 "$KRC"
expect_match "killed server: says how far it got and that a re-run is safe" 'stopped after [0-9]+ nodes.*running it again is safe' "$(cat "$T_TMP/kill.err")"
expect_match "killed server: the summary says the restore stopped, with its counts so far" \
    '^restore of snapshot [^ ]+ stopped before its end \(see the error below\); so far: created [0-9]+, ' "$(cat "$T_TMP/kill.out")"
expect_no_match "killed server: no summary claims a finished restore" '^restored snapshot' "$(cat "$T_TMP/kill.out")"
consul_restart d || not_ok "consul d restarts"
# after a restart Consul applies its log again: count once the count holds
# (at least the 500 keys seen before the kill: they were committed)
GOT=-1
for _ in $(seq 1 40); do
    n=$(nkeys "$PD" many)
    [ "$n" = "$GOT" ] && [ "$n" -ge 500 ] && break
    GOT=$n
    sleep 0.5
done
run_burry restore "consul://127.0.0.1:$PD/many" "$S" --snapshot "$MID" --name many --json
expect_eq "re-run exits 0" 0 "$RC"
expect_eq "re-run: created + existing = 20000" 20000 "$(( $(jget 'd["created"]') + $(jget 'd["existing"]') ))"
expect_eq "re-run: what survived the kill counted as existing" "$GOT" "$(jget 'd["existing"]')"
expect_eq "after the re-run the trees are equal" "$(kv_dump "$PA" many)" "$(kv_dump "$PD" many)"


# --- a key held by a session (a lock): recorded, restored without the lock ---
SID=$(curl -s -X PUT "http://127.0.0.1:$PA/v1/session/create" -d '{"Name":"burry-test"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["ID"])')
expect_eq "the test session acquires the lock" true \
    "$(curl -s -X PUT "http://127.0.0.1:$PA/v1/kv/locks/leader?acquire=$SID" -d 'node-1')"
run_burry backup "consul://127.0.0.1:$PA/locks" "$T_TMP/locks" --name locks --json
expect_eq "backup of a locked key exits 0" "0 1" "$RC $(jget 'd["nodes"]')"
LOCKMETA=$(zstd -qdc "$T_TMP"/locks/locks/*.tar.zst | tar -xO tree/leader/@meta)
expect_match "its @meta records the session and the lock index" \
    "\"lock_index\":1,\"modify_index\":[0-9]+,\"session\":\"$SID\"" "$LOCKMETA"
consul_start l || not_ok "consul l starts"
run_burry restore "consul://127.0.0.1:$CONSUL_PORT/locks" "$T_TMP/locks" --name locks --json
expect_eq "restore of the locked key exits 0" "0 1" "$RC $(jget 'd["created"]')"
expect_eq "... the value is back, with no session holding it" "node-1 -" \
    "$(curl -s "http://127.0.0.1:$CONSUL_PORT/v1/kv/locks/leader" | python3 -c '
import base64, json, sys
e = json.load(sys.stdin)[0]
print(base64.b64decode(e["Value"]).decode(), e.get("Session") or "-")')"
consul_stop l

# --- flags past 2^63 (Consul's flags are unsigned 64-bit): recorded as the
# signed 64-bit integer with the same bits, restored exactly ---
curl -s -X PUT "http://127.0.0.1:$PA/v1/kv/flags/max?flags=18446744073709551615" -d x >/dev/null
curl -s -X PUT "http://127.0.0.1:$PA/v1/kv/flags/half?flags=9223372036854775808" -d y >/dev/null
run_burry backup "consul://127.0.0.1:$PA/flags" "$T_TMP/flags" --name flags --json
expect_eq "keys with flags past 2^63 back up" "0 2" "$RC $(jget 'd["nodes"]')"
fmeta() { zstd -qdc "$T_TMP"/flags/flags/*.tar.zst | tar -xO "tree/$1/@meta"; }
expect_match "... recorded as the signed integer with the same bits" \
    '"flags":-1,.*"flags":-9223372036854775808,' "$(fmeta max) $(fmeta half)"
consul_start f || not_ok "consul f starts"
run_burry restore "consul://127.0.0.1:$CONSUL_PORT/flags" "$T_TMP/flags" --name flags --json
expect_eq "restore of the big flags exits 0" "0 2" "$RC $(jget 'd["created"]')"
expect_eq "... each flag is back exactly" "18446744073709551615 9223372036854775808" \
    "$(curl -s "http://127.0.0.1:$CONSUL_PORT/v1/kv/flags/max" | grep -o '"Flags": *[0-9]*' | grep -o '[0-9]*$') $(curl -s "http://127.0.0.1:$CONSUL_PORT/v1/kv/flags/half" | grep -o '"Flags": *[0-9]*' | grep -o '[0-9]*$')"
run_burry restore "consul://127.0.0.1:$CONSUL_PORT/flags" "$T_TMP/flags" --name flags --dry-run --json
expect_eq "... and a dry run finds both the same" "0 2 0" "$RC $(jget 'd["existing"]') $(jget 'd["different"]')"
consul_stop f

# --- keys that a URL path cannot name as they are ---
# Go's HTTP mux redirects a path with an empty, '.' or '..' segment to its
# cleaned form, and libcurl would clean it itself: a value too large for a
# transaction (written alone through PUT /v1/kv/KEY) under such a key fails,
# it is never written to the cleaned key. --overwrite and --dry-run read
# such a value through a "get" transaction, where the key is in the body. A
# prefix with such segments is read from its longest start that a path can
# name, keeping only its keys.
consul_start dots || not_ok "consul dots starts"
PDOT=$CONSUL_PORT
big() { head -c 380000 /dev/urandom | base64 -w0; }
kv_load "$PDOT" <<EOF
"./bigx"	$(big)	0
"dir/sub/."	$(big)	0
"dir/sub/.."	$(big)	0
"fold/"	$(big)	4
"plainbig"	$(big)	0
"./small"	$(printf s | base64)	0
EOF
expect_eq "dots fixture: 6 keys, 3 of 380,000 bytes under '.'/'..' names (written by txn)" 6 "$(nkeys "$PDOT")"
run_burry backup "consul://127.0.0.1:$PDOT" "$S" --name dots --json
expect_eq "dots: backup of the 6 keys exits 0" "0 6" "$RC $(jget 'd["nodes"]')"
consul_start dott || not_ok "consul dott starts"
PDOTT=$CONSUL_PORT
run_burry restore "consul://127.0.0.1:$PDOTT" "$S" --name dots --json
expect_eq "dots restore: exit 1, 3 created, 3 failed" "1 3 3" "$RC $(jget 'd["created"]') $(jget 'd["failed"]')"
for k in /./bigx /dir/sub/. /dir/sub/..; do
    expect_match "dots restore: '$k' fails, saying why" \
        "cannot restore '$k': a value this large can only be written through Consul's /v1/kv path" "$ERR"
done
expect_eq "dots restore: nothing written to the cleaned keys (bigx, dir/sub/, dir/)" \
    '"./small" "fold/" "plainbig"' "$(kv_dump "$PDOTT" | cut -d' ' -f1 | sort | tr '\n' ' ' | sed 's/ $//')"
expect_eq "dots restore: the big value under 'fold/' is whole, with its flags" \
    "$(kv_dump "$PDOT" fold/)" "$(kv_dump "$PDOTT" fold/)"
printf '"plainbig"\t%s\t0\n' "$(printf small | base64)" | kv_load "$PDOTT"
run_burry restore "consul://127.0.0.1:$PDOTT" "$S" --name dots --dry-run
expect_eq "dots --dry-run: exit 1" 1 "$RC"
expect_match "dots --dry-run: the big differing key (read by transaction)" '^exists-different +/plainbig$' "$OUT"
expect_match "dots --dry-run: the big equal folder key" '^exists-same +/fold/$' "$OUT"
expect_match "dots --dry-run: '/dir/sub/..' would fail" '^failed +/dir/sub/\.\. +\(a value this large' "$OUT"
run_burry restore "consul://127.0.0.1:$PDOTT" "$S" --name dots --overwrite --json
expect_eq "dots --overwrite: exit 1, 1 overwritten, 2 existing, 3 failed" "1 1 2 3" \
    "$RC $(jget 'd["overwritten"]') $(jget 'd["existing"]') $(jget 'd["failed"]')"
expect_eq "dots --overwrite: the big value is back" "$(kv_dump "$PDOT" plainbig)" "$(kv_dump "$PDOTT" plainbig)"
expect_eq "dots --overwrite: still nothing under the cleaned keys" 3 "$(nkeys "$PDOTT")"

printf '"./cfg/a"\tYQ==\t0\n"./cfgx"\tYQ==\t0\n"cfg/../b"\tYg==\t0\n"cfg/..x"\tYg==\t0\n' | kv_load "$PDOT"
run_burry backup "consul://127.0.0.1:$PDOT/./cfg" "$T_TMP/dotpre" --name dotpre --json
expect_eq "prefix './cfg': backup exits 0 with its one key" "0 1" "$RC $(jget 'd["nodes"]')"
expect_eq "... that key, not its neighbour './cfgx'" "tree/a/@data" \
    "$(zstd -qdc "$T_TMP"/dotpre/dotpre/*.tar.zst | tar -t | grep @data)"
run_burry backup "consul://127.0.0.1:$PDOT/cfg/.." "$T_TMP/dotdot" --name dotdot --json
expect_eq "prefix 'cfg/..': backup exits 0 with its one key" "0 1" "$RC $(jget 'd["nodes"]')"
expect_eq "... that key, not its neighbour 'cfg/..x'" "tree/b/@data" \
    "$(zstd -qdc "$T_TMP"/dotdot/dotdot/*.tar.zst | tar -t | grep @data)"
run_burry dump "consul://127.0.0.1:$PDOT/./cfg"
expect_eq "dump of prefix './cfg': its one key" "0 /a" "$RC $(cut -f1 <<<"$OUT" | tr '\n' ' ' | sed 's/ $//')"

# Consul's messages about an operation quote its key: a key named like one of
# them is still classed by the operation that failed
printf '"stale/index is stale"\tYQ==\t0\n"stale/doesn'"'"'t exist"\tYg==\t0\n' | kv_load "$PDOT"
run_burry backup "consul://127.0.0.1:$PDOT/stale" "$S" --name stale --json
expect_eq "keys named like Consul's messages: backup exits 0" "0 2" "$RC $(jget 'd["nodes"]')"
printf '"stale/doesn'"'"'t exist"\tYw==\t0\n' | kv_load "$PDOTT"
run_burry restore "consul://127.0.0.1:$PDOTT/stale" "$S" --name stale --dry-run
expect_match "--dry-run: the absent key 'index is stale' would be created" '^create +/index is stale$' "$OUT"
expect_match "--dry-run: the key \"doesn't exist\" that exists differs" "^exists-different +/doesn't exist$" "$OUT"
run_burry restore "consul://127.0.0.1:$PDOTT/stale" "$S" --name stale --overwrite --json
expect_eq "--overwrite: creates 'index is stale', overwrites \"doesn't exist\"" "0 1 1" \
    "$RC $(jget 'd["created"]') $(jget 'd["overwritten"]')"
expect_eq "... both hold the snapshot's values" "a b" \
    "$(consul_kv "$PDOTT" get 'stale/index is stale') $(consul_kv "$PDOTT" get "stale/doesn't exist")"
curl -s -X DELETE "http://127.0.0.1:$PDOTT/v1/kv/stale/index%20is%20stale" >/dev/null
run_burry restore "consul://127.0.0.1:$PDOTT/stale" "$S" --name stale --json
expect_eq "create-only: creates 'index is stale', finds \"doesn't exist\"" "0 1 1" \
    "$RC $(jget 'd["created"]') $(jget 'd["existing"]')"

# a backup of prefix app turns the folder key "app/" into the path "/":
# restored at the root it would be the empty key, which Consul cannot hold
printf '"app/"\t\t0\n"app/x"\tYQ==\t0\n' | kv_load "$PDOT"
run_burry backup "consul://127.0.0.1:$PDOT/app" "$S" --name app --json
expect_eq "prefix app with its folder key: backup exits 0" "0 2" "$RC $(jget 'd["nodes"]')"
run_burry restore "consul://127.0.0.1:$PDOTT" "$S" --name app --json
expect_eq "... restored at the root: exit 1, 1 created, 1 failed" "1 1 1" \
    "$RC $(jget 'd["created"]') $(jget 'd["failed"]')"
expect_match "... the folder key fails as Consul's empty key" \
    "cannot restore '/': it would be Consul's empty key, which cannot exist; restore it under a prefix" "$ERR"
run_burry restore "consul://127.0.0.1:$PDOTT" "$S" --name app --dry-run
expect_match "... --dry-run says so too" "^failed +/ +\(it would be Consul's empty key" "$OUT"
consul_stop dots
consul_stop dott

# --- an answer cut off, or listing keys out of order: the backup fails and
# publishes nothing. Through tests/lib/faultproxy.py, a forwarding proxy in
# front of the real agent that cuts or rewrites the answer's body. The keys
# are written as they arrive, so thousands are in the archive when it fails ---
proxy() { # proxy NAME ARGS...: a fault proxy in front of agent a; its port in PROXY_PORT
    local pf="$T_TMP/$1.port"; shift
    /usr/bin/python3 "$(dirname "$0")/../lib/faultproxy.py" "$pf" "$PA" "$@" 2>>"$T_TMP/proxy.log" &
    PROXY_PID=$!
    wait_until 10 test -s "$pf" || not_ok "the fault proxy starts"
    PROXY_PORT=$(cat "$pf")
}
trap 'kill $PROXY_PID 2>/dev/null; t_cleanup' EXIT
no_snapshot() { # no_snapshot STORE WHAT
    run_burry ls "$1" --json
    expect_eq "$2: no snapshot is listed" "0 0" "$RC $(jget 'len(d["snapshots"])')"
    check "$2: no file is left behind" test -z "$(find "$1" -type f 2>/dev/null)"
}
proxy cut --cut-body 2000000 --cut-match /v1/kv/many
run_burry backup "consul://127.0.0.1:$PROXY_PORT/many" "$T_TMP/cut" --name many -v
expect_eq "answer cut after 2 MB of 3.8: exit 1" 1 "$RC"
expect_match "... saying the answer broke off" "answer of Consul at .* broke off before its end" "$ERR"
no_snapshot "$T_TMP/cut" "cut answer"
kill $PROXY_PID 2>/dev/null
# SIGINT while the reader thread waits for the answer (the proxy holds the
# request): the backup stops, says so, and leaves nothing
proxy slow --delay 5 --delay-match /v1/kv/many --stats "$T_TMP/slow.stats"
"$BURRY" backup "consul://127.0.0.1:$PROXY_PORT/many" "$T_TMP/intr" --name many >/dev/null 2>"$T_TMP/intr.err" &
BPID=$!
held() { grep -q 'delayed=1' "$T_TMP/slow.stats" 2>/dev/null; }
check "the proxy holds the backup's read" wait_until 20 held
kill -INT "$BPID"
wait "$BPID"
expect_eq "SIGINT during the read: exit 1" 1 "$?"
expect_match "... saying it was interrupted" "interrupted" "$(cat "$T_TMP/intr.err")"
no_snapshot "$T_TMP/intr" "SIGINT during the read"
kill $PROXY_PID 2>/dev/null
printf '"ord/%s"\tdg==\t0\n' a b c | kv_load "$PA"
# bad_listing NAME OLD=NEW WHAT SAYING PATTERN: the answer about ord/
# rewritten; the backup fails with PATTERN in its message
bad_listing() {
    proxy "$1" --rewrite "$2" --rewrite-match /v1/kv/ord
    run_burry backup "consul://127.0.0.1:$PROXY_PORT/ord" "$T_TMP/$1" --name ord
    expect_eq "$3: exit 1" 1 "$RC"
    expect_match "... $4" "$5" "$ERR"
    no_snapshot "$T_TMP/$1" "$3"
    kill $PROXY_PID 2>/dev/null
}
bad_listing order 'ord/b=ord/d' "keys listed out of order" "naming the two keys" \
    "out of byte order \('ord/c' after 'ord/d'\)"
bad_listing twice 'ord/b=ord/a' "a key listed twice" "saying so" "listed a key twice"
# (a -dev agent indents its answer: one space less makes room for the escape)
bad_listing ctrl '"Key": "ord/b"="Key":"ord/\t"' "a key with a tab out of order" \
    "showing the tab as \\x09" "out of byte order \('ord/\\\\x09' after 'ord/a'\)"
run_burry backup "consul://127.0.0.1:$PA/ord" "$T_TMP/order" --name ord --json
expect_eq "straight from the agent the same keys back up" "0 3" "$RC $(jget 'd["nodes"]')"

# --- many transactions at once: every outcome counted, whichever goes first ---
# 1,000 keys are 16 transactions, sent 4 at a time; keys that exist already
# with another value (every 37th: 28) or the same (every other 41st: 24) sit
# in all of them.
/usr/bin/python3 -c '
import base64
for i in range(1000):
    print("\"wide/%04d\"\t%s\t%d" % (i, base64.b64encode(b"w%d" % i).decode(), i % 5))' | kv_load "$PA"
run_burry backup "consul://127.0.0.1:$PA/wide" "$S" --name wide --json
expect_eq "1,000-key backup exits 0" "0 1000" "$RC $(jget 'd["nodes"]')"
WID=$(jget 'd["snapshot"]')
consul_start wide || not_ok "consul wide starts"
PW=$CONSUL_PORT
/usr/bin/python3 -c '
import base64
for i in range(1000):
    if i % 37 == 0:
        print("\"wide/%04d\"\t%s\t0" % (i, base64.b64encode(b"old").decode()))
    elif i % 41 == 0:
        print("\"wide/%04d\"\t%s\t%d" % (i, base64.b64encode(b"w%d" % i).decode(), i % 5))' | kv_load "$PW"
BEFORE=$(kv_dump "$PW" wide)
run_burry restore "consul://127.0.0.1:$PW/wide" "$S" --snapshot "$WID" --name wide --dry-run --json
expect_eq "dry run over 16 transactions: created, different, existing" "0 948 28 52" \
    "$RC $(jget 'd["created"]') $(jget 'd["different"]') $(jget 'd["existing"]')"
expect_eq "... and it writes nothing" "$BEFORE" "$(kv_dump "$PW" wide)"
run_burry restore "consul://127.0.0.1:$PW/wide" "$S" --snapshot "$WID" --name wide --json
expect_eq "create-only over 16 transactions: created, existing" "0 948 52" \
    "$RC $(jget 'd["created"]') $(jget 'd["existing"]')"
OLD_SHA=$(printf old | sha256sum | cut -d' ' -f1)
expect_eq "... the 28 other values are left alone" 28 "$(kv_dump "$PW" wide | grep -c " $OLD_SHA ")"
run_burry restore "consul://127.0.0.1:$PW/wide" "$S" --snapshot "$WID" --name wide --overwrite --json
expect_eq "--overwrite over 16 transactions: overwritten, existing the same, created" "0 28 972 0" \
    "$RC $(jget 'd["overwritten"]') $(jget 'd["existing"]') $(jget 'd["created"]')"
expect_eq "after it the two key spaces are equal" "$(kv_dump "$PA" wide)" "$(kv_dump "$PW" wide)"
consul_stop wide

t_done
