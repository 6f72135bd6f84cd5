/* bysu's central side: bysu.conf, the run (one forked worker per job, at
 * most `parallel` at once, each bounded by its timeout), the ssh pull that
 * verifies a snapshot against its manifest while it streams into the
 * repository, and reading snapshots back out. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <ini.h>
#include <openssl/evp.h>

#include "age.h"
#include "agent.h"
#include "burry.h"
#include "digest.h"
#include "catalog.h"
#include "collect.h"
#include "registry.h"

/* ---- configuration ---- */

struct conf_ctx {
    struct bysu_conf *c;
    const char *section, *key; /* of the line being handled, for messages */
    char err[512];             /* the first error only: inih reports its line */
    char bad_section[256];     /* set when the error is the section's: report its header's line */
};

static int dup_key(struct conf_ctx *x)
{
    snprintf(x->err, sizeof x->err, "'%s' is given twice in [%s]", x->key, x->section);
    return 0;
}

static int set_str(struct conf_ctx *x, char **slot, const char *v)
{
    if (*slot)
        return dup_key(x);
    if (!(*slot = strdup(v))) {
        snprintf(x->err, sizeof x->err, "out of memory");
        return 0;
    }
    return 1;
}

static int set_int(struct conf_ctx *x, int *slot, long max, const char *v)
{
    char *end;
    if (*slot)
        return dup_key(x);
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < 1 || n > max) {
        snprintf(x->err, sizeof x->err, "'%s' wants a whole number from 1 to %ld (got '%s')", x->key, max, v);
        return 0;
    }
    *slot = (int)n;
    return 1;
}

static int set_compress(struct conf_ctx *x, enum bysu_compress *slot, const char *v)
{
    if (*slot)
        return dup_key(x);
    if (!strcmp(v, "zstd"))
        *slot = BYSU_COMPRESS_ZSTD;
    else if (!strcmp(v, "none"))
        *slot = BYSU_COMPRESS_NONE;
    else {
        snprintf(x->err, sizeof x->err, "'compress' wants zstd or none (got '%s')", v);
        return 0;
    }
    return 1;
}

/* A cipher list as ssh_config(5) writes one (names, commas, a leading +, -
 * or ^), or "default". Checked here so that a typo fails the load, not every
 * job with ssh's "Bad SSH2 cipher spec". */
static int set_ciphers(struct conf_ctx *x, char **slot, const char *v)
{
    size_t n = strlen(v);
    int ok = n > 0 && n < 1000 && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@.,+^-_") == n;
    if (!ok) {
        snprintf(x->err, sizeof x->err,
                 "'ciphers' wants default or a list of ssh cipher names such as aes128-gcm@openssh.com,"
                 "chacha20-poly1305@openssh.com (got '%.60s')", v);
        return 0;
    }
    return set_str(x, slot, v);
}

/* The repository: a store URL that is well formed (nothing is opened here),
 * and not a relative path, which would name another directory for every
 * working directory bysu is started in (a systemd unit's is "/"). */
static int set_url(struct conf_ctx *x, char **slot, const char *v)
{
    struct burry_err e2 = {0};
    if (*slot)
        return dup_key(x);
    if (catalog_check_store_url(v, &e2) < 0) {
        snprintf(x->err, sizeof x->err, "'url': %.480s", e2.msg);
        return 0;
    }
    if (registry_store(v, &e2) == &store_dir && strncmp(v, "file://", 7) && v[0] != '/') {
        snprintf(x->err, sizeof x->err,
                 "'url' wants an absolute path or a store URL, not the relative path '%.200s' (it would "
                 "depend on the directory bysu runs in)", v);
        return 0;
    }
    return set_str(x, slot, v);
}

#define MAX_NUMBER 1000000

static int conf_handler(void *user, const char *section, const char *key, const char *v)
{
    struct conf_ctx *x = user;
    struct bysu_conf *c = x->c;
    if (x->err[0])
        return 0; /* keep the first error's message with the line inih reports */
    x->section = section;
    x->key = key;
    if (!strcmp(section, "repository")) {
        if (!strcmp(key, "url"))
            return set_url(x, &c->repo_url, v);
        if (!strcmp(key, "keep"))
            return set_int(x, &c->keep, MAX_NUMBER, v);
        if (!strcmp(key, "compress"))
            return set_compress(x, &c->compress, v);
        if (!strcmp(key, "recipients"))
            return set_str(x, &c->recipients, v);
        if (!strcmp(key, "recipients_file"))
            return set_str(x, &c->recipients_file, v);
    } else if (!strncmp(section, "node ", 5) && section[5]) {
        const char *name = section + 5;
        struct bysu_node *n = NULL;
        for (int i = 0; i < c->nnodes; i++)
            if (!strcmp(c->nodes[i].name, name))
                n = &c->nodes[i];
        if (!n) {
            if (c->nnodes == BYSU_MAX_ITEMS) {
                snprintf(x->err, sizeof x->err, "more than %d nodes", BYSU_MAX_ITEMS);
                return 0;
            }
            n = &c->nodes[c->nnodes];
            if (!(n->name = strdup(name))) {
                snprintf(x->err, sizeof x->err, "out of memory");
                return 0;
            }
            c->nnodes++;
        }
        if (!strcmp(key, "host"))
            return set_str(x, &n->host, v);
        if (!strcmp(key, "user"))
            return set_str(x, &n->user, v);
        if (!strcmp(key, "identity"))
            return set_str(x, &n->identity, v);
        if (!strcmp(key, "known_hosts"))
            return set_str(x, &n->known_hosts, v);
        if (!strcmp(key, "port"))
            return set_int(x, &n->port, 65535, v);
        if (!strcmp(key, "ciphers"))
            return set_ciphers(x, &n->ciphers, v);
    } else if (!strncmp(section, "job ", 4) && section[4]) {
        const char *name = section + 4;
        struct bysu_job *j = NULL;
        for (int i = 0; i < c->njobs; i++)
            if (!strcmp(c->jobs[i].name, name))
                j = &c->jobs[i];
        if (!j) {
            struct burry_err e2 = {0};
            if (catalog_check_name(name, &e2) < 0) {
                snprintf(x->err, sizeof x->err, "job name: %.200s", e2.msg);
                snprintf(x->bad_section, sizeof x->bad_section, "%s", section);
                return 0;
            }
            if (c->njobs == BYSU_MAX_ITEMS) {
                snprintf(x->err, sizeof x->err, "more than %d jobs", BYSU_MAX_ITEMS);
                return 0;
            }
            j = &c->jobs[c->njobs];
            if (!(j->name = strdup(name))) {
                snprintf(x->err, sizeof x->err, "out of memory");
                return 0;
            }
            c->njobs++;
        }
        if (!strcmp(key, "node"))
            return set_str(x, &j->node, v);
        if (!strcmp(key, "snapshot"))
            return set_str(x, &j->snapshot, v);
        if (!strcmp(key, "source"))
            return set_str(x, &j->source, v);
        if (!strcmp(key, "keep"))
            return set_int(x, &j->keep, MAX_NUMBER, v);
        if (!strcmp(key, "timeout"))
            return set_int(x, &j->timeout, MAX_NUMBER, v);
        if (!strcmp(key, "compress"))
            return set_compress(x, &j->compress, v);
        if (!strcmp(key, "recipients"))
            return set_str(x, &j->recipients, v);
        if (!strcmp(key, "recipients_file"))
            return set_str(x, &j->recipients_file, v);
    } else if (!*section) {
        snprintf(x->err, sizeof x->err, "'%s' is outside any section", key);
        return 0;
    } else {
        snprintf(x->err, sizeof x->err, "unknown section '[%s]' (want [repository], [node NAME] or [job NAME])",
                 section);
        snprintf(x->bad_section, sizeof x->bad_section, "%s", section);
        return 0;
    }
    snprintf(x->err, sizeof x->err, "unknown key '%s' in [%s]", key, section);
    return 0;
}

