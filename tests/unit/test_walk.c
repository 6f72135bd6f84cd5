/* Unit test of the generic walker's ordering with an in-memory tree source
 * (a test double for the walker's contract, not a server): reads complete
 * in random order, and the sink must still see every node exactly once, in
 * depth-first order with children sorted by name bytes. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "walk.h"

/* A synthetic tree: node i has children given by a generator; names are
 * chosen so that byte order differs from creation order. */
struct req {
    char *path;
    size_t len;
    void *token;
};

struct source {
    struct req *q;
    size_t nq, cap;
    src_read_cb cb;
    void *ctx;
    unsigned seed;
    int fanout, depth;
    size_t max_pending;
    const char *big;     /* when set: every node's value is these big_len bytes */
    size_t big_len;
    int one_per_pump;    /* complete one request per pump: reads pile up */
};

static int depth_of(const char *p, size_t len)
{
    int d = 0;
    for (size_t i = 0; i < len; i++)
        d += p[i] == '/';
    return d;
}

static int t_read_submit(struct source *s, const char *path, size_t len, src_read_cb cb, void *ctx,
                         void *token, struct burry_err *e)
{
    if (s->nq == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->q = realloc(s->q, s->cap * sizeof *s->q);
    }
    s->q[s->nq].path = malloc(len + 1);
    memcpy(s->q[s->nq].path, path, len);
    s->q[s->nq].len = len;
    s->q[s->nq].token = token;
    s->nq++;
    if (s->nq > s->max_pending)
        s->max_pending = s->nq;
    s->cb = cb;
    s->ctx = ctx;
    return 0;
}

static int t_pump(struct source *s, int timeout_ms, struct burry_err *e)
{
    /* complete a random handful of requests, in random order */
    size_t k = s->nq ? 1 + (size_t)rand_r(&s->seed) % s->nq : 0;
    if (s->one_per_pump && k)
        k = 1;
    for (size_t j = 0; j < k && s->nq; j++) {
        size_t i = (size_t)rand_r(&s->seed) % s->nq;
        struct req r = s->q[i];
        s->q[i] = s->q[--s->nq];
        int d = depth_of(r.path, r.len);
        char names[16][8];
        const char *child[16];
        size_t clen[16];
        size_t n = d < s->depth ? (size_t)s->fanout : 0;
        for (size_t c = 0; c < n; c++) {
            /* reverse order, mixed lengths, a byte that sorts before '/' */
            snprintf(names[c], sizeof names[c], "%c%s", (char)('z' - (int)c), c % 3 ? "-x" : "");
            child[c] = names[c];
            clen[c] = strlen(names[c]);
        }
        struct src_read res = {
            .status = SRC_READ_OK,
            .value = s->big ? s->big : r.path,
            .value_len = s->big ? s->big_len : r.len,
            .has_value = s->big ? 1 : (int)(r.len % 2),
            .attrs = json_object(),
            .children = child,
            .child_len = clen,
            .nchildren = n,
        };
        s->cb(s->ctx, r.token, &res);
        free(r.path);
    }
    return 0;
}

static size_t t_pending(struct source *s)
{
    return s->nq;
}

static const struct source_ops test_ops = {
    .scheme = "test",
    .service = "test",
    .read_submit = t_read_submit,
    .pump = t_pump,
    .pending = t_pending,
};

struct seen {
    char **paths;
    size_t n;
    int value_ok;
};

static int sink(void *ctx, const struct bnode *n, struct burry_err *e)
{
    struct seen *s = ctx;
    s->paths = realloc(s->paths, (s->n + 1) * sizeof *s->paths);
    s->paths[s->n] = strndup(n->path, n->path_len);
    s->n++;
    if (n->has_value != (int)(n->path_len % 2) ||
        (n->has_value && (n->value_len != n->path_len || memcmp(n->value, n->path, n->path_len))))
        s->value_ok = 0;
    return 0;
}

static int big_sink(void *ctx, const struct bnode *n, struct burry_err *e)
{
    struct seen *s = ctx;
    s->paths = realloc(s->paths, (s->n + 1) * sizeof *s->paths);
    s->paths[s->n++] = strndup(n->path, n->path_len);
    if (!n->has_value || n->value_len != (size_t)1 << 20)
        s->value_ok = 0;
    return 0;
}

