/* The lazy reader (asr_reader_open_lazy, format/index_lazy.c): the index left in the image and
 * read back in blocks must give exactly what the eager reader gives (counts, statistics, every
 * extent from any offset, every byte of every volume), on images with thousands of extents over
 * many blocks and on every golden image; a damaged index must be refused as the eager reader
 * refuses it (same code, same message), also with its checksums repaired so that the rules
 * themselves are what refuses it; and an index changed after opening must give errors, never
 * other bytes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "asr_format.h"
#include "le.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(lazy, .fini = teardown);

static struct asr_reader *open_eager(const char *path)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s: %s", path, err.msg);
    return r;
}

static struct asr_reader *open_lazy(const char *path)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open_lazy(path, &r, &err), ASR_OK, "%s: %s", path, err.msg);
    cr_assert(asr_reader_is_lazy(r));
    return r;
}

static void same_info(struct asr_reader *a, struct asr_reader *b)
{
    const struct asr_image_info *x = asr_reader_info(a), *y = asr_reader_info(b);
    cr_assert_eq(x->chunk_count, y->chunk_count);
    cr_assert_eq(x->stored_bytes, y->stored_bytes);
    cr_assert_eq(x->unique_bytes, y->unique_bytes);
    cr_assert_eq(x->data_bytes, y->data_bytes);
    cr_assert_eq(x->zero_bytes, y->zero_bytes);
    cr_assert_eq(x->unreadable_bytes, y->unreadable_bytes);
    cr_assert_eq(asr_reader_volume_count(a), asr_reader_volume_count(b));
    for (uint32_t v = 0; v < asr_reader_volume_count(a); v++)
        cr_assert_eq(memcmp(asr_reader_volume_stats(a, v), asr_reader_volume_stats(b, v),
                            sizeof(struct asr_volume_stats)), 0, "volume %u statistics", v);
    for (uint64_t c = 0; c < x->chunk_count; c++)
        cr_assert_eq(asr_reader_chunk_len(a, c), asr_reader_chunk_len(b, c), "chunk %llu", (unsigned long long)c);
}

/* extents_at(off, max) of the lazy reader against the eager reader's array. */
static void same_extents_at(struct asr_reader *eager, struct asr_reader *lazy, uint32_t v, uint64_t off, size_t max)
{
    uint64_t n;
    const struct asr_extent *all = asr_reader_extents(eager, v, &n);
    uint64_t first = asr_extents_first_after(all, n, off);
    struct asr_extent got[3000];
    size_t k = 0;
    struct asr_error err = {0};
    cr_assert(max <= 3000);
    cr_assert_eq(asr_reader_extents_at(lazy, v, off, got, max, &k, &err), ASR_OK, "%s", err.msg);
    uint64_t want = n - first < max ? n - first : max;
    cr_assert_eq(k, want, "volume %u at %llu: %zu extents, want %llu", v, (unsigned long long)off, k,
                 (unsigned long long)want);
    for (size_t i = 0; i < k; i++) {
        const struct asr_extent *e = &all[first + i];
        cr_assert(got[i].offset == e->offset && got[i].length == e->length && got[i].ref == e->ref &&
                      got[i].chunk_offset == e->chunk_offset,
                  "volume %u at %llu: extent %zu differs", v, (unsigned long long)off, i);
    }
}

static void same_bytes(struct asr_reader *eager, struct asr_reader *lazy, uint32_t v, uint64_t off, size_t len)
{
    static uint8_t a[1 << 20], b[1 << 20];
    struct asr_error ea = {0}, eb = {0};
    int ra = asr_reader_read_volume(eager, v, off, a, len, &ea);
    int rb = asr_reader_read_volume(lazy, v, off, b, len, &eb);
    cr_assert_eq(ra, rb, "volume %u at %llu: %s / %s", v, (unsigned long long)off, ea.msg, eb.msg);
    cr_assert_str_eq(ea.msg, eb.msg);
    cr_assert_eq(memcmp(a, b, len), 0, "volume %u at %llu+%zu: bytes differ", v, (unsigned long long)off, len);
}

