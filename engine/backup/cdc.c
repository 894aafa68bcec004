/* Content-defined chunking (a gear rolling hash with FastCDC's normalized cut test). Chunk
 * boundaries depend only on nearby content, so a file's chunks are the same
 * wherever it sits on disk: copies at unaligned positions deduplicate (SPEC.md, "Chunking").
 * Hand-written: Debian ships no C CDC library, and the loop is a dozen lines. */
#include "cdc.h"
#include "asr_engine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The largest chunk a backup at this average makes (asr_engine.h): the chunker's max. */
uint32_t asr_backup_max_chunk(uint32_t avg_chunk)
{
    return 4 * (avg_chunk ? avg_chunk : CDC_DEFAULT_AVG);
}

/* The gear table is part of the chunking definition (same table, same cuts, so a later backup
 * of unchanged data chunks the same way): 256 values of splitmix64 from a fixed seed. */
static uint64_t gear[256];

static void gear_init(void)
{
    if (gear[0])
        return;
    uint64_t x = 0x6173726967656172ull; /* "asrigear" */
    for (int i = 0; i < 256; i++) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        gear[i] = z ^ (z >> 31);
    }
}

/* The top `bits` bits: in a gear hash they depend on the most recent 64 bytes. */
static uint64_t top_mask(unsigned bits)
{
    return bits ? ~0ull << (64 - bits) : 0;
}

void cdc_init(struct cdc *c, uint32_t avg, uint32_t max)
{
    gear_init();
    unsigned bits = 0;
    while ((1u << bits) < avg)
        bits++;
    c->avg = avg;
    c->max = max;
    c->min = avg / 4;
    /* Normalization level 2: cut two bits harder before avg and two bits easier after, which
     * narrows the size distribution around avg (FastCDC, Xia et al., USENIX ATC 2016). */
    c->mask_hard = top_mask(bits + 2);
    c->mask_easy = top_mask(bits - 2);
    cdc_reset(c);
}

void cdc_reset(struct cdc *c)
{
    c->fp = 0;
    c->len = 0;
}

/* Rolls over p[i..end) looking for a cut under mask; returns the index after the cut byte, or
 * end when there is none. */
static size_t roll(uint64_t *fp, const uint8_t *p, size_t i, size_t end, uint64_t mask)
{
    const size_t cut = (size_t)1 << (sizeof(size_t) * 8 - 1); /* high bit of the result: a cut */
    uint64_t h = *fp;
/* Two bytes into the hash and a cut test after each. The loop-carried chain is what bounds a
 * gear hash (one shift-add a byte); here it advances two bytes per step, h = 4h + (2g0 + g1),
 * with the partial sum and the hash after the first byte computed beside it. The hashes, and so
 * the cuts, are exactly those of the byte-at-a-time definition. */
#define ROLL_PAIR(k)                                          \
    do {                                                      \
        uint64_t g0 = gear[p[i + (k)]], g1 = gear[p[i + (k) + 1]]; \
        uint64_t h1 = (h << 1) + g0;                          \
        h = (h << 2) + ((g0 << 1) + g1);                      \
        if (!(h1 & mask)) {                                   \
            *fp = h1;                                         \
            return (i + (k) + 1) | cut;                       \
        }                                                     \
        if (!(h & mask)) {                                    \
            *fp = h;                                          \
            return (i + (k) + 2) | cut;                       \
        }                                                     \
    } while (0)
    for (; i + 8 <= end; i += 8) {
        ROLL_PAIR(0);
        ROLL_PAIR(2);
        ROLL_PAIR(4);
        ROLL_PAIR(6);
    }
#undef ROLL_PAIR
    for (; i < end; i++) {
        h = (h << 1) + gear[p[i]];
        if (!(h & mask)) {
            *fp = h;
            return (i + 1) | cut;
        }
    }
    *fp = h;
    return i;
}

