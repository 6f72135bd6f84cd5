/* zkload: the bulk-creator reference. Builds the standard benchmark tree
 * (COUNT znodes, fan-out 10, breadth-first numbering, 100-byte values) with
 * pipelined creates on one session of the single-threaded C client.
 *
 *   zkload HOST:PORT[/chroot] [COUNT [VALUE_BYTES [WINDOW]]]
 *
 * Node k (1..COUNT) is child number (k-1)%10 of node (k-1)/10, node 0 being
 * the root, and is called "n<digit>": node 1 is /n0, node 11 is /n0/n0. In
 * breadth-first order every parent is sent before its children, and a
 * session's requests are applied in order, so the pipeline needs no waits. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zookeeper/zookeeper.h>

#include "zkloop.h"

static long inflight, created, failures;
static int first_error;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The path of node k, written into out (at least 8 bytes per level). */
static void node_path(long k, char *out)
{
    char digits[64];
    int n = 0;
    while (k > 0) {
        digits[n++] = (char)('0' + (k - 1) % 10);
        k = (k - 1) / 10;
    }
    char *p = out;
    while (n > 0) {
        *p++ = '/';
        *p++ = 'n';
        *p++ = digits[--n];
    }
    *p = 0;
}

static void created_cb(int rc, const char *value, const void *data)
{
    (void)value;
    (void)data;
    inflight--;
    if (rc == ZOK) {
        created++;
    } else {
        failures++;
        if (!first_error)
            first_error = rc;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: zkload HOST:PORT[/chroot] [COUNT [VALUE_BYTES [WINDOW]]]\n");
        return 2;
    }
    long count = argc > 2 ? atol(argv[2]) : 100000;
    long vsize = argc > 3 ? atol(argv[3]) : 100;
    long window = argc > 4 ? atol(argv[4]) : 2000;
    if (count < 1 || vsize < 0 || window < 1) {
        fprintf(stderr, "zkload: bad arguments\n");
        return 2;
    }
    zoo_set_debug_level(0);
    zhandle_t *zh = zookeeper_init(argv[1], NULL, 30000, NULL, NULL, 0);
    if (!zh) {
        fprintf(stderr, "zkload: cannot start a session for %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    double t0 = now();
    while (zoo_state(zh) != ZOO_CONNECTED_STATE) {
        if (now() - t0 > 10 || loop_once(zh, 100) < 0) {
            fprintf(stderr, "zkload: cannot connect to %s\n", argv[1]);
            return 1;
        }
    }
    char *value = malloc((size_t)vsize + 1);
    char path[512];
    double start = now();
    long next = 1;
    while (next <= count || inflight > 0) {
        while (next <= count && inflight < window) {
            /* Deterministic content: the node number, then filler. */
            int k = snprintf(value, (size_t)vsize + 1, "value-%ld-", next);
            if (k < 0 || k > vsize)
                k = (int)vsize;
            memset(value + k, 'v', (size_t)(vsize - k));
            node_path(next, path);
            int rc = zoo_acreate(zh, path, value, (int)vsize, &ZOO_OPEN_ACL_UNSAFE, 0, created_cb,
                                 NULL);
            if (rc != ZOK) {
                fprintf(stderr, "zkload: create %s: %s\n", path, zerror(rc));
                return 1;
            }
            inflight++;
            next++;
        }
        if (loop_once(zh, 1000) < 0) {
            fprintf(stderr, "zkload: session lost\n");
            return 1;
        }
    }
    double secs = now() - start;
    printf("zkload: created %ld znodes in %.3f s (%.0f/s), window %ld, %ld-byte values\n", created,
           secs, (double)created / secs, window, vsize);
    if (failures)
        fprintf(stderr, "zkload: %ld creates failed (first: %s)\n", failures, zerror(first_error));
    zookeeper_close(zh);
    free(value);
    return failures ? 1 : 0;
}
