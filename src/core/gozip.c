/* Reader of the original Go burry's zip archives (gozip.h): libarchive's
 * streaming zip reader over the same byte-stream callback as format.c, the
 * old name scheme decoded into canonical node paths (node.h), and an order
 * in which parents come before their children. */
#include "gozip.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "names.h"

#define ESC_COLON "BURRY_ESC_COLON"
#define META_NAME ".burrymeta"
#define VALUE_NAME "content"
#define READ_CHUNK 65536

struct gz_node {
    char *path;
    size_t len;
    int emitted;
};

struct gozip {
    fmt_read_fn in;
    gozip_rewind_fn rewind;
    void *ctx;
    struct archive *a;
    struct burry_err in_err;
    int in_eof;
    char *dir;                 /* the top directory, "1795249013" */
    int skip_zk;               /* the old tool also saved ZooKeeper's /zookeeper */
    json_t *manifest;
    struct gz_node *nodes;
    size_t nnodes, cap, left;
    unsigned long long bytes, skipped;
    int passes;                /* reads of the archive so far */
    size_t pass_emitted;
    struct buf path, value, msg;
    unsigned char chunk[READ_CHUNK];
};

/* The old tool's service names and what each can be restored into: it
 * spoke etcd's v2 API only, but its keys fit etcd v3 as well. */
static const struct {
    const char *svc, *scheme;
    const char *into[3];
} services[] = {
    {"zk", "zk", {"zookeeper", NULL}},
    {"etcd", "etcd2", {"etcd2", "etcd", NULL}},
    {"consul", "consul", {"consul", NULL}},
};

static la_ssize_t z_read(struct archive *a, void *cd, const void **out)
{
    struct gozip *z = cd;
    *out = z->chunk;
    if (z->in_eof)
        return 0;
    ssize_t k = z->in(z->ctx, z->chunk, sizeof z->chunk, &z->in_err);
    if (k < 0) {
        if (!z->in_err.code)
            burry_errf(&z->in_err, BURRY_EFAIL, "cannot read archive: input failed");
        archive_set_error(a, EIO, "%s", z->in_err.msg);
        return -1;
    }
    if (k == 0)
        z->in_eof = 1;
    return (la_ssize_t)k;
}

static const char *show(struct gozip *z, const char *p, size_t n)
{
    buf_reset(&z->msg);
    if (names_display(p, n > 200 ? 200 : n, &z->msg) < 0)
        return "?";
    if (n > 200)
        buf_puts(&z->msg, "...");
    /* names_display shows "" as "/"; a zip name is never empty here */
    return z->msg.p ? z->msg.p : "";
}

static int damaged(struct gozip *z, struct burry_err *e)
{
    if (z->in_err.code)
        return burry_errf(e, z->in_err.code, "%s", z->in_err.msg);
    const char *why = archive_error_string(z->a);
    return burry_errf(e, BURRY_EFAIL, "zip archive is damaged or truncated: %s",
                      why ? why : "unknown libarchive error");
}

static int za_open(struct gozip *z, struct burry_err *e)
{
    z->in_eof = 0;
    z->a = archive_read_new();
    if (!z->a)
        return burry_errf(e, BURRY_EFAIL, "cannot create zip reader: out of memory");
    if (archive_read_support_format_zip(z->a) != ARCHIVE_OK)
        return burry_errf(e, BURRY_EFAIL, "cannot create zip reader: %s",
                          archive_error_string(z->a) ? archive_error_string(z->a) : "libarchive failed");
    if (archive_read_open(z->a, z, NULL, z_read, NULL) != ARCHIVE_OK)
        return damaged(z, e);
    return 0;
}

static void za_close(struct gozip *z)
{
    archive_read_free(z->a);
    z->a = NULL;
}

/* Next file entry (directory entries, which the old tool never wrote but a
 * re-packed zip may hold, are skipped): 1 with *name, 0 at the end, <0. */
static int next_entry(struct gozip *z, struct archive_entry **ent, const char **name,
                      struct burry_err *e)
{
    for (;;) {
        int rc = archive_read_next_header(z->a, ent);
        if (rc == ARCHIVE_EOF)
            return 0;
        if (rc < ARCHIVE_WARN)
            return damaged(z, e);
        *name = archive_entry_pathname(*ent);
        if (!*name)
            return burry_errf(e, BURRY_EFAIL, "zip entry with an unreadable name");
        if (archive_entry_filetype(*ent) == AE_IFDIR)
            continue;
        if (archive_entry_filetype(*ent) != AE_IFREG)
            return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is not a regular file",
                              show(z, *name, strlen(*name)));
        return 1;
    }
}

