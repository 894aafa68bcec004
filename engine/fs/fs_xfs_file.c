/* Small files read by path from XFS (fs_file.h), with the superblock checked as the used map
 * checks it (fs_xfs_sb.c): inodes found by number (v1, v2 and v3 dinodes; v3 must pass its CRC
 * and name itself), forks mapped from their extent lists or their block-map B+trees, and
 * directories in every format read alike once mapped: short-form ones from the inode, block,
 * leaf, node and B+tree ones through their data blocks (every entry lives in one; the hash
 * indexes past 32 GiB are not needed to find a name among a few thousand). Symbolic links are
 * followed (in the inode or in blocks; absolute ones from the filesystem's root, 8 at most per
 * lookup). File data is read to its size, holes and unwritten extents as zeros. A log still to
 * recover is not replayed: the filesystem is read as it stands. Every read goes through the
 * window and counts against a budget per call, so metadata that points at itself ends a read. */
#include "fs_reader.h"
#include "xfs_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XFS_DINODE_MAGIC 0x494Eu /* "IN" */
#define XFS_BMAP_MAGIC 0x424D4150u     /* "BMAP": v4 block-map btree block */
#define XFS_BMAP_CRC_MAGIC 0x424D4133u /* "BMA3" */
#define XFS_DIR2_BLOCK_MAGIC 0x58443242u /* "XD2B": single-block directory */
#define XFS_DIR2_DATA_MAGIC 0x58443244u  /* "XD2D" */
#define XFS_DIR3_BLOCK_MAGIC 0x58444233u /* "XDB3" */
#define XFS_DIR3_DATA_MAGIC 0x58444433u  /* "XDD3" */
#define XFS_SYMLINK_MAGIC 0x58534C4Du    /* "XSLM" */
#define XFS_DIR_LEAF_OFFSET (32ull << 30) /* directory data blocks lie below this byte offset */
#define XFS_SYMLINK_MAXLEN 1024u
#define MAX_LINKS 8                       /* symbolic links followed in one lookup */
#define MAX_EXTENTS (1u << 18)            /* of one fork: 256 K extents, 6 MiB of memory */
#define BMBT_MAX_LEVELS 9u
/* Reads one call may make beyond the file's own data: a large /etc is a few hundred KiB of
 * directory, a 20,000-entry directory about 1 MiB. */
#define READ_BUDGET (64ull << 20)

#define S_TYPE 0170000u
#define S_DIR 0040000u
#define S_REG 0100000u
#define S_LNK 0120000u

enum { FMT_LOCAL = 1, FMT_EXTENTS = 2, FMT_BTREE = 3 };

struct xfs_vol {
    struct fs_vol base; /* first: a struct fs_vol * points here */
    const struct asr_window *w;
    struct xfs_geom g;
    uint64_t left; /* bytes the current call may still read */
};

struct xinode {
    uint64_t ino;
    uint16_t mode;
    uint8_t format;
    uint64_t size, nextents;
    uint8_t raw[2048]; /* the whole inode (at most 2 KiB: checked in the superblock) */
    const uint8_t *fork;
    size_t fork_len;
};

struct xext {
    uint64_t off, block, count; /* in filesystem blocks: logical start, first block, length */
    bool unwritten;
};

struct extents {
    struct xext *v;
    size_t n, cap;
};

static int vread(struct xfs_vol *v, const char *what, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    if (len > v->left)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: reading %s would pass the %llu MiB one lookup may read "
                               "(metadata that repeats itself?)",
                               what, READ_BUDGET >> 20);
    v->left -= len;
    return asr_window_read(v->w, what, off, buf, len, err);
}

/* ---- inodes --------------------------------------------------------------------------------- */

