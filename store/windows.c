/* Chunk records read from an object store in pack windows (windows.h). A restore asks for its
 * chunks one by one, in the order a backup wrote them into packs; on S3 a request per chunk would
 * bound it by the request rate (SPEC.md 19.9: about 100 GETs a second here, 25 MB/s of 256 KiB
 * chunks). So a record is read through a window: one ranged GET of a few MiB from the record on,
 * kept while the chunks after it are served from memory. Threads share the windows: a thread that
 * needs a window another is loading waits for it instead of asking again.
 *
 * A reader that waits for every window's GET leaves the link idle while it decodes, and the
 * server idle while it waits: told which records come next (store_windows_prefetch), two threads
 * of ours fetch the windows that hold them ahead of the reads. Memory stays bounded: STORE_WINDOWS
 * windows in all, of which at most STORE_WINDOWS_AHEAD hold records fetched ahead and not read
 * yet; a fetch ahead never evicts one of those, and advice that no longer names a window's
 * records frees it for reuse. */
#include "windows.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FETCHERS 2u
#define QUEUED (2 * STORE_WINDOWS_AHEAD) /* windows of advice kept to fetch as room frees */

enum { W_EMPTY, W_LOADING, W_READY };

struct window {
    int state;
    bool ahead;     /* fetched ahead, not read since */
    uint32_t pack;
    uint64_t start;
    size_t want;    /* bytes asked for */
    size_t len;     /* bytes the GET returned: fewer than want where the pack ends */
    uint64_t used;  /* last use, for the choice of a window to reuse */
    uint8_t *buf;
};

struct ahead_req {
    uint32_t pack;
    uint64_t start;
    size_t len;
    char key[STORE_WINDOWS_KEY];
};

struct store_windows {
    pthread_mutex_t mu;
    pthread_cond_t loaded; /* a window finished loading (or failed) */
    pthread_cond_t work;   /* advice came, a window fetched ahead was read, or stop */
    uint64_t clock;
    struct window w[STORE_WINDOWS];
    struct ahead_req q[QUEUED]; /* windows to fetch ahead, in the order needed */
    size_t nq;
    struct store_backend *b; /* of the advice */
    pthread_t fetcher[FETCHERS];
    unsigned fetchers;
    bool started, stop;
};

int store_windows_new(struct store_windows **out, struct asr_error *err)
{
    struct store_windows *ws = calloc(1, sizeof *ws);
    if (!ws)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for pack windows");
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->loaded, NULL);
    pthread_cond_init(&ws->work, NULL);
    *out = ws;
    return ASR_OK;
}

void store_windows_free(struct store_windows *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->mu);
    ws->stop = true;
    pthread_cond_broadcast(&ws->work);
    pthread_mutex_unlock(&ws->mu);
    for (unsigned i = 0; i < ws->fetchers; i++)
        pthread_join(ws->fetcher[i], NULL);
    for (unsigned i = 0; i < STORE_WINDOWS; i++)
        free(ws->w[i].buf);
    pthread_cond_destroy(&ws->work);
    pthread_cond_destroy(&ws->loaded);
    pthread_mutex_destroy(&ws->mu);
    free(ws);
}

/* A window of pack that holds [off, off + len), ready or loading; NULL when none. */
static struct window *covering(struct store_windows *ws, uint32_t pack, uint64_t off, size_t len)
{
    for (unsigned i = 0; i < STORE_WINDOWS; i++) {
        struct window *w = &ws->w[i];
        if (w->state == W_EMPTY || w->pack != pack || off < w->start)
            continue;
        uint64_t end = w->start + (w->state == W_READY ? w->len : w->want);
        if (off + len <= end)
            return w;
    }
    return NULL;
}

static unsigned ahead_count(const struct store_windows *ws)
{
    unsigned n = 0;
    for (unsigned i = 0; i < STORE_WINDOWS; i++)
        n += ws->w[i].state != W_EMPTY && ws->w[i].ahead;
    return n;
}

/* The window to load into: an empty one, else the least recently used no thread is loading,
 * leaving out those fetched ahead and not read yet (a read takes one of those when nothing else
 * is left, a fetch ahead never); NULL when none. */
static struct window *reusable(struct store_windows *ws, bool for_read)
{
    struct window *best = NULL;
    for (int pass = 0; pass < 2 && !best; pass++) {
        for (unsigned i = 0; i < STORE_WINDOWS; i++) {
            struct window *w = &ws->w[i];
            if (w->state == W_LOADING || (w->ahead && w->state != W_EMPTY && pass == 0))
                continue;
            if (w->state == W_EMPTY)
                return w;
            if (!best || w->used < best->used)
                best = w;
        }
        if (!for_read)
            break;
    }
    return best;
}

