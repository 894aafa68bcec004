/* A minimal streaming JSON emitter for --json output: keys and strings escaped, numbers as
 * integers or doubles, nesting tracked so commas land right. Strings come from disks (labels,
 * partition names, paths) and need not be UTF-8: what is not is written as U+FFFD, so the output
 * always parses. */
#include "json.h"

#include <stdlib.h>

static void put_escaped(FILE *f, const char *s);

static void sep(struct json *j, const char *key)
{
    if (j->depth > 0) {
        if (!j->first[j->depth])
            fputc(',', j->f);
        j->first[j->depth] = false;
    }
    if (key) {
        put_escaped(j->f, key);
        fputc(':', j->f);
    }
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF), or 0. */
static int utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    int n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

static void put_escaped(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n == 0) {
            fputs("\\ufffd", f); /* one replacement per byte that starts no valid sequence */
            p++;
            continue;
        }
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fwrite(p, 1, (size_t)n, f);
        p += n;
    }
    fputc('"', f);
}

void json_begin(struct json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
}

static void open_level(struct json *j, const char *key, char c)
{
    /* asrimg's own output nests a few levels; more than first[] holds is a bug here, not input,
     * and a silently wrong nesting would give scripts broken JSON. */
    if (j->depth + 1 >= (int)(sizeof j->first / sizeof j->first[0])) {
        fputs("asrimg: internal error: JSON nested too deep\n", stderr);
        abort();
    }
    sep(j, key);
    fputc(c, j->f);
    j->depth++;
    j->first[j->depth] = true;
}

void json_obj(struct json *j, const char *key) { open_level(j, key, '{'); }
void json_arr(struct json *j, const char *key) { open_level(j, key, '['); }

void json_end_obj(struct json *j)
{
    fputc('}', j->f);
    j->depth--;
}

void json_end_arr(struct json *j)
{
    fputc(']', j->f);
    j->depth--;
}

void json_str(struct json *j, const char *key, const char *v)
{
    sep(j, key);
    put_escaped(j->f, v ? v : "");
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
    sep(j, key);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_dbl(struct json *j, const char *key, double v)
{
    sep(j, key);
    fprintf(j->f, "%.4f", v);
}

void json_bool(struct json *j, const char *key, bool v)
{
    sep(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
    sep(j, key);
    fputs("null", j->f);
}

void json_finish(struct json *j)
{
    fputc('\n', j->f);
    fflush(j->f);
}

void json_raw(struct json *j, const char *key, const char *text)
{
    sep(j, key);
    fputs(text, j->f);
}
