/* Image views (engine/mount/view.c, what asrimg mount serves): the disk and volume files read as
 * the image holds them (regions, captured bytes, zeros elsewhere), under a cache too small for
 * the image, from several threads at once with each chunk decoded once, and a damaged chunk
 * failing only the reads that touch it, named in the log. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr_engine.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(view, .fini = teardown);

static const struct sample_opts opts = {.level = 3, .max_chunk = 65536, .volume_kib = 512};

/* The sample image (chunk 0 damaged if asked), opened by the eager reader; *lazy, when given, is
 * a lazy reader of the same file (asr_reader_open_lazy). */
static struct asr_reader *sample2(bool damaged, struct asr_reader **lazy)
{
    char *img = scratch_path("v.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &opts, &err), ASR_OK, "%s", err.msg);
    if (damaged) {
        /* Chunk 0's stored bytes: one flipped in the middle of the first chunk record. */
        size_t len;
        uint8_t *b = read_file(img, &len);
        size_t at = 0;
        for (size_t i = 64; i + 64 < len && !at; i++)
            if (!memcmp(b + i, "ACNK", 4)) /* stored_len: 4 bytes little-endian at 16 */
                at = i + 64 + (b[i + 16] | (size_t)b[i + 17] << 8 | (size_t)b[i + 18] << 16) / 2;
        cr_assert_gt(at, 0);
        patch_byte(img, at, b[at] ^ 0x40);
        free(b);
    }
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(img, &r, &err), ASR_OK, "%s", err.msg);
    if (lazy)
        cr_assert_eq(asr_reader_open_lazy(img, lazy, &err), ASR_OK, "%s", err.msg);
    free(img);
    return r;
}

static struct asr_reader *sample(bool damaged) { return sample2(damaged, NULL); }

/* Byte off of volume v as the image holds it: its extents' bytes, zeros outside them. *bad: an
 * unreadable range; *chunk: the chunk holding it (UINT64_MAX: none). */
static uint8_t volume_byte(const struct asr_reader *r, uint32_t v, uint64_t off, int *bad, uint64_t *chunk)
{
    uint64_t n;
    const struct asr_extent *e = asr_reader_extents(r, v, &n);
    *bad = 0;
    *chunk = UINT64_MAX;
    for (uint64_t k = 0; k < n; k++)
        if (off >= e[k].offset && off < e[k].offset + e[k].length) {
            int b = sample_expected(v, off, bad);
            if (e[k].ref != ASR_REF_ZERO && e[k].ref != ASR_REF_UNREADABLE)
                *chunk = e[k].ref;
            return *bad ? 0 : (uint8_t)b;
        }
    return 0;
}

/* Byte off of file f as a restore would lay it (disk: regions over volumes over zeros). */
static uint8_t file_byte(const struct asr_reader *r, const struct asr_view_file *f, uint64_t off, int *bad,
                         uint64_t *chunk)
{
    *bad = 0;
    *chunk = UINT64_MAX;
    if (f->kind == ASR_VIEW_VOLUME)
        return volume_byte(r, f->volume, off, bad, chunk);
    const struct asr_disk_desc *d = asr_reader_disk(r, f->disk);
    for (uint32_t i = 0; i < d->region_count; i++)
        if (off >= d->regions[i].offset && off < d->regions[i].offset + d->regions[i].length)
            return d->regions[i].data[off - d->regions[i].offset];
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
        if (vd->disk_index == f->disk && off >= vd->disk_offset && off < vd->disk_offset + vd->size_bytes)
            return volume_byte(r, v, off - vd->disk_offset, bad, chunk);
    }
    return 0;
}

/* Reads [off, off + len) of file i and checks it: the bytes, or the error a range holding an
 * unreadable byte or a byte of chunk `damaged` must give. Returns the status. */
