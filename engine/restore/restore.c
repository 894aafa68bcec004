/* A restore as a whole: the data in one pass over the image (restore_file.c from a file,
 * restore_stream.c from a pipe), then the layout (restore_layout.c), --discard or --zero-unused,
 * the sync, and --verify (restore_compare.c). */
#include "clock.h"
#include "image_source.h"
#include "restore_layout.h"
#include "restore_pass.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* What the progress counts to: the captured bytes; a stream knows only the used bytes ahead. */
static uint64_t captured_total(const struct asr_restore *rs)
{
    uint64_t t = 0;
    for (uint32_t v = 0; v < asr_image_volume_count(rs->im); v++) {
        const struct asr_volume_stats *s = asr_image_volume_stats(rs->im, v);
        t += s ? s->data_bytes + s->zero_bytes + s->unreadable_bytes : asr_image_volume(rs->im, v)->used_bytes;
    }
    return t;
}

/* ---- unused space ----------------------------------------------------------------------- */

struct span {
    uint64_t from, to;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from;
}

/* Everything the restore wrote on target t's disk, sorted: table and boot regions at the start,
 * EBRs and other regions, every extent, and the GPT backup at the end. */
static int written_spans(const struct asr_restore *rs, const struct restore_target *t, struct span **out, size_t *n,
                         struct asr_error *err)
{
    const struct asr_disk_desc *d = asr_image_disk(rs->im, t->info.disk_index);
    size_t cap = 2 + d->region_count, len = 0;
    for (uint32_t v = 0; v < asr_image_volume_count(rs->im); v++) {
        uint64_t c;
        if (asr_image_volume(rs->im, v)->disk_index == t->info.disk_index && image_extents(rs->im, v, &c))
            cap += c;
    }
    struct span *s = malloc(cap * sizeof *s);
    if (!s)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < d->region_count; i++)
        if (d->regions[i].kind != ASR_REGION_GPT_BACKUP_ENTRIES && d->regions[i].kind != ASR_REGION_GPT_BACKUP_HEADER)
            s[len++] = (struct span){d->regions[i].offset, d->regions[i].offset + d->regions[i].length};
    uint64_t tail = restore_table_tail(d);
    if (tail)
        s[len++] = (struct span){t->info.size_bytes - tail, t->info.size_bytes};
    for (uint32_t v = 0; v < asr_image_volume_count(rs->im); v++) {
        const struct asr_volume_desc *vd = asr_image_volume(rs->im, v);
        uint64_t c;
        const struct asr_extent *e = image_extents(rs->im, v, &c);
        if (vd->disk_index != t->info.disk_index)
            continue;
        for (uint64_t i = 0; i < c; i++)
            s[len++] = (struct span){vd->disk_offset + e[i].offset, vd->disk_offset + e[i].offset + e[i].length};
    }
    qsort(s, len, sizeof *s, span_cmp);
    *out = s;
    *n = len;
    return ASR_OK;
}

static bool clear_range(struct restore_target *t, uint8_t how, uint64_t from, uint64_t to)
{
    if (!t->info.is_block)
        return fallocate(t->fd_buffered, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
                         (off_t)(to - from)) == 0;
    uint64_t range[2] = {from, to - from};
    return ioctl(t->fd_buffered, how == ASR_UNUSED_DISCARD ? BLKDISCARD : BLKZEROOUT, range) == 0;
}

/* --discard / --zero-unused: every byte of the target the restore did not write. */
static int clear_unused(struct restore_pass *p, struct restore_target *t, struct asr_error *err)
{
    struct span *s = NULL;
    size_t n = 0;
    int rc = written_spans(p->rs, t, &s, &n, err);
    if (rc)
        return rc;
    uint64_t ss = t->info.logical_sector, pos = 0;
    for (size_t i = 0; i <= n && !rc; i++) {
        uint64_t gap_to = i < n ? s[i].from : t->info.size_bytes;
        uint64_t from = (pos + ss - 1) / ss * ss, to = gap_to / ss * ss;
        if (to > from) {
            if (clear_range(t, p->opt->unused, from, to))
                p->st->unused_bytes += to - from;
            else if (p->opt->unused == ASR_UNUSED_ZERO || errno != EOPNOTSUPP)
                rc = asr_fail_public(err, ASR_E_IO, "cannot %s %s at offset %llu: %s",
                                     p->opt->unused == ASR_UNUSED_ZERO ? "zero" : "discard", t->path,
                                     (unsigned long long)from, strerror(errno));
        }
        if (i < n && s[i].to > pos)
            pos = s[i].to;
    }
    free(s);
    return rc;
}

