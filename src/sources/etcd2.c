/* etcd v2 source: the v2 keys API over HTTP, for old clusters (and etcd 3.x
 * started with --enable-v2). A backup is one recursive sorted read emitted
 * depth first (scan); a restore keeps up to 64 requests in flight on
 * several connections through the shared http_multi layer. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "catalog.h"
#include "http.h"
#include "http_multi.h"
#include "names.h"
#include "registry.h"
#include "source.h"

/* The whole tree arrives in one answer: accept up to 1 GiB of it. */
#define E2_MAX_TREE ((size_t)1 << 30)
/* One node's answer during a restore (a directory lists its children). */
#define E2_MAX_NODE ((size_t)256 << 20)
/* Requests in flight (and connections) during a restore. */
#define E2_MAX_INFLIGHT 64
/* Deepest key accepted in a backup (the emitter recurses). */
#define E2_MAX_DEPTH 2048

/* etcd v2 error codes (etcd's error package) */
enum { EC_NOT_FOUND = 100, EC_NOT_FILE = 102, EC_NOT_DIR = 104, EC_EXISTS = 105, EC_RAFT_INTERNAL = 300,
       EC_LEADER_ELECT = 301 };

struct e2url {
    char *host;      /* "127.0.0.1" (brackets removed) */
    char *port;
    char *shown;     /* "HOST:PORT" as given */
    char *prefix;    /* "/a/b" without trailing '/', or NULL for the root */
    int https;       /* etcd2+https:// */
};

enum phase { PH_PRESET, PH_CREATE, PH_TYPE, PH_GET, PH_SET };

struct source;

struct e2req {
    struct e2req *next;           /* queue link */
    struct source *s;
    enum src_write_mode mode;
    enum phase phase;
    enum src_write_outcome preset;
    int is_dir;
    long long ttl;                /* -1: none */
    char *value;
    size_t value_len;
    char *key;                    /* canonical path relative to the prefix */
    size_t key_len;
    char *url;                    /* full URL of the node, without query */
    char msg[300];
    src_write_cb cb;
    void *ctx, *token;
};

struct source {
    const struct burry_opts *o;
    struct e2url u;
    char *base;                   /* "http://HOST:PORT/v2/keys" + escaped prefix */
    char *version;                /* server version, if it said */
    struct http *h;
    char *auth;                   /* "Authorization: Basic ..." (wiped on close) */
    struct http_multi *hm;        /* restore requests, made at the first submit */
    struct e2req *qhead, *qtail;  /* submitted, not started */
    struct e2req *active[E2_MAX_INFLIGHT]; /* started, not finished */
    size_t nactive, maxactive;
    size_t npending;
    int dead;
    struct burry_err dead_err;
};

/* ---- URLs ------------------------------------------------------------- */

static void e2url_free(struct e2url *u)
{
    free(u->host);
    free(u->port);
    free(u->shown);
    free(u->prefix);
    memset(u, 0, sizeof *u);
}

/* A v2 key path: segments of bytes other than '/', none empty, "." or ".."
 * (etcd cleans paths, so those cannot exist). NULL if fine. */
static const char *path_problem(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        return "an etcd v2 key starts with '/'";
    if (n > 1 && p[n - 1] == '/')
        return "an etcd v2 key does not end with '/'";
    for (size_t i = 1; i < n;) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0)
            return "empty segment";
        if ((len == 1 && p[i] == '.') || (len == 2 && p[i] == '.' && p[i + 1] == '.'))
            return "'.' and '..' are not etcd v2 names";
        for (size_t k = i; k < j; k++)
            if (p[k] == 0)
                return "NUL byte in a name";
        i = j + 1;
    }
    return NULL;
}

