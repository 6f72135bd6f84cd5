/* Interoperability and tamper tests of the age v1 implementation against
 * Debian's `age` and `age-keygen` (the reference tool), in both
 * directions, at chunk boundaries, with wrong keys, flipped bytes and
 * truncation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "age.h"
#include "buf.h"
#include "t.h"

static char dir[] = "/tmp/burry-age.XXXXXX";

struct mem {
    struct buf b;
    size_t at;
};

static int mem_write(void *ctx, const void *p, size_t n, struct burry_err *e)
{
    return buf_append(&((struct mem *)ctx)->b, p, n) < 0 ? burry_errf(e, BURRY_EFAIL, "oom") : 0;
}

static ssize_t mem_read(void *ctx, void *p, size_t n, struct burry_err *e)
{
    struct mem *m = ctx;
    size_t left = m->b.len - m->at;
    if (n > left)
        n = left;
    if (n > 7000)
        n = 7000; /* odd read sizes exercise the buffering */
    memcpy(p, m->b.p + m->at, n);
    m->at += n;
    return (ssize_t)n;
}

static int read_file(const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    char tmp[65536];
    size_t n;
    if (!f)
        return -1;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(out, tmp, n);
    fclose(f);
    return 0;
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Decrypt m with the identities in idfile; plaintext into out. */
static int decrypt(struct mem *m, const char *idfile, struct buf *out, struct burry_err *e)
{
    unsigned char (*sks)[AGE_KEY_LEN] = NULL;
    size_t n = 0;
    int rc = age_read_identities(idfile, &sks, &n, e);
    if (rc < 0)
        return rc;
    m->at = 0;
    struct age_dec *d = age_dec_new((const unsigned char (*)[AGE_KEY_LEN])sks, n, mem_read, m, e);
    free(sks);
    if (!d)
        return e->code ? e->code : BURRY_EFAIL;
    char tmp[10000];
    ssize_t got;
    while ((got = age_dec_read(d, tmp, sizeof tmp, e)) > 0)
        buf_append(out, tmp, (size_t)got);
    age_dec_free(d);
    return got < 0 ? (int)got : 0;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    char cmd[1024], key1[256], key2[256], pub1[128], pub2[128];
    snprintf(key1, sizeof key1, "%s/key1.txt", dir);
    snprintf(key2, sizeof key2, "%s/key2.txt", dir);
    snprintf(cmd, sizeof cmd, "age-keygen -o %s 2>/dev/null && age-keygen -o %s 2>/dev/null", key1, key2);
    T_CHECK(system(cmd) == 0, "age-keygen makes two identities");
    FILE *p;
    snprintf(cmd, sizeof cmd, "age-keygen -y %s", key1);
    p = popen(cmd, "r");
    T_CHECK(p && fgets(pub1, sizeof pub1, p), "public key of identity 1");
    pclose(p);
    snprintf(cmd, sizeof cmd, "age-keygen -y %s", key2);
    p = popen(cmd, "r");
    T_CHECK(p && fgets(pub2, sizeof pub2, p), "public key of identity 2");
    pclose(p);
    pub1[strcspn(pub1, "\n")] = 0;
    pub2[strcspn(pub2, "\n")] = 0;

    struct burry_err e = {0};
    unsigned char pk[2][AGE_KEY_LEN];
    T_CHECK(age_parse_recipient(pub1, pk[0], &e) == 0 && age_parse_recipient(pub2, pk[1], &e) == 0,
            "recipients parse");
    T_CHECK(age_parse_recipient("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", pk[0], &e) < 0,
            "a recipient with a bad checksum is refused");
    burry_err_clear(&e);
    age_parse_recipient(pub1, pk[0], &e);

    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 131072, 200000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        unsigned char *plain = malloc(n + 1);
        fill(plain, n, (unsigned)si);
        char name[160], file[300], outf[300];

        /* burry encrypts, age decrypts (with either identity) */
        struct mem m = {0};
        buf_init(&m.b, 0);
        struct age_enc *a = age_enc_new((const unsigned char (*)[AGE_KEY_LEN])pk, 2, mem_write, &m, &e);
        int ok = a && age_enc_write(a, plain, n / 3, &e) == 0 &&
                 age_enc_write(a, plain + n / 3, n - n / 3, &e) == 0 && age_enc_finish(a, &e) == 0;
        age_enc_free(a);
        snprintf(name, sizeof name, "%zu bytes: burry encrypts", n);
        T_CHECK(ok, name);
        snprintf(file, sizeof file, "%s/b-%zu.age", dir, n);
        snprintf(outf, sizeof outf, "%s/b-%zu.out", dir, n);
        write_file(file, m.b.p, m.b.len);
        for (int k = 0; k < 2; k++) {
            snprintf(cmd, sizeof cmd, "age -d -i %s -o %s %s", k ? key2 : key1, outf, file);
            struct buf got;
            buf_init(&got, 0);
            int rc = system(cmd);
            read_file(outf, &got);
            snprintf(name, sizeof name, "%zu bytes: age -d with identity %d reads burry's file", n, k + 1);
            T_CHECK(rc == 0 && got.len == n && (!n || !memcmp(got.p, plain, n)), name);
            buf_free(&got);
        }
        /* and burry reads its own file */
        struct buf back;
        buf_init(&back, 0);
        snprintf(name, sizeof name, "%zu bytes: burry decrypts its own file", n);
        T_CHECK(decrypt(&m, key2, &back, &e) == 0 && back.len == n && (!n || !memcmp(back.p, plain, n)), name);
        buf_free(&back);
        buf_free(&m.b);

        /* age encrypts, burry decrypts */
        char in[300];
        snprintf(in, sizeof in, "%s/p-%zu", dir, n);
        write_file(in, plain, n);
        snprintf(file, sizeof file, "%s/a-%zu.age", dir, n);
        snprintf(cmd, sizeof cmd, "age -r %s -o %s %s", pub1, file, in);
        T_CHECK(system(cmd) == 0, "age encrypts");
        struct mem am = {0};
        buf_init(&am.b, 0);
        read_file(file, &am.b);
        buf_init(&back, 0);
        snprintf(name, sizeof name, "%zu bytes: burry decrypts age's file", n);
        T_CHECK(decrypt(&am, key1, &back, &e) == 0 && back.len == n && (!n || !memcmp(back.p, plain, n)), name);
        buf_free(&back);
        burry_err_clear(&e);

        if (n == 131072) {
            /* wrong identity */
            buf_init(&back, 0);
            T_CHECK(decrypt(&am, key2, &back, &e) < 0 && strstr(e.msg, "wrong key"),
                    "a wrong identity is refused, saying so");
            buf_free(&back);
            burry_err_clear(&e);
            /* a flipped byte anywhere (header, nonce, each chunk, last tag) */
            size_t spots[] = {3, 30, 60, am.b.len / 2, 200, am.b.len - 1, am.b.len - 20000};
            int all_caught = 1;
            for (size_t s = 0; s < sizeof spots / sizeof spots[0]; s++) {
                am.b.p[spots[s]] ^= 0x20;
                buf_init(&back, 0);
                if (decrypt(&am, key1, &back, &e) == 0)
                    all_caught = 0;
                burry_err_clear(&e);
                buf_free(&back);
                am.b.p[spots[s]] ^= 0x20;
            }
            T_CHECK(all_caught, "a flipped byte anywhere is detected");
            /* truncation: in a chunk, and exactly at a chunk boundary */
            size_t full = am.b.len;
            size_t cuts[] = {full - 1, full - 100, full - (65536 + 16), 100};
            int trunc_caught = 1;
            for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
                am.b.len = cuts[c];
                buf_init(&back, 0);
                if (decrypt(&am, key1, &back, &e) == 0)
                    trunc_caught = 0;
                burry_err_clear(&e);
                buf_free(&back);
            }
            am.b.len = full;
            T_CHECK(trunc_caught, "a truncated file is detected, also at a chunk boundary");
            /* appended garbage */
            buf_append(&am.b, "xx", 2);
            buf_init(&back, 0);
            T_CHECK(decrypt(&am, key1, &back, &e) < 0, "bytes appended after the end are detected");
            buf_free(&back);
            burry_err_clear(&e);
        }
        buf_free(&am.b);
        free(plain);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    T_CHECK(system(cmd) == 0, "clean up");
    T_DONE();
}
