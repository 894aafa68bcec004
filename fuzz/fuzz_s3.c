/* libFuzzer harness for the parsers of S3's answers (store/backend_s3.c): ListObjectsV2 pages,
 * <Error> bodies, DeleteObjects answers and S3's times, each from an endpoint asrimg does not
 * control. Every input goes through each parser: a refusal must say why, a listing's keys must
 * start with the prefix asked for (which is cut off), and what reaches a message is printable.
 * replay.c replays the corpus (corpus/s3/: hand-written answers of each kind). */
#include "backend_s3.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void refused_says_why(int rc, const struct asr_error *err)
{
    if (rc && !err->msg[0])
        abort();
}

static void printable_or_abort(const char *s)
{
    for (; *s; s++)
        if (!isprint((unsigned char)*s))
            abort();
}

static void fuzz_list(const char *xml, size_t size)
{
    struct s3_list_page pg = {0};
    struct asr_error err = {0};
    int rc = s3_parse_list(xml, size, "store/packs/", strlen("store/"), &pg, &err);
    refused_says_why(rc, &err);
    for (size_t i = 0; i < pg.count; i++)
        if (!pg.objs[i].key || strncmp(pg.objs[i].key, "packs/", 6) != 0)
            abort();
    store_objects_free(pg.objs, pg.count);
}

static void fuzz_answers(const char *xml, size_t size)
{
    char code[64], msg[200], key[1024];
    s3_parse_error(xml, size, code, sizeof code, msg, sizeof msg);
    printable_or_abort(code);
    printable_or_abort(msg);
    struct asr_error err = {0};
    int rc = s3_parse_delete_result(xml, size, key, sizeof key, code, sizeof code, msg, sizeof msg, &err);
    refused_says_why(rc, &err);
    if (rc == ASR_OK && key[0]) {
        printable_or_abort(key);
        printable_or_abort(code);
        printable_or_abort(msg);
    }
    int64_t t;
    (void)s3_parse_time(xml, size < 64 ? size : 64, &t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_list((const char *)data, size);
    fuzz_answers((const char *)data, size);
    return 0;
}
