/* Engine-internal: the items of btrfs fs trees and of the root tree that the path reader
 * (fs_btrfs_file.c) reads, parsed from a leaf item the core (fs_btrfs_internal.h) has checked to
 * lie inside its leaf: every field and every name is checked to lie inside the item before it
 * is used, and a short or overlong item is ASR_E_CORRUPT naming the item (btrfs_items.c). The
 * parsed names point into the item's data: valid only as long as it is. */
#ifndef ASR_BTRFS_ITEMS_H
#define ASR_BTRFS_ITEMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs_btrfs_internal.h"

/* struct btrfs_inode_item's layout: the 160 bytes of INODE_ITEM. */
#define BTRFS_INODE_ITEM_SIZE 160u
/* BTRFS_FT_*: what a directory entry's type byte says the inode is. */
#define BTRFS_FT_REG_FILE 1
#define BTRFS_FT_DIR 2
#define BTRFS_FT_SYMLINK 7
/* Extent types of EXTENT_DATA. */
#define BTRFS_FILE_EXTENT_INLINE 0
#define BTRFS_FILE_EXTENT_REG 1
#define BTRFS_FILE_EXTENT_PREALLOC 2
/* The inode number the kernel gives a subvolume's placeholder in a snapshot of its parent (an
 * entry naming the subvolume with no ROOT_REF behind it): an empty directory with no inode item
 * (BTRFS_EMPTY_SUBVOL_DIR_OBJECTID); the path reader gives it the same. */
#define BTRFS_EMPTY_SUBVOL_DIR_OBJECTID 2ull

/* What a leaf item is, for messages: "tree 5 leaf 30425088 slot 7 (256 DIR_INDEX 3)". */
void btrfs_item_where(const struct btrfs_item *it, uint64_t tree, char *buf, size_t len);

struct btrfs_inode {
    uint64_t size, nbytes, flags;
    uint32_t mode, nlink;
};
int btrfs_parse_inode(const struct btrfs_item *it, uint64_t tree, struct btrfs_inode *out, struct asr_error *err);

/* One entry of a DIR_ITEM (several when names share a hash), DIR_INDEX (one) or XATTR_ITEM. */
struct btrfs_dir_entry {
    struct btrfs_key location; /* INODE_ITEM: an inode of this tree; ROOT_ITEM: a subvolume */
    uint8_t type;              /* BTRFS_FT_* */
    const uint8_t *name;
    uint16_t name_len;
};
/* The entry at *pos (start at 0) into *e, *pos moved past it: ASR_OK, ASR_E_CORRUPT; *done when
 * *pos is at the item's end (nothing read). Names are 1..255 bytes (XATTR values may follow). */
int btrfs_dir_entry_next(const struct btrfs_item *it, uint64_t tree, uint32_t *pos, struct btrfs_dir_entry *e,
                         bool *done, struct asr_error *err);

struct btrfs_file_extent {
    uint64_t generation, ram_bytes;
    uint8_t compression, encryption, type; /* BTRFS_COMPRESS_*, 0, BTRFS_FILE_EXTENT_* */
    uint16_t other_encoding;
    const uint8_t *inline_data; /* INLINE: the bytes as stored (compressed or not) */
    uint32_t inline_len;
    uint64_t disk_bytenr, disk_num_bytes, offset, num_bytes; /* REG, PREALLOC; disk_bytenr 0: a hole */
};
int btrfs_parse_file_extent(const struct btrfs_item *it, uint64_t tree, struct btrfs_file_extent *out,
                            struct asr_error *err);

/* One name of an INODE_REF item (key: inode, INODE_REF, parent directory); several when the
 * inode has hard links in that directory. Same contract as btrfs_dir_entry_next. */
int btrfs_inode_ref_next(const struct btrfs_item *it, uint64_t tree, uint32_t *pos, uint64_t *index,
                         const uint8_t **name, uint16_t *name_len, bool *done, struct asr_error *err);

/* A ROOT_REF (key: parent, ROOT_REF, child) or ROOT_BACKREF (key: child, ROOT_BACKREF, parent):
 * the directory of the parent subvolume that holds the child, and its name there. */
struct btrfs_root_ref {
    uint64_t dirid, sequence;
    const uint8_t *name;
    uint16_t name_len;
};
int btrfs_parse_root_ref(const struct btrfs_item *it, struct btrfs_root_ref *out, struct asr_error *err);

/* The hash DIR_ITEM keys carry in their offset: crc32c seeded with ~1, as the kernel's
 * btrfs_name_hash. */
uint64_t btrfs_name_hash(const uint8_t *name, size_t len);

#endif
