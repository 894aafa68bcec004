/* Reading restored disks back and comparing them with the image (restore --verify, and
 * `asrimg verify IMAGE --against DISK`). Data is checked through the volume content hash the
 * backup computed from the source (SPEC.md section 12), which needs no decompression: a
 * mismatch then costs a second, byte-by-byte pass against the image to name the first wrong
 * byte. Reads go through O_DIRECT where the target allows, so the media is read, not the cache. */
#include "image_source.h"
#include "restore_target.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECE (8u << 20)   /* zero extents are compared this much at a time */
#define WINDOW (16u << 20) /* read back in windows this large: extents of a volume lie close together */

struct compare {
    struct asr_restore *rs;
    struct restore_target *t;
    const struct asr_compare_options *opt;
    struct asr_restore_progress progress;
    uint8_t *buf, *want;
    size_t cap;
    uint64_t mismatches;
    uint8_t *win; /* WINDOW bytes of the target from win_off, win_len of them valid */
    uint64_t win_off, win_len;
};

/* len bytes of the target at `at`: from the window, which a miss moves to start at `at` (one
 * large read instead of one per extent); or, for what does not fit in a window, c->buf. */
static int target_bytes(struct compare *c, uint64_t at, size_t len, const uint8_t **p, struct asr_error *err)
{
    if (at >= c->win_off && at + len <= c->win_off + c->win_len) {
        *p = c->win + (at - c->win_off);
        return ASR_OK;
    }
    uint64_t a = c->t->align, from = at / a * a, to = from + WINDOW, end = c->t->info.size_bytes / a * a;
    if (to > end)
        to = end; /* what is left, an odd tail of a file, goes through c->buf */
    if (at + len > to || from >= to) {
        *p = c->buf;
        return target_read(c->t, at, c->buf, len, err);
    }
    c->win_len = 0;
    int rc = target_read_aligned(c->t, from, c->win, (size_t)(to - from), err);
    if (rc)
        return rc;
    c->win_off = from;
    c->win_len = to - from;
    *p = c->win + (at - from);
    return ASR_OK;
}

static void mismatch(struct compare *c, uint32_t volume, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void mismatch(struct compare *c, uint32_t volume, uint64_t offset, const char *fmt, ...)
{
    struct asr_restore_mismatch m = {.target = c->t->path, .volume = volume, .offset = offset};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.what, sizeof m.what, fmt, ap);
    va_end(ap);
    c->mismatches++;
    if (c->opt->on_mismatch)
        c->opt->on_mismatch(&m, c->opt->mismatch_ctx);
}

static size_t first_difference(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

static size_t first_nonzero(const uint8_t *a, size_t n)
{
    size_t i = 0;
    while (i < n && !a[i])
        i++;
    return i;
}

/* Zero extents must read as zeros; the volume hash covers only their place, not their bytes. */
static int zeros_hold(struct compare *c, uint64_t at, uint64_t len, uint64_t *bad, struct asr_error *err)
{
    *bad = UINT64_MAX;
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < PIECE ? (size_t)(len - done) : PIECE;
        const uint8_t *p;
        int rc = target_bytes(c, at + done, n, &p, err);
        if (rc)
            return rc;
        size_t z = first_nonzero(p, n);
        if (z < n) {
            *bad = done + z;
            return ASR_OK;
        }
        done += n;
    }
    return ASR_OK;
}

/* The volume's cleared ranges as the disk's own filesystems say (opt->cleared): a backup of an ext
 * filesystem whose journal is empty holds zeros for its log, which the source disk does not (and
 * which its filesystem never reads), also when the filesystem is in an LV on this partition.
 * Empty without opt->cleared, and when the disk's filesystems say nothing of the kind: then every
 * zero extent is checked. */
static void disk_cleared(struct compare *c, const struct asr_volume_desc *vd, struct asr_ranges *out)
{
    *out = (struct asr_ranges){0};
    if (!c->opt->cleared)
        return;
    struct asr_window w = {.fd = c->t->fd_buffered, .path = c->t->path, .base = vd->disk_offset,
                           .size = vd->size_bytes};
    struct asr_error why = {0};
    if (c->opt->cleared(c->opt->cleared_ctx, vd, &w, out, &why) != ASR_OK)
        asr_ranges_free(out);
}

/* zeros_hold over a zero extent (volume bytes [off, off+len)) but for the disk's cleared ranges;
 * *bad is the first non-zero byte from off. */
static int zero_extent_holds(struct compare *c, uint64_t base, uint64_t off, uint64_t len,
                             const struct asr_ranges *cleared, uint64_t *bad, struct asr_error *err)
{
    *bad = UINT64_MAX;
    size_t k = 0;
    for (uint64_t at = off, end = off + len; at < end;) {
        while (k < cleared->n && cleared->v[k].offset + cleared->v[k].length <= at)
            k++;
        bool inside = k < cleared->n && cleared->v[k].offset <= at;
        uint64_t stop = inside ? cleared->v[k].offset + cleared->v[k].length
                               : k < cleared->n && cleared->v[k].offset < end ? cleared->v[k].offset : end;
        if (stop > end)
            stop = end;
        if (!inside) {
            int rc = zeros_hold(c, base + at, stop - at, bad, err);
            if (rc || *bad != UINT64_MAX) {
                if (*bad != UINT64_MAX)
                    *bad += at - off;
                return rc;
            }
        }
        at = stop;
    }
    return ASR_OK;
}

