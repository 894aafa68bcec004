/* asrimg export STORE::SNAPSHOT -o FILE and asrimg import FILE STORE: a snapshot becomes a
 * self-contained image file (to carry on a recovery drive, or to hand to someone), and an image
 * file becomes a snapshot whose chunks the store keeps once. Both copy the layout and every
 * volume's extents (image_copy.c), checking each volume's content hash on the way. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "asr_store.h"
#include "image_copy.h"
#include "image_ref.h"
#include "json.h"
#include "progress.h"
#include "util.h"

struct move_args {
    const char *from, *to, *host;
    bool json, force;
};

static int parse(int argc, char **argv, const char *cmd, struct move_args *a)
{
    *a = (struct move_args){0};
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    const char *v;
    for (int opt; (opt = cli_args_next(&args, &v));) {
        switch (opt) {
        case OPT_JSON: a->json = true; break;
        case OPT_FORCE: a->force = true; break;
        case OPT_OUTPUT: a->to = v; break;
        case OPT_HOST: a->host = v; break;
        case OPT_STORE_KEY: setenv("ASRIMG_STORE_KEY_FILE", v, 1); break;
        case OPT_ENDPOINT: setenv("AWS_ENDPOINT_URL", v, 1); break;
        case ARG_WORD:
            if (!a->from)
                a->from = v;
            else if (!a->to)
                a->to = v;
            else
                return cli_error("%s: too many arguments (see 'asrimg help %s')", cmd, cmd), EXIT_USAGE;
            break;
        case ARG_HELP: return ARG_HELP;
        default: return EXIT_USAGE;
        }
    }
    if (!a->from || !a->to)
        return cli_error("%s: a source and a destination are needed (see 'asrimg help %s')", cmd, cmd), EXIT_USAGE;
    return EXIT_OK;
}

/* ---- export: a chunk of the snapshot, its record copied into the image file ------------------ */

/* The snapshot's record as it is: the file keeps the snapshot's hash seed, so its content hash
 * holds, and the chunk is not compressed again (export ran 3x faster on the bench disk). */
static int append_record(struct asr_writer *w, const void *content, uint32_t len, const struct asr_chunk *record,
                         uint64_t *chunk_id, void *ctx, struct asr_error *err)
{
    (void)content, (void)len, (void)ctx;
    return asr_writer_append_chunk(w, record, chunk_id, err);
}

static void report(const struct move_args *a, const char *what, const char *from, const char *to,
                   const struct cli_copy_stats *st, uint64_t bytes)
{
    if (a->json) {
        struct json j;
        json_begin(&j, stdout);
        json_obj(&j, NULL);
        json_str(&j, "from", from);
        json_str(&j, "to", to);
        json_u64(&j, "volumes", st->volumes);
        json_u64(&j, "chunks", st->chunks);
        json_u64(&j, "data_bytes", st->data_bytes);
        json_u64(&j, "written_bytes", bytes);
        json_end_obj(&j);
        json_finish(&j);
        return;
    }
    char b1[32], b2[32];
    fprintf(stderr, "%s: %s -> %s: %llu volumes, %s of data, %s written\n", what, from, to,
            (unsigned long long)st->volumes, cli_bytes(st->data_bytes, b1, sizeof b1), cli_bytes(bytes, b2, sizeof b2));
}

