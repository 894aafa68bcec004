/* Compressed btrfs extents (engine/fs/btrfs_decomp.h): data compressed here with zlib, zstd and
 * lzo1x (lzo in btrfs's framing, built here: a total length, then per segment a length and the
 * data, headers moved past a sector's last 3 bytes) decompresses to what was compressed; input
 * that ends early, lengths pointing past the data, and garbage each give ASR_E_CORRUPT with a
 * message naming the extent and the codec. */
#include <criterion/criterion.h>
#include <lzo/lzo1x.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "btrfs_decomp.h"
#include "le.h"

#define SECTOR 4096u
#define MAX BTRFS_MAX_UNCOMPRESSED

/* Text-like bytes that compress, with a stretch of noise that does not: both kinds of block. */
static void fill(uint8_t *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (i / 5000) % 3 == 1 ? (uint8_t)(x >> 16) : (uint8_t)("fstab UUID=abc / btrfs subvol=root 0 0\n"[i % 39]);
    }
}

/* btrfs's lzo framing of in, one segment per sector of input after a first one of first bytes
 * (the decoder does not care how much a segment holds); *padded says whether a header was moved
 * to the next sector. Returns the framed length (the buffer holds it, zero-padded). */
static size_t lzo_frame(const uint8_t *in, size_t n, size_t first, uint8_t *out, size_t out_cap, bool *padded)
{
    static uint8_t wrk[LZO1X_1_MEM_COMPRESS];
    cr_assert_eq(lzo_init(), LZO_E_OK);
    memset(out, 0, out_cap);
    size_t at = 4;
    *padded = false;
    for (size_t i = 0, len; i < n; i += len) {
        size_t left = SECTOR - at % SECTOR;
        if (left < 4) {
            at += left;
            *padded = true;
        }
        lzo_uint clen = 0;
        len = i ? SECTOR : first;
        len = n - i < len ? n - i : len;
        cr_assert_leq(at + 4 + len + len / 16 + 64 + 3, out_cap);
        cr_assert_eq(lzo1x_1_compress(in + i, len, out + at + 4, &clen, wrk), LZO_E_OK);
        put_le32(out + at, (uint32_t)clen);
        at += 4 + clen;
    }
    put_le32(out, (uint32_t)at);
    return at;
}

static void expect_ok(int type, const uint8_t *c, size_t clen, const uint8_t *want, size_t n, size_t cap)
{
    uint8_t *got = malloc(cap);
    size_t len = 99;
    struct asr_error err = {0};
    int rc = btrfs_decompress(type, c, clen, got, cap, &len, SECTOR, "test extent", &err);
    cr_assert_eq(rc, ASR_OK, "type %d: %s", type, err.msg);
    cr_assert_eq(len, n, "type %d: %zu bytes decompressed, %zu compressed", type, len, n);
    cr_assert_eq(memcmp(got, want, n), 0, "type %d: decompressed differently", type);
    free(got);
}

#define expect_corrupt(...) expect_corrupt_(__LINE__, __VA_ARGS__)
static void expect_corrupt_(int line, int type, const uint8_t *c, size_t clen, size_t cap, const char *word)
{
    uint8_t *got = malloc(cap);
    size_t len;
    struct asr_error err = {0};
    int rc = btrfs_decompress(type, c, clen, got, cap, &len, SECTOR, "extent at 12345", &err);
    cr_assert_eq(rc, ASR_E_CORRUPT, "line %d, type %d: status %d (%s)", line, type, rc, err.msg);
    cr_assert(strstr(err.msg, "extent at 12345") && strstr(err.msg, word) && !strchr(err.msg, '\n'),
              "line %d: unclear message: %s", line, err.msg);
    free(got);
}

Test(btrfs_decomp, zlib_round_trip)
{
    static uint8_t in[MAX], c[2 * MAX];
    fill(in, MAX, 1);
    uLongf clen = sizeof c;
    cr_assert_eq(compress2(c, &clen, in, MAX, 3), Z_OK);
    expect_ok(BTRFS_COMPRESS_ZLIB, c, clen + 100, in, MAX, MAX); /* sector padding after the stream */
    /* A stream shorter than the extent's size: the rest reads as zeros, the caller's part. */
    clen = sizeof c;
    cr_assert_eq(compress2(c, &clen, in, 1000, 3), Z_OK);
    expect_ok(BTRFS_COMPRESS_ZLIB, c, clen, in, 1000, SECTOR);
}

Test(btrfs_decomp, zstd_round_trip)
{
    static uint8_t in[MAX], c[2 * MAX];
    fill(in, MAX, 2);
    size_t clen = ZSTD_compress(c, sizeof c, in, MAX, 3);
    cr_assert(!ZSTD_isError(clen));
    memset(c + clen, 0, 200);
    expect_ok(BTRFS_COMPRESS_ZSTD, c, clen + 200, in, MAX, MAX);
    clen = ZSTD_compress(c, sizeof c, in, 777, 1);
    expect_ok(BTRFS_COMPRESS_ZSTD, c, clen, in, 777, SECTOR);
}

