#!/bin/bash
# Restore semantics against a target that already holds data: create-only by
# default (existing nodes untouched), --overwrite sets data and ACLs of
# differing nodes, nothing is ever deleted, --dry-run changes nothing and
# says what it would do, --path restores one subtree, --into moves it.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

zk_start src || exit 1
PA=$ZK_PORT
zk_start dst || exit 1
PB=$ZK_PORT
zk_start third || exit 1
PC=$ZK_PORT
S=$T_TMP/store
SRC=zk://127.0.0.1:$PA
DST=zk://127.0.0.1:$PB

zk_py "$PA" "$(cat <<'PY'
zk.create('/r', b'R')
zk.create('/r/a', b'A1')
zk.create('/r/a/x', b'X1')
zk.create('/r/b', b'B1')
zk.create('/r/c', b'C1')
zk.create('/r/c/deep', b'D1')
zk.create('/r/c/deep/er', b'E1', acl=[make_acl('world', 'anyone', read=True, write=True, admin=True)])
PY
)" || { not_ok "source fixture could not be created"; exit 1; }
run_burry backup "$SRC" "$S" --json
expect_eq "backup exits 0" 0 "$RC"
ID=$(jget 'd["snapshot"]')

# the target holds part of the tree already: /r/a differs, /r/b is equal,
# /extra and /r/extra exist only there
zk_py "$PB" "$(cat <<'PY'
zk.create('/r', b'R')
zk.create('/r/a', b'CHANGED ON TARGET')
zk.create('/r/b', b'B1')
zk.create('/r/extra', b'only on the target')
zk.create('/extra', b'keep me')
PY
)" || { not_ok "target fixture could not be created"; exit 1; }
zk_tree "$PB" >"$T_TMP/before.tree"

# --- dry run: the plan, and no change ---
run_burry restore "$DST" "$S" --dry-run
expect_eq "dry run exits 0" 0 "$RC"
expect_match "dry run plans to create a missing node" '^create +/r/c$' "$OUT"
expect_match "dry run plans to create a missing child of an existing node" '^create +/r/a/x$' "$OUT"
expect_match "dry run reports an equal existing node" '^exists-same +/r/b$' "$OUT"
expect_match "dry run reports a differing existing node" '^exists-different +/r/a( |$)' "$OUT"
expect_no_match "dry run does not plan to touch target-only nodes" '/extra' "$OUT"
zk_tree "$PB" >"$T_TMP/after-dry.tree"
check "dry run changes nothing on the target" cmp -s "$T_TMP/before.tree" "$T_TMP/after-dry.tree"
run_burry restore "$DST" "$S" --dry-run --json
expect_eq "dry run --json exits 0" 0 "$RC"
expect_eq "dry run --json: would create 4 (/r/a/x, /r/c, /r/c/deep, /r/c/deep/er)" 4 "$(jget 'd["created"]')"
expect_eq "dry run --json: 4 exist (/, /r, /r/a, /r/b)" 4 "$(jget 'd["existing"]')"
expect_eq "dry run --json: overwrites nothing" 0 "$(jget 'd["overwritten"]')"
expect_eq "dry run --json: says it is a dry run" True "$(jget 'd["dry_run"]')"
run_burry restore "$DST" "$S" --dry-run --overwrite --json
expect_eq "dry run --overwrite: would overwrite /r/a only" 1 "$(jget 'd["overwritten"]')"
expect_eq "dry run --overwrite: would create 4" 4 "$(jget 'd["created"]')"
zk_tree "$PB" >"$T_TMP/after-dry2.tree"
check "dry run --overwrite changes nothing on the target" cmp -s "$T_TMP/before.tree" "$T_TMP/after-dry2.tree"

# --- create-only restore ---
run_burry restore "$DST" "$S" --json
expect_eq "restore exits 0" 0 "$RC"
expect_eq "restore JSON: created" 4 "$(jget 'd["created"]')"
expect_eq "restore JSON: existing" 4 "$(jget 'd["existing"]')"
expect_eq "restore JSON: overwritten" 0 "$(jget 'd["overwritten"]')"
expect_eq "restore JSON: failed" 0 "$(jget 'd["failed"]')"
zk_tree "$PB" >"$T_TMP/b1.tree"
expect_eq "create-only leaves a differing existing node untouched" \
    "$(tree_line "$T_TMP/before.tree" /r/a)" "$(tree_line "$T_TMP/b1.tree" /r/a)"
expect_eq "create-only creates the missing child of an existing node" \
    "$(printf '"/r/a/x"\tpersistent\thex:5831\tworld:anyone:cdrwa')" "$(tree_line "$T_TMP/b1.tree" /r/a/x)"
