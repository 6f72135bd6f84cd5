/* The generic restorer and the verify verb. A restore first reads the whole
 * archive and checks every checksum; only then does it connect and replay
 * the nodes in archive order (parents before children) through the
 * source's pipelined writes, filtered by --path and moved by --into. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "age.h"
#include "burry.h"
#include "buf.h"
#include "catalog.h"
#include "format.h"
#include "gozip.h"
#include "names.h"
#include "registry.h"

/* The archive's way from the store: the stored bytes are counted and
 * hashed (the published manifest records their size and SHA-256), then
 * decrypted when the snapshot is encrypted. */
struct get_ctx {
    const struct store_ops *ops;
    struct store_get *get;
    EVP_MD_CTX *md;
    uint64_t size;
    struct age_dec *age;
    int *store_failed;   /* set when the store could not be read; may be NULL */
};

static ssize_t raw_read(void *ctx, void *buf, size_t len, struct burry_err *e)
{
    struct get_ctx *g = ctx;
    ssize_t n = g->ops->get_read(g->get, buf, len, e);
    if (n > 0) {
        EVP_DigestUpdate(g->md, buf, (size_t)n);
        g->size += (uint64_t)n;
    } else if (n < 0 && g->store_failed) {
        *g->store_failed = 1;
    }
    return n;
}

static ssize_t get_read(void *ctx, void *buf, size_t len, struct burry_err *e)
{
    struct get_ctx *g = ctx;
    if (g->age)
        return age_dec_read(g->age, buf, len, e);
    return raw_read(ctx, buf, len, e);
}

static void get_ctx_close(struct get_ctx *g)
{
    age_dec_free(g->age);
    EVP_MD_CTX_free(g->md);
    if (g->get)
        g->ops->get_close(g->get);
    memset(g, 0, sizeof *g);
}

