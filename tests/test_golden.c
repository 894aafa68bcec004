/* Golden images of each format version (tests/golden, described in its README) must be read
 * correctly by every later asrimg: layout fields, raw regions and every volume byte. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr_format.h"
#include "internal.h" /* fmt_image_header_check_known: a reader of an earlier version */
#include "golden_content.h"
#include "memstore.h"

/* src: a store snapshot's chunks (v1-external). */
static void check_v1_from(const char *name, uint32_t parts, const struct asr_chunk_source *src)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, name);
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(src ? asr_reader_open_external(path, src, &r, &err) : asr_reader_open(path, &r, &err), ASR_OK, "%s",
                 err.msg);
    const struct asr_image_info *i = asr_reader_info(r);
    cr_assert_eq(i->format_version, 1);
    cr_assert_eq(memcmp(i->uuid, GOLDEN_V1_UUID, 16), 0);
    cr_assert_eq(i->hash_seed, GOLDEN_V1_SEED);
    cr_assert_eq(i->created_unix, GOLDEN_V1_CREATED);
    cr_assert_str_eq(i->creator, "asrimg");
    cr_assert_str_eq(i->creator_version, "0.1.0");
    cr_assert_eq(i->max_chunk_size, GOLDEN_V1_CHUNK);
    cr_assert_eq(i->part_count, parts);
    cr_assert_eq(i->unreadable_bytes, 4096);
    cr_assert_eq(i->zero_bytes, 65536);

    cr_assert_eq(asr_reader_disk_count(r), 1);
    const struct asr_disk_desc *d = asr_reader_disk(r, 0);
    cr_assert_str_eq(d->source, "/dev/golden");
    cr_assert_eq(d->size_bytes, 8 * GOLDEN_MIB);
    cr_assert_eq(d->logical_sector, 512);
    cr_assert_eq(d->physical_sector, 4096);
    cr_assert_eq(d->label, ASR_LABEL_GPT);
    cr_assert_eq(d->disk_id[0], 0xd0);
    cr_assert_eq(d->disk_id[15], 0xdf);
    cr_assert_eq(d->gpt_entry_count, 128);
    cr_assert_eq(d->gpt_last_usable_lba, 8 * GOLDEN_MIB / 512 - 34);
    cr_assert_eq(d->partition_count, 2);
    cr_assert_str_eq(d->partitions[0].name, "EFI System");
    cr_assert_eq(d->partitions[0].type_guid[0], 0x28);
    cr_assert_eq(d->partitions[1].part_guid[15], 0x2f);
    cr_assert_eq(d->partitions[1].attributes, 1ull << 60);
    cr_assert_eq(d->partitions[1].start_bytes, 3 * GOLDEN_MIB);
    cr_assert_eq(d->region_count, 5);
    for (unsigned g = 0; g < 5; g++)
        for (uint32_t b = 0; b < d->regions[g].length; b++)
            cr_assert_eq(d->regions[g].data[b], golden_region_byte(g, b), "region %u byte %u", g, b);
    cr_assert_eq(d->regions[4].offset, 8 * GOLDEN_MIB - 512);

    cr_assert_eq(asr_reader_volume_count(r), 2);
    cr_assert_str_eq(asr_reader_volume(r, 0)->fs_label, "ESP");
    cr_assert_str_eq(asr_reader_volume(r, 1)->fs_uuid, "6f1c7d2a-0c55-4e0e-9d55-2b0c2f4a9e11");
    for (uint32_t v = 0; v < 2; v++) {
        uint64_t size = asr_reader_volume(r, v)->size_bytes;
        uint8_t *buf = malloc(size);
        int rc = asr_reader_read_volume(r, v, 0, buf, size, &err);
        cr_assert_eq(rc, v == 1 ? ASR_E_UNREADABLE : ASR_OK, "%s", err.msg);
        int unr;
        for (uint64_t off = 0; off < size; off++)
            if (buf[off] != golden_expected(v, off, &unr))
                cr_assert_fail("%s volume %u byte %llu", name, v, (unsigned long long)off);
        free(buf);
    }
    asr_reader_free(r);
    cr_assert_eq(src ? asr_verify_external(path, src, NULL, NULL, NULL, NULL, NULL, &err)
                     : asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err),
                 ASR_OK, "%s", err.msg);
}

