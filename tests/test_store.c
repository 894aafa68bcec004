/* The chunk store (store/, SPEC.md section 19) on a directory: init and open, keys and config
 * refused when they are not this store's, chunk ids against OpenSSL's command line, packs and
 * index objects round trip and refuse damage, backup sessions (put, commit, an interrupted one
 * reused, a lapsed lease, condemned packs), and the chunk source a snapshot reader uses. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "asr_store.h"
#include "internal.h"
#include "le.h"
#include "storefix.h"
#include "support.h"
#include <xxhash.h>

static void teardown(void) { scratch_cleanup(); }

TestSuite(store, .fini = teardown);

static int open_with_key(const char *dir, const char *key, struct asr_store **s, struct asr_error *err)
{
    struct asr_store_options opt = {.key_file = key};
    return asr_store_open(dir, &opt, s, err);
}

/* ---- init, open, keys, config ------------------------------------------------------------ */

Test(store, init_and_open)
{
    struct asr_store *s = storefix_store("st", STORE_DEFAULT_PACK_TARGET);
    char *dir = scratch_path("st"), key[PATH_MAX + 8];
    snprintf(key, sizeof key, "%s.key", dir);
    struct stat st;
    cr_assert_eq(stat(key, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "key file mode %o", st.st_mode & 0777);
    cr_assert_eq(st.st_size, 65);
    cr_assert_str_eq(asr_store_url(s), dir);
    cr_assert_eq(storefix_count(s, ""), 1, "a new store holds its config only");
    asr_store_close(s);

    /* Again on the same store, or into a directory that is not empty: refused, nothing changed. */
    size_t len0, len1;
    uint8_t *before = read_file(key, &len0);
    struct asr_error err = {0};
    struct asr_store_options opt = {.key_file = key};
    cr_assert_eq(asr_store_init(dir, &opt, NULL, 0, &err), ASR_E_EXISTS);
    cr_assert(strstr(err.msg, "not an empty directory"), "%s", err.msg);
    char *other = scratch_path("other");
    cr_assert_eq(asr_store_init(other, &opt, NULL, 0, &err), ASR_E_EXISTS, "an existing key file is never overwritten");
    cr_assert(strstr(err.msg, "never overwritten"), "%s", err.msg);
    uint8_t *after = read_file(key, &len1);
    cr_assert(len0 == len1 && !memcmp(before, after, len0));
    cr_assert_eq(open_with_key(dir, key, &s, &err), ASR_OK, "%s", err.msg);
    asr_store_close(s);
    /* A directory that holds no store. */
    cr_assert_eq(open_with_key(other, key, &s, &err), ASR_E_NOT_IMAGE);
    cr_assert(strstr(err.msg, "not a store"), "%s", err.msg);
    free(before), free(after), free(dir), free(other);
}

Test(store, default_key_file_and_env)
{
    char *home = scratch_path("home"), *dir = scratch_path("st");
    cr_assert_eq(mkdir(home, 0700), 0);
    setenv("HOME", home, 1);
    unsetenv("ASRIMG_STORE_KEY_FILE");
    char key[PATH_MAX];
    struct asr_error err = {0};
    cr_assert_eq(asr_store_init(dir, NULL, key, sizeof key, &err), ASR_OK, "%s", err.msg);
    struct asr_store *s;
    cr_assert_eq(asr_store_open(dir, NULL, &s, &err), ASR_OK, "%s", err.msg);
    uint8_t uuid[16];
    asr_store_uuid(s, uuid);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/.config/asrimg/store-", home);
    cr_assert(!strncmp(key, want, strlen(want)) && strstr(key, ".key"), "%s", key);
    struct stat st;
    snprintf(want, sizeof want, "%s/.config/asrimg", home);
    cr_assert_eq(stat(want, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    asr_store_close(s);
    /* ASRIMG_STORE_KEY_FILE names the key when the options do not. */
    char *moved = scratch_path("moved.key");
    cr_assert_eq(rename(key, moved), 0);
    cr_assert_neq(asr_store_open(dir, NULL, &s, &err), ASR_OK);
    cr_assert(strstr(err.msg, key), "the message names the key file: %s", err.msg);
    setenv("ASRIMG_STORE_KEY_FILE", moved, 1);
    cr_assert_eq(asr_store_open(dir, NULL, &s, &err), ASR_OK, "%s", err.msg);
    asr_store_close(s);
    unsetenv("ASRIMG_STORE_KEY_FILE");
    free(home), free(dir), free(moved);
}

Test(store, key_of_another_store_refused)
{
    asr_store_close(storefix_store("a", STORE_DEFAULT_PACK_TARGET));
    asr_store_close(storefix_store("b", STORE_DEFAULT_PACK_TARGET));
    char *a = scratch_path("a"), *bkey = scratch_path("b.key"), *garbage = scratch_path("g.key");
    struct asr_store *s = NULL;
    struct asr_error err = {0};
    cr_assert_eq(open_with_key(a, bkey, &s, &err), ASR_E_ARG);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, bkey) && strstr(err.msg, "not this store's key"), "%s", err.msg);
    write_file(garbage, "not a key\n", 10);
    cr_assert_eq(open_with_key(a, garbage, &s, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, garbage) && strstr(err.msg, "64 hex digits"), "%s", err.msg);
    free(a), free(bkey), free(garbage);
}

/* A config rewritten with its checksum fixed, so that only the rule under test fails. */
static void rewrite_config(const char *path, void (*edit)(uint8_t *b), bool fix_checksum)
{
    size_t len;
    uint8_t *b = read_file(path, &len);
    cr_assert_eq(len, STORE_CONFIG_SIZE);
    edit(b);
    if (fix_checksum)
        put_le64(b + 88, XXH3_64bits(b, 88));
    write_file(path, b, len);
    free(b);
}

static void flip_uuid(uint8_t *b) { b[20] ^= 1; }
static void version_2(uint8_t *b) { put_le32(b + 8, 2); }
static void tiny_packs(uint8_t *b) { put_le32(b + 72, 4096); }
static void reserved(uint8_t *b) { b[77] = 1; }
static void magic(uint8_t *b) { b[0] = 'X'; }

Test(store, config_corruption_refused)
{
    asr_store_close(storefix_store("st", STORE_DEFAULT_PACK_TARGET));
    char *dir = scratch_path("st"), *key = scratch_path("st.key"), *config = scratch_path("st/config");
    size_t len;
    uint8_t *good = read_file(config, &len);
    static const struct {
        void (*edit)(uint8_t *);
        bool fix;
        int rc;
        const char *msg;
    } cases[] = {
        {flip_uuid, false, ASR_E_CORRUPT, "config: checksum mismatch"},
        {flip_uuid, true, ASR_E_ARG, "not this store's key"}, /* the key check covers the uuid */
        {version_2, true, ASR_E_UNSUPPORTED, "store version 2"},
        {tiny_packs, true, ASR_E_CORRUPT, "pack_target 4096"},
        {reserved, true, ASR_E_CORRUPT, "reserved bytes"},
        {magic, true, ASR_E_CORRUPT, "no ASRSTORE magic"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(config, good, len);
        rewrite_config(config, cases[i].edit, cases[i].fix);
        struct asr_store *s = NULL;
        struct asr_error err = {0};
        cr_assert_eq(open_with_key(dir, key, &s, &err), cases[i].rc, "case %zu: %s", i, err.msg);
        cr_assert(strstr(err.msg, cases[i].msg) && strstr(err.msg, dir), "case %zu: %s", i, err.msg);
    }
    /* Truncated, or longer than a config. */
    for (size_t cut = 0; cut < len; cut += 7) {
        write_file(config, good, cut);
        struct asr_store *s = NULL;
        struct asr_error err = {0};
        cr_assert_neq(open_with_key(dir, key, &s, &err), ASR_OK, "a config cut at %zu", cut);
    }
    uint8_t longer[STORE_CONFIG_SIZE + 1] = {0};
    memcpy(longer, good, len);
    write_file(config, longer, sizeof longer);
    struct asr_store *s = NULL;
    struct asr_error err = {0};
    cr_assert_eq(open_with_key(dir, key, &s, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "97 bytes"), "%s", err.msg);
    free(good), free(dir), free(key), free(config);
}

/* ---- chunk ids ------------------------------------------------------------------------------ */

/* From `printf 'The quick brown chunk' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001...1f`. */
static const char kat_id[] = "e0fa023bbc3f5e9d99d56b695b14ea3baee2b70a941c5e7b57c1cecf65a3a12a";
/* The key check of that key for the uuid 00112233...ff: `printf 'asrimg store key check\x00\x11...\xff' | openssl ...`. */
static const char kat_check[] = "dc8352547f4be392dd8cc68f4f1a7f070d39b6b2c7784c3eceb4202ebd0ede39";

Test(store, chunk_id_known_answer)
{
    /* A store made by hand with a known key and uuid: the key check must be the one OpenSSL's
     * command line computes, and chunk ids too. */
    char *dir = scratch_path("kat"), *key = scratch_path("kat.key"), *config = scratch_path("kat/config");
    cr_assert_eq(mkdir(dir, 0755), 0);
    struct store_config c = {.version = 1, .hash_seed = 7, .pack_target = STORE_DEFAULT_PACK_TARGET};
    for (int i = 0; i < 16; i++)
        c.uuid[i] = (uint8_t)(i * 0x11);
    cr_assert_eq(store_hex_parse(kat_check, c.key_check, 32), 0);
    uint8_t raw[STORE_CONFIG_SIZE];
    store_config_encode(&c, raw);
    write_file(config, raw, sizeof raw);
    write_file(key, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 65);
    struct asr_store *s;
    struct asr_error err = {0};
    cr_assert_eq(open_with_key(dir, key, &s, &err), ASR_OK, "%s", err.msg);
    struct asr_store_id id;
    asr_store_chunk_id(s, "The quick brown chunk", 21, &id);
    char hex[65];
    store_hex(id.b, 32, hex);
    cr_assert_str_eq(hex, kat_id);
    cr_assert_eq(asr_store_hash_seed(s), 7);
    asr_store_close(s);
    free(dir), free(key), free(config);
}

struct hash_job {
    struct asr_store *s;
    const uint8_t *data;
    size_t len, chunk;
    uint8_t digest[32]; /* XOR of every id, to compare threads with one thread */
};

static void *hash_all(void *arg)
{
    struct hash_job *j = arg;
    memset(j->digest, 0, 32);
    for (size_t off = 0; off < j->len; off += j->chunk) {
        struct asr_store_id id;
        asr_store_chunk_id(j->s, j->data + off, j->chunk, &id);
        for (int i = 0; i < 32; i++)
            j->digest[i] ^= id.b[i];
    }
    return NULL;
}

/* Thread-safety (four threads give the ids one thread gives) and speed: prints MB/s. */
Test(store, chunk_id_threads_and_speed)
{
    struct asr_store *s = storefix_store("st", STORE_DEFAULT_PACK_TARGET);
    size_t len = 64u << 20;
    uint8_t *data = malloc(len);
    cr_assert_not_null(data);
    storefix_fill(data, len, 1);
    struct hash_job one = {.s = s, .data = data, .len = len, .chunk = 256u << 10};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    hash_all(&one);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_log_info("HMAC-SHA-256 chunk ids: %.0f MB/s on one thread (256 KiB chunks)", (double)len / secs / 1e6);
    fprintf(stderr, "store: HMAC-SHA-256 chunk ids: %.0f MB/s on one thread (256 KiB chunks)\n",
            (double)len / secs / 1e6);
    pthread_t th[4];
    struct hash_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = one;
        cr_assert_eq(pthread_create(&th[i], NULL, hash_all, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(memcmp(jobs[i].digest, one.digest, 32), 0);
    }
    free(data);
    asr_store_close(s);
}

Test(store, split_ref)
{
    char *a, *b;
    cr_assert(asr_store_split_ref("/srv/store::pc1/20261205T100000Z", &a, &b));
    cr_assert_str_eq(a, "/srv/store");
    cr_assert_str_eq(b, "pc1/20261205T100000Z");
    free(a), free(b);
    cr_assert(asr_store_split_ref("s3://b/p::x::h/t", &a, &b));
    cr_assert_str_eq(a, "s3://b/p::x");
    cr_assert_str_eq(b, "h/t");
    free(a), free(b);
    cr_assert_not(asr_store_split_ref("disk.asrimg", &a, &b));
    cr_assert_not(asr_store_split_ref("::h/t", &a, &b));
    cr_assert_not(asr_store_split_ref("/srv/store::", &a, &b));
}

/* ---- the directory backend ----------------------------------------------------------------- */

Test(store, backend_dir)
{
    struct asr_store *s = storefix_store("st", STORE_DEFAULT_PACK_TARGET);
    struct store_backend *b = s->b;
    struct asr_error err = {0};
    cr_assert_eq(b->ops->put(b, "a/b/c", "one", 3, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(b->ops->put(b, "a/b/c", "two!", 4, &err), ASR_OK, "put replaces");
    char buf[16];
    size_t got;
    bool missing;
    cr_assert_eq(b->ops->get(b, "a/b/c", 1, buf, sizeof buf, &got, &missing, &err), ASR_OK);
    cr_assert(got == 3 && !memcmp(buf, "wo!", 3));
    cr_assert_eq(b->ops->get(b, "a/b/d", 0, buf, sizeof buf, &got, &missing, &err), ASR_E_IO);
    cr_assert(missing);
    cr_assert(strstr(err.msg, "a/b/d"), "%s", err.msg);
    static const char *const bad[] = {"../x", "/etc/passwd", "a/../../x", "a//b", "a/", "", "./x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(b->ops->put(b, bad[i], "x", 1, &err), ASR_E_ARG, "%s accepted", bad[i]);
    /* put_file never replaces: a snapshot's name is taken once. */
    char *f = scratch_path("file");
    write_file(f, "snapshot", 8);
    cr_assert_eq(b->ops->put_file(b, "snapshots/h/t", f, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(b->ops->put_file(b, "snapshots/h/t", f, &err), ASR_E_EXISTS);
    cr_assert_eq(storefix_count(s, "tmp/"), 0, "no temporary file is left");
    struct store_object *o;
    size_t n;
    cr_assert_eq(b->ops->list(b, "a/", &o, &n, &err), ASR_OK);
    cr_assert(n == 1 && !strcmp(o[0].key, "a/b/c") && o[0].size == 4);
    int64_t now;
    cr_assert_eq(b->ops->now(b, &now, &err), ASR_OK);
    cr_assert(o[0].mtime <= now && now - o[0].mtime < 60 && llabs(now - (int64_t)time(NULL)) < 60);
    store_objects_free(o, n);
    cr_assert_eq(b->ops->list(b, "snapshots/h", &o, &n, &err), ASR_OK);
    cr_assert_eq(n, 1, "a prefix that ends inside a name");
    store_objects_free(o, n);
    cr_assert_eq(b->ops->list(b, "", &o, &n, &err), ASR_OK);
    cr_assert_eq(n, 3, "config, a/b/c and the snapshot; tmp/ is not listed");
    store_objects_free(o, n);
    cr_assert_eq(b->ops->del(b, "a/b/c", &err), ASR_OK);
    cr_assert_eq(b->ops->del(b, "a/b/c", &err), ASR_OK, "deleting what is not there is fine");
    char *out = scratch_path("out");
    cr_assert_eq(b->ops->get_file(b, "snapshots/h/t", out, &missing, &err), ASR_OK);
    size_t len;
    uint8_t *back = read_file(out, &len);
    cr_assert(len == 8 && !memcmp(back, "snapshot", 8));
    free(back), free(f), free(out);
    /* Whole objects of any size up to a cap, read on without reading a byte twice. */
    static uint8_t big[200000];
    storefix_fill(big, sizeof big, 3);
    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cr_assert_eq(b->ops->put(b, "obj", big, sizes[i], &err), ASR_OK);
        uint8_t *whole;
        cr_assert_eq(store_get_whole(b, "obj", 1u << 20, &whole, &len, &missing, &err), ASR_OK, "%s", err.msg);
        cr_assert(len == sizes[i] && !memcmp(whole, big, len), "%zu bytes", sizes[i]);
        free(whole);
        cr_assert_eq(store_get_whole(b, "obj", sizes[i], &whole, &len, &missing, &err), ASR_OK, "exactly the cap");
        free(whole);
        if (sizes[i]) {
            cr_assert_eq(store_get_whole(b, "obj", sizes[i] - 1, &whole, &len, &missing, &err), ASR_E_LIMIT);
            cr_assert_null(whole);
        }
    }
    asr_store_close(s);
}

/* Pages of the file at path in the page cache, of its first n. */
static size_t cached_pages(const char *path, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "%s", path);
    long page = sysconf(_SC_PAGESIZE);
    void *map = mmap(NULL, n * (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    cr_assert_neq(map, MAP_FAILED);
    unsigned char *in = malloc(n);
    cr_assert_eq(mincore(map, n * (size_t)page, in), 0);
    size_t cached = 0;
    for (size_t i = 0; i < n; i++)
        cached += in[i] & 1;
    free(in);
    munmap(map, n * (size_t)page);
    close(fd);
    return cached;
}

/* Objects of a pack's size are written past the page cache (O_DIRECT through an aligned bounce
 * buffer, the odd tail cached) from memory at any alignment, and read back whole. */
Test(store, backend_dir_large_objects)
{
    struct asr_store *s = storefix_store("st", STORE_DEFAULT_PACK_TARGET);
    struct store_backend *b = s->b;
    struct asr_error err = {0};
    enum { MAX = (17 << 20) + 100 };
    uint8_t *src = malloc(MAX + 1);
    storefix_fill(src, MAX + 1, 7);
    static const size_t sizes[] = {(8 << 20) - 1, 8 << 20, (8 << 20) + 1, (12 << 20) + 4095, MAX};
    char *path = scratch_path("st/big");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const uint8_t *data = src + (i & 1); /* odd and even addresses */
        cr_assert_eq(b->ops->put(b, "big", data, sizes[i], &err), ASR_OK, "%s", err.msg);
        size_t pages = sizes[i] / 4096, cached = cached_pages(path, pages);
        if (sizes[i] >= 8 << 20)
            cr_assert_lt(cached, pages / 8, "%zu bytes: %zu of %zu whole pages cached", sizes[i], cached, pages);
        uint8_t *whole;
        size_t len;
        bool missing;
        cr_assert_eq(store_get_whole(b, "big", MAX, &whole, &len, &missing, &err), ASR_OK, "%s", err.msg);
        cr_assert(len == sizes[i] && !memcmp(whole, data, len), "%zu bytes read back", sizes[i]);
        free(whole);
    }
    cr_assert_eq(storefix_count(s, "tmp/"), 0);
    free(path);
    free(src);
    asr_store_close(s);
}

/* ---- packs ---------------------------------------------------------------------------------- */

/* A pack of n test chunks; *data malloc'd. */
static uint8_t *build_pack(struct asr_store *s, int n, size_t *len, struct storefix_chunk *chunks,
                           uint8_t id[STORE_OID_SIZE])
{
    struct store_pack_writer *pw;
    struct asr_error err = {0};
    cr_assert_eq(store_pack_writer_new(&pw, &err), ASR_OK);
    for (int i = 0; i < n; i++) {
        storefix_chunk(s, (uint32_t)i, 0, false, &chunks[i]);
        cr_assert_eq(store_pack_add(pw, &chunks[i].id, &chunks[i].c, &err), ASR_OK, "%s", err.msg);
    }
    const uint8_t *data;
    cr_assert_eq(store_pack_finish(pw, &data, len, &err), ASR_OK);
    memcpy(id, store_pack_id(pw), STORE_OID_SIZE);
    uint8_t *copy = malloc(*len);
    memcpy(copy, data, *len);
    store_pack_writer_free(pw);
    return copy;
}

static int decode_pack(const uint8_t *p, size_t len, struct store_entry **e, struct store_pack_trailer *t,
                       struct asr_error *err)
{
    *e = NULL;
    if (len < STORE_PACK_TRAILER_SIZE)
        return ASR_E_CORRUPT;
    int rc = store_pack_trailer_decode(p + len - STORE_PACK_TRAILER_SIZE, len, t, err);
    if (rc)
        return rc;
    return store_pack_entries_decode(p + t->entries_offset, len - STORE_PACK_TRAILER_SIZE - t->entries_offset, t, e,
                                     err);
}

Test(store, pack_round_trip)
{
    struct asr_store *s = storefix_store("st", STORE_DEFAULT_PACK_TARGET);
    static struct storefix_chunk chunks[3];
    uint8_t id[STORE_OID_SIZE];
    size_t len;
    uint8_t *p = build_pack(s, 3, &len, chunks, id);
    struct store_pack_trailer t;
    struct store_entry *e;
    struct asr_error err = {0};
    cr_assert_eq(decode_pack(p, len, &e, &t, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(t.count, 3);
    cr_assert_eq(memcmp(t.id, id, STORE_OID_SIZE), 0);
    uint64_t off = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(memcmp(e[i].id.b, chunks[i].id.b, 32), 0);
        cr_assert_eq(e[i].offset, off);
        cr_assert_eq(e[i].record_len, 64 + chunks[i].c.stored_len);
        cr_assert_eq(e[i].content_len, sizeof chunks[i].content);
        /* The record is a section 8 chunk record with chunk_id 0 and the store's seed. */
        const uint8_t *r = p + off;
        cr_assert_eq(memcmp(r, "ACNK", 4), 0);
        cr_assert_eq(get_le64(r + 8), 0);
        cr_assert_eq(get_le64(r + 56), XXH3_64bits(r, 56));
        cr_assert_eq(get_le64(r + 24), chunks[i].c.content_hash.lo);
        cr_assert_eq(get_le64(r + 40), XXH3_64bits(r + 64, chunks[i].c.stored_len));
        cr_assert_eq(memcmp(r + 64, chunks[i].content, sizeof chunks[i].content), 0);
        off += e[i].record_len;
    }
    cr_assert_eq(t.entries_offset, off);
    free(e);
    /* Every byte of the trailer and of the entry table matters. */
    for (size_t at = t.entries_offset; at < len; at++) {
        p[at] ^= 0x40;
        cr_assert_neq(decode_pack(p, len, &e, &t, &err), ASR_OK, "a flipped byte at %zu of %zu", at, len);
        cr_assert_null(e);
        p[at] ^= 0x40;
    }
    /* Cut short anywhere: refused. */
    for (size_t cut = 0; cut < len; cut += 997)
        cr_assert_neq(decode_pack(p, cut, &e, &t, &err), ASR_OK);
    free(p);
    asr_store_close(s);
}

/* Trailers whose checksum is right but whose counts lie: refused before anything is allocated. */
Test(store, pack_trailer_hostile)
{
    uint8_t tr[STORE_PACK_TRAILER_SIZE];
    static const struct {
        uint64_t count, entries_offset, size;
    } cases[] = {
        {UINT64_MAX, 0, 1000},
        {UINT64_MAX / 48 + 1, 0, 1000},
        {(1ull << 58), 64, 64 + 64 + 48},
        {1, UINT64_MAX - 10, 1000},
        {1, 900, 1000},
        {0, 936, 1000},
        {2, 1000 - 64 - 48, 1000},
        {1, 0, 63},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(tr, 0, sizeof tr);
        memcpy(tr, "APCK", 4);
        put_le32(tr + 4, 1);
        put_le64(tr + 8, cases[i].count);
        put_le64(tr + 16, cases[i].entries_offset);
        put_le64(tr + 56, XXH3_64bits(tr, 56));
        struct store_pack_trailer t;
        struct asr_error err = {0};
        cr_assert_eq(store_pack_trailer_decode(tr, cases[i].size, &t, &err), ASR_E_CORRUPT, "case %zu", i);
    }
}

/* ---- index objects -------------------------------------------------------------------------- */

static uint8_t *sample_index(size_t *len, struct store_index *ix)
{
    static uint8_t packs[3][STORE_OID_SIZE];
    static struct store_ientry e[5];
    for (int i = 0; i < 3; i++)
        memset(packs[i], 0xa0 + i, STORE_OID_SIZE);
    for (int i = 0; i < 5; i++)
        e[i] = (struct store_ientry){.pack = (uint32_t)(i % 3),
                                     .record_len = 64 + 100u * (uint32_t)i + 1,
                                     .offset = 1000u * (uint64_t)i,
                                     .content_len = 100u * (uint32_t)i + 1};
    for (int i = 0; i < 5; i++)
        memset(e[i].id.b, i + 1, 32);
    *ix = (struct store_index){.pack_count = 3, .packs = packs, .count = 5, .entries = e};
    uint8_t *raw;
    struct asr_error err = {0};
    cr_assert_eq(store_index_encode(ix, &raw, len, &err), ASR_OK);
    return raw;
}

Test(store, index_round_trip)
{
    struct store_index ix, back;
    size_t len;
    uint8_t *raw = sample_index(&len, &ix);
    cr_assert_eq(len, 32 + 3 * 16 + 5 * 56 + 8);
    struct asr_error err = {0};
    cr_assert_eq(store_index_decode(raw, len, &back, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(back.pack_count, 3);
    cr_assert_eq(back.count, 5);
    cr_assert_eq(memcmp(back.packs, ix.packs, 3 * 16), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(memcmp(&back.entries[i].id, &ix.entries[i].id, 32), 0);
        cr_assert_eq(back.entries[i].pack, ix.entries[i].pack);
        cr_assert_eq(back.entries[i].offset, ix.entries[i].offset);
        cr_assert_eq(back.entries[i].record_len, ix.entries[i].record_len);
        cr_assert_eq(back.entries[i].content_len, ix.entries[i].content_len);
    }
    store_index_free(&back);
    /* Every byte is covered; every length short of the whole is refused. */
    for (size_t at = 0; at < len; at++) {
        raw[at] ^= 1;
        cr_assert_neq(store_index_decode(raw, len, &back, &err), ASR_OK, "a flipped byte at %zu", at);
        raw[at] ^= 1;
    }
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_neq(store_index_decode(raw, cut, &back, &err), ASR_OK, "cut at %zu", cut);
    free(raw);
}

/* Hostile fields with the checksum made right: each refused by its rule. */
Test(store, index_hostile)
{
    struct store_index ix, back;
    size_t len;
    static const struct {
        size_t at;
        int width;
        uint64_t value;
        const char *msg;
    } cases[] = {
        {8, 4, UINT32_MAX, "packs in"},
        {8, 4, 4, "do not fill"},
        {16, 8, UINT64_MAX, "do not fill"},
        {16, 8, (1ull << 60), "do not fill"},
        {16, 8, 4, "do not fill"},
        {32 + 48 + 32, 4, 3, "a pack outside"},
        {32 + 48 + 36, 4, 64, "a record length"},
        {32 + 48 + 36, 4, 64 + 2, "a record length"},           /* stored 2 > content 1 */
        {32 + 48 + 48, 4, 0, "a content length"},
        {32 + 48 + 48, 4, (16u << 20) + 1, "a content length"},
        {32 + 48 + 40, 8, UINT64_MAX - 10, "an offset"},
        {32 + 48 + 52, 4, 1, "reserved"},
        {12, 4, 1, "reserved"},
        {4, 4, 2, "version 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *raw = sample_index(&len, &ix);
        if (cases[i].width == 4)
            put_le32(raw + cases[i].at, (uint32_t)cases[i].value);
        else
            put_le64(raw + cases[i].at, cases[i].value);
        put_le64(raw + len - 8, XXH3_64bits(raw, len - 8));
        struct asr_error err = {0};
        cr_assert_neq(store_index_decode(raw, len, &back, &err), ASR_OK, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].msg), "case %zu: %s", i, err.msg);
        cr_assert_null(back.entries);
        free(raw);
    }
}

/* ---- sessions ------------------------------------------------------------------------------- */

#define NCHUNKS 10 /* 20 KiB each into 64 KiB packs: two full packs of four, and two chunks */

static char *manifest(const char *name, uint32_t seed)
{
    char *path = scratch_path(name);
    uint8_t b[3000];
    storefix_fill(b, sizeof b, seed);
    write_file(path, b, sizeof b);
    return path;
}

Test(store, session_put_commit_list_fetch)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *c = storefix_chunks(s, 0, NCHUNKS, 0, false);
    struct asr_store_session *ss;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_session_begin(s, "bad host", &ss, &err), ASR_E_ARG);
    cr_assert_eq(asr_store_session_begin(s, ".hidden", &ss, &err), ASR_E_ARG);
    ss = storefix_begin(s, "pc-1.example_x");
    cr_assert_eq(storefix_count(s, "sessions/"), 1, "the session is announced first");
    for (int i = 0; i < NCHUNKS; i++)
        cr_assert_not(asr_store_session_has(ss, &c[i].id, NULL, NULL));
    storefix_put(ss, c, NCHUNKS);
    storefix_put(ss, c, 2); /* again: not added twice */
    uint32_t clen = 0;
    for (int i = 0; i < NCHUNKS; i++) {
        cr_assert(asr_store_session_has(ss, &c[i].id, &clen, NULL));
        cr_assert_eq(clen, sizeof c[i].content);
    }
    /* 20 KiB + 64-byte records: a 64 KiB pack closes at its fourth record. Full packs upload on
     * threads of their own: once those are done, each is there with its index object. */
    cr_assert_eq(store_session_uploads_wait(ss, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(storefix_count(s, "packs/"), 2);
    cr_assert_eq(storefix_count(s, "index/"), 2, "one index object per uploaded pack");
    char *m = manifest("manifest", 1), name[256];
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_OK, "%s", err.msg);
    struct asr_store_session_stats st;
    asr_store_session_stats(ss, &st);
    asr_store_session_free(ss);
    cr_assert_eq(st.chunks_new, NCHUNKS);
    cr_assert_eq(st.bytes_new, NCHUNKS * sizeof c[0].content);
    cr_assert_eq(st.stored_new, NCHUNKS * sizeof c[0].content);
    cr_assert_eq(st.packs, 3);
    cr_assert_eq(st.chunks_known, 2 + NCHUNKS);
    cr_assert_eq(storefix_count(s, "packs/"), 3);
    cr_assert_eq(storefix_count(s, "index/"), 1, "the session's index replaces its per-pack ones");
    cr_assert_eq(storefix_count(s, "sessions/"), 0, "the session object goes at the end");
    cr_assert_eq(storefix_count(s, "tmp/"), 0);
    cr_assert(!strncmp(name, "pc-1.example_x/", 15) && strlen(name) == 15 + 16, "%s", name);

    struct asr_store_snapshot *snaps;
    size_t n;
    cr_assert_eq(asr_store_list(s, NULL, false, &snaps, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(snaps[0].name, name);
    cr_assert_str_eq(snaps[0].host, "pc-1.example_x");
    cr_assert(llabs(snaps[0].time - (int64_t)time(NULL)) < 60);
    free(snaps);
    char *back = scratch_path("back");
    cr_assert_eq(asr_store_fetch_snapshot(s, name, back, &err), ASR_OK, "%s", err.msg);
    size_t l1, l2;
    uint8_t *b1 = read_file(m, &l1), *b2 = read_file(back, &l2);
    cr_assert(l1 == l2 && !memcmp(b1, b2, l1), "the snapshot is stored as it was given");
    cr_assert_eq(asr_store_fetch_snapshot(s, "pc-1.example_x/20000101T000000Z", back, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "no snapshot"), "%s", err.msg);
    cr_assert_eq(asr_store_fetch_snapshot(s, "../config", back, &err), ASR_E_ARG);

    /* A second session finds every chunk and uploads nothing but its snapshot. */
    ss = storefix_begin(s, "pc2");
    for (int i = 0; i < NCHUNKS; i++)
        cr_assert(asr_store_session_has(ss, &c[i].id, NULL, NULL));
    storefix_put(ss, c, NCHUNKS);
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_OK, "%s", err.msg);
    asr_store_session_stats(ss, &st);
    asr_store_session_free(ss);
    cr_assert_eq(st.chunks_new, 0);
    cr_assert_eq(st.packs, 0);
    cr_assert_eq(storefix_count(s, "packs/"), 3);
    cr_assert_eq(storefix_count(s, "index/"), 1);
    free(b1), free(b2), free(back), free(m), free(c);
    asr_store_close(s);
}

Test(store, interrupted_session_reused)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *c = storefix_chunks(s, 100, NCHUNKS, 0, false);
    struct asr_error err = {0};
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    storefix_put(ss, c, NCHUNKS);
    asr_store_session_free(ss); /* interrupted: no commit */
    cr_assert_eq(storefix_count(s, "snapshots/"), 0, "no snapshot that looks complete");
    cr_assert_eq(storefix_count(s, "sessions/"), 0);
    cr_assert_eq(storefix_count(s, "packs/"), 2);
    cr_assert_eq(storefix_count(s, "index/"), 2);

    ss = storefix_begin(s, "pc1");
    /* The uploaded packs' chunks (the first eight) are found; the two of the pack never
     * uploaded are not. */
    for (int i = 0; i < NCHUNKS; i++)
        cr_assert_eq(asr_store_session_has(ss, &c[i].id, NULL, NULL), i < 8, "chunk %d", i);
    storefix_put(ss, c, NCHUNKS);
    struct asr_store_session_stats st;
    asr_store_session_stats(ss, &st);
    cr_assert_eq(st.chunks_new, 2);
    char *m = manifest("m", 2), name[256];
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_OK, "%s", err.msg);
    asr_store_session_free(ss);
    cr_assert_eq(storefix_count(s, "packs/"), 3, "nothing uploaded twice");
    cr_assert_eq(storefix_count(s, "index/"), 3, "the leftover per-pack index objects stay for gc to merge");
    free(m), free(c);
    asr_store_close(s);
}

/* Twenty interrupted sessions leave a pack and an index object each; a session reads them all
 * (several at once) and finds every chunk. With two of them damaged, a session refuses to begin,
 * naming one of the two. */
Test(store, many_index_objects_read_at_once)
{
    enum { SESSIONS = 20, PER = 4 }; /* four chunks fill a pack here */
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *c = storefix_chunks(s, 300, SESSIONS * PER, 0, false);
    for (int k = 0; k < SESSIONS; k++) {
        struct asr_store_session *ss = storefix_begin(s, "pc1");
        storefix_put(ss, c + k * PER, PER);
        asr_store_session_free(ss);
    }
    cr_assert_eq(storefix_count(s, "index/"), SESSIONS);
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    for (int i = 0; i < SESSIONS * PER; i++)
        cr_assert(asr_store_session_has(ss, &c[i].id, NULL, NULL), "chunk %d", i);
    asr_store_session_free(ss);

    struct store_object *o = NULL;
    size_t n = 0;
    struct asr_error err = {0};
    cr_assert_eq(s->b->ops->list(s->b, "index/", &o, &n, &err), ASR_OK);
    cr_assert_eq(n, SESSIONS);
    for (size_t k = 3; k <= 11; k += 8)
        cr_assert_eq(s->b->ops->put(s->b, o[k].key, "ASIX damaged", 12, &err), ASR_OK, "%s", err.msg);
    cr_assert_neq(asr_store_session_begin(s, "pc1", &ss, &err), ASR_OK);
    cr_assert(strstr(err.msg, o[3].key) || strstr(err.msg, o[11].key), "%s", err.msg);
    store_objects_free(o, n);
    free(c);
    asr_store_close(s);
}

/* On a filesystem that tells names apart by case (the scratch directory's, ext4 here), hosts
 * "pc1" and "PC1" are two machines, each with its snapshot. (store_exfat checks that exFAT, which
 * does not, refuses the second.) */
Test(store, host_names_by_case)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct asr_error err = {0};
    static const char *const hosts[2] = {"pc1", "PC1"};
    for (int i = 0; i < 2; i++) {
        struct asr_store_session *ss;
        cr_assert_eq(asr_store_session_begin(s, hosts[i], &ss, &err), ASR_OK, "%s: %s", hosts[i], err.msg);
        char *m = manifest("m", (uint32_t)i), name[256];
        cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_OK, "%s", err.msg);
        asr_store_session_free(ss);
        free(m);
    }
    for (int i = 0; i < 2; i++) {
        struct asr_store_snapshot *snaps;
        size_t n;
        cr_assert_eq(asr_store_list(s, hosts[i], false, &snaps, &n, &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(n, 1, "%s: %zu snapshots", hosts[i], n);
        cr_assert(!strncmp(snaps[0].name, hosts[i], 3) && snaps[0].name[3] == '/', "%s", snaps[0].name);
        free(snaps);
    }
    asr_store_close(s);
}

/* Backups of one host started in the same second: each takes the next free second, and nothing
 * is overwritten. */
Test(store, snapshot_names_never_clash)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct asr_error err = {0};
    int64_t t0;
    cr_assert_eq(store_time_parse("20261205T100000Z", &t0), 0);
    /* Another backup already took the second after. */
    char *taken = scratch_path("st/snapshots");
    cr_assert_eq(mkdir(taken, 0755), 0);
    free(taken);
    taken = scratch_path("st/snapshots/pc1");
    cr_assert_eq(mkdir(taken, 0755), 0);
    free(taken);
    taken = scratch_path("st/snapshots/pc1/20261205T100001Z");
    write_file(taken, "other", 5);
    struct asr_store_session *ss[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(asr_store_session_begin(s, "pc1", &ss[i], &err), ASR_OK);
        store_session_set_start(ss[i], t0);
    }
    static const char *const want[3] = {"pc1/20261205T100000Z", "pc1/20261205T100002Z", "pc1/20261205T100003Z"};
    char *m[3];
    for (int i = 0; i < 3; i++) {
        char name[256], file[16];
        snprintf(file, sizeof file, "m%d", i);
        m[i] = manifest(file, (uint32_t)i);
        cr_assert_eq(asr_store_session_commit(ss[i], m[i], name, sizeof name, &err), ASR_OK, "%s", err.msg);
        cr_assert_str_eq(name, want[i]);
        asr_store_session_free(ss[i]);
    }
    cr_assert_eq(storefix_count(s, "snapshots/"), 4);
    size_t len;
    uint8_t *b = read_file(taken, &len);
    cr_assert(len == 5 && !memcmp(b, "other", 5), "the snapshot there before is untouched");
    free(b);
    for (int i = 0; i < 3; i++) {
        char *back = scratch_path("back");
        cr_assert_eq(asr_store_fetch_snapshot(s, want[i], back, &err), ASR_OK);
        size_t l1, l2;
        uint8_t *x = read_file(back, &l1), *y = read_file(m[i], &l2);
        cr_assert(l1 == l2 && !memcmp(x, y, l1));
        free(x), free(y), free(back), free(m[i]);
    }
    free(taken);
    asr_store_close(s);
}

/* The pack key of the chunk's listing in the store's table. */
static void pack_of(struct asr_store *s, const struct asr_store_id *id, char key[STORE_KEY_NAME_MAX])
{
    struct asr_error err = {0};
    cr_assert_eq(store_load_table(s, &err), ASR_OK, "%s", err.msg);
    struct store_loc loc;
    cr_assert(store_table_find(s->table, id, &loc));
    uint8_t pid[STORE_OID_SIZE];
    store_table_pack_id(s->table, loc.pack, pid);
    store_pack_name(pid, key);
}

/* One committed snapshot of chunks c[0..n). */
static void backup(struct asr_store *s, const char *host, struct storefix_chunk *c, int n)
{
    struct asr_error err = {0};
    struct asr_store_session *ss = storefix_begin(s, host);
    storefix_put(ss, c, n);
    char *m = manifest("m", 9), name[256];
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_OK, "%s", err.msg);
    asr_store_session_free(ss);
    free(m);
}

/* A backup suspended past its lease: a pack it reuses is gone (as gc would delete it), so the
 * commit fails naming it and makes no snapshot. Renewed in time, the check is not needed. */
Test(store, lapsed_lease_checks_reused_packs)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *c = storefix_chunks(s, 0, NCHUNKS, 0, false);
    backup(s, "pc1", c, NCHUNKS);
    struct asr_error err = {0};
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    for (int i = 0; i < NCHUNKS; i++)
        cr_assert(asr_store_session_has(ss, &c[i].id, NULL, NULL));
    char key[STORE_KEY_NAME_MAX];
    pack_of(s, &c[5].id, key);
    cr_assert_eq(s->b->ops->del(s->b, key, &err), ASR_OK);
    store_session_age(ss, 3600);
    char *m = manifest("m2", 3), name[256];
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_E_STATE);
    cr_assert(strstr(err.msg, key + strlen("packs/xx/")) && strstr(err.msg, "deleted by gc"), "%s", err.msg);
    asr_store_session_free(ss);
    cr_assert_eq(storefix_count(s, "snapshots/"), 1, "no snapshot lacking chunks");
    /* Its own packs too: no snapshot used them, so gc could condemn and delete them. */
    ss = storefix_begin(s, "pc1");
    struct storefix_chunk *more = storefix_chunks(s, 50, 5, 0, false);
    storefix_put(ss, more, 5);
    cr_assert_eq(store_session_uploads_wait(ss, &err), ASR_OK, "%s", err.msg);
    store_table_free(s->table); /* loaded before these were uploaded: read the index again */
    s->table = NULL;
    pack_of(s, &more[0].id, key);
    cr_assert_eq(s->b->ops->del(s->b, key, &err), ASR_OK);
    store_session_age(ss, 3600);
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_E_STATE);
    cr_assert(strstr(err.msg, key + strlen("packs/xx/")) && strstr(err.msg, "uploaded"), "%s", err.msg);
    asr_store_session_free(ss);
    free(more);
    /* The same with every reused pack there: committed. */
    ss = storefix_begin(s, "pc1");
    cr_assert(asr_store_session_has(ss, &c[0].id, NULL, NULL));
    store_session_age(ss, 3600);
    cr_assert_eq(asr_store_session_commit(ss, m, name, sizeof name, &err), ASR_OK, "%s", err.msg);
    asr_store_session_free(ss);
    free(m), free(c);
    asr_store_close(s);
}

/* The lease: the session object is rewritten while the backup runs (its inode changes: a new
 * object renamed into place), and removed at the end. */
Test(store, lease_renewed)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct asr_error err = {0};
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    struct store_object *o;
    size_t n;
    cr_assert_eq(s->b->ops->list(s->b, "sessions/", &o, &n, &err), ASR_OK);
    cr_assert_eq(n, 1);
    char *path = malloc(strlen(scratch_dir()) + strlen(o[0].key) + 8);
    sprintf(path, "%s/st/%s", scratch_dir(), o[0].key);
    store_objects_free(o, n);
    struct stat before, after;
    cr_assert_eq(stat(path, &before), 0);
    size_t len;
    uint8_t *text = read_file(path, &len);
    static const char head[] = "asrimg session 1\nhost pc1\nstart ";
    cr_assert(len > sizeof head && !memcmp(text, head, sizeof head - 1) && text[len - 1] == '\n', "%.*s", (int)len,
              text);
    free(text);
    store_session_lease_every(ss, 1);
    usleep(2500 * 1000);
    cr_assert_eq(stat(path, &after), 0);
    /* Renewed: a new file renamed over it. Its inode alone cannot tell (a second renewal may get
     * the first file's inode number back); its modification time, in nanoseconds, moves on. */
    cr_assert(after.st_mtim.tv_sec != before.st_mtim.tv_sec || after.st_mtim.tv_nsec != before.st_mtim.tv_nsec,
              "renewed");
    struct asr_store_session_stats st;
    asr_store_session_stats(ss, &st);
    cr_assert_geq(st.requests, 2);
    asr_store_session_free(ss);
    cr_assert_neq(stat(path, &after), 0, "gone with the session");
    free(path);
    asr_store_close(s);
}

/* A chunk that lies only in a condemned pack is not reused: the session stores it again. */
Test(store, condemned_packs_not_reused)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *c = storefix_chunks(s, 0, NCHUNKS, 0, false);
    backup(s, "pc1", c, NCHUNKS);
    char key[STORE_KEY_NAME_MAX];
    pack_of(s, &c[0].id, key);
    uint8_t pid[STORE_OID_SIZE];
    cr_assert_eq(store_hex_parse(strrchr(key, '/') + 1, pid, STORE_OID_SIZE), 0);
    struct store_condemn cd = {.flags = STORE_CONDEMN_SESSIONS_LISTED, .pack_count = 1, .packs = &pid};
    uint8_t *raw;
    size_t len;
    struct asr_error err = {0};
    cr_assert_eq(store_condemn_encode(&cd, &raw, &len, &err), ASR_OK);
    cr_assert_eq(s->b->ops->put(s->b, "gc/0123456789abcdef0123456789abcdef", raw, len, &err), ASR_OK);
    free(raw);
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    for (int i = 0; i < NCHUNKS; i++)
        cr_assert_eq(asr_store_session_has(ss, &c[i].id, NULL, NULL), i >= 4, "chunk %d (pack 0 holds 0-3)", i);
    storefix_put(ss, c, NCHUNKS);
    struct asr_store_session_stats st;
    asr_store_session_stats(ss, &st);
    cr_assert_eq(st.chunks_new, 4);
    asr_store_session_free(ss);
    /* A damaged condemnation stops the session: it cannot know what not to reuse. */
    cr_assert_eq(s->b->ops->put(s->b, "gc/0123456789abcdef0123456789abcdef", "AGCNjunk", 8, &err), ASR_OK);
    cr_assert_eq(asr_store_session_begin(s, "pc1", &ss, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "gc/0123456789abcdef0123456789abcdef"), "%s", err.msg);
    free(c);
    asr_store_close(s);
}

