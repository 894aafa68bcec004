/* asrimg layout: each disk's geometry, partition table and identifiers, which way its layout was
 * read and why, and for each partition its filesystem, used bytes, whether it is critical (and
 * why) and how a backup would take it. */
#include "cli.h"
#include "table.h"

#include <string.h>

#include "args.h"
#include "disks.h"
#include "json.h"
#include "util.h"

static const struct asr_volume_info *volume_of(const struct asr_volume_info *v, size_t n, uint32_t part)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == ASR_VOLUME_PARTITION && v[i].partition_number == part)
            return &v[i];
    return NULL;
}

/* Whether the volume's filesystem gave a used map: a used or header capture reads it, and a
 * whole capture may have one too (a whole-disk FAT whose sector 0 may also be an MBR). Without
 * one (no filesystem, none asrimg reads, metadata it cannot trust) nothing says what is used. */
/* Byte ranges as [offset, length] pairs. */
static void json_ranges(struct json *j, const char *name, const struct asr_ranges *r)
{
    json_arr(j, name);
    for (size_t e = 0; e < r->n; e++) {
        json_arr(j, NULL);
        json_u64(j, NULL, r->v[e].offset);
        json_u64(j, NULL, r->v[e].length);
        json_end_arr(j);
    }
    json_end_arr(j);
}

static bool has_used_map(const struct asr_volume_info *vi)
{
    return vi->map.used.n > 0;
}

enum { L_NUM, L_START, L_SIZE, L_TYPE, L_NAME, L_FS, L_USED, L_CRITICAL, L_CAPTURE, L_REASON, L_COLS };

/* One volume's row: the cells point into buf (number, start, size, used) or at vi and d. */
static void volume_cells(const struct asr_disk_desc *d, const struct asr_volume_info *vi, char buf[4][32],
                         const char *cells[L_COLS])
{
    const char *name = "";
    for (uint32_t k = 0; vi->kind == ASR_VOLUME_PARTITION && k < d->partition_count; k++)
        if (d->partitions[k].number == vi->partition_number)
            name = d->partitions[k].name;
    snprintf(buf[0], sizeof buf[0], "-"); /* a disk area has no partition number */
    if (vi->kind == ASR_VOLUME_PARTITION)
        snprintf(buf[0], sizeof buf[0], "%u", vi->partition_number);
    snprintf(buf[1], sizeof buf[1], "%llu", (unsigned long long)vi->start_bytes);
    cells[L_NUM] = buf[0];
    cells[L_START] = buf[1];
    cells[L_SIZE] = cli_bytes(vi->size_bytes, buf[2], sizeof buf[2]);
    cells[L_TYPE] = vi->type_name;
    cells[L_NAME] = name;
    cells[L_FS] = vi->map.fs_type[0] ? vi->map.fs_type : "-";
    cells[L_USED] = has_used_map(vi) ? cli_bytes(asr_ranges_bytes(&vi->map.used), buf[3], sizeof buf[3]) : "-";
    cells[L_CRITICAL] = vi->critical ? "yes" : "no";
    cells[L_CAPTURE] = cli_capture_name(vi->capture);
    cells[L_REASON] = vi->reason;
}

static void print_disk_text(const struct asr_disk *disk, uint32_t index, const struct asr_volume_info *v, size_t n)
{
    const struct asr_disk_desc *d = asr_disk_desc(disk);
    char a[32], id[37];
    cli_disk_id(d, id);
    printf("disk %u: %s, %s, sectors %u/%u, label %s, id %s\n", index, asr_disk_path(disk),
           cli_bytes(d->size_bytes, a, sizeof a), d->logical_sector, d->physical_sector, cli_label_name(d->label), id);
    printf("  %s\n", asr_disk_reading(disk));
    static const char *const headers[L_COLS] = {"#",    "start", "size",     "type",    "name",
                                                "fs",   "used",  "critical", "capture", "reason"};
    struct table t;
    char buf[4][32];
    const char *cells[L_COLS];
    table_init(&t, stdout, "  ", "lrrlolrlll", headers);
    for (size_t i = 0; i < n; i++) {
        volume_cells(d, &v[i], buf, cells);
        table_measure(&t, cells);
    }
    table_header(&t);
    for (size_t i = 0; i < n; i++) {
        const struct asr_volume_info *vi = &v[i];
        volume_cells(d, vi, buf, cells);
        table_row(&t, cells);
        /* The note is about the capture the volume gets when selected: under a skipped one, say
         * so, since it is what --volumes would bring (a whole capture, damage the map took). */
        if (vi->warning[0])
            printf("      note: %s%s\n", vi->capture == ASR_CAPTURE_SKIP ? "if selected: " : "", vi->warning);
    }
    const char *w = asr_disk_warnings(disk);
    while (*w) {
        const char *nl = strchr(w, '\n');
        int len = nl ? (int)(nl - w) : (int)strlen(w);
        printf("  warning: %.*s\n", len, w);
        w += len + (nl ? 1 : 0);
    }
}

