/* Linux md RAID members read from the disk itself: the superblock (metadata 0.90, 1.0, 1.1,
 * 1.2) of a partition or whole disk that belongs to an array, and where the array's bytes lie
 * on its members. Hand-written because mdadm has no library and the machines asrimg runs on may
 * have no md driver to assemble the array. Every byte read is untrusted: checksums are checked
 * as mdadm computes them, every offset and size bounds-checked against the member before use.
 * Maps RAID1, RAID0 (members of one size) and RAID10 near=2; reads but does not map the other
 * levels. Internal to the engine. */
#ifndef ASR_MD_H
#define ASR_MD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

#define MD_ROLE_SPARE 0xFFFFu  /* 1.x dev_roles value; a 0.90 member not active in sync */
#define MD_ROLE_FAULTY 0xFFFEu
#define MD_ROLE_JOURNAL 0xFFFDu /* 1.x: the write journal of a raid4/5/6 array, no data role */
#define MD_MAX_DEVS 1920       /* 1.x: (4096 - 256) / 2 roles fill the largest superblock */

#define MD_LEVEL_LINEAR (-1)

struct md_member {
    bool found;         /* an md superblock's magic was seen, even when it was then refused */
    int version;        /* 90, 100, 110 or 120 */
    uint8_t uuid[16];   /* the array's UUID, bytes in the order mdadm prints them */
    char uuid_text[36]; /* mdadm's form: "xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx" */
    uint8_t dev_uuid[16]; /* 1.x: this member's own UUID (zeros for 0.90) */
    char name[33];      /* 1.x set_name ("host:name"); "" for 0.90 */
    int level;          /* -1 linear, 0, 1, 4, 5, 6, 10 */
    uint32_t layout;
    uint64_t chunk;     /* bytes; 0 when the level has none */
    uint32_t raid_disks;
    uint32_t role;      /* 0 .. raid_disks-1, MD_ROLE_SPARE, MD_ROLE_FAULTY or MD_ROLE_JOURNAL */
    uint64_t events;
    uint64_t ctime;     /* seconds */
    uint32_t feature_map; /* 1.x feature bits as written */
    bool reshaping;     /* a reshape is under way: the layout is changing, nothing is mapped */
    /* Bytes of the member's window. */
    uint64_t data_offset, data_size; /* the data area this member gives the array */
    uint64_t dev_used;                /* per-member size the array uses (1.x size, 0.90 size) */
    uint64_t array_size;              /* the array's size, as if every member were this one's
                                         size; 0 for linear (it needs every member) */
    uint64_t super_offset, super_bytes;
    uint64_t bitmap_offset, bitmap_bytes; /* internal write-intent bitmap; 0 bytes: none */
    uint64_t bblog_offset, bblog_bytes;   /* 1.x bad-block log; 0 bytes: none */
};

/* The md superblock of the member in w (a partition or a whole disk): 1.2 at byte 4096, 1.1 at
 * byte 0, 1.0 8 KiB before the end (rounded down to 4 KiB), 0.90 64 KiB before the end
 * (rounded down to 64 KiB). When several are valid, the newest by creation time wins (a
 * leftover of an older array). out->found says whether there was a superblock at all:
 *   ASR_OK                           a member, out filled;
 *   ASR_E_CORRUPT, out->found false  "no md superblock": w is not a member;
 *   ASR_E_CORRUPT, out->found true   a damaged member: a checksum or a bound failed (named);
 *   ASR_E_UNSUPPORTED                a superblock of a version, byte order or level not read
 *                                    here (named);
 *   ASR_E_IO.
 * Messages: "md: superblock 1.2 at byte 4096 of PATH: what". */
int md_read_member(const struct asr_window *w, struct md_member *out, struct asr_error *err);

/* Short name of a level ("raid1", "linear", ...), or NULL for one this reader refuses. */
const char *md_level_name(int level);

/* Whether members[0..n) are members of one array as it stands: same UUID, level, layout, chunk,
 * raid_disks and used size per device, the same events count (a stale member is named), no role held twice, every
 * active role present. ASR_E_CORRUPT naming the first rule broken; missing roles are listed
 * ("roles 1, 3 missing"), and *degraded (may be NULL) is then set instead of failing when the
 * remaining members still hold every byte (RAID1 with one member, RAID10 with one of each
 * pair): the caller decides whether a degraded array will do. */
int md_check_members(const struct md_member *members, size_t n, bool *degraded, struct asr_error *err);

/* Where byte array_off of the array lies: the member (index into members, of one array as
 * md_check_members says), the byte on that member's window (data_offset included) and how many
 * bytes from there are contiguous on it (to the end of the chunk, or of the data for RAID1).
 * RAID1: the first active member; RAID0: chunks striped over the members by role (members of
 * one size only; the multi-zone layout of unequal members is refused by name); RAID10 near=2:
 * the first present copy. ASR_E_ARG past the array's end, ASR_E_UNSUPPORTED for other levels,
 * layouts or a reshape, ASR_E_CORRUPT when no present member holds the byte. */
int md_array_locate(const struct md_member *members, size_t n, uint64_t array_off, size_t *member,
                    uint64_t *member_off, uint64_t *contig, struct asr_error *err);
/* The same for one copy of the byte: copy < md_copies (RAID10 near=2: the two slots holding it, in
 * slot order; RAID0: its only place; RAID1: the first active member, as above). A copy whose
 * member is not present: ASR_OK with *member = n (and *contig as far as that copy runs), so that
 * a caller writing every copy can skip it. */
int md_array_locate_copy(const struct md_member *members, size_t n, uint64_t array_off, uint32_t copy, size_t *member,
                         uint64_t *member_off, uint64_t *contig, struct asr_error *err);
/* How many copies md_array_locate_copy knows for each byte of the array members[0] is of. */
uint32_t md_copies(const struct md_member *m);

#endif
