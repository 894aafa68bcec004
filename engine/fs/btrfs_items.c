/* The fs tree's and the root tree's items the path reader needs (btrfs_items.h): inode items,
 * directory entries, file extents, inode and root references, each parsed field by field from
 * the item's bytes (little-endian, no struct read raw), its size checked first. */
#include "btrfs_items.h"

#include "crc32c.h"
#include "le.h"

#include <stdio.h>

#define DIR_ENTRY_HEADER 30u  /* location key 17, transid 8, data_len 2, name_len 2, type 1 */
#define EXTENT_INLINE_HEADER 21u /* generation, ram_bytes, compression, encryption, other_encoding, type */
#define EXTENT_REG_SIZE 53u   /* the header, then disk_bytenr, disk_num_bytes, offset, num_bytes */
#define INODE_REF_HEADER 10u  /* index 8, name_len 2 */
#define ROOT_REF_HEADER 18u   /* dirid 8, sequence 8, name_len 2 */
#define NAME_MAX_BYTES 255u

static const char *type_name(uint8_t type)
{
    switch (type) {
    case BTRFS_INODE_ITEM_KEY:
        return "INODE_ITEM";
    case BTRFS_INODE_REF_KEY:
        return "INODE_REF";
    case BTRFS_XATTR_ITEM_KEY:
        return "XATTR_ITEM";
    case BTRFS_DIR_ITEM_KEY:
        return "DIR_ITEM";
    case BTRFS_DIR_INDEX_KEY:
        return "DIR_INDEX";
    case BTRFS_EXTENT_DATA_KEY:
        return "EXTENT_DATA";
    case BTRFS_ROOT_ITEM_KEY:
        return "ROOT_ITEM";
    case BTRFS_ROOT_BACKREF_KEY:
        return "ROOT_BACKREF";
    case BTRFS_ROOT_REF_KEY:
        return "ROOT_REF";
    default:
        return "item";
    }
}

void btrfs_item_where(const struct btrfs_item *it, uint64_t tree, char *buf, size_t len)
{
    snprintf(buf, len, "tree %llu leaf %llu slot %u (%llu %s %llu)", (unsigned long long)tree,
             (unsigned long long)it->leaf, it->slot, (unsigned long long)it->key.objectid, type_name(it->key.type),
             (unsigned long long)it->key.offset);
}

static int item_fail(const struct btrfs_item *it, uint64_t tree, struct asr_error *err, const char *what)
{
    char where[160];
    btrfs_item_where(it, tree, where, sizeof where);
    return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: %s", where, what);
}

static int short_item(const struct btrfs_item *it, uint64_t tree, uint32_t need, struct asr_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "%u bytes, shorter than the %u its layout needs", it->size, need);
    return item_fail(it, tree, err, what);
}

int btrfs_parse_inode(const struct btrfs_item *it, uint64_t tree, struct btrfs_inode *out, struct asr_error *err)
{
    if (it->size < BTRFS_INODE_ITEM_SIZE)
        return short_item(it, tree, BTRFS_INODE_ITEM_SIZE, err);
    const uint8_t *p = it->data;
    *out = (struct btrfs_inode){.size = get_le64(p + 16), .nbytes = get_le64(p + 24), .nlink = get_le32(p + 40),
                                .mode = get_le32(p + 52), .flags = get_le64(p + 64)};
    return ASR_OK;
}

int btrfs_dir_entry_next(const struct btrfs_item *it, uint64_t tree, uint32_t *pos, struct btrfs_dir_entry *e,
                         bool *done, struct asr_error *err)
{
    *done = *pos >= it->size;
    if (*done)
        return ASR_OK;
    if (it->size - *pos < DIR_ENTRY_HEADER)
        return short_item(it, tree, *pos + DIR_ENTRY_HEADER, err);
    const uint8_t *p = it->data + *pos;
    uint32_t data_len = get_le16(p + 25), name_len = get_le16(p + 27);
    if (name_len == 0 || name_len > NAME_MAX_BYTES) {
        char what[96];
        snprintf(what, sizeof what, "an entry at byte %u with a name of %u bytes", *pos, name_len);
        return item_fail(it, tree, err, what);
    }
    if (it->size - *pos - DIR_ENTRY_HEADER < name_len + data_len) {
        char what[128];
        snprintf(what, sizeof what, "an entry at byte %u of %u + %u bytes runs past the item's %u", *pos,
                 DIR_ENTRY_HEADER + name_len, data_len, it->size);
        return item_fail(it, tree, err, what);
    }
    e->location = (struct btrfs_key){get_le64(p), p[8], get_le64(p + 9)};
    e->type = p[29];
    e->name = p + DIR_ENTRY_HEADER;
    e->name_len = (uint16_t)name_len;
    *pos += DIR_ENTRY_HEADER + name_len + data_len;
    return ASR_OK;
}

