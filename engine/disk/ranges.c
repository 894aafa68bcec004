/* Sorted byte-range lists and bounds-checked disk windows: the two primitives every used-map
 * parser builds on. */
#include "asr_engine.h"
#include "grow.h"
#include "readat.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

int asr_ranges_add(struct asr_ranges *r, uint64_t off, uint64_t len)
{
    if (len == 0)
        return ASR_OK;
    if (off + len < off)
        return ASR_E_ARG;
    if (r->n) {
        struct asr_range *last = &r->v[r->n - 1];
        uint64_t end = last->offset + last->length;
        if (off < end)
            return ASR_E_ARG;
        if (off == end) {
            last->length += len;
            return ASR_OK;
        }
    }
    struct asr_range *v = asr_grow(r->v, &r->cap, r->n + 1, sizeof *v, 256);
    if (!v)
        return ASR_E_NOMEM;
    r->v = v;
    r->v[r->n++] = (struct asr_range){off, len};
    return ASR_OK;
}

uint64_t asr_ranges_bytes(const struct asr_ranges *r)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < r->n; i++)
        sum += r->v[i].length;
    return sum;
}

int asr_ranges_union(const struct asr_ranges *a, const struct asr_ranges *b, struct asr_ranges *out)
{
    size_t i = 0, j = 0;
    uint64_t from = 0, to = 0;
    bool open = false;
    while (i < a->n || j < b->n) {
        const struct asr_range *r = j == b->n || (i < a->n && a->v[i].offset <= b->v[j].offset) ? &a->v[i++] : &b->v[j++];
        if (open && r->offset <= to) {
            if (r->offset + r->length > to)
                to = r->offset + r->length;
            continue;
        }
        if (open && asr_ranges_add(out, from, to - from) != ASR_OK)
            return ASR_E_NOMEM;
        from = r->offset;
        to = r->offset + r->length;
        open = true;
    }
    if (open && asr_ranges_add(out, from, to - from) != ASR_OK)
        return ASR_E_NOMEM;
    return ASR_OK;
}

int asr_ranges_minus(const struct asr_ranges *a, const struct asr_ranges *cut, struct asr_ranges *out)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t at = a->v[i].offset, end = at + a->v[i].length;
        while (k < cut->n && cut->v[k].offset + cut->v[k].length <= at)
            k++;
        for (size_t j = k; j < cut->n && cut->v[j].offset < end; j++) {
            if (cut->v[j].offset > at && asr_ranges_add(out, at, cut->v[j].offset - at) != ASR_OK)
                return ASR_E_NOMEM;
            if (cut->v[j].offset + cut->v[j].length > at)
                at = cut->v[j].offset + cut->v[j].length;
        }
        if (end > at && asr_ranges_add(out, at, end - at) != ASR_OK)
            return ASR_E_NOMEM;
    }
    return ASR_OK;
}

void asr_ranges_free(struct asr_ranges *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

void asr_usedmap_free(struct asr_usedmap *m)
{
    if (m) {
        asr_ranges_free(&m->used);
        asr_ranges_free(&m->cleared);
    }
}

int asr_window_read(const struct asr_window *w, const char *what, uint64_t off, void *buf, size_t len,
                    struct asr_error *err)
{
    if (off > w->size || len > w->size - off)
        return asr_fail_public(err, ASR_E_CORRUPT, "%s%sread of %zu bytes at volume offset %llu lies outside the "
                               "%llu-byte volume", what ? what : "", what ? ": " : "", len, (unsigned long long)off,
                               (unsigned long long)w->size);
    if (w->ops)
        return w->ops->read(w->ctx, what, off, buf, len, err);
    /* A sector at a time once a read fails: the message names the bad sector itself. */
    uint64_t bad;
    int rc = read_located(w->fd, buf, len, w->base + off, 512, &bad);
    if (rc == 0)
        return ASR_OK;
    const char *disk = w->path ? w->path : "disk";
    if (what)
        return asr_fail_public(err, ASR_E_IO, "cannot read %s (%s at byte %llu): %s", what, disk,
                               (unsigned long long)bad, read_strerror(rc));
    return asr_fail_public(err, ASR_E_IO, "cannot read %s at byte %llu: %s", disk, (unsigned long long)bad,
                           read_strerror(rc));
}

void asr_window_prefetch(const struct asr_window *w, uint64_t off, uint64_t len)
{
    if (off >= w->size)
        return;
    if (len > w->size - off)
        len = w->size - off;
    if (w->ops) {
        if (w->ops->prefetch)
            w->ops->prefetch(w->ctx, off, len);
        return;
    }
    posix_fadvise(w->fd, (off_t)(w->base + off), (off_t)len, POSIX_FADV_WILLNEED);
}
