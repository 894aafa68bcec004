/* Pack windows (store/windows.c): records read a window at a time from a backend that counts its
 * requests, bytes equal to the pack's, short packs, missing packs, threads sharing windows; windows
 * fetched ahead on advice: reads served by them, failures of theirs, their memory, their threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "windows.h"

#define PACK_BYTES (5u * STORE_WINDOW_BYTES / 2) /* two windows and a half */

struct fake {
    struct store_backend base;
    uint8_t *pack;
    size_t size;
    unsigned gets;
    pthread_mutex_t mu;
    /* Failures: a GET of a range that reaches fail_from fails while fail_left is not 0 (-1: always). */
    uint64_t fail_from;
    int fail_left;
    unsigned failed;
    unsigned delay_ms;   /* each GET takes this long */
    unsigned in_flight;
    uint64_t max_end;    /* the furthest byte any GET asked for */
    unsigned from_zero;  /* GETs that asked from byte 0 */
};

static int fake_get(struct store_backend *b, const char *key, uint64_t off, void *buf, size_t cap, size_t *got,
                    bool *missing, struct asr_error *err)
{
    struct fake *f = (struct fake *)b;
    pthread_mutex_lock(&f->mu);
    f->gets++;
    f->in_flight++;
    if (off + cap > f->max_end)
        f->max_end = off + cap;
    f->from_zero += off == 0;
    bool fail = f->fail_left != 0 && off + cap > f->fail_from;
    if (fail) {
        f->failed++;
        if (f->fail_left > 0)
            f->fail_left--;
    }
    pthread_mutex_unlock(&f->mu);
    if (f->delay_ms)
        nanosleep(&(struct timespec){.tv_nsec = (long)f->delay_ms * 1000000}, NULL);
    pthread_mutex_lock(&f->mu);
    f->in_flight--;
    pthread_mutex_unlock(&f->mu);
    *got = 0;
    if (fail)
        return asr_fail_public(err, ASR_E_IO, "%s: HTTP 500 at %llu", key, (unsigned long long)off);
    if (strcmp(key, "packs/aa/one")) {
        *missing = true;
        return asr_fail_public(err, ASR_E_IO, "%s: not there", key);
    }
    if (off < f->size)
        *got = f->size - off < cap ? f->size - off : cap;
    memcpy(buf, f->pack + off, *got);
    return ASR_OK;
}

static const struct store_backend_ops fake_ops = {.get = fake_get};

static struct fake *fake_new(size_t size)
{
    struct fake *f = calloc(1, sizeof *f);
    f->base.ops = &fake_ops;
    f->base.remote = true;
    f->size = size;
    f->fail_from = UINT64_MAX;
    f->pack = malloc(size);
    for (size_t i = 0; i < size; i++)
        f->pack[i] = (uint8_t)(i * 2654435761u >> 13);
    memcpy(f->pack, "ACNK", size < 4 ? size : 4); /* a pack starts with its first record's tag */
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

static void fake_free(struct fake *f)
{
    pthread_mutex_destroy(&f->mu);
    free(f->pack);
    free(f);
}

/* A set of windows to read through (asserting it is made). */
static struct store_windows *windows(void)
{
    struct store_windows *ws;
    struct asr_error err = {0};
    cr_assert_eq(store_windows_new(&ws, &err), ASR_OK, "%s", err.msg);
    return ws;
}

static void done(struct store_windows *ws, struct fake *f)
{
    store_windows_free(ws);
    fake_free(f);
}

Test(store_windows, sequential_records_take_one_request_per_window)
{
    const size_t pack_bytes = 5u * STORE_READ_WINDOW_BYTES / 2;
    struct fake *f = fake_new(pack_bytes);
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    uint8_t *buf = malloc(300000);
    for (uint64_t off = 0; off + 300000 <= pack_bytes; off += 300000) {
        size_t got;
        bool missing;
        cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", off, buf, 300000, &got, &missing, &err),
                     ASR_OK, "%s", err.msg);
        cr_assert_eq(got, 300000);
        cr_assert(!memcmp(buf, f->pack + off, got), "bytes at %llu", (unsigned long long)off);
    }
    /* Two windows and a half, each window starting at the record that did not fit the last: 3. */
    cr_assert_eq(f->gets, 3, "%u requests", f->gets);
    free(buf);
    done(ws, f);
}

