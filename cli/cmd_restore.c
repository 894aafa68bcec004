/* asrimg restore: lays an image onto replacement disks, bare metal. Checks every target before
 * writing anything, shows the plan (which image disk goes where, what each target holds now and
 * will hold), asks for confirmation (or --yes), then restores with progress on a terminal and a
 * summary (text or --json). */
#include "cli.h"
#include "table.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "boot_entries.h"
#include "json.h"
#include "layers.h"
#include "stacks.h"
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
    bool yes, json, boot_entries;
    struct asr_restore_options opt;
    struct cli_boot boot; /* --boot-entries: what was made */
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
        case OPT_BOOT_ENTRIES: a->boot_entries = true; break;
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

/* The image's volume of partition `number` of a disk (0: of a disk without a partition table),
 * or NULL. */
static const struct asr_volume_desc *partition_volume(const struct asr_image *r, uint32_t disk, uint32_t number)
{
    for (uint32_t v = 0; v < asr_image_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_image_volume(r, v);
        if (vd->disk_index == disk && vd->kind == ASR_VOLUME_PARTITION && vd->partition_number == number)
            return vd;
    }
    return NULL;
}

/* Why a restore leaves the bytes of partition p (NULL: the whole of a disk without a partition
 * table) as the target holds them, or NULL when it writes them. A partition's record says how it
 * was captured (skip: not at all, the backup did not select it); a whole-disk volume has only
 * its volume. An extended partition is written: its EBRs, and the logical partitions in it as
 * their own rows say. */
static const char *untouched_why(const struct asr_image *r, uint32_t disk, const struct asr_partition_desc *p)
{
    if (p && (p->capture != ASR_CAPTURE_SKIP || p->kind == ASR_PART_EXTENDED))
        return NULL;
    if (!p && partition_volume(r, disk, 0))
        return NULL;
    return p ? "not in the image (not selected at backup): recreated in the table, its bytes left as they are"
             : "not in the image (not selected at backup): its bytes left as they are";
}

/* A partition's type: as libfdisk names it, else the GPT type GUID or the MBR code. */
static void type_text(const struct asr_disk_desc *d, const struct asr_partition_desc *p, char *name, char *raw)
{
    char guid[37];
    cli_uuid(p->type_guid, true, guid);
    asr_type_name(d->label, p->mbr_type, guid, name, 64);
    if (d->label == ASR_LABEL_GPT)
        snprintf(raw, 40, "%s", guid);
    else
        snprintf(raw, 40, "0x%02x", p->mbr_type);
}

enum { R_NUM, R_START, R_SIZE, R_TYPE, R_NAME, R_FS, R_WHAT, R_COLS };

/* One row of the plan: partition i of the disk, or (i == partition_count) the volume of a disk
 * without a partition table, or (area) a disk area; the cells point into buf. */
static void plan_cells(const struct asr_image *r, uint32_t disk, uint32_t i, const struct asr_volume_desc *area,
                       const struct asr_grow_plan *plan, char buf[5][200], const char *cells[R_COLS])
{
    const struct asr_disk_desc *d = asr_image_disk(r, disk);
    const struct asr_partition_desc *p = !area && i < d->partition_count ? &d->partitions[i] : NULL;
    uint32_t number = p ? p->number : 0;
    const struct asr_volume_desc *vd = area ? area : partition_volume(r, disk, number);
    uint64_t start = area ? area->disk_offset : p ? p->start_bytes : 0;
    uint64_t size = area ? area->size_bytes : p ? p->size_bytes : d->size_bytes;
    if (area)
        snprintf(buf[0], 200, "-"); /* a disk area has no partition number */
    else
        snprintf(buf[0], 200, "%u", number);
    snprintf(buf[1], 200, "%llu", (unsigned long long)start);
    buf[3][0] = '\0';
    if (p) {
        char raw[40];
        type_text(d, p, buf[3], raw);
        if (!buf[3][0])
            snprintf(buf[3], 200, "%s", raw);
    }
    const char *why = area ? NULL : untouched_why(r, disk, p);
    char restored[32];
    snprintf(restored, sizeof restored, "restored (%s)", p ? cli_capture_name(p->capture) : "");
    const char *what = area                               ? "restored: bytes outside every partition (before the first)"
                       : why                              ? why
                       : !p                               ? "restored: the one volume of the disk, no partition table"
                       : p->kind == ASR_PART_EXTENDED     ? "restored: its EBRs (it holds the logical partitions)"
                                                          : restored;
    snprintf(buf[4], 200, "%s%s", what,
             !p                     ? ""
             : i == plan->data      ? "; --grow: to the end of the target (not its filesystem)"
             : i == plan->container ? "; --grow: to the end of the target, around the last partition"
                                    : "");
    cells[R_NUM] = buf[0];
    cells[R_START] = buf[1];
    cells[R_SIZE] = cli_bytes(size, buf[2], 200);
    cells[R_TYPE] = buf[3];
    cells[R_NAME] = p ? p->name : "";
    cells[R_FS] = vd ? vd->fs_type : area ? "-" : "";
    cells[R_WHAT] = buf[4];
}

