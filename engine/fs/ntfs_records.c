/* NTFS on-disk records: the boot sector's geometry, runlists decoded into runs inside the volume,
 * streams read through them, MFT records read through $MFT's runs with their fixups applied and
 * their headers checked, attributes found in them, and opening a volume (boot sector, then $MFT's
 * own runs from record 0). The lower layer of the NTFS readers (ntfs_internal.h): the used map
 * (fs_ntfs.c), the walk of what in-use records reference (ntfs_refs.c) and the path lookup
 * (ntfs_lookup.c) all read through it. Every value comes from the disk and is checked here
 * against the window, the record or the attribute before it is used. */
#include "ntfs_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTFS_MAX_CLUSTER (2u << 20) /* Windows' largest cluster, 2 MiB */

/* MFT record number of $MFT, whose runs locate every other record. */
#define REC_MFT 0

/* Attribute types. */
#define AT_DATA 0x80u
#define AT_END 0xFFFFFFFFu

#define ATTR_COMPRESSED 0x0001u
#define ATTR_ENCRYPTED 0x4000u
#define ATTR_SPARSE 0x8000u

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

static int nomem(struct asr_error *err, const char *what)
{
    return asr_fail_public(err, ASR_E_NOMEM, "ntfs: out of memory for %s", what);
}

/* ---- boot sector -------------------------------------------------------------------------- */

/* Cluster size from bytes per sector and the sectors-per-cluster byte: 1..128 sectors as is,
 * and above 0x80 the newer encoding of 2^(256 - value) sectors for clusters beyond 64 KiB. */
static int cluster_size(const uint8_t *b, uint32_t bps, uint64_t *out, struct asr_error *err)
{
    uint32_t spc = b[13];
    uint64_t cs;
    if (spc == 0 || (spc <= 0x80 && !is_pow2(spc)))
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: sectors per cluster 0x%02X invalid (boot sector offset 13)", spc);
    if (spc <= 0x80)
        cs = (uint64_t)bps * spc;
    else if (256 - spc > 21) /* beyond 2 MiB even with 1-byte sectors: no shift overflow */
        cs = (uint64_t)NTFS_MAX_CLUSTER + 1;
    else
        cs = (uint64_t)bps << (256 - spc);
    if (cs > NTFS_MAX_CLUSTER)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "ntfs: cluster size above 2 MiB (sectors per cluster 0x%02X, boot sector offset 13)", spc);
    *out = cs;
    return ASR_OK;
}

/* MFT record size: positive values count clusters, negative ones give 2^-value bytes. */
static int record_size(const uint8_t *b, uint64_t cs, uint32_t *out, struct asr_error *err)
{
    int8_t c = (int8_t)b[0x40];
    uint64_t rs = 0;
    if (c > 0)
        rs = (uint64_t)c * cs;
    else if (c < 0 && c >= -16)
        rs = 1ull << -c;
    if (!is_pow2(rs) || rs < NTFS_FIXUP_STRIDE || rs > NTFS_MAX_RECORD)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record size %llu (clusters per record %d, boot sector "
                                                   "offset 0x40) not a power of two in 512..65536",
                               (unsigned long long)rs, c);
    *out = (uint32_t)rs;
    return ASR_OK;
}

