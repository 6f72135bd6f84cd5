/* The S3 store ("s3://BUCKET[/prefix]") and Google Cloud Storage through its
 * S3-compatible XML API ("gs://BUCKET[/prefix]", HMAC keys): one code path,
 * two default endpoints. Requests are signed with libcurl's AWS Signature
 * V4; every payload's SHA-256 goes in x-amz-content-sha256 and so into the
 * signature. Archives larger than one part go up as a multipart upload
 * while the backup runs (parts.h); a failed or interrupted upload is
 * aborted. Objects are never overwritten: a put first checks the key is
 * free (snapshot keys carry a random suffix, so a race is not a concern). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "digest.h"
#include "http.h"
#include "objget.h"
#include "parts.h"
#include "registry.h"
#include "store.h"
#include "xmlscan.h"

#define S3_TRIES 5                          /* attempts per request (about 6 s) */
#define S3_ABORT_TRIES 8                    /* for aborting an upload (about 16 s) */
#define S3_PART_DEFAULT ((size_t)6 << 20)   /* bytes per part */
#define S3_PART_MIN ((size_t)5 << 20)       /* S3's smallest part but the last */
#define S3_PART_MAX ((size_t)512 << 20)
#define S3_MAX_PARTS 10000
#define S3_WORKERS 4                        /* parts in flight */

struct store {
    const struct burry_opts *o;
    const char *svc;       /* "S3" or "GCS", for messages */
    char *bucket;
    char *prefix;          /* "" or "dir/sub/" */
    char *base;            /* "http://host:port/bucket" or "https://bucket.s3.region.amazonaws.com" */
    char *sigv4;           /* "aws:amz:REGION:s3" */
    char *userpwd;         /* "KEY:SECRET"; wiped */
    char *token_hdr;       /* "x-amz-security-token: ..." or NULL; wiped */
    char *desc;
    struct http *h;
    int bucket_checked;
};

struct store_put {
    struct store *s;
    char *key;             /* full object key, prefix included */
    char *url;
    char upload_id[512];
    struct parts *parts;
};

struct store_get {
    struct store *s;
    char *url;
    char *key;
    char *what;            /* for messages */
    struct objget g;
};

static void s3_get_close(struct store_get *g);

static int url_decode(const char *s, char *out, size_t len)
{
    size_t o = 0;
    for (; *s; s++) {
        if (o + 1 >= len)
            return -1;
        if (*s == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
            char hex[3] = {s[1], s[2], 0};
            out[o++] = (char)strtoul(hex, NULL, 16);
            s += 2;
        } else {
            out[o++] = *s == '+' ? ' ' : *s;
        }
    }
    out[o] = 0;
    return 0;
}

/* URL of an object: base + "/" + encoded key + query ("" or "?a=b&c=d",
 * parameters already sorted and encoded, each with '='). */
