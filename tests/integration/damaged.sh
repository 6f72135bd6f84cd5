#!/bin/bash
# Damaged snapshots: a flipped byte, a truncated archive, a changed value with
# a matching archive checksum, a missing archive. verify says which snapshot
# is damaged; restore refuses before it touches the server (which stays
# empty).
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

zk_start src || exit 1
PA=$ZK_PORT
zk_start dst || exit 1
PB=$ZK_PORT
S=$T_TMP/store
N=zk-127.0.0.1-$PA

zk_py "$PA" "$(cat <<'PY'
import random
rnd = random.Random(7)
zk.create('/data')
for i in range(200):
    # incompressible values, so that the archive is large and a byte in its
    # middle lies inside the compressed values
    zk.create('/data/n%03d' % i, bytes(rnd.getrandbits(8) for _ in range(1000)))
zk.create('/marker', b'MARKER-VALUE-0123456789')
PY
)" || { not_ok "fixture could not be created"; exit 1; }

backup() {  # backup [ARGS]: prints the new snapshot ID
    "$BURRY" backup "zk://127.0.0.1:$PA" "$S" --json "$@" 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"])'
}
GOOD=$(backup)
FLIP=$(backup)
TRUNC=$(backup)
GONE=$(backup)
INNER=$(backup --compress none)
for v in GOOD FLIP TRUNC GONE INNER; do
    [ -n "${!v}" ] || { not_ok "backup $v failed"; exit 1; }
done
run_burry verify "$S" --all
expect_eq "verify --all passes before any damage" 0 "$RC"

EMPTY=$(zk_tree "$PB")
# target_untouched NAME: the target server still holds only what it started with
target_untouched() { expect_eq "$1" "$EMPTY" "$(zk_tree "$PB")"; }

# --- a flipped byte in the middle of the archive ---
/usr/bin/python3 - "$S/$N/$FLIP.tar.zst" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x55
open(p, 'wb').write(b)
PY
run_burry verify "$S" --snapshot "$FLIP"
expect_eq "flipped byte: verify exits 1" 1 "$RC"
expect_match "flipped byte: verify names the damaged snapshot" "$FLIP.*damaged|damaged.*$FLIP|$FLIP +.*DAMAGED" "$OUT$ERR"
run_burry verify "$S" --snapshot "$FLIP" --json
expect_eq "flipped byte: verify --json says not ok" "$FLIP False" "$(jget 'd["snapshots"][0]["id"] + " " + str(d["snapshots"][0]["ok"])')"
run_burry restore "zk://127.0.0.1:$PB" "$S" --snapshot "$FLIP"
expect_eq "flipped byte: restore exits 1" 1 "$RC"
expect_match "flipped byte: restore refuses and says why" "(refus|damaged).*$FLIP|$FLIP.*(refus|damaged)" "$ERR"
target_untouched "flipped byte: the target server was not touched"

# --- a truncated archive ---
A=$S/$N/$TRUNC.tar.zst
truncate -s $(($(stat -c %s "$A") / 2)) "$A"
run_burry verify "$S" --snapshot "$TRUNC"
expect_eq "truncated archive: verify exits 1" 1 "$RC"
expect_match "truncated archive: verify names the snapshot" "$TRUNC" "$OUT$ERR"
run_burry restore "zk://127.0.0.1:$PB" "$S" --snapshot "$TRUNC"
expect_eq "truncated archive: restore exits 1" 1 "$RC"
expect_match "truncated archive: restore refuses, naming the snapshot" "$TRUNC" "$ERR"
target_untouched "truncated archive: the target server was not touched"

# --- a changed value whose archive checksum was updated to match: the
# checksums inside the archive (@meta sha256, nodes_sha256) catch it ---
A=$S/$N/$INNER.tar
/usr/bin/python3 - "$A" "$S/$N/$INNER.json" <<'PY'
import hashlib, json, sys
a, m = sys.argv[1], sys.argv[2]
b = open(a, 'rb').read()
i = b.index(b'MARKER-VALUE-0123456789')
b = b[:i] + b'X' + b[i + 1:]
open(a, 'wb').write(b)
doc = json.load(open(m))
doc['archive']['sha256'] = hashlib.sha256(b).hexdigest()
open(m, 'w').write(json.dumps(doc, indent=2, sort_keys=True) + '\n')
PY
run_burry verify "$S" --snapshot "$INNER"
expect_eq "changed value with a matching archive checksum: verify exits 1" 1 "$RC"
expect_match "changed value: verify names the snapshot" "$INNER" "$OUT$ERR"
run_burry restore "zk://127.0.0.1:$PB" "$S" --snapshot "$INNER"
expect_eq "changed value: restore exits 1" 1 "$RC"
expect_match "changed value: the message names the damaged node or checksum" '(/marker|marker|sha256|checksum)' "$ERR"
target_untouched "changed value: the target server was not touched"

