/* Consul KV source (consul://HOST:PORT[/prefix]): a backup is one consistent
 * recursive read of the prefix, parsed as a stream of JSON events (yajl: the
 * answer can hold millions of keys) by a reader thread while the calling
 * thread writes the keys, in the byte order Consul lists them; a restore sends
 * the nodes in /v1/txn transactions of at most 64 operations ("cas" with
 * Index 0 creates only absent keys), up to CONSUL_LANES at once, a value too
 * big for a transaction body alone through PUT /v1/kv. Sessions and locks are recorded, not restored. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "buf.h"
#include "catalog.h"
#include "http.h"
#include "jsonout.h"
#include "names.h"
#include "registry.h"

#define CONSUL_DEFAULT_PORT "8500"
#define CONSUL_MAX_OPS 64                 /* Consul's limit per transaction */
#define CONSUL_MAX_VALUE (512u * 1024u)   /* kv_max_value_size */
#define CONSUL_TXN_BUDGET (480u * 1024u)  /* under txn_max_req_len (512 KiB) */
#define CONSUL_MAX_READ ((size_t)1 << 30) /* a batch of the backup read; an error answer */
/* Transactions of a restore in flight at once, each on a connection of its
 * own: Consul commits concurrent transactions together, so 4 at once restore
 * 10,000 keys in about half the time of one after the other. */
#define CONSUL_LANES 4

struct consul_url {
    char *host;   /* "127.0.0.1" or "[::1]" */
    char *port;
    char *prefix; /* key prefix without trailing '/', "" for all */
    int https;    /* consul+https:// */
};

/* One queued write; callbacks run in pump() in submit order. */
struct wop {
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
    unsigned long long flags;
    int want;                  /* 0: nothing to write (a path, not a key) */
    const char *bad;           /* static reason this node cannot be written */
    src_write_cb cb;
    void *ctx, *tok;
    enum src_write_outcome out;
    char *msg;
    int done, exists, differs;
};

struct source {
    const struct burry_opts *o;
    struct http *h;
    struct consul_url u;
    char *base;               /* "http://host:port" */
    char *hostport;
    char *tok_hdr;            /* "X-Consul-Token: ..." (secret, wiped) */
    const char *hdrs[3];
    enum src_write_mode mode;
    long long index;          /* X-Consul-Index of the backup read */
    struct wop *q;            /* queued writes */
    size_t nq, capq;
    struct buf tmp;           /* a backup's decoded value */
    struct lane *lanes;       /* CONSUL_LANES, made at the first write */
};

/* One transaction of a restore and what it needs for itself: its own
 * connection (lane 0 shares the source's) and scratch buffers. */
struct lane {
    struct source *s;
    struct http *h;
    struct buf body, tmp;
    struct wop *list[CONSUL_MAX_OPS];
    size_t n;
    size_t end;               /* the queue index after its ops */
    int rc;
    struct burry_err e;
    pthread_t th;
};

/* ---- URL ------------------------------------------------------------------ */

static void url_free(struct consul_url *u)
{
    free(u->host);
    free(u->port);
    free(u->prefix);
    memset(u, 0, sizeof *u);
}

static int url_parse(const char *url, struct consul_url *u, struct burry_err *e)
{
    memset(u, 0, sizeof *u);
    const char *a = source_url_rest(url, "consul", &u->https);
    if (!a)
        return burry_errf(e, BURRY_EUSAGE, "'%s' is not a Consul URL (consul://HOST:PORT[/prefix])", url);
    const char *slash = strchr(a, '/');
    size_t alen = slash ? (size_t)(slash - a) : strlen(a);
    if (memchr(a, '@', alen))
        return burry_errf(e, BURRY_EUSAGE,
                          "Consul URL '%.*s...' must not carry credentials; give the ACL token with "
                          "--token-file or CONSUL_HTTP_TOKEN", (int)(a - url), url);
    const char *colon = NULL;
    if (alen && a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            goto bad;
        if ((size_t)(rb + 1 - a) < alen) {
            if (rb[1] != ':')
                goto bad;
            colon = rb + 1;
        }
    } else {
        colon = memchr(a, ':', alen);
    }
    size_t hlen = colon ? (size_t)(colon - a) : alen;
    if (hlen == 0)
        goto bad;
    for (size_t i = 0; i < hlen; i++) {
        char c = a[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '[' || c == ']' || c == ':'))
            goto bad;
    }
    const char *port = colon ? colon + 1 : CONSUL_DEFAULT_PORT;
    size_t plen = colon ? alen - hlen - 1 : strlen(port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen || atoi(port) > 65535 || atoi(port) == 0)
        goto bad;
    u->host = strndup(a, hlen);
    u->port = strndup(port, plen);
    const char *pre = slash ? slash + 1 : "";
    size_t prelen = strlen(pre);
    while (prelen && pre[prelen - 1] == '/')
        prelen--;
    u->prefix = strndup(pre, prelen);
    if (!u->host || !u->port || !u->prefix) {
        url_free(u);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    return 0;
bad:
    return burry_errf(e, BURRY_EUSAGE, "invalid Consul address in '%s' (expected consul://HOST:PORT[/prefix])",
                      url);
}

/* Append key bytes to a URL path, percent-encoding all but unreserved bytes and '/'. */
static int put_escaped(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~' || c == '/') {
            if (buf_putc(b, (char)c) < 0)
                return -1;
        } else if (buf_putc(b, '%') < 0 || buf_putc(b, hex[c >> 4]) < 0 || buf_putc(b, hex[c & 15]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Go's HTTP mux answers a path with an empty, '.' or '..' segment (one
 * trailing '/' aside) with a redirect to its cleaned form, which names
 * another key; so /v1/kv/<key> reaches exactly that key only when the key
 * has none. Returns the length of the longest start of k whose path is
 * clean: n when k is clean, else where its first such segment begins (0,
 * or just after a '/'). */
static size_t kv_clean_len(const char *k, size_t n)
{
    for (size_t i = 0; i < n;) {
        const char *slash = memchr(k + i, '/', n - i);
        size_t j = slash ? (size_t)(slash - k) : n;
        size_t len = j - i;
        if (len == 0 || (len == 1 && k[i] == '.') || (len == 2 && k[i] == '.' && k[i + 1] == '.'))
            return i;
        i = j + 1; /* past n without a '/'; at n after a final '/', an empty last segment: fine */
    }
    return n;
}

/* Append s as a JSON string literal. Bytes >= 0x80 pass through (Consul
 * keys are Go strings; invalid UTF-8 is replaced by the server). */
static int put_json_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_putc(b, '"') < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = buf_append(b, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, esc, 6);
        } else {
            rc = buf_putc(b, (char)c);
        }
        if (rc < 0)
            return -1;
    }
    return buf_putc(b, '"');
}

