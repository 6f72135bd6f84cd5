/* The catalog of a store (catalog.h), and the ls and show verbs. */
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <time.h>

#include <sys/stat.h>

#include "buf.h"
#include "burry.h"
#include "gozip.h"
#include "registry.h"

void catalog_new_id(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    unsigned short r = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (unsigned short)(ts.tv_nsec ^ (long)getpid());
    char day[32];
    strftime(day, sizeof day, "%Y%m%dT%H%M%S", &tm);
    snprintf(out, len, "%.15s.%03dZ-%04x", day, (int)(ts.tv_nsec / 1000000), (unsigned)r);
}

int catalog_valid_id(const char *id)
{
    /* shape only: digits/T/./Z/-/hex, 25 bytes */
    static const char shape[] = "DDDDDDDDTDDDDDD.DDDZ-HHHH";
    if (strlen(id) != sizeof shape - 1)
        return 0;
    for (size_t i = 0; shape[i]; i++) {
        char c = id[i];
        switch (shape[i]) {
        case 'D':
            if (c < '0' || c > '9')
                return 0;
            break;
        case 'H':
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                return 0;
            break;
        default:
            if (c != shape[i])
                return 0;
        }
    }
    return 1;
}

int catalog_check_name(const char *name, struct burry_err *e)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100 || name[0] == '.' || name[0] == '-')
        goto bad;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            goto bad;
    }
    return 0;
bad:
    return burry_errf(e, BURRY_EUSAGE,
                      "invalid snapshot name '%s' (use 1-100 letters, digits, '.', '_' or '-', "
                      "not starting with '.' or '-')",
                      name);
}

int catalog_read_object(const struct store_ops *ops, struct store *st, const char *key,
                        size_t max, char **out, size_t *len, struct burry_err *e)
{
    struct store_get *g = NULL;
    struct buf b;
    char tmp[8192];
    int rc = ops->get_open(st, key, &g, e);
    buf_init(&b, max);
    if (rc < 0)
        goto out;
    for (;;) {
        ssize_t n = ops->get_read(g, tmp, sizeof tmp, e);
        if (n < 0) {
            rc = (int)n;
            goto out;
        }
        if (n == 0)
            break;
        if (buf_append(&b, tmp, (size_t)n) < 0) {
            rc = burry_errf(e, BURRY_ETOOBIG, "'%s' in %s is larger than %zu bytes", key,
                            ops->describe(st), max);
            goto out;
        }
    }
    *out = buf_take(&b, len);
out:
    ops->get_close(g);
    buf_free(&b);
    return rc;
}

struct list_ctx {
    const struct store_ops *ops;
    struct store *st;
    const char *name;
    json_t *arr;
    json_t *sizes; /* every other key listed -> its size, when wanted */
    int zips;      /* list the original burry's top-level ID.zip too */
    struct burry_err *e;
};

/* A sidecar that cannot be used: listed as {"snapshot", "name", "damaged"}
 * so that one bad file neither hides nor blocks the others. */
static int add_damaged(struct list_ctx *c, const char *id, const char *key, size_t nlen, const char *why)
{
    char *nm = strndup(key, nlen);
    json_t *d = nm ? json_pack("{s:s,s:s,s:s}", "snapshot", id, "name", nm, "damaged", why) : NULL;
    free(nm);
    if (!d)
        return burry_errf(c->e, BURRY_EFAIL, "out of memory");
    json_array_append_new(c->arr, d);
    return 0;
}

/* A top-level "ID.zip" (ID of digits, as the original burry named them):
 * listed as a description that catalog_archive_key() and verify use,
 * {"format": GOZIP_FORMAT, "snapshot", "name": null, "archive": {"key",
 * "size"}}, without reading it. */
static int add_gozip(struct list_ctx *c, const char *key, uint64_t size)
{
    char *id = gozip_id_from_path(key);
    json_t *d = NULL;
    if (id && gozip_valid_id(id) &&
        !(d = json_pack("{s:s,s:s,s:n,s:{s:s,s:I}}", "format", GOZIP_FORMAT, "snapshot", id, "name",
                        "archive", "key", key, "size", (json_int_t)size))) {
        free(id);
        return burry_errf(c->e, BURRY_EFAIL, "out of memory");
    }
    free(id);
    if (d)
        json_array_append_new(c->arr, d);
    return 0;
}

