/* Unary gRPC over HTTP/2 with libcurl, and protobuf wire helpers (grpc.h).
 *
 * A gRPC message travels as one byte "compressed" flag, a 4-byte big-endian
 * length and the protobuf bytes; the call's outcome comes as the grpc-status
 * and grpc-message headers, in the trailers of a normal answer or in the
 * headers of an answer that carries no message. */
#include "grpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "digest.h"
#include "http.h"
#include "http_multi.h"

/* One call in flight: what its answer's headers and trailers said. The
 * transfer itself is a request of the handle's http_multi. */
struct gcall {
    int busy;
    int is_grpc;              /* content-type application/grpc seen */
    int status;               /* grpc-status, -1 until seen */
    char msg[256];            /* grpc-message */
    char shown[512];          /* the URL for messages */
    const char *what;
    grpc_cb cb;
    void *ctx;
};

struct grpc {
    struct http_multi *hm;
    struct gcall *calls;
    size_t ncalls;
};

struct grpc *grpc_new(const struct burry_opts *o, size_t max_inflight, struct burry_err *e)
{
    struct grpc *g = calloc(1, sizeof *g);
    if (!g || !(g->calls = calloc(max_inflight ? max_inflight : 1, sizeof *g->calls))) {
        free(g);
        burry_errf(e, BURRY_EFAIL, "out of memory");
        return NULL;
    }
    if (!(g->hm = http_multi_new(o, max_inflight, e))) {
        free(g->calls);
        free(g);
        return NULL;
    }
    g->ncalls = max_inflight;
    return g;
}

void grpc_free(struct grpc *g)
{
    if (!g)
        return;
    http_multi_free(g->hm);
    free(g->calls);
    free(g);
}

void grpc_set_drain(struct grpc *g, int on)
{
    http_multi_set_drain(g->hm, on);
}

size_t grpc_inflight(const struct grpc *g)
{
    return http_multi_inflight(g->hm);
}

size_t grpc_room(const struct grpc *g)
{
    return http_multi_room(g->hm);
}

/* A unary answer is whole once its one message is. libcurl 7.88 notices
 * the end of an HTTP/2 stream only at its next internal timeout (up to
 * 200 ms per call), so the transfer ends there; the status of an answer
 * that carries a message is OK (errors come without one). */
/* The length of the message framed at the start of body (a "compressed"
 * flag byte, then 4 bytes big-endian), or SIZE_MAX while the frame's head
 * is not all in. */
static size_t frame_len(const struct buf *body)
{
    const unsigned char *b = (const unsigned char *)body->p;
    if (body->len < 5)
        return SIZE_MAX;
    return (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4];
}