/* Byte by byte against the image: names the first wrong byte of the volume. */
static int locate(struct compare *c, struct asr_reader *r, uint32_t v, struct asr_error *err)
{
    const struct asr_volume_desc *vd = asr_image_volume(c->rs->im, v);
    uint64_t n;
    const struct asr_extent *e = image_extents(c->rs->im, v, &n);
    for (uint64_t i = 0; i < n; i++) {
        if (e[i].ref == ASR_REF_UNREADABLE || e[i].ref == ASR_REF_ZERO)
            continue; /* zero extents were checked in the first pass */
        size_t len = (size_t)e[i].length;
        const uint8_t *got;
        int rc = target_bytes(c, vd->disk_offset + e[i].offset, len, &got, err);
        if (!rc)
            rc = asr_reader_read_volume(r, v, e[i].offset, c->want, len, err);
        if (rc)
            return rc;
        size_t d = first_difference(got, c->want, len);
        if (d < len) {
            mismatch(c, v, e[i].offset + d, "byte differs from the image (0x%02x on the disk, 0x%02x in the image)",
                     got[d], c->want[d]);
            return ASR_OK;
        }
    }
    mismatch(c, v, 0, "the volume's content hash differs from the image's, but no byte does");
    return ASR_OK;
}

static int compare_volume(struct compare *c, uint32_t v, struct asr_error *err)
{
    const struct asr_volume_desc *vd = asr_image_volume(c->rs->im, v);
    uint64_t n;
    const struct asr_extent *e = image_extents(c->rs->im, v, &n);
    struct asr_volume_hasher *h;
    int rc = asr_volume_hasher_new(asr_image_info(c->rs->im)->hash_seed, &h, err);
    struct asr_ranges cleared;
    disk_cleared(c, vd, &cleared);
    for (uint64_t i = 0; i < n && !rc; i++) {
        uint64_t at = vd->disk_offset + e[i].offset, bad;
        if (e[i].ref == ASR_REF_ZERO &&
            !(rc = zero_extent_holds(c, vd->disk_offset, e[i].offset, e[i].length, &cleared, &bad, err)) &&
            bad != UINT64_MAX) {
            mismatch(c, v, e[i].offset + bad, "should read as zeros");
            asr_volume_hasher_free(h);
            asr_ranges_free(&cleared);
            return ASR_OK;
        }
        const uint8_t *got = NULL;
        if (!rc && e[i].ref < ASR_REF_UNREADABLE)
            rc = target_bytes(c, at, (size_t)e[i].length, &got, err);
        if (!rc)
            asr_volume_hasher_add(h, &e[i], got);
        c->progress.done += e[i].length;
        if (c->opt->progress)
            c->opt->progress(&c->progress, c->opt->progress_ctx);
    }
    asr_ranges_free(&cleared);
    const struct asr_volume_stats *vs = asr_image_volume_stats(c->rs->im, v);
    struct asr_hash128 got = asr_volume_hasher_digest(h), want = vs ? vs->content_hash : got;
    bool same = !rc && got.lo == want.lo && got.hi == want.hi;
    asr_volume_hasher_free(h);
    if (rc || same)
        return rc;
    struct asr_reader *r = image_reader(c->rs->im);
    if (!r) { /* a stream is gone once read: the volume is named, not the byte */
        mismatch(c, v, 0, "the volume's content differs from the image's (content hash)");
        return ASR_OK;
    }
    return locate(c, r, v, err);
}

/* Boot code, the post-MBR gap, EBRs and other raw regions, byte for byte; the GPT structures
 * (and, after --grow, the EBRs' entries) are compared through the partition table below, as
 * libfdisk may have rewritten them. */
static int compare_regions(struct compare *c, const struct asr_disk_desc *d, struct asr_error *err)
{
    for (uint32_t i = 0; i < d->region_count; i++) {
        const struct asr_region_desc *g = &d->regions[i];
        size_t len = g->length;
        if (g->kind >= ASR_REGION_GPT_HEADER && g->kind <= ASR_REGION_GPT_BACKUP_HEADER)
            continue;
        if (g->kind == ASR_REGION_MBR)
            len = len < 440 ? len : 440; /* signature and table: compared as the table */
        if (g->kind == ASR_REGION_EBR && c->opt->grow)
            len = len < 446 ? len : 446; /* --grow rewrote the last logical partition's entry */
        int rc = target_read(c->t, g->offset, c->buf, len, err);
        if (rc)
            return rc;
        size_t k = first_difference(c->buf, g->data, len);
        if (k < len)
            mismatch(c, UINT32_MAX, g->offset + k, "raw boot region differs from the image");
    }
    return ASR_OK;
}

