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

/* verify --against a machine's own disks: the cleared ranges of their volumes, for
 * asr_compare_options.cleared. A partition's own filesystem says them (asr_fs_cleared); a PV's or
 * md member's are those of the volumes above it, read from the disks as a backup reads them
 * (every volume selected). No key is used: below LUKS nothing is cleared (stacks.c). NULL-safe
 * close; opening never fails the verify: without the stacks (a VG incomplete) their zeros are
 * checked. */
struct cli_cleared;
struct cli_cleared *cli_cleared_open(const struct asr_image *r, const struct cli_targets *t);
int cli_cleared(void *ctx, const struct asr_volume_desc *vd, const struct asr_window *w, struct asr_ranges *out,
                struct asr_error *err);
void cli_cleared_close(struct cli_cleared *c);

#endif
