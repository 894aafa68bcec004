/* FAT12/16/32 used-byte map: the boot sector's BPB, validated field by field; a walk of the
 * directory tree for the clusters it references that the FAT calls free (a damaged volume must
 * restore as it was, damage and all); then the FAT streamed in bounded pieces. The walk runs on
 * every volume rather than only when a cheap check fails: chains freed alike in every FAT copy
 * pass them all (FAT12/16 have no free count, the dirty bits may be clean), and it costs little
 * (FAT32 with 100,000 files in 1,000 directories, cold cache: 66 ms instead of 23 ms). Hand-written
 * because no Debian library exposes FAT allocation maps from a byte window (dosfstools and
 * mtools are programs, not libraries). The geometry and FAT entry reads are shared with the path
 * reader (fs_fat_internal.h, fs_fat_file.c). */
#include "asr_engine.h"
#include "fs_fat_internal.h"
#include "fs_walk.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries per FAT piece: an even count (so a FAT12 piece starts on a whole byte) giving at most
 * 1 MiB of FAT32, whatever the volume size. */
#define FAT_PIECE_ENTRIES (1u << 18)

/* Microsoft's rule (FAT specification, "FAT type determination"): the cluster count alone
 * decides the FAT type. */
#define FAT12_MAX_CLUSTERS 4084u
#define FAT16_MAX_CLUSTERS 65524u
#define FAT32_MAX_CLUSTERS 0x0FFFFFF5u /* highest cluster number 0x0FFFFFF6, below the bad mark */

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static int corrupt(struct asr_error *err, const char *what)
{
    return asr_fail_public(err, ASR_E_CORRUPT, "fat: %s", what);
}

/* Validates the BPB in the first 512 bytes of the volume and derives the layout. Every field
 * that decides where a later read goes is checked here, so nothing after it trusts raw input. */