int cmd_export(int argc, char **argv)
{
    struct move_args a;
    int rc = parse(argc, argv, "export", &a);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    if (!asr_store_is_ref(a.from))
        return cli_error("export: %s is not STORE::SNAPSHOT", a.from), EXIT_USAGE;
    struct cli_image_ref im;
    struct asr_error err = {0};
    if (cli_image_ref_open(a.from, &im, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    const struct asr_image_info *info = asr_reader_info(im.r);
    /* The snapshot's seed and time: the file's volume content hashes are then the snapshot's. */
    struct asr_writer_options wo = {.max_chunk_size = info->max_chunk_size, .overwrite = a.force,
                                    .fixed_identity = true, .hash_seed = info->hash_seed,
                                    .created_unix = info->created_unix};
    FILE *rnd = fopen("/dev/urandom", "rb");
    bool have_uuid = rnd && fread(wo.uuid, 1, sizeof wo.uuid, rnd) == sizeof wo.uuid;
    if (rnd)
        fclose(rnd);
    struct asr_writer *w = NULL;
    struct cli_copy_stats st = {0};
    struct progress pr;
    progress_init(&pr, "export", a.json);
    if (!have_uuid)
        rc = asr_fail_public(&err, ASR_E_IO, "export: cannot read /dev/urandom for the image's identity");
    else if ((rc = asr_writer_create(a.to, &wo, &w, &err)) == ASR_OK &&
             (rc = cli_image_copy(im.r, w, append_record, NULL, progress_update, &pr, &st, &err)) == ASR_OK)
        rc = asr_writer_finish(w, &err);
    progress_done(&pr);
    uint64_t bytes = w ? asr_writer_image_bytes(w) : 0;
    asr_writer_free(w);
    if (rc == ASR_OK)
        report(&a, "export", asr_store_ref_name(im.ref), a.to, &st, bytes);
    else
        cli_error("export: %s", err.msg);
    cli_image_ref_close(&im);
    return rc == ASR_OK ? EXIT_OK : EXIT_FAIL;
}

/* ---- import: a chunk of the file, into the store unless it is there ---------------------------- */

struct import_ctx {
    struct asr_store *s;
    struct asr_store_session *ss;
    uint64_t seed;
};

/* The file's record, its stored bytes as they are (not compressed again), with its content hash
 * under the store's seed instead of the file's. */
static int append_to_store(struct asr_writer *w, const void *content, uint32_t len, const struct asr_chunk *record,
                           uint64_t *chunk_id, void *ctx, struct asr_error *err)
{
    struct import_ctx *x = ctx;
    struct asr_store_id id;
    asr_store_chunk_id(x->s, content, len, &id);
    uint32_t have_len = 0, stored_len = 0;
    struct asr_chunk c = *record;
    c.content_hash = asr_content_hash(x->seed, content, len);
    if (asr_store_session_has(x->ss, &id, &have_len, &stored_len) && have_len == len) {
        c.stored_len = stored_len;
    } else {
        int rc = asr_store_session_put(x->ss, &id, &c, err);
        if (rc)
            return rc;
    }
    return asr_writer_append_external(w, id.b, &c, chunk_id, err);
}

static int import_into(struct move_args *a, struct asr_reader *r, struct import_ctx *x, char *name, size_t name_len,
                       struct cli_copy_stats *st, uint64_t *bytes, struct asr_error *err)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096], manifest[4200];
    snprintf(dir, sizeof dir, "%s/asrimg-import.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return asr_fail_public(err, ASR_E_IO, "cannot make a temporary directory: %s", strerror(errno));
    snprintf(manifest, sizeof manifest, "%s/snapshot.asrimg", dir);
    const struct asr_image_info *info = asr_reader_info(r);
    const char *host = a->host ? a->host : asr_reader_hostname(r);
    struct asr_writer_options wo = {.max_chunk_size = info->max_chunk_size, .external_chunks = true,
                                    .hash_seed = asr_store_hash_seed(x->s)};
    struct asr_writer *w = NULL;
    struct progress pr;
    progress_init(&pr, "import", a->json);
    int rc = asr_store_session_begin(x->s, host ? host : "unknown", &x->ss, err);
    if (rc == ASR_OK && (rc = asr_writer_create(manifest, &wo, &w, err)) == ASR_OK &&
        (rc = cli_image_copy(r, w, append_to_store, x, progress_update, &pr, st, err)) == ASR_OK &&
        (rc = asr_writer_finish(w, err)) == ASR_OK)
        rc = asr_store_session_commit(x->ss, manifest, name, name_len, err);
    progress_done(&pr);
    if (w)
        *bytes = asr_writer_image_bytes(w);
    asr_writer_free(w);
    asr_store_session_free(x->ss);
    unlink(manifest);
    rmdir(dir);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    struct move_args a;
    int rc = parse(argc, argv, "import", &a);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    struct asr_error err = {0};
    struct asr_reader *r = NULL;
    struct import_ctx x = {0};
    char name[1024];
    struct cli_copy_stats st = {0};
    uint64_t bytes = 0;
    if ((rc = asr_reader_open(a.from, &r, &err)) == ASR_OK && (rc = asr_store_open(a.to, NULL, &x.s, &err)) == ASR_OK) {
        x.seed = asr_store_hash_seed(x.s);
        rc = import_into(&a, r, &x, name, sizeof name, &st, &bytes, &err);
    }
    if (rc == ASR_OK) {
        char to[1400];
        snprintf(to, sizeof to, "%s::%s", a.to, name);
        report(&a, "import", a.from, to, &st, bytes);
    } else {
        cli_error("import: %s", err.msg);
    }
    asr_store_close(x.s);
    asr_reader_free(r);
    return rc == ASR_OK ? EXIT_OK : EXIT_FAIL;
}
