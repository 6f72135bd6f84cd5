#!/bin/bash
# Encrypted snapshots (age): Debian's age decrypts what burry writes, burry
# restores what age encrypted, the published manifest reveals no names or
# values, and a wrong key, a flipped byte or a truncated file is refused
# before the service is touched.
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/zk.sh"
t_tmpdir

zk_start a || exit 1
PA=$ZK_PORT
zk_start b || exit 1
PB=$ZK_PORT

zk_py "$PA" "zk.create('/vault', b'')" \
    "zk.create('/vault/db-password', b'hunter2-SECRETVALUE')" \
    "zk.create('/vault/api key', b'k-12345-SECRETVALUE')" \
    "zk.create('/plain', b'nothing to hide')"

age-keygen -o "$T_TMP/key1.txt" 2>/dev/null
age-keygen -o "$T_TMP/key2.txt" 2>/dev/null
age-keygen -o "$T_TMP/other.txt" 2>/dev/null
PUB1=$(age-keygen -y "$T_TMP/key1.txt")
PUB2=$(age-keygen -y "$T_TMP/key2.txt")
printf '# team keys\n%s\n\n' "$PUB2" >"$T_TMP/recipients.txt"

S=$T_TMP/store
run_burry backup "zk://127.0.0.1:$PA" "$S" --name enc --encrypt-to "$PUB1" --recipients-file "$T_TMP/recipients.txt" --json
expect_eq "encrypted backup exits 0" 0 "$RC"
ID=$(jget 'd["snapshot"]')
expect_eq "backup JSON says the archive is encrypted" age "$(jget 'd.get("encryption")')"
ARCH="$S/enc/$ID.tar.zst.age"
check "the archive is stored as .tar.zst.age" test -f "$ARCH"
expect_eq "the archive starts with the age header" "age-encryption.org/v1" "$(head -c 21 "$ARCH")"

# stock tools: age -d | tar
for k in key1 key2; do
    LIST=$(age -d -i "$T_TMP/$k.txt" "$ARCH" | tar -t --zstd 2>&1)
    expect_match "age -d with $k | tar -t lists the tree" '^tree/vault/db-password/@data$' "$LIST"
done
mkdir -p "$T_TMP/x" && age -d -i "$T_TMP/key1.txt" "$ARCH" | tar -x --zstd -C "$T_TMP/x"
expect_eq "a value extracted with age and tar is intact" "hunter2-SECRETVALUE" "$(cat "$T_TMP/x/tree/vault/db-password/@data")"

# nothing readable without the key
expect_no_match "the archive holds no value in clear" 'SECRETVALUE' "$(cat "$ARCH" | tr -c '[:print:]' ' ')"
expect_no_match "the archive holds no key name in clear" 'db-password' "$(cat "$ARCH" | tr -c '[:print:]' ' ')"
MAN=$(cat "$S/enc/$ID.json")
expect_no_match "the published manifest names no node" 'vault|db-password|api' "$MAN"
expect_no_match "the published manifest names no source address" "127\\.0\\.0\\.1" "$MAN"
expect_match "the published manifest keeps name and time" '"created"' "$MAN"
run_burry ls "$S" --json
expect_eq "ls lists the encrypted snapshot" "$ID" "$(jget 'd["snapshots"][0]["id"]')"
run_burry ls "$S"
expect_match "ls (human) shows no node count for it" "$ID +enc +zookeeper +- " "$OUT"
run_burry show "$S" --snapshot "$ID"
expect_match "show (human) says it is encrypted" '^encrypted: +age' "$OUT"
expect_no_match "show (human) claims no node count" '^nodes:' "$OUT"

