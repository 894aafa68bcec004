/* Small files read by path from exFAT (fs_file.h), with fs_exfat.c's validated geometry, boot
 * checksum, FAT cache and chain walk (fs_exfat_internal.h): directories are read as their
 * stream extensions describe them (a FAT chain, or contiguous clusters when NoFatChain is set;
 * the root along its chain), entry sets give each name (UTF-16 name entries) and where its data
 * lies; names are matched ignoring ASCII case. A file is read up to its valid data length, the
 * rest of its size reading as zeros, as the specification says. A chain that loops or leaves
 * the heap, contiguous clusters past the heap's end, a directory past the specification's size,
 * each ends the read with ASR_E_CORRUPT. */
#include "fs_exfat_internal.h"
#include "fs_reader.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_UNITS 255   /* the longest name, in UTF-16 units */
#define MAX_SECONDARIES 18 /* a stream extension and 17 name entries of 15 units */

struct exfat_vol {
    struct fs_vol base; /* first: a struct fs_vol * points here */
    const struct asr_window *w;
    struct exfat_geom g;
    struct exfat_cache *fc;
    uint8_t *buf; /* one piece of a directory: a cluster, or EXFAT_READ_PIECE of a larger one */
};

/* Where a directory's or a file's clusters are. */
struct extent {
    uint32_t first;
    uint64_t bytes;
    bool contiguous;
};

struct xdirent {
    char name[NAME_UNITS * 3 + 1];
    uint16_t attr;
    struct extent at;
    uint64_t valid; /* ValidDataLength: bytes past it read as zeros */
};

/* The entry set being read: a file entry, then its stream extension and name entries. */
struct set {
    int left;          /* secondary entries still to come; 0: no set open */
    bool stream;       /* the stream extension was read */
    unsigned units, got; /* name length, and units read so far */
    uint16_t u[NAME_UNITS + 15];
    struct xdirent d;
};

/* One 32-byte entry: 1 with *d complete when it ends a file's set that holds a stream extension
 * and a whole name; sets of other primaries (bitmap, up-case, label, vendor) are passed over. */
static int take_entry(struct set *s, const uint8_t *e)
{
    uint8_t t = e[0];
    if (!(t & 0x80)) { /* unused or deleted: any set open is broken off */
        s->left = 0;
        return 0;
    }
    if (!(t & 0x40)) { /* a primary entry starts a set */
        s->left = t == ENTRY_FILE && e[1] >= 2 && e[1] <= MAX_SECONDARIES ? e[1] : 0;
        s->stream = false;
        s->got = 0;
        s->d.attr = get_le16(e + 4);
        return 0;
    }
    if (!s->left)
        return 0;
    s->left--;
    if (t == ENTRY_STREAM && !s->stream) {
        s->stream = true;
        s->units = e[3];
        s->d.valid = get_le64(e + 8);
        s->d.at = (struct extent){get_le32(e + 20), get_le64(e + 24), e[1] & 2};
    } else if (t == ENTRY_NAME && s->stream && s->got < s->units) {
        for (int i = 0; i < 15; i++)
            s->u[s->got + (unsigned)i] = get_le16(e + 2 + 2 * i);
        s->got += 15;
    }
    if (s->left || !s->stream || !s->units || s->got < s->units)
        return 0;
    fs_utf16_to_utf8(s->u, s->units, s->d.name);
    return 1;
}

typedef int (*entry_fn)(void *ctx, const struct xdirent *d);

/* The clusters of an extent, one at a time: contiguous ones counted on, chained ones followed
 * through the FAT (loops and links out of the heap are corruption). */
struct walker {
    const struct exfat_geom *g;
    struct exfat_chain ch;
    bool contiguous;
    uint32_t c;
};

static int walker_start(struct exfat_vol *v, struct walker *wk, const struct extent *x, uint64_t clusters,
                        const char *path, struct asr_error *err)
{
    *wk = (struct walker){.g = &v->g, .contiguous = x->contiguous, .c = x->first};
    if (!x->contiguous)
        return exfat_chain_start(&wk->ch, v->fc, path, x->first, clusters, err);
    if (!exfat_valid_cluster(&v->g, x->first) || !exfat_valid_cluster(&v->g, x->first + clusters - 1))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "exfat: %.200s: %llu contiguous clusters from cluster %u leave the heap (clusters 2..%llu)",
                               path, (unsigned long long)clusters, x->first, (unsigned long long)v->g.clusters + 1);
    return ASR_OK;
}