/* Read the current entry into b (at most max bytes), or through a scratch
 * buffer when b is NULL; libarchive checks the CRC-32 at the entry's end. */
static int read_data(struct gozip *z, struct buf *b, size_t max, const char *name,
                     unsigned long long *total, struct burry_err *e)
{
    char tmp[16384];
    unsigned long long n = 0;
    if (b)
        buf_reset(b);
    for (;;) {
        la_ssize_t k = archive_read_data(z->a, tmp, sizeof tmp);
        if (k < 0)
            return damaged(z, e);
        if (k == 0)
            break;
        n += (unsigned long long)k;
        if (n > max)
            return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is more than the %zu bytes allowed",
                              show(z, name, strlen(name)), max);
        if (b && buf_append(b, tmp, (size_t)k) < 0)
            return burry_errf(e, BURRY_EFAIL, "cannot read zip entry '%s': out of memory",
                              show(z, name, strlen(name)));
    }
    if (total)
        *total = n;
    return 0;
}

static int meta_describe(struct gozip *z, const char *id, const char *text, size_t len,
                         struct burry_err *e)
{
    json_error_t je;
    json_t *m = json_loadb(text, len, 0, &je);
    if (!json_is_object(m)) {
        json_decref(m);
        return burry_errf(e, BURRY_EFAIL, "'%s/%s' is not a JSON object (%s)", z->dir, META_NAME,
                          je.text[0] ? je.text : "unexpected content");
    }
    const char *svc = json_string_value(json_object_get(m, "svc"));
    size_t i;
    for (i = 0; svc && i < sizeof services / sizeof services[0]; i++)
        if (!strcmp(svc, services[i].svc))
            break;
    if (!svc || i == sizeof services / sizeof services[0]) {
        int rc = burry_errf(e, BURRY_EFAIL, "'%s/%s' names %s%s%s, not one of zk, etcd, consul",
                            z->dir, META_NAME, svc ? "the service '" : "no service",
                            svc ? svc : "", svc ? "'" : "");
        json_decref(m);
        return rc;
    }
    z->skip_zk = !strcmp(svc, "zk");
    json_t *into = json_array();
    for (size_t j = 0; services[i].into[j]; j++)
        json_array_append_new(into, json_string(services[i].into[j]));
    /* an endpoint is host:port; drop anything that looks like user info */
    const char *ep = json_string_value(json_object_get(m, "svc-endpoint"));
    const char *at = ep ? strrchr(ep, '@') : NULL;
    char *source = NULL;
    if (ep && asprintf(&source, "%s://%s", services[i].scheme, at ? at + 1 : ep) < 0)
        source = NULL;
    json_t *date = json_object_get(m, "snapshot-date");
    z->manifest = json_pack("{s:s,s:s,s:n,s:s,s:o,s:s?,s:O?,s:b,s:s,s:o}", "format", GOZIP_FORMAT,
                            "snapshot", id ? id : z->dir, "name", "service", services[i].into[0],
                            "restorable_into", into, "source", source, "created",
                            json_is_string(date) ? date : NULL, "checksums", 0, "tool",
                            "the original burry (Go)", "burrymeta", m);
    free(source);
    if (!z->manifest)
        return burry_errf(e, BURRY_EFAIL, "cannot describe '%s/%s': out of memory", z->dir, META_NAME);
    return 0;
}

/* The first entry must be "DIR/.burrymeta"; it fixes DIR and the service. */
static int read_meta(struct gozip *z, const char *id, struct burry_err *e)
{
    struct archive_entry *ent;
    const char *name;
    int rc = next_entry(z, &ent, &name, e);
    if (rc == 0)
        return burry_errf(e, BURRY_EFAIL, "zip archive is empty");
    if (rc < 0)
        return rc;
    const char *slash = strchr(name, '/');
    size_t dl = slash ? (size_t)(slash - name) : 0;
    if (!slash || dl == 0 || strcmp(slash + 1, META_NAME) || (dl == 1 && name[0] == '.') ||
        (dl == 2 && !memcmp(name, "..", 2)))
        return burry_errf(e, BURRY_EFAIL,
                          "first zip entry is '%s', not 'ID/%s' as the original burry writes: "
                          "not one of its archives",
                          show(z, name, strlen(name)), META_NAME);
    z->dir = strndup(name, dl);
    if (!z->dir)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct buf b;
    buf_init(&b, GOZIP_MAX_META);
    rc = read_data(z, &b, GOZIP_MAX_META, name, NULL, e);
    if (rc == 0)
        rc = meta_describe(z, id, b.p ? b.p : "", b.len, e);
    buf_free(&b);
    return rc;
}