static char *object_url(struct store *s, const char *key, const char *query)
{
    struct buf b;
    buf_init(&b, 0);
    if (buf_puts(&b, s->base) < 0 || buf_putc(&b, '/') < 0 || http_uri_encode(&b, key, 1) < 0 ||
        buf_puts(&b, query) < 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* One signed request with retries. body may be NULL. */
static int s3_call_n(int tries, struct store *s, struct http *h, const char *method, const char *url,
                   const char *ctype, const void *body, size_t len, const char *extra_hdr,
                   const char *want_header, size_t max_resp, struct http_resp *resp,
                   struct burry_err *e)
{
    char hash[65], hash_hdr[100], ctype_hdr[100];
    const char *hdrs[6];
    int n = 0;
    sha256_hex(body ? body : "", body ? len : 0, hash);
    snprintf(hash_hdr, sizeof hash_hdr, "x-amz-content-sha256: %s", hash);
    hdrs[n++] = hash_hdr;
    if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
        snprintf(ctype_hdr, sizeof ctype_hdr, "Content-Type: %s", ctype ? ctype : "application/octet-stream");
        hdrs[n++] = ctype_hdr;
    }
    if (s->token_hdr)
        hdrs[n++] = s->token_hdr;
    if (extra_hdr)
        hdrs[n++] = extra_hdr;
    hdrs[n] = NULL;
    struct http_req r = {.method = method, .url = url, .headers = hdrs, .body = body, .body_len = len,
                         .max_resp = max_resp ? max_resp : (size_t)1 << 20, .aws_sigv4 = s->sigv4,
                         .userpwd = s->userpwd, .want_header = want_header};
    return http_do_retry(h, s->svc, &r, tries, resp, e);
}

#define s3_call(...) s3_call_n(S3_TRIES, __VA_ARGS__)

/* An answer that is not what was hoped for, as a message. */
static int s3_fail(struct store *s, const char *doing, const char *key, const struct http_resp *r,
                   struct burry_err *e)
{
    char sum[400];
    xml_error_summary(r->body.p, sum, sizeof sum);
    const char *hint = "";
    char missing[200];
    if (strstr(sum, "NoSuchBucket") || (r->status == 404 && !*sum && !key)) {
        snprintf(missing, sizeof missing, " (the bucket does not exist; %s)",
                 s->o->create_advice ? s->o->create_advice : "create it");
        hint = missing;
    } else if (r->status == 403)
        hint = " (check the access key and secret, and the clock)";
    if (!*sum)
        snprintf(sum, sizeof sum, "HTTP %ld", r->status);
    return burry_errf(e, BURRY_EFAIL, "%s: %s%s%s failed: %s%s", s->desc, doing, key ? " " : "",
                      key ? key : "", sum, hint);
}

static void s3_close(struct store *s)
{
    if (!s)
        return;
    http_free(s->h);
    free(s->bucket);
    free(s->prefix);
    free(s->base);
    free(s->sigv4);
    str_wipe_free(s->userpwd);
    str_wipe_free(s->token_hdr);
    free(s->desc);
    free(s);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int valid_bucket(const char *b, size_t n)
{
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-' ||
              b[i] == '.' || b[i] == '_'))
            return 0;
    return 1;
}

/* The bucket of an s3:// or gs:// URL (rest, blen bytes) and what follows
 * it (*slash: '/' and the prefix, or NULL), checked. */
static int split_url(const char *url, int gcs, const char **rest, size_t *blen, const char **slash,
                     struct burry_err *e)
{
    const char *scheme = gcs ? "gs://" : "s3://";
    *rest = url + strlen(scheme);
    *slash = strchr(*rest, '/');
    *blen = *slash ? (size_t)(*slash - *rest) : strlen(*rest);
    if (!valid_bucket(*rest, *blen))
        return burry_errf(e, BURRY_EUSAGE,
                          "'%s': expected %sBUCKET[/prefix] with a bucket name of 3-63 lower-case "
                          "letters, digits, '.', '-' or '_'", url, scheme);
    return 0;
}

static int check_url_common(const char *url, int gcs, struct burry_err *e)
{
    const char *rest, *slash;
    size_t blen;
    return split_url(url, gcs, &rest, &blen, &slash, e);
}

static int s3_check_url(const char *url, struct burry_err *e)
{
    return check_url_common(url, 0, e);
}

static int gs_check_url(const char *url, struct burry_err *e)
{
    return check_url_common(url, 1, e);
}

static int s3_open_common(struct store **out, const char *url, const struct burry_opts *o, int gcs,
                          struct burry_err *e)
{
    const char *rest, *slash;
    size_t blen;
    if (split_url(url, gcs, &rest, &blen, &slash, e) < 0)
        return BURRY_EUSAGE;
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    s->o = o;
    s->svc = gcs ? "GCS" : "S3";
    s->bucket = strndup(rest, blen);
    /* the prefix, without leading or doubled '/', ending in '/' */
    struct buf pb;
    buf_init(&pb, 4096);
    for (const char *p = slash; p && *p; p++)
        if (*p != '/' || (pb.len && pb.p[pb.len - 1] != '/'))
            buf_putc(&pb, *p);
    if (pb.len && pb.p[pb.len - 1] != '/')
        buf_putc(&pb, '/');
    if (!pb.p)
        buf_puts(&pb, "");
    s->prefix = buf_take(&pb, NULL);

