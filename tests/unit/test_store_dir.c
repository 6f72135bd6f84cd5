/* Unit tests of the directory store (src/stores/dir.c) in a fresh temporary
 * directory: round trip, modes, no-overwrite, listing, removal, cleanup of a
 * killed writer's temporary file, key checks and unwritable stores. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "opts.h"
#include "registry.h" /* declares store_dir */
#include "store.h"
#include "t.h"

static char tmp[256];
static struct burry_opts opts;

static char *path_in(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", tmp, rel);
    return buf;
}

/* Number of names starting with ".burry-tmp." in a directory. */
static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, ".burry-tmp.", 11))
            n++;
    closedir(d);
    return n;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
}

/* put KEY with LEN bytes of pattern SEED; returns the commit's result. */
static int put(struct store *s, const char *key, size_t len, unsigned seed)
{
    struct burry_err e = {0};
    struct store_put *p;
    unsigned char *data = malloc(len ? len : 1);
    int r;
    fill(data, len, seed);
    if ((r = store_dir.put_open(s, key, &p, &e)) != 0)
        goto out;
    /* Uneven chunks, to exercise the write path. */
    for (size_t off = 0, step = 1; off < len; off += step, step = step * 3 + 7) {
        if (step > len - off)
            step = len - off;
        if ((r = store_dir.put_write(p, data + off, step, &e)) != 0) {
            store_dir.put_abort(p);
            goto out;
        }
    }
    r = store_dir.put_commit(p, &e);
out:
    free(data);
    return r;
}

