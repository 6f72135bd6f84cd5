/* The ZooKeeper source (zk://HOST:PORT[,HOST:PORT...][/chroot]): reads and
 * creates znodes through the single-threaded C client, driven from our own
 * poll loop so that every request is pipelined on one session and every
 * completion runs inside pump(). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <zookeeper/zookeeper.h>

#include "buf.h"
#include "catalog.h"
#include "names.h"
#include "registry.h"
#include "source.h"

#define ZK_MIN_SESSION_MS 4000
/* Responses handled per pump before the caller gets control back to refill
 * the pipeline; each one costs two recv() calls in the client. */
#define ZK_DRAIN_MAX 1024
/* Values from this size on get a jute.maxbuffer hint when the connection
 * drops while they are written. */
#define ZK_BIG_VALUE (1000 * 1000)
#define ZK_NOT_AUTHORIZED_READ "not authorized to read (check --auth)"

/* ---- URL ---------------------------------------------------------------- */

struct zkurl {
    char *hosts;   /* host list as the C client wants it (IPv6 brackets removed) */
    char *shown;   /* host list as written, for messages */
    char *chroot;  /* NULL, or "/a/b" */
    char *host1;   /* first host, brackets removed */
    char port1[6];
};

static void zkurl_free(struct zkurl *u)
{
    free(u->hosts);
    free(u->shown);
    free(u->chroot);
    free(u->host1);
    memset(u, 0, sizeof *u);
}

static int host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_';
}

/* Parse one "host:port" item [a, b) of the host list into the buffers.
 * Returns NULL or why it is malformed (static text, or text in whybuf). */
static const char *parse_hostport(const char *a, const char *b, struct zkurl *u, struct buf *hosts,
                                  char *whybuf, size_t whylen)
{
    const char *h, *he, *p;
    if (a == b)
        return "empty host in the host list";
    if (*a == '[') {
        h = a + 1;
        he = memchr(h, ']', (size_t)(b - h));
        if (!he || he == h)
            return "unterminated or empty '[' in a host";
        for (const char *q = h; q < he; q++)
            if (!(isxdigit((unsigned char)*q) || *q == ':' || *q == '.'))
                return "invalid character in a bracketed IPv6 address";
        if (he + 1 == b || he[1] != ':')
            return "missing ':PORT' after a bracketed IPv6 address";
        p = he + 2;
    } else {
        const char *colon = NULL;
        for (const char *q = a; q < b; q++)
            if (*q == ':')
                colon = q;
        if (!colon) {
            snprintf(whybuf, whylen, "missing ':PORT' in '%.*s'", (int)(b - a), a);
            return whybuf;
        }
        h = a;
        he = colon;
        if (h == he)
            return "empty host name before ':PORT'";
        for (const char *q = h; q < he; q++)
            if (!host_char((unsigned char)*q) && *q != ':') {
                snprintf(whybuf, whylen, "invalid character '%c' in host '%.*s'", *q,
                         (int)(he - h), h);
                return whybuf;
            }
        p = colon + 1;
    }
    size_t plen = (size_t)(b - p);
    long port = 0;
    if (plen == 0 || plen > 5) {
        snprintf(whybuf, whylen, "invalid port '%.*s' (expected 1-65535)", (int)plen, p);
        return whybuf;
    }
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9') {
            snprintf(whybuf, whylen, "invalid port '%.*s' (expected 1-65535)", (int)plen, p);
            return whybuf;
        }
        port = port * 10 + (p[i] - '0');
    }
    if (port < 1 || port > 65535) {
        snprintf(whybuf, whylen, "invalid port '%.*s' (expected 1-65535)", (int)plen, p);
        return whybuf;
    }
    if (hosts->len && buf_putc(hosts, ',') < 0)
        return "out of memory";
    if (buf_append(hosts, h, (size_t)(he - h)) < 0 || buf_printf(hosts, ":%ld", port) < 0)
        return "out of memory";
    if (!u->host1) {
        u->host1 = strndup(h, (size_t)(he - h));
        if (!u->host1)
            return "out of memory";
        snprintf(u->port1, sizeof u->port1, "%ld", port);
    }
    return NULL;
}

static const char *check_chroot(const char *c)
{
    size_t n = strlen(c);
    if (c[n - 1] == '/')
        return "the chroot must not end with '/'";
    for (const char *seg = c + 1;;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0)
            return "empty segment in the chroot";
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return "'.' and '..' are not allowed in the chroot";
        if (!end)
            break;
        seg = end + 1;
    }
    return NULL;
}

static int zkurl_parse(const char *url, struct zkurl *u, struct burry_err *e)
{
    memset(u, 0, sizeof *u);
    char whybuf[160];
    const char *why = NULL;
    struct buf hosts;
    buf_init(&hosts, 0);

    if (strncmp(url, "zk://", 5) != 0) {
        why = "expected zk://HOST:PORT[,HOST:PORT...][/chroot]";
        goto out;
    }
    const char *auth = url + 5;
    const char *slash = strchr(auth, '/');
    const char *aend = slash ? slash : auth + strlen(auth);
    if (memchr(auth, '@', (size_t)(aend - auth))) {
        /* Never echo the URL: the part before '@' may hold a password. */
        buf_free(&hosts);
        return burry_errf(e, BURRY_EUSAGE,
                          "malformed ZooKeeper URL: credentials in the URL are not supported "
                          "(pass them with --auth)");
    }
    if (auth == aend) {
        why = "no host";
        goto out;
    }
    for (const char *a = auth; a <= aend;) {
        const char *b = memchr(a, ',', (size_t)(aend - a));
        if (!b)
            b = aend;
        if ((why = parse_hostport(a, b, u, &hosts, whybuf, sizeof whybuf)) != NULL)
            goto out;
        a = b + 1;
    }
    u->shown = strndup(auth, (size_t)(aend - auth));
    if (slash && strcmp(slash, "/") != 0) {
        if ((why = check_chroot(slash)) != NULL)
            goto out;
        u->chroot = strdup(slash);
        if (!u->chroot)
            why = "out of memory";
    }
    u->hosts = buf_take(&hosts, NULL);
    if (!u->hosts || !u->shown)
        why = "out of memory";
out:
    buf_free(&hosts);
    if (why) {
        zkurl_free(u);
        return burry_errf(e, BURRY_EUSAGE, "malformed ZooKeeper URL '%s': %s", url, why);
    }
    return 0;
}

/* ---- the source --------------------------------------------------------- */

struct wdefer { /* a write outcome decided without asking the server */
    struct wdefer *next;
    src_write_cb cb;
    void *ctx, *token;
    enum src_write_outcome out;
    char msg[];
};

