/* make_golden: writes the golden images of the current format version into a directory. Run it
 * once when a format version is introduced and commit the files; test_golden.c then checks that
 * every later asrimg still reads them. Usage: make_golden DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr_format.h"
#include "golden_content.h"
#include "memstore.h"

static int die(const char *what, const struct asr_error *e)
{
    fprintf(stderr, "make_golden: %s: %s\n", what, e->msg);
    exit(1);
}

static void put_layout(struct asr_writer *w, struct asr_error *err, uint8_t *regions)
{
    static const uint8_t efi_type[16] = {0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
                                         0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b};
    static const uint8_t linux_type[16] = {0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
                                           0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4};
    struct asr_partition_desc parts[2] = {
        {.number = 1, .kind = ASR_PART_GPT, .capture = ASR_CAPTURE_USED, .start_bytes = GOLDEN_MIB,
         .size_bytes = 2 * GOLDEN_MIB, .attributes = 1},
        {.number = 2, .kind = ASR_PART_GPT, .capture = ASR_CAPTURE_USED, .start_bytes = 3 * GOLDEN_MIB,
         .size_bytes = 4 * GOLDEN_MIB, .attributes = 1ull << 60},
    };
    memcpy(parts[0].type_guid, efi_type, 16);
    memcpy(parts[1].type_guid, linux_type, 16);
    for (int i = 0; i < 16; i++) {
        parts[0].part_guid[i] = (uint8_t)(0x10 + i);
        parts[1].part_guid[i] = (uint8_t)(0x20 + i);
    }
    snprintf(parts[0].name, sizeof parts[0].name, "EFI System");
    snprintf(parts[1].name, sizeof parts[1].name, "root");
    const uint32_t lens[5] = {512, 512, 16384, 16384, 512};
    const uint64_t offs[5] = {0, 512, 1024, 8 * GOLDEN_MIB - 33 * 512, 8 * GOLDEN_MIB - 512};
    struct asr_region_desc reg[5];
    uint8_t *at = regions;
    for (unsigned r = 0; r < 5; r++) {
        for (uint32_t i = 0; i < lens[r]; i++)
            at[i] = golden_region_byte(r, i);
        reg[r] = (struct asr_region_desc){(uint16_t)(ASR_REGION_MBR + (r == 0 ? 0 : r + 1)), offs[r], lens[r], at};
        at += lens[r];
    }
    struct asr_disk_desc d = {.size_bytes = 8 * GOLDEN_MIB, .logical_sector = 512, .physical_sector = 4096,
                              .label = ASR_LABEL_GPT, .gpt_first_usable_lba = 34,
                              .gpt_last_usable_lba = 8 * GOLDEN_MIB / 512 - 34, .gpt_entry_count = 128,
                              .gpt_entry_size = 128, .partition_count = 2, .partitions = parts,
                              .region_count = 5, .regions = reg};
    snprintf(d.source, sizeof d.source, "/dev/golden");
    for (int i = 0; i < 16; i++)
        d.disk_id[i] = (uint8_t)(0xd0 + i);
    struct asr_volume_desc v[2] = {
        {.disk_index = 0, .partition_number = 1, .disk_offset = GOLDEN_MIB, .size_bytes = 2 * GOLDEN_MIB,
         .used_bytes = 200000, .block_size = 4096},
        {.disk_index = 0, .partition_number = 2, .disk_offset = 3 * GOLDEN_MIB, .size_bytes = 4 * GOLDEN_MIB,
         .used_bytes = 120000, .block_size = 1024},
    };
    snprintf(v[0].fs_type, sizeof v[0].fs_type, "vfat");
    snprintf(v[0].fs_label, sizeof v[0].fs_label, "ESP");
    snprintf(v[1].fs_type, sizeof v[1].fs_type, "ext4");
    snprintf(v[1].fs_uuid, sizeof v[1].fs_uuid, "6f1c7d2a-0c55-4e0e-9d55-2b0c2f4a9e11");
    if (asr_writer_add_disk(w, &d, err) || asr_writer_add_volume(w, &v[0], NULL, err) ||
        asr_writer_add_volume(w, &v[1], NULL, err))
        die("layout", err);
}

/* Chunk id holding volume v's bytes at off (data segments are cut at GOLDEN_V1_CHUNK multiples). */
struct placed {
    uint32_t volume;
    uint64_t offset;
    uint64_t id;
};

