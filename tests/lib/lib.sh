# Shared shell test helpers. Source it from a test script; every check prints
# "ok - NAME" or "not ok - NAME", the lines tests/run.sh counts.
# BURRY is the binary under test (bin/burry unless the runner says otherwise).

: "${BURRY:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/burry}"
T_FAILED=0

ok()     { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; T_FAILED=$((T_FAILED + 1)); }

# check NAME COMMAND...: passes when the command exits 0.
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}

# expect_match NAME REGEX TEXT (grep -E)
expect_match() {
    if printf '%s' "$3" | grep -Eq -- "$2"; then ok "$1"; else not_ok "$1 (no match for '$2' in: $(printf '%s' "$3" | head -c 400))"; fi
}

expect_no_match() {
    if printf '%s' "$3" | grep -Eq -- "$2"; then not_ok "$1 (unexpected '$2' in: $(printf '%s' "$3" | head -c 400))"; else ok "$1"; fi
}

# run_burry ARGS...: runs $BURRY, leaving stdout in $OUT, stderr in $ERR,
# the exit status in $RC.
run_burry() { run_prog "$BURRY" "$@"; }
# run_bysu ARGS...: the same for bysu (built next to $BURRY).
run_bysu() { run_prog "$(dirname "$BURRY")/bysu" "$@"; }

# run_prog PROGRAM ARGS...: as run_burry, for any program.
run_prog() {
    local o e
    o=$(mktemp) e=$(mktemp)
    "$@" >"$o" 2>"$e"
    RC=$?
    OUT=$(cat "$o") ERR=$(cat "$e")
    rm -f "$o" "$e"
}

# A fresh empty directory for this test script, removed at exit.
t_tmpdir() {
    T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/burry-test.XXXXXX")
    trap 't_cleanup' EXIT
}
t_cleanup() {
    declare -F zk_stop_all >/dev/null && zk_stop_all
    declare -F etcd_stop_all >/dev/null && etcd_stop_all
    declare -F consul_stop_all >/dev/null && consul_stop_all
    declare -F azurite_stop_all >/dev/null && azurite_stop_all
    [ -n "${T_TMP:-}" ] && rm -rf "$T_TMP"
}

t_done() { [ "$T_FAILED" -eq 0 ]; }

# A TCP port nothing listens on right now.
# median NUMBER...: the median of the numbers
median() {
    printf '%s\n' "$@" | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# json_get JSON EXPR: evaluates a Python expression on the parsed document `d`.
json_get() {
    /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# jget EXPR: json_get on $OUT, the stdout of the last run_burry
# ("<no json>" when it is not a JSON document).
jget() {
    json_get "$OUT" "$1" 2>/dev/null || echo "<no json>"
}

# wait_until SECONDS COMMAND...: bounded polling; runs COMMAND every 0.05 s
# until it succeeds (status 0) or SECONDS have passed (status 1).
wait_until() {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    while :; do
        "$@" && return 0
        [ $SECONDS -ge $end ] && return 1
        sleep 0.05
    done
}

# files_in DIR: the regular files below DIR (relative, sorted), one per line.
files_in() {
    [ -d "$1" ] || return 0
    (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
}

# tree_line FILE PATH: the line of a zk_tree listing for node PATH.
tree_line() {
    local q=${2//\\/\\\\} line
    q=${q//\"/\\\"}
    line=$(grep -F -m1 -- "\"$q\"$(printf '\t')" "$1") || line="<absent>"
    printf '%s\n' "$line"
}
