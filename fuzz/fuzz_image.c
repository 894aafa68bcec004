/* libFuzzer harness for the .asrimg reader and verifier: the input is an image file, or a store
 * snapshot with its chunk records (SNAP_MAGIC, the snapshot's length as a u32, the snapshot, then
 * records as fuzz_fix_snapshot takes them), read through asr_reader_open_external and
 * asr_verify_external with a fake store serving those records. Each input is tried as given, then
 * again with every checksum recomputed, so that mutations reach the parsers behind the checksums.
 * Every image is also opened lazily (asr_reader_open_lazy), which must agree with the eager reader.
 * Built with replay.c it replays the corpus under any compiler. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "asr_format.h"
#include "image_fixup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUF_SIZE (1u << 20)        /* the largest buffer one read uses */
#define READ_BUDGET (4u << 20)     /* volume bytes read per image */
#define PIECE (64u << 10)          /* one volume read */
#define MAX_CHUNK_READS 8u
#define MAX_EXTENT_READS 64u
#define SNAP_MAGIC "ASRSNAP1"
#define SNAP_HEAD 12u /* magic, snapshot length */

static char dir[64];
static char path[96];
static const char *keep_fixed; /* ASRIMG_FUZZ_FIXED: where to keep the repaired image */
static uint8_t *buf;          /* BUF_SIZE bytes, for the whole run */
static volatile size_t sink;  /* keeps reads of returned data from being optimised away */

static void cleanup(void)
{
    if (path[0])
        unlink(path);
    if (dir[0])
        rmdir(dir);
}

static void setup(void)
{
    if (path[0])
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/asrimg-fuzz-image-XXXXXX", tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(dir) || !(buf = malloc(BUF_SIZE)))
        abort();
    snprintf(path, sizeof path, "%s/img.asrimg", dir);
    atexit(cleanup);
    keep_fixed = getenv("ASRIMG_FUZZ_FIXED");
}

static bool write_image(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    return done == size;
}

/* ---- driving the reader and the verifier ----------------------------------------------- */

static void touch_string(const char *s, size_t max)
{
    sink += strnlen(s, max + 1);
}

static void touch_layout(const struct asr_reader *r)
{
    for (uint32_t i = 0; i < asr_reader_disk_count(r); i++) {
        const struct asr_disk_desc *d = asr_reader_disk(r, i);
        touch_string(d->source, ASR_NAME_MAX);
        for (uint32_t p = 0; p < d->partition_count; p++)
            touch_string(d->partitions[p].name, ASR_NAME_MAX);
        for (uint32_t g = 0; g < d->region_count; g++)
            if (d->regions[g].length)
                sink += d->regions[g].data[0] + d->regions[g].data[d->regions[g].length - 1];
    }
    for (unsigned cls = ASR_FEATURE_INCOMPAT; cls <= ASR_FEATURE_COMPAT; cls++)
        for (unsigned bit = 0; bit < 64; bit++) {
            const char *name = asr_reader_feature_name(r, (enum asr_feature_class)cls, bit);
            if (name)
                touch_string(name, 63);
        }
    asr_reader_disk(r, asr_reader_disk_count(r));     /* out of range: NULL */
    asr_reader_volume(r, asr_reader_volume_count(r)); /* out of range: NULL */
}

/* One read of a volume, clipped to the volume and the budget. */
static void read_piece(struct asr_reader *r, uint32_t v, uint64_t size, uint64_t off, uint64_t len,
                       uint64_t *budget)
{
    if (off >= size || *budget == 0)
        return;
    if (len > size - off)
        len = size - off;
    if (len > BUF_SIZE)
        len = BUF_SIZE;
    if (len > *budget)
        len = *budget;
    struct asr_error err = {0};
    int rc = asr_reader_read_volume(r, v, off, buf, (size_t)len, &err);
    *budget -= len;
    if (rc == ASR_OK && len)
        sink += buf[0] + buf[len - 1];
    touch_string(err.msg, ASR_ERROR_MSG_MAX);
}

