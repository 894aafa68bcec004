/* XFS used-byte map: every allocation group minus the free extents its free-space B+tree by
 * block number (bnobt) lists, walked from the AGF's root down to every leaf (the AGF's counters
 * are only compared with what the walk finds, never used instead of it); the AG headers
 * (superblock, AGF, AGI and AGFL sectors) and the internal log always included. Blocks on the
 * AGFL, the inode, reference-count and reverse-map btrees, sparse inode chunks: none is in the
 * bnobt, so all are used. v4 and v5: on v5 the superblock, each AGF and each bnobt block must
 * pass its CRC and name its own place (block number, AG, UUID). A realtime subvolume or an
 * external log is refused (ASR_E_UNSUPPORTED: captured whole, the reason shown).
 *
 * So is a log with anything to recover (mounted and busy, or not cleanly unmounted): XFS writes
 * metadata back long after logging it, so the AGFs and bnobt on disk can call free the blocks of
 * files written since, and of new inode chunks and directory blocks that recovery expects to
 * find (a copy of such a map with the log did not even mount). A log is taken as having nothing
 * to recover when it ends in an unmount record, or when every record from its tail to its head
 * logs only the superblock: how XFS covers the log of a frozen (or idle) filesystem, every other
 * change written back. The backup maps a volume again once frozen. */
#include "asr_engine.h"
#include "xfs_format.h"
#include "guid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XFS_AGF_MAGIC 0x58414746u  /* "XAGF" */
#define XFS_ABTB_MAGIC 0x41425442u /* "ABTB": v4 bnobt block */
#define XFS_ABTB_CRC_MAGIC 0x41423342u /* "AB3B": v5 bnobt block */
#define AGF_CRC_OFF 216
#define SBLOCK_LEN 16      /* short-form btree block header, v4 */
#define SBLOCK_CRC_LEN 56  /* the same with blkno, lsn, uuid, owner and crc, v5 */
#define SBLOCK_CRC_OFF 52
/* The deepest free-space btree XFS builds: 64 KiB AGs of 512-byte blocks need 7 levels at the
 * minimum fan-out; the kernel's own bound on any short-form btree is 9. */
#define BNOBT_MAX_LEVELS 9u

struct ag_walk {
    const struct asr_window *w;
    const struct xfs_geom *g;
    uint32_t agno, length, header_blocks;
    uint64_t ag_off;
    uint8_t *bufs[BNOBT_MAX_LEVELS]; /* one block per level */
    uint32_t next;                   /* first AG block after the last free extent seen */
    uint64_t free_blocks, visited;
    struct asr_ranges *used;
};

static int record(struct asr_ranges *r, uint64_t off, uint64_t len, struct asr_error *err)
{
    int rc = asr_ranges_add(r, off, len);
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "xfs: cannot record used bytes %llu+%llu (%s)", (unsigned long long)off,
                               (unsigned long long)len, asr_status_name(rc));
    return ASR_OK;
}

/* One free extent of the leaf at agbno: the used blocks before it become a range. */
static int free_extent(struct ag_walk *a, uint32_t agbno, uint32_t start, uint32_t count, struct asr_error *err)
{
    if (count == 0 || start < a->next || start < a->header_blocks || start >= a->length || count > a->length - start)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "xfs: AG %u: free extent %u+%u out of order, over the AG headers or past the AG's %u "
                               "blocks (bnobt block %u)",
                               a->agno, start, count, a->length, agbno);
    int rc = record(a->used, a->ag_off + ((uint64_t)a->next << a->g->block_log),
                    (uint64_t)(start - a->next) << a->g->block_log, err);
    a->next = start + count;
    a->free_blocks += count;
    return rc;
}

