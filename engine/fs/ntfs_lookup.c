/* Path lookup on an NTFS volume, for the critical-volume check (analyze.c): does it hold
 * \Windows\System32 or \bootmgr? Walks the directory indexes ($INDEX_ROOT and $INDEX_ALLOCATION
 * "$I30") from the root, MFT record 5, reading only through struct asr_window. No library:
 * libntfs-3g opens a device by name (one node per partition, or custom device operations to read
 * a window of a disk image), would be a new GPL link dependency, and mounts the whole volume
 * (journal, $MFTMirr, $UpCase) to answer a question this file answers from a few records. */
#include "ntfs_internal.h"

#include <stdlib.h>
#include <string.h>

#define REC_ROOT 5
#define AT_ATTRIBUTE_LIST 0x20u
#define AT_FILE_NAME 0x30u
#define AT_INDEX_ROOT 0x90u
#define AT_INDEX_ALLOCATION 0xA0u

#define INDEX_ENTRY_NODE 0x0001u /* a child block's VCN ends the entry */
#define INDEX_ENTRY_END 0x0002u  /* the last entry of a node: no key */
#define LARGE_INDEX 0x01u        /* the root has children in $INDEX_ALLOCATION */

#define FILE_NAME_NAME 0x42u       /* offset of the name in a $FILE_NAME key */
#define MAX_NAME 255u              /* NTFS's limit on one name, in UTF-16 units */
#define MAX_INDEX_BLOCKS (1u << 18) /* 1 GiB of 4 KiB blocks: millions of names in one directory */

/* One directory's index: the nodes below the root and the blocks still to visit. The whole tree
 * is visited breadth-first rather than descended by collation order: a descent must compare
 * names the way the volume's $UpCase table does, and a name met on the way with characters
 * outside ASCII would need that table; a visit of every node needs no order at all. Each live
 * block is the child of exactly one entry, so more child pointers than blocks means a loop. */
struct dir_walk {
    struct ntfs_runlist alloc; /* $INDEX_ALLOCATION's runs; n == 0 when there is none */
    uint64_t alloc_bytes;
    uint32_t block_size, vcn_unit;
    uint8_t *block;
    uint64_t *queue; /* child VCNs: [head, tail) still to visit */
    size_t head, tail, cap;
    const char *name; /* the component looked for, name_len ASCII bytes */
    size_t name_len;
    bool hit;
    uint64_t ref; /* the matching entry's file reference */
};

static int corrupt(struct asr_error *err, uint64_t dir, const char *what)
{
    return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: directory (MFT record %llu): %s", (unsigned long long)dir, what);
}

/* An index attribute absent from the directory's record: in an extension record when the record
 * has an attribute list (a huge directory; not followed here), else simply missing. */
static int missing(const struct ntfs_volume *v, uint64_t dir, const char *what, struct asr_error *err)
{
    bool listed = false;
    struct ntfs_attr a;
    if (ntfs_find_attr(v->rec, dir, AT_ATTRIBUTE_LIST, NULL, &a, &listed, NULL) == ASR_OK && listed)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "ntfs: directory (MFT record %llu): index in an attribute "
                                                       "list extent",
                               (unsigned long long)dir);
    return corrupt(err, dir, what);
}

