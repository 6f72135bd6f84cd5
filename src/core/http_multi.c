/* Asynchronous HTTP requests on libcurl's multi interface (http_multi.h):
 * a fixed set of easy handles (slots), one per request in flight, sharing
 * the multi handle's connection cache. */
#include "http_multi.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_intern.h"

#define HM_DEFAULT_MAX ((size_t)64 << 20)
#define HM_MAX_SLOTS 64

struct hm_slot {
    CURL *c;
    int busy;
    int too_big;
    int h2;                       /* an HTTP/2 request (see http_multi_pump) */
    int whole;                    /* complete() said the answer is in */
    void (*on_header)(void *, const char *, size_t);
    int (*complete)(void *, const struct buf *);
    void *hctx;
    struct buf body;              /* response */
    char *req_body;               /* copy of the request body */
    char *url;                    /* copy of the URL (also for messages) */
    const char *what;
    size_t max_resp;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE]; /* what libcurl says of a failure */
    http_multi_cb cb;
    void *ctx;
};

struct http_multi {
    CURLM *m;
    const struct burry_opts *o;
    const char *where;            /* server named in messages, or NULL: the URL */
    struct hm_slot *slots;
    size_t nslots, busy, h2_busy;
    int drain;                    /* see http_multi_set_drain */
};

static size_t hm_on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct hm_slot *sl = ctx;
    if (buf_append(&sl->body, p, size * n) < 0) {
        sl->too_big = 1;
        return 0;
    }
    if (sl->complete && sl->complete(sl->hctx, &sl->body)) {
        sl->whole = 1; /* stop here: the transfer then ends in a write error */
        return 0;
    }
    return size * n;
}

static size_t hm_on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct hm_slot *sl = ctx;
    sl->on_header(sl->hctx, p, size * n);
    return size * n;
}

/* Release what a slot holds for its request (not the response body). */
static void slot_release(struct hm_slot *sl)
{
    for (struct curl_slist *h = sl->hdrs; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(sl->hdrs);
    sl->hdrs = NULL;
    free(sl->req_body);
    sl->req_body = NULL;
    free(sl->url);
    sl->url = NULL;
    sl->cb = NULL;
    sl->ctx = NULL;
    sl->on_header = NULL;
    sl->complete = NULL;
    sl->hctx = NULL;
}

struct http_multi *http_multi_new(const struct burry_opts *o, size_t max_inflight,
                                  struct burry_err *e)
{
    if (max_inflight < 1 || max_inflight > HM_MAX_SLOTS) {
        burry_errf(e, BURRY_EFAIL, "invalid number of concurrent requests %zu (1-%d)", max_inflight,
                   HM_MAX_SLOTS);
        return NULL;
    }
    /* reference-counted by libcurl; balanced in http_multi_free */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        burry_errf(e, BURRY_EFAIL, "cannot initialise libcurl");
        return NULL;
    }
    struct http_multi *m = calloc(1, sizeof *m);
    if (!m || !(m->slots = calloc(max_inflight, sizeof *m->slots)) || !(m->m = curl_multi_init()))
        goto oom;
    m->o = o;
    m->nslots = max_inflight;
    for (size_t i = 0; i < m->nslots; i++)
        if (!(m->slots[i].c = curl_easy_init()))
            goto oom;
    return m;
oom:
    if (m && m->slots) {
        for (size_t i = 0; i < max_inflight; i++)
            curl_easy_cleanup(m->slots[i].c);
        free(m->slots);
    }
    if (m && m->m)
        curl_multi_cleanup(m->m);
    free(m);
    curl_global_cleanup();
    burry_errf(e, BURRY_EFAIL, "out of memory");
    return NULL;
}

void http_multi_cancel(struct http_multi *m)
{
    for (size_t i = 0; i < m->nslots; i++) {
        struct hm_slot *sl = &m->slots[i];
        if (sl->busy)
            curl_multi_remove_handle(m->m, sl->c);
        slot_release(sl);
        buf_free(&sl->body);
        sl->busy = 0;
    }
    m->busy = m->h2_busy = 0;
}

void http_multi_free(struct http_multi *m)
{
    if (!m)
        return;
    http_multi_cancel(m);
    for (size_t i = 0; i < m->nslots; i++)
        curl_easy_cleanup(m->slots[i].c);
    curl_multi_cleanup(m->m);
    free(m->slots);
    free(m);
    curl_global_cleanup();
}

void http_multi_set_drain(struct http_multi *m, int on)
{
    m->drain = on != 0;
}

void http_multi_set_where(struct http_multi *m, const char *where)
{
    m->where = where;
}

size_t http_multi_inflight(const struct http_multi *m)
{
    return m->busy;
}

size_t http_multi_room(const struct http_multi *m)
{
    return m->nslots - m->busy;
}

