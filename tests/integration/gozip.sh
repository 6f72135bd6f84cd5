#!/bin/bash
# Archives written by the original Go burry (tests/fixtures/burry-go/):
# restored into real ZooKeeper, etcd (v2 and v3) and Consul servers and
# checked node by node with independent clients against an independent
# reading of the zip (Python's zipfile); show, dry run, --path/--into,
# create-only re-runs, --snapshot ID from a store holding ID.zip, the
# original tool's own command line, a damaged zip and a service mismatch.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; . "$(dirname "$0")/../lib/etcd.sh"
HAVE_CONSUL_LIB=0
if [ -f "$(dirname "$0")/../lib/consul.sh" ]; then . "$(dirname "$0")/../lib/consul.sh"; HAVE_CONSUL_LIB=1; fi
t_tmpdir

FIX=$(cd "$(dirname "$0")/../fixtures/burry-go" && pwd)
ZKZIP=$FIX/zk-edge-1795249013.zip
ETCDZIP=$FIX/etcd-edge-1795249050.zip
CONSULZIP=$FIX/consul-edge-1795249075.zip

# expected_nodes ZIP: the nodes of an original burry zip as JSON
# {path: value-as-latin1}, read independently of burry: "ID/a/b/content" is
# node "/a/b" ("ID/content" the root "/"), BURRY_ESC_COLON is ':'; ZooKeeper's
# own /zookeeper subtree is left out, as burry leaves it out.
expected_nodes() {
    /usr/bin/python3 - "$1" <<'PY'
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
out = {}
for i in z.infolist():
    top, rest = i.filename.split('/', 1)
    if rest == '.burrymeta':
        continue
    assert rest == 'content' or rest.endswith('/content'), rest
    p = '/' + rest[:-len('content')].rstrip('/')
    p = p.replace('BURRY_ESC_COLON', ':')
    if p == '/zookeeper' or p.startswith('/zookeeper/'):
        continue
    out[p] = z.read(i).decode('latin-1')
print(json.dumps(out))
PY
}

# ================= ZooKeeper =================
zk_start a || exit 1
PA=$ZK_PORT
zk_start b || exit 1
PB=$ZK_PORT
zk_start c || exit 1
PC=$ZK_PORT
ZA=zk://127.0.0.1:$PA
ZB=zk://127.0.0.1:$PB
ZC=zk://127.0.0.1:$PC
ZKEXP=$(expected_nodes "$ZKZIP")
expect_eq "the ZooKeeper fixture holds 13 nodes besides /zookeeper" 13 "$(json_get "$ZKEXP" 'len(d)')"

# zk_check PORT PREFIX: every node of the zip under PREFIX (value exact, open
# ACL, persistent) and nothing else under PREFIX's first level.
zk_check() {
    EXP=$ZKEXP PREFIX=$2 zk_py "$1" "$(cat <<'PY'
import json, os
exp = json.loads(os.environ['EXP'])
prefix = os.environ['PREFIX']
bad = []
for p, v in exp.items():
    q = (prefix + p) if p != '/' else (prefix or '/')
    if not zk.exists(q):
        bad.append('missing ' + q); continue
    data, st = zk.get(q)
    if data.decode('latin-1') != v:
        bad.append('value of %s: %r' % (q, data))
    if st.ephemeralOwner != 0:
        bad.append('ephemeral ' + q)
    acl, _ = zk.get_acls(q)
    if [(a.id.scheme, a.id.id, a.perms) for a in acl] != [('world', 'anyone', 31)]:
        bad.append('acl of %s: %r' % (q, acl))
def walk(p):
    kids = zk.get_children(p or '/')
    for k in kids:
        c = (p if p != '/' else '') + '/' + k
        if c == '/zookeeper':
            continue
        yield c
        yield from walk(c)
top = prefix or '/'
for q in walk(top):
    p = q[len(prefix):] if prefix else q
    if p not in exp:
        bad.append('extra ' + q)
if bad:
    print('; '.join(bad)); raise SystemExit(1)
PY
)"
}

