/* The directory store ("file:///abs/path" or a plain path): one file per key
 * below the store's root. Writes go to a private temporary file in the key's
 * directory, which is fsynced and then linked to its final name without ever
 * replacing one, so a reader never sees half a snapshot. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "registry.h"
#include "store.h"

/* Keys are at most this many segments deep ("NAME/ID.tar.zst" is 2); list
 * walks no deeper, so put refuses what list could not find again. */
#define DIR_MAX_DEPTH 4
#define DIR_MAX_KEY 1024
#define TMP_PREFIX ".burry-tmp."

struct store {
    char *root;   /* absolute, no trailing '/' unless it is "/" */
    char *desc;   /* "directory '/abs/path'" */
};

struct store_put {
    struct store *s;
    char *key;
    char *dir;    /* absolute path of the key's directory */
    char *base;   /* the key's last segment */
    char tmp[64]; /* temporary name inside dir */
    int dirfd;
    int fd;
};

struct store_get {
    struct store *s;
    char *key;
    int fd;
};

static int oom(struct burry_err *e)
{
    return burry_errf(e, BURRY_EFAIL, "out of memory");
}

/* Checks the segments of a relative name: none empty, ".", ".." or hidden
 * (a leading '.' is reserved for the store's own temporary files). Returns
 * the number of segments, or -1. */
static int rel_segments(const char *s, size_t n)
{
    int segs = 0;
    size_t i = 0;
    if (n == 0 || n > DIR_MAX_KEY)
        return -1;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '/')
            j++;
        if (j == i || s[i] == '.' || j - i > NAME_MAX)
            return -1;
        segs++;
        if (j == n)
            break;
        i = j + 1;
        if (i == n)
            return -1; /* trailing '/' */
    }
    return segs;
}

static int check_key(const struct store *s, const char *key, struct burry_err *e)
{
    int segs = rel_segments(key, strlen(key));
    if (segs < 0 || segs > DIR_MAX_DEPTH)
        return burry_errf(e, BURRY_EUSAGE,
                          "invalid key '%s' for directory '%s' (expected a relative path of at most %d "
                          "segments, none empty, '.', '..' or starting with '.')",
                          key, s->root, DIR_MAX_DEPTH);
    return 0;
}

/* The root as an absolute path: the working directory joined with a relative
 * path; "//" and "." segments and trailing slashes dropped. ".." is kept as
 * written, since resolving it lexically would be wrong across symlinks. */