/* Reads bnobt block agbno, expected at level, and checks what it says of itself. */
static int read_node(struct ag_walk *a, uint32_t agbno, uint32_t level, bool root, uint32_t *nrecs,
                     struct asr_error *err)
{
    const struct xfs_geom *g = a->g;
    if (agbno < a->header_blocks || agbno >= a->length || ++a->visited > a->length)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "xfs: AG %u: bnobt block %u outside the AG's blocks %u..%u, or the tree holds more "
                               "blocks than the AG",
                               a->agno, agbno, a->header_blocks, a->length - 1);
    uint8_t *b = a->bufs[level];
    uint64_t off = a->ag_off + ((uint64_t)agbno << g->block_log);
    int rc = asr_window_read(a->w, "an XFS free-space btree block", off, b, g->block_size, err);
    if (rc != ASR_OK)
        return rc;
    uint32_t magic = xfs_be32(b), hdr = g->v5 ? SBLOCK_CRC_LEN : SBLOCK_LEN;
    if (magic != (g->v5 ? XFS_ABTB_CRC_MAGIC : XFS_ABTB_MAGIC))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: AG %u: bnobt block %u: magic 0x%08x, not %s", a->agno, agbno,
                               magic, g->v5 ? "AB3B" : "ABTB");
    if (g->v5 && !xfs_crc_ok(b, g->block_size, SBLOCK_CRC_OFF))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: AG %u: bnobt block %u: CRC mismatch", a->agno, agbno);
    if (g->v5 && (xfs_be64(b + 16) != off / XFS_BB || xfs_be32(b + 48) != a->agno || memcmp(b + 32, g->meta_uuid, 16)))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "xfs: AG %u: bnobt block %u names another place (daddr %llu, AG %u) or filesystem",
                               a->agno, agbno, (unsigned long long)xfs_be64(b + 16), xfs_be32(b + 48));
    *nrecs = xfs_be16(b + 6);
    uint32_t max = (g->block_size - hdr) / (level ? 12 : 8);
    if (xfs_be16(b + 4) != level || *nrecs > max || (*nrecs == 0 && !root))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "xfs: AG %u: bnobt block %u: level %u with %u records, expected level %u with 1..%u",
                               a->agno, agbno, xfs_be16(b + 4), *nrecs, level, max);
    return ASR_OK;
}

/* Every free extent under bnobt block agbno, in block order. Each level's block has its own
 * buffer; the depth is bounded by the AGF's level, itself bounded. Leaves seen twice (pointers
 * repeated or crossed) break the order free_extent checks, so the walk ends. */
static int walk(struct ag_walk *a, uint32_t agbno, uint32_t level, bool root, struct asr_error *err)
{
    uint32_t n = 0;
    int rc = read_node(a, agbno, level, root, &n, err);
    const uint8_t *b = a->bufs[level];
    uint32_t hdr = a->g->v5 ? SBLOCK_CRC_LEN : SBLOCK_LEN;
    for (uint32_t i = 0; i < n && rc == ASR_OK; i++) {
        if (level == 0) {
            rc = free_extent(a, agbno, xfs_be32(b + hdr + 8 * i), xfs_be32(b + hdr + 8 * i + 4), err);
        } else {
            uint32_t max = (a->g->block_size - hdr) / 12;
            rc = walk(a, xfs_be32(b + hdr + 8 * max + 4 * i), level - 1, false, err);
        }
    }
    return rc;
}

/* What the AGFs said that the walk contradicts, for the note. */
struct findings {
    uint32_t freeblks_off; /* AGs whose agf_freeblks differs from the bnobt's total */
    uint32_t first_ag;
};

static int map_ag(struct ag_walk *a, uint32_t agno, struct findings *f, struct asr_error *err)
{
    const struct xfs_geom *g = a->g;
    a->agno = agno;
    a->ag_off = xfs_ag_offset(g, agno);
    a->length = xfs_ag_blocks(g, agno);
    a->next = a->header_blocks;
    a->free_blocks = a->visited = 0;
    uint8_t *agf = a->bufs[0]; /* a sector, at most a block: read before the walk needs the buffer */
    int rc = asr_window_read(a->w, "an XFS AGF", a->ag_off + g->sect_size, agf, g->sect_size, err);
    if (rc != ASR_OK)
        return rc;
    if (xfs_be32(agf) != XFS_AGF_MAGIC)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: AG %u: AGF magic 0x%08x, not XAGF (volume offset %llu)", agno,
                               xfs_be32(agf), (unsigned long long)(a->ag_off + g->sect_size));
    if (g->v5 && !xfs_crc_ok(agf, g->sect_size, AGF_CRC_OFF))
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: AG %u: AGF CRC mismatch (volume offset %llu)", agno,
                               (unsigned long long)(a->ag_off + g->sect_size));
    if (xfs_be32(agf + 4) != 1 || xfs_be32(agf + 8) != agno || xfs_be32(agf + 12) != a->length ||
        (g->v5 && memcmp(agf + 64, g->meta_uuid, 16)))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "xfs: AG %u: AGF version %u, AG number %u and length %u, expected 1, %u and %u (or "
                               "another filesystem's UUID)",
                               agno, xfs_be32(agf + 4), xfs_be32(agf + 8), xfs_be32(agf + 12), agno, a->length);
    uint32_t root = xfs_be32(agf + 16), levels = xfs_be32(agf + 28), freeblks = xfs_be32(agf + 52);
    if (levels == 0 || levels > BNOBT_MAX_LEVELS)
        return asr_fail_public(err, ASR_E_CORRUPT, "xfs: AG %u: bnobt of %u levels, expected 1..%u (AGF)", agno, levels,
                               BNOBT_MAX_LEVELS);
    rc = record(a->used, a->ag_off, (uint64_t)a->header_blocks << g->block_log, err);
    if (rc == ASR_OK)
        rc = walk(a, root, levels - 1, true, err);
    if (rc == ASR_OK)
        rc = record(a->used, a->ag_off + ((uint64_t)a->next << g->block_log),
                    (uint64_t)(a->length - a->next) << g->block_log, err);
    if (rc == ASR_OK && a->free_blocks != freeblks && !f->freeblks_off++)
        f->first_ag = agno;
    return rc;
}

