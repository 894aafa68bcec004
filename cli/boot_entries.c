/* restore --boot-entries (cli/boot_entries.h): opens the restored disks again to read their
 * partition tables as written, makes the recorded entries through the engine, and checks an
 * image without entries for the removable-media loader on its restored ESP. */
#include "boot_entries.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The EFI System partition type, as GPT stores it. */
static const uint8_t esp_type[16] = {0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
                                     0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b};

/* The restored disks, one per image disk (the first target of each: mirrors hold the same). */
static void open_targets(const struct cli_targets *t, uint32_t ndisks, struct asr_disk **disk)
{
    for (size_t i = 0; i < t->n; i++) {
        uint32_t d = t->to[i].disk_index;
        struct asr_error err = {0};
        if (d < ndisks && !disk[d] && asr_disk_open(t->to[i].path, &disk[d], &err) != ASR_OK)
            disk[d] = NULL;
    }
}

/* Without recorded entries the firmware boots the disk through \EFI\BOOT\BOOTX64.EFI on its ESP. */
static void check_fallback(struct asr_disk **disk, uint32_t ndisks, struct cli_boot *b)
{
    b->fallback = -1;
    for (uint32_t d = 0; d < ndisks && !b->esp_found; d++) {
        const struct asr_disk_desc *dd = disk[d] ? asr_disk_desc(disk[d]) : NULL;
        for (uint32_t i = 0; dd && i < dd->partition_count; i++) {
            const struct asr_partition_desc *p = &dd->partitions[i];
            bool esp = dd->label == ASR_LABEL_GPT ? !memcmp(p->type_guid, esp_type, 16)
                                                  : dd->label == ASR_LABEL_MBR && p->mbr_type == 0xef;
            if (!esp)
                continue;
            b->esp_found = true;
            b->esp_disk = d;
            b->esp_partition = p->number;
            struct asr_window w = {.fd = asr_disk_fd(disk[d]), .path = asr_disk_path(disk[d]),
                                   .base = p->start_bytes, .size = p->size_bytes};
            bool found;
            struct asr_error err = {0};
            if (asr_fs_file_exists(&w, "vfat", "/EFI/BOOT/BOOTX64.EFI", &found, &err) == ASR_OK)
                b->fallback = found;
            break;
        }
    }
}

void cli_boot_plan(FILE *f, const struct asr_image *m)
{
    const struct asr_machine_desc *mc = asr_image_machine(m);
    const char *dir = asr_efivars_dir();
    if (!mc || !mc->entry_count) {
        fprintf(f, "  boot entries: the image records none; the restored disk boots on UEFI through %s\n",
                CLI_FALLBACK_LOADER);
        return;
    }
    fprintf(f, "  boot entries, made again after the restore in %s%s:\n", dir,
            asr_efivars_present(dir) ? "" : " (not there: this machine did not boot through UEFI, they cannot be)");
    for (uint32_t i = 0; i < mc->entry_count; i++) {
        struct asr_load_option o;
        struct asr_error err = {0};
        if (asr_load_option_parse(mc->entries[i].load_option, mc->entries[i].load_option_len, &o, &err) == ASR_OK)
            fprintf(f, "    Boot%04X %s: on image disk %u partition %u as restored\n", mc->entries[i].number,
                    o.description, mc->entries[i].disk, mc->entries[i].partition);
    }
}

void cli_boot_entries(const struct asr_image *m, const struct cli_targets *t, struct cli_boot *b)
{
    memset(b, 0, sizeof *b);
    b->asked = true;
    b->fallback = -1;
    b->dir = asr_efivars_dir();
    const struct asr_machine_desc *mc = asr_image_machine(m);
    uint32_t ndisks = asr_image_disk_count(m);
    struct asr_disk **disk = calloc(ndisks + 1, sizeof *disk);
    const struct asr_disk_desc **desc = calloc(ndisks + 1, sizeof *desc);
    if (!disk || !desc) {
        snprintf(b->why, sizeof b->why, "out of memory");
        b->failed = true;
        goto done;
    }
    open_targets(t, ndisks, disk);
    for (uint32_t d = 0; d < ndisks; d++)
        desc[d] = disk[d] ? asr_disk_desc(disk[d]) : NULL;
    b->recorded = mc && mc->entry_count;
    if (!b->recorded) {
        snprintf(b->why, sizeof b->why, "the image records no UEFI boot entries%s",
                 !mc ? " (it has no machine record)"
                 : mc->firmware != ASR_FIRMWARE_UEFI ? " (its machine did not boot through UEFI)"
                                                     : "");
        check_fallback(disk, ndisks, b);
        goto done;
    }
    if (!asr_efivars_present(b->dir)) {
        snprintf(b->why, sizeof b->why,
                 "%s is not there: this machine did not boot through UEFI, so its boot entries cannot be made",
                 b->dir);
        goto done;
    }
    struct asr_error err = {0};
    if (asr_boot_entries_restore(b->dir, mc, desc, ndisks, b->entries, &b->count, &b->order_changed, &err) !=
        ASR_OK) {
        snprintf(b->why, sizeof b->why, "%s", err.msg);
        b->failed = true;
        goto done;
    }
    b->made = true;
    for (uint32_t i = 0; i < b->count; i++)
        if (b->entries[i].action == ASR_BOOT_NOT_MADE) {
            b->made = false;
            b->failed = true;
            snprintf(b->why, sizeof b->why, "Boot%04X: %s", b->entries[i].recorded, b->entries[i].why);
        }
done:
    for (uint32_t d = 0; disk && d < ndisks; d++)
        asr_disk_close(disk[d]);
    free(disk);
    free(desc);
}

