/* Chunk content: the per-image content hash (the dedup key), encoding with zstd or storing raw
 * when compression does not help, and checked decoding. Decoding never writes more than the
 * declared content length, which the header caps at ASR_MAX_CHUNK_SIZE. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"
#include <zstd.h>

struct asr_hash128 asr_content_hash(uint64_t seed, const void *data, size_t len)
{
    XXH128_hash_t h = XXH3_128bits_withSeed(data, len, seed);
    return (struct asr_hash128){h.low64, h.high64};
}

size_t asr_chunk_bound(size_t content_len)
{
    return ZSTD_compressBound(content_len);
}

struct asr_chunk_encoder {
    int level;
    ZSTD_CCtx *cctx; /* NULL at level 0 */
};

int asr_chunk_encoder_new(int level, struct asr_chunk_encoder **out, struct asr_error *err)
{
    *out = NULL;
    if (level < 0 || level > ZSTD_maxCLevel())
        return fmt_fail(err, ASR_E_ARG, "compression level %d outside 0..%d", level, ZSTD_maxCLevel());
    struct asr_chunk_encoder *e = calloc(1, sizeof *e);
    if (!e)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory for a chunk encoder");
    e->level = level;
    if (level > 0) {
        e->cctx = ZSTD_createCCtx();
        if (!e->cctx || ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_compressionLevel, level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_contentSizeFlag, 1)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_checksumFlag, 0))) {
            asr_chunk_encoder_free(e);
            return fmt_fail(err, ASR_E_NOMEM, "zstd: cannot set up a compression context");
        }
    }
    *out = e;
    return ASR_OK;
}

void asr_chunk_encoder_free(struct asr_chunk_encoder *e)
{
    if (!e)
        return;
    ZSTD_freeCCtx(e->cctx);
    free(e);
}

int asr_chunk_encoder_run(struct asr_chunk_encoder *e, const void *content, size_t len, struct asr_hash128 hash,
                          void *out, size_t out_cap, struct asr_chunk *c, struct asr_error *err)
{
    if (len == 0 || len > ASR_MAX_CHUNK_SIZE || out_cap < asr_chunk_bound(len))
        return fmt_fail(err, ASR_E_ARG, "chunk of %zu bytes: bad length or output too small", len);
    c->content_len = (uint32_t)len;
    c->content_hash = hash;
    if (e->cctx) {
        /* The frame records its content size: the reader checks it against the header. */
        size_t n = ZSTD_compress2(e->cctx, out, out_cap, content, len);
        if (ZSTD_isError(n))
            return fmt_fail(err, ASR_E_ARG, "zstd: %s", ZSTD_getErrorName(n));
        if (n < len) {
            c->codec = ASR_CODEC_ZSTD;
            c->stored = out;
            c->stored_len = (uint32_t)n;
            return ASR_OK;
        }
    }
    c->codec = ASR_CODEC_STORED;
    c->stored = content;
    c->stored_len = (uint32_t)len;
    return ASR_OK;
}

int asr_chunk_encode(const void *content, size_t len, int level, uint64_t seed, void *out,
                     size_t out_cap, struct asr_chunk *c, struct asr_error *err)
{
    struct asr_chunk_encoder *e;
    int rc = asr_chunk_encoder_new(level, &e, err);
    if (!rc) {
        rc = asr_chunk_encoder_run(e, content, len, asr_content_hash(seed, content, len), out, out_cap, c, err);
        asr_chunk_encoder_free(e);
    }
    return rc;
}

int fmt_chunk_decode(const struct fmt_chunk_header *h, const uint8_t *stored, void *out, size_t cap,
                     uint64_t seed, void *zstd_dctx, struct asr_error *err)
{
    if (XXH3_64bits(stored, h->stored_len) != h->stored_hash)
        return fmt_fail(err, ASR_E_CORRUPT, "stored data checksum mismatch");
    if (cap < h->content_len)
        return fmt_fail(err, ASR_E_ARG, "buffer of %zu bytes too small for %u", cap, h->content_len);
    if (h->codec == ASR_CODEC_STORED) {
        memcpy(out, stored, h->content_len);
    } else {
        unsigned long long declared = ZSTD_getFrameContentSize(stored, h->stored_len);
        if (declared != h->content_len)
            return fmt_fail(err, ASR_E_CORRUPT, "zstd frame declares %llu bytes, header %u", declared,
                            h->content_len);
        size_t n = ZSTD_decompressDCtx(zstd_dctx, out, h->content_len, stored, h->stored_len);
        if (ZSTD_isError(n) || n != h->content_len)
            return fmt_fail(err, ASR_E_CORRUPT, "zstd: %s", ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short frame");
    }
    struct asr_hash128 got = asr_content_hash(seed, out, h->content_len);
    if (!fmt_hash128_eq(got, h->content_hash))
        return fmt_fail(err, ASR_E_CORRUPT, "content checksum mismatch");
    return ASR_OK;
}
