/* io_uring reads of used ranges. Neighbouring ranges separated by less than GAP_MAX are
 * coalesced into one request (reading a small hole costs less than another request), requests
 * are up to request_size bytes, aligned for O_DIRECT, and depth of them are in flight while
 * the caller consumes completed ones strictly in order. Liburing's -errno convention stays
 * inside this file; callers get enum asr_status and a message. */
#include "source.h"

#include "clock.h"
#include "grow.h"
#include "iobuf.h"
#include "readat.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALIGN 4096u           /* O_DIRECT: buffer, offset and length alignment that suits all */
#define GAP_MAX (64u << 10)   /* unused bytes worth reading through to save a request */
#define MAX_DEPTH 64u

/* A request covers ranges [first, last] of the plan, from first_skip bytes into range first to
 * last_end bytes into range last, read as the aligned span [aligned, aligned + aligned_len). */
struct request {
    uint8_t *buf;
    uint64_t aligned, aligned_len;
    uint64_t start, end; /* disk bytes the ranges need: [start, end) */
    size_t first, last;
    uint64_t first_skip, last_end;
    bool done, failed;
    int res;             /* bytes read, or -errno */
    /* Unreadable runs found by probing, in disk order: [bad[i].offset, +length). */
    struct asr_range *bad;
    size_t bad_n, bad_cap;
};

struct source {
    struct source_config cfg;
    int direct_fd; /* -1 when O_DIRECT is not possible: reads go through cfg.fd */
    struct io_uring ring;
    bool ring_ok;
    struct request req[MAX_DEPTH];
    /* The plan: ranges of the current volume. */
    uint64_t base;
    const struct asr_range *ranges;
    size_t count;
    size_t plan_range;     /* next range to put into a request */
    uint64_t plan_skip;    /* bytes of it already requested */
    uint64_t submitted, delivered; /* request sequence numbers */
    /* Delivery cursor inside request delivered % depth. */
    size_t cur_range;
    uint64_t cur_pos;      /* disk offset of the next byte to deliver */
    bool cur_active;
    uint64_t wait_ns;
    uint8_t *arena; /* the requests' buffers, one after another */
};

int source_open(const struct source_config *cfg, struct source **out, struct asr_error *err)
{
    *out = NULL;
    struct source *s = calloc(1, sizeof *s);
    if (!s)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the reader");
    s->cfg = *cfg;
    if (!s->cfg.request_size)
        s->cfg.request_size = 1u << 20;
    if (!s->cfg.depth)
        s->cfg.depth = 16;
    if (s->cfg.depth > MAX_DEPTH)
        s->cfg.depth = MAX_DEPTH;
    if (!s->cfg.probe_unit)
        s->cfg.probe_unit = 512;
    s->cfg.request_size = (s->cfg.request_size + ALIGN - 1) / ALIGN * ALIGN;
    /* O_DIRECT keeps a backup from evicting the machine's page cache and skips a copy; tmpfs and
     * some FUSE filesystems refuse it, and then the ordinary descriptor serves. */
    s->direct_fd = open(cfg->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    int rc = io_uring_queue_init(s->cfg.depth, &s->ring, 0);
    if (rc < 0) {
        source_close(s);
        return asr_fail_public(err, ASR_E_IO, "io_uring_queue_init: %s", strerror(-rc));
    }
    s->ring_ok = true;
    /* One arena for all requests, in huge pages where possible (iobuf.c says why). */
    size_t stride = s->cfg.request_size + 2 * (size_t)ALIGN;
    s->arena = asr_iobuf_alloc(stride * s->cfg.depth);
    if (!s->arena) {
        source_close(s);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for read buffers");
    }
    for (uint32_t i = 0; i < s->cfg.depth; i++)
        s->req[i].buf = s->arena + i * stride;
    *out = s;
    return ASR_OK;
}

void source_close(struct source *s)
{
    if (!s)
        return;
    if (s->ring_ok) {
        /* Requests still in flight (an error stopped the caller) must land before the buffers go.
         * Only those not done: waiting for the oldest reaps younger completions too, and their
         * completions will never come again. */
        uint64_t pending = 0;
        for (uint64_t seq = s->delivered; seq < s->submitted; seq++)
            pending += !s->req[seq % s->cfg.depth].done;
        while (pending) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&s->ring, &cqe);
            if (rc == -EINTR)
                continue;
            if (rc < 0)
                break;
            io_uring_cqe_seen(&s->ring, cqe);
            pending--;
        }
        io_uring_queue_exit(&s->ring);
    }
    for (uint32_t i = 0; i < MAX_DEPTH; i++) {
        free(s->req[i].bad);
    }
    free(s->arena);
    if (s->direct_fd >= 0)
        close(s->direct_fd);
    free(s);
}

bool source_direct(const struct source *s)
{
    return s->direct_fd >= 0;
}