static void read_volumes(struct asr_reader *r)
{
    uint64_t budget = READ_BUDGET;
    for (uint32_t v = 0; v < asr_reader_volume_count(r) && budget; v++) {
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
        const struct asr_volume_stats *st = asr_reader_volume_stats(r, v);
        touch_string(vd->fs_type, ASR_FSNAME_MAX);
        touch_string(vd->fs_label, ASR_FSNAME_MAX);
        if (st)
            sink += st->extent_count;
        uint64_t n;
        const struct asr_extent *ext = asr_reader_extents(r, v, &n);
        /* Each extent's start, and a read straddling its beginning. */
        for (uint64_t i = 0; i < n && i < MAX_EXTENT_READS && budget; i++) {
            read_piece(r, v, vd->size_bytes, ext[i].offset, ext[i].length < PIECE ? ext[i].length : PIECE, &budget);
            if (ext[i].offset)
                read_piece(r, v, vd->size_bytes, ext[i].offset - 1, 2, &budget);
        }
        /* Then the volume from its start, in pieces. */
        for (uint64_t off = 0; off < vd->size_bytes && budget; off += PIECE)
            read_piece(r, v, vd->size_bytes, off, PIECE, &budget);
        /* A read past the end must be refused. */
        struct asr_error err;
        asr_reader_read_volume(r, v, vd->size_bytes, buf, 1, &err);
    }
    struct asr_error err;
    asr_reader_read_volume(r, asr_reader_volume_count(r), 0, buf, 1, &err);
}

static void read_chunks(struct asr_reader *r)
{
    uint64_t count = asr_reader_info(r)->chunk_count;
    for (uint64_t id = 0; id < count && id < MAX_CHUNK_READS; id++) {
        struct asr_error err;
        uint32_t len = 0;
        if (asr_reader_read_chunk(r, id, buf, BUF_SIZE, &len, &err) == ASR_OK && len)
            sink += buf[len - 1];
    }
    if (count) {
        struct asr_error err;
        uint32_t len;
        asr_reader_read_chunk(r, count - 1, buf, 1, &len, &err); /* too small unless one byte */
    }
    struct asr_error err;
    asr_reader_read_chunk(r, count, buf, BUF_SIZE, NULL, &err); /* no such chunk */
}

static void on_problem(const struct asr_problem *p, void *ctx)
{
    (void)p, (void)ctx;
}

static void on_progress(uint64_t done, uint64_t total, void *ctx)
{
    (void)done, (void)total, (void)ctx;
}

/* ---- the fake store of a snapshot input ---------------------------------------------------- */

struct fake_store {
    const uint8_t *recs;
    size_t len;
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fake_fetch(void *ctx, const uint8_t id[32], void *out, size_t cap, size_t *len, char *where,
                      size_t where_len, struct asr_error *err)
{
    const struct fake_store *fs = ctx;
    unsigned k = 0;
    for (size_t at = 0; fs->len - at >= 36; k++) {
        uint32_t n = le32(fs->recs + at + 32);
        if (n > fs->len - at - 36)
            break;
        if (memcmp(fs->recs + at, id, 32) == 0) {
            snprintf(where, where_len, "fake record %u", k);
            if (n > cap)
                return asr_fail_public(err, ASR_E_CORRUPT, "record of %u bytes over %zu", n, cap);
            memcpy(out, fs->recs + at + 36, n);
            *len = n;
            return ASR_OK;
        }
        at += 36 + (size_t)n;
    }
    snprintf(where, where_len, "fake store (%u records)", k);
    return asr_fail_public(err, ASR_E_CORRUPT, "missing");
}

/* The fake keyed hash: an id's first 8 bytes are XXH3-64 of the content, little-endian. */
static bool fake_check(void *ctx, const uint8_t id[32], const void *content, size_t len)
{
    (void)ctx;
    uint64_t h = XXH3_64bits(content, len);
    for (int i = 0; i < 8; i++)
        if (id[i] != (uint8_t)(h >> (8 * i)))
            return false;
    return true;
}

static void touch_snapshot(const struct asr_reader *r)
{
    char where[128];
    uint64_t count = asr_reader_info(r)->chunk_count;
    for (uint64_t id = 0; id < count && id < MAX_CHUNK_READS; id++) {
        const uint8_t *sid = asr_reader_store_id(r, id);
        if (sid)
            sink += sid[31];
        touch_string(asr_reader_chunk_where(r, id, where, sizeof where), sizeof where);
    }
    asr_reader_prefetch(r, 0, 1 << 20);
}

static void exercise_external(const struct fake_store *fs)
{
    struct asr_chunk_source src = {.fetch = fake_fetch, .check = fake_check, .ctx = (void *)fs};
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    if (asr_reader_open_external(path, &src, &r, &err) == ASR_OK) {
        touch_layout(r);
        touch_snapshot(r);
        read_volumes(r);
        read_chunks(r);
        asr_reader_free(r);
    } else {
        touch_string(err.msg, ASR_ERROR_MSG_MAX);
    }
    struct asr_verify_report rep;
    asr_verify_external(path, &src, on_problem, NULL, on_progress, NULL, &rep, &err);
}

/* The lazy reader (the index left in the image) must take every image the eager reader takes and
 * answer the same; what it takes beyond (an extent past its chunk's end, found only when read) it
 * must read without harm. */
static void same_as_eager(const struct asr_reader *eager, const struct asr_reader *lazy)
{
    const struct asr_image_info *a = asr_reader_info(eager), *b = asr_reader_info(lazy);
    if (a->chunk_count != b->chunk_count || a->stored_bytes != b->stored_bytes || a->unique_bytes != b->unique_bytes ||
        a->data_bytes != b->data_bytes)
        abort();
    for (uint32_t v = 0; v < asr_reader_volume_count(eager); v++) {
        uint64_t n;
        const struct asr_extent *all = asr_reader_extents(eager, v, &n);
        struct asr_extent got[8];
        for (uint64_t i = 0; i < n && i < MAX_EXTENT_READS; i++) {
            size_t k;
            struct asr_error err = {0};
            if (asr_reader_extents_at(lazy, v, all[i].offset, got, 8, &k, &err) != ASR_OK)
                abort();
            for (size_t j = 0; j < k; j++) {
                const struct asr_extent *e = &all[i + j];
                if (i + j >= n || got[j].offset != e->offset || got[j].length != e->length || got[j].ref != e->ref ||
                    got[j].chunk_offset != e->chunk_offset)
                    abort();
            }
            if (k != (n - i < 8 ? n - i : 8))
                abort();
        }
    }
}

static void exercise_lazy(const struct asr_reader *eager)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    if (asr_reader_open_lazy(path, &r, &err) != ASR_OK) {
        if (eager)
            abort();
        touch_string(err.msg, ASR_ERROR_MSG_MAX);
        return;
    }
    if (eager)
        same_as_eager(eager, r);
    read_volumes(r);
    read_chunks(r);
    asr_reader_free(r);
}

