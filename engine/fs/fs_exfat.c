/* exFAT used-byte map: both boot regions, the FATs, the cluster-heap clusters the Allocation
 * Bitmap marks (found through the root directory's FAT chain), and those a bounded walk of the
 * directory tree finds referenced though the bitmap calls them free (a damaged volume must restore
 * as it was, damage and all). The walk runs on every volume: the format has no cheap check that a
 * bitmap hole would fail, and it costs little (2 TiB, 10,000 files, cold cache: 43 ms instead of
 * 23 ms). Only structure that cannot be read at all (boot checksum, geometry, the root's chain,
 * the bitmap and up-case entries) makes the map fail and the volume be captured whole. Hand-written from Microsoft's exFAT specification because no Debian
 * library exposes exFAT allocation from a byte window. The boot checks, FAT cache and chain walk
 * are shared with the path reader (fs_exfat_internal.h, fs_exfat_file.c). */
#include "asr_engine.h"
#include "fs_exfat_internal.h"
#include "fs_walk.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOOT_REGION_SECTORS 12u /* boot sector, 8 extended boot sectors, OEM, reserved, checksum */
#define EXFAT_MAX_CLUSTERS 0xFFFFFFF5u
#define EXFAT_BAD 0xFFFFFFF7u

#define ENTRY_BITMAP 0x81
#define ENTRY_UPCASE 0x82
#define ENTRY_LABEL 0x83

/* An Allocation Bitmap or the up-case table, as its root directory entry describes it. */
struct sys_file {
    int present;
    uint32_t first_cluster;
    uint64_t length;
};

uint64_t exfat_cluster_offset(const struct exfat_geom *g, uint32_t c)
{
    return g->heap_offset + ((uint64_t)(c - 2) << g->cluster_shift);
}

int exfat_valid_cluster(const struct exfat_geom *g, uint64_t c) { return c >= 2 && c <= (uint64_t)g->clusters + 1; }

/* The specification's boot checksum over sectors 0..10, skipping VolumeFlags (106, 107) and
 * PercentInUse (112), which change without the checksum being rewritten. */
static uint32_t boot_checksum(const uint8_t *region, size_t bytes)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < bytes; i++) {
        if (i == 106 || i == 107 || i == 112)
            continue;
        sum = ((sum & 1) ? 0x80000000u : 0) + (sum >> 1) + region[i];
    }
    return sum;
}

/* Checks the fields of the boot sector (first 512 bytes) that place everything else. */
static int parse_boot_sector(const uint8_t *b, uint64_t window, struct exfat_geom *g, struct asr_error *err)
{
    if (memcmp(b, "\xEB\x76\x90", 3) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: jump instruction not EB 76 90 (boot sector offset 0)");
    if (memcmp(b + 3, "EXFAT   ", 8) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: file system name not \"EXFAT   \" (boot sector offset 3)");
    for (int i = 11; i < 64; i++)
        if (b[i])
            return asr_fail_public(err, ASR_E_CORRUPT, "exfat: MustBeZero byte not zero (boot sector offset %d)", i);
    if (b[510] != 0x55 || b[511] != 0xAA)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: boot signature 55 AA missing (boot sector offset 510)");
    if (b[105] != 1)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: file system revision %u.%02u unsupported (boot sector offset 104)",
                               b[105], b[104]);
    g->sector_shift = b[108];
    if (g->sector_shift < 9 || g->sector_shift > 12)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: bytes per sector shift %u outside 9..12 (boot sector offset 108)",
                               g->sector_shift);
    if (b[109] > 25 - g->sector_shift)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "exfat: sectors per cluster shift %u makes clusters above 32 MiB (boot sector offset 109)",
                               b[109]);
    g->cluster_shift = g->sector_shift + b[109];
    g->fats = b[110];
    if (g->fats != 1 && g->fats != 2)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: number of FATs %u not 1 or 2 (boot sector offset 110)", g->fats);
    g->active = get_le16(b + 106) & 1;
    if (g->active && g->fats == 1)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: second FAT active on a one-FAT volume (boot sector offset 106)");

    uint32_t ss = g->sector_shift;
    uint64_t volume_sectors = get_le64(b + 72);
    if (volume_sectors > window >> ss)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "exfat: volume length of %llu sectors exceeds its %llu-byte window (boot sector offset 72)",
                               (unsigned long long)volume_sectors, (unsigned long long)window);
    if (volume_sectors < (1u << 20) >> ss)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: volume length of %llu sectors below 1 MiB (boot sector offset 72)",
                               (unsigned long long)volume_sectors);
    uint64_t fat_sector = get_le32(b + 80), fat_sectors = get_le32(b + 84), heap_sector = get_le32(b + 88);
    g->clusters = get_le32(b + 92);
    g->root_cluster = get_le32(b + 96);
    g->serial = get_le32(b + 100);
    if (fat_sector < 2 * BOOT_REGION_SECTORS)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: FAT offset %llu inside the boot regions (boot sector offset 80)",
                               (unsigned long long)fat_sector);
    if (g->clusters == 0 || g->clusters > EXFAT_MAX_CLUSTERS)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: cluster count %u invalid (boot sector offset 92)", g->clusters);
    if ((fat_sectors << ss) < ((uint64_t)g->clusters + 2) * 4)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: FAT of %llu sectors too small for %u clusters (boot sector offset 84)",
                               (unsigned long long)fat_sectors, g->clusters);
    if (fat_sector + g->fats * fat_sectors > heap_sector)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "exfat: FATs end at sector %llu, past the cluster heap at %llu (boot sector offsets 80-88)",
                               (unsigned long long)(fat_sector + g->fats * fat_sectors), (unsigned long long)heap_sector);
    uint64_t heap_end = heap_sector + ((uint64_t)g->clusters << (g->cluster_shift - ss));
    if (heap_end > volume_sectors)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "exfat: cluster heap ends at sector %llu, past the %llu-sector volume (boot sector offset 92)",
                               (unsigned long long)heap_end, (unsigned long long)volume_sectors);
    if (!exfat_valid_cluster(g, g->root_cluster))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "exfat: root directory cluster %u outside clusters 2..%llu (boot sector offset 96)",
                               g->root_cluster, (unsigned long long)g->clusters + 1);
    g->fat_offset = fat_sector << ss;
    g->fat_bytes = fat_sectors << ss;
    g->active_fat_offset = g->fat_offset + g->active * g->fat_bytes;
    g->heap_offset = heap_sector << ss;
    return ASR_OK;
}

