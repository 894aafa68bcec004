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

/* ---- validation shared by writer and reader ------------------------------------------- */

/* Each rule of SPEC.md sections 6 and 7 is checked here and only here: the writer before it
 * records a layout, the capture on the disk it read (engine/disk/disk.c), and the layout and volume
 * table decoders that the reader, the sequential reader and the verifier all go through. The
 * messages name the rule and the record; callers add the disk or volume number and where. */

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static const char *label_name(uint8_t label)
{
    return label == ASR_LABEL_GPT ? "a GPT" : label == ASR_LABEL_MBR ? "an MBR" : "no partition table";
}

static int check_disk_fields(const struct asr_disk_desc *d, struct asr_error *err)
{
    if (!is_pow2_in(d->logical_sector, 512, 65536) || !is_pow2_in(d->physical_sector, 512, 65536) ||
        d->physical_sector < d->logical_sector)
        return fmt_fail(err, ASR_E_CORRUPT, "sector sizes %u/%u invalid", d->logical_sector, d->physical_sector);
    if (d->size_bytes < d->logical_sector)
        return fmt_fail(err, ASR_E_CORRUPT, "size %llu smaller than a sector", (unsigned long long)d->size_bytes);
    if (d->label > ASR_LABEL_GPT)
        return fmt_fail(err, ASR_E_CORRUPT, "label type %u unknown", d->label);
    if (d->partition_count > ASR_MAX_PARTITIONS || d->region_count > ASR_MAX_REGIONS)
        return fmt_fail(err, ASR_E_LIMIT, "%u partitions / %u regions over the limit", d->partition_count,
                        d->region_count);
    if (d->label != ASR_LABEL_GPT && !all_zero(d->disk_id + (d->label == ASR_LABEL_MBR ? 4 : 0),
                                               d->label == ASR_LABEL_MBR ? 12 : 16))
        return fmt_fail(err, ASR_E_CORRUPT, "disk id holds bytes %s", d->label == ASR_LABEL_MBR
                        ? "after the 4-byte MBR signature" : "but the disk has no partition table");
    bool gpt_fields = d->gpt_first_usable_lba || d->gpt_last_usable_lba || d->gpt_entry_count || d->gpt_entry_size;
    if (d->label != ASR_LABEL_GPT)
        return gpt_fields ? fmt_fail(err, ASR_E_CORRUPT, "GPT fields set on a disk with %s", label_name(d->label))
                          : ASR_OK;
    if (!is_pow2_in(d->gpt_entry_size, 128, 4096) || d->gpt_entry_count == 0)
        return fmt_fail(err, ASR_E_CORRUPT, "GPT of %u entries of %u bytes (entries are 128 to 4096 bytes, a power "
                        "of two)", d->gpt_entry_count, d->gpt_entry_size);
    uint64_t sectors = d->size_bytes / d->logical_sector;
    if (d->gpt_first_usable_lba < 2 || d->gpt_first_usable_lba > d->gpt_last_usable_lba ||
        d->gpt_last_usable_lba >= sectors)
        return fmt_fail(err, ASR_E_CORRUPT, "GPT usable LBAs %llu..%llu not inside LBAs 2..%llu of the disk",
                        (unsigned long long)d->gpt_first_usable_lba, (unsigned long long)d->gpt_last_usable_lba,
                        (unsigned long long)sectors - 1);
    return ASR_OK;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* An area lies on a partitioned disk, clear of every partition (and, as every volume, of the raw
 * regions): its bytes are the disk's own, and a restore must not lay them over anything else it
 * writes. */
static int check_area(const struct asr_volume_desc *v, const struct asr_disk_desc *d, uint64_t incompat,
                      struct asr_error *err)
{
    if (!(incompat & ASR_FEATURE_INCOMPAT_AREAS))
        return fmt_fail(err, ASR_E_CORRUPT, "a disk area in an image that does not declare disk-areas");
    if (v->partition_number != 0 || d->label == ASR_LABEL_NONE)
        return fmt_fail(err, ASR_E_CORRUPT, "a disk area must have partition number 0 on a partitioned disk");
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (overlaps(v->disk_offset, v->size_bytes, d->partitions[i].start_bytes, d->partitions[i].size_bytes))
            return fmt_fail(err, ASR_E_CORRUPT, "disk area at %llu overlaps partition %u of disk %u",
                            (unsigned long long)v->disk_offset, d->partitions[i].number, v->disk_index);
    return ASR_OK;
}

/* The extended partition of an MBR disk, or NULL; *count says how many claim to be one. */
static const struct asr_partition_desc *extended_of(const struct asr_disk_desc *d, uint32_t *count)
{
    const struct asr_partition_desc *ext = NULL;
    *count = 0;
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (d->partitions[i].kind == ASR_PART_EXTENDED && (*count)++ == 0)
            ext = &d->partitions[i];
    return ext;
}

/* What a partition's record may hold on a disk of its label. */
static int check_partition_kind(const struct asr_disk_desc *d, const struct asr_partition_desc *p,
                                struct asr_error *err)
{
    uint32_t n = p->number;
    if (d->label == ASR_LABEL_NONE)
        return fmt_fail(err, ASR_E_CORRUPT, "partition %u on a disk with no partition table", n);
    if (d->label == ASR_LABEL_GPT) {
        if (p->kind != ASR_PART_GPT || p->mbr_type || p->bootable)
            return fmt_fail(err, ASR_E_CORRUPT, "partition %u is not a GPT entry (kind %u, MBR type 0x%02x, "
                            "bootable %u) on a GPT disk", n, p->kind, p->mbr_type, p->bootable);
        if (n > d->gpt_entry_count)
            return fmt_fail(err, ASR_E_CORRUPT, "partition %u beyond the GPT's %u entries", n, d->gpt_entry_count);
        return ASR_OK;
    }
    if (p->kind == ASR_PART_GPT || !all_zero(p->type_guid, 16) || !all_zero(p->part_guid, 16) || p->attributes)
        return fmt_fail(err, ASR_E_CORRUPT, "partition %u carries GPT fields on an MBR disk", n);
    if ((p->kind == ASR_PART_LOGICAL) != (n > 4))
        return fmt_fail(err, ASR_E_CORRUPT, "partition %u is %s: MBR numbers 1 to 4 are primary or extended, "
                        "5 and up logical", n, p->kind == ASR_PART_LOGICAL ? "logical" : "primary or extended");
    return ASR_OK;
}

static int check_partition(const struct asr_disk_desc *d, const struct asr_partition_desc *p,
                           const struct asr_partition_desc *ext, struct asr_error *err)
{
    uint64_t ss = d->logical_sector;
    if (p->kind > ASR_PART_LOGICAL || p->capture > ASR_CAPTURE_HEADER || p->bootable > 1 || p->number == 0)
        return fmt_fail(err, ASR_E_CORRUPT, "partition %u has invalid fields", p->number);
    if (!fits(p->start_bytes, p->size_bytes, d->size_bytes))
        return fmt_fail(err, ASR_E_CORRUPT, "partition %u (%llu bytes at %llu) extends past the end of the disk",
                        p->number, (unsigned long long)p->size_bytes, (unsigned long long)p->start_bytes);
    int rc = check_partition_kind(d, p, err);
    if (rc)
        return rc;
    if (p->start_bytes % ss || p->size_bytes % ss)
        return fmt_fail(err, ASR_E_CORRUPT, "partition %u (%llu bytes at %llu) not on %llu-byte sector boundaries",
                        p->number, (unsigned long long)p->size_bytes, (unsigned long long)p->start_bytes,
                        (unsigned long long)ss);
    uint64_t first = p->start_bytes / ss, end = first + p->size_bytes / ss; /* end: the LBA after it */
    if (d->label == ASR_LABEL_GPT && (first < d->gpt_first_usable_lba || end > d->gpt_last_usable_lba + 1))
        return fmt_fail(err, ASR_E_CORRUPT, "partition %u (LBAs %llu..%llu) outside the GPT's usable LBAs %llu..%llu",
                        p->number, (unsigned long long)first, (unsigned long long)end - 1,
                        (unsigned long long)d->gpt_first_usable_lba, (unsigned long long)d->gpt_last_usable_lba);
    if (p->kind == ASR_PART_LOGICAL &&
        (!ext || p->start_bytes < ext->start_bytes ||
         p->start_bytes + p->size_bytes > ext->start_bytes + ext->size_bytes))
        return fmt_fail(err, ASR_E_CORRUPT, "logical partition %u (%llu bytes at %llu) not inside an extended "
                        "partition", p->number, (unsigned long long)p->size_bytes, (unsigned long long)p->start_bytes);
    return ASR_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Partition numbers are the OS's names for them: two records of one number are one too many. */
static int check_numbers_unique(const struct asr_disk_desc *d, struct asr_error *err)
{
    if (d->partition_count < 2)
        return ASR_OK;
    uint32_t *n = malloc(d->partition_count * sizeof *n);
    if (!n)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < d->partition_count; i++)
        n[i] = d->partitions[i].number;
    qsort(n, d->partition_count, sizeof *n, cmp_u32);
    uint32_t dup = 0;
    for (uint32_t i = 1; i < d->partition_count && !dup; i++)
        if (n[i] == n[i - 1])
            dup = n[i];
    free(n);
    return dup ? fmt_fail(err, ASR_E_CORRUPT, "two partitions numbered %u", dup) : ASR_OK;
}

static uint64_t first_partition_start(const struct asr_disk_desc *d)
{
    uint64_t first = d->size_bytes;
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (d->partitions[i].start_bytes < first)
            first = d->partitions[i].start_bytes;
    return first;
}

/* Where each kind of raw region may lie, and on which label (section 6's table). */
static int check_region(const struct asr_disk_desc *d, uint32_t i, const struct asr_partition_desc *ext,
                        uint64_t first_partition, uint32_t seen[ASR_REGION_OTHER + 1], struct asr_error *err)
{
    const struct asr_region_desc *r = &d->regions[i];
    unsigned long long off = (unsigned long long)r->offset;
    uint64_t ss = d->logical_sector;
    if (r->kind < ASR_REGION_MBR || r->kind > ASR_REGION_OTHER || r->length == 0 ||
        r->length > ASR_MAX_REGION_SIZE || !fits(r->offset, r->length, d->size_bytes))
        return fmt_fail(err, ASR_E_CORRUPT, "raw region %u (kind %u, %u bytes at %llu) invalid or outside the disk",
                        i, r->kind, r->length, off);
    bool gpt_only = r->kind >= ASR_REGION_GPT_HEADER && r->kind <= ASR_REGION_GPT_BACKUP_HEADER;
    if (d->label == ASR_LABEL_NONE || (gpt_only && d->label != ASR_LABEL_GPT) ||
        (r->kind == ASR_REGION_EBR && d->label != ASR_LABEL_MBR))
        return fmt_fail(err, ASR_E_CORRUPT, "raw region %u (kind %u at %llu) on a disk with %s", i, r->kind, off,
                        label_name(d->label));
    bool one_sector = r->kind == ASR_REGION_MBR || r->kind == ASR_REGION_GPT_HEADER ||
                      r->kind == ASR_REGION_GPT_BACKUP_HEADER || r->kind == ASR_REGION_EBR;
    bool at = r->kind == ASR_REGION_MBR ? r->offset == 0
              : r->kind == ASR_REGION_GPT_HEADER ? r->offset == ss
              : r->kind == ASR_REGION_GAP || r->kind == ASR_REGION_OTHER ? true
              : r->offset % ss == 0;
    if (!at || (one_sector && r->length != ss))
        return fmt_fail(err, ASR_E_CORRUPT, "raw region %u (kind %u, %u bytes at %llu) not where its kind lies",
                        i, r->kind, r->length, off);
    if ((r->kind == ASR_REGION_MBR || r->kind == ASR_REGION_GPT_HEADER || r->kind == ASR_REGION_GPT_BACKUP_HEADER) &&
        seen[r->kind]++)
        return fmt_fail(err, ASR_E_CORRUPT, "raw region %u: a second region of kind %u", i, r->kind);
    if (r->kind == ASR_REGION_GAP && r->offset + r->length > first_partition)
        return fmt_fail(err, ASR_E_CORRUPT, "raw region %u (the gap after sector 0, %u bytes at %llu) runs into the "
                        "first partition", i, r->length, off);
    if (r->kind == ASR_REGION_EBR &&
        (!ext || r->offset < ext->start_bytes || r->offset + r->length > ext->start_bytes + ext->size_bytes))
        return fmt_fail(err, ASR_E_CORRUPT, "raw region %u (an EBR at %llu) not inside an extended partition", i, off);
    return ASR_OK;
}

int asr_disk_desc_valid(const struct asr_disk_desc *d, struct asr_error *err)
{
    int rc = check_disk_fields(d, err);
    if (rc)
        return rc;
    uint32_t extended;
    const struct asr_partition_desc *ext = extended_of(d, &extended);
    if (extended > 1)
        return fmt_fail(err, ASR_E_CORRUPT, "%u extended partitions (an MBR holds one)", extended);
    for (uint32_t i = 0; i < d->partition_count; i++)
        if ((rc = check_partition(d, &d->partitions[i], ext, err)))
            return rc;
    if ((rc = check_numbers_unique(d, err)))
        return rc;
    uint32_t seen[ASR_REGION_OTHER + 1] = {0};
    uint64_t first = first_partition_start(d);
    for (uint32_t i = 0; i < d->region_count; i++)
        if ((rc = check_region(d, i, ext, first, seen, err)))
            return rc;
    return fmt_disk_tables_check(d, err);
}

int fmt_volume_desc_check(const struct asr_volume_desc *v, const struct asr_disk_desc *disks,
                          uint32_t disk_count, uint64_t incompat, struct asr_error *err)
{
    if (v->disk_index >= disk_count)
        return fmt_fail(err, ASR_E_CORRUPT, "disk index %u out of range", v->disk_index);
    const struct asr_disk_desc *d = &disks[v->disk_index];
    unsigned long long off = (unsigned long long)v->disk_offset, size = (unsigned long long)v->size_bytes;
    if (!fits(v->disk_offset, v->size_bytes, d->size_bytes) || v->size_bytes == 0)
        return fmt_fail(err, ASR_E_CORRUPT, "%llu bytes at %llu outside disk %u", size, off, v->disk_index);
    if (v->used_bytes > v->size_bytes)
        return fmt_fail(err, ASR_E_CORRUPT, "used bytes exceed its size");
    if (v->kind > ASR_VOLUME_AREA)
        return fmt_fail(err, ASR_E_CORRUPT, "volume kind %u unknown", v->kind);
    int rc = v->kind == ASR_VOLUME_AREA ? check_area(v, d, incompat, err) : ASR_OK;
    if (rc)
        return rc;
    if (v->kind == ASR_VOLUME_AREA) {
        /* checked above */
    } else if (v->partition_number == 0) {
        /* Partition 0 is the whole disk, so it must be one: on a partitioned disk it would write
         * over the table and every partition. */
        if (d->label != ASR_LABEL_NONE)
            return fmt_fail(err, ASR_E_CORRUPT, "partition 0 (a whole unpartitioned disk) on disk %u, which has %s",
                            v->disk_index, label_name(d->label));
        if (v->disk_offset != 0 || v->size_bytes != d->size_bytes)
            return fmt_fail(err, ASR_E_CORRUPT, "partition 0 (the whole disk) is %llu bytes at %llu, disk %u is "
                            "%llu bytes", size, off, v->disk_index, (unsigned long long)d->size_bytes);
    } else {
        const struct asr_partition_desc *p = NULL;
        for (uint32_t i = 0; i < d->partition_count && !p; i++)
            if (d->partitions[i].number == v->partition_number)
                p = &d->partitions[i];
        if (!p)
            return fmt_fail(err, ASR_E_CORRUPT, "partition %u not on disk %u", v->partition_number, v->disk_index);
        if (p->start_bytes != v->disk_offset || p->size_bytes != v->size_bytes)
            return fmt_fail(err, ASR_E_CORRUPT, "%llu bytes at %llu do not match partition %u of disk %u (%llu bytes "
                            "at %llu)", size, off, v->partition_number, v->disk_index,
                            (unsigned long long)p->size_bytes, (unsigned long long)p->start_bytes);
        if (p->kind == ASR_PART_EXTENDED || p->capture == ASR_CAPTURE_SKIP)
            return fmt_fail(err, ASR_E_CORRUPT, "partition %u of disk %u is %s", v->partition_number, v->disk_index,
                            p->kind == ASR_PART_EXTENDED ? "an extended partition, which holds no filesystem"
                                                         : "recorded as not captured (capture skip)");
    }
    for (uint32_t i = 0; i < d->region_count; i++) {
        const struct asr_region_desc *r = &d->regions[i];
        if (r->offset < v->disk_offset + v->size_bytes && v->disk_offset < r->offset + r->length)
            return fmt_fail(err, ASR_E_CORRUPT, "%llu bytes at %llu overlap raw region %u (kind %u, %u bytes at %llu) "
                            "of disk %u", size, off, i, r->kind, r->length, (unsigned long long)r->offset,
                            v->disk_index);
    }
    return ASR_OK;
}

struct placed_volume {
    uint32_t disk, id;
    uint64_t start, end;
};

static int cmp_placed(const void *a, const void *b)
{
    const struct placed_volume *x = a, *y = b;
    if (x->disk != y->disk)
        return x->disk < y->disk ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

int fmt_volume_table_check(const struct asr_disk_desc *disks, uint32_t disk_count,
                           const struct asr_volume_desc *v, uint32_t n, struct asr_error *err)
{
    /* Every volume has passed fmt_volume_desc_check: its disk exists, it lies inside it, and a
     * partition volume matches a captured partition. */
    struct placed_volume *p = malloc((n + 1u) * sizeof *p);
    uint32_t *captured = calloc(disk_count + 1u, sizeof *captured);
    int rc = p && captured ? ASR_OK : fmt_fail(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; !rc && i < n; i++) {
        p[i] = (struct placed_volume){v[i].disk_index, i, v[i].disk_offset, v[i].disk_offset + v[i].size_bytes};
        captured[v[i].disk_index] += v[i].kind == ASR_VOLUME_PARTITION && v[i].partition_number != 0;
    }
    if (!rc)
        qsort(p, n, sizeof *p, cmp_placed);
    /* Sorted by start, any overlap shows between neighbours. */
    for (uint32_t k = 1; !rc && k < n; k++)
        if (p[k].disk == p[k - 1].disk && p[k].start < p[k - 1].end)
            rc = fmt_fail(err, ASR_E_CORRUPT, "volumes %u and %u overlap on disk %u",
                          p[k - 1].id < p[k].id ? p[k - 1].id : p[k].id, p[k - 1].id < p[k].id ? p[k].id : p[k - 1].id,
                          p[k].disk);
    /* Distinct volumes now match distinct captured partitions: counting finds one left out. */
    for (uint32_t d = 0; !rc && d < disk_count; d++) {
        uint32_t want = 0;
        for (uint32_t i = 0; i < disks[d].partition_count; i++)
            want += disks[d].partitions[i].capture != ASR_CAPTURE_SKIP;
        for (uint32_t i = 0; want != captured[d] && !rc && i < disks[d].partition_count; i++) {
            const struct asr_partition_desc *q = &disks[d].partitions[i];
            bool has = q->capture == ASR_CAPTURE_SKIP;
            for (uint32_t k = 0; k < n && !has; k++)
                has = v[k].disk_index == d && v[k].kind == ASR_VOLUME_PARTITION && v[k].partition_number == q->number;
            if (!has)
                rc = fmt_fail(err, ASR_E_CORRUPT, "partition %u of disk %u is recorded as captured but has no volume",
                              q->number, d);
        }
    }
    free(p);
    free(captured);
    return rc;
}

/* ---- disks ------------------------------------------------------------------------------- */

static int encode_partition(const struct asr_partition_desc *p, struct fmt_buf *out)
{
    uint8_t *b = fmt_buf_extend(out, PART_FIXED);
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
    return fmt_put_str(out, p->name, ASR_NAME_MAX);
}

static int decode_partition(struct fmt_cursor *c, struct asr_partition_desc *p, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, PART_FIXED);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "truncated partition record");
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
    return fmt_take_str(c, p->name, ASR_NAME_MAX, err);
}

