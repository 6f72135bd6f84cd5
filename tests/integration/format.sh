#!/bin/bash
# The snapshot format with stock tools: tar extracts the archive (zstd, gzip,
# none) into tree/.../@data files equal to the values; sha256sum of the @meta
# files reproduces nodes_sha256; two backups of the same data are identical;
# IDs are unique and sort by time; latest and --name; the JSON of ls, show
# and verify.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

zk_start src || exit 1
P=$ZK_PORT
S=$T_TMP/store
NAME=zk-127.0.0.1-$P
mkdir -p "$T_TMP/values"

# the fixture also writes each value to a file, to compare with what tar extracts
zk_py "$P" "$(cat <<PY
V = '$T_TMP/values/'
vals = [
    ('app', '/app', b'inner data'),
    ('config', '/app/config', b'{"threads": 4}\n'),
    ('content', '/app/content', b'a child named content'),
    ('empty', '/empty', b''),
    ('bin', '/bin', bytes(range(256)) * 3),
    ('names', '/names', b'names'),
    ('atmeta', '/names/@meta', b'at-meta'),
    ('burrymeta', '/names/.burrymeta', b'dot-burrymeta'),
    ('percent', '/names/100%', b'percent'),
    ('colon', '/names/a:b c', b'colon and space'),
    ('utf8', '/names/\u00e9t\u00e9', b'utf-8'),
    ('long', '/names/' + 'L' * 300, b'long name'),
]
for label, p, v in vals:
    zk.create(p, v)
    open(V + label, 'wb').write(v)
zk.create('/nulldata', None)
PY
)" || { not_ok "fixture could not be created"; exit 1; }

extract() {  # extract ARCHIVE DIR: stock tar, nothing of burry
    rm -rf "$2" && mkdir -p "$2" && tar -xf "$1" -C "$2"
}

