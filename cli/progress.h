/* cli/progress.h: progress on stderr, only when it is a terminal: bytes, MB/s, ETA. */
#ifndef ASR_CLI_PROGRESS_H
#define ASR_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "asr_engine.h"

struct progress {
    bool enabled;
    const char *label;
    double start, last;
};
void progress_init(struct progress *p, const char *label, bool quiet);
void progress_update(uint64_t done, uint64_t total, void *ctx); /* matches asr_progress_fn */
void progress_done(struct progress *p);
/* A restore's or a comparison's progress (ctx: the struct progress); --verify's read-back after
 * a restore gets a line of its own. */
void progress_restore(const struct asr_restore_progress *p, void *ctx);

#endif