static int e2url_parse(const char *url, struct e2url *u, struct burry_err *e)
{
    memset(u, 0, sizeof *u);
    const char *a = source_url_rest(url, "etcd2", &u->https);
    if (!a)
        return burry_errf(e, BURRY_EUSAGE, "'%s' is not an etcd2:// URL", url);
    size_t alen = strcspn(a, "/");
    if (memchr(a, '@', alen))
        return burry_errf(e, BURRY_EUSAGE,
                          "credentials do not belong in the URL '%s'; use --user and --password-file",
                          "etcd2://...");
    if (memchr(a, ',', alen))
        return burry_errf(e, BURRY_EUSAGE, "'%s': etcd2:// takes one HOST:PORT", url);
    const char *colon = NULL, *hs = a, *he;
    if (alen && a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb || rb + 1 >= a + alen || rb[1] != ':')
            return burry_errf(e, BURRY_EUSAGE, "'%s': expected etcd2://HOST:PORT[/prefix]", url);
        hs = a + 1;
        he = rb;
        colon = rb + 1;
    } else {
        colon = memchr(a, ':', alen);
        he = colon;
    }
    if (!colon || he == hs || colon + 1 >= a + alen)
        return burry_errf(e, BURRY_EUSAGE, "'%s': expected etcd2://HOST:PORT[/prefix]", url);
    for (const char *p = hs; p < he; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_' || *p == ':'))
            return burry_errf(e, BURRY_EUSAGE, "'%s': invalid host name", url);
    for (const char *p = colon + 1; p < a + alen; p++)
        if (!isdigit((unsigned char)*p))
            return burry_errf(e, BURRY_EUSAGE, "'%s': invalid port", url);
    u->host = strndup(hs, (size_t)(he - hs));
    u->port = strndup(colon + 1, (size_t)(a + alen - colon - 1));
    u->shown = strndup(a, alen);
    const char *pre = a + alen;
    size_t plen = strlen(pre);
    while (plen > 1 && pre[plen - 1] == '/')
        plen--;
    if (plen > 1) {
        const char *why = path_problem(pre, plen);
        if (why) {
            e2url_free(u);
            return burry_errf(e, BURRY_EUSAGE, "invalid prefix in '%s': %s", url, why);
        }
        u->prefix = strndup(pre, plen);
    }
    if (!u->host || !u->port || !u->shown || (plen > 1 && !u->prefix)) {
        e2url_free(u);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    return 0;
}

/* Append key bytes to a URL: unreserved bytes and '/' as they are. */
static int url_escape(struct buf *b, const char *p, size_t n, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            if (buf_putc(b, (char)c) < 0)
                return -1;
        } else {
            char t[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (buf_append(b, t, 3) < 0)
                return -1;
        }
    }
    return 0;
}

static int tls(const struct source *s)
{
    return s->u.https || s->o->cacert || s->o->cert || s->o->key;
}

/* ---- answers ---------------------------------------------------------- */

/* errorCode and message of a v2 error answer; code 0 if it is none. */
static int v2_error(const char *body, size_t len, char *msg, size_t msglen)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, &je);
    int code = 0;
    if (msg && msglen)
        msg[0] = 0;
    if (j && json_is_integer(json_object_get(j, "errorCode"))) {
        code = (int)json_integer_value(json_object_get(j, "errorCode"));
        const char *m = json_string_value(json_object_get(j, "message"));
        if (msg && m)
            snprintf(msg, msglen, "%s", m);
    }
    json_decref(j);
    return code;
}

static int auth_error(struct source *s, struct burry_err *e)
{
    if (s->o->user)
        return burry_errf(e, BURRY_EFAIL,
                          "etcd at %s refused user '%s' (wrong user name or password, or no "
                          "permission on these keys)", s->u.shown, s->o->user);
    return burry_errf(e, BURRY_EFAIL,
                      "etcd at %s requires authentication; give --user (and the password "
                      "through --password-file or ETCD_PASSWORD)", s->u.shown);
}

static int v2_disabled(struct source *s, struct burry_err *e)
{
    return burry_errf(e, BURRY_EFAIL,
                      "etcd at %s does not serve the v2 API (started without --enable-v2?); "
                      "for etcd v3 use etcd://", s->u.shown);
}

/* ---- open / close ----------------------------------------------------- */

static void etcd2_close(struct source *s);

