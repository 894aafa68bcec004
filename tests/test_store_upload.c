/* A backup session's pack uploads (store/session.c, SPEC.md 19.4, 19.8) through a backend that
 * wraps a directory store: it can make one put or delete fail, slows every pack PUT and index
 * object delete down, counts those in flight at once, and checks at each index object's put that
 * every pack it names is already there. Uploads overlap, and so do the commit's deletes of the
 * per-pack index objects; a failed upload fails the next put or the commit with the object named,
 * and no snapshot is made; a session freed with uploads in flight lets them finish; chunks of a
 * pack still uploading are found by the session; the stats count every request. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_store.h"
#include "internal.h"
#include "storefix.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(store_upload, .fini = teardown);

struct wrap {
    struct store_backend base;
    struct store_backend *inner;
    pthread_mutex_t mu;
    const char *fail_prefix; /* the fail_at-th put of a key starting so fails (0: none) */
    unsigned fail_at, seen;
    char failed_key[STORE_KEY_NAME_MAX];
    unsigned delay_ms;      /* each pack PUT takes this long */
    unsigned now, most;     /* pack PUTs in flight, the most at once */
    unsigned fail_del;      /* the fail_del-th delete of an index object fails (0: none) */
    unsigned puts, dels, put_files, lists;
    unsigned batches, batched; /* del_many calls (one request each, as S3's), and the keys they held */
    unsigned orphans;       /* index objects put while a pack they name was not there */
};

static struct wrap *wrap_of(struct store_backend *b) { return (struct wrap *)b; }

/* Every pack index object raw names is in the store already. */
static bool packs_there(struct wrap *w, const void *raw, size_t len)
{
    struct store_index ix;
    struct asr_error err = {0};
    if (store_index_decode(raw, len, &ix, &err))
        return false;
    bool ok = true;
    for (uint32_t p = 0; p < ix.pack_count && ok; p++) {
        char key[STORE_KEY_NAME_MAX];
        store_pack_name(ix.packs[p], key);
        uint8_t byte;
        size_t got = 0;
        bool missing = false;
        ok = !w->inner->ops->get(w->inner, key, 0, &byte, 1, &got, &missing, &err) && got == 1;
    }
    store_index_free(&ix);
    return ok;
}