/* ---- the log's state: anything to recover or not -------------------------------------------- */

#define XLOG_MAGIC 0xFEEDBABEu
#define XLOG_UNMOUNT_TRANS 0x20u
#define XLOG_HEADER_CYCLE_SIZE 32768u
/* How far before the head the last record header may lie: a record holds at most 256 KiB of
 * log (the largest in-core log buffer) and its header at most 8 sectors of cycle data. */
#define XLOG_MAX_RECORD_BBS ((256u << 10) / XFS_BB + 8)

struct log_view {
    const struct asr_window *w;
    uint64_t off, bbs; /* the log's first byte and its length in basic blocks */
};

static int log_bb(const struct log_view *l, uint64_t bb, uint8_t *buf, struct asr_error *err)
{
    return asr_window_read(l->w, "the XFS log", l->off + bb * XFS_BB, buf, XFS_BB, err);
}

/* The cycle number of a basic block: its first word, but a record header starts with the magic
 * and holds its cycle in the next word. */
static int log_cycle(const struct log_view *l, uint64_t bb, uint32_t *cycle, struct asr_error *err)
{
    uint8_t words[8];
    int rc = asr_window_read(l->w, "the XFS log", l->off + bb * XFS_BB, words, sizeof words, err);
    *cycle = xfs_be32(words) == XLOG_MAGIC ? xfs_be32(words + 4) : xfs_be32(words);
    return rc;
}

/* The head: the first basic block whose cycle number (the first word of every block) is one
 * below the first block's, found by halving; when the whole log has one cycle, it wraps at the
 * end. Written blocks before the head carry the newer cycle. A sketch of the kernel's search: it
 * also looks for torn writes, which matter to recovery, not to whether there is anything to
 * recover. */
static int log_head(const struct log_view *l, uint64_t *head, struct asr_error *err)
{
    uint32_t first, last;
    int rc = log_cycle(l, 0, &first, err);
    if (rc == ASR_OK)
        rc = log_cycle(l, l->bbs - 1, &last, err);
    if (rc != ASR_OK)
        return rc;
    if (first == last) {
        *head = l->bbs;
        return ASR_OK;
    }
    uint64_t lo = 0, hi = l->bbs - 1; /* cycle(lo) == first, cycle(hi) != first */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint32_t c;
        if ((rc = log_cycle(l, mid, &c, err)) != ASR_OK)
            return rc;
        if (c == first)
            lo = mid;
        else
            hi = mid;
    }
    *head = hi;
    return ASR_OK;
}

#define XLOG_CONTINUE_TRANS 0x04u
#define XLOG_WAS_CONT_TRANS 0x08u
#define XFS_LI_BUF 0x123Cu
#define XFS_TRANS_HEADER_MAGIC 0x5452414Eu /* "TRAN" */
#define XLOG_MAX_COVER_RECORDS 8u

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A record header h: its header blocks and the blocks it spans in all; false when they could
 * not be a record's. */
static bool record_size(const uint8_t *h, const struct log_view *l, uint32_t *hblks, uint64_t *span)
{
    uint32_t size = xfs_be32(h + 320), len = xfs_be32(h + 12);
    *hblks = (xfs_be32(h + 8) & 2) && size > XLOG_HEADER_CYCLE_SIZE
                 ? (size + XLOG_HEADER_CYCLE_SIZE - 1) / XLOG_HEADER_CYCLE_SIZE : 1;
    *span = *hblks + (len + XFS_BB - 1) / XFS_BB;
    return *hblks <= 8 && len <= (256u << 10) && *span < l->bbs;
}