/* Reads the main boot region and checks its checksum sector. */
static int check_boot_region(const struct asr_window *w, const struct exfat_geom *g, struct asr_error *err)
{
    size_t sector = (size_t)1 << g->sector_shift, bytes = BOOT_REGION_SECTORS * sector;
    uint8_t *region = malloc(bytes); /* at most 48 KiB: the shift is validated */
    if (!region)
        return asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory for the boot region");
    int rc = asr_window_read(w, "the boot region", 0, region, bytes, err);
    if (rc == ASR_OK) {
        uint32_t sum = boot_checksum(region, 11 * sector);
        for (size_t i = 11 * sector; i < bytes && rc == ASR_OK; i += 4)
            if (get_le32(region + i) != sum)
                rc = asr_fail_public(err, ASR_E_CORRUPT,
                                     "exfat: boot checksum mismatch: computed %08X, sector 11 holds %08X (volume offset %zu)",
                                     sum, get_le32(region + i), i);
    }
    free(region);
    return rc;
}

int exfat_read_geom(const struct asr_window *w, struct exfat_geom *g, struct asr_error *err)
{
    uint8_t boot[512];
    int rc = asr_window_read(w, "the boot sector", 0, boot, sizeof boot, err);
    if (rc == ASR_OK)
        rc = parse_boot_sector(boot, w->size, g, err);
    if (rc == ASR_OK)
        rc = check_boot_region(w, g, err);
    return rc;
}

int exfat_fat_entry(struct exfat_cache *fc, uint32_t c, uint32_t *next, struct asr_error *err)
{
    if (!fc->count || c < fc->start || c >= fc->start + fc->count) {
        uint64_t entries = (uint64_t)fc->g->clusters + 2, per = EXFAT_FAT_CACHE_BYTES / 4;
        fc->start = c / per * per;
        fc->count = (uint32_t)(entries - fc->start < per ? entries - fc->start : per);
        int rc = asr_window_read(fc->w, "the FAT", fc->g->active_fat_offset + fc->start * 4, fc->buf, (size_t)fc->count * 4, err);
        if (rc != ASR_OK) {
            fc->count = 0;
            return rc;
        }
    }
    *next = get_le32(fc->buf + (c - fc->start) * 4);
    return ASR_OK;
}

int exfat_chain_start(struct exfat_chain *ch, struct exfat_cache *fc, const char *what, uint32_t first, uint64_t limit,
                       struct asr_error *err)
{
    *ch = (struct exfat_chain){fc, what, first, first, 1, limit, 1, 0};
    if (!exfat_valid_cluster(fc->g, first))
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: %s starts at invalid cluster %u", what, first);
    return ASR_OK;
}

