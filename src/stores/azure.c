/* The Azure Blob store ("azure://ACCOUNT/CONTAINER[/prefix]"): block blobs
 * signed with Shared Key (HMAC-SHA256 over Azure's string to sign). Archives
 * larger than one block are staged as blocks by the upload threads
 * (parts.h) and become visible only with the final Put Block List. Blobs are
 * never overwritten: puts are conditional on the name being free. */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "http.h"
#include "objget.h"
#include "parts.h"
#include "registry.h"
#include "store.h"
#include "xmlscan.h"

#define AZ_TRIES 5                          /* attempts per request */
#define AZ_PART_DEFAULT ((size_t)8 << 20)   /* bytes per block */
#define AZ_PART_MAX ((size_t)4000 << 20)    /* Azure's largest block */
#define AZ_MAX_BLOCKS 50000                 /* Azure's limit per blob */
#define AZ_WORKERS 4                        /* blocks in flight */
#define AZ_VERSION "2021-08-06"
#define AZ_MAX_QUERY 4                      /* query parameters per request */
#define AZ_MAX_XMS 4                        /* extra x-ms-* headers per request */

struct store {
    const struct burry_opts *o;
    char *account;
    char *container;
    char *prefix;          /* "" or "dir/sub/" */
    char *endpoint;        /* "https://ACCOUNT.blob.core.windows.net" or "http://h:p/ACCOUNT" */
    char *res_base;        /* "/ACCOUNT" + the endpoint's path: start of the signed resource */
    struct buf key;        /* the decoded account key; wiped */
    char *desc;
    struct http *h;
    int container_checked;
};

struct store_put {
    struct store *s;
    char *key;             /* full blob name, prefix included */
    struct parts *parts;
};

struct store_get {
    struct store *s;
    char *key;
    char *what;            /* for messages */
    struct objget g;
};

/* One request. Query names are lower-case and in sorted order, values raw
 * (encoded here); x_ms holds extra "x-ms-name:value" headers. */
struct az_req {
    const char *method;
    const char *blob;                        /* full blob name, or NULL for the container */
    const char *query[2 * AZ_MAX_QUERY + 1]; /* name, value, ..., NULL */
    const char *x_ms[AZ_MAX_XMS + 1];        /* NULL-terminated */
    const char *ctype;                       /* Content-Type of PUT/POST; default octet-stream */
    const void *body;
    size_t len;
    int if_none_match;                       /* send "If-None-Match: *" */
    const char *want_header;
    size_t max_resp;
};

static void az_get_close(struct store_get *g);

/* RFC 1123 date for x-ms-date, independent of the locale. */
static void http_date(char out[40])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int cmp_hdr_name(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t xn = strcspn(x, ":"), yn = strcspn(y, ":");
    int c = strncmp(x, y, xn < yn ? xn : yn);
    return c ? c : (xn > yn) - (xn < yn);
}

/* The request URL and the canonicalized resource it is signed with:
 * "/ACCOUNT" + the URL's (encoded) path, then "\nname:value" per query
 * parameter with the raw value. */
static int build_target(struct store *s, const struct az_req *r, struct buf *url, struct buf *res)
{
    int bad = 0;
    bad |= buf_puts(url, s->endpoint) < 0 || buf_putc(url, '/') < 0 ||
           http_uri_encode(url, s->container, 0) < 0;
    bad |= buf_puts(res, s->res_base) < 0 || buf_putc(res, '/') < 0 ||
           http_uri_encode(res, s->container, 0) < 0;
    if (r->blob) {
        bad |= buf_putc(url, '/') < 0 || http_uri_encode(url, r->blob, 1) < 0;
        bad |= buf_putc(res, '/') < 0 || http_uri_encode(res, r->blob, 1) < 0;
    }
    for (int i = 0; r->query[i]; i += 2) {
        bad |= buf_putc(url, i ? '&' : '?') < 0 || buf_puts(url, r->query[i]) < 0 ||
               buf_putc(url, '=') < 0 || http_uri_encode(url, r->query[i + 1], 0) < 0;
        bad |= buf_printf(res, "\n%s:%s", r->query[i], r->query[i + 1]) < 0;
    }
    return bad ? -1 : 0;
}