/* Everything a reader answers, lazy against eager. */
static void compare_readers(const char *path, uint64_t min_extents)
{
    struct asr_reader *eager = open_eager(path), *lazy = open_lazy(path);
    same_info(eager, lazy);
    uint64_t most = 0;
    for (uint32_t v = 0; v < asr_reader_volume_count(eager); v++) {
        uint64_t n, size = asr_reader_volume(eager, v)->size_bytes;
        const struct asr_extent *all = asr_reader_extents(eager, v, &n);
        uint64_t none;
        cr_assert_null(asr_reader_extents(lazy, v, &none), "a lazy reader has no extent array");
        most = n > most ? n : most;
        for (uint64_t i = 0; i < n; i += (i % 1024 < 3 || i % 1024 > 1020) ? 1 : 97) {
            same_extents_at(eager, lazy, v, all[i].offset, 5);
            same_extents_at(eager, lazy, v, all[i].offset + all[i].length - 1, 3);
            same_extents_at(eager, lazy, v, all[i].offset + all[i].length, 2000);
        }
        same_extents_at(eager, lazy, v, 0, 3000);
        same_extents_at(eager, lazy, v, size, 10);
        same_extents_at(eager, lazy, v, UINT64_MAX, 10);
        for (uint64_t off = 0; off < size; off += size / 37 + 1)
            same_bytes(eager, lazy, v, off, size - off < (1 << 20) ? (size_t)(size - off) : 1 << 20);
    }
    cr_assert_geq(most, min_extents, "%s: only %llu extents", path, (unsigned long long)most);
    asr_reader_free(eager);
    asr_reader_free(lazy);
}

static char *sample_with_many_extents(void)
{
    char *path = scratch_path("many.asrimg");
    struct sample_opts o = {.max_chunk = 4096, .volume_kib = 16384, .level = 1, .fixed_identity = 1};
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(path, &o, &err), ASR_OK, "%s", err.msg);
    return path;
}

Test(lazy, same_as_eager_over_many_blocks)
{
    char *path = sample_with_many_extents();
    compare_readers(path, 3 * 1024);
    free(path);
}

Test(lazy, same_as_eager_with_dedup_and_split_parts)
{
    char *dedup = scratch_path("dedup.asrimg"), *split = scratch_path("split.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_dedup_image(dedup, 0, &err), ASR_OK, "%s", err.msg);
    compare_readers(dedup, 1);
    struct sample_opts o = {.split_size = 200000, .max_chunk = 4096, .volume_kib = 2048, .level = 1};
    cr_assert_eq(write_sample_image(split, &o, &err), ASR_OK, "%s", err.msg);
    compare_readers(split, 100);
    free(dedup);
    free(split);
}

Test(lazy, same_as_eager_on_golden_images)
{
    static const char *const names[] = {"v1-basic", "v1-disk-areas", "v1-machine", "v1-split", "v1-stacks"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.asrimg", GOLDEN_DIR, names[i]);
        compare_readers(path, 1);
    }
}

Test(lazy, a_snapshot_needs_its_store)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open_lazy(GOLDEN_DIR "/v1-external.asrimg", &r, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "store snapshot"), "%s", err.msg);
}

/* ---- damage -------------------------------------------------------------------------------- */

struct index_place {
    uint64_t index_at, content_at, content_len, file_len;
};

/* In a single-file image: the file's offsets are the logical stream's plus the 64-byte part
 * header (SPEC.md section 3). */
static struct index_place locate(const uint8_t *img, size_t len)
{
    struct index_place p = {.index_at = 64 + get_le64(img + len - 64 + 8), .file_len = len};
    cr_assert_eq(memcmp(img + p.index_at, "AIDX", 4), 0, "the index is where the footer says");
    p.content_at = p.index_at + 32;
    p.content_len = get_le64(img + p.index_at + 8);
    return p;
}

/* The envelope's and the footer's checksums made right for the index as it now is. */
static void repair(uint8_t *img, const struct index_place *p)
{
    uint8_t *env = img + p->index_at, *foot = img + p->file_len - 64;
    put_le64(env + 16, XXH3_64bits(img + p->content_at, p->content_len));
    put_le64(env + 24, XXH3_64bits(env, 24));
    put_le64(foot + 48, XXH3_64bits(env, 32 + p->content_len));
    put_le64(foot + 56, XXH3_64bits(foot, 56));
}

/* Both readers on img with the 8 bytes at content offset at changed: the same refusal, or (lazy
 * only) an extent past its chunk's end, which a lazy reader finds when it reads it. */
