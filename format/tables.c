/* The partition table bytes that a restore writes back from raw regions (the MBR in sector 0,
 * the GPT headers and their entry arrays), checked against the layout records that say where
 * the volumes go. A table that disagreed with the records would have the restored data land
 * where the restored table does not point, or leave a GPT whose entry array is not on the disk.
 * SPEC.md section 6 states these rules; asr_disk_desc_valid calls this after the record's own
 * fields and the regions' places have passed. */
#include "internal.h"
#include "le.h"

#include <string.h>

#define GPT_HEADER_MIN 92u /* the header's fields; a sector holds it */
#define GPT_ENTRY_USED 56u /* type GUID, unique GUID, first and last LBA, attributes */
#define MBR_TABLE 446u

/* ---- CRC-32 (IEEE 802.3, reflected): the checksum of GPT headers and entry arrays ------- */

struct crc32 {
    uint32_t table[256];
    uint32_t value;
};

static void crc32_init(struct crc32 *c)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t v = i;
        for (int k = 0; k < 8; k++)
            v = (v >> 1) ^ (0xedb88320u & (0u - (v & 1)));
        c->table[i] = v;
    }
    c->value = 0xffffffffu;
}

static void crc32_add(struct crc32 *c, const uint8_t *p, size_t n)
{
    uint32_t v = c->value;
    for (size_t i = 0; i < n; i++)
        v = (v >> 8) ^ c->table[(v ^ p[i]) & 0xff];
    c->value = v;
}

uint32_t fmt_crc32(const void *data, size_t n)
{
    struct crc32 c;
    crc32_init(&c);
    crc32_add(&c, data, n);
    return ~c.value;
}

/* ---- regions ------------------------------------------------------------------------------ */

static const struct asr_region_desc *region_of(const struct asr_disk_desc *d, uint16_t kind)
{
    for (uint32_t i = 0; i < d->region_count; i++)
        if (d->regions[i].kind == kind)
            return &d->regions[i];
    return NULL;
}

/* An entry array is stored as the regions of one kind, in record order, each starting where the
 * one before it ended (the capture cuts a long array at the region size cap). */
static bool array_stored(const struct asr_disk_desc *d, uint16_t kind, uint64_t start, uint64_t len)
{
    uint64_t at = start;
    for (uint32_t i = 0; i < d->region_count; i++) {
        const struct asr_region_desc *r = &d->regions[i];
        if (r->kind != kind)
            continue;
        if (r->offset != at)
            return false;
        at += r->length;
    }
    return at - start == len;
}

/* n bytes from offset rel of a stored array (array_stored holds). */
static void array_read(const struct asr_disk_desc *d, uint16_t kind, uint64_t rel, uint8_t *out, size_t n)
{
    uint64_t base = 0;
    for (uint32_t i = 0; i < d->region_count && n; i++) {
        const struct asr_region_desc *r = &d->regions[i];
        if (r->kind != kind)
            continue;
        if (rel < base + r->length) {
            size_t take = (size_t)(base + r->length - rel) < n ? (size_t)(base + r->length - rel) : n;
            memcpy(out, r->data + (rel - base), take);
            out += take;
            rel += take;
            n -= take;
        }
        base += r->length;
    }
}

static uint32_t array_crc(const struct asr_disk_desc *d, uint16_t kind, uint64_t n)
{
    struct crc32 c;
    crc32_init(&c);
    for (uint32_t i = 0; i < d->region_count && n; i++) {
        const struct asr_region_desc *r = &d->regions[i];
        if (r->kind != kind)
            continue;
        size_t take = r->length < n ? r->length : (size_t)n;
        crc32_add(&c, r->data, take);
        n -= take;
    }
    return ~c.value;
}

/* ---- MBR ---------------------------------------------------------------------------------- */

/* libfdisk, which the capture reads tables with, sees an MBR only with its signature, and takes
 * a primary or the extended partition n from entry n - 1 of sector 0. */
