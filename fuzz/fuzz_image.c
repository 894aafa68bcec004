/* libFuzzer harness for the .asrimg reader and verifier: the input is an image file. Each input is
 * tried as given, then again with every checksum recomputed, so that mutations reach the parsers
 * behind the checksums. Built with replay.c it replays the corpus under any compiler. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_format.h"
#include "image_fixup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUF_SIZE (1u << 20)        /* the largest buffer one read uses */
#define READ_BUDGET (4u << 20)     /* volume bytes read per image */
#define PIECE (64u << 10)          /* one volume read */
#define MAX_CHUNK_READS 8u
#define MAX_EXTENT_READS 64u

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

static void exercise(void)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    if (asr_reader_open(path, &r, &err) == ASR_OK) {
        const struct asr_image_info *info = asr_reader_info(r);
        touch_string(info->creator, ASR_FSNAME_MAX);
        touch_string(info->creator_version, ASR_FSNAME_MAX);
        touch_layout(r);
        read_volumes(r);
        read_chunks(r);
        asr_reader_free(r);
    } else {
        touch_string(asr_status_name(err.code), 32);
        touch_string(err.msg, ASR_ERROR_MSG_MAX);
    }
    struct asr_verify_report rep;
    asr_verify(path, on_problem, NULL, on_progress, NULL, &rep, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (write_image(data, size))
        exercise();
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fuzz_fix_checksums(copy, size);
    /* ASRIMG_FUZZ_FIXED=FILE keeps the repaired image, for reproducing with `asrimg verify`. */
    FILE *f = keep_fixed && *keep_fixed ? fopen(keep_fixed, "wb") : NULL;
    if (f) {
        fwrite(copy, 1, size, f);
        fclose(f);
    }
    if (memcmp(copy, data, size) != 0 && write_image(copy, size))
        exercise();
    free(copy);
    return 0;
}
