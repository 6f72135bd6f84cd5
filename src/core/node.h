/* One node of a service's tree as it travels between a source, the archive
 * format and the restorer.
 *
 * Paths are byte strings in a canonical form shared by every service: each
 * segment is preceded by '/', segments are arbitrary bytes other than '/'
 * (NUL included), and the root is the empty string. ZooKeeper "/a/b" is
 * "/a/b"; etcd key "foo" is "/foo", etcd key "/foo" is "//foo" (an empty
 * first segment), etcd key "a/" is "/a/". */
#ifndef BURRY_NODE_H
#define BURRY_NODE_H

#include <jansson.h>
#include <stddef.h>

struct bnode {
    const char *path;
    size_t path_len;
    const char *value;  /* NULL together with has_value == 0 means "no value" */
    size_t value_len;
    int has_value;      /* 0: null value (ZooKeeper null data, etcd intermediate) */
    json_t *attrs;      /* source-specific metadata object (ACL, type, stat, ...); borrowed, may be NULL */
    /* Or the same object already written as compact JSON with sorted keys,
     * exactly as jsonout_compact would write it (a flat source can build
     * it without a json_t per key); when set, the archive takes it instead
     * of attrs. */
    const char *attrs_json;
    size_t attrs_json_len;
};

#endif
