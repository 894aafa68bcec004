/* The backup pipeline: used ranges -> io_uring reads (source.c) -> zero-run detection and
 * content-defined chunking (cdc.c), on the calling thread -> XXH3-128 hashing, a dedup lookup and
 * zstd on a pool of worker threads -> one writer thread appending chunks and extents to the image
 * in order, and deciding dedup for good. Chunking is sequential (a cut depends on where the chunk
 * began), but its costly part, the rolling hash over every byte, is not: reads are scanned for cut
 * candidates (cdc_scan) by idle workers when they land ahead of the producer, or by the
 * producer when it reaches one unscanned, and the producer applies the size rules to the
 * candidates. Memory is fixed by design: a ring of chunk slots (each one chunk of content and its
 * encoded form) gives back-pressure between the stages; nothing grows with the data except the
 * dedup index and the writer's chunk and extent tables (SPEC.md, "Memory"). Into a store with
 * re-backup hints (hints.c), the producer takes a hinted chunk's bytes without chunking them and
 * checks them; a chunk whose bytes changed in at most half its 4 KiB blocks becomes a patch: its
 * extents point into the chunk it was for the blocks that did not change, and only the others
 * are stored, as a chunk of their own (SPEC.md 19.10). */
#include "asr_engine.h"
#include "asr_store.h"
#include "cdc.h"
#include "dedup.h"
#include "clock.h"
#include "grow.h"
#include "hints.h"
#include "le.h"
#include "source.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define ZERO_BLOCK 4096u          /* zero runs are found in aligned blocks of this size */
#define ZERO_RUN_MIN (32u << 10)  /* shorter zero runs stay inside chunks (zstd shrinks them) */
#define MAX_THREADS 256u
#define SCAN_AHEAD 8u             /* reads scanned ahead of the producer (the source has 16 in flight) */
#define SCAN_FROM 1u              /* ... from this many ahead on, by default: see queue_scans */
#define SCAN_MARKS 4096u          /* candidates a scan lists; past them the producer rolls itself */

/* ---- slots: one chunk (or one zero/unreadable run) on its way to the image ---------------- */

enum slot_state { SLOT_FREE, SLOT_COMPRESS, SLOT_READY };
enum slot_kind { KIND_DATA, KIND_ZERO, KIND_UNREADABLE };

/* Where a slice of the chunk's content lies in its volume. */
struct piece_ref {
    uint64_t offset;
    uint32_t len, chunk_offset;
};

struct slot {
    enum slot_state state;
    enum slot_kind kind;
    uint32_t volume_id;
    uint8_t *content;
    uint32_t len;
    struct piece_ref *pieces;
    size_t npieces, cap;
    struct asr_hash128 hash;
    /* Re-backup hints: hinted, the bytes matched a hint, whose hashes and store id it took;
     * cut, the chunker ended the chunk (not a zero run, an unreadable range or the volume's
     * end), so a later backup may take a hint from it; verify, its hash for that. */
    bool hinted, cut;
    struct asr_hash128 verify;
    uint8_t vkey[HINT_KEY_SIZE]; /* its volume's hint key (a copy: the producer moves on) */
    bool known;              /* a worker found the content already stored, as chunk_id */
    uint64_t chunk_id;
    /* Into a store: the content's store id, and whether the store already holds it (with the
     * stored length of its record there), so that it is neither compressed nor uploaded. */
    struct asr_store_id sid;
    bool in_store;
    uint32_t store_stored_len;
    uint64_t run_offset, run_len; /* ZERO and UNREADABLE */
    uint8_t *out;            /* encoded chunk */
    struct asr_chunk chunk;
    /* With hints: the content's blocks (hint_block_count of them), recorded for the next backup. */
    struct hint_block *blocks;
    /* Patched: the region is its hint's base chunk (base: its content hash, store id, length) but
     * for the blocks not from it, which make up the patch chunk (patch, plen bytes); the chunk
     * fields above (hash, sid, known, chunk...) then describe the patch. */
    bool patched;
    struct hint base;
    uint32_t base_stored_len;
    uint8_t *patch;
    uint32_t plen;
};

/* ---- scans: cut candidates of a read that landed ahead of the producer -------------------- */

enum scan_state { SCAN_EMPTY, SCAN_QUEUED, SCAN_RUNNING, SCAN_DONE };

struct scan_job {
    enum scan_state state;
    uint64_t request;   /* the source's read sequence number */
    struct span span;
    struct cdc_marks marks;
};

struct pipeline {
    struct asr_writer *w;
    const struct asr_backup_options *opt;
    uint64_t seed;
    int level;
    uint32_t max_chunk;
    struct slot *slots;
    size_t nslots;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, ready_cv, free_cv;
    uint64_t produced;  /* slots handed on by the producer (sequence numbers) */
    uint64_t *queue;    /* sequence numbers waiting for a worker: a ring of nslots */
    uint64_t q_head, q_tail;
    uint64_t written;   /* slots the writer has finished */
    bool closing;       /* the producer is done (or gave up): stages drain and exit */
    bool failed;
    struct asr_error fail_err;
    double hash_seconds, compress_seconds, write_seconds, scan_seconds;
    uint64_t scans_done;
    /* Scans, slot request % SCAN_AHEAD, for reads the producer will reach within SCAN_AHEAD. A
     * queued scan the producer reaches first it runs itself; a running one is waited for.
     * Workers take queued scans before chunks. */
    struct scan_job scans[SCAN_AHEAD];
    size_t scans_queued;
    pthread_cond_t scan_cv;
    struct cdc scan_params; /* the chunker's sizes and masks, read by the workers */
    /* Content hash and length -> chunk id of every chunk written. Workers look chunks up in it
     * to skip compressing known content; the writer, in order, adds new chunks and has the last
     * word (a copy that was still in flight when a worker looked becomes a reference then). */
    struct dedup *dedup;
    pthread_mutex_t dedup_mu;
    /* Into a store with hints (opt->hints): the private seed of their verify hashes. */
    struct asr_backup_hints *hints;
    uint64_t hint_seed;
    /* Writer thread only. */
    uint64_t next_chunk_id, stored_bytes, new_bytes, dedup_bytes, chunks, dedup_hits, store_bytes;
};

static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Records the first failure of any stage and wakes everyone so the pipeline unwinds. */
static void pipeline_fail(struct pipeline *p, const struct asr_error *err)
{
    pthread_mutex_lock(&p->mu);
    if (!p->failed) {
        p->failed = true;
        p->fail_err = *err;
    }
    pthread_cond_broadcast(&p->work_cv);
    pthread_cond_broadcast(&p->ready_cv);
    pthread_cond_broadcast(&p->free_cv);
    pthread_mutex_unlock(&p->mu);
}

/* ---- workers: hash chunks, compress those not stored yet ------------------------------------- */

/* The content's blocks, hashed for the next backup's hints, each from the chunk itself. */
static void hash_blocks(const struct pipeline *p, struct slot *s)
{
    uint64_t off = s->pieces[0].offset;
    size_t n = hint_block_count(off, s->len);
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        hint_block_range(off, s->len, i, &a, &b);
        s->blocks[i] = (struct hint_block){XXH3_64bits_withSeed(s->content + a, b - a, p->hint_seed), HINT_FROM_BASE};
    }
}

/* A patched slot's patch: its blocks not from the base, one after another. */
static void gather_patch(struct slot *s)
{
    uint64_t off = s->pieces[0].offset;
    size_t n = hint_block_count(off, s->len);
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        hint_block_range(off, s->len, i, &a, &b);
        if (!(s->blocks[i].from & HINT_FROM_BASE)) {
            memcpy(s->patch + k, s->content + a, b - a);
            k += b - a;
        }
    }
    s->plen = k;
}

