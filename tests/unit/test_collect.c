/* Unit tests of bysu's central side without ssh or a repository: loading
 * bysu.conf (valid files and every kind of mistake, each reported with the
 * file and the line) and the checks a node's stream must pass against its
 * MANIFEST.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "agent.h"
#include "collect.h"
#include "t.h"

static char dir[] = "/tmp/bysu-unit.XXXXXX";
static char path[512];

static void write_conf(const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Loads text as bysu.conf; on failure copies the message into msg. */
static int load(const char *text, struct bysu_conf **c, char *msg, size_t len)
{
    struct burry_err e = {0};
    write_conf(text);
    *c = NULL;
    int rc = bysu_conf_load(path, c, &e);
    snprintf(msg, len, "%s", rc < 0 ? e.msg : "");
    return rc;
}

/* A configuration that must fail with a message naming the file, the line
 * "line N" (N > 0 unless want_line is 0) and the given words. */
static void bad(const char *name, const char *text, int want_line, const char *words)
{
    struct bysu_conf *c;
    char msg[1100], line[32], what[600];
    int rc = load(text, &c, msg, sizeof msg);
    snprintf(line, sizeof line, "line %d:", want_line);
    snprintf(what, sizeof what, "%s is refused", name);
    T_CHECK(rc == BURRY_EUSAGE && c == NULL, what);
    snprintf(what, sizeof what, "%s: the message names the file", name);
    T_CHECK(strstr(msg, path) != NULL, what);
    if (want_line) {
        snprintf(what, sizeof what, "%s: the message names line %d", name, want_line);
        T_CHECK(strstr(msg, line) != NULL, what);
    }
    snprintf(what, sizeof what, "%s: the message says '%s'", name, words);
    T_CHECK(strstr(msg, words) != NULL, what);
    if (!strstr(msg, words) || (want_line && !strstr(msg, line)))
        printf("# got: %s\n", msg);
    bysu_conf_free(c);
}

#define REPO "[repository]\nurl = /var/backups/bysu\n"
#define NODE "[node db1]\nhost = db1.example\n"

