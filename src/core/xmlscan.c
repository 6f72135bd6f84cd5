/* Element text extraction for object-store answers (xmlscan.h). */
#include "xmlscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t put_utf8(char *o, unsigned long c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static void decode(const char *s, size_t n, char *out, size_t len)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < len;) {
        if (s[i] != '&') {
            out[o++] = s[i++];
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
            size_t el = strlen(ents[k].name);
            if (i + 1 + el <= n && !strncmp(s + i + 1, ents[k].name, el)) {
                out[o++] = ents[k].c;
                i += 1 + el;
                break;
            }
        }
        if (k < sizeof ents / sizeof ents[0])
            continue;
        if (i + 2 < n && s[i + 1] == '#') {
            char *end;
            int hex = s[i + 2] == 'x';
            unsigned long c = strtoul(s + i + 2 + hex, &end, hex ? 16 : 10);
            if (end < s + n && *end == ';' && c > 0 && c <= 0x10FFFF) {
                o += put_utf8(out + o, c);
                i = (size_t)(end - s) + 1;
                continue;
            }
        }
        out[o++] = s[i++];
    }
    out[o] = 0;
}

int xml_next(const char *doc, const char **pos, const char *tag, char *out, size_t len)
{
    char open[80], close[80];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *from = pos && *pos ? *pos : doc;
    const char *a = strstr(from, open);
    if (!a) {
        if (len)
            out[0] = 0;
        return 0;
    }
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b) {
        if (len)
            out[0] = 0;
        return 0;
    }
    if (len)
        decode(a, (size_t)(b - a), out, len);
    if (pos)
        *pos = b + strlen(close);
    return 1;
}

const char *xml_first(const char *doc, const char *tag, char *out, size_t len)
{
    xml_next(doc, NULL, tag, out, len);
    return out;
}

const char *xml_error_summary(const char *doc, char *out, size_t len)
{
    char code[128], msg[240];
    xml_first(doc ? doc : "", "Code", code, sizeof code);
    xml_first(doc ? doc : "", "Message", msg, sizeof msg);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (*code && *msg)
        snprintf(out, len, "%s: %s", code, msg);
    else
        snprintf(out, len, "%s", *code ? code : msg);
    return out;
}
