#!/bin/bash
# bysu with age encryption: a repository (or job) that names recipients
# stores .tar.zst.age archives the central host encrypted after checking the
# node's manifest; a node whose agent.conf names recipients encrypts before
# its data leaves it, and the repository holds only ciphertext (.tar.age).
# Debian's age decrypts both; `bysu get --decrypt` refuses a wrong key, a
# flipped byte and a truncated file without leaving an output file behind.
# verify checks what it can without the key, for node and infrastructure
# snapshots alike.
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/sshd.sh"
. "$(dirname "$0")/../lib/zk.sh"
BYSU=$(dirname "$BURRY")/bysu
t_tmpdir
trap 'sshd_stop_all; t_cleanup' EXIT

MARK=plaintext-marker-4c1e9b
D=$T_TMP/appdata
mkdir -p "$D/conf"
printf 'token = %s\n' "$MARK" >"$D/conf/secret.txt"
head -c 200000 /dev/urandom >"$D/blob.bin"

age-keygen -o "$T_TMP/central.key" 2>/dev/null
age-keygen -o "$T_TMP/job.key" 2>/dev/null
age-keygen -o "$T_TMP/node.key" 2>/dev/null
age-keygen -o "$T_TMP/other.key" 2>/dev/null
CPUB=$(age-keygen -y "$T_TMP/central.key")
JPUB=$(age-keygen -y "$T_TMP/job.key")
NPUB=$(age-keygen -y "$T_TMP/node.key")
printf '# the node team\n%s\n' "$NPUB" >"$T_TMP/node-recipients.txt"
printf '%s\n' "$JPUB" >"$T_TMP/job-recipients.txt"

cat >"$T_TMP/agent.conf" <<CONF
[snapshot plain]
paths = $D
[snapshot sealed]
paths = $D
recipients = $NPUB
[snapshot sealedcmd]
command = echo $MARK
recipients_file = $T_TMP/node-recipients.txt
[snapshot sealedbad]
command = echo $MARK; exit 4
recipients = $NPUB
[snapshot sealedmany]
command = echo $MARK
recipients_file = $T_TMP/many-recipients.txt
CONF
# 60 recipients (the node's key last): an age header of about 12 KiB
for i in $(seq 1 59); do age-keygen 2>/dev/null | grep '^# public key' | sed 's/^# public key: //'; done \
    >"$T_TMP/many-recipients.txt"
printf '%s\n' "$NPUB" >>"$T_TMP/many-recipients.txt"
sshd_start n1 "$BYSU agent -c $T_TMP/agent.conf" || exit 1
P1=$SSHD_PORT
zk_start z || exit 1
zk_py "$ZK_PORT" "zk.create('/app', b'zk-$MARK')"
KEY=$T_TMP/client-key
KH=$T_TMP/known_hosts
R=$T_TMP/repo
C=$T_TMP/bysu.conf
{
    printf '[repository]\nurl = %s\nkeep = 2\nrecipients = %s\n' "$R" "$CPUB"
    printf '[node n1]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n' "$P1" "$KEY" "$KH"
    printf '[job central]\nnode = n1\nsnapshot = plain\n'
    printf '[job override]\nnode = n1\nsnapshot = plain\nrecipients_file = %s\n' "$T_TMP/job-recipients.txt"
    printf '[job clear]\nnode = n1\nsnapshot = plain\nrecipients = none\n'
    printf '[job sealed]\nnode = n1\nsnapshot = sealed\n'
    printf '[job sealedcmd]\nnode = n1\nsnapshot = sealedcmd\n'
    printf '[job sealedbad]\nnode = n1\nsnapshot = sealedbad\n'
    printf '[job sealedmany]\nnode = n1\nsnapshot = sealedmany\n'
    printf '[job zk]\nsource = zk://127.0.0.1:%s\ntimeout = 20\n' "$ZK_PORT"
} >"$C"

res() { jget "[j for j in d['jobs'] if j['job']=='$1'][0]['$2']"; }
latest_id() { "$BYSU" ls -c "$C" --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])'; }

run_bysu run -c "$C" --json central override clear sealed sealedcmd sealedbad zk
expect_eq "the run exits 1 (sealedbad fails)" 1 "$RC"
for j in central override clear sealed sealedcmd zk; do expect_eq "job $j succeeds" ok "$(res $j result)"; done
expect_eq "a failing node-encrypted command fails the job" failed "$(res sealedbad result)"
expect_match "its status is reported" 'exited with status 4' "$(res sealedbad message)"
expect_eq "nothing is published for sealedbad" "" "$(ls "$R/sealedbad" 2>/dev/null)"
run_bysu run -c "$C" --json sealedmany
expect_eq "a node encrypting to 60 recipients (a 12 KiB header): the job succeeds" "0 ok" "$RC $(res sealedmany result)"
expect_eq "... and its last recipient decrypts it" "$MARK" \
    "$("$BYSU" get -c "$C" sealedmany --decrypt --identity "$T_TMP/node.key" | tar -xOf - output/sealedmany.out)"