static void test_conf(void)
{
    struct bysu_conf *c;
    char msg[1100];
    int rc = load(REPO "keep = 5\n"
                       "\n"
                       "[node db1]\nhost = 10.0.0.1\nport = 2222\nuser = backup\nidentity = /k\nknown_hosts = /kh\n"
                       "[node db2]\nhost = db2\n"
                       "; a comment\n"
                       "[job pg]\nnode = db1\nsnapshot = postgres\ntimeout = 60\nkeep = 2\ncompress = none\n"
                       "[job etc]\nnode = db2\nsnapshot = etc\n"
                       "[job zk]\nsource = zk://10.0.0.5:2181\n",
                  &c, msg, sizeof msg);
    T_CHECK(rc == 0 && c, "a full configuration loads");
    if (rc == 0) {
        T_CHECK(!strcmp(c->repo_url, "/var/backups/bysu") && c->keep == 5, "[repository] url and keep");
        T_CHECK(c->nnodes == 2 && c->nodes[0].port == 2222 && c->nodes[1].port == 22, "node ports, 22 by default");
        T_CHECK(!strcmp(c->nodes[0].user, "backup") && !c->nodes[1].user, "node user is optional");
        T_CHECK(c->njobs == 3, "three jobs");
        T_CHECK(c->jobs[0].keep == 2 && c->jobs[0].timeout == 60, "a job's own keep and timeout");
        T_CHECK(c->jobs[1].keep == 5 && c->jobs[1].timeout == 3600, "a job inherits keep; timeout defaults to 3600");
        T_CHECK(c->jobs[0].compress == BYSU_COMPRESS_NONE && c->jobs[1].compress == BYSU_COMPRESS_ZSTD,
                "compress per job, zstd by default");
        T_CHECK(c->jobs[2].source && !c->jobs[2].node, "an infrastructure job has a source and no node");
        struct burry_err e = {0};
        T_CHECK(bysu_conf_job(c, "etc", &e) == &c->jobs[1], "a job is found by name");
        T_CHECK(!bysu_conf_job(c, "nope", &e) && strstr(e.msg, "no job 'nope'"), "an unknown job name is an error");
    } else {
        printf("# got: %s\n", msg);
    }
    bysu_conf_free(c);

    rc = load(REPO "compress = none\n" NODE "[job a]\nnode = db1\nsnapshot = a\n", &c, msg, sizeof msg);
    T_CHECK(rc == 0 && c && c->keep == 7 && c->jobs[0].compress == BYSU_COMPRESS_NONE,
            "keep defaults to 7; [repository] compress is every job's default");
    bysu_conf_free(c);

    bad("an unknown section", REPO "[jobs x]\nnode = db1\n", 3, "unknown section '[jobs x]'");
    bad("an unknown key", REPO NODE "[job a]\nnode = db1\nsnapshot = a\nretain = 3\n", 8, "unknown key 'retain' in [job a]");
    bad("a key outside any section", "url = /x\n" REPO, 1, "outside any section");
    bad("a line without '='", REPO "keep\n", 3, "syntax error");
    bad("keep = 0", REPO "keep = 0\n", 3, "'keep' wants a whole number from 1");
    bad("keep = -1", REPO NODE "[job a]\nnode = db1\nsnapshot = a\nkeep = -1\n", 8, "'keep' wants a whole number");
    bad("keep = 3d", REPO "keep = 3d\n", 3, "(got '3d')");
    bad("a timeout of 10s", REPO NODE "[job a]\nnode = db1\nsnapshot = a\ntimeout = 10s\n", 8, "'timeout' wants");
    bad("port 70000", REPO "[node n]\nhost = h\nport = 70000\n", 5, "from 1 to 65535");
    bad("compress = gzip", REPO "compress = gzip\n", 3, "'compress' wants zstd or none");
    bad("a job with both node and source", REPO NODE "[job a]\nnode = db1\nsnapshot = a\nsource = zk://h:1\n", 5,
        "[job a] wants either node and snapshot or source, not both");
    bad("a job with neither node nor source", REPO NODE "[job a]\nkeep = 3\n", 5, "wants either node");
    bad("a job naming a missing node", REPO NODE "[job a]\nnode = db9\nsnapshot = a\n", 5,
        "names a node that has no [node] section");
    bad("a node job without a snapshot", REPO NODE "[job a]\nnode = db1\n", 5, "has no snapshot");
    bad("a source job with a snapshot", REPO "[job z]\nsource = zk://h:1\nsnapshot = a\n", 3, "has a source, so no snapshot");
    bad("a node without a host", REPO "\n[node n]\nport = 22\n", 4, "[node n] has no host");
    bad("a job given twice", REPO NODE "[job a]\nnode = db1\nsnapshot = a\n[job a]\nkeep = 2\n", 8,
        "section [job a] is given twice (first at line 5)");
    bad("a node given twice", REPO NODE NODE, 5, "section [node db1] is given twice (first at line 3)");
    bad("a key given twice", REPO NODE "[job a]\nnode = db1\nsnapshot = a\nkeep = 2\nkeep = 3\n", 9,
        "'keep' is given twice in [job a]");
    bad("a continuation line", REPO "keep = 2\n  3\n", 4, "'keep' is given twice in [repository]");
    bad("an unsafe job name", REPO NODE "[job ../x]\nnode = db1\nsnapshot = a\n", 5, "job name");
    bad("no [repository]", NODE "[job a]\nnode = db1\nsnapshot = a\n", 0, "no [repository] section");
    bad("[repository] without url", "[repository]\nkeep = 2\n", 1, "[repository] has no url");
    /* the repository URL is checked when the file is read, not when a job runs */
    bad("an unknown store scheme", "[repository]\nkeep = 2\nurl = s4://x\n", 3, "'url': unknown store 's4' in 's4://x'");
    bad("azure:// without account or container", "[repository]\nurl = azure://\n", 2,
        "'url': 'azure://': expected azure://ACCOUNT/CONTAINER");
    bad("an S3 bucket name that cannot be", "[repository]\nurl = s3://Bad_Bucket/p\n", 2,
        "'url': 's3://Bad_Bucket/p': expected s3://BUCKET");
    bad("gs:// without a bucket", "[repository]\nurl = gs://\n", 2, "'url': 'gs://': expected gs://BUCKET");
    bad("a relative file:// URL", "[repository]\nurl = file://backups\n", 2, "'url': malformed store URL 'file://backups'");
    bad("an empty url", "[repository]\nurl =\n", 2, "'url': empty store path");
    bad("a relative path", "[repository]\nurl = backups/bysu\n", 2,
        "'url' wants an absolute path or a store URL, not the relative path 'backups/bysu'");
    bad("a scheme in capitals (a relative path)", "[repository]\nurl = S3://bucket\n", 2,
        "not the relative path 'S3://bucket'");
    bad("a url given twice", REPO "url = /other\n", 3, "'url' is given twice in [repository]");
    {
        /* well formed: nothing is opened, read or contacted, no credentials needed */
        static const char *const good[] = {"/var/backups/bysu", "file:///var/backups/bysu", "s3://bucket/prefix",
                                           "gs://bucket", "azure://account/container/prefix"};
        for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
            char text[200], what[300];
            snprintf(text, sizeof text, "[repository]\nurl = %s\n", good[i]);
            snprintf(what, sizeof what, "url = %s loads (without credentials or a server)", good[i]);
            rc = load(text, &c, msg, sizeof msg);
            T_CHECK(rc == 0 && c && !strcmp(c->repo_url, good[i]), what);
            if (rc)
                printf("# got: %s\n", msg);
            bysu_conf_free(c);
        }
    }
    bad("a bad recipient", REPO NODE "[job a]\nnode = db1\nsnapshot = a\nrecipients = age1nope\n", 5, "[job a]");
    bad("the first of several mistakes", REPO "keep = x\nbogus = 1\n", 3, "'keep' wants");
    {
        /* libinih would read it as two lines and name line 4, which is not there */
        char longline[400];
        snprintf(longline, sizeof longline, REPO "[job a]\nsource = zk://h:1/%0220d\n", 0);
        bad("a line over 199 characters", longline, 4, "line 4: 238 characters long; a line may hold at most 199");
    }
    /* libinih never shows a section without keys to the handler */
    bad("an empty job", REPO NODE "[job a]\nnode = db1\nsnapshot = a\n[job b]\n", 8,
        "[job b] is empty (it wants node and snapshot, or source)");
    bad("an empty job before others", REPO NODE "[job b]\n\n[job a]\nnode = db1\nsnapshot = a\n", 5,
        "[job b] is empty");
    bad("an empty node", REPO "[node n]\n" "[job a]\nsource = zk://h:1\n", 3, "[node n] is empty (it wants a host)");
    bad("an empty [repository]", "[repository]\n" NODE, 1, "[repository] is empty (it wants a url)");
    bad("an empty unknown section", REPO "[jobs x]\n", 3, "[jobs x] is empty (and not a section bysu knows");

    struct burry_err e = {0};
    snprintf(msg, sizeof msg, "%s/none.conf", dir);
    T_CHECK(bysu_conf_load(msg, &c, &e) == BURRY_EUSAGE && strstr(e.msg, "cannot read") && strstr(e.msg, msg),
            "a missing file is named");
}