# --- show ---
run_burry show "$ZKZIP"
expect_eq "show of a zip exits 0" 0 "$RC"
expect_match "show says who wrote it and that it has no checksums" 'format: +zip written by the original burry \(Go\); no checksums' "$OUT"
expect_match "show names the service" 'service: +zookeeper' "$OUT"
expect_match "show counts the nodes" 'nodes: +13$' "$OUT"
expect_match "show counts /zookeeper as skipped" 'skipped: +.*3' "$OUT"
expect_match "show gives the source" 'source: +zk://127.0.0.1:21814' "$OUT"
run_burry show "$ZKZIP" --json
expect_eq "show --json exits 0" 0 "$RC"
expect_eq "show --json: snapshot ID from the file name" zk-edge-1795249013 "$(jget 'd["snapshot"]')"
expect_eq "show --json: 13 nodes" 13 "$(jget 'd["nodes"]')"
expect_eq "show --json: no checksums" False "$(jget 'd["checksums"]')"
expect_eq "show --json: service" zookeeper "$(jget 'd["service"]')"
expect_eq "show --json: the original .burrymeta" zk "$(jget 'd["burrymeta"]["svc"]')"
expect_eq "show --json: archive size" "$(stat -c %s "$ZKZIP")" "$(jget 'd["archive"]["size"]')"

# --- dry run: the plan, and nothing changes ---
zk_tree "$PA" >"$T_TMP/a-before.tree"
run_burry restore "$ZA" "$ZKZIP" --dry-run
expect_eq "dry run exits 0" 0 "$RC"
expect_match "dry run warns that the zip has no checksums" "warning: archive 'zk-edge-1795249013.zip' was written by the original burry: it has no checksums; reading it whole before restoring" "$ERR"
expect_match "dry run plans a name with ':'" '^create +/edge/a:b$' "$OUT"
expect_match "dry run plans a child named like the old meta file" '^create +/edge/\.burrymeta$' "$OUT"
expect_match "dry run finds the root existing" '^exists-(same|different) +/$' "$OUT"
expect_no_match "dry run leaves /zookeeper out" '/zookeeper' "$OUT"
zk_tree "$PA" >"$T_TMP/a-after-dry.tree"
check "dry run changes nothing" cmp -s "$T_TMP/a-before.tree" "$T_TMP/a-after-dry.tree"
run_burry restore "$ZA" "$ZKZIP" --dry-run --json
expect_eq "dry run --json: would create 12" 12 "$(jget 'd["created"]')"
expect_eq "dry run --json: 1 exists (the root)" 1 "$(jget 'd["existing"]')"

# --- the restore, checked node by node ---
run_burry restore "$ZA" "$ZKZIP" --json
expect_eq "restore exits 0" 0 "$RC"
expect_eq "restore: 12 created" 12 "$(jget 'd["created"]')"
expect_eq "restore: 1 existing (the root)" 1 "$(jget 'd["existing"]')"
expect_eq "restore: 0 failed" 0 "$(jget 'd["failed"]')"
expect_eq "restore: the snapshot ID is the file's name without .zip" zk-edge-1795249013 "$(jget 'd["snapshot"]')"
R=$(zk_check "$PA" "" 2>&1)
expect_eq "every node restored exactly (values, ':' names, open ACL, persistent), nothing else" "" "$R"

# --- create-only: a second run changes nothing ---
zk_py "$PA" "zk.set('/edge/p', b'changed by hand')" || not_ok "cannot change /edge/p"
zk_tree "$PA" >"$T_TMP/a-before2.tree"
run_burry restore "$ZA" "$ZKZIP" --json
expect_eq "second restore exits 0" 0 "$RC"
expect_eq "second restore: 0 created" 0 "$(jget 'd["created"]')"
expect_eq "second restore: all 13 existing" 13 "$(jget 'd["existing"]')"
zk_tree "$PA" >"$T_TMP/a-after2.tree"
check "second restore leaves the changed node alone" cmp -s "$T_TMP/a-before2.tree" "$T_TMP/a-after2.tree"
run_burry restore "$ZA" "$ZKZIP" --overwrite --json
expect_eq "--overwrite exits 0" 0 "$RC"
expect_eq "--overwrite sets the one node that differs" 1 "$(jget 'd["overwritten"]')"
R=$(zk_py "$PA" "print(zk.get('/edge/p')[0].decode())")
expect_eq "--overwrite restored the value" parentval "$R"

