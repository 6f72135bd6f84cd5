/* Snapshot archive format v1 (format.h): a streaming tar writer and a
 * verifying reader on top of libarchive. Checksums are computed as the bytes
 * pass, so neither side ever holds more than one value in memory. */
#include "format.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "digest.h"
#include "jsonout.h"
#include "names.h"
#include "tar.h"

#define FORMAT_NAME "burry-snapshot"
#define MANIFEST_NAME "manifest.json"
#define TREE_PREFIX "tree/"
#define TREE_PREFIX_LEN 5
#define SUFFIX_LEN 5 /* strlen(NAMES_META) == strlen(NAMES_DATA) */
#define HEX_LEN SHA256_HEX_LEN
#define READ_CHUNK 65536
#define DISPLAY_MAX 200 /* bytes of a name shown in a message */

/* ---- shared helpers ---- */

const char *fmt_suffix(enum burry_compress c)
{
    switch (c) {
    case BURRY_COMPRESS_ZSTD:
        return ".tar.zst";
    case BURRY_COMPRESS_GZIP:
        return ".tar.gz";
    case BURRY_COMPRESS_NONE:
        break;
    }
    return ".tar";
}

const char *fmt_compress_name(enum burry_compress c)
{
    switch (c) {
    case BURRY_COMPRESS_ZSTD:
        return "zstd";
    case BURRY_COMPRESS_GZIP:
        return "gzip";
    case BURRY_COMPRESS_NONE:
        break;
    }
    return "none";
}

int fmt_compress_parse(const char *s, enum burry_compress *out)
{
    static const enum burry_compress all[] = {BURRY_COMPRESS_ZSTD, BURRY_COMPRESS_GZIP,
                                              BURRY_COMPRESS_NONE};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, fmt_compress_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return BURRY_EUSAGE;
}