# restore: needs the identity, refuses a wrong one before touching the server
run_burry restore "zk://127.0.0.1:$PB" "$S" --name enc --json
expect_eq "restore without --identity exits 2" 2 "$RC"
expect_match "restore without --identity says an identity is needed" 'identity' "$ERR"
run_burry restore "zk://127.0.0.1:$PB" "$S" --name enc --identity "$T_TMP/other.txt" --json
expect_eq "restore with a wrong identity exits 1" 1 "$RC"
expect_match "restore with a wrong identity says so" 'wrong key|cannot decrypt' "$ERR"
expect_eq "a refused restore created nothing" "" "$(zk_py "$PB" "print(zk.exists('/vault') or '', end='')")"

run_burry restore "zk://127.0.0.1:$PB" "$S" --name enc --identity "$T_TMP/key2.txt" --json
expect_eq "restore with the second recipient's identity exits 0" 0 "$RC"
expect_eq "restore created the nodes" 4 "$(jget 'd["created"]')"
expect_eq "restored value is intact" "hunter2-SECRETVALUE" "$(zk_py "$PB" "print(zk.get('/vault/db-password')[0].decode(), end='')")"

run_burry verify "$S" --identity "$T_TMP/key1.txt" --json
expect_eq "verify with the identity: exit 0, ok, contents checked" "0 True None" \
    "$RC $(jget 'd["snapshots"][0]["ok"]') $(jget 'd["snapshots"][0].get("stored_only")')"
run_burry verify "$S" --identity "$T_TMP/key1.txt"
expect_eq "verify with the identity (human): ok" "$ID  enc  ok" "$OUT"

# verify without the key checks the stored bytes against the published
# manifest (size and SHA-256 of the encrypted file): not damaged, contents
# not checked
run_burry verify "$S"
expect_eq "verify without --identity exits 0" 0 "$RC"
expect_eq "... the snapshot is ok, its stored bytes only" \
    "$ID  enc  ok (stored bytes only; encrypted, no --identity given)" "$OUT"
expect_no_match "... nothing says damaged" 'DAMAGED|damaged|failed' "$OUT$ERR"
expect_match "... a warning says its contents were not checked" \
    "warning: snapshot '$ID' is encrypted: its stored bytes match its manifest; its contents were not checked \\(no --identity given\\)" "$ERR"
run_burry verify "$S" --json
expect_eq "verify --json without --identity: exit 0, ok, stored_only, no error" "0 True True None None" \
    "$RC $(jget 'd["snapshots"][0]["ok"]') $(jget 'd["snapshots"][0].get("stored_only")') $(jget 'd["snapshots"][0].get("error")') $(jget 'd["snapshots"][0].get("wrong_identity")')"
run_burry verify "$S" --snapshot "$ID" -q
expect_eq "verify -q without --identity: exit 0, no summary" "0 " "$RC $OUT"

# a key that does not open it: said plainly, not damaged; exit 1, as a
# restore with that key would fail
run_burry verify "$S" --identity "$T_TMP/other.txt"
expect_eq "verify with a wrong identity exits 1" 1 "$RC"
expect_eq "... the snapshot is intact, the key does not open it" \
    "$ID  enc  ok (stored bytes only; encrypted, the given --identity does not open it)" "$OUT"
expect_match "... a warning says the identity does not open it" \
    "warning: snapshot '$ID': none of the given identities can decrypt it \\(wrong key\\?\\); its stored bytes match its manifest" "$ERR"
expect_match "... and the error says so" \
    "error: the given --identity does not open 1 of 1 snapshots in directory '.*' \\(not damaged: their stored bytes match their manifests\\)$" "$ERR"
expect_no_match "... nothing says damaged" 'DAMAGED|is damaged|failed' "$OUT$ERR"
run_burry verify "$S" --identity "$T_TMP/other.txt" --json
expect_eq "verify --json with a wrong identity: exit 1, ok, stored_only, wrong_identity" "1 True True True" \
    "$RC $(jget 'd["snapshots"][0]["ok"]') $(jget 'd["snapshots"][0].get("stored_only")') $(jget 'd["snapshots"][0].get("wrong_identity")')"
