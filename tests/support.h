/* Test support: scratch directories, file helpers and a builder of small but complete images
 * (several disks, partitions, raw regions, volumes; stored, compressed, deduplicated, zero and
 * unreadable extents) whose expected volume contents the tests can recompute. */
#ifndef ASR_TEST_SUPPORT_H
#define ASR_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "asr_format.h"

/* A fresh directory under /tmp, removed by scratch_cleanup. */
const char *scratch_dir(void);
void scratch_cleanup(void);
char *scratch_path(const char *name); /* malloc'd */

uint8_t *read_file(const char *path, size_t *len);
void write_file(const char *path, const void *data, size_t len);
void copy_file(const char *from, const char *to);
void patch_byte(const char *path, uint64_t off, uint8_t value);

/* Deterministic volume content: byte at offset off of a volume with seed s. Ranges the builder
 * marks zero or unreadable read as zero. */
uint8_t pattern_byte(uint32_t seed, uint64_t off);

struct sample_opts {
    uint64_t split_size;
    uint32_t max_chunk;  /* 0: 64 KiB */
    uint32_t volume_kib; /* size of each volume; 0: 512 */
    int level;           /* zstd level; 0 stores */
    int fixed_identity;
};

/* Writes a sample image to path: 2 disks (GPT and MBR with an extended and a logical partition),
 * raw regions, 3 volumes. Returns ASR_OK. Each volume v's bytes are
 * sample_expected(v, off) for off < volume size. */
int write_sample_image(const char *path, const struct sample_opts *o, struct asr_error *err);
int sample_expected(uint32_t volume, uint64_t off, int *unreadable);
uint64_t sample_volume_size(const struct sample_opts *o);

/* An image with the sample's layout (volume_kib 256) whose chunks are used as dedup of repeated
 * blocks uses them: a mostly-zero 4 KiB chunk laid at many places back to back and inside what
 * it already covers, chunks laid only in pieces that partly overlap, chunks used again after
 * later chunks, from another volume and from another disk. Volume v's captured bytes are
 * dedup_expected(v, off) wherever *captured comes back 1. gap: one extent also uses bytes of a
 * chunk that no extent laid while that chunk was the last one (valid, but a pipe cannot go back
 * for them). gap 2 instead: eight runs alternating between two chunks, as a patched region's
 * extents alternate between its base and its patch (SPEC.md 19.10). */
int write_dedup_image(const char *path, int gap, struct asr_error *err);
uint8_t dedup_expected(uint32_t volume, uint64_t off, int gap, int *captured);
/* Volume 0 of 256 KiB in 1 KiB extents from 14 chunks drawn with seed (support.c). */
int write_random_reuse_image(const char *path, unsigned seed, struct asr_error *err);

/* A minimal image (one disk, nothing captured) that declares feature bit `bit` of class cls under
 * name, as a later asrimg would: how this version treats what it does not know. malloc'd path. */
char *image_with_feature(enum asr_feature_class cls, unsigned bit, const char *name);

#endif