/* The disk's rows: every partition (or the one volume of a disk without a table), then its
 * areas; measured into t (print false) or printed. */
static void plan_rows(const struct asr_image *r, uint32_t disk, const struct asr_grow_plan *plan, struct table *t,
                      bool print)
{
    const struct asr_disk_desc *d = asr_image_disk(r, disk);
    char buf[5][200];
    const char *cells[R_COLS];
    uint32_t rows = d->label == ASR_LABEL_NONE ? 1 : d->partition_count;
    for (uint32_t i = 0; i < rows; i++) {
        plan_cells(r, disk, d->label == ASR_LABEL_NONE ? d->partition_count : i, NULL, plan, buf, cells);
        print ? table_row(t, cells) : table_measure(t, cells);
    }
    for (uint32_t v = 0; v < asr_image_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_image_volume(r, v);
        if (vd->disk_index != disk || vd->kind != ASR_VOLUME_AREA)
            continue;
        plan_cells(r, disk, UINT32_MAX, vd, plan, buf, cells);
        print ? table_row(t, cells) : table_measure(t, cells);
    }
}

static void print_partitions_after(const struct asr_image *r, uint32_t disk, bool grow)
{
    static const char *const headers[R_COLS] = {"#", "start", "size", "type", "name", "fs", "after the restore"};
    const struct asr_disk_desc *d = asr_image_disk(r, disk);
    char why[160];
    struct asr_grow_plan plan = {UINT32_MAX, UINT32_MAX};
    if (grow && d->label != ASR_LABEL_NONE)
        asr_restore_grow_plan(d, &plan, why, sizeof why); /* checked when the restore opened */
    struct table t;
    table_init(&t, stderr, "      ", "lrroool", headers);
    plan_rows(r, disk, &plan, &t, false);
    table_header(&t);
    plan_rows(r, disk, &plan, &t, true);
}

/* --grow on image disk `disk`: the partition it extends (*number, 0 when none) and what each
 * stack on it keeps and needs at first boot, named by the target's partition device when the
 * target is a block device. */
static size_t grow_notes(const struct asr_image *r, const struct asr_restore *rs, const struct cli_stacks *st,
                         uint32_t disk, uint32_t *number, struct cli_grow_note *out, size_t max)
{
    const struct asr_disk_desc *d = asr_image_disk(r, disk);
    struct asr_grow_plan plan = {UINT32_MAX, UINT32_MAX};
    char why[160], dev[4200] = "";
    *number = 0;
    if (d->label == ASR_LABEL_NONE || asr_restore_grow_plan(d, &plan, why, sizeof why) || plan.data == UINT32_MAX)
        return 0;
    *number = d->partitions[plan.data].number;
    for (size_t i = 0; i < asr_restore_target_count(rs); i++) {
        const struct asr_restore_target_info *t = asr_restore_target(rs, i);
        if (t->disk_index == disk && t->is_block)
            cli_partition_device(t->path, *number, dev, sizeof dev);
    }
    return cli_stack_grow_notes(st, disk, *number, dev, out, max);
}