/* Whether the store still holds a patched slot's base (with its stored length). */
static bool base_in_store(const struct pipeline *p, struct slot *s)
{
    uint32_t len = 0;
    return asr_store_session_has(p->opt->session, &s->base.sid, &len, &s->base_stored_len) && len == s->base.len;
}

static int hash_and_encode(struct pipeline *p, struct asr_chunk_encoder *enc, struct slot *s, double *hash_seconds,
                           struct asr_error *err)
{
    /* A hint's patched region (the producer checked its own patches' bases): when gc freed the
     * base since, the region is stored whole. */
    if (s->patched && s->hinted && !base_in_store(p, s))
        s->patched = s->hinted = false;
    double t0 = thread_seconds();
    if (p->hints && !s->hinted) {
        s->verify = asr_content_hash(p->hint_seed, s->content, s->len);
        if (!s->patched && s->cut) /* a patch's blocks were hashed when it was made */
            hash_blocks(p, s);
    }
    if (s->patched && !s->hinted) /* a hint's patch is gathered only if its bytes are needed */
        gather_patch(s);
    /* The chunk this slot stores: the region's content, or its patch. */
    const uint8_t *data = s->patched ? s->patch : s->content;
    uint32_t dlen = s->patched ? s->plen : s->len;
    if (!s->hinted) /* a hinted chunk's hashes and store id are the hint's */
        s->hash = asr_content_hash(p->seed, data, dlen);
    *hash_seconds += thread_seconds() - t0;
    pthread_mutex_lock(&p->dedup_mu);
    s->known = dedup_find(p->dedup, s->hash, dlen, &s->chunk_id);
    pthread_mutex_unlock(&p->dedup_mu);
    s->in_store = false;
    bool record_sid = p->hints && !s->hinted; /* the hints record every chunk's store id */
    if (s->known && !record_sid)
        return ASR_OK;
    if (p->opt->session) {
        t0 = thread_seconds();
        if (!s->hinted)
            asr_store_chunk_id(p->opt->store, data, dlen, &s->sid);
        *hash_seconds += thread_seconds() - t0;
        if (s->known)
            return ASR_OK;
        uint32_t len = 0;
        s->in_store = asr_store_session_has(p->opt->session, &s->sid, &len, &s->store_stored_len) && len == dlen;
        if (!s->in_store && s->hinted) {
            /* The store no longer holds the hint's chunk (gc freed it): nothing is uploaded under
             * an id the bytes were not hashed to here and now. */
            if (s->patched)
                gather_patch(s);
            t0 = thread_seconds();
            asr_store_chunk_id(p->opt->store, data, dlen, &s->sid);
            *hash_seconds += thread_seconds() - t0;
            s->in_store = asr_store_session_has(p->opt->session, &s->sid, &len, &s->store_stored_len) && len == dlen;
        }
        if (s->in_store) { /* the record's lengths and content hash, for the snapshot's chunk table */
            s->chunk = (struct asr_chunk){.content_len = dlen, .stored_len = s->store_stored_len,
                                          .content_hash = s->hash};
            return ASR_OK;
        }
    }
    return asr_chunk_encoder_run(enc, data, dlen, s->hash, s->out, asr_chunk_bound(p->max_chunk), &s->chunk, err);
}

/* Called and returns with p->mu held: scans the oldest queued read. */
static void run_scan(struct pipeline *p, double *scan_seconds)
{
    struct scan_job *job = NULL;
    for (size_t i = 0; i < SCAN_AHEAD; i++) {
        struct scan_job *j = &p->scans[i];
        if (j->state == SCAN_QUEUED && (!job || j->request < job->request))
            job = j;
    }
    if (!job) { /* cannot happen: scans_queued counts queued jobs */
        p->scans_queued = 0;
        return;
    }
    job->state = SCAN_RUNNING;
    p->scans_queued--;
    pthread_mutex_unlock(&p->mu);
    double t0 = thread_seconds();
    cdc_scan(&p->scan_params, job->span.data, job->span.len, &job->marks);
    *scan_seconds += thread_seconds() - t0;
    pthread_mutex_lock(&p->mu);
    job->state = SCAN_DONE;
    p->scans_done++;
    pthread_cond_broadcast(&p->scan_cv);
}

static void *worker_main(void *arg)
{
    struct pipeline *p = arg;
    struct asr_error err = {0};
    struct asr_chunk_encoder *enc;
    if (asr_chunk_encoder_new(p->level, &enc, &err) != ASR_OK) {
        pipeline_fail(p, &err);
        return NULL;
    }
    double cpu0 = thread_seconds(), hash_seconds = 0, scan_seconds = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->scans_queued && p->q_head == p->q_tail && !p->closing && !p->failed)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->failed)
            break;
        if (p->scans_queued) {
            run_scan(p, &scan_seconds);
            continue;
        }
        if (p->q_head == p->q_tail)
            break;
        struct slot *s = &p->slots[p->queue[p->q_head++ % p->nslots] % p->nslots];
        pthread_mutex_unlock(&p->mu);
        int rc = hash_and_encode(p, enc, s, &hash_seconds, &err);
        pthread_mutex_lock(&p->mu);
        if (rc != ASR_OK) {
            pthread_mutex_unlock(&p->mu);
            pipeline_fail(p, &err);
            pthread_mutex_lock(&p->mu);
            break;
        }
        s->state = SLOT_READY;
        pthread_cond_broadcast(&p->ready_cv);
    }
    p->compress_seconds += thread_seconds() - cpu0 - hash_seconds - scan_seconds;
    p->hash_seconds += hash_seconds;
    p->scan_seconds += scan_seconds;
    pthread_mutex_unlock(&p->mu);
    asr_chunk_encoder_free(enc);
    return NULL;
}

/* ---- writer: slots in sequence order into the image ---------------------------------------- */

/* A chunk the store keeps, named in the snapshot by its store id as the next chunk number. */
static int name_external(struct pipeline *p, const struct asr_store_id *sid, const struct asr_chunk *c, uint64_t *id,
                         struct asr_error *err)
{
    int rc = asr_writer_append_external(p->w, sid->b, c, id, err);
    if (rc == ASR_OK && *id != p->next_chunk_id)
        rc = asr_fail_public(err, ASR_E_STATE, "chunk numbering out of step (%llu, expected %llu)",
                             (unsigned long long)*id, (unsigned long long)p->next_chunk_id);
    if (rc == ASR_OK)
        p->next_chunk_id++;
    return rc;
}

/* A chunk new to this snapshot (len bytes of content), into a store: uploaded unless the store
 * holds it already, then named in the snapshot by its store id. */
static int store_chunk(struct pipeline *p, struct slot *s, uint32_t len, uint64_t *id, struct asr_error *err)
{
    int rc = ASR_OK;
    if (s->in_store) {
        p->dedup_bytes += len;
        p->dedup_hits++;
        p->store_bytes += len;
    } else {
        rc = asr_store_session_put(p->opt->session, &s->sid, &s->chunk, err);
        p->stored_bytes += s->chunk.stored_len;
        p->new_bytes += len;
        p->chunks++;
    }
    return rc == ASR_OK ? name_external(p, &s->sid, &s->chunk, id, err) : rc;
}

/* A patched slot's base: named in the snapshot the first time (then found by its content hash),
 * counted as found in the store for the bytes the region takes from it. */
