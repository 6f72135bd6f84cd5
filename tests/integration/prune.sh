#!/bin/bash
# Retention: burry prune keeps the newest N snapshots of each name and
# deletes the rest (manifest and archive); --dry-run deletes nothing;
# backup --keep N prunes after a successful backup; encrypted snapshots are
# pruned without their key.
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/zk.sh"
t_tmpdir

zk_start a || exit 1
SRC=zk://127.0.0.1:$ZK_PORT
zk_py "$ZK_PORT" "zk.create('/x', b'1')"
S=$T_TMP/store

ids_of() { run_burry ls "$S" --name "$1" --json; jget '" ".join(s["id"] for s in d["snapshots"])'; }

for i in 1 2 3 4; do run_burry backup "$SRC" "$S" --name alpha --json; done
for i in 1 2; do run_burry backup "$SRC" "$S" --name beta --json; done
age-keygen -o "$T_TMP/k" 2>/dev/null
for i in 1 2 3; do run_burry backup "$SRC" "$S" --name sealed --encrypt-to "$(age-keygen -y "$T_TMP/k")" --json; done
ALPHA=$(ids_of alpha)
expect_eq "four snapshots of alpha to start with" 4 "$(echo $ALPHA | wc -w)"
NEWEST2=$(echo $ALPHA | cut -d' ' -f3-)

run_burry prune "$S" --keep 2 --dry-run --json
expect_eq "prune --dry-run exits 0" 0 "$RC"
expect_eq "prune --dry-run names what it would delete (2 alpha + 1 sealed)" 3 "$(jget 'len(d["deleted"])')"
expect_eq "prune --dry-run deletes nothing" "$ALPHA" "$(ids_of alpha)"

run_burry prune "$S" --keep 2 --name alpha
expect_eq "prune --name alpha exits 0" 0 "$RC"
expect_match "prune says what it deleted" 'deleted 2 snapshots' "$OUT"
expect_eq "alpha keeps its newest two" "$NEWEST2" "$(ids_of alpha)"
expect_eq "beta is untouched by --name alpha" 2 "$(ids_of beta | wc -w)"
expect_eq "sealed is untouched by --name alpha" 3 "$(ids_of sealed | wc -w)"
OLD=$(echo $ALPHA | cut -d' ' -f1)
expect_eq "no file of a pruned snapshot is left" "" "$(ls "$S/alpha" | grep -F "$OLD")"

run_burry prune "$S" --keep 2
expect_eq "prune of every name exits 0" 0 "$RC"
expect_eq "an encrypted snapshot is pruned without its key" 2 "$(ids_of sealed | wc -w)"
expect_eq "beta already had two" 2 "$(ids_of beta | wc -w)"
expect_eq "each pruned snapshot left its archive and manifest behind in pairs" 0 $(( $(ls "$S/sealed" | wc -l) % 2 ))

run_burry backup "$SRC" "$S" --name beta --keep 1 --json
expect_eq "backup --keep 1 exits 0" 0 "$RC"
NEW=$(jget 'd["snapshot"]')
expect_eq "backup --keep 1 leaves only the new snapshot" "$NEW" "$(ids_of beta)"
run_burry restore "zk://127.0.0.1:$ZK_PORT" "$S" --name beta --dry-run --json
expect_eq "the kept snapshot still restores" 0 "$RC"

run_burry prune "$S" --keep 0
expect_eq "--keep 0 is a usage error" 2 "$RC"
run_burry prune "$S"
expect_eq "prune without --keep is a usage error" 2 "$RC"
run_burry prune "$T_TMP/empty-store" --keep 3 --json
expect_eq "prune of an empty store deletes nothing" "0 0" "$RC $(jget 'len(d["deleted"])')"

