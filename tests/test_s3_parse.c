/* The S3 backend's parsers of server answers (store/backend_s3.c): ListObjectsV2 pages and <Error>
 * bodies are untrusted, so each hostile shape is refused or cut, never read past its length
 * (the bodies here are not NUL-terminated where it matters: ASan sees any overread). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_s3.h"

/* A copy of s without its NUL, so that a parser reading past len trips ASan. */
static char *exact(const char *s, size_t *len)
{
    *len = strlen(s);
    char *p = malloc(*len ? *len : 1);
    cr_assert(p);
    memcpy(p, s, *len);
    return p;
}

static int parse(const char *xml, const char *want, size_t strip, struct s3_list_page *pg, struct asr_error *e)
{
    size_t len;
    char *p = exact(xml, &len);
    int rc = s3_parse_list(p, len, want, strip, pg, e);
    free(p);
    return rc;
}

#define ENTRY(k, sz, t) "<Contents><Key>" k "</Key><LastModified>" t "</LastModified><Size>" sz "</Size></Contents>"
#define PAGE(body) "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"x\"><Name>b</Name>" body "</ListBucketResult>"

Test(s3_parse, list_page)
{
    struct s3_list_page pg = {0};
    struct asr_error e = {0};
    int rc = parse(PAGE("<IsTruncated>true</IsTruncated>" ENTRY("p/packs/ab/1", "12", "2026-12-05T17:50:04.000Z")
                            ENTRY("p/packs/a&amp;b&#47;&#x41;", "0", "1970-01-01T00:00:00Z")
                                "<NextContinuationToken>tok+/=&amp;</NextContinuationToken>"),
                   "p/packs/", 2, &pg, &e);
    cr_assert_eq(rc, ASR_OK, "%s", e.msg);
    cr_assert_eq(pg.count, 2);
    cr_assert_str_eq(pg.objs[0].key, "packs/ab/1");
    cr_assert_eq(pg.objs[0].size, 12);
    cr_assert_eq(pg.objs[0].mtime, 1796493004);
    cr_assert_str_eq(pg.objs[1].key, "packs/a&b/A");
    cr_assert_eq(pg.objs[1].mtime, 0);
    cr_assert(pg.truncated);
    cr_assert_str_eq(pg.token, "tok+/=&");
    /* the next page appends */
    rc = parse(PAGE("<IsTruncated>false</IsTruncated>" ENTRY("p/packs/zz", "18446744073709551615",
                                                             "2026-02-28T23:59:59.5Z")),
               "p/packs/", 2, &pg, &e);
    cr_assert_eq(rc, ASR_OK, "%s", e.msg);
    cr_assert_eq(pg.count, 3);
    cr_assert_eq(pg.objs[2].size, UINT64_MAX);
    cr_assert(!pg.truncated);
    cr_assert_str_eq(pg.token, "");
    store_objects_free(pg.objs, pg.count);
}

/* The prefix itself (an S3 console's "folder") is no object of the store: skipped. */
Test(s3_parse, folder_marker)
{
    struct s3_list_page pg = {0};
    struct asr_error e = {0};
    int rc = parse(PAGE(ENTRY("p/", "0", "2026-12-05T17:50:04Z") ENTRY("p/x", "1", "2026-12-05T17:50:04Z")), "p/",
                   0, &pg, &e);
    cr_assert_eq(rc, ASR_OK, "%s", e.msg);
    cr_assert_eq(pg.count, 1);
    cr_assert_str_eq(pg.objs[0].key, "p/x");
    store_objects_free(pg.objs, pg.count);
}

Test(s3_parse, empty_listing)
{
    struct s3_list_page pg = {0};
    struct asr_error e = {0};
    cr_assert_eq(parse(PAGE("<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"), "x/", 0, &pg, &e), ASR_OK);
    cr_assert_eq(pg.count, 0);
    cr_assert_null(pg.objs);
}

