/* cli/disks.h: the source disks of layout, backup and bench, analysed, with a volume selection
 * applied across them. */
#ifndef ASR_CLI_DISKS_H
#define ASR_CLI_DISKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

/* The keys for LUKS containers given on the command line (--key-file, --unlock). */
struct cli_keys {
    const char *files[16];
    size_t n;
    bool prompt;         /* --unlock: ask on the terminal */
    char passphrase[512]; /* what was typed, wiped by cli_disks_close */
    size_t len;
};
/* Takes OPT_KEY_FILE and OPT_UNLOCK: 1 when opt was one of them (EXIT_USAGE stored in *rc for too
 * many key files), 0 when it is another option. */
int cli_keys_option(struct cli_keys *k, int opt, const char *value, int *rc);

struct cli_disks {
    uint32_t n;
    struct asr_disk *disk[ASR_MAX_DISKS];
    struct asr_volume_info *vols[ASR_MAX_DISKS];
    size_t count[ASR_MAX_DISKS];
    struct asr_machine *machine; /* the stacks across the disks: LVs, and what the roots need */
    struct cli_keys *keys;
};
/* keys may be NULL. Asks for the passphrase of --unlock first. */
int cli_disks_open(struct cli_disks *s, const char *const *paths, uint32_t n, const char *selection,
                   struct cli_keys *keys, struct asr_error *err); /* EXIT_OK or EXIT_FAIL; close either way */
void cli_disks_close(struct cli_disks *s);

#endif
