/* Sorted byte-range lists and bounds-checked disk windows: the two primitives every used-map
 * parser builds on. */
#include "asr_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        struct asr_range *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return ASR_E_NOMEM;
        r->v = v;
        r->cap = cap;
    }
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

void asr_ranges_free(struct asr_ranges *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

void asr_usedmap_free(struct asr_usedmap *m)
{
    if (m)
        asr_ranges_free(&m->used);
}

int asr_window_read(const struct asr_window *w, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    if (off > w->size || len > w->size - off)
        return asr_fail_public(err, ASR_E_CORRUPT, "read of %zu bytes at volume offset %llu lies outside the %llu-byte volume",
                               len, (unsigned long long)off, (unsigned long long)w->size);
    uint8_t *p = buf;
    uint64_t at = w->base + off;
    while (len) {
        ssize_t n = pread(w->fd, p, len, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return asr_fail_public(err, ASR_E_IO, "cannot read %s at offset %llu: %s", w->path ? w->path : "disk",
                                   (unsigned long long)at, n < 0 ? strerror(errno) : "unexpected end of file");
        p += n;
        len -= (size_t)n;
        at += (uint64_t)n;
    }
    return ASR_OK;
}

void asr_window_prefetch(const struct asr_window *w, uint64_t off, uint64_t len)
{
    if (off >= w->size)
        return;
    if (len > w->size - off)
        len = w->size - off;
    posix_fadvise(w->fd, (off_t)(w->base + off), (off_t)len, POSIX_FADV_WILLNEED);
}
