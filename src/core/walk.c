/* The generic tree walker (walk.h).
 *
 * Nodes known but not yet handed to the sink live in a tree of frames: a
 * frame holds the sorted children of one node that was read. Reads are
 * submitted in depth-first order (the first unread slot in pre-order), the
 * source completes them in any order, and the sink receives nodes strictly
 * in pre-order as soon as every node before them was handed over. Memory
 * is therefore bounded by the read-ahead window and the width of the
 * frontier, not by the size of the tree. */
#include "walk.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "names.h"

enum { SLOT_UNREAD = 0, SLOT_INFLIGHT, SLOT_DONE, SLOT_SKIPPED, SLOT_EMITTED };

/* Bytes of values in flight plus read and not yet emitted, estimated from
 * the average value so far: trees of large values read fewer at once. */
#define WALK_BYTE_BUDGET ((uint64_t)8 << 20)
#define WALK_START 16

struct frame;

struct slot {
    char *name;
    size_t name_len;
    unsigned char state;
    int has_value;
    char *value;
    size_t value_len;
    json_t *attrs;
    struct frame *kids;      /* children, once read (NULL if none) */
    struct frame *owner;
};

struct frame {
    struct frame *parent;
    char *path;              /* canonical path of the node whose children these are */
    size_t path_len;
    int is_top;              /* the pseudo-frame holding the root slot */
    struct slot *slots;
    size_t n;
    size_t emit;             /* next slot to hand to the sink */
    size_t next_read;        /* slots [next_read, n) are unread */
    uint64_t unread;         /* unread slots in this frame and every frame below */
};

struct walk {
    const struct source_ops *ops;
    struct source *src;
    const struct burry_opts *o;
    struct walk_stats *st;
    struct frame *top;
    struct frame *cur;       /* emission position */
    size_t inflight;
    uint64_t read_nodes, read_bytes; /* values read so far, for the byte budget */
    size_t held;             /* bytes of values read and not yet emitted */
    int failed;
    struct burry_err *e;
    struct buf path;
};

void walk_count_skip(struct walk_stats *st, const char *reason)
{
    json_t *v = json_object_get(st->skipped, reason);
    json_int_t n = v ? json_integer_value(v) : 0;
    json_object_set_new(st->skipped, reason, json_integer(n + 1));
}

static void slot_clear(struct slot *s)
{
    free(s->name);
    free(s->value);
    json_decref(s->attrs);
    s->name = s->value = NULL;
    s->attrs = NULL;
}

static void frame_free(struct frame *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        frame_free(f->slots[i].kids);
        slot_clear(&f->slots[i]);
    }
    free(f->slots);
    free(f->path);
    free(f);
}

static void add_unread(struct frame *f, int64_t d)
{
    for (; f; f = f->parent)
        f->unread = (uint64_t)((int64_t)f->unread + d);
}

/* Canonical path of slot s in frame f, into w->path. */
static int slot_path(struct walk *w, struct frame *f, struct slot *s)
{
    buf_reset(&w->path);
    if (f->is_top)
        return buf_append(&w->path, "", 0);
    if (buf_append(&w->path, f->path, f->path_len) < 0 || buf_putc(&w->path, '/') < 0 ||
        buf_append(&w->path, s->name, s->name_len) < 0)
        return -1;
    return 0;
}

struct name_ref {
    const char *p;
    size_t len;
};

static int name_cmp(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    return names_cmp(x->p, x->len, y->p, y->len);
}

static struct frame *frame_new(struct walk *w, struct frame *parent, const char *path,
                               size_t path_len, const struct src_read *r)
{
    struct frame *f = calloc(1, sizeof *f);
    struct name_ref *refs = calloc(r->nchildren, sizeof *refs);
    if (!f || !refs)
        goto oom;
    f->parent = parent;
    f->path = malloc(path_len + 1);
    f->slots = calloc(r->nchildren, sizeof *f->slots);
    if (!f->path || !f->slots)
        goto oom;
    memcpy(f->path, path, path_len);
    f->path[path_len] = 0;
    f->path_len = path_len;
    for (size_t i = 0; i < r->nchildren; i++) {
        refs[i].p = r->children[i];
        refs[i].len = r->child_len[i];
    }
    qsort(refs, r->nchildren, sizeof *refs, name_cmp);
    for (size_t i = 0; i < r->nchildren; i++) {
        struct slot *s = &f->slots[f->n];
        if (f->n && refs[i].len == f->slots[f->n - 1].name_len &&
            !memcmp(refs[i].p, f->slots[f->n - 1].name, refs[i].len))
            continue; /* a source listing a name twice */
        s->name = malloc(refs[i].len + 1);
        if (!s->name)
            goto oom;
        memcpy(s->name, refs[i].p, refs[i].len);
        s->name[refs[i].len] = 0;
        s->name_len = refs[i].len;
        s->owner = f;
        f->n++;
    }
    free(refs);
    f->unread = 0;
    add_unread(f, (int64_t)f->n);
    return f;
oom:
    free(refs);
    frame_free(f);
    burry_errf(w->e, BURRY_EFAIL, "out of memory while walking '%.*s'", (int)path_len, path);
    return NULL;
}

