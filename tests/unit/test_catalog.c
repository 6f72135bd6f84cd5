/* Unit tests of the catalog: snapshot IDs, names, and listing/resolving
 * published manifests in a directory store. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "registry.h"
#include "t.h"

static void put(struct store *s, const char *key, const char *text)
{
    struct store_put *p = NULL;
    struct burry_err e = {0};
    if (store_dir.put_open(s, key, &p, &e) == 0 && store_dir.put_write(p, text, strlen(text), &e) == 0)
        store_dir.put_commit(p, &e);
    else
        store_dir.put_abort(p);
}

static void manifest(struct store *s, const char *name, const char *id)
{
    char key[256], text[512];
    snprintf(key, sizeof key, "%s/%s.json", name, id);
    snprintf(text, sizeof text,
             "{\"snapshot\":\"%s\",\"name\":\"%s\",\"service\":\"zookeeper\",\"archive\":{\"key\":\"%s.tar.zst\"}}",
             id, name, id);
    put(s, key, text);
}

int main(void)
{
    char a[32], b[32];
    catalog_new_id(a, sizeof a);
    usleep(2000);
    catalog_new_id(b, sizeof b);
    T_CHECK(catalog_valid_id(a) && catalog_valid_id(b), "new IDs have the documented shape");
    T_CHECK(strcmp(a, b) < 0, "a later ID sorts after an earlier one");
    T_CHECK(!catalog_valid_id("20261121T083501.123Z-7F3A"), "upper-case hex is not an ID");
    T_CHECK(!catalog_valid_id("../../etc/passwd"), "a path is not an ID");
    T_CHECK(!catalog_valid_id("20261121T083501.123Z-7f3a.json"), "a file name is not an ID");

    struct burry_err e = {0};
    T_CHECK(catalog_check_name("zk-10.0.0.5-2181", &e) == 0, "a derived name is valid");
    T_CHECK(catalog_check_name("../x", &e) == BURRY_EUSAGE, "a name with '/' is refused");
    burry_err_clear(&e);
    T_CHECK(catalog_check_name(".hidden", &e) == BURRY_EUSAGE, "a name starting with '.' is refused");
    burry_err_clear(&e);
    T_CHECK(catalog_check_name("", &e) == BURRY_EUSAGE, "an empty name is refused");
    burry_err_clear(&e);

    char dir[] = "/tmp/burry-catalog.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct burry_opts o;
    burry_opts_init(&o);
    struct store *s = NULL;
    T_CHECK(store_dir.open(&s, dir, &o, &e) == 0, "open a directory store");

    json_t *m = NULL;
    T_CHECK(catalog_resolve(&store_dir, s, "latest", NULL, &m, &e) == BURRY_ENOENT, "latest in an empty store: not found");
    T_CHECK(strstr(e.msg, "no snapshots in directory") != NULL, "the message says the store is empty");
    burry_err_clear(&e);

    manifest(s, "alpha", "20261121T080000.000Z-0001");
    manifest(s, "beta", "20261121T090000.000Z-0002");
    manifest(s, "alpha", "20261121T100000.000Z-0003");
    put(s, "alpha/20261121T110000.000Z-0004.tar.zst", "an archive whose manifest is missing");
    put(s, "alpha/notes.json", "{}");

    json_t *all = NULL;
    T_CHECK(catalog_list(&store_dir, s, NULL, &all, &e) == 0, "list the store");
    T_CHECK(json_array_size(all) == 3, "only published snapshots are listed");
    T_CHECK(!strcmp(json_string_value(json_object_get(json_array_get(all, 0), "snapshot")),
                    "20261121T080000.000Z-0001"), "oldest first");
    json_decref(all);
    T_CHECK(catalog_list(&store_dir, s, "alpha", &all, &e) == 0 && json_array_size(all) == 2,
            "listing one name");
    json_decref(all);

    T_CHECK(catalog_resolve(&store_dir, s, NULL, NULL, &m, &e) == 0 &&
                !strcmp(json_string_value(json_object_get(m, "snapshot")), "20261121T100000.000Z-0003"),
            "latest is the newest of all names");
    json_decref(m);
    T_CHECK(catalog_resolve(&store_dir, s, "latest", "beta", &m, &e) == 0 &&
                !strcmp(json_string_value(json_object_get(m, "snapshot")), "20261121T090000.000Z-0002"),
            "latest of one name");
    char *key = catalog_archive_key(m);
    T_CHECK(key && !strcmp(key, "beta/20261121T090000.000Z-0002.tar.zst"), "archive key of a snapshot");
    free(key);
    json_decref(m);
    T_CHECK(catalog_resolve(&store_dir, s, "20261121T080000.000Z-0009", NULL, &m, &e) == BURRY_ENOENT &&
                strstr(e.msg, "20261121T080000.000Z-0009"),
            "an unknown ID is not found and named");
    burry_err_clear(&e);
    T_CHECK(catalog_resolve(&store_dir, s, "yesterday", NULL, &m, &e) == BURRY_EUSAGE,
            "a malformed ID is a usage error");
    burry_err_clear(&e);

    put(s, "gamma/20261121T120000.000Z-0005.json", "{not json");
    T_CHECK(catalog_list(&store_dir, s, NULL, &all, &e) == 0 && json_array_size(all) == 4,
            "a damaged manifest neither fails the listing nor is skipped");
    json_t *d = json_array_get(all, 3);
    T_CHECK(catalog_damaged(d) && strstr(catalog_damaged(d), "damaged") &&
                !strcmp(json_string_value(json_object_get(d, "snapshot")), "20261121T120000.000Z-0005") &&
                !strcmp(json_string_value(json_object_get(d, "name")), "gamma"),
            "it is listed as damaged, with the ID and name of its file name");
    T_CHECK(!catalog_damaged(json_array_get(all, 0)), "a good manifest is not marked damaged");
    json_decref(all);
    T_CHECK(catalog_resolve(&store_dir, s, "latest", NULL, &m, &e) == 0 &&
                !strcmp(json_string_value(json_object_get(m, "snapshot")), "20261121T100000.000Z-0003"),
            "latest skips a newer damaged manifest");
    json_decref(m);
    T_CHECK(catalog_resolve(&store_dir, s, "latest", "gamma", &m, &e) == BURRY_ENOENT &&
                strstr(e.msg, "damaged"),
            "latest of a name with only a damaged manifest is not found, and says why");
    burry_err_clear(&e);
    T_CHECK(catalog_resolve(&store_dir, s, "20261121T120000.000Z-0005", NULL, &m, &e) == BURRY_EFAIL &&
                strstr(e.msg, "cannot be used"),
            "naming the damaged snapshot fails");
    burry_err_clear(&e);
    put(s, "alpha/20261121T130000.000Z-0006.json",
        "{\"snapshot\":\"20261121T130000.000Z-0006\",\"name\":\"beta\"}");
    T_CHECK(catalog_resolve(&store_dir, s, "latest", "alpha", &m, &e) == 0 &&
                !strcmp(json_string_value(json_object_get(m, "snapshot")), "20261121T100000.000Z-0003"),
            "a sidecar naming another name than its directory is damaged too");
    json_decref(m);
    {
        /* a sidecar over 1 MiB is not read whole: damaged, not a failed listing */
        size_t big = (1 << 20) + 10;
        char *text = malloc(big + 1);
        T_CHECK(text != NULL, "memory for a large sidecar");
        if (text) {
            memset(text, ' ', big);
            text[big] = 0;
            put(s, "delta/20261121T140000.000Z-0007.json", text);
            free(text);
            T_CHECK(catalog_list(&store_dir, s, "delta", &all, &e) == 0 && json_array_size(all) == 1 &&
                        catalog_damaged(json_array_get(all, 0)) &&
                        strstr(catalog_damaged(json_array_get(all, 0)), "larger than"),
                    "a sidecar larger than 1 MiB is listed as damaged, saying so");
            json_decref(all);
            burry_err_clear(&e);
        }
    }

    char now[32];
    catalog_new_id(now, sizeof now);
    T_CHECK(!catalog_id_in_future("20011121T083501.123Z-7f3a") && !catalog_id_in_future(now),
            "a past ID, or one of now, is not in the future");
    T_CHECK(catalog_id_in_future("29991121T083501.123Z-7f3a"), "an ID of 2999 is in the future");
    T_CHECK(catalog_id_time("20261121T083501.123Z-7f3a") > 1795249000, "the time of an ID");
    store_dir.close(s);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    T_CHECK(system(cmd) == 0, "clean up");
    T_DONE();
}
