/* The data pass of a restore from an image file (or split set), and the restore as a whole:
 * the data, then the layout (restore_layout.c), --discard or --zero-unused, the sync, and
 * --verify (restore_compare.c). Worker threads read and decompress chunks in the order the
 * extents need them (the index gives that order up front); the main thread lays each run of
 * extents through the mirrored writer (restore_mirror.c) onto every target of its disk. */
#include "clock.h"
#include "grow.h"
#include "restore_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define PREFETCH_EVERY 64u           /* chunks */
#define PREFETCH_BYTES (64ull << 20) /* of the image, ahead of the chunk being decoded */

/* ---- what to decode, in order -------------------------------------------------------------- */

/* A run of a volume's extents that use the same chunk (or one zero or unreadable extent). */
struct unit {
    uint32_t volume;
    uint64_t first, count; /* extents in the index */
    uint64_t ref;
};

static int plan_units(struct asr_reader *r, struct unit **out, size_t *n, size_t *ndata, struct asr_error *err)
{
    size_t cap = 0, len = 0, data = 0;
    struct unit *u = NULL;
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        uint64_t count;
        const struct asr_extent *e = asr_reader_extents(r, v, &count);
        for (uint64_t i = 0; i < count;) {
            uint64_t j = i + 1;
            while (e[i].ref < ASR_REF_UNREADABLE && j < count && e[j].ref == e[i].ref)
                j++;
            struct unit *g = asr_grow(u, &cap, len + 1, sizeof *g, 1024);
            if (!g) {
                free(u);
                return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the restore plan");
            }
            u = g;
            u[len++] = (struct unit){v, i, j - i, e[i].ref};
            data += e[i].ref < ASR_REF_UNREADABLE;
            i = j;
        }
    }
    *out = u;
    *n = len;
    *ndata = data;
    return ASR_OK;
}

/* ---- decoding workers ------------------------------------------------------------------- */

struct slot {
    uint8_t *buf;
    uint64_t allowed; /* the decode sequence number that may fill it next */
    uint64_t done;    /* the one it holds */
    int rc;
    struct asr_error err;
};

struct decoders {
    struct asr_reader *r;
    const struct unit *units;
    const size_t *seq_unit; /* data units in order */
    size_t nseq, next;
    struct slot *slots;
    size_t nslots;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    size_t nthreads;
};

static void *decode_main(void *arg)
{
    struct decoders *d = arg;
    struct asr_chunk_reader *cr = NULL;
    struct asr_error setup = {0};
    int setup_rc = asr_chunk_reader_new(d->r, &cr, &setup);
    uint32_t cap = asr_reader_info(d->r)->max_chunk_size;
    pthread_mutex_lock(&d->mu);
    while (!d->stop && d->next < d->nseq) {
        size_t s = d->next++;
        struct slot *slot = &d->slots[s % d->nslots];
        while (!d->stop && slot->allowed != s)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop)
            break;
        pthread_mutex_unlock(&d->mu);
        /* Chunks come in stream order: keep the kernel reading the image ahead of the workers,
         * or every cold chunk waits for the disk (measured: 1.0 GB/s cold, 1.5 warm). */
        if (s % PREFETCH_EVERY == 0)
            asr_reader_prefetch(d->r, d->units[d->seq_unit[s]].ref, PREFETCH_BYTES);
        struct asr_error e = setup;
        int rc = setup_rc ? setup_rc
                          : asr_chunk_reader_read(cr, d->units[d->seq_unit[s]].ref, slot->buf, cap, NULL, &e);
        pthread_mutex_lock(&d->mu);
        slot->rc = rc;
        slot->err = e;
        slot->done = s;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    asr_chunk_reader_free(cr);
    return NULL;
}

static void decoders_stop(struct decoders *d)
{
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < d->nthreads; i++)
        pthread_join(d->threads[i], NULL);
    for (size_t i = 0; i < d->nslots; i++)
        free(d->slots[i].buf);
    free(d->slots);
    free(d->threads);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
}

static int decoders_start(struct decoders *d, struct asr_reader *r, const struct unit *u, const size_t *seq_unit,
                          size_t nseq, unsigned threads, struct asr_error *err)
{
    *d = (struct decoders){.r = r, .units = u, .seq_unit = seq_unit, .nseq = nseq};
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->nslots = 2 * (size_t)threads + 2;
    d->slots = calloc(d->nslots, sizeof *d->slots);
    d->threads = calloc(threads, sizeof *d->threads);
    if (!d->slots || !d->threads)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < d->nslots; i++) {
        d->slots[i].allowed = i;
        d->slots[i].done = UINT64_MAX;
        if (!(d->slots[i].buf = malloc(asr_reader_info(r)->max_chunk_size)))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory for chunk buffers");
    }
    for (; d->nthreads < threads; d->nthreads++)
        if (pthread_create(&d->threads[d->nthreads], NULL, decode_main, d) != 0)
            return asr_fail_public(err, ASR_E_NOMEM, "cannot start a decoding thread");
    return ASR_OK;
}

