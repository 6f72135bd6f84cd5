/* bysu: the command line of the central snapshot collector and of its node
 * agent. Parses arguments, calls collect.c and agent.c, prints results. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "age.h"
#include "agent.h"
#include "burry.h"
#include "catalog.h"
#include "collect.h"

static const char usage[] =
    "usage: bysu run [-c CONF] [--parallel N] [--json] [--metrics-file FILE] [-v] [JOB...]\n"
    "       bysu ls [-c CONF] [--json] [JOB]\n"
    "       bysu get [-c CONF] JOB [ID|latest] [--decrypt --identity FILE] [-o FILE|-]\n"
    "       bysu verify [-c CONF] [--identity FILE] [--json] [JOB]\n"
    "       bysu prune [-c CONF] [--json] [JOB]\n"
    "       bysu agent [-c AGENT_CONF]   (the forced command on a node)\n"
    "       bysu version\n";

static void log_fn(void *ctx, int level, const char *msg)
{
    fprintf(stderr, "bysu: %s\n", msg);
}

static void on_signal(int sig)
{
    burry_interrupted = 1;
}

static int exit_code(int rc)
{
    return rc == BURRY_EUSAGE ? 2 : rc < 0 ? 1 : 0;
}

struct args {
    const char *conf, *out, *metrics;
    const char *identities[16];
    int json, parallel, verbose, decrypt, nidentities;
    char **rest;
    int nrest;
};

static int parse(int argc, char **argv, struct args *a, const char *deflt)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
        {"parallel", required_argument, NULL, 'p'}, {"metrics-file", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'}, {"verbose", no_argument, NULL, 'v'},
        {"decrypt", no_argument, NULL, 'd'}, {"identity", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *a = (struct args){.conf = deflt, .parallel = 4};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:o:v", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': a->conf = optarg; break;
        case 'j': a->json = 1; break;
        case 'm': a->metrics = optarg; break;
        case 'o': a->out = optarg; break;
        case 'v': a->verbose++; break;
        case 'd': a->decrypt = 1; break;
        case 'i':
            if (a->nidentities == 16) {
                fprintf(stderr, "bysu: at most 16 --identity files\n");
                return -1;
            }
            a->identities[a->nidentities++] = optarg;
            break;
        case 'p':
            a->parallel = atoi(optarg);
            if (a->parallel < 1 || a->parallel > 256) {
                fprintf(stderr, "bysu: --parallel wants 1 to 256 (got '%s')\n", optarg);
                return -1;
            }
            break;
        case 'h': fputs(usage, stdout); exit(0);
        default: fputs(usage, stderr); return -1;
        }
    }
    a->rest = argv + optind;
    a->nrest = argc - optind;
    return 0;
}

static void print_json(json_t *j)
{
    char *t = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (t)
        puts(t);
    free(t);
}

/* A refused request goes to syslog (LOG_AUTH, like sshd's own refusals)
 * with the client's address from the ssh session, printable characters
 * only: the request is the client's text. */