/* Advances to the next cluster of the chain; *done when the current one ends it. */
int exfat_chain_next(struct exfat_chain *ch, int *done, struct asr_error *err)
{
    uint32_t next;
    int rc = exfat_fat_entry(ch->fc, ch->cur, &next, err);
    if (rc != ASR_OK)
        return rc;
    uint64_t where = ch->fc->g->active_fat_offset + (uint64_t)ch->cur * 4;
    *done = next == EXFAT_EOC;
    if (*done)
        return ASR_OK;
    if (!exfat_valid_cluster(ch->fc->g, next))
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: %s: cluster %u links to %s %u (FAT entry at volume offset %llu)",
                               ch->what, ch->cur, next == EXFAT_BAD ? "the bad-cluster mark" : "invalid cluster", next,
                               (unsigned long long)where);
    if (next == ch->tortoise)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "exfat: %s: FAT chain loops back to cluster %u (FAT entry at volume offset %llu)",
                               ch->what, next, (unsigned long long)where);
    if (++ch->steps > ch->limit)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: %s: FAT chain longer than %llu clusters", ch->what,
                               (unsigned long long)ch->limit);
    if (ch->power == ch->lam) {
        ch->tortoise = next;
        ch->power *= 2;
        ch->lam = 0;
    }
    ch->lam++;
    ch->cur = next;
    return ASR_OK;
}

/* The label is UTF-16 (at most 11 units); blkid and the rest of asrimg speak UTF-8. */
static void label_to_utf8(const uint8_t *units, unsigned n, char *out, size_t cap)
{
    size_t o = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t u = get_le16(units + 2 * i), low = i + 1 < n ? get_le16(units + 2 * i + 2) : 0;
        if (u >= 0xD800 && u < 0xDC00 && low >= 0xDC00 && low < 0xE000) {
            u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
            i++;
        } else if (u >= 0xD800 && u < 0xE000) {
            u = 0xFFFD; /* an unpaired surrogate */
        }
        uint8_t enc[4];
        size_t len;
        if (u < 0x80) {
            enc[0] = (uint8_t)u;
            len = 1;
        } else if (u < 0x800) {
            enc[0] = (uint8_t)(0xC0 | u >> 6);
            enc[1] = (uint8_t)(0x80 | (u & 0x3F));
            len = 2;
        } else if (u < 0x10000) {
            enc[0] = (uint8_t)(0xE0 | u >> 12);
            enc[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
            enc[2] = (uint8_t)(0x80 | (u & 0x3F));
            len = 3;
        } else {
            enc[0] = (uint8_t)(0xF0 | u >> 18);
            enc[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3F));
            enc[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
            enc[3] = (uint8_t)(0x80 | (u & 0x3F));
            len = 4;
        }
        if (o + len >= cap)
            break;
        memcpy(out + o, enc, len);
        o += len;
    }
    out[o] = '\0';
}

struct root_info {
    struct sys_file bitmap[2]; /* by BitmapFlags bit 0: the bitmap of FAT 0 or FAT 1 */
    struct sys_file upcase;
    char label[64];
};

static int record_sys_file(struct sys_file *f, const uint8_t *e, const char *what, uint64_t at, struct asr_error *err)
{
    if (f->present)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: second %s entry in the root directory (volume offset %llu)", what,
                               (unsigned long long)at);
    f->present = 1;
    f->first_cluster = get_le32(e + 20);
    f->length = get_le64(e + 24);
    return ASR_OK;
}

/* Looks at one 32-byte root directory entry at volume offset at; *end at the end marker. */
static int root_entry(const uint8_t *e, uint64_t at, struct root_info *ri, int *end, struct asr_error *err)
{
    switch (e[0]) {
    case ENTRY_END:
        *end = 1;
        return ASR_OK;
    case ENTRY_BITMAP:
        return record_sys_file(&ri->bitmap[e[1] & 1], e, e[1] & 1 ? "second allocation bitmap" : "allocation bitmap", at, err);
    case ENTRY_UPCASE:
        return record_sys_file(&ri->upcase, e, "up-case table", at, err);
    case ENTRY_LABEL:
        if (e[1] > 11)
            return asr_fail_public(err, ASR_E_CORRUPT, "exfat: volume label of %u characters, more than 11 (volume offset %llu)",
                                   e[1], (unsigned long long)at + 1);
        label_to_utf8(e + 2, e[1], ri->label, sizeof ri->label);
        return ASR_OK;
    default:
        return ASR_OK; /* files, deleted entries, GUIDs, vendor entries: none changes the map */
    }
}

