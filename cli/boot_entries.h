/* cli/boot_entries.h: restore --boot-entries: after the disks are restored, the UEFI boot entries
 * the image records made again on this machine, pointing at the restored partitions
 * (asr_boot_entries_restore); or, for an image without entries, whether the restored ESP holds
 * the removable-media loader the firmware falls back to. Said in text and in --json. */
#ifndef ASR_CLI_BOOT_ENTRIES_H
#define ASR_CLI_BOOT_ENTRIES_H

#include <stdio.h>

#include "asr_engine.h"
#include "json.h"
#include "targets.h"

#define CLI_FALLBACK_LOADER "\\EFI\\BOOT\\BOOTX64.EFI"

struct cli_boot {
    bool asked;
    bool recorded;     /* the image records entries */
    bool made;         /* every recorded entry is on this machine now (made, updated or found) */
    bool failed;       /* writing the variables failed: the restore exits 1 */
    char why[640];     /* when not made: why */
    const char *dir;   /* the efivarfs directory used */
    uint32_t count;
    struct asr_boot_restored entries[ASR_MAX_BOOT_ENTRIES];
    bool order_changed;
    int fallback;      /* without entries: -1 not known, 0 the ESP lacks the loader, 1 holds it */
    bool esp_found;
    uint32_t esp_disk, esp_partition;
};

/* For the plan, before anything is written: which entries will be made, and where. */
void cli_boot_plan(FILE *f, const struct asr_image *m);
/* Runs after a successful restore onto t's targets. */
void cli_boot_entries(const struct asr_image *m, const struct cli_targets *t, struct cli_boot *b);
void cli_boot_print(FILE *f, const struct cli_boot *b);
void cli_boot_json(struct json *j, const struct cli_boot *b); /* "boot_entries" */

#endif