static int wrap_put(struct store_backend *b, const char *key, const void *data, size_t len, struct asr_error *err)
{
    struct wrap *w = wrap_of(b);
    bool pack = !strncmp(key, "packs/", 6);
    pthread_mutex_lock(&w->mu);
    w->puts++;
    bool fail = w->fail_at && !strncmp(key, w->fail_prefix, strlen(w->fail_prefix)) && ++w->seen == w->fail_at;
    if (fail)
        snprintf(w->failed_key, sizeof w->failed_key, "%s", key);
    if (!strncmp(key, "index/", 6) && !packs_there(w, data, len))
        w->orphans++;
    if (pack && ++w->now > w->most)
        w->most = w->now;
    pthread_mutex_unlock(&w->mu);
    if (pack && w->delay_ms)
        usleep(w->delay_ms * 1000);
    int rc = fail ? asr_fail_public(err, ASR_E_IO, "wrap: cannot write %s: injected failure", key)
                  : w->inner->ops->put(w->inner, key, data, len, err);
    pthread_mutex_lock(&w->mu);
    if (pack)
        w->now--;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void count(struct wrap *w, unsigned *n)
{
    pthread_mutex_lock(&w->mu);
    (*n)++;
    pthread_mutex_unlock(&w->mu);
}

static int wrap_put_file(struct store_backend *b, const char *key, const char *path, struct asr_error *err)
{
    count(wrap_of(b), &wrap_of(b)->put_files);
    return wrap_of(b)->inner->ops->put_file(wrap_of(b)->inner, key, path, err);
}

static int wrap_get(struct store_backend *b, const char *key, uint64_t offset, void *buf, size_t cap, size_t *got,
                    bool *missing, struct asr_error *err)
{
    return wrap_of(b)->inner->ops->get(wrap_of(b)->inner, key, offset, buf, cap, got, missing, err);
}

static int wrap_get_file(struct store_backend *b, const char *key, const char *path, bool *missing,
                         struct asr_error *err)
{
    return wrap_of(b)->inner->ops->get_file(wrap_of(b)->inner, key, path, missing, err);
}

static int wrap_list(struct store_backend *b, const char *prefix, struct store_object **out, size_t *n,
                     struct asr_error *err)
{
    count(wrap_of(b), &wrap_of(b)->lists);
    return wrap_of(b)->inner->ops->list(wrap_of(b)->inner, prefix, out, n, err);
}

static int wrap_del(struct store_backend *b, const char *key, struct asr_error *err)
{
    struct wrap *w = wrap_of(b);
    bool index = !strncmp(key, "index/", 6);
    pthread_mutex_lock(&w->mu);
    unsigned n = ++w->dels;
    bool fail = index && w->fail_del && n == w->fail_del;
    if (fail)
        snprintf(w->failed_key, sizeof w->failed_key, "%s", key);
    pthread_mutex_unlock(&w->mu);
    return fail ? asr_fail_public(err, ASR_E_IO, "wrap: cannot delete %s: injected failure", key)
                : w->inner->ops->del(w->inner, key, err);
}

/* A batch delete: one request, as S3's DeleteObjects; each key goes through wrap_del (its failure
 * and counts). */
static int wrap_del_many(struct store_backend *b, const char *const *keys, size_t n, uint64_t *requests,
                         struct asr_error *err)
{
    struct wrap *w = wrap_of(b);
    pthread_mutex_lock(&w->mu);
    w->batches++;
    w->batched += (unsigned)n;
    pthread_mutex_unlock(&w->mu);
    (*requests)++;
    int rc = ASR_OK;
    for (size_t i = 0; i < n && rc == ASR_OK; i++)
        rc = wrap_del(b, keys[i], err);
    return rc;
}

static int wrap_now(struct store_backend *b, int64_t *now, struct asr_error *err)
{
    return wrap_of(b)->inner->ops->now(wrap_of(b)->inner, now, err);
}

static const struct store_backend_ops wrap_ops = {.put = wrap_put,
                                                  .put_file = wrap_put_file,
                                                  .get = wrap_get,
                                                  .get_file = wrap_get_file,
                                                  .list = wrap_list,
                                                  .del = wrap_del,
                                                  .del_many = wrap_del_many,
                                                  .now = wrap_now};

/* A new directory store with 64 KiB packs, its backend wrapped by w. */
static struct asr_store *make_store(struct wrap *w)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    pthread_mutex_init(&w->mu, NULL);
    w->inner = s->b;
    w->base.ops = &wrap_ops;
    w->base.remote = s->b->remote;
    snprintf(w->base.url, sizeof w->base.url, "%s", s->b->url);
    s->b = &w->base;
    return s;
}

static void close_store(struct asr_store *s, struct wrap *w)
{
    s->b = w->inner;
    asr_store_close(s);
    pthread_mutex_destroy(&w->mu);
}

static char *manifest(void)
{
    char *path = scratch_path("manifest");
    write_file(path, "a snapshot", 10);
    return path;
}

/* Every chunk of c[0..n) (those with want[i] set, want NULL: all) read back from the store,
 * opened afresh, equal to its content. */
static void readable(struct storefix_chunk *c, int n, const bool *want)
{
    char *dir = scratch_path("st"), *key = scratch_path("st.key");
    struct asr_store_options opt = {.key_file = key};
    struct asr_store *s;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_open(dir, &opt, &s, &err), ASR_OK, "%s", err.msg);
    struct asr_chunk_source src;
    store_chunk_source(s, &src);
    uint8_t *buf = malloc(STOREFIX_CHUNK + 64);
    for (int i = 0; i < n; i++) {
        if (want && !want[i])
            continue;
        size_t len = 0;
        char where[128];
        cr_assert_eq(src.fetch(src.ctx, c[i].id.b, buf, STOREFIX_CHUNK + 64, &len, where, sizeof where, &err), ASR_OK,
                     "chunk %d: %s", i, err.msg);
        cr_assert(len == STOREFIX_CHUNK + 64 && !memcmp(buf + 64, c[i].content, STOREFIX_CHUNK), "chunk %d", i);
    }
    free(buf), free(dir), free(key);
    asr_store_close(s);
}