/* Walks the root directory's whole FAT chain (the root has no NoFatChain flag, so the FAT is
 * always its authority), reading its entries up to the end marker. */
static int scan_root(const struct asr_window *w, struct exfat_cache *fc, struct root_info *ri, struct asr_error *err)
{
    const struct exfat_geom *g = fc->g;
    uint64_t cluster = 1ull << g->cluster_shift, piece = cluster < EXFAT_READ_PIECE ? cluster : EXFAT_READ_PIECE;
    uint64_t limit = EXFAT_DIR_MAX_BYTES >> g->cluster_shift; /* at least 8: clusters are at most 32 MiB */
    if (limit > g->clusters)
        limit = g->clusters;
    uint8_t *buf = malloc((size_t)piece);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory for a directory piece");
    struct exfat_chain ch;
    int rc = exfat_chain_start(&ch, fc, "root directory", g->root_cluster, limit, err), end = 0, done = 0;
    while (rc == ASR_OK && !done) {
        for (uint64_t off = 0; off < cluster && !end && rc == ASR_OK; off += piece) {
            uint64_t at = exfat_cluster_offset(g, ch.cur) + off;
            rc = asr_window_read(w, "the root directory", at, buf, (size_t)piece, err);
            for (uint64_t i = 0; i < piece && !end && rc == ASR_OK; i += 32)
                rc = root_entry(buf + i, at + i, ri, &end, err);
        }
        if (rc == ASR_OK)
            rc = exfat_chain_next(&ch, &done, err);
    }
    free(buf);
    return rc;
}

/* A system file's clusters, read as one contiguous run from its first cluster, as the Linux
 * kernel and exfat-fuse read the bitmap and up-case table. */
static int sys_file_span(const struct exfat_geom *g, const struct sys_file *f, const char *what, uint32_t *count,
                         struct asr_error *err)
{
    uint64_t n = (f->length + (1ull << g->cluster_shift) - 1) >> g->cluster_shift;
    if (n == 0 || !exfat_valid_cluster(g, f->first_cluster) || !exfat_valid_cluster(g, f->first_cluster + n - 1))
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: %s of %llu bytes at cluster %u lies outside the cluster heap", what,
                               (unsigned long long)f->length, f->first_cluster);
    *count = (uint32_t)n;
    return ASR_OK;
}

/* Which of the two possible bitmaps exist must match the number of FATs; each must cover the
 * cluster heap and lie inside it. */
static int check_bitmaps(const struct exfat_geom *g, struct root_info *ri, struct asr_error *err)
{
    uint64_t need = ((uint64_t)g->clusters + 7) / 8;
    for (uint32_t i = 0; i < 2; i++) {
        struct sys_file *b = &ri->bitmap[i];
        if (i < g->fats && !b->present)
            return asr_fail_public(err, ASR_E_CORRUPT, "exfat: no allocation bitmap %u in the root directory", i);
        if (i >= g->fats && b->present)
            return asr_fail_public(err, ASR_E_CORRUPT, "exfat: allocation bitmap for FAT 1 on a one-FAT volume");
        if (!b->present)
            continue;
        if (b->length < need)
            return asr_fail_public(err, ASR_E_CORRUPT, "exfat: allocation bitmap %u is %llu bytes; %u clusters need %llu", i,
                                   (unsigned long long)b->length, g->clusters, (unsigned long long)need);
        uint32_t n;
        int rc = sys_file_span(g, b, i ? "second allocation bitmap" : "allocation bitmap", &n, err);
        if (rc != ASR_OK)
            return rc;
    }
    if (!ri->upcase.present)
        return asr_fail_public(err, ASR_E_CORRUPT, "exfat: no up-case table entry in the root directory");
    uint32_t n;
    return sys_file_span(g, &ri->upcase, "up-case table", &n, err);
}

/* ---- the directory walk ------------------------------------------------------------------ */

struct bit_cache {
    const struct asr_window *w;
    uint64_t base;  /* volume offset of the bitmap */
    uint64_t start; /* bitmap byte held in buf[0] */
    size_t count;
    uint8_t buf[64 << 10];
};