static int read_inode(struct xfs_vol *v, uint64_t ino, struct xinode *ip, struct asr_error *err)
{
    const struct xfs_geom *g = &v->g;
    uint32_t agino_bits = g->agblklog + g->inopblog;
    uint64_t agno = ino >> agino_bits, agino = ino & ((1ull << agino_bits) - 1);
    uint64_t agbno = agino >> g->inopblog;
    if (ino == 0 || agno >= g->agcount || agbno >= xfs_ag_blocks(g, (uint32_t)agno))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu lies in no AG", (unsigned long long)ino);
    uint64_t off = xfs_ag_offset(g, (uint32_t)agno) + (agbno << g->block_log) +
                   ((agino & ((1ull << g->inopblog) - 1)) << g->inode_log);
    int rc = vread(v, "an XFS inode", off, ip->raw, g->inode_size, err);
    if (rc != ASR_OK)
        return rc;
    const uint8_t *d = ip->raw;
    unsigned version = d[4];
    if (xfs_be16(d) != XFS_DINODE_MAGIC || version < 1 || version > 3 || (version == 3) != g->v5)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: magic 0x%04x version %u, not an inode of this "
                               "filesystem (volume offset %llu)",
                               (unsigned long long)ino, xfs_be16(d), version, (unsigned long long)off);
    if (version == 3 && !xfs_crc_ok(d, g->inode_size, 100))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: CRC mismatch (volume offset %llu)",
                               (unsigned long long)ino, (unsigned long long)off);
    if (version == 3 && (xfs_be64(d + 152) != ino || memcmp(d + 160, g->meta_uuid, 16)))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu names itself inode %llu or another filesystem",
                               (unsigned long long)ino, (unsigned long long)xfs_be64(d + 152));
    size_t lit = version == 3 ? 176 : 100, room = g->inode_size - lit, forkoff = (size_t)d[82] * 8;
    if (forkoff > room)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: attribute fork offset %zu past the inode",
                               (unsigned long long)ino, forkoff);
    ip->ino = ino;
    ip->mode = xfs_be16(d + 2);
    ip->format = d[5];
    ip->size = xfs_be64(d + 56);
    bool big = version == 3 && (xfs_be64(d + 120) & 0x10); /* XFS_DIFLAG2_NREXT64 */
    ip->nextents = big ? xfs_be64(d + 24) : xfs_be32(d + 76);
    ip->fork = d + lit;
    ip->fork_len = forkoff ? forkoff : room;
    return ASR_OK;
}

/* ---- forks ---------------------------------------------------------------------------------- */

static int add_extent(struct xfs_vol *v, const struct xinode *ip, struct extents *x, const uint8_t *rec,
                      struct asr_error *err)
{
    uint64_t l0 = xfs_be64(rec), l1 = xfs_be64(rec + 8);
    struct xext e = {(l0 & ~(1ull << 63)) >> 9, (l0 & 0x1FF) << 43 | l1 >> 21, l1 & 0x1FFFFF, (l0 >> 63) != 0};
    const struct xfs_geom *g = &v->g;
    uint64_t agbno = e.block & ((1ull << g->agblklog) - 1), at;
    const struct xext *last = x->n ? &x->v[x->n - 1] : NULL;
    if (e.count == 0 || !xfs_fsb_offset(g, e.block, &at) ||
        agbno + e.count > xfs_ag_blocks(g, (uint32_t)(e.block >> g->agblklog)) ||
        (last && e.off < last->off + last->count))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "xfs: inode %llu: extent of %llu blocks at block %llu (file block %llu) leaves its AG "
                               "or overlaps the one before",
                               (unsigned long long)ip->ino, (unsigned long long)e.count, (unsigned long long)e.block,
                               (unsigned long long)e.off);
    if (x->n == x->cap) {
        if (x->cap >= MAX_EXTENTS)
            return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: more than %u extents",
                                   (unsigned long long)ip->ino, MAX_EXTENTS);
        size_t cap = x->cap ? x->cap * 2 : 16;
        struct xext *nv = realloc(x->v, cap * sizeof *nv);
        if (!nv)
            return asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory for extents");
        x->v = nv;
        x->cap = cap;
    }
    x->v[x->n++] = e;
    return ASR_OK;
}