Test(store, condemnation_round_trip)
{
    uint8_t packs[3][STORE_OID_SIZE], sessions[2][STORE_OID_SIZE];
    storefix_fill(packs, sizeof packs, 5);
    storefix_fill(sessions, sizeof sessions, 6);
    struct store_condemn c = {.flags = 1, .pack_count = 3, .session_count = 2, .packs = packs, .sessions = sessions},
                         back;
    uint8_t *raw;
    size_t len;
    struct asr_error err = {0};
    cr_assert_eq(store_condemn_encode(&c, &raw, &len, &err), ASR_OK);
    cr_assert_eq(len, 32 + 5 * 16 + 8);
    cr_assert_eq(store_condemn_decode(raw, len, &back, &err), ASR_OK, "%s", err.msg);
    cr_assert(back.flags == 1 && back.pack_count == 3 && back.session_count == 2);
    cr_assert(!memcmp(back.packs, packs, sizeof packs) && !memcmp(back.sessions, sessions, sizeof sessions));
    store_condemn_free(&back);
    for (size_t at = 0; at < len; at++) {
        raw[at] ^= 2;
        cr_assert_neq(store_condemn_decode(raw, len, &back, &err), ASR_OK, "a flipped byte at %zu", at);
        raw[at] ^= 2;
    }
    put_le64(raw + 16, UINT64_MAX);
    put_le64(raw + len - 8, XXH3_64bits(raw, len - 8));
    cr_assert_eq(store_condemn_decode(raw, len, &back, &err), ASR_E_CORRUPT);
    free(raw);
}