static int encode_region(const struct asr_region_desc *r, struct fmt_buf *out)
{
    uint8_t *b = fmt_buf_extend(out, REGION_FIXED + (size_t)r->length);
    if (!b)
        return -1;
    put_le16(b + 0, r->kind);
    put_le16(b + 2, 0);
    put_le32(b + 4, r->length);
    put_le64(b + 8, r->offset);
    memcpy(b + REGION_FIXED, r->data, r->length);
    return 0;
}

static int decode_region(struct fmt_cursor *c, struct asr_region_desc *r, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, REGION_FIXED);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "truncated raw region record");
    r->kind = get_le16(b + 0);
    r->length = get_le32(b + 4);
    r->offset = get_le64(b + 8);
    if (get_le16(b + 2) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "raw region reserved bytes not zero");
    if (r->length > ASR_MAX_REGION_SIZE || !(r->data = fmt_cursor_take(c, r->length)))
        return fmt_fail(err, ASR_E_CORRUPT, "raw region of %u bytes truncated", r->length);
    return ASR_OK;
}

static int encode_disk(const struct asr_disk_desc *d, struct fmt_buf *out)
{
    uint8_t *b = fmt_buf_extend(out, DISK_FIXED);
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
    if (fmt_put_str(out, d->source, ASR_NAME_MAX))
        return -1;
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (encode_partition(&d->partitions[i], out))
            return -1;
    for (uint32_t i = 0; i < d->region_count; i++)
        if (encode_region(&d->regions[i], out))
            return -1;
    return 0;
}