/* ---- open, close, names --------------------------------------------------- */

static void consul_close(struct source *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nq; i++) {
        free(s->q[i].key);
        free(s->q[i].val);
        free(s->q[i].msg);
    }
    free(s->q);
    if (s->lanes) {
        for (int k = 0; k < CONSUL_LANES; k++) {
            if (k)
                http_free(s->lanes[k].h);
            buf_free(&s->lanes[k].body);
            buf_free(&s->lanes[k].tmp);
        }
        free(s->lanes);
    }
    http_free(s->h);
    url_free(&s->u);
    free(s->base);
    free(s->hostport);
    if (s->tok_hdr) {
        explicit_bzero(s->tok_hdr, strlen(s->tok_hdr));
        free(s->tok_hdr);
    }
    buf_free(&s->tmp);
    free(s);
}

static int consul_open(struct source **out, const char *url, const struct burry_opts *o,
                       struct burry_err *e)
{
    struct source *s = calloc(1, sizeof *s);
    int rc;
    *out = NULL;
    if (!s)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    s->o = o;
    buf_init(&s->tmp, 0);
    if ((rc = url_parse(url, &s->u, e)) < 0)
        goto fail;
    int tls = s->u.https || o->cacert || o->cert;
    if (asprintf(&s->base, "%s://%s:%s", tls ? "https" : "http", s->u.host, s->u.port) < 0 ||
        asprintf(&s->hostport, "%s:%s", s->u.host, s->u.port) < 0) {
        s->base = s->hostport = NULL;
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto fail;
    }
    size_t nh = 0;
    if (o->token && *o->token) {
        if (strpbrk(o->token, "\r\n")) {
            rc = burry_errf(e, BURRY_EUSAGE, "the Consul ACL token contains a line break");
            goto fail;
        }
        if (asprintf(&s->tok_hdr, "X-Consul-Token: %s", o->token) < 0) {
            s->tok_hdr = NULL;
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            goto fail;
        }
        s->hdrs[nh++] = s->tok_hdr;
    }
    s->hdrs[nh++] = "Content-Type: application/json";
    s->hdrs[nh] = NULL;
    if (!(s->h = http_new(o, e))) {
        rc = e->code ? e->code : BURRY_EFAIL;
        goto fail;
    }
    s->index = -1;
    *out = s;
    return 0;
fail:
    consul_close(s);
    return rc;
}

static char *consul_describe(const char *url)
{
    struct consul_url u;
    struct burry_err e = {0, ""};
    if (url_parse(url, &u, &e) < 0)
        return strdup("consul://(invalid address)");
    char *r = NULL;
    if (asprintf(&r, "consul%s://%s:%s%s%s", u.https ? "+https" : "", u.host, u.port,
                 *u.prefix ? "/" : "", u.prefix) < 0)
        r = NULL;
    url_free(&u);
    return r;
}

static char *consul_default_name(const char *url)
{
    struct consul_url u;
    struct burry_err e = {0, ""};
    if (url_parse(url, &u, &e) < 0)
        return strdup("consul");
    char *r = catalog_default_name("consul", u.host, u.port, u.prefix, strlen(u.prefix));
    url_free(&u);
    return r;
}

/* A user path names a key: "a/b" and "/a/b" are both the key "a/b" (node
 * "/a/b"); a key with a leading '/' needs it doubled ("//x" is key "/x");
 * "/" alone is the root. Trailing '/' are dropped, as from a URL's prefix:
 * "app/" is "app", whose subtree holds the folder key "app/" too; but "//"
 * is the key "/". */
static int consul_user_path(const char *user, char **out, size_t *out_len, struct burry_err *e)
{
    size_t n = strlen(user);
    if (n == 0)
        return burry_errf(e, BURRY_EUSAGE, "invalid Consul key path '': empty");
    int lead = user[0] == '/';
    /* "//" is the key "/" and stays so */
    size_t keep = lead && n >= 2 && user[1] == '/' ? 2 : (size_t)lead;
    while (n > keep && user[n - 1] == '/')
        n--;
    size_t len = (n == (size_t)lead) ? 0 : n + !lead;
    char *p = malloc(len + 1);
    if (!p)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    if (len) {
        p[0] = '/';
        memcpy(p + 1, user + lead, n - lead);
    }
    p[len] = 0;
    *out = p;
    *out_len = len;
    return 0;
}

static json_t *consul_manifest_info(struct source *s)
{
    json_t *j = json_pack("{s:s}", "prefix", s->u.prefix);
    if (j && s->index >= 0)
        json_object_set_new(j, "index", json_integer(s->index));
    return j;
}

/* ---- HTTP ----------------------------------------------------------------- */

static int denied(struct source *s, struct burry_err *e)
{
    return burry_errf(e, BURRY_EFAIL, "Consul at %s refused the request: permission denied (check the ACL token)",
                      s->hostport);
}

/* A short, printable piece of an error body for messages. */
static const char *snippet(const struct buf *b, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < b->len && j + 1 < n; i++) {
        unsigned char c = (unsigned char)b->p[i];
        out[j++] = (c < 0x20 || c >= 0x7f) ? ' ' : (char)c;
    }
    while (j && out[j - 1] == ' ')
        j--;
    out[j] = 0;
    return out;
}

static int unexpected(struct source *s, const char *doing, const struct http_resp *r, struct burry_err *e)
{
    char sn[200];
    if (r->status == 403)
        return denied(s, e);
    return burry_errf(e, BURRY_EFAIL, "Consul at %s answered HTTP %ld to %s: %s", s->hostport, r->status,
                      doing, r->body.len ? snippet(&r->body, sn, sizeof sn) : "(no body)");
}

/* ---- backup --------------------------------------------------------------- */

/* One entry of the recursive read. Strings live in its batch's arena and
 * are named by offset (the arena moves as it grows). */
struct kv_ent {
    size_t key, klen;          /* the key */
    size_t val, vlen;          /* the value as base64 */
    size_t sess, slen;         /* the session holding the lock */
    int has_val, has_sess;
    long long flags, create, modify, lock;
};

/* Entries parsed, waiting to be written. */
struct kv_batch {
    struct buf arena;          /* keys, values, sessions */
    struct kv_ent *ents;
    size_t n, cap;
};

#define BATCH_KEYS 2048              /* entries per batch */
#define BATCH_BYTES ((size_t)1 << 20) /* or arena bytes, whichever comes first */
#define BATCHES 4                    /* in flight at most: memory stays bounded */