run_burry verify "$S" --identity "$T_TMP/other.txt" --identity "$T_TMP/key2.txt"
expect_eq "verify with a wrong and a right identity: exit 0, contents checked" "0 $ID  enc  ok" "$RC $OUT"

# the files given instead of an age identity are named for what they are:
# an identity file itself encrypted with age (as under a passphrase), and
# an ssh key (also as a recipient)
age -r "$PUB2" -o "$T_TMP/key1.age" "$T_TMP/key1.txt"
run_burry verify "$S" --identity "$T_TMP/key1.age"
expect_eq "an identity file encrypted with age: usage error (exit 2)" 2 "$RC"
expect_match "... saying it is encrypted and how to decrypt it" \
    "'.*key1\.age' is itself encrypted with age .*decrypt it first \(age -d -o FILE" "$ERR"
ssh-keygen -q -t ed25519 -N '' -C '' -f "$T_TMP/ssh-key"
run_burry restore "zk://127.0.0.1:$PB" "$S" --name enc --identity "$T_TMP/ssh-key" --dry-run
expect_eq "an ssh private key as --identity: exit 2" 2 "$RC"
expect_match "... named as an ssh key" "line 1 of '.*ssh-key' is an ssh key; burry takes age X25519 keys only" "$ERR"
run_burry backup "zk://127.0.0.1:$PA" "$T_TMP/s-ssh" --recipients-file "$T_TMP/ssh-key.pub"
expect_eq "an ssh public key in --recipients-file: exit 2" 2 "$RC"
expect_match "... named as an ssh key" "is an ssh key; burry takes age X25519 keys only \(age1" "$ERR"
expect_eq "... and nothing was written" "" "$(files_in "$T_TMP/s-ssh")"

# tampering: a flipped byte anywhere, a truncated file
# verify_damaged WHAT: verify calls the archive DAMAGED (exit 1) with the
# key, with a key that does not open it, and without a key
verify_damaged() {
    local how
    for how in key1 other none; do
        if [ $how = none ]; then run_burry verify "$S" --name enc; else run_burry verify "$S" --name enc --identity "$T_TMP/$how.txt"; fi
        expect_eq "$1: verify ($how) exits 1, DAMAGED" "1 $ID  enc  DAMAGED" "$RC $OUT"
        expect_match "$1: verify ($how) says the snapshot is damaged" "snapshot '$ID' is damaged" "$ERR"
    done
}
cp "$ARCH" "$T_TMP/orig.age"
SIZE=$(stat -c %s "$ARCH")
for at in 60 $((SIZE / 2)) $((SIZE - 5)); do
    cp "$T_TMP/orig.age" "$ARCH"
    /usr/bin/python3 -c "
import sys
p, at = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read()); b[at] ^= 0x01; open(p, 'wb').write(b)" "$ARCH" "$at"
    run_burry restore "zk://127.0.0.1:$PB" "$S" --name enc --identity "$T_TMP/key1.txt" --into /t$at --json
    expect_eq "flipped byte at $at: restore exits 1" 1 "$RC"
    expect_eq "flipped byte at $at: nothing created" "" "$(zk_py "$PB" "print(zk.exists('/t$at') or '', end='')")"
    verify_damaged "flipped byte at $at"
done
# the age header itself: its first line, and a recipient's stanza that no
# longer reads (a byte that is not base64)
for at in 3 40; do
    cp "$T_TMP/orig.age" "$ARCH"
    /usr/bin/python3 -c "
import sys
p, at = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read()); b[at] = 0x21; open(p, 'wb').write(b)" "$ARCH" "$at"
    verify_damaged "an age header changed at $at"
done
run_burry verify "$S" --name enc --identity "$T_TMP/key1.txt"
expect_match "... with the key, a stanza that does not read is named" \
    "snapshot '$ID' is damaged: age header is damaged \\(bad X25519 stanza\\)" "$ERR"
