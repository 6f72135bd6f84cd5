"""Node types kazoo 2.8 cannot create (container, TTL), sent as raw requests
through kazoo's own connection: opcode 19 (createContainer) and 21
(createTTL) with the request layout of ZooKeeper 3.8's jute records."""
import struct

from kazoo.protocol.serialization import Create2, int_struct, write_buffer, write_string
from kazoo.security import OPEN_ACL_UNSAFE


class _CreateContainer(Create2):
    type = 19


class _CreateTTL(Create2):
    type = 21

    def serialize(self):
        b = bytearray(Create2.serialize(self))
        b.extend(struct.pack("!q", self.ttl))
        return b


def create_container(zk, path, value=b"", acl=None):
    """Creates a container node (flags 4); returns the created path."""
    req = _CreateContainer(path, value, acl or OPEN_ACL_UNSAFE, 4)
    res = zk.handler.async_result()
    zk._call(req, res)
    return res.get(timeout=10)[0]


def create_ttl(zk, path, value=b"", ttl_ms=3600000, acl=None):
    """Creates a persistent node with a TTL (flags 5); needs the server
    started with -Dzookeeper.extendedTypesEnabled=true."""
    req = _CreateTTL(path, value, acl or OPEN_ACL_UNSAFE, 5)
    req.ttl = ttl_ms
    res = zk.handler.async_result()
    zk._call(req, res)
    return res.get(timeout=10)[0]
