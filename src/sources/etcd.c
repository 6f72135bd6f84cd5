/* etcd v3 source: a flat source whose scan reads the key space page by
 * page at one pinned revision, and whose writes are batched into
 * transactions (create-only: create_revision == 0). The bulk work speaks
 * etcd's native gRPC API (grpc.h), because its JSON gateway costs the server
 * several times more CPU for the same work: backups read with Range, and a
 * create-only restore sends its transactions with Txn. A member that does
 * not answer gRPC is read and written through the gateway (/v3/kv/range,
 * /v3/kv/txn). Everything else goes through the gateway: the transactions
 * that find keys existing, overwrites and dry runs (/v3/kv/txn), leases and
 * authentication (/v3/lease/..., /v3/auth/...). Transactions start at
 * etcd's default limits (128 operations, about 1 MiB) and shrink for the
 * rest of the run when a server refuses them as too large or as holding
 * too many operations. */
#include "registry.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "catalog.h"
#include "digest.h"
#include "grpc.h"
#include "http.h"
#include "http_multi.h"
#include "jsonout.h"

#define ETCD_TXN_OPS 128                       /* server default --max-txn-ops: ops per txn at first */
#define ETCD_BATCH_BYTES ((size_t)1 << 20)      /* keep each txn request under this at first */
#define ETCD_OP_OVERHEAD 64                     /* protobuf framing per op, generously */
/* etcd's gRPC server reads requests of up to its --max-request-bytes plus
 * this; it resets the stream of a larger one without reading it */
#define ETCD_GRPC_SLACK ((size_t)512 << 10)
#define ETCD_LOST_TRIES 3                       /* sends of writes whose answers get lost */
#define ETCD_BUSY_TRIES 6                       /* "too many requests" in a row, at most */
#define ETCD_BUSY_PAUSE_MS 200                  /* the wait after the first, doubled after each */
#define ETCD_PAGE_FIRST 8                       /* keys in the first page: values may be MiBs */
#define ETCD_PAGE_MIN 1
#define ETCD_PAGE_MAX 10000
#define ETCD_PAGE_BYTES ((size_t)4 << 20)       /* aim for pages of about this size */
#define ETCD_RESP_MAX ((size_t)256 << 20)       /* largest answer accepted */
/* Create-only txns in flight at once. A txn waits for its own commit
 * (tens of ms, whatever its size) but etcd commits concurrent txns
 * together, so overlapping them is what makes a restore fast. The
 * restorer's window (1000 writes by default) allows about this many. */
#define ETCD_INFLIGHT 8

/* ---- URL ---------------------------------------------------------------- */

struct etcdurl {
    char **hosts;      /* "host:port" (IPv6 in brackets) */
    size_t nhosts;
    char *prefix;      /* key prefix bytes (may hold NUL), NULL when none */
    size_t prefix_len;
    int https;         /* etcd+https:// */
};

static void etcdurl_free(struct etcdurl *u)
{
    for (size_t i = 0; i < u->nhosts; i++)
        free(u->hosts[i]);
    free(u->hosts);
    free(u->prefix);
    memset(u, 0, sizeof *u);
}

static int host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_';
}

/* Check one "host:port" item [a, b); NULL or why it is malformed. */
static const char *check_hostport(const char *a, const char *b, char *why, size_t wl)
{
    const char *he, *p;
    if (a == b)
        return "empty host in the host list";
    if (*a == '[') {
        he = memchr(a + 1, ']', (size_t)(b - a - 1));
        if (!he || he == a + 1)
            return "unterminated or empty '[' in a host";
        for (const char *q = a + 1; q < he; q++)
            if (!(isxdigit((unsigned char)*q) || *q == ':' || *q == '.'))
                return "invalid character in a bracketed IPv6 address";
        if (he + 1 == b || he[1] != ':')
            return "missing ':PORT' after a bracketed IPv6 address";
        p = he + 2;
    } else {
        const char *colon = memchr(a, ':', (size_t)(b - a));
        if (!colon) {
            snprintf(why, wl, "missing ':PORT' in '%.*s'", (int)(b - a), a);
            return why;
        }
        if (colon == a)
            return "empty host name before ':PORT'";
        for (const char *q = a; q < colon; q++)
            if (!host_char((unsigned char)*q)) {
                snprintf(why, wl, "invalid character '%c' in host '%.*s'", *q, (int)(colon - a), a);
                return why;
            }
        p = colon + 1;
    }
    long port = 0;
    size_t plen = (size_t)(b - p);
    for (size_t i = 0; i < plen && plen <= 5; i++)
        port = (p[i] >= '0' && p[i] <= '9') ? port * 10 + (p[i] - '0') : -1000000;
    if (plen == 0 || plen > 5 || port < 1 || port > 65535) {
        snprintf(why, wl, "invalid port '%.*s' (expected 1-65535)", (int)plen, p);
        return why;
    }
    return NULL;
}

/* etcd://HOST:PORT[,HOST:PORT...][/PREFIX]: the '/' after the hosts only
 * separates; PREFIX is the key prefix itself, %XX-decoded, so
 * etcd://h:2379/app selects keys starting with "app" and
 * etcd://h:2379//registry keys starting with "/registry". */
static int etcdurl_parse(const char *url, struct etcdurl *u, struct burry_err *e)
{
    char whybuf[160];
    const char *why = NULL;
    memset(u, 0, sizeof *u);
    const char *auth = source_url_rest(url, "etcd", &u->https);
    if (!auth) {
        why = "expected etcd://HOST:PORT[,HOST:PORT...][/prefix]";
        goto out;
    }
    const char *slash = strchr(auth, '/');
    const char *aend = slash ? slash : auth + strlen(auth);
    if (memchr(auth, '@', (size_t)(aend - auth)))
        /* never echo the URL: the part before '@' may hold a password */
        return burry_errf(e, BURRY_EUSAGE,
                          "malformed etcd URL: credentials in the URL are not supported "
                          "(use --user and --password-file or ETCD_PASSWORD)");
    if (auth == aend) {
        why = "no host";
        goto out;
    }
    for (const char *a = auth; a <= aend;) {
        const char *b = memchr(a, ',', (size_t)(aend - a));
        if (!b)
            b = aend;
        if ((why = check_hostport(a, b, whybuf, sizeof whybuf)) != NULL)
            goto out;
        char **nh = realloc(u->hosts, (u->nhosts + 1) * sizeof *nh);
        if (!nh || !(nh[u->nhosts] = strndup(a, (size_t)(b - a)))) {
            if (nh)
                u->hosts = nh;
            why = "out of memory";
            goto out;
        }
        u->hosts = nh;
        u->nhosts++;
        a = b + 1;
    }
    if (slash && slash[1]) {
        const char *p = slash + 1;
        size_t n = strlen(p), k = 0;
        if (!(u->prefix = malloc(n + 1))) {
            why = "out of memory";
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '%') {
                int hi = i + 2 < n ? hex_value((unsigned char)p[i + 1]) : -1;
                int lo = hi >= 0 ? hex_value((unsigned char)p[i + 2]) : -1;
                if (lo < 0) {
                    why = "a '%' in the prefix must be followed by two hex digits";
                    goto out;
                }
                u->prefix[k++] = (char)(hi * 16 + lo);
                i += 2;
            } else {
                u->prefix[k++] = p[i];
            }
        }
        u->prefix_len = k;
    }
out:
    if (why) {
        etcdurl_free(u);
        return burry_errf(e, BURRY_EUSAGE, "malformed etcd URL '%s': %s", url, why);
    }
    return 0;
}

/* Bytes as readable text: printable ASCII as is, the rest as \xHH. */
static int show_bytes(const char *p, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int rc = (c >= 0x20 && c < 0x7f && c != '\\') ? buf_putc(out, (char)c)
                                                       : buf_printf(out, "\\x%02X", c);
        if (rc < 0)
            return -1;
    }
    if (!out->p)
        return buf_append(out, "", 0);
    return 0;
}

/* ---- leases: a small map from lease ID to a number ---------------------- */

struct lmap {
    long long *k, *v;
    size_t cap, n;
};

static long long *lmap_find(struct lmap *m, long long k)
{
    if (!m->cap)
        return NULL;
    for (size_t i = (size_t)((unsigned long long)k * 0x9E3779B97F4A7C15ULL) & (m->cap - 1);;
         i = (i + 1) & (m->cap - 1)) {
        if (m->k[i] == k)
            return &m->v[i];
        if (m->k[i] == 0)
            return NULL;
    }
}

static int lmap_put(struct lmap *m, long long k, long long v)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct lmap g = {.cap = m->cap ? m->cap * 2 : 64};
        g.k = calloc(g.cap, sizeof *g.k);
        g.v = calloc(g.cap, sizeof *g.v);
        if (!g.k || !g.v) {
            free(g.k);
            free(g.v);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->k[i])
                lmap_put(&g, m->k[i], m->v[i]);
        free(m->k);
        free(m->v);
        *m = g;
    }
    size_t i = (size_t)((unsigned long long)k * 0x9E3779B97F4A7C15ULL) & (m->cap - 1);
    while (m->k[i] != 0 && m->k[i] != k)
        i = (i + 1) & (m->cap - 1);
    if (m->k[i] == 0)
        m->n++;
    m->k[i] = k;
    m->v[i] = v;
    return 0;
}

