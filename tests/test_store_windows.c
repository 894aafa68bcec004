/* Pack windows (store/windows.c): records read a window at a time from a backend that counts its
 * requests, bytes equal to the pack's, short packs, missing packs, threads sharing windows. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "windows.h"

#define PACK_BYTES (20u << 20)

struct fake {
    struct store_backend base;
    uint8_t *pack;
    size_t size;
    unsigned gets;
    pthread_mutex_t mu;
};

static int fake_get(struct store_backend *b, const char *key, uint64_t off, void *buf, size_t cap, size_t *got,
                    bool *missing, struct asr_error *err)
{
    struct fake *f = (struct fake *)b;
    pthread_mutex_lock(&f->mu);
    f->gets++;
    pthread_mutex_unlock(&f->mu);
    *got = 0;
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
    f->pack = malloc(size);
    for (size_t i = 0; i < size; i++)
        f->pack[i] = (uint8_t)(i * 2654435761u >> 13);
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

static void fake_free(struct fake *f)
{
    pthread_mutex_destroy(&f->mu);
    free(f->pack);
    free(f);
}

Test(store_windows, sequential_records_take_one_request_per_window)
{
    struct fake *f = fake_new(PACK_BYTES);
    struct store_windows *ws;
    struct asr_error err = {0};
    cr_assert_eq(store_windows_new(&ws, &err), ASR_OK);
    uint8_t *buf = malloc(300000);
    for (uint64_t off = 0; off + 300000 <= PACK_BYTES; off += 300000) {
        size_t got;
        bool missing;
        cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", off, buf, 300000, &got, &missing, &err),
                     ASR_OK, "%s", err.msg);
        cr_assert_eq(got, 300000);
        cr_assert(!memcmp(buf, f->pack + off, got), "bytes at %llu", (unsigned long long)off);
    }
    /* 20 MiB in 8 MiB windows, each starting at the record that did not fit the last: 3. */
    cr_assert_eq(f->gets, 3, "%u requests", f->gets);
    free(buf);
    store_windows_free(ws);
    fake_free(f);
}

Test(store_windows, a_pack_that_ends_early_gives_a_short_read_once)
{
    struct fake *f = fake_new(1000);
    struct store_windows *ws;
    struct asr_error err = {0};
    cr_assert_eq(store_windows_new(&ws, &err), ASR_OK);
    uint8_t buf[4096];
    size_t got = 99;
    bool missing;
    cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", 900, buf, 200, &got, &missing, &err), ASR_OK);
    cr_assert_eq(got, 100);
    cr_assert(!memcmp(buf, f->pack + 900, 100));
    cr_assert_eq(f->gets, 1);
    store_windows_free(ws);
    fake_free(f);
}

Test(store_windows, a_missing_pack_says_so)
{
    struct fake *f = fake_new(1000);
    struct store_windows *ws;
    struct asr_error err = {0};
    cr_assert_eq(store_windows_new(&ws, &err), ASR_OK);
    uint8_t buf[64];
    size_t got;
    bool missing = false;
    cr_assert_neq(store_windows_read(ws, &f->base, 1, "packs/bb/two", 0, buf, 64, &got, &missing, &err), ASR_OK);
    cr_assert(missing);
    /* The failed window is free again: the next read of the good pack works. */
    cr_assert_eq(store_windows_read(ws, &f->base, 0, "packs/aa/one", 0, buf, 64, &got, &missing, &err), ASR_OK);
    cr_assert(!memcmp(buf, f->pack, 64));
    store_windows_free(ws);
    fake_free(f);
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
    struct store_windows *ws;
    struct asr_error err = {0};
    cr_assert_eq(store_windows_new(&ws, &err), ASR_OK);
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
    store_windows_free(ws);
    fake_free(f);
}
