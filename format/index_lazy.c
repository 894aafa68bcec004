/* The index read in place, for a lazy reader (asr_reader_open_lazy): one pass at open checks the
 * whole index as the decoder in index.c does (the same rules, the envelope's and the footer's
 * checksums) but keeps only what is small: the volume statistics and, per volume, the offset of
 * every LAZY_BLOCK-th extent. Chunk entries and extents are read back from the image a block at a
 * time when asked for, checked again (the file may have changed since the pass), and kept in a
 * small cache. An image's index is 32 bytes a chunk and an extent (about 256 MiB for 1 TiB of
 * 256 KiB chunks): the eager reader holds all of it, twice while decoding; this holds under
 * 3 MiB whatever the image's size. */
#include "internal.h"
#include "le.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"

#define LAZY_BLOCK 1024u          /* entries per block: 32 KiB in the image */
#define LAZY_CACHED 32u           /* blocks kept of each kind */
#define PASS_BUFFER (1u << 20)    /* the pass reads the index this much at a time */

/* A block is LAZY_BLOCK entries of either kind, read with one size. */
_Static_assert(ASR_CHUNK_ENTRY_SIZE == ASR_EXTENT_SIZE, "chunk entries and extents are read alike");

struct lazy_block {
    bool full;
    uint32_t volume; /* extent blocks; UINT32_MAX for chunk entry blocks */
    uint64_t block;
    uint64_t used;   /* clock at its last use */
    uint32_t n;
    union {
        struct fmt_chunk_entry chunks[LAZY_BLOCK];
        struct asr_extent extents[LAZY_BLOCK];
    } e;
};

struct lazy_volume {
    uint64_t first;       /* logical offset of its first extent entry */
    uint64_t count;
    uint64_t size;        /* the volume's size, for the checks */
    uint64_t *block_start; /* offset of the first extent of each block */
};

struct fmt_lazy_index {
    struct fmt_partset *ps;
    struct fmt_index_bounds bounds;
    uint64_t chunks_at; /* logical offset of chunk entry 0 */
    uint64_t chunk_count;
    uint32_t volume_count;
    struct lazy_volume *volumes;
    pthread_mutex_t mu;
    uint64_t clock;
    struct lazy_block *cache; /* LAZY_CACHED of them */
};

/* ---- the pass ------------------------------------------------------------------------------- */

/* The index content read front to back through one buffer, hashed on the way. */
struct pass {
    struct fmt_partset *ps;
    uint64_t next, end; /* logical offsets: what to read next, the content's end */
    uint8_t *buf;
    size_t have, pos;
    XXH3_state_t *content, *section;
    struct asr_error *err;
};

static int refill(struct pass *p)
{
    memmove(p->buf, p->buf + p->pos, p->have - p->pos);
    p->have -= p->pos;
    p->pos = 0;
    uint64_t want = p->end - p->next < PASS_BUFFER - p->have ? p->end - p->next : PASS_BUFFER - p->have;
    int rc = fmt_partset_read(p->ps, p->next, p->buf + p->have, (size_t)want, p->err);
    if (rc)
        return rc;
    XXH3_64bits_update(p->content, p->buf + p->have, (size_t)want);
    XXH3_64bits_update(p->section, p->buf + p->have, (size_t)want);
    p->have += (size_t)want;
    p->next += want;
    return ASR_OK;
}

/* The next n bytes (n at most 64), or NULL at the content's end; a read error sets *rc. */
static const uint8_t *take(struct pass *p, size_t n, int *rc)
{
    if (p->have - p->pos < n && p->next < p->end && (*rc = refill(p)))
        return NULL;
    if (p->have - p->pos < n)
        return NULL;
    p->pos += n;
    return p->buf + p->pos - n;
}

static uint64_t left(const struct pass *p) { return (p->end - p->next) + (p->have - p->pos); }

/* In the pass, an extent's chunk is known only by its number: its content length is bounded by
 * the image's largest chunk here, and checked exactly when the chunk is read. */
static uint32_t chunk_len_bound(const void *ctx, uint64_t id)
{
    (void)id;
    return *(const uint32_t *)ctx;
}

