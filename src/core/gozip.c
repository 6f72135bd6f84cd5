/* Reader of the original Go burry's zip archives (gozip.h): libarchive's
 * streaming zip reader over the same byte-stream callback as format.c, the
 * old name scheme decoded into canonical node paths (node.h), and an order
 * in which parents come before their children. The streaming reader never
 * looks at the zip's central directory and skips a damaged local header to
 * the next one, so the first read also notes what each local header says
 * and checks it against the central directory at the end of the archive
 * (a small parser of those records, below). */
#include "gozip.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"
#include "names.h"

#define ESC_COLON "BURRY_ESC_COLON"
#define META_NAME ".burrymeta"
#define VALUE_NAME "content"
#define READ_CHUNK 65536
/* The last bytes read, where a local header is found once libarchive has
 * read it: a header is at most 30 + 2 * 65535 bytes, libarchive reads at
 * most a chunk beyond what it needs. */
#define RING_SIZE ((size_t)8 * READ_CHUNK)
/* Enough for the largest central directory record (46 + 3 * 65535 bytes)
 * and a chunk read after it. */
#define CD_WINDOW ((size_t)1 << 20)

/* zip record signatures and fixed sizes (APPNOTE.TXT 4.3) */
#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define END_SIZE 22
#define LOCATOR64_SIZE 20
#define END64_MIN 56

struct gz_node {
    char *path;
    size_t len;
    int emitted;
};

/* What the first read saw of one entry, to check against the central
 * directory. */
struct gz_entry {
    unsigned long long hdr;    /* offset of its local header */
    unsigned long long data;   /* offset of its (compressed) data */
    unsigned long long usize;  /* bytes read */
    unsigned long long csize;  /* as the central directory says */
    size_t name, name_len;     /* its raw name, in gozip.names */
    uint32_t crc;              /* of the data as read */
    uint16_t flags, method;    /* of the local header */
    int done;                  /* its data was read to the end */
    int listed;                /* found in the central directory */
};

struct gozip {
    fmt_read_fn in;
    gozip_rewind_fn rewind;
    void *ctx;
    struct archive *a;
    struct burry_err in_err;
    int in_eof;
    unsigned long long raw;    /* bytes read from the stream so far */
    unsigned char *ring;       /* the last RING_SIZE of them */
    char *dir;                 /* the top directory, "1795249013" */
    int skip_zk;               /* the old tool also saved ZooKeeper's /zookeeper */
    json_t *manifest;
    struct gz_node *nodes;
    size_t nnodes, cap, left;
    unsigned long long bytes, skipped;
    int passes;                /* reads of the archive so far */
    size_t pass_emitted;
    int checking;              /* the first read: note every entry */
    struct gz_entry *ents;
    size_t nents, ents_cap;
    struct buf names;          /* the entries' raw names, back to back */
    struct buf name;           /* the current entry's raw name */
    struct buf hdr;            /* scratch: the bytes of its local header */
    struct buf path, value, msg, msg2;
};

/* The old tool's service names and what each can be restored into: it
 * spoke etcd's v2 API only, but its keys fit etcd v3 as well. */
static const struct {
    const char *svc, *scheme;
    const char *into[3];
} services[] = {
    {"zk", "zk", {"zookeeper", NULL}},
    {"etcd", "etcd2", {"etcd2", "etcd", NULL}},
    {"consul", "consul", {"consul", NULL}},
};

