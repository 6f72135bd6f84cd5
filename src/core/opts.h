/* Options that travel from the CLI down into sources, stores and engines.
 * The CLI fills one struct; the library reads it and keeps no globals. */
#ifndef BURRY_OPTS_H
#define BURRY_OPTS_H

#include <stddef.h>

#include "log.h"

#define BURRY_MAX_AUTH 8

enum burry_compress { BURRY_COMPRESS_ZSTD = 0, BURRY_COMPRESS_GZIP, BURRY_COMPRESS_NONE };

struct burry_auth {
    char *scheme;  /* "digest" */
    char *secret;  /* "user:password"; wiped by burry_opts_wipe() */
};

struct burry_opts {
    int timeout_s;             /* bounds connecting and every wait; default 10 */
    struct burry_auth auth[BURRY_MAX_AUTH];
    int nauth;
    int skip_unreadable;       /* backup: record unreadable nodes instead of failing */
    enum burry_compress compress;
    int window;                /* requests in flight; default 1000 */
    const char *cacert, *cert, *key; /* TLS for HTTP-speaking sources (files) */
    char *user;                /* etcd user name */
    char *password;            /* etcd password; wiped by burry_opts_wipe() */
    char *token;               /* Consul ACL token; wiped by burry_opts_wipe() */
    int with_leases;           /* etcd v3 restore: grant leases with the recorded TTLs */
    unsigned char (*recipients)[32];  /* backup: encrypt to these X25519 keys (age) */
    size_t nrecipients;
    unsigned char (*identities)[32];  /* restore/verify: age secret keys; wiped */
    size_t nidentities;
    /* object stores (S3, GCS, Azure) */
    const char *endpoint_url;  /* overrides AWS_ENDPOINT_URL and the default endpoint */
    int create_bucket;         /* create a missing bucket or container on backup */
    const char *create_advice; /* what to do about a missing bucket or container
                                * (the CLI's words; NULL: "create it") */
    size_t part_size;          /* bytes per upload part/block; 0: the store's default */
    char *store_key_id;        /* credentials given on the command line (legacy -c) */
    char *store_secret;        /* wiped by burry_opts_wipe() */
    struct burry_log log;
    burry_progress_fn progress;
    void *progress_ctx;
};

void burry_opts_init(struct burry_opts *o);
/* Wipe and free secrets held in the options. */
void burry_opts_wipe(struct burry_opts *o);

#endif
