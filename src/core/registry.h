/* The one place where a URL scheme becomes an implementation. */
#ifndef BURRY_REGISTRY_H
#define BURRY_REGISTRY_H

#include "err.h"
#include "source.h"
#include "store.h"

/* The source for a URL such as "zk://host:2181/chroot", or NULL with e set. */
const struct source_ops *registry_source(const char *url, struct burry_err *e);
/* The store for a URL or a plain path (a path is a directory store). */
const struct store_ops *registry_store(const char *url, struct burry_err *e);

extern const struct source_ops source_zk;
extern const struct source_ops source_etcd;
extern const struct source_ops source_etcd2;
extern const struct source_ops source_consul;
extern const struct store_ops store_dir;
extern const struct store_ops store_s3;
extern const struct store_ops store_gs;
extern const struct store_ops store_azure;

#endif
