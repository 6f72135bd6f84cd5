/* The interface every service (ZooKeeper, etcd, Consul, ...) implements: one
 * file per service exporting one const struct source_ops, registered in
 * registry.c. The core's walker (walk.c) and restorer (restore.c) drive these
 * operations; a source knows only how to read and write nodes of its service.
 *
 * Asynchronous model: *_submit() queues one request and returns at once;
 * pump() does I/O for up to timeout_ms and calls the completion callbacks of
 * finished requests. Sources pipeline as many requests as they are given; the
 * core bounds the number in flight (opts->window).
 *
 * Rules every source keeps:
 *  - callbacks run only inside pump(), never inside a *_submit() call;
 *  - writes take effect in submit order (the restorer relies on it to create
 *    parents before children); a source of flat keys (flat_keys), which has
 *    no parents, may apply them concurrently;
 *  - a fatal error surfaces as pump() < 0; the callbacks of requests still
 *    outstanding then may never run, and close() drops them without calling. */
#ifndef BURRY_SOURCE_H
#define BURRY_SOURCE_H

#include <stddef.h>
#include <jansson.h>

#include "err.h"
#include "node.h"
#include "opts.h"

struct source; /* private to each implementation */

/* Result of reading one node (tree sources). */
enum src_read_status {
    SRC_READ_OK = 0,
    SRC_READ_SKIP,       /* deliberately not backed up (reason says why, e.g. "ephemeral") */
    SRC_READ_GONE,       /* deleted while we walked: not an error, counted as "vanished" */
    SRC_READ_DENIED,     /* not allowed to read: fails the backup unless --skip-unreadable */
};

struct src_read {
    enum src_read_status status;
    const char *reason;            /* SRC_READ_SKIP: counter name; SRC_READ_DENIED: why */
    const char *value;
    size_t value_len;
    int has_value;
    json_t *attrs;                 /* reference passed to the callee (it decrefs) */
    const char *const *children;   /* child names (raw bytes, no '/'), any order */
    const size_t *child_len;
    size_t nchildren;
};

typedef void (*src_read_cb)(void *ctx, void *token, const struct src_read *r);

/* What a write did (or, for a plan, would do). */
enum src_write_mode {
    SRC_WRITE_CREATE = 0,    /* create if absent; leave an existing node untouched */
    SRC_WRITE_OVERWRITE,     /* create if absent; else make data and metadata equal */
    SRC_WRITE_PLAN,          /* change nothing: report what CREATE (or OVERWRITE) would do */
    SRC_WRITE_PLAN_OVERWRITE,
};

enum src_write_outcome {
    SRC_W_CREATED = 0,       /* created (plan: would create) */
    SRC_W_EXISTING,          /* existed and was left alone (create mode) */
    SRC_W_SAME,              /* existed with equal data and metadata */
    SRC_W_DIFFERENT,         /* existed with other data or metadata, left alone (plan) */
    SRC_W_OVERWRITTEN,       /* existed and was set (plan-overwrite: would set) */
    SRC_W_FAILED,            /* this node failed; msg says why; the restore goes on */
};

typedef void (*src_write_cb)(void *ctx, void *token, enum src_write_outcome out, const char *msg);

/* Flat sources (etcd v3, Consul) emit nodes in archive order through this.
 * The node and all it points to (attrs too) are the source's, valid only
 * during the call: a source may reuse them for the next node. */
typedef int (*src_emit_fn)(void *ctx, const struct bnode *n, struct burry_err *e);

struct source_ops {
    const char *scheme;      /* URL scheme: "zk" */
    int https_form;          /* "SCHEME+https://" is the same service over TLS */
    const char *service;     /* service name in manifests: "zookeeper" */

    /* url is the full user URL; secrets come from opts, never from the URL
     * string written to manifests (see describe). */
    int (*open)(struct source **out, const char *url, const struct burry_opts *o,
                struct burry_err *e);
    void (*close)(struct source *s);

    /* Credential-free form of the URL for manifests and messages, malloc'ed. */
    char *(*describe)(const char *url);
    /* Default snapshot name for this URL, e.g. "zk-127.0.0.1-2181", malloc'ed. */
    char *(*default_name)(const char *url);
    /* Convert a user-facing path (--path, --into) to a canonical node path
     * (node.h). Returns 0 or BURRY_EUSAGE. (Plans and messages show
     * canonical paths, through names_display, for every service.) */
    int (*user_path)(const char *user, char **out, size_t *out_len, struct burry_err *e);
    /* Optional: the canonical path every restored node must start with (a
     * byte prefix, not segment-wise) for this target URL, malloc'ed, or *out
     * NULL when the URL sets none. etcd v3, whose archives hold whole keys:
     * its URL's key prefix only selects the snapshot's keys, and a restore
     * never writes outside it. Returns 0 or BURRY_EUSAGE. */
    int (*restore_scope)(const char *url, char **out, size_t *out_len, struct burry_err *e);
    /* Keys need no parents (etcd v3, Consul): a restore of --path creates
     * none of the snapshot's nodes above it. */
    int flat_keys;
    /* Extra facts for the manifest ("server version", "revision"), or NULL. */
    json_t *(*manifest_info)(struct source *s);

    /* Tree sources: read one node (value, attrs, children). */
    int (*read_submit)(struct source *s, const char *path, size_t len,
                       src_read_cb cb, void *ctx, void *token, struct burry_err *e);
    /* Flat sources: emit every node in archive order (instead of read_submit). */
    int (*scan)(struct source *s, src_emit_fn emit, void *ctx, struct burry_err *e);

    /* Restore one node; the source copies what it needs before returning.
     * attrs may be NULL for a node the restorer synthesises (a missing
     * ancestor of --into), to be created with the service's defaults. */
    int (*write_submit)(struct source *s, const struct bnode *n, enum src_write_mode mode,
                        src_write_cb cb, void *ctx, void *token, struct burry_err *e);

    /* Optional: every node of the restore has been submitted; finish work
     * a source deferred until the end of a subtree (ZooKeeper sets the exact
     * ACL of a read-only parent only after its children exist). */
    int (*write_end)(struct source *s, struct burry_err *e);

    /* Do I/O for up to timeout_ms, run completions; <0 on a fatal error
     * (connection lost for good, session expired) with e set. */
    int (*pump)(struct source *s, int timeout_ms, struct burry_err *e);
    /* Number of submitted requests whose callbacks have not run yet. */
    size_t (*pending)(struct source *s);
};

/* The part of url after "SCHEME://", or after "SCHEME+https://" with
 * *https set (the TLS form of an HTTP-speaking service); NULL when url
 * starts with neither. */
const char *source_url_rest(const char *url, const char *scheme, int *https);

#endif
