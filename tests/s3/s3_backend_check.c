/* The S3 backend (store/backend_s3.c) against a real S3 endpoint: s3_backend_test.sh starts Swift
 * with s3api on localhost, sets AWS_* for it and runs this with a bucket URL and a work directory.
 * Each check prints one line; the first failure ends the run (exit 1) saying what differed.
 * Also measures small-object PUT/s and GET/s with N requests in flight (N threads on one backend)
 * and 16 MiB PUT and GET throughput.
 * Usage: s3_backend_check s3://BUCKET/PREFIX WORKDIR [--unavailable | --recovers | --bench]
 * --unavailable: the endpoint answers 503 (the shell stopped Swift's object server): an error
 * naming HTTP 503 after the configured tries. --recovers: the same while the shell restarts the
 * server: a put_file retried until it passes, then read back equal. --bench: request rates and
 * throughput for 1 to 16 requests in flight (by hand; the test runs only the figures at 8). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend_s3.h"
#include "clock.h"

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "s3_backend: FAIL (%s:%d, %s): ", __FILE__, __LINE__, #cond);                              \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)
#define OK(call, e) CHECK((call) == ASR_OK, "%s", (e)->msg)

static const char *g_url, *g_work;
static unsigned g_inflight = 8;

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static struct store_backend *open_backend(const char *url, const struct asr_store_options *opt)
{
    struct store_backend *b;
    struct asr_error e = {0};
    OK(store_backend_s3_open(url, opt, &b, &e), &e);
    return b;
}

static void check_put_get(struct store_backend *b)
{
    struct asr_error e = {0};
    uint8_t data[5000], buf[6000];
    fill(data, sizeof data, 1);
    OK(b->ops->put(b, "obj/a", data, sizeof data, &e), &e);
    size_t got = 0;
    bool missing = true;
    OK(b->ops->get(b, "obj/a", 0, buf, sizeof buf, &got, &missing, &e), &e);
    CHECK(got == sizeof data && !missing && memcmp(buf, data, got) == 0, "whole get: %zu bytes", got);
    /* a range inside, and one running past the end */
    OK(b->ops->get(b, "obj/a", 1234, buf, 100, &got, &missing, &e), &e);
    CHECK(got == 100 && memcmp(buf, data + 1234, 100) == 0, "range get: %zu bytes", got);
    OK(b->ops->get(b, "obj/a", 4990, buf, 100, &got, &missing, &e), &e);
    CHECK(got == 10 && memcmp(buf, data + 4990, 10) == 0, "range past the end: %zu bytes", got);
    OK(b->ops->get(b, "obj/a", 5000, buf, 100, &got, &missing, &e), &e);
    CHECK(got == 0, "range at the end: %zu bytes", got);
    /* replaced whole; an empty object; a key with characters SigV4 encodes */
    OK(b->ops->put(b, "obj/a", data + 7, 3, &e), &e);
    OK(b->ops->get(b, "obj/a", 0, buf, sizeof buf, &got, &missing, &e), &e);
    CHECK(got == 3 && memcmp(buf, data + 7, 3) == 0, "replaced object: %zu bytes", got);
    OK(b->ops->put(b, "obj/empty", NULL, 0, &e), &e);
    OK(b->ops->get(b, "obj/empty", 0, buf, sizeof buf, &got, &missing, &e), &e);
    CHECK(got == 0 && !missing, "empty object: %zu bytes", got);
    const char *odd = "obj/odd name+=&%~.._(1)";
    OK(b->ops->put(b, odd, data, 77, &e), &e);
    OK(b->ops->get(b, odd, 0, buf, sizeof buf, &got, &missing, &e), &e);
    CHECK(got == 77 && memcmp(buf, data, 77) == 0, "odd key: %zu bytes", got);
    printf("put, get, range get, replace, empty object, odd key: ok\n");

    int rc = b->ops->get(b, "obj/absent", 0, buf, sizeof buf, &got, &missing, &e);
    CHECK(rc == ASR_E_IO && missing && got == 0, "missing: rc %d missing %d", rc, missing);
    CHECK(strstr(e.msg, "obj/absent") && strstr(e.msg, "404"), "missing message: %s", e.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/absent.out", g_work);
    missing = false;
    rc = b->ops->get_file(b, "obj/absent", path, &missing, &e);
    CHECK(rc == ASR_E_IO && missing && access(path, F_OK) != 0, "get_file missing: rc %d missing %d", rc, missing);
    printf("missing object: %s\n", e.msg);

    OK(b->ops->del(b, "obj/a", &e), &e);
    rc = b->ops->get(b, "obj/a", 0, buf, sizeof buf, &got, &missing, &e);
    CHECK(rc == ASR_E_IO && missing, "deleted object still there: rc %d", rc);
    OK(b->ops->del(b, "obj/a", &e), &e); /* gone already: fine */
    OK(b->ops->del(b, odd, &e), &e);
    OK(b->ops->del(b, "obj/empty", &e), &e);
    printf("del, del of a missing key: ok\n");
}

