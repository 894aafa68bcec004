/* What the store's snapshots use, for gc and verify: every snapshot's chunk ids (id, snapshot)
 * sorted by id, the packs that hold any of them by any index object's listing, and the packs the
 * store holds. A snapshot that cannot be read stops the caller: gc must not guess what it uses. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

int store_usage_read(struct asr_store *s, struct store_usage *u, struct asr_error *err)
{
    memset(u, 0, sizeof *u);
    int rc = asr_store_list(s, NULL, false, &u->snaps, &u->n_snaps, err);
    if (!rc)
        rc = store_uses_read(s, u->snaps, u->n_snaps, &u->uses, &u->n_uses, err);
    if (rc)
        store_usage_free(u);
    return rc;
}

bool store_usage_has(const struct store_usage *u, const struct asr_store_id *id)
{
    size_t lo = 0, hi = u->n_uses;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(u->uses[mid].id.b, id->b, ASR_STORE_ID_SIZE);
        if (!c)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

void store_usage_free(struct store_usage *u)
{
    free(u->snaps);
    free(u->uses);
    memset(u, 0, sizeof *u);
}

static int pack_cmp(const void *a, const void *b)
{
    return memcmp(((const struct store_pack *)a)->id, ((const struct store_pack *)b)->id, STORE_OID_SIZE);
}

int store_packs_list(struct store_backend *b, struct store_pack **out, size_t *count, struct asr_error *err)
{
    *out = NULL;
    *count = 0;
    struct store_object *o;
    size_t n;
    int rc = b->ops->list(b, "packs/", &o, &n, err);
    if (rc)
        return rc;
    struct store_pack *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        store_objects_free(o, n);
        return store_fail(err, ASR_E_NOMEM, "%s: out of memory listing packs", b->url);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* packs/XX/ID and nothing else: a stray name is no pack of this store. */
        const char *k = o[i].key + strlen("packs/");
        if (strlen(k) != 3 + 2 * STORE_OID_SIZE || k[2] != '/' || strncmp(k, k + 3, 2) ||
            store_hex_parse(k + 3, p[m].id, STORE_OID_SIZE))
            continue;
        p[m].size = o[i].size;
        m++;
    }
    store_objects_free(o, n);
    if (m)
        qsort(p, m, sizeof *p, pack_cmp);
    *out = p;
    *count = m;
    return ASR_OK;
}

const struct store_pack *store_packs_find(const struct store_pack *p, size_t n, const uint8_t id[STORE_OID_SIZE])
{
    struct store_pack key;
    memcpy(key.id, id, STORE_OID_SIZE);
    return n ? bsearch(&key, p, n, sizeof *p, pack_cmp) : NULL;
}

/* store_indexes_read's work: index object i of the listing into ix[i] (present[i]). */
struct indexes_job {
    struct store_backend *b;
    const struct store_object *o;
    struct store_index *ix;
    bool *present;
};

static int read_index(void *ctx, size_t i, struct asr_error *err)
{
    struct indexes_job *j = ctx;
    bool missing = false;
    int rc = store_index_get(j->b, j->o[i].key, &j->ix[i], &missing, err);
    j->present[i] = !rc;
    return rc && missing ? ASR_OK : rc; /* merged by another gc meanwhile: its entries are in the new object */
}

int store_indexes_read(struct store_backend *b, struct store_indexes *x, struct asr_error *err)
{
    memset(x, 0, sizeof *x);
    struct store_object *o;
    size_t n;
    int rc = b->ops->list(b, "index/", &o, &n, err);
    if (rc)
        return rc;
    x->keys = calloc(n ? n : 1, sizeof *x->keys);
    x->ix = calloc(n ? n : 1, sizeof *x->ix);
    bool *present = calloc(n ? n : 1, sizeof *present);
    if (!x->keys || !x->ix || !present)
        rc = store_fail(err, ASR_E_NOMEM, "%s: out of memory reading the index", b->url);
    struct indexes_job j = {.b = b, .o = o, .ix = x->ix, .present = present};
    if (!rc)
        rc = store_parallel(n, STORE_PARALLEL_READS, read_index, &j, err);
    for (size_t i = 0; present && x->ix && x->keys && i < n; i++) /* in listing order, not the missing */
        if (present[i]) {
            x->ix[x->n] = x->ix[i];
            x->keys[x->n++] = o[i].key;
            o[i].key = NULL;
        }
    free(present);
    store_objects_free(o, n);
    if (rc)
        store_indexes_free(x);
    return rc;
}

void store_indexes_free(struct store_indexes *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free(x->keys[i]);
        store_index_free(&x->ix[i]);
    }
    free(x->keys);
    free(x->ix);
    memset(x, 0, sizeof *x);
}

int store_used_packs(const struct store_usage *u, const struct store_indexes *x, uint8_t (**out)[STORE_OID_SIZE],
                     size_t *count, struct asr_error *err)
{
    size_t have = 0, cap = 0;
    uint8_t(*p)[STORE_OID_SIZE] = NULL;
    for (size_t i = 0; i < x->n; i++) {
        const struct store_index *ix = &x->ix[i];
        for (uint64_t j = 0; j < ix->count; j++) {
            if (!store_usage_has(u, &ix->entries[j].id))
                continue;
            uint8_t(*g)[STORE_OID_SIZE] = asr_grow(p, &cap, have + 1, STORE_OID_SIZE, 256);
            if (!g) {
                free(p);
                return store_fail(err, ASR_E_NOMEM, "gc: out of memory");
            }
            p = g;
            memcpy(p[have++], ix->packs[ix->entries[j].pack], STORE_OID_SIZE);
        }
    }
    if (have) {
        qsort(p, have, STORE_OID_SIZE, store_oid_cmp);
        size_t w = 1;
        for (size_t i = 1; i < have; i++)
            if (memcmp(p[i], p[w - 1], STORE_OID_SIZE))
                memcpy(p[w++], p[i], STORE_OID_SIZE);
        have = w;
    }
    *out = p;
    *count = have;
    return ASR_OK;
}
