/* The mirrored writer of a restore: captured bytes, in disk order, copied into large aligned
 * stages and each stage written to every target of the disk at once through io_uring, with
 * O_DIRECT where the target takes it: one decompression feeds every mirror, and the page cache is
 * not flooded.
 *
 * Why stages (one copy of the data): a chunk's extents start anywhere in its content, so its
 * bytes are rarely aligned in memory the way O_DIRECT needs, and extents are often small. Copying
 * them into 4 MiB aligned buffers in disk order gives few large aligned writes; the copy costs far
 * less than the disk. The rare edge that is not sector-aligned goes through the page cache after
 * the writes in flight have finished (the kernel writes back and drops cached pages that a later
 * O_DIRECT write overlaps, so the two never race). */
#include "io.h"
#include "iobuf.h"
#include "restore_mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define STAGE_BYTES (4u << 20)
#define STAGE_COUNT 8u
#define MAX_ALIGN 65536u

struct stage;

struct write_req {
    struct stage *stage;
    struct restore_target *t;
    uint64_t off;
    const uint8_t *data;
    size_t len;
};

struct stage {
    uint8_t *buf;
    uint64_t base;    /* disk offset of buf[0], a multiple of the alignment */
    size_t lead;      /* buf[0, lead) is not ours: the data starts at base + lead */
    size_t len;       /* buf[lead, len) holds data */
    unsigned pending; /* writes in flight */
    struct write_req *req; /* one per target */
};

struct restore_mirror {
    struct io_uring ring;
    bool ring_ready;
    struct restore_target **t; /* the targets of the disk being written */
    size_t nt;
    uint32_t align;
    struct stage stages[STAGE_COUNT];
    uint8_t *arena;   /* the stages' buffers, one after another */
    struct stage *cur;
    unsigned inflight;
    bool cache_dirty; /* a buffered edge was written since the last sync */
    struct asr_error *err;
    int rc;
};

/* The first failure sticks: later writes stop, and it is what the restore reports. A device
 * fails a write as a whole, so the message gives the whole write: the bad sector is in there. */
static int mirror_fail(struct restore_mirror *m, const char *path, uint64_t off, size_t len, int e)
{
    if (!m->rc)
        m->rc = asr_fail_public(m->err, ASR_E_IO, "cannot write %s at offset %llu (a write of %zu bytes): %s", path,
                                (unsigned long long)off, len, strerror(e));
    return m->rc;
}

static int sync_fail(struct restore_mirror *m, const char *path, int e)
{
    if (!m->rc)
        m->rc = asr_fail_public(m->err, ASR_E_IO, "cannot sync %s: %s", path, strerror(e));
    return m->rc;
}

static void complete(struct restore_mirror *m, struct io_uring_cqe *cqe)
{
    struct write_req *q = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&m->ring, cqe);
    m->inflight--;
    q->stage->pending--;
    if (res < 0) {
        mirror_fail(m, q->t->path, q->off, q->len, -res);
    } else if ((size_t)res < q->len) {
        /* A short write: finish it plainly (what remains is aligned when res is). */
        size_t done = (size_t)res, more;
        int fd = done % q->t->align == 0 ? q->t->fd : q->t->fd_buffered;
        int rc = m->rc ? 0 : asr_pwrite_full(fd, q->data + done, q->len - done, q->off + done, &more);
        if (rc)
            mirror_fail(m, q->t->path, q->off + done + more, q->len - done - more, rc < 0 ? -rc : ENOSPC);
    }
}

/* Waits for completions until at most `left` writes are in flight. */
static int reap_until(struct restore_mirror *m, unsigned left)
{
    while (m->inflight > left) {
        struct io_uring_cqe *cqe;
        int e = io_uring_wait_cqe(&m->ring, &cqe);
        if (e == -EINTR)
            continue;
        if (e < 0) {
            if (!m->rc)
                m->rc = asr_fail_public(m->err, ASR_E_IO, "io_uring: %s", strerror(-e));
            return m->rc;
        }
        complete(m, cqe);
    }
    return m->rc;
}