/* Byte `byte` of a bitmap of `bytes` bytes (the caller keeps byte below it). */
static int bitmap_byte(struct bit_cache *bc, uint64_t bytes, uint64_t byte, uint8_t *v, struct asr_error *err)
{
    if (!bc->count || byte < bc->start || byte >= bc->start + bc->count) {
        bc->start = byte / sizeof bc->buf * sizeof bc->buf;
        bc->count = bytes - bc->start < sizeof bc->buf ? (size_t)(bytes - bc->start) : sizeof bc->buf;
        int rc = asr_window_read(bc->w, "the allocation bitmap", bc->base + bc->start, bc->buf, bc->count, err);
        if (rc != ASR_OK) {
            bc->count = 0;
            return rc;
        }
    }
    *v = bc->buf[byte - bc->start];
    return ASR_OK;
}

struct exfat_walk {
    const struct asr_window *w;
    const struct exfat_geom *g;
    struct exfat_cache *fc;
    struct bit_cache *bc[2]; /* one per bitmap: a cluster either marks is captured anyway */
    uint64_t bitmap_bytes;
    struct walk wk;
    uint8_t *buf;  /* one directory piece */
    char first[64]; /* the first cluster found free, for the note */
};

/* Of the bitmaps' byte `byte`, the bits either of them sets. */
static int marked_byte(struct exfat_walk *xw, uint64_t byte, uint8_t *v, struct asr_error *err)
{
    uint8_t other = 0;
    int rc = bitmap_byte(xw->bc[0], xw->bitmap_bytes, byte, v, err);
    if (rc == ASR_OK && xw->bc[1])
        rc = bitmap_byte(xw->bc[1], xw->bitmap_bytes, byte, &other, err);
    *v |= other;
    return rc;
}

static int take_unmarked(struct exfat_walk *xw, uint64_t first, uint64_t n, const char *what, struct asr_error *err)
{
    if (!n)
        return ASR_OK;
    if (!xw->first[0])
        snprintf(xw->first, sizeof xw->first, "cluster %llu, of %s", (unsigned long long)first, what);
    return walk_extra(&xw->wk, first, n, err);
}

/* Records the clusters of [first, first + n) (inside the heap) that no bitmap marks; whole
 * bytes of marked clusters are passed over at once. */
static int check_run(struct exfat_walk *xw, uint64_t first, uint64_t n, const char *what, struct asr_error *err)
{
    uint64_t free_first = 0, free_n = 0;
    int rc = ASR_OK;
    for (uint64_t i = 0; i < n && rc == ASR_OK;) {
        uint64_t bit = first - 2 + i;
        uint8_t v;
        if ((rc = marked_byte(xw, bit / 8, &v, err)) != ASR_OK)
            break;
        if (bit % 8 == 0 && v == 0xFF && n - i >= 8) {
            rc = take_unmarked(xw, free_first, free_n, what, err);
            free_n = 0;
            i += 8;
            continue;
        }
        if (v >> (bit % 8) & 1) {
            rc = take_unmarked(xw, free_first, free_n, what, err);
            free_n = 0;
        } else if (free_n++ == 0) {
            free_first = first + i;
        }
        i++;
    }
    return rc == ASR_OK ? take_unmarked(xw, free_first, free_n, what, err) : rc;
}

/* An allocation a directory entry describes: length bytes from cluster first, contiguous
 * (NoFatChain) or along the FAT chain. A chain that breaks before the length does (an end mark,
 * a link out of range) goes on contiguously after its last cluster, where a reader or repair that
 * assumes contiguity looks. Bounded by the heap, the length and the walk's budget. */
static int walk_alloc(struct exfat_walk *xw, uint32_t first, uint64_t length, int contiguous, const char *what,
                      struct asr_error *err)
{
    const struct exfat_geom *g = xw->g;
    uint64_t n = length ? ((length - 1) >> g->cluster_shift) + 1 : 0, end = (uint64_t)g->clusters + 2;
    if (!n || !exfat_valid_cluster(g, first))
        return ASR_OK;
    if (contiguous) {
        n = n < end - first ? n : end - first;
        int rc = walk_spend(&xw->wk, n, err);
        return rc == ASR_OK ? check_run(xw, first, n, what, err) : rc;
    }
    uint64_t k = 0, run_first = first, run_n = 0;
    uint32_t c = first, next;
    int rc = ASR_OK, looped = 0;
    struct walk_loop loop;
    walk_loop_start(&loop, first);
    while (rc == ASR_OK) {
        if ((rc = walk_spend(&xw->wk, 1, err)) != ASR_OK)
            return rc;
        k++;
        if (run_first + run_n != c) { /* checked a contiguous stretch at a time */
            rc = check_run(xw, run_first, run_n, what, err);
            run_first = c;
            run_n = 0;
        }
        run_n++;
        if (rc != ASR_OK || k == n || (rc = exfat_fat_entry(xw->fc, c, &next, err)) != ASR_OK || !exfat_valid_cluster(g, next))
            break;
        if ((looped = walk_loops(&loop, next))) /* a reader goes round the same clusters */
            break;
        c = next;
    }
    if (rc == ASR_OK)
        rc = check_run(xw, run_first, run_n, what, err);
    if (rc == ASR_OK && !looped && k < n && (uint64_t)c + 1 < end) {
        uint64_t more = n - k < end - c - 1 ? n - k : end - c - 1;
        if ((rc = walk_spend(&xw->wk, more, err)) == ASR_OK)
            rc = check_run(xw, (uint64_t)c + 1, more, what, err);
    }
    return rc;
}

