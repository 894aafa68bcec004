/* cli/disks.h: the source disks of layout, backup and bench, analysed, with a volume selection
 * applied across them. */
#ifndef ASR_CLI_DISKS_H
#define ASR_CLI_DISKS_H

#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

struct cli_disks {
    uint32_t n;
    struct asr_disk *disk[ASR_MAX_DISKS];
    struct asr_volume_info *vols[ASR_MAX_DISKS];
    size_t count[ASR_MAX_DISKS];
    struct asr_machine *machine; /* the stacks across the disks: LVs, and what the roots need */
};
int cli_disks_open(struct cli_disks *s, const char *const *paths, uint32_t n, const char *selection,
                   struct asr_error *err); /* EXIT_OK or EXIT_FAIL; close either way */
void cli_disks_close(struct cli_disks *s);

#endif