/* Moves to the next cluster; *done when a chain ends (the caller decides whether that is early). */
static int walker_next(struct walker *wk, int *done, struct asr_error *err)
{
    *done = 0;
    if (wk->contiguous) {
        wk->c++;
        return ASR_OK;
    }
    int rc = exfat_chain_next(&wk->ch, done, err);
    wk->c = wk->ch.cur;
    return rc;
}

/* Every entry of a directory, up to its end marker. */
static int each_entry(struct exfat_vol *v, const struct extent *dir, const char *path, entry_fn fn, void *ctx,
                      struct asr_error *err)
{
    const struct exfat_geom *g = &v->g;
    uint64_t cluster = 1ull << g->cluster_shift, piece = cluster < EXFAT_READ_PIECE ? cluster : EXFAT_READ_PIECE;
    uint64_t bytes = dir->bytes < EXFAT_DIR_MAX_BYTES ? dir->bytes : EXFAT_DIR_MAX_BYTES;
    uint64_t n = bytes ? ((bytes - 1) >> g->cluster_shift) + 1 : 0;
    if (!n)
        return ASR_OK;
    struct set *s = calloc(1, sizeof *s);
    if (!s)
        return asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory");
    struct walker wk;
    int rc = walker_start(v, &wk, dir, n, path, err), stop = 0, done = 0;
    for (uint64_t k = 0; rc == ASR_OK && !stop && !done; k++) {
        for (uint64_t off = 0; off < cluster && rc == ASR_OK && !stop; off += piece) {
            rc = asr_window_read(v->w, "a directory", exfat_cluster_offset(g, wk.c) + off, v->buf, (size_t)piece, err);
            for (uint64_t i = 0; i < piece && rc == ASR_OK && !stop; i += 32) {
                if (v->buf[i] == ENTRY_END)
                    stop = 1; /* nothing in use follows the end marker */
                else if (take_entry(s, v->buf + i))
                    stop = fn(ctx, &s->d);
            }
        }
        if (rc == ASR_OK && !stop && k + 1 < n)
            rc = walker_next(&wk, &done, err);
        else
            done = 1;
    }
    free(s);
    return rc;
}

struct find {
    const char *name;
    size_t n;
    bool found;
    struct xdirent *hit;
};

static int match(void *ctx, const struct xdirent *d)
{
    struct find *f = ctx;
    if (!fs_same_name(d->name, f->name, f->n))
        return 0;
    *f->hit = *d;
    f->found = true;
    return 1;
}

static bool is_dir(const struct xdirent *d) { return d->attr & 0x10; }

/* The entry path names (for "/", the root along its chain). ".." goes back up the way the path
 * came: exFAT directories hold no ".." entry. */
static int lookup(struct exfat_vol *v, const char *path, struct xdirent *d, struct asr_error *err)
{
    struct extent up[FS_PATH_MAX_PARTS];
    size_t depth = 0;
    const struct extent root = {v->g.root_cluster, EXFAT_DIR_MAX_BYTES, false};
    *d = (struct xdirent){.name = "/", .attr = 0x10, .at = root};
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        const char *name = p;
        p += n;
        if (!n)
            continue;
        if (!is_dir(d))
            return asr_fail_public(err, FS_E_NOT_FOUND, "exfat: %.200s: not found (%.100s is a file)", path, d->name);
        if (n == 2 && name[0] == '.' && name[1] == '.') {
            d->at = depth ? up[--depth] : root;
            continue;
        }
        struct extent dir = d->at;
        struct find f = {.name = name, .n = n, .hit = d};
        int rc = each_entry(v, &dir, path, match, &f, err);
        if (rc != ASR_OK)
            return rc;
        if (!f.found)
            return asr_fail_public(err, FS_E_NOT_FOUND, "exfat: %.200s: not found", path);
        up[depth++] = dir; /* at most one per name: fs_file.c bounds them */
    }
    return ASR_OK;
}