static void write_file(const char *path, size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len);
    CHECK(p, "malloc");
    fill(p, len, seed);
    FILE *f = fopen(path, "w");
    CHECK(f && fwrite(p, 1, len, f) == len && fclose(f) == 0, "%s: %s", path, strerror(errno));
    free(p);
}

static bool files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    bool eq = fa && fb;
    static char ba[1 << 16], bb[1 << 16];
    while (eq) {
        size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
        eq = na == nb && memcmp(ba, bb, na) == 0;
        if (na == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

static void check_files(struct store_backend *b)
{
    struct asr_error e = {0};
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/big.in", g_work);
    snprintf(dst, sizeof dst, "%s/big.out", g_work);
    size_t len = (40u << 20) + 12345;
    write_file(src, len, 7);
    double t0 = asr_now();
    OK(b->ops->put_file(b, "snapshots/host/big", src, &e), &e);
    double t1 = asr_now();
    bool missing = true;
    OK(b->ops->get_file(b, "snapshots/host/big", dst, &missing, &e), &e);
    double t2 = asr_now();
    CHECK(!missing && files_equal(src, dst), "40 MiB file differs after put_file and get_file");
    /* a range from the middle of the big object */
    uint8_t buf[4096], want[4096];
    size_t got = 0;
    FILE *f = fopen(src, "r");
    CHECK(f && fseek(f, 33000001, SEEK_SET) == 0 && fread(want, 1, sizeof want, f) == sizeof want, "read src");
    fclose(f);
    OK(b->ops->get(b, "snapshots/host/big", 33000001, buf, sizeof buf, &got, &missing, &e), &e);
    CHECK(got == sizeof buf && memcmp(buf, want, got) == 0, "range of the 40 MiB object");
    printf("put_file + get_file of %zu bytes byte-equal (%.2f s + %.2f s), range inside it: ok\n", len, t1 - t0,
           t2 - t1);
    /* put_file never replaces: a second snapshot of that name is refused, the first left whole */
    write_file(src, 1000, 8);
    int rc = b->ops->put_file(b, "snapshots/host/big", src, &e);
    CHECK(rc == ASR_E_EXISTS && strstr(e.msg, "snapshots/host/big"), "put_file over an object: rc %d: %s", rc, e.msg);
    printf("put_file over an existing object: %s\n", e.msg);
    OK(b->ops->get(b, "snapshots/host/big", 33000001, buf, sizeof buf, &got, &missing, &e), &e);
    CHECK(got == sizeof buf && memcmp(buf, want, got) == 0, "the refused put_file changed the object");
    OK(b->ops->put_file(b, "snapshots/host/small", src, &e), &e);
    rc = b->ops->put_file(b, "snapshots/host/small", src, &e);
    CHECK(rc == ASR_E_EXISTS, "second put_file of a new key: rc %d: %s", rc, e.msg);
    OK(b->ops->del(b, "snapshots/host/small", &e), &e);
    unlink(src);
    unlink(dst);
    /* a file that is not there */
    rc = b->ops->put_file(b, "snapshots/host/none", "/nonexistent/file", &e);
    CHECK(rc == ASR_E_IO && strstr(e.msg, "/nonexistent/file"), "put_file of a missing file: %d %s", rc, e.msg);
}

/* ---- many threads on one backend -------------------------------------------------------------- */

struct worker {
    struct store_backend *b;
    unsigned id, first, count;
    size_t size;
    bool get, verify;
    char msg[ASR_ERROR_MSG_MAX + 100];
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct asr_error e = {0};
    uint8_t *data = malloc(w->size), *buf = malloc(w->size + 1);
    if (!data || !buf) {
        snprintf(w->msg, sizeof w->msg, "malloc");
        goto out;
    }
    for (unsigned i = w->first; i < w->first + w->count; i++) {
        char key[64];
        snprintf(key, sizeof key, "many/%05u", i);
        fill(data, w->size, i);
        if (!w->get) {
            if (w->b->ops->put(w->b, key, data, w->size, &e) != ASR_OK) {
                snprintf(w->msg, sizeof w->msg, "put %s: %s", key, e.msg);
                goto out;
            }
            continue;
        }
        size_t got = 0;
        bool missing = false;
        if (w->b->ops->get(w->b, key, 0, buf, w->size + 1, &got, &missing, &e) != ASR_OK) {
            snprintf(w->msg, sizeof w->msg, "get %s: %s", key, e.msg);
            goto out;
        }
        if (w->verify && (got != w->size || memcmp(buf, data, got) != 0)) {
            snprintf(w->msg, sizeof w->msg, "get %s: %zu bytes, not what was put", key, got);
            goto out;
        }
    }
out:
    free(data);
    free(buf);
    return NULL;
}

/* n objects many/00000.. of size bytes, put (or got and checked) by threads threads: requests/s */
static double run_many(struct store_backend *b, unsigned n, size_t size, unsigned threads, bool get)
{
    pthread_t tid[64];
    struct worker w[64];
    double t0 = asr_now();
    for (unsigned t = 0; t < threads; t++) {
        unsigned per = n / threads, first = t * per + (t < n % threads ? t : n % threads);
        w[t] = (struct worker){.b = b, .id = t, .first = first, .count = per + (t < n % threads), .size = size,
                               .get = get, .verify = true};
        CHECK(pthread_create(&tid[t], NULL, work, &w[t]) == 0, "pthread_create");
    }
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        CHECK(!w[t].msg[0], "thread %u: %s", t, w[t].msg);
    }
    return n / (asr_now() - t0);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const struct store_object *)a)->key, ((const struct store_object *)b)->key);
}

