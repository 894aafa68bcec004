/* btrfs used-byte map of one device: every stripe this device holds of every chunk (so DUP copies
 * and RAID1 mirrors are captured, which partclone.btrfs misses), each narrowed to its block
 * group's allocated extents (data and tree blocks alike, at every copy on this device), from the
 * free-space tree when it is valid, else from the extent tree; the first MiB (boot area, primary
 * superblock), the superblock mirrors inside the device, and every copy here of the root blocks
 * the superblock and the root tree name, whatever the accounting says. Taken whole: RAID5/6
 * block groups (parity), and every block group while a log tree waits to be replayed (its blocks
 * and the data it logged are in no allocation tree until then) or when the allocation trees are
 * not on this device. Reads through the btrfs core (btrfs_core.c). */
#include "asr_engine.h"
#include "fs_btrfs_internal.h"
#include "grow.h"
#include "guid.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOOT_AREA (1ull << 20)  /* btrfs allocates nothing below 1 MiB: boot loaders live there */
#define MAX_RANGES (1ull << 28) /* logical or physical ranges gathered: 4 GiB of memory */

/* A growable list of ranges, appended in any order, touching ones merged as they come. */
struct rlist {
    struct asr_range *v;
    size_t n, cap;
};

static int rl_add(struct rlist *l, uint64_t off, uint64_t len, struct asr_error *err)
{
    if (!len)
        return ASR_OK;
    if (l->n && l->v[l->n - 1].offset + l->v[l->n - 1].length == off) {
        l->v[l->n - 1].length += len;
        return ASR_OK;
    }
    struct asr_range *v = NULL;
    if (l->n >= MAX_RANGES)
        return asr_fail_public(err, ASR_E_LIMIT, "btrfs: more than %llu ranges in the map",
                               (unsigned long long)MAX_RANGES);
    if (!(v = asr_grow(l->v, &l->cap, l->n + 1, sizeof *v, 256)))
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory for the used map");
    l->v = v;
    l->v[l->n++] = (struct asr_range){off, len};
    return ASR_OK;
}

static int by_offset(const void *a, const void *b)
{
    const struct asr_range *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* How block groups are narrowed. */
enum source { SRC_NONE, SRC_FREE_SPACE_TREE, SRC_EXTENT_TREE };

struct map {
    struct btrfs_fs *fs;
    const struct asr_window *w;
    enum source src;
    struct rlist logical; /* SRC_FREE_SPACE_TREE: free ranges; SRC_EXTENT_TREE: used ranges (logical) */
    struct rlist phys;    /* what this device needs */
    uint64_t left_out[2]; /* free bytes not taken: [0] data block groups, [1] metadata/system/mixed */
    uint64_t emitted;     /* bytes emit_stripe gave for the stripe at hand */
    uint64_t dev_extents; /* DEV_EXTENT items of this device in the dev tree */
    size_t whole_raid56;  /* RAID5/6 chunks taken whole */
    size_t narrowed;      /* stripes on this device narrowed */
    char why_whole[128];  /* why every block group was taken whole ("" when narrowed) */
};

/* RAID5/6 stripes hold parity the allocation trees say nothing about. */
static bool narrowable(const struct btrfs_chunk *c)
{
    return !(c->type & (BTRFS_BLOCK_GROUP_RAID5 | BTRFS_BLOCK_GROUP_RAID6));
}

/* Tree blocks live here (mixed block groups count: a tree block may be anywhere in them). */
static bool holds_metadata(const struct btrfs_chunk *c)
{
    return (c->type & (BTRFS_BLOCK_GROUP_METADATA | BTRFS_BLOCK_GROUP_SYSTEM)) != 0;
}

/* A logical range [start, start+len) one of the trees gives, checked to lie in one chunk; only
 * narrowable chunks' ranges are kept. */
static int add_logical(struct map *m, uint64_t start, uint64_t len, const struct btrfs_item *it, const char *what,
                       struct asr_error *err)
{
    const struct btrfs_chunk *c = btrfs_chunk_find(m->fs, start);
    /* mkfs.btrfs (6.2 at least) leaves the free-space tree describing the temporary block groups
     * it made and removed: free space of no chunk is no one's, and ignored. */
    if (!c && m->src == SRC_FREE_SPACE_TREE && len && !btrfs_chunk_find(m->fs, start + len - 1))
        return ASR_OK;
    if (!c || len == 0 || len > c->length - (start - c->logical))
        return asr_fail_public(
            err, ASR_E_CORRUPT, "btrfs: %s [%llu, +%llu) not inside one chunk (leaf at logical %llu, item %u)", what,
            (unsigned long long)start, (unsigned long long)len, (unsigned long long)it->leaf, it->slot);
    if (!narrowable(c))
        return ASR_OK;
    if (m->logical.n) {
        const struct asr_range *last = &m->logical.v[m->logical.n - 1];
        if (start < last->offset + last->length)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: %s at logical %llu overlaps the one before (leaf at logical %llu, item %u)",
                                   what, (unsigned long long)start, (unsigned long long)it->leaf, it->slot);
    }
    return rl_add(&m->logical, start, len, err);
}