# --- central encryption ---
ID=$(latest_id central)
A=$R/central/$ID.tar.zst.age
check "the centrally encrypted archive is stored as .tar.zst.age" test -f "$A"
expect_eq "it starts with the age header" "age-encryption.org/v1" "$(head -c 21 "$A")"
expect_eq "archives are mode 0600" "" "$(find "$R" -name '*.age' ! -perm 0600)"
LIST=$(age -d -i "$T_TMP/central.key" "$A" | tar --zstd -t 2>&1)
expect_match "age -d | tar --zstd -t lists the files" "^files$D/conf/secret.txt\$" "$LIST"
expect_match "... and the manifest" '^MANIFEST.json$' "$LIST"
M=$(cat "$R/central/$ID.json")
expect_match "the published manifest says age" '"encryption": "age"' "$M"
expect_no_match "the published manifest names no path" "$D|secret|files/" "$M"
expect_no_match "the published manifest names no host or counts" '"host"|"node"|"files"|"bytes"|"command"' "$M"
expect_eq "the published manifest keeps only what listing and pruning need" \
    "archive created encryption name service snapshot" \
    "$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1])))))' "$R/central/$ID.json")"
expect_eq "no plaintext marker in the central repository copy" "" "$(grep -rla "$MARK" "$R/central")"

run_bysu get -c "$C" central latest --decrypt --identity "$T_TMP/central.key" -o "$T_TMP/central.tar.zst"
expect_eq "bysu get --decrypt of a central snapshot exits 0" 0 "$RC"
mkdir -p "$T_TMP/xc"
check "it is the zstd tar, extracting with stock tar" tar --zstd -xf "$T_TMP/central.tar.zst" -C "$T_TMP/xc"
check "the file equals the original" cmp "$D/blob.bin" "$T_TMP/xc/files$D/blob.bin"
run_bysu get -c "$C" central latest -o "$T_TMP/central.raw"
check "bysu get without --decrypt gives the stored age file" cmp "$A" "$T_TMP/central.raw"
# the same content encrypted anew (to the same key and one more) in the
# archive's place: age accepts it, the sidecar's checksum does not
cp "$A" "$T_TMP/central.keep"
age -d -i "$T_TMP/central.key" "$T_TMP/central.keep" | age -r "$CPUB" -r "$JPUB" -o "$A"
run_bysu get -c "$C" central latest --decrypt --identity "$T_TMP/central.key" -o "$T_TMP/swapped.tar.zst"
expect_eq "--decrypt of an archive swapped for another encryption: exit 1, no output file" "1 no" \
    "$RC $([ -e "$T_TMP/swapped.tar.zst" ] && echo yes || echo no)"
expect_match "... saying it does not match its manifest" "does not match its manifest" "$ERR"
cp "$T_TMP/central.keep" "$A"
# a secret key where a recipient belongs is refused without being shown
SK=$(grep '^AGE-SECRET-KEY-' "$T_TMP/other.key")
sed "s|^recipients = .*|recipients = $SK|" "$C" >"$T_TMP/sk.conf"
run_bysu ls -c "$T_TMP/sk.conf"
expect_eq "a secret key as a recipient: exit 2" 2 "$RC"
expect_match "... saying it is a secret key" "an age secret key .* is given as a recipient" "$ERR"
expect_no_match "... without showing it" "${SK#AGE-SECRET-KEY-}" "$OUT$ERR"

# a job's recipients replace the repository's
OID=$(latest_id override)
check "the job's own recipient decrypts its snapshot" sh -c "age -d -i '$T_TMP/job.key' '$R/override/$OID.tar.zst.age' | tar --zstd -t >/dev/null"
run_bysu get -c "$C" override latest --decrypt --identity "$T_TMP/central.key" -o "$T_TMP/ov.tar.zst"
expect_eq "the repository's key does not open an overriding job" "1 no" "$RC $([ -e "$T_TMP/ov.tar.zst" ] && echo yes || echo no)"
check "recipients = none stores a plain .tar.zst" test -f "$R/clear/$(latest_id clear).tar.zst"
run_bysu get -c "$C" clear latest --decrypt --identity "$T_TMP/central.key" -o "$T_TMP/clear.tar.zst"
check "--decrypt of an unencrypted snapshot copies it as it is" sh -c "[ $RC = 0 ] && tar --zstd -tf '$T_TMP/clear.tar.zst' >/dev/null"