int btrfs_parse_file_extent(const struct btrfs_item *it, uint64_t tree, struct btrfs_file_extent *out,
                            struct asr_error *err)
{
    if (it->size < EXTENT_INLINE_HEADER)
        return short_item(it, tree, EXTENT_INLINE_HEADER, err);
    const uint8_t *p = it->data;
    *out = (struct btrfs_file_extent){.generation = get_le64(p), .ram_bytes = get_le64(p + 8), .compression = p[16],
                                      .encryption = p[17], .other_encoding = get_le16(p + 18), .type = p[20]};
    if (out->type == BTRFS_FILE_EXTENT_INLINE) {
        out->inline_data = p + EXTENT_INLINE_HEADER;
        out->inline_len = it->size - EXTENT_INLINE_HEADER;
        return ASR_OK;
    }
    if (out->type != BTRFS_FILE_EXTENT_REG && out->type != BTRFS_FILE_EXTENT_PREALLOC) {
        char what[64];
        snprintf(what, sizeof what, "extent type %u", out->type);
        return item_fail(it, tree, err, what);
    }
    if (it->size < EXTENT_REG_SIZE)
        return short_item(it, tree, EXTENT_REG_SIZE, err);
    out->disk_bytenr = get_le64(p + 21);
    out->disk_num_bytes = get_le64(p + 29);
    out->offset = get_le64(p + 37);
    out->num_bytes = get_le64(p + 45);
    return ASR_OK;
}

int btrfs_inode_ref_next(const struct btrfs_item *it, uint64_t tree, uint32_t *pos, uint64_t *index,
                         const uint8_t **name, uint16_t *name_len, bool *done, struct asr_error *err)
{
    *done = *pos >= it->size;
    if (*done)
        return ASR_OK;
    if (it->size - *pos < INODE_REF_HEADER)
        return short_item(it, tree, *pos + INODE_REF_HEADER, err);
    const uint8_t *p = it->data + *pos;
    uint32_t n = get_le16(p + 8);
    if (n == 0 || n > NAME_MAX_BYTES || it->size - *pos - INODE_REF_HEADER < n) {
        char what[96];
        snprintf(what, sizeof what, "a name of %u bytes at byte %u (the item holds %u)", n, *pos, it->size);
        return item_fail(it, tree, err, what);
    }
    *index = get_le64(p);
    *name = p + INODE_REF_HEADER;
    *name_len = (uint16_t)n;
    *pos += INODE_REF_HEADER + n;
    return ASR_OK;
}

int btrfs_parse_root_ref(const struct btrfs_item *it, struct btrfs_root_ref *out, struct asr_error *err)
{
    if (it->size < ROOT_REF_HEADER)
        return short_item(it, BTRFS_ROOT_TREE_OBJECTID, ROOT_REF_HEADER, err);
    const uint8_t *p = it->data;
    uint32_t n = get_le16(p + 16);
    if (n == 0 || n > NAME_MAX_BYTES || it->size - ROOT_REF_HEADER < n) {
        char what[96];
        snprintf(what, sizeof what, "a name of %u bytes (the item holds %u)", n, it->size);
        return item_fail(it, BTRFS_ROOT_TREE_OBJECTID, err, what);
    }
    *out = (struct btrfs_root_ref){get_le64(p), get_le64(p + 8), p + ROOT_REF_HEADER, (uint16_t)n};
    return ASR_OK;
}

uint64_t btrfs_name_hash(const uint8_t *name, size_t len)
{
    return asr_crc32c_update(~1u, name, len);
}