/* store: a store snapshot (feature external-chunks) whose chunk records go there. */
static void write_image(const char *path, uint64_t split, int level, const struct asr_machine_desc *machine,
                        struct memstore *store)
{
    struct asr_writer_options o = {.split_size = split, .max_chunk_size = GOLDEN_V1_CHUNK, .overwrite = 1,
                                   .creator_version = "0.1.0", .fixed_identity = 1, .hash_seed = GOLDEN_V1_SEED,
                                   .created_unix = GOLDEN_V1_CREATED, .external_chunks = store != NULL};
    memcpy(o.uuid, GOLDEN_V1_UUID, 16);
    struct asr_writer *w;
    struct asr_error err = {0};
    if (asr_writer_create(path, &o, &w, &err))
        die(path, &err);
    static uint8_t regions[40000], buf[GOLDEN_V1_CHUNK], enc[2 * GOLDEN_V1_CHUNK];
    put_layout(w, &err, regions);
    if (machine && asr_writer_set_machine(w, machine, &err))
        die("machine", &err);
    struct placed placed[64];
    unsigned np = 0;
    for (unsigned s = 0; s < GOLDEN_V1_SEGMENTS; s++) {
        const struct golden_segment *g = &golden_v1_plan[s];
        int rc = 0, unr;
        if (g->kind == G_ZERO)
            rc = asr_writer_add_zero(w, g->volume, g->offset, g->length, &err);
        else if (g->kind == G_UNREADABLE)
            rc = asr_writer_add_unreadable(w, g->volume, g->offset, g->length, &err);
        else if (g->kind == G_DUP) {
            uint64_t id = UINT64_MAX, base = 0;
            for (unsigned k = 0; k < np; k++)
                if (placed[k].volume == g->src_volume && placed[k].offset <= g->src_offset &&
                    g->src_offset + g->length <= placed[k].offset + GOLDEN_V1_CHUNK)
                    id = placed[k].id, base = placed[k].offset;
            for (uint64_t i = 0; i < g->length; i++)
                buf[i] = golden_expected(g->volume, g->offset + i, &unr);
            rc = asr_writer_add_extent(w, g->volume, g->offset, g->length, id, (uint32_t)(g->src_offset - base), buf,
                                       &err);
        } else {
            for (uint64_t at = g->offset; at < g->offset + g->length && !rc; at += GOLDEN_V1_CHUNK) {
                size_t n = g->offset + g->length - at < GOLDEN_V1_CHUNK ? g->offset + g->length - at : GOLDEN_V1_CHUNK;
                for (size_t i = 0; i < n; i++)
                    buf[i] = golden_byte(g->volume, at + i);
                struct asr_chunk c;
                uint64_t id;
                rc = asr_chunk_encode(buf, n, level, asr_writer_hash_seed(w), enc, sizeof enc, &c, &err);
                if (!rc && store) {
                    uint8_t sid[32];
                    memstore_id(buf, n, sid);
                    if (memstore_put(store, sid, &c))
                        die("out of memory", &err);
                    rc = asr_writer_append_external(w, sid, &c, &id, &err);
                } else if (!rc) {
                    rc = asr_writer_append_chunk(w, &c, &id, &err);
                }
                if (!rc)
                    rc = asr_writer_add_extent(w, g->volume, at, n, id, 0, buf, &err);
                placed[np++] = (struct placed){g->volume, at, id};
            }
        }
        if (rc)
            die("data", &err);
    }
    if (asr_writer_finish(w, &err))
        die("finish", &err);
    asr_writer_free(w);
}

/* Volume v's data at off, GOLDEN_AREA_DATA bytes, as one chunk. */
static void put_data(struct asr_writer *w, uint32_t v, uint64_t off, struct asr_error *err)
{
    static uint8_t buf[GOLDEN_AREA_DATA], enc[2 * GOLDEN_AREA_DATA];
    for (uint32_t i = 0; i < GOLDEN_AREA_DATA; i++)
        buf[i] = golden_byte(v, off + i);
    struct asr_chunk c;
    uint64_t id;
    if (asr_chunk_encode(buf, GOLDEN_AREA_DATA, 3, asr_writer_hash_seed(w), enc, sizeof enc, &c, err) ||
        asr_writer_append_chunk(w, &c, &id, err) || asr_writer_add_extent(w, v, off, GOLDEN_AREA_DATA, id, 0, buf, err))
        die("area data", err);
}