static int add_base(struct pipeline *p, struct slot *s, uint64_t *id, struct asr_error *err)
{
    pthread_mutex_lock(&p->dedup_mu);
    int hit = dedup_find_or_add(p->dedup, s->base.content, s->base.len, p->next_chunk_id, id);
    pthread_mutex_unlock(&p->dedup_mu);
    if (hit < 0)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the dedup index");
    p->dedup_bytes += s->len - s->plen;
    p->store_bytes += s->len - s->plen;
    if (hit)
        return ASR_OK;
    struct asr_chunk c = {.content_len = s->base.len, .stored_len = s->base_stored_len,
                          .content_hash = s->base.content};
    return name_external(p, &s->base.sid, &c, id, err);
}

/* Extents of a patched slot being gathered: a run is extended while the next bytes follow on in
 * the volume and in the same chunk. */
struct extent_run {
    uint64_t offset, len, chunk_id;
    uint32_t chunk_offset;
    const uint8_t *content;
};

static int flush_run(struct pipeline *p, const struct slot *s, struct extent_run *r, struct asr_error *err)
{
    int rc = r->len ? asr_writer_add_extent(p->w, s->volume_id, r->offset, r->len, r->chunk_id, r->chunk_offset,
                                            r->content, err)
                    : ASR_OK;
    r->len = 0;
    return rc;
}

static int extend_run(struct pipeline *p, const struct slot *s, struct extent_run *r, const struct extent_run *next,
                      struct asr_error *err)
{
    if (r->len && r->chunk_id == next->chunk_id && r->offset + r->len == next->offset &&
        r->chunk_offset + r->len == next->chunk_offset) {
        r->len += next->len;
        return ASR_OK;
    }
    int rc = flush_run(p, s, r, err);
    *r = *next;
    return rc;
}

/* A patched slot's extents, in volume order: its pieces cut at its blocks, the bytes from the
 * base pointing where they lie in it, the others into the patch. */
static int add_patched_extents(struct pipeline *p, const struct slot *s, uint64_t base_id, uint64_t patch_id,
                               struct asr_error *err)
{
    uint64_t off = s->pieces[0].offset;
    size_t n = hint_block_count(off, s->len), k = 0;
    uint32_t in_patch = 0;
    struct extent_run run = {0};
    int rc = ASR_OK;
    for (size_t i = 0; i < n && rc == ASR_OK; i++) {
        uint32_t a, b;
        hint_block_range(off, s->len, i, &a, &b);
        bool from_base = s->blocks[i].from & HINT_FROM_BASE;
        for (uint32_t at = a; at < b && rc == ASR_OK;) {
            while (k + 1 < s->npieces && s->pieces[k].chunk_offset + s->pieces[k].len <= at)
                k++;
            const struct piece_ref *r = &s->pieces[k];
            uint32_t end = b < r->chunk_offset + r->len ? b : r->chunk_offset + r->len;
            struct extent_run next = {r->offset + (at - r->chunk_offset), end - at, from_base ? base_id : patch_id,
                                      from_base ? at : in_patch + (at - a), s->content + at};
            rc = extend_run(p, s, &run, &next, err);
            at = end;
        }
        if (!from_base)
            in_patch += b - a;
    }
    return rc == ASR_OK ? flush_run(p, s, &run, err) : rc;
}

/* What the next backup's hints say of a region the chunker ended. */
static int record_hint(struct pipeline *p, const struct slot *s, struct asr_error *err)
{
    struct hint h = {.offset = s->pieces[0].offset, .len = s->len, .verify = s->verify, .blocks = s->blocks};
    if (s->patched) {
        h.flags = HINT_PATCHED;
        h.content = s->base.content;
        h.sid = s->base.sid;
        h.patch_content = s->hash;
        h.patch_len = s->plen;
        h.patch_sid = s->sid;
    } else {
        h.content = s->hash;
        h.sid = s->sid;
    }
    return hints_record(p->hints, s->vkey, &h, err);
}

static int write_slot(struct pipeline *p, struct slot *s, struct asr_error *err)
{
    if (s->kind == KIND_ZERO)
        return asr_writer_add_zero(p->w, s->volume_id, s->run_offset, s->run_len, err);
    if (s->kind == KIND_UNREADABLE)
        return asr_writer_add_unreadable(p->w, s->volume_id, s->run_offset, s->run_len, err);
    uint64_t base_id = 0;
    if (s->patched) {
        int rc = add_base(p, s, &base_id, err);
        if (rc != ASR_OK)
            return rc;
    }
    uint32_t len = s->patched ? s->plen : s->len; /* of the chunk the slot stores */
    uint64_t id = s->chunk_id;
    if (!s->known) {
        pthread_mutex_lock(&p->dedup_mu);
        int hit = dedup_find_or_add(p->dedup, s->hash, len, p->next_chunk_id, &id);
        pthread_mutex_unlock(&p->dedup_mu);
        if (hit < 0)
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the dedup index");
        s->known = hit;
    }
    if (s->known) {
        p->dedup_bytes += len;
        p->dedup_hits++;
    } else if (p->opt->session) {
        int rc = store_chunk(p, s, len, &id, err);
        if (rc != ASR_OK)
            return rc;
    } else {
        int rc = asr_writer_append_chunk(p->w, &s->chunk, &id, err);
        if (rc != ASR_OK)
            return rc;
        if (id != p->next_chunk_id) /* the dedup index already handed this id out */
            return asr_fail_public(err, ASR_E_STATE, "chunk numbering out of step (%llu, expected %llu)",
                                   (unsigned long long)id, (unsigned long long)p->next_chunk_id);
        p->next_chunk_id++;
        p->stored_bytes += s->chunk.stored_len;
        p->new_bytes += s->len;
        p->chunks++;
    }
    if (s->patched) {
        int rc = add_patched_extents(p, s, base_id, id, err);
        if (rc != ASR_OK)
            return rc;
    } else {
        for (size_t i = 0; i < s->npieces; i++) {
            const struct piece_ref *r = &s->pieces[i];
            int rc = asr_writer_add_extent(p->w, s->volume_id, r->offset, r->len, id, r->chunk_offset,
                                           s->content + r->chunk_offset, err);
            if (rc != ASR_OK)
                return rc;
        }
    }
    return p->hints && s->cut ? record_hint(p, s, err) : ASR_OK;
}

static void *writer_main(void *arg)
{
    struct pipeline *p = arg;
    struct asr_error err = {0};
    double busy = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct slot *s = &p->slots[p->written % p->nslots];
        while (!p->failed && !(p->written < p->produced && s->state == SLOT_READY) &&
               !(p->closing && p->written == p->produced))
            pthread_cond_wait(&p->ready_cv, &p->mu);
        if (p->failed || p->written == p->produced)
            break;
        pthread_mutex_unlock(&p->mu);
        double t0 = asr_now();
        int rc = write_slot(p, s, &err);
        busy += asr_now() - t0;
        if (rc != ASR_OK) {
            pipeline_fail(p, &err);
            pthread_mutex_lock(&p->mu);
            break;
        }
        pthread_mutex_lock(&p->mu);
        s->state = SLOT_FREE;
        p->written++;
        pthread_cond_broadcast(&p->free_cv);
    }
    p->write_seconds = busy;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- producer: pieces -> zero runs and chunks ------------------------------------------------ */

struct producer {
    struct pipeline *p;
    struct cdc cdc;
    uint32_t volume_id;
    struct slot *cur;        /* the chunk being filled, or NULL */
    uint64_t zero_offset, zero_len; /* pending zero run */
    struct asr_backup_stats *st;
    /* The read being fed and its scan, if one was done (else marks is NULL and the chunker rolls). */
    bool in_request;
    uint64_t request, scan_next;
    const struct cdc_marks *marks;
    const uint8_t *span;
    /* Re-backup hints of the volume being read (NULL: none), and its key. While spec is set, the
     * chunk being filled follows that hint: it takes the hint's length of bytes without the
     * chunker, then they are checked (end_speculation). Bytes a hint did not match are chunked
     * again from a scratch copy (rechunk), without hints below no_spec_until. */
    const struct hint_list *hints;
    uint8_t vkey[HINT_KEY_SIZE];
    const struct hint *spec;
    uint64_t no_spec_until;
    /* With patches: the chunk the chunker fills ends, at the latest, where the next hint's region
     * starts (region_end), so that bytes which changed are chunked within their own regions and
     * the unchanged region after them is taken from its hint, not stored again in a new chunk. */
    uint64_t region_end;
    uint8_t *scratch;
    struct piece_ref *left;
    size_t left_cap;
};