static int decode_disk(struct fmt_cursor *c, struct asr_disk_desc *d, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, DISK_FIXED);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "truncated disk record");
    d->size_bytes = get_le64(b + 0);
    d->logical_sector = get_le32(b + 8);
    d->physical_sector = get_le32(b + 12);
    d->label = b[16];
    for (int i = 17; i < 24; i++)
        if (b[i])
            return fmt_fail(err, ASR_E_CORRUPT, "disk record reserved bytes not zero");
    memcpy(d->disk_id, b + 24, 16);
    d->gpt_first_usable_lba = get_le64(b + 40);
    d->gpt_last_usable_lba = get_le64(b + 48);
    d->gpt_entry_count = get_le32(b + 56);
    d->gpt_entry_size = get_le32(b + 60);
    /* The counts reach *d only once the arrays they describe exist, so that no caller, even
     * one that ignores the error, can walk a count over a missing array. */
    uint32_t partition_count = get_le32(b + 64);
    uint32_t region_count = get_le32(b + 68);
    int rc = fmt_take_str(c, d->source, ASR_NAME_MAX, err);
    if (rc)
        return rc;
    /* Cap counts by the bytes that could hold them before allocating. */
    if (partition_count > ASR_MAX_PARTITIONS || region_count > ASR_MAX_REGIONS ||
        (uint64_t)partition_count * (PART_FIXED + 2) + (uint64_t)region_count * REGION_FIXED > c->left)
        return fmt_fail(err, ASR_E_CORRUPT, "%u partitions / %u regions do not fit the section",
                        partition_count, region_count);
    struct asr_partition_desc *parts = calloc(partition_count + 1u, sizeof *parts);
    struct asr_region_desc *regions = calloc(region_count + 1u, sizeof *regions);
    d->partitions = parts;
    d->regions = regions;
    if (!parts || !regions)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
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