Test(store_windows, a_pack_that_ends_early_gives_a_short_read_once)
{
    struct fake *f = fake_new(1000);
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    uint8_t buf[4096];
    size_t got = 99;
    bool missing;
    cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", 900, buf, 200, &got, &missing, &err), ASR_OK);
    cr_assert_eq(got, 100);
    cr_assert(!memcmp(buf, f->pack + 900, 100));
    cr_assert_eq(f->gets, 1);
    done(ws, f);
}

Test(store_windows, a_missing_pack_says_so)
{
    struct fake *f = fake_new(1000);
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    uint8_t buf[64];
    size_t got;
    bool missing = false;
    cr_assert_neq(store_windows_read(ws, &f->base, 1, "packs/bb/two", 0, buf, 64, &got, &missing, &err), ASR_OK);
    cr_assert(missing);
    /* The failed window is free again: the next read of the good pack works. */
    cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", 0, buf, 64, &got, &missing, &err), ASR_OK);
    cr_assert(!memcmp(buf, f->pack, 64));
    done(ws, f);
}

/* Swift's object server hashes every GET that starts at byte 0 (store/windows.c): a window from a
 * pack's start asks from its fifth byte and writes the first record's tag itself; a pack no longer
 * than a tag is read as it is. */
Test(store_windows, a_window_from_a_packs_start_does_not_ask_for_byte_0)
{
    struct fake *f = fake_new(1000);
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    uint8_t buf[1000];
    size_t got;
    bool missing = false;
    cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", 0, buf, 600, &got, &missing, &err), ASR_OK,
                 "%s", err.msg);
    cr_assert_eq(got, 600);
    cr_assert(!memcmp(buf, f->pack, 600));
    cr_assert_eq(f->from_zero, 0);
    done(ws, f);

    f = fake_new(3); /* no longer than a tag: its bytes as they are */
    ws = windows();
    cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", 0, buf, 3, &got, &missing, &err), ASR_OK,
                 "%s", err.msg);
    cr_assert_eq(got, 3);
    cr_assert(!memcmp(buf, f->pack, 3));
    done(ws, f);
}

struct reader {
    struct fake *f;
    struct store_windows *ws;
    unsigned seed;
    int bad;
};

static void *read_random(void *arg)
{
    struct reader *r = arg;
    uint8_t *buf = malloc(1 << 20);
    for (int i = 0; i < 300; i++) {
        r->seed = r->seed * 1103515245u + 12345u;
        size_t len = 1 + r->seed % (1 << 20);
        uint64_t off = (r->seed >> 7) % (PACK_BYTES - len);
        size_t got;
        bool missing;
        struct asr_error err = {0};
        if (store_windows_read(r->ws, &r->f->base, 0, "packs/aa/one", off, buf, len, &got, &missing, &err) ||
            got != len || memcmp(buf, r->f->pack + off, len))
            r->bad++;
    }
    free(buf);
    return NULL;
}

Test(store_windows, threads_share_windows_and_read_right_bytes)
{
    struct fake *f = fake_new(PACK_BYTES);
    struct store_windows *ws = windows();
    pthread_t t[8];
    struct reader r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct reader){f, ws, (unsigned)i * 7919u + 1u, 0};
        pthread_create(&t[i], NULL, read_random, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(r[i].bad, 0, "thread %d read wrong bytes %d times", i, r[i].bad);
    }
    done(ws, f);
}

/* ---- fetches ahead -------------------------------------------------------------------------- */

#define RECORD (256u << 10)

