/* Engine-internal: the btrfs core (btrfs_core.c) that the used map (fs_btrfs.c) and the path
 * reader share. It sees ONE device of a filesystem through its window: the superblock at 64 KiB
 * (crc32c checked), the chunk map (logical -> stripes, from the superblock's system array, then the
 * chunk tree), tree blocks read from a copy on this device and checked (csum, bytenr, fsid, level,
 * item bounds, key order), and a bounded B-tree search.
 *
 * How to use it:
 *   btrfs_open(w, &fs, err)        superblock + chunk map; fs->root/root_level is the root tree.
 *   btrfs_find_root(fs, id, &r, &found, err)   a tree's root (ROOT_ITEM, highest key offset).
 *   btrfs_search(fs, r.bytenr, r.level, &min, &max, fn, ctx, err)   every item with min <= key
 *       <= max (NULL: unbounded) in key order; fn returns ASR_OK to go on, BTRFS_STOP to end the
 *       search early (btrfs_search then returns ASR_OK), anything else to fail with it. The item's
 *       data points into a buffer valid only during the call; its size is checked against the leaf.
 *   btrfs_read_logical(fs, what, logical, buf, len, err)   bytes at a logical address (file data).
 *   btrfs_close(fs).
 * Statuses: enum asr_status, plus BTRFS_E_ELSEWHERE when a block (or byte) has no copy on this
 * device (a multi-device filesystem; err says which devices hold it): callers turn it into
 * ASR_E_UNSUPPORTED, or fall back, before anything leaves engine/fs/. */
#ifndef ASR_FS_BTRFS_INTERNAL_H
#define ASR_FS_BTRFS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

/* Past enum asr_status's codes and fs_reader.h's FS_E_* (100..). */
#define BTRFS_E_ELSEWHERE 110 /* every copy of the block lies on another device */
#define BTRFS_STOP 111        /* from a btrfs_item_fn: the search is done, not failed */

#define BTRFS_SUPER_OFFSET 0x10000u
#define BTRFS_SUPER_SIZE 4096u
#define BTRFS_SUPER_MIRROR1 (64ull << 20)
#define BTRFS_SUPER_MIRROR2 (256ull << 30)
#define BTRFS_HEADER_SIZE 101u
#define BTRFS_ITEM_SIZE 25u    /* leaf item: key, data offset (from the header's end), size */
#define BTRFS_KEY_PTR_SIZE 33u /* node pointer: key, block address, generation */
#define BTRFS_MAX_LEVEL 8
#define BTRFS_MAX_COPIES 4     /* RAID1C4; RAID10 reads from its 2 sub-stripes */
#define BTRFS_MAX_STRIPES 256u /* per chunk: far past any real array, bounds what is allocated */

/* Item types (key.type). */
#define BTRFS_INODE_ITEM_KEY 1
#define BTRFS_INODE_REF_KEY 12
#define BTRFS_INODE_EXTREF_KEY 13
#define BTRFS_XATTR_ITEM_KEY 24
#define BTRFS_DIR_ITEM_KEY 84
#define BTRFS_DIR_INDEX_KEY 96
#define BTRFS_EXTENT_DATA_KEY 108
#define BTRFS_EXTENT_CSUM_KEY 128
#define BTRFS_ROOT_ITEM_KEY 132
#define BTRFS_ROOT_BACKREF_KEY 144
#define BTRFS_ROOT_REF_KEY 156
#define BTRFS_EXTENT_ITEM_KEY 168
#define BTRFS_METADATA_ITEM_KEY 169
#define BTRFS_BLOCK_GROUP_ITEM_KEY 192
#define BTRFS_FREE_SPACE_INFO_KEY 198
#define BTRFS_FREE_SPACE_EXTENT_KEY 199
#define BTRFS_FREE_SPACE_BITMAP_KEY 200
#define BTRFS_DEV_EXTENT_KEY 204
#define BTRFS_DEV_ITEM_KEY 216
#define BTRFS_CHUNK_ITEM_KEY 228