/* A block-map btree block below the root: long-form header, extents in leaves. Extents must
 * come in increasing file order (add_extent), so a block reached twice ends the walk. */
static int bmbt_walk(struct xfs_vol *v, const struct xinode *ip, uint64_t fsb, unsigned level, struct extents *x,
                     uint8_t **bufs, struct asr_error *err)
{
    const struct xfs_geom *g = &v->g;
    uint64_t off;
    if (!xfs_fsb_offset(g, fsb, &off))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: block-map btree block %llu outside the "
                               "filesystem",
                               (unsigned long long)ip->ino, (unsigned long long)fsb);
    uint8_t *b = bufs[level];
    int rc = vread(v, "an XFS block-map btree block", off, b, g->block_size, err);
    if (rc != ASR_OK)
        return rc;
    size_t hdr = g->v5 ? 72 : 24;
    uint32_t n = xfs_be16(b + 6), max = (uint32_t)((g->block_size - hdr) / 16);
    bool bad = xfs_be32(b) != (g->v5 ? XFS_BMAP_CRC_MAGIC : XFS_BMAP_MAGIC) || xfs_be16(b + 4) != level ||
               n == 0 || n > max;
    if (!bad && g->v5)
        bad = !xfs_crc_ok(b, g->block_size, 64) || xfs_be64(b + 24) != off / XFS_BB ||
              memcmp(b + 40, g->meta_uuid, 16) || xfs_be64(b + 56) != ip->ino;
    if (bad)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "xfs: inode %llu: block-map btree block %llu fails its checks (magic, level %u, %u "
                               "records, CRC or owner)",
                               (unsigned long long)ip->ino, (unsigned long long)fsb, level, n);
    for (uint32_t i = 0; i < n && rc == ASR_OK; i++)
        rc = level ? bmbt_walk(v, ip, xfs_be64(b + hdr + 8 * max + 8 * i), level - 1, x, bufs, err)
                   : add_extent(v, ip, x, b + hdr + 16 * i, err);
    return rc;
}

/* The root in the inode: level, record count, keys, then pointers after as many keys as fit. */
static int bmbt_root(struct xfs_vol *v, const struct xinode *ip, struct extents *x, struct asr_error *err)
{
    const uint8_t *r = ip->fork;
    unsigned level = xfs_be16(r), n = xfs_be16(r + 2);
    size_t max = (ip->fork_len - 4) / 16;
    if (level == 0 || level > BMBT_MAX_LEVELS || n == 0 || n > max)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: block-map btree root of level %u with %u records",
                               (unsigned long long)ip->ino, level, n);
    uint8_t *bufs[BMBT_MAX_LEVELS] = {0};
    int rc = ASR_OK;
    for (unsigned i = 0; i < level && rc == ASR_OK; i++)
        if (!(bufs[i] = malloc(v->g.block_size)))
            rc = asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory for btree blocks");
    for (unsigned i = 0; i < n && rc == ASR_OK; i++)
        rc = bmbt_walk(v, ip, xfs_be64(r + 4 + 8 * max + 8 * i), level - 1, x, bufs, err);
    for (unsigned i = 0; i < level; i++)
        free(bufs[i]);
    return rc;
}

/* The data fork's extents, in file order. */
static int map_fork(struct xfs_vol *v, const struct xinode *ip, struct extents *x, struct asr_error *err)
{
    *x = (struct extents){0};
    int rc = ASR_OK;
    if (ip->format == FMT_EXTENTS) {
        if (ip->nextents > ip->fork_len / 16)
            return asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: %llu extents do not fit its fork",
                                   (unsigned long long)ip->ino, (unsigned long long)ip->nextents);
        for (size_t i = 0; i < ip->nextents && rc == ASR_OK; i++)
            rc = add_extent(v, ip, x, ip->fork + 16 * i, err);
    } else if (ip->format == FMT_BTREE) {
        rc = bmbt_root(v, ip, x, err);
    } else {
        rc = asr_fail_public(err, ASR_E_CORRUPT, "xfs: inode %llu: data fork format %u where extents are expected",
                             (unsigned long long)ip->ino, ip->format);
    }
    if (rc != ASR_OK) {
        free(x->v);
        *x = (struct extents){0};
    }
    return rc;
}