/* An entry name to a canonical node path in z->path. 1: a node, 0: a node
 * deliberately left out (ZooKeeper's own subtree), <0: not a valid name. */
static int decode_name(struct gozip *z, const char *name, struct burry_err *e)
{
    size_t dl = strlen(z->dir), nl = strlen(name);
    if (name[0] == '/' || strncmp(name, z->dir, dl) || name[dl] != '/')
        return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is outside the snapshot directory '%s/'",
                          show(z, name, nl), z->dir);
    const char *rest = name + dl + 1;
    size_t rl = nl - dl - 1, vl = strlen(VALUE_NAME);
    /* every entry is a value: ".../content", or "content" for the root */
    if (rl < vl || strcmp(rest + rl - vl, VALUE_NAME) || (rl > vl && rest[rl - vl - 1] != '/'))
        return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is not a node's value (ID/PATH/%s)",
                          show(z, name, nl), VALUE_NAME);
    size_t pl = rl > vl ? rl - vl - 1 : 0;
    buf_reset(&z->path);
    if (buf_append(&z->path, "", 0) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    size_t el = strlen(ESC_COLON);
    for (size_t i = 0; i < pl;) {
        const char *seg = rest + i, *end = memchr(seg, '/', pl - i);
        size_t sl = end ? (size_t)(end - seg) : pl - i;
        if (sl == 0 || (sl == 1 && seg[0] == '.') || (sl == 2 && !memcmp(seg, "..", 2)))
            return burry_errf(e, BURRY_EFAIL, "zip entry '%s' has an empty, '.' or '..' component",
                              show(z, name, nl));
        if (buf_putc(&z->path, '/') < 0)
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        for (size_t j = 0; j < sl;) {
            int esc = sl - j >= el && !memcmp(seg + j, ESC_COLON, el);
            if (buf_putc(&z->path, esc ? ':' : seg[j]) < 0)
                return burry_errf(e, BURRY_EFAIL, "out of memory");
            j += esc ? el : 1;
        }
        i += sl + 1;
    }
    if (z->skip_zk && z->path.len >= 10 && !memcmp(z->path.p, "/zookeeper", 10) &&
        (z->path.len == 10 || z->path.p[10] == '/'))
        return 0;
    return 1;
}

