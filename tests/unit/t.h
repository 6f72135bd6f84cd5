/* Minimal unit-test support: each check prints "ok - NAME" or
 * "not ok - NAME" (the lines tests/run.sh counts); main returns non-zero if
 * any check failed. */
#ifndef BURRY_T_H
#define BURRY_T_H

#include <stdio.h>
#include <string.h>

static int t_failed;

#define T_CHECK(cond, name)                                                        \
    do {                                                                           \
        if (cond) {                                                                \
            printf("ok - %s\n", name);                                             \
        } else {                                                                   \
            printf("not ok - %s (%s:%d: %s)\n", name, __FILE__, __LINE__, #cond);  \
            t_failed++;                                                            \
        }                                                                          \
    } while (0)

#define T_DONE() return t_failed ? 1 : 0

#endif
