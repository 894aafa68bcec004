/* ext3/4: the internal journal's log, read as jbd2's recovery would read it, without writing
 * anything: which blocks a replay would overwrite and where the journal holds their new
 * contents. The used map then reads the filesystem a second time as it will be once recovered
 * (the window I/O manager substitutes those blocks), so that blocks the replayed bitmaps and
 * inodes use are captured though the bitmaps on disk do not show them yet. */
#include "fs_ext_internal.h"
#include "grow.h"

#include <stdlib.h>
#include <string.h>

#define JBD2_MAGIC 0xC03B3998u
#define JBD2_DESCRIPTOR 1u
#define JBD2_COMMIT 2u
#define JBD2_SUPERBLOCK_V1 3u
#define JBD2_SUPERBLOCK_V2 4u
#define JBD2_REVOKE 5u

#define JBD2_INCOMPAT_REVOKE 0x01u
#define JBD2_INCOMPAT_64BIT 0x02u
#define JBD2_INCOMPAT_ASYNC_COMMIT 0x04u
#define JBD2_INCOMPAT_CSUM_V2 0x08u
#define JBD2_INCOMPAT_CSUM_V3 0x10u
#define JBD2_INCOMPAT_FAST_COMMIT 0x20u
#define JBD2_INCOMPAT_KNOWN                                                                                        \
    (JBD2_INCOMPAT_REVOKE | JBD2_INCOMPAT_64BIT | JBD2_INCOMPAT_ASYNC_COMMIT | JBD2_INCOMPAT_CSUM_V2 |           \
     JBD2_INCOMPAT_CSUM_V3)

#define JBD2_FLAG_ESCAPE 1u
#define JBD2_FLAG_SAME_UUID 2u
#define JBD2_FLAG_LAST_TAG 8u

/* The longest journal read: mke2fs makes at most 1 GiB (2^18 blocks of 4 KiB); 2^24 blocks is 16
 * GiB of 1 KiB blocks or 64 GiB of 4 KiB ones, and 400 MiB of copies in memory at most. */
#define JBD2_MAX_BLOCKS (1u << 24)

struct tag {
    uint64_t target, from; /* from: the journal's logical block until resolved */
    uint32_t seq;
    bool escaped;
};

struct revoke {
    uint64_t block;
    uint32_t seq;
};

