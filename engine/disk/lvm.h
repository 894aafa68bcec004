/* LVM2 physical volumes read from the disk itself: the PV label, the metadata area's circular
 * buffer and the VG's text metadata, then where each logical volume's bytes lie on its PVs.
 * Hand-written because Debian ships no library that reads LVM2 metadata without device-mapper
 * (liblvm2app is gone, lvm2's own tools need the kernel driver to map an LV) and the kernels
 * asrimg runs on may have none. Every byte read is untrusted: sizes are capped before
 * allocating, checksums checked, references between PVs, LVs and extents bounds-checked.
 * Maps linear and striped segments; records every other segment type by name, unmapped (a RAID
 * or thin LV's data lies in hidden LVs whose segments are striped areas). Internal to the
 * engine. */
#ifndef ASR_LVM_H
#define ASR_LVM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

#define LVM_METADATA_MAX (1u << 20) /* text metadata larger than this is refused (ASR_E_LIMIT) */

struct lvm_stripe {
    size_t pv;   /* index into lvm_vg.pvs */
    uint64_t pe; /* first physical extent of this stripe's area on that PV */
};

struct lvm_segment {
    uint64_t start_extent; /* in the LV */
    uint64_t extent_count; /* in the LV, over all stripes */
    uint32_t stripe_count; /* 1: linear */
    uint64_t stripe_size;  /* sectors; 0 when linear */
    struct lvm_stripe *stripes;
    char *type; /* NULL: striped (linear). Else a type not mapped ("raid1", "thin", ...): no stripes */
};

struct lvm_lv {
    char *name, *uuid;
    char **status; /* "READ", "WRITE", "VISIBLE", ... */
    size_t nstatus;
    struct lvm_segment *segs;
    size_t nsegs;
    uint64_t extents; /* sum of the segments' extent_count */
};

struct lvm_pv {
    char *name;   /* "pv0": the metadata's key, what stripes name */
    char *uuid;   /* 38-character form with dashes, as the metadata writes it */
    char *device; /* the device it was last seen on: a hint only */
    uint64_t dev_size, pe_start, pe_count; /* sectors, sectors, extents */
};

struct lvm_vg {
    char *name, *uuid;
    uint64_t seqno;
    uint64_t extent_size; /* sectors */
    struct lvm_pv *pvs;
    size_t npvs;
    struct lvm_lv *lvs;
    size_t nlvs;
};

struct lvm_pv_info {
    char uuid[33];        /* the label's PV UUID, 32 characters without dashes */
    uint64_t device_size; /* bytes, as the label records it */
    uint64_t data_offset; /* bytes: the first data area's start (pe_start) */
    bool has_vg;          /* false: an orphan PV, no VG metadata */
    size_t this_pv;       /* index of this PV in vg.pvs when has_vg */
    struct lvm_vg vg;
};

/* One stripe area of an LV segment on one PV: LV bytes [lv_off, lv_off+lv_len) are spread over
 * stripe_count areas in stripe_bytes chunks taken in turn (one area, no spreading, when linear);
 * this area is bytes [pv_off, pv_off+len) of PV `pv`. */
struct lvm_area {
    size_t pv;
    uint64_t pv_off, len;
    uint64_t lv_off, lv_len;
    uint32_t stripe, stripe_count;
    uint64_t stripe_bytes;
};

/* The PV label and the current VG metadata of the PV in w: of its metadata areas' copies, the
 * newest (highest seqno) that reads and parses; when none does, the first one's error.
 * Other PVs' copies are not compared here (the caller holds them). ASR_E_CORRUPT when there is no label
 * or a checksum or a rule fails, ASR_E_LIMIT for metadata over LVM_METADATA_MAX,
 * ASR_E_UNSUPPORTED naming a segment type this reader does not handle, ASR_E_IO, ASR_E_NOMEM. */
int lvm_read_pv(const struct asr_window *w, struct lvm_pv_info **out, struct asr_error *err);
void lvm_pv_info_free(struct lvm_pv_info *p); /* NULL-safe */

/* The text metadata alone (len bytes, a NUL ends it early) into *vg; the same errors. */
int lvm_parse_metadata(const char *text, size_t len, struct lvm_vg *vg, struct asr_error *err);
void lvm_vg_free(struct lvm_vg *vg);

/* The LV's areas on its PVs, in LV order (segment, then stripe; unmapped segments have none):
 * *out (free()) and *n. */
int lvm_lv_map(const struct lvm_vg *vg, const struct lvm_lv *lv, struct lvm_area **out, size_t *n,
               struct asr_error *err);
/* Where LV byte lv_off lies: PV index, byte on that PV (from the PV's start, pe_start included)
 * and how many bytes from there are contiguous on that PV. ASR_E_ARG past the LV's end,
 * ASR_E_UNSUPPORTED naming the type in an unmapped segment. */
int lvm_lv_locate(const struct lvm_vg *vg, const struct lvm_lv *lv, uint64_t lv_off, size_t *pv, uint64_t *pv_off,
                  uint64_t *contig, struct asr_error *err);
/* The type of the LV's first segment that is not mapped (not linear or striped), or NULL when
 * every byte of the LV maps onto PVs. */
const char *lvm_lv_unmapped(const struct lvm_lv *lv);
/* The LV named name, or NULL. */
const struct lvm_lv *lvm_find_lv(const struct lvm_vg *vg, const char *name);

#endif