static void read_done(void *ctx, void *token, const struct src_read *r)
{
    struct walk *w = ctx;
    struct slot *s = token;
    struct frame *f = s->owner;
    w->inflight--;
    if (w->failed) {
        json_decref(r->attrs);
        s->state = SLOT_SKIPPED;
        return;
    }
    switch (r->status) {
    case SRC_READ_OK:
        break;
    case SRC_READ_SKIP:
        walk_count_skip(w->st, r->reason ? r->reason : "other");
        json_decref(r->attrs);
        s->state = SLOT_SKIPPED;
        return;
    case SRC_READ_GONE:
        if (f->is_top) /* the chroot: a backup is empty, a dump prints nothing */
            blog(&w->o->log, BLOG_WARN, "the root of the tree (the URL's chroot) does not exist: there is "
                 "nothing to read");
        walk_count_skip(w->st, "vanished");
        json_decref(r->attrs);
        s->state = SLOT_SKIPPED;
        return;
    case SRC_READ_DENIED: {
        json_decref(r->attrs);
        s->state = SLOT_SKIPPED;
        struct buf disp;
        buf_init(&disp, 0);
        if (slot_path(w, f, s) == 0)
            names_display(w->path.p, w->path.len, &disp);
        if (w->o->skip_unreadable) {
            walk_count_skip(w->st, "unreadable");
            json_array_append_new(w->st->skipped_paths, json_string(disp.p ? disp.p : "?"));
            blog(&w->o->log, BLOG_WARN, "skipping unreadable '%s': %s", disp.p ? disp.p : "?",
                 r->reason ? r->reason : "not readable");
        } else {
            w->failed = 1;
            burry_errf(w->e, BURRY_EFAIL,
                       "cannot read '%s': %s; nothing was saved (--skip-unreadable records "
                       "such nodes and goes on)",
                       disp.p ? disp.p : "?", r->reason ? r->reason : "not readable");
        }
        buf_free(&disp);
        return;
    }
    }
    s->has_value = r->has_value;
    if (r->has_value) {
        s->value = malloc(r->value_len ? r->value_len : 1);
        if (!s->value)
            goto oom;
        if (r->value_len)
            memcpy(s->value, r->value, r->value_len);
        s->value_len = r->value_len;
        w->held += r->value_len;
    }
    w->read_nodes++;
    w->read_bytes += r->has_value ? r->value_len : 0;
    s->attrs = r->attrs;
    if (r->nchildren) {
        if (slot_path(w, f, s) < 0)
            goto oom;
        s->kids = frame_new(w, f, w->path.p, w->path.len, r);
        if (!s->kids) {
            w->failed = 1;
            return;
        }
    }
    s->state = SLOT_DONE;
    return;
oom:
    w->failed = 1;
    burry_errf(w->e, BURRY_EFAIL, "out of memory while walking");
}

/* The first unread slot in pre-order, or NULL. Unread slots of a frame form
 * the suffix [next_read, n); deeper unread slots hang below slots before it. */
static struct slot *first_unread(struct frame *f)
{
    while (f && f->unread) {
        uint64_t own = f->n - f->next_read;
        struct frame *down = NULL;
        if (f->unread > own) {
            for (size_t i = f->emit; i < f->next_read; i++) {
                struct frame *k = f->slots[i].kids;
                if (k && k->unread) {
                    down = k;
                    break;
                }
            }
        }
        if (down) {
            f = down;
            continue;
        }
        return own ? &f->slots[f->next_read] : NULL;
    }
    return NULL;
}

static int submit_more(struct walk *w)
{
    size_t window = w->o->window > 0 ? (size_t)w->o->window : 1000;
    /* large values: fewer reads at once, so that the values in flight and
     * those waiting to be emitted stay within WALK_BYTE_BUDGET */
    uint64_t avg = w->read_nodes ? w->read_bytes / w->read_nodes : 0;
    /* and a slow start, so that the first values set the average before
     * the whole window is out */
    if (window > WALK_START + 2 * w->read_nodes)
        window = (size_t)(WALK_START + 2 * w->read_nodes);
    while (!w->failed && w->inflight < window &&
           (w->inflight == 0 || w->held + (w->inflight + 1) * avg <= WALK_BYTE_BUDGET)) {
        struct slot *s = first_unread(w->top);
        if (!s)
            break;
        struct frame *f = s->owner;
        f->next_read++;
        add_unread(f, -1);
        s->state = SLOT_INFLIGHT;
        if (slot_path(w, f, s) < 0)
            return burry_errf(w->e, BURRY_EFAIL, "out of memory while walking");
        w->inflight++;
        if (w->ops->read_submit(w->src, w->path.p, w->path.len, read_done, w, s, w->e) < 0) {
            w->inflight--;
            w->failed = 1;
            return w->e->code ? w->e->code : BURRY_EFAIL;
        }
    }
    return 0;
}

