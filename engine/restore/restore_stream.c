/* Restore from a pipe (`asrimg restore -`): the image is read once, front to back, by the
 * sequential reader. The main thread reads each chunk into a slot, workers decode the slots, and
 * the extent records that follow a chunk wait in a queue until the chunks they use are decoded,
 * then go to the mirrored writer in stream order. A pipe cannot go back to a chunk that a later
 * extent uses again (dedup): those bytes are read back from a target they were already laid on. */
#include "grow.h"
#include "image_source.h"
#include "restore_pass.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where bytes of a chunk's content were laid while the chunk was in a slot: a later extent using
 * them (dedup) reads them back from that target, since a pipe cannot go back to the chunk. The
 * list is sorted by chunk, then chunk_offset, and a chunk's placements do not overlap: a chunk
 * laid many times (a block repeated through a file) keeps only the bytes no earlier placement
 * holds, so the list stays as long as the chunks' pieces and a read-back is a binary search. */
struct placement {
    uint64_t chunk;
    uint32_t chunk_offset, length;
    uint32_t disk;
    uint64_t disk_offset;
};

/* A chunk on its way through a streamed restore: read from the pipe by the main thread, decoded
 * by a worker, laid by the main thread. */
enum { SLOT_FREE, SLOT_FILLED, SLOT_DECODING, SLOT_DECODED };

struct stream_slot {
    uint8_t *stored, *content;
    struct asr_stream_chunk chunk;
    int state;
    int rc;
    struct asr_error err;
};

/* What the pipe delivered, in order, waiting to be laid: a chunk (its slot) or extents. */
struct stream_item {
    bool is_chunk;
    uint64_t seq;
    uint32_t volume, count;
    struct asr_extent *extents; /* STREAM_RECORD_MAX of them, allocated once */
};

#define STREAM_RECORD_MAX 4096u /* extents in one record (SPEC.md section 15) */
#define STREAM_QUEUE 32u

struct stream_state {
    struct asr_stream *s;
    struct stream_slot *slots;
    size_t nslots;
    uint64_t next_fill, next_decode; /* chunk sequence numbers */
    uint64_t newest;                 /* the slot sequence of the chunk laid last; UINT64_MAX: none */
    struct stream_item q[STREAM_QUEUE];
    size_t qhead, qlen;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    size_t nthreads;
    uint8_t *copy; /* bytes of an older chunk read back from a target */
    struct placement *place;
    size_t nplace, place_cap;
    uint64_t *damaged; /* chunks whose stored bytes did not decode, in stream order */
    size_t ndamaged, damaged_cap;
};

static uint64_t placement_end(const struct placement *pl) { return (uint64_t)pl->chunk_offset + pl->length; }

/* The first placement after byte `from` of chunk `chunk`'s content: of that chunk and ending
 * after it, or of a later chunk (the list's order makes this one binary search). */