/* The backup as two threads: the reader receives the answer and parses it
 * (yajl: a stream of JSON events, never the whole answer in memory) into
 * batches; the writer (the calling thread) takes them in order and emits
 * the keys as they come. Consul lists keys in byte order, which is archive
 * order, so nothing waits for the end of the answer. The batches form a
 * ring: the writer reads ring[head .. head + full), the reader fills
 * ring[head + full]. Without a thread the reader hands each batch to the
 * writer itself. */
struct kv_scan {
    struct source *s;
    /* the reader's side */
    struct kv_batch *cur;      /* the batch being filled */
    int depth;                 /* 1 inside the array, 2 inside an entry */
    int has_key;
    enum { F_OTHER, F_KEY, F_VALUE, F_SESSION, F_FLAGS, F_CREATE, F_MODIFY, F_LOCK } field;
    const char *bad;           /* why the answer is not a key listing */
    yajl_handle yajl;
    int failed;                /* the parser refused the answer */
    struct http_resp r;
    int http_rc;               /* http_do's result */
    struct burry_err http_e;
    /* shared */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct kv_batch ring[BATCHES];
    size_t head, full;
    int done;                  /* the reader has finished */
    int stop;                  /* the writer failed: stop reading */
    int threaded;
    /* the writer's side */
    src_emit_fn emit;
    void *emit_ctx;
    struct burry_err *e;
    int rc;                    /* <0 once emitting failed */
    size_t plen, emitted;
    long long maxidx;
    struct buf prev;           /* the last key emitted */
    struct buf path;           /* the node path of the key being emitted */
    struct buf attrs;          /* every key's attributes as JSON, written anew for each */
    struct buf msg[2];         /* keys shown in a message */
};

static int consume(struct kv_scan *sc, struct kv_batch *b);

/* The reader's current batch is full (or the answer ended): hand it over. */
static int publish(struct kv_scan *sc)
{
    if (!sc->threaded) {
        int rc = consume(sc, sc->cur);
        sc->cur->n = 0;
        buf_reset(&sc->cur->arena);
        return rc;
    }
    pthread_mutex_lock(&sc->mu);
    sc->full++;
    pthread_cond_broadcast(&sc->cv);
    while (sc->full == BATCHES && !sc->stop)
        pthread_cond_wait(&sc->cv, &sc->mu);
    int stop = sc->stop;
    if (!stop) /* the next free slot; the writer never reads it */
        sc->cur = &sc->ring[(sc->head + sc->full) % BATCHES];
    pthread_mutex_unlock(&sc->mu);
    if (stop)
        return -1;
    sc->cur->n = 0;
    buf_reset(&sc->cur->arena);
    return 0;
}

static int p_scalar(void *ctx);

static int p_str(void *ctx, const unsigned char *v, size_t n)
{
    struct kv_scan *p = ctx;
    if (p->depth != 2)
        return p->depth ? 1 : p_scalar(ctx);
    struct kv_batch *b = p->cur;
    struct kv_ent *x = &b->ents[b->n];
    size_t off = b->arena.len;
    if (p->field != F_KEY && p->field != F_VALUE && p->field != F_SESSION)
        return 1;
    if (buf_append(&b->arena, v, n) < 0) {
        p->bad = b->arena.len + n > CONSUL_MAX_READ ? "more than 1 GiB in one key and value"
                                                    : "out of memory";
        return 0;
    }
    if (p->field == F_KEY) {
        x->key = off, x->klen = n, p->has_key = 1;
    } else if (p->field == F_VALUE) {
        x->val = off, x->vlen = n, x->has_val = 1;
    } else {
        x->sess = off, x->slen = n, x->has_sess = 1;
    }
    return 1;
}

/* Numbers come as their text: Consul's flags and indexes are unsigned
 * 64-bit, past what a signed integer holds. Each is kept as the signed
 * 64-bit integer with the same bits (what the archive records). */
static int p_num(void *ctx, const char *v, size_t n)
{
    struct kv_scan *p = ctx;
    if (p->depth != 2)
        return p->depth ? 1 : p_scalar(ctx);
    struct kv_ent *x = &p->cur->ents[p->cur->n];
    long long *slot = p->field == F_FLAGS    ? &x->flags
                      : p->field == F_CREATE ? &x->create
                      : p->field == F_MODIFY ? &x->modify
                      : p->field == F_LOCK   ? &x->lock
                                             : NULL;
    if (!slot)
        return 1;
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9 || u > (UINT64_MAX - d) / 10) {
            p->bad = "a flags or index field that is not an unsigned 64-bit integer";
            return 0;
        }
        u = u * 10 + d;
    }
    if (n == 0) {
        p->bad = "an empty number";
        return 0;
    }
    *slot = (long long)u;
    return 1;
}

static int p_key(void *ctx, const unsigned char *k, size_t n)
{
    struct kv_scan *p = ctx;
#define FIELD(s, f) {s, sizeof s - 1, f}
    static const struct { const char *name; size_t len; int f; } fields[] = {
        FIELD("Key", F_KEY),         FIELD("Value", F_VALUE),
        FIELD("Session", F_SESSION), FIELD("Flags", F_FLAGS),
        FIELD("CreateIndex", F_CREATE), FIELD("ModifyIndex", F_MODIFY),
        FIELD("LockIndex", F_LOCK),
    };
#undef FIELD
    p->field = F_OTHER;
    for (size_t i = 0; p->depth == 2 && i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].len == n && !memcmp(fields[i].name, k, n))
            p->field = fields[i].f;
    return 1;
}

static int p_start_map(void *ctx)
{
    struct kv_scan *p = ctx;
    if (p->depth == 0)
        return p_scalar(ctx); /* not inside the array */
    if (++p->depth == 2) { /* a new entry */
        struct kv_batch *b = p->cur;
        if (array_grow(&b->ents, b->n, &b->cap, sizeof *b->ents, 256) < 0) {
            p->bad = "out of memory";
            return 0;
        }
        memset(&b->ents[b->n], 0, sizeof b->ents[b->n]);
        p->has_key = 0;
    }
    p->field = F_OTHER;
    return 1;
}

static int p_end_map(void *ctx)
{
    struct kv_scan *p = ctx;
    if (p->depth-- == 2) {
        if (!p->has_key) {
            p->bad = "an entry without a key";
            return 0;
        }
        if (++p->cur->n >= BATCH_KEYS || p->cur->arena.len >= BATCH_BYTES)
            return publish(p) == 0;
    }
    return 1;
}

static int p_start_array(void *ctx)
{
    struct kv_scan *p = ctx;
    p->depth++;
    return 1;
}

static int p_end_array(void *ctx)
{
    struct kv_scan *p = ctx;
    p->depth--;
    return 1;
}

static int p_scalar(void *ctx)
{
    struct kv_scan *p = ctx;
    if (p->depth == 0) {
        p->bad = "not a JSON array";
        return 0;
    }
    return 1;
}