static void check_many_and_list(struct store_backend *b)
{
    struct asr_error e = {0};
    unsigned n = 1100; /* more than one page of ListObjectsV2 (1000 keys) */
    size_t size = 4096;
    int64_t before = 0, after = 0;
    OK(b->ops->now(b, &before, &e), &e);
    double put_rate = run_many(b, n, size, g_inflight, false);
    double get_rate = run_many(b, n, size, g_inflight, true);
    OK(b->ops->now(b, &after, &e), &e);
    printf("%u threads, one backend (%u requests in flight), %u objects of %zu bytes, each checked: "
           "PUT %.1f/s, GET %.1f/s\n",
           g_inflight, g_inflight, n, size, put_rate, get_rate);
    time_t local = time(NULL);
    CHECK(after >= before && after - before < 600 && llabs((long long)(after - local)) < 300,
          "now: %" PRId64 " then %" PRId64 " (local clock %lld)", before, after, (long long)local);
    printf("now: %" PRId64 " (server Date), local clock %lld\n", after, (long long)local);

    /* an object outside the listed prefix that shares its first letters */
    OK(b->ops->put(b, "manyx", "x", 1, &e), &e);
    struct store_object *o = NULL;
    size_t count = 0;
    OK(b->ops->list(b, "many/", &o, &count, &e), &e);
    CHECK(count == n, "list many/: %zu objects, expected %u", count, n);
    qsort(o, count, sizeof *o, cmp_key);
    for (size_t i = 0; i < count; i++) {
        char key[64];
        snprintf(key, sizeof key, "many/%05zu", i);
        CHECK(strcmp(o[i].key, key) == 0 && o[i].size == size, "list entry %zu: %s %" PRIu64, i, o[i].key, o[i].size);
        CHECK(o[i].mtime >= before - 1 && o[i].mtime <= after + 1, "list entry %s: mtime %" PRId64 " not in [%" PRId64
              ", %" PRId64 "]", o[i].key, o[i].mtime, before, after);
    }
    store_objects_free(o, count);
    OK(b->ops->list(b, "", &o, &count, &e), &e);
    CHECK(count == n + 2, "list of everything: %zu objects, expected %u", count, n + 2); /* + manyx, big */
    store_objects_free(o, count);
    OK(b->ops->list(b, "nothing/", &o, &count, &e), &e);
    CHECK(count == 0 && o == NULL, "list of an empty prefix: %zu", count);
    printf("list: %u keys over two pages (continuation token), sizes and mtimes; empty prefix: ok\n", n);
    OK(b->ops->del(b, "manyx", &e), &e);
}

