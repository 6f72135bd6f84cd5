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

#include "digest.h"
#include "http.h"
#include "http_intern.h"

struct grpc {
    struct http *h;       /* the connection */
    CURL *c;              /* its easy handle */
    CURLM *m;             /* drives c (see perform) */
    const struct burry_opts *o;
    struct grpc_reply *r; /* the answer being received */
    int is_grpc;          /* content-type application/grpc seen */
    int too_big;
    int whole;            /* the one reply message is in: stop there */
};

struct grpc *grpc_new(const struct burry_opts *o, struct burry_err *e)
{
    struct grpc *g = calloc(1, sizeof *g);
    if (!g) {
        burry_errf(e, BURRY_EFAIL, "out of memory");
        return NULL;
    }
    if (!(g->h = http_new(o, e))) {
        free(g);
        return NULL;
    }
    g->c = http_easy(g->h);
    g->o = o;
    if (!(g->m = curl_multi_init())) {
        grpc_free(g);
        burry_errf(e, BURRY_EFAIL, "out of memory");
        return NULL;
    }
    return g;
}

void grpc_free(struct grpc *g)
{
    if (!g)
        return;
    if (g->m)
        curl_multi_cleanup(g->m);
    http_free(g->h);
    free(g);
}

/* curl_easy_perform, but waking up at least every few milliseconds:
 * libcurl 7.88 can leave HTTP/2 frames it already read unprocessed (a
 * window update unsent, the end of a stream unseen) until its next timer,
 * which stalled a call for up to 200 ms. */
static CURLcode perform(struct grpc *g)
{
    int running = 1;
    CURLMcode mc = curl_multi_add_handle(g->m, g->c);
    while (mc == CURLM_OK && running) {
        mc = curl_multi_perform(g->m, &running);
        if (mc == CURLM_OK && running)
            mc = curl_multi_poll(g->m, NULL, 0, 5, NULL);
    }
    CURLcode cc = mc == CURLM_OK ? CURLE_OK : CURLE_OUT_OF_MEMORY;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(g->m, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == g->c)
            cc = msg->data.result;
    curl_multi_remove_handle(g->m, g->c);
    return cc;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct grpc *g = ctx;
    if (buf_append(&g->r->body, p, size * n) < 0) {
        g->too_big = 1;
        return 0;
    }
    /* A unary answer is complete once its one message is. libcurl 7.88
     * notices the end of an HTTP/2 stream only at its next internal timeout
     * (up to 200 ms per call), so the call ends here; the status of an
     * answer that carries a message is OK (errors come without one). */
    const unsigned char *b = (const unsigned char *)g->r->body.p;
    size_t len = g->r->body.len;
    if (g->is_grpc && len >= 5 &&
        len - 5 >= ((size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4])) {
        g->whole = 1;
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
    struct grpc *g = ctx;
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
        g->is_grpc = (size_t)(end - v) >= 16 && !strncasecmp(v, "application/grpc", 16);
    else if (nl == 11 && !strncasecmp(p, "grpc-status", nl)) {
        int st = 0;
        for (const char *q = v; q < end && st < 1000; q++)
            st = (*q >= '0' && *q <= '9') ? st * 10 + (*q - '0') : 1000;
        g->r->status = (v < end && st < 1000) ? st : 2; /* unparsable: UNKNOWN */
    } else if (nl == 12 && !strncasecmp(p, "grpc-message", nl))
        decode_msg(v, (size_t)(end - v), g->r->msg, sizeof g->r->msg);
    return len;
}

int grpc_call(struct grpc *g, const char *what, const char *base, const char *path,
              const char *const *headers, const void *msg, size_t len, size_t max_reply,
              struct grpc_reply *reply, struct burry_err *e)
{
    char url[512], shown[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    http_shown_url(url, shown, sizeof shown);

    struct buf req;
    buf_init(&req, 0);
    unsigned char pfx[5] = {0, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    if (len > 0xffffffffu || buf_append(&req, pfx, 5) < 0 || buf_append(&req, msg, len) < 0) {
        buf_free(&req);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    struct curl_slist *hdrs = NULL;
    for (const char *const *h = headers; h && *h; h++)
        hdrs = curl_slist_append(hdrs, *h);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/grpc");
    hdrs = curl_slist_append(hdrs, "TE: trailers");

    memset(reply, 0, sizeof *reply);
    reply->status = -1;
    buf_init(&reply->body, max_reply + 5);
    g->r = reply;
    g->is_grpc = 0;
    g->too_big = 0;
    g->whole = 0;
    http_setup(g->c, g->o, url, "POST", hdrs, req.p, req.len, on_body, g);
    curl_easy_setopt(g->c, CURLOPT_HTTP_VERSION,
                     strncmp(base, "https:", 6) ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                                                : (long)CURL_HTTP_VERSION_2TLS);
    /* libcurl before 8.0 breaks a reused prior-knowledge connection ("Error
     * in the HTTP2 framing layer", curl issue 10634): a connection per call */
    if (strncmp(base, "https:", 6) && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000)
        curl_easy_setopt(g->c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(g->c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(g->c, CURLOPT_HEADERDATA, g);
    CURLcode cc = perform(g);
    for (struct curl_slist *l = hdrs; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data)); /* headers may carry credentials */
    curl_slist_free_all(hdrs);
    buf_free(&req);
    g->r = NULL;
    curl_easy_getinfo(g->c, CURLINFO_RESPONSE_CODE, &reply->http);
    if (cc == CURLE_WRITE_ERROR && g->whole) {
        cc = CURLE_OK; /* stopped at the end of the message, on purpose */
        if (reply->status < 0)
            reply->status = GRPC_OK;
    }
    if (cc != CURLE_OK) {
        buf_free(&reply->body);
        return http_failed(cc, g->too_big, max_reply, what, shown, g->o, e);
    }
    if (!g->is_grpc)
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
                          "%s at %s sent a gRPC answer that is not one uncompressed message", what,
                          shown);
    }
    memmove(reply->body.p, reply->body.p + 5, mlen);
    reply->body.len = mlen;
    return 0;
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

int pb_put_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
    if (put_raw_varint(b, (uint64_t)field << 3 | PB_LEN) < 0 || put_raw_varint(b, n) < 0)
        return -1;
    return buf_append(b, p, n);
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
