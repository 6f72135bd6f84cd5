/* The age v1 file format with X25519 recipients (age.h). Framing only: the
 * cryptographic primitives are OpenSSL's. Layout of an age file:
 *
 *   age-encryption.org/v1
 *   -> X25519 <base64 ephemeral share>
 *   <base64 wrapped file key>
 *   --- <base64 header MAC>
 *   <16-byte nonce><64 KiB chunks, ChaCha20-Poly1305, last one flagged>
 *
 * (base64 without padding; stanza bodies wrapped at 64 columns.) */
#include "age.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

#define AGE_MAGIC "age-encryption.org/v1"
#define AGE_CHUNK 65536
#define AGE_TAG 16
#define AGE_FILE_KEY 16
#define AGE_MAX_HEADER (64 * 1024)
#define X25519_INFO "age-encryption.org/v1/X25519"

/* ---- small building blocks ------------------------------------------------ */

static int hkdf(const unsigned char *ikm, size_t ikm_len, const unsigned char *salt, size_t salt_len,
                const char *info, unsigned char *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM p[5], *q = p;
    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    *q = OSSL_PARAM_construct_end();
    int ok = c && EVP_KDF_derive(c, out, out_len, p) == 1;
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

/* ChaCha20-Poly1305 with a 12-byte nonce; out gets len + 16 bytes (seal) or
 * len - 16 bytes (open). Returns 0, or -1 when authentication fails. */
static int aead(int seal, const unsigned char key[32], const unsigned char nonce[12],
                const unsigned char *in, size_t len, unsigned char *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = 0, n = 0, m = 0;
    if (!c)
        return -1;
    if (seal) {
        ok = EVP_EncryptInit_ex(c, EVP_chacha20_poly1305(), NULL, key, nonce) == 1 &&
             EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1 && EVP_EncryptFinal_ex(c, out + n, &m) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, AGE_TAG, out + len) == 1;
    } else if (len >= AGE_TAG) {
        size_t pl = len - AGE_TAG;
        ok = EVP_DecryptInit_ex(c, EVP_chacha20_poly1305(), NULL, key, nonce) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, AGE_TAG, (void *)(in + pl)) == 1 &&
             EVP_DecryptUpdate(c, out, &n, in, (int)pl) == 1 && EVP_DecryptFinal_ex(c, out + n, &m) == 1;
    }
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* X25519(sk, pk) into shared; also the public key of sk if pub != NULL. */
static int x25519(const unsigned char sk[32], const unsigned char *pk, unsigned char *shared,
                  unsigned char *pub)
{
    EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
    EVP_PKEY *peer = pk ? EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pk, 32) : NULL;
    EVP_PKEY_CTX *c = priv && peer ? EVP_PKEY_CTX_new(priv, NULL) : NULL;
    size_t len = 32, plen = 32;
    int ok = priv != NULL;
    if (ok && pub)
        ok = EVP_PKEY_get_raw_public_key(priv, pub, &plen) == 1 && plen == 32;
    if (ok && pk)
        ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
             EVP_PKEY_derive(c, shared, &len) == 1 && len == 32;
    if (ok && pk) {
        unsigned char zero[32] = {0};
        ok = CRYPTO_memcmp(shared, zero, 32) != 0; /* a low-order point */
    }
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(peer);
    return ok ? 0 : -1;
}

/* Unpadded standard base64. */
static int b64_put(struct buf *out, const unsigned char *in, size_t len)
{
    char tmp[4 * ((AGE_MAX_HEADER + 2) / 3) + 1];
    if (len > AGE_MAX_HEADER)
        return -1;
    int n = EVP_EncodeBlock((unsigned char *)tmp, in, (int)len);
    while (n > 0 && tmp[n - 1] == '=')
        n--;
    return buf_append(out, tmp, (size_t)n);
}

/* Decode unpadded base64 of exactly want bytes; canonical encodings only. */
static int b64_get(const char *s, size_t len, unsigned char *out, size_t want)
{
    char tmp[128];
    unsigned char dec[96];
    if (len + 3 > sizeof tmp || (len * 3) / 4 != want)
        return -1;
    memcpy(tmp, s, len);
    size_t n = len;
    while (n % 4)
        tmp[n++] = '=';
    int got = EVP_DecodeBlock(dec, (unsigned char *)tmp, (int)n);
    if (got < 0 || (size_t)got < want)
        return -1;
    /* re-encode to refuse non-canonical trailing bits */
    struct buf chk;
    buf_init(&chk, 0);
    int ok = b64_put(&chk, dec, want) == 0 && chk.len == len && !memcmp(chk.p, s, len);
    buf_free(&chk);
    if (!ok)
        return -1;
    memcpy(out, dec, want);
    return 0;
}