static int list_cb(void *ctx, const char *key, uint64_t size)
{
    struct list_ctx *c = ctx;
    const char *slash = strchr(key, '/');
    size_t klen = strlen(key), slen = strlen(CATALOG_MANIFEST_SUFFIX);
    if (!slash || strchr(slash + 1, '/') || klen <= slen ||
        strcmp(key + klen - slen, CATALOG_MANIFEST_SUFFIX)) {
        if (c->sizes)
            json_object_set_new(c->sizes, key, json_integer((json_int_t)size));
        if (c->zips && !slash)
            return add_gozip(c, key, size);
        return 0;
    }
    size_t nlen = (size_t)(slash - key);
    if (c->name && (strlen(c->name) != nlen || strncmp(c->name, key, nlen)))
        return 0;
    char id[64];
    size_t idlen = klen - slen - nlen - 1;
    if (idlen >= sizeof id)
        return 0;
    memcpy(id, slash + 1, idlen);
    id[idlen] = 0;
    if (!catalog_valid_id(id))
        return 0;
    char *text = NULL;
    size_t len = 0;
    struct burry_err e2 = {0};
    if (catalog_read_object(c->ops, c->st, key, 1 << 20, &text, &len, &e2) < 0) {
        if (e2.code == BURRY_ENOENT)
            return 0; /* removed while we listed */
        if (e2.code != BURRY_ETOOBIG)
            return burry_errf(c->e, e2.code, "%s", e2.msg); /* the store failed, not the file */
        return add_damaged(c, id, key, nlen, e2.msg);
    }
    json_error_t je;
    json_t *m = json_loadb(text, len, 0, &je);
    free(text);
    const char *mname = json_string_value(json_object_get(m, "name"));
    if (!json_is_object(m) || !json_is_string(json_object_get(m, "snapshot")) ||
        strcmp(json_string_value(json_object_get(m, "snapshot")), id) || !mname ||
        strlen(mname) != nlen || strncmp(mname, key, nlen)) {
        char why[400];
        snprintf(why, sizeof why, "manifest '%s' in %s is damaged (%s)", key, c->ops->describe(c->st),
                 !m ? je.text : "unexpected content");
        json_decref(m);
        return add_damaged(c, id, key, nlen, why);
    }
    json_array_append_new(c->arr, m);
    return 0;
}

const char *catalog_damaged(json_t *m)
{
    return json_string_value(json_object_get(m, "damaged"));
}