static size_t placement_at(const struct stream_state *ss, uint64_t chunk, uint64_t from)
{
    size_t lo = 0, hi = ss->nplace;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct placement *pl = &ss->place[mid];
        if (pl->chunk < chunk || (pl->chunk == chunk && placement_end(pl) <= from))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Puts pl at index i, or extends the placement before it when pl continues it on the disk. */
static int insert_placement(struct stream_state *ss, size_t i, struct placement pl, struct asr_error *err)
{
    struct placement *prev = i ? &ss->place[i - 1] : NULL;
    if (prev && prev->chunk == pl.chunk && placement_end(prev) == pl.chunk_offset && prev->disk == pl.disk &&
        prev->disk_offset + prev->length == pl.disk_offset) {
        prev->length += pl.length;
        return ASR_OK;
    }
    struct placement *g = asr_grow(ss->place, &ss->place_cap, ss->nplace + 1, sizeof *g, 1024);
    if (!g)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    ss->place = g;
    memmove(&ss->place[i + 1], &ss->place[i], (ss->nplace - i) * sizeof *ss->place);
    ss->place[i] = pl;
    ss->nplace++;
    return ASR_OK;
}

/* Notes where the bytes of pl (of the chunk laid last) went: the parts of its range that no
 * earlier placement of the chunk holds. */
static int remember(struct stream_state *ss, struct placement pl, struct asr_error *err)
{
    if (ss->nplace && ss->place[ss->nplace - 1].chunk > pl.chunk) /* the stream's order forbids it */
        return asr_fail_public(err, ASR_E_STATE, "restore from a stream: chunk %llu laid after chunk %llu",
                               (unsigned long long)pl.chunk, (unsigned long long)ss->place[ss->nplace - 1].chunk);
    uint64_t pos = pl.chunk_offset, to = placement_end(&pl);
    size_t i = placement_at(ss, pl.chunk, pos);
    while (pos < to) {
        const struct placement *next = i < ss->nplace && ss->place[i].chunk == pl.chunk ? &ss->place[i] : NULL;
        if (next && next->chunk_offset <= pos) { /* already held */
            pos = placement_end(next);
            i++;
            continue;
        }
        uint64_t gap_to = next && next->chunk_offset < to ? next->chunk_offset : to;
        struct placement piece = {pl.chunk, (uint32_t)pos, (uint32_t)(gap_to - pos), pl.disk,
                                  pl.disk_offset + (pos - pl.chunk_offset)};
        size_t before = ss->nplace;
        int rc = insert_placement(ss, i, piece, err);
        if (rc)
            return rc;
        i += ss->nplace - before; /* past the new placement, if it was not merged into the one before */
        pos = gap_to;
    }
    return ASR_OK;
}

static int note_damaged(struct stream_state *ss, uint64_t chunk, struct asr_error *err)
{
    uint64_t *g = asr_grow(ss->damaged, &ss->damaged_cap, ss->ndamaged + 1, sizeof *g, 64);
    if (!g)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    ss->damaged = g;
    ss->damaged[ss->ndamaged++] = chunk;
    return ASR_OK;
}

static bool was_damaged(const struct stream_state *ss, uint64_t chunk)
{
    size_t lo = 0, hi = ss->ndamaged;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ss->damaged[mid] < chunk)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ss->ndamaged && ss->damaged[lo] == chunk;
}

static struct restore_target *first_target_of(struct asr_restore *rs, uint32_t disk)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->t[i].info.disk_index == disk)
            return &rs->t[i];
    return NULL;
}

/* Reads [chunk_offset, +length) of an older chunk back from where its bytes were laid, each byte
 * from the placement that holds it. *found false when some byte was never laid. */
static int read_back(struct restore_pass *p, struct stream_state *ss, const struct asr_extent *e, bool *found,
                     struct asr_error *err)
{
    *found = false;
    uint64_t want_from = e->chunk_offset, want_to = e->chunk_offset + e->length, pos = want_from;
    for (size_t i = placement_at(ss, e->ref, pos); pos < want_to; i++) {
        const struct placement *pl = i < ss->nplace ? &ss->place[i] : NULL;
        if (!pl || pl->chunk != e->ref || pl->chunk_offset > pos)
            return ASR_OK; /* bytes from pos on were never laid */
        uint64_t to = placement_end(pl) < want_to ? placement_end(pl) : want_to;
        uint64_t at = pl->disk_offset + (pos - pl->chunk_offset);
        /* What is read back must be on the target. Only the current disk's writes can still be
         * on their way: switching disks flushed the others. */
        int rc = ASR_OK;
        if (pl->disk == p->disk && restore_mirror_holds(p->m, at, to - pos))
            rc = restore_mirror_flush(p->m);
        if (!rc)
            rc = target_read(first_target_of(p->rs, pl->disk), at, ss->copy + (pos - want_from),
                                 (size_t)(to - pos), err);
        if (rc)
            return rc;
        pos = to;
    }
    *found = true;
    return ASR_OK;
}

/* The slot holding chunk ref, if it is still in one (decoded: the caller waited for it). */
static const struct stream_slot *live_slot(struct stream_state *ss, uint64_t ref)
{
    const struct stream_slot *found = NULL;
    pthread_mutex_lock(&ss->mu);
    for (size_t i = 0; i < ss->nslots && !found; i++)
        if (ss->slots[i].state != SLOT_FREE && ss->slots[i].chunk.chunk_id == ref)
            found = &ss->slots[i];
    pthread_mutex_unlock(&ss->mu);
    return found;
}