/* Waits for the next slot in sequence to be free (back-pressure). */
static struct slot *acquire_slot(struct pipeline *p, struct asr_error *err)
{
    pthread_mutex_lock(&p->mu);
    struct slot *s = &p->slots[p->produced % p->nslots];
    while (!p->failed && s->state != SLOT_FREE)
        pthread_cond_wait(&p->free_cv, &p->mu);
    bool failed = p->failed;
    if (failed)
        *err = p->fail_err;
    pthread_mutex_unlock(&p->mu);
    if (failed)
        return NULL;
    s->len = 0;
    s->npieces = 0;
    s->volume_id = 0;
    return s;
}

static void publish(struct pipeline *p, struct slot *s, bool compress)
{
    pthread_mutex_lock(&p->mu);
    s->state = compress ? SLOT_COMPRESS : SLOT_READY;
    if (compress) {
        p->queue[p->q_tail++ % p->nslots] = p->produced;
        pthread_cond_signal(&p->work_cv);
    } else {
        pthread_cond_broadcast(&p->ready_cv);
    }
    p->produced++;
    pthread_mutex_unlock(&p->mu);
}

static int flush_zero(struct producer *pr, struct asr_error *err)
{
    if (!pr->zero_len)
        return ASR_OK;
    struct slot *s = acquire_slot(pr->p, err);
    if (!s)
        return err->code ? err->code : ASR_E_STATE;
    s->kind = KIND_ZERO;
    s->volume_id = pr->volume_id;
    s->run_offset = pr->zero_offset;
    s->run_len = pr->zero_len;
    pr->zero_len = 0;
    publish(pr->p, s, false);
    return ASR_OK;
}

/* Hands the chunk being filled to the workers. */
static void flush_chunk(struct producer *pr)
{
    struct slot *s = pr->cur;
    if (!s)
        return;
    pr->cur = NULL;
    cdc_reset(&pr->cdc);
    s->kind = KIND_DATA;
    publish(pr->p, s, true);
}

static int add_piece_ref(struct slot *s, uint64_t offset, uint32_t len, struct asr_error *err)
{
    if (s->npieces && s->pieces[s->npieces - 1].offset + s->pieces[s->npieces - 1].len == offset) {
        s->pieces[s->npieces - 1].len += len;
        return ASR_OK;
    }
    struct piece_ref *v = asr_grow(s->pieces, &s->cap, s->npieces + 1, sizeof *v, 64);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for chunk pieces");
    s->pieces = v;
    s->pieces[s->npieces++] = (struct piece_ref){offset, len, s->len};
    return ASR_OK;
}

static int feed_data(struct producer *pr, uint64_t off, const uint8_t *data, size_t len, struct asr_error *err);

/* The chunk being filled stopped following its hint before the hint's length, or its bytes
 * differ: they are chunked as the chunker would have from the chunk's start. A cut inside them
 * ends the chunk there, and the bytes after it are fed again, without hints; without a cut the
 * chunk goes on, the chunker having rolled its bytes. */
static int rechunk(struct producer *pr, struct asr_error *err)
{
    struct slot *s = pr->cur;
    pr->spec = NULL;
    cdc_reset(&pr->cdc);
    bool cut = false;
    size_t n = s->len, c = cdc_feed(&pr->cdc, s->content, n, &cut);
    if (!cut) {
        /* With patches, bytes that reach the next hint's region end there (take_bytes). */
        const struct piece_ref *last = &s->pieces[s->npieces - 1];
        if (last->offset + last->len == pr->region_end) {
            s->cut = true;
            flush_chunk(pr);
        }
        return ASR_OK;
    }
    size_t nleft = 0, keep = 0;
    for (size_t i = 0; i < s->npieces; i++) {
        struct piece_ref *r = &s->pieces[i];
        if (r->chunk_offset + r->len <= c) {
            keep = i + 1;
            continue;
        }
        uint32_t skip = r->chunk_offset < c ? (uint32_t)(c - r->chunk_offset) : 0;
        struct piece_ref *v = asr_grow(pr->left, &pr->left_cap, nleft + 1, sizeof *v, 64);
        if (!v)
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory for chunk pieces");
        pr->left = v;
        v[nleft++] = (struct piece_ref){r->offset + skip, r->len - skip, (uint32_t)(r->chunk_offset + skip - c)};
        if (skip) {
            r->len = skip;
            keep = i + 1;
        }
    }
    memcpy(pr->scratch, s->content + c, n - c);
    s->npieces = keep;
    s->len = (uint32_t)c;
    s->cut = true;
    flush_chunk(pr);
    if (!nleft)
        return ASR_OK;
    pr->no_spec_until = pr->left[nleft - 1].offset + pr->left[nleft - 1].len;
    int rc = ASR_OK;
    for (size_t i = 0; i < nleft && rc == ASR_OK; i++)
        rc = feed_data(pr, pr->left[i].offset, pr->scratch + pr->left[i].chunk_offset, pr->left[i].len, err);
    return rc;
}

/* The chunk took its hint's length of bytes and they differ from the hint's: it becomes a patch
 * of the hint's base chunk when the store still holds that and at most half its bytes, in 4 KiB
 * blocks, are not the base's now (a block the last backup already took from a patch counts as
 * not the base's: a region names two chunks at most). The blocks hashed here are the new bytes'. */
static bool try_patch(struct producer *pr, const struct hint *h)
{
    struct pipeline *p = pr->p;
    struct slot *s = pr->cur;
    if (p->opt->no_patches)
        return false;
    hash_blocks(p, s); /* the chunk starts at the hint's offset and has its length */
    size_t n = hint_block_count(h->offset, h->len);
    uint64_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->blocks[i].hash == h->blocks[i].hash && (h->blocks[i].from & HINT_FROM_BASE))
            continue;
        uint32_t a, b;
        hint_block_range(h->offset, h->len, i, &a, &b);
        s->blocks[i].from = 0;
        changed += b - a;
    }
    s->base = (struct hint){.len = h->len, .content = h->content, .sid = h->sid};
    if (!changed || changed > h->len / 2 || !base_in_store(p, s))
        return false;
    s->patched = s->cut = true;
    s->plen = (uint32_t)changed;
    pr->st->patched_chunks++;
    pr->st->patched_bytes += changed;
    return true;
}

/* The chunk has taken its hint's length of bytes: if they are the bytes the hint hashed, the
 * chunker would cut here again, and the chunk keeps the hint's chunks (its content hash and
 * store id, or its base and patch) and blocks. If not, a patch or the chunker decides. */