# --- --path and --into ---
run_burry restore "$ZA" "$ZKZIP" --path /edge --into /copy/edge --json
expect_eq "--path --into exits 0" 0 "$RC"
expect_eq "--path --into: 13 created (/copy, /copy/edge and 11 children)" 13 "$(jget 'd["created"]')"
R=$(zk_py "$PA" "$(cat <<'PY'
kids = sorted(zk.get_children('/copy/edge'))
print(len(kids), zk.get('/copy/edge/a:b')[0].decode(), zk.get('/copy/edge')[0].decode(), zk.get('/copy')[0])
PY
)")
expect_eq "--into placed the subtree (the synthesised /copy has no data)" "11 colon parent None" "$R"
run_burry restore "$ZA" "$ZKZIP" --path '/edge/sp ace' --into /one --json
expect_eq "--path of one node: 1 created" 1 "$(jget 'd["created"]')"
R=$(zk_py "$PA" "print(zk.get('/one')[0].decode(), len(zk.get_children('/one')))")
expect_eq "--path of one node: value, no children" "space 0" "$R"

# --- a store holding ID.zip, and the original tool's command line ---
mkdir -p "$T_TMP/store"
cp "$ZKZIP" "$T_TMP/store/1795249013.zip"
(cd "$T_TMP/store" && "$BURRY" -e "127.0.0.1:$PB" -o restore -s 1795249013 -t local >"$T_TMP/legacy.out" 2>"$T_TMP/legacy.err")
expect_eq "legacy '-o restore -s ID -t local' exits 0" 0 "$?"
expect_match "legacy restore reports success" 'Operation successfully completed.*12 created' "$(cat "$T_TMP/legacy.out")"
R=$(zk_check "$PB" "" 2>&1)
expect_eq "legacy restore: every node exactly" "" "$R"
run_burry restore "$ZB" "$T_TMP/store" --snapshot 1795249013 --json
expect_eq "restore --snapshot ID from a store with ID.zip exits 0" 0 "$RC"
expect_eq "restore --snapshot ID: all 13 existing" 13 "$(jget 'd["existing"]')"
run_burry show "$T_TMP/store" --snapshot 1795249013 --json
expect_eq "show STORE --snapshot ID of a zip" "1795249013 13" "$(jget 'd["snapshot"] + " " + str(d["nodes"])')"
run_burry restore "$ZB" "$T_TMP/store" --snapshot 1795249099
expect_eq "an unknown old ID fails" 1 "$RC"
expect_match "an unknown old ID names the zip it looked for" "no snapshot '1795249099'.*'1795249099.zip'" "$ERR"

# --- a damaged zip is refused before anything is created ---
/usr/bin/python3 - "$ZKZIP" "$T_TMP/damaged/1795249013.zip" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(dst), exist_ok=True)
b = bytearray(open(src, 'rb').read())
i = b.index(b'1795249013/edge/bin/content') + len('1795249013/edge/bin/content') + 100
b[i] ^= 0x5a
open(dst, 'wb').write(b)
PY
zk_tree "$PC" >"$T_TMP/c-before.tree"
run_burry restore "$ZC" "$T_TMP/damaged/1795249013.zip"
expect_eq "a damaged zip: exit 1" 1 "$RC"
expect_match "a damaged zip: refused, saying why" "refusing to restore.*1795249013.zip.*damaged" "$ERR"
zk_tree "$PC" >"$T_TMP/c-after.tree"
check "a damaged zip: nothing was created" cmp -s "$T_TMP/c-before.tree" "$T_TMP/c-after.tree"

