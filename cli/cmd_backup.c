/* asrimg backup: images the selected volumes of one or more disks, with their whole layout, into
 * an .asrimg (a file, a split set, or standard output). Shows which volumes are taken and why,
 * a progress line on a terminal, and a summary (text or --json). Warns of volumes mounted
 * read-write, or with --freeze has them frozen while they are read (engine/backup/freezing.c). */
#include "cli.h"
#include "table.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "disks.h"
#include "guid.h"
#include "image_ref.h"
#include "json.h"
#include "machine.h"
#include "progress.h"
#include "util.h"

static volatile int interrupted;

/* SIGINT, SIGTERM: stop as usual (with --freeze the engine's handlers thaw first). */
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct backup_args {
    const char *paths[ASR_MAX_DISKS];
    uint32_t ndisks;
    const char *output;
    const char *output_dir;
    const char *host; /* --host: the snapshot's HOST in a store */
    char named[4096]; /* --output-dir: DIR/HOST-YYYYmmdd-HHMMSS.asrimg */
    /* -o STORE: the store, this backup's session, and the snapshot being written locally until
     * the session commits it. */
    struct asr_store *store;
    struct asr_store_session *session;
    char manifest_dir[4096], manifest[4200], snapshot[1400];
    struct asr_store_session_stats store_st;
    /* Into a store: the re-backup hints read from hints_path and recorded anew (NULL: none,
     * --no-hints or no place for them). */
    struct asr_backup_hints *hints;
    char hints_path[4096];
    uint64_t hints_loaded;
    uint64_t stale_hints_removed;
    bool no_hints;
    const char *selection;
    uint64_t split;
    bool force, json, ignore_read_errors, freeze;
    struct asr_backup_options opt;
    struct cli_keys keys;
    char **warnings; /* for the --json summary, without the "asrimg: warning: " */
    size_t nwarnings;
};