double catalog_id_time(const char *id)
{
    struct tm tm = {0};
    int ms = 0;
    if (!id || sscanf(id, "%4d%2d%2dT%2d%2d%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                      &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (double)t + ms / 1000.0;
}

int catalog_id_in_future(const char *id)
{
    return catalog_id_time(id) > (double)time(NULL) + CATALOG_FUTURE_SLACK;
}

static int by_id(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;
    const char *p = json_string_value(json_object_get(*x, "snapshot"));
    const char *q = json_string_value(json_object_get(*y, "snapshot"));
    int c = strcmp(p, q);
    if (c)
        return c;
    const char *n1 = json_string_value(json_object_get(*x, "name"));
    const char *n2 = json_string_value(json_object_get(*y, "name"));
    return strcmp(n1 ? n1 : "", n2 ? n2 : "");
}

/* catalog_list, and with sizes != NULL also every other key listed under
 * the same prefix (archives) with its size. */
static int list_keys(const struct store_ops *ops, struct store *st, const char *name, json_t **out,
                     json_t **sizes, int zips, struct burry_err *e)
{
    struct list_ctx c = {.ops = ops, .st = st, .name = name, .arr = json_array(),
                         .sizes = sizes ? json_object() : NULL, .zips = zips && !name, .e = e};
    int rc = ops->list(st, name ? name : "", list_cb, &c, e);
    if (rc < 0) {
        json_decref(c.arr);
        json_decref(c.sizes);
        return rc;
    }
    size_t n = json_array_size(c.arr);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        json_decref(c.arr);
        json_decref(c.sizes);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(c.arr, i));
    qsort(v, n, sizeof *v, by_id);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(sorted, v[i]);
    free(v);
    json_decref(c.arr);
    *out = sorted;
    if (sizes)
        *sizes = c.sizes;
    return 0;
}

int catalog_list(const struct store_ops *ops, struct store *st, const char *name, json_t **out,
                 struct burry_err *e)
{
    return list_keys(ops, st, name, out, NULL, 0, e);
}

int catalog_list_gozip(const struct store_ops *ops, struct store *st, const char *name, json_t **out,
                       struct burry_err *e)
{
    return list_keys(ops, st, name, out, NULL, 1, e);
}

int catalog_resolve(const struct store_ops *ops, struct store *st, const char *ref,
                    const char *name, json_t **manifest, struct burry_err *e)
{
    json_t *all = NULL;
    int latest = !ref || !strcmp(ref, "latest");
    if (!latest && !catalog_valid_id(ref))
        return burry_errf(e, BURRY_EUSAGE,
                          "'%s' is not a snapshot ID (IDs look like 20261121T083501.123Z-7f3a; "
                          "or use 'latest')",
                          ref);
    int rc = catalog_list(ops, st, name, &all, e);
    if (rc < 0)
        return rc;
    json_t *hit = NULL;
    size_t n = json_array_size(all);
    size_t damaged = 0;
    if (latest) {
        /* the newest snapshot whose manifest reads; never a damaged one */
        for (size_t i = n; i-- > 0 && !hit;)
            if (catalog_damaged(json_array_get(all, i)))
                damaged++;
            else
                hit = json_array_get(all, i);
    } else {
        for (size_t i = 0; i < n; i++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(all, i), "snapshot")), ref) &&
                (!hit || catalog_damaged(hit)))
                hit = json_array_get(all, i);
    }
    if (hit && catalog_damaged(hit)) {
        rc = burry_errf(e, BURRY_EFAIL, "snapshot '%s' cannot be used: %s", ref, catalog_damaged(hit));
        hit = NULL;
    } else if (!hit && latest && damaged) {
        rc = burry_errf(e, BURRY_ENOENT, "no readable snapshots%s%s%s in %s (%zu with a damaged manifest)",
                        name ? " named '" : "", name ? name : "", name ? "'" : "", ops->describe(st), damaged);
    } else if (!hit) {
        if (latest && name)
            rc = burry_errf(e, BURRY_ENOENT, "no snapshots named '%s' in %s", name,
                            ops->describe(st));
        else if (latest)
            rc = burry_errf(e, BURRY_ENOENT, "no snapshots in %s", ops->describe(st));
        else
            rc = burry_errf(e, BURRY_ENOENT, "no snapshot '%s'%s%s%s in %s (the ls command lists them)",
                            ref, name ? " named '" : "", name ? name : "", name ? "'" : "",
                            ops->describe(st));
    } else {
        *manifest = json_incref(hit);
    }
    json_decref(all);
    return rc;
}

char *catalog_archive_key(json_t *m)
{
    if (!strcmp(json_string_value(json_object_get(m, "format")) ?: "", GOZIP_FORMAT)) {
        const char *key = json_string_value(json_object_get(json_object_get(m, "archive"), "key"));
        return key ? strdup(key) : NULL;
    }
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *file = json_string_value(json_object_get(json_object_get(m, "archive"), "key"));
    if (!name || !file || strchr(file, '/'))
        return NULL;
    char *k = NULL;
    if (asprintf(&k, "%s/%s", name, file) < 0)
        return NULL;
    return k;
}

int catalog_get_open(struct catalog_get *g, const struct store_ops *ops, struct store *st,
                     const char *key, struct burry_err *e)
{
    *g = (struct catalog_get){.ops = ops, .st = st, .key = key};
    return ops->get_open(st, key, &g->get, e);
}

ssize_t catalog_get_read(void *ctx, void *buf, size_t len, struct burry_err *e)
{
    struct catalog_get *g = ctx;
    ssize_t k = g->ops->get_read(g->get, buf, len, e);
    if (k > 0)
        g->size += (unsigned long long)k;
    return k;
}

int catalog_get_rewind(void *ctx, struct burry_err *e)
{
    struct catalog_get *g = ctx;
    g->ops->get_close(g->get);
    g->get = NULL;
    g->size = 0;
    return g->ops->get_open(g->st, g->key, &g->get, e);
}

