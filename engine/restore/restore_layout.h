/* The partition table and boot regions of a restore (restore_layout.c). Internal to the engine;
 * asr_restore_grow_plan and asr_restore_check_options are public (asr_engine.h). */
#ifndef ASR_RESTORE_LAYOUT_H
#define ASR_RESTORE_LAYOUT_H

#include "restore_target.h"

/* Raw boot regions byte-exact, then libfdisk where the table must change (a larger GPT disk, new
 * ids, growth). Runs after the data, so that an interrupted restore does not leave a table that
 * looks finished. */
int restore_write_layout(struct asr_restore *rs, const struct asr_restore_options *opt, struct asr_restore_stats *st,
                       struct asr_error *err);
/* Bytes at the end of a target that disk d's partition table takes there (a GPT's backup entries
 * and header), so that --discard and --zero-unused spare them. */
uint64_t restore_table_tail(const struct asr_disk_desc *d);

#endif
