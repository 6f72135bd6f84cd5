/* Streaming encryption and decryption in the age v1 file format
 * (age-encryption.org/v1) with X25519 recipients, so that snapshots
 * encrypted by burry decrypt with the standard `age` tool and files
 * encrypted by `age -r` restore with burry. The primitives (X25519,
 * HKDF-SHA256, HMAC-SHA256, ChaCha20-Poly1305) come from OpenSSL; this file
 * only frames them. Neither side ever holds more than one 64 KiB chunk. */
#ifndef BURRY_AGE_H
#define BURRY_AGE_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "format.h"

#define AGE_KEY_LEN 32

struct age_enc;
struct age_dec;

/* Parse an "age1..." recipient into its X25519 public key. */
int age_parse_recipient(const char *s, unsigned char pk[AGE_KEY_LEN], struct burry_err *e);
/* Parse an "AGE-SECRET-KEY-1..." identity into its X25519 secret key. */
int age_parse_identity(const char *s, unsigned char sk[AGE_KEY_LEN], struct burry_err *e);

/* Read every "AGE-SECRET-KEY-1..." line of an identity file (comments and
 * blank lines allowed) into *sks (malloc'ed, caller wipes and frees). */
int age_read_identities(const char *path, unsigned char (**sks)[AGE_KEY_LEN], size_t *n,
                        struct burry_err *e);
/* Read every "age1..." line of a recipients file (as age -R takes). */
int age_read_recipients(const char *path, unsigned char (**pks)[AGE_KEY_LEN], size_t *n,
                        struct burry_err *e);

/* Encrypt to n public keys, writing the age file through out. */
struct age_enc *age_enc_new(const unsigned char (*pks)[AGE_KEY_LEN], size_t n, fmt_write_fn out,
                            void *ctx, struct burry_err *e);
int age_enc_write(struct age_enc *a, const void *buf, size_t len, struct burry_err *e);
/* Write the last chunk; the file is complete only after this. */
int age_enc_finish(struct age_enc *a, struct burry_err *e);
void age_enc_free(struct age_enc *a);                       /* NULL ok; wipes keys */

/* Decrypt an age file read through in with any of n secret keys. Reads and
 * checks the header at once: a file for other recipients, or a damaged
 * header, fails here. */
struct age_dec *age_dec_new(const unsigned char (*sks)[AGE_KEY_LEN], size_t n, fmt_read_fn in,
                            void *ctx, struct burry_err *e);
/* Plaintext bytes, 0 at the authenticated end, <0 if a chunk fails
 * authentication or the file is truncated. */
ssize_t age_dec_read(struct age_dec *d, void *buf, size_t len, struct burry_err *e);
void age_dec_free(struct age_dec *d);                       /* NULL ok; wipes keys */

/* Whether the first bytes of a file look like an age file. */
int age_is_age(const void *head, size_t len);

#endif
