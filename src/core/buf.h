/* A growable byte buffer with a ceiling: appending past max fails instead of
 * growing without bound. */
#ifndef BURRY_BUF_H
#define BURRY_BUF_H

#include <stdarg.h>
#include <stddef.h>

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
int buf_append(struct buf *b, const void *p, size_t n);   /* 0 or -1 (too big / no memory) */
int buf_putc(struct buf *b, char c);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Detach the contents (caller frees); the buffer is left empty. */
char *buf_take(struct buf *b, size_t *len);

/* A new formatted string (caller frees), or NULL when out of memory. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Zero a secret string's bytes, then free it. NULL ok. */
void str_wipe_free(char *s);

#endif