static int sync_cache(struct restore_mirror *m)
{
    if (!m->cache_dirty)
        return ASR_OK;
    for (size_t i = 0; i < m->nt && !m->rc; i++)
        if (fdatasync(m->t[i]->fd_buffered) != 0)
            sync_fail(m, m->t[i]->path, errno);
    m->cache_dirty = false;
    return m->rc;
}

static int queue_write(struct restore_mirror *m, struct stage *s, size_t i, int fd, uint64_t off, const uint8_t *data,
                       size_t len)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&m->ring);
    while (!sqe) {
        io_uring_submit(&m->ring);
        if (reap_until(m, m->inflight ? m->inflight - 1 : 0))
            return m->rc;
        sqe = io_uring_get_sqe(&m->ring);
    }
    struct write_req *q = &s->req[i];
    *q = (struct write_req){s, m->t[i], off, data, len};
    io_uring_prep_write(sqe, fd, data, (unsigned)len, off);
    io_uring_sqe_set_data(sqe, q);
    s->pending++;
    m->inflight++;
    return ASR_OK;
}

/* From the first write to it, a target no longer holds what it held: a failure says so. */
static void touch(struct restore_target *t)
{
    if (t->info.state == ASR_TARGET_UNTOUCHED)
        t->info.state = ASR_TARGET_PARTIAL;
}

/* Writes the stage to every target: the aligned middle with O_DIRECT, an unaligned head or tail
 * through the page cache once nothing is in flight. */
static int submit_stage(struct restore_mirror *m, struct stage *s)
{
    uint64_t first = s->base + s->lead, end = s->base + s->len, a = m->align;
    uint64_t mid_from = (first + a - 1) / a * a, mid_to = end / a * a;
    if (mid_from > mid_to)
        mid_from = mid_to = end; /* all of it is one partial sector */
    bool edges = first < mid_from || mid_to < end;
    if (edges && reap_until(m, 0))
        return m->rc;
    for (size_t i = 0; i < m->nt && !m->rc; i++) {
        struct restore_target *t = m->t[i];
        touch(t);
        if (!t->direct) {
            queue_write(m, s, i, t->fd, first, s->buf + s->lead, (size_t)(end - first));
            continue;
        }
        if (first < mid_from)
            m->rc = target_pwrite(t, s->buf + s->lead, (size_t)(mid_from - first), first, m->err);
        if (!m->rc && mid_to < end && mid_to >= mid_from)
            m->rc = target_pwrite(t, s->buf + (mid_to - s->base), (size_t)(end - mid_to), mid_to, m->err);
        if (!m->rc && mid_from < mid_to)
            queue_write(m, s, i, t->fd, mid_from, s->buf + (mid_from - s->base), (size_t)(mid_to - mid_from));
    }
    m->cache_dirty |= edges;
    io_uring_submit(&m->ring);
    return m->rc;
}

static int flush_current(struct restore_mirror *m)
{
    struct stage *s = m->cur;
    m->cur = NULL;
    if (!s || s->len == s->lead || m->rc)
        return m->rc;
    return submit_stage(m, s);
}

static struct stage *free_stage(struct restore_mirror *m)
{
    for (;;) {
        for (unsigned i = 0; i < STAGE_COUNT; i++)
            if (!m->stages[i].pending && &m->stages[i] != m->cur)
                return &m->stages[i];
        if (reap_until(m, m->inflight - 1))
            return NULL;
    }
}

/* Appends len bytes destined for disk offset off to the stages, writing full ones; data NULL:
 * zeros, set in the stage rather than copied from a buffer of them. */
int restore_mirror_append(struct restore_mirror *m, uint64_t off, const uint8_t *data, size_t len)
{
    while (len && !m->rc) {
        if (m->cur && off != m->cur->base + m->cur->len && flush_current(m))
            return m->rc;
        if (!m->cur) {
            if (!(m->cur = free_stage(m)))
                return m->rc;
            m->cur->base = off / m->align * m->align;
            m->cur->lead = m->cur->len = (size_t)(off - m->cur->base);
        }
        size_t n = STAGE_BYTES - m->cur->len < len ? STAGE_BYTES - m->cur->len : len;
        if (data) {
            memcpy(m->cur->buf + m->cur->len, data, n);
            data += n;
        } else {
            memset(m->cur->buf + m->cur->len, 0, n);
        }
        m->cur->len += n;
        off += n;
        len -= n;
        if (m->cur->len == STAGE_BYTES && flush_current(m)) /* ends aligned: STAGE_BYTES is a multiple */
            return m->rc;
    }
    return m->rc;
}