static void check_v1(const char *name, uint32_t parts) { check_v1_from(name, parts, NULL); }

Test(golden, v1_basic) { check_v1("v1-basic.asrimg", 1); }

/* The external-chunks feature (incompatible bit 2, within version 1): the v1-basic content as a
 * store snapshot, its chunk records (as a store keeps them) in v1-external.records, read through
 * the test's in-memory store. */
Test(golden, v1_external)
{
    static struct memstore ms;
    char path[4096];
    snprintf(path, sizeof path, "%s/v1-external.records", GOLDEN_DIR);
    cr_assert_eq(memstore_load(&ms, path), 0);
    struct asr_chunk_source src = memstore_source(&ms);
    check_v1_from("v1-external.asrimg", 1, &src);
    snprintf(path, sizeof path, "%s/v1-external.asrimg", GOLDEN_DIR);
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open_external(path, &src, &r, &err), ASR_OK, "%s", err.msg);
    const struct asr_image_info *i = asr_reader_info(r);
    cr_assert_eq(i->incompat, ASR_FEATURE_INCOMPAT_EXTERNAL);
    cr_assert_str_eq(asr_reader_feature_name(r, ASR_FEATURE_INCOMPAT, 2), "external-chunks");
    cr_assert_eq(i->chunk_count, ms.count, "one record for each chunk");
    for (uint64_t c = 0; c < i->chunk_count; c++)
        cr_assert_not_null(memstore_find(&ms, asr_reader_store_id(r, c)));
    asr_reader_free(r);
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_E_UNSUPPORTED);
    memstore_free(&ms);
    /* A reader from before the feature refuses it by name. */
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static uint8_t raw[4096];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    struct fmt_image_header h;
    cr_assert_eq(fmt_image_header_decode(raw + 64, n - 64, &h, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(fmt_image_header_check_known(&h, ASR_FEATURE_INCOMPAT_AREAS | ASR_FEATURE_INCOMPAT_STACKS, &err),
                 ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "feature 'external-chunks' (incompatible bit 2)"), "%s", err.msg);
}
/* The machine record leaves every other byte's meaning as it was: the same content reads back. */
Test(golden, v1_machine_content) { check_v1("v1-machine.asrimg", 1); }

static void check_machine(const struct asr_machine_desc *m)
{
    cr_assert_not_null(m);
    static struct asr_machine_desc want;
    golden_machine(&want);
    cr_assert_str_eq(m->hostname, GOLDEN_HOSTNAME);
    cr_assert_eq(m->firmware, ASR_FIRMWARE_UEFI);
    cr_assert_eq(m->boot_order_count, 3);
    cr_assert_eq(m->boot_order[0], 0x0003);
    cr_assert_eq(m->boot_order[1], 0x0001);
    cr_assert_eq(m->boot_order[2], 0x2001);
    cr_assert_eq(m->entry_count, 2);
    for (uint32_t i = 0; i < 2; i++) {
        const struct asr_boot_entry *e = &m->entries[i];
        cr_assert_eq(e->number, want.entries[i].number);
        cr_assert_eq(e->disk, 0);
        cr_assert_eq(e->partition, 1);
        cr_assert_eq(e->load_option_len, want.entries[i].load_option_len);
        cr_assert_eq(memcmp(e->load_option, want.entries[i].load_option, e->load_option_len), 0);
    }
    /* and what a restore takes from them */
    struct asr_load_option o;
    struct asr_error err = {0};
    cr_assert_eq(asr_load_option_parse(m->entries[1].load_option, m->entries[1].load_option_len, &o, &err), ASR_OK,
                 "%s", err.msg);
    cr_assert_str_eq(o.description, "Linux Boot Manager");
    cr_assert_eq(o.attributes, 0);
    cr_assert(o.has_hd);
    cr_assert_eq(o.hd.partition, 1);
    cr_assert_eq(o.hd.start_lba, GOLDEN_ESP_START_LBA);
    cr_assert_eq(o.hd.size_lba, GOLDEN_ESP_SIZE_LBA);
    cr_assert_eq(o.hd.guid[0], 0x10);
    cr_assert_eq(o.hd.guid[15], 0x1f);
    cr_assert_eq(o.optional_len, sizeof golden_optional);
    cr_assert_eq(memcmp(o.optional, golden_optional, sizeof golden_optional), 0);
    cr_assert_eq(o.file_len, 4 + 2 * (strlen("\\EFI\\systemd\\systemd-bootx64.efi") + 1));
}

