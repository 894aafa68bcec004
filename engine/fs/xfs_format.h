/* Engine-internal: what the XFS used map (fs_xfs.c) and the XFS path reader (fs_xfs_file.c)
 * share: the superblock read once and checked into a geometry (fs_xfs_sb.c), the v5 metadata
 * checksum, filesystem block numbers turned into window offsets, and XFS's big-endian fields.
 * Hand-written from the XFS on-disk format documentation: no Debian library reads XFS from a
 * byte window. Everything reads only through the window. */
#ifndef ASR_XFS_FORMAT_H
#define ASR_XFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

static inline uint16_t xfs_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t xfs_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t xfs_be64(const uint8_t *p) { return (uint64_t)xfs_be32(p) << 32 | xfs_be32(p + 4); }

#define XFS_BB 512u /* the "basic block": the unit of daddrs and of the log */

/* Superblock feature bits this code looks at. */
#define XFS_SB_VERSION_DIRV2 0x2000u      /* v4 versionnum: version 2 directories */
#define XFS_SB_VERSION_MOREBITS 0x8000u   /* v4 versionnum: features2 is valid */
#define XFS_SB_VERSION2_FTYPE 0x200u      /* v4 features2: directory entries carry a file type */
#define XFS_SB_FEAT_INCOMPAT_FTYPE 0x1u   /* v5 */
#define XFS_SB_FEAT_INCOMPAT_META_UUID 0x4u
#define XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR 0x10u
#define XFS_SB_FEAT_INCOMPAT_NREXT64 0x20u

/* The superblock's geometry, checked against itself and the window. */
struct xfs_geom {
    bool v5;                /* version 5: CRCs, self-describing metadata */
    uint32_t block_size;    /* 512 .. 64 KiB */
    uint32_t block_log;
    uint32_t sect_size;     /* 512 .. 32 KiB, at most block_size */
    uint32_t agblocks;      /* blocks per allocation group (the last may be shorter) */
    uint32_t agblklog;      /* bits of an AG block number inside a filesystem block number */
    uint32_t agcount;
    uint64_t dblocks;       /* blocks of the data device */
    uint64_t rblocks;       /* blocks of the realtime device (0: none) */
    uint64_t logstart;      /* filesystem block of the internal log (0: external log) */
    uint32_t logblocks;
    uint64_t rootino;
    uint32_t inode_size;    /* 256 .. 2048 */
    uint32_t inode_log;
    uint32_t inopblog;      /* log2 of inodes per block */
    uint32_t dir_block_log; /* directory blocks are block_size << this */
    uint32_t incompat;      /* v5 incompatible features */
    bool ftype;             /* directory entries carry a file type byte */
    uint8_t uuid[16];       /* sb_uuid: what blkid shows */
    uint8_t meta_uuid[16];  /* the UUID stamped in v5 metadata (sb_meta_uuid or sb_uuid) */
    char label[13];
};

/* Reads the primary superblock (sector 0) and checks it: magic, version 4 or 5, sizes and their
 * logs, the AG geometry against the block count, the data device within the window, the root
 * inode and internal log inside the filesystem, and on v5 its CRC and incompatible features.
 * ASR_E_CORRUPT naming the field, ASR_E_UNSUPPORTED for a version or feature not read here. */
int xfs_read_sb(const struct asr_window *w, struct xfs_geom *g, struct asr_error *err);

/* The v5 checksum of len bytes at buf: CRC32c with the 4 bytes at crc_off, where it is stored
 * (little-endian), taken as zeros; whether the stored one holds. */
uint32_t xfs_crc(const uint8_t *buf, size_t len, size_t crc_off);
bool xfs_crc_ok(const uint8_t *buf, size_t len, size_t crc_off);

/* The byte offset in the window of filesystem block fsb (AG number in the high bits, AG block
 * below agblklog), or false when fsb lies in no AG or past the data device. */
bool xfs_fsb_offset(const struct xfs_geom *g, uint64_t fsb, uint64_t *off);
/* The first byte of AG agno, and the blocks it holds (the last AG may be shorter). */
uint64_t xfs_ag_offset(const struct xfs_geom *g, uint32_t agno);
uint32_t xfs_ag_blocks(const struct xfs_geom *g, uint32_t agno);

#endif