/* len bytes at byte pos of a mapped fork into buf: holes and unwritten extents stay as they are
 * in buf (the caller zeroes it). */
static int read_mapped(struct xfs_vol *v, const struct extents *x, uint64_t pos, uint8_t *buf, uint64_t len,
                       const char *what, struct asr_error *err)
{
    uint32_t bl = v->g.block_log;
    for (size_t i = 0; i < x->n; i++) {
        const struct xext *e = &x->v[i];
        uint64_t from = e->off << bl, to = from + (e->count << bl);
        uint64_t a = from > pos ? from : pos, b = to < pos + len ? to : pos + len, at;
        if (a >= b || e->unwritten)
            continue;
        xfs_fsb_offset(&v->g, e->block, &at); /* checked by add_extent */
        int rc = vread(v, what, at + (a - from), buf + (a - pos), (size_t)(b - a), err);
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

/* ---- directories ---------------------------------------------------------------------------- */

typedef int (*entry_fn)(void *ctx, const char *name, size_t n, uint64_t ino, int ftype);

/* Short-form entries: name length, a 2-byte offset, the name, a file type byte when the
 * filesystem has them, the inode number (4 or 8 bytes). */
static int walk_shortform(struct xfs_vol *v, const struct xinode *ip, entry_fn fn, void *ctx, struct asr_error *err)
{
    const uint8_t *p = ip->fork, *end = ip->fork + (ip->size < ip->fork_len ? ip->size : ip->fork_len);
    if (end - p < 6)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: directory inode %llu: short-form header cut",
                               (unsigned long long)ip->ino);
    unsigned count = p[0], wide = p[1] ? 8 : 4;
    uint64_t parent = wide == 8 ? xfs_be64(p + 2) : xfs_be32(p + 2);
    p += 2 + wide;
    if (fn(ctx, "..", 2, parent, 2))
        return ASR_OK;
    size_t ft = v->g.ftype ? 1 : 0;
    for (unsigned i = 0; i < count; i++) {
        if (end - p < 3 || p[0] == 0 || (size_t)(end - p) < 3 + p[0] + ft + wide)
            return asr_fail_public(err, ASR_E_CORRUPT, "xfs: directory inode %llu: short-form entry %u runs past "
                                   "the directory",
                                   (unsigned long long)ip->ino, i);
        size_t n = p[0];
        const uint8_t *name = p + 3, *after = name + n;
        int type = ft ? after[0] : 0;
        uint64_t ino = wide == 8 ? xfs_be64(after + ft) : xfs_be32(after + ft);
        if (fn(ctx, (const char *)name, n, ino, type))
            return ASR_OK;
        p = after + ft + wide;
    }
    return ASR_OK;
}

/* One directory data block (dir_block_log blocks) of a block-form or multi-block directory. */
static int data_block(struct xfs_vol *v, const struct xinode *ip, const uint8_t *b, size_t size, uint64_t daddr,
                      entry_fn fn, void *ctx, int *stop, struct asr_error *err)
{
    const struct xfs_geom *g = &v->g;
    uint32_t magic = xfs_be32(b);
    bool block_form = magic == (g->v5 ? XFS_DIR3_BLOCK_MAGIC : XFS_DIR2_BLOCK_MAGIC);
    if (!block_form && magic != (g->v5 ? XFS_DIR3_DATA_MAGIC : XFS_DIR2_DATA_MAGIC))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: directory inode %llu: data block at daddr %llu has magic "
                               "0x%08x",
                               (unsigned long long)ip->ino, (unsigned long long)daddr, magic);
    if (g->v5 && (!xfs_crc_ok(b, size, 4) || xfs_be64(b + 8) != daddr || memcmp(b + 24, g->meta_uuid, 16) ||
                  xfs_be64(b + 40) != ip->ino))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: directory inode %llu: data block at daddr %llu fails its "
                               "CRC or names another place",
                               (unsigned long long)ip->ino, (unsigned long long)daddr);
    size_t pos = g->v5 ? 64 : 16, end = size;
    if (block_form) { /* the leaf entries and a tail (count, stale) end the block */
        uint64_t count = xfs_be32(b + size - 8);
        if (count > (size - pos - 8) / 8)
            return asr_fail_public(err, ASR_E_CORRUPT, "xfs: directory inode %llu: block-form leaf of %llu entries",
                                   (unsigned long long)ip->ino, (unsigned long long)count);
        end = size - 8 - (size_t)count * 8;
    }
    size_t ft = g->ftype ? 1 : 0;
    while (pos + 8 <= end && !*stop) {
        if (xfs_be16(b + pos) == 0xFFFF) { /* unused space: tag, length */
            size_t len = xfs_be16(b + pos + 2);
            if (len < 8 || len % 8 || len > end - pos)
                return asr_fail_public(err, ASR_E_CORRUPT, "xfs: directory inode %llu: free space of %zu bytes at "
                                       "offset %zu of the block at daddr %llu",
                                       (unsigned long long)ip->ino, len, pos, (unsigned long long)daddr);
            pos += len;
            continue;
        }
        /* An entry is 16 bytes at least (inode, length, a name byte, tag): its length byte, at
         * 8, must lie inside the block before it is read. */
        size_t n = end - pos >= 16 ? b[pos + 8] : 0, len = (8 + 1 + n + ft + 2 + 7) / 8 * 8;
        if (n == 0 || len > end - pos)
            return asr_fail_public(err, ASR_E_CORRUPT, "xfs: directory inode %llu: entry at offset %zu of the block at "
                                   "daddr %llu runs past it",
                                   (unsigned long long)ip->ino, pos, (unsigned long long)daddr);
        *stop = fn(ctx, (const char *)b + pos + 9, n, xfs_be64(b + pos), ft ? b[pos + 9 + n] : 0);
        pos += len;
    }
    return ASR_OK;
}

