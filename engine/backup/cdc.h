/* Content-defined chunking for the backup pipeline (backup.c).
 * Internal to the engine; tests include it to check the chunker's properties directly. */
#ifndef ASR_CDC_H
#define ASR_CDC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_format.h"

#define CDC_DEFAULT_AVG (256u << 10) /* the average chunk size when none is asked for */

/* ---- the chunker: FastCDC-style gear hash with normalized chunking ------------------------ */

struct cdc {
    uint32_t min, avg, max; /* chunk sizes: no cut before min, always one at max */
    uint64_t mask_hard;     /* cut test below avg: more bits, cuts rarer */
    uint64_t mask_easy;     /* cut test from avg on: fewer bits, cuts likelier */
    uint64_t fp;            /* rolling gear hash of the current chunk's last 64 bytes */
    uint32_t len;           /* bytes in the current chunk so far */
};

/* avg: a power of two between 4 KiB and max/4 (callers pass checked values); max <= 16 MiB. */
void cdc_init(struct cdc *c, uint32_t avg, uint32_t max);
/* Forgets the current chunk: the next byte starts a new one (a volume or zero run ended it). */
void cdc_reset(struct cdc *c);
/* Feeds p[0..n) as the continuation of the current chunk. Returns how many of those bytes belong
 * to it; *cut tells whether the chunk ends after them (the state is then already reset for the
 * next chunk). Without a cut the return value is n. */
size_t cdc_feed(struct cdc *c, const uint8_t *p, size_t n, bool *cut);

/* ---- cut candidates found ahead, on other threads ------------------------------------------
 * The hash at a byte depends only on the 64 bytes ending there (older ones are shifted out), so
 * whether a byte passes the cut test can be found for a whole read buffer before the chunker
 * reaches it; only the size rules (min, avg, max) need the chunk's start. A scan lists the bytes
 * that pass the easy test (the hard one tests more bits, so it passes only where the easy one
 * does); cdc_feed_marked then cuts exactly where cdc_feed would, without rolling. */

struct cdc_mark {
    uint32_t end;  /* the byte before this offset passes the easy test: a cut could fall here */
    uint32_t hard; /* it passes the hard test too */
};

struct cdc_marks {
    struct cdc_mark *v; /* ascending end */
    size_t n, cap;
    size_t complete_until;  /* every candidate with end <= this is listed (cap may stop a scan) */
};

/* Lists the candidates of p[0..n) whose 64-byte window lies inside p (end >= 64), up to m->cap;
 * n below 4 GiB (ends are 32-bit). */
void cdc_scan(const struct cdc *c, const uint8_t *p, size_t n, struct cdc_marks *m);
/* The gear table's value for a byte: for tests that check the scan against the definition. */
uint64_t cdc_gear(uint8_t byte);
/* cdc_feed with the candidates of a scanned buffer: p[0..n) is contiguous in it, starting at
 * offset `at`. The same return value, cuts and state as cdc_feed. */
size_t cdc_feed_marked(struct cdc *c, const uint8_t *p, size_t n, const struct cdc_marks *m, size_t at,
                           bool *cut);

#endif
