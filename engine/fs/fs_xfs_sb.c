/* The XFS superblock, read once and checked into the geometry that fs_xfs.c (the used map) and
 * fs_xfs_file.c (the path reader) both place everything by (xfs_format.h), and the v5
 * metadata checksum both verify. */
#include "xfs_format.h"

#include "crc32c.h"

#include <stdlib.h>
#include <string.h>

#define XFS_SB_MAGIC 0x58465342u /* "XFSB" */
#define SB_CRC_OFF 224
#define XFS_MIN_AG_BLOCKS 64u
/* v5 incompatible features whose on-disk changes this code reads or does not depend on: file
 * types in directories, sparse inode chunks, meta UUID, big timestamps, needs-repair, 64-bit
 * extent counters, file range exchange, parent pointers. Anything else (the metadata directory
 * tree, zoned devices, ...) changes where things are. */
#define INCOMPAT_KNOWN 0xFFu

uint32_t xfs_crc(const uint8_t *buf, size_t len, size_t crc_off)
{
    static const uint8_t zero[4];
    uint32_t c = asr_crc32c_update(~0u, buf, crc_off);
    c = asr_crc32c_update(c, zero, sizeof zero);
    return ~asr_crc32c_update(c, buf + crc_off + 4, len - crc_off - 4);
}

bool xfs_crc_ok(const uint8_t *buf, size_t len, size_t crc_off)
{
    const uint8_t *s = buf + crc_off;
    return xfs_crc(buf, len, crc_off) ==
           ((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24);
}

uint64_t xfs_ag_offset(const struct xfs_geom *g, uint32_t agno)
{
    return (uint64_t)agno * g->agblocks << g->block_log;
}

uint32_t xfs_ag_blocks(const struct xfs_geom *g, uint32_t agno)
{
    uint64_t left = g->dblocks - (uint64_t)agno * g->agblocks;
    return left < g->agblocks ? (uint32_t)left : g->agblocks;
}

bool xfs_fsb_offset(const struct xfs_geom *g, uint64_t fsb, uint64_t *off)
{
    uint64_t agno = fsb >> g->agblklog, agbno = fsb & ((1ull << g->agblklog) - 1);
    if (agno >= g->agcount || agbno >= xfs_ag_blocks(g, (uint32_t)agno))
        return false;
    *off = xfs_ag_offset(g, (uint32_t)agno) + (agbno << g->block_log);
    return true;
}

#define BAD(...) asr_fail_public(err, ASR_E_CORRUPT, __VA_ARGS__)

/* A size field and its log2 field must agree, and lie in [lo, hi] (logs). */
static bool size_and_log(uint32_t size, uint32_t log, uint32_t lo, uint32_t hi)
{
    return log >= lo && log <= hi && size == 1u << log;
}

static int check_sizes(const uint8_t *s, struct xfs_geom *g, struct asr_error *err)
{
    g->block_size = xfs_be32(s + 4);
    g->block_log = s[120];
    if (!size_and_log(g->block_size, g->block_log, 9, 16))
        return BAD("xfs: superblock: block size %u with log %u (sb_blocksize, sb_blocklog: offsets 4, 120)",
                   g->block_size, g->block_log);
    g->sect_size = xfs_be16(s + 102);
    if (!size_and_log(g->sect_size, s[121], 9, 15) || g->sect_size > g->block_size)
        return BAD("xfs: superblock: sector size %u with log %u for %u-byte blocks (sb_sectsize: offset 102)",
                   g->sect_size, s[121], g->block_size);
    g->inode_size = xfs_be16(s + 104);
    g->inode_log = s[122];
    if (!size_and_log(g->inode_size, g->inode_log, 8, 11) || g->inode_size > g->block_size ||
        s[123] != g->block_log - g->inode_log || xfs_be16(s + 106) != g->block_size >> g->inode_log)
        return BAD("xfs: superblock: inode size %u (log %u, %u per block, log %u) for %u-byte blocks "
                   "(sb_inodesize: offset 104)",
                   g->inode_size, g->inode_log, xfs_be16(s + 106), s[123], g->block_size);
    g->inopblog = s[123];
    g->dir_block_log = s[192];
    if (g->block_log + g->dir_block_log > 16)
        return BAD("xfs: superblock: directory blocks of 2^%u blocks of %u bytes, over 64 KiB (sb_dirblklog: "
                   "offset 192)",
                   g->dir_block_log, g->block_size);
    return ASR_OK;
}

static int check_ags(const uint8_t *s, uint64_t window, struct xfs_geom *g, struct asr_error *err)
{
    g->dblocks = xfs_be64(s + 8);
    g->agblocks = xfs_be32(s + 84);
    g->agcount = xfs_be32(s + 88);
    g->agblklog = s[124];
    if (g->agblocks < XFS_MIN_AG_BLOCKS || g->agblklog > 31 || (1ull << g->agblklog) < g->agblocks ||
        (1ull << g->agblklog) >= 2ull * g->agblocks)
        return BAD("xfs: superblock: %u blocks per AG with AG block log %u (sb_agblocks, sb_agblklog: offsets 84, "
                   "124)",
                   g->agblocks, g->agblklog);
    if (g->agcount == 0 || g->dblocks > (uint64_t)g->agcount * g->agblocks ||
        g->dblocks <= (uint64_t)(g->agcount - 1) * g->agblocks)
        return BAD("xfs: superblock: %llu blocks do not make %u AGs of %u blocks (sb_dblocks, sb_agcount: offsets 8, "
                   "88)",
                   (unsigned long long)g->dblocks, g->agcount, g->agblocks);
    if (g->dblocks > window >> g->block_log)
        return BAD("xfs: superblock: %llu blocks of %u bytes exceed the %llu-byte volume (sb_dblocks: offset 8)",
                   (unsigned long long)g->dblocks, g->block_size, (unsigned long long)window);
    g->rblocks = xfs_be64(s + 16);
    g->logstart = xfs_be64(s + 48);
    g->logblocks = xfs_be32(s + 96);
    uint64_t off;
    if (g->logstart) {
        uint64_t agbno = g->logstart & ((1ull << g->agblklog) - 1);
        if (!xfs_fsb_offset(g, g->logstart, &off) || g->logblocks == 0 ||
            agbno + g->logblocks > xfs_ag_blocks(g, (uint32_t)(g->logstart >> g->agblklog)))
            return BAD("xfs: superblock: internal log of %u blocks at block %llu leaves its AG (sb_logstart, "
                       "sb_logblocks: offsets 48, 96)",
                       g->logblocks, (unsigned long long)g->logstart);
    }
    g->rootino = xfs_be64(s + 56);
    return ASR_OK;
}

static int check_features(const uint8_t *s, struct xfs_geom *g, struct asr_error *err)
{
    uint16_t version = xfs_be16(s + 100);
    g->v5 = (version & 0xF) == 5;
    if ((version & 0xF) != 4 && !g->v5)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "xfs: superblock version %u, not 4 or 5 (sb_versionnum: offset 100)", version & 0xF);
    uint32_t features2 = version & XFS_SB_VERSION_MOREBITS ? xfs_be32(s + 200) : 0;
    g->incompat = g->v5 ? xfs_be32(s + 216) : 0;
    if (g->incompat & ~INCOMPAT_KNOWN)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "xfs: incompatible features 0x%x not read here (sb_features_incompat: offset 216)",
                               g->incompat & ~INCOMPAT_KNOWN);
    if (!g->v5 && !(version & XFS_SB_VERSION_DIRV2))
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "xfs: version 1 directories, which Linux no longer reads (sb_versionnum: offset 100)");
    g->ftype = g->v5 ? (g->incompat & XFS_SB_FEAT_INCOMPAT_FTYPE) != 0 : (features2 & XFS_SB_VERSION2_FTYPE) != 0;
    if (s[126])
        return BAD("xfs: superblock: mkfs did not finish (sb_inprogress: offset 126)");
    memcpy(g->uuid, s + 32, 16);
    memcpy(g->meta_uuid, g->incompat & XFS_SB_FEAT_INCOMPAT_META_UUID ? s + 248 : s + 32, 16);
    memcpy(g->label, s + 108, 12);
    g->label[12] = '\0';
    return ASR_OK;
}

