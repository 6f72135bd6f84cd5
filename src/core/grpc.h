/* Unary gRPC calls over HTTP/2 on libcurl, and the few pieces of the
 * protobuf wire format a caller needs to build its request and read the
 * reply. Meant for a source's bulk work where a server's JSON gateway costs
 * far more than its native API (etcd's Range and Txn); everything else
 * keeps using plain HTTP (http.h).
 *
 * http:// URLs speak HTTP/2 without TLS by prior knowledge (h2c), https://
 * URLs negotiate h2 by ALPN; TLS files and timeouts come from the options,
 * as for http.h. A handle runs up to a fixed number of calls at once, each
 * on its own stream, finishing through a callback run only inside
 * grpc_pump; grpc_call is the synchronous form. A handle is used by one
 * thread at a time. */
#ifndef BURRY_GRPC_H
#define BURRY_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "opts.h"

struct grpc;

/* A handle for up to max_inflight (1..64) calls in flight at once. */
struct grpc *grpc_new(const struct burry_opts *o, size_t max_inflight, struct burry_err *e);
/* Abandons calls still in flight without running their callbacks. */
void grpc_free(struct grpc *g); /* NULL ok */
/* Calls in flight are not cut short when the program is interrupted: see
 * http_multi_set_drain. Off by default. */
void grpc_set_drain(struct grpc *g, int on);

/* gRPC status codes a caller acts on (the rest are reported as they come). */
#define GRPC_OK 0
#define GRPC_RESOURCE_EXHAUSTED 8
#define GRPC_OUT_OF_RANGE 11
#define GRPC_UNIMPLEMENTED 12
#define GRPC_UNAUTHENTICATED 16

struct grpc_reply {
    int status;      /* grpc-status; -1 when the answer was not gRPC at all */
    long http;       /* HTTP status of the answer */
    char msg[256];   /* grpc-message, percent-decoded ("" when none) */
    struct buf body; /* the reply message without its framing (status 0) */
};

/* How one call ended. rc is 0 once an answer came, whatever its status
 * (reply says), or <0 when none did, it was larger than max_reply or
 * malformed (err says why: "cannot reach etcd at ...", "... larger than N
 * bytes"; BURRY_EINTR when interrupted). reply and err are valid only
 * during the call; reply->body is freed after it unless the callback takes
 * it (buf_take). The callback may submit; it must not pump or free. */
typedef void (*grpc_cb)(void *ctx, int rc, struct grpc_reply *reply, const struct burry_err *err);

/* Start a call of method path (e.g. "/etcdserverpb.KV/Range") at base
 * ("http://h:p") with one request message (copied). headers: a
 * NULL-terminated "Name: value" list or NULL, copied and the copies wiped
 * when the call ends (they may carry credentials). what names the service
 * for messages ("etcd"; kept, not copied). BURRY_EFAIL when there is no
 * room or no memory; the callback then never runs. */
int grpc_submit(struct grpc *g, const char *what, const char *base, const char *path,
                const char *const *headers, const void *msg, size_t len, size_t max_reply,
                grpc_cb cb, void *ctx, struct burry_err *e);
/* Calls submitted whose callbacks have not run yet; room for more. */
size_t grpc_inflight(const struct grpc *g);
size_t grpc_room(const struct grpc *g);
/* Move data for up to timeout_ms (0: only what is ready now), returning as
 * soon as at least one call finished: the number of callbacks run (>= 0),
 * or BURRY_EFAIL when libcurl itself failed. */
int grpc_pump(struct grpc *g, int timeout_ms, struct burry_err *e);

/* One call, waiting for its end (the handle needs room for it). Returns 0
 * once an answer came, whatever its status (reply->status says; the caller
 * frees reply->body), or the error the callback would have had. */
int grpc_call(struct grpc *g, const char *what, const char *base, const char *path,
              const char *const *headers, const void *msg, size_t len, size_t max_reply,
              struct grpc_reply *reply, struct burry_err *e);

/* ---- protobuf wire format ---------------------------------------------- */

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* Append a varint field / a length-delimited field. 0 or -1 (no memory). */
int pb_put_varint(struct buf *b, unsigned field, uint64_t v);
int pb_put_bytes(struct buf *b, unsigned field, const void *p, size_t n);
/* The head of a length-delimited field whose n bytes the caller appends
 * next (a nested message built in place); 0 or -1. */
int pb_put_head(struct buf *b, unsigned field, size_t n);
/* Bytes a varint of v takes; bytes a length-delimited field of n takes. */
size_t pb_varint_size(uint64_t v);
size_t pb_bytes_size(unsigned field, size_t n);

struct pb_reader {
    const unsigned char *p, *end;
};

struct pb_field {
    unsigned num;              /* field number */
    unsigned wire;             /* PB_* */
    uint64_t v;                /* PB_VARINT, PB_I64, PB_I32: the value */
    const unsigned char *data; /* PB_LEN: the bytes (inside the message) */
    size_t len;
};

/* The next field of a message: 1 with *f, 0 at the end, -1 when the bytes
 * are not a valid message (truncated, bad varint, unknown wire type). */
int pb_next(struct pb_reader *r, struct pb_field *f);

#endif
