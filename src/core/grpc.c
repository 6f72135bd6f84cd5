/* Unary gRPC over HTTP/2 with libcurl, and protobuf wire helpers (grpc.h).
 *
 * A gRPC message travels as one byte "compressed" flag, a 4-byte big-endian
 * length and the protobuf bytes; the call's outcome comes as the grpc-status
 * and grpc-message headers, in the trailers of a normal answer or in the
 * headers of an answer that carries no message. */
#include "grpc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "digest.h"
#include "http.h"
#include "http_intern.h"

#define GRPC_MAX_SLOTS 64

/* One call in flight: its own easy handle, its framed request, its reply. */
struct gslot {
    CURL *c;
    int busy;
    int is_grpc;              /* content-type application/grpc seen */
    int too_big;
    int whole;                /* the one reply message is in: stop there */
    struct curl_slist *hdrs;
    struct buf req;           /* the request message with its gRPC framing */
    char shown[512];          /* the URL for messages */
    const char *what;
    size_t max_reply;
    struct grpc_reply r;      /* the answer being received */
    grpc_cb cb;
    void *ctx;
};

struct grpc {
    CURLM *m;                 /* drives every slot; shares their connections */
    const struct burry_opts *o;
    struct gslot *slots;
    size_t nslots, busy;
};

struct grpc *grpc_new(const struct burry_opts *o, size_t max_inflight, struct burry_err *e)
{
    if (max_inflight < 1 || max_inflight > GRPC_MAX_SLOTS) {
        burry_errf(e, BURRY_EFAIL, "invalid number of concurrent gRPC calls %zu (1-%d)",
                   max_inflight, GRPC_MAX_SLOTS);
        return NULL;
    }
    /* reference-counted by libcurl; balanced in grpc_free */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        burry_errf(e, BURRY_EFAIL, "cannot initialise libcurl");
        return NULL;
    }
    struct grpc *g = calloc(1, sizeof *g);
    if (!g || !(g->slots = calloc(max_inflight, sizeof *g->slots)) || !(g->m = curl_multi_init()))
        goto oom;
    g->o = o;
    g->nslots = max_inflight;
    /* libcurl before 8.0 breaks streams added to a prior-knowledge
     * connection in use ("Error in the HTTP2 framing layer", curl issue
     * 10634): a connection per call there, see grpc_submit */
    if (curl_version_info(CURLVERSION_NOW)->version_num < 0x080000)
        curl_multi_setopt(g->m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    for (size_t i = 0; i < g->nslots; i++) {
        buf_init(&g->slots[i].req, 0);
        if (!(g->slots[i].c = curl_easy_init()))
            goto oom;
    }
    return g;
oom:
    if (g && g->slots) {
        for (size_t i = 0; i < max_inflight; i++)
            curl_easy_cleanup(g->slots[i].c);
        free(g->slots);
    }
    if (g && g->m)
        curl_multi_cleanup(g->m);
    free(g);
    curl_global_cleanup();
    burry_errf(e, BURRY_EFAIL, "out of memory");
    return NULL;
}

/* Release what a slot holds for its call (not its reply's body). */
static void slot_release(struct gslot *sl)
{
    for (struct curl_slist *l = sl->hdrs; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data)); /* headers may carry credentials */
    curl_slist_free_all(sl->hdrs);
    sl->hdrs = NULL;
    buf_free(&sl->req);
    sl->cb = NULL;
    sl->ctx = NULL;
}

/* Drop every call in flight without running its callback. */
static void abandon_all(struct grpc *g)
{
    for (size_t i = 0; i < g->nslots; i++) {
        struct gslot *sl = &g->slots[i];
        if (!sl->busy)
            continue;
        curl_multi_remove_handle(g->m, sl->c);
        slot_release(sl);
        buf_free(&sl->r.body);
        sl->busy = 0;
    }
    g->busy = 0;
}

