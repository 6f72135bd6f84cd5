/* Unit tests of the name codec (names.h): round trips over awkward
 * segments, the shape of every encoded component, canonical decoding, and
 * the display form. */
#include <stdlib.h>

#include "names.h"
#include "t.h"

#define MAX_SAMPLES 64

struct sample {
    char *p;
    size_t len;
};

static struct sample samples[MAX_SAMPLES];
static int nsamples;

static void add(const char *p, size_t len)
{
    if (nsamples == MAX_SAMPLES) {
        fprintf(stderr, "too many samples\n");
        exit(2);
    }
    samples[nsamples].p = malloc(len + 1);
    memcpy(samples[nsamples].p, p, len);
    samples[nsamples].len = len;
    nsamples++;
}

static void add_s(const char *s)
{
    add(s, strlen(s));
}

static void add_repeat(char c, size_t n, const char *tail)
{
    size_t tl = strlen(tail);
    char *p = malloc(n + tl + 1);
    memset(p, c, n);
    memcpy(p + n, tail, tl);
    add(p, n + tl);
    free(p);
}

static void build_samples(void)
{
    static const char *plain[] = {
        "a", "abc", "Zz09", "A-Z_0.9", "%", "%%", "%41", "%2E", "%2e", ":", " ", "a b", "@",
        "x@y", "a@", "@a", "content", ".burrymeta", "@meta", "@data", "meta", ".", "..", "...",
        ".a", "a.", "-", "_", "~", "\\", "\"'", "caf\xc3\xa9", "tab\there", "line\nbreak",
        "*?[]", "PaxHeader", "tree", "manifest.json",
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        add_s(plain[i]);
    add("", 0);
    add("\0", 1);
    add("\0\0", 2);
    add("a\0b", 3);
    char high[128];
    for (int i = 0; i < 128; i++)
        high[i] = (char)(0x80 + i);
    add(high, sizeof high);
    add("\xff", 1);
    add_repeat('%', 1000, "");
    add_repeat('a', 1000, "");
    add_repeat('a', 199, "%");
    add_repeat('a', 200, "");
    add_repeat('a', 201, "");
    add_repeat('a', 200, ".");
    add_repeat('a', 200, "..");
    add_repeat('a', 198, "%a");
    add_repeat('.', 400, "");
    add_repeat('@', 67, "");
}

/* The encoded form of one segment (caller frees), or NULL. */
static char *enc_seg(const char *seg, size_t len, size_t *out_len)
{
    struct buf b;
    buf_init(&b, 0);
    if (names_encode_segment(seg, len, &b) < 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, out_len);
}

static int component_ok(const char *c, size_t n)
{
    if (n == 0 || n > NAMES_MAX_COMPONENT + 1)
        return 0;
    if ((n == 5 && (memcmp(c, NAMES_META, 5) == 0 || memcmp(c, NAMES_DATA, 5) == 0)) ||
        (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = c[i];
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-' || ch == '%' || ch == '@';
        if (!ok)
            return 0;
        if (ch == '@' && i != n - 1)
            return 0; /* '@' only as the continuation marker */
    }
    return 1;
}

/* Every '/'-separated component of an encoded path is well formed. */
static int components_ok(const char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            if (!component_ok(p + start, i - start))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

static int roundtrip(const char *path, size_t len)
{
    struct buf enc, dec;
    buf_init(&enc, 0);
    buf_init(&dec, 0);
    int ok = names_encode_path(path, len, &enc) == 0 &&
             names_decode_path(enc.p ? enc.p : "", enc.len, &dec) == 0 && dec.len == len &&
             (len == 0 || memcmp(dec.p, path, len) == 0) &&
             (len == 0 || components_ok(enc.p, enc.len));
    buf_free(&enc);
    buf_free(&dec);
    return ok;
}

static int encodes_to(const char *path, size_t len, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    int ok = names_encode_path(path, len, &b) == 0 && b.len == strlen(want) &&
             memcmp(b.p ? b.p : "", want, b.len) == 0;
    if (!ok)
        fprintf(stderr, "# encode gave '%s', want '%s'\n", b.p ? b.p : "", want);
    buf_free(&b);
    return ok;
}

static int decode_rejects(const char *arch)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = names_decode_path(arch, strlen(arch), &b);
    buf_free(&b);
    return rc < 0;
}

static int displays_as(const char *path, size_t len, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    int ok = names_display(path, len, &b) == 0 && b.p && strcmp(b.p, want) == 0;
    buf_free(&b);
    return ok;
}

static char *repeat(char c, size_t n, const char *tail)
{
    size_t tl = strlen(tail);
    char *p = malloc(n + tl + 1);
    memset(p, c, n);
    memcpy(p + n, tail, tl + 1);
    return p;
}

static void test_roundtrips(void)
{
    int all = 1, comps = 1;
    char name[128];
    for (int i = 0; i < nsamples; i++) {
        /* "/" + seg */
        char *path = malloc(samples[i].len + 1);
        path[0] = '/';
        memcpy(path + 1, samples[i].p, samples[i].len);
        if (!roundtrip(path, samples[i].len + 1)) {
            snprintf(name, sizeof name, "round trip of sample %d", i);
            T_CHECK(0, name);
            all = 0;
        }
        free(path);

        size_t el;
        char *enc = enc_seg(samples[i].p, samples[i].len, &el);
        if (!enc || !components_ok(enc, el))
            comps = 0;
        free(enc);
    }
    T_CHECK(all, "every sample segment round-trips");
    T_CHECK(comps,
            "every encoded component is <= 201 bytes of [A-Za-z0-9._%@-], never @meta/@data/./..");

    /* Multi-segment paths made of pairs of samples. */
    int pairs = 1;
    for (int i = 0; i < nsamples; i++) {
        for (int j = 0; j < nsamples; j += 3) {
            size_t len = 2 + samples[i].len + samples[j].len;
            char *path = malloc(len);
            path[0] = '/';
            memcpy(path + 1, samples[i].p, samples[i].len);
            path[1 + samples[i].len] = '/';
            memcpy(path + 2 + samples[i].len, samples[j].p, samples[j].len);
            if (!roundtrip(path, len))
                pairs = 0;
            free(path);
        }
    }
    T_CHECK(pairs, "two-segment paths round-trip");

    T_CHECK(roundtrip("", 0), "root round-trips");
    T_CHECK(roundtrip("/", 1), "'/' round-trips");
    T_CHECK(roundtrip("//", 2), "'//' round-trips");
    T_CHECK(roundtrip("//x", 3), "'//x' round-trips");
    T_CHECK(roundtrip("/a/", 3), "'/a/' round-trips");
    T_CHECK(roundtrip("/a//b/", 6), "'/a//b/' round-trips");
}

static void test_distinct(void)
{
    char *enc[MAX_SAMPLES];
    size_t len[MAX_SAMPLES];
    for (int i = 0; i < nsamples; i++)
        enc[i] = enc_seg(samples[i].p, samples[i].len, &len[i]);
    int distinct = 1;
    for (int i = 0; i < nsamples; i++) {
        for (int j = i + 1; j < nsamples; j++) {
            int same_in = samples[i].len == samples[j].len &&
                          memcmp(samples[i].p, samples[j].p, samples[i].len) == 0;
            int same_out =
                enc[i] && enc[j] && len[i] == len[j] && memcmp(enc[i], enc[j], len[i]) == 0;
            if (same_in != same_out)
                distinct = 0;
        }
    }
    T_CHECK(distinct, "distinct segments give distinct encodings");
    for (int i = 0; i < nsamples; i++)
        free(enc[i]);
}

static void test_known_encodings(void)
{
    T_CHECK(encodes_to("/a/b", 4, "a/b"), "encode '/a/b'");
    T_CHECK(encodes_to("", 0, ""), "encode root");
    T_CHECK(encodes_to("/", 1, "%"), "encode '/'");
    T_CHECK(encodes_to("//x", 3, "%/x"), "encode '//x'");
    T_CHECK(encodes_to("/a/", 3, "a/%"), "encode '/a/'");
    T_CHECK(encodes_to("/.", 2, "%2E"), "encode '.'");
    T_CHECK(encodes_to("/..", 3, "%2E%2E"), "encode '..'");
    T_CHECK(encodes_to("/...", 4, "..."), "encode '...'");
    T_CHECK(encodes_to("/@meta", 6, "%40meta"), "encode '@meta'");
    T_CHECK(encodes_to("/@data", 6, "%40data"), "encode '@data'");
    T_CHECK(encodes_to("/a b:c", 6, "a%20b%3Ac"), "encode space and colon");
    T_CHECK(encodes_to("/\0\xff", 3, "%00%FF"), "encode NUL and 0xFF");
    T_CHECK(encodes_to("/%", 2, "%25"), "encode '%'");
    T_CHECK(encodes_to("/zk/content", 11, "zk/content"), "encode 'content'");

    char *a200 = repeat('a', 200, "");
    char *path = malloc(202);
    path[0] = '/';
    memcpy(path + 1, a200, 200);
    T_CHECK(encodes_to(path, 201, a200), "200 bytes stay one component");
    path[201] = 'b';
    char *want = repeat('a', 200, "@/b");
    T_CHECK(encodes_to(path, 202, want), "201 bytes are cut after 200");
    free(want);
    path[201] = '.';
    want = repeat('a', 200, "@/%2E");
    T_CHECK(encodes_to(path, 202, want), "a last chunk '.' is escaped");
    free(want);
    free(path);
    free(a200);

    /* 1000 '%' bytes: 66 tokens (198 bytes) per chunk, greedily. */
    char pct[1001];
    pct[0] = '/';
    memset(pct + 1, '%', 1000);
    struct buf b;
    buf_init(&b, 0);
    int ok = names_encode_path(pct, 1001, &b) == 0;
    size_t comps = 0, start = 0;
    for (size_t i = 0; ok && i <= b.len; i++) {
        if (i == b.len || b.p[i] == '/') {
            size_t n = i - start;
            int last = i == b.len;
            if (!last && (n != 199 || b.p[i - 1] != '@'))
                ok = 0;
            if (last && n != 30)
                ok = 0;
            comps++;
            start = i + 1;
        }
    }
    T_CHECK(ok && comps == 16, "1000 '%' bytes give 15 chunks of 198 + '@' and one of 30");
    buf_free(&b);

    struct buf x;
    buf_init(&x, 0);
    T_CHECK(names_encode_path("a/b", 3, &x) < 0, "encode refuses a path without leading '/'");
    T_CHECK(names_encode_segment("a/b", 3, &x) < 0, "encode refuses a segment holding '/'");
    buf_free(&x);
}

static void test_rejects(void)
{
    static const char *bad[] = {
        "%2e",                               /* lower-case hex */
        "%2f%2F",                            /* lower-case hex */
        "%41",                               /* escaped literal-safe byte */
        "a%2E",                              /* escaped dot inside a longer component */
        "%2E%2E%2E",                         /* "..." is written literally */
        "%2E/%2E.",                          /* second component: mixed */
        "%2F",                               /* '/' inside a segment */
        "a b",                               /* literal unsafe bytes */
        "a:b",       "a~",    "@meta",       /* '@' not as a trailing marker */
        "@data",     "a@b",   "@",     "a@", /* marker with nothing after it */
        "a@/b",                              /* not greedy: the chunk could have held more */
        "/a",                                /* empty components */
        "a/",        "a//b",  "/",     ".",  /* literal dot names */
        "..",        "a/./b", "a/..",  "%4", /* malformed escapes */
        "%G0",       "%%",    "a%",    "%0", "%%41", "\xc3\xa9", /* raw non-ASCII */
    };
    int all = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!decode_rejects(bad[i])) {
            printf("# accepted non-canonical '%s'\n", bad[i]);
            all = 0;
        }
    }
    T_CHECK(all, "decoder rejects short non-canonical forms");

    char *s;
    s = repeat('a', 201, "");
    T_CHECK(decode_rejects(s), "decoder rejects a 201-byte component");
    free(s);
    s = repeat('a', 199, "@/aa");
    T_CHECK(decode_rejects(s), "decoder rejects non-greedy chunking (199 + 2)");
    free(s);
    s = repeat('a', 200, "@/.");
    T_CHECK(decode_rejects(s), "decoder rejects a literal '.' last chunk");
    free(s);
    s = repeat('a', 200, "@/%");
    T_CHECK(decode_rejects(s), "decoder rejects '%' as a last chunk");
    free(s);
    s = repeat('a', 200, "@/");
    T_CHECK(decode_rejects(s), "decoder rejects a chunk marker before a trailing '/'");
    free(s);
    s = repeat('a', 200, "@");
    T_CHECK(decode_rejects(s), "decoder rejects a trailing chunk marker");
    free(s);
    s = repeat('a', 200, "@/a@/b");
    T_CHECK(decode_rejects(s), "decoder rejects a short middle chunk");
    free(s);
    s = repeat('a', 199, "%4@/1");
    T_CHECK(decode_rejects(s), "decoder rejects a chunk cut inside %XX");
    free(s);
    s = repeat('a', 201, "@/b");
    T_CHECK(decode_rejects(s), "decoder rejects a 202-byte chunk");
    free(s);
    s = repeat('a', 100, "@/b");
    T_CHECK(decode_rejects(s), "decoder rejects chunking of a short segment");
    free(s);

    /* And accepts what the encoder writes. */
    struct buf b;
    buf_init(&b, 0);
    s = repeat('a', 200, "@/%2E%2E");
    T_CHECK(names_decode_path(s, strlen(s), &b) == 0 && b.len == 203 && b.p[0] == '/' &&
                b.p[201] == '.' && b.p[202] == '.',
            "decoder accepts an escaped '..' last chunk");
    free(s);
    buf_reset(&b);
    T_CHECK(names_decode_path("%/x/%", 5, &b) == 0 && b.len == 4 && memcmp(b.p, "//x/", 4) == 0,
            "decoder maps '%' to empty segments");
    buf_reset(&b);
    T_CHECK(names_decode_path("", 0, &b) == 0 && b.len == 0, "decoder maps '' to the root");
    buf_free(&b);
}

static void test_display(void)
{
    T_CHECK(displays_as("", 0, "/"), "display root as '/'");
    T_CHECK(displays_as("/a b/c", 6, "/a b/c"), "display printable ASCII as is");
    T_CHECK(displays_as("/\x01\\\xff", 4, "/\\x01\\x5C\\xFF"),
            "display control, backslash and high bytes as \\xHH");
    T_CHECK(displays_as("/a\0b", 4, "/a\\x00b"), "display NUL as \\x00");
}

int main(void)
{
    build_samples();
    test_roundtrips();
    test_distinct();
    test_known_encodings();
    test_rejects();
    test_display();
    for (int i = 0; i < nsamples; i++)
        free(samples[i].p);
    T_DONE();
}