/* Whether the record at at (header h, hblks header blocks, data of at most 32 KiB) holds nothing
 * but an unmount record, or transactions that log only the superblock: the dummy transactions
 * with which XFS covers an idle or frozen log, its metadata all written back. Log item formats
 * are in the writing machine's byte order; anything else (another order, an item of another
 * kind, a transaction continued across records) is not such a record. */
static int quiet_record(const struct log_view *l, uint64_t at, uint32_t hblks, const uint8_t *h, bool *quiet,
                        struct asr_error *err)
{
    *quiet = false;
    uint32_t len = xfs_be32(h + 12), ops = xfs_be32(h + 40);
    if (len > XLOG_HEADER_CYCLE_SIZE) /* the first header block saves the cycle words of 32 KiB */
        return ASR_OK;
    uint8_t *d = malloc(len ? (len + XFS_BB - 1) / XFS_BB * XFS_BB : 1); /* read in whole basic blocks */
    if (!d)
        return asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory for a log record");
    int rc = ASR_OK;
    for (uint32_t i = 0; i * XFS_BB < len && rc == ASR_OK; i++) {
        rc = log_bb(l, (at + hblks + i) % l->bbs, d + i * XFS_BB, err);
        memcpy(d + i * XFS_BB, h + 44 + 4 * i, 4); /* the word the cycle number stands in for */
    }
    uint32_t regions = 0, p = 0, i = 0;
    bool ok = rc == ASR_OK;
    for (; ok && i < ops && p + 12 <= len; i++) {
        uint32_t n = xfs_be32(d + p + 4), flags = d[p + 9];
        const uint8_t *x = d + p + 12;
        if (n > len - p - 12 || (flags & (XLOG_CONTINUE_TRANS | XLOG_WAS_CONT_TRANS)))
            ok = false;
        else if (regions)
            regions--; /* a logged region of the superblock's buffer */
        else if (d[p + 8] == 0xAA) /* XFS_LOG: the unmount record */
            ok = (flags & XLOG_UNMOUNT_TRANS) != 0;
        else if (n >= 16 && (le32(x) & 0xFFFF) == XFS_LI_BUF)
            ok = (le32(x + 8) | le32(x + 12)) == 0 && (regions = (le32(x) >> 16) - 1) < 16; /* blkno 0 */
        else
            ok = n == 0 || (n >= 4 && le32(x) == XFS_TRANS_HEADER_MAGIC);
        p += 12 + n;
    }
    *quiet = ok && i == ops && !regions;
    free(d);
    return rc;
}

/* Whether recovery would change nothing but the superblock: the last record before the log's
 * head ends a clean unmount, or every record from the tail that record names up to the head is
 * quiet (quiet_record). *found false when no record header lies where one must. */
static int log_clean(const struct log_view *l, bool *found, bool *clean, struct asr_error *err)
{
    *found = *clean = false;
    uint64_t head;
    int rc = log_head(l, &head, err);
    uint8_t bb[XFS_BB];
    uint64_t back = l->bbs < XLOG_MAX_RECORD_BBS ? l->bbs : XLOG_MAX_RECORD_BBS, at = 0;
    for (uint64_t k = 1; rc == ASR_OK && k <= back && !*found; k++) {
        at = (head + l->bbs - k) % l->bbs;
        rc = log_bb(l, at, bb, err);
        *found = rc == ASR_OK && xfs_be32(bb) == XLOG_MAGIC;
    }
    if (rc != ASR_OK || !*found)
        return rc;
    uint64_t pos = xfs_be64(bb + 24) & 0xFFFFFFFFu; /* h_tail_lsn's block */
    for (uint32_t n = 0; n < XLOG_MAX_COVER_RECORDS && pos < l->bbs; n++) {
        uint32_t hblks;
        uint64_t span;
        bool quiet;
        if ((rc = log_bb(l, pos, bb, err)) != ASR_OK || xfs_be32(bb) != XLOG_MAGIC ||
            !record_size(bb, l, &hblks, &span))
            return rc;
        if ((rc = quiet_record(l, pos, hblks, bb, &quiet, err)) != ASR_OK || !quiet)
            return rc;
        pos = (pos + span) % l->bbs;
        if (pos == head % l->bbs) {
            *clean = true;
            return ASR_OK;
        }
    }
    return ASR_OK;
}

/* ---- the map -------------------------------------------------------------------------------- */

static int unite(struct asr_ranges *into, const struct asr_ranges *more, struct asr_error *err)
{
    struct asr_ranges u = {0};
    int rc = asr_ranges_union(into, more, &u);
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "xfs: cannot record used bytes (%s)", asr_status_name(rc));
    asr_ranges_free(into);
    *into = u;
    return ASR_OK;
}