/* Pack PUTs that take 100 ms each: two are in flight at once, the writer goes on meanwhile, the
 * chunks of packs still uploading are found, and at commit every pack and index object is there,
 * each index object written after the packs it names, and the per-pack ones go in one batch
 * delete. The stats count every request made. */
Test(store_upload, packs_upload_at_once)
{
    struct wrap w = {.delay_ms = 100};
    struct asr_store *s = make_store(&w);
    struct storefix_chunk *c = storefix_chunks(s, 0, 26, 0, false); /* six full packs and two chunks */
    struct asr_error err = {0};
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    for (int i = 0; i < 26; i++) {
        cr_assert_eq(asr_store_session_put(ss, &c[i].id, &c[i].c, &err), ASR_OK, "%s", err.msg);
        /* Already found, though its pack may be filling or uploading still: not added twice. */
        cr_assert(asr_store_session_has(ss, &c[i].id, NULL, NULL), "chunk %d", i);
        cr_assert_eq(asr_store_session_put(ss, &c[i].id, &c[i].c, &err), ASR_OK, "%s", err.msg);
    }
    char *m = manifest(), name[256];
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_OK, "%s", err.msg);
    struct asr_store_session_stats st;
    asr_store_session_stats(ss, &st);
    asr_store_session_free(ss);
    cr_assert_geq(w.most, 2, "two pack uploads at once (the most: %u)", w.most);
    cr_assert_eq(w.batches, 1, "the per-pack index objects deleted in one batch (batches: %u)", w.batches);
    cr_assert_eq(w.batched, 7, "the batch held the 7 per-pack index objects (it held %u)", w.batched);
    cr_assert_eq(w.orphans, 0, "an index object named a pack not uploaded yet");
    cr_assert_eq(st.packs, 7);
    cr_assert_eq(st.chunks_new, 26);
    cr_assert_eq(st.chunks_known, 26 + 26);
    cr_assert_eq(st.stored_new, 26ull * STOREFIX_CHUNK);
    /* Counted: every put (session object, 7 packs and their index objects, the session's index),
     * delete (one batch of the per-pack index objects, the session object), the snapshot's
     * listing and put. */
    cr_assert_eq(w.puts, 1 + 7 + 7 + 1);
    cr_assert_eq(w.dels, 7 + 1);
    cr_assert_eq(st.requests, w.puts + 1 + 1 + w.put_files + 1);
    cr_assert_eq(storefix_count(s, "packs/"), 7);
    cr_assert_eq(storefix_count(s, "index/"), 1);
    cr_assert_eq(storefix_count(s, "snapshots/"), 1);
    close_store(s, &w);
    readable(c, 26, NULL);
    free(m), free(c);
}

/* One failing put: failing_prefix's fail_at-th (packs/: the 2nd pack; index/: an index object).
 * The error comes back from a put or from the commit, naming the object with the backend's
 * message, from every call after it too; no snapshot is made, and no index object names a pack
 * that is not there. */
