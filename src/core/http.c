/* HTTP client on libcurl (http.h). */
#include "http.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "http_intern.h"

#define HTTP_DEFAULT_MAX ((size_t)64 << 20)

struct http {
    CURL *c;
    const struct burry_opts *o;
    struct buf *sink;
    int too_big;
    const struct http_req *req;   /* the request in flight */
    int stream_stopped;           /* its stream callback said stop */
    const char *want_header;      /* header to keep, or NULL */
    char *header;                 /* where to keep it (HTTP_HEADER_MAX bytes) */
    int drain;                    /* see http_set_drain */
    char errbuf[CURL_ERROR_SIZE]; /* what libcurl says of a failure */
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct http *h = ctx;
    if (h->req->stream) {
        long status = 0;
        curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            if (h->req->stream(h->req->stream_ctx, p, size * n) < 0) {
                h->stream_stopped = 1;
                return 0;
            }
            return size * n;
        }
    }
    if (buf_append(h->sink, p, size * n) < 0) {
        h->too_big = 1;
        return 0;
    }
    return size * n;
}

/* Keeps the value of one response header (the last one seen), trimmed. */
static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct http *h = ctx;
    size_t len = size * n, nl = h->want_header ? strlen(h->want_header) : 0;
    if (nl && len > nl + 1 && p[nl] == ':' && !strncasecmp(p, h->want_header, nl)) {
        const char *v = p + nl + 1, *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        snprintf(h->header, HTTP_HEADER_MAX, "%.*s", (int)(end - v), v);
    }
    return len;
}

/* Stops a transfer once the program was asked to stop, unless its handle
 * lets what it sent end (ctx: the handle's drain flag, or NULL). */
static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const int *drain = ctx;
    return burry_interrupted && !(drain && *drain) ? 1 : 0;
}

struct http *http_new(const struct burry_opts *o, struct burry_err *e)
{
    static int inited;
    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            burry_errf(e, BURRY_EFAIL, "cannot initialise libcurl");
            return NULL;
        }
        inited = 1;
    }
    struct http *h = calloc(1, sizeof *h);
    if (!h || !(h->c = curl_easy_init())) {
        free(h);
        burry_errf(e, BURRY_EFAIL, "out of memory");
        return NULL;
    }
    h->o = o;
    return h;
}

void http_set_drain(struct http *h, int on)
{
    h->drain = on != 0;
}

void http_free(struct http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->c);
    free(h);
}

/* Whether cc is a failure of TLS, whose cause only the error buffer holds
 * (libcurl's text for the code is the same for every cause). */
static int tls_failure(CURLcode cc, const char *shown)
{
    switch (cc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return 1;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return !strncmp(shown, "https:", 6);
    default:
        return 0;
    }
}

int http_failed(CURLcode cc, const char *detail, int too_big, size_t max, const char *what,
                const char *shown, const struct burry_opts *o, struct burry_err *e)
{
    int tmo = o->timeout_s > 0 ? o->timeout_s : 10;
    if (too_big)
        return burry_errf(e, BURRY_EFAIL, "answer of %s at %s is larger than %zu bytes", what, shown,
                          max);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return burry_errf(e, BURRY_EFAIL, "no answer from %s at %s within %ds", what, shown, tmo);
    if (cc == CURLE_PARTIAL_FILE)
        return burry_errf(e, BURRY_EFAIL, "the answer of %s at %s broke off before its end", what,
                          shown);
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        return burry_errf(e, BURRY_EINTR, "interrupted while talking to %s at %s", what, shown);
    const char *why = curl_easy_strerror(cc);
    char d[CURL_ERROR_SIZE];
    snprintf(d, sizeof d, "%s", detail && tls_failure(cc, shown) ? detail : "");
    for (size_t n = strlen(d); n && (d[n - 1] == ' ' || d[n - 1] == '\n'); n--)
        d[n - 1] = 0; /* libcurl ends some with a space */
    if (!strcmp(d, why))
        d[0] = 0;
    const char *hint = "", *cert = "";
    if (strstr(d, "wrong version number")) {
        hint = "; the server does not speak TLS on that port";
    } else if (strstr(d, "SSL_ERROR_SYSCALL")) {
        hint = "; the server closed the connection during the TLS handshake: it may not speak TLS on that port";
        cert = o->cert ? "" : ", or want a client certificate (--cert and --key)";
    } else if (!strncmp(shown, "https:", 6) && !o->cert &&
               (cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_SSL_CONNECT_ERROR)) {
        /* a server that wants a client certificate drops a TLS 1.3
         * connection without one only after the handshake, as a failed
         * receive */
        hint = "; if it asks for a client certificate, give --cert and --key";
    }
    return burry_errf(e, BURRY_EFAIL, "cannot reach %s at %s (%s%s%s)%s%s", what, shown, why, *d ? ": " : "", d,
                      hint, cert);
}

void http_shown_url(const char *url, char *out, size_t len)
{
    const char *s = strstr(url, "://");
    const char *at = s ? strchr(s + 3, '@') : NULL;
    const char *slash = s ? strchr(s + 3, '/') : NULL;
    if (at && (!slash || at < slash))
        snprintf(out, len, "%.*s%s", (int)(s + 3 - url), url, at + 1);
    else
        snprintf(out, len, "%s", url);
    char *q = strchr(out, '?');
    if (q)
        *q = 0;
}

