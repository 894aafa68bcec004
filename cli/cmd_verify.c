/* asrimg verify: checks every checksum and structural rule of an image; exit 0 only when every
 * byte that matters checks out. Problems are listed one per line (or in --json). */
#include "cli.h"

#include <string.h>

struct verify_out {
    bool json;
    struct json *j;
};

static void on_problem(const struct asr_problem *p, void *ctx)
{
    struct verify_out *o = ctx;
    if (!o->json) {
        if (p->part)
            fprintf(stderr, "asrimg: problem: %s: %s (part %u, file offset %llu)\n", p->what, p->message, p->part,
                    (unsigned long long)p->part_offset);
        else
            fprintf(stderr, "asrimg: problem: %s: %s\n", p->what, p->message);
        return;
    }
    json_obj(o->j, NULL);
    json_str(o->j, "status", asr_status_name(p->code));
    json_str(o->j, "what", p->what);
    json_u64(o->j, "part", p->part);
    json_u64(o->j, "part_offset", p->part_offset);
    json_str(o->j, "message", p->message);
    json_end_obj(o->j);
}

int cmd_verify(int argc, char **argv)
{
    const char *path = NULL;
    struct verify_out o = {0};
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--json"))
            o.json = true;
        else if (argv[a][0] == '-' && argv[a][1])
            return cli_error("verify: unknown option %s", argv[a]), EXIT_USAGE;
        else if (!path)
            path = argv[a];
        else
            return cli_error("verify: one image at a time"), EXIT_USAGE;
    }
    if (!path)
        return cli_error("usage: asrimg verify IMAGE [--json]"), EXIT_USAGE;
    struct json j;
    o.j = &j;
    if (o.json) {
        json_begin(&j, stdout);
        json_obj(&j, NULL);
        json_str(&j, "path", path);
        json_arr(&j, "problems");
    }
    struct progress pr;
    progress_init(&pr, "verify", o.json);
    struct asr_verify_report rep;
    struct asr_error err = {0};
    int rc = asr_verify(path, on_problem, &o, progress_update, &pr, &rep, &err);
    progress_done(&pr);
    if (o.json) {
        json_end_arr(&j);
        json_bool(&j, "ok", rc == ASR_OK);
        if (rc != ASR_OK && rep.problems == 0)
            json_str(&j, "error", err.msg);
        json_bool(&j, "complete", rep.complete);
        json_u64(&j, "structures", rep.structures);
        json_u64(&j, "chunks", rep.chunks);
        json_u64(&j, "volumes", rep.volumes);
        json_u64(&j, "bytes_checked", rep.bytes_checked);
        json_u64(&j, "problem_count", rep.problems);
        json_end_obj(&j);
        json_finish(&j);
    } else if (rc == ASR_OK) {
        char b[32];
        printf("%s: OK: %llu structures, %llu chunks, %llu volumes, %s checked\n", path,
               (unsigned long long)rep.structures, (unsigned long long)rep.chunks, (unsigned long long)rep.volumes,
               cli_bytes(rep.bytes_checked, b, sizeof b));
    } else if (rep.problems == 0) {
        cli_error("%s", err.msg);
    } else {
        cli_error("%s: verification failed with %llu problem%s; first: %s", path, (unsigned long long)rep.problems,
                  rep.problems == 1 ? "" : "s", err.msg);
    }
    return rc == ASR_OK ? EXIT_OK : EXIT_FAIL;
}
