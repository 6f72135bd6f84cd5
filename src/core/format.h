/* Snapshot archive format v1 (docs/FORMAT.md): a tar stream, optionally
 * compressed, holding
 *     tree/<encoded path>/@meta    one per node, JSON, always present
 *     tree/<encoded path>/@data    the node's value, present iff not null
 *     manifest.json                last entry
 * Writer and reader work on byte streams through callbacks, so they know
 * nothing about stores or networks and are unit-tested on memory. */
#ifndef BURRY_FORMAT_H
#define BURRY_FORMAT_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "node.h"
#include "opts.h"

#define FORMAT_VERSION 1
#define FORMAT_MAX_VALUE ((size_t)64 << 20)    /* largest value a reader accepts */
#define FORMAT_MAX_META ((size_t)1 << 20)      /* largest @meta / manifest */

typedef int (*fmt_write_fn)(void *ctx, const void *buf, size_t len, struct burry_err *e);
typedef ssize_t (*fmt_read_fn)(void *ctx, void *buf, size_t len, struct burry_err *e);

struct fmt_writer;
struct fmt_reader;

/* File name suffix of an archive with this compression: ".tar.zst" ... */
const char *fmt_suffix(enum burry_compress c);
const char *fmt_compress_name(enum burry_compress c);
int fmt_compress_parse(const char *s, enum burry_compress *out);

struct fmt_writer *fmt_writer_new(enum burry_compress c, fmt_write_fn out, void *ctx,
                                  struct burry_err *e);
/* Add one node; nodes must come in archive order (parents before children). */
int fmt_writer_add(struct fmt_writer *w, const struct bnode *n, struct burry_err *e);
/* Complete the manifest (format, counts, checksums) and write it as the last
 * entry, then flush and close the stream. manifest stays owned by the caller
 * and is updated in place with what was written. */
int fmt_writer_finish(struct fmt_writer *w, json_t *manifest, struct burry_err *e);
void fmt_writer_free(struct fmt_writer *w);                 /* NULL ok */
uint64_t fmt_writer_nodes(const struct fmt_writer *w);
uint64_t fmt_writer_bytes(const struct fmt_writer *w);      /* sum of value sizes */
uint64_t fmt_writer_archive_size(const struct fmt_writer *w);
const char *fmt_writer_archive_sha256(const struct fmt_writer *w); /* hex, after finish */

/* The reader detects the compression by itself. */
struct fmt_reader *fmt_reader_new(fmt_read_fn in, void *ctx, struct burry_err *e);
/* Next node: 1 and *n filled (valid until the next call), 0 at the end after
 * the manifest was read and every checksum and count matched, <0 on error
 * (damaged archive, checksum mismatch, bad name) with a message naming the
 * entry. */
int fmt_reader_next(struct fmt_reader *r, struct bnode *n, struct burry_err *e);
/* The manifest, once fmt_reader_next returned 0 (borrowed). */
json_t *fmt_reader_manifest(struct fmt_reader *r);
uint64_t fmt_reader_archive_size(const struct fmt_reader *r);
const char *fmt_reader_archive_sha256(const struct fmt_reader *r); /* hex, at the end */
void fmt_reader_free(struct fmt_reader *r);                 /* NULL ok */

#endif
