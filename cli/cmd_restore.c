/* asrimg restore: lays an image onto replacement disks, bare metal. Checks every target before
 * writing anything, shows the plan (which image disk goes where, what each target holds now and
 * will hold), asks for confirmation (or --yes), then restores with progress on a terminal and a
 * summary (text or --json). */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "json.h"
#include "progress.h"
#include "targets.h"
#include "util.h"

static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct restore_args {
    const char *image;
    struct cli_targets t;
    bool yes, json;
    struct asr_restore_options opt;
};

static int parse_args(int argc, char **argv, struct restore_args *a)
{
    *a = (struct restore_args){.t = {.cmd = "restore", .opt = "--to"}};
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    const char *o;
    for (int opt; (opt = cli_args_next(&args, &o));) {
        unsigned long v;
        int rc = EXIT_OK;
        switch (opt) {
        case OPT_TO: rc = cli_targets_add(&a->t, o); break;
        case OPT_YES: a->yes = true; break;
        case OPT_JSON: a->json = true; break;
        case OPT_NEW_IDS: a->opt.new_ids = true; break;
        case OPT_GROW: a->opt.grow = true; break;
        case OPT_VERIFY: a->opt.verify = true; break;
        case OPT_KEEP_GOING: a->opt.keep_going = true; break;
        case OPT_DISCARD:
        case OPT_ZERO_UNUSED:
            if (a->opt.unused)
                return cli_error("restore: --discard and --zero-unused exclude each other"), EXIT_USAGE;
            a->opt.unused = opt == OPT_DISCARD ? ASR_UNUSED_DISCARD : ASR_UNUSED_ZERO;
            break;
        case OPT_THREADS:
            if (!cli_parse_uint(o, 64, &v) || v == 0)
                return cli_error("restore: --threads %s: a number from 1 to 64", o), EXIT_USAGE;
            a->opt.threads = (unsigned)v;
            break;
        case ARG_WORD:
            if (a->image)
                return cli_error("restore: one image at a time (targets go after --to)"), EXIT_USAGE;
            a->image = o;
            break;
        case ARG_HELP: return ARG_HELP;
        default: return EXIT_USAGE;
        }
        if (rc)
            return rc;
    }
    if (!a->image)
        return cli_error("restore: no image given: IMAGE, or - for standard input (see 'asrimg restore --help')"),
               EXIT_USAGE;
    if (!a->t.n)
        return cli_error("restore: no target given: --to TARGET (see 'asrimg restore --help')"), EXIT_USAGE;
    if (a->t.explicit_disks && a->t.positional)
        return cli_error("restore: give every --to as N=TARGET, or none"), EXIT_USAGE;
    return EXIT_OK;
}

/* ---- the plan ------------------------------------------------------------------------------ */

/* One row of the plan: a partition, or (number 0) the volume of a disk without a partition table. */
static void print_row(const struct asr_image *r, uint32_t disk, uint32_t number, uint64_t start, uint64_t size,
                      uint8_t capture, const char *grown)
{
    char b[32];
    const char *fs = "";
    bool has_volume = false;
    for (uint32_t v = 0; v < asr_image_volume_count(r); v++)
        if (asr_image_volume(r, v)->disk_index == disk && asr_image_volume(r, v)->kind == ASR_VOLUME_PARTITION &&
            asr_image_volume(r, v)->partition_number == number) {
            fs = asr_image_volume(r, v)->fs_type;
            has_volume = true;
        }
    /* A partition's record says how it was captured; a whole-disk volume has only its volume. */
    bool in_image = number ? capture != ASR_CAPTURE_SKIP : has_volume;
    fprintf(stderr, "      %-3u %12llu %10s  %-6s ", number, (unsigned long long)start, cli_bytes(size, b, sizeof b), fs);
    if (!in_image)
        fputs("not in the image: its bytes are left as they are", stderr);
    else if (number == 0)
        fputs("restored: the one volume of the disk, no partition table", stderr);
    else
        fprintf(stderr, "restored (%s)", cli_capture_name(capture));
    fprintf(stderr, "%s\n", grown);
}

