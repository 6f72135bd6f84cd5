/* Unit tests of the ustar header writer (tar.h) against libarchive's
 * pax_restricted writer, which it stands in for: for every name and size,
 * either both write the same 512 bytes, or tar_header declines and
 * libarchive adds a pax extended header; and a whole stream of entries
 * written with tar_header is the stream libarchive writes. */
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>

#include "buf.h"
#include "t.h"
#include "tar.h"

static la_ssize_t to_buf(struct archive *a, void *cd, const void *p, size_t n)
{
    return buf_append(cd, p, n) < 0 ? -1 : (la_ssize_t)n;
}

/* An unblocked pax_restricted writer into b, as format.c sets one up. */
static struct archive *pax_writer(struct buf *b)
{
    struct archive *a = archive_write_new();
    if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
        archive_write_open(a, b, NULL, to_buf, NULL) != ARCHIVE_OK) {
        fprintf(stderr, "cannot set up libarchive\n");
        exit(2);
    }
    return a;
}

static void set_entry(struct archive_entry *ent, const char *name, int64_t size)
{
    archive_entry_clear(ent);
    archive_entry_set_pathname(ent, name);
    archive_entry_set_filetype(ent, AE_IFREG);
    archive_entry_set_perm(ent, 0644);
    archive_entry_set_uid(ent, 0);
    archive_entry_set_gid(ent, 0);
    archive_entry_set_mtime(ent, 0, 0);
    archive_entry_set_size(ent, size);
}

static int checked, plain, declined;

/* 1 if tar_header agrees with libarchive on this name and size. */
static int agrees(const char *name, int64_t size)
{
    struct buf b;
    buf_init(&b, 0);
    struct archive *a = pax_writer(&b);
    struct archive_entry *ent = archive_entry_new();
    set_entry(ent, name, size);
    int lrc = archive_write_header(a, ent);
    char h[TAR_BLOCK];
    int rc = tar_header(h, name, strlen(name), (uint64_t)size);
    int ok;
    if (lrc != ARCHIVE_OK || b.len < TAR_BLOCK)
        ok = rc < 0; /* libarchive refuses it (or warns): so must we, to leave it the case */
    else if (b.len == TAR_BLOCK)
        ok = rc == 0 && memcmp(h, b.p, TAR_BLOCK) == 0;
    else
        ok = rc < 0;
    checked++;
    plain += rc == 0;
    declined += rc < 0;
    if (!ok)
        fprintf(stderr, "disagree on '%s' (%zu bytes), size %lld: libarchive %d, %zu bytes; ours %d\n",
                name, strlen(name), (long long)size, lrc, b.len, rc);
    archive_entry_free(ent);
    archive_write_free(a); /* closing discards nothing of interest */
    buf_free(&b);
    return ok;
}

static unsigned long long rng = 0x2545F4914F6CDD1DULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Names of every length up to 320 with '/' in random places, and ones
 * with a '/' just at the limits that matter (100 and 101 bytes from the
 * end, 155 and 156 from the start, first and last byte). */
static int names(void)
{
    int ok = 1;
    char s[330];
    for (unsigned len = 1; len <= 320; len++) {
        for (int round = 0; round < 12; round++) {
            for (unsigned i = 0; i < len; i++)
                s[i] = "abcXYZ019._-%@"[rnd(14)];
            unsigned slashes = round == 0 ? 0 : rnd(round < 6 ? 3 : 12);
            for (unsigned k = 0; k < slashes; k++)
                s[rnd(len)] = '/';
            static const int at[] = {0, -1, -100, -101, -102, 154, 155, 156};
            if (round >= 9)
                for (int k = 0; k < 2; k++) {
                    int pos = at[rnd(8)];
                    pos = pos < 0 ? (int)len + pos : pos;
                    if (pos >= 0 && pos < (int)len)
                        s[pos] = '/';
                }
            s[len] = 0;
            ok &= agrees(s, (int64_t)rnd(2000));
        }
    }
    /* non-ASCII names take the pax path (a UTF-8 path or hdrcharset) */
    ok &= agrees("tree/caf\xc3\xa9/@meta", 3);
    ok &= agrees("tree/\xff/@meta", 3);
    ok &= agrees("manifest.json", 1234);
    return ok;
}

static int sizes(void)
{
    static const int64_t v[] = {0, 1, 511, 512, 513, (int64_t)64 << 20, ((int64_t)1 << 33) - 1,
                                (int64_t)1 << 33, (int64_t)1 << 40};
    int ok = 1;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ok &= agrees("tree/a/@data", v[i]);
        ok &= agrees("tree/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"
                     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/@data",
                     v[i]);
    }
    return ok;
}

/* A few entries with data, then the end marker: the stream format.c writes
 * for plain entries is libarchive's to the byte. */
static int stream(void)
{
    static const char *const names_[] = {"tree/a/@meta", "tree/a/@data", "tree/%2E/@meta",
                                         "manifest.json"};
    static const size_t lens[] = {0, 1, 512, 700};
    char data[700];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);

    struct buf want, got;
    buf_init(&want, 0);
    buf_init(&got, 0);
    struct archive *a = pax_writer(&want);
    struct archive_entry *ent = archive_entry_new();
    int ok = 1;
    for (size_t i = 0; i < 4; i++) {
        set_entry(ent, names_[i], (int64_t)lens[i]);
        ok &= archive_write_header(a, ent) == ARCHIVE_OK &&
              (lens[i] == 0 || archive_write_data(a, data, lens[i]) == (la_ssize_t)lens[i]);

        static const char zeros[TAR_BLOCK];
        char h[TAR_BLOCK];
        ok &= tar_header(h, names_[i], strlen(names_[i]), lens[i]) == 0;
        buf_append(&got, h, sizeof h);
        buf_append(&got, data, lens[i]);
        buf_append(&got, zeros, -lens[i] % TAR_BLOCK);
    }
    ok &= archive_write_close(a) == ARCHIVE_OK;
    static const char end_marker[2 * TAR_BLOCK];
    buf_append(&got, end_marker, sizeof end_marker);
    ok &= want.len == got.len && memcmp(want.p, got.p, got.len) == 0;
    archive_entry_free(ent);
    archive_write_free(a);
    buf_free(&want);
    buf_free(&got);
    return ok;
}

int main(void)
{
    T_CHECK(names(), "names of 1..320 bytes: the same header as libarchive, or both need pax");
    T_CHECK(plain > 1000 && declined > 1000, "both kinds of name were tried");
    T_CHECK(sizes(), "sizes up to and past the 8 GiB octal limit");
    T_CHECK(stream(), "headers, data, padding and end marker as libarchive writes them");
    printf("# %d names and sizes checked: %d plain, %d with a pax header\n", checked, plain,
           declined);
    T_DONE();
}