/* ---- Bech32 (BIP 173) for age1... and AGE-SECRET-KEY-1... ----------------- */

static const char bech32_set[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static unsigned bech32_polymod(const unsigned char *v, size_t n)
{
    static const unsigned gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    unsigned chk = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned top = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ v[i];
        for (int j = 0; j < 5; j++)
            if ((top >> j) & 1)
                chk ^= gen[j];
    }
    return chk;
}

/* Decode s (case-insensitive, one case only) with human-readable part hrp
 * into exactly 32 bytes. */
static int bech32_decode32(const char *s, const char *hrp, unsigned char out[32])
{
    size_t len = strlen(s), hl = strlen(hrp);
    int lower = 0, upper = 0;
    unsigned char v[200];
    size_t nv = 0;
    if (len < hl + 7 || len > 120 || s[hl] != '1')
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'a' && s[i] <= 'z')
            lower = 1;
        if (s[i] >= 'A' && s[i] <= 'Z')
            upper = 1;
    }
    if (lower && upper)
        return -1;
    for (size_t i = 0; i < hl; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
        if (c != hrp[i])
            return -1;
        v[nv++] = (unsigned char)(c >> 5);
    }
    v[nv++] = 0;
    for (size_t i = 0; i < hl; i++)
        v[nv++] = (unsigned char)(hrp[i] & 31);
    size_t data_at = nv;
    for (size_t i = hl + 1; i < len; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
        const char *p = strchr(bech32_set, c);
        if (!p || !c)
            return -1;
        v[nv++] = (unsigned char)(p - bech32_set);
    }
    if (bech32_polymod(v, nv) != 1)
        return -1;
    /* 5-bit groups (without the 6 checksum groups) to bytes */
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = data_at; i < nv - 6; i++) {
        acc = (acc << 5) | v[i];
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o == 32)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (o != 32 || bits >= 5 || (acc & ((1u << bits) - 1)))
        return -1;
    return 0;
}

int age_parse_recipient(const char *s, unsigned char pk[AGE_KEY_LEN], struct burry_err *e)
{
    if (!strncasecmp(s, "AGE-SECRET-KEY-", 15)) /* never echoed: it is a secret */
        return burry_errf(e, BURRY_EUSAGE, "an age secret key (AGE-SECRET-KEY-...) is given as a recipient; "
                          "give its public key instead (age-keygen -y prints it)");
    if (bech32_decode32(s, "age", pk) < 0)
        return burry_errf(e, BURRY_EUSAGE, "'%.80s' is not an age recipient (an X25519 key 'age1...')", s);
    return 0;
}

int age_parse_identity(const char *s, unsigned char sk[AGE_KEY_LEN], struct burry_err *e)
{
    if (bech32_decode32(s, "age-secret-key-", sk) < 0)
        return burry_errf(e, BURRY_EUSAGE, "not an age identity (an 'AGE-SECRET-KEY-1...' line)");
    return 0;
}

