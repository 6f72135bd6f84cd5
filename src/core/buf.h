/* A growable byte buffer with a ceiling: appending past max fails instead of
 * growing without bound. */
#ifndef BURRY_BUF_H
#define BURRY_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct buf {
    char *p;      /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max;   /* 0: 1 GiB */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);                 /* wipes nothing; see buf_wipe */
void buf_wipe(struct buf *b);                 /* zero the bytes, then free */
void buf_reset(struct buf *b);                /* len = 0, keeps memory */
/* Appending: 0, or -1 when the buffer would pass max or memory runs out.
 * The common case (room left) is inline; growing is buf_append_grow's. */
int buf_append_grow(struct buf *b, const void *p, size_t n);
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n >= b->cap - b->len) /* no room for n bytes and the NUL (cap > len once allocated) */
        return buf_append_grow(b, p, n);
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}
static inline int buf_putc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}
static inline int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Detach the contents (caller frees); the buffer is left empty. */
char *buf_take(struct buf *b, size_t *len);

/* Room for one more element in a growing array: *arr (the address of the
 * array pointer) holds *cap elements of elem bytes; when n == *cap it grows
 * to twice as many (first, at first). 0, or -1 when out of memory, the
 * array then kept as it was. */
int array_grow(void *arr, size_t n, size_t *cap, size_t elem, size_t first);

/* A new formatted string (caller frees), or NULL when out of memory. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Zero a secret string's bytes, then free it. NULL ok. */
void str_wipe_free(char *s);

#endif
