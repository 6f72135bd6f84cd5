/* bysu agent: refuses every request but "snapshot NAME", "list" and
 * "version"; a snapshot runs the configured command into a spool file first
 * (so a failing command writes nothing to the stream), then writes the tar. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <ini.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "age.h"
#include "agent.h"
#include "buf.h"
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

/* Calls fn(section, line, keys, arg) for every section header of an INI
 * file the way libinih sees it (an indented line after a key continues that
 * key), keys being the number of keys of the section before it (of none,
 * for the first), and once more at the end with section NULL; stops when fn
 * returns non-zero and returns that, or -1 if unreadable. */
static int ini_headers(const char *path, int (*fn)(const char *section, int line, int keys, void *arg),
                       void *arg)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;
    int line = 0, rc = 0, after_key = 0, keys = 0;
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
            keys++;
            continue;
        }
        char *end = strchr(s, ']');
        if (!end)
            continue;
        *end = 0;
        after_key = 0;
        rc = fn(s + 1, line, keys, arg);
        keys = 0;
    }
    if (rc == 0)
        rc = fn(NULL, line, keys, arg);
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

static int note_section(const char *section, int line, int keys, void *arg)
{
    struct sections *x = arg;
    if (!section)
        return 0;
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

/* libinih reads a longer line in pieces of INI_MAX_LINE - 1 (199) bytes,
 * each taken for a line of its own: its errors would name lines that do
 * not exist. */
#define INI_LINE_MAX 199

static int check_line_lengths(const char *path, struct burry_err *e)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int line = 0, rc = 0;
    if (!f)
        return 0; /* said by the caller */
    while (rc == 0 && (n = getline(&buf, &cap, f)) >= 0) {
        line++;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        if (n > INI_LINE_MAX)
            rc = burry_errf(e, BURRY_EUSAGE, "'%s' line %d: %zd characters long; a line may hold at most %d",
                            path, line, n, INI_LINE_MAX);
    }
    free(buf);
    fclose(f);
    return rc;
}