static struct slot *decoded(struct decoders *d, size_t s)
{
    struct slot *slot = &d->slots[s % d->nslots];
    pthread_mutex_lock(&d->mu);
    while (slot->done != s)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    return slot;
}

static void release(struct decoders *d, size_t s)
{
    pthread_mutex_lock(&d->mu);
    d->slots[s % d->nslots].allowed = s + d->nslots;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* ---- the pass ------------------------------------------------------------------------------- */

static int add_range(struct asr_restore_range **v, size_t *n, size_t *cap, struct asr_restore_range r,
                     struct asr_error *err)
{
    if (*n && (*v)[*n - 1].volume == r.volume && (*v)[*n - 1].chunk == r.chunk &&
        (*v)[*n - 1].offset + (*v)[*n - 1].length == r.offset) {
        (*v)[*n - 1].length += r.length;
        return ASR_OK;
    }
    struct asr_restore_range *g = asr_grow(*v, cap, *n + 1, sizeof *g, 16);
    if (!g)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    *v = g;
    (*v)[(*n)++] = r;
    return ASR_OK;
}

int restore_pass_disk(struct restore_pass *p, uint32_t disk)
{
    if (p->have_disk && p->disk == disk)
        return ASR_OK;
    /* What is staged for the previous disk goes to its targets before the group array changes. */
    int rc = restore_mirror_flush(p->m);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < p->rs->n; i++)
        if (p->rs->t[i].info.disk_index == disk)
            p->group[n++] = &p->rs->t[i];
    p->disk = disk;
    p->have_disk = true;
    return restore_mirror_targets(p->m, p->group, n);
}

int restore_pass_lost(struct restore_pass *p, uint32_t volume, const struct asr_extent *e, uint64_t ref,
                      struct asr_error *err)
{
    const struct asr_volume_desc *vd = img_volume(&p->rs->im, volume);
    struct asr_restore_range r = {volume, e->offset, e->length, ref};
    int rc = ref == ASR_REF_UNREADABLE
                 ? add_range(&p->st->unreadable, &p->st->unreadable_count, &p->unreadable_cap, r, err)
                 : add_range(&p->st->damaged, &p->st->damaged_count, &p->damaged_cap, r, err);
    return rc ? rc : restore_mirror_zero(p->m, vd->disk_offset + e->offset, e->length);
}

/* "volume 1 offset 1048576 length 262144 (disk 0 offset 69206016), ..." for every extent that uses
 * chunk `ref`, in any volume: a damaged chunk names everything it would have restored. */
static void describe_chunk_uses(const struct restore_pass *p, uint64_t ref, char *out, size_t len)
{
    size_t used = 0, listed = 0, more = 0;
    out[0] = 0;
    for (uint32_t v = 0; v < asr_reader_volume_count(p->rs->r); v++) {
        uint64_t count;
        const struct asr_extent *e = asr_reader_extents(p->rs->r, v, &count);
        const struct asr_volume_desc *vd = asr_reader_volume(p->rs->r, v);
        for (uint64_t i = 0; i < count; i++) {
            if (e[i].ref != ref)
                continue;
            if (listed == 8 || used >= len) {
                more++;
                continue;
            }
            used += (size_t)snprintf(out + used, len - used, "%svolume %u offset %llu length %llu (disk %u offset %llu)",
                                     listed++ ? ", " : "", v, (unsigned long long)e[i].offset,
                                     (unsigned long long)e[i].length, vd->disk_index,
                                     (unsigned long long)(vd->disk_offset + e[i].offset));
        }
    }
    if (more && used < len)
        snprintf(out + used, len - used, " and %zu more", more);
}

static int lay_unit(struct restore_pass *p, const struct unit *u, const struct slot *slot, struct asr_error *err)
{
    const struct asr_volume_desc *v = asr_reader_volume(p->rs->r, u->volume);
    uint64_t count;
    const struct asr_extent *e = asr_reader_extents(p->rs->r, u->volume, &count) + u->first;
    int rc = restore_pass_disk(p, v->disk_index);
    if (slot && slot->rc && !p->opt->keep_going) {
        char ranges[1536];
        describe_chunk_uses(p, u->ref, ranges, sizeof ranges);
        return asr_fail_public(err, ASR_E_CORRUPT, "%s; it holds %s (--keep-going restores the rest)", slot->err.msg,
                               ranges);
    }
    for (uint64_t i = 0; i < u->count && !rc; i++) {
        uint64_t at = v->disk_offset + e[i].offset;
        if (u->ref == ASR_REF_UNREADABLE || (slot && slot->rc)) {
            rc = restore_pass_lost(p, u->volume, &e[i], u->ref, err);
        } else if (u->ref == ASR_REF_ZERO) {
            rc = restore_mirror_zero(p->m, at, e[i].length);
            p->st->zero_bytes += e[i].length;
        } else {
            rc = restore_mirror_append(p->m, at, slot->buf + e[i].chunk_offset, (size_t)e[i].length);
            p->st->data_bytes += e[i].length;
        }
        p->done += e[i].length;
    }
    return rc;
}

