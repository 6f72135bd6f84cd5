#!/bin/bash
# The Azure Blob store against azurite, which checks Shared Key signatures:
# backup with --create-bucket, ls/show/verify, restore into a second
# ZooKeeper, a multi-block upload read back by an independent client and
# extracted by tar, a wrong key, a missing container, missing credentials,
# a connection string, prune, and no key in any output.
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/zk.sh"
. "$(dirname "$0")/../lib/azurite.sh"
t_tmpdir

azurite_start a || { not_ok "azurite starts"; exit 1; }
zk_start src || exit 1
PA=$ZK_PORT
zk_start dst || exit 1
PB=$ZK_PORT

export AZURE_STORAGE_KEY=$AZURE_TEST_KEY
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT
EP=(--endpoint-url "$AZURITE_ENDPOINT")
C=backups
U=azure://devstoreaccount1/$C/site-a
ALL=$T_TMP/all-output   # every stdout and stderr, searched for the key at the end

az() { run_burry "$@"; printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL"; }

zk_py "$PA" "$(cat <<'PY'
zk.create('/app', b'inner data')
zk.create('/app/config', b'{"threads": 4}')
zk.create('/app/config/limits', b'max_clients=10\n')
zk.create('/nulldata', None)
zk.create('/empty', b'')
zk.create('/bin', bytes(range(256)))
zk.create('/names')
for n in ['content', '@meta', '%41', 'with space', 'ünïcødé ✓']:
    zk.create('/names/' + n, n.encode())
PY
)" 2>/dev/null || { not_ok "fixture could not be created"; exit 1; }
zk_tree "$PA" >"$T_TMP/a.tree"
NODES=$(wc -l <"$T_TMP/a.tree")

# --- a missing container is not created without --create-bucket ---
az backup "zk://127.0.0.1:$PA" "$U" "${EP[@]}" --json
expect_eq "backup to a missing container exits 1" 1 "$RC"
expect_match "missing container: clear message" "container does not exist.*--create-bucket" "$ERR"
run_prog azurite_py "
try:
    az.list_blobs('$C'); print('exists')
except AzError as e:
    print(e.status)"
expect_eq "the container was not created" 404 "$OUT"
az ls "$U" "${EP[@]}"
expect_eq "ls of a missing container exits 1" 1 "$RC"
expect_match "ls of a missing container: clear message" "container does not exist" "$ERR"

# --- backup, ls, show, verify ---
az backup "zk://127.0.0.1:$PA" "$U" "${EP[@]}" --create-bucket --json
expect_eq "backup with --create-bucket exits 0" 0 "$RC"
[ "$RC" -eq 0 ] || echo "# backup stderr: $ERR"
ID=$(jget 'd["snapshot"]')
expect_match "backup JSON names a snapshot" '^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{4}$' "$ID"
expect_eq "backup counts every node" "$NODES" "$(jget 'd["nodes"]')"
NAME=zk-127.0.0.1-$PA
run_prog azurite_py "print(' '.join(sorted(az.list_blobs('$C'))))"
expect_eq "the snapshot is an archive and a manifest under the prefix" \
    "site-a/$NAME/$ID.json site-a/$NAME/$ID.tar.zst" "$OUT"

az ls "$U" "${EP[@]}" --json
expect_eq "ls exits 0" 0 "$RC"
expect_eq "ls lists the snapshot" "$ID" "$(jget '" ".join(s["id"] for s in d["snapshots"])')"
az show "$U" "${EP[@]}" --snapshot latest
expect_eq "show latest exits 0" 0 "$RC"
expect_match "show names the snapshot" "snapshot: +$ID" "$OUT"
az verify "$U" "${EP[@]}" --all
expect_eq "verify --all exits 0" 0 "$RC"
expect_match "verify says ok" "$ID .* ok" "$OUT"
az show "$U" "${EP[@]}" --snapshot 20200101T000000.000Z-0000
expect_eq "show of an unknown snapshot exits 1" 1 "$RC"

# --- restore into the second server ---
az restore "zk://127.0.0.1:$PB" "$U" "${EP[@]}" --json
expect_eq "restore exits 0" 0 "$RC"
expect_eq "restore created every node but the root" $((NODES - 1)) "$(jget 'd["created"]')"
zk_tree "$PB" >"$T_TMP/b.tree"
if cmp -s "$T_TMP/a.tree" "$T_TMP/b.tree"; then
    ok "restored tree equals the source (kazoo, data and ACLs)"
else
    not_ok "restored tree equals the source: $(diff "$T_TMP/a.tree" "$T_TMP/b.tree" | head -5 | cut -c1-160 | tr '\n' '|')"
fi

# --- a multi-block upload: ~12 MB of random values, 5 MiB blocks ---
zk_py "$PA" "$(cat <<'PY'
import os
zk.create('/big')
for i in range(12):
    zk.create('/big/n%02d' % i, os.urandom(1000000))
PY
)" 2>/dev/null
az backup "zk://127.0.0.1:$PA" "$U" "${EP[@]}" --name big --part-size 5 --json
expect_eq "multi-block backup exits 0" 0 "$RC"
[ "$RC" -eq 0 ] || echo "# backup stderr: $ERR"
BID=$(jget 'd["snapshot"]')
az show "$U" "${EP[@]}" --name big --snapshot "$BID" --json
SIZE=$(jget 'd["archive"]["size"]') SHA=$(jget 'd["archive"]["sha256"]')
run_prog azurite_py "
import hashlib
name = 'site-a/big/$BID.tar.zst'
data = az.get_blob('$C', name)
open('$T_TMP/big.tar.zst', 'wb').write(data)
st, hd, body = az.request('GET', '$C/' + name, {'comp': 'blocklist'})
print(len(data), hashlib.sha256(data).hexdigest(), body.count(b'<Block>'))"
expect_eq "the committed blob has the size and sha256 of the manifest" "$SIZE $SHA" "${OUT% *}"
expect_eq "the blob was committed from 3 blocks of 5 MiB" 3 "${OUT##* }"
mkdir -p "$T_TMP/x"
check "tar extracts the blob downloaded by another client" tar -xf "$T_TMP/big.tar.zst" -C "$T_TMP/x"
expect_eq "the extracted tree holds the 12 big values" 12 \
    "$(find "$T_TMP/x" -path '*big/n*' -type f -size +900k | wc -l)"
