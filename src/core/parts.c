/* Parallel part uploads for object stores (parts.h): a fixed set of part
 * buffers moving between the producer and a pool of worker threads. */
#include "parts.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PARTS_MAX_WORKERS 16

enum { B_FREE, B_FILLING, B_QUEUED, B_SENDING };

struct pbuf {
    char *data;
    size_t len;
    unsigned no;
    int state;
};

struct parts {
    const struct burry_opts *o;
    size_t part_size;
    unsigned max_parts;
    parts_begin_fn begin;
    parts_send_fn send;
    void *ctx;

    pthread_mutex_t mu;
    pthread_cond_t work;      /* workers wait here for queued parts */
    pthread_cond_t done;      /* the producer waits here for buffers */
    pthread_t threads[PARTS_MAX_WORKERS];
    struct http *https[PARTS_MAX_WORKERS];
    unsigned nthreads;
    struct pbuf *bufs;        /* workers + 1 */
    unsigned nbufs;
    int filling;              /* index of the buffer being filled, or -1 */
    unsigned next_no;         /* number of the next part handed off */
    unsigned sent;            /* parts finished successfully */
    int started, stop, failed;
    struct burry_err err;     /* the first failure */
    char (*tags)[PARTS_TAG_MAX];
};

static struct pbuf *next_queued(struct parts *p)
{
    struct pbuf *best = NULL;
    for (unsigned i = 0; i < p->nbufs; i++)
        if (p->bufs[i].state == B_QUEUED && (!best || p->bufs[i].no < best->no))
            best = &p->bufs[i];
    return best;
}

struct worker_arg {
    struct parts *p;
    unsigned idx;
};

static void *worker(void *arg)
{
    struct parts *p = ((struct worker_arg *)arg)->p;
    struct http *h = p->https[((struct worker_arg *)arg)->idx];
    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct pbuf *b;
        while (!p->stop && !p->failed && !(b = next_queued(p)))
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop || p->failed)
            break;
        b->state = B_SENDING;
        pthread_mutex_unlock(&p->mu);
        char tag[PARTS_TAG_MAX] = "";
        struct burry_err err = {0};
        int rc = p->send(p->ctx, h, b->no, b->data, b->len, tag, &err);
        pthread_mutex_lock(&p->mu);
        if (rc < 0) {
            if (!p->failed) {
                p->failed = 1;
                p->err = err;
            }
        } else {
            memcpy(p->tags[b->no - 1], tag, PARTS_TAG_MAX);
            p->sent++;
        }
        b->state = B_FREE;
        b->len = 0;
        pthread_cond_broadcast(&p->done);
        pthread_cond_broadcast(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct parts *parts_new(const struct burry_opts *o, size_t part_size, unsigned workers,
                        unsigned max_parts, parts_begin_fn begin, parts_send_fn send, void *ctx,
                        struct burry_err *e)
{
    if (workers < 1)
        workers = 1;
    if (workers > PARTS_MAX_WORKERS)
        workers = PARTS_MAX_WORKERS;
    struct parts *p = calloc(1, sizeof *p);
    if (!p || !(p->bufs = calloc(workers + 1, sizeof *p->bufs)) ||
        !(p->tags = calloc(max_parts, sizeof *p->tags))) {
        if (p)
            free(p->bufs);
        free(p);
        burry_errf(e, BURRY_EFAIL, "out of memory");
        return NULL;
    }
    p->o = o;
    p->part_size = part_size;
    p->max_parts = max_parts;
    p->begin = begin;
    p->send = send;
    p->ctx = ctx;
    p->nbufs = workers + 1;
    p->filling = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (unsigned i = 0; i < workers; i++) {
        if (!(p->https[i] = http_new(o, e)))
            goto fail;
        struct worker_arg *a = malloc(sizeof *a);
        if (!a) {
            burry_errf(e, BURRY_EFAIL, "out of memory");
            goto fail;
        }
        a->p = p;
        a->idx = i;
        int err = pthread_create(&p->threads[i], NULL, worker, a);
        if (err) {
            free(a);
            burry_errf(e, BURRY_EFAIL, "cannot start an upload thread: %s", strerror(err));
            goto fail;
        }
        p->nthreads++;
    }
    return p;
fail:
    parts_free(p);
    return NULL;
}

/* Waits (in steps, to notice an interrupt) until cond holds; called locked. */
static int wait_until(struct parts *p, int (*cond)(struct parts *), struct burry_err *e)
{
    while (!cond(p)) {
        if (p->failed) {
            *e = p->err;
            return e->code ? e->code : BURRY_EFAIL;
        }
        if (burry_interrupted)
            return burry_errf(e, BURRY_EINTR, "interrupted");
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->done, &p->mu, &ts);
    }
    if (p->failed) {
        *e = p->err;
        return e->code ? e->code : BURRY_EFAIL;
    }
    return 0;
}