static int check_range(struct asr_view *v, const struct asr_reader *r, uint32_t i, uint64_t off, size_t len,
                       uint64_t damaged)
{
    const struct asr_view_file *f = asr_view_file(v, i);
    uint8_t *buf = malloc(len);
    struct asr_error err = {0};
    int rc = asr_view_read(v, i, off, buf, len, &err);
    bool any_bad = false, any_damaged = false;
    for (uint64_t k = 0; k < len; k++) {
        int bad;
        uint64_t chunk;
        uint8_t want = file_byte(r, f, off + k, &bad, &chunk);
        any_bad |= bad;
        any_damaged |= damaged != UINT64_MAX && chunk == damaged;
        if (!rc && buf[k] != want)
            cr_assert_fail("%s byte %llu: got 0x%02x, want 0x%02x", f->name, (unsigned long long)(off + k), buf[k],
                           want);
    }
    if (any_damaged) {
        cr_assert_eq(rc, ASR_E_CORRUPT, "%s [%llu, +%zu) holds damaged chunk %llu: rc %d", f->name,
                     (unsigned long long)off, len, (unsigned long long)damaged, rc);
        cr_assert(strstr(err.msg, "chunk 0"), "the message names the chunk: %s", err.msg);
    } else if (any_bad) {
        cr_assert_eq(rc, ASR_E_UNREADABLE, "%s [%llu, +%zu) holds an unreadable range: rc %d", f->name,
                     (unsigned long long)off, len, rc);
    } else {
        cr_assert_eq(rc, ASR_OK, "%s [%llu, +%zu): %s", f->name, (unsigned long long)off, len, err.msg);
    }
    free(buf);
    return rc;
}

static void check_all(struct asr_view *v, const struct asr_reader *r, size_t step, uint64_t damaged)
{
    for (uint32_t i = 0; i < asr_view_file_count(v); i++) {
        uint64_t size = asr_view_file(v, i)->size;
        for (uint64_t off = 0; off < size; off += step)
            check_range(v, r, i, off, (size_t)(size - off < step ? size - off : step), damaged);
    }
}

Test(view, files_are_the_disks_and_partition_volumes)
{
    struct asr_reader *r = sample(false);
    struct asr_view *v;
    struct asr_error err = {0};
    cr_assert_eq(asr_view_open(r, NULL, &v, &err), ASR_OK, "%s", err.msg);
    /* Two disks, then the GPT's partitions 1 and 2 and the MBR's logical partition 5. */
    cr_assert_eq(asr_view_file_count(v), 5);
    const char *names[] = {"disk0.img", "disk1.img", "disk0p1.img", "disk0p2.img", "disk1p5.img"};
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_str_eq(asr_view_file(v, i)->name, names[i]);
    cr_assert_eq(asr_view_file(v, 0)->size, asr_reader_disk(r, 0)->size_bytes);
    check_all(v, r, 65536, UINT64_MAX);
    /* Unaligned, and straddling a region and a volume. */
    check_all(v, r, 12345, UINT64_MAX);
    uint8_t b[8];
    cr_assert_eq(asr_view_read(v, 0, asr_view_file(v, 0)->size - 4, b, 8, &err), ASR_E_ARG);
    asr_view_free(v);
    asr_reader_free(r);
}

Test(view, small_cache_evicts_and_stays_under_its_cap)
{
    struct asr_reader *r = sample(false);
    struct asr_view *v;
    struct asr_error err = {0};
    const struct asr_view_options o = {.cache_bytes = 3 * 65536, .readahead_threads = 1};
    cr_assert_eq(asr_view_open(r, &o, &v, &err), ASR_OK, "%s", err.msg);
    check_all(v, r, 65536, UINT64_MAX);
    check_all(v, r, 30000, UINT64_MAX);
    struct asr_view_stats st;
    asr_view_get_stats(v, &st);
    cr_assert_gt(st.evictions, 0);
    cr_assert_leq(st.cache_bytes, o.cache_bytes, "%llu bytes held", (unsigned long long)st.cache_bytes);
    /* Read-ahead and a reader may each hold a chunk beyond the cap, no more. */
    cr_assert_leq(st.cache_peak, o.cache_bytes + 3 * 65536 + 4096, "peak %llu", (unsigned long long)st.cache_peak);
    asr_view_free(v);
    asr_reader_free(r);
}

struct reader_arg {
    struct asr_view *v;
    const struct asr_reader *r;
    unsigned seed;
};

