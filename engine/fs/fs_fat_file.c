/* Small files read by path from FAT12/16/32 (fs_file.h), with fs_fat.c's validated geometry and
 * FAT entry cache (fs_fat_internal.h): directories are read along their cluster chains (the
 * FAT12/16 root from its fixed region), names matched as Linux's vfat does, the long name or the
 * 8.3 name, ignoring ASCII case; a file's chain is followed for as many clusters as its size
 * needs and read a contiguous run at a time. Nothing is trusted: a chain that loops (fs_walk.h's
 * loop detection), ends early or leaves the volume, a directory longer than the specification
 * allows, an entry pointing outside the clusters, each ends the read with ASR_E_CORRUPT. */
#include "fs_fat_internal.h"
#include "fs_reader.h"
#include "fs_walk.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LFN_MAX_PARTS 20 /* 20 parts of 13 UTF-16 units hold the longest name, 255 units */

struct fat_vol {
    struct fs_vol base; /* first: a struct fs_vol * points here */
    const struct asr_window *w;
    struct fat_geom g;
    struct fat_cache *fc;
    uint8_t *buf; /* one cluster of a directory */
};

/* A directory entry, its name decoded. */
struct fat_dirent {
    char name[LFN_MAX_PARTS * 13 * 3 + 1]; /* the long name in UTF-8 ("" when none is valid) */
    char short_name[13];                   /* "NAME.EXT", cased as the entry's flags ask */
    bool short_ascii;                      /* short_name has only printable ASCII, no '/' (else '?' there) */
    uint8_t attr;
    uint32_t start, size;
};

/* The long-name parts read so far, last part first as they are stored. */
struct lfn {
    uint16_t u[LFN_MAX_PARTS * 13];
    int have;    /* sequence number of the part stored last; 0: none pending */
    int parts;
    uint8_t sum; /* the checksum of the 8.3 name they belong to */
};

static uint8_t short_sum(const uint8_t *e)
{
    uint8_t sum = 0;
    for (int i = 0; i < 11; i++)
        sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + e[i]);
    return sum;
}

