/* asrimg store SUBCOMMAND: the chunk store (include/asr_store.h, SPEC.md section 19): init, list,
 * prune, gc and verify. Snapshots are written by backup -o STORE and import, and read by
 * restore, verify, info, mount and export as STORE::HOST/TIME. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "asr_store.h"
#include "help.h"
#include "image_ref.h"
#include "json.h"
#include "util.h"

struct store_args {
    const char *url;
    const char *host;
    const char *key_file; /* init: where the new key goes */
    struct asr_store_keep keep;
    bool json, dry_run, read_data;
};

/* The options every store subcommand shares, and the keep rules of prune. */
static int parse(int argc, char **argv, const char *cmd, struct store_args *a)
{
    *a = (struct store_args){0};
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    const char *v;
    for (int opt; (opt = cli_args_next(&args, &v));) {
        unsigned long n = 0;
        unsigned *rule = opt == OPT_KEEP_LAST      ? &a->keep.last
                         : opt == OPT_KEEP_DAILY   ? &a->keep.daily
                         : opt == OPT_KEEP_WEEKLY  ? &a->keep.weekly
                         : opt == OPT_KEEP_MONTHLY ? &a->keep.monthly
                                                   : NULL;
        if (rule) {
            if (!cli_parse_uint(v, 1000000, &n))
                return cli_error("%s: %s: a number", cmd, v), EXIT_USAGE;
            *rule = (unsigned)n;
            continue;
        }
        switch (opt) {
        case OPT_JSON: a->json = true; break;
        case OPT_HOST: a->host = v; break;
        case OPT_DRY_RUN: a->dry_run = true; break;
        case OPT_READ_DATA: a->read_data = true; break;
        case OPT_STORE_KEY:
            a->key_file = v;
            setenv("ASRIMG_STORE_KEY_FILE", v, 1);
            break;
        case OPT_ENDPOINT: setenv("AWS_ENDPOINT_URL", v, 1); break;
        case ARG_WORD:
            if (a->url)
                return cli_error("%s: one store at a time", cmd), EXIT_USAGE;
            a->url = v;
            break;
        case ARG_HELP: return ARG_HELP;
        default: return EXIT_USAGE;
        }
    }
    if (!a->url)
        return cli_error("%s: no store given (see 'asrimg help %s')", cmd, cmd), EXIT_USAGE;
    if (!strcmp(cmd, "store prune") && !a->keep.last && !a->keep.daily && !a->keep.weekly && !a->keep.monthly)
        return cli_error("store prune: no --keep-* rule given: it would remove every snapshot"), EXIT_USAGE;
    return EXIT_OK;
}

/* The arguments parsed and the store opened: *s NULL (and the exit code returned) when there is
 * nothing more to do (--help, a usage error, a store that does not open). */
