/* The generic tree walker: reads a tree source's nodes with many requests in
 * flight and hands them to a sink in archive order (depth first, children
 * sorted by name bytes), keeping in memory only the nodes read ahead. */
#ifndef BURRY_WALK_H
#define BURRY_WALK_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "node.h"
#include "opts.h"
#include "source.h"

typedef int (*walk_sink_fn)(void *ctx, const struct bnode *n, struct burry_err *e);

struct walk_stats {
    uint64_t nodes;          /* nodes handed to the sink */
    uint64_t bytes;          /* sum of their value sizes */
    json_t *skipped;         /* object: reason -> count (owned by the caller) */
    json_t *skipped_paths;   /* array of display paths skipped as unreadable */
};

/* Walk the whole tree of an open source (tree sources through read_submit
 * and pump, flat sources through scan). stats->skipped and
 * stats->skipped_paths must be created by the caller. */
int walk_run(const struct source_ops *ops, struct source *src, const struct burry_opts *o,
             walk_sink_fn sink, void *ctx, struct walk_stats *stats, struct burry_err *e);

/* Count a skipped node under reason (also used by flat sources' callers). */
void walk_count_skip(struct walk_stats *st, const char *reason);

#endif