static size_t count_under(struct store_backend *b, const char *prefix)
{
    struct store_object *o = NULL;
    size_t count = 0;
    struct asr_error e = {0};
    OK(b->ops->list(b, prefix, &o, &count, &e), &e);
    store_objects_free(o, count);
    return count;
}

/* keys[i] = names[i] = "few/i" for i < n, each put (1 byte). */
static void put_few(struct store_backend *b, char (*names)[64], const char **keys, size_t n)
{
    struct asr_error e = {0};
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "few/%zu", i);
        keys[i] = names[i];
        OK(b->ops->put(b, keys[i], "x", 1, &e), &e);
    }
}

/* Batch deletes (DeleteObjects): the 1,100 objects check_many_and_list left, one whose key XML
 * must escape and two keys that are not there go in 2 requests (1,000 keys at most each). With
 * ASRIMG_S3_DELETE_BATCH=3, 7 keys take 3 requests; with 1 (a DELETE each), 7. Each time nothing
 * is left. */
static void check_batch_delete(void)
{
    struct store_backend *b = open_backend(g_url, NULL);
    struct asr_error e = {0};
    const char *odd = "odd/a&b<c>'\"d";
    OK(b->ops->put(b, odd, "x", 1, &e), &e);
    size_t n = 1100 + 3;
    char(*names)[64] = malloc(n * sizeof *names);
    const char **keys = malloc(n * sizeof *keys);
    CHECK(names && keys, "malloc");
    for (size_t i = 0; i < 1100; i++)
        snprintf(names[i], sizeof names[i], "many/%05zu", i);
    snprintf(names[1100], sizeof names[1100], "%s", odd);
    snprintf(names[1101], sizeof names[1101], "many/99999");
    snprintf(names[1102], sizeof names[1102], "manyx"); /* deleted already */
    for (size_t i = 0; i < n; i++)
        keys[i] = names[i];
    CHECK(count_under(b, "many/") == 1100 && count_under(b, "odd/") == 1, "the objects to delete are there");
    uint64_t requests = 0;
    OK(b->ops->del_many(b, keys, n, &requests, &e), &e);
    CHECK(requests == 2, "%zu keys deleted in %" PRIu64 " requests, expected 2", n, requests);
    CHECK(count_under(b, "many/") == 0 && count_under(b, "odd/") == 0, "objects left after the batch delete");
    /* A key with a control character cannot go in XML: those keys go one DELETE each, and later
     * batches are still batches. */
    const char *ctl[] = {"ctl/a\001b", "ctl/c"};
    for (int i = 0; i < 2; i++)
        OK(b->ops->put(b, ctl[i], "x", 1, &e), &e);
    requests = 0;
    OK(b->ops->del_many(b, ctl, 2, &requests, &e), &e);
    CHECK(requests == 2 && count_under(b, "ctl/") == 0, "a control character: %" PRIu64 " requests", requests);
    const char *plain[] = {"ctl/c", "ctl/d"};
    for (int i = 0; i < 2; i++)
        OK(b->ops->put(b, plain[i], "x", 1, &e), &e);
    requests = 0;
    OK(b->ops->del_many(b, plain, 2, &requests, &e), &e);
    CHECK(requests == 1 && count_under(b, "ctl/") == 0, "a batch after one that XML could not carry: %" PRIu64
          " requests", requests);
    b->ops->close(b);
    const char *sizes[] = {"3", "1"};
    const uint64_t expect[] = {3, 7};
    for (int t = 0; t < 2; t++) {
        setenv("ASRIMG_S3_DELETE_BATCH", sizes[t], 1);
        b = open_backend(g_url, NULL);
        put_few(b, names, keys, 7);
        requests = 0;
        OK(b->ops->del_many(b, keys, 7, &requests, &e), &e);
        CHECK(requests == expect[t], "7 keys at %s a request: %" PRIu64 " requests", sizes[t], requests);
        CHECK(count_under(b, "few/") == 0, "objects left after deleting at %s a request", sizes[t]);
        b->ops->close(b);
    }
    unsetenv("ASRIMG_S3_DELETE_BATCH");
    free(names);
    free(keys);
    printf("batch delete: 1,103 keys (one XML escapes, two not there) in 2 requests; 2 keys, one with a control "
           "character, in 2 DELETEs and the next batch in 1; 7 keys in 3 requests at 3 a request, in 7 at 1: nothing "
           "left: ok\n");
}

