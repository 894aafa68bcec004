/* The index at the end of an image (chunk table, per-volume extent maps and statistics), the
 * inline extent records (AEXT), and the definition of a volume's content hash. The decoder
 * checks every cross-reference so the reader never follows an offset outside the image. */
#include "internal.h"
#include "le.h"

#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"

static bool extent_is_data(const struct asr_extent *e)
{
    return e->ref < ASR_REF_UNREADABLE;
}

void fmt_volume_hash_extent(void *xxh3_state, const struct asr_extent *e, const void *content)
{
    uint8_t d[24];
    put_le64(d, e->offset);
    put_le64(d + 8, e->length);
    put_le64(d + 16, e->ref == ASR_REF_ZERO ? 1 : e->ref == ASR_REF_UNREADABLE ? 2 : 0);
    XXH3_128bits_update(xxh3_state, d, sizeof d);
    if (extent_is_data(e))
        XXH3_128bits_update(xxh3_state, content, (size_t)e->length);
}

struct asr_volume_hasher {
    XXH3_state_t *state;
};

int asr_volume_hasher_new(uint64_t seed, struct asr_volume_hasher **out, struct asr_error *err)
{
    struct asr_volume_hasher *h = calloc(1, sizeof *h);
    if (h && !(h->state = XXH3_createState())) {
        free(h);
        h = NULL;
    }
    *out = h;
    if (!h)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory for a volume hash");
    XXH3_128bits_reset_withSeed(h->state, seed);
    return ASR_OK;
}

void asr_volume_hasher_free(struct asr_volume_hasher *h)
{
    if (h)
        XXH3_freeState(h->state);
    free(h);
}

void asr_volume_hasher_add(struct asr_volume_hasher *h, const struct asr_extent *e, const void *content)
{
    fmt_volume_hash_extent(h->state, e, content);
}

struct asr_hash128 asr_volume_hasher_digest(const struct asr_volume_hasher *h)
{
    XXH128_hash_t d = XXH3_128bits_digest(h->state);
    return (struct asr_hash128){d.low64, d.high64};
}

int fmt_index_encode(const struct fmt_index *ix, struct fmt_buf *out, struct asr_error *err)
{
    uint8_t *b = fmt_buf_extend(out, ASR_INDEX_FIXED);
    if (b) {
        put_le32(b + 0, ix->volume_count);
        put_le64(b + 8, ix->chunk_count);
        fmt_hash128_put(b + 16, ix->stream_hash);
    }
    for (uint64_t i = 0; i < ix->chunk_count && b; i++)
        if ((b = fmt_buf_extend(out, ASR_CHUNK_ENTRY_SIZE)))
            fmt_chunk_entry_encode(&ix->chunks[i], b);
    for (uint32_t v = 0; v < ix->volume_count && b; v++) {
        const struct asr_volume_stats *s = &ix->stats[v];
        if (!(b = fmt_buf_extend(out, ASR_VOLUME_ENTRY_SIZE)))
            break;
        put_le32(b + 0, v);
        put_le64(b + 8, s->extent_count);
        fmt_hash128_put(b + 16, s->content_hash);
        put_le64(b + 32, s->data_bytes);
        put_le64(b + 40, s->zero_bytes);
        put_le64(b + 48, s->unreadable_bytes);
        for (uint64_t i = 0; i < s->extent_count && b; i++)
            if ((b = fmt_buf_extend(out, ASR_EXTENT_SIZE)))
                fmt_extent_encode(&ix->extents[v][i], b);
    }
    if (out->failed)
        return fmt_fail(err, ASR_E_NOMEM, "index: out of memory");
    if (out->len > ASR_MAX_INDEX_SIZE)
        return fmt_fail(err, ASR_E_LIMIT, "index: %zu bytes exceed the limit", out->len);
    return ASR_OK;
}

/* An image's chunk records tile its data in id order; a snapshot's chunks are all named by its
 * one store id section at data_start, 32 bytes each. */
int fmt_chunk_entry_check(const struct fmt_chunk_entry *e, uint64_t i, const struct fmt_index_bounds *b,
                          uint64_t *next_free, struct asr_error *err)
{
    if (e->content_len == 0 || e->content_len > b->max_chunk || e->stored_len == 0 || e->stored_len > e->content_len)
        return fmt_fail(err, ASR_E_CORRUPT, "index: chunk %llu sizes out of range", (unsigned long long)i);
    if (b->external) {
        if (e->offset != b->data_start)
            return fmt_fail(err, ASR_E_CORRUPT, "index: chunk %llu offset %llu is not the store id section's (%llu)",
                            (unsigned long long)i, (unsigned long long)e->offset, (unsigned long long)b->data_start);
        return ASR_OK;
    }
    if (e->offset < *next_free || e->offset > b->index_offset ||
        b->index_offset - e->offset < ASR_CHUNK_HEADER_SIZE + (uint64_t)e->stored_len)
        return fmt_fail(err, ASR_E_CORRUPT, "index: chunk %llu offset %llu out of order or range",
                        (unsigned long long)i, (unsigned long long)e->offset);
    *next_free = e->offset + ASR_CHUNK_HEADER_SIZE + e->stored_len;
    return ASR_OK;
}

