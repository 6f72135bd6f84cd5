/* burry: the command line. Parses arguments into options, calls one library
 * verb (burry.h) and prints its result as a human summary or as JSON. The
 * original Go tool's flags (-e, -i, -t, -o, -s, -b) are mapped onto the
 * verbs in legacy.c's style at the bottom of this file. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "age.h"
#include "burry.h"
#include "gozip.h"
#include "format.h"

enum verb { V_NONE, V_BACKUP, V_RESTORE, V_LS, V_SHOW, V_VERIFY, V_DUMP, V_PRUNE };

static const struct {
    const char *name;
    enum verb verb;
    int nsource;     /* positional SOURCE required */
    const char *usage;
} verbs[] = {
    {"backup", V_BACKUP, 1, "backup SOURCE [STORE] [--name NAME] [--compress zstd|gzip|none] [--skip-unreadable]"},
    {"restore", V_RESTORE, 1, "restore SOURCE [STORE] [--snapshot ID|latest] [--name NAME] [--dry-run] [--path /sub/tree] [--into /prefix] [--overwrite]"},
    {"ls", V_LS, 0, "ls [STORE] [--name NAME]"},
    {"show", V_SHOW, 0, "show [STORE] [--snapshot ID|latest] [--name NAME]"},
    {"verify", V_VERIFY, 0, "verify [STORE] [--snapshot ID|latest | --all] [--name NAME]"},
    {"dump", V_DUMP, 1, "dump SOURCE"},
    {"prune", V_PRUNE, 0, "prune [STORE] --keep N [--name NAME] [--dry-run]"},
};

/* Which options each verb takes (bit per verb). */
#define B(v) (1u << (v))
#define ALLV (B(V_BACKUP) | B(V_RESTORE) | B(V_LS) | B(V_SHOW) | B(V_VERIFY) | B(V_DUMP) | B(V_PRUNE))
#define SRCV (B(V_BACKUP) | B(V_RESTORE) | B(V_DUMP))

enum {
    O_JSON = 1000, O_TIMEOUT, O_AUTH, O_AUTH_FILE, O_NAME, O_SNAPSHOT, O_COMPRESS, O_SKIP_UNREADABLE,
    O_DRY_RUN, O_PATH, O_INTO, O_OVERWRITE, O_ALL, O_WINDOW, O_HELP, O_VERSION, O_QUIET, O_VERBOSE,
    O_CACERT, O_CERT, O_KEY, O_USER, O_PASSWORD_FILE, O_TOKEN_FILE, O_WITH_LEASES,
    O_ENCRYPT_TO, O_RECIPIENTS_FILE, O_IDENTITY, O_KEEP, O_ENDPOINT_URL, O_CREATE_BUCKET, O_PART_SIZE,
};

static const struct {
    int id;
    unsigned verbs;
} allowed[] = {
    {O_JSON, ALLV & ~B(V_DUMP)}, {O_TIMEOUT, SRCV}, {O_AUTH, SRCV}, {O_AUTH_FILE, SRCV},
    {O_NAME, ALLV & ~B(V_DUMP)}, {O_SNAPSHOT, B(V_RESTORE) | B(V_SHOW) | B(V_VERIFY)},
    {O_COMPRESS, B(V_BACKUP)}, {O_SKIP_UNREADABLE, B(V_BACKUP) | B(V_DUMP)},
    {O_DRY_RUN, B(V_RESTORE) | B(V_PRUNE)}, {O_KEEP, B(V_BACKUP) | B(V_PRUNE)}, {O_PATH, B(V_RESTORE)}, {O_INTO, B(V_RESTORE)},
    {O_OVERWRITE, B(V_RESTORE)}, {O_ALL, B(V_VERIFY)}, {O_WINDOW, SRCV},
    {O_CERT, SRCV}, {O_KEY, SRCV}, {O_USER, SRCV}, {O_PASSWORD_FILE, SRCV},
    {O_TOKEN_FILE, SRCV}, {O_WITH_LEASES, B(V_RESTORE)},
    {O_ENCRYPT_TO, B(V_BACKUP)}, {O_RECIPIENTS_FILE, B(V_BACKUP)},
    {O_IDENTITY, B(V_RESTORE) | B(V_VERIFY)},
    {O_ENDPOINT_URL, ALLV & ~B(V_DUMP)}, {O_CREATE_BUCKET, B(V_BACKUP)}, {O_PART_SIZE, B(V_BACKUP)},
    {O_CACERT, ALLV}, /* also for https object stores */
};

static const struct option long_opts[] = {
    {"json", no_argument, NULL, O_JSON},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"auth", required_argument, NULL, O_AUTH},
    {"auth-file", required_argument, NULL, O_AUTH_FILE},
    {"name", required_argument, NULL, O_NAME},
    {"snapshot", required_argument, NULL, O_SNAPSHOT},
    {"compress", required_argument, NULL, O_COMPRESS},
    {"skip-unreadable", no_argument, NULL, O_SKIP_UNREADABLE},
    {"dry-run", no_argument, NULL, O_DRY_RUN},
    {"path", required_argument, NULL, O_PATH},
    {"into", required_argument, NULL, O_INTO},
    {"overwrite", no_argument, NULL, O_OVERWRITE},
    {"all", no_argument, NULL, O_ALL},
    {"window", required_argument, NULL, O_WINDOW},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {"quiet", no_argument, NULL, O_QUIET},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {"cacert", required_argument, NULL, O_CACERT},
    {"cert", required_argument, NULL, O_CERT},
    {"key", required_argument, NULL, O_KEY},
    {"user", required_argument, NULL, O_USER},
    {"password-file", required_argument, NULL, O_PASSWORD_FILE},
    {"token-file", required_argument, NULL, O_TOKEN_FILE},
    {"with-leases", no_argument, NULL, O_WITH_LEASES},
    {"encrypt-to", required_argument, NULL, O_ENCRYPT_TO},
    {"recipients-file", required_argument, NULL, O_RECIPIENTS_FILE},
    {"identity", required_argument, NULL, O_IDENTITY},
    {"keep", required_argument, NULL, O_KEEP},
    {"endpoint-url", required_argument, NULL, O_ENDPOINT_URL},
    {"create-bucket", no_argument, NULL, O_CREATE_BUCKET},
    {"part-size", required_argument, NULL, O_PART_SIZE},
    {NULL, 0, NULL, 0},
};