# --- a damaged snapshot neither blocks, counts nor goes ---
# gamma: four snapshots; the oldest sidecar is cut short, the newest one's
# archive is deleted
for i in 1 2 3 4; do run_burry backup "$SRC" "$S" --name gamma --json; done
G=$(ids_of gamma)
G1=$(echo $G | cut -d' ' -f1) G2=$(echo $G | cut -d' ' -f2) G3=$(echo $G | cut -d' ' -f3) G4=$(echo $G | cut -d' ' -f4)
echo '{"snapshot": "x' >"$S/gamma/$G1.json"
rm "$S/gamma/$G4.tar.zst"
run_burry ls "$S" --name gamma
expect_eq "ls of a store with a damaged sidecar exits 0" 0 "$RC"
expect_match "ls shows the damaged sidecar's snapshot marked DAMAGED" "$G1 .*DAMAGED" "$OUT"
expect_match "ls still lists the good ones" "$G2" "$OUT"
run_burry show "$S" --name gamma --snapshot "$G2"
expect_eq "show of a good snapshot beside a damaged sidecar exits 0" 0 "$RC"
run_burry restore "$SRC" "$S" --name gamma --snapshot "$G3" --dry-run
expect_eq "restore --snapshot of a good ID beside a damaged sidecar exits 0" 0 "$RC"
run_burry show "$S" --name gamma --snapshot "$G1"
expect_eq "show of the damaged one fails" 1 "$RC"
run_burry verify "$S" --name gamma --all
expect_eq "verify --all exits 1" 1 "$RC"
expect_match "verify --all names the damaged sidecar's snapshot DAMAGED" "$G1  gamma  DAMAGED" "$OUT"
expect_match "verify --all names the one without archive DAMAGED" "$G4  gamma  DAMAGED" "$OUT"
expect_match "verify --all still checks the good ones" "$G2  gamma  ok" "$OUT"
run_burry prune "$S" --name gamma --keep 2 --json
expect_eq "prune beside damaged snapshots exits 0" 0 "$RC"
expect_eq "prune deletes nothing: the two good ones are all it keeps" "" "$(jget '" ".join(s["id"] for s in d["deleted"])')"
expect_eq "prune reports both damaged snapshots" "$G4 $G1" "$(jget '" ".join(s["id"] for s in d["damaged"])')"
check "the damaged sidecar stays for an operator" test -f "$S/gamma/$G1.json"
check "the good snapshots stay" test -f "$S/gamma/$G2.tar.zst" -a -f "$S/gamma/$G3.tar.zst"
run_burry backup "$SRC" "$S" --name gamma --keep 2 --json
expect_eq "backup --keep 2 beside damaged snapshots exits 0" 0 "$RC"
G5=$(jget 'd["snapshot"]')
check "it deletes the oldest good one" test ! -e "$S/gamma/$G2.json"
check "it keeps the newest good one rather than the one without archive" test -f "$S/gamma/$G3.tar.zst"
run_burry restore "$SRC" "$S" --name gamma --dry-run --json
expect_eq "restore of latest picks the newest readable snapshot" "0 $G5" "$RC $(jget 'd["snapshot"]')"

# --- an ID in the future (a clock that was ahead once) ---
FUT=20301121T000000.000Z-0001
run_burry backup "$SRC" "$S" --name delta --json
D1=$(jget 'd["snapshot"]')
sed "s/$D1/$FUT/g" "$S/delta/$D1.json" >"$S/delta/$FUT.json"
cp "$S/delta/$D1.tar.zst" "$S/delta/$FUT.tar.zst"
run_burry ls "$S" --name delta
expect_match "ls warns about an ID later than now" "$FUT.*later than now" "$ERR"
run_burry backup "$SRC" "$S" --name delta --keep 1 --json
expect_eq "backup --keep 1 beside a future ID exits 0" 0 "$RC"
D2=$(jget 'd["snapshot"]')
expect_eq "it keeps the snapshot it just wrote" "$D2" "$(ids_of delta)"
expect_match "and warned about the future ID" "later than now" "$ERR"

t_done