/* ---- the chunk source ------------------------------------------------------------------------ */

struct fetch_job {
    struct asr_chunk_source src;
    struct storefix_chunk *c;
    int n, bad;
};

static void *fetch_all(void *arg)
{
    struct fetch_job *j = arg;
    uint8_t *buf = malloc(64 << 10);
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < j->n; i++) {
            size_t len = 0;
            char where[128];
            struct asr_error err = {0};
            if (j->src.fetch(j->src.ctx, j->c[i].id.b, buf, 64 << 10, &len, where, sizeof where, &err) ||
                len != 64 + sizeof j->c[i].content || memcmp(buf + 64, j->c[i].content, sizeof j->c[i].content) ||
                !j->src.check(j->src.ctx, j->c[i].id.b, buf + 64, len - 64))
                j->bad++;
        }
    free(buf);
    return NULL;
}

Test(store, chunk_source)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *c = storefix_chunks(s, 0, NCHUNKS, 0, false);
    backup(s, "pc1", c, NCHUNKS);
    asr_store_close(s); /* a reader opens the store afresh */
    char *dir = scratch_path("st"), *key = scratch_path("st.key");
    struct asr_error err = {0};
    cr_assert_eq(open_with_key(dir, key, &s, &err), ASR_OK);
    struct fetch_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct fetch_job){.c = c, .n = NCHUNKS};
        store_chunk_source(s, &jobs[i].src);
        cr_assert_eq(pthread_create(&th[i], NULL, fetch_all, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(jobs[i].bad, 0, "thread %d", i);
    }
    struct asr_chunk_source src;
    store_chunk_source(s, &src);
    uint8_t buf[64 << 10];
    size_t len;
    char where[128], pack[STORE_KEY_NAME_MAX];
    cr_assert_eq(src.fetch(src.ctx, c[5].id.b, buf, sizeof buf, &len, where, sizeof where, &err), ASR_OK);
    pack_of(s, &c[5].id, pack);
    const char *pack_hex = strrchr(pack, '/') + 1;
    char want[128];
    snprintf(want, sizeof want, "pack %s offset %u", pack_hex, 64 + 20 * 1024);
    cr_assert_str_eq(where, want, "chunk 5 is the second of its pack");
    /* Content that is not what the id names. */
    cr_assert(src.check(src.ctx, c[5].id.b, c[5].content, sizeof c[5].content));
    cr_assert_not(src.check(src.ctx, c[5].id.b, c[4].content, sizeof c[4].content));
    cr_assert_not(src.check(src.ctx, c[5].id.b, c[5].content, sizeof c[5].content - 1));
    /* A buffer too small; an id the store does not have. */
    cr_assert_eq(src.fetch(src.ctx, c[5].id.b, buf, 1000, &len, where, sizeof where, &err), ASR_E_LIMIT);
    struct asr_store_id unknown = {{0}};
    cr_assert_eq(src.fetch(src.ctx, unknown.b, buf, sizeof buf, &len, where, sizeof where, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "0000000000000000") && strstr(err.msg, "missing"), "%s", err.msg);

    /* A damaged byte in the pack: the record comes back and its content fails the check. */
    char *path = malloc(strlen(dir) + strlen(pack) + 2);
    sprintf(path, "%s/%s", dir, pack);
    patch_byte(path, 64 + 20 * 1024 + 64 + 1000, (uint8_t)(c[5].content[1000] ^ 0x10));
    cr_assert_eq(src.fetch(src.ctx, c[5].id.b, buf, sizeof buf, &len, where, sizeof where, &err), ASR_OK);
    cr_assert_not(src.check(src.ctx, c[5].id.b, buf + 64, len - 64), "a damaged chunk is caught");
    /* A pack cut short, then missing: an error naming the pack and the chunk. */
    cr_assert_eq(truncate(path, 64 + 20 * 1024 + 64 + 100), 0);
    cr_assert_eq(src.fetch(src.ctx, c[5].id.b, buf, sizeof buf, &len, where, sizeof where, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, pack_hex) && strstr(err.msg, "ends before"), "%s", err.msg);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(src.fetch(src.ctx, c[5].id.b, buf, sizeof buf, &len, where, sizeof where, &err), ASR_E_CORRUPT);
    char id_hex[65];
    store_hex(c[5].id.b, 32, id_hex);
    cr_assert(strstr(err.msg, pack_hex) && strstr(err.msg, id_hex) && strstr(err.msg, "not in the store"), "%s",
              err.msg);
    cr_assert_str_eq(where, want);
    free(path), free(dir), free(key), free(c);
    asr_store_close(s);
}