static int pass_chunks(struct pass *p, struct fmt_lazy_index *li, uint64_t sums[2], struct asr_error *err)
{
    int rc = fmt_chunk_count_check(li->chunk_count, left(p), &li->bounds, err);
    uint64_t next_free = li->bounds.data_start;
    for (uint64_t i = 0; !rc && i < li->chunk_count; i++) {
        const uint8_t *raw = take(p, ASR_CHUNK_ENTRY_SIZE, &rc);
        if (!raw)
            return rc ? rc : fmt_fail(err, ASR_E_CORRUPT, "index: truncated chunk table");
        struct fmt_chunk_entry e;
        fmt_chunk_entry_decode(raw, &e);
        rc = fmt_chunk_entry_check(&e, i, &li->bounds, &next_free, err);
        sums[0] += e.stored_len;
        sums[1] += e.content_len;
    }
    return rc;
}

static int pass_volume(struct pass *p, struct fmt_lazy_index *li, uint32_t v, struct asr_volume_stats *s,
                       struct asr_error *err)
{
    int rc = ASR_OK;
    const uint8_t *raw = take(p, ASR_VOLUME_ENTRY_SIZE, &rc);
    if (!raw)
        return rc ? rc : fmt_fail(err, ASR_E_CORRUPT, "index: truncated volume entry %u", v);
    if ((rc = fmt_volume_entry_decode(raw, v, left(p), s, err)))
        return rc;
    struct lazy_volume *lv = &li->volumes[v];
    lv->first = p->next - (p->have - p->pos);
    lv->count = s->extent_count;
    if (!(lv->block_start = malloc((s->extent_count / LAZY_BLOCK + 1) * sizeof *lv->block_start)))
        return fmt_fail(err, ASR_E_NOMEM, "index: out of memory");
    struct fmt_volume_walk w = {.volume = v, .volume_size = lv->size, .chunk_count = li->chunk_count,
                                .chunk_len = chunk_len_bound, .chunk_ctx = &li->bounds.max_chunk};
    for (uint64_t i = 0; i < s->extent_count; i++) {
        struct asr_extent e;
        if (!(raw = take(p, ASR_EXTENT_SIZE, &rc)))
            return rc ? rc : fmt_fail(err, ASR_E_CORRUPT, "index: truncated extents of volume %u", v);
        if ((rc = fmt_volume_extent_next(&w, raw, &e, err)))
            return rc;
        if (i % LAZY_BLOCK == 0)
            lv->block_start[i / LAZY_BLOCK] = e.offset;
    }
    return fmt_volume_walk_end(&w, s, err);
}

/* The index's rules over the content, as fmt_index_decode applies them. */
static int pass_content(struct pass *p, struct fmt_lazy_index *li, const struct fmt_layout *layout,
                        struct fmt_index *ix, uint64_t sums[2], struct asr_error *err)
{
    int rc = ASR_OK;
    const uint8_t *fixed = take(p, ASR_INDEX_FIXED, &rc);
    if (!fixed || li->bounds.data_start > li->bounds.index_offset)
        return rc ? rc : fmt_fail(err, ASR_E_CORRUPT, "index: too short");
    ix->volume_count = get_le32(fixed);
    ix->chunk_count = li->chunk_count = get_le64(fixed + 8);
    ix->stream_hash = fmt_hash128_get(fixed + 16);
    if (get_le32(fixed + 4) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "index: reserved bytes not zero");
    if (ix->volume_count != layout->volume_count)
        return fmt_fail(err, ASR_E_CORRUPT, "index: %u volumes, volume table has %u", ix->volume_count,
                        layout->volume_count);
    li->chunks_at = p->next - (p->have - p->pos);
    if ((rc = pass_chunks(p, li, sums, err)))
        return rc;
    li->volume_count = ix->volume_count;
    li->volumes = calloc(ix->volume_count + 1u, sizeof *li->volumes);
    ix->stats = calloc(ix->volume_count + 1u, sizeof *ix->stats);
    if (!li->volumes || !ix->stats)
        return fmt_fail(err, ASR_E_NOMEM, "index: out of memory");
    for (uint32_t v = 0; v < ix->volume_count; v++) {
        li->volumes[v].size = layout->volumes[v].size_bytes;
        if ((rc = pass_volume(p, li, v, &ix->stats[v], err)))
            return rc;
    }
    if (left(p))
        return fmt_fail(err, ASR_E_CORRUPT, "index: %llu stray bytes at its end", (unsigned long long)left(p));
    return ASR_OK;
}