void catalog_get_close(struct catalog_get *g)
{
    if (g->ops)
        g->ops->get_close(g->get);
    g->get = NULL;
}

/* The description of an original burry zip in the store, from its first
 * entry; "archive": {"key"} added. */
static int zip_describe(const struct store_ops *ops, struct store *st, const char *key,
                        const char *id, json_t **out, struct burry_err *e)
{
    struct catalog_get g;
    int rc = catalog_get_open(&g, ops, st, key, e);
    if (rc == 0)
        rc = gozip_peek(catalog_get_read, &g, id, out, e);
    catalog_get_close(&g);
    if (rc == BURRY_ENOENT)
        return rc;
    if (rc < 0)
        return burry_err_prefix(e, "archive '%s' in %s is not a readable archive of the original burry",
                                key, ops->describe(st));
    json_object_set_new(*out, "archive", json_pack("{s:s}", "key", key));
    return 0;
}

int catalog_open_snapshot(const char *store_url, const char *ref, const char *name,
                          const struct burry_opts *o, const struct store_ops **ops,
                          struct store **st, json_t **manifest, struct burry_err *e)
{
    const char *path = store_url && !strncmp(store_url, "file://", 7) ? store_url + 7 : store_url;
    char *id = path ? gozip_id_from_path(path) : NULL;
    struct stat sb;
    int rc;
    *st = NULL;
    if (id && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* a zip named directly: its directory is the store */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        if (!dir) {
            free(id);
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        }
        if (ref && strcmp(ref, "latest") && strcmp(ref, id))
            rc = burry_errf(e, BURRY_EUSAGE, "'%s' is the archive of snapshot '%s', not '%s'", path, id, ref);
        else if ((rc = catalog_open_store(dir, o, ops, st, e)) == 0)
            rc = zip_describe(*ops, *st, slash ? slash + 1 : path, id, manifest, e);
        if (rc == BURRY_ENOENT) {
            burry_err_clear(e);
            rc = burry_errf(e, BURRY_ENOENT, "cannot read '%s': it vanished", path);
        }
        free(dir);
        free(id);
        goto out;
    }
    free(id);
    if ((rc = catalog_open_store(store_url, o, ops, st, e)) < 0)
        return rc;
    if (!ref || !gozip_valid_id(ref)) {
        rc = catalog_resolve(*ops, *st, ref, name, manifest, e);
        goto out;
    }
    /* digits only: never a burry ID, maybe the original tool's */
    char key[32];
    snprintf(key, sizeof key, "%s%s", ref, GOZIP_SUFFIX);
    rc = zip_describe(*ops, *st, key, ref, manifest, e);
    if (rc == BURRY_ENOENT) {
        burry_err_clear(e);
        rc = burry_errf(e, BURRY_ENOENT,
                        "no snapshot '%s' in %s (no archive '%s' of the original burry either; "
                        "burry ls lists snapshots)",
                        ref, (*ops)->describe(*st), key);
    }
out:
    if (rc < 0 && *st) {
        (*ops)->close(*st);
        *st = NULL;
    }
    return rc;
}

int catalog_open_store(const char *url, const struct burry_opts *o, const struct store_ops **ops,
                       struct store **st, struct burry_err *e)
{
    if (!url)
        url = "burry-snapshots";
    *ops = registry_store(url, e);
    if (!*ops)
        return e->code;
    return (*ops)->open(st, url, o, e);
}

int catalog_check_store_url(const char *url, struct burry_err *e)
{
    const struct store_ops *ops = registry_store(url, e);
    if (!ops)
        return e->code;
    return ops->check_url ? ops->check_url(url, e) : 0;
}

int catalog_check_put(const struct store_ops *ops, struct store *st, const char *name, struct burry_err *e)
{
    return ops->check_put ? ops->check_put(st, name, e) : 0;
}

static json_t *summary(json_t *m)
{
    json_t *archive = json_object_get(m, "archive");
    return json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?}", "id", json_object_get(m, "snapshot"),
                     "name", json_object_get(m, "name"), "service", json_object_get(m, "service"),
                     "source", json_object_get(m, "source"), "time", json_object_get(m, "created"),
                     "nodes", json_object_get(m, "nodes"), "bytes", json_object_get(m, "bytes"),
                     "size", json_object_get(archive, "size"));
}