    const char *key_id = o->store_key_id, *secret = o->store_secret, *token = NULL;
    if (!key_id && gcs) {
        key_id = env("GS_ACCESS_KEY_ID");
        secret = env("GS_SECRET_ACCESS_KEY");
    }
    if (!key_id) {
        key_id = env("AWS_ACCESS_KEY_ID");
        secret = env("AWS_SECRET_ACCESS_KEY");
        token = env("AWS_SESSION_TOKEN");
    }
    const char *region = gcs ? "auto" : env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!region)
        region = "us-east-1";
    const char *endpoint = o->endpoint_url ? o->endpoint_url : env("AWS_ENDPOINT_URL");
    if (gcs && !o->endpoint_url)
        endpoint = env("GS_ENDPOINT_URL") ? env("GS_ENDPOINT_URL") : "https://storage.googleapis.com";
    if (endpoint) {
        size_t el = strlen(endpoint);
        while (el && endpoint[el - 1] == '/')
            el--;
        if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) {
            s3_close(s);
            return burry_errf(e, BURRY_EUSAGE, "endpoint '%s' must start with http:// or https://",
                              endpoint);
        }
        if (memchr(endpoint, '@', el) || memchr(endpoint, '?', el)) {
            s3_close(s);
            return burry_errf(e, BURRY_EUSAGE,
                              "the endpoint URL must not hold credentials or a query; give keys in "
                              "the environment");
        }
        s->base = str_printf("%.*s/%s", (int)el, endpoint, s->bucket); /* path-style */
    } else {
        s->base = str_printf("https://%s.s3.%s.amazonaws.com", s->bucket, region);
    }
    s->sigv4 = str_printf("aws:amz:%s:s3", region);
    char shown[512];
    http_shown_url(s->base, shown, sizeof shown);
    s->desc = str_printf("%s bucket '%s'%s%.*s%s at %s", s->svc, s->bucket, *s->prefix ? " (prefix '" : "",
                         (int)(strlen(s->prefix) ? strlen(s->prefix) - 1 : 0), s->prefix,
                         *s->prefix ? "')" : "", shown);
    if (!key_id || !secret) {
        int rc = burry_errf(e, BURRY_EUSAGE,
                            "no credentials for %s: set %s and %s in the environment", s->desc ? s->desc : url,
                            gcs ? "GS_ACCESS_KEY_ID" : "AWS_ACCESS_KEY_ID",
                            gcs ? "GS_SECRET_ACCESS_KEY" : "AWS_SECRET_ACCESS_KEY");
        s3_close(s);
        return rc;
    }
    s->userpwd = str_printf("%s:%s", key_id, secret);
    if (token)
        s->token_hdr = str_printf("x-amz-security-token: %s", token);
    if (!s->bucket || !s->prefix || !s->base || !s->sigv4 || !s->desc || !s->userpwd ||
        (token && !s->token_hdr) || !(s->h = http_new(o, e))) {
        s3_close(s);
        return e->msg[0] ? e->code : burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    *out = s;
    return 0;
}

static int s3_open(struct store **out, const char *url, const struct burry_opts *o, struct burry_err *e)
{
    return s3_open_common(out, url, o, 0, e);
}

static int gs_open(struct store **out, const char *url, const struct burry_opts *o, struct burry_err *e)
{
    return s3_open_common(out, url, o, 1, e);
}

static const char *s3_describe(struct store *s)
{
    return s->desc;
}