static int end_speculation(struct producer *pr, struct asr_error *err)
{
    struct slot *s = pr->cur;
    const struct hint *h = pr->spec;
    double t0 = thread_seconds();
    struct asr_hash128 v = asr_content_hash(pr->p->hint_seed, s->content, s->len);
    bool same = v.lo == h->verify.lo && v.hi == h->verify.hi, patched = !same && try_patch(pr, h);
    pr->st->verify_seconds += thread_seconds() - t0;
    if (!same && !patched)
        return rechunk(pr, err);
    pr->spec = NULL;
    if (same) {
        s->hinted = s->cut = true;
        s->verify = h->verify;
        memcpy(s->blocks, h->blocks, hint_block_count(h->offset, h->len) * sizeof *s->blocks);
        s->patched = h->flags & HINT_PATCHED;
        s->base = (struct hint){.len = h->len, .content = h->content, .sid = h->sid};
        s->hash = s->patched ? h->patch_content : h->content;
        s->sid = s->patched ? h->patch_sid : h->sid;
        s->plen = s->patched ? h->patch_len : 0;
        pr->st->hinted_chunks++;
        pr->st->hinted_bytes += s->len;
    }
    flush_chunk(pr);
    return ASR_OK;
}

/* Ends the chunk being filled where something other than the chunker ends it: a zero run, an
 * unreadable range, the volume's end. */
static int end_chunk(struct producer *pr, struct asr_error *err)
{
    if (pr->spec) {
        int rc = rechunk(pr, err);
        if (rc != ASR_OK)
            return rc;
    }
    flush_chunk(pr);
    return ASR_OK;
}

/* Where the region of the first hint after volume offset off starts: with patches, the chunker's
 * chunks end there at the latest (region_end). */
static uint64_t next_region(const struct producer *pr, uint64_t off)
{
    return pr->p->opt->no_patches ? UINT64_MAX : hints_next_start(pr->hints, off);
}

/* Takes up to len bytes at volume offset off into the chunk being filled: as its hint says, or
 * as the chunker cuts, and then no further than the next hint's region (*cut set there too). */
static size_t take_bytes(struct producer *pr, uint64_t off, const uint8_t *data, size_t len, bool *cut)
{
    *cut = false;
    if (pr->spec) {
        size_t want = pr->spec->len - pr->cur->len;
        return len < want ? len : want;
    }
    if (pr->region_end <= off) /* the used ranges jumped past it: the next one */
        pr->region_end = next_region(pr, off);
    if (pr->region_end - off <= len) {
        size_t n = (size_t)(pr->region_end - off);
        size_t c = cdc_feed(&pr->cdc, data, n, cut);
        *cut = true; /* the chunker's cut, or the region's end */
        return c;
    }
    if (pr->marks) /* never with hints: a volume with hints is not scanned ahead */
        return cdc_feed_marked(&pr->cdc, data, len, pr->marks, (size_t)(data - pr->span), cut);
    return cdc_feed(&pr->cdc, data, len, cut);
}

/* Non-zero data at volume offset off: into chunks, cut where the content says. */
static int feed_data(struct producer *pr, uint64_t off, const uint8_t *data, size_t len, struct asr_error *err)
{
    int rc = flush_zero(pr, err);
    while (rc == ASR_OK && len) {
        if (!pr->cur) {
            if (!(pr->cur = acquire_slot(pr->p, err)))
                return err->code ? err->code : ASR_E_STATE;
            pr->cur->volume_id = pr->volume_id;
            memcpy(pr->cur->vkey, pr->vkey, HINT_KEY_SIZE);
            pr->cur->hinted = pr->cur->cut = pr->cur->patched = false;
            pr->spec = off >= pr->no_spec_until ? hints_at(pr->hints, off) : NULL;
            pr->region_end = next_region(pr, off);
        }
        bool cut;
        size_t take = take_bytes(pr, off, data, len, &cut);
        struct slot *s = pr->cur;
        if ((rc = add_piece_ref(s, off, (uint32_t)take, err)) != ASR_OK)
            break;
        /* The one copy of the data: read buffers are recycled while chunks wait for workers. */
        memcpy(s->content + s->len, data, take);
        s->len += (uint32_t)take;
        off += take;
        data += take;
        len -= take;
        if (pr->spec && s->len == pr->spec->len) {
            rc = end_speculation(pr, err);
        } else if (cut) {
            s->cut = true;
            flush_chunk(pr);
        }
    }
    return rc;
}

static bool block_is_zero(const uint8_t *p, size_t n)
{
    /* Most data blocks differ from zero in their first bytes: check those before the rest. */
    if (n >= 16 && (p[0] | p[7] | p[15]))
        return false;
    static const uint8_t zero[ZERO_BLOCK];
    return memcmp(p, zero, n) == 0;
}

/* len zero bytes at volume offset at, after everything fed before: they end the chunk being
 * filled and join the pending zero run when they continue it. */
static int add_zero_run(struct producer *pr, uint64_t at, uint64_t len, struct asr_error *err)
{
    int rc = end_chunk(pr, err);
    if (rc != ASR_OK)
        return rc;
    if (!(pr->zero_len && pr->zero_offset + pr->zero_len == at)) {
        if ((rc = flush_zero(pr, err)) != ASR_OK)
            return rc;
        pr->zero_offset = at;
    }
    pr->zero_len += len;
    return ASR_OK;
}

/* Splits a piece into zero runs (aligned blocks, at least ZERO_RUN_MIN long, or continuing a
 * pending run) and data. */
static int feed_piece(struct producer *pr, uint64_t off, const uint8_t *data, size_t len, struct asr_error *err)
{
    size_t i = 0, data_start = 0;
    while (i < len) {
        uint64_t at = off + i;
        size_t to_boundary = (size_t)(ZERO_BLOCK - at % ZERO_BLOCK) % ZERO_BLOCK;
        if (to_boundary) { /* unaligned head: data */
            i += to_boundary < len - i ? to_boundary : len - i;
            continue;
        }
        size_t run = 0;
        while (i + run + ZERO_BLOCK <= len && block_is_zero(data + i + run, ZERO_BLOCK))
            run += ZERO_BLOCK;
        bool continues = run && i == data_start && pr->zero_len && pr->zero_offset + pr->zero_len == at;
        if (run >= ZERO_RUN_MIN || continues) {
            int rc = feed_data(pr, off + data_start, data + data_start, i - data_start, err);
            if (rc == ASR_OK)
                rc = add_zero_run(pr, at, run, err);
            if (rc != ASR_OK)
                return rc;
            pr->st->zero_bytes += run;
            i += run;
            data_start = i;
        } else {
            i += run ? run : (ZERO_BLOCK < len - i ? ZERO_BLOCK : len - i);
        }
    }
    return feed_data(pr, off + data_start, data + data_start, len - data_start, err);
}

static int feed_unreadable(struct producer *pr, uint64_t off, uint64_t len, struct asr_error *err)
{
    int rc = flush_zero(pr, err);
    if (rc == ASR_OK)
        rc = end_chunk(pr, err);
    if (rc != ASR_OK)
        return rc;
    struct slot *s = acquire_slot(pr->p, err);
    if (!s)
        return err->code ? err->code : ASR_E_STATE;
    s->kind = KIND_UNREADABLE;
    s->volume_id = pr->volume_id;
    s->run_offset = off;
    s->run_len = len;
    pr->st->unreadable_bytes += len;
    publish(pr->p, s, false);
    return ASR_OK;
}

/* ---- scans ahead of the producer ------------------------------------------------------------ */

/* Called with p->mu held: frees the scans of reads before `request` (all, with UINT64_MAX), taking
 * back queued ones and waiting for running ones, whose buffers the source is about to reuse. */
static void release_scans_before(struct pipeline *p, uint64_t request)
{
    for (size_t i = 0; i < SCAN_AHEAD; i++) {
        struct scan_job *j = &p->scans[i];
        if (j->state == SCAN_EMPTY || j->request >= request)
            continue;
        if (j->state == SCAN_QUEUED)
            p->scans_queued--;
        while (j->state == SCAN_RUNNING)
            pthread_cond_wait(&p->scan_cv, &p->mu);
        j->state = SCAN_EMPTY;
    }
}

