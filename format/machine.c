/* The machine record (feature "machine", SPEC.md section 4): the hostname, the firmware the
 * machine booted with, and on UEFI the Boot#### entries that load from the imaged disks and
 * BootOrder, appended to the image header. Encoding, decoding, and the rules the writer and every
 * reader apply to it (each entry's HD() node names a partition of the layout by its GUID). */
#include "internal.h"
#include "le.h"

#include <string.h>

#define RECORD_FIXED 16u
#define ENTRY_FIXED 16u

const char *asr_firmware_name(uint8_t firmware)
{
    switch (firmware) {
    case ASR_FIRMWARE_UNKNOWN: return "unknown";
    case ASR_FIRMWARE_BIOS: return "BIOS";
    case ASR_FIRMWARE_UEFI: return "UEFI";
    default: return NULL;
    }
}

/* ---- rules ------------------------------------------------------------------------------------ */

static int entry_check(const struct asr_boot_entry *e, const struct asr_disk_desc *disks, uint32_t disk_count,
                       struct asr_error *err)
{
    struct asr_load_option o;
    struct asr_error why = {0};
    if (e->load_option_len > ASR_LOAD_OPTION_MAX)
        return fmt_fail(err, ASR_E_CORRUPT, "load option of %u bytes over %u", e->load_option_len,
                        ASR_LOAD_OPTION_MAX);
    if (asr_load_option_parse(e->load_option, e->load_option_len, &o, &why))
        return fmt_fail(err, ASR_E_CORRUPT, "%s", why.msg);
    if (!o.has_hd)
        return fmt_fail(err, ASR_E_CORRUPT, "its device path names no GPT partition (no HD() node)");
    if (e->disk >= disk_count)
        return fmt_fail(err, ASR_E_CORRUPT, "disk %u not in the layout (%u disks)", e->disk, disk_count);
    const struct asr_disk_desc *d = &disks[e->disk];
    if (d->label != ASR_LABEL_GPT)
        return fmt_fail(err, ASR_E_CORRUPT, "disk %u has no GPT", e->disk);
    for (uint32_t i = 0; i < d->partition_count; i++)
        if (d->partitions[i].number == e->partition) {
            if (memcmp(d->partitions[i].part_guid, o.hd.guid, 16))
                return fmt_fail(err, ASR_E_CORRUPT, "its HD() node's GUID is not partition %u's", e->partition);
            return ASR_OK;
        }
    return fmt_fail(err, ASR_E_CORRUPT, "partition %u not on disk %u", e->partition, e->disk);
}

int asr_machine_valid(const struct asr_machine_desc *m, const struct asr_disk_desc *disks, uint32_t disk_count,
                      struct asr_error *err)
{
    if (!memchr(m->hostname, '\0', sizeof m->hostname))
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: hostname too long");
    if (!asr_firmware_name(m->firmware))
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: firmware %u unknown", m->firmware);
    if (m->boot_order_count > ASR_MAX_BOOT_ORDER || m->entry_count > ASR_MAX_BOOT_ENTRIES)
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: %u BootOrder numbers, %u entries (at most %u, %u)",
                        m->boot_order_count, m->entry_count, ASR_MAX_BOOT_ORDER, ASR_MAX_BOOT_ENTRIES);
    if (m->firmware != ASR_FIRMWARE_UEFI && (m->boot_order_count || m->entry_count))
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: boot entries without UEFI firmware");
    for (uint32_t i = 0; i < m->entry_count; i++) {
        const struct asr_boot_entry *e = &m->entries[i];
        for (uint32_t j = 0; j < i; j++)
            if (m->entries[j].number == e->number)
                return fmt_fail(err, ASR_E_CORRUPT, "machine record: Boot%04X recorded twice", e->number);
        struct asr_error why = {0};
        if (entry_check(e, disks, disk_count, &why))
            return fmt_fail(err, ASR_E_CORRUPT, "machine record: Boot%04X: %s", e->number, why.msg);
    }
    return ASR_OK;
}

/* ---- encoding ---------------------------------------------------------------------------------- */

