/* Fixtures for the chunk store's suites (test_store*.c; store/, SPEC.md section 19): a store on
 * the scratch directory, test chunks encoded and named by it, backup sessions begun and filled,
 * and the store's objects counted. */
#ifndef ASR_TEST_STOREFIX_H
#define ASR_TEST_STOREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_store.h"

/* A test chunk's content: stored as it is, four fill a 64 KiB pack (STORE_MIN_PACK_TARGET). */
#define STOREFIX_CHUNK (20u << 10)

struct storefix_chunk {
    uint8_t content[STOREFIX_CHUNK];
    uint8_t out[STOREFIX_CHUNK + 1024];
    struct asr_chunk c;
    struct asr_store_id id;
};

/* A new store at scratch/name, its key file at scratch/name.key (checked to be where init says),
 * packs of pack_target bytes; opened. */
struct asr_store *storefix_store(const char *name, uint32_t pack_target);

/* n pseudo-random bytes, the same for the same seed. */
void storefix_fill(void *buf, size_t n, uint32_t seed);

/* Chunk t made from seed: pseudo-random content, or with compressible a pattern zstd shrinks;
 * encoded at level (0 stores), with its id in s. */
void storefix_chunk(struct asr_store *s, uint32_t seed, int level, bool compressible, struct storefix_chunk *t);
/* n such chunks from the seeds first, first + 1, ...; calloc'd. */
struct storefix_chunk *storefix_chunks(struct asr_store *s, uint32_t first, int n, int level, bool compressible);

/* A backup session of host, begun (asserting). */
struct asr_store_session *storefix_begin(struct asr_store *s, const char *host);
/* Puts c[0..n) into the session (asserting each). */
void storefix_put(struct asr_store_session *ss, const struct storefix_chunk *c, int n);

/* How many objects the store's backend lists under prefix. */
size_t storefix_count(struct asr_store *s, const char *prefix);
/* How many index objects the store holds, each read and checked (asserting): 1 to max_entries
 * entries, 1 to max_packs packs in its table, every one of them a pack its entries are in;
 * *entries: their entries in all. */
size_t storefix_index_objects(struct asr_store *s, uint64_t max_entries, uint32_t max_packs, uint64_t *entries);

#endif
