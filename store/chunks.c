/* Chunks by store id for a snapshot reader (asr_reader_open_external, SPEC.md 19.5): found in the
 * store's index (loaded at the first fetch; for a handle that serves one snapshot, its chunks'
 * entries alone), read as record_len bytes at their offset in their pack; the reader checks the
 * record and, through check, its content against the id. */
#include "internal.h"
#include "windows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void store_expect(struct asr_store *s, struct asr_store_id *ids, size_t n)
{
    pthread_mutex_lock(&s->load_lock);
    if (s->table || s->expect)
        free(ids);
    else {
        s->expect = ids;
        s->n_expect = n;
    }
    pthread_mutex_unlock(&s->load_lock);
}

int store_load_table(struct asr_store *s, struct asr_error *err)
{
    pthread_mutex_lock(&s->load_lock);
    int rc = ASR_OK;
    if (!s->table) {
        struct store_table *t = NULL;
        if (!(rc = store_table_new(&t, err)) && s->expect && store_table_expect(t, s->expect, s->n_expect) < 0)
            rc = store_fail(err, ASR_E_NOMEM, "chunk table: out of memory for %zu chunks", s->n_expect);
        if (!rc)
            rc = store_table_load(s->b, t, NULL, 0, NULL, err);
        if (rc) {
            store_table_free(t);
            t = NULL;
        }
        if (!rc && s->b->remote && !s->windows && (rc = store_windows_new(&s->windows, err))) {
            store_table_free(t);
            t = NULL;
        }
        s->table = t;
        if (t) { /* the table holds them now */
            free(s->expect);
            s->expect = NULL;
        }
    }
    pthread_mutex_unlock(&s->load_lock);
    return rc;
}

static int source_fetch(void *ctx, const uint8_t store_id[32], void *buf, size_t cap, size_t *len, char *where,
                        size_t where_len, struct asr_error *err)
{
    struct asr_store *s = ctx;
    struct asr_store_id id;
    memcpy(id.b, store_id, 32);
    char hex[2 * ASR_STORE_ID_SIZE + 1], key[STORE_KEY_NAME_MAX];
    store_hex(id.b, sizeof id.b, hex);
    *len = 0;
    if (where_len)
        snprintf(where, where_len, "the store's index");
    int rc = store_load_table(s, err);
    if (rc)
        return rc;
    struct store_loc loc;
    if (!store_table_find(s->table, &id, &loc))
        return store_fail(err, ASR_E_CORRUPT, "%s: chunk %s is missing: no index object lists it", s->b->url, hex);
    uint8_t pack[STORE_OID_SIZE];
    char pack_hex[STORE_OID_HEX];
    store_table_pack_id(s->table, loc.pack, pack);
    store_hex(pack, sizeof pack, pack_hex);
    store_pack_name(pack, key);
    if (where_len)
        snprintf(where, where_len, "pack %s offset %llu", pack_hex, (unsigned long long)loc.offset);
    if (loc.record_len > cap)
        return store_fail(err, ASR_E_LIMIT, "%s: chunk %s: a %u-byte record (pack %s offset %llu)", s->b->url, hex,
                          loc.record_len, pack_hex, (unsigned long long)loc.offset);
    size_t got = 0;
    bool missing = false;
    struct asr_error e2 = {0};
    rc = s->windows ? store_windows_read(s->windows, s->b, loc.pack, key, loc.offset, buf, loc.record_len, &got,
                                         &missing, &e2)
                    : s->b->ops->get(s->b, key, loc.offset, buf, loc.record_len, &got, &missing, &e2);
    if (rc) {
        if (missing)
            return store_fail(err, ASR_E_CORRUPT, "%s: chunk %s is missing: pack %s is not in the store", s->b->url,
                              hex, pack_hex);
        return store_fail(err, rc, "%s", e2.msg);
    }
    if (got != loc.record_len)
        return store_fail(err, ASR_E_CORRUPT, "%s: chunk %s is missing: pack %s ends before offset %llu + %u",
                          s->b->url, hex, pack_hex, (unsigned long long)loc.offset, loc.record_len);
    *len = got;
    return ASR_OK;
}

static bool source_check(void *ctx, const uint8_t store_id[32], const void *content, size_t len)
{
    struct asr_store_id id;
    asr_store_chunk_id(ctx, content, len, &id);
    return CRYPTO_memcmp(id.b, store_id, 32) == 0;
}

/* The records store_ids name, where the table has them, handed to the pack windows to fetch
 * ahead (a directory store reads each record when asked: nothing to do). Advice only: an id the
 * table lacks is left out, and the fetch of its chunk says so. */
static void source_prefetch(void *ctx, const uint8_t *store_ids, size_t n)
{
    struct asr_store *s = ctx;
    struct asr_error err = {0};
    if (!n || store_load_table(s, &err) || !s->windows)
        return;
    struct store_want *want = malloc(n * sizeof *want);
    if (!want)
        return;
    size_t k = 0;
    uint32_t named = UINT32_MAX;
    char key[STORE_KEY_NAME_MAX] = "";
    for (size_t i = 0; i < n; i++) {
        struct asr_store_id id;
        struct store_loc loc;
        memcpy(id.b, store_ids + i * ASR_STORE_ID_SIZE, sizeof id.b);
        if (!store_table_find(s->table, &id, &loc))
            continue;
        if (loc.pack != named) {
            uint8_t pack[STORE_OID_SIZE];
            store_table_pack_id(s->table, loc.pack, pack);
            store_pack_name(pack, key);
            named = loc.pack;
        }
        if (strlen(key) >= sizeof want[k].key)
            continue;
        want[k] = (struct store_want){.pack = loc.pack, .len = loc.record_len, .off = loc.offset};
        memcpy(want[k].key, key, strlen(key) + 1);
        k++;
    }
    store_windows_prefetch(s->windows, s->b, want, k);
    free(want);
}

void store_chunk_source(struct asr_store *s, struct asr_chunk_source *out)
{
    out->fetch = source_fetch;
    out->check = source_check;
    out->prefetch = source_prefetch;
    out->ctx = s;
}