int fat_parse_bpb(const uint8_t *b, uint64_t window, struct fat_geom *g, struct asr_error *err)
{
    char m[200];
    if (b[510] != 0x55 || b[511] != 0xAA)
        return corrupt(err, "boot sector signature 55 AA missing (boot sector offset 510)");
    uint32_t bps = get_le16(b + 11), spc = b[13], reserved = get_le16(b + 14), fats = b[16];
    uint32_t root_entries = get_le16(b + 17), media = b[21];
    uint32_t fatsz16 = get_le16(b + 22), fatsz32 = get_le32(b + 36);
    uint32_t total = get_le16(b + 19) ? get_le16(b + 19) : get_le32(b + 32);

    if (!is_pow2(bps) || bps < 512 || bps > 4096) {
        snprintf(m, sizeof m, "bytes per sector %u invalid (boot sector offset 11)", bps);
        return corrupt(err, m);
    }
    if (!is_pow2(spc)) {
        snprintf(m, sizeof m, "sectors per cluster %u not a power of two (boot sector offset 13)", spc);
        return corrupt(err, m);
    }
    if (reserved == 0)
        return corrupt(err, "reserved sector count 0 (boot sector offset 14)");
    /* The specification asks for 2 and allows 1; mkfs.fat -f and some embedded formatters
     * write up to 4, which Linux mounts, so those are accepted too. */
    if (fats < 1 || fats > 4) {
        snprintf(m, sizeof m, "number of FATs %u invalid (boot sector offset 16)", fats);
        return corrupt(err, m);
    }
    if (media != 0xF0 && media < 0xF8) {
        snprintf(m, sizeof m, "media descriptor 0x%02X invalid (boot sector offset 21)", media);
        return corrupt(err, m);
    }
    if (total == 0)
        return corrupt(err, "total sector count 0 (boot sector offsets 19 and 32)");
    uint32_t fatsz = fatsz16 ? fatsz16 : fatsz32;
    if (fatsz == 0)
        return corrupt(err, "FAT size 0 (boot sector offsets 22 and 36)");
    uint64_t volume_bytes = (uint64_t)total * bps;
    if (volume_bytes > window) {
        snprintf(m, sizeof m, "volume of %llu bytes (total sectors, boot sector offset %d) exceeds its %llu-byte window",
                 (unsigned long long)volume_bytes, get_le16(b + 19) ? 19 : 32, (unsigned long long)window);
        return corrupt(err, m);
    }
    if ((uint64_t)root_entries * 32 % bps) {
        snprintf(m, sizeof m, "root entry count %u does not fill whole sectors (boot sector offset 17)", root_entries);
        return corrupt(err, m);
    }
    uint64_t root_sectors = (uint64_t)root_entries * 32 / bps;
    uint64_t data_sector = reserved + (uint64_t)fats * fatsz + root_sectors;
    if (data_sector >= total) {
        snprintf(m, sizeof m, "data region starts at sector %llu, not below the %u total sectors (boot sector offsets 14-22)",
                 (unsigned long long)data_sector, total);
        return corrupt(err, m);
    }
    uint64_t clusters = (total - data_sector) / spc;
    if (clusters == 0)
        return corrupt(err, "no room for a single cluster (boot sector offset 13)");

    g->bits = clusters <= FAT12_MAX_CLUSTERS ? 12 : clusters <= FAT16_MAX_CLUSTERS ? 16 : 32;
    if (g->bits == 32) {
        /* A cluster count that needs FAT32 must come with FAT32's BPB layout: no 16-bit FAT
         * size, no fixed root directory. */
        if (fatsz16 != 0 || root_entries != 0) {
            snprintf(m, sizeof m, "%llu clusters need FAT32 but the boot sector has a FAT12/16 layout (offsets 17, 22)",
                     (unsigned long long)clusters);
            return corrupt(err, m);
        }
        if (clusters > FAT32_MAX_CLUSTERS) {
            snprintf(m, sizeof m, "cluster count %llu exceeds FAT32's limit of %u (boot sector offsets 13, 32)",
                     (unsigned long long)clusters, FAT32_MAX_CLUSTERS);
            return corrupt(err, m);
        }
        if (get_le16(b + 42) != 0) {
            snprintf(m, sizeof m, "FAT32 version %u.%u unknown (boot sector offset 42)", b[43], b[42]);
            return corrupt(err, m);
        }
        g->root_cluster = get_le32(b + 44);
        if (g->root_cluster < 2 || g->root_cluster > clusters + 1) {
            snprintf(m, sizeof m, "root directory cluster %u outside clusters 2..%llu (boot sector offset 44)",
                     g->root_cluster, (unsigned long long)clusters + 1);
            return corrupt(err, m);
        }
    } else {
        /* mkfs.fat -F 32 on a small volume writes a FAT32 layout with fewer clusters (warning
         * that "this may lead to problems"). Tools disagree on it: Linux and fsck.fat use it as
         * FAT32, while Windows and mtools go by the count and read a FAT16 that is not there.
         * Refused as ambiguous: the caller then captures the (small) volume whole, exactly. */
        if (fatsz16 == 0) {
            snprintf(m, sizeof m, "FAT32 layout (16-bit FAT size 0, boot sector offset 22) but only %llu clusters, "
                                  "FAT%u by Microsoft's rule: ambiguous",
                     (unsigned long long)clusters, g->bits);
            return corrupt(err, m);
        }
        if (root_entries == 0)
            return corrupt(err, "FAT12/16 root entry count 0 (boot sector offset 17)");
    }
    uint64_t need = ((clusters + 2) * g->bits + 7) / 8;
    if ((uint64_t)fatsz * bps < need) {
        snprintf(m, sizeof m, "FAT of %u sectors too small for %llu clusters (boot sector offset %d)", fatsz,
                 (unsigned long long)clusters, fatsz16 ? 22 : 36);
        return corrupt(err, m);
    }

    /* FAT32 may disable mirroring (extended flags bit 7): then only the active FAT is current. */
    uint32_t active = 0;
    if (g->bits == 32 && (get_le16(b + 40) & 0x80)) {
        active = get_le16(b + 40) & 0x0F;
        if (active >= fats) {
            snprintf(m, sizeof m, "active FAT %u of %u (boot sector offset 40)", active, fats);
            return corrupt(err, m);
        }
    }
    g->clusters = (uint32_t)clusters;
    g->cluster_bytes = (uint64_t)spc * bps;
    g->fat_offset = ((uint64_t)reserved + (uint64_t)active * fatsz) * bps;
    g->root_offset = ((uint64_t)reserved + (uint64_t)fats * fatsz) * bps;
    g->root_bytes = root_sectors * bps;
    g->data_offset = data_sector * bps;
    const uint8_t *ext = g->bits == 32 ? b + 64 : b + 36;
    g->has_serial = ext[2] == 0x29 || ext[2] == 0x28;
    g->serial = g->has_serial ? get_le32(ext + 3) : 0;
    return ASR_OK;
}

