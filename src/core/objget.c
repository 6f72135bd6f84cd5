/* Ranged object downloads (objget.h). */
#include "objget.h"

#include <stdlib.h>
#include <string.h>

static int fetch_next(struct objget *g, struct burry_err *e)
{
    struct http_resp r;
    int rc = g->fetch(g->ctx, g->off, g->off + OBJGET_RANGE - 1, &r, e);
    if (rc < 0)
        return rc;
    buf_free(&g->chunk);
    g->chunk_pos = 0;
    if (r.status == 416 && g->off == 0) { /* an empty object */
        buf_free(&r.body);
        g->size = 0;
        g->size_known = 1;
        return 0;
    }
    if (r.status == 416 || (r.status == 200 && g->off)) {
        buf_free(&r.body);
        return burry_errf(e, BURRY_EFAIL, "%s: the server ignored a ranged download (HTTP %ld)",
                          g->what, r.status);
    }
    unsigned long long total = g->off + r.body.len;
    const char *slash = strchr(r.header, '/');
    if (r.status == 206 && slash && slash[1] != '*')
        total = strtoull(slash + 1, NULL, 10);
    if (g->size_known && total != g->size) {
        buf_free(&r.body);
        return burry_errf(e, BURRY_EFAIL, "%s changed while it was read", g->what);
    }
    g->size = total;
    g->size_known = 1;
    g->chunk = r.body;
    g->off += r.body.len;
    if (!r.body.len && g->off < g->size)
        return burry_errf(e, BURRY_EFAIL, "%s ends early", g->what);
    return 0;
}

int objget_open(struct objget *g, objget_fetch_fn fetch, void *ctx, const char *what,
                struct burry_err *e)
{
    memset(g, 0, sizeof *g);
    g->fetch = fetch;
    g->ctx = ctx;
    g->what = what;
    buf_init(&g->chunk, OBJGET_RANGE + 1);
    return fetch_next(g, e);
}

ssize_t objget_read(struct objget *g, void *buf, size_t len, struct burry_err *e)
{
    if (g->chunk_pos >= g->chunk.len) {
        if (g->size_known && g->off >= g->size)
            return 0;
        int rc = fetch_next(g, e);
        if (rc < 0)
            return rc;
        if (g->chunk.len == 0)
            return 0;
    }
    size_t n = g->chunk.len - g->chunk_pos < len ? g->chunk.len - g->chunk_pos : len;
    memcpy(buf, g->chunk.p + g->chunk_pos, n);
    g->chunk_pos += n;
    return (ssize_t)n;
}

void objget_close(struct objget *g)
{
    buf_free(&g->chunk);
}
