/* Re-backup hints inside the engine (hints.c owns them; the public half is in asr_engine.h): what
 * the pipeline asks of the last backup's chunks, and how it records this backup's. */
#ifndef ASR_HINTS_H
#define ASR_HINTS_H
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"
#include "asr_store.h"

#define HINT_KEY_SIZE 16
_Static_assert(ASR_BACKUP_HINTS_CHECK == ASR_STORE_ID_SIZE, "the store check is a store id");

/* The hashes of a chunk's bytes in 4 KiB blocks of the volume's grid: a patch (below) keeps the
 * blocks that did not change in the chunk it was, and stores only the others. */
#define HINT_BLOCK 4096u
#define HINT_FROM_BASE 1u /* hint_block.from: the block's bytes are the base chunk's */
#define HINT_PATCHED 1u   /* hint.flags: the region is its base chunk patched */

struct hint_block {
    uint64_t hash; /* XXH3-64 of the block's bytes under the file's private seed */
    uint8_t from;  /* HINT_FROM_BASE or 0 */
};

/* A region of an earlier backup's volume that the chunker ended (the same bytes from the same
 * offset end there again). Either one chunk, or (HINT_PATCHED) its base chunk, whose bytes it
 * was when first stored, with the blocks that changed since taken from a patch chunk. */
struct hint {
    uint64_t offset;            /* of its first byte in the volume */
    uint32_t len;
    uint32_t flags;             /* HINT_PATCHED */
    struct asr_hash128 verify;  /* asr_content_hash(the file's private seed, the region's bytes) */
    struct asr_hash128 content; /* asr_content_hash(the store's seed, the base chunk's content) */
    struct asr_store_id sid;    /* the base chunk's store id */
    /* HINT_PATCHED: the patch chunk, the blocks not from the base one after another */
    struct asr_hash128 patch_content;
    uint32_t patch_len;
    struct asr_store_id patch_sid;
    const struct hint_block *blocks; /* hint_block_count(offset, len) of them */
};

/* The blocks of a region of len bytes from volume offset `offset`: its bytes cut where the volume
 * offset of the first byte plus the position is a multiple of HINT_BLOCK. */
static inline size_t hint_block_count(uint64_t offset, uint32_t len)
{
    return (size_t)((offset % HINT_BLOCK + len + HINT_BLOCK - 1) / HINT_BLOCK);
}

/* Block i's bytes: [*start, *end) of the region. */
static inline void hint_block_range(uint64_t offset, uint32_t len, size_t i, uint32_t *start, uint32_t *end)
{
    uint64_t skew = offset % HINT_BLOCK, s = (uint64_t)i * HINT_BLOCK, e = s + HINT_BLOCK;
    *start = (uint32_t)(s > skew ? s - skew : 0);
    *end = (uint32_t)(e - skew < len ? e - skew : len);
}

/* One volume's hints, ascending and apart. */
struct hint_list {
    uint8_t key[HINT_KEY_SIZE];
    const struct hint *v;
    size_t n;
};

/* The hints loaded for the volume with this key, or NULL. */
const struct hint_list *hints_for_volume(const struct asr_backup_hints *h, const uint8_t key[HINT_KEY_SIZE]);
/* The hint for a chunk starting at offset, or NULL. */
const struct hint *hints_at(const struct hint_list *l, uint64_t offset);
/* Where the first hint after offset starts (UINT64_MAX: none). */
uint64_t hints_next_start(const struct hint_list *l, uint64_t offset);
/* The average chunk size the hints were made with (the backup must chunk the same way). */
uint32_t hints_avg_chunk(const struct asr_backup_hints *h);
/* The private seed verify hashes use. */
uint64_t hints_seed(const struct asr_backup_hints *h);
/* Adds a region of this backup, with its blocks (called in volume and offset order, from one
 * thread). */
int hints_record(struct asr_backup_hints *h, const uint8_t key[HINT_KEY_SIZE], const struct hint *e,
                 struct asr_error *err);
/* Parses a hints file's bytes into h (empty before): for asr_backup_hints_read and the fuzzer. */
int hints_parse(struct asr_backup_hints *h, const uint8_t *buf, size_t len, const char *where,
                struct asr_error *err);

#endif
