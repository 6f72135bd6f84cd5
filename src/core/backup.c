/* The backup and dump verbs: walk a source into an archive streamed to a
 * store (published only when complete), or onto the screen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "age.h"
#include "burry.h"
#include "buf.h"
#include "digest.h"
#include "catalog.h"
#include "format.h"
#include "names.h"
#include "registry.h"
#include "walk.h"

/* The archive's way to the store: optionally through age encryption; the
 * size and SHA-256 recorded in the manifest are of the bytes stored. */
struct put_ctx {
    const struct store_ops *ops;
    struct store_put *put;
    struct age_enc *age;
    EVP_MD_CTX *md;
    uint64_t size;
};

static int put_raw(void *ctx, const void *buf, size_t len, struct burry_err *e)
{
    struct put_ctx *p = ctx;
    if (EVP_DigestUpdate(p->md, buf, len) != 1)
        return burry_errf(e, BURRY_EFAIL, "cannot compute the archive checksum");
    p->size += len;
    return p->ops->put_write(p->put, buf, len, e);
}

static int put_write(void *ctx, const void *buf, size_t len, struct burry_err *e)
{
    struct put_ctx *p = ctx;
    if (p->age)
        return age_enc_write(p->age, buf, len, e);
    return put_raw(ctx, buf, len, e);
}

static void put_sha256(struct put_ctx *p, char hex[65])
{
    sha256_final_hex(p->md, hex);
}

static int add_node(void *ctx, const struct bnode *n, struct burry_err *e)
{
    return fmt_writer_add(ctx, n, e);
}

int burry_backup(const struct burry_opts *o, const char *src_url, const char *store_url,
                 const char *name_opt, json_t **out, struct burry_err *e)
{
    const struct source_ops *sops = registry_source(src_url, e);
    const struct store_ops *tops = NULL;
    struct source *src = NULL;
    struct store *st = NULL;
    struct fmt_writer *w = NULL;
    struct put_ctx pc = {0};
    char *name = NULL, *desc = NULL, *akey = NULL, *mkey = NULL, *text = NULL;
    json_t *manifest = NULL, *skipped = json_object(), *skipped_paths = json_array();
    int rc, archive_published = 0;
    char id[32], created[40];

    if (!sops) {
        rc = e->code;
        goto out;
    }
    name = name_opt ? strdup(name_opt) : sops->default_name(src_url);
    if (!name) {
        rc = burry_errf(e, BURRY_EUSAGE, "cannot derive a snapshot name from '%s'; give --name",
                        src_url);
        goto out;
    }
    if ((rc = catalog_check_name(name, e)) < 0)
        goto out;
    if ((rc = catalog_open_store(store_url, o, &tops, &st, e)) < 0)
        goto out;
    /* a store that cannot take the snapshot fails before the service is
     * read (for an object store, the bucket check put_open makes anyway) */
    if ((rc = catalog_check_put(tops, st, name, e)) < 0)
        goto out;
    if ((rc = sops->open(&src, src_url, o, e)) < 0)
        goto out;
    desc = sops->describe(src_url);

    {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "%s%s", fmt_suffix(o->compress), o->nrecipients ? ".age" : "");
        if ((rc = catalog_put_new(tops, st, name, suffix, id, created, &akey, &pc.put, e)) < 0)
            goto out;
    }
    pc.ops = tops;
    blog(&o->log, BLOG_INFO, "backing up %s into %s as '%s'", desc, tops->describe(st), akey);

    if (!(pc.md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(pc.md, EVP_sha256(), NULL) != 1) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    if (o->nrecipients &&
        !(pc.age = age_enc_new((const unsigned char (*)[32])o->recipients, o->nrecipients, put_raw, &pc, e))) {
        rc = e->code ? e->code : BURRY_EFAIL;
        goto out;
    }
    if (!(w = fmt_writer_new(o->compress, put_write, &pc, e))) {
        rc = e->code ? e->code : BURRY_EFAIL;
        goto out;
    }
    struct walk_stats ws = {.skipped = skipped, .skipped_paths = skipped_paths};
    if ((rc = walk_run(sops, src, o, add_node, w, &ws, e)) < 0)
        goto out;

    json_t *info = sops->manifest_info ? sops->manifest_info(src) : NULL;
    manifest = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:O}", "snapshot", id, "name", name,
                         "service", sops->service, "source", desc, "created", created, "tool",
                         "burry " BURRY_VERSION, "skipped", skipped, "skipped_paths", skipped_paths);
    if (!manifest) {
        json_decref(info);
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    if (info)
        json_object_set_new(manifest, "source_info", info);
    if ((rc = fmt_writer_finish(w, manifest, e)) < 0)
        goto out;
    if (pc.age && (rc = age_enc_finish(pc.age, e)) < 0)
        goto out;
    if ((rc = catalog_put_commit(tops, st, pc.put, e)) < 0) {
        pc.put = NULL;
        archive_published = rc == BURRY_EINTR; /* cut short: it may have landed all the same */
        goto out;
    }
    pc.put = NULL;
    archive_published = 1;

    /* the sidecar manifest is written last: its presence publishes the snapshot */
    const char *slash = strrchr(akey, '/');
    char sha[65];
    put_sha256(&pc, sha);
    json_t *archive = json_pack("{s:s,s:I,s:s}", "key", slash + 1, "size", (json_int_t)pc.size, "sha256", sha);
    if (pc.age) {
        /* readable without the key: only what listing and pruning need */
        json_t *pub = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:s}", "format", json_object_get(manifest, "format"),
                                "format_version", json_object_get(manifest, "format_version"), "snapshot",
                                json_object_get(manifest, "snapshot"), "name", json_object_get(manifest, "name"),
                                "service", json_object_get(manifest, "service"), "created",
                                json_object_get(manifest, "created"), "tool", json_object_get(manifest, "tool"),
                                "encryption", "age");
        json_decref(manifest);
        manifest = pub;
    }
    json_object_set_new(manifest, "archive", archive);
    if (asprintf(&mkey, "%s/%s%s", name, id, CATALOG_MANIFEST_SUFFIX) < 0) {
        mkey = NULL;
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    text = json_dumps(manifest, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    {
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, text);
        buf_putc(&b, '\n');
        free(text);
        text = buf_take(&b, NULL);
    }
    if ((rc = catalog_put_text(tops, st, mkey, text, e)) < 0)
        goto out;
    archive_published = 0;

    *out = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:O,s:O,s:s,s:O}", "snapshot", id, "name", name,
                     "service", sops->service, "source", desc, "nodes",
                     (json_int_t)fmt_writer_nodes(w), "bytes", (json_int_t)fmt_writer_bytes(w),
                     "skipped", skipped, "skipped_paths", skipped_paths, "store",
                     tops->describe(st), "archive", json_object_get(manifest, "archive"));
    if (pc.age)
        json_object_set_new(*out, "encryption", json_string("age"));
    rc = 0;
