/* asrimg info: what an image holds, for people (a table) and scripts (--json). */
#include "cli.h"
#include "table.h"

#include <string.h>
#include <time.h>

#include "args.h"
#include "image_ref.h"
#include "json.h"
#include "machine.h"
#include "stacks.h"
#include "util.h"

static const char *region_name(uint16_t k)
{
    static const char *const names[] = {"?", "mbr", "post-mbr-gap", "gpt-header", "gpt-entries",
                                        "gpt-backup-entries", "gpt-backup-header", "ebr", "other"};
    return k < 9 ? names[k] : "?";
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static void print_features(const struct asr_reader *r, const struct asr_image_info *i)
{
    const uint64_t sets[3] = {i->incompat, i->ro_compat, i->compat};
    const char *cls[3] = {"incompat", "ro-compat", "compat"};
    bool any = false;
    printf("features:   ");
    for (int c = 0; c < 3; c++)
        for (unsigned bit = 0; bit < 64; bit++)
            if (sets[c] >> bit & 1) {
                const char *n = asr_reader_feature_name(r, (enum asr_feature_class)c, bit);
                printf("%s%s:%s", any ? ", " : "", cls[c], n ? n : "unnamed");
                any = true;
            }
    printf("%s\n", any ? "" : "none");
}


enum { I_NUM, I_START, I_SIZE, I_TYPE, I_CAPTURE, I_NAME, I_COLS };

static void partition_cells(const struct asr_disk_desc *dk, const struct asr_partition_desc *pt, char buf[4][96],
                            const char *cells[I_COLS])
{
    snprintf(buf[0], 96, "%u", pt->number);
    snprintf(buf[1], 96, "%llu", (unsigned long long)pt->start_bytes);
    cli_part_type(dk, pt, buf[3]);
    cells[I_NUM] = buf[0];
    cells[I_START] = buf[1];
    cells[I_SIZE] = cli_bytes(pt->size_bytes, buf[2], 96);
    cells[I_TYPE] = buf[3];
    cells[I_CAPTURE] = cli_capture_name(pt->capture);
    cells[I_NAME] = pt->name;
}

static void print_partitions(const struct asr_disk_desc *dk)
{
    static const char *const headers[I_COLS] = {"#", "start", "size", "type", "capture", "name"};
    struct table t;
    char buf[4][96];
    const char *cells[I_COLS];
    if (!dk->partition_count)
        return;
    table_init(&t, stdout, "  ", "lrrllo", headers);
    for (uint32_t p = 0; p < dk->partition_count; p++) {
        partition_cells(dk, &dk->partitions[p], buf, cells);
        table_measure(&t, cells);
    }
    table_header(&t);
    for (uint32_t p = 0; p < dk->partition_count; p++) {
        partition_cells(dk, &dk->partitions[p], buf, cells);
        table_row(&t, cells);
    }
}

static void print_text(const char *path, struct asr_reader *r)
{
    const struct asr_image_info *i = asr_reader_info(r);
    char a[32], b[32], c[32], id[37];
    char when[64];
    time_t t = (time_t)i->created_unix;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
    cli_uuid(i->uuid, false, id);
    printf("image:      %s (%u part%s, %s)\n", path, i->part_count, i->part_count == 1 ? "" : "s",
           cli_bytes(i->image_bytes, a, sizeof a));
    if (i->split_size)
        printf("split:      parts of at most %s\n", cli_bytes(i->split_size, a, sizeof a));
    printf("format:     version %u, written by %s %s on %s\n", i->format_version, i->creator, i->creator_version, when);
    printf("image id:   %s\n", id);
    print_features(r, i);
    cli_machine_print(stdout, asr_reader_machine(r));
    printf("data:       %s captured: %s data, %s zero, %s unreadable\n",
           cli_bytes(i->data_bytes + i->zero_bytes + i->unreadable_bytes, a, sizeof a),
           cli_bytes(i->data_bytes, b, sizeof b), cli_bytes(i->zero_bytes, c, sizeof c),
           cli_bytes(i->unreadable_bytes, id, sizeof id));
    printf("stored:     %s in %llu chunks (unique %s); dedup %.2fx, compression %.2fx, overall %.2fx\n",
           cli_bytes(i->stored_bytes, a, sizeof a), (unsigned long long)i->chunk_count,
           cli_bytes(i->unique_bytes, b, sizeof b), ratio(i->data_bytes, i->unique_bytes),
           ratio(i->unique_bytes, i->stored_bytes), ratio(i->data_bytes + i->zero_bytes, i->stored_bytes));
    for (uint32_t d = 0; d < asr_reader_disk_count(r); d++) {
        const struct asr_disk_desc *dk = asr_reader_disk(r, d);
        cli_disk_id(dk, id);
        printf("\ndisk %u:     %s, %s (%llu bytes), sectors %u/%u, label %s, id %s\n", d, dk->source,
               cli_bytes(dk->size_bytes, a, sizeof a), (unsigned long long)dk->size_bytes, dk->logical_sector,
               dk->physical_sector, cli_label_name(dk->label), id);
        print_partitions(dk);
        for (uint32_t g = 0; g < dk->region_count; g++)
            printf("  raw region: %-18s %8u bytes at %llu\n", region_name(dk->regions[g].kind), dk->regions[g].length,
                   (unsigned long long)dk->regions[g].offset);
    }
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
        const struct asr_volume_stats *s = asr_reader_volume_stats(r, v);
        char where[40] = "area (outside every partition)";
        if (vd->kind == ASR_VOLUME_PARTITION)
            snprintf(where, sizeof where, "partition %u", vd->partition_number);
        printf("\nvolume %u:   disk %u %s, fs %s%s%s%s%s, size %s, used %s, captured %s in %llu extents\n", v,
               vd->disk_index, where, vd->fs_type[0] ? vd->fs_type : vd->kind == ASR_VOLUME_AREA ? "none" : "unknown",
               vd->fs_label[0] ? " label " : "", vd->fs_label, vd->fs_uuid[0] ? " uuid " : "", vd->fs_uuid,
               cli_bytes(vd->size_bytes, a, sizeof a), cli_bytes(vd->used_bytes, b, sizeof b),
               cli_bytes(s->data_bytes + s->zero_bytes + s->unreadable_bytes, c, sizeof c),
               (unsigned long long)s->extent_count);
    }
    struct cli_stacks st;
    cli_stacks_from_reader(r, &st);
    if (st.n) {
        printf("\n");
        cli_stacks_print(stdout, &st, "");
    }
}

