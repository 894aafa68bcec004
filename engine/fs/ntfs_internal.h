/* What the NTFS readers share: the boot sector's geometry, $MFT's runs, MFT records read through
 * them with their fixups applied, attributes and runlists (ntfs_records.c), used by fs_ntfs.c (the
 * used-byte map), ntfs_refs.c (what in-use records reference, for that map) and ntfs_lookup.c
 * (path lookup for the critical-volume check). Every value comes from the disk, so each is
 * checked in ntfs_records.c against the window, the record or the attribute before it is used.
 * Private to engine/; not part of asr_engine.h. */
#ifndef ASR_NTFS_INTERNAL_H
#define ASR_NTFS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"
#include "le.h"

#define NTFS_MAX_RECORD (64u << 10)
#define NTFS_FIXUP_STRIDE 512u /* update sequence stride, whatever the sector size */

/* MFT record header flags. */
#define NTFS_RECORD_IN_USE 0x0001u
#define NTFS_RECORD_IS_DIRECTORY 0x0002u

struct ntfs_geom {
    uint32_t sector;   /* bytes per sector */
    uint64_t cluster;  /* bytes per cluster */
    uint64_t sectors;  /* total sectors: the backup boot sector is the one after them */
    uint64_t clusters; /* clusters in the volume; clusters * cluster <= the window's size */
    uint32_t record;   /* bytes per MFT record */
    uint64_t mft_lcn;
};

/* A non-resident attribute's allocation: runs of clusters in VCN order, VCNs [0, vcns) mapped,
 * every run inside the volume. */
struct ntfs_run {
    uint64_t vcn, lcn, len;
};

struct ntfs_runlist {
    struct ntfs_run *v;
    size_t n;
    uint64_t vcns;
};

/* An attribute inside a record ntfs_read_record checked: p + len stays inside bytes in use, and
 * len covers the resident (24) or non-resident (64) header. */
struct ntfs_attr {
    const uint8_t *p;
    uint32_t len;
    bool nonresident;
};

/* An open volume: the geometry, $MFT's runs, and one record buffer (g.record bytes). */
struct ntfs_volume {
    const struct asr_window *w;
    struct ntfs_geom g;
    struct ntfs_runlist mft;
    uint8_t *rec;
    uint8_t boot[512];
};

/* Reads and validates the boot sector, then record 0 straight from the $MFT cluster the boot
 * sector names, for $MFT's own runs. On success v->rec holds record 0; on failure nothing is
 * left allocated. Close with ntfs_close (also after a failed open). */
int ntfs_open(struct ntfs_volume *v, const struct asr_window *w, struct asr_error *err);
void ntfs_close(struct ntfs_volume *v);

/* Reads MFT record rec_no into v->rec, applies its fixups and checks its header (signature,
 * in use, a base record, sizes, its own number), so attribute walks can trust it. */
int ntfs_read_record(struct ntfs_volume *v, uint64_t rec_no, struct asr_error *err);

/* Update-sequence fixups of a multi-sector structure (MFT record, index block) of size bytes;
 * what and no name it in errors. */
int ntfs_apply_fixups(uint8_t *b, uint32_t size, const char *what, uint64_t no, struct asr_error *err);

/* Finds the first attribute of type named name (ASCII; NULL or "" for unnamed) in record r.
 * *found is false when there is none; a malformed attribute chain is an error. */
int ntfs_find_attr(const uint8_t *r, uint64_t rec_no, uint32_t type, const char *name, struct ntfs_attr *a,
                   bool *found, struct asr_error *err);

/* A resident attribute's value, bounds-checked against the attribute. */
int ntfs_resident_value(const struct ntfs_attr *a, uint64_t rec_no, const uint8_t **v, uint32_t *n,
                        struct asr_error *err);

/* The runs of a non-resident attribute that starts at VCN 0 and is neither compressed, encrypted
 * nor sparse (true of the system files and directory indexes read here). rl->v is malloc'd,
 * also on failure: the caller frees it. */
int ntfs_runs(const struct ntfs_attr *a, const struct ntfs_geom *g, uint64_t rec_no, struct ntfs_runlist *rl,
              struct asr_error *err);

/* The unnamed $DATA of a system file. A resident value is returned as found (only $Bitmap may
 * have one, and its caller decides); a non-resident one gets its runs in rl (malloc'd, also on
 * failure: the caller frees it). */
int ntfs_data_runs(const uint8_t *r, uint64_t rec_no, const struct ntfs_geom *g, struct ntfs_attr *a,
                   struct ntfs_runlist *rl, struct asr_error *err);

/* Reads [off, off+len) of a non-resident stream through its runs; ASR_E_CORRUPT when that lies
 * past them. `what` names the stream in a read error ("$MFT record 6"). */
int ntfs_stream_read(const struct asr_window *w, const struct ntfs_geom *g, const struct ntfs_runlist *rl,
                     const char *what, uint64_t off, void *buf, size_t len, struct asr_error *err);

/* What the in-use MFT records reference (ntfs_refs.c): runs of clusters, sorted and merged once
 * collected, plus what the walk met on the way. */
struct ntfs_extent {
    uint64_t lcn, len;
};

struct ntfs_refs {
    struct ntfs_extent *v;
    size_t n, cap;
    uint64_t records;  /* in-use records walked */
    uint64_t torn;     /* of them, failing their update sequence check: read anyway */
    uint64_t damaged;  /* records, attribute chains or runlists taken only as far as they parse */
    uint64_t unmapped; /* records past the runs record 0 maps: not walked */
};

/* Walks every record of $MFT (through v->mft, up to its initialized size) and collects the
 * clusters of the non-resident attributes of the in-use ones. Damage inside a record is counted,
 * not fatal; only a read failure, the memory cap or $MFT's own record failing is. Free r with
 * ntfs_refs_free, also after a failure. */
int ntfs_collect_refs(struct ntfs_volume *v, struct ntfs_refs *r, struct asr_error *err);
void ntfs_refs_free(struct ntfs_refs *r);

/* Replaces used (sorted byte ranges) by its union with r's clusters; *added is the bytes that
 * were not in used before. */
int ntfs_merge_refs(const struct ntfs_refs *r, const struct ntfs_geom *g, struct asr_ranges *used, uint64_t *added,
                    struct asr_error *err);

#endif
