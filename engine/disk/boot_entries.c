/* The machine's UEFI boot entries (SPEC.md section 4, feature machine): at backup, the Boot####
 * variables whose device path names a GPT partition of the imaged disks (by the partition GUID in
 * its HD() node) and BootOrder; after a restore, those entries made again pointing at the
 * restored partitions, exactly once however often the restore runs, and put first in BootOrder.
 * Every byte read from efivarfs is untrusted: variables over the record's caps or that do not
 * parse are left out (backup) or left alone (restore), never trusted. */
#include "asr_engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"

#define VAR_ATTRS 0x7u /* NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS, as boot managers set them */
#define MAX_VARS 4096u /* Boot#### variables looked at */

static void note(char *notes, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void note(char *notes, size_t len, const char *fmt, ...)
{
    if (!notes || !len)
        return;
    size_t at = strlen(notes);
    if (at + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(notes + at, len - at, fmt, ap);
    va_end(ap);
}

static void var_name(uint16_t number, char out[9]) { snprintf(out, 9, "Boot%04X", number); }

/* BootOrder: a list of u16; odd bytes or more than the record keeps are refused. */
static int read_boot_order(const char *dir, uint16_t *order, uint32_t *count, struct asr_error *err)
{
    uint8_t buf[2 * ASR_MAX_BOOT_ORDER];
    size_t len;
    uint32_t attrs;
    bool found;
    *count = 0;
    int rc = asr_efivar_read(dir, "BootOrder", &attrs, buf, sizeof buf, &len, &found, err);
    if (rc || !found)
        return rc;
    if (len % 2)
        return asr_fail_public(err, ASR_E_CORRUPT, "efivarfs: BootOrder of %zu bytes, not a list of 2-byte numbers",
                               len);
    for (size_t i = 0; i < len / 2; i++)
        order[i] = get_le16(buf + 2 * i);
    *count = (uint32_t)(len / 2);
    return ASR_OK;
}

/* The image disk and partition whose GPT partition GUID is guid. */
static bool find_partition(const struct asr_disk_desc *const *disks, uint32_t n, const uint8_t guid[16],
                           uint32_t *disk, uint32_t *partition)
{
    static const uint8_t zero[16];
    if (!memcmp(guid, zero, 16))
        return false;
    for (uint32_t d = 0; d < n; d++) {
        if (!disks[d] || disks[d]->label != ASR_LABEL_GPT)
            continue;
        for (uint32_t i = 0; i < disks[d]->partition_count; i++)
            if (!memcmp(disks[d]->partitions[i].part_guid, guid, 16)) {
                *disk = d;
                *partition = disks[d]->partitions[i].number;
                return true;
            }
    }
    return false;
}

int asr_boot_entries_collect(const char *dir, const struct asr_disk_desc *const *disks, uint32_t n,
                             struct asr_machine_desc *m, char *notes, size_t notes_len, struct asr_error *err)
{
    m->boot_order_count = m->entry_count = 0;
    if (notes && notes_len)
        notes[0] = '\0';
    uint16_t *numbers = malloc(MAX_VARS * sizeof *numbers);
    struct asr_boot_entry *scratch = malloc(sizeof *scratch); /* read here, kept when it is one of ours */
    if (!numbers || !scratch) {
        free(numbers);
        free(scratch);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    size_t count = 0;
    struct asr_error why = {0};
    int rc = read_boot_order(dir, m->boot_order, &m->boot_order_count, err);
    if (!rc)
        rc = asr_efivar_list_boot(dir, numbers, MAX_VARS, &count, err);
    for (size_t i = 0; !rc && i < count; i++) {
        char name[9];
        var_name(numbers[i], name);
        struct asr_boot_entry *e = scratch;
        uint32_t attrs;
        size_t len;
        bool found;
        int r = asr_efivar_read(dir, name, &attrs, e->load_option, sizeof e->load_option, &len, &found, &why);
        struct asr_load_option o;
        if (r == ASR_E_NOMEM)
            rc = asr_fail_public(err, r, "%s", why.msg);
        if (r || !found)
            continue; /* gone meanwhile, or unreadable: it is not one of ours to keep */
        if (asr_load_option_parse(e->load_option, len, &o, &why)) {
            note(notes, notes_len, "%s: left out: %s\n", name, why.msg);
            continue;
        }
        if (!o.has_hd || !find_partition(disks, n, o.hd.guid, &e->disk, &e->partition))
            continue; /* another disk, a network boot, the firmware's own shell */
        if (m->entry_count == ASR_MAX_BOOT_ENTRIES) {
            note(notes, notes_len, "%s: left out: the image keeps %u entries\n", name, ASR_MAX_BOOT_ENTRIES);
            continue;
        }
        e->number = numbers[i];
        e->load_option_len = (uint32_t)len;
        m->entries[m->entry_count++] = *e;
    }
    free(numbers);
    free(scratch);
    return rc;
}

/* ---- restore ----------------------------------------------------------------------------------- */

/* The entry asr_boot_entries_restore would make for recorded entry e on the restored disks. */
static int rebuild(const struct asr_boot_entry *e, const struct asr_disk_desc *const *targets, uint32_t n,
                   uint8_t *out, size_t *len, struct asr_load_option *o, struct asr_hd_node *hd,
                   struct asr_error *err)
{
    struct asr_error why = {0};
    if (asr_load_option_parse(e->load_option, e->load_option_len, o, &why) || !o->has_hd)
        return asr_fail_public(err, ASR_E_CORRUPT, "recorded Boot%04X: %s", e->number,
                               why.msg[0] ? why.msg : "no HD() node");
    const struct asr_disk_desc *d = e->disk < n ? targets[e->disk] : NULL;
    if (!d)
        return asr_fail_public(err, ASR_E_ARG, "Boot%04X: image disk %u was not restored", e->number, e->disk);
    const struct asr_partition_desc *p = NULL;
    for (uint32_t i = 0; d->label == ASR_LABEL_GPT && i < d->partition_count; i++)
        if (d->partitions[i].number == e->partition)
            p = &d->partitions[i];
    if (!p)
        return asr_fail_public(err, ASR_E_ARG, "Boot%04X: the restored disk %s has no GPT partition %u", e->number,
                               d->source, e->partition);
    /* HD() from the partition table as restored (a grown disk or --new-ids changes it), the
     * short form: boot managers expand it by finding the partition with that GUID. */
    hd->partition = p->number;
    hd->start_lba = p->start_bytes / d->logical_sector;
    hd->size_lba = p->size_bytes / d->logical_sector;
    memcpy(hd->guid, p->part_guid, 16);
    return asr_load_option_build(o->attributes, o->desc, o->desc_len, hd, o->path + o->file_at, o->file_len,
                                 o->optional, o->optional_len, out, ASR_LOAD_OPTION_MAX, len, err);
}

/* The existing Boot#### variable that already is this entry: its HD() names the same partition
 * GUID and the same file path follows it (whether the firmware keeps the short or the full
 * form). */
static bool same_target(const struct asr_load_option *a, const struct asr_load_option *b)
{
    return a->has_hd && b->has_hd && !memcmp(a->hd.guid, b->hd.guid, 16) && a->file_len == b->file_len &&
           !memcmp(a->path + a->file_at, b->path + b->file_at, a->file_len);
}

struct existing {
    uint16_t number;
    bool parsed;
    uint32_t len;
    uint8_t *bytes; /* ASR_LOAD_OPTION_MAX */
    struct asr_load_option o;
};

static int load_existing(const char *dir, struct existing **out, size_t *count, struct asr_error *err)
{
    uint16_t *numbers = malloc(MAX_VARS * sizeof *numbers);
    struct existing *ex = NULL;
    int rc = numbers ? asr_efivar_list_boot(dir, numbers, MAX_VARS, count, err)
                     : asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    if (!rc && !(ex = calloc(*count + 1, sizeof *ex)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < *count; i++) {
        ex[i].number = numbers[i];
        if (!(ex[i].bytes = malloc(ASR_LOAD_OPTION_MAX))) {
            rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
            break;
        }
        char name[9];
        var_name(numbers[i], name);
        uint32_t attrs;
        size_t len;
        bool found;
        struct asr_error why = {0};
        /* One that does not read or parse is somebody else's: its number stays taken, it is never
         * reused as ours. */
        if (asr_efivar_read(dir, name, &attrs, ex[i].bytes, ASR_LOAD_OPTION_MAX, &len, &found, &why) || !found)
            continue;
        ex[i].len = (uint32_t)len;
        ex[i].parsed = !asr_load_option_parse(ex[i].bytes, len, &ex[i].o, &why);
    }
    free(numbers);
    *out = ex;
    return rc;
}

static void free_existing(struct existing *ex, size_t n)
{
    for (size_t i = 0; ex && i < n; i++)
        free(ex[i].bytes);
    free(ex);
}

static bool number_taken(const struct existing *ex, size_t n, uint16_t number)
{
    for (size_t i = 0; i < n; i++)
        if (ex[i].number == number)
            return true;
    return false;
}

/* The recorded entries in the order the machine's BootOrder had them, the others after. */
static void restore_order(const struct asr_machine_desc *m, uint32_t *idx)
{
    uint32_t k = 0;
    bool used[ASR_MAX_BOOT_ENTRIES] = {0};
    for (uint32_t b = 0; b < m->boot_order_count; b++)
        for (uint32_t i = 0; i < m->entry_count; i++)
            if (!used[i] && m->entries[i].number == m->boot_order[b])
                used[i] = true, idx[k++] = i;
    for (uint32_t i = 0; i < m->entry_count; i++)
        if (!used[i])
            idx[k++] = i;
}

static int write_boot_order(const char *dir, const uint16_t *made, uint32_t nmade, bool *changed,
                            struct asr_error *err)
{
    uint16_t *old = malloc(ASR_MAX_BOOT_ORDER * sizeof *old), *neu = malloc((ASR_MAX_BOOT_ORDER + 16) * sizeof *neu);
    uint8_t *bytes = malloc(2 * (ASR_MAX_BOOT_ORDER + 16));
    uint32_t nold = 0, nnew = 0;
    int rc = old && neu && bytes ? read_boot_order(dir, old, &nold, err)
                                 : asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    *changed = false;
    if (!rc) {
        for (uint32_t i = 0; i < nmade; i++) {
            bool dup = false;
            for (uint32_t j = 0; j < nnew; j++)
                dup |= neu[j] == made[i];
            if (!dup)
                neu[nnew++] = made[i];
        }
        for (uint32_t i = 0; i < nold; i++) {
            bool dup = false;
            for (uint32_t j = 0; j < nnew; j++)
                dup |= neu[j] == old[i];
            if (!dup && nnew < ASR_MAX_BOOT_ORDER)
                neu[nnew++] = old[i];
        }
        *changed = nnew != nold || memcmp(neu, old, nnew * sizeof *neu);
        for (uint32_t i = 0; i < nnew; i++)
            put_le16(bytes + 2 * i, neu[i]);
        if (*changed)
            rc = asr_efivar_write(dir, "BootOrder", VAR_ATTRS, bytes, 2 * (size_t)nnew, err);
    }
    free(old);
    free(neu);
    free(bytes);
    return rc;
}

int asr_boot_entries_restore(const char *dir, const struct asr_machine_desc *m,
                             const struct asr_disk_desc *const *targets, uint32_t n, struct asr_boot_restored *out,
                             uint32_t *count, bool *order_changed, struct asr_error *err)
{
    *count = 0;
    *order_changed = false;
    struct existing *ex = NULL;
    size_t nex = 0;
    int rc = load_existing(dir, &ex, &nex, err);
    uint32_t idx[ASR_MAX_BOOT_ENTRIES];
    uint16_t made[ASR_MAX_BOOT_ENTRIES];
    uint32_t nmade = 0;
    restore_order(m, idx);
    uint8_t *buf = malloc(ASR_LOAD_OPTION_MAX);
    if (!rc && !buf)
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t k = 0; !rc && k < m->entry_count; k++) {
        const struct asr_boot_entry *e = &m->entries[idx[k]];
        struct asr_boot_restored *r = &out[(*count)++];
        memset(r, 0, sizeof *r);
        r->recorded = e->number;
        struct asr_load_option rec, now;
        struct asr_hd_node hd;
        size_t len;
        struct asr_error why = {0};
        if (rebuild(e, targets, n, buf, &len, &rec, &hd, &why) ||
            asr_load_option_parse(buf, len, &now, &why)) {
            r->action = ASR_BOOT_NOT_MADE;
            snprintf(r->why, sizeof r->why, "%s", why.msg);
            continue;
        }
        snprintf(r->description, sizeof r->description, "%s", now.description);
        asr_efi_path_text(now.path, now.path_len, r->path, sizeof r->path);
        memcpy(r->part_guid, hd.guid, 16);
        struct existing *same = NULL;
        for (size_t i = 0; i < nex && !same; i++)
            if (ex[i].parsed && same_target(&ex[i].o, &now))
                same = &ex[i];
        if (same && same->o.desc_len == now.desc_len && !memcmp(same->o.desc, now.desc, now.desc_len)) {
            r->action = ASR_BOOT_KEPT;
            r->number = same->number;
        } else {
            if (same) {
                r->action = ASR_BOOT_UPDATED;
                r->number = same->number;
            } else {
                uint32_t v = 0;
                while (v <= 0xffff && number_taken(ex, nex, (uint16_t)v))
                    v++;
                if (v > 0xffff) {
                    r->action = ASR_BOOT_NOT_MADE;
                    snprintf(r->why, sizeof r->why, "every Boot#### number is taken");
                    continue;
                }
                r->action = ASR_BOOT_CREATED;
                r->number = (uint16_t)v;
            }
            char name[9];
            var_name(r->number, name);
            if ((rc = asr_efivar_write(dir, name, VAR_ATTRS, buf, len, err)))
                break;
            if (!same) {
                /* Known from now on: a second recorded entry for the same file reuses it. */
                struct existing *grown = realloc(ex, (nex + 2) * sizeof *ex);
                if (!grown) {
                    rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
                    break;
                }
                ex = grown;
                same = &ex[nex++];
                memset(same, 0, sizeof *same);
                same->number = r->number;
            }
            if (!same->bytes && !(same->bytes = malloc(ASR_LOAD_OPTION_MAX))) {
                rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
                break;
            }
            memcpy(same->bytes, buf, len);
            same->len = (uint32_t)len;
            same->parsed = !asr_load_option_parse(same->bytes, len, &same->o, &why);
        }
        made[nmade++] = r->number;
    }
    if (!rc && nmade)
        rc = write_boot_order(dir, made, nmade, order_changed, err);
    free(buf);
    free_existing(ex, nex);
    return rc;
}