static void write_areas_image(const char *path)
{
    struct asr_writer_options o = {.max_chunk_size = GOLDEN_V1_CHUNK, .overwrite = 1, .creator_version = "0.1.0",
                                   .fixed_identity = 1, .hash_seed = GOLDEN_V1_SEED, .created_unix = GOLDEN_V1_CREATED};
    memcpy(o.uuid, GOLDEN_V1_UUID, 16);
    struct asr_writer *w;
    struct asr_error err = {0};
    if (asr_writer_create(path, &o, &w, &err))
        die(path, &err);
    static uint8_t regions[4096];
    for (uint32_t i = 0; i < sizeof regions; i++)
        regions[i] = golden_region_byte(i < 512 ? 0 : 1, i);
    /* Sector 0 holds the table the record describes (SPEC section 6): disk signature, entry 1
     * (bootable, 0x83, LBA 4096, 2048 sectors), the other entries empty, 55 AA. */
    static const uint8_t table[] = {0x78, 0x56, 0x34, 0x12, 0, 0, 0x80, 0, 0, 0, 0x83, 0, 0, 0,
                                    0x00, 0x10, 0, 0, 0x00, 0x08, 0, 0};
    memcpy(regions + 440, table, sizeof table);
    memset(regions + 462, 0, 48);
    regions[510] = 0x55, regions[511] = 0xaa;
    struct asr_region_desc reg[2] = {{ASR_REGION_MBR, 0, 512, regions}, {ASR_REGION_GAP, 512, 3584, regions + 512}};
    struct asr_partition_desc part = {.number = 1, .kind = ASR_PART_PRIMARY, .mbr_type = 0x83, .bootable = 1,
                                      .capture = ASR_CAPTURE_FULL, .start_bytes = 2 * GOLDEN_MIB, .size_bytes = GOLDEN_MIB};
    struct asr_disk_desc d = {.size_bytes = 4 * GOLDEN_MIB, .logical_sector = 512, .physical_sector = 512,
                              .label = ASR_LABEL_MBR, .disk_id = {0x78, 0x56, 0x34, 0x12}, .partition_count = 1,
                              .partitions = &part, .region_count = 2, .regions = reg};
    snprintf(d.source, sizeof d.source, "/dev/golden-areas");
    struct asr_volume_desc area = {.kind = ASR_VOLUME_AREA, .disk_offset = GOLDEN_AREA_START,
                                   .size_bytes = GOLDEN_AREA_SIZE, .used_bytes = GOLDEN_AREA_SIZE};
    struct asr_volume_desc root = {.partition_number = 1, .disk_offset = 2 * GOLDEN_MIB, .size_bytes = GOLDEN_MIB,
                                   .used_bytes = GOLDEN_MIB};
    snprintf(root.fs_type, sizeof root.fs_type, "raw");
    if (asr_writer_add_disk(w, &d, &err) || asr_writer_add_volume(w, &area, NULL, &err) ||
        asr_writer_add_volume(w, &root, NULL, &err))
        die("areas layout", &err);
    put_data(w, 0, 0, &err);
    if (asr_writer_add_zero(w, 0, GOLDEN_AREA_DATA, GOLDEN_AREA_LATE - GOLDEN_AREA_DATA, &err))
        die("area zeros", &err);
    put_data(w, 0, GOLDEN_AREA_LATE, &err);
    put_data(w, 1, 0, &err);
    if (asr_writer_finish(w, &err))
        die("finish", &err);
    asr_writer_free(w);
}

static void mbr_entry(uint8_t *sector, unsigned n, uint8_t boot, uint8_t type, uint32_t lba, uint32_t count)
{
    uint8_t *e = sector + 446 + 16 * (n - 1);
    memset(e, 0, 16);
    e[0] = boot;
    e[4] = type;
    for (int i = 0; i < 4; i++) {
        e[8 + i] = (uint8_t)(lba >> (8 * i));
        e[12 + i] = (uint8_t)(count >> (8 * i));
    }
}