static unsigned le16(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static unsigned long long le64(const unsigned char *p)
{
    return (unsigned long long)le32(p) | (unsigned long long)le32(p + 4) << 32;
}

/* Reads go straight into the ring, one aligned piece at a time, so that
 * the bytes libarchive has just parsed can be looked at again. */
static la_ssize_t z_read(struct archive *a, void *cd, const void **out)
{
    struct gozip *z = cd;
    size_t off = (size_t)(z->raw % RING_SIZE);
    size_t want = RING_SIZE - off < READ_CHUNK ? RING_SIZE - off : READ_CHUNK;
    *out = z->ring + off;
    if (z->in_eof)
        return 0;
    ssize_t k = z->in(z->ctx, z->ring + off, want, &z->in_err);
    if (k < 0) {
        if (!z->in_err.code)
            burry_errf(&z->in_err, BURRY_EFAIL, "cannot read archive: input failed");
        archive_set_error(a, EIO, "%s", z->in_err.msg);
        return -1;
    }
    if (k == 0)
        z->in_eof = 1;
    z->raw += (unsigned long long)k;
    return (la_ssize_t)k;
}

/* Append the n bytes at stream offset pos to b: 0, or -1 when they are no
 * longer (or not yet) in the ring, or out of memory. */
static int ring_append(struct gozip *z, unsigned long long pos, size_t n, struct buf *b)
{
    if (pos > z->raw || n > z->raw - pos || z->raw - pos > RING_SIZE)
        return -1;
    size_t off = (size_t)(pos % RING_SIZE);
    size_t first = RING_SIZE - off < n ? RING_SIZE - off : n;
    if (buf_append(b, z->ring + off, first) < 0 || buf_append(b, z->ring, n - first) < 0)
        return -1;
    return 0;
}

static const char *show_in(struct buf *out, const char *p, size_t n)
{
    buf_reset(out);
    if (names_display(p, n > 200 ? 200 : n, out) < 0)
        return "?";
    if (n > 200)
        buf_puts(out, "...");
    /* names_display shows "" as "/"; a zip name is never empty here */
    return out->p ? out->p : "";
}

static const char *show(struct gozip *z, const char *p, size_t n)
{
    return show_in(&z->msg, p, n);
}

static int damaged(struct gozip *z, struct burry_err *e)
{
    if (z->in_err.code)
        return burry_errf(e, z->in_err.code, "%s", z->in_err.msg);
    const char *why = archive_error_string(z->a);
    return burry_errf(e, BURRY_EFAIL, "zip archive is damaged or truncated: %s",
                      why ? why : "unknown libarchive error");
}

static int za_open(struct gozip *z, struct burry_err *e)
{
    z->in_eof = 0;
    z->raw = 0;
    z->a = archive_read_new();
    if (!z->a)
        return burry_errf(e, BURRY_EFAIL, "cannot create zip reader: out of memory");
    if (archive_read_support_format_zip_streamable(z->a) != ARCHIVE_OK)
        return burry_errf(e, BURRY_EFAIL, "cannot create zip reader: %s",
                          archive_error_string(z->a) ? archive_error_string(z->a) : "libarchive failed");
    if (archive_read_open(z->a, z, NULL, z_read, NULL) != ARCHIVE_OK)
        return damaged(z, e);
    return 0;
}

static void za_close(struct gozip *z)
{
    archive_read_free(z->a);
    z->a = NULL;
}

/* ---- the check against the central directory ----------------------------- */

/* Between an entry's data (csize bytes at x->data) and the next record
 * (at next): a data descriptor (12 or 16 bytes, 20 or 24 for zip64)
 * exactly when the local header's flag bit 3 says so, else nothing. */
static int gap_ok(const struct gz_entry *x, unsigned long long next)
{
    if (next < x->data || next - x->data < x->csize)
        return 0;
    unsigned long long gap = next - x->data - x->csize;
    if (!(x->flags & 8))
        return gap == 0;
    return gap == 12 || gap == 16 || gap == 20 || gap == 24;
}

static const char *ent_name(const struct gozip *z, const struct gz_entry *x)
{
    return z->names.p ? z->names.p + x->name : "";
}

/* The local header libarchive has just read, found again in the ring: it
 * ends where the entry's data starts, and starts at or after the position
 * libarchive reports (which may not count the previous entry's data
 * descriptor yet). Its raw name goes to z->name (libarchive hands out
 * names converted to the locale, or none at all for a UTF-8 name in the C
 * locale; a node's name is its bytes), and on the first read a note of the
 * entry to z->ents. */
static int local_header(struct gozip *z, struct burry_err *e)
{
    unsigned long long from = (unsigned long long)archive_read_header_position(z->a);
    unsigned long long data = (unsigned long long)archive_filter_bytes(z->a, 0);
    struct buf *h = &z->hdr;
    buf_reset(h);
    buf_reset(&z->name);
    if (data < from + LOCAL_SIZE || data - from > RING_SIZE ||
        ring_append(z, from, (size_t)(data - from), h) < 0)
        return burry_errf(e, BURRY_EFAIL,
                          "zip archive is damaged: no readable local header before offset %llu", data);
    const unsigned char *p = (const unsigned char *)h->p, *lh = NULL;
    for (size_t i = 0; !lh && i + LOCAL_SIZE <= h->len; i++)
        if (le32(p + i) == SIG_LOCAL && LOCAL_SIZE + le16(p + i + 26) + le16(p + i + 28) == h->len - i)
            lh = p + i;
    if (!lh)
        return burry_errf(e, BURRY_EFAIL,
                          "zip archive is damaged: no local header ends at offset %llu, where "
                          "libarchive found an entry's data", data);
    size_t n = le16(lh + 26);
    if (buf_append(&z->name, lh + LOCAL_SIZE, n) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    if (!z->checking)
        return 0;
    if (z->nents && !z->ents[z->nents - 1].done) {
        const struct gz_entry *prev = &z->ents[z->nents - 1];
        return burry_errf(e, BURRY_EFAIL, "zip entry '%s' was not read to its end",
                          show(z, ent_name(z, prev), prev->name_len));
    }
    if (array_grow(&z->ents, z->nents, &z->ents_cap, sizeof *z->ents, 256) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    size_t at = z->names.len;
    if (buf_append(&z->names, lh + LOCAL_SIZE, n) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    z->ents[z->nents++] = (struct gz_entry){.hdr = from + (size_t)(lh - p), .data = data,
                                            .name = at, .name_len = n,
                                            .flags = (uint16_t)le16(lh + 6),
                                            .method = (uint16_t)le16(lh + 8)};
    return 0;
}

/* The central directory and end records, read on from where libarchive
 * stopped: a window over the stream. */
struct cd_reader {
    struct gozip *z;
    struct buf w;
    size_t off;                /* parsed up to here in w */
    unsigned long long pos;    /* the stream offset of w.p[off] */
};

/* 1 when n bytes are in the window from off, 0 when the stream ends first,
 * <0 on a read error. */
static int cd_need(struct cd_reader *r, size_t n, struct burry_err *e)
{
    struct gozip *z = r->z;
    while (r->w.len - r->off < n) {
        if (z->in_eof)
            return 0;
        if (r->off) {
            memmove(r->w.p, r->w.p + r->off, r->w.len - r->off);
            r->w.len -= r->off;
            r->w.p[r->w.len] = 0;
            r->off = 0;
        }
        /* the ring's bytes are not needed any more: a scratch buffer */
        ssize_t k = z->in(z->ctx, z->ring, READ_CHUNK, &z->in_err);
        if (k < 0)
            return burry_errf(e, z->in_err.code ? z->in_err.code : BURRY_EFAIL, "%s",
                              z->in_err.code ? z->in_err.msg : "cannot read archive: input failed");
        if (k == 0) {
            z->in_eof = 1;
            return 0;
        }
        z->raw += (unsigned long long)k;
        if (buf_append(&r->w, z->ring, (size_t)k) < 0)
            return burry_errf(e, BURRY_EFAIL, "cannot read the zip's central directory: a record is "
                              "larger than %zu bytes", CD_WINDOW);
    }
    return 1;
}

static const unsigned char *cd_at(struct cd_reader *r)
{
    return (const unsigned char *)r->w.p + r->off;
}

static void cd_skip(struct cd_reader *r, size_t n)
{
    r->off += n;
    r->pos += n;
}

static int entry_by_offset(const void *key, const void *elem)
{
    unsigned long long k = *(const unsigned long long *)key, h = ((const struct gz_entry *)elem)->hdr;
    return k < h ? -1 : k > h;
}

/* One central directory record (complete at p) against the entry whose
 * local header it points at. */
static int central_entry(struct gozip *z, const unsigned char *p, struct burry_err *e)
{
    unsigned method = le16(p + 10), disk = le16(p + 34);
    uint32_t crc = le32(p + 16);
    unsigned long long csize = le32(p + 20), usize = le32(p + 24), off = le32(p + 42);
    size_t n = le16(p + 28), m = le16(p + 30);
    const char *name = (const char *)p + CENTRAL_SIZE;
    const unsigned char *x = p + CENTRAL_SIZE + n, *xe = x + m;
    int need64 = usize == 0xffffffffu || csize == 0xffffffffu || off == 0xffffffffu || disk == 0xffff;
    int have64 = 0;
    /* the zip64 extra field holds, in this order, the fields saturated above */
    while (xe - x >= 4) {
        size_t id = le16(x), xl = le16(x + 2);
        const unsigned char *q = x + 4, *qe = q + xl;
        if (xl > (size_t)(xe - q))
            break;
        if (id == 1 && !have64) {
            have64 = 1;
            unsigned long long *f[] = {&usize, &csize, &off};
            for (size_t i = 0; i < 3; i++)
                if (*f[i] == 0xffffffffu) {
                    if (qe - q < 8)
                        goto bad64;
                    *f[i] = le64(q);
                    q += 8;
                }
            if (disk == 0xffff) {
                if (qe - q < 4)
                    goto bad64;
                disk = le32(q) ? 1 : 0;
            }
        }
        x = qe;
    }
    if (x != xe || (need64 && !have64))
        goto bad64;
    if (disk != 0)
        return burry_errf(e, BURRY_EFAIL, "zip archive spans several disks ('%s'): not one of the "
                          "original burry's archives", show(z, name, n));
    struct gz_entry *x1 = bsearch(&off, z->ents, z->nents, sizeof *z->ents, entry_by_offset);
    if (!x1)
        return burry_errf(e, BURRY_EFAIL,
                          "zip archive is damaged: its central directory lists '%s' at offset %llu, "
                          "where no entry was read", show(z, name, n), off);
    const char *local = ent_name(z, x1);
    if (x1->listed)
        return burry_errf(e, BURRY_EFAIL,
                          "zip archive is damaged: its central directory lists the entry at offset "
                          "%llu twice", off);
    x1->listed = 1;
    if (x1->name_len != n || memcmp(local, name, n))
        return burry_errf(e, BURRY_EFAIL,
                          "zip archive is damaged: the entry at offset %llu is '%s' in its local "
                          "header but '%s' in the central directory",
                          off, show(z, local, x1->name_len), show_in(&z->msg2, name, n));
    const char *what = x1->method != method ? "compression method"
                       : x1->crc != crc     ? "CRC-32"
                       : x1->usize != usize ? "size"
                                            : NULL;
    if (what)
        return burry_errf(e, BURRY_EFAIL,
                          "zip archive is damaged: the %s of '%s' in the central directory is not "
                          "that of its entry", what, show(z, local, x1->name_len));
    x1->csize = csize; /* checked once every entry's end is known */
    return 0;
bad64:
    return burry_errf(e, BURRY_EFAIL,
                      "zip archive is damaged: the extra field of '%s' in the central directory is "
                      "malformed", show(z, name, n));
}

/* After libarchive's last entry: the central directory must list exactly
 * the entries read (same names, offsets, CRC-32s, sizes), then end records
 * that agree with it, then nothing. */
static int check_central(struct gozip *z, struct burry_err *e)
{
    struct cd_reader r = {.z = z};
    unsigned long long start = (unsigned long long)archive_filter_bytes(z->a, 0);
    unsigned long long count = 0, size = 0;
    int rc;
    buf_init(&r.w, CD_WINDOW);
    r.pos = start;
    if (ring_append(z, start, (size_t)(z->raw - start), &r.w) < 0) {
        rc = burry_errf(e, BURRY_EFAIL, "zip archive is damaged: cannot find its central directory");
        goto out;
    }
    for (;;) {
        if ((rc = cd_need(&r, 4, e)) <= 0)
            goto truncated;
        if (le32(cd_at(&r)) != SIG_CENTRAL)
            break;
        if ((rc = cd_need(&r, CENTRAL_SIZE, e)) <= 0)
            goto truncated;
        const unsigned char *p = cd_at(&r);
        size_t len = CENTRAL_SIZE + le16(p + 28) + le16(p + 30) + le16(p + 32);
        if ((rc = cd_need(&r, len, e)) <= 0)
            goto truncated;
        if ((rc = central_entry(z, cd_at(&r), e)) < 0)
            goto out;
        cd_skip(&r, len);
        count++;
        size += len;
    }
    /* zip64: the end record and its locator come before the classic end */
    unsigned long long end64_at = r.pos, n64 = 0, size64 = 0, start64 = 0;
    int have64 = 0;
    if (le32(cd_at(&r)) == SIG_END64) {
        if ((rc = cd_need(&r, END64_MIN, e)) <= 0)
            goto truncated;
        unsigned long long len = le64(cd_at(&r) + 4) + 12;
        if (len < END64_MIN || len > CD_WINDOW / 2) {
            rc = burry_errf(e, BURRY_EFAIL, "zip archive is damaged: its zip64 end record is malformed");
            goto out;
        }
        if ((rc = cd_need(&r, (size_t)len, e)) <= 0)
            goto truncated;
        const unsigned char *p = cd_at(&r);
        if (le32(p + 16) || le32(p + 20) || le64(p + 24) != le64(p + 32)) {
            rc = burry_errf(e, BURRY_EFAIL, "zip archive spans several disks: not one of the "
                            "original burry's archives");
            goto out;
        }
        n64 = le64(p + 32);
        size64 = le64(p + 40);
        start64 = le64(p + 48);
        have64 = 1;
        cd_skip(&r, (size_t)len);
        if ((rc = cd_need(&r, LOCATOR64_SIZE, e)) <= 0)
            goto truncated;
        p = cd_at(&r);
        if (le32(p) != SIG_LOCATOR64 || le32(p + 4) || le64(p + 8) != end64_at || le32(p + 16) != 1) {
            rc = burry_errf(e, BURRY_EFAIL,
                            "zip archive is damaged: its zip64 end record has no matching locator");
            goto out;
        }
        cd_skip(&r, LOCATOR64_SIZE);
        if ((rc = cd_need(&r, 4, e)) <= 0)
            goto truncated;
    }
    if (le32(cd_at(&r)) != SIG_END) {
        rc = burry_errf(e, BURRY_EFAIL,
                        "zip archive is damaged: unexpected bytes at offset %llu, after its "
                        "central directory", r.pos);
        goto out;
    }
    if ((rc = cd_need(&r, END_SIZE, e)) <= 0)
        goto truncated;
    const unsigned char *p = cd_at(&r);
    size_t clen = le16(p + 20);
    unsigned long long n_disk = le16(p + 8), n_all = le16(p + 10), cd_size = le32(p + 12),
                       cd_start = le32(p + 16);
    int multi = le16(p + 4) || le16(p + 6);
    if (have64) {
        /* the classic fields are either saturated or the same */
        multi = (le16(p + 4) && le16(p + 4) != 0xffff) || (le16(p + 6) && le16(p + 6) != 0xffff);
        if ((n_disk != 0xffff && n_disk != n64) || (n_all != 0xffff && n_all != n64) ||
            (cd_size != 0xffffffffu && cd_size != size64) ||
            (cd_start != 0xffffffffu && cd_start != start64)) {
            rc = burry_errf(e, BURRY_EFAIL,
                            "zip archive is damaged: its end record and zip64 end record disagree");
            goto out;
        }
        n_disk = n_all = n64;
        cd_size = size64;
        cd_start = start64;
    }
    if (multi) {
        rc = burry_errf(e, BURRY_EFAIL, "zip archive spans several disks: not one of the original "
                        "burry's archives");
        goto out;
    }
    if (n_all != count || n_disk != count || cd_size != size || cd_start != start) {
        rc = burry_errf(e, BURRY_EFAIL,
                        "zip archive is damaged: its end record describes %llu entries (%llu bytes "
                        "at offset %llu), its central directory has %llu (%llu bytes at offset %llu)",
                        n_all, cd_size, cd_start, count, size, start);
        goto out;
    }
    if ((rc = cd_need(&r, END_SIZE + clen, e)) <= 0)
        goto truncated;
    cd_skip(&r, END_SIZE + clen);
    /* zeros after the end are a block-writing tool's padding; anything else
     * is not part of the archive */
    while ((rc = cd_need(&r, 1, e)) > 0) {
        if (cd_at(&r)[0]) {
            rc = burry_errf(e, BURRY_EFAIL,
                            "zip archive is damaged: bytes after its end record (at offset %llu)",
                            r.pos);
            goto out;
        }
        cd_skip(&r, 1);
    }
    if (rc < 0)
        goto out;
    if (count != z->nents) {
        for (size_t i = 0; i < z->nents; i++)
            if (!z->ents[i].listed) {
                rc = burry_errf(e, BURRY_EFAIL,
                                "zip archive is damaged: entry '%s' at offset %llu is not in its "
                                "central directory",
                                show(z, ent_name(z, &z->ents[i]), z->ents[i].name_len),
                                z->ents[i].hdr);
                goto out;
            }
    }
    /* the entries and the central directory tile the archive: each entry's
     * data, as long as the central directory says, ends where the next
     * record starts */
    for (size_t i = 0; i < z->nents; i++) {
        const struct gz_entry *x = &z->ents[i];
        unsigned long long next = i + 1 < z->nents ? z->ents[i + 1].hdr : start;
        if (!gap_ok(x, next)) {
            rc = burry_errf(e, BURRY_EFAIL,
                            "zip archive is damaged: entry '%s' (at offset %llu) does not end where "
                            "the next record (at offset %llu) starts",
                            show(z, ent_name(z, x), x->name_len), x->hdr, next);
            goto out;
        }
    }
    rc = 0;
    goto out;
truncated:
    if (rc == 0)
        rc = burry_errf(e, BURRY_EFAIL,
                        "zip archive is damaged or truncated: it ends inside its central directory "
                        "or end record (at offset %llu)", r.pos);
out:
    buf_free(&r.w);
    return rc;
}

/* ---- entries ------------------------------------------------------------- */

static int read_data(struct gozip *z, struct buf *b, size_t max, const char *name, size_t nl,
                     unsigned long long *total, struct burry_err *e);

/* Next file entry (directory entries, which the old tool never wrote but a
 * re-packed zip may hold, are skipped): 1 with *name and *len, the raw
 * bytes of its name (valid until the next call), 0 at the end, <0. On the
 * first read, the end is where the central directory is checked. */
static int next_entry(struct gozip *z, const char **name, size_t *len, struct burry_err *e)
{
    struct archive_entry *ent;
    for (;;) {
        int rc = archive_read_next_header(z->a, &ent);
        if (rc == ARCHIVE_EOF)
            return z->checking ? check_central(z, e) : 0;
        /* a warning is a name libarchive could not convert: the raw one is used */
        if (rc < ARCHIVE_WARN)
            return damaged(z, e);
        /* (libarchive has read a symbolic link's target already) */
        unsigned type = archive_entry_filetype(ent);
        if (type != AE_IFREG && type != AE_IFDIR) {
            const char *p = archive_entry_pathname(ent);
            return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is not a regular file",
                              p ? show(z, p, strlen(p)) : "?");
        }
        if ((rc = local_header(z, e)) < 0)
            return rc;
        *name = z->name.p ? z->name.p : "";
        *len = z->name.len;
        if (type == AE_IFDIR || (*len && (*name)[*len - 1] == '/')) {
            if (z->checking && (rc = read_data(z, NULL, FORMAT_MAX_VALUE, *name, *len, NULL, e)) < 0)
                return rc;
            continue;
        }
        return 1;
    }
}

/* Read the current entry into b (at most max bytes), or through a scratch
 * buffer when b is NULL; libarchive checks the CRC-32 at the entry's end.
 * On the first read, note the entry's CRC-32 and sizes. */
static int read_data(struct gozip *z, struct buf *b, size_t max, const char *name, size_t nl,
                     unsigned long long *total, struct burry_err *e)
{
    char tmp[16384];
    unsigned long long n = 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    if (b)
        buf_reset(b);
    for (;;) {
        la_ssize_t k = archive_read_data(z->a, tmp, sizeof tmp);
        if (k < 0)
            return damaged(z, e);
        if (k == 0)
            break;
        n += (unsigned long long)k;
        if (n > max)
            return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is more than the %zu bytes allowed",
                              show(z, name, nl), max);
        if (b && buf_append(b, tmp, (size_t)k) < 0)
            return burry_errf(e, BURRY_EFAIL, "cannot read zip entry '%s': out of memory",
                              show(z, name, nl));
        if (z->checking)
            crc = crc32(crc, (const Bytef *)tmp, (uInt)k);
    }
    if (z->checking && z->nents) {
        struct gz_entry *x = &z->ents[z->nents - 1];
        x->usize = n;
        x->crc = (uint32_t)crc;
        x->done = 1;
    }
    if (total)
        *total = n;
    return 0;
}

static int meta_describe(struct gozip *z, const char *id, const char *text, size_t len,
                         struct burry_err *e)
{
    json_error_t je;
    json_t *m = json_loadb(text, len, 0, &je);
    if (!json_is_object(m)) {
        json_decref(m);
        return burry_errf(e, BURRY_EFAIL, "'%s/%s' is not a JSON object (%s)", z->dir, META_NAME,
                          je.text[0] ? je.text : "unexpected content");
    }
    const char *svc = json_string_value(json_object_get(m, "svc"));
    size_t i;
    for (i = 0; svc && i < sizeof services / sizeof services[0]; i++)
        if (!strcmp(svc, services[i].svc))
            break;
    if (!svc || i == sizeof services / sizeof services[0]) {
        int rc = burry_errf(e, BURRY_EFAIL, "'%s/%s' names %s%s%s, not one of zk, etcd, consul",
                            z->dir, META_NAME, svc ? "the service '" : "no service",
                            svc ? svc : "", svc ? "'" : "");
        json_decref(m);
        return rc;
    }
    z->skip_zk = !strcmp(svc, "zk");
    json_t *into = json_array();
    for (size_t j = 0; services[i].into[j]; j++)
        json_array_append_new(into, json_string(services[i].into[j]));
    /* an endpoint is host:port; drop anything that looks like user info */
    const char *ep = json_string_value(json_object_get(m, "svc-endpoint"));
    const char *at = ep ? strrchr(ep, '@') : NULL;
    char *source = NULL;
    if (ep && asprintf(&source, "%s://%s", services[i].scheme, at ? at + 1 : ep) < 0)
        source = NULL;
    json_t *date = json_object_get(m, "snapshot-date");
    z->manifest = json_pack("{s:s,s:s,s:n,s:s,s:o,s:s?,s:O?,s:b,s:s,s:o}", "format", GOZIP_FORMAT,
                            "snapshot", id ? id : z->dir, "name", "service", services[i].into[0],
                            "restorable_into", into, "source", source, "created",
                            json_is_string(date) ? date : NULL, "checksums", 0, "tool",
                            "the original burry (Go)", "burrymeta", m);
    free(source);
    if (!z->manifest)
        return burry_errf(e, BURRY_EFAIL, "cannot describe '%s/%s': out of memory", z->dir, META_NAME);
    return 0;
}

/* The first entry must be "DIR/.burrymeta"; it fixes DIR and the service. */
static int read_meta(struct gozip *z, const char *id, struct burry_err *e)
{
    const char *name;
    size_t nl;
    int rc = next_entry(z, &name, &nl, e);
    if (rc == 0)
        return burry_errf(e, BURRY_EFAIL, "zip archive is empty");
    if (rc < 0)
        return rc;
    const char *slash = memchr(name, '/', nl);
    size_t dl = slash ? (size_t)(slash - name) : 0, ml = strlen(META_NAME);
    if (!slash || dl == 0 || nl - dl - 1 != ml || memcmp(slash + 1, META_NAME, ml) ||
        memchr(name, 0, dl) || (dl == 1 && name[0] == '.') || (dl == 2 && !memcmp(name, "..", 2)))
        return burry_errf(e, BURRY_EFAIL,
                          "first zip entry is '%s', not 'ID/%s' as the original burry writes: "
                          "not one of its archives",
                          show(z, name, nl), META_NAME);
    z->dir = strndup(name, dl);
    if (!z->dir)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    struct buf b;
    buf_init(&b, GOZIP_MAX_META);
    rc = read_data(z, &b, GOZIP_MAX_META, name, nl, NULL, e);
    if (rc == 0)
        rc = meta_describe(z, id, b.p ? b.p : "", b.len, e);
    buf_free(&b);
    return rc;
}

/* An entry name (nl bytes) to a canonical node path in z->path. 1: a node,
 * 0: a node deliberately left out (ZooKeeper's own subtree), <0: not a
 * valid name. */
static int decode_name(struct gozip *z, const char *name, size_t nl, struct burry_err *e)
{
    size_t dl = strlen(z->dir);
    if (nl <= dl || name[0] == '/' || memcmp(name, z->dir, dl) || name[dl] != '/')
        return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is outside the snapshot directory '%s/'",
                          show(z, name, nl), z->dir);
    const char *rest = name + dl + 1;
    size_t rl = nl - dl - 1, vl = strlen(VALUE_NAME);
    /* every entry is a value: ".../content", or "content" for the root */
    if (rl < vl || memcmp(rest + rl - vl, VALUE_NAME, vl) || (rl > vl && rest[rl - vl - 1] != '/'))
        return burry_errf(e, BURRY_EFAIL, "zip entry '%s' is not a node's value (ID/PATH/%s)",
                          show(z, name, nl), VALUE_NAME);
    size_t pl = rl > vl ? rl - vl - 1 : 0;
    buf_reset(&z->path);
    if (buf_append(&z->path, "", 0) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    size_t el = strlen(ESC_COLON);
    for (size_t i = 0; i < pl;) {
        const char *seg = rest + i, *end = memchr(seg, '/', pl - i);
        size_t sl = end ? (size_t)(end - seg) : pl - i;
        if (sl == 0 || (sl == 1 && seg[0] == '.') || (sl == 2 && !memcmp(seg, "..", 2)))
            return burry_errf(e, BURRY_EFAIL, "zip entry '%s' has an empty, '.' or '..' component",
                              show(z, name, nl));
        if (buf_putc(&z->path, '/') < 0)
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        for (size_t j = 0; j < sl;) {
            int esc = sl - j >= el && !memcmp(seg + j, ESC_COLON, el);
            if (buf_putc(&z->path, esc ? ':' : seg[j]) < 0)
                return burry_errf(e, BURRY_EFAIL, "out of memory");
            j += esc ? el : 1;
        }
        i += sl + 1;
    }
    if (z->skip_zk && z->path.len >= 10 && !memcmp(z->path.p, "/zookeeper", 10) &&
        (z->path.len == 10 || z->path.p[10] == '/'))
        return 0;
    return 1;
}

static int by_path(const void *a, const void *b)
{
    const struct gz_node *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->path, y->path, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static struct gz_node *find(struct gozip *z, const char *p, size_t len)
{
    struct gz_node key = {.path = (char *)p, .len = len};
    return bsearch(&key, z->nodes, z->nnodes, sizeof *z->nodes, by_path);
}

static int add_node(struct gozip *z, struct burry_err *e)
{
    if (array_grow(&z->nodes, z->nnodes, &z->cap, sizeof *z->nodes, 256) < 0)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    char *p = malloc(z->path.len + 1);
    if (!p)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    memcpy(p, z->path.p, z->path.len + 1);
    z->nodes[z->nnodes++] = (struct gz_node){.path = p, .len = z->path.len};
    return 0;
}

static struct gozip *gz_new(fmt_read_fn in, gozip_rewind_fn rewind, void *ctx)
{
    struct gozip *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->in = in;
    z->rewind = rewind;
    z->ctx = ctx;
    z->ring = malloc(RING_SIZE);
    if (!z->ring) {
        free(z);
        return NULL;
    }
    buf_init(&z->names, 0);
    buf_init(&z->name, 0);
    buf_init(&z->hdr, RING_SIZE);
    buf_init(&z->path, 0);
    buf_init(&z->value, FORMAT_MAX_VALUE);
    buf_init(&z->msg, 0);
    buf_init(&z->msg2, 0);
    return z;
}

int gozip_peek(fmt_read_fn in, void *ctx, const char *id, json_t **out, struct burry_err *e)
{
    struct gozip *z = gz_new(in, NULL, ctx);
    if (!z)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    int rc = za_open(z, e);
    if (rc == 0)
        rc = read_meta(z, id, e);
    if (rc == 0)
        *out = json_incref(z->manifest);
    gozip_free(z);
    return rc;
}

struct gozip *gozip_open(fmt_read_fn in, gozip_rewind_fn rewind, void *ctx, const char *id,
                         struct burry_err *e)
{
    struct gozip *z = gz_new(in, rewind, ctx);
    const char *name;
    size_t nl;
    int rc;
    if (!z) {
        burry_errf(e, BURRY_EFAIL, "out of memory");
        return NULL;
    }
    z->checking = 1;
    if ((rc = za_open(z, e)) < 0 || (rc = read_meta(z, id, e)) < 0)
        goto fail;
    z->passes = 1;
    while ((rc = next_entry(z, &name, &nl, e)) == 1) {
        unsigned long long size = 0;
        int keep = decode_name(z, name, nl, e);
        if (keep < 0 || (rc = read_data(z, NULL, FORMAT_MAX_VALUE, name, nl, &size, e)) < 0)
            goto fail;
        if (!keep) {
            z->skipped++;
            continue;
        }
        if ((rc = add_node(z, e)) < 0)
            goto fail;
        z->bytes += size;
    }
    if (rc < 0)
        goto fail;
    za_close(z);
    /* checked against the central directory: the notes are not needed now */
    z->checking = 0;
    free(z->ents);
    z->ents = NULL;
    z->nents = z->ents_cap = 0;
    buf_free(&z->names);
    qsort(z->nodes, z->nnodes, sizeof *z->nodes, by_path);
    for (size_t i = 1; i < z->nnodes; i++)
        if (!by_path(&z->nodes[i - 1], &z->nodes[i])) {
            burry_errf(e, BURRY_EFAIL, "zip archive holds node '%s' twice",
                       show(z, z->nodes[i].path, z->nodes[i].len));
            goto fail;
        }
    z->left = z->nnodes;
    json_object_set_new(z->manifest, "nodes", json_integer((json_int_t)z->nnodes));
    json_object_set_new(z->manifest, "bytes", json_integer((json_int_t)z->bytes));
    json_object_set_new(z->manifest, "skipped",
                        z->skipped ? json_pack("{s:I}", "zookeeper_subtree", (json_int_t)z->skipped)
                                   : json_object());
    return z;
fail:
    gozip_free(z);
    return NULL;
}

json_t *gozip_manifest(struct gozip *z)
{
    return z->manifest;
}

/* A node may go once its nearest ancestor that the archive holds has gone
 * (ancestors the archive does not hold, like etcd directories, are not
 * waited for). */
static int ready(struct gozip *z, const char *p, size_t len)
{
    for (size_t i = len; i-- > 0;) {
        if (p[i] != '/')
            continue;
        struct gz_node *a = find(z, p, i);
        if (a)
            return a->emitted;
    }
    return 1;
}

int gozip_next(struct gozip *z, struct bnode *n, struct burry_err *e)
{
    const char *name;
    size_t nl;
    int rc;
    for (;;) {
        if (z->left == 0) {
            za_close(z);
            return 0;
        }
        if (!z->a) {
            /* every read of the archive sends at least one more level */
            if (z->passes > 1 && z->pass_emitted == 0)
                return burry_errf(e, BURRY_EFAIL, "zip archive changed while it was read");
            if (z->passes > 0 && !z->rewind)
                return burry_errf(e, BURRY_EFAIL, "zip archive cannot be read again");
            if (z->passes > 0 && (rc = z->rewind(z->ctx, e)) < 0)
                return rc;
            if ((rc = za_open(z, e)) < 0 || (rc = next_entry(z, &name, &nl, e)) < 0)
                return rc;
            z->passes++;
            z->pass_emitted = 0;
            continue;
        }
        if ((rc = next_entry(z, &name, &nl, e)) < 0)
            return rc;
        if (rc == 0) {
            za_close(z);
            continue;
        }
        int keep = decode_name(z, name, nl, e);
        if (keep < 0)
            return keep;
        if (!keep)
            continue;
        struct gz_node *x = find(z, z->path.p, z->path.len);
        if (!x)
            return burry_errf(e, BURRY_EFAIL, "zip archive changed while it was read (new entry '%s')",
                              show(z, name, nl));
        if (x->emitted || !ready(z, x->path, x->len))
            continue;
        if ((rc = read_data(z, &z->value, FORMAT_MAX_VALUE, name, nl, NULL, e)) < 0)
            return rc;
        x->emitted = 1;
        z->left--;
        z->pass_emitted++;
        *n = (struct bnode){.path = x->path, .path_len = x->len, .value = z->value.p ? z->value.p : "",
                            .value_len = z->value.len, .has_value = 1, .attrs = NULL};
        return 1;
    }
}

void gozip_free(struct gozip *z)
{
    if (!z)
        return;
    za_close(z);
    for (size_t i = 0; i < z->nnodes; i++)
        free(z->nodes[i].path);
    free(z->nodes);
    free(z->dir);
    json_decref(z->manifest);
    free(z->ents);
    free(z->ring);
    buf_free(&z->names);
    buf_free(&z->name);
    buf_free(&z->hdr);
    buf_free(&z->path);
    buf_free(&z->value);
    buf_free(&z->msg);
    buf_free(&z->msg2);
    free(z);
}

char *gozip_id_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base), sl = strlen(GOZIP_SUFFIX);
    if (bl <= sl || strcmp(base + bl - sl, GOZIP_SUFFIX))
        return NULL;
    return strndup(base, bl - sl);
}

int gozip_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 20)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] < '0' || id[i] > '9')
            return 0;
    return 1;
}