static int parse_args(int argc, char **argv, struct backup_args *a)
{
    *a = (struct backup_args){.selection = "critical", .opt.level = 3};
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    const char *o;
    for (int opt; (opt = cli_args_next(&args, &o));) {
        unsigned long v;
        int krc = EXIT_OK;
        if (cli_keys_option(&a->keys, opt, o, &krc)) {
            if (krc != EXIT_OK)
                return krc;
            continue;
        }
        switch (opt) {
        case OPT_JSON: a->json = true; break;
        case OPT_FORCE: a->force = true; break;
        case OPT_FREEZE: a->freeze = true; break;
        case OPT_IGNORE_READ_ERRORS: a->opt.ignore_read_errors = true; break;
        case OPT_OUTPUT: a->output = o; break;
        case OPT_OUTPUT_DIR: a->output_dir = o; break;
        case OPT_STORE_KEY: setenv("ASRIMG_STORE_KEY_FILE", o, 1); break;
        case OPT_HOST: a->host = o; break;
        case OPT_NO_HINTS: a->no_hints = true; break;
        case OPT_NO_PATCHES: a->opt.no_patches = true; break;
        case OPT_ENDPOINT: setenv("AWS_ENDPOINT_URL", o, 1); break;
        case OPT_VOLUMES: a->selection = o; break;
        case OPT_LEVEL:
            if (!cli_parse_uint(o, 19, &v))
                return cli_error("backup: --level %s: a number from 0 (store) to 19", o), EXIT_USAGE;
            a->opt.level = (int)v;
            break;
        case OPT_THREADS:
            if (!cli_parse_uint(o, 256, &v) || v == 0)
                return cli_error("backup: --threads %s: a number from 1 to 256", o), EXIT_USAGE;
            a->opt.threads = (unsigned)v;
            break;
        case OPT_AVG_CHUNK: {
            uint64_t size;
            if (!cli_parse_size(o, &size) || size > UINT32_MAX)
                return cli_error("backup: --avg-chunk %s: not a size", o), EXIT_USAGE;
            a->opt.avg_chunk = (uint32_t)size;
            break;
        }
        case OPT_SPLIT:
            if (!cli_parse_size(o, &a->split) || a->split < ASR_MIN_SPLIT_SIZE)
                return cli_error("backup: --split %s: a size of at least %u bytes (or fat32)", o, ASR_MIN_SPLIT_SIZE),
                       EXIT_USAGE;
            break;
        case ARG_WORD:
            if (a->ndisks == ASR_MAX_DISKS)
                return cli_error("backup: at most %u disks", ASR_MAX_DISKS), EXIT_USAGE;
            a->paths[a->ndisks++] = o;
            break;
        case ARG_HELP: return ARG_HELP;
        default: return EXIT_USAGE;
        }
    }
    if (!a->ndisks)
        return cli_error("backup: no disk given (see 'asrimg backup --help')"), EXIT_USAGE;
    if (a->output && a->output_dir)
        return cli_error("backup: -o and --output-dir exclude each other"), EXIT_USAGE;
    if (a->output_dir && a->force)
        return cli_error("backup: --output-dir never replaces an image: --force does not apply"), EXIT_USAGE;
    if (!a->output && !a->output_dir)
        return cli_error("backup: no image given: -o IMAGE, -o - for standard output, or --output-dir DIR (see "
                         "'asrimg backup --help')"),
               EXIT_USAGE;
    if (a->output_dir && !a->output_dir[0])
        return cli_error("backup: --output-dir: an empty name"), EXIT_USAGE;
    if ((a->no_hints || a->opt.no_patches) && !(a->output && cli_is_store(a->output)))
        return cli_error("backup: --no-hints and --no-patches apply to a backup into a store"), EXIT_USAGE;
    if (a->output && !strcmp(a->output, "-") && a->split)
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

/* The LVs, after the disks: taken through their PVs (their bytes are counted there), so "bytes"
 * is what each adds to its PVs' capture. */
static void show_stacked_plan(const struct asr_machine *m)
{
    static const char *const headers[P_COLS] = {"#", "fs", "capture", "bytes", "reason"};
    const struct asr_stacked_volume *const *sv;
    size_t n = asr_machine_stacked(m, &sv);
    char buf[2][32];
    const char *cells[P_COLS];
    if (n) {
        fprintf(stderr, "logical volumes (taken through their PVs above):\n");
        struct table t;
        table_init(&t, stderr, "  ", "lllrl", headers);
        for (int pass = 0; pass < 2; pass++)
            for (size_t k = 0; k < n; k++) {
                plan_cells(&sv[k]->info, buf, cells);
                cells[P_NUM] = sv[k]->name;
                if (pass == 0) {
                    table_measure(&t, cells);
                    continue;
                }
                table_row(&t, cells);
                if (sv[k]->info.capture != ASR_CAPTURE_SKIP && sv[k]->info.warning[0])
                    fprintf(stderr, "      note: %s\n", sv[k]->info.warning);
            }
    }
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
    show_stacked_plan(s->machine);
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

/* --freeze: a filesystem that could not be thawed. Always on stderr, even when it carries the
 * JSON summary: the machine's state comes first. */
static void freeze_warning(const char *msg, void *ctx)
{
    warn(ctx, false, "%s", msg);
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
    const struct asr_stacked_volume *const *sv;
    size_t n = asr_machine_stacked(s->machine, &sv);
    json_arr(j, "logical_volumes"); /* taken through their PVs: capture_bytes counted there too */
    for (size_t k = 0; k < n; k++) {
        const struct asr_volume_info *v = &sv[k]->info;
        json_obj(j, NULL);
        json_str(j, "name", sv[k]->name);
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
                   uint64_t image_bytes, const struct asr_machine_desc *record)
{
    double ratio = image_bytes ? (double)st->read_bytes / (double)image_bytes : 0;
    double mbps = st->seconds > 0 ? st->read_bytes / st->seconds / 1e6 : 0;
    if (a->json) {
        struct json j;
        json_begin(&j, strcmp(a->output, "-") ? stdout : stderr);
        json_obj(&j, NULL);
        json_str(&j, "image", a->store ? a->snapshot : a->output);
        json_u64(&j, "image_bytes", image_bytes);
        if (a->store) {
            json_obj(&j, "store");
            json_str(&j, "url", asr_store_url(a->store));
            json_str(&j, "snapshot", strstr(a->snapshot, "::") + 2);
            json_u64(&j, "found_bytes", st->store_bytes);
            json_u64(&j, "added_bytes", a->store_st.stored_new);
            json_u64(&j, "added_chunks", a->store_st.chunks_new);
            json_u64(&j, "packs", a->store_st.packs);
            json_u64(&j, "requests", a->store_st.requests);
            json_str(&j, "hints_file", a->hints ? a->hints_path : "");
            json_u64(&j, "stale_hints_removed", a->stale_hints_removed);
            json_u64(&j, "hints_loaded", a->hints_loaded);
            json_u64(&j, "hinted_chunks", st->hinted_chunks);
            json_u64(&j, "hinted_bytes", st->hinted_bytes);
            json_u64(&j, "patched_chunks", st->patched_chunks);
            json_u64(&j, "patched_bytes", st->patched_bytes);
            json_end_obj(&j);
        }
        json_u64(&j, "read_bytes", st->read_bytes);
        json_u64(&j, "stored_bytes", st->stored_bytes);
        json_u64(&j, "new_bytes", st->new_bytes);
        json_u64(&j, "dedup_bytes", st->dedup_bytes);
        json_u64(&j, "zero_bytes", st->zero_bytes);
        json_u64(&j, "unreadable_bytes", st->unreadable_bytes);
        json_u64(&j, "cleared_bytes", st->cleared_bytes);
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
        json_dbl(&j, "hint_check_cpu_seconds", st->verify_seconds);
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
        cli_machine_json(&j, record); /* what the image records of the machine, as info shows it */
        json_arr(&j, "warnings");
        for (size_t w = 0; w < a->nwarnings; w++)
            json_str(&j, NULL, a->warnings[w]);
        json_end_arr(&j);
        json_end_obj(&j);
        json_finish(&j);
        return;
    }
    char r[32], i[32], d[32], z[32], n[32];
    if (a->store) {
        /* The data's bytes as read (new, found, repeated, zero) apart from what the new ones take
         * stored: a ratio over the snapshot object alone would mean nothing. */
        fprintf(stderr, "backup: %s read in %.1f s (%.0f MB/s): %s new, %s already in the store, %s repeated, %s zero\n",
                cli_bytes(st->read_bytes, r, sizeof r), st->seconds, mbps, cli_bytes(st->new_bytes, n, sizeof n),
                cli_bytes(st->store_bytes, i, sizeof i), cli_bytes(st->dedup_bytes - st->store_bytes, d, sizeof d),
                cli_bytes(st->zero_bytes, z, sizeof z));
        fprintf(stderr, "backup: snapshot %s: the new data stored as %s in %llu packs; snapshot object %s\n",
                a->snapshot, cli_bytes(a->store_st.stored_new, n, sizeof n), (unsigned long long)a->store_st.packs,
                cli_bytes(image_bytes, i, sizeof i));
    } else {
        fprintf(stderr, "backup: %s read in %.1f s (%.0f MB/s), image %s (%.2fx), deduplicated %s, zero %s\n",
                cli_bytes(st->read_bytes, r, sizeof r), st->seconds, mbps, cli_bytes(image_bytes, i, sizeof i), ratio,
                cli_bytes(st->dedup_bytes, d, sizeof d), cli_bytes(st->zero_bytes, z, sizeof z));
    }
    if (a->store && st->hinted_bytes)
        fprintf(stderr, "backup: %s unchanged since the last backup into the store (checked against its hints)\n",
                cli_bytes(st->hinted_bytes, r, sizeof r));
    if (a->store && a->stale_hints_removed)
        fprintf(stderr, "backup: %llu re-backup hints files that no backup wrote for 90 days removed (stores or hosts "
                        "no longer backed up from here)\n",
                (unsigned long long)a->stale_hints_removed);
    if (a->store && st->patched_chunks)
        fprintf(stderr, "backup: %llu changed chunks kept as patches of what they were: %s of changed blocks stored\n",
                (unsigned long long)st->patched_chunks, cli_bytes(st->patched_bytes, r, sizeof r));
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
    if (a->store) { /* the snapshot, written locally, uploaded by the session's commit */
        wo.external_chunks = true;
        wo.hash_seed = asr_store_hash_seed(a->store);
        return asr_writer_create(a->manifest, &wo, w, err) ? EXIT_FAIL : EXIT_OK;
    }
    if (!strcmp(a->output, "-")) {
        if (isatty(STDOUT_FILENO))
            return asr_fail_public(err, ASR_E_ARG, "refusing to write an image to a terminal"), EXIT_USAGE;
        return asr_writer_create_fd(STDOUT_FILENO, &wo, w, err) ? EXIT_FAIL : EXIT_OK;
    }
    return asr_writer_create(a->output, &wo, w, err) ? EXIT_FAIL : EXIT_OK;
}

/* The machine record (SPEC section 4): the hostname of the machine running the backup (the record
 * describes the machine whose firmware holds the boot entries, and those are read here), the
 * firmware it booted with, and on UEFI the entries loading from the disks given. Entries that
 * cannot be read are warned about; the backup goes on without them. */
static void machine_record(struct backup_args *a, const struct cli_disks *disks, bool quiet, struct asr_machine_desc *m)
{
    memset(m, 0, sizeof *m);
    cli_hostname(m->hostname, sizeof m->hostname);
    m->firmware = asr_firmware_booted();
    if (m->firmware != ASR_FIRMWARE_UEFI)
        return;
    const char *dir = asr_efivars_dir();
    const struct asr_disk_desc *descs[ASR_MAX_DISKS];
    for (uint32_t i = 0; i < disks->n; i++)
        descs[i] = asr_disk_desc(disks->disk[i]);
    char notes[2048];
    struct asr_error err = {0};
    if (!asr_efivars_present(dir)) {
        warn(a, quiet, "UEFI boot entries not recorded: %s is not there", dir);
        return;
    }
    if (asr_boot_entries_collect(dir, descs, disks->n, m, notes, sizeof notes, &err) != ASR_OK) {
        warn(a, quiet, "UEFI boot entries not recorded: %s", err.msg);
        m->entry_count = m->boot_order_count = 0;
        return;
    }
    for (const char *l = notes; *l;) {
        const char *nl = strchr(l, '\n');
        int len = nl ? (int)(nl - l) : (int)strlen(l);
        warn(a, quiet, "UEFI boot entry %.*s", len, l);
        l += len + (nl ? 1 : 0);
    }
}

/* --output-dir: DIR/HOST-YYYYmmdd-HHMMSS.asrimg, the time in UTC (a recovery environment has no
 * time zone, and names then sort in the order the backups were taken). */
static int name_in_dir(struct backup_args *a, const char *host, struct asr_error *err)
{
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    if (!gmtime_r(&now, &tm) || !strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm))
        return asr_fail_public(err, ASR_E_ARG, "backup --output-dir: no time to name the image by");
    size_t dl = strlen(a->output_dir);
    int n = snprintf(a->named, sizeof a->named, "%s%s%s-%s.asrimg", a->output_dir,
                     a->output_dir[dl - 1] == '/' ? "" : "/", host[0] ? host : "unknown", stamp);
    if (n < 0 || (size_t)n >= sizeof a->named)
        return asr_fail_public(err, ASR_E_ARG, "backup --output-dir %s: the name is too long", a->output_dir);
    struct stat st;
    if (stat(a->output_dir, &st))
        return asr_fail_public(err, ASR_E_ARG, "backup --output-dir %s: %s", a->output_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return asr_fail_public(err, ASR_E_ARG, "backup --output-dir %s: not a directory", a->output_dir);
    a->output = a->named;
    return ASR_OK;
}

static int backup_with(struct backup_args *a, struct cli_disks *disks, struct asr_backup_freeze **fz,
                       struct asr_machine_desc *record);

/* Where this machine keeps its re-backup hints for the store: ASRIMG_CACHE_DIR, else
 * $XDG_CACHE_HOME/asrimg, else ~/.cache/asrimg; one file per store and HOST. False: nowhere. */
static bool hints_path(const struct backup_args *a, const char *host, char *out, size_t n)
{
    const char *dir = getenv("ASRIMG_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[4096];
    if (dir && dir[0])
        snprintf(base, sizeof base, "%s", dir);
    else if (xdg && xdg[0] == '/')
        snprintf(base, sizeof base, "%s/asrimg", xdg);
    else if (home && home[0] == '/')
        snprintf(base, sizeof base, "%s/.cache/asrimg", home);
    else
        return false;
    uint8_t uuid[16];
    char text[ASR_GUID_TEXT], safe[ASR_HOSTNAME_MAX + 1];
    asr_store_uuid(a->store, uuid);
    asr_guid_text(uuid, 0, text);
    snprintf(safe, sizeof safe, "%s", host);
    for (char *c = safe; *c; c++)
        if (*c == '/')
            *c = '_';
    return (size_t)snprintf(out, n, "%s/hints-%s-%s.bin", base, text, safe) < n;
}

/* The hints the last backup of this HOST into the store left: a file that cannot be used is said
 * and left out (this backup then hashes every byte and writes a new one). */
static int hints_begin(struct backup_args *a, const char *host, struct asr_error *err)
{
    if (a->no_hints || !hints_path(a, host, a->hints_path, sizeof a->hints_path))
        return ASR_OK;
    static const char label[] = "asrimg re-backup hints, version 1";
    struct asr_store_id check;
    asr_store_chunk_id(a->store, label, sizeof label - 1, &check);
    uint32_t avg = a->opt.avg_chunk ? a->opt.avg_chunk : asr_backup_max_chunk(0) / 4;
    int rc = asr_backup_hints_new(check.b, avg, &a->hints, err);
    if (rc != ASR_OK)
        return rc;
    struct asr_error herr = {0};
    if (asr_backup_hints_read(a->hints, a->hints_path, &herr) != ASR_OK)
        warn(a, false, "re-backup hints not used: %s", herr.msg);
    a->hints_loaded = asr_backup_hints_loaded(a->hints);
    a->opt.hints = a->hints;
    return ASR_OK;
}

/* -o STORE: the store opened (its key checked) and this backup's session begun, before any disk
 * is opened; the snapshot is written in a directory of its own under TMPDIR. */
static int store_begin(struct backup_args *a, const char *host, struct asr_error *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(a->manifest_dir, sizeof a->manifest_dir, "%s/asrimg-backup.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(a->manifest_dir)) {
        a->manifest_dir[0] = '\0';
        return asr_fail_public(err, ASR_E_IO, "cannot make a temporary directory for the snapshot: %s",
                               strerror(errno));
    }
    snprintf(a->manifest, sizeof a->manifest, "%s/snapshot.asrimg", a->manifest_dir);
    int rc = asr_store_open(a->output, NULL, &a->store, err);
    if (rc == ASR_OK)
        rc = asr_store_session_begin(a->store, host[0] ? host : "unknown", &a->session, err);
    if (rc == ASR_OK)
        rc = hints_begin(a, host[0] ? host : "unknown", err);
    a->opt.store = a->store;
    a->opt.session = a->session;
    return rc;
}

/* Hints files no backup has written for this long belong to a store or a HOST this machine no
 * longer backs up into: each is about 0.2% of a disk's used bytes (an XXH3 per 4 KiB), and nothing
 * else removes them. A backup after that only hashes every byte again. */
#define STALE_HINTS_SECONDS (90 * 86400)

/* Removes the cache directory's hints files (hints-*.bin) other than kept that no backup wrote
 * for STALE_HINTS_SECONDS; how many. Only regular files of that name, never followed. */
static uint64_t remove_stale_hints(const char *kept)
{
    const char *name = strrchr(kept, '/');
    if (!name)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(name - kept), kept);
    name++;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t removed = 0;
    time_t before = time(NULL) - STALE_HINTS_SECONDS;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        struct stat st;
        if (strncmp(e->d_name, "hints-", 6) || len < 10 || strcmp(e->d_name + len - 4, ".bin") ||
            !strcmp(e->d_name, name) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
            !S_ISREG(st.st_mode) || st.st_mtime >= before)
            continue;
        if (!unlinkat(dirfd(d), e->d_name, 0))
            removed++;
    }
    closedir(d);
    return removed;
}

static int store_commit(struct backup_args *a, struct asr_error *err)
{
    char name[1024];
    int rc = asr_store_session_commit(a->session, a->manifest, name, sizeof name, err);
    asr_store_session_stats(a->session, &a->store_st);
    if (rc == ASR_OK)
        snprintf(a->snapshot, sizeof a->snapshot, "%s::%s", a->output, name);
    struct asr_error herr = {0};
    if (rc == ASR_OK && a->hints && asr_backup_hints_write(a->hints, a->hints_path, &herr) != ASR_OK)
        warn(a, false, "re-backup hints not saved (the next backup hashes every byte): %s", herr.msg);
    else if (rc == ASR_OK && a->hints)
        a->stale_hints_removed = remove_stale_hints(a->hints_path);
    return rc;
}

/* Ends what store_begin started, whatever happened: an uncommitted session leaves its packs for
 * the next backup to reuse. */
static void store_end(struct backup_args *a)
{
    asr_store_session_stats(a->session, &a->store_st);
    asr_store_session_free(a->session);
    asr_store_close(a->store);
    asr_backup_hints_free(a->hints);
    a->hints = NULL;
    a->opt.hints = NULL;
    a->session = NULL;
    a->store = NULL;
    a->opt.store = NULL;
    a->opt.session = NULL;
    if (a->manifest_dir[0]) {
        unlink(a->manifest);
        char partial[4300];
        snprintf(partial, sizeof partial, "%s.partial", a->manifest);
        unlink(partial);
        rmdir(a->manifest_dir);
    }
}

/* The machine record is large (its boot entries): on the heap. */
static int backup(struct backup_args *a, struct cli_disks *disks, struct asr_backup_freeze **fz)
{
    struct asr_machine_desc *record = calloc(1, sizeof *record);
    if (!record)
        return cli_error("out of memory"), EXIT_FAIL;
    int rc = backup_with(a, disks, fz, record);
    if (a->session || a->store)
        store_end(a);
    free(record);
    return rc;
}

static int backup_with(struct backup_args *a, struct cli_disks *disks, struct asr_backup_freeze **fz,
                       struct asr_machine_desc *record)
{
    struct asr_error err = {0};
    char host[ASR_HOSTNAME_MAX + 1];
    cli_hostname(host, sizeof host);
    if (a->output_dir && name_in_dir(a, host, &err)) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    bool to_stdout = !strcmp(a->output, "-");
    if (a->host && !cli_is_store(a->output)) {
        cli_error("backup: --host names a snapshot in a store, and -o %s is not one", a->output);
        return EXIT_USAGE;
    }
    if (cli_is_store(a->output)) {
        if (a->split || a->force) {
            cli_error("backup: -o %s is a store: --split and --force do not apply", a->output);
            return EXIT_USAGE;
        }
        if (store_begin(a, a->host ? a->host : host, &err) != ASR_OK) {
            cli_error("backup: %s", err.msg);
            return EXIT_FAIL;
        }
    }
    char placed[4200];
    snprintf(placed, sizeof placed, "%s%s", a->output, a->store ? "/config" : "");
    bool s3 = a->store && !strncmp(a->output, "s3://", 5);
    if (cli_disks_open(disks, a->paths, a->ndisks, a->selection, &a->keys, &err) != EXIT_OK ||
        (!s3 && asr_check_image_placement(to_stdout ? NULL : placed, STDOUT_FILENO, disks->disk, disks->n, &err))) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct asr_backup_source src[ASR_MAX_DISKS];
    for (uint32_t i = 0; i < disks->n; i++)
        src[i] = (struct asr_backup_source){disks->disk[i], disks->vols[i], disks->count[i]};
    struct asr_backup_freeze_options fo = {.interrupt = &interrupted, .warn = freeze_warning, .warn_ctx = a};
    if (a->freeze && asr_backup_freeze_start(src, disks->n, &fo, &a->opt, fz, &err) != ASR_OK) {
        cli_error("backup: %s", err.msg);
        return EXIT_FAIL;
    }
    bool quiet = a->json && to_stdout; /* stderr carries the JSON summary only */
    if (!quiet)
        show_plan(disks);
    for (const char *l = asr_machine_warnings(disks->machine); *l;) { /* what the stacks and roots left open */
        const char *nl = strchr(l, '\n');
        int len = nl ? (int)(nl - l) : (int)strlen(l);
        warn(a, quiet, "%.*s", len, l);
        l += len + (nl ? 1 : 0);
    }
    check_mounts(a, disks, quiet);
    /* The stacks the image records (SPEC section 6): restore, info and verify show them. */
    struct asr_stack_desc *stacks = NULL;
    uint32_t nstacks = 0;
    char skipped[1024];
    if (asr_machine_stacks(disks->machine, &stacks, &nstacks, skipped, sizeof skipped, &err) != ASR_OK) {
        cli_error("backup: %s", err.msg);
        return EXIT_FAIL;
    }
    for (const char *l = skipped; *l;) {
        const char *nl = strchr(l, '\n');
        int len = nl ? (int)(nl - l) : (int)strlen(l);
        warn(a, quiet, "the image does not record this stack (its bytes are captured): %.*s", len, l);
        l += len + (nl ? 1 : 0);
    }
    a->opt.stacks = stacks;
    a->opt.stack_count = nstacks;
    machine_record(a, disks, quiet, record);
    struct asr_writer *w = NULL;
    int rc = create_writer(a, disks, &w, &err);
    if (rc == EXIT_OK && asr_writer_set_machine(w, record, &err) != ASR_OK)
        rc = EXIT_FAIL;
    if (rc != EXIT_OK) {
        asr_writer_free(w);
        asr_machine_stacks_free(stacks, nstacks);
        cli_error("%s", err.msg);
        return rc;
    }
    struct meter m = {0};
    progress_init(&m.p, "backup", quiet);
    a->opt.progress = on_progress;
    a->opt.progress_ctx = &m;
    a->opt.cancel = &interrupted;
    struct asr_backup_stats st;
    int brc = asr_backup_run(w, src, disks->n, &a->opt, &st, &err);
    if (brc == ASR_OK)
        brc = asr_writer_finish(w, &err);
    if (brc == ASR_OK && a->store)
        brc = store_commit(a, &err);
    uint64_t image_bytes = asr_writer_image_bytes(w);
    progress_done(&m.p);
    asr_writer_free(w); /* removes the .partial files of an unfinished image */
    asr_machine_stacks_free(stacks, nstacks);
    a->opt.stacks = NULL;
    a->opt.stack_count = 0;
    if (brc != ASR_OK) {
        cli_error("backup: %s", err.msg);
        return EXIT_FAIL;
    }
    report_damage(a, disks, quiet);
    report(a, disks, &st, image_bytes, record);
    return EXIT_OK;
}

int cmd_backup(int argc, char **argv)
{
    struct backup_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc == ARG_HELP ? EXIT_OK : rc;
    struct cli_disks disks = {0};
    struct asr_backup_freeze *fz = NULL;
    rc = backup(&a, &disks, &fz);
    asr_backup_freeze_end(fz);
    cli_disks_close(&disks);
    for (size_t i = 0; i < a.nwarnings; i++)
        free(a.warnings[i]);
    free(a.warnings);
    return rc;
}