static unsigned gets_of(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned n = f->gets;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Waits (up to 5 s) until the fake has seen at least n GETs, then a little more, so that a GET
 * too many would show. */
static unsigned wait_gets(struct fake *f, unsigned n)
{
    for (int i = 0; i < 500 && gets_of(f) < n; i++)
        usleep(10000);
    usleep(50000);
    return gets_of(f);
}

/* The advice: every RECORD-byte record of the pack from `from` to `to`. */
static struct store_want *wants(uint64_t from, uint64_t to, size_t *n)
{
    *n = (size_t)((to - from) / RECORD);
    struct store_want *w = calloc(*n, sizeof *w);
    for (size_t i = 0; i < *n; i++) {
        w[i] = (struct store_want){.pack = 0, .len = RECORD, .off = from + i * RECORD};
        strcpy(w[i].key, "packs/aa/one");
    }
    return w;
}

/* wants(from, to) given to ws as advice; the advice returned, calloc'd. */
static struct store_want *fetch_ahead(struct store_windows *ws, struct fake *f, uint64_t from, uint64_t to, size_t *n)
{
    struct store_want *w = wants(from, to, n);
    store_windows_prefetch(ws, &f->base, w, *n);
    return w;
}

static int read_record(struct store_windows *ws, struct fake *f, uint64_t off, uint8_t *buf, struct asr_error *err)
{
    size_t got;
    bool missing;
    int rc = store_windows_read(ws, &f->base, 0, "packs/aa/one", off, buf, RECORD, &got, &missing, err);
    if (!rc && (got != RECORD || memcmp(buf, f->pack + off, RECORD)))
        return -1;
    return rc;
}

Test(store_windows, fetched_ahead_windows_serve_the_reads_without_new_requests)
{
    struct fake *f = fake_new(PACK_BYTES);
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    size_t n;
    struct store_want *w = fetch_ahead(ws, f, 0, PACK_BYTES, &n);
    /* Two windows and a half of records: three windows, fetched before any read. */
    cr_assert_eq(wait_gets(f, 3), 3, "%u requests ahead", gets_of(f));
    uint8_t *buf = malloc(RECORD);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(read_record(ws, f, w[i].off, buf, &err), ASR_OK, "record at %llu: %s",
                     (unsigned long long)w[i].off, err.msg);
    cr_assert_eq(gets_of(f), 3, "the reads made %u requests more", gets_of(f) - 3);
    free(buf);
    free(w);
    done(ws, f);
}

Test(store_windows, a_fetch_ahead_ends_at_the_last_record_asked_for)
{
    /* The records end 100 KiB before the pack does (its entry table and trailer): no window
     * reaches past them, even where they end short of a window. */
    struct fake *f = fake_new(10 * RECORD + (100u << 10));
    struct store_windows *ws = windows();
    size_t n;
    struct store_want *w = fetch_ahead(ws, f, 0, 10 * RECORD, &n);
    cr_assert_eq(wait_gets(f, 1), 1);
    cr_assert_eq(f->max_end, 10 * RECORD, "a request reached byte %llu", (unsigned long long)f->max_end);
    free(w);
    done(ws, f);
}

Test(store_windows, a_failed_fetch_ahead_does_not_fail_a_read_that_does_not_need_it)
{
    struct fake *f = fake_new(PACK_BYTES);
    f->fail_from = STORE_WINDOW_BYTES; /* every request reaching past the first window fails */
    f->fail_left = -1;
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    size_t n;
    struct store_want *w = fetch_ahead(ws, f, 0, PACK_BYTES, &n);
    wait_gets(f, 3);
    cr_assert_geq(f->failed, 2, "the fetches ahead past the first window were not tried (%u)", f->failed);
    uint8_t *buf = malloc(RECORD);
    for (uint64_t off = 0; off < STORE_WINDOW_BYTES; off += RECORD)
        cr_assert_eq(read_record(ws, f, off, buf, &err), ASR_OK, "record at %llu: %s", (unsigned long long)off,
                     err.msg);
    /* A read that needs a window whose fetch ahead failed fetches it again, and reports its own
     * failure. */
    unsigned before = gets_of(f);
    cr_assert_neq(read_record(ws, f, STORE_WINDOW_BYTES, buf, &err), ASR_OK);
    cr_assert(strstr(err.msg, "HTTP 500"), "%s", err.msg);
    cr_assert_gt(gets_of(f), before, "the read did not fetch its window again");
    free(buf);
    free(w);
    done(ws, f);
}

Test(store_windows, a_read_retries_a_window_whose_fetch_ahead_failed)
{
    struct fake *f = fake_new(PACK_BYTES);
    f->fail_from = STORE_WINDOW_BYTES;
    f->fail_left = 1; /* the first request past the first window fails, as a fetch ahead */
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    size_t n;
    struct store_want *w = fetch_ahead(ws, f, 0, PACK_BYTES, &n);
    wait_gets(f, 3);
    cr_assert_eq(f->failed, 1, "no fetch ahead failed (%u)", f->failed);
    uint8_t *buf = malloc(RECORD);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(read_record(ws, f, w[i].off, buf, &err), ASR_OK, "record at %llu: %s",
                     (unsigned long long)w[i].off, err.msg);
    free(buf);
    free(w);
    done(ws, f);
}

Test(store_windows, fetches_ahead_hold_a_bounded_number_of_windows)
{
    struct fake *f = fake_new(8 * (size_t)STORE_WINDOW_BYTES);
    struct store_windows *ws = windows();
    struct asr_error err = {0};
    size_t n;
    struct store_want *w = fetch_ahead(ws, f, 0, 8 * (uint64_t)STORE_WINDOW_BYTES, &n);
    /* Eight windows asked for, but no more windows fetched ahead than may wait unread. */
    cr_assert_eq(wait_gets(f, STORE_WINDOWS_AHEAD), STORE_WINDOWS_AHEAD, "%u windows fetched ahead", gets_of(f));
    /* Reading the first window frees its place: the next one is fetched, and only it. */
    uint8_t *buf = malloc(RECORD);
    for (uint64_t off = 0; off < STORE_WINDOW_BYTES; off += RECORD)
        cr_assert_eq(read_record(ws, f, off, buf, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(wait_gets(f, STORE_WINDOWS_AHEAD + 1), STORE_WINDOWS_AHEAD + 1, "%u requests", gets_of(f));
    /* Advice for other records frees the windows the old advice filled: they are fetched too. */
    size_t n2;
    struct store_want *w2 = fetch_ahead(ws, f, 6 * (uint64_t)STORE_WINDOW_BYTES, 8 * (uint64_t)STORE_WINDOW_BYTES, &n2);
    cr_assert_eq(wait_gets(f, STORE_WINDOWS_AHEAD + 3), STORE_WINDOWS_AHEAD + 3, "%u requests", gets_of(f));
    for (size_t i = 0; i < n2; i++)
        cr_assert_eq(read_record(ws, f, w2[i].off, buf, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(gets_of(f), STORE_WINDOWS_AHEAD + 3);
    free(buf);
    free(w2);
    free(w);
    done(ws, f);
}

Test(store_windows, free_waits_for_the_fetches_in_flight)
{
    struct fake *f = fake_new(PACK_BYTES);
    f->delay_ms = 300;
    struct store_windows *ws = windows();
    size_t n;
    struct store_want *w = fetch_ahead(ws, f, 0, PACK_BYTES, &n);
    for (int i = 0; i < 500 && !gets_of(f); i++)
        usleep(1000);
    cr_assert_gt(gets_of(f), 0, "nothing fetched ahead");
    store_windows_free(ws); /* with GETs in flight into its windows: it waits for them */
    pthread_mutex_lock(&f->mu);
    unsigned flying = f->in_flight;
    pthread_mutex_unlock(&f->mu);
    cr_assert_eq(flying, 0, "%u GETs still running after free", flying);
    free(w);
    fake_free(f);
}
