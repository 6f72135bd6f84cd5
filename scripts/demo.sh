#!/bin/bash
# `make demo`: backs up a small ZooKeeper tree from one throwaway server and
# restores it into a second one, showing each burry command as it runs, then
# checks with an independent client (kazoo) that the two trees match.
# The servers live in a temporary directory and are stopped on any exit.
set -u

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
. tests/lib/lib.sh
. tests/lib/zk.sh
BURRY=$ROOT/bin/burry
PY=/usr/bin/python3

die() { echo "demo: $*" >&2; exit 1; }

[ -x "$BURRY" ] || die "bin/burry is not built; run 'make' first"

HOLDER_PID=""
demo_cleanup() {
    if [ -n "$HOLDER_PID" ]; then
        kill "$HOLDER_PID" 2>/dev/null
        wait "$HOLDER_PID" 2>/dev/null
    fi
    t_cleanup
}
t_tmpdir
trap demo_cleanup EXIT
trap 'exit 130' INT TERM

# run CMD...: shows the command (paths shortened), runs it, stops on failure.
run() {
    local shown=${*//$T_TMP/\$TMP}
    shown=${shown//$ROOT\//}
    printf '\n$ %s\n' "$shown"
    "$@"
    local rc=$?
    [ $rc -eq 0 ] || die "'$shown' failed with exit status $rc"
}

echo "demo: starting two ZooKeeper servers in $T_TMP"
zk_start src || die "the first ZooKeeper server did not start"
P1=$ZK_PORT
zk_start dst || die "the second ZooKeeper server did not start"
P2=$ZK_PORT
STORE=$T_TMP/store
echo "demo: source zk://127.0.0.1:$P1, target zk://127.0.0.1:$P2, store \$TMP/store"

# The sample tree: data on inner nodes, a read-only ACL, a binary value, an
# empty value and a child called "content" (which the Go tool lost).
zk_py "$P1" "$(cat <<'PY'
zk.create('/demo', b'the demo tree')
zk.create('/demo/app', b'an inner node with data')
zk.create('/demo/app/config', b'{"threads": 4}')
zk.create('/demo/app/config/limits', b'max_clients=10\n')
zk.create('/demo/app/content', b'a child named content')
zk.create('/demo/readonly', b'anyone may read, nobody may change',
          acl=[make_acl('world', 'anyone', read=True)])
zk.create('/demo/binary', bytes(range(256)))
zk.create('/demo/empty', b'')
PY
)" || die "cannot load the sample tree into zk://127.0.0.1:$P1"

# An ephemeral node lives only as long as its session, so a helper keeps one
# open while the backup runs; the backup must skip it.
"$PY" - "$P1" >"$T_TMP/holder.out" 2>&1 <<'PY' &
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts='127.0.0.1:' + sys.argv[1], timeout=10)
zk.start(timeout=10)
zk.create('/demo/session', b'held by a live session', ephemeral=True)
print('ready', flush=True)
while True:
    time.sleep(1)
PY
HOLDER_PID=$!
for _ in $(seq 1 100); do
    grep -q ready "$T_TMP/holder.out" 2>/dev/null && break
    kill -0 "$HOLDER_PID" 2>/dev/null || break
    sleep 0.1
done
grep -q ready "$T_TMP/holder.out" 2>/dev/null ||
    die "cannot create the ephemeral node: $(tail -3 "$T_TMP/holder.out")"

echo "demo: the sample tree:"
zk_py "$P1" "$(cat <<'PY'
def show(path, depth):
    data, stat = zk.get(path)
    kind = ' (ephemeral)' if stat.ephemeralOwner else ''
    print('  %s%s  %d bytes%s' % ('  ' * depth, path.rsplit('/', 1)[-1], len(data), kind))
    for c in sorted(zk.get_children(path)):
        show(path + '/' + c, depth + 1)
show('/demo', 0)
PY
)" || die "cannot read the sample tree back"

run "$BURRY" backup "zk://127.0.0.1:$P1" "$STORE"
run "$BURRY" ls "$STORE"
run "$BURRY" show "$STORE" --snapshot latest
run "$BURRY" restore "zk://127.0.0.1:$P2" "$STORE" --snapshot latest --dry-run

zk_py "$P2" "sys.exit(1 if zk.exists('/demo') else 0)" ||
    die "the dry run created nodes on zk://127.0.0.1:$P2"

run "$BURRY" restore "zk://127.0.0.1:$P2" "$STORE" --snapshot latest

echo
echo "demo: comparing the two trees with kazoo"
"$PY" - "$P1" "$P2" <<'PY' || die "the restored tree differs from the original (see above)"
import sys
from kazoo.client import KazooClient

def tree(port):
    zk = KazooClient(hosts='127.0.0.1:%s' % port, timeout=10)
    zk.start(timeout=10)
    nodes, ephemeral = {}, set()
    def walk(path):
        data, stat = zk.get(path)
        acl, _ = zk.get_acls(path)
        if stat.ephemeralOwner:
            ephemeral.add(path)
        else:
            nodes[path] = (data, sorted((a.perms, a.id.scheme, a.id.id) for a in acl))
        for c in zk.get_children(path):
            child = path.rstrip('/') + '/' + c
            if child != '/zookeeper':
                walk(child)
    try:
        walk('/')
    finally:
        zk.stop()
    return nodes, ephemeral

src, src_eph = tree(sys.argv[1])
dst, dst_eph = tree(sys.argv[2])
problems = []
for p in sorted(set(src) - set(dst)):
    problems.append('missing on the target: %s' % p)
for p in sorted(set(dst) - set(src) - src_eph):
    problems.append('only on the target: %s' % p)
for p in sorted(set(src) & set(dst)):
    if src[p][0] != dst[p][0]:
        problems.append('data differs at %s: %r != %r' % (p, src[p][0][:60], dst[p][0][:60]))
    if src[p][1] != dst[p][1]:
        problems.append('ACL differs at %s: %s != %s' % (p, src[p][1], dst[p][1]))
if '/demo/session' not in src_eph:
    problems.append('the ephemeral node /demo/session is not on the source')
for p in sorted(src_eph):
    if p in dst or p in dst_eph:
        problems.append('ephemeral node %s was restored' % p)
for line in problems:
    print('  ' + line, file=sys.stderr)
print('demo: %d nodes compared (data and ACLs), %d ephemeral node(s) skipped as expected'
      % (len(src), len(src_eph)))
sys.exit(1 if problems else 0)
PY
echo "demo: the restored tree matches the original"
