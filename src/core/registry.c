/* Scheme tables: adding a source or a store is one file plus one line here. */
#include "registry.h"

#include <string.h>

static const struct source_ops *const sources[] = {
    &source_zk,
    &source_etcd,
    &source_etcd2,
    &source_consul,
};

static const struct store_ops *const stores[] = {
    &store_dir,
    &store_s3,
    &store_gs,
    &store_azure,
};

/* Length of "scheme" in "scheme://...", or 0 if url has no scheme. */
static size_t scheme_len(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return 0;
    for (const char *q = url; q < p; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '+'))
            return 0;
    return (size_t)(p - url);
}

const char *source_url_rest(const char *url, const char *scheme, int *https)
{
    size_t n = strlen(scheme);
    *https = 0;
    if (strncmp(url, scheme, n))
        return NULL;
    if (!strncmp(url + n, "://", 3))
        return url + n + 3;
    if (!strncmp(url + n, "+https://", 9)) {
        *https = 1;
        return url + n + 9;
    }
    return NULL;
}

const struct source_ops *registry_source(const char *url, struct burry_err *e)
{
    size_t n = scheme_len(url);
    for (size_t i = 0; n && i < sizeof sources / sizeof sources[0]; i++) {
        size_t sl = strlen(sources[i]->scheme);
        int tls_form = sources[i]->https_form && n == sl + 6 && !strncmp(url + sl, "+https", 6);
        if ((sl == n || tls_form) && !strncmp(url, sources[i]->scheme, sl)) {
            if (!sources[i]->describe || !sources[i]->default_name || !sources[i]->write_submit) {
                burry_errf(e, BURRY_EUSAGE, "'%.*s' is not supported by this burry yet", (int)n, url);
                return NULL;
            }
            return sources[i];
        }
    }
    if (!n) {
        burry_errf(e, BURRY_EUSAGE, "'%s' is not a service URL (expected zk://, etcd://, etcd2:// or consul://HOST:PORT...)", url);
        return NULL;
    }
    burry_errf(e, BURRY_EUSAGE, "unknown service '%.*s' in '%s' (known: zk, etcd, etcd2, consul)", (int)n, url, url);
    return NULL;
}

const struct store_ops *registry_store(const char *url, struct burry_err *e)
{
    size_t n = scheme_len(url);
    if (!n)
        return &store_dir;
    for (size_t i = 0; i < sizeof stores / sizeof stores[0]; i++)
        if (strlen(stores[i]->scheme) == n && !strncmp(url, stores[i]->scheme, n))
            return stores[i];
    burry_errf(e, BURRY_EUSAGE, "unknown store '%.*s' in '%s' (known: a directory path, file://, s3://, gs://, azure://)",
               (int)n, url, url);
    return NULL;
}