/* Tree objectids (ROOT_ITEM keys) and others. */
#define BTRFS_ROOT_TREE_OBJECTID 1ull
#define BTRFS_EXTENT_TREE_OBJECTID 2ull
#define BTRFS_CHUNK_TREE_OBJECTID 3ull
#define BTRFS_DEV_TREE_OBJECTID 4ull
#define BTRFS_FS_TREE_OBJECTID 5ull
#define BTRFS_ROOT_TREE_DIR_OBJECTID 6ull
#define BTRFS_CSUM_TREE_OBJECTID 7ull
#define BTRFS_FREE_SPACE_TREE_OBJECTID 10ull
#define BTRFS_BLOCK_GROUP_TREE_OBJECTID 11ull
#define BTRFS_FIRST_FREE_OBJECTID 256ull
#define BTRFS_LAST_FREE_OBJECTID 0xFFFFFFFFFFFFFF00ull /* -256 */
#define BTRFS_DEV_ITEMS_OBJECTID 1ull
#define BTRFS_FIRST_CHUNK_TREE_OBJECTID 256ull

/* Block group (chunk) type flags. */
#define BTRFS_BLOCK_GROUP_DATA 0x1ull
#define BTRFS_BLOCK_GROUP_SYSTEM 0x2ull
#define BTRFS_BLOCK_GROUP_METADATA 0x4ull
#define BTRFS_BLOCK_GROUP_RAID0 0x8ull
#define BTRFS_BLOCK_GROUP_RAID1 0x10ull
#define BTRFS_BLOCK_GROUP_DUP 0x20ull
#define BTRFS_BLOCK_GROUP_RAID10 0x40ull
#define BTRFS_BLOCK_GROUP_RAID5 0x80ull
#define BTRFS_BLOCK_GROUP_RAID6 0x100ull
#define BTRFS_BLOCK_GROUP_RAID1C3 0x200ull
#define BTRFS_BLOCK_GROUP_RAID1C4 0x400ull
#define BTRFS_BLOCK_GROUP_PROFILES 0x7F8ull

/* Superblock feature bits this code reads (the rest: fs_btrfs.c refuses unknown incompat ones). */
#define BTRFS_INCOMPAT_MIXED_GROUPS (1ull << 2)
#define BTRFS_INCOMPAT_COMPRESS_LZO (1ull << 3)
#define BTRFS_INCOMPAT_COMPRESS_ZSTD (1ull << 4)
#define BTRFS_INCOMPAT_SKINNY_METADATA (1ull << 8)
#define BTRFS_INCOMPAT_NO_HOLES (1ull << 9)
#define BTRFS_INCOMPAT_METADATA_UUID (1ull << 10)
#define BTRFS_COMPAT_RO_FREE_SPACE_TREE (1ull << 0)
#define BTRFS_COMPAT_RO_FREE_SPACE_TREE_VALID (1ull << 1)
#define BTRFS_COMPAT_RO_BLOCK_GROUP_TREE (1ull << 3)

struct btrfs_key {
    uint64_t objectid;
    uint8_t type;
    uint64_t offset;
};

struct btrfs_stripe {
    uint64_t devid;
    uint64_t offset; /* physical byte on that device */
};

/* One chunk item: logical [logical, logical+length) over num_stripes stripes. */
struct btrfs_chunk {
    uint64_t logical, length;
    uint64_t type;       /* BTRFS_BLOCK_GROUP_* */
    uint64_t stripe_len; /* the striping unit (64 KiB) */
    uint16_t num_stripes, sub_stripes;
    struct btrfs_stripe *stripes;
};

/* Where a logical byte lies: one of its copies. */
struct btrfs_place {
    uint64_t devid, physical;
};

struct btrfs_fs {
    const struct asr_window *w;
    uint8_t super[BTRFS_SUPER_SIZE]; /* the checked primary superblock as read */
    uint8_t fsid[16];
    uint8_t meta_fsid[16]; /* what tree blocks carry: metadata_uuid when that feature is on */
    uint64_t generation, total_bytes, bytes_used, num_devices;
    uint64_t root, chunk_root, log_root; /* logical addresses of the trees' root blocks */
    uint8_t root_level, chunk_root_level;
    uint32_t sectorsize, nodesize;
    uint64_t compat_ro, incompat, flags;
    uint64_t devid;           /* this device (the superblock's dev_item) */
    uint64_t dev_total_bytes; /* its size as the filesystem knows it */
    uint8_t dev_uuid[16];
    char label[257];
    struct btrfs_chunk *chunks; /* sorted by logical, not overlapping */
    size_t nchunks, chunks_cap;
    uint64_t max_nodes; /* cap on the blocks one search visits */
};

