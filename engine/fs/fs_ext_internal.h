/* Engine-internal: libext2fs opened on a window of a disk. fs_ext_io.c owns the window I/O, the
 * opener and ext_fail; fs_ext_journal.c the journal reader; fs_ext_refs.c the reference walk;
 * fs_ext.c the used map, which calls all three. analyze.c uses the opener to look inside a Linux
 * volume for boot files. All read only through asr_window_read, so no metadata, however damaged,
 * makes any of them read outside the partition. */
#ifndef ASR_FS_EXT_INTERNAL_H
#define ASR_FS_EXT_INTERNAL_H

#include <stdbool.h>

#include <ext2fs/ext2fs.h>

#include "asr_engine.h"

/* The first 2 KiB: the 1 KiB boot block (which boot loaders and partition-level signatures may
 * use) and the primary superblock. With 1 KiB blocks the boot block is block 0, below
 * s_first_data_block and so in no group and no bitmap; with larger blocks both share block 0,
 * which the bitmap marks used anyway. Adding them unconditionally costs nothing. */
#define EXT_HEAD_BYTES 2048u

/* libext2fs walks a directory through every block its inode maps, whatever its size says, and
 * follows indirect blocks without noticing that they repeat: a directory whose triple-indirect
 * block points a few blocks at each other, over and over, lists one block 256^3 times (1 KiB
 * blocks: 20 s) or 1024^3 times (4 KiB blocks: hours), and every lookup through it starts over.
 * A real lookup reads a few inodes and directory blocks (a large /etc is some hundred KiB), so
 * each gets 16 MiB of reads; past that the window refuses, libext2fs stops, and the reason says
 * so. Per lookup, not for a whole check, so that one looping directory does not hide an
 * /etc/fstab elsewhere (analyze.c's content check: nine lookups, 144 MiB of reads at most). A
 * file's own data comes on top (fs_ext_file.c). */
#define EXT_LOOKUP_READ_LIMIT (16ull << 20)

/* A journal replayed in memory (fs_ext_journal.c): for each block a replay would write, where the
 * journal holds its new contents. Sorted by target, one entry per target (the copy replay writes
 * last). */
struct ext_jcopy {
    uint64_t target; /* filesystem block the replay overwrites */
    uint64_t from;   /* filesystem block of the journal holding its contents */
    bool escaped;    /* its first 4 bytes were the journal magic, stored as zeros */
};

struct ext_replay {
    struct ext_jcopy *v;
    size_t n;
    uint32_t block_size;
    uint64_t transactions;  /* committed transactions in the log */
    struct asr_ranges named; /* every block the log names, as filesystem byte ranges */
};
void ext_replay_free(struct ext_replay *r); /* NULL-safe */

/* The window's side of an open filesystem. libext2fs's I/O channel points here, so it must
 * outlive the ext2_filsys (a local next to it). */
struct ext_io {
    const struct asr_window *w;
    /* When set, every read sees the blocks this replay would write as the journal holds them:
     * the filesystem as it will be once the journal is recovered (the used map's second view). */
    const struct ext_replay *replay;
    /* Bytes libext2fs may still read; past them every read is refused (ASR_E_LIMIT), which ends
     * any walk that metadata could make endless. ext_open sets no limit (UINT64_MAX); a
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
int ext_open(const struct asr_window *w, struct ext_io *io, ext2_filsys *fs, struct asr_error *err);
/* The same, reading the filesystem as if its journal had been recovered (replay may be NULL). */
int ext_open_replayed(const struct asr_window *w, const struct ext_replay *replay, struct ext_io *io,
                          ext2_filsys *fs, struct asr_error *err);

/* What the reference walk found (fs_ext_refs.c). */
struct ext_walk {
    uint64_t inodes;   /* inodes whose blocks were followed */
    uint64_t outside;  /* references to blocks outside the filesystem (not captured: nothing there) */
};

/* Marks in refs (a block bitmap of fs) every block the filesystem's metadata references, whatever
 * the block bitmap says: each group's superblock and descriptor copies, bitmaps and inode table,
 * the MMP block, and for every inode e2fsck would check (reserved ones, and those with links, or
 * without links and without a deletion time) its extended-attribute block and, for directories,
 * regular files, symlinks with blocks and the bad-blocks inode, the blocks of its extent tree or
 * block map, index and indirect blocks included. Checksums are not asked for (a block whose
 * checksum fails is still referenced). Every walk is bounded: block numbers are clipped to the
 * filesystem, each tree block is followed once however often it is referenced, extent depths
 * must fall. A read the window refuses, or an inode table libext2fs cannot scan, fails the walk
 * (err says why). */
int ext_walk_refs(ext2_filsys fs, const struct ext_io *io, ext2fs_block_bitmap refs, struct ext_walk *out,
                      struct asr_error *err);

/* Reads the internal journal of fs and, when it holds committed transactions to replay, fills out
 * with what a replay would write (n 0 when there is nothing to replay). ASR_E_UNSUPPORTED for a
 * journal this reader cannot replay (external, fast commits, unknown features), ASR_E_CORRUPT or
 * ASR_E_LIMIT for one whose superblock or log fails its checks. */
int ext_journal_replay(ext2_filsys fs, const struct ext_io *io, struct ext_replay *out,
                           struct asr_error *err);

/* The byte ranges of the internal journal's log (every block of it but its superblock) when the
 * journal is empty: the filesystem not flagged for recovery and the journal superblock's s_start
 * 0. jbd2, in the kernel and in e2fsck, then reads the superblock alone, and a mount starts a
 * new log over the old one, so those bytes are never read. out stays empty otherwise (no journal,
 * an external one, a journal to recover, unknown jbd2 features); an error when the journal's
 * superblock or map fails its checks. */
int ext_journal_dead_log(ext2_filsys fs, const struct ext_io *io, struct asr_ranges *out, struct asr_error *err);

/* A libext2fs failure as an asrimg error "ext: WHAT: WHY": when the window refused a read, that
 * refusal is the real reason (libext2fs would only say "short read"). Returns the status. */
int ext_fail(struct asr_error *err, const struct ext_io *io, const char *what, errcode_t code);

#endif