# --- a damaged local header: the streaming reader would skip its entry ---
# (byte 445 is the signature of /edge/bin's local header; 12 nodes and exit 0
# before the central directory was checked)
/usr/bin/python3 - "$ZKZIP" "$T_TMP/lhdr/1795249013.zip" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(dst), exist_ok=True)
b = bytearray(open(src, 'rb').read())
assert b[445:449] == b'PK\x03\x04'
b[445] ^= 0xff
open(dst, 'wb').write(b)
PY
run_burry show "$T_TMP/lhdr/1795249013.zip"
expect_eq "a damaged local header: show exits 1" 1 "$RC"
expect_match "a damaged local header: show names the entry the central directory lists" \
    "damaged: its central directory lists '1795249013/edge/bin/content' at offset 445" "$ERR"
run_burry restore "$ZC" "$T_TMP/lhdr/1795249013.zip"
expect_eq "a damaged local header: restore exits 1" 1 "$RC"
zk_tree "$PC" >"$T_TMP/c-after-lhdr.tree"
check "a damaged local header: nothing was created" cmp -s "$T_TMP/c-before.tree" "$T_TMP/c-after-lhdr.tree"

# --- verify reads a zip whole, as show and restore do: by its path or by ID ---
run_burry verify "$ZKZIP"
expect_eq "verify of a zip named by its path exits 0" 0 "$RC"
expect_match "... and says ok" "^zk-edge-1795249013 .*ok$" "$OUT"
run_burry verify "$T_TMP/store" --snapshot 1795249013 --json
expect_eq "verify STORE --snapshot ID of a zip: exit 0, ok" "0 True" "$RC $(jget 'd["snapshots"][0]["ok"]')"
run_burry verify "$T_TMP/damaged/1795249013.zip"
expect_eq "verify of a zip with a flipped byte exits 1" 1 "$RC"
expect_match "... saying it is damaged" "1795249013.zip.* damaged" "$ERR"
run_burry verify "$T_TMP/lhdr/1795249013.zip" --json
expect_eq "verify of a zip with a damaged local header: exit 1, not ok" "1 False" "$RC $(jget 'd["snapshots"][0]["ok"]')"
# ls lists the zips at the store's top level apart, without reading them
run_burry ls "$T_TMP/store"
expect_eq "ls of a store holding only ID.zip: exit 0, nothing on standard error" "0 " "$RC $ERR"
expect_match "... one line for the zip, with its size and key" \
    "^1795249013 +- +\? +- +3\.1 KiB +1795249013\.zip \(original burry's zip\)$" "$OUT"
run_burry ls "$T_TMP/store" --json
expect_eq "ls --json: the zip under go_archives, no snapshots" \
    "0 [] [('1795249013', '1795249013.zip', $(stat -c %s "$ZKZIP"))]" \
    "$RC $(jget 'd["snapshots"]') $(jget '[(z["id"], z["key"], z["size"]) for z in d["go_archives"]]')"
run_burry ls "$T_TMP/store" --name zkb --json
expect_eq "ls --name: no zips (they have no name)" "0 []" "$RC $(jget 'd["go_archives"]')"

# --all checks the zips at the store's top level too, beside burry's own
# snapshots; other files are left alone
run_burry verify "$T_TMP/store" --all --json
expect_eq "verify --all of a store holding only ID.zip: exit 0, the zip checked" "0 [('1795249013', True)]" \
    "$RC $(jget '[(s["id"], s["ok"]) for s in d["snapshots"]]')"