static int p_bool(void *ctx, int v)
{
    return p_scalar(ctx);
}

static const yajl_callbacks kv_events = {
    .yajl_null = p_scalar,          .yajl_boolean = p_bool,        .yajl_number = p_num,
    .yajl_string = p_str,           .yajl_start_map = p_start_map,
    .yajl_map_key = p_key,          .yajl_end_map = p_end_map,     .yajl_start_array = p_start_array,
    .yajl_end_array = p_end_array,
};

/* The answer's bytes as they arrive (http_req.stream), into the parser. */
static int parse_chunk(void *ctx, const char *b, size_t n)
{
    struct kv_scan *p = ctx;
    if (yajl_parse(p->yajl, (const unsigned char *)b, n) == yajl_status_ok)
        return 0;
    p->failed = 1;
    return -1;
}

/* The reader: one consistent recursive read, parsed as it arrives; the
 * last batch goes over once the answer is whole and valid. */
static void read_all(struct kv_scan *sc)
{
    struct source *s = sc->s;
    struct buf url;
    buf_init(&url, 0);
    /* a recursive read takes every key starting with the bytes it names;
     * a prefix the URL cannot name as it is ("./cfg", "cfg/..") is read
     * from its longest start that it can, and emit_ent keeps the keys
     * under the prefix */
    size_t rlen = kv_clean_len(s->u.prefix, sc->plen);
    if (buf_puts(&url, s->base) < 0 || buf_puts(&url, "/v1/kv/") < 0 ||
        put_escaped(&url, s->u.prefix, rlen) < 0 ||
        buf_puts(&url, "?recurse=true&consistent") < 0) {
        sc->http_rc = burry_errf(&sc->http_e, BURRY_EFAIL, "out of memory");
    } else {
        struct http_req req = {.method = "GET", .url = url.p, .headers = s->hdrs,
                               .max_resp = CONSUL_MAX_READ, .stream = parse_chunk,
                               .stream_ctx = sc};
        sc->http_rc = http_do(s->h, "Consul", &req, &sc->r, &sc->http_e);
    }
    buf_free(&url);
    if (sc->http_rc == 0 && sc->r.status == 200) {
        if (yajl_complete_parse(sc->yajl) != yajl_status_ok)
            sc->failed = 1;
        else if (sc->cur->n > 0)
            publish(sc);
    }
    if (sc->threaded) {
        pthread_mutex_lock(&sc->mu);
        sc->done = 1;
        pthread_cond_broadcast(&sc->cv);
        pthread_mutex_unlock(&sc->mu);
    }
}

static void *read_thread(void *arg)
{
    read_all(arg);
    return NULL;
}

/* Why the answer could not be read as a key listing. */
static int parse_error(struct kv_scan *sc, struct burry_err *e)
{
    unsigned char *why = sc->bad ? NULL : yajl_get_error(sc->yajl, 0, NULL, 0);
    size_t wl = why ? strlen((const char *)why) : 0;
    while (wl && (why[wl - 1] == '\n' || why[wl - 1] == ' '))
        why[--wl] = 0; /* yajl ends its message with a newline */
    int rc = burry_errf(e, BURRY_EFAIL, "Consul at %s sent an unreadable key listing (%s)",
                        sc->s->hostport,
                        sc->bad ? sc->bad : why ? (const char *)why : "invalid JSON");
    if (why)
        yajl_free_error(sc->yajl, why);
    return rc;
}

static long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* GET a small answer of the agent's: its HTTP status (0 when none came),
 * the body in r (the caller frees r->body). */
static long agent_get(struct source *s, const char *path, size_t max, struct http_resp *r)
{
    char url[300];
    struct burry_err e2 = {0};
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct http_req req = {.method = "GET", .url = url, .headers = s->hdrs, .max_resp = max};
    return http_do(s->h, "Consul", &req, r, &e2) == 0 ? r->status : 0;
}

/* Whether the agent says its ACL default policy is "allow" (so that a
 * request without a token reads every key); its /v1/agent/self is readable
 * without a token exactly then, or when the anonymous token may read it. */
static int acl_default_allow(struct source *s)
{
    struct http_resp r = {0};
    int allow = 0;
    if (agent_get(s, "/v1/agent/self", 4 << 20, &r) == 200) {
        json_t *j = json_loadb(r.body.p, r.body.len, 0, NULL);
        const char *pol = json_string_value(json_object_get(json_object_get(j, "DebugConfig"), "ACLDefaultPolicy"));
        allow = pol && !strcmp(pol, "allow");
        json_decref(j);
    }
    buf_free(&r.body);
    return allow;
}

/* The read showed no keys. An agent with ACLs shows a request without a
 * token only what the anonymous token may read, which under the usual
 * default-deny policy is nothing: unless the agent says its default policy
 * is allow, that is refused rather than saved as an empty snapshot. With a
 * token, an empty answer may still mean the token reads nothing here, and
 * the warning says so. GET /v1/acl/token/self tells whether ACLs are on:
 * 401 "ACL support disabled" without them, 200 or 403 with them. */
static int empty_read(struct source *s, struct burry_err *e)
{
    const char *pre = s->u.prefix;
    struct http_resp r = {0};
    long st = agent_get(s, "/v1/acl/token/self", 1 << 16, &r);
    int acl = st == 200 || st == 403;
    buf_free(&r.body);
    if (acl && !s->tok_hdr && !acl_default_allow(s))
        return burry_errf(e, BURRY_EFAIL,
                          "Consul at %s shows no keys%s%s%s to a request without an ACL token, and it has "
                          "ACLs enabled: give a token that may read them (CONSUL_HTTP_TOKEN or --token-file)",
                          s->hostport, *pre ? " under '" : "", pre, *pre ? "'" : "");
    blog(&s->o->log, BLOG_WARN, "Consul at %s has no keys%s%s%s%s; there is nothing to read (a backup is empty)",
         s->hostport, *pre ? " under '" : "", pre, *pre ? "'" : "",
         acl && s->tok_hdr ? " that this ACL token may read" : "");
    return 0;
}

/* A key (any bytes) in printable form for a message. */
static const char *shown_key(struct buf *b, const char *k, size_t n)
{
    buf_reset(b);
    return names_display(k, n, b) == 0 && b->p ? b->p : "?";
}

