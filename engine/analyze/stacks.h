/* The machine's storage stacks as stacks.c assembles them, for the modules that judge what is
 * inside (bootscan.c: roots, their fstab, and what the machine needs to boot). Internal to the
 * engine. */
#ifndef ASR_STACKS_H
#define ASR_STACKS_H
#include <stdbool.h>
#include <stddef.h>

#include "asr_engine.h"
#include "lvm.h"
#include "window_map.h"

/* A partition of the disks that holds an LVM2 PV. */
struct pv_slot {
    struct asr_volume_info *vol;
    struct asr_window w;       /* the partition */
    struct lvm_pv_info *info;  /* NULL when its label or metadata could not be read */
    size_t vg;                 /* index in asr_machine.vgs; SIZE_MAX when in none */
    bool critical_own;         /* critical before its LVs were looked at (a type, a live mount): all
                                  its LVs are then taken with it */
};

/* A volume group as its PVs on these disks make it up. */
struct vg_set {
    const struct lvm_vg *meta; /* the newest metadata copy among its PVs */
    size_t *slot;              /* per meta->pvs[k]: index in asr_machine.pvs, SIZE_MAX when missing */
    bool complete;             /* every PV it lists is on these disks */
};

/* A logical volume (one per asr_machine.stacked entry, same index). */
struct lv_slot {
    size_t vg;
    const struct lvm_lv *lv;
    bool mapped;         /* its bytes map onto PVs: w reads it */
    bool auxiliary;      /* hidden, or of a type not mapped: taken whole with its VG */
    struct window_map map;
    struct asr_window w;
};

struct asr_machine {
    struct asr_disk *const *disks;
    struct asr_volume_info *const *vols;
    const size_t *counts;
    uint32_t ndisks;
    struct pv_slot *pvs;
    size_t npvs;
    struct vg_set *vgs;
    size_t nvgs;
    struct asr_stacked_volume *stacked;
    struct lv_slot *lvs;
    size_t nlvs;
    char *warnings;
    size_t wlen;
};

/* Appends one line to m->warnings (printf-style); out of memory loses the line, not the run. */
void machine_warn(struct asr_machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Marks the PV partitions of the LV's VG critical (when not already), saying which LV needs them. */
void stacks_need_pvs(struct asr_machine *m, size_t lv);

/* What the root filesystems found on the disks say the machine needs to boot (bootscan.c): run
 * by asr_machine_analyze once the stacks are read. */
int bootscan_analyze(struct asr_machine *m, struct asr_error *err);

#endif
