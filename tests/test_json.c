/* The --json emitter (cli/json.c): whatever bytes a disk gives it for a label, a partition name or
 * a path, its output is valid JSON of well-formed UTF-8; nesting is balanced to the depth it
 * holds, and deeper nesting is refused loudly rather than written wrong. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* What the emitter writes for one string value, without the quotes. */
static char *encoded(const char *s)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert_not_null(f);
    struct json j;
    json_begin(&j, f);
    json_str(&j, NULL, s);
    fclose(f);
    cr_assert(len >= 2 && out[0] == '"' && out[len - 1] == '"', "%s", out);
    out[len - 1] = '\0';
    memmove(out, out + 1, len - 1);
    return out;
}

static void expect(const char *in, const char *want)
{
    char *got = encoded(in);
    cr_assert_str_eq(got, want, "for input bytes %s", in);
    free(got);
}

Test(json, escapes_and_keeps_valid_utf8)
{
    expect("EFI System", "EFI System");
    expect("a\"b\\c", "a\\\"b\\\\c");
    expect("tab\there\n", "tab\\u0009here\\u000a");
    expect("\x7f", "\\u007f");
    expect("r\xc3\xb6ot", "r\xc3\xb6ot");               /* U+00F6 */
    expect("\xe2\x82\xac", "\xe2\x82\xac");             /* U+20AC */
    expect("\xf0\x9f\x92\xbe", "\xf0\x9f\x92\xbe");     /* U+1F4BE */
    expect("\xef\xbf\xbf", "\xef\xbf\xbf");             /* U+FFFF, a noncharacter but well-formed */
}

Test(json, replaces_what_is_not_utf8)
{
    expect("\xff", "\\ufffd");
    expect("label\x80", "label\\ufffd");                /* a lone continuation byte */
    expect("\xc0\x80", "\\ufffd\\ufffd");               /* overlong NUL */
    expect("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd");    /* overlong '/' */
    expect("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");    /* a UTF-16 surrogate */
    expect("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"); /* past U+10FFFF */
    expect("\xc3", "\\ufffd");                          /* cut at the end */
    expect("\xe2\x82x", "\\ufffd\\ufffdx");             /* cut before an ASCII byte */
    expect("ok\xc3\xb6\xff", "ok\xc3\xb6\\ufffd");
}

/* 30 levels (the most first[] holds, the top level included) of alternating arrays and objects,
 * each with a value before the next level: commas right at every depth. */
Test(json, nesting_to_the_limit_is_balanced)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    struct json j;
    json_begin(&j, f);
    json_obj(&j, NULL);
    int levels = (int)(sizeof j.first / sizeof j.first[0]) - 2;
    for (int i = 0; i < levels; i++) {
        json_u64(&j, i % 2 ? NULL : "n", (uint64_t)i);
        if (i % 2)
            json_obj(&j, NULL);
        else
            json_arr(&j, "a");
    }
    for (int i = levels - 1; i >= 0; i--)
        if (i % 2)
            json_end_obj(&j);
        else
            json_end_arr(&j);
    json_bool(&j, "last", true);
    json_end_obj(&j);
    json_finish(&j);
    fclose(f);
    cr_assert_eq(j.depth, 0);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; json.load(sys.stdin)'");
    FILE *py = popen(cmd, "w");
    cr_assert_not_null(py);
    fwrite(out, 1, len, py);
    cr_assert_eq(pclose(py), 0, "not valid JSON: %s", out);
    free(out);
}

Test(json, deeper_nesting_is_refused_loudly, .signal = SIGABRT)
{
    FILE *f = fopen("/dev/null", "w");
    struct json j;
    json_begin(&j, f);
    for (size_t i = 0; i <= sizeof j.first / sizeof j.first[0]; i++)
        json_arr(&j, NULL);
}