/* Validates every boot-sector field that decides where a later read goes. */
static int parse_boot(const uint8_t *b, uint64_t window, struct ntfs_geom *g, struct asr_error *err)
{
    if (memcmp(b + 3, "NTFS    ", 8) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: OEM id \"NTFS    \" missing (boot sector offset 3)");
    uint32_t bps = get_le16(b + 11);
    if (!is_pow2(bps) || bps < 256 || bps > 4096)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: bytes per sector %u invalid (boot sector offset 11)", bps);
    /* FAT's fields must be zero on NTFS (as Windows and ntfs-3g require). */
    if (get_le16(b + 0x0E) || b[0x10] || get_le16(b + 0x11) || get_le16(b + 0x13) || get_le16(b + 0x16) ||
        get_le32(b + 0x20))
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: FAT BPB fields not zero (boot sector offsets 0x0E-0x23)");
    int rc = cluster_size(b, bps, &g->cluster, err);
    if (rc == ASR_OK)
        rc = record_size(b, g->cluster, &g->record, err);
    if (rc != ASR_OK)
        return rc;
    g->sector = bps;
    g->sectors = get_le64(b + 0x28);
    if (g->sectors == 0 || g->sectors > window / bps)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: %llu sectors of %u bytes (boot sector offset 0x28) do not fit "
                                                   "the %llu-byte volume",
                               (unsigned long long)g->sectors, bps, (unsigned long long)window);
    g->clusters = g->sectors * bps / g->cluster; /* no overflow: at most window bytes */
    g->mft_lcn = get_le64(b + 0x30);
    uint64_t mirr = get_le64(b + 0x38), rec_clusters = (g->record + g->cluster - 1) / g->cluster;
    if (g->mft_lcn >= g->clusters || g->clusters - g->mft_lcn < rec_clusters)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $MFT cluster %llu (boot sector offset 0x30) outside the %llu "
                                                   "clusters of the volume",
                               (unsigned long long)g->mft_lcn, (unsigned long long)g->clusters);
    if (mirr >= g->clusters)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $MFTMirr cluster %llu (boot sector offset 0x38) outside the "
                                                   "%llu clusters of the volume",
                               (unsigned long long)mirr, (unsigned long long)g->clusters);
    return ASR_OK;
}

/* ---- runlists ------------------------------------------------------------------------------ */

/* An n-byte little-endian two's-complement field (1..8 bytes) as magnitude and sign. */
static uint64_t signed_field(const uint8_t *p, unsigned n, bool *negative)
{
    int64_t v = get_le_int(p, n);
    *negative = v < 0;
    return *negative ? -(uint64_t)v : (uint64_t)v;
}

/* One mapping pair at attribute offset at: a header byte (length and offset field sizes), the run
 * length, the LCN delta. Adds the run to rl, keeping every run and the VCN total inside the
 * volume, which bounds every later offset computation; returns the pair's size in *step. */
static int decode_pair(const uint8_t *p, uint32_t at, uint32_t end, const struct ntfs_geom *g, uint64_t rec_no,
                       uint64_t *vcn, uint64_t *lcn, struct ntfs_runlist *rl, uint32_t *step, struct asr_error *err)
{
    unsigned ls = p[at] & 0x0F, os = p[at] >> 4;
    if (ls == 0 || ls > 8 || os > 8 || end - at - 1 < ls + os)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: mapping pair header 0x%02X at attribute "
                                                   "offset %u invalid",
                               (unsigned long long)rec_no, p[at], at);
    bool neg;
    uint64_t len = signed_field(p + at + 1, ls, &neg);
    if (neg || len == 0 || len > g->clusters - *vcn)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: run length at attribute offset %u invalid "
                                                   "or beyond the volume",
                               (unsigned long long)rec_no, at);
    /* A run without an LCN is a hole: never in the plain streams read here. */
    if (os == 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: sparse run in a stream that may have none "
                                                   "(attribute offset %u)",
                               (unsigned long long)rec_no, at);
    uint64_t delta = signed_field(p + at + 1 + ls, os, &neg);
    if (neg ? delta > *lcn : delta > g->clusters - *lcn)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: run at attribute offset %u starts outside "
                                                   "the volume",
                               (unsigned long long)rec_no, at);
    *lcn = neg ? *lcn - delta : *lcn + delta;
    if (len > g->clusters - *lcn)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: run of %llu clusters at cluster %llu ends "
                                                   "past the volume's %llu clusters",
                               (unsigned long long)rec_no, (unsigned long long)len, (unsigned long long)*lcn,
                               (unsigned long long)g->clusters);
    rl->v[rl->n++] = (struct ntfs_run){*vcn, *lcn, len};
    *vcn += len;
    *step = 1 + ls + os;
    return ASR_OK;
}