static int walk_blocks(struct xfs_vol *v, const struct xinode *ip, entry_fn fn, void *ctx, struct asr_error *err)
{
    struct extents x;
    int rc = map_fork(v, ip, &x, err);
    if (rc != ASR_OK)
        return rc;
    const struct xfs_geom *g = &v->g;
    uint64_t per = 1ull << g->dir_block_log, size = (uint64_t)g->block_size << g->dir_block_log;
    uint64_t limit = XFS_DIR_LEAF_OFFSET >> g->block_log, next = 0; /* first directory block not yet read */
    uint8_t *b = malloc((size_t)size);
    if (!b)
        rc = asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory for a directory block");
    int stop = 0;
    for (size_t i = 0; i < x.n && rc == ASR_OK && !stop; i++) {
        uint64_t first = x.v[i].off / per, end = (x.v[i].off + x.v[i].count + per - 1) / per;
        for (uint64_t d = first > next ? first : next; d < end && d * per < limit && rc == ASR_OK && !stop; d++) {
            memset(b, 0, (size_t)size);
            rc = read_mapped(v, &x, d * per << g->block_log, b, size, "an XFS directory block", err);
            uint64_t at = 0;
            if (rc == ASR_OK && x.v[i].off <= d * per)
                xfs_fsb_offset(g, x.v[i].block + (d * per - x.v[i].off), &at);
            if (rc == ASR_OK)
                rc = data_block(v, ip, b, (size_t)size, at / XFS_BB, fn, ctx, &stop, err);
            next = d + 1;
        }
    }
    free(b);
    free(x.v);
    return rc;
}