out:
    if (rc < 0 && pc.put)
        tops->put_abort(pc.put);
    if (rc < 0 && archive_published) {
        /* an archive without its manifest is not a snapshot: it goes, interrupted or not */
        struct burry_err e2 = {0};
        if (catalog_remove_anyway(tops, st, akey, &e2) < 0)
            blog(&o->log, BLOG_WARN, "the archive '%s' stays without its manifest: %s", akey, e2.msg);
    }
    fmt_writer_free(w);
    age_enc_free(pc.age);
    EVP_MD_CTX_free(pc.md);
    if (src)
        sops->close(src);
    if (st)
        tops->close(st);
    json_decref(manifest);
    json_decref(skipped);
    json_decref(skipped_paths);
    free(name);
    free(desc);
    free(akey);
    free(mkey);
    free(text);
    return rc;
}

struct dump_ctx {
    const struct source_ops *ops;
    burry_dump_fn fn;
    void *ctx;
    struct buf disp;
};

static int dump_node(void *ctx, const struct bnode *n, struct burry_err *e)
{
    struct dump_ctx *d = ctx;
    buf_reset(&d->disp);
    if (names_display(n->path, n->path_len, &d->disp) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    return d->fn(d->ctx, d->disp.p, n);
}

int burry_dump(const struct burry_opts *o, const char *src_url, burry_dump_fn fn, void *ctx,
               struct burry_err *e)
{
    const struct source_ops *sops = registry_source(src_url, e);
    struct source *src = NULL;
    if (!sops)
        return e->code;
    int rc = sops->open(&src, src_url, o, e);
    if (rc < 0)
        return rc;
    struct dump_ctx d = {.ops = sops, .fn = fn, .ctx = ctx};
    buf_init(&d.disp, 0);
    json_t *skipped = json_object(), *paths = json_array();
    struct walk_stats ws = {.skipped = skipped, .skipped_paths = paths};
    rc = walk_run(sops, src, o, dump_node, &d, &ws, e);
    sops->close(src);
    json_decref(skipped);
    json_decref(paths);
    buf_free(&d.disp);
    return rc;
}