enum { S_NAME, S_ON, S_SIZE, S_TYPE, S_FS, S_USED, S_CRITICAL, S_CAPTURE, S_REASON, S_COLS };

static void stacked_cells(const struct asr_stacked_volume *sv, char buf[3][32], const char *cells[S_COLS])
{
    const struct asr_volume_info *vi = &sv->info;
    snprintf(buf[0], sizeof buf[0], "%u:%u", vi->disk_index, vi->partition_number);
    cells[S_NAME] = sv->name;
    cells[S_ON] = buf[0];
    cells[S_SIZE] = cli_bytes(vi->size_bytes, buf[1], sizeof buf[1]);
    cells[S_TYPE] = vi->type_name;
    cells[S_FS] = vi->map.fs_type[0] ? vi->map.fs_type : "-";
    cells[S_USED] = has_used_map(vi) ? cli_bytes(asr_ranges_bytes(&vi->map.used), buf[2], sizeof buf[2]) : "-";
    cells[S_CRITICAL] = vi->critical ? "yes" : "no";
    cells[S_CAPTURE] = cli_capture_name(vi->capture);
    cells[S_REASON] = vi->reason;
}

/* The volumes inside storage stacks (LVs), which span disks, after the disks; then what looking
 * through the stacks and the roots' configuration found wrong. */
static void print_machine_text(const struct asr_machine *m)
{
    const struct asr_stacked_volume *const *sv;
    size_t n = asr_machine_stacked(m, &sv);
    if (n) {
        static const char *const headers[S_COLS] = {"volume", "on",   "size",     "type",    "fs",
                                                    "used",   "critical", "capture", "reason"};
        struct table t;
        char buf[3][32];
        const char *cells[S_COLS];
        printf("\nstorage stacks (\"on\": the disk:partition of the first extent)\n");
        table_init(&t, stdout, "  ", "llrllrlll", headers);
        for (size_t i = 0; i < n; i++) {
            stacked_cells(sv[i], buf, cells);
            table_measure(&t, cells);
        }
        table_header(&t);
        for (size_t i = 0; i < n; i++) {
            stacked_cells(sv[i], buf, cells);
            table_row(&t, cells);
            if (sv[i]->info.warning[0])
                printf("      note: %s%s\n", sv[i]->info.capture == ASR_CAPTURE_SKIP ? "if selected: " : "",
                       sv[i]->info.warning);
        }
    }
    const char *w = asr_machine_warnings(m);
    if (*w)
        putchar('\n');
    while (*w) {
        const char *nl = strchr(w, '\n');
        int len = nl ? (int)(nl - w) : (int)strlen(w);
        printf("warning: %.*s\n", len, w);
        w += len + (nl ? 1 : 0);
    }
}

