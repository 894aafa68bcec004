/* Internal interfaces shared by the format/ modules: the fixed on-disk records (records.c), the
 * layout and index bodies (layout.c, index.c), the split-set byte stream (parts.c), the files a
 * writer creates (outfiles.c) and error helpers (error.c). Nothing here is part of the public API. */
#ifndef ASR_FORMAT_INTERNAL_H
#define ASR_FORMAT_INTERNAL_H

#include "asr_format.h"

#include <stdarg.h>
#include <stdbool.h>

#define ASR_PART_HEADER_SIZE 64u
#define ASR_IMAGE_HEADER_FIXED 80u
#define ASR_IMAGE_HEADER_MAX 65536u
#define ASR_SECTION_HEADER_SIZE 32u
#define ASR_CHUNK_HEADER_SIZE 64u
#define ASR_FOOTER_SIZE 64u
#define ASR_EXTENT_SIZE 32u
#define ASR_CHUNK_ENTRY_SIZE 32u
#define ASR_VOLUME_ENTRY_SIZE 64u
#define ASR_INDEX_FIXED 32u
#define ASR_MAX_LAYOUT_SIZE (128u << 20)
#define ASR_MAX_VOLTABLE_SIZE (4u << 20)
#define ASR_MAX_EXTENT_RECORD 4096u /* extents in one AEXT record */
#define ASR_MAX_INDEX_SIZE (1ull << 30)
#define ASR_MAX_FEATURE_NAMES 192u

#define ASR_TAG(a, b, c, d) ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))
#define ASR_TAG_HEADER ASR_TAG('A', 'H', 'D', 'R')
#define ASR_TAG_LAYOUT ASR_TAG('A', 'L', 'A', 'Y')
#define ASR_TAG_VOLUMES ASR_TAG('A', 'V', 'O', 'L')
#define ASR_TAG_CHUNK ASR_TAG('A', 'C', 'N', 'K')
#define ASR_TAG_EXTENTS ASR_TAG('A', 'E', 'X', 'T')
#define ASR_TAG_INDEX ASR_TAG('A', 'I', 'D', 'X')
#define ASR_TAG_FOOTER ASR_TAG('A', 'E', 'N', 'D')
#define ASR_TAG_IDS ASR_TAG('A', 'S', 'I', 'D') /* a store snapshot's chunk ids (feature external-chunks) */
#define ASR_STORE_ID_SIZE 32u

extern const uint8_t fmt_part_magic[8];

/* error.c */
#define fmt_fail asr_fail_public /* the short name inside format/ */
uint64_t fmt_checksum64(const void *data, size_t len); /* XXH3-64, unseeded */

/* chunk.c: checks the stored hash, decompresses into out (cap >= content_len), checks the
 * content hash. zstd_dctx is a ZSTD_DCtx *. */
struct fmt_chunk_header;
int fmt_chunk_decode(const struct fmt_chunk_header *h, const uint8_t *stored, void *out, size_t cap,
                     uint64_t seed, void *zstd_dctx, struct asr_error *err);

/* records.c: fixed-layout records. decode returns ASR_OK or a status with err naming the field. */
struct fmt_part_header {
    uint32_t format_version;
    uint32_t part_number; /* 1-based */
    uint8_t uuid[16];
    uint64_t split_size;     /* 0: not split */
    uint64_t payload_offset; /* logical offset of this part's first payload byte */
};
void fmt_part_header_encode(const struct fmt_part_header *h, uint8_t out[ASR_PART_HEADER_SIZE]);
int fmt_part_header_decode(const uint8_t in[ASR_PART_HEADER_SIZE], struct fmt_part_header *h,
                           struct asr_error *err);

struct fmt_feature_name {
    uint8_t cls, bit;
    char name[64];
};

struct fmt_image_header {
    uint32_t header_len;
    uint32_t format_version;
    uint64_t incompat, ro_compat, compat;
    uint8_t uuid[16];
    uint64_t hash_seed;
    uint64_t created_unix;
    uint32_t max_chunk_size;
    char creator[ASR_FSNAME_MAX + 1];
    char creator_version[ASR_FSNAME_MAX + 1];
    uint32_t feature_count;
    struct fmt_feature_name features[ASR_MAX_FEATURE_NAMES];
    /* Fields after the feature names (the machine record): encode appends tail_len bytes of tail;
     * decode sets tail_at to where they start. */
    const uint8_t *tail;
    uint32_t tail_len, tail_at;
};
/* Returns the encoded length (header_len), or 0 if out_cap is too small. */
size_t fmt_image_header_encode(const struct fmt_image_header *h, uint8_t *out, size_t out_cap);
/* in holds avail bytes starting at the header. */
int fmt_image_header_decode(const uint8_t *in, size_t avail, struct fmt_image_header *h,
                            struct asr_error *err);