static int free_space_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct map *m = ctx;
    if (it->key.type == BTRFS_FREE_SPACE_EXTENT_KEY)
        return add_logical(m, it->key.objectid, it->key.offset, it, "free-space extent", err);
    if (it->key.type != BTRFS_FREE_SPACE_BITMAP_KEY)
        return ASR_OK;
    /* One bit per sector from key.objectid, set = free. */
    uint64_t sectors = it->key.offset / m->fs->sectorsize;
    if (it->key.offset % m->fs->sectorsize || sectors == 0 || (sectors + 7) / 8 > it->size)
        return asr_fail_public(
            err, ASR_E_CORRUPT,
            "btrfs: free-space bitmap of %u bytes for %llu bytes at logical %llu (leaf at logical %llu, item %u)",
            it->size, (unsigned long long)it->key.offset, (unsigned long long)it->key.objectid,
            (unsigned long long)it->leaf, it->slot);
    uint64_t i = 0;
    while (i < sectors) {
        if (!(it->data[i / 8] >> (i % 8) & 1)) {
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < sectors && (it->data[j / 8] >> (j % 8) & 1))
            j++;
        int rc = add_logical(m, it->key.objectid + i * m->fs->sectorsize, (j - i) * m->fs->sectorsize, it,
                             "free-space bitmap run", err);
        if (rc != ASR_OK)
            return rc;
        i = j;
    }
    return ASR_OK;
}

/* EXTENT_ITEM: data extents, and tree blocks without skinny metadata (flag TREE_BLOCK, key
 * offset the node size); METADATA_ITEM (skinny): a tree block, key offset its level. */
#define EXTENT_FLAG_TREE_BLOCK 0x2ull
static int extent_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct map *m = ctx;
    if (it->key.type == BTRFS_EXTENT_ITEM_KEY) {
        bool tree = it->size >= 24 && (get_le64(it->data + 16) & EXTENT_FLAG_TREE_BLOCK);
        if (tree && it->key.offset != m->fs->nodesize)
            return asr_fail_public(
                err, ASR_E_CORRUPT,
                "btrfs: tree block extent at logical %llu of %llu bytes, not the node size %u (leaf at logical "
                "%llu, item %u)",
                (unsigned long long)it->key.objectid, (unsigned long long)it->key.offset, m->fs->nodesize,
                (unsigned long long)it->leaf, it->slot);
        return add_logical(m, it->key.objectid, it->key.offset, it, tree ? "tree block extent" : "extent", err);
    }
    if (it->key.type == BTRFS_METADATA_ITEM_KEY) {
        if (it->key.offset >= BTRFS_MAX_LEVEL)
            return asr_fail_public(
                err, ASR_E_CORRUPT, "btrfs: tree block at logical %llu of level %llu (leaf at logical %llu, item %u)",
                (unsigned long long)it->key.objectid, (unsigned long long)it->key.offset,
                (unsigned long long)it->leaf, it->slot);
        return add_logical(m, it->key.objectid, m->fs->nodesize, it, "tree block extent", err);
    }
    return ASR_OK;
}