int ntfs_runs(const struct ntfs_attr *a, const struct ntfs_geom *g, uint64_t rec_no, struct ntfs_runlist *rl,
              struct asr_error *err)
{
    const uint8_t *p = a->p;
    if (!a->nonresident)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: attribute 0x%X resident where it must not be",
                               (unsigned long long)rec_no, get_le32(p));
    if (get_le16(p + 0x0C) & (ATTR_COMPRESSED | ATTR_ENCRYPTED | ATTR_SPARSE))
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: attribute 0x%X compressed, encrypted or "
                                                   "sparse (flags 0x%04X)",
                               (unsigned long long)rec_no, get_le32(p), get_le16(p + 0x0C));
    if (get_le64(p + 0x10) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: attribute 0x%X extent starts at VCN %llu, "
                                                   "not 0",
                               (unsigned long long)rec_no, get_le32(p), (unsigned long long)get_le64(p + 0x10));
    uint32_t at = get_le16(p + 0x20);
    if (at < 0x40 || at >= a->len)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: mapping pairs offset %u outside the %u-byte "
                                                   "attribute",
                               (unsigned long long)rec_no, at, a->len);
    rl->v = malloc(((a->len - at) / 2 + 1) * sizeof *rl->v); /* each pair takes at least 2 bytes */
    if (!rl->v)
        return nomem(err, "a runlist");
    uint64_t vcn = 0, lcn = 0;
    while (at < a->len && p[at] != 0) {
        uint32_t step = 0;
        int rc = decode_pair(p, at, a->len, g, rec_no, &vcn, &lcn, rl, &step, err);
        if (rc != ASR_OK)
            return rc;
        at += step;
    }
    uint64_t highest = get_le64(p + 0x18);
    if (rl->n == 0 || highest != vcn - 1)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: runs map %llu clusters but the attribute's "
                                                   "last VCN is %llu",
                               (unsigned long long)rec_no, (unsigned long long)vcn, (unsigned long long)highest);
    rl->vcns = vcn;
    return ASR_OK;
}

/* Every run lies inside the volume (ntfs_runs), so each read lands inside the window. */
int ntfs_stream_read(const struct asr_window *w, const struct ntfs_geom *g, const struct ntfs_runlist *rl,
                     const char *what, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < rl->n && len; i++) {
        uint64_t start = rl->v[i].vcn * g->cluster, end = start + rl->v[i].len * g->cluster;
        if (off >= end)
            continue;
        size_t n = end - off < len ? (size_t)(end - off) : len;
        int rc = asr_window_read(w, what, rl->v[i].lcn * g->cluster + (off - start), p, n, err);
        if (rc != ASR_OK)
            return rc;
        p += n;
        off += n;
        len -= n;
    }
    if (len)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: stream offset %llu lies past its runs",
                               (unsigned long long)off);
    return ASR_OK;
}

/* ---- MFT records ------------------------------------------------------------------------- */

/* Update-sequence fixups: the last two bytes of every 512-byte stride hold the sequence number
 * (a torn write shows as a mismatch) and the originals sit in the array at usa_ofs, which must
 * lie before the first stride's end so that restoring one never overwrites the array. */
