/* What the restore modules share: the opened targets (restore_target.c), the mirrored writer and
 * its data pass (restore.c), the partition table and boot regions (restore_layout.c) and the
 * read-back comparison (restore_compare.c). Internal to the engine. */
#ifndef ASR_RESTORE_INTERNAL_H
#define ASR_RESTORE_INTERNAL_H

#include "asr_engine.h"

struct restore_target {
    struct asr_restore_target_info info;
    char *path;
    int fd;          /* O_DIRECT when `direct`: every write through it is aligned to `align` */
    int fd_buffered; /* the same target through the page cache, for the odd unaligned edge */
    bool direct;
    uint32_t align;  /* offsets, lengths and buffers of O_DIRECT I/O are multiples of this */
};

struct asr_restore {
    struct asr_reader *r;
    bool read_only;
    size_t n;
    struct restore_target *t;
};

#define ASR_RESTORE_MAX_TARGETS 256u

/* restore_target.c: creates the targets that are new files (after the plan was accepted). */
int asr_restore_targets_ready(struct asr_restore *rs, struct asr_error *err);

/* restore_layout.c: raw boot regions byte-exact, then libfdisk where the table must change
 * (a larger GPT disk, new ids, growth). Runs after the data, so that an interrupted restore
 * does not leave a table that looks finished. */
int asr_restore_layout(struct asr_restore *rs, const struct asr_restore_options *opt, struct asr_restore_stats *st,
                       struct asr_error *err);
/* Bytes at the start of disk d that belong to the partition table and boot regions, and at the
 * end of a target of target_size (a GPT's backup), so that --discard and --zero-unused spare them. */
uint64_t asr_restore_table_tail(const struct asr_disk_desc *d, uint64_t target_size);

/* restore_target.c: reads exactly len bytes at off from a target, through O_DIRECT when it can
 * (what is on the media, not what the page cache remembers), any alignment. */
int asr_target_read(struct restore_target *t, uint64_t off, void *buf, size_t len, struct asr_error *err);
/* Writes len bytes at off through the page cache, all of them. */
int asr_target_pwrite(struct restore_target *t, const void *buf, size_t len, uint64_t off, struct asr_error *err);
int asr_target_sync(struct restore_target *t, struct asr_error *err);

#endif