/* 8 threads at once, each putting and getting its own objects while the others do. */
static void check_concurrent(struct store_backend *b)
{
    pthread_t tid[8];
    struct worker w[8];
    for (int round = 0; round < 2; round++) {
        for (unsigned t = 0; t < 8; t++) {
            /* round 1: half of the threads read back what round 0 wrote while the rest write */
            bool get = round == 1 && t % 2 == 0;
            w[t] = (struct worker){.b = b, .id = t, .first = 20000 + t * 40 + (round && !get ? 20 : 0), .count = 20,
                                   .size = 1000 + t * 3000, .get = get, .verify = true};
            CHECK(pthread_create(&tid[t], NULL, work, &w[t]) == 0, "pthread_create");
        }
        for (unsigned t = 0; t < 8; t++) {
            pthread_join(tid[t], NULL);
            CHECK(!w[t].msg[0], "thread %u: %s", t, w[t].msg);
        }
    }
    printf("8 threads putting and getting at once on one backend of 4 request slots: ok\n");
}

static void bench_big(struct store_backend *b)
{
    struct asr_error e = {0};
    size_t len = 16u << 20;
    uint8_t *p = malloc(len), *q = malloc(len);
    CHECK(p && q, "malloc");
    fill(p, len, 99);
    double put = 0, get = 0;
    int rounds = 3;
    for (int i = 0; i < rounds; i++) {
        double t0 = asr_now();
        OK(b->ops->put(b, "bench/16m", p, len, &e), &e);
        double t1 = asr_now();
        size_t got = 0;
        bool missing = false;
        OK(b->ops->get(b, "bench/16m", 0, q, len, &got, &missing, &e), &e);
        double t2 = asr_now();
        CHECK(got == len && memcmp(p, q, len) == 0, "16 MiB object differs");
        put += t1 - t0;
        get += t2 - t1;
    }
    printf("16 MiB object, one request at a time, %d rounds: PUT %.0f MiB/s, GET %.0f MiB/s\n", rounds,
           16.0 * rounds / put, 16.0 * rounds / get);
    OK(b->ops->del(b, "bench/16m", &e), &e);
    free(p);
    free(q);
}

static void check_wrong_secret(void)
{
    const char *good = getenv("AWS_SECRET_ACCESS_KEY");
    char *saved = strdup(good ? good : "");
    setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
    struct store_backend *b = open_backend(g_url, NULL);
    setenv("AWS_SECRET_ACCESS_KEY", saved, 1);
    free(saved);
    struct asr_error e = {0};
    double t0 = asr_now();
    int rc = b->ops->put(b, "packs/ab/ab12", "x", 1, &e);
    CHECK(rc == ASR_E_IO && strstr(e.msg, "HTTP 403") && strstr(e.msg, "packs/ab/ab12") &&
              strstr(e.msg, "SignatureDoesNotMatch") && strstr(e.msg, g_url + 5),
          "wrong secret: rc %d: %s", rc, e.msg);
    CHECK(!strstr(e.msg, "tries") && asr_now() - t0 < 5, "a 403 was retried (%.1f s): %s", asr_now() - t0, e.msg);
    printf("wrong secret, put: %s\n", e.msg);
    size_t got;
    bool missing = true;
    uint8_t buf[16];
    rc = b->ops->get(b, "packs/ab/ab12", 0, buf, sizeof buf, &got, &missing, &e);
    CHECK(rc == ASR_E_IO && !missing && strstr(e.msg, "HTTP 403"), "wrong secret, get: rc %d: %s", rc, e.msg);
    struct store_object *o;
    size_t count;
    rc = b->ops->list(b, "packs/", &o, &count, &e);
    CHECK(rc == ASR_E_IO && strstr(e.msg, "HTTP 403") && strstr(e.msg, "packs/"), "wrong secret, list: %s", e.msg);
    b->ops->close(b);
}