/* Gathers what narrows the block groups; a tree with no copy here leaves them whole. */
static int read_allocation(struct map *m, struct asr_error *err)
{
    struct btrfs_fs *fs = m->fs;
    if (fs->log_root) {
        snprintf(m->why_whole, sizeof m->why_whole, "a log tree waits to be replayed");
        return ASR_OK;
    }
    struct btrfs_root r;
    bool found = false;
    int rc = ASR_OK;
    uint64_t want = BTRFS_COMPAT_RO_FREE_SPACE_TREE | BTRFS_COMPAT_RO_FREE_SPACE_TREE_VALID;
    if ((fs->compat_ro & want) == want) {
        rc = btrfs_find_root(fs, BTRFS_FREE_SPACE_TREE_OBJECTID, &r, &found, err);
        if (rc == ASR_OK && found) {
            m->src = SRC_FREE_SPACE_TREE;
            rc = btrfs_search(fs, r.bytenr, r.level, NULL, NULL, free_space_item, m, err);
        }
    }
    if (rc == ASR_OK && m->src == SRC_NONE) {
        rc = btrfs_find_root(fs, BTRFS_EXTENT_TREE_OBJECTID, &r, &found, err);
        if (rc == ASR_OK && !found)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: the root tree has no extent tree (root tree at logical %llu)",
                                   (unsigned long long)fs->root);
        if (rc == ASR_OK) {
            m->src = SRC_EXTENT_TREE;
            rc = btrfs_search(fs, r.bytenr, r.level, NULL, NULL, extent_item, m, err);
        }
    }
    if (rc == BTRFS_E_ELSEWHERE) {
        snprintf(m->why_whole, sizeof m->why_whole, "the %s tree is not all on this device",
                 m->src == SRC_FREE_SPACE_TREE ? "free-space"
                 : m->src == SRC_EXTENT_TREE   ? "extent"
                                               : "root");
        m->src = SRC_NONE;
        m->logical.n = 0;
        return ASR_OK;
    }
    return rc;
}

/* The logical ranges of c in use: from the used list, or the chunk less the free list, through
 * emit(). *cursor walks m->logical (both lists are in logical order, as the chunks are). */
typedef int (*emit_fn)(struct map *m, const struct btrfs_chunk *c, unsigned stripe, uint64_t start, uint64_t len,
                       struct asr_error *err);

static int for_used(struct map *m, const struct btrfs_chunk *c, unsigned stripe, size_t *cursor, emit_fn emit,
                    struct asr_error *err)
{
    const struct rlist *l = &m->logical;
    uint64_t end = c->logical + c->length, pos = c->logical;
    size_t i = *cursor;
    while (i < l->n && l->v[i].offset + l->v[i].length <= c->logical)
        i++;
    int rc = ASR_OK;
    for (; i < l->n && l->v[i].offset < end && rc == ASR_OK; i++) {
        /* Each range lay in one chunk when added, but rl_add merges touching ones: a range may
         * run on into the next chunk (or begin in the one before), and only c's part is c's. */
        uint64_t s = l->v[i].offset, e = s + l->v[i].length;
        s = s > c->logical ? s : c->logical;
        e = e < end ? e : end;
        if (m->src == SRC_EXTENT_TREE) {
            rc = emit(m, c, stripe, s, e - s, err);
        } else {
            rc = emit(m, c, stripe, pos, s - pos, err);
            pos = e;
        }
    }
    if (rc == ASR_OK && m->src == SRC_FREE_SPACE_TREE)
        rc = emit(m, c, stripe, pos, end - pos, err);
    return rc;
}

