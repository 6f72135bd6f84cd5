/* Error context shared by the whole library: one message written at the point
 * of failure, a graded code the CLIs turn into an exit status. Library code
 * never prints to the terminal and never exits. */
#ifndef BURRY_ERR_H
#define BURRY_ERR_H

#include <stddef.h>

enum {
    BURRY_OK = 0,
    BURRY_EFAIL = -1,   /* the operation failed: exit 1 */
    BURRY_EUSAGE = -2,  /* usage or configuration error: exit 2 */
    BURRY_ENOENT = -3,  /* the named thing does not exist (a store key, a snapshot) */
    BURRY_EINTR = -4,   /* interrupted by a signal */
    BURRY_EEXIST = -5,  /* a store key that must be new exists already */
    BURRY_ETOOBIG = -6, /* larger than the limit the caller set: exit 1 */
    BURRY_ENOKEY = -7,  /* none of the given keys opens it (age): exit 1 */
};

struct burry_err {
    int code;
    char msg[1024];
};

/* Record an error (printf-style) and return code. The first error recorded
 * wins unless burry_err_clear() is called, so the root cause is kept. */
int burry_errf(struct burry_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the existing message with more context: "restore of '/a': <old>". */
int burry_err_prefix(struct burry_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void burry_err_clear(struct burry_err *e);

/* Set by the CLI's signal handler; long loops in the library poll it,
 * helper threads included: atomic (lock-free, so a signal handler may set
 * it), not merely volatile, which would be a data race between threads. */
extern _Atomic int burry_interrupted;

/* For work an interrupt must not cut short (a clean-up, a read the report
 * needs): burry_hold_interrupt clears the flag and returns what it was;
 * burry_resume_interrupt(was) sets it again if it was set, or if a signal
 * came meanwhile (which therefore still stops the held work). */
int burry_hold_interrupt(void);
void burry_resume_interrupt(int was);

#endif
