/* A small HTTP client on libcurl shared by the HTTP-speaking sources (etcd,
 * Consul) and later the object stores: one reused connection per handle,
 * TLS from the options, bounded response bodies, and error messages that
 * name the URL without credentials. */
#ifndef BURRY_HTTP_H
#define BURRY_HTTP_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "opts.h"

struct http;

#define HTTP_HEADER_MAX 256 /* longest response header value kept */

struct http_req {
    const char *method;              /* "GET", "POST", "PUT", "DELETE" */
    const char *url;                 /* full URL */
    const char *const *headers;      /* NULL-terminated "Name: value" list, or NULL */
    const void *body;                /* request body, or NULL */
    size_t body_len;
    size_t max_resp;                 /* largest response body accepted (0: 64 MiB) */
    /* Object stores: sign with libcurl's AWS Signature V4 ("aws:amz:REGION:s3")
     * using userpwd "KEY:SECRET"; keep response header want_header ("ETag")
     * in resp->header. All NULL for plain requests. */
    const char *aws_sigv4;
    const char *userpwd;
    const char *want_header;
    /* When set, the body of a 200 answer goes to stream(stream_ctx, p, n)
     * as it arrives instead of into resp->body (other answers are kept
     * there as usual); stream returns -1 to stop, and http_do then fails. */
    int (*stream)(void *stream_ctx, const char *p, size_t n);
    void *stream_ctx;
    /* http_multi only (gRPC, grpc.c): http2 asks for HTTP/2, by prior
     * knowledge on http:// and by ALPN on https://; every header and
     * trailer line goes to on_header(hctx, line, len); after each piece of
     * the body, complete(hctx, body) says whether the answer is whole, which
     * ends the transfer there as a success. */
    int http2;
    void (*on_header)(void *hctx, const char *line, size_t len);
    int (*complete)(void *hctx, const struct buf *body);
    void *hctx;
};

struct http_resp {
    long status;                     /* HTTP status code */
    struct buf body;                 /* response body (initialised by http_do) */
    char header[HTTP_HEADER_MAX];    /* value of req->want_header, or "" */
};

/* A handle using opts->cacert/cert/key and opts->timeout_s. */
struct http *http_new(const struct burry_opts *o, struct burry_err *e);
void http_free(struct http *h);                       /* NULL ok */
/* With on set, a request in flight is not cut short when the program is
 * interrupted (burry_interrupted): it ends by itself, within the timeout,
 * so that the caller learns what a write it sent did. Off by default. */
void http_set_drain(struct http *h, int on);

/* Send one request. Returns 0 once a response arrived (whatever its
 * status), or BURRY_EFAIL when none did ("cannot reach http://h:p: ...",
 * "timed out after Ns", TLS problems, a body over max_resp). The caller
 * frees resp->body with buf_free. what names the service for messages
 * ("etcd", "Consul"). */
int http_do(struct http *h, const char *what, const struct http_req *r, struct http_resp *resp,
            struct burry_err *e);

/* http_do, retried up to tries times in all with growing pauses (0.2 s,
 * 0.4 s, ... plus jitter) while no response arrived or the server answered
 * 408, 429 or 5xx: the answers that say "try again". Any other answer is
 * returned at once. Stops early when burry_interrupted is set. */
int http_do_retry(struct http *h, const char *what, const struct http_req *r, int tries,
                  struct http_resp *resp, struct burry_err *e);
/* Whether status is worth a retry (408, 429, 5xx). */
int http_status_transient(long status);

/* Append s percent-encoded as URLs of object stores and their signatures
 * want: A-Z a-z 0-9 - _ . ~ kept, '/' kept when keep_slash. 0 or -1. */
int http_uri_encode(struct buf *b, const char *s, int keep_slash);

/* url without any user:password@ part or query, for messages. */
void http_shown_url(const char *url, char *out, size_t len);

/* Base64 helpers (etcd's JSON gateway carries bytes as base64). out gets
 * the result appended; 0 or -1 (bad input / buffer limit). */
int b64_encode(const void *in, size_t len, struct buf *out);
int b64_decode(const char *in, size_t len, struct buf *out);

#endif