/* Reads KEY whole into *out (caller frees); returns its length or -1. */
static long get_all(struct store *s, const char *key, unsigned char **out)
{
    struct burry_err e = {0};
    struct store_get *g;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf;
    *out = NULL;
    if (store_dir.get_open(s, key, &g, &e) != 0)
        return -1;
    buf = malloc(cap);
    for (;;) {
        if (len == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = store_dir.get_read(g, buf + len, cap - len > 7000 ? 7000 : cap - len, &e);
        if (n < 0) {
            free(buf);
            store_dir.get_close(g);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    store_dir.get_close(g);
    *out = buf;
    return (long)len;
}

struct listed {
    int n;
    uint64_t total;
    int saw_hidden;
    int stop_after;
};

static int list_cb(void *ctx, const char *key, uint64_t size)
{
    struct listed *l = ctx;
    l->n++;
    l->total += size;
    if (strchr(key, '.') == key || strstr(key, "/."))
        l->saw_hidden = 1;
    if (l->stop_after && l->n == l->stop_after)
        return 42;
    return 0;
}

static struct listed list(struct store *s, const char *prefix, int *rc)
{
    struct burry_err e = {0};
    struct listed l = {0};
    *rc = store_dir.list(s, prefix, list_cb, &l, &e);
    return l;
}

static void test_open(void)
{
    struct burry_err e = {0};
    struct store *s = NULL;
    char p[512], want[600];

    T_CHECK(store_dir.open(&s, "file://relative/dir", &opts, &e) == BURRY_EUSAGE && !s,
            "file://relative is a usage error");
    T_CHECK(strstr(e.msg, "malformed store URL 'file://relative/dir'") != NULL,
            "the message names the malformed URL");

    burry_err_clear(&e);
    snprintf(p, sizeof p, "file://%s/st", tmp);
    T_CHECK(store_dir.open(&s, p, &opts, &e) == 0 && s, "file:///abs/path opens");
    snprintf(want, sizeof want, "directory '%s/st'", tmp);
    T_CHECK(s && !strcmp(store_dir.describe(s), want), "describe names the absolute path");
    store_dir.close(s);

    burry_err_clear(&e);
    char cwd[512];
    T_CHECK(getcwd(cwd, sizeof cwd) && chdir(tmp) == 0, "chdir into the temporary directory");
    T_CHECK(store_dir.open(&s, "./rel//st/", &opts, &e) == 0, "a relative path opens");
    snprintf(want, sizeof want, "directory '%s/rel/st'", tmp);
    T_CHECK(s && !strcmp(store_dir.describe(s), want), "a relative path is made absolute and tidy");
    store_dir.close(s);
    T_CHECK(chdir(cwd) == 0, "chdir back");
    store_dir.close(NULL);
}

static void test_missing_store(void)
{
    struct burry_err e = {0};
    struct store *s = NULL;
    char p[512];
    struct stat st;
    int rc;

    T_CHECK(store_dir.open(&s, path_in(p, sizeof p, "nothing/here"), &opts, &e) == 0,
            "a store that does not exist opens");
    T_CHECK(stat(p, &st) != 0 && errno == ENOENT, "opening creates nothing");
    struct listed l = list(s, "", &rc);
    T_CHECK(rc == 0 && l.n == 0, "a store that does not exist lists nothing");
    struct store_get *g = NULL;
    T_CHECK(store_dir.get_open(s, "a/b.tar.zst", &g, &e) == BURRY_ENOENT && !g,
            "get from a missing store is ENOENT");
    store_dir.close(s);
}

static void test_round_trip(struct store *s, const char *root)
{
    enum { MB = 1 << 20 };
    char p[600];
    struct stat st;
    unsigned char *want = malloc(MB), *got = NULL;

    T_CHECK(put(s, "zk-a/1.tar.zst", MB, 1) == 0, "put and commit 1 MB");
    fill(want, MB, 1);
    long n = get_all(s, "zk-a/1.tar.zst", &got);
    T_CHECK(n == MB && got && !memcmp(got, want, MB), "get returns the same 1 MB");
    free(got);
    free(want);

    snprintf(p, sizeof p, "%s/zk-a/1.tar.zst", root);
    T_CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600, "the committed file has mode 0600");
    snprintf(p, sizeof p, "%s/zk-a", root);
    T_CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0700, "a created directory has mode 0700");
    T_CHECK(count_tmp(p) == 0, "no temporary file is left after commit");

    T_CHECK(put(s, "zk-a/empty", 0, 0) == 0, "an empty object can be stored");
    n = get_all(s, "zk-a/empty", &got);
    T_CHECK(n == 0, "and read back empty");
    free(got);
}

static void test_no_overwrite(struct store *s, const char *root)
{
    struct burry_err e = {0};
    struct store_put *p = NULL;
    char path[600];
    unsigned char *got = NULL;

    T_CHECK(store_dir.put_open(s, "zk-a/1.tar.zst", &p, &e) == BURRY_EEXIST && !p,
            "put_open refuses an existing key");
    T_CHECK(strstr(e.msg, "'zk-a/1.tar.zst' exists already in directory '") != NULL,
            "the message says the key exists");
    T_CHECK(get_all(s, "zk-a/1.tar.zst", &got) == 1 << 20, "the existing key is untouched");
    free(got);

    /* Two writers race for one key: the second commit must not replace. */
    struct store_put *a = NULL, *b = NULL;
    burry_err_clear(&e);
    T_CHECK(store_dir.put_open(s, "zk-a/race", &a, &e) == 0 && store_dir.put_open(s, "zk-a/race", &b, &e) == 0,
            "two writers may open the same new key");
    T_CHECK(store_dir.put_write(a, "first", 5, &e) == 0 && store_dir.put_write(b, "second", 6, &e) == 0,
            "both write");
    T_CHECK(store_dir.put_commit(a, &e) == 0, "the first commit wins");
    T_CHECK(store_dir.put_commit(b, &e) == BURRY_EEXIST && strstr(e.msg, "exists already"),
            "the second commit fails instead of replacing");
    T_CHECK(get_all(s, "zk-a/race", &got) == 5 && !memcmp(got, "first", 5), "the first content stays");
    free(got);
    snprintf(path, sizeof path, "%s/zk-a", root);
    T_CHECK(count_tmp(path) == 0, "the losing writer left no temporary file");
}

static void test_abort(struct store *s, const char *root)
{
    struct burry_err e = {0};
    struct store_put *p = NULL;
    struct store_get *g = NULL;
    char path[600];

    T_CHECK(store_dir.put_open(s, "zk-b/aborted", &p, &e) == 0, "put_open a new key");
    snprintf(path, sizeof path, "%s/zk-b", root);
    T_CHECK(count_tmp(path) == 1, "a temporary file exists while writing");
    T_CHECK(store_dir.put_write(p, "partial", 7, &e) == 0, "write part of it");
    store_dir.put_abort(p);
    T_CHECK(count_tmp(path) == 0, "abort leaves no temporary file");
    T_CHECK(store_dir.get_open(s, "zk-b/aborted", &g, &e) == BURRY_ENOENT && !g,
            "an aborted key does not exist");
    T_CHECK(strstr(e.msg, "no 'zk-b/aborted' in directory '") != NULL, "ENOENT names the key");
    store_dir.put_abort(NULL);
    T_CHECK(1, "put_abort(NULL) is a no-op");
    store_dir.get_close(NULL);
}

static void test_list_remove(struct store *s, const char *root)
{
    struct burry_err e = {0};
    char path[600];
    int rc;
    struct stat st;

    T_CHECK(put(s, "zk-b/1.tar.zst", 100, 2) == 0 && put(s, "zk-b/2.tar.zst", 200, 3) == 0 &&
                put(s, "one/two/three/four", 10, 4) == 0,
            "put more keys");
    /* Things list must not report: hidden files, deeper than 4 levels. */
    snprintf(path, sizeof path, "%s/zk-b/.hidden", root);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0 && close(fd) == 0, "create a hidden file");
    snprintf(path, sizeof path, "%s/one/two/three/five", root);
    T_CHECK(mkdir(path, 0700) == 0, "create a directory 4 levels deep");
    snprintf(path, sizeof path, "%s/one/two/three/five/six", root);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0 && close(fd) == 0, "create a file 5 levels deep");

    struct listed l = list(s, "", &rc);
    /* zk-a/1.tar.zst (1 MB), zk-a/empty, zk-a/race (5), zk-b/1 (100), zk-b/2 (200), one/.../four (10) */
    T_CHECK(rc == 0 && l.n == 6, "list reports every key");
    T_CHECK(l.total == (1u << 20) + 5 + 100 + 200 + 10, "list reports the sizes");
    T_CHECK(!l.saw_hidden, "list skips hidden names");

    l = list(s, "zk-b/", &rc);
    T_CHECK(rc == 0 && l.n == 2 && l.total == 300, "list with a directory prefix");
    l = list(s, "zk-", &rc);
    T_CHECK(rc == 0 && l.n == 5, "list with a name prefix");
    l = list(s, "zk-b/2", &rc);
    T_CHECK(rc == 0 && l.n == 1 && l.total == 200, "list with a key prefix");
    l = list(s, "nope/", &rc);
    T_CHECK(rc == 0 && l.n == 0, "list of an absent prefix is empty");
    l = list(s, "../", &rc);
    T_CHECK(rc == BURRY_EUSAGE, "list refuses a prefix leaving the store");

    struct listed stop = {.stop_after = 2};
    burry_err_clear(&e);
    rc = store_dir.list(s, "", list_cb, &stop, &e);
    T_CHECK(rc == 42 && stop.n == 2, "a non-zero callback return stops the listing and is returned");

    burry_err_clear(&e);
    T_CHECK(store_dir.remove(s, "zk-b/1.tar.zst", &e) == 0, "remove a key");
    snprintf(path, sizeof path, "%s/zk-b", root);
    T_CHECK(stat(path, &st) == 0, "its directory stays while it holds other keys");
    T_CHECK(store_dir.remove(s, "zk-b/2.tar.zst", &e) == 0, "remove the other key");
    T_CHECK(stat(path, &st) == 0, "a directory holding a hidden file stays");
    snprintf(path, sizeof path, "%s/zk-b/.hidden", root);
    unlink(path);

    T_CHECK(store_dir.remove(s, "one/two/three/four", &e) == 0, "remove a nested key");
    snprintf(path, sizeof path, "%s/one/two/three", root);
    T_CHECK(stat(path, &st) == 0, "a parent with other entries stays");
    snprintf(path, sizeof path, "%s/one/two/three/five/six", root);
    unlink(path);
    snprintf(path, sizeof path, "%s/one/two/three/five", root);
    rmdir(path);
    T_CHECK(put(s, "one/two/three/four", 1, 5) == 0 && store_dir.remove(s, "one/two/three/four", &e) == 0,
            "put and remove a nested key again");
    snprintf(path, sizeof path, "%s/one", root);
    T_CHECK(stat(path, &st) != 0 && errno == ENOENT, "empty parents are removed up to the root");
    T_CHECK(stat(root, &st) == 0, "the root stays");

    T_CHECK(store_dir.remove(s, "zk-b/1.tar.zst", &e) == BURRY_ENOENT, "removing a missing key is ENOENT");
    l = list(s, "", &rc);
    T_CHECK(rc == 0 && l.n == 3, "list after removal");
}

