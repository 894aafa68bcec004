/* libFuzzer harness for the sequential reader (format/stream.c): the input is an image as it
 * would arrive on a pipe (one file, or a split set's parts concatenated). It is served through a
 * read function returning pieces of pseudo-random sizes, so records and part headers arrive cut
 * at every place; every record is walked and every chunk read (into a buffer of ours, into the
 * stream's, or skipped) and decoded. Each input runs as given, then with its checksums repaired
 * (image_fixup.c, on the parts' payload joined) so that mutations reach the checks behind them. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <xxhash.h>

#include "asr_format.h"
#include "image_fixup.h"
#include "internal.h"
#include "le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink; /* keeps reads of returned data from being optimised away */

/* ---- the input, in pieces ------------------------------------------------------------------ */

struct source {
    const uint8_t *data;
    size_t len, pos;
    uint64_t lcg; /* seeded from the input: the same input is always cut the same way */
};

static uint64_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

static ssize_t source_read(void *ctx, void *buf, size_t len)
{
    struct source *s = ctx;
    uint64_t r = next_random(&s->lcg);
    /* Mostly short reads (a few bytes, a pipe's worth), now and then all that was asked for. */
    size_t piece = (r & 3) == 0 ? 1 + (size_t)(r >> 2) % 16 : (r & 3) == 1 ? 1 + (size_t)(r >> 2) % 4096
                 : (r & 3) == 2 ? 1 + (size_t)(r >> 2) % 65536 : len;
    size_t n = s->len - s->pos;
    if (n > len)
        n = len;
    if (n > piece)
        n = piece;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

/* ---- walking the stream ------------------------------------------------------------------- */

static void touch_string(const char *s, size_t max)
{
    sink += strnlen(s, max + 1);
}

static void touch_layout(const struct asr_stream *s)
{
    const struct asr_image_info *info = asr_stream_info(s);
    touch_string(info->creator, ASR_FSNAME_MAX);
    touch_string(info->creator_version, ASR_FSNAME_MAX);
    touch_string(asr_stream_name(s), 64);
    for (uint32_t i = 0; i < asr_stream_disk_count(s); i++) {
        const struct asr_disk_desc *d = asr_stream_disk(s, i);
        touch_string(d->source, ASR_NAME_MAX);
        for (uint32_t p = 0; p < d->partition_count; p++)
            touch_string(d->partitions[p].name, ASR_NAME_MAX);
        for (uint32_t g = 0; g < d->region_count; g++)
            if (d->regions[g].length)
                sink += d->regions[g].data[0] + d->regions[g].data[d->regions[g].length - 1];
    }
    for (uint32_t v = 0; v < asr_stream_volume_count(s); v++)
        touch_string(asr_stream_volume(s, v)->fs_label, ASR_FSNAME_MAX);
    for (unsigned cls = ASR_FEATURE_INCOMPAT; cls <= ASR_FEATURE_COMPAT; cls++)
        for (unsigned bit = 0; bit < 64; bit++) {
            const char *name = asr_stream_feature_name(s, (enum asr_feature_class)cls, bit);
            if (name)
                touch_string(name, 63);
        }
    sink += asr_stream_disk(s, asr_stream_disk_count(s)) == NULL;       /* out of range: NULL */
    sink += asr_stream_volume(s, asr_stream_volume_count(s)) == NULL;   /* out of range: NULL */
    sink += asr_stream_volume_stats(s, 0) == NULL;                      /* NULL before the end */
}

/* One chunk, read one of four ways (chosen from its id and the input): into a buffer of exactly
 * its stored length, into the stream's own buffer, after a refused too-small buffer, or not at
 * all; then decoded. */
static void take_chunk(struct asr_stream *s, struct asr_stream_record *rec, struct asr_chunk_decoder *d,
                       uint8_t *content, uint32_t max, uint64_t *lcg)
{
    struct asr_error err = {0};
    struct asr_stream_chunk *c = &rec->chunk;
    uint8_t *mine = NULL;
    int rc;
    switch (next_random(lcg) % 4) {
    case 0:
        return;
    case 1:
        rc = asr_stream_read_chunk_data(s, c, NULL, 0, &err);
        break;
    case 2:
        if (asr_stream_read_chunk_data(s, c, content, c->stored_len ? c->stored_len - 1 : 0, &err) == ASR_OK)
            abort(); /* a buffer too small must be refused */
        /* fall through */
    default:
        if (!(mine = malloc(c->stored_len ? c->stored_len : 1)))
            return;
        rc = asr_stream_read_chunk_data(s, c, mine, c->stored_len, &err);
        break;
    }
    if (rc == ASR_OK) {
        if (asr_stream_read_chunk_data(s, c, NULL, 0, &err) == ASR_OK)
            abort(); /* the bytes come once */
        if (asr_chunk_decoder_run(d, c, content, max, &err) == ASR_OK && c->content_len)
            sink += content[0] + content[c->content_len - 1];
        else
            touch_string(err.msg, ASR_ERROR_MSG_MAX);
    }
    free(mine);
}

static void run(const uint8_t *data, size_t size)
{
    struct source src = {data, size, 0, XXH3_64bits(data, size) | 1};
    struct asr_stream *s = NULL;
    struct asr_error err = {0};
    if (asr_stream_open(source_read, &src, "fuzz input", &s, &err) != ASR_OK) {
        touch_string(asr_status_name(err.code), 32);
        touch_string(err.msg, ASR_ERROR_MSG_MAX);
        return;
    }
    touch_layout(s);
    uint32_t max = asr_stream_info(s)->max_chunk_size;
    uint8_t *content = malloc(max);
    struct asr_chunk_decoder *d = NULL;
    if (!content || asr_chunk_decoder_new(s, &d, &err) != ASR_OK)
        goto out;
    struct asr_stream_record rec;
    int rc;
    while ((rc = asr_stream_next(s, &rec, &err)) == ASR_OK && rec.kind != ASR_STREAM_END) {
        if (rec.kind == ASR_STREAM_CHUNK) {
            take_chunk(s, &rec, d, content, max, &src.lcg);
        } else if (rec.kind == ASR_STREAM_EXTENTS) {
            for (uint32_t i = 0; i < rec.extent_count; i++)
                sink += rec.extents[i].offset + rec.extents[i].length;
        } else {
            abort(); /* no other kind */
        }
    }
    if (rc == ASR_OK) {
        for (uint32_t v = 0; v < asr_stream_volume_count(s); v++)
            if (!asr_stream_volume_stats(s, v))
                abort(); /* stats are there at the end */
        if (asr_stream_next(s, &rec, &err) != ASR_OK || rec.kind != ASR_STREAM_END)
            abort(); /* and the end stays the end */
    } else {
        touch_string(err.msg, ASR_ERROR_MSG_MAX);
        struct asr_error again = {0};
        if (asr_stream_next(s, &rec, &again) != rc)
            abort(); /* an error ends the stream for good */
    }
    sink += asr_stream_damaged_chunks(s) + asr_stream_input_bytes(s);
out:
    asr_chunk_decoder_free(d);
    free(content);
    asr_stream_free(s);
}

/* ---- checksum repair through part headers ----------------------------------------------------- */

/* Repairs a stream's checksums: a split set's parts are joined into one image for the repair and
 * cut again at the same places, each part header's own checksum recomputed but its fields left
 * as mutated. */
static void fix_stream(uint8_t *img, size_t size)
{
    uint64_t split = size >= ASR_PART_HEADER_SIZE ? get_le64(img + 32) : 0;
    if (split < ASR_MIN_SPLIT_SIZE || split >= size) {
        fuzz_fix_checksums(img, size);
        return;
    }
    uint8_t *joined = malloc(size);
    if (!joined)
        return;
    size_t len = 0;
    for (size_t pos = 0; pos < size && size - pos > ASR_PART_HEADER_SIZE; pos += split) {
        size_t payload = size - pos - ASR_PART_HEADER_SIZE;
        if (payload > split - ASR_PART_HEADER_SIZE)
            payload = (size_t)split - ASR_PART_HEADER_SIZE;
        if (pos == 0) {
            memcpy(joined, img, ASR_PART_HEADER_SIZE);
            len = ASR_PART_HEADER_SIZE;
        } else {
            put_le64(img + pos + 56, XXH3_64bits(img + pos, 56));
        }
        memcpy(joined + len, img + pos + ASR_PART_HEADER_SIZE, payload);
        len += payload;
    }
    fuzz_fix_checksums(joined, len);
    size_t at = 0;
    for (size_t pos = 0; pos < size && size - pos > ASR_PART_HEADER_SIZE; pos += split) {
        size_t payload = size - pos - ASR_PART_HEADER_SIZE;
        if (payload > split - ASR_PART_HEADER_SIZE)
            payload = (size_t)split - ASR_PART_HEADER_SIZE;
        if (pos == 0) {
            memcpy(img, joined, ASR_PART_HEADER_SIZE);
            at = ASR_PART_HEADER_SIZE;
        }
        memcpy(img + pos + ASR_PART_HEADER_SIZE, joined + at, payload);
        at += payload;
    }
    free(joined);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_stream(copy, size);
    if (memcmp(copy, data, size) != 0)
        run(copy, size);
    free(copy);
    return 0;
}