/* Hand every node that is ready to the sink. Returns 1 when the walk is
 * complete, 0 when it waits for reads, <0 on error. */
static int emit_ready(struct walk *w, walk_sink_fn sink, void *ctx)
{
    while (w->cur) {
        struct frame *f = w->cur;
        if (f->emit == f->n) {
            w->cur = f->parent;
            if (f->parent) {
                /* the slot we descended from is done with */
                struct slot *ps = &f->parent->slots[f->parent->emit];
                ps->kids = NULL;
                slot_clear(ps);
                f->parent->emit++;
            }
            frame_free(f);
            if (!w->cur)
                w->top = NULL;
            continue;
        }
        struct slot *s = &f->slots[f->emit];
        if (s->state == SLOT_UNREAD || s->state == SLOT_INFLIGHT)
            return 0;
        if (s->state == SLOT_SKIPPED) {
            slot_clear(s);
            f->emit++;
            continue;
        }
        if (s->state == SLOT_DONE) {
            if (slot_path(w, f, s) < 0)
                return burry_errf(w->e, BURRY_EFAIL, "out of memory while walking");
            struct bnode n = {
                .path = w->path.p,
                .path_len = w->path.len,
                .value = s->value,
                .value_len = s->value_len,
                .has_value = s->has_value,
                .attrs = s->attrs,
            };
            int rc = sink(ctx, &n, w->e);
            if (rc < 0)
                return rc;
            w->st->nodes++;
            if (s->has_value)
                w->st->bytes += s->value_len;
            free(s->value);
            s->value = NULL;
            w->held -= s->value_len;
            json_decref(s->attrs);
            s->attrs = NULL;
            s->state = SLOT_EMITTED;
            if (s->kids) {
                w->cur = s->kids;
                continue;
            }
        }
        slot_clear(s);
        f->emit++;
    }
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int walk_run(const struct source_ops *ops, struct source *src, const struct burry_opts *o,
             walk_sink_fn sink, void *ctx, struct walk_stats *stats, struct burry_err *e)
{
    if (ops->scan)
        return ops->scan(src, sink, ctx, e); /* flat sources emit in order themselves */
    if (!ops->read_submit || !ops->pump)
        return burry_errf(e, BURRY_EFAIL, "service '%s' cannot be read", ops->service);

    struct walk w = {.ops = ops, .src = src, .o = o, .st = stats, .e = e};
    int rc = 0;
    buf_init(&w.path, 0);
    w.top = calloc(1, sizeof *w.top);
    if (w.top)
        w.top->slots = calloc(1, sizeof *w.top->slots);
    if (!w.top || !w.top->slots) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    w.top->is_top = 1;
    w.top->n = 1;
    w.top->slots[0].owner = w.top;
    w.top->unread = 1;
    w.cur = w.top;

    double last = now_s();
    for (;;) {
        if ((rc = submit_more(&w)) < 0)
            break;
        rc = emit_ready(&w, sink, ctx);
        if (rc < 0 || rc == 1)
            break;
        if (w.failed) {
            rc = e->code ? e->code : BURRY_EFAIL;
            break;
        }
        if (burry_interrupted) {
            rc = burry_errf(e, BURRY_EINTR, "interrupted");
            break;
        }
        if ((rc = ops->pump(src, 200, e)) < 0)
            break;
        if (w.failed) {
            rc = e->code ? e->code : BURRY_EFAIL;
            break;
        }
        if (o->progress) {
            double t = now_s();
            if (t - last >= 0.5) {
                last = t;
                o->progress(o->progress_ctx, "reading", stats->nodes, 0, stats->bytes);
            }
        }
    }
    if (rc == 1)
        rc = 0;
out:
    /* on failure, frames may still be referenced by pending reads; the
     * caller closes the source (which drops its callbacks) before we free */
    if (rc < 0 && w.inflight) {
        while (w.inflight && ops->pending(src)) {
            struct burry_err tmp = {0};
            if (ops->pump(src, 200, &tmp) < 0)
                break;
        }
    }
    frame_free(w.top);
    buf_free(&w.path);
    return rc;
}