/* A handle that serves one snapshot (store_expect, as STORE::SNAPSHOT opens it) holds the chunks
 * of that snapshot alone, and numbers only their packs: the other machine's chunks, though in
 * the same index objects' store, are never held. Its own chunks read as from a full table; one
 * it does not name reads as one the store lacks. */
Test(store, handle_for_one_snapshot_holds_its_chunks)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *mine = storefix_chunks(s, 500, NCHUNKS, 0, false);
    struct storefix_chunk *other = storefix_chunks(s, 600, NCHUNKS, 0, false);
    backup(s, "pc1", mine, NCHUNKS);
    backup(s, "pc2", other, NCHUNKS);
    asr_store_close(s);
    char *dir = scratch_path("st"), *key = scratch_path("st.key");
    struct asr_error err = {0};

    /* Every chunk, for comparison: both machines' chunks, in six packs. */
    cr_assert_eq(open_with_key(dir, key, &s, &err), ASR_OK);
    cr_assert_eq(store_load_table(s, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(store_table_count(s->table), 2 * NCHUNKS);
    cr_assert_eq(store_table_pack_count(s->table), 6);
    asr_store_close(s);

    /* Five of pc1's chunks (four in one pack, one in the next) and an id the store lacks. */
    cr_assert_eq(open_with_key(dir, key, &s, &err), ASR_OK);
    struct asr_store_id *ids = malloc(6 * sizeof *ids), unknown;
    for (int i = 0; i < 5; i++)
        ids[i] = mine[i].id;
    memset(unknown.b, 0xab, sizeof unknown.b);
    ids[5] = unknown;
    store_expect(s, ids, 6); /* s takes ids */
    struct asr_chunk_source src;
    store_chunk_source(s, &src);
    uint8_t buf[64 << 10];
    size_t len;
    char where[128];
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(src.fetch(src.ctx, mine[i].id.b, buf, sizeof buf, &len, where, sizeof where, &err), ASR_OK,
                     "%s", err.msg);
        cr_assert(len == 64 + sizeof mine[i].content && !memcmp(buf + 64, mine[i].content, len - 64), "chunk %d", i);
    }
    cr_assert_eq(store_table_count(s->table), 6, "the five chunks and the one no index object lists");
    cr_assert_eq(store_table_pack_count(s->table), 2, "only the packs of the chunks it holds");
    cr_assert_eq(src.fetch(src.ctx, unknown.b, buf, sizeof buf, &len, where, sizeof where, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "abababab") && strstr(err.msg, "no index object lists it"), "%s", err.msg);
    for (int i = 5; i < NCHUNKS; i++)
        cr_assert_not(store_table_find(s->table, &mine[i].id, NULL), "chunk %d is not its snapshot's", i);
    for (int i = 0; i < NCHUNKS; i++)
        cr_assert_not(store_table_find(s->table, &other[i].id, NULL), "pc2's chunk %d", i);
    /* Once loaded, the table stays as it is. */
    struct asr_store_id *later = malloc(sizeof *later);
    *later = other[0].id;
    store_expect(s, later, 1);
    cr_assert_not(store_table_find(s->table, &other[0].id, NULL));
    asr_store_close(s);
    free(dir), free(key), free(mine), free(other);
}