static void check_refused(void)
{
    setenv("ASRIMG_S3_RETRIES", "4", 1);
    setenv("ASRIMG_S3_BACKOFF_MS", "100", 1);
    /* port 1 on localhost: nothing listens there, every connection is refused */
    struct asr_store_options opt = {.endpoint = "http://127.0.0.1:1"};
    struct store_backend *b = open_backend(g_url, &opt);
    unsetenv("ASRIMG_S3_RETRIES");
    unsetenv("ASRIMG_S3_BACKOFF_MS");
    struct asr_error e = {0};
    double t0 = asr_now();
    int rc = b->ops->put(b, "config", "x", 1, &e);
    double t = asr_now() - t0;
    /* waits of 50-100, 100-200, 200-400 ms between the 4 tries */
    CHECK(rc == ASR_E_IO && strstr(e.msg, "config") && strstr(e.msg, "4 tries") && t >= 0.35 && t < 5,
          "refused endpoint: rc %d in %.2f s: %s", rc, t, e.msg);
    printf("endpoint refusing connections: %.2f s: %s\n", t, e.msg);
    b->ops->close(b);
}

/* A server that takes the connection and never answers: a timeout, retried, then named. */
static void check_stalled(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 16) == 0 &&
              getsockname(fd, (struct sockaddr *)&sa, &sl) == 0,
          "listening socket: %s", strerror(errno));
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%u", ntohs(sa.sin_port));
    setenv("ASRIMG_S3_RETRIES", "2", 1);
    setenv("ASRIMG_S3_BACKOFF_MS", "100", 1);
    setenv("ASRIMG_S3_STALL_SECONDS", "1", 1);
    struct asr_store_options opt = {.endpoint = ep};
    struct store_backend *b = open_backend(g_url, &opt);
    unsetenv("ASRIMG_S3_RETRIES");
    unsetenv("ASRIMG_S3_BACKOFF_MS");
    unsetenv("ASRIMG_S3_STALL_SECONDS");
    struct asr_error e = {0};
    uint8_t buf[16];
    size_t got;
    bool missing;
    double t0 = asr_now();
    int rc = b->ops->get(b, "index/ee", 0, buf, sizeof buf, &got, &missing, &e);
    double t = asr_now() - t0;
    CHECK(rc == ASR_E_IO && !missing && strstr(e.msg, "index/ee") && strstr(e.msg, "2 tries") && t >= 1.5 && t < 10,
          "stalled server: rc %d in %.2f s: %s", rc, t, e.msg);
    printf("server that never answers: %.2f s: %s\n", t, e.msg);
    b->ops->close(b);
    close(fd);
}