static int map_all(const struct asr_window *w, const struct xfs_geom *g, struct asr_ranges *used,
                   struct findings *f, struct asr_error *err)
{
    /* Sectors 0-3 of each AG: superblock, AGF, AGI, AGFL; whole blocks, since free extents
     * start on blocks. */
    uint64_t head_bytes = 4ull * g->sect_size;
    struct ag_walk a = {.w = w, .g = g, .used = used};
    a.header_blocks = (uint32_t)((head_bytes + g->block_size - 1) >> g->block_log);
    int rc = ASR_OK;
    for (uint32_t i = 0; i < BNOBT_MAX_LEVELS && rc == ASR_OK; i++)
        if (!(a.bufs[i] = malloc(g->block_size))) /* at most 9 x 64 KiB: the block size is checked */
            rc = asr_fail_public(err, ASR_E_NOMEM, "xfs: out of memory for btree blocks");
    for (uint32_t agno = 0; agno < g->agcount && rc == ASR_OK; agno++)
        rc = map_ag(&a, agno, f, err);
    for (uint32_t i = 0; i < BNOBT_MAX_LEVELS; i++)
        free(a.bufs[i]);
    if (rc != ASR_OK)
        return rc;
    /* The log is never in the free-space tree; added all the same, in case the tree says so. */
    uint64_t log_off;
    struct asr_ranges log = {0};
    xfs_fsb_offset(g, g->logstart, &log_off); /* checked by xfs_read_sb */
    rc = record(&log, log_off, (uint64_t)g->logblocks << g->block_log, err);
    if (rc == ASR_OK)
        rc = unite(used, &log, err);
    asr_ranges_free(&log);
    return rc;
}

static void write_note(const struct xfs_geom *g, const struct findings *f, struct asr_usedmap *out)
{
    char note[sizeof out->note];
    size_t at = 0, n = sizeof note;
    note[0] = '\0';
#define NOTE(...) (at += (size_t)snprintf(note + at, at < n ? n - at : 0, __VA_ARGS__), at = at < n ? at : n)
    if (g->incompat & XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR)
        NOTE("superblock flagged as needing xfs_repair; ");
    if (f->freeblks_off)
        NOTE("%u AGs (first AG %u) count free blocks other than their free-space btree holds, which was "
             "followed; ",
             f->freeblks_off, f->first_ag);
#undef NOTE
    if (at >= 2 && note[at - 2] == ';')
        note[at - 2] = '\0';
    if (note[0])
        snprintf(out->note, sizeof out->note, "xfs: %.240s", note);
    out->damaged = (g->incompat & XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR) || f->freeblks_off;
}

int asr_xfs_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    struct xfs_geom g;
    int rc = xfs_read_sb(w, &g, err);
    if (rc != ASR_OK)
        return rc;
    if (g.rblocks)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "xfs: a realtime subvolume of %llu blocks (sb_rblocks) on another device: its "
                               "allocation is not mapped",
                               (unsigned long long)g.rblocks);
    if (!g.logstart)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "xfs: the log is on an external device (sb_logstart 0): the filesystem cannot be "
                               "mapped without it");
    struct log_view l = {w, 0, ((uint64_t)g.logblocks << g.block_log) / XFS_BB};
    bool found = false, clean = false;
    xfs_fsb_offset(&g, g.logstart, &l.off); /* checked by xfs_read_sb */
    rc = log_clean(&l, &found, &clean, err);
    if (rc == ASR_OK && !found)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "xfs: no log record before the log's head (log at block %llu): whether metadata "
                               "waits in it is unknown",
                               (unsigned long long)g.logstart);
    if (rc == ASR_OK && !clean)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "xfs: the log holds changes not yet written back (mounted and busy, or not "
                               "cleanly unmounted): the free-space btrees on disk are stale until it is recovered");
    struct findings f = {0};
    if (rc == ASR_OK)
        rc = map_all(w, &g, &out->used, &f, err);
    if (rc != ASR_OK) {
        asr_ranges_free(&out->used);
        return rc;
    }
    out->block_size = g.block_size;
    snprintf(out->fs_type, sizeof out->fs_type, "xfs");
    asr_guid_text(g.uuid, 0, out->fs_uuid);
    snprintf(out->fs_label, sizeof out->fs_label, "%s", g.label);
    write_note(&g, &f, out);
    return ASR_OK;
}
