/* Error context (err.h) and the interrupt flag. */
#include "err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* a signal handler may touch only a lock-free atomic object */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic int must be lock-free");
_Atomic int burry_interrupted;

int burry_hold_interrupt(void)
{
    return atomic_exchange(&burry_interrupted, 0);
}

void burry_resume_interrupt(int was)
{
    if (was)
        burry_interrupted = 1;
}

int burry_errf(struct burry_err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    if (e->code != 0 && e->msg[0])
        return code; /* keep the root cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

int burry_err_prefix(struct burry_err *e, const char *fmt, ...)
{
    if (!e)
        return BURRY_EFAIL;
    char pre[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strnlen(pre, sizeof e->msg - 1);
    memcpy(e->msg, pre, n);
    snprintf(e->msg + n, sizeof e->msg - n, ": %s", old);
    return e->code ? e->code : BURRY_EFAIL;
}

void burry_err_clear(struct burry_err *e)
{
    e->code = 0;
    e->msg[0] = 0;
}
