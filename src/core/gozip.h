/* Reader of the archives written by the original Go burry: a zip holding
 *     ID/.burrymeta            JSON: {"svc", "svc-endpoint", "snapshot-date", ...}
 *     ID/<path>/content        one per node, its value ('/' separated path,
 *                              ':' written BURRY_ESC_COLON)
 * Those archives have no checksums of their own beyond the zip's CRC-32s,
 * list children before their parents when the child's name sorts before
 * "content", and cannot tell a node named "content" from a value file: the
 * last "content" of an entry is always read as the value (docs/FORMAT.md,
 * "Archives of the original Go burry"). */
#ifndef BURRY_GOZIP_H
#define BURRY_GOZIP_H

#include <jansson.h>

#include "err.h"
#include "format.h"
#include "node.h"

#define GOZIP_FORMAT "burry-go-zip"
#define GOZIP_SUFFIX ".zip"
#define GOZIP_MAX_META ((size_t)64 << 10)

/* Start the byte stream again from its first byte (the reader reads the
 * archive more than once). */
typedef int (*gozip_rewind_fn)(void *ctx, struct burry_err *e);

struct gozip;

/* Only the .burrymeta (the first entry): a manifest-like description
 * {"format": GOZIP_FORMAT, "snapshot": id, "service", "restorable_into":
 * [services...], "source", "created", "checksums": false, "burrymeta": {...}}
 * for resolving a snapshot without reading it all. */
int gozip_peek(fmt_read_fn in, void *ctx, const char *id, json_t **out, struct burry_err *e);

/* Read the whole archive once (every CRC-32, every name, every size, each
 * local header against the central directory) and keep the node paths,
 * not the values, to order the nodes. A node's path is the bytes of its
 * entry's name, decoded as above. On success the description (as
 * gozip_peek, plus "nodes" and "bytes") is available. */
struct gozip *gozip_open(fmt_read_fn in, gozip_rewind_fn rewind, void *ctx, const char *id,
                         struct burry_err *e);
json_t *gozip_manifest(struct gozip *z);   /* borrowed */

/* Next node, parents before children: 1 and *n filled (valid until the
 * next call; attrs NULL, so each source uses its defaults), 0 at the end,
 * <0 on error. Reads the archive again, once per level at which children
 * came before their parent. */
int gozip_next(struct gozip *z, struct bnode *n, struct burry_err *e);
void gozip_free(struct gozip *z);          /* NULL ok */

/* The snapshot ID a file name stands for: "1795249013" for
 * "dir/1795249013.zip", malloc'ed, or NULL if the name does not end in
 * ".zip". */
char *gozip_id_from_path(const char *path);
/* Old IDs are unix timestamps: 1 to 20 digits. */
int gozip_valid_id(const char *id);

#endif