static void check_credentials_file(void)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/home", g_work);
    snprintf(path, sizeof path, "%s/.aws", dir);
    CHECK((mkdir(dir, 0700) == 0 || errno == EEXIST) && (mkdir(path, 0700) == 0 || errno == EEXIST), "mkdir");
    snprintf(path, sizeof path, "%s/.aws/credentials", dir);
    FILE *f = fopen(path, "w");
    CHECK(f, "%s", path);
    fprintf(f, "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n"
               "# the test's profile\n[asrimg-test]\naws_access_key_id = %s\naws_secret_access_key=%s\n",
            getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"));
    fclose(f);
    char *id = strdup(getenv("AWS_ACCESS_KEY_ID")), *secret = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("HOME", dir, 1);
    setenv("AWS_PROFILE", "asrimg-test", 1);
    struct store_backend *b = open_backend(g_url, NULL);
    unsetenv("AWS_PROFILE");
    struct store_backend *d = open_backend(g_url, NULL); /* [default]: a wrong key */
    setenv("HOME", "/nonexistent", 1);
    struct asr_error e = {0};
    struct store_backend *none = NULL;
    int rc = store_backend_s3_open(g_url, NULL, &none, &e);
    CHECK(rc == ASR_E_ARG && !none && strstr(e.msg, "AWS_ACCESS_KEY_ID"), "no credentials: %d %s", rc, e.msg);
    setenv("AWS_ACCESS_KEY_ID", id, 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    if (home)
        setenv("HOME", home, 1);
    free(id);
    free(secret);
    free(home);
    OK(b->ops->put(b, "cred/profile", "abc", 3, &e), &e);
    OK(b->ops->del(b, "cred/profile", &e), &e);
    rc = d->ops->put(d, "cred/default", "abc", 3, &e);
    CHECK(rc == ASR_E_IO && strstr(e.msg, "HTTP 403"), "[default] with a wrong key: %d %s", rc, e.msg);
    b->ops->close(b);
    d->ops->close(d);
    printf("~/.aws/credentials with AWS_PROFILE, [default], none at all: ok\n");
}

static void check_bad_urls(void)
{
    static const char *bad[] = {"s3://", "s3://ab", "s3://Bucket/x", "s3://bucket/a//b", "s3://bucket/../x",
                                "http://bucket/x", "s3://bu cket/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct store_backend *b = NULL;
        struct asr_error e = {0};
        int rc = store_backend_s3_open(bad[i], NULL, &b, &e);
        CHECK(rc == ASR_E_ARG && !b, "%s opened (rc %d)", bad[i], rc);
    }
    struct store_backend *b = NULL;
    struct asr_error e = {0};
    struct asr_store_options opt = {.endpoint = "ftp://127.0.0.1"};
    CHECK(store_backend_s3_open(g_url, &opt, &b, &e) == ASR_E_ARG && !b, "ftp endpoint opened");
    printf("bad URLs and endpoints refused: ok\n");
}

struct big_worker {
    struct store_backend *b;
    const uint8_t *data;
    size_t len;
    unsigned id;
    bool get;
    char msg[ASR_ERROR_MSG_MAX + 100];
};

static void *big_work(void *arg)
{
    struct big_worker *w = arg;
    struct asr_error e = {0};
    char key[64];
    snprintf(key, sizeof key, "bench/big%u", w->id);
    if (!w->get) {
        if (w->b->ops->put(w->b, key, w->data, w->len, &e) != ASR_OK)
            snprintf(w->msg, sizeof w->msg, "%s", e.msg);
        return NULL;
    }
    uint8_t *q = malloc(w->len);
    size_t got = 0;
    bool missing;
    if (!q || w->b->ops->get(w->b, key, 0, q, w->len, &got, &missing, &e) != ASR_OK)
        snprintf(w->msg, sizeof w->msg, "%s", q ? e.msg : "malloc");
    else if (got != w->len || memcmp(q, w->data, got) != 0)
        snprintf(w->msg, sizeof w->msg, "%s differs", key);
    free(q);
    return NULL;
}

static void bench_sweep(void)
{
    static const unsigned ns[] = {1, 4, 8, 16};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        struct asr_store_options opt = {.requests = ns[i]};
        struct store_backend *b = open_backend(g_url, &opt);
        unsigned n = ns[i] == 1 ? 100 : 400;
        double put = run_many(b, n, 4096, ns[i], false), get = run_many(b, n, 4096, ns[i], true);
        printf("%2u in flight, %u objects of 4 KiB: PUT %.1f/s, GET %.1f/s\n", ns[i], n, put, get);
        b->ops->close(b);
    }
    size_t len = 16u << 20;
    uint8_t *p = malloc(len);
    CHECK(p, "malloc");
    fill(p, len, 5);
    static const unsigned bs[] = {1, 2, 4};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) {
        struct asr_store_options opt = {.requests = bs[i]};
        struct store_backend *b = open_backend(g_url, &opt);
        double rate[2];
        for (int get = 0; get < 2; get++) {
            pthread_t tid[4];
            struct big_worker w[4];
            double t0 = asr_now();
            for (unsigned t = 0; t < bs[i]; t++) {
                w[t] = (struct big_worker){.b = b, .data = p, .len = len, .id = t, .get = get};
                CHECK(pthread_create(&tid[t], NULL, big_work, &w[t]) == 0, "pthread_create");
            }
            for (unsigned t = 0; t < bs[i]; t++) {
                pthread_join(tid[t], NULL);
                CHECK(!w[t].msg[0], "%s", w[t].msg);
            }
            rate[get] = 16.0 * bs[i] / (asr_now() - t0);
        }
        printf("%u in flight, 16 MiB objects: PUT %.0f MiB/s, GET %.0f MiB/s (all together)\n", bs[i], rate[0],
               rate[1]);
        b->ops->close(b);
    }
    free(p);
}