static unsigned fold(unsigned c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* A $FILE_NAME key against the ASCII name, case-insensitively. Windows compares through $UpCase;
 * for ASCII that is plain case folding, and a name with other characters cannot equal ours. */
static bool key_matches(const uint8_t *key, uint32_t key_len, const struct dir_walk *dw)
{
    if (key_len < FILE_NAME_NAME)
        return false;
    uint32_t units = key[0x40];
    if (units != dw->name_len || FILE_NAME_NAME + 2 * units > key_len)
        return false;
    for (uint32_t i = 0; i < units; i++) {
        unsigned c = get_le16(key + FILE_NAME_NAME + 2 * i);
        if (c >= 0x80 || fold(c) != fold((unsigned char)dw->name[i]))
            return false;
    }
    return true;
}

/* Visits the index entries in n[start, end): a match ends the walk; child VCNs are queued. */
static int scan_node(struct dir_walk *dw, const uint8_t *n, uint32_t start, uint32_t end, uint64_t dir,
                     struct asr_error *err)
{
    for (uint32_t at = start; !dw->hit;) {
        if (end - at < 16)
            return corrupt(err, dir, "index entries run past their node");
        uint32_t len = get_le16(n + at + 8), key_len = get_le16(n + at + 10), flags = get_le16(n + at + 12);
        uint32_t tail = flags & INDEX_ENTRY_NODE ? 8 : 0;
        if (len < 16 + tail || (len & 7) || len > end - at || key_len > len - 16 - tail)
            return corrupt(err, dir, "index entry length invalid");
        if (flags & INDEX_ENTRY_NODE) {
            if (dw->tail == dw->cap)
                return corrupt(err, dir, "more index child pointers than index blocks (a loop)");
            dw->queue[dw->tail++] = get_le64(n + at + len - 8);
        }
        if (flags & INDEX_ENTRY_END)
            return ASR_OK;
        if (key_matches(n + at + 16, key_len, dw)) {
            dw->hit = true;
            dw->ref = get_le64(n + at);
        }
        at += len;
    }
    return ASR_OK;
}

/* An INDEX_HEADER at h (inside a node of size bytes from base): its entries' bounds. */
static int node_bounds(const uint8_t *base, uint32_t h, uint32_t size, uint32_t *start, uint32_t *end, uint64_t dir,
                       struct asr_error *err)
{
    if (size - h < 16)
        return corrupt(err, dir, "index header past its node");
    uint32_t first = get_le32(base + h), length = get_le32(base + h + 4);
    if (first < 16 || (first & 7) || length > size - h || first >= length)
        return corrupt(err, dir, "index header sizes invalid");
    *start = h + first;
    *end = h + length;
    return ASR_OK;
}

/* Reads the index block at VCN vcn, checks it is that block, and scans it. */
static int visit_block(struct ntfs_volume *v, struct dir_walk *dw, uint64_t vcn, uint64_t dir, struct asr_error *err)
{
    if (vcn > dw->alloc_bytes / dw->vcn_unit || dw->alloc_bytes - vcn * dw->vcn_unit < dw->block_size)
        return corrupt(err, dir, "index child VCN past $INDEX_ALLOCATION");
    int rc = ntfs_stream_read(v->w, &v->g, &dw->alloc, "a directory index block", vcn * dw->vcn_unit, dw->block,
                              dw->block_size, err);
    if (rc != ASR_OK)
        return rc;
    if (memcmp(dw->block, "INDX", 4) != 0)
        return corrupt(err, dir, "index block signature is not INDX");
    rc = ntfs_apply_fixups(dw->block, dw->block_size, "index block at VCN", vcn, err);
    if (rc != ASR_OK)
        return rc;
    if (get_le64(dw->block + 0x10) != vcn)
        return corrupt(err, dir, "index block holds another VCN than its parent says");
    uint32_t start, end;
    rc = node_bounds(dw->block, 0x18, dw->block_size, &start, &end, dir, err);
    return rc == ASR_OK ? scan_node(dw, dw->block, start, end, dir, err) : rc;
}

/* $INDEX_ALLOCATION's runs, the block buffer and the queue, sized from the index root's block
 * size. Nothing is needed when the root has no children. */
static int prepare_blocks(struct ntfs_volume *v, struct dir_walk *dw, const uint8_t *root, uint64_t dir,
                          struct asr_error *err)
{
    bool found;
    struct ntfs_attr a;
    dw->block_size = get_le32(root + 8);
    if (dw->block_size < NTFS_FIXUP_STRIDE || dw->block_size > NTFS_MAX_RECORD || (dw->block_size & (dw->block_size - 1)))
        return corrupt(err, dir, "index block size not a power of two in 512..65536");
    /* Index VCNs count clusters, or 512-byte units where a block is smaller than a cluster. */
    dw->vcn_unit = dw->block_size >= v->g.cluster ? (uint32_t)v->g.cluster : NTFS_FIXUP_STRIDE;
    int rc = ntfs_find_attr(v->rec, dir, AT_INDEX_ALLOCATION, "$I30", &a, &found, err);
    if (rc == ASR_OK && !found)
        return missing(v, dir, "index root has children but there is no $INDEX_ALLOCATION", err);
    if (rc == ASR_OK)
        rc = ntfs_runs(&a, &v->g, dir, &dw->alloc, err);
    if (rc != ASR_OK)
        return rc;
    dw->alloc_bytes = dw->alloc.vcns * v->g.cluster; /* inside the volume: ntfs_runs */
    uint64_t blocks = dw->alloc_bytes / dw->block_size;
    if (blocks > MAX_INDEX_BLOCKS)
        return asr_fail_public(err, ASR_E_LIMIT, "ntfs: directory (MFT record %llu): %llu index blocks, more than "
                                                 "the %u looked through",
                               (unsigned long long)dir, (unsigned long long)blocks, MAX_INDEX_BLOCKS);
    dw->cap = (size_t)blocks;
    dw->block = malloc(dw->block_size);
    dw->queue = malloc((dw->cap ? dw->cap : 1) * sizeof *dw->queue);
    if (!dw->block || !dw->queue)
        return asr_fail_public(err, ASR_E_NOMEM, "ntfs: out of memory for a directory index");
    return ASR_OK;
}

/* Looks name up in the directory whose record is in v->rec. */
static int search_dir(struct ntfs_volume *v, uint64_t dir, struct dir_walk *dw, struct asr_error *err)
{
    bool found;
    struct ntfs_attr a;
    const uint8_t *root;
    uint32_t n, start, end;
    int rc = ntfs_find_attr(v->rec, dir, AT_INDEX_ROOT, "$I30", &a, &found, err);
    if (rc == ASR_OK && !found)
        return missing(v, dir, "no $INDEX_ROOT named $I30", err);
    if (rc == ASR_OK)
        rc = ntfs_resident_value(&a, dir, &root, &n, err);
    if (rc != ASR_OK)
        return rc;
    if (n < 0x20 || get_le32(root) != AT_FILE_NAME)
        return corrupt(err, dir, "$INDEX_ROOT does not index file names");
    rc = node_bounds(root, 0x10, n, &start, &end, dir, err);
    if (rc == ASR_OK && (root[0x1C] & LARGE_INDEX))
        rc = prepare_blocks(v, dw, root, dir, err);
    if (rc == ASR_OK)
        rc = scan_node(dw, root, start, end, dir, err);
    while (rc == ASR_OK && !dw->hit && dw->head < dw->tail)
        rc = visit_block(v, dw, dw->queue[dw->head++], dir, err);
    return rc;
}

/* Follows one path component from the directory in v->rec (record *rec_no) to its entry's
 * record, read into v->rec. *hit false: no such name. */
static int step(struct ntfs_volume *v, uint64_t *rec_no, const char *name, size_t len, bool *hit,
                struct asr_error *err)
{
    struct dir_walk dw = {.name = name, .name_len = len};
    int rc = search_dir(v, *rec_no, &dw, err);
    free(dw.alloc.v);
    free(dw.block);
    free(dw.queue);
    *hit = rc == ASR_OK && dw.hit;
    if (!*hit)
        return rc;
    uint64_t next = dw.ref & 0xFFFFFFFFFFFFull;
    uint16_t seq = (uint16_t)(dw.ref >> 48);
    rc = ntfs_read_record(v, next, err);
    /* A sequence number that differs means the entry names a record since reused. */
    if (rc == ASR_OK && seq && get_le16(v->rec + 0x10) != seq)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: directory (MFT record %llu): entry for record %llu is stale "
                                                 "(sequence %u, the record has %u)",
                             (unsigned long long)*rec_no, (unsigned long long)next, seq, get_le16(v->rec + 0x10));
    *rec_no = next;
    return rc;
}

