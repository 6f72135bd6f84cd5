/* Unit tests of the snapshot archive format (format.h): write nodes to
 * memory with each compression, read them back, check determinism, damage
 * detection, and that stock tar and sha256sum agree with the format. */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "jsonout.h"
#include "names.h"
#include "t.h"

/* ---- memory streams ---- */

static int mem_write(void *ctx, const void *p, size_t n, struct burry_err *e)
{
    if (buf_append(ctx, p, n) < 0)
        return burry_errf(e, BURRY_EFAIL, "memory archive too big");
    return 0;
}

struct mem_in {
    const char *p;
    size_t len, pos, step; /* step: largest read, to exercise short reads */
};

static ssize_t mem_read(void *ctx, void *out, size_t n, struct burry_err *e)
{
    struct mem_in *m = ctx;
    size_t k = m->len - m->pos;
    if (k > n)
        k = n;
    if (m->step && k > m->step)
        k = m->step;
    memcpy(out, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

/* ---- the sample tree ---- */

#define NNODES 11
#define BIG_LEN ((size_t)1 << 20)

struct sample {
    char path[512];
    size_t path_len;
    char *value;
    size_t value_len;
    int has_value;
    json_t *attrs;
};

static struct sample nodes[NNODES];
#define LONG_LEN 480 /* its archive names pass 445 bytes: nodes_line in pieces */
static char long_name[LONG_LEN + 1];

static void set_node(int i, const char *path, size_t plen, const char *v, size_t vlen, int has,
                     json_t *attrs)
{
    memcpy(nodes[i].path, path, plen);
    nodes[i].path_len = plen;
    nodes[i].value = has ? malloc(vlen ? vlen : 1) : NULL;
    if (has && vlen)
        memcpy(nodes[i].value, v, vlen);
    nodes[i].value_len = has ? vlen : 0;
    nodes[i].has_value = has;
    nodes[i].attrs = attrs;
}

static void build_nodes(void)
{
    set_node(0, "", 0, "root-data", 9, 1, json_pack("{s:s,s:i}", "type", "root", "version", 3));
    set_node(
        1, "/a", 2, "A", 1, 1,
        json_pack("{s:[{s:s,s:i}],s:b}", "acl", "scheme", "world", "perms", 31, "container", 1));
    set_node(2, "/a/content", 10, "content-value", 13, 1, NULL);
    set_node(3, "/a/null", 7, NULL, 0, 0, NULL);
    set_node(4, "/a/empty", 8, "", 0, 1, json_object());
    memset(long_name, 'L', LONG_LEN);
    long_name[0] = '/';
    long_name[150] = ' ';
    long_name[240] = '/';
    set_node(5, long_name, LONG_LEN, "long-name-value", 15, 1, NULL);
    set_node(6, "/bin", 4, "\0\x01\xff\xfe\n\r\0", 7, 1, json_pack("{s:s}", "note", "bin\xc3\xa9"));
    char *big = malloc(BIG_LEN);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < BIG_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (char)(x & 0xff);
    }
    set_node(7, "/big", 4, big, BIG_LEN, 1, NULL);
    free(big);
    set_node(8, "/@meta", 6, "at-meta", 7, 1, NULL);
    set_node(9, "//x", 3, "empty-segment", 13, 1, NULL);
    set_node(10, "/.", 2, NULL, 0, 0, json_pack("{s:n}", "nothing"));
}

static void free_nodes(void)
{
    for (int i = 0; i < NNODES; i++) {
        free(nodes[i].value);
        json_decref(nodes[i].attrs);
    }
}

static struct bnode as_bnode(const struct sample *s)
{
    struct bnode n = {.path = s->path, .path_len = s->path_len, .value = s->value,
                      .value_len = s->value_len, .has_value = s->has_value, .attrs = s->attrs};
    return n;
}

#define BIG_NODE 7

static int attrs_as_text; /* write_some hands attrs over as attrs_json */

/* Write the sample tree (without its big node if small) into out; the
 * archive's SHA-256 and size if asked. */
static int write_some(enum burry_compress c, int small, struct buf *out, json_t *manifest,
                      char *sha, uint64_t *size, struct burry_err *e)
{
    buf_init(out, 0);
    struct fmt_writer *w = fmt_writer_new(c, mem_write, out, e);
    if (!w)
        return -1;
    int rc = 0;
    for (int i = 0; i < NNODES && rc == 0; i++) {
        if (small && i == BIG_NODE)
            continue;
        struct bnode n = as_bnode(&nodes[i]);
        struct buf txt;
        buf_init(&txt, 0);
        if (attrs_as_text && n.attrs) { /* as a flat source hands them over */
            if (jsonout_compact(&txt, n.attrs) < 0)
                rc = -1;
            n.attrs_json = txt.p, n.attrs_json_len = txt.len, n.attrs = NULL;
        }
        if (rc == 0)
            rc = fmt_writer_add(w, &n, e);
        buf_free(&txt);
    }
    if (rc == 0)
        rc = fmt_writer_finish(w, manifest, e);
    if (rc == 0 && sha)
        snprintf(sha, 65, "%s", fmt_writer_archive_sha256(w));
    if (rc == 0 && size)
        *size = fmt_writer_archive_size(w);
    if (rc == 0 && (fmt_writer_nodes(w) != (uint64_t)(NNODES - small)))
        rc = -1;
    fmt_writer_free(w);
    return rc;
}

static int write_archive(enum burry_compress c, struct buf *out, json_t *manifest, char *sha,
                         uint64_t *size, struct burry_err *e)
{
    return write_some(c, 0, out, manifest, sha, size, e);
}

static int node_matches(const struct bnode *n, const struct sample *s)
{
    static json_t *empty;
    if (!empty)
        empty = json_object();
    if (n->path_len != s->path_len || memcmp(n->path, s->path, s->path_len) != 0)
        return 0;
    if (n->has_value != s->has_value)
        return 0;
    if (s->has_value && (!n->value || n->value_len != s->value_len ||
                         memcmp(n->value, s->value ? s->value : "", s->value_len) != 0))
        return 0;
    if (!s->has_value && (n->value || n->value_len))
        return 0;
    return json_equal(n->attrs, s->attrs ? s->attrs : empty);
}

/* Read a whole archive. Returns the final reader result (0 = verified), and
 * counts matching nodes in *matched. */
static int read_archive_of(int small, const char *p, size_t len, size_t step, int *matched,
                           json_t **manifest, char *sha, struct burry_err *e)
{
    struct mem_in in = {p, len, 0, step};
    struct fmt_reader *r = fmt_reader_new(mem_read, &in, e);
    if (!r)
        return -1;
    int rc, i = 0;
    struct bnode n;
    if (matched)
        *matched = 0;
    while ((rc = fmt_reader_next(r, &n, e)) == 1) {
        if (small && i == BIG_NODE)
            i++;
        if (matched && i < NNODES && node_matches(&n, &nodes[i]))
            (*matched)++;
        i++;
    }
    if (rc == 0 && manifest)
        *manifest = json_incref(fmt_reader_manifest(r));
    if (rc == 0 && sha) {
        snprintf(sha, 65, "%s", fmt_reader_archive_sha256(r));
        if (fmt_reader_archive_size(r) != len)
            rc = -99;
    }
    fmt_reader_free(r);
    return rc;
}

static int read_archive(const char *p, size_t len, size_t step, int *matched, json_t **manifest,
                        char *sha, struct burry_err *e)
{
    return read_archive_of(0, p, len, step, matched, manifest, sha, e);
}

static void sha256_of(const void *p, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int dl;
    EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
}

/* ---- hand-made archives for the reader's structural checks ---- */

struct ent {
    const char *name;
    const char *data; /* NULL: a directory */
};

static int craft(struct buf *out, const struct ent *ents, size_t n)
{
    buf_init(out, 0);
    size_t cap = 1 << 20, used = 0;
    char *mem = malloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_none(a);
    if (archive_write_open_memory(a, mem, cap, &used) != ARCHIVE_OK) {
        archive_write_free(a);
        free(mem);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, ents[i].name);
        if (ents[i].data) {
            archive_entry_set_filetype(en, AE_IFREG);
            archive_entry_set_perm(en, 0644);
            archive_entry_set_size(en, (la_int64_t)strlen(ents[i].data));
        } else {
            archive_entry_set_filetype(en, AE_IFDIR);
            archive_entry_set_perm(en, 0755);
        }
        archive_write_header(a, en);
        if (ents[i].data)
            archive_write_data(a, ents[i].data, strlen(ents[i].data));
        archive_entry_free(en);
    }
    archive_write_close(a);
    archive_write_free(a);
    buf_append(out, mem, used);
    free(mem);
    return 0;
}