size_t cdc_feed(struct cdc *c, const uint8_t *p, size_t n, bool *cut)
{
    const size_t cut_bit = (size_t)1 << (sizeof(size_t) * 8 - 1);
    size_t i = 0;
    *cut = false;
    if (c->len < c->min) { /* no cut can fall below min: skip hashing there */
        size_t skip = c->min - c->len < n ? c->min - c->len : n;
        i = skip;
        c->len += (uint32_t)skip;
    }
    while (i < n) {
        uint32_t limit = c->len < c->avg ? c->avg : c->max;
        size_t end = i + (limit - c->len < n - i ? limit - c->len : n - i);
        size_t r = roll(&c->fp, p, i, end, c->len < c->avg ? c->mask_hard : c->mask_easy);
        size_t stop = r & ~cut_bit;
        c->len += (uint32_t)(stop - i);
        i = stop;
        if ((r & cut_bit) || c->len >= c->max) {
            *cut = true;
            cdc_reset(c);
            return i;
        }
    }
    return n;
}

#define WINDOW 64u /* bytes a gear hash depends on */

/* One hash chain over p[0..n), cold at p[0]: candidates only once its window is whole. For reads
 * too short to split into lanes. */
static void scan_one_lane(const struct cdc *c, const uint8_t *p, size_t n, struct cdc_marks *m)
{
    const size_t cut_bit = (size_t)1 << (sizeof(size_t) * 8 - 1);
    uint64_t h = 0;
    size_t i = 0;
    for (; i < n && i < WINDOW - 1; i++) /* the first window is not whole yet: no candidates */
        h = (h << 1) + gear[p[i]];
    while (i < n) {
        size_t r = roll(&h, p, i, n, c->mask_easy);
        i = r & ~cut_bit;
        if (!(r & cut_bit))
            break;
        if (m->n == m->cap) { /* the rest is left to the chunker's own rolling */
            m->complete_until = i - 1;
            break;
        }
        m->v[m->n++] = (struct cdc_mark){(uint32_t)i, !(h & c->mask_hard)};
    }
}

/* Candidates of one lane go to its own quarter of m->v until it is full; `stop` is then the
 * byte where its listing ends. */
struct lane {
    size_t start, count, stop;
    uint64_t h;
};

static void lane_note(const struct cdc *c, struct cdc_marks *m, struct lane *ln, size_t region, size_t room,
                      size_t byte)
{
    if (ln->stop != SIZE_MAX)
        return;
    if (ln->count == room) {
        ln->stop = byte;
        return;
    }
    m->v[region + ln->count++] = (struct cdc_mark){(uint32_t)(byte + 1), !(ln->h & c->mask_hard)};
}

#define LANES 4

/* Out of line and cold, so that the scan loop keeps its registers for the four chains. */
static __attribute__((noinline, cold)) void note_lanes(const struct cdc *c, struct cdc_marks *m,
                                                       struct lane *ln, size_t room, size_t i, const uint64_t *hs)
{
    for (size_t l = 0; l < LANES; l++) {
        ln[l].h = hs[l];
        if (!(hs[l] & c->mask_easy))
            lane_note(c, m, &ln[l], l * room, room, ln[l].start + i);
    }
}

