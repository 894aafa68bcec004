/* ext2/3/4: every block the metadata references, whatever the block bitmap says. A damaged
 * bitmap may call free a block that a directory, an extent tree or a file still uses; a copy
 * taken by the bitmap alone then reads differently from its source. This walk reads the inode
 * tables through libext2fs's inode scan (the inodes e2fsck checks) and parses block maps and
 * extent trees itself, so that each tree block is read once and no damaged tree can loop. */
#include "fs_ext_internal.h"
#include "le.h"

#include <stdlib.h>
#include <string.h>

#define EXT_MAX_EXTENT_DEPTH 5
#define EXT_SCAN_BUFFER_BLOCKS 64 /* inode table read 64 blocks at a time */

struct walk {
    ext2_filsys fs;
    const struct ext_io *io;
    ext2fs_block_bitmap refs;
    ext2fs_block_bitmap seen; /* tree blocks already followed, per block */
    blk64_t first, count;     /* blocks a reference may name: [first, count) */
    uint8_t *buf;             /* one block per tree level */
    blk64_t run, run_len;     /* references waiting to be marked as one range */
    struct ext_walk *out;
    struct asr_error *err;
};

static void flush(struct walk *w)
{
    if (w->run_len)
        ext2fs_mark_block_bitmap_range2(w->refs, w->run, (unsigned)w->run_len);
    w->run_len = 0;
}

/* Marks [blk, blk+len) clipped to the filesystem; references past it are only counted. Adjacent
 * references (a file's blocks, one by one from a block map) become one range. */
static void mark(struct walk *w, blk64_t blk, blk64_t len)
{
    if (len == 0)
        return;
    if (blk < w->first || blk >= w->count || len > w->count - blk) {
        w->out->outside++;
        if (blk >= w->count || blk + len <= w->first)
            return;
        if (blk < w->first) {
            len -= w->first - blk;
            blk = w->first;
        }
        if (len > w->count - blk)
            len = w->count - blk;
    }
    if (w->run_len && blk == w->run + w->run_len && w->run_len + len <= (1u << 30)) {
        w->run_len += len;
        return;
    }
    flush(w);
    w->run = blk;
    w->run_len = len;
}

/* Whether tree block blk is to be read: inside the filesystem and not followed before (a block
 * referenced twice, as duplicate blocks are, gives nothing new the second time). Marks it. */
static bool follow(struct walk *w, blk64_t blk)
{
    if (blk < w->first || blk >= w->count) {
        w->out->outside++;
        return false;
    }
    mark(w, blk, 1);
    if (ext2fs_test_block_bitmap2(w->seen, blk))
        return false;
    ext2fs_mark_block_bitmap2(w->seen, blk);
    return true;
}

static int read_tree_block(struct walk *w, blk64_t blk, uint8_t *buf)
{
    errcode_t e = io_channel_read_blk64(w->fs->io, blk, 1, buf);
    return e ? ext_fail(w->err, w->io, "reading a block map or extent tree block", e) : ASR_OK;
}

/* The children of a tree block are read one after another, each waited for: asked for first, in
 * runs of adjacent blocks, the kernel reads them together. The resize inode's double indirect
 * block names the 511 reserved descriptor blocks of the bench root (4 KiB blocks): read one by
 * one they were 0.03 s of a cold map step of 0.07 s. A hint only: what is read is unchanged. */
struct prefetch_run {
    const struct walk *w;
    blk64_t start, len;
};

static void prefetch_flush(struct prefetch_run *r)
{
    if (r->len > 1) /* a single block is read as soon as it would arrive */
        asr_window_prefetch(r->w->io->w, (uint64_t)r->start * r->w->fs->blocksize,
                            (uint64_t)r->len * r->w->fs->blocksize);
    r->len = 0;
}

static void prefetch_add(struct prefetch_run *r, blk64_t blk)
{
    if (blk < r->w->first || blk >= r->w->count)
        return;
    if (r->len && blk == r->start + r->len) {
        r->len++;
        return;
    }
    prefetch_flush(r);
    r->start = blk;
    r->len = 1;
}

static void prefetch_indirect_children(const struct walk *w, const uint8_t *buf)
{
    struct prefetch_run r = {.w = w};
    for (unsigned i = 0; i < w->fs->blocksize / 4; i++)
        if (get_le32(buf + 4 * i))
            prefetch_add(&r, get_le32(buf + 4 * i));
    prefetch_flush(&r);
}