static unsigned scan_from(const struct pipeline *p)
{
    return p->opt->scan_from ? p->opt->scan_from : SCAN_FROM;
}

/* The producer reached read `request`: older scans go, and its own scan serves if done or
 * running. Otherwise the producer scans the read itself (four chains scan faster than one rolls;
 * only a read mended at delivery, a short or failed one, is rolled). */
static void enter_request(struct producer *pr, struct source *src, uint64_t request)
{
    struct pipeline *p = pr->p;
    struct scan_job *j = &p->scans[request % SCAN_AHEAD];
    struct span span;
    /* With hints, most bytes are never chunked: scanning them ahead would be work thrown away. */
    bool scans = !pr->hints && scan_from(p) < SCAN_AHEAD, mine = false;
    enum asr_peek ready = scans ? source_peek(src, request, &span) : ASR_PEEK_NEVER;
    pthread_mutex_lock(&p->mu);
    release_scans_before(p, request);
    if (j->state == SCAN_QUEUED && j->request == request) {
        j->state = SCAN_RUNNING;
        p->scans_queued--;
        mine = true;
    } else if (j->state == SCAN_EMPTY && ready == ASR_PEEK_READY) {
        *j = (struct scan_job){SCAN_RUNNING, request, span, j->marks};
        mine = true;
    }
    while (!mine && j->state == SCAN_RUNNING && j->request == request)
        pthread_cond_wait(&p->scan_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (mine) {
        cdc_scan(&p->scan_params, j->span.data, j->span.len, &j->marks);
        pthread_mutex_lock(&p->mu);
        j->state = SCAN_DONE;
        pthread_mutex_unlock(&p->mu);
    }
    bool scanned = j->state == SCAN_DONE && j->request == request;
    pr->in_request = true;
    pr->request = request;
    pr->marks = scanned ? &j->marks : NULL;
    pr->span = scanned ? j->span.data : NULL;
}

/* Hands the reads that have landed ahead of the producer to the workers for scanning, from
 * SCAN_FROM reads ahead on; the producer scans the rest itself when it reaches them. Four chains
 * scan a byte in less time than one rolls it, so a scan anywhere saves the producer time; one on
 * a worker saves it all. Measured on the 4 GiB bench root (2 cores, level 0, loop device with
 * direct I/O, medians of 5-6 paired runs, before the reads moved to huge pages, which took level 0
 * to 2.4-2.8 GB/s with scans on the workers): 1.9 GB/s rolling on the producer (scans of the single
 * chain, from 2 ahead, about the same), 2.1 with four chains and the producer scanning too, from
 * 1 or 2 ahead alike within the device's spread; 32 reads in flight instead of 16 changed nothing
 * measurable. */
static void queue_scans(struct producer *pr, struct source *src)
{
    struct pipeline *p = pr->p;
    if (pr->hints)
        return;
    uint64_t from = scan_from(p);
    if (pr->scan_next < pr->request + from)
        pr->scan_next = pr->request + from;
    while (pr->scan_next < pr->request + SCAN_AHEAD) {
        struct scan_job *j = &p->scans[pr->scan_next % SCAN_AHEAD];
        struct span span;
        enum asr_peek ready = j->state == SCAN_EMPTY ? source_peek(src, pr->scan_next, &span) : ASR_PEEK_NOT_YET;
        if (ready == ASR_PEEK_NOT_YET)
            break;
        if (ready == ASR_PEEK_READY) {
            pthread_mutex_lock(&p->mu);
            *j = (struct scan_job){SCAN_QUEUED, pr->scan_next, span, j->marks};
            p->scans_queued++;
            pthread_cond_signal(&p->work_cv);
            pthread_mutex_unlock(&p->mu);
        }
        pr->scan_next++;
    }
}

/* Before the source moves to another volume or closes: no scan may outlive its buffers. */
static void drain_scans(struct producer *pr)
{
    pthread_mutex_lock(&pr->p->mu);
    release_scans_before(pr->p, UINT64_MAX);
    pthread_mutex_unlock(&pr->p->mu);
    pr->in_request = false;
    pr->marks = NULL;
    pr->span = NULL;
    pr->scan_next = 0;
}

/* ---- layout: disks and volumes into the writer ---------------------------------------------- */

static const struct asr_volume_info *volume_for(const struct asr_backup_source *src, uint32_t number)
{
    for (size_t i = 0; i < src->count; i++)
        if (src->vols[i].kind == ASR_VOLUME_PARTITION && src->vols[i].partition_number == number)
            return &src->vols[i];
    return NULL;
}

/* The disk as recorded: its layout with each partition's capture as selected. */
static int add_disk(struct asr_writer *w, const struct asr_backup_source *src, struct asr_error *err)
{
    struct asr_disk_desc d = *asr_disk_desc(src->disk);
    struct asr_partition_desc *parts = calloc(d.partition_count + 1u, sizeof *parts);
    if (!parts)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < d.partition_count; i++) {
        parts[i] = d.partitions[i];
        const struct asr_volume_info *v = volume_for(src, parts[i].number);
        parts[i].capture = v ? v->capture : ASR_CAPTURE_SKIP;
    }
    d.partitions = parts;
    int rc = asr_writer_add_disk(w, &d, err);
    free(parts);
    return rc;
}

static int add_volume(struct asr_writer *w, uint32_t disk_index, const struct asr_volume_info *v, uint32_t *id,
                      struct asr_error *err)
{
    struct asr_volume_desc d = {
        .disk_index = disk_index,
        .partition_number = v->partition_number,
        .kind = v->kind,
        .disk_offset = v->start_bytes,
        .size_bytes = v->size_bytes,
        /* A used capture's cleared bytes are the filesystem's too, captured as zeros. */
        .used_bytes = asr_volume_capture_bytes(v) +
                      (v->capture == ASR_CAPTURE_USED ? asr_ranges_bytes(&v->map.cleared) : 0),
        .block_size = v->map.block_size,
    };
    snprintf(d.fs_type, sizeof d.fs_type, "%s", v->map.fs_type);
    snprintf(d.fs_uuid, sizeof d.fs_uuid, "%s", v->map.fs_uuid);
    snprintf(d.fs_label, sizeof d.fs_label, "%s", v->map.fs_label);
    return asr_writer_add_volume(w, &d, id, err);
}

/* ---- running it -------------------------------------------------------------------------------- */

/* The ranges a volume's capture reads: the whole volume (in *whole) or its used map. */
static const struct asr_range *capture_ranges(const struct asr_volume_info *v, struct asr_range *whole, size_t *count)
{
    *whole = (struct asr_range){0, v->size_bytes};
    bool full = v->capture == ASR_CAPTURE_FULL;
    *count = full ? 1 : v->map.used.n;
    return full ? whole : v->map.used.v;
}

/* The volume's cleared ranges (asr_usedmap) that start before volume offset `to` and were not
 * fed yet: zero runs, in their place among the pieces read. */
static int feed_cleared(struct producer *pr, const struct asr_ranges *cleared, size_t *next, uint64_t to,
                        struct asr_error *err)
{
    int rc = ASR_OK;
    for (; rc == ASR_OK && *next < cleared->n && cleared->v[*next].offset < to; (*next)++) {
        rc = add_zero_run(pr, cleared->v[*next].offset, cleared->v[*next].length, err);
        pr->st->cleared_bytes += cleared->v[*next].length;
    }
    return rc;
}