/* The writer: emit one key of the answer. */
static int emit_ent(struct kv_scan *sc, const char *arena, const struct kv_ent *x)
{
    struct source *s = sc->s;
    struct burry_err *e = sc->e;
    const char *key = arena + x->key;
    size_t plen = sc->plen;
    /* the prefix names a folder: "app" covers "app" and "app/...", not "apple" */
    if (plen && !(x->klen >= plen && !memcmp(key, s->u.prefix, plen) &&
                  (x->klen == plen || key[plen] == '/')))
        return 0;
    if (sc->emitted) {
        int c = names_cmp(sc->prev.p, sc->prev.len, key, x->klen);
        if (c == 0)
            return burry_errf(e, BURRY_EFAIL, "Consul at %s listed a key twice", s->hostport);
        if (c > 0)
            return burry_errf(e, BURRY_EFAIL,
                              "Consul at %s listed its keys out of byte order ('%s' after '%s'); "
                              "the snapshot was not written",
                              s->hostport, shown_key(&sc->msg[0], key, x->klen),
                              shown_key(&sc->msg[1], sc->prev.p, sc->prev.len));
    }
    buf_reset(&sc->prev);
    struct buf *path = &sc->path; /* the canonical path */
    buf_reset(path);
    int rc = buf_append(&sc->prev, key, x->klen);
    if (rc == 0 && plen)
        rc = buf_append(path, key + plen, x->klen - plen);
    else if (rc == 0)
        rc = buf_putc(path, '/') < 0 ? -1 : buf_append(path, key, x->klen);
    if (rc < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    buf_reset(&s->tmp);
    if (x->has_val && b64_decode(arena + x->val, x->vlen, &s->tmp) < 0)
        return burry_errf(e, BURRY_EFAIL, "Consul at %s sent an undecodable value for key '%s'",
                          s->hostport, shown_key(&sc->msg[0], key, x->klen));
    /* the attributes, written as the archive's JSON straight away (keys
     * in byte order): {"create_index":C,"flags":F,"lock_index":L,
     * "modify_index":M,"session":null or "ID"} */
    struct buf *a = &sc->attrs;
    buf_reset(a);
    if (buf_puts(a, "{\"create_index\":") < 0 || jsonout_integer(a, x->create) < 0 ||
        buf_puts(a, ",\"flags\":") < 0 || jsonout_integer(a, x->flags) < 0 ||
        buf_puts(a, ",\"lock_index\":") < 0 || jsonout_integer(a, x->lock) < 0 ||
        buf_puts(a, ",\"modify_index\":") < 0 || jsonout_integer(a, x->modify) < 0 ||
        buf_puts(a, ",\"session\":") < 0 ||
        (x->has_sess ? jsonout_string(a, arena + x->sess, x->slen) : buf_puts(a, "null")) < 0 ||
        buf_putc(a, '}') < 0)
        return burry_errf(e, BURRY_EFAIL, "Consul at %s sent key '%s' with a session that is not "
                          "UTF-8, or memory ran out", s->hostport, shown_key(&sc->msg[0], key, x->klen));
    if (x->modify > sc->maxidx)
        sc->maxidx = x->modify;
    struct bnode nd = {.path = path->p ? path->p : "", .path_len = path->len,
                       .value = s->tmp.p ? s->tmp.p : "", .value_len = s->tmp.len,
                       .has_value = 1, .attrs_json = a->p, .attrs_json_len = a->len};
    if ((rc = sc->emit(sc->emit_ctx, &nd, e)) < 0)
        return rc;
    sc->emitted++;
    if (burry_interrupted)
        return burry_errf(e, BURRY_EINTR, "interrupted");
    return 0;
}

/* The writer: emit a batch; after a failure, nothing more. */
static int consume(struct kv_scan *sc, struct kv_batch *b)
{
    for (size_t i = 0; sc->rc == 0 && i < b->n; i++)
        sc->rc = emit_ent(sc, b->arena.p, &b->ents[i]);
    return sc->rc;
}

static int consul_scan(struct source *s, src_emit_fn emit, void *ctx, struct burry_err *e)
{
    struct kv_scan sc = {.s = s, .emit = emit, .emit_ctx = ctx, .e = e,
                         .plen = strlen(s->u.prefix)};
    pthread_t t;
    int rc;

    pthread_mutex_init(&sc.mu, NULL);
    pthread_cond_init(&sc.cv, NULL);
    for (size_t i = 0; i < BATCHES; i++)
        buf_init(&sc.ring[i].arena, CONSUL_MAX_READ);
    buf_init(&sc.prev, 0);
    buf_init(&sc.path, 0);
    buf_init(&sc.attrs, 0);
    buf_init(&sc.msg[0], 0);
    buf_init(&sc.msg[1], 0);
    sc.cur = &sc.ring[0];
    size_t rlen = kv_clean_len(s->u.prefix, sc.plen);
    if (rlen < sc.plen)
        blog(&s->o->log, BLOG_INFO, "Consul's /v1/kv path cannot name the prefix '%s' as it is (an empty, "
             "'.' or '..' segment): reading every key%s%s%s and keeping those under the prefix",
             shown_key(&sc.msg[0], s->u.prefix, sc.plen), rlen ? " starting with '" : "",
             rlen ? shown_key(&sc.msg[1], s->u.prefix, rlen) : "", rlen ? "'" : "");
    if (!(sc.yajl = yajl_alloc(&kv_events, NULL, &sc))) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    sc.threaded = 1; /* before the thread reads it */
    if (pthread_create(&t, NULL, read_thread, &sc) != 0) {
        sc.threaded = 0;
        read_all(&sc); /* no thread to be had: the reader writes as it goes */
    } else {
        pthread_mutex_lock(&sc.mu);
        for (;;) {
            while (!sc.full && !sc.done)
                pthread_cond_wait(&sc.cv, &sc.mu);
            if (!sc.full)
                break; /* done, and every batch written */
            struct kv_batch *b = &sc.ring[sc.head];
            pthread_mutex_unlock(&sc.mu);
            int bad = consume(&sc, b) < 0;
            pthread_mutex_lock(&sc.mu);
            sc.head = (sc.head + 1) % BATCHES;
            sc.full--;
            if (bad)
                sc.stop = 1;
            pthread_cond_broadcast(&sc.cv);
        }
        pthread_mutex_unlock(&sc.mu);
        pthread_join(t, NULL);
    }
    /* what went wrong first: writing, then reading */
    if ((rc = sc.rc) < 0)
        goto out;
    if (sc.failed) {
        rc = parse_error(&sc, e);
        goto out;
    }
    if (sc.http_rc < 0) {
        rc = burry_errf(e, sc.http_rc, "%s", sc.http_e.msg);
        goto out;
    }
    if (sc.r.status == 404) {
        s->index = 0;
        rc = empty_read(s, e);
        goto out;
    }
    if (sc.r.status != 200) {
        rc = unexpected(s, "a recursive read", &sc.r, e);
        goto out;
    }
    s->index = sc.maxidx;
    rc = sc.emitted == 0 ? empty_read(s, e) : 0;
out:
    buf_free(&sc.attrs);
    buf_free(&sc.msg[0]);
    buf_free(&sc.msg[1]);
    if (sc.yajl)
        yajl_free(sc.yajl);
    for (size_t i = 0; i < BATCHES; i++) {
        free(sc.ring[i].ents);
        buf_free(&sc.ring[i].arena);
    }
    buf_free(&sc.prev);
    buf_free(&sc.path);
    buf_free(&sc.r.body);
    pthread_cond_destroy(&sc.cv);
    pthread_mutex_destroy(&sc.mu);
    return rc;
}

/* ---- restore -------------------------------------------------------------- */

/* An operation's bytes in a transaction body, at most (a key's bytes as
 * JSON escapes, its value as base64). */
static size_t op_size(const struct wop *w)
{
    return w->klen * 6 + (w->vlen + 2) / 3 * 4 + 96;
}

static int consul_write_submit(struct source *s, const struct bnode *n, enum src_write_mode mode,
                               src_write_cb cb, void *ctx, void *token, struct burry_err *e)
{
    if (array_grow(&s->q, s->nq, &s->capq, sizeof *s->q, 256) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct wop *w = &s->q[s->nq];
    memset(w, 0, sizeof *w);
    s->mode = mode;
    w->cb = cb;
    w->ctx = ctx;
    w->tok = token;
    /* a node without a value and without attributes is a path the restorer
     * made up (an ancestor of --into): a flat key space needs no key there */
    w->want = n->has_value || n->attrs;
    size_t plen = strlen(s->u.prefix);
    json_t *fl = json_object_get(n->attrs, "flags");
    if (json_is_integer(fl)) /* past INT64_MAX: recorded as negative, same bits */
        w->flags = (unsigned long long)json_integer_value(fl);
    w->vlen = n->has_value ? n->value_len : 0;
    /* the key: the prefix, then the path ("/a/b" is "a/b" at the root) */
    w->klen = n->path_len ? plen + n->path_len - !plen : plen;
    if (w->want && w->klen == 0) /* the root, or "/" (a backup's "app/") at the root */
        w->bad = "it would be Consul's empty key, which cannot exist; restore it under a prefix "
                 "(consul://HOST:PORT/prefix)";
    else if (w->want && n->has_value && n->value_len > CONSUL_MAX_VALUE)
        w->bad = "value too large";
    if (w->want && !w->bad) {
        w->key = malloc(w->klen + 1);
        w->val = malloc(w->vlen + 1);
        if (!w->key || !w->val) {
            free(w->key);
            free(w->val);
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        }
        memcpy(w->key, s->u.prefix, plen);
        if (n->path_len)
            memcpy(w->key + plen, n->path + !plen, n->path_len - !plen);
        w->key[w->klen] = 0;
        if (w->vlen)
            memcpy(w->val, n->value, w->vlen);
        if (op_size(w) > CONSUL_TXN_BUDGET && kv_clean_len(w->key, w->klen) < w->klen)
            w->bad = "a value this large can only be written through Consul's /v1/kv path, which cannot "
                     "name a key with an empty, '.' or '..' segment (a final '/' aside)";
    }
    s->nq++;
    return 0;
}

/* Consul's answers as JSON. Its flags and indexes are unsigned 64-bit;
 * jansson holds signed 64-bit integers and refuses larger ones, so a
 * number past INT64_MAX (up to UINT64_MAX) is read as the signed integer
 * with the same bits, as the archive records it. NULL if not JSON. */
static json_t *load_answer(const char *p, size_t n)
{
    struct buf b;
    buf_init(&b, 0);
    int in_str = 0, bad = 0;
    for (size_t i = 0; i < n && !bad;) {
        char c = p[i];
        if (in_str || (c != '-' && (c < '0' || c > '9'))) {
            if (in_str && c == '\\' && i + 1 < n) {
                bad = buf_append(&b, p + i, 2) < 0;
                i += 2;
                continue;
            }
            if (c == '"')
                in_str = !in_str;
            bad = buf_putc(&b, c) < 0;
            i++;
            continue;
        }
        size_t j = i; /* a number: digits only and past INT64_MAX? */
        uint64_t u = 0;
        int big = c != '-', over = 0;
        while (j < n && strchr("0123456789+-.eE", p[j]) && p[j]) {
            unsigned d = (unsigned char)p[j] - '0';
            if (d > 9)
                big = 0;
            else if (u > (UINT64_MAX - d) / 10)
                over = 1;
            else
                u = u * 10 + d;
            j++;
        }
        if (big && !over && u > (uint64_t)INT64_MAX) {
            char t[24];
            snprintf(t, sizeof t, "%lld", (long long)u);
            bad = buf_puts(&b, t) < 0;
        } else {
            bad = buf_append(&b, p + i, j - i) < 0;
        }
        i = j;
    }
    json_t *j = bad ? NULL : json_loadb(b.p ? b.p : "", b.len, JSON_ALLOW_NUL, NULL);
    buf_free(&b);
    return j;
}

/* Whether what is one of Consul's messages "<head><key, Go-quoted><tail>":
 * the key may hold any words, so only its fixed start and end tell. */
static int quoted_msg(const char *what, const char *head, const char *tail)
{
    size_t n = strlen(what), hn = strlen(head), tn = strlen(tail);
    return n >= hn + tn && !strncmp(what, head, hn) && !strcmp(what + n - tn, tail);
}

/* Outcome of one operation of a transaction that Consul rejected, by its
 * verb: a create-only "cas" finds the key there, a "get" finds it absent;
 * anything else fails the node. */
static void op_error(struct wop *w, const char *verb, const char *what)
{
    if (!strcmp(verb, "cas") && quoted_msg(what, "failed to set key \"", "\", index is stale")) {
        w->out = SRC_W_EXISTING;
    } else if (!strcmp(verb, "get") && quoted_msg(what, "key \"", "\" doesn't exist")) {
        w->exists = 0;
        return;
    } else {
        w->out = SRC_W_FAILED;
        free(w->msg);
        w->msg = strdup(!strcmp(what, "Permission denied") ? "permission denied (check the ACL token)" : what);
    }
    w->done = 1;
}

/* Whether Consul's key k (valid UTF-8, from a JSON answer) is the key
 * sent as ours: Go's JSON decoder made each byte of ours that is not
 * valid UTF-8 a U+FFFD (EF BF BD). */
static int same_key(const char *ours, size_t n, const char *k, size_t kn)
{
    const unsigned char *p = (const unsigned char *)ours;
    size_t i = 0, j = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        /* the second byte's range (no overlong form, surrogate or past U+10FFFF) */
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        for (size_t x = 1; x < len; x++) {
            unsigned char d = i + x < n ? p[i + x] : 0;
            if (d < (x == 1 ? lo : 0x80) || d > (x == 1 ? hi : 0xBF)) {
                len = 0;
                break;
            }
        }
        const char *want = len ? ours + i : "\xEF\xBF\xBD";
        size_t wl = len ? len : 3;
        if (kn - j < wl || memcmp(k + j, want, wl))
            return 0;
        i += len ? len : 1;
        j += wl;
    }
    return j == kn;
}

/* Send one transaction of the ops in list (verb "cas" create-only, "set",
 * or "get"), retrying without the operations Consul rejects until it
 * passes; results of a passing "get" are compared with the wanted values. */
static int run_txn(struct lane *l, struct wop **list, size_t n, const char *verb, struct burry_err *e)
{
    struct source *s = l->s;
    struct wop *live[CONSUL_MAX_OPS];
    int get = !strcmp(verb, "get");
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!list[i]->done && (!get || list[i]->exists))
                live[m++] = list[i];
        if (m == 0)
            return 0;
        struct buf *b = &l->body;
        buf_reset(b);
        int bad = buf_putc(b, '[');
        for (size_t i = 0; i < m && !bad; i++) {
            struct wop *w = live[i];
            bad |= buf_printf(b, "%s{\"KV\":{\"Verb\":\"%s\",\"Key\":", i ? "," : "", verb) < 0;
            bad |= put_json_str(b, w->key, w->klen) < 0;
            if (!get) {
                bad |= buf_printf(b, ",\"Flags\":%llu,\"Value\":\"", w->flags) < 0;
                bad |= b64_encode(w->val, w->vlen, b) < 0;
                bad |= buf_putc(b, '"') < 0;
                if (!strcmp(verb, "cas"))
                    bad |= buf_puts(b, ",\"Index\":0") < 0;
            }
            bad |= buf_puts(b, "}}") < 0;
        }
        bad |= buf_putc(b, ']') < 0;
        buf_reset(&l->tmp);
        bad |= buf_puts(&l->tmp, s->base) < 0 || buf_puts(&l->tmp, "/v1/txn") < 0;
        if (bad)
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        struct http_req req = {.method = "PUT", .url = l->tmp.p, .headers = s->hdrs, .body = b->p,
                               .body_len = b->len};
        struct http_resp r = {0};
        int rc = http_do(l->h, "Consul", &req, &r, e);
        if (rc < 0)
            return rc;
        if (r.status != 200 && r.status != 409) {
            rc = unexpected(s, "a transaction", &r, e);
            buf_free(&r.body);
            return rc;
        }
        if (r.status == 200 && !get) { /* every write went through: nothing to read in the answer */
            buf_free(&r.body);
            for (size_t i = 0; i < m; i++) {
                live[i]->out = !strcmp(verb, "cas") || !live[i]->exists ? SRC_W_CREATED : SRC_W_OVERWRITTEN;
                live[i]->done = 1;
            }
            return 0;
        }
        json_t *j = load_answer(r.body.p, r.body.len);
        buf_free(&r.body);
        if (!json_is_object(j)) {
            json_decref(j);
            return burry_errf(e, BURRY_EFAIL, "Consul at %s sent an unreadable transaction answer", s->hostport);
        }
        if (r.status == 409) {
            json_t *errs = json_object_get(j, "Errors"), *x;
            size_t i, hit = 0;
            json_array_foreach(errs, i, x) {
                json_int_t k = json_integer_value(json_object_get(x, "OpIndex"));
                const char *what = json_string_value(json_object_get(x, "What"));
                if (k >= 0 && (size_t)k < m) {
                    op_error(live[k], verb, what ? what : "rejected");
                    hit++;
                }
            }
            json_decref(j);
            if (!hit)
                return burry_errf(e, BURRY_EFAIL, "Consul at %s rejected a transaction without saying why",
                                  s->hostport);
            continue; /* again without the rejected operations */
        }
        /* a "get" result for each key the token may read, in the order
         * asked: Consul leaves the others out without a word */
        json_t *res = json_object_get(j, "Results");
        size_t next = 0;
        for (size_t i = 0; i < m; i++) {
            struct wop *w = live[i];
            json_t *kv = NULL;
            for (size_t x = next; x < json_array_size(res) && !kv; x++) {
                json_t *c = json_object_get(json_array_get(res, x), "KV");
                json_t *k = json_object_get(c, "Key");
                if (json_is_string(k) &&
                    same_key(w->key, w->klen, json_string_value(k), json_string_length(k))) {
                    kv = c;
                    next = x + 1;
                }
            }
            if (!kv) {
                w->out = SRC_W_FAILED;
                w->done = 1;
                free(w->msg);
                w->msg = strdup("not readable with this ACL token (permission denied): Consul left it out of "
                                "its answer");
                continue;
            }
            json_t *v = json_object_get(kv, "Value");
            buf_reset(&l->tmp);
            if (json_is_string(v) && b64_decode(json_string_value(v), json_string_length(v), &l->tmp) < 0) {
                json_decref(j);
                return burry_errf(e, BURRY_EFAIL, "Consul at %s sent an undecodable value", s->hostport);
            }
            w->differs = l->tmp.len != w->vlen || (w->vlen && memcmp(l->tmp.p, w->val, w->vlen)) ||
                         (unsigned long long)jint(kv, "Flags") != w->flags;
        }
        json_decref(j);
        return 0;
    }
}

