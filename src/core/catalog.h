/* The catalog of a store: snapshot IDs, where a snapshot's files live, and
 * which snapshots are published (those whose manifest "NAME/ID.json" exists;
 * it is written after the archive, so it marks a complete snapshot). */
#ifndef BURRY_CATALOG_H
#define BURRY_CATALOG_H

#include <jansson.h>

#include "err.h"
#include "opts.h"
#include "store.h"

#define CATALOG_MANIFEST_SUFFIX ".json"

/* A new snapshot ID: UTC time to the millisecond plus a random suffix,
 * "20261121T083501.123Z-7f3a"; IDs sort by time. out needs 32 bytes. */
void catalog_new_id(char *out, size_t len);
int catalog_valid_id(const char *id);
/* Names group snapshots: 1-100 bytes of [A-Za-z0-9._-], not starting with
 * '.' or '-'. */
int catalog_check_name(const char *name, struct burry_err *e);

/* Open the archive of a new snapshot, "NAME/ID<suffix>", under a fresh ID
 * (drawing again on the rare clash with an existing key). Fills id (32
 * bytes), created (the ID's time in ISO form, 40 bytes) and *key
 * (malloc'ed). */
int catalog_put_new(const struct store_ops *ops, struct store *st, const char *name, const char *suffix,
                    char id[32], char created[40], char **key, struct store_put **put, struct burry_err *e);

/* Write a small object (a manifest) in one go, published atomically. Not
 * started once burry_interrupted is set (BURRY_EINTR); once started, an
 * interrupt no longer cuts it short: it ends within the store's timeout, and
 * 0 means the object is there. */
int catalog_put_text(const struct store_ops *ops, struct store *st, const char *key, const char *text,
                     struct burry_err *e);

/* put_commit of an archive: like catalog_put_text's, its last request runs
 * to its end once sent, so that an interrupt never leaves an archive stored
 * that the caller believes is not (the caller then removes it). */
int catalog_put_commit(const struct store_ops *ops, struct store *st, struct store_put *p, struct burry_err *e);

/* Remove key, also when burry_interrupted is set: the clean-up after an
 * interrupted write (a second interrupt during it still stops it). */
int catalog_remove_anyway(const struct store_ops *ops, struct store *st, const char *key, struct burry_err *e);

/* The default snapshot name of a source: "SCHEME-HOST-PORT[-EXTRA]" with
 * every byte a name may not hold turned into '-', at most 100 bytes. */
char *catalog_default_name(const char *scheme, const char *host, const char *port, const char *extra,
                           size_t extra_len);

/* Every published snapshot's manifest, oldest first, optionally of one name.
 * *out is a JSON array of manifest objects. A sidecar that does not parse
 * (or names another snapshot) does not fail the listing: it is listed as
 * {"snapshot": ID from its file name, "name", "damaged": "why"}, see
 * catalog_damaged(). */
int catalog_list(const struct store_ops *ops, struct store *st, const char *name, json_t **out,
                 struct burry_err *e);

/* catalog_list, and when name is NULL also the archives of the original Go
 * burry at the store's top level ("ID.zip", ID of digits), each as
 * {"format": GOZIP_FORMAT, "snapshot": ID, "name": null, "archive":
 * {"key", "size"}} (not read), sorted among the others by ID. */
int catalog_list_gozip(const struct store_ops *ops, struct store *st, const char *name, json_t **out,
                       struct burry_err *e);

/* The reason a listed entry is damaged (its sidecar does not read), or NULL. */
const char *catalog_damaged(json_t *m);

/* Unix time of a snapshot ID, or -1; whether it is later than now by more
 * than CATALOG_FUTURE_SLACK seconds (a clock that was ahead). */
#define CATALOG_FUTURE_SLACK 3600
double catalog_id_time(const char *id);
int catalog_id_in_future(const char *id);

/* The manifest of snapshot ref ("latest", NULL meaning latest, or an ID).
 * latest is the newest snapshot (by ID) whose manifest reads; a damaged
 * one is never picked, and naming one explicitly fails. */
int catalog_resolve(const struct store_ops *ops, struct store *st, const char *ref,
                    const char *name, json_t **manifest, struct burry_err *e);

/* Store key of the snapshot's archive ("NAME/ID.tar.zst"), malloc'ed. */
char *catalog_archive_key(json_t *manifest);

/* Read a whole small object (a manifest) into memory, at most max bytes
 * (BURRY_ETOOBIG when it holds more). */
int catalog_read_object(const struct store_ops *ops, struct store *st, const char *key,
                        size_t max, char **out, size_t *len, struct burry_err *e);

/* Find the snapshot a restore or show names and open its store:
 *  - store_url naming an existing regular file that ends in ".zip": an
 *    archive of the original Go burry; the store is its directory and the
 *    snapshot ID its name without ".zip";
 *  - else a published snapshot (catalog_resolve);
 *  - else, for an explicit ID of digits only (the original tool's IDs are
 *    unix times), the original tool's "ID.zip" at the store's top level.
 * *manifest is the published manifest or the zip's description (gozip.h);
 * either way catalog_archive_key() names the archive in *st. */
int catalog_open_snapshot(const char *store_url, const char *ref, const char *name,
                          const struct burry_opts *o, const struct store_ops **ops,
                          struct store **st, json_t **manifest, struct burry_err *e);

/* A store object as a byte stream that can start over (fmt_read_fn and
 * gozip_rewind_fn of format.h and gozip.h). */
struct catalog_get {
    const struct store_ops *ops;
    struct store *st;
    const char *key;
    struct store_get *get;
    unsigned long long size;   /* bytes read since the last (re)start */
};
int catalog_get_open(struct catalog_get *g, const struct store_ops *ops, struct store *st,
                     const char *key, struct burry_err *e);
ssize_t catalog_get_read(void *ctx, void *buf, size_t len, struct burry_err *e);
int catalog_get_rewind(void *ctx, struct burry_err *e);
void catalog_get_close(struct catalog_get *g);

/* Open the store named by url (NULL: "burry-snapshots", a directory). */
int catalog_open_store(const char *url, const struct burry_opts *o, const struct store_ops **ops,
                       struct store **st, struct burry_err *e);

/* Whether url names a store and is well formed for it, from the URL alone
 * (nothing is opened or contacted); BURRY_EUSAGE if not. */
int catalog_check_store_url(const char *url, struct burry_err *e);

/* Whether the snapshots of name can be written to st now (store_ops
 * check_put; 0 for a store that has no such check). */
int catalog_check_put(const struct store_ops *ops, struct store *st, const char *name, struct burry_err *e);

#endif