int bysu_ini_check_sections(const char *path, struct burry_err *e)
{
    struct sections x = {.path = path, .e = e};
    if (check_line_lengths(path, e) < 0)
        return BURRY_EUSAGE;
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

static int match_section(const char *section, int line, int keys, void *arg)
{
    struct find_section *x = arg;
    if (!section || strcmp(section, x->want))
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

struct empty_section {
    char *name;
    size_t len;
    int line, last_line;
};

static int find_empty(const char *section, int line, int keys, void *arg)
{
    struct empty_section *x = arg;
    if (x->last_line && !keys) {
        x->line = x->last_line; /* the section before this header had no key */
        return 1;
    }
    if (section) {
        snprintf(x->name, x->len, "%s", section);
        x->last_line = line;
    }
    return 0;
}

int bysu_ini_empty_section(const char *path, char *name, size_t len)
{
    struct empty_section x = {.name = name, .len = len};
    ini_headers(path, find_empty, &x);
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
    char empty[256];
    int eline = bysu_ini_empty_section(path, empty, sizeof empty);
    if (eline) {
        burry_errf(e, BURRY_EUSAGE, "'%s' line %d: [%s] is empty%s", path, eline, empty,
                   strncmp(empty, "snapshot ", 9) ? "" : " (it wants command, paths or both)");
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

/* How long a command killed on the collector's leaving gets between SIGTERM
 * and SIGKILL. */
#define AGENT_KILL_GRACE_MS 2000

/* Is the other end of fd gone? A pipe or socket whose reader closed reports
 * POLLERR or POLLHUP even with no events asked for; files and /dev/null
 * never do. */
static int peer_gone(int fd)
{
    struct pollfd q = {.fd = fd};
    return fd >= 0 && poll(&q, 1, 0) == 1 && (q.revents & (POLLERR | POLLHUP | POLLNVAL));
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Wait for pid, the leader of its own process group, woken by its pidfd
 * (-1: look every 100 ms). While it runs, a collector that goes away
 * (watch_fd's reader closes: ssh was killed at the job's timeout) or a
 * signal to the agent ends the whole group: SIGTERM, then SIGKILL after a
 * grace. *gone says why: 1 the collector left, 2 the agent was signalled. */
static int wait_cmd(pid_t pid, int pidfd, int watch_fd, int *st, int *gone)
{
    double term_at = 0;
    *gone = 0;
    for (;;) {
        pid_t w = waitpid(pid, st, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -1;
        if (!*gone && (burry_interrupted || peer_gone(watch_fd))) {
            *gone = burry_interrupted ? 2 : 1;
            kill(-pid, SIGTERM);
            term_at = mono_ms();
        } else if (*gone && mono_ms() - term_at >= AGENT_KILL_GRACE_MS) {
            kill(-pid, SIGKILL);
        }
        /* once gone, watch_fd would wake poll at once, again and again */
        struct pollfd q[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = *gone ? -1 : watch_fd}};
        /* a signal interrupts poll (no SA_RESTART); the bound covers one
         * that lands just before it */
        (void)poll(q, 2, pidfd >= 0 && !*gone ? 1000 : 100);
    }
}

/* Run cmd with /bin/sh -c in a process group of its own, its standard
 * output on out_fd; the exit status (or 128+signal) in *status. The command
 * is killed, and the call fails, when the agent is signalled or (watch_fd
 * >= 0) the collector closes its end of watch_fd. */
static int run_sh(const char *what, const char *cmd, int out_fd, int err_fd, int watch_fd, int *status,
                  struct burry_err *e)
{
    pid_t pid = fork();
    if (pid < 0)
        return burry_errf(e, BURRY_EFAIL, "cannot fork (%s)", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL); /* the agent ignores it; commands expect the default */
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); /* also here: the child may not have run yet */
    int pidfd = pidfd_open(pid, 0), st = 0, gone = 0;
    int r = wait_cmd(pid, pidfd, watch_fd, &st, &gone);
    if (pidfd >= 0)
        close(pidfd);
    if (r < 0)
        return burry_errf(e, BURRY_EFAIL, "cannot wait for the %s (%s)", what, strerror(errno));
    if (gone)
        return burry_errf(e, gone == 2 ? BURRY_EINTR : BURRY_EFAIL, "the %s was stopped: %s", what,
                          gone == 2 ? "the agent was interrupted" : "the collector went away");
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

/* Copy exactly size bytes of fd into the current entry and record its
 * checksum. A file that shrank meanwhile fails the snapshot (its tar header
 * is out already; padding it would store made-up bytes under a checksum
 * that matches them); bytes it grew by are left out, as the header says. */
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
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = burry_errf(t->e, BURRY_EFAIL, "cannot read '%s' (%s)", name, strerror(errno));
            goto out;
        }
        if (n == 0) { /* shrank: the header promised more than there is */
            rc = burry_errf(t->e, BURRY_EFAIL, "'%s' shrank while being read (%lld of %lld bytes there)", name,
                            (long long)(size - left), (long long)size);
            goto out;
        }
        if (burry_interrupted) {
            rc = burry_errf(t->e, BURRY_EINTR, "interrupted while reading '%s'", name);
            goto out;
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

/* The walk of the listed paths never follows a symlink, however the tree
 * changes under it: each entry is opened relative to its parent directory's
 * descriptor with O_NOFOLLOW (O_NONBLOCK too, so a fifo put in a file's
 * place cannot block the open) and must then be the very object lstat saw.
 * A directory swapped for a symlink to elsewhere, or a file for a fifo,
 * fails the snapshot instead of leading outside the listed paths. Entries
 * go in name order, so the same tree gives the same tar. */

/* "files/" + path without its leading '/' and trailing '/'s. */
static char *entry_name(const char *path)
{
    char *name = NULL;
    if (asprintf(&name, "files/%s", path + 1) < 0)
        return NULL;
    size_t nl = strlen(name);
    while (nl > 6 && name[nl - 1] == '/')
        name[--nl] = 0;
    return name;
}

/* Open name in dirfd without following a symlink; 0 with *fd, the
 * descriptor of what *st describes, or an error. */
static int open_same(struct tarw *t, int dirfd, const char *name, const char *path, const struct stat *st,
                     int flags, int *fd)
{
    struct stat now;
    *fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | flags);
    if (*fd < 0)
        return burry_errf(t->e, BURRY_EFAIL, "cannot open '%s' (%s)", path,
                          errno == ELOOP || errno == ENOTDIR ? "it was replaced while being read" : strerror(errno));
    if (fstat(*fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino ||
        (now.st_mode & S_IFMT) != (st->st_mode & S_IFMT)) {
        close(*fd);
        *fd = -1;
        return burry_errf(t->e, BURRY_EFAIL, "cannot read '%s' (it was replaced while being read)", path);
    }
    return 0;
}

static int add_dir_entry(struct tarw *t, const char *name, const struct stat *st, const char *target)
{
    struct archive_entry *en = archive_entry_new();
    int rc = 0;
    archive_entry_copy_stat(en, st);
    archive_entry_set_pathname(en, name);
    archive_entry_set_size(en, 0);
    if (target)
        archive_entry_set_symlink(en, target);
    if (archive_write_header(t->a, en) != ARCHIVE_OK)
        rc = tar_fail(t, name);
    else if (target)
        json_array_append_new(t->files, json_pack("{s:s,s:s,s:s}", "path", name, "type", "symlink", "target", target));
    else
        json_array_append_new(t->files, json_pack("{s:s,s:s}", "path", name, "type", "dir"));
    archive_entry_free(en);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_entry(struct tarw *t, int dirfd, const char *name, const char *path);

/* The entries of the directory open on fd (path), in name order. */
static int walk_dir(struct tarw *t, int fd, const char *path)
{
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return burry_errf(t->e, BURRY_EFAIL, "cannot read the directory '%s' (%s)", path, strerror(errno));
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = burry_errf(t->e, BURRY_EFAIL, "cannot read the directory '%s' (%s)", path, strerror(errno));
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (array_grow(&names, n, &cap, sizeof *names, 64) < 0) {
            rc = burry_errf(t->e, BURRY_EFAIL, "out of memory");
            break;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = burry_errf(t->e, BURRY_EFAIL, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            char *child = NULL;
            size_t pl = strlen(path);
            if (asprintf(&child, "%s%s%s", path, pl && path[pl - 1] == '/' ? "" : "/", names[i]) < 0)
                rc = burry_errf(t->e, BURRY_EFAIL, "out of memory");
            else
                rc = walk_entry(t, fd, names[i], child);
            free(child);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* One entry, name in dirfd, shown as path: a file, a directory with all it
 * holds, or a symlink recorded as such. Sockets, fifos and devices have
 * nothing to keep. */
static int walk_entry(struct tarw *t, int dirfd, const char *name, const char *path)
{
    struct stat st;
    int rc = 0, fd = -1;
    if (burry_interrupted)
        return burry_errf(t->e, BURRY_EINTR, "interrupted");
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return burry_errf(t->e, BURRY_EFAIL, "cannot read '%s' (%s)", path, strerror(errno));
    char *ename = entry_name(path);
    if (!ename)
        return burry_errf(t->e, BURRY_EFAIL, "out of memory");
    if (S_ISREG(st.st_mode)) {
        if ((rc = open_same(t, dirfd, name, path, &st, O_NONBLOCK, &fd)) == 0)
            rc = tar_add_file(t, ename, &st, fd);
    } else if (S_ISDIR(st.st_mode)) {
        if ((rc = open_same(t, dirfd, name, path, &st, O_DIRECTORY, &fd)) == 0 &&
            (rc = add_dir_entry(t, ename, &st, NULL)) == 0)
            rc = walk_dir(t, fd, path);
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, target, sizeof target - 1);
        if (n < 0) {
            rc = burry_errf(t->e, BURRY_EFAIL, "cannot read the link '%s' (%s)", path, strerror(errno));
        } else {
            target[n] = 0;
            rc = add_dir_entry(t, ename, &st, target);
        }
    }
    if (fd >= 0)
        close(fd);
    free(ename);
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
        /* the listed path itself, relative to the current directory, which
         * does not matter for an absolute one: the directories above it are
         * the node's configuration, so symlinks there are followed */
        rc = walk_entry(t, AT_FDCWD, p, p);
    }
    free(copy);
    return rc;
}

/* post runs on its own once the snapshot is whole, in a session of its
 * own: the agent exits at once, so the collector's ssh session ends with the
 * stream and post's duration never counts against the job's timeout. No one
 * waits on its output then: each line of it, and a failure, go to syslog
 * (tag bysu-agent). */
static void post_detached(const struct agent_snap *s)
{
    pid_t pid = fork();
    if (pid < 0) {
        openlog("bysu-agent", LOG_PID, LOG_DAEMON);
        syslog(LOG_WARNING, "cannot run the post command of snapshot '%s' (fork: %s)", s->name, strerror(errno));
        closelog();
    }
    if (pid != 0)
        return;
    setsid();
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    int nul = open("/dev/null", O_RDWR), pfd[2];
    if (nul < 0 || pipe(pfd) < 0)
        _exit(1);
    dup2(nul, 0);
    pid_t c = fork();
    if (c == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", s->post, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    dup2(nul, 1); /* the session's pipes: sshd ends the session when they close */
    dup2(nul, 2);
    openlog("bysu-agent", LOG_PID, LOG_DAEMON);
    FILE *f = fdopen(pfd[0], "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (f && (n = getline(&line, &cap, f)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
                line[i] = line[i] == '\n' && i == n - 1 ? 0 : '?';
        syslog(LOG_NOTICE, "post command of snapshot '%s': %.400s", s->name, line);
    }
    int st = 0;
    if (c < 0)
        syslog(LOG_WARNING, "cannot run the post command of snapshot '%s' (fork: %s)", s->name, strerror(errno));
    else if (waitpid(c, &st, 0) == c && st)
        syslog(LOG_WARNING, "post command of snapshot '%s' exited with status %d", s->name,
               WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    _exit(0);
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
        if ((rc = run_sh("pre command", s->pre, err_fd, err_fd, out_fd, &status, e)) < 0)
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
        if ((spool = mkostemp(tmpl, O_CLOEXEC)) < 0) {
            rc = burry_errf(e, BURRY_EFAIL, "cannot create a spool file in '%s' (%s)",
                            dir && *dir ? dir : "/tmp", strerror(errno));
            goto out;
        }
        unlink(tmpl);
        if ((rc = run_sh("command", s->command, spool, err_fd, out_fd, &status, e)) < 0)
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
    if (s->post)
        post_detached(s);
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