static void exercise(const struct fake_store *fs)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    exercise_external(fs);
    if (asr_reader_open(path, &r, &err) == ASR_OK) {
        const struct asr_image_info *info = asr_reader_info(r);
        touch_string(info->creator, ASR_FSNAME_MAX);
        touch_string(info->creator_version, ASR_FSNAME_MAX);
        touch_layout(r);
        read_volumes(r);
        read_chunks(r);
    } else {
        touch_string(asr_status_name(err.code), 32);
        touch_string(err.msg, ASR_ERROR_MSG_MAX);
    }
    exercise_lazy(r);
    asr_reader_free(r);
    struct asr_verify_report rep;
    asr_verify(path, on_problem, NULL, on_progress, NULL, &rep, &err);
}

/* A snapshot input's parts: the snapshot and its records (none for an image). */
static void split_input(const uint8_t *data, size_t size, size_t *img_at, size_t *img_len, struct fake_store *fs)
{
    *img_at = 0;
    *img_len = size;
    fs->recs = NULL;
    fs->len = 0;
    if (size < SNAP_HEAD || memcmp(data, SNAP_MAGIC, 8) != 0)
        return;
    uint32_t n = le32(data + 8);
    if (n > size - SNAP_HEAD)
        return;
    *img_at = SNAP_HEAD;
    *img_len = n;
    fs->recs = data + SNAP_HEAD + n;
    fs->len = size - SNAP_HEAD - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    size_t at, len;
    struct fake_store fs;
    split_input(data, size, &at, &len, &fs);
    if (write_image(data + at, len))
        exercise(&fs);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (fs.recs)
        fuzz_fix_snapshot(copy + at, len, copy + at + len, fs.len);
    else
        fuzz_fix_checksums(copy, size);
    split_input(copy, size, &at, &len, &fs);
    /* ASRIMG_FUZZ_FIXED=FILE keeps the repaired image, for reproducing with `asrimg verify`. */
    FILE *f = keep_fixed && *keep_fixed ? fopen(keep_fixed, "wb") : NULL;
    if (f) {
        fwrite(copy + at, 1, len, f);
        fclose(f);
    }
    if (memcmp(copy, data, size) != 0 && write_image(copy + at, len))
        exercise(&fs);
    free(copy);
    return 0;
}