static int simple_get(struct source *s, const char *path, struct http_resp *r, size_t max,
                      struct burry_err *e)
{
    struct buf url;
    buf_init(&url, 0);
    if (buf_printf(&url, "%s://%s%s", tls(s) ? "https" : "http", s->u.shown, path) < 0) {
        buf_free(&url);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    const char *hdr[2] = {s->auth, NULL};
    struct http_req rq = {.method = "GET", .url = url.p, .headers = hdr, .max_resp = max};
    int rc = http_do(s->h, "etcd", &rq, r, e);
    buf_free(&url);
    return rc;
}

static int etcd2_open(struct source **out, const char *url, const struct burry_opts *o,
                      struct burry_err *e)
{
    struct source *s = calloc(1, sizeof *s);
    struct http_resp r = {0};
    struct buf b;
    int rc;
    buf_init(&b, 0);
    *out = NULL;
    if (!s)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    s->o = o;
    if ((rc = e2url_parse(url, &s->u, e)) < 0)
        goto fail;
    if (buf_printf(&b, "%s://%s/v2/keys", tls(s) ? "https" : "http", s->u.shown) < 0 ||
        (s->u.prefix && url_escape(&b, s->u.prefix, strlen(s->u.prefix), 1) < 0)) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto fail;
    }
    s->base = buf_take(&b, NULL);
    if (o->user) {
        struct buf cred, hdr;
        buf_init(&cred, 0);
        buf_init(&hdr, 0);
        int bad = buf_printf(&cred, "%s:%s", o->user, o->password ? o->password : "") < 0 ||
                  buf_puts(&hdr, "Authorization: Basic ") < 0 ||
                  b64_encode(cred.p, cred.len, &hdr) < 0;
        if (!bad)
            s->auth = strdup(hdr.p);
        buf_wipe(&cred);
        buf_wipe(&hdr);
        if (bad || !s->auth) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            goto fail;
        }
    }
    if (!(s->h = http_new(o, e))) {
        rc = e->code ? e->code : BURRY_EFAIL;
        goto fail;
    }
    /* reachable at all, and which version */
    if ((rc = simple_get(s, "/version", &r, 1 << 20, e)) < 0)
        goto fail;
    if (r.status == 200) {
        json_t *j = json_loadb(r.body.p, r.body.len, 0, NULL);
        const char *v = json_string_value(json_object_get(j, "etcdserver"));
        if (v)
            s->version = strdup(v);
        json_decref(j);
    }
    buf_free(&r.body);
    /* does it speak v2 at all? (an etcd 3.4 without --enable-v2 answers a
     * plain-text 404 under /v2/) */
    if ((rc = simple_get(s, "/v2/machines", &r, 1 << 20, e)) < 0)
        goto fail;
    if (r.status == 404) {
        rc = v2_disabled(s, e);
        goto fail;
    }
    if (r.status == 401) {
        rc = auth_error(s, e);
        goto fail;
    }
    buf_free(&r.body);
    s->maxactive = o->window > 0 && o->window < E2_MAX_INFLIGHT ? (size_t)o->window : E2_MAX_INFLIGHT;
    *out = s;
    return 0;
fail:
    buf_free(&r.body);
    buf_free(&b);
    etcd2_close(s);
    return rc;
}

static void req_free(struct e2req *q)
{
    if (!q)
        return;
    free(q->value);
    free(q->key);
    free(q->url);
    free(q);
}

static void etcd2_close(struct source *s)
{
    if (!s)
        return;
    /* abandons requests in flight without running their callbacks */
    http_multi_free(s->hm);
    for (size_t i = 0; i < s->nactive; i++)
        req_free(s->active[i]);
    while (s->qhead) {
        struct e2req *q = s->qhead;
        s->qhead = q->next;
        req_free(q);
    }
    if (s->auth) {
        explicit_bzero(s->auth, strlen(s->auth));
        free(s->auth);
    }
    http_free(s->h);
    e2url_free(&s->u);
    free(s->base);
    free(s->version);
    free(s);
}

/* ---- URL-level helpers -------------------------------------------------- */

static char *etcd2_describe(const char *url)
{
    /* open() refuses a "user@" part; cut it here too in case it is there */
    int https;
    const char *a = source_url_rest(url, "etcd2", &https);
    if (a) {
        size_t alen = strcspn(a, "/");
        const char *at = memchr(a, '@', alen);
        if (at)
            return str_printf("%.*s%s", (int)(a - url), url, at + 1);
    }
    return strdup(url);
}

static char *etcd2_default_name(const char *url)
{
    struct e2url u;
    struct burry_err e = {0, ""};
    if (e2url_parse(url, &u, &e) != 0)
        return strdup("etcd2");
    char *r = catalog_default_name("etcd2", u.host, u.port, u.prefix ? u.prefix + 1 : NULL,
                                   u.prefix ? strlen(u.prefix + 1) : 0);
    e2url_free(&u);
    return r;
}

static int etcd2_user_path(const char *user, char **out, size_t *out_len, struct burry_err *e)
{
    size_t n = strlen(user);
    const char *why = path_problem(user, n);
    if (n == 1 && user[0] == '/')
        why = NULL;
    if (why)
        return burry_errf(e, BURRY_EUSAGE, "invalid etcd v2 key '%s': %s", user, why);
    if (n == 1)
        n = 0;
    char *p = malloc(n + 1);
    if (!p)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    memcpy(p, user, n);
    p[n] = 0;
    *out = p;
    *out_len = n;
    return 0;
}