# an infrastructure job takes the repository's recipients too
ZID=$(latest_id zk)
check "an infrastructure job is stored as .tar.zst.age" test -f "$R/zk/$ZID.tar.zst.age"
expect_eq "no plaintext marker in its repository copy" "" "$(grep -rla "$MARK" "$R/zk")"
check "age -d | tar --zstd -t reads it" sh -c "age -d -i '$T_TMP/central.key' '$R/zk/$ZID.tar.zst.age' | tar --zstd -t >/dev/null"

# --- node encryption ---
NID=$(latest_id sealed)
N=$R/sealed/$NID.tar.age
check "the node-encrypted archive is stored as .tar.age" test -f "$N"
expect_eq "it starts with the age header" "age-encryption.org/v1" "$(head -c 21 "$N")"
expect_eq "no plaintext marker in the node-encrypted repository copies" "" "$(grep -rla "$MARK" "$R/sealed" "$R/sealedcmd")"
NM=$(cat "$R/sealed/$NID.json")
expect_match "the manifest records who encrypted" '"encrypted_by": "node"' "$NM"
expect_no_match "the manifest names no path or host" "$D|\"host\"|\"files\"" "$NM"
check "the central key cannot read it" sh -c "! age -d -i '$T_TMP/central.key' '$N' >/dev/null 2>&1"
LIST=$(age -d -i "$T_TMP/node.key" "$N" | tar -t 2>&1)
expect_match "age -d | tar -t lists the files (a plain tar)" "^files$D/conf/secret.txt\$" "$LIST"
run_bysu get -c "$C" sealed latest --decrypt --identity "$T_TMP/node.key" -o "$T_TMP/sealed.tar"
expect_eq "bysu get --decrypt of a node snapshot exits 0" 0 "$RC"
mkdir -p "$T_TMP/xn"
check "it is a plain tar" tar -xf "$T_TMP/sealed.tar" -C "$T_TMP/xn"
check "the file equals the original" cmp "$D/conf/secret.txt" "$T_TMP/xn/files$D/conf/secret.txt"
expect_eq "the manifest inside checks out" \
    "$(sha256sum <"$D/blob.bin" | cut -d' ' -f1)" \
    "$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print([f["sha256"] for f in m["files"] if f["path"].endswith("blob.bin")][0])' "$T_TMP/xn/MANIFEST.json")"
expect_eq "a recipients_file on the node works too" "$MARK" \
    "$("$BYSU" get -c "$C" sealedcmd --decrypt --identity "$T_TMP/node.key" | tar -xOf - output/sealedcmd.out)"
run_bysu ls -c "$C" --json sealed
expect_eq "bysu ls lists the node-encrypted snapshot with its size" "$(stat -c %s "$N")" "$(jget 'd["snapshots"][-1]["size"]')"

# --- refusals: wrong key, a flipped byte, truncation ---
refused() { # LABEL JOB KEY
    rm -f "$T_TMP/out.tar"
    run_bysu get -c "$C" "$2" latest --decrypt --identity "$3" -o "$T_TMP/out.tar"
    expect_eq "$1: bysu get --decrypt exits 1" 1 "$RC"
    expect_match "$1: the error says so" 'cannot decrypt' "$ERR"
    expect_eq "$1: no output file, no partial file" "" "$(ls "$T_TMP" | grep '^out\.tar')"
}
refused "wrong identity (node)" sealed "$T_TMP/other.key"
refused "wrong identity (central)" central "$T_TMP/other.key"
for j in sealed central; do
    F=$(ls "$R/$j/"*.age | tail -1)
    cp "$F" "$T_TMP/orig"
    SZ=$(stat -c %s "$F")
    python3 -c 'import sys; p=sys.argv[1]; o=int(sys.argv[2]); b=bytearray(open(p,"rb").read()); b[o]^=1; open(p,"wb").write(b)' "$F" $((SZ / 2))
    refused "a flipped byte in the middle ($j)" "$j" "$T_TMP/$([ $j = sealed ] && echo node || echo central).key"
    cp "$T_TMP/orig" "$F"
    python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-1]^=0x80; open(p,"wb").write(b)' "$F"
    refused "a flipped last byte ($j)" "$j" "$T_TMP/$([ $j = sealed ] && echo node || echo central).key"
    cp "$T_TMP/orig" "$F"
    truncate -s $((SZ - 100)) "$F"
    refused "a truncated file ($j)" "$j" "$T_TMP/$([ $j = sealed ] && echo node || echo central).key"
    cp "$T_TMP/orig" "$F"
