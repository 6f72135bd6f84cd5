/* Asynchronous companion to http.h on libcurl's multi interface: a bounded
 * number of requests in flight at once over shared connections, each
 * finishing through a callback run only inside http_multi_pump. Same TLS,
 * timeout and size options and the same error messages as http_do. */
#ifndef BURRY_HTTP_MULTI_H
#define BURRY_HTTP_MULTI_H

#include <stddef.h>

#include "err.h"
#include "http.h"
#include "opts.h"

struct http_multi;

/* How one request ended. rc is 0 once a response arrived (whatever its
 * status; resp->body holds it) or BURRY_EFAIL when none did (err->msg says
 * why, as http_do would, and resp->body is empty). resp and err are valid
 * only during the call: take resp->body with buf_take to keep it. The
 * callback may submit new requests; it must not pump or free the handle. */
typedef void (*http_multi_cb)(void *ctx, int rc, struct http_resp *resp,
                              const struct burry_err *err);

/* A handle with up to max_inflight (1..64) requests in flight, using
 * opts->cacert/cert/key and opts->timeout_s. */
struct http_multi *http_multi_new(const struct burry_opts *o, size_t max_inflight,
                                  struct burry_err *e);
/* Name the server as where ("HOST:PORT"; kept, not copied) in the error
 * messages of failed requests instead of the request URL; NULL restores the
 * URL. */
void http_multi_set_where(struct http_multi *m, const char *where);
/* With on set, requests in flight are not cut short when the program is
 * interrupted (burry_interrupted): the caller stops submitting and pumps
 * until they end by themselves (each within the timeout), so that it
 * learns what the writes it sent did. Off by default. */
void http_multi_set_drain(struct http_multi *m, int on);
/* Abandons requests still in flight without running their callbacks. */
void http_multi_free(struct http_multi *m);                  /* NULL ok */
/* The same, keeping the handle for new requests. */
void http_multi_cancel(struct http_multi *m);

/* Requests submitted whose callbacks have not run yet. */
size_t http_multi_inflight(const struct http_multi *m);
/* How many more requests can be submitted now. */
size_t http_multi_room(const struct http_multi *m);

/* Start one request; url, headers and body are copied (the copies of the
 * headers are wiped when the request ends: they may carry secrets). what
 * names the service for messages ("etcd"; kept, not copied). BURRY_EFAIL
 * when there is no room (see http_multi_room) or no memory; the callback
 * then never runs. */
int http_multi_submit(struct http_multi *m, const char *what, const struct http_req *r,
                      http_multi_cb cb, void *ctx, struct burry_err *e);

/* Move data for up to timeout_ms (0: only what is ready now), returning as
 * soon as at least one request finished. Returns the number of callbacks
 * run (>= 0), or BURRY_EFAIL when libcurl itself failed. */
int http_multi_pump(struct http_multi *m, int timeout_ms, struct burry_err *e);

#endif
