#!/bin/bash
# The test-suite runner. Runs the unit test programs of each build variant,
# then every CLI and integration script against the release binary and again
# against the ASan+UBSan binary, counts the "ok - " / "not ok - " lines they
# print and ends with exactly "N passed, N failed".
#
#   tests/run.sh [PATTERN]      only tests whose name contains PATTERN
# Environment:
#   BURRY_TEST_VARIANTS   "release asan" (default) or e.g. "release"
#   BURRY_TEST_JOBS       tests run at the same time (default 2)
#   BURRY_TEST_TIMEOUT    seconds per test program or script (default 600)
#   BURRY_TEST_SCRIPTS    scripts to run instead of tests/{cli,integration}/*.sh
#
# A script with the line "# needs: rgw" needs a real S3 server: when one is
# selected, run.sh starts ONE radosgw (tests/lib/rgw.sh, ~15 s) for the whole
# run, passes RGW_ENDPOINT, RGW_PORT, RGW_ACCESS_KEY, RGW_SECRET_KEY and
# RGW_CLUSTER_DIR (for rgw_gateway_start) to the
# scripts and stops it at the end. Scripts run in parallel and once per
# variant against that one server: they must use bucket names unique per
# script and variant (BURRY_TEST_VARIANT is exported), and must not print
# the secret.
set -u

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
PATTERN=${1:-}
VARIANTS=${BURRY_TEST_VARIANTS:-release asan}
JOBS=${BURRY_TEST_JOBS:-2}
TIMEOUT=${BURRY_TEST_TIMEOUT:-600}
LOGDIR=$ROOT/build/test-logs

case $JOBS in ''|*[!0-9]*|0) echo "run.sh: BURRY_TEST_JOBS must be a positive number" >&2; exit 2 ;; esac
case $TIMEOUT in ''|*[!0-9]*|0) echo "run.sh: BURRY_TEST_TIMEOUT must be a positive number" >&2; exit 2 ;; esac
for v in $VARIANTS; do
    case $v in release|asan) ;; *) echo "run.sh: unknown variant '$v' (known: release asan)" >&2; exit 2 ;; esac
done
mkdir -p "$LOGDIR" || exit 1

PASSED=0
FAILED=0
SELECTED=0

matches() { [ -z "$PATTERN" ] || [[ $1 == *"$PATTERN"* ]]; }

# A test that cannot even start (not built) counts as one failed check.
fail_now() {
    echo "not ok - $1"
    FAILED=$((FAILED + 1))
}

# --- the job queue: at most $JOBS tests at once, summarised as they finish ---
declare -A RUNNING=()     # pid -> job index
J_LABEL=() J_LOG=() J_START=()