/* Whether the bucket exists and the keys are accepted; with --create-bucket
 * a missing bucket is created (or, without create, left for put_open to
 * create). Once per store. */
static int check_bucket(struct store *s, int create, struct burry_err *e)
{
    if (s->bucket_checked)
        return 0;
    struct http_resp r;
    char *url = str_printf("%s/", s->base);
    if (!url)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    int rc = s3_call(s, s->h, "HEAD", url, NULL, NULL, 0, NULL, NULL, 0, &r, e);
    if (rc == 0 && r.status == 404 && s->o->create_bucket && !create) {
        buf_free(&r.body);
        free(url);
        return 0;
    }
    if (rc == 0 && r.status == 404 && s->o->create_bucket) {
        buf_free(&r.body);
        const char *region = s->sigv4 + strlen("aws:amz:");
        char body[256] = "";
        size_t rl = strlen(region) - strlen(":s3");
        if (strncmp(region, "us-east-1:", 10) && strncmp(region, "auto:", 5))
            snprintf(body, sizeof body,
                     "<CreateBucketConfiguration><LocationConstraint>%.*s</LocationConstraint>"
                     "</CreateBucketConfiguration>", (int)rl, region);
        rc = s3_call(s, s->h, "PUT", url, "application/xml", body, strlen(body), NULL, NULL, 0, &r, e);
        if (rc == 0 && r.status != 200)
            rc = s3_fail(s, "creating the bucket", NULL, &r, e);
        else if (rc == 0)
            blog(&s->o->log, BLOG_INFO, "created %s", s->desc);
    } else if (rc == 0 && r.status == 404) {
        rc = burry_errf(e, BURRY_EFAIL, "%s: the bucket does not exist (%s)", s->desc,
                        s->o->create_advice ? s->o->create_advice : "create it");
    } else if (rc == 0 && r.status == 403) {
        rc = burry_errf(e, BURRY_EFAIL,
                        "%s: access denied (HTTP 403; check the access key and secret, and the clock)",
                        s->desc);
    } else if (rc == 0 && r.status != 200) {
        rc = s3_fail(s, "checking the bucket", NULL, &r, e);
    }
    if (rc == 0 || r.body.p)
        buf_free(&r.body);
    free(url);
    if (rc == 0)
        s->bucket_checked = 1;
    return rc;
}

static void put_free(struct store_put *p)
{
    if (!p)
        return;
    parts_free(p->parts);
    free(p->key);
    free(p->url);
    free(p);
}

static int begin_upload(void *ctx, struct burry_err *e)
{
    struct store_put *p = ctx;
    struct store *s = p->s;
    struct http_resp r;
    char *url = object_url(s, p->key, "?uploads=");
    if (!url)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    int rc = s3_call(s, s->h, "POST", url, NULL, NULL, 0, NULL, NULL, 0, &r, e);
    free(url);
    if (rc < 0)
        return rc;
    if (r.status != 200 || !*xml_first(r.body.p, "UploadId", p->upload_id, sizeof p->upload_id))
        rc = s3_fail(s, "starting the multipart upload of", p->key, &r, e);
    buf_free(&r.body);
    return rc;
}

static int send_part(void *ctx, struct http *h, unsigned no, const void *data, size_t len,
                     char tag[PARTS_TAG_MAX], struct burry_err *e)
{
    struct store_put *p = ctx;
    struct store *s = p->s;
    struct buf q;
    buf_init(&q, 0);
    buf_printf(&q, "?partNumber=%u&uploadId=", no);
    http_uri_encode(&q, p->upload_id, 0);
    char *url = q.p ? object_url(s, p->key, q.p) : NULL;
    buf_free(&q);
    if (!url)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct http_resp r;
    int rc = s3_call(s, h, "PUT", url, NULL, data, len, NULL, "ETag", 0, &r, e);
    free(url);
    if (rc < 0)
        return rc;
    if (r.status != 200 || !r.header[0] || strlen(r.header) >= PARTS_TAG_MAX) {
        char doing[64];
        snprintf(doing, sizeof doing, "uploading part %u of", no);
        rc = s3_fail(s, doing, p->key, &r, e);
    } else {
        memcpy(tag, r.header, strlen(r.header) + 1);
    }
    buf_free(&r.body);
    return rc;
}