static bool partition_equal(const struct asr_partition_desc *a, const struct asr_partition_desc *b, bool new_ids,
                            bool grown, char *why, size_t len)
{
    if (a->start_bytes != b->start_bytes)
        snprintf(why, len, "partition %u starts at %llu, the image says %llu", a->number,
                 (unsigned long long)a->start_bytes, (unsigned long long)b->start_bytes);
    else if (a->size_bytes != b->size_bytes && !grown)
        snprintf(why, len, "partition %u has %llu bytes, the image says %llu", a->number,
                 (unsigned long long)a->size_bytes, (unsigned long long)b->size_bytes);
    else if (a->kind != b->kind || a->mbr_type != b->mbr_type || a->bootable != b->bootable ||
             memcmp(a->type_guid, b->type_guid, 16) || a->attributes != b->attributes || strcmp(a->name, b->name))
        snprintf(why, len, "partition %u differs in type, flags or name", a->number);
    else if (!new_ids && memcmp(a->part_guid, b->part_guid, 16))
        snprintf(why, len, "partition %u has another GUID", a->number);
    else
        return true;
    return false;
}

static void compare_table(struct compare *c, const struct asr_disk_desc *want, bool new_ids, bool grow)
{
    struct asr_disk *d;
    struct asr_error why = {0};
    if (want->label == ASR_LABEL_NONE)
        return;
    if (asr_disk_open(c->t->path, &d, &why) != ASR_OK) {
        mismatch(c, UINT32_MAX, 0, "partition table unreadable: %s", why.msg);
        return;
    }
    const struct asr_disk_desc *have = asr_disk_desc(d);
    char what[200];
    struct asr_grow_plan plan = {UINT32_MAX, UINT32_MAX};
    if (grow)
        asr_restore_grow_plan(want, &plan, what, sizeof what); /* the restore checked it before writing */
    if (have->label != want->label)
        mismatch(c, UINT32_MAX, 0, "partition table type differs from the image");
    else if (!new_ids && memcmp(have->disk_id, want->disk_id, 16))
        mismatch(c, UINT32_MAX, 0, "disk identifier differs from the image");
    else if (have->partition_count != want->partition_count)
        mismatch(c, UINT32_MAX, 0, "%u partitions, the image has %u", have->partition_count, want->partition_count);
    else
        for (uint32_t i = 0; i < have->partition_count; i++)
            if (!partition_equal(&have->partitions[i], &want->partitions[i], new_ids,
                                 grow && (i == plan.data || i == plan.container), what, sizeof what)) {
                mismatch(c, UINT32_MAX, have->partitions[i].start_bytes, "%s", what);
                break;
            }
    asr_disk_close(d);
}

/* What the progress counts to: the captured bytes of every target's volumes. */
static uint64_t compare_total(const struct asr_restore *rs)
{
    uint64_t total = 0;
    for (size_t i = 0; i < rs->n; i++)
        for (uint32_t v = 0; v < asr_image_volume_count(rs->im); v++) {
            if (asr_image_volume(rs->im, v)->disk_index != rs->t[i].info.disk_index)
                continue;
            uint64_t n;
            const struct asr_extent *e = image_extents(rs->im, v, &n);
            for (uint64_t k = 0; e && k < n; k++)
                total += e[k].length;
        }
    return total;
}

int asr_restore_compare(struct asr_restore *rs, const struct asr_compare_options *opt, struct asr_error *err)
{
    struct compare c = {.rs = rs, .opt = opt, .progress = {.total = compare_total(rs), .verifying = true}};
    c.cap = asr_image_info(rs->im)->max_chunk_size;
    for (uint32_t i = 0; i < asr_image_disk_count(rs->im); i++)
        for (uint32_t k = 0; k < asr_image_disk(rs->im, i)->region_count; k++)
            if (asr_image_disk(rs->im, i)->regions[k].length > c.cap)
                c.cap = asr_image_disk(rs->im, i)->regions[k].length;
    if (c.cap < PIECE)
        c.cap = PIECE;
    c.buf = malloc(c.cap);
    c.want = malloc(c.cap);
    c.win = aligned_alloc(65536, WINDOW);
    int rc = c.buf && c.want && c.win ? ASR_OK : asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < rs->n && !rc; i++) {
        c.t = &rs->t[i];
        c.win_len = 0;
        const struct asr_disk_desc *d = asr_image_disk(rs->im, c.t->info.disk_index);
        rc = compare_regions(&c, d, err);
        if (!rc)
            compare_table(&c, d, opt->new_ids, opt->grow);
        for (uint32_t v = 0; v < asr_image_volume_count(rs->im) && !rc; v++)
            if (asr_image_volume(rs->im, v)->disk_index == c.t->info.disk_index)
                rc = compare_volume(&c, v, err);
    }
    free(c.buf);
    free(c.want);
    free(c.win);
    if (!rc && c.mismatches)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "%llu difference%s between the disks and the image",
                             (unsigned long long)c.mismatches, c.mismatches == 1 ? "" : "s");
    return rc;
}