/* Where a directory's entries stand: the file set being read and whether the end was met. */
struct set_state {
    uint32_t secondaries; /* left in the current set */
    int is_dir, stream_seen, ended;
};

/* One 32-byte entry. A directory's stream extension queues it; any other allocation a secondary
 * (or a benign primary, such as a vendor's) describes is checked at once. The bitmap and up-case
 * entries of the root are checked by walk_tree from what scan_root found. */
static int walk_entry(struct exfat_walk *xw, const uint8_t *e, struct set_state *st, struct asr_error *err)
{
    uint8_t t = e[0];
    if (t == ENTRY_END) {
        st->ended = 1;
        return ASR_OK;
    }
    if (!(t & 0x80)) { /* unused or deleted */
        st->secondaries = 0;
        return ASR_OK;
    }
    if (!(t & 0x40)) { /* a primary entry starts a set */
        st->secondaries = e[1];
        st->is_dir = t == ENTRY_FILE && (get_le16(e + 4) & 0x10);
        st->stream_seen = 0;
        if (t >= 0xA0 && t <= 0xBF && (get_le16(e + 4) & 1)) /* benign primary, AllocationPossible */
            return walk_alloc(xw, get_le32(e + 20), get_le64(e + 24), get_le16(e + 4) & 2, "a vendor entry", err);
        return ASR_OK;
    }
    if (!st->secondaries) /* a secondary entry outside any set: no reader looks at it */
        return ASR_OK;
    st->secondaries--;
    if (!(e[1] & 1)) /* GeneralSecondaryFlags.AllocationPossible */
        return ASR_OK;
    uint32_t first = get_le32(e + 20);
    uint64_t length = get_le64(e + 24);
    if (t == ENTRY_STREAM && st->is_dir && !st->stream_seen) {
        st->stream_seen = 1;
        if (!exfat_valid_cluster(xw->g, first) || !length)
            return ASR_OK;
        struct walk_dir d = {first, (uint8_t)(e[1] & 2), length < EXFAT_DIR_MAX_BYTES ? length : EXFAT_DIR_MAX_BYTES};
        uint64_t ahead = 1ull << xw->g->cluster_shift;
        asr_window_prefetch(xw->w, exfat_cluster_offset(xw->g, first), ahead < EXFAT_READ_PIECE ? ahead : EXFAT_READ_PIECE);
        return walk_push(&xw->wk, &d, err);
    }
    st->stream_seen |= t == ENTRY_STREAM;
    return walk_alloc(xw, first, length, e[1] & 2, "a file", err);
}

/* A directory: each of its clusters checked against the bitmap, and its entries read up to the
 * end marker. Past the marker its remaining clusters are still checked, not read. A chain that
 * breaks, or a length that runs out, ends it. */
