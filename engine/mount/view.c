/* Image views: the files `asrimg mount` shows (each disk whole, each partition volume alone) as
 * byte ranges read from an image through a cache of decoded chunks. The cache is bounded by
 * bytes and evicts the least recently used chunk; a chunk being decoded is held by the first
 * reader that wanted it while the others wait for it, so each is read once; a chunk in use is
 * pinned and never freed under its reader. Sequential reads queue the chunks just ahead for the
 * read-ahead threads. A damaged chunk is remembered as such (its message kept) so that every read
 * touching it fails the same way and the log names it once per time it is loaded. */
#include "asr_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C_LOADING, C_READY, C_FAILED };

struct centry {
    uint64_t id;
    uint8_t *data;
    uint32_t len;
    uint8_t state;
    uint32_t pins;
    int code;                /* C_FAILED: the status */
    char *why;               /* C_FAILED: the message */
    struct centry *hnext;    /* hash chain */
    struct centry *prev, *next; /* LRU list, most recent first */
};

struct vfile {
    struct asr_view_file f;
    uint64_t last_end; /* where the last read ended: the next one starting near it is sequential */
};

/* A piece of a disk: a volume at its offset. */
struct dpiece {
    uint64_t off, len;
    uint32_t volume;
};

struct vdisk {
    struct dpiece *pieces; /* sorted by offset */
    uint32_t n;
};

#define RA_QUEUE 64u

struct asr_view {
    const struct asr_reader *r;
    struct asr_view_options opt;
    struct vfile *files;
    uint32_t nfiles;
    struct vdisk *disks;
    uint32_t ndisks;

    pthread_mutex_t mu;
    pthread_cond_t changed; /* an entry left C_LOADING */
    struct centry **buckets;
    size_t nbuckets;
    struct centry *head, *tail;
    uint64_t bytes;
    struct asr_view_stats st;
    struct asr_chunk_reader **pool; /* idle chunk readers */
    size_t npool, cappool;

    pthread_mutex_t logmu;

    pthread_cond_t ra_cv;
    uint64_t ra_q[RA_QUEUE];
    uint32_t ra_head, ra_len;
    bool stopping;
    pthread_t *threads;
    uint32_t nthreads;
};

/* ---- the cache ------------------------------------------------------------------------------ */

static size_t bucket_of(const struct asr_view *v, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (v->nbuckets - 1);
}

static struct centry *lookup(const struct asr_view *v, uint64_t id)
{
    for (struct centry *e = v->buckets[bucket_of(v, id)]; e; e = e->hnext)
        if (e->id == id)
            return e;
    return NULL;
}

