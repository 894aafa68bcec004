/* asrimg restore: lays an image onto replacement disks, bare metal. Checks every target before
 * writing anything, shows the plan (which image disk goes where, what each target holds now and
 * will hold), asks for confirmation (or --yes), then restores with progress on a terminal and a
 * summary (text or --json). Also `asrimg verify IMAGE --against DISK...`, which compares disks
 * with an image through the same engine code as restore --verify. */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* The image: a file or split set, or a stream on standard input. */
struct image_src {
    struct asr_reader *r;
    struct asr_stream *s;
};

static uint32_t src_disk_count(const struct image_src *m)
{
    return m->r ? asr_reader_disk_count(m->r) : asr_stream_disk_count(m->s);
}
static const struct asr_disk_desc *src_disk(const struct image_src *m, uint32_t i)
{
    return m->r ? asr_reader_disk(m->r, i) : asr_stream_disk(m->s, i);
}
static uint32_t src_volume_count(const struct image_src *m)
{
    return m->r ? asr_reader_volume_count(m->r) : asr_stream_volume_count(m->s);
}
static const struct asr_volume_desc *src_volume(const struct image_src *m, uint32_t i)
{
    return m->r ? asr_reader_volume(m->r, i) : asr_stream_volume(m->s, i);
}

struct restore_args {
    const char *cmd, *to_opt; /* "restore", "--to"; or "verify", "--against": for messages */
    const char *image;
    struct asr_restore_target_spec to[256];
    const char *arg[256]; /* each --to as given */
    size_t nto;
    bool explicit_disks, positional;
    bool yes, json;
    struct asr_restore_options opt;
};

static const char usage_text[] =
    "usage: asrimg restore IMAGE|- --to TARGET [--to TARGET ...] [--yes] [--new-ids] [--grow] [--verify]\n"
    "                        [--discard|--zero-unused] [--keep-going] [--threads N] [--json]\n"
    "  one image disk: every --to target receives it (mirrors, one pass over the image);\n"
    "  several: --to targets in the image's disk order, or --to N=TARGET (N as `asrimg info` numbers disks;\n"
    "  a file named N=x is given as ./N=x);\n"
    "  IMAGE - reads the image from standard input (a split set's parts concatenated in order)";

/* "N=TARGET" names image disk N when N is all digits; anything else is the next disk in order. A
 * file whose name starts with digits and '=' is given with a directory, as ./1=x.img. */
static int add_target(struct restore_args *a, const char *v)
{
    if (a->nto == sizeof a->to / sizeof a->to[0])
        return cli_error("%s: too many %s targets", a->cmd, a->to_opt), EXIT_USAGE;
    const char *eq = strchr(v, '=');
    size_t k = eq ? (size_t)(eq - v) : 0;
    a->arg[a->nto] = v;
    if (!eq || k == 0 || strspn(v, "0123456789") != k) {
        a->to[a->nto++] = (struct asr_restore_target_spec){v, 0};
        a->positional = true;
        return EXIT_OK;
    }
    /* The format's limit here; whether this image has disk N once it is open (map_targets). */
    unsigned long disk;
    char num[16] = "";
    if (k < sizeof num)
        memcpy(num, v, k);
    if (k >= sizeof num || !cli_parse_uint(num, ASR_MAX_DISKS - 1, &disk))
        return cli_error("%s: %s %s: no image disk %.*s (an image holds at most %u; a file named so is given as ./%s)",
                         a->cmd, a->to_opt, v, (int)k, v, ASR_MAX_DISKS, v),
               EXIT_USAGE;
    if (!eq[1])
        return cli_error("%s: %s %s: no target after '='", a->cmd, a->to_opt, v), EXIT_USAGE;
    a->to[a->nto++] = (struct asr_restore_target_spec){eq + 1, (uint32_t)disk};
    a->explicit_disks = true;
    return EXIT_OK;
}