/* Whether FAT entry value v (already masked to the FAT's width) marks its cluster as holding
 * data. Free (0) does not. Nor does the bad-cluster mark: the FAT itself (which is copied) keeps
 * the mark, and reading the failing sectors of a source disk would only stall the backup on I/O
 * errors (unless a directory entry still references the cluster: the walk takes it then).
 * Everything else, EOC, chain links, and even out-of-range links fsck would repair, is copied:
 * capturing too much is always safe. */
int fat_entry_used(uint32_t v, uint32_t bits)
{
    uint32_t bad = bits == 12 ? 0xFF7u : bits == 16 ? 0xFFF7u : 0x0FFFFFF7u;
    return v != 0 && v != bad;
}

uint32_t fat_end_of_chain(uint32_t bits) { return bits == 12 ? 0xFF8u : bits == 16 ? 0xFFF8u : 0x0FFFFFF8u; }

int fat_valid_cluster(const struct fat_geom *g, uint64_t c) { return c >= 2 && c <= (uint64_t)g->clusters + 1; }

static uint32_t entry_at(const uint8_t *piece, uint32_t i, uint32_t bits)
{
    switch (bits) {
    case 12: {
        uint32_t v = get_le16(piece + i + i / 2);
        return i & 1 ? v >> 4 : v & 0xFFF;
    }
    case 16:
        return get_le16(piece + 2 * (size_t)i);
    default:
        return get_le32(piece + 4 * (size_t)i) & 0x0FFFFFFFu;
    }
}

/* ---- the directory walk ------------------------------------------------------------------ */

int fat_entry(struct fat_cache *fc, uint32_t c, uint32_t *v, struct asr_error *err)
{
    if (!fc->count || c < fc->start || c >= fc->start + fc->count) {
        uint64_t entries = (uint64_t)fc->g->clusters + 2;
        fc->start = c / FAT_CACHE_ENTRIES * FAT_CACHE_ENTRIES;
        fc->count = (uint32_t)(entries - fc->start < FAT_CACHE_ENTRIES ? entries - fc->start : FAT_CACHE_ENTRIES);
        size_t bytes = ((size_t)fc->count * fc->g->bits + 7) / 8;
        int rc = asr_window_read(fc->w, "the FAT", fc->g->fat_offset + fc->start * fc->g->bits / 8, fc->buf, bytes, err);
        if (rc != ASR_OK) {
            fc->count = 0;
            return rc;
        }
    }
    *v = entry_at(fc->buf, (uint32_t)(c - fc->start), fc->g->bits);
    return ASR_OK;
}

struct fat_walk {
    const struct fat_geom *g;
    const struct asr_window *w;
    struct fat_cache *fc;
    struct walk wk;
    uint8_t *buf; /* one cluster */
    uint64_t free_refs;   /* referenced clusters whose FAT entry is free (or the bad mark) */
    uint64_t short_files; /* files whose chain ends before their size does */
    char first[64];       /* the first of either, for the note */
};

/* An 8.3 name as "NAME.EXT", for the note (not a path: long names are not decoded). */
static void short_name(const uint8_t *e, char out[13])
{
    size_t o = 0;
    for (int i = 0; i < 11; i++) {
        uint8_t ch = i == 0 && e[0] == 0x05 ? 0xE5 : e[i]; /* 0x05 stands for a leading 0xE5 */
        if (i == 8 && e[8] != ' ')
            out[o++] = '.';
        if (ch != ' ')
            out[o++] = ch >= 0x21 && ch < 0x7F ? (char)ch : '?';
    }
    out[o] = '\0';
}

static void damage(struct fat_walk *fw, const char *what, const uint8_t *e, uint32_t cluster)
{
    if (fw->first[0])
        return;
    char name[13] = "";
    if (e)
        short_name(e, name);
    snprintf(fw->first, sizeof fw->first, "%s%s%s at cluster %u", what, e ? " " : "", name, cluster);
}

