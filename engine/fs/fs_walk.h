/* Engine-internal: the bookkeeping of a bounded walk of a FAT or exFAT directory tree, which
 * fs_fat.c and fs_exfat.c make so that a damaged allocation map cannot drop a cluster the
 * directories still reference. It owns the directories still to visit (each entered once, so a
 * tree that loops ends), the work budget (a tangle of cross-linked chains stops instead of
 * running for hours), the referenced clusters the allocation map calls free, and merging those
 * into the used map with the clusters the map marks. Clusters are numbered as both formats do:
 * cluster c lies at base + (c - 2) * cluster_bytes. */
#ifndef ASR_FS_WALK_H
#define ASR_FS_WALK_H

#include <stdint.h>

#include "asr_engine.h"

/* A directory still to read: its first cluster, its length in bytes (the walker's own cap when
 * the format records none), and whether its clusters are contiguous rather than chained. */
struct walk_dir {
    uint32_t first;
    uint8_t contiguous;
    uint64_t bytes;
};

struct walk_run {
    uint64_t first, count;
};

struct walk {
    const char *fs;   /* "fat" or "exfat": the prefix of every message */
    uint64_t budget;  /* cluster steps left (chain links followed, clusters checked) */
    /* Directories: a stack of those to read, and an open-addressing set of every first cluster
     * ever pushed (0 marks an empty slot: no cluster is numbered 0). */
    struct walk_dir *todo;
    size_t ntodo, todo_cap;
    uint32_t *seen;
    size_t nseen, seen_slots;
    /* Referenced clusters the allocation map leaves free, in the order found; sorted and merged
     * by walk_finish. */
    struct walk_run *extra;
    size_t nextra, extra_cap;
};

/* Loop detection along one cluster chain (Brent's method): a loop is found within twice its
 * length, so a chain that runs in circles costs little however long the length that bounds it. */
struct walk_loop {
    uint32_t tortoise;
    uint64_t power, lam;
};

void walk_loop_start(struct walk_loop *l, uint32_t first);
/* Whether next, the link out of the chain's last cluster, closes a loop. */
int walk_loops(struct walk_loop *l, uint32_t next);

/* Starts a walk of a volume of `clusters` clusters, with a budget proportional to it. */
void walk_init(struct walk *wk, const char *fs, uint64_t clusters);
void walk_free(struct walk *wk);

/* Takes n steps from the budget: ASR_E_CORRUPT, saying the tree is too tangled, when spent. */
int walk_spend(struct walk *wk, uint64_t n, struct asr_error *err);

/* Queues a directory unless one starting at the same cluster was queued before. ASR_E_LIMIT past
 * millions of directories: the parser's map then fails with it, and the volume is captured whole. */
int walk_push(struct walk *wk, const struct walk_dir *d, struct asr_error *err);
/* The next directory to read; 0 when none is left. */
int walk_pop(struct walk *wk, struct walk_dir *d);

/* Records clusters [first, first + count) as referenced and to be captured. */
int walk_extra(struct walk *wk, uint64_t first, uint64_t count, struct asr_error *err);
/* Sorts and merges the recorded clusters; returns how many distinct clusters they are. */
uint64_t walk_finish(struct walk *wk);

/* Emits the union of the runs an allocation map marks (fed in increasing order) and the walk's
 * merged extra clusters into out, as byte ranges. */
struct walk_union {
    struct asr_ranges *out;
    const struct walk *wk;
    const char *fs;
    uint64_t base, cluster_bytes;
    size_t next;        /* the first extra run not yet emitted */
    uint64_t first, end; /* the run being built, [first, end); end 0: none */
    uint64_t clusters;   /* clusters emitted so far */
};

void walk_union_begin(struct walk_union *u, struct asr_ranges *out, const struct walk *wk, uint64_t base,
                          uint64_t cluster_bytes);
int walk_union_add(struct walk_union *u, uint64_t first, uint64_t count, struct asr_error *err);
int walk_union_end(struct walk_union *u, struct asr_error *err);

#endif