/* A value whose transaction would be over Consul's request limit goes
 * alone through the plain KV endpoint (its key's path checked clean at
 * submit). Create-only asks for cas=0; --overwrite read the key first
 * (run_chunk). */
static int run_put(struct lane *l, struct wop *w, struct burry_err *e)
{
    struct source *s = l->s;
    struct buf url;
    struct http_resp r = {0};
    int rc = 0;
    buf_init(&url, 0);
    if (buf_puts(&url, s->base) < 0 || buf_puts(&url, "/v1/kv/") < 0 || put_escaped(&url, w->key, w->klen) < 0 ||
        buf_printf(&url, "?flags=%llu%s", w->flags, s->mode == SRC_WRITE_CREATE ? "&cas=0" : "") < 0) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    struct http_req p = {.method = "PUT", .url = url.p, .headers = s->hdrs, .body = w->vlen ? w->val : "",
                         .body_len = w->vlen};
    if ((rc = http_do(l->h, "Consul", &p, &r, e)) < 0)
        goto out;
    if (r.status != 200) {
        char sn[200];
        if (r.status == 403) {
            rc = denied(s, e);
            goto out;
        }
        w->done = 1;
        w->out = SRC_W_FAILED;
        if (asprintf(&w->msg, "Consul answered HTTP %ld: %s", r.status, snippet(&r.body, sn, sizeof sn)) < 0)
            w->msg = NULL;
        goto out;
    }
    w->done = 1;
    if (s->mode == SRC_WRITE_CREATE)
        w->out = strncmp(r.body.p, "true", 4) ? SRC_W_EXISTING : SRC_W_CREATED;
    else
        w->out = w->exists ? SRC_W_OVERWRITTEN : SRC_W_CREATED;
out:
    buf_free(&r.body);
    buf_free(&url);
    return rc;
}