struct source {
    zhandle_t *zh;
    const struct burry_opts *o;
    struct zkurl u;
    size_t npending;         /* submitted requests whose callbacks have not run */
    long long last_answer;   /* ms, monotonic: last completion from the client */
    int closing;             /* completions only free their state */
    int dead;                /* a fatal error is recorded in err */
    struct burry_err err;
    int auth_done, auth_rc;
    struct wdefer *dq_head, *dq_tail;
    struct zwrite *held;     /* innermost node whose final ACL waits for its subtree */
    int hold_auth;           /* the session carries burry's throwaway digest identity */
    const char **kid;        /* scratch for handing children to callbacks */
    size_t *kidlen;
    size_t kidcap;
    int session_ms;          /* the session timeout asked for */
    long long io_back;       /* ms: the client's last poll returned (0: none yet) */
    long long away_ms;       /* the last long stretch away from the client (see zk_io) */
    long long away_end;      /* ms: when it ended */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Why a session or connection may have been lost on burry's side: it was
 * itself kept from the client (writing to a slow store, or the process not
 * running at all) long enough for pings to be missed, and not long ago. "" when
 * not; else the words to add to the message, in buf. */
static const char *away_hint(struct source *s, char *buf, size_t n)
{
    if (!s->away_end || s->away_ms * 3 < s->session_ms || now_ms() - s->away_end > 2LL * s->session_ms)
        return "";
    snprintf(buf, n,
             " (burry itself was held up for %.1f s just before, and the session allows %d s without "
             "a word: the store or this machine was that slow; a larger --timeout gives the session "
             "more time)",
             s->away_ms / 1000.0, s->session_ms / 1000);
    return buf;
}

/* burry spent ms away from the client, up to end: remembered for
 * away_hint when long enough to cost the session its pings. */
static void held_up(struct source *s, long long ms, long long end)
{
    if (ms * 3 >= s->session_ms) {
        s->away_ms = ms;
        s->away_end = end;
    }
}

static void zk_fatal(struct source *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void zk_fatal(struct source *s, int code, const char *fmt, ...)
{
    if (s->dead)
        return; /* keep the first cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err.msg, sizeof s->err.msg, fmt, ap);
    va_end(ap);
    s->err.code = code;
    s->dead = 1;
}

static int zk_dead_err(struct source *s, struct burry_err *e)
{
    return burry_errf(e, s->err.code ? s->err.code : BURRY_EFAIL, "%s", s->err.msg);
}

/* Display form of a canonical path for messages, malloc'ed; NULL when out
 * of memory. */
static char *disp(const char *path, size_t len)
{
    struct buf b;
    buf_init(&b, 4096);
    if (len == 0 ? buf_puts(&b, "/") < 0 : names_display(path, len, &b) < 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* The client's path ("/" for the root) back to a canonical one. */
static size_t canon_len(const char *zpath)
{
    return strcmp(zpath, "/") == 0 ? 0 : strlen(zpath);
}

static int conn_error(int rc)
{
    return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED ||
           rc == ZCLOSING || rc == ZINVALIDSTATE || rc == ZSESSIONMOVED || rc == ZAUTHFAILED;
}

/* Which result of several requests for one node decides its fate. */
static int rc_rank(int rc)
{
    if (rc == ZOK)
        return 0;
    if (rc == ZNOAUTH)
        return 1;
    if (rc == ZNONODE)
        return 2;
    if (conn_error(rc))
        return 4;
    return 3;
}

static void rc_merge(int *acc, int rc)
{
    if (rc_rank(rc) > rc_rank(*acc))
        *acc = rc;
}

static int session_over(struct source *s)
{
    int st = zoo_state(s->zh);
    return st == ZOO_EXPIRED_SESSION_STATE || st == ZOO_AUTH_FAILED_STATE;
}

static void session_fatal(struct source *s)
{
    int st = zoo_state(s->zh);
    if (st == ZOO_AUTH_FAILED_STATE)
        zk_fatal(s, BURRY_EFAIL, "authentication to ZooKeeper at %s failed; the session is closed",
                 s->u.shown);
    else {
        char hint[320];
        zk_fatal(s, BURRY_EFAIL, "ZooKeeper session expired at %s%s", s->u.shown, away_hint(s, hint, sizeof hint));
    }
}

/* A request that ended with a connection-level error kills the session. */
static void request_fatal(struct source *s, int rc, const char *doing, const char *zpath,
                          const char *hint)
{
    char *d = disp(zpath, canon_len(zpath)), away[320];
    if (rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE || rc == ZAUTHFAILED)
        session_fatal(s);
    else if (conn_error(rc))
        zk_fatal(s, BURRY_EFAIL, "lost the connection to ZooKeeper at %s while %s '%s'%s%s", s->u.shown,
                 doing, d ? d : zpath, hint ? hint : "", away_hint(s, away, sizeof away));
    else
        zk_fatal(s, BURRY_EFAIL, "%s '%s' on ZooKeeper at %s failed: %s", doing, d ? d : zpath,
                 s->u.shown, zerror(rc));
    free(d);
}

static void zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)path;
    (void)ctx;
    struct source *s = (struct source *)zoo_get_context(zh);
    if (!s || type != ZOO_SESSION_EVENT)
        return;
    if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE)
        session_fatal(s);
    else if (state == ZOO_CONNECTING_STATE)
        blog(&s->o->log, BLOG_DEBUG, "connection to ZooKeeper at %s lost, reconnecting",
             s->u.shown);
}

/* The client's own log lines: dropped, or on stderr when debugging. The
 * callback has no context, so it cannot go through the program's logger. */
static void zk_log_drop(const char *msg)
{
    (void)msg;
}

static void zk_log_stderr(const char *msg)
{
    fprintf(stderr, "zookeeper: %s", msg); /* the client's lines end in '\n' */
}

/* One round of the client's loop: interest, poll, process (then drain what
 * the socket already holds). Completions run in here. */
static void zk_io(struct source *s, int timeout_ms)
{
    /* the time since the last poll returned was spent away from the client
     * (completions, and the engine writing what they read to the store) */
    long long t = now_ms();
    if (s->io_back)
        held_up(s, t - s->io_back, t);
    int fd = -1, interest = 0;
    struct timeval tv = { 0, 0 };
    zookeeper_interest(s->zh, &fd, &interest, &tv);
    if (session_over(s)) {
        session_fatal(s);
        return;
    }
    long long wait = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (wait > timeout_ms)
        wait = timeout_ms;
    if (wait < 0)
        wait = 0;
    struct pollfd p = { .fd = fd, .events = 0, .revents = 0 };
    if (fd >= 0) {
        if (interest & ZOOKEEPER_READ)
            p.events |= POLLIN;
        if (interest & ZOOKEEPER_WRITE)
            p.events |= POLLOUT;
    }
    int n = poll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, (int)wait);
    s->io_back = now_ms();
    /* a poll that returns far later than it was asked to: the process
     * itself did not run (a stalled or stopped machine) */
    held_up(s, s->io_back - t - wait, s->io_back);
    if (n < 0 && errno != EINTR) {
        zk_fatal(s, BURRY_EFAIL, "waiting for ZooKeeper at %s failed: %s", s->u.shown,
                 strerror(errno));
        return;
    }
    int ev = 0;
    if (n > 0) {
        if (p.revents & (POLLIN | POLLHUP | POLLERR))
            ev |= ZOOKEEPER_READ;
        if (p.revents & POLLOUT)
            ev |= ZOOKEEPER_WRITE;
    }
    /* Without a socket (between connection attempts) the client answers
     * ZINVALIDSTATE, which only means "nothing to do". */
    if (fd >= 0) {
        int rc = zookeeper_process(s->zh, ev);
        for (int i = 0; rc == ZOK && (ev & ZOOKEEPER_READ) && i < ZK_DRAIN_MAX && !s->dead; i++)
            rc = zookeeper_process(s->zh, ZOOKEEPER_READ);
    }
    if (session_over(s))
        session_fatal(s);
}

/* Why a TCP connection to host:port fails, to explain a failed session. */
static void probe(const char *host, const char *port, char *out, size_t n)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        snprintf(out, n, "%s", g == EAI_NONAME || g == EAI_AGAIN || g == EAI_FAIL
#ifdef EAI_NODATA
                                   || g == EAI_NODATA
#endif
                               ? "host not found"
                               : gai_strerror(g));
        return;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(out, n, "%s", strerror(errno));
        freeaddrinfo(res);
        return;
    }
    int err = 0;
    if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
            int r = poll(&p, 1, 2000);
            if (r == 0) {
                err = ETIMEDOUT;
            } else if (r < 0) {
                err = errno;
            } else {
                socklen_t l = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                    err = errno;
            }
        }
    }
    close(fd);
    freeaddrinfo(res);
    if (err == 0)
        snprintf(out, n, "the port accepts connections but no ZooKeeper session was established");
    else if (err == ECONNREFUSED)
        snprintf(out, n, "connection refused");
    else if (err == ETIMEDOUT)
        snprintf(out, n, "timed out");
    else
        snprintf(out, n, "%s", strerror(err));
}

