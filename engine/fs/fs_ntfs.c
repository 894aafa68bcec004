/* NTFS used-byte map: MFT records 3 ($Volume) and 6 ($Bitmap), then the cluster bitmap streamed
 * in bounded pieces, united with every cluster an in-use MFT record references (ntfs_refs.c:
 * $Bitmap may have holes, dirty volume or not); plus the backup boot sector after the last
 * cluster. The boot sector, record 0 ($MFT) and the record, attribute and runlist readers it
 * shares with ntfs_refs.c and ntfs_lookup.c are ntfs_records.c's (ntfs_internal.h).
 * Hand-written rather than libntfs-3g: the map needs one boot sector, three records and one
 * runlist, all bounds-checked against the window and covered by fuzz_ntfs.c, while libntfs-3g
 * would need custom device operations to read a window, a new (GPL) link dependency, and a full
 * mount that reads and judges far more ($MFTMirr, $LogFile, $UpCase, hiberfile). */
#include "ntfs_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BITMAP_PIECE (1u << 20)     /* bytes of $Bitmap read at once: 8 Mi clusters */

/* MFT record numbers of the system files read here. */
#define REC_VOLUME 3
#define REC_BITMAP 6

/* Attribute types. */
#define AT_VOLUME_NAME 0x60u
#define AT_VOLUME_INFORMATION 0x70u

#define VOLUME_IS_DIRTY 0x0001u

static int nomem(struct asr_error *err, const char *what)
{
    return asr_fail_public(err, ASR_E_NOMEM, "ntfs: out of memory for %s", what);
}

/* ---- the bitmap ---------------------------------------------------------------------------- */

/* Accumulates used clusters into runs and emits them as byte ranges. */
struct scanner {
    struct asr_ranges *out;
    const struct ntfs_geom *g;
    uint64_t start, len; /* the open run of used clusters */
};

static int scan_flush(struct scanner *s, struct asr_error *err)
{
    if (!s->len)
        return ASR_OK;
    int rc = asr_ranges_add(s->out, s->start * s->g->cluster, s->len * s->g->cluster);
    s->len = 0;
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "ntfs: cannot record used clusters from %llu (%s)", (unsigned long long)s->start,
                               asr_status_name(rc));
    return ASR_OK;
}

static int scan_mark(struct scanner *s, uint64_t c, uint64_t n, struct asr_error *err)
{
    if (c >= s->g->clusters) /* padding bits past the last cluster */
        return ASR_OK;
    if (n > s->g->clusters - c)
        n = s->g->clusters - c;
    if (s->len && s->start + s->len == c) {
        s->len += n;
        return ASR_OK;
    }
    int rc = scan_flush(s, err);
    s->start = c;
    s->len = n;
    return rc;
}

/* Feeds n bitmap bytes describing clusters from first (a multiple of 8) on: whole 64-bit words
 * of zeros or ones at a time, bit by bit only where they mix. */
static int scan_bytes(struct scanner *s, uint64_t first, const uint8_t *b, size_t n, struct asr_error *err)
{
    int rc = ASR_OK;
    for (size_t i = 0; i < n && rc == ASR_OK;) {
        if (n - i >= 8) {
            uint64_t word = get_le64(b + i);
            if (word == 0 || word == ~0ull) {
                if (word)
                    rc = scan_mark(s, first + 8 * i, 64, err);
                i += 8;
                continue;
            }
        }
        for (unsigned bit = 0; bit < 8 && rc == ASR_OK; bit++)
            if (b[i] >> bit & 1)
                rc = scan_mark(s, first + 8 * i + bit, 1, err);
        i++;
    }
    return rc;
}

/* Whether [off, off+len) lies inside one recorded range (a sanity check of the bitmap). */
static bool covered(const struct asr_ranges *r, uint64_t off, uint64_t len)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].offset + r->v[mid].length <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->n && r->v[lo].offset <= off && off + len <= r->v[lo].offset + r->v[lo].length;
}

/* Streams the bitmap of a non-resident $Bitmap in pieces; bytes past the initialized size read
 * as zero (NTFS semantics) and so mark nothing. */
static int scan_nonresident(const struct asr_window *w, const struct ntfs_geom *g, const struct ntfs_attr *a,
                            const struct ntfs_runlist *rl, struct scanner *s, struct asr_error *err)
{
    uint64_t need = (g->clusters + 7) / 8, alloc = get_le64(a->p + 0x28), size = get_le64(a->p + 0x30),
             init = get_le64(a->p + 0x38);
    if (size < need || alloc < size || init > size)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $Bitmap sizes (allocated %llu, data %llu, initialized %llu) "
                                                   "invalid for %llu clusters",
                               (unsigned long long)alloc, (unsigned long long)size, (unsigned long long)init,
                               (unsigned long long)g->clusters);
    if (alloc > rl->vcns * g->cluster)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "ntfs: $Bitmap continues in an attribute list extent");
    uint64_t end = init < need ? init : need;
    uint8_t *piece = malloc(BITMAP_PIECE);
    if (!piece)
        return nomem(err, "a $Bitmap piece");
    int rc = ASR_OK;
    for (uint64_t off = 0; off < end && rc == ASR_OK; off += BITMAP_PIECE) {
        size_t n = end - off < BITMAP_PIECE ? (size_t)(end - off) : BITMAP_PIECE;
        rc = ntfs_stream_read(w, g, rl, "$Bitmap", off, piece, n, err);
        if (rc == ASR_OK)
            rc = scan_bytes(s, off * 8, piece, n, err);
    }
    free(piece);
    return rc;
}