/* Expected pre-order, children sorted by bytes. */
static void expect(char ***out, size_t *n, const char *path, int depth, int maxd, int fanout)
{
    *out = realloc(*out, (*n + 1) * sizeof **out);
    (*out)[(*n)++] = strdup(path);
    if (depth >= maxd)
        return;
    char names[16][8];
    for (int c = 0; c < fanout; c++)
        snprintf(names[c], sizeof names[c], "%c%s", (char)('z' - c), c % 3 ? "-x" : "");
    qsort(names, (size_t)fanout, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int c = 0; c < fanout; c++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", path, names[c]);
        expect(out, n, p, depth + 1, maxd, fanout);
    }
}

static void run(unsigned seed, int fanout, int depth, int window)
{
    struct source src = {.seed = seed, .fanout = fanout, .depth = depth};
    struct burry_opts o;
    burry_opts_init(&o);
    o.window = window;
    struct seen seen = {.value_ok = 1};
    struct walk_stats st = {.skipped = json_object(), .skipped_paths = json_array()};
    struct burry_err e = {0};
    int rc = walk_run(&test_ops, &src, &o, sink, &seen, &st, &e);
    char **exp = NULL;
    size_t nexp = 0;
    expect(&exp, &nexp, "", 0, depth, fanout);
    int same = seen.n == nexp;
    for (size_t i = 0; same && i < nexp; i++)
        same = !strcmp(exp[i], seen.paths[i]);
    char name[128];
    snprintf(name, sizeof name, "walk seed %u fanout %d depth %d window %d: rc 0", seed, fanout, depth, window);
    T_CHECK(rc == 0, name);
    snprintf(name, sizeof name, "walk seed %u: %zu nodes in pre-order", seed, nexp);
    T_CHECK(same, name);
    snprintf(name, sizeof name, "walk seed %u: values and null values intact", seed);
    T_CHECK(seen.value_ok, name);
    snprintf(name, sizeof name, "walk seed %u: never more than the window in flight", seed);
    T_CHECK(src.max_pending <= (size_t)window, name);
    snprintf(name, sizeof name, "walk seed %u: stats count every node", seed);
    T_CHECK(st.nodes == nexp, name);
    for (size_t i = 0; i < nexp; i++)
        free(exp[i]);
    for (size_t i = 0; i < seen.n; i++)
        free(seen.paths[i]);
    free(exp);
    free(seen.paths);
    free(src.q);
    json_decref(st.skipped);
    json_decref(st.skipped_paths);
}

/* Values of 1 MiB in a flat tree of 16 children: the root's value sets the
 * average, and then the walker keeps at most 8 MiB of values out, far
 * fewer reads than its window of 1000 (or its slow start of 18). */
static void run_big(void)
{
    size_t big_len = (size_t)1 << 20;
    char *big = calloc(1, big_len);
    struct source src = {.seed = 9, .fanout = 16, .depth = 1, .big = big, .big_len = big_len,
                         .one_per_pump = 1};
    struct burry_opts o;
    burry_opts_init(&o);
    o.window = 1000;
    struct walk_stats st = {.skipped = json_object(), .skipped_paths = json_array()};
    struct burry_err e = {0};
    struct seen seen = {.value_ok = 1};
    int rc = walk_run(&test_ops, &src, &o, big_sink, &seen, &st, &e);
    T_CHECK(rc == 0 && st.nodes == 1 + 16 && seen.value_ok, "big values: every node, every value whole");
    T_CHECK(src.max_pending <= 8, "big values: at most 8 reads of 1 MiB out at once (8 MiB), not all 16 children");
    for (size_t i = 0; i < seen.n; i++)
        free(seen.paths[i]);
    free(seen.paths);
    free(src.q);
    free(big);
    json_decref(st.skipped);
    json_decref(st.skipped_paths);
}

int main(void)
{
    run_big();
    run(1, 3, 4, 1);
    run(2, 5, 3, 7);
    run(3, 10, 3, 1000);
    run(4, 4, 5, 50);
    run(5, 1, 12, 3);
    T_DONE();
}