static int walk_dir(struct exfat_walk *xw, const struct walk_dir *d, int root, struct asr_error *err)
{
    const struct exfat_geom *g = xw->g;
    uint64_t cluster = 1ull << g->cluster_shift, piece = cluster < EXFAT_READ_PIECE ? cluster : EXFAT_READ_PIECE;
    uint64_t n = ((d->bytes - 1) >> g->cluster_shift) + 1; /* d->bytes > 0 */
    const char *what = root ? "the root directory" : "a directory";
    struct set_state st = {0};
    uint32_t c = d->first;
    int rc = ASR_OK;
    struct walk_loop loop;
    walk_loop_start(&loop, c);
    for (uint64_t k = 0; k < n && rc == ASR_OK; k++) {
        if ((rc = walk_spend(&xw->wk, 1, err)) != ASR_OK || (rc = check_run(xw, c, 1, what, err)) != ASR_OK)
            break;
        for (uint64_t off = 0; off < cluster && !st.ended && rc == ASR_OK; off += piece) {
            rc = asr_window_read(xw->w, "a directory", exfat_cluster_offset(g, c) + off, xw->buf, (size_t)piece, err);
            for (uint64_t i = 0; i < piece && !st.ended && rc == ASR_OK; i += 32)
                rc = walk_entry(xw, xw->buf + i, &st, err);
        }
        uint32_t next = c + 1;
        if (rc != ASR_OK || k + 1 == n || (!d->contiguous && (rc = exfat_fat_entry(xw->fc, c, &next, err)) != ASR_OK) ||
            !exfat_valid_cluster(g, next) || walk_loops(&loop, next))
            break;
        c = next;
    }
    return rc;
}

/* Every cluster the volume's metadata references, from the boot sector's root directory down,
 * with the bitmaps and up-case table the root lists: those no bitmap marks are recorded. */
static int walk_tree(struct exfat_walk *xw, const struct root_info *ri, struct asr_error *err)
{
    const struct exfat_geom *g = xw->g;
    const struct sys_file *files[3] = {&ri->bitmap[0], &ri->bitmap[1], &ri->upcase};
    static const char *const names[3] = {"the allocation bitmap", "the second allocation bitmap", "the up-case table"};
    int rc = ASR_OK;
    for (int f = 0; f < 3 && rc == ASR_OK; f++) {
        uint32_t n = 0;
        if (files[f]->present && (rc = sys_file_span(g, files[f], names[f], &n, err)) == ASR_OK)
            rc = check_run(xw, files[f]->first_cluster, n, names[f], err);
    }
    struct walk_dir d = {.first = g->root_cluster, .bytes = EXFAT_DIR_MAX_BYTES};
    if (rc == ASR_OK && (rc = walk_push(&xw->wk, &d, err)) == ASR_OK && walk_pop(&xw->wk, &d))
        rc = walk_dir(xw, &d, 1, err);
    while (rc == ASR_OK && walk_pop(&xw->wk, &d))
        rc = walk_dir(xw, &d, 0, err);
    return rc;
}

/* ---- the map ------------------------------------------------------------------------------- */

/* Emits the clusters marked in either bitmap (a TexFAT volume keeps two; a cluster either one
 * marks is copied), merged with those the walk found, reading the bitmaps in EXFAT_READ_PIECE pieces. */
static int emit_clusters(const struct asr_window *w, const struct exfat_geom *g, const struct root_info *ri,
                         struct walk_union *u, struct asr_error *err)
{
    uint64_t bytes = ((uint64_t)g->clusters + 7) / 8;
    uint8_t *piece = malloc(EXFAT_READ_PIECE), *other = g->fats == 2 ? malloc(EXFAT_READ_PIECE) : NULL;
    int rc = ASR_OK;
    if (!piece || (g->fats == 2 && !other))
        rc = asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory for a bitmap piece");
    uint64_t run_start = 0, run_len = 0;
    for (uint64_t at = 0; at < bytes && rc == ASR_OK; at += EXFAT_READ_PIECE) {
        size_t n = bytes - at < EXFAT_READ_PIECE ? (size_t)(bytes - at) : EXFAT_READ_PIECE;
        rc = asr_window_read(w, "the allocation bitmap", exfat_cluster_offset(g, ri->bitmap[0].first_cluster) + at, piece, n,
                             err);
        if (rc == ASR_OK && other) {
            rc = asr_window_read(w, "the second allocation bitmap", exfat_cluster_offset(g, ri->bitmap[1].first_cluster) + at,
                                 other, n, err);
            for (size_t i = 0; i < n; i++)
                piece[i] |= other[i];
        }
        for (size_t i = 0; i < n && rc == ASR_OK; i++) {
            if (!piece[i])
                continue;
            for (unsigned bit = 0; bit < 8 && rc == ASR_OK; bit++) {
                uint64_t idx = (at + i) * 8 + bit; /* cluster idx + 2 */
                if (idx >= g->clusters || !(piece[i] >> bit & 1))
                    continue;
                if (run_len && run_start + run_len == idx) {
                    run_len++;
                    continue;
                }
                if (run_len)
                    rc = walk_union_add(u, run_start + 2, run_len, err);
                run_start = idx;
                run_len = 1;
            }
        }
    }
    if (rc == ASR_OK && run_len)
        rc = walk_union_add(u, run_start + 2, run_len, err);
    if (rc == ASR_OK)
        rc = walk_union_end(u, err);
    free(piece);
    free(other);
    return rc;
}

