/* The poll loop both bench programs drive the single-threaded ZooKeeper
 * client with (the same shape as src/sources/zk.c's, kept separate so the
 * references depend on nothing of burry's). */
#ifndef BENCH_ZKLOOP_H
#define BENCH_ZKLOOP_H

#include <errno.h>
#include <poll.h>
#include <sys/time.h>
#include <zookeeper/zookeeper.h>

/* One round of the client loop; returns -1 when the session is gone. */
static int loop_once(zhandle_t *zh, int timeout_ms)
{
    int fd = -1, interest = 0;
    struct timeval tv;
    zookeeper_interest(zh, &fd, &interest, &tv);
    int st = zoo_state(zh);
    if (st == ZOO_EXPIRED_SESSION_STATE || st == ZOO_AUTH_FAILED_STATE)
        return -1;
    long wait = tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (wait > timeout_ms)
        wait = timeout_ms;
    struct pollfd p = { .fd = fd, .events = 0, .revents = 0 };
    if (interest & ZOOKEEPER_READ)
        p.events |= POLLIN;
    if (interest & ZOOKEEPER_WRITE)
        p.events |= POLLOUT;
    int n = poll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, (int)wait);
    if (n < 0 && errno != EINTR)
        return -1;
    if (fd < 0)
        return 0;
    int ev = 0;
    if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
        ev |= ZOOKEEPER_READ;
    if (n > 0 && (p.revents & POLLOUT))
        ev |= ZOOKEEPER_WRITE;
    /* the client reads one answer per call: drain what arrived */
    int rc = zookeeper_process(zh, ev);
    for (int i = 0; rc == ZOK && (ev & ZOOKEEPER_READ) && i < 1024; i++)
        rc = zookeeper_process(zh, ZOOKEEPER_READ);
    return 0;
}

#endif