int bysu_conf_load(const char *path, struct bysu_conf **out, struct burry_err *e)
{
    struct bysu_conf *c = calloc(1, sizeof *c);
    struct conf_ctx x = {.c = c};
    int rc = 0;
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    /* sections given twice first: inih would merge them silently */
    if ((rc = bysu_ini_check_sections(path, e)) < 0)
        goto out;
    int r = ini_parse(path, conf_handler, &x);
    if (r == -1) {
        rc = burry_errf(e, BURRY_EUSAGE, "cannot read '%s' (%s)", path, strerror(errno));
        goto out;
    }
    if (r) {
        if (x.bad_section[0] && bysu_ini_section_line(path, x.bad_section) > 0)
            r = bysu_ini_section_line(path, x.bad_section);
        rc = burry_errf(e, BURRY_EUSAGE, "'%s' line %d: %s", path, r, x.err[0] ? x.err : "syntax error");
        goto out;
    }
    /* libinih shows a section without keys to no one: "[job x]" alone would
     * be no job at all */
    char empty[256];
    int eline = bysu_ini_empty_section(path, empty, sizeof empty);
    if (eline) {
        const char *want = !strcmp(empty, "repository")      ? " (it wants a url)"
                           : !strncmp(empty, "node ", 5)     ? " (it wants a host)"
                           : !strncmp(empty, "job ", 4)      ? " (it wants node and snapshot, or source)"
                                                             : " (and not a section bysu knows: want [repository], "
                                                               "[node NAME] or [job NAME])";
        rc = burry_errf(e, BURRY_EUSAGE, "'%s' line %d: [%s] is empty%s", path, eline, empty, want);
        goto out;
    }
    if (!c->repo_url) {
        int line = bysu_ini_section_line(path, "repository");
        rc = line ? burry_errf(e, BURRY_EUSAGE, "'%s' line %d: [repository] has no url", path, line)
                  : burry_errf(e, BURRY_EUSAGE, "'%s': there is no [repository] section with a url", path);
        goto out;
    }
    if (!c->keep)
        c->keep = 7;
    if (!c->compress)
        c->compress = BYSU_COMPRESS_ZSTD;
    for (int i = 0; i < c->nnodes; i++) {
        struct bysu_node *n = &c->nodes[i];
        if (!n->port)
            n->port = 22;
        if (!n->host) {
            char sec[300];
            snprintf(sec, sizeof sec, "node %s", n->name);
            rc = burry_errf(e, BURRY_EUSAGE, "'%s' line %d: [node %s] has no host", path,
                            bysu_ini_section_line(path, sec), n->name);
            goto out;
        }
    }
    for (int i = 0; i < c->njobs; i++) {
        struct bysu_job *j = &c->jobs[i];
        char sec[300];
        snprintf(sec, sizeof sec, "job %s", j->name);
        int line = bysu_ini_section_line(path, sec);
        if (!j->keep)
            j->keep = c->keep;
        if (!j->timeout)
            j->timeout = 3600;
        if (!j->compress)
            j->compress = c->compress;
        if (!!j->source == !!j->node) {
            rc = burry_errf(e, BURRY_EUSAGE, "'%s' line %d: [job %s] wants either node and snapshot or source%s",
                            path, line, j->name, j->source ? ", not both" : "");
            goto out;
        }
        if (j->source && j->snapshot) {
            rc = burry_errf(e, BURRY_EUSAGE, "'%s' line %d: [job %s] has a source, so no snapshot", path, line,
                            j->name);
            goto out;
        }
        if (j->node) {
            int found = 0;
            for (int k = 0; k < c->nnodes; k++)
                found |= !strcmp(c->nodes[k].name, j->node);
            if (!found || !j->snapshot) {
                rc = burry_errf(e, BURRY_EUSAGE, "'%s' line %d: [job %s] %s", path, line, j->name,
                                !found ? "names a node that has no [node] section" : "has no snapshot");
                goto out;
            }
        }
        /* a job's own recipients replace the repository's; "none" turns them off */
        int own = j->recipients || j->recipients_file;
        const char *list = own ? j->recipients : c->recipients;
        const char *file = own ? j->recipients_file : c->recipients_file;
        if (list && !strcmp(list, "none") && !(own && file))
            list = file = NULL;
        if ((rc = bysu_parse_recipients(list, file, &j->pks, &j->npks, e)) < 0) {
            burry_err_prefix(e, "'%s' line %d: [job %s]", path, line, j->name);
            rc = BURRY_EUSAGE;
            goto out;
        }
    }
out:
    if (rc < 0)
        bysu_conf_free(c);
    else
        *out = c;
    return rc;
}

void bysu_conf_free(struct bysu_conf *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nnodes; i++) {
        struct bysu_node *n = &c->nodes[i];
        free(n->name), free(n->host), free(n->user), free(n->identity), free(n->known_hosts);
        free(n->ciphers);
    }
    for (int i = 0; i < c->njobs; i++) {
        struct bysu_job *j = &c->jobs[i];
        free(j->name), free(j->node), free(j->snapshot), free(j->source);
        free(j->recipients), free(j->recipients_file), free(j->pks);
    }
    free(c->recipients), free(c->recipients_file);
    free(c->repo_url);
    free(c->path);
    free(c);
}

const struct bysu_job *bysu_conf_job(const struct bysu_conf *c, const char *name, struct burry_err *e)
{
    for (int i = 0; i < c->njobs; i++)
        if (!strcmp(c->jobs[i].name, name))
            return &c->jobs[i];
    burry_errf(e, BURRY_EUSAGE, "no job '%s' in '%s'", name, c->path);
    return NULL;
}

static const struct bysu_node *conf_node(const struct bysu_conf *c, const char *name)
{
    for (int i = 0; i < c->nnodes; i++)
        if (!strcmp(c->nodes[i].name, name))
            return &c->nodes[i];
    return NULL;
}

/* ---- pulling one node snapshot ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A reader thread moves ssh's output into a ring of PULL_RING bytes as soon
 * as it arrives, so ssh never waits on a worker busy hashing and
 * compressing (a blocked ssh piles the stream up in its own buffers, which
 * costs it more than the pipe). Reads of up to PULL_READ bytes; the pipe is
 * enlarged so ssh writes in large pieces. */
#define PULL_RING (4 * 1024 * 1024)
#define PULL_READ (256 * 1024)
#define PIPE_SIZE (1024 * 1024)
/* zstd level 1, not libarchive's default 3: on a SQL-like text dump it
 * compresses as well (x4.49 against x4.47) for about two thirds of the CPU,
 * and on incompressible data it costs about half as much while the worker
 * streams; only very repetitive data (`seq`) compresses less (x13 against
 * x26). Level 1 also needs a window of 512 KiB to decompress, not 2 MiB. */
#define PULL_ZSTD_LEVEL "1"

struct ring {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* data arrived, or room was made */
    char *buf;                  /* PULL_RING bytes */
    size_t head, len;           /* unread bytes: len from head, wrapping */
    size_t lent;                /* bytes at head handed out and not yet released */
    int fd, eof, err, stop;
};

struct pull {
    const struct store_ops *ops;
    struct store_put *put;
    struct archive *z;         /* zstd compressor over the raw tar bytes */
    struct age_enc *age;       /* central encryption after compression, or NULL */
    EVP_MD_CTX *zmd;           /* of the bytes stored */
    uint64_t zsize, raw;
    int node_enc;              /* the node sent an age file: stored as it came */
    /* node-encrypted: the start of the age file, up to its header's end
     * (age's header limit, 64 KiB, and the MAC line) */
    unsigned char head[64 * 1024 + 128];
    size_t headlen;
    int fd;                    /* ssh's standard output */
    double deadline;
    int timed_out, interrupted;
    struct ring ring;
    struct burry_err *e;
};

/* The bytes that go into the repository, hashed on the way. */
static int store_raw(void *ctx, const void *buf, size_t len, struct burry_err *e)
{
    struct pull *p = ctx;
    if (!p->put)
        return burry_errf(e, BURRY_EFAIL, "the archive is closed");
    EVP_DigestUpdate(p->zmd, buf, len);
    p->zsize += len;
    return p->ops->put_write(p->put, buf, len, e);
}

static la_ssize_t z_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    struct pull *p = ctx;
    struct burry_err e2 = {0};
    int r = p->age ? age_enc_write(p->age, buf, len, &e2) : store_raw(p, buf, len, &e2);
    if (r < 0) {
        burry_errf(p->e, e2.code, "%s", e2.msg);
        archive_set_error(a, EIO, "%s", e2.msg);
        return -1;
    }
    return (la_ssize_t)len;
}

/* Pass bytes read from the node on: to the compressor, or (node-encrypted,
 * or compress = none) straight into the repository. */
static int pull_sink(struct pull *p, const void *buf, size_t len)
{
    p->raw += len;
    if (p->node_enc) {
        struct burry_err e2 = {0};
        if (p->headlen < sizeof p->head) {
            size_t k = sizeof p->head - p->headlen < len ? sizeof p->head - p->headlen : len;
            memcpy(p->head + p->headlen, buf, k);
            p->headlen += k;
        }
        if (store_raw(p, buf, len, &e2) < 0) {
            burry_errf(p->e, e2.code, "%s", e2.msg);
            return -1;
        }
        return 0;
    }
    if (p->z)
        return archive_write_data(p->z, buf, len) == (la_ssize_t)len ? 0 : -1;
    /* compress = none: the tar as it came, encrypted here or not */
    struct burry_err e2 = {0};
    if ((p->age ? age_enc_write(p->age, buf, len, &e2) : store_raw(p, buf, len, &e2)) < 0) {
        burry_errf(p->e, e2.code, "%s", e2.msg);
        return -1;
    }
    return 0;
}

static void *ring_fill(void *arg)
{
    struct ring *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (r->len == PULL_RING) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        size_t tail = (r->head + r->len) % PULL_RING;
        size_t room = PULL_RING - r->len;
        if (room > PULL_RING - tail)
            room = PULL_RING - tail;
        if (room > PULL_READ)
            room = PULL_READ;
        pthread_mutex_unlock(&r->mu);
        /* the poll bounds how long a stop can go unnoticed */
        struct pollfd pf = {.fd = r->fd, .events = POLLIN};
        ssize_t n = poll(&pf, 1, 250);
        if (n > 0)
            n = read(r->fd, r->buf + tail, room);
        int err = n < 0 ? errno : 0;
        pthread_mutex_lock(&r->mu);
        if (n > 0) {
            r->len += (size_t)n;
        } else if (n == 0 && pf.revents) {
            r->eof = 1;
        } else if (n < 0 && err != EINTR) {
            r->err = err;
        } else {
            continue;
        }
        pthread_cond_broadcast(&r->cv);
        if (r->eof || r->err)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int ring_start(struct ring *r, int fd)
{
    *r = (struct ring){.fd = fd};
    if (!(r->buf = malloc(PULL_RING)))
        return -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, ring_fill, r) != 0)
        return -1;
    r->started = 1;
    return 0;
}

/* Stop the reader thread (after ssh has exited or been killed, or at EOF)
 * and free the ring. */
static void ring_free(struct ring *r)
{
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        r->started = 0;
    }
    free(r->buf);
    r->buf = NULL;
}

