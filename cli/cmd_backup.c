/* asrimg backup: images the selected volumes of one or more disks, with their whole layout, into
 * an .asrimg (a file, a split set, or standard output). Shows which volumes are taken and why,
 * a progress line on a terminal, and a summary (text or --json). */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct backup_args {
    const char *paths[ASR_MAX_DISKS];
    uint32_t ndisks;
    const char *output;
    const char *selection;
    uint64_t split;
    bool force, json, ignore_read_errors;
    struct asr_backup_options opt;
};

static const char usage_text[] =
    "usage: asrimg backup DISK... -o IMAGE [--volumes critical|all|LIST] [--level N] [--threads N]\n"
    "                     [--split SIZE|fat32] [--force] [--ignore-read-errors] [--json]";

static int parse_args(int argc, char **argv, struct backup_args *a)
{
    *a = (struct backup_args){.selection = "critical", .opt.level = 3};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        bool has_value = i + 1 < argc;
        unsigned long v;
        if (!strcmp(o, "--json"))
            a->json = true;
        else if (!strcmp(o, "--force"))
            a->force = true;
        else if (!strcmp(o, "--ignore-read-errors"))
            a->opt.ignore_read_errors = true;
        else if (!strcmp(o, "-o") && has_value)
            a->output = argv[++i];
        else if (!strcmp(o, "--volumes") && has_value)
            a->selection = argv[++i];
        else if (!strcmp(o, "--level") && has_value) {
            if (!cli_parse_uint(argv[++i], 19, &v))
                return cli_error("backup: --level %s: a number from 0 (store) to 19", argv[i]), EXIT_USAGE;
            a->opt.level = (int)v;
        } else if (!strcmp(o, "--threads") && has_value) {
            if (!cli_parse_uint(argv[++i], 256, &v) || v == 0)
                return cli_error("backup: --threads %s: a number from 1 to 256", argv[i]), EXIT_USAGE;
            a->opt.threads = (unsigned)v;
        } else if (!strcmp(o, "--avg-chunk") && has_value) {
            uint64_t size;
            if (!cli_parse_size(argv[++i], &size) || size > UINT32_MAX)
                return cli_error("backup: --avg-chunk %s: not a size", argv[i]), EXIT_USAGE;
            a->opt.avg_chunk = (uint32_t)size;
        } else if (!strcmp(o, "--split") && has_value) {
            if (!cli_parse_size(argv[++i], &a->split) || a->split < ASR_MIN_SPLIT_SIZE)
                return cli_error("backup: --split %s: a size of at least %u bytes (or fat32)", argv[i],
                                 ASR_MIN_SPLIT_SIZE),
                       EXIT_USAGE;
        } else if (o[0] == '-' && o[1])
            return cli_error("backup: unknown option %s\n%s", o, usage_text), EXIT_USAGE;
        else if (a->ndisks < ASR_MAX_DISKS)
            a->paths[a->ndisks++] = o;
        else
            return cli_error("backup: at most %u disks", ASR_MAX_DISKS), EXIT_USAGE;
    }
    if (!a->ndisks || !a->output)
        return cli_error("%s", usage_text), EXIT_USAGE;
    if (!strcmp(a->output, "-") && a->split)
        return cli_error("backup: --split needs a file name, not standard output"), EXIT_USAGE;
    return EXIT_OK;
}

/* The plan, on stderr: every volume of every disk, taken or not, and why. */
static void show_plan(const struct cli_disks *s)
{
    char a[32];
    for (uint32_t i = 0; i < s->n; i++) {
        fprintf(stderr, "disk %u: %s\n", i, asr_disk_path(s->disk[i]));
        for (size_t k = 0; k < s->count[i]; k++) {
            const struct asr_volume_info *v = &s->vols[i][k];
            fprintf(stderr, "  %-3u %-6s %-7s %10s  %s\n", v->partition_number, v->map.fs_type[0] ? v->map.fs_type : "-",
                    cli_capture_name(v->capture), cli_bytes(asr_volume_capture_bytes(v), a, sizeof a), v->reason);
            if (v->capture != ASR_CAPTURE_SKIP && v->warning[0])
                fprintf(stderr, "      note: %s\n", v->warning);
        }
    }
}

struct meter {
    struct progress p;
    uint32_t volume;
    char label[64];
};

static void on_progress(const struct asr_backup_progress *bp, void *ctx)
{
    struct meter *m = ctx;
    if (bp->volume != m->volume) {
        m->volume = bp->volume;
        snprintf(m->label, sizeof m->label, "backup volume %u/%u (%s)", bp->volume, bp->volumes,
                 bp->info && bp->info->map.fs_type[0] ? bp->info->map.fs_type : "raw");
        m->p.label = m->label;
    }
    progress_update(bp->done, bp->total, &m->p);
}

