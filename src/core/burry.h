/* The library's entry points, one per verb; the CLIs parse arguments, call
 * these and print the JSON documents they return. Every function returns 0
 * or a negative code from err.h with e set. */
#ifndef BURRY_API_H
#define BURRY_API_H

#include <jansson.h>

#include "err.h"
#include "node.h"
#include "opts.h"

/* Back up the service at src_url into the store. name may be NULL (derived
 * from the URL). *out receives {"snapshot", "name", "service", "source",
 * "nodes", "bytes", "skipped": {...}, "skipped_paths": [...], "store",
 * "archive": {"key", "size", "sha256"}}. */
int burry_backup(const struct burry_opts *o, const char *src_url, const char *store_url,
                 const char *name, json_t **out, struct burry_err *e);

/* Plan lines of a restore: action is "create", "exists-same",
 * "exists-different", "overwrite", "existing" or "failed". */
typedef void (*burry_plan_fn)(void *ctx, const char *action, const char *display_path,
                              const char *detail);

struct burry_restore_req {
    const char *snapshot;    /* ID or "latest" (NULL: latest) */
    const char *name;        /* restrict "latest" to this name, or NULL */
    const char *path;        /* restore only this subtree (user form), or NULL */
    const char *into;        /* place it under this prefix (user form), or NULL */
    int dry_run;
    int overwrite;
    burry_plan_fn plan;      /* called per node on dry runs and, with -v, on real runs */
    void *plan_ctx;
};

/* *out receives {"snapshot", "name", "dry_run", "created", "existing",
 * "different", "overwritten", "failed"} even when the restore failed part
 * way, so the caller can report how far it got. */
int burry_restore(const struct burry_opts *o, const char *src_url, const char *store_url,
                  const struct burry_restore_req *req, json_t **out, struct burry_err *e);

/* {"snapshots": [{"id", "name", "service", "source", "time", "nodes",
 * "bytes", "size"}...]} oldest first; name may be NULL. */
int burry_list(const struct burry_opts *o, const char *store_url, const char *name,
               json_t **out, struct burry_err *e);

/* The snapshot's manifest (the published sidecar). */
int burry_show(const struct burry_opts *o, const char *store_url, const char *snapshot,
               const char *name, json_t **out, struct burry_err *e);

/* Check archives against their manifests: {"snapshots": [{"id", "name",
 * "ok", "error"?}...]}; returns BURRY_EFAIL if any is damaged. */
int burry_verify(const struct burry_opts *o, const char *store_url, const char *snapshot,
                 const char *name, int all, json_t **out, struct burry_err *e);

/* burry_verify of one published snapshot whose manifest m (as catalog_list
 * lists it) the caller has read from st. *store_failed is set when the store
 * could not be read (a request that failed or broke off): nothing is then
 * known about the snapshot, and the message does not call it damaged. */
struct store_ops;
struct store;
int burry_verify_listed(const struct store_ops *ops, struct store *st, json_t *m, const struct burry_opts *o,
                        int *store_failed, struct burry_err *e);
/* Only the stored bytes of that snapshot (its archive read whole, not
 * decrypted) against the size and SHA-256 that m records: all that can be
 * checked of an encrypted one without a key that opens it. *store_failed
 * as above. */
int burry_verify_stored(const struct store_ops *ops, struct store *st, json_t *m, int *store_failed,
                        struct burry_err *e);

/* Keep the newest keep snapshots of each name (or only of name) and delete
 * the rest; *out = {"dry_run", "keep", "deleted": [{"id","name"}], "kept": [...],
 * "damaged": [{"id","name","error"}]}. A damaged snapshot (its sidecar does
 * not read, its archive is missing or of another size) neither counts toward
 * keep nor is deleted. just_written (may be NULL), the snapshot a backup has
 * just stored, is always kept and counted first. */
int burry_prune(const struct burry_opts *o, const char *store_url, const char *name, int keep,
                int dry_run, const char *just_written, json_t **out, struct burry_err *e);

/* Walk the live tree and hand every node to fn (path in display form). */
typedef int (*burry_dump_fn)(void *ctx, const char *display_path, const struct bnode *n);
int burry_dump(const struct burry_opts *o, const char *src_url, burry_dump_fn fn, void *ctx,
               struct burry_err *e);

#endif