int fmt_layout_encode_disks(const struct asr_disk_desc *disks, uint32_t n, const struct asr_stack_desc *stacks,
                            uint32_t stack_count, struct fmt_buf *out, struct asr_error *err)
{
    uint8_t *b = fmt_buf_extend(out, 8);
    if (b)
        put_le32(b, n);
    for (uint32_t i = 0; i < n && b; i++)
        if (encode_disk(&disks[i], out))
            return fmt_fail(err, ASR_E_NOMEM, "layout: out of memory or a name too long on disk %u", i);
    if (b && stack_count && fmt_stacks_encode(stacks, stack_count, out))
        return fmt_fail(err, ASR_E_NOMEM, "layout: out of memory or a name too long in the stack table");
    if (out->failed)
        return fmt_fail(err, ASR_E_NOMEM, "layout: out of memory");
    if (out->len > ASR_MAX_LAYOUT_SIZE)
        return fmt_fail(err, ASR_E_LIMIT, "layout: %zu bytes exceed the %u-byte limit", out->len,
                        ASR_MAX_LAYOUT_SIZE);
    return ASR_OK;
}

int fmt_layout_decode_disks(const uint8_t *body, size_t len, struct fmt_layout *l, struct asr_error *err)
{
    if (len < 8 || len > ASR_MAX_LAYOUT_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "length %zu out of range", len);
    if (!(l->body = malloc(len)))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    memcpy(l->body, body, len);
    struct fmt_cursor c = {l->body + 8, len - 8, "layout"};
    uint32_t n = get_le32(l->body);
    if (n > ASR_MAX_DISKS || get_le32(l->body + 4) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "disk count %u out of range", n);
    if (!(l->disks = calloc(n + 1u, sizeof *l->disks)))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        l->disk_count = i + 1; /* so fmt_layout_free releases what was allocated */
        struct asr_error why = {0};
        int rc = decode_disk(&c, &l->disks[i], &why);
        if (rc)
            return fmt_fail(err, rc, "disk %u: %s", i, why.msg);
    }
    if (l->incompat & ASR_FEATURE_INCOMPAT_STACKS)
        return fmt_stacks_decode(&c, l, err);
    if (c.left != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "%zu stray bytes after the last disk", c.left);
    return ASR_OK;
}