static void lfn_part(struct lfn *l, const uint8_t *e)
{
    static const uint8_t at[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
    int ord = e[0] & 0x1F;
    if (e[0] & 0x40) {
        if (ord < 1 || ord > LFN_MAX_PARTS) {
            l->have = 0;
            return;
        }
        l->parts = ord;
        l->sum = e[13];
    } else if (!l->have || ord != l->have - 1 || e[13] != l->sum) {
        l->have = 0; /* an orphan part: the name is not used */
        return;
    }
    for (int i = 0; i < 13; i++)
        l->u[(ord - 1) * 13 + i] = get_le16(e + at[i]);
    l->have = ord;
}

/* The long name in UTF-8; "" when it is empty. */
static void lfn_name(const struct lfn *l, char *out) { fs_utf16_to_utf8(l->u, (size_t)l->parts * 13, out); }

/* The 8.3 name as Linux shows it: lower-case base or extension when byte 12 says so (as
 * Windows stores names like "readme.txt" without a long name). */
static void short_name(const uint8_t *e, struct fat_dirent *d)
{
    size_t o = 0;
    d->short_ascii = true;
    for (int i = 0; i < 11; i++) {
        uint8_t ch = i == 0 && e[0] == 0x05 ? 0xE5 : e[i]; /* 0x05 stands for a leading 0xE5 */
        if (i == 8 && memcmp(e + 8, "   ", 3))
            d->short_name[o++] = '.';
        if (ch == ' ')
            continue;
        if (ch >= 0x80 || ch < 0x20 || ch == '/') {
            d->short_ascii = false;
            ch = '?';
        } else if (ch >= 'A' && ch <= 'Z' && (e[12] & (i < 8 ? 0x08 : 0x10))) {
            ch = (uint8_t)(ch - 'A' + 'a');
        }
        d->short_name[o++] = (char)ch;
    }
    d->short_name[o] = '\0';
}

/* One 32-byte entry: 1 with *d filled when it completes a file or directory (its long name
 * when the parts before it belong to it), 0 when it is a long-name part or nothing. Entries
 * after an end marker (name byte 0) are read too, as fs_fat.c's walk and Linux do. */
static int take_entry(struct lfn *l, const uint8_t *e, uint32_t bits, struct fat_dirent *d)
{
    uint8_t attr = e[11];
    if (e[0] != 0 && e[0] != 0xE5 && (attr & 0x3F) == 0x0F) {
        lfn_part(l, e);
        return 0;
    }
    bool named = l->have == 1 && l->sum == short_sum(e);
    int had = l->parts;
    l->have = 0;
    if (e[0] == 0 || e[0] == 0xE5 || (attr & 0x08))
        return 0; /* free, deleted, a volume label */
    l->parts = named ? had : 0;
    lfn_name(l, d->name);
    short_name(e, d);
    d->attr = attr;
    d->start = get_le16(e + 26) | (bits == 32 ? (uint32_t)get_le16(e + 20) << 16 : 0); /* FAT12/16: EA handle there */
    d->size = get_le32(e + 28);
    return 1;
}

/* Called for each entry of a directory: 0 goes on, anything else stops the walk. */
typedef int (*entry_fn)(void *ctx, const struct fat_dirent *d);

static void scan(struct lfn *l, uint32_t bits, const uint8_t *buf, size_t n, entry_fn fn, void *ctx, int *stop)
{
    struct fat_dirent d;
    for (size_t i = 0; i + 32 <= n && !*stop; i += 32)
        if (take_entry(l, buf + i, bits, &d))
            *stop = fn(ctx, &d);
}

/* Every entry of the directory starting at cluster first (0: the root), along its chain. */
static int each_entry(struct fat_vol *v, uint32_t first, const char *path, entry_fn fn, void *ctx,
                      struct asr_error *err)
{
    const struct fat_geom *g = &v->g;
    struct lfn *l = calloc(1, sizeof *l);
    if (!l)
        return asr_fail_public(err, ASR_E_NOMEM, "fat: out of memory");
    int rc = ASR_OK, stop = 0;
    if (!first && g->bits != 32) { /* the FAT12/16 root: its fixed region */
        for (uint64_t at = 0; at < g->root_bytes && rc == ASR_OK && !stop; at += g->cluster_bytes) {
            size_t n = g->root_bytes - at < g->cluster_bytes ? (size_t)(g->root_bytes - at) : (size_t)g->cluster_bytes;
            rc = asr_window_read(v->w, "the root directory", g->root_offset + at, v->buf, n, err);
            if (rc == ASR_OK)
                scan(l, g->bits, v->buf, n, fn, ctx, &stop);
        }
        free(l);
        return rc;
    }
    uint32_t c = first ? first : g->root_cluster, next;
    uint64_t limit = DIR_MAX_BYTES / g->cluster_bytes ? DIR_MAX_BYTES / g->cluster_bytes : 1;
    struct walk_loop loop;
    walk_loop_start(&loop, c);
    for (uint64_t k = 0; rc == ASR_OK && !stop; k++) {
        if (k == limit) {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "fat: %.200s: a directory's chain runs past %u bytes at cluster %u",
                                 path, DIR_MAX_BYTES, c);
            break;
        }
        rc = asr_window_read(v->w, "a directory", g->data_offset + (uint64_t)(c - 2) * g->cluster_bytes, v->buf,
                             (size_t)g->cluster_bytes, err);
        if (rc == ASR_OK)
            scan(l, g->bits, v->buf, (size_t)g->cluster_bytes, fn, ctx, &stop);
        if (rc != ASR_OK || stop || (rc = fat_entry(v->fc, c, &next, err)) != ASR_OK || next >= fat_end_of_chain(g->bits))
            break;
        if (!fat_entry_used(next, g->bits) || !fat_valid_cluster(g, next))
            rc = asr_fail_public(err, ASR_E_CORRUPT,
                                 "fat: %.200s: a directory's cluster chain breaks at cluster %u (FAT entry 0x%X)", path,
                                 c, next);
        else if (walk_loops(&loop, next))
            rc = asr_fail_public(err, ASR_E_CORRUPT, "fat: %.200s: a directory's cluster chain loops (cluster %u again)",
                                 path, next);
        c = next;
    }
    free(l);
    return rc;
}