int ntfs_apply_fixups(uint8_t *b, uint32_t size, const char *what, uint64_t no, struct asr_error *err)
{
    uint32_t usa = get_le16(b + 4), count = get_le16(b + 6);
    if ((usa & 1) || usa < 0x28 || count != size / NTFS_FIXUP_STRIDE + 1 || usa + 2 * count > NTFS_FIXUP_STRIDE - 2)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: %s %llu: update sequence array (offset %u, %u entries) "
                                                   "invalid for %u bytes",
                               what, (unsigned long long)no, usa, count, size);
    uint16_t usn = get_le16(b + usa);
    for (uint32_t i = 1; i < count; i++) {
        uint8_t *end = b + i * NTFS_FIXUP_STRIDE - 2;
        if (get_le16(end) != usn)
            return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: %s %llu: update sequence mismatch in stride %u (torn "
                                                       "write)",
                                   what, (unsigned long long)no, i - 1);
        end[0] = b[usa + 2 * i];
        end[1] = b[usa + 2 * i + 1];
    }
    return ASR_OK;
}

static int read_record_via(const struct asr_window *w, const struct ntfs_geom *g, const struct ntfs_runlist *mft,
                           uint64_t rec_no, uint8_t *r, struct asr_error *err)
{
    if (rec_no >= mft->vcns * g->cluster / g->record) /* a division: rec_no may be any 48-bit number */
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu lies past the mapped $MFT",
                               (unsigned long long)rec_no);
    char what[48];
    snprintf(what, sizeof what, "$MFT record %llu", (unsigned long long)rec_no);
    int rc = ntfs_stream_read(w, g, mft, what, rec_no * g->record, r, g->record, err);
    if (rc != ASR_OK)
        return rc;
    if (memcmp(r, "FILE", 4) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: signature is not FILE%s",
                               (unsigned long long)rec_no, memcmp(r, "BAAD", 4) == 0 ? " (marked bad by chkdsk)" : "");
    rc = ntfs_apply_fixups(r, g->record, "MFT record", rec_no, err);
    if (rc != ASR_OK)
        return rc;
    uint32_t usa_end = get_le16(r + 4) + 2u * get_le16(r + 6), attrs = get_le16(r + 0x14), used = get_le32(r + 0x18);
    if (!(get_le16(r + 0x16) & NTFS_RECORD_IN_USE))
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu not in use", (unsigned long long)rec_no);
    if (get_le64(r + 0x20) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu is an extension record",
                               (unsigned long long)rec_no);
    if (get_le32(r + 0x1C) != g->record || used > g->record || attrs < usa_end || (attrs & 7) || attrs + 8 > used)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: header sizes invalid (attributes at %u, %u "
                                                   "bytes in use)",
                               (unsigned long long)rec_no, attrs, used);
    if (get_le16(r + 4) >= 0x30 && get_le32(r + 0x2C) != (uint32_t)rec_no) /* NTFS 3.1 records carry their number */
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu says it is record %u",
                               (unsigned long long)rec_no, get_le32(r + 0x2C));
    return ASR_OK;
}

int ntfs_read_record(struct ntfs_volume *v, uint64_t rec_no, struct asr_error *err)
{
    return read_record_via(v->w, &v->g, &v->mft, rec_no, v->rec, err);
}

/* Whether the attribute at a (len bytes, header checked) is named name (ASCII, NULL: unnamed). */
static bool attr_named(const uint8_t *a, uint32_t len, const char *name)
{
    size_t want = name ? strlen(name) : 0;
    uint32_t units = a[9], off = get_le16(a + 10);
    if (units != want)
        return false;
    if (want == 0)
        return true;
    if (off > len || 2ull * units > len - off)
        return false; /* a name outside its attribute names nothing we look for */
    for (size_t i = 0; i < want; i++)
        if (get_le16(a + off + 2 * i) != (uint8_t)name[i])
            return false;
    return true;
}

