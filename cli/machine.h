/* cli/machine.h: the machine record an image holds (SPEC.md section 4, feature machine: hostname,
 * firmware, UEFI boot entries and BootOrder), said the same way by info and restore, in text and
 * in --json. */
#ifndef ASR_CLI_MACHINE_H
#define ASR_CLI_MACHINE_H

#include <stdio.h>

#include "asr_engine.h"
#include "json.h"

/* "machine:" and a line per boot entry, each starting with indent; "machine: not recorded"
 * for an image without the record. */
void cli_machine_print(FILE *f, const struct asr_machine_desc *m);
/* The "machine" object (null without a record). */
void cli_machine_json(struct json *j, const struct asr_machine_desc *m);
/* "uefi", "bios", "unknown". */
const char *cli_firmware_key(uint8_t firmware);

#endif