static int check_mbr(const struct asr_disk_desc *d, struct asr_error *err)
{
    const struct asr_region_desc *r = region_of(d, ASR_REGION_MBR);
    if (!r)
        return fmt_fail(err, ASR_E_CORRUPT, "MBR disk without a raw region holding sector 0");
    const uint8_t *b = r->data;
    if (b[510] != 0x55 || b[511] != 0xaa)
        return fmt_fail(err, ASR_E_CORRUPT, "sector 0 holds no MBR (bytes 510-511 are %02x %02x, not 55 aa)", b[510],
                        b[511]);
    uint64_t ss = d->logical_sector;
    for (uint32_t i = 0; i < d->partition_count; i++) {
        const struct asr_partition_desc *p = &d->partitions[i];
        if (p->kind == ASR_PART_LOGICAL)
            continue; /* numbered 5 and up, described by EBRs */
        const uint8_t *e = b + MBR_TABLE + 16 * (p->number - 1);
        uint64_t lba = get_le32(e + 8), sectors = get_le32(e + 12);
        bool boot = e[0] == 0x80;
        if (e[4] != p->mbr_type || boot != (p->bootable == 1) || lba * ss != p->start_bytes ||
            sectors * ss != p->size_bytes)
            return fmt_fail(err, ASR_E_CORRUPT, "partition %u: the MBR entry in sector 0 (type 0x%02x%s, %llu bytes at "
                            "%llu) differs from its record (type 0x%02x%s, %llu bytes at %llu)", p->number, e[4],
                            boot ? ", bootable" : "", (unsigned long long)(sectors * ss),
                            (unsigned long long)(lba * ss),
                            p->mbr_type, p->bootable ? ", bootable" : "", (unsigned long long)p->size_bytes,
                            (unsigned long long)p->start_bytes);
    }
    return ASR_OK;
}

/* ---- GPT ---------------------------------------------------------------------------------- */

struct gpt_header {
    uint64_t my_lba, alt_lba, first_usable, last_usable, entries_lba;
    uint32_t entry_count, entry_size, entries_crc;
    const uint8_t *disk_guid;
};

/* A header as every GPT reader takes one: signature, size and CRC-32. Other bytes where a header
 * belongs are a header damaged when imaged (libfdisk read the other copy): kept as found. */
static bool gpt_header_read(const struct asr_region_desc *r, struct gpt_header *h)
{
    static const uint8_t no_crc[4];
    const uint8_t *b = r->data;
    if (r->length < GPT_HEADER_MIN || memcmp(b, "EFI PART", 8) != 0)
        return false;
    uint32_t size = get_le32(b + 12);
    if (size < GPT_HEADER_MIN || size > r->length)
        return false;
    struct crc32 c;
    crc32_init(&c);
    crc32_add(&c, b, 16);
    crc32_add(&c, no_crc, sizeof no_crc);
    crc32_add(&c, b + 20, size - 20);
    if (~c.value != get_le32(b + 16))
        return false;
    *h = (struct gpt_header){.my_lba = get_le64(b + 24), .alt_lba = get_le64(b + 32),
                             .first_usable = get_le64(b + 40), .last_usable = get_le64(b + 48),
                             .disk_guid = b + 56, .entries_lba = get_le64(b + 72), .entry_count = get_le32(b + 80),
                             .entry_size = get_le32(b + 84), .entries_crc = get_le32(b + 88)};
    return true;
}

/* Each GPT partition's record is its entry (number - 1) of a valid array. */
static int check_gpt_entries(const struct asr_disk_desc *d, uint16_t kind, const char *which, struct asr_error *err)
{
    uint64_t ss = d->logical_sector;
    for (uint32_t i = 0; i < d->partition_count; i++) {
        const struct asr_partition_desc *p = &d->partitions[i];
        uint8_t e[GPT_ENTRY_USED];
        array_read(d, kind, (uint64_t)(p->number - 1) * d->gpt_entry_size, e, sizeof e);
        uint64_t first = get_le64(e + 32), last = get_le64(e + 40);
        const char *what = memcmp(e, p->type_guid, 16) ? "type GUID"
                           : memcmp(e + 16, p->part_guid, 16) ? "unique GUID"
                           : get_le64(e + 48) != p->attributes ? "attributes"
                           : first != p->start_bytes / ss || last + 1 - first != p->size_bytes / ss ? "place"
                           : NULL;
        if (what)
            return fmt_fail(err, ASR_E_CORRUPT, "partition %u: its record and entry %u of the %s GPT entry array "
                            "differ in %s (entry: LBAs %llu..%llu; record: %llu bytes at %llu)", p->number,
                            p->number - 1, which, what, (unsigned long long)first, (unsigned long long)last,
                            (unsigned long long)p->size_bytes, (unsigned long long)p->start_bytes);
    }
    return ASR_OK;
}

/* A valid primary (kind 3) or backup (kind 6) header agrees with the disk record, points at the
 * other header the image holds, and places its entry array on the disk, outside the usable
 * LBAs, exactly where the image's entry regions of its kind (4 or 5) are. */
