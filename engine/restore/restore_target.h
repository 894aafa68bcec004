/* What the restore modules share of an open restore (restore_target.c): the image it reads, the
 * targets opened and checked, and the plain positioned I/O on a target. Internal to the engine. */
#ifndef ASR_RESTORE_TARGET_H
#define ASR_RESTORE_TARGET_H

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
    struct asr_image *im;
    bool own_im; /* made around the caller's reader or stream (asr_restore_open, _open_stream) */
    bool read_only;
    size_t n;
    struct restore_target *t;
    int *locks; /* flock'ed descriptors of the targets and what they read */
    size_t nlocks;
};

#define ASR_RESTORE_MAX_TARGETS 256u

/* Creates the targets that are new files (after the plan was accepted). */
int restore_targets_ready(struct asr_restore *rs, struct asr_error *err);

/* Reads exactly len bytes at off from a target, through O_DIRECT when it can (what is on the
 * media, not what the page cache remembers), any alignment. */
int target_read(struct restore_target *t, uint64_t off, void *buf, size_t len, struct asr_error *err);
/* The same in one request, for a caller whose off, len and buf are aligned to t->align (and buf
 * to 4096) whenever t->direct. */
int target_read_aligned(struct restore_target *t, uint64_t off, void *buf, size_t len, struct asr_error *err);
/* Writes len bytes at off through the page cache, all of them. */
int target_pwrite(struct restore_target *t, const void *buf, size_t len, uint64_t off, struct asr_error *err);
int target_sync(struct restore_target *t, struct asr_error *err);

#endif