static int parse_args(int argc, char **argv, struct restore_args *a)
{
    *a = (struct restore_args){.cmd = "restore", .to_opt = "--to"};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        bool has_value = i + 1 < argc;
        unsigned long v;
        int rc = EXIT_OK;
        if (!strcmp(o, "--to") && has_value)
            rc = add_target(a, argv[++i]);
        else if (!strcmp(o, "--yes"))
            a->yes = true;
        else if (!strcmp(o, "--json"))
            a->json = true;
        else if (!strcmp(o, "--new-ids"))
            a->opt.new_ids = true;
        else if (!strcmp(o, "--grow"))
            a->opt.grow = true;
        else if (!strcmp(o, "--verify"))
            a->opt.verify = true;
        else if (!strcmp(o, "--keep-going"))
            a->opt.keep_going = true;
        else if (!strcmp(o, "--discard") || !strcmp(o, "--zero-unused")) {
            if (a->opt.unused)
                return cli_error("restore: --discard and --zero-unused exclude each other"), EXIT_USAGE;
            a->opt.unused = o[2] == 'd' ? ASR_UNUSED_DISCARD : ASR_UNUSED_ZERO;
        } else if (!strcmp(o, "--threads") && has_value) {
            if (!cli_parse_uint(argv[++i], 64, &v) || v == 0)
                return cli_error("restore: --threads %s: a number from 1 to 64", argv[i]), EXIT_USAGE;
            a->opt.threads = (unsigned)v;
        } else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            puts(usage_text);
            exit(EXIT_OK);
        } else if (o[0] == '-' && o[1]) {
            return cli_error("restore: unknown or incomplete option %s (see 'asrimg restore --help')", o), EXIT_USAGE;
        } else if (!a->image) {
            a->image = o;
        } else {
            return cli_error("restore: one image at a time (targets go after --to)"), EXIT_USAGE;
        }
        if (rc)
            return rc;
    }
    if (!a->image || !a->nto)
        return cli_error("%s", usage_text), EXIT_USAGE;
    if (a->explicit_disks && a->positional)
        return cli_error("restore: give every --to as N=TARGET, or none"), EXIT_USAGE;
    return EXIT_OK;
}

/* Without N=, targets follow the image's disks: one disk takes them all as mirrors. With N=,
 * the image must have disk N: usage, not a file named "N=TARGET". */
static int map_targets(struct restore_args *a, const struct image_src *r)
{
    uint32_t disks = src_disk_count(r);
    for (size_t i = 0; a->explicit_disks && i < a->nto; i++)
        if (a->to[i].disk_index >= disks)
            return cli_error("%s: %s %s: no image disk %u (the image holds %u, numbered from 0; a file named so is "
                             "given as ./%s)",
                             a->cmd, a->to_opt, a->arg[i], a->to[i].disk_index, disks, a->arg[i]),
                   EXIT_USAGE;
    if (a->explicit_disks)
        return EXIT_OK;
    if (disks > 1 && a->nto != disks)
        return cli_error("restore: the image holds %u disks: give one --to per disk in order, or --to N=TARGET", disks),
               EXIT_FAIL;
    for (size_t i = 0; i < a->nto; i++)
        a->to[i].disk_index = disks > 1 ? (uint32_t)i : 0;
    return EXIT_OK;
}

/* ---- the plan ------------------------------------------------------------------------------ */

/* The image's volume of partition `number` of a disk (0: of a disk without a partition table),
 * or NULL. */