static void test_stale_tmp(struct store *s, const char *root)
{
    struct burry_err e = {0};
    char dir[600], path[700];
    struct store_put *p = NULL;

    /* A writer killed with -9 in the middle of a put. */
    pid_t child = fork();
    if (child == 0) {
        struct burry_err ce = {0};
        struct store_put *cp;
        if (store_dir.put_open(s, "zk-c/killed", &cp, &ce) == 0)
            store_dir.put_write(cp, "half", 4, &ce);
        raise(SIGKILL);
        _exit(3);
    }
    int status = 0;
    T_CHECK(child > 0 && waitpid(child, &status, 0) == child && WIFSIGNALED(status),
            "a writer was killed during a put");
    snprintf(dir, sizeof dir, "%s/zk-c", root);
    T_CHECK(count_tmp(dir) == 1, "the killed writer left its temporary file");

    /* Temporary files of live writers must survive: this process, and pid 1. */
    snprintf(path, sizeof path, "%s/.burry-tmp.%ld.live", dir, (long)getpid());
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0 && close(fd) == 0, "a temporary file of this live process");
    snprintf(path, sizeof path, "%s/.burry-tmp.1.init", dir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0 && close(fd) == 0, "a temporary file of pid 1");

    T_CHECK(store_dir.put_open(s, "zk-c/next", &p, &e) == 0, "the next put opens");
    T_CHECK(count_tmp(dir) == 3, "it removed the dead writer's file only");
    store_dir.put_abort(p);
    T_CHECK(count_tmp(dir) == 2, "abort removed its own file only");
    unlink(path);
    snprintf(path, sizeof path, "%s/.burry-tmp.%ld.live", dir, (long)getpid());
    unlink(path);
    T_CHECK(store_dir.put_open(s, "zk-c/killed", &p, &e) == 0, "the killed writer's key is free");
    store_dir.put_abort(p);
}