int burry_list(const struct burry_opts *o, const char *store_url, const char *name, json_t **out,
               struct burry_err *e)
{
    const struct store_ops *ops;
    struct store *st = NULL;
    json_t *all = NULL;
    int rc;
    if (name && (rc = catalog_check_name(name, e)) < 0)
        return rc;
    if ((rc = catalog_open_store(store_url, o, &ops, &st, e)) < 0)
        return rc;
    /* without --name, also the original burry's ID.zip at the top level
     * (restore and show take them), listed apart and not read */
    if ((rc = name ? catalog_list(ops, st, name, &all, e) : catalog_list_gozip(ops, st, NULL, &all, e)) < 0)
        goto out;
    json_t *arr = json_array(), *zips = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m) {
        const char *id = json_string_value(json_object_get(m, "snapshot"));
        const char *nm = json_string_value(json_object_get(m, "name"));
        if (!strcmp(json_string_value(json_object_get(m, "format")) ?: "", GOZIP_FORMAT)) {
            json_t *a = json_object_get(m, "archive");
            json_array_append_new(zips, json_pack("{s:s,s:O,s:O}", "id", id, "key", json_object_get(a, "key"),
                                                  "size", json_object_get(a, "size")));
            continue;
        }
        if (catalog_damaged(m)) {
            blog(&o->log, BLOG_WARN, "%s", catalog_damaged(m));
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "id", id, "name", nm, "damaged",
                                                 catalog_damaged(m)));
            continue;
        }
        json_t *sm = summary(m);
        if (catalog_id_in_future(id)) {
            blog(&o->log, BLOG_WARN,
                 "snapshot '%s' of '%s' has an ID later than now (was the clock ahead?); it sorts as the newest",
                 id, nm);
            json_object_set_new(sm, "future", json_true());
        }
        json_array_append_new(arr, sm);
    }
    *out = json_pack("{s:o,s:o}", "snapshots", arr, "go_archives", zips);
out:
    json_decref(all);
    ops->close(st);
    return rc;
}

int burry_show(const struct burry_opts *o, const char *store_url, const char *snapshot,
               const char *name, json_t **out, struct burry_err *e)
{
    const struct store_ops *ops;
    struct store *st = NULL;
    json_t *m = NULL;
    int rc;
    if (name && (rc = catalog_check_name(name, e)) < 0)
        return rc;
    if ((rc = catalog_open_snapshot(store_url, snapshot, name, o, &ops, &st, &m, e)) < 0)
        return rc;
    if (strcmp(json_string_value(json_object_get(m, "format")) ?: "", GOZIP_FORMAT)) {
        *out = m;
        ops->close(st);
        return 0;
    }
    /* an original burry zip has no manifest with counts: read it whole */
    struct catalog_get g;
    struct gozip *z = NULL;
    char *key = catalog_archive_key(m);
    const char *id = json_string_value(json_object_get(m, "snapshot"));
    if (!key)
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
    else if ((rc = catalog_get_open(&g, ops, st, key, e)) == 0) {
        z = gozip_open(catalog_get_read, catalog_get_rewind, &g, id, e);
        if (!z)
            rc = burry_err_prefix(e, "archive '%s' in %s", key, ops->describe(st));
        else {
            *out = json_deep_copy(gozip_manifest(z));
            json_object_set_new(*out, "archive", json_pack("{s:s,s:I}", "key", key, "size",
                                                           (json_int_t)g.size));
        }
        catalog_get_close(&g);
    }
    gozip_free(z);
    free(key);
    json_decref(m);
    ops->close(st);
    return rc;
}

/* Keep the newest `keep` snapshots of each name (or of one name) and delete
 * the others: the manifest first, so a snapshot stops being listed before
 * its archive goes, then the archive. A damaged snapshot (sidecar that does
 * not read, archive missing or of another size than its sidecar says) is
 * reported, not counted and not deleted. just_written is kept and counted
 * first, whatever its ID. */