/* Every malformed page is refused as corrupt, with nothing kept from it that leaks. */
Test(s3_parse, hostile_pages)
{
    static const char *bad[] = {
        "",
        "<Error><Code>AccessDenied</Code></Error>",
        PAGE(ENTRY("q/x", "1", "2026-12-05T17:50:04Z")),                      /* outside the prefix */
        PAGE(ENTRY("p/x", "-1", "2026-12-05T17:50:04Z")),
        PAGE(ENTRY("p/x", "18446744073709551616", "2026-12-05T17:50:04Z")), /* 2^64 */
        PAGE(ENTRY("p/x", "", "2026-12-05T17:50:04Z")),
        PAGE(ENTRY("p/x", "1", "2026-13-05T17:50:04Z")),
        PAGE(ENTRY("p/x", "1", "2026-12-05T17:50:04")),
        PAGE(ENTRY("p/x", "1", "2026-12-05 17:50:04Z")),
        PAGE(ENTRY("p/x", "1", "2026-12-05T17:50:04.Z")),
        PAGE(ENTRY("p/x&bogus;", "1", "2026-12-05T17:50:04Z")),
        PAGE(ENTRY("p/x&#0;", "1", "2026-12-05T17:50:04Z")),
        PAGE(ENTRY("p/x&#xD800;", "1", "2026-12-05T17:50:04Z")),
        PAGE(ENTRY("p/x&#x110000;", "1", "2026-12-05T17:50:04Z")),
        PAGE(ENTRY("p/x&amp", "1", "2026-12-05T17:50:04Z")),
        PAGE("<Contents><Size>1</Size></Contents>"),
        PAGE("<Contents><Key>p/x</Key><Size>1</Size></Contents>"),
        PAGE("<IsTruncated>true</IsTruncated>"), /* a next page without a token */
        PAGE("<IsTruncated>true</IsTruncated><NextContinuationToken></NextContinuationToken>"),
        PAGE(ENTRY("p/ok", "1", "2026-12-05T17:50:04Z") "<Contents><Key>p/cut"), /* truncated body */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct s3_list_page pg = {0};
        struct asr_error e = {0};
        int rc = parse(bad[i], "p/", 0, &pg, &e);
        store_objects_free(pg.objs, pg.count);
        if (i == sizeof bad / sizeof bad[0] - 1) {
            /* a body cut inside an entry: the complete entries only, which the caller never sees
             * as a whole listing because the transfer itself failed; here: nothing past the cut */
            cr_assert(rc == ASR_OK && pg.count == 1, "cut body %zu: rc %d count %zu", i, rc, pg.count);
            continue;
        }
        cr_assert(rc != ASR_OK, "page %zu accepted: %s", i, bad[i]);
        cr_assert(e.msg[0], "page %zu: no message", i);
    }
}

Test(s3_parse, long_key_and_token)
{
    /* a key over S3's 1024 bytes and a token over the page's room are refused, not cut */
    size_t n = 1100;
    char *key = malloc(n + 1), *xml = malloc(n + 512);
    memset(key, 'k', n);
    key[0] = 'p';
    key[1] = '/';
    key[n] = '\0';
    snprintf(xml, n + 512, PAGE("<Contents><Key>%s</Key><LastModified>2026-12-05T17:50:04Z</LastModified>"
                                "<Size>1</Size></Contents>"),
             key);
    struct s3_list_page pg = {0};
    struct asr_error e = {0};
    cr_assert_neq(parse(xml, "p/", 0, &pg, &e), ASR_OK);
    snprintf(xml, n + 512, PAGE("<IsTruncated>true</IsTruncated><NextContinuationToken>%s</NextContinuationToken>"),
             key);
    cr_assert_neq(parse(xml, "p/", 0, &pg, &e), ASR_OK);
    cr_assert_eq(pg.count, 0);
    free(key);
    free(xml);
}

Test(s3_parse, error_body)
{
    char code[16], msg[32];
    size_t len;
    char *p = exact("<?xml version='1.0'?><Error><Code>SignatureDoesNotMatch</Code><Message>The &lt;sig&gt;\x01 "
                    "we calculated does not match at all</Message></Error>",
                    &len);
    s3_parse_error(p, len, code, sizeof code, msg, sizeof msg);
    cr_assert_str_eq(code, "SignatureDoesNo"); /* cut to fit, NUL-terminated */
    cr_assert_str_eq(msg, "The <sig>? we calculated does n");
    free(p);
    p = exact("<Error><Code>NoSuchKey</Code><Message>unterminated", &len);
    s3_parse_error(p, len, code, sizeof code, msg, sizeof msg);
    cr_assert_str_eq(code, "NoSuchKey");
    cr_assert_str_eq(msg, "");
    free(p);
    p = exact("<html>502 Bad Gateway</html>", &len);
    s3_parse_error(p, len, code, sizeof code, msg, sizeof msg);
    cr_assert_str_eq(code, "");
    cr_assert_str_eq(msg, "");
    free(p);
    s3_parse_error("", 0, code, sizeof code, msg, sizeof msg);
    cr_assert_str_eq(code, "");
}