/* Wait until the ring holds at least want bytes, or the stream ended or
 * failed, within the job's deadline. Called with r->mu held. */
static int ring_wait(struct pull *p, size_t want, struct archive *a)
{
    struct ring *r = &p->ring;
    if (now_s() > p->deadline) { /* also while the stream still flows */
        p->timed_out = 1;
        archive_set_error(a, ETIMEDOUT, "timed out");
        return -1;
    }
    while (r->len < want && !r->eof && !r->err) {
        if (burry_interrupted) {
            p->interrupted = 1;
            archive_set_error(a, EINTR, "interrupted");
            return -1;
        }
        double left = p->deadline - now_s();
        if (left <= 0) {
            p->timed_out = 1;
            archive_set_error(a, ETIMEDOUT, "timed out");
            return -1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = (long)((left < 0.25 ? left : 0.25) * 1e9);
        ts.tv_sec += (ts.tv_nsec + ns) / 1000000000L;
        ts.tv_nsec = (ts.tv_nsec + ns) % 1000000000L;
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    if (r->len < want && r->err) {
        archive_set_error(a, r->err, "read: %s", strerror(r->err));
        return -1;
    }
    return 0;
}

/* The first bytes of the stream (up to want), left in the ring: *len is
 * what there is, less than want only when the stream ended early. */
static int pull_peek(struct pull *p, size_t want, const void **buf, size_t *len, struct archive *a)
{
    struct ring *r = &p->ring;
    pthread_mutex_lock(&r->mu);
    int rc = ring_wait(p, want, a);
    *buf = r->buf + r->head;
    *len = r->len < want ? r->len : want;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* The next piece of the stream from ssh, with the job's deadline; every byte
 * also goes to the compressor, so the stored archive is exactly the stream
 * the node sent. *buf stays valid until the next call. */
static ssize_t pull_read(struct pull *p, struct archive *a, const void **buf)
{
    struct ring *r = &p->ring;
    pthread_mutex_lock(&r->mu);
    if (r->lent) { /* the previous piece is done with */
        r->head = (r->head + r->lent) % PULL_RING;
        r->len -= r->lent;
        r->lent = 0;
        pthread_cond_broadcast(&r->cv);
    }
    if (ring_wait(p, 1, a) < 0) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    size_t n = r->len;
    if (n > PULL_RING - r->head)
        n = PULL_RING - r->head;
    if (n > PULL_READ)
        n = PULL_READ;
    r->lent = n;
    *buf = r->buf + r->head;
    pthread_mutex_unlock(&r->mu);
    if (n && pull_sink(p, *buf, n) < 0) {
        archive_set_error(a, EIO, "cannot store the stream");
        return -1;
    }
    return (ssize_t)n;
}

static la_ssize_t tar_read_cb(struct archive *a, void *ctx, const void **buf)
{
    return pull_read(ctx, a, buf);
}

/* A path a snapshot may hold: relative, not empty, no ".." component. */
static int clean_path(const char *path)
{
    if (!*path || *path == '/')
        return 0;
    for (const char *c = path; c; c = strchr(c, '/')) {
        if (*c == '/')
            c++;
        if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || !c[2]))
            return 0;
    }
    return 1;
}

/* The stream's entries against MANIFEST.json, one for one: every entry the
 * manifest lists is in the stream with the same type (a regular file with
 * the same size and SHA-256, a symlink with the same target), none is
 * listed twice, and the stream holds nothing unlisted. */
static int check_manifest(json_t *seen, json_t *m, struct burry_err *e)
{
    json_t *files = json_object_get(m, "files");
    if (!json_is_array(files) || strcmp(json_string_value(json_object_get(m, "format")) ?: "", "bysu-snapshot"))
        return burry_errf(e, BURRY_EFAIL, "the snapshot's MANIFEST.json is not a bysu manifest");
    json_t *listed = json_object();
    size_t i;
    json_t *f;
    int rc = 0;
    if (!listed)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    json_array_foreach(files, i, f) {
        const char *path = json_string_value(json_object_get(f, "path")) ?: "";
        const char *type = json_string_value(json_object_get(f, "type")) ?: "";
        if (!clean_path(path)) {
            rc = burry_errf(e, BURRY_EFAIL, "the manifest lists a path that is absolute, empty or has '..': '%s'",
                            path);
            break;
        }
        if (json_object_get(listed, path)) {
            rc = burry_errf(e, BURRY_EFAIL, "the manifest lists '%s' twice", path);
            break;
        }
        json_object_set(listed, path, json_true());
        json_t *s = json_object_get(seen, path);
        if (!s) {
            rc = burry_errf(e, BURRY_EFAIL, "'%s' is in the manifest but not in the stream", path);
            break;
        }
        const char *got = json_string_value(json_object_get(s, "type"));
        if (strcmp(got, type)) {
            rc = burry_errf(e, BURRY_EFAIL, "'%s' is a %s in the stream but '%s' in the manifest", path, got, type);
            break;
        }
        if (!strcmp(type, "file") &&
            (strcmp(json_string_value(json_object_get(s, "sha256")), json_string_value(json_object_get(f, "sha256")) ?: "") ||
             json_integer_value(json_object_get(s, "size")) != json_integer_value(json_object_get(f, "size")))) {
            rc = burry_errf(e, BURRY_EFAIL, "checksum mismatch on '%s'", path);
            break;
        }
        if (!strcmp(type, "symlink") &&
            strcmp(json_string_value(json_object_get(s, "target")), json_string_value(json_object_get(f, "target")) ?: "")) {
            rc = burry_errf(e, BURRY_EFAIL, "the symlink '%s' points elsewhere than the manifest says", path);
            break;
        }
    }
    if (rc == 0 && json_object_size(listed) != json_object_size(seen)) {
        const char *path;
        json_t *v;
        json_object_foreach(seen, path, v)
            if (!json_object_get(listed, path)) {
                rc = burry_errf(e, BURRY_EFAIL, "'%s' is in the stream but not in the manifest", path);
                break;
            }
    }
    json_decref(listed);
    return rc;
}

/* Without the key the central side can only check the shape of what the
 * node encrypted: a complete age header (its "---" MAC line) followed by a
 * nonce and at least one sealed chunk. Authenticity is checked on
 * decryption. */
static int has_age_header(const struct pull *p)
{
    const unsigned char *h = p->head;
    for (size_t i = 0; i + 4 <= p->headlen; i++) {
        if ((i && h[i - 1] != '\n') || memcmp(h + i, "--- ", 4))
            continue;
        const unsigned char *nl = memchr(h + i, '\n', p->headlen - i);
        if (!nl)
            return 0;
        return p->raw >= (uint64_t)(nl - h) + 1 + 16 + 16;
    }
    return 0;
}

/* Read the entries of an opened tar into seen (path -> {type, and sha256
 * and size of a regular file, target of a symlink}) and parse
 * MANIFEST.json, which must come last.
 * BURRY_EFAIL with e left unset means the archive itself failed to read. */
static int read_entries(struct archive *a, json_t *seen, json_t **manifest, size_t *entries, struct burry_err *e)
{
    struct archive_entry *en;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *mtext = NULL, *path = NULL;
    int rc = 0, r;
    if (!md)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    while ((r = archive_read_next_header(a, &en)) == ARCHIVE_OK) {
        /* a directory's name as tar writes it, "a/b/", is "a/b" in the manifest */
        free(path);
        if (!(path = strdup(archive_entry_pathname(en) ?: ""))) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            goto out;
        }
        size_t pl = strlen(path);
        while (pl > 1 && path[pl - 1] == '/' && archive_entry_filetype(en) == AE_IFDIR)
            path[--pl] = 0;
        if (*manifest) {
            rc = burry_errf(e, BURRY_EFAIL, "entry '%s' follows MANIFEST.json", path);
            goto out;
        }
        (*entries)++;
        if (!clean_path(path)) {
            rc = burry_errf(e, BURRY_EFAIL, "the stream holds a path that is absolute, empty or has '..': '%s'", path);
            goto out;
        }
        if (json_object_get(seen, path)) {
            rc = burry_errf(e, BURRY_EFAIL, "the stream holds '%s' twice", path);
            goto out;
        }
        int is_manifest = !strcmp(path, "MANIFEST.json");
        const char *type = archive_entry_hardlink(en)                ? NULL
                           : archive_entry_filetype(en) == AE_IFREG ? "file"
                           : archive_entry_filetype(en) == AE_IFDIR ? "dir"
                           : archive_entry_filetype(en) == AE_IFLNK ? "symlink"
                                                                    : NULL;
        if (!type || (is_manifest && strcmp(type, "file"))) {
            rc = burry_errf(e, BURRY_EFAIL, "the stream holds '%s', a %s, which a snapshot never holds", path,
                            archive_entry_hardlink(en) ? "hard link" : "special file");
            goto out;
        }
        if (strcmp(type, "file")) {
            const char *target = archive_entry_symlink(en);
            json_object_set_new(seen, path, target ? json_pack("{s:s,s:s}", "type", type, "target", target)
                                                   : json_pack("{s:s}", "type", type));
            continue;
        }
        if (is_manifest && archive_entry_size(en) > (1 << 26)) {
            rc = burry_errf(e, BURRY_EFAIL, "MANIFEST.json is too large");
            goto out;
        }
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        size_t mlen = 0;
        if (is_manifest)
            mtext = malloc((size_t)archive_entry_size(en) + 1);
        la_int64_t size = 0;
        for (;;) {
            const void *b;
            size_t len;
            la_int64_t off;
            r = archive_read_data_block(a, &b, &len, &off);
            if (r == ARCHIVE_EOF)
                break;
            if (r != ARCHIVE_OK) {
                rc = BURRY_EFAIL;
                goto out;
            }
            EVP_DigestUpdate(md, b, len);
            size += (la_int64_t)len;
            if (mtext && mlen + len <= (size_t)archive_entry_size(en)) {
                memcpy(mtext + mlen, b, len);
                mlen += len;
            }
        }
        char hex[65];
        sha256_final_hex(md, hex);
        if (is_manifest) {
            json_error_t je;
            *manifest = mtext ? json_loadb(mtext, mlen, 0, &je) : NULL;
            if (!*manifest) {
                rc = burry_errf(e, BURRY_EFAIL, "the snapshot's MANIFEST.json does not parse");
                goto out;
            }
        } else {
            json_object_set_new(seen, path, json_pack("{s:s,s:s,s:I}", "type", "file", "sha256", hex, "size", (json_int_t)size));
        }
    }
    if (r != ARCHIVE_EOF) {
        rc = BURRY_EFAIL;
        goto out;
    }
    if (!*manifest)
        rc = burry_errf(e, BURRY_EFAIL, "the stream ended without MANIFEST.json");
out:
    free(path);
    free(mtext);
    EVP_MD_CTX_free(md);
    return rc;
}