/* Lines of a key file: identities (secret) or recipients (public). */
static int read_keys(const char *path, int secret, unsigned char (**keys)[AGE_KEY_LEN], size_t *n,
                     struct burry_err *e)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int rc = 0, lineno = 0;
    *keys = NULL;
    *n = 0;
    if (!f)
        return burry_errf(e, BURRY_EUSAGE, "cannot read %s file '%s': %s", secret ? "identity" : "recipients",
                          path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        unsigned char (*more)[AGE_KEY_LEN] = realloc(*keys, (*n + 1) * sizeof **keys);
        if (!more) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            break;
        }
        *keys = more;
        struct burry_err e2 = {0};
        if ((secret ? age_parse_identity(p, (*keys)[*n], &e2) : age_parse_recipient(p, (*keys)[*n], &e2)) < 0) {
            /* the files people most often give instead, named */
            if (secret && lineno == 1 && !strcmp(p, "age-encryption.org/v1"))
                rc = burry_errf(e, BURRY_EUSAGE,
                                "'%s' is itself encrypted with age (an identity file kept under a "
                                "passphrase?), which burry cannot open: decrypt it first "
                                "(age -d -o FILE '%s', FILE readable by you alone) and give that",
                                path, path);
            else if (!strncmp(p, "-----BEGIN", 10) || !strncmp(p, "ssh-", 4) || !strncmp(p, "ecdsa-", 6))
                rc = burry_errf(e, BURRY_EUSAGE,
                                "line %d of '%s' is an ssh key; burry takes age X25519 keys only "
                                "(%s; age-keygen makes them)",
                                lineno, path, secret ? "AGE-SECRET-KEY-1..." : "age1...");
            else
                rc = burry_errf(e, BURRY_EUSAGE, "line %d of '%s' is not an age %s", lineno, path,
                                secret ? "identity (AGE-SECRET-KEY-1...)" : "recipient (age1...)");
            break;
        }
        (*n)++;
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (rc == 0 && *n == 0)
        rc = burry_errf(e, BURRY_EUSAGE, "no age %s in '%s'", secret ? "identity" : "recipient", path);
    if (rc < 0) {
        if (*keys)
            OPENSSL_cleanse(*keys, *n * sizeof **keys);
        free(*keys);
        *keys = NULL;
        *n = 0;
    }
    return rc;
}

int age_read_identities(const char *path, unsigned char (**sks)[AGE_KEY_LEN], size_t *n,
                        struct burry_err *e)
{
    return read_keys(path, 1, sks, n, e);
}

int age_read_recipients(const char *path, unsigned char (**pks)[AGE_KEY_LEN], size_t *n,
                        struct burry_err *e)
{
    return read_keys(path, 0, pks, n, e);
}

int age_is_age(const void *head, size_t len)
{
    size_t m = strlen(AGE_MAGIC);
    return len >= m && !memcmp(head, AGE_MAGIC, m);
}

/* ---- encryption ------------------------------------------------------------ */

struct age_enc {
    fmt_write_fn out;
    void *ctx;
    unsigned char key[32];          /* payload key */
    unsigned char *chunk;           /* plaintext of the chunk being filled */
    size_t fill;
    unsigned char *sealed;
    unsigned long long counter;
    int finished;
};

static void chunk_nonce(unsigned long long counter, int last, unsigned char n[12])
{
    memset(n, 0, 12);
    for (int i = 10; i >= 3; i--) {
        n[i] = (unsigned char)(counter & 0xff);
        counter >>= 8;
    }
    n[11] = last ? 1 : 0;
}