int fmt_machine_encode(const struct asr_machine_desc *m, struct fmt_buf *out)
{
    size_t start = out->len;
    uint8_t *b = fmt_buf_extend(out, RECORD_FIXED);
    if (!b)
        return -1;
    memset(b, 0, RECORD_FIXED);
    b[4] = m->firmware;
    put_le16(b + 6, (uint16_t)m->boot_order_count);
    put_le16(b + 8, (uint16_t)m->entry_count);
    if (fmt_put_str(out, m->hostname, ASR_HOSTNAME_MAX))
        return -1;
    if (m->boot_order_count && !(b = fmt_buf_extend(out, 2u * m->boot_order_count)))
        return -1;
    for (uint32_t i = 0; i < m->boot_order_count; i++)
        put_le16(b + 2 * i, m->boot_order[i]);
    for (uint32_t i = 0; i < m->entry_count; i++) {
        const struct asr_boot_entry *e = &m->entries[i];
        if (!(b = fmt_buf_extend(out, ENTRY_FIXED + e->load_option_len)))
            return -1;
        memset(b, 0, ENTRY_FIXED);
        put_le16(b, e->number);
        put_le32(b + 4, e->disk);
        put_le32(b + 8, e->partition);
        put_le32(b + 12, e->load_option_len);
        memcpy(b + ENTRY_FIXED, e->load_option, e->load_option_len);
    }
    put_le32(out->data + start, (uint32_t)(out->len - start));
    return 0;
}

/* ---- decoding ---------------------------------------------------------------------------------- */

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int fmt_machine_decode(const uint8_t *p, size_t avail, struct asr_machine_desc *m, struct asr_error *err)
{
    memset(m, 0, sizeof *m);
    if (avail < RECORD_FIXED)
        return fmt_fail(err, ASR_E_CORRUPT, "machine record truncated");
    uint32_t len = get_le32(p);
    if (len < RECORD_FIXED || len > avail)
        return fmt_fail(err, ASR_E_CORRUPT, "machine record length %u out of range (%zu bytes left)", len, avail);
    if (p[5] || !zero(p + 10, 6))
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: reserved bytes not zero");
    m->firmware = p[4];
    m->boot_order_count = get_le16(p + 6);
    m->entry_count = get_le16(p + 8);
    if (m->boot_order_count > ASR_MAX_BOOT_ORDER || m->entry_count > ASR_MAX_BOOT_ENTRIES)
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: %u BootOrder numbers, %u entries (at most %u, %u)",
                        m->boot_order_count, m->entry_count, ASR_MAX_BOOT_ORDER, ASR_MAX_BOOT_ENTRIES);
    struct fmt_cursor c = {p + RECORD_FIXED, len - RECORD_FIXED, "machine record"};
    int rc = fmt_take_str(&c, m->hostname, ASR_HOSTNAME_MAX, err);
    if (rc)
        return rc;
    const uint8_t *b = fmt_cursor_take(&c, 2u * m->boot_order_count);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: BootOrder truncated");
    for (uint32_t i = 0; i < m->boot_order_count; i++)
        m->boot_order[i] = get_le16(b + 2 * i);
    for (uint32_t i = 0; i < m->entry_count; i++) {
        struct asr_boot_entry *e = &m->entries[i];
        if (!(b = fmt_cursor_take(&c, ENTRY_FIXED)))
            return fmt_fail(err, ASR_E_CORRUPT, "machine record: entry %u truncated", i);
        if (!zero(b + 2, 2))
            return fmt_fail(err, ASR_E_CORRUPT, "machine record: entry %u: reserved bytes not zero", i);
        e->number = get_le16(b);
        e->disk = get_le32(b + 4);
        e->partition = get_le32(b + 8);
        e->load_option_len = get_le32(b + 12);
        if (e->load_option_len > ASR_LOAD_OPTION_MAX)
            return fmt_fail(err, ASR_E_CORRUPT, "machine record: entry %u: load option of %u bytes over %u", i,
                            e->load_option_len, ASR_LOAD_OPTION_MAX);
        if (!(b = fmt_cursor_take(&c, e->load_option_len)))
            return fmt_fail(err, ASR_E_CORRUPT, "machine record: entry %u truncated", i);
        memcpy(e->load_option, b, e->load_option_len);
    }
    if (c.left)
        return fmt_fail(err, ASR_E_CORRUPT, "machine record: %zu bytes after its last entry", c.left);
    return ASR_OK;
}