static int have_free(struct parts *p)
{
    for (unsigned i = 0; i < p->nbufs; i++)
        if (p->bufs[i].state == B_FREE)
            return 1;
    return 0;
}

static int all_idle(struct parts *p)
{
    for (unsigned i = 0; i < p->nbufs; i++)
        if (p->bufs[i].state == B_QUEUED || p->bufs[i].state == B_SENDING)
            return 0;
    return 1;
}

/* Hand the buffer being filled to the workers. */
static int hand_off(struct parts *p, struct burry_err *e)
{
    if (!p->started) {
        if (p->begin(p->ctx, e) < 0)
            return e->code ? e->code : BURRY_EFAIL;
        p->started = 1;
    }
    if (p->next_no >= p->max_parts)
        return burry_errf(e, BURRY_EFAIL, "the archive needs more than %u parts of %zu MiB",
                          p->max_parts, p->part_size >> 20);
    pthread_mutex_lock(&p->mu);
    struct pbuf *b = &p->bufs[p->filling];
    b->no = ++p->next_no;
    b->state = B_QUEUED;
    p->filling = -1;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int parts_write(struct parts *p, const void *data, size_t len, struct burry_err *e)
{
    const char *in = data;
    while (len) {
        if (p->filling < 0) {
            pthread_mutex_lock(&p->mu);
            int rc = wait_until(p, have_free, e);
            unsigned i = 0;
            while (rc == 0 && p->bufs[i].state != B_FREE)
                i++;
            if (rc == 0)
                p->bufs[i].state = B_FILLING;
            pthread_mutex_unlock(&p->mu);
            if (rc < 0)
                return rc;
            if (!p->bufs[i].data && !(p->bufs[i].data = malloc(p->part_size))) {
                p->bufs[i].state = B_FREE;
                return burry_errf(e, BURRY_EFAIL, "out of memory for a %zu MiB upload part",
                                  p->part_size >> 20);
            }
            p->bufs[i].len = 0;
            p->filling = (int)i;
        }
        struct pbuf *b = &p->bufs[p->filling];
        size_t n = p->part_size - b->len < len ? p->part_size - b->len : len;
        memcpy(b->data + b->len, in, n);
        b->len += n;
        in += n;
        len -= n;
        /* a full part leaves only once more bytes come, so that an archive
         * of exactly one part is still a plain upload */
        if (len && b->len == p->part_size) {
            int rc = hand_off(p, e);
            if (rc < 0)
                return rc;
        }
    }
    pthread_mutex_lock(&p->mu);
    int failed = p->failed;
    if (failed)
        *e = p->err;
    pthread_mutex_unlock(&p->mu);
    return failed ? (e->code ? e->code : BURRY_EFAIL) : 0;
}

int parts_started(const struct parts *p)
{
    return p->started;
}

const void *parts_pending(const struct parts *p, size_t *len)
{
    if (p->filling < 0) {
        *len = 0;
        return "";
    }
    *len = p->bufs[p->filling].len;
    return p->bufs[p->filling].data;
}

int parts_finish(struct parts *p, struct burry_err *e)
{
    if (p->filling >= 0 && p->bufs[p->filling].len) {
        int rc = hand_off(p, e);
        if (rc < 0)
            return rc;
    }
    pthread_mutex_lock(&p->mu);
    int rc = wait_until(p, all_idle, e);
    pthread_mutex_unlock(&p->mu);
    if (rc == 0 && p->sent != p->next_no)
        return burry_errf(e, BURRY_EFAIL, "%u of %u parts were uploaded", p->sent, p->next_no);
    return rc;
}

unsigned parts_count(const struct parts *p)
{
    return p->next_no;
}

const char *parts_tag(const struct parts *p, unsigned no)
{
    return no >= 1 && no <= p->next_no ? p->tags[no - 1] : "";
}

void parts_free(struct parts *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    for (unsigned i = 0; i < PARTS_MAX_WORKERS; i++)
        http_free(p->https[i]);
    for (unsigned i = 0; i < p->nbufs; i++)
        free(p->bufs[i].data);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->bufs);
    free(p->tags);
    free(p);
}
