/* SHA-256 in hex (digest.h). */
#include "digest.h"

#include <pthread.h>

/* OpenSSL 3 looks up ("fetches") the implementation behind EVP_sha256() on
 * every one-shot EVP_Digest call; fetching it once saves that per node. The
 * reference lives until exit (still reachable, so not a leak): freeing it
 * from an exit handler could race a worker thread still hashing. */
static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *sha256_md(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_fetched ? sha256_fetched : EVP_sha256();
}

void hex_encode(const unsigned char *d, size_t n, char *hex)
{
    static const char dig[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = dig[d[i] >> 4];
        hex[2 * i + 1] = dig[d[i] & 15];
    }
    hex[2 * n] = 0;
}

void sha256_hex(const void *p, size_t n, char hex[SHA256_HEX_LEN + 1])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_Digest(p, n, d, &dlen, sha256_md(), NULL) != 1)
        dlen = 0;
    hex_encode(d, dlen, hex);
}

void sha256_hex_ctx(EVP_MD_CTX *md, const void *p, size_t n, char hex[SHA256_HEX_LEN + 1])
{
    if (!md || EVP_DigestInit_ex(md, sha256_md(), NULL) != 1 || EVP_DigestUpdate(md, p, n) != 1) {
        sha256_hex(p, n, hex);
        return;
    }
    sha256_final_hex(md, hex);
}

void sha256_final_hex(EVP_MD_CTX *md, char hex[SHA256_HEX_LEN + 1])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_DigestFinal_ex(md, d, &dlen) != 1)
        dlen = 0;
    hex_encode(d, dlen, hex);
}

int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}