static int walk(struct ntfs_volume *v, const char *path, bool *found, bool *is_dir, struct asr_error *err)
{
    uint64_t rec_no = REC_ROOT;
    int rc = ntfs_read_record(v, rec_no, err);
    for (const char *p = path; rc == ASR_OK;) {
        while (*p == '/' || *p == '\\')
            p++;
        bool dir = get_le16(v->rec + 0x16) & NTFS_RECORD_IS_DIRECTORY;
        if (!*p) {
            *found = true;
            *is_dir = dir;
            return ASR_OK;
        }
        size_t len = strcspn(p, "/\\");
        if (!dir || len > MAX_NAME)
            return ASR_OK; /* a file has no children; no NTFS name is that long */
        bool hit;
        rc = step(v, &rec_no, p, len, &hit, err);
        if (rc == ASR_OK && !hit)
            return ASR_OK;
        p += len;
    }
    return rc;
}

int asr_ntfs_lookup(const struct asr_window *w, const char *path, bool *found, bool *is_dir, struct asr_error *err)
{
    bool dir_ignored;
    if (!is_dir)
        is_dir = &dir_ignored;
    *found = *is_dir = false;
    struct ntfs_volume v;
    int rc = ntfs_open(&v, w, err);
    if (rc == ASR_OK)
        rc = walk(&v, path, found, is_dir, err);
    ntfs_close(&v);
    if (rc != ASR_OK)
        *found = *is_dir = false;
    return rc;
}