static void print_partitions_after(const struct asr_image *r, uint32_t disk, bool grow)
{
    const struct asr_disk_desc *d = asr_image_disk(r, disk);
    char why[160], b[32];
    struct asr_grow_plan plan = {UINT32_MAX, UINT32_MAX};
    if (d->label == ASR_LABEL_NONE) {
        /* No partitions to list: the layout is the one volume (or nothing), still worth a row. */
        print_row(r, disk, 0, 0, d->size_bytes, ASR_CAPTURE_SKIP, "");
        return;
    }
    if (grow)
        asr_restore_grow_plan(d, &plan, why, sizeof why); /* checked when the restore opened */
    for (uint32_t i = 0; i < d->partition_count; i++) {
        const struct asr_partition_desc *p = &d->partitions[i];
        print_row(r, disk, p->number, p->start_bytes, p->size_bytes, p->capture,
                  i == plan.data        ? "; --grow: to the end of the target (not its filesystem)"
                  : i == plan.container ? "; --grow: to the end of the target, around the last partition"
                                        : "");
    }
    for (uint32_t v = 0; v < asr_image_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_image_volume(r, v);
        if (vd->disk_index == disk && vd->kind == ASR_VOLUME_AREA)
            fprintf(stderr, "      -   %12llu %10s  -      restored: bytes outside every partition (before the first)\n",
                    (unsigned long long)vd->disk_offset, cli_bytes(vd->size_bytes, b, sizeof b));
    }
}

static void print_plan(const char *image, const struct asr_image *r, const struct asr_restore *rs,
                       const struct asr_restore_options *opt)
{
    char b[32], id[37];
    fprintf(stderr, "restore %s:\n", image);
    for (uint32_t d = 0; d < asr_image_disk_count(r); d++) {
        const struct asr_disk_desc *dd = asr_image_disk(r, d);
        cli_disk_id(dd, id);
        fprintf(stderr, "  image disk %u: %s, %s, label %s, id %s%s\n", d, dd->source, cli_bytes(dd->size_bytes, b, sizeof b),
                cli_label_name(dd->label), id, opt->new_ids ? " (new ids will be made)" : "");
        for (size_t i = 0; i < asr_restore_target_count(rs); i++) {
            const struct asr_restore_target_info *t = asr_restore_target(rs, i);
            if (t->disk_index != d)
                continue;
            fprintf(stderr, "    -> %s (%s, %s): holds %s\n", t->path,
                    t->create ? "new file" : t->is_block ? "block device" : "file", cli_bytes(t->size_bytes, b, sizeof b),
                    t->holds);
            if (!t->create)
                fprintf(stderr, "       ALL OF IT WILL BE OVERWRITTEN by this layout:\n");
        }
        print_partitions_after(r, d, opt->grow);
    }
}

