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
    int port;
};

struct bysu_job {
    char *name, *node, *snapshot, *source;
    int keep, timeout;
    char *recipients, *recipients_file;   /* as configured; override [repository] */
    unsigned char (*pks)[32];              /* resolved age recipients; none: plaintext */
    size_t npks;
};

struct bysu_conf {
    char *path;
    char *repo_url;
    int keep;
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
 * "snapshot"?, "message"}...], "failed": N} whenever 0 is returned; the
 * run's own failures (lock held, bad job name) return a negative code. */
int bysu_run(const struct burry_opts *o, const struct bysu_conf *c, char **jobs, int njobs,
             int parallel, json_t **out, struct burry_err *e);

/* A Prometheus textfile for a run report, written atomically to path. */
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