static int lay_streamed(struct restore_pass *p, struct stream_state *ss, uint32_t v, const struct asr_extent *e,
                        struct asr_error *err)
{
    const struct asr_volume_desc *vd = asr_image_volume(p->rs->im, v);
    uint64_t at = vd->disk_offset + e->offset;
    int rc = image_note_extent(p->rs->im, v, e, err);
    if (!rc)
        rc = restore_pass_disk(p, vd->disk_index);
    if (rc || e->ref == ASR_REF_ZERO) {
        if (!rc)
            p->st->zero_bytes += e->length;
        return rc ? rc : restore_mirror_zero(p->m, at, e->length);
    }
    bool have = false;
    const uint8_t *src = NULL;
    struct asr_error why = {0};
    const struct stream_slot *live = live_slot(ss, e->ref);
    if (live && !live->rc) {
        have = true;
        src = live->content + e->chunk_offset;
        rc = remember(ss, (struct placement){e->ref, e->chunk_offset, (uint32_t)e->length, vd->disk_index, at}, err);
    } else if (live) {
        why = live->err;
    } else if (e->ref < ASR_REF_UNREADABLE) {
        rc = read_back(p, ss, e, &have, err);
        src = ss->copy;
        if (!rc && !have && !was_damaged(ss, e->ref))
            return asr_fail_public(err, ASR_E_UNSUPPORTED,
                                   "volume %u offset %llu uses bytes %llu to %llu of chunk %llu, which no extent laid "
                                   "while the stream carried that chunk, and a pipe cannot go back to it: restore "
                                   "from the image file",
                                   v, (unsigned long long)e->offset, (unsigned long long)e->chunk_offset,
                                   (unsigned long long)(e->chunk_offset + e->length), (unsigned long long)e->ref);
        snprintf(why.msg, sizeof why.msg, "chunk %llu was damaged where the stream carried it",
                 (unsigned long long)e->ref);
    }
    if (rc)
        return rc;
    if (have) {
        p->st->data_bytes += e->length;
        return restore_mirror_append(p->m, at, src, (size_t)e->length);
    }
    if (e->ref != ASR_REF_UNREADABLE && !p->opt->keep_going)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "%s; it holds volume %u offset %llu length %llu (disk %u offset %llu) and whatever "
                               "later extents use it (--keep-going restores the rest)",
                               why.msg, v, (unsigned long long)e->offset, (unsigned long long)e->length,
                               vd->disk_index, (unsigned long long)at);
    return restore_pass_lost(p, v, e, e->ref, err);
}

static void *stream_decode_main(void *arg)
{
    struct stream_state *ss = arg;
    struct asr_chunk_decoder *dec = NULL;
    struct asr_error setup = {0};
    int setup_rc = asr_chunk_decoder_new(ss->s, &dec, &setup);
    uint32_t cap = asr_stream_info(ss->s)->max_chunk_size;
    pthread_mutex_lock(&ss->mu);
    for (;;) {
        struct stream_slot *slot = NULL;
        while (!ss->stop && !(ss->next_decode < ss->next_fill &&
                              (slot = &ss->slots[ss->next_decode % ss->nslots])->state == SLOT_FILLED))
            pthread_cond_wait(&ss->cv, &ss->mu);
        if (ss->stop)
            break;
        ss->next_decode++;
        slot->state = SLOT_DECODING;
        pthread_mutex_unlock(&ss->mu);
        struct asr_error e = setup;
        int rc = setup_rc ? setup_rc : asr_chunk_decoder_run(dec, &slot->chunk, slot->content, cap, &e);
        pthread_mutex_lock(&ss->mu);
        slot->rc = rc;
        slot->err = e;
        slot->state = SLOT_DECODED;
        pthread_cond_broadcast(&ss->cv);
    }
    pthread_mutex_unlock(&ss->mu);
    asr_chunk_decoder_free(dec);
    return NULL;
}