/* want bytes of the pack at off into buf (*got fewer where the pack ends). Swift's object server
 * computes the MD5 of every GET that starts at an object's byte 0, to quarantine a rotten object
 * when the GET reads to its end; a window never does (the pack's entry table and trailer follow its
 * records), so that MD5 is wasted: measured, three quarters of the object server's CPU on 16 MiB
 * GETs (20 GETs: 0.64 CPU s from byte 0, 0.17 from byte 1), taken from the cores a restore
 * decodes on. A pack's first record starts with the tag ACNK (SPEC.md 19.3, section 8), so a
 * window from byte 0 asks from byte 4 and writes the tag itself. Nothing is trusted the less: the
 * record's checks cover the rest, and the tag's own bytes are read by `store verify --read-data`. */
static int get_window(struct store_backend *b, const char *key, uint64_t off, uint8_t *buf, size_t want, size_t *got,
                      bool *missing, struct asr_error *err)
{
    static const uint8_t tag[4] = {'A', 'C', 'N', 'K'};
    if (off != 0 || want <= sizeof tag)
        return b->ops->get(b, key, off, buf, want, got, missing, err);
    int rc = b->ops->get(b, key, sizeof tag, buf + sizeof tag, want - sizeof tag, got, missing, err);
    if (rc != ASR_OK)
        return rc;
    if (!*got) /* a pack no longer than a tag: damaged, but its bytes are what it holds */
        return b->ops->get(b, key, 0, buf, want, got, missing, err);
    memcpy(buf, tag, sizeof tag);
    *got += sizeof tag;
    return ASR_OK;
}

/* Called with the lock held, returns with it held: want bytes of the pack at off into w. */
static int load(struct store_windows *ws, struct window *w, struct store_backend *b, uint32_t pack, const char *key,
                uint64_t off, size_t want, bool ahead, bool *missing, struct asr_error *err)
{
    w->state = W_LOADING;
    w->ahead = ahead;
    w->pack = pack;
    w->start = off;
    w->want = want;
    pthread_mutex_unlock(&ws->mu);
    int rc = w->buf || (w->buf = malloc(STORE_WINDOW_BYTES))
                 ? get_window(b, key, off, w->buf, want, &w->len, missing, err)
                 : asr_fail_public(err, ASR_E_NOMEM, "out of memory for a pack window");
    pthread_mutex_lock(&ws->mu);
    w->state = rc ? W_EMPTY : W_READY;
    w->used = ++ws->clock; /* a window just fetched is not the first to go */
    if (rc && ahead) {
        w->ahead = false;
        pthread_cond_broadcast(&ws->work); /* its place ahead is free again */
    }
    pthread_cond_broadcast(&ws->loaded);
    return rc;
}

/* Called with the lock held: the queued fetch ahead that holds [off, off + len) taken out of the
 * queue, its window in *start and *want; false when none does. */
static bool take_queued(struct store_windows *ws, uint32_t pack, uint64_t off, size_t len, uint64_t *start,
                        size_t *want)
{
    for (size_t i = 0; i < ws->nq; i++) {
        const struct ahead_req *q = &ws->q[i];
        if (q->pack == pack && off >= q->start && off + len <= q->start + q->len) {
            *start = q->start;
            *want = q->len;
            memmove(ws->q + i, ws->q + i + 1, (--ws->nq - i) * sizeof *ws->q);
            return true;
        }
    }
    return false;
}

int store_windows_read(struct store_windows *ws, struct store_backend *b, uint32_t pack, const char *key,
                       uint64_t off, void *buf, size_t len, size_t *got, bool *missing, struct asr_error *err)
{
    *got = 0;
    *missing = false;
    if (len > STORE_WINDOW_BYTES) /* a record larger than a window: read on its own */
        return b->ops->get(b, key, off, buf, len, got, missing, err);
    int rc = ASR_OK;
    pthread_mutex_lock(&ws->mu);
    for (;;) {
        struct window *w = covering(ws, pack, off, len);
        bool mine = false;
        if (!w && (w = reusable(ws, true))) {
            /* A window queued to be fetched ahead is fetched now, as it was planned: the fetch
             * ahead of the next one then starts where it ends. */
            uint64_t start = off;
            size_t want = len > STORE_READ_WINDOW_BYTES ? len : STORE_READ_WINDOW_BYTES;
            take_queued(ws, pack, off, len, &start, &want);
            if ((rc = load(ws, w, b, pack, key, start, want, false, missing, err)))
                break;
            mine = true; /* served even where the pack ends short of the record: got says so */
        }
        if (w && (mine || w->state == W_READY)) {
            size_t have = off - w->start < w->len ? (size_t)(w->len - (off - w->start)) : 0;
            *got = have < len ? have : len;
            memcpy(buf, w->buf + (off - w->start), *got);
            w->used = ++ws->clock;
            if (w->ahead) {
                w->ahead = false;
                pthread_cond_broadcast(&ws->work); /* room for one more ahead */
            }
            break;
        }
        pthread_cond_wait(&ws->loaded, &ws->mu); /* its window, or a free one, is being loaded */
    }
    pthread_mutex_unlock(&ws->mu);
    return rc;
}