# --- default compression: zstd ---
run_burry backup "zk://127.0.0.1:$P" "$S" --json
expect_eq "backup exits 0" 0 "$RC"
ID1=$(jget 'd["snapshot"]')
NODES=$(jget 'd["nodes"]')
A1=$S/$NAME/$ID1.tar.zst
check "archive is NAME/ID.tar.zst" test -f "$A1"
check "published manifest is NAME/ID.json" test -f "$S/$NAME/$ID1.json"
expect_eq "store files have mode 0600" "600 600" "$(stat -c %a "$A1" "$S/$NAME/$ID1.json" | tr '\n' ' ' | sed 's/ $//')"
check "archive is zstd" sh -c "zstd -t -q '$A1'"
extract "$A1" "$T_TMP/x1"
expect_eq "tar extracts it (exit 0)" 0 $?
X=$T_TMP/x1/tree
for f in "$T_TMP"/values/*; do
    key=$(basename "$f")
    case $key in
        app) rel=app ;; config) rel=app/config ;; content) rel=app/content ;;
        empty) rel=empty ;; bin) rel=bin ;; names) rel=names ;;
        atmeta) rel=names/%40meta ;; burrymeta) rel=names/.burrymeta ;;
        percent) rel=names/100%25 ;; colon) rel=names/a%3Ab%20c ;;
        utf8) rel=names/%C3%A9t%C3%A9 ;;
        long) rel=names/$(printf 'L%.0s' $(seq 200))@/$(printf 'L%.0s' $(seq 100)) ;;
        *) not_ok "unexpected fixture value $key"; continue ;;
    esac
    check "extracted tree/$rel/@data equals the value" cmp -s "$f" "$X/$rel/@data"
done
check "null data has @meta and no @data" sh -c "test -f '$X/nulldata/@meta' && ! test -e '$X/nulldata/@data'"
check "empty data has an empty @data" sh -c "test -f '$X/empty/@data' && ! test -s '$X/empty/@data'"
check "the root is tree/ itself" test -f "$X/@meta"
check "no zookeeper directory" test ! -e "$X/zookeeper"
expect_eq "@meta files = nodes in the manifest" "$NODES" "$(find "$X" -name @meta | wc -l)"
META=$(cat "$X/app/@meta")
expect_eq "@meta holds the value's size" 10 "$(json_get "$META" 'd["size"]')"
expect_eq "@meta holds the value's sha256" "$(sha256sum <"$T_TMP/values/app" | cut -d' ' -f1)" "$(json_get "$META" 'd["sha256"]')"
expect_eq "@meta holds the ACL" "[{'id': 'anyone', 'perms': 'cdrwa', 'scheme': 'world'}]" "$(json_get "$META" 'd["attrs"]["acl"]')"
expect_eq "@meta holds the node type" persistent "$(json_get "$META" 'd["attrs"]["type"]')"
expect_eq "@meta of null data has size null" None "$(json_get "$(cat "$X/nulldata/@meta")" 'd["size"]')"
LIST=$(tar -tf "$A1")
expect_eq "manifest.json is the last entry" manifest.json "$(printf '%s\n' "$LIST" | tail -1)"
expect_eq "entries are in pre-order, @meta first" "tree/@meta" "$(printf '%s\n' "$LIST" | head -1)"
VLIST=$(tar --numeric-owner -tvf "$A1")
expect_no_match "every entry: mode 0644, owner 0/0, time 1970-01-01" '^!' \
    "$(printf '%s\n' "$VLIST" | sed -E 's/^-rw-r--r-- 0\/0 +[0-9]+ 1970-01-01 00:00 //; t; s/^/!/')"

# nodes_sha256 by hand, exactly as docs/FORMAT.md says
SUM=$(cd "$T_TMP/x1" && tar -tf "$A1" | grep '/@meta$' | xargs sha256sum | sha256sum | cut -d' ' -f1)
INNER=$(cat "$T_TMP/x1/manifest.json")
expect_eq "sha256sum of the @meta files = nodes_sha256 (inner manifest)" "$SUM" "$(json_get "$INNER" 'd["nodes_sha256"]')"
SIDE=$(cat "$S/$NAME/$ID1.json")
expect_eq "nodes_sha256 in the published manifest" "$SUM" "$(json_get "$SIDE" 'd["nodes_sha256"]')"
expect_eq "published manifest: archive sha256 = sha256sum of the file" "$(sha256sum "$A1" | cut -d' ' -f1)" "$(json_get "$SIDE" 'd["archive"]["sha256"]')"
expect_eq "published manifest: archive size = file size" "$(stat -c %s "$A1")" "$(json_get "$SIDE" 'd["archive"]["size"]')"
BAD=$(cd "$T_TMP/x1" && /usr/bin/python3 - <<'PY'
import json, hashlib, os
bad = []
for root, dirs, files in os.walk('tree'):
    if '@meta' in files:
        m = json.load(open(os.path.join(root, '@meta')))
        d = os.path.join(root, '@data')
        if m['sha256'] is None:
            if os.path.exists(d): bad.append(root)
        else:
            v = open(d, 'rb').read()
            if hashlib.sha256(v).hexdigest() != m['sha256'] or len(v) != m['size']: bad.append(root)
print(' '.join(bad) or 'none')
PY
)
expect_eq "every @data matches the sha256 and size in its @meta" none "$BAD"
expect_eq "manifest format" "burry-snapshot 1 zookeeper zstd" \
    "$(json_get "$INNER" '" ".join([d["format"], str(d["format_version"]), d["service"], d["compression"]])')"
expect_eq "manifest counts nodes" "$NODES" "$(json_get "$INNER" 'd["nodes"]')"
expect_eq "manifest bytes = sum of @data sizes" "$(find "$X" -name @data -printf '%s\n' | awk '{s+=$1} END {print s}')" "$(json_get "$INNER" 'd["bytes"]')"
expect_match "manifest created time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' "$(json_get "$INNER" 'd["created"]')"

# --- determinism: unchanged data, second backup ---
run_burry backup "zk://127.0.0.1:$P" "$S" --json
ID2=$(jget 'd["snapshot"]')
extract "$S/$NAME/$ID2.tar.zst" "$T_TMP/x2"
expect_eq "two backups of unchanged data: same nodes_sha256" "$(json_get "$INNER" 'd["nodes_sha256"]')" \
    "$(json_get "$(cat "$T_TMP/x2/manifest.json")" 'd["nodes_sha256"]')"
check "two backups of unchanged data: identical extracted trees" diff -r "$T_TMP/x1/tree" "$T_TMP/x2/tree"
check "two backups of unchanged data: identical tar entries" cmp -s \
    <(zstd -dc "$A1" | tar -tv --numeric-owner | grep -v manifest.json) \
    <(zstd -dc "$S/$NAME/$ID2.tar.zst" | tar -tv --numeric-owner | grep -v manifest.json)

# --- gzip and none ---
run_burry backup "zk://127.0.0.1:$P" "$S" --compress gzip --json
IDG=$(jget 'd["snapshot"]')
check "--compress gzip writes NAME/ID.tar.gz" test -f "$S/$NAME/$IDG.tar.gz"
check "gzip archive passes gzip -t" gzip -t "$S/$NAME/$IDG.tar.gz"
extract "$S/$NAME/$IDG.tar.gz" "$T_TMP/xg"
check "gzip archive extracts to the same tree" diff -r "$T_TMP/x1/tree" "$T_TMP/xg/tree"
expect_eq "gzip manifest says gzip" gzip "$(json_get "$(cat "$T_TMP/xg/manifest.json")" 'd["compression"]')"
run_burry backup "zk://127.0.0.1:$P" "$S" --compress none --json
IDN=$(jget 'd["snapshot"]')
check "--compress none writes NAME/ID.tar" test -f "$S/$NAME/$IDN.tar"
expect_match "uncompressed archive is a plain tar" 'tar archive' "$(file -b "$S/$NAME/$IDN.tar" 2>/dev/null || echo 'tar archive (file(1) missing)')"
extract "$S/$NAME/$IDN.tar" "$T_TMP/xn"
check "uncompressed archive extracts to the same tree" diff -r "$T_TMP/x1/tree" "$T_TMP/xn/tree"
run_burry verify "$S" --all --json
expect_eq "verify --all passes for zstd, gzip and none" "True True True True" \
    "$(jget '" ".join(str(s["ok"]) for s in d["snapshots"])')"

# --- IDs: unique for backups in the same second, sorted by time ---
"$BURRY" backup "zk://127.0.0.1:$P" "$S" --name twins --json >"$T_TMP/t1" 2>&1 &
p1=$!
"$BURRY" backup "zk://127.0.0.1:$P" "$S" --name twins --json >"$T_TMP/t2" 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
expect_eq "two concurrent backups both exit 0" "0 0" "$r1 $r2"
T1=$(json_get "$(cat "$T_TMP/t1")" 'd["snapshot"]' 2>/dev/null)
T2=$(json_get "$(cat "$T_TMP/t2")" 'd["snapshot"]' 2>/dev/null)
if [ -n "$T1" ] && [ "$T1" != "$T2" ]; then ok "IDs of two backups in the same second differ"; else not_ok "IDs of two backups in the same second differ ('$T1' '$T2')"; fi
run_burry backup "zk://127.0.0.1:$P" "$S" --name twins --json
T3=$(jget 'd["snapshot"]')
run_burry ls "$S" --name twins --json
expect_eq "ls --name lists the three backups of that name" 3 "$(jget 'len(d["snapshots"])')"
expect_eq "ls lists them in ID order" "$(printf '%s\n' "$T1" "$T2" "$T3" | LC_ALL=C sort | tr '\n' ' ')" "$(jget '" ".join(s["id"] for s in d["snapshots"]) + " "')"
expect_eq "the later backup has the greater ID" "$T3" "$(printf '%s\n' "$T1" "$T2" "$T3" | LC_ALL=C sort | tail -1)"
expect_eq "ls sorts by time too" True "$(jget '[s["time"] for s in d["snapshots"]] == sorted(s["time"] for s in d["snapshots"])')"

# --- ls JSON, --name filter, latest ---
run_burry ls "$S" --json
expect_eq "ls exits 0" 0 "$RC"
expect_eq "ls lists every snapshot of the store" 7 "$(jget 'len(d["snapshots"])')"
expect_eq "ls entries have id, name, service, time, nodes, bytes" True \
    "$(jget 'all({"id","name","service","time","nodes","bytes"} <= set(s) for s in d["snapshots"])')"
expect_eq "ls entry of the first backup" "$NAME zookeeper $NODES" \
    "$(jget '" ".join(str(x) for s in d["snapshots"] if s["id"] == "'"$ID1"'" for x in (s["name"], s["service"], s["nodes"]))')"
expect_eq "ls time is the manifest's created time" "$(json_get "$INNER" 'd["created"]')" \
    "$(jget '[s["time"] for s in d["snapshots"] if s["id"] == "'"$ID1"'"][0]')"
run_burry ls "$S" --name "$NAME" --json
expect_eq "ls --name filters by name" "4 $NAME" "$(jget 'str(len(d["snapshots"])) + " " + " ".join(set(s["name"] for s in d["snapshots"]))')"
run_burry ls "$S"
expect_eq "ls (human) exits 0" 0 "$RC"
expect_match "ls (human) shows IDs and names" "$T3 +twins" "$OUT"
run_burry show "$S" --snapshot latest --json
expect_eq "latest is the newest snapshot of the store" "$T3" "$(jget 'd["snapshot"]')"
run_burry show "$S" --snapshot latest --name "$NAME" --json
expect_eq "latest --name is the newest of that name" "$IDN" "$(jget 'd["snapshot"]')"
run_burry show "$S" --name "$NAME" --json
expect_eq "show without --snapshot means latest" "$IDN" "$(jget 'd["snapshot"]')"
run_burry show "$S" --snapshot "$ID1" --json
expect_eq "show exits 0" 0 "$RC"
expect_eq "show JSON is the published manifest" "$ID1 $NAME $NODES $(sha256sum "$A1" | cut -d' ' -f1)" \
    "$(jget '" ".join([d["snapshot"], d["name"], str(d["nodes"]), d["archive"]["sha256"]])')"
run_burry show "$S" --snapshot "$ID1"
expect_match "show (human) names the snapshot and node count" "$ID1" "$OUT"
run_burry verify "$S" --snapshot "$ID1" --json
expect_eq "verify exits 0 on an intact snapshot" 0 "$RC"
expect_eq "verify JSON" "$ID1 True" "$(jget 'd["snapshots"][0]["id"] + " " + str(d["snapshots"][0]["ok"])')"
run_burry verify "$S"
expect_eq "verify (latest, human) exits 0" 0 "$RC"
expect_match "verify (human) says ok" "$T3 +twins +ok" "$OUT"
run_burry ls "file://$S" --json
expect_eq "a file:// store URL works" 7 "$(jget 'len(d["snapshots"])')"

# --- the default store is ./burry-snapshots ---
mkdir -p "$T_TMP/cwd" && cd "$T_TMP/cwd" || exit 1
run_burry backup "zk://127.0.0.1:$P" --json
expect_eq "backup without STORE exits 0" 0 "$RC"
check "backup without STORE writes ./burry-snapshots" test -f "burry-snapshots/$NAME/$(jget 'd["snapshot"]').json"
run_burry ls --json
expect_eq "ls without STORE reads ./burry-snapshots" 1 "$(jget 'len(d["snapshots"])')"
cd "$T_TMP" || exit 1

# --- --name validation ---
run_burry backup "zk://127.0.0.1:$P" "$S" --name 'bad/name'
expect_eq "invalid --name exits 2" 2 "$RC"
expect_match "invalid --name is named" "bad/name" "$ERR"

t_done