static void print_plan(const char *image, const struct asr_image *r, const struct asr_restore *rs,
                       const struct asr_restore_options *opt)
{
    struct cli_stacks st;
    cli_stacks_from_image(r, &st);
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
        cli_stacks_print_disk(stderr, &st, d, "      ");
        struct cli_grow_note notes[16];
        uint32_t number;
        size_t n = opt->grow ? grow_notes(r, rs, &st, d, &number, notes, 16) : 0;
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "      --grow: partition %u grows; %s\n", number, notes[i].text);
    }
    if (st.n) {
        fprintf(stderr, "  storage stacks, restored with their members' bytes:\n");
        cli_stacks_print(stderr, &st, "    ");
    }
}

static bool confirmed(bool yes, bool image_on_stdin)
{
    if (yes)
        return true;
    return !image_on_stdin && cli_confirm("Type 'yes' to overwrite the targets above: ");
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

/* The partitions the restore leaves as the targets hold them (untouched_why), each image disk's
 * in turn: what the plan says of them, for scripts. */
static void json_untouched(struct json *j, const struct asr_image *r)
{
    json_arr(j, "untouched");
    for (uint32_t disk = 0; disk < asr_image_disk_count(r); disk++) {
        const struct asr_disk_desc *d = asr_image_disk(r, disk);
        uint32_t rows = d->label == ASR_LABEL_NONE ? 1 : d->partition_count;
        for (uint32_t i = 0; i < rows; i++) {
            const struct asr_partition_desc *p = d->label == ASR_LABEL_NONE ? NULL : &d->partitions[i];
            const char *why = untouched_why(r, disk, p);
            if (!why)
                continue;
            char name[64] = "", raw[40] = "";
            if (p)
                type_text(d, p, name, raw);
            json_obj(j, NULL);
            json_u64(j, "disk", disk);
            json_u64(j, "partition", p ? p->number : 0);
            json_u64(j, "start_bytes", p ? p->start_bytes : 0);
            json_u64(j, "size_bytes", p ? p->size_bytes : d->size_bytes);
            json_str(j, "type", raw);
            json_str(j, "type_name", name);
            json_str(j, "name", p ? p->name : "");
            json_str(j, "why", why);
            json_end_obj(j);
        }
    }
    json_end_arr(j);
}

/* Under "grown": each stack on the grown partition keeps its size; what to run at first boot. */
static void json_grow_notes(struct json *j, const struct asr_image *r, const struct asr_restore *rs,
                            const struct cli_stacks *stacks, uint32_t grown)
{
    json_arr(j, "stacks");
    for (uint32_t d = 0; d < asr_image_disk_count(r); d++) {
        struct cli_grow_note notes[16];
        uint32_t number;
        size_t n = grow_notes(r, rs, stacks, d, &number, notes, 16);
        for (size_t i = 0; i < n && number == grown; i++) {
            json_obj(j, NULL);
            json_u64(j, "disk", d);
            json_str(j, "stack", notes[i].stack->name);
            json_str(j, "kind", notes[i].stack->kind == ASR_STACK_LVM_VG ? "lvm2"
                                : notes[i].stack->kind == ASR_STACK_LUKS ? "luks"
                                : notes[i].stack->kind == ASR_STACK_MD   ? "md" : "other");
            json_bool(j, "keeps_size", true);
            json_u64(j, "data_bytes", notes[i].keeps_bytes);
            json_str(j, "first_boot", notes[i].command);
            json_str(j, "note", notes[i].text);
            json_end_obj(j);
        }
    }
    json_end_arr(j);
}

/* restore --verify: the stacks read again from the targets (layers.c); EXIT_OK when nothing
 * differs or there is nothing to check. */
static int verify_layers(const struct restore_args *a, const struct asr_image *r, int rc, struct json *j)
{
    return a->opt.verify && rc == ASR_OK ? cli_check_layers(r, &a->t, a->opt.grow, NULL, j) : EXIT_OK;
}

static int print_json(const struct restore_args *a, const struct asr_image *r, const struct asr_restore *rs,
                      const struct asr_restore_stats *st, int rc, const struct asr_error *err)
{
    struct cli_stacks stacks;
    cli_stacks_from_image(r, &stacks);
    struct json j;
    json_begin(&j, stdout);
    json_obj(&j, NULL);
    json_str(&j, "image", a->image);
    int layers = verify_layers(a, r, rc, &j);
    json_bool(&j, "ok", rc == ASR_OK && !st->damaged_count && layers == EXIT_OK && !a->boot.failed);
    if (rc != ASR_OK)
        json_str(&j, "error", err->msg);
    else if (st->damaged_count)
        json_str(&j, "error", "damaged chunks: the ranges under \"damaged\" were zeroed, not restored");
    else if (layers != EXIT_OK)
        json_str(&j, "error", "a storage stack the image records is not on the restored disks as recorded: see \"layers\"");
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
    json_untouched(&j, r);
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
        json_grow_notes(&j, r, rs, &stacks, st->grown_partition);
        json_end_obj(&j);
    }
    cli_boot_json(&j, &a->boot);
    json_ranges(&j, "damaged", st->damaged, st->damaged_count, r);
    json_ranges(&j, "unreadable", st->unreadable, st->unreadable_count, r);
    cli_stacks_json(&j, &stacks);
    json_end_obj(&j);
    json_finish(&j);
    return layers;
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
    if (st->grown_partition) {
        /* A partition holding a stack says what the stack needs (pvresize, ...); a plain one that
         * its filesystem was not grown. */
        struct cli_stacks stacks;
        cli_stacks_from_image(r, &stacks);
        struct cli_grow_note notes[16];
        size_t total = 0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1)
                fprintf(stderr, "restore: partition %u grown from %s to %s%s; %s\n", st->grown_partition,
                        cli_bytes(st->grown_from, a, sizeof a), cli_bytes(st->grown_to, b, sizeof b),
                        st->grown_to_mbr_limit ? ", where an MBR stops addressing sectors (2^32); the rest of the "
                                                 "disk needs a GPT"
                                               : "",
                        total ? "what it holds keeps its size:"
                              : "its filesystem was not grown (grow it with its own tool, e.g. resize2fs)");
            for (uint32_t d = 0; d < asr_image_disk_count(r); d++) {
                uint32_t number;
                size_t n = grow_notes(r, rs, &stacks, d, &number, notes, 16);
                for (size_t i = 0; i < n && number == st->grown_partition; i++)
                    if (pass == 0)
                        total++;
                    else
                        fprintf(stderr, "restore: %s\n", notes[i].text);
            }
        }
    }
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
    if (a.boot_entries)
        cli_boot_plan(stderr, m);
    if (!confirmed(a.yes, asr_image_is_stream(m))) {
        cli_error("restore would overwrite the targets above: pass --yes to confirm%s",
                  asr_image_is_stream(m) ? " (the image comes on standard input, so there is no asking)"
                  : isatty(STDIN_FILENO) ? "" : " (no terminal to ask on)");
        goto fail;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct progress pr;
    /* With --json too: the summary goes to stdout, the progress to a terminal on stderr (rescue
     * run reads the one and shows the other). */
    progress_init(&pr, "restore", false);
    a.opt.progress = progress_restore;
    a.opt.progress_ctx = &pr;
    a.opt.cancel = &interrupted;
    struct asr_restore_stats st;
    rc = asr_restore_run(rs, &a.opt, &st, &err);
    progress_done(&pr);
    if (rc == ASR_OK && a.boot_entries)
        cli_boot_entries(m, &a.t, &a.boot);
    int layers = EXIT_OK;
    if (a.json)
        layers = print_json(&a, m, rs, &st, rc, &err);
    else if (!rc) {
        print_text(m, rs, &st);
        layers = verify_layers(&a, m, rc, NULL);
        cli_boot_print(stderr, &a.boot);
    }
    if (a.boot.failed)
        cli_error("restore: the disks are restored, but their UEFI boot entries are not: %s", a.boot.why);
    if (rc) {
        cli_error("%s", err.msg);
        print_target_state(rs, m, rc);
    }
    int exit_code = rc || st.damaged_count || layers || a.boot.failed ? EXIT_FAIL : EXIT_OK;
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