/* The fields of asr_image_info that the image header gives (the reader and the sequential reader
 * fill the rest from what they have read). */
void fmt_image_info_from_header(const struct fmt_image_header *h, struct asr_image_info *i);
/* ASR_OK, or ASR_E_UNSUPPORTED naming the first unknown incompatible feature. */
int fmt_image_header_check_support(const struct fmt_image_header *h, struct asr_error *err);
/* The same for a reader that knows the incompatible bits `known` (a reader of an earlier version,
 * for the tests of a new feature). */
int fmt_image_header_check_known(const struct fmt_image_header *h, uint64_t known, struct asr_error *err);

struct fmt_section_header {
    uint32_t tag;
    uint32_t flags;
    uint64_t content_len;
    uint64_t content_hash; /* XXH3-64 of the content bytes */
};
void fmt_section_header_encode(const struct fmt_section_header *s, uint8_t out[ASR_SECTION_HEADER_SIZE]);
int fmt_section_header_decode(const uint8_t in[ASR_SECTION_HEADER_SIZE], struct fmt_section_header *s,
                              struct asr_error *err);

struct fmt_chunk_header {
    uint8_t codec;
    uint64_t chunk_id;
    uint32_t stored_len;
    uint32_t content_len;
    struct asr_hash128 content_hash;
    uint64_t stored_hash;
};
void fmt_chunk_header_encode(const struct fmt_chunk_header *c, uint8_t out[ASR_CHUNK_HEADER_SIZE]);
int fmt_chunk_header_decode(const uint8_t in[ASR_CHUNK_HEADER_SIZE], struct fmt_chunk_header *c,
                            struct asr_error *err);

struct fmt_footer {
    uint32_t format_version;
    uint64_t index_offset;
    uint64_t index_length;
    uint32_t part_count;
    uint8_t uuid[16];
    uint64_t index_hash; /* XXH3-64 of the whole index section (envelope and content) */
};
void fmt_footer_encode(const struct fmt_footer *f, uint8_t out[ASR_FOOTER_SIZE]);
int fmt_footer_decode(const uint8_t in[ASR_FOOTER_SIZE], struct fmt_footer *f, struct asr_error *err);

void fmt_extent_encode(const struct asr_extent *e, uint8_t out[ASR_EXTENT_SIZE]);
int fmt_extent_decode(const uint8_t in[ASR_EXTENT_SIZE], struct asr_extent *e, struct asr_error *err);

struct fmt_chunk_entry {
    uint64_t offset; /* logical offset of the chunk header */
    uint32_t stored_len;
    uint32_t content_len;
    struct asr_hash128 content_hash;
};
void fmt_chunk_entry_encode(const struct fmt_chunk_entry *c, uint8_t out[ASR_CHUNK_ENTRY_SIZE]);
void fmt_chunk_entry_decode(const uint8_t in[ASR_CHUNK_ENTRY_SIZE], struct fmt_chunk_entry *c);

void fmt_hash128_put(uint8_t out[16], struct asr_hash128 h);
struct asr_hash128 fmt_hash128_get(const uint8_t in[16]);
bool fmt_hash128_eq(struct asr_hash128 a, struct asr_hash128 b);

/* A growable byte buffer for building section bodies. */
struct fmt_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed; /* an allocation failed: the content is incomplete */
};
uint8_t *fmt_buf_extend(struct fmt_buf *b, size_t n); /* NULL (and failed set) on OOM */
void fmt_buf_free(struct fmt_buf *b);

/* A bounds-checked cursor for parsing section bodies. */
struct fmt_cursor {
    const uint8_t *p;
    size_t left;
    const char *what; /* for messages */
};
const uint8_t *fmt_cursor_take(struct fmt_cursor *c, size_t n); /* NULL when short */

