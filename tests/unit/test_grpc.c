/* Unit tests of the protobuf wire helpers in grpc.h: varint and bytes
 * fields written and read back (values known from the protobuf encoding
 * rules), and every kind of malformed message refused rather than read past
 * its end. The gRPC calls themselves are tested against a real etcd in
 * tests/integration/etcd.sh. */
#include <stdint.h>

#include "grpc.h"
#include "t.h"

static int bytes_eq(const struct buf *b, const char *want, size_t n)
{
    return b->len == n && memcmp(b->p, want, n) == 0;
}

/* pb_next over n bytes; returns what the last call returned after reading
 * every field, counting them in *fields. */
static int read_all(const char *p, size_t n, int *fields)
{
    struct pb_reader r = {(const unsigned char *)p, (const unsigned char *)p + n};
    struct pb_field f;
    int rc;
    *fields = 0;
    while ((rc = pb_next(&r, &f)) > 0)
        (*fields)++;
    return rc;
}

int main(void)
{
    struct buf b;
    buf_init(&b, 0);

    /* field 1 = 150: the protobuf documentation's example, 08 96 01 */
    T_CHECK(pb_put_varint(&b, 1, 150) == 0 && bytes_eq(&b, "\x08\x96\x01", 3),
            "varint field 1 = 150 is 08 96 01");
    buf_reset(&b);
    T_CHECK(pb_put_bytes(&b, 2, "testing", 7) == 0 && bytes_eq(&b, "\x12\x07testing", 9),
            "bytes field 2 = \"testing\" is 12 07 ...");
    buf_reset(&b);
    T_CHECK(pb_put_bytes(&b, 1, "\0", 1) == 0 && bytes_eq(&b, "\x0a\x01\x00", 3),
            "a NUL byte is kept in a bytes field");

    /* sizes worked out ahead, and a nested message written in place */
    T_CHECK(pb_varint_size(0) == 1 && pb_varint_size(127) == 1 && pb_varint_size(128) == 2 &&
                pb_varint_size(UINT64_MAX) == 10,
            "varint sizes: 1 byte up to 127, 2 from 128, 10 for 2^64-1");
    T_CHECK(pb_bytes_size(2, 7) == 9 && pb_bytes_size(16, 200) == 2 + 2 + 200,
            "a bytes field's size counts its tag, its length and its bytes");
    buf_reset(&b);
    T_CHECK(pb_put_head(&b, 2, pb_bytes_size(1, 3)) == 0 && pb_put_bytes(&b, 1, "abc", 3) == 0 &&
                bytes_eq(&b, "\x12\x05\x0a\x03" "abc", 7),
            "a nested message written in place after its head (12 05 0a 03 abc)");
    struct pb_reader nr = {(const unsigned char *)b.p, (const unsigned char *)b.p + b.len};
    struct pb_field nf;
    T_CHECK(pb_next(&nr, &nf) == 1 && nf.num == 2 && nf.len == 5 && pb_next(&nr, &nf) == 0,
            "... and it reads back as one field holding the inner one");
    buf_reset(&b);

    /* a message of every kind of field, read back */
    buf_reset(&b);
    pb_put_varint(&b, 3, UINT64_MAX);
    pb_put_bytes(&b, 5, "", 0);
    pb_put_varint(&b, 300, 1);
    pb_put_bytes(&b, 7, "key\xff", 4);
    struct pb_reader r = {(const unsigned char *)b.p, (const unsigned char *)b.p + b.len};
    struct pb_field f;
    T_CHECK(pb_next(&r, &f) == 1 && f.num == 3 && f.wire == PB_VARINT && f.v == UINT64_MAX,
            "a 10-byte varint reads back as 2^64-1");
    T_CHECK(pb_next(&r, &f) == 1 && f.num == 5 && f.wire == PB_LEN && f.len == 0,
            "an empty bytes field reads back empty");
    T_CHECK(pb_next(&r, &f) == 1 && f.num == 300 && f.v == 1, "a two-byte tag (field 300)");
    T_CHECK(pb_next(&r, &f) == 1 && f.num == 7 && f.len == 4 && !memcmp(f.data, "key\xff", 4),
            "bytes with a non-UTF-8 byte read back whole");
    T_CHECK(pb_next(&r, &f) == 0, "the end of the message is reported as such");

    /* fixed-width fields are skipped over correctly */
    int n;
    T_CHECK(read_all("\x09" "12345678" "\x15" "1234" "\x18\x01", 16, &n) == 0 && n == 3,
            "64- and 32-bit fields are stepped over");

    /* malformed messages */
    T_CHECK(read_all("\x08\x96", 2, &n) < 0, "a varint cut short is refused");
    T_CHECK(read_all("\x0a\x05" "abc", 5, &n) < 0, "a length past the end is refused");
    T_CHECK(read_all("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, &n) < 0,
            "a varint of more than 10 bytes is refused");
    T_CHECK(read_all("\x0b\x0c", 2, &n) < 0, "group wire types are refused");
    T_CHECK(read_all("\x0e\x00", 2, &n) < 0, "an unknown wire type is refused");
    T_CHECK(read_all("\x00\x01", 2, &n) < 0, "field number 0 is refused");
    T_CHECK(read_all("\x09" "1234", 5, &n) < 0, "a 64-bit field cut short is refused");
    T_CHECK(read_all("\x0a\xff\xff\xff\xff\x0f" "x", 7, &n) < 0,
            "a huge length is refused, not added to the pointer");

    buf_free(&b);
    T_DONE();
}
