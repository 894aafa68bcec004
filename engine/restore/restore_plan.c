/* The plan of a restore's data pass from an image file or a snapshot (restore_plan.h). Decoding
 * a chunk is most of a restore's CPU (zstd, and for a snapshot the store's keyed hash of the
 * content), and a disk uses some chunks in many places: a file stored more than once, a patched
 * region's base and patch (SPEC.md 19.10). A run takes its chunk from one of the two decodes
 * before it while the workers' slot still holds it; past that, the plan keeps a decoded chunk in
 * memory for its next use when it fits a budget. The plan knows every use in advance, so when the
 * budget is full it gives up the kept chunk needed furthest ahead (Belady's rule: the fewest
 * decodes any cache of that size can do). Measured on the bench disk's first snapshot (5,605
 * chunks): 7,682 decodes without keeping, 5,986 with 64 MiB kept, and from S3 the bytes fetched
 * fell with them, 1,028 MB to 660 (SPEC.md section 18). */
#include "restore_plan.h"

#include "grow.h"

#include <stdlib.h>
#include <string.h>

#define REUSE_BACK 2      /* decodes back a run may take its chunk from, in the workers' slot */
#define KEEP_PLACES 1024u /* chunks kept at once, at most */
#define NONE SIZE_MAX

struct place {
    uint64_t ref;
    size_t next;       /* the run that uses it next */
    uint32_t len;
    bool by_decode;    /* kept by decode `keeper` after its last run, else by run `keeper` */
    size_t keeper;
    size_t free_after; /* not in use: the run after which the pass frees it */
};

struct planner {
    struct asr_reader *r;
    struct restore_plan *p;
    size_t cap_units, cap_seq;
    size_t *next_use;   /* per run: the next data run with its chunk, or NONE */
    uint32_t *place_of; /* per chunk: its place while kept, else PLAN_NOT_KEPT */
    struct place place[KEEP_PLACES];
    uint32_t used_places, nheld;
    uint64_t budget, held;
    uint64_t chunks; /* place_of's entries: data extents refer below it (the reader checks) */
};

static int no_memory(struct asr_error *err)
{
    return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the restore plan");
}

/* The runs of every volume's extents, in order. */
static int group_runs(struct planner *pl, struct asr_error *err)
{
    struct restore_plan *p = pl->p;
    for (uint32_t v = 0; v < asr_reader_volume_count(pl->r); v++) {
        uint64_t count;
        const struct asr_extent *e = asr_reader_extents(pl->r, v, &count);
        for (uint64_t i = 0; i < count;) {
            uint64_t j = i + 1, ref = e[i].ref;
            while (ref < ASR_REF_UNREADABLE && j < count && e[j].ref == ref)
                j++;
            struct plan_unit *g = asr_grow(p->units, &pl->cap_units, p->nunits + 1, sizeof *g, 1024);
            if (!g)
                return no_memory(err);
            p->units = g;
            g[p->nunits++] = (struct plan_unit){.volume = v, .first = i, .count = j - i, .ref = ref,
                                                .kept = PLAN_NOT_KEPT};
            i = j;
        }
    }
    return ASR_OK;
}

/* next_use of every run, and place_of ready. Without the memory for them (or with more runs than
 * a place_of entry can name) nothing is kept: the restore decodes as it would with a budget of 0. */