/* layout.c: the layout section (disks) and the volume table. */
struct fmt_layout {
    uint32_t disk_count;
    struct asr_disk_desc *disks;
    uint32_t volume_count;
    struct asr_volume_desc *volumes;
    uint32_t stack_count; /* feature stacks: the stack table after the disks */
    struct asr_stack_desc *stacks;
    uint8_t *body; /* copy of the layout body: region data points into it */
    uint64_t incompat; /* the image header's incompatible features: which volume kinds may appear */
};
/* The layout section: the disks, then (when stack_count > 0, feature stacks) the stack table. */
int fmt_layout_encode_disks(const struct asr_disk_desc *disks, uint32_t n, const struct asr_stack_desc *stacks,
                            uint32_t stack_count, struct fmt_buf *out, struct asr_error *err);
int fmt_layout_encode_volumes(const struct asr_volume_desc *v, uint32_t n, struct fmt_buf *out,
                              struct asr_error *err);
int fmt_layout_decode_disks(const uint8_t *body, size_t len, struct fmt_layout *l, struct asr_error *err);
int fmt_layout_decode_volumes(const uint8_t *body, size_t len, struct fmt_layout *l,
                              struct asr_error *err);
/* Section 7's rules for one volume (its disk, its partition or its place as a disk area, the raw
 * regions it must not cover; incompat: the image's incompatible feature bits, since an area needs
 * disk-areas), and those across the whole table (volumes do not overlap; each captured partition
 * has one). */
int fmt_volume_desc_check(const struct asr_volume_desc *v, const struct asr_disk_desc *disks,
                          uint32_t disk_count, uint64_t incompat, struct asr_error *err);
int fmt_volume_table_check(const struct asr_disk_desc *disks, uint32_t disk_count,
                           const struct asr_volume_desc *v, uint32_t n, struct asr_error *err);

/* str16 fields (SPEC section 1): put fails (-1) on a string over max bytes or out of memory;
 * take reads one into dst (max + 1 bytes), refusing a length over max or a NUL inside. */
int fmt_put_str(struct fmt_buf *out, const char *s, size_t max);
int fmt_take_str(struct fmt_cursor *c, char *dst, size_t max, struct asr_error *err);

/* stacks.c: the stack table at the end of the layout section (feature stacks). decode reads it
 * from c (to its end) into l->stacks once l->disks is in, and checks it (asr_stacks_valid). */
int fmt_stacks_encode(const struct asr_stack_desc *s, uint32_t n, struct fmt_buf *out);
int fmt_stacks_decode(struct fmt_cursor *c, struct fmt_layout *l, struct asr_error *err);
/* Deep copy (writer) and release of one stack's arrays. */
int fmt_stack_copy(struct asr_stack_desc *dst, const struct asr_stack_desc *src);
void fmt_stack_free(struct asr_stack_desc *s);

/* machine.c: the machine record after the image header's feature names (feature machine). decode
 * reads the record at p (avail bytes before the header's checksum), not yet checked against the
 * layout (asr_machine_valid does that once the disks are in). */
int fmt_machine_encode(const struct asr_machine_desc *m, struct fmt_buf *out);
int fmt_machine_decode(const uint8_t *p, size_t avail, struct asr_machine_desc *m, struct asr_error *err);

/* tables.c: the partition table bytes kept in a disk's raw regions (the MBR in sector 0, valid
 * GPT headers and their entry arrays) agree with its layout record. Called by
 * asr_disk_desc_valid once the record's own fields and the regions' places have passed. */
int fmt_disk_tables_check(const struct asr_disk_desc *d, struct asr_error *err);
/* CRC-32 (IEEE 802.3), the checksum of GPT headers and entry arrays. */
uint32_t fmt_crc32(const void *data, size_t n);
void fmt_layout_free(struct fmt_layout *l);

/* index.c: the index body. */
struct fmt_index {
    uint32_t volume_count;
    uint64_t chunk_count;
    struct asr_hash128 stream_hash; /* XXH3-128 of logical bytes [0, index offset) */
    struct fmt_chunk_entry *chunks;
    struct asr_volume_stats *stats; /* per volume */
    struct asr_extent **extents;    /* per volume, stats[i].extent_count each */
};
int fmt_index_encode(const struct fmt_index *ix, struct fmt_buf *out, struct asr_error *err);
/* Validates against limits: chunk entries inside [data_start, index_offset), extents inside
 * their volume and their chunk. external (a store snapshot): data_start is the store id
 * section's offset, which every chunk entry names, and the section fills the data. */
