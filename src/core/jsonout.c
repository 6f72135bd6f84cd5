/* Compact sorted JSON output (jsonout.h), following jansson's dump.c:
 * strings escape only '"', '\\' and control characters ("\u00XX" with
 * upper-case hex, or the short forms \b \f \n \r \t), integers print as
 * "%lld", keys sort by bytes then length. Reals and very deep values are
 * left to jansson itself, which also detects reference cycles. */
#include "jsonout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#define DEPTH_MAX 32 /* deeper values are handed to jansson */
#define KEYS_ON_STACK 16

static int to_buf(const char *p, size_t n, void *b)
{
    return buf_append(b, p, n);
}

/* jansson's own output for v. */
static int by_jansson(struct buf *b, const json_t *v)
{
    return json_dump_callback(v, to_buf, b, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Length of the UTF-8 sequence at s (n > 0 bytes left), 0 if it is not
 * valid UTF-8 (overlong forms, surrogates and values past U+10FFFF are
 * not). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        len = 2, v = c & 0x1F, min = 0x80;
    else if (c < 0xF0)
        len = 3, v = c & 0x0F, min = 0x800;
    else if (c < 0xF5)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return len;
}

static int put_string(struct buf *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    if (buf_putc(b, '"') < 0)
        return -1;
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_len(s + i, len - i);
            if (!k)
                return -1;
            i += k;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        char esc[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (buf_append(b, str + run, i - run) < 0 || buf_append(b, esc, elen) < 0)
            return -1;
        run = ++i;
    }
    if (buf_append(b, str + run, len - run) < 0)
        return -1;
    return buf_putc(b, '"');
}

static int put_integer(struct buf *b, json_int_t v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    /* via unsigned, so the most negative value has a magnitude too */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

struct key {
    const char *s;
    size_t len;
    const json_t *v;
};

static int key_cmp(const void *x, const void *y)
{
    const struct key *a = x, *b = y;
    return names_cmp(a->s, a->len, b->s, b->len);
}

static int put_value(struct buf *b, const json_t *v, int depth);

static int put_object(struct buf *b, const json_t *v, int depth)
{
    size_t n = json_object_size(v);
    struct key stack[KEYS_ON_STACK];
    struct key *keys = n <= KEYS_ON_STACK ? stack : malloc(n * sizeof *keys);
    if (!keys)
        return -1;
    size_t i = 0;
    for (void *it = json_object_iter((json_t *)v); it && i < n;
         it = json_object_iter_next((json_t *)v, it), i++) {
        keys[i].s = json_object_iter_key(it);
        keys[i].len = json_object_iter_key_len(it);
        keys[i].v = json_object_iter_value(it);
    }
    if (i > KEYS_ON_STACK) {
        qsort(keys, i, sizeof *keys, key_cmp);
    } else { /* few keys, often in order already */
        for (size_t k = 1; k < i; k++) {
            struct key x = keys[k];
            size_t j = k;
            for (; j > 0 && key_cmp(&keys[j - 1], &x) > 0; j--)
                keys[j] = keys[j - 1];
            keys[j] = x;
        }
    }
    int rc = buf_putc(b, '{');
    for (size_t k = 0; rc == 0 && k < i; k++) {
        if ((k > 0 && buf_putc(b, ',') < 0) || put_string(b, keys[k].s, keys[k].len) < 0 ||
            buf_putc(b, ':') < 0 || put_value(b, keys[k].v, depth + 1) < 0)
            rc = -1;
    }
    if (keys != stack)
        free(keys);
    return rc < 0 ? -1 : buf_putc(b, '}');
}

static int put_value(struct buf *b, const json_t *v, int depth)
{
    if (!v)
        return -1;
    if (depth >= DEPTH_MAX)
        return by_jansson(b, v);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return put_object(b, v, depth);
    case JSON_ARRAY:
        if (buf_putc(b, '[') < 0)
            return -1;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i > 0 && buf_putc(b, ',') < 0) || put_value(b, json_array_get(v, i), depth + 1) < 0)
                return -1;
        return buf_putc(b, ']');
    case JSON_STRING:
        return put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return put_integer(b, json_integer_value(v));
    case JSON_TRUE:
        return buf_puts(b, "true");
    case JSON_FALSE:
        return buf_puts(b, "false");
    case JSON_NULL:
        return buf_puts(b, "null");
    case JSON_REAL:
        break;
    }
    return by_jansson(b, v);
}

int jsonout_compact(struct buf *b, const json_t *v)
{
    return put_value(b, v, 0);
}

int jsonout_string(struct buf *b, const char *s, size_t n)
{
    return put_string(b, s, n);
}

int jsonout_integer(struct buf *b, long long v)
{
    return put_integer(b, (json_int_t)v);
}