/* The summary. With the image on standard output, --json goes to stderr so the two never mix. */
static void report(const struct backup_args *a, const struct asr_backup_stats *st, uint64_t image_bytes)
{
    double ratio = image_bytes ? (double)st->read_bytes / (double)image_bytes : 0;
    double mbps = st->seconds > 0 ? st->read_bytes / st->seconds / 1e6 : 0;
    if (a->json) {
        struct json j;
        json_begin(&j, strcmp(a->output, "-") ? stdout : stderr);
        json_obj(&j, NULL);
        json_str(&j, "image", a->output);
        json_u64(&j, "image_bytes", image_bytes);
        json_u64(&j, "read_bytes", st->read_bytes);
        json_u64(&j, "stored_bytes", st->stored_bytes);
        json_u64(&j, "new_bytes", st->new_bytes);
        json_u64(&j, "dedup_bytes", st->dedup_bytes);
        json_u64(&j, "zero_bytes", st->zero_bytes);
        json_u64(&j, "unreadable_bytes", st->unreadable_bytes);
        json_u64(&j, "chunks", st->chunks);
        json_u64(&j, "dedup_hits", st->dedup_hits);
        json_dbl(&j, "ratio", ratio);
        json_dbl(&j, "seconds", st->seconds);
        json_dbl(&j, "mb_per_s", mbps);
        json_u64(&j, "threads", st->threads);
        json_u64(&j, "level", (uint64_t)a->opt.level);
        json_bool(&j, "direct_io", st->direct_io);
        json_obj(&j, "stages");
        json_dbl(&j, "read_wait_seconds", st->read_wait_seconds);
        json_dbl(&j, "chunk_hash_seconds", st->chunk_seconds);
        json_dbl(&j, "compress_cpu_seconds", st->compress_seconds);
        json_dbl(&j, "write_seconds", st->write_seconds);
        json_dbl(&j, "chunk_hash_mb_per_s", st->chunk_seconds > 0 ? st->read_bytes / st->chunk_seconds / 1e6 : 0);
        json_dbl(&j, "compress_mb_per_s_per_core",
                 st->compress_seconds > 0 ? st->new_bytes / st->compress_seconds / 1e6 : 0);
        json_end_obj(&j);
        json_u64(&j, "dedup_index_bytes", st->dedup_index_bytes);
        json_end_obj(&j);
        json_finish(&j);
        return;
    }
    char r[32], i[32], d[32], z[32];
    fprintf(stderr, "backup: %s read in %.1f s (%.0f MB/s), image %s (%.2fx), deduplicated %s, zero %s\n",
            cli_bytes(st->read_bytes, r, sizeof r), st->seconds, mbps, cli_bytes(image_bytes, i, sizeof i), ratio,
            cli_bytes(st->dedup_bytes, d, sizeof d), cli_bytes(st->zero_bytes, z, sizeof z));
    if (st->unreadable_bytes)
        fprintf(stderr, "backup: warning: %s could not be read and are recorded as unreadable\n",
                cli_bytes(st->unreadable_bytes, r, sizeof r));
}

static int create_writer(const struct backup_args *a, struct asr_writer **w, struct asr_error *err)
{
    struct asr_writer_options wo = {
        .split_size = a->split,
        .overwrite = a->force,
        .max_chunk_size = asr_backup_max_chunk(a->opt.avg_chunk),
    };
    if (!strcmp(a->output, "-")) {
        if (isatty(STDOUT_FILENO))
            return asr_fail_public(err, ASR_E_ARG, "refusing to write an image to a terminal"), EXIT_USAGE;
        return asr_writer_create_fd(STDOUT_FILENO, &wo, w, err) ? EXIT_FAIL : EXIT_OK;
    }
    return asr_writer_create(a->output, &wo, w, err) ? EXIT_FAIL : EXIT_OK;
}

static int run(struct backup_args *a, struct cli_disks *disks)
{
    struct asr_error err = {0};
    bool to_stdout = !strcmp(a->output, "-");
    if (cli_disks_open(disks, a->paths, a->ndisks, a->selection, &err) != EXIT_OK ||
        asr_check_image_placement(to_stdout ? NULL : a->output, STDOUT_FILENO, disks->disk, disks->n, &err)) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    if (!a->json || !to_stdout)
        show_plan(disks);
    struct asr_writer *w = NULL;
    int rc = create_writer(a, &w, &err);
    if (rc != EXIT_OK) {
        cli_error("%s", err.msg);
        return rc;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct meter m = {0};
    progress_init(&m.p, "backup", a->json && to_stdout);
    a->opt.progress = on_progress;
    a->opt.progress_ctx = &m;
    a->opt.cancel = &interrupted;
    struct asr_backup_source src[ASR_MAX_DISKS];
    for (uint32_t i = 0; i < disks->n; i++)
        src[i] = (struct asr_backup_source){disks->disk[i], disks->vols[i], disks->count[i]};
    struct asr_backup_stats st;
    int brc = asr_backup_run(w, src, disks->n, &a->opt, &st, &err);
    if (brc == ASR_OK)
        brc = asr_writer_finish(w, &err);
    uint64_t image_bytes = asr_writer_image_bytes(w);
    progress_done(&m.p);
    asr_writer_free(w); /* removes the .partial files of an unfinished image */
    if (brc != ASR_OK) {
        cli_error("backup: %s", err.msg);
        return EXIT_FAIL;
    }
    report(a, &st, image_bytes);
    return EXIT_OK;
}

int cmd_backup(int argc, char **argv)
{
    struct backup_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc;
    struct cli_disks disks = {0};
    rc = run(&a, &disks);
    cli_disks_close(&disks);
    return rc;
}