struct log {
    ext2_filsys fs;
    const struct ext_io *io;
    struct ext2_inode inode;
    ext2_ino_t ino;
    uint32_t first, last, incompat;
    struct tag *tags;
    size_t ntags, cap_tags, committed; /* tags[0..committed) belong to committed transactions */
    struct revoke *revokes;
    size_t nrevokes, cap_revokes, committed_revokes;
    struct asr_error *err;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void ext_replay_free(struct ext_replay *r)
{
    if (!r)
        return;
    free(r->v);
    asr_ranges_free(&r->named);
    memset(r, 0, sizeof *r);
}

/* Reads the journal's logical block lblk: found through its inode's map, inside the filesystem. */
static int read_jblock(struct log *l, uint64_t lblk, uint8_t *buf, blk64_t *phys_out)
{
    blk64_t phys = 0;
    errcode_t e = ext2fs_bmap2(l->fs, l->ino, &l->inode, NULL, 0, lblk, NULL, &phys);
    if (e)
        return ext_fail(l->err, l->io, "mapping a journal block", e);
    if (phys < l->fs->super->s_first_data_block || phys >= ext2fs_blocks_count(l->fs->super))
        return asr_fail_public(l->err, ASR_E_CORRUPT, "ext: journal block %llu maps to block %llu, outside the "
                                                      "filesystem",
                               (unsigned long long)lblk, (unsigned long long)phys);
    if (phys_out)
        *phys_out = phys;
    if (!buf)
        return ASR_OK;
    e = io_channel_read_blk64(l->fs->io, phys, 1, buf);
    return e ? ext_fail(l->err, l->io, "reading the journal", e) : ASR_OK;
}

static int nomem(struct asr_error *err)
{
    return asr_fail_public(err, ASR_E_NOMEM, "ext: out of memory reading the journal");
}

static size_t tag_bytes(uint32_t incompat)
{
    if (incompat & JBD2_INCOMPAT_CSUM_V3)
        return 16;
    size_t sz = 12 + (incompat & JBD2_INCOMPAT_CSUM_V2 ? 2 : 0);
    return incompat & JBD2_INCOMPAT_64BIT ? sz : sz - 4;
}

static uint32_t wrap(const struct log *l, uint64_t b)
{
    return (uint32_t)(b >= l->last ? b - (l->last - l->first) : b);
}

/* A descriptor block's tags: each names the filesystem block that the next log block replaces.
 * Returns the log position after the last data block. */
static int read_descriptor(struct log *l, const uint8_t *buf, uint32_t seq, uint32_t *at, uint64_t *steps)
{
    size_t bs = l->fs->blocksize, tb = tag_bytes(l->incompat);
    size_t end = bs - (l->incompat & (JBD2_INCOMPAT_CSUM_V2 | JBD2_INCOMPAT_CSUM_V3) ? 4 : 0);
    for (size_t off = 12; off + tb <= end;) {
        const uint8_t *t = buf + off;
        uint32_t flags = l->incompat & JBD2_INCOMPAT_CSUM_V3 ? be32(t + 4) : (uint32_t)(t[6] << 8 | t[7]);
        uint64_t target = be32(t);
        if (l->incompat & JBD2_INCOMPAT_64BIT)
            target |= (uint64_t)be32(t + 8) << 32; /* t_blocknr_high in both tag layouts */
        *at = wrap(l, (uint64_t)*at + 1);
        if (++*steps > l->last - l->first)
            return asr_fail_public(l->err, ASR_E_CORRUPT, "ext: the journal's log is longer than the journal");
        struct tag *tags = asr_grow(l->tags, &l->cap_tags, l->ntags + 1, sizeof *tags, 256);
        if (!tags)
            return nomem(l->err);
        l->tags = tags;
        l->tags[l->ntags++] = (struct tag){target, *at, seq, flags & JBD2_FLAG_ESCAPE};
        off += tb + (flags & JBD2_FLAG_SAME_UUID ? 0 : 16);
        if (flags & JBD2_FLAG_LAST_TAG)
            break;
    }
    return ASR_OK;
}

static int read_revoke(struct log *l, const uint8_t *buf, uint32_t seq)
{
    size_t bs = l->fs->blocksize, rec = l->incompat & JBD2_INCOMPAT_64BIT ? 8 : 4;
    size_t used = be32(buf + 12);
    if (used > bs)
        used = bs;
    for (size_t off = 16; off + rec <= used; off += rec) {
        struct revoke *revokes = asr_grow(l->revokes, &l->cap_revokes, l->nrevokes + 1, sizeof *revokes, 256);
        if (!revokes)
            return nomem(l->err);
        l->revokes = revokes;
        uint64_t b = rec == 8 ? (uint64_t)be32(buf + off) << 32 | be32(buf + off + 4) : be32(buf + off);
        l->revokes[l->nrevokes++] = (struct revoke){b, seq};
    }
    return ASR_OK;
}

/* The log from s_start, transaction after transaction while each block carries the magic and the
 * expected sequence; only what a commit block closes counts, as in jbd2's recovery. */
static int read_log(struct log *l, uint32_t start, uint32_t seq, uint64_t *transactions)
{
    uint8_t *buf = malloc(l->fs->blocksize);
    if (!buf)
        return asr_fail_public(l->err, ASR_E_NOMEM, "ext: out of memory reading the journal");
    int rc = ASR_OK;
    uint32_t at = start;
    for (uint64_t steps = 0; rc == ASR_OK && steps < (uint64_t)(l->last - l->first); steps++) {
        rc = read_jblock(l, at, buf, NULL);
        if (rc != ASR_OK || be32(buf) != JBD2_MAGIC || be32(buf + 8) != seq)
            break;
        uint32_t type = be32(buf + 4);
        if (type == JBD2_DESCRIPTOR)
            rc = read_descriptor(l, buf, seq, &at, &steps);
        else if (type == JBD2_REVOKE)
            rc = read_revoke(l, buf, seq);
        else if (type == JBD2_COMMIT) {
            l->committed = l->ntags;
            l->committed_revokes = l->nrevokes;
            ++*transactions;
            seq++;
        } else
            break;
        at = wrap(l, (uint64_t)at + 1);
    }
    free(buf);
    return rc;
}

static int cmp_tag(const void *a, const void *b)
{
    const struct tag *x = a, *y = b;
    if (x->target != y->target)
        return x->target < y->target ? -1 : 1;
    return x->from < y->from ? -1 : x->from > y->from; /* jbd2 journals a block once a transaction */
}

static int cmp_revoke(const void *a, const void *b)
{
    const struct revoke *x = a, *y = b;
    return x->block < y->block ? -1 : x->block > y->block;
}

/* The newest revocation of block b, as a sequence relative to seq0 (the log's first), or -1. */
static int64_t revoked_at(const struct log *l, uint64_t b, uint32_t seq0)
{
    size_t lo = 0, hi = l->committed_revokes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->revokes[mid].block < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t newest = -1;
    for (; lo < l->committed_revokes && l->revokes[lo].block == b; lo++)
        if ((int64_t)(uint32_t)(l->revokes[lo].seq - seq0) > newest)
            newest = (uint32_t)(l->revokes[lo].seq - seq0);
    return newest;
}

/* What a replay writes: for each target the copy of the latest transaction that no revocation of
 * the same or a later transaction cancels. Every target named is kept in out->named. */
static int resolve(struct log *l, uint32_t seq0, struct ext_replay *out)
{
    ext2_filsys fs = l->fs;
    uint64_t bs = fs->blocksize, count = ext2fs_blocks_count(fs->super);
    /* Transactions counted from the log's first, so that sequence numbers may wrap. */
    for (size_t i = 0; i < l->committed; i++)
        l->tags[i].seq -= seq0;
    if (l->committed)
        qsort(l->tags, l->committed, sizeof *l->tags, cmp_tag);
    if (l->committed_revokes)
        qsort(l->revokes, l->committed_revokes, sizeof *l->revokes, cmp_revoke);
    out->v = calloc(l->committed ? l->committed : 1, sizeof *out->v);
    if (!out->v)
        return asr_fail_public(l->err, ASR_E_NOMEM, "ext: out of memory reading the journal");
    out->block_size = (uint32_t)bs;
    for (size_t i = 0; i < l->committed;) {
        size_t j = i, best = i;
        for (; j < l->committed && l->tags[j].target == l->tags[i].target; j++)
            if (l->tags[j].seq > l->tags[best].seq ||
                (l->tags[j].seq == l->tags[best].seq && l->tags[j].from > l->tags[best].from))
                best = j;
        struct tag *t = &l->tags[best];
        i = j;
        if (t->target >= count) /* e2fsck's replay refuses such a tag; nothing to capture */
            continue;
        int rc = asr_ranges_add(&out->named, t->target * bs, bs);
        if (rc != ASR_OK)
            return asr_fail_public(l->err, rc, "ext: cannot record the journal's blocks (%s)", asr_status_name(rc));
        if (revoked_at(l, t->target, seq0) >= (int64_t)t->seq)
            continue;
        blk64_t phys;
        rc = read_jblock(l, t->from, NULL, &phys);
        if (rc != ASR_OK)
            return rc;
        out->v[out->n++] = (struct ext_jcopy){t->target, phys, t->escaped};
    }
    return ASR_OK;
}

/* The journal superblock's checks; *start 0 when the log is empty. */
static int read_jsb(struct log *l, uint32_t *start, uint32_t *seq)
{
    uint64_t size = EXT2_I_SIZE(&l->inode), bs = l->fs->blocksize, blocks = size / bs;
    if (blocks < 2 || blocks > JBD2_MAX_BLOCKS)
        return asr_fail_public(l->err, blocks < 2 ? ASR_E_CORRUPT : ASR_E_LIMIT,
                               "ext: journal inode %u of %llu bytes: not a journal this reader replays", l->ino,
                               (unsigned long long)size);
    uint8_t *sb = malloc(bs);
    if (!sb)
        return asr_fail_public(l->err, ASR_E_NOMEM, "ext: out of memory reading the journal");
    int rc = read_jblock(l, 0, sb, NULL);
    uint32_t magic = be32(sb), type = be32(sb + 4), jbs = be32(sb + 12), maxlen = be32(sb + 16);
    l->first = be32(sb + 20);
    *seq = be32(sb + 24);
    *start = be32(sb + 28);
    l->incompat = type == JBD2_SUPERBLOCK_V2 ? be32(sb + 40) : 0;
    free(sb);
    if (rc != ASR_OK)
        return rc;
    if (magic != JBD2_MAGIC || (type != JBD2_SUPERBLOCK_V1 && type != JBD2_SUPERBLOCK_V2))
        return asr_fail_public(l->err, ASR_E_CORRUPT, "ext: journal superblock has no jbd2 magic");
    if (jbs != bs || maxlen > blocks || l->first == 0 || l->first >= maxlen)
        return asr_fail_public(l->err, ASR_E_CORRUPT,
                               "ext: journal superblock says %u-byte blocks, %u of them, log from %u: not a journal "
                               "of %llu blocks of %llu bytes",
                               jbs, maxlen, l->first, (unsigned long long)blocks, (unsigned long long)bs);
    l->last = maxlen;
    if (*start == 0)
        return ASR_OK;
    if (l->incompat & JBD2_INCOMPAT_FAST_COMMIT)
        return asr_fail_public(l->err, ASR_E_UNSUPPORTED, "ext: the journal has fast commits to replay");
    if (l->incompat & ~JBD2_INCOMPAT_KNOWN)
        return asr_fail_public(l->err, ASR_E_UNSUPPORTED, "ext: the journal has unknown features 0x%x to replay",
                               l->incompat & ~JBD2_INCOMPAT_KNOWN);
    if (*start < l->first || *start >= l->last)
        return asr_fail_public(l->err, ASR_E_CORRUPT, "ext: journal log starts at block %u, outside its %u..%u",
                               *start, l->first, l->last - 1);
    return ASR_OK;
}

int ext_journal_replay(ext2_filsys fs, const struct ext_io *io, struct ext_replay *out,
                           struct asr_error *err)
{
    *out = (struct ext_replay){0};
    struct log l = {.fs = fs, .io = io, .ino = fs->super->s_journal_inum, .err = err};
    if (ext2fs_has_feature_journal_dev(fs->super) || l.ino == 0)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "ext: the journal to replay is on another device");
    /* The kernel mounts a journal whose inode fails its checksum no more than e2fsck does; its
     * blocks are what matters here. */
    int saved_flags = fs->flags;
    fs->flags |= EXT2_FLAG_IGNORE_CSUM_ERRORS;
    errcode_t e = ext2fs_read_inode(fs, l.ino, &l.inode);
    int rc = e ? ext_fail(err, io, "reading the journal inode", e) : ASR_OK;
    uint32_t start = 0, seq = 0;
    if (rc == ASR_OK)
        rc = read_jsb(&l, &start, &seq);
    if (rc == ASR_OK && start)
        rc = read_log(&l, start, seq, &out->transactions);
    if (rc == ASR_OK && start)
        rc = resolve(&l, seq, out);
    fs->flags = saved_flags;
    free(l.tags);
    free(l.revokes);
    if (rc != ASR_OK)
        ext_replay_free(out);
    return rc;
}