az verify "$U" "${EP[@]}" --name big --snapshot "$BID"
expect_eq "verify of the multi-block snapshot (ranged reads) exits 0" 0 "$RC"

# --- a wrong key ---
BEFORE=$(azurite_py "print(len(az.list_blobs('$C')))")
WRONG=$(head -c 64 /dev/urandom | base64 -w0)
AZURE_STORAGE_KEY=$WRONG az backup "zk://127.0.0.1:$PA" "$U" "${EP[@]}"
expect_eq "backup with a wrong key exits 1" 1 "$RC"
expect_match "wrong key: clear 403 message" "403.*check the account key" "$ERR"
if printf '%s' "$OUT$ERR" | grep -qF -- "$WRONG"; then not_ok "wrong key: the key is not in the message"; else ok "wrong key: the key is not in the message"; fi
AZURE_STORAGE_KEY=$WRONG az ls "$U" "${EP[@]}"
expect_eq "ls with a wrong key exits 1" 1 "$RC"
expect_match "ls with a wrong key: clear 403 message" "access denied.*403.*check the account key" "$ERR"
expect_eq "nothing was added by the failed backup" "$BEFORE" "$(azurite_py "print(len(az.list_blobs('$C')))")"
az ls "$U" "${EP[@]}" --json
expect_eq "ls lists only the two good snapshots after the failed backup" 2 "$(jget 'len(d["snapshots"])')"

# --- a backup failing after its blocks went up leaves nothing listed ---
zk_py "$PA" "zk.ensure_path('/zzz/1/2/3/4'); zk.create('/zzz/1/2/3/4/locked', b'x', acl=[make_acl('world', 'anyone', create=True)])" 2>/dev/null
az backup "zk://127.0.0.1:$PA" "$U" "${EP[@]}" --name aborted --part-size 1
expect_eq "a backup failing on an unreadable node deep down exits 1" 1 "$RC"
run_prog azurite_py "
st, hd, body = az.request('GET', '$C', {'restype': 'container', 'comp': 'list', 'include': 'uncommittedblobs',
                                        'prefix': 'site-a/aborted/'})
print(body.count(b'<Blob>') if st == 200 else st)"
expect_eq "its staged blocks were discarded (no uncommitted blob left)" 0 "$OUT"
expect_eq "nothing of the failed backup is visible" "$BEFORE" "$(azurite_py "print(len(az.list_blobs('$C')))")"
az ls "$U" "${EP[@]}" --name aborted --json
expect_eq "ls lists nothing of the failed backup" 0 "$(jget 'len(d["snapshots"])')"
zk_py "$PA" "zk.delete('/zzz/1/2/3/4/locked'); zk.delete('/zzz', recursive=True)" 2>/dev/null

# --- credentials ---
AZURE_STORAGE_KEY= az ls "$U" "${EP[@]}"
expect_eq "no key: usage error (exit 2)" 2 "$RC"
expect_match "no key: the message names the variables" "AZURE_STORAGE_KEY.*AZURE_STORAGE_CONNECTION_STRING" "$ERR"
AZURE_STORAGE_KEY=not-base64! az ls "$U" "${EP[@]}"
expect_eq "a key that is not base64: usage error" 2 "$RC"
CS="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURE_TEST_KEY;BlobEndpoint=$AZURITE_ENDPOINT;"
AZURE_STORAGE_KEY= AZURE_STORAGE_CONNECTION_STRING=$CS az ls "$U" --json
expect_eq "a connection string gives key and endpoint" "0 2" "$RC $(jget 'len(d["snapshots"])')"
AZURE_STORAGE_KEY= AZURE_STORAGE_CONNECTION_STRING=$CS az ls azure://otheraccount/$C
expect_eq "a connection string for another account: usage error" 2 "$RC"
az ls azure://devstoreaccount1/Bad_Name "${EP[@]}"
expect_eq "an invalid container name: usage error" 2 "$RC"

# --- prune ---
for i in 1 2 3; do az backup "zk://127.0.0.1:$PA" "$U" "${EP[@]}" --name pruned --json; done
LAST=$(jget 'd["snapshot"]'); [ "$RC" -eq 0 ] || echo "# backup stderr: $ERR"
az prune "$U" "${EP[@]}" --keep 1 --name pruned -v
expect_eq "prune --keep 1 exits 0" 0 "$RC"
az ls "$U" "${EP[@]}" --name pruned --json
expect_eq "prune keeps the newest" "$LAST" "$(jget '" ".join(s["id"] for s in d["snapshots"])')"
run_prog azurite_py "print(' '.join(sorted(az.list_blobs('$C', prefix='site-a/pruned/'))))"
expect_eq "prune deleted the other archives and manifests" \
    "site-a/pruned/$LAST.json site-a/pruned/$LAST.tar.zst" "$OUT"

# --- the key never shows ---
if grep -qF -- "$AZURE_TEST_KEY" "$ALL"; then
    not_ok "the account key appears in no output"
else
    ok "the account key appears in no output ($(wc -l <"$ALL") lines searched)"
fi

t_done