static bool confirmed(bool yes, bool image_on_stdin)
{
    if (yes)
        return true;
    if (image_on_stdin || !isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
        return false;
    fputs("Type 'yes' to overwrite the targets above: ", stderr);
    char line[16] = "";
    return fgets(line, sizeof line, stdin) && !strcmp(line, "yes\n");
}

/* ---- after a failure: what the targets hold ---------------------------------------------- */

/* What the note says of a target, the furthest along last. A disk without a partition table
 * (a whole-disk filesystem) has none to miss. */
enum { SAYS_UNTOUCHED, SAYS_PARTIAL, SAYS_PARTIAL_NO_LABEL, SAYS_NO_TABLE, SAYS_RESTORED, SAYS_N };
static const char *const says_text[SAYS_N] = {"untouched", "partly written, no valid partition table yet",
                                              "partly written", "data written, no valid partition table yet",
                                              "restored"};

static int target_says(const struct asr_restore_target_info *t, const struct asr_image *m)
{
    bool table = asr_image_disk(m, t->disk_index)->label != ASR_LABEL_NONE;
    switch (t->state) {
    case ASR_TARGET_PARTIAL: return table ? SAYS_PARTIAL : SAYS_PARTIAL_NO_LABEL;
    case ASR_TARGET_NO_TABLE: return table ? SAYS_NO_TABLE : SAYS_PARTIAL_NO_LABEL;
    case ASR_TARGET_RESTORED: return SAYS_RESTORED;
    default: return SAYS_UNTOUCHED;
    }
}

static const char *state_name(uint8_t state)
{
    static const char *const names[] = {"untouched", "partial", "no_table", "restored"};
    return state < sizeof names / sizeof names[0] ? names[state] : "untouched";
}

/* What a second run needs, after error `code` stopped a restore part way. */
static const char *rerun_advice(int code)
{
    if (interrupted)
        return "run the same restore again";
    switch (code) {
    case ASR_E_INCOMPLETE: return "run the same restore again with the complete image";
    case ASR_E_PARTS: return "run the same restore again with every part of the image, in order";
    case ASR_E_CORRUPT: return "run the same restore again from an intact copy of the image";
    case ASR_E_UNSUPPORTED: return "run the same restore again from the image file";
    default: return "run the same restore again once the error above is dealt with";
    }
}

/* One line after the error, each target's state and what to do: "asrimg: note: /dev/sdb and
 * /dev/sdc: partly written, no valid partition table yet; run the same restore again with the
 * complete image". */
static void print_target_state(const struct asr_restore *rs, const struct asr_image *m, int code)
{
    size_t n = asr_restore_target_count(rs), count[SAYS_N] = {0};
    for (size_t i = 0; i < n; i++)
        count[target_says(asr_restore_target(rs, i), m)]++;
    fputs("asrimg: note: ", stderr);
    for (int says = 0; says < SAYS_N; says++) {
        for (size_t i = 0, k = 0; count[says] && i < n; i++)
            if (target_says(asr_restore_target(rs, i), m) == says)
                fprintf(stderr, "%s%s", k++ ? (k == count[says] ? " and " : ", ") : "", asr_restore_target(rs, i)->path);
        if (count[says])
            fprintf(stderr, ": %s; ", says_text[says]);
    }
    if (count[SAYS_PARTIAL] || count[SAYS_PARTIAL_NO_LABEL] || count[SAYS_NO_TABLE])
        fprintf(stderr, "%s\n", rerun_advice(code));
    else if (count[SAYS_RESTORED])
        fputs("the error came after the restore itself\n", stderr);
    else
        fputs("nothing was written\n", stderr);
}

/* ---- the summary ---------------------------------------------------------------------------- */

static void json_ranges(struct json *j, const char *key, const struct asr_restore_range *v, size_t n,
                        const struct asr_image *r)
{
    json_arr(j, key);
    for (size_t i = 0; i < n; i++) {
        const struct asr_volume_desc *vd = asr_image_volume(r, v[i].volume);
        json_obj(j, NULL);
        json_u64(j, "volume", v[i].volume);
        json_u64(j, "offset", v[i].offset);
        json_u64(j, "length", v[i].length);
        json_u64(j, "disk", vd->disk_index);
        json_u64(j, "disk_offset", vd->disk_offset + v[i].offset);
        if (v[i].chunk != ASR_REF_UNREADABLE)
            json_u64(j, "chunk", v[i].chunk);
        json_end_obj(j);
    }
    json_end_arr(j);
}

static void print_json(const struct restore_args *a, const struct asr_image *r, const struct asr_restore *rs,
                       const struct asr_restore_stats *st, int rc, const struct asr_error *err)
{
    struct json j;
    json_begin(&j, stdout);
    json_obj(&j, NULL);
    json_str(&j, "image", a->image);
    json_bool(&j, "ok", rc == ASR_OK && !st->damaged_count);
    if (rc != ASR_OK)
        json_str(&j, "error", err->msg);
    else if (st->damaged_count)
        json_str(&j, "error", "damaged chunks: the ranges under \"damaged\" were zeroed, not restored");
    json_arr(&j, "targets");
    for (size_t i = 0; i < asr_restore_target_count(rs); i++) {
        const struct asr_restore_target_info *t = asr_restore_target(rs, i);
        json_obj(&j, NULL);
        json_str(&j, "path", t->path);
        json_u64(&j, "disk", t->disk_index);
        json_u64(&j, "size_bytes", t->size_bytes);
        json_bool(&j, "block_device", t->is_block);
        json_str(&j, "state", state_name(t->state));
        json_end_obj(&j);
    }
    json_end_arr(&j);
    /* The counts say what went to the targets: after a failure, what was handed to the writer
     * may not have reached them, and no count would be true. */
    if (rc == ASR_OK) {
        json_u64(&j, "bytes_written", st->data_bytes + st->zero_bytes + st->region_bytes);
        json_u64(&j, "data_bytes", st->data_bytes);
        json_u64(&j, "zero_bytes", st->zero_bytes);
        json_u64(&j, "region_bytes", st->region_bytes);
        json_u64(&j, "unused_bytes", st->unused_bytes);
        json_u64(&j, "chunks_decoded", st->chunks_decoded);
        json_dbl(&j, "mb_per_s", st->seconds > 0 ? (double)(st->data_bytes + st->zero_bytes) / st->seconds / 1e6 : 0);
    }
    json_dbl(&j, "seconds", st->seconds);
    json_bool(&j, "direct_io", st->direct_io);
    json_bool(&j, "verified", st->verified);
    if (st->grown_partition) {
        json_obj(&j, "grown");
        json_u64(&j, "partition", st->grown_partition);
        json_u64(&j, "from_bytes", st->grown_from);
        json_u64(&j, "to_bytes", st->grown_to);
        json_bool(&j, "filesystem_grown", false);
        json_bool(&j, "mbr_limit", st->grown_to_mbr_limit);
        json_end_obj(&j);
    }
    json_ranges(&j, "damaged", st->damaged, st->damaged_count, r);
    json_ranges(&j, "unreadable", st->unreadable, st->unreadable_count, r);
    json_end_obj(&j);
    json_finish(&j);
}

static void print_ranges(const char *what, const struct asr_restore_range *v, size_t n, const struct asr_image *r)
{
    for (size_t i = 0; i < n; i++) {
        const struct asr_volume_desc *vd = asr_image_volume(r, v[i].volume);
        fprintf(stderr, "  %s: volume %u offset %llu length %llu (disk %u offset %llu)", what, v[i].volume,
                (unsigned long long)v[i].offset, (unsigned long long)v[i].length, vd->disk_index,
                (unsigned long long)(vd->disk_offset + v[i].offset));
        if (v[i].chunk != ASR_REF_UNREADABLE)
            fprintf(stderr, ", chunk %llu", (unsigned long long)v[i].chunk);
        fputc('\n', stderr);
    }
}

static void print_text(const struct asr_image *r, const struct asr_restore *rs, const struct asr_restore_stats *st)
{
    char a[32], b[32];
    double mbs = st->seconds > 0 ? (double)(st->data_bytes + st->zero_bytes) / st->seconds / 1e6 : 0;
    fprintf(stderr, "restore: %s laid onto %zu target%s in %.1f s (%.0f MB/s)%s%s\n",
            cli_bytes(st->data_bytes + st->zero_bytes, a, sizeof a), asr_restore_target_count(rs),
            asr_restore_target_count(rs) == 1 ? "" : "s", st->seconds, mbs, st->unused_bytes ? ", unused space " : "",
            st->unused_bytes ? cli_bytes(st->unused_bytes, b, sizeof b) : "");
    if (st->verified)
        fprintf(stderr, "restore: verified: every target reads back as the image\n");
    if (st->grown_partition)
        fprintf(stderr,
                "restore: partition %u grown from %s to %s%s; its filesystem was not grown (grow it with its own "
                "tool, e.g. resize2fs)\n",
                st->grown_partition, cli_bytes(st->grown_from, a, sizeof a), cli_bytes(st->grown_to, b, sizeof b),
                st->grown_to_mbr_limit ? ", where an MBR stops addressing sectors (2^32); the rest of the disk "
                                         "needs a GPT"
                                       : "");
    if (st->unreadable_count) {
        fprintf(stderr, "restore: the source could not read these ranges when imaged; they were zeroed:\n");
        print_ranges("unreadable", st->unreadable, st->unreadable_count, r);
    }
    if (st->damaged_count) {
        fprintf(stderr, "restore: damaged chunks in the image; these ranges were zeroed:\n");
        print_ranges("damaged", st->damaged, st->damaged_count, r);
    }
}

static int open_image(const char *image, struct asr_image **im, struct asr_error *err)
{
    if (strcmp(image, "-"))
        return asr_image_open(image, im, err);
    if (isatty(STDIN_FILENO))
        return asr_fail_public(err, ASR_E_ARG, "restore -: standard input is a terminal, not an image stream");
    return asr_image_open_stream(STDIN_FILENO, "standard input", im, err);
}

int cmd_restore(int argc, char **argv)
{
    struct restore_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    struct asr_error err = {0};
    struct asr_image *m = NULL;
    struct asr_restore *rs = NULL;
    int fail_code = EXIT_FAIL;
    if (open_image(a.image, &m, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        goto fail;
    }
    if ((rc = cli_targets_map(&a.t, asr_image_disk_count(m)))) {
        fail_code = rc;
        goto fail;
    }
    if (asr_restore_open_image(m, a.t.to, a.t.n, false, &rs, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        goto fail;
    }
    if (asr_restore_check_options(rs, &a.opt, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        goto fail;
    }
    print_plan(a.image, m, rs, &a.opt);
    if (!confirmed(a.yes, asr_image_is_stream(m))) {
        cli_error("restore would overwrite the targets above: pass --yes to confirm%s",
                  asr_image_is_stream(m) ? " (the image comes on standard input, so there is no asking)"
                  : isatty(STDIN_FILENO) ? "" : " (no terminal to ask on)");
        goto fail;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct progress pr;
    progress_init(&pr, "restore", a.json);
    a.opt.progress = progress_restore;
    a.opt.progress_ctx = &pr;
    a.opt.cancel = &interrupted;
    struct asr_restore_stats st;
    rc = asr_restore_run(rs, &a.opt, &st, &err);
    progress_done(&pr);
    if (a.json)
        print_json(&a, m, rs, &st, rc, &err);
    else if (!rc)
        print_text(m, rs, &st);
    if (rc) {
        cli_error("%s", err.msg);
        print_target_state(rs, m, rc);
    }
    int exit_code = rc || st.damaged_count ? EXIT_FAIL : EXIT_OK;
    if (!rc && st.damaged_count)
        cli_error("%zu range%s of the image could not be restored (damaged chunks): listed %s", st.damaged_count,
                  st.damaged_count == 1 ? "" : "s", a.json ? "under \"damaged\"" : "above");
    asr_restore_stats_free(&st);
    asr_restore_free(rs);
    asr_image_free(m);
    return exit_code;
fail:
    asr_restore_free(rs);
    asr_image_free(m);
    return fail_code;
}
