/* Plain ustar headers (tar.h), byte for byte as libarchive 3's
 * archive_write_set_format_pax.c and archive_write_set_format_ustar.c
 * (__archive_write_format_header_ustar) write them for burry's entries. */
#include "tar.h"

#include <string.h>

#define NAME_SIZE 100
#define PREFIX_SIZE 155
#define NAME_OFF 0
#define MODE_OFF 100
#define UID_OFF 108
#define GID_OFF 116
#define SIZE_OFF 124
#define SIZE_DIGITS 11
#define MTIME_OFF 136
#define MTIME_DIGITS 11
#define CHECKSUM_OFF 148
#define TYPEFLAG_OFF 156
#define MAGIC_OFF 257
#define DEV_OFF 329
#define PREFIX_OFF 345

/* n as digits octal digits at p, zero-padded. */
static void octal(char *p, int digits, uint64_t n)
{
    for (int i = digits - 1; i >= 0; i--, n >>= 3)
        p[i] = (char)('0' + (n & 7));
}

int tar_header(char h[TAR_BLOCK], const char *name, size_t len, uint64_t size)
{
    if (len == 0 || size >> (3 * SIZE_DIGITS))
        return -1;
    for (size_t i = 0; i < len; i++)
        if (name[i] == 0 || (unsigned char)name[i] >= 0x80)
            return -1; /* libarchive converts such names, or stops at the NUL */

    /* A name over 100 bytes is split at a '/' into prefix and name, the
     * prefix at most 155 bytes, neither part empty; the '/' is the first one
     * that leaves at most 100 bytes after it. */
    size_t cut = 0; /* length of the prefix; 0: none */
    if (len > NAME_SIZE) {
        const char *end = name + len;
        const char *s = memchr(end - NAME_SIZE - 1, '/', NAME_SIZE + 1);
        if (s == name)
            s = memchr(s + 1, '/', (size_t)(end - s - 1));
        if (!s || s + 1 == end || (size_t)(s - name) > PREFIX_SIZE)
            return -1;
        cut = (size_t)(s - name);
    }

    memset(h, 0, TAR_BLOCK);
    if (cut) {
        memcpy(h + PREFIX_OFF, name, cut);
        memcpy(h + NAME_OFF, name + cut + 1, len - cut - 1);
    } else {
        memcpy(h + NAME_OFF, name, len);
    }
    /* Octal fields end in " \0" (mode, owner, devices) or " " (size, time). */
    memcpy(h + MODE_OFF, "000644 ", 8);
    memcpy(h + UID_OFF, "000000 ", 8);
    memcpy(h + GID_OFF, "000000 ", 8);
    octal(h + SIZE_OFF, SIZE_DIGITS, size);
    h[SIZE_OFF + SIZE_DIGITS] = ' ';
    memcpy(h + MTIME_OFF, "00000000000 ", 12);
    h[TYPEFLAG_OFF] = '0';
    memcpy(h + MAGIC_OFF, "ustar\0" "00", 8);
    memcpy(h + DEV_OFF, "000000 \0" "000000 ", 16);

    /* The checksum counts its own field as spaces, then is written as six
     * octal digits, a NUL and a space. */
    memset(h + CHECKSUM_OFF, ' ', 8);
    unsigned sum = 0; /* over the bytes that can be other than zero */
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)name[i];
    if (cut)
        sum -= '/'; /* the separator is not written */
    for (size_t i = MODE_OFF; i <= TYPEFLAG_OFF; i++)
        sum += (unsigned char)h[i];
    for (size_t i = MAGIC_OFF; i < MAGIC_OFF + 8; i++)
        sum += (unsigned char)h[i];
    for (size_t i = DEV_OFF; i < DEV_OFF + 16; i++)
        sum += (unsigned char)h[i];
    octal(h + CHECKSUM_OFF, 6, sum);
    h[CHECKSUM_OFF + 6] = 0;
    return 0;
}