static void lmap_free(struct lmap *m)
{
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ---- the source --------------------------------------------------------- */

struct wop { /* one queued write */
    struct wop *next;
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
    long long lease, ttl;      /* recorded lease ID (0: none) and its TTL */
    src_write_cb cb;
    void *ctx, *token;
    int done;                  /* outcome decided (callback not run yet) */
    int sent;                  /* part of a txn in flight */
    int unsure;                /* sent in a txn whose answer was lost: may exist by this run */
    int lost;                  /* how many times that happened */
    enum src_write_outcome out;
    char *msg;
};

/* One create-only txn in flight: its ops and, once it ended, its answer. */
struct txn_slot {
    struct wop *b[ETCD_TXN_OPS];
    size_t n;
    size_t bytes;              /* the size of its request */
    int busy;                  /* sent; answer not processed yet */
    int answered;
    int grpc;                  /* sent with gRPC, not through the gateway */
    int rc;                    /* <0: no answer (msg says why) */
    long status;               /* gateway: the HTTP status; gRPC: grpc-status */
    json_t *j;                 /* gateway: the parsed answer, NULL when not JSON */
    int succeeded;             /* gRPC: the TxnResponse said succeeded */
    char msg[sizeof(((struct burry_err *)0)->msg)];
};

/* How create-only txns travel: gRPC until the member shows it does not
 * answer it, then the gateway. */
enum txn_way { TXN_WAY_TRY_GRPC, TXN_WAY_GRPC, TXN_WAY_GW };

struct source {
    const struct burry_opts *o;
    struct etcdurl u;
    struct http *h;
    struct grpc *g;            /* backup: the range reads; restore: the txns */
    struct http_multi *hm;     /* create-only txns through the gateway */
    struct txn_slot fl[ETCD_INFLIGHT];
    enum txn_way way;
    size_t max_ops, max_bytes; /* per txn; lowered when the server refuses more */
    long long rev_start;       /* the server's revision when it was opened */
    int busy_tries;            /* "too many requests" answers in a row (see busy) */
    double busy_until;         /* no txn starts before this (now_s) */
    unsigned long long txns_grpc, txns_gw; /* txns sent each way (-v) */
    const char *host;          /* the member in use, "host:port" */
    long last_status;          /* HTTP status of the gateway's last answer, 0: none came */
    char base[300];            /* "http://host:port" */
    char *auth_hdr;            /* "Authorization: TOKEN", wiped at close */
    char *token_hdr;           /* "token: TOKEN" for gRPC, wiped at close */
    char *version;             /* server version */
    long long rev;             /* revision the backup read at */
    enum src_write_mode mode;
    struct wop *qh, *qt;       /* queued writes, in submit order */
    size_t nq;
    struct lmap ttl;           /* backup: lease ID -> remaining TTL */
    struct lmap granted;       /* restore: recorded lease ID -> granted lease ID */
    struct lmap used;          /* restore: recorded lease IDs a written key now holds */
    int ending, revoked;       /* restore: no more writes come; unused leases revoked */
    unsigned long long unleased; /* restored keys whose lease was not recreated */
    struct buf req, tmp;
};

static void wop_free(struct wop *w)
{
    if (!w)
        return;
    free(w->key);
    free(w->val);
    free(w->msg);
    free(w);
}

static void etcd_close(struct source *s)
{
    if (!s)
        return;
    if (s->txns_grpc || s->txns_gw)
        blog(&s->o->log, BLOG_DEBUG,
             "etcd at %s: %llu transactions sent through gRPC, %llu through the JSON gateway",
             s->host, s->txns_grpc, s->txns_gw);
    while (s->qh) {
        struct wop *w = s->qh;
        s->qh = w->next;
        wop_free(w);
    }
    str_wipe_free(s->auth_hdr);
    str_wipe_free(s->token_hdr);
    grpc_free(s->g);
    http_multi_free(s->hm);
    for (size_t i = 0; i < ETCD_INFLIGHT; i++)
        json_decref(s->fl[i].j);
    http_free(s->h);
    etcdurl_free(&s->u);
    lmap_free(&s->ttl);
    lmap_free(&s->granted);
    lmap_free(&s->used);
    free(s->version);
    buf_free(&s->req);
    buf_free(&s->tmp);
    free(s);
}

/* The message of a gateway error answer. */
static const char *gw_msg(json_t *j, long status, char *tmp, size_t n)
{
    const char *m = json_string_value(json_object_get(j, "message"));
    if (!m || !*m)
        m = json_string_value(json_object_get(j, "error"));
    if (m && *m)
        return m;
    snprintf(tmp, n, "HTTP status %ld", status);
    return tmp;
}

static int authenticate(struct source *s, struct burry_err *e);

static void token_expired(struct source *s)
{
    blog(&s->o->log, BLOG_DEBUG, "etcd at %s: the auth token expired; asking for a new one", s->host);
}

/* POST a JSON body to the gateway. 0 with *out (the parsed answer, caller
 * decrefs) and *status; <0 when no usable answer came (the error is fatal
 * for the run). An expired auth token is renewed once. */
static int call(struct source *s, const char *ep, const char *body, size_t len, json_t **out,
                long *status, struct burry_err *e)
{
    char url[400];
    char *hdrs[2] = {s->auth_hdr, NULL};
    snprintf(url, sizeof url, "%s%s", s->base, ep);
    for (int attempt = 0;; attempt++) {
        struct http_req r = {.method = "POST", .url = url, .headers = (const char *const *)hdrs,
                             .body = body, .body_len = len, .max_resp = ETCD_RESP_MAX};
        struct http_resp resp;
        s->last_status = 0;
        int rc = http_do(s->h, "etcd", &r, &resp, e);
        if (rc < 0)
            return rc;
        s->last_status = resp.status;
        json_error_t je;
        json_t *j = json_loadb(resp.body.p, resp.body.len, 0, &je);
        buf_free(&resp.body);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            return burry_errf(e, BURRY_EFAIL,
                              "etcd at %s sent an answer to %s that is not JSON (HTTP status %ld); "
                              "is this an etcd v3 server?", s->host, ep, resp.status);
        }
        if (resp.status != 200 && attempt == 0 && s->o->user) {
            const char *m = json_string_value(json_object_get(j, "message"));
            if (m && strstr(m, "invalid auth token")) {
                json_decref(j);
                token_expired(s);
                if ((rc = authenticate(s, e)) < 0)
                    return rc;
                hdrs[0] = s->auth_hdr;
                continue;
            }
        }
        *out = j;
        *status = resp.status;
        return 0;
    }
}

/* Describe why the server refused to do something (its message m). */
static int refused(struct source *s, const char *m, const char *doing, struct burry_err *e)
{
    if (s->o->user && strstr(m, "invalid auth token"))
        return burry_errf(e, BURRY_EFAIL,
                          "etcd at %s refused to %s: it did not accept the token it had just "
                          "given user '%s' (%s)", s->host, doing, s->o->user, m);
    if (strstr(m, "user name is empty") || strstr(m, "invalid auth token"))
        return burry_errf(e, BURRY_EFAIL,
                          "etcd at %s refused to %s: it requires authentication (%s); give --user",
                          s->host, doing, m);
    if (strstr(m, "permission denied"))
        return burry_errf(e, BURRY_EFAIL, "etcd at %s refused to %s for user '%s': %s", s->host,
                          doing, s->o->user ? s->o->user : "", m);
    return burry_errf(e, BURRY_EFAIL, "etcd at %s failed to %s: %s", s->host, doing, m);
}

/* Check that an answer is a success, else describe the failure. */
static int answer_ok(struct source *s, json_t *j, long status, const char *doing,
                     struct burry_err *e)
{
    if (status == 200)
        return 0;
    char tmp[40];
    return refused(s, gw_msg(j, status, tmp, sizeof tmp), doing, e);
}

static long long jnum(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return json_integer_value(v);
    return 0;
}

/* Append s as a JSON string. */
static int put_jstr(struct buf *b, const char *s)
{
    int rc = buf_putc(b, '"');
    for (; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc = buf_putc(b, '\\') < 0 ? -1 : buf_putc(b, (char)c);
        else if (c < 0x20)
            rc = buf_printf(b, "\\u%04x", c);
        else
            rc = buf_putc(b, (char)c);
    }
    return rc < 0 ? -1 : buf_putc(b, '"');
}

