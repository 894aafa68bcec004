/* The layout section (disks, partitions, raw boot regions) and the volume table: encoding,
 * decoding and the consistency rules both sides enforce, so that a restore can trust that every
 * partition, region and volume lies inside its disk. */
#include "internal.h"
#include "le.h"

#include <stdlib.h>
#include <string.h>

#define DISK_FIXED 72u
#define PART_FIXED 64u
#define REGION_FIXED 16u
#define VOLUME_FIXED 40u

static bool is_pow2_in(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

/* start + len <= limit without overflow */
static bool fits(uint64_t start, uint64_t len, uint64_t limit)
{
    return start <= limit && len <= limit - start;
}

static int put_str(struct asr_buf *out, const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return -1;
    uint8_t *p = asr_buf_extend(out, 2 + n);
    if (!p)
        return -1;
    put_le16(p, (uint16_t)n);
    memcpy(p + 2, s, n);
    return 0;
}

static int take_str(struct asr_cursor *c, char *dst, size_t max, struct asr_error *err)
{
    const uint8_t *p = asr_cursor_take(c, 2);
    if (!p)
        return asr_fail(err, ASR_E_CORRUPT, "%s: truncated", c->what);
    uint16_t n = get_le16(p);
    if (n > max || !(p = asr_cursor_take(c, n)))
        return asr_fail(err, ASR_E_CORRUPT, "%s: string length %u out of range", c->what, n);
    memcpy(dst, p, n);
    dst[n] = '\0';
    if (memchr(dst, '\0', n))
        return asr_fail(err, ASR_E_CORRUPT, "%s: string holds a NUL byte", c->what);
    return ASR_OK;
}

/* ---- validation shared by writer and reader ------------------------------------------- */

int asr_disk_desc_valid(const struct asr_disk_desc *d, struct asr_error *err)
{
    if (!is_pow2_in(d->logical_sector, 512, 65536) || !is_pow2_in(d->physical_sector, 512, 65536) ||
        d->physical_sector < d->logical_sector)
        return asr_fail(err, ASR_E_CORRUPT, "disk: sector sizes %u/%u invalid", d->logical_sector,
                        d->physical_sector);
    if (d->size_bytes < d->logical_sector)
        return asr_fail(err, ASR_E_CORRUPT, "disk: size %llu smaller than a sector",
                        (unsigned long long)d->size_bytes);
    if (d->label > ASR_LABEL_GPT)
        return asr_fail(err, ASR_E_CORRUPT, "disk: label type %u unknown", d->label);
    if (d->partition_count > ASR_MAX_PARTITIONS || d->region_count > ASR_MAX_REGIONS)
        return asr_fail(err, ASR_E_LIMIT, "disk: %u partitions / %u regions over the limit",
                        d->partition_count, d->region_count);
    for (uint32_t i = 0; i < d->partition_count; i++) {
        const struct asr_partition_desc *p = &d->partitions[i];
        if (p->kind > ASR_PART_LOGICAL || p->capture > ASR_CAPTURE_HEADER || p->bootable > 1 ||
            p->number == 0)
            return asr_fail(err, ASR_E_CORRUPT, "disk: partition %u has invalid fields", p->number);
        if (!fits(p->start_bytes, p->size_bytes, d->size_bytes))
            return asr_fail(err, ASR_E_CORRUPT, "disk: partition %u extends past the end of the disk",
                            p->number);
    }
    for (uint32_t i = 0; i < d->region_count; i++) {
        const struct asr_region_desc *r = &d->regions[i];
        if (r->kind < ASR_REGION_MBR || r->kind > ASR_REGION_OTHER || r->length == 0 ||
            r->length > ASR_MAX_REGION_SIZE || !fits(r->offset, r->length, d->size_bytes))
            return asr_fail(err, ASR_E_CORRUPT, "disk: raw region %u (kind %u, %u bytes at %llu) invalid", i,
                            r->kind, r->length, (unsigned long long)r->offset);
    }
    return ASR_OK;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* An area lies on a partitioned disk, clear of every partition and raw region: its bytes are
 * the disk's own, and a restore must not lay them over anything else it writes. */
static int check_area(const struct asr_volume_desc *v, const struct asr_disk_desc *d, uint64_t incompat,
                      struct asr_error *err)
{
    if (!(incompat & ASR_FEATURE_INCOMPAT_AREAS))
        return asr_fail(err, ASR_E_CORRUPT, "volume: a disk area in an image that does not declare disk-areas");
    if (v->partition_number != 0 || d->label == ASR_LABEL_NONE)
        return asr_fail(err, ASR_E_CORRUPT, "volume: a disk area must have partition number 0 on a partitioned disk");
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (overlaps(v->disk_offset, v->size_bytes, d->partitions[i].start_bytes, d->partitions[i].size_bytes))
            return asr_fail(err, ASR_E_CORRUPT, "volume: disk area at %llu overlaps partition %u",
                            (unsigned long long)v->disk_offset, d->partitions[i].number);
    for (uint32_t i = 0; i < d->region_count; i++)
        if (overlaps(v->disk_offset, v->size_bytes, d->regions[i].offset, d->regions[i].length))
            return asr_fail(err, ASR_E_CORRUPT, "volume: disk area at %llu overlaps raw region %u",
                            (unsigned long long)v->disk_offset, i);
    return ASR_OK;
}

int asr_volume_desc_check(const struct asr_volume_desc *v, const struct asr_disk_desc *disks,
                          uint32_t disk_count, uint64_t incompat, struct asr_error *err)
{
    if (v->disk_index >= disk_count)
        return asr_fail(err, ASR_E_CORRUPT, "volume: disk index %u out of range", v->disk_index);
    const struct asr_disk_desc *d = &disks[v->disk_index];
    if (!fits(v->disk_offset, v->size_bytes, d->size_bytes) || v->size_bytes == 0)
        return asr_fail(err, ASR_E_CORRUPT, "volume: %llu bytes at %llu outside disk %u",
                        (unsigned long long)v->size_bytes, (unsigned long long)v->disk_offset, v->disk_index);
    if (v->used_bytes > v->size_bytes)
        return asr_fail(err, ASR_E_CORRUPT, "volume: used bytes exceed its size");
    if (v->kind > ASR_VOLUME_AREA)
        return asr_fail(err, ASR_E_CORRUPT, "volume: kind %u unknown", v->kind);
    if (v->kind == ASR_VOLUME_AREA)
        return check_area(v, d, incompat, err);
    if (v->partition_number == 0)
        return ASR_OK;
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (d->partitions[i].number == v->partition_number) {
            if (d->partitions[i].start_bytes != v->disk_offset || d->partitions[i].size_bytes != v->size_bytes)
                return asr_fail(err, ASR_E_CORRUPT, "volume: does not match partition %u", v->partition_number);
            return ASR_OK;
        }
    return asr_fail(err, ASR_E_CORRUPT, "volume: partition %u not on disk %u", v->partition_number,
                    v->disk_index);
}

/* ---- disks ------------------------------------------------------------------------------- */

static int encode_partition(const struct asr_partition_desc *p, struct asr_buf *out)
{
    uint8_t *b = asr_buf_extend(out, PART_FIXED);
    if (!b)
        return -1;
    put_le32(b + 0, p->number);
    b[4] = p->kind;
    b[5] = p->mbr_type;
    b[6] = p->bootable;
    b[7] = p->capture;
    put_le64(b + 8, p->start_bytes);
    put_le64(b + 16, p->size_bytes);
    memcpy(b + 24, p->type_guid, 16);
    memcpy(b + 40, p->part_guid, 16);
    put_le64(b + 56, p->attributes);
    return put_str(out, p->name, ASR_NAME_MAX);
}

static int decode_partition(struct asr_cursor *c, struct asr_partition_desc *p, struct asr_error *err)
{
    const uint8_t *b = asr_cursor_take(c, PART_FIXED);
    if (!b)
        return asr_fail(err, ASR_E_CORRUPT, "layout: truncated partition");
    p->number = get_le32(b + 0);
    p->kind = b[4];
    p->mbr_type = b[5];
    p->bootable = b[6];
    p->capture = b[7];
    p->start_bytes = get_le64(b + 8);
    p->size_bytes = get_le64(b + 16);
    memcpy(p->type_guid, b + 24, 16);
    memcpy(p->part_guid, b + 40, 16);
    p->attributes = get_le64(b + 56);
    return take_str(c, p->name, ASR_NAME_MAX, err);
}

static int encode_region(const struct asr_region_desc *r, struct asr_buf *out)
{
    uint8_t *b = asr_buf_extend(out, REGION_FIXED + (size_t)r->length);
    if (!b)
        return -1;
    put_le16(b + 0, r->kind);
    put_le16(b + 2, 0);
    put_le32(b + 4, r->length);
    put_le64(b + 8, r->offset);
    memcpy(b + REGION_FIXED, r->data, r->length);
    return 0;
}

static int decode_region(struct asr_cursor *c, struct asr_region_desc *r, struct asr_error *err)
{
    const uint8_t *b = asr_cursor_take(c, REGION_FIXED);
    if (!b)
        return asr_fail(err, ASR_E_CORRUPT, "layout: truncated raw region");
    r->kind = get_le16(b + 0);
    r->length = get_le32(b + 4);
    r->offset = get_le64(b + 8);
    if (get_le16(b + 2) != 0)
        return asr_fail(err, ASR_E_CORRUPT, "layout: raw region reserved bytes not zero");
    if (r->length > ASR_MAX_REGION_SIZE || !(r->data = asr_cursor_take(c, r->length)))
        return asr_fail(err, ASR_E_CORRUPT, "layout: raw region of %u bytes truncated", r->length);
    return ASR_OK;
}

static int encode_disk(const struct asr_disk_desc *d, struct asr_buf *out)
{
    uint8_t *b = asr_buf_extend(out, DISK_FIXED);
    if (!b)
        return -1;
    put_le64(b + 0, d->size_bytes);
    put_le32(b + 8, d->logical_sector);
    put_le32(b + 12, d->physical_sector);
    b[16] = d->label;
    memcpy(b + 24, d->disk_id, 16);
    put_le64(b + 40, d->gpt_first_usable_lba);
    put_le64(b + 48, d->gpt_last_usable_lba);
    put_le32(b + 56, d->gpt_entry_count);
    put_le32(b + 60, d->gpt_entry_size);
    put_le32(b + 64, d->partition_count);
    put_le32(b + 68, d->region_count);
    if (put_str(out, d->source, ASR_NAME_MAX))
        return -1;
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (encode_partition(&d->partitions[i], out))
            return -1;
    for (uint32_t i = 0; i < d->region_count; i++)
        if (encode_region(&d->regions[i], out))
            return -1;
    return 0;
}

static int decode_disk(struct asr_cursor *c, struct asr_disk_desc *d, struct asr_error *err)
{
    const uint8_t *b = asr_cursor_take(c, DISK_FIXED);
    if (!b)
        return asr_fail(err, ASR_E_CORRUPT, "layout: truncated disk record");
    d->size_bytes = get_le64(b + 0);
    d->logical_sector = get_le32(b + 8);
    d->physical_sector = get_le32(b + 12);
    d->label = b[16];
    for (int i = 17; i < 24; i++)
        if (b[i])
            return asr_fail(err, ASR_E_CORRUPT, "layout: disk reserved bytes not zero");
    memcpy(d->disk_id, b + 24, 16);
    d->gpt_first_usable_lba = get_le64(b + 40);
    d->gpt_last_usable_lba = get_le64(b + 48);
    d->gpt_entry_count = get_le32(b + 56);
    d->gpt_entry_size = get_le32(b + 60);
    /* The counts reach *d only once the arrays they describe exist, so that no caller, even
     * one that ignores the error, can walk a count over a missing array. */
    uint32_t partition_count = get_le32(b + 64);
    uint32_t region_count = get_le32(b + 68);
    int rc = take_str(c, d->source, ASR_NAME_MAX, err);
    if (rc)
        return rc;
    /* Cap counts by the bytes that could hold them before allocating. */
    if (partition_count > ASR_MAX_PARTITIONS || region_count > ASR_MAX_REGIONS ||
        (uint64_t)partition_count * (PART_FIXED + 2) + (uint64_t)region_count * REGION_FIXED > c->left)
        return asr_fail(err, ASR_E_CORRUPT, "layout: %u partitions / %u regions do not fit the section",
                        partition_count, region_count);
    struct asr_partition_desc *parts = calloc(partition_count + 1u, sizeof *parts);
    struct asr_region_desc *regions = calloc(region_count + 1u, sizeof *regions);
    d->partitions = parts;
    d->regions = regions;
    if (!parts || !regions)
        return asr_fail(err, ASR_E_NOMEM, "layout: out of memory");
    d->partition_count = partition_count;
    d->region_count = region_count;
    for (uint32_t i = 0; i < d->partition_count; i++)
        if ((rc = decode_partition(c, &parts[i], err)))
            return rc;
    for (uint32_t i = 0; i < d->region_count; i++)
        if ((rc = decode_region(c, &regions[i], err)))
            return rc;
    return asr_disk_desc_valid(d, err);
}

int asr_layout_encode_disks(const struct asr_disk_desc *disks, uint32_t n, struct asr_buf *out,
                            struct asr_error *err)
{
    uint8_t *b = asr_buf_extend(out, 8);
    if (b)
        put_le32(b, n);
    for (uint32_t i = 0; i < n && b; i++)
        if (encode_disk(&disks[i], out))
            return asr_fail(err, ASR_E_NOMEM, "layout: out of memory or a name too long on disk %u", i);
    if (out->failed)
        return asr_fail(err, ASR_E_NOMEM, "layout: out of memory");
    if (out->len > ASR_MAX_LAYOUT_SIZE)
        return asr_fail(err, ASR_E_LIMIT, "layout: %zu bytes exceed the %u-byte limit", out->len,
                        ASR_MAX_LAYOUT_SIZE);
    return ASR_OK;
}

int asr_layout_decode_disks(const uint8_t *body, size_t len, struct asr_layout *l, struct asr_error *err)
{
    if (len < 8 || len > ASR_MAX_LAYOUT_SIZE)
        return asr_fail(err, ASR_E_CORRUPT, "layout: section length %zu out of range", len);
    if (!(l->body = malloc(len)))
        return asr_fail(err, ASR_E_NOMEM, "layout: out of memory");
    memcpy(l->body, body, len);
    struct asr_cursor c = {l->body + 8, len - 8, "layout"};
    uint32_t n = get_le32(l->body);
    if (n > ASR_MAX_DISKS || get_le32(l->body + 4) != 0)
        return asr_fail(err, ASR_E_CORRUPT, "layout: disk count %u out of range", n);
    if (!(l->disks = calloc(n + 1u, sizeof *l->disks)))
        return asr_fail(err, ASR_E_NOMEM, "layout: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        l->disk_count = i + 1; /* so asr_layout_free releases what was allocated */
        int rc = decode_disk(&c, &l->disks[i], err);
        if (rc)
            return rc;
    }
    if (c.left != 0)
        return asr_fail(err, ASR_E_CORRUPT, "layout: %zu stray bytes after the last disk", c.left);
    return ASR_OK;
}

/* ---- volumes ----------------------------------------------------------------------------- */

int asr_layout_encode_volumes(const struct asr_volume_desc *v, uint32_t n, struct asr_buf *out,
                              struct asr_error *err)
{
    uint8_t *b = asr_buf_extend(out, 8);
    if (b)
        put_le32(b, n);
    for (uint32_t i = 0; i < n && b; i++) {
        if (!(b = asr_buf_extend(out, VOLUME_FIXED)))
            break;
        put_le32(b + 0, v[i].disk_index);
        put_le32(b + 4, v[i].partition_number);
        put_le64(b + 8, v[i].disk_offset);
        put_le64(b + 16, v[i].size_bytes);
        put_le64(b + 24, v[i].used_bytes);
        put_le32(b + 32, v[i].block_size);
        b[36] = v[i].kind;
        if (put_str(out, v[i].fs_type, ASR_FSNAME_MAX) || put_str(out, v[i].fs_uuid, ASR_FSNAME_MAX) ||
            put_str(out, v[i].fs_label, ASR_FSNAME_MAX))
            return asr_fail(err, ASR_E_ARG, "volume %u: a name is too long", i);
    }
    if (out->failed)
        return asr_fail(err, ASR_E_NOMEM, "volume table: out of memory");
    return ASR_OK;
}

int asr_layout_decode_volumes(const uint8_t *body, size_t len, struct asr_layout *l, struct asr_error *err)
{
    if (len < 8 || len > ASR_MAX_VOLTABLE_SIZE)
        return asr_fail(err, ASR_E_CORRUPT, "volume table: length %zu out of range", len);
    uint32_t n = get_le32(body);
    if (n > ASR_MAX_VOLUMES || (uint64_t)n * (VOLUME_FIXED + 6) > len - 8 || get_le32(body + 4) != 0)
        return asr_fail(err, ASR_E_CORRUPT, "volume table: volume count %u out of range", n);
    if (!(l->volumes = calloc(n + 1u, sizeof *l->volumes)))
        return asr_fail(err, ASR_E_NOMEM, "volume table: out of memory");
    l->volume_count = n;
    struct asr_cursor c = {body + 8, len - 8, "volume table"};
    for (uint32_t i = 0; i < n; i++) {
        struct asr_volume_desc *v = &l->volumes[i];
        const uint8_t *b = asr_cursor_take(&c, VOLUME_FIXED);
        if (!b)
            return asr_fail(err, ASR_E_CORRUPT, "volume table: truncated volume %u", i);
        v->disk_index = get_le32(b + 0);
        v->partition_number = get_le32(b + 4);
        v->disk_offset = get_le64(b + 8);
        v->size_bytes = get_le64(b + 16);
        v->used_bytes = get_le64(b + 24);
        v->block_size = get_le32(b + 32);
        v->kind = b[36];
        if (b[37] || b[38] || b[39])
            return asr_fail(err, ASR_E_CORRUPT, "volume table: volume %u reserved bytes not zero", i);
        int rc;
        if ((rc = take_str(&c, v->fs_type, ASR_FSNAME_MAX, err)) ||
            (rc = take_str(&c, v->fs_uuid, ASR_FSNAME_MAX, err)) ||
            (rc = take_str(&c, v->fs_label, ASR_FSNAME_MAX, err)) ||
            (rc = asr_volume_desc_check(v, l->disks, l->disk_count, l->incompat, err)))
            return rc;
    }
    if (c.left != 0)
        return asr_fail(err, ASR_E_CORRUPT, "volume table: %zu stray bytes", c.left);
    return ASR_OK;
}

void asr_layout_free(struct asr_layout *l)
{
    if (!l)
        return;
    for (uint32_t i = 0; l->disks && i < l->disk_count; i++) {
        free((void *)l->disks[i].partitions);
        free((void *)l->disks[i].regions);
    }
    free(l->disks);
    free(l->volumes);
    free(l->body);
    *l = (struct asr_layout){0};
}
