/* bysu agent: refuses every request but "snapshot NAME", "list" and
 * "version"; a snapshot runs the configured command into a spool file first
 * (so a failing command writes nothing to the stream), then writes the tar. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <ini.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "age.h"
#include "agent.h"
#include "digest.h"

#define AGENT_MAX_SNAPSHOTS 256
/* Large reads, tar blocks and pipe: fewer system calls and wake-ups per byte
 * for the agent and for the sshd that forwards its output. */
#define AGENT_BUF (256 * 1024)
#define AGENT_PIPE_SIZE (1024 * 1024)

struct agent_snap {
    char *name, *command, *paths, *pre, *post, *recipients, *recipients_file;
    unsigned char (*pks)[32]; /* set: the stream is age-encrypted before it leaves */
    size_t npks;
};

struct agent_conf {
    struct agent_snap snaps[AGENT_MAX_SNAPSHOTS];
    int n;
    char *path;
    char err[256];
};

static struct agent_snap *find_snap(const struct agent_conf *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->snaps[i].name, name))
            return (struct agent_snap *)&c->snaps[i];
    return NULL;
}

/* Calls fn(section, line, arg) for every section header of an INI file the
 * way libinih sees it (an indented line after a key continues that key);
 * stops when fn returns non-zero and returns that, or -1 if unreadable. */
static int ini_headers(const char *path, int (*fn)(const char *section, int line, void *arg), void *arg)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;
    int line = 0, rc = 0, after_key = 0;
    if (!f)
        return -1;
    while (rc == 0 && getline(&buf, &cap, f) >= 0) {
        line++;
        char *s = buf;
        if (line == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
            s += 3;
        int indented = *s == ' ' || *s == '\t';
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '\n' || *s == '\r' || *s == ';' || *s == '#')
            continue;
        if (after_key && indented)
            continue;
        if (*s != '[') {
            after_key = 1;
            continue;
        }
        char *end = strchr(s, ']');
        if (!end)
            continue;
        *end = 0;
        after_key = 0;
        rc = fn(s + 1, line, arg);
    }
    free(buf);
    fclose(f);
    return rc;
}

struct sections {
    char **names;
    int *lines, n, cap;
    const char *path;
    struct burry_err *e;
};

static int note_section(const char *section, int line, void *arg)
{
    struct sections *x = arg;
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->names[i], section))
            return burry_errf(x->e, BURRY_EUSAGE, "'%s' line %d: section [%s] is given twice (first at line %d)",
                              x->path, line, section, x->lines[i]);
    if (x->n == x->cap) {
        int cap = x->cap ? 2 * x->cap : 16;
        char **names = realloc(x->names, cap * sizeof *names);
        if (names)
            x->names = names;
        int *lines = realloc(x->lines, cap * sizeof *lines);
        if (lines)
            x->lines = lines;
        if (!names || !lines)
            return burry_errf(x->e, BURRY_EFAIL, "out of memory");
        x->cap = cap;
    }
    if (!(x->names[x->n] = strdup(section)))
        return burry_errf(x->e, BURRY_EFAIL, "out of memory");
    x->lines[x->n++] = line;
    return 0;
}

int bysu_ini_check_sections(const char *path, struct burry_err *e)
{
    struct sections x = {.path = path, .e = e};
    int rc = ini_headers(path, note_section, &x);
    if (rc == -1 && !e->code)
        rc = burry_errf(e, BURRY_EUSAGE, "cannot read '%s' (%s)", path, strerror(errno));
    for (int i = 0; i < x.n; i++)
        free(x.names[i]);
    free(x.names);
    free(x.lines);
    return rc < 0 ? rc : 0;
}

struct find_section {
    const char *want;
    int line;
};

static int match_section(const char *section, int line, void *arg)
{
    struct find_section *x = arg;
    if (strcmp(section, x->want))
        return 0;
    x->line = line;
    return 1;
}

int bysu_ini_section_line(const char *path, const char *section)
{
    struct find_section x = {.want = section};
    ini_headers(path, match_section, &x);
    return x.line;
}

