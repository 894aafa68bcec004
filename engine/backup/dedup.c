/* The dedup index (dedup.h): open addressing over the content hashes of the chunks written. */
#include "dedup.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing with linear probing; the key's low 64 bits are already uniformly spread. An
 * entry is 32 bytes; the table doubles at 3/4 full, so it holds at most 64 bytes per chunk. */
struct entry {
    uint64_t lo, hi;
    uint64_t id_plus_one; /* 0: empty slot */
    uint32_t len;
};

struct dedup {
    struct entry *v;
    size_t cap, count; /* cap: a power of two */
};

int dedup_new(struct dedup **out)
{
    struct dedup *d = calloc(1, sizeof *d);
    if (d) {
        d->cap = 1u << 14;
        d->v = calloc(d->cap, sizeof *d->v);
    }
    if (!d || !d->v) {
        dedup_free(d);
        return ASR_E_NOMEM;
    }
    *out = d;
    return ASR_OK;
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    free(d->v);
    free(d);
}

static struct entry *slot_for(struct entry *v, size_t cap, uint64_t lo, uint64_t hi, uint32_t len)
{
    size_t i = (size_t)lo & (cap - 1);
    while (v[i].id_plus_one && !(v[i].lo == lo && v[i].hi == hi && v[i].len == len))
        i = (i + 1) & (cap - 1);
    return &v[i];
}

static int grow(struct dedup *d)
{
    size_t cap = d->cap * 2;
    struct entry *v = calloc(cap, sizeof *v);
    if (!v)
        return ASR_E_NOMEM;
    for (size_t i = 0; i < d->cap; i++)
        if (d->v[i].id_plus_one)
            *slot_for(v, cap, d->v[i].lo, d->v[i].hi, d->v[i].len) = d->v[i];
    free(d->v);
    d->v = v;
    d->cap = cap;
    return ASR_OK;
}

int dedup_find(const struct dedup *d, struct asr_hash128 key, uint32_t len, uint64_t *found_id)
{
    const struct entry *e = slot_for(d->v, d->cap, key.lo, key.hi, len);
    if (e->id_plus_one)
        *found_id = e->id_plus_one - 1;
    return e->id_plus_one != 0;
}

int dedup_find_or_add(struct dedup *d, struct asr_hash128 key, uint32_t len, uint64_t id,
                          uint64_t *found_id)
{
    struct entry *e = slot_for(d->v, d->cap, key.lo, key.hi, len);
    if (e->id_plus_one) {
        *found_id = e->id_plus_one - 1;
        return 1;
    }
    if ((d->count + 1) * 4 > d->cap * 3) {
        if (grow(d) != ASR_OK)
            return -1;
        e = slot_for(d->v, d->cap, key.lo, key.hi, len);
    }
    *e = (struct entry){key.lo, key.hi, id + 1, len};
    d->count++;
    return 0;
}

size_t dedup_memory(const struct dedup *d)
{
    return d->cap * sizeof *d->v;
}