/* Emits the clusters $Bitmap marks used, then checks that it marks what must be used: cluster
 * 0 (boot sector), the first $MFT cluster, and $Bitmap's own clusters. A bitmap failing that is
 * garbage, and trusting it would leave metadata out of the backup. */
static int emit_bitmap(const struct asr_window *w, const struct ntfs_geom *g, const uint8_t *rec,
                       struct asr_ranges *out, struct asr_error *err)
{
    struct ntfs_attr a;
    struct ntfs_runlist rl = {0};
    struct scanner s = {out, g, 0, 0};
    int rc = ntfs_data_runs(rec, REC_BITMAP, g, &a, &rl, err);
    if (rc == ASR_OK && a.nonresident) {
        rc = scan_nonresident(w, g, &a, &rl, &s, err);
    } else if (rc == ASR_OK) {
        const uint8_t *v = NULL;
        uint32_t n = 0;
        rc = ntfs_resident_value(&a, REC_BITMAP, &v, &n, err);
        if (rc == ASR_OK && n < (g->clusters + 7) / 8)
            rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: resident $Bitmap of %u bytes too short for %llu clusters", n,
                                 (unsigned long long)g->clusters);
        if (rc == ASR_OK)
            rc = scan_bytes(&s, 0, v, (size_t)((g->clusters + 7) / 8), err);
    }
    if (rc == ASR_OK)
        rc = scan_flush(&s, err);
    if (rc == ASR_OK && (!covered(out, 0, g->cluster) || !covered(out, g->mft_lcn * g->cluster, g->cluster)))
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $Bitmap marks the boot sector or the $MFT free");
    for (size_t i = 0; i < rl.n && rc == ASR_OK; i++)
        if (!covered(out, rl.v[i].lcn * g->cluster, rl.v[i].len * g->cluster))
            rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $Bitmap marks its own clusters %llu+%llu free",
                                 (unsigned long long)rl.v[i].lcn, (unsigned long long)rl.v[i].len);
    free(rl.v);
    return rc;
}

/* ---- $Volume: state and label ------------------------------------------------------------- */

/* UTF-16LE to UTF-8, stopping at a character that does not fit; lone surrogates become '?'. */
static void utf16_to_utf8(const uint8_t *s, uint32_t units, char *out, size_t cap)
{
    size_t o = 0;
    for (uint32_t i = 0; i < units; i++) {
        uint32_t c = get_le16(s + 2 * i);
        if (c >= 0xD800 && c < 0xDC00 && i + 1 < units && get_le16(s + 2 * i + 2) >= 0xDC00 &&
            get_le16(s + 2 * i + 2) < 0xE000)
            c = 0x10000 + ((c - 0xD800) << 10) + (get_le16(s + 2 * ++i) - 0xDC00);
        else if (c >= 0xD800 && c < 0xE000)
            c = '?';
        size_t k = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        if (o + k >= cap)
            break;
        if (k == 1) {
            out[o++] = (char)c;
            continue;
        }
        static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
        out[o++] = (char)(lead[k] | (c >> (6 * (k - 1))));
        for (size_t j = k - 1; j > 0; j--)
            out[o++] = (char)(0x80 | ((c >> (6 * (j - 1))) & 0x3F));
    }
    out[o] = '\0';
}

/* The volume's flags ($VOLUME_INFORMATION), whose dirty bit says chkdsk is pending, and the
 * label on the way (blkid's is used when there is none). */
static int read_volume_info(const uint8_t *r, struct asr_usedmap *out, uint16_t *flags, struct asr_error *err)
{
    struct ntfs_attr a;
    bool found;
    const uint8_t *v = NULL;
    uint32_t n = 0;
    int rc = ntfs_find_attr(r, REC_VOLUME, AT_VOLUME_INFORMATION, NULL, &a, &found, err);
    if (rc == ASR_OK && !found)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $Volume has no $VOLUME_INFORMATION attribute");
    if (rc == ASR_OK)
        rc = ntfs_resident_value(&a, REC_VOLUME, &v, &n, err);
    if (rc == ASR_OK && n < 12)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $VOLUME_INFORMATION of %u bytes too short", n);
    if (rc != ASR_OK)
        return rc;
    *flags = get_le16(v + 10);
    rc = ntfs_find_attr(r, REC_VOLUME, AT_VOLUME_NAME, NULL, &a, &found, err);
    if (rc == ASR_OK && found && !a.nonresident && ntfs_resident_value(&a, REC_VOLUME, &v, &n, NULL) == ASR_OK)
        utf16_to_utf8(v, n / 2, out->fs_label, sizeof out->fs_label);
    return rc;
}

/* ---- the map --------------------------------------------------------------------------------- */