/* ---- streams ---- */

struct ent {
    const char *path;
    const char *data;    /* NULL: a directory (or a link, below) */
    const char *symlink; /* a symlink to this */
    const char *hardlink; /* a hard link to this path */
};

static void sha_hex(const char *data, char hex[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_Digest(data, strlen(data), d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* A tar of the entries, then MANIFEST.json holding manifest (a JSON text). */
static size_t make_tar(const struct ent *ents, size_t n, const char *manifest, char *out, size_t cap)
{
    struct archive *a = archive_write_new();
    size_t used = 0;
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_none(a);
    archive_write_set_bytes_in_last_block(a, 1);
    archive_write_open_memory(a, out, cap, &used);
    for (size_t i = 0; i <= n; i++) {
        const char *p = i < n ? ents[i].path : "MANIFEST.json";
        const char *d = i < n ? ents[i].data : manifest;
        const char *sl = i < n ? ents[i].symlink : NULL, *hl = i < n ? ents[i].hardlink : NULL;
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, p);
        archive_entry_set_filetype(en, d || hl ? AE_IFREG : sl ? AE_IFLNK : AE_IFDIR);
        archive_entry_set_perm(en, d ? 0644 : 0755);
        archive_entry_set_size(en, d ? (la_int64_t)strlen(d) : 0);
        if (sl)
            archive_entry_set_symlink(en, sl);
        if (hl)
            archive_entry_set_hardlink(en, hl);
        archive_write_header(a, en);
        if (d)
            archive_write_data(a, d, strlen(d));
        archive_entry_free(en);
    }
    archive_write_close(a);
    archive_write_free(a);
    return used;
}

/* The manifest the agent would write for the entries (override: a path to
 * leave out, or extra text to append to the files array). */
static char *manifest_of(const struct ent *ents, size_t n, const char *skip, const char *extra)
{
    json_t *files = json_array();
    for (size_t i = 0; i < n; i++) {
        if (skip && !strcmp(ents[i].path, skip))
            continue;
        if (ents[i].symlink) {
            json_array_append_new(files, json_pack("{s:s,s:s,s:s}", "path", ents[i].path, "type", "symlink", "target",
                                                   ents[i].symlink));
            continue;
        }
        if (!ents[i].data) {
            json_array_append_new(files, json_pack("{s:s,s:s}", "path", ents[i].path, "type", "dir"));
            continue;
        }
        char hex[65];
        sha_hex(ents[i].data, hex);
        json_array_append_new(files, json_pack("{s:s,s:s,s:I,s:s}", "path", ents[i].path, "type", "file", "size",
                                               (json_int_t)strlen(ents[i].data), "sha256", hex));
    }
    if (extra)
        json_array_append_new(files, json_loads(extra, 0, NULL));
    json_t *m = json_pack("{s:s,s:i,s:s,s:s,s:o}", "format", "bysu-snapshot", "format_version", 1, "host", "n1",
                          "snapshot", "s", "files", files);
    char *t = json_dumps(m, JSON_SORT_KEYS);
    json_decref(m);
    return t;
}

static int check(const char *tar, size_t len, char *msg, size_t cap)
{
    struct burry_err e = {0};
    json_t *m = NULL;
    int rc = bysu_check_snapshot(tar, len, &m, &e);
    snprintf(msg, cap, "%s", rc < 0 ? e.msg : "");
    json_decref(m);
    return rc;
}

static void test_stream(void)
{
    static char tar[1 << 16];
    char msg[1100], *m;
    size_t len;
    const struct ent good[] = {
        {"files/etc/app", NULL, NULL, NULL},
        {"files/etc/app/a.conf", "alpha\n", NULL, NULL},
        {"files/etc/app/b.conf", "beta\n", NULL, NULL},
        {"output/pg.out", "-- dump\n", NULL, NULL},
    };
    m = manifest_of(good, 4, NULL, NULL);
    len = make_tar(good, 4, m, tar, sizeof tar);
    struct burry_err e = {0};
    json_t *got = NULL;
    T_CHECK(bysu_check_snapshot(tar, len, &got, &e) == 0, "a stream that matches its manifest passes");
    T_CHECK(json_array_size(json_object_get(got, "files")) == 4, "the parsed manifest is handed back");
    json_decref(got);
    free(m);

    /* a file whose bytes differ from the checksum the manifest lists */
    const struct ent changed[] = {
        {"files/etc/app", NULL, NULL, NULL},
        {"files/etc/app/a.conf", "ALPHA\n", NULL, NULL},
        {"files/etc/app/b.conf", "beta\n", NULL, NULL},
        {"output/pg.out", "-- dump\n", NULL, NULL},
    };
    m = manifest_of(good, 4, NULL, NULL);
    len = make_tar(changed, 4, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "checksum mismatch on 'files/etc/app/a.conf'"),
            "a wrong checksum is refused, naming the file");
    free(m);

    /* listed, but not in the stream */
    m = manifest_of(good, 4, NULL, NULL);
    len = make_tar(good, 3, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'output/pg.out' is in the manifest but not in the stream"),
            "a missing file is refused, naming it");
    free(m);

    /* in the stream, but not listed */
    m = manifest_of(good, 4, "files/etc/app/b.conf", NULL);
    len = make_tar(good, 4, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'files/etc/app/b.conf' is in the stream but not in the manifest"),
            "an extra file is refused, naming it");
    free(m);

    /* ".." in the stream, even when the manifest lists it faithfully */
    const struct ent dotdot[] = {{"files/../../etc/passwd", "root:x:0:0\n", NULL, NULL}};
    m = manifest_of(dotdot, 1, NULL, NULL);
    len = make_tar(dotdot, 1, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'..'") && strstr(msg, "files/../../etc/passwd"),
            "a stream path with '..' is refused");
    free(m);

    const struct ent updir[] = {{"../x", "x\n", NULL, NULL}};
    m = manifest_of(updir, 1, NULL, NULL);
    len = make_tar(updir, 1, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'../x'"), "a stream path starting with '..' is refused");
    free(m);

    /* ".." only in the manifest (a symlink entry the stream need not hold as a file) */
    m = manifest_of(good, 4, NULL, "{\"path\": \"files/a/..\", \"type\": \"dir\"}");
    len = make_tar(good, 4, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "the manifest lists a path") && strstr(msg, "files/a/.."),
            "a manifest path with '..' is refused");
    free(m);

    /* names that merely contain two dots are fine */
    const struct ent dots[] = {{"files/srv/..hidden", "h\n", NULL, NULL}, {"files/srv/a..b", "ab\n", NULL, NULL}};
    m = manifest_of(dots, 2, NULL, NULL);
    len = make_tar(dots, 2, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) == 0, "'..hidden' and 'a..b' are ordinary names");
    free(m);

    /* a size that differs with the same checksum text */
    m = manifest_of(good, 4, NULL, NULL);
    char *at = strstr(m, "\"size\": 6");
    if (at)
        at[8] = '7';
    len = make_tar(good, 4, m, tar, sizeof tar);
    T_CHECK(at && check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "checksum mismatch"), "a wrong size is refused");
    free(m);

    /* A file listed twice must not make room for an unlisted one: the
     * counts would agree (2 listed, 2 in the stream). */
    const struct ent sneak[] = {
        {"output/x.out", "x\n", NULL, NULL},
        {"files/etc/cron.d/evil", "* * * * * root sh\n", NULL, NULL},
    };
    {
        char hex[65], extra[256];
        sha_hex("x\n", hex);
        snprintf(extra, sizeof extra, "{\"path\": \"output/x.out\", \"type\": \"file\", \"size\": 2, \"sha256\": \"%s\"}", hex);
        m = manifest_of(sneak, 1, NULL, extra);
        len = make_tar(sneak, 2, m, tar, sizeof tar);
        T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "the manifest lists 'output/x.out' twice"),
                "a manifest that lists a file twice is refused");
        free(m);
        m = manifest_of(sneak, 1, NULL, NULL);
        len = make_tar(sneak, 2, m, tar, sizeof tar);
        T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'files/etc/cron.d/evil' is in the stream but not in the manifest"),
                "an unlisted file is refused, named");
        free(m);
    }

    /* directories and symlinks are accounted for too */
    const struct ent links[] = {
        {"files/srv", NULL, NULL, NULL},
        {"files/srv/cfg", NULL, "/etc/app.conf", NULL},
        {"files/srv/a", "a\n", NULL, NULL},
    };
    m = manifest_of(links, 3, NULL, NULL);
    len = make_tar(links, 3, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) == 0, "a stream with a directory and a symlink, as listed, passes");
    free(m);
    m = manifest_of(links, 3, "files/srv/cfg", NULL);
    len = make_tar(links, 3, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'files/srv/cfg' is in the stream but not in the manifest"),
            "an unlisted symlink is refused");
    free(m);
    m = manifest_of(links, 3, "files/srv", NULL);
    len = make_tar(links, 3, m, tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'files/srv' is in the stream but not in the manifest"),
            "an unlisted directory is refused");
    free(m);
    {
        const struct ent elsewhere[] = {
            {"files/srv", NULL, NULL, NULL},
            {"files/srv/cfg", NULL, "/etc/shadow", NULL},
            {"files/srv/a", "a\n", NULL, NULL},
        };
        m = manifest_of(links, 3, NULL, NULL);
        len = make_tar(elsewhere, 3, m, tar, sizeof tar);
        T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "the symlink 'files/srv/cfg' points elsewhere"),
                "a symlink whose target differs from the manifest's is refused");
        free(m);
        const struct ent retyped[] = {
            {"files/srv", "now a file\n", NULL, NULL},
            {"files/srv/cfg", NULL, "/etc/app.conf", NULL},
            {"files/srv/a", "a\n", NULL, NULL},
        };
        m = manifest_of(links, 3, NULL, NULL);
        len = make_tar(retyped, 3, m, tar, sizeof tar);
        T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'files/srv' is a file in the stream but 'dir' in the manifest"),
                "an entry of another type than listed is refused");
        free(m);
        const struct ent hard[] = {
            {"files/srv/a", "a\n", NULL, NULL},
            {"files/srv/b", NULL, NULL, "/etc/shadow"},
        };
        m = manifest_of(hard, 1, NULL, NULL);
        len = make_tar(hard, 2, m, tar, sizeof tar);
        T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "'files/srv/b', a hard link"),
                "a hard link in the stream is refused");
        free(m);
    }

    /* not a bysu manifest, no manifest, something after it, a damaged tar */
    len = make_tar(good, 4, "{\"format\": \"other\", \"files\": []}", tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "not a bysu manifest"), "a foreign manifest is refused");
    len = make_tar(good, 4, "not json", tar, sizeof tar);
    T_CHECK(check(tar, len, msg, sizeof msg) < 0 && strstr(msg, "does not parse"), "a manifest that is not JSON is refused");
    m = manifest_of(good, 4, NULL, NULL);
    len = make_tar(good, 4, m, tar, sizeof tar);
    T_CHECK(check(tar, len / 2, msg, sizeof msg) < 0, "a truncated stream is refused");
    T_CHECK(check(tar, 0, msg, sizeof msg) < 0, "an empty stream is refused");
    free(m);
    {
        /* MANIFEST.json first, then a file */
        struct archive *a = archive_write_new();
        size_t used = 0;
        archive_write_set_format_pax_restricted(a);
        archive_write_open_memory(a, tar, sizeof tar, &used);
        const char *names[] = {"MANIFEST.json", "files/late", NULL, NULL}, *data[] = {"{}", "late\n", NULL, NULL};
        for (int i = 0; i < 2; i++) {
            struct archive_entry *en = archive_entry_new();
            archive_entry_set_pathname(en, names[i]);
            archive_entry_set_filetype(en, AE_IFREG);
            archive_entry_set_perm(en, 0644);
            archive_entry_set_size(en, (la_int64_t)strlen(data[i]));
            archive_write_header(a, en);
            archive_write_data(a, data[i], strlen(data[i]));
            archive_entry_free(en);
        }
        archive_write_close(a);
        archive_write_free(a);
        T_CHECK(check(tar, used, msg, sizeof msg) < 0 && strstr(msg, "'files/late' follows MANIFEST.json"),
                "an entry after MANIFEST.json is refused");
    }
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/bysu.conf", dir);
    test_conf();
    test_stream();
    unlink(path);
    rmdir(dir);
    T_DONE();
}