struct find {
    const char *name;
    size_t n;
    bool found;
    struct fat_dirent *hit;
};

static int match(void *ctx, const struct fat_dirent *d)
{
    struct find *f = ctx;
    if (!fs_same_name(d->name, f->name, f->n) && !(d->short_ascii && fs_same_name(d->short_name, f->name, f->n)))
        return 0;
    *f->hit = *d;
    f->found = true;
    return 1;
}

static bool is_dir(const struct fat_dirent *d) { return d->attr & 0x10; }

/* The entry path names (for "/", a directory at cluster 0). ".." goes back up the way the path
 * came rather than through the ".." entry, which need not be right. */
static int lookup(struct fat_vol *v, const char *path, struct fat_dirent *d, struct asr_error *err)
{
    uint32_t up[FS_PATH_MAX_PARTS];
    size_t depth = 0;
    *d = (struct fat_dirent){.name = "/", .attr = 0x10};
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        const char *name = p;
        p += n;
        if (!n || (n == 1 && name[0] == '.'))
            continue;
        if (!is_dir(d))
            return asr_fail_public(err, FS_E_NOT_FOUND, "fat: %.200s: not found (%.100s is a file)", path,
                                   d->name[0] ? d->name : d->short_name);
        if (n == 2 && name[0] == '.' && name[1] == '.') {
            d->start = depth ? up[--depth] : 0;
            continue;
        }
        uint32_t dir = d->start;
        struct find f = {.name = name, .n = n, .hit = d};
        int rc = each_entry(v, dir, path, match, &f, err);
        if (rc != ASR_OK)
            return rc;
        if (!f.found)
            return asr_fail_public(err, FS_E_NOT_FOUND, "fat: %.200s: not found", path);
        if (is_dir(d) && !fat_valid_cluster(&v->g, d->start))
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "fat: %.200s: directory entry %.100s points outside the clusters "
                                   "(cluster %u, not in 2..%llu)",
                                   path, d->short_name, d->start, (unsigned long long)v->g.clusters + 1);
        up[depth++] = dir; /* at most one per component: check_path bounds them */
    }
    return ASR_OK;
}

/* Reads clusters [first, first + count) into buf, no further than the file's end. */
static int read_run(struct fat_vol *v, uint32_t first, uint64_t count, uint8_t *buf, uint64_t *done, uint64_t size,
                    struct asr_error *err)
{
    uint64_t bytes = count * v->g.cluster_bytes;
    if (bytes > size - *done)
        bytes = size - *done;
    int rc = asr_window_read(v->w, "a file", v->g.data_offset + (uint64_t)(first - 2) * v->g.cluster_bytes, buf + *done,
                             (size_t)bytes, err);
    *done += bytes;
    return rc;
}

/* A file's data along its chain, a contiguous run of clusters per read. */
static int read_chain(struct fat_vol *v, const char *path, const struct fat_dirent *d, uint8_t *buf,
                      struct asr_error *err)
{
    const struct fat_geom *g = &v->g;
    uint64_t size = d->size, need = (size + g->cluster_bytes - 1) / g->cluster_bytes, done = 0;
    if (!need)
        return ASR_OK;
    if (!fat_valid_cluster(g, d->start))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "fat: %.200s: its directory entry points outside the clusters (cluster %u, not in 2..%llu)",
                               path, d->start, (unsigned long long)g->clusters + 1);
    uint32_t c = d->start, run = c, next;
    uint64_t len = 0;
    struct walk_loop loop;
    walk_loop_start(&loop, c);
    for (uint64_t k = 0;; k++) {
        int rc = ASR_OK;
        if (len && c == run + len) {
            len++;
        } else {
            if (len && (rc = read_run(v, run, len, buf, &done, size, err)) != ASR_OK)
                return rc;
            run = c;
            len = 1;
        }
        if (k + 1 == need)
            break;
        if ((rc = fat_entry(v->fc, c, &next, err)) != ASR_OK)
            return rc;
        if (next >= fat_end_of_chain(g->bits) || !fat_entry_used(next, g->bits) || !fat_valid_cluster(g, next))
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "fat: %.200s: its cluster chain ends at cluster %u (FAT entry 0x%X) after %llu of "
                                   "its %llu clusters",
                                   path, c, next, (unsigned long long)k + 1, (unsigned long long)need);
        if (walk_loops(&loop, next))
            return asr_fail_public(err, ASR_E_CORRUPT, "fat: %.200s: its cluster chain loops (cluster %u again)", path,
                                   next);
        c = next;
    }
    return read_run(v, run, len, buf, &done, size, err);
}