struct cli {
    enum verb verb;
    struct burry_opts o;
    int json, quiet, verbose, all, dry_run, overwrite, keep;
    const char *name, *snapshot, *path, *into;
    const char *source, *store;
    int progress_shown;
};

static const char *prog = "burry";

static void usage_all(FILE *f)
{
    fprintf(f,
            "burry " BURRY_VERSION " - back up and restore ZooKeeper, etcd and Consul\n"
            "\n"
            "usage:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  burry %s\n", verbs[i].usage);
    fprintf(f,
            "\n"
            "SOURCE   zk://HOST:PORT[,HOST:PORT...][/chroot]    ZooKeeper\n"
            "         etcd://HOST:PORT[,HOST:PORT...][/prefix]  etcd v3\n"
            "         etcd2://HOST:PORT[/prefix]                etcd v2 keys API\n"
            "         consul://HOST:PORT[/prefix]               Consul KV\n"
            "         etcd+https://, etcd2+https://, consul+https://  the same over TLS\n"
            "STORE    a directory or file:///path (default ./burry-snapshots)\n"
            "         s3://BUCKET[/prefix]      S3 or S3-compatible (AWS_ACCESS_KEY_ID,\n"
            "                                   AWS_SECRET_ACCESS_KEY, AWS_REGION)\n"
            "         gs://BUCKET[/prefix]      Google Cloud Storage, HMAC keys\n"
            "                                   (GS_ACCESS_KEY_ID, GS_SECRET_ACCESS_KEY)\n"
            "         azure://ACCOUNT/CONTAINER[/prefix]   Azure Blob (AZURE_STORAGE_KEY or\n"
            "                                   AZURE_STORAGE_CONNECTION_STRING)\n"
            "         restore and show also take an archive of the original burry, ID.zip\n"
            "\n"
            "options:\n"
            "  --json                 print one JSON document on stdout\n"
            "  -q, --quiet            print nothing but errors\n"
            "  -v, --verbose          say more (restore: one line per node)\n"
            "  --timeout SECONDS      bound connecting and every wait (default 10)\n"
            "  --auth digest:USER:PASSWORD\n"
            "                         ZooKeeper authentication (repeatable; visible in ps\n"
            "                         until burry starts: prefer --auth-file)\n"
            "  --auth-file FILE       one SCHEME:USER:PASSWORD per line\n"
            "  --name NAME            group of snapshots (default: from the source URL)\n"
            "  --snapshot ID|latest   which snapshot (default latest)\n"
            "  --compress zstd|gzip|none   archive compression (default zstd)\n"
            "  --skip-unreadable      record unreadable nodes instead of failing\n"
            "  --dry-run              show what a restore would do, change nothing\n"
            "  --path /sub/tree       restore only this subtree\n"
            "  --into /prefix         restore under another prefix\n"
            "  --overwrite            also set data and ACLs of existing nodes\n"
            "  --all                  verify every snapshot\n"
            "  --keep N               prune (and backup): keep the newest N snapshots of\n"
            "                         each name, delete the others\n"
            "  --cacert/--cert/--key FILE   TLS for https:// sources (etcd, Consul);\n"
            "                         --cacert also for https object stores\n"
            "  --endpoint-url URL     object store endpoint (S3-compatible servers, the\n"
            "                         Azure emulator; or AWS_ENDPOINT_URL)\n"
            "  --create-bucket        backup: create a missing bucket or container\n"
            "  --part-size MIB        backup: upload part size for object stores (default 8)\n"
            "  --user USER[:PASSWORD] etcd user (password better from --password-file\n"
            "                         FILE or ETCD_PASSWORD)\n"
            "  --token-file FILE      Consul ACL token (or CONSUL_HTTP_TOKEN)\n"
            "  --with-leases          etcd v3 restore: grant leases with the recorded TTLs\n"
            "  --encrypt-to age1...   backup: encrypt the archive to this age recipient\n"
            "                         (repeatable); --recipients-file FILE reads several\n"
            "  --identity FILE        restore/verify: age identity file to decrypt with\n"
            "\n"
            "A restore creates only missing nodes and never deletes anything.\n"
            "Exit status: 0 success, 1 the operation failed, 2 usage or configuration error.\n"
            "The original tool's flags also work: burry -e HOST:PORT [-i zk] [-t tty|local]\n"
            "[-o backup|restore] [-s ID] [--timeout N] [-b] [-v]. See burry(1).\n");
}

static void log_fn(void *ctx, int level, const char *msg)
{
    struct cli *c = ctx;
    if (c->progress_shown) {
        fputs("\r\033[K", stderr);
        c->progress_shown = 0;
    }
    fprintf(stderr, "%s: %s%s\n", prog, level == BLOG_WARN ? "warning: " : "", msg);
}

static void human_bytes(unsigned long long b, char *out, size_t len)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(out, len, "%llu B", b);
    else
        snprintf(out, len, "%.1f %s", v, u[i]);
}

static void progress_fn(void *ctx, const char *what, unsigned long long done,
                        unsigned long long total, unsigned long long bytes)
{
    struct cli *c = ctx;
    char hb[32];
    human_bytes(bytes, hb, sizeof hb);
    if (total)
        fprintf(stderr, "\r\033[K%s: %llu of %llu nodes", what, done, total);
    else
        fprintf(stderr, "\r\033[K%s: %llu nodes, %s", what, done, hb);
    c->progress_shown = 1;
}

static void progress_end(struct cli *c)
{
    if (c->progress_shown) {
        fputs("\r\033[K", stderr);
        c->progress_shown = 0;
    }
}

