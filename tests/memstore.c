/* The in-memory chunk store of the snapshot tests: see memstore.h. */
#include "memstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "internal.h" /* fmt_chunk_header_encode: records as a store keeps them */

void memstore_id(const void *content, size_t len, uint8_t id[32])
{
    XXH128_hash_t a = XXH3_128bits_withSeed(content, len, 0x5703e1d5ull);
    XXH128_hash_t b = XXH3_128bits_withSeed(content, len, 0xfa4e4a5cull);
    XXH128_canonical_t ca, cb;
    XXH128_canonicalFromHash(&ca, a);
    XXH128_canonicalFromHash(&cb, b);
    memcpy(id, ca.digest, 16);
    memcpy(id + 16, cb.digest, 16);
}

struct memrec *memstore_find(struct memstore *m, const uint8_t id[32])
{
    for (size_t i = 0; i < m->count; i++)
        if (memcmp(m->recs[i].id, id, 32) == 0)
            return &m->recs[i];
    return NULL;
}

static int add(struct memstore *m, const uint8_t id[32], uint8_t *rec, size_t len)
{
    if (m->count == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        struct memrec *grown = realloc(m->recs, cap * sizeof *grown);
        if (!grown)
            return -1;
        m->recs = grown;
        m->cap = cap;
    }
    struct memrec *r = &m->recs[m->count++];
    memcpy(r->id, id, 32);
    r->rec = rec;
    r->len = len;
    return 0;
}

int memstore_put(struct memstore *m, const uint8_t id[32], const struct asr_chunk *c)
{
    if (memstore_find(m, id))
        return 0;
    uint8_t *rec = malloc(ASR_CHUNK_HEADER_SIZE + (size_t)c->stored_len);
    if (!rec)
        return -1;
    struct fmt_chunk_header h = {c->codec, 0, c->stored_len, c->content_len, c->content_hash,
                                 XXH3_64bits(c->stored, c->stored_len)};
    fmt_chunk_header_encode(&h, rec);
    memcpy(rec + ASR_CHUNK_HEADER_SIZE, c->stored, c->stored_len);
    if (add(m, id, rec, ASR_CHUNK_HEADER_SIZE + (size_t)c->stored_len)) {
        free(rec);
        return -1;
    }
    return 0;
}

static int fetch(void *ctx, const uint8_t id[32], void *buf, size_t cap, size_t *len, char *where, size_t where_len,
                 struct asr_error *err)
{
    struct memstore *m = ctx;
    __atomic_fetch_add(&m->fetches, 1, __ATOMIC_RELAXED);
    struct memrec *r = memstore_find(m, id);
    if (!r) {
        snprintf(where, where_len, "memstore (no such record)");
        return asr_fail_public(err, ASR_E_CORRUPT, "missing from the store");
    }
    snprintf(where, where_len, "memstore record %zu", (size_t)(r - m->recs));
    if (r->len > cap)
        return asr_fail_public(err, ASR_E_CORRUPT, "record of %zu bytes larger than %zu", r->len, cap);
    memcpy(buf, r->rec, r->len);
    *len = r->len;
    return ASR_OK;
}

static bool check(void *ctx, const uint8_t id[32], const void *content, size_t len)
{
    const struct memstore *m = ctx;
    if (m->refuse_all || (m->refuse_set && memcmp(m->refuse, id, 32) == 0))
        return false;
    uint8_t want[32];
    memstore_id(content, len, want);
    return memcmp(want, id, 32) == 0;
}

struct asr_chunk_source memstore_source(struct memstore *m)
{
    return (struct asr_chunk_source){.fetch = fetch, .check = check, .ctx = m};
}

void memstore_free(struct memstore *m)
{
    for (size_t i = 0; i < m->count; i++)
        free(m->recs[i].rec);
    free(m->recs);
    memset(m, 0, sizeof *m);
}

int memstore_save(const struct memstore *m, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < m->count && !rc; i++) {
        uint8_t len[4] = {(uint8_t)m->recs[i].len, (uint8_t)(m->recs[i].len >> 8), (uint8_t)(m->recs[i].len >> 16),
                          (uint8_t)(m->recs[i].len >> 24)};
        if (fwrite(m->recs[i].id, 32, 1, f) != 1 || fwrite(len, 4, 1, f) != 1 ||
            fwrite(m->recs[i].rec, m->recs[i].len, 1, f) != 1)
            rc = -1;
    }
    return fclose(f) || rc ? -1 : 0;
}

int memstore_load(struct memstore *m, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int rc = 0;
    uint8_t id[32], len[4];
    while (!rc && fread(id, 32, 1, f) == 1) {
        if (fread(len, 4, 1, f) != 1) {
            rc = -1;
            break;
        }
        size_t n = (size_t)len[0] | (size_t)len[1] << 8 | (size_t)len[2] << 16 | (size_t)len[3] << 24;
        uint8_t *rec = n <= ASR_CHUNK_HEADER_SIZE + ASR_MAX_CHUNK_SIZE ? malloc(n ? n : 1) : NULL;
        if (!rec || fread(rec, 1, n, f) != n || add(m, id, rec, n)) {
            free(rec);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}
