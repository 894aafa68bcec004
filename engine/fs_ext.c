/* ext2/3/4 used-byte map: libext2fs opens the filesystem through an I/O manager that reads only
 * inside the window (every read is asr_window_read, so no partition device node, no second open
 * of the disk, and no read past the partition whatever the metadata says), then reads the block
 * bitmap (computing BLOCK_UNINIT groups, per cluster under bigalloc); its set runs become byte
 * ranges. The opener is shared (fs_ext_internal.h): analyze.c reads directories through it. */
#include "fs_ext_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include <et/com_err.h>

/* Features an ext2 or ext3 driver understands, as libblkid defines them: anything beyond these
 * (or the internal journal, for ext3) is what makes blkid call a filesystem ext4. */
#define EXT2_RO_COMPAT_BTREE_DIR 0x0004u /* named by blkid; libext2fs no longer defines it */
#define EXT3_RO_COMPAT_KNOWN \
    (EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE | EXT2_RO_COMPAT_BTREE_DIR)
#define EXT3_INCOMPAT_KNOWN \
    (EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_RECOVER | EXT2_FEATURE_INCOMPAT_META_BG)

/* The first 2 KiB: the 1 KiB boot block (which boot loaders and partition-level signatures may
 * use) and the primary superblock. With 1 KiB blocks the boot block is block 0, below
 * s_first_data_block and so in no group and no bitmap; with larger blocks both share block 0,
 * which the bitmap marks used anyway. Adding them unconditionally costs nothing. */
#define EXT_HEAD_BYTES 2048u

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
 * message (struct asr_ext_io), which then becomes the error rather than libext2fs's generic
 * "short read". Read-only. */

/* How ext2fs_open2, which knows the device only by name, finds the window: set around that one
 * call on this thread, so parsers on other threads do not see each other's windows. */
static _Thread_local struct asr_ext_io *win_opening;

static struct struct_io_manager win_manager;

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
    struct asr_ext_io *wi = io->private_data;
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
        rc = asr_window_read(wi->w, block * bs == SB_OFFSET ? "the superblock" : wi->what, block * bs, data,
                             (size_t)len, &why);
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