/* ---- an empty journal's log --------------------------------------------------------------- */

/* The log's blocks as they come from the inode's map, in logical order (runs of adjacent ones
 * merged); sorted by ext_journal_dead_log. A damaged map could make libext2fs's walk endless
 * (indirect or index blocks naming one block over and over): the walk stops, and the log is
 * kept, at a tree block beyond what a map of maxlen blocks needs, or a logical block that does
 * not follow the one before. */
struct log_walk {
    uint64_t maxlen, fs_blocks, first_data, bs, tree_blocks, tree_budget;
    int64_t last; /* the last logical block seen */
    struct asr_range *v;
    size_t n, cap;
    int rc;
};

static int log_block(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk, int ref_offset,
                     void *priv)
{
    (void)ref_blk, (void)ref_offset;
    struct log_walk *lw = priv;
    if (blockcnt < 0) { /* an indirect or extent index block: metadata, kept */
        if (++lw->tree_blocks > lw->tree_budget) {
            lw->rc = ASR_E_LIMIT;
            return BLOCK_ABORT;
        }
        return 0;
    }
    if (blockcnt <= lw->last) {
        lw->rc = ASR_E_CORRUPT;
        return BLOCK_ABORT;
    }
    lw->last = blockcnt;
    if (blockcnt == 0) /* the journal superblock: read at every mount, kept */
        return 0;
    if ((uint64_t)blockcnt >= lw->maxlen) /* past the log */
        return BLOCK_ABORT;
    uint64_t b = *blocknr, bs = fs->blocksize;
    if (b < lw->first_data || b >= lw->fs_blocks) {
        lw->rc = ASR_E_CORRUPT;
        return BLOCK_ABORT;
    }
    if (lw->n && lw->v[lw->n - 1].offset + lw->v[lw->n - 1].length == b * bs) {
        lw->v[lw->n - 1].length += bs;
        return 0;
    }
    struct asr_range *v = asr_grow(lw->v, &lw->cap, lw->n + 1, sizeof *v, 16);
    if (!v) {
        lw->rc = ASR_E_NOMEM;
        return BLOCK_ABORT;
    }
    lw->v = v;
    lw->v[lw->n++] = (struct asr_range){b * bs, bs};
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const struct asr_range *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The log's runs, sorted, into out; ASR_E_CORRUPT when two overlap (a journal mapping a block
 * twice is not one whose log may be left out). */
