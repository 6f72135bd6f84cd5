#!/bin/bash
# Back up a ZooKeeper tree full of awkward cases and restore it into a second,
# empty server; the two trees, read back with kazoo, must be equal: data on
# inner nodes, null vs empty data, binary and near-maximum values, ACLs,
# sequential names, reserved and odd names, no /zookeeper, chroot URLs, dump.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

zk_start src || exit 1
PA=$ZK_PORT
zk_start dst || exit 1
PB=$ZK_PORT
S=$T_TMP/store
PW=alice-Secret-42
AUTH=digest:alice:$PW

zk_py "$PA" "$(cat <<'PY'
zk.add_auth('digest', 'alice:alice-Secret-42')
ALICE = make_digest_acl('alice', 'alice-Secret-42', all=True)
RO = make_acl('world', 'anyone', read=True)
zk.create('/app', b'inner data')
zk.create('/app/config', b'{"threads": 4}')
zk.create('/app/config/limits', b'max_clients=10\n')
zk.create('/app/content', b'a child named content')
zk.create('/nulldata', None)
zk.create('/nulldata/child', b'below a null node')
zk.create('/empty', b'')
zk.create('/empty/child', None)
zk.create('/bin', bytes(range(256)))
zk.create('/bin/zeros', b'\0' * 16)
zk.create('/bin/big', bytes((i * 7 + i // 251) % 256 for i in range(1000000)))
zk.create('/bin/huge', (bytes(range(255, -1, -1)) * 16400)[:4190000])
zk.create('/acl')
zk.create('/acl/digest', b'alice only', acl=[ALICE])
zk.create('/acl/digest/child', b'also alice', acl=[ALICE])
zk.create('/acl/ro', b'read only for everyone', acl=[RO])
zk.create('/acl/multi', b'three entries',
          acl=[ALICE, RO, make_acl('ip', '127.0.0.1', read=True, write=True)])
zk.create('/seq')
for i in range(3):
    zk.create('/seq/job-', b'%d' % i, sequence=True)
zk.delete('/seq/job-0000000001')
zk.create('/names')
for n in ['content', '.burrymeta', '@meta', '@data', '%', '%41', '100%', 'a:b', 'with space',
          'ünïcødé ✓', 'n' * 300, 'é' * 150, 'back\\slash', '"quoted"']:
    zk.create('/names/' + n, n.encode())
zk.create('/names/content/content', b'content of content')
zk.create('/names/@meta/@data', b'reserved names nested')
# the server's own subtree gets a quota node, which must not travel
zk.create('/zookeeper/quota/app/zookeeper_limits', b'count=100,bytes=-1', makepath=True)
PY
)" || { not_ok "fixture could not be created"; exit 1; }

zk_tree "$PA" --auth "$AUTH" >"$T_TMP/a.tree"
NODES=$(wc -l <"$T_TMP/a.tree")
BYTES=$(/usr/bin/python3 -c '
import sys
t = 0
for line in open(sys.argv[1], encoding="utf-8"):
    d = line.split("\t")[2]
    if d.startswith("hex:"): t += len(d) // 2 - 2
    elif d.startswith("len:"): t += int(d.split(":")[1])
print(t)' "$T_TMP/a.tree")

# --- backup ---
run_burry backup "zk://127.0.0.1:$PA" "$S" --auth "$AUTH" --json
expect_eq "backup exits 0" 0 "$RC"
ID=$(jget 'd["snapshot"]')
expect_match "backup JSON names a snapshot ID" '^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{4}$' "$ID"
expect_eq "backup JSON counts every node but /zookeeper" "$NODES" "$(jget 'd["nodes"]')"
expect_eq "backup JSON counts the bytes of all values" "$BYTES" "$(jget 'd["bytes"]')"
expect_eq "backup JSON default name" "zk-127.0.0.1-$PA" "$(jget 'd["name"]')"
expect_eq "backup JSON skipped nothing" 0 "$(jget 'sum(d["skipped"].values())')"

ARCH=$(ls "$S"/zk-127.0.0.1-"$PA"/*.tar.zst 2>/dev/null | head -1)
LIST=$(tar -tf "$ARCH" 2>&1)
expect_no_match "archive holds nothing of /zookeeper" '^tree/zookeeper/' "$LIST"
expect_eq "archive holds one @meta per node" "$NODES" "$(printf '%s\n' "$LIST" | grep -c '/@meta$')"

# --- restore into the empty second server ---
run_burry restore "zk://127.0.0.1:$PB" "$S" --auth "$AUTH" --json
expect_eq "restore exits 0" 0 "$RC"
expect_eq "restore JSON snapshot" "$ID" "$(jget 'd["snapshot"]')"
expect_eq "restore JSON created every node but the root" $((NODES - 1)) "$(jget 'd["created"]')"
expect_eq "restore JSON existing is the root" 1 "$(jget 'd["existing"]')"
expect_eq "restore JSON overwritten" 0 "$(jget 'd["overwritten"]')"
expect_eq "restore JSON failed" 0 "$(jget 'd["failed"]')"
[ "$RC" -eq 0 ] || echo "# restore stderr: $ERR"

zk_tree "$PB" --auth "$AUTH" >"$T_TMP/b.tree"
same() {  # same NAME PATH: the node reads the same on both servers
    local a b
    a=$(tree_line "$T_TMP/a.tree" "$2") b=$(tree_line "$T_TMP/b.tree" "$2")
    if [ "$a" = "$b" ] && [ "$a" != "<absent>" ]; then ok "$1"; else not_ok "$1 (source: ${a:0:200} / target: ${b:0:200})"; fi
}
same "data on an inner node" /app
same "data on a nested inner node" /app/config
same "a child named content" /app/content
same "null data stays null" /nulldata
same "null data stays null on a leaf" /empty/child
same "empty data stays empty" /empty
same "binary value with every byte" /bin
same "value of NUL bytes" /bin/zeros
same "1,000,000-byte value" /bin/big
same "4,190,000-byte value (jute.maxbuffer 4 MiB)" /bin/huge
same "digest ACL and its data" /acl/digest
same "child of a digest-protected node" /acl/digest/child
same "world read-only ACL" /acl/ro
same "ACL with three entries in the server's order" /acl/multi
same "sequential child keeps its exact name" /seq/job-0000000000
same "sequential child after a gap keeps its name" /seq/job-0000000002
for n in content .burrymeta @meta @data % %41 100% a:b 'with space' 'ünïcødé ✓' "$(printf 'n%.0s' $(seq 300))" \
    "$(printf 'é%.0s' $(seq 150))" 'back\slash' '"quoted"'; do
    same "name '${n:0:24}$([ ${#n} -gt 24 ] && echo "...(${#n} chars)")'" "/names/$n"
done
same "node named content below content" /names/content/content
same "node named @data below @meta" /names/@meta/@data
if cmp -s "$T_TMP/a.tree" "$T_TMP/b.tree"; then
    ok "whole trees are equal (kazoo, data and ACLs)"
else
    not_ok "whole trees are equal: $(diff "$T_TMP/a.tree" "$T_TMP/b.tree" | head -5 | cut -c1-160 | tr '\n' '|')"
fi
QUOTA=$(zk_py "$PB" "print(zk.get_children('/zookeeper/quota'))" 2>/dev/null)
expect_eq "quota nodes under /zookeeper are not restored" "[]" "$QUOTA"

# --- a second restore changes nothing ---
run_burry restore "zk://127.0.0.1:$PB" "$S" --auth "$AUTH" --json
expect_eq "second restore exits 0" 0 "$RC"
expect_eq "second restore creates nothing" 0 "$(jget 'd["created"]')"
expect_eq "second restore finds every node existing" "$NODES" "$(jget 'd["existing"]')"
zk_tree "$PB" --auth "$AUTH" >"$T_TMP/b2.tree"
check "second restore leaves the tree as it was" cmp -s "$T_TMP/b.tree" "$T_TMP/b2.tree"

# --- several hosts in the URL, the first one dead ---
DEAD=$(free_port)
run_burry backup "zk://127.0.0.1:$DEAD,127.0.0.1:$PA" "$S" --auth "$AUTH" --name multi --timeout 5 --json
expect_eq "backup through a host list with a dead host exits 0" 0 "$RC"
expect_eq "backup through a host list saves every node" "$NODES" "$(jget 'd["nodes"]')"

# --- chroot ---
run_burry backup "zk://127.0.0.1:$PA/app" "$S" --name app-only --json
expect_eq "chroot backup exits 0" 0 "$RC"
CH_NODES=$(zk_tree "$PA" --root /app --count)
expect_eq "chroot backup saves only the subtree" "$CH_NODES" "$(jget 'd["nodes"]')"
CH_ID=$(jget 'd["snapshot"]')
CH_LIST=$(tar -tf "$S/app-only/$CH_ID.tar.zst" 2>&1)
expect_match "chroot archive: the chroot is the tree's root" '^tree/config/limits/@meta$' "$CH_LIST"
expect_no_match "chroot archive: nothing outside the chroot" '^tree/(app|bin|acl)/' "$CH_LIST"
run_burry show "$S" --snapshot "$CH_ID" --json
expect_eq "chroot manifest records the chroot" "/app" "$(jget 'd["source_info"]["chroot"]')"
expect_match "chroot manifest source names the chroot" '/app$' "$(jget 'd["source"]')"
zk_py "$PB" "zk.create('/chr', b'')" 2>/dev/null
run_burry restore "zk://127.0.0.1:$PB/chr" "$S" --name app-only --json
expect_eq "restore into a chroot exits 0" 0 "$RC"
expect_eq "restore into a chroot creates the subtree" $((CH_NODES - 1)) "$(jget 'd["created"]')"
A_SUB=$(zk_tree "$PA" --root /app | tail -n +2)
B_SUB=$(zk_tree "$PB" --root /chr | tail -n +2)
expect_eq "restored chroot subtree equals the source subtree" "$A_SUB" "$B_SUB"
expect_eq "existing chroot node keeps its own data" "$(printf '"/"\tpersistent\thex:\tworld:anyone:cdrwa')" \
    "$(zk_tree "$PB" --root /chr | head -1)"

# --- dump: every path with size and a value preview ---
run_burry dump "zk://127.0.0.1:$PA" --auth "$AUTH"
expect_eq "dump exits 0" 0 "$RC"
expect_eq "dump prints one line per node" "$NODES" "$(printf '%s\n' "$OUT" | wc -l)"
expect_match "dump shows path, size and value" "$(printf '^/app\t10\t"inner data"$')" "$OUT"
expect_match "dump shows null data" "$(printf '^/nulldata\t-\t\\(null\\)$')" "$OUT"
expect_match "dump shows empty data" "$(printf '^/empty\t0\t""$')" "$OUT"
expect_match "dump escapes binary bytes" "$(printf '^/bin/zeros\t16\t"(\\\\x00)+')" "$OUT"
expect_match "dump cuts long values" "$(printf '^/bin/big\t1000000\t".*"\\.\\.\\.$')" "$OUT"
expect_match "dump shows names with spaces" "$(printf '^/names/with space\t10\t')" "$OUT"
expect_no_match "dump leaves out /zookeeper" '^/zookeeper' "$OUT"
run_burry dump "zk://127.0.0.1:$PA/no/such/chroot" --auth "$AUTH"
expect_eq "dump of a chroot that does not exist: exit 0, nothing printed" "0 " "$RC $OUT"
expect_match "... with a warning saying so" "warning: the root of the tree \(the URL's chroot\) does not exist" "$ERR"

# --- a read-only node with children (its ACL was set after they were
# created): the restore must still bring back the children and the ACL ---
zk_py "$PA" "zk.create('/acl/ro_parent', b'children first, then read-only')" \
    "zk.create('/acl/ro_parent/kid', b'kid')" \
    "zk.set_acls('/acl/ro_parent', [make_acl('world', 'anyone', read=True)])"
run_burry backup "zk://127.0.0.1:$PA" "$S" --auth "$AUTH" --name ro-parent --json
expect_eq "backup with a read-only parent exits 0" 0 "$RC"
run_burry restore "zk://127.0.0.1:$PB" "$S" --auth "$AUTH" --name ro-parent --path /acl/ro_parent --json
expect_eq "restore of a read-only parent with children exits 0" 0 "$RC"
[ "$RC" -eq 0 ] || echo "# restore stderr: $ERR"
zk_tree "$PA" --auth "$AUTH" --root /acl/ro_parent >"$T_TMP/a.rop"
zk_tree "$PB" --auth "$AUTH" --root /acl/ro_parent >"$T_TMP/b.rop"
same_rop() { expect_eq "$1" "$(tree_line "$T_TMP/a.rop" "$2")" "$(tree_line "$T_TMP/b.rop" "$2")"; }
same_rop "read-only parent restored with its ACL" /
same_rop "child of a read-only parent restored" /kid

# the same without any --auth: burry's own session identity does the job,
# and the restored parent ends with exactly the saved ACL (no extra entry)
run_burry restore "zk://127.0.0.1:$PB" "$S" --name ro-parent --path /acl/ro_parent --into /ro2/copy --json
expect_eq "restore of a read-only parent without --auth exits 0" 0 "$RC"
zk_tree "$PB" --root /ro2/copy >"$T_TMP/c.rop"
expect_eq "read-only parent under --into has exactly its saved ACL" \
    "$(tree_line "$T_TMP/a.rop" / | cut -f2-)" "$(tree_line "$T_TMP/c.rop" / | cut -f2-)"
expect_eq "its child is there too" "$(tree_line "$T_TMP/a.rop" /kid)" "$(tree_line "$T_TMP/c.rop" /kid)"
expect_match "the restore counts parent, child and the new /ro2 as created" '"created": 3' "$OUT"

t_done