/* The manifest.json text for hand-made archives of the given @meta entries. */
static char *manifest_for(const struct ent *ents, size_t n, long nnodes, long bytes, int version)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(ents[i].name);
        if (!ents[i].data || l < 6 || strcmp(ents[i].name + l - 6, "/@meta") != 0)
            continue;
        char hex[65];
        sha256_of(ents[i].data, strlen(ents[i].data), hex);
        EVP_DigestUpdate(md, hex, 64);
        EVP_DigestUpdate(md, "  ", 2);
        EVP_DigestUpdate(md, ents[i].name, l);
        EVP_DigestUpdate(md, "\n", 1);
    }
    unsigned char d[32];
    unsigned int dl;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    char hex[65];
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
    char *out = malloc(512);
    snprintf(out, 512,
             "{\"format\": \"burry-snapshot\", \"format_version\": %d, \"nodes\": %ld, "
             "\"bytes\": %ld, \"nodes_sha256\": \"%s\", \"compression\": \"none\"}\n",
             version, nnodes, bytes, hex);
    return out;
}

/* Reader result on a hand-made archive; the message lands in e. */
static int read_crafted(const struct ent *ents, size_t n, struct burry_err *e)
{
    struct buf b;
    if (craft(&b, ents, n) < 0)
        return -100;
    burry_err_clear(e);
    int rc = read_archive(b.p, b.len, 0, NULL, NULL, NULL, e);
    buf_free(&b);
    return rc;
}

