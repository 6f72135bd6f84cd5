#!/usr/bin/python3
"""Print a ZooKeeper tree in a canonical text form, read with kazoo (a client
independent of burry), so that tests can compare two servers with cmp/diff.

  zktree.py PORT [--root /path] [--auth digest:USER:PASSWORD]... [--no-acl]
            [--with-zookeeper] [--count]

One line per node, parents before children, children sorted by name:
  PATH<TAB>TYPE<TAB>DATA<TAB>ACL
PATH is JSON-quoted (UTF-8, no ASCII escapes) and relative to --root ("/" for the root itself); TYPE is
"persistent" or "ephemeral"; DATA is "null", "hex:<bytes>" for values up to
64 bytes, else "len:<n>:sha256:<hex>"; ACL lists "scheme:id:perms" in the
server's order. A node the client may not read shows "<noauth>". /zookeeper
is left out unless --with-zookeeper. Requests are pipelined level by level,
so trees of tens of thousands of nodes take a few seconds. --count prints
only the number of nodes.
"""
import hashlib
import json
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError


def perms(p):
    return "".join(c for c, bit in zip("cdrwa", (4, 8, 1, 2, 16)) if p & bit)


def show_data(v):
    if v is None:
        return "null"
    if len(v) <= 64:
        return "hex:" + v.hex()
    return "len:%d:sha256:%s" % (len(v), hashlib.sha256(v).hexdigest())


def main(argv):
    port = argv[1]
    root, auths, with_acl, with_zk, count = "/", [], True, False, False
    i = 2
    while i < len(argv):
        a = argv[i]
        if a == "--root":
            root = argv[i + 1].rstrip("/") or "/"
            i += 1
        elif a == "--auth":
            scheme, cred = argv[i + 1].split(":", 1)
            auths.append((scheme, cred))
            i += 1
        elif a == "--no-acl":
            with_acl = False
        elif a == "--with-zookeeper":
            with_zk = True
        elif a == "--count":
            count = True
        else:
            sys.exit("zktree.py: unknown argument %r" % a)
        i += 1

    zk = KazooClient(hosts="127.0.0.1:%s" % port, timeout=15, auth_data=auths or None)
    zk.start(timeout=15)
    out = {}
    try:
        level = [root]
        while level:
            nxt = []
            for start in range(0, len(level), 2000):
                chunk = level[start:start + 2000]
                reqs = []
                for p in chunk:
                    reqs.append((p, zk.get_async(p), zk.get_children_async(p),
                                 zk.get_acls_async(p) if with_acl else None))
                for p, g, c, a in reqs:
                    try:
                        data, stat = g.get()
                        kind = "ephemeral" if stat.ephemeralOwner else "persistent"
                        data = show_data(data)
                    except NoAuthError:
                        kind, data = "?", "<noauth>"
                    except NoNodeError:
                        continue
                    try:
                        kids = c.get()
                    except NoAuthError:
                        kids = []
                    except NoNodeError:
                        continue
                    acl = ""
                    if a is not None:
                        try:
                            acl = ",".join("%s:%s:%s" % (x.id.scheme, x.id.id, perms(x.perms))
                                           for x in a.get()[0])
                        except NoNodeError:
                            continue
                    rel = p[len(root):] if root != "/" else p
                    out[rel or "/"] = "%s\t%s\t%s\t%s" % (json.dumps(rel or "/", ensure_ascii=False), kind, data, acl)
                    for k in kids:
                        child = (p.rstrip("/") + "/" + k)
                        if child == "/zookeeper" and not with_zk:
                            continue
                        nxt.append(child)
            level = nxt
    finally:
        zk.stop()
        zk.close()
    if count:
        print(len(out))
        return
    # pre-order with children sorted by the UTF-8 bytes of their names
    keys = sorted(out, key=lambda k: [s.encode() for s in k.split("/")[1:]] if k != "/" else [])
    sys.stdout.write("".join(out[k] + "\n" for k in keys))


if __name__ == "__main__":
    import logging
    logging.basicConfig(level=logging.CRITICAL)
    main(sys.argv)