/* The machine feature (compatible bit 1, within version 1): hostname, firmware, BootOrder and two
 * boot entries on the ESP, through the reader and the sequential reader alike. */
Test(golden, v1_machine)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/v1-machine.asrimg", GOLDEN_DIR);
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_reader_info(r)->compat, ASR_FEATURE_COMPAT_MACHINE);
    cr_assert_eq(asr_reader_info(r)->incompat, 0);
    cr_assert_str_eq(asr_reader_feature_name(r, ASR_FEATURE_COMPAT, 1), "machine");
    cr_assert_str_eq(asr_reader_hostname(r), GOLDEN_HOSTNAME);
    check_machine(asr_reader_machine(r));
    asr_reader_free(r);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);

    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    struct asr_stream *s;
    cr_assert_eq(asr_stream_open_fd(fileno(f), NULL, &s, &err), ASR_OK, "%s", err.msg);
    check_machine(asr_stream_machine(s));
    struct asr_stream_record rec;
    int rc;
    while ((rc = asr_stream_next(s, &rec, &err)) == ASR_OK && rec.kind != ASR_STREAM_END)
        ;
    cr_assert_eq(rc, ASR_OK, "%s", err.msg);
    asr_stream_free(s);
    fclose(f);

    /* An image without the record says so: NULL, and no hostname. */
    snprintf(path, sizeof path, "%s/v1-basic.asrimg", GOLDEN_DIR);
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_null(asr_reader_machine(r));
    cr_assert_null(asr_reader_hostname(r));
    asr_reader_free(r);
}
Test(golden, v1_split) { check_v1("v1-split.asrimg", 4); }

/* The disk-areas feature (within version 1): the gap before the first partition past its raw
 * region, as volume 0 of kind area, byte for byte. */
Test(golden, v1_disk_areas)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/v1-disk-areas.asrimg", GOLDEN_DIR);
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_reader_info(r)->incompat, ASR_FEATURE_INCOMPAT_AREAS);
    cr_assert_str_eq(asr_reader_feature_name(r, ASR_FEATURE_INCOMPAT, 0), "disk-areas");
    const struct asr_disk_desc *d = asr_reader_disk(r, 0);
    cr_assert_eq(d->label, ASR_LABEL_MBR);
    cr_assert_eq(d->region_count, 2);
    cr_assert_eq(d->regions[1].kind, ASR_REGION_GAP);
    cr_assert_eq(d->regions[1].length, 3584);
    cr_assert_eq(asr_reader_volume_count(r), 2);
    const struct asr_volume_desc *area = asr_reader_volume(r, 0);
    cr_assert_eq(area->kind, ASR_VOLUME_AREA);
    cr_assert_eq(area->partition_number, 0);
    cr_assert_eq(area->disk_offset, GOLDEN_AREA_START);
    cr_assert_eq(area->size_bytes, GOLDEN_AREA_SIZE);
    cr_assert_eq(asr_reader_volume(r, 1)->kind, ASR_VOLUME_PARTITION);
    cr_assert_eq(asr_reader_volume(r, 1)->partition_number, 1);
    for (uint32_t v = 0; v < 2; v++) {
        uint64_t size = asr_reader_volume(r, v)->size_bytes;
        uint8_t *buf = malloc(size);
        cr_assert_eq(asr_reader_read_volume(r, v, 0, buf, size, &err), ASR_OK, "%s", err.msg);
        for (uint64_t off = 0; off < size; off++)
            if (buf[off] != golden_area_expected(v, off))
                cr_assert_fail("volume %u byte %llu", v, (unsigned long long)off);
        free(buf);
    }
    asr_reader_free(r);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
}

