/* Public API of the engine (engine/): reading disks, their layout, and which bytes of each
 * volume are in use. The CLI and tests use only this header; the engine uses format/ only
 * through asr_format.h. Errors follow format/'s convention: enum asr_status plus a message. */
#ifndef ASR_ENGINE_H
#define ASR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "asr_format.h"

struct asr_store;         /* include/asr_store.h */
struct asr_store_session;

#ifdef __cplusplus
extern "C" {
#endif

/* ---- byte ranges ------------------------------------------------------------------------- */

struct asr_range {
    uint64_t offset, length;
};

/* A sorted list of non-overlapping, non-touching ranges, built in increasing order. */
struct asr_ranges {
    struct asr_range *v;
    size_t n, cap;
};

/* Appends [off, off+len): off must not be below the end of the last range (touching ranges merge).
 * Returns ASR_OK, ASR_E_ARG (out of order) or ASR_E_NOMEM. len 0 is a no-op. */
int asr_ranges_add(struct asr_ranges *r, uint64_t off, uint64_t len);
uint64_t asr_ranges_bytes(const struct asr_ranges *r);
/* Every byte of a or b into out (empty on entry). ASR_OK or ASR_E_NOMEM. */
int asr_ranges_union(const struct asr_ranges *a, const struct asr_ranges *b, struct asr_ranges *out);
/* The bytes of a not in cut (both sorted, their ranges apart) into out (empty on entry). ASR_OK or
 * ASR_E_NOMEM. */
int asr_ranges_minus(const struct asr_ranges *a, const struct asr_ranges *cut, struct asr_ranges *out);
void asr_ranges_free(struct asr_ranges *r);

/* ---- a window onto a disk ---------------------------------------------------------------- */

/* How a window that is not one run of one disk reads: a logical volume spread over PVs, an
 * array striped over members, a decrypted LUKS volume. read gets a range already checked to lie
 * inside the window and fills every byte or fails as asr_window_read does; prefetch is a hint
 * and may be NULL. */
struct asr_window_ops {
    int (*read)(void *ctx, const char *what, uint64_t off, void *buf, size_t len, struct asr_error *err);
    void (*prefetch)(void *ctx, uint64_t off, uint64_t len);
};

/* A volume as a byte window [base, base+size) of an open disk. Every read through it is checked
 * against the window, so a parser fed garbage can never read outside its partition. With ops,
 * the window is [0, size) of what ops reads (fd and base unused; path names it in messages). */
struct asr_window {
    int fd;
    const char *path; /* the disk, for libraries that open it themselves (libext2fs) */
    uint64_t base;
    uint64_t size;
    const struct asr_window_ops *ops; /* NULL: a run of the disk behind fd */
    void *ctx;                        /* ops' state */
};

/* Reads exactly len bytes at off within the window; ASR_E_CORRUPT naming the offset when the
 * range falls outside it (metadata pointing outside its volume), ASR_E_IO on a read error, after
 * reading the failed range again sector by sector, each a few times: the message names what was
 * read (`what`, "the FAT"; NULL: nothing) and the disk byte of the first sector that still fails. */
int asr_window_read(const struct asr_window *w, const char *what, uint64_t off, void *buf, size_t len,
                    struct asr_error *err);
/* Asks the kernel to start reading [off, off+len) of the window (clipped to it) ahead of a read:
 * reads scattered over a disk, such as a directory tree's, are then queued together instead of
 * waited for one by one. A hint only: nothing changes if it fails. */
void asr_window_prefetch(const struct asr_window *w, uint64_t off, uint64_t len);

/* ---- used-byte maps ---------------------------------------------------------------------- */

struct asr_usedmap {
    struct asr_ranges used; /* byte ranges of the volume that hold data or metadata */
    /* Byte ranges the filesystem holds but, in the state it is in, never reads (an ext journal's
     * log when the journal is empty): not in used, captured as zeros without reading them. A
     * restore writes the zeros, so nothing left on the target can be taken for them. */
    struct asr_ranges cleared;
    uint32_t block_size;    /* the filesystem's allocation unit (cluster) */
    char fs_type[32];
    char fs_uuid[64];
    char fs_label[64];
    /* What the parser found and took beyond its allocation map, or the state that made it look
     * ("" when nothing is worth saying): shown with the volume by layout and backup. */
    char note[256];
    /* The note tells of damage (metadata that disagrees with itself, or a filesystem marked
     * unclean, with errors, dirty), not only of a state such as a journal to replay: the backup
     * then repeats it among its warnings. */
    bool damaged;
};

/* Each parser fills out->used with every byte the filesystem needs: boot sectors and their
 * backups, allocation metadata, directories, journals, and the clusters its allocation map marks
 * used. On metadata that fails the filesystem's own rules it returns ASR_E_CORRUPT with a message
 * saying what and where; the caller then falls back to a full capture. ASR_E_UNSUPPORTED says
 * the metadata is sound but cannot give a map: an ext filesystem whose journal to replay this
 * reader cannot read (on another device, fast commits), a swap area holding a hibernation image
 * (its pages are the image). Blocks the metadata references are in the map even where the
 * allocation map calls them free (out->note says what was found: ext, ntfs, fat, exfat). */
int asr_fat_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_exfat_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_ntfs_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_ext_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
/* An ext2/3/4 filesystem's cleared ranges found from its state alone (the journal empty, the
 * filesystem clean), as asr_ext_used finds them. */
int asr_ext_cleared(const struct asr_window *w, struct asr_ranges *out, struct asr_error *err);
/* XFS: a realtime subvolume, an external log, or a log still to recover (mounted and busy, or
 * not cleanly unmounted: the free-space btrees on disk are stale until it is; a frozen one has
 * nothing to recover) is ASR_E_UNSUPPORTED, captured whole with the reason shown. */
int asr_xfs_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_swap_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
/* btrfs: this device's stripes of every chunk (DUP copies and mirrors included), data block groups
 * narrowed to their extents; ASR_E_UNSUPPORTED when the chunk tree has no copy on this device. */
int asr_btrfs_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
typedef int (*asr_used_fn)(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
/* The parser above for a libblkid TYPE ("vfat", "ext4", "swsuspend", ...), or NULL. */
asr_used_fn asr_used_parser(const char *blkid_type);
/* The cleared ranges (asr_usedmap) a volume's filesystem of this type has in the state it is in
 * now, found from that state alone: an ext filesystem's empty journal's log; out stays empty for
 * other types. For comparing a disk with an image taken of it. */
int asr_fs_cleared(const struct asr_window *w, const char *fs_type, struct asr_ranges *out, struct asr_error *err);
void asr_usedmap_free(struct asr_usedmap *m);

/* Whether path (ASCII names separated by '/' or '\\', compared case-insensitively as Windows
 * does, e.g. "/Windows/System32") exists on the NTFS volume in w, found through the directory
 * indexes from the root; *is_dir (may be NULL) says whether it is a directory. ASR_OK with
 * *found false when it does not exist; otherwise ASR_E_CORRUPT, ASR_E_UNSUPPORTED or
 * ASR_E_LIMIT saying what stopped the walk. */
int asr_ntfs_lookup(const struct asr_window *w, const char *path, bool *found, bool *is_dir, struct asr_error *err);
/* Whether the filesystem in w that blkid names fs_type ("vfat", "ext4", ...) holds a regular file at
 * the absolute path (FAT: names compared ignoring ASCII case), read through fs/fs_file.c's path
 * readers without mounting: restore's check of an ESP's removable-media loader. */
int asr_fs_file_exists(const struct asr_window *w, const char *fs_type, const char *path, bool *found,
                       struct asr_error *err);

/* ---- source disks ---------------------------------------------------------------------- */

struct asr_disk;

/* Opens a block device or disk image file read-only and reads its layout (libfdisk) and raw
 * boot regions. Partitions are addressed by offset: no partition device nodes are needed. */
int asr_disk_open(const char *path, struct asr_disk **out, struct asr_error *err);
/* The same without reading a layout (size and sector sizes only): for a restore target, whose
 * contents may be anything. */
int asr_disk_open_bare(const char *path, struct asr_disk **out, struct asr_error *err);
void asr_disk_close(struct asr_disk *d); /* NULL-safe */
/* The layout as the image records it: every partition (capture SKIP until planned), regions. */
const struct asr_disk_desc *asr_disk_desc(const struct asr_disk *d);
int asr_disk_fd(const struct asr_disk *d);
const char *asr_disk_path(const struct asr_disk *d);
/* Problems met while reading the layout, one per line ("" when none). */
const char *asr_disk_warnings(const struct asr_disk *d);
/* Which way the layout was read, and why, in one sentence: "read as mbr: ...", "read as gpt: ...",
 * "read as a whole disk: ..." or, for a filesystem whose boot sector libfdisk takes for an MBR,
 * "read as a whole-disk vfat: sector 0 is a FAT32 boot sector and its MBR entries are all empty"
 * (the rule is in disk.c). "" for a disk opened without its layout. */
const char *asr_disk_reading(const struct asr_disk *d);
/* Why the whole-disk volume of d must be captured whole, whatever its filesystem's metadata
 * says (a boot sector that may also be a real MBR: see disk.c), or NULL. */
const char *asr_disk_full_capture_reason(const struct asr_disk *d);
bool asr_disk_is_block(const struct asr_disk *d, dev_t *rdev);
/* The part of the gap before the first partition that is too large for a raw region (past its
 * first MiB): captured as a disk area volume. false when there is none. */
bool asr_disk_front_area(const struct asr_disk *d, struct asr_range *area);
/* Partition i's type as libfdisk names it ("EFI System", "Linux"). */
const char *asr_disk_type_name(const struct asr_disk *d, uint32_t i);
/* A recorded partition type as libfdisk names it, for an image's partitions (no disk to ask):
 * the MBR type code, or the GPT type GUID as text ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", any
 * case). "" when libfdisk does not know it. */
void asr_type_name(uint8_t label, uint8_t mbr_type, const char *type_guid, char *out, size_t n);

/* ---- UEFI variables and boot entries (efivars.c, boot_entries.c) -------------------------- */

/* The efivarfs directory: $ASRIMG_EFIVARS_DIR when set (tests point it at a directory of files
 * in efivarfs format: 4 bytes of attributes, then the data), else /sys/firmware/efi/efivars. */
const char *asr_efivars_dir(void);
/* Whether dir is there to read (a machine not booted through UEFI has none). */
bool asr_efivars_present(const char *dir);
/* The firmware this machine booted with (enum asr_firmware): UEFI when /sys/firmware/efi exists
 * (or ASRIMG_EFIVARS_DIR is set), BIOS when /sys/firmware exists without it, else unknown. */
uint8_t asr_firmware_booted(void);
/* Reads the global variable `name` (its attributes, then at most cap bytes of data into buf):
 * *found false when there is none; ASR_E_LIMIT when it holds more than cap bytes. */
int asr_efivar_read(const char *dir, const char *name, uint32_t *attrs, uint8_t *buf, size_t cap, size_t *len,
                    bool *found, struct asr_error *err);
/* Sets the global variable `name` (creating it), clearing efivarfs's immutable flag first. */
int asr_efivar_write(const char *dir, const char *name, uint32_t attrs, const uint8_t *data, size_t len,
                     struct asr_error *err);
/* The numbers of dir's Boot#### variables, sorted; ASR_E_LIMIT over cap. */
int asr_efivar_list_boot(const char *dir, uint16_t *numbers, size_t cap, size_t *count, struct asr_error *err);
/* Whether an efivarfs file name is a Boot#### variable of the global GUID, and its number. */
bool asr_efivar_boot_name(const char *file, uint16_t *number);
/* A device path (one asr_load_option_parse accepted) as text, as efibootmgr shows it
 * ("HD(1,GPT,...)/File(\EFI\debian\shimx64.efi)"); "?" when it does not fit in n. */
void asr_efi_path_text(const uint8_t *path, uint32_t len, char *out, size_t n);

/* Backup: m's BootOrder and the Boot#### entries of dir whose HD() node names a GPT partition of
 * disks (n of them, by position in the image) by its partition GUID; the hostname and firmware
 * are the caller's. An entry that does not parse or would not fit the record is left out and
 * named in notes (one line each). */
int asr_boot_entries_collect(const char *dir, const struct asr_disk_desc *const *disks, uint32_t n,
                             struct asr_machine_desc *m, char *notes, size_t notes_len, struct asr_error *err);

enum asr_boot_action { ASR_BOOT_NOT_MADE = 0, ASR_BOOT_CREATED = 1, ASR_BOOT_UPDATED = 2, ASR_BOOT_KEPT = 3 };

struct asr_boot_restored {
    uint16_t recorded;       /* the image's Boot#### */
    uint16_t number;         /* the machine's Boot#### for it now */
    uint8_t action;          /* enum asr_boot_action */
    uint8_t part_guid[16];   /* the restored partition its HD() names */
    char description[ASR_BOOT_DESC_MAX + 1];
    char path[512];          /* the device path written, as text */
    char why[ASR_ERROR_MSG_MAX]; /* ASR_BOOT_NOT_MADE: why */
};

/* Restore: each of m's entries made again in dir, its HD() node built from targets[e->disk] (the
 * restored disk's layout, read back from it; NULL when that image disk was not restored): the
 * partition with the recorded number, its start, size and GUID, then the recorded file path,
 * as a short-form path. An existing entry with the same HD() GUID and file path is reused
 * (rewritten only if its description differs), so a second run changes nothing. The entries
 * are put first in BootOrder, in the recorded BootOrder's order, the rest kept after them. out
 * holds ASR_MAX_BOOT_ENTRIES. */
int asr_boot_entries_restore(const char *dir, const struct asr_machine_desc *m,
                             const struct asr_disk_desc *const *targets, uint32_t n, struct asr_boot_restored *out,
                             uint32_t *count, bool *order_changed, struct asr_error *err);

/* ---- volumes: what each partition holds and how it will be captured ------------------- */

struct asr_volume_info {
    uint32_t disk_index;
    uint32_t partition_number; /* 0: the whole (unpartitioned) disk, or a disk area */
    uint8_t kind;              /* enum asr_volume_kind: a partition (or whole disk), or a disk area */
    uint64_t start_bytes, size_bytes;
    char type_name[64];   /* partition type as people know it ("EFI System", "0x83 Linux") */
    struct asr_usedmap map; /* fs type, uuid, label, block size, and used ranges for USED/HEADER */
    uint8_t capture;      /* enum asr_capture, after selection */
    uint8_t natural_capture; /* what capture would be if selected: USED, FULL or HEADER */
    bool critical;
    char reason[320];     /* why critical, or why not: a chain through the stacks can be long */
    char warning[320];    /* why a full capture instead of used clusters, etc. */
    /* A read error met while probing or mapping the volume ("" when none): it is then captured
     * whole, and a backup of it stops with this message unless it ignores read errors. */
    char read_error[320];
};

/* Probes every partition of d (libblkid), maps its used bytes, and decides whether it is
 * critical (needed to boot). *vols is malloc'd; free with asr_volume_infos_free. */
int asr_disk_analyze(struct asr_disk *d, uint32_t disk_index, struct asr_volume_info **vols, size_t *count,
                     struct asr_error *err);
void asr_volume_infos_free(struct asr_volume_info *v, size_t count);
/* Bytes a volume's capture will read (used ranges, the header, or the whole volume). */
uint64_t asr_volume_capture_bytes(const struct asr_volume_info *v);

/* Applies a selection: "critical" (the default), "all", or a comma list of DISK:PART or PART
 * (PART alone means on the first disk; 0 is a whole unpartitioned disk). Unselected volumes
 * get capture SKIP. Disk areas are part of the disk's layout, as its raw regions are: always
 * captured, whatever the selection. ASR_E_ARG naming the item when one matches nothing. */
int asr_select_volumes(struct asr_volume_info *v, size_t count, const char *selection, struct asr_error *err);

/* ---- the machine: volumes inside storage stacks ------------------------------------------- */

/* All the disks of a backup looked at together, as the machine sees them: the md arrays their
 * members make up, the LUKS containers a key opens, the LVM2 volume groups their PVs make up (a VG may span disks), the volumes
 * inside with their filesystems and used maps, and which of them the machine needs to boot. */
struct asr_machine;

/* A volume inside a storage stack (an md array, an opened LUKS container, an LVM2 logical
 * volume). It is not a volume of
 * the image: its bytes are taken through the partitions it lies on, whose used maps take its
 * used map translated onto them (asr_machine_select). info holds its size, filesystem, used
 * map (in its own bytes), capture, critical decision and why; its disk_index and
 * partition_number are those of the partition under its first byte. */
struct asr_stacked_volume {
    struct asr_volume_info info;
    char name[160]; /* "vg0/root", "md/0": as --volumes names it */
    char mount[ASR_NAME_MAX + 1]; /* where a root's /etc/fstab mounts it ("/var"), "" when none does */
};

/* Keys for the LUKS containers: each is tried on every container until one opens it (through
 * libcryptsetup; the volume key stays in this process's memory, never in the image). */
struct asr_machine_options {
    const char *const *key_files; /* files read whole, as cryptsetup's --key-file */
    size_t n_key_files;
    const char *passphrase; /* NULL: none */
    size_t passphrase_len;
};

/* After asr_disk_analyze of every disk (vols[i], counts[i] for disks[i]): assembles the md
 * arrays, opens the LUKS containers a key in opt (may be NULL) unlocks, assembles the LVM2 VGs,
 * maps each stacked volume's filesystem, and decides which volumes are critical from what the
 * roots found say; the volumes under a critical one become critical. The volumes are updated
 * in place and must outlive *out. Problems that leave something out are in
 * asr_machine_warnings. */
int asr_machine_analyze(struct asr_disk *const *disks, struct asr_volume_info *const *vols, const size_t *counts,
                        uint32_t n, const struct asr_machine_options *opt, struct asr_machine **out,
                        struct asr_error *err);
void asr_machine_free(struct asr_machine *m); /* NULL-safe */
/* The stacked volumes (*v: an array of pointers), each after the volumes under it: md arrays,
 * then LVs in VG order. */
size_t asr_machine_stacked(const struct asr_machine *m, const struct asr_stacked_volume *const **v);
/* Problems found looking through the stacks, one per line ("" when none). */
const char *asr_machine_warnings(const struct asr_machine *m);
/* After asr_select_volumes with the same selection: selects the stacked volumes (critical ones
 * by default, every one with "all", VG/LV items by name, and every LV of a PV partition named
 * by number), captures the PVs under a selected LV, and sets each PV partition's used map to
 * its LVM label and metadata plus what its selected LVs capture. ASR_E_ARG naming a VG/LV item
 * that matches no LV. */
int asr_machine_select(struct asr_machine *m, const char *selection, struct asr_error *err);
/* After asr_machine_select: the stacks as an image records them (asr_writer_add_stack, or
 * asr_backup_options.stacks): one LVM2 stack per VG, its PVs as disk and partition (absent when
 * on no disk here) with their UUIDs and data areas, its LVs with size, filesystem, capture and
 * critical decision (mount points are not recorded yet). A VG whose record breaks a rule of the
 * format is left out, one line each in skipped ("VG vg0: ..."); its bytes are captured all the
 * same. *out: free with asr_machine_stacks_free. */
int asr_machine_stacks(const struct asr_machine *m, struct asr_stack_desc **out, uint32_t *count, char *skipped,
                       size_t skipped_len, struct asr_error *err);
void asr_machine_stacks_free(struct asr_stack_desc *s, uint32_t n); /* NULL-safe */

/* One stack an image records, checked on disks restored from it (asr_machine_check_stacks). */
struct asr_stack_check {
    uint32_t stack; /* index among the image's stacks */
    /* ASR_OK: there as recorded; ASR_E_CORRUPT: missing or different; ASR_E_UNSUPPORTED: not
     * checked (inside a locked LUKS container, or a kind this version does not know). message
     * says what was found or why. */
    int status;
    char message[400];
};
typedef void (*asr_stack_check_fn)(void *ctx, const struct asr_stack_check *c);
/* Whether m's disks, given in the image's disk order, hold the n stacks an image records: each
 * md array, LUKS container and LVM2 VG found by UUID, its members in the recorded places (the
 * same disk and partition, or the same volume of the same earlier stack) with the same data
 * areas, the md level, chunk and event count, the LVM metadata seqno, and every LV by UUID, name
 * and size. grown: the partitions were grown (a LUKS2 data area may then be larger). A container
 * no key opened is checked by its header; what it holds is ASR_E_UNSUPPORTED. fn (may be NULL)
 * is called once per recorded stack, in order. ASR_OK when none is missing or different, else
 * ASR_E_CORRUPT naming the first one. */
int asr_machine_check_stacks(const struct asr_machine *m, const struct asr_stack_desc *want, uint32_t n, bool grown,
                             asr_stack_check_fn fn, void *ctx, struct asr_error *err);

/* ---- backup ------------------------------------------------------------------------------- */

/* One disk of a backup: the disk and its analysed volumes, selection applied (capture set). The
 * volumes are the caller's: --freeze reads their maps again (asr_backup_freeze_start). */
struct asr_backup_source {
    struct asr_disk *disk;
    struct asr_volume_info *vols;
    size_t count;
};

struct asr_backup_progress {
    uint64_t done, total;   /* bytes of the selected volumes read so far, and in all */
    uint32_t volume, volumes; /* 1-based volume being read, of how many */
    const struct asr_volume_info *info;
};
typedef void (*asr_backup_progress_fn)(const struct asr_backup_progress *p, void *ctx);

struct asr_backup_options {
    int level;             /* zstd level 1..19; 0 stores chunks uncompressed */
    unsigned threads;      /* compression workers; 0: one per online core */
    uint32_t avg_chunk;    /* content-defined chunking target, a power of two; 0: 256 KiB */
    bool ignore_read_errors; /* record unreadable source ranges instead of stopping */
    /* Workers look for cut candidates in reads this many ahead of the chunker, which scans the
     * others itself (engine/backup/backup.c, queue_scans); 0: the default; 8 or more: no scans at all
     * (the chunker rolls every byte). The image is the same either way: for tests and
     * measurements. */
    unsigned scan_from;
    asr_backup_progress_fn progress;
    void *progress_ctx;
    const volatile int *cancel; /* when it becomes non-zero (a signal), the backup stops */
    /* Called around each volume's reads (--freeze: asr_backup_freeze_start sets them); v is in
     * the source's array. after_volume runs whatever happened, once before_volume succeeded. The
     * reads take v's ranges after before_volume returns, so it may refresh the map of a volume it
     * froze (asr_volume_remap). */
    int (*before_volume)(struct asr_volume_info *v, void *ctx, struct asr_error *err);
    void (*after_volume)(const struct asr_volume_info *v, void *ctx);
    void *hook_ctx;
    /* The storage stacks the layout records (asr_machine_stacks), added after the disks; none:
     * the image is as without the feature. */
    const struct asr_stack_desc *stacks;
    uint32_t stack_count;
    /* Into a chunk store (include/asr_store.h): chunks are identified by the store's keyed hash,
     * those it holds are referenced without being compressed, the others go into its packs, and
     * the writer (external_chunks, with the store's seed) names them by id. NULL: an image file. */
    struct asr_store *store;
    struct asr_store_session *session;
    /* With a store: what the last backup of this machine into it recorded (read), and where this
     * one's chunks are recorded (asr_backup_hints_write after the commit). NULL: none. */
    struct asr_backup_hints *hints;
    /* With hints: a chunk whose bytes changed since is not stored again whole when at most half of
     * its 4 KiB blocks changed; its extents keep the rest in the chunk it was (SPEC.md 19.10,
     * patches). true: such chunks are chunked again as without hints. */
    bool no_patches;
};

struct asr_backup_stats {
    uint64_t read_bytes;       /* used bytes read from the sources */
    uint64_t zero_bytes;       /* of which all-zero, stored as zero extents */
    uint64_t unreadable_bytes; /* of which unreadable (ignore_read_errors) */
    uint64_t cleared_bytes;    /* not read: the maps' cleared ranges, stored as zero extents */
    uint64_t dedup_bytes;      /* of which found already stored */
    uint64_t new_bytes;        /* of which went into new chunks */
    uint64_t stored_bytes;     /* bytes those chunks take in the image */
    uint64_t chunks, dedup_hits;
    unsigned threads;
    bool direct_io;            /* O_DIRECT reads on every source */
    double seconds;            /* wall time of the data phase */
    double read_wait_seconds;  /* the producer waited for the device */
    double chunk_seconds;      /* producer CPU: zero detection and chunking (one thread) */
    double scan_seconds;       /* cut candidates found ahead by workers (chunking's rolling hash), summed */
    uint64_t scans;            /* reads scanned that way by workers (the chunker scans the others itself) */
    double hash_seconds;       /* content hashing, summed over workers */
    double compress_seconds;   /* worker CPU besides hashing (compression, dedup lookups), summed */
    double write_seconds;      /* ordered writer, in the image writer */
    size_t dedup_index_bytes;
    uint64_t store_bytes;      /* of dedup_bytes, found in the store (earlier snapshots) */
    uint64_t hinted_chunks, hinted_bytes; /* chunks found unchanged through the hints */
    uint64_t patched_chunks, patched_bytes; /* chunks that changed, kept as patches; their changed bytes */
    double verify_seconds;     /* producer CPU checking bytes against hints (one thread) */
};

/* ---- re-backup hints (engine/backup/hints.c, SPEC.md section 19.10) --------------------------
 * A file private to the machine that lets a backup into a store skip chunking and the store's
 * keyed hash of the bytes that did not change since the last backup: per volume, where that
 * backup's chunks began and ended, an XXH3-128 of their bytes under a seed only the file holds,
 * and their store ids. Bytes are still read, and checked against it. */
#define ASR_BACKUP_HINTS_CHECK 32 /* bytes of the store check: asr_store_chunk_id of a fixed text */
struct asr_backup_hints;
/* Empty hints for a store (its check) and chunk size, with a new private seed. */
int asr_backup_hints_new(const uint8_t store_check[ASR_BACKUP_HINTS_CHECK], uint32_t avg_chunk,
                         struct asr_backup_hints **out, struct asr_error *err);
/* Loads path's hints into h; a missing file leaves h empty (ASR_OK). A file made for another
 * store, key or chunk size (ASR_E_ARG), or damaged (ASR_E_CORRUPT...), leaves h empty too, with
 * the error naming the file: the backup may go on without it. */
int asr_backup_hints_read(struct asr_backup_hints *h, const char *path, struct asr_error *err);
/* Chunks loaded from the file. */
uint64_t asr_backup_hints_loaded(const struct asr_backup_hints *h);
/* Writes what asr_backup_run recorded to path (renamed into place, not synced: a file a crash
 * damages is refused and costs only speed; mode 0600, directories 0700). */
int asr_backup_hints_write(const struct asr_backup_hints *h, const char *path, struct asr_error *err);
void asr_backup_hints_free(struct asr_backup_hints *h);

/* Reads the selected volumes' captured bytes as a backup would (io_uring, O_DIRECT) and throws
 * them away: the source's read bandwidth for `asrimg bench`. */
int asr_backup_read_only(const struct asr_backup_source *src, size_t n, uint64_t *bytes, double *seconds,
                         struct asr_error *err);

/* Refuses (ASR_E_ARG, naming both) an image that would land on any of the source disks: on a
 * partition of one, on a filesystem mounted from a loop device over one, or onto one itself.
 * image_path: where the image will be created; or NULL and image_fd (standard output). */
int asr_check_image_placement(const char *image_path, int image_fd, struct asr_disk *const *disks, size_t n,
                              struct asr_error *err);
/* Refuses (ASR_E_ARG, naming both) removing or replacing path when it is, or leads to, one of the
 * source disks: its file, the file behind a source loop device, the device itself. A path that
 * is not there is fine. For the image writer's may_replace, on every name it would remove. */
int asr_check_replaced_file(const char *path, struct asr_disk *const *disks, size_t n, struct asr_error *err);

/* Refuses (ASR_E_ARG, naming both) two of paths that are the same storage or show some of the
 * same bytes: one file or device under two names (a symlink), a loop device and the file or
 * device it reads (at any offset, through loop devices over loop devices), two loop devices over
 * overlapping ranges of one file, a partition and its whole disk. Paths that do not exist yet
 * are the same when they name one directory entry. `what` names them in the message ("disk",
 * "target"). Stacked devices (LVM, dm-crypt, md) are not followed (a restore finds the devices
 * under one busy when it opens them O_EXCL). */
int asr_check_distinct_storage(const char *const *paths, size_t n, const char *what, struct asr_error *err);

/* ---- mounted source volumes, and swap: where, and whether in use --------------------------- */

/* One mount of a filesystem that lives on a source volume. Mounts sharing dev are one filesystem
 * seen in several places (bind mounts). */
struct asr_mount {
    dev_t dev;         /* the filesystem: mountinfo's major:minor (its superblock) */
    int id;            /* mountinfo's mount ID */
    bool read_write;   /* the filesystem is writable: its superblock is, whatever this mount says */
    bool mount_read_write; /* this mount accepts writes (a read-only bind mount does not) */
    char fs_type[32];
    char *point;       /* the mount point */
};

struct asr_mounts {
    struct asr_mount *v;
    size_t n;
};

/* Finds where volume v of disk d is mounted on this machine (/proc/self/mountinfo), under any
 * name the kernel gives it: a partition device of the disk, a loop device over the disk's file
 * or device starting where the volume starts (how a volume of a disk image is mounted when the
 * kernel does not scan a loop device for partitions), or the disk itself for a whole-disk
 * volume; and any device stacked on one of those (LVM, dm-crypt, md). *out (zeroed first)
 * lists every mount found; free with asr_mounts_free. */
int asr_volume_mounts(const struct asr_disk *d, const struct asr_volume_info *v, struct asr_mounts *out,
                      struct asr_error *err);
/* Whether anything on this machine uses some byte of disk d: a filesystem mounted from it, from
 * one of its partitions or from a loop device over any part of it (or over what it is made of),
 * swap on it, or a device stacked on it. *what then says which, for the refusal. */
int asr_disk_in_use(const struct asr_disk *d, bool *in_use, char *what, size_t len, struct asr_error *err);
/* The mount to name for a writable filesystem among m (a read-write one if any), or NULL when
 * nothing in m is writable. */
const struct asr_mount *asr_mounts_writable(const struct asr_mounts *m);
void asr_mounts_free(struct asr_mounts *m); /* NULL-safe */

/* Reads volume v's used map again (vfat, exfat, ntfs, ext), after dropping the disk's cached
 * pages of the volume, and replaces v->map.used with it. For a volume just frozen: the map taken
 * before the freeze misses what was allocated since, and an image of a frozen filesystem is
 * consistent only with the map read from the frozen state. recapture (before the backup records
 * the captures): a volume captured whole because its map could not be read (an ext journal the
 * map cannot replay, on another device say) becomes a used-map capture when the map reads now;
 * if it still does not, it stays whole and that is no error; a whole-disk volume that the layout
 * wants whole (asr_disk_full_capture_reason) stays whole. ASR_OK without change for a volume
 * captured neither way. */
int asr_volume_remap(const struct asr_disk *d, struct asr_volume_info *v, bool recapture, struct asr_error *err);

/* ---- backup --freeze: what is frozen, when, and thawing on every way out ------------------- */

struct asr_backup_freeze;
struct asr_backup_freeze_options {
    /* Set once SIGINT, SIGTERM or SIGTSTP has thawed: the backup's cancel flag. */
    volatile int *interrupt;
    /* A filesystem that could not be thawed: the message names the volume and how to thaw it. */
    void (*warn)(const char *msg, void *ctx);
    void *warn_ctx;
};
/* Sets up --freeze for a backup of src (as it will be given to asr_backup_run) with opt: opt's
 * before_volume and after_volume then freeze the writable filesystems on each volume (every mount
 * asr_volume_mounts finds) just before it is read, read its used map again from the frozen state
 * (asr_volume_remap, into src's array), and thaw them after, whatever happened. First, before
 * anything is recorded: a volume captured whole because its map could not be read while mounted
 * read-write (an ext journal to replay) is frozen a moment to read its map, by which it is then
 * captured. Until asr_backup_freeze_end the signals that would end or stop the process thaw
 * first: SIGINT, SIGTERM and SIGTSTP (a stopped process holding a filesystem frozen hangs every
 * writer) thaw and set *interrupt; the others thaw and end it as they would have, one ignored
 * stays ignored; SIGTTOU and SIGTTIN are ignored. One at a time per process. Errors name the
 * volume; on one, nothing is left set up. */
int asr_backup_freeze_start(const struct asr_backup_source *src, size_t n, const struct asr_backup_freeze_options *fo,
                            struct asr_backup_options *opt, struct asr_backup_freeze **out, struct asr_error *err);
/* Puts the signal handlers back and thaws what is still frozen. NULL-safe. */
void asr_backup_freeze_end(struct asr_backup_freeze *f);

/* The largest chunk avg_chunk produces: the writer's max_chunk_size must be at least this. */
uint32_t asr_backup_max_chunk(uint32_t avg_chunk);
/* Adds every source disk's layout (capture recorded per partition) and the selected volumes to
 * a fresh writer, then reads, deduplicates, compresses and appends their data. The caller
 * finishes (or frees) the writer. */
int asr_backup_run(struct asr_writer *w, const struct asr_backup_source *src, size_t n,
                   const struct asr_backup_options *opt, struct asr_backup_stats *st, struct asr_error *err);

/* ---- the image a restore reads ------------------------------------------------------------ */

/* An image to restore or compare from, opened once: a file or split set (its index gives every
 * volume's extents up front), or a stream from a pipe (the layout first, the data and where it
 * goes only as it passes). A restore, its plan and a comparison read it through these calls,
 * whichever kind it is. */
struct asr_image;
/* An image file, or the first part of a split set (asr_reader_open); or a store snapshot,
 * "STORE::HOST/TIME" (asr_store_ref_open). */
int asr_image_open(const char *path, struct asr_image **out, struct asr_error *err);
/* The stream read from fd, positioned before its first chunk (asr_stream_open_fd: name is for
 * messages; fd stays open). */
int asr_image_open_stream(int fd, const char *name, struct asr_image **out, struct asr_error *err);
void asr_image_free(struct asr_image *im); /* NULL-safe */
bool asr_image_is_stream(const struct asr_image *im);
/* For a stream, the counts of asr_image_info grow as it is read (asr_stream_info). */
const struct asr_image_info *asr_image_info(const struct asr_image *im);
uint32_t asr_image_disk_count(const struct asr_image *im);
const struct asr_disk_desc *asr_image_disk(const struct asr_image *im, uint32_t i);
uint32_t asr_image_volume_count(const struct asr_image *im);
const struct asr_volume_desc *asr_image_volume(const struct asr_image *im, uint32_t i);
/* The storage stacks the image records (SPEC.md section 6, feature "stacks"). */
uint32_t asr_image_stack_count(const struct asr_image *im);
const struct asr_stack_desc *asr_image_stack(const struct asr_image *im, uint32_t i);
const struct asr_machine_desc *asr_image_machine(const struct asr_image *im); /* NULL: none recorded */
/* A volume's totals and content hash; NULL for a stream not read to its end. */
const struct asr_volume_stats *asr_image_volume_stats(const struct asr_image *im, uint32_t i);

/* ---- image views (asrimg mount) ------------------------------------------------------------ */

/* Random access to what an image holds, without restoring it: each disk as it was (its size,
 * the raw boot regions the layout keeps, every captured byte at its place, zeros elsewhere) and
 * each partition volume alone. A read maps to extents; each chunk it needs is read once, checked
 * and decoded into a cache bounded by bytes (least recently used chunks go first); sequential
 * reads make background threads decode the chunks ahead. Any number of threads may read at once.
 * A damaged chunk fails the reads that touch it (ASR_E_CORRUPT, the chunk named in the message
 * and once in the log), never gives other bytes; a range unreadable on the source disk when it
 * was imaged fails with ASR_E_UNREADABLE. */
struct asr_view;

struct asr_view_options {
    uint64_t cache_bytes;     /* decoded chunks kept (the chunks readers hold go over it); 0: ASR_VIEW_DEFAULT_CACHE */
    uint32_t readahead_bytes; /* how far ahead of a sequential reader to decode; 0: 8 MiB */
    uint32_t readahead_threads; /* 0: 2; ASR_VIEW_NO_READAHEAD: none (threads do not survive a fork) */
    /* Called (from any thread, one call at a time) with one line naming each damaged chunk. */
    void (*log)(const char *line, void *ctx);
    void *log_ctx;
};
#define ASR_VIEW_DEFAULT_CACHE (256ull << 20)
#define ASR_VIEW_NO_READAHEAD UINT32_MAX
#define ASR_VIEW_MIN_CACHE (ASR_MAX_CHUNK_SIZE * 2ull) /* what asrimg mount accepts: two of the largest chunks */

enum asr_view_kind { ASR_VIEW_DISK = 0, ASR_VIEW_VOLUME = 1 };

struct asr_view_file {
    char name[48];   /* "disk0.img", "disk0p2.img" */
    uint8_t kind;    /* enum asr_view_kind */
    uint32_t disk;   /* its image disk */
    uint32_t volume; /* ASR_VIEW_VOLUME: its volume */
    uint64_t size;
};

struct asr_view_stats {
    uint64_t cache_bytes, cache_peak; /* decoded bytes held now, at most */
    uint64_t loads, hits, evictions, damaged, readahead_loads;
};

/* A view of r's image, which must outlive it (the view reads through its own chunk readers). */
int asr_view_open(const struct asr_reader *r, const struct asr_view_options *opt, struct asr_view **out,
                  struct asr_error *err);
void asr_view_free(struct asr_view *v); /* NULL-safe; stops the read-ahead threads */
/* Files: one per disk, then one per partition volume, in image order. */
uint32_t asr_view_file_count(const struct asr_view *v);
const struct asr_view_file *asr_view_file(const struct asr_view *v, uint32_t i);
/* len bytes of file i at off, all inside the file (ASR_E_ARG otherwise). On an error the buffer's
 * contents are undefined: callers must not hand them out. */
int asr_view_read(struct asr_view *v, uint32_t file, uint64_t off, void *buf, size_t len, struct asr_error *err);
void asr_view_get_stats(struct asr_view *v, struct asr_view_stats *out);

/* ---- restore ------------------------------------------------------------------------------ */

/* A restore: an image and the target disks it will be laid onto, opened and checked. Each image
 * disk goes to one or more targets (mirrors: all of them receive it in the same pass). */
struct asr_restore;

struct asr_restore_target_spec {
    const char *path;    /* block device, or a disk image file (created when it does not exist) */
    uint32_t disk_index; /* the image disk it receives */
};

/* What a target holds as asr_restore_run left it: after a failure, what a second run must do. */
enum asr_target_state {
    ASR_TARGET_UNTOUCHED = 0, /* nothing of the image written to it */
    ASR_TARGET_PARTIAL = 1,   /* some of the image's data; not its partition table, written last */
    ASR_TARGET_NO_TABLE = 2,  /* all the data; the partition table and boot regions not yet, or not all */
    ASR_TARGET_RESTORED = 3,  /* the data, the partition table and the boot regions */
};

struct asr_restore_target_info {
    const char *path;
    uint32_t disk_index;
    bool is_block;
    bool create;            /* a file that does not exist yet: made with the disk's size */
    uint64_t size_bytes;
    uint32_t logical_sector;
    char holds[512];        /* what it holds now, for the plan ("gpt, 2 partitions: ...") */
    uint8_t state;          /* enum asr_target_state, kept up to date by asr_restore_run */
};

/* Opens the targets and checks, before anything is written, ASR's rules: every image disk has a
 * target; no target twice, nor two sharing storage (asr_check_distinct_storage); each at least
 * as large as its disk and with the same logical sector size; none mounted, used as swap or held
 * by another device, or holding the image (a part of it stored in a filesystem on the target).
 * Block devices are opened O_EXCL; every target, and what a loop device target reads, is
 * flock'ed (LOCK_EX) before its checks, so that another asrimg restore or verify --against of it
 * is refused; both last until asr_restore_free. A refusal (ASR_E_ARG naming the target and the
 * rule) writes nothing. read_only: open to compare (verify --against), not to write: only the
 * size rule applies, and the lock is shared (LOCK_SH). */
int asr_restore_open_image(struct asr_image *im, const struct asr_restore_target_spec *t, size_t n, bool read_only,
                           struct asr_restore **out, struct asr_error *err);
/* The restore keeps im, which the caller frees after asr_restore_free. From a stream (`asrimg
 * restore -`, never read_only) the data is laid as it passes; a chunk used again later is read
 * back from a target it was already written to.
 * The same opener for a caller that holds the reader (image_path as asr_image_open was given
 * it; NULL leaves out the check that no target holds the image) or the stream itself: */
int asr_restore_open(struct asr_reader *r, const char *image_path, const struct asr_restore_target_spec *t, size_t n,
                     bool read_only, struct asr_restore **out, struct asr_error *err);
int asr_restore_open_stream(struct asr_stream *s, const struct asr_restore_target_spec *t, size_t n,
                            struct asr_restore **out, struct asr_error *err);
void asr_restore_free(struct asr_restore *rs); /* NULL-safe */
size_t asr_restore_target_count(const struct asr_restore *rs);
const struct asr_restore_target_info *asr_restore_target(const struct asr_restore *rs, size_t i);

enum asr_unused { ASR_UNUSED_KEEP = 0, ASR_UNUSED_DISCARD = 1, ASR_UNUSED_ZERO = 2 };

struct asr_restore_progress {
    uint64_t done, total; /* captured bytes of the image laid down, and in all */
    bool verifying;       /* the read-back pass (--verify, asr_restore_compare): bytes read back */
};
typedef void (*asr_restore_progress_fn)(const struct asr_restore_progress *p, void *ctx);

/* What --grow extends on an image disk: the data partition that ends last (an index into
 * partitions[], UINT32_MAX when there is none) and, when it is a logical one, the extended
 * partition around it (else UINT32_MAX). Fails (ASR_E_UNSUPPORTED), saying why in `why`, when
 * another partition ends after it (an extended one holding other partitions, say). */
struct asr_grow_plan {
    uint32_t data, container;
};
int asr_restore_grow_plan(const struct asr_disk_desc *d, struct asr_grow_plan *plan, char *why, size_t len);

struct asr_restore_options {
    bool new_ids;           /* fresh disk identifier and partition GUIDs */
    bool grow;              /* extend the last partition to the end of a larger target */
    bool keep_going;        /* damaged chunks: zero their ranges, list them, go on */
    bool verify;            /* read everything written back from every target and check it */
    uint8_t unused;         /* enum asr_unused */
    unsigned threads;       /* decompression workers; 0: one per online core */
    asr_restore_progress_fn progress;
    void *progress_ctx;
    const volatile int *cancel;
};

/* Refuses options the image's layout cannot honour (--grow where asr_restore_grow_plan fails),
 * saying why; asr_restore_run checks the same before it writes anything, and a caller may check
 * first, before it shows a plan. */
int asr_restore_check_options(const struct asr_restore *rs, const struct asr_restore_options *opt,
                              struct asr_error *err);

/* A range of a volume that the restore could not lay down from the image. */
struct asr_restore_range {
    uint32_t volume;
    uint64_t offset, length; /* in the volume */
    uint64_t chunk;          /* the damaged chunk; ASR_REF_UNREADABLE for source read errors */
};

struct asr_restore_stats {
    uint64_t data_bytes;      /* captured bytes written from chunks (per target) */
    uint64_t zero_bytes;      /* captured all-zero bytes (zeroed, or holes in files) */
    uint64_t region_bytes;    /* raw boot regions written */
    uint64_t unused_bytes;    /* discarded or zeroed with --discard / --zero-unused */
    uint64_t chunks_decoded;
    double seconds;
    bool direct_io;           /* O_DIRECT writes on every target */
    bool verified;            /* --verify ran and found every byte right */
    uint32_t grown_partition; /* --grow: its number, 0 if none */
    uint64_t grown_from, grown_to; /* bytes */
    bool grown_to_mbr_limit;  /* it stops at sector 2^32 - 1, the last an MBR addresses, short of the end */
    size_t damaged_count, unreadable_count;
    struct asr_restore_range *damaged;    /* malloc'd; see asr_restore_stats_free */
    struct asr_restore_range *unreadable; /* ranges the source could not read when imaged */
};
void asr_restore_stats_free(struct asr_restore_stats *st);

/* Lays the image onto its targets: every captured byte of every volume, in one pass over the
 * image (each chunk read and decompressed once per run of extents, written to every target of
 * its disk), then the raw boot regions and the partition table (libfdisk: backup GPT moved to the
 * end of a larger disk, new ids, growth), then syncs. A damaged chunk stops the restore with
 * ASR_E_CORRUPT naming it and the ranges it covers, unless keep_going. Whatever stops it, each
 * target's info.state (asr_restore_target) then says what the target holds. */
int asr_restore_run(struct asr_restore *rs, const struct asr_restore_options *opt, struct asr_restore_stats *st,
                    struct asr_error *err);

/* A difference found by asr_restore_compare. */
struct asr_restore_mismatch {
    const char *target;
    uint32_t volume;       /* UINT32_MAX: not in a volume (a boot region, the partition table) */
    uint64_t offset;       /* in the volume, or on the disk */
    char what[256];
};
typedef void (*asr_mismatch_fn)(const struct asr_restore_mismatch *m, void *ctx);

struct asr_compare_options {
    bool new_ids, grow;               /* what a restore with these options changed on purpose */
    asr_mismatch_fn on_mismatch;      /* each difference */
    void *mismatch_ctx;
    asr_restore_progress_fn progress; /* captured bytes read back, over every target */
    void *progress_ctx;
    /* A disk compared with an image taken of it (verify --against): the cleared ranges of the
     * image's volume vd, which w reads on the disk, as the disk's filesystems say now (for a
     * partition's own filesystem asr_fs_cleared; for a PV or md member, those of the volumes
     * above it), where the image holds zeros the disk need not. NULL (a restored disk, which has
     * the zeros): every zero extent is checked. */
    int (*cleared)(void *ctx, const struct asr_volume_desc *vd, const struct asr_window *w, struct asr_ranges *out,
                   struct asr_error *err);
    void *cleared_ctx;
};

/* Reads every target back and compares it with the image: each captured byte of every volume
 * (through the volume content hash, then byte by byte to name the first difference), the boot
 * code, post-MBR gap and EBRs, and the partition table (ids unless new_ids, sizes unless grow).
 * ASR_E_CORRUPT when there was a difference. */
int asr_restore_compare(struct asr_restore *rs, const struct asr_compare_options *opt, struct asr_error *err);

#ifdef __cplusplus
}
#endif
#endif