static void both_refuse(const char *path, const uint8_t *orig, size_t len, uint64_t at, int fix)
{
    uint8_t *img = malloc(len);
    memcpy(img, orig, len);
    struct index_place p = locate(img, len);
    if (at + 8 > p.content_len) {
        free(img);
        return;
    }
    put_le64(img + p.content_at + at, get_le64(img + p.content_at + at) ^ 0x0000000100010001ull);
    if (fix)
        repair(img, &p);
    write_file(path, img, len);
    free(img);
    struct asr_reader *a = NULL, *b = NULL;
    struct asr_error ea = {0}, eb = {0};
    int ra = asr_reader_open(path, &a, &ea), rb = asr_reader_open_lazy(path, &b, &eb);
    if (ra == ASR_OK) {
        cr_assert_eq(rb, ASR_OK, "content offset %llu: lazy refuses what eager takes: %s", (unsigned long long)at,
                     eb.msg);
    } else if (rb == ASR_OK) {
        cr_assert(fix && strstr(ea.msg, "runs past the end of chunk"), "content offset %llu: lazy takes: %s",
                  (unsigned long long)at, ea.msg);
    } else {
        cr_assert_eq(ra, rb, "content offset %llu: %s / %s", (unsigned long long)at, ea.msg, eb.msg);
        cr_assert_str_eq(ea.msg, eb.msg, "content offset %llu", (unsigned long long)at);
    }
    asr_reader_free(a);
    asr_reader_free(b);
}

Test(lazy, damaged_index_refused_as_eager_refuses_it)
{
    char *path = sample_with_many_extents(), *bad = scratch_path("bad.asrimg");
    size_t len;
    uint8_t *orig = read_file(path, &len);
    struct index_place p = locate(orig, len);
    uint64_t chunks = get_le64(orig + p.content_at + 8), vol0 = 32 + chunks * 32;
    uint64_t places[] = {0, 8, 16, 24,                                       /* the fixed part */
                         32, 40, 48, 32 + 500 * 32 + 8, 32 + (chunks - 1) * 32, /* chunk entries */
                         vol0, vol0 + 8, vol0 + 32, vol0 + 56,                 /* volume 0's entry */
                         vol0 + 64, vol0 + 64 + 8, vol0 + 64 + 16, vol0 + 64 + 24, /* its first extent */
                         vol0 + 64 + 2048 * 32, vol0 + 64 + 2500 * 32 + 16,    /* later blocks */
                         p.content_len - 32, p.content_len - 8};
    for (int fix = 0; fix < 2; fix++)
        for (size_t i = 0; i < sizeof places / sizeof *places; i++)
            both_refuse(bad, orig, len, places[i], fix);
    free(orig);
    free(path);
    free(bad);
}

Test(lazy, index_changed_after_opening_gives_errors_not_bytes)
{
    char *path = sample_with_many_extents();
    struct asr_reader *r = open_lazy(path);
    size_t len;
    uint8_t *img = read_file(path, &len);
    struct index_place p = locate(img, len);
    uint64_t chunks = get_le64(img + p.content_at + 8), vol0 = p.content_at + 32 + chunks * 32;
    /* chunk 10's record moved past the index; volume 0's extent 2048 (block 2's first) moved */
    put_le64(img + p.content_at + 32 + 10 * 32, p.index_at - 64 + 4096);
    put_le64(img + vol0 + 64 + 2048 * 32, get_le64(img + vol0 + 64 + 2048 * 32) + 512);
    write_file(path, img, len);
    static uint8_t buf[1 << 16];
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_read_chunk(r, 10, buf, sizeof buf, NULL, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "chunk 10 offset"), "%s", err.msg);
    struct asr_extent e[4];
    size_t n;
    uint64_t block2 = get_le64(img + vol0 + 64 + 2049 * 32);
    err = (struct asr_error){0};
    cr_assert_neq(asr_reader_extents_at(r, 0, block2, e, 4, &n, &err), ASR_OK, "block 2 changed");
    cr_assert_eq(n, 0);
    err = (struct asr_error){0};
    cr_assert_neq(asr_reader_read_volume(r, 0, block2, buf, 4096, &err), ASR_OK);
    asr_reader_free(r);
    free(img);
    free(path);
}