/* Logical [start, start+len) of c as it lies on stripe `stripe` (this device). */
static int emit_stripe(struct map *m, const struct btrfs_chunk *c, unsigned stripe, uint64_t start, uint64_t len,
                       struct asr_error *err)
{
    if (!len)
        return ASR_OK;
    m->emitted += len; /* each byte of the range lies once on this stripe, or on another one */
    uint64_t off = start - c->logical, base = c->stripes[stripe].offset;
    uint64_t profile = c->type & BTRFS_BLOCK_GROUP_PROFILES;
    if (!(profile & (BTRFS_BLOCK_GROUP_RAID0 | BTRFS_BLOCK_GROUP_RAID10)))
        return rl_add(&m->phys, base + off, len, err); /* every stripe holds the whole chunk */
    /* Striped: unit u (stripe_len bytes of the chunk) lies on column u % ds, row u / ds. */
    uint64_t sl = c->stripe_len, ds, col;
    if (profile == BTRFS_BLOCK_GROUP_RAID0) {
        ds = c->num_stripes;
        col = stripe;
    } else {
        ds = (uint64_t)c->num_stripes / c->sub_stripes;
        col = stripe / c->sub_stripes;
    }
    uint64_t u = off / sl, end = off + len;
    u += (col + ds - u % ds) % ds; /* first unit of this column at or after off */
    for (; u * sl < end; u += ds) {
        uint64_t s = u * sl > off ? u * sl : off, e = (u + 1) * sl < end ? (u + 1) * sl : end;
        int rc = rl_add(&m->phys, base + (u / ds) * sl + (s - u * sl), e - s, err);
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

static int whole_stripe(struct map *m, const struct btrfs_chunk *c, unsigned i, struct asr_error *err)
{
    return rl_add(&m->phys, c->stripes[i].offset, btrfs_stripe_size(c), err);
}

/* Every stripe of every chunk on this device, narrowed when a source was read. */
static int map_chunks(struct map *m, struct asr_error *err)
{
    struct btrfs_fs *fs = m->fs;
    size_t cursor = 0;
    for (size_t k = 0; k < fs->nchunks; k++) {
        const struct btrfs_chunk *c = &fs->chunks[k];
        bool narrow = m->src != SRC_NONE && narrowable(c);
        if (m->src != SRC_NONE && !narrowable(c))
            m->whole_raid56++;
        for (unsigned i = 0; i < c->num_stripes; i++) {
            if (c->stripes[i].devid != fs->devid)
                continue;
            uint64_t size = btrfs_stripe_size(c);
            if (c->stripes[i].offset + size > m->w->size)
                return asr_fail_public(
                    err, ASR_E_CORRUPT,
                    "btrfs: chunk at logical %llu has a stripe at device bytes [%llu, +%llu), past the "
                    "%llu-byte volume",
                    (unsigned long long)c->logical, (unsigned long long)c->stripes[i].offset, (unsigned long long)size,
                    (unsigned long long)m->w->size);
            if (!narrow) {
                int rc = whole_stripe(m, c, i, err);
                if (rc != ASR_OK)
                    return rc;
                continue;
            }
            size_t cur = cursor;
            m->narrowed++;
            m->emitted = 0;
            int rc = for_used(m, c, i, &cur, emit_stripe, err);
            if (rc != ASR_OK)
                return rc;
            m->left_out[holds_metadata(c)] += size - m->emitted;
        }
        while (cursor < m->logical.n &&
               m->logical.v[cursor].offset + m->logical.v[cursor].length <= c->logical + c->length)
            cursor++; /* one running on into the next chunk stays for it */
    }
    return ASR_OK;
}

/* Every copy on this device of the tree block at logical, taken whatever the free-space or extent
 * tree says of it: a root block left out would lose the whole tree, and reading them cost nothing
 * more. Copies on other devices are theirs. */
static int keep_block(struct map *m, uint64_t logical, const char *what, struct asr_error *err)
{
    struct btrfs_fs *fs = m->fs;
    const struct btrfs_chunk *c = btrfs_chunk_find(fs, logical);
    struct btrfs_place pl[BTRFS_MAX_COPIES];
    uint64_t run = 0;
    unsigned n = c ? btrfs_chunk_place(c, logical, pl, &run) : 0;
    if (!c || run < fs->nodesize)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: %s root block at logical %llu lies in no chunk or crosses a stripe's end", what,
                               (unsigned long long)logical);
    for (unsigned i = 0; i < n; i++) {
        if (pl[i].devid != fs->devid)
            continue;
        if (pl[i].physical > m->w->size || m->w->size - pl[i].physical < fs->nodesize)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: %s root block at logical %llu lies at device byte %llu, past the %llu-byte "
                                   "volume",
                                   what, (unsigned long long)logical, (unsigned long long)pl[i].physical,
                                   (unsigned long long)m->w->size);
        int rc = rl_add(&m->phys, pl[i].physical, fs->nodesize, err);
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

static int root_tree_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    if (it->key.type != BTRFS_ROOT_ITEM_KEY)
        return ASR_OK;
    struct btrfs_root r;
    int rc = btrfs_root_item(it, &r, err);
    return rc == ASR_OK ? keep_block(ctx, r.bytenr, "a tree's", err) : rc;
}

/* The chunk tree's and root tree's root blocks (from the superblock) and every tree's root block
 * the root tree names. (The superblock's log tree needs nothing here: while there is one, nothing
 * is narrowed.) */
static int keep_tree_roots(struct map *m, struct asr_error *err)
{
    struct btrfs_fs *fs = m->fs;
    int rc = keep_block(m, fs->chunk_root, "the chunk tree's", err);
    if (rc == ASR_OK)
        rc = keep_block(m, fs->root, "the root tree's", err);
    if (rc == ASR_OK)
        rc = btrfs_search(fs, fs->root, fs->root_level, NULL, NULL, root_tree_item, m, err);
    return rc;
}

static int dev_extent_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct map *m = ctx;
    struct btrfs_fs *fs = m->fs;
    if (it->key.type != BTRFS_DEV_EXTENT_KEY || it->key.objectid != fs->devid)
        return ASR_OK;
    if (it->size < 32)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: device extent item of %u bytes (dev tree leaf at logical %llu, item %u)",
                               it->size, (unsigned long long)it->leaf, it->slot);
    uint64_t chunk = get_le64(it->data + 16), len = get_le64(it->data + 24);
    const struct btrfs_chunk *c = btrfs_chunk_find(fs, chunk);
    bool match = false;
    if (c && c->logical == chunk && btrfs_stripe_size(c) == len)
        for (unsigned i = 0; i < c->num_stripes && !match; i++)
            match = c->stripes[i].devid == fs->devid && c->stripes[i].offset == it->key.offset;
    if (!match)
        return asr_fail_public(
            err, ASR_E_CORRUPT,
            "btrfs: device extent [%llu, +%llu) for chunk %llu matches no stripe of the chunk tree (dev tree "
            "leaf at logical %llu, item %u)",
            (unsigned long long)it->key.offset, (unsigned long long)len, (unsigned long long)chunk,
            (unsigned long long)it->leaf, it->slot);
    m->dev_extents++;
    return ASR_OK;
}

