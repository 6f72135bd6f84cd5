/* Reading an object of an HTTP object store (S3, Azure) as a stream of
 * ranged GETs, shared by those stores: memory stays at one range, a
 * transient failure costs one range, and an object that changes size while
 * it is read is refused. The store supplies the request. */
#ifndef BURRY_OBJGET_H
#define BURRY_OBJGET_H

#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "http.h"

#define OBJGET_RANGE ((size_t)8 << 20)

/* Fetch bytes [from, to] of the object into r (r->header: the Content-Range
 * answer header). Returns 0 only with status 200, 206 or 416 (r->body then
 * belongs to the caller); otherwise sets e (BURRY_ENOENT for a missing
 * object) and frees r->body. */
typedef int (*objget_fetch_fn)(void *ctx, unsigned long long from, unsigned long long to,
                               struct http_resp *r, struct burry_err *e);

struct objget {
    objget_fetch_fn fetch;
    void *ctx;
    const char *what;             /* "S3 bucket 'b' at URL: key", for messages */
    unsigned long long off, size; /* next byte to fetch; object size once known */
    int size_known;
    struct buf chunk;
    size_t chunk_pos;
};

/* Fetches the first range, so that a missing object is known at once. */
int objget_open(struct objget *g, objget_fetch_fn fetch, void *ctx, const char *what,
                struct burry_err *e);
ssize_t objget_read(struct objget *g, void *buf, size_t len, struct burry_err *e);
void objget_close(struct objget *g);

#endif