int fmt_index_decode(const uint8_t *body, size_t len, const struct fmt_layout *layout,
                     uint64_t data_start, uint64_t index_offset, uint32_t max_chunk, bool external,
                     struct fmt_index *ix, struct asr_error *err);
void fmt_index_free(struct fmt_index *ix);
/* The index's entries one at a time, for the decoder above and for the lazy index
 * (index_lazy.c), which checks them in one pass without keeping them. */
struct fmt_index_bounds {
    uint64_t data_start, index_offset;
    uint32_t max_chunk;
    bool external;
};
int fmt_chunk_count_check(uint64_t chunk_count, uint64_t bytes_left, const struct fmt_index_bounds *b,
                          struct asr_error *err);
/* Entry i, after the one that ended at *next_free (start: data_start), which it moves on. */
int fmt_chunk_entry_check(const struct fmt_chunk_entry *e, uint64_t i, const struct fmt_index_bounds *b,
                          uint64_t *next_free, struct asr_error *err);
/* Volume entry v, with bytes_left of the index after it for its extents. */
int fmt_volume_entry_decode(const uint8_t b[ASR_VOLUME_ENTRY_SIZE], uint32_t v, uint64_t bytes_left,
                            struct asr_volume_stats *s, struct asr_error *err);
/* A volume's extents in order: each decoded and checked against the one before, its volume and
 * chunk_len (a bound of each chunk's content length), summed for the end's check of the totals. */
struct fmt_volume_walk {
    uint32_t volume;
    uint64_t volume_size, chunk_count;
    uint32_t (*chunk_len)(const void *ctx, uint64_t id);
    const void *chunk_ctx;
    uint64_t prev_end, done, sums[3];
};
int fmt_volume_extent_next(struct fmt_volume_walk *w, const uint8_t raw[ASR_EXTENT_SIZE], struct asr_extent *e,
                           struct asr_error *err);
int fmt_volume_walk_end(const struct fmt_volume_walk *w, const struct asr_volume_stats *s, struct asr_error *err);

/* index_lazy.c: the index read in place (asr_reader_open_lazy). fmt_lazy_open makes one pass over
 * it with the same rules as fmt_index_decode and both checksums, and fills ix's counts, stream
 * hash and statistics only (chunks and extents stay NULL); sums: the chunks' stored and content
 * bytes. The lookups are thread-safe and check what they read again. */
struct fmt_lazy_index;
struct fmt_scan;
struct fmt_lazy_args {
    struct fmt_partset *ps;
    const uint8_t *envelope;                  /* the index section's 32 bytes, checked */
    const struct fmt_section_header *header;  /* and decoded */
    uint64_t content_at;                      /* logical offset of its content */
    uint64_t index_hash;                      /* the footer's checksum of the section */
    const struct fmt_layout *layout;
    struct fmt_index_bounds bounds;
    struct fmt_scan *sc;                      /* says a content checksum mismatch as the reader does */
};
int fmt_lazy_open(const struct fmt_lazy_args *a, struct fmt_index *ix, uint64_t sums[2], struct fmt_lazy_index **out,
                  struct asr_error *err);
void fmt_lazy_free(struct fmt_lazy_index *li); /* NULL-safe */
int fmt_lazy_chunk(struct fmt_lazy_index *li, uint64_t id, struct fmt_chunk_entry *e, struct asr_error *err);
/* Up to max extents of volume v from the first that ends past off, in order; *n of them. */
int fmt_lazy_extents(struct fmt_lazy_index *li, uint32_t v, uint64_t off, struct asr_extent *out, size_t max,
                     size_t *n, struct asr_error *err);
/* Section 9's rules for the next extent of a volume, in the stream and in the index alike: after
 * the previous one (which ended at prev_end), inside the volume, and a data extent inside one of
 * the chunk_count chunks that precede it, whose content lengths chunk_len gives. */
int fmt_extent_check(const struct asr_extent *e, uint64_t prev_end, uint64_t volume_size, uint64_t chunk_count,
                     uint32_t (*chunk_len)(const void *ctx, uint64_t id), const void *ctx, struct asr_error *err);
/* The AEXT record body: volume id, count, extents. */
int fmt_extent_record_decode(const uint8_t *body, size_t len, uint32_t *volume_id,
                             struct asr_extent *out, uint32_t *count, struct asr_error *err);
/* Feeds one extent into a volume content hash state (descriptor, then content if data). */
void fmt_volume_hash_extent(void *xxh3_state, const struct asr_extent *e, const void *content);