static int whole_message(void *ctx, const struct buf *body)
{
    struct gcall *gc = ctx;
    size_t mlen = frame_len(body);
    return gc->is_grpc && mlen != SIZE_MAX && body->len - 5 >= mlen;
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
static void on_header(void *ctx, const char *p, size_t len)
{
    struct gcall *gc = ctx;
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    if (nl == 12 && !strncasecmp(p, "content-type", nl))
        gc->is_grpc = (size_t)(end - v) >= 16 && !strncasecmp(v, "application/grpc", 16);
    else if (nl == 11 && !strncasecmp(p, "grpc-status", nl)) {
        int st = 0;
        for (const char *q = v; q < end && st < 1000; q++)
            st = (*q >= '0' && *q <= '9') ? st * 10 + (*q - '0') : 1000;
        gc->status = (v < end && st < 1000) ? st : 2; /* unparsable: UNKNOWN */
    } else if (nl == 12 && !strncasecmp(p, "grpc-message", nl))
        decode_msg(v, (size_t)(end - v), gc->msg, sizeof gc->msg);
}

/* http_multi callback: the answer as a grpc_reply, to the caller's callback. */
static void call_done(void *ctx, int rc, struct http_resp *resp, const struct burry_err *err)
{
    struct gcall *gc = ctx;
    struct grpc_reply reply = {.status = gc->is_grpc ? gc->status : -1, .http = resp->status};
    struct burry_err e2 = {0};
    snprintf(reply.msg, sizeof reply.msg, "%s", gc->msg);
    buf_init(&reply.body, 0);
    if (rc == 0 && reply.status < 0 && whole_message(gc, &resp->body))
        reply.status = GRPC_OK; /* ended at the end of its message: see whole_message */
    if (rc == 0 && reply.status == GRPC_OK) {
        /* exactly one uncompressed message */
        size_t mlen = frame_len(&resp->body);
        if (mlen == SIZE_MAX || resp->body.p[0] != 0 || mlen != resp->body.len - 5) {
            rc = burry_errf(&e2, BURRY_EFAIL,
                            "%s at %s sent a gRPC answer that is not one uncompressed message",
                            gc->what, gc->shown);
            err = &e2;
        } else {
            memmove(resp->body.p, resp->body.p + 5, mlen);
            resp->body.len = mlen;
            reply.body = resp->body; /* taken: http_multi frees what is left */
            buf_init(&resp->body, 0);
        }
    }
    if (rc == 0 && !reply.body.p && buf_append(&reply.body, "", 0) < 0) {
        rc = burry_errf(&e2, BURRY_EFAIL, "out of memory");
        err = &e2;
    }
    grpc_cb cb = gc->cb;
    void *cctx = gc->ctx;
    gc->busy = 0; /* free first, so that the callback may submit */
    cb(cctx, rc, &reply, err);
    buf_free(&reply.body);
}

int grpc_submit(struct grpc *g, const char *what, const char *base, const char *path,
                const char *const *headers, const void *msg, size_t len, size_t max_reply,
                grpc_cb cb, void *ctx, struct burry_err *e)
{
    struct gcall *gc = NULL;
    for (size_t i = 0; i < g->ncalls && !gc; i++)
        if (!g->calls[i].busy)
            gc = &g->calls[i];
    if (!gc || !http_multi_room(g->hm))
        return burry_errf(e, BURRY_EFAIL, "too many gRPC calls to %s in flight (at most %zu)", what,
                          g->ncalls);
    if (len > 0xffffffffu)
        return burry_errf(e, BURRY_EFAIL, "a gRPC message to %s too large (%zu bytes)", what, len);
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    memset(gc, 0, sizeof *gc);
    gc->status = -1;
    gc->what = what;
    gc->cb = cb;
    gc->ctx = ctx;
    http_shown_url(url, gc->shown, sizeof gc->shown);

    /* the message framed: a "compressed" flag and a 4-byte big-endian length */
    struct buf req;
    buf_init(&req, 0);
    unsigned char pfx[5] = {0, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    const char *hdrs[10];
    size_t nh = 0;
    for (const char *const *h = headers; h && *h; h++)
        if (nh < 7)
            hdrs[nh++] = *h;
        else
            return burry_errf(e, BURRY_EFAIL, "too many headers for a gRPC call to %s", what);
    hdrs[nh++] = "Content-Type: application/grpc";
    hdrs[nh++] = "TE: trailers";
    hdrs[nh] = NULL;
    int rc = buf_append(&req, pfx, 5) < 0 || buf_append(&req, msg, len) < 0
                 ? burry_errf(e, BURRY_EFAIL, "out of memory")
                 : 0;
    if (rc == 0) {
        struct http_req r = {.method = "POST", .url = url, .headers = hdrs, .body = req.p,
                             .body_len = req.len, .max_resp = max_reply + 5, .http2 = 1,
                             .on_header = on_header, .complete = whole_message, .hctx = gc};
        rc = http_multi_submit(g->hm, what, &r, call_done, gc, e);
    }
    buf_free(&req);
    if (rc == 0)
        gc->busy = 1;
    return rc;
}

int grpc_pump(struct grpc *g, int timeout_ms, struct burry_err *e)
{
    return http_multi_pump(g->hm, timeout_ms, e);
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
            /* libcurl itself failed: drop every call, so that none ends
             * later into this returned frame */
            http_multi_cancel(g->hm);
            for (size_t i = 0; i < g->ncalls; i++)
                g->calls[i].busy = 0;
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