static bool is_dir(const struct xinode *ip) { return (ip->mode & S_TYPE) == S_DIR; }

/* Every entry of directory ip, "." and ".." included where the format stores them (short-form
 * directories store only the parent, given as ".."). */
static int walk_dir(struct xfs_vol *v, const struct xinode *ip, entry_fn fn, void *ctx, struct asr_error *err)
{
    if (ip->format == FMT_LOCAL)
        return walk_shortform(v, ip, fn, ctx, err);
    return walk_blocks(v, ip, fn, ctx, err);
}

/* ---- lookups -------------------------------------------------------------------------------- */

struct find {
    const char *name;
    size_t n;
    uint64_t ino;
    bool found;
};

static int match(void *ctx, const char *name, size_t n, uint64_t ino, int ftype)
{
    (void)ftype;
    struct find *f = ctx;
    if (n != f->n || memcmp(name, f->name, n))
        return 0;
    f->ino = ino;
    f->found = true;
    return 1;
}

/* A symbolic link's target (at most XFS_SYMLINK_MAXLEN bytes), NUL-terminated into out. */
static int read_link(struct xfs_vol *v, const struct xinode *ip, char *out, struct asr_error *err)
{
    if (ip->size == 0 || ip->size > XFS_SYMLINK_MAXLEN)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: symbolic link inode %llu of %llu bytes",
                               (unsigned long long)ip->ino, (unsigned long long)ip->size);
    size_t size = (size_t)ip->size;
    if (ip->format == FMT_LOCAL) {
        if (size > ip->fork_len)
            return asr_fail_public(err, ASR_E_CORRUPT, "xfs: symbolic link inode %llu: %zu bytes in a %zu-byte fork",
                                   (unsigned long long)ip->ino, size, ip->fork_len);
        memcpy(out, ip->fork, size);
        out[size] = '\0';
        return ASR_OK;
    }
    struct extents x;
    int rc = map_fork(v, ip, &x, err);
    const struct xfs_geom *g = &v->g;
    size_t hdr = g->v5 ? 56 : 0, got = 0;
    uint8_t *b = rc == ASR_OK ? calloc(1, g->block_size) : NULL;
    if (rc == ASR_OK && !b)
        rc = asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory for a symbolic link");
    /* Each block: on v5 a header (magic, offset, bytes, CRC, UUID, owner, daddr, LSN) first. */
    for (uint64_t k = 0; rc == ASR_OK && got < size; k++) {
        memset(b, 0, g->block_size);
        rc = read_mapped(v, &x, k << g->block_log, b, g->block_size, "an XFS symbolic link block", err);
        size_t take = size - got < g->block_size - hdr ? size - got : g->block_size - hdr;
        if (rc == ASR_OK && g->v5 &&
            (xfs_be32(b) != XFS_SYMLINK_MAGIC || xfs_be32(b + 4) != got || xfs_be32(b + 8) < take ||
             !xfs_crc_ok(b, g->block_size, 12) || xfs_be64(b + 32) != ip->ino))
            rc = asr_fail_public(err, ASR_E_CORRUPT, "xfs: symbolic link inode %llu: block %llu fails its checks",
                                 (unsigned long long)ip->ino, (unsigned long long)k);
        if (rc == ASR_OK)
            memcpy(out + got, b + hdr, take);
        got += take;
    }
    out[size] = '\0';
    free(b);
    free(x.v);
    return rc;
}

struct walk_state {
    int links;
    const char *path; /* the caller's, for messages */
};

static int resolve(struct xfs_vol *v, uint64_t dir, const char *path, bool follow_last, struct walk_state *s,
                   struct xinode *out, struct asr_error *err);

