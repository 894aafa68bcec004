/* The small helpers every store/ module shares (SPEC.md section 19): random bytes, hex, object and
 * snapshot names (HOST/TIME), HMAC-SHA-256, whole-object reads, batch deletes, work spread over
 * threads, listings freed. They call nothing else of store/, so that every module may use them
 * without an import circle. */
#include "internal.h"
#include "io.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

int store_random(void *buf, size_t len, struct asr_error *err)
{
    int e = asr_random_full(buf, len);
    return e ? store_fail(err, ASR_E_IO, "store: no random bytes: %s", strerror(-e)) : ASR_OK;
}

void store_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int store_hex_parse(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i]), lo = hi < 0 ? -1 : hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return s[2 * n] ? -1 : 0;
}

void store_pack_name(const uint8_t id[STORE_OID_SIZE], char out[STORE_KEY_NAME_MAX])
{
    char hex[STORE_OID_HEX];
    store_hex(id, STORE_OID_SIZE, hex);
    snprintf(out, STORE_KEY_NAME_MAX, "packs/%.2s/%s", hex, hex);
}

bool store_host_valid(const char *host)
{
    size_t n = strlen(host);
    if (n < 1 || n > STORE_HOST_MAX || host[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(isascii(c) && (isalnum(c) || c == '.' || c == '_' || c == '-')))
            return false;
    }
    return true;
}

void store_hmac(const uint8_t key[STORE_KEY_SIZE], const void *a, size_t alen, const void *b, size_t blen,
                uint8_t out[32])
{
    unsigned int n = 32;
    if (!b) {
        /* One call, no shared state: thread-safe, and the fast path for chunk ids. */
        HMAC(EVP_sha256(), key, STORE_KEY_SIZE, a, alen, out, &n);
        return;
    }
    uint8_t *joined = malloc(alen + blen);
    if (joined) {
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        HMAC(EVP_sha256(), key, STORE_KEY_SIZE, joined, alen + blen, out, &n);
        free(joined);
    } else {
        memset(out, 0, 32); /* matches nothing a real key makes; the caller's check fails */
    }
}

/* store_parallel's state, shared by its threads. */
struct parallel {
    size_t n, next;
    int (*one)(void *ctx, size_t i, struct asr_error *err);
    void *ctx;
    pthread_mutex_t mu;
    int rc;
    size_t failed; /* the i whose error err holds */
    struct asr_error err;
};

static void *parallel_worker(void *arg)
{
    struct parallel *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->rc || p->next >= p->n ? p->n : p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n)
            return NULL;
        struct asr_error e = {0};
        int rc = p->one(p->ctx, i, &e);
        pthread_mutex_lock(&p->mu);
        if (rc && (!p->rc || i < p->failed)) {
            p->rc = rc;
            p->failed = i;
            p->err = e;
        }
        pthread_mutex_unlock(&p->mu);
    }
}

int store_parallel(size_t n, unsigned threads, int (*one)(void *ctx, size_t i, struct asr_error *err), void *ctx,
                   struct asr_error *err)
{
    struct parallel p = {.n = n, .one = one, .ctx = ctx};
    pthread_mutex_init(&p.mu, NULL);
    pthread_t tid[64];
    size_t started = 0, most = threads < 64 ? threads : 64;
    while (started + 1 < most && started + 1 < n && !pthread_create(&tid[started], NULL, parallel_worker, &p))
        started++;
    parallel_worker(&p); /* the caller works too (alone when no thread could start) */
    for (size_t t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&p.mu);
    if (p.rc)
        *err = p.err;
    return p.rc;
}

int store_del_many(struct store_backend *b, const char *const *keys, size_t n, uint64_t *requests,
                   struct asr_error *err)
{
    if (b->ops->del_many)
        return n ? b->ops->del_many(b, keys, n, requests, err) : ASR_OK;
    int rc = ASR_OK;
    for (size_t i = 0; i < n && rc == ASR_OK; i++, (*requests)++)
        rc = b->ops->del(b, keys[i], err);
    return rc;
}

int store_get_whole(struct store_backend *b, const char *key, size_t cap, uint8_t **out, size_t *len, bool *missing,
                    struct asr_error *err)
{
    *out = NULL;
    *len = 0;
    /* Read on from where the last read stopped into a buffer that grows, so a large object costs
     * a few requests and no byte is read twice; one byte past cap tells a too-large object. */
    size_t have = 0, room = 0;
    uint8_t *buf = NULL;
    for (;;) {
        size_t want = room ? room * 4 : 1u << 16;
        if (want > cap + 1)
            want = cap + 1;
        uint8_t *grown = realloc(buf, want);
        if (!grown) {
            free(buf);
            return store_fail(err, ASR_E_NOMEM, "%s: out of memory reading %s", b->url, key);
        }
        buf = grown;
        room = want;
        size_t got = 0;
        int rc = b->ops->get(b, key, have, buf + have, room - have, &got, missing, err);
        if (rc) {
            free(buf);
            return rc;
        }
        have += got;
        if (have < room)
            break;
        if (room > cap) {
            free(buf);
            return store_fail(err, ASR_E_LIMIT, "%s: %s is larger than %zu bytes", b->url, key, cap);
        }
    }
    *out = buf;
    *len = have;
    return ASR_OK;
}

/* ---- snapshot names ---------------------------------------------------------------------------- */

void store_time_format(int64_t t, char out[STORE_TIME_TEXT])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, STORE_TIME_TEXT, "%Y%m%dT%H%M%SZ", &tm))
        snprintf(out, STORE_TIME_TEXT, "19700101T000000Z");
}

int store_time_parse(const char *text, int64_t *t)
{
    if (strlen(text) != STORE_TIME_TEXT - 1 || text[8] != 'T' || text[15] != 'Z')
        return -1;
    int f[6];
    static const int at[6] = {0, 4, 6, 9, 11, 13}, len[6] = {4, 2, 2, 2, 2, 2};
    for (int i = 0; i < 6; i++) {
        f[i] = 0;
        for (int j = 0; j < len[i]; j++) {
            char c = text[at[i] + j];
            if (c < '0' || c > '9')
                return -1;
            f[i] = f[i] * 10 + (c - '0');
        }
    }
    struct tm tm = {.tm_year = f[0] - 1900, .tm_mon = f[1] - 1, .tm_mday = f[2], .tm_hour = f[3],
                    .tm_min = f[4], .tm_sec = f[5]};
    time_t tt = timegm(&tm);
    char back[STORE_TIME_TEXT];
    store_time_format((int64_t)tt, back);
    if (strcmp(back, text)) /* 20261341T..., a 61st second: not a time */
        return -1;
    *t = (int64_t)tt;
    return 0;
}

int store_snapshot_name_parse(const char *name, char *host, int64_t *t)
{
    const char *slash = strchr(name, '/');
    if (!slash || (size_t)(slash - name) > STORE_HOST_MAX)
        return -1;
    memcpy(host, name, (size_t)(slash - name));
    host[slash - name] = 0;
    if (!store_host_valid(host) || store_time_parse(slash + 1, t) < 0)
        return -1;
    return 0;
}

void store_objects_free(struct store_object *o, size_t n)
{
    for (size_t i = 0; i < n && o; i++)
        free(o[i].key);
    free(o);
}