static int sorted_log(struct log_walk *lw, struct asr_ranges *out, struct asr_error *err)
{
    qsort(lw->v, lw->n, sizeof *lw->v, cmp_range);
    for (size_t i = 0; i < lw->n; i++) {
        if (out->n && lw->v[i].offset < out->v[out->n - 1].offset + out->v[out->n - 1].length)
            return asr_fail_public(err, ASR_E_CORRUPT, "ext: the journal maps block %llu twice",
                                   (unsigned long long)(lw->v[i].offset / lw->bs));
        if (asr_ranges_add(out, lw->v[i].offset, lw->v[i].length) != ASR_OK)
            return nomem(err);
    }
    return ASR_OK;
}

int ext_journal_dead_log(ext2_filsys fs, const struct ext_io *io, struct asr_ranges *out, struct asr_error *err)
{
    *out = (struct asr_ranges){0};
    struct log l = {.fs = fs, .io = io, .ino = fs->super->s_journal_inum, .err = err};
    if (!ext2fs_has_feature_journal(fs->super) || ext2fs_has_feature_journal_dev(fs->super) || l.ino == 0 ||
        ext2fs_has_feature_journal_needs_recovery(fs->super))
        return ASR_OK;
    errcode_t e = ext2fs_read_inode(fs, l.ino, &l.inode);
    if (e)
        return ext_fail(err, io, "reading the journal inode", e);
    uint32_t start = 0, seq = 0;
    int rc = read_jsb(&l, &start, &seq);
    /* Features jbd2 may add could give s_start another meaning: only known ones (fast commits
     * are replayed only from a log that is not empty either). */
    if (rc != ASR_OK || start || (l.incompat & ~(JBD2_INCOMPAT_KNOWN | JBD2_INCOMPAT_FAST_COMMIT)))
        return rc;
    /* A block map of maxlen blocks needs one indirect block per bs/4 of them and one double
     * indirect per (bs/4)^2, an extent tree far fewer: twice that, and a few, is ample. */
    uint64_t per = fs->blocksize / 4;
    struct log_walk lw = {.maxlen = l.last, .fs_blocks = ext2fs_blocks_count(fs->super),
                          .first_data = fs->super->s_first_data_block, .bs = fs->blocksize,
                          .tree_budget = 2 * (l.last / per + l.last / (per * per)) + 16, .last = -1};
    e = ext2fs_block_iterate3(fs, l.ino, BLOCK_FLAG_READ_ONLY, NULL, log_block, &lw);
    if (lw.rc == ASR_E_NOMEM)
        rc = nomem(err);
    else if (lw.rc == ASR_E_LIMIT)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ext: the journal's block map has more tree blocks than its "
                                                 "%llu blocks need", (unsigned long long)l.last);
    else if (lw.rc)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ext: the journal maps a block outside the filesystem, or "
                                                 "its blocks out of order");
    else if (e)
        rc = ext_fail(err, io, "walking the journal inode's blocks", e);
    else
        rc = sorted_log(&lw, out, err);
    free(lw.v);
    if (rc != ASR_OK)
        asr_ranges_free(out);
    return rc;
}

