/* The bookkeeping of a bounded FAT/exFAT directory-tree walk (fs_walk.h): directories to visit,
 * each once; a work budget; the referenced clusters the allocation map calls free, merged into
 * the used map. Memory grows with the tree and the damage found, never with the volume's size,
 * and stops at fixed caps (the caller then captures the volume whole). */
#include "fs_walk.h"
#include "grow.h"

#include <stdlib.h>
#include <string.h>

/* A sound volume references each cluster once, from one chain or one directory entry: four
 * times the cluster count (plus room for many empty files) leaves ample margin for the few
 * cross-links of a damaged one, and stops a crafted web of chains that all run into one long
 * tail, which would otherwise be walked once per entry. */
#define BUDGET_PER_CLUSTER 4u
#define BUDGET_SLACK (1ull << 20)
/* More directories than this, or more separate runs of referenced clusters the allocation map
 * leaves free, and the metadata is beyond trusting (32 and 16 MiB of bookkeeping). */
#define MAX_DIRS (1u << 22)
#define MAX_EXTRA_RUNS (1u << 20)

void walk_init(struct walk *wk, const char *fs, uint64_t clusters)
{
    *wk = (struct walk){.fs = fs, .budget = BUDGET_PER_CLUSTER * (clusters + 2) + BUDGET_SLACK};
}

void walk_free(struct walk *wk)
{
    free(wk->todo);
    free(wk->seen);
    free(wk->extra);
    memset(wk, 0, sizeof *wk);
}

int walk_spend(struct walk *wk, uint64_t n, struct asr_error *err)
{
    if (n > wk->budget)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "%s: directory entries and cluster chains cross-linked beyond use (walk budget spent)", wk->fs);
    wk->budget -= n;
    return ASR_OK;
}

/* A multiplicative hash's high bits: cluster numbers are often multiples of a power of two. */
void walk_loop_start(struct walk_loop *l, uint32_t first) { *l = (struct walk_loop){first, 1, 0}; }

int walk_loops(struct walk_loop *l, uint32_t next)
{
    if (next == l->tortoise)
        return 1;
    if (l->power == l->lam) {
        l->tortoise = next;
        l->power *= 2;
        l->lam = 0;
    }
    l->lam++;
    return 0;
}

static size_t slot_of(uint32_t c, size_t slots) { return (size_t)(((uint64_t)c * 0x9E3779B97F4A7C15ull) >> 32) & (slots - 1); }

/* Adds c to the set of seen first clusters; *fresh says whether it was new. */
static int seen_add(struct walk *wk, uint32_t c, int *fresh, struct asr_error *err)
{
    if (wk->seen_slots) {
        for (size_t i = slot_of(c, wk->seen_slots);; i = (i + 1) & (wk->seen_slots - 1)) {
            if (wk->seen[i] == c) {
                *fresh = 0;
                return ASR_OK;
            }
            if (!wk->seen[i])
                break;
        }
    }
    if (wk->nseen >= MAX_DIRS)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: more than %u directories", wk->fs, MAX_DIRS);
    if (2 * (wk->nseen + 1) > wk->seen_slots) { /* at most half full */
        size_t slots = wk->seen_slots ? 2 * wk->seen_slots : 1024;
        uint32_t *v = calloc(slots, sizeof *v);
        if (!v)
            return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory for the directory walk", wk->fs);
        for (size_t k = 0; k < wk->seen_slots; k++) {
            if (!wk->seen[k])
                continue;
            size_t i = slot_of(wk->seen[k], slots);
            while (v[i])
                i = (i + 1) & (slots - 1);
            v[i] = wk->seen[k];
        }
        free(wk->seen);
        wk->seen = v;
        wk->seen_slots = slots;
    }
    size_t i = slot_of(c, wk->seen_slots);
    while (wk->seen[i])
        i = (i + 1) & (wk->seen_slots - 1);
    wk->seen[i] = c;
    wk->nseen++;
    *fresh = 1;
    return ASR_OK;
}

int walk_push(struct walk *wk, const struct walk_dir *d, struct asr_error *err)
{
    int fresh, rc = seen_add(wk, d->first, &fresh, err);
    if (rc != ASR_OK || !fresh)
        return rc;
    struct walk_dir *todo = asr_grow(wk->todo, &wk->todo_cap, wk->ntodo + 1, sizeof *todo, 64);
    if (!todo)
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory for the directory walk", wk->fs);
    wk->todo = todo;
    wk->todo[wk->ntodo++] = *d;
    return ASR_OK;
}