/* Work out the outcome of ops [0, n) of a chunk that fits one transaction,
 * or of the one op too large for a transaction. Keys are read through a
 * "get" transaction in every case: its key travels in the JSON body, where
 * no URL rule can change it. */
static int run_chunk(struct lane *l, struct wop **list, size_t n, struct burry_err *e)
{
    struct source *s = l->s;
    int rc;
    enum src_write_mode mode = s->mode;
    int big = n == 1 && op_size(list[0]) > CONSUL_TXN_BUDGET;
    if (mode == SRC_WRITE_CREATE)
        return big ? run_put(l, list[0], e) : run_txn(l, list, n, "cas", e);
    for (size_t i = 0; i < n; i++)
        list[i]->exists = 1;
    if ((rc = run_txn(l, list, n, "get", e)) < 0)
        return rc;
    /* read done (plan, overwrite): decide, then write what must change */
    struct wop *todo[CONSUL_MAX_OPS];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct wop *w = list[i];
        if (w->done)
            continue;
        if (w->exists && !w->differs) {
            w->out = SRC_W_SAME;
            w->done = 1;
        } else if (mode == SRC_WRITE_PLAN || mode == SRC_WRITE_PLAN_OVERWRITE) {
            w->out = !w->exists ? SRC_W_CREATED : mode == SRC_WRITE_PLAN ? SRC_W_DIFFERENT : SRC_W_OVERWRITTEN;
            w->done = 1;
        } else {
            todo[m++] = w;
        }
    }
    if (!m)
        return 0;
    return big ? run_put(l, todo[0], e) : run_txn(l, todo, m, "set", e);
}