#define META_A "{\"attrs\":{},\"sha256\":null,\"size\":null}\n"
#define META_V                                                                                     \
    "{\"attrs\":{},\"sha256\":"                                                                    \
    "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"size\":3}\n"

static void test_structure(void)
{
    struct burry_err e = {0};
    char *man;

    /* A well-formed hand-made archive with directory entries reads. */
    {
        struct ent ents[] = {{"tree/", NULL},         {"tree/@meta", META_A},
                             {"tree/a/", NULL},       {"tree/a/@meta", META_V},
                             {"tree/a/@data", "abc"}, {"manifest.json", NULL}};
        man = manifest_for(ents, 5, 2, 3, 1);
        ents[5].data = man;
        T_CHECK(read_crafted(ents, 6, &e) == 0, "directory entries are skipped");
        free(man);
    }
    {
        struct ent ents[] = {{"tree/a/@data", "abc"}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "'tree/a/@data' has no '@meta'"),
                "an @data without @meta fails");
    }
    {
        struct ent ents[] = {{"tree/a/@meta", META_A}, {"other.txt", "x"}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 3, &e) < 0 && strstr(e.msg, "'other.txt' is not part of"),
                "an entry outside tree/ fails");
    }
    {
        struct ent ents[] = {
            {"tree/a/@meta", META_A}, {"tree/a/@meta", META_A}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 3, &e) < 0 && strstr(e.msg, "appears twice"),
                "the same node twice in a row fails");
    }
    {
        struct ent ents[] = {{"tree/a/@meta", META_A}};
        T_CHECK(read_crafted(ents, 1, &e) < 0 && strstr(e.msg, "without 'manifest.json'"),
                "a missing manifest fails");
    }
    {
        struct ent ents[] = {
            {"tree/a/@meta", META_V}, {"tree/b/@data", "abc"}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 3, &e) < 0 && strstr(e.msg, "'tree/a/@data' is missing"),
                "an @meta with a size needs its own @data next");
    }
    {
        struct ent ents[] = {
            {"tree/a/@meta", META_V}, {"tree/a/@data", "abd"}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 3, &e) < 0 && strstr(e.msg, "'tree/a/@data': checksum mismatch"),
                "a wrong value fails with a checksum message");
    }
    {
        struct ent ents[] = {
            {"tree/a/@meta", META_V}, {"tree/a/@data", "abcd"}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 3, &e) < 0 && strstr(e.msg, "'tree/a/@data': size mismatch"),
                "a value of the wrong size fails");
    }
    {
        struct ent ents[] = {{"tree/a%41/@meta", META_A}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "not a valid encoded node name"),
                "a non-canonical name fails");
    }
    {
        struct ent ents[] = {{"tree/a/@meta", "{\"attrs\":{},\"sha256\":null}\n"},
                             {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "exactly 'attrs'"),
                "an @meta without 'size' fails");
    }
    {
        struct ent ents[] = {{"tree/a/@meta", "{\"attrs\":{},\"sha256\":null,\"size\":3}\n"},
                             {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "must both be null"),
                "an @meta with a size but no sha256 fails");
    }
    {
        struct ent ents[] = {{"tree/a/@meta", "not json"}, {"manifest.json", "{}"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "invalid JSON"),
                "an @meta that is not JSON fails");
    }
    {
        struct ent ents[] = {
            {"tree/a/@meta", META_A}, {"manifest.json", NULL}, {"tree/b/@meta", META_A}};
        man = manifest_for(ents, 1, 1, 0, 1);
        ents[1].data = man;
        T_CHECK(read_crafted(ents, 3, &e) < 0 &&
                    strstr(e.msg, "'tree/b/@meta' follows 'manifest.json'"),
                "an entry after the manifest fails");
        free(man);
    }
    {
        struct ent ents[] = {{"tree/a/@meta", META_A}, {"manifest.json", NULL}};
        man = manifest_for(ents, 1, 1, 0, 2);
        ents[1].data = man;
        T_CHECK(
            read_crafted(ents, 2, &e) < 0 &&
                strstr(e.msg, "snapshot format version 2 is newer than this burry supports (1)"),
            "a newer format version fails");
        free(man);
    }
    {
        struct ent ents[] = {{"tree/a/@meta", META_A}, {"manifest.json", NULL}};
        man = manifest_for(ents, 1, 2, 0, 1);
        ents[1].data = man;
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "node count mismatch"),
                "a wrong node count fails");
        free(man);
    }
    {
        struct ent ents[] = {{"tree/a/@meta", META_A}, {"manifest.json", NULL}};
        man = manifest_for(ents, 1, 1, 5, 1);
        ents[1].data = man;
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "byte count mismatch"),
                "a wrong byte count fails");
        free(man);
    }
    {
        /* nodes_sha256 computed over a different @meta text */
        struct ent other[] = {
            {"tree/a/@meta", "{\"attrs\":{\"x\":1},\"sha256\":null,\"size\":null}\n"}};
        struct ent ents[] = {{"tree/a/@meta", META_A}, {"manifest.json", NULL}};
        man = manifest_for(other, 1, 1, 0, 1);
        ents[1].data = man;
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "nodes_sha256 mismatch"),
                "a wrong nodes_sha256 fails");
        free(man);
    }
    {
        struct ent ents[] = {
            {"tree/a/@meta", META_A},
            {"manifest.json", "{\"format\": \"burry-snapshot\", \"format_version\": 7}\n"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "version 7 is newer"),
                "a newer format version is reported even if other fields changed");
    }
    {
        struct ent ents[] = {
            {"tree/a/@meta", META_A},
            {"manifest.json", "{\"format\": \"burry-snapshot\", \"format_version\": 1}\n"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 && strstr(e.msg, "lacks 'nodes'"),
                "a manifest without counts fails");
    }
    {
        struct ent ents[] = {{"tree/a/@meta", META_A}, {"manifest.json", NULL}};
        man = manifest_for(ents, 1, 1, 0, 1);
        ents[1].data = man;
        struct buf b;
        craft(&b, ents, 2);
        /* Cut the end-of-archive marker off: libarchive alone accepts that. */
        size_t cut = b.len;
        while (cut >= 512 && memcmp(b.p + cut - 512, (char[512]){0}, 512) == 0)
            cut -= 512;
        burry_err_clear(&e);
        int rc = read_archive(b.p, cut, 0, NULL, NULL, NULL, &e);
        T_CHECK(cut < b.len && rc < 0 && strstr(e.msg, "no end-of-archive marker"),
                "an archive cut right after the manifest fails");
        buf_free(&b);
        free(man);
    }
    {
        struct ent ents[] = {{"tree/a/@meta", META_A},
                             {"manifest.json", "{\"format\": \"something-else\"}\n"}};
        T_CHECK(read_crafted(ents, 2, &e) < 0 &&
                    strstr(e.msg, "does not describe a burry snapshot"),
                "a foreign manifest fails");
    }
    {
        struct burry_err e2 = {0};
        struct mem_in in = {"garbage, not an archive at all", 30, 0, 0};
        struct fmt_reader *r = fmt_reader_new(mem_read, &in, &e2);
        struct bnode n;
        int rc = r ? fmt_reader_next(r, &n, &e2) : -1;
        T_CHECK(rc < 0 && e2.msg[0], "garbage input fails with a message");
        fmt_reader_free(r);
    }
}