expect_eq "create-only creates a missing subtree with its ACL" \
    "$(printf '"/r/c/deep/er"\tpersistent\thex:4531\tworld:anyone:rwa')" "$(tree_line "$T_TMP/b1.tree" /r/c/deep/er)"
expect_eq "nothing deleted: /extra" "$(tree_line "$T_TMP/before.tree" /extra)" "$(tree_line "$T_TMP/b1.tree" /extra)"
expect_eq "nothing deleted: /r/extra" "$(tree_line "$T_TMP/before.tree" /r/extra)" "$(tree_line "$T_TMP/b1.tree" /r/extra)"
run_burry restore "$DST" "$S"
expect_eq "human restore exits 0" 0 "$RC"
expect_match "human summary gives the counts" '0 created, 8 existing' "$OUT"

# --- --overwrite: data and ACLs of differing nodes are set ---
zk_py "$PB" "zk.set('/r/c/deep', b'D changed')" \
    "zk.set_acls('/r/c/deep/er', [make_acl('world', 'anyone', all=True)])" || not_ok "target could not be changed"
run_burry restore "$DST" "$S" --overwrite --json
expect_eq "--overwrite exits 0" 0 "$RC"
expect_eq "--overwrite counts the 3 differing nodes (/r/a data, /r/c/deep data, /r/c/deep/er ACL)" 3 "$(jget 'd["overwritten"]')"
expect_eq "--overwrite counts identical nodes as existing" 5 "$(jget 'd["existing"]')"
expect_eq "--overwrite creates nothing here" 0 "$(jget 'd["created"]')"
zk_tree "$PB" >"$T_TMP/b2.tree"
zk_tree "$PA" >"$T_TMP/a.tree"
for p in /r/a /r/c/deep /r/c/deep/er /r/b; do
    expect_eq "--overwrite: $p equals the snapshot (data and ACL)" "$(tree_line "$T_TMP/a.tree" "$p")" "$(tree_line "$T_TMP/b2.tree" "$p")"
done
expect_eq "--overwrite deletes nothing: /extra" "$(tree_line "$T_TMP/before.tree" /extra)" "$(tree_line "$T_TMP/b2.tree" /extra)"
expect_eq "--overwrite deletes nothing: /r/extra" "$(tree_line "$T_TMP/before.tree" /r/extra)" "$(tree_line "$T_TMP/b2.tree" /r/extra)"
run_burry restore "$DST" "$S" --overwrite --json
expect_eq "second --overwrite overwrites nothing" "0 8" "$(jget 'str(d["overwritten"]) + " " + str(d["existing"])')"

# --- --path: one subtree only, into a fresh server ---
run_burry restore "zk://127.0.0.1:$PC" "$S" --path /r/c --json
expect_eq "--path into an empty server exits 0" 0 "$RC"
[ "$RC" -eq 0 ] || echo "# stderr: $ERR"
zk_tree "$PC" >"$T_TMP/c.tree"
expect_eq "--path restores the subtree" "$(tree_line "$T_TMP/a.tree" /r/c/deep/er)" "$(tree_line "$T_TMP/c.tree" /r/c/deep/er)"
expect_eq "--path restores the subtree's root with its data" "$(tree_line "$T_TMP/a.tree" /r/c)" "$(tree_line "$T_TMP/c.tree" /r/c)"
expect_eq "--path restores nothing outside the subtree" "<absent> <absent>" \
    "$(tree_line "$T_TMP/c.tree" /r/a) $(tree_line "$T_TMP/c.tree" /r/b)"
run_burry restore "zk://127.0.0.1:$PC" "$S" --path /r/a --dry-run --json
expect_eq "--path with --dry-run counts only the subtree" 2 "$(jget 'd["created"]')"
zk_tree "$PC" >"$T_TMP/c-before.tree"
run_burry restore "zk://127.0.0.1:$PC" "$S" --path /no/such/path
expect_eq "--path not in the snapshot: exit 1" 1 "$RC"
expect_match "--path not in the snapshot: named" '/no/such/path' "$ERR"
run_burry restore "zk://127.0.0.1:$PC" "$S" --path /no/such/path --into /elsewhere/below
expect_eq "--path not in the snapshot, with --into: exit 1" 1 "$RC"
zk_tree "$PC" >"$T_TMP/c-after.tree"
check "--path not in the snapshot: nothing is created (no parents either)" cmp -s "$T_TMP/c-before.tree" "$T_TMP/c-after.tree"
run_burry restore "zk://127.0.0.1:$PC" "$S" --path /r/c/de
expect_eq "--path matches whole names only (/r/c/de is not /r/c/deep)" 1 "$RC"

