/* What the root filesystems found on a machine's disks say it needs to boot (bootscan.c).
 * Internal to the engine. */
#ifndef ASR_BOOTSCAN_H
#define ASR_BOOTSCAN_H

#include "stacks.h"

/* Marks what the roots' fstab, crypttab, mdadm.conf and boot loader configurations name as
 * needed to boot, and every volume that might hold it but cannot be looked into; run once the
 * stacks are assembled. */
int bootscan_analyze(struct asr_machine *m, struct asr_error *err);

#endif