/* scan.c: the record scanner. SPEC.md's record grammar and every rule a record meets in stream
 * order, for the sequential reader and the image reader (stop at the first problem) and the
 * verifier (report every problem, resynchronise and go on). Callers bring the bytes and their
 * logical offset; each check returns ASR_OK or the status of its first problem, which it has
 * handed to report. In resync mode a record whose extent is known is checked to its end, and a
 * non-OK return means its extent is not known: resynchronise. */
enum fmt_scan_mode { FMT_SCAN_STOP, FMT_SCAN_RESYNC };
/* Where the walk is: FMT_AT_INDEX when a reader goes from the volume table to the index by the
 * footer, over the data. */
enum fmt_scan_stage { FMT_AT_HEADER, FMT_AT_LAYOUT, FMT_AT_VOLUMES, FMT_AT_DATA, FMT_AT_INDEX };

struct fmt_problem {
    int code;
    const char *what; /* the record: "chunk 3", "extent record" */
    uint64_t at;      /* its logical offset; UINT64_MAX: no one place */
    bool alone;       /* the message needs no place (a refused version or feature) */
    char msg[ASR_ERROR_MSG_MAX];
};
typedef void (*fmt_scan_report_fn)(void *ctx, const struct fmt_problem *p);

/* What the scan has seen of one volume, to check its next extents and then the index's copy. */
struct fmt_scan_volume {
    uint64_t end;         /* end of its last extent: the next must start at or after it */
    uint64_t fingerprint; /* sum over its extents of XXH3-64(entry bytes, seed = ordinal) */
    struct asr_volume_stats stats;
};

struct fmt_scan {
    enum fmt_scan_mode mode;
    fmt_scan_report_fn report;
    void *ctx;
    bool failed; /* stop mode: a problem ended the scan */
    enum fmt_scan_stage stage;
    bool layout_bad; /* resync mode: the layout did not decode, volumes cannot be checked */
    bool external;   /* the header declares external-chunks: the data is one store id section */
    struct fmt_image_header header;
    struct fmt_layout layout;
    struct asr_machine_desc *machine; /* feature machine: the record, once the header is in */
    struct fmt_scan_volume *volumes; /* per volume, once the volume table is in */
    uint64_t next_chunk;
    uint32_t *chunk_len; /* content length of each chunk so far (4 bytes a chunk) */
    uint64_t chunk_cap;
    char what[48]; /* the chunk being checked, for its problems */
};
void fmt_scan_init(struct fmt_scan *sc, enum fmt_scan_mode mode, fmt_scan_report_fn report, void *ctx);
void fmt_scan_free(struct fmt_scan *sc);
/* The image header at logical offset 0 (avail bytes at raw), of the image the part header names. */
int fmt_scan_header(struct fmt_scan *sc, const uint8_t *raw, size_t avail, const uint8_t part_uuid[16]);
/* A section envelope at at, left bytes before the end of what may hold it (UINT64_MAX: unknown):
 * the section the grammar wants here, with a content length in its range. */
int fmt_scan_envelope(struct fmt_scan *sc, const uint8_t raw[ASR_SECTION_HEADER_SIZE], uint64_t at, uint64_t left,
                      struct fmt_section_header *h);
/* The section's content against its envelope's hash. */
int fmt_scan_content(struct fmt_scan *sc, const struct fmt_section_header *h, const uint8_t *body, uint64_t at);
/* The same, for content hashed as it streamed by: hash is its XXH3-64. */
int fmt_scan_content_hash(struct fmt_scan *sc, const struct fmt_section_header *h, uint64_t hash, uint64_t at);
/* The layout section's or the volume table's content (tag says which), in its place. */
int fmt_scan_layout(struct fmt_scan *sc, uint32_t tag, const uint8_t *body, size_t len, uint64_t at);
/* A chunk header at at, left bytes before the end of the data (UINT64_MAX: unknown). */
int fmt_scan_chunk(struct fmt_scan *sc, const uint8_t raw[ASR_CHUNK_HEADER_SIZE], uint64_t at, uint64_t left,
                   struct fmt_chunk_header *h);
/* An extent record's content: decoded into ext (ASR_MAX_EXTENT_RECORD entries) and checked
 * against section 9's rules across records. */
int fmt_scan_extents(struct fmt_scan *sc, const uint8_t *body, size_t len, uint64_t at, uint32_t *volume,
                     struct asr_extent *ext, uint32_t *count);