static void print_json(const char *path, struct asr_reader *r)
{
    const struct asr_image_info *i = asr_reader_info(r);
    struct json j;
    char id[37];
    json_begin(&j, stdout);
    json_obj(&j, NULL);
    json_str(&j, "path", path);
    json_u64(&j, "format_version", i->format_version);
    cli_uuid(i->uuid, false, id);
    json_str(&j, "uuid", id);
    json_str(&j, "creator", i->creator);
    json_str(&j, "creator_version", i->creator_version);
    json_u64(&j, "created_unix", i->created_unix);
    json_u64(&j, "incompat_features", i->incompat);
    json_u64(&j, "ro_compat_features", i->ro_compat);
    json_u64(&j, "compat_features", i->compat);
    json_u64(&j, "parts", i->part_count);
    json_u64(&j, "split_size", i->split_size);
    json_u64(&j, "image_bytes", i->image_bytes);
    json_u64(&j, "max_chunk_size", i->max_chunk_size);
    json_u64(&j, "chunks", i->chunk_count);
    json_u64(&j, "stored_bytes", i->stored_bytes);
    json_u64(&j, "unique_bytes", i->unique_bytes);
    json_u64(&j, "data_bytes", i->data_bytes);
    json_u64(&j, "zero_bytes", i->zero_bytes);
    json_u64(&j, "unreadable_bytes", i->unreadable_bytes);
    json_dbl(&j, "dedup_ratio", ratio(i->data_bytes, i->unique_bytes));
    json_dbl(&j, "compression_ratio", ratio(i->unique_bytes, i->stored_bytes));
    cli_machine_json(&j, asr_reader_machine(r));
    json_arr(&j, "disks");
    for (uint32_t d = 0; d < asr_reader_disk_count(r); d++) {
        const struct asr_disk_desc *dk = asr_reader_disk(r, d);
        json_obj(&j, NULL);
        json_str(&j, "path", dk->source);
        json_u64(&j, "size_bytes", dk->size_bytes);
        json_u64(&j, "logical_sector", dk->logical_sector);
        json_u64(&j, "physical_sector", dk->physical_sector);
        json_str(&j, "label", cli_label_name(dk->label));
        cli_disk_id(dk, id);
        json_str(&j, "id", id);
        json_arr(&j, "partitions");
        for (uint32_t p = 0; p < dk->partition_count; p++) {
            const struct asr_partition_desc *pt = &dk->partitions[p];
            json_obj(&j, NULL);
            json_u64(&j, "number", pt->number);
            json_u64(&j, "start_bytes", pt->start_bytes);
            json_u64(&j, "size_bytes", pt->size_bytes);
            if (dk->label == ASR_LABEL_GPT) {
                cli_uuid(pt->type_guid, true, id);
                json_str(&j, "type", id);
                cli_uuid(pt->part_guid, true, id);
                json_str(&j, "guid", id);
                json_u64(&j, "attributes", pt->attributes);
            } else {
                snprintf(id, sizeof id, "0x%02x", pt->mbr_type);
                json_str(&j, "type", id);
                json_bool(&j, "bootable", pt->bootable);
            }
            json_str(&j, "name", pt->name);
            json_str(&j, "capture", cli_capture_name(pt->capture));
            json_end_obj(&j);
        }
        json_end_arr(&j);
        json_arr(&j, "raw_regions");
        for (uint32_t g = 0; g < dk->region_count; g++) {
            json_obj(&j, NULL);
            json_str(&j, "kind", region_name(dk->regions[g].kind));
            json_u64(&j, "offset", dk->regions[g].offset);
            json_u64(&j, "length", dk->regions[g].length);
            json_end_obj(&j);
        }
        json_end_arr(&j);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    json_arr(&j, "volumes");
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
        const struct asr_volume_stats *s = asr_reader_volume_stats(r, v);
        json_obj(&j, NULL);
        json_u64(&j, "disk", vd->disk_index);
        json_u64(&j, "partition", vd->partition_number);
        json_str(&j, "kind", vd->kind == ASR_VOLUME_AREA ? "area" : "partition");
        json_u64(&j, "disk_offset", vd->disk_offset);
        json_u64(&j, "size_bytes", vd->size_bytes);
        json_u64(&j, "used_bytes", vd->used_bytes);
        json_u64(&j, "block_size", vd->block_size);
        json_str(&j, "fs", vd->fs_type);
        json_str(&j, "fs_uuid", vd->fs_uuid);
        json_str(&j, "fs_label", vd->fs_label);
        json_u64(&j, "extents", s->extent_count);
        json_u64(&j, "data_bytes", s->data_bytes);
        json_u64(&j, "zero_bytes", s->zero_bytes);
        json_u64(&j, "unreadable_bytes", s->unreadable_bytes);
        json_bool(&j, "filesystem_grown", false);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    struct cli_stacks st;
    cli_stacks_from_reader(r, &st);
    cli_stacks_json(&j, &st);
    json_end_obj(&j);
    json_finish(&j);
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool as_json = false;
    const char *v;
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    for (int opt; (opt = cli_args_next(&args, &v));) {
        if (opt == OPT_JSON)
            as_json = true;
        else if (opt == ARG_HELP)
            return EXIT_OK;
        else if (opt != ARG_WORD)
            return EXIT_USAGE;
        else if (!path)
            path = v;
        else
            return cli_error("info: one image at a time"), EXIT_USAGE;
    }
    if (!path)
        return cli_error("info: no image given (see 'asrimg info --help')"), EXIT_USAGE;
    struct cli_image_ref im;
    struct asr_error err = {0};
    if (cli_image_ref_open_lazy(path, &im, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    const char *name = im.ref ? asr_store_ref_name(im.ref) : path;
    if (as_json)
        print_json(name, im.r);
    else
        print_text(name, im.r);
    cli_image_ref_close(&im);
    return EXIT_OK;
}