int fmt_chunk_count_check(uint64_t chunk_count, uint64_t bytes_left, const struct fmt_index_bounds *b,
                          struct asr_error *err)
{
    uint64_t least = b->external ? ASR_STORE_ID_SIZE : ASR_CHUNK_HEADER_SIZE + 1;
    if (chunk_count > bytes_left / ASR_CHUNK_ENTRY_SIZE || chunk_count > (b->index_offset - b->data_start) / least)
        return fmt_fail(err, ASR_E_CORRUPT, "index: chunk count %llu impossible for the image size",
                        (unsigned long long)chunk_count);
    return ASR_OK;
}

static int decode_chunk_table(struct fmt_cursor *c, const struct fmt_index_bounds *b, struct fmt_index *ix,
                              struct asr_error *err)
{
    int rc = fmt_chunk_count_check(ix->chunk_count, c->left, b, err);
    if (rc)
        return rc;
    if (!(ix->chunks = malloc((ix->chunk_count + 1) * sizeof *ix->chunks)))
        return fmt_fail(err, ASR_E_NOMEM, "index: out of memory for %llu chunks",
                        (unsigned long long)ix->chunk_count);
    uint64_t next_free = b->data_start;
    for (uint64_t i = 0; i < ix->chunk_count; i++) {
        fmt_chunk_entry_decode(fmt_cursor_take(c, ASR_CHUNK_ENTRY_SIZE), &ix->chunks[i]);
        if ((rc = fmt_chunk_entry_check(&ix->chunks[i], i, b, &next_free, err)))
            return rc;
    }
    return ASR_OK;
}

uint64_t asr_extents_first_after(const struct asr_extent *ext, uint64_t n, uint64_t off)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ext[mid].offset + ext[mid].length <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint32_t index_chunk_len(const void *chunks, uint64_t id)
{
    return ((const struct fmt_chunk_entry *)chunks)[id].content_len;
}

int fmt_extent_check(const struct asr_extent *e, uint64_t prev_end, uint64_t volume_size, uint64_t chunk_count,
                     uint32_t (*chunk_len)(const void *ctx, uint64_t id), const void *ctx, struct asr_error *err)
{
    unsigned long long at = (unsigned long long)e->offset;
    if (e->offset < prev_end)
        return fmt_fail(err, ASR_E_CORRUPT, "extent at %llu overlaps or precedes the one before it", at);
    if (e->offset > volume_size || e->length > volume_size - e->offset)
        return fmt_fail(err, ASR_E_CORRUPT, "extent at %llu ends past the volume's %llu bytes", at,
                        (unsigned long long)volume_size);
    if (!extent_is_data(e))
        return ASR_OK;
    if (e->ref >= chunk_count)
        return fmt_fail(err, ASR_E_CORRUPT, "extent at %llu refers to chunk %llu, which is not earlier in the stream",
                        at, (unsigned long long)e->ref);
    if ((uint64_t)e->chunk_offset + e->length > chunk_len(ctx, e->ref))
        return fmt_fail(err, ASR_E_CORRUPT, "extent at %llu runs past the end of chunk %llu", at,
                        (unsigned long long)e->ref);
    return ASR_OK;
}

int fmt_volume_entry_decode(const uint8_t b[ASR_VOLUME_ENTRY_SIZE], uint32_t v, uint64_t bytes_left,
                            struct asr_volume_stats *s, struct asr_error *err)
{
    s->extent_count = get_le64(b + 8);
    s->content_hash = fmt_hash128_get(b + 16);
    s->data_bytes = get_le64(b + 32);
    s->zero_bytes = get_le64(b + 40);
    s->unreadable_bytes = get_le64(b + 48);
    if (get_le32(b) != v || get_le32(b + 4) != 0 || get_le64(b + 56) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "index: volume entry %u malformed", v);
    if (s->extent_count > bytes_left / ASR_EXTENT_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "index: volume %u extent count %llu exceeds the index", v,
                        (unsigned long long)s->extent_count);
    return ASR_OK;
}

int fmt_volume_extent_next(struct fmt_volume_walk *w, const uint8_t raw[ASR_EXTENT_SIZE], struct asr_extent *e,
                           struct asr_error *err)
{
    struct asr_error why = {0};
    int rc = fmt_extent_decode(raw, e, &why);
    if (!rc)
        rc = fmt_extent_check(e, w->prev_end, w->volume_size, w->chunk_count, w->chunk_len, w->chunk_ctx, &why);
    if (rc)
        return fmt_fail(err, rc, "index: volume %u extent %llu: %s", w->volume, (unsigned long long)w->done, why.msg);
    w->prev_end = e->offset + e->length;
    w->sums[e->ref == ASR_REF_ZERO ? 1 : e->ref == ASR_REF_UNREADABLE ? 2 : 0] += e->length;
    w->done++;
    return ASR_OK;
}

