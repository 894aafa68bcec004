/* ext2/3/4 through libext2fs, confined to a window: the I/O manager that turns every read of an
 * open filesystem into asr_window_read (optionally with a replayed journal's blocks laid over
 * them), the opener that checks the superblock and group descriptors before anything is read
 * through them (ext_open, ext_open_replayed), and the error that names the window's
 * refusal rather than libext2fs's "short read" (ext_fail). The lower layer of the ext
 * readers (fs_ext_internal.h): the used map (fs_ext.c), the journal reader (fs_ext_journal.c),
 * the reference walk (fs_ext_refs.c) and analyze.c's boot-file lookup all read through it. */
#include "fs_ext_internal.h"
#include "le.h"

#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include <et/com_err.h>

/* The primary superblock: where it is, and the few fields read before libext2fs sees it. */
#define SB_OFFSET 1024u
#define SB_SIZE 1024u
#define SB_BLOCKS_LO 0x04
#define SB_FIRST_DATA 0x14
#define SB_LOG_BLOCK 0x18
#define SB_BLOCKS_PER_GROUP 0x20
#define SB_MAGIC 0x38
#define SB_INCOMPAT 0x60
#define SB_DESC_SIZE 0xFE
#define SB_BLOCKS_HI 0x150
#define SB_MAX_LOG_BLOCK 6 /* 1 KiB << 6 = 64 KiB, libext2fs's largest block */

/* libext2fs holds every group descriptor in memory. Real filesystems need 64 bytes per group of
 * 128 MiB (4 KiB blocks): 1 GiB of descriptors is a 2 PiB filesystem, while a corrupt superblock
 * with tiny groups could ask for tens of GiB on an ordinary disk. */
#define EXT_MAX_DESC_BYTES (1ull << 30)

/* ---- an io_manager onto the window ------------------------------------------------------ */

/* libext2fs's own unix_io reads wherever a block number points (it only knows an "offset="),
 * so a superblock, descriptor or directory claiming blocks past the partition would read the
 * next one. This manager turns every read into asr_window_read and keeps the first refusal's
 * message (struct ext_io), which then becomes the error rather than libext2fs's generic
 * "short read". Read-only. */

/* How ext2fs_open2, which knows the device only by name, finds the window: set around that one
 * call on this thread, so parsers on other threads do not see each other's windows. */
static _Thread_local struct ext_io *win_opening;

static struct struct_io_manager win_manager;

static size_t first_copy(const struct ext_replay *r, uint64_t block)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->v[mid].target < block)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Lays the journal's copies of the blocks that [off, off+len) covers over what was read there
 * (io->replay: the filesystem as recovery will leave it). An escaped copy gets its magic back. */
static int replay_patch(const struct ext_io *io, uint64_t off, uint8_t *data, uint64_t len, struct asr_error *err)
{
    static const uint8_t magic[4] = {0xC0, 0x3B, 0x39, 0x98};
    const struct ext_replay *r = io->replay;
    if (!r || !r->n || !len)
        return ASR_OK;
    uint64_t bs = r->block_size;
    for (size_t i = first_copy(r, off / bs); i < r->n && r->v[i].target <= (off + len - 1) / bs; i++) {
        uint64_t at = r->v[i].target * bs, from = off > at ? off : at, to = off + len < at + bs ? off + len : at + bs;
        int rc = asr_window_read(io->w, "the journal", r->v[i].from * bs + (from - at), data + (from - off),
                                 (size_t)(to - from), err);
        if (rc != ASR_OK)
            return rc;
        for (uint64_t b = from; r->v[i].escaped && b < at + 4 && b < to; b++)
            data[b - off] = magic[b - at];
    }
    return ASR_OK;
}

/* A read of the filesystem: the window's bytes, with the replayed journal's over them. */
static int ext_read(const struct ext_io *io, const char *what, uint64_t off, void *buf, size_t len,
                    struct asr_error *err)
{
    int rc = asr_window_read(io->w, what, off, buf, len, err);
    return rc == ASR_OK ? replay_patch(io, off, buf, len, err) : rc;
}

static errcode_t win_open(const char *name, int flags, io_channel *channel)
{
    if (!win_opening)
        return EXT2_ET_BAD_DEVICE_NAME;
    if (flags & IO_FLAG_RW)
        return EXT2_ET_RO_FILSYS;
    io_channel io = calloc(1, sizeof *io);
    char *copy = strdup(name);
    if (!io || !copy) {
        free(io);
        free(copy);
        return EXT2_ET_NO_MEMORY;
    }
    io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
    io->manager = &win_manager;
    io->name = copy;
    io->block_size = 1024;
    io->refcount = 1;
    io->private_data = win_opening;
    *channel = io;
    return 0;
}

static errcode_t win_close(io_channel io)
{
    if (--io->refcount > 0)
        return 0;
    free(io->name);
    free(io);
    return 0;
}