static json_t *etcd2_manifest_info(struct source *s)
{
    json_t *j = json_pack("{s:s,s:s}", "api", "v2", "prefix", s->u.prefix ? s->u.prefix : "/");
    if (j && s->version)
        json_object_set_new(j, "server_version", json_string(s->version));
    return j;
}

/* ---- backup: one recursive read, emitted depth first ------------------- */

struct scan {
    struct source *s;
    src_emit_fn emit;
    void *ctx;
    struct buf path;   /* canonical path of the node being emitted */
};

static size_t last_seg(const char *key, size_t len)
{
    size_t i = len;
    while (i > 0 && key[i - 1] != '/')
        i--;
    return i;
}

static int node_cmp(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *kx = json_string_value(json_object_get(x, "key"));
    const char *ky = json_string_value(json_object_get(y, "key"));
    size_t lx = json_string_length(json_object_get(x, "key"));
    size_t ly = json_string_length(json_object_get(y, "key"));
    if (!kx || !ky)
        return kx ? 1 : ky ? -1 : 0;
    size_t sx = last_seg(kx, lx), sy = last_seg(ky, ly);
    return names_cmp(kx + sx, lx - sx, ky + sy, ly - sy);
}

static json_t *node_attrs(json_t *n, int dir)
{
    json_t *a = json_object();
    if (!a)
        return NULL;
    json_object_set_new(a, "dir", json_boolean(dir));
    static const char *const copy[] = {"ttl", "expiration", "createdIndex", "modifiedIndex"};
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
        json_t *v = json_object_get(n, copy[i]);
        if (v)
            json_object_set(a, copy[i], v);
    }
    return a;
}

static int scan_node(struct scan *sc, json_t *n, int depth, struct burry_err *e)
{
    struct source *s = sc->s;
    if (depth > E2_MAX_DEPTH)
        return burry_errf(e, BURRY_EFAIL, "etcd at %s holds keys deeper than %d levels",
                          s->u.shown, E2_MAX_DEPTH);
    if (!json_is_object(n))
        return burry_errf(e, BURRY_EFAIL, "etcd at %s sent a malformed node", s->u.shown);
    int dir = json_is_true(json_object_get(n, "dir"));
    json_t *val = json_object_get(n, "value");
    if (!dir && !json_is_string(val))
        return burry_errf(e, BURRY_EFAIL, "etcd at %s sent a key without a value", s->u.shown);
    json_t *attrs = node_attrs(n, dir);
    if (!attrs)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct bnode bn = {.path = sc->path.p ? sc->path.p : "", .path_len = sc->path.len,
                       .has_value = !dir, .attrs = attrs};
    if (!dir) {
        bn.value = json_string_value(val);
        bn.value_len = json_string_length(val);
    }
    int rc = sc->emit(sc->ctx, &bn, e);
    json_decref(attrs);
    if (rc < 0)
        return rc;

    json_t *kids = json_object_get(n, "nodes");
    size_t nk = json_array_size(kids);
    if (!dir || nk == 0)
        return 0;
    json_t **sorted = malloc(nk * sizeof *sorted);
    if (!sorted)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    for (size_t i = 0; i < nk; i++)
        sorted[i] = json_array_get(kids, i);
    qsort(sorted, nk, sizeof *sorted, node_cmp);
    size_t base = sc->path.len;
    for (size_t i = 0; i < nk && rc == 0; i++) {
        json_t *k = json_object_get(sorted[i], "key");
        const char *key = json_string_value(k);
        size_t klen = json_string_length(k);
        size_t seg = key ? last_seg(key, klen) : 0;
        if (!key || seg == 0 || seg == klen) {
            rc = burry_errf(e, BURRY_EFAIL, "etcd at %s sent a node with a malformed key",
                            s->u.shown);
            break;
        }
        sc->path.len = base;
        if (buf_putc(&sc->path, '/') < 0 || buf_append(&sc->path, key + seg, klen - seg) < 0) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            break;
        }
        rc = scan_node(sc, sorted[i], depth + 1, e);
        if (burry_interrupted && rc == 0)
            rc = burry_errf(e, BURRY_EINTR, "interrupted");
    }
    sc->path.len = base;
    if (sc->path.p)
        sc->path.p[base] = 0;
    free(sorted);
    return rc;
}