int xfs_read_sb(const struct asr_window *w, struct xfs_geom *g, struct asr_error *err)
{
    *g = (struct xfs_geom){0};
    uint8_t head[512];
    int rc = asr_window_read(w, "the XFS superblock", 0, head, sizeof head, err);
    if (rc != ASR_OK)
        return rc;
    if (xfs_be32(head) != XFS_SB_MAGIC)
        return BAD("xfs: superblock magic 0x%08x, not XFSB (offset 0)", xfs_be32(head));
    if ((rc = check_features(head, g, err)) != ASR_OK || (rc = check_sizes(head, g, err)) != ASR_OK ||
        (rc = check_ags(head, w->size, g, err)) != ASR_OK)
        return rc;
    if (!g->v5)
        return ASR_OK;
    /* The checksum covers the whole first sector (at most 32 KiB: checked above). */
    uint8_t *sect = malloc(g->sect_size);
    if (!sect)
        return asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory for the superblock");
    rc = asr_window_read(w, "the XFS superblock", 0, sect, g->sect_size, err);
    if (rc == ASR_OK && !xfs_crc_ok(sect, g->sect_size, SB_CRC_OFF))
        rc = BAD("xfs: superblock CRC mismatch (sb_crc: offset %d)", SB_CRC_OFF);
    free(sect);
    return rc;
}