/* The dev tree's DEV_EXTENT items of this device must be exactly the stripes the chunk tree puts
 * here (each matched above, and as many). Skipped when the dev tree is not all on this device. */
static int check_dev_tree(struct map *m, struct asr_error *err)
{
    struct btrfs_fs *fs = m->fs;
    struct btrfs_root r;
    bool found;
    int rc = btrfs_find_root(fs, BTRFS_DEV_TREE_OBJECTID, &r, &found, err);
    if (rc == ASR_OK && !found)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: the root tree has no dev tree (root tree at logical %llu)",
                               (unsigned long long)fs->root);
    struct btrfs_key min = {fs->devid, BTRFS_DEV_EXTENT_KEY, 0}, max = {fs->devid, BTRFS_DEV_EXTENT_KEY, UINT64_MAX};
    if (rc == ASR_OK)
        rc = btrfs_search(fs, r.bytenr, r.level, &min, &max, dev_extent_item, m, err);
    if (rc == BTRFS_E_ELSEWHERE)
        return ASR_OK;
    if (rc != ASR_OK)
        return rc;
    uint64_t stripes = 0;
    for (size_t k = 0; k < fs->nchunks; k++)
        for (unsigned i = 0; i < fs->chunks[k].num_stripes; i++)
            stripes += fs->chunks[k].stripes[i].devid == fs->devid;
    if (stripes != m->dev_extents)
        return asr_fail_public(
            err, ASR_E_CORRUPT,
            "btrfs: the chunk tree puts %llu stripes on device %llu, its dev tree lists %llu extents",
            (unsigned long long)stripes, (unsigned long long)fs->devid, (unsigned long long)m->dev_extents);
    return ASR_OK;
}