static errcode_t win_set_blksize(io_channel io, int blksize)
{
    if (blksize <= 0)
        return EXT2_ET_INVALID_ARGUMENT;
    io->block_size = blksize;
    return 0;
}

/* count > 0: that many blocks; count < 0: -count bytes (libext2fs's convention). */
static errcode_t win_read_blk64(io_channel io, unsigned long long block, int count, void *data)
{
    struct ext_io *wi = io->private_data;
    uint64_t bs = (uint64_t)io->block_size;
    uint64_t len = count < 0 ? (uint64_t)-(int64_t)count : (uint64_t)count * bs;
    struct asr_error why = {0};
    int rc;
    if (block > UINT64_MAX / bs || len > SIZE_MAX)
        rc = asr_fail_public(&why, ASR_E_CORRUPT, "read of block %llu lies outside the %llu-byte volume", block,
                             (unsigned long long)wi->w->size);
    else if (len > wi->left)
        rc = asr_fail_public(&why, ASR_E_LIMIT, "read of block %llu passes this walk's read limit (metadata "
                                                "repeating itself?)", block);
    else
        rc = ext_read(wi, block * bs == SB_OFFSET ? "the superblock" : wi->what, block * bs, data, (size_t)len,
                      &why);
    if (rc == ASR_OK && wi->left != UINT64_MAX)
        wi->left -= len;
    if (rc == ASR_OK)
        return 0;
    if (!wi->refused) /* later failures are usually consequences of the first */
        wi->why = why;
    wi->refused = true;
    return rc == ASR_E_IO ? EXT2_ET_SHORT_READ : EXT2_ET_LLSEEK_FAILED;
}

static errcode_t win_read_blk(io_channel io, unsigned long block, int count, void *data)
{
    return win_read_blk64(io, block, count, data);
}

static errcode_t win_write_blk64(io_channel io, unsigned long long block, int count, const void *data)
{
    (void)io, (void)block, (void)count, (void)data;
    return EXT2_ET_RO_FILSYS;
}

static errcode_t win_write_blk(io_channel io, unsigned long block, int count, const void *data)
{
    return win_write_blk64(io, block, count, data);
}

static errcode_t win_write_byte(io_channel io, unsigned long offset, int count, const void *data)
{
    (void)io, (void)offset, (void)count, (void)data;
    return EXT2_ET_RO_FILSYS;
}

static errcode_t win_flush(io_channel io)
{
    (void)io;
    return 0;
}

static errcode_t win_set_option(io_channel io, const char *option, const char *arg)
{
    (void)io, (void)option, (void)arg;
    return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager win_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "asrimg window I/O manager",
    .open = win_open,
    .close = win_close,
    .set_blksize = win_set_blksize,
    .read_blk = win_read_blk,
    .write_blk = win_write_blk,
    .flush = win_flush,
    .write_byte = win_write_byte,
    .set_option = win_set_option,
    .read_blk64 = win_read_blk64,
    .write_blk64 = win_write_blk64,
};

/* ---- errors and the opening checks, for the map and for analyze.c ----------------------- */

/* libext2fs's error codes have messages only once their com_err table is registered, which the
 * library leaves to its programs (e2fsck does it in main); without it every error would read
 * "Unknown code ext2 152". Registering twice is harmless but not thread-safe: hence once. */
static once_flag ext2_messages_once = ONCE_FLAG_INIT;

static void load_ext2_messages(void)
{
    initialize_ext2_error_table();
}

int ext_fail(struct asr_error *err, const struct ext_io *wi, const char *what, errcode_t code)
{
    if (wi->refused)
        return asr_fail_public(err, wi->why.code, "ext: %s: %s", what, wi->why.msg);
    call_once(&ext2_messages_once, load_ext2_messages);
    return asr_fail_public(err, code == EXT2_ET_NO_MEMORY ? ASR_E_NOMEM : ASR_E_CORRUPT, "ext: %s: %s", what,
                           error_message(code));
}

/* Before libext2fs sizes anything from it: the superblock's blocks count times block size must
 * fit the window. libext2fs would otherwise allocate descriptors for every group claimed and
 * fail later with a generic "corrupt superblock" (or, for a filesystem shorter than claimed
 * whose descriptors still fit, map blocks the partition does not have). */
