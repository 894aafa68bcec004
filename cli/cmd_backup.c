/* asrimg backup: images the selected volumes of one or more disks, with their whole layout, into
 * an .asrimg (a file, a split set, or standard output). Shows which volumes are taken and why,
 * a progress line on a terminal, and a summary (text or --json). Warns of volumes mounted
 * read-write, or with --freeze freezes them while they are read and thaws them on every way out. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int interrupted;
/* The filesystems --freeze holds frozen, for the signal handlers to thaw. */
static struct asr_freezer *_Atomic frozen;

/* SIGINT, SIGTERM (and SIGTSTP with --freeze): thaw at once, whatever the backup is blocked on,
 * then stop as usual. */
static void on_signal(int sig)
{
    (void)sig;
    asr_thaw_from_signal(atomic_load(&frozen));
    interrupted = 1;
}

/* Every other signal that would end the process (a crash, SIGHUP, ...): thaw, then end as it
 * would have. A fault repeats once the handler returns; a signal sent with kill() or raise()
 * does not, so it is raised again. */
static const int fatal_signals[] = {SIGHUP,  SIGQUIT,  SIGILL,  SIGTRAP,   SIGABRT, SIGBUS,    SIGFPE,
                                    SIGUSR1, SIGSEGV,  SIGUSR2, SIGPIPE,   SIGALRM, SIGSTKFLT, SIGXCPU,
                                    SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,    SIGPWR,  SIGSYS};
static struct sigaction fatal_old[64 + 1];

static void on_fatal(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    asr_thaw_from_signal(atomic_load(&frozen));
    if (sig > 0 && sig < (int)(sizeof fatal_old / sizeof fatal_old[0]))
        sigaction(sig, &fatal_old[sig], NULL);
    if (info->si_code <= 0)
        raise(sig);
}

/* A signal that is ignored stays ignored (SIGPIPE and SIGXFSZ, see main.c; SIGHUP under nohup):
 * it ends nothing, and the filesystems stay frozen through it. */
static void catch_fatal(int sig, const struct sigaction *sa)
{
    if (sigaction(sig, NULL, &fatal_old[sig]) == 0 && fatal_old[sig].sa_handler != SIG_IGN)
        sigaction(sig, sa, NULL);
}

static void catch_fatal_signals(void)
{
    struct sigaction sa = {.sa_sigaction = on_fatal, .sa_flags = SA_SIGINFO};
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        catch_fatal(fatal_signals[i], &sa);
    for (int sig = SIGRTMIN; sig <= SIGRTMAX && sig < (int)(sizeof fatal_old / sizeof fatal_old[0]); sig++)
        catch_fatal(sig, &sa);
}

struct backup_args {
    const char *paths[ASR_MAX_DISKS];
    uint32_t ndisks;
    const char *output;
    const char *selection;
    uint64_t split;
    bool force, json, ignore_read_errors, freeze;
    struct asr_backup_options opt;
    char **warnings; /* for the --json summary, without the "asrimg: warning: " */
    size_t nwarnings;
};

static const char usage_text[] =
    "usage: asrimg backup DISK... -o IMAGE [--volumes critical|all|LIST] [--level N] [--threads N]\n"
    "                     [--split SIZE|fat32] [--force] [--ignore-read-errors] [--freeze] [--json]";

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
        else if (!strcmp(o, "--freeze"))
            a->freeze = true;
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
            return cli_error("backup: unknown or incomplete option %s (see 'asrimg help')", o), EXIT_USAGE;
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

enum { P_NUM, P_FS, P_CAPTURE, P_BYTES, P_REASON, P_COLS };

static void plan_cells(const struct asr_volume_info *v, char buf[2][32], const char *cells[P_COLS])
{
    snprintf(buf[0], sizeof buf[0], "-"); /* a disk area has no partition number */
    if (v->kind == ASR_VOLUME_PARTITION)
        snprintf(buf[0], sizeof buf[0], "%u", v->partition_number);
    cells[P_NUM] = buf[0];
    cells[P_FS] = v->map.fs_type[0] ? v->map.fs_type : "-";
    cells[P_CAPTURE] = cli_capture_name(v->capture);
    cells[P_BYTES] = cli_bytes(asr_volume_capture_bytes(v), buf[1], sizeof buf[1]);
    cells[P_REASON] = v->reason;
}

/* The plan, on stderr: every volume of every disk, taken or not, and why (a table without a
 * header line, its columns sized as layout's are). */