static void set_slot_state(struct stream_state *ss, struct stream_slot *slot, int state)
{
    pthread_mutex_lock(&ss->mu);
    slot->state = state;
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
}

/* A slot the items at the head need and a worker has not decoded yet, or NULL. */
static struct stream_slot *head_waits_for(struct stream_state *ss, const struct stream_item *it)
{
    for (uint32_t i = 0; i < it->count; i++) {
        uint64_t ref = it->extents[i].ref;
        if (ref >= ASR_REF_UNREADABLE)
            continue;
        pthread_mutex_lock(&ss->mu);
        struct stream_slot *found = NULL;
        for (size_t k = 0; k < ss->nslots && !found; k++)
            if (ss->slots[k].state != SLOT_FREE && ss->slots[k].chunk.chunk_id == ref &&
                ss->slots[k].state != SLOT_DECODED)
                found = &ss->slots[k];
        pthread_mutex_unlock(&ss->mu);
        if (found)
            return found;
    }
    return NULL;
}

/* Lays the items at the head of the queue until one waits for a decode. */
static int lay_ready(struct restore_pass *p, struct stream_state *ss, struct stream_slot **blocked, struct asr_error *err)
{
    *blocked = NULL;
    while (ss->qlen) {
        struct stream_item *it = &ss->q[ss->qhead];
        if (it->is_chunk) {
            /* Everything placed from the previous chunk's slot is laid: later uses read it back.
             * A chunk no extent used may still be decoding: its slot is freed once it is not. */
            if (ss->newest != UINT64_MAX) {
                struct stream_slot *prev = &ss->slots[ss->newest % ss->nslots];
                pthread_mutex_lock(&ss->mu);
                bool busy = prev->state != SLOT_DECODED;
                pthread_mutex_unlock(&ss->mu);
                if (busy) {
                    *blocked = prev;
                    return ASR_OK;
                }
                int rc = prev->rc ? note_damaged(ss, prev->chunk.chunk_id, err) : ASR_OK;
                if (rc)
                    return rc;
                set_slot_state(ss, prev, SLOT_FREE);
            }
            ss->newest = it->seq;
        } else {
            if ((*blocked = head_waits_for(ss, it)))
                return ASR_OK;
            for (uint32_t i = 0; i < it->count; i++) {
                int rc = lay_streamed(p, ss, it->volume, &it->extents[i], err);
                if (rc)
                    return rc;
                p->done += it->extents[i].length;
            }
            if (p->opt->progress)
                p->opt->progress(&(struct asr_restore_progress){.done = p->done, .total = p->total},
                                 p->opt->progress_ctx);
        }
        ss->qhead = (ss->qhead + 1) % STREAM_QUEUE;
        ss->qlen--;
    }
    return ASR_OK;
}

/* Takes the next record from the pipe into the queue: a chunk's stored bytes into the next slot
 * (for a worker to decode), extents copied. false in *ended at the stream's end. */
static int read_record(struct stream_state *ss, bool *ended, struct asr_error *err)
{
    struct asr_stream_record rec;
    int rc = asr_stream_next(ss->s, &rec, err);
    if (rc || (*ended = rec.kind == ASR_STREAM_END))
        return rc;
    struct stream_item *it = &ss->q[(ss->qhead + ss->qlen) % STREAM_QUEUE];
    it->is_chunk = rec.kind == ASR_STREAM_CHUNK;
    if (it->is_chunk) {
        struct stream_slot *slot = &ss->slots[ss->next_fill % ss->nslots];
        uint32_t cap = asr_stream_info(ss->s)->max_chunk_size;
        if ((rc = asr_stream_read_chunk_data(ss->s, &rec.chunk, slot->stored, cap, err)))
            return rc;
        slot->chunk = rec.chunk;
        it->seq = ss->next_fill;
        pthread_mutex_lock(&ss->mu);
        ss->next_fill++;
        slot->state = SLOT_FILLED;
        pthread_cond_broadcast(&ss->cv);
        pthread_mutex_unlock(&ss->mu);
    } else {
        if (rec.extent_count > STREAM_RECORD_MAX)
            return asr_fail_public(err, ASR_E_CORRUPT, "extent record of %u extents", rec.extent_count);
        it->volume = rec.volume_id;
        it->count = rec.extent_count;
        memcpy(it->extents, rec.extents, rec.extent_count * sizeof *rec.extents);
    }
    ss->qlen++;
    return ASR_OK;
}