static int conf_handler(void *user, const char *section, const char *key, const char *value)
{
    struct agent_conf *c = user;
    if (c->err[0])
        return 0; /* keep the first error's message with the line inih reports */
    if (strncmp(section, "snapshot ", 9) || !section[9]) {
        snprintf(c->err, sizeof c->err, "unknown section '[%s]' (want [snapshot NAME])", section);
        return 0;
    }
    const char *name = section + 9;
    struct agent_snap *s = find_snap(c, name);
    if (!s) {
        if (c->n == AGENT_MAX_SNAPSHOTS) {
            snprintf(c->err, sizeof c->err, "more than %d snapshots", AGENT_MAX_SNAPSHOTS);
            return 0;
        }
        s = &c->snaps[c->n++];
        s->name = strdup(name);
    }
    char **slot = !strcmp(key, "command") ? &s->command
                  : !strcmp(key, "paths") ? &s->paths
                  : !strcmp(key, "pre")   ? &s->pre
                  : !strcmp(key, "post")  ? &s->post
                  : !strcmp(key, "recipients") ? &s->recipients
                  : !strcmp(key, "recipients_file") ? &s->recipients_file
                                          : NULL;
    if (!slot) {
        snprintf(c->err, sizeof c->err, "unknown key '%s' in [snapshot %s]", key, name);
        return 0;
    }
    if (*slot) {
        snprintf(c->err, sizeof c->err, "'%s' is given twice in [snapshot %s]", key, name);
        return 0;
    }
    *slot = strdup(value);
    return 1;
}

int bysu_parse_recipients(const char *list, const char *path, unsigned char (**pks)[32], size_t *n,
                          struct burry_err *e)
{
    unsigned char(*all)[32] = NULL, (*more)[32] = NULL;
    size_t cnt = 0, nmore = 0;
    int rc = 0;
    *pks = NULL;
    *n = 0;
    if (list) {
        char *copy = strdup(list), *save = NULL;
        if (!copy)
            return burry_errf(e, BURRY_EFAIL, "out of memory");
        for (char *r = strtok_r(copy, " \t,", &save); r; r = strtok_r(NULL, " \t,", &save)) {
            void *grown = realloc(all, (cnt + 1) * sizeof *all);
            if (!grown) {
                rc = burry_errf(e, BURRY_EFAIL, "out of memory");
                break;
            }
            all = grown;
            if ((rc = age_parse_recipient(r, all[cnt], e)) < 0)
                break;
            cnt++;
        }
        free(copy);
    }
    if (rc == 0 && path && (rc = age_read_recipients(path, &more, &nmore, e)) == 0 && nmore) {
        void *grown = realloc(all, (cnt + nmore) * sizeof *all);
        if (!grown) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        } else {
            all = grown;
            memcpy(all + cnt, more, nmore * sizeof *more);
            cnt += nmore;
        }
    }
    free(more);
    if (rc == 0 && (list || path) && !cnt)
        rc = burry_errf(e, BURRY_EUSAGE, "recipients%s%s name no age1... key", path ? " file " : "",
                        path ? path : "");
    if (rc < 0) {
        free(all);
        return rc;
    }
    *pks = all;
    *n = cnt;
    return 0;
}

int agent_conf_load(const char *path, struct agent_conf **out, struct burry_err *e)
{
    struct agent_conf *c = calloc(1, sizeof *c);
    if (!c)
        return burry_errf(e, BURRY_EFAIL, "out of memory");
    if (bysu_ini_check_sections(path, e) < 0) {
        agent_conf_free(c);
        return BURRY_EUSAGE;
    }
    int r = ini_parse(path, conf_handler, c);
    if (r == -1) {
        agent_conf_free(c);
        return burry_errf(e, BURRY_EUSAGE, "cannot read '%s' (%s)", path, strerror(errno));
    }
    if (r != 0) {
        burry_errf(e, BURRY_EUSAGE, "'%s' line %d: %s", path, r, c->err[0] ? c->err : "syntax error");
        agent_conf_free(c);
        return BURRY_EUSAGE;
    }
    for (int i = 0; i < c->n; i++)
        if (!c->snaps[i].command && !c->snaps[i].paths) {
            burry_errf(e, BURRY_EUSAGE, "'%s': [snapshot %s] has neither command nor paths", path,
                       c->snaps[i].name);
            agent_conf_free(c);
            return BURRY_EUSAGE;
        }
    for (int i = 0; i < c->n; i++) {
        struct agent_snap *s = &c->snaps[i];
        if (bysu_parse_recipients(s->recipients, s->recipients_file, &s->pks, &s->npks, e) < 0) {
            burry_err_prefix(e, "'%s': [snapshot %s]", path, s->name);
            agent_conf_free(c);
            return BURRY_EUSAGE;
        }
    }
    *out = c;
    return 0;
}