uint64_t source_wait_ns(const struct source *s)
{
    return s->wait_ns;
}

int source_start(struct source *s, uint64_t base, const struct asr_range *ranges, size_t count,
                     struct asr_error *err)
{
    if (s->submitted != s->delivered)
        return asr_fail_public(err, ASR_E_STATE, "reader: previous volume not finished");
    s->base = base;
    s->ranges = ranges;
    s->count = count;
    s->plan_range = 0;
    s->plan_skip = 0;
    s->cur_active = false;
    return ASR_OK;
}

/* Builds the next request from the plan; false when the plan is used up. */
static bool plan_request(struct source *s, struct request *r)
{
    if (s->plan_range >= s->count)
        return false;
    const struct asr_range *v = s->ranges;
    uint64_t limit = s->cfg.request_size;
    r->first = s->plan_range;
    r->first_skip = s->plan_skip;
    r->start = s->base + v[r->first].offset + r->first_skip;
    uint64_t end = r->start;
    for (;;) {
        const struct asr_range *g = &v[s->plan_range];
        uint64_t avail = g->length - s->plan_skip, room = limit - (end - r->start);
        uint64_t take = avail < room ? avail : room;
        s->plan_skip += take;
        end += take;
        r->last = s->plan_range;
        r->last_end = s->plan_skip;
        if (s->plan_skip == g->length) {
            s->plan_range++;
            s->plan_skip = 0;
        }
        if (take < avail || s->plan_range >= s->count)
            break;
        uint64_t next = s->base + v[s->plan_range].offset;
        if (next - end > GAP_MAX || next + 1 - r->start > limit)
            break;
        end = next; /* read through the hole */
    }
    r->end = end;
    r->aligned = r->start / ALIGN * ALIGN;
    uint64_t aend = (r->end + ALIGN - 1) / ALIGN * ALIGN;
    r->aligned_len = aend - r->aligned;
    r->done = r->failed = false;
    r->bad_n = 0;
    return true;
}

static void submit_more(struct source *s)
{
    bool any = false;
    /* A free submission entry first: a request planned without one would be lost. */
    while (s->submitted - s->delivered < s->cfg.depth && io_uring_sq_space_left(&s->ring) > 0) {
        struct request *r = &s->req[s->submitted % s->cfg.depth];
        if (!plan_request(s, r))
            break;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
        int fd = s->direct_fd >= 0 ? s->direct_fd : s->cfg.fd;
        io_uring_prep_read(sqe, fd, r->buf, (unsigned)r->aligned_len, r->aligned);
        io_uring_sqe_set_data64(sqe, s->submitted);
        s->submitted++;
        any = true;
    }
    if (any)
        io_uring_submit(&s->ring);
}

static int add_bad(struct request *r, uint64_t off, uint64_t len)
{
    if (r->bad_n && r->bad[r->bad_n - 1].offset + r->bad[r->bad_n - 1].length == off) {
        r->bad[r->bad_n - 1].length += len;
        return 0;
    }
    struct asr_range *v = asr_grow(r->bad, &r->bad_cap, r->bad_n + 1, sizeof *v, 8);
    if (!v)
        return -1;
    r->bad = v;
    r->bad[r->bad_n++] = (struct asr_range){off, len};
    return 0;
}

/* A failed request, read again unit by unit, each unit a few times (read_tries): good units
 * land in the buffer, bad ones become unreadable runs, or stop the volume naming the first of
 * them unless ignore_read_errors. A disk that is gone stops it in any case: every read after it
 * would fail, and recording the rest of the disk as unreadable, unit by unit, is no backup. The
 * O_DIRECT descriptor serves when there is one: a buffered read fails for every sector sharing a
 * page-cache page with a bad one, which would record good sectors as unreadable. */
static int probe(struct source *s, struct request *r, struct asr_error *err)
{
    uint64_t unit = s->cfg.probe_unit;
    for (uint64_t off = r->start / unit * unit; off < r->end; off += unit) {
        uint64_t len = off + unit <= s->cfg.disk_size ? unit : s->cfg.disk_size - off;
        uint8_t *at = r->buf + (off - r->aligned);
        int rc = -EINVAL;
        if (s->direct_fd >= 0 && len == unit)
            rc = read_tries(s->direct_fd, at, (size_t)len, off);
        if (rc == -EINVAL) /* a unit O_DIRECT cannot take: the tail of a disk not sector-sized */
            rc = read_tries(s->cfg.fd, at, (size_t)len, off);
        if (rc == 0)
            continue;
        uint64_t now;
        if (read_gone(s->cfg.fd, rc, s->cfg.disk_size, &now))
            return asr_fail_public(err, ASR_E_IO, "reading %s at byte %llu: %s: the disk is gone (its size reads as %llu "
                                                  "bytes, not %llu)",
                                   s->cfg.path, (unsigned long long)off, read_strerror(rc), (unsigned long long)now,
                                   (unsigned long long)s->cfg.disk_size);
        if (!s->cfg.ignore_read_errors)
            return asr_fail_public(err, ASR_E_IO, "reading %s at byte %llu: %s", s->cfg.path,
                                   (unsigned long long)off, read_strerror(rc));
        memset(at, 0, (size_t)len);
        if (add_bad(r, off, len))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory recording unreadable ranges");
    }
    return ASR_OK;
}