run_burry backup "$ZB" "$T_TMP/store" --name zkb --json
BID=$(jget 'd["snapshot"]')
cp "$ZKZIP" "$T_TMP/store/notes.zip"
echo x >"$T_TMP/store/1795249099.txt"
run_burry verify "$T_TMP/store" --all
expect_eq "verify --all of a store with a zip and a snapshot: exit 0" 0 "$RC"
expect_eq "... both checked, one line each (a zip has no name: -)" "1795249013  -  ok|$BID  zkb  ok" "$(paste -sd'|' <<<"$OUT")"
expect_match "... -v says what a zip's check covers" "1795249013.zip' was written by the original burry: only its CRC-32s" \
    "$("$BURRY" verify "$T_TMP/store" --all -v 2>&1 >/dev/null)"
run_burry ls "$T_TMP/store" --json
expect_eq "ls of a store with a zip, a snapshot and other files: the snapshot, and the zip apart" \
    "0 ['$BID'] ['1795249013']" "$RC $(jget '[s["id"] for s in d["snapshots"]]') $(jget '[z["id"] for z in d["go_archives"]]')"
run_burry verify "$T_TMP/store" --all --name zkb --json
expect_eq "verify --all --name: the name's snapshots only (a zip has no name)" "0 ['$BID']" \
    "$RC $(jget '[s["id"] for s in d["snapshots"]]')"
cp "$T_TMP/damaged/1795249013.zip" "$T_TMP/store/1795249013.zip"
run_burry verify "$T_TMP/store" --all --json
expect_eq "verify --all with a damaged zip: exit 1, the zip not ok, the snapshot ok" \
    "1 [('1795249013', False), ('$BID', True)]" "$RC $(jget '[(s["id"], s["ok"]) for s in d["snapshots"]]')"
expect_match "... saying the zip is damaged" "archive '1795249013.zip' of the original burry in .* is damaged" "$ERR"
run_burry verify "$T_TMP/store" --all
expect_match "... DAMAGED in the summary" "^1795249013 .*DAMAGED$" "$OUT"
cp "$ZKZIP" "$T_TMP/store/1795249013.zip"
rm "$T_TMP/store/notes.zip" "$T_TMP/store/1795249099.txt"

# --- the service must match ---
run_burry restore "$ZC" "$ETCDZIP"
expect_eq "an etcd zip into ZooKeeper: exit 2" 2 "$RC"
expect_match "an etcd zip into ZooKeeper: names both services" "etcd2.*zookeeper" "$ERR"
expect_match "... with the right article" "holds an etcd2 backup" "$ERR"
zk_tree "$PC" >"$T_TMP/c-after2.tree"
check "a service mismatch creates nothing" cmp -s "$T_TMP/c-before.tree" "$T_TMP/c-after2.tree"
zk_stop_all

# ================= etcd =================
ETCDEXP=$(expected_nodes "$ETCDZIP")
expect_eq "the etcd fixture holds 7 keys" 7 "$(json_get "$ETCDEXP" 'len(d)')"
etcd_start e || exit 1
PE=$ETCD_PORT

run_burry show "$ETCDZIP" --json
expect_eq "show of the etcd zip: service etcd2, also etcd" "etcd2 ['etcd2', 'etcd']" "$(jget 'd["service"] + " " + str(d["restorable_into"])')"

# etcd2_keys PORT: every v2 key below / (recursively), one per line, sorted
etcd2_keys() {
    /usr/bin/python3 - "$1" <<'PY'
import json, sys, urllib.request
def leaves(n):
    for c in n.get('nodes', []):
        yield c['key']
        yield from leaves(c)
root = json.loads(urllib.request.urlopen('http://127.0.0.1:%s/v2/keys/?recursive=true' % sys.argv[1], timeout=10).read())['node']
print('\n'.join(sorted(leaves(root))))
PY
}

# --- damaged local headers: refused before anything is written ---
# byte 378 is the signature of /edge/empty's local header (the streaming
# reader skipped the entry: "6 created ... 0 failed", exit 0); byte 424 is in
# its name ('empty' read as another name, restored under it)
for at in 378 424; do
    /usr/bin/python3 - "$ETCDZIP" "$T_TMP/e$at/1795249050.zip" "$at" <<'PY'
