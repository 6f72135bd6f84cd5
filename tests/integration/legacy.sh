#!/bin/bash
# The original Go tool's command line keeps working: -e/--endpoint, -t
# local|tty, -o backup|restore, -s, --timeout, -b and its .burryfest.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

zk_start src || exit 1
PA=$ZK_PORT
zk_start dst || exit 1
PB=$ZK_PORT
zk_py "$PA" "$(cat <<'PY'
zk.create('/kafka/brokers/topics/t1', b'{"version": 1}', makepath=True)
zk.set('/kafka', b'data on an inner node')
zk.create('/kafka/content', b'a child named content')
zk.create('/nulldata', None)
PY
)" || { not_ok "fixture could not be created"; exit 1; }
ID_RE='[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{4}'

# --- -e HOST:PORT -t local: a backup into the current directory ---
W=$T_TMP/w1
mkdir -p "$W" && cd "$W" || exit 1
run_burry -e "127.0.0.1:$PA" -t local
expect_eq "-e -t local: exit 0" 0 "$RC"
expect_match "-e -t local: prints the original success line" "^Operation successfully completed\\. The snapshot ID is: $ID_RE\$" "$OUT"
ID1=$(printf '%s' "$OUT" | sed -n 's/^Operation successfully completed\. The snapshot ID is: //p')
check "-e -t local: the snapshot is in the current directory" test -f "$W/zk-127.0.0.1-$PA/$ID1.json"
run_burry ls . --json
expect_eq "-e -t local: ls of the current directory lists it" "$ID1" "$(jget '" ".join(s["id"] for s in d["snapshots"])')"
run_burry -e "127.0.0.1:$PA" -t local -o backup -i zk
expect_eq "-o backup -i zk: exit 0" 0 "$RC"
expect_match "-o backup -i zk: success line" "^Operation successfully completed\\. The snapshot ID is: $ID_RE\$" "$OUT"

# --- --endpoint HOST:PORT and --endpoint=HOST:PORT ---
run_burry --endpoint "127.0.0.1:$PA" -t local
expect_eq "--endpoint HOST:PORT: exit 0" 0 "$RC"
expect_match "--endpoint HOST:PORT: success line" "^Operation successfully completed\\. The snapshot ID is: $ID_RE\$" "$OUT"
run_burry --endpoint="127.0.0.1:$PA" --target=local
expect_eq "--endpoint=HOST:PORT: exit 0" 0 "$RC"
expect_match "--endpoint=HOST:PORT: success line" "^Operation successfully completed\\. The snapshot ID is: $ID_RE\$" "$OUT"
run_burry ls . --json
expect_eq "four legacy backups are listed" 4 "$(jget 'len(d["snapshots"])')"

# --- -t tty and the default target dump the tree ---
run_burry -e "127.0.0.1:$PA" -t tty
expect_eq "-t tty: exit 0" 0 "$RC"
expect_match "-t tty: shows an inner node with its data" "^/kafka	21	\"data on an inner node\"" "$OUT"
expect_match "-t tty: shows a leaf" '^/kafka/brokers/topics/t1	14	' "$OUT"
expect_match "-t tty: shows a child named content" '^/kafka/content	' "$OUT"
TTY_OUT=$OUT
run_burry -e "127.0.0.1:$PA"
expect_eq "default target: exit 0" 0 "$RC"
expect_eq "default target is tty (same dump)" "$TTY_OUT" "$OUT"
expect_eq "-t tty writes no snapshot" 4 "$(ls "$W/zk-127.0.0.1-$PA"/*.json | wc -l)"