static void print_stacked_json(struct json *j, const struct asr_machine *m, uint32_t disk, bool extents)
{
    const struct asr_stacked_volume *const *sv;
    size_t n = asr_machine_stacked(m, &sv);
    json_arr(j, "logical_volumes"); /* the LVs whose first extent is on this disk */
    for (size_t i = 0; i < n; i++) {
        const struct asr_volume_info *vi = &sv[i]->info;
        if (vi->disk_index != disk)
            continue;
        json_obj(j, NULL);
        json_str(j, "name", sv[i]->name);
        json_u64(j, "partition", vi->partition_number);
        json_u64(j, "size_bytes", vi->size_bytes);
        json_str(j, "type", vi->type_name);
        json_str(j, "fs", vi->map.fs_type);
        json_str(j, "fs_uuid", vi->map.fs_uuid);
        json_str(j, "fs_label", vi->map.fs_label);
        if (has_used_map(vi))
            json_u64(j, "used_bytes", asr_ranges_bytes(&vi->map.used));
        else
            json_null(j, "used_bytes");
        json_u64(j, "cleared_bytes", asr_ranges_bytes(&vi->map.cleared));
        json_u64(j, "capture_bytes", asr_volume_capture_bytes(vi));
        json_bool(j, "critical", vi->critical);
        json_str(j, "reason", vi->reason);
        json_str(j, "capture", cli_capture_name(vi->capture));
        json_str(j, "warning", vi->warning);
        if (extents && (vi->capture == ASR_CAPTURE_USED || vi->capture == ASR_CAPTURE_HEADER)) {
            json_ranges(j, "extents", &vi->map.used); /* in the LV's own bytes */
            json_ranges(j, "cleared", &vi->map.cleared);
        }
        json_end_obj(j);
    }
    json_end_arr(j);
}

static void json_lines(struct json *j, const char *w)
{
    while (*w) {
        const char *nl = strchr(w, '\n');
        size_t len = nl ? (size_t)(nl - w) : strlen(w);
        char line[640];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), w);
        json_str(j, NULL, line);
        w += len + (nl ? 1 : 0);
    }
}

static void print_disk_json(struct json *j, const struct asr_disk *disk, uint32_t index, const struct asr_volume_info *v,
                            size_t n, const struct asr_machine *m, bool extents)
{
    const struct asr_disk_desc *d = asr_disk_desc(disk);
    char id[37];
    json_obj(j, NULL);
    json_str(j, "path", asr_disk_path(disk));
    json_u64(j, "size_bytes", d->size_bytes);
    json_u64(j, "logical_sector", d->logical_sector);
    json_u64(j, "physical_sector", d->physical_sector);
    json_str(j, "label", cli_label_name(d->label));
    cli_disk_id(d, id);
    json_str(j, "id", id);
    json_str(j, "reading", asr_disk_reading(disk));
    json_arr(j, "partitions");
    uint32_t rows = d->label == ASR_LABEL_NONE ? 1 : d->partition_count;
    for (uint32_t k = 0; k < rows; k++) {
        const struct asr_partition_desc *p = d->label == ASR_LABEL_NONE ? NULL : &d->partitions[k];
        const struct asr_volume_info *vi = volume_of(v, n, p ? p->number : 0);
        json_obj(j, NULL);
        json_u64(j, "number", p ? p->number : 0);
        json_u64(j, "start_bytes", p ? p->start_bytes : 0);
        json_u64(j, "size_bytes", p ? p->size_bytes : d->size_bytes);
        json_str(j, "type", p ? asr_disk_type_name(disk, k) : "whole disk");
        if (p && d->label == ASR_LABEL_GPT) {
            cli_uuid(p->type_guid, true, id);
            json_str(j, "type_guid", id);
            cli_uuid(p->part_guid, true, id);
            json_str(j, "guid", id);
            json_u64(j, "attributes", p->attributes);
        } else if (p) {
            snprintf(id, sizeof id, "0x%02x", p->mbr_type);
            json_str(j, "mbr_type", id);
            json_bool(j, "bootable", p->bootable);
            json_str(j, "kind", p->kind == ASR_PART_EXTENDED ? "extended" : p->kind == ASR_PART_LOGICAL ? "logical" : "primary");
        }
        json_str(j, "name", p ? p->name : "");
        json_str(j, "fs", vi ? vi->map.fs_type : "");
        json_str(j, "fs_uuid", vi ? vi->map.fs_uuid : "");
        json_str(j, "fs_label", vi ? vi->map.fs_label : "");
        json_u64(j, "block_size", vi ? vi->map.block_size : 0);
        /* used_bytes: what the filesystem's map says is in use, null without a map (the text's
         * "-"); capture_bytes: what a backup with this selection reads (backup --json's key). */
        if (vi && has_used_map(vi))
            json_u64(j, "used_bytes", asr_ranges_bytes(&vi->map.used));
        else
            json_null(j, "used_bytes");
        /* cleared_bytes: bytes the filesystem holds but never reads in its state (an empty ext
         * journal's log), not in used_bytes: a used capture records them as zeros unread. */
        json_u64(j, "cleared_bytes", vi ? asr_ranges_bytes(&vi->map.cleared) : 0);
        json_u64(j, "capture_bytes", vi ? asr_volume_capture_bytes(vi) : 0);
        json_bool(j, "critical", vi && vi->critical);
        json_str(j, "reason", vi ? vi->reason : "extended partition: a container for logical partitions");
        json_str(j, "capture", vi ? cli_capture_name(vi->capture) : "skip");
        json_str(j, "warning", vi ? vi->warning : "");
        /* --extents: the byte ranges a used/header capture reads, relative to the partition, so
         * scripts (bench/) can read exactly what a backup reads. */
        if (extents && vi && (vi->capture == ASR_CAPTURE_USED || vi->capture == ASR_CAPTURE_HEADER)) {
            json_ranges(j, "extents", &vi->map.used);
            json_ranges(j, "cleared", &vi->map.cleared); /* captured as zeros, not read */
        }
        json_end_obj(j);
    }
    json_end_arr(j);
    json_arr(j, "areas"); /* bytes outside every partition captured like a volume */
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == ASR_VOLUME_AREA) {
            json_obj(j, NULL);
            json_str(j, "type", v[i].type_name);
            json_u64(j, "start_bytes", v[i].start_bytes);
            json_u64(j, "size_bytes", v[i].size_bytes);
            json_u64(j, "capture_bytes", asr_volume_capture_bytes(&v[i]));
            json_str(j, "capture", cli_capture_name(v[i].capture));
            json_str(j, "reason", v[i].reason);
            json_end_obj(j);
        }
    json_end_arr(j);
    print_stacked_json(j, m, index, extents);
    /* The stacks' and roots' warnings are the machine's, not a disk's: the first disk carries them,
     * so that the top level stays a list of disks. */
    json_arr(j, "warnings");
    json_lines(j, asr_disk_warnings(disk));
    if (index == 0)
        json_lines(j, asr_machine_warnings(m));
    json_end_arr(j);
    json_end_obj(j);
}