static void test_bad_keys(struct store *s)
{
    static const char *const bad[] = {
        "", "/abs", "a//b", "a/./b", "a/../b", "..", ".", ".hidden", "a/.x", "a/", "../escape",
        "a/b/c/d/e",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct burry_err e = {0};
        struct store_put *p = NULL;
        struct store_get *g = NULL;
        char name[128];
        int r1 = store_dir.put_open(s, bad[i], &p, &e);
        burry_err_clear(&e);
        int r2 = store_dir.get_open(s, bad[i], &g, &e);
        burry_err_clear(&e);
        int r3 = store_dir.remove(s, bad[i], &e);
        snprintf(name, sizeof name, "key '%s' is rejected", bad[i]);
        T_CHECK(r1 == BURRY_EUSAGE && r2 == BURRY_EUSAGE && r3 == BURRY_EUSAGE && !p && !g, name);
    }
    struct burry_err e = {0};
    struct store_get *g = NULL;
    T_CHECK(store_dir.get_open(s, "zk-a/nope.tar.zst", &g, &e) == BURRY_ENOENT && !g,
            "get of a missing key is ENOENT");
    burry_err_clear(&e);
    T_CHECK(store_dir.get_open(s, "zk-a/1.tar.zst/x", &g, &e) == BURRY_ENOENT && !g,
            "get below a file is ENOENT");
    burry_err_clear(&e);
    T_CHECK(store_dir.get_open(s, "zk-a", &g, &e) == BURRY_EFAIL && !g, "get of a directory fails");
}