/* A store snapshot's store id section (its data): chunk_count ids of 32 bytes. The chunks it
 * lists count as met; the index comes next. */
int fmt_scan_ids(struct fmt_scan *sc, const uint8_t *body, size_t len, uint64_t at);
/* The chunk record at logical offset at is chunk id as the index's entry e describes it; if not,
 * the problem is FMT_CHUNK_DISAGREES. */
bool fmt_chunk_agrees(const struct fmt_chunk_header *h, uint64_t at, uint64_t id, const struct fmt_chunk_entry *e);
#define FMT_CHUNK_DISAGREES "chunk header disagrees with its index entry"
/* A record that may not start here (tag: its first four bytes). Returns its status. */
int fmt_scan_stray(struct fmt_scan *sc, const uint8_t tag[4], uint64_t at);
/* The end of the data: the layout and the volume table were met. */
void fmt_scan_finish(struct fmt_scan *sc);
/* Resynchronising: the next offset after from, before end, where a record with a valid header
 * starts (end if none). win holds FMT_RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE bytes. */
#define FMT_RESYNC_WINDOW (64u << 10)
struct fmt_partset;
uint64_t fmt_scan_resync(struct fmt_partset *ps, uint64_t from, uint64_t end, uint8_t *win);

/* writer.c: makes the image declare a feature (bit set and named), as a future asrimg would;
 * only tests call it, to check how this version treats images from later ones. */
int fmt_writer_declare_feature(struct asr_writer *w, enum asr_feature_class cls, unsigned bit, const char *name);
/* writer.c: lets the writer record disks and volumes that break the rules of SPEC.md sections 6
 * and 7, as a buggy or hostile writer would; only tests and the fuzz seed generator call it, to
 * check that every reader refuses such images. */
void fmt_writer_unchecked_layout(struct asr_writer *w);

/* reader.c: what the verifier cross-checks its sequential scan against. */
struct asr_reader;
const struct fmt_index *fmt_reader_index(const struct asr_reader *r);
uint64_t fmt_reader_data_start(const struct asr_reader *r);
uint64_t fmt_reader_index_offset(const struct asr_reader *r);

/* parts.c: the logical byte stream over one file or a split set. */
struct fmt_partset;
int fmt_partset_open(const char *path, struct fmt_partset **out, struct asr_error *err);
void fmt_partset_close(struct fmt_partset *ps);
uint64_t fmt_partset_size(const struct fmt_partset *ps); /* logical bytes */
uint32_t fmt_partset_count(const struct fmt_partset *ps);
uint64_t fmt_partset_split_size(const struct fmt_partset *ps);
uint64_t fmt_partset_file_bytes(const struct fmt_partset *ps);
const uint8_t *fmt_partset_uuid(const struct fmt_partset *ps);
const char *fmt_partset_path(const struct fmt_partset *ps, uint32_t part); /* 1-based */
int fmt_partset_read(struct fmt_partset *ps, uint64_t off, void *buf, size_t len, struct asr_error *err);
/* Asks the kernel to start reading [off, off+len) of the logical stream into the page cache. */
void fmt_partset_prefetch(const struct fmt_partset *ps, uint64_t off, uint64_t len);
/* Which part (1-based) and file offset hold logical byte off. */
void fmt_partset_locate(const struct fmt_partset *ps, uint64_t off, uint32_t *part, uint64_t *file_off);
/* "base" for part 1, "base.NNN" after; caller frees. */
char *fmt_part_path(const char *base, uint32_t part);

/* outfiles.c: the files of an image written under a name (IMAGE.partial, IMAGE.NNN.partial). */
struct fmt_outfiles;
/* Claims IMAGE.partial (refused while another writer holds it) and gives its descriptor. */
int fmt_outfiles_open(const char *base, bool overwrite, asr_replace_check_fn may_replace, void *ctx,
                      struct fmt_outfiles **out, int *fd, struct asr_error *err);
/* Creates the next part's .partial file and gives its descriptor. */
int fmt_outfiles_next(struct fmt_outfiles *o, int *fd, struct asr_error *err);
/* Renames the parts into place, the first last; the caller has synced and closed them. */
int fmt_outfiles_publish(struct fmt_outfiles *o, struct asr_error *err);
/* NULL-safe. Unpublished: removes the .partial files it created. */
void fmt_outfiles_free(struct fmt_outfiles *o);

#endif
