/* Option defaults, secret wiping (opts.h) and the logging helper (log.h). */
#include "opts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void burry_opts_init(struct burry_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_s = 10;
    o->compress = BURRY_COMPRESS_ZSTD;
    o->window = 1000;
    o->log.level = BLOG_INFO;
}

static void wipe_str(char *s)
{
    if (!s)
        return;
    volatile char *v = s;
    while (*v)
        *v++ = 0;
    free(s);
}

void burry_opts_wipe(struct burry_opts *o)
{
    for (int i = 0; i < o->nauth; i++) {
        free(o->auth[i].scheme);
        wipe_str(o->auth[i].secret);
        o->auth[i].scheme = o->auth[i].secret = NULL;
    }
    o->nauth = 0;
    free(o->user);
    wipe_str(o->password);
    wipe_str(o->token);
    o->user = o->password = o->token = NULL;
    free(o->store_key_id);
    wipe_str(o->store_secret);
    o->store_key_id = o->store_secret = NULL;
    if (o->identities) {
        volatile unsigned char *v = (volatile unsigned char *)o->identities;
        for (size_t i = 0; i < o->nidentities * sizeof *o->identities; i++)
            v[i] = 0;
    }
    free(o->identities);
    free(o->recipients);
    o->identities = o->recipients = NULL;
    o->nidentities = o->nrecipients = 0;
}

void blog(const struct burry_log *l, int level, const char *fmt, ...)
{
    if (!l || !l->fn || level > l->level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    l->fn(l->ctx, level, msg);
}