static int fail(struct cli *c, const struct burry_err *e)
{
    progress_end(c);
    fprintf(stderr, "%s: error: %s\n", prog, e->msg[0] ? e->msg : "failed");
    return e->code == BURRY_EUSAGE ? 2 : 1;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(burry --help shows the usage)\n");
    return 2;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s) {
        puts(s);
        free(s);
    }
}

static unsigned long long jint(json_t *o, const char *k)
{
    return (unsigned long long)json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void skipped_text(json_t *skipped, char *out, size_t len)
{
    const char *k;
    json_t *v;
    size_t used = 0;
    out[0] = 0;
    json_object_foreach(skipped, k, v) {
        int n = snprintf(out + used, len - used, "%s%lld %s", used ? ", " : "",
                         (long long)json_integer_value(v), k);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

/* Record one --auth value: SCHEME:SECRET. */
static int add_auth(struct cli *c, const char *val)
{
    const char *colon = strchr(val, ':');
    if (!colon || colon == val || !colon[1])
        return usage_error("--auth wants SCHEME:CREDENTIALS, e.g. digest:USER:PASSWORD (got '%s')",
                           "...");
    if (c->o.nauth >= BURRY_MAX_AUTH)
        return usage_error("too many --auth options (at most %s)", "8");
    c->o.auth[c->o.nauth].scheme = strndup(val, (size_t)(colon - val));
    c->o.auth[c->o.nauth].secret = strdup(colon + 1);
    c->o.nauth++;
    return 0;
}

static int read_auth_file(struct cli *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read auth file '%s': %s\n", prog, path, strerror(errno));
        return 2;
    }
    char line[1024];
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        rc = add_auth(c, line);
    }
    explicit_bzero(line, sizeof line);
    fclose(f);
    return rc;
}

/* Hide a secret given on the command line from later readers of
 * /proc/PID/cmdline (ps); it was visible until now, as the help says. */
static void scrub_arg(char *arg)
{
    char *p = strchr(arg, ':');
    if (p)
        for (p++; *p; p++)
            *p = 'x';
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* The first line of a file holding a secret (a password, a token). */
static char *read_secret_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read secret file '%s': %s\n", prog, path, strerror(errno));
        return NULL;
    }
    char line[4096];
    char *r = NULL;
    if (fgets(line, sizeof line, f) && (line[strcspn(line, "\r\n")] = 0, line[0])) {
        r = strdup(line);
    } else {
        fprintf(stderr, "%s: secret file '%s' is empty (the secret is its first line)\n", prog, path);
    }
    explicit_bzero(line, sizeof line);
    fclose(f);
    return r;
}

/* Secrets from the environment, unless given by an option. */
static void secrets_from_env(struct cli *c)
{
    const char *v;
    if (!c->o.password && (v = getenv("ETCD_PASSWORD")) && *v)
        c->o.password = strdup(v);
    if (!c->o.token && (v = getenv("CONSUL_HTTP_TOKEN")) && *v)
        c->o.token = strdup(v);
}

