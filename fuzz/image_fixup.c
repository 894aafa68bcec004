/* Checksum repair for the image fuzz harnesses: see image_fixup.h. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "image_fixup.h"
#include "internal.h"
#include "le.h"

#define FIXUP_MAX_CONTENT (1u << 20) /* zstd chunks larger than this keep their content hash */

struct fixed_chunk {
    uint64_t offset; /* logical offset of the chunk header */
    struct asr_hash128 content_hash;
};

static void fix_section(uint8_t *s, uint64_t body_len)
{
    put_le64(s + 16, fmt_checksum64(s + ASR_SECTION_HEADER_SIZE, (size_t)body_len));
    put_le64(s + 24, fmt_checksum64(s, 24));
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
        fmt_hash128_put(c + 24, *content_hash);
    put_le64(c + 56, fmt_checksum64(c, 56));
    return have;
}

/* The record of a snapshot's store id, or NULL: recs as fuzz_fix_snapshot has it. */
static uint8_t *find_record(uint8_t *recs, size_t len, const uint8_t *id, uint64_t *rec_len)
{
    for (size_t at = 0; recs && len - at >= 36;) {
        uint32_t n = get_le32(recs + at + 32);
        if (n > len - at - 36)
            return NULL;
        if (memcmp(recs + at, id, 32) == 0) {
            *rec_len = n;
            return recs + at + 36;
        }
        at += 36 + (size_t)n;
    }
    return NULL;
}

static void fix_records(uint8_t *recs, size_t len, uint64_t seed)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *scratch = malloc(FIXUP_MAX_CONTENT);
    for (size_t at = 0; len - at >= 36;) {
        uint32_t n = get_le32(recs + at + 32);
        if (n > len - at - 36)
            break;
        struct asr_hash128 h;
        fix_chunk(recs + at + 36, n, seed, dctx, scratch, &h);
        at += 36 + (size_t)n;
    }
    ZSTD_freeDCtx(dctx);
    free(scratch);
}

static void fix_image(uint8_t *img, size_t size, uint8_t *recs, size_t recs_len);

void fuzz_fix_checksums(uint8_t *img, size_t size)
{
    fix_image(img, size, NULL, 0);
}

void fuzz_fix_snapshot(uint8_t *img, size_t size, uint8_t *recs, size_t recs_len)
{
    uint64_t seed = size >= ASR_PART_HEADER_SIZE + ASR_IMAGE_HEADER_FIXED ? get_le64(img + ASR_PART_HEADER_SIZE + 56) : 0;
    fix_records(recs, recs_len, seed);
    fix_image(img, size, recs, recs_len);
}

/* Footer first (it places the index), then the records from the image header on, then the index
 * and the footer, whose checksums cover what came before. recs: a snapshot's chunk records. */
static void fix_image(uint8_t *img, size_t size, uint8_t *recs, size_t recs_len)
{
    if (size < ASR_PART_HEADER_SIZE)
        return;
    memcpy(img, fmt_part_magic, sizeof fmt_part_magic);
    put_le64(img + 56, fmt_checksum64(img, 56));
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
            put_le64(L + hlen - 8, fmt_checksum64(L, hlen - 8));
            pos = hlen;
        }
    }

    size_t nfixed = 0, capfixed = (size_t)(len / ASR_CHUNK_HEADER_SIZE) + 1;
    struct fixed_chunk *fixed = malloc(capfixed * sizeof *fixed);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *scratch = malloc(FIXUP_MAX_CONTENT);
    const uint8_t *ids = NULL; /* a snapshot's store id section */
    uint64_t id_count = 0;
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
        } else if (tag == ASR_TAG_LAYOUT || tag == ASR_TAG_VOLUMES || tag == ASR_TAG_EXTENTS || tag == ASR_TAG_IDS) {
            if (end - pos < ASR_SECTION_HEADER_SIZE)
                break;
            uint64_t body = get_le64(L + pos + 8);
            if (body > end - pos - ASR_SECTION_HEADER_SIZE)
                break;
            fix_section(L + pos, body);
            if (tag == ASR_TAG_IDS) {
                ids = L + pos + ASR_SECTION_HEADER_SIZE;
                id_count = body / ASR_STORE_ID_SIZE;
            }
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
                        fmt_hash128_put(e + 16, fixed[k].content_hash);
                }
                /* A snapshot's chunk i is the record its store id names. */
                for (uint64_t i = 0; recs && i < count && i < fits && i < id_count && i < 4096; i++) {
                    uint64_t n;
                    const uint8_t *rec = find_record(recs, recs_len, ids + i * ASR_STORE_ID_SIZE, &n);
                    if (rec && n >= ASR_CHUNK_HEADER_SIZE)
                        memcpy(body + ASR_INDEX_FIXED + i * ASR_CHUNK_ENTRY_SIZE + 16, rec + 24, 16);
                }
                XXH128_hash_t h = XXH3_128bits(L, (size_t)index_off);
                fmt_hash128_put(body + 16, (struct asr_hash128){h.low64, h.high64});
            }
            fix_section(ix, body_len);
            if (footer)
                put_le64(footer + 48, XXH3_64bits(ix, ASR_SECTION_HEADER_SIZE + (size_t)body_len));
        }
    }
    free(fixed);
    if (footer)
        put_le64(footer + 56, fmt_checksum64(footer, 56));
}