# --- --path without --into: the parents of the subtree that are missing
# come from the snapshot, with their data and ACL, created only if missing ---
zk_py "$PA" "zk.create('/sec', b'S', acl=[make_acl('world', 'anyone', read=True, create=True, delete=True, admin=True)])" \
    "zk.create('/sec/child', b'C')" || not_ok "/sec could not be created"
run_burry backup "$SRC" "$T_TMP/sec" --name zk2 --json
expect_eq "backup with /sec exits 0" 0 "$RC"
zk_py "$PA" "zk.delete('/sec/child')" "zk.delete('/sec')" || not_ok "/sec could not be deleted"
run_burry restore "$SRC" "$T_TMP/sec" --name zk2 --path /sec/child --dry-run
expect_match "--path /sec/child --dry-run plans to create the missing parent /sec" '^create +/sec$' "$OUT"
expect_no_match "... and not the root, which a restore never creates" '^create +/$' "$OUT"
run_burry restore "zk://127.0.0.1:$PA/no-such-chroot" "$T_TMP/sec" --name zk2 --path /sec/child --dry-run
expect_no_match "--path into a chroot that does not exist: the plan does not create the chroot" '^create +/$' "$OUT"
run_burry restore "$SRC" "$T_TMP/sec" --name zk2 --path /sec/child --json
expect_eq "--path /sec/child after /sec was deleted: exit 0, /sec and /sec/child created" "0 2" \
    "$RC $(jget 'd["created"]')"
zk_tree "$PA" >"$T_TMP/sec.tree"
expect_eq "... /sec comes back with its data and ACL from the snapshot, not empty and open" \
    "$(printf '"/sec"\tpersistent\thex:53\tworld:anyone:cdra')" "$(tree_line "$T_TMP/sec.tree" /sec)"
expect_eq "... and /sec/child with its own" \
    "$(printf '"/sec/child"\tpersistent\thex:43\tworld:anyone:cdrwa')" "$(tree_line "$T_TMP/sec.tree" /sec/child)"
zk_py "$PC" "zk.set('/r', b'R changed')" || not_ok "/r could not be changed"
run_burry restore "zk://127.0.0.1:$PC" "$S" --path /r/a --overwrite --json
expect_eq "--path /r/a --overwrite exits 0" 0 "$RC"
expect_eq "... and leaves the existing parent /r as it is" \
    "$(printf '"/r"\tpersistent\thex:52206368616e676564\tworld:anyone:cdrwa')" "$(tree_line <(zk_tree "$PC") /r)"

# --- --into: under another prefix whose parents do not exist ---
run_burry restore "$DST" "$S" --path /r/c --into /copies/of/c --json
expect_eq "--into exits 0" 0 "$RC"
expect_eq "--into creates the subtree (3 nodes) and its 2 missing parents" 5 "$(jget 'd["created"]')"
zk_tree "$PB" --root /copies/of/c >"$T_TMP/into.tree"
zk_tree "$PA" --root /r/c >"$T_TMP/src-c.tree"
check "--into: the moved subtree equals the source subtree" cmp -s "$T_TMP/src-c.tree" "$T_TMP/into.tree"
zk_tree "$PB" >"$T_TMP/b3.tree"
expect_match "--into creates the missing parents" '^"/copies/of"' "$(tree_line "$T_TMP/b3.tree" /copies/of)"
expect_eq "--into leaves the original place alone" "$(tree_line "$T_TMP/b2.tree" /r/c)" "$(tree_line "$T_TMP/b3.tree" /r/c)"
run_burry restore "zk://127.0.0.1:$PC" "$S" --into /whole --json
expect_eq "--into without --path moves the whole tree" 0 "$RC"
expect_eq "--into without --path: deep node placed under the prefix" "$(tree_line "$T_TMP/a.tree" /r/c/deep/er | sed 's|"/r/c/deep/er"|"/whole/r/c/deep/er"|')" \
    "$(tree_line <(zk_tree "$PC") /whole/r/c/deep/er)"
run_burry restore "$DST" "$S" --into relative/prefix
expect_eq "--into with a relative path: exit 2" 2 "$RC"
run_burry restore "$DST" "$S" --path relative
expect_eq "--path with a relative path: exit 2" 2 "$RC"

# --- -v shows each node of a real restore ---
run_burry restore "$DST" "$S" -v
expect_eq "-v restore exits 0" 0 "$RC"
expect_match "-v restore lists the nodes" '/r/c/deep/er' "$OUT$ERR"

t_done