static void auth_cb(int rc, const void *data)
{
    struct source *s = (struct source *)data;
    if (s->closing)
        return;
    s->auth_rc = rc;
    s->auth_done = 1;
}

static void zk_close(struct source *s);
static void held_drop_all(struct source *s);

static int zk_open(struct source **out, const char *url, const struct burry_opts *o,
                   struct burry_err *e)
{
    *out = NULL;
    struct source *s = calloc(1, sizeof *s);
    if (!s)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    s->o = o;
    int rc = zkurl_parse(url, &s->u, e);
    if (rc) {
        free(s);
        return rc;
    }
    int tmo = o->timeout_s > 0 ? o->timeout_s : 10;
    int session_ms = tmo * 1000 > ZK_MIN_SESSION_MS ? tmo * 1000 : ZK_MIN_SESSION_MS;
    s->session_ms = session_ms;
    char reason[160];

    struct buf conn;
    buf_init(&conn, 0);
    if (buf_puts(&conn, s->u.hosts) < 0 || (s->u.chroot && buf_puts(&conn, s->u.chroot) < 0)) {
        buf_free(&conn);
        zk_close(s);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    errno = 0;
    s->zh = zookeeper_init2(conn.p, zk_watcher, session_ms, NULL, s, ZOO_NO_LOG_CLIENTENV,
                            o->log.level >= BLOG_DEBUG ? zk_log_stderr : zk_log_drop);
    int init_errno = errno;
    buf_free(&conn);
    if (!s->zh) {
        probe(s->u.host1, s->u.port1, reason, sizeof reason);
        if (strcmp(reason, "host not found") == 0)
            rc = burry_errf(e, BURRY_EFAIL, "cannot reach ZooKeeper at %s (host not found)",
                            s->u.shown);
        else
            rc = burry_errf(e, BURRY_EFAIL, "cannot start a ZooKeeper session for %s: %s",
                            s->u.shown, strerror(init_errno ? init_errno : EINVAL));
        zk_close(s);
        return rc;
    }

    long long deadline = now_ms() + (long long)tmo * 1000;
    while (zoo_state(s->zh) != ZOO_CONNECTED_STATE && !s->dead) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        if (burry_interrupted) {
            zk_close(s);
            return burry_errf(e, BURRY_EINTR, "interrupted");
        }
        zk_io(s, left < 100 ? (int)left : 100);
    }
    if (zoo_state(s->zh) != ZOO_CONNECTED_STATE) {
        if (s->dead) {
            rc = zk_dead_err(s, e);
        } else {
            probe(s->u.host1, s->u.port1, reason, sizeof reason);
            if (strchr(s->u.hosts, ','))
                rc = burry_errf(e, BURRY_EFAIL,
                                "cannot reach ZooKeeper at %s after %ds (first host %s:%s: %s)",
                                s->u.shown, tmo, s->u.host1, s->u.port1, reason);
            else
                rc = burry_errf(e, BURRY_EFAIL, "cannot reach ZooKeeper at %s after %ds (%s)",
                                s->u.shown, tmo, reason);
        }
        zk_close(s);
        return rc;
    }
    const clientid_t *cid = zoo_client_id(s->zh);
    blog(&o->log, BLOG_DEBUG, "connected to ZooKeeper at %s (session 0x%llx, timeout %d ms)",
         s->u.shown, cid ? (unsigned long long)cid->client_id : 0ULL, zoo_recv_timeout(s->zh));

    for (int i = 0; i < o->nauth; i++) {
        const char *scheme = o->auth[i].scheme ? o->auth[i].scheme : "digest";
        const char *secret = o->auth[i].secret ? o->auth[i].secret : "";
        s->auth_done = 0;
        s->auth_rc = ZOK;
        rc = zoo_add_auth(s->zh, scheme, secret, (int)strlen(secret), auth_cb, s);
        deadline = now_ms() + (long long)tmo * 1000;
        while (rc == ZOK && !s->auth_done && !s->dead) {
            long long left = deadline - now_ms();
            if (left <= 0) {
                rc = ZOPERATIONTIMEOUT;
                break;
            }
            if (burry_interrupted) {
                zk_close(s);
                return burry_errf(e, BURRY_EINTR, "interrupted");
            }
            zk_io(s, left < 100 ? (int)left : 100);
        }
        if (rc == ZOK && s->auth_done)
            rc = s->auth_rc;
        if (rc == ZOK && s->dead)
            rc = ZAUTHFAILED;
        if (rc != ZOK) {
            /* The secret never goes into a message. */
            burry_errf(e, BURRY_EFAIL, "authentication to ZooKeeper at %s failed (scheme '%s'): %s",
                       s->u.shown, scheme, zerror(rc));
            zk_close(s);
            return BURRY_EFAIL;
        }
    }
    s->last_answer = now_ms();
    *out = s;
    return 0;
}

static void zk_close(struct source *s)
{
    if (!s)
        return;
    s->closing = 1;
    held_drop_all(s);
    if (s->zh)
        zookeeper_close(s->zh); /* runs outstanding completions, which only free */
    while (s->dq_head) {
        struct wdefer *d = s->dq_head;
        s->dq_head = d->next;
        free(d);
    }
    free(s->kid);
    free(s->kidlen);
    zkurl_free(&s->u);
    free(s);
}

/* ---- URL-level helpers -------------------------------------------------- */

static char *zk_describe(const char *url)
{
    /* ZooKeeper URLs carry no secrets; open() refuses any "user@" part, and
     * it is cut here too in case describe() sees a URL open() refused. */
    const char *auth = strncmp(url, "zk://", 5) == 0 ? url + 5 : NULL;
    if (auth) {
        const char *slash = strchr(auth, '/');
        const char *at = memchr(auth, '@', slash ? (size_t)(slash - auth) : strlen(auth));
        if (at) {
            size_t n = strlen(at + 1);
            char *r = malloc(5 + n + 1);
            if (r) {
                memcpy(r, "zk://", 5);
                memcpy(r + 5, at + 1, n + 1);
            }
            return r;
        }
    }
    return strdup(url);
}

static char *zk_default_name(const char *url)
{
    struct zkurl u;
    struct burry_err e = { 0, "" };
    if (zkurl_parse(url, &u, &e) != 0)
        return strdup("zk");
    char *r = catalog_default_name("zk", u.host1, u.port1, u.chroot ? u.chroot + 1 : NULL,
                                   u.chroot ? strlen(u.chroot + 1) : 0);
    zkurl_free(&u);
    return r;
}