int http_multi_submit(struct http_multi *m, const char *what, const struct http_req *r,
                      http_multi_cb cb, void *ctx, struct burry_err *e)
{
    struct hm_slot *sl = NULL;
    for (size_t i = 0; i < m->nslots && !sl; i++)
        if (!m->slots[i].busy)
            sl = &m->slots[i];
    if (!sl)
        return burry_errf(e, BURRY_EFAIL, "too many requests to %s in flight (at most %zu)", what,
                          m->nslots);
    CURL *c = sl->c;
    sl->url = strdup(r->url);
    if (r->body) {
        sl->req_body = malloc(r->body_len ? r->body_len : 1);
        if (sl->req_body && r->body_len)
            memcpy(sl->req_body, r->body, r->body_len);
    }
    int oom = !sl->url || (r->body && !sl->req_body);
    for (const char *const *p = r->headers; p && *p && !oom; p++) {
        struct curl_slist *n = curl_slist_append(sl->hdrs, *p);
        if (n)
            sl->hdrs = n;
        else
            oom = 1;
    }
    if (!oom && r->body) {
        struct curl_slist *n = curl_slist_append(sl->hdrs, "Expect:");
        if (n)
            sl->hdrs = n;
        else
            oom = 1;
    }
    if (oom) {
        slot_release(sl);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    sl->what = what;
    sl->max_resp = r->max_resp ? r->max_resp : HM_DEFAULT_MAX;
    sl->too_big = sl->whole = 0;
    sl->h2 = r->http2 != 0;
    sl->on_header = r->on_header;
    sl->complete = r->complete;
    sl->hctx = r->hctx;
    buf_init(&sl->body, sl->max_resp);
    http_setup(c, m->o, sl->url, r->method, sl->hdrs, sl->req_body, r->body ? r->body_len : 0, hm_on_body, sl);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &m->drain);
    curl_easy_setopt(c, CURLOPT_PRIVATE, sl);
    sl->errbuf[0] = 0;
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, sl->errbuf);
    if (r->on_header) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hm_on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, sl);
    }
    if (sl->h2) {
        int tls = !strncmp(sl->url, "https:", 6);
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                         tls ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        /* libcurl before 8.0 breaks a prior-knowledge connection that is
         * reused or shared by a second stream ("Error in the HTTP2 framing
         * layer", curl issue 10634): a connection of its own per request */
        if (!tls && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
            curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
            curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
        }
    }
    CURLMcode mc = curl_multi_add_handle(m->m, c);
    if (mc != CURLM_OK) {
        slot_release(sl);
        buf_free(&sl->body);
        return burry_errf(e, BURRY_EFAIL, "cannot start a request to %s (%s)", what,
                          curl_multi_strerror(mc));
    }
    sl->cb = cb;
    sl->ctx = ctx;
    sl->busy = 1;
    m->busy++;
    m->h2_busy += sl->h2;
    return 0;
}

/* Run the callbacks of finished transfers; the number run. */
static int hm_finish(struct http_multi *m)
{
    int done = 0, left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m->m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *c = msg->easy_handle;
        CURLcode cc = msg->data.result;
        struct hm_slot *sl = NULL;
        curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&sl);
        curl_multi_remove_handle(m->m, c);
        if (!sl || !sl->busy)
            continue;
        struct http_resp resp = {.status = 0, .body = sl->body};
        struct burry_err err = {0};
        char shown[512];
        int rc = 0;
        buf_init(&sl->body, 0);
        if (m->where)
            snprintf(shown, sizeof shown, "%s", m->where);
        else
            http_shown_url(sl->url, shown, sizeof shown);
        if (cc == CURLE_WRITE_ERROR && sl->whole)
            cc = CURLE_OK; /* stopped at the end of the answer, on purpose */
        if (cc != CURLE_OK) {
            buf_free(&resp.body);
            buf_init(&resp.body, 0);
            rc = http_failed(cc, sl->errbuf, sl->too_big, sl->max_resp, sl->what, shown, m->o, &err);
        } else {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
            if (!resp.body.p)
                buf_append(&resp.body, "", 0);
        }
        http_multi_cb cb = sl->cb;
        void *ctx = sl->ctx;
        /* free the slot first, so that the callback may submit */
        slot_release(sl);
        sl->busy = 0;
        m->busy--;
        m->h2_busy -= sl->h2;
        cb(ctx, rc, &resp, &err);
        buf_free(&resp.body);
        done++;
    }
    return done;
}

static long long hm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int http_multi_pump(struct http_multi *m, int timeout_ms, struct burry_err *e)
{
    long long deadline = hm_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int done = 0, running;
    for (;;) {
        CURLMcode mc = curl_multi_perform(m->m, &running);
        if (mc != CURLM_OK)
            return burry_errf(e, BURRY_EFAIL, "cannot move HTTP data (%s)", curl_multi_strerror(mc));
        done += hm_finish(m);
        long long left = deadline - hm_now_ms();
        if (done || !m->busy || left <= 0)
            return done;
        /* with HTTP/2 in flight, waking up at least every few
         * milliseconds: libcurl 7.88 can leave HTTP/2 frames it already
         * read unprocessed (a window update unsent, the end of a stream
         * unseen) until its next timer, which stalled a call for up to
         * 200 ms */
        if (m->h2_busy && left > 5)
            left = 5;
        mc = curl_multi_poll(m->m, NULL, 0, (int)left, NULL);
        if (mc != CURLM_OK)
            return burry_errf(e, BURRY_EFAIL, "cannot wait for HTTP data (%s)", curl_multi_strerror(mc));
    }
}
