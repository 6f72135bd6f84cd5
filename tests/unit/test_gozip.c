/* Unit tests of the reader of the original Go burry's zips (gozip.h) on the
 * fixtures it wrote (tests/fixtures/burry-go/), on damaged copies and on
 * hand-made zips with names that must be refused. Run from the repository
 * root (tests/run.sh does). */
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>

#include "buf.h"
#include "gozip.h"
#include "t.h"

#define FIX "tests/fixtures/burry-go/"

struct mem_in {
    const char *p;
    size_t len, pos;
    int rewinds;
    size_t chunk;    /* the most one read gives; 0: 700 */
};

static ssize_t mem_read(void *ctx, void *out, size_t n, struct burry_err *e)
{
    struct mem_in *m = ctx;
    size_t k = m->len - m->pos;
    if (k > n)
        k = n;
    if (k > (m->chunk ? m->chunk : 700)) /* short reads */
        k = m->chunk ? m->chunk : 700;
    memcpy(out, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

static int mem_rewind(void *ctx, struct burry_err *e)
{
    struct mem_in *m = ctx;
    m->pos = 0;
    m->rewinds++;
    return 0;
}

static int load(const char *path, struct buf *b)
{
    FILE *f = fopen(path, "rb");
    char tmp[4096];
    size_t k;
    buf_init(b, 0);
    if (!f)
        return -1;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(b, tmp, k);
    fclose(f);
    return 0;
}

struct want {
    const char *path;
    size_t path_len;
    const char *value;
    size_t value_len;
};

#define W(p, v) {p, sizeof p - 1, v, sizeof v - 1}

/* Read every node; check the set against want and that each node's nearest
 * listed ancestor came before it. */
static void check_fixture(const char *file, const char *service, const struct want *want,
                          size_t nwant, unsigned long long skipped)
{
    struct buf zip;
    char name[1400];
    struct burry_err e = {0};
    int okload = load(file, &zip) == 0;
    snprintf(name, sizeof name, "%s loads", file);
    T_CHECK(okload, name);
    if (!okload)
        return;
    struct mem_in m = {.p = zip.p, .len = zip.len};
    struct gozip *z = gozip_open(mem_read, mem_rewind, &m, NULL, &e);
    snprintf(name, sizeof name, "%s opens (%s)", file, e.msg);
    T_CHECK(z != NULL, name);
    if (!z) {
        buf_free(&zip);
        return;
    }
    json_t *mf = gozip_manifest(z);
    snprintf(name, sizeof name, "%s: service %s", file, service);
    T_CHECK(!strcmp(json_string_value(json_object_get(mf, "service")), service), name);
    snprintf(name, sizeof name, "%s: manifest counts %zu nodes", file, nwant);
    T_CHECK(json_integer_value(json_object_get(mf, "nodes")) == (json_int_t)nwant, name);
    snprintf(name, sizeof name, "%s: no checksums, format %s", file, GOZIP_FORMAT);
    T_CHECK(json_is_false(json_object_get(mf, "checksums")) &&
                !strcmp(json_string_value(json_object_get(mf, "format")), GOZIP_FORMAT),
            name);
    snprintf(name, sizeof name, "%s: skipped %llu", file, skipped);
    T_CHECK((unsigned long long)json_integer_value(
                json_object_get(json_object_get(mf, "skipped"), "zookeeper_subtree")) == skipped,
            name);

    char seen[64] = {0};
    struct buf order[64];
    size_t got = 0, bad = 0, misordered = 0, unknown = 0;
    struct bnode n;
    int rc;
    while ((rc = gozip_next(z, &n, &e)) == 1) {
        if (n.attrs || !n.has_value)
            bad++;
        size_t i;
        for (i = 0; i < nwant; i++)
            if (want[i].path_len == n.path_len && !memcmp(want[i].path, n.path, n.path_len))
                break;
        if (i == nwant) {
            unknown++;
            fprintf(stderr, "# unexpected node '%.*s'\n", (int)n.path_len, n.path);
            continue;
        }
        if (seen[i]++ || n.value_len != want[i].value_len ||
            memcmp(n.value, want[i].value, n.value_len))
            bad++;
        /* every strict prefix ending before a '/' that is a node came earlier */
        for (size_t k = n.path_len; k-- > 0;) {
            if (n.path[k] != '/')
                continue;
            for (size_t j = 0; j < nwant; j++)
                if (want[j].path_len == k && !memcmp(want[j].path, n.path, k) && !seen[j])
                    misordered++;
        }
        if (got < 64) {
            buf_init(&order[got], 0);
            buf_append(&order[got], n.path, n.path_len);
        }
        got++;
    }
    snprintf(name, sizeof name, "%s: read to the end (%s)", file, e.msg);
    T_CHECK(rc == 0, name);
    snprintf(name, sizeof name, "%s: %zu nodes, each once, values exact", file, nwant);
    T_CHECK(got == nwant && !bad && !unknown, name);
    snprintf(name, sizeof name, "%s: parents before children", file);
    T_CHECK(misordered == 0, name);
    for (size_t i = 0; i < got && i < 64; i++)
        buf_free(&order[i]);
    gozip_free(z);

    /* the description alone, from the first entry */
    json_t *peek = NULL;
    m.pos = 0;
    rc = gozip_peek(mem_read, &m, "1234", &peek, &e);
    snprintf(name, sizeof name, "%s: peek gives the service and the ID", file);
    T_CHECK(rc == 0 && !strcmp(json_string_value(json_object_get(peek, "service")), service) &&
                !strcmp(json_string_value(json_object_get(peek, "snapshot")), "1234"),
            name);
    json_decref(peek);
    buf_free(&zip);
}

static void test_fixtures(void)
{
    static const struct want zk[] = {
        W("", ""),
        W("/edge", "parent"),
        W("/edge/.burrymeta", "dotname"),
        W("/edge/a:b", "colon"),
        W("/edge/bin",
          "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17"
          "\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
          "abcdefghijklmnopqrstuvwxyz{|}~\x7f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f"
          "\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7"
          "\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf"
          "\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7"
          "\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef"
          "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"),
        W("/edge/bin2", "\xff\xfe\x00" "abc\xc3("),
        W("/edge/empty", ""),
        W("/edge/eph", "ephval"),
        W("/edge/null", ""),
        W("/edge/p", "parentval"),
        W("/edge/seq-0000000006", "seqval"),
        W("/edge/sp ace", "space"),
        W("/edge/x:y", "literal"),
    };
    check_fixture(FIX "zk-edge-1795249013.zip", "zookeeper", zk, sizeof zk / sizeof zk[0], 3);

    static const struct want etcd[] = {
        W("/edge/a:b", "colon"),
        W("/edge/bin", "\xef\xbf\xbd\xef\xbf\xbd\x00" "abc\xef\xbf\xbd("),
        W("/edge/empty", ""),
        W("/edge/nl", "line1\nline2"),
        W("/edge/p/content", "childval"),
        W("/edge/ttl", "ttlval"),
        W("/foo/bar", "hello"),
    };
    check_fixture(FIX "etcd-edge-1795249050.zip", "etcd2", etcd, sizeof etcd / sizeof etcd[0], 0);

    static const struct want consul[] = {
        W("/app/a:b", "colon"),
        W("/app/bin", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13"
                      "\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !\"#$%&'()*+,-./0123456789:;<=>?@"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f\x80\x81\x82\x83"
                      "\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
                      "\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad"
                      "\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xc0\xc1\xc2"
                      "\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7"
                      "\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec"
                      "\xed\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"),
        W("/app/db/host", "db1"),
        W("/app/db/port", "5432"),
        W("/app/flagged", "f"),
        W("/foo/bar", "hello"),
    };
    check_fixture(FIX "consul-edge-1795249075.zip", "consul", consul, sizeof consul / sizeof consul[0], 0);
}

/* A flipped byte inside a deflated value fails the first read. */
static void test_damaged(void)
{
    struct buf zip;
    struct burry_err e = {0};
    T_CHECK(load(FIX "zk-edge-1795249013.zip", &zip) == 0, "damaged: load");
    /* the 256-byte value of edge/bin sits after its local header */
    const char *hdr = memmem(zip.p, zip.len, "1795249013/edge/bin/content", 27);
    T_CHECK(hdr != NULL, "damaged: entry found");
    if (!hdr) {
        buf_free(&zip);
        return;
    }
    size_t at = (size_t)(hdr - zip.p) + 27 + 100;
    zip.p[at] ^= 0x5a;
    struct mem_in m = {.p = zip.p, .len = zip.len};
    struct gozip *z = gozip_open(mem_read, mem_rewind, &m, NULL, &e);
    T_CHECK(z == NULL && e.code == BURRY_EFAIL, "damaged: refused on the first read");
    T_CHECK(strstr(e.msg, "damaged") != NULL, "damaged: the message says damaged");
    gozip_free(z);
    buf_free(&zip);
}

/* ---- hand-made zips ---- */

static la_ssize_t w_cb(struct archive *a, void *cd, const void *p, size_t n)
{
    buf_append(cd, p, n);
    return (la_ssize_t)n;
}

static void make_zip(struct buf *out, const char *const *names, size_t count)
{
    struct archive *a = archive_write_new();
    buf_init(out, 0);
    archive_write_set_format_zip(a);
    archive_write_open(a, out, NULL, w_cb, NULL);
    for (size_t i = 0; i < count; i++) {
        struct archive_entry *ent = archive_entry_new();
        const char *data = strstr(names[i], ".burrymeta") ? "{\"svc\":\"zk\"}" : "v";
        archive_entry_set_pathname(ent, names[i]);
        archive_entry_set_filetype(ent, AE_IFREG);
        archive_entry_set_perm(ent, 0644);
        archive_entry_set_size(ent, (la_int64_t)strlen(data));
        archive_write_header(a, ent);
        archive_write_data(a, data, strlen(data));
        archive_entry_free(ent);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static void refused(const char *label, const char *const *names, size_t count, const char *why)
{
    struct buf zip;
    struct burry_err e = {0};
    char name[1400];
    make_zip(&zip, names, count);
    struct mem_in m = {.p = zip.p, .len = zip.len};
    struct gozip *z = gozip_open(mem_read, mem_rewind, &m, NULL, &e);
    snprintf(name, sizeof name, "refused: %s (%s)", label, e.msg);
    T_CHECK(z == NULL && strstr(e.msg, why) != NULL, name);
    gozip_free(z);
    buf_free(&zip);
}

static void test_refused(void)
{
    static const char *dotdot[] = {"1/.burrymeta", "1/a/../../etc/content"};
    refused("'..' component", dotdot, 2, "'..'");
    static const char *outside[] = {"1/.burrymeta", "2/a/content"};
    refused("entry outside the directory", outside, 2, "outside");
    static const char *absolute[] = {"1/.burrymeta", "/1/a/content"};
    refused("absolute entry", absolute, 2, "outside");
    static const char *nometa[] = {"1/a/content"};
    refused("no .burrymeta first", nometa, 1, "not one of its archives");
    static const char *stray[] = {"1/.burrymeta", "1/a/data"};
    refused("an entry that is not a value", stray, 2, "not a node's value");
    static const char *dup[] = {"1/.burrymeta", "1/a/content", "1/a/content"};
    refused("a node twice", dup, 3, "twice");
    static const char *empty[] = {"1/.burrymeta", "1/a//b/content"};
    refused("empty component", empty, 2, "empty");

    /* and a well-formed hand-made one: a child listed before its parent */
    static const char *good[] = {"1/.burrymeta", "1/a/b/c/content", "1/a/b/content", "1/a/content"};
    struct buf zip;
    struct burry_err e = {0};
    make_zip(&zip, good, 4);
    struct mem_in m = {.p = zip.p, .len = zip.len};
    struct gozip *z = gozip_open(mem_read, mem_rewind, &m, NULL, &e);
    T_CHECK(z != NULL, "hand-made zip opens");
    struct bnode n;
    char got[64] = "";
    while (z && gozip_next(z, &n, &e) == 1)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%.*s;", (int)n.path_len, n.path);
    T_CHECK(!strcmp(got, "/a;/a/b;/a/b/c;"), "deepest-first listing comes out parents first");
    T_CHECK(m.rewinds == 3, "one more read per level listed before its parent");
    gozip_free(z);
    buf_free(&zip);
}

/* ---- the central directory ---- */

/* Every node of a zip as "path\\0value" strings, sorted, joined with '\\n'
 * into out: 0, or <0 (e->msg) when the reader refuses the zip. */
static int by_str(const void *a, const void *b)
{
    const struct buf *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int plan_of(const char *p, size_t len, size_t chunk, struct buf *out, struct burry_err *e)
{
    struct mem_in m = {.p = p, .len = len, .chunk = chunk};
    struct gozip *z = gozip_open(mem_read, mem_rewind, &m, NULL, e);
    struct buf v[64];
    size_t n = 0;
    struct bnode nd;
    int rc = z ? 0 : -1;
    buf_init(out, 0);
    while (z && (rc = gozip_next(z, &nd, e)) == 1 && n < 64) {
        buf_init(&v[n], 0);
        buf_append(&v[n], nd.path, nd.path_len);
        buf_putc(&v[n], 0);
        buf_append(&v[n], nd.value, nd.value_len);
        n++;
    }
    if (rc == 1)
        rc = -1; /* more nodes than any fixture has */
    if (z && rc == 0) {
        json_t *mf = gozip_manifest(z);
        buf_printf(out, "%s %lld\n", json_string_value(json_object_get(mf, "service")),
                   (long long)json_integer_value(
                       json_object_get(json_object_get(mf, "skipped"), "zookeeper_subtree")));
    }
    qsort(v, n, sizeof v[0], by_str);
    for (size_t i = 0; i < n; i++) {
        buf_append(out, v[i].p, v[i].len);
        buf_putc(out, '\n');
        buf_free(&v[i]);
    }
    gozip_free(z);
    return rc;
}

/* Flip every byte of each fixture in turn (three ways): each copy must be
 * refused or give exactly the original nodes and values. The streaming
 * reader alone accepted copies with a local header's signature or name
 * damaged, with a node missing or renamed. */
static void test_fuzz(void)
{
    static const char *files[] = {FIX "etcd-edge-1795249050.zip", FIX "zk-edge-1795249013.zip",
                                  FIX "consul-edge-1795249075.zip"};
    static const unsigned char masks[] = {0xff, 0x01, 0x20};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        struct buf zip, want, got;
        struct burry_err e = {0};
        char name[1400];
        T_CHECK(load(files[f], &zip) == 0, "fuzz: load");
        int rc = plan_of(zip.p, zip.len, 0, &want, &e);
        snprintf(name, sizeof name, "fuzz: %s reads (%s)", files[f], e.msg);
        T_CHECK(rc == 0, name);
        size_t refused = 0, same = 0, other = 0;
        for (size_t i = 0; i < zip.len; i++)
            for (size_t k = 0; k < sizeof masks; k++) {
                struct burry_err e2 = {0};
                zip.p[i] ^= (char)masks[k];
                /* a different read size for each copy: where the reads end
                 * must not matter */
                rc = plan_of(zip.p, zip.len, 1 + (i * 7 + k * 131) % 900, &got, &e2);
                zip.p[i] ^= (char)masks[k];
                if (rc < 0)
                    refused++;
                else if (got.len == want.len && !memcmp(got.p, want.p, want.len))
                    same++;
                else if (other++ < 5)
                    printf("# %s: byte %zu ^ 0x%02x gives other nodes\n", files[f], i, masks[k]);
                buf_free(&got);
            }
        snprintf(name, sizeof name,
                 "fuzz: %s, each byte flipped 3 ways: %zu refused, %zu the same nodes, %zu other nodes",
                 files[f], refused, same, other);
        T_CHECK(other == 0 && refused > 0, name);
        buf_free(&want);
        buf_free(&zip);
    }
}

/* Offsets in the etcd fixture: the i-th occurrence (0: local header, 1:
 * central directory) of a name. */
static size_t name_at(struct buf *zip, const char *nm, int which)
{
    const char *p = zip->p, *end = zip->p + zip->len;
    for (;;) {
        const char *q = memmem(p, (size_t)(end - p), nm, strlen(nm));
        if (!q)
            return 0;
        if (which-- == 0)
            return (size_t)(q - zip->p);
        p = q + 1;
    }
}

static void cd_case(const char *label, size_t at, unsigned char mask, const char *why)
{
    struct buf zip, plan;
    struct burry_err e = {0};
    char name[1400];
    load(FIX "etcd-edge-1795249050.zip", &zip);
    if (mask == 0 && at == 0) /* cut the end record */
        zip.len -= 22;
    else if (mask == 0) /* append */
        buf_append(&zip, at == 1 ? "\0\0\0\0\0\0\0\0" : "junk", at == 1 ? 8 : 4);
    else
        zip.p[at] ^= (char)mask;
    int rc = plan_of(zip.p, zip.len, 0, &plan, &e);
    if (why) {
        snprintf(name, sizeof name, "central directory: %s is refused (%s)", label, e.msg);
        T_CHECK(rc < 0 && strstr(e.msg, "damaged") && strstr(e.msg, why), name);
    } else {
        snprintf(name, sizeof name, "central directory: %s is read (%s)", label, e.msg);
        T_CHECK(rc == 0, name);
    }
    buf_free(&plan);
    buf_free(&zip);
}

static void test_central(void)
{
    struct buf zip;
    load(FIX "etcd-edge-1795249050.zip", &zip);
    const char *empty = "1795249050/edge/empty/content";
    size_t lname = name_at(&zip, empty, 0), cname = name_at(&zip, empty, 1);
    size_t eocd = zip.len - 22;
    buf_free(&zip);
    T_CHECK(lname > 30 && cname > lname, "central directory: the fixture's names found");
    cd_case("a damaged local header signature", lname - 30, 0xff, "where no entry was read");
    cd_case("a damaged name in a local header", lname + 16, 0x01, "in its local header but");
    cd_case("a damaged name in the central directory", cname + 16, 0x01, "in its local header but");
    cd_case("a damaged CRC-32 in the central directory", cname - 46 + 16, 0x01, "CRC-32");
    cd_case("a damaged size in the central directory", cname - 46 + 24, 0x01, "size");
    cd_case("a damaged compressed size in the central directory", cname - 46 + 20, 0x01,
            "does not end where");
    cd_case("a damaged local header offset in the central directory", cname - 46 + 42, 0x01,
            "where no entry was read");
    cd_case("a damaged entry count in the end record", eocd + 10, 0x01, "end record describes");
    cd_case("a damaged directory offset in the end record", eocd + 16, 0x01, "end record describes");
    cd_case("a missing end record", 0, 0, "truncated");
    cd_case("bytes after the end record", 2, 0, "bytes after");
    cd_case("zero padding after the end record", 1, 0, NULL);
}

/* Go's archive/zip sets the UTF-8 flag (bit 11) on a non-ASCII name; an
 * archive may also hold other bytes with the flag clear. Either way the
 * node's name is the name's bytes (libarchive gives no name at all for the
 * first in the C locale). */
static void flagged(struct buf *zip, const char *nm, int utf8)
{
    for (int which = 0; which < 2; which++) {
        size_t at = name_at(zip, nm, which);
        size_t flags = which == 0 ? at - 30 + 6 : at - 46 + 8;
        if (!at)
            continue;
        zip->p[flags + 1] = (char)((zip->p[flags + 1] & ~0x08) | (utf8 ? 0x08 : 0));
    }
}

static void test_names(void)
{
    static const char *utf8[] = {"1/.burrymeta", "1/caf\xc3\xa9/content"};
    static const char *latin1[] = {"1/.burrymeta", "1/caf\xe9/content"};
    struct buf zip, plan;
    struct burry_err e = {0};
    make_zip(&zip, utf8, 2);
    flagged(&zip, utf8[1], 1);
    int rc = plan_of(zip.p, zip.len, 0, &plan, &e);
    T_CHECK(rc == 0 && memmem(plan.p, plan.len, "\n/caf\xc3\xa9\0v\n", 10),
            "a UTF-8 name (flag set) is the node's name, byte for byte");
    buf_free(&plan);
    buf_free(&zip);
    make_zip(&zip, latin1, 2);
    flagged(&zip, latin1[1], 0);
    rc = plan_of(zip.p, zip.len, 0, &plan, &e);
    T_CHECK(rc == 0 && memmem(plan.p, plan.len, "\n/caf\xe9\0v\n", 9),
            "a name of other bytes (flag clear) is the node's name, byte for byte");
    buf_free(&plan);
    buf_free(&zip);
}

static void test_ids(void)
{
    char *id = gozip_id_from_path("x/y/1795249013.zip");
    T_CHECK(id && !strcmp(id, "1795249013"), "ID from a file name");
    free(id);
    T_CHECK(gozip_id_from_path("x/.zip") == NULL && gozip_id_from_path("a.tar") == NULL,
            "no ID from other names");
    T_CHECK(gozip_valid_id("1795249013") && !gozip_valid_id("17x") && !gozip_valid_id(""),
            "old IDs are digits");
}

int main(void)
{
    test_fixtures();
    test_damaged();
    test_refused();
    test_central();
    test_names();
    test_fuzz();
    test_ids();
    T_DONE();
}