/* What the progress counts to: the captured bytes; a stream knows only the used bytes ahead. */
static uint64_t captured_total(const struct asr_restore *rs)
{
    uint64_t t = 0;
    for (uint32_t v = 0; v < img_volume_count(&rs->im); v++) {
        const struct asr_volume_stats *s = img_volume_stats(rs, v);
        t += s ? s->data_bytes + s->zero_bytes + s->unreadable_bytes : img_volume(&rs->im, v)->used_bytes;
    }
    return t;
}

unsigned restore_worker_count(unsigned asked)
{
    if (asked)
        return asked > 64 ? 64 : asked;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

static int data_pass(struct restore_pass *p, struct asr_error *err)
{
    struct unit *u = NULL;
    size_t nunits = 0, ndata = 0;
    int rc = plan_units(p->rs->r, &u, &nunits, &ndata, err);
    if (rc)
        return rc;
    size_t *seq_unit = malloc((ndata ? ndata : 1) * sizeof *seq_unit);
    if (!seq_unit) {
        free(u);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the restore plan");
    }
    for (size_t i = 0, k = 0; i < nunits; i++)
        if (u[i].ref < ASR_REF_UNREADABLE)
            seq_unit[k++] = i;
    struct decoders d;
    rc = decoders_start(&d, p->rs->r, u, seq_unit, ndata, restore_worker_count(p->opt->threads), err);
    size_t s = 0;
    for (size_t i = 0; i < nunits && !rc; i++) {
        if (p->opt->cancel && *p->opt->cancel) {
            rc = asr_fail_public(err, ASR_E_IO, "interrupted: the restore is incomplete; run it again");
            break;
        }
        const struct slot *slot = NULL;
        if (u[i].ref < ASR_REF_UNREADABLE) {
            slot = decoded(&d, s);
            p->st->chunks_decoded++;
        }
        rc = lay_unit(p, &u[i], slot, err);
        if (slot)
            release(&d, s++);
        if (p->opt->progress)
            p->opt->progress(&(struct asr_restore_progress){.done = p->done, .total = p->total}, p->opt->progress_ctx);
    }
    decoders_stop(&d);
    free(seq_unit);
    free(u);
    return rc ? rc : restore_mirror_flush(p->m);
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
    const struct asr_disk_desc *d = img_disk(&rs->im, t->info.disk_index);
    size_t cap = 2 + d->region_count, len = 0;
    for (uint32_t v = 0; v < img_volume_count(&rs->im); v++) {
        uint64_t c;
        if (img_volume(&rs->im, v)->disk_index == t->info.disk_index && img_extents(rs, v, &c))
            cap += c;
    }
    struct span *s = malloc(cap * sizeof *s);
    if (!s)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < d->region_count; i++)
        if (d->regions[i].kind != ASR_REGION_GPT_BACKUP_ENTRIES && d->regions[i].kind != ASR_REGION_GPT_BACKUP_HEADER)
            s[len++] = (struct span){d->regions[i].offset, d->regions[i].offset + d->regions[i].length};
    uint64_t tail = asr_restore_table_tail(d);
    if (tail)
        s[len++] = (struct span){t->info.size_bytes - tail, t->info.size_bytes};
    for (uint32_t v = 0; v < img_volume_count(&rs->im); v++) {
        const struct asr_volume_desc *vd = img_volume(&rs->im, v);
        uint64_t c;
        const struct asr_extent *e = img_extents(rs, v, &c);
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
        rc = asr_target_sync(&p->rs->t[i], err);
    if (!rc)
        rc = asr_restore_layout(p->rs, p->opt, p->st, err);
    for (size_t i = 0; i < p->rs->n && !rc && p->opt->unused != ASR_UNUSED_KEEP; i++)
        rc = clear_unused(p, &p->rs->t[i], err);
    for (size_t i = 0; i < p->rs->n && !rc; i++) {
        rc = asr_target_sync(&p->rs->t[i], err);
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
        rc = asr_restore_targets_ready(rs, err);
    st->direct_io = true;
    for (size_t i = 0; i < rs->n; i++)
        st->direct_io &= rs->t[i].direct;
    if (!rc)
        rc = rs->r ? data_pass(&p, err) : restore_stream_pass(&p, err);
    restore_mirror_free(p.m);
    free(p.group);
    if (!rc)
        rc = finish_targets(&p, err);
    st->seconds = asr_now() - start;
    if (!rc && opt->verify) {
        struct asr_error first = {0};
        struct asr_compare_options co = {opt->new_ids, opt->grow, on_verify_mismatch, &first, opt->progress,
                                         opt->progress_ctx};
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