static void check_stacks_layout(uint32_t nstacks, const struct asr_stack_desc *vg, const struct asr_stack_desc *luks)
{
    cr_assert_eq(nstacks, 2);
    cr_assert_eq(vg->kind, ASR_STACK_LVM_VG);
    cr_assert_str_eq(vg->name, "vg0");
    cr_assert_str_eq(vg->uuid, "G0ldn1-VG00-aaaa-bbbb-cccc-dddd-eeeeee");
    cr_assert_eq(vg->seqno, 7);
    cr_assert_eq(vg->level, 0);
    cr_assert_eq(vg->unit_bytes, GOLDEN_MIB);
    cr_assert_eq(vg->member_count, 2);
    const struct asr_stack_member *m = vg->members;
    cr_assert_eq(m[0].on, ASR_MEMBER_PARTITION);
    cr_assert_eq(m[0].disk, 0);
    cr_assert_eq(m[0].partition, 2);
    cr_assert_eq(m[0].data_offset, GOLDEN_MIB);
    cr_assert_eq(m[0].data_bytes, 5 * GOLDEN_MIB);
    cr_assert_eq(m[0].role, 0);
    cr_assert_str_eq(m[0].uuid, "G0ldn1-PV00-aaaa-bbbb-cccc-dddd-eeeeee");
    cr_assert_eq(m[1].on, ASR_MEMBER_PARTITION);
    cr_assert_eq(m[1].disk, 1);
    cr_assert_eq(m[1].partition, 0);
    cr_assert_eq(m[1].data_offset, GOLDEN_MIB);
    cr_assert_eq(m[1].data_bytes, 3 * GOLDEN_MIB);
    cr_assert_str_eq(m[1].uuid, "G0ldn1-PV01-aaaa-bbbb-cccc-dddd-eeeeee");
    cr_assert_eq(vg->volume_count, 3);
    const struct asr_stack_volume *v = vg->volumes;
    cr_assert_str_eq(v[0].name, "root");
    cr_assert_str_eq(v[0].uuid, "G0ldn1-LV00-aaaa-bbbb-cccc-dddd-eeeeee");
    cr_assert_eq(v[0].size_bytes, 4 * GOLDEN_MIB);
    cr_assert_eq(v[0].used_bytes, 3000000);
    cr_assert_eq(v[0].capture, ASR_CAPTURE_USED);
    cr_assert(v[0].critical);
    cr_assert_str_eq(v[0].fs_type, "ext4");
    cr_assert_str_eq(v[0].fs_uuid, "0d15ea5e-0000-4000-8000-00000000000f");
    cr_assert_str_eq(v[0].fs_label, "root");
    cr_assert_str_eq(v[0].mount, "/");
    cr_assert_str_eq(v[1].name, "home");
    cr_assert_eq(v[1].size_bytes, 3 * GOLDEN_MIB);
    cr_assert_eq(v[1].used_bytes, 0);
    cr_assert_eq(v[1].capture, ASR_CAPTURE_SKIP);
    cr_assert_not(v[1].critical);
    cr_assert_str_eq(v[1].fs_type, "crypto_LUKS");
    cr_assert_str_eq(v[1].fs_uuid, "1c0ffee0-0000-4000-8000-000000000001");
    cr_assert_str_eq(v[1].fs_label, "");
    cr_assert_str_eq(v[1].mount, "");
    cr_assert_str_eq(v[2].name, "swap");
    cr_assert_eq(v[2].size_bytes, GOLDEN_MIB);
    cr_assert_eq(v[2].used_bytes, 4096);
    cr_assert_eq(v[2].capture, ASR_CAPTURE_HEADER);
    cr_assert(v[2].critical);
    cr_assert_str_eq(v[2].fs_type, "swap");
    cr_assert_str_eq(v[2].mount, "swap");

    cr_assert_eq(luks->kind, ASR_STACK_LUKS);
    cr_assert_str_eq(luks->name, "home_crypt");
    cr_assert_str_eq(luks->uuid, "1c0ffee0-0000-4000-8000-000000000001");
    cr_assert_eq(luks->seqno, 0);
    cr_assert_eq(luks->unit_bytes, 512);
    cr_assert_eq(luks->member_count, 1);
    cr_assert_eq(luks->members[0].on, ASR_MEMBER_STACK);
    cr_assert_eq(luks->members[0].stack, 0);
    cr_assert_eq(luks->members[0].volume, 1);
    cr_assert_eq(luks->members[0].disk, 0);
    cr_assert_eq(luks->members[0].data_offset, GOLDEN_MIB);
    cr_assert_eq(luks->members[0].data_bytes, 2 * GOLDEN_MIB);
    cr_assert_str_eq(luks->members[0].uuid, "");
    cr_assert_eq(luks->volume_count, 1);
    cr_assert_str_eq(luks->volumes[0].name, "");
    cr_assert_eq(luks->volumes[0].size_bytes, 2 * GOLDEN_MIB);
    cr_assert_eq(luks->volumes[0].used_bytes, 65536);
    cr_assert_str_eq(luks->volumes[0].fs_type, "ext4");
    cr_assert_str_eq(luks->volumes[0].mount, "/home");
}