import os, sys
src, dst, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(os.path.dirname(dst), exist_ok=True)
b = bytearray(open(src, 'rb').read())
b[at] = 0xF3 if at == 378 else ord('x')
open(dst, 'wb').write(b)
PY
    run_burry restore "etcd2://127.0.0.1:$PE" "$T_TMP/e$at/1795249050.zip"
    expect_eq "etcd zip damaged at byte $at: restore exits 1" 1 "$RC"
    expect_match "etcd zip damaged at byte $at: refused, naming the entry" \
        "refusing to restore.*damaged.*1795249050/edge/empty/content" "$ERR"
    expect_eq "etcd zip damaged at byte $at: no key was written" "" "$(etcd2_keys "$PE")"
    run_burry restore "etcd2://127.0.0.1:$PE" "$T_TMP/e$at/1795249050.zip" --dry-run --json
    expect_eq "etcd zip damaged at byte $at: the dry run is refused too" 1 "$RC"
    run_burry show "$T_TMP/e$at/1795249050.zip"
    expect_eq "etcd zip damaged at byte $at: show is refused too" 1 "$RC"
done

run_burry restore "etcd2://127.0.0.1:$PE" "$ETCDZIP" --json
if printf '%s' "$ERR" | grep -q 'not supported by this burry yet'; then
    not_ok "etcd2 restore: the etcd2 source is not implemented yet ($ERR)"
fi
expect_eq "etcd2 restore exits 0" 0 "$RC"
expect_eq "etcd2 restore: 7 created" 7 "$(jget 'd["created"]')"
# every key with the v2 API (an independent client: curl + Python's json)
R=$(/usr/bin/python3 - "$PE" "$ETCDEXP" <<'PY'
import json, sys, urllib.request, urllib.parse
port, exp = sys.argv[1], json.loads(sys.argv[2])
bad = []
def get(k):
    u = 'http://127.0.0.1:%s/v2/keys%s' % (port, urllib.parse.quote(k))
    try:
        return json.loads(urllib.request.urlopen(u, timeout=10).read())['node']
    except Exception as e:
        return None
for k, v in exp.items():
    n = get(k)
    if n is None:
        bad.append('missing ' + k); continue
    # the old tool stored what etcd's JSON gave it, UTF-8 encoded
    if n.get('value', '').encode('utf-8') != v.encode('latin-1'):
        bad.append('value of %s: %r' % (k, n.get('value')))
    if n.get('ttl'):
        bad.append('ttl on ' + k)
def walk(k):
    n = get(k) if k else json.loads(urllib.request.urlopen('http://127.0.0.1:%s/v2/keys/?recursive=true' % port, timeout=10).read())['node']
    return n
def leaves(n):
    if n.get('dir'):
        for c in n.get('nodes', []):
            yield from leaves(c)
    else:
        yield n['key']
root = json.loads(urllib.request.urlopen('http://127.0.0.1:%s/v2/keys/?recursive=true' % port, timeout=10).read())['node']
extra = set(leaves(root)) - set(exp)
if extra:
    bad.append('extra keys %r' % sorted(extra))
print('; '.join(bad))
PY
)
expect_eq "etcd2: every key exactly (':' names, 'x/content/content' as key x/content), nothing else" "" "$R"
run_burry restore "etcd2://127.0.0.1:$PE" "$ETCDZIP" --json
expect_eq "etcd2 second restore: 0 created, 7 existing" "0 7" "$(jget 'str(d["created"]) + " " + str(d["existing"])')"

# --- a non-ASCII name: Go's archive/zip sets the UTF-8 flag (bit 11) and
# writes a data descriptor; the node's name is the name's bytes ---
/usr/bin/python3 - "$T_TMP/utf8/1795249100.zip" <<'PY'
import io, os, sys, zipfile
dst = sys.argv[1]
os.makedirs(os.path.dirname(dst), exist_ok=True)
class Stream(io.RawIOBase):  # not seekable: zipfile writes data descriptors, as Go does
    def __init__(self): self.b = bytearray()
    def writable(self): return True
    def write(self, d): self.b += d; return len(d)
