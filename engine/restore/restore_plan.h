/* The plan of a restore's pass over an image file or a snapshot (restore_plan.c): its runs of
 * extents in order, the decodes they take their chunks from, and which decoded chunks stay in
 * memory for a later run. Internal to engine/restore. */
#ifndef ASR_RESTORE_PLAN_H
#define ASR_RESTORE_PLAN_H

#include "asr_format.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLAN_NOT_KEPT UINT32_MAX

/* A run of a volume's extents that use the same chunk (or one zero or unreadable extent). A data
 * run takes its chunk from a decode (seq), or from a place among the kept chunks (kept). */
struct plan_unit {
    uint32_t volume;
    uint64_t first, count; /* extents in the index */
    uint64_t ref;
    size_t seq;            /* data runs not kept: the decode they lay */
    uint32_t kept;         /* data runs laid from a kept chunk: its place; else PLAN_NOT_KEPT */
    bool keep_after;       /* such runs: the chunk stays in its place after them */
};

struct restore_plan {
    struct plan_unit *units;
    size_t nunits;
    size_t nseq;        /* decodes */
    size_t *seq_unit;   /* decode -> the run it is made for */
    size_t *last_use;   /* decode -> the last run laying it: its slot goes back to the workers then */
    uint32_t *keep_to;  /* decode -> the place its chunk is copied to after last_use, or PLAN_NOT_KEPT */
    uint32_t places;    /* places for kept chunks the plan uses; each holds one chunk at a time */
};

/* The plan for r's extents, volume by volume; kept chunks add up to at most keep_bytes at once. */
int restore_plan_make(struct asr_reader *r, uint64_t keep_bytes, struct restore_plan *out, struct asr_error *err);
void restore_plan_free(struct restore_plan *p);

#endif
