/* The data pass of a restore from an image file (or split set) or a snapshot. Worker threads
 * read and decompress chunks in the order the extents need them (the index gives that order up
 * front; restore_plan.c says which runs need a decode and which take a kept chunk); the main
 * thread lays each run of extents through the mirrored writer (restore_mirror.c) onto every
 * target of its disk. */
#include "image_source.h"
#include "restore_pass.h"
#include "restore_plan.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFETCH_EVERY 64u           /* chunks */
#define PREFETCH_BYTES (64ull << 20) /* of the image, ahead of the chunk being decoded */
#define PREFETCH_CHUNKS 1024u        /* at most, named to a snapshot's store at a time */
#define KEEP_BYTES (64ull << 20)     /* decoded chunks kept for a later run (restore_plan.c) */

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
    const struct plan_unit *units;
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

/* Chunks come in stream order: keep the kernel reading the image ahead of the workers, or every
 * cold chunk waits for the disk (measured: 1.0 GB/s cold, 1.5 warm). A snapshot's store is told
 * the very chunks that come next, in the order they do (an extent may use a chunk stored long
 * before), so that it fetches them while the workers decode. */
static void prefetch(const struct decoders *d, size_t s)
{
    asr_reader_prefetch(d->r, d->units[d->seq_unit[s]].ref, PREFETCH_BYTES);
    uint64_t next[PREFETCH_CHUNKS];
    size_t n = 0;
    for (size_t i = s; i < d->nseq && n < PREFETCH_CHUNKS; i++)
        next[n++] = d->units[d->seq_unit[i]].ref;
    asr_reader_prefetch_chunks(d->r, next, n, PREFETCH_BYTES);
}

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
        if (s % PREFETCH_EVERY == 0)
            prefetch(d, s);
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