int bysu_check_snapshot(const void *tar, size_t len, json_t **manifest, struct burry_err *e)
{
    struct archive *a = archive_read_new();
    json_t *seen = json_object(), *m = NULL;
    size_t entries = 0;
    int rc;
    if (!a || !seen) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, tar, len) != ARCHIVE_OK) {
        rc = burry_errf(e, BURRY_EFAIL, "not a tar (%s)", archive_error_string(a) ?: "empty");
        goto out;
    }
    rc = read_entries(a, seen, &m, &entries, e);
    if (rc < 0 && !e->code)
        burry_errf(e, BURRY_EFAIL, "the tar is damaged (%s)", archive_error_string(a) ?: "unknown error");
    if (rc == 0)
        rc = check_manifest(seen, m, e);
    if (rc == 0 && manifest) {
        *manifest = m;
        m = NULL; /* transferred */
    }
out:
    archive_read_free(a);
    json_decref(seen);
    json_decref(m);
    return rc;
}

/* Parse the tar while it streams, hashing each regular file. */
static int read_stream(struct pull *p, json_t *seen, json_t **manifest, size_t *entries, struct burry_err *e)
{
    struct archive *a = archive_read_new();
    int rc;
    archive_read_support_format_tar(a);
    if (archive_read_open(a, p, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
        rc = burry_errf(e, BURRY_EFAIL, "the node sent no snapshot (%s)", archive_error_string(a) ?: "empty stream");
        archive_read_free(a);
        return rc;
    }
    rc = read_entries(a, seen, manifest, entries, e);
    if (rc < 0 && !(p->timed_out || p->interrupted || e->code))
        burry_errf(e, BURRY_EFAIL, "the snapshot stream is damaged (%s)", archive_error_string(a) ?: "unknown error");
    archive_read_free(a);
    return rc;
}

/* The ciphers bysu prefers: AES-GCM, which CPUs with AES instructions
 * (x86's AES-NI, ARMv8's crypto extensions) run several times faster than
 * OpenSSH's first choice, chacha20-poly1305, on both ends of a long pull. */
static const char *const fast_ciphers[] = {"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"};
#define NFAST (sizeof fast_ciphers / sizeof *fast_ciphers)

/* Whether the comma-separated list holds name. */
static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
            return 1;
    return 0;
}

static int wait_until(pid_t pid, double deadline, int *ws);

/* The "ciphers" line of `ssh -G` for dest: what ssh's own configuration
 * allows, in its order. 0 with list filled, or -1 (no such line, ssh failed
 * or took more than 10 seconds). */
static int ssh_config_ciphers(const char *port, const char *dest, char *list, size_t len)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    const char *argv[] = {"ssh", "-G", "-p", port, "--", dest, NULL};
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]), close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0)
            dup2(nul, 0), dup2(nul, 2);
        dup2(pfd[1], 1);
        execvp("ssh", (char **)argv);
        _exit(127);
    }
    close(pfd[1]);
    char out[16384];
    size_t got = 0;
    double deadline = now_s() + 10;
    for (;;) {
        struct pollfd q = {.fd = pfd[0], .events = POLLIN};
        double left = deadline - now_s();
        if (left <= 0 || burry_interrupted)
            break;
        int ready = poll(&q, 1, (int)(left * 1000) + 1);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready <= 0)
            continue; /* the deadline or the flag, checked above */
        ssize_t n = read(pfd[0], out + got, sizeof out - 1 - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof out - 1)
            break;
    }
    close(pfd[0]);
    out[got] = 0;
    int ws = 0;
    if (wait_until(pid, now_s() + 1, &ws) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, &ws, 0);
        return -1;
    }
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        return -1;
    const char *l = !strncmp(out, "ciphers ", 8) ? out : strstr(out, "\nciphers ");
    if (!l)
        return -1;
    l += *l == '\n' ? 9 : 8;
    size_t n = strcspn(l, "\r\n ");
    if (!n || n >= len)
        return -1;
    memcpy(list, l, n);
    list[n] = 0;
    return 0;
}

/* The -o Ciphers= option for node n into opt, or "" to pass none: the
 * configured list as it is; nothing for "default"; else the list ssh's own
 * configuration allows with the AES-GCM ciphers it holds moved to the front.
 * That prefers them without enabling anything the configuration left out. */
static void ssh_ciphers(const struct bysu_node *n, const char *port, const char *dest, char *opt, size_t len)
{
    opt[0] = 0;
    if (n->ciphers) {
        if (strcmp(n->ciphers, "default"))
            snprintf(opt, len, "Ciphers=%s", n->ciphers);
        return;
    }
    char allowed[2048];
    if (ssh_config_ciphers(port, dest, allowed, sizeof allowed) < 0)
        return;
    char front[256] = "", rest[2048] = "";
    for (size_t i = 0; i < NFAST; i++)
        if (in_list(allowed, fast_ciphers[i]))
            snprintf(front + strlen(front), sizeof front - strlen(front), "%s%s", front[0] ? "," : "", fast_ciphers[i]);
    char *save = NULL;
    for (char *c = strtok_r(allowed, ",", &save); c; c = strtok_r(NULL, ",", &save))
        if (!in_list(front, c))
            snprintf(rest + strlen(rest), sizeof rest - strlen(rest), ",%s", c);
    if (front[0])
        snprintf(opt, len, "Ciphers=%s%s", front, rest);
}

/* The allocator of the ssh that pulls a snapshot. When the pipe to bysu is
 * momentarily full, ssh's channel buffers grow past glibc's mmap threshold
 * (128 KiB), so each is mapped, written page by page and unmapped again:
 * one page fault per 2.6 KiB received and 60% of ssh's kernel time (20 jobs
 * of 50 MB, twice, in bench/bysu.sh: 816,000 faults and 3.1 s, against
 * 37,000 and 1.4 s for an ssh writing to a file). Buffers of up to 4 MiB
 * from the heap, and up to 8 MiB of free heap kept, bring that to 114,000
 * faults and 1.2 s (whole bysu run: CPU -11%, wall -6%), for about 6 MiB
 * more at ssh's peak (20 MiB, not 14). Only for this ssh, only when the
 * environment has no GLIBC_TUNABLES of its own (the operator's wins), and
 * ignored by other C libraries. */
#define SSH_TUNABLES "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=8388608"

/* The environment for that ssh: a copy of ours with SSH_TUNABLES added
 * (free the array, not its strings), or NULL for ours as it is. */
static char **ssh_environ(void)
{
    if (getenv("GLIBC_TUNABLES"))
        return NULL;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    memcpy(env, environ, n * sizeof *env);
    env[n] = (char *)SSH_TUNABLES;
    env[n + 1] = NULL;
    return env;
}

static pid_t spawn_ssh(const struct bysu_node *n, const char *snapshot, int timeout, int *out_fd,
                       int err_fd, struct burry_err *e)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return burry_errf(e, BURRY_EFAIL, "cannot create a pipe (%s)", strerror(errno));
    char port[16], kh[PATH_MAX + 32], cto[48], dest[512], cmd[512];
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(kh, sizeof kh, "UserKnownHostsFile=%s", n->known_hosts ? n->known_hosts : "~/.ssh/known_hosts");
    snprintf(cto, sizeof cto, "ConnectTimeout=%d", timeout < 30 ? timeout : 30);
    snprintf(dest, sizeof dest, "%s%s%s", n->user ? n->user : "", n->user ? "@" : "", n->host);
    snprintf(cmd, sizeof cmd, "snapshot %s", snapshot);
    char ciphers[2100];
    ssh_ciphers(n, port, dest, ciphers, sizeof ciphers);
    const char *argv[32];
    int k = 0;
    argv[k++] = "ssh";
    argv[k++] = "-n";
    argv[k++] = "-p";
    argv[k++] = port;
    if (n->identity) {
        argv[k++] = "-i";
        argv[k++] = n->identity;
        argv[k++] = "-o";
        argv[k++] = "IdentitiesOnly=yes";
    }
    argv[k++] = "-o";
    argv[k++] = kh;
    argv[k++] = "-o";
    argv[k++] = "StrictHostKeyChecking=yes";
    argv[k++] = "-o";
    argv[k++] = "BatchMode=yes";
    argv[k++] = "-o";
    argv[k++] = cto;
    if (ciphers[0]) {
        argv[k++] = "-o";
        argv[k++] = ciphers;
    }
    argv[k++] = "--";
    argv[k++] = dest;
    argv[k++] = cmd;
    argv[k] = NULL;
    char **env = ssh_environ(); /* environ: unistd.h, with _GNU_SOURCE */
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        close(pfd[0]), close(pfd[1]);
        return burry_errf(e, BURRY_EFAIL, "cannot fork (%s)", strerror(errno));
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(err_fd, 2);
        execvpe("ssh", (char **)argv, env ? env : environ);
        _exit(127);
    }
    free(env);
    close(pfd[1]);
    /* a pipe of 64 KiB makes ssh write in small pieces and loop far more often */
    (void)fcntl(pfd[0], F_SETPIPE_SZ, PIPE_SIZE);
    *out_fd = pfd[0];
    return pid;
}

