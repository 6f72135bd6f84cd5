/* Unary gRPC calls over HTTP/2 on libcurl, and the few pieces of the
 * protobuf wire format a caller needs to build its request and read the
 * reply. Meant for a source's bulk read where a server's JSON gateway costs
 * far more than its native API (etcd's Range); everything else keeps using
 * plain HTTP (http.h).
 *
 * http:// URLs speak HTTP/2 without TLS by prior knowledge (h2c), https://
 * URLs negotiate h2 by ALPN; TLS files and timeouts come from the options,
 * as for http.h. One connection per handle, reused across calls. */
#ifndef BURRY_GRPC_H
#define BURRY_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "opts.h"

struct grpc;

struct grpc *grpc_new(const struct burry_opts *o, struct burry_err *e);
void grpc_free(struct grpc *g); /* NULL ok */

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

/* Call method path (e.g. "/etcdserverpb.KV/Range") at base ("http://h:p")
 * with one request message. headers: NULL-terminated "Name: value" list
 * (credentials are wiped after use) or NULL. Returns 0 once an answer came,
 * whatever its status (reply->status says; the caller frees reply->body);
 * BURRY_EFAIL when none did, or it was larger than max_reply, or malformed
 * ("cannot reach etcd at ...", "... larger than N bytes"); BURRY_EINTR when
 * interrupted. what names the service for messages. */
int grpc_call(struct grpc *g, const char *what, const char *base, const char *path,
              const char *const *headers, const void *msg, size_t len, size_t max_reply,
              struct grpc_reply *reply, struct burry_err *e);

/* ---- protobuf wire format ---------------------------------------------- */

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* Append a varint field / a length-delimited field. 0 or -1 (no memory). */
int pb_put_varint(struct buf *b, unsigned field, uint64_t v);
int pb_put_bytes(struct buf *b, unsigned field, const void *p, size_t n);

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
