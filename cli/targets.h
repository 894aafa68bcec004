/* cli/targets.h: the disks an image is laid onto (restore --to) or compared with (verify
 * --against), as given on the command line and then matched to the image's disks. */
#ifndef ASR_CLI_TARGETS_H
#define ASR_CLI_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

#define CLI_TARGETS_MAX 256

struct cli_targets {
    const char *cmd, *opt; /* "restore", "--to"; or "verify", "--against": for messages */
    struct asr_restore_target_spec to[CLI_TARGETS_MAX];
    const char *arg[CLI_TARGETS_MAX]; /* each one as given */
    size_t n;
    bool explicit_disks, positional;
};

/* Adds "TARGET" (the next image disk in order) or "N=TARGET" (image disk N): EXIT_OK, or
 * EXIT_USAGE after saying why. */
int cli_targets_add(struct cli_targets *t, const char *v);
/* Matches the targets to an image of `disks` disks: EXIT_OK, or EXIT_USAGE / EXIT_FAIL after
 * saying why. */
int cli_targets_map(struct cli_targets *t, uint32_t disks);

#endif