/* Sorts the gathered physical ranges into out (overlaps merged: the boot area and mirrors may
 * lie inside a stripe's range only on a damaged filesystem, and the union is then right). */
static int finish_ranges(struct map *m, struct asr_usedmap *out, struct asr_error *err)
{
    struct rlist *l = &m->phys;
    qsort(l->v, l->n, sizeof *l->v, by_offset);
    for (size_t i = 0; i < l->n;) {
        uint64_t s = l->v[i].offset, e = s + l->v[i].length;
        for (i++; i < l->n && l->v[i].offset <= e; i++)
            if (l->v[i].offset + l->v[i].length > e)
                e = l->v[i].offset + l->v[i].length;
        int rc = asr_ranges_add(&out->used, s, e - s);
        if (rc != ASR_OK)
            return asr_fail_public(err, rc, "btrfs: cannot record the used map (%s)", asr_status_name(rc));
    }
    return ASR_OK;
}

/* "data single, metadata DUP, system DUP": each kind's profiles as its chunks give them. */
static void profiles(const struct btrfs_fs *fs, char *out, size_t cap)
{
    static const struct {
        uint64_t bit;
        const char *name;
    } kinds[] = {{BTRFS_BLOCK_GROUP_DATA, "data"},
                 {BTRFS_BLOCK_GROUP_METADATA, "metadata"},
                 {BTRFS_BLOCK_GROUP_SYSTEM, "system"}};
    static const uint64_t all[] = {0,
                                   BTRFS_BLOCK_GROUP_DUP,
                                   BTRFS_BLOCK_GROUP_RAID0,
                                   BTRFS_BLOCK_GROUP_RAID1,
                                   BTRFS_BLOCK_GROUP_RAID1C3,
                                   BTRFS_BLOCK_GROUP_RAID1C4,
                                   BTRFS_BLOCK_GROUP_RAID10,
                                   BTRFS_BLOCK_GROUP_RAID5,
                                   BTRFS_BLOCK_GROUP_RAID6};
    size_t o = 0;
    out[0] = '\0';
    bool mixed = false;
    for (size_t k = 0; k < fs->nchunks; k++)
        mixed |= (fs->chunks[k].type & (BTRFS_BLOCK_GROUP_DATA | BTRFS_BLOCK_GROUP_METADATA)) ==
                 (BTRFS_BLOCK_GROUP_DATA | BTRFS_BLOCK_GROUP_METADATA);
    for (size_t t = 0; t < sizeof kinds / sizeof kinds[0]; t++) {
        int listed = 0;
        for (size_t p = 0; p < sizeof all / sizeof all[0]; p++) {
            bool seen = false;
            for (size_t k = 0; k < fs->nchunks && !seen; k++)
                seen =
                    (fs->chunks[k].type & kinds[t].bit) && (fs->chunks[k].type & BTRFS_BLOCK_GROUP_PROFILES) == all[p];
            if (!seen)
                continue;
            int n = snprintf(out + o, cap - o, "%s%s", listed ? "+" : o ? ", " : "", listed ? "" : kinds[t].name);
            if (n < 0 || (size_t)n >= cap - o)
                return;
            o += (size_t)n;
            n = snprintf(out + o, cap - o, "%s%s", listed ? "" : " ", btrfs_profile_name(all[p]));
            if (n < 0 || (size_t)n >= cap - o)
                return;
            o += (size_t)n;
            listed = 1;
        }
    }
    if (mixed && o + 22 < cap)
        snprintf(out + o, cap - o, " (mixed block groups)");
}

static void human(uint64_t b, char *out, size_t cap)
{
    if (b >= (1ull << 30))
        snprintf(out, cap, "%.1f GiB", (double)b / (1ull << 30));
    else
        snprintf(out, cap, "%.1f MiB", (double)b / (1ull << 20));
}

