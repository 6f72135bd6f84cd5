/* Unit tests of the part uploader (parts.h) with a recording send
 * callback in place of the HTTP request: cutting into parts, the order of
 * part numbers and tags, the single-part path, the begin callback, and a
 * failing part stopping the upload with its own message. Also the XML
 * scanner the object stores read answers with (xmlscan.h). */
#include <pthread.h>
#include <stdlib.h>

#include "parts.h"
#include "t.h"
#include "xmlscan.h"

#define PART 1000
#define MAXP 64

struct rec {
    pthread_mutex_t mu;
    int begins;
    unsigned sent;
    size_t len[MAXP + 1];
    unsigned long sum[MAXP + 1];   /* byte sum of each part */
    unsigned fail_at;              /* part number that fails, 0: none */
};

static int rec_begin(void *ctx, struct burry_err *e)
{
    struct rec *r = ctx;
    r->begins++;
    return 0;
}

static int rec_send(void *ctx, struct http *h, unsigned no, const void *data, size_t len,
                    char tag[PARTS_TAG_MAX], struct burry_err *e)
{
    struct rec *r = ctx;
    if (no == r->fail_at)
        return burry_errf(e, BURRY_EFAIL, "part %u refused", no);
    unsigned long sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += ((const unsigned char *)data)[i];
    pthread_mutex_lock(&r->mu);
    if (no <= MAXP) {
        r->len[no] = len;
        r->sum[no] = sum;
    }
    r->sent++;
    pthread_mutex_unlock(&r->mu);
    snprintf(tag, PARTS_TAG_MAX, "tag-%u", no);
    return 0;
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 31 + seed) & 0xff);
}

/* Writes n bytes in chunks of step; returns the parts handle. */
static struct parts *upload(struct rec *r, const struct burry_opts *o, const unsigned char *data,
                            size_t n, size_t step, int *rc, struct burry_err *e)
{
    struct parts *p = parts_new(o, PART, 3, MAXP, rec_begin, rec_send, r, e);
    *rc = p ? 0 : -1;
    for (size_t off = 0; p && *rc == 0 && off < n; off += step)
        *rc = parts_write(p, data + off, n - off < step ? n - off : step, e);
    return p;
}

static void test_parts(void)
{
    struct burry_opts o;
    burry_opts_init(&o);
    static unsigned char data[PART * 10];
    fill(data, sizeof data, 7);
    struct burry_err e = {0};
    int rc;

    /* less than one part, and exactly one part: no multipart upload */
    size_t sizes[] = {0, 1, PART - 1, PART};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
        struct parts *p = upload(&r, &o, data, sizes[k], 333, &rc, &e);
        size_t len = 99;
        const void *pend = p ? parts_pending(p, &len) : NULL;
        char name[128];
        snprintf(name, sizeof name, "%zu bytes: not started, all bytes pending, begin not called", sizes[k]);
        T_CHECK(p && rc == 0 && !parts_started(p) && len == sizes[k] && r.begins == 0 &&
                    (len == 0 || !memcmp(pend, data, len)), name);
        parts_free(p);
    }

    /* 3.5 parts in odd-sized writes: four parts, in order, begin once */
    struct rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    size_t n = PART * 3 + PART / 2;
    struct parts *p = upload(&r, &o, data, n, 777, &rc, &e);
    T_CHECK(p && rc == 0 && parts_started(p) && r.begins == 1, "3.5 parts: started, begin ran once");
    rc = p ? parts_finish(p, &e) : -1;
    T_CHECK(rc == 0 && parts_count(p) == 4 && r.sent == 4, "3.5 parts: four parts sent");
    int ok = 1;
    for (unsigned i = 1; i <= 4; i++) {
        unsigned long sum = 0;
        size_t want = i < 4 ? PART : PART / 2;
        for (size_t j = 0; j < want; j++)
            sum += data[(i - 1) * PART + j];
        char tag[32];
        snprintf(tag, sizeof tag, "tag-%u", i);
        ok &= r.len[i] == want && r.sum[i] == sum && !strcmp(parts_tag(p, i), tag);
    }
    T_CHECK(ok, "3.5 parts: each part holds its own bytes and its tag, by number");
    T_CHECK(!strcmp(parts_tag(p, 0), "") && !strcmp(parts_tag(p, 5), ""), "no tag outside 1..count");
    parts_free(p);

    /* a failing part: its message comes back, later writes or finish fail */
    struct rec f = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_at = 2};
    memset(&e, 0, sizeof e);
    p = upload(&f, &o, data, PART * 8, 500, &rc, &e);
    if (p && rc == 0)
        rc = parts_finish(p, &e);
    T_CHECK(rc < 0 && strstr(e.msg, "part 2 refused"), "a failing part fails the upload with its message");
    parts_free(p);

    /* more parts than allowed */
    struct rec m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    memset(&e, 0, sizeof e);
    p = parts_new(&o, PART, 2, 3, rec_begin, rec_send, &m, &e);
    rc = 0;
    for (int i = 0; p && rc == 0 && i < 5; i++)
        rc = parts_write(p, data, PART, &e);
    if (p && rc == 0)
        rc = parts_finish(p, &e);
    T_CHECK(rc < 0 && strstr(e.msg, "more than 3 parts"), "more parts than the store allows is an error");
    parts_free(p);
    burry_opts_wipe(&o);
}

static void test_xml(void)
{
    const char *doc = "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>"
                      "<Contents><Key>a%2Fb</Key><Size>12</Size></Contents>"
                      "<Contents><Key>x&amp;y&lt;&#65;&#x42;&quot;</Key><Size>3</Size></Contents>"
                      "</ListBucketResult>";
    char out[64], item[256];
    const char *pos = doc;
    T_CHECK(xml_next(doc, &pos, "Contents", item, sizeof item) &&
                !strcmp(xml_first(item, "Key", out, sizeof out), "a%2Fb"),
            "xml: first element's text");
    T_CHECK(xml_next(doc, &pos, "Contents", item, sizeof item) &&
                !strcmp(xml_first(item, "Key", out, sizeof out), "x&y<AB\""),
            "xml: entities and character references decoded");
    T_CHECK(!xml_next(doc, &pos, "Contents", item, sizeof item), "xml: no third element");
    T_CHECK(!strcmp(xml_first(doc, "Missing", out, sizeof out), ""), "xml: a missing element is empty");
    T_CHECK(!strcmp(xml_first("<A>unclosed", "A", out, sizeof out), ""), "xml: an unclosed element is empty");
    char small[6];
    xml_first(doc, "IsTruncated", small, sizeof small);
    T_CHECK(strlen(small) < sizeof small, "xml: text is truncated to the buffer");
    char sum[128];
    xml_error_summary("<Error><Code>SignatureDoesNotMatch</Code><Message>bad\nsig</Message>"
                      "<StringToSign>secret-ish</StringToSign></Error>", sum, sizeof sum);
    T_CHECK(!strcmp(sum, "SignatureDoesNotMatch: bad sig"), "xml: error summary is code and message only");
    xml_error_summary("<Error><Code>NoSuchBucket</Code></Error>", sum, sizeof sum);
    T_CHECK(!strcmp(sum, "NoSuchBucket"), "xml: error summary without a message");
    xml_error_summary("not xml", sum, sizeof sum);
    T_CHECK(!strcmp(sum, ""), "xml: no summary from a non-XML body");
}

int main(void)
{
    test_parts();
    test_xml();
    T_DONE();
}