/* ---- volumes ----------------------------------------------------------------------------- */

int fmt_layout_encode_volumes(const struct asr_volume_desc *v, uint32_t n, struct fmt_buf *out,
                              struct asr_error *err)
{
    uint8_t *b = fmt_buf_extend(out, 8);
    if (b)
        put_le32(b, n);
    for (uint32_t i = 0; i < n && b; i++) {
        if (!(b = fmt_buf_extend(out, VOLUME_FIXED)))
            break;
        put_le32(b + 0, v[i].disk_index);
        put_le32(b + 4, v[i].partition_number);
        put_le64(b + 8, v[i].disk_offset);
        put_le64(b + 16, v[i].size_bytes);
        put_le64(b + 24, v[i].used_bytes);
        put_le32(b + 32, v[i].block_size);
        b[36] = v[i].kind;
        if (fmt_put_str(out, v[i].fs_type, ASR_FSNAME_MAX) || fmt_put_str(out, v[i].fs_uuid, ASR_FSNAME_MAX) ||
            fmt_put_str(out, v[i].fs_label, ASR_FSNAME_MAX))
            return fmt_fail(err, ASR_E_ARG, "volume %u: a name is too long", i);
    }
    if (out->failed)
        return fmt_fail(err, ASR_E_NOMEM, "volume table: out of memory");
    return ASR_OK;
}