/* A backup's own index object at its end is written in parts of at most store_index_part entries
 * (a backup of millions of new chunks would pass an index object's cap), each with the packs its
 * entries are in; the per-pack ones go as before, and the next backup finds every chunk. */
Test(store, session_index_written_in_parts)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    struct storefix_chunk *c = storefix_chunks(s, 700, NCHUNKS, 0, false);
    struct asr_error err = {0};
    store_index_part = 3;
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    storefix_put(ss, c, NCHUNKS);
    char *m = manifest("m", 3), name[256];
    int rc = asr_store_session_commit(ss, m, name, sizeof name, &err);
    store_index_part = STORE_INDEX_PART;
    cr_assert_eq(rc, ASR_OK, "%s", err.msg);
    asr_store_session_free(ss);
    cr_assert_eq(storefix_count(s, "packs/"), 3);
    uint64_t entries = 0;
    cr_assert_eq(storefix_index_objects(s, 3, 2, &entries), 4, "ten entries in parts of three, the per-pack objects gone");
    cr_assert_eq(entries, NCHUNKS);
    ss = storefix_begin(s, "pc1");
    for (int i = 0; i < NCHUNKS; i++)
        cr_assert(asr_store_session_has(ss, &c[i].id, NULL, NULL), "chunk %d", i);
    asr_store_session_free(ss);
    free(m), free(c);
    asr_store_close(s);
}
