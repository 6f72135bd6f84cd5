/* Streaming uploads to object stores in parts, shared by the S3 and Azure
 * stores: the caller's bytes are cut into parts of a fixed size and a small
 * pool of threads sends them while the caller goes on producing. Memory is
 * bounded by part_size x (workers + 1); nothing is staged on disk.
 *
 * The store supplies two callbacks: begin (run once, in the caller's
 * thread, before the first part leaves: starts the multipart upload) and
 * send (run in a worker thread with that worker's own HTTP handle: uploads
 * part number no, 1-based, and fills tag with what the final commit needs,
 * such as S3's ETag). An archive that fits in one part never starts a
 * multipart upload: parts_started() stays 0 and parts_pending() hands the
 * bytes back for a single plain upload. */
#ifndef BURRY_PARTS_H
#define BURRY_PARTS_H

#include <stddef.h>

#include "err.h"
#include "http.h"
#include "opts.h"

#define PARTS_TAG_MAX 128

struct parts;

typedef int (*parts_begin_fn)(void *ctx, struct burry_err *e);
typedef int (*parts_send_fn)(void *ctx, struct http *h, unsigned no, const void *data, size_t len,
                             char tag[PARTS_TAG_MAX], struct burry_err *e);

struct parts *parts_new(const struct burry_opts *o, size_t part_size, unsigned workers,
                        unsigned max_parts, parts_begin_fn begin, parts_send_fn send, void *ctx,
                        struct burry_err *e);
/* Buffer bytes, handing full parts to the workers (waiting for a free buffer
 * when all are busy). Fails with the first worker's error. */
int parts_write(struct parts *p, const void *data, size_t len, struct burry_err *e);
/* Whether a part was handed off (begin ran). */
int parts_started(const struct parts *p);
/* The bytes buffered and not yet handed off. */
const void *parts_pending(const struct parts *p, size_t *len);
/* Hand off the last part (if any bytes are buffered) and wait for every
 * part. After success parts_count() and parts_tag() describe the upload. */
int parts_finish(struct parts *p, struct burry_err *e);
unsigned parts_count(const struct parts *p);
const char *parts_tag(const struct parts *p, unsigned no);
/* Stop the workers (a transfer in progress ends when its request does) and
 * free everything. NULL ok. */
void parts_free(struct parts *p);

#endif