static EVP_MD_CTX *sha256_new(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestInit_ex(md, sha256_md(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        md = NULL;
    }
    return md;
}

/* One line of the nodes_sha256 text, as sha256sum prints it, into md;
 * scratch hashes the @meta. */
static void nodes_line(EVP_MD_CTX *md, EVP_MD_CTX *scratch, const char *meta, size_t meta_len,
                       const char *name, size_t name_len)
{
    char line[512];
    sha256_hex_ctx(scratch, meta, meta_len, line);
    memcpy(line + HEX_LEN, "  ", 2);
    if (name_len > sizeof line - HEX_LEN - 3) { /* a long name: in pieces */
        EVP_DigestUpdate(md, line, HEX_LEN + 2);
        EVP_DigestUpdate(md, name, name_len);
        EVP_DigestUpdate(md, "\n", 1);
        return;
    }
    memcpy(line + HEX_LEN + 2, name, name_len);
    line[HEX_LEN + 2 + name_len] = '\n';
    EVP_DigestUpdate(md, line, HEX_LEN + 3 + name_len);
}

/* A printable, bounded form of a node path or archive name for messages. */
static const char *show(struct buf *b, const char *p, size_t n)
{
    buf_reset(b);
    int cut = n > DISPLAY_MAX;
    if (names_display(p ? p : "", cut ? DISPLAY_MAX : n, b) < 0 || (cut && buf_puts(b, "...") < 0))
        return "?";
    return b->p ? b->p : "";
}

/* ---- writer ---- */

/* The tar stream is one "raw" entry of w->a, which only compresses and
 * hands on what it is given: w_entry writes the ustar headers (tar.h), data
 * and padding itself. An entry whose name needs a pax extended header goes
 * through w->pax, libarchive's pax_restricted writer, whose output joins
 * the same stream; both give the same bytes for the same entry. */
#define STAGE_SIZE (64 * 1024)

struct fmt_writer {
    struct archive *a;         /* raw format, compression, output to w_write */
    struct archive *pax;       /* tar format only, output to w_pax_write */
    struct archive_entry *ent; /* reused for every entry written via pax */
    enum burry_compress compress;
    fmt_write_fn out;
    void *ctx;
    struct burry_err out_err; /* what the output callback reported */
    EVP_MD_CTX *archive_md;   /* over the bytes handed to out */
    EVP_MD_CTX *nodes_md;     /* over the nodes_sha256 text */
    EVP_MD_CTX *scratch_md;   /* for each value and @meta */
    uint64_t archive_size, nodes, bytes;
    char archive_hex[HEX_LEN + 1];
    struct buf name; /* archive name of the entry being written */
    struct buf prev; /* node path of the previous node */
    struct buf meta; /* @meta of the node being written */
    struct buf msg;  /* scratch for names in messages */
    int broken;      /* a write failed: the stream is unusable */
    int finished;
    int discard; /* drop output: closing an unfinished archive or w->pax */
    /* tar bytes gathered for the compressor: one call per STAGE_SIZE, not
     * three per entry (each call costs the zstd worker handoff a lock) */
    char stage[STAGE_SIZE];
    size_t staged;
};

static la_ssize_t w_write(struct archive *a, void *cd, const void *p, size_t n)
{
    struct fmt_writer *w = cd;
    if (w->discard)
        return (la_ssize_t)n;
    if (w->out(w->ctx, p, n, &w->out_err) < 0) {
        if (!w->out_err.code)
            burry_errf(&w->out_err, BURRY_EFAIL, "cannot write archive: output failed");
        archive_set_error(a, EIO, "%s", w->out_err.msg);
        return -1;
    }
    EVP_DigestUpdate(w->archive_md, p, n);
    w->archive_size += n;
    return (la_ssize_t)n;
}

/* A libarchive call on a (w->a or w->pax) failed: the cause is the output
 * callback's error if it reported one, else libarchive's message. */
static int w_fail(struct fmt_writer *w, struct archive *a, struct burry_err *e, const char *what)
{
    w->broken = 1;
    if (w->out_err.code)
        return burry_errf(e, w->out_err.code, "%s", w->out_err.msg);
    const char *why = archive_error_string(a);
    return burry_errf(e, BURRY_EFAIL, "cannot write archive entry '%s': %s", what,
                      why ? why : "unknown libarchive error");
}

/* n bytes of the tar stream, into the compressor. */
static int w_data(struct fmt_writer *w, const char *p, size_t n)
{
    while (n > 0) {
        la_ssize_t k = archive_write_data(w->a, p, n);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Hand the staged bytes to the compressor. */
static int w_flush(struct fmt_writer *w)
{
    size_t n = w->staged;
    w->staged = 0;
    return w_data(w, w->stage, n);
}

/* The next bytes of the tar stream. */
static int w_out(struct fmt_writer *w, const void *data, size_t n)
{
    if (w->staged + n > STAGE_SIZE && w_flush(w) < 0)
        return -1;
    if (n >= STAGE_SIZE)
        return w_data(w, data, n);
    memcpy(w->stage + w->staged, data, n);
    w->staged += n;
    return 0;
}

static la_ssize_t w_pax_write(struct archive *pax, void *cd, const void *p, size_t n)
{
    struct fmt_writer *w = cd;
    if (w->discard)
        return (la_ssize_t)n;
    if (w_out(w, p, n) < 0) {
        const char *why = archive_error_string(w->a);
        archive_set_error(pax, EIO, "%s", why ? why : "output failed");
        return -1;
    }
    return (la_ssize_t)n;
}

static int w_entry(struct fmt_writer *w, const char *name, size_t name_len, const void *data,
                   size_t len, struct burry_err *e)
{
    /* the header straight into the stage, when it has room */
    if (w->staged + TAR_BLOCK > STAGE_SIZE && w_flush(w) < 0)
        return w_fail(w, w->a, e, name);
    if (tar_header(w->stage + w->staged, name, name_len, len) == 0) {
        w->staged += TAR_BLOCK;
        size_t pad = (TAR_BLOCK - len % TAR_BLOCK) % TAR_BLOCK;
        if (w_out(w, data, len) < 0 || (w->staged + pad > STAGE_SIZE && w_flush(w) < 0))
            return w_fail(w, w->a, e, name);
        memset(w->stage + w->staged, 0, pad);
        w->staged += pad;
        return 0;
    }

    /* Fixed owner, mode and time: the same nodes give the same bytes. */
    struct archive_entry *ent = w->ent;
    archive_entry_set_pathname(ent, name);
    archive_entry_set_filetype(ent, AE_IFREG);
    archive_entry_set_perm(ent, 0644);
    archive_entry_set_uid(ent, 0);
    archive_entry_set_gid(ent, 0);
    archive_entry_set_mtime(ent, 0, 0);
    archive_entry_set_size(ent, (la_int64_t)len);
    if (archive_write_header(w->pax, ent) != ARCHIVE_OK)
        return w_fail(w, w->pax, e, name);
    const char *p = data;
    while (len > 0) {
        la_ssize_t k = archive_write_data(w->pax, p, len);
        if (k <= 0)
            return w_fail(w, w->pax, e, name);
        p += k;
        len -= (size_t)k;
    }
    /* the padding, now, so that nothing of this entry comes later */
    if (archive_write_finish_entry(w->pax) != ARCHIVE_OK)
        return w_fail(w, w->pax, e, name);
    return 0;
}

struct fmt_writer *fmt_writer_new(enum burry_compress c, fmt_write_fn out, void *ctx,
                                  struct burry_err *e)
{
    struct fmt_writer *w = calloc(1, sizeof *w);
    if (!w) {
        burry_errf(e, BURRY_EFAIL, "cannot create archive writer: out of memory");
        return NULL;
    }
    w->compress = c;
    w->out = out;
    w->ctx = ctx;
    buf_init(&w->name, 0);
    buf_init(&w->prev, 0);
    buf_init(&w->meta, 0);
    buf_init(&w->msg, 0);
    w->archive_md = sha256_new();
    w->nodes_md = sha256_new();
    w->scratch_md = EVP_MD_CTX_new();
    w->a = archive_write_new();
    w->pax = archive_write_new();
    w->ent = archive_entry_new();
    if (!w->archive_md || !w->nodes_md || !w->scratch_md || !w->a || !w->pax || !w->ent) {
        burry_errf(e, BURRY_EFAIL, "cannot create archive writer: out of memory");
        goto fail;
    }

    /* The pax writer passes every byte on at once (no blocking). */
    int rc = archive_write_set_format_pax_restricted(w->pax);
    if (rc == ARCHIVE_OK)
        rc = archive_write_set_bytes_per_block(w->pax, 0);
    if (rc == ARCHIVE_OK)
        rc = archive_write_open(w->pax, w, NULL, w_pax_write, NULL);
    if (rc != ARCHIVE_OK) {
        const char *why = archive_error_string(w->pax);
        burry_errf(e, BURRY_EFAIL, "cannot create a tar writer: %s",
                   why ? why : "unknown libarchive error");
        goto fail;
    }

    rc = archive_write_set_format_raw(w->a);
    if (rc == ARCHIVE_OK) {
        switch (c) {
        case BURRY_COMPRESS_ZSTD:
            rc = archive_write_add_filter_zstd(w->a);
            /* Level 1, not libarchive's 3: on snapshot tars (mostly headers
             * and zero padding) it is faster and as small or smaller (100k
             * etcd keys: 5.5 MB against 6.4 MB). One worker thread compresses
             * while this one formats the next entries; the output is still
             * one ordinary zstd frame. Without threads in libzstd, it
             * compresses here. */
            if (rc == ARCHIVE_OK)
                rc = archive_write_set_filter_option(w->a, "zstd", "compression-level", "1");
            if (rc == ARCHIVE_OK &&
                archive_write_set_filter_option(w->a, "zstd", "threads", "1") != ARCHIVE_OK)
                archive_clear_error(w->a);
            break;
        case BURRY_COMPRESS_GZIP:
            rc = archive_write_add_filter_gzip(w->a);
            /* No time stamp in the gzip header, for reproducible output. */
            if (rc == ARCHIVE_OK)
                rc = archive_write_set_filter_option(w->a, "gzip", "timestamp", NULL);
            break;
        case BURRY_COMPRESS_NONE:
            rc = archive_write_add_filter_none(w->a);
            break;
        default:
            burry_errf(e, BURRY_EUSAGE, "unknown compression %d", (int)c);
            goto fail;
        }
    }
    /* No zero padding after the end-of-archive marker: zstd would take it
     * for a broken frame, and without it any truncation cuts the marker. */
    if (rc == ARCHIVE_OK)
        rc = archive_write_set_bytes_in_last_block(w->a, 1);
    if (rc == ARCHIVE_OK)
        rc = archive_write_open(w->a, w, NULL, w_write, NULL);
    if (rc == ARCHIVE_OK) { /* the one raw entry: the whole tar stream */
        archive_entry_set_filetype(w->ent, AE_IFREG);
        rc = archive_write_header(w->a, w->ent);
    }
    if (rc != ARCHIVE_OK) {
        const char *why = archive_error_string(w->a);
        burry_errf(e, BURRY_EFAIL, "cannot create a '%s' archive writer: %s", fmt_compress_name(c),
                   why ? why : "unknown libarchive error");
        goto fail;
    }
    return w;
fail:
    fmt_writer_free(w);
    return NULL;
}

int fmt_writer_add(struct fmt_writer *w, const struct bnode *n, struct burry_err *e)
{
    if (w->broken || w->finished)
        return burry_errf(e, BURRY_EFAIL, "cannot add node to archive: %s",
                          w->finished ? "the archive is already finished"
                                      : "an earlier write failed");
    const char *shown = NULL;
#define SHOWN() (shown ? shown : (shown = show(&w->msg, n->path, n->path_len)))
    size_t vlen = n->has_value ? n->value_len : 0;
    if (n->has_value && vlen > FORMAT_MAX_VALUE)
        return burry_errf(e, BURRY_EFAIL,
                          "value of node '%s' is %zu bytes, more than the %zu a snapshot can hold",
                          SHOWN(), vlen, FORMAT_MAX_VALUE);
    if (n->has_value && !n->value && vlen)
        return burry_errf(e, BURRY_EFAIL, "node '%s' has a length but no value", SHOWN());
    if (!n->attrs_json && n->attrs && !json_is_object(n->attrs))
        return burry_errf(e, BURRY_EFAIL, "attributes of node '%s' are not a JSON object", SHOWN());
    if (w->nodes > 0 && w->prev.len == n->path_len &&
        (n->path_len == 0 || memcmp(w->prev.p, n->path, n->path_len) == 0))
        return burry_errf(e, BURRY_EFAIL, "node '%s' added to the archive twice", SHOWN());

    buf_reset(&w->name);
    if (buf_puts(&w->name, TREE_PREFIX) < 0 ||
        names_encode_path(n->path, n->path_len, &w->name) < 0 ||
        (n->path_len > 0 && buf_putc(&w->name, '/') < 0) || buf_puts(&w->name, NAMES_META) < 0)
        return burry_errf(e, BURRY_EFAIL,
                          "cannot name node '%s' in the archive: not a canonical path or too long",
                          SHOWN());

    /* @meta: one line of compact JSON with sorted keys, as
     * json_dumps(JSON_COMPACT | JSON_SORT_KEYS) would write the object
     * {"attrs": ..., "sha256": ..., "size": ...}. */
    struct buf *m = &w->meta;
    buf_reset(m);
    int bad = buf_puts(m, "{\"attrs\":") < 0 ||
              (n->attrs_json ? buf_append(m, n->attrs_json, n->attrs_json_len)
               : n->attrs    ? jsonout_compact(m, n->attrs)
                             : buf_puts(m, "{}")) < 0;
    if (!bad && n->has_value) {
        char tail[HEX_LEN + 48], *t = tail; /* ,"sha256":"HEX","size":N} */
        memcpy(t, ",\"sha256\":\"", 11);
        sha256_hex_ctx(w->scratch_md, vlen ? n->value : "", vlen, t + 11);
        t += 11 + HEX_LEN;
        memcpy(t, "\",\"size\":", 9);
        t += 9;
        char digits[24], *d = digits + sizeof digits;
        size_t v = vlen;
        do
            *--d = (char)('0' + v % 10);
        while (v /= 10);
        memcpy(t, d, (size_t)(digits + sizeof digits - d));
        t += digits + sizeof digits - d;
        *t++ = '}';
        bad = buf_append(m, tail, (size_t)(t - tail)) < 0;
    } else if (!bad) {
        bad = buf_puts(m, ",\"sha256\":null,\"size\":null}") < 0;
    }
    if (bad)
        return burry_errf(e, BURRY_EFAIL, "cannot encode the metadata of node '%s'", SHOWN());
    if (m->len + 1 > FORMAT_MAX_META)
        return burry_errf(e, BURRY_EFAIL,
                          "metadata of node '%s' is %zu bytes, more than the %zu allowed", SHOWN(),
                          m->len + 1, FORMAT_MAX_META);
    if (buf_putc(m, '\n') < 0)
        return burry_errf(e, BURRY_EFAIL, "cannot encode the metadata of node '%s'", SHOWN());
    int rc = w_entry(w, w->name.p, w->name.len, m->p, m->len, e);
    if (rc == 0)
        nodes_line(w->nodes_md, w->scratch_md, m->p, m->len, w->name.p, w->name.len);
    if (rc < 0)
        return rc;

    if (n->has_value) {
        w->name.len -= SUFFIX_LEN;
        if (buf_puts(&w->name, NAMES_DATA) < 0)
            return burry_errf(e, BURRY_EFAIL, "cannot name node '%s' in the archive", SHOWN());
        if ((rc = w_entry(w, w->name.p, w->name.len, n->value, vlen, e)) < 0)
            return rc;
    }
#undef SHOWN

    buf_reset(&w->prev);
    if (buf_append(&w->prev, n->path, n->path_len) < 0) {
        w->broken = 1;
        return burry_errf(e, BURRY_EFAIL, "cannot add node to archive: out of memory");
    }
    w->nodes++;
    w->bytes += vlen;
    return 0;
}

int fmt_writer_finish(struct fmt_writer *w, json_t *manifest, struct burry_err *e)
{
    if (w->broken || w->finished)
        return burry_errf(e, BURRY_EFAIL, "cannot finish archive: %s",
                          w->finished ? "it is already finished" : "an earlier write failed");
    json_t *own = NULL;
    if (!manifest)
        manifest = own = json_object();
    if (!json_is_object(manifest)) {
        json_decref(own);
        return burry_errf(e, BURRY_EFAIL,
                          "cannot finish archive: the manifest is not a JSON object");
    }
    w->broken = 1; /* until the last step succeeds; the nodes digest is final now */

    char nodes_hex[HEX_LEN + 1];
    sha256_final_hex(w->nodes_md, nodes_hex);
    int bad = 0;
    bad |= json_object_set_new(manifest, "format", json_string(FORMAT_NAME));
    bad |= json_object_set_new(manifest, "format_version", json_integer(FORMAT_VERSION));
    bad |=
        json_object_set_new(manifest, "compression", json_string(fmt_compress_name(w->compress)));
    bad |= json_object_set_new(manifest, "nodes", json_integer((json_int_t)w->nodes));
    bad |= json_object_set_new(manifest, "bytes", json_integer((json_int_t)w->bytes));
    bad |= json_object_set_new(manifest, "nodes_sha256", json_string(nodes_hex));
    char *txt = bad ? NULL : json_dumps(manifest, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(own);
    if (!txt)
        return burry_errf(e, BURRY_EFAIL, "cannot encode '%s'", MANIFEST_NAME);
    size_t tlen = strlen(txt);
    if (tlen + 1 > FORMAT_MAX_META) {
        free(txt);
        return burry_errf(e, BURRY_EFAIL, "'%s' is %zu bytes, more than the %zu allowed",
                          MANIFEST_NAME, tlen + 1, FORMAT_MAX_META);
    }
    txt[tlen] = '\n';
    int rc = w_entry(w, MANIFEST_NAME, strlen(MANIFEST_NAME), txt, tlen + 1, e);
    free(txt);
    if (rc < 0)
        return rc;
    static const char end_marker[2 * TAR_BLOCK];
    if (w_out(w, end_marker, sizeof end_marker) < 0 || w_flush(w) < 0 ||
        archive_write_close(w->a) != ARCHIVE_OK)
        return w_fail(w, w->a, e, MANIFEST_NAME);
    sha256_final_hex(w->archive_md, w->archive_hex);
    w->broken = 0;
    w->finished = 1;
    return 0;
}

void fmt_writer_free(struct fmt_writer *w)
{
    if (!w)
        return;
    if (w->pax) {
        /* its end-of-archive marker is not wanted: the stream has its own */
        w->discard = 1;
        archive_write_free(w->pax);
        w->discard = 0;
    }
    if (w->a) {
        /* An unfinished archive must not get a valid-looking trailer, so its
         * last bytes are dropped; closing still runs because libarchive
         * frees its output state only there, even after a failure. */
        if (!w->finished) {
            w->discard = 1;
            archive_write_close(w->a);
        }
        archive_write_free(w->a);
    }
    archive_entry_free(w->ent);
    EVP_MD_CTX_free(w->archive_md);
    EVP_MD_CTX_free(w->nodes_md);
    EVP_MD_CTX_free(w->scratch_md);
    buf_free(&w->name);
    buf_free(&w->prev);
    buf_free(&w->meta);
    buf_free(&w->msg);
    free(w);
}

uint64_t fmt_writer_nodes(const struct fmt_writer *w)
{
    return w->nodes;
}

uint64_t fmt_writer_bytes(const struct fmt_writer *w)
{
    return w->bytes;
}

uint64_t fmt_writer_archive_size(const struct fmt_writer *w)
{
    return w->archive_size;
}

const char *fmt_writer_archive_sha256(const struct fmt_writer *w)
{
    return w->archive_hex;
}

/* ---- reader ---- */

enum { R_READING, R_DONE, R_FAILED };

struct fmt_reader {
    struct archive *a;
    fmt_read_fn in;
    void *ctx;
    struct burry_err in_err; /* what the input callback reported */
    int in_eof;
    EVP_MD_CTX *archive_md; /* over the raw bytes read */
    EVP_MD_CTX *nodes_md;   /* over the recomputed nodes_sha256 text */
    EVP_MD_CTX *scratch_md; /* for each value and @meta */
    uint64_t archive_size, nodes, bytes;
    char archive_hex[HEX_LEN + 1];
    int state;
    struct buf name;   /* archive name of the current @meta */
    struct buf path;   /* decoded node path */
    struct buf prev;   /* previous node path */
    struct buf meta;   /* @meta or manifest bytes */
    struct buf value;  /* @data bytes */
    struct buf msg;    /* scratch for names in messages */
    json_t *meta_json; /* current @meta; the node's attrs point into it */
    json_t *manifest;
    unsigned char chunk[READ_CHUNK];
};

static la_ssize_t r_read(struct archive *a, void *cd, const void **out)
{
    struct fmt_reader *r = cd;
    *out = r->chunk;
    if (r->in_eof)
        return 0;
    ssize_t k = r->in(r->ctx, r->chunk, sizeof r->chunk, &r->in_err);
    if (k < 0) {
        if (!r->in_err.code)
            burry_errf(&r->in_err, BURRY_EFAIL, "cannot read archive: input failed");
        archive_set_error(a, EIO, "%s", r->in_err.msg);
        return -1;
    }
    if (k == 0) {
        r->in_eof = 1;
        return 0;
    }
    EVP_DigestUpdate(r->archive_md, r->chunk, (size_t)k);
    r->archive_size += (uint64_t)k;
    return (la_ssize_t)k;
}

static int r_fail(struct fmt_reader *r, struct burry_err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int r_fail(struct fmt_reader *r, struct burry_err *e, const char *fmt, ...)
{
    char msg[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->state = R_FAILED;
    return burry_errf(e, BURRY_EFAIL, "%s", msg);
}

/* libarchive failed: the input callback's error if it reported one, else
 * the stream itself is bad. */
static int r_damaged(struct fmt_reader *r, struct burry_err *e)
{
    r->state = R_FAILED;
    if (r->in_err.code)
        return burry_errf(e, r->in_err.code, "%s", r->in_err.msg);
    const char *why = archive_error_string(r->a);
    return burry_errf(e, BURRY_EFAIL, "archive is damaged or truncated: %s",
                      why ? why : "unknown libarchive error");
}

/* Next regular file entry, skipping directories (stock tar adds them when
 * re-packing). 1 with *ent set, 0 at the end, <0 on error. */
static int r_header(struct fmt_reader *r, struct archive_entry **ent, struct burry_err *e)
{
    for (;;) {
        int rc = archive_read_next_header(r->a, ent);
        if (rc == ARCHIVE_EOF)
            return 0;
        if (rc < ARCHIVE_WARN)
            return r_damaged(r, e);
        if (archive_entry_filetype(*ent) == AE_IFDIR)
            continue;
        const char *name = archive_entry_pathname(*ent);
        if (!name)
            return r_fail(r, e, "archive entry with an unreadable name");
        if (archive_entry_filetype(*ent) != AE_IFREG)
            return r_fail(r, e, "archive entry '%s' is not a regular file",
                          show(&r->msg, name, strlen(name)));
        return 1;
    }
}

/* Read the current entry's data into b; more than max bytes is an error. */
static int r_data(struct fmt_reader *r, struct archive_entry *ent, struct buf *b, size_t max,
                  const char *name, struct burry_err *e)
{
    buf_reset(b);
    if (archive_entry_size_is_set(ent) &&
        (archive_entry_size(ent) < 0 || (uint64_t)archive_entry_size(ent) > max))
        return r_fail(r, e, "archive entry '%s' is %lld bytes, more than the %zu allowed", name,
                      (long long)archive_entry_size(ent), max);
    char tmp[16384];
    for (;;) {
        la_ssize_t k = archive_read_data(r->a, tmp, sizeof tmp);
        if (k < 0)
            return r_damaged(r, e);
        if (k == 0)
            return 0;
        if (b->len + (size_t)k > max)
            return r_fail(r, e, "archive entry '%s' is more than the %zu bytes allowed", name, max);
        if (buf_append(b, tmp, (size_t)k) < 0)
            return r_fail(r, e, "cannot read archive entry '%s': out of memory", name);
    }
}

static int is_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == HEX_LEN;
}

struct fmt_reader *fmt_reader_new(fmt_read_fn in, void *ctx, struct burry_err *e)
{
    struct fmt_reader *r = calloc(1, sizeof *r);
    if (!r) {
        burry_errf(e, BURRY_EFAIL, "cannot create archive reader: out of memory");
        return NULL;
    }
    r->in = in;
    r->ctx = ctx;
    buf_init(&r->name, 0);
    buf_init(&r->path, 0);
    buf_init(&r->prev, 0);
    buf_init(&r->meta, FORMAT_MAX_META);
    buf_init(&r->value, FORMAT_MAX_VALUE);
    buf_init(&r->msg, 0);
    r->archive_md = sha256_new();
    r->nodes_md = sha256_new();
    r->scratch_md = EVP_MD_CTX_new();
    r->a = archive_read_new();
    if (!r->archive_md || !r->nodes_md || !r->scratch_md || !r->a) {
        burry_errf(e, BURRY_EFAIL, "cannot create archive reader: out of memory");
        goto fail;
    }
    /* only the filters burry writes, all in-process (never an external program) */
    if (archive_read_support_filter_zstd(r->a) < ARCHIVE_WARN ||
        archive_read_support_filter_gzip(r->a) < ARCHIVE_WARN ||
        archive_read_support_format_tar(r->a) != ARCHIVE_OK) {
        burry_errf(e, BURRY_EFAIL, "cannot create archive reader: %s",
                   archive_error_string(r->a) ? archive_error_string(r->a) : "libarchive failed");
        goto fail;
    }
    if (archive_read_open(r->a, r, NULL, r_read, NULL) != ARCHIVE_OK) {
        r_damaged(r, e);
        goto fail;
    }
    return r;
fail:
    fmt_reader_free(r);
    return NULL;
}

static json_int_t manifest_int(json_t *m, const char *key, int *ok)
{
    json_t *v = json_object_get(m, key);
    if (!json_is_integer(v)) {
        *ok = 0;
        return 0;
    }
    return json_integer_value(v);
}

/* The manifest ends the archive: check it against what was read, make sure
 * nothing follows, and drain the input so the archive digest covers it all. */
static int r_manifest(struct fmt_reader *r, struct archive_entry *ent, struct burry_err *e)
{
    int rc = r_data(r, ent, &r->meta, FORMAT_MAX_META, MANIFEST_NAME, e);
    if (rc < 0)
        return rc;
    json_error_t je;
    r->manifest = json_loadb(r->meta.p ? r->meta.p : "", r->meta.len, JSON_REJECT_DUPLICATES, &je);
    if (!r->manifest || !json_is_object(r->manifest))
        return r_fail(r, e, "archive entry '%s' is not a JSON object (%s)", MANIFEST_NAME,
                      r->manifest ? "another JSON value" : je.text);

    const char *fmt = json_string_value(json_object_get(r->manifest, "format"));
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0)
        return r_fail(r, e, "archive entry '%s' does not describe a burry snapshot (format '%s')",
                      MANIFEST_NAME, fmt ? show(&r->msg, fmt, strlen(fmt)) : "(none)");
    /* The version first: a newer format may lay out the rest differently. */
    int ok = 1;
    json_int_t version = manifest_int(r->manifest, "format_version", &ok);
    if (!ok || version < 1)
        return r_fail(r, e,
                      "archive entry '%s': 'format_version' is missing or not a positive integer",
                      MANIFEST_NAME);
    if (version > FORMAT_VERSION)
        return r_fail(r, e, "snapshot format version %lld is newer than this burry supports (%d)",
                      (long long)version, FORMAT_VERSION);
    json_int_t nodes = manifest_int(r->manifest, "nodes", &ok);
    json_int_t bytes = manifest_int(r->manifest, "bytes", &ok);
    const char *nodes_sha = json_string_value(json_object_get(r->manifest, "nodes_sha256"));
    if (!ok || !nodes_sha)
        return r_fail(r, e,
                      "archive entry '%s' lacks 'nodes', 'bytes' or 'nodes_sha256', or has a "
                      "wrong type for one of them",
                      MANIFEST_NAME);
    if (nodes < 0 || (uint64_t)nodes != r->nodes)
        return r_fail(r, e, "archive entry '%s': node count mismatch (expected %lld, got %llu)",
                      MANIFEST_NAME, (long long)nodes, (unsigned long long)r->nodes);
    if (bytes < 0 || (uint64_t)bytes != r->bytes)
        return r_fail(r, e, "archive entry '%s': byte count mismatch (expected %lld, got %llu)",
                      MANIFEST_NAME, (long long)bytes, (unsigned long long)r->bytes);
    char hex[HEX_LEN + 1];
    sha256_final_hex(r->nodes_md, hex);
    if (strcmp(hex, nodes_sha) != 0)
        return r_fail(r, e,
                      "archive entry '%s': nodes_sha256 mismatch (expected %.12s.., got %.12s..)",
                      MANIFEST_NAME, show(&r->msg, nodes_sha, strlen(nodes_sha)), hex);

    /* Nothing may follow, and the end-of-archive marker (two zero blocks)
     * must be there: libarchive accepts a stream that stops without it,
     * which is what a cut right after the manifest looks like. */
    int64_t before = archive_filter_bytes(r->a, 0);
    struct archive_entry *next;
    rc = archive_read_next_header(r->a, &next);
    if (rc == ARCHIVE_OK || rc == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(next);
        return r_fail(r, e, "archive entry '%s' follows '%s', which must be the last entry",
                      name ? show(&r->msg, name, strlen(name)) : "?", MANIFEST_NAME);
    }
    if (rc != ARCHIVE_EOF)
        return r_damaged(r, e);
    if (archive_filter_bytes(r->a, 0) - before < 2 * TAR_BLOCK)
        return r_fail(r, e, "archive is damaged or truncated: no end-of-archive marker after '%s'",
                      MANIFEST_NAME);
    while (!r->in_eof) {
        const void *unused;
        if (r_read(r->a, r, &unused) < 0)
            return r_damaged(r, e);
    }
    if (archive_filter_code(r->a, 0) == ARCHIVE_FILTER_NONE && r->archive_size % TAR_BLOCK != 0)
        return r_fail(r, e,
                      "archive is damaged or truncated: %llu bytes is not a whole number of "
                      "%d-byte tar blocks",
                      (unsigned long long)r->archive_size, TAR_BLOCK);
    sha256_final_hex(r->archive_md, r->archive_hex);
    r->state = R_DONE;
    return 0;
}

int fmt_reader_next(struct fmt_reader *r, struct bnode *n, struct burry_err *e)
{
    if (r->state == R_DONE)
        return 0;
    if (r->state == R_FAILED)
        return burry_errf(e, BURRY_EFAIL, "cannot read archive: an earlier read failed");
    json_decref(r->meta_json);
    r->meta_json = NULL;

    struct archive_entry *ent;
    int rc = r_header(r, &ent, e);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return r_fail(r, e,
                      "archive ends without '%s': the backup did not complete or the file is "
                      "truncated",
                      MANIFEST_NAME);
    const char *raw = archive_entry_pathname(ent);
    if (strcmp(raw, MANIFEST_NAME) == 0)
        return r_manifest(r, ent, e);

    buf_reset(&r->name);
    if (buf_puts(&r->name, raw) < 0)
        return r_fail(r, e, "cannot read archive: out of memory");
    const char *name = r->name.p;
    size_t nl = r->name.len;
    char shown[4 * DISPLAY_MAX + 8];
    snprintf(shown, sizeof shown, "%s", show(&r->msg, name, nl));

    if (nl < TREE_PREFIX_LEN || memcmp(name, TREE_PREFIX, TREE_PREFIX_LEN) != 0)
        return r_fail(r, e,
                      "archive entry '%s' is not part of a burry snapshot (expected 'tree/...' "
                      "or '%s')",
                      shown, MANIFEST_NAME);
    const char *rest = name + TREE_PREFIX_LEN;
    size_t rl = nl - TREE_PREFIX_LEN;
    int whole = rl == SUFFIX_LEN || (rl > SUFFIX_LEN && rest[rl - SUFFIX_LEN - 1] == '/');
    if (whole && rl >= SUFFIX_LEN && memcmp(rest + rl - SUFFIX_LEN, NAMES_DATA, SUFFIX_LEN) == 0)
        return r_fail(r, e, "archive entry '%s' has no '%s' entry before it", shown, NAMES_META);
    if (!whole || memcmp(rest + rl - SUFFIX_LEN, NAMES_META, SUFFIX_LEN) != 0)
        return r_fail(r, e, "archive entry '%s' is neither a '%s' nor a '%s' file", shown,
                      NAMES_META, NAMES_DATA);
    size_t rel = rl == SUFFIX_LEN ? 0 : rl - SUFFIX_LEN - 1;
    buf_reset(&r->path);
    if ((rl > SUFFIX_LEN && rel == 0) || names_decode_path(rest, rel, &r->path) < 0)
        return r_fail(r, e, "archive entry '%s': not a valid encoded node name", shown);

    /* @meta: {"attrs": {...}, "sha256": hex|null, "size": n|null} */
    if ((rc = r_data(r, ent, &r->meta, FORMAT_MAX_META, shown, e)) < 0)
        return rc;
    json_error_t je;
    r->meta_json = json_loadb(r->meta.p ? r->meta.p : "", r->meta.len, JSON_REJECT_DUPLICATES, &je);
    if (!r->meta_json)
        return r_fail(r, e, "archive entry '%s': invalid JSON (%s)", shown, je.text);
    json_t *attrs = json_object_get(r->meta_json, "attrs");
    json_t *sha = json_object_get(r->meta_json, "sha256");
    json_t *size = json_object_get(r->meta_json, "size");
    if (!json_is_object(r->meta_json) || json_object_size(r->meta_json) != 3 ||
        !json_is_object(attrs) || !sha || !size)
        return r_fail(r, e,
                      "archive entry '%s': expected an object with exactly 'attrs', 'sha256' "
                      "and 'size'",
                      shown);
    int has_value = !json_is_null(sha);
    if (has_value ? !(json_is_string(sha) && is_hex64(json_string_value(sha)) &&
                      json_is_integer(size) && json_integer_value(size) >= 0)
                  : !json_is_null(size))
        return r_fail(r, e,
                      "archive entry '%s': 'sha256' and 'size' must both be null, or a SHA-256 "
                      "hex string and a byte count",
                      shown);
    size_t vlen = 0;
    if (has_value) {
        if ((uint64_t)json_integer_value(size) > FORMAT_MAX_VALUE)
            return r_fail(r, e,
                          "archive entry '%s': a value of %lld bytes is more than the %zu allowed",
                          shown, (long long)json_integer_value(size), FORMAT_MAX_VALUE);
        vlen = (size_t)json_integer_value(size);
    }
    if (r->nodes > 0 && r->prev.len == r->path.len &&
        (r->path.len == 0 || memcmp(r->prev.p, r->path.p, r->path.len) == 0))
        return r_fail(r, e, "archive entry '%s': the node appears twice", shown);
    nodes_line(r->nodes_md, r->scratch_md, r->meta.p, r->meta.len, name, strlen(name));

    if (has_value) {
        r->name.len -= SUFFIX_LEN;
        if (buf_puts(&r->name, NAMES_DATA) < 0)
            return r_fail(r, e, "cannot read archive: out of memory");
        snprintf(shown, sizeof shown, "%s", show(&r->msg, r->name.p, r->name.len));
        if ((rc = r_header(r, &ent, e)) < 0)
            return rc;
        const char *dname = rc > 0 ? archive_entry_pathname(ent) : NULL;
        if (!dname || strcmp(dname, r->name.p) != 0)
            return r_fail(r, e, "archive entry '%s' is missing (its '%s' gives a size)", shown,
                          NAMES_META);
        if (archive_entry_size_is_set(ent) &&
            (archive_entry_size(ent) < 0 || (uint64_t)archive_entry_size(ent) != vlen))
            return r_fail(r, e, "archive entry '%s': size mismatch (expected %zu, got %lld)", shown,
                          vlen, (long long)archive_entry_size(ent));
        if ((rc = r_data(r, ent, &r->value, vlen, shown, e)) < 0)
            return rc;
        if (r->value.len != vlen)
            return r_fail(r, e, "archive entry '%s': size mismatch (expected %zu, got %zu)", shown,
                          vlen, r->value.len);
        char hex[HEX_LEN + 1];
        sha256_hex_ctx(r->scratch_md, vlen ? r->value.p : "", vlen, hex);
        if (strcmp(hex, json_string_value(sha)) != 0)
            return r_fail(r, e,
                          "archive entry '%s': checksum mismatch (expected %.12s.., got %.12s..)",
                          shown, json_string_value(sha), hex);
    }

    buf_reset(&r->prev);
    if (buf_append(&r->prev, r->path.p, r->path.len) < 0)
        return r_fail(r, e, "cannot read archive: out of memory");
    r->nodes++;
    r->bytes += vlen;

    n->path = r->path.p ? r->path.p : "";
    n->path_len = r->path.len;
    n->has_value = has_value;
    n->value = has_value ? (r->value.p ? r->value.p : "") : NULL;
    n->value_len = vlen;
    n->attrs = attrs;
    return 1;
}

json_t *fmt_reader_manifest(struct fmt_reader *r)
{
    return r->state == R_DONE ? r->manifest : NULL;
}

uint64_t fmt_reader_archive_size(const struct fmt_reader *r)
{
    return r->archive_size;
}

const char *fmt_reader_archive_sha256(const struct fmt_reader *r)
{
    return r->archive_hex;
}

void fmt_reader_free(struct fmt_reader *r)
{
    if (!r)
        return;
    archive_read_free(r->a);
    EVP_MD_CTX_free(r->archive_md);
    EVP_MD_CTX_free(r->nodes_md);
    EVP_MD_CTX_free(r->scratch_md);
    json_decref(r->meta_json);
    json_decref(r->manifest);
    buf_free(&r->name);
    buf_free(&r->path);
    buf_free(&r->prev);
    buf_free(&r->meta);
    buf_free(&r->value);
    buf_free(&r->msg);
    free(r);
}