static int read_volume(struct producer *pr, struct source *src, const struct asr_volume_info *v,
                       struct asr_backup_progress *prog, struct asr_error *err)
{
    const struct asr_backup_options *opt = pr->p->opt;
    struct asr_range whole;
    size_t count, next_cleared = 0;
    const struct asr_range *ranges = capture_ranges(v, &whole, &count);
    static const struct asr_ranges none;
    const struct asr_ranges *cleared = v->capture == ASR_CAPTURE_USED ? &v->map.cleared : &none;
    int rc = source_start(src, v->start_bytes, ranges, count, err);
    double t_chunk = 0;
    while (rc == ASR_OK) {
        if (opt->cancel && *opt->cancel) {
            rc = asr_fail_public(err, ASR_E_STATE, "interrupted");
            break;
        }
        struct piece piece;
        if ((rc = source_next(src, &piece, err)) != ASR_OK || piece.len == 0)
            break;
        double t0 = thread_seconds();
        if (!pr->in_request || piece.request != pr->request)
            enter_request(pr, src, piece.request);
        queue_scans(pr, src);
        uint64_t off = piece.disk_offset - v->start_bytes;
        rc = feed_cleared(pr, cleared, &next_cleared, off, err);
        if (rc == ASR_OK)
            rc = piece.unreadable ? feed_unreadable(pr, off, piece.len, err)
                                  : feed_piece(pr, off, piece.data, piece.len, err);
        t_chunk += thread_seconds() - t0;
        pr->st->read_bytes += piece.len;
        prog->done += piece.len;
        if (opt->progress)
            opt->progress(prog, opt->progress_ctx);
    }
    drain_scans(pr);
    if (rc == ASR_OK)
        rc = feed_cleared(pr, cleared, &next_cleared, UINT64_MAX, err);
    if (rc == ASR_OK && (rc = flush_zero(pr, err)) == ASR_OK)
        rc = end_chunk(pr, err);
    pr->st->chunk_seconds += t_chunk;
    return rc;
}

static int open_source(const struct asr_backup_source *bs, bool ignore_errors, struct source **out,
                       struct asr_error *err)
{
    const struct asr_disk_desc *d = asr_disk_desc(bs->disk);
    struct source_config cfg = {
        .path = asr_disk_path(bs->disk),
        .fd = asr_disk_fd(bs->disk),
        .disk_size = d->size_bytes,
        .probe_unit = d->logical_sector,
        .ignore_read_errors = ignore_errors,
    };
    return source_open(&cfg, out, err);
}

int asr_backup_read_only(const struct asr_backup_source *src, size_t n, uint64_t *bytes, double *seconds,
                         struct asr_error *err)
{
    *bytes = 0;
    double t0 = asr_now();
    int rc = ASR_OK;
    for (size_t i = 0; i < n && rc == ASR_OK; i++) {
        struct source *source;
        if ((rc = open_source(&src[i], false, &source, err)) != ASR_OK)
            break;
        for (size_t k = 0; k < src[i].count && rc == ASR_OK; k++) {
            const struct asr_volume_info *v = &src[i].vols[k];
            if (v->capture == ASR_CAPTURE_SKIP)
                continue;
            struct asr_range whole;
            size_t count;
            const struct asr_range *ranges = capture_ranges(v, &whole, &count);
            rc = source_start(source, v->start_bytes, ranges, count, err);
            struct piece piece = {.len = 1};
            while (rc == ASR_OK && piece.len && (rc = source_next(source, &piece, err)) == ASR_OK)
                *bytes += piece.len;
        }
        source_close(source);
    }
    *seconds = asr_now() - t0;
    return rc;
}

/* What identifies a volume from one backup to the next, for its hints: its disk's identity and
 * size, where it lies on it, and its filesystem's UUID. */
static void volume_key(const struct asr_backup_source *src, const struct asr_volume_info *v,
                       uint8_t key[HINT_KEY_SIZE])
{
    const struct asr_disk_desc *d = asr_disk_desc(src->disk);
    uint8_t b[16 + 8 + 4 + 1 + 8 + 8 + sizeof v->map.fs_uuid] = {0};
    memcpy(b, d->disk_id, 16);
    put_le64(b + 16, d->size_bytes);
    put_le32(b + 24, v->partition_number);
    b[28] = v->kind;
    put_le64(b + 29, v->start_bytes);
    put_le64(b + 37, v->size_bytes);
    memcpy(b + 45, v->map.fs_uuid, strnlen(v->map.fs_uuid, sizeof v->map.fs_uuid));
    struct asr_hash128 h = asr_content_hash(0, b, sizeof b);
    put_le64(key, h.lo);
    put_le64(key + 8, h.hi);
}

static int produce(struct producer *pr, const struct asr_backup_source *src, size_t n, const uint32_t *ids,
                   struct asr_error *err)
{
    const struct asr_backup_options *opt = pr->p->opt;
    struct asr_backup_progress prog = {0};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < src[i].count; k++)
            if (src[i].vols[k].capture != ASR_CAPTURE_SKIP) {
                prog.total += asr_volume_capture_bytes(&src[i].vols[k]);
                prog.volumes++;
            }
    pr->st->direct_io = true;
    size_t vid = 0;
    int rc = ASR_OK;
    for (size_t i = 0; i < n && rc == ASR_OK; i++) {
        struct source *source;
        if ((rc = open_source(&src[i], opt->ignore_read_errors, &source, err)) != ASR_OK)
            break;
        pr->st->direct_io &= source_direct(source);
        for (size_t k = 0; k < src[i].count && rc == ASR_OK; k++) {
            struct asr_volume_info *v = &src[i].vols[k];
            if (v->capture == ASR_CAPTURE_SKIP)
                continue;
            pr->volume_id = ids[vid++];
            volume_key(&src[i], v, pr->vkey);
            pr->hints = hints_for_volume(pr->p->hints, pr->vkey);
            pr->no_spec_until = 0;
            prog.volume++;
            prog.info = v;
            if (opt->before_volume && (rc = opt->before_volume(v, opt->hook_ctx, err)) != ASR_OK)
                break;
            rc = read_volume(pr, source, v, &prog, err);
            if (opt->after_volume)
                opt->after_volume(v, opt->hook_ctx);
        }
        pr->st->read_wait_seconds += source_wait_ns(source) / 1e9;
        source_close(source);
    }
    return rc;
}

static int pipeline_init(struct pipeline *p, struct asr_writer *w, const struct asr_backup_options *opt,
                         unsigned threads, struct asr_error *err)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->ready_cv, NULL);
    pthread_cond_init(&p->free_cv, NULL);
    pthread_cond_init(&p->scan_cv, NULL);
    pthread_mutex_init(&p->dedup_mu, NULL);
    p->w = w;
    p->opt = opt;
    p->seed = asr_writer_hash_seed(w);
    p->level = opt->level;
    p->max_chunk = asr_backup_max_chunk(opt->avg_chunk);
    p->hints = opt->session ? opt->hints : NULL;
    p->hint_seed = p->hints ? hints_seed(p->hints) : 0;
    /* Enough slots for every worker to hold one while the writer and producer hold others. */
    p->nslots = 2 * (size_t)threads + 6;
    p->slots = calloc(p->nslots, sizeof *p->slots);
    p->queue = calloc(p->nslots, sizeof *p->queue);
    if (!p->slots || !p->queue || dedup_new(&p->dedup) != ASR_OK)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the pipeline");
    for (size_t i = 0; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        s->cap = 64;
        s->content = malloc(p->max_chunk);
        s->out = malloc(asr_chunk_bound(p->max_chunk));
        s->pieces = malloc(s->cap * sizeof *s->pieces);
        if (p->hints) { /* a chunk's blocks, and room for a patch of it */
            s->blocks = malloc(hint_block_count(HINT_BLOCK - 1, p->max_chunk) * sizeof *s->blocks);
            s->patch = malloc(p->max_chunk);
        }
        if (!s->content || !s->out || !s->pieces || (p->hints && (!s->blocks || !s->patch)))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory for chunk buffers");
    }
    for (size_t i = 0; i < SCAN_AHEAD; i++) {
        struct cdc_mark *v = calloc(SCAN_MARKS, sizeof *v);
        p->scans[i].marks = (struct cdc_marks){.v = v, .cap = SCAN_MARKS};
        if (!p->scans[i].marks.v)
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory for scans");
    }
    return ASR_OK;
}