static void failing_upload(const char *prefix, unsigned fail_at)
{
    struct wrap w = {.fail_prefix = prefix, .fail_at = fail_at, .delay_ms = 20};
    struct asr_store *s = make_store(&w);
    struct storefix_chunk *c = storefix_chunks(s, 0, 14, 0, false);
    struct asr_error err = {0};
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    int rc = ASR_OK;
    for (int i = 0; i < 14 && !rc; i++)
        rc = asr_store_session_put(ss, &c[i].id, &c[i].c, &err);
    char *m = manifest(), name[256] = "";
    if (!rc)
        rc = asr_store_session_commit(ss, m, name, sizeof name, &err);
    cr_assert_eq(rc, ASR_E_IO, "the failed upload surfaces (%s)", err.msg);
    cr_assert_neq(w.failed_key[0], 0);
    cr_assert(strstr(err.msg, w.failed_key) && strstr(err.msg, "injected failure"), "%s", err.msg);
    char first[sizeof err.msg];
    snprintf(first, sizeof first, "%s", err.msg);
    /* Not lost, nor replaced: the same error from then on. */
    struct asr_error again = {0};
    cr_assert_eq(asr_store_session_put(ss, &c[13].id, &c[13].c, &again), ASR_E_IO);
    cr_assert_str_eq(again.msg, first);
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &again), ASR_E_IO);
    cr_assert_str_eq(again.msg, first);
    asr_store_session_free(ss);
    cr_assert_eq(storefix_count(s, "snapshots/"), 0, "no snapshot");
    cr_assert_eq(storefix_count(s, "sessions/"), 0);
    cr_assert_eq(w.orphans, 0, "an index object named a pack not uploaded");
    /* What did upload serves the next backup: every chunk the index objects name is readable;
     * those of the failed object are not named. */
    struct store_table *t;
    cr_assert_eq(store_table_new(&t, &err), ASR_OK);
    cr_assert_eq(store_table_load(s->b, t, NULL, 0, NULL, &err), ASR_OK, "%s", err.msg);
    bool in_index[14];
    int found = 0;
    for (int k = 0; k < 14; k++)
        found += in_index[k] = store_table_find(t, &c[k].id, &(struct store_loc){0});
    store_table_free(t);
    close_store(s, &w);
    cr_assert_lt(found, 14);
    readable(c, 14, in_index);
    free(m), free(c);
}

Test(store_upload, failed_pack_upload_fails_the_session) { failing_upload("packs/", 2); }
Test(store_upload, failed_last_pack_upload_fails_the_commit) { failing_upload("packs/", 4); }
Test(store_upload, failed_index_upload_fails_the_session) { failing_upload("index/", 1); }

/* The commit's removal of a per-pack index object fails: the commit fails naming it, and makes no
 * snapshot. */
Test(store_upload, failed_delete_fails_the_commit)
{
    struct wrap w = {.fail_del = 2};
    struct asr_store *s = make_store(&w);
    struct storefix_chunk *c = storefix_chunks(s, 0, 10, 0, false);
    struct asr_error err = {0};
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    storefix_put(ss, c, 10);
    char *m = manifest(), name[256];
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_E_IO);
    cr_assert(w.failed_key[0] && strstr(err.msg, w.failed_key) && strstr(err.msg, "injected failure"), "%s",
              err.msg);
    asr_store_session_free(ss);
    cr_assert_eq(storefix_count(s, "snapshots/"), 0, "no snapshot");
    close_store(s, &w);
    free(m), free(c);
}

/* A session freed without a commit (an error elsewhere, an interrupt) while packs upload: the
 * uploads finish, with their index objects, and the next backup reuses them. */
Test(store_upload, free_lets_uploads_finish)
{
    struct wrap w = {.delay_ms = 100};
    struct asr_store *s = make_store(&w);
    struct storefix_chunk *c = storefix_chunks(s, 0, 13, 0, false);
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    storefix_put(ss, c, 13);
    asr_store_session_free(ss);
    cr_assert_eq(w.now, 0);
    cr_assert_eq(storefix_count(s, "packs/"), 3);
    cr_assert_eq(storefix_count(s, "index/"), 3);
    cr_assert_eq(storefix_count(s, "sessions/"), 0);
    ss = storefix_begin(s, "pc1");
    for (int i = 0; i < 13; i++)
        cr_assert_eq(asr_store_session_has(ss, &c[i].id, NULL, NULL), i < 12, "chunk %d", i);
    asr_store_session_free(ss);
    close_store(s, &w);
    readable(c, 12, NULL);
    free(c);
}