struct age_enc *age_enc_new(const unsigned char (*pks)[AGE_KEY_LEN], size_t n, fmt_write_fn out,
                            void *ctx, struct burry_err *e)
{
    struct age_enc *a = calloc(1, sizeof *a);
    unsigned char file_key[AGE_FILE_KEY], mac_key[32], mac[32], nonce[16];
    struct buf h;
    buf_init(&h, AGE_MAX_HEADER);
    if (!a || !(a->chunk = malloc(AGE_CHUNK)) || !(a->sealed = malloc(AGE_CHUNK + AGE_TAG))) {
        burry_errf(e, BURRY_EFAIL, "out of memory");
        goto fail;
    }
    a->out = out;
    a->ctx = ctx;
    if (!n) {
        burry_errf(e, BURRY_EUSAGE, "no age recipient given");
        goto fail;
    }
    if (RAND_bytes(file_key, sizeof file_key) != 1 || RAND_bytes(nonce, sizeof nonce) != 1) {
        burry_errf(e, BURRY_EFAIL, "no random numbers for encryption");
        goto fail;
    }
    buf_puts(&h, AGE_MAGIC "\n");
    for (size_t i = 0; i < n; i++) {
        unsigned char esk[32], share[32], shared[32], salt[64], wrap[32], body[AGE_FILE_KEY + AGE_TAG];
        static const unsigned char zero_nonce[12];
        int ok = RAND_bytes(esk, sizeof esk) == 1 && x25519(esk, pks[i], shared, share) == 0;
        if (ok) {
            memcpy(salt, share, 32);
            memcpy(salt + 32, pks[i], 32);
            ok = hkdf(shared, 32, salt, 64, X25519_INFO, wrap, 32) == 0 &&
                 aead(1, wrap, zero_nonce, file_key, AGE_FILE_KEY, body) == 0;
        }
        if (ok)
            ok = buf_puts(&h, "-> X25519 ") == 0 && b64_put(&h, share, 32) == 0 && buf_putc(&h, '\n') == 0 &&
                 b64_put(&h, body, sizeof body) == 0 && buf_putc(&h, '\n') == 0;
        OPENSSL_cleanse(esk, sizeof esk);
        OPENSSL_cleanse(shared, sizeof shared);
        OPENSSL_cleanse(wrap, sizeof wrap);
        if (!ok) {
            burry_errf(e, BURRY_EFAIL, "cannot encrypt to recipient %zu (a bad key?)", i + 1);
            goto fail;
        }
    }
    buf_puts(&h, "---");
    if (hkdf(file_key, sizeof file_key, (const unsigned char *)"", 0, "header", mac_key, 32) < 0 ||
        !HMAC(EVP_sha256(), mac_key, 32, (unsigned char *)h.p, h.len, mac, NULL) ||
        hkdf(file_key, sizeof file_key, nonce, sizeof nonce, "payload", a->key, 32) < 0) {
        burry_errf(e, BURRY_EFAIL, "cannot derive the encryption keys");
        goto fail;
    }
    buf_putc(&h, ' ');
    b64_put(&h, mac, 32);
    buf_putc(&h, '\n');
    if (buf_append(&h, nonce, sizeof nonce) < 0) {
        burry_errf(e, BURRY_EFAIL, "out of memory");
        goto fail;
    }
    if (out(ctx, h.p, h.len, e) < 0)
        goto fail;
    OPENSSL_cleanse(file_key, sizeof file_key);
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    buf_free(&h);
    return a;
fail:
    OPENSSL_cleanse(file_key, sizeof file_key);
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    buf_free(&h);
    age_enc_free(a);
    return NULL;
}

static int seal_chunk(struct age_enc *a, int last, struct burry_err *e)
{
    unsigned char nonce[12];
    chunk_nonce(a->counter, last, nonce);
    if (aead(1, a->key, nonce, a->chunk, a->fill, a->sealed) < 0)
        return burry_errf(e, BURRY_EFAIL, "encryption failed");
    a->counter++;
    int rc = a->out(a->ctx, a->sealed, a->fill + AGE_TAG, e);
    a->fill = 0;
    return rc;
}

int age_enc_write(struct age_enc *a, const void *buf, size_t len, struct burry_err *e)
{
    const unsigned char *p = buf;
    while (len) {
        if (a->fill == AGE_CHUNK) { /* more follows: this one is not the last */
            int rc = seal_chunk(a, 0, e);
            if (rc < 0)
                return rc;
        }
        size_t n = AGE_CHUNK - a->fill < len ? AGE_CHUNK - a->fill : len;
        memcpy(a->chunk + a->fill, p, n);
        a->fill += n;
        p += n;
        len -= n;
    }
    return 0;
}

int age_enc_finish(struct age_enc *a, struct burry_err *e)
{
    if (a->finished)
        return 0;
    a->finished = 1;
    return seal_chunk(a, 1, e);
}

void age_enc_free(struct age_enc *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a->key, sizeof a->key);
    if (a->chunk)
        OPENSSL_cleanse(a->chunk, AGE_CHUNK);
    free(a->chunk);
    free(a->sealed);
    free(a);
}

/* ---- decryption ------------------------------------------------------------ */

struct age_dec {
    fmt_read_fn in;
    void *ctx;
    unsigned char key[32];
    unsigned char *raw;             /* sealed bytes read ahead */
    size_t raw_len;
    unsigned char *plain;           /* the current chunk's plaintext */
    size_t plain_len, plain_at;
    unsigned long long counter;
    int eof, done;
};

/* Fill d->raw up to want bytes; returns bytes available. */
static ssize_t fill_raw(struct age_dec *d, size_t want, struct burry_err *e)
{
    while (!d->eof && d->raw_len < want) {
        ssize_t n = d->in(d->ctx, d->raw + d->raw_len, want - d->raw_len, e);
        if (n < 0)
            return n;
        if (n == 0)
            d->eof = 1;
        d->raw_len += (size_t)n;
    }
    return (ssize_t)d->raw_len;
}