/* An indirect block of level 1 (pointers to data), 2 or 3. */
static int walk_indirect(struct walk *w, blk64_t blk, int level)
{
    if (!follow(w, blk))
        return ASR_OK;
    uint8_t *buf = w->buf + (size_t)level * w->fs->blocksize;
    int rc = read_tree_block(w, blk, buf);
    if (rc == ASR_OK && level > 1)
        prefetch_indirect_children(w, buf);
    for (unsigned i = 0; rc == ASR_OK && i < w->fs->blocksize / 4; i++) {
        blk64_t p = get_le32(buf + 4 * i);
        if (p == 0)
            continue;
        if (level == 1)
            mark(w, p, 1);
        else
            rc = walk_indirect(w, p, level - 1);
    }
    return rc;
}

/* An extent node (the 60 bytes of i_block, or a tree block) of at most bytes. A node whose header
 * is not one, or whose depth does not fall below its parent's, holds nothing to follow (the
 * node itself was marked by its parent); entries are clipped to the node. */
static int walk_extent_node(struct walk *w, const uint8_t *node, size_t bytes, int parent_depth)
{
    if (get_le16(node) != EXT3_EXT_MAGIC)
        return ASR_OK;
    unsigned entries = get_le16(node + 2), depth = get_le16(node + 6);
    if ((int)depth >= parent_depth || depth > EXT_MAX_EXTENT_DEPTH)
        return ASR_OK;
    if (entries > (bytes - 12) / 12)
        entries = (unsigned)((bytes - 12) / 12);
    if (depth > 0) {
        struct prefetch_run r = {.w = w};
        for (unsigned i = 0; i < entries; i++) {
            const uint8_t *e = node + 12 + 12 * (size_t)i;
            prefetch_add(&r, (blk64_t)get_le16(e + 8) << 32 | get_le32(e + 4));
        }
        prefetch_flush(&r);
    }
    for (unsigned i = 0; i < entries; i++) {
        const uint8_t *e = node + 12 + 12 * (size_t)i;
        if (depth == 0) {
            unsigned len = get_le16(e + 4);
            if (len > EXT_INIT_MAX_LEN)
                len -= EXT_INIT_MAX_LEN;
            mark(w, (blk64_t)get_le16(e + 6) << 32 | get_le32(e + 8), len);
            continue;
        }
        blk64_t child = (blk64_t)get_le16(e + 8) << 32 | get_le32(e + 4);
        if (!follow(w, child))
            continue;
        uint8_t *buf = w->buf + (size_t)depth * w->fs->blocksize;
        int rc = read_tree_block(w, child, buf);
        if (rc == ASR_OK)
            rc = walk_extent_node(w, buf, w->fs->blocksize, (int)depth);
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

/* An inode's blocks, as e2fsck's pass 1 would look at them. */
static int walk_inode(struct walk *w, ext2_ino_t ino, struct ext2_inode *inode)
{
    bool reserved = ino < EXT2_FIRST_INODE(w->fs->super);
    /* e2fsck checks every reserved inode and every linked one; one without links that was never
     * deleted (no dtime: being created, or an orphan) costs little to include. */
    if (!reserved && inode->i_links_count == 0 && (inode->i_dtime != 0 || inode->i_mode == 0))
        return ASR_OK;
    w->out->inodes++;
    blk64_t acl = ext2fs_file_acl_block(w->fs, inode);
    if (acl)
        mark(w, acl, 1);
    if (ino != EXT2_BAD_INO && !ext2fs_inode_has_valid_blocks2(w->fs, inode))
        return ASR_OK;
    const uint8_t *iblock = (const uint8_t *)inode->i_block;
    if (inode->i_flags & EXT4_EXTENTS_FL)
        return walk_extent_node(w, iblock, sizeof inode->i_block, EXT_MAX_EXTENT_DEPTH + 1);
    for (int i = 0; i < EXT2_NDIR_BLOCKS; i++)
        if (inode->i_block[i])
            mark(w, get_le32(iblock + 4 * i), 1);
    static const int levels[] = {[EXT2_IND_BLOCK] = 1, [EXT2_DIND_BLOCK] = 2, [EXT2_TIND_BLOCK] = 3};
    for (int i = EXT2_IND_BLOCK; i <= EXT2_TIND_BLOCK; i++) {
        blk64_t p = get_le32(iblock + 4 * i);
        int rc = p ? walk_indirect(w, p, levels[i]) : ASR_OK;
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

/* Each group's own metadata: superblock and descriptor copies (reserved descriptor blocks too),
 * bitmaps, inode table. ext2fs_check_desc has put them inside the filesystem. */
static void mark_group_metadata(struct walk *w)
{
    ext2_filsys fs = w->fs;
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        ext2fs_reserve_super_and_bgd(fs, g, w->refs);
        mark(w, ext2fs_block_bitmap_loc(fs, g), 1);
        mark(w, ext2fs_inode_bitmap_loc(fs, g), 1);
        mark(w, ext2fs_inode_table_loc(fs, g), fs->inode_blocks_per_group);
    }
    if (ext2fs_has_feature_mmp(fs->super) && fs->super->s_mmp_block)
        mark(w, fs->super->s_mmp_block, 1);
}

/* The scan reads the inode tables 64 blocks at a time, each read waited for; asked for all at
 * once, the kernel fetches them in large reads in parallel. On the 4 GiB bench root (28 MiB of
 * tables) a cold `asrimg layout` took 0.57 s before and 0.13-0.16 s after. Only the part of each
 * table in use: the scan skips the rest too (uninit_bg, metadata_csum). */
static void prefetch_inode_tables(const struct walk *w)
{
    ext2_filsys fs = w->fs;
    uint64_t isize = EXT2_INODE_SIZE(fs->super), per_group = fs->super->s_inodes_per_group;
    bool csum = ext2fs_has_group_desc_csum(fs);
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        if (csum && ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_UNINIT))
            continue;
        uint64_t unused = csum ? ext2fs_bg_itable_unused(fs, g) : 0;
        uint64_t used = unused < per_group ? per_group - unused : 0;
        asr_window_prefetch(w->io->w, (uint64_t)ext2fs_inode_table_loc(fs, g) * fs->blocksize, used * isize);
    }
}

static int scan_inodes(struct walk *w)
{
    ext2_filsys fs = w->fs;
    /* The inode scan would read the bad-blocks inode's list with libext2fs's own block iterator,
     * which follows looping indirect blocks without end: give it an empty list (the walk marks
     * that inode's blocks itself). */
    if (!fs->badblocks) {
        errcode_t e = ext2fs_badblocks_list_create(&fs->badblocks, 0);
        if (e)
            return ext_fail(w->err, w->io, "preparing the inode scan", e);
    }
    prefetch_inode_tables(w);
    ext2_inode_scan scan;
    errcode_t e = ext2fs_open_inode_scan(fs, EXT_SCAN_BUFFER_BLOCKS, &scan);
    if (e)
        return ext_fail(w->err, w->io, "opening the inode scan", e);
    size_t isize = EXT2_INODE_SIZE(fs->super);
    struct ext2_inode *inode = calloc(1, isize > sizeof *inode ? isize : sizeof *inode);
    int rc = inode ? ASR_OK : asr_fail_public(w->err, ASR_E_NOMEM, "ext: out of memory for the inode scan");
    while (rc == ASR_OK) {
        ext2_ino_t ino;
        e = ext2fs_get_next_inode_full(scan, &ino, inode, (int)isize);
        /* An inode failing its checksum, or in a table block that looks like garbage, is still
         * what e2fsck -n goes on with. */
        if (e && e != EXT2_ET_INODE_CSUM_INVALID && e != EXT2_ET_INODE_IS_GARBAGE) {
            rc = ext_fail(w->err, w->io, "scanning the inode tables", e);
            break;
        }
        if (ino == 0)
            break;
        rc = walk_inode(w, ino, inode);
    }
    free(inode);
    ext2fs_close_inode_scan(scan);
    return rc;
}

int ext_walk_refs(ext2_filsys fs, const struct ext_io *io, ext2fs_block_bitmap refs, struct ext_walk *out,
                      struct asr_error *err)
{
    *out = (struct ext_walk){0};
    struct walk w = {.fs = fs, .io = io, .refs = refs, .first = fs->super->s_first_data_block,
                     .count = ext2fs_blocks_count(fs->super), .out = out, .err = err};
    /* Per block even under bigalloc (a cluster may hold several tree blocks), and sparse: tree
     * blocks are few. */
    int saved_type = fs->default_bitmap_type;
    fs->default_bitmap_type = EXT2FS_BMAP64_RBTREE;
    errcode_t e = ext2fs_allocate_subcluster_bitmap(fs, "followed tree blocks", &w.seen);
    fs->default_bitmap_type = saved_type;
    if (e)
        return ext_fail(err, io, "allocating the walk's bitmap", e);
    w.buf = malloc((size_t)(EXT_MAX_EXTENT_DEPTH + 1) * fs->blocksize);
    int rc = w.buf ? ASR_OK : asr_fail_public(err, ASR_E_NOMEM, "ext: out of memory for the reference walk");
    /* Checksums decide nothing here: a directory or extent block failing its checksum is still
     * referenced, and still read by e2fsck. */
    int saved_flags = fs->flags;
    fs->flags |= EXT2_FLAG_IGNORE_CSUM_ERRORS;
    if (rc == ASR_OK) {
        mark_group_metadata(&w);
        rc = scan_inodes(&w);
    }
    flush(&w);
    fs->flags = saved_flags;
    free(w.buf);
    ext2fs_free_block_bitmap(w.seen);
    return rc;
}
