/* The central side of bysu: its configuration (bysu.conf), the run that
 * pulls every job into the repository (node snapshots over the system ssh,
 * infrastructure services through burry_backup), and the verbs that read
 * the repository back. */
#ifndef BYSU_COLLECT_H
#define BYSU_COLLECT_H

#include <jansson.h>

#include "err.h"
#include "opts.h"

#define BYSU_CONF "/etc/bysu/bysu.conf"
#define BYSU_MAX_ITEMS 512

struct bysu_node {
    char *name, *host, *user, *identity, *known_hosts;
    char *ciphers; /* "default", a list for ssh's Ciphers, or NULL: prefer AES-GCM */
    int port;
};

/* How the central side stores a node's tar: zstd-compressed (the default) or
 * exactly as the node sent it. */
enum bysu_compress { BYSU_COMPRESS_UNSET, BYSU_COMPRESS_ZSTD, BYSU_COMPRESS_NONE };

struct bysu_job {
    char *name, *node, *snapshot, *source;
    int keep, timeout;
    enum bysu_compress compress;
    char *recipients, *recipients_file;   /* as configured; override [repository] */
    unsigned char (*pks)[32];              /* resolved age recipients; none: plaintext */
    size_t npks;
};

struct bysu_conf {
    char *path;
    char *repo_url;
    int keep;
    enum bysu_compress compress;
    char *recipients, *recipients_file;   /* [repository] defaults for every job */
    struct bysu_node nodes[BYSU_MAX_ITEMS];
    int nnodes;
    struct bysu_job jobs[BYSU_MAX_ITEMS];
    int njobs;
};

int bysu_conf_load(const char *path, struct bysu_conf **out, struct burry_err *e);
void bysu_conf_free(struct bysu_conf *c);
/* The configured job named name, or NULL with e set. */
const struct bysu_job *bysu_conf_job(const struct bysu_conf *c, const char *name, struct burry_err *e);

/* Run the named jobs (all when njobs is 0), at most parallel at once. *out
 * receives {"jobs": [{"job", "result": "ok"|"failed", "seconds", "bytes",
 * "snapshot"?, "message", "last_success"?}...], "failed": N} whenever 0 is
 * returned ("last_success": unix time, now for a job that succeeded, else
 * that of its newest snapshot in the repository, absent if it has none); the
 * run's own failures (lock held, bad job name) return a negative code. */
int bysu_run(const struct burry_opts *o, const struct bysu_conf *c, char **jobs, int njobs,
             int parallel, json_t **out, struct burry_err *e);

/* The checks bysu run makes on a node's stream, on a whole uncompressed tar
 * in memory: every regular file's size and SHA-256 as MANIFEST.json (the
 * last entry) lists them, no file missing or unlisted, no entry twice, and
 * no path that is absolute or has a ".." component. *manifest (when not
 * NULL) receives the parsed manifest on success. */
int bysu_check_snapshot(const void *tar, size_t len, json_t **manifest, struct burry_err *e);

/* A Prometheus textfile for a run report, written atomically to path; a
 * job's last success time is its "last_success", so a failed job keeps the
 * time of its newest snapshot. */
int bysu_write_metrics(const json_t *report, const char *path, struct burry_err *e);

/* Copy the archive of snapshot ref (ID or "latest") of job to out_fd,
 * checking it against the SHA-256 its manifest records. With decrypt, an
 * encrypted archive is decrypted with o->identities on the way (a wrong key,
 * damage or truncation fails); an unencrypted one is copied as it is. */
int bysu_get(const struct burry_opts *o, const struct bysu_conf *c, const char *job,
             const char *ref, int decrypt, int out_fd, json_t **manifest, struct burry_err *e);

/* Check every published snapshot of job (all when NULL): the stored archive
 * against its sidecar's size and SHA-256 and, when it is unencrypted or
 * o->identities can decrypt it, every file against the MANIFEST.json it
 * holds; infrastructure snapshots through burry_verify. *out receives
 * {"snapshots": [{"id", "job", "ok", "error"?, "stored_only"?}...],
 * "damaged": N} whenever 0 is returned. */
int bysu_verify(const struct burry_opts *o, const struct bysu_conf *c, const char *job, json_t **out,
                struct burry_err *e);

#endif