static void lru_unlink(struct asr_view *v, struct centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        v->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        v->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(struct asr_view *v, struct centry *e)
{
    e->next = v->head;
    e->prev = NULL;
    if (v->head)
        v->head->prev = e;
    v->head = e;
    if (!v->tail)
        v->tail = e;
}

static uint64_t cost(const struct centry *e)
{
    return sizeof *e + e->len;
}

static void entry_free(struct centry *e)
{
    free(e->data);
    free(e->why);
    free(e);
}

static void remove_entry(struct asr_view *v, struct centry *e)
{
    struct centry **p = &v->buckets[bucket_of(v, e->id)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    lru_unlink(v, e);
    v->bytes -= cost(e);
    entry_free(e);
}

/* Least recently used first, skipping the pinned and loading ones, until under the cap. */
static void evict(struct asr_view *v)
{
    struct centry *e = v->tail;
    while (v->bytes > v->opt.cache_bytes && e) {
        struct centry *prev = e->prev;
        if (!e->pins && e->state != C_LOADING) {
            remove_entry(v, e);
            v->st.evictions++;
        }
        e = prev;
    }
}

static struct asr_chunk_reader *take_reader(struct asr_view *v, struct asr_error *err)
{
    pthread_mutex_lock(&v->mu);
    struct asr_chunk_reader *c = v->npool ? v->pool[--v->npool] : NULL;
    pthread_mutex_unlock(&v->mu);
    if (!c && asr_chunk_reader_new(v->r, &c, err))
        return NULL;
    return c;
}

static void give_reader(struct asr_view *v, struct asr_chunk_reader *c)
{
    pthread_mutex_lock(&v->mu);
    if (v->npool == v->cappool) {
        size_t cap = v->cappool ? v->cappool * 2 : 8;
        struct asr_chunk_reader **p = realloc(v->pool, cap * sizeof *p);
        if (p) {
            v->pool = p;
            v->cappool = cap;
        }
    }
    if (v->npool < v->cappool) {
        v->pool[v->npool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&v->mu);
    asr_chunk_reader_free(c);
}

static void log_line(struct asr_view *v, const char *line)
{
    if (!v->opt.log)
        return;
    pthread_mutex_lock(&v->logmu);
    v->opt.log(line, v->opt.log_ctx);
    pthread_mutex_unlock(&v->logmu);
}

/* Decodes chunk e->id (e is C_LOADING and pinned by the caller) outside the lock, into a buffer of
 * exactly its size: buffers of the largest chunk size, shrunk after, left the heap fragmented (the
 * process held half as much again as the cache). */
static void load(struct asr_view *v, struct centry *e, bool ahead)
{
    struct asr_error err = {0};
    uint32_t want = asr_reader_chunk_len(v->r, e->id), len = 0;
    uint8_t *buf = malloc(want ? want : 1);
    int rc;
    if (!buf) {
        rc = asr_fail_public(&err, ASR_E_NOMEM, "out of memory for chunk %llu", (unsigned long long)e->id);
    } else {
        struct asr_chunk_reader *c = take_reader(v, &err);
        rc = c ? asr_chunk_reader_read(c, e->id, buf, want, &len, &err) : (int)err.code;
        if (c)
            give_reader(v, c);
    }
    char *why = rc ? strdup(err.msg) : NULL;
    if (rc && rc != ASR_E_NOMEM) {
        char line[ASR_ERROR_MSG_MAX + 64];
        snprintf(line, sizeof line, "damaged chunk: %s: its ranges read as I/O errors", err.msg);
        log_line(v, line);
    }
    pthread_mutex_lock(&v->mu);
    if (rc) {
        free(buf);
        e->state = C_FAILED;
        e->code = rc;
        e->why = why;
        if (rc != ASR_E_NOMEM)
            v->st.damaged++;
    } else {
        e->data = buf;
        e->len = len;
        e->state = C_READY;
        v->bytes += len;
        v->st.loads++;
        v->st.readahead_loads += ahead;
        if (v->bytes > v->st.cache_peak)
            v->st.cache_peak = v->bytes;
    }
    pthread_cond_broadcast(&v->changed);
    pthread_mutex_unlock(&v->mu);
}

/* Chunk id decoded and pinned; the caller unpins it with put_chunk. A failed load is dropped
 * when out of memory (a later read may succeed) and kept when the chunk is damaged. */
static int get_chunk(struct asr_view *v, uint64_t id, bool ahead, struct centry **out, struct asr_error *err)
{
    pthread_mutex_lock(&v->mu);
    struct centry *e = lookup(v, id);
    if (e) {
        e->pins++;
        if (!ahead)
            v->st.hits += e->state != C_LOADING;
        while (e->state == C_LOADING)
            pthread_cond_wait(&v->changed, &v->mu);
        lru_unlink(v, e);
        lru_front(v, e);
    } else {
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&v->mu);
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        }
        e->id = id;
        e->pins = 1;
        e->state = C_LOADING;
        size_t b = bucket_of(v, id);
        e->hnext = v->buckets[b];
        v->buckets[b] = e;
        lru_front(v, e);
        v->bytes += cost(e);
        pthread_mutex_unlock(&v->mu);
        load(v, e, ahead);
        pthread_mutex_lock(&v->mu);
    }
    int rc = ASR_OK;
    if (e->state == C_FAILED) {
        rc = asr_fail_public(err, e->code, "%s", e->why ? e->why : "chunk could not be read");
        if (--e->pins == 0 && e->code == ASR_E_NOMEM)
            remove_entry(v, e);
        e = NULL;
    }
    evict(v);
    pthread_mutex_unlock(&v->mu);
    *out = e;
    return rc;
}

static void put_chunk(struct asr_view *v, struct centry *e)
{
    pthread_mutex_lock(&v->mu);
    e->pins--;
    evict(v);
    pthread_mutex_unlock(&v->mu);
}

/* ---- read-ahead ------------------------------------------------------------------------------ */

static void *ra_main(void *arg)
{
    struct asr_view *v = arg;
    pthread_mutex_lock(&v->mu);
    for (;;) {
        while (!v->stopping && !v->ra_len)
            pthread_cond_wait(&v->ra_cv, &v->mu);
        if (v->stopping)
            break;
        uint64_t id = v->ra_q[v->ra_head];
        v->ra_head = (v->ra_head + 1) % RA_QUEUE;
        v->ra_len--;
        if (lookup(v, id))
            continue;
        pthread_mutex_unlock(&v->mu);
        struct centry *e;
        struct asr_error err = {0};
        if (!get_chunk(v, id, true, &e, &err))
            put_chunk(v, e);
        pthread_mutex_lock(&v->mu);
    }
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

/* Queues chunk id unless it is cached or queued already (called with the lock held). */
static void ra_push(struct asr_view *v, uint64_t id)
{
    if (v->ra_len == RA_QUEUE || lookup(v, id))
        return;
    for (uint32_t i = 0; i < v->ra_len; i++)
        if (v->ra_q[(v->ra_head + i) % RA_QUEUE] == id)
            return;
    v->ra_q[(v->ra_head + v->ra_len) % RA_QUEUE] = id;
    v->ra_len++;
    pthread_cond_signal(&v->ra_cv);
}

/* ---- mapping reads to extents ------------------------------------------------------------------ */

struct ra_ctx {
    struct asr_view *v;
    uint64_t last; /* the chunk queued last: extents in a row often share one */
};

static int ra_extent(const struct asr_extent *e, uint64_t from, uint64_t to, void *arg)
{
    struct ra_ctx *c = arg;
    (void)from;
    (void)to;
    if (e->ref != ASR_REF_ZERO && e->ref != ASR_REF_UNREADABLE && e->ref != c->last)
        ra_push(c->v, c->last = e->ref);
    return ASR_OK;
}

/* Chunks of volume vol in [off, off + len) queued for read-ahead (lock held). Advice: an index
 * block that cannot be read now is the real read's to report. */
static void ra_volume(struct asr_view *v, uint32_t vol, uint64_t off, uint64_t len)
{
    struct ra_ctx c = {v, UINT64_MAX};
    struct asr_error err = {0};
    asr_reader_walk_extents(v->r, vol, off, len, ra_extent, &c, &err);
}

/* The part of [off, off + len) of a file that lies in each volume: fn(volume, volume offset,
 * length, offset in the read). */
typedef int (*piece_fn)(struct asr_view *v, uint32_t vol, uint64_t voff, uint64_t len, uint64_t at, void *ctx);

static int walk(struct asr_view *v, const struct vfile *f, uint64_t off, uint64_t len, piece_fn fn, void *ctx)
{
    if (f->f.kind == ASR_VIEW_VOLUME)
        return fn(v, f->f.volume, off, len, 0, ctx);
    const struct vdisk *d = &v->disks[f->f.disk];
    for (uint32_t i = 0; i < d->n; i++) {
        const struct dpiece *p = &d->pieces[i];
        uint64_t from = p->off > off ? p->off : off;
        uint64_t to = p->off + p->len < off + len ? p->off + p->len : off + len;
        if (from >= to)
            continue;
        int rc = fn(v, p->volume, from - p->off, to - from, from - off, ctx);
        if (rc)
            return rc;
    }
    return ASR_OK;
}

static int ra_piece(struct asr_view *v, uint32_t vol, uint64_t voff, uint64_t len, uint64_t at, void *ctx)
{
    (void)at;
    (void)ctx;
    ra_volume(v, vol, voff, len);
    return ASR_OK;
}

struct read_ctx {
    struct asr_view *v;
    uint32_t vol;
    uint64_t off; /* of the piece in its volume, read into buf + at */
    uint8_t *buf;
    struct asr_error *err;
    uint64_t unreadable_at; /* UINT64_MAX: none */
    uint32_t unreadable_vol;
};

static int read_extent(const struct asr_extent *e, uint64_t from, uint64_t to, void *arg)
{
    struct read_ctx *c = arg;
    if (e->ref == ASR_REF_ZERO)
        return ASR_OK;
    if (e->ref == ASR_REF_UNREADABLE) {
        if (c->unreadable_at == UINT64_MAX) {
            c->unreadable_at = from;
            c->unreadable_vol = c->vol;
        }
        return ASR_OK;
    }
    struct centry *ce;
    int rc = get_chunk(c->v, e->ref, false, &ce, c->err);
    if (rc)
        return rc;
    uint64_t in = e->chunk_offset + (from - e->offset);
    if (in > ce->len || to - from > ce->len - in)
        rc = asr_fail_public(c->err, ASR_E_CORRUPT, "chunk %llu: shorter than volume %u's extent at %llu",
                             (unsigned long long)e->ref, c->vol, (unsigned long long)e->offset);
    else
        memcpy(c->buf + (from - c->off), ce->data + in, to - from);
    put_chunk(c->v, ce);
    return rc;
}

static int read_piece(struct asr_view *v, uint32_t vol, uint64_t off, uint64_t len, uint64_t at, void *arg)
{
    struct read_ctx *c = arg;
    struct read_ctx piece = *c;
    piece.v = v;
    piece.vol = vol;
    piece.off = off;
    piece.buf = c->buf + at;
    memset(piece.buf, 0, len);
    int rc = asr_reader_walk_extents(v->r, vol, off, len, read_extent, &piece, c->err);
    c->unreadable_at = piece.unreadable_at;
    c->unreadable_vol = piece.unreadable_vol;
    return rc;
}

/* The raw regions of the disk over [off, off + len): the layout's bytes, as a restore writes them. */
static void copy_regions(const struct asr_disk_desc *d, uint64_t off, uint64_t len, uint8_t *buf)
{
    for (uint32_t i = 0; i < d->region_count; i++) {
        const struct asr_region_desc *g = &d->regions[i];
        uint64_t from = g->offset > off ? g->offset : off;
        uint64_t to = g->offset + g->length < off + len ? g->offset + g->length : off + len;
        if (from < to)
            memcpy(buf + (from - off), g->data + (from - g->offset), to - from);
    }
}

int asr_view_read(struct asr_view *v, uint32_t file, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    if (file >= v->nfiles)
        return asr_fail_public(err, ASR_E_ARG, "view file %u does not exist", file);
    struct vfile *f = &v->files[file];
    if (off > f->f.size || len > f->f.size - off)
        return asr_fail_public(err, ASR_E_ARG, "read of %zu bytes at %llu past the end of %s", len,
                               (unsigned long long)off, f->f.name);
    if (!len)
        return ASR_OK;
    /* Near where the last read ended: a sequential reader (the kernel sends a few at once). */
    pthread_mutex_lock(&v->mu);
    uint64_t last = f->last_end, slack = 4ull << 20;
    bool seq = off + slack >= last && off <= last + slack;
    f->last_end = off + len;
    if (seq && v->nthreads) {
        uint64_t ahead = f->f.size - (off + len) < v->opt.readahead_bytes ? f->f.size - (off + len)
                                                                           : v->opt.readahead_bytes;
        walk(v, f, off + len, ahead, ra_piece, NULL);
    }
    pthread_mutex_unlock(&v->mu);

    struct read_ctx c = {.buf = buf, .err = err, .unreadable_at = UINT64_MAX};
    if (f->f.kind == ASR_VIEW_DISK)
        memset(buf, 0, len);
    int rc = walk(v, f, off, len, read_piece, &c);
    if (rc)
        return rc;
    if (f->f.kind == ASR_VIEW_DISK)
        copy_regions(asr_reader_disk(v->r, f->f.disk), off, len, buf);
    if (c.unreadable_at != UINT64_MAX)
        return asr_fail_public(err, ASR_E_UNREADABLE, "%s: volume %u offset %llu was unreadable on the source disk",
                               f->f.name, c.unreadable_vol, (unsigned long long)c.unreadable_at);
    return ASR_OK;
}

/* ---- opening -------------------------------------------------------------------------------- */

static int by_offset(const void *a, const void *b)
{
    const struct dpiece *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int build_files(struct asr_view *v, struct asr_error *err)
{
    uint32_t nd = asr_reader_disk_count(v->r), nv = asr_reader_volume_count(v->r);
    v->files = calloc((size_t)nd + nv, sizeof *v->files);
    v->disks = calloc(nd ? nd : 1, sizeof *v->disks);
    if (!v->files || !v->disks)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    v->ndisks = nd;
    for (uint32_t d = 0; d < nd; d++) {
        struct vfile *f = &v->files[v->nfiles++];
        snprintf(f->f.name, sizeof f->f.name, "disk%u.img", d);
        f->f.kind = ASR_VIEW_DISK;
        f->f.disk = d;
        f->f.size = asr_reader_disk(v->r, d)->size_bytes;
        if (!(v->disks[d].pieces = calloc(nv ? nv : 1, sizeof *v->disks[d].pieces)))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < nv; i++) {
        const struct asr_volume_desc *vd = asr_reader_volume(v->r, i);
        if (vd->disk_index >= nd)
            return asr_fail_public(err, ASR_E_CORRUPT, "volume %u: on disk %u of %u", i, vd->disk_index, nd);
        uint64_t dsize = asr_reader_disk(v->r, vd->disk_index)->size_bytes;
        if (vd->disk_offset > dsize || vd->size_bytes > dsize - vd->disk_offset)
            return asr_fail_public(err, ASR_E_CORRUPT, "volume %u: past the end of disk %u", i, vd->disk_index);
        struct vdisk *dk = &v->disks[vd->disk_index];
        dk->pieces[dk->n++] = (struct dpiece){vd->disk_offset, vd->size_bytes, i};
        if (vd->kind != ASR_VOLUME_PARTITION || !vd->partition_number)
            continue;
        struct vfile *f = &v->files[v->nfiles++];
        snprintf(f->f.name, sizeof f->f.name, "disk%up%u.img", vd->disk_index, vd->partition_number);
        f->f.kind = ASR_VIEW_VOLUME;
        f->f.disk = vd->disk_index;
        f->f.volume = i;
        f->f.size = vd->size_bytes;
    }
    for (uint32_t d = 0; d < nd; d++)
        qsort(v->disks[d].pieces, v->disks[d].n, sizeof *v->disks[d].pieces, by_offset);
    return ASR_OK;
}

int asr_view_open(const struct asr_reader *r, const struct asr_view_options *opt, struct asr_view **out,
                  struct asr_error *err)
{
    *out = NULL;
    struct asr_view *v = calloc(1, sizeof *v);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    v->r = r;
    if (opt)
        v->opt = *opt;
    if (!v->opt.cache_bytes)
        v->opt.cache_bytes = ASR_VIEW_DEFAULT_CACHE;
    if (!v->opt.readahead_bytes)
        v->opt.readahead_bytes = 8u << 20;
    if (!v->opt.readahead_threads)
        v->opt.readahead_threads = 2;
    else if (v->opt.readahead_threads == ASR_VIEW_NO_READAHEAD)
        v->opt.readahead_threads = 0;
    pthread_mutex_init(&v->mu, NULL);
    pthread_mutex_init(&v->logmu, NULL);
    pthread_cond_init(&v->changed, NULL);
    pthread_cond_init(&v->ra_cv, NULL);
    /* About one bucket per 16 KiB of cache: short chains even for small chunks. */
    v->nbuckets = 1024;
    while (v->nbuckets < (1u << 20) && v->nbuckets * (16u << 10) < v->opt.cache_bytes)
        v->nbuckets *= 2;
    v->buckets = calloc(v->nbuckets, sizeof *v->buckets);
    int rc = v->buckets ? build_files(v, err) : asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    if (!rc && !(v->threads = calloc(v->opt.readahead_threads + 1, sizeof *v->threads)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; !rc && i < v->opt.readahead_threads; i++) {
        if (pthread_create(&v->threads[i], NULL, ra_main, v))
            break; /* fewer read-ahead threads: reads still work */
        v->nthreads++;
    }
    if (rc) {
        asr_view_free(v);
        return rc;
    }
    *out = v;
    return ASR_OK;
}

void asr_view_free(struct asr_view *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->mu);
    v->stopping = true;
    pthread_cond_broadcast(&v->ra_cv);
    pthread_mutex_unlock(&v->mu);
    for (uint32_t i = 0; i < v->nthreads; i++)
        pthread_join(v->threads[i], NULL);
    free(v->threads);
    for (struct centry *e = v->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    free(v->buckets);
    for (size_t i = 0; i < v->npool; i++)
        asr_chunk_reader_free(v->pool[i]);
    free(v->pool);
    for (uint32_t d = 0; v->disks && d < v->ndisks; d++)
        free(v->disks[d].pieces);
    free(v->disks);
    free(v->files);
    pthread_cond_destroy(&v->changed);
    pthread_cond_destroy(&v->ra_cv);
    pthread_mutex_destroy(&v->mu);
    pthread_mutex_destroy(&v->logmu);
    free(v);
}

uint32_t asr_view_file_count(const struct asr_view *v) { return v->nfiles; }

const struct asr_view_file *asr_view_file(const struct asr_view *v, uint32_t i)
{
    return i < v->nfiles ? &v->files[i].f : NULL;
}

void asr_view_get_stats(struct asr_view *v, struct asr_view_stats *out)
{
    pthread_mutex_lock(&v->mu);
    *out = v->st;
    out->cache_bytes = v->bytes;
    pthread_mutex_unlock(&v->mu);
}