/* A file's clusters as its chain gives them, up to its size: a reader goes no further. Where the
 * chain breaks before the size does (a free or bad entry, an end mark, a link out of range), the
 * clusters still missing are taken contiguously after the last one, where a reader or a repair
 * that assumes contiguity looks for them. Only clusters the FAT calls free are recorded: the rest
 * are captured anyway. */
static int walk_file(struct fat_walk *fw, const uint8_t *e, uint32_t start, uint32_t size, struct asr_error *err)
{
    const struct fat_geom *g = fw->g;
    uint64_t need = (size + g->cluster_bytes - 1) / g->cluster_bytes, k = 0;
    if (!need || !fat_valid_cluster(g, start))
        return ASR_OK;
    uint32_t c = start, last = start, v = 0;
    int rc = ASR_OK, freed = 0;
    struct walk_loop loop;
    walk_loop_start(&loop, start);
    while (k < need) {
        if ((rc = walk_spend(&fw->wk, 1, err)) != ASR_OK || (rc = fat_entry(fw->fc, c, &v, err)) != ASR_OK)
            return rc;
        k++;
        last = c;
        if (!fat_entry_used(v, g->bits)) {
            freed = 1;
            break;
        }
        if (v >= fat_end_of_chain(g->bits) || !fat_valid_cluster(g, v))
            break;
        if (walk_loops(&loop, v)) {
            k = need; /* a reader goes round the same clusters: nothing more to take */
            break;
        }
        c = v;
    }
    if (freed) {
        fw->free_refs++;
        rc = walk_extra(&fw->wk, last, 1, err);
    }
    if (rc == ASR_OK && k < need) {
        fw->short_files++;
        uint64_t from = (uint64_t)last + 1, end = (uint64_t)g->clusters + 2;
        if (from < end)
            rc = walk_extra(&fw->wk, from, need - k < end - from ? need - k : end - from, err);
    }
    if (freed || k < need)
        damage(fw, "file", e, start);
    return rc;
}

/* One directory's 32-byte entries: files are followed at once, subdirectories queued. Entries
 * after an end marker (name byte 0) are read too, as Linux does. */
static int walk_entries(struct fat_walk *fw, const uint8_t *buf, size_t n, struct asr_error *err)
{
    int rc = ASR_OK;
    for (size_t i = 0; i + 32 <= n && rc == ASR_OK; i += 32) {
        const uint8_t *e = buf + i;
        uint8_t attr = e[11];
        if (e[0] == 0 || e[0] == 0xE5 || (attr & 0x3F) == 0x0F || (attr & 0x08))
            continue; /* free, deleted, a long-name part, a volume label */
        if (!memcmp(e, ".          ", 11) || !memcmp(e, "..         ", 11))
            continue;
        uint32_t start = get_le16(e + 26) | (fw->g->bits == 32 ? (uint32_t)get_le16(e + 20) << 16 : 0);
        if (!(attr & 0x10))
            rc = walk_file(fw, e, start, get_le32(e + 28), err);
        else if (fat_valid_cluster(fw->g, start)) {
            rc = walk_push(&fw->wk, &(struct walk_dir){.first = start, .bytes = DIR_MAX_BYTES}, err);
            asr_window_prefetch(fw->w, fw->g->data_offset + (uint64_t)(start - 2) * fw->g->cluster_bytes, fw->g->cluster_bytes);
        }
    }
    return rc;
}