static int etcd2_scan(struct source *s, src_emit_fn emit, void *ctx, struct burry_err *e)
{
    struct http_resp r = {0};
    struct buf url;
    json_t *j = NULL;
    int rc;
    buf_init(&url, 0);
    if (buf_printf(&url, "%s%s?recursive=true&sorted=true", s->base, s->u.prefix ? "" : "/") < 0) {
        buf_free(&url);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    const char *hdr[2] = {s->auth, NULL};
    struct http_req rq = {.method = "GET", .url = url.p, .headers = hdr, .max_resp = E2_MAX_TREE};
    blog(&s->o->log, BLOG_DEBUG, "reading the whole tree of etcd at %s in one request (at most %zu MiB)",
         s->u.shown, E2_MAX_TREE >> 20);
    rc = http_do(s->h, "etcd", &rq, &r, e);
    buf_free(&url);
    if (rc < 0)
        return rc;
    char msg[200];
    if (r.status == 401 || r.status == 403) {
        rc = auth_error(s, e);
        goto out;
    }
    if (r.status == 404) {
        if (v2_error(r.body.p, r.body.len, msg, sizeof msg) == EC_NOT_FOUND) {
            blog(&s->o->log, BLOG_WARN,
                 "prefix '%s' does not exist in etcd at %s; there is nothing to read (a backup is empty)",
                 s->u.prefix ? s->u.prefix : "/", s->u.shown);
            rc = 0;
        } else {
            rc = v2_disabled(s, e);
        }
        goto out;
    }
    if (r.status != 200) {
        int code = v2_error(r.body.p, r.body.len, msg, sizeof msg);
        rc = code ? burry_errf(e, BURRY_EFAIL, "etcd at %s refused to list '%s': %s (error %d)",
                               s->u.shown, s->u.prefix ? s->u.prefix : "/", msg, code)
                  : burry_errf(e, BURRY_EFAIL, "etcd at %s answered HTTP %ld to a listing",
                               s->u.shown, r.status);
        goto out;
    }
    json_error_t je;
    j = json_loadb(r.body.p, r.body.len, JSON_ALLOW_NUL, &je);
    buf_free(&r.body); /* the parsed tree is enough */
    json_t *node = json_object_get(j, "node");
    if (!node) {
        rc = burry_errf(e, BURRY_EFAIL, "etcd at %s sent an unreadable listing (%s)", s->u.shown,
                        j ? "no node" : je.text);
        goto out;
    }
    blog(&s->o->log, BLOG_INFO, "etcd v2 leaves keys whose names start with '_' out of listings: they are "
         "not in this snapshot unless the URL names one as its prefix");
    struct scan sc = {.s = s, .emit = emit, .ctx = ctx};
    buf_init(&sc.path, 0);
    rc = scan_node(&sc, node, 0, e);
    buf_free(&sc.path);
out:
    json_decref(j);
    buf_free(&r.body);
    return rc;
}

/* ---- restore: pipelined writes through http_multi ----------------------- */

static void set_dead(struct source *s, int code, const struct burry_err *from, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_dead(struct source *s, int code, const struct burry_err *from, const char *fmt, ...)
{
    if (s->dead)
        return;
    s->dead = 1;
    if (from) {
        s->dead_err = *from;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    s->dead_err.code = code;
    vsnprintf(s->dead_err.msg, sizeof s->dead_err.msg, fmt, ap);
    va_end(ap);
}

static int dead_err(struct source *s, struct burry_err *e)
{
    return burry_errf(e, s->dead_err.code ? s->dead_err.code : BURRY_EFAIL, "%s", s->dead_err.msg);
}

static void req_done(void *ctx, int rc, struct http_resp *resp, const struct burry_err *err);

/* Send the current phase of q. */
static void req_start(struct source *s, struct e2req *q)
{
    struct buf u, body;
    buf_init(&u, 0);
    buf_init(&body, 0);
    int bad = buf_puts(&u, q->url) < 0;
    int put = q->phase == PH_CREATE || q->phase == PH_SET;
    if (put) {
        bad |= buf_puts(&u, q->phase == PH_CREATE ? "?prevExist=false" : "?prevExist=true") < 0;
        if (q->is_dir) {
            bad |= buf_puts(&u, "&dir=true") < 0;
        } else {
            bad |= buf_puts(&body, "value=") < 0 ||
                   url_escape(&body, q->value, q->value_len, 0) < 0;
        }
        if (q->ttl > 0)
            bad |= buf_printf(q->is_dir ? &u : &body, "&ttl=%lld", q->ttl) < 0;
    }
    if (bad) {
        set_dead(s, BURRY_EFAIL, NULL, "out of memory");
    } else {
        const char *hdr[2] = {s->auth, NULL};
        struct http_req r = {.method = put ? "PUT" : "GET",
                             .url = u.p,
                             .headers = hdr,
                             .body = put ? (body.p ? body.p : "") : NULL,
                             .body_len = body.len,
                             .max_resp = E2_MAX_NODE};
        struct burry_err e = {0};
        if (http_multi_submit(s->hm, "etcd", &r, req_done, q, &e) < 0)
            set_dead(s, 0, &e, "%s", "");
    }
    buf_free(&u);
    buf_free(&body);
}

static void active_remove(struct source *s, struct e2req *q)
{
    for (size_t i = 0; i < s->nactive; i++)
        if (s->active[i] == q) {
            s->active[i] = s->active[--s->nactive];
            return;
        }
}

static void req_finish(struct source *s, struct e2req *q, enum src_write_outcome out, const char *msg)
{
    active_remove(s, q);
    s->npending--;
    q->cb(q->ctx, q->token, out, msg);
    req_free(q);
}

/* Describe a refusal for the node's message. */
static void refusal(struct e2req *q, long status, int code, const char *m)
{
    if (code == EC_NOT_DIR)
        snprintf(q->msg, sizeof q->msg, "a parent of it is a key, not a directory (etcd: %s)", m);
    else if (code == EC_NOT_FILE)
        snprintf(q->msg, sizeof q->msg, "it exists as a directory, not a key");
    else if (code)
        snprintf(q->msg, sizeof q->msg, "etcd refused it: %s (error %d)", m, code);
    else if (status == 413)
        snprintf(q->msg, sizeof q->msg, "too large for this etcd (HTTP 413)");
    else
        snprintf(q->msg, sizeof q->msg, "etcd answered HTTP %ld", status);
}

/* Compare an existing node (a GET answer) with the wanted one.
 * Returns 0 same, 1 different value, -1 type mismatch (q->msg set). */
static int compare_existing(struct e2req *q, const struct buf *resp)
{
    json_t *j = json_loadb(resp->p, resp->len, JSON_ALLOW_NUL, NULL);
    json_t *n = json_object_get(j, "node");
    int rc;
    int dir = json_is_true(json_object_get(n, "dir"));
    if (!n) {
        snprintf(q->msg, sizeof q->msg, "etcd sent an unreadable answer");
        rc = -1;
    } else if (dir != q->is_dir) {
        snprintf(q->msg, sizeof q->msg, "it exists as a %s, not a %s", dir ? "directory" : "key",
                 q->is_dir ? "directory" : "key");
        rc = -1;
    } else if (dir) {
        rc = 0;
    } else {
        json_t *v = json_object_get(n, "value");
        rc = json_is_string(v) && json_string_length(v) == q->value_len &&
             (q->value_len == 0 || !memcmp(json_string_value(v), q->value, q->value_len)) ? 0 : 1;
    }
    json_decref(j);
    return rc;
}

/* One request of q finished with an HTTP answer: next phase or done. */
static void req_answer(struct source *s, struct e2req *q, long status, const struct buf *resp)
{
    char m[200];
    int code = status >= 300 ? v2_error(resp->p, resp->len, m, sizeof m) : 0;
    int plan = q->mode == SRC_WRITE_PLAN || q->mode == SRC_WRITE_PLAN_OVERWRITE;
    if (status == 401 || status == 403) {
        struct burry_err e = {0};
        auth_error(s, &e);
        set_dead(s, 0, &e, "%s", "");
        return;
    }
    /* a server that is stopping (or without a leader) answers the writes
     * in flight so, applied or not: a fact about the server, not about
     * this node, and no write after it can be trusted to be counted */
    if (code == EC_RAFT_INTERNAL || code == EC_LEADER_ELECT || status >= 500) {
        if (code)
            set_dead(s, BURRY_EFAIL, NULL, "etcd at %s failed a request (%s, error %d): it is stopping or "
                     "has no leader; the writes in flight may or may not have been applied", s->u.shown, m, code);
        else
            set_dead(s, BURRY_EFAIL, NULL, "etcd at %s failed a request (HTTP %ld): it is stopping or has no "
                     "leader; the writes in flight may or may not have been applied", s->u.shown, status);
        return;
    }
    switch (q->phase) {
    case PH_CREATE:
        if (status == 201 || status == 200)
            return req_finish(s, q, SRC_W_CREATED, NULL);
        if (code == EC_EXISTS) {
            /* existing: but as the same kind of node? */
            q->phase = PH_TYPE;
            break;
        }
        refusal(q, status, code, m);
        return req_finish(s, q, SRC_W_FAILED, q->msg);
    case PH_TYPE:
    case PH_GET:
        if (status == 404 && code == EC_NOT_FOUND) {
            if (q->phase == PH_TYPE) /* vanished in between: it existed */
                return req_finish(s, q, SRC_W_EXISTING, NULL);
            if (plan)
                return req_finish(s, q, SRC_W_CREATED, NULL);
            q->phase = PH_CREATE;
            break;
        }
        if (status != 200) {
            refusal(q, status, code, m);
            return req_finish(s, q, SRC_W_FAILED, q->msg);
        }
        {
            int cmp = compare_existing(q, resp);
            if (cmp < 0)
                return req_finish(s, q, SRC_W_FAILED, q->msg);
            if (q->phase == PH_TYPE)
                return req_finish(s, q, q->mode == SRC_WRITE_CREATE ? SRC_W_EXISTING : SRC_W_SAME, NULL);
            if (cmp == 0)
                return req_finish(s, q, SRC_W_SAME, NULL);
            if (q->mode == SRC_WRITE_PLAN)
                return req_finish(s, q, SRC_W_DIFFERENT, NULL);
            if (q->mode == SRC_WRITE_PLAN_OVERWRITE)
                return req_finish(s, q, SRC_W_OVERWRITTEN, NULL);
            q->phase = PH_SET;
        }
        break;
    case PH_SET:
        if (status == 200 || status == 201)
            return req_finish(s, q, SRC_W_OVERWRITTEN, NULL);
        refusal(q, status, code, m);
        return req_finish(s, q, SRC_W_FAILED, q->msg);
    case PH_PRESET:
        return;
    }
    /* another round trip for this node (its slot is free again) */
    req_start(s, q);
}

/* http_multi callback, run only inside http_multi_pump (so inside
 * etcd2_pump). Once the source is dead, answers are ignored: their nodes
 * stay active and close() frees them without calling back. */
static void req_done(void *ctx, int rc, struct http_resp *resp, const struct burry_err *err)
{
    struct e2req *q = ctx;
    struct source *s = q->s;
    if (s->dead)
        return;
    if (rc < 0) {
        /* the messages name the server as HOST:PORT (http_multi_set_where) */
        set_dead(s, 0, err, "%s", "");
        return;
    }
    req_answer(s, q, resp->status, &resp->body);
}

/* May the head of the queue start? Not while a write to one of its
 * ancestors is in flight: a child's PUT would create that ancestor
 * implicitly, and its own create would then find it existing. */
static int blocked(struct source *s, const struct e2req *q)
{
    if (q->mode == SRC_WRITE_PLAN || q->mode == SRC_WRITE_PLAN_OVERWRITE)
        return 0;
    for (size_t i = 0; i < s->nactive; i++) {
        const struct e2req *a = s->active[i];
        if (a->key_len < q->key_len && !memcmp(a->key, q->key, a->key_len) && q->key[a->key_len] == '/')
            return 1;
    }
    return 0;
}

static void dispatch(struct source *s)
{
    while (!s->dead && s->qhead && s->nactive < s->maxactive) {
        struct e2req *q = s->qhead;
        if (q->phase != PH_PRESET && blocked(s, q))
            return;
        s->qhead = q->next;
        if (!s->qhead)
            s->qtail = NULL;
        q->next = NULL;
        s->active[s->nactive++] = q;
        if (q->phase == PH_PRESET) {
            req_finish(s, q, q->preset, q->msg[0] ? q->msg : NULL);
            continue;
        }
        req_start(s, q);
    }
}

static int etcd2_write_submit(struct source *s, const struct bnode *n, enum src_write_mode mode,
                              src_write_cb cb, void *ctx, void *token, struct burry_err *e)
{
    if (s->dead)
        return dead_err(s, e);
    if (mode != SRC_WRITE_CREATE && mode != SRC_WRITE_OVERWRITE && mode != SRC_WRITE_PLAN &&
        mode != SRC_WRITE_PLAN_OVERWRITE)
        return burry_errf(e, BURRY_EFAIL, "unknown write mode %d", (int)mode);
    if (!s->hm) {
        if (!(s->hm = http_multi_new(s->o, s->maxactive, e)))
            return e->code ? e->code : BURRY_EFAIL;
        http_multi_set_where(s->hm, s->u.shown);
    }
    struct e2req *q = calloc(1, sizeof *q);
    if (!q)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    q->s = s;
    q->mode = mode;
    q->cb = cb;
    q->ctx = ctx;
    q->token = token;
    q->ttl = -1;
    q->is_dir = !n->has_value;
    q->is_dir = !n->has_value;
    q->key = malloc(n->path_len + 1);
    if (!q->key) {
        req_free(q);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    memcpy(q->key, n->path, n->path_len);
    q->key[n->path_len] = 0;
    q->key_len = n->path_len;
    const char *why = n->path_len ? path_problem(n->path, n->path_len) : NULL;
    if (why) {
        q->phase = PH_PRESET;
        q->preset = SRC_W_FAILED;
        snprintf(q->msg, sizeof q->msg, "not a valid etcd v2 key: %s", why);
    } else if (n->path_len == 0 && !s->u.prefix) {
        /* the root directory is always there */
        q->phase = PH_PRESET;
        q->preset = q->is_dir ? (mode == SRC_WRITE_CREATE ? SRC_W_EXISTING : SRC_W_SAME) : SRC_W_FAILED;
        if (!q->is_dir)
            snprintf(q->msg, sizeof q->msg, "the root of etcd v2 is a directory, it cannot hold a value");
    } else {
        struct buf u;
        buf_init(&u, 0);
        if (buf_puts(&u, s->base) < 0 || url_escape(&u, n->path, n->path_len, 1) < 0) {
            buf_free(&u);
            req_free(q);
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        }
        q->url = buf_take(&u, NULL);
        if (n->has_value) {
            q->value = malloc(n->value_len ? n->value_len : 1);
            if (!q->value) {
                req_free(q);
                return burry_errf(e, BURRY_EFAIL, "out of memory");
            }
            if (n->value_len)
                memcpy(q->value, n->value, n->value_len);
            q->value_len = n->value_len;
        }
        json_t *ttl = json_object_get(n->attrs, "ttl");
        if (s->o->with_leases && json_is_integer(ttl) && json_integer_value(ttl) > 0)
            q->ttl = json_integer_value(ttl);
        /* create-only tries the create first (one round trip when absent);
         * the others look first; directories are never set */
        q->phase = mode == SRC_WRITE_CREATE || (mode == SRC_WRITE_OVERWRITE && q->is_dir) ? PH_CREATE
                                                                                          : PH_GET;
    }
    if (s->qtail)
        s->qtail->next = q;
    else
        s->qhead = q;
    s->qtail = q;
    s->npending++;
    return 0;
}

static int etcd2_pump(struct source *s, int timeout_ms, struct burry_err *e)
{
    if (s->dead)
        return dead_err(s, e);
    if (burry_interrupted)
        return burry_errf(e, BURRY_EINTR, "interrupted");
    if (!s->hm)
        return 0;
    dispatch(s);
    if (s->dead)
        return dead_err(s, e);
    if (s->nactive == 0)
        return 0;
    struct burry_err pe = {0};
    if (http_multi_pump(s->hm, timeout_ms, &pe) < 0)
        set_dead(s, 0, &pe, "%s", "");
    if (s->dead)
        return dead_err(s, e);
    dispatch(s);
    if (s->dead)
        return dead_err(s, e);
    if (burry_interrupted)
        return burry_errf(e, BURRY_EINTR, "interrupted");
    return 0;
}

static size_t etcd2_pending(struct source *s)
{
    return s->npending;
}

const struct source_ops source_etcd2 = {
    .scheme = "etcd2",
    .https_form = 1,
    .service = "etcd2",
    .open = etcd2_open,
    .close = etcd2_close,
    .describe = etcd2_describe,
    .default_name = etcd2_default_name,
    .user_path = etcd2_user_path,
    .manifest_info = etcd2_manifest_info,
    .scan = etcd2_scan,
    .write_submit = etcd2_write_submit,
    .pump = etcd2_pump,
    .pending = etcd2_pending,
};