# --- -o restore -s ID -t local into another server ---
run_burry -e "127.0.0.1:$PB" -o restore -s "$ID1" -t local
expect_eq "-o restore -s ID: exit 0" 0 "$RC"
expect_match "-o restore -s ID: success line" '^Operation successfully completed' "$OUT"
expect_eq "-o restore: the target tree equals the source (kazoo)" "$(zk_tree "$PA")" "$(zk_tree "$PB")"
run_burry -e "127.0.0.1:$PB" -o restore -t local
expect_eq "-o restore without -s: exit 2" 2 "$RC"
run_burry -e "127.0.0.1:$PB" -o restore -s 20200101T000000.000Z-abcd -t local
expect_eq "-o restore with an unknown ID: exit 1" 1 "$RC"
expect_match "-o restore with an unknown ID: named" '20200101T000000\.000Z-abcd' "$ERR"

# --- -b writes .burryfest (0600, no secrets); a later run without -e uses it ---
W2=$T_TMP/w2
mkdir -p "$W2" && cd "$W2" || exit 1
run_burry -e "127.0.0.1:$PA" -t local -b
expect_eq "-b: exit 0" 0 "$RC"
expect_match "-b: success line" "^Operation successfully completed\\. The snapshot ID is: $ID_RE\$" "$OUT"
check "-b: .burryfest exists" test -f "$W2/.burryfest"
expect_eq "-b: .burryfest has mode 0600" 600 "$(stat -c %a "$W2/.burryfest" 2>/dev/null)"
FEST=$(cat "$W2/.burryfest" 2>/dev/null)
expect_eq "-b: .burryfest records the endpoint" "127.0.0.1:$PA" "$(json_get "$FEST" 'd.get("svc-endpoint")' 2>/dev/null)"
expect_no_match "-b: .burryfest holds no secret" '(password|secret|[Aa]uth)' "$FEST"
run_burry -t local
expect_eq "a later run without -e: exit 0" 0 "$RC"
expect_match "a later run without -e backs up the remembered endpoint" "^Operation successfully completed\\. The snapshot ID is: $ID_RE\$" "$OUT"
expect_eq "a later run without -e: two snapshots in the directory" 2 "$(ls "$W2/zk-127.0.0.1-$PA"/*.json 2>/dev/null | wc -l)"
run_burry -o backup
expect_eq "a run with only -o uses the remembered target too (local)" 3 "$(ls "$W2/zk-127.0.0.1-$PA"/*.json 2>/dev/null | wc -l)"
mkdir -p "$T_TMP/w3" && cd "$T_TMP/w3" || exit 1
run_burry -t local
expect_eq "no -e and no .burryfest: exit 2" 2 "$RC"
expect_match "no -e and no .burryfest: says -e is needed" '-e' "$ERR"

# --- --timeout ---
run_burry -e "127.0.0.1:$PA" -t local --timeout 5
expect_eq "--timeout N with a live server: exit 0" 0 "$RC"
DEAD=$(free_port)
START=$SECONDS
run_burry -e "127.0.0.1:$DEAD" -t local --timeout 2
expect_eq "--timeout with nothing listening: exit 1" 1 "$RC"
expect_match "--timeout with nothing listening: names the endpoint" "127\\.0\\.0\\.1:$DEAD" "$ERR"
if [ $((SECONDS - START)) -le 8 ]; then ok "--timeout 2 bounds the wait"; else not_ok "--timeout 2 bounds the wait (took $((SECONDS - START))s)"; fi
run_burry -e "127.0.0.1:$PA" --timeout nope
expect_eq "--timeout not a number: exit 2" 2 "$RC"

# --- unsupported legacy choices are usage errors ---
run_burry -e "127.0.0.1:$PA" -i mysql
expect_eq "-i with an unknown service: exit 2" 2 "$RC"
expect_match "-i with an unknown service: names the known ones" 'zk, etcd or consul' "$ERR"
run_burry -e "127.0.0.1:$PA" -t s3
expect_eq "-t s3 (not yet): exit 2" 2 "$RC"
run_burry -e "127.0.0.1:$PA" -o frobnicate
expect_eq "-o unknown: exit 2" 2 "$RC"
run_burry -e "127.0.0.1:$PA" --bogus
expect_eq "unknown legacy option: exit 2" 2 "$RC"

t_done