/* The stacks of v1-stacks.asrimg (golden_content.h): vg0 over two PVs, LUKS inside vg0/home. */
static void put_stacks(struct asr_writer *w, struct asr_error *err)
{
    static struct asr_stack_member pvs[2] = {
        {.on = ASR_MEMBER_PARTITION, .disk = 0, .partition = 2, .data_offset = GOLDEN_MIB, .data_bytes = 5 * GOLDEN_MIB,
         .uuid = "G0ldn1-PV00-aaaa-bbbb-cccc-dddd-eeeeee"},
        {.on = ASR_MEMBER_PARTITION, .disk = 1, .partition = 0, .data_offset = GOLDEN_MIB, .data_bytes = 3 * GOLDEN_MIB,
         .uuid = "G0ldn1-PV01-aaaa-bbbb-cccc-dddd-eeeeee"},
    };
    static struct asr_stack_volume lvs[3] = {
        {.name = "root", .uuid = "G0ldn1-LV00-aaaa-bbbb-cccc-dddd-eeeeee", .size_bytes = 4 * GOLDEN_MIB,
         .used_bytes = 3000000, .capture = ASR_CAPTURE_USED, .critical = true, .fs_type = "ext4",
         .fs_uuid = "0d15ea5e-0000-4000-8000-00000000000f", .fs_label = "root", .mount = "/"},
        {.name = "home", .uuid = "G0ldn1-LV01-aaaa-bbbb-cccc-dddd-eeeeee", .size_bytes = 3 * GOLDEN_MIB,
         .capture = ASR_CAPTURE_SKIP, .fs_type = "crypto_LUKS", .fs_uuid = "1c0ffee0-0000-4000-8000-000000000001"},
        {.name = "swap", .uuid = "G0ldn1-LV02-aaaa-bbbb-cccc-dddd-eeeeee", .size_bytes = GOLDEN_MIB,
         .used_bytes = 4096, .capture = ASR_CAPTURE_HEADER, .critical = true, .fs_type = "swap", .mount = "swap"},
    };
    static struct asr_stack_member luks_member = {.on = ASR_MEMBER_STACK, .stack = 0, .volume = 1,
                                                  .data_offset = GOLDEN_MIB, .data_bytes = 2 * GOLDEN_MIB};
    static struct asr_stack_volume plain = {.size_bytes = 2 * GOLDEN_MIB, .used_bytes = 65536,
                                            .capture = ASR_CAPTURE_SKIP, .fs_type = "ext4", .mount = "/home"};
    struct asr_stack_desc vg = {.kind = ASR_STACK_LVM_VG, .seqno = 7, .unit_bytes = GOLDEN_MIB, .name = "vg0",
                                .uuid = "G0ldn1-VG00-aaaa-bbbb-cccc-dddd-eeeeee", .member_count = 2, .members = pvs,
                                .volume_count = 3, .volumes = lvs};
    struct asr_stack_desc luks = {.kind = ASR_STACK_LUKS, .unit_bytes = 512, .name = "home_crypt",
                                  .uuid = "1c0ffee0-0000-4000-8000-000000000001", .member_count = 1,
                                  .members = &luks_member, .volume_count = 1, .volumes = &plain};
    if (asr_writer_add_stack(w, &vg, err) || asr_writer_add_stack(w, &luks, err))
        die("stacks", err);
}