static bool can_read(const struct stream_state *ss)
{
    return ss->qlen < STREAM_QUEUE && ss->slots[ss->next_fill % ss->nslots].state == SLOT_FREE;
}

static void stream_stop(struct stream_state *ss)
{
    pthread_mutex_lock(&ss->mu);
    ss->stop = true;
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    for (size_t i = 0; i < ss->nthreads; i++)
        pthread_join(ss->threads[i], NULL);
    for (size_t i = 0; ss->slots && i < ss->nslots; i++) {
        free(ss->slots[i].stored);
        free(ss->slots[i].content);
    }
    for (size_t i = 0; i < STREAM_QUEUE; i++)
        free(ss->q[i].extents);
    free(ss->slots);
    free(ss->threads);
    free(ss->copy);
    free(ss->place);
    free(ss->damaged);
    pthread_cond_destroy(&ss->cv);
    pthread_mutex_destroy(&ss->mu);
}

static int stream_start(struct stream_state *ss, struct asr_stream *s, unsigned threads, struct asr_error *err)
{
    *ss = (struct stream_state){.s = s, .newest = UINT64_MAX, .nslots = 2 * (size_t)threads + 3};
    pthread_mutex_init(&ss->mu, NULL);
    pthread_cond_init(&ss->cv, NULL);
    uint32_t cap = asr_stream_info(s)->max_chunk_size;
    ss->slots = calloc(ss->nslots, sizeof *ss->slots);
    ss->threads = calloc(threads, sizeof *ss->threads);
    ss->copy = malloc(cap);
    bool ok = ss->slots && ss->threads && ss->copy;
    for (size_t i = 0; ok && i < ss->nslots; i++)
        ok = (ss->slots[i].stored = malloc(cap)) && (ss->slots[i].content = malloc(cap));
    for (size_t i = 0; ok && i < STREAM_QUEUE; i++)
        ok = (ss->q[i].extents = malloc(STREAM_RECORD_MAX * sizeof *ss->q[i].extents)) != NULL;
    if (!ok)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for chunk buffers");
    for (; ss->nthreads < threads; ss->nthreads++)
        if (pthread_create(&ss->threads[ss->nthreads], NULL, stream_decode_main, ss) != 0)
            return asr_fail_public(err, ASR_E_NOMEM, "cannot start a decoding thread");
    return ASR_OK;
}

/* The main thread reads the pipe and lays; workers decode the chunks in between, so reading,
 * decoding and writing overlap as in a restore from a file. */
int restore_stream_pass(struct restore_pass *p, struct asr_error *err)
{
    struct stream_state ss;
    int rc = stream_start(&ss, image_stream(p->rs->im), restore_worker_count(p->opt->threads), err);
    bool ended = false;
    while (!rc) {
        if (p->opt->cancel && *p->opt->cancel) {
            rc = asr_fail_public(err, ASR_E_IO, "interrupted: the restore is incomplete; run it again");
            break;
        }
        struct stream_slot *blocked;
        if ((rc = lay_ready(p, &ss, &blocked, err)))
            break;
        if (ended && !ss.qlen)
            break;
        if (!ended && can_read(&ss)) {
            rc = read_record(&ss, &ended, err);
            continue;
        }
        if (!blocked) { /* cannot happen: an empty queue leaves the next slot free */
            rc = asr_fail_public(err, ASR_E_STATE, "restore from a stream: no slot to read into");
            break;
        }
        pthread_mutex_lock(&ss.mu); /* the head waits for a worker */
        while (blocked->state != SLOT_DECODED)
            pthread_cond_wait(&ss.cv, &ss.mu);
        pthread_mutex_unlock(&ss.mu);
    }
    stream_stop(&ss);
    return rc ? rc : restore_mirror_flush(p->m);
}