int fmt_layout_decode_volumes(const uint8_t *body, size_t len, struct fmt_layout *l, struct asr_error *err)
{
    if (len < 8 || len > ASR_MAX_VOLTABLE_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "length %zu out of range", len);
    uint32_t n = get_le32(body);
    if (n > ASR_MAX_VOLUMES || (uint64_t)n * (VOLUME_FIXED + 6) > len - 8 || get_le32(body + 4) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "volume count %u out of range", n);
    if (!(l->volumes = calloc(n + 1u, sizeof *l->volumes)))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    l->volume_count = n;
    struct fmt_cursor c = {body + 8, len - 8, "volume table"};
    for (uint32_t i = 0; i < n; i++) {
        struct asr_volume_desc *v = &l->volumes[i];
        const uint8_t *b = fmt_cursor_take(&c, VOLUME_FIXED);
        if (!b)
            return fmt_fail(err, ASR_E_CORRUPT, "truncated volume %u", i);
        v->disk_index = get_le32(b + 0);
        v->partition_number = get_le32(b + 4);
        v->disk_offset = get_le64(b + 8);
        v->size_bytes = get_le64(b + 16);
        v->used_bytes = get_le64(b + 24);
        v->block_size = get_le32(b + 32);
        v->kind = b[36];
        if (b[37] || b[38] || b[39])
            return fmt_fail(err, ASR_E_CORRUPT, "volume %u: reserved bytes not zero", i);
        int rc;
        struct asr_error why = {0};
        if ((rc = fmt_take_str(&c, v->fs_type, ASR_FSNAME_MAX, &why)) ||
            (rc = fmt_take_str(&c, v->fs_uuid, ASR_FSNAME_MAX, &why)) ||
            (rc = fmt_take_str(&c, v->fs_label, ASR_FSNAME_MAX, &why)) ||
            (rc = fmt_volume_desc_check(v, l->disks, l->disk_count, l->incompat, &why)))
            return fmt_fail(err, rc, "volume %u: %s", i, why.msg);
    }
    if (c.left != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "%zu stray bytes after the last volume", c.left);
    return fmt_volume_table_check(l->disks, l->disk_count, l->volumes, n, err);
}

void fmt_layout_free(struct fmt_layout *l)
{
    if (!l)
        return;
    for (uint32_t i = 0; l->disks && i < l->disk_count; i++) {
        free((void *)l->disks[i].partitions);
        free((void *)l->disks[i].regions);
    }
    free(l->disks);
    free(l->volumes);
    for (uint32_t i = 0; l->stacks && i < l->stack_count; i++)
        fmt_stack_free(&l->stacks[i]);
    free(l->stacks);
    free(l->body);
    *l = (struct fmt_layout){0};
}