static void test_unwritable(void)
{
    struct burry_err e = {0};
    struct store *s = NULL;
    struct store_put *p = NULL;
    char file[512], path[600];

    /* Root ignores permission bits, so make the store's path impossible
     * instead: a directory below a regular file. */
    path_in(file, sizeof file, "FILE");
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0 && close(fd) == 0, "create a regular file");

    snprintf(path, sizeof path, "%s/sub", file);
    T_CHECK(store_dir.open(&s, path, &opts, &e) == 0, "a store below a file opens (it does not exist)");
    int rc;
    struct listed l = list(s, "", &rc);
    T_CHECK(rc == BURRY_EFAIL && l.n == 0, "listing it fails (a path component is a file)");
    T_CHECK(store_dir.put_open(s, "x/1.tar.zst", &p, &e) == BURRY_EFAIL && !p, "put_open fails cleanly");
    char want[2048];
    snprintf(want, sizeof want, "cannot write to store '%s': cannot create directory '%s': Not a directory",
             path, path);
    T_CHECK(!strcmp(e.msg, want), "the message names the store, the directory and the reason");
    store_dir.close(s);

    burry_err_clear(&e);
    s = NULL;
    T_CHECK(store_dir.open(&s, file, &opts, &e) == BURRY_EUSAGE && !s, "a store path that is a file is refused");
    T_CHECK(strstr(e.msg, "is not a directory") != NULL, "saying it is not a directory");
    unlink(file);
}

/* check_put: whether a job's keys can be written, creating nothing. */
static void test_check_put(void)
{
    struct burry_err e = {0};
    struct store *s = NULL;
    char root[600], path[600], want[2048];

    path_in(root, sizeof root, "cp/new/store");
    T_CHECK(store_dir.open(&s, root, &opts, &e) == 0, "check_put: open a store that does not exist yet");
    T_CHECK(store_dir.check_put(s, "job", &e) == 0, "check_put passes where the store can be created");
    T_CHECK(count_tmp(tmp) == 0, "check_put leaves no temporary file (it tried the deepest directory there is)");
    path_in(path, sizeof path, "cp");
    T_CHECK(access(path, F_OK) != 0, "check_put creates no directory");
    T_CHECK(put(s, "job/1.tar.zst", 10, 1) == 0, "check_put: a snapshot is written");
    T_CHECK(store_dir.check_put(s, "job", &e) == 0, "check_put passes in the job's directory");
    snprintf(path, sizeof path, "%.500s/job", root);
    T_CHECK(count_tmp(path) == 0, "and leaves no temporary file there");
    T_CHECK(store_dir.check_put(s, "../x", &e) == BURRY_EUSAGE, "check_put refuses a name that is no key");
    burry_err_clear(&e);

    snprintf(path, sizeof path, "%.500s/filejob", root);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0 && close(fd) == 0, "check_put: a regular file where a job's directory goes");
    T_CHECK(store_dir.check_put(s, "filejob", &e) == BURRY_EFAIL, "check_put fails there");
    snprintf(want, sizeof want, "cannot write to directory '%s': Not a directory", path);
    T_CHECK(!strcmp(e.msg, want), "naming the directory and the reason");
    store_dir.close(s);

    /* a store below a regular file */
    burry_err_clear(&e);
    s = NULL;
    snprintf(root, sizeof root, "%.500s/sub", path);
    T_CHECK(store_dir.open(&s, root, &opts, &e) == 0, "check_put: a store below a file opens");
    T_CHECK(store_dir.check_put(s, "job", &e) == BURRY_EFAIL, "check_put fails for it");
    snprintf(want, sizeof want, "cannot write to directory '%s/job': Not a directory", root);
    T_CHECK(!strcmp(e.msg, want), "naming the directory and the reason");
    if (strcmp(e.msg, want))
        printf("# got: %s\n", e.msg);
    store_dir.close(s);
    unlink(path);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", path);
}

int main(void)
{
    struct burry_err e = {0};
    struct store *s = NULL;
    char root[512];

    setvbuf(stdout, NULL, _IOLBF, 0);
    burry_opts_init(&opts);
    snprintf(tmp, sizeof tmp, "%s/burry-unit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        printf("not ok - mkdtemp %s\n", tmp);
        return 1;
    }

    int fds = count_fds();
    test_open();
    test_missing_store();

    path_in(root, sizeof root, "store");
    T_CHECK(store_dir.open(&s, root, &opts, &e) == 0, "open the test store");
    if (s) {
        test_round_trip(s, root);
        test_no_overwrite(s, root);
        test_abort(s, root);
        test_list_remove(s, root);
        test_stale_tmp(s, root);
        test_bad_keys(s);
        store_dir.close(s);
    }
    test_unwritable();
    test_check_put();
    T_CHECK(count_fds() == fds, "no file descriptor leaked");

    rm_rf(tmp);
    T_DONE();
}