/* The object server is down: 503 on every try, then an error saying so. */
static void check_unavailable(void)
{
    setenv("ASRIMG_S3_RETRIES", "3", 1);
    setenv("ASRIMG_S3_BACKOFF_MS", "100", 1);
    struct store_backend *b = open_backend(g_url, NULL);
    struct asr_error e = {0};
    double t0 = asr_now();
    int rc = b->ops->put(b, "packs/cd/cd34", "abc", 3, &e);
    double t = asr_now() - t0;
    CHECK(rc == ASR_E_IO && strstr(e.msg, "packs/cd/cd34") && strstr(e.msg, "HTTP 503") && strstr(e.msg, "3 tries") &&
              t >= 0.15,
          "503: rc %d in %.2f s: %s", rc, t, e.msg);
    printf("server answering 503: %.2f s: %s\n", t, e.msg);
    b->ops->close(b);
}

/* The object server comes back while a put_file is retried: the body is sent again whole. */
static void check_recovers(void)
{
    setenv("ASRIMG_S3_RETRIES", "12", 1);
    setenv("ASRIMG_S3_BACKOFF_MS", "200", 1);
    struct store_backend *b = open_backend(g_url, NULL);
    struct asr_error e = {0};
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/retry.in", g_work);
    snprintf(dst, sizeof dst, "%s/retry.out", g_work);
    write_file(src, (3u << 20) + 5, 11);
    double t0 = asr_now();
    OK(b->ops->put_file(b, "snapshots/host/retried", src, &e), &e);
    double t = asr_now() - t0;
    bool missing = true;
    OK(b->ops->get_file(b, "snapshots/host/retried", dst, &missing, &e), &e);
    CHECK(files_equal(src, dst), "the retried put_file stored other bytes");
    CHECK(t >= 0.5, "put_file passed in %.2f s: the server was never down", t);
    printf("server down, back while put_file retries: stored whole after %.2f s: ok\n", t);
    b->ops->close(b);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: s3_backend_check s3://BUCKET/PREFIX WORKDIR [--unavailable | --recovers]\n");
        return 2;
    }
    g_url = argv[1];
    g_work = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4) {
        if (!strcmp(argv[3], "--unavailable"))
            check_unavailable();
        else if (!strcmp(argv[3], "--recovers"))
            check_recovers();
        else if (!strcmp(argv[3], "--bench"))
            bench_sweep();
        else
            return 2;
        return 0;
    }
    check_bad_urls();
    struct store_backend *b = open_backend(g_url, NULL);
    struct asr_error e = {0};
    OK(store_backend_s3_make_bucket(b, &e), &e);
    OK(store_backend_s3_make_bucket(b, &e), &e); /* already there: fine */
    check_put_get(b);
    check_files(b);
    check_many_and_list(b);
    b->ops->close(b);
    check_batch_delete();

    struct asr_store_options four = {.requests = 4};
    b = open_backend(g_url, &four);
    check_concurrent(b);
    b->ops->close(b);

    b = open_backend(g_url, NULL);
    bench_big(b);
    b->ops->close(b);
    check_wrong_secret();
    check_refused();
    check_stalled();
    check_credentials_file();
    printf("s3_backend_check: ok\n");
    return 0;
}