static int decoders_start(struct decoders *d, struct asr_reader *r, const struct plan_unit *u, const size_t *seq_unit,
                          size_t nseq, unsigned threads, struct asr_error *err)
{
    *d = (struct decoders){.r = r, .units = u, .seq_unit = seq_unit, .nseq = nseq};
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    /* A run takes its chunk from one of the two decodes before it at most (restore_plan.c), so the
     * main thread, waiting for a decode, holds at most the one before it: 2 slots a worker, and 2,
     * always leave the workers room. */
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

/* "volume 1 offset 1048576 length 262144 (disk 0 offset 69206016), ..." for every extent that uses
 * chunk `ref`, in any volume: a damaged chunk names everything it would have restored. */
static void describe_chunk_uses(const struct asr_reader *r, uint64_t ref, char *out, size_t len)
{
    size_t used = 0, listed = 0, more = 0;
    out[0] = 0;
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        uint64_t count;
        const struct asr_extent *e = asr_reader_extents(r, v, &count);
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
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

static int lay_unit(struct restore_pass *p, const struct asr_reader *r, const struct plan_unit *u, const struct slot *slot,
                    struct asr_error *err)
{
    const struct asr_volume_desc *v = asr_reader_volume(r, u->volume);
    uint64_t count;
    const struct asr_extent *e = asr_reader_extents(r, u->volume, &count) + u->first;
    int rc = restore_pass_disk(p, v->disk_index);
    if (slot && slot->rc && !p->opt->keep_going) {
        char ranges[1536];
        describe_chunk_uses(r, u->ref, ranges, sizeof ranges);
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

/* The decoded chunks the plan keeps for a later run, each in its place. */
struct kept {
    struct slot *place;
    uint64_t *holds; /* the chunk each place holds, checked against the plan's before it is laid */
    uint32_t n;
};

static void kept_drop(struct kept *kp, uint32_t k)
{
    free(kp->place[k].buf);
    kp->place[k].buf = NULL;
    kp->holds[k] = UINT64_MAX;
}

/* Chunk ref, decoded in from, copied into place k after its decode's last run (a damaged chunk as
 * its error). The plan fills a place only when it is free; freeing first costs nothing. */
static int keep_decode(struct kept *kp, const struct asr_reader *r, uint32_t k, uint64_t ref, const struct slot *from,
                       struct asr_error *err)
{
    struct slot *to = &kp->place[k];
    kept_drop(kp, k);
    kp->holds[k] = ref;
    to->rc = from->rc;
    to->err = from->err;
    if (from->rc)
        return ASR_OK;
    uint32_t len = asr_reader_chunk_len(r, ref);
    if (!(to->buf = malloc(len ? len : 1)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for a chunk kept for later");
    memcpy(to->buf, from->buf, len);
    return ASR_OK;
}

static void kept_free(struct kept *kp)
{
    for (uint32_t k = 0; kp->place && kp->holds && k < kp->n; k++)
        kept_drop(kp, k);
    free(kp->place);
    free(kp->holds);
}

/* Lays run i of the plan: from its decode (whose slot goes back to the workers after its last
 * run, its chunk first copied to its place when the plan keeps it) or from a kept chunk. */
static int lay_run(struct restore_pass *p, struct asr_reader *r, const struct restore_plan *pl, size_t i,
                   struct decoders *d, struct kept *kp, struct asr_error *err)
{
    const struct plan_unit *u = &pl->units[i];
    if (u->ref >= ASR_REF_UNREADABLE)
        return lay_unit(p, r, u, NULL, err);
    if (u->kept != PLAN_NOT_KEPT) {
        if (kp->holds[u->kept] != u->ref) /* never laid as another chunk's bytes */
            return asr_fail_public(err, ASR_E_STATE, "restore plan: kept place %u holds chunk %llu, not %llu (a bug in asrimg: "
                                   "please report it)", u->kept,
                                   (unsigned long long)kp->holds[u->kept], (unsigned long long)u->ref);
        int rc = lay_unit(p, r, u, &kp->place[u->kept], err);
        if (!u->keep_after)
            kept_drop(kp, u->kept);
        return rc;
    }
    const struct slot *slot = decoded(d, u->seq);
    p->st->chunks_decoded += pl->seq_unit[u->seq] == i;
    int rc = lay_unit(p, r, u, slot, err);
    if (pl->last_use[u->seq] == i) {
        if (!rc && pl->keep_to[u->seq] != PLAN_NOT_KEPT)
            rc = keep_decode(kp, r, pl->keep_to[u->seq], u->ref, slot, err);
        release(d, u->seq);
    }
    return rc;
}

int restore_file_pass(struct restore_pass *p, struct asr_error *err)
{
    struct asr_reader *r = image_reader(p->rs->im);
    struct restore_plan pl;
    int rc = restore_plan_make(r, KEEP_BYTES, &pl, err);
    if (rc)
        return rc;
    struct kept kp = {.place = calloc(pl.places ? pl.places : 1, sizeof *kp.place),
                      .holds = malloc((pl.places ? pl.places : 1) * sizeof *kp.holds), .n = pl.places};
    for (uint32_t k = 0; kp.holds && k < kp.n; k++)
        kp.holds[k] = UINT64_MAX;
    if (!kp.place || !kp.holds) {
        kept_free(&kp);
        restore_plan_free(&pl);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the restore plan");
    }
    struct decoders d;
    rc = decoders_start(&d, r, pl.units, pl.seq_unit, pl.nseq, restore_worker_count(p->opt->threads), err);
    for (size_t i = 0; i < pl.nunits && !rc; i++) {
        if (p->opt->cancel && *p->opt->cancel) {
            rc = asr_fail_public(err, ASR_E_IO, "interrupted: the restore is incomplete; run it again");
            break;
        }
        rc = lay_run(p, r, &pl, i, &d, &kp, err);
        if (p->opt->progress)
            p->opt->progress(&(struct asr_restore_progress){.done = p->done, .total = p->total}, p->opt->progress_ctx);
    }
    decoders_stop(&d);
    kept_free(&kp);
    restore_plan_free(&pl);
    return rc ? rc : restore_mirror_flush(p->m);
}