/* ---- public ------------------------------------------------------------------------------- */

void asr_restore_stats_free(struct asr_restore_stats *st)
{
    if (!st)
        return;
    free(st->damaged);
    free(st->unreadable);
    st->damaged = st->unreadable = NULL;
    st->damaged_count = st->unreadable_count = 0;
}

static int finish_targets(struct restore_pass *p, struct asr_error *err)
{
    int rc = ASR_OK;
    for (size_t i = 0; i < p->rs->n; i++)
        p->rs->t[i].info.state = ASR_TARGET_NO_TABLE;
    for (size_t i = 0; i < p->rs->n && !rc; i++)
        rc = target_sync(&p->rs->t[i], err);
    if (!rc)
        rc = restore_write_layout(p->rs, p->opt, p->st, err);
    for (size_t i = 0; i < p->rs->n && !rc && p->opt->unused != ASR_UNUSED_KEEP; i++)
        rc = clear_unused(p, &p->rs->t[i], err);
    for (size_t i = 0; i < p->rs->n && !rc; i++) {
        rc = target_sync(&p->rs->t[i], err);
        if (!rc && p->rs->t[i].info.is_block)
            ioctl(p->rs->t[i].fd_buffered, BLKRRPART); /* the kernel rereads the table where it can */
    }
    return rc;
}

static void on_verify_mismatch(const struct asr_restore_mismatch *m, void *ctx)
{
    struct asr_error *first = ctx;
    if (first->code == ASR_OK) {
        first->code = ASR_E_CORRUPT;
        if (m->volume == UINT32_MAX)
            snprintf(first->msg, sizeof first->msg, "%s at disk offset %llu: %s", m->target,
                     (unsigned long long)m->offset, m->what);
        else
            snprintf(first->msg, sizeof first->msg, "%s volume %u offset %llu: %s", m->target, m->volume,
                     (unsigned long long)m->offset, m->what);
    }
}

int asr_restore_run(struct asr_restore *rs, const struct asr_restore_options *opt, struct asr_restore_stats *st,
                    struct asr_error *err)
{
    *st = (struct asr_restore_stats){0};
    if (rs->read_only)
        return asr_fail_public(err, ASR_E_STATE, "targets were opened read-only");
    int rc = asr_restore_check_options(rs, opt, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < rs->n; i++)
        rs->t[i].info.state = ASR_TARGET_UNTOUCHED;
    double start = asr_now();
    struct restore_pass p = {.rs = rs, .opt = opt, .st = st, .total = captured_total(rs)};
    p.group = calloc(rs->n, sizeof *p.group);
    rc = p.group ? restore_mirror_new(rs->n, err, &p.m) : asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    if (!rc)
        rc = restore_targets_ready(rs, err);
    st->direct_io = true;
    for (size_t i = 0; i < rs->n; i++)
        st->direct_io &= rs->t[i].direct;
    if (!rc)
        rc = asr_image_is_stream(rs->im) ? restore_stream_pass(&p, err) : restore_file_pass(&p, err);
    restore_mirror_free(p.m);
    free(p.group);
    if (!rc)
        rc = finish_targets(&p, err);
    st->seconds = asr_now() - start;
    if (!rc && opt->verify) {
        struct asr_error first = {0};
        /* The restored disks hold the image's zeros: no cleared ranges are taken on trust. */
        struct asr_compare_options co = {opt->new_ids, opt->grow, on_verify_mismatch, &first, opt->progress,
                                         opt->progress_ctx, NULL, NULL};
        rc = asr_restore_compare(rs, &co, err);
        if (rc == ASR_E_CORRUPT && first.code) {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "verify: %s", first.msg);
        } else if (rc) { /* a read back that failed: the data was laid, its check was not done */
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            rc = asr_fail_public(err, (enum asr_status)rc, "verify: %.480s", msg);
        }
        st->verified = rc == ASR_OK;
    }
    return rc;
}
