/* What http.c and http_multi.c share: how one request is put on a libcurl
 * easy handle, and how a URL is shown in messages. Not for other files
 * (grpc.c speaks through http_multi). */
#ifndef BURRY_HTTP_INTERN_H
#define BURRY_HTTP_INTERN_H

#include <curl/curl.h>

#include "http.h"

/* Reset c and set it up for request r: URL, timeouts from o, TLS files,
 * http(s) only, no redirects, headers, method and body (the body pointer is
 * used as is, so it must live until the transfer ends). The response body
 * goes to sink(ctx). The transfer stops when the program is interrupted,
 * unless CURLOPT_XFERINFODATA, set after this, points to a non-zero int
 * (the handle's drain flag). */
void http_setup(CURL *c, const struct burry_opts *o, const char *url, const char *method,
                struct curl_slist *hdrs, const void *body, size_t body_len,
                size_t (*sink)(char *, size_t, size_t, void *), void *ctx);

/* The error for a transfer that ended in cc (not CURLE_OK): too_big when
 * the body outgrew max bytes; what names the service, shown the URL;
 * detail is the handle's CURLOPT_ERRORBUFFER (what TLS said), or "". */
int http_failed(CURLcode cc, const char *detail, int too_big, size_t max, const char *what,
                const char *shown, const struct burry_opts *o, struct burry_err *e);

#endif