int cmd_layout(int argc, char **argv)
{
    bool as_json = false, extents = false;
    const char *selection = "critical", *v;
    const char *paths[ASR_MAX_DISKS];
    uint32_t ndisks = 0;
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    struct cli_keys keys = {0};
    int krc = EXIT_OK;
    for (int opt; (opt = cli_args_next(&args, &v));) {
        if (cli_keys_option(&keys, opt, v, &krc)) {
            if (krc != EXIT_OK)
                return krc;
        } else if (opt == OPT_JSON)
            as_json = true;
        else if (opt == OPT_EXTENTS)
            extents = true;
        else if (opt == OPT_VOLUMES)
            selection = v;
        else if (opt == ARG_HELP)
            return EXIT_OK;
        else if (opt != ARG_WORD)
            return EXIT_USAGE;
        else if (ndisks < ASR_MAX_DISKS)
            paths[ndisks++] = v;
        else
            return cli_error("layout: at most %u disks", ASR_MAX_DISKS), EXIT_USAGE;
    }
    if (!ndisks)
        return cli_error("layout: no disk given (see 'asrimg layout --help')"), EXIT_USAGE;
    if (extents && !as_json)
        return cli_error("layout: --extents needs --json"), EXIT_USAGE;
    struct cli_disks d;
    struct asr_error err = {0};
    int rc = cli_disks_open(&d, paths, ndisks, selection, &keys, &err);
    if (rc != EXIT_OK) {
        cli_error("%s", err.msg);
    } else if (as_json) {
        struct json j;
        json_begin(&j, stdout);
        json_arr(&j, NULL);
        for (uint32_t i = 0; i < d.n; i++)
            print_disk_json(&j, d.disk[i], i, d.vols[i], d.count[i], d.machine, extents);
        json_end_arr(&j);
        json_finish(&j);
    } else {
        for (uint32_t i = 0; i < d.n; i++) {
            if (i)
                putchar('\n');
            print_disk_text(d.disk[i], i, d.vols[i], d.count[i]);
        }
        print_machine_text(d.machine);
    }
    cli_disks_close(&d);
    return rc;
}