int walk_pop(struct walk *wk, struct walk_dir *d)
{
    if (!wk->ntodo)
        return 0;
    *d = wk->todo[--wk->ntodo];
    return 1;
}

int walk_extra(struct walk *wk, uint64_t first, uint64_t count, struct asr_error *err)
{
    if (!count)
        return ASR_OK;
    if (wk->nextra) { /* clusters found in order, as along a file, extend the last run */
        struct walk_run *last = &wk->extra[wk->nextra - 1];
        if (first >= last->first && first <= last->first + last->count) {
            if (first + count > last->first + last->count)
                last->count = first + count - last->first;
            return ASR_OK;
        }
    }
    if (wk->nextra == wk->extra_cap && wk->extra_cap >= MAX_EXTRA_RUNS)
        return asr_fail_public(err, ASR_E_LIMIT,
                               "%s: more than %u separate runs of referenced clusters are free in the allocation map",
                               wk->fs, MAX_EXTRA_RUNS);
    struct walk_run *extra = asr_grow(wk->extra, &wk->extra_cap, wk->nextra + 1, sizeof *extra, 64);
    if (!extra)
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory for the directory walk", wk->fs);
    wk->extra = extra;
    wk->extra[wk->nextra++] = (struct walk_run){first, count};
    return ASR_OK;
}

static int by_first(const void *a, const void *b)
{
    const struct walk_run *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

uint64_t walk_finish(struct walk *wk)
{
    if (!wk->nextra)
        return 0;
    qsort(wk->extra, wk->nextra, sizeof *wk->extra, by_first);
    size_t n = 0;
    for (size_t i = 0; i < wk->nextra; i++) {
        struct walk_run r = wk->extra[i];
        if (n && r.first <= wk->extra[n - 1].first + wk->extra[n - 1].count) {
            struct walk_run *last = &wk->extra[n - 1];
            if (r.first + r.count > last->first + last->count)
                last->count = r.first + r.count - last->first;
        } else {
            wk->extra[n++] = r;
        }
    }
    wk->nextra = n;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += wk->extra[i].count;
    return total;
}

void walk_union_begin(struct walk_union *u, struct asr_ranges *out, const struct walk *wk, uint64_t base,
                          uint64_t cluster_bytes)
{
    *u = (struct walk_union){.out = out, .wk = wk, .fs = wk->fs, .base = base, .cluster_bytes = cluster_bytes};
}

static int flush(struct walk_union *u, struct asr_error *err)
{
    if (!u->end)
        return ASR_OK;
    int rc = asr_ranges_add(u->out, u->base + (u->first - 2) * u->cluster_bytes, (u->end - u->first) * u->cluster_bytes);
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "%s: cannot record used clusters %llu..%llu (%s)", u->fs,
                               (unsigned long long)u->first, (unsigned long long)(u->end - 1), asr_status_name(rc));
    u->clusters += u->end - u->first;
    u->end = 0;
    return ASR_OK;
}

/* Runs come in increasing order of their first cluster, so a run either joins the one being
 * built (touching or overlapping it) or starts after it. */
static int take(struct walk_union *u, uint64_t first, uint64_t count, struct asr_error *err)
{
    if (u->end && first <= u->end) {
        if (first + count > u->end)
            u->end = first + count;
        return ASR_OK;
    }
    int rc = flush(u, err);
    u->first = first;
    u->end = first + count;
    return rc;
}

int walk_union_add(struct walk_union *u, uint64_t first, uint64_t count, struct asr_error *err)
{
    int rc = ASR_OK;
    while (rc == ASR_OK && u->next < u->wk->nextra && u->wk->extra[u->next].first <= first) {
        rc = take(u, u->wk->extra[u->next].first, u->wk->extra[u->next].count, err);
        u->next++;
    }
    return rc == ASR_OK && count ? take(u, first, count, err) : rc;
}

int walk_union_end(struct walk_union *u, struct asr_error *err)
{
    int rc = walk_union_add(u, UINT64_MAX, 0, err);
    return rc == ASR_OK ? flush(u, err) : rc;
}