int fmt_volume_walk_end(const struct fmt_volume_walk *w, const struct asr_volume_stats *s, struct asr_error *err)
{
    if (w->sums[0] != s->data_bytes || w->sums[1] != s->zero_bytes || w->sums[2] != s->unreadable_bytes)
        return fmt_fail(err, ASR_E_CORRUPT, "index: volume %u statistics disagree with its extents", w->volume);
    return ASR_OK;
}

static int decode_volume(struct fmt_cursor *c, uint32_t v, const struct fmt_layout *layout,
                         struct fmt_index *ix, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, ASR_VOLUME_ENTRY_SIZE);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "index: truncated volume entry %u", v);
    struct asr_volume_stats *s = &ix->stats[v];
    int rc = fmt_volume_entry_decode(b, v, c->left, s, err);
    if (rc)
        return rc;
    if (!(ix->extents[v] = malloc((s->extent_count + 1) * sizeof(struct asr_extent))))
        return fmt_fail(err, ASR_E_NOMEM, "index: out of memory");
    struct fmt_volume_walk w = {.volume = v, .volume_size = layout->volumes[v].size_bytes,
                                .chunk_count = ix->chunk_count, .chunk_len = index_chunk_len, .chunk_ctx = ix->chunks};
    for (uint64_t i = 0; i < s->extent_count; i++)
        if ((rc = fmt_volume_extent_next(&w, fmt_cursor_take(c, ASR_EXTENT_SIZE), &ix->extents[v][i], err)))
            return rc;
    return fmt_volume_walk_end(&w, s, err);
}

int fmt_index_decode(const uint8_t *body, size_t len, const struct fmt_layout *layout,
                     uint64_t data_start, uint64_t index_offset, uint32_t max_chunk, bool external,
                     struct fmt_index *ix, struct asr_error *err)
{
    memset(ix, 0, sizeof *ix);
    if (len < ASR_INDEX_FIXED || data_start > index_offset)
        return fmt_fail(err, ASR_E_CORRUPT, "index: too short");
    ix->volume_count = get_le32(body);
    ix->chunk_count = get_le64(body + 8);
    ix->stream_hash = fmt_hash128_get(body + 16);
    if (get_le32(body + 4) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "index: reserved bytes not zero");
    if (ix->volume_count != layout->volume_count)
        return fmt_fail(err, ASR_E_CORRUPT, "index: %u volumes, volume table has %u", ix->volume_count,
                        layout->volume_count);
    struct fmt_cursor c = {body + ASR_INDEX_FIXED, len - ASR_INDEX_FIXED, "index"};
    struct fmt_index_bounds b = {data_start, index_offset, max_chunk, external};
    int rc = decode_chunk_table(&c, &b, ix, err);
    if (rc)
        return rc;
    ix->stats = calloc(ix->volume_count + 1u, sizeof *ix->stats);
    ix->extents = calloc(ix->volume_count + 1u, sizeof *ix->extents);
    if (!ix->stats || !ix->extents)
        return fmt_fail(err, ASR_E_NOMEM, "index: out of memory");
    for (uint32_t v = 0; v < ix->volume_count; v++)
        if ((rc = decode_volume(&c, v, layout, ix, err)))
            return rc;
    if (c.left != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "index: %zu stray bytes at its end", c.left);
    return ASR_OK;
}

void fmt_index_free(struct fmt_index *ix)
{
    if (!ix)
        return;
    for (uint32_t v = 0; ix->extents && v < ix->volume_count; v++)
        free(ix->extents[v]);
    free(ix->extents);
    free(ix->stats);
    free(ix->chunks);
    memset(ix, 0, sizeof *ix);
}

int fmt_extent_record_decode(const uint8_t *body, size_t len, uint32_t *volume_id,
                             struct asr_extent *out, uint32_t *count, struct asr_error *err)
{
    if (len < 8)
        return fmt_fail(err, ASR_E_CORRUPT, "extent record too short");
    *volume_id = get_le32(body);
    *count = get_le32(body + 4);
    if (*count == 0 || *count > ASR_MAX_EXTENT_RECORD || len != 8 + (size_t)*count * ASR_EXTENT_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "extent record: count %u does not match its length", *count);
    for (uint32_t i = 0; i < *count; i++) {
        int rc = fmt_extent_decode(body + 8 + (size_t)i * ASR_EXTENT_SIZE, &out[i], err);
        if (rc)
            return rc;
    }
    return ASR_OK;
}