head -c $((SIZE - 100)) "$T_TMP/orig.age" >"$ARCH"
verify_damaged "truncated archive"
run_burry restore "zk://127.0.0.1:$PB" "$S" --name enc --identity "$T_TMP/key1.txt" --into /trunc --json
expect_eq "truncated archive: restore exits 1" 1 "$RC"
expect_eq "truncated archive: nothing created" "" "$(zk_py "$PB" "print(zk.exists('/trunc') or '', end='')")"
cp "$T_TMP/orig.age" "$ARCH"

# a snapshot encrypted by age itself restores with burry: encrypt a plain
# snapshot's archive with `age -r` and publish it as an encrypted one
run_burry backup "zk://127.0.0.1:$PA" "$S" --name plain --json
PID=$(jget 'd["snapshot"]')
age -r "$PUB1" -o "$S/plain/$PID.tar.zst.age" "$S/plain/$PID.tar.zst"
rm "$S/plain/$PID.tar.zst"
/usr/bin/python3 - "$S/plain/$PID.json" "$S/plain/$PID.tar.zst.age" <<'PY'
import hashlib, json, os, sys
m = json.load(open(sys.argv[1]))
data = open(sys.argv[2], 'rb').read()
m["archive"] = {"key": os.path.basename(sys.argv[2]), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
m["encryption"] = "age"
json.dump(m, open(sys.argv[1], 'w'))
PY
run_burry restore "zk://127.0.0.1:$PB" "$S" --snapshot "$PID" --identity "$T_TMP/key1.txt" --into /byage --json
expect_eq "a snapshot encrypted by age -r restores with burry" "0 5" "$RC $(jget 'd["created"]')"
expect_eq "its values are intact" "nothing to hide" "$(zk_py "$PB" "print(zk.get('/byage/plain')[0].decode(), end='')")"

# verify --all of a store with encrypted and clear snapshots, without a key:
# the clear one is checked whole, the encrypted ones by their stored bytes
run_burry backup "zk://127.0.0.1:$PA" "$S" --name clear --json
CID=$(jget 'd["snapshot"]')
run_burry verify "$S" --all
expect_eq "verify --all without --identity exits 0" 0 "$RC"
expect_eq "... one line per snapshot, the clear one checked whole" \
    "$ID  enc  ok (stored bytes only; encrypted, no --identity given)|$PID  plain  ok (stored bytes only; encrypted, no --identity given)|$CID  clear  ok" \
    "$(paste -sd'|' <<<"$OUT")"
expect_match "... one warning counts the encrypted snapshots" \
    "warning: 2 of 3 snapshots are encrypted: their stored bytes match their manifests; their contents were not checked \\(no --identity given\\)" "$ERR"
expect_eq "... and only one warning" 1 "$(grep -c warning <<<"$ERR")"
run_burry verify "$S" --all --identity "$T_TMP/other.txt" --json
expect_eq "verify --all with a wrong identity: exit 1, the clear one checked whole, the others not opened" \
    "1 [('clear', True, None, None), ('enc', True, True, True), ('plain', True, True, True)]" \
    "$RC $(jget 'sorted((s["name"], s["ok"], s.get("stored_only"), s.get("wrong_identity")) for s in d["snapshots"])')"
expect_match "... the error counts them" "error: the given --identity does not open 2 of 3 snapshots in directory " "$ERR"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-5]^=1; open(p,"wb").write(b)' "$S/plain/$PID.tar.zst.age"
run_burry verify "$S" --all --identity "$T_TMP/other.txt"
expect_eq "a damaged one among them: exit 1, DAMAGED" 1 "$RC"
expect_match "... named DAMAGED" "^$PID  plain  DAMAGED$" "$OUT"
expect_match "... the error counts both kinds" \
    "error: 1 of 3 snapshots in directory .* failed verification; the given --identity does not open 1 more \\(not damaged\\)$" "$ERR"

no_leak=1
grep -rq 'AGE-SECRET-KEY' "$S" && no_leak=0
if [ $no_leak = 1 ]; then ok "no identity in the store"; else not_ok "no identity in the store"; fi

t_done
