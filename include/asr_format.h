/* Public API of the .asrimg container (format/): writer, reader and verifier.
 * SPEC.md describes every byte these functions produce and accept. The library never prints
 * and never exits: every failure is an enum asr_status plus a one-line message in struct
 * asr_error saying what went wrong and where. */
#ifndef ASR_FORMAT_H
#define ASR_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------------------ */

/* Values are pinned: never renumber or reuse one (scripts see them through --json). */
enum asr_status {
    ASR_OK = 0,
    ASR_E_IO = 1,          /* the operating system refused a read, write, open ... */
    ASR_E_NOMEM = 2,
    ASR_E_ARG = 3,         /* the caller passed something invalid */
    ASR_E_NOT_IMAGE = 4,   /* no .asrimg magic where one must be */
    ASR_E_INCOMPLETE = 5,  /* no valid footer: interrupted or truncated image */
    ASR_E_CORRUPT = 6,     /* a checksum or a structural rule failed */
    ASR_E_UNSUPPORTED = 7, /* newer format version or unknown incompatible feature */
    ASR_E_PARTS = 8,       /* split set: part missing, reordered, truncated or foreign */
    ASR_E_EXISTS = 9,      /* output exists and overwriting was not asked for */
    ASR_E_UNREADABLE = 10, /* the range was unreadable on the source when it was imaged */
    ASR_E_LIMIT = 11,      /* a count or size exceeds a hard cap of this implementation */
    ASR_E_STATE = 12,      /* call out of order (e.g. layout after data) */
};

#define ASR_ERROR_MSG_MAX 512

struct asr_error {
    enum asr_status code;
    char msg[ASR_ERROR_MSG_MAX];
};

/* Short stable name of a status ("corrupt", "incomplete", ...). */
const char *asr_status_name(enum asr_status code);

/* Sets err (if not NULL) to code and a printf-formatted message; returns code. For modules
 * built on format/ (the engine) so that every layer reports errors the same way. */