int asr_ext_fail(struct asr_error *err, const struct asr_ext_io *wi, const char *what, errcode_t code)
{
    if (wi->refused)
        return asr_fail_public(err, wi->why.code, "ext: %s: %s", what, wi->why.msg);
    call_once(&ext2_messages_once, load_ext2_messages);
    return asr_fail_public(err, code == EXT2_ET_NO_MEMORY ? ASR_E_NOMEM : ASR_E_CORRUPT, "ext: %s: %s", what,
                           error_message(code));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Before libext2fs sizes anything from it: the superblock's blocks count times block size must
 * fit the window. libext2fs would otherwise allocate descriptors for every group claimed and
 * fail later with a generic "corrupt superblock" (or, for a filesystem shorter than claimed
 * whose descriptors still fit, map blocks the partition does not have). */
static int check_super(const struct asr_window *w, struct asr_error *err)
{
    uint8_t sb[SB_SIZE];
    int rc = asr_window_read(w, "the superblock", SB_OFFSET, sb, sizeof sb, err);
    if (rc != ASR_OK)
        return rc;
    if ((sb[SB_MAGIC] | sb[SB_MAGIC + 1] << 8) != EXT2_SUPER_MAGIC)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: no superblock magic 0xEF53 at volume offset %u",
                               SB_OFFSET + SB_MAGIC);
    uint32_t log = le32(sb + SB_LOG_BLOCK);
    if (log > SB_MAX_LOG_BLOCK)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: superblock block size 1 KiB << %u is not an ext block size",
                               log);
    bool wide = le32(sb + SB_INCOMPAT) & EXT4_FEATURE_INCOMPAT_64BIT;
    uint64_t bs = 1024u << log, blocks = le32(sb + SB_BLOCKS_LO);
    if (wide)
        blocks |= (uint64_t)le32(sb + SB_BLOCKS_HI) << 32;
    if (blocks > w->size / bs)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "ext: superblock claims %llu blocks of %llu bytes, more than the %llu-byte volume",
                               (unsigned long long)blocks, (unsigned long long)bs, (unsigned long long)w->size);
    uint64_t first = le32(sb + SB_FIRST_DATA), per_group = le32(sb + SB_BLOCKS_PER_GROUP);
    if (blocks * bs < EXT_HEAD_BYTES || first >= blocks || per_group == 0)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "ext: superblock claims %llu blocks of %llu bytes, %llu per group, data from "
                               "block %llu: no filesystem",
                               (unsigned long long)blocks, (unsigned long long)bs, (unsigned long long)per_group,
                               (unsigned long long)first);
    /* 32-byte descriptors unless 64bit says otherwise (ext2fs_open2 checks the size itself). */
    uint64_t desc = wide ? (uint64_t)(sb[SB_DESC_SIZE] | sb[SB_DESC_SIZE + 1] << 8) : 0;
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
static int check_desc(ext2_filsys fs, const struct asr_ext_io *wi, struct asr_error *err)
{
    errcode_t e = ext2fs_check_desc(fs);
    if (e)
        return asr_ext_fail(err, wi, "group descriptors fail their checks", e);
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

int asr_ext_open(const struct asr_window *w, struct asr_ext_io *io, ext2_filsys *out, struct asr_error *err)
{
    *out = NULL;
    *io = (struct asr_ext_io){.w = w, .left = UINT64_MAX};
    if (w->size < SB_OFFSET + SB_SIZE)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: %llu-byte volume too small for a superblock",
                               (unsigned long long)w->size);
    int rc = check_super(w, err);
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
        return asr_ext_fail(err, io, "cannot open the filesystem", e);
    }
    rc = check_desc(fs, io, err);
    if (rc != ASR_OK) {
        ext2fs_close_free(&fs);
        return rc;
    }
    *out = fs;
    return ASR_OK;
}

/* ---- the map ---------------------------------------------------------------------------- */

static int record(struct asr_ranges *r, uint64_t off, uint64_t len, struct asr_error *err)
{
    int rc = asr_ranges_add(r, off, len);
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "ext: cannot record used bytes %llu+%llu (%s)", (unsigned long long)off,
                               (unsigned long long)len, asr_status_name(rc));
    return ASR_OK;
}

/* Refuses states in which the on-disk bitmap may lag what the filesystem really uses: a journal
 * still to replay (crash, or mounted read-write: ext3/4 set needs_recovery while mounted) would
 * after restore point files at blocks this map left out; an ext2 not cleanly unmounted or any ext
 * with recorded errors needs e2fsck first. The caller then captures the volume whole. */
static int check_state(ext2_filsys fs, struct asr_error *err)
{
    if (ext2fs_has_feature_journal_needs_recovery(fs->super))
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "ext: journal needs recovery (mounted read-write or not cleanly "
                                                       "unmounted): on-disk bitmaps may be stale");
    if (!(fs->super->s_state & EXT2_VALID_FS))
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "ext: not cleanly unmounted (superblock s_state 0x%04x): "
                                                       "on-disk bitmaps may be stale", fs->super->s_state);
    if (fs->super->s_state & EXT2_ERROR_FS)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: superblock s_state records filesystem errors (0x%04x): "
                                                   "e2fsck needed", fs->super->s_state);
    return ASR_OK;
}

/* Emits every run of set bits of the block bitmap, found a run at a time with the bitmap's own
 * search (never bit by bit). Under bigalloc the bitmap has a bit per cluster; libext2fs's
 * search takes and returns block numbers, aligned to clusters, so a run is [set, zero) in
 * blocks either way, clipped to the last block. */
