/* The machine's storage stacks as stacks.c assembles them, for the modules that judge what is
 * inside (bootscan.c: roots, their fstab, and what the machine needs to boot) and record them
 * (stack_record.c); machine.c runs them in turn. Every volume, a
 * partition of a disk or one inside a stack (an md array, an LVM2 LV), is a node; a stacked
 * node reads through a window pieced together from its parents' windows, and what it captures
 * is pushed down onto them until it lands on partitions. Internal to the engine. */
#ifndef ASR_STACKS_H
#define ASR_STACKS_H
#include <stdbool.h>
#include <stddef.h>

#include "asr_engine.h"
#include "luks.h"
#include "lvm.h"
#include "md.h"
#include "window_map.h"

enum node_kind { NODE_PARTITION, NODE_MD, NODE_LUKS, NODE_LV };

/* Byte ranges gathered in any order (sorted and merged when they land on a partition). */
struct pieces {
    struct asr_range *v;
    size_t n, cap;
};

struct node {
    enum node_kind kind;
    struct asr_volume_info *vol; /* a partition's (the disk's array), or sv.info */
    struct asr_stacked_volume sv; /* stacked nodes: what asr_machine_stacked lists */
    struct asr_window w;          /* how to read it: a run of a disk, or map's window */
    struct window_map map;        /* stacked nodes: pieces of their parents' windows */
    bool readable;                /* w reads the whole volume (a stacked node may not map) */
    bool critical_own;            /* partitions: critical before the stacks were looked at */
    bool auxiliary;               /* LVs: hidden or of a type not mapped, taken whole with the VG */
    struct pieces take;           /* bytes of it the nodes above need captured */
    struct pieces clear;          /* bytes of it the nodes above capture as zeros (their cleared ranges) */
    /* As a PV: its label and VG (pv NULL when not a PV, or unreadable: pv_error). */
    struct lvm_pv_info *pv;
    bool pv_error;
    size_t vg; /* index in asr_machine.vgs, SIZE_MAX when in none */
    /* As an md member (member.found), and the array it is in (index in arrays, SIZE_MAX). */
    struct md_member member;
    bool member_error;
    size_t array;
    /* An LV: its VG and metadata; an array node: its index in arrays. */
    const struct lvm_lv *lv;
    /* A LUKS container: its header (luks.version 0 when it did not read), and the node of its
     * opened volume (SIZE_MAX when no key opened it). An opened volume: its container's node,
     * and the decrypting window's state (w reads through it). */
    struct luks_header luks;
    bool luks_error;
    size_t opened;
    size_t container;
    struct luks_volume *plain;
};

struct vg_set {
    const struct lvm_vg *meta; /* the newest metadata copy among its PVs */
    size_t *pv_node;           /* per meta->pvs[k]: the node holding it, SIZE_MAX when missing */
    bool complete;             /* every PV it lists is on these disks */
};

struct md_set {
    size_t *member_node; /* the member nodes, in the order found */
    struct md_member *members;
    size_t n;
    size_t node; /* the array's node, SIZE_MAX when the members do not make an array */
};

struct asr_machine {
    struct asr_disk *const *disks;
    struct asr_volume_info *const *vols;
    const size_t *counts;
    uint32_t ndisks;
    const struct asr_machine_options *opt;
    struct node **nodes; /* partitions first, then each stacked node after its parents */
    size_t nnodes, cap;
    struct vg_set *vgs;
    size_t nvgs;
    struct md_set *arrays;
    size_t narrays;
    const struct asr_stacked_volume **stacked; /* the stacked nodes' sv, for asr_machine_stacked */
    size_t nstacked;
    char *warnings;
    size_t wlen;
};

/* Appends one line to m->warnings (printf-style); out of memory loses the line, not the run. */
void machine_warn(struct asr_machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Marks every node under node i critical (when not already), saying which volume needs it. */
void stacks_need_below(struct asr_machine *m, size_t i);
/* Why node i cannot be looked into though it might hold something the machine needs (a
 * damaged PV, an incomplete VG or array, an md level not mapped), or NULL. */
const char *stacks_opaque(const struct asr_machine *m, size_t i);

/* Reads the stacks of m's disks (m->disks, vols, counts, ndisks, opt set): arrays, LUKS volumes,
 * VGs and LVs as nodes, each looked into, and the layers under a critical one made critical. */
int stacks_assemble(struct asr_machine *m, struct asr_error *err);
/* Lists the stacked nodes for asr_machine_stacked, once the decisions are made. */
int stacks_list(struct asr_machine *m, struct asr_error *err);

#endif