# --- the archive is gone, the manifest is still there ---
rm -f "$S/$N/$GONE.tar.zst"
run_burry verify "$S" --snapshot "$GONE"
expect_eq "missing archive: verify exits 1" 1 "$RC"
expect_match "missing archive: verify says it is missing" "(missing|no such|not found)" "$OUT$ERR"
expect_match "missing archive: verify names the snapshot" "$GONE" "$OUT$ERR"
run_burry restore "zk://127.0.0.1:$PB" "$S" --snapshot "$GONE"
expect_eq "missing archive: restore exits 1" 1 "$RC"
expect_match "missing archive: restore says the archive is missing" "(missing|no such|not found)" "$ERR"
target_untouched "missing archive: the target server was not touched"

# --- verify --all reports each snapshot; the good one stays usable ---
run_burry verify "$S" --all --json
expect_eq "verify --all exits 1 when any snapshot is damaged" 1 "$RC"
expect_eq "verify --all: one verdict per snapshot" \
    "$GOOD:True $FLIP:False $TRUNC:False $GONE:False $INNER:False" \
    "$(jget '" ".join(s["id"] + ":" + str(s["ok"]) for s in d["snapshots"])')"
run_burry verify "$S" --all
expect_match "verify --all (human) marks the damaged ones" "$FLIP +.*DAMAGED" "$OUT"
expect_match "verify --all (human) marks the good one ok" "$GOOD +.*ok" "$OUT"
run_burry restore "zk://127.0.0.1:$PB" "$S" --snapshot "$GOOD" --json
expect_eq "the intact snapshot still restores" "0 202" "$RC $(jget 'd["created"]')"

# --- the published manifest ID.json edited: it must be the archive's
# manifest.json plus "archive"; verify and restore compare the two ---
SIDE=$T_TMP/side
run_burry backup "zk://127.0.0.1:$PA" "$SIDE" --json
SID=$(jget 'd["snapshot"]')
SJ=$SIDE/$N/$SID.json
cp "$SJ" "$T_TMP/side.json"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["nodes"] = 5; open(sys.argv[1], "w").write(json.dumps(d, indent=2, sort_keys=True) + "\n")' "$SJ"
run_burry verify "$SIDE" --snapshot "$SID"
expect_eq "sidecar with another node count: verify exits 1" 1 "$RC"
expect_match "... saying the two manifests disagree on 'nodes'" "$SID.*disagree on 'nodes'" "$OUT$ERR"
zk_py "$PB" "zk.delete('/marker')" || not_ok "/marker could not be deleted on the target"
BEFORE=$(zk_tree "$PB")
run_burry restore "zk://127.0.0.1:$PB" "$SIDE" --snapshot "$SID"
expect_eq "... and restore refuses it" 1 "$RC"
expect_eq "... without touching the target server" "$BEFORE" "$(zk_tree "$PB")"
cp "$T_TMP/side.json" "$SJ"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["service"] = "etcd"; open(sys.argv[1], "w").write(json.dumps(d, indent=2, sort_keys=True) + "\n")' "$SJ"
run_burry verify "$SIDE" --all --json
expect_eq "sidecar naming another service: verify --all says not ok" "1 False" "$RC $(jget 'd["snapshots"][0]["ok"]')"
run_burry restore "etcd://127.0.0.1:1" "$SIDE" --snapshot "$SID"
expect_eq "... and a restore into that service is refused" 1 "$RC"
expect_match "... before connecting, because the archive's manifest says zookeeper" "disagree on 'service'.*\"zookeeper\"" "$ERR"
cp "$T_TMP/side.json" "$SJ"
run_burry verify "$SIDE" --snapshot "$SID"
expect_eq "the sidecar as written verifies" 0 "$RC"

# --- verify --all with nothing to verify is not a success ---
run_burry verify "$T_TMP/no-such-store" --all
expect_eq "verify --all of a store that does not exist: exit 1" 1 "$RC"
expect_match "... saying there are no snapshots" "no snapshots in" "$ERR"
mkdir -p "$T_TMP/empty-store"
run_burry verify "$T_TMP/empty-store" --all --json
expect_eq "verify --all of an empty store: exit 1" 1 "$RC"
expect_match "... saying there are no snapshots" "no snapshots in" "$ERR"

t_done