static int read_data(struct exfat_vol *v, const char *path, const struct xdirent *d, uint8_t *buf,
                     struct asr_error *err)
{
    const struct exfat_geom *g = &v->g;
    uint64_t want = d->valid < d->at.bytes ? d->valid : d->at.bytes; /* the rest reads as zeros */
    uint64_t need = want ? ((want - 1) >> g->cluster_shift) + 1 : 0, done = 0, cluster = 1ull << g->cluster_shift;
    if (!need)
        return ASR_OK;
    struct walker wk;
    int rc = walker_start(v, &wk, &d->at, need, path, err), ended = 0;
    uint32_t run = wk.c;
    uint64_t len = 0;
    for (uint64_t k = 0; rc == ASR_OK; k++) {
        if (len && wk.c == run + len) {
            len++;
        } else {
            uint64_t bytes = len * cluster < want - done ? len * cluster : want - done;
            if (len)
                rc = asr_window_read(v->w, "a file", exfat_cluster_offset(g, run), buf + done, (size_t)bytes, err);
            done += len ? bytes : 0;
            run = wk.c;
            len = 1;
        }
        if (rc != ASR_OK || k + 1 == need)
            break;
        if ((rc = walker_next(&wk, &ended, err)) == ASR_OK && ended)
            rc = asr_fail_public(err, ASR_E_CORRUPT,
                                 "exfat: %.200s: its cluster chain ends at cluster %u after %llu of its %llu clusters",
                                 path, wk.c, (unsigned long long)k + 1, (unsigned long long)need);
    }
    if (rc == ASR_OK)
        rc = asr_window_read(v->w, "a file", exfat_cluster_offset(g, run), buf + done, (size_t)(want - done), err);
    return rc;
}

static int exfat_vol_read(struct fs_vol *base, const char *path, size_t cap, uint8_t **out, size_t *len,
                          struct asr_error *err)
{
    struct exfat_vol *v = (struct exfat_vol *)base;
    struct xdirent d;
    int rc = lookup(v, path, &d, err);
    if (rc != ASR_OK)
        return rc;
    if (is_dir(&d))
        return asr_fail_public(err, FS_E_NOT_FILE, "exfat: %.200s: a directory, not a file", path);
    if (d.at.bytes > cap)
        return asr_fail_public(err, ASR_E_LIMIT, "exfat: %.200s: %llu bytes, over the %zu-byte limit", path,
                               (unsigned long long)d.at.bytes, cap);
    uint8_t *buf = calloc(1, (size_t)d.at.bytes + 1);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "exfat: %.200s: out of memory for %llu bytes", path,
                               (unsigned long long)d.at.bytes);
    rc = read_data(v, path, &d, buf, err);
    if (rc != ASR_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = (size_t)d.at.bytes;
    return ASR_OK;
}

struct list {
    fs_dir_fn fn;
    void *ctx;
};

static int list_entry(void *ctx, const struct xdirent *d)
{
    const struct list *l = ctx;
    return l->fn(l->ctx, d->name, is_dir(d) ? FS_KIND_DIR : FS_KIND_FILE);
}

static int exfat_vol_list(struct fs_vol *base, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err)
{
    struct exfat_vol *v = (struct exfat_vol *)base;
    struct xdirent d;
    int rc = lookup(v, path, &d, err);
    if (rc != ASR_OK)
        return rc;
    if (!is_dir(&d))
        return asr_fail_public(err, FS_E_NOT_DIR, "exfat: %.200s: not a directory", path);
    struct list l = {fn, ctx};
    return each_entry(v, &d.at, path, list_entry, &l, err);
}

static void exfat_vol_close(struct fs_vol *base)
{
    struct exfat_vol *v = (struct exfat_vol *)base;
    free(v->fc);
    free(v->buf);
    free(v);
}

static const struct fs_vol_ops exfat_vol_ops = {exfat_vol_read, exfat_vol_list, exfat_vol_close};

int fs_exfat_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err)
{
    *out = NULL;
    struct exfat_geom g = {0};
    int rc = exfat_read_geom(w, &g, err);
    if (rc != ASR_OK)
        return rc;
    uint64_t cluster = 1ull << g.cluster_shift;
    struct exfat_vol *v = calloc(1, sizeof *v);
    if (v) {
        v->fc = malloc(sizeof *v->fc);
        v->buf = malloc(cluster < EXFAT_READ_PIECE ? (size_t)cluster : EXFAT_READ_PIECE);
    }
    if (!v || !v->fc || !v->buf) {
        if (v)
            exfat_vol_close(&v->base);
        return asr_fail_public(err, ASR_E_NOMEM, "exfat: out of memory");
    }
    v->base.ops = &exfat_vol_ops;
    v->w = w;
    v->g = g;
    *v->fc = (struct exfat_cache){.w = w, .g = &v->g};
    *out = &v->base;
    return ASR_OK;
}
