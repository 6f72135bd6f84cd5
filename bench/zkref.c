/* zkref: the reference walker burry's backup is compared with. Reads a whole
 * ZooKeeper tree with pipelined requests on one session of the
 * single-threaded C client: getData for every node, getChildren only when
 * the stat says there are children, and with -a also getACL (what a backup
 * needs). /zookeeper is skipped. Prints the node count and the time.
 *
 *   zkref [-a] HOST:PORT[/chroot] [WINDOW]                                 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zookeeper/zookeeper.h>

#include "zkloop.h"

struct node {
    int waiting;   /* answers still due */
    int failed;
    char path[];
};

static zhandle_t *zh;
static int with_acl;
static long inflight, nodes, failures;
static unsigned long long bytes;
static char **stack; /* paths still to read: depth first keeps it small */
static size_t nstack, capstack;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void push(char *p)
{
    if (nstack == capstack) {
        capstack = capstack ? 2 * capstack : 4096;
        stack = realloc(stack, capstack * sizeof *stack);
        if (!stack) {
            fprintf(stderr, "zkref: out of memory\n");
            exit(1);
        }
    }
    stack[nstack++] = p;
}

static void node_done(struct node *n)
{
    if (--n->waiting > 0)
        return;
    if (n->failed)
        failures++;
    else
        nodes++;
    inflight--;
    free(n);
}

static void children_cb(int rc, const struct String_vector *kids, const void *data)
{
    struct node *n = (struct node *)data;
    if (rc != ZOK) {
        n->failed = 1;
    } else {
        int root = strcmp(n->path, "/") == 0;
        size_t plen = root ? 0 : strlen(n->path);
        for (int i = 0; i < kids->count; i++) {
            if (root && strcmp(kids->data[i], "zookeeper") == 0)
                continue;
            size_t k = strlen(kids->data[i]);
            char *p = malloc(plen + k + 2);
            memcpy(p, n->path, plen);
            p[plen] = '/';
            memcpy(p + plen + 1, kids->data[i], k + 1);
            push(p);
        }
    }
    node_done(n);
}

static void data_cb(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    (void)value;
    struct node *n = (struct node *)data;
    if (rc != ZOK) {
        n->failed = 1;
    } else {
        if (len > 0)
            bytes += (unsigned long long)len;
        if (st->numChildren > 0 &&
            zoo_aget_children(zh, n->path, 0, children_cb, n) == ZOK)
            n->waiting++;
    }
    node_done(n);
}

static void acl_cb(int rc, struct ACL_vector *acl, struct Stat *st, const void *data)
{
    (void)acl;
    (void)st;
    struct node *n = (struct node *)data;
    if (rc != ZOK)
        n->failed = 1;
    node_done(n);
}

int main(int argc, char **argv)
{
    int a = 1;
    if (a < argc && strcmp(argv[a], "-a") == 0) {
        with_acl = 1;
        a++;
    }
    if (a >= argc) {
        fprintf(stderr, "usage: zkref [-a] HOST:PORT[/chroot] [WINDOW]\n");
        return 2;
    }
    const char *hosts = argv[a];
    long window = a + 1 < argc ? atol(argv[a + 1]) : 2000;
    if (window < 1)
        window = 1;
    zoo_set_debug_level(0);
    zh = zookeeper_init(hosts, NULL, 30000, NULL, NULL, 0);
    if (!zh) {
        fprintf(stderr, "zkref: cannot start a session for %s: %s\n", hosts, strerror(errno));
        return 1;
    }
    double t0 = now();
    while (zoo_state(zh) != ZOO_CONNECTED_STATE) {
        if (now() - t0 > 10 || loop_once(zh, 100) < 0) {
            fprintf(stderr, "zkref: cannot connect to %s\n", hosts);
            return 1;
        }
    }
    double start = now();
    push(strdup("/"));
    while (nstack > 0 || inflight > 0) {
        while (nstack > 0 && inflight < window) {
            char *p = stack[--nstack];
            size_t len = strlen(p);
            struct node *n = malloc(sizeof *n + len + 1);
            n->waiting = 0;
            n->failed = 0;
            memcpy(n->path, p, len + 1);
            free(p);
            inflight++;
            /* The ACL is asked before the data, as burry does. */
            n->waiting++;
            if (with_acl && zoo_aget_acl(zh, n->path, acl_cb, n) == ZOK)
                n->waiting++;
            if (zoo_aget(zh, n->path, 0, data_cb, n) == ZOK)
                n->waiting++;
            node_done(n); /* drops the submit's own hold */
        }
        if (loop_once(zh, 1000) < 0) {
            fprintf(stderr, "zkref: session lost\n");
            return 1;
        }
    }
    double secs = now() - start;
    printf("zkref: read %ld znodes (%llu bytes of data%s) in %.3f s (%.0f/s), window %ld\n", nodes,
           bytes, with_acl ? ", with ACLs" : "", secs, (double)nodes / secs, window);
    if (failures)
        fprintf(stderr, "zkref: %ld nodes failed\n", failures);
    zookeeper_close(zh);
    free(stack);
    return failures ? 1 : 0;
}