/* The inode a name in directory ip (already read) leads to, symbolic links followed when asked. */
static int step(struct xfs_vol *v, struct xinode *ip, const char *name, size_t n, bool follow, struct walk_state *s,
                struct asr_error *err)
{
    if (!is_dir(ip))
        return asr_fail_public(err, FS_E_NOT_FOUND, "xfs: %.200s: not found (a component is not a directory)",
                               s->path);
    struct find f = {name, n, 0, false};
    int rc = walk_dir(v, ip, match, &f, err);
    if (rc != ASR_OK)
        return rc;
    if (!f.found)
        return asr_fail_public(err, FS_E_NOT_FOUND, "xfs: %.200s: not found", s->path);
    uint64_t parent = ip->ino;
    if ((rc = read_inode(v, f.ino, ip, err)) != ASR_OK || !follow || (ip->mode & S_TYPE) != S_LNK)
        return rc;
    if (++s->links > MAX_LINKS)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: %.200s: symbolic links nest more than %d deep (a loop?)",
                               s->path, MAX_LINKS);
    char target[XFS_SYMLINK_MAXLEN + 1];
    if ((rc = read_link(v, ip, target, err)) != ASR_OK)
        return rc;
    return resolve(v, target[0] == '/' ? v->g.rootino : parent, target, true, s, ip, err);
}

/* The inode path leads to from directory inode dir ('/' and "." skipped). */
static int resolve(struct xfs_vol *v, uint64_t dir, const char *path, bool follow_last, struct walk_state *s,
                   struct xinode *out, struct asr_error *err)
{
    int rc = read_inode(v, dir, out, err);
    for (const char *p = path; rc == ASR_OK && *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        const char *name = p;
        p += n;
        while (*p == '/')
            p++;
        if (n == 0 || (n == 1 && name[0] == '.'))
            continue;
        rc = step(v, out, name, n, *p || follow_last, s, err);
    }
    return rc;
}

static int lookup(struct xfs_vol *v, const char *path, struct xinode *ip, struct asr_error *err)
{
    v->left = READ_BUDGET;
    struct walk_state s = {0, path};
    return resolve(v, v->g.rootino, path, true, &s, ip, err);
}

/* Damage met on the way (what and where) said of the path asked for, too. The path's own
 * answers (not found, not a file) name it already. */
static int name_path(int rc, const char *path, struct asr_error *err)
{
    if (rc == ASR_OK || rc >= FS_E_NOT_FOUND || !err ||
        (strnlen(err->msg, 5) == 5 && !strncmp(err->msg + 5, path, strlen(path))))
        return rc;
    char inner[sizeof err->msg];
    snprintf(inner, sizeof inner, "%s", strncmp(err->msg, "xfs: ", 5) ? err->msg : err->msg + 5);
    return asr_fail_public(err, rc, "xfs: %.200s: %s", path, inner);
}

/* ---- the interface -------------------------------------------------------------------------- */