/* The root block of a tree as its ROOT_ITEM gives it. */
struct btrfs_root {
    uint64_t objectid, key_offset; /* the ROOT_ITEM's key (offset: 0, or a snapshot's transid) */
    uint64_t bytenr, generation, root_dirid, flags;
    uint8_t level;
    uint32_t refs;
};

/* One leaf item; data and size are checked to lie in the leaf (valid only during the callback). */
struct btrfs_item {
    struct btrfs_key key;
    const uint8_t *data;
    uint32_t size;
    uint64_t leaf; /* the leaf's logical address, for messages */
    uint32_t slot;
};
typedef int (*btrfs_item_fn)(void *ctx, const struct btrfs_item *it, struct asr_error *err);

/* Reads and checks the superblock (ASR_E_UNSUPPORTED naming a checksum type other than crc32c,
 * or an incompatible feature this code cannot read), then builds the chunk map from the system
 * array and the chunk tree. A chunk tree with no copy on this device: ASR_E_UNSUPPORTED saying so. */
int btrfs_open(const struct asr_window *w, struct btrfs_fs **out, struct asr_error *err);
void btrfs_close(struct btrfs_fs *fs);

int btrfs_key_cmp(const struct btrfs_key *a, const struct btrfs_key *b);
/* The chunk holding logical, or NULL. */
const struct btrfs_chunk *btrfs_chunk_find(const struct btrfs_fs *fs, uint64_t logical);
/* The bytes one stripe of c takes on its device. */
uint64_t btrfs_stripe_size(const struct btrfs_chunk *c);
/* The copies of logical byte L of c (L inside c) into out (BTRFS_MAX_COPIES), their number
 * returned; *run: how many bytes from L on lie contiguous in every copy (up to the chunk's end).
 * RAID5/6: the data stripe only (parity is not read). */
unsigned btrfs_chunk_place(const struct btrfs_chunk *c, uint64_t logical, struct btrfs_place *out, uint64_t *run);
/* A profile's name for messages ("single", "DUP", "RAID1", ...). */
const char *btrfs_profile_name(uint64_t type);
/* The csum type's name (crc32c, xxhash64, sha256, blake2b, or "type N"). */
const char *btrfs_csum_name(uint16_t type, char buf[16]);

/* Reads the tree block at logical into buf (fs->nodesize bytes) from a copy on this device, the
 * next copy on this device when one fails its checks: checksum, bytenr, fsid, level (== level
 * unless level < 0), item count and item bounds, keys in strictly increasing order. */
int btrfs_read_tree_block(struct btrfs_fs *fs, uint64_t logical, int level, uint8_t *buf, struct asr_error *err);
uint32_t btrfs_nritems(const uint8_t *block);
uint8_t btrfs_level(const uint8_t *block);
uint64_t btrfs_generation(const uint8_t *block);
/* Key of item (leaf) or pointer (node) i of a block btrfs_read_tree_block accepted. */
void btrfs_block_key(const uint8_t *block, uint32_t i, struct btrfs_key *key);

/* Every item with min <= key <= max (either NULL: unbounded) of the tree rooted at root (of
 * level level), in key order; see the header comment. Each child's keys must lie within its
 * parent pointer's range and its generation match the pointer's (ASR_E_CORRUPT saying where);
 * at most fs->max_nodes blocks are read (ASR_E_LIMIT). */
int btrfs_search(struct btrfs_fs *fs, uint64_t root, uint8_t level, const struct btrfs_key *min,
                 const struct btrfs_key *max, btrfs_item_fn fn, void *ctx, struct asr_error *err);
/* A ROOT_ITEM's fields (size and level checked; ASR_E_CORRUPT naming the item otherwise). */
int btrfs_root_item(const struct btrfs_item *it, struct btrfs_root *out, struct asr_error *err);
/* The root of tree objectid from the root tree: the ROOT_ITEM with the highest key offset. */
int btrfs_find_root(struct btrfs_fs *fs, uint64_t objectid, struct btrfs_root *out, bool *found, struct asr_error *err);

/* len bytes at logical (any chunk profile; may cross stripes and chunks), each piece from a copy
 * on this device. ASR_E_CORRUPT when a byte is in no chunk; BTRFS_E_ELSEWHERE when a piece has no
 * copy here. No checksum is checked (data sums live in the csum tree). */
int btrfs_read_logical(struct btrfs_fs *fs, const char *what, uint64_t logical, void *buf, size_t len,
                       struct asr_error *err);

#endif