static int flip_fails(const struct buf *a, size_t at)
{
    char *copy = malloc(a->len);
    memcpy(copy, a->p, a->len);
    copy[at] ^= 0x20;
    struct burry_err e = {0};
    int rc = read_archive(copy, a->len, 0, NULL, NULL, NULL, &e);
    free(copy);
    return rc < 0 && e.msg[0];
}

static int truncated_fails(const struct buf *a, size_t len)
{
    struct burry_err e = {0};
    int rc = read_archive(a->p, len, 0, NULL, NULL, NULL, &e);
    return rc < 0 && e.msg[0];
}

static int file_is(const char *path, const char *want, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *got = malloc(len + 1);
    size_t k = fread(got, 1, len + 1, f);
    fclose(f);
    int ok = k == len && memcmp(got, want, len) == 0;
    free(got);
    return ok;
}

/* Extract with stock tar, compare values, and recompute nodes_sha256 with
 * sha256sum the way docs tell users to. */
static void test_stock_tar(enum burry_compress c, const struct buf *a, json_t *manifest)
{
    char dir[] = "/tmp/burry-format-XXXXXX";
    char name[160], cmd[1024];
    if (!mkdtemp(dir)) {
        T_CHECK(0, "mkdtemp");
        return;
    }
    char file[256];
    snprintf(file, sizeof file, "%s/snap%s", dir, fmt_suffix(c));
    FILE *f = fopen(file, "wb");
    fwrite(a->p, 1, a->len, f);
    fclose(f);
    char x[300];
    snprintf(x, sizeof x, "%s/x", dir);
    mkdir(x, 0700);

    snprintf(cmd, sizeof cmd, "tar -xf '%s' -C '%s'", file, x);
    snprintf(name, sizeof name, "%s: stock tar extracts the archive", fmt_compress_name(c));
    T_CHECK(system(cmd) == 0, name);

    char p[1200];
    snprintf(p, sizeof p, "%s/tree/@data", x);
    int ok = file_is(p, "root-data", 9);
    snprintf(p, sizeof p, "%s/tree/a/content/@data", x);
    ok = ok && file_is(p, "content-value", 13);
    snprintf(p, sizeof p, "%s/tree/a/empty/@data", x);
    ok = ok && file_is(p, "", 0);
    snprintf(p, sizeof p, "%s/tree/a/null/@data", x);
    ok = ok && access(p, F_OK) != 0;
    snprintf(p, sizeof p, "%s/tree/big/@data", x);
    ok = ok && file_is(p, nodes[7].value, BIG_LEN);
    snprintf(p, sizeof p, "%s/tree/bin/@data", x);
    ok = ok && file_is(p, nodes[6].value, nodes[6].value_len);
    snprintf(p, sizeof p, "%s/tree/%%40meta/@data", x);
    ok = ok && file_is(p, "at-meta", 7);
    snprintf(p, sizeof p, "%s/tree/%%/x/@data", x);
    ok = ok && file_is(p, "empty-segment", 13);
    struct buf enc;
    buf_init(&enc, 0);
    names_encode_path(long_name, LONG_LEN, &enc);
    snprintf(p, sizeof p, "%s/tree/%s/@data", x, enc.p);
    ok = ok && file_is(p, "long-name-value", 15);
    buf_free(&enc);
    snprintf(name, sizeof name, "%s: extracted @data files hold the values", fmt_compress_name(c));
    T_CHECK(ok, name);

    snprintf(cmd, sizeof cmd, "cd '%s' && sha256sum $(tar -tf '%s' | grep '/@meta$') | sha256sum",
             x, file);
    FILE *pp = popen(cmd, "r");
    char line[256] = "";
    if (pp) {
        if (!fgets(line, sizeof line, pp))
            line[0] = 0;
        pclose(pp);
    }
    const char *want = json_string_value(json_object_get(manifest, "nodes_sha256"));
    snprintf(name, sizeof name, "%s: sha256sum over the @meta files gives nodes_sha256",
             fmt_compress_name(c));
    T_CHECK(want && strlen(line) > 64 && strncmp(line, want, 64) == 0, name);

    /* Re-pack with stock tar (directory entry first, same order) and read. */
    char re[300];
    snprintf(re, sizeof re, "%s/re.tar", dir);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && tar -cf '%s' --no-recursion tree $(tar -tf '%s' | sed 's,/$,,')", x, re,
             file);
    int made = system(cmd) == 0;
    struct buf rb;
    buf_init(&rb, 0);
    f = fopen(re, "rb");
    if (f) {
        char tmp[65536];
        size_t k;
        while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
            buf_append(&rb, tmp, k);
        fclose(f);
    }
    struct burry_err e = {0};
    int matched = 0;
    int rc = made ? read_archive(rb.p, rb.len, 0, &matched, NULL, NULL, &e) : -1;
    snprintf(name, sizeof name, "%s: an archive re-packed by stock tar reads back",
             fmt_compress_name(c));
    T_CHECK(rc == 0 && matched == NNODES, name);
    if (rc != 0)
        printf("# %s\n", e.msg);
    buf_free(&rb);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}