/* What is left of the content after a rule failed is still read, for the checksums: a damaged
 * index is reported as one, as the eager reader reports it. */
static int pass_drain(struct pass *p)
{
    int rc = ASR_OK;
    p->pos = p->have;
    while (!rc && p->next < p->end)
        if (!(rc = refill(p)))
            p->pos = p->have;
    return rc;
}

void fmt_lazy_free(struct fmt_lazy_index *li)
{
    if (!li)
        return;
    for (uint32_t v = 0; li->volumes && v < li->volume_count; v++)
        free(li->volumes[v].block_start);
    free(li->volumes);
    free(li->cache);
    pthread_mutex_destroy(&li->mu);
    free(li);
}

int fmt_lazy_open(const struct fmt_lazy_args *a, struct fmt_index *ix, uint64_t sums[2], struct fmt_lazy_index **out,
                  struct asr_error *err)
{
    *out = NULL;
    memset(ix, 0, sizeof *ix);
    sums[0] = sums[1] = 0;
    struct fmt_lazy_index *li = calloc(1, sizeof *li);
    struct pass p = {.ps = a->ps, .next = a->content_at, .end = a->content_at + a->header->content_len, .err = err};
    if (li) {
        li->ps = a->ps;
        li->bounds = a->bounds;
        pthread_mutex_init(&li->mu, NULL);
        li->cache = calloc(LAZY_CACHED, sizeof *li->cache);
    }
    p.buf = malloc(PASS_BUFFER);
    p.content = XXH3_createState();
    p.section = XXH3_createState();
    int rc = li && li->cache && p.buf && p.content && p.section ? ASR_OK
                                                               : fmt_fail(err, ASR_E_NOMEM, "out of memory for the index");
    if (!rc) {
        XXH3_64bits_reset(p.content);
        XXH3_64bits_reset(p.section);
        XXH3_64bits_update(p.section, a->envelope, ASR_SECTION_HEADER_SIZE);
        fmt_partset_prefetch(a->ps, a->content_at, a->header->content_len);
        struct asr_error why = {0};
        int bad = pass_content(&p, li, a->layout, ix, sums, &why);
        rc = pass_drain(&p);
        if (!rc)
            rc = fmt_scan_content_hash(a->sc, a->header, XXH3_64bits_digest(p.content), a->content_at - ASR_SECTION_HEADER_SIZE);
        if (!rc && XXH3_64bits_digest(p.section) != a->index_hash)
            rc = fmt_fail(err, ASR_E_CORRUPT, "index does not match the footer's checksum of it");
        if (!rc && bad)
            rc = fmt_fail(err, bad, "%s", why.msg);
    }
    free(p.buf);
    XXH3_freeState(p.content);
    XXH3_freeState(p.section);
    if (rc) {
        fmt_lazy_free(li);
        fmt_index_free(ix);
        return rc;
    }
    *out = li;
    return ASR_OK;
}

/* ---- lookups -------------------------------------------------------------------------------- */

