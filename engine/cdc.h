/* Content-defined chunking and the dedup index used by the backup pipeline (engine/backup.c).
 * Internal to the engine; tests include it to check the chunker's properties directly. */
#ifndef ASR_CDC_H
#define ASR_CDC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_format.h"

/* ---- the chunker: FastCDC-style gear hash with normalized chunking ------------------------ */

struct asr_cdc {
    uint32_t min, avg, max; /* chunk sizes: no cut before min, always one at max */
    uint64_t mask_hard;     /* cut test below avg: more bits, cuts rarer */
    uint64_t mask_easy;     /* cut test from avg on: fewer bits, cuts likelier */
    uint64_t fp;            /* rolling gear hash of the current chunk's last 64 bytes */
    uint32_t len;           /* bytes in the current chunk so far */
};

/* avg: a power of two between 4 KiB and max/4 (callers pass checked values); max <= 16 MiB. */
void asr_cdc_init(struct asr_cdc *c, uint32_t avg, uint32_t max);
/* Forgets the current chunk: the next byte starts a new one (a volume or zero run ended it). */
void asr_cdc_reset(struct asr_cdc *c);
/* Feeds p[0..n) as the continuation of the current chunk. Returns how many of those bytes belong
 * to it; *cut tells whether the chunk ends after them (the state is then already reset for the
 * next chunk). Without a cut the return value is n. */
size_t asr_cdc_feed(struct asr_cdc *c, const uint8_t *p, size_t n, bool *cut);

/* ---- the dedup index: content hash and length -> chunk id --------------------------------- */

struct asr_dedup;
int asr_dedup_new(struct asr_dedup **out);
void asr_dedup_free(struct asr_dedup *d); /* NULL-safe */
/* Looks key up only: 1 and *found_id when present, 0 when absent. */
int asr_dedup_find(const struct asr_dedup *d, struct asr_hash128 key, uint32_t len, uint64_t *found_id);
/* Looks key up; when absent, inserts it with id. Returns 1 and sets *found_id when present, 0
 * when inserted, -1 when the table could not grow (out of memory). */
int asr_dedup_find_or_add(struct asr_dedup *d, struct asr_hash128 key, uint32_t len, uint64_t id,
                          uint64_t *found_id);
size_t asr_dedup_bytes(const struct asr_dedup *d); /* memory held, for the memory model */

#endif