/* A directory in the data region: its whole chain, up to the specification's size limit. */
static int walk_dir(struct fat_walk *fw, const struct walk_dir *d, int root, struct asr_error *err)
{
    const struct fat_geom *g = fw->g;
    uint64_t limit = d->bytes / g->cluster_bytes ? d->bytes / g->cluster_bytes : 1;
    uint32_t c = d->first, v;
    int rc = ASR_OK;
    struct walk_loop loop;
    walk_loop_start(&loop, c);
    for (uint64_t k = 0; k < limit && rc == ASR_OK; k++) {
        if ((rc = walk_spend(&fw->wk, 1, err)) != ASR_OK || (rc = fat_entry(fw->fc, c, &v, err)) != ASR_OK)
            return rc;
        if (!fat_entry_used(v, g->bits)) {
            fw->free_refs++;
            damage(fw, root ? "the root directory" : "a directory", NULL, c);
            if ((rc = walk_extra(&fw->wk, c, 1, err)) != ASR_OK)
                return rc;
        }
        rc = asr_window_read(fw->w, "a directory", g->data_offset + (uint64_t)(c - 2) * g->cluster_bytes, fw->buf, (size_t)g->cluster_bytes,
                             err);
        if (rc == ASR_OK)
            rc = walk_entries(fw, fw->buf, (size_t)g->cluster_bytes, err);
        if (!fat_entry_used(v, g->bits) || v >= fat_end_of_chain(g->bits) || !fat_valid_cluster(g, v) || walk_loops(&loop, v))
            break;
        c = v;
    }
    return rc;
}

/* Walks the tree from the root: the FAT12/16 fixed root region, or the FAT32 root's chain. */
static int walk_tree(struct fat_walk *fw, struct asr_error *err)
{
    const struct fat_geom *g = fw->g;
    int rc = ASR_OK;
    for (uint64_t at = 0; at < g->root_bytes && rc == ASR_OK; at += g->cluster_bytes) {
        size_t n = g->root_bytes - at < g->cluster_bytes ? (size_t)(g->root_bytes - at) : (size_t)g->cluster_bytes;
        rc = asr_window_read(fw->w, "the root directory", g->root_offset + at, fw->buf, n, err);
        if (rc == ASR_OK)
            rc = walk_entries(fw, fw->buf, n, err);
    }
    /* The FAT32 root is queued like any directory, so that an entry pointing at it is not
     * walked again, and read first. */
    struct walk_dir d = {.first = g->root_cluster, .bytes = DIR_MAX_BYTES};
    if (rc == ASR_OK && g->bits == 32 && (rc = walk_push(&fw->wk, &d, err)) == ASR_OK && walk_pop(&fw->wk, &d))
        rc = walk_dir(fw, &d, 1, err);
    while (rc == ASR_OK && walk_pop(&fw->wk, &d))
        rc = walk_dir(fw, &d, 0, err);
    return rc;
}

/* ---- the map ------------------------------------------------------------------------------- */

/* Emits the clusters whose FAT entries mark them used, merged with those the walk found, as runs
 * in increasing order, reading the FAT in pieces of FAT_PIECE_ENTRIES entries so memory stays
 * bounded. *marked: how many the FAT marks. */
static int emit_clusters(const struct asr_window *w, const struct fat_geom *g, struct walk_union *u, uint64_t *marked,
                         struct asr_error *err)
{
    size_t cap = ((size_t)FAT_PIECE_ENTRIES * g->bits + 7) / 8;
    uint8_t *piece = malloc(cap);
    if (!piece)
        return asr_fail_public(err, ASR_E_NOMEM, "fat: out of memory for a %zu-byte FAT piece", cap);
    int rc = ASR_OK;
    uint64_t entries = (uint64_t)g->clusters + 2, run_start = 0, run_len = 0;
    *marked = 0;
    for (uint64_t first = 0; first < entries && rc == ASR_OK; first += FAT_PIECE_ENTRIES) {
        uint32_t n = entries - first < FAT_PIECE_ENTRIES ? (uint32_t)(entries - first) : FAT_PIECE_ENTRIES;
        size_t bytes = ((size_t)n * g->bits + 7) / 8;
        rc = asr_window_read(w, "the FAT", g->fat_offset + first * g->bits / 8, piece, bytes, err);
        for (uint32_t i = 0; i < n && rc == ASR_OK; i++) {
            uint64_t c = first + i;
            if (c < 2 || !fat_entry_used(entry_at(piece, i, g->bits), g->bits))
                continue;
            ++*marked;
            if (run_len && run_start + run_len == c) {
                run_len++;
                continue;
            }
            if (run_len)
                rc = walk_union_add(u, run_start, run_len, err);
            run_start = c;
            run_len = 1;
        }
    }
    if (rc == ASR_OK && run_len)
        rc = walk_union_add(u, run_start, run_len, err);
    if (rc == ASR_OK)
        rc = walk_union_end(u, err);
    free(piece);
    return rc;
}