static const struct asr_volume_desc *partition_volume(const struct image_src *r, uint32_t disk, uint32_t number)
{
    for (uint32_t v = 0; v < src_volume_count(r); v++) {
        const struct asr_volume_desc *vd = src_volume(r, v);
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
static const char *untouched_why(const struct image_src *r, uint32_t disk, const struct asr_partition_desc *p)
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
static void plan_cells(const struct image_src *r, uint32_t disk, uint32_t i, const struct asr_volume_desc *area,
                       const struct asr_grow_plan *plan, char buf[5][200], const char *cells[R_COLS])
{
    const struct asr_disk_desc *d = src_disk(r, disk);
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
static void plan_rows(const struct image_src *r, uint32_t disk, const struct asr_grow_plan *plan, struct table *t,
                      bool print)
{
    const struct asr_disk_desc *d = src_disk(r, disk);
    char buf[5][200];
    const char *cells[R_COLS];
    uint32_t rows = d->label == ASR_LABEL_NONE ? 1 : d->partition_count;
    for (uint32_t i = 0; i < rows; i++) {
        plan_cells(r, disk, d->label == ASR_LABEL_NONE ? d->partition_count : i, NULL, plan, buf, cells);
        print ? table_row(t, cells) : table_measure(t, cells);
    }
    for (uint32_t v = 0; v < src_volume_count(r); v++) {
        const struct asr_volume_desc *vd = src_volume(r, v);
        if (vd->disk_index != disk || vd->kind != ASR_VOLUME_AREA)
            continue;
        plan_cells(r, disk, UINT32_MAX, vd, plan, buf, cells);
        print ? table_row(t, cells) : table_measure(t, cells);
    }
}

static void print_partitions_after(const struct image_src *r, uint32_t disk, bool grow)
{
    static const char *const headers[R_COLS] = {"#", "start", "size", "type", "name", "fs", "after the restore"};
    const struct asr_disk_desc *d = src_disk(r, disk);
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

static void print_plan(const char *image, const struct image_src *r, const struct asr_restore *rs,
                       const struct asr_restore_options *opt)
{
    char b[32], id[37];
    fprintf(stderr, "restore %s:\n", image);
    for (uint32_t d = 0; d < src_disk_count(r); d++) {
        const struct asr_disk_desc *dd = src_disk(r, d);
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

static int target_says(const struct asr_restore_target_info *t, const struct image_src *m)
{
    bool table = src_disk(m, t->disk_index)->label != ASR_LABEL_NONE;
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
static void print_target_state(const struct asr_restore *rs, const struct image_src *m, int code)
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
                        const struct image_src *r)
{
    json_arr(j, key);
    for (size_t i = 0; i < n; i++) {
        const struct asr_volume_desc *vd = src_volume(r, v[i].volume);
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
static void json_untouched(struct json *j, const struct image_src *r)
{
    json_arr(j, "untouched");
    for (uint32_t disk = 0; disk < src_disk_count(r); disk++) {
        const struct asr_disk_desc *d = src_disk(r, disk);
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

static void print_json(const struct restore_args *a, const struct image_src *r, const struct asr_restore *rs,
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
        json_end_obj(&j);
    }
    json_ranges(&j, "damaged", st->damaged, st->damaged_count, r);
    json_ranges(&j, "unreadable", st->unreadable, st->unreadable_count, r);
    json_end_obj(&j);
    json_finish(&j);
}

static void print_ranges(const char *what, const struct asr_restore_range *v, size_t n, const struct image_src *r)
{
    for (size_t i = 0; i < n; i++) {
        const struct asr_volume_desc *vd = src_volume(r, v[i].volume);
        fprintf(stderr, "  %s: volume %u offset %llu length %llu (disk %u offset %llu)", what, v[i].volume,
                (unsigned long long)v[i].offset, (unsigned long long)v[i].length, vd->disk_index,
                (unsigned long long)(vd->disk_offset + v[i].offset));
        if (v[i].chunk != ASR_REF_UNREADABLE)
            fprintf(stderr, ", chunk %llu", (unsigned long long)v[i].chunk);
        fputc('\n', stderr);
    }
}

static void print_text(const struct image_src *r, const struct asr_restore *rs, const struct asr_restore_stats *st)
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

static void on_progress(const struct asr_restore_progress *p, void *ctx)
{
    struct progress *pr = ctx;
    if (p->verifying && strcmp(pr->label, "verify")) /* --verify's read-back: a line of its own */
        progress_init(pr, "verify", !pr->enabled);
    progress_update(p->done, p->total, pr);
}

static int open_image(struct restore_args *a, struct image_src *m, struct asr_error *err)
{
    if (strcmp(a->image, "-"))
        return asr_reader_open(a->image, &m->r, err);
    if (isatty(STDIN_FILENO))
        return asr_fail_public(err, ASR_E_ARG, "restore -: standard input is a terminal, not an image stream");
    return asr_stream_open_fd(STDIN_FILENO, "standard input", &m->s, err);
}

int cmd_restore(int argc, char **argv)
{
    struct restore_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    struct asr_error err = {0};
    struct image_src m = {0};
    struct asr_restore *rs = NULL;
    int fail_code = EXIT_FAIL;
    if (open_image(&a, &m, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        goto fail;
    }
    if ((rc = map_targets(&a, &m))) {
        fail_code = rc;
        goto fail;
    }
    rc = m.r ? asr_restore_open(m.r, a.image, a.to, a.nto, false, &rs, &err)
             : asr_restore_open_stream(m.s, a.to, a.nto, &rs, &err);
    if (rc) {
        cli_error("%s", err.msg);
        goto fail;
    }
    if (asr_restore_check_options(rs, &a.opt, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        goto fail;
    }
    print_plan(a.image, &m, rs, &a.opt);
    if (!confirmed(a.yes, m.s != NULL)) {
        cli_error("restore would overwrite the targets above: pass --yes to confirm%s",
                  m.s ? " (the image comes on standard input, so there is no asking)"
                  : isatty(STDIN_FILENO) ? "" : " (no terminal to ask on)");
        goto fail;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct progress pr;
    progress_init(&pr, "restore", a.json);
    a.opt.progress = on_progress;
    a.opt.progress_ctx = &pr;
    a.opt.cancel = &interrupted;
    struct asr_restore_stats st;
    rc = asr_restore_run(rs, &a.opt, &st, &err);
    progress_done(&pr);
    if (a.json)
        print_json(&a, &m, rs, &st, rc, &err);
    else if (!rc)
        print_text(&m, rs, &st);
    if (rc) {
        cli_error("%s", err.msg);
        print_target_state(rs, &m, rc);
    }
    int exit_code = rc || st.damaged_count ? EXIT_FAIL : EXIT_OK;
    if (!rc && st.damaged_count)
        cli_error("%zu range%s of the image could not be restored (damaged chunks): listed %s", st.damaged_count,
                  st.damaged_count == 1 ? "" : "s", a.json ? "under \"damaged\"" : "above");
    asr_restore_stats_free(&st);
    asr_restore_free(rs);
    asr_reader_free(m.r);
    asr_stream_free(m.s);
    return exit_code;
fail:
    asr_restore_free(rs);
    asr_reader_free(m.r);
    asr_stream_free(m.s);
    return fail_code;
}

/* ---- verify --against ------------------------------------------------------------------------ */

struct against_out {
    struct json *j;
    uint64_t shown;
};

static void on_mismatch(const struct asr_restore_mismatch *m, void *ctx)
{
    struct against_out *o = ctx;
    if (o->j) {
        json_obj(o->j, NULL);
        json_str(o->j, "target", m->target);
        if (m->volume != UINT32_MAX)
            json_u64(o->j, "volume", m->volume);
        json_u64(o->j, "offset", m->offset);
        json_str(o->j, "what", m->what);
        json_end_obj(o->j);
    } else if (o->shown++ < 100) {
        if (m->volume == UINT32_MAX)
            fprintf(stderr, "asrimg: mismatch: %s disk offset %llu: %s\n", m->target, (unsigned long long)m->offset,
                    m->what);
        else
            fprintf(stderr, "asrimg: mismatch: %s volume %u offset %llu: %s\n", m->target, m->volume,
                    (unsigned long long)m->offset, m->what);
    }
}

/* What a comparison cannot vouch for: bytes the image does not hold. A match says nothing of
 * them, and saying "matches" without this would claim more than was checked. In JSON (j not
 * NULL) the partitions not in the image; in text those, the captured bytes compared, and the
 * rest. */
static void report_not_compared(struct asr_reader *r, struct json *j)
{
    uint64_t captured = 0;
    bool used_maps = false;
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        const struct asr_volume_stats *s = asr_reader_volume_stats(r, v);
        uint64_t held = s->data_bytes + s->zero_bytes + s->unreadable_bytes;
        captured += held;
        used_maps |= held < asr_reader_volume(r, v)->size_bytes;
    }
    char b[32];
    if (j)
        json_arr(j, "partitions_not_compared");
    else
        printf("  compared: %s captured in volumes, the raw boot regions and the partition tables\n"
               "  not compared (not in the image):", cli_bytes(captured, b, sizeof b));
    for (uint32_t d = 0; d < asr_reader_disk_count(r); d++) {
        const struct asr_disk_desc *dd = asr_reader_disk(r, d);
        for (uint32_t i = 0; i < dd->partition_count; i++) {
            const struct asr_partition_desc *p = &dd->partitions[i];
            if (p->capture != ASR_CAPTURE_SKIP || p->kind == ASR_PART_EXTENDED)
                continue;
            if (!j) {
                printf(" disk %u partition %u,", d, p->number);
                continue;
            }
            json_obj(j, NULL);
            json_u64(j, "disk", d);
            json_u64(j, "partition", p->number);
            json_end_obj(j);
        }
    }
    if (j)
        json_end_arr(j);
    else
        printf("%s the disks' space outside partitions and recorded regions\n",
               used_maps ? " free space inside volumes captured by their used blocks," : "");
}

int cmd_verify_against(const char *image, const char *const *targets, size_t n, bool new_ids, bool grow, bool json)
{
    struct restore_args a = {.cmd = "verify", .to_opt = "--against", .image = image};
    for (size_t i = 0; i < n; i++)
        if (add_target(&a, targets[i]))
            return EXIT_USAGE;
    if (a.explicit_disks && a.positional)
        return cli_error("verify: give every --against as N=DISK, or none"), EXIT_USAGE;
    struct asr_error err = {0};
    struct image_src m = {0};
    struct asr_restore *rs = NULL;
    if (asr_reader_open(image, &m.r, &err) != ASR_OK)
        return cli_error("%s", err.msg), EXIT_FAIL;
    int rc = map_targets(&a, &m);
    if (!rc && asr_restore_open(m.r, NULL, a.to, a.nto, true, &rs, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        rc = EXIT_FAIL;
    }
    struct json j;
    struct against_out o = {json ? &j : NULL, 0};
    if (!rc) {
        if (json) {
            json_begin(&j, stdout);
            json_obj(&j, NULL);
            json_str(&j, "image", image);
            json_arr(&j, "mismatches");
        }
        struct progress pr;
        progress_init(&pr, "verify", json);
        struct asr_compare_options co = {new_ids, grow, on_mismatch, &o, on_progress, &pr};
        int vr = asr_restore_compare(rs, &co, &err);
        progress_done(&pr);
        if (json) {
            json_end_arr(&j);
            json_bool(&j, "ok", vr == ASR_OK);
            if (vr)
                json_str(&j, "error", err.msg);
            report_not_compared(m.r, &j);
            json_end_obj(&j);
            json_finish(&j);
        } else if (vr) {
            cli_error("%s", err.msg);
        } else {
            printf("%s: OK: %zu disk%s the image\n", image, n, n == 1 ? " matches" : "s match");
            report_not_compared(m.r, NULL);
        }
        rc = vr ? EXIT_FAIL : EXIT_OK;
    }
    asr_restore_free(rs);
    asr_reader_free(m.r);
    return rc;
}