static void pipeline_free(struct pipeline *p)
{
    for (size_t i = 0; p->slots && i < p->nslots; i++) {
        free(p->slots[i].content);
        free(p->slots[i].out);
        free(p->slots[i].pieces);
        free(p->slots[i].blocks);
        free(p->slots[i].patch);
    }
    free(p->slots);
    free(p->queue);
    for (size_t i = 0; i < SCAN_AHEAD; i++)
        free(p->scans[i].marks.v);
    dedup_free(p->dedup);
    pthread_mutex_destroy(&p->dedup_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->ready_cv);
    pthread_cond_destroy(&p->free_cv);
    pthread_cond_destroy(&p->scan_cv);
}

static int check_options(const struct asr_backup_options *opt, struct asr_writer *w, unsigned *threads,
                         struct asr_error *err)
{
    uint32_t avg = opt->avg_chunk ? opt->avg_chunk : CDC_DEFAULT_AVG;
    if (avg < 4096 || (avg & (avg - 1)) || asr_backup_max_chunk(avg) > ASR_MAX_CHUNK_SIZE)
        return asr_fail_public(err, ASR_E_ARG, "average chunk size %u: a power of two from 4 KiB to %u KiB", avg,
                               ASR_MAX_CHUNK_SIZE / 4 / 1024);
    if (asr_backup_max_chunk(avg) > asr_writer_max_chunk_size(w))
        return asr_fail_public(err, ASR_E_ARG, "chunks up to %u bytes exceed the image's %u-byte limit",
                               asr_backup_max_chunk(avg), asr_writer_max_chunk_size(w));
    if (opt->hints && hints_avg_chunk(opt->hints) != avg)
        return asr_fail_public(err, ASR_E_ARG, "re-backup hints made for %u-byte chunks, not %u",
                               hints_avg_chunk(opt->hints), avg);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *threads = opt->threads ? opt->threads : (cores > 0 ? (unsigned)cores : 1);
    if (*threads > MAX_THREADS)
        return asr_fail_public(err, ASR_E_ARG, "%u threads: at most %u", *threads, MAX_THREADS);
    return ASR_OK;
}

static int add_layout(struct asr_writer *w, const struct asr_backup_source *src, size_t n,
                      const struct asr_backup_options *opt, uint32_t **ids, struct asr_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += src[i].count;
    *ids = calloc(total + 1, sizeof **ids);
    if (!*ids)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    int rc = ASR_OK;
    for (size_t i = 0; i < n && rc == ASR_OK; i++)
        rc = add_disk(w, &src[i], err);
    for (uint32_t i = 0; i < opt->stack_count && rc == ASR_OK; i++)
        rc = asr_writer_add_stack(w, &opt->stacks[i], err);
    size_t k = 0;
    for (size_t i = 0; i < n && rc == ASR_OK; i++)
        for (size_t j = 0; j < src[i].count && rc == ASR_OK; j++)
            if (src[i].vols[j].capture != ASR_CAPTURE_SKIP)
                rc = add_volume(w, (uint32_t)i, &src[i].vols[j], &(*ids)[k++], err);
    return rc;
}

/* A selected volume whose filesystem could not be probed or mapped for a read error stops the
 * backup before anything is written, naming what could not be read and where, unless read errors
 * are recorded: it is then captured whole, its unreadable sectors recorded as such. */
static int check_read_errors(const struct asr_backup_source *src, size_t n, const struct asr_backup_options *opt,
                             struct asr_error *err)
{
    for (size_t i = 0; i < n && !opt->ignore_read_errors; i++)
        for (size_t k = 0; k < src[i].count; k++) {
            const struct asr_volume_info *v = &src[i].vols[k];
            if (v->capture != ASR_CAPTURE_SKIP && v->read_error[0])
                return asr_fail_public(err, ASR_E_IO, "volume %u of %s: %s (--ignore-read-errors captures it whole)",
                                       v->partition_number, asr_disk_path(src[i].disk), v->read_error);
        }
    return ASR_OK;
}

int asr_backup_run(struct asr_writer *w, const struct asr_backup_source *src, size_t n,
                   const struct asr_backup_options *opt, struct asr_backup_stats *st, struct asr_error *err)
{
    *st = (struct asr_backup_stats){0};
    unsigned threads = 1;
    uint32_t *ids = NULL;
    int rc = check_read_errors(src, n, opt, err);
    if (rc == ASR_OK)
        rc = check_options(opt, w, &threads, err);
    if (rc == ASR_OK)
        rc = add_layout(w, src, n, opt, &ids, err);
    if (rc != ASR_OK) {
        free(ids);
        return rc;
    }
    struct pipeline p = {0};
    struct producer pr = {.p = &p, .st = st};
    pthread_t writer, workers[MAX_THREADS];
    unsigned started = 0;
    bool writer_started = false;
    double t0 = asr_now();
    rc = pipeline_init(&p, w, opt, threads, err);
    if (rc == ASR_OK && p.hints && !(pr.scratch = malloc(p.max_chunk)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory for chunk buffers");
    if (rc == ASR_OK) {
        cdc_init(&pr.cdc, opt->avg_chunk ? opt->avg_chunk : CDC_DEFAULT_AVG, p.max_chunk);
        p.scan_params = pr.cdc;
        writer_started = pthread_create(&writer, NULL, writer_main, &p) == 0;
        while (writer_started && started < threads && pthread_create(&workers[started], NULL, worker_main, &p) == 0)
            started++;
        if (!writer_started || started < threads)
            rc = asr_fail_public(err, ASR_E_NOMEM, "cannot start pipeline threads");
    }
    if (rc == ASR_OK)
        rc = produce(&pr, src, n, ids, err);
    if (rc != ASR_OK && !p.failed)
        pipeline_fail(&p, err); /* unwind the other stages */
    pthread_mutex_lock(&p.mu);
    p.closing = true;
    pthread_cond_broadcast(&p.work_cv);
    pthread_cond_broadcast(&p.ready_cv);
    pthread_mutex_unlock(&p.mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i], NULL);
    if (writer_started)
        pthread_join(writer, NULL);
    if (rc == ASR_OK && p.failed) { /* a worker or the writer failed first */
        *err = p.fail_err;
        rc = err->code ? err->code : ASR_E_IO;
    }
    for (size_t i = 0; i < p.nslots && p.slots; i++)
        if (p.slots[i].state != SLOT_FREE && rc == ASR_OK)
            rc = asr_fail_public(err, ASR_E_STATE, "pipeline ended with chunks unwritten");
    st->threads = threads;
    st->seconds = asr_now() - t0;
    st->hash_seconds = p.hash_seconds;
    st->scan_seconds = p.scan_seconds;
    st->scans = p.scans_done;
    st->compress_seconds = p.compress_seconds;
    st->write_seconds = p.write_seconds;
    st->stored_bytes = p.stored_bytes;
    st->new_bytes = p.new_bytes;
    st->dedup_bytes = p.dedup_bytes;
    st->chunks = p.chunks;
    st->dedup_hits = p.dedup_hits;
    st->store_bytes = p.store_bytes;
    st->dedup_index_bytes = p.dedup ? dedup_memory(p.dedup) : 0;
    pipeline_free(&p);
    free(pr.scratch);
    free(pr.left);
    free(ids);
    return rc;
}