static int fat_vol_read(struct fs_vol *base, const char *path, size_t cap, uint8_t **out, size_t *len,
                        struct asr_error *err)
{
    struct fat_vol *v = (struct fat_vol *)base;
    struct fat_dirent d;
    int rc = lookup(v, path, &d, err);
    if (rc != ASR_OK)
        return rc;
    if (is_dir(&d))
        return asr_fail_public(err, FS_E_NOT_FILE, "fat: %.200s: a directory, not a file", path);
    if (d.size > cap)
        return asr_fail_public(err, ASR_E_LIMIT, "fat: %.200s: %u bytes, over the %zu-byte limit", path, d.size, cap);
    uint8_t *buf = malloc((size_t)d.size + 1);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "fat: %.200s: out of memory for %u bytes", path, d.size);
    rc = read_chain(v, path, &d, buf, err);
    if (rc != ASR_OK) {
        free(buf);
        return rc;
    }
    buf[d.size] = 0;
    *out = buf;
    *len = d.size;
    return ASR_OK;
}

struct list {
    fs_dir_fn fn;
    void *ctx;
};

static int list_entry(void *ctx, const struct fat_dirent *d)
{
    const struct list *l = ctx;
    if (!d->name[0] && (!strcmp(d->short_name, ".") || !strcmp(d->short_name, "..")))
        return 0;
    return l->fn(l->ctx, d->name[0] ? d->name : d->short_name, is_dir(d) ? FS_KIND_DIR : FS_KIND_FILE);
}

static int fat_vol_list(struct fs_vol *base, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err)
{
    struct fat_vol *v = (struct fat_vol *)base;
    struct fat_dirent d;
    int rc = lookup(v, path, &d, err);
    if (rc != ASR_OK)
        return rc;
    if (!is_dir(&d))
        return asr_fail_public(err, FS_E_NOT_DIR, "fat: %.200s: not a directory", path);
    struct list l = {fn, ctx};
    return each_entry(v, d.start, path, list_entry, &l, err);
}

static void fat_vol_close(struct fs_vol *base)
{
    struct fat_vol *v = (struct fat_vol *)base;
    free(v->fc);
    free(v->buf);
    free(v);
}

static const struct fs_vol_ops fat_vol_ops = {fat_vol_read, fat_vol_list, fat_vol_close};

int fs_fat_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err)
{
    *out = NULL;
    struct fat_geom g = {0};
    int rc = fat_read_geom(w, &g, err);
    if (rc != ASR_OK)
        return rc;
    struct fat_vol *v = calloc(1, sizeof *v);
    if (v) {
        v->fc = malloc(sizeof *v->fc);
        v->buf = malloc((size_t)g.cluster_bytes); /* at most 128 sectors of 4 KiB: checked */
    }
    if (!v || !v->fc || !v->buf) {
        if (v)
            fat_vol_close(&v->base);
        return asr_fail_public(err, ASR_E_NOMEM, "fat: out of memory");
    }
    v->base.ops = &fat_vol_ops;
    v->w = w;
    v->g = g;
    *v->fc = (struct fat_cache){.w = w, .g = &v->g};
    *out = &v->base;
    return ASR_OK;
}
