/* What the in-use MFT records of an NTFS volume reference: the clusters of every non-resident
 * attribute of every in-use record (base and extension records alike, so the targets of
 * $ATTRIBUTE_LIST entries are covered), and how they are merged into the used map. This is what
 * keeps a backup of a damaged volume whole where $Bitmap has holes: a restored copy must read
 * exactly like its source, so every cluster its metadata references is captured, used in $Bitmap
 * or not.
 *
 * The walk is deliberately lenient where the map's own reads are strict. A damaged record is
 * still metadata a reader of the restored copy (ntfs-3g, chkdsk) will look at, so anything it
 * plausibly references is taken: a record failing its update sequence check (a torn write) is
 * read with its strides restored anyway, and an attribute chain or runlist that breaks off is
 * taken as far as it parses. Nothing is taken from outside the volume; an over-capture of a
 * damaged record costs bytes, never correctness. */
#include "grow.h"
#include "ntfs_internal.h"

#include <stdlib.h>
#include <string.h>

#define MFT_PIECE (1u << 20)      /* bytes of $MFT read at once: a multiple of every record size */
#define MAX_REFS (16u << 20)      /* distinct runs kept after merging: 256 MiB of memory at most */
#define AT_DATA 0x80u
#define AT_END 0xFFFFFFFFu

static int nomem(struct asr_error *err, const char *what)
{
    return asr_fail_public(err, ASR_E_NOMEM, "ntfs: out of memory for %s", what);
}