s = Stream()
z = zipfile.ZipFile(s, 'w', zipfile.ZIP_DEFLATED)
z.writestr('1795249100/.burrymeta', '{"snapshot-date":"2026-11-21T08:18:20Z","svc":"etcd",'
           '"svc-endpoint":"127.0.0.1:23790","target":"local","target-endpoint":"/tmp/lab"}')
z.writestr('1795249100/caf\u00e9/content', 'cr\u00e8me')
z.writestr('1795249100/plain/content', 'ascii')
z.close()
flags = [i.flag_bits for i in zipfile.ZipFile(io.BytesIO(s.b)).infolist()]
assert flags[1] & 0x800 and flags[1] & 0x8 and not flags[2] & 0x800, flags
open(dst, 'wb').write(s.b)
PY
run_burry restore "etcd2://127.0.0.1:$PE" "$T_TMP/utf8/1795249100.zip" --json
expect_eq "a UTF-8 name (flag set): restore exits 0" 0 "$RC"
expect_eq "a UTF-8 name (flag set): 2 created" 2 "$(jget 'd["created"]')"
R=$(/usr/bin/python3 - "$PE" <<'PY'
import json, sys, urllib.request
u = 'http://127.0.0.1:%s/v2/keys/caf%%C3%%A9' % sys.argv[1]
n = json.loads(urllib.request.urlopen(u, timeout=10).read())['node']
print(n['key'], n['value'])
PY
)
expect_eq "a UTF-8 name (flag set): the key /café holds its value" "/café crème" "$R"

# into etcd v3: the keys without v2's leading '/' (canonical paths)
run_burry restore "etcd://127.0.0.1:$PE" "$ETCDZIP" --json
expect_eq "etcd v3 restore exits 0" 0 "$RC"
expect_eq "etcd v3 restore: 7 created" 7 "$(jget 'd["created"]')"
R=$(EXP=$ETCDEXP etcd_py "$PE" "$(cat <<'PY'
import json, os
exp = json.loads(os.environ['EXP'])
got = {k.decode('latin-1'): v for k, v, _ in kv.all()}
want = {k[1:]: v.encode('latin-1').decode('utf-8').encode('utf-8') for k, v in exp.items()}
bad = [k for k in want if got.get(k) != want[k]] + [k for k in got if k not in want]
print('; '.join(bad))
PY
)" 2>&1)
expect_eq "etcd v3: every key exactly, nothing else" "" "$R"
run_burry restore "etcd://127.0.0.1:$PE" "$ETCDZIP" --dry-run --json
expect_eq "etcd v3 dry run after the restore: 0 to create, 7 existing" "0 7" "$(jget 'str(d["created"]) + " " + str(d["existing"])')"
etcd_stop_all

# ================= Consul =================
CONSULEXP=$(expected_nodes "$CONSULZIP")
expect_eq "the Consul fixture holds 6 keys" 6 "$(json_get "$CONSULEXP" 'len(d)')"
if [ $HAVE_CONSUL_LIB = 0 ]; then
    not_ok "consul test helpers missing (tests/lib/consul.sh)"
elif ! consul_start k; then
    not_ok "consul could not be started"