int burry_prune(const struct burry_opts *o, const char *store_url, const char *name, int keep,
                int dry_run, const char *just_written, json_t **out, struct burry_err *e)
{
    const struct store_ops *ops;
    struct store *st = NULL;
    json_t *all = NULL, *sizes = NULL, *deleted = json_array(), *kept = json_array(),
           *damaged = json_array();
    int rc;
    *out = NULL;
    if (keep < 1) {
        rc = burry_errf(e, BURRY_EUSAGE, "--keep wants at least 1 (got %d)", keep);
        goto out0;
    }
    if (name && (rc = catalog_check_name(name, e)) < 0)
        goto out0;
    if ((rc = catalog_open_store(store_url, o, &ops, &st, e)) < 0)
        goto out0;
    if ((rc = list_keys(ops, st, name, &all, &sizes, 0, e)) < 0)
        goto out;
    json_t *seen = json_object();
    /* the snapshot just written takes the first place of its name */
    for (size_t i = 0; just_written && i < json_array_size(all); i++) {
        json_t *m = json_array_get(all, i);
        const char *nm = json_string_value(json_object_get(m, "name"));
        if (strcmp(json_string_value(json_object_get(m, "snapshot")), just_written) || catalog_damaged(m) ||
            (name && strcmp(nm, name)))
            continue;
        json_object_set_new(seen, nm, json_integer(1));
        json_array_append_new(kept, json_pack("{s:s,s:s}", "id", just_written, "name", nm));
        break;
    }
    /* the list is sorted by ID; walk it newest first, counting per name */
    for (size_t i = json_array_size(all); i-- > 0;) {
        json_t *m = json_array_get(all, i);
        const char *nm = json_string_value(json_object_get(m, "name"));
        const char *id = json_string_value(json_object_get(m, "snapshot"));
        if (just_written && !strcmp(id, just_written) && !catalog_damaged(m) && (!name || !strcmp(nm, name)))
            continue; /* kept above */
        char *akey = catalog_damaged(m) ? NULL : catalog_archive_key(m);
        char why[600] = "";
        if (catalog_damaged(m)) {
            snprintf(why, sizeof why, "%s", catalog_damaged(m));
        } else if (!akey || !json_object_get(sizes, akey)) {
            snprintf(why, sizeof why, "its archive '%s' is missing from %s", akey ? akey : "?", ops->describe(st));
        } else if (json_is_integer(json_object_get(json_object_get(m, "archive"), "size")) &&
                   json_integer_value(json_object_get(json_object_get(m, "archive"), "size")) !=
                       json_integer_value(json_object_get(sizes, akey))) {
            snprintf(why, sizeof why, "its archive '%s' holds %lld bytes, its sidecar says %lld", akey,
                     (long long)json_integer_value(json_object_get(sizes, akey)),
                     (long long)json_integer_value(json_object_get(json_object_get(m, "archive"), "size")));
        }
        if (why[0]) {
            blog(&o->log, BLOG_WARN, "snapshot '%s' of '%s' is damaged, not counted and not deleted: %s", id, nm, why);
            json_array_append_new(damaged, json_pack("{s:s,s:s,s:s}", "id", id, "name", nm, "error", why));
            free(akey);
            continue;
        }
        if (catalog_id_in_future(id))
            blog(&o->log, BLOG_WARN,
                 "snapshot '%s' of '%s' has an ID later than now (was the clock ahead?); it counts as the newest",
                 id, nm);
        json_int_t n = json_integer_value(json_object_get(seen, nm)) + 1;
        json_object_set_new(seen, nm, json_integer(n));
        json_t *item = json_pack("{s:s,s:s}", "id", id, "name", nm);
        if (n <= keep || dry_run) {
            json_array_append_new(n <= keep ? kept : deleted, item);
            free(akey);
            continue;
        }
        json_array_append_new(deleted, item);
        char *mkey = NULL;
        if (asprintf(&mkey, "%s/%s%s", nm, id, CATALOG_MANIFEST_SUFFIX) < 0)
            mkey = NULL;
        if (!mkey) {
            free(akey);
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            break;
        }
        rc = ops->remove(st, mkey, e);
        if (rc == 0) {
            struct burry_err e2 = {0};
            if (ops->remove(st, akey, &e2) < 0 && e2.code != BURRY_ENOENT)
                blog(&o->log, BLOG_WARN, "snapshot '%s' is unlisted but its archive stays: %s", id, e2.msg);
            blog(&o->log, BLOG_INFO, "deleted snapshot '%s' of '%s'", id, nm);
        }
        free(mkey);
        free(akey);
        if (rc < 0) {
            burry_err_prefix(e, "cannot delete snapshot '%s' from %s", id, ops->describe(st));
            break;
        }
    }
    json_decref(seen);
    *out = json_pack("{s:b,s:i,s:O,s:O,s:O}", "dry_run", dry_run, "keep", keep, "deleted", deleted, "kept", kept,
                     "damaged", damaged);
out:
    json_decref(all);
    json_decref(sizes);
    ops->close(st);
out0:
    json_decref(deleted);
    json_decref(kept);
    json_decref(damaged);
    return rc;
}