static int parse(struct cli *c, int argc, char **argv)
{
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "qvh", long_opts, NULL)) != -1) {
        if (opt == '?')
            return usage_error("unknown option '%s'", argv[optind - 1]);
        if (opt == ':')
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        int id = opt == 'q' ? O_QUIET : opt == 'v' ? O_VERBOSE : opt == 'h' ? O_HELP : opt;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            if (allowed[i].id == id && !(allowed[i].verbs & B(c->verb)))
                return usage_error("option '%s' does not apply to this command", argv[optind - 1]);
        switch (id) {
        case O_JSON: c->json = 1; break;
        case O_QUIET: c->quiet = 1; break;
        case O_VERBOSE: c->verbose++; break;
        case O_HELP: usage_all(stdout); exit(0);
        case O_VERSION: printf("burry %s\n", BURRY_VERSION); exit(0);
        case O_TIMEOUT: {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (*end || t < 1 || t > 86400)
                return usage_error("--timeout wants whole seconds between 1 and 86400 (got '%s')", optarg);
            c->o.timeout_s = (int)t;
            break;
        }
        case O_WINDOW: {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (*end || t < 1 || t > 100000)
                return usage_error("--window wants a number between 1 and 100000 (got '%s')", optarg);
            c->o.window = (int)t;
            break;
        }
        case O_AUTH: {
            int rc = add_auth(c, optarg);
            scrub_arg(optarg);
            if (rc)
                return rc;
            break;
        }
        case O_AUTH_FILE: {
            int rc = read_auth_file(c, optarg);
            if (rc)
                return rc;
            break;
        }
        case O_NAME: c->name = optarg; break;
        case O_SNAPSHOT: c->snapshot = optarg; break;
        case O_COMPRESS:
            if (fmt_compress_parse(optarg, &c->o.compress) < 0)
                return usage_error("--compress wants zstd, gzip or none (got '%s')", optarg);
            break;
        case O_SKIP_UNREADABLE: c->o.skip_unreadable = 1; break;
        case O_DRY_RUN: c->dry_run = 1; break;
        case O_PATH: c->path = optarg; break;
        case O_INTO: c->into = optarg; break;
        case O_OVERWRITE: c->overwrite = 1; break;
        case O_ALL: c->all = 1; break;
        case O_CACERT: c->o.cacert = optarg; break;
        case O_CERT: c->o.cert = optarg; break;
        case O_KEY: c->o.key = optarg; break;
        case O_WITH_LEASES: c->o.with_leases = 1; break;
        case O_ENDPOINT_URL: c->o.endpoint_url = optarg; break;
        case O_CREATE_BUCKET: c->o.create_bucket = 1; break;
        case O_PART_SIZE: {
            char *end;
            long m = strtol(optarg, &end, 10);
            if (*end || m < 1 || m > 4000)
                return usage_error("--part-size wants MiB between 1 and 4000 (got '%s')", optarg);
            c->o.part_size = (size_t)m << 20;
            break;
        }
        case O_KEEP: {
            char *end;
            long k = strtol(optarg, &end, 10);
            if (*end || k < 1 || k > 100000)
                return usage_error("--keep wants a number of snapshots between 1 and 100000 (got '%s')", optarg);
            c->keep = (int)k;
            break;
        }
        case O_ENCRYPT_TO:
        case O_RECIPIENTS_FILE:
        case O_IDENTITY: {
            struct burry_err ke = {0};
            unsigned char (*keys)[AGE_KEY_LEN] = NULL;
            size_t n = 0;
            int rc;
            if (id == O_ENCRYPT_TO) {
                keys = malloc(sizeof *keys);
                n = 1;
                rc = keys ? age_parse_recipient(optarg, keys[0], &ke) : -1;
            } else if (id == O_RECIPIENTS_FILE) {
                rc = age_read_recipients(optarg, &keys, &n, &ke);
            } else {
                rc = age_read_identities(optarg, &keys, &n, &ke);
            }
            if (rc < 0) {
                free(keys);
                fprintf(stderr, "%s: %s\n", prog, ke.msg[0] ? ke.msg : "out of memory");
                return 2;
            }
            unsigned char (**list)[AGE_KEY_LEN] = id == O_IDENTITY ? &c->o.identities : &c->o.recipients;
            size_t *count = id == O_IDENTITY ? &c->o.nidentities : &c->o.nrecipients;
            unsigned char (*all)[AGE_KEY_LEN] = realloc(*list, (*count + n) * sizeof *all);
            if (!all) {
                free(keys);
                return usage_error("%s", "out of memory");
            }
            memcpy(all + *count, keys, n * sizeof *all);
            explicit_bzero(keys, n * sizeof *keys);
            free(keys);
            *list = all;
            *count += n;
            break;
        }
        case O_USER: {
            char *colon = strchr(optarg, ':');
            free(c->o.user);
            c->o.user = colon ? strndup(optarg, (size_t)(colon - optarg)) : strdup(optarg);
            if (colon) {
                wipe_free(c->o.password);
                c->o.password = strdup(colon + 1);
                scrub_arg(optarg);
            }
            break;
        }
        case O_PASSWORD_FILE:
            wipe_free(c->o.password);
            if (!(c->o.password = read_secret_file(optarg)))
                return 2;
            break;
        case O_TOKEN_FILE:
            wipe_free(c->o.token);
            if (!(c->o.token = read_secret_file(optarg)))
                return 2;
            break;
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    int need_src = 0;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (verbs[i].verb == c->verb)
            need_src = verbs[i].nsource;
    int npos = argc - optind;
    if (need_src) {
        if (npos < 1)
            return usage_error("%s needs a SOURCE such as zk://127.0.0.1:2181", argv[0]);
        c->source = argv[optind++];
        npos--;
    }
    if (c->verb == V_DUMP && npos > 0)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (npos > 1)
        return usage_error("unexpected argument '%s'", argv[optind + 1]);
    if (npos == 1)
        c->store = argv[optind];
    if (c->all && c->snapshot)
        return usage_error("--all and --snapshot %s exclude each other", c->snapshot);
    if (c->verb == V_PRUNE && !c->keep)
        return usage_error("%s", "prune needs --keep N (how many snapshots of each name to keep)");
    secrets_from_env(c);
    return 0;
}

static void plan_fn(void *ctx, const char *action, const char *path, const char *detail)
{
    struct cli *c = ctx;
    progress_end(c);
    if (detail)
        printf("%-17s %s  (%s)\n", action, path, detail);
    else
        printf("%-17s %s\n", action, path);
}

static int print_preview(FILE *f, const struct bnode *n)
{
    if (!n->has_value)
        return fputs("(null)", f);
    fputc('"', f);
    size_t lim = n->value_len < 60 ? n->value_len : 60;
    for (size_t i = 0; i < lim; i++) {
        unsigned char ch = (unsigned char)n->value[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch >= 0x20 && ch < 0x7f)
            fputc(ch, f);
        else if (ch == '\n')
            fputs("\\n", f);
        else
            fprintf(f, "\\x%02x", ch);
    }
    fputc('"', f);
    if (lim < n->value_len)
        fputs("...", f);
    return 0;
}

static int dump_fn(void *ctx, const char *path, const struct bnode *n)
{
    (void)ctx;
    if (n->has_value)
        printf("%s\t%zu\t", path, n->value_len);
    else
        printf("%s\t-\t", path);
    print_preview(stdout, n);
    putchar('\n');
    return 0;
}

static int run_verb(struct cli *c, int legacy)
{
    struct burry_err e = {0};
    json_t *out = NULL;
    int rc = 0;
    char hb[32], sk[256];

    switch (c->verb) {
    case V_BACKUP:
        rc = burry_backup(&c->o, c->source, c->store, c->name, &out, &e);
        progress_end(c);
        if (rc < 0)
            return fail(c, &e);
        if (c->json) {
            print_json(out);
        } else if (legacy) {
            printf("Operation successfully completed. The snapshot ID is: %s\n", jstr(out, "snapshot"));
        } else if (!c->quiet) {
            human_bytes(jint(out, "bytes"), hb, sizeof hb);
            skipped_text(json_object_get(out, "skipped"), sk, sizeof sk);
            printf("snapshot %s (name '%s'): %llu nodes, %s of values, saved to %s%s%s%s\n",
                   jstr(out, "snapshot"), jstr(out, "name"), jint(out, "nodes"), hb, jstr(out, "store"),
                   sk[0] ? "; skipped: " : "", sk, "");
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(out, "skipped_paths"), i, p)
                printf("  skipped unreadable: %s\n", json_string_value(p));
        }
        if (c->keep) {
            json_t *pr = NULL;
            if (burry_prune(&c->o, c->store, jstr(out, "name"), c->keep, 0, jstr(out, "snapshot"), &pr, &e) < 0) {
                json_decref(out);
                fflush(stdout);
                burry_err_prefix(&e, "the backup succeeded, but pruning failed");
                return fail(c, &e);
            }
            if (!c->json && !c->quiet && json_array_size(json_object_get(pr, "deleted")))
                printf("pruned %zu older snapshots of '%s' (keeping %d)\n",
                       json_array_size(json_object_get(pr, "deleted")), jstr(out, "name"), c->keep);
            json_decref(pr);
        }
        break;
    case V_RESTORE: {
        struct burry_restore_req req = {
            .snapshot = c->snapshot, .name = c->name, .path = c->path, .into = c->into,
            .dry_run = c->dry_run, .overwrite = c->overwrite,
            .plan = (c->dry_run && !c->json) || (c->verbose && !c->json) ? plan_fn : NULL,
            .plan_ctx = c,
        };
        rc = burry_restore(&c->o, c->source, c->store, &req, &out, &e);
        progress_end(c);
        if (out && c->json)
            print_json(out);
        else if (out && legacy && rc == 0)
            printf("Operation successfully completed. Restored snapshot %s: %llu created, %llu existing\n",
                   jstr(out, "snapshot"), jint(out, "created"), jint(out, "existing"));
        else if (out && !c->quiet && json_is_true(json_object_get(out, "stopped")))
            printf("%s of snapshot %s stopped before its end (see the error below); so far: %s%llu, "
                   "%llu existing, %s%llu, %llu failed\n",
                   c->dry_run ? "dry run" : "restore", jstr(out, "snapshot"),
                   c->dry_run ? "would create " : "created ", jint(out, "created"), jint(out, "existing"),
                   c->dry_run ? "would overwrite " : "overwritten ", jint(out, "overwritten"),
                   jint(out, "failed"));
        else if (out && !c->quiet && c->dry_run)
            printf("dry run of snapshot %s: would create %llu, %llu exist already (%llu differ), "
                   "would overwrite %llu, %llu failed; nothing was changed\n",
                   jstr(out, "snapshot"), jint(out, "created"), jint(out, "existing"),
                   jint(out, "different"), jint(out, "overwritten"), jint(out, "failed"));
        else if (out && !c->quiet)
            printf("restored snapshot %s: %llu created, %llu existing (left untouched), "
                   "%llu overwritten, %llu failed\n",
                   jstr(out, "snapshot"), jint(out, "created"), jint(out, "existing"),
                   jint(out, "overwritten"), jint(out, "failed"));
        if (out && !c->json && !c->quiet && jint(out, "outside_prefix"))
            printf("left out %llu keys of the snapshot that lie outside the prefix of %s\n",
                   jint(out, "outside_prefix"), c->source);
        if (rc < 0) {
            fflush(stdout);
            json_decref(out);
            return fail(c, &e);
        }
        break;
    }
    case V_LS:
        if ((rc = burry_list(&c->o, c->store, c->name, &out, &e)) < 0)
            return fail(c, &e);
        if (c->json) {
            print_json(out);
        } else {
            json_t *arr = json_object_get(out, "snapshots"), *zips = json_object_get(out, "go_archives"), *s;
            size_t i;
            if (!json_array_size(arr) && !json_array_size(zips) && !c->quiet)
                fprintf(stderr, "%s: no snapshots in '%s'\n", prog, c->store ? c->store : "burry-snapshots");
            else
                printf("%-26s %-28s %-10s %10s %10s  %s\n", "ID", "NAME", "SERVICE", "NODES", "SIZE", "SOURCE");
            json_array_foreach(arr, i, s) {
                if (json_object_get(s, "damaged")) {
                    printf("%-26s %-28s %-10s  %s\n", jstr(s, "id"), jstr(s, "name"), "DAMAGED", jstr(s, "damaged"));
                    continue;
                }
                human_bytes(jint(s, "size"), hb, sizeof hb);
                char nodes[32];
                if (json_is_integer(json_object_get(s, "nodes")))
                    snprintf(nodes, sizeof nodes, "%llu", jint(s, "nodes"));
                else
                    snprintf(nodes, sizeof nodes, "-"); /* encrypted: not known without the key */
                printf("%-26s %-28s %-10s %10s %10s  %s\n", jstr(s, "id"), jstr(s, "name"), jstr(s, "service"),
                       nodes, hb, json_object_get(s, "source") ? jstr(s, "source") : "(encrypted)");
            }
            /* not read: `show --snapshot ID` describes one */
            json_array_foreach(zips, i, s) {
                human_bytes(jint(s, "size"), hb, sizeof hb);
                printf("%-26s %-28s %-10s %10s %10s  %s (original burry's zip)\n", jstr(s, "id"), "-", "?", "-",
                       hb, jstr(s, "key"));
            }
        }
        break;
    case V_SHOW:
        if ((rc = burry_show(&c->o, c->store, c->snapshot, c->name, &out, &e)) < 0)
            return fail(c, &e);
        if (c->json) {
            print_json(out);
        } else if (!strcmp(jstr(out, "format"), GOZIP_FORMAT)) {
            json_t *a = json_object_get(out, "archive"), *v;
            char into[128] = "";
            size_t i;
            json_array_foreach(json_object_get(out, "restorable_into"), i, v)
                snprintf(into + strlen(into), sizeof into - strlen(into), "%s%s", i ? ", " : "",
                         json_string_value(v));
            human_bytes(jint(out, "bytes"), hb, sizeof hb);
            skipped_text(json_object_get(out, "skipped"), sk, sizeof sk);
            printf("snapshot:   %s\nformat:     zip written by the original burry (Go); no checksums\n"
                   "service:    %s (restores into: %s)\nsource:     %s\ncreated:    %s\n"
                   "nodes:      %llu\nvalues:     %s\nskipped:    %s\n",
                   jstr(out, "snapshot"), jstr(out, "service"), into, jstr(out, "source"),
                   jstr(out, "created"), jint(out, "nodes"), hb, sk[0] ? sk : "none");
            human_bytes(jint(a, "size"), hb, sizeof hb);
            printf("archive:    %s (%s)\n", jstr(a, "key"), hb);
        } else if (json_object_get(out, "encryption")) {
            json_t *a = json_object_get(out, "archive");
            human_bytes(jint(a, "size"), hb, sizeof hb);
            printf("snapshot:   %s\nname:       %s\nservice:    %s\ncreated:    %s\n"
                   "encrypted:  %s (source, counts and checksums of the content are inside the archive)\n"
                   "archive:    %s/%s (%s)\nsha256:     %s\nformat:     %s v%llu, written by %s\n",
                   jstr(out, "snapshot"), jstr(out, "name"), jstr(out, "service"), jstr(out, "created"),
                   jstr(out, "encryption"), jstr(out, "name"), jstr(a, "key"), hb, jstr(a, "sha256"),
                   jstr(out, "format"), jint(out, "format_version"), jstr(out, "tool"));
        } else {
            json_t *a = json_object_get(out, "archive");
            human_bytes(jint(out, "bytes"), hb, sizeof hb);
            skipped_text(json_object_get(out, "skipped"), sk, sizeof sk);
            printf("snapshot:   %s\nname:       %s\nservice:    %s\nsource:     %s\ncreated:    %s\n"
                   "nodes:      %llu\nvalues:     %s\nskipped:    %s\n",
                   jstr(out, "snapshot"), jstr(out, "name"), jstr(out, "service"), jstr(out, "source"),
                   jstr(out, "created"), jint(out, "nodes"), hb, sk[0] ? sk : "none");
            human_bytes(jint(a, "size"), hb, sizeof hb);
            printf("archive:    %s/%s (%s, %s)\nsha256:     %s\nformat:     %s v%llu, written by %s\n",
                   jstr(out, "name"), jstr(a, "key"), hb, jstr(out, "compression"), jstr(a, "sha256"),
                   jstr(out, "format"), jint(out, "format_version"), jstr(out, "tool"));
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(out, "skipped_paths"), i, p)
                printf("unreadable: %s\n", json_string_value(p));
        }
        break;
    case V_VERIFY:
        rc = burry_verify(&c->o, c->store, c->snapshot, c->name, c->all, &out, &e);
        if (out && c->json) {
            print_json(out);
        } else if (out && !c->quiet) {
            json_t *s;
            size_t i;
            json_array_foreach(json_object_get(out, "snapshots"), i, s)
                printf("%s  %s  %s\n", jstr(s, "id"), *jstr(s, "name") ? jstr(s, "name") : "-",
                       json_is_true(json_object_get(s, "not_checked")) ? "NOT CHECKED (the store failed)"
                       : !json_is_true(json_object_get(s, "ok")) ? "DAMAGED"
                       : json_is_true(json_object_get(s, "wrong_identity"))
                           ? "ok (stored bytes only; encrypted, the given --identity does not open it)"
                       : json_is_true(json_object_get(s, "stored_only"))
                           ? "ok (stored bytes only; encrypted, no --identity given)"
                           : "ok");
        }
        if (out) {
            /* encrypted snapshots checked without a key: said once */
            json_t *arr = json_object_get(out, "snapshots"), *s;
            size_t i, only = 0;
            const char *id = "";
            json_array_foreach(arr, i, s) {
                if (json_is_true(json_object_get(s, "stored_only")) &&
                    !json_is_true(json_object_get(s, "wrong_identity"))) {
                    only++;
                    id = jstr(s, "id");
                }
            }
            if (only == 1 && json_array_size(arr) == 1)
                blog(&c->o.log, BLOG_WARN, "snapshot '%s' is encrypted: its stored bytes match its manifest; "
                     "its contents were not checked (no --identity given)", id);
            else if (only)
                blog(&c->o.log, BLOG_WARN, "%zu of %zu snapshots are encrypted: their stored bytes match their "
                     "manifests; their contents were not checked (no --identity given)", only,
                     json_array_size(arr));
        }
        if (rc < 0) {
            fflush(stdout);
            json_decref(out);
            return fail(c, &e);
        }
        break;
    case V_PRUNE:
        if ((rc = burry_prune(&c->o, c->store, c->name, c->keep, c->dry_run, NULL, &out, &e)) < 0)
            return fail(c, &e);
        if (c->json) {
            print_json(out);
        } else if (!c->quiet) {
            json_t *s;
            size_t i;
            json_array_foreach(json_object_get(out, "deleted"), i, s)
                printf("%s %s  %s\n", c->dry_run ? "would delete" : "deleted", jstr(s, "id"), jstr(s, "name"));
            json_array_foreach(json_object_get(out, "damaged"), i, s)
                printf("damaged %s  %s  (not counted, not deleted: %s)\n", jstr(s, "id"), jstr(s, "name"),
                       jstr(s, "error"));
            printf("%s %zu snapshots, kept %zu (the newest %d of each name)\n",
                   c->dry_run ? "dry run: would delete" : "deleted", json_array_size(json_object_get(out, "deleted")),
                   json_array_size(json_object_get(out, "kept")), c->keep);
        }
        break;
    case V_DUMP:
        rc = burry_dump(&c->o, c->source, dump_fn, c, &e);
        if (rc < 0)
            return fail(c, &e);
        break;
    case V_NONE:
        break;
    }
    json_decref(out);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    burry_interrupted = 1;
}