void ntfs_refs_free(struct ntfs_refs *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

static int by_lcn(const void *a, const void *b)
{
    const struct ntfs_extent *x = a, *y = b;
    return x->lcn < y->lcn ? -1 : x->lcn > y->lcn;
}

/* Sorts the runs and merges the ones that overlap or touch. */
static void compact(struct ntfs_refs *r)
{
    if (r->n < 2)
        return;
    qsort(r->v, r->n, sizeof *r->v, by_lcn);
    size_t o = 0;
    for (size_t i = 1; i < r->n; i++) {
        struct ntfs_extent *last = &r->v[o];
        if (r->v[i].lcn <= last->lcn + last->len) {
            uint64_t end = r->v[i].lcn + r->v[i].len;
            if (end > last->lcn + last->len)
                last->len = end - last->lcn;
        } else {
            r->v[++o] = r->v[i];
        }
    }
    r->n = o + 1;
}

/* Adds clusters [lcn, lcn+len), already checked to lie inside the volume. A full array is
 * compacted before it grows, so memory follows the number of distinct runs, which is capped. */
static int add_ref(struct ntfs_refs *r, uint64_t lcn, uint64_t len, struct asr_error *err)
{
    if (r->n && r->v[r->n - 1].lcn + r->v[r->n - 1].len == lcn) {
        r->v[r->n - 1].len += len;
        return ASR_OK;
    }
    if (r->n == r->cap && r->cap >= (1u << 16)) {
        compact(r);
        if (r->n > r->cap / 2 && r->cap >= MAX_REFS)
            return asr_fail_public(err, ASR_E_LIMIT, "ntfs: MFT records reference more than %u separate cluster runs",
                                   MAX_REFS);
    }
    struct ntfs_extent *v = asr_grow(r->v, &r->cap, r->n + 1, sizeof *v, 1024);
    if (!v)
        return nomem(err, "the clusters MFT records reference");
    r->v = v;
    r->v[r->n++] = (struct ntfs_extent){lcn, len};
    return ASR_OK;
}

/* The runs of one non-resident attribute extent (any starting VCN; holes, compressed and sparse
 * streams allowed). Returns false when the runlist breaks off (a bad header, a run outside the
 * volume): the runs before that point are kept. */
static bool attr_refs(const uint8_t *p, uint32_t len, const struct ntfs_geom *g, struct ntfs_refs *r, int *rc,
                      struct asr_error *err)
{
    uint32_t at = get_le16(p + 0x20);
    if (at < 0x40 || at > len)
        return false;
    uint64_t lcn = 0;
    while (at < len && p[at] != 0 && *rc == ASR_OK) {
        unsigned ls = p[at] & 0x0F, os = p[at] >> 4;
        if (ls == 0 || ls > 8 || os > 8 || len - at - 1 < ls + os)
            return false;
        int64_t n = get_le_int(p + at + 1, ls);
        if (n <= 0)
            return false;
        if (os) { /* no offset field: a hole, nothing on disk */
            int64_t delta = get_le_int(p + at + 1 + ls, os);
            if (delta < 0 ? (uint64_t)-(delta + 1) >= lcn : (uint64_t)delta >= g->clusters - lcn)
                return false;
            lcn = delta < 0 ? lcn - (uint64_t)-(delta + 1) - 1 : lcn + (uint64_t)delta;
            if ((uint64_t)n > g->clusters - lcn)
                return false;
            *rc = add_ref(r, lcn, (uint64_t)n, err);
        }
        at += 1 + ls + os;
    }
    return true;
}

/* Restores every stride's last two bytes from the update sequence array, whether or not they
 * held the sequence number; returns -1 when the array itself does not fit the record, else
 * whether some stride did not (a torn write). */
static int lenient_fixups(uint8_t *b, uint32_t size)
{
    uint32_t usa = get_le16(b + 4), count = get_le16(b + 6);
    if ((usa & 1) || usa < 0x28 || count != size / NTFS_FIXUP_STRIDE + 1 || usa + 2 * count > NTFS_FIXUP_STRIDE - 2)
        return -1;
    int torn = 0;
    for (uint32_t i = 1; i < count; i++) {
        uint8_t *end = b + i * NTFS_FIXUP_STRIDE - 2;
        torn |= memcmp(end, b + usa, 2) != 0;
        memcpy(end, b + usa + 2 * i, 2);
    }
    return torn;
}

/* One record of the $MFT stream: its non-resident attributes' runs when it is in use. */
static int record_refs(uint8_t *b, const struct ntfs_geom *g, struct ntfs_refs *r, struct asr_error *err)
{
    if (memcmp(b, "FILE", 4) != 0 || !(get_le16(b + 0x16) & NTFS_RECORD_IN_USE))
        return ASR_OK; /* never used, deleted, or marked bad by chkdsk ("BAAD"): references nothing */
    r->records++;
    int torn = lenient_fixups(b, g->record);
    uint32_t at = get_le16(b + 0x14), used = get_le32(b + 0x18);
    if (used > g->record)
        used = g->record;
    if (torn < 0 || at < 0x30 || (at & 7) || at >= used) {
        r->damaged++;
        return ASR_OK;
    }
    r->torn += (uint64_t)torn;
    int rc = ASR_OK;
    while (rc == ASR_OK) {
        if (used - at < 4 || get_le32(b + at) == AT_END)
            return ASR_OK;
        uint32_t len = used - at >= 16 ? get_le32(b + at + 4) : 0;
        if (len < 24 || (len & 7) || len > used - at || b[at + 8] > 1 || (b[at + 8] && len < 0x40)) {
            r->damaged++; /* the chain breaks off here: what came before is taken */
            return ASR_OK;
        }
        if (b[at + 8] && !attr_refs(b + at, len, g, r, &rc, err))
            r->damaged++;
        at += len;
    }
    return rc;
}

int ntfs_collect_refs(struct ntfs_volume *v, struct ntfs_refs *r, struct asr_error *err)
{
    const struct ntfs_geom *g = &v->g;
    struct ntfs_attr a;
    bool found;
    int rc = ntfs_read_record(v, 0, err);
    if (rc == ASR_OK)
        rc = ntfs_find_attr(v->rec, 0, AT_DATA, NULL, &a, &found, err);
    if (rc == ASR_OK && (!found || !a.nonresident))
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $MFT's $DATA is missing or resident");
    if (rc != ASR_OK)
        return rc;
    /* Records past the initialized size read as zeros, and past the runs record 0 maps (an $MFT
     * continued through an attribute list) they cannot be found: both bound the walk. */
    uint64_t init = get_le64(a.p + 0x38), mapped = v->mft.vcns * g->cluster, bytes = init < mapped ? init : mapped;
    r->unmapped = init > mapped ? (init - mapped) / g->record : 0;
    uint64_t records = bytes / g->record;
    uint8_t *piece = malloc(MFT_PIECE);
    if (!piece)
        return nomem(err, "a piece of $MFT");
    uint32_t per = MFT_PIECE / g->record; /* record sizes are powers of two up to 64 KiB */
    for (uint64_t first = 0; first < records && rc == ASR_OK; first += per) {
        uint64_t n = records - first < per ? records - first : per;
        rc = ntfs_stream_read(v->w, g, &v->mft, "the $MFT", first * g->record, piece, (size_t)(n * g->record), err);
        for (uint64_t i = 0; i < n && rc == ASR_OK; i++)
            rc = record_refs(piece + i * g->record, g, r, err);
    }
    free(piece);
    compact(r);
    return rc;
}

int ntfs_merge_refs(const struct ntfs_refs *r, const struct ntfs_geom *g, struct asr_ranges *used, uint64_t *added,
                    struct asr_error *err)
{
    struct asr_ranges out = {0};
    uint64_t before = asr_ranges_bytes(used);
    size_t i = 0, k = 0;
    int rc = ASR_OK;
    while (rc == ASR_OK && (i < used->n || k < r->n)) {
        /* The next range by offset, from either list; overlapping ones are merged into the last. */
        uint64_t off, len;
        if (k >= r->n || (i < used->n && used->v[i].offset <= r->v[k].lcn * g->cluster)) {
            off = used->v[i].offset, len = used->v[i].length;
            i++;
        } else {
            off = r->v[k].lcn * g->cluster, len = r->v[k].len * g->cluster;
            k++;
        }
        struct asr_range *last = out.n ? &out.v[out.n - 1] : NULL;
        if (last && off < last->offset + last->length) {
            if (off + len > last->offset + last->length)
                last->length = off + len - last->offset;
            continue;
        }
        rc = asr_ranges_add(&out, off, len);
    }
    if (rc != ASR_OK) {
        asr_ranges_free(&out);
        return asr_fail_public(err, rc, "ntfs: cannot record the clusters MFT records reference (%s)",
                               asr_status_name(rc));
    }
    asr_ranges_free(used);
    *used = out;
    *added = asr_ranges_bytes(used) - before;
    return ASR_OK;
}
