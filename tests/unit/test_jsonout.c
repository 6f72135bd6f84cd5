/* Unit tests of the compact JSON writer (jsonout.h): on awkward values its
 * output must be byte for byte what json_dumps(JSON_COMPACT | JSON_SORT_KEYS
 * | JSON_ENCODE_ANY) gives, since every @meta entry in an archive is
 * written with it; where jansson fails, it fails too. */
#include <stdint.h>
#include <stdlib.h>

#include "jsonout.h"
#include "t.h"

/* 1 if jsonout_compact and json_dumps agree on v (both fail, or the same
 * bytes); prints both when they do not. Takes the reference to v. */
static int same(json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    struct buf b;
    buf_init(&b, 0);
    int rc = jsonout_compact(&b, v);
    int ok = want ? rc == 0 && b.len == strlen(want) && memcmp(b.p, want, b.len) == 0 : rc < 0;
    if (!ok)
        fprintf(stderr, "jansson: %s\njsonout: %s (rc %d)\n", want ? want : "(fails)",
                rc == 0 ? b.p : "(fails)", rc);
    free(want);
    buf_free(&b);
    json_decref(v);
    return ok;
}

static json_t *str(const char *p, size_t n)
{
    json_t *s = json_stringn_nocheck(p, n); /* invalid UTF-8 too, to see both refuse it */
    if (!s)
        exit(2);
    return s;
}

/* Every byte value alone, and each inside text, as a string and as a key. */
static int all_bytes(void)
{
    int ok = 1;
    for (int c = 0; c < 256; c++) {
        char one = (char)c, mid[5] = {'a', (char)c, 'b', '"', '\\'};
        ok &= same(str(&one, 1));
        ok &= same(str(mid, sizeof mid));
        json_t *o = json_object();
        json_object_setn_new_nocheck(o, mid, 3, json_integer(c));
        json_object_set_new(o, "z", json_true());
        if (c < 0x80) /* jansson writes a non-UTF-8 key half-escaped; jsonout refuses it */
            ok &= same(o);
        else
            json_decref(o);
    }
    return ok;
}

static const char *const texts[] = {
    "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", /* valid, up to U+10FFFF */
    "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xf0\x80\x80\x80",         /* overlong */
    "\xed\xa0\x80", "\xed\xbf\xbf",                                     /* surrogates */
    "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\xfe",             /* past U+10FFFF, never valid */
    "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\x80", "\xbf",                 /* cut short, stray */
    "\xe2\x28\xa1", "a\xc3\x28", "\xef\xbb\xbf", "\xe2\x80\xa8\xe2\x80\xa9",
    "/", "</script>", "\x7f", "\t\n\r\b\f\x01\x1f", "",
};

static int strings(void)
{
    int ok = 1;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        ok &= same(str(texts[i], strlen(texts[i])));
    ok &= same(str("a\0b\0", 4)); /* NUL bytes inside a string */
    ok &= same(str("\0", 1));
    return ok;
}

static int numbers(void)
{
    static const json_int_t ints[] = {0, 1, -1, 9, 10, -10, 1234567890123LL, INT64_MAX,
                                      INT64_MIN, INT64_MIN + 1, 57036058271783942LL};
    int ok = 1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        ok &= same(json_integer(ints[i]));
    static const double reals[] = {0.0, -0.0, 1.5, -2.25, 1e300, 1e-300, 0.1, 3.0};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        ok &= same(json_real(reals[i]));
    return ok;
}