/* Zero on one target without writing the bytes: a hole in a file, BLKZEROOUT on a device. */
static bool zero_out(struct restore_target *t, uint64_t off, uint64_t len)
{
    if (off % t->align || len % t->align)
        return false;
    if (!t->info.is_block)
        return fallocate(t->fd_buffered, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0;
    uint64_t range[2] = {off, len};
    return ioctl(t->fd_buffered, BLKZEROOUT, range) == 0;
}

/* Makes [off, off+len) read as zeros on every target. A new file already does. */
int restore_mirror_zero(struct restore_mirror *m, uint64_t off, uint64_t len)
{
    if (flush_current(m) || reap_until(m, 0) || sync_cache(m))
        return m->rc;
    bool written = false;
    for (size_t i = 0; i < m->nt; i++) {
        if (m->t[i]->info.create)
            continue;
        touch(m->t[i]);
        if (!zero_out(m->t[i], off, len))
            written = true;
    }
    /* Some target could not zero it in place: write the zeros to all (harmless for the others). */
    while (written && len && !m->rc) {
        size_t n = len < STAGE_BYTES ? (size_t)len : STAGE_BYTES;
        restore_mirror_append(m, off, NULL, n);
        off += n;
        len -= n;
    }
    return m->rc;
}

static int mirror_switch(struct restore_mirror *m, struct restore_target **t, size_t nt)
{
    if (flush_current(m) || reap_until(m, 0) || sync_cache(m))
        return m->rc;
    m->t = t;
    m->nt = nt;
    m->align = 512;
    for (size_t i = 0; i < nt; i++)
        if (t[i]->align > m->align)
            m->align = t[i]->align;
    return ASR_OK;
}

int restore_mirror_new(size_t max_targets, struct asr_error *err, struct restore_mirror **out)
{
    struct restore_mirror *m = *out = calloc(1, sizeof *m);
    if (!m)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    *m = (struct restore_mirror){.err = err, .align = 512};
    unsigned depth = (unsigned)(STAGE_COUNT * max_targets * 2);
    if (depth > 4096)
        depth = 4096;
    int e = io_uring_queue_init(depth, &m->ring, 0);
    if (e < 0)
        return asr_fail_public(err, ASR_E_IO, "io_uring: %s", strerror(-e));
    m->ring_ready = true;
    m->arena = asr_iobuf_alloc((size_t)STAGE_COUNT * STAGE_BYTES); /* huge pages: iobuf.c says why */
    if (!m->arena)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the write stages");
    for (unsigned i = 0; i < STAGE_COUNT; i++) {
        m->stages[i].buf = m->arena + (size_t)i * STAGE_BYTES;
        m->stages[i].req = calloc(max_targets, sizeof *m->stages[i].req);
        if (!m->stages[i].req)
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the write stages");
    }
    return ASR_OK;
}

void restore_mirror_free(struct restore_mirror *m)
{
    if (!m)
        return;
    if (m->ring_ready) {
        int keep = m->rc;
        reap_until(m, 0);
        m->rc = keep;
        io_uring_queue_exit(&m->ring);
    }
    for (unsigned i = 0; i < STAGE_COUNT; i++)
        free(m->stages[i].req);
    free(m->arena);
    free(m);
}

int restore_mirror_targets(struct restore_mirror *m, struct restore_target **t, size_t nt)
{
    return mirror_switch(m, t, nt);
}

bool restore_mirror_holds(const struct restore_mirror *m, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < STAGE_COUNT; i++) {
        const struct stage *s = &m->stages[i];
        if ((s->pending || s == m->cur) && off < s->base + s->len && s->base + s->lead < off + len)
            return true;
    }
    return false;
}

int restore_mirror_flush(struct restore_mirror *m)
{
    if (!flush_current(m))
        reap_until(m, 0);
    return m->rc;
}

