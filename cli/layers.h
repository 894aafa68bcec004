/* cli/layers.h: after a restore (restore --verify, verify --against), the storage stacks the
 * image records read again from the disks, as a backup reads them, and checked layer by layer
 * against the records (asr_machine_check_stacks): said in text or as a "layers" JSON array. */
#ifndef ASR_CLI_LAYERS_H
#define ASR_CLI_LAYERS_H

#include <stdbool.h>

#include "asr_engine.h"
#include "disks.h"
#include "json.h"
#include "targets.h"

/* The disks of t (each image disk's targets; mirrors one set at a time), keys for LUKS (may be
 * NULL), grow as the restore did. Prints a line per stack (or adds "layers" to j). EXIT_OK when
 * none differs (a layer not checked does not fail: its reason is said); nothing when the image
 * records no stacks. */
int cli_check_layers(const struct asr_image *r, const struct cli_targets *t, bool grow, struct cli_keys *keys,
                     struct json *j);

#endif