static int by_path(const void *a, const void *b)
{
    const struct gz_node *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->path, y->path, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static struct gz_node *find(struct gozip *z, const char *p, size_t len)
{
    struct gz_node key = {.path = (char *)p, .len = len};
    return bsearch(&key, z->nodes, z->nnodes, sizeof *z->nodes, by_path);
}

static int add_node(struct gozip *z, struct burry_err *e)
{
    if (z->nnodes == z->cap) {
        size_t cap = z->cap ? z->cap * 2 : 256;
        struct gz_node *v = realloc(z->nodes, cap * sizeof *v);
        if (!v)
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        z->nodes = v;
        z->cap = cap;
    }
    char *p = malloc(z->path.len + 1);
    if (!p)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    memcpy(p, z->path.p, z->path.len + 1);
    z->nodes[z->nnodes++] = (struct gz_node){.path = p, .len = z->path.len};
    return 0;
}

static struct gozip *gz_new(fmt_read_fn in, gozip_rewind_fn rewind, void *ctx)
{
    struct gozip *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->in = in;
    z->rewind = rewind;
    z->ctx = ctx;
    buf_init(&z->path, 0);
    buf_init(&z->value, FORMAT_MAX_VALUE);
    buf_init(&z->msg, 0);
    return z;
}

int gozip_peek(fmt_read_fn in, void *ctx, const char *id, json_t **out, struct burry_err *e)
{
    struct gozip *z = gz_new(in, NULL, ctx);
    if (!z)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    int rc = za_open(z, e);
    if (rc == 0)
        rc = read_meta(z, id, e);
    if (rc == 0)
        *out = json_incref(z->manifest);
    gozip_free(z);
    return rc;
}

struct gozip *gozip_open(fmt_read_fn in, gozip_rewind_fn rewind, void *ctx, const char *id,
                         struct burry_err *e)
{
    struct gozip *z = gz_new(in, rewind, ctx);
    struct archive_entry *ent;
    const char *name;
    int rc;
    if (!z) {
        burry_errf(e, BURRY_EFAIL, "out of memory");
        return NULL;
    }
    if ((rc = za_open(z, e)) < 0 || (rc = read_meta(z, id, e)) < 0)
        goto fail;
    z->passes = 1;
    while ((rc = next_entry(z, &ent, &name, e)) == 1) {
        unsigned long long size = 0;
        int keep = decode_name(z, name, e);
        if (keep < 0 || (rc = read_data(z, NULL, FORMAT_MAX_VALUE, name, &size, e)) < 0)
            goto fail;
        if (!keep) {
            z->skipped++;
            continue;
        }
        if ((rc = add_node(z, e)) < 0)
            goto fail;
        z->bytes += size;
    }
    if (rc < 0)
        goto fail;
    za_close(z);
    qsort(z->nodes, z->nnodes, sizeof *z->nodes, by_path);
    for (size_t i = 1; i < z->nnodes; i++)
        if (!by_path(&z->nodes[i - 1], &z->nodes[i])) {
            burry_errf(e, BURRY_EFAIL, "zip archive holds node '%s' twice",
                       show(z, z->nodes[i].path, z->nodes[i].len));
            goto fail;
        }
    z->left = z->nnodes;
    json_object_set_new(z->manifest, "nodes", json_integer((json_int_t)z->nnodes));
    json_object_set_new(z->manifest, "bytes", json_integer((json_int_t)z->bytes));
    json_object_set_new(z->manifest, "skipped",
                        z->skipped ? json_pack("{s:I}", "zookeeper_subtree", (json_int_t)z->skipped)
                                   : json_object());
    return z;
fail:
    gozip_free(z);
    return NULL;
}

json_t *gozip_manifest(struct gozip *z)
{
    return z->manifest;
}

/* A node may go once its nearest ancestor that the archive holds has gone
 * (ancestors the archive does not hold, like etcd directories, are not
 * waited for). */
static int ready(struct gozip *z, const char *p, size_t len)
{
    for (size_t i = len; i-- > 0;) {
        if (p[i] != '/')
            continue;
        struct gz_node *a = find(z, p, i);
        if (a)
            return a->emitted;
    }
    return 1;
}

int gozip_next(struct gozip *z, struct bnode *n, struct burry_err *e)
{
    struct archive_entry *ent;
    const char *name;
    int rc;
    for (;;) {
        if (z->left == 0) {
            za_close(z);
            return 0;
        }
        if (!z->a) {
            /* every read of the archive sends at least one more level */
            if (z->passes > 1 && z->pass_emitted == 0)
                return burry_errf(e, BURRY_EFAIL, "zip archive changed while it was read");
            if (z->passes > 0 && !z->rewind)
                return burry_errf(e, BURRY_EFAIL, "zip archive cannot be read again");
            if (z->passes > 0 && (rc = z->rewind(z->ctx, e)) < 0)
                return rc;
            if ((rc = za_open(z, e)) < 0 || (rc = next_entry(z, &ent, &name, e)) < 0)
                return rc;
            z->passes++;
            z->pass_emitted = 0;
            continue;
        }
        if ((rc = next_entry(z, &ent, &name, e)) < 0)
            return rc;
        if (rc == 0) {
            za_close(z);
            continue;
        }
        int keep = decode_name(z, name, e);
        if (keep < 0)
            return keep;
        if (!keep)
            continue;
        struct gz_node *x = find(z, z->path.p, z->path.len);
        if (!x)
            return burry_errf(e, BURRY_EFAIL, "zip archive changed while it was read (new entry '%s')",
                              show(z, name, strlen(name)));
        if (x->emitted || !ready(z, x->path, x->len))
            continue;
        if ((rc = read_data(z, &z->value, FORMAT_MAX_VALUE, name, NULL, e)) < 0)
            return rc;
        x->emitted = 1;
        z->left--;
        z->pass_emitted++;
        *n = (struct bnode){.path = x->path, .path_len = x->len, .value = z->value.p ? z->value.p : "",
                            .value_len = z->value.len, .has_value = 1, .attrs = NULL};
        return 1;
    }
}

void gozip_free(struct gozip *z)
{
    if (!z)
        return;
    za_close(z);
    for (size_t i = 0; i < z->nnodes; i++)
        free(z->nodes[i].path);
    free(z->nodes);
    free(z->dir);
    json_decref(z->manifest);
    buf_free(&z->path);
    buf_free(&z->value);
    buf_free(&z->msg);
    free(z);
}

char *gozip_id_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base), sl = strlen(GOZIP_SUFFIX);
    if (bl <= sl || strcmp(base + bl - sl, GOZIP_SUFFIX))
        return NULL;
    return strndup(base, bl - sl);
}

int gozip_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 20)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] < '0' || id[i] > '9')
            return 0;
    return 1;
}