static bool queued(const struct store_windows *ws, uint32_t pack, uint64_t off, size_t len)
{
    for (size_t i = 0; i < ws->nq; i++)
        if (ws->q[i].pack == pack && off >= ws->q[i].start && off + len <= ws->q[i].start + ws->q[i].len)
            return true;
    return false;
}

static void *fetcher_main(void *arg)
{
    struct store_windows *ws = arg;
    pthread_mutex_lock(&ws->mu);
    for (;;) {
        while (!ws->stop && (!ws->nq || ahead_count(ws) >= STORE_WINDOWS_AHEAD))
            pthread_cond_wait(&ws->work, &ws->mu);
        if (ws->stop)
            break;
        struct ahead_req rq = ws->q[0];
        memmove(ws->q, ws->q + 1, --ws->nq * sizeof *ws->q);
        struct window *w;
        if (covering(ws, rq.pack, rq.start, rq.len) || !(w = reusable(ws, false)))
            continue; /* there already (a read fetched it), or no room: the advice comes again */
        bool missing;
        struct asr_error err = {0};
        load(ws, w, ws->b, rq.pack, rq.key, rq.start, rq.len, true, &missing, &err); /* a read retries */
    }
    pthread_mutex_unlock(&ws->mu);
    return NULL;
}

/* Called with the lock held: windows fetched ahead that the advice no longer names are ordinary
 * windows again (reused first), so wrong advice cannot hold them. */
static void forget_unwanted(struct store_windows *ws, const struct store_want *want, size_t n)
{
    for (unsigned i = 0; i < STORE_WINDOWS; i++) {
        struct window *w = &ws->w[i];
        if (!w->ahead || w->state == W_EMPTY)
            continue;
        bool named = false;
        for (size_t j = 0; j < n && !named; j++)
            named = want[j].pack == w->pack && want[j].off >= w->start && want[j].off + want[j].len <= w->start + w->want;
        if (!named) {
            w->ahead = false;
            pthread_cond_broadcast(&ws->work);
        }
    }
}

void store_windows_prefetch(struct store_windows *ws, struct store_backend *b, const struct store_want *want,
                            size_t n)
{
    pthread_mutex_lock(&ws->mu);
    if (!ws->started) {
        ws->started = true;
        for (unsigned i = 0; i < FETCHERS; i++)
            if (pthread_create(&ws->fetcher[ws->fetchers], NULL, fetcher_main, ws) == 0)
                ws->fetchers++;
    }
    ws->b = b;
    forget_unwanted(ws, want, n);
    ws->nq = 0;
    for (size_t i = 0; i < n && ws->nq < QUEUED; i++) {
        const struct store_want *x = &want[i];
        if (x->len > STORE_WINDOW_BYTES || covering(ws, x->pack, x->off, x->len) || queued(ws, x->pack, x->off, x->len))
            continue;
        /* One window from this record to the last of the pack's records asked for that fits: the
         * records lie inside the pack, so the window never reaches past its end. */
        uint64_t end = x->off + x->len;
        for (size_t j = i + 1; j < n; j++)
            if (want[j].pack == x->pack && want[j].off >= x->off &&
                want[j].off + want[j].len <= x->off + STORE_WINDOW_BYTES && want[j].off + want[j].len > end)
                end = want[j].off + want[j].len;
        struct ahead_req *rq = &ws->q[ws->nq++];
        rq->pack = x->pack;
        rq->start = x->off;
        rq->len = (size_t)(end - x->off);
        memcpy(rq->key, x->key, sizeof rq->key);
        rq->key[sizeof rq->key - 1] = 0;
    }
    if (ws->nq)
        pthread_cond_broadcast(&ws->work);
    pthread_mutex_unlock(&ws->mu);
}
