/* The chunk store's test fixtures (storefix.h): stores, chunks, sessions and object counts that
 * the test_store*.c suites share. */
#include "storefix.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "support.h"

struct asr_store *storefix_store(const char *name, uint32_t pack_target)
{
    char *dir = scratch_path(name), key[PATH_MAX + 8];
    snprintf(key, sizeof key, "%s.key", dir);
    struct asr_store_options opt = {.key_file = key};
    struct asr_error err = {0};
    char got_key[PATH_MAX];
    cr_assert_eq(store_init_with(dir, &opt, pack_target, got_key, sizeof got_key, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(got_key, key);
    struct asr_store *s;
    cr_assert_eq(asr_store_open(dir, &opt, &s, &err), ASR_OK, "%s", err.msg);
    free(dir);
    return s;
}

void storefix_fill(void *buf, size_t n, uint32_t seed)
{
    uint8_t *b = buf;
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

void storefix_chunk(struct asr_store *s, uint32_t seed, int level, bool compressible, struct storefix_chunk *t)
{
    if (compressible)
        for (size_t j = 0; j < STOREFIX_CHUNK; j++)
            t->content[j] = (uint8_t)((j / 64) ^ seed);
    else
        storefix_fill(t->content, sizeof t->content, seed);
    struct asr_error err = {0};
    cr_assert_eq(asr_chunk_encode(t->content, sizeof t->content, level, asr_store_hash_seed(s), t->out, sizeof t->out,
                                  &t->c, &err),
                 ASR_OK, "%s", err.msg);
    asr_store_chunk_id(s, t->content, sizeof t->content, &t->id);
}

struct storefix_chunk *storefix_chunks(struct asr_store *s, uint32_t first, int n, int level, bool compressible)
{
    struct storefix_chunk *c = calloc((size_t)n, sizeof *c);
    cr_assert_not_null(c);
    for (int i = 0; i < n; i++)
        storefix_chunk(s, first + (uint32_t)i, level, compressible, &c[i]);
    return c;
}

struct asr_store_session *storefix_begin(struct asr_store *s, const char *host)
{
    struct asr_store_session *ss;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_session_begin(s, host, &ss, &err), ASR_OK, "%s", err.msg);
    return ss;
}

void storefix_put(struct asr_store_session *ss, const struct storefix_chunk *c, int n)
{
    struct asr_error err = {0};
    for (int i = 0; i < n; i++)
        cr_assert_eq(asr_store_session_put(ss, &c[i].id, &c[i].c, &err), ASR_OK, "chunk %d: %s", i, err.msg);
}

size_t storefix_count(struct asr_store *s, const char *prefix)
{
    struct store_object *o;
    size_t n;
    struct asr_error err = {0};
    cr_assert_eq(s->b->ops->list(s->b, prefix, &o, &n, &err), ASR_OK, "%s", err.msg);
    store_objects_free(o, n);
    return n;
}

size_t storefix_index_objects(struct asr_store *s, uint64_t max_entries, uint32_t max_packs, uint64_t *entries)
{
    struct store_object *o = NULL;
    size_t n = 0;
    struct asr_error err = {0};
    cr_assert_eq(s->b->ops->list(s->b, "index/", &o, &n, &err), ASR_OK, "%s", err.msg);
    *entries = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_index ix;
        bool missing = false;
        cr_assert_eq(store_index_get(s->b, o[i].key, &ix, &missing, &err), ASR_OK, "%s", err.msg);
        cr_assert(ix.count >= 1 && ix.count <= max_entries, "%s: %llu entries", o[i].key, (unsigned long long)ix.count);
        cr_assert(ix.pack_count >= 1 && ix.pack_count <= max_packs, "%s: %u packs", o[i].key, ix.pack_count);
        bool *used = calloc(ix.pack_count, sizeof *used);
        for (uint64_t k = 0; k < ix.count; k++)
            used[ix.entries[k].pack] = true;
        for (uint32_t p = 0; p < ix.pack_count; p++)
            cr_assert(used[p], "%s: pack %u of its table is not one its entries are in", o[i].key, p);
        free(used);
        *entries += ix.count;
        store_index_free(&ix);
    }
    store_objects_free(o, n);
    return n;
}