static void write_note(const struct map *m, struct asr_usedmap *out)
{
    const struct btrfs_fs *fs = m->fs;
    char prof[128], dev[48] = "", free_txt[24], meta_txt[24], tail[160];
    profiles(fs, prof, sizeof prof);
    if (fs->num_devices > 1)
        snprintf(dev, sizeof dev, "device %llu of %llu, ", (unsigned long long)fs->devid,
                 (unsigned long long)fs->num_devices);
    human(m->left_out[0], free_txt, sizeof free_txt);
    human(m->left_out[1], meta_txt, sizeof meta_txt);
    if (m->src == SRC_NONE)
        snprintf(tail, sizeof tail, "every block group taken whole: %s", m->why_whole);
    else if (!m->narrowed)
        snprintf(tail, sizeof tail, "every block group taken whole (RAID5/6)");
    else
        snprintf(tail, sizeof tail, "left out %s free in data, %s in metadata block groups (%s tree)%s", free_txt,
                 meta_txt, m->src == SRC_FREE_SPACE_TREE ? "free-space" : "extent",
                 m->whole_raid56 ? "; RAID5/6 block groups whole" : "");
    snprintf(out->note, sizeof out->note, "btrfs: %.32s%.80s; %.134s", dev, prof, tail);
}

/* The label (up to 255 bytes of UTF-8) cut to what the map holds, never inside a character. */
static void copy_label(const char *label, char *out, size_t cap)
{
    size_t n = strnlen(label, cap - 1);
    if (n == cap - 1 && label[n]) {
        size_t k = n;
        while (k > 0 && ((unsigned char)label[k] & 0xC0) == 0x80)
            k--; /* label[k] starts the character label[n] belongs to: drop it */
        n = ((unsigned char)label[n] & 0xC0) == 0x80 ? k : n;
    }
    memcpy(out, label, n);
    out[n] = '\0';
}

static int map_volume(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    struct map m = {.w = w};
    int rc = btrfs_open(w, &m.fs, err);
    if (rc != ASR_OK)
        return rc;
    struct btrfs_fs *fs = m.fs;
    if (fs->dev_total_bytes > w->size)
        rc = asr_fail_public(
            err, ASR_E_CORRUPT, "btrfs: device %llu is %llu bytes long by its superblock, past the %llu-byte volume",
            (unsigned long long)fs->devid, (unsigned long long)fs->dev_total_bytes, (unsigned long long)w->size);
    if (rc == ASR_OK)
        rc = check_dev_tree(&m, err);
    if (rc == ASR_OK)
        rc = read_allocation(&m, err);
    if (rc == ASR_OK)
        rc = rl_add(&m.phys, 0, w->size < BOOT_AREA ? w->size : BOOT_AREA, err);
    static const uint64_t mirrors[] = {BTRFS_SUPER_MIRROR1, BTRFS_SUPER_MIRROR2};
    for (size_t i = 0; i < 2 && rc == ASR_OK; i++)
        if (mirrors[i] + BTRFS_SUPER_SIZE <= w->size)
            rc = rl_add(&m.phys, mirrors[i], BTRFS_SUPER_SIZE, err);
    if (rc == ASR_OK && m.src != SRC_NONE)
        rc = keep_tree_roots(&m, err);
    if (rc == ASR_OK)
        rc = map_chunks(&m, err);
    if (rc == ASR_OK)
        rc = finish_ranges(&m, out, err);
    if (rc == BTRFS_E_ELSEWHERE) /* never leaves engine/fs/ as such */
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "%s", err ? err->msg : "btrfs: metadata on another device");
    if (rc == ASR_OK) {
        out->block_size = fs->sectorsize;
        snprintf(out->fs_type, sizeof out->fs_type, "btrfs");
        asr_guid_text(fs->fsid, 0, out->fs_uuid);
        copy_label(fs->label, out->fs_label, sizeof out->fs_label);
        write_note(&m, out);
    }
    free(m.logical.v);
    free(m.phys.v);
    btrfs_close(fs);
    return rc;
}

int asr_btrfs_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = map_volume(w, out, err);
    if (rc != ASR_OK) {
        asr_ranges_free(&out->used);
        out->note[0] = '\0';
    }
    return rc;
}
