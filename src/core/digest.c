/* SHA-256 in hex (digest.h). */
#include "digest.h"

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
    if (EVP_Digest(p, n, d, &dlen, EVP_sha256(), NULL) != 1)
        dlen = 0;
    hex_encode(d, dlen, hex);
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