/* One Shared Key request with retries (the same signature is resent: the
 * date stays well within Azure's 15 minutes for AZ_TRIES attempts). */
static int az_call(struct store *s, struct http *h, const struct az_req *r, struct http_resp *resp,
                   struct burry_err *e)
{
    char date[40], date_hdr[60], len_s[32] = "", ctype_hdr[100] = "";
    const char *ctype = "";
    const char *signed_hdrs[AZ_MAX_XMS + 3];
    const char *hdrs[2 * AZ_MAX_XMS + 8];
    char xms_sent[AZ_MAX_XMS][300];
    int ns = 0, nh = 0;
    struct buf url, res, sts, sig;
    buf_init(&url, 0);
    buf_init(&res, 0);
    buf_init(&sts, 0);
    buf_init(&sig, 0);
    char *auth = NULL;
    int rc = 0;

    http_date(date);
    char date_signed[60];
    snprintf(date_signed, sizeof date_signed, "x-ms-date:%s", date);
    snprintf(date_hdr, sizeof date_hdr, "x-ms-date: %s", date);
    signed_hdrs[ns++] = date_signed;
    signed_hdrs[ns++] = "x-ms-version:" AZ_VERSION;
    hdrs[nh++] = date_hdr;
    hdrs[nh++] = "x-ms-version: " AZ_VERSION;
    for (int i = 0; r->x_ms[i] && i < AZ_MAX_XMS; i++) {
        const char *colon = strchr(r->x_ms[i], ':');
        signed_hdrs[ns++] = r->x_ms[i];
        snprintf(xms_sent[i], sizeof xms_sent[i], "%.*s: %s", (int)(colon - r->x_ms[i]), r->x_ms[i],
                 colon + 1);
        hdrs[nh++] = xms_sent[i];
    }
    qsort(signed_hdrs, (size_t)ns, sizeof signed_hdrs[0], cmp_hdr_name);
    /* libcurl sends a Content-Length for any body given (also an empty one
     * with PUT); Azure signs it as "" when it is 0 */
    if (r->body && r->len)
        snprintf(len_s, sizeof len_s, "%zu", r->len);
    /* every PUT/POST carries a Content-Type we chose, or libcurl would add
     * its own outside the signature */
    if (r->body || !strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
        ctype = r->ctype ? r->ctype : "application/octet-stream";
        snprintf(ctype_hdr, sizeof ctype_hdr, "Content-Type: %s", ctype);
        hdrs[nh++] = ctype_hdr;
    }
    if (r->if_none_match)
        hdrs[nh++] = "If-None-Match: *";

    if (build_target(s, r, &url, &res) < 0 ||
        buf_printf(&sts, "%s\n\n\n%s\n\n%s\n\n\n\n%s\n\n\n", r->method, len_s, ctype,
                   r->if_none_match ? "*" : "") < 0) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    for (int i = 0; i < ns; i++)
        if (buf_puts(&sts, signed_hdrs[i]) < 0 || buf_putc(&sts, '\n') < 0)
            rc = -1;
    if (rc < 0 || buf_append(&sts, res.p, res.len) < 0) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), s->key.p, (int)s->key.len, (const unsigned char *)sts.p, sts.len, md,
              &mdlen) ||
        b64_encode(md, mdlen, &sig) < 0 ||
        !(auth = str_printf("Authorization: SharedKey %s:%s", s->account, sig.p))) {
        explicit_bzero(md, sizeof md);
        rc = burry_errf(e, BURRY_EFAIL, "cannot sign a request to %s", s->desc);
        goto out;
    }
    explicit_bzero(md, sizeof md);
    hdrs[nh++] = auth;
    hdrs[nh] = NULL;
    struct http_req hr = {.method = r->method, .url = url.p, .headers = hdrs, .body = r->body,
                          .body_len = r->len, .max_resp = r->max_resp ? r->max_resp : (size_t)1 << 20,
                          .want_header = r->want_header};
    rc = http_do_retry(h, "Azure Blob", &hr, AZ_TRIES, resp, e);