static char *absolute_root(const char *path)
{
    char *cwd = NULL, *joined, *out;
    if (path[0] != '/') {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            return NULL;
        joined = str_printf("%s/%s", cwd, path);
        free(cwd);
    } else {
        joined = strdup(path);
    }
    if (!joined)
        return NULL;
    out = malloc(strlen(joined) + 2);
    if (!out) {
        free(joined);
        return NULL;
    }
    size_t o = 0;
    const char *p = joined;
    while (*p) {
        while (*p == '/')
            p++;
        const char *q = p;
        while (*q && *q != '/')
            q++;
        if (q == p)
            break;
        if (!(q - p == 1 && *p == '.')) {
            out[o++] = '/';
            memcpy(out + o, p, (size_t)(q - p));
            o += (size_t)(q - p);
        }
        p = q;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    free(joined);
    return out;
}

static void dir_close(struct store *s)
{
    if (!s)
        return;
    free(s->root);
    free(s->desc);
    free(s);
}

/* The path a URL names: the URL itself, or what follows "file://". */
static const char *url_path(const char *url)
{
    return strncmp(url, "file://", 7) ? url : url + 7;
}

static int dir_check_url(const char *url, struct burry_err *e)
{
    const char *path = url_path(url);
    if (path != url && path[0] != '/')
        return burry_errf(e, BURRY_EUSAGE,
                          "malformed store URL '%s' (expected file:///ABSOLUTE/PATH or a plain path)", url);
    if (!path[0])
        return burry_errf(e, BURRY_EUSAGE, "empty store path");
    return 0;
}

static int dir_open(struct store **out, const char *url, const struct burry_opts *o,
                    struct burry_err *e)
{
    const char *path = url_path(url);
    struct stat st;
    int r;
    *out = NULL;
    if ((r = dir_check_url(url, e)) < 0)
        return r;

    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return oom(e);
    s->root = absolute_root(path);
    if (!s->root) {
        int err = errno;
        dir_close(s);
        if (err == ENOMEM)
            return oom(e);
        return burry_errf(e, BURRY_EFAIL, "cannot resolve store path '%s': %s", path, strerror(err));
    }
    s->desc = str_printf("directory '%s'", s->root);
    if (!s->desc) {
        dir_close(s);
        return oom(e);
    }
    /* Nothing is created here; a store that does not exist yet is fine, but
     * an existing file where the directory should be is a mistake to report
     * before any work is done. */
    if (stat(s->root, &st) == 0 && !S_ISDIR(st.st_mode)) {
        burry_errf(e, BURRY_EUSAGE, "store path '%s' exists and is not a directory", s->root);
        dir_close(s);
        return BURRY_EUSAGE;
    }
    *out = s;
    return 0;
}

static const char *dir_describe(struct store *s)
{
    return s->desc;
}

static void fsync_dir_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* mkdir -p with mode 0700. A directory created here is made durable in its
 * parent right away, so a committed key's path survives a crash. */
static int mkdir_p(const char *path, struct burry_err *e)
{
    char *p = strdup(path);
    int r = 0;
    if (!p)
        return oom(e);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != 0)
            continue;
        char saved = *c;
        *c = 0;
        if (mkdir(p, 0700) == 0) {
            char *slash = strrchr(p, '/');
            *slash = 0;
            fsync_dir_path(slash == p ? "/" : p);
            *slash = '/';
        } else if (errno != EEXIST) {
            r = burry_errf(e, BURRY_EFAIL, "cannot create directory '%s': %s", p, strerror(errno));
            break;
        }
        *c = saved;
        if (!saved)
            break;
    }
    free(p);
    return r;
}

/* Removes temporary files left in dirfd by writers that no longer run (a
 * backup killed with -9). Best effort: a failure here changes nothing. */
static void remove_stale_tmp(int dirfd)
{
    int fd = dup(dirfd);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    pid_t self = getpid();
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TMP_PREFIX, sizeof TMP_PREFIX - 1) != 0)
            continue;
        const char *num = de->d_name + sizeof TMP_PREFIX - 1;
        char *end;
        errno = 0;
        long pid = strtol(num, &end, 10);
        if (errno || end == num || *end != '.' || pid <= 0 || pid > INT_MAX || pid == self)
            continue;
        if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
            (void)unlinkat(dirfd, de->d_name, 0);
    }
    closedir(d);
}

static unsigned int random_u32(const void *salt)
{
    unsigned int r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
        return r;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned int)ts.tv_nsec ^ (unsigned int)(size_t)salt ^ ((unsigned int)ts.tv_sec << 16);
}

/* A new temporary file in dirfd (its name into name): the descriptor, or -1
 * with errno set. */