/* The stacks feature (within version 1): an LVM2 VG over a partition and a whole disk, a LUKS
 * container inside one of its LVs; every field of the stack table, through the reader and the
 * sequential reader, and the volumes' bytes. */
Test(golden, v1_stacks)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/v1-stacks.asrimg", GOLDEN_DIR);
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_reader_info(r)->incompat, ASR_FEATURE_INCOMPAT_STACKS);
    cr_assert_str_eq(asr_reader_feature_name(r, ASR_FEATURE_INCOMPAT, 1), "stacks");
    cr_assert_eq(asr_reader_disk_count(r), 2);
    const struct asr_disk_desc *d = asr_reader_disk(r, 0);
    cr_assert_eq(d->label, ASR_LABEL_MBR);
    cr_assert_eq(d->partition_count, 2);
    cr_assert_eq(d->partitions[1].mbr_type, 0x8e);
    cr_assert_eq(asr_reader_disk(r, 1)->label, ASR_LABEL_NONE);
    cr_assert_eq(asr_reader_disk(r, 1)->size_bytes, GOLDEN_STACKS_DISK1);
    check_stacks_layout(asr_reader_stack_count(r), asr_reader_stack(r, 0), asr_reader_stack(r, 1));
    cr_assert_null(asr_reader_stack(r, 2));
    cr_assert_eq(asr_reader_volume_count(r), 3);
    for (uint32_t v = 0; v < 3; v++) {
        uint64_t size = asr_reader_volume(r, v)->size_bytes;
        uint8_t *buf = malloc(size);
        cr_assert_eq(asr_reader_read_volume(r, v, 0, buf, size, &err), ASR_OK, "%s", err.msg);
        for (uint64_t off = 0; off < size; off++)
            if (buf[off] != golden_area_expected(v, off))
                cr_assert_fail("volume %u byte %llu", v, (unsigned long long)off);
        free(buf);
    }
    asr_reader_free(r);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);

    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    struct asr_stream *s;
    cr_assert_eq(asr_stream_open_fd(fileno(f), "golden", &s, &err), ASR_OK, "%s", err.msg);
    check_stacks_layout(asr_stream_stack_count(s), asr_stream_stack(s, 0), asr_stream_stack(s, 1));
    struct asr_stream_record rec;
    int rc;
    while ((rc = asr_stream_next(s, &rec, &err)) == ASR_OK && rec.kind != ASR_STREAM_END)
        ;
    cr_assert_eq(rc, ASR_OK, "%s", err.msg);
    asr_stream_free(s);
    fclose(f);
}

/* A reader from before the stacks feature refuses the image, naming it: the image header names
 * incompatible bit 1, and the support check is the one every reader applies to its known bits. */
Test(golden, v1_stacks_old_reader_refuses_by_name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/v1-stacks.asrimg", GOLDEN_DIR);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static uint8_t raw[4096];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    struct fmt_image_header h;
    struct asr_error err = {0};
    cr_assert_eq(fmt_image_header_decode(raw + 64, n - 64, &h, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(fmt_image_header_check_known(&h, ASR_KNOWN_INCOMPAT, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(fmt_image_header_check_known(&h, ASR_FEATURE_INCOMPAT_AREAS, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "feature 'stacks' (incompatible bit 1)"), "%s", err.msg);
}
