/* SHA-256 as lower-case hex, the form every checksum in manifests and
 * object-store requests takes. */
#ifndef BURRY_DIGEST_H
#define BURRY_DIGEST_H

#include <openssl/evp.h>
#include <stddef.h>

#define SHA256_HEX_LEN 64

/* SHA-256 for EVP_DigestInit_ex and friends, fetched once per process
 * (thread-safe); never NULL. */
const EVP_MD *sha256_md(void);
/* hex of the SHA-256 of n bytes at p. */
void sha256_hex(const void *p, size_t n, char hex[SHA256_HEX_LEN + 1]);
/* The same through md, a context the caller keeps for many such calls
 * (a new context per call costs more than hashing a short value). */
void sha256_hex_ctx(EVP_MD_CTX *md, const void *p, size_t n, char hex[SHA256_HEX_LEN + 1]);
/* Finish md (a SHA-256 context) into hex. */
void sha256_final_hex(EVP_MD_CTX *md, char hex[SHA256_HEX_LEN + 1]);
/* n bytes as lower-case hex; hex needs 2n + 1 bytes. */
void hex_encode(const unsigned char *d, size_t n, char *hex);
/* The value of one hex digit (either case), or -1. */
int hex_value(int c);

#endif