static void *random_reads(void *p)
{
    struct reader_arg *a = p;
    for (int n = 0; n < 60; n++) {
        uint32_t i = (uint32_t)rand_r(&a->seed) % asr_view_file_count(a->v);
        uint64_t size = asr_view_file(a->v, i)->size;
        uint64_t off = (uint64_t)rand_r(&a->seed) % size;
        size_t len = 1 + (size_t)rand_r(&a->seed) % 100000;
        if (len > size - off)
            len = (size_t)(size - off);
        check_range(a->v, a->r, i, off, len, UINT64_MAX);
    }
    return NULL;
}

Test(view, many_threads_read_at_once)
{
    struct asr_reader *r = sample(false);
    for (int small = 0; small < 2; small++) {
        struct asr_view *v;
        struct asr_error err = {0};
        const struct asr_view_options o = {.cache_bytes = small ? 4 * 65536 : 0};
        cr_assert_eq(asr_view_open(r, &o, &v, &err), ASR_OK, "%s", err.msg);
        pthread_t t[8];
        struct reader_arg a[8];
        for (unsigned k = 0; k < 8; k++) {
            a[k] = (struct reader_arg){v, r, k * 7919 + 1 + (unsigned)small};
            cr_assert_eq(pthread_create(&t[k], NULL, random_reads, &a[k]), 0);
        }
        for (unsigned k = 0; k < 8; k++)
            pthread_join(t[k], NULL);
        struct asr_view_stats st;
        asr_view_get_stats(v, &st);
        /* A cache that holds the image: every chunk decoded once at most, whoever wanted it. */
        if (!small)
            cr_assert_leq(st.loads, asr_reader_info(r)->chunk_count, "%llu loads of %llu chunks",
                          (unsigned long long)st.loads, (unsigned long long)asr_reader_info(r)->chunk_count);
        asr_view_free(v);
    }
    asr_reader_free(r);
}

struct log_seen {
    int lines;
    char last[1024];
};

static void on_log(const char *line, void *ctx)
{
    struct log_seen *s = ctx;
    s->lines++;
    snprintf(s->last, sizeof s->last, "%s", line);
}

Test(view, damaged_chunk_fails_only_its_ranges)
{
    struct asr_reader *r = sample(true);
    struct asr_view *v;
    struct asr_error err = {0};
    struct log_seen seen = {0};
    const struct asr_view_options o = {.log = on_log, .log_ctx = &seen};
    cr_assert_eq(asr_view_open(r, &o, &v, &err), ASR_OK, "%s", err.msg);
    /* Every range: those holding a byte of chunk 0 fail with its name, the others read right. */
    check_all(v, r, 4096, 0);
    cr_assert_geq(seen.lines, 1);
    cr_assert(strstr(seen.last, "chunk 0"), "the log names the chunk: %s", seen.last);
    struct asr_view_stats st;
    asr_view_get_stats(v, &st);
    cr_assert_geq(st.damaged, 1);
    /* Remembered: the log does not fill with the same chunk again while it stays cached. */
    cr_assert_eq(seen.lines, (int)st.damaged);
    asr_view_free(v);
    asr_reader_free(r);
}

/* A lazy reader under the view (what `asrimg mount` opens): the same bytes, the same damage, from
 * many threads at once; the eager reader of the same file is the oracle. */
Test(view, over_a_lazy_reader)
{
    for (int damaged = 0; damaged < 2; damaged++) {
        struct asr_reader *lazy, *r = sample2(damaged, &lazy);
        struct asr_view *v;
        struct asr_error err = {0};
        const struct asr_view_options o = {.cache_bytes = 4 * 65536};
        cr_assert_eq(asr_view_open(lazy, &o, &v, &err), ASR_OK, "%s", err.msg);
        check_all(v, r, damaged ? 4096 : 12345, damaged ? 0 : UINT64_MAX);
        pthread_t t[8];
        struct reader_arg a[8];
        for (unsigned k = 0; !damaged && k < 8; k++) {
            a[k] = (struct reader_arg){v, r, k * 7919 + 5};
            cr_assert_eq(pthread_create(&t[k], NULL, random_reads, &a[k]), 0);
        }
        for (unsigned k = 0; !damaged && k < 8; k++)
            pthread_join(t[k], NULL);
        asr_view_free(v);
        asr_reader_free(lazy);
        asr_reader_free(r);
    }
}