int asr_fail_public(struct asr_error *err, enum asr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- format constants -------------------------------------------------------------------- */

#define ASR_FORMAT_VERSION 1u
#define ASR_MAX_CHUNK_SIZE (16u << 20) /* hard cap on one chunk's uncompressed content */
#define ASR_DEFAULT_CHUNK_SIZE (1u << 20)
#define ASR_MIN_SPLIT_SIZE (64u << 10)
#define ASR_MAX_PARTS 9999u
#define ASR_FAT32_SPLIT_SIZE 4294967295ull /* 4 GiB - 1: the largest file FAT32 holds */

/* Feature bits. Classes: an unknown INCOMPAT bit makes a reader refuse the image; an unknown
 * RO_COMPAT bit lets it read and restore but not append to or rewrite the image; an unknown
 * COMPAT bit is ignored. Bits are never reused. */
#define ASR_FEATURE_COMPAT_SPLIT (1ull << 0) /* written as a split set */
#define ASR_FEATURE_COMPAT_MACHINE (1ull << 1) /* "machine": the header records the machine (hostname, UEFI boot entries) */
#define ASR_FEATURE_INCOMPAT_AREAS (1ull << 0) /* "disk-areas": volumes of bytes outside partitions */
#define ASR_FEATURE_INCOMPAT_STACKS (1ull << 1) /* "stacks": the layout records storage stacks */
#define ASR_FEATURE_INCOMPAT_EXTERNAL (1ull << 2) /* "external-chunks": a store snapshot, chunks in the store */
#define ASR_KNOWN_INCOMPAT (ASR_FEATURE_INCOMPAT_AREAS | ASR_FEATURE_INCOMPAT_STACKS | ASR_FEATURE_INCOMPAT_EXTERNAL)
#define ASR_KNOWN_RO_COMPAT 0ull
#define ASR_KNOWN_COMPAT (ASR_FEATURE_COMPAT_SPLIT | ASR_FEATURE_COMPAT_MACHINE)

enum asr_feature_class { ASR_FEATURE_INCOMPAT = 0, ASR_FEATURE_RO_COMPAT = 1, ASR_FEATURE_COMPAT = 2 };

/* ---- disk layout model (what the layout section carries) --------------------------------- */

enum asr_label { ASR_LABEL_NONE = 0, ASR_LABEL_MBR = 1, ASR_LABEL_GPT = 2 };

/* How a partition's contents were captured. */
enum asr_capture {
    ASR_CAPTURE_SKIP = 0,   /* not in the image */
    ASR_CAPTURE_USED = 1,   /* used clusters only, read from filesystem metadata */
    ASR_CAPTURE_FULL = 2,   /* every byte (all-zero blocks elided) */
    ASR_CAPTURE_HEADER = 3, /* only a header (e.g. swap: its UUID) */
};

enum asr_part_kind { ASR_PART_GPT = 0, ASR_PART_PRIMARY = 1, ASR_PART_EXTENDED = 2, ASR_PART_LOGICAL = 3 };

/* Raw disk regions that must come back byte-exact. */
enum asr_region_kind {
    ASR_REGION_MBR = 1,          /* logical sector 0: boot code, signature, table (or protective MBR) */
    ASR_REGION_GAP = 2,          /* from sector 1 to the first partition (GRUB core on BIOS) */
    ASR_REGION_GPT_HEADER = 3,   /* primary GPT header sector */
    ASR_REGION_GPT_ENTRIES = 4,  /* primary GPT entry array */
    ASR_REGION_GPT_BACKUP_ENTRIES = 5,
    ASR_REGION_GPT_BACKUP_HEADER = 6,
    ASR_REGION_EBR = 7,          /* an extended boot record sector */
    ASR_REGION_OTHER = 8,
};

#define ASR_NAME_MAX 255   /* partition names, source paths (UTF-8 bytes) */
#define ASR_FSNAME_MAX 63  /* fs type, fs uuid, fs label */
#define ASR_MAX_DISKS 64u
#define ASR_MAX_PARTITIONS 4096u /* per disk */
#define ASR_MAX_REGIONS 4096u    /* per disk */
#define ASR_MAX_REGION_SIZE (32u << 20)
#define ASR_MAX_VOLUMES 4096u

struct asr_partition_desc {
    uint32_t number; /* 1-based, as the OS numbers it */
    uint8_t kind;    /* enum asr_part_kind */
    uint8_t mbr_type;
    uint8_t bootable;
    uint8_t capture; /* enum asr_capture */
    uint64_t start_bytes;
    uint64_t size_bytes;
    uint8_t type_guid[16]; /* GPT: as stored on disk (mixed-endian) */
    uint8_t part_guid[16];
    uint64_t attributes;
    char name[ASR_NAME_MAX + 1];
};

struct asr_region_desc {
    uint16_t kind; /* enum asr_region_kind */
    uint64_t offset; /* byte offset on the source disk */
    uint32_t length;
    const uint8_t *data; /* length bytes; owned by the caller (writer) or the reader */
};

struct asr_disk_desc {
    char source[ASR_NAME_MAX + 1]; /* path it was read from, informational */
    uint64_t size_bytes;
    uint32_t logical_sector;
    uint32_t physical_sector;
    uint8_t label;        /* enum asr_label */
    uint8_t disk_id[16];  /* MBR: 4-byte signature in [0..3] (LE); GPT: disk GUID as on disk */
    uint64_t gpt_first_usable_lba;
    uint64_t gpt_last_usable_lba;
    uint32_t gpt_entry_count;
    uint32_t gpt_entry_size;
    uint32_t partition_count;
    const struct asr_partition_desc *partitions;
    uint32_t region_count;
    const struct asr_region_desc *regions;
};

/* What a volume is on its disk. An area (feature "disk-areas") is a run of the disk's bytes
 * outside every partition that a restore must bring back, too large to be a raw region: the
 * space before the first partition beyond its first MiB, say. */
enum asr_volume_kind { ASR_VOLUME_PARTITION = 0, ASR_VOLUME_AREA = 1 };

struct asr_volume_desc {
    uint32_t disk_index;       /* index into the image's disks */
    uint32_t partition_number; /* 0: the whole disk (no partition table), or an area */
    uint8_t kind;              /* enum asr_volume_kind */
    uint64_t disk_offset;      /* byte offset of the volume on its disk */
    uint64_t size_bytes;
    uint64_t used_bytes;       /* as the filesystem reported it when imaged */
    uint32_t block_size;
    char fs_type[ASR_FSNAME_MAX + 1];
    char fs_uuid[ASR_FSNAME_MAX + 1];
    char fs_label[ASR_FSNAME_MAX + 1];
};

/* Checks a disk description against every rule SPEC.md section 6 states (sector sizes, counts,
 * partitions and raw regions per label and inside the disk, the partition table held in the raw
 * regions against the partition records): what the writer records and every reader accepts. */
int asr_disk_desc_valid(const struct asr_disk_desc *d, struct asr_error *err);

/* ---- storage stacks (feature "stacks", SPEC.md section 6) -------------------------------- */

/* What the disks' partitions hold beyond a filesystem: an LVM2 volume group over PVs, an md
 * array over members, a LUKS container. The record lets restore, info and verify show and check
 * each stack without reading filesystems; the stack's bytes themselves come back because its
 * members' bytes do. */
enum asr_stack_kind { ASR_STACK_LVM_VG = 1, ASR_STACK_MD = 2, ASR_STACK_LUKS = 3 };

/* Where a member lies. */
enum asr_member_on {
    ASR_MEMBER_PARTITION = 0, /* partition `partition` of disk `disk` (0: the whole unpartitioned disk) */
    ASR_MEMBER_STACK = 1,     /* volume `volume` of the earlier stack `stack` (LVM inside LUKS) */
    ASR_MEMBER_ABSENT = 2,    /* on none of the image's disks (a PV the backup was not given) */
};

#define ASR_STACK_NAME_MAX 127 /* stack and stack volume names (LVM's own limit) */
#define ASR_MAX_STACKS 256u
#define ASR_MAX_STACK_MEMBERS 4096u /* per stack */
#define ASR_MAX_STACK_VOLUMES 4096u /* per stack */

struct asr_stack_member {
    uint8_t on;                 /* enum asr_member_on */
    uint32_t disk, partition;   /* ASR_MEMBER_PARTITION; else 0 */
    uint32_t stack, volume;     /* ASR_MEMBER_STACK; else 0 */
    uint32_t role;              /* md: slot in the array; else 0 */
    uint64_t data_offset;       /* from the member's start: LVM pe_start, md data offset, LUKS payload */
    uint64_t data_bytes;        /* LVM: extent count x extent size; md, LUKS: data area size */
    char uuid[ASR_FSNAME_MAX + 1]; /* LVM: PV UUID; md: device UUID; LUKS: "" */
};

struct asr_stack_volume {
    char name[ASR_STACK_NAME_MAX + 1]; /* LVM: LV name; md, LUKS: "" or the device name */
    char uuid[ASR_FSNAME_MAX + 1];
    uint64_t size_bytes, used_bytes;
    uint8_t capture;                   /* enum asr_capture: how its bytes are in the image */
    bool critical;                     /* needed to boot, as the backup decided */
    char fs_type[ASR_FSNAME_MAX + 1];
    char fs_uuid[ASR_FSNAME_MAX + 1];
    char fs_label[ASR_FSNAME_MAX + 1];
    char mount[ASR_NAME_MAX + 1];      /* where the machine mounts it ("/var"), "" if unknown */
};

struct asr_stack_desc {
    uint8_t kind;       /* enum asr_stack_kind; a reader keeps kinds it does not know, by number */
    uint32_t level;     /* md: RAID level; else 0 */
    uint64_t seqno;     /* LVM: metadata seqno; md: events; else 0 */
    uint64_t unit_bytes; /* LVM: extent size; md: chunk size; LUKS: sector size */
    char name[ASR_STACK_NAME_MAX + 1];
    char uuid[ASR_FSNAME_MAX + 1];
    uint32_t member_count;
    const struct asr_stack_member *members;
    uint32_t volume_count;
    const struct asr_stack_volume *volumes;
};

/* "LVM2 VG", "md array", "LUKS", or NULL for a kind this library does not know. */
const char *asr_stack_kind_name(uint8_t kind);
/* Checks stacks [0, n) against SPEC.md section 6's rules for them, given the disks they lie on:
 * counts, names, each member's place (an existing partition or unpartitioned disk, or an
 * earlier stack's volume; never two members in one place) and its data area inside it, and the
 * rules of each known kind. Messages name the stack, the record and the field. */
int asr_stacks_valid(const struct asr_stack_desc *s, uint32_t n, const struct asr_disk_desc *disks,
                     uint32_t disk_count, struct asr_error *err);

/* ---- the machine record (feature "machine", SPEC.md section 4) ------------------------------ */

/* UEFI load options (EFI_LOAD_OPTION, UEFI 2.10 section 3.1.3) and the device paths in them: the
 * record keeps a Boot#### variable's bytes, and a restore builds new ones pointing at the
 * restored ESP. Every byte parsed here comes from efivarfs or an image: untrusted. */
#define ASR_LOAD_OPTION_MAX 2048u  /* bytes of one Boot#### variable's data the record keeps */
#define ASR_BOOT_DESC_MAX 255      /* UTF-8 bytes of a description as shown */
#define ASR_MAX_BOOT_ENTRIES 16u   /* recorded entries */
#define ASR_MAX_BOOT_ORDER 1024u   /* BootOrder numbers */
#define ASR_HOSTNAME_MAX 255
#define ASR_LOAD_OPTION_ACTIVE 0x1u /* LOAD_OPTION_ACTIVE */

/* A hard-drive media device path node (HD(), type 4 subtype 1) with a GPT signature. */
struct asr_hd_node {
    uint32_t partition; /* the GPT entry's number, from 1 */
    uint64_t start_lba, size_lba;
    uint8_t guid[16];   /* the partition's unique GUID, as GPT stores it */
};

struct asr_load_option {
    uint32_t attributes;
    const uint8_t *desc;  /* the description as stored: UTF-16LE, its NUL included */
    uint32_t desc_len;
    char description[ASR_BOOT_DESC_MAX + 1]; /* as UTF-8 for people; a bad code unit shows as '?' */
    const uint8_t *path;  /* FilePathList: device path nodes ending in End Entire */
    uint32_t path_len;
    const uint8_t *optional; /* OptionalData */
    uint32_t optional_len;
    bool has_hd;          /* the first path instance holds a GPT HD() node */
    struct asr_hd_node hd;
    uint32_t file_at, file_len; /* in path: the nodes after HD() to the end of the first instance */
};

/* Parses n bytes of a Boot#### variable's data: every length inside n, every device path node at
 * least 4 bytes and inside the list, the list ending in exactly one End Entire node, the
 * description NUL-terminated. o points into b. ASR_E_CORRUPT says which rule failed. */
int asr_load_option_parse(const uint8_t *b, size_t n, struct asr_load_option *o, struct asr_error *err);
/* An EFI_LOAD_OPTION whose path is the short form HD(hd)/file/End: attributes, the description
 * as stored (UTF-16LE with its NUL), file_len bytes of device path nodes, optional data. Writes
 * *len bytes to out (cap bytes); ASR_E_LIMIT when they would not fit. */
int asr_load_option_build(uint32_t attributes, const uint8_t *desc, uint32_t desc_len, const struct asr_hd_node *hd,
                          const uint8_t *file, uint32_t file_len, const uint8_t *optional, uint32_t optional_len,
                          uint8_t *out, size_t cap, size_t *len, struct asr_error *err);

enum asr_firmware { ASR_FIRMWARE_UNKNOWN = 0, ASR_FIRMWARE_BIOS = 1, ASR_FIRMWARE_UEFI = 2 };

/* A UEFI boot entry that loads from a partition of the image's disks. */
struct asr_boot_entry {
    uint16_t number;    /* Boot#### */
    uint32_t disk;      /* the image disk holding the partition its HD() node names */
    uint32_t partition; /* that partition's number */
    uint32_t load_option_len;
    uint8_t load_option[ASR_LOAD_OPTION_MAX]; /* the variable's data, as efivarfs gave it less its attributes */
};

struct asr_machine_desc {
    char hostname[ASR_HOSTNAME_MAX + 1]; /* "" when unknown */
    uint8_t firmware;                    /* enum asr_firmware the machine booted with at backup */
    uint32_t boot_order_count;
    uint16_t boot_order[ASR_MAX_BOOT_ORDER]; /* BootOrder as it was (UEFI only) */
    uint32_t entry_count;
    struct asr_boot_entry entries[ASR_MAX_BOOT_ENTRIES];
};

/* "unknown", "BIOS", "UEFI" (NULL for another value). */
const char *asr_firmware_name(uint8_t firmware);
/* SPEC.md section 4's rules for the record, given the image's disks: counts, the hostname, entry
 * numbers distinct, each load option well-formed and its HD() node naming by GUID the GPT
 * partition the entry names. */
int asr_machine_valid(const struct asr_machine_desc *m, const struct asr_disk_desc *disks, uint32_t disk_count,
                      struct asr_error *err);

/* ---- chunks and extents ------------------------------------------------------------------ */

enum asr_codec { ASR_CODEC_STORED = 0, ASR_CODEC_ZSTD = 1 };

struct asr_hash128 {
    uint64_t lo, hi;
};

/* A chunk ready to append: stored bytes as they go into the image. */
struct asr_chunk {
    uint8_t codec; /* enum asr_codec */
    const void *stored;
    uint32_t stored_len;
    uint32_t content_len;
    struct asr_hash128 content_hash; /* asr_content_hash(seed, content) */
};

#define ASR_REF_ZERO UINT64_MAX             /* all-zero data, no chunk stored */
#define ASR_REF_UNREADABLE (UINT64_MAX - 1) /* source could not be read here */

struct asr_extent {
    uint64_t offset; /* within the volume */
    uint64_t length;
    uint64_t ref;          /* chunk id, ASR_REF_ZERO or ASR_REF_UNREADABLE */
    uint32_t chunk_offset; /* where in the chunk's content this extent starts */
};

/* The dedup key and content checksum of chunk content: XXH3-128 seeded per image. */
struct asr_hash128 asr_content_hash(uint64_t seed, const void *data, size_t len);

/* Encode content into a chunk: zstd at level, or stored when compression does not shrink it
 * (level 0 always stores). out must hold asr_chunk_bound(len) bytes; c->stored points into out. */
size_t asr_chunk_bound(size_t content_len);
int asr_chunk_encode(const void *content, size_t len, int level, uint64_t seed, void *out,
                     size_t out_cap, struct asr_chunk *c, struct asr_error *err);

/* The same, for a hot loop: one encoder per thread keeps its zstd context (allocating one per
 * chunk costs more than compressing a small chunk), and takes the content hash the caller has
 * already computed as its dedup key. */
struct asr_chunk_encoder;
int asr_chunk_encoder_new(int level, struct asr_chunk_encoder **out, struct asr_error *err);
void asr_chunk_encoder_free(struct asr_chunk_encoder *e); /* NULL-safe */
int asr_chunk_encoder_run(struct asr_chunk_encoder *e, const void *content, size_t len, struct asr_hash128 hash,
                          void *out, size_t out_cap, struct asr_chunk *c, struct asr_error *err);

/* ---- progress ------------------------------------------------------------------------------ */

typedef void (*asr_progress_fn)(uint64_t done, uint64_t total, void *ctx);

/* ---- writer ------------------------------------------------------------------------------- */

struct asr_writer;

/* Asked before a writer removes or replaces a file that is already there (a leftover .partial, an
 * older image or its parts): nonzero, with err set, refuses. */
typedef int (*asr_replace_check_fn)(const char *path, void *ctx, struct asr_error *err);

struct asr_writer_options {
    uint64_t split_size;     /* 0: one file; else every part holds at most this many bytes */
    uint32_t max_chunk_size; /* 0: ASR_DEFAULT_CHUNK_SIZE */
    bool overwrite;          /* replace an existing image */
    asr_replace_check_fn may_replace; /* NULL: any file of the image's names may go */
    void *may_replace_ctx;
    const char *creator_version; /* NULL: this library's version */
    /* Reproducible output (golden images, tests): take identity from here. */
    bool fixed_identity;
    uint8_t uuid[16];
    uint64_t hash_seed;
    uint64_t created_unix;
    /* A store snapshot (feature "external-chunks", SPEC.md section 19.6): chunks are added with
     * asr_writer_append_external and kept by the store; the stream holds their store ids instead
     * of chunk records. hash_seed is then used whether fixed_identity is set or not: it must be
     * the store's, since chunks and their content hashes are shared by every snapshot. */
    bool external_chunks;
};

/* Write to path.partial (and path.NNN.partial parts when split); asr_writer_finish renames them
 * into place only after the footer is written and synced. Each .partial is a new file of this
 * writer's: whatever was under its name is removed, never written through; path.partial held by
 * another live writer is refused (ASR_E_EXISTS), as is an existing image without overwrite. */
int asr_writer_create(const char *path, const struct asr_writer_options *opt, struct asr_writer **out,
                      struct asr_error *err);
/* Write a single-part image to an open descriptor (a pipe works: the writer never seeks). */
int asr_writer_create_fd(int fd, const struct asr_writer_options *opt, struct asr_writer **out,
                         struct asr_error *err);

uint64_t asr_writer_hash_seed(const struct asr_writer *w);
uint32_t asr_writer_max_chunk_size(const struct asr_writer *w);
/* Bytes written so far over all parts, part headers included (after finish: the image's size). */
uint64_t asr_writer_image_bytes(const struct asr_writer *w);

/* Layout first (all disks, then all volumes); the first chunk or extent seals it. */
int asr_writer_add_disk(struct asr_writer *w, const struct asr_disk_desc *d, struct asr_error *err);
int asr_writer_add_volume(struct asr_writer *w, const struct asr_volume_desc *v, uint32_t *volume_id,
                          struct asr_error *err);
/* A storage stack on the disks added so far (copied), before the first chunk or extent. The first
 * one declares the incompatible feature "stacks"; an image without stacks is as before. */
int asr_writer_add_stack(struct asr_writer *w, const struct asr_stack_desc *s, struct asr_error *err);
/* The machine record (copied), before the first chunk or extent; checked against the disks when
 * the layout is sealed. Declares the compatible feature "machine". */
int asr_writer_set_machine(struct asr_writer *w, const struct asr_machine_desc *m, struct asr_error *err);

int asr_writer_append_chunk(struct asr_writer *w, const struct asr_chunk *c, uint64_t *chunk_id,
                            struct asr_error *err);
/* external_chunks only: a chunk the store keeps under store_id (32 bytes); c gives its lengths and
 * content hash, which must be those of the record the store holds (c->stored and c->codec are not
 * read: a chunk the store already had needs only its stored length). Numbered like appended
 * chunks. asr_writer_append_chunk is refused in a snapshot (ASR_E_STATE), and this in an image. */
int asr_writer_append_external(struct asr_writer *w, const uint8_t store_id[32], const struct asr_chunk *c,
                               uint64_t *chunk_id, struct asr_error *err);
/* Extents of one volume are added in increasing, non-overlapping offset order. content is the
 * extent's bytes (length of them): they feed the volume's content hash. */
int asr_writer_add_extent(struct asr_writer *w, uint32_t volume_id, uint64_t offset, uint64_t length,
                          uint64_t chunk_id, uint32_t chunk_offset, const void *content,
                          struct asr_error *err);
int asr_writer_add_zero(struct asr_writer *w, uint32_t volume_id, uint64_t offset, uint64_t length,
                        struct asr_error *err);
int asr_writer_add_unreadable(struct asr_writer *w, uint32_t volume_id, uint64_t offset,
                              uint64_t length, struct asr_error *err);

/* Index, footer, fsync, rename. */
int asr_writer_finish(struct asr_writer *w, struct asr_error *err);
/* NULL-safe. An unfinished writer removes its .partial files. */
void asr_writer_free(struct asr_writer *w);

/* ---- reader ------------------------------------------------------------------------------- */

struct asr_reader;

struct asr_image_info {
    uint32_t format_version;
    uint64_t incompat, ro_compat, compat;
    uint8_t uuid[16];
    uint64_t hash_seed;
    uint64_t created_unix;
    uint32_t max_chunk_size;
    char creator[ASR_FSNAME_MAX + 1];
    char creator_version[ASR_FSNAME_MAX + 1];
    uint32_t part_count;
    uint64_t split_size;
    uint64_t image_bytes;  /* all parts, on disk */
    uint64_t chunk_count;
    uint64_t stored_bytes;  /* sum of chunk stored lengths */
    uint64_t unique_bytes;  /* sum of chunk content lengths */
    uint64_t data_bytes;    /* sum of data extent lengths (before dedup) */
    uint64_t zero_bytes;
    uint64_t unreadable_bytes;
    bool ro_compat_unknown; /* an unknown read-only-compatible feature is set */
};

struct asr_volume_stats {
    uint64_t extent_count;
    uint64_t data_bytes, zero_bytes, unreadable_bytes;
    struct asr_hash128 content_hash;
};

/* Open an image (its first part; the other parts of a split set are found beside it).
 * Checks parts, footer, header, layout and index; chunk data is checked when read. An image
 * with feature "external-chunks" is refused here (ASR_E_UNSUPPORTED: "a store snapshot"). */
int asr_reader_open(const char *path, struct asr_reader **out, struct asr_error *err);
/* The same, with the index left in the image: it is checked in one pass as asr_reader_open checks
 * it (every rule, both checksums) but only its statistics stay in memory; chunk entries and
 * extents are read back in blocks when asked for (asr_reader_extents_at), so a reader of a 1 TiB
 * image takes a few MiB. asr_reader_extents gives such a reader nothing: it is for `mount`, `info`
 * and other callers that look up ranges, not for a restore or verify walking every extent. A store
 * snapshot opens as asr_reader_open_external opens it (eagerly). */
int asr_reader_open_lazy(const char *path, struct asr_reader **out, struct asr_error *err);
bool asr_reader_is_lazy(const struct asr_reader *r);

/* Where the chunks of a store snapshot come from (the store, store/). Both calls are thread-safe. */
struct asr_chunk_source {
    /* The chunk record store_id names: its 64-byte ACNK header and stored bytes as in SPEC.md
     * section 8 (chunk_id field 0), into buf of cap bytes; *len its length. where: a place for
     * messages ("pack P offset O"), filled on success and failure. */
    int (*fetch)(void *ctx, const uint8_t store_id[32], void *buf, size_t cap, size_t *len, char *where,
                 size_t where_len, struct asr_error *err);
    /* true when content is what store_id names (the store's keyed hash of it). */
    bool (*check)(void *ctx, const uint8_t store_id[32], const void *content, size_t len);
    void *ctx;
    /* Optional (NULL: none) advice: the n records named by store_ids (32 bytes each, in the order
     * the reader will ask for them) are wanted soon; fetch may then find them fetched already. */
    void (*prefetch)(void *ctx, const uint8_t *store_ids, size_t n);
};
/* Open a snapshot (an image with feature "external-chunks") whose chunks src serves: every chunk
 * read is checked against its index entry, its checksums and its store id. src is copied. An
 * image of its own is refused (ASR_E_ARG). Chunk reads fetch the record into the chunk reader's
 * buffer (64 + max_chunk_size bytes), so fetch runs on every thread that reads chunks; a
 * damaged record or content that check refuses is ASR_E_CORRUPT naming the chunk, its store id
 * and the place fetch gave. asr_reader_chunk_where says "store id HEX"; asr_reader_prefetch does
 * nothing: asr_reader_prefetch_chunks gives src's prefetch the chunks a reader will read next. */
int asr_reader_open_external(const char *path, const struct asr_chunk_source *src, struct asr_reader **out,
                             struct asr_error *err);
/* The store id (32 bytes) of chunk_id in a snapshot; NULL in an image of its own. */
const uint8_t *asr_reader_store_id(const struct asr_reader *r, uint64_t chunk_id);
void asr_reader_free(struct asr_reader *r);

const struct asr_image_info *asr_reader_info(const struct asr_reader *r);
uint32_t asr_reader_disk_count(const struct asr_reader *r);
const struct asr_disk_desc *asr_reader_disk(const struct asr_reader *r, uint32_t i);
uint32_t asr_reader_volume_count(const struct asr_reader *r);
const struct asr_volume_desc *asr_reader_volume(const struct asr_reader *r, uint32_t i);
const struct asr_volume_stats *asr_reader_volume_stats(const struct asr_reader *r, uint32_t i);
/* The storage stacks the layout records (none without feature "stacks"). */
uint32_t asr_reader_stack_count(const struct asr_reader *r);
const struct asr_stack_desc *asr_reader_stack(const struct asr_reader *r, uint32_t i);
/* The machine record (feature "machine"), NULL when the image has none; checked against the
 * layout like the rest. asr_reader_hostname: its hostname, NULL without a record or when the
 * record's hostname is empty (an image lister shows such images by file name). */
const struct asr_machine_desc *asr_reader_machine(const struct asr_reader *r);
const char *asr_reader_hostname(const struct asr_reader *r);
/* Extents of a volume, sorted by offset (NULL and 0 from a lazy reader). */
const struct asr_extent *asr_reader_extents(const struct asr_reader *r, uint32_t volume, uint64_t *count);
/* Up to max extents of a volume, in order, from the first whose end lies past off: *n of them (0:
 * none left). Any reader, lazy or not; thread-safe. A lazy reader reads them from the image and
 * checks them again: ASR_E_CORRUPT if the image changed, or an I/O error. */
int asr_reader_extents_at(const struct asr_reader *r, uint32_t volume, uint64_t off, struct asr_extent *out,
                          size_t max, size_t *n, struct asr_error *err);
/* fn for each extent of a volume over [off, off + len), in order, with the part of it inside the
 * range, [from, to); a nonzero return stops the walk and is returned (fn sets err itself). */
typedef int (*asr_extent_fn)(const struct asr_extent *e, uint64_t from, uint64_t to, void *ctx);
int asr_reader_walk_extents(const struct asr_reader *r, uint32_t volume, uint64_t off, uint64_t len,
                            asr_extent_fn fn, void *ctx, struct asr_error *err);
/* The index of the first of n extents (sorted by offset) whose end lies past off; n when none. */
uint64_t asr_extents_first_after(const struct asr_extent *ext, uint64_t n, uint64_t off);
/* Name of feature bit `bit` of `cls` as the image declares it, or NULL. */
const char *asr_reader_feature_name(const struct asr_reader *r, enum asr_feature_class cls, unsigned bit);

/* Read and check one chunk's content (content_len bytes into buf of cap bytes). */
int asr_reader_read_chunk(struct asr_reader *r, uint64_t chunk_id, void *buf, size_t cap,
                          uint32_t *content_len, struct asr_error *err);
/* A chunk reader of its own for each thread that decodes chunks of one image at once (the
 * reader's read_chunk and read_volume share one buffer and are not thread-safe). It reads
 * through r, which must outlive it, straight into the caller's buffer. */
struct asr_chunk_reader;
int asr_chunk_reader_new(const struct asr_reader *r, struct asr_chunk_reader **out, struct asr_error *err);
void asr_chunk_reader_free(struct asr_chunk_reader *c); /* NULL-safe */
int asr_chunk_reader_read(struct asr_chunk_reader *c, uint64_t chunk_id, void *buf, size_t cap,
                          uint32_t *content_len, struct asr_error *err);
/* The same, and the record the content came from, checked as a read checks it: *record's codec,
 * lengths and content hash (seeded with the image's hash_seed), and its stored bytes, which point
 * into c and stay valid until c's next read. A copy into another image with the same seed can
 * append the record as it is, without compressing the content again. */
int asr_chunk_reader_read_record(struct asr_chunk_reader *c, uint64_t chunk_id, void *buf, size_t cap,
                                 struct asr_chunk *record, struct asr_error *err);
/* Chunk id's content length as the index records it (checked against the chunk when read), 0 for
 * no such chunk: what a caller keeping chunks of many sizes allocates for one. */
uint32_t asr_reader_chunk_len(const struct asr_reader *r, uint64_t chunk_id);
/* Asks the kernel to read the image ahead, from chunk_id's record on for about `bytes`: a restore
 * reading chunks in stream order otherwise waits for the disk at every chunk (advice only). */
void asr_reader_prefetch(const struct asr_reader *r, uint64_t chunk_id, uint64_t bytes);
/* A snapshot's reader: tells its chunk source (its prefetch) that chunk_ids (n of them) will be
 * read next, in that order, up to the one whose records add up to about `bytes` (advice only; an
 * image's reader does nothing: asr_reader_prefetch is its advice). */
void asr_reader_prefetch_chunks(const struct asr_reader *r, const uint64_t *chunk_ids, size_t n, uint64_t bytes);
/* Where chunk id's record is stored, for messages ("IMAGE.002 offset 1234"). */
const char *asr_reader_chunk_where(const struct asr_reader *r, uint64_t chunk_id, char *buf, size_t n);

/* The volume content hash of SPEC.md section 12, computed from the bytes a volume holds
 * (a restored disk, say), to compare with asr_volume_stats.content_hash. Feed every extent of
 * the volume in offset order; a data extent with its length bytes of content. */
struct asr_volume_hasher;
int asr_volume_hasher_new(uint64_t seed, struct asr_volume_hasher **out, struct asr_error *err);
void asr_volume_hasher_free(struct asr_volume_hasher *h); /* NULL-safe */
void asr_volume_hasher_add(struct asr_volume_hasher *h, const struct asr_extent *e, const void *content);
struct asr_hash128 asr_volume_hasher_digest(const struct asr_volume_hasher *h);

/* Read a byte range of a volume: uncaptured and zero ranges read as zeros. Returns
 * ASR_E_UNREADABLE (buffer still filled, zeros there) if the range touches unreadable data. */
int asr_reader_read_volume(struct asr_reader *r, uint32_t volume, uint64_t offset, void *buf,
                           size_t len, struct asr_error *err);

/* ---- sequential reader ---------------------------------------------------------------------- */

/* Reads an image front to back from a source that cannot seek: a pipe (`ssh host cat IMAGE |`),
 * or a split set's parts concatenated in order (`cat IMAGE IMAGE.002 IMAGE.003 |`). The layout
 * and volume table come first, then chunks and the extent records that place them; each record
 * is checked as it passes (SPEC.md section 14, "Reading sequentially"). The index and footer come
 * last, so the image is known to be complete only when asr_stream_next returns ASR_STREAM_END.
 *
 * Threads: one thread calls asr_stream_next and asr_stream_read_chunk_data; the chunks it hands
 * out are decoded on any thread, each with its own asr_chunk_decoder. Descriptions returned by
 * asr_stream_disk and asr_stream_volume never change and may be read from any thread. */
/* Like read(2): up to len bytes into buf; the count read, 0 at the end of input, -errno on
 * error (-EINTR is retried). */
typedef ssize_t (*asr_stream_read_fn)(void *ctx, void *buf, size_t len);

struct asr_stream;

/* Reads and checks everything before the first chunk: part header, image header (refusing newer
 * versions and unknown incompatible features), layout and volume table. name is for messages
 * ("standard input"); NULL says "image stream". Besides the errors of asr_stream_next it fails
 * with ASR_E_NOT_IMAGE or ASR_E_UNSUPPORTED. asr_stream_open_fd does not close fd. */
int asr_stream_open(asr_stream_read_fn fn, void *ctx, const char *name, struct asr_stream **out,
                    struct asr_error *err);
int asr_stream_open_fd(int fd, const char *name, struct asr_stream **out, struct asr_error *err);
void asr_stream_free(struct asr_stream *s); /* NULL-safe */

/* What the header gives is known after open. chunk_count, stored_bytes, unique_bytes, the extent
 * totals, part_count and image_bytes count what has been read so far, and are the image's at
 * ASR_STREAM_END. */
const struct asr_image_info *asr_stream_info(const struct asr_stream *s);
const char *asr_stream_name(const struct asr_stream *s);
const char *asr_stream_feature_name(const struct asr_stream *s, enum asr_feature_class cls, unsigned bit);
uint32_t asr_stream_disk_count(const struct asr_stream *s);
const struct asr_disk_desc *asr_stream_disk(const struct asr_stream *s, uint32_t i);
uint32_t asr_stream_volume_count(const struct asr_stream *s);
const struct asr_volume_desc *asr_stream_volume(const struct asr_stream *s, uint32_t i);
uint32_t asr_stream_stack_count(const struct asr_stream *s);
const struct asr_stack_desc *asr_stream_stack(const struct asr_stream *s, uint32_t i);
const struct asr_machine_desc *asr_stream_machine(const struct asr_stream *s); /* NULL: none */
/* From the index: NULL before ASR_STREAM_END. content_hash lets a restore check end to end what
 * it wrote (asr_volume_hasher). */
const struct asr_volume_stats *asr_stream_volume_stats(const struct asr_stream *s, uint32_t i);
/* Input bytes consumed so far, part headers included (for progress). */
uint64_t asr_stream_input_bytes(const struct asr_stream *s);
/* Chunks whose stored bytes failed their checksum as they passed. Each one is also reported as
 * ASR_E_CORRUPT by asr_chunk_decoder_run; the stream itself goes on to the end. */
uint64_t asr_stream_damaged_chunks(const struct asr_stream *s);

enum asr_stream_kind { ASR_STREAM_CHUNK = 1, ASR_STREAM_EXTENTS = 2, ASR_STREAM_END = 3 };

/* A chunk record's header, checked. Its stored bytes are still encoded: read them with
 * asr_stream_read_chunk_data, then decode them on any thread with asr_chunk_decoder_run. */
struct asr_stream_chunk {
    uint64_t chunk_id;
    uint8_t codec; /* enum asr_codec */
    uint32_t stored_len, content_len;
    struct asr_hash128 content_hash;
    uint64_t stored_hash;
    const uint8_t *stored;   /* set by asr_stream_read_chunk_data */
    uint64_t logical_offset; /* of the chunk record, for messages */
};

struct asr_stream_record {
    enum asr_stream_kind kind;
    uint64_t logical_offset;       /* where the record starts */
    struct asr_stream_chunk chunk; /* ASR_STREAM_CHUNK */
    /* ASR_STREAM_EXTENTS: extents of one volume, in offset order and after every extent of that
     * volume returned before; data extents refer only to chunks returned before. Valid until the
     * next asr_stream_next. */
    uint32_t volume_id;
    uint32_t extent_count;
    const struct asr_extent *extents;
};

/* The next record. After ASR_STREAM_END (a valid index and footer) it returns ASR_STREAM_END
 * again. Any error ends the stream: ASR_E_INCOMPLETE when the input ends before the footer,
 * ASR_E_CORRUPT for a damaged or inconsistent record, ASR_E_PARTS for concatenated parts out of
 * order or of another image, ASR_E_IO from the read function; every later call returns it again. */
int asr_stream_next(struct asr_stream *s, struct asr_stream_record *rec, struct asr_error *err);
/* The stored bytes (c->stored_len) of the chunk asr_stream_next just returned, straight into buf
 * (cap bytes), and c->stored pointed at them; with buf NULL, into the stream's own buffer, valid
 * until the next asr_stream_next. Once per chunk, before the next asr_stream_next; the bytes of a
 * chunk not asked for are skipped. A buffer too small (ASR_E_ARG) or a call out of turn
 * (ASR_E_STATE) leaves the stream as it was; any other error ends it, as in asr_stream_next. */
int asr_stream_read_chunk_data(struct asr_stream *s, struct asr_stream_chunk *c, void *buf, size_t cap,
                               struct asr_error *err);

/* Decodes chunks of the stream s: checks the stored hash, the zstd frame's declared size and the
 * content hash, and writes the chunk's content_len bytes to out, which holds cap bytes (the
 * image's max_chunk_size always suffices). One decoder per thread; it copies what it needs from
 * s, so it may outlive it. Errors (ASR_E_CORRUPT for damaged data) name the chunk and its logical
 * offset; they do not affect the stream. */
struct asr_chunk_decoder;
int asr_chunk_decoder_new(const struct asr_stream *s, struct asr_chunk_decoder **out, struct asr_error *err);
void asr_chunk_decoder_free(struct asr_chunk_decoder *d); /* NULL-safe */
int asr_chunk_decoder_run(struct asr_chunk_decoder *d, const struct asr_stream_chunk *c, void *out, size_t cap,
                          struct asr_error *err);

/* ---- verifier ----------------------------------------------------------------------------- */

struct asr_problem {
    enum asr_status code;
    const char *what;       /* structure: "part header", "chunk 17", "index", ... */
    uint32_t part;          /* 1-based part number, 0 if not tied to a part */
    uint64_t part_offset;   /* byte offset within that part's file */
    uint64_t logical_offset;
    const char *message;    /* one line */
};

typedef void (*asr_problem_fn)(const struct asr_problem *p, void *ctx);

struct asr_verify_report {
    bool complete;          /* a valid footer was found */
    uint64_t structures;    /* structures checked */
    uint64_t chunks;
    uint64_t volumes;
    uint64_t bytes_checked; /* logical stream bytes covered by a good checksum */
    uint64_t store_bytes;   /* a store snapshot: its good chunks' stored bytes, read from the store */
    uint64_t problems;
};

/* Check every checksum and every structural rule of the image; each bad structure is reported
 * through on_problem with its location. Returns ASR_OK only when there is no problem at all.
 * When the image cannot be opened at all (not an image, unreadable, a split set with a part
 * missing, reordered, truncated or foreign) it returns that error in err without calling
 * on_problem. */
int asr_verify(const char *path, asr_problem_fn on_problem, void *problem_ctx,
               asr_progress_fn on_progress, void *progress_ctx, struct asr_verify_report *report,
               struct asr_error *err);
/* The same for a store snapshot (feature "external-chunks") whose chunks src serves: the walk of
 * the snapshot file (header, layout, volume table, store id section, index, footer, stream hash),
 * then every chunk read through src (checked as asr_reader_open_external's reads are; a damaged
 * or missing one is reported once, by its id and the place fetch names, and the check goes on)
 * and every volume content hash recomputed. asr_verify refuses a snapshot (ASR_E_UNSUPPORTED), and
 * this an image (ASR_E_ARG), without calling on_problem. */
int asr_verify_external(const char *path, const struct asr_chunk_source *src, asr_problem_fn on_problem,
                        void *problem_ctx, asr_progress_fn on_progress, void *progress_ctx,
                        struct asr_verify_report *report, struct asr_error *err);

/* Version string of this library ("0.1.0"). */
const char *asr_version(void);

#ifdef __cplusplus
}
#endif
#endif