else
    PK=$CONSUL_PORT
    run_burry restore "consul://127.0.0.1:$PK" "$CONSULZIP" --json
    if printf '%s' "$ERR" | grep -q 'not supported by this burry yet'; then
        not_ok "consul restore: the consul source is not implemented yet ($ERR)"
    fi
    expect_eq "consul restore exits 0" 0 "$RC"
    expect_eq "consul restore: 6 created" 6 "$(jget 'd["created"]')"
    R=$(/usr/bin/python3 - "$PK" "$CONSULEXP" <<'PY'
import base64, json, sys, urllib.request
port, exp = sys.argv[1], json.loads(sys.argv[2])
kv = json.loads(urllib.request.urlopen('http://127.0.0.1:%s/v1/kv/?recurse=true' % port, timeout=10).read())
got = {e['Key']: base64.b64decode(e['Value'] or '') for e in kv}
want = {k[1:]: v.encode('latin-1') for k, v in exp.items()}
bad = [k for k in want if got.get(k) != want[k]] + ['extra ' + k for k in got if k not in want]
bad += ['flags on ' + e['Key'] for e in kv if e['Flags']]
print('; '.join(bad))
PY
)
    expect_eq "consul: every key exactly (binary value, ':' names), nothing else" "" "$R"
    run_burry restore "consul://127.0.0.1:$PK" "$CONSULZIP" --json
    expect_eq "consul second restore: 0 created, 6 existing" "0 6" "$(jget 'str(d["created"]) + " " + str(d["existing"])')"
    run_burry restore "consul://127.0.0.1:$PK" "$ZKZIP"
    expect_eq "a ZooKeeper zip into Consul: exit 2" 2 "$RC"
fi

# ================= zip64 =================
# Go's archive/zip writes a zip64 end record (and zip64 extra fields in the
# central directory) when an archive has 65,535 entries or more, or passes
# 4 GiB: the fixture rewritten so, and a real zip of 65,600 entries.
for bad in 0 1; do
    /usr/bin/python3 - "$ETCDZIP" "$T_TMP/z64-$bad/1795249050.zip" "$bad" <<'PY'
import os, struct, sys
src, dst, bad = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(os.path.dirname(dst), exist_ok=True)
d = open(src, 'rb').read()
eocd = d.rindex(b'PK\x05\x06')
n, cdsize, cdoff = struct.unpack('<HII', d[eocd + 10:eocd + 20])
out, p, cd = bytearray(d[:cdoff]), cdoff, bytearray()
for i in range(n):
    h = bytearray(d[p:p + 46])
    nl, el, cl = struct.unpack('<HHH', h[28:34])
    rest = d[p + 46:p + 46 + nl + el + cl]
    csize, usize = struct.unpack('<II', h[20:28])
    off = struct.unpack('<I', h[42:46])[0] + (1 if bad and i == 3 else 0)
    z64 = struct.pack('<HHQQQ', 1, 24, usize, csize, off)
    h[20:28] = struct.pack('<II', 0xffffffff, 0xffffffff)
    h[42:46] = struct.pack('<I', 0xffffffff)
    h[30:32] = struct.pack('<H', el + len(z64))
    cd += h + rest[:nl] + z64 + rest[nl:]
    p += 46 + nl + el + cl
out += cd
end64 = len(out)
out += struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, n, n, len(cd), cdoff)
out += struct.pack('<IIQI', 0x07064b50, 0, end64, 1)
out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)
open(dst, 'wb').write(out)
PY
done
run_burry show "$T_TMP/z64-0/1795249050.zip" --json
expect_eq "zip64 end record and extra fields: show reads 7 nodes" "0 7" "$RC $(jget 'd["nodes"]')"
run_burry show "$T_TMP/z64-1/1795249050.zip"
expect_eq "zip64: a wrong offset in a zip64 extra field is refused" 1 "$RC"
expect_match "zip64: the message names the entry and the offset" "lists '1795249050/edge/empty/content' at offset 379" "$ERR"
/usr/bin/python3 - "$T_TMP/big/1795249200.zip" <<'PY'
import os, sys, zipfile
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_STORED) as z:
    z.writestr('1795249200/.burrymeta', '{"svc":"consul"}')
    for i in range(65600):
        z.writestr('1795249200/k/%d/content' % i, 'v')
d = open(sys.argv[1], 'rb').read()
assert b'PK\x06\x06' in d[-200:]
PY
run_burry show "$T_TMP/big/1795249200.zip" --json
expect_eq "a zip of 65,600 entries (zip64 end record, Python's zipfile): show reads them all" "0 65600" "$RC $(jget 'd["nodes"]')"

t_done
