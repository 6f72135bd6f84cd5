/* Compact JSON with sorted keys, written straight into a buffer: the bytes
 * json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) gives,
 * without its per-call allocations. The archive's @meta entries are written
 * this way, so the output must never differ from jansson's (test_jsonout). */
#ifndef BURRY_JSONOUT_H
#define BURRY_JSONOUT_H

#include <jansson.h>

#include "buf.h"

/* Append v to b. 0, or -1 where json_dumps would fail (a string that is
 * not UTF-8, a reference cycle), for an object key that is not UTF-8 (only
 * the _nocheck setters make one; jansson writes it half-escaped), or when
 * b cannot grow; b's contents are then unspecified. */
int jsonout_compact(struct buf *b, const json_t *v);

/* The pieces, for a source that writes a flat object itself: a string of n
 * bytes (-1 when it is not UTF-8) and an integer, as jsonout_compact
 * writes them. */
int jsonout_string(struct buf *b, const char *s, size_t n);
int jsonout_integer(struct buf *b, long long v);

#endif