out:
    str_wipe_free(auth);
    buf_wipe(&sig);
    buf_free(&sts);
    buf_free(&res);
    buf_free(&url);
    return rc;
}

/* An answer that is not what was hoped for, as a message. code is the
 * x-ms-error-code header when known (HEAD answers carry no body). */
static int az_fail(struct store *s, const char *doing, const char *key, const struct http_resp *r,
                   const char *code, struct burry_err *e)
{
    char sum[400];
    xml_error_summary(r->body.p, sum, sizeof sum);
    if (!*sum && code && *code)
        snprintf(sum, sizeof sum, "%s", code);
    if (r->status == 403)
        return burry_errf(e, BURRY_EFAIL, "%s: %s%s%s failed: access denied (HTTP 403%s%s; check "
                          "the account key)", s->desc, doing, key ? " " : "", key ? key : "",
                          *sum ? ", " : "", sum);
    const char *hint = "";
    char missing[200];
    if (strstr(sum, "ContainerNotFound")) {
        snprintf(missing, sizeof missing, " (the container does not exist; %s)",
                 s->o->create_advice ? s->o->create_advice : "create it");
        hint = missing;
    }
    if (!*sum)
        snprintf(sum, sizeof sum, "HTTP %ld", r->status);
    return burry_errf(e, BURRY_EFAIL, "%s: %s%s%s failed: %s%s", s->desc, doing, key ? " " : "",
                      key ? key : "", sum, hint);
}

static void az_close(struct store *s)
{
    if (!s)
        return;
    http_free(s->h);
    free(s->account);
    free(s->container);
    free(s->prefix);
    free(s->endpoint);
    free(s->res_base);
    buf_wipe(&s->key);
    free(s->desc);
    free(s);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int valid_account(const char *a, size_t n)
{
    if (n < 3 || n > 24)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)a[i]) || isdigit((unsigned char)a[i])))
            return 0;
    return 1;
}

/* 3-63 lower-case letters, digits and single '-', starting and ending with
 * a letter or digit. */
static int valid_container(const char *c, size_t n)
{
    if (n < 3 || n > 63 || c[0] == '-' || c[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)c[i]) || isdigit((unsigned char)c[i]) ||
              (c[i] == '-' && c[i + 1] != '-')))
            return 0;
    return 1;
}

/* The value of field name in a connection string "A=x;B=y" (a value may
 * hold '='), copied into a new string; NULL when absent. */