void agent_conf_free(struct agent_conf *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        free(c->snaps[i].name);
        free(c->snaps[i].command);
        free(c->snaps[i].paths);
        free(c->snaps[i].pre);
        free(c->snaps[i].post);
        free(c->snaps[i].recipients);
        free(c->snaps[i].recipients_file);
        free(c->snaps[i].pks);
    }
    free(c);
}

/* Run cmd with /bin/sh -c, its standard output on out_fd; the exit status
 * (or 128+signal) in *status. */
static int run_sh(const char *cmd, int out_fd, int err_fd, int *status, struct burry_err *e)
{
    pid_t pid = fork();
    if (pid < 0)
        return burry_errf(e, BURRY_EFAIL, "cannot fork (%s)", strerror(errno));
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return burry_errf(e, BURRY_EFAIL, "cannot wait for '%s' (%s)", cmd, strerror(errno));
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

struct tarw {
    struct archive *a;
    json_t *files;
    struct burry_err *e;
};

static int tar_fail(struct tarw *t, const char *what)
{
    return burry_errf(t->e, BURRY_EFAIL, "cannot write '%s' to the stream (%s)", what,
                      archive_error_string(t->a) ? archive_error_string(t->a) : "unknown error");
}

/* Copy exactly size bytes of fd into the current entry (zero-padded if the
 * file shrank meanwhile) and record its checksum. */
static int tar_body(struct tarw *t, const char *name, int fd, int64_t size)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(AGENT_BUF);
    int64_t left = size;
    int rc = 0;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        free(buf);
        return burry_errf(t->e, BURRY_EFAIL, "out of memory");
    }
    while (left > 0) {
        size_t want = left < (int64_t)AGENT_BUF ? (size_t)left : AGENT_BUF;
        ssize_t n = fd >= 0 ? read(fd, buf, want) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = burry_errf(t->e, BURRY_EFAIL, "cannot read '%s' (%s)", name, strerror(errno));
            goto out;
        }
        if (n == 0) { /* shrank: keep the header's promise */
            memset(buf, 0, want);
            n = (ssize_t)want;
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
        if (archive_write_data(t->a, buf, (size_t)n) != n) {
            rc = tar_fail(t, name);
            goto out;
        }
        left -= n;
    }
    char hex[65];
    sha256_final_hex(md, hex);
    json_array_append_new(t->files, json_pack("{s:s,s:s,s:I,s:s}", "path", name, "type", "file",
                                              "size", (json_int_t)size, "sha256", hex));
out:
    EVP_MD_CTX_free(md);
    free(buf);
    return rc;
}

static int tar_add_file(struct tarw *t, const char *name, const struct stat *st, int fd)
{
    struct archive_entry *en = archive_entry_new();
    archive_entry_copy_stat(en, st);
    archive_entry_set_pathname(en, name);
    archive_entry_set_size(en, st->st_size);
    int rc = 0;
    if (archive_write_header(t->a, en) != ARCHIVE_OK)
        rc = tar_fail(t, name);
    else
        rc = tar_body(t, name, fd, st->st_size);
    archive_entry_free(en);
    return rc;
}

static int tar_add_path(struct tarw *t, FTSENT *f)
{
    char *name = NULL;
    int rc = 0, fd = -1;
    if (asprintf(&name, "files/%s", f->fts_path + 1) < 0)
        return burry_errf(t->e, BURRY_EFAIL, "out of memory");
    size_t nl = strlen(name);
    while (nl > 6 && name[nl - 1] == '/')
        name[--nl] = 0;
    const struct stat *st = f->fts_statp;
    switch (f->fts_info) {
    case FTS_F:
        fd = open(f->fts_accpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            rc = burry_errf(t->e, BURRY_EFAIL, "cannot open '%s' (%s)", f->fts_path, strerror(errno));
            break;
        }
        rc = tar_add_file(t, name, st, fd);
        break;
    case FTS_D:
    case FTS_SL:
    case FTS_SLNONE: {
        struct archive_entry *en = archive_entry_new();
        archive_entry_copy_stat(en, st);
        archive_entry_set_pathname(en, name);
        archive_entry_set_size(en, 0);
        char target[PATH_MAX];
        const char *type = "dir";
        if (f->fts_info != FTS_D) {
            ssize_t n = readlink(f->fts_accpath, target, sizeof target - 1);
            if (n < 0) {
                archive_entry_free(en);
                rc = burry_errf(t->e, BURRY_EFAIL, "cannot read link '%s' (%s)", f->fts_path,
                                strerror(errno));
                break;
            }
            target[n] = 0;
            archive_entry_set_symlink(en, target);
            type = "symlink";
        }
        if (archive_write_header(t->a, en) != ARCHIVE_OK)
            rc = tar_fail(t, name);
        else if (f->fts_info == FTS_D)
            json_array_append_new(t->files, json_pack("{s:s,s:s}", "path", name, "type", type));
        else
            json_array_append_new(t->files, json_pack("{s:s,s:s,s:s}", "path", name, "type", type,
                                                      "target", target));
        archive_entry_free(en);
        break;
    }
    case FTS_DNR:
    case FTS_ERR:
    case FTS_NS:
        rc = burry_errf(t->e, BURRY_EFAIL, "cannot read '%s' (%s)", f->fts_path, strerror(f->fts_errno));
        break;
    default: /* sockets, fifos, devices and post-order directories: nothing to keep */
        break;
    }
    if (fd >= 0)
        close(fd);
    free(name);
    return rc;
}

