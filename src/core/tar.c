/* Plain ustar headers (tar.h), byte for byte as libarchive 3's
 * archive_write_set_format_pax.c and archive_write_set_format_ustar.c
 * (__archive_write_format_header_ustar) write them for burry's entries. */
#include "tar.h"

#include <pthread.h>
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

/* Every header's fixed fields, and the sum of its bytes with the name,
 * prefix and size left empty and the checksum field as spaces. */
static char fixed[TAR_BLOCK];
static unsigned fixed_sum;
static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;

static void fixed_init(void)
{
    /* Octal fields end in " \0" (mode, owner, devices) or " " (size, time). */
    memcpy(fixed + MODE_OFF, "000644 ", 8);
    memcpy(fixed + UID_OFF, "000000 ", 8);
    memcpy(fixed + GID_OFF, "000000 ", 8);
    memcpy(fixed + MTIME_OFF, "00000000000 ", 12);
    fixed[TYPEFLAG_OFF] = '0';
    memcpy(fixed + MAGIC_OFF, "ustar\0" "00", 8);
    memcpy(fixed + DEV_OFF, "000000 \0" "000000 ", 16);
    memset(fixed + CHECKSUM_OFF, ' ', 8);
    for (size_t i = 0; i < TAR_BLOCK; i++)
        fixed_sum += (unsigned char)fixed[i];
}

int tar_header(char h[TAR_BLOCK], const char *name, size_t len, uint64_t size)
{
    if (len == 0 || size >> (3 * SIZE_DIGITS))
        return -1;
    unsigned sum = 0; /* of the name's bytes */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == 0 || c >= 0x80)
            return -1; /* libarchive converts such names, or stops at the NUL */
        sum += c;
    }

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
        sum -= '/'; /* the separator is not written */
    }

    pthread_once(&fixed_once, fixed_init);
    memcpy(h, fixed, TAR_BLOCK);
    if (cut) {
        memcpy(h + PREFIX_OFF, name, cut);
        memcpy(h + NAME_OFF, name + cut + 1, len - cut - 1);
    } else {
        memcpy(h + NAME_OFF, name, len);
    }
    octal(h + SIZE_OFF, SIZE_DIGITS, size);
    h[SIZE_OFF + SIZE_DIGITS] = ' ';
    sum += fixed_sum;
    for (size_t i = SIZE_OFF; i <= SIZE_OFF + SIZE_DIGITS; i++)
        sum += (unsigned char)h[i];

    /* The checksum counts its own field as spaces, then is written as six
     * octal digits, a NUL and a space. */
    octal(h + CHECKSUM_OFF, 6, sum);
    h[CHECKSUM_OFF + 6] = 0;
    return 0;
}