static char *conn_field(const char *cs, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = cs; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        if (len > nl && p[nl] == '=' && !strncasecmp(p, name, nl))
            return strndup(p + nl + 1, len - nl - 1);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Endpoint and key from the options, the environment or a connection
 * string; sets s->endpoint and s->key. */
static int find_credentials(struct store *s, const char *url, struct burry_err *e)
{
    const struct burry_opts *o = s->o;
    const char *cs = env("AZURE_STORAGE_CONNECTION_STRING");
    const char *key = o->store_secret ? o->store_secret : env("AZURE_STORAGE_KEY");
    const char *from = o->store_secret ? "the command line" : "AZURE_STORAGE_KEY";
    char *cs_key = NULL, *cs_name = NULL, *cs_blob = NULL, *cs_proto = NULL, *cs_suffix = NULL;
    int rc = 0;
    if (key && !o->store_secret && env("AZURE_STORAGE_ACCOUNT") &&
        strcmp(env("AZURE_STORAGE_ACCOUNT"), s->account)) {
        rc = burry_errf(e, BURRY_EUSAGE,
                        "AZURE_STORAGE_ACCOUNT is '%s' but '%s' names account '%s'; the key must "
                        "be the one of the account in the URL", env("AZURE_STORAGE_ACCOUNT"), url,
                        s->account);
        goto out;
    }
    if (cs) {
        cs_name = conn_field(cs, "AccountName");
        cs_blob = conn_field(cs, "BlobEndpoint");
        cs_proto = conn_field(cs, "DefaultEndpointsProtocol");
        cs_suffix = conn_field(cs, "EndpointSuffix");
        cs_key = conn_field(cs, "AccountKey");
        if (cs_name && strcmp(cs_name, s->account)) {
            rc = burry_errf(e, BURRY_EUSAGE,
                            "AZURE_STORAGE_CONNECTION_STRING is for account '%s' but '%s' names "
                            "account '%s'", cs_name, url, s->account);
            goto out;
        }
        if (!key) {
            key = cs_key;
            from = "AZURE_STORAGE_CONNECTION_STRING";
        }
    }
    const char *endpoint = o->endpoint_url;
    char *built = NULL;
    if (!endpoint && cs_blob)
        endpoint = cs_blob;
    if (!endpoint)
        endpoint = built = str_printf("%s://%s.blob.%s", cs_proto ? cs_proto : "https", s->account,
                                      cs_suffix ? cs_suffix : "core.windows.net");
    if (!endpoint) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    size_t el = strlen(endpoint);
    while (el && endpoint[el - 1] == '/')
        el--;
    if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) {
        rc = burry_errf(e, BURRY_EUSAGE, "endpoint '%.*s' must start with http:// or https://",
                        (int)el, endpoint);
    } else if (memchr(endpoint, '@', el) || memchr(endpoint, '?', el)) {
        rc = burry_errf(e, BURRY_EUSAGE,
                        "the endpoint URL must not hold credentials or a query; give the key in "
                        "the environment");
    } else {
        const char *host = strstr(endpoint, "://") + 3;
        const char *path = memchr(host, '/', el - (size_t)(host - endpoint));
        size_t pl = path ? el - (size_t)(path - endpoint) : 0;
        s->endpoint = strndup(endpoint, el);
        s->res_base = str_printf("/%s%.*s", s->account, (int)pl, path ? path : "");
        if (!s->endpoint || !s->res_base)
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    free(built);
    if (rc < 0)
        goto out;
    if (!key) {
        rc = burry_errf(e, BURRY_EUSAGE,
                        "no credentials for account '%s': set AZURE_STORAGE_KEY (with the account "
                        "from the URL) or AZURE_STORAGE_CONNECTION_STRING in the environment",
                        s->account);
        goto out;
    }
    buf_init(&s->key, 1024);
    if (b64_decode(key, strlen(key), &s->key) < 0 || s->key.len == 0) {
        buf_wipe(&s->key);
        rc = burry_errf(e, BURRY_EUSAGE, "the account key from %s is not valid base64", from);
    }
out:
    str_wipe_free(cs_key);
    free(cs_name);
    free(cs_blob);
    free(cs_proto);
    free(cs_suffix);
    return rc;
}

/* The account (rest, al bytes), the container (cont, cl bytes) and what
 * follows it (*slash2: '/' and the prefix, or NULL) of an azure:// URL. */
struct az_url {
    const char *rest, *cont, *slash2;
    size_t al, cl;
};

static struct az_url az_url_split(const char *url)
{
    struct az_url u = {.rest = url + strlen("azure://")};
    const char *slash = strchr(u.rest, '/');
    u.al = slash ? (size_t)(slash - u.rest) : strlen(u.rest);
    u.cont = slash ? slash + 1 : "";
    u.slash2 = strchr(u.cont, '/');
    u.cl = u.slash2 ? (size_t)(u.slash2 - u.cont) : strlen(u.cont);
    return u;
}

static int az_check_url(const char *url, struct burry_err *e)
{
    struct az_url u = az_url_split(url);
    if (!valid_account(u.rest, u.al) || !valid_container(u.cont, u.cl))
        return burry_errf(e, BURRY_EUSAGE,
                          "'%s': expected azure://ACCOUNT/CONTAINER[/prefix] with an account name "
                          "of 3-24 lower-case letters and digits and a container name of 3-63 "
                          "lower-case letters, digits and single '-'", url);
    return 0;
}

static int az_open(struct store **out, const char *url, const struct burry_opts *o, struct burry_err *e)
{
    struct az_url u = az_url_split(url);
    const char *rest = u.rest, *cont = u.cont, *slash2 = u.slash2;
    size_t al = u.al, cl = u.cl;
    if (az_check_url(url, e) < 0)
        return BURRY_EUSAGE;
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    s->o = o;
    s->account = strndup(rest, al);
    s->container = strndup(cont, cl);
    /* the prefix, without leading or doubled '/', ending in '/' */
    struct buf pb;
    buf_init(&pb, 4096);
    for (const char *p = slash2; p && *p; p++)
        if (*p != '/' || (pb.len && pb.p[pb.len - 1] != '/'))
            buf_putc(&pb, *p);
    if (pb.len && pb.p[pb.len - 1] != '/')
        buf_putc(&pb, '/');
    if (!pb.p)
        buf_puts(&pb, "");
    s->prefix = buf_take(&pb, NULL);
    if (!s->account || !s->container || !s->prefix) {
        az_close(s);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    int rc = find_credentials(s, url, e);
    if (rc < 0) {
        az_close(s);
        return rc;
    }
    char shown[512];
    http_shown_url(s->endpoint, shown, sizeof shown);
    s->desc = str_printf("Azure container '%s'%s%.*s%s of account '%s' at %s", s->container,
                         *s->prefix ? " (prefix '" : "", (int)(strlen(s->prefix) ? strlen(s->prefix) - 1 : 0),
                         s->prefix, *s->prefix ? "')" : "", s->account, shown);
    if (!s->desc || !(s->h = http_new(o, e))) {
        az_close(s);
        return e->msg[0] ? e->code : burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    *out = s;
    return 0;
}

static const char *az_describe(struct store *s)
{
    return s->desc;
}

/* Whether the container exists and the key is accepted; with
 * --create-bucket a missing container is created (or, without create, left
 * for put_open to create). Once per store. */
static int check_container(struct store *s, int create, struct burry_err *e)
{
    if (s->container_checked)
        return 0;
    struct http_resp r;
    struct az_req q = {.method = "HEAD", .query = {"restype", "container"},
                       .want_header = "x-ms-error-code"};
    int rc = az_call(s, s->h, &q, &r, e);
    if (rc == 0 && r.status == 404 && s->o->create_bucket && !create) {
        buf_free(&r.body);
        return 0;
    }
    if (rc == 0 && r.status == 404 && s->o->create_bucket) {
        buf_free(&r.body);
        struct az_req c = {.method = "PUT", .query = {"restype", "container"}};
        rc = az_call(s, s->h, &c, &r, e);
        if (rc == 0 && r.status != 201 && r.status != 409) /* 409: created meanwhile */
            rc = az_fail(s, "creating the container", NULL, &r, NULL, e);
        else if (rc == 0)
            blog(&s->o->log, BLOG_INFO, "created %s", s->desc);
    } else if (rc == 0 && r.status == 404) {
        rc = burry_errf(e, BURRY_EFAIL, "%s: the container does not exist (%s)", s->desc,
                        s->o->create_advice ? s->o->create_advice : "create it");
    } else if (rc == 0 && r.status == 403) {
        rc = burry_errf(e, BURRY_EFAIL, "%s: access denied (HTTP 403%s%s; check the account key)",
                        s->desc, r.header[0] ? " " : "", r.header);
    } else if (rc == 0 && r.status != 200) {
        rc = az_fail(s, "checking the container", NULL, &r, r.header, e);
    }
    if (rc == 0 || r.body.p)
        buf_free(&r.body);
    if (rc == 0)
        s->container_checked = 1;
    return rc;
}

static void put_free(struct store_put *p)
{
    if (!p)
        return;
    parts_free(p->parts);
    free(p->key);
    free(p);
}

/* Blocks need no upload to be started. */
static int begin_blocks(void *ctx, struct burry_err *e)
{
    (void)ctx;
    (void)e;
    return 0;
}

/* Block IDs must all have the same length within a blob. */
static int block_id(unsigned no, char out[PARTS_TAG_MAX])
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "burry-block-%06u", no);
    struct buf b;
    buf_init(&b, PARTS_TAG_MAX - 1);
    if (b64_encode(raw, (size_t)n, &b) < 0) {
        buf_free(&b);
        return -1;
    }
    memcpy(out, b.p, b.len + 1);
    buf_free(&b);
    return 0;
}

static int send_block(void *ctx, struct http *h, unsigned no, const void *data, size_t len,
                      char tag[PARTS_TAG_MAX], struct burry_err *e)
{
    struct store_put *p = ctx;
    struct store *s = p->s;
    char id[PARTS_TAG_MAX];
    if (block_id(no, id) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct az_req q = {.method = "PUT", .blob = p->key, .query = {"blockid", id, "comp", "block"},
                       .body = data, .len = len};
    struct http_resp r;
    int rc = az_call(s, h, &q, &r, e);
    if (rc < 0)
        return rc;
    if (r.status != 201) {
        char doing[64];
        snprintf(doing, sizeof doing, "uploading block %u of", no);
        rc = az_fail(s, doing, p->key, &r, NULL, e);
    } else {
        memcpy(tag, id, strlen(id) + 1);
    }
    buf_free(&r.body);
    return rc;
}

static int az_check_put(struct store *s, const char *name, struct burry_err *e)
{
    (void)name;
    return check_container(s, 0, e);
}

static int az_put_open(struct store *s, const char *key, struct store_put **out, struct burry_err *e)
{
    int rc = check_container(s, 1, e);
    if (rc < 0)
        return rc;
    struct store_put *p = calloc(1, sizeof *p);
    if (!p || !(p->key = str_printf("%s%s", s->prefix, key))) {
        put_free(p);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    p->s = s;
    /* an existing blob is reported now rather than after the upload */
    struct http_resp r;
    struct az_req q = {.method = "HEAD", .blob = p->key, .want_header = "x-ms-error-code"};
    if ((rc = az_call(s, s->h, &q, &r, e)) < 0) {
        put_free(p);
        return rc;
    }
    if (r.status == 200)
        rc = burry_errf(e, BURRY_EEXIST, "%s: %s exists already (never overwritten)", s->desc, key);
    else if (r.status != 404)
        rc = az_fail(s, "checking", p->key, &r, r.header, e);
    buf_free(&r.body);
    size_t part = s->o->part_size ? s->o->part_size : AZ_PART_DEFAULT;
    if (rc == 0 && part > AZ_PART_MAX)
        rc = burry_errf(e, BURRY_EUSAGE, "Azure blocks must be at most %zu MiB", AZ_PART_MAX >> 20);
    if (rc == 0 &&
        !(p->parts = parts_new(s->o, part, AZ_WORKERS, AZ_MAX_BLOCKS, begin_blocks, send_block, p, e)))
        rc = e->code ? e->code : BURRY_EFAIL;
    if (rc < 0) {
        put_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int az_put_write(struct store_put *p, const void *buf, size_t len, struct burry_err *e)
{
    return parts_write(p->parts, buf, len, e);
}

/* Blocks that were never committed are invisible, cannot be deleted one by
 * one, and are discarded by Azure after a week: there is nothing to undo. */
/* Uncommitted blocks are invisible, but would stay for a week: committing
 * an empty block list (only where no blob exists) discards them, and the
 * empty blob it makes is deleted at once. */
static void discard_blocks(struct store_put *p)
{
    struct store *s = p->s;
    static const char empty[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList></BlockList>";
    struct az_req q = {.method = "PUT", .blob = p->key, .query = {"comp", "blocklist"},
                       .ctype = "application/xml", .body = empty, .len = strlen(empty),
                       .if_none_match = 1};
    struct az_req d = {.method = "DELETE", .blob = p->key};
    struct http_resp r;
    struct burry_err e = {0};
    int was = burry_hold_interrupt(); /* the clean-up itself must not be cut short */
    int rc = az_call(s, s->h, &q, &r, &e);
    if (rc == 0) {
        int made = r.status == 201;
        buf_free(&r.body);
        if (made && az_call(s, s->h, &d, &r, &e) == 0)
            buf_free(&r.body);
        blog(&s->o->log, BLOG_INFO, "discarded the staged blocks of %s", p->key);
    } else {
        blog(&s->o->log, BLOG_WARN, "%s; the staged blocks of %s stay (invisible) until Azure "
             "discards them after a week", e.msg, p->key);
    }
    burry_resume_interrupt(was);
}

static void az_put_abort(struct store_put *p)
{
    if (!p)
        return;
    int started = p->parts && parts_started(p->parts);
    parts_free(p->parts); /* stops the workers first */
    p->parts = NULL;
    if (started)
        discard_blocks(p);
    put_free(p);
}

/* The answer to a conditional put that makes the blob visible. */
static int put_result(struct store_put *p, const char *doing, struct http_resp *r, struct burry_err *e)
{
    struct store *s = p->s;
    if (r->status == 201)
        return 0;
    if (r->status == 409 || r->status == 412)
        return burry_errf(e, BURRY_EEXIST, "%s: %s exists already (never overwritten)", s->desc,
                          p->key + strlen(s->prefix));
    return az_fail(s, doing, p->key, r, NULL, e);
}

static int commit_blocks(struct store_put *p, struct burry_err *e)
{
    struct store *s = p->s;
    struct buf body;
    buf_init(&body, 0);
    buf_puts(&body, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for (unsigned i = 1; i <= parts_count(p->parts); i++)
        buf_printf(&body, "<Latest>%s</Latest>", parts_tag(p->parts, i));
    if (buf_puts(&body, "</BlockList>") < 0) {
        buf_free(&body);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    struct az_req q = {.method = "PUT", .blob = p->key, .query = {"comp", "blocklist"},
                       .ctype = "application/xml", .body = body.p, .len = body.len,
                       .if_none_match = 1};
    struct http_resp r;
    int rc = az_call(s, s->h, &q, &r, e);
    buf_free(&body);
    if (rc < 0)
        return rc;
    rc = put_result(p, "committing the blocks of", &r, e);
    buf_free(&r.body);
    return rc;
}

static int az_put_commit(struct store_put *p, struct burry_err *e)
{
    struct store *s = p->s;
    int rc;
    if (!parts_started(p->parts)) {
        size_t len;
        const void *data = parts_pending(p->parts, &len);
        struct az_req q = {.method = "PUT", .blob = p->key, .x_ms = {"x-ms-blob-type:BlockBlob"},
                           .body = data, .len = len, .if_none_match = 1};
        struct http_resp r;
        rc = az_call(s, s->h, &q, &r, e);
        if (rc == 0) {
            rc = put_result(p, "uploading", &r, e);
            buf_free(&r.body);
        }
    } else if ((rc = parts_finish(p->parts, e)) == 0) {
        rc = commit_blocks(p, e);
    }
    az_put_abort(p);
    return rc;
}

/* One range of a blob (objget.h). */
static int fetch_range(void *ctx, unsigned long long from, unsigned long long to, struct http_resp *r,
                       struct burry_err *e)
{
    struct store_get *g = ctx;
    struct store *s = g->s;
    char range[80];
    snprintf(range, sizeof range, "x-ms-range:bytes=%llu-%llu", from, to);
    struct az_req q = {.method = "GET", .blob = g->key, .x_ms = {range},
                       .want_header = "Content-Range", .max_resp = OBJGET_RANGE + 1};
    int rc = az_call(s, s->h, &q, r, e);
    if (rc < 0 || r->status == 200 || r->status == 206 || r->status == 416)
        return rc;
    if (r->status == 404 && !strstr(r->body.p, "ContainerNotFound"))
        rc = burry_errf(e, BURRY_ENOENT, "%s: no blob %s", s->desc, g->key);
    else
        rc = az_fail(s, "downloading", g->key, r, NULL, e);
    buf_free(&r->body);
    return rc;
}

static int az_get_open(struct store *s, const char *key, struct store_get **out, struct burry_err *e)
{
    struct store_get *g = calloc(1, sizeof *g);
    if (!g || !(g->key = str_printf("%s%s", s->prefix, key)) ||
        !(g->what = str_printf("%s: %s", s->desc, g->key))) {
        az_get_close(g);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    g->s = s;
    int rc = objget_open(&g->g, fetch_range, g, g->what, e);
    if (rc < 0) {
        az_get_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

static ssize_t az_get_read(struct store_get *g, void *buf, size_t len, struct burry_err *e)
{
    return objget_read(&g->g, buf, len, e);
}

static void az_get_close(struct store_get *g)
{
    if (!g)
        return;
    objget_close(&g->g);
    free(g->key);
    free(g->what);
    free(g);
}

static int az_list(struct store *s, const char *prefix, store_list_cb cb, void *ctx, struct burry_err *e)
{
    char marker[1024] = "";
    char *full = str_printf("%s%s", s->prefix, prefix ? prefix : "");
    char *item = malloc(16384);
    if (!full || !item) {
        free(full);
        free(item);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    size_t plen = strlen(s->prefix);
    int rc = 0;
    for (;;) {
        struct az_req q = {.method = "GET", .max_resp = 16 << 20};
        int n = 0;
        q.query[n++] = "comp";
        q.query[n++] = "list";
        if (*marker) {
            q.query[n++] = "marker";
            q.query[n++] = marker;
        }
        if (*full) {
            q.query[n++] = "prefix";
            q.query[n++] = full;
        }
        q.query[n++] = "restype";
        q.query[n++] = "container";
        struct http_resp r;
        if ((rc = az_call(s, s->h, &q, &r, e)) < 0)
            break;
        if (r.status != 200) {
            rc = az_fail(s, "listing", NULL, &r, NULL, e);
            buf_free(&r.body);
            break;
        }
        const char *pos = r.body.p;
        char name[2048], size[32];
        while (rc == 0 && xml_next(r.body.p, &pos, "Blob", item, 16384)) {
            xml_first(item, "Name", name, sizeof name);
            xml_first(item, "Content-Length", size, sizeof size);
            if (strncmp(name, s->prefix, plen))
                continue;
            rc = cb(ctx, name + plen, strtoull(size, NULL, 10));
        }
        xml_first(r.body.p, "NextMarker", marker, sizeof marker);
        buf_free(&r.body);
        if (rc != 0 || !*marker)
            break;
    }
    free(item);
    free(full);
    return rc;
}

static int az_remove(struct store *s, const char *key, struct burry_err *e)
{
    char *full = str_printf("%s%s", s->prefix, key);
    if (!full)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct az_req q = {.method = "DELETE", .blob = full};
    struct http_resp r;
    int rc = az_call(s, s->h, &q, &r, e);
    if (rc == 0) {
        if (r.status != 202 && r.status != 200 && r.status != 404)
            rc = az_fail(s, "deleting", full, &r, NULL, e);
        buf_free(&r.body);
    }
    free(full);
    return rc;
}

static void az_set_drain(struct store *s, int on)
{
    http_set_drain(s->h, on);
}

const struct store_ops store_azure = {
    .scheme = "azure",
    .check_url = az_check_url,
    .open = az_open,
    .close = az_close,
    .describe = az_describe,
    .check_put = az_check_put,
    .put_open = az_put_open,
    .put_write = az_put_write,
    .put_commit = az_put_commit,
    .put_abort = az_put_abort,
    .get_open = az_get_open,
    .get_read = az_get_read,
    .get_close = az_get_close,
    .list = az_list,
    .remove = az_remove,
    .set_drain = az_set_drain,
};