/* Read one header line (without the newline) from the raw buffer. */
static int header_line(struct age_dec *d, struct buf *hdr, size_t *at, const char **line, size_t *len,
                       struct burry_err *e)
{
    for (;;) {
        unsigned char *nl = memchr(d->raw + *at, '\n', d->raw_len - *at);
        if (nl) {
            *line = (const char *)d->raw + *at;
            *len = (size_t)(nl - (d->raw + *at));
            *at += *len + 1;
            return 0;
        }
        if (d->eof || d->raw_len >= AGE_MAX_HEADER)
            return burry_errf(e, BURRY_EFAIL, "not an age file or its header is damaged");
        ssize_t n = fill_raw(d, d->raw_len + 4096 > AGE_MAX_HEADER ? AGE_MAX_HEADER : d->raw_len + 4096, e);
        if (n < 0)
            return (int)n;
    }
    (void)hdr;
}

struct age_dec *age_dec_new(const unsigned char (*sks)[AGE_KEY_LEN], size_t n, fmt_read_fn in,
                            void *ctx, struct burry_err *e)
{
    struct age_dec *d = calloc(1, sizeof *d);
    unsigned char file_key[AGE_FILE_KEY], mac_key[32], mac[32], want_mac[32], nonce[16];
    int have_key = 0, x25519_stanzas = 0, other = 0;
    size_t at = 0, mac_end = 0;
    const char *line;
    size_t len;
    if (!d || !(d->raw = malloc(AGE_CHUNK + AGE_TAG + 1 > AGE_MAX_HEADER ? AGE_CHUNK + AGE_TAG + 1 : AGE_MAX_HEADER)) ||
        !(d->plain = malloc(AGE_CHUNK))) {
        burry_errf(e, BURRY_EFAIL, "out of memory");
        goto fail;
    }
    d->in = in;
    d->ctx = ctx;
    if (fill_raw(d, 64, e) < 0)
        goto fail;
    if (header_line(d, NULL, &at, &line, &len, e) < 0)
        goto fail;
    if (len != strlen(AGE_MAGIC) || memcmp(line, AGE_MAGIC, len)) {
        burry_errf(e, BURRY_EFAIL, "not an age v1 file");
        goto fail;
    }
    for (;;) {
        size_t line_at = at;
        if (header_line(d, NULL, &at, &line, &len, e) < 0)
            goto fail;
        if (len >= 4 && !memcmp(line, "--- ", 4)) {
            mac_end = line_at + 3;
            if (b64_get(line + 4, len - 4, want_mac, 32) < 0) {
                burry_errf(e, BURRY_EFAIL, "age header is damaged (bad MAC line)");
                goto fail;
            }
            break;
        }
        if (len < 3 || memcmp(line, "-> ", 3)) {
            burry_errf(e, BURRY_EFAIL, "age header is damaged (unexpected line)");
            goto fail;
        }
        /* stanza: arguments on this line, body lines until one shorter than 64 */
        char args[256];
        size_t alen = len - 3 < sizeof args - 1 ? len - 3 : sizeof args - 1;
        memcpy(args, line + 3, alen);
        args[alen] = 0;
        unsigned char body[64];
        size_t blen = 0;
        int body_ok = 1;
        for (;;) {
            if (header_line(d, NULL, &at, &line, &len, e) < 0)
                goto fail;
            if (len > 64) {
                burry_errf(e, BURRY_EFAIL, "age header is damaged (long stanza line)");
                goto fail;
            }
            if (blen == 0 && len == 43 && b64_get(line, len, body, 32) == 0)
                blen = 32;
            else if (len)
                body_ok = 0;
            if (len < 64)
                break;
        }
        if (strncmp(args, "X25519 ", 7)) {
            other++;
            continue;
        }
        x25519_stanzas++;
        unsigned char share[32];
        if (strlen(args + 7) != 43 || b64_get(args + 7, 43, share, 32) < 0 || !body_ok || blen != 32) {
            burry_errf(e, BURRY_EFAIL, "age header is damaged (bad X25519 stanza)");
            goto fail;
        }
        for (size_t i = 0; i < n && !have_key; i++) {
            unsigned char shared[32], pub[32], salt[64], wrap[32];
            static const unsigned char zero_nonce[12];
            if (x25519(sks[i], share, shared, pub) == 0) {
                memcpy(salt, share, 32);
                memcpy(salt + 32, pub, 32);
                if (hkdf(shared, 32, salt, 64, X25519_INFO, wrap, 32) == 0 &&
                    aead(0, wrap, zero_nonce, body, 32, file_key) == 0)
                    have_key = 1;
            }
            OPENSSL_cleanse(shared, sizeof shared);
            OPENSSL_cleanse(wrap, sizeof wrap);
        }
    }
    if (!have_key) {
        if (!x25519_stanzas && other)
            burry_errf(e, BURRY_EFAIL, "the file is not encrypted to an X25519 key (passphrase or other "
                                       "recipient type), which burry cannot decrypt");
        else
            burry_errf(e, BURRY_ENOKEY, "none of the given identities can decrypt it (wrong key?)");
        goto fail;
    }
    if (hkdf(file_key, sizeof file_key, (const unsigned char *)"", 0, "header", mac_key, 32) < 0 ||
        !HMAC(EVP_sha256(), mac_key, 32, d->raw, mac_end, mac, NULL) ||
        CRYPTO_memcmp(mac, want_mac, 32) != 0) {
        burry_errf(e, BURRY_EFAIL, "age header failed authentication (damaged or tampered with)");
        goto fail;
    }
    /* the payload nonce follows the header */
    memmove(d->raw, d->raw + at, d->raw_len - at);
    d->raw_len -= at;
    if (fill_raw(d, 16, e) < 0)
        goto fail;
    if (d->raw_len < 16) {
        burry_errf(e, BURRY_EFAIL, "age file is truncated (no payload)");
        goto fail;
    }
    memcpy(nonce, d->raw, 16);
    memmove(d->raw, d->raw + 16, d->raw_len - 16);
    d->raw_len -= 16;
    if (hkdf(file_key, sizeof file_key, nonce, 16, "payload", d->key, 32) < 0) {
        burry_errf(e, BURRY_EFAIL, "cannot derive the payload key");
        goto fail;
    }
    OPENSSL_cleanse(file_key, sizeof file_key);
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    return d;
fail:
    OPENSSL_cleanse(file_key, sizeof file_key);
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    age_dec_free(d);
    return NULL;
}