char *catalog_default_name(const char *scheme, const char *host, const char *port, const char *extra,
                           size_t extra_len)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = buf_printf(&b, "%s-", scheme);
    for (const char *q = host; rc == 0 && *q; q++)
        if (*q != '[' && *q != ']') /* IPv6 brackets */
            rc = buf_putc(&b, *q);
    if (rc == 0)
        rc = buf_printf(&b, "-%s", port);
    if (rc == 0 && extra && extra_len)
        rc = buf_putc(&b, '-') == 0 ? buf_append(&b, extra, extra_len) : -1;
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    for (size_t i = 0; i < b.len; i++) {
        char c = b.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            b.p[i] = '-';
    }
    if (b.len > 100)
        b.p[b.len = 100] = 0;
    return buf_take(&b, NULL);
}

int catalog_put_new(const struct store_ops *ops, struct store *st, const char *name, const char *suffix,
                    char id[32], char created[40], char **key, struct store_put **put, struct burry_err *e)
{
    *key = NULL;
    *put = NULL;
    /* IDs carry a random suffix; a clash with an existing key just draws again */
    for (int attempt = 0;; attempt++) {
        catalog_new_id(id, 32);
        free(*key);
        if (asprintf(key, "%s/%s%s", name, id, suffix) < 0) {
            *key = NULL;
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        }
        int rc = ops->put_open(st, *key, put, e);
        if (rc == BURRY_EEXIST && attempt < 5) {
            burry_err_clear(e);
            continue;
        }
        if (rc < 0) {
            free(*key);
            *key = NULL;
            return rc;
        }
        break;
    }
    /* the ID's own instant, so that IDs and times sort alike */
    snprintf(created, 40, "%.4s-%.2s-%.2sT%.2s:%.2s:%.2s.%.3sZ", id, id + 4, id + 6, id + 9, id + 11,
             id + 13, id + 16);
    return 0;
}

/* Let the store's requests run to their end despite an interrupt (on), or
 * not (off), where the store has requests an interrupt cuts short. */
static void drain(const struct store_ops *ops, struct store *st, int on)
{
    if (ops->set_drain)
        ops->set_drain(st, on);
}

int catalog_put_text(const struct store_ops *ops, struct store *st, const char *key, const char *text,
                     struct burry_err *e)
{
    struct store_put *p = NULL;
    if (burry_interrupted)
        return burry_errf(e, BURRY_EINTR, "interrupted before writing '%s' to %s", key, ops->describe(st));
    /* a request cut short after it reached the server may have stored the
     * object all the same: let it end, so that the caller knows */
    drain(ops, st, 1);
    int rc = ops->put_open(st, key, &p, e);
    if (rc == 0 && (rc = ops->put_write(p, text, strlen(text), e)) < 0)
        ops->put_abort(p);
    else if (rc == 0)
        rc = ops->put_commit(p, e);
    drain(ops, st, 0);
    return rc;
}

int catalog_put_commit(const struct store_ops *ops, struct store *st, struct store_put *p, struct burry_err *e)
{
    drain(ops, st, 1);
    int rc = ops->put_commit(p, e);
    drain(ops, st, 0);
    return rc;
}

int catalog_remove_anyway(const struct store_ops *ops, struct store *st, const char *key, struct burry_err *e)
{
    int was = burry_hold_interrupt();
    int rc = ops->remove(st, key, e);
    burry_resume_interrupt(was);
    return rc;
}