static int containers(void)
{
    int ok = 1;
    static const char *const docs[] = {
        "{}", "[]", "[[],{},[{}]]", "{\"b\":1,\"a\":2,\"ab\":3,\"aa\":null,\"\":true}",
        "{\"attrs\":{\"lease\":0},\"size\":null,\"sha256\":null}",
        "{\"acl\":[{\"id\":\"anyone\",\"perms\":\"cdrwa\",\"scheme\":\"world\"}],"
        "\"stat\":{\"ctime\":-1,\"version\":2147483647},\"x\":[1.5,false,\"\\u0000\\\"\"]}",
        "{\"\\u00e9\":1,\"e\":2,\"\\u20ac\":3,\"\\ud83d\\ude00\":4,\"E\":5,\"\\u0001\":6}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_error_t je;
        json_t *v = json_loads(docs[i], JSON_ALLOW_NUL, &je);
        if (!v) {
            fprintf(stderr, "bad test document %zu: %s\n", i, je.text);
            return 0;
        }
        ok &= same(v);
    }

    /* keys that are prefixes of each other, and ones with NUL bytes */
    json_t *o = json_object();
    json_object_setn_new(o, "a\0b", 3, json_integer(1));
    json_object_setn_new(o, "a", 1, json_integer(2));
    json_object_setn_new(o, "a\0", 2, json_integer(3));
    json_object_setn_new(o, "", 0, json_integer(4));
    ok &= same(o);

    /* more keys than fit the writer's stack array, inserted out of order */
    o = json_object();
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", (i * 37) % 100);
        json_object_set_new(o, k, json_integer(i));
    }
    ok &= same(o);

    /* deeper than the writer goes itself: the rest is jansson's */
    json_t *deep = json_string("end");
    for (int i = 0; i < 100; i++) {
        json_t *wrap = i % 2 ? json_array() : json_object();
        if (i % 2)
            json_array_append_new(wrap, deep);
        else
            json_object_set_new(wrap, "k", deep);
        deep = wrap;
    }
    ok &= same(deep);

    /* an invalid string deep inside fails the whole value */
    json_t *arr = json_pack("[i,{s:[s]}]", 1, "a", "x");
    json_array_append_new(json_array_get(json_object_get(json_array_get(arr, 1), "a"), 0),
                          json_null());
    json_array_append_new(arr, str("\xff", 1));
    ok &= same(arr);
    return ok;
}

/* A reference cycle: jansson refuses it, and so must the writer. */
static int cycle(void)
{
    json_t *a = json_array(), *b = json_object();
    json_array_append(a, b);
    json_object_set(b, "a", a);
    struct buf buf;
    buf_init(&buf, 0);
    int ok = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS) == NULL && jsonout_compact(&buf, a) < 0;
    buf_free(&buf);
    json_object_clear(b); /* break the cycle so both can be freed */
    json_decref(b);
    json_decref(a);
    return ok;
}

/* Random documents of random strings, keys and numbers. */
static unsigned long long rng = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static json_t *random_string(void)
{
    static const char *const bits[] = {"a", "\"", "\\", "\n", "\x01", "\x7f", "\xc3\xa9",
                                       "\xe2\x82\xac", "\xf0\x9f\x98\x80", "/", " ", "0"};
    char s[64];
    size_t n = 0, parts = rnd(6);
    for (size_t i = 0; i < parts; i++) {
        const char *p = bits[rnd(sizeof bits / sizeof bits[0])];
        memcpy(s + n, p, strlen(p));
        n += strlen(p);
    }
    if (rnd(4) == 0)
        s[n++] = 0;
    return json_stringn(s, n);
}

static json_t *random_value(int depth)
{
    switch (depth > 4 ? rnd(5) : rnd(7)) {
    case 0:
        return json_integer((json_int_t)(rng >> rnd(64)) * (rnd(2) ? 1 : -1));
    case 1:
        return random_string();
    case 2:
        return rnd(2) ? json_true() : json_false();
    case 3:
        return json_null();
    case 4:
        return json_real((double)(int)rnd(1000) / 8);
    case 5: {
        json_t *a = json_array();
        for (unsigned i = rnd(5); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = rnd(20); i > 0; i--) {
            json_t *k = random_string();
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

int main(void)
{
    T_CHECK(all_bytes(), "every byte, in a string and in a key, as jansson writes it");
    T_CHECK(strings(), "valid and invalid UTF-8, escapes, NUL bytes as jansson writes them");
    T_CHECK(numbers(), "integers (both extremes) and reals as jansson writes them");
    T_CHECK(containers(), "objects (sorted keys, NUL in keys, many keys), arrays, deep nesting");
    T_CHECK(cycle(), "a reference cycle is refused");
    int ok = 1;
    for (int i = 0; i < 2000 && ok; i++)
        ok &= same(random_value(0));
    T_CHECK(ok, "2000 random documents as jansson writes them");
    T_DONE();
}