/* Open the next chunk into d->plain. */
static int next_chunk(struct age_dec *d, struct burry_err *e)
{
    size_t full = AGE_CHUNK + AGE_TAG;
    ssize_t have = fill_raw(d, full + 1, e); /* one byte more tells whether this is the last */
    if (have < 0)
        return (int)have;
    int last = (size_t)have <= full;
    size_t take = last ? (size_t)have : full;
    unsigned char nonce[12];
    if (take < AGE_TAG || (last && take == AGE_TAG && d->counter > 0))
        return burry_errf(e, BURRY_EFAIL, "age file is truncated");
    chunk_nonce(d->counter, last, nonce);
    if (aead(0, d->key, nonce, d->raw, take, d->plain) < 0) {
        if (last)
            return burry_errf(e, BURRY_EFAIL,
                              "age file is truncated or damaged (chunk %llu failed authentication)",
                              d->counter + 1);
        return burry_errf(e, BURRY_EFAIL, "age file is damaged or was tampered with (chunk %llu failed "
                                          "authentication)", d->counter + 1);
    }
    d->counter++;
    d->plain_len = take - AGE_TAG;
    d->plain_at = 0;
    memmove(d->raw, d->raw + take, d->raw_len - take);
    d->raw_len -= take;
    if (last)
        d->done = 1;
    return 0;
}

ssize_t age_dec_read(struct age_dec *d, void *buf, size_t len, struct burry_err *e)
{
    while (d->plain_at == d->plain_len) {
        if (d->done)
            return 0;
        int rc = next_chunk(d, e);
        if (rc < 0)
            return rc;
    }
    size_t n = d->plain_len - d->plain_at < len ? d->plain_len - d->plain_at : len;
    memcpy(buf, d->plain + d->plain_at, n);
    d->plain_at += n;
    return (ssize_t)n;
}

void age_dec_free(struct age_dec *d)
{
    if (!d)
        return;
    OPENSSL_cleanse(d->key, sizeof d->key);
    if (d->plain)
        OPENSSL_cleanse(d->plain, AGE_CHUNK);
    free(d->raw);
    free(d->plain);
    free(d);
}