static int open_tmp(int dirfd, char *name, size_t len, const void *salt)
{
    int fd = -1;
    for (int tries = 0; tries < 16; tries++) {
        snprintf(name, len, TMP_PREFIX "%ld.%08x", (long)getpid(), random_u32(salt));
        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    return fd;
}

/* Whether a file can be created where the keys "name/..." go: in the
 * deepest directory of root/name that exists (the rest put_open creates), a
 * temporary file is created and removed at once. */
static int dir_check_put(struct store *s, const char *name, struct burry_err *e)
{
    int r;
    if ((r = check_key(s, name, e)) != 0)
        return r;
    char *dir = str_printf("%s%s%s", s->root, strcmp(s->root, "/") ? "/" : "", name);
    if (!dir)
        return oom(e);
    struct stat st;
    for (;;) {
        if (stat(dir, &st) == 0)
            break;
        char *slash = strrchr(dir, '/');
        if (errno != ENOENT || slash == dir) {
            r = burry_errf(e, BURRY_EFAIL, "cannot write to directory '%s': %s", dir, strerror(errno));
            goto out;
        }
        *slash = 0;
    }
    char tmpname[64];
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = dfd < 0 ? -1 : open_tmp(dfd, tmpname, sizeof tmpname, dir);
    if (fd < 0) {
        r = burry_errf(e, BURRY_EFAIL, "cannot write to directory '%s': %s", dir, strerror(errno));
    } else {
        close(fd);
        (void)unlinkat(dfd, tmpname, 0);
    }
    if (dfd >= 0)
        close(dfd);
out:
    free(dir);
    return r;
}

static void put_free(struct store_put *p)
{
    if (p->fd >= 0)
        close(p->fd);
    if (p->dirfd >= 0)
        close(p->dirfd);
    free(p->key);
    free(p->dir);
    free(p);
}

static int dir_put_open(struct store *s, const char *key, struct store_put **out,
                        struct burry_err *e)
{
    struct store_put *p = NULL;
    struct stat st;
    int r;
    *out = NULL;
    if ((r = check_key(s, key, e)) != 0)
        return r;
    p = calloc(1, sizeof *p);
    if (!p)
        return oom(e);
    p->s = s;
    p->fd = p->dirfd = -1;
    p->key = strdup(key);
    p->dir = str_printf("%s%s%s", s->root, strcmp(s->root, "/") ? "/" : "", key);
    if (!p->key || !p->dir) {
        r = oom(e);
        goto out;
    }
    char *slash = strrchr(p->dir, '/');
    slash[slash == p->dir] = 0; /* a key directly in "/" keeps "/" */
    p->base = strrchr(p->key, '/');
    p->base = p->base ? p->base + 1 : p->key;

    if ((r = mkdir_p(p->dir, e)) != 0) {
        burry_err_prefix(e, "cannot write to store '%s'", s->root);
        goto out;
    }
    p->dirfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p->dirfd < 0) {
        r = burry_errf(e, BURRY_EFAIL, "cannot write to directory '%s': %s", p->dir, strerror(errno));
        goto out;
    }
    if (fstatat(p->dirfd, p->base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        r = burry_errf(e, BURRY_EEXIST, "'%s' exists already in directory '%s'", key, s->root);
        goto out;
    } else if (errno != ENOENT) {
        r = burry_errf(e, BURRY_EFAIL, "cannot check '%s' in directory '%s': %s", key, s->root,
                       strerror(errno));
        goto out;
    }
    remove_stale_tmp(p->dirfd);
    if ((p->fd = open_tmp(p->dirfd, p->tmp, sizeof p->tmp, p)) < 0) {
        r = burry_errf(e, BURRY_EFAIL, "cannot write to directory '%s': %s", p->dir, strerror(errno));
        goto out;
    }
    *out = p;
    p = NULL; /* transferred */
out:
    if (p)
        put_free(p);
    return r;
}

static int dir_put_write(struct store_put *p, const void *buf, size_t len, struct burry_err *e)
{
    const char *c = buf;
    while (len > 0) {
        ssize_t n = write(p->fd, c, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return burry_errf(e, BURRY_EFAIL, "cannot write '%s' in directory '%s': %s", p->key,
                              p->s->root, n < 0 ? strerror(errno) : "short write");
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

static void dir_put_abort(struct store_put *p)
{
    if (!p)
        return;
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    if (p->dirfd >= 0 && p->tmp[0])
        (void)unlinkat(p->dirfd, p->tmp, 0);
    put_free(p);
}

/* Publishes the temporary file under its final name, never replacing one.
 * renameat2(RENAME_NOREPLACE) where the filesystem has it, else link+unlink.
 * Returns 0 or an errno value. */
static int publish(struct store_put *p)
{
    if (renameat2(p->dirfd, p->tmp, p->dirfd, p->base, RENAME_NOREPLACE) == 0) {
        p->tmp[0] = 0;
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return errno;
    if (linkat(p->dirfd, p->tmp, p->dirfd, p->base, 0) != 0)
        return errno;
    (void)unlinkat(p->dirfd, p->tmp, 0);
    p->tmp[0] = 0;
    return 0;
}

static int dir_put_commit(struct store_put *p, struct burry_err *e)
{
    const char *what = "write";
    int err = 0;
    if (fsync(p->fd) != 0)
        err = errno;
    if (close(p->fd) != 0 && !err)
        err = errno;
    p->fd = -1;
    if (!err) {
        what = "publish";
        err = publish(p);
        if (err == EEXIST) {
            burry_errf(e, BURRY_EEXIST, "'%s' exists already in directory '%s'", p->key, p->s->root);
            dir_put_abort(p);
            return BURRY_EEXIST;
        }
    }
    if (!err && fsync(p->dirfd) != 0) {
        /* The name may not survive a crash: take it back rather than report a
         * snapshot that might vanish. */
        err = errno;
        what = "sync";
        (void)unlinkat(p->dirfd, p->base, 0);
    }
    if (err) {
        burry_errf(e, BURRY_EFAIL, "cannot %s '%s' in directory '%s': %s", what, p->key, p->s->root,
                   strerror(err));
        dir_put_abort(p);
        return BURRY_EFAIL;
    }
    put_free(p);
    return 0;
}

static int dir_get_open(struct store *s, const char *key, struct store_get **out,
                        struct burry_err *e)
{
    struct stat st;
    int r;
    *out = NULL;
    if ((r = check_key(s, key, e)) != 0)
        return r;
    char *path = str_printf("%s%s%s", s->root, strcmp(s->root, "/") ? "/" : "", key);
    if (!path)
        return oom(e);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return burry_errf(e, BURRY_ENOENT, "no '%s' in directory '%s'", key, s->root);
        return burry_errf(e, BURRY_EFAIL, "cannot read '%s' in directory '%s': %s", key, s->root,
                          strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return burry_errf(e, BURRY_EFAIL, "cannot read '%s' in directory '%s': not a regular file",
                          key, s->root);
    }
    struct store_get *g = calloc(1, sizeof *g);
    if (!g || !(g->key = strdup(key))) {
        free(g);
        close(fd);
        return oom(e);
    }
    g->s = s;
    g->fd = fd;
    *out = g;
    return 0;
}

static ssize_t dir_get_read(struct store_get *g, void *buf, size_t len, struct burry_err *e)
{
    for (;;) {
        ssize_t n = read(g->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return burry_errf(e, BURRY_EFAIL, "cannot read '%s' in directory '%s': %s", g->key,
                              g->s->root, strerror(errno));
    }
}

static void dir_get_close(struct store_get *g)
{
    if (!g)
        return;
    close(g->fd);
    free(g->key);
    free(g);
}

struct walk {
    const char *prefix;
    size_t prefix_len;
    store_list_cb cb;
    void *ctx;
    struct burry_err *e;
    char path[PATH_MAX]; /* absolute path of the directory being read */
    char key[PATH_MAX];  /* its key relative to the root ("" at the root) */
};

/* Lists the directory w->path (whose key is w->key, depth segments deep). */
static int walk_dir(struct walk *w, int depth)
{
    DIR *d = opendir(w->path);
    int r = 0;
    if (!d) {
        if (errno == ENOENT || (errno == ENOTDIR && depth > 0))
            return 0; /* not there (yet, or any more) */
        return burry_errf(w->e, BURRY_EFAIL, "cannot list directory '%s': %s", w->path,
                          strerror(errno));
    }
    size_t plen = strlen(w->path), klen = strlen(w->key);
    struct dirent *de;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                r = burry_errf(w->e, BURRY_EFAIL, "cannot list directory '%s': %s", w->path,
                               strerror(errno));
            break;
        }
        if (de->d_name[0] == '.')
            continue;
        size_t nlen = strlen(de->d_name);
        if (plen + 1 + nlen >= sizeof w->path || klen + 1 + nlen >= sizeof w->key)
            continue;
        /* Prune subtrees the prefix rules out before reading them. */
        size_t cmp = klen + (klen ? 1 : 0) + nlen;
        snprintf(w->key + klen, sizeof w->key - klen, "%s%s", klen ? "/" : "", de->d_name);
        if (strncmp(w->key, w->prefix, cmp < w->prefix_len ? cmp : w->prefix_len) != 0) {
            w->key[klen] = 0;
            continue;
        }
        snprintf(w->path + plen, sizeof w->path - plen, "/%s", de->d_name);
        struct stat st;
        if (stat(w->path, &st) == 0) {
            if (S_ISREG(st.st_mode) && cmp >= w->prefix_len)
                r = w->cb(w->ctx, w->key, (uint64_t)st.st_size);
            else if (S_ISDIR(st.st_mode) && depth + 1 < DIR_MAX_DEPTH)
                r = walk_dir(w, depth + 1);
        }
        w->path[plen] = 0;
        w->key[klen] = 0;
        if (r)
            break;
    }
    closedir(d);
    return r;
}

static int dir_list(struct store *s, const char *prefix, store_list_cb cb, void *ctx,
                    struct burry_err *e)
{
    if (!prefix)
        prefix = "";
    struct walk *w = calloc(1, sizeof *w);
    if (!w)
        return oom(e);
    w->prefix = prefix;
    w->prefix_len = strlen(prefix);
    w->cb = cb;
    w->ctx = ctx;
    w->e = e;
    int r = 0;
    /* Start in the deepest directory the prefix names, if it is a sane one. */
    const char *slash = strrchr(prefix, '/');
    int depth = 0;
    if (slash && slash > prefix) {
        depth = rel_segments(prefix, (size_t)(slash - prefix));
        if (depth < 0) {
            r = burry_errf(e, BURRY_EUSAGE, "invalid key prefix '%s' for directory '%s'", prefix,
                           s->root);
            goto out;
        }
        if (depth >= DIR_MAX_DEPTH)
            goto out; /* deeper than any key */
        snprintf(w->key, sizeof w->key, "%.*s", (int)(slash - prefix), prefix);
    } else if (slash) {
        goto out; /* a leading '/' matches no key */
    }
    if (snprintf(w->path, sizeof w->path, "%s%s%s", s->root, w->key[0] && strcmp(s->root, "/") ? "/" : "",
                 w->key) >= (int)sizeof w->path)
        goto out;
    r = walk_dir(w, depth);
out:
    free(w);
    return r;
}

static int dir_remove(struct store *s, const char *key, struct burry_err *e)
{
    int r;
    if ((r = check_key(s, key, e)) != 0)
        return r;
    char *path = str_printf("%s%s%s", s->root, strcmp(s->root, "/") ? "/" : "", key);
    if (!path)
        return oom(e);
    if (unlink(path) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            r = burry_errf(e, BURRY_ENOENT, "no '%s' in directory '%s'", key, s->root);
        else
            r = burry_errf(e, BURRY_EFAIL, "cannot remove '%s' from directory '%s': %s", key, s->root,
                           strerror(errno));
        goto out;
    }
    /* Drop directories the removal left empty, up to (not including) the
     * root; the first one still in use (ENOTEMPTY) ends it. */
    size_t rootlen = strlen(s->root);
    for (char *c = strrchr(path, '/'); c && (size_t)(c - path) > rootlen; c = strrchr(path, '/')) {
        *c = 0;
        if (rmdir(path) != 0)
            break;
    }
out:
    free(path);
    return r;
}

const struct store_ops store_dir = {
    .scheme = "file",
    .check_url = dir_check_url,
    .open = dir_open,
    .close = dir_close,
    .describe = dir_describe,
    .check_put = dir_check_put,
    .put_open = dir_put_open,
    .put_write = dir_put_write,
    .put_commit = dir_put_commit,
    .put_abort = dir_put_abort,
    .get_open = dir_get_open,
    .get_read = dir_get_read,
    .get_close = dir_get_close,
    .list = dir_list,
    .remove = dir_remove,
};