/* parse_delete_result on text (a copy of exactly its bytes, no NUL after): rc; key, code, msg. */
static int delete_result(const char *text, char *key, size_t key_len, char *code, char *msg)
{
    size_t len;
    char *p = exact(text, &len);
    struct asr_error e = {0};
    int rc = s3_parse_delete_result(p, len, key, key_len, code, 16, msg, 32, &e);
    if (rc != ASR_OK)
        cr_assert(strstr(e.msg, "batch delete"), "the error says what was read: %s", e.msg);
    free(p);
    return rc;
}

Test(s3_parse, delete_result)
{
    char key[24], code[16], msg[32];
    /* Swift's answer when every key went: an empty root */
    cr_assert_eq(delete_result("<?xml version='1.0' encoding='UTF-8'?>\n<DeleteResult "
                               "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>", key, sizeof key, code, msg),
                 ASR_OK);
    cr_assert_str_eq(key, "");
    /* keys that were not there are what was asked; the first other error is named, cut to fit */
    cr_assert_eq(delete_result("<DeleteResult><Error><Key>p/gone</Key><Code>NoSuchKey</Code></Error>"
                               "<Deleted><Key>p/a</Key></Deleted>"
                               "<Error><Key>p/packs/ab/ab&amp;\x01"
                               "cdefghijklmnopqrstuvwxyz</Key><Code>AccessDenied</Code>"
                               "<Message>Access Denied</Message></Error>"
                               "<Error><Key>p/second</Key><Code>InternalError</Code></Error></DeleteResult>",
                               key, sizeof key, code, msg),
                 ASR_OK);
    cr_assert_str_eq(key, "p/packs/ab/ab&?cdefghij");
    cr_assert_str_eq(code, "AccessDenied");
    cr_assert_str_eq(msg, "Access Denied");
    cr_assert_eq(delete_result("<DeleteResult><Error><Key>p/gone</Key><Code>NoSuchKey</Code></Error></DeleteResult>",
                               key, sizeof key, code, msg),
                 ASR_OK);
    cr_assert_str_eq(key, "");
    /* an error without its key is still an error */
    cr_assert_eq(delete_result("<DeleteResult><Error><Code>SlowDown</Code></Error></DeleteResult>", key, sizeof key,
                               code, msg),
                 ASR_OK);
    cr_assert_str_eq(key, "?");
    cr_assert_str_eq(code, "SlowDown");
    /* not a whole answer: never taken for "all deleted" */
    const char *bad[] = {"",
                         "<html>502 Bad Gateway</html>",
                         "<DeleteResult",
                         "<DeleteResult>",
                         "<DeleteResult><Error><Key>p/a</Key><Code>AccessDenied</Code>",
                         "<DeleteResult><Error><Key>p/a</Key><Code>AccessDenied</Code></DeleteResult>",
                         "<DeleteResult><Error><Key>p/a</Key></Error></DeleteResult>",
                         "<Error><Code>AccessDenied</Code></Error>"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(delete_result(bad[i], key, sizeof key, code, msg), ASR_E_CORRUPT, "%s", bad[i]);
}

Test(s3_parse, times)
{
    int64_t t;
    cr_assert_eq(s3_parse_time("2026-12-05T17:50:04.000Z", 24, &t), ASR_OK);
    cr_assert_eq(t, 1796493004);
    cr_assert_eq(s3_parse_time("2000-02-29T00:00:00Z", 20, &t), ASR_OK);
    cr_assert_eq(t, 951782400);
    /* the length bounds the read: a valid time after len does not count */
    cr_assert_neq(s3_parse_time("2026-12-05T17:50:04Z", 19, &t), ASR_OK);
    cr_assert_neq(s3_parse_time("2026-12-05T17:50:04Z", 0, &t), ASR_OK);
    cr_assert_neq(s3_parse_time("2026-12-05T24:50:04Z", 20, &t), ASR_OK);
    cr_assert_neq(s3_parse_time("2026-12-05T17:50:04ZZ", 21, &t), ASR_OK);
}
