/* Engine-internal: libext2fs opened on a window of a disk. fs_ext.c owns it (the used map);
 * analyze.c uses it to look inside a Linux volume for boot files. Both then read only through
 * asr_window_read, so no metadata, however damaged, makes either read outside the partition. */
#ifndef ASR_FS_EXT_INTERNAL_H
#define ASR_FS_EXT_INTERNAL_H

#include <stdbool.h>

#include <ext2fs/ext2fs.h>

#include "asr_engine.h"

/* The window's side of an open filesystem. libext2fs's I/O channel points here, so it must
 * outlive the ext2_filsys (a local next to it). */
struct asr_ext_io {
    const struct asr_window *w;
    /* Bytes libext2fs may still read; past them every read is refused (ASR_E_LIMIT), which ends
     * any walk that metadata could make endless. asr_ext_open sets no limit (UINT64_MAX); a
     * caller walking directories sets it before each walk. */
    uint64_t left;
    const char *what;     /* what libext2fs is reading, for a read error's message (NULL: not said) */
    struct asr_error why; /* the first read the window refused */
    bool refused;
};

/* Opens the ext2/3/4 filesystem in w read-only through io, and checks the structure every
 * later read depends on: a superblock whose size fits the window and whose descriptor table
 * fits in memory (before libext2fs allocates from it), the superblock checksum, and group
 * descriptors pointing inside the filesystem with valid checksums. Not the state (journal to
 * replay, unclean unmount): that makes bitmaps stale, not directories unreadable; the used map
 * checks it itself. On failure *fs is NULL and err says why (the window's refusal, when a read
 * was refused). Close with ext2fs_close_free. */
int asr_ext_open(const struct asr_window *w, struct asr_ext_io *io, ext2_filsys *fs, struct asr_error *err);

/* A libext2fs failure as an asrimg error "ext: WHAT: WHY": when the window refused a read, that
 * refusal is the real reason (libext2fs would only say "short read"). Returns the status. */
int asr_ext_fail(struct asr_error *err, const struct asr_ext_io *io, const char *what, errcode_t code);

#endif