void cdc_scan(const struct cdc *c, const uint8_t *p, size_t n, struct cdc_marks *m)
{
    m->n = 0;
    m->complete_until = n;
    if (n < LANES * WINDOW) {
        scan_one_lane(c, p, n, m);
        return;
    }
    /* One chain is bound by its own latency (a shift-add and a test a byte): four independent
     * chains over four quarters of the read, each warmed on the 63 bytes before its quarter so
     * its window is whole from the first byte it tests, run 2.5x faster on one core (1.7 -> 4.3
     * GB/s measured on this project's 2-core Xeon VM, rolling 2.2). The candidates are the same;
     * each lane lists its own, in order. */
    size_t quarter = (n - (WINDOW - 1)) / LANES, room = m->cap / LANES;
    struct lane ln[LANES];
    for (size_t l = 0; l < LANES; l++) {
        ln[l] = (struct lane){.start = WINDOW - 1 + l * quarter, .stop = SIZE_MAX};
        for (size_t i = ln[l].start - (WINDOW - 1); i < ln[l].start; i++)
            ln[l].h = (ln[l].h << 1) + gear[p[i]];
    }
    const uint8_t *p0 = p + ln[0].start, *p1 = p + ln[1].start, *p2 = p + ln[2].start, *p3 = p + ln[3].start;
    uint64_t h0 = ln[0].h, h1 = ln[1].h, h2 = ln[2].h, h3 = ln[3].h, mask = c->mask_easy;
    for (size_t i = 0; i < quarter; i++) {
        h0 = (h0 << 1) + gear[p0[i]];
        h1 = (h1 << 1) + gear[p1[i]];
        h2 = (h2 << 1) + gear[p2[i]];
        h3 = (h3 << 1) + gear[p3[i]];
        /* Four branches, almost never taken: cheaper than combining the tests into one. */
        if (__builtin_expect(!(h0 & mask), 0) || __builtin_expect(!(h1 & mask), 0) ||
            __builtin_expect(!(h2 & mask), 0) || __builtin_expect(!(h3 & mask), 0))
            note_lanes(c, m, ln, room, i, (const uint64_t[LANES]){h0, h1, h2, h3});
    }
    ln[LANES - 1].h = h3; /* the last lane takes the remainder */
    for (size_t i = ln[LANES - 1].start + quarter; i < n; i++) {
        ln[LANES - 1].h = (ln[LANES - 1].h << 1) + gear[p[i]];
        if (!(ln[LANES - 1].h & mask))
            lane_note(c, m, &ln[LANES - 1], (LANES - 1) * room, room, i);
    }
    for (size_t l = 0; l < LANES; l++) { /* the lanes' lists into one, up to the first that filled */
        memmove(m->v + m->n, m->v + l * room, ln[l].count * sizeof *m->v);
        m->n += ln[l].count;
        if (ln[l].stop != SIZE_MAX) {
            m->complete_until = ln[l].stop;
            break;
        }
    }
}

uint64_t cdc_gear(uint8_t byte)
{
    gear_init();
    return gear[byte];
}

/* The first mark with end >= end. */
static size_t first_mark(const struct cdc_marks *m, size_t end)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].end < end)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t end_chunk(struct cdc *c, size_t take, bool *cut)
{
    *cut = true;
    cdc_reset(c);
    return take;
}

size_t cdc_feed_marked(struct cdc *c, const uint8_t *p, size_t n, const struct cdc_marks *m, size_t at,
                           bool *cut)
{
    /* Marks serve from the first byte whose window lies in p and past min (where hashing of the
     * chunk starts), up to where the scan is complete; bytes before and after are rolled. */
    size_t from = WINDOW - 1;
    if (c->min + from > c->len + from)
        from = c->min - c->len + from;
    size_t until = m->complete_until > at ? m->complete_until - at : 0;
    until = until < n ? until : n;
    if (from >= until)
        return cdc_feed(c, p, n, cut);
    size_t take = cdc_feed(c, p, from, cut);
    if (*cut)
        return take;
    size_t len0 = c->len - from; /* chunk length before p[0] */
    for (size_t k = first_mark(m, at + from + 1); k < m->n && m->v[k].end <= at + until; k++) {
        size_t end = m->v[k].end - at, chunk_len = len0 + end;
        if (chunk_len > c->max)
            break;
        if (chunk_len > c->avg || m->v[k].hard) /* the byte at chunk_len - 1 takes the easy test from avg on */
            return end_chunk(c, end, cut);
    }
    if (len0 + until >= c->max)
        return end_chunk(c, c->max - len0, cut);
    c->len = (uint32_t)(len0 + until);
    c->fp = 0;
    for (size_t i = until - WINDOW; i < until; i++) /* until > from >= 63: a whole window in p */
        c->fp = (c->fp << 1) + gear[p[i]];
    if (until == n)
        return n;
    return until + cdc_feed(c, p + until, n - until, cut);
}
