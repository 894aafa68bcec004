/* Golden images of each format version (tests/golden, described in its README) must be read
 * correctly by every later asrimg: layout fields, raw regions and every volume byte. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr_format.h"
#include "golden_content.h"

static void check_v1(const char *name, uint32_t parts)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, name);
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
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
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
}

Test(golden, v1_basic) { check_v1("v1-basic.asrimg", 1); }
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