/* The ops from q[i] on that fit one transaction (or the one too large for
 * any) into l, deciding on the way those with nothing to send; the index
 * after them. */
static size_t take_chunk(struct source *s, size_t i, struct lane *l)
{
    size_t bytes = 0, j = i;
    l->n = 0;
    for (; j < s->nq && l->n < CONSUL_MAX_OPS; j++) {
        struct wop *w = &s->q[j];
        if (!w->want) {
            w->done = 1;
            w->out = SRC_W_EXISTING;
            continue;
        }
        if (w->bad) {
            w->done = 1;
            w->out = SRC_W_FAILED;
            if (!strcmp(w->bad, "value too large")) {
                if (asprintf(&w->msg, "value too large for Consul (%zu bytes)", w->vlen) < 0)
                    w->msg = NULL;
            } else {
                w->msg = strdup(w->bad);
            }
            continue;
        }
        size_t sz = op_size(w);
        if (l->n && (bytes + sz > CONSUL_TXN_BUDGET))
            break;
        l->list[l->n++] = w;
        bytes += sz;
        if (sz > CONSUL_TXN_BUDGET) {
            j++;
            break;
        }
    }
    l->end = j;
    return j;
}

static void *lane_run(void *arg)
{
    struct lane *l = arg;
    l->e = (struct burry_err){0};
    l->rc = l->n ? run_chunk(l, l->list, l->n, &l->e) : 0;
    return NULL;
}

static int lanes_make(struct source *s, struct burry_err *e)
{
    if (s->lanes)
        return 0;
    if (!(s->lanes = calloc(CONSUL_LANES, sizeof *s->lanes)))
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    for (int k = 0; k < CONSUL_LANES; k++) {
        struct lane *l = &s->lanes[k];
        l->s = s;
        buf_init(&l->body, 0);
        buf_init(&l->tmp, 0);
        if (!(l->h = k ? http_new(s->o, e) : s->h))
            return e->code ? e->code : BURRY_EFAIL;
    }
    return 0;
}

/* Send the queue, up to CONSUL_LANES transactions at once (their keys are
 * distinct and flat, so their order does not matter), and call back in
 * submit order. A transaction that fails fatally keeps its ops, whose
 * callbacks then never run; those of the others that went through do. */
static int consul_pump(struct source *s, int timeout_ms, struct burry_err *e)
{
    (void)timeout_ms; /* each request is bounded by opts->timeout_s */
    int rc = lanes_make(s, e);
    if (rc < 0)
        return rc;
    size_t i = 0, kept = 0; /* q[0, kept): ops not called back; q[i, nq): not sent yet */
    while (i < s->nq && rc == 0) {
        int nl = 0, started[CONSUL_LANES] = {0};
        for (size_t j = i; nl < CONSUL_LANES && j < s->nq; nl++)
            j = take_chunk(s, j, &s->lanes[nl]);
        for (int k = 1; k < nl; k++)
            started[k] = s->lanes[k].n && pthread_create(&s->lanes[k].th, NULL, lane_run, &s->lanes[k]) == 0;
        lane_run(&s->lanes[0]);
        for (int k = 1; k < nl; k++) {
            if (started[k])
                pthread_join(s->lanes[k].th, NULL);
            else
                lane_run(&s->lanes[k]);
        }
        size_t start = i;
        for (int k = 0; k < nl; k++) {
            struct lane *l = &s->lanes[k];
            if (l->rc < 0) {
                if (rc == 0)
                    rc = burry_errf(e, l->rc, "%s", l->e.msg);
                memmove(&s->q[kept], &s->q[start], (l->end - start) * sizeof *s->q);
                kept += l->end - start;
            } else {
                for (size_t x = start; x < l->end; x++) {
                    struct wop *w = &s->q[x];
                    w->cb(w->ctx, w->tok, w->out, w->msg);
                    free(w->key);
                    free(w->val);
                    free(w->msg);
                }
            }
            start = l->end;
        }
        i = start;
    }
    memmove(&s->q[kept], &s->q[i], (s->nq - i) * sizeof *s->q);
    s->nq = kept + (s->nq - i);
    return rc;
}

static size_t consul_pending(struct source *s)
{
    return s->nq;
}

const struct source_ops source_consul = {
    .scheme = "consul",
    .https_form = 1,
    .service = "consul",
    .open = consul_open,
    .close = consul_close,
    .describe = consul_describe,
    .default_name = consul_default_name,
    .user_path = consul_user_path,
    .flat_keys = 1,
    .manifest_info = consul_manifest_info,
    .scan = consul_scan,
    .write_submit = consul_write_submit,
    .pump = consul_pump,
    .pending = consul_pending,
};
