/* Logging goes through a callback the program installs; the library itself
 * never writes to a terminal. Levels: 0 error/warning, 1 info, 2 detail. */
#ifndef BURRY_LOG_H
#define BURRY_LOG_H

enum { BLOG_WARN = 0, BLOG_INFO = 1, BLOG_DEBUG = 2 };

typedef void (*burry_log_fn)(void *ctx, int level, const char *msg);

struct burry_log {
    burry_log_fn fn;
    void *ctx;
    int level; /* messages above this level are dropped before formatting */
};

void blog(const struct burry_log *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Progress: called at most a few times a second by long operations.
 * done/total are node counts (total 0 when unknown). */
typedef void (*burry_progress_fn)(void *ctx, const char *what, unsigned long long done,
                                  unsigned long long total, unsigned long long bytes);

#endif