static void find_next_uses(struct planner *pl)
{
    struct restore_plan *p = pl->p;
    uint64_t chunks = pl->chunks = asr_reader_info(pl->r)->chunk_count;
    if (!pl->budget || !chunks || p->nunits >= PLAN_NOT_KEPT || chunks > SIZE_MAX / sizeof *pl->place_of ||
        !(pl->place_of = malloc((size_t)chunks * sizeof *pl->place_of)) ||
        !(pl->next_use = malloc((p->nunits ? p->nunits : 1) * sizeof *pl->next_use))) {
        pl->budget = 0;
        return;
    }
    memset(pl->place_of, 0xff, (size_t)chunks * sizeof *pl->place_of); /* as "last seen": none */
    for (size_t i = p->nunits; i-- > 0;) {
        uint64_t ref = p->units[i].ref;
        pl->next_use[i] = NONE;
        if (ref >= chunks)
            continue;
        if (pl->place_of[ref] != PLAN_NOT_KEPT)
            pl->next_use[i] = pl->place_of[ref];
        pl->place_of[ref] = (uint32_t)i;
    }
    memset(pl->place_of, 0xff, (size_t)chunks * sizeof *pl->place_of);
}

static size_t add_decode(struct planner *pl, size_t run, struct asr_error *err)
{
    struct restore_plan *p = pl->p;
    if (p->nseq == pl->cap_seq) {
        size_t cap = pl->cap_seq ? 2 * pl->cap_seq : 1024;
        size_t *su = realloc(p->seq_unit, cap * sizeof *su);
        if (su)
            p->seq_unit = su;
        size_t *lu = su ? realloc(p->last_use, cap * sizeof *lu) : NULL;
        if (lu)
            p->last_use = lu;
        uint32_t *kt = lu ? realloc(p->keep_to, cap * sizeof *kt) : NULL;
        if (!kt) {
            no_memory(err);
            return NONE;
        }
        p->keep_to = kt;
        pl->cap_seq = cap;
    }
    p->seq_unit[p->nseq] = p->last_use[p->nseq] = run;
    p->keep_to[p->nseq] = PLAN_NOT_KEPT;
    return p->nseq++;
}

/* Place k holds no chunk from now on; the pass frees it after run `after`. */
static void vacate(struct planner *pl, uint32_t k, size_t after)
{
    struct place *x = &pl->place[k];
    pl->place_of[x->ref] = PLAN_NOT_KEPT;
    x->free_after = after;
    pl->held -= x->len;
    pl->nheld--;
}

/* The kept chunk in place k is given up after its keeper (its decode is not copied, or its last
 * run frees it): the run that would have used it decodes it again. */
static void give_up(struct planner *pl, uint32_t k)
{
    struct place *x = &pl->place[k];
    if (x->by_decode) {
        pl->p->keep_to[x->keeper] = PLAN_NOT_KEPT;
        vacate(pl, k, x->free_after); /* never filled: free since its last chunk */
    } else {
        pl->p->units[x->keeper].keep_after = false;
        vacate(pl, k, x->keeper);
    }
}

/* A place not in use that the pass has freed by run `by` (a decode's chunk is copied after its
 * last run, which comes before the run that makes the plan keep it: a place freed between the two
 * still holds its chunk then); PLAN_NOT_KEPT when none. */
static uint32_t free_place(struct planner *pl, size_t by)
{
    for (uint32_t k = 0; k < pl->used_places; k++)
        if (pl->place_of[pl->place[k].ref] != k && pl->place[k].free_after < by)
            return k;
    return pl->used_places < KEEP_PLACES ? pl->used_places++ : PLAN_NOT_KEPT;
}

/* The place among those in use whose chunk is needed furthest ahead. */
static uint32_t furthest(const struct planner *pl)
{
    uint32_t best = PLAN_NOT_KEPT;
    for (uint32_t k = 0; k < pl->used_places; k++)
        if (pl->place_of[pl->place[k].ref] == k && (best == PLAN_NOT_KEPT || pl->place[k].next > pl->place[best].next))
            best = k;
    return best;
}

/* Keeps decode s's chunk ref, last laid by run last and next used by run next, when the budget
 * has room or can make it by giving up chunks needed later than it; false when it is itself the
 * one needed furthest ahead. (The budget counts it from the run that decides, a few runs after
 * the copy: the pass may hold a little more, the chunks freed in between.) */