static void log_refusal(const char *msg)
{
    const char *conn = getenv("SSH_CONNECTION");
    if (!conn || !*conn)
        conn = getenv("SSH_CLIENT");
    char from[96] = "", text[300];
    unsigned ip_len = 0, port_len = 0;
    if (conn) {
        ip_len = (unsigned)strcspn(conn, " ");
        const char *port = conn + ip_len + (conn[ip_len] == ' ');
        port_len = (unsigned)strcspn(port, " ");
        snprintf(from, sizeof from, "%.*s port %.*s", ip_len > 45 ? 45 : (int)ip_len, conn,
                 port_len > 5 ? 5 : (int)port_len, port);
    }
    for (char *c = from; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    snprintf(text, sizeof text, "%.290s", msg);
    for (char *c = text; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    openlog("bysu-agent", LOG_PID, LOG_AUTH);
    syslog(LOG_WARNING, "%s from %s", text, from[0] ? from : "an unknown client (no SSH_CONNECTION)");
    closelog();
}

static int cmd_agent(int argc, char **argv)
{
    struct args a;
    struct agent_conf *c = NULL;
    struct burry_err e = {0};
    if (parse(argc, argv, &a, BYSU_AGENT_CONF) < 0)
        return 2;
    int rc = agent_conf_load(a.conf, &c, &e);
    if (rc == 0) {
        rc = agent_serve(c, getenv("SSH_ORIGINAL_COMMAND"), 1, 2, &e);
        if (rc == BURRY_EUSAGE && !strncmp(e.msg, "refused '", 9))
            log_refusal(e.msg);
    }
    agent_conf_free(c);
    if (rc < 0)
        fprintf(stderr, "bysu agent: %s\n", e.msg);
    return exit_code(rc);
}

static int cmd_run(int argc, char **argv, struct burry_opts *o)
{
    struct args a;
    struct bysu_conf *c = NULL;
    struct burry_err e = {0};
    json_t *rep = NULL;
    if (parse(argc, argv, &a, BYSU_CONF) < 0)
        return 2;
    o->log.level = a.verbose ? BLOG_INFO + a.verbose - 1 : BLOG_WARN;
    int rc = bysu_conf_load(a.conf, &c, &e);
    if (rc == 0)
        rc = bysu_run(o, c, a.rest, a.nrest, a.parallel, &rep, &e);
    if (rc < 0) {
        fprintf(stderr, "bysu: %s\n", e.msg);
        bysu_conf_free(c);
        return exit_code(rc);
    }
    if (a.json) {
        print_json(rep);
    } else {
        size_t i;
        json_t *j;
        printf("%-24s %-7s %8s %12s  %s\n", "JOB", "RESULT", "SECONDS", "BYTES", "MESSAGE");
        json_array_foreach(json_object_get(rep, "jobs"), i, j)
            printf("%-24s %-7s %8.1f %12lld  %s\n", json_string_value(json_object_get(j, "job")),
                   json_string_value(json_object_get(j, "result")),
                   json_number_value(json_object_get(j, "seconds")),
                   (long long)json_integer_value(json_object_get(j, "bytes")),
                   json_string_value(json_object_get(j, "message")) ?: "");
    }
    int failed = (int)json_integer_value(json_object_get(rep, "failed"));
    if (a.metrics && bysu_write_metrics(rep, a.metrics, &e) < 0) {
        fprintf(stderr, "bysu: %s\n", e.msg);
        failed = 1;
    }
    json_decref(rep);
    bysu_conf_free(c);
    return failed ? 1 : 0;
}

static int cmd_ls(int argc, char **argv, struct burry_opts *o)
{
    struct args a;
    struct bysu_conf *c = NULL;
    struct burry_err e = {0};
    json_t *all = NULL;
    if (parse(argc, argv, &a, BYSU_CONF) < 0)
        return 2;
    if (a.nrest > 1) {
        fputs(usage, stderr);
        return 2;
    }
    const char *job = a.nrest ? a.rest[0] : NULL;
    int rc = bysu_conf_load(a.conf, &c, &e);
    if (rc == 0 && job)
        rc = catalog_check_name(job, &e);
    if (rc == 0)
        rc = burry_list(o, c->repo_url, job, &all, &e);
    /* a job no longer configured still lists what the repository holds of
     * it; a name that is neither is a mistake */
    if (rc == 0 && job && !json_array_size(json_object_get(all, "snapshots")) && !bysu_conf_job(c, job, &e)) {
        burry_err_prefix(&e, "nothing to list");
        rc = BURRY_EUSAGE;
        json_decref(all);
        all = NULL;
    }
    if (rc < 0) {
        fprintf(stderr, "bysu: %s\n", e.msg);
        bysu_conf_free(c);
        return exit_code(rc);
    }
    if (a.json) {
        print_json(all);
    } else {
        size_t i;
        json_t *s;
        printf("%-24s %-28s %-26s %12s\n", "JOB", "ID", "TIME", "BYTES");
        json_array_foreach(json_object_get(all, "snapshots"), i, s)
            if (json_object_get(s, "damaged"))
                printf("%-24s %-28s DAMAGED: %s\n", json_string_value(json_object_get(s, "name")) ?: "",
                       json_string_value(json_object_get(s, "id")) ?: "",
                       json_string_value(json_object_get(s, "damaged")) ?: "");
            else
                printf("%-24s %-28s %-26s %12lld\n", json_string_value(json_object_get(s, "name")) ?: "",
                   json_string_value(json_object_get(s, "id")) ?: "",
                   json_string_value(json_object_get(s, "time")) ?: "",
                   (long long)json_integer_value(json_object_get(s, "bytes")));
    }
    json_decref(all);
    bysu_conf_free(c);
    return 0;
}

/* Identity files into o->identities (wiped with o). */
static int load_identities(struct burry_opts *o, const struct args *a, struct burry_err *e)
{
    for (int i = 0; i < a->nidentities; i++) {
        unsigned char(*sks)[AGE_KEY_LEN] = NULL;
        size_t n = 0;
        int rc = age_read_identities(a->identities[i], &sks, &n, e);
        if (rc < 0)
            return rc;
        void *grown = realloc(o->identities, (o->nidentities + n) * sizeof *sks);
        if (!grown) {
            OPENSSL_cleanse(sks, n * sizeof *sks);
            free(sks);
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        }
        o->identities = grown;
        memcpy(o->identities + o->nidentities, sks, n * sizeof *sks);
        o->nidentities += n;
        OPENSSL_cleanse(sks, n * sizeof *sks);
        free(sks);
    }
    return 0;
}

static int cmd_get(int argc, char **argv, struct burry_opts *o)
{
    struct args a;
    struct bysu_conf *c = NULL;
    struct burry_err e = {0};
    json_t *m = NULL;
    char *tmp = NULL;
    int fd = 1, rc;
    if (parse(argc, argv, &a, BYSU_CONF) < 0)
        return 2;
    if (a.nrest < 1 || a.nrest > 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (a.decrypt != (a.nidentities > 0)) {
        fprintf(stderr, "bysu: %s\n%s", a.decrypt ? "--decrypt wants --identity FILE" : "--identity goes with --decrypt",
                usage);
        return 2;
    }
    if ((rc = bysu_conf_load(a.conf, &c, &e)) < 0)
        goto out;
    if ((rc = load_identities(o, &a, &e)) < 0)
        goto out;
    if (a.out && strcmp(a.out, "-")) {
        /* into a temporary file next to FILE, renamed only on success */
        if (asprintf(&tmp, "%s.partial-XXXXXX", a.out) < 0) {
            tmp = NULL;
            rc = burry_errf(&e, BURRY_EFAIL, "out of memory");
            goto out;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
            rc = burry_errf(&e, BURRY_EFAIL, "cannot create '%s' (%s)", tmp, strerror(errno));
            fd = 1;
            goto out;
        }
    } else if (isatty(1)) {
        rc = burry_errf(&e, BURRY_EUSAGE, "not writing an archive to a terminal; give -o FILE or redirect");
        goto out;
    }
    rc = bysu_get(o, c, a.rest[0], a.nrest > 1 ? a.rest[1] : "latest", a.decrypt, fd, &m, &e);
    if (fd != 1) {
        if (rc == 0 && fsync(fd) < 0)
            rc = burry_errf(&e, BURRY_EFAIL, "cannot write '%s' (%s)", tmp, strerror(errno));
        if (close(fd) < 0 && rc == 0)
            rc = burry_errf(&e, BURRY_EFAIL, "cannot write '%s' (%s)", tmp, strerror(errno));
        if (rc == 0 && rename(tmp, a.out) < 0)
            rc = burry_errf(&e, BURRY_EFAIL, "cannot rename '%s' to '%s' (%s)", tmp, a.out, strerror(errno));
        if (rc < 0)
            unlink(tmp);
    }
out:
    if (rc < 0)
        fprintf(stderr, "bysu: %s\n", e.msg);
    free(tmp);
    json_decref(m);
    bysu_conf_free(c);
    return exit_code(rc);
}

static int cmd_verify(int argc, char **argv, struct burry_opts *o)
{
    struct args a;
    struct bysu_conf *c = NULL;
    struct burry_err e = {0};
    json_t *rep = NULL;
    int rc;
    if (parse(argc, argv, &a, BYSU_CONF) < 0)
        return 2;
    if (a.nrest > 1 || a.decrypt) {
        fputs(usage, stderr);
        return 2;
    }
    if ((rc = bysu_conf_load(a.conf, &c, &e)) == 0 && (rc = load_identities(o, &a, &e)) == 0)
        rc = bysu_verify(o, c, a.nrest ? a.rest[0] : NULL, &rep, &e);
    if (rc < 0) {
        fprintf(stderr, "bysu: %s\n", e.msg);
        bysu_conf_free(c);
        return exit_code(rc);
    }
    if (a.json) {
        json_t *j = json_pack("{s:O}", "snapshots", json_object_get(rep, "snapshots"));
        print_json(j);
        json_decref(j);
    } else {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(rep, "snapshots"), i, s) {
            const char *id = json_string_value(json_object_get(s, "id")) ?: "";
            const char *job = json_string_value(json_object_get(s, "job")) ?: "";
            if (json_is_true(json_object_get(s, "not_checked")))
                printf("%s  %s  not checked: %s\n", id, job, json_string_value(json_object_get(s, "error")) ?: "");
            else if (!json_is_true(json_object_get(s, "ok")))
                printf("%s  %s  DAMAGED: %s\n", id, job, json_string_value(json_object_get(s, "error")) ?: "");
            else if (json_is_true(json_object_get(s, "stored_only")))
                printf("%s  %s  ok (stored bytes only; encrypted)\n", id, job);
            else
                printf("%s  %s  ok\n", id, job);
        }
    }
    int damaged = (int)json_integer_value(json_object_get(rep, "damaged"));
    int unchecked = (int)json_integer_value(json_object_get(rep, "not_checked"));
    json_decref(rep);
    bysu_conf_free(c);
    return damaged || unchecked ? 1 : 0;
}

static int cmd_prune(int argc, char **argv, struct burry_opts *o)
{
    struct args a;
    struct bysu_conf *c = NULL;
    struct burry_err e = {0};
    if (parse(argc, argv, &a, BYSU_CONF) < 0)
        return 2;
    if (a.nrest > 1) {
        fputs(usage, stderr);
        return 2;
    }
    int rc = bysu_conf_load(a.conf, &c, &e), deleted = 0, failed = 0;
    json_t *all = json_array();
    for (int i = 0; rc == 0 && i < c->njobs; i++) {
        const struct bysu_job *j = &c->jobs[i];
        if (a.nrest && strcmp(a.rest[0], j->name))
            continue;
        json_t *pr = NULL;
        if (burry_prune(o, c->repo_url, j->name, j->keep, 0, NULL, &pr, &e) < 0) {
            fprintf(stderr, "bysu: %s: %s\n", j->name, e.msg); /* the other jobs go on */
            burry_err_clear(&e);
            failed++;
            continue;
        }
        deleted += (int)json_array_size(json_object_get(pr, "deleted"));
        json_array_extend(all, json_object_get(pr, "deleted"));
        json_decref(pr);
    }
    if (rc == 0 && a.nrest && !bysu_conf_job(c, a.rest[0], &e))
        rc = BURRY_EUSAGE;
    if (rc < 0)
        fprintf(stderr, "bysu: %s\n", e.msg);
    else if (a.json) {
        json_t *j = json_pack("{s:O}", "deleted", all);
        print_json(j);
        json_decref(j);
    } else
        printf("deleted %d snapshots\n", deleted);
    json_decref(all);
    bysu_conf_free(c);
    return rc == 0 && failed ? 1 : exit_code(rc);
}

int main(int argc, char **argv)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* the agent's: sshd hangs up a session it ends */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (!strcmp(verb, "agent"))
        return cmd_agent(argc - 1, argv + 1);
    if (!strcmp(verb, "version") || !strcmp(verb, "--version")) {
        printf("bysu %s\n", BURRY_VERSION);
        return 0;
    }
    struct burry_opts o;
    burry_opts_init(&o);
    o.log.fn = log_fn;
    o.log.level = BLOG_WARN;
    int rc;
    if (!strcmp(verb, "run"))
        rc = cmd_run(argc - 1, argv + 1, &o);
    else if (!strcmp(verb, "ls"))
        rc = cmd_ls(argc - 1, argv + 1, &o);
    else if (!strcmp(verb, "get"))
        rc = cmd_get(argc - 1, argv + 1, &o);
    else if (!strcmp(verb, "verify"))
        rc = cmd_verify(argc - 1, argv + 1, &o);
    else if (!strcmp(verb, "prune"))
        rc = cmd_prune(argc - 1, argv + 1, &o);
    else if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
        fputs(usage, stdout);
        rc = 0;
    } else {
        fprintf(stderr, "bysu: unknown command '%s'\n%s", verb, usage);
        rc = 2;
    }
    burry_opts_wipe(&o);
    return rc;
}