void grpc_free(struct grpc *g)
{
    if (!g)
        return;
    abandon_all(g);
    for (size_t i = 0; i < g->nslots; i++)
        curl_easy_cleanup(g->slots[i].c);
    curl_multi_cleanup(g->m);
    free(g->slots);
    free(g);
    curl_global_cleanup();
}

size_t grpc_inflight(const struct grpc *g)
{
    return g->busy;
}

size_t grpc_room(const struct grpc *g)
{
    return g->nslots - g->busy;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct gslot *sl = ctx;
    if (buf_append(&sl->r.body, p, size * n) < 0) {
        sl->too_big = 1;
        return 0;
    }
    /* A unary answer is complete once its one message is. libcurl 7.88
     * notices the end of an HTTP/2 stream only at its next internal timeout
     * (up to 200 ms per call), so the call ends here; the status of an
     * answer that carries a message is OK (errors come without one). */
    const unsigned char *b = (const unsigned char *)sl->r.body.p;
    size_t len = sl->r.body.len;
    if (sl->is_grpc && len >= 5 &&
        len - 5 >= ((size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4])) {
        sl->whole = 1;
        return 0;
    }
    return size * n;
}

/* grpc-message is percent-encoded; keep it printable. */
static void decode_msg(const char *v, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        int c = (unsigned char)v[i];
        if (c == '%' && i + 2 < n && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
            c = hex_value(v[i + 1]) * 16 + hex_value(v[i + 2]);
            i += 2;
        }
        out[o++] = (c >= 0x20 && c != 0x7f) ? (char)c : '?';
    }
    out[o] = 0;
}

/* Headers and trailers alike: content-type, grpc-status, grpc-message. */
static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct gslot *sl = ctx;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    if (nl == 12 && !strncasecmp(p, "content-type", nl))
        sl->is_grpc = (size_t)(end - v) >= 16 && !strncasecmp(v, "application/grpc", 16);
    else if (nl == 11 && !strncasecmp(p, "grpc-status", nl)) {
        int st = 0;
        for (const char *q = v; q < end && st < 1000; q++)
            st = (*q >= '0' && *q <= '9') ? st * 10 + (*q - '0') : 1000;
        sl->r.status = (v < end && st < 1000) ? st : 2; /* unparsable: UNKNOWN */
    } else if (nl == 12 && !strncasecmp(p, "grpc-message", nl))
        decode_msg(v, (size_t)(end - v), sl->r.msg, sizeof sl->r.msg);
    return len;
}

int grpc_submit(struct grpc *g, const char *what, const char *base, const char *path,
                const char *const *headers, const void *msg, size_t len, size_t max_reply,
                grpc_cb cb, void *ctx, struct burry_err *e)
{
    struct gslot *sl = NULL;
    for (size_t i = 0; i < g->nslots && !sl; i++)
        if (!g->slots[i].busy)
            sl = &g->slots[i];
    if (!sl)
        return burry_errf(e, BURRY_EFAIL, "too many gRPC calls to %s in flight (at most %zu)", what,
                          g->nslots);
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    http_shown_url(url, sl->shown, sizeof sl->shown);

    unsigned char pfx[5] = {0, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    buf_init(&sl->req, 0);
    int oom = len > 0xffffffffu || buf_append(&sl->req, pfx, 5) < 0 ||
              buf_append(&sl->req, msg, len) < 0;
    static const char *const fixed[] = {"Content-Type: application/grpc", "TE: trailers", NULL};
    for (const char *const *h = headers; h && *h && !oom; h++) {
        struct curl_slist *l = curl_slist_append(sl->hdrs, *h);
        oom = !l;
        sl->hdrs = l ? l : sl->hdrs;
    }
    for (const char *const *h = fixed; *h && !oom; h++) {
        struct curl_slist *l = curl_slist_append(sl->hdrs, *h);
        oom = !l;
        sl->hdrs = l ? l : sl->hdrs;
    }
    if (oom) {
        slot_release(sl);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }

    memset(&sl->r, 0, sizeof sl->r);
    sl->r.status = -1;
    buf_init(&sl->r.body, max_reply + 5);
    sl->what = what;
    sl->max_reply = max_reply;
    sl->is_grpc = sl->too_big = sl->whole = 0;
    CURL *c = sl->c;
    http_setup(c, g->o, url, "POST", sl->hdrs, sl->req.p, sl->req.len, on_body, sl);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                     strncmp(base, "https:", 6) ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                                                : (long)CURL_HTTP_VERSION_2TLS);
    /* libcurl before 8.0 breaks a reused prior-knowledge connection ("Error
     * in the HTTP2 framing layer", curl issue 10634): a connection per call */
    if (strncmp(base, "https:", 6) && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000)
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, sl);
    curl_easy_setopt(c, CURLOPT_PRIVATE, sl);
    CURLMcode mc = curl_multi_add_handle(g->m, c);
    if (mc != CURLM_OK) {
        slot_release(sl);
        buf_free(&sl->r.body);
        return burry_errf(e, BURRY_EFAIL, "cannot start a gRPC call to %s (%s)", what,
                          curl_multi_strerror(mc));
    }
    sl->cb = cb;
    sl->ctx = ctx;
    sl->busy = 1;
    g->busy++;
    return 0;
}

