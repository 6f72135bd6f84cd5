/* The interface every snapshot store (directory, S3, Azure, ...) implements:
 * one file per store exporting one const struct store_ops, registered in
 * registry.c. Keys are relative '/'-separated names such as
 * "zk-host-2181/20261121T083501.123Z-7f3a.tar.zst".
 *
 * Writes stream: put_open, any number of put_write, then put_commit, which
 * makes the object visible atomically, or put_abort, which leaves nothing. */
#ifndef BURRY_STORE_H
#define BURRY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "opts.h"

struct store;      /* private to each implementation */
struct store_put;
struct store_get;

typedef int (*store_list_cb)(void *ctx, const char *key, uint64_t size);

struct store_ops {
    const char *scheme;   /* "file" */
    /* Whether url is well formed for this store, from the URL alone (no
     * environment, credentials, file system or network): what open refuses
     * first, as BURRY_EUSAGE. */
    int (*check_url)(const char *url, struct burry_err *e);
    int (*open)(struct store **out, const char *url, const struct burry_opts *o,
                struct burry_err *e);
    void (*close)(struct store *s);
    /* Credential-free description for messages: "directory '/var/backups'". */
    const char *(*describe)(struct store *s);

    /* Whether keys under "name/" can be written now, found out as cheaply as
     * the store allows, before a long write is started: a directory store
     * creates and removes a temporary file where they would go; an object
     * store makes the bucket or container check that put_open makes anyway
     * (once per store, so put_open then skips it). Nothing is left behind
     * (a missing bucket with create_bucket passes: put_open creates it). */
    int (*check_put)(struct store *s, const char *name, struct burry_err *e);

    /* Fails with BURRY_EEXIST if the key exists already (never overwrites).
     * After a failed put_write the caller still calls put_abort. */
    int (*put_open)(struct store *s, const char *key, struct store_put **out, struct burry_err *e);
    int (*put_write)(struct store_put *p, const void *buf, size_t len, struct burry_err *e);
    int (*put_commit)(struct store_put *p, struct burry_err *e); /* frees p */
    void (*put_abort)(struct store_put *p);                      /* frees p; NULL ok */

    /* BURRY_ENOENT if the key does not exist. */
    int (*get_open)(struct store *s, const char *key, struct store_get **out, struct burry_err *e);
    /* Returns bytes read, 0 at the end, <0 on error. */
    ssize_t (*get_read)(struct store_get *g, void *buf, size_t len, struct burry_err *e);
    void (*get_close)(struct store_get *g);                      /* NULL ok */

    /* Every key under prefix ("" for all), in no particular order. A
     * non-zero return from cb stops the listing and is returned. A store that
     * does not exist yet lists nothing. */
    int (*list)(struct store *s, const char *prefix, store_list_cb cb, void *ctx,
                struct burry_err *e);
    int (*remove)(struct store *s, const char *key, struct burry_err *e);
    /* Optional (NULL for a store whose calls an interrupt never cuts short):
     * with on, the requests of s run to their end even once burry_interrupted
     * is set (http_set_drain), so that their outcome is known. */
    void (*set_drain)(struct store *s, int on);
};

#endif