static bool keep(struct planner *pl, uint64_t ref, size_t s, size_t last, size_t next)
{
    uint32_t len = asr_reader_chunk_len(pl->r, ref);
    if (!len || len > pl->budget)
        return false;
    while (pl->held + len > pl->budget || pl->nheld == KEEP_PLACES) {
        uint32_t far = furthest(pl);
        if (far == PLAN_NOT_KEPT || pl->place[far].next <= next)
            return false;
        give_up(pl, far);
    }
    uint32_t k = free_place(pl, last);
    if (k == PLAN_NOT_KEPT)
        return false;
    /* free_after stays: given up before it is filled, the place is free from where it was. */
    pl->place[k] = (struct place){.ref = ref, .next = next, .len = len, .by_decode = true, .keeper = s,
                                  .free_after = pl->place[k].free_after};
    pl->place_of[ref] = k;
    pl->held += len;
    pl->nheld++;
    pl->p->keep_to[s] = k;
    return true;
}

/* A data run whose chunk is kept: laid from its place, which then holds it for its next run or
 * is free. */
static void from_kept(struct planner *pl, size_t run)
{
    struct plan_unit *u = &pl->p->units[run];
    uint32_t k = pl->place_of[u->ref];
    u->kept = k;
    if (pl->next_use[run] != NONE) {
        pl->place[k].next = pl->next_use[run];
        pl->place[k].by_decode = false;
        pl->place[k].keeper = run;
        u->keep_after = true;
    } else {
        u->keep_after = false;
        vacate(pl, k, run);
    }
}

/* Every data run's source: one of the REUSE_BACK decodes before it, a kept chunk, or a new decode;
 * a decode that leaves the recent ones is kept when its chunk is used again. */
static int assign_sources(struct planner *pl, struct asr_error *err)
{
    struct restore_plan *p = pl->p;
    size_t recent[REUSE_BACK], nrecent = 0; /* decodes, the newest first */
    for (size_t i = 0; i < p->nunits; i++) {
        struct plan_unit *u = &p->units[i];
        if (u->ref >= ASR_REF_UNREADABLE)
            continue;
        size_t k = 0;
        while (k < nrecent && p->units[p->seq_unit[recent[k]]].ref != u->ref)
            k++;
        if (k < nrecent) {
            u->seq = recent[k];
            p->last_use[u->seq] = i;
            continue;
        }
        if (pl->budget && u->ref < pl->chunks && pl->place_of[u->ref] != PLAN_NOT_KEPT) {
            from_kept(pl, i);
            continue;
        }
        size_t s = add_decode(pl, i, err);
        if (s == NONE)
            return err->code;
        u->seq = s;
        if (nrecent == REUSE_BACK) {
            size_t old = recent[REUSE_BACK - 1], last = p->last_use[old];
            if (pl->budget && pl->next_use[last] != NONE) /* so its chunk is below chunks */
                keep(pl, p->units[last].ref, old, last, pl->next_use[last]);
        } else {
            nrecent++;
        }
        memmove(recent + 1, recent, (nrecent - 1) * sizeof *recent);
        recent[0] = s;
    }
    p->places = pl->used_places;
    return ASR_OK;
}

int restore_plan_make(struct asr_reader *r, uint64_t keep_bytes, struct restore_plan *out, struct asr_error *err)
{
    *out = (struct restore_plan){0};
    struct planner *pl = calloc(1, sizeof *pl);
    if (!pl)
        return no_memory(err);
    *pl = (struct planner){.r = r, .p = out, .budget = keep_bytes};
    int rc = group_runs(pl, err);
    if (!rc) {
        find_next_uses(pl);
        rc = assign_sources(pl, err);
    }
    free(pl->next_use);
    free(pl->place_of);
    free(pl);
    if (rc)
        restore_plan_free(out);
    return rc;
}

void restore_plan_free(struct restore_plan *p)
{
    free(p->units);
    free(p->seq_unit);
    free(p->last_use);
    free(p->keep_to);
    *p = (struct restore_plan){0};
}