static int emit_bitmap(ext2_filsys fs, const struct asr_ext_io *wi, struct asr_ranges *out, struct asr_error *err)
{
    uint64_t bs = fs->blocksize, count = ext2fs_blocks_count(fs->super);
    blk64_t at = fs->super->s_first_data_block, last = count - 1;
    while (at <= last) {
        blk64_t set, zero;
        errcode_t e = ext2fs_find_first_set_block_bitmap2(fs->block_map, at, last, &set);
        if (e == ENOENT)
            break;
        if (e)
            return asr_ext_fail(err, wi, "searching the block bitmap", e);
        e = ext2fs_find_first_zero_block_bitmap2(fs->block_map, set, last, &zero);
        if (e == ENOENT)
            zero = count;
        else if (e)
            return asr_ext_fail(err, wi, "searching the block bitmap", e);
        if (zero > count) /* the last cluster may reach past the last block */
            zero = count;
        if (zero <= set)
            return asr_fail_public(err, ASR_E_CORRUPT, "ext: block bitmap search went backwards at block %llu",
                                   (unsigned long long)set);
        /* The head was added first; a run may start inside it (4 KiB blocks: block 0). */
        uint64_t off = set * bs, end = zero * bs;
        if (out->n && off < out->v[out->n - 1].offset + out->v[out->n - 1].length)
            off = out->v[out->n - 1].offset + out->v[out->n - 1].length;
        if (end > off) {
            int rc = record(out, off, end - off, err);
            if (rc != ASR_OK)
                return rc;
        }
        at = zero;
    }
    return ASR_OK;
}

/* blkid's names: ext4 as soon as a feature ext3 lacks is on, else ext3 with a journal. */
static const char *fs_name(struct ext2_super_block *s)
{
    if ((s->s_feature_ro_compat & ~(uint32_t)EXT3_RO_COMPAT_KNOWN) ||
        (s->s_feature_incompat & ~(uint32_t)EXT3_INCOMPAT_KNOWN))
        return "ext4";
    return ext2fs_has_feature_journal(s) ? "ext3" : "ext2";
}

static void fill_names(struct ext2_super_block *s, struct asr_usedmap *out)
{
    snprintf(out->fs_type, sizeof out->fs_type, "%s", fs_name(s));
    const uint8_t *u = s->s_uuid;
    snprintf(out->fs_uuid, sizeof out->fs_uuid,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4],
             u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    /* s_volume_name is NUL-padded but not NUL-terminated when all 16 bytes are used. */
    size_t n = strnlen((const char *)s->s_volume_name, EXT2_LABEL_LEN);
    snprintf(out->fs_label, sizeof out->fs_label, "%.*s", (int)n, (const char *)s->s_volume_name);
}

/* With the filesystem open and its structure checked: state, bitmap, ranges. */
static int map_open(ext2_filsys fs, const struct asr_ext_io *wi, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = check_state(fs, err);
    if (rc != ASR_OK)
        return rc;
    errcode_t e = ext2fs_read_block_bitmap(fs);
    if (e)
        return asr_ext_fail(err, wi, "cannot read the block bitmap", e);
    uint64_t head = (uint64_t)fs->super->s_first_data_block * fs->blocksize;
    rc = record(&out->used, 0, head > EXT_HEAD_BYTES ? head : EXT_HEAD_BYTES, err);
    if (rc == ASR_OK)
        rc = emit_bitmap(fs, wi, &out->used, err);
    if (rc != ASR_OK)
        return rc;
    out->block_size = (uint32_t)EXT2_CLUSTER_SIZE(fs->super);
    fill_names(fs->super, out);
    return ASR_OK;
}

int asr_ext_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    /* No read limit: the map reads one bitmap block per group, and check_super capped the
     * number of groups. */
    struct asr_ext_io io;
    ext2_filsys fs;
    int rc = asr_ext_open(w, &io, &fs, err);
    if (rc != ASR_OK)
        return rc;
    rc = map_open(fs, &io, out, err);
    ext2fs_close_free(&fs);
    if (rc != ASR_OK)
        asr_ranges_free(&out->used);
    return rc;
}