/* Says what the walk found and what it added beyond the FAT's own clusters. */
static void write_note(const struct fat_walk *fw, uint64_t added, char *note, size_t cap)
{
    if (!fw->free_refs && !fw->short_files)
        return;
    char a[96] = "", b[80] = "";
    if (fw->free_refs)
        snprintf(a, sizeof a, "%llu referenced cluster%s free in the FAT", (unsigned long long)fw->free_refs,
                 fw->free_refs == 1 ? " is" : "s are");
    if (fw->short_files)
        snprintf(b, sizeof b, "%llu file%s before %s size", (unsigned long long)fw->short_files,
                 fw->short_files == 1 ? "'s chain ends" : "s' chains end", fw->short_files == 1 ? "its" : "their");
    snprintf(note, cap, "fat: %s%s%s (first: %s): %llu cluster%s captured beyond those the FAT marks used", a,
             a[0] && b[0] ? ", " : "", b, fw->first, (unsigned long long)added, added == 1 ? "" : "s");
}

static int map_clusters(const struct asr_window *w, const struct fat_geom *g, struct asr_usedmap *out, struct asr_error *err)
{
    struct fat_walk fw = {.g = g, .w = w};
    walk_init(&fw.wk, "fat", g->clusters);
    fw.fc = malloc(sizeof *fw.fc);
    fw.buf = malloc((size_t)g->cluster_bytes); /* at most 128 sectors of 4 KiB: checked */
    int rc = ASR_OK;
    if (!fw.fc || !fw.buf)
        rc = asr_fail_public(err, ASR_E_NOMEM, "fat: out of memory for the directory walk");
    else
        *fw.fc = (struct fat_cache){.w = w, .g = g};
    /* The walk follows chains all over the FAT, which emit_clusters then reads whole anyway. */
    asr_window_prefetch(w, g->fat_offset, (((uint64_t)g->clusters + 2) * g->bits + 7) / 8);
    if (rc == ASR_OK)
        rc = walk_tree(&fw, err);
    walk_finish(&fw.wk);
    struct walk_union u;
    walk_union_begin(&u, &out->used, &fw.wk, g->data_offset, g->cluster_bytes);
    uint64_t marked = 0;
    if (rc == ASR_OK)
        rc = emit_clusters(w, g, &u, &marked, err);
    if (rc == ASR_OK)
        write_note(&fw, u.clusters - marked, out->note, sizeof out->note);
    out->damaged = out->note[0] != '\0'; /* it only ever tells of clusters the FAT and directories disagree on */
    walk_free(&fw.wk);
    free(fw.fc);
    free(fw.buf);
    return rc;
}

int fat_read_geom(const struct asr_window *w, struct fat_geom *g, struct asr_error *err)
{
    uint8_t boot[512];
    int rc = asr_window_read(w, "the boot sector", 0, boot, sizeof boot, err);
    return rc == ASR_OK ? fat_parse_bpb(boot, w->size, g, err) : rc;
}

int asr_fat_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    struct fat_geom g = {0};
    int rc = fat_read_geom(w, &g, err);
    if (rc != ASR_OK)
        return rc;
    /* Reserved sectors (boot sector, FSInfo, backup boot sector), every FAT copy and the
     * FAT12/16 fixed root directory lie back to back from offset 0 to the data region. */
    rc = asr_ranges_add(&out->used, 0, g.data_offset);
    if (rc != ASR_OK)
        asr_fail_public(err, rc, "fat: cannot record the metadata range (%s)", asr_status_name(rc));
    else
        rc = map_clusters(w, &g, out, err);
    if (rc != ASR_OK) {
        asr_ranges_free(&out->used);
        out->note[0] = '\0';
        return rc;
    }
    out->block_size = (uint32_t)g.cluster_bytes;
    snprintf(out->fs_type, sizeof out->fs_type, "vfat");
    /* The volume serial, formatted as blkid does, when the extended boot signature says the
     * field is there. The label is left to blkid: the authoritative one is the root directory's
     * volume-label entry, which the BPB copy can lag behind. */
    if (g.has_serial)
        snprintf(out->fs_uuid, sizeof out->fs_uuid, "%04X-%04X", g.serial >> 16, g.serial & 0xFFFF);
    return ASR_OK;
}
