/* The name codec: node path segments (arbitrary bytes other than '/') to and
 * from archive path components that any file system and stock tar accept,
 * losslessly and unambiguously. docs/FORMAT.md section "Names" is the
 * specification; this file and that section must agree.
 *
 *  - bytes [A-Za-z0-9._-] stand for themselves, every other byte is %XX
 *    (upper-case hex); '@' is therefore never literal in an encoded name,
 *    which keeps the reserved file names "@meta" and "@data" out of reach;
 *  - the segments "." and ".." are written "%2E" and "%2E%2E";
 *  - the empty segment is written "%" (a lone percent sign);
 *  - an encoded segment longer than NAMES_MAX_COMPONENT bytes is cut into
 *    chunks (never inside a %XX), each chunk but the last followed by '@'
 *    and written as its own path component; the cut is greedy (each chunk
 *    takes as many whole tokens as fit), and a last chunk that would read
 *    "." or ".." is written "%2E" or "%2E%2E" like a whole segment.
 * The decoder accepts exactly what the encoder produces.
 */
#ifndef BURRY_NAMES_H
#define BURRY_NAMES_H

#include <stddef.h>

#include "buf.h"

#define NAMES_MAX_COMPONENT 200
#define NAMES_META "@meta"
#define NAMES_DATA "@data"

/* Append the archive form of one segment (possibly several components
 * joined by '/') to out. Returns 0, or -1 (buffer limit, or a '/' in seg). */
int names_encode_segment(const char *seg, size_t len, struct buf *out);

/* Append the archive form of a canonical node path (node.h) to out: for
 * "/a/b" that is "a/b", for the root nothing. Returns 0 or -1. */
int names_encode_path(const char *path, size_t len, struct buf *out);

/* Decode an archive relative path (components separated by '/', as produced
 * by names_encode_path) into a canonical node path appended to out.
 * Returns 0, or -1 if the text is not a canonical encoding (bad escape,
 * lower-case hex, an escaped byte that should be literal, a literal byte
 * that should be escaped, a misplaced '@', an empty component). */
int names_decode_path(const char *arch, size_t len, struct buf *out);

/* Human-readable form of a canonical path for messages and listings: bytes
 * other than printable ASCII shown as \xHH, the root shown as "/". */
int names_display(const char *path, size_t len, struct buf *out);

/* Byte order of two byte strings, a prefix before what extends it: the
 * order of names and keys in an archive. <0, 0 or >0, as memcmp. */
int names_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
