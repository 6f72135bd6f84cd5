#!/bin/bash
# Exit codes and messages on bad input: usage errors exit 2, failed
# operations exit 1, and every message names what was wrong.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

cd "$T_TMP" || exit 1
S=$T_TMP/store
mkdir -p "$S"

# --- help, version, no arguments ---
run_burry --help
expect_eq "--help exits 0" 0 "$RC"
for v in backup restore ls show verify dump; do
    expect_match "--help mentions '$v'" "burry $v" "$OUT"
done
expect_match "--help shows the SOURCE form" 'zk://HOST:PORT' "$OUT"
expect_match "--help mentions the original tool's flags" '-e HOST:PORT' "$OUT"
run_burry backup --help
expect_eq "VERB --help exits 0" 0 "$RC"
run_burry --version
expect_eq "--version exits 0" 0 "$RC"
expect_match "--version prints the version" '^burry [0-9]+\.[0-9]+\.[0-9]+' "$OUT"
run_burry
expect_eq "no arguments: exit 2" 2 "$RC"
expect_match "no arguments: usage on stderr" 'usage' "$ERR"

# --- unknown command or option, option of another verb ---
run_burry frobnicate
expect_eq "unknown command: exit 2" 2 "$RC"
expect_match "unknown command: named" "frobnicate" "$ERR"
run_burry ls "$S" --frobnicate
expect_eq "unknown option: exit 2" 2 "$RC"
expect_match "unknown option: named" "frobnicate" "$ERR"
run_burry ls "$S" --overwrite
expect_eq "option of another verb (ls --overwrite): exit 2" 2 "$RC"
expect_match "option of another verb: named" "overwrite" "$ERR"
run_burry backup zk://127.0.0.1:1 "$S" --dry-run
expect_eq "option of another verb (backup --dry-run): exit 2" 2 "$RC"
run_burry dump zk://127.0.0.1:1 --json
expect_eq "option of another verb (dump --json): exit 2" 2 "$RC"
run_burry show "$S" --compress gzip
expect_eq "option of another verb (show --compress): exit 2" 2 "$RC"
run_burry ls "$S" --name
expect_eq "option without its value: exit 2" 2 "$RC"
run_burry backup
expect_eq "backup without SOURCE: exit 2" 2 "$RC"
expect_match "backup without SOURCE: says so" 'SOURCE' "$ERR"
run_burry ls "$S" extra-argument
expect_eq "unexpected extra argument: exit 2" 2 "$RC"
expect_match "unexpected extra argument: named" 'extra-argument' "$ERR"
run_burry verify "$S" --all --snapshot latest
expect_eq "--all with --snapshot: exit 2" 2 "$RC"
run_burry backup zk://127.0.0.1:1 "$S" --timeout 0
expect_eq "--timeout 0: exit 2" 2 "$RC"
run_burry backup zk://127.0.0.1:1 "$S" --timeout soon
expect_eq "--timeout not a number: exit 2" 2 "$RC"
expect_match "--timeout not a number: named" 'soon' "$ERR"
run_burry backup zk://127.0.0.1:1 "$S" --compress lzma
expect_eq "--compress unknown: exit 2" 2 "$RC"
expect_match "--compress unknown: named" 'lzma' "$ERR"

# --- malformed source URLs: exit 2, the URL named, nothing written ---
for url in 'zk://' 'zk://host' 'zk://host:notaport' 'http://x' 'zk://host:99999' 'zk://:2181' '127.0.0.1:2181' 'zk://host:2181/bad//chroot'; do
    run_burry backup "$url" "$S/u" --timeout 2
    expect_eq "backup '$url': exit 2" 2 "$RC"
    expect_match "backup '$url': message names the URL" "$(printf '%s' "$url" | sed 's/[].[*^$()+?{}|\\/]/\\&/g')" "$ERR"
done
expect_eq "malformed URLs: nothing written to the store" "" "$(files_in "$S/u")"
run_burry dump 'zk://host:notaport'
expect_eq "dump with a malformed URL: exit 2" 2 "$RC"
run_burry restore 'http://x' "$S"
expect_eq "restore with a malformed URL: exit 2" 2 "$RC"
expect_match "restore with a malformed URL: named" 'http://x' "$ERR"

# --- unknown and malformed snapshot IDs ---
UNKNOWN=20200101T000000.000Z-abcd
run_burry show "$S" --snapshot "$UNKNOWN"
expect_eq "show unknown snapshot: exit 1" 1 "$RC"
expect_match "show unknown snapshot: named" "$UNKNOWN" "$ERR"
run_burry verify "$S" --snapshot "$UNKNOWN"
expect_eq "verify unknown snapshot: exit 1" 1 "$RC"
expect_match "verify unknown snapshot: named" "$UNKNOWN" "$ERR"
run_burry restore zk://127.0.0.1:1 "$S" --snapshot "$UNKNOWN"
expect_eq "restore unknown snapshot: exit 1" 1 "$RC"
expect_match "restore unknown snapshot: named" "$UNKNOWN" "$ERR"
run_burry show "$S" --snapshot not-an-id
expect_eq "malformed snapshot ID: exit 2" 2 "$RC"
expect_match "malformed snapshot ID: named" 'not-an-id' "$ERR"
run_burry show "$S" --snapshot latest
expect_eq "latest in an empty store: exit 1" 1 "$RC"
expect_match "latest in an empty store: says there are no snapshots" 'no snapshots' "$ERR"
run_burry ls "$S" --json
expect_eq "ls of an empty store: exit 0" 0 "$RC"
expect_eq "ls of an empty store: empty list" "[]" "$(jget 'd["snapshots"]')"
run_burry ls "$S" --name 'no/slashes'
expect_eq "ls with an invalid --name: exit 2" 2 "$RC"
run_burry ls "s3://bucket/prefix"
expect_eq "unknown store scheme: exit 2" 2 "$RC"
expect_match "unknown store scheme: named" 's3' "$ERR"

# --- an unwritable store (a path below a regular file) ---
zk_start one || exit 1
P=$ZK_PORT
zk_py "$P" "zk.create('/a', b'x')" 2>/dev/null
: >"$T_TMP/plainfile"
run_burry backup "zk://127.0.0.1:$P" "$T_TMP/plainfile/store"
expect_eq "unwritable store: backup exits 1" 1 "$RC"
expect_match "unwritable store: the message names the store" "plainfile/store" "$ERR"
check "unwritable store: the regular file is left as it was" test -f "$T_TMP/plainfile" -a ! -s "$T_TMP/plainfile"
run_burry ls "$T_TMP/plainfile/store"
expect_eq "ls of a store below a regular file: exit 1" 1 "$RC"
expect_match "ls of a store below a regular file: named" "plainfile/store" "$ERR"
run_burry backup "zk://127.0.0.1:$P" "$T_TMP/plainfile"
expect_eq "a regular file as store: backup exits 2 (configuration error)" 2 "$RC"
expect_match "a regular file as store: named" "plainfile' exists and is not a directory" "$ERR"

# --- options may come before or after the positional arguments ---
run_burry backup --json "zk://127.0.0.1:$P" "$S"
expect_eq "options before the arguments work" 0 "$RC"
run_burry backup "zk://127.0.0.1:$P" "$S" --json -q
expect_eq "options after the arguments work" 0 "$RC"
run_burry backup -q "zk://127.0.0.1:$P" "$S"
expect_eq "-q backup exits 0" 0 "$RC"
expect_eq "-q backup prints nothing" "" "$OUT$ERR"

t_done
