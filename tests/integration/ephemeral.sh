#!/bin/bash
# Ephemeral nodes held by a live session are not saved and are counted in
# skipped.ephemeral; container and TTL nodes (which the server shows to
# clients as persistent) are saved and come back as persistent nodes.
set -u; . "$(dirname "$0")/../lib/lib.sh"; . "$(dirname "$0")/../lib/zk.sh"; t_tmpdir

zk_start src -Dznode.container.checkIntervalMs=100 || exit 1
PA=$ZK_PORT
zk_start dst -Dznode.container.checkIntervalMs=100 || exit 1
PB=$ZK_PORT
S=$T_TMP/store

zk_py "$PA" "$(cat <<'PY'
import zkextra
zk.create('/brokers/ids', b'', makepath=True)
zk.create('/brokers/topics/t1', b'{"partitions": 3}', makepath=True)
zkextra.create_container(zk, '/locks', b'container data')
zk.create('/locks/holder', b'persistent child of a container')
zkextra.create_ttl(zk, '/leases', b'ttl node', 3600000)
PY
)" || { not_ok "fixture could not be created"; exit 1; }

# a live session (a background kazoo process) holds three ephemeral nodes
# for as long as it runs; it says "ready" once they exist
HOLDER_READY=$T_TMP/holder.ready
/usr/bin/python3 - "$PA" "$HOLDER_READY" <<'PY' >/dev/null 2>&1 &
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts='127.0.0.1:' + sys.argv[1], timeout=30)
zk.start(timeout=10)
zk.create('/brokers/ids/1', b'{"host": "b1"}', ephemeral=True)
zk.create('/brokers/ids/2', b'{"host": "b2"}', ephemeral=True)
zk.create('/session-lock', b'', ephemeral=True)
open(sys.argv[2], 'w').write('ready')
time.sleep(120)
PY
HOLDER=$!
stop_holder() { kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; }
trap 'stop_holder; t_cleanup' EXIT
wait_until 20 test -s "$HOLDER_READY" || not_ok "the ephemeral nodes were not created in time"
expect_eq "kazoo sees the ephemeral nodes" "ephemeral ephemeral" \
    "$(zk_tree "$PA" | grep -E '^"/brokers/ids/[12]"' | cut -f2 | tr '\n' ' ' | sed 's/ $//')"

run_burry backup "zk://127.0.0.1:$PA" "$S" --json
expect_eq "backup with live ephemeral nodes exits 0" 0 "$RC"
expect_eq "skipped.ephemeral counts the three ephemeral nodes" 3 "$(jget 'd["skipped"].get("ephemeral")')"
PERSISTENT=$(zk_tree "$PA" | grep -vc $'\tephemeral\t')
expect_eq "nodes counts only the persistent ones" "$PERSISTENT" "$(jget 'd["nodes"]')"
ID=$(jget 'd["snapshot"]')
LIST=$(tar -tf "$S/zk-127.0.0.1-$PA/$ID.tar.zst")
expect_no_match "archive holds no ephemeral node" '^tree/(brokers/ids/[12]|session-lock)/' "$LIST"
expect_match "archive holds the ephemerals' persistent parent" '^tree/brokers/ids/@meta$' "$LIST"
expect_match "archive holds the container node" '^tree/locks/@meta$' "$LIST"
expect_match "archive holds the TTL node" '^tree/leases/@meta$' "$LIST"
run_burry show "$S" --snapshot "$ID" --json
expect_eq "manifest records skipped.ephemeral" 3 "$(jget 'd["skipped"].get("ephemeral")')"
run_burry backup "zk://127.0.0.1:$PA" "$S"
expect_match "human summary reports the skipped ephemeral nodes" '3 ephemeral' "$OUT"
stop_holder

run_burry restore "zk://127.0.0.1:$PB" "$S" --snapshot "$ID" --json
expect_eq "restore exits 0" 0 "$RC"
expect_eq "restore creates the persistent nodes only" $((PERSISTENT - 1)) "$(jget 'd["created"]')"
zk_tree "$PB" >"$T_TMP/b.tree"
expect_eq "no ephemeral node on the target" "<absent> <absent>" \
    "$(tree_line "$T_TMP/b.tree" /brokers/ids/1) $(tree_line "$T_TMP/b.tree" /session-lock)"
expect_eq "container node restored with its data" "$(printf '"/locks"\tpersistent\thex:%s\tworld:anyone:cdrwa' "$(printf 'container data' | od -An -tx1 | tr -d ' \n')")" \
    "$(tree_line "$T_TMP/b.tree" /locks)"
expect_eq "TTL node restored with its data" "$(printf '"/leases"\tpersistent\thex:%s\tworld:anyone:cdrwa' "$(printf 'ttl node' | od -An -tx1 | tr -d ' \n')")" \
    "$(tree_line "$T_TMP/b.tree" /leases)"

# The restored container is a persistent node: once its child is deleted it
# stays, while a real container on the same server (the control) is removed
# by the server's container manager (checkIntervalMs=100).
zk_py "$PB" "import zkextra" "zkextra.create_container(zk, '/control', b'')" \
    "zk.create('/control/kid', b'')" "zk.delete('/control/kid')" "zk.delete('/locks/holder')" 2>/dev/null
gone() { [ "$(zk_py "$PB" "print(zk.exists('/control') is None)" 2>/dev/null)" = True ]; }
if wait_until 20 gone; then
    ok "control: an empty container is removed by the server"
    # one more container-manager cycle on top of the one that removed /control
    sleep 0.5
    expect_eq "the restored container node is persistent (survives without children)" True \
        "$(zk_py "$PB" "print(zk.exists('/locks') is not None)" 2>/dev/null)"
else
    not_ok "control: an empty container is removed by the server"
fi

t_done