/* The outcome of a finished call: 0 with sl->r filled (body: the one
 * message without its framing when the status is OK, else empty), or an
 * error in e when no usable answer came. */
static int call_outcome(struct grpc *g, struct gslot *sl, CURLcode cc, struct burry_err *e)
{
    struct grpc_reply *reply = &sl->r;
    curl_easy_getinfo(sl->c, CURLINFO_RESPONSE_CODE, &reply->http);
    if (cc == CURLE_WRITE_ERROR && sl->whole) {
        cc = CURLE_OK; /* stopped at the end of the message, on purpose */
        if (reply->status < 0)
            reply->status = GRPC_OK;
    }
    if (cc != CURLE_OK) {
        buf_free(&reply->body);
        return http_failed(cc, sl->too_big, sl->max_reply, sl->what, sl->shown, g->o, e);
    }
    if (!sl->is_grpc)
        reply->status = -1; /* an answer, but not from a gRPC service */
    if (reply->status != GRPC_OK) {
        buf_free(&reply->body);
        return buf_append(&reply->body, "", 0) < 0 ? burry_errf(e, BURRY_EFAIL, "out of memory") : 0;
    }
    /* exactly one uncompressed message */
    const unsigned char *b = (const unsigned char *)reply->body.p;
    size_t n = reply->body.len;
    size_t mlen = n >= 5 ? ((size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4]) : 0;
    if (n < 5 || b[0] != 0 || mlen != n - 5) {
        buf_free(&reply->body);
        return burry_errf(e, BURRY_EFAIL,
                          "%s at %s sent a gRPC answer that is not one uncompressed message",
                          sl->what, sl->shown);
    }
    memmove(reply->body.p, reply->body.p + 5, mlen);
    reply->body.len = mlen;
    return 0;
}

/* Run the callbacks of finished calls; the number run. */
static int finish(struct grpc *g)
{
    int done = 0, left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(g->m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *c = msg->easy_handle;
        CURLcode cc = msg->data.result;
        struct gslot *sl = NULL;
        curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&sl);
        curl_multi_remove_handle(g->m, c);
        if (!sl || !sl->busy)
            continue;
        struct burry_err err = {0};
        int rc = call_outcome(g, sl, cc, &err);
        struct grpc_reply reply = sl->r;
        buf_init(&sl->r.body, 0);
        grpc_cb cb = sl->cb;
        void *ctx = sl->ctx;
        /* free the slot first, so that the callback may submit */
        slot_release(sl);
        sl->busy = 0;
        g->busy--;
        cb(ctx, rc, &reply, &err);
        buf_free(&reply.body);
        done++;
    }
    return done;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int grpc_pump(struct grpc *g, int timeout_ms, struct burry_err *e)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int done = 0, running;
    for (;;) {
        CURLMcode mc = curl_multi_perform(g->m, &running);
        if (mc != CURLM_OK)
            return burry_errf(e, BURRY_EFAIL, "cannot move gRPC data (%s)", curl_multi_strerror(mc));
        done += finish(g);
        long long left = deadline - now_ms();
        if (done || !g->busy || left <= 0)
            return done;
        /* waking up at least every few milliseconds: libcurl 7.88 can
         * leave HTTP/2 frames it already read unprocessed (a window update
         * unsent, the end of a stream unseen) until its next timer, which
         * stalled a call for up to 200 ms */
        mc = curl_multi_poll(g->m, NULL, 0, left < 5 ? (int)left : 5, NULL);
        if (mc != CURLM_OK)
            return burry_errf(e, BURRY_EFAIL, "cannot wait for gRPC data (%s)",
                              curl_multi_strerror(mc));
    }
}