/* The first line of what ssh (and the agent) said on standard error. */
static void ssh_message(int fd, char *msg, size_t len)
{
    char buf[1024];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    msg[0] = 0;
    if (n <= 0)
        return;
    buf[n] = 0;
    /* skip ssh's own chatter about known hosts */
    char *line = buf, *best = NULL;
    for (char *save = NULL, *l = strtok_r(line, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
        if (!strncmp(l, "Warning: Permanently added", 26))
            continue;
        if (!best || !strncmp(l, "bysu agent:", 11))
            best = l;
        if (!strncmp(l, "bysu agent:", 11))
            break;
    }
    if (best)
        snprintf(msg, len, "%s", best);
}

/* Wait for pid to exit, until deadline: 1 when it did (*ws set), 0 when the
 * deadline came first, -1 when interrupted. */
static int wait_until(pid_t pid, double deadline, int *ws)
{
    int pfd = pidfd_open(pid, 0), r;
    for (;;) {
        pid_t w = waitpid(pid, ws, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) {
            if (w < 0)
                *ws = 255 << 8; /* cannot be: ssh is our child */
            r = 1;
            break;
        }
        if (burry_interrupted) {
            r = -1;
            break;
        }
        double left = deadline - now_s();
        if (left <= 0) {
            r = 0;
            break;
        }
        struct pollfd q = {.fd = pfd, .events = POLLIN};
        (void)poll(&q, 1, pfd >= 0 && left < 0.25 ? (int)(left * 1000) + 1 : pfd >= 0 ? 250 : 20);
    }
    if (pfd >= 0)
        close(pfd);
    return r;
}

static int pull_node(const struct burry_opts *o, const struct bysu_conf *c, const struct bysu_job *j,
                     json_t *res, struct burry_err *e)
{
    const struct bysu_node *n = conf_node(c, j->node);
    struct store *st = NULL;
    struct pull p = {.fd = -1, .e = e};
    json_t *seen = json_object(), *manifest = NULL;
    char id[32], created[40], *akey = NULL, *mkey = NULL, *text = NULL;
    int rc, errfd = -1, archive_published = 0;
    pid_t ssh = -1;
    size_t entries = 0;

    if ((rc = catalog_open_store(c->repo_url, o, &p.ops, &st, e)) < 0)
        goto out;
    /* before ssh, which has the node run the snapshot: a repository that
     * cannot take it fails the job here (for an object store this is the
     * bucket check that the archive's put would make anyway) */
    if ((rc = catalog_check_put(p.ops, st, j->name, e)) < 0)
        goto out;
    char tmpl[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/bysu-ssh.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if ((errfd = mkstemp(tmpl)) < 0) {
        rc = burry_errf(e, BURRY_EFAIL, "cannot create a temporary file (%s)", strerror(errno));
        goto out;
    }
    unlink(tmpl);

    /* the first bytes tell a tar from an age file the node encrypted */
    p.deadline = now_s() + j->timeout;
    if ((ssh = spawn_ssh(n, j->snapshot, j->timeout, &p.fd, errfd, e)) < 0) {
        rc = BURRY_EFAIL;
        goto out;
    }
    if (ring_start(&p.ring, p.fd) < 0) {
        rc = burry_errf(e, BURRY_EFAIL, "cannot start reading from ssh (out of memory or threads)");
        goto out;
    }
    int head_failed = 0;
    {
        struct archive *dummy = archive_read_new();
        const void *h;
        size_t hlen = 0;
        head_failed = pull_peek(&p, 64, &h, &hlen, dummy) < 0;
        p.node_enc = !head_failed && age_is_age(h, hlen);
        archive_read_free(dummy);
    }

    const char *suffix = p.node_enc                            ? ".tar.age"
                         : j->compress == BYSU_COMPRESS_NONE ? (j->npks ? ".tar.age" : ".tar")
                                                             : (j->npks ? ".tar.zst.age" : ".tar.zst");
    if ((rc = catalog_put_new(p.ops, st, j->name, suffix, id, created, &akey, &p.put, e)) < 0)
        goto out;
    p.zmd = EVP_MD_CTX_new();
    if (!p.zmd || EVP_DigestInit_ex(p.zmd, EVP_sha256(), NULL) != 1) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    if (!p.node_enc) {
        if (j->npks && !(p.age = age_enc_new((const unsigned char (*)[32])j->pks, j->npks, store_raw, &p, e))) {
            rc = BURRY_EFAIL;
            goto out;
        }
    }
    if (!p.node_enc && j->compress == BYSU_COMPRESS_ZSTD) {
        p.z = archive_write_new();
        if (!p.z || archive_write_add_filter_zstd(p.z) != ARCHIVE_OK ||
            archive_write_set_filter_option(p.z, "zstd", "compression-level", PULL_ZSTD_LEVEL) != ARCHIVE_OK ||
            archive_write_set_format_raw(p.z) != ARCHIVE_OK ||
            archive_write_set_bytes_per_block(p.z, PULL_READ) != ARCHIVE_OK ||
            archive_write_set_bytes_in_last_block(p.z, 1) != ARCHIVE_OK ||
            archive_write_open(p.z, &p, NULL, z_write, NULL) != ARCHIVE_OK) {
            rc = burry_errf(e, BURRY_EFAIL, "cannot set up zstd compression (%s)",
                            p.z ? archive_error_string(p.z) ?: "unknown error" : "out of memory");
            goto out;
        }
        struct archive_entry *ze = archive_entry_new();
        archive_entry_set_pathname(ze, "snapshot.tar");
        archive_entry_set_filetype(ze, AE_IFREG);
        archive_entry_set_perm(ze, 0600);
        int hr = archive_write_header(p.z, ze);
        archive_entry_free(ze);
        if (hr != ARCHIVE_OK) {
            rc = burry_errf(e, BURRY_EFAIL, "cannot start the compressed archive (%s)", archive_error_string(p.z) ?: "");
            goto out;
        }
    }

    blog(&o->log, BLOG_INFO, "pulling snapshot '%s' from node '%s' as '%s'%s", j->snapshot, n->name, akey,
         p.node_enc ? " (encrypted by the node)" : "");
    if (head_failed)
        rc = BURRY_EFAIL;
    else if (p.node_enc)
        rc = 0; /* unreadable here: stored as received, authenticated when decrypted */
    else
        rc = read_stream(&p, seen, &manifest, &entries, e);
    /* the rest of the stream (tar padding) belongs to the archive too */
    if (rc == 0) {
        struct archive *dummy = archive_read_new();
        const void *b;
        ssize_t r;
        while ((r = pull_read(&p, dummy, &b)) > 0)
            ;
        if (r < 0)
            rc = BURRY_EFAIL;
        archive_read_free(dummy);
    }
    /* Whether the node ended the stream itself: then a failure to read it
     * is better told by ssh's status and the agent's message. */
    pthread_mutex_lock(&p.ring.mu);
    int stream_ended = p.ring.eof;
    pthread_mutex_unlock(&p.ring.mu);
    /* ssh's exit status; a killed ssh also ends the reader thread's stream */
    if (rc < 0)
        kill(ssh, SIGTERM);
    ring_free(&p.ring);
    close(p.fd);
    p.fd = -1;
    int ws = 0;
    if (rc == 0) {
        /* The whole stream is in, so ssh ends now; should it not, the job's
         * deadline still holds. */
        int r = wait_until(ssh, p.deadline, &ws);
        if (r <= 0) {
            p.timed_out = r == 0;
            p.interrupted = r < 0;
            kill(ssh, SIGTERM);
            while (waitpid(ssh, &ws, 0) < 0 && errno == EINTR)
                ;
        }
    } else {
        while (waitpid(ssh, &ws, 0) < 0 && errno == EINTR)
            ;
    }
    ssh = -1;
    char said[512];
    ssh_message(errfd, said, sizeof said);
    if (p.timed_out) {
        burry_err_clear(e);
        rc = burry_errf(e, BURRY_EFAIL, "timed out after %d s", j->timeout);
        goto out;
    }
    int status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    /* a stop signal (systemd's goes to ssh too) ended the stream or ssh:
     * that is the reason, not ssh's status */
    if (p.interrupted || (burry_interrupted && (rc < 0 || status))) {
        burry_err_clear(e);
        rc = burry_errf(e, BURRY_EINTR, "interrupted");
        goto out;
    }
    /* a stream rejected here got ssh killed: its status says nothing then */
    if (status && !(rc < 0 && e->code && !stream_ended)) {
        burry_err_clear(e);
        rc = burry_errf(e, BURRY_EFAIL, "ssh to node '%s' exited with status %d%s%s", n->name, status,
                        said[0] ? ": " : "", said);
        goto out;
    }
    if (rc < 0) {
        if (head_failed && !e->code)
            burry_errf(e, BURRY_EFAIL, "cannot read the snapshot stream from node '%s'", n->name);
        goto out;
    }
    if (p.node_enc) {
        if (!has_age_header(&p)) {
            rc = burry_errf(e, BURRY_EFAIL, "node '%s' sent an incomplete age file (%llu bytes)", n->name,
                            (unsigned long long)p.raw);
            goto out;
        }
    } else {
        if ((rc = check_manifest(seen, manifest, e)) < 0)
            goto out;
        if (p.z && archive_write_close(p.z) != ARCHIVE_OK) {
            rc = burry_errf(e, BURRY_EFAIL, "cannot finish the compressed archive (%s)",
                            archive_error_string(p.z) ?: "");
            goto out;
        }
        if (p.age && (rc = age_enc_finish(p.age, e)) < 0)
            goto out;
    }
    if ((rc = catalog_put_commit(p.ops, st, p.put, e)) < 0) {
        p.put = NULL;
        archive_published = rc == BURRY_EINTR; /* cut short: it may have landed all the same */
        goto out;
    }
    p.put = NULL;
    archive_published = 1;

    char sha[65];
    sha256_final_hex(p.zmd, sha);
    json_t *side;
    if (p.node_enc || p.age) /* readable without the key: only what listing and pruning need */
        side = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s*,s:{s:s,s:I,s:s}}", "snapshot", id, "name", j->name, "service", "bysu", "created", created,
                         "encryption", "age", "encrypted_by", p.node_enc ? "node" : NULL, "archive", "key",
                         strrchr(akey, '/') + 1, "size", (json_int_t)p.zsize, "sha256", sha);
    else
        side = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O?,s:O?,s:I,s:I,s:{s:s,s:I,s:s}}",
                             "snapshot", id, "name", j->name, "service", "bysu", "node", n->name,
                             "source", j->snapshot, "created", created,
                             "host", json_object_get(manifest, "host"), "command", json_object_get(manifest, "command"),
                             "files", (json_int_t)entries, "bytes", (json_int_t)p.raw,
                             "archive", "key", strrchr(akey, '/') + 1, "size", (json_int_t)p.zsize, "sha256", sha);
    text = side ? json_dumps(side, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(side);
    if (!text || asprintf(&mkey, "%s/%s%s", j->name, id, CATALOG_MANIFEST_SUFFIX) < 0) {
        mkey = NULL;
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    if ((rc = catalog_put_text(p.ops, st, mkey, text, e)) < 0)
        goto out;
    archive_published = 0;
    json_object_set_new(res, "snapshot", json_string(id));
    json_object_set_new(res, "bytes", json_integer((json_int_t)p.raw));
    rc = 0;
out:
    if (ssh > 0)
        kill(ssh, SIGTERM);
    ring_free(&p.ring);
    if (ssh > 0)
        waitpid(ssh, NULL, 0);
    if (p.fd >= 0)
        close(p.fd);
    archive_write_free(p.z); /* may flush into p.put, so before the abort */
    p.z = NULL;
    age_enc_free(p.age);
    if (p.put)
        p.ops->put_abort(p.put);
    if (archive_published) {
        /* an archive without its sidecar is not a snapshot, and never
         * pruned: it goes, interrupted or not */
        struct burry_err e2 = {0};
        if (catalog_remove_anyway(p.ops, st, akey, &e2) < 0)
            blog(&o->log, BLOG_WARN, "the archive '%s' stays without its sidecar: %s", akey, e2.msg);
    }
    EVP_MD_CTX_free(p.zmd);
    if (errfd >= 0)
        close(errfd);
    if (st)
        p.ops->close(st);
    json_decref(seen);
    json_decref(manifest);
    free(akey);
    free(mkey);
    free(text);
    return rc;
}

/* ---- the run ---- */

static int run_job(const struct burry_opts *o, const struct bysu_conf *c, const struct bysu_job *j,
                   json_t *res, struct burry_err *e)
{
    int rc;
    if (j->source) {
        struct burry_opts jo = *o;
        json_t *out = NULL;
        if (jo.timeout_s <= 0 || jo.timeout_s > j->timeout)
            jo.timeout_s = j->timeout;
        jo.recipients = j->pks; /* the job's; never freed through jo */
        jo.nrecipients = j->npks;
        rc = burry_backup(&jo, j->source, c->repo_url, j->name, &out, e);
        if (rc == 0) {
            json_object_set(res, "snapshot", json_object_get(out, "snapshot"));
            json_object_set(res, "bytes", json_object_get(out, "bytes"));
        }
        json_decref(out);
    } else {
        rc = pull_node(o, c, j, res, e);
    }
    if (rc < 0)
        return rc;
    if (burry_interrupted) {
        /* the interrupt came while the sidecar was being written, which was
         * let to finish: the snapshot is published; pruning waits */
        json_object_set_new(res, "message", json_string("stored; interrupted before pruning"));
        return 0;
    }
    json_t *pr = NULL;
    rc = burry_prune(o, c->repo_url, j->name, j->keep, 0, json_string_value(json_object_get(res, "snapshot")), &pr, e);
    if (rc == BURRY_EINTR) {
        /* the snapshot is published: the next run prunes */
        json_decref(pr);
        json_object_set_new(res, "message", json_string("stored; interrupted while pruning"));
        return 0;
    }
    if (rc < 0)
        burry_err_prefix(e, "snapshot stored, but pruning failed");
    else
        json_object_set_new(res, "pruned", json_integer((json_int_t)json_array_size(json_object_get(pr, "deleted"))));
    json_decref(pr);
    return rc;
}

static void on_term(int sig)
{
    (void)sig;
    burry_interrupted = 1;
}

/* Replace with '?' every byte of s that is not part of valid UTF-8 (what a
 * node's command printed in Latin-1, a character cut by a length limit):
 * JSON strings hold only UTF-8, and jansson takes nothing else. */
static void utf8_clean(char *s)
{
    static const unsigned least[] = {0, 0, 0x80, 0x800, 0x10000};
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        unsigned cp = n == 1 ? *p : n == 2 ? *p & 0x1fu : n == 3 ? *p & 0x0fu : *p & 0x07u;
        int i = 1;
        for (; i < n && (p[i] & 0xc0) == 0x80; i++) /* stops at the NUL too */
            cp = cp << 6 | (p[i] & 0x3fu);
        if (!n || i < n || cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* The worker: runs one job and writes its result as one JSON document to
 * fd (small enough to fit in the pipe, read after the worker exits). */
static void worker(const struct burry_opts *o, const struct bysu_conf *c, const struct bysu_job *j, int fd,
                   pid_t parent)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a killed run takes its workers along */
    if (getppid() != parent)
        _exit(3);
    struct burry_err e = {0};
    json_t *res = json_object();
    int rc = run_job(o, c, j, res, &e);
    utf8_clean(e.msg);
    json_object_set_new(res, "result", json_string(rc == 0 ? "ok" : "failed"));
    if (rc < 0 || !json_object_get(res, "message"))
        json_object_set_new(res, "message", json_string(rc == 0 ? "" : e.msg));
    char *text = json_dumps(res, JSON_COMPACT);
    if (text) {
        size_t len = strlen(text);
        if (len > 3800) /* keep it one atomic pipe write */
            len = 3800;
        if (write(fd, text, len) < 0)
            _exit(4);
    }
    _exit(rc == 0 ? 0 : 1);
}

struct slot {
    pid_t pid;
    int fd, idx, termed;
    int late; /* termed because it overran its timeout, not for an interrupt */
    double start;
};

/* The lock: next to a directory repository, else next to the config. */
static int take_lock(const struct bysu_conf *c, int *fd, struct burry_err *e)
{
    char path[PATH_MAX];
    const char *u = c->repo_url;
    if (!strncmp(u, "file://", 7))
        u += 7;
    if (!strstr(u, "://")) {
        mkdir(u, 0700);
        snprintf(path, sizeof path, "%s/.bysu.lock", u);
    } else {
        snprintf(path, sizeof path, "%s.lock", c->path);
    }
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return burry_errf(e, BURRY_EFAIL, "cannot open the lock file '%s' (%s)", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        close(*fd);
        *fd = -1;
        return burry_errf(e, BURRY_EFAIL, "another bysu run holds the lock '%s'", path);
    }
    return 0;
}

/* "last_success" for every job of a run's report: now for a job that
 * succeeded, the time of its newest published snapshot for one that failed
 * (left out when it has none, or the repository cannot be read). */
static void add_last_success(const struct burry_opts *o, const struct bysu_conf *c, json_t *jobs)
{
    const struct store_ops *ops = NULL;
    struct store *st = NULL;
    double now = (double)time(NULL);
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        if (!strcmp(json_string_value(json_object_get(j, "result")) ?: "", "ok")) {
            json_object_set_new(j, "last_success", json_real(now));
            continue;
        }
        struct burry_err e2 = {0};
        json_t *m = NULL;
        if (!st && catalog_open_store(c->repo_url, o, &ops, &st, &e2) < 0) {
            blog(&o->log, BLOG_WARN, "cannot read the repository for the last successes: %s", e2.msg);
            break;
        }
        const char *name = json_string_value(json_object_get(j, "job"));
        /* a read only, wanted most after an interrupted run: not cut short by
         * the interrupt (a second one still stops it) */
        int was = burry_hold_interrupt();
        int r = catalog_resolve(ops, st, "latest", name, &m, &e2);
        burry_resume_interrupt(was);
        if (r == 0) {
            double t = catalog_id_time(json_string_value(json_object_get(m, "snapshot")));
            if (t > 0)
                json_object_set_new(j, "last_success", json_real(t));
        } else if (e2.code != BURRY_ENOENT) {
            /* the repository failing (an error of its own for one job would
             * be ENOENT): once, not again for every job that follows */
            blog(&o->log, BLOG_WARN, "cannot read the repository for the last successes (from job '%s' on): %s",
                 name, e2.msg);
            json_decref(m);
            break;
        }
        json_decref(m);
    }
    if (st)
        ops->close(st);
}

int bysu_run(const struct burry_opts *o, const struct bysu_conf *c, char **names, int nnames,
             int parallel, json_t **out, struct burry_err *e)
{
    const struct bysu_job *sel[BYSU_MAX_ITEMS];
    int nsel = 0, lock = -1, rc;
    if (nnames > BYSU_MAX_ITEMS)
        return burry_errf(e, BURRY_EUSAGE, "too many jobs named");
    for (int i = 0; i < nnames; i++) {
        /* two workers for one job would each prune the other's snapshot */
        for (int k = 0; k < i; k++)
            if (!strcmp(names[k], names[i]))
                return burry_errf(e, BURRY_EUSAGE, "job '%s' is named twice", names[i]);
        if (!(sel[nsel++] = bysu_conf_job(c, names[i], e)))
            return BURRY_EUSAGE;
    }
    if (!nnames)
        for (int i = 0; i < c->njobs; i++)
            sel[nsel++] = &c->jobs[i];
    if (parallel < 1)
        parallel = 1;
    if ((rc = take_lock(c, &lock, e)) < 0)
        return rc;

    json_t **results = calloc((size_t)(nsel ? nsel : 1), sizeof *results);
    struct slot *slots = calloc((size_t)parallel, sizeof *slots);
    if (!results || !slots) {
        free(results), free(slots), close(lock);
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    }
    int next = 0, running = 0, failed = 0;
    pid_t self = getpid();
    while (next < nsel || running) {
        /* start jobs while there is room */
        while (burry_interrupted && next < nsel) {
            results[next] = json_pack("{s:s,s:s}", "result", "not run", "message", "interrupted before it started");
            next++;
        }
        for (int s = 0; s < parallel && next < nsel; s++) {
            if (slots[s].pid)
                continue;
            int pfd[2];
            if (pipe2(pfd, O_CLOEXEC) < 0) {
                results[next] = json_pack("{s:s,s:s}", "result", "failed", "message", "cannot create a pipe");
                next++;
                continue;
            }
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                close(pfd[0]);
                close(lock);
                setpgid(0, 0);
                worker(o, c, sel[next], pfd[1], self);
            }
            close(pfd[1]);
            if (pid < 0) {
                close(pfd[0]);
                results[next] = json_pack("{s:s,s:s}", "result", "failed", "message", "cannot fork");
                next++;
                continue;
            }
            blog(&o->log, BLOG_DEBUG, "job '%s' started", sel[next]->name);
            slots[s] = (struct slot){.pid = pid, .fd = pfd[0], .idx = next, .start = now_s()};
            next++;
            running++;
        }
        /* reap finished workers; stop overdue ones (a worker enforces its own
         * timeout on the ssh stream; this is the backstop for the rest) */
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid <= 0) {
            for (int s = 0; s < parallel; s++) {
                if (!slots[s].pid)
                    continue;
                double age = now_s() - slots[s].start;
                int limit = sel[slots[s].idx]->timeout;
                if (age > limit + 2 && !slots[s].termed) {
                    kill(slots[s].pid, SIGTERM);
                    slots[s].termed = 1;
                    slots[s].late = 1;
                } else if (age > limit + 10) {
                    kill(-slots[s].pid, SIGKILL);
                }
            }
            if (burry_interrupted)
                for (int s = 0; s < parallel; s++)
                    if (slots[s].pid && !slots[s].termed) {
                        kill(slots[s].pid, SIGTERM);
                        slots[s].termed = 1;
                    }
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        for (int s = 0; s < parallel; s++) {
            if (slots[s].pid != pid)
                continue;
            const struct bysu_job *j = sel[slots[s].idx];
            char buf[4096];
            ssize_t n = read(slots[s].fd, buf, sizeof buf - 1);
            json_t *r = n > 0 ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
            char msg[128];
            if (slots[s].late)
                snprintf(msg, sizeof msg, "timed out after %d s", j->timeout);
            else if (slots[s].termed)
                snprintf(msg, sizeof msg, "interrupted");
            else
                snprintf(msg, sizeof msg, "the worker died (%s %d)", WIFSIGNALED(ws) ? "signal" : "status",
                         WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
            if (!r)
                r = json_pack("{s:s,s:s}", "result", "failed", "message", msg);
            else if (slots[s].late && strcmp(json_string_value(json_object_get(r, "result")) ?: "", "ok"))
                /* stopped by the backstop: its own account is only of the SIGTERM */
                json_object_set_new(r, "message", json_string(msg));
            json_object_set_new(r, "seconds", json_real(now_s() - slots[s].start));
            results[slots[s].idx] = r;
            close(slots[s].fd);
            slots[s] = (struct slot){0};
            running--;
        }
    }
    json_t *arr = json_array();
    for (int i = 0; i < nsel; i++) {
        json_t *r = results[i];
        json_object_set_new(r, "job", json_string(sel[i]->name));
        if (!json_object_get(r, "bytes"))
            json_object_set_new(r, "bytes", json_integer(0));
        if (!json_object_get(r, "seconds"))
            json_object_set_new(r, "seconds", json_real(0));
        if (strcmp(json_string_value(json_object_get(r, "result")), "ok"))
            failed++;
        json_array_append_new(arr, r);
    }
    add_last_success(o, c, arr);
    *out = json_pack("{s:o,s:i}", "jobs", arr, "failed", failed);
    free(results);
    free(slots);
    close(lock);
    return 0;
}

int bysu_write_metrics(const json_t *report, const char *path, struct burry_err *e)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* 0644 whatever the umask (the unit's is 0077): node_exporter's textfile
     * collector reads it as another user */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *f = fd < 0 || fchmod(fd, 0644) < 0 ? NULL : fdopen(fd, "w");
    if (!f) {
        int err = errno;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return burry_errf(e, BURRY_EFAIL, "cannot write '%s' (%s)", tmp, strerror(err));
    }
    static const char *const help[][2] = {
        {"bysu_job_success", "1 if the job's last run succeeded"},
        {"bysu_job_duration_seconds", "duration of the job's last run"},
        {"bysu_job_bytes", "uncompressed bytes of the job's last snapshot"},
        {"bysu_job_last_success_timestamp_seconds",
         "unix time of the job's last success (this run's, else its newest snapshot's)"},
    };
    size_t i;
    json_t *j;
    for (size_t m = 0; m < 4; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", help[m][0], help[m][1], help[m][0]);
        json_array_foreach(json_object_get(report, "jobs"), i, j) {
            const char *name = json_string_value(json_object_get(j, "job"));
            int ok = !strcmp(json_string_value(json_object_get(j, "result")) ?: "", "ok");
            json_t *last = json_object_get(j, "last_success");
            double v = m == 0 ? ok
                       : m == 1 ? json_number_value(json_object_get(j, "seconds"))
                       : m == 2 ? (double)json_integer_value(json_object_get(j, "bytes"))
                                : json_number_value(last);
            if (m == 3 && !json_is_number(last))
                continue; /* never succeeded: no sample rather than a zero */
            fprintf(f, "%s{job=\"%s\"} %.3f\n", help[m][0], name, v);
        }
    }
    /* on disk before the rename, so a crash leaves the old file or the new one */
    int bad = fflush(f) != 0 || fsync(fileno(f)) < 0;
    if (fclose(f) != 0 || bad || rename(tmp, path) < 0) {
        unlink(tmp);
        return burry_errf(e, BURRY_EFAIL, "cannot write '%s' (%s)", path, strerror(errno));
    }
    return 0;
}

struct get_src {
    const struct store_ops *ops;
    struct store_get *g;
    EVP_MD_CTX *md;
    uint64_t size;
};

/* The stored bytes, hashed as they are read. */
static ssize_t get_raw(void *ctx, void *buf, size_t len, struct burry_err *e)
{
    struct get_src *s = ctx;
    ssize_t n = s->ops->get_read(s->g, buf, len, e);
    if (n > 0) {
        EVP_DigestUpdate(s->md, buf, (size_t)n);
        s->size += (uint64_t)n;
    }
    return n;
}

static int write_all(int fd, const char *buf, size_t len, struct burry_err *e)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return burry_errf(e, BURRY_EFAIL, "cannot write the archive (%s)", strerror(errno));
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int bysu_get(const struct burry_opts *o, const struct bysu_conf *c, const char *job, const char *ref,
             int decrypt, int out_fd, json_t **manifest, struct burry_err *e)
{
    struct get_src src = {0};
    struct store *st = NULL;
    struct age_dec *d = NULL;
    char *key = NULL, buf[65536];
    int rc = catalog_check_name(job, e);
    if (rc < 0)
        return rc;
    if ((rc = catalog_open_store(c->repo_url, o, &src.ops, &st, e)) < 0)
        return rc;
    if ((rc = catalog_resolve(src.ops, st, ref, job, manifest, e)) < 0)
        goto out;
    if (!(key = catalog_archive_key(*manifest))) {
        rc = burry_errf(e, BURRY_EFAIL, "the manifest of '%s' names no archive", job);
        goto out;
    }
    const char *id = json_string_value(json_object_get(*manifest, "snapshot")) ?: ref;
    int enc = !strcmp(json_string_value(json_object_get(*manifest, "encryption")) ?: "", "age");
    if (decrypt && enc && !o->nidentities) {
        rc = burry_errf(e, BURRY_EUSAGE, "snapshot '%s' is encrypted: give --identity FILE", id);
        goto out;
    }
    if (!(src.md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(src.md, EVP_sha256(), NULL) != 1) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    if ((rc = src.ops->get_open(st, key, &src.g, e)) < 0)
        goto out;
    if (decrypt && enc &&
        !(d = age_dec_new((const unsigned char (*)[32])o->identities, o->nidentities, get_raw, &src, e))) {
        rc = BURRY_EFAIL;
        burry_err_prefix(e, "cannot decrypt snapshot '%s' of '%s'", id, job);
        goto out;
    }
    for (;;) {
        ssize_t n = d ? age_dec_read(d, buf, sizeof buf, e) : get_raw(&src, buf, sizeof buf, e);
        if (n < 0) {
            rc = BURRY_EFAIL;
            if (d)
                burry_err_prefix(e, "cannot decrypt snapshot '%s' of '%s'", id, job);
            goto out;
        }
        if (n == 0)
            break;
        if ((rc = write_all(out_fd, buf, (size_t)n, e)) < 0)
            goto out;
    }
    /* the bytes stored against the manifest (age has authenticated the
     * content already; this also catches a swapped or shortened file) */
    if (d) { /* age may stop at its last chunk: the rest counts too */
        ssize_t n;
        while ((n = get_raw(&src, buf, sizeof buf, e)) > 0)
            ;
        if (n < 0) {
            rc = BURRY_EFAIL;
            goto out;
        }
    }
    json_t *arch = json_object_get(*manifest, "archive");
    const char *want = json_string_value(json_object_get(arch, "sha256"));
    if (want) {
        char got[65];
        sha256_final_hex(src.md, got);
        if (strcmp(got, want) || (json_is_integer(json_object_get(arch, "size")) &&
                                  (uint64_t)json_integer_value(json_object_get(arch, "size")) != src.size))
            rc = burry_errf(e, BURRY_EFAIL, "the archive of snapshot '%s' of '%s' does not match its manifest "
                            "(checksum or size differs)", id, job);
    }
out:
    age_dec_free(d);
    if (src.g)
        src.ops->get_close(src.g);
    EVP_MD_CTX_free(src.md);
    free(key);
    src.ops->close(st);
    return rc;
}

/* ---- verify: every stored snapshot against its sidecar and manifest ---- */

/* The stored archive, decrypted when a key is at hand, as libarchive input. */
struct vsrc {
    const struct store_ops *ops;
    struct store_get *g;
    struct age_dec *d;
    struct burry_err *e;
    int *unreadable; /* set when the store failed, not the archive */
    char buf[65536];
};

static ssize_t vsrc_raw(void *ctx, void *buf, size_t len, struct burry_err *e)
{
    struct vsrc *v = ctx;
    ssize_t n = v->ops->get_read(v->g, buf, len, e);
    if (n < 0)
        *v->unreadable = 1;
    return n;
}

static la_ssize_t vsrc_read(struct archive *a, void *ctx, const void **buf)
{
    struct vsrc *v = ctx;
    struct burry_err e2 = {0};
    ssize_t n = v->d ? age_dec_read(v->d, v->buf, sizeof v->buf, &e2) : vsrc_raw(v, v->buf, sizeof v->buf, &e2);
    if (n < 0) {
        if (!v->e->code)
            burry_errf(v->e, BURRY_EFAIL, "%s%s", v->d ? "cannot decrypt: " : "", e2.msg);
        archive_set_error(a, EIO, "%s", e2.msg);
        return -1;
    }
    *buf = v->buf;
    return (la_ssize_t)n;
}

/* The archive's content (decrypted with o->identities when encrypted)
 * against the MANIFEST.json it holds. */
static int verify_content(const struct burry_opts *o, const struct store_ops *ops, struct store *st,
                          const char *key, int enc, int *unreadable, struct burry_err *e)
{
    struct vsrc *v = calloc(1, sizeof *v);
    struct archive *a = archive_read_new();
    json_t *seen = json_object(), *manifest = NULL;
    size_t entries = 0;
    int rc;
    if (!v || !a || !seen) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    *v = (struct vsrc){.ops = ops, .e = e, .unreadable = unreadable};
    if ((rc = ops->get_open(st, key, &v->g, e)) < 0) {
        *unreadable = rc != BURRY_ENOENT;
        goto out;
    }
    if (enc && !(v->d = age_dec_new((const unsigned char (*)[AGE_KEY_LEN])o->identities, o->nidentities,
                                    vsrc_raw, v, e))) {
        rc = BURRY_EFAIL;
        burry_err_prefix(e, "cannot decrypt");
        goto out;
    }
    archive_read_support_format_tar(a);
    archive_read_support_filter_zstd(a);
    if (archive_read_open(a, v, NULL, vsrc_read, NULL) != ARCHIVE_OK) {
        rc = e->code ? BURRY_EFAIL
                     : burry_errf(e, BURRY_EFAIL, "the archive does not read (%s)", archive_error_string(a) ?: "empty");
        goto out;
    }
    rc = read_entries(a, seen, &manifest, &entries, e);
    if (rc < 0 && !e->code)
        burry_errf(e, BURRY_EFAIL, "the archive is damaged (%s)", archive_error_string(a) ?: "unknown error");
    if (rc == 0)
        rc = check_manifest(seen, manifest, e);
out:
    archive_read_free(a);
    if (v) {
        age_dec_free(v->d);
        if (v->g)
            ops->get_close(v->g);
        free(v);
    }
    json_decref(seen);
    json_decref(manifest);
    return rc;
}

int bysu_verify(const struct burry_opts *o, const struct bysu_conf *c, const char *job, json_t **out,
                struct burry_err *e)
{
    const struct store_ops *ops = NULL;
    struct store *st = NULL;
    json_t *all = NULL, *rows = json_array(), *m;
    size_t i;
    int rc = 0, damaged = 0, unchecked = 0;
    if (!rows)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    if (job && (rc = catalog_check_name(job, e)) < 0)
        goto out;
    if ((rc = catalog_open_store(c->repo_url, o, &ops, &st, e)) < 0)
        goto out;
    if ((rc = catalog_list(ops, st, job, &all, e)) < 0)
        goto out;
    json_array_foreach(all, i, m) {
        if (burry_interrupted) {
            rc = burry_errf(e, BURRY_EINTR, "interrupted");
            goto out;
        }
        const char *id = json_string_value(json_object_get(m, "snapshot")) ?: "";
        const char *name = json_string_value(json_object_get(m, "name")) ?: "";
        if (catalog_damaged(m)) {
            damaged++;
            json_array_append_new(rows, json_pack("{s:s,s:s,s:b,s:s}", "id", id, "job", name, "ok", 0, "error",
                                                  catalog_damaged(m)));
            continue;
        }
        const char *service = json_string_value(json_object_get(m, "service")) ?: "";
        int enc = !strcmp(json_string_value(json_object_get(m, "encryption")) ?: "", "age");
        int stored_only = 0, unreadable = 0;
        struct burry_err e2 = {0};
        int r;
        char *key = catalog_archive_key(m);
        if (!key) {
            r = burry_errf(&e2, BURRY_EFAIL, "the sidecar names no archive");
        } else if (enc && !o->nidentities) {
            /* no key given: the stored bytes are all that can be checked */
            if ((r = burry_verify_stored(ops, st, m, &unreadable, &e2)) == 0)
                stored_only = 1;
        } else if (strcmp(service, "bysu")) {
            /* an infrastructure job's snapshot, written by the burry engine:
             * checked as burry verify checks it, and like a node's, a store
             * that fails leaves it not checked rather than damaged */
            r = burry_verify_listed(ops, st, m, o, &unreadable, &e2);
            if (r < 0 && e2.code == BURRY_ENOKEY) {
                /* encrypted to keys not given here: as for a node's
                 * snapshot, its stored bytes are what can be checked */
                burry_err_clear(&e2);
                if ((r = burry_verify_stored(ops, st, m, &unreadable, &e2)) == 0)
                    stored_only = 1;
            }
        } else if ((r = burry_verify_stored(ops, st, m, &unreadable, &e2)) == 0 &&
                   (r = verify_content(o, ops, st, key, enc, &unreadable, &e2)) < 0 && e2.code == BURRY_ENOKEY) {
            /* encrypted to keys not given here (a node's, say): its
             * stored bytes matched, which is all that can be checked */
            r = 0;
            stored_only = 1;
        }
        free(key);
        if (burry_interrupted) {
            rc = burry_errf(e, BURRY_EINTR, "interrupted");
            goto out;
        }
        json_t *row = json_pack("{s:s,s:s,s:b}", "id", id, "job", name, "ok", r == 0);
        if (r < 0 && unreadable) {
            /* the store failed: nothing is known about the snapshot */
            unchecked++;
            json_object_set_new(row, "not_checked", json_true());
            json_object_set_new(row, "error", json_string(e2.msg[0] ? e2.msg : "the store failed"));
        } else if (r < 0) {
            damaged++;
            json_object_set_new(row, "error", json_string(e2.msg[0] ? e2.msg : "damaged"));
        }
        if (stored_only)
            json_object_set_new(row, "stored_only", json_true());
        json_array_append_new(rows, row);
    }
    if (job && !json_array_size(rows) && !bysu_conf_job(c, job, e))
        rc = BURRY_EUSAGE;
out:
    if (st)
        ops->close(st);
    json_decref(all);
    if (rc == 0)
        *out = json_pack("{s:O,s:i,s:i}", "snapshots", rows, "damaged", damaged, "not_checked", unchecked);
    json_decref(rows);
    return rc;
}