static void setup_cli(struct cli *c)
{
    memset(c, 0, sizeof *c);
    burry_opts_init(&c->o);
    c->o.create_advice = "create it, or pass --create-bucket to backup";
    c->o.log.fn = log_fn;
    c->o.log.ctx = c;
}

static void finish_setup(struct cli *c)
{
    c->o.log.level = c->quiet ? -1 : c->verbose ? BLOG_DEBUG : BLOG_WARN;
    if (c->quiet)
        c->o.log.level = BLOG_WARN; /* warnings still matter: they name skipped nodes */
    if (!c->quiet && !c->json && isatty(2)) {
        c->o.progress = progress_fn;
        c->o.progress_ctx = c;
    }
}

int legacy_main(int argc, char **argv);

int main(int argc, char **argv)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        usage_all(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage_all(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("burry %s\n", BURRY_VERSION);
        return 0;
    }
    if (argv[1][0] == '-')
        return legacy_main(argc, argv);

    struct cli c;
    setup_cli(&c);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(argv[1], verbs[i].name))
            c.verb = verbs[i].verb;
    if (c.verb == V_NONE)
        return usage_error("unknown command '%s' (commands: backup, restore, ls, show, verify, dump)",
                           argv[1]);
    int rc = parse(&c, argc - 1, argv + 1);
    if (rc == 0) {
        finish_setup(&c);
        rc = run_verb(&c, 0);
    }
    burry_opts_wipe(&c.o);
    return rc;
}