static int check_gpt_header(const struct asr_disk_desc *d, const struct asr_region_desc *r, struct asr_error *err)
{
    struct gpt_header h;
    if (!gpt_header_read(r, &h))
        return ASR_OK;
    bool primary = r->kind == ASR_REGION_GPT_HEADER;
    const char *which = primary ? "primary" : "backup";
    uint64_t ss = d->logical_sector, sectors = d->size_bytes / ss, lba = r->offset / ss;
    if (h.my_lba != lba)
        return fmt_fail(err, ASR_E_CORRUPT, "%s GPT header at LBA %llu says it is at LBA %llu", which,
                        (unsigned long long)lba, (unsigned long long)h.my_lba);
    if (h.first_usable != d->gpt_first_usable_lba || h.last_usable != d->gpt_last_usable_lba ||
        h.entry_count != d->gpt_entry_count || h.entry_size != d->gpt_entry_size)
        return fmt_fail(err, ASR_E_CORRUPT, "%s GPT header (usable LBAs %llu..%llu, %u entries of %u bytes) differs "
                        "from the disk record (usable LBAs %llu..%llu, %u entries of %u bytes)", which,
                        (unsigned long long)h.first_usable, (unsigned long long)h.last_usable, h.entry_count,
                        h.entry_size, (unsigned long long)d->gpt_first_usable_lba,
                        (unsigned long long)d->gpt_last_usable_lba, d->gpt_entry_count, d->gpt_entry_size);
    if (memcmp(h.disk_guid, d->disk_id, 16) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "%s GPT header's disk GUID differs from the disk record's", which);
    const struct asr_region_desc *other = region_of(d, primary ? ASR_REGION_GPT_BACKUP_HEADER : ASR_REGION_GPT_HEADER);
    if (primary ? other && h.alt_lba != other->offset / ss : h.alt_lba != 1)
        return fmt_fail(err, ASR_E_CORRUPT, "%s GPT header places the %s header at LBA %llu, the image holds it at "
                        "LBA %llu", which, primary ? "backup" : "primary", (unsigned long long)h.alt_lba,
                        (unsigned long long)(primary ? other->offset / ss : 1));
    uint64_t bytes = ((uint64_t)h.entry_count * h.entry_size + ss - 1) / ss * ss, n = bytes / ss;
    unsigned long long at = (unsigned long long)h.entries_lba;
    if (h.entries_lba < 2 || h.entries_lba > sectors || n > sectors - h.entries_lba)
        return fmt_fail(err, ASR_E_CORRUPT, "%s GPT header places its entry array (%llu bytes) at LBA %llu, outside "
                        "LBAs 2..%llu of the disk", which, (unsigned long long)bytes, at,
                        (unsigned long long)sectors - 1);
    if (h.entries_lba + n > d->gpt_first_usable_lba && h.entries_lba <= d->gpt_last_usable_lba)
        return fmt_fail(err, ASR_E_CORRUPT, "%s GPT header places its entry array at LBAs %llu..%llu, inside the "
                        "usable LBAs %llu..%llu", which, at, at + n - 1, (unsigned long long)d->gpt_first_usable_lba,
                        (unsigned long long)d->gpt_last_usable_lba);
    uint16_t kind = primary ? ASR_REGION_GPT_ENTRIES : ASR_REGION_GPT_BACKUP_ENTRIES;
    if (!array_stored(d, kind, h.entries_lba * ss, bytes))
        return fmt_fail(err, ASR_E_CORRUPT, "%s GPT header places its entry array (%llu bytes) at LBA %llu, where the "
                        "image's raw regions of kind %u do not hold it", which, (unsigned long long)bytes, at, kind);
    if (array_crc(d, kind, (uint64_t)h.entry_count * h.entry_size) != h.entries_crc)
        return ASR_OK; /* damaged when imaged, like a damaged header: no table to compare */
    return check_gpt_entries(d, kind, which, err);
}

int fmt_disk_tables_check(const struct asr_disk_desc *d, struct asr_error *err)
{
    if (d->label == ASR_LABEL_MBR)
        return check_mbr(d, err);
    for (uint32_t i = 0; d->label == ASR_LABEL_GPT && i < d->region_count; i++) {
        const struct asr_region_desc *r = &d->regions[i];
        int rc = r->kind == ASR_REGION_GPT_HEADER || r->kind == ASR_REGION_GPT_BACKUP_HEADER
                     ? check_gpt_header(d, r, err)
                     : ASR_OK;
        if (rc)
            return rc;
    }
    return ASR_OK;
}