/* The backup boot sector is the sector after the last one the volume counts (mkntfs and Windows
 * size the volume one sector short of its partition for it), whole even where the sector is 4096
 * bytes. ntfs-3g's tools (ntfsfix, ntfs-3g's recovery) look for it in the partition's last
 * sector instead, which is the same sector unless the volume is smaller than its partition
 * (shrunk by ntfsresize, which leaves the old backup there): then both are kept, one sector each.
 * They follow every cluster, so they go last; a window with no room for one simply has none. */
static int add_backup_boot(const struct ntfs_volume *v, struct asr_ranges *used, struct asr_error *err)
{
    const struct ntfs_geom *g = &v->g;
    uint64_t after = g->sectors * g->sector, last = (v->w->size / g->sector) * g->sector - g->sector;
    int rc = ASR_OK;
    if (v->w->size - after >= g->sector)
        rc = asr_ranges_add(used, after, g->sector);
    if (rc == ASR_OK && last > after)
        rc = asr_ranges_add(used, last, g->sector);
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "ntfs: cannot record the backup boot sector (%s)", asr_status_name(rc));
    return ASR_OK;
}

/* What the walk found, for the listing and the backup's report; nothing on a clean volume whose
 * records reference only clusters $Bitmap marks used. */
static void describe(const struct ntfs_refs *r, uint16_t flags, uint64_t added, const struct ntfs_geom *g,
                     char *note, size_t cap)
{
    size_t o = 0;
    note[0] = '\0';
    if (flags & VOLUME_IS_DIRTY)
        o += (size_t)snprintf(note + o, cap - o, "marked dirty ($Volume flags 0x%04X); ", flags);
    if (added)
        o += (size_t)snprintf(note + o, cap - o, "%llu clusters referenced by MFT records but free in $Bitmap, "
                                                 "captured too; ",
                              (unsigned long long)(added / g->cluster));
    else if (flags & VOLUME_IS_DIRTY)
        o += (size_t)snprintf(note + o, cap - o, "the %llu in-use MFT records reference no cluster $Bitmap marks "
                                                 "free; ",
                              (unsigned long long)r->records);
    if (o < cap && r->torn)
        o += (size_t)snprintf(note + o, cap - o, "%llu MFT records failing their update sequence check read anyway; ",
                              (unsigned long long)r->torn);
    if (o < cap && r->damaged)
        o += (size_t)snprintf(note + o, cap - o, "%llu damaged records or attributes taken as far as they parse; ",
                              (unsigned long long)r->damaged);
    if (o < cap && r->unmapped)
        o += (size_t)snprintf(note + o, cap - o, "%llu MFT records past record 0's runs not walked; ",
                              (unsigned long long)r->unmapped);
    if (o >= 2 && o < cap)
        note[o - 2] = '\0'; /* the last "; " */
}

/* $Bitmap's used clusters, united with every cluster an in-use MFT record references: on a
 * damaged or dirty volume the two disagree, and the restored copy must read like its source
 * whichever is right (the walk costs one read of $MFT, which the backup reads anyway). */
static int map_volume(struct ntfs_volume *v, struct asr_usedmap *out, char *note, size_t cap, struct asr_error *err)
{
    const struct ntfs_geom *g = &v->g;
    struct ntfs_refs refs = {0};
    uint16_t flags = 0;
    uint64_t added = 0;
    int rc = ntfs_read_record(v, REC_VOLUME, err);
    if (rc == ASR_OK)
        rc = read_volume_info(v->rec, out, &flags, err);
    if (rc == ASR_OK)
        rc = ntfs_read_record(v, REC_BITMAP, err);
    if (rc == ASR_OK)
        rc = emit_bitmap(v->w, g, v->rec, &out->used, err);
    if (rc == ASR_OK)
        rc = ntfs_collect_refs(v, &refs, err);
    if (rc == ASR_OK)
        rc = ntfs_merge_refs(&refs, g, &out->used, &added, err);
    if (rc == ASR_OK)
        rc = add_backup_boot(v, &out->used, err);
    if (rc == ASR_OK)
        describe(&refs, flags, added, g, note, cap);
    ntfs_refs_free(&refs);
    return rc;
}

int asr_ntfs_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    struct ntfs_volume v;
    char note[sizeof out->note - 8] = "";
    int rc = ntfs_open(&v, w, err);
    if (rc == ASR_OK)
        rc = map_volume(&v, out, note, sizeof note, err);
    ntfs_close(&v);
    if (rc != ASR_OK) {
        asr_ranges_free(&out->used);
        out->fs_label[0] = '\0';
        return rc;
    }
    out->block_size = (uint32_t)v.g.cluster;
    snprintf(out->fs_type, sizeof out->fs_type, "ntfs");
    snprintf(out->fs_uuid, sizeof out->fs_uuid, "%016llX", (unsigned long long)get_le64(v.boot + 0x48));
    if (note[0])
        snprintf(out->note, sizeof out->note, "ntfs: %s", note);
    out->damaged = note[0] != '\0'; /* dirty, or records and $Bitmap disagree: each a flaw */
    return ASR_OK;
}
