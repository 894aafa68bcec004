/* Condemnation objects gc/ID (SPEC.md 19.8): the packs a gc found unused and the sessions that
 * were running then. A backup reads them all before the index and never reuses a chunk that lies
 * only in a condemned pack. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "grow.h"
#include "le.h"

#define CONDEMN_TAG "AGCN"
#define CONDEMN_VERSION 1u

int store_condemn_encode(const struct store_condemn *c, uint8_t **out, size_t *len, struct asr_error *err)
{
    *out = NULL;
    uint64_t ids = c->pack_count + c->session_count;
    if (c->pack_count > STORE_MAX_OBJECT / STORE_OID_SIZE || ids > STORE_MAX_OBJECT / STORE_OID_SIZE)
        return store_fail(err, ASR_E_LIMIT, "condemnation: %llu packs", (unsigned long long)c->pack_count);
    size_t n = STORE_CONDEMN_HEADER_SIZE + (size_t)ids * STORE_OID_SIZE + 8;
    uint8_t *b = calloc(1, n);
    if (!b)
        return store_fail(err, ASR_E_NOMEM, "condemnation: out of memory");
    memcpy(b, CONDEMN_TAG, 4);
    put_le32(b + 4, CONDEMN_VERSION);
    put_le32(b + 8, c->flags);
    put_le64(b + 16, c->pack_count);
    put_le64(b + 24, c->session_count);
    uint8_t *p = b + STORE_CONDEMN_HEADER_SIZE;
    if (c->pack_count)
        memcpy(p, c->packs, (size_t)c->pack_count * STORE_OID_SIZE);
    p += (size_t)c->pack_count * STORE_OID_SIZE;
    if (c->session_count)
        memcpy(p, c->sessions, (size_t)c->session_count * STORE_OID_SIZE);
    p += (size_t)c->session_count * STORE_OID_SIZE;
    put_le64(p, XXH3_64bits(b, n - 8));
    *out = b;
    *len = n;
    return ASR_OK;
}

int store_condemn_decode(const uint8_t *in, size_t len, struct store_condemn *c, struct asr_error *err)
{
    memset(c, 0, sizeof *c);
    if (len < STORE_CONDEMN_HEADER_SIZE + 8 || memcmp(in, CONDEMN_TAG, 4))
        return store_fail(err, ASR_E_CORRUPT, "not a condemnation (tag AGCN)");
    uint32_t version = get_le32(in + 4);
    if (version != CONDEMN_VERSION)
        return store_fail(err, ASR_E_UNSUPPORTED, "condemnation version %u (this asrimg reads version %u)", version,
                          CONDEMN_VERSION);
    if (get_le64(in + len - 8) != XXH3_64bits(in, len - 8))
        return store_fail(err, ASR_E_CORRUPT, "condemnation checksum mismatch");
    uint32_t flags = get_le32(in + 8);
    if ((flags & ~STORE_CONDEMN_SESSIONS_LISTED) || get_le32(in + 12))
        return store_fail(err, ASR_E_CORRUPT, "condemnation: unknown flags or reserved bytes not zero");
    uint64_t packs = get_le64(in + 16), sessions = get_le64(in + 24);
    size_t body = (len - STORE_CONDEMN_HEADER_SIZE - 8) / STORE_OID_SIZE;
    if ((len - STORE_CONDEMN_HEADER_SIZE - 8) % STORE_OID_SIZE || packs > body || sessions != body - packs)
        return store_fail(err, ASR_E_CORRUPT, "condemnation: %llu packs and %llu sessions do not fill %zu bytes",
                          (unsigned long long)packs, (unsigned long long)sessions, len);
    c->packs = malloc(packs ? (size_t)packs * STORE_OID_SIZE : 1);
    c->sessions = malloc(sessions ? (size_t)sessions * STORE_OID_SIZE : 1);
    if (!c->packs || !c->sessions) {
        store_condemn_free(c);
        return store_fail(err, ASR_E_NOMEM, "condemnation: out of memory");
    }
    c->flags = flags;
    c->pack_count = packs;
    c->session_count = sessions;
    const uint8_t *p = in + STORE_CONDEMN_HEADER_SIZE;
    memcpy(c->packs, p, (size_t)packs * STORE_OID_SIZE);
    memcpy(c->sessions, p + (size_t)packs * STORE_OID_SIZE, (size_t)sessions * STORE_OID_SIZE);
    return ASR_OK;
}

void store_condemn_free(struct store_condemn *c)
{
    free(c->packs);
    free(c->sessions);
    memset(c, 0, sizeof *c);
}

int store_oid_cmp(const void *a, const void *b) { return memcmp(a, b, STORE_OID_SIZE); }

bool store_oid_in(const uint8_t (*sorted)[STORE_OID_SIZE], size_t n, const uint8_t id[STORE_OID_SIZE])
{
    return n && bsearch(id, sorted, n, STORE_OID_SIZE, store_oid_cmp);
}

int store_condemn_get(struct store_backend *b, const char *key, struct store_condemn *c, bool *missing,
                      struct asr_error *err)
{
    uint8_t *raw;
    size_t len;
    struct asr_error e2 = {0};
    *missing = false;
    int rc = store_get_whole(b, key, STORE_MAX_OBJECT, &raw, &len, missing, err);
    if (rc)
        return *missing ? ASR_OK : rc;
    if ((rc = store_condemn_decode(raw, len, c, &e2)))
        store_fail(err, rc, "%s: %s: %s", b->url, key, e2.msg);
    free(raw);
    return rc;
}

int store_condemned_packs(struct store_backend *b, uint8_t (**out)[STORE_OID_SIZE], size_t *count,
                          struct asr_error *err)
{
    *out = NULL;
    *count = 0;
    struct store_object *objs = NULL;
    size_t n = 0, have = 0, cap = 0;
    uint8_t(*ids)[STORE_OID_SIZE] = NULL;
    int rc = b->ops->list(b, "gc/", &objs, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        struct store_condemn c;
        bool missing = false;
        if ((rc = store_condemn_get(b, objs[i].key, &c, &missing, err)) || missing)
            continue; /* missing: a gc finished with it: its packs are gone or spared */
        uint8_t(*grown)[STORE_OID_SIZE] =
            c.pack_count ? asr_grow(ids, &cap, have + (size_t)c.pack_count, STORE_OID_SIZE, 256) : ids;
        if (c.pack_count && !grown) {
            rc = store_fail(err, ASR_E_NOMEM, "condemnations: out of memory");
        } else {
            ids = grown;
            if (c.pack_count)
                memcpy(ids[have], c.packs, (size_t)c.pack_count * STORE_OID_SIZE);
            have += (size_t)c.pack_count;
        }
        store_condemn_free(&c);
    }
    store_objects_free(objs, n);
    if (rc) {
        free(ids);
        return rc;
    }
    if (have) {
        qsort(ids, have, STORE_OID_SIZE, store_oid_cmp);
        size_t w = 1;
        for (size_t i = 1; i < have; i++)
            if (memcmp(ids[i], ids[w - 1], STORE_OID_SIZE))
                memcpy(ids[w++], ids[i], STORE_OID_SIZE);
        have = w;
    }
    *out = ids;
    *count = have;
    return ASR_OK;
}