static int zk_user_path(const char *user, char **out, size_t *out_len, struct burry_err *e)
{
    const char *why = NULL;
    size_t n = strlen(user);
    if (n == 0 || user[0] != '/')
        why = "a ZooKeeper path starts with '/'";
    else if (n > 1 && user[n - 1] == '/')
        why = "a ZooKeeper path does not end with '/'";
    for (const char *seg = user + 1; !why && n > 1; seg = strchr(seg, '/') + 1) {
        size_t len = strcspn(seg, "/");
        if (len == 0)
            why = "empty segment";
        else if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            why = "'.' and '..' are not ZooKeeper names";
        if (!seg[len])
            break;
    }
    if (why)
        return burry_errf(e, BURRY_EUSAGE, "invalid ZooKeeper path '%s': %s", user, why);
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

static json_t *zk_manifest_info(struct source *s)
{
    return json_pack("{s:s}", "chroot", s->u.chroot ? s->u.chroot : "/");
}

/* ---- reading ------------------------------------------------------------ */

static json_t *acl_to_json(const struct ACL_vector *acl)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (int i = 0; acl && i < acl->count; i++) {
        const struct ACL *x = &acl->data[i];
        char perms[6];
        size_t k = 0;
        if (x->perms & ZOO_PERM_CREATE)
            perms[k++] = 'c';
        if (x->perms & ZOO_PERM_DELETE)
            perms[k++] = 'd';
        if (x->perms & ZOO_PERM_READ)
            perms[k++] = 'r';
        if (x->perms & ZOO_PERM_WRITE)
            perms[k++] = 'w';
        if (x->perms & ZOO_PERM_ADMIN)
            perms[k++] = 'a';
        perms[k] = 0;
        /* The *_new calls take their value even when they fail, so the
         * entry is filled first and appended last. */
        json_t *o = json_object();
        const char *scheme = x->id.scheme ? x->id.scheme : "", *id = x->id.id ? x->id.id : "";
        int bad = json_object_set_new_nocheck(o, "scheme", json_string(scheme)) < 0;
        bad |= json_object_set_new_nocheck(o, "id", json_string(id)) < 0;
        bad |= json_object_set_new_nocheck(o, "perms", json_string(perms)) < 0;
        if (bad)
            json_decref(o);
        if (bad || json_array_append_new(a, o) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *stat_to_json(const struct Stat *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    struct { const char *k; json_int_t v; } f[] = {
        { "czxid", st->czxid },       { "mzxid", st->mzxid },
        { "pzxid", st->pzxid },       { "ctime", st->ctime },
        { "mtime", st->mtime },       { "version", st->version },
        { "cversion", st->cversion }, { "aversion", st->aversion },
        { "dataLength", st->dataLength }, { "numChildren", st->numChildren },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (json_object_set_new_nocheck(o, f[i].k, json_integer(f[i].v)) < 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

struct zread {
    struct source *s;
    src_read_cb cb;          /* NULL: orphaned (submit failed half way) */
    void *ctx, *token;
    int waiting;             /* client completions still to come */
    int rc;                  /* the deciding result so far (rc_merge) */
    int kids_asked;
    int value_kept;          /* value copied because more answers were due */
    int value_len;           /* -1: null data */
    char *value;
    json_t *acl;
    struct Stat stat;
    char path[];             /* the client's path: "/" for the root */
};

static int kids_reserve(struct source *s, size_t n)
{
    if (n <= s->kidcap)
        return 0;
    size_t cap = s->kidcap ? s->kidcap : 64;
    while (cap < n)
        cap *= 2;
    const char **k = realloc(s->kid, cap * sizeof *k);
    if (!k)
        return -1;
    s->kid = k;
    size_t *l = realloc(s->kidlen, cap * sizeof *l);
    if (!l)
        return -1;
    s->kidlen = l;
    s->kidcap = cap;
    return 0;
}

/* Every answer for the node is in: hand it to the caller and forget it. */
static void read_finish(struct zread *r, const char *value, int value_len,
                        const struct String_vector *kids)
{
    struct source *s = r->s;
    if (r->cb)
        s->npending--;
    if (s->closing || !r->cb)
        goto out;
    struct src_read rd;
    memset(&rd, 0, sizeof rd);
    if (r->rc == ZNONODE) {
        rd.status = SRC_READ_GONE;
    } else if (r->rc == ZNOAUTH) {
        rd.status = SRC_READ_DENIED;
        rd.reason = ZK_NOT_AUTHORIZED_READ;
    } else if (r->rc != ZOK) {
        request_fatal(s, r->rc, "reading", r->path, NULL);
        goto out;
    } else if (r->stat.ephemeralOwner != 0) {
        rd.status = SRC_READ_SKIP;
        rd.reason = "ephemeral";
    } else {
        if (r->value_kept) {
            value = r->value;
            value_len = r->value_len;
        }
        rd.status = SRC_READ_OK;
        rd.has_value = value_len >= 0;
        rd.value = rd.has_value ? (value ? value : "") : NULL;
        rd.value_len = rd.has_value ? (size_t)value_len : 0;
        /* set_new takes its value even when it fails, NULLs included. */
        json_t *acl = r->acl;
        r->acl = NULL;
        rd.attrs = json_object();
        int bad = json_object_set_new_nocheck(rd.attrs, "type", json_string("persistent")) < 0;
        bad |= json_object_set_new_nocheck(rd.attrs, "acl", acl) < 0;
        bad |= json_object_set_new_nocheck(rd.attrs, "stat", stat_to_json(&r->stat)) < 0;
        if (bad) {
            json_decref(rd.attrs);
            zk_fatal(s, BURRY_EFAIL, "out of memory");
            goto out;
        }
        if (kids && kids->count > 0) {
            if (kids_reserve(s, (size_t)kids->count) < 0) {
                json_decref(rd.attrs);
                zk_fatal(s, BURRY_EFAIL, "out of memory");
                goto out;
            }
            /* ZooKeeper's own /zookeeper is not user data. */
            int skip_zk = r->path[1] == 0 && !s->u.chroot;
            size_t k = 0;
            for (int i = 0; i < kids->count; i++) {
                if (skip_zk && strcmp(kids->data[i], "zookeeper") == 0)
                    continue;
                s->kid[k] = kids->data[i];
                s->kidlen[k] = strlen(kids->data[i]);
                k++;
            }
            rd.children = s->kid;
            rd.child_len = s->kidlen;
            rd.nchildren = k;
        }
    }
    r->cb(r->ctx, r->token, &rd);
out:
    json_decref(r->acl);
    free(r->value);
    free(r);
}

static int keep_value(struct zread *r, const char *value, int value_len)
{
    r->value_kept = 1;
    r->value_len = value_len;
    if (value_len < 0)
        return 0;
    r->value = malloc(value_len ? (size_t)value_len : 1);
    if (!r->value)
        return -1;
    if (value_len)
        memcpy(r->value, value, (size_t)value_len);
    return 0;
}

static void read_kids_cb(int rc, const struct String_vector *kids, const void *data)
{
    struct zread *r = (struct zread *)data;
    r->s->last_answer = now_ms();
    r->waiting--;
    rc_merge(&r->rc, rc);
    if (r->waiting == 0)
        read_finish(r, NULL, -1, rc == ZOK ? kids : NULL);
}

static void read_acl_cb(int rc, struct ACL_vector *acl, struct Stat *stat, const void *data)
{
    (void)stat;
    struct zread *r = (struct zread *)data;
    r->s->last_answer = now_ms();
    r->waiting--;
    rc_merge(&r->rc, rc);
    if (rc == ZOK && !r->s->closing && !(r->acl = acl_to_json(acl)))
        rc_merge(&r->rc, ZSYSTEMERROR);
    if (r->waiting == 0)
        read_finish(r, NULL, -1, NULL);
}

static void read_data_cb(int rc, const char *value, int value_len, const struct Stat *stat,
                         const void *data)
{
    struct zread *r = (struct zread *)data;
    struct source *s = r->s;
    s->last_answer = now_ms();
    r->waiting--;
    rc_merge(&r->rc, rc);
    if (rc == ZOK)
        r->stat = *stat;
    if (rc == ZOK && r->rc == ZOK && !s->closing && r->cb && r->stat.ephemeralOwner == 0 &&
        r->stat.numChildren > 0 && !r->kids_asked) {
        /* Only nodes that have children cost a third request. */
        r->kids_asked = 1;
        if (keep_value(r, value, value_len) < 0) {
            rc_merge(&r->rc, ZSYSTEMERROR);
        } else {
            int zrc = zoo_aget_children(s->zh, r->path, 0, read_kids_cb, r);
            if (zrc == ZOK)
                r->waiting++;
            else
                rc_merge(&r->rc, zrc);
        }
    } else if (r->waiting > 0 && rc == ZOK && !r->value_kept) {
        if (keep_value(r, value, value_len) < 0)
            rc_merge(&r->rc, ZSYSTEMERROR);
    }
    if (r->waiting == 0)
        read_finish(r, value, value_len, NULL);
}

/* A request the client refused to queue. */
static int submit_err(struct source *s, int zrc, const char *doing, const char *path, size_t len,
                      struct burry_err *e)
{
    if (zrc == ZINVALIDSTATE) {
        if (!s->dead)
            session_fatal(s);
        return zk_dead_err(s, e);
    }
    char *d = disp(path, len);
    int rc = burry_errf(e, BURRY_EFAIL, "cannot send a request for %s '%s' to ZooKeeper at %s: %s",
                        doing, d ? d : "?", s->u.shown, zerror(zrc));
    free(d);
    return rc;
}

static void start_clock(struct source *s)
{
    if (s->npending == 0)
        s->last_answer = now_ms();
}

static int zk_read_submit(struct source *s, const char *path, size_t len, src_read_cb cb,
                          void *ctx, void *token, struct burry_err *e)
{
    if (s->dead)
        return zk_dead_err(s, e);
    if (memchr(path, 0, len)) {
        char *d = disp(path, len);
        int rc = burry_errf(e, BURRY_EFAIL, "cannot read '%s' from ZooKeeper: a NUL byte in the path",
                            d ? d : "?");
        free(d);
        return rc;
    }
    struct zread *r = calloc(1, sizeof *r + len + 2);
    if (!r)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    r->s = s;
    r->cb = cb;
    r->ctx = ctx;
    r->token = token;
    r->value_len = -1;
    if (len)
        memcpy(r->path, path, len);
    else
        r->path[0] = '/';
    /* The ACL is asked first: answers come back in order, so the data
     * answer is normally the last and its buffer is handed over uncopied. */
    int zrc = zoo_aget_acl(s->zh, r->path, read_acl_cb, r);
    if (zrc != ZOK) {
        free(r);
        return submit_err(s, zrc, "reading", path, len, e);
    }
    r->waiting = 1;
    zrc = zoo_aget(s->zh, r->path, 0, read_data_cb, r);
    if (zrc != ZOK) {
        r->cb = NULL; /* the ACL answer will free it */
        return submit_err(s, zrc, "reading", path, len, e);
    }
    r->waiting = 2;
    start_clock(s);
    s->npending++;
    return 0;
}

/* ---- writing ------------------------------------------------------------ */

static int utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Names ZooKeeper cannot hold (or would silently alter) fail that node only. */
static const char *name_problem(const char *path, size_t len)
{
    if (len == 0)
        return NULL;
    if (path[0] != '/')
        return "not a canonical node path";
    for (size_t i = 1; i <= len;) {
        const char *seg = path + i;
        const char *end = memchr(seg, '/', len - i);
        size_t n = end ? (size_t)(end - seg) : len - i;
        if (n == 0)
            return "ZooKeeper does not allow an empty name";
        if (memchr(seg, 0, n))
            return "ZooKeeper does not allow a NUL byte in a name";
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return "ZooKeeper does not allow the names '.' and '..'";
        if (!utf8_valid((const unsigned char *)seg, n))
            return "the name is not valid UTF-8, which ZooKeeper would alter";
        i += n + 1;
    }
    return NULL;
}

static int perms_parse(const char *p, int32_t *out, char *bad)
{
    int32_t v = 0;
    for (; *p; p++) {
        switch (*p) {
        case 'c': v |= ZOO_PERM_CREATE; break;
        case 'd': v |= ZOO_PERM_DELETE; break;
        case 'r': v |= ZOO_PERM_READ; break;
        case 'w': v |= ZOO_PERM_WRITE; break;
        case 'a': v |= ZOO_PERM_ADMIN; break;
        default: *bad = *p; return -1;
        }
    }
    *out = v;
    return 0;
}

static void acl_free(struct ACL_vector *v, int owned)
{
    if (owned)
        for (int i = 0; i < v->count; i++) {
            free(v->data[i].id.scheme);
            free(v->data[i].id.id);
        }
    free(v->data);
    v->data = NULL;
    v->count = 0;
}

/* attrs->acl to a client ACL. Without attrs or without "acl" the node gets
 * the open ACL (*open). Strings are borrowed from attrs unless copy is set.
 * Returns 0, or -1 with why. */
static int acl_parse(const json_t *attrs, struct ACL_vector *v, int copy, int *open, char *why,
                     size_t whylen)
{
    v->count = 0;
    v->data = NULL;
    *open = 0;
    const json_t *a = attrs ? json_object_get(attrs, "acl") : NULL;
    if (!a) {
        *open = 1;
        return 0;
    }
    if (!json_is_array(a)) {
        snprintf(why, whylen, "invalid ACL in the snapshot: not a list");
        return -1;
    }
    size_t n = json_array_size(a);
    if (n > INT32_MAX) {
        snprintf(why, whylen, "invalid ACL in the snapshot: too many entries");
        return -1;
    }
    v->data = calloc(n ? n : 1, sizeof *v->data);
    if (!v->data) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(a, i);
        const char *scheme = json_string_value(json_object_get(x, "scheme"));
        const char *id = json_string_value(json_object_get(x, "id"));
        const char *perms = json_string_value(json_object_get(x, "perms"));
        char bad = 0;
        struct ACL *dst = &v->data[v->count];
        if (!json_is_object(x) || !scheme || !*scheme || !id || !perms) {
            snprintf(why, whylen,
                     "invalid ACL in the snapshot: entry %zu is not {\"scheme\", \"id\", \"perms\"}",
                     i + 1);
            goto fail;
        }
        if (perms_parse(perms, &dst->perms, &bad) < 0) {
            if (bad >= 0x20 && bad < 0x7f)
                snprintf(why, whylen, "invalid ACL in the snapshot: unknown permission '%c' in entry %zu",
                         bad, i + 1);
            else
                snprintf(why, whylen,
                         "invalid ACL in the snapshot: unknown permission byte 0x%02x in entry %zu",
                         (unsigned char)bad, i + 1);
            goto fail;
        }
        dst->id.scheme = copy ? strdup(scheme) : (char *)scheme;
        dst->id.id = copy ? strdup(id) : (char *)id;
        v->count++;
        if (copy && (!dst->id.scheme || !dst->id.id)) {
            snprintf(why, whylen, "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    acl_free(v, copy);
    return -1;
}

static int acl_equal(const struct ACL_vector *a, const struct ACL_vector *b)
{
    if (!a || !b || a->count != b->count)
        return 0;
    for (int i = 0; i < a->count; i++) {
        const struct ACL *x = &a->data[i], *y = &b->data[i];
        if (x->perms != y->perms || strcmp(x->id.scheme ? x->id.scheme : "", y->id.scheme ? y->id.scheme : "") ||
            strcmp(x->id.id ? x->id.id : "", y->id.id ? y->id.id : ""))
            return 0;
    }
    return 1;
}

enum { PH_CREATE, PH_READ, PH_SET, PH_HELD_ACL };

struct zwrite {
    struct source *s;
    src_write_cb cb;
    void *ctx, *token;
    enum src_write_mode mode;
    int phase;
    int waiting;
    int rc;
    int data_differs, acl_differs;
    int open;                /* wanted ACL is the open one */
    struct ACL_vector acl;   /* wanted ACL (owned), unless open */
    char *value;             /* wanted data (owned), kept to compare and set */
    int value_len;           /* -1: null */
    size_t sent_len;         /* bytes of data in the request, for messages */
    /* A node whose ACL would stop its own children from being created (a
     * read-only parent) is created with its ACL plus create/admin rights for
     * this session, and gets its exact ACL once its subtree is restored. */
    int hold;
    int on_stack;            /* still on s->held: descendants may follow */
    int answered;            /* the create was answered */
    int created;             /* ... with success */
    enum src_write_outcome held_out;
    const char *held_msg;
    struct zwrite *up;       /* next outer held node */
    char path[];             /* the client's path: "/" for the root */
};

static const struct ACL_vector *want_acl(const struct zwrite *w)
{
    return w->open ? &ZOO_OPEN_ACL_UNSAFE : &w->acl;
}

static void write_free(struct zwrite *w)
{
    if (w->on_stack) { /* ended early (a fatal error): off the held stack */
        struct zwrite **pp = &w->s->held;
        while (*pp && *pp != w)
            pp = &(*pp)->up;
        if (*pp)
            *pp = w->up;
    }
    acl_free(&w->acl, 1);
    free(w->value);
    free(w);
}

/* On close: held writes waiting for their subtree are not with the client,
 * so they are freed here; those in flight are freed by their completions. */
static void held_drop_all(struct source *s)
{
    while (s->held) {
        struct zwrite *h = s->held;
        s->held = h->up;
        h->on_stack = 0;
        if (h->answered)
            write_free(h);
    }
}

static void write_done(struct zwrite *w, enum src_write_outcome out, const char *msg)
{
    struct source *s = w->s;
    s->npending--;
    if (!s->closing)
        w->cb(w->ctx, w->token, out, msg);
    write_free(w);
}

static void write_fatal(struct zwrite *w, int rc)
{
    struct source *s = w->s;
    /* A server drops the connection on a request over its jute.maxbuffer. */
    char hint[160];
    snprintf(hint, sizeof hint,
             " (the value has %zu bytes: check the server's jute.maxbuffer, 1 MB by default)",
             w->sent_len);
    if (!s->closing)
        request_fatal(s, rc, "writing", w->path, w->sent_len >= ZK_BIG_VALUE ? hint : NULL);
    s->npending--;
    write_free(w);
}

static void write_step(struct zwrite *w);
static void write_set_cb(int rc, const struct Stat *stat, const void *data);
static void write_setacl_cb(int rc, const void *data);

/* The held node's subtree is complete and its create succeeded: set the
 * exact ACL (after every child create, since requests run in order). */
static void held_set_acl(struct zwrite *w)
{
    struct source *s = w->s;
    w->phase = PH_HELD_ACL;
    w->rc = ZOK;
    int zrc = zoo_aset_acl(s->zh, w->path, -1, (struct ACL_vector *)want_acl(w), write_setacl_cb, w);
    if (zrc == ZOK) {
        w->waiting = 1;
        return;
    }
    if (conn_error(zrc))
        write_fatal(w, zrc);
    else
        write_done(w, SRC_W_FAILED, zerror(zrc));
}

/* The create of a held node was answered. */
static void held_answer(struct zwrite *w, int rc)
{
    w->answered = 1;
    if (rc == ZOK) {
        w->created = 1;
    } else {
        w->held_out = SRC_W_FAILED;
        if (rc == ZNODEEXISTS)
            w->held_out = SRC_W_EXISTING, w->held_msg = NULL;
        else if (rc == ZNONODE)
            w->held_msg = "parent does not exist";
        else if (rc == ZNOAUTH)
            w->held_msg = "not authorized to create (check --auth and the parent's ACL)";
        else if (rc == ZINVALIDACL)
            w->held_msg = "invalid ACL";
        else
            w->held_msg = "create failed";
    }
    if (w->on_stack)
        return; /* descendants may still come; decided when the subtree ends */
    if (w->created)
        held_set_acl(w);
    else
        write_done(w, w->held_out, w->held_msg);
}

/* Close the held nodes whose subtree ends before path (NULL: all). */
static void held_release(struct source *s, const char *path, size_t len)
{
    while (s->held) {
        struct zwrite *h = s->held;
        size_t hl = strlen(h->path);
        if (path && len > hl && !memcmp(path, h->path, hl) && path[hl] == '/')
            return; /* path lies below h */
        s->held = h->up;
        h->on_stack = 0;
        if (!h->answered)
            continue; /* held_answer finishes it */
        if (h->created)
            held_set_acl(h);
        else
            write_done(h, h->held_out, h->held_msg);
    }
}

/* Does creating a node with this ACL need the hold (its children could not
 * be created under it)? Only when the snapshot says it had children. */
static int needs_hold(const json_t *attrs, const struct ACL_vector *acl, int open)
{
    if (open)
        return 0;
    json_int_t kids = json_integer_value(json_object_get(json_object_get(attrs, "stat"), "numChildren"));
    if (kids <= 0)
        return 0;
    for (int i = 0; i < acl->count; i++)
        if ((acl->data[i].perms & ZOO_PERM_CREATE) && !strcmp(acl->data[i].id.scheme, "world") &&
            !strcmp(acl->data[i].id.id, "anyone"))
            return 0;
    return 1;
}

/* Give the session a throwaway digest identity the temporary ACL entries
 * ("auth" scheme) resolve to; it exists only in this session. */
static int hold_identity(struct source *s)
{
    if (s->hold_auth)
        return ZOK;
    unsigned char r[16];
    char cred[80];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return ZSYSTEMERROR;
    size_t n = (size_t)snprintf(cred, sizeof cred, "burry-restore-");
    for (size_t i = 0; i < 8; i++)
        n += (size_t)snprintf(cred + n, sizeof cred - n, "%02x", r[i]);
    cred[n++] = ':';
    for (size_t i = 8; i < 16; i++)
        n += (size_t)snprintf(cred + n, sizeof cred - n, "%02x", r[i]);
    int zrc = zoo_add_auth(s->zh, "digest", cred, (int)n, NULL, NULL);
    explicit_bzero(cred, sizeof cred);
    explicit_bzero(r, sizeof r);
    if (zrc == ZOK)
        s->hold_auth = 1;
    return zrc;
}

static void write_create_cb(int rc, const char *value, const void *data)
{
    (void)value;
    struct zwrite *w = (struct zwrite *)data;
    w->s->last_answer = now_ms();
    w->waiting--;
    rc_merge(&w->rc, rc);
    if (w->waiting == 0)
        write_step(w);
}

static void write_acl_cb(int rc, struct ACL_vector *acl, struct Stat *stat, const void *data)
{
    (void)stat;
    struct zwrite *w = (struct zwrite *)data;
    w->s->last_answer = now_ms();
    w->waiting--;
    rc_merge(&w->rc, rc);
    if (rc == ZOK)
        w->acl_differs = !acl_equal(acl, want_acl(w));
    if (w->waiting == 0)
        write_step(w);
}

static void write_data_cb(int rc, const char *value, int value_len, const struct Stat *stat,
                          const void *data)
{
    (void)stat;
    struct zwrite *w = (struct zwrite *)data;
    w->s->last_answer = now_ms();
    w->waiting--;
    rc_merge(&w->rc, rc);
    if (rc == ZOK) {
        if (value_len < 0 || w->value_len < 0)
            w->data_differs = value_len != w->value_len; /* null and empty differ */
        else
            w->data_differs = value_len != w->value_len ||
                              (value_len > 0 && memcmp(value, w->value, (size_t)value_len) != 0);
    }
    if (w->waiting == 0)
        write_step(w);
}

static void write_set_cb(int rc, const struct Stat *stat, const void *data)
{
    (void)stat;
    struct zwrite *w = (struct zwrite *)data;
    w->s->last_answer = now_ms();
    w->waiting--;
    rc_merge(&w->rc, rc);
    if (w->waiting == 0)
        write_step(w);
}

static void write_setacl_cb(int rc, const void *data)
{
    write_set_cb(rc, NULL, data);
}

/* Ask for the node's data and ACL to compare them with the wanted ones.
 * Returns ZOK when at least one answer is due. */
static int write_issue_read(struct zwrite *w)
{
    struct source *s = w->s;
    w->phase = PH_READ;
    w->rc = ZOK;
    int zrc = zoo_aget_acl(s->zh, w->path, write_acl_cb, w);
    if (zrc != ZOK)
        return zrc;
    w->waiting++;
    zrc = zoo_aget(s->zh, w->path, 0, write_data_cb, w);
    if (zrc != ZOK)
        rc_merge(&w->rc, zrc); /* decided when the ACL answer is in */
    else
        w->waiting++;
    return ZOK;
}

static void write_step(struct zwrite *w)
{
    struct source *s = w->s;
    int rc = w->rc;
    if (s->closing) {
        s->npending--;
        write_free(w);
        return;
    }
    if (conn_error(rc)) {
        write_fatal(w, rc);
        return;
    }
    switch (w->phase) {
    case PH_CREATE:
        if (w->hold) {
            held_answer(w, rc);
            return;
        }
        if (rc == ZOK) {
            write_done(w, SRC_W_CREATED, NULL);
        } else if (rc == ZNODEEXISTS) {
            if (w->mode != SRC_WRITE_OVERWRITE) {
                write_done(w, SRC_W_EXISTING, NULL);
            } else if ((rc = write_issue_read(w)) != ZOK) {
                if (conn_error(rc))
                    write_fatal(w, rc);
                else
                    write_done(w, SRC_W_FAILED, zerror(rc));
            }
        } else if (rc == ZNONODE) {
            write_done(w, SRC_W_FAILED, "parent does not exist");
        } else if (rc == ZNOAUTH) {
            write_done(w, SRC_W_FAILED, "not authorized to create (check --auth and the parent's ACL)");
        } else if (rc == ZINVALIDACL) {
            write_done(w, SRC_W_FAILED, "invalid ACL");
        } else if (rc == ZNOCHILDRENFOREPHEMERALS) {
            write_done(w, SRC_W_FAILED, "the parent is an ephemeral node, which cannot have children");
        } else if (rc == ZBADARGUMENTS) {
            write_done(w, SRC_W_FAILED, "ZooKeeper rejected the name (bad arguments)");
        } else {
            char m[128];
            snprintf(m, sizeof m, "create failed: %s", zerror(rc));
            write_done(w, SRC_W_FAILED, m);
        }
        return;
    case PH_READ:
        if (rc == ZNONODE) {
            if (w->mode == SRC_WRITE_PLAN || w->mode == SRC_WRITE_PLAN_OVERWRITE)
                write_done(w, SRC_W_CREATED, NULL);
            else if (strcmp(w->path, "/") == 0)
                write_done(w, SRC_W_FAILED, "the chroot does not exist");
            else
                write_done(w, SRC_W_FAILED, "deleted by someone else while being compared");
        } else if (rc == ZNOAUTH) {
            write_done(w, SRC_W_FAILED, "not authorized to read the existing node (check --auth)");
        } else if (rc != ZOK) {
            char m[128];
            snprintf(m, sizeof m, "reading the existing node failed: %s", zerror(rc));
            write_done(w, SRC_W_FAILED, m);
        } else if (!w->data_differs && !w->acl_differs) {
            write_done(w, SRC_W_SAME, NULL);
        } else if (w->mode == SRC_WRITE_PLAN) {
            write_done(w, SRC_W_DIFFERENT, NULL);
        } else if (w->mode == SRC_WRITE_PLAN_OVERWRITE) {
            write_done(w, SRC_W_OVERWRITTEN, NULL);
        } else {
            /* Data first: a new ACL may take away the right to write it. */
            int zrc = ZOK;
            w->phase = PH_SET;
            w->rc = ZOK;
            if (w->data_differs) {
                zrc = zoo_aset(s->zh, w->path, w->value, w->value_len, -1, write_set_cb, w);
                if (zrc == ZOK)
                    w->waiting++;
            }
            if (zrc == ZOK && w->acl_differs) {
                zrc = zoo_aset_acl(s->zh, w->path, -1, (struct ACL_vector *)want_acl(w),
                                   write_setacl_cb, w);
                if (zrc == ZOK)
                    w->waiting++;
            }
            if (zrc != ZOK) {
                rc_merge(&w->rc, zrc);
                if (w->waiting == 0) {
                    if (conn_error(zrc))
                        write_fatal(w, zrc);
                    else
                        write_done(w, SRC_W_FAILED, zerror(zrc));
                }
            }
        }
        return;
    case PH_HELD_ACL:
        if (rc == ZOK)
            write_done(w, SRC_W_CREATED, NULL);
        else {
            char m[160];
            snprintf(m, sizeof m, "created, but setting its ACL failed: %s", zerror(rc));
            write_done(w, SRC_W_FAILED, m);
        }
        return;
    case PH_SET:
        if (rc == ZOK)
            write_done(w, SRC_W_OVERWRITTEN, NULL);
        else if (rc == ZNOAUTH)
            write_done(w, SRC_W_FAILED, "not authorized to overwrite (check --auth and the node's ACL)");
        else if (rc == ZNONODE)
            write_done(w, SRC_W_FAILED, "deleted by someone else while being overwritten");
        else if (rc == ZINVALIDACL)
            write_done(w, SRC_W_FAILED, "invalid ACL");
        else {
            char m[128];
            snprintf(m, sizeof m, "overwrite failed: %s", zerror(rc));
            write_done(w, SRC_W_FAILED, m);
        }
        return;
    }
}

static int defer_write(struct source *s, src_write_cb cb, void *ctx, void *token,
                       enum src_write_outcome out, const char *msg, struct burry_err *e)
{
    size_t n = msg ? strlen(msg) : 0;
    struct wdefer *d = malloc(sizeof *d + n + 1);
    if (!d)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    d->next = NULL;
    d->cb = cb;
    d->ctx = ctx;
    d->token = token;
    d->out = out;
    memcpy(d->msg, msg ? msg : "", n + 1);
    if (s->dq_tail)
        s->dq_tail->next = d;
    else
        s->dq_head = d;
    s->dq_tail = d;
    s->npending++;
    return 0;
}

/* Create a node that must be held (needs_hold): with its ACL plus create
 * and admin rights for this session, then push it on the held stack. */
static int write_submit_held(struct source *s, const struct bnode *n, struct ACL_vector acl,
                             src_write_cb cb, void *ctx, void *token, struct burry_err *e)
{
    struct zwrite *w = calloc(1, sizeof *w + n->path_len + 1);
    struct ACL_vector tmp = {.count = acl.count + 1, .data = calloc((size_t)acl.count + 1, sizeof *tmp.data)};
    if (!w || !tmp.data) {
        free(w);
        free(tmp.data);
        acl_free(&acl, 1);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    w->s = s;
    w->cb = cb;
    w->ctx = ctx;
    w->token = token;
    w->mode = SRC_WRITE_CREATE;
    w->phase = PH_CREATE;
    w->hold = 1;
    w->acl = acl;
    w->value_len = -1;
    w->sent_len = n->has_value ? n->value_len : 0;
    memcpy(w->path, n->path, n->path_len);
    if (acl.count)
        memcpy(tmp.data, acl.data, (size_t)acl.count * sizeof *tmp.data);
    tmp.data[acl.count].perms = ZOO_PERM_CREATE | ZOO_PERM_ADMIN;
    tmp.data[acl.count].id.scheme = "auth";
    tmp.data[acl.count].id.id = "";
    int zrc = hold_identity(s);
    if (zrc == ZOK)
        zrc = zoo_acreate(s->zh, w->path, n->has_value ? (n->value ? n->value : "") : NULL,
                          n->has_value ? (int)n->value_len : -1, &tmp, 0, write_create_cb, w);
    free(tmp.data);
    if (zrc != ZOK) {
        write_free(w);
        return submit_err(s, zrc, "writing", n->path, n->path_len, e);
    }
    w->waiting = 1;
    w->on_stack = 1;
    w->up = s->held;
    s->held = w;
    start_clock(s);
    s->npending++;
    return 0;
}

/* All nodes are submitted: finish the held ones. */
static int zk_write_end(struct source *s, struct burry_err *e)
{
    if (s->dead)
        return zk_dead_err(s, e);
    held_release(s, NULL, 0);
    return 0;
}

static int zk_write_submit(struct source *s, const struct bnode *n, enum src_write_mode mode,
                           src_write_cb cb, void *ctx, void *token, struct burry_err *e)
{
    if (s->dead)
        return zk_dead_err(s, e);
    if (mode != SRC_WRITE_CREATE && mode != SRC_WRITE_OVERWRITE && mode != SRC_WRITE_PLAN &&
        mode != SRC_WRITE_PLAN_OVERWRITE)
        return burry_errf(e, BURRY_EFAIL, "unknown write mode %d", (int)mode);
    held_release(s, n->path, n->path_len);
    const char *why = name_problem(n->path, n->path_len);
    if (why)
        return defer_write(s, cb, ctx, token, SRC_W_FAILED, why, e);
    if (n->has_value && n->value_len > (size_t)INT_MAX)
        return defer_write(s, cb, ctx, token, SRC_W_FAILED, "value too large for ZooKeeper", e);
    int keep = mode != SRC_WRITE_CREATE;
    struct ACL_vector acl;
    int open;
    char whybuf[200];
    if (acl_parse(n->attrs, &acl, keep, &open, whybuf, sizeof whybuf) < 0)
        return defer_write(s, cb, ctx, token, SRC_W_FAILED, whybuf, e);
    if (mode == SRC_WRITE_CREATE && n->path_len && needs_hold(n->attrs, &acl, open)) {
        /* keep a copy of the exact ACL for later */
        acl_free(&acl, 0);
        if (acl_parse(n->attrs, &acl, 1, &open, whybuf, sizeof whybuf) < 0)
            return defer_write(s, cb, ctx, token, SRC_W_FAILED, whybuf, e);
        return write_submit_held(s, n, acl, cb, ctx, token, e);
    }
    if (n->path_len == 0 && mode == SRC_WRITE_CREATE) {
        /* The root (or the chroot) is never created; it is there. */
        acl_free(&acl, keep);
        return defer_write(s, cb, ctx, token, SRC_W_EXISTING, NULL, e);
    }
    const char *val = n->has_value ? (n->value ? n->value : "") : NULL;
    int vlen = n->has_value ? (int)n->value_len : -1;

    struct zwrite *w = calloc(1, sizeof *w + n->path_len + 2);
    if (!w) {
        acl_free(&acl, keep);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    w->s = s;
    w->cb = cb;
    w->ctx = ctx;
    w->token = token;
    w->mode = mode;
    w->value_len = -1;
    w->sent_len = vlen > 0 ? (size_t)vlen : 0;
    if (n->path_len)
        memcpy(w->path, n->path, n->path_len);
    else
        w->path[0] = '/';

    int zrc;
    if (!keep) {
        /* The client serialises the request now: nothing needs keeping. */
        w->phase = PH_CREATE;
        zrc = zoo_acreate(s->zh, w->path, val, vlen, open ? &ZOO_OPEN_ACL_UNSAFE : &acl, 0,
                          write_create_cb, w);
        acl_free(&acl, 0);
        if (zrc == ZOK)
            w->waiting = 1;
    } else {
        w->acl = acl;
        w->open = open;
        w->value_len = vlen;
        if (vlen >= 0) {
            w->value = malloc(vlen ? (size_t)vlen : 1);
            if (!w->value) {
                write_free(w);
                return burry_errf(e, BURRY_EFAIL, "out of memory");
            }
            if (vlen)
                memcpy(w->value, val, (size_t)vlen);
        }
        if (mode == SRC_WRITE_OVERWRITE && n->path_len) {
            w->phase = PH_CREATE;
            zrc = zoo_acreate(s->zh, w->path, w->value, w->value_len, want_acl(w), 0,
                              write_create_cb, w);
            if (zrc == ZOK)
                w->waiting = 1;
        } else {
            zrc = write_issue_read(w);
        }
    }
    if (zrc != ZOK) {
        write_free(w);
        if (zrc == ZBADARGUMENTS)
            return defer_write(s, cb, ctx, token, SRC_W_FAILED,
                               "the ZooKeeper client rejects this path", e);
        return submit_err(s, zrc, "writing", n->path, n->path_len, e);
    }
    start_clock(s);
    s->npending++;
    return 0;
}

/* ---- the loop ----------------------------------------------------------- */

static void run_deferred(struct source *s)
{
    struct wdefer *d = s->dq_head;
    s->dq_head = s->dq_tail = NULL; /* callbacks may queue more: next pump */
    while (d) {
        struct wdefer *next = d->next;
        s->npending--;
        d->cb(d->ctx, d->token, d->out, d->msg[0] ? d->msg : NULL);
        free(d);
        d = next;
    }
}

static int zk_pump(struct source *s, int timeout_ms, struct burry_err *e)
{
    if (s->dead)
        return zk_dead_err(s, e);
    if (burry_interrupted)
        return burry_errf(e, BURRY_EINTR, "interrupted");
    if (s->dq_head) {
        run_deferred(s);
        timeout_ms = 0;
    }
    if (timeout_ms < 0)
        timeout_ms = 0;
    zk_io(s, timeout_ms);
    if (s->dead)
        return zk_dead_err(s, e);
    if (burry_interrupted)
        return burry_errf(e, BURRY_EINTR, "interrupted");
    int tmo = s->o->timeout_s > 0 ? s->o->timeout_s : 10;
    if (s->npending > 0 && now_ms() - s->last_answer > (long long)tmo * 1000) {
        char hint[320];
        zk_fatal(s, BURRY_EFAIL, "no answer from ZooKeeper at %s for %ds%s", s->u.shown, tmo,
                 away_hint(s, hint, sizeof hint));
        return zk_dead_err(s, e);
    }
    return 0;
}

static size_t zk_pending(struct source *s)
{
    return s->npending;
}

const struct source_ops source_zk = {
    .scheme = "zk",
    .service = "zookeeper",
    .open = zk_open,
    .close = zk_close,
    .describe = zk_describe,
    .default_name = zk_default_name,
    .user_path = zk_user_path,
    .manifest_info = zk_manifest_info,
    .read_submit = zk_read_submit,
    .scan = NULL,
    .write_submit = zk_write_submit,
    .write_end = zk_write_end,
    .pump = zk_pump,
    .pending = zk_pending,
};