/* Walks the tree (walk_tree), then emits the heap clusters: those the bitmaps mark and those
 * the walk found referenced but free, saying how many of these in out->note. */
static int map_heap(const struct asr_window *w, struct exfat_cache *fc, const struct root_info *ri, struct asr_usedmap *out,
                    struct asr_error *err)
{
    const struct exfat_geom *g = fc->g;
    struct exfat_walk xw = {.w = w, .g = g, .fc = fc, .bitmap_bytes = ((uint64_t)g->clusters + 7) / 8};
    walk_init(&xw.wk, "exfat", g->clusters);
    int rc = ASR_OK;
    for (uint32_t i = 0; i < g->fats && rc == ASR_OK; i++) {
        if (!(xw.bc[i] = malloc(sizeof *xw.bc[i])))
            rc = asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory for the directory walk");
        else
            *xw.bc[i] = (struct bit_cache){.w = w, .base = exfat_cluster_offset(g, ri->bitmap[i].first_cluster)};
        /* The walk looks all over the bitmap, which emit_clusters then reads whole anyway. */
        asr_window_prefetch(w, exfat_cluster_offset(g, ri->bitmap[i].first_cluster), xw.bitmap_bytes);
    }
    uint64_t piece = 1ull << g->cluster_shift < EXFAT_READ_PIECE ? 1ull << g->cluster_shift : EXFAT_READ_PIECE;
    if (rc == ASR_OK && !(xw.buf = malloc((size_t)piece)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory for a directory piece");
    if (rc == ASR_OK)
        rc = walk_tree(&xw, ri, err);
    uint64_t extra = walk_finish(&xw.wk);
    struct walk_union u;
    walk_union_begin(&u, &out->used, &xw.wk, g->heap_offset, 1ull << g->cluster_shift);
    if (rc == ASR_OK)
        rc = emit_clusters(w, g, ri, &u, err);
    if (rc == ASR_OK && extra)
        snprintf(out->note, sizeof out->note,
                 "exfat: %llu cluster%s referenced by directory entries %s free in the allocation bitmap (first: %s): "
                 "captured too",
                 (unsigned long long)extra, extra == 1 ? "" : "s", extra == 1 ? "is" : "are", xw.first);
    out->damaged = out->note[0] != '\0';
    walk_free(&xw.wk);
    free(xw.bc[0]);
    free(xw.bc[1]);
    free(xw.buf);
    return rc;
}

static int map_volume(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    struct exfat_geom g = {0};
    int rc = exfat_read_geom(w, &g, err);
    if (rc != ASR_OK)
        return rc;

    struct exfat_cache *fc = malloc(sizeof *fc);
    struct root_info *ri = calloc(1, sizeof *ri);
    if (!fc || !ri)
        rc = asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory");
    else
        *fc = (struct exfat_cache){.w = w, .g = &g};
    if (rc == ASR_OK)
        rc = scan_root(w, fc, ri, err);
    if (rc == ASR_OK)
        rc = check_bitmaps(&g, ri, err);
    /* Both boot regions (main and backup), then every FAT; the gaps the format leaves for
     * alignment before the FATs and the heap hold nothing. */
    if (rc == ASR_OK) {
        int r = asr_ranges_add(&out->used, 0, 2 * BOOT_REGION_SECTORS << g.sector_shift);
        if (r == ASR_OK)
            r = asr_ranges_add(&out->used, g.fat_offset, g.fats * g.fat_bytes);
        if (r != ASR_OK)
            rc = asr_fail_public(err, r, "exfat: cannot record the boot regions and FATs (%s)", asr_status_name(r));
    }
    if (rc == ASR_OK)
        rc = map_heap(w, fc, ri, out, err);
    if (rc == ASR_OK) {
        out->block_size = 1u << g.cluster_shift;
        snprintf(out->fs_type, sizeof out->fs_type, "exfat");
        snprintf(out->fs_uuid, sizeof out->fs_uuid, "%04X-%04X", g.serial >> 16, g.serial & 0xFFFF);
        snprintf(out->fs_label, sizeof out->fs_label, "%s", ri->label);
    }
    free(fc);
    free(ri);
    return rc;
}

int asr_exfat_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = map_volume(w, out, err);
    if (rc != ASR_OK) {
        asr_ranges_free(&out->used);
        out->note[0] = '\0';
    }
    return rc;
}