/* ---- the original tool's command line ------------------------------------
 * burry -e HOST:PORT [-i zk] [-t tty|local|s3] [-c CREDENTIALS] [-o backup|restore]
 *       [-s ID] [--timeout N] [-b] [-v]
 * -t tty dumps the tree, -t local keeps snapshots in the current directory,
 * -t s3 in s3://BUCKET/PREFIX with -c "ENDPOINT,ACCESS_KEY_ID=..,
 * SECRET_ACCESS_KEY=..,BUCKET=..,PREFIX=..,SSL=false" (keys better from the
 * environment). -b saves these settings in ./.burryfest (mode 0600, never the
 * keys) and reads them back when -e is not given. */

#define BURRYFEST ".burryfest"

struct legacy_target {
    char *endpoint;            /* "host:port" of the object store */
    char *bucket, *prefix;
    int ssl;                   /* 1 unless SSL=false */
    char *key_id, *secret;     /* secret wiped */
};

static void legacy_target_free(struct legacy_target *t)
{
    free(t->endpoint);
    free(t->bucket);
    free(t->prefix);
    free(t->key_id);
    if (t->secret) {
        explicit_bzero(t->secret, strlen(t->secret));
        free(t->secret);
    }
    memset(t, 0, sizeof *t);
}

/* Parse "ENDPOINT,NAME=VALUE,..." as the original tool's -c took it. */
static int legacy_parse_c(const char *arg, struct legacy_target *t)
{
    char *copy = strdup(arg), *save = NULL;
    int rc = 0, first = 1, n = 0;
    t->ssl = 1;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save), first = 0) {
        n++;
        char *eq = strchr(tok, '=');
        if (!eq && first) {
            free(t->endpoint);
            t->endpoint = strdup(tok);
            continue;
        }
        if (!eq) {
            /* not echoed: it may be a secret that lost its name */
            rc = usage_error("-c: item %d is not NAME=VALUE", n);
            break;
        }
        *eq = 0;
        const char *v = eq + 1;
        char **dst = !strcmp(tok, "ACCESS_KEY_ID") ? &t->key_id : !strcmp(tok, "SECRET_ACCESS_KEY") ? &t->secret
                   : !strcmp(tok, "BUCKET") ? &t->bucket : !strcmp(tok, "PREFIX") ? &t->prefix
                   : !strcmp(tok, "ENDPOINT") ? &t->endpoint : NULL;
        if (!strcmp(tok, "SSL")) {
            t->ssl = strcmp(v, "false") && strcmp(v, "0");
        } else if (dst) {
            free(*dst);
            *dst = strdup(v);
        } else {
            rc = usage_error("-c: unknown setting '%s' (known: ENDPOINT, ACCESS_KEY_ID, "
                             "SECRET_ACCESS_KEY, BUCKET, PREFIX, SSL)", tok);
        }
    }
    explicit_bzero(copy, strlen(arg));
    free(copy);
    return rc;
}

