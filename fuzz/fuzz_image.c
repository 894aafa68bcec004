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
#include <xxhash.h>
#include <zstd.h>

#include "asr_format.h"
#include "internal.h"
#include "le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUF_SIZE (1u << 20)        /* the largest buffer one read uses */
#define READ_BUDGET (4u << 20)     /* volume bytes read per image */
#define PIECE (64u << 10)          /* one volume read */
#define MAX_CHUNK_READS 8u
#define MAX_EXTENT_READS 64u
#define FIXUP_MAX_CONTENT (1u << 20) /* zstd chunks larger than this keep their content hash */

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

/* ---- checksum fixup ----------------------------------------------------------------------- */

struct fixed_chunk {
    uint64_t offset; /* logical offset of the chunk header */
    struct asr_hash128 content_hash;
};

static void fix_section(uint8_t *s, uint64_t body_len)
{
    put_le64(s + 16, asr_checksum64(s + ASR_SECTION_HEADER_SIZE, (size_t)body_len));
    put_le64(s + 24, asr_checksum64(s, 24));
}

/* The chunk at c: stored and content hashes, then its header checksum. Returns -1 if it runs past
 * avail bytes, 1 if it set *content_hash (only where the content is at hand), else 0. */
static int fix_chunk(uint8_t *c, uint64_t avail, uint64_t seed, ZSTD_DCtx *dctx, uint8_t *scratch,
                     struct asr_hash128 *content_hash)
{
    if (avail < ASR_CHUNK_HEADER_SIZE)
        return -1;
    uint32_t stored_len = get_le32(c + 16), content_len = get_le32(c + 20);
    if (stored_len > avail - ASR_CHUNK_HEADER_SIZE)
        return -1;
    const uint8_t *stored = c + ASR_CHUNK_HEADER_SIZE;
    put_le64(c + 40, XXH3_64bits(stored, stored_len));
    bool have = false;
    if (c[4] == ASR_CODEC_STORED && stored_len == content_len && content_len) {
        *content_hash = asr_content_hash(seed, stored, content_len);
        have = true;
    } else if (c[4] == ASR_CODEC_ZSTD && content_len && content_len <= FIXUP_MAX_CONTENT && dctx && scratch) {
        size_t n = ZSTD_decompressDCtx(dctx, scratch, content_len, stored, stored_len);
        if (!ZSTD_isError(n) && n == content_len) {
            *content_hash = asr_content_hash(seed, scratch, content_len);
            have = true;
        }
    }
    if (have)
        asr_hash128_put(c + 24, *content_hash);
    put_le64(c + 56, asr_checksum64(c, 56));
    return have;
}

/* Recomputes, in place, every checksum of a single-part image that the structure lets us find:
 * part header, image header, each chunk and section up to the index, the chunk table's content
 * hashes, the whole-stream hash, the index and the footer. Everything else stays as mutated. */
static void fixup(uint8_t *img, size_t size)
{
    if (size < ASR_PART_HEADER_SIZE)
        return;
    memcpy(img, asr_part_magic, sizeof asr_part_magic);
    put_le64(img + 56, asr_checksum64(img, 56));
    uint8_t *L = img + ASR_PART_HEADER_SIZE;
    uint64_t len = size - ASR_PART_HEADER_SIZE;

    /* Footer first: it bounds the stream and places the index. */
    uint8_t *footer = NULL;
    uint64_t index_off = UINT64_MAX, end = len;
    if (len >= ASR_FOOTER_SIZE && get_le32(L + len - ASR_FOOTER_SIZE) == ASR_TAG_FOOTER) {
        footer = L + len - ASR_FOOTER_SIZE;
        end = len - ASR_FOOTER_SIZE;
        if (get_le64(footer + 8) <= end)
            index_off = end = get_le64(footer + 8);
    }

    uint64_t pos = 0, seed = 0;
    if (end >= ASR_IMAGE_HEADER_FIXED && get_le32(L) == ASR_TAG_HEADER) {
        uint32_t hlen = get_le32(L + 4);
        seed = get_le64(L + 56);
        if (hlen >= ASR_IMAGE_HEADER_FIXED + 14 && hlen <= end && hlen <= ASR_IMAGE_HEADER_MAX) {
            put_le64(L + hlen - 8, asr_checksum64(L, hlen - 8));
            pos = hlen;
        }
    }

    size_t nfixed = 0, capfixed = (size_t)(len / ASR_CHUNK_HEADER_SIZE) + 1;
    struct fixed_chunk *fixed = malloc(capfixed * sizeof *fixed);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *scratch = malloc(FIXUP_MAX_CONTENT);
    while (pos && end - pos >= 4) {
        uint32_t tag = get_le32(L + pos);
        if (tag == ASR_TAG_CHUNK) {
            struct fixed_chunk f = {pos, {0, 0}};
            int rc = fix_chunk(L + pos, end - pos, seed, dctx, scratch, &f.content_hash);
            if (rc < 0)
                break;
            if (rc && fixed && nfixed < capfixed)
                fixed[nfixed++] = f; /* in increasing offset order */
            pos += ASR_CHUNK_HEADER_SIZE + get_le32(L + pos + 16);
        } else if (tag == ASR_TAG_LAYOUT || tag == ASR_TAG_VOLUMES || tag == ASR_TAG_EXTENTS) {
            if (end - pos < ASR_SECTION_HEADER_SIZE)
                break;
            uint64_t body = get_le64(L + pos + 8);
            if (body > end - pos - ASR_SECTION_HEADER_SIZE)
                break;
            fix_section(L + pos, body);
            pos += ASR_SECTION_HEADER_SIZE + body;
        } else {
            break;
        }
    }
    ZSTD_freeDCtx(dctx);
    free(scratch);

    if (index_off != UINT64_MAX && len - ASR_FOOTER_SIZE - index_off >= ASR_SECTION_HEADER_SIZE &&
        get_le32(L + index_off) == ASR_TAG_INDEX) {
        uint8_t *ix = L + index_off;
        uint64_t room = len - ASR_FOOTER_SIZE - index_off - ASR_SECTION_HEADER_SIZE;
        uint64_t body_len = get_le64(ix + 8);
        if (body_len <= room) {
            uint8_t *body = ix + ASR_SECTION_HEADER_SIZE;
            if (body_len >= ASR_INDEX_FIXED) {
                uint64_t count = get_le64(body + 8);
                uint64_t fits = (body_len - ASR_INDEX_FIXED) / ASR_CHUNK_ENTRY_SIZE;
                /* A valid chunk table is in offset order too: one merge pass. */
                size_t k = 0;
                for (uint64_t i = 0; i < count && i < fits && k < nfixed; i++) {
                    uint8_t *e = body + ASR_INDEX_FIXED + i * ASR_CHUNK_ENTRY_SIZE;
                    uint64_t at = get_le64(e);
                    while (k < nfixed && fixed[k].offset < at)
                        k++;
                    if (k < nfixed && fixed[k].offset == at)
                        asr_hash128_put(e + 16, fixed[k].content_hash);
                }
                XXH128_hash_t h = XXH3_128bits(L, (size_t)index_off);
                asr_hash128_put(body + 16, (struct asr_hash128){h.low64, h.high64});
            }
            fix_section(ix, body_len);
            if (footer)
                put_le64(footer + 48, XXH3_64bits(ix, ASR_SECTION_HEADER_SIZE + (size_t)body_len));
        }
    }
    free(fixed);
    if (footer)
        put_le64(footer + 56, asr_checksum64(footer, 56));
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
    fixup(copy, size);
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