Test(btrfs_decomp, lzo_round_trip)
{
    static uint8_t in[MAX], c[2 * MAX];
    bool padded_once = false;
    /* Sizes that end in a partial sector; the first segment's input grown until its data ends in
     * the last 3 bytes of the first sector, so the next header must skip them (fill() makes
     * noise from byte 5000 on: the first segment is the text, then noise, growing by a byte or
     * so each time). */
    for (size_t first = 5000; first < 10000 && !padded_once; first++) {
        size_t n = MAX - first % 4001;
        fill(in, n, 7);
        bool padded;
        size_t clen = lzo_frame(in, n, first, c, sizeof c, &padded);
        padded_once = padded;
        if (padded || first % 500 == 0)
            expect_ok(BTRFS_COMPRESS_LZO, c, clen, in, n, MAX);
    }
    cr_assert(padded_once, "no segment header needed padding: the framing rule went untested");
}

Test(btrfs_decomp, zlib_corrupt)
{
    static uint8_t in[MAX], c[2 * MAX];
    fill(in, MAX, 3);
    uLongf clen = sizeof c;
    cr_assert_eq(compress2(c, &clen, in, MAX, 3), Z_OK);
    expect_corrupt(BTRFS_COMPRESS_ZLIB, c, clen / 2, MAX, "zlib"); /* cut short */
    c[clen / 3] ^= 0x55;
    c[clen / 3 + 1] ^= 0xaa;
    c[clen / 3 + 2] ^= 0x55;
    expect_corrupt(BTRFS_COMPRESS_ZLIB, c, clen, MAX, "zlib");
    memset(c, 0xff, 64);
    expect_corrupt(BTRFS_COMPRESS_ZLIB, c, 64, MAX, "zlib");
}

Test(btrfs_decomp, zstd_corrupt)
{
    static uint8_t in[MAX], c[2 * MAX];
    fill(in, MAX, 4);
    size_t clen = ZSTD_compress(c, sizeof c, in, MAX, 3);
    expect_corrupt(BTRFS_COMPRESS_ZSTD, c, clen / 2, MAX, "zstd");
    memset(c, 0xee, 64);
    expect_corrupt(BTRFS_COMPRESS_ZSTD, c, 64, MAX, "zstd");
    /* A frame asking for a 1 GiB window (descriptor 0xa0: 2^(10+20)), then one raw last block of
     * 16 bytes: refused, the window not allocated. */
    uint8_t big[3 + 16] = {0};
    memcpy(c, "\x28\xb5\x2f\xfd\x00\xa0", 6);
    big[0] = 16 << 3 | 1;
    memcpy(c + 6, big, sizeof big);
    expect_corrupt(BTRFS_COMPRESS_ZSTD, c, 6 + sizeof big, MAX, "zstd");
    c[5] = 0x38; /* the same frame with a 128 KiB window reads */
    expect_ok(BTRFS_COMPRESS_ZSTD, c, 6 + sizeof big, big + 3, 16, MAX);
}

Test(btrfs_decomp, lzo_corrupt)
{
    static uint8_t in[MAX], c[2 * MAX];
    fill(in, MAX, 5);
    bool padded;
    size_t clen = lzo_frame(in, MAX, SECTOR, c, sizeof c, &padded);
    expect_corrupt(BTRFS_COMPRESS_LZO, c, clen - 1, MAX, "lzo"); /* total past the extent */
    expect_corrupt(BTRFS_COMPRESS_LZO, c, 3, MAX, "lzo");        /* no room for the total */
    /* A segment holding more than the room left for the extent's size. */
    expect_corrupt(BTRFS_COMPRESS_LZO, c, clen, MAX - SECTOR / 2, "lzo");
    /* Data past the extent's size (whole segments) is not read, as btrfs stops there. */
    expect_ok(BTRFS_COMPRESS_LZO, c, clen, in, MAX - SECTOR, MAX - SECTOR);
    uint8_t save[4];
    memcpy(save, c + 4, 4);
    put_le32(c + 4, (uint32_t)clen); /* the first segment past the data */
    expect_corrupt(BTRFS_COMPRESS_LZO, c, clen, MAX, "lzo");
    memcpy(c + 4, save, 4);
    memset(c + 8, 0xff, 40); /* the first segment's data */
    expect_corrupt(BTRFS_COMPRESS_LZO, c, clen, MAX, "lzo");
    uint8_t tiny[8] = {8, 0, 0, 0, 0, 0, 0, 0}; /* a segment of 0 bytes */
    expect_corrupt(BTRFS_COMPRESS_LZO, tiny, sizeof tiny, MAX, "lzo");
}

Test(btrfs_decomp, other_type_unsupported)
{
    uint8_t in[16] = {0}, out[16];
    size_t got;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_decompress(4, in, sizeof in, out, sizeof out, &got, SECTOR, "x", &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "compression type 4"), "%s", err.msg);
}