static int legacy_load(char **endpoint, char **isvc, char **target, struct legacy_target *t)
{
    json_error_t je;
    json_t *j = json_load_file(BURRYFEST, 0, &je);
    if (!j) {
        fprintf(stderr, "%s: cannot read '%s': %s\n", prog, BURRYFEST, je.text);
        return 2;
    }
    const char *s;
    if (!*endpoint && (s = json_string_value(json_object_get(j, "svc-endpoint"))))
        *endpoint = strdup(s);
    if (!*isvc && (s = json_string_value(json_object_get(j, "svc"))))
        *isvc = strdup(s);
    if (!*target && (s = json_string_value(json_object_get(j, "target"))))
        *target = strdup(s);
    json_t *cr = json_object_get(j, "credentials");
    if (!t->endpoint && (s = json_string_value(json_object_get(cr, "target-endpoint"))) && *s) {
        t->endpoint = strdup(s);
        t->ssl = 1;
        size_t i;
        json_t *kv;
        json_array_foreach(json_object_get(cr, "params"), i, kv) {
            const char *k = json_string_value(json_object_get(kv, "key"));
            const char *v = json_string_value(json_object_get(kv, "value"));
            if (!k || !v)
                continue;
            if (!strcmp(k, "BUCKET") && !t->bucket)
                t->bucket = strdup(v);
            else if (!strcmp(k, "PREFIX") && !t->prefix)
                t->prefix = strdup(v);
            else if (!strcmp(k, "SSL"))
                t->ssl = strcmp(v, "false") != 0;
        }
    }
    json_decref(j);
    return 0;
}

static int legacy_save(const char *endpoint, const char *isvc, const char *target,
                       const struct legacy_target *t)
{
    json_t *params = json_array();
    if (t->bucket)
        json_array_append_new(params, json_pack("{s:s,s:s}", "key", "BUCKET", "value", t->bucket));
    if (t->prefix)
        json_array_append_new(params, json_pack("{s:s,s:s}", "key", "PREFIX", "value", t->prefix));
    if (t->endpoint && !t->ssl)
        json_array_append_new(params, json_pack("{s:s,s:s}", "key", "SSL", "value", "false"));
    json_t *j = json_pack("{s:s,s:s,s:s,s:{s:s,s:o}}", "svc", isvc, "svc-endpoint", endpoint, "target",
                          target, "credentials", "target-endpoint", t->endpoint ? t->endpoint : "",
                          "params", params);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    if (!text)
        return 1;
    int rc = 0;
    char tmp[] = ".burryfest.XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0 || fchmod(fd, 0600) < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
        write(fd, "\n", 1) != 1 || fsync(fd) < 0 || rename(tmp, BURRYFEST) < 0) {
        fprintf(stderr, "%s: cannot write '%s': %s\n", prog, BURRYFEST, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
        rc = 1;
    }
    if (fd >= 0)
        close(fd);
    free(text);
    return rc;
}

