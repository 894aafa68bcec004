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

/* ---- cut candidates found ahead, on other threads ------------------------------------------
 * The hash at a byte depends only on the 64 bytes ending there (older ones are shifted out), so
 * whether a byte passes the cut test can be found for a whole read buffer before the chunker
 * reaches it; only the size rules (min, avg, max) need the chunk's start. A scan lists the bytes
 * that pass the easy test (the hard one tests more bits, so it passes only where the easy one
 * does); asr_cdc_feed_marked then cuts exactly where asr_cdc_feed would, without rolling. */

struct asr_cdc_mark {
    uint32_t end;  /* the byte before this offset passes the easy test: a cut could fall here */
    uint32_t hard; /* it passes the hard test too */
};

struct asr_cdc_marks {
    struct asr_cdc_mark *v; /* ascending end */
    size_t n, cap;
    size_t complete_until;  /* every candidate with end <= this is listed (cap may stop a scan) */
};

/* Lists the candidates of p[0..n) whose 64-byte window lies inside p (end >= 64), up to m->cap;
 * n below 4 GiB (ends are 32-bit). */
void asr_cdc_scan(const struct asr_cdc *c, const uint8_t *p, size_t n, struct asr_cdc_marks *m);
/* The gear table's value for a byte: for tests that check the scan against the definition. */
uint64_t asr_cdc_gear(uint8_t byte);
/* asr_cdc_feed with the candidates of a scanned buffer: p[0..n) is contiguous in it, starting at
 * offset `at`. The same return value, cuts and state as asr_cdc_feed. */
size_t asr_cdc_feed_marked(struct asr_cdc *c, const uint8_t *p, size_t n, const struct asr_cdc_marks *m, size_t at,
                           bool *cut);

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
