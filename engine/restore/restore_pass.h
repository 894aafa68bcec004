/* One pass of the image's data onto the targets (restore_pass.c): what the file pass
 * (restore_file.c) and the stream pass (restore_stream.c) share, and the two passes, which
 * restore.c runs. Internal to the engine. */
#ifndef ASR_RESTORE_PASS_H
#define ASR_RESTORE_PASS_H

#include "restore_mirror.h"

struct restore_pass {
    struct asr_restore *rs;
    const struct asr_restore_options *opt;
    struct asr_restore_stats *st;
    struct restore_mirror *m;
    struct restore_target **group; /* targets of the current disk */
    uint32_t disk;
    bool have_disk;
    uint64_t done, total;
    size_t damaged_cap, unreadable_cap;
};
/* Sends what follows to the targets of image disk `disk`. */
int restore_pass_disk(struct restore_pass *p, uint32_t disk);
/* An extent the image cannot give (a damaged chunk `ref`, or ASR_REF_UNREADABLE): listed in the
 * stats and zeroed on the targets. */
int restore_pass_lost(struct restore_pass *p, uint32_t volume, const struct asr_extent *e, uint64_t ref,
                      struct asr_error *err);
unsigned restore_worker_count(unsigned asked); /* 0: one per online core */

/* restore_file.c: the pass over an image file or split set, in the order its index gives. */
int restore_file_pass(struct restore_pass *p, struct asr_error *err);
/* restore_stream.c: the pass from a pipe, front to back. */
int restore_stream_pass(struct restore_pass *p, struct asr_error *err);

#endif
