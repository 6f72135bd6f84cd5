/* etcd v3 source: not written yet; the scheme is reserved so that the table
 * in registry.c stays the single place that lists services. */
#include "registry.h"

static int etcd_open(struct source **out, const char *url, const struct burry_opts *o,
                     struct burry_err *e)
{
    (void)out;
    (void)o;
    return burry_errf(e, BURRY_EUSAGE, "'%s': etcd v3 is not supported by this burry yet", url);
}

const struct source_ops source_etcd = {
    .scheme = "etcd",
    .service = "etcd",
    .open = etcd_open,
};