static void test_compression(enum burry_compress c)
{
    const char *cn = fmt_compress_name(c);
    char name[160];
    struct burry_err e = {0};
    struct buf a1, a2;
    json_t *m1 =
        json_pack("{s:s,s:s}", "source", "zk://127.0.0.1:2181/", "time", "2024-01-01T00:00:00Z");
    json_t *m2 = json_deep_copy(m1);
    char wsha[65] = "", rsha[65] = "", sha[65];
    uint64_t wsize = 0;

    int rc = write_archive(c, &a1, m1, wsha, &wsize, &e);
    snprintf(name, sizeof name, "%s: write %d nodes", cn, NNODES);
    T_CHECK(rc == 0, name);
    if (rc != 0) {
        printf("# %s\n", e.msg);
        goto out;
    }
    sha256_of(a1.p, a1.len, sha);
    snprintf(name, sizeof name, "%s: writer reports the archive's size and SHA-256", cn);
    T_CHECK(wsize == a1.len && strcmp(wsha, sha) == 0, name);
    snprintf(name, sizeof name, "%s: manifest gets format, counts and checksums", cn);
    T_CHECK(strcmp(json_string_value(json_object_get(m1, "format")), "burry-snapshot") == 0 &&
                json_integer_value(json_object_get(m1, "format_version")) == 1 &&
                strcmp(json_string_value(json_object_get(m1, "compression")), cn) == 0 &&
                json_integer_value(json_object_get(m1, "nodes")) == NNODES &&
                json_integer_value(json_object_get(m1, "bytes")) ==
                    (json_int_t)(9 + 1 + 13 + 0 + 15 + 7 + BIG_LEN + 7 + 13) &&
                json_string_length(json_object_get(m1, "nodes_sha256")) == 64,
            name);

    int matched = 0;
    json_t *rm = NULL;
    rc = read_archive(a1.p, a1.len, 0, &matched, &rm, rsha, &e);
    snprintf(name, sizeof name, "%s: read back verifies", cn);
    T_CHECK(rc == 0, name);
    if (rc != 0)
        printf("# %s\n", e.msg);
    snprintf(name, sizeof name, "%s: every node comes back equal (path, value, null, attrs)", cn);
    T_CHECK(matched == NNODES, name);
    snprintf(name, sizeof name, "%s: reader's manifest equals the writer's", cn);
    T_CHECK(rm && json_equal(rm, m1), name);
    snprintf(name, sizeof name, "%s: reader's archive SHA-256 equals the writer's", cn);
    T_CHECK(strcmp(rsha, wsha) == 0, name);
    json_decref(rm);

    rc = read_archive(a1.p, a1.len, 1000, &matched, NULL, NULL, &e);
    snprintf(name, sizeof name, "%s: reads through short reads", cn);
    T_CHECK(rc == 0 && matched == NNODES, name);

    rc = write_archive(c, &a2, m2, NULL, NULL, &e);
    snprintf(name, sizeof name, "%s: same nodes and manifest give a byte-identical archive", cn);
    T_CHECK(rc == 0 && a1.len == a2.len && memcmp(a1.p, a2.p, a1.len) == 0, name);
    buf_free(&a2);
    if (c == BURRY_COMPRESS_GZIP)
        T_CHECK(a1.len > 10 && memcmp(a1.p + 4, "\0\0\0\0", 4) == 0,
                "gzip: no time stamp in the gzip header");

    int flips = 1;
    size_t at[] = {a1.len / 3, a1.len / 2, a1.len * 2 / 3, a1.len * 9 / 10};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        if (!flip_fails(&a1, at[i])) {
            printf("# flip at %zu of %zu passed\n", at[i], a1.len);
            flips = 0;
        }
    snprintf(name, sizeof name, "%s: a flipped byte in the stream fails", cn);
    T_CHECK(flips, name);

    int truncs = 1;
    size_t cut[] = {0, 100, 512, a1.len / 2, a1.len - 2000, a1.len - 1};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++)
        if (!truncated_fails(&a1, cut[i])) {
            printf("# truncation to %zu of %zu passed\n", cut[i], a1.len);
            truncs = 0;
        }
    /* The tail is where a cut can miss every checksum: the end-of-archive
     * marker and the compressor's trailer. */
    for (size_t k = 1; k <= 2048; k += k < 64 ? 1 : 61)
        if (!truncated_fails(&a1, a1.len - k)) {
            printf("# truncation to %zu of %zu passed\n", a1.len - k, a1.len);
            truncs = 0;
        }
    snprintf(name, sizeof name, "%s: a truncated stream fails", cn);
    T_CHECK(truncs, name);

    /* Every single-byte flip of a small archive: the reader fails, or what
     * it returns is exactly what was written (the flip hit padding or a
     * header field nothing reads). Node content is always covered. */
    {
        struct buf s;
        json_t *sm = json_object();
        int silent = 0, tried = 0;
        if (write_some(c, 1, &s, sm, NULL, NULL, &e) == 0) {
            for (size_t i = 0; i < s.len; i++) {
                s.p[i] ^= 0x20;
                struct burry_err fe = {0};
                int m = 0;
                if (read_archive_of(1, s.p, s.len, 0, &m, NULL, NULL, &fe) == 0 && m != NNODES - 1)
                    silent++;
                s.p[i] ^= 0x20;
                tried++;
            }
        }
        snprintf(name, sizeof name, "%s: no single-byte flip (of %d) silently changes a node", cn,
                 tried);
        T_CHECK(tried > 0 && silent == 0, name);
        buf_free(&s);
        json_decref(sm);
    }

    if (c == BURRY_COMPRESS_NONE) {
        char *copy = malloc(a1.len);
        memcpy(copy, a1.p, a1.len);
        char *v = memmem(copy, a1.len, "content-value", 13);
        if (v)
            v[3] ^= 1;
        struct burry_err pe = {0};
        rc = read_archive(copy, a1.len, 0, NULL, NULL, NULL, &pe);
        T_CHECK(v && rc < 0 && strstr(pe.msg, "'tree/a/content/@data': checksum mismatch"),
                "none: a patched value fails with a checksum message naming the entry");
        free(copy);
    }

    test_stock_tar(c, &a1, m1);