static void show_plan(const struct cli_disks *s)
{
    static const char *const headers[P_COLS] = {"#", "fs", "capture", "bytes", "reason"};
    char buf[2][32];
    const char *cells[P_COLS];
    for (uint32_t i = 0; i < s->n; i++) {
        fprintf(stderr, "disk %u: %s\n", i, asr_disk_path(s->disk[i]));
        struct table t;
        table_init(&t, stderr, "  ", "lllrl", headers);
        for (size_t k = 0; k < s->count[i]; k++) {
            plan_cells(&s->vols[i][k], buf, cells);
            table_measure(&t, cells);
        }
        for (size_t k = 0; k < s->count[i]; k++) {
            const struct asr_volume_info *v = &s->vols[i][k];
            plan_cells(v, buf, cells);
            table_row(&t, cells);
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

/* A warning for the --json summary. */
static void keep_warning(struct backup_args *a, const char *msg)
{
    char **grown = realloc(a->warnings, (a->nwarnings + 1) * sizeof *grown);
    if (!grown)
        return;
    a->warnings = grown;
    if ((a->warnings[a->nwarnings] = strdup(msg)))
        a->nwarnings++;
}

/* A warning on stderr (unless quiet) and in the --json summary. */
static void warn(struct backup_args *a, bool quiet, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void warn(struct backup_args *a, bool quiet, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!quiet)
        fprintf(stderr, "asrimg: warning: %s\n", msg);
    keep_warning(a, msg);
}

/* Damage the used maps of the imaged volumes worked around (clusters the directories reference
 * that the allocation map calls free, captured too): the plan showed it, and the summary says it
 * again, on stderr and in the --json warnings, since the image holds the damage as it was. */
static void report_damage(struct backup_args *a, const struct cli_disks *s, bool quiet)
{
    for (uint32_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->count[i]; k++) {
            const struct asr_volume_info *v = &s->vols[i][k];
            if (v->capture == ASR_CAPTURE_SKIP || !v->map.damaged)
                continue;
            char msg[1024];
            snprintf(msg, sizeof msg, "volume %u (%s): %s", v->partition_number, asr_disk_path(s->disk[i]), v->map.note);
            if (!quiet && !a->json)
                fprintf(stderr, "backup: note: %s\n", msg);
            keep_warning(a, msg);
        }
}

/* Selected volumes mounted read-write: a warning, or with --freeze a note that they will be
 * frozen. Where they are mounted is looked at again when each is frozen: it may change. */
static void check_mounts(struct backup_args *a, const struct cli_disks *s, bool quiet)
{
    for (uint32_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->count[i]; k++) {
            const struct asr_volume_info *v = &s->vols[i][k];
            if (v->capture == ASR_CAPTURE_SKIP)
                continue;
            struct asr_mounts m;
            struct asr_error err = {0};
            if (asr_volume_mounts(s->disk[i], v, &m, &err) != ASR_OK) {
                warn(a, quiet, "volume %u (%s): cannot tell whether it is mounted: %s", v->partition_number,
                     asr_disk_path(s->disk[i]), err.msg);
                continue;
            }
            const struct asr_mount *rw = asr_mounts_writable(&m);
            if (rw && !a->freeze)
                warn(a, quiet,
                     "volume %u (%s) is mounted read-write at %s: the image may be inconsistent; use --freeze or "
                     "unmount it",
                     v->partition_number, asr_disk_path(s->disk[i]), rw->point);
            else if (rw && !quiet)
                fprintf(stderr, "backup: volume %u (%s) is mounted read-write at %s: frozen while it is read\n",
                        v->partition_number, asr_disk_path(s->disk[i]), rw->point);
            asr_mounts_free(&m);
        }
}

/* --freeze, around each volume's reads. */
struct freeze_hooks {
    struct backup_args *a;
    struct cli_disks *disks;
    struct asr_freezer *fz;
};

/* The volume as this command owns it: the engine hands it over read-only, the map is ours. */
static struct asr_volume_info *own_volume(struct cli_disks *s, const struct asr_volume_info *v)
{
    if (v->disk_index >= s->n)
        return NULL;
    for (size_t k = 0; k < s->count[v->disk_index]; k++)
        if (&s->vols[v->disk_index][k] == v)
            return &s->vols[v->disk_index][k];
    return NULL;
}

static int freeze_volume(const struct asr_volume_info *cv, void *ctx, struct asr_error *err)
{
    struct freeze_hooks *h = ctx;
    if (interrupted)
        return asr_fail_public(err, ASR_E_STATE, "interrupted");
    struct asr_volume_info *v = own_volume(h->disks, cv);
    if (!v)
        return asr_fail_public(err, ASR_E_ARG, "freeze: a volume that is not one of this backup's");
    struct asr_disk *d = h->disks->disk[v->disk_index];
    struct asr_mounts m;
    int rc = asr_volume_mounts(d, v, &m, err);
    if (rc == ASR_OK)
        rc = asr_freeze(h->fz, &m, err);
    asr_mounts_free(&m);
    /* The map read before the freeze misses what was allocated since: read it from the frozen state. */
    if (rc == ASR_OK && asr_frozen_count(h->fz) && (rc = asr_volume_remap(d, v, false, err)) != ASR_OK) {
        struct asr_error ignored;
        asr_thaw(h->fz, &ignored); /* after_volume runs only when this succeeds */
    }
    /* A signal thaws in the middle of this, and the map may then fail to read (ext's journal to
     * replay again): the signal is the reason to give. */
    if (rc != ASR_OK && interrupted)
        return asr_fail_public(err, ASR_E_STATE, "interrupted");
    if (rc != ASR_OK) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        asr_fail_public(err, (enum asr_status)rc, "volume %u (%s): %s", v->partition_number, asr_disk_path(d), msg);
    }
    return rc;
}

/* Before anything is recorded: a volume captured whole only because it is mounted read-write (an
 * ext journal the map cannot replay makes its bitmaps untrustworthy) is frozen a moment, which
 * leaves it clean, to read its used map. It is then captured by that map, frozen again and mapped
 * again when it is read: a frozen root filesystem is not read whole. Freezing fails here as it would there. */
static int recapture_frozen(struct freeze_hooks *h, struct asr_error *err)
{
    struct cli_disks *s = h->disks;
    for (uint32_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->count[i]; k++) {
            struct asr_volume_info *v = &s->vols[i][k];
            if (v->capture != ASR_CAPTURE_FULL)
                continue;
            struct asr_mounts m;
            int rc = asr_volume_mounts(s->disk[i], v, &m, err);
            if (rc == ASR_OK && asr_mounts_writable(&m) && (rc = asr_freeze(h->fz, &m, err)) == ASR_OK) {
                rc = asr_volume_remap(s->disk[i], v, true, err);
                struct asr_error terr = {0};
                if (asr_thaw(h->fz, &terr) != ASR_OK)
                    warn(h->a, false, "volume %u (%s): %s", v->partition_number, asr_disk_path(s->disk[i]), terr.msg);
            }
            asr_mounts_free(&m);
            if (interrupted)
                return asr_fail_public(err, ASR_E_STATE, "interrupted");
            if (rc != ASR_OK) {
                char msg[sizeof err->msg];
                memcpy(msg, err->msg, sizeof msg);
                return asr_fail_public(err, (enum asr_status)rc, "volume %u (%s): %s", v->partition_number,
                                       asr_disk_path(s->disk[i]), msg);
            }
        }
    return ASR_OK;
}

static void thaw_volume(const struct asr_volume_info *v, void *ctx)
{
    struct freeze_hooks *h = ctx;
    struct asr_error err = {0};
    /* Always on stderr, even when it carries the JSON summary: the machine's state comes first. */
    if (asr_thaw(h->fz, &err) != ASR_OK)
        warn(h->a, false, "volume %u (%s): %s", v->partition_number, asr_disk_path(h->disks->disk[v->disk_index]),
             err.msg);
}

/* The summary. With the image on standard output, --json goes to stderr so the two never mix. */
/* --json: every volume of every disk and how the backup took it (skip included), with the reason
 * and the note a whole capture or a damaged map comes with. */
static void json_volumes(struct json *j, const struct cli_disks *s)
{
    json_arr(j, "volumes");
    for (uint32_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->count[i]; k++) {
            const struct asr_volume_info *v = &s->vols[i][k];
            json_obj(j, NULL);
            json_u64(j, "disk", i);
            json_u64(j, "partition", v->partition_number);
            json_str(j, "kind", v->kind == ASR_VOLUME_AREA ? "area" : "partition");
            json_str(j, "fs", v->map.fs_type);
            json_str(j, "capture", cli_capture_name(v->capture));
            json_u64(j, "capture_bytes", asr_volume_capture_bytes(v));
            json_bool(j, "critical", v->critical);
            json_str(j, "reason", v->reason);
            json_str(j, "note", v->warning);
            json_end_obj(j);
        }
    json_end_arr(j);
}

static void report(const struct backup_args *a, const struct cli_disks *disks, const struct asr_backup_stats *st,
                   uint64_t image_bytes)
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
        json_dbl(&j, "chunk_seconds", st->chunk_seconds);
        json_dbl(&j, "scan_cpu_seconds", st->scan_seconds);
        json_dbl(&j, "hash_cpu_seconds", st->hash_seconds);
        json_dbl(&j, "compress_cpu_seconds", st->compress_seconds);
        json_dbl(&j, "write_seconds", st->write_seconds);
        json_dbl(&j, "chunk_mb_per_s", st->chunk_seconds > 0 ? st->read_bytes / st->chunk_seconds / 1e6 : 0);
        json_dbl(&j, "hash_mb_per_s_per_core",
                 st->hash_seconds > 0 ? (st->new_bytes + st->dedup_bytes) / st->hash_seconds / 1e6 : 0);
        json_dbl(&j, "compress_mb_per_s_per_core",
                 st->compress_seconds > 0 ? st->new_bytes / st->compress_seconds / 1e6 : 0);
        json_end_obj(&j);
        json_u64(&j, "dedup_index_bytes", st->dedup_index_bytes);
        json_volumes(&j, disks);
        json_arr(&j, "warnings");
        for (size_t w = 0; w < a->nwarnings; w++)
            json_str(&j, NULL, a->warnings[w]);
        json_end_arr(&j);
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

/* The writer removes or replaces files of the image's names (a leftover IMAGE.partial, an older
 * image's parts): never one of the sources. */
static int spare_sources(const char *path, void *ctx, struct asr_error *err)
{
    const struct cli_disks *s = ctx;
    return asr_check_replaced_file(path, s->disk, s->n, err);
}

static int create_writer(const struct backup_args *a, struct cli_disks *disks, struct asr_writer **w,
                         struct asr_error *err)
{
    struct asr_writer_options wo = {
        .split_size = a->split,
        .overwrite = a->force,
        .may_replace = spare_sources,
        .may_replace_ctx = disks,
        .max_chunk_size = asr_backup_max_chunk(a->opt.avg_chunk),
    };
    if (!strcmp(a->output, "-")) {
        if (isatty(STDOUT_FILENO))
            return asr_fail_public(err, ASR_E_ARG, "refusing to write an image to a terminal"), EXIT_USAGE;
        return asr_writer_create_fd(STDOUT_FILENO, &wo, w, err) ? EXIT_FAIL : EXIT_OK;
    }
    return asr_writer_create(a->output, &wo, w, err) ? EXIT_FAIL : EXIT_OK;
}

/* --freeze: the hooks around each volume, and the signal handlers that thaw. */
static int setup_freeze(struct freeze_hooks *h, struct asr_error *err)
{
    if (asr_freezer_new(&h->fz, err) != ASR_OK)
        return EXIT_FAIL;
    h->a->opt.before_volume = freeze_volume;
    h->a->opt.after_volume = thaw_volume;
    h->a->opt.hook_ctx = h;
    atomic_store(&frozen, h->fz);
    catch_fatal_signals();
    /* A stopped process holding a filesystem frozen hangs everything that writes to it: Ctrl-Z
     * stops the backup instead, and a backup in the background writes to its terminal. */
    struct sigaction stop = {.sa_handler = on_signal}, ign = {.sa_handler = SIG_IGN};
    sigaction(SIGTSTP, &stop, NULL);
    sigaction(SIGTTOU, &ign, NULL);
    sigaction(SIGTTIN, &ign, NULL);
    return EXIT_OK;
}

static int backup(struct backup_args *a, struct cli_disks *disks, struct freeze_hooks *hooks)
{
    struct asr_error err = {0};
    bool to_stdout = !strcmp(a->output, "-");
    if (cli_disks_open(disks, a->paths, a->ndisks, a->selection, &err) != EXIT_OK ||
        asr_check_image_placement(to_stdout ? NULL : a->output, STDOUT_FILENO, disks->disk, disks->n, &err)) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (a->freeze && (setup_freeze(hooks, &err) != EXIT_OK || recapture_frozen(hooks, &err) != ASR_OK)) {
        cli_error("backup: %s", err.msg);
        return EXIT_FAIL;
    }
    bool quiet = a->json && to_stdout; /* stderr carries the JSON summary only */
    if (!quiet)
        show_plan(disks);
    check_mounts(a, disks, quiet);
    struct asr_writer *w = NULL;
    int rc = create_writer(a, disks, &w, &err);
    if (rc != EXIT_OK) {
        cli_error("%s", err.msg);
        return rc;
    }
    struct meter m = {0};
    progress_init(&m.p, "backup", quiet);
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
    report_damage(a, disks, quiet);
    report(a, disks, &st, image_bytes);
    return EXIT_OK;
}

int cmd_backup(int argc, char **argv)
{
    struct backup_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc;
    struct cli_disks disks = {0};
    struct freeze_hooks hooks = {&a, &disks, NULL};
    rc = backup(&a, &disks, &hooks);
    /* Every path out of backup() has thawed (after_volume, or the hook's own failure path); the
     * handlers forget the freezer before it goes. */
    atomic_store(&frozen, NULL);
    asr_freezer_free(hooks.fz);
    cli_disks_close(&disks);
    for (size_t i = 0; i < a.nwarnings; i++)
        free(a.warnings[i]);
    free(a.warnings);
    return rc;
}