static const char *action_name(uint8_t a)
{
    switch (a) {
    case ASR_BOOT_CREATED: return "created";
    case ASR_BOOT_UPDATED: return "updated";
    case ASR_BOOT_KEPT: return "already there";
    default: return "not made";
    }
}

static const char *action_key(uint8_t a)
{
    switch (a) {
    case ASR_BOOT_CREATED: return "created";
    case ASR_BOOT_UPDATED: return "updated";
    case ASR_BOOT_KEPT: return "kept";
    default: return "not_made";
    }
}

void cli_boot_print(FILE *f, const struct cli_boot *b)
{
    if (!b->asked)
        return;
    if (!b->recorded) {
        fprintf(f, "restore: %s: the disk boots on UEFI through the removable-media path %s, ", b->why,
                CLI_FALLBACK_LOADER);
        if (!b->esp_found)
            fprintf(f, "but the restored disks have no EFI System partition\n");
        else if (b->fallback < 0)
            fprintf(f, "which asrimg could not look for on the restored ESP (disk %u partition %u)\n", b->esp_disk,
                    b->esp_partition);
        else
            fprintf(f, "which the restored ESP (disk %u partition %u) %s\n", b->esp_disk, b->esp_partition,
                    b->fallback ? "holds" : "does not hold: it will not boot on UEFI without a boot entry");
        return;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        const struct asr_boot_restored *r = &b->entries[i];
        if (r->action == ASR_BOOT_NOT_MADE)
            fprintf(f, "restore: boot entry Boot%04X of the image not made: %s\n", r->recorded, r->why);
        else
            fprintf(f, "restore: boot entry Boot%04X %s: %s, %s\n", r->number, action_name(r->action), r->description,
                    r->path);
    }
    if (b->made)
        fprintf(f, "restore: BootOrder %s: the restored entries first\n", b->order_changed ? "updated" : "unchanged");
    else if (!b->count || b->why[0])
        fprintf(f, "restore: UEFI boot entries not made: %s\n", b->why);
}

void cli_boot_json(struct json *j, const struct cli_boot *b)
{
    if (!b->asked)
        return;
    json_obj(j, "boot_entries");
    json_bool(j, "recorded", b->recorded);
    json_bool(j, "made", b->made);
    json_str(j, "efivars", b->dir);
    json_str(j, "why", b->made ? "" : b->why);
    json_bool(j, "boot_order_changed", b->order_changed);
    json_arr(j, "entries");
    for (uint32_t i = 0; i < b->count; i++) {
        const struct asr_boot_restored *r = &b->entries[i];
        char guid[37];
        cli_uuid(r->part_guid, true, guid);
        json_obj(j, NULL);
        json_u64(j, "recorded", r->recorded);
        json_str(j, "action", action_key(r->action));
        if (r->action != ASR_BOOT_NOT_MADE) {
            json_u64(j, "number", r->number);
            json_str(j, "description", r->description);
            json_str(j, "device_path", r->path);
            json_str(j, "partition_guid", guid);
        } else
            json_str(j, "why", r->why);
        json_end_obj(j);
    }
    json_end_arr(j);
    if (!b->recorded) {
        json_obj(j, "fallback");
        json_str(j, "path", CLI_FALLBACK_LOADER);
        if (b->esp_found) {
            json_u64(j, "disk", b->esp_disk);
            json_u64(j, "partition", b->esp_partition);
        }
        if (b->fallback < 0)
            json_null(j, "present");
        else
            json_bool(j, "present", b->fallback);
        json_end_obj(j);
    }
    json_end_obj(j);
}