out:
    buf_free(&a1);
    json_decref(m1);
    json_decref(m2);
}

static int failing_write(void *ctx, const void *p, size_t n, struct burry_err *e)
{
    return burry_errf(e, BURRY_EFAIL, "cannot write 'snap.tar': disk full");
}

/* Attributes handed over already written (bnode.attrs_json) give the same
 * archive, byte for byte, as the same attributes as a JSON object. */
static void test_attrs_text(void)
{
    struct burry_err e = {0};
    struct buf a, b;
    json_t *m = json_pack("{s:s}", "snapshot", "fixed");
    int ra = write_archive(BURRY_COMPRESS_NONE, &a, m, NULL, NULL, &e);
    attrs_as_text = 1;
    int rb = write_archive(BURRY_COMPRESS_NONE, &b, m, NULL, NULL, &e);
    attrs_as_text = 0;
    T_CHECK(ra == 0 && rb == 0 && a.len == b.len && a.len > 0 && memcmp(a.p, b.p, a.len) == 0,
            "attributes given as JSON text make the same archive as a JSON object");
    json_decref(m);
    buf_free(&a);
    buf_free(&b);
}

static void test_writer_errors(void)
{
    struct burry_err e = {0};
    struct buf out;
    buf_init(&out, 0);
    struct fmt_writer *w = fmt_writer_new(BURRY_COMPRESS_NONE, mem_write, &out, &e);
    struct bnode n = {.path = "/a", .path_len = 2, .value = "x", .value_len = 1, .has_value = 1};
    T_CHECK(fmt_writer_add(w, &n, &e) == 0, "writer takes a node");
    T_CHECK(fmt_writer_add(w, &n, &e) < 0 && strstr(e.msg, "'/a' added to the archive twice"),
            "writer refuses the same node twice in a row");
    burry_err_clear(&e);
    struct bnode bad = {.path = "a", .path_len = 1};
    T_CHECK(fmt_writer_add(w, &bad, &e) < 0 && strstr(e.msg, "not a canonical path"),
            "writer refuses a path without leading '/'");
    burry_err_clear(&e);
    json_t *arr = json_array();
    struct bnode badattrs = {.path = "/b", .path_len = 2, .attrs = arr};
    T_CHECK(fmt_writer_add(w, &badattrs, &e) < 0 && strstr(e.msg, "not a JSON object"),
            "writer refuses attrs that are not an object");
    json_decref(arr);
    burry_err_clear(&e);
    fmt_writer_free(w); /* unfinished: no trailer written */
    size_t partial = out.len;
    T_CHECK(partial % 512 == 0 || partial == 0, "an unfinished writer is freed");
    buf_free(&out);

    /* NULL manifest: the writer builds its own. */
    buf_init(&out, 0);
    w = fmt_writer_new(BURRY_COMPRESS_GZIP, mem_write, &out, &e);
    T_CHECK(w && fmt_writer_finish(w, NULL, &e) == 0 && fmt_writer_nodes(w) == 0,
            "an empty archive with no manifest object finishes");
    fmt_writer_free(w);
    int rc = read_archive(out.p, out.len, 0, NULL, NULL, NULL, &e);
    T_CHECK(rc == 0, "an empty archive reads back");
    buf_free(&out);

    w = fmt_writer_new(BURRY_COMPRESS_ZSTD, failing_write, NULL, &e);
    rc = 0;
    for (int i = 0; i < NNODES && rc == 0; i++) {
        struct bnode bn = as_bnode(&nodes[i]);
        rc = fmt_writer_add(w, &bn, &e);
    }
    if (rc == 0)
        rc = fmt_writer_finish(w, NULL, &e);
    T_CHECK(rc < 0 && strcmp(e.msg, "cannot write 'snap.tar': disk full") == 0,
            "an output error is reported as the output callback said it");
    fmt_writer_free(w);

    enum burry_compress c;
    T_CHECK(fmt_compress_parse("zstd", &c) == 0 && c == BURRY_COMPRESS_ZSTD &&
                fmt_compress_parse("gzip", &c) == 0 && c == BURRY_COMPRESS_GZIP &&
                fmt_compress_parse("none", &c) == 0 && c == BURRY_COMPRESS_NONE &&
                fmt_compress_parse("xz", &c) == BURRY_EUSAGE,
            "compression names parse");
    T_CHECK(strcmp(fmt_suffix(BURRY_COMPRESS_ZSTD), ".tar.zst") == 0 &&
                strcmp(fmt_suffix(BURRY_COMPRESS_GZIP), ".tar.gz") == 0 &&
                strcmp(fmt_suffix(BURRY_COMPRESS_NONE), ".tar") == 0,
            "suffixes");
}

int main(void)
{
    build_nodes();
    test_compression(BURRY_COMPRESS_ZSTD);
    test_compression(BURRY_COMPRESS_GZIP);
    test_compression(BURRY_COMPRESS_NONE);
    test_structure();
    test_attrs_text();
    test_writer_errors();
    free_nodes();
    T_DONE();
}
