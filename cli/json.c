/* A minimal streaming JSON emitter for --json output: keys and strings escaped, numbers as
 * integers or doubles, nesting tracked so commas land right. */
#include "cli.h"

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

static void put_escaped(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
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
    sep(j, key);
    fputc(c, j->f);
    if (j->depth < 31)
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

void json_finish(struct json *j)
{
    fputc('\n', j->f);
    fflush(j->f);
}