static void get_ctx_sha256(struct get_ctx *g, char hex[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(g->md, d, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* Open the snapshot's stored archive for reading, counted and hashed. */
static int open_stored(const struct store_ops *ops, struct store *st, json_t *m, struct get_ctx *g,
                       struct burry_err *e)
{
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    char *key = catalog_archive_key(m);
    if (!key)
        return burry_errf(e, BURRY_EFAIL, "manifest of snapshot '%s' names no archive", id);
    g->ops = ops;
    int rc = ops->get_open(st, key, &g->get, e);
    if (rc < 0 && rc != BURRY_ENOENT && g->store_failed)
        *g->store_failed = 1;
    if (rc == BURRY_ENOENT) {
        burry_err_clear(e);
        rc = burry_errf(e, BURRY_EFAIL, "archive '%s' of snapshot '%s' is missing from %s", key, id,
                        ops->describe(st));
    }
    free(key);
    if (rc < 0)
        return rc;
    if (!(g->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(g->md, EVP_sha256(), NULL) != 1) {
        get_ctx_close(g);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    return 0;
}

/* Open the snapshot's archive for reading (decrypting it if need be). A
 * key that opens none of its recipients' stanzas fails with BURRY_ENOKEY. */
static int open_archive(const struct store_ops *ops, struct store *st, json_t *m,
                        const struct burry_opts *o, struct get_ctx *g, struct fmt_reader **r,
                        struct burry_err *e)
{
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    const char *enc = json_string_value(json_object_get(m, "encryption"));
    if (enc && strcmp(enc, "age"))
        return burry_errf(e, BURRY_EFAIL, "snapshot '%s' is encrypted with '%s', which this burry does not know",
                          id, enc);
    if (enc && !o->nidentities)
        return burry_errf(e, BURRY_EUSAGE, "snapshot '%s' is encrypted: give --identity FILE (an age identity)", id);
    int rc = open_stored(ops, st, m, g, e);
    if (rc < 0)
        return rc;
    if (enc && !(g->age = age_dec_new((const unsigned char (*)[32])o->identities, o->nidentities, raw_read, g, e))) {
        get_ctx_close(g);
        /* no key opens it, or its age header does not read */
        if (e->code == BURRY_EINTR)
            return e->code;
        return e->code == BURRY_ENOKEY ? burry_err_prefix(e, "cannot decrypt snapshot '%s'", id)
                                       : burry_err_prefix(e, "snapshot '%s' is damaged", id);
    }
    *r = fmt_reader_new(get_read, g, e);
    if (!*r) {
        get_ctx_close(g);
        return burry_err_prefix(e, "snapshot '%s' is damaged", id);
    }
    return 0;
}

/* The nodes of the check pass, kept for the restore pass while they fit
 * in CACHE_MAX (an estimate: paths, values and CACHE_NODE per node for
 * its attributes), so that a snapshot of moderate size is read once. */
#define CACHE_MAX ((size_t)64 << 20)
#define CACHE_NODE 1024
struct cnode {
    size_t path, path_len, value, value_len; /* offsets into the arena */
    int has_value;
    json_t *attrs;
};
struct node_cache {
    struct buf arena;
    struct cnode *v;
    size_t n, cap, next, bytes;
    int dropped; /* grew past CACHE_MAX: the restore reads the archive again */
};

static void cache_free(struct node_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        json_decref(c->v[i].attrs);
    free(c->v);
    buf_free(&c->arena);
    c->v = NULL;
    c->n = c->cap = c->next = c->bytes = 0;
}

static void cache_add(struct node_cache *c, const struct bnode *n)
{
    if (c->dropped)
        return;
    c->bytes += n->path_len + n->value_len + CACHE_NODE;
    int ok = c->bytes <= CACHE_MAX;
    if (ok && c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 1024;
        struct cnode *v = realloc(c->v, cap * sizeof *v);
        if ((ok = v != NULL))
            c->v = v, c->cap = cap;
    }
    size_t at = c->arena.len, vlen = n->has_value ? n->value_len : 0;
    ok = ok && buf_append(&c->arena, n->path, n->path_len) == 0 &&
         (!vlen || buf_append(&c->arena, n->value, vlen) == 0);
    if (!ok) {
        cache_free(c);
        c->dropped = 1;
        return;
    }
    c->v[c->n++] = (struct cnode){.path = at, .path_len = n->path_len, .value = at + n->path_len,
                                  .value_len = vlen, .has_value = n->has_value,
                                  .attrs = json_incref(n->attrs)};
}

/* The published manifest (ID.json) is the archive's manifest.json plus
 * "archive"; an encrypted snapshot's has only some of its keys, and
 * "encryption". Every key of the inner manifest that the published one has
 * must be equal, and only an encrypted snapshot's may lack any. */
static int compare_manifests(json_t *m, json_t *inner, struct burry_err *e)
{
    int enc = json_object_get(m, "encryption") != NULL;
    const char *k;
    json_t *v;
    json_object_foreach(inner, k, v) {
        json_t *p = json_object_get(m, k);
        if (!p && enc)
            continue;
        if (!p || !json_equal(p, v)) {
            char *a = p ? json_dumps(p, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
            char *b = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            int rc = burry_errf(e, BURRY_EFAIL,
                                "the published manifest and the archive's manifest.json disagree on '%s' "
                                "(published: %.60s; archive: %.60s)", k, a ? a : "missing", b ? b : "?");
            free(a);
            free(b);
            return rc;
        }
    }
    json_object_foreach(m, k, v) {
        if (strcmp(k, "archive") && !(enc && !strcmp(k, "encryption")) && !json_object_get(inner, k))
            return burry_errf(e, BURRY_EFAIL,
                              "the published manifest has '%s', which the archive's manifest.json has not", k);
    }
    return 0;
}

/* The stored bytes read through g (all of them) against the size and
 * SHA-256 the published manifest records. */
static int check_stored(struct get_ctx *g, json_t *m, struct burry_err *e)
{
    json_t *a = json_object_get(m, "archive");
    const char *sha = json_string_value(json_object_get(a, "sha256"));
    json_int_t size = json_integer_value(json_object_get(a, "size"));
    char got[65];
    get_ctx_sha256(g, got);
    if (!sha || strcmp(sha, got) || (uint64_t)size != g->size)
        return burry_errf(e, BURRY_EFAIL,
                          "archive checksum mismatch (manifest: %lld bytes, sha256 %.16s...; "
                          "archive: %llu bytes, sha256 %.16s...)",
                          (long long)size, sha ? sha : "none", (unsigned long long)g->size, got);
    return 0;
}

int burry_verify_stored(const struct store_ops *ops, struct store *st, json_t *m, int *store_failed,
                        struct burry_err *e)
{
    struct get_ctx g = {.store_failed = store_failed};
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    char buf[65536];
    *store_failed = 0;
    ssize_t n;
    int rc = open_stored(ops, st, m, &g, e);
    if (rc < 0)
        return rc;
    while ((n = raw_read(&g, buf, sizeof buf, e)) > 0)
        if (burry_interrupted)
            break;
    if (burry_interrupted)
        rc = burry_errf(e, BURRY_EINTR, "interrupted");
    else if (n < 0)
        rc = (int)n;
    else
        rc = check_stored(&g, m, e);
    if (rc < 0 && rc != BURRY_EINTR && !*store_failed)
        burry_err_prefix(e, "snapshot '%s' is damaged", id);
    get_ctx_close(&g);
    return rc;
}

/* Read the whole archive and check it against the manifest; keep its
 * nodes in keep (when not NULL) as far as they fit, and the archive's own
 * manifest in *inner_out (when not NULL). With store_failed, a store that
 * could not be read sets it, and its message is not called damage. */
static int verify_snapshot(const struct store_ops *ops, struct store *st, json_t *m,
                           const struct burry_opts *o, struct node_cache *keep,
                           json_t **inner_out, int *store_failed, struct burry_err *e)
{
    struct get_ctx g = {.store_failed = store_failed};
    struct fmt_reader *r = NULL;
    struct bnode n;
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    int rc = open_archive(ops, st, m, o, &g, &r, e);
    if (rc < 0)
        return rc;
    while ((rc = fmt_reader_next(r, &n, e)) == 1) {
        if (keep)
            cache_add(keep, &n);
        if (burry_interrupted) {
            rc = burry_errf(e, BURRY_EINTR, "interrupted");
            break;
        }
    }
    if (rc == 0 && (rc = check_stored(&g, m, e)) == 0) {
        json_t *inner = fmt_reader_manifest(r);
        const char *iid = json_string_value(json_object_get(inner, "snapshot"));
        if (!iid || strcmp(iid, id))
            rc = burry_errf(e, BURRY_EFAIL, "archive holds snapshot '%s', not '%s'", iid ? iid : "?", id);
        else
            rc = compare_manifests(m, inner, e);
        if (rc == 0 && inner_out)
            *inner_out = json_incref(inner);
    }
    if (rc < 0 && rc != BURRY_EINTR && !(store_failed && *store_failed))
        burry_err_prefix(e, "snapshot '%s' is damaged", id);
    fmt_reader_free(r);
    get_ctx_close(&g);
    return rc;
}

int burry_verify_listed(const struct store_ops *ops, struct store *st, json_t *m, const struct burry_opts *o,
                        int *store_failed, struct burry_err *e)
{
    *store_failed = 0;
    return verify_snapshot(ops, st, m, o, NULL, NULL, store_failed, e);
}

/* An archive of the original burry has no checksums but the zip's CRC-32s:
 * read it whole, as a restore does before it writes anything. */
static int verify_gozip(const struct store_ops *ops, struct store *st, json_t *m,
                        const struct burry_opts *o, struct burry_err *e)
{
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    char *key = catalog_archive_key(m);
    struct catalog_get g;
    int rc;
    if (!key)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    blog(&o->log, BLOG_INFO, "archive '%s' was written by the original burry: only its CRC-32s can be checked",
         key);
    if ((rc = catalog_get_open(&g, ops, st, key, e)) == 0) {
        struct gozip *z = gozip_open(catalog_get_read, catalog_get_rewind, &g, id, e);
        if (!z)
            rc = e->code ? e->code : BURRY_EFAIL;
        gozip_free(z);
        catalog_get_close(&g);
    }
    if (rc < 0)
        burry_err_prefix(e, "archive '%s' of the original burry in %s is damaged", key, ops->describe(st));
    free(key);
    return rc;
}

int burry_verify(const struct burry_opts *o, const char *store_url, const char *snapshot,
                 const char *name, int all, json_t **out, struct burry_err *e)
{
    const struct store_ops *ops;
    struct store *st = NULL;
    json_t *list = NULL, *res = json_array();
    int rc, bad = 0, nokey = 0, unchecked = 0;
    if (name && (rc = catalog_check_name(name, e)) < 0)
        goto out0;
    if (!all) {
        /* as restore and show: a snapshot, or an archive of the original
         * burry named by its path or by its ID */
        json_t *m = NULL;
        if ((rc = catalog_open_snapshot(store_url, snapshot, name, o, &ops, &st, &m, e)) < 0) {
            *out = json_pack("{s:O}", "snapshots", res);
            goto out0;
        }
        list = json_array();
        json_array_append_new(list, m);
    } else if ((rc = catalog_open_store(store_url, o, &ops, &st, e)) < 0) {
        goto out0;
    } else {
        /* nothing to check is not a success: as without --all; the
         * original burry's zips at the top level are checked too */
        if ((rc = catalog_list_gozip(ops, st, name, &list, e)) == 0 && !json_array_size(list))
            rc = burry_errf(e, BURRY_ENOENT, "no snapshots%s%s%s in %s", name ? " named '" : "",
                            name ? name : "", name ? "'" : "", ops->describe(st));
    }
    if (rc < 0)
        goto out;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        struct burry_err e2 = {0};
        const char *sid = json_string_value(json_object_get(m, "snapshot"));
        /* an age-encrypted snapshot without a key that opens it: its stored
         * bytes against the published manifest, which is all that can be
         * checked; intact, it is not damaged */
        int only = !o->nidentities && !strcmp(json_string_value(json_object_get(m, "encryption")) ?: "", "age");
        int wrong = 0, store_failed = 0, r;
        if (catalog_damaged(m))
            r = burry_errf(&e2, BURRY_EFAIL, "%s", catalog_damaged(m));
        else if (!strcmp(json_string_value(json_object_get(m, "format")) ?: "", GOZIP_FORMAT))
            r = verify_gozip(ops, st, m, o, &e2);
        else if (only)
            r = burry_verify_stored(ops, st, m, &store_failed, &e2);
        else if ((r = verify_snapshot(ops, st, m, o, NULL, NULL, &store_failed, &e2)) == BURRY_ENOKEY) {
            burry_err_clear(&e2);
            if ((r = burry_verify_stored(ops, st, m, &store_failed, &e2)) == 0)
                only = wrong = 1;
        }
        json_t *item = json_pack("{s:O,s:O,s:b}", "id", json_object_get(m, "snapshot"), "name",
                                 json_object_get(m, "name"), "ok", r == 0);
        if (r == 0 && only) {
            json_object_set_new(item, "stored_only", json_true());
            if (wrong) {
                json_object_set_new(item, "wrong_identity", json_true());
                blog(&o->log, BLOG_WARN, "snapshot '%s': none of the given identities can decrypt it (wrong key?); "
                     "its stored bytes match its manifest", sid);
                nokey++;
            } else {
                blog(&o->log, BLOG_DEBUG, "snapshot '%s' is encrypted: its stored bytes match its manifest", sid);
            }
        }
        if (r < 0) {
            json_object_set_new(item, "error", json_string(e2.msg));
            blog(&o->log, BLOG_WARN, "%s", e2.msg);
            /* the store failed to deliver it: not checked, not damaged */
            if (store_failed && r != BURRY_EINTR) {
                json_object_set_new(item, "not_checked", json_true());
                unchecked++;
            } else {
                bad++;
            }
            if (r == BURRY_EINTR) {
                json_array_append_new(res, item);
                rc = burry_errf(e, BURRY_EINTR, "interrupted");
                goto out;
            }
        } else if (!only) {
            blog(&o->log, BLOG_DEBUG, "snapshot '%s' is intact", sid);
        }
        json_array_append_new(res, item);
    }
    if (bad || unchecked) {
        char more[160] = "";
        if (nokey)
            snprintf(more, sizeof more, "; the given --identity does not open %d more (not damaged)", nokey);
        if (bad && unchecked)
            rc = burry_errf(e, BURRY_EFAIL, "%d of %zu snapshots in %s failed verification; %d more could not be "
                            "read from it (not checked)%s", bad, json_array_size(list), ops->describe(st), unchecked,
                            more);
        else if (bad)
            rc = burry_errf(e, BURRY_EFAIL, "%d of %zu snapshots in %s failed verification%s", bad,
                            json_array_size(list), ops->describe(st), more);
        else
            rc = burry_errf(e, BURRY_EFAIL, "%d of %zu snapshots in %s could not be read from it, so they were "
                            "not checked (the store failed, which says nothing of the snapshots)%s", unchecked,
                            json_array_size(list), ops->describe(st), more);
    } else if (nokey)
        rc = burry_errf(e, BURRY_ENOKEY, "the given --identity does not open %d of %zu snapshots in %s "
                        "(not damaged: their stored bytes match their manifests)", nokey,
                        json_array_size(list), ops->describe(st));
out:
    *out = json_pack("{s:O}", "snapshots", res);
    json_decref(list);
    ops->close(st);
out0:
    json_decref(res);
    return rc;
}

/* Where a restore gets its nodes: a burry snapshot (format.c) checked
 * against its published manifest, or an archive of the original Go burry
 * (gozip.c). check() is the first pass, which reads the whole archive
 * before the service is touched; next() gives the nodes, parents first. */
struct snap_reader {
    int (*check)(struct snap_reader *sr, struct burry_err *e);
    int (*next)(struct snap_reader *sr, struct bnode *n, struct burry_err *e);
    void (*free)(struct snap_reader *sr);
    const struct store_ops *ops;
    struct store *st;
    json_t *m;
    const struct burry_opts *o;
    struct get_ctx g;          /* burry snapshot */
    struct fmt_reader *fr;
    struct node_cache cache;   /* burry snapshot: its nodes from the check */
    json_t *inner;             /* burry snapshot: its manifest.json, once checked */
    struct catalog_get cg;     /* original burry zip */
    char *key;
    struct gozip *gz;
};

static int tar_check(struct snap_reader *sr, struct burry_err *e)
{
    int rc = verify_snapshot(sr->ops, sr->st, sr->m, sr->o, &sr->cache, &sr->inner, NULL, e);
    if (rc < 0 || sr->cache.dropped)
        cache_free(&sr->cache);
    if (rc == 0)
        blog(&sr->o->log, BLOG_DEBUG,
             sr->cache.dropped ? "the snapshot is too large to keep in memory: reading it again"
                               : "restoring the %zu checked nodes from memory", sr->cache.n);
    return rc;
}

static int tar_next(struct snap_reader *sr, struct bnode *n, struct burry_err *e)
{
    struct node_cache *c = &sr->cache;
    if (!c->dropped) { /* the nodes the check read */
        if (c->next == c->n)
            return 0;
        const struct cnode *x = &c->v[c->next++];
        const char *a = c->arena.p ? c->arena.p : ""; /* NULL while every byte so far was empty */
        *n = (struct bnode){.path = a + x->path, .path_len = x->path_len,
                            .value = x->has_value ? a + x->value : NULL,
                            .value_len = x->value_len, .has_value = x->has_value,
                            .attrs = x->attrs};
        return 1;
    }
    int rc;
    if (!sr->fr && (rc = open_archive(sr->ops, sr->st, sr->m, sr->o, &sr->g, &sr->fr, e)) < 0)
        return rc;
    return fmt_reader_next(sr->fr, n, e);
}

static void tar_free(struct snap_reader *sr)
{
    cache_free(&sr->cache);
    fmt_reader_free(sr->fr);
    get_ctx_close(&sr->g);
}

static int zip_check(struct snap_reader *sr, struct burry_err *e)
{
    const char *id = json_string_value(json_object_get(sr->m, "snapshot"));
    int rc;
    if (!(sr->key = catalog_archive_key(sr->m)))
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    blog(&sr->o->log, BLOG_WARN,
         "archive '%s' was written by the original burry: it has no checksums; reading it whole "
         "before restoring", sr->key);
    if ((rc = catalog_get_open(&sr->cg, sr->ops, sr->st, sr->key, e)) < 0)
        return rc;
    sr->gz = gozip_open(catalog_get_read, catalog_get_rewind, &sr->cg, id, e);
    if (!sr->gz)
        return burry_err_prefix(e, "archive '%s' in %s", sr->key, sr->ops->describe(sr->st));
    return 0;
}

static int zip_next(struct snap_reader *sr, struct bnode *n, struct burry_err *e)
{
    int rc = gozip_next(sr->gz, n, e);
    if (rc < 0)
        burry_err_prefix(e, "archive '%s' in %s", sr->key, sr->ops->describe(sr->st));
    return rc;
}

static void zip_free(struct snap_reader *sr)
{
    gozip_free(sr->gz);
    catalog_get_close(&sr->cg);
    free(sr->key);
}

static void snap_open(struct snap_reader *sr, const struct store_ops *ops, struct store *st,
                      json_t *m, const struct burry_opts *o)
{
    int gozip = !strcmp(json_string_value(json_object_get(m, "format")) ?: "", GOZIP_FORMAT);
    *sr = (struct snap_reader){
        .check = gozip ? zip_check : tar_check,
        .next = gozip ? zip_next : tar_next,
        .free = gozip ? zip_free : tar_free,
        .ops = ops, .st = st, .m = m, .o = o,
    };
    buf_init(&sr->cache.arena, 0);
}

struct restore {
    const struct burry_opts *o;
    const struct burry_restore_req *req;
    const struct source_ops *sops;
    unsigned long long created, existing, different, overwritten, failed, done;
    unsigned long long ancestors; /* ancestors created or failed: counted beside the nodes */
    int warned;
    struct token *live;
};

/* One write in flight. Tokens are kept on a list so that those whose
 * callbacks never run (a source closed after a fatal error drops them) are
 * still freed. */
struct token {
    struct token *prev, *next;
    int ancestor;      /* a parent of what was asked for: a missing one of --into
                        * (synthetic), or the snapshot's own node above --path */
    char disp[];
};

static void token_unlink(struct restore *r, struct token *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        r->live = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void write_done(void *ctx, void *tok, enum src_write_outcome outcome, const char *msg)
{
    struct restore *r = ctx;
    struct token *t = tok;
    const char *action = "failed";
    r->done++;
    switch (outcome) {
    case SRC_W_CREATED:
        r->created++;
        r->ancestors += t->ancestor;
        action = "create";
        break;
    case SRC_W_EXISTING:
        if (!t->ancestor)
            r->existing++;
        action = "exists";
        break;
    case SRC_W_SAME:
        if (!t->ancestor)
            r->existing++;
        action = "exists-same";
        break;
    case SRC_W_DIFFERENT:
        if (!t->ancestor) {
            r->existing++;
            r->different++;
        }
        action = "exists-different";
        break;
    case SRC_W_OVERWRITTEN:
        r->overwritten++;
        action = "overwrite";
        break;
    case SRC_W_FAILED:
        r->failed++;
        r->ancestors += t->ancestor;
        if (r->warned < 20)
            blog(&r->o->log, BLOG_WARN, "cannot restore '%s': %s", t->disp, msg ? msg : "failed");
        else if (r->warned == 20)
            blog(&r->o->log, BLOG_WARN, "more nodes failed; the summary counts them");
        r->warned++;
        break;
    }
    /* an ancestor that was there already is not part of the restore */
    if (r->req->plan && !(t->ancestor && outcome != SRC_W_CREATED && outcome != SRC_W_FAILED))
        r->req->plan(r->req->plan_ctx, action, t->disp, outcome == SRC_W_FAILED ? msg : NULL);
    token_unlink(r, t);
    free(t);
}

static int submit(struct restore *r, struct source *src, const struct bnode *n,
                  enum src_write_mode mode, int ancestor, struct burry_err *e)
{
    struct buf d;
    buf_init(&d, 0);
    if (names_display(n->path, n->path_len, &d) < 0) {
        buf_free(&d);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    struct token *t = malloc(sizeof *t + d.len + 1);
    if (!t) {
        buf_free(&d);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    t->ancestor = ancestor;
    memcpy(t->disp, d.p, d.len + 1);
    buf_free(&d);
    size_t window = r->o->window > 0 ? (size_t)r->o->window : 1000;
    while (r->sops->pending(src) >= window) {
        int rc = r->sops->pump(src, 200, e);
        if (rc < 0) {
            free(t);
            return rc;
        }
        if (burry_interrupted) {
            free(t);
            return burry_errf(e, BURRY_EINTR, "interrupted");
        }
    }
    t->prev = NULL;
    t->next = r->live;
    if (r->live)
        r->live->prev = t;
    r->live = t;
    int rc = r->sops->write_submit(src, n, mode, write_done, r, t, e);
    if (rc < 0) {
        token_unlink(r, t);
        free(t);
    }
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Does the snapshot whose manifest is m fit the target's service? */
static int check_service(const struct source_ops *sops, json_t *m, struct burry_err *e)
{
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    const char *service = json_string_value(json_object_get(m, "service"));
    /* an archive of the original burry may fit more than one service */
    int fits = service && !strcmp(service, sops->service);
    size_t k;
    json_t *alt;
    json_array_foreach(json_object_get(m, "restorable_into"), k, alt)
        fits |= !strcmp(json_string_value(alt) ?: "", sops->service);
    if (!fits)
        return burry_errf(e, BURRY_EUSAGE, "snapshot '%s' holds %s %s backup; it cannot be restored into %s",
                          id ? id : "?", service && strchr("aeiou", service[0]) ? "an" : "a",
                          service ? service : "unknown", sops->service);
    return 0;
}

/* A node of the snapshot above --path, kept from where the archive has
 * it until the first node to restore is found. */
struct held {
    char *path, *value;
    size_t path_len, value_len;
    int has_value;
    json_t *attrs;
};

static int held_add(struct held *h, size_t *nh, const struct bnode *n)
{
    struct held *x = &h[*nh];
    *x = (struct held){.path_len = n->path_len, .value_len = n->has_value ? n->value_len : 0,
                       .has_value = n->has_value};
    x->path = malloc(n->path_len + 1);
    x->value = malloc(x->value_len + 1);
    if (n->attrs)
        x->attrs = json_deep_copy(n->attrs);
    else if (n->attrs_json)
        x->attrs = json_loadb(n->attrs_json, n->attrs_json_len, 0, NULL);
    if (!x->path || !x->value || ((n->attrs || n->attrs_json) && !x->attrs)) {
        free(x->path);
        free(x->value);
        json_decref(x->attrs);
        return -1;
    }
    memcpy(x->path, n->path, n->path_len);
    if (x->value_len)
        memcpy(x->value, n->value, x->value_len);
    (*nh)++;
    return 0;
}

/* Does path p start with the canonical prefix q, byte for byte? */
static int starts_with(const char *p, size_t plen, const char *q, size_t qlen)
{
    return plen >= qlen && !memcmp(p, q, qlen);
}

int burry_restore(const struct burry_opts *o, const char *src_url, const char *store_url,
                  const struct burry_restore_req *req, json_t **out, struct burry_err *e)
{
    const struct source_ops *sops = registry_source(src_url, e);
    const struct store_ops *tops = NULL;
    struct store *st = NULL;
    struct source *src = NULL;
    json_t *m = NULL;
    struct snap_reader sr = {0};
    char *sub = NULL, *into = NULL, *desc = NULL, *scope = NULL;
    size_t sub_len = 0, into_len = 0, scope_len = 0, nheld = 0, held_cap = 0;
    struct held *held = NULL;
    struct buf np;
    struct restore r = {.o = o, .req = req, .sops = sops};
    unsigned long long matched = 0, selected = 0, outside = 0;
    int rc, stopped = 0;

    buf_init(&np, 0);
    *out = NULL;
    if (!sops)
        return e->code;
    if (req->name && (rc = catalog_check_name(req->name, e)) < 0)
        return rc;
    if (req->path && (rc = sops->user_path(req->path, &sub, &sub_len, e)) < 0)
        goto out;
    if (req->into && (rc = sops->user_path(req->into, &into, &into_len, e)) < 0)
        goto out;
    if (sops->restore_scope && (rc = sops->restore_scope(src_url, &scope, &scope_len, e)) < 0)
        goto out;
    /* --path "app/" (etcd v3, where it is a key of its own) is the key
     * "app/" and every key under it; a final '/' of --into follows --path:
     * --path app/ --into new puts app/x at new/x, --path app --into new/
     * too, never at new//x */
    int sub_dir = sub && sub_len && sub[sub_len - 1] == '/';
    if (into && into_len && into[into_len - 1] == '/' && !sub_dir)
        into[--into_len] = 0;
    else if (into && sub_dir && (!into_len || into[into_len - 1] != '/')) {
        char *x = realloc(into, into_len + 2);
        if (!x) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            goto out;
        }
        into = x;
        into[into_len++] = '/';
        into[into_len] = 0;
    }
    if (sub && !into && !sops->flat_keys) {
        size_t depth = 1;
        for (size_t i = 0; i < sub_len; i++)
            depth += sub[i] == '/';
        held_cap = depth; /* ancestors of --path: at most one per '/' in it */
        if (!(held = calloc(depth, sizeof *held))) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            goto out;
        }
    }
    if ((rc = catalog_open_snapshot(store_url, req->snapshot, req->name, o, &tops, &st, &m, e)) < 0)
        goto out;
    snap_open(&sr, tops, st, m, o);
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    if ((rc = check_service(sops, m, e)) < 0)
        goto out;

    /* first pass: the whole archive must be intact before anything is written */
    blog(&o->log, BLOG_INFO, "checking snapshot '%s'", id);
    if ((rc = sr.check(&sr, e)) < 0) {
        if (rc != BURRY_EINTR)
            burry_err_prefix(e, "refusing to restore");
        goto out;
    }
    /* the published manifest named the service; the checked one decides */
    if (sr.inner && (rc = check_service(sops, sr.inner, e)) < 0)
        goto out;

    if ((rc = sops->open(&src, src_url, o, e)) < 0)
        goto out;
    desc = sops->describe(src_url);
    enum src_write_mode mode = req->dry_run ? (req->overwrite ? SRC_WRITE_PLAN_OVERWRITE : SRC_WRITE_PLAN)
                                            : (req->overwrite ? SRC_WRITE_OVERWRITE : SRC_WRITE_CREATE);
    /* the nodes above --path are not what was asked for: never overwritten */
    enum src_write_mode amode = req->dry_run ? SRC_WRITE_PLAN : SRC_WRITE_CREATE;
    blog(&o->log, BLOG_INFO, "%s snapshot '%s' into %s%s", req->dry_run ? "planning restore of" : "restoring",
         id, desc, req->overwrite ? " (overwriting existing nodes)" : " (creating only missing nodes)");

    double last = now_s();
    struct bnode n;
    while ((rc = sr.next(&sr, &n, e)) == 1) {
        if (sub && !(starts_with(n.path, n.path_len, sub, sub_len) &&
                     (n.path_len == sub_len || sub_dir || n.path[sub_len] == '/'))) {
            /* a node above --path (ZooKeeper, etcd v2): kept, to be created
             * as the snapshot has it if it is missing */
            if (nheld < held_cap && n.path_len > 0 && n.path_len < sub_len &&
                !memcmp(n.path, sub, n.path_len) && sub[n.path_len] == '/' &&
                held_add(held, &nheld, &n) < 0) {
                rc = burry_errf(e, BURRY_EFAIL, "out of memory");
                goto fatal;
            }
            continue;
        }
        selected++;
        if (into) {
            buf_reset(&np);
            if (buf_append(&np, into, into_len) < 0 ||
                buf_append(&np, n.path + sub_len, n.path_len - sub_len) < 0) {
                rc = burry_errf(e, BURRY_EFAIL, "out of memory");
                goto fatal;
            }
            n.path = np.p ? np.p : "";
            n.path_len = np.len;
        }
        if (scope && !starts_with(n.path, n.path_len, scope, scope_len)) {
            outside++; /* never written outside the prefix the URL names */
            continue;
        }
        if (matched++ == 0) {
            /* the parents of where the nodes go, once the first node to
             * restore is found (a --path that is not in the snapshot
             * changes nothing): with --into, its missing ancestors, created
             * empty with default metadata; else the snapshot's own nodes
             * above --path */
            for (size_t i = 1; into && i < into_len; i++) {
                if (into[i] != '/')
                    continue;
                struct bnode a = {.path = into, .path_len = i};
                if (scope && !starts_with(into, i, scope, scope_len))
                    continue;
                if ((rc = submit(&r, src, &a, amode, 1, e)) < 0)
                    goto fatal;
            }
            for (size_t i = 0; i < nheld; i++) {
                struct bnode a = {.path = held[i].path, .path_len = held[i].path_len,
                                  .value = held[i].has_value ? held[i].value : NULL,
                                  .value_len = held[i].value_len, .has_value = held[i].has_value,
                                  .attrs = held[i].attrs};
                if ((rc = submit(&r, src, &a, amode, 1, e)) < 0)
                    goto fatal;
            }
        }
        if ((rc = submit(&r, src, &n, mode, 0, e)) < 0)
            goto fatal;
        if (o->progress && now_s() - last >= 0.5) {
            last = now_s();
            o->progress(o->progress_ctx, req->dry_run ? "planning" : "restoring", r.done, matched, 0);
        }
    }
    if (rc < 0)
        goto fatal;
    if (sops->write_end && (rc = sops->write_end(src, e)) < 0)
        goto fatal;
    while (sops->pending(src) > 0) {
        if ((rc = sops->pump(src, 200, e)) < 0)
            goto fatal;
        if (burry_interrupted) {
            rc = burry_errf(e, BURRY_EINTR, "interrupted");
            goto fatal;
        }
    }
    if (sub && selected == 0) {
        rc = burry_errf(e, BURRY_EFAIL, "path '%s' is not in snapshot '%s'; nothing was restored",
                        req->path, id);
        goto out;
    }
    if (scope && matched == 0) {
        rc = burry_errf(e, BURRY_EFAIL,
                        "none of the %llu keys%s%s%s of snapshot '%s' would go under the prefix of %s, "
                        "which a restore never writes outside of; nothing was restored (the snapshot "
                        "holds whole keys: restore into a URL without a prefix, or move the keys with "
                        "--path and --into)",
                        outside, req->path ? " under '" : "", req->path ? req->path : "",
                        req->path ? "'" : "", id, desc);
        goto out;
    }
    if (r.failed)
        rc = burry_errf(e, BURRY_EFAIL, "%llu of %llu nodes could not be restored into %s%s", r.failed,
                        matched + r.ancestors, desc,
                        r.ancestors ? " (counting the missing parents of the restored nodes)" : "");
    goto out;

fatal:
    stopped = 1; /* the counts say how far it got, not what a whole run did */
    if (!req->dry_run)
        burry_err_prefix(e, "restore of snapshot '%s' into %s stopped after %llu nodes (%llu created); "
                         "running it again is safe, it creates only what is missing",
                         id, desc ? desc : src_url, r.done, r.created);
out:
    if (m && rc != BURRY_EUSAGE && (src || r.done)) {
        *out = json_pack("{s:O,s:O,s:b,s:b,s:I,s:I,s:I,s:I,s:I}", "snapshot", json_object_get(m, "snapshot"),
                         "name", json_object_get(m, "name"), "dry_run", req->dry_run, "stopped", stopped,
                         "created", (json_int_t)r.created, "existing", (json_int_t)r.existing,
                         "different", (json_int_t)r.different, "overwritten", (json_int_t)r.overwritten,
                         "failed", (json_int_t)r.failed);
        if (*out && scope)
            json_object_set_new(*out, "outside_prefix", json_integer((json_int_t)outside));
    }
    if (sr.free)
        sr.free(&sr);
    json_decref(sr.inner);
    if (src)
        sops->close(src);
    while (r.live) {
        struct token *t = r.live;
        r.live = t->next;
        free(t);
    }
    if (st)
        tops->close(st);
    json_decref(m);
    for (size_t i = 0; i < nheld; i++) {
        free(held[i].path);
        free(held[i].value);
        json_decref(held[i].attrs);
    }
    free(held);
    free(sub);
    free(into);
    free(scope);
    free(desc);
    buf_free(&np);
    return rc;
}