static int authenticate(struct source *s, struct burry_err *e)
{
    struct buf body;
    buf_init(&body, 0);
    /* built by hand so that every copy of the password is wiped */
    if (buf_puts(&body, "{\"name\":") < 0 || put_jstr(&body, s->o->user) < 0 ||
        buf_puts(&body, ",\"password\":") < 0 ||
        put_jstr(&body, s->o->password ? s->o->password : "") < 0 || buf_putc(&body, '}') < 0) {
        buf_wipe(&body);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    json_t *j = NULL;
    long status = 0;
    char url[400];
    snprintf(url, sizeof url, "%s/v3/auth/authenticate", s->base);
    struct http_req r = {.method = "POST", .url = url, .body = body.p, .body_len = body.len};
    struct http_resp resp;
    s->last_status = 0;
    int rc = http_do(s->h, "etcd", &r, &resp, e);
    buf_wipe(&body);
    if (rc < 0)
        return rc;
    status = s->last_status = resp.status;
    j = json_loadb(resp.body.p, resp.body.len, 0, NULL);
    buf_wipe(&resp.body);
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (status != 200 || !tok || !*tok) {
        char tmp[40];
        rc = burry_errf(e, BURRY_EFAIL, "authentication to etcd at %s failed for user '%s': %s",
                        s->host, s->o->user, j ? gw_msg(j, status, tmp, sizeof tmp) : "not a JSON answer");
        json_decref(j);
        return rc;
    }
    str_wipe_free(s->auth_hdr);
    str_wipe_free(s->token_hdr);
    s->auth_hdr = str_printf("Authorization: %s", tok);
    s->token_hdr = str_printf("token: %s", tok);
    json_decref(j);
    return s->auth_hdr && s->token_hdr ? 0 : burry_errf(e, BURRY_EFAIL, "out of memory");
}

/* Whether a member that failed to open is only unavailable, so that the
 * next one may serve: it could not be reached, did not answer in time or
 * broke off, answered with a server error (5xx, also from a proxy in front
 * of it), or says it has no leader or timed out. Anything else (a refusal
 * of the credentials or of the request, an answer that is not etcd's) would
 * be the same on every member: it ends the run. */
static int member_unavailable(const struct source *s, const struct burry_err *e)
{
    const char *m = e->msg;
    if (e->code == BURRY_EINTR)
        return 0;
    if (!strncmp(m, "cannot reach", 12) || !strncmp(m, "no answer from", 14) ||
        strstr(m, "broke off") || s->last_status >= 500)
        return 1;
    return strstr(m, "no leader") || strstr(m, "timed out") || strstr(m, "unavailable") ||
           strstr(m, "Unavailable");
}

/* One member: its status (it must have a leader), then authentication. */
static int member_open(struct source *s, struct burry_err *e)
{
    json_t *j = NULL;
    long status = 0;
    int rc = call(s, "/v3/maintenance/status", "{}", 2, &j, &status, e);
    if (rc == 0 && (rc = answer_ok(s, j, status, "report its status", e)) == 0) {
        const char *v = json_string_value(json_object_get(j, "version"));
        free(s->version);
        s->version = strdup(v ? v : "");
        s->rev_start = jnum(json_object_get(j, "header"), "revision");
        if (!jnum(j, "leader"))
            rc = burry_errf(e, BURRY_EFAIL, "etcd at %s has no leader", s->host);
    }
    json_decref(j);
    if (rc == 0 && s->o->user)
        rc = authenticate(s, e);
    return rc;
}

/* Connect to the first member that serves; authenticate when asked. A
 * member that is only unavailable is skipped (said at info level); the
 * error when none serves names each. */
static int etcd_open(struct source **out, const char *url, const struct burry_opts *o,
                     struct burry_err *e)
{
    struct source *s = calloc(1, sizeof *s);
    struct buf why;
    int rc;
    buf_init(&why, 0);
    if (!s)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    s->o = o;
    s->max_ops = ETCD_TXN_OPS;
    s->max_bytes = ETCD_BATCH_BYTES;
    buf_init(&s->req, 0);
    buf_init(&s->tmp, 0);
    if ((rc = etcdurl_parse(url, &s->u, e)) < 0)
        goto fail;
    if (!(s->h = http_new(o, e))) {
        rc = e->code ? e->code : BURRY_EFAIL;
        goto fail;
    }
    const char *scheme = (s->u.https || o->cacert || o->cert) ? "https" : "http";
    for (size_t i = 0; i < s->u.nhosts; i++) {
        struct burry_err e2 = {0};
        s->host = s->u.hosts[i];
        snprintf(s->base, sizeof s->base, "%s://%s", scheme, s->host);
        if ((rc = member_open(s, &e2)) == 0)
            break;
        if (s->u.nhosts == 1 || !member_unavailable(s, &e2)) {
            burry_errf(e, rc, "%s", e2.msg);
            goto fail;
        }
        /* each message names its member */
        buf_printf(&why, "%s%s", why.len ? "; " : "", e2.msg);
        if (i + 1 == s->u.nhosts) {
            burry_errf(e, BURRY_EFAIL, "none of the %zu etcd members serves: %s", s->u.nhosts,
                       why.p ? why.p : "out of memory");
            goto fail;
        }
        blog(&o->log, BLOG_INFO, "%s; trying the next member", e2.msg);
    }
    blog(&o->log, BLOG_DEBUG, "connected to etcd %s at %s", s->version, s->host);
    buf_free(&why);
    *out = s;
    return 0;
fail:
    buf_free(&why);
    etcd_close(s);
    return rc;
}

/* ---- URL-level helpers -------------------------------------------------- */

static char *etcd_describe(const char *url)
{
    /* open() refuses credentials in the URL; cut them here too in case
     * describe() sees a URL open() refused */
    int https;
    const char *a = source_url_rest(url, "etcd", &https);
    if (a) {
        const char *slash = strchr(a, '/');
        const char *at = memchr(a, '@', slash ? (size_t)(slash - a) : strlen(a));
        if (at)
            return str_printf("%.*s%s", (int)(a - url), url, at + 1);
    }
    return strdup(url);
}

static char *etcd_default_name(const char *url)
{
    struct etcdurl u;
    struct burry_err e = {0};
    if (etcdurl_parse(url, &u, &e) != 0)
        return strdup("etcd");
    char *host = strdup(u.hosts[0]);
    char *colon = host ? strrchr(host, ':') : NULL;
    char *r = NULL;
    if (colon) {
        *colon = 0;
        r = catalog_default_name("etcd", host, colon + 1, u.prefix, u.prefix_len);
    }
    free(host);
    etcdurl_free(&u);
    return r;
}

/* A user names keys as they are: "app/config" is canonical "/app/config",
 * "/registry" is "//registry"; "" is the whole key space. */
static int etcd_user_path(const char *user, char **out, size_t *out_len, struct burry_err *e)
{
    size_t n = strlen(user);
    char *p = malloc(n + 2);
    if (!p)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    if (n == 0) {
        p[0] = 0;
    } else {
        p[0] = '/';
        memcpy(p + 1, user, n + 1);
        n++;
    }
    *out = p;
    *out_len = n;
    return 0;
}

/* The archive holds whole keys (the prefix of the backup's URL only
 * selected them), so the prefix of a restore's URL is not where keys go but
 * which keys may be written: only those starting with its bytes. */
static int etcd_restore_scope(const char *url, char **out, size_t *out_len, struct burry_err *e)
{
    struct etcdurl u;
    int rc = etcdurl_parse(url, &u, e);
    *out = NULL;
    *out_len = 0;
    if (rc < 0)
        return rc;
    if (u.prefix_len) {
        if (!(*out = malloc(u.prefix_len + 2))) {
            etcdurl_free(&u);
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        }
        (*out)[0] = '/'; /* the key "app" is the canonical path "/app" */
        memcpy(*out + 1, u.prefix, u.prefix_len);
        (*out)[u.prefix_len + 1] = 0;
        *out_len = u.prefix_len + 1;
    }
    etcdurl_free(&u);
    return 0;
}

static json_t *etcd_manifest_info(struct source *s)
{
    struct buf b;
    buf_init(&b, 0);
    show_bytes(s->u.prefix ? s->u.prefix : "", s->u.prefix_len, &b);
    json_t *j = json_pack("{s:I,s:s,s:s}", "revision", (json_int_t)s->rev, "prefix",
                          b.p ? b.p : "", "server_version", s->version ? s->version : "");
    buf_free(&b);
    return j;
}

/* ---- JSON request building ---------------------------------------------- */

/* Append "name":"<base64 of p>" */
static int put_b64(struct buf *b, const char *name, const void *p, size_t n)
{
    if (buf_printf(b, "\"%s\":\"", name) < 0 || b64_encode(p, n, b) < 0)
        return -1;
    return buf_putc(b, '"');
}

/* The smallest key after every key starting with prefix, or empty (len 0)
 * when there is none (the prefix is all 0xff): etcd's "range to the end". */
static size_t prefix_end(const char *prefix, size_t n, char *out)
{
    memcpy(out, prefix, n);
    while (n > 0) {
        if ((unsigned char)out[n - 1] != 0xff) {
            out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
            return n;
        }
        n--;
    }
    return 0;
}

/* ---- backup ------------------------------------------------------------- */

static int decode_field(json_t *o, const char *name, struct buf *out)
{
    buf_reset(out);
    const char *v = json_string_value(json_object_get(o, name));
    if (b64_decode(v ? v : "", v ? strlen(v) : 0, out) < 0)
        return -1;
    return out->p ? 0 : buf_append(out, "", 0);
}

/* Remaining TTL of a lease, asked once per lease ID (-1: expired). */
static int lease_ttl(struct source *s, long long id, long long *ttl, struct burry_err *e)
{
    long long *c = lmap_find(&s->ttl, id);
    if (c) {
        *ttl = *c;
        return 0;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", id);
    json_t *j = NULL;
    long status;
    int rc = call(s, "/v3/lease/timetolive", body, (size_t)n, &j, &status, e);
    if (rc == 0)
        rc = answer_ok(s, j, status, "report the time to live of a lease", e);
    if (rc == 0) {
        *ttl = json_object_get(j, "TTL") ? jnum(j, "TTL") : -1;
        if (lmap_put(&s->ttl, id, *ttl) < 0)
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    json_decref(j);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A backup's walk through the key range, shared by both ways of reading it. */
struct scan {
    src_emit_fn emit;
    void *ctx;
    char *from;                /* the next page starts here */
    size_t from_len;
    unsigned long long nodes, bytes;
    size_t n, page_bytes;      /* keys and their size in the current page */
    int more;                  /* the server has keys after this page */
    struct buf path, key, val;
    struct buf attrs;          /* every key's attributes as JSON, written anew for each */
};

/* One key of a range answer. */
struct kv {
    const char *key, *val;
    size_t klen, vlen;
    long long crev, mrev, ver, lease;
};

/* Keys to ask for after a page of n keys and about bytes bytes: pages of
 * about ETCD_PAGE_BYTES, so fewer round trips for small values and bounded
 * answers for large ones. */
static size_t page_limit(size_t bytes, size_t n)
{
    size_t want = ETCD_PAGE_BYTES / (bytes / n + 1);
    return want < ETCD_PAGE_MIN ? ETCD_PAGE_MIN : want > ETCD_PAGE_MAX ? ETCD_PAGE_MAX : want;
}

/* Report progress at most twice a second. */
static void scan_progress(struct source *s, const struct scan *sc, double *last)
{
    if (s->o->progress && now_s() - *last >= 0.5) {
        *last = now_s();
        s->o->progress(s->o->progress_ctx, "reading", sc->nodes, 0, sc->bytes);
    }
}

/* The next page starts right after key (the last key of a page). */
static int scan_next_from(struct scan *sc, const char *key, size_t klen, struct burry_err *e)
{
    char *nf = realloc(sc->from, klen + 1);
    if (!nf)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    sc->from = nf;
    memcpy(sc->from, key, klen);
    sc->from[klen] = 0;
    sc->from_len = klen + 1;
    return 0;
}

/* Hand one key to the backup. */
static int scan_kv(struct source *s, struct scan *sc, const struct kv *kv, struct burry_err *e)
{
    long long ttl = 0;
    int rc = 0;
    if (kv->lease && (rc = lease_ttl(s, kv->lease, &ttl, e)) < 0)
        return rc;
    /* the attributes, written as the archive's JSON straight away (keys in
     * byte order; lease_ttl only with a lease) */
    struct buf *a = &sc->attrs;
    buf_reset(a);
    if (buf_puts(a, "{\"create_revision\":") < 0 || jsonout_integer(a, kv->crev) < 0 ||
        buf_puts(a, ",\"lease\":") < 0 || jsonout_integer(a, kv->lease) < 0 ||
        (kv->lease && (buf_puts(a, ",\"lease_ttl\":") < 0 || jsonout_integer(a, ttl) < 0)) ||
        buf_puts(a, ",\"mod_revision\":") < 0 || jsonout_integer(a, kv->mrev) < 0 ||
        buf_puts(a, ",\"version\":") < 0 || jsonout_integer(a, kv->ver) < 0 || buf_putc(a, '}') < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    buf_reset(&sc->path);
    if (buf_putc(&sc->path, '/') < 0 || buf_append(&sc->path, kv->key, kv->klen) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct bnode nd = {.path = sc->path.p, .path_len = sc->path.len, .value = kv->val,
                       .value_len = kv->vlen, .has_value = 1, .attrs_json = a->p,
                       .attrs_json_len = a->len};
    if ((rc = sc->emit(sc->ctx, &nd, e)) < 0)
        return rc;
    sc->nodes++;
    sc->n++;
    sc->bytes += kv->vlen;
    sc->page_bytes += kv->klen + kv->vlen + 100;
    return 0;
}

/* What reading one page may end in besides 0 and a fatal error. */
#define RANGE_SMALLER 1 /* the answer would be too large: ask for fewer keys */
#define RANGE_NO_GRPC 2 /* the member does not answer gRPC here: use the gateway */

static int compacted(struct source *s, const char *m, struct burry_err *e)
{
    return burry_errf(e, BURRY_EFAIL,
                      "etcd at %s compacted revision %lld while the backup was reading it (%s); "
                      "nothing was published, run the backup again (it reads at a new revision) "
                      "or compact less often",
                      s->host, s->rev, m);
}

/* One page through the JSON gateway: POST /v3/kv/range. */
static int range_gw(struct source *s, struct scan *sc, const char *end, size_t end_len,
                    size_t limit, struct burry_err *e)
{
    buf_reset(&s->req);
    if (buf_putc(&s->req, '{') < 0 || put_b64(&s->req, "key", sc->from, sc->from_len) < 0 ||
        buf_putc(&s->req, ',') < 0 || put_b64(&s->req, "range_end", end, end_len) < 0 ||
        buf_printf(&s->req, ",\"limit\":\"%zu\"", limit) < 0 ||
        (s->rev && buf_printf(&s->req, ",\"revision\":\"%lld\"", s->rev) < 0) ||
        buf_putc(&s->req, '}') < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    json_t *j = NULL;
    long status;
    struct burry_err e2 = {0};
    int rc = call(s, "/v3/kv/range", s->req.p, s->req.len, &j, &status, &e2);
    if (rc < 0)
        return strstr(e2.msg, "is larger than") && limit > 1 ? RANGE_SMALLER
                                                             : burry_errf(e, rc, "%s", e2.msg);
    if (status != 200) {
        char tmp[40];
        const char *m = gw_msg(j, status, tmp, sizeof tmp);
        rc = strstr(m, "compacted") ? compacted(s, m, e)
                                    : answer_ok(s, j, status, "read the key range", e);
        json_decref(j);
        return rc;
    }
    if (!s->rev)
        s->rev = jnum(json_object_get(j, "header"), "revision");
    json_t *kvs = json_object_get(j, "kvs");
    size_t n = json_array_size(kvs);
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *o = json_array_get(kvs, i);
        if (decode_field(o, "key", &sc->key) < 0 || decode_field(o, "value", &sc->val) < 0) {
            rc = burry_errf(e, BURRY_EFAIL, "etcd at %s sent a key or value that is not base64",
                            s->host);
            break;
        }
        struct kv kv = {.key = sc->key.p, .klen = sc->key.len, .val = sc->val.p,
                        .vlen = sc->val.len, .crev = jnum(o, "create_revision"),
                        .mrev = jnum(o, "mod_revision"), .ver = jnum(o, "version"),
                        .lease = jnum(o, "lease")};
        rc = scan_kv(s, sc, &kv, e);
    }
    if (rc == 0 && n > 0)
        rc = scan_next_from(sc, sc->key.p, sc->key.len, e);
    sc->more = json_is_true(json_object_get(j, "more"));
    json_decref(j);
    return rc;
}

/* etcdserverpb.KeyValue */
static int pb_kv(const unsigned char *p, size_t n, struct kv *kv)
{
    struct pb_reader r = {p, p + n};
    struct pb_field f;
    int more;
    memset(kv, 0, sizeof *kv);
    kv->key = kv->val = "";
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.wire == PB_LEN && (f.num == 1 || f.num == 5)) {
            *(f.num == 1 ? &kv->key : &kv->val) = (const char *)f.data;
            *(f.num == 1 ? &kv->klen : &kv->vlen) = f.len;
        } else if (f.wire == PB_VARINT && f.num >= 2 && f.num <= 6 && f.num != 5) {
            long long v = (long long)f.v;
            *(f.num == 2 ? &kv->crev : f.num == 3 ? &kv->mrev : f.num == 4 ? &kv->ver : &kv->lease) = v;
        }
    }
    return more;
}

/* One gRPC Range request (etcdserverpb.KV/Range, etcd's native API, whose
 * answer costs the server several times less than the gateway's JSON). The
 * scan sends the request for the next page from a helper thread while it
 * writes the current one, so the server's work overlaps with ours. A fetch
 * touches nothing of the source but the gRPC handle and what it copied. */
struct fetch {
    struct grpc *g;
    const char *base;
    struct buf req;            /* RangeRequest */
    char *token;               /* "token: ..." copy, wiped */
    struct grpc_reply rep;
    int rc;                    /* grpc_call's result */
    struct burry_err e;
    pthread_t t;
    int started, running;
};

/* Build the request for the keys from [from, from + from_len) (plus a NUL
 * byte when after_nul: the first key after 'from') up to end. */
static int fetch_prepare(struct fetch *f, struct source *s, const char *from, size_t from_len,
                         int after_nul, const char *end, size_t end_len, size_t limit,
                         struct burry_err *e)
{
    memset(f, 0, sizeof *f);
    f->g = s->g;
    f->base = s->base;
    buf_init(&f->req, 0);
    /* RangeRequest: key 1, range_end 2, limit 3, revision 4, serializable 7.
     * Once the revision is pinned, the member that served it has applied
     * it: a serializable read at that revision gives the same keys without
     * a round of the cluster's consensus per page. */
    struct buf key;
    buf_init(&key, 0);
    int bad = buf_append(&key, from, from_len) < 0 || (after_nul && buf_putc(&key, 0) < 0) ||
              pb_put_bytes(&f->req, 1, key.p, key.len) < 0 ||
              pb_put_bytes(&f->req, 2, end, end_len) < 0 || pb_put_varint(&f->req, 3, limit) < 0 ||
              (s->rev && pb_put_varint(&f->req, 4, (uint64_t)s->rev) < 0) ||
              (s->rev && pb_put_varint(&f->req, 7, 1) < 0) ||
              (s->token_hdr && !(f->token = strdup(s->token_hdr)));
    buf_free(&key);
    return bad ? burry_errf(e, BURRY_EFAIL, "out of memory") : 0;
}

static void fetch_run(struct fetch *f)
{
    const char *hdrs[2] = {f->token, NULL};
    f->rc = grpc_call(f->g, "etcd", f->base, "/etcdserverpb.KV/Range", hdrs, f->req.p, f->req.len,
                      ETCD_RESP_MAX, &f->rep, &f->e);
}

static void *fetch_thread(void *arg)
{
    fetch_run(arg);
    return NULL;
}

/* Wait for a fetch in a thread, then drop everything it holds. */
static void fetch_free(struct fetch *f)
{
    if (f->running)
        pthread_join(f->t, NULL);
    f->running = 0;
    if (f->started && f->rc == 0)
        buf_free(&f->rep.body);
    f->started = 0;
    buf_free(&f->req);
    str_wipe_free(f->token);
    f->token = NULL;
}

/* What a fetched page says: 0 for keys to read, RANGE_SMALLER,
 * RANGE_NO_GRPC (only before the first page), RANGE_AUTH (the token
 * expired, and may_renew), or a fatal error. */
#define RANGE_AUTH 3
static int page_status(struct source *s, struct fetch *f, size_t limit, int may_renew,
                       struct burry_err *e)
{
    if (f->rc < 0) {
        if (strstr(f->e.msg, "is larger than") && limit > 1)
            return RANGE_SMALLER;
        /* before the first page, any failure may just mean no gRPC here */
        int fatal = s->rev || f->rc == BURRY_EINTR || strstr(f->e.msg, "no answer from");
        return fatal ? burry_errf(e, f->rc, "%s", f->e.msg) : RANGE_NO_GRPC;
    }
    struct grpc_reply *r = &f->rep;
    if (r->status == GRPC_OK)
        return 0;
    if (r->status < 0 || r->status == GRPC_UNIMPLEMENTED)
        return !s->rev ? RANGE_NO_GRPC
                       : burry_errf(e, BURRY_EFAIL,
                                    "etcd at %s stopped answering gRPC range requests (HTTP status "
                                    "%ld)", s->host, r->http);
    if (r->status == GRPC_RESOURCE_EXHAUSTED && limit > 1)
        return RANGE_SMALLER;
    if (r->status == GRPC_UNAUTHENTICATED && may_renew && s->o->user &&
        strstr(r->msg, "invalid auth token"))
        return RANGE_AUTH;
    char tmp[40];
    snprintf(tmp, sizeof tmp, "gRPC status %d", r->status);
    const char *m = r->msg[0] ? r->msg : tmp;
    return strstr(m, "compacted") ? compacted(s, m, e) : refused(s, m, "read the key range", e);
}

/* A look over a RangeResponse (header 1 with revision 3, kvs 2, more 3)
 * before writing it: the revision, the last key, whether more follow. */
struct page {
    size_t n, bytes;
    const char *last;
    size_t last_len;
    int more;
};

static int page_peek(struct source *s, const struct buf *body, struct page *pg, struct burry_err *e)
{
    struct pb_reader r = {(const unsigned char *)body->p, (const unsigned char *)body->p + body->len};
    struct pb_field f;
    int more;
    memset(pg, 0, sizeof *pg);
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.num == 1 && f.wire == PB_LEN && !s->rev) {
            struct pb_reader h = {f.data, f.data + f.len};
            struct pb_field hf;
            while (pb_next(&h, &hf) > 0)
                if (hf.num == 3 && hf.wire == PB_VARINT)
                    s->rev = (long long)hf.v;
        } else if (f.num == 2 && f.wire == PB_LEN) {
            struct kv kv;
            if (pb_kv(f.data, f.len, &kv) < 0)
                break;
            pg->n++;
            pg->bytes += kv.klen + kv.vlen + 100;
            pg->last = kv.key;
            pg->last_len = kv.klen;
        } else if (f.num == 3 && f.wire == PB_VARINT) {
            pg->more = f.v != 0;
        }
    }
    if (more != 0)
        return burry_errf(e, BURRY_EFAIL,
                          "etcd at %s sent a range answer that is not valid protobuf", s->host);
    return 0;
}

/* Hand every key of a checked RangeResponse to the backup. */
static int page_emit(struct source *s, struct scan *sc, const struct buf *body, struct burry_err *e)
{
    struct pb_reader r = {(const unsigned char *)body->p, (const unsigned char *)body->p + body->len};
    struct pb_field f;
    int rc = 0;
    while (rc == 0 && pb_next(&r, &f) > 0) {
        struct kv kv;
        if (f.num == 2 && f.wire == PB_LEN && pb_kv(f.data, f.len, &kv) == 0)
            rc = scan_kv(s, sc, &kv, e);
    }
    return rc;
}

/* The whole range through gRPC, one page ahead. RANGE_NO_GRPC when the
 * member does not answer gRPC at all (nothing was read then). */
static int scan_grpc(struct source *s, struct scan *sc, const char *end, size_t end_len,
                     struct burry_err *e)
{
    struct fetch cur, next = {0};
    size_t limit = ETCD_PAGE_FIRST;
    int rc, renewed = 0;
    double last = now_s();

    /* sc->from is where the page to ask for starts: the prefix, then the
     * last key written plus a NUL byte */
    rc = fetch_prepare(&cur, s, sc->from, sc->from_len, 0, end, end_len, limit, e);
    for (;;) {
        if (rc < 0)
            break;
        if (!cur.started) {
            fetch_run(&cur);
            cur.started = 1;
        }
        rc = page_status(s, &cur, limit, !renewed, e);
        if (rc == RANGE_AUTH) {
            renewed = 1; /* the token expired: a new one, and the same page again */
            token_expired(s);
            fetch_free(&cur);
            rc = authenticate(s, e);
            if (rc == 0)
                rc = fetch_prepare(&cur, s, sc->from, sc->from_len, 0, end, end_len, limit, e);
            continue;
        }
        if (rc == RANGE_SMALLER) {
            limit /= 2; /* a page of huge values: ask for fewer keys */
            fetch_free(&cur);
            rc = fetch_prepare(&cur, s, sc->from, sc->from_len, 0, end, end_len, limit, e);
            continue;
        }
        if (rc != 0)
            break;
        struct page pg;
        if ((rc = page_peek(s, &cur.rep.body, &pg, e)) < 0)
            break;
        int more = pg.more && pg.n > 0;
        if (more) {
            limit = page_limit(pg.bytes, pg.n);
            if ((rc = fetch_prepare(&next, s, pg.last, pg.last_len, 1, end, end_len, limit, e)) < 0)
                break;
            next.started = 1;
            next.running = pthread_create(&next.t, NULL, fetch_thread, &next) == 0;
        }
        rc = page_emit(s, sc, &cur.rep.body, e);
        renewed = 0; /* a token that expires later is renewed again */
        if (rc == 0 && pg.n > 0) /* where a page asked again must start */
            rc = scan_next_from(sc, pg.last, pg.last_len, e);
        fetch_free(&cur);
        if (rc < 0 || !more)
            break;
        if (next.running) {
            pthread_join(next.t, NULL);
            next.running = 0;
        } else {
            fetch_run(&next); /* no thread to be had: in turn */
        }
        cur = next;
        memset(&next, 0, sizeof next);
        if (burry_interrupted) {
            rc = burry_errf(e, BURRY_EINTR, "interrupted");
            break;
        }
        scan_progress(s, sc, &last);
    }
    fetch_free(&cur);
    fetch_free(&next);
    return rc;
}

/* The whole range through the JSON gateway, page after page. */
static int scan_gw(struct source *s, struct scan *sc, const char *end, size_t end_len,
                   struct burry_err *e)
{
    size_t limit = ETCD_PAGE_FIRST;
    double last = now_s();
    for (;;) {
        sc->n = sc->page_bytes = 0;
        int rc = range_gw(s, sc, end, end_len, limit, e);
        if (rc == RANGE_SMALLER) {
            limit /= 2; /* a page of huge values: ask for fewer keys */
            continue;
        }
        if (rc < 0)
            return rc;
        if (!sc->more || sc->n == 0)
            return 0;
        limit = page_limit(sc->page_bytes, sc->n);
        if (burry_interrupted)
            return burry_errf(e, BURRY_EINTR, "interrupted");
        scan_progress(s, sc, &last);
    }
}

static int etcd_scan(struct source *s, src_emit_fn emit, void *ctx, struct burry_err *e)
{
    size_t plen = s->u.prefix_len;
    char *end = malloc(plen + 1);
    size_t end_len;
    struct scan sc = {.emit = emit, .ctx = ctx, .from = malloc(plen + 1), .from_len = plen};
    int rc = 0, use_grpc = 1;

    buf_init(&sc.key, 0);
    buf_init(&sc.val, 0);
    buf_init(&sc.path, 0);
    buf_init(&sc.attrs, 0);
    if (!end || !sc.from) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    if (plen) {
        memcpy(sc.from, s->u.prefix, plen);
        end_len = prefix_end(s->u.prefix, plen, end);
    } else {
        sc.from[0] = end[0] = 0; /* from "\0" to the end: every key */
        sc.from_len = end_len = 1;
    }
    if (plen && end_len == 0) {
        end[0] = 0; /* range_end "\0": every key >= from */
        end_len = 1;
    }
    s->rev = 0;
    if (!s->g && !(s->g = grpc_new(s->o, ETCD_INFLIGHT, e))) {
        rc = e->code ? e->code : BURRY_EFAIL;
        goto out;
    }
    rc = scan_grpc(s, &sc, end, end_len, e);
    if (rc == RANGE_NO_GRPC) {
        blog(&s->o->log, BLOG_INFO,
             "etcd at %s does not answer gRPC range requests; reading through its JSON gateway",
             s->host);
        use_grpc = 0;
        rc = scan_gw(s, &sc, end, end_len, e);
    }
    if (rc < 0)
        goto out;
    if (sc.nodes == 0) {
        if (plen) {
            show_bytes(s->u.prefix, plen, &sc.val);
            blog(&s->o->log, BLOG_WARN,
                 "no key in etcd at %s starts with '%s'; there is nothing to read (a backup is empty)%s",
                 s->host, sc.val.p,
                 s->u.prefix[0] != '/' ? " (for keys starting with '/', write the prefix after a "
                                         "second '/': etcd://HOST:PORT//prefix)" : "");
        } else {
            blog(&s->o->log, BLOG_WARN, "etcd at %s holds no keys; there is nothing to read (a backup is empty)",
                 s->host);
        }
    }
    blog(&s->o->log, BLOG_DEBUG, "read %llu keys at revision %lld through %s", sc.nodes, s->rev,
         use_grpc ? "gRPC" : "the JSON gateway");
    rc = 0;
out:
    free(end);
    free(sc.from);
    buf_free(&sc.attrs);
    buf_free(&sc.key);
    buf_free(&sc.val);
    buf_free(&sc.path);
    return rc;
}

/* ---- restore ------------------------------------------------------------ */

static void wop_decide(struct wop *w, enum src_write_outcome out, const char *msg)
{
    w->done = 1;
    w->out = out;
    if (msg)
        w->msg = strdup(msg);
}

static int etcd_write_submit(struct source *s, const struct bnode *n, enum src_write_mode mode,
                             src_write_cb cb, void *ctx, void *token, struct burry_err *e)
{
    struct wop *w = calloc(1, sizeof *w);
    if (!w)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    w->cb = cb;
    w->ctx = ctx;
    w->token = token;
    s->mode = mode;
    /* a write cut short by an interrupt may or may not have been applied:
     * let the ones in flight end, so that the summary counts what they did */
    http_set_drain(s->h, mode == SRC_WRITE_CREATE || mode == SRC_WRITE_OVERWRITE);
    if (!n->has_value) {
        /* a path without a key (an ancestor the restorer made up for
         * --into, or a directory of the archive): nothing to write */
        wop_decide(w, SRC_W_EXISTING, NULL);
    } else if (n->path_len < 2 || n->path[0] != '/') {
        wop_decide(w, SRC_W_FAILED, "etcd keys cannot be empty");
    } else {
        /* whatever its size: only the server knows what it takes (its
         * --max-request-bytes); a value too large fails when it says so */
        w->klen = n->path_len - 1;
        w->vlen = n->value_len;
        w->key = malloc(w->klen + 1);
        w->val = malloc(w->vlen + 1);
        if (!w->key || !w->val) {
            wop_free(w);
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        }
        memcpy(w->key, n->path + 1, w->klen);
        if (w->vlen)
            memcpy(w->val, n->value, w->vlen);
        json_t *l = json_object_get(n->attrs, "lease");
        w->lease = json_is_integer(l) ? json_integer_value(l) : 0;
        w->ttl = json_integer_value(json_object_get(n->attrs, "lease_ttl"));
        if (w->lease && !s->o->with_leases && (mode == SRC_WRITE_CREATE || mode == SRC_WRITE_OVERWRITE))
            s->unleased++;
    }
    if (s->qt)
        s->qt->next = w;
    else
        s->qh = w;
    s->qt = w;
    s->nq++;
    return 0;
}

/* Grant the fresh lease standing for a recorded one (once per ID). */
static int grant(struct source *s, struct wop *w, long long *out, struct burry_err *e)
{
    long long *c = lmap_find(&s->granted, w->lease);
    if (c) {
        *out = *c;
        return 0;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "{\"TTL\":\"%lld\"}", w->ttl > 0 ? w->ttl : 1);
    json_t *j = NULL;
    long status;
    int rc = call(s, "/v3/lease/grant", body, (size_t)n, &j, &status, e);
    if (rc == 0)
        rc = answer_ok(s, j, status, "grant a lease", e);
    if (rc == 0) {
        *out = jnum(j, "ID");
        if (!*out)
            rc = burry_errf(e, BURRY_EFAIL, "etcd at %s granted a lease without an ID", s->host);
        else if (lmap_put(&s->granted, w->lease, *out) < 0)
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    json_decref(j);
    return rc;
}

enum txn_kind { TXN_CREATE, TXN_CREATE_BARE, TXN_PUT, TXN_READ };

/* Build one txn over the ops in b[0..n) that are still undecided and have
 * want set. CREATE: compare create_revision == 0 per key, success puts,
 * failure keys-only reads; CREATE_BARE: the same without the failure
 * reads (a smaller request for the usual case, where every key is new);
 * PUT: unconditional puts; READ: reads. */
static int build_txn(struct source *s, struct wop **b, const char *want, size_t n,
                     enum txn_kind kind, struct burry_err *e)
{
    struct buf *r = &s->req;
    int rc = 0, first = 1;
    buf_reset(r);
    rc |= buf_putc(r, '{');
    if (kind == TXN_CREATE || kind == TXN_CREATE_BARE) {
        rc |= buf_puts(r, "\"compare\":[");
        for (size_t i = 0; i < n; i++) {
            if (!want[i])
                continue;
            rc |= buf_puts(r, first ? "{\"target\":\"CREATE\",\"create_revision\":\"0\","
                                    : ",{\"target\":\"CREATE\",\"create_revision\":\"0\",");
            rc |= put_b64(r, "key", b[i]->key, b[i]->klen);
            rc |= buf_putc(r, '}');
            first = 0;
        }
        rc |= buf_puts(r, "],");
    }
    rc |= buf_puts(r, "\"success\":[");
    first = 1;
    for (size_t i = 0; i < n; i++) {
        if (!want[i])
            continue;
        if (!first)
            rc |= buf_putc(r, ',');
        first = 0;
        if (kind == TXN_READ) {
            rc |= buf_puts(r, "{\"request_range\":{");
            rc |= put_b64(r, "key", b[i]->key, b[i]->klen);
            rc |= buf_puts(r, "}}");
            continue;
        }
        rc |= buf_puts(r, "{\"request_put\":{");
        rc |= put_b64(r, "key", b[i]->key, b[i]->klen);
        rc |= buf_putc(r, ',');
        rc |= put_b64(r, "value", b[i]->val, b[i]->vlen);
        if (b[i]->lease && s->o->with_leases) {
            long long id = 0;
            int g = grant(s, b[i], &id, e);
            if (g < 0)
                return g;
            rc |= buf_printf(r, ",\"lease\":\"%lld\"", id);
        }
        rc |= buf_puts(r, "}}");
    }
    rc |= buf_putc(r, ']');
    if (kind == TXN_CREATE) {
        rc |= buf_puts(r, ",\"failure\":[");
        first = 1;
        for (size_t i = 0; i < n; i++) {
            if (!want[i])
                continue;
            rc |= buf_puts(r, first ? "{\"request_range\":{\"keys_only\":true,"
                                    : ",{\"request_range\":{\"keys_only\":true,");
            rc |= put_b64(r, "key", b[i]->key, b[i]->klen);
            rc |= buf_puts(r, "}}");
            first = 0;
        }
        rc |= buf_putc(r, ']');
    }
    rc |= buf_putc(r, '}');
    return rc ? burry_errf(e, BURRY_EFAIL, "out of memory") : 0;
}

/* build_txn's TXN_CREATE_BARE as a protobuf TxnRequest, for gRPC:
 * compare 1 (Compare: result 1 EQUAL, the default; target 2 CREATE = 1;
 * key 3; create_revision 5 = 0, written although zero because it is the
 * member of a oneof), success 2 (RequestOp: request_put 2 = PutRequest:
 * key 1, value 2, lease 3). Nested messages are written in place, their
 * lengths worked out first. */
static int build_txn_pb(struct source *s, struct wop **b, size_t n, struct burry_err *e)
{
    struct buf *r = &s->req;
    int rc = 0;
    buf_reset(r);
    for (size_t i = 0; i < n; i++) {
        rc |= pb_put_head(r, 1, 2 + pb_bytes_size(3, b[i]->klen) + 2);
        rc |= pb_put_varint(r, 2, 1);
        rc |= pb_put_bytes(r, 3, b[i]->key, b[i]->klen);
        rc |= pb_put_varint(r, 5, 0);
    }
    for (size_t i = 0; i < n; i++) {
        long long lease = 0;
        if (b[i]->lease && s->o->with_leases) {
            int g = grant(s, b[i], &lease, e);
            if (g < 0)
                return g;
        }
        size_t put = pb_bytes_size(1, b[i]->klen) + pb_bytes_size(2, b[i]->vlen) +
                     (lease ? 1 + pb_varint_size((uint64_t)lease) : 0);
        rc |= pb_put_head(r, 2, pb_bytes_size(2, put));
        rc |= pb_put_head(r, 2, put);
        rc |= pb_put_bytes(r, 1, b[i]->key, b[i]->klen);
        rc |= pb_put_bytes(r, 2, b[i]->val, b[i]->vlen);
        if (lease)
            rc |= pb_put_varint(r, 3, (uint64_t)lease);
    }
    return rc ? burry_errf(e, BURRY_EFAIL, "out of memory") : 0;
}

/* What etcd's refusal of a whole txn (its message m) says beyond its keys. */
enum refusal {
    REFUSED_OTHER,             /* about some of its keys, or the whole server */
    REFUSED_TOO_LARGE,         /* the request is larger than the server takes */
    REFUSED_TOO_MANY_OPS,      /* more operations than its --max-txn-ops */
    REFUSED_BUSY,              /* "too many requests": try again in a moment */
};

static enum refusal refusal_kind(const char *m)
{
    /* etcd's own check of --max-request-bytes, then its gRPC server's of
     * that plus ETCD_GRPC_SLACK (which the gateway passes on) */
    if (strstr(m, "request is too large") || strstr(m, "larger than max"))
        return REFUSED_TOO_LARGE;
    if (strstr(m, "too many operations in txn request"))
        return REFUSED_TOO_MANY_OPS;
    /* applying its log lags behind committing it (gRPC RESOURCE_EXHAUSTED,
     * the gateway's 429: both also say "larger than max", above) */
    if (strstr(m, "too many requests"))
        return REFUSED_BUSY;
    return REFUSED_OTHER;
}

/* etcd refused a txn with "too many requests" (m): it is overloaded for a
 * moment. No txn starts before a pause, 0.2 s after the first such answer
 * and doubled after each next in a row; after ETCD_BUSY_TRIES of them the
 * run stops. Answers to txns sent before a pause began do not count. */
static int busy(struct source *s, const char *m, struct burry_err *e)
{
    double now = now_s();
    if (now < s->busy_until)
        return 0;
    if (++s->busy_tries >= ETCD_BUSY_TRIES)
        return burry_errf(e, BURRY_EFAIL,
                          "etcd at %s kept refusing writes with '%s' (%d times in a row, waiting "
                          "longer each time); it is overloaded: let it catch up, then run the "
                          "restore again", s->host, m, s->busy_tries);
    double pause = ETCD_BUSY_PAUSE_MS / 1000.0 * (double)(1 << (s->busy_tries - 1));
    s->busy_until = now + pause;
    blog(&s->o->log, BLOG_INFO, "etcd at %s is busy (%s); sending again in %.1fs", s->host, m, pause);
    return 0;
}

/* Sleep until t (now_s), at most max_ms; sooner when interrupted. */
static void nap_until(double t, int max_ms)
{
    double left = t - now_s();
    if (left > max_ms / 1000.0)
        left = max_ms / 1000.0;
    if (left <= 0)
        return;
    struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The server did not take a txn of req_len bytes (why): the txns after it
 * hold at most half that, for the rest of the run. A txn sent before a
 * lower limit was learnt says nothing new. */
static void fewer_bytes(struct source *s, size_t req_len, const char *why)
{
    size_t b = req_len / 2;
    if (req_len > s->max_bytes)
        return;
    s->max_bytes = b;
    blog(&s->o->log, BLOG_INFO,
         "etcd at %s did not take a transaction of %zu bytes (%s); sending transactions of at "
         "most %zu bytes from now on", s->host, req_len, why, b);
}

/* The server refused a txn of n operations as too many: at most half
 * that per txn, for the rest of the run (as in fewer_bytes). */
static void fewer_ops(struct source *s, size_t n, const char *why)
{
    size_t k = n / 2 ? n / 2 : 1;
    if (n > s->max_ops)
        return;
    s->max_ops = k;
    blog(&s->o->log, BLOG_INFO,
         "etcd at %s refused a transaction of %zu operations (%s); sending at most %zu per "
         "transaction from now on", s->host, n, why, k);
}

/* A write that alone is more than the server takes. */
static void value_too_large(struct wop *w, const char *why)
{
    char *m = str_printf("value too large for etcd (%zu bytes): %s", w->vlen, why);
    wop_decide(w, SRC_W_FAILED, m ? m : why);
    free(m);
}

/* Send a built txn. 0 with *j (caller decrefs) on success; 1 when etcd
 * refused it (msg says why: the ops are then tried in smaller txns); <0
 * fatal. */
static int send_txn(struct source *s, json_t **j, char *msg, size_t msglen, struct burry_err *e)
{
    long status;
    char tmp[40];
    const char *m;
    int rc;
    for (;;) {
        s->txns_gw++;
        rc = call(s, "/v3/kv/txn", s->req.p, s->req.len, j, &status, e);
        if (rc < 0)
            return rc;
        if (status == 200) {
            s->busy_tries = 0;
            return 0;
        }
        m = gw_msg(*j, status, tmp, sizeof tmp);
        if (refusal_kind(m) != REFUSED_BUSY)
            break;
        rc = busy(s, m, e);
        json_decref(*j);
        *j = NULL;
        if (rc < 0)
            return rc;
        while (now_s() < s->busy_until && !burry_interrupted)
            nap_until(s->busy_until, 100);
        if (burry_interrupted)
            return burry_errf(e, BURRY_EINTR, "interrupted");
    }
    /* whole-server conditions end the run; per-key refusals do not */
    if (strstr(m, "requires authentication") || strstr(m, "user name is empty") ||
        strstr(m, "no leader") || strstr(m, "timed out") || strstr(m, "stopped") ||
        strstr(m, "NOSPACE") || strstr(m, "space exceeded") || status >= 500) {
        rc = answer_ok(s, *j, status, "run a transaction", e);
        json_decref(*j);
        *j = NULL;
        return rc < 0 ? rc : burry_errf(e, BURRY_EFAIL, "etcd at %s: %s", s->host, m);
    }
    snprintf(msg, msglen, "etcd refused the write: %s", m);
    json_decref(*j);
    *j = NULL;
    return 1;
}

/* The existing key of the i-th read of a txn answer: 1 with its value in
 * val and its create_revision in crev (each when not NULL), 0 when the key
 * is absent. */
static int read_result(json_t *j, size_t i, struct buf *val, long long *crev)
{
    json_t *rr = json_object_get(json_array_get(json_object_get(j, "responses"), i), "response_range");
    json_t *kv = json_array_get(json_object_get(rr, "kvs"), 0);
    if (!kv)
        return 0;
    if (crev)
        *crev = jnum(kv, "create_revision");
    if (val && decode_field(kv, "value", val) < 0)
        return -1;
    return 1;
}

/* Run one batch b[0..n) (all undecided, all with a key) in mode. */
static int run_batch(struct source *s, struct wop **b, size_t n, struct burry_err *e)
{
    char want[ETCD_TXN_OPS];
    char msg[300];
    json_t *j = NULL;
    int rc;
    for (size_t i = 0; i < n; i++)
        want[i] = 1;

    if (s->mode == SRC_WRITE_CREATE) {
        /* all absent: one round trip; else the failure branch says which
         * keys exist, and the others are tried again */
        for (int round = 0; round <= ETCD_TXN_OPS; round++) {
            size_t left = 0;
            for (size_t i = 0; i < n; i++)
                left += want[i] != 0;
            if (!left)
                return 0;
            if ((rc = build_txn(s, b, want, n, TXN_CREATE, e)) < 0)
                return rc;
            if ((rc = send_txn(s, &j, msg, sizeof msg, e)) < 0)
                return rc;
            if (rc == 1)
                goto one_by_one;
            int ok = json_is_true(json_object_get(j, "succeeded"));
            for (size_t i = 0, k = 0; i < n; i++) {
                long long crev = 0;
                if (!want[i])
                    continue;
                if (ok) {
                    wop_decide(b[i], SRC_W_CREATED, NULL);
                    want[i] = 0;
                } else if (read_result(j, k, NULL, &crev) == 1) {
                    /* a write sent before in a txn whose answer was lost,
                     * found created since this run began, is this run's */
                    wop_decide(b[i], b[i]->unsure && crev > s->rev_start ? SRC_W_CREATED
                                                                           : SRC_W_EXISTING, NULL);
                    want[i] = 0;
                }
                k++;
            }
            json_decref(j);
            j = NULL;
        }
        return burry_errf(e, BURRY_EFAIL, "etcd at %s kept refusing a create-only transaction",
                          s->host);
    }

    /* overwrite and plans: read the current values first */
    char put[ETCD_TXN_OPS] = {0};
    if ((rc = build_txn(s, b, want, n, TXN_READ, e)) < 0)
        return rc;
    if ((rc = send_txn(s, &j, msg, sizeof msg, e)) < 0)
        return rc;
    if (rc == 1)
        goto one_by_one;
    enum src_write_outcome outc[ETCD_TXN_OPS];
    for (size_t i = 0; i < n; i++) {
        int ex = read_result(j, i, &s->tmp, NULL);
        if (ex < 0) {
            json_decref(j);
            return burry_errf(e, BURRY_EFAIL, "etcd at %s sent a value that is not base64", s->host);
        }
        int same = ex && s->tmp.len == b[i]->vlen && (!b[i]->vlen || !memcmp(s->tmp.p, b[i]->val, b[i]->vlen));
        if (!ex)
            outc[i] = SRC_W_CREATED;
        else if (same)
            outc[i] = SRC_W_SAME;
        else
            outc[i] = s->mode == SRC_WRITE_PLAN ? SRC_W_DIFFERENT : SRC_W_OVERWRITTEN;
        put[i] = s->mode == SRC_WRITE_OVERWRITE && !same;
    }
    json_decref(j);
    j = NULL;
    if (s->mode == SRC_WRITE_OVERWRITE) {
        size_t np = 0;
        for (size_t i = 0; i < n; i++)
            np += put[i] != 0;
        if (np) {
            if ((rc = build_txn(s, b, put, n, TXN_PUT, e)) < 0)
                return rc;
            if ((rc = send_txn(s, &j, msg, sizeof msg, e)) < 0)
                return rc;
            json_decref(j);
            if (rc == 1)
                goto one_by_one;
        }
    }
    for (size_t i = 0; i < n; i++)
        wop_decide(b[i], outc[i], NULL);
    return 0;

one_by_one:;
    /* etcd refused the batch as a whole: for a limit of the server, in two
     * halves; else (a key it denies) each op alone, so that only the guilty
     * ones fail */
    enum refusal why = refusal_kind(msg);
    if (n == 1) {
        if (why == REFUSED_TOO_LARGE)
            value_too_large(b[0], msg);
        else
            wop_decide(b[0], SRC_W_FAILED, msg);
        return 0;
    }
    if (why != REFUSED_OTHER) {
        struct wop *u[ETCD_TXN_OPS];
        size_t nu = 0;
        for (size_t i = 0; i < n; i++)
            if (!b[i]->done)
                u[nu++] = b[i];
        if (why == REFUSED_TOO_MANY_OPS)
            fewer_ops(s, nu, msg);
        if (nu > 1) {
            if ((rc = run_batch(s, u, nu / 2, e)) < 0)
                return rc;
            return run_batch(s, u + nu / 2, nu - nu / 2, e);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!b[i]->done && (rc = run_batch(s, &b[i], 1, e)) < 0)
            return rc;
    return 0;
}

/* Pick the next batch: undecided writes not in flight, in queue order,
 * at most max_ops of them and about max_bytes (a larger write alone). */
static size_t next_batch(struct source *s, struct wop **b)
{
    size_t n = 0, bytes = 0;
    for (struct wop *w = s->qh; w && n < s->max_ops; w = w->next) {
        if (w->done || w->sent)
            continue;
        size_t cost = w->klen * 3 + w->vlen + ETCD_OP_OVERHEAD * 3;
        if (n && bytes + cost > s->max_bytes)
            break;
        b[n++] = w;
        bytes += cost;
    }
    return n;
}

/* Run the callbacks of the decided writes at the head of the queue, in
 * order; with all set, of every decided write, skipping undecided ones. */
static void complete_decided(struct source *s, int all)
{
    struct wop **pp = &s->qh, *prev = NULL;
    while (*pp) {
        struct wop *w = *pp;
        if (!w->done) {
            if (!all)
                break;
            prev = w;
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        if (s->qt == w)
            s->qt = prev;
        s->nq--;
        /* a written key holds its granted lease; a key found existing left
         * it unused (if out of memory, the lease is just not revoked) */
        if (w->lease && s->o->with_leases && (w->out == SRC_W_CREATED || w->out == SRC_W_OVERWRITTEN))
            (void)lmap_put(&s->used, w->lease, 1);
        w->cb(w->ctx, w->token, w->out, w->msg);
        wop_free(w);
    }
}

/* The synchronous path (overwrite and plans): batch after batch. */
static int pump_sync(struct source *s, struct burry_err *e)
{
    struct wop *b[ETCD_TXN_OPS];
    int rc = 0;
    while (s->qh) {
        size_t n = next_batch(s, b);
        if (n && (rc = run_batch(s, b, n, e)) < 0)
            return rc;
        complete_decided(s, 0);
        if (burry_interrupted)
            return burry_errf(e, BURRY_EINTR, "interrupted");
    }
    return 0;
}

/* http_multi callback: keep the answer for txn_done (run by the pump). */
static void txn_answered(void *ctx, int rc, struct http_resp *resp, const struct burry_err *err)
{
    struct txn_slot *t = ctx;
    t->answered = 1;
    t->rc = rc;
    t->status = resp->status;
    if (rc < 0) {
        snprintf(t->msg, sizeof t->msg, "%s", err->msg);
        return;
    }
    t->j = json_loadb(resp->body.p, resp->body.len, 0, NULL);
    if (t->j && !json_is_object(t->j)) {
        json_decref(t->j);
        t->j = NULL;
    }
}

/* grpc callback: keep what the answer says for txn_done. A TxnResponse
 * holds header 1, succeeded 2, responses 3. */
static void txn_grpc_answered(void *ctx, int rc, struct grpc_reply *r, const struct burry_err *err)
{
    struct txn_slot *t = ctx;
    t->answered = 1;
    t->rc = rc;
    t->succeeded = 0;
    if (rc < 0) {
        snprintf(t->msg, sizeof t->msg, "%s", err->msg);
        return;
    }
    t->status = r->status;
    snprintf(t->msg, sizeof t->msg, "%s", r->msg);
    if (r->status != GRPC_OK)
        return;
    struct pb_reader rd = {(const unsigned char *)r->body.p,
                           (const unsigned char *)r->body.p + r->body.len};
    struct pb_field f;
    int more;
    while ((more = pb_next(&rd, &f)) > 0)
        if (f.num == 2 && f.wire == PB_VARINT)
            t->succeeded = f.v != 0;
    if (more < 0) {
        t->rc = BURRY_EFAIL;
        snprintf(t->msg, sizeof t->msg, "a transaction answer that is not valid protobuf");
    }
}

/* Start create-only txns while there is work and room: through gRPC
 * unless the member showed it does not answer it. */
static int start_txns(struct source *s, struct burry_err *e)
{
    char url[400];
    char *hdrs[2] = {s->auth_hdr, NULL};
    const char *ghdrs[2] = {s->token_hdr, NULL};
    int grpc = s->way != TXN_WAY_GW;
    if (now_s() < s->busy_until)
        return 0; /* see busy */
    if (grpc && !s->g) {
        if (!(s->g = grpc_new(s->o, ETCD_INFLIGHT, e)))
            return e->code ? e->code : BURRY_EFAIL;
        grpc_set_drain(s->g, 1); /* see drain_txns */
    }
    if (!grpc && !s->hm) {
        if (!(s->hm = http_multi_new(s->o, ETCD_INFLIGHT, e)))
            return e->code ? e->code : BURRY_EFAIL;
        http_multi_set_drain(s->hm, 1);
    }
    snprintf(url, sizeof url, "%s/v3/kv/txn", s->base);
    for (size_t i = 0; i < ETCD_INFLIGHT && (grpc ? grpc_room(s->g) : http_multi_room(s->hm)); i++) {
        struct txn_slot *t = &s->fl[i];
        if (t->busy)
            continue;
        size_t n = next_batch(s, t->b);
        if (!n)
            return 0;
        int rc;
        if (grpc) {
            rc = build_txn_pb(s, t->b, n, e);
            if (rc == 0)
                rc = grpc_submit(s->g, "etcd", s->base, "/etcdserverpb.KV/Txn", ghdrs, s->req.p,
                                 s->req.len, ETCD_RESP_MAX, txn_grpc_answered, t, e);
        } else {
            char want[ETCD_TXN_OPS];
            memset(want, 1, n);
            rc = build_txn(s, t->b, want, n, TXN_CREATE_BARE, e);
            struct http_req r = {.method = "POST", .url = url, .headers = (const char *const *)hdrs,
                                 .body = s->req.p, .body_len = s->req.len, .max_resp = ETCD_RESP_MAX};
            if (rc == 0)
                rc = http_multi_submit(s->hm, "etcd", &r, txn_answered, t, e);
        }
        if (rc < 0)
            return rc;
        s->txns_grpc += grpc != 0;
        s->txns_gw += grpc == 0;
        t->n = n;
        t->bytes = s->req.len;
        t->busy = 1;
        t->grpc = grpc;
        t->answered = 0;
        t->rc = 0;
        t->status = 0;
        t->j = NULL;
        for (size_t k = 0; k < n; k++)
            t->b[k]->sent = 1;
    }
    return 0;
}

/* Whether a transfer error (libcurl's words) says the member does not
 * speak HTTP/2 at all (h2c refused): no gRPC call was then read. */
static int not_http2(const char *m)
{
    return strstr(m, "Server returned nothing") || strstr(m, "Error in the HTTP2 framing layer") ||
           strstr(m, "Weird server reply") || strstr(m, "Unsupported protocol");
}

/* A gRPC txn that ended without an answer (t->rc < 0, t->msg says why).
 * 0 when its writes are to go again (left undecided), or through the
 * gateway (*no_grpc, or in rest); <0 when the run ends. */
static int txn_lost(struct source *s, struct txn_slot *t, struct wop **rest, size_t *nrest,
                    int *no_grpc, struct burry_err *e)
{
    const char *m = t->msg;
    /* interrupted, timed out, or the member is gone */
    if (t->rc == BURRY_EINTR || strstr(m, "no answer from") || strstr(m, "Couldn't connect") ||
        strstr(m, "Couldn't resolve"))
        return burry_errf(e, t->rc, "%s", m);
    for (size_t i = 0; i < t->n; i++)
        t->b[i]->unsure = 1; /* see run_batch */
    if (s->way != TXN_WAY_GRPC && not_http2(m)) {
        *no_grpc = 1;
        return 0;
    }
    /* The request went out and the connection broke: the server may have
     * applied it. Its writes go again; one found existing then counts as
     * created when it was created after this run began. */
    if (t->bytes > ETCD_GRPC_SLACK) {
        /* what a request above the member's gRPC limit gets: its stream is
         * reset unread, and libcurl (7.88) loses the status sent with it */
        if (t->n > 1)
            fewer_bytes(s, t->bytes, m);
        else /* one large write: the gateway says whether etcd takes it */
            rest[(*nrest)++] = t->b[0];
        return 0;
    }
    for (size_t i = 0; i < t->n; i++)
        if (++t->b[i]->lost >= ETCD_LOST_TRIES)
            return burry_errf(e, t->rc, "%s", m);
    blog(&s->o->log, BLOG_INFO, "etcd at %s: the answer to a transaction was lost (%s); sending it again",
         s->host, m);
    return 0;
}

/* A txn etcd refused as a whole, for reason m: for a limit of the server,
 * its writes go again in smaller txns, and when it is busy after a pause;
 * else run_batch sorts them out (rest): some key exists, an expired token,
 * a key it denies, a server-wide condition. <0 when the run ends. */
static int txn_refused(struct source *s, struct txn_slot *t, const char *m, struct wop **rest,
                       size_t *nrest, struct burry_err *e)
{
    enum refusal why = refusal_kind(m);
    if (why == REFUSED_BUSY)
        return busy(s, m, e);
    if (why == REFUSED_TOO_LARGE && t->n == 1)
        value_too_large(t->b[0], m);
    else if (why == REFUSED_TOO_LARGE)
        fewer_bytes(s, t->bytes, m);
    else if (why == REFUSED_TOO_MANY_OPS && t->n > 1)
        fewer_ops(s, t->n, m);
    else
        for (size_t i = 0; i < t->n; i++)
            rest[(*nrest)++] = t->b[i];
    return 0;
}

/* Decide the writes of an ended txn. The usual answer (all created) is
 * handled here. A txn refused wrote nothing: its writes go again (in
 * smaller txns after a limit of the server) or to run_batch, which asks
 * through the gateway. One whose answer was lost may have written: see
 * txn_lost. With salvage set (the run is ending on another error) only
 * the usual answer is used, the other writes stay undecided. */
static int txn_done(struct source *s, struct txn_slot *t, int salvage, struct burry_err *e)
{
    struct wop *rest[ETCD_TXN_OPS];
    size_t nrest = 0;
    int rc = 0;
    int no_grpc = 0;
    char tmp[40];
    for (size_t i = 0; i < t->n; i++)
        t->b[i]->sent = 0;
    int created = t->rc == 0 && (t->grpc ? t->status == GRPC_OK && t->succeeded
                                         : t->status == 200 && t->j &&
                                               json_is_true(json_object_get(t->j, "succeeded")));
    if (created) {
        for (size_t i = 0; i < t->n; i++)
            wop_decide(t->b[i], SRC_W_CREATED, NULL);
        if (t->grpc && s->way == TXN_WAY_TRY_GRPC)
            s->way = TXN_WAY_GRPC;
        s->busy_tries = 0;
    } else if (salvage) {
    } else if (t->rc < 0) {
        rc = t->grpc ? txn_lost(s, t, rest, &nrest, &no_grpc, e) : burry_errf(e, t->rc, "%s", t->msg);
    } else if (t->grpc && (t->status < 0 || t->status == GRPC_UNIMPLEMENTED) &&
               s->way != TXN_WAY_GRPC) {
        no_grpc = 1; /* an answer, but not gRPC: nothing was written */
    } else if (!t->grpc && !t->j) {
        rc = burry_errf(e, BURRY_EFAIL,
                        "etcd at %s sent an answer to /v3/kv/txn that is not JSON (HTTP status "
                        "%ld); is this an etcd v3 server?", s->host, t->status);
    } else {
        /* through the gateway, the bare txn does not say which key exists */
        rc = txn_refused(s, t, t->grpc ? t->msg : gw_msg(t->j, t->status, tmp, sizeof tmp), rest,
                         &nrest, e);
    }
    if (no_grpc && s->way != TXN_WAY_GW) {
        /* its writes, still undecided, go again through the gateway */
        s->way = TXN_WAY_GW;
        blog(&s->o->log, BLOG_INFO,
             "etcd at %s does not answer gRPC transactions; writing through its JSON gateway",
             s->host);
    }
    if (rc == 0 && nrest)
        rc = run_batch(s, rest, nrest, e);
    json_decref(t->j);
    t->j = NULL;
    t->busy = t->answered = 0;
    t->n = 0;
    return rc;
}

/* Create-only txns in flight, either way. */
static size_t txns_inflight(const struct source *s)
{
    return (s->g ? grpc_inflight(s->g) : 0) + (s->hm ? http_multi_inflight(s->hm) : 0);
}

/* Move the txns in flight for up to timeout_ms; both handles only while
 * the member is found not to answer gRPC. */
static int pump_txns(struct source *s, int timeout_ms, struct burry_err *e)
{
    size_t ng = s->g ? grpc_inflight(s->g) : 0, nh = s->hm ? http_multi_inflight(s->hm) : 0;
    if (ng && nh) {
        int rg = grpc_pump(s->g, 0, e);
        int rh = rg < 0 ? rg : http_multi_pump(s->hm, rg ? 0 : 5, e);
        return rh < 0 ? rh : rg + rh;
    }
    return ng ? grpc_pump(s->g, timeout_ms, e) : nh ? http_multi_pump(s->hm, timeout_ms, e) : 0;
}

/* After a fatal error or an interrupt: wait for the txns still in flight
 * (each bounded by the request timeout; the handles were told not to cut
 * them short on an interrupt, whose outcome would then be unknown) and
 * record what they did, so that the summary counts every key written. */
static void drain_txns(struct source *s)
{
    struct burry_err e2 = {0};
    while (txns_inflight(s) > 0)
        if (pump_txns(s, 1000, &e2) < 0)
            break;
    for (size_t i = 0; i < ETCD_INFLIGHT; i++)
        if (s->fl[i].busy && s->fl[i].answered)
            txn_done(s, &s->fl[i], 1, &e2);
}

/* Create-only: keep up to ETCD_INFLIGHT txns in flight, wait up to
 * timeout_ms for answers, then run the callbacks of every decided write.
 * Keys of different batches are distinct, so neither the order of the
 * txns nor that of the callbacks between batches matters; completing a
 * batch as soon as it is answered lets the restorer refill its window
 * without waiting for the slowest txn. */
static int pump_async(struct source *s, int timeout_ms, struct burry_err *e)
{
    /* once interrupted, nothing new starts */
    int rc = burry_interrupted ? burry_errf(e, BURRY_EINTR, "interrupted") : start_txns(s, e);
    if (rc == 0 && txns_inflight(s) > 0)
        rc = pump_txns(s, timeout_ms, e);
    else if (rc == 0)
        nap_until(s->busy_until, timeout_ms); /* nothing in flight while etcd is busy */
    for (size_t i = 0; rc >= 0 && i < ETCD_INFLIGHT; i++)
        if (s->fl[i].busy && s->fl[i].answered)
            rc = txn_done(s, &s->fl[i], 0, e);
    if (rc >= 0 && !burry_interrupted)
        rc = start_txns(s, e); /* refill before the callbacks run */
    if (rc >= 0 && burry_interrupted)
        rc = burry_errf(e, BURRY_EINTR, "interrupted");
    if (rc < 0) /* also when interrupted: the txns in flight take milliseconds */
        drain_txns(s);
    complete_decided(s, 1);
    return rc < 0 ? rc : 0;
}

/* Leases are granted before their transactions, so a create-only restore
 * grants some for keys it then finds existing: once every write is
 * decided, those are revoked rather than left to run out on the server. */
static void revoke_unused(struct source *s)
{
    if (!s->ending || s->nq || s->revoked)
        return;
    s->revoked = 1;
    unsigned long long revoked = 0, kept = 0;
    for (size_t i = 0; i < s->granted.cap; i++) {
        if (!s->granted.k[i] || lmap_find(&s->used, s->granted.k[i]))
            continue;
        if (kept) { /* after one failure, no more tries (each may take --timeout) */
            kept++;
            continue;
        }
        char body[64];
        int n = snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", s->granted.v[i]);
        json_t *j = NULL;
        long status;
        struct burry_err e2 = {0};
        if (call(s, "/v3/lease/revoke", body, (size_t)n, &j, &status, &e2) == 0 &&
            answer_ok(s, j, status, "revoke a lease", &e2) == 0)
            revoked++;
        else
            kept++;
        json_decref(j);
    }
    if (revoked)
        blog(&s->o->log, BLOG_INFO, "revoked %llu leases granted for keys that turned out to exist already",
             revoked);
    if (kept)
        blog(&s->o->log, BLOG_WARN, "could not revoke %llu unused leases this restore granted; they end "
             "with their TTL", kept);
}

static int etcd_pump(struct source *s, int timeout_ms, struct burry_err *e)
{
    int rc = s->mode != SRC_WRITE_CREATE ? pump_sync(s, e) : pump_async(s, timeout_ms, e);
    if (rc == 0)
        revoke_unused(s);
    return rc;
}

static int etcd_write_end(struct source *s, struct burry_err *e)
{
    (void)e;
    s->ending = 1;
    revoke_unused(s); /* now, if every write is decided already */
    if (s->unleased)
        blog(&s->o->log, BLOG_INFO,
             "%llu keys had a lease in the snapshot and are restored without one "
             "(--with-leases grants fresh leases with the recorded TTLs)", s->unleased);
    return 0;
}

static size_t etcd_pending(struct source *s)
{
    return s->nq;
}

const struct source_ops source_etcd = {
    .scheme = "etcd",
    .https_form = 1,
    .service = "etcd",
    .open = etcd_open,
    .close = etcd_close,
    .describe = etcd_describe,
    .default_name = etcd_default_name,
    .user_path = etcd_user_path,
    .restore_scope = etcd_restore_scope,
    .flat_keys = 1,
    .manifest_info = etcd_manifest_info,
    .scan = etcd_scan,
    .write_submit = etcd_write_submit,
    .write_end = etcd_write_end,
    .pump = etcd_pump,
    .pending = etcd_pending,
};
