/* Compressed btrfs file data (btrfs_decomp.h): zlib and zstd through their streaming decoders,
 * stopped when the output is full or the stream ends; lzo through btrfs's own framing, a 4-byte
 * little-endian total length (itself included), then segments of a 4-byte length and lzo1x data,
 * each segment header moved to the next sector when fewer than 4 bytes of the current one are
 * left (the data may cross sectors). Every length read from the input is checked against what is
 * left of the input before it is used, and the decoders are given only what is left of out. */
#include "btrfs_decomp.h"

#include "le.h"

#include <lzo/lzo1x.h>
#include <zlib.h>
#include <zstd.h>

/* btrfs writes zstd frames with a window of at most 128 KiB (2^17); a frame asking for more
 * than this is damage, and must not make the decoder allocate its window. */
#define ZSTD_WINDOW_LOG_MAX 20

static int decomp_zlib(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *got,
                       const char *where, struct asr_error *err)
{
    z_stream s = {0};
    if (inflateInit(&s) != Z_OK)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: %s: out of memory for zlib", where);
    s.next_in = (Bytef *)in; /* zlib's API is not const; inflate only reads it */
    s.avail_in = (uInt)in_len;
    s.next_out = out;
    s.avail_out = (uInt)out_cap;
    int z = Z_OK;
    while (z == Z_OK && s.avail_out)
        z = inflate(&s, Z_NO_FLUSH);
    *got = out_cap - s.avail_out;
    const char *why = s.msg ? s.msg : "stream ends early";
    inflateEnd(&s);
    /* Z_BUF_ERROR: no progress possible, the input ended before the stream did. */
    if (z == Z_STREAM_END || (z == Z_OK && !s.avail_out))
        return ASR_OK;
    if (z == Z_MEM_ERROR)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: %s: out of memory for zlib", where);
    return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: zlib data does not decompress (%s) after %zu bytes", where,
                           z == Z_BUF_ERROR ? "input ends inside the stream" : why, *got);
}

static int decomp_zstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *got,
                       const char *where, struct asr_error *err)
{
    *got = 0;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: %s: out of memory for zstd", where);
    size_t r = ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
    ZSTD_inBuffer ib = {in, in_len, 0};
    ZSTD_outBuffer ob = {out, out_cap, 0};
    /* One frame: what follows it in the extent's last sector is padding, not another frame. */
    while (!ZSTD_isError(r) && ob.pos < ob.size) {
        size_t before_in = ib.pos, before_out = ob.pos;
        r = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(r) || r == 0)
            break;
        if (ib.pos == before_in && ob.pos == before_out)
            break; /* the input ended inside the frame */
    }
    ZSTD_freeDCtx(d);
    *got = ob.pos;
    if (ZSTD_isError(r))
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: zstd data does not decompress (%s) after %zu bytes",
                               where, ZSTD_getErrorName(r), *got);
    if (r != 0 && ob.pos < ob.size)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: zstd data ends inside its frame after %zu bytes", where,
                               *got);
    return ASR_OK;
}

static int decomp_lzo(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *got,
                      uint32_t sectorsize, const char *where, struct asr_error *err)
{
    *got = 0;
    if (sectorsize < 512 || (sectorsize & (sectorsize - 1)))
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: lzo data in sectors of %u bytes", where, sectorsize);
    if (in_len < 4)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: lzo data of %zu bytes, shorter than its header", where,
                               in_len);
    uint32_t total = get_le32(in);
    if (total < 4 || total > in_len)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: lzo data says %u bytes, the extent holds %zu", where,
                               total, in_len);
    if (lzo_init() != LZO_E_OK)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "btrfs: %s: the lzo library fails its own check", where);
    size_t at = 4;
    while (at < total && *got < out_cap) {
        size_t left_in_sector = sectorsize - at % sectorsize;
        if (left_in_sector < 4)
            at += left_in_sector; /* a header never straddles a sector: the rest is padding */
        if (at + 4 > total)
            return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: lzo segment header at byte %zu past the data's %u",
                                   where, at, total);
        uint32_t seg = get_le32(in + at);
        at += 4;
        if (seg == 0 || seg > total - at)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: %s: lzo segment of %u bytes at byte %zu, past the data's %u", where, seg,
                                   at - 4, total);
        lzo_uint n = out_cap - *got;
        int r = lzo1x_decompress_safe(in + at, seg, out + *got, &n, NULL);
        /* LZO_E_OUTPUT_OVERRUN: the segment holds more than the extent's size said. */
        if (r != LZO_E_OK)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: %s: lzo segment at byte %zu does not decompress (lzo error %d) after %zu bytes",
                                   where, at - 4, r, *got);
        *got += n;
        at += seg;
    }
    return ASR_OK;
}

int btrfs_decompress(int type, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *got,
                     uint32_t sectorsize, const char *where, struct asr_error *err)
{
    *got = 0;
    if (in_len > UINT32_MAX || out_cap > UINT32_MAX) /* zlib counts in uInt */
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s: a compressed extent of %zu bytes", where, in_len);
    switch (type) {
    case BTRFS_COMPRESS_ZLIB:
        return decomp_zlib(in, in_len, out, out_cap, got, where, err);
    case BTRFS_COMPRESS_LZO:
        return decomp_lzo(in, in_len, out, out_cap, got, sectorsize, where, err);
    case BTRFS_COMPRESS_ZSTD:
        return decomp_zstd(in, in_len, out, out_cap, got, where, err);
    default:
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "btrfs: %s: compression type %d is not read", where, type);
    }
}