static int tar_paths(struct tarw *t, const struct agent_snap *s)
{
    char *copy = strdup(s->paths), *save = NULL;
    int rc = 0;
    if (!copy)
        return burry_errf(t->e, BURRY_EFAIL, "out of memory");
    for (char *p = strtok_r(copy, " \t", &save); p && rc == 0; p = strtok_r(NULL, " \t", &save)) {
        if (p[0] != '/' || strstr(p, "/../") || !strcmp(p + strlen(p) - (strlen(p) >= 3 ? 3 : 0), "/..")) {
            rc = burry_errf(t->e, BURRY_EUSAGE, "path '%s' of snapshot '%s' is not absolute and clean",
                            p, s->name);
            break;
        }
        char *argv[] = {p, NULL};
        FTS *fts = fts_open(argv, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
        if (!fts) {
            rc = burry_errf(t->e, BURRY_EFAIL, "cannot walk '%s' (%s)", p, strerror(errno));
            break;
        }
        while (rc == 0) {
            errno = 0;
            FTSENT *f = fts_read(fts);
            if (!f) {
                if (errno)
                    rc = burry_errf(t->e, BURRY_EFAIL, "cannot walk '%s' (%s)", p, strerror(errno));
                break;
            }
            rc = tar_add_path(t, f);
        }
        fts_close(fts);
    }
    free(copy);
    return rc;
}

/* The way out of the node: straight to the descriptor, or through age. */
struct agent_out {
    int fd;
    struct age_enc *age;
    struct burry_err *e;
};

static int fd_write(void *ctx, const void *buf, size_t len, struct burry_err *e)
{
    struct agent_out *o = ctx;
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(o->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return burry_errf(e, BURRY_EFAIL, "cannot write the stream (%s)", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static la_ssize_t age_out(struct archive *a, void *ctx, const void *buf, size_t len)
{
    struct agent_out *o = ctx;
    if (age_enc_write(o->age, buf, len, o->e) < 0) {
        archive_set_error(a, EIO, "%s", o->e->msg);
        return -1;
    }
    return (la_ssize_t)len;
}

static int snapshot(const struct agent_conf *c, const struct agent_snap *s, int out_fd, int err_fd,
                    struct burry_err *e)
{
    struct tarw t = {.files = json_array(), .e = e};
    struct agent_out ao = {.fd = out_fd, .e = e};
    int rc = 0, status = 0, spool = -1;
    char host[256] = "", when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    gethostname(host, sizeof host - 1);

    if (s->pre) {
        if ((rc = run_sh(s->pre, err_fd, err_fd, &status, e)) < 0)
            goto out;
        if (status) {
            rc = burry_errf(e, BURRY_EFAIL, "pre command of snapshot '%s' exited with status %d", s->name, status);
            goto out;
        }
    }
    if (s->command) {
        char tmpl[PATH_MAX];
        const char *dir = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/bysu-spool.XXXXXX", dir && *dir ? dir : "/tmp");
        if ((spool = mkstemp(tmpl)) < 0) {
            rc = burry_errf(e, BURRY_EFAIL, "cannot create a spool file in '%s' (%s)",
                            dir && *dir ? dir : "/tmp", strerror(errno));
            goto out;
        }
        unlink(tmpl);
        if ((rc = run_sh(s->command, spool, err_fd, &status, e)) < 0)
            goto out;
        if (status) {
            rc = burry_errf(e, BURRY_EFAIL, "command of snapshot '%s' exited with status %d", s->name, status);
            goto out;
        }
    }

    /* from here on the stream is being written */
    if (s->npks && !(ao.age = age_enc_new((const unsigned char (*)[32])s->pks, s->npks, fd_write, &ao, e))) {
        rc = BURRY_EFAIL;
        goto out;
    }
    (void)fcntl(out_fd, F_SETPIPE_SZ, AGENT_PIPE_SIZE); /* fails harmlessly on a non-pipe */
    t.a = archive_write_new();
    if (!t.a || archive_write_set_format_pax_restricted(t.a) != ARCHIVE_OK ||
        archive_write_add_filter_none(t.a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(t.a, AGENT_BUF) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(t.a, 1) != ARCHIVE_OK ||
        (ao.age ? archive_write_open(t.a, &ao, NULL, age_out, NULL) : archive_write_open_fd(t.a, out_fd)) != ARCHIVE_OK) {
        rc = burry_errf(e, BURRY_EFAIL, "cannot start the tar stream");
        goto out;
    }
    if (spool >= 0) {
        struct stat st;
        char *name = NULL;
        fstat(spool, &st);
        lseek(spool, 0, SEEK_SET);
        st.st_mode = S_IFREG | 0600;
        st.st_mtime = now;
        st.st_uid = st.st_gid = 0;
        if (asprintf(&name, "output/%s.out", s->name) < 0) {
            rc = burry_errf(e, BURRY_EFAIL, "out of memory");
            goto out;
        }
        rc = tar_add_file(&t, name, &st, spool);
        free(name);
        if (rc < 0)
            goto out;
    }
    if (s->paths && (rc = tar_paths(&t, s)) < 0)
        goto out;

    json_t *m = json_pack("{s:s,s:i,s:s,s:s,s:s,s:s?,s:i,s:O}", "format", "bysu-snapshot",
                          "format_version", 1, "host", host, "snapshot", s->name, "time", when,
                          "command", s->command, "exit_status", status, "files", t.files);
    char *text = m ? json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(m);
    if (!text) {
        rc = burry_errf(e, BURRY_EFAIL, "out of memory");
        goto out;
    }
    struct archive_entry *en = archive_entry_new();
    archive_entry_set_pathname(en, "MANIFEST.json");
    archive_entry_set_filetype(en, AE_IFREG);
    archive_entry_set_perm(en, 0644);
    archive_entry_set_mtime(en, now, 0);
    archive_entry_set_size(en, (la_int64_t)strlen(text));
    if (archive_write_header(t.a, en) != ARCHIVE_OK ||
        archive_write_data(t.a, text, strlen(text)) != (la_ssize_t)strlen(text))
        rc = tar_fail(&t, "MANIFEST.json");
    archive_entry_free(en);
    free(text);
    if (rc < 0)
        goto out;
    if (archive_write_close(t.a) != ARCHIVE_OK) {
        rc = tar_fail(&t, "the end of the archive");
        goto out;
    }
    /* only a finished age file has its final chunk: a failure before this
     * leaves a stream that does not decrypt */
    if (ao.age && (rc = age_enc_finish(ao.age, e)) < 0)
        goto out;
    if (s->post && run_sh(s->post, err_fd, err_fd, &status, e) == 0 && status)
        dprintf(err_fd, "bysu agent: post command of snapshot '%s' exited with status %d\n", s->name, status);
    (void)c;
out:
    if (spool >= 0)
        close(spool);
    archive_write_free(t.a); /* after a failure: leaves the tar incomplete */
    age_enc_free(ao.age);
    json_decref(t.files);
    return rc;
}

int agent_serve(const struct agent_conf *c, const char *request, int out_fd, int err_fd,
                struct burry_err *e)
{
    if (!request)
        return burry_errf(e, BURRY_EUSAGE, "refused '' (no SSH_ORIGINAL_COMMAND; this is a forced command)");
    if (!strcmp(request, "version")) {
        dprintf(out_fd, "bysu %s\n", BURRY_VERSION);
        return 0;
    }
    if (!strcmp(request, "list")) {
        for (int i = 0; i < c->n; i++)
            dprintf(out_fd, "%s\n", c->snaps[i].name);
        return 0;
    }
    if (!strncmp(request, "snapshot ", 9)) {
        const struct agent_snap *s = find_snap(c, request + 9);
        if (s)
            return snapshot(c, s, out_fd, err_fd, e);
    }
    return burry_errf(e, BURRY_EUSAGE, "refused '%s'", request);
}
