/* An in-memory chunk store for the tests of store snapshots (feature external-chunks): chunk
 * records as a store keeps them (SPEC.md section 19.3: chunk_id 0) keyed by 32-byte ids, served
 * through a struct asr_chunk_source. The ids are a fake keyed hash (two seeded XXH3-128s of the
 * content): the real one, HMAC-SHA-256, is the store's business; the format only asks the source
 * whether content matches its id. Used by test_external.c, test_golden.c and make_golden. */
#ifndef ASR_TEST_MEMSTORE_H
#define ASR_TEST_MEMSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_format.h"

struct memrec {
    uint8_t id[32];
    uint8_t *rec; /* 64-byte chunk header, then the stored bytes */
    size_t len;
};

struct memstore {
    struct memrec *recs;
    size_t count, cap;
    bool refuse_all;         /* check() says no to every content */
    uint8_t refuse[32];      /* check() says no for this id ... */
    bool refuse_set;         /* ... when set */
    uint64_t fetches;        /* calls of fetch (atomic: several threads fetch at once) */
};

/* The fake keyed hash a store would compute for content. */
void memstore_id(const void *content, size_t len, uint8_t id[32]);
/* Keeps chunk c (its stored bytes and content hash) as the record for id; an id already there is
 * kept once. 0, or -1 out of memory. */
int memstore_put(struct memstore *m, const uint8_t id[32], const struct asr_chunk *c);
struct memrec *memstore_find(struct memstore *m, const uint8_t id[32]);
struct asr_chunk_source memstore_source(struct memstore *m);
void memstore_free(struct memstore *m);

/* A file of records: for each, its id (32 bytes), its length (u32, little-endian), the record. */
int memstore_save(const struct memstore *m, const char *path);
int memstore_load(struct memstore *m, const char *path);

#endif
