/* Chunk records read from an object store in pack windows (windows.h). A restore asks for its
 * chunks one by one, in the order a backup wrote them into packs; on S3 a request per chunk would
 * bound it by the request rate (SPEC.md 19.9: about 100 GETs a second here, 25 MB/s of 256 KiB
 * chunks). So a record is read through a window: one ranged GET of WINDOW_BYTES from the record
 * on, kept while the chunks after it are served from memory. Threads share the windows: a thread
 * that needs a window another is loading waits for it instead of asking again. */
#include "windows.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_BYTES (8u << 20)
#define WINDOWS 6u

enum { W_EMPTY, W_LOADING, W_READY };

struct window {
    int state;
    uint32_t pack;
    uint64_t start;
    size_t len;     /* bytes the GET returned: fewer than WINDOW_BYTES where the pack ends */
    uint64_t used;  /* last use, for the choice of a window to reuse */
    uint8_t *buf;
};

struct store_windows {
    pthread_mutex_t mu;
    pthread_cond_t loaded;
    uint64_t clock;
    struct window w[WINDOWS];
};

int store_windows_new(struct store_windows **out, struct asr_error *err)
{
    struct store_windows *ws = calloc(1, sizeof *ws);
    if (!ws)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for pack windows");
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->loaded, NULL);
    *out = ws;
    return ASR_OK;
}

void store_windows_free(struct store_windows *ws)
{
    if (!ws)
        return;
    for (unsigned i = 0; i < WINDOWS; i++)
        free(ws->w[i].buf);
    pthread_cond_destroy(&ws->loaded);
    pthread_mutex_destroy(&ws->mu);
    free(ws);
}

/* A window of pack that holds [off, off + len), ready or loading; NULL when none. */
static struct window *covering(struct store_windows *ws, uint32_t pack, uint64_t off, size_t len)
{
    for (unsigned i = 0; i < WINDOWS; i++) {
        struct window *w = &ws->w[i];
        if (w->state == W_EMPTY || w->pack != pack || off < w->start)
            continue;
        uint64_t end = w->start + (w->state == W_READY ? w->len : WINDOW_BYTES);
        if (off + len <= end)
            return w;
    }
    return NULL;
}

/* The least recently used window no thread is loading, or NULL when all are loading. */
static struct window *reusable(struct store_windows *ws)
{
    struct window *best = NULL;
    for (unsigned i = 0; i < WINDOWS; i++) {
        struct window *w = &ws->w[i];
        if (w->state != W_LOADING && (!best || w->used < best->used))
            best = w;
    }
    return best;
}

/* Called with the lock held, returns with it held: w loaded from the pack at off. */
static int load(struct store_windows *ws, struct window *w, struct store_backend *b, uint32_t pack, const char *key,
                uint64_t off, bool *missing, struct asr_error *err)
{
    w->state = W_LOADING;
    w->pack = pack;
    w->start = off;
    pthread_mutex_unlock(&ws->mu);
    int rc = w->buf || (w->buf = malloc(WINDOW_BYTES))
                 ? b->ops->get(b, key, off, w->buf, WINDOW_BYTES, &w->len, missing, err)
                 : asr_fail_public(err, ASR_E_NOMEM, "out of memory for a pack window");
    pthread_mutex_lock(&ws->mu);
    w->state = rc ? W_EMPTY : W_READY;
    pthread_cond_broadcast(&ws->loaded);
    return rc;
}

int store_windows_read(struct store_windows *ws, struct store_backend *b, uint32_t pack, const char *key,
                       uint64_t off, void *buf, size_t len, size_t *got, bool *missing, struct asr_error *err)
{
    *got = 0;
    *missing = false;
    if (len > WINDOW_BYTES) /* a record larger than a window: read on its own */
        return b->ops->get(b, key, off, buf, len, got, missing, err);
    int rc = ASR_OK;
    pthread_mutex_lock(&ws->mu);
    for (;;) {
        struct window *w = covering(ws, pack, off, len);
        bool mine = false;
        if (!w && (w = reusable(ws))) {
            if ((rc = load(ws, w, b, pack, key, off, missing, err)))
                break;
            mine = true; /* served even where the pack ends short of the record: got says so */
        }
        if (w && (mine || w->state == W_READY)) {
            size_t have = off - w->start < w->len ? (size_t)(w->len - (off - w->start)) : 0;
            *got = have < len ? have : len;
            memcpy(buf, w->buf + (off - w->start), *got);
            w->used = ++ws->clock;
            break;
        }
        pthread_cond_wait(&ws->loaded, &ws->mu); /* its window, or a free one, is being loaded */
    }
    pthread_mutex_unlock(&ws->mu);
    return rc;
}
