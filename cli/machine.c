/* The machine record in text and JSON for info and restore: every boot entry with its number,
 * description, the image partition it loads from and its device path as efibootmgr shows it. */
#include "machine.h"

#include <string.h>

#include "util.h"

const char *cli_firmware_key(uint8_t firmware)
{
    switch (firmware) {
    case ASR_FIRMWARE_UEFI: return "uefi";
    case ASR_FIRMWARE_BIOS: return "bios";
    default: return "unknown";
    }
}

static void order_text(const struct asr_machine_desc *m, char *out, size_t n)
{
    size_t at = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < m->boot_order_count && at + 6 < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%04X", i ? "," : "", m->boot_order[i]);
    if (at + 6 >= n && n > 4)
        snprintf(out + n - 4, 4, "...");
}

void cli_machine_print(FILE *f, const struct asr_machine_desc *m)
{
    if (!m) {
        fprintf(f, "machine:    not recorded\n");
        return;
    }
    char order[128];
    order_text(m, order, sizeof order);
    fprintf(f, "machine:    %s, booted with %s", m->hostname[0] ? m->hostname : "(no hostname)",
            asr_firmware_name(m->firmware));
    if (m->firmware == ASR_FIRMWARE_UEFI)
        fprintf(f, ", %u boot entr%s on these disks, BootOrder %s", m->entry_count, m->entry_count == 1 ? "y" : "ies",
                order[0] ? order : "(none)");
    fputc('\n', f);
    for (uint32_t i = 0; i < m->entry_count; i++) {
        const struct asr_boot_entry *e = &m->entries[i];
        struct asr_load_option o;
        struct asr_error err = {0};
        if (asr_load_option_parse(e->load_option, e->load_option_len, &o, &err))
            continue; /* the reader checked it: cannot happen */
        char path[512];
        asr_efi_path_text(o.path, o.path_len, path, sizeof path);
        fprintf(f, "  Boot%04X%s %s: disk %u partition %u, %s%s\n", e->number,
                o.attributes & ASR_LOAD_OPTION_ACTIVE ? "*" : " ", o.description, e->disk, e->partition, path,
                o.optional_len ? " (with optional data)" : "");
    }
}

void cli_machine_json(struct json *j, const struct asr_machine_desc *m)
{
    if (!m) {
        json_null(j, "machine");
        return;
    }
    json_obj(j, "machine");
    json_str(j, "hostname", m->hostname);
    json_str(j, "firmware", cli_firmware_key(m->firmware));
    json_arr(j, "boot_order");
    for (uint32_t i = 0; i < m->boot_order_count; i++)
        json_u64(j, NULL, m->boot_order[i]);
    json_end_arr(j);
    json_arr(j, "boot_entries");
    for (uint32_t i = 0; i < m->entry_count; i++) {
        const struct asr_boot_entry *e = &m->entries[i];
        struct asr_load_option o;
        struct asr_error err = {0};
        if (asr_load_option_parse(e->load_option, e->load_option_len, &o, &err))
            continue;
        char path[512], name[16], guid[37];
        asr_efi_path_text(o.path, o.path_len, path, sizeof path);
        snprintf(name, sizeof name, "Boot%04X", e->number);
        cli_uuid(o.hd.guid, true, guid);
        json_obj(j, NULL);
        json_u64(j, "number", e->number);
        json_str(j, "name", name);
        json_str(j, "description", o.description);
        json_u64(j, "attributes", o.attributes);
        json_bool(j, "active", o.attributes & ASR_LOAD_OPTION_ACTIVE);
        json_u64(j, "disk", e->disk);
        json_u64(j, "partition", e->partition);
        json_str(j, "partition_guid", guid);
        json_str(j, "device_path", path);
        json_u64(j, "optional_data_bytes", o.optional_len);
        json_end_obj(j);
    }
    json_end_arr(j);
    json_end_obj(j);
}