done
run_bysu get -c "$C" sealed latest --decrypt -o "$T_TMP/out.tar"
expect_eq "--decrypt without --identity is a usage error" 2 "$RC"

# --- verify with and without the keys ---
run_bysu verify -c "$C" central
expect_eq "verify without a key exits 0" 0 "$RC"
expect_match "verify without a key checks only the stored bytes" "$ID  central  ok \\(stored bytes only; encrypted\\)" "$OUT"
run_bysu verify -c "$C" --identity "$T_TMP/central.key" --identity "$T_TMP/node.key" --identity "$T_TMP/job.key"
expect_eq "verify with every key exits 0" 0 "$RC"
expect_match "verify with the key checks the content" "$ID  central  ok$" "$OUT"
expect_match "a node-encrypted snapshot is checked too" "$NID  sealed  ok$" "$OUT"
expect_eq "nothing is left unchecked" "" "$(grep -v '  ok$' <<<"$OUT")"
run_bysu verify -c "$C" --identity "$T_TMP/other.key" --json central
expect_eq "verify with a key that does not open it: exit 0, ok, the stored bytes only (no damage)" "0 True True" \
    "$RC $(jget 'd["snapshots"][-1]["ok"]') $(jget 'd["snapshots"][-1].get("stored_only")')"
# an infrastructure job's encrypted snapshot (checked by burry's verify):
# without a key, or with one that does not open it, its stored bytes are
# checked, as for the others, and it is not called DAMAGED
run_bysu verify -c "$C" zk
expect_eq "verify of an encrypted infrastructure job without a key: exit 0, stored bytes only" \
    "0 $ZID  zk  ok (stored bytes only; encrypted)" "$RC $OUT"
expect_eq "... and no warning, as for the other jobs" "" "$ERR"
run_bysu verify -c "$C" --identity "$T_TMP/other.key" --json zk
expect_eq "... with a key that does not open it: exit 0, ok, the stored bytes only (no damage)" "0 True True" \
    "$RC $(jget 'd["snapshots"][-1]["ok"]') $(jget 'd["snapshots"][-1].get("stored_only")')"
run_bysu verify -c "$C" --identity "$T_TMP/central.key" zk
expect_eq "... with its key: exit 0, checked whole" "0 $ZID  zk  ok" "$RC $OUT"
# the usual check on the central host: its own key, node-encrypted
# snapshots among the others
run_bysu verify -c "$C" --identity "$T_TMP/central.key"
expect_eq "verify with the central key only exits 0" 0 "$RC"
expect_match "... node-encrypted snapshots: stored bytes checked, not DAMAGED" "$NID  sealed  ok \\(stored bytes only; encrypted\\)" "$OUT"
expect_no_match "... and no snapshot is called DAMAGED" DAMAGED "$OUT"
# a damaged archive is still damage when the key does not open it
cp "$R/sealed/$NID.tar.age" "$T_TMP/sealed.keep"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-5]^=1; open(p,"wb").write(b)' "$R/sealed/$NID.tar.age"
run_bysu verify -c "$C" --identity "$T_TMP/central.key" sealed
expect_match "... while a changed byte still is DAMAGED" "$NID  sealed  DAMAGED" "$OUT"
cp "$T_TMP/sealed.keep" "$R/sealed/$NID.tar.age"
# the infrastructure job's snapshot (checked above with no key, another
# key and its own): a changed byte in it is DAMAGED whatever the key
cp "$R/zk/$ZID.tar.zst.age" "$T_TMP/zk.keep"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-5]^=1; open(p,"wb").write(b)' "$R/zk/$ZID.tar.zst.age"
for k in "" "$T_TMP/other.key" "$T_TMP/central.key"; do
    run_bysu verify -c "$C" ${k:+--identity "$k"} zk
    expect_match "... while a changed byte is DAMAGED (key: ${k:-none})" "^$ZID  zk  DAMAGED: " "$OUT"
done
cp "$T_TMP/zk.keep" "$R/zk/$ZID.tar.zst.age"

# --- a bad recipient is a configuration error ---
printf '[snapshot x]\ncommand = true\nrecipients = age1notakey\n' >"$T_TMP/bad-agent.conf"
E=$(SSH_ORIGINAL_COMMAND=list "$BYSU" agent -c "$T_TMP/bad-agent.conf" 2>&1 >/dev/null); rc=$?
expect_eq "an agent.conf with a bad recipient is refused" 2 "$rc"
expect_match "... naming the snapshot" 'snapshot x' "$E"
sed 's/^recipients = age1.*/recipients = age1notakey/' "$C" >"$T_TMP/bad.conf"
run_bysu ls -c "$T_TMP/bad.conf"
expect_eq "a bysu.conf with a bad recipient is refused" 2 "$RC"

t_done