static int begin(int argc, char **argv, const char *cmd, struct store_args *a, struct asr_store **s)
{
    *s = NULL;
    int rc = parse(argc, argv, cmd, a);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    struct asr_error err = {0};
    if (asr_store_open(a->url, NULL, s, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Closes the store a subcommand opened with begin(), rc what its call on the store returned: the
 * exit code, with the call's error said if it failed. */
static int end(struct asr_store *s, int rc, const struct asr_error *err)
{
    asr_store_close(s);
    if (rc == ASR_OK)
        return EXIT_OK;
    cli_error("%s", err->msg);
    return EXIT_FAIL;
}

/* A subcommand's --json report: one object on stdout, closed by report_end. */
static void report_begin(struct json *j)
{
    json_begin(j, stdout);
    json_obj(j, NULL);
}

static void report_end(struct json *j)
{
    json_end_obj(j);
    json_finish(j);
}

static int store_init(int argc, char **argv)
{
    struct store_args a;
    int rc = parse(argc, argv, "store init", &a);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    char key[4096];
    struct asr_error err = {0};
    struct asr_store_options opt = {.key_file = a.key_file};
    if (asr_store_init(a.url, &opt, key, sizeof key, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    if (a.json) {
        struct json j;
        report_begin(&j);
        json_str(&j, "store", a.url);
        json_str(&j, "key_file", key);
        report_end(&j);
    } else {
        printf("store %s made; its key is in %s\n", a.url, key);
        printf("Every machine that backs up into it or restores from it needs a copy of that key file (in the\n"
               "same place, or named by ASRIMG_STORE_KEY_FILE or --store-key). Keep one copy away from the store:\n"
               "without the key no snapshot can be read.\n");
    }
    return EXIT_OK;
}

static void time_text(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, len, "?");
}

static int store_list(int argc, char **argv)
{
    struct store_args a;
    struct asr_store *s;
    int rc = begin(argc, argv, "store list", &a, &s);
    if (!s)
        return rc;
    struct asr_store_snapshot *v = NULL;
    size_t n = 0;
    struct asr_error err = {0};
    rc = asr_store_list(s, a.host, true, &v, &n, &err);
    if (rc != ASR_OK)
        return end(s, rc, &err);
    if (a.json) {
        struct json j;
        report_begin(&j);
        json_str(&j, "store", a.url);
        json_arr(&j, "snapshots");
        for (size_t i = 0; i < n; i++) {
            json_obj(&j, NULL);
            json_str(&j, "name", v[i].name);
            json_str(&j, "host", v[i].host);
            json_u64(&j, "time", (uint64_t)v[i].time);
            json_u64(&j, "logical_bytes", v[i].logical);
            json_u64(&j, "stored_bytes", v[i].stored);
            json_u64(&j, "unique_bytes", v[i].unique);
            json_u64(&j, "chunks", v[i].chunks);
            json_end_obj(&j);
        }
        json_end_arr(&j);
        report_end(&j);
    } else if (!n) {
        printf("%s: no snapshot%s%s\n", a.url, a.host ? " of " : "", a.host ? a.host : "");
    } else {
        printf("%-40s %-24s %10s %10s %10s\n", "SNAPSHOT", "TIME", "LOGICAL", "STORED", "UNIQUE");
        for (size_t i = 0; i < n; i++) {
            char t[64], b1[32], b2[32], b3[32];
            time_text(v[i].time, t, sizeof t);
            printf("%-40s %-24s %10s %10s %10s\n", v[i].name, t, cli_bytes(v[i].logical, b1, sizeof b1),
                   cli_bytes(v[i].stored, b2, sizeof b2), cli_bytes(v[i].unique, b3, sizeof b3));
        }
    }
    free(v);
    return end(s, ASR_OK, NULL);
}

static int store_prune(int argc, char **argv)
{
    struct store_args a;
    struct asr_store *s;
    int rc = begin(argc, argv, "store prune", &a, &s);
    if (!s)
        return rc;
    struct asr_store_prune_report rep = {0};
    struct asr_error err = {0};
    rc = end(s, asr_store_prune(s, a.host, &a.keep, a.dry_run, &rep, &err), &err);
    if (rc != EXIT_OK)
        return rc;
    if (a.json) {
        struct json j;
        report_begin(&j);
        json_u64(&j, "kept", rep.kept);
        json_u64(&j, "removed", rep.removed);
        json_bool(&j, "dry_run", a.dry_run);
        report_end(&j);
    } else {
        printf("store prune: %zu snapshot%s kept, %zu %s%s\n", rep.kept, rep.kept == 1 ? "" : "s", rep.removed,
               a.dry_run ? "would be removed" : "removed", a.dry_run ? "" : " (store gc frees their chunks)");
    }
    return EXIT_OK;
}

static int store_gc(int argc, char **argv)
{
    struct store_args a;
    struct asr_store *s;
    int rc = begin(argc, argv, "store gc", &a, &s);
    if (!s)
        return rc;
    struct asr_store_gc_report rep = {0};
    struct asr_error err = {0};
    rc = end(s, asr_store_gc(s, &rep, &err), &err);
    if (rc != EXIT_OK)
        return rc;
    if (a.json) {
        struct json j;
        report_begin(&j);
        json_u64(&j, "packs_deleted", rep.packs_deleted);
        json_u64(&j, "bytes_deleted", rep.bytes_deleted);
        json_u64(&j, "packs_condemned", rep.packs_condemned);
        json_u64(&j, "packs_waiting", rep.packs_waiting);
        json_u64(&j, "sessions_running", rep.sessions_running);
        json_u64(&j, "sessions_expired", rep.sessions_expired);
        json_u64(&j, "temporaries_removed", rep.temporaries_removed);
        report_end(&j);
    } else {
        char b[32];
        printf("store gc: %llu pack%s deleted (%s), %llu condemned", (unsigned long long)rep.packs_deleted,
               rep.packs_deleted == 1 ? "" : "s", cli_bytes(rep.bytes_deleted, b, sizeof b),
               (unsigned long long)rep.packs_condemned);
        if (rep.packs_waiting)
            printf(", %llu waiting for %llu running backup%s to end", (unsigned long long)rep.packs_waiting,
                   (unsigned long long)rep.sessions_running, rep.sessions_running == 1 ? "" : "s");
        if (rep.temporaries_removed)
            printf(", %llu unfinished file%s of crashed backups removed", (unsigned long long)rep.temporaries_removed,
                   rep.temporaries_removed == 1 ? "" : "s");
        printf("\n");
        if (rep.packs_condemned)
            printf("store gc: condemned packs are deleted by the next gc once the backups running now have ended\n");
    }
    return EXIT_OK;
}

struct problems {
    struct json *j;
    uint64_t n;
};

static void on_problem(const char *what, const struct asr_store_id *id, const char *snapshots, void *ctx)
{
    struct problems *p = ctx;
    char hex[2 * ASR_STORE_ID_SIZE + 1];
    for (unsigned i = 0; i < ASR_STORE_ID_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", id->b[i]);
    p->n++;
    if (p->j) {
        json_obj(p->j, NULL);
        json_str(p->j, "problem", what);
        json_str(p->j, "chunk", hex);
        json_str(p->j, "snapshots", snapshots);
        json_end_obj(p->j);
    } else {
        fprintf(stderr, "asrimg: error: chunk %s: %s; used by: %s\n", hex, what, snapshots);
    }
}

static int store_verify(int argc, char **argv)
{
    struct store_args a;
    struct asr_store *s;
    int rc = begin(argc, argv, "store verify", &a, &s);
    if (!s)
        return rc;
    struct json j;
    struct problems p = {a.json ? &j : NULL, 0};
    if (a.json) {
        report_begin(&j);
        json_str(&j, "store", a.url);
        json_arr(&j, "problems");
    }
    struct asr_store_verify_report rep = {0};
    struct asr_error err = {0};
    rc = asr_store_verify(s, a.read_data, on_problem, &p, &rep, &err);
    asr_store_close(s);
    if (a.json) {
        json_end_arr(&j);
        json_bool(&j, "ok", rc == ASR_OK);
        if (rc != ASR_OK && !p.n)
            json_str(&j, "error", err.msg);
        json_u64(&j, "snapshots", rep.snapshots);
        json_u64(&j, "chunks", rep.chunks);
        json_u64(&j, "packs", rep.packs);
        json_u64(&j, "bytes_read", rep.bytes_read);
        json_u64(&j, "damaged", rep.damaged);
        json_u64(&j, "missing", rep.missing);
        report_end(&j);
    } else if (rc == ASR_OK) {
        char b[32];
        printf("%s: OK: %llu snapshots, %llu chunks in %llu packs%s%s\n", a.url, (unsigned long long)rep.snapshots,
               (unsigned long long)rep.chunks, (unsigned long long)rep.packs, a.read_data ? ", read and checked: " : "",
               a.read_data ? cli_bytes(rep.bytes_read, b, sizeof b) : "");
    } else if (!p.n) {
        cli_error("%s", err.msg);
    } else {
        cli_error("%s: %llu damaged and %llu missing chunks", a.url, (unsigned long long)rep.damaged,
                  (unsigned long long)rep.missing);
    }
    return rc == ASR_OK ? EXIT_OK : EXIT_FAIL;
}

int cmd_store(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {
        {"init", store_init}, {"list", store_list}, {"prune", store_prune}, {"gc", store_gc}, {"verify", store_verify},
    };
    if (argc < 2) {
        cli_error("store: no subcommand given: init, list, prune, gc or verify (see 'asrimg help store')");
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cli_help_group(stdout, "store"), EXIT_OK;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) {
            static char name[32];
            snprintf(name, sizeof name, "store %s", subs[i].name);
            argv[1] = name;
            return subs[i].fn(argc - 1, argv + 1);
        }
    cli_error("store: unknown subcommand '%s' (see 'asrimg help store')", argv[1]);
    return EXIT_USAGE;
}