static int s3_check_put(struct store *s, const char *name, struct burry_err *e)
{
    (void)name;
    return check_bucket(s, 0, e);
}

static int s3_put_open(struct store *s, const char *key, struct store_put **out, struct burry_err *e)
{
    int rc = check_bucket(s, 1, e);
    if (rc < 0)
        return rc;
    struct store_put *p = calloc(1, sizeof *p);
    if (!p || !(p->key = str_printf("%s%s", s->prefix, key)) || !(p->url = object_url(s, p->key, ""))) {
        put_free(p);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    p->s = s;
    struct http_resp r;
    if ((rc = s3_call(s, s->h, "HEAD", p->url, NULL, NULL, 0, NULL, NULL, 0, &r, e)) < 0) {
        put_free(p);
        return rc;
    }
    if (r.status == 200)
        rc = burry_errf(e, BURRY_EEXIST, "%s: %s exists already (never overwritten)", s->desc, key);
    else if (r.status != 404)
        rc = s3_fail(s, "checking", p->key, &r, e);
    buf_free(&r.body);
    size_t part = s->o->part_size ? s->o->part_size : S3_PART_DEFAULT;
    if (rc == 0 && (part < S3_PART_MIN || part > S3_PART_MAX))
        rc = burry_errf(e, BURRY_EUSAGE, "%s parts must be between %zu and %zu MiB", s->svc,
                        S3_PART_MIN >> 20, S3_PART_MAX >> 20);
    if (rc == 0 && !(p->parts = parts_new(s->o, part, S3_WORKERS, S3_MAX_PARTS, begin_upload, send_part, p, e)))
        rc = e->code ? e->code : BURRY_EFAIL;
    if (rc < 0) {
        put_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int s3_put_write(struct store_put *p, const void *buf, size_t len, struct burry_err *e)
{
    return parts_write(p->parts, buf, len, e);
}

/* Abort the multipart upload, trying for a while: a gateway restarting
 * should not leave parts behind. */
static void abort_upload(struct store_put *p)
{
    struct store *s = p->s;
    struct buf q;
    buf_init(&q, 0);
    buf_puts(&q, "?uploadId=");
    http_uri_encode(&q, p->upload_id, 0);
    char *url = q.p ? object_url(s, p->key, q.p) : NULL;
    buf_free(&q);
    if (!url)
        return;
    struct http_resp r;
    struct burry_err e = {0};
    int was = burry_hold_interrupt(); /* the abort itself must not be cut short */
    blog(&s->o->log, BLOG_INFO, "aborting the multipart upload of %s", p->key);
    int rc = s3_call_n(S3_ABORT_TRIES, s, s->h, "DELETE", url, NULL, NULL, 0, NULL, NULL, 0, &r, &e);
    burry_resume_interrupt(was);
    if (rc == 0 && r.status != 204 && r.status != 200 && r.status != 404)
        rc = s3_fail(s, "aborting the multipart upload of", p->key, &r, &e);
    if (r.body.p)
        buf_free(&r.body);
    if (rc < 0)
        blog(&s->o->log, BLOG_WARN, "%s; parts of the aborted upload may be left behind (a bucket "
             "lifecycle rule for incomplete multipart uploads removes them)", e.msg);
    else
        blog(&s->o->log, BLOG_INFO, "aborted the multipart upload of %s", p->key);
    free(url);
}

static void s3_put_abort(struct store_put *p)
{
    if (!p)
        return;
    parts_free(p->parts); /* stops the workers before the abort */
    p->parts = NULL;
    if (p->upload_id[0])
        abort_upload(p);
    put_free(p);
}

static int complete_upload(struct store_put *p, struct burry_err *e)
{
    struct store *s = p->s;
    struct buf body, q;
    buf_init(&body, 0);
    buf_init(&q, 0);
    buf_puts(&body, "<CompleteMultipartUpload>");
    for (unsigned i = 1; i <= parts_count(p->parts); i++) {
        const char *etag = parts_tag(p->parts, i);
        buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>", i);
        for (const char *c = etag; *c; c++)
            *c == '"' ? buf_puts(&body, "&quot;") : buf_putc(&body, *c);
        buf_puts(&body, "</ETag></Part>");
    }
    buf_puts(&body, "</CompleteMultipartUpload>");
    buf_puts(&q, "?uploadId=");
    http_uri_encode(&q, p->upload_id, 0);
    char *url = q.p && body.p ? object_url(s, p->key, q.p) : NULL;
    buf_free(&q);
    if (!url) {
        buf_free(&body);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    struct http_resp r;
    int rc = s3_call(s, s->h, "POST", url, "application/xml", body.p, body.len, NULL, NULL, 0, &r, e);
    free(url);
    buf_free(&body);
    if (rc < 0)
        return rc;
    /* S3 may answer 200 and still report an error in the body */
    if (r.status != 200 || strstr(r.body.p, "<Error>"))
        rc = s3_fail(s, "completing the multipart upload of", p->key, &r, e);
    buf_free(&r.body);
    return rc;
}

static int s3_put_commit(struct store_put *p, struct burry_err *e)
{
    struct store *s = p->s;
    int rc;
    if (!parts_started(p->parts)) {
        size_t len;
        const void *data = parts_pending(p->parts, &len);
        struct http_resp r;
        rc = s3_call(s, s->h, "PUT", p->url, NULL, data, len, NULL, NULL, 0, &r, e);
        if (rc == 0 && r.status != 200)
            rc = s3_fail(s, "uploading", p->key, &r, e);
        if (rc == 0 || r.body.p)
            buf_free(&r.body);
    } else if ((rc = parts_finish(p->parts, e)) == 0) {
        rc = complete_upload(p, e);
    }
    if (rc < 0) {
        s3_put_abort(p);
        return rc;
    }
    put_free(p);
    return 0;
}

/* One range of an object (objget.h). */
static int fetch_range(void *ctx, unsigned long long from, unsigned long long to, struct http_resp *r,
                       struct burry_err *e)
{
    struct store_get *g = ctx;
    struct store *s = g->s;
    char range[80];
    snprintf(range, sizeof range, "Range: bytes=%llu-%llu", from, to);
    int rc = s3_call(s, s->h, "GET", g->url, NULL, NULL, 0, range, "Content-Range", OBJGET_RANGE + 1, r, e);
    if (rc < 0 || r->status == 200 || r->status == 206 || r->status == 416)
        return rc;
    if (r->status == 404 && !strstr(r->body.p, "NoSuchBucket"))
        rc = burry_errf(e, BURRY_ENOENT, "%s: no object %s", s->desc, g->key);
    else
        rc = s3_fail(s, "downloading", g->key, r, e);
    buf_free(&r->body);
    return rc;
}

static int s3_get_open(struct store *s, const char *key, struct store_get **out, struct burry_err *e)
{
    struct store_get *g = calloc(1, sizeof *g);
    if (!g || !(g->key = str_printf("%s%s", s->prefix, key)) || !(g->url = object_url(s, g->key, "")) ||
        !(g->what = str_printf("%s: %s", s->desc, g->key))) {
        s3_get_close(g);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    g->s = s;
    int rc = objget_open(&g->g, fetch_range, g, g->what, e);
    if (rc < 0) {
        s3_get_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

static ssize_t s3_get_read(struct store_get *g, void *buf, size_t len, struct burry_err *e)
{
    return objget_read(&g->g, buf, len, e);
}

static void s3_get_close(struct store_get *g)
{
    if (!g)
        return;
    objget_close(&g->g);
    free(g->key);
    free(g->url);
    free(g->what);
    free(g);
}

static int s3_list(struct store *s, const char *prefix, store_list_cb cb, void *ctx, struct burry_err *e)
{
    char token[1024] = "";
    char *full = str_printf("%s%s", s->prefix, prefix ? prefix : "");
    if (!full)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    size_t plen = strlen(s->prefix);
    int rc = 0;
    for (;;) {
        struct buf q;
        buf_init(&q, 0);
        buf_puts(&q, "/?");
        if (*token) {
            buf_puts(&q, "continuation-token=");
            http_uri_encode(&q, token, 0);
            buf_putc(&q, '&');
        }
        buf_puts(&q, "encoding-type=url&list-type=2&prefix=");
        http_uri_encode(&q, full, 0);
        char *url = q.p ? str_printf("%s%s", s->base, q.p) : NULL;
        buf_free(&q);
        if (!url) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            break;
        }
        struct http_resp r;
        rc = s3_call(s, s->h, "GET", url, NULL, NULL, 0, NULL, NULL, 16 << 20, &r, e);
        free(url);
        if (rc < 0)
            break;
        if (r.status != 200) {
            rc = s3_fail(s, "listing", NULL, &r, e);
            buf_free(&r.body);
            break;
        }
        const char *pos = r.body.p;
        char item[4096], k[2048], size[32];
        while (rc == 0 && xml_next(r.body.p, &pos, "Contents", item, sizeof item)) {
            xml_first(item, "Key", k, sizeof k);
            xml_first(item, "Size", size, sizeof size);
            char key[2048];
            if (url_decode(k, key, sizeof key) < 0 || strncmp(key, s->prefix, plen))
                continue;
            rc = cb(ctx, key + plen, strtoull(size, NULL, 10));
        }
        char trunc[16];
        xml_first(r.body.p, "IsTruncated", trunc, sizeof trunc);
        xml_first(r.body.p, "NextContinuationToken", token, sizeof token);
        buf_free(&r.body);
        if (rc != 0 || strcmp(trunc, "true") || !*token)
            break;
    }
    free(full);
    return rc;
}

static int s3_remove(struct store *s, const char *key, struct burry_err *e)
{
    char *full = str_printf("%s%s", s->prefix, key);
    char *url = full ? object_url(s, full, "") : NULL;
    if (!url) {
        free(full);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    struct http_resp r;
    int rc = s3_call(s, s->h, "DELETE", url, NULL, NULL, 0, NULL, NULL, 0, &r, e);
    free(url);
    if (rc == 0) {
        if (r.status != 204 && r.status != 200 && r.status != 404)
            rc = s3_fail(s, "deleting", full, &r, e);
        buf_free(&r.body);
    }
    free(full);
    return rc;
}

static void s3_set_drain(struct store *s, int on)
{
    http_set_drain(s->h, on);
}

/* s3:// and gs:// differ only in how they open (keys, default endpoint). */
#define S3_OPS(scheme_name, check_url_fn, open_fn)                                                 \
    {                                                                                              \
        .scheme = scheme_name, .check_url = check_url_fn, .open = open_fn, .close = s3_close,      \
        .describe = s3_describe, .check_put = s3_check_put, .put_open = s3_put_open,               \
        .put_write = s3_put_write, .put_commit = s3_put_commit,                                    \
        .put_abort = s3_put_abort, .get_open = s3_get_open, .get_read = s3_get_read,               \
        .get_close = s3_get_close, .list = s3_list, .remove = s3_remove,                           \
        .set_drain = s3_set_drain,                                                                 \
    }

const struct store_ops store_s3 = S3_OPS("s3", s3_check_url, s3_open);
const struct store_ops store_gs = S3_OPS("gs", gs_check_url, gs_open);