static void write_stacks_image(const char *path)
{
    struct asr_writer_options o = {.max_chunk_size = GOLDEN_V1_CHUNK, .overwrite = 1, .creator_version = "0.1.0",
                                   .fixed_identity = 1, .hash_seed = GOLDEN_V1_SEED, .created_unix = GOLDEN_V1_CREATED};
    memcpy(o.uuid, GOLDEN_V1_UUID, 16);
    struct asr_writer *w;
    struct asr_error err = {0};
    if (asr_writer_create(path, &o, &w, &err))
        die(path, &err);
    static uint8_t mbr[512];
    for (uint32_t i = 0; i < sizeof mbr; i++)
        mbr[i] = golden_region_byte(0, i);
    static const uint8_t sig[4] = {0xac, 0x57, 0xed, 0x5e};
    memcpy(mbr + 440, sig, 4);
    mbr[444] = mbr[445] = 0;
    mbr_entry(mbr, 1, 0x80, 0x83, 2048, 2048);
    mbr_entry(mbr, 2, 0, 0x8e, 4096, 12288);
    mbr_entry(mbr, 3, 0, 0, 0, 0);
    mbr_entry(mbr, 4, 0, 0, 0, 0);
    mbr[510] = 0x55, mbr[511] = 0xaa;
    struct asr_region_desc reg = {ASR_REGION_MBR, 0, 512, mbr};
    struct asr_partition_desc parts[2] = {
        {.number = 1, .kind = ASR_PART_PRIMARY, .mbr_type = 0x83, .bootable = 1, .capture = ASR_CAPTURE_USED,
         .start_bytes = GOLDEN_MIB, .size_bytes = GOLDEN_MIB},
        {.number = 2, .kind = ASR_PART_PRIMARY, .mbr_type = 0x8e, .capture = ASR_CAPTURE_USED,
         .start_bytes = 2 * GOLDEN_MIB, .size_bytes = 6 * GOLDEN_MIB},
    };
    struct asr_disk_desc d0 = {.size_bytes = GOLDEN_STACKS_DISK0, .logical_sector = 512, .physical_sector = 512,
                               .label = ASR_LABEL_MBR, .disk_id = {0xac, 0x57, 0xed, 0x5e}, .partition_count = 2,
                               .partitions = parts, .region_count = 1, .regions = &reg};
    struct asr_disk_desc d1 = {.size_bytes = GOLDEN_STACKS_DISK1, .logical_sector = 512, .physical_sector = 4096};
    snprintf(d0.source, sizeof d0.source, "/dev/golden-stacks");
    snprintf(d1.source, sizeof d1.source, "/dev/golden-pv");
    struct asr_volume_desc v[3] = {
        {.disk_index = 0, .partition_number = 1, .disk_offset = GOLDEN_MIB, .size_bytes = GOLDEN_MIB,
         .used_bytes = GOLDEN_AREA_DATA, .block_size = 1024, .fs_type = "ext4", .fs_label = "boot"},
        {.disk_index = 0, .partition_number = 2, .disk_offset = 2 * GOLDEN_MIB, .size_bytes = 6 * GOLDEN_MIB,
         .used_bytes = GOLDEN_AREA_DATA, .fs_type = "LVM2_member", .fs_uuid = "G0ldn1-PV00-aaaa-bbbb-cccc-dddd-eeeeee"},
        {.disk_index = 1, .partition_number = 0, .disk_offset = 0, .size_bytes = GOLDEN_STACKS_DISK1,
         .used_bytes = GOLDEN_AREA_DATA, .fs_type = "LVM2_member", .fs_uuid = "G0ldn1-PV01-aaaa-bbbb-cccc-dddd-eeeeee"},
    };
    if (asr_writer_add_disk(w, &d0, &err) || asr_writer_add_disk(w, &d1, &err))
        die("stacks disks", &err);
    put_stacks(w, &err);
    for (uint32_t i = 0; i < 3; i++)
        if (asr_writer_add_volume(w, &v[i], NULL, &err))
            die("stacks volumes", &err);
    for (uint32_t i = 0; i < 3; i++)
        put_data(w, i, 0, &err);
    if (asr_writer_finish(w, &err))
        die("finish", &err);
    asr_writer_free(w);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_golden DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/v1-basic.asrimg", argv[1]);
    write_image(path, 0, 3, NULL, NULL);
    snprintf(path, sizeof path, "%s/v1-split.asrimg", argv[1]);
    write_image(path, ASR_MIN_SPLIT_SIZE, 0, NULL, NULL);
    snprintf(path, sizeof path, "%s/v1-disk-areas.asrimg", argv[1]);
    write_areas_image(path);
    snprintf(path, sizeof path, "%s/v1-stacks.asrimg", argv[1]);
    write_stacks_image(path);
    static struct asr_machine_desc machine;
    golden_machine(&machine);
    snprintf(path, sizeof path, "%s/v1-machine.asrimg", argv[1]);
    write_image(path, 0, 3, &machine, NULL);
    static struct memstore store;
    snprintf(path, sizeof path, "%s/v1-external.asrimg", argv[1]);
    write_image(path, 0, 3, NULL, &store);
    snprintf(path, sizeof path, "%s/v1-external.records", argv[1]);
    if (memstore_save(&store, path)) {
        struct asr_error err = {0};
        die(path, &err);
    }
    memstore_free(&store);
    return 0;
}