int legacy_main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"isvc", required_argument, NULL, 'i'},
        {"target", required_argument, NULL, 't'},   {"operation", required_argument, NULL, 'o'},
        {"snapshot", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 'T'},
        {"burryfest", no_argument, NULL, 'b'},      {"verbose", no_argument, NULL, 'v'},
        {"credentials", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    char *endpoint = NULL, *isvc = NULL, *target = NULL;
    struct legacy_target tgt = {0};
    const char *op = "backup", *snap = NULL;
    int bf = 0, verbose = 0, timeout = 0, opt, rc = 0;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "e:i:t:o:s:bvc:", lopts, NULL)) != -1) {
        switch (opt) {
        case 'e': free(endpoint); endpoint = strdup(optarg); break;
        case 'i': free(isvc); isvc = strdup(optarg); break;
        case 't': free(target); target = strdup(optarg); break;
        case 'o': op = optarg; break;
        case 's': snap = optarg; break;
        case 'b': bf = 1; break;
        case 'v': verbose++; break;
        case 'c':
            legacy_target_free(&tgt);
            if ((rc = legacy_parse_c(optarg, &tgt)))
                goto out;
            /* hide the secret from ps from now on (it was visible until here:
             * the environment is the better place for it) */
            for (char *p = strstr(optarg, "SECRET_ACCESS_KEY="); p; p = strstr(p, "SECRET_ACCESS_KEY=")) {
                p += strlen("SECRET_ACCESS_KEY=");
                for (; *p && *p != ','; p++)
                    *p = 'x';
            }
            break;
        case 'T': {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (*end || t < 1 || t > 86400) {
                rc = usage_error("--timeout wants whole seconds between 1 and 86400 (got '%s')", optarg);
                goto out;
            }
            timeout = (int)t;
            break;
        }
        default:
            rc = usage_error("unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        rc = usage_error("unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!endpoint && access(BURRYFEST, F_OK) == 0 && (rc = legacy_load(&endpoint, &isvc, &target, &tgt)))
        goto out;
    if (!endpoint) {
        rc = usage_error("%s", "-e HOST:PORT (the service endpoint) is required");
        goto out;
    }
    if (!isvc)
        isvc = strdup("zk");
    if (!target)
        target = strdup("tty");
    /* the original tool spoke etcd's v2 API only, so -i etcd means etcd2 */
    const char *scheme = !strcmp(isvc, "zk") ? "zk" : !strcmp(isvc, "etcd") ? "etcd2"
                       : !strcmp(isvc, "consul") ? "consul" : NULL;
    if (!scheme) {
        rc = usage_error("-i %s is not a service (zk, etcd or consul)", isvc);
        goto out;
    }
    if (strcmp(target, "tty") && strcmp(target, "local") && strcmp(target, "s3")) {
        rc = usage_error("-t %s is not supported (use tty, local or s3)", target);
        goto out;
    }
    if (!strcmp(target, "s3") && !tgt.endpoint) {
        rc = usage_error("%s", "-t s3 needs -c ENDPOINT[,BUCKET=..][,PREFIX=..][,SSL=false] "
                               "(keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
        goto out;
    }
    if (strcmp(op, "backup") && strcmp(op, "restore")) {
        rc = usage_error("-o wants backup or restore (got '%s')", op);
        goto out;
    }
    if (bf && (rc = legacy_save(endpoint, isvc, target, &tgt)))
        goto out;

    char url[1100];
    snprintf(url, sizeof url, "%s://%s", scheme, endpoint);
    struct cli c;
    setup_cli(&c);
    c.verbose = verbose;
    c.source = url;
    c.store = ".";
    char store_url[2048], endpoint_url[1100];
    if (!strcmp(target, "s3")) {
        /* the original tool's default bucket: "<service>-backup" */
        snprintf(store_url, sizeof store_url, "s3://%s%s%s", tgt.bucket ? tgt.bucket : isvc,
                 tgt.bucket ? "" : "-backup", "");
        if (tgt.prefix && *tgt.prefix)
            snprintf(store_url + strlen(store_url), sizeof store_url - strlen(store_url), "/%s", tgt.prefix);
        snprintf(endpoint_url, sizeof endpoint_url, "%s%s", strstr(tgt.endpoint, "://") ? "" :
                 tgt.ssl ? "https://" : "http://", tgt.endpoint);
        c.store = store_url;
        c.o.endpoint_url = endpoint_url;
        if (tgt.key_id && tgt.secret) {
            c.o.store_key_id = tgt.key_id;
            c.o.store_secret = tgt.secret;
            tgt.key_id = tgt.secret = NULL; /* wiped with the options */
        }
    }
    c.snapshot = snap;
    if (timeout)
        c.o.timeout_s = timeout;
    if (!strcmp(target, "tty"))
        c.verb = V_DUMP;
    else if (!strcmp(op, "backup"))
        c.verb = V_BACKUP;
    else {
        if (!snap) {
            rc = usage_error("%s", "-o restore needs -s SNAPSHOT_ID");
            goto out;
        }
        c.verb = V_RESTORE;
    }
    secrets_from_env(&c); /* CONSUL_HTTP_TOKEN, as the original tool read it */
    finish_setup(&c);
    rc = run_verb(&c, 1);
    burry_opts_wipe(&c.o);
out:
    free(endpoint);
    free(isvc);
    free(target);
    legacy_target_free(&tgt);
    return rc;
}
