/* The name codec (names.h): node path segments to archive path components
 * and back. The decoder accepts exactly what the encoder produces, so every
 * node path has one archive name and every archive name one node path. */
#include "names.h"

#include <string.h>

static const char hexdig[] = "0123456789ABCDEF";

static int is_literal(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Length of the encoded form of one byte: itself or %XX. */
static size_t token_len(unsigned char c)
{
    return is_literal(c) ? 1 : 3;
}

static int put_token(struct buf *out, unsigned char c)
{
    if (is_literal(c))
        return buf_putc(out, (char)c);
    char t[3] = {'%', hexdig[c >> 4], hexdig[c & 15]};
    return buf_append(out, t, sizeof t);
}

/* Write seg[from..to) as one component. A component that would read "." or
 * ".." (a whole segment, or the short last chunk of a long one) has its dots
 * escaped, because file systems and tar give those names a meaning. */
static int put_component(struct buf *out, const char *seg, size_t from, size_t to)
{
    size_t n = to - from;
    if ((n == 1 || n == 2) && memcmp(seg + from, "..", n) == 0)
        return buf_append(out, "%2E%2E", 3 * n);
    for (size_t i = from; i < to; i++)
        if (put_token(out, (unsigned char)seg[i]) < 0)
            return -1;
    return 0;
}

int names_encode_segment(const char *seg, size_t len, struct buf *out)
{
    if (len == 0)
        return buf_putc(out, '%');
    if (memchr(seg, '/', len))
        return -1; /* not a segment: the decoder would refuse the result */

    size_t total = 0;
    for (size_t i = 0; i < len; i++)
        total += token_len((unsigned char)seg[i]);
    if (total <= NAMES_MAX_COMPONENT)
        return put_component(out, seg, 0, len);

    /* Greedy chunking: each chunk takes as many whole tokens as fit. */
    size_t start = 0;
    while (start < len) {
        size_t end = start, clen = 0;
        while (end < len && clen + token_len((unsigned char)seg[end]) <= NAMES_MAX_COMPONENT)
            clen += token_len((unsigned char)seg[end++]);
        if (put_component(out, seg, start, end) < 0)
            return -1;
        if (end < len && buf_append(out, "@/", 2) < 0)
            return -1;
        start = end;
    }
    return 0;
}

int names_encode_path(const char *path, size_t len, struct buf *out)
{
    if (len == 0)
        return 0;
    if (path[0] != '/')
        return -1;
    size_t i = 1;
    for (;;) {
        const char *slash = memchr(path + i, '/', len - i);
        size_t end = slash ? (size_t)(slash - path) : len;
        if (names_encode_segment(path + i, end - i, out) < 0)
            return -1;
        if (!slash)
            return 0;
        if (buf_putc(out, '/') < 0)
            return -1;
        i = end + 1;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower-case hex is not canonical */
}

/* Decode the tokens of one component (without a trailing '@') into out.
 * Only well-formed tokens pass; whether they are the canonical choice is
 * settled by the caller re-encoding the whole segment. */
static int decode_tokens(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi << 4 | lo) == '/')
                return -1; /* a segment never holds '/' */
            if (buf_putc(out, (char)(hi << 4 | lo)) < 0)
                return -1;
            i += 2;
        } else if (is_literal(c)) {
            if (buf_putc(out, (char)c) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

int names_decode_path(const char *arch, size_t len, struct buf *out)
{
    struct buf seg, again;
    int rc = -1;

    if (len == 0)
        return 0;
    if (arch[len - 1] == '/')
        return -1; /* an empty last component */
    buf_init(&seg, 0);
    buf_init(&again, 0);

    size_t i = 0;
    while (i < len) {
        /* One segment: components ending in '@' continue it; the first
         * component without that marker ends it. */
        size_t seg_start = i, seg_end = i;
        buf_reset(&seg);
        for (;;) {
            const char *slash = memchr(arch + i, '/', len - i);
            size_t end = slash ? (size_t)(slash - arch) : len;
            size_t n = end - i;
            if (n == 0)
                goto out; /* empty component */
            int cont = arch[end - 1] == '@';
            if (cont && !slash)
                goto out; /* a continuation marker with nothing after it */
            if (!cont && n == 1 && arch[i] == '%') {
                if (i != seg_start)
                    goto out; /* "%" is a whole empty segment, never a last chunk */
            } else if (decode_tokens(arch + i, n - (size_t)cont, &seg) < 0) {
                goto out;
            }
            seg_end = end;
            i = slash ? end + 1 : len;
            if (!cont)
                break;
        }

        /* Canonical means: encoding the decoded bytes gives back the text. */
        buf_reset(&again);
        if (names_encode_segment(seg.p ? seg.p : "", seg.len, &again) < 0)
            goto out;
        if (again.len != seg_end - seg_start || memcmp(again.p, arch + seg_start, again.len) != 0)
            goto out;

        if (buf_putc(out, '/') < 0 || buf_append(out, seg.p, seg.len) < 0)
            goto out;
    }
    rc = 0;
out:
    buf_free(&seg);
    buf_free(&again);
    return rc;
}

int names_display(const char *path, size_t len, struct buf *out)
{
    if (len == 0)
        return buf_putc(out, '/');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            if (buf_putc(out, (char)c) < 0)
                return -1;
        } else {
            char t[4] = {'\\', 'x', hexdig[c >> 4], hexdig[c & 15]};
            if (buf_append(out, t, sizeof t) < 0)
                return -1;
        }
    }
    return 0;
}

int names_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}