static int check_super(const struct ext_io *io, struct asr_error *err)
{
    const struct asr_window *w = io->w;
    uint8_t sb[SB_SIZE];
    int rc = ext_read(io, "the superblock", SB_OFFSET, sb, sizeof sb, err);
    if (rc != ASR_OK)
        return rc;
    if (get_le16(sb + SB_MAGIC) != EXT2_SUPER_MAGIC)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: no superblock magic 0xEF53 at volume offset %u",
                               SB_OFFSET + SB_MAGIC);
    uint32_t log = get_le32(sb + SB_LOG_BLOCK);
    if (log > SB_MAX_LOG_BLOCK)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: superblock block size 1 KiB << %u is not an ext block size",
                               log);
    bool wide = get_le32(sb + SB_INCOMPAT) & EXT4_FEATURE_INCOMPAT_64BIT;
    uint64_t bs = 1024u << log, blocks = get_le32(sb + SB_BLOCKS_LO);
    if (wide)
        blocks |= (uint64_t)get_le32(sb + SB_BLOCKS_HI) << 32;
    if (blocks > w->size / bs)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "ext: superblock claims %llu blocks of %llu bytes, more than the %llu-byte volume",
                               (unsigned long long)blocks, (unsigned long long)bs, (unsigned long long)w->size);
    uint64_t first = get_le32(sb + SB_FIRST_DATA), per_group = get_le32(sb + SB_BLOCKS_PER_GROUP);
    if (blocks * bs < EXT_HEAD_BYTES || first >= blocks || per_group == 0)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "ext: superblock claims %llu blocks of %llu bytes, %llu per group, data from "
                               "block %llu: no filesystem",
                               (unsigned long long)blocks, (unsigned long long)bs, (unsigned long long)per_group,
                               (unsigned long long)first);
    /* 32-byte descriptors unless 64bit says otherwise (ext2fs_open2 checks the size itself). */
    uint64_t desc = wide ? get_le16(sb + SB_DESC_SIZE) : 0;
    uint64_t groups = (blocks - first + per_group - 1) / per_group, desc_bytes = groups * (desc > 32 ? desc : 32);
    if (desc_bytes > EXT_MAX_DESC_BYTES)
        return asr_fail_public(err, ASR_E_LIMIT,
                               "ext: %llu groups of %llu blocks need %llu bytes of group descriptors, more than the "
                               "%llu this reader holds in memory",
                               (unsigned long long)groups, (unsigned long long)per_group,
                               (unsigned long long)desc_bytes, (unsigned long long)EXT_MAX_DESC_BYTES);
    return ASR_OK;
}

/* What ext2fs_open2 leaves unchecked and every later read depends on. Descriptors pointing
 * bitmaps or inode tables outside their filesystem (or with bad checksums) make e2fsck fall back
 * to a backup superblock; here they refuse the filesystem. */
static int check_desc(ext2_filsys fs, const struct ext_io *wi, struct asr_error *err)
{
    errcode_t e = ext2fs_check_desc(fs);
    if (e)
        return ext_fail(err, wi, "group descriptors fail their checks", e);
    /* Neither ext2fs_open2 nor ext2fs_check_desc verifies descriptor checksums (e2fsck does, in
     * its own pass): a descriptor failing its checksum could flag a group BLOCK_UNINIT and so
     * drop every block of that group from the map, or point an inode table anywhere. */
    if (ext2fs_has_group_desc_csum(fs))
        for (dgrp_t g = 0; g < fs->group_desc_count; g++)
            if (!ext2fs_group_desc_csum_verify(fs, g))
                return asr_fail_public(err, ASR_E_CORRUPT,
                                       "ext: group %u descriptor fails its checksum (stored 0x%04x, computed 0x%04x)",
                                       (unsigned)g, (unsigned)ext2fs_bg_checksum(fs, g),
                                       (unsigned)ext2fs_group_desc_csum(fs, g));
    return ASR_OK;
}

int ext_open_replayed(const struct asr_window *w, const struct ext_replay *replay, struct ext_io *io,
                          ext2_filsys *out, struct asr_error *err)
{
    *out = NULL;
    *io = (struct ext_io){.w = w, .replay = replay, .left = UINT64_MAX};
    if (w->size < SB_OFFSET + SB_SIZE)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: %llu-byte volume too small for a superblock",
                               (unsigned long long)w->size);
    int rc = check_super(io, err);
    if (rc != ASR_OK)
        return rc;
    /* Read-only (no EXT2_FLAG_RW), 64-bit block numbers. Checksum errors are NOT ignored: a
     * superblock, descriptor or bitmap failing its checksum must not decide what is left out of
     * a backup. An external journal lives on another device and is not opened. */
    ext2_filsys fs = NULL;
    win_opening = io;
    /* The name only labels the channel: win_open takes the window from win_opening. It must not
     * hold a '?', which ext2fs_open2 would take as the start of I/O options. */
    io->what = "the group descriptors"; /* what it reads besides the superblock */
    errcode_t e = ext2fs_open2("window", NULL, EXT2_FLAG_64BITS, 0, 0, &win_manager, &fs);
    win_opening = NULL;
    io->what = NULL;
    if (e) {
        if (fs)
            ext2fs_close_free(&fs);
        return ext_fail(err, io, "cannot open the filesystem", e);
    }
    rc = check_desc(fs, io, err);
    if (rc != ASR_OK) {
        ext2fs_close_free(&fs);
        return rc;
    }
    *out = fs;
    return ASR_OK;
}

int ext_open(const struct asr_window *w, struct ext_io *io, ext2_filsys *out, struct asr_error *err)
{
    return ext_open_replayed(w, NULL, io, out, err);
}