/* The cached block (volume, block), read and checked when missing (lock held). */
static int block(struct fmt_lazy_index *li, uint32_t volume, uint64_t b, struct lazy_block **out,
                 struct asr_error *err)
{
    struct lazy_block *victim = &li->cache[0];
    for (unsigned i = 0; i < LAZY_CACHED; i++) {
        struct lazy_block *k = &li->cache[i];
        if (k->full && k->volume == volume && k->block == b) {
            k->used = ++li->clock;
            *out = k;
            return ASR_OK;
        }
        if (!k->full || (victim->full && k->used < victim->used))
            victim = k;
    }
    bool chunks = volume == UINT32_MAX;
    uint64_t count = chunks ? li->chunk_count : li->volumes[volume].count;
    uint64_t at = chunks ? li->chunks_at : li->volumes[volume].first;
    uint32_t n = count - b * LAZY_BLOCK < LAZY_BLOCK ? (uint32_t)(count - b * LAZY_BLOCK) : LAZY_BLOCK;
    uint8_t raw[LAZY_BLOCK * ASR_EXTENT_SIZE];
    victim->full = false;
    int rc = fmt_partset_read(li->ps, at + b * LAZY_BLOCK * ASR_EXTENT_SIZE, raw, (size_t)n * ASR_EXTENT_SIZE, err);
    struct fmt_volume_walk w = {.volume = volume, .volume_size = chunks ? 0 : li->volumes[volume].size,
                                .chunk_count = li->chunk_count, .chunk_len = chunk_len_bound,
                                .chunk_ctx = &li->bounds.max_chunk, .done = b * LAZY_BLOCK};
    for (uint32_t i = 0; !rc && i < n; i++) {
        const uint8_t *r = raw + (size_t)i * ASR_EXTENT_SIZE;
        if (chunks) {
            uint64_t from = li->bounds.data_start; /* each entry alone: the pass saw their order */
            fmt_chunk_entry_decode(r, &victim->e.chunks[i]);
            rc = fmt_chunk_entry_check(&victim->e.chunks[i], b * LAZY_BLOCK + i, &li->bounds, &from, err);
        } else {
            rc = fmt_volume_extent_next(&w, r, &victim->e.extents[i], err);
        }
    }
    if (!rc && !chunks && li->volumes[volume].block_start[b] != victim->e.extents[0].offset)
        rc = fmt_fail(err, ASR_E_CORRUPT, "index: volume %u changed since the image was opened", volume);
    if (rc)
        return rc;
    victim->full = true;
    victim->volume = volume;
    victim->block = b;
    victim->used = ++li->clock;
    victim->n = n;
    *out = victim;
    return ASR_OK;
}

int fmt_lazy_chunk(struct fmt_lazy_index *li, uint64_t id, struct fmt_chunk_entry *e, struct asr_error *err)
{
    if (id >= li->chunk_count)
        return fmt_fail(err, ASR_E_ARG, "chunk %llu does not exist", (unsigned long long)id);
    pthread_mutex_lock(&li->mu);
    struct lazy_block *k;
    int rc = block(li, UINT32_MAX, id / LAZY_BLOCK, &k, err);
    if (!rc)
        *e = k->e.chunks[id % LAZY_BLOCK];
    pthread_mutex_unlock(&li->mu);
    return rc;
}

/* The block holding the first extent of v that ends past off: the last block starting at or
 * before off, or the one after it when that block ends before off. */
static uint64_t block_for(const struct lazy_volume *lv, uint64_t off)
{
    uint64_t lo = 0, hi = (lv->count + LAZY_BLOCK - 1) / LAZY_BLOCK;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (lv->block_start[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int fmt_lazy_extents(struct fmt_lazy_index *li, uint32_t v, uint64_t off, struct asr_extent *out, size_t max,
                     size_t *n, struct asr_error *err)
{
    *n = 0;
    if (v >= li->volume_count)
        return fmt_fail(err, ASR_E_ARG, "volume %u does not exist", v);
    const struct lazy_volume *lv = &li->volumes[v];
    if (!lv->count || !max)
        return ASR_OK;
    pthread_mutex_lock(&li->mu);
    uint64_t b = block_for(lv, off), blocks = (lv->count + LAZY_BLOCK - 1) / LAZY_BLOCK;
    int rc = ASR_OK;
    bool started = false;
    while (!rc && *n < max && b < blocks) {
        struct lazy_block *k;
        if ((rc = block(li, v, b, &k, err)))
            break;
        uint32_t i = 0;
        if (!started)
            i = (uint32_t)asr_extents_first_after(k->e.extents, k->n, off);
        started = started || i < k->n;
        for (; i < k->n && *n < max; i++)
            out[(*n)++] = k->e.extents[i];
        b++;
    }
    pthread_mutex_unlock(&li->mu);
    return rc;
}