static int xfs_vol_read(struct fs_vol *base, const char *path, size_t cap, uint8_t **out, size_t *len,
                        struct asr_error *err)
{
    struct xfs_vol *v = (struct xfs_vol *)base;
    struct xinode *ip = malloc(sizeof *ip);
    if (!ip)
        return asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory");
    int rc = lookup(v, path, ip, err);
    if (rc == ASR_OK && (ip->mode & S_TYPE) != S_REG)
        rc = asr_fail_public(err, FS_E_NOT_FILE, "xfs: %.200s: %s, not a regular file", path,
                             is_dir(ip) ? "a directory" : "a special file");
    if (rc == ASR_OK && (xfs_be16(ip->raw + 90) & 1)) /* XFS_DIFLAG_REALTIME */
        rc = asr_fail_public(err, ASR_E_CORRUPT, "xfs: %.200s: its data is on the realtime device, not read here",
                             path);
    if (rc == ASR_OK && ip->size > cap)
        rc = asr_fail_public(err, ASR_E_LIMIT, "xfs: %.200s: %llu bytes, over the %zu-byte limit", path,
                             (unsigned long long)ip->size, cap);
    struct extents x = {0};
    uint8_t *buf = NULL;
    if (rc == ASR_OK)
        rc = map_fork(v, ip, &x, err);
    if (rc == ASR_OK && !(buf = calloc(1, (size_t)ip->size + 1)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "xfs: %.200s: out of memory for %llu bytes", path,
                             (unsigned long long)ip->size);
    if (rc == ASR_OK) {
        v->left += ip->size;
        rc = read_mapped(v, &x, 0, buf, ip->size, "an XFS file", err);
    }
    if (rc == ASR_OK) {
        *out = buf;
        *len = (size_t)ip->size;
    } else {
        free(buf);
    }
    free(x.v);
    free(ip);
    return name_path(rc, path, err);
}

struct list {
    struct xfs_vol *v;
    fs_dir_fn fn;
    void *ctx;
    int rc;
    struct asr_error *err;
};

static enum fs_kind kind_of(unsigned mode)
{
    switch (mode & S_TYPE) {
    case S_REG:
        return FS_KIND_FILE;
    case S_DIR:
        return FS_KIND_DIR;
    case S_LNK:
        return FS_KIND_SYMLINK;
    default:
        return FS_KIND_OTHER;
    }
}

static int list_entry(void *ctx, const char *name, size_t n, uint64_t ino, int ftype)
{
    struct list *l = ctx;
    if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.') || memchr(name, '\0', n))
        return 0;
    char buf[256];
    memcpy(buf, name, n); /* n is one byte: at most 255 */
    buf[n] = '\0';
    enum fs_kind kind = ftype == 1 ? FS_KIND_FILE : ftype == 2 ? FS_KIND_DIR : ftype == 7 ? FS_KIND_SYMLINK
                                                                                           : FS_KIND_OTHER;
    if (!l->v->g.ftype) { /* no type in the entry: the inode says */
        struct xinode *ip = malloc(sizeof *ip);
        l->rc = ip ? read_inode(l->v, ino, ip, l->err) : asr_fail_public(l->err, ASR_E_NOMEM, "xfs: out of memory");
        if (l->rc == ASR_OK)
            kind = kind_of(ip->mode);
        free(ip);
        if (l->rc != ASR_OK)
            return 1;
    }
    return l->fn(l->ctx, buf, kind);
}

static int xfs_vol_list(struct fs_vol *base, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err)
{
    struct xfs_vol *v = (struct xfs_vol *)base;
    struct xinode *ip = malloc(sizeof *ip);
    if (!ip)
        return asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory");
    int rc = lookup(v, path, ip, err);
    if (rc == ASR_OK && !is_dir(ip))
        rc = asr_fail_public(err, FS_E_NOT_DIR, "xfs: %.200s: not a directory", path);
    struct list l = {v, fn, ctx, ASR_OK, err};
    if (rc == ASR_OK)
        rc = walk_dir(v, ip, list_entry, &l, err);
    free(ip);
    return name_path(rc == ASR_OK ? l.rc : rc, path, err);
}

static void xfs_vol_close(struct fs_vol *base) { free(base); }

static const struct fs_vol_ops xfs_vol_ops = {xfs_vol_read, xfs_vol_list, xfs_vol_close};

int fs_xfs_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err)
{
    *out = NULL;
    struct xfs_geom g;
    int rc = xfs_read_sb(w, &g, err);
    /* A version or feature not read here is, to this interface, a volume it cannot look into:
     * ASR_E_UNSUPPORTED would say the type has no reader at all (fs_file.h). */
    if (rc == ASR_E_UNSUPPORTED && err)
        err->code = ASR_E_CORRUPT;
    if (rc != ASR_OK)
        return rc == ASR_E_UNSUPPORTED ? ASR_E_CORRUPT : rc;
    struct xfs_vol *v = calloc(1, sizeof *v);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory");
    v->base.ops = &xfs_vol_ops;
    v->w = w;
    v->g = g;
    *out = &v->base;
    return ASR_OK;
}
