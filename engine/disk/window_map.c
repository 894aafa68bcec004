/* Windows pieced together from runs of other windows: see window_map.h. */
#include "window_map.h"

#include "grow.h"

#include <stdlib.h>
#include <string.h>

int window_map_add(struct window_map *m, const struct asr_window *parent, uint64_t parent_off, uint64_t len,
                   struct asr_error *err)
{
    if (parent_off > parent->size || len > parent->size - parent_off)
        return asr_fail_public(err, ASR_E_ARG, "a run of %llu bytes at byte %llu lies outside the %llu-byte %s",
                               (unsigned long long)len, (unsigned long long)parent_off,
                               (unsigned long long)parent->size, parent->path ? parent->path : "volume");
    if (len > UINT64_MAX - m->size)
        return asr_fail_public(err, ASR_E_ARG, "a pieced-together volume of more than 2^64 bytes");
    if (len == 0)
        return ASR_OK;
    struct window_piece *last = m->n ? &m->v[m->n - 1] : NULL;
    if (last && last->parent == parent && last->parent_off + last->len == parent_off) {
        last->len += len; /* the common case: a linear LV's segments follow each other on one PV */
        m->size += len;
        return ASR_OK;
    }
    struct window_piece *v = asr_grow(m->v, &m->cap, m->n + 1, sizeof *v, 16);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    m->v = v;
    m->v[m->n++] = (struct window_piece){.off = m->size, .len = len, .parent = parent, .parent_off = parent_off};
    m->size += len;
    return ASR_OK;
}

/* The piece holding byte off (off < m->size). */
static const struct window_piece *piece_at(const struct window_map *m, uint64_t off)
{
    size_t lo = 0, hi = m->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &m->v[lo];
}

static int map_read(void *ctx, const char *what, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    const struct window_map *m = ctx;
    uint8_t *out = buf;
    while (len) {
        const struct window_piece *p = piece_at(m, off);
        uint64_t in = off - p->off;
        size_t take = p->len - in < len ? (size_t)(p->len - in) : len;
        int rc = asr_window_read(p->parent, what, p->parent_off + in, out, take, err);
        if (rc != ASR_OK)
            return rc;
        out += take, off += take, len -= take;
    }
    return ASR_OK;
}

static void map_prefetch(void *ctx, uint64_t off, uint64_t len)
{
    const struct window_map *m = ctx;
    while (len) {
        const struct window_piece *p = piece_at(m, off);
        uint64_t in = off - p->off;
        uint64_t take = p->len - in < len ? p->len - in : len;
        asr_window_prefetch(p->parent, p->parent_off + in, take);
        off += take, len -= take;
    }
}

static const struct asr_window_ops map_ops = {.read = map_read, .prefetch = map_prefetch};

void window_map_window(struct window_map *m, const char *path, struct asr_window *out)
{
    *out = (struct asr_window){.fd = -1, .path = path, .size = m->size, .ops = &map_ops, .ctx = m};
}

void window_map_free(struct window_map *m)
{
    free(m->v);
    memset(m, 0, sizeof *m);
}
