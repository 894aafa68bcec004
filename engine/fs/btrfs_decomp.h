/* Engine-internal: the data of a compressed btrfs file extent (zlib, lzo, zstd) decompressed into
 * a caller's buffer, every length bounded by the input and the output (btrfs_decomp.c). */
#ifndef ASR_BTRFS_DECOMP_H
#define ASR_BTRFS_DECOMP_H

#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

/* The compression byte of a file extent item. */
enum btrfs_compression { BTRFS_COMPRESS_NONE = 0, BTRFS_COMPRESS_ZLIB = 1, BTRFS_COMPRESS_LZO = 2, BTRFS_COMPRESS_ZSTD = 3 };

/* The most one compressed extent holds uncompressed (the kernel's BTRFS_MAX_UNCOMPRESSED) and on
 * disk: larger claims are damage, refused before anything is allocated. */
#define BTRFS_MAX_UNCOMPRESSED (128u << 10)

/* Decompresses the in_len bytes at in (a whole compressed extent as stored: one zlib stream, one
 * zstd frame, or lzo's framing with segment headers kept inside sectors of sectorsize bytes)
 * into out, at most out_cap bytes; *got says how many were produced. Data that ends before
 * out_cap is not an error: btrfs reads the rest as zeros, and so does the caller. ASR_OK;
 * ASR_E_CORRUPT naming `where` (and what failed) when the data does not decompress, a length
 * in it points past the input, or a segment would overrun out; ASR_E_UNSUPPORTED for another
 * compression type; ASR_E_NOMEM. */
int btrfs_decompress(int type, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *got,
                     uint32_t sectorsize, const char *where, struct asr_error *err);

#endif