void http_setup(CURL *c, const struct burry_opts *o, const char *url, const char *method,
                struct curl_slist *hdrs, const void *body, size_t body_len,
                size_t (*sink)(char *, size_t, size_t, void *), void *ctx)
{
    long tmo = o->timeout_s > 0 ? o->timeout_s : 10;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    /* every caller builds its path exactly (a Consul key, an object name):
     * libcurl would otherwise drop "." and ".." segments and send the
     * request to another key or object */
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, tmo);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, tmo);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, ctx);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (o->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
    if (o->cert)
        curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert);
    if (o->key)
        curl_easy_setopt(c, CURLOPT_SSLKEY, o->key);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(method, "GET")) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "DELETE")) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        }
    }
}

int http_do(struct http *h, const char *what, const struct http_req *r, struct http_resp *resp,
            struct burry_err *e)
{
    CURL *c = h->c;
    struct curl_slist *hdrs = NULL;
    char shown[512];

    buf_init(&resp->body, r->max_resp ? r->max_resp : HTTP_DEFAULT_MAX);
    resp->status = 0;
    h->sink = &resp->body;
    h->too_big = 0;
    h->req = r;
    h->stream_stopped = 0;
    for (const char *const *p = r->headers; p && *p; p++)
        hdrs = curl_slist_append(hdrs, *p);
    /* no "Expect: 100-continue" wait; but an empty "Expect:" would be
     * signed by libcurl's SigV4 and then not sent */
    if (r->body && !r->aws_sigv4)
        hdrs = curl_slist_append(hdrs, "Expect:");
    http_setup(c, h->o, r->url, r->method, hdrs, r->body, r->body_len, on_body, h);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &h->drain);
    /* a streamed answer is a large one (Consul's whole key space): read
     * in pieces of 512 KiB, not 16 KiB (100k keys: CPU -5%, wall -3%) */
    if (r->stream)
        curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
    h->errbuf[0] = 0;
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    resp->header[0] = 0;
    h->want_header = r->want_header;
    h->header = resp->header;
    if (r->want_header) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    }
    if (r->aws_sigv4) {
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, r->aws_sigv4);
        curl_easy_setopt(c, CURLOPT_USERPWD, r->userpwd);
    }
    CURLcode cc = curl_easy_perform(c);
    if (r->aws_sigv4)
        curl_easy_setopt(c, CURLOPT_USERPWD, NULL); /* drop libcurl's copy of the secret */
    h->want_header = NULL;
    for (struct curl_slist *l = hdrs; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data)); /* headers may carry credentials */
    curl_slist_free_all(hdrs);
    h->sink = NULL;
    http_shown_url(r->url, shown, sizeof shown);
    if (cc != CURLE_OK) {
        buf_free(&resp->body);
        if (h->stream_stopped)
            return burry_errf(e, BURRY_EFAIL, "stopped reading the answer of %s at %s", what, shown);
        return http_failed(cc, h->errbuf, h->too_big, r->max_resp ? r->max_resp : HTTP_DEFAULT_MAX,
                           what, shown, h->o, e);
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (!resp->body.p)
        buf_append(&resp->body, "", 0);
    return 0;
}

int http_uri_encode(struct buf *b, const char *s, int keep_slash)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                 *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/');
        if ((ok ? buf_putc(b, (char)*p) : buf_printf(b, "%%%02X", *p)) < 0)
            return -1;
    }
    return 0;
}

int http_status_transient(long status)
{
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

int http_do_retry(struct http *h, const char *what, const struct http_req *r, int tries,
                  struct http_resp *resp, struct burry_err *e)
{
    long pause_ms = 200;
    for (int i = 1;; i++) {
        int rc = http_do(h, what, r, resp, e);
        if (rc == BURRY_EINTR || (rc == 0 && !http_status_transient(resp->status)) || i >= tries ||
            burry_interrupted)
            return rc;
        if (rc == 0) {
            char shown[512];
            http_shown_url(r->url, shown, sizeof shown);
            blog(&h->o->log, BLOG_INFO, "%s at %s answered %ld; trying again (%d of %d)", what, shown,
                 resp->status, i + 1, tries);
            buf_free(&resp->body);
        } else {
            blog(&h->o->log, BLOG_INFO, "%s; trying again (%d of %d)", e->msg, i + 1, tries);
        }
        unsigned short jitter = 0;
        if (getrandom(&jitter, sizeof jitter, 0) < 0)
            jitter = 0;
        long ms = pause_ms + (long)(jitter % (unsigned)(pause_ms / 2 + 1));
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && !burry_interrupted)
            ;
        pause_ms = pause_ms * 2 > 5000 ? 5000 : pause_ms * 2;
    }
}

int b64_encode(const void *in, size_t len, struct buf *out)
{
    size_t need = 4 * ((len + 2) / 3);
    unsigned char *tmp = malloc(need + 1);
    if (!tmp)
        return -1;
    EVP_EncodeBlock(tmp, in, (int)len);
    int rc = buf_append(out, tmp, need);
    free(tmp);
    return rc;
}

int b64_decode(const char *in, size_t len, struct buf *out)
{
    if (len % 4)
        return -1;
    size_t pad = 0;
    if (len && in[len - 1] == '=')
        pad++;
    if (len > 1 && in[len - 2] == '=')
        pad++;
    unsigned char *tmp = malloc(len / 4 * 3 + 1);
    if (!tmp)
        return -1;
    int n = len ? EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len) : 0;
    int rc = n < 0 ? -1 : buf_append(out, tmp, (size_t)n - pad);
    free(tmp);
    return rc;
}