int ntfs_find_attr(const uint8_t *r, uint64_t rec_no, uint32_t type, const char *name, struct ntfs_attr *a,
                   bool *found, struct asr_error *err)
{
    uint32_t used = get_le32(r + 0x18), at = get_le16(r + 0x14);
    *found = false;
    for (;;) {
        if (used - at < 4)
            return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: attributes run past bytes in use",
                                   (unsigned long long)rec_no);
        uint32_t t = get_le32(r + at);
        if (t == AT_END)
            return ASR_OK;
        uint32_t len = used - at >= 16 ? get_le32(r + at + 4) : 0;
        bool nonres = used - at >= 16 && r[at + 8];
        if (len < 24 || (len & 7) || len > used - at || r[at + 8] > 1 || (nonres && len < 0x40))
            return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: attribute at offset %u has invalid "
                                                       "length %u",
                                   (unsigned long long)rec_no, at, len);
        if (t == type && attr_named(r + at, len, name)) {
            *a = (struct ntfs_attr){r + at, len, nonres};
            *found = true;
            return ASR_OK;
        }
        at += len;
    }
}

int ntfs_resident_value(const struct ntfs_attr *a, uint64_t rec_no, const uint8_t **v, uint32_t *n,
                        struct asr_error *err)
{
    uint32_t len = get_le32(a->p + 0x10), off = get_le16(a->p + 0x14);
    if (a->nonresident || off > a->len || len > a->len - off)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu: resident value (%u bytes at %u) outside its "
                                                   "attribute",
                               (unsigned long long)rec_no, len, off);
    *v = a->p + off;
    *n = len;
    return ASR_OK;
}

int ntfs_data_runs(const uint8_t *r, uint64_t rec_no, const struct ntfs_geom *g, struct ntfs_attr *a,
                   struct ntfs_runlist *rl, struct asr_error *err)
{
    bool found;
    int rc = ntfs_find_attr(r, rec_no, AT_DATA, NULL, a, &found, err);
    if (rc != ASR_OK)
        return rc;
    if (!found)
        return asr_fail_public(err, ASR_E_CORRUPT, "ntfs: MFT record %llu has no unnamed $DATA attribute",
                               (unsigned long long)rec_no);
    return a->nonresident ? ntfs_runs(a, g, rec_no, rl, err) : ASR_OK;
}

/* ---- opening a volume ---------------------------------------------------------------------- */

/* Record 0 read straight from the boot sector's $MFT cluster gives $MFT's own runs, through which
 * every other record is found (the first 16 records are normally contiguous, but need not be). */
static int load_mft(struct ntfs_volume *v, struct asr_error *err)
{
    const struct ntfs_geom *g = &v->g;
    struct ntfs_run first = {0, g->mft_lcn, (g->record + g->cluster - 1) / g->cluster};
    struct ntfs_runlist boot = {&first, 1, first.len};
    struct ntfs_attr a;
    int rc = read_record_via(v->w, g, &boot, REC_MFT, v->rec, err);
    if (rc == ASR_OK)
        rc = ntfs_data_runs(v->rec, REC_MFT, g, &a, &v->mft, err);
    if (rc == ASR_OK && !a.nonresident)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $MFT's $DATA is resident");
    if (rc == ASR_OK && v->mft.v[0].lcn != g->mft_lcn)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "ntfs: $MFT starts at cluster %llu, the boot sector says %llu",
                             (unsigned long long)v->mft.v[0].lcn, (unsigned long long)g->mft_lcn);
    return rc;
}

int ntfs_open(struct ntfs_volume *v, const struct asr_window *w, struct asr_error *err)
{
    memset(v, 0, sizeof *v);
    v->w = w;
    int rc = asr_window_read(w, "the boot sector", 0, v->boot, sizeof v->boot, err);
    if (rc == ASR_OK)
        rc = parse_boot(v->boot, w->size, &v->g, err);
    if (rc != ASR_OK)
        return rc;
    v->rec = malloc(v->g.record); /* at most NTFS_MAX_RECORD (record_size) */
    if (!v->rec)
        return nomem(err, "an MFT record");
    rc = load_mft(v, err);
    if (rc != ASR_OK)
        ntfs_close(v);
    return rc;
}

void ntfs_close(struct ntfs_volume *v)
{
    free(v->mft.v);
    free(v->rec);
    v->mft = (struct ntfs_runlist){0};
    v->rec = NULL;
}