# Count the checks in a finished test's log and print its summary.
report() {
    local i=$1 rc=$2 log=${J_LOG[$1]} label=${J_LABEL[$1]}
    local nok nnot secs note=""
    nok=$(grep -c '^ok - ' "$log")
    nnot=$(grep -c '^not ok - ' "$log")
    secs=$((SECONDS - J_START[i]))
    grep '^not ok - ' "$log" | sed 's/^/    /'
    PASSED=$((PASSED + nok))
    FAILED=$((FAILED + nnot))
    if [ "$rc" -ne 0 ] && [ "$nnot" -eq 0 ]; then
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            note="$label timed out after ${TIMEOUT}s"
        else
            note="$label exited with status $rc"
        fi
    elif [ "$rc" -eq 0 ] && [ "$nok" -eq 0 ] && [ "$nnot" -eq 0 ]; then
        note="$label ran no checks"
    fi
    if [ -n "$note" ]; then
        echo "    not ok - $note"
        FAILED=$((FAILED + 1))
        tail -n 15 "$log" | sed 's/^/    | /'
    fi
    printf '%-40s %4d ok, %d not ok, %ds%s\n' "$label" "$nok" "$nnot" "$secs" \
        "$( [ "$nnot" -ne 0 ] || [ -n "$note" ] && echo "  (log: ${log#"$ROOT"/})")"
}

reap_one() {
    local pid rc
    wait -n -p pid "${!RUNNING[@]}"
    rc=$?
    [ -n "${pid:-}" ] || return 0
    report "${RUNNING[$pid]}" "$rc"
    unset "RUNNING[$pid]"
}

# start LABEL LOGFILE COMMAND...: runs the command under timeout in the
# background (timeout puts it in its own process group and kills the whole
# group, servers a script started included, when the time is up).
start() {
    local label=$1 log=$2; shift 2
    while [ ${#RUNNING[@]} -ge "$JOBS" ]; do reap_one; done
    local i=${#J_LABEL[@]}
    J_LABEL[i]=$label J_LOG[i]=$log J_START[i]=$SECONDS
    timeout --kill-after=15 "$TIMEOUT" "$@" >"$log" 2>&1 </dev/null &
    RUNNING[$!]=$i
}

drain() { while [ ${#RUNNING[@]} -gt 0 ]; do reap_one; done; }

on_signal() {
    local pid
    for pid in "${!RUNNING[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    echo "run.sh: interrupted" >&2
    exit 130
}
trap on_signal INT TERM

# The shared radosgw: started before the scripts when one needs it, stopped
# by PID on exit (an interruption included); its logs are kept in $LOGDIR/rgw.
RGW_DIR=""
RGW_OK=0
stop_rgw() {
    [ -n "$RGW_DIR" ] || return 0
    rgw_stop "$RGW_DIR"
    rm -rf "$LOGDIR/rgw"
    cp -r "$RGW_DIR/log" "$LOGDIR/rgw" 2>/dev/null
    rm -rf "$RGW_DIR"
    RGW_DIR=""
}
trap stop_rgw EXIT
needs_rgw() { grep -qx '# needs: rgw' "$1" 2>/dev/null; }

set_variant_env() {
    export BURRY_TEST_VARIANT=$1
    if [ "$1" = asan ]; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        export BURRY=$ROOT/build/asan/bin/burry
    else
        unset ASAN_OPTIONS UBSAN_OPTIONS
        export BURRY=$ROOT/bin/burry
    fi
}

# --- (a) unit test programs ---
for v in $VARIANTS; do
    set_variant_env "$v"
    for src in tests/unit/test_*.c; do
        [ -e "$src" ] || continue
        name=$(basename "$src" .c)
        matches "$name" || continue
        SELECTED=$((SELECTED + 1))
        bin=build/$v/tests/$name
        if [ ! -x "$bin" ]; then
            fail_now "$v $name is not built (run 'make all asan')"
            continue
        fi
        start "$v $name" "$LOGDIR/$v-$name.log" "$ROOT/$bin"
    done
    drain
done

# --- (b) CLI and integration scripts, once per binary ---
if [ -n "${BURRY_TEST_SCRIPTS:-}" ]; then
    read -r -a SCRIPTS <<<"$BURRY_TEST_SCRIPTS"
else
    SCRIPTS=(tests/cli/*.sh tests/integration/*.sh)
fi
want_rgw=0
for s in "${SCRIPTS[@]}"; do
    [ -f "$s" ] || continue
    matches "$(basename "$(dirname "$s")")-$(basename "$s" .sh)" || continue
    needs_rgw "$s" && want_rgw=1
done
if [ $want_rgw -eq 1 ]; then
    # shellcheck source=tests/lib/rgw.sh
    . "$ROOT/tests/lib/rgw.sh"
    RGW_DIR=$(mktemp -d "${TMPDIR:-/tmp}/burry-rgw.XXXXXX") || exit 1
    rgw_started=$SECONDS
    if rgw_start "$RGW_DIR" >"$LOGDIR/rgw-start.log" 2>&1; then
        RGW_OK=1
        export RGW_CLUSTER_DIR=$RGW_DIR   # for scripts that start a gateway of their own
        echo "radosgw for the S3 tests on $RGW_ENDPOINT (ready in $((SECONDS - rgw_started))s)"
    else
        echo "run.sh: radosgw did not start; scripts marked '# needs: rgw' fail:" >&2
        sed 's/^/    | /' "$LOGDIR/rgw-start.log" >&2
    fi
fi

for v in $VARIANTS; do
    set_variant_env "$v"
    have_bin=1
    for s in "${SCRIPTS[@]}"; do
        [ -f "$s" ] || continue
        name=$(basename "$(dirname "$s")")-$(basename "$s" .sh)
        matches "$name" || continue
        SELECTED=$((SELECTED + 1))
        if [ ! -x "$BURRY" ]; then
            [ $have_bin -eq 1 ] && fail_now "$v binary ${BURRY#"$ROOT"/} is not built (run 'make all asan')"
            have_bin=0
            continue
        fi
        if [ $RGW_OK -eq 0 ] && needs_rgw "$s"; then
            fail_now "$v $name needs radosgw, which did not start (log: ${LOGDIR#"$ROOT"/}/rgw-start.log)"
            continue
        fi
        start "$v $name" "$LOGDIR/$v-$name.log" bash "$s"
    done
    drain
done

stop_rgw

if [ "$SELECTED" -eq 0 ]; then
    if [ -n "$PATTERN" ]; then
        echo "run.sh: no test matched '$PATTERN'" >&2
    else
        echo "run.sh: no tests found" >&2
    fi
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