/* grpc_call's callback: the reply moves to the caller. */
struct sync_call {
    struct grpc_reply *out;
    struct burry_err *e;
    int rc, done;
};

static void sync_done(void *ctx, int rc, struct grpc_reply *reply, const struct burry_err *err)
{
    struct sync_call *x = ctx;
    x->done = 1;
    x->rc = rc;
    if (rc < 0) {
        burry_errf(x->e, err->code ? err->code : rc, "%s", err->msg);
        return;
    }
    *x->out = *reply;
    buf_init(&reply->body, 0);
}

int grpc_call(struct grpc *g, const char *what, const char *base, const char *path,
              const char *const *headers, const void *msg, size_t len, size_t max_reply,
              struct grpc_reply *reply, struct burry_err *e)
{
    struct sync_call x = {.out = reply, .e = e};
    memset(reply, 0, sizeof *reply);
    reply->status = -1;
    int rc = grpc_submit(g, what, base, path, headers, msg, len, max_reply, sync_done, &x, e);
    if (rc < 0)
        return rc;
    while (!x.done)
        if ((rc = grpc_pump(g, 1000, e)) < 0) {
            abandon_all(g); /* libcurl itself failed */
            return rc;
        }
    return x.rc;
}

/* ---- protobuf wire format ---------------------------------------------- */

static int put_raw_varint(struct buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    return buf_append(b, tmp, n);
}

int pb_put_varint(struct buf *b, unsigned field, uint64_t v)
{
    if (put_raw_varint(b, (uint64_t)field << 3 | PB_VARINT) < 0)
        return -1;
    return put_raw_varint(b, v);
}

int pb_put_head(struct buf *b, unsigned field, size_t n)
{
    if (put_raw_varint(b, (uint64_t)field << 3 | PB_LEN) < 0)
        return -1;
    return put_raw_varint(b, n);
}

int pb_put_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
    if (pb_put_head(b, field, n) < 0)
        return -1;
    return buf_append(b, p, n);
}

size_t pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >>= 7)
        n++;
    return n;
}

size_t pb_bytes_size(unsigned field, size_t n)
{
    return pb_varint_size((uint64_t)field << 3 | PB_LEN) + pb_varint_size(n) + n;
}

static int get_varint(struct pb_reader *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        unsigned char c = *r->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1; /* more than 10 bytes */
}

int pb_next(struct pb_reader *r, struct pb_field *f)
{
    uint64_t tag;
    if (r->p >= r->end)
        return 0;
    if (get_varint(r, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -1;
    f->num = (unsigned)(tag >> 3);
    f->wire = (unsigned)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->v = 0;
    switch (f->wire) {
    case PB_VARINT:
        return get_varint(r, &f->v) < 0 ? -1 : 1;
    case PB_I64:
    case PB_I32: {
        size_t w = f->wire == PB_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < w)
            return -1;
        for (size_t i = 0; i < w; i++)
            f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += w;
        return 1;
    }
    case PB_LEN: {
        uint64_t n;
        if (get_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
            return -1;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        return -1; /* groups (3, 4) and unknown wire types */
    }
}