static void note_completion(struct source *s, struct io_uring_cqe *cqe)
{
    uint64_t seq = io_uring_cqe_get_data64(cqe);
    struct request *q = &s->req[seq % s->cfg.depth];
    q->res = cqe->res;
    q->done = true;
    io_uring_cqe_seen(&s->ring, cqe);
}

enum asr_peek source_peek(struct source *s, uint64_t request, struct span *span)
{
    if (request < s->delivered)
        return ASR_PEEK_NEVER;
    if (request >= s->submitted)
        return ASR_PEEK_NOT_YET;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&s->ring, &cqe) == 0)
        note_completion(s, cqe);
    const struct request *r = &s->req[request % s->cfg.depth];
    if (!r->done)
        return ASR_PEEK_NOT_YET;
    if (r->res < 0 || (uint64_t)r->res < r->end - r->aligned)
        return ASR_PEEK_NEVER;
    span->data = r->buf + (r->start - r->aligned);
    span->len = (size_t)(r->end - r->start);
    return ASR_PEEK_READY;
}

/* Waits until request r (the oldest) has completed and holds [start, end) or is probed. */
static int complete_oldest(struct source *s, struct request *r, struct asr_error *err)
{
    uint64_t t0 = asr_now_ns();
    while (!r->done) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&s->ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return asr_fail_public(err, ASR_E_IO, "io_uring: %s", strerror(-rc));
        note_completion(s, cqe);
    }
    s->wait_ns += asr_now_ns() - t0;
    uint64_t need = r->end - r->aligned;
    if (r->res >= 0 && (uint64_t)r->res < need) {
        /* Short read: finish it with ordinary reads (no alignment needed there). */
        uint64_t got = (uint64_t)r->res;
        int rc = asr_pread_full(s->cfg.fd, r->buf + got, (size_t)(need - got), r->aligned + got);
        r->res = rc == 0 ? (int)need : rc < 0 ? rc : -EIO;
    }
    /* The failed request may be large: probing names the bad sectors themselves, and when it
     * finds none (the error came and went) the probe's reads hold the data. */
    return r->res < 0 ? probe(s, r, err) : ASR_OK;
}

/* The first bad run at or after pos within r, or NULL. */
static const struct asr_range *bad_at_or_after(const struct request *r, uint64_t pos)
{
    for (size_t i = 0; i < r->bad_n; i++)
        if (r->bad[i].offset + r->bad[i].length > pos)
            return &r->bad[i];
    return NULL;
}

int source_next(struct source *s, struct piece *piece, struct asr_error *err)
{
    *piece = (struct piece){0};
    for (;;) {
        submit_more(s);
        if (s->delivered == s->submitted)
            return ASR_OK; /* the volume is done */
        struct request *r = &s->req[s->delivered % s->cfg.depth];
        if (!s->cur_active) {
            int rc = complete_oldest(s, r, err);
            if (rc != ASR_OK)
                return rc;
            s->cur_active = true;
            s->cur_range = r->first;
            s->cur_pos = s->base + s->ranges[r->first].offset + r->first_skip;
        }
        /* The rest of the current range inside this request. */
        const struct asr_range *g = &s->ranges[s->cur_range];
        uint64_t range_end = s->base + g->offset + (s->cur_range == r->last ? r->last_end : g->length);
        if (s->cur_pos < range_end) {
            uint64_t pos = s->cur_pos, end = range_end;
            const struct asr_range *b = bad_at_or_after(r, pos);
            bool bad = b && b->offset <= pos;
            if (bad && b->offset + b->length < end)
                end = b->offset + b->length;
            else if (!bad && b && b->offset < end)
                end = b->offset;
            piece->disk_offset = pos;
            piece->len = (size_t)(end - pos);
            piece->unreadable = bad;
            piece->data = bad ? NULL : r->buf + (pos - r->aligned);
            piece->request = s->delivered;
            piece->request_offset = (size_t)(pos - r->start);
            s->cur_pos = end;
            return ASR_OK;
        }
        if (s->cur_range < r->last) {
            s->cur_range++;
            s->cur_pos = s->base + s->ranges[s->cur_range].offset;
            continue;
        }
        s->cur_active = false; /* request used up: its buffer goes back to the pool */
        s->delivered++;
    }
}
