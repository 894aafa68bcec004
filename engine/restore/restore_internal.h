/* What the restore modules share: the opened targets (restore_target.c), the mirrored writer and
 * its data pass (restore.c), the partition table and boot regions (restore_layout.c) and the
 * read-back comparison (restore_compare.c). Internal to the engine. */
#ifndef ASR_RESTORE_INTERNAL_H
#define ASR_RESTORE_INTERNAL_H

#include "asr_engine.h"

struct restore_target {
    struct asr_restore_target_info info;
    char *path;
    int fd;          /* O_DIRECT when `direct`: every write through it is aligned to `align` */
    int fd_buffered; /* the same target through the page cache, for the odd unaligned edge */
    bool direct;
    uint32_t align;  /* offsets, lengths and buffers of O_DIRECT I/O are multiples of this */
};

/* The image a restore reads: a file or split set (the reader, with its index), or a stream from
 * a pipe, which gives the layout first and its extents only as the data passes. */
struct restore_image {
    struct asr_reader *r;
    struct asr_stream *s;
};

static inline uint32_t img_disk_count(const struct restore_image *im)
{
    return im->r ? asr_reader_disk_count(im->r) : asr_stream_disk_count(im->s);
}
static inline const struct asr_disk_desc *img_disk(const struct restore_image *im, uint32_t i)
{
    return im->r ? asr_reader_disk(im->r, i) : asr_stream_disk(im->s, i);
}
static inline uint32_t img_volume_count(const struct restore_image *im)
{
    return im->r ? asr_reader_volume_count(im->r) : asr_stream_volume_count(im->s);
}
static inline const struct asr_volume_desc *img_volume(const struct restore_image *im, uint32_t i)
{
    return im->r ? asr_reader_volume(im->r, i) : asr_stream_volume(im->s, i);
}
static inline const struct asr_image_info *img_info(const struct restore_image *im)
{
    return im->r ? asr_reader_info(im->r) : asr_stream_info(im->s);
}

/* Extents of one volume as a streamed restore met them (the reader has its own). */
struct extent_list {
    struct asr_extent *v;
    uint64_t n;
    size_t cap;
};

struct asr_restore {
    struct restore_image im;
    struct asr_reader *r; /* im.r: NULL for a stream */
    struct extent_list *seen; /* per volume, for a stream: what --verify compares */
    bool read_only;
    size_t n;
    struct restore_target *t;
    int *locks; /* flock'ed descriptors of the targets and what they read (restore_target.c) */
    size_t nlocks;
};

#define ASR_RESTORE_MAX_TARGETS 256u

/* restore_target.c: creates the targets that are new files (after the plan was accepted). */
int asr_restore_targets_ready(struct asr_restore *rs, struct asr_error *err);

/* A volume's extents: the index's, or those a stream has delivered so far. */
static inline const struct asr_extent *img_extents(const struct asr_restore *rs, uint32_t v, uint64_t *n)
{
    if (rs->r)
        return asr_reader_extents(rs->r, v, n);
    *n = rs->seen[v].n;
    return rs->seen[v].v;
}
/* A volume's totals and content hash; NULL for a stream that has not reached its end. */
static inline const struct asr_volume_stats *img_volume_stats(const struct asr_restore *rs, uint32_t v)
{
    return rs->r ? asr_reader_volume_stats(rs->r, v) : asr_stream_volume_stats(rs->im.s, v);
}

/* restore_mirror.c: the mirrored writer. Bytes are appended in disk order (a gap starts a new
 * run); every target of the current group receives each run, and is marked ASR_TARGET_PARTIAL
 * from the first write to it. The first failure sticks in the err given to restore_mirror_new
 * and every later call returns it. */
struct restore_mirror;
int restore_mirror_new(size_t max_targets, struct asr_error *err, struct restore_mirror **out);
void restore_mirror_free(struct restore_mirror *m); /* NULL-safe; waits for writes in flight */
/* Writes what is staged to the current group, then makes t (nt targets) the group. t is
 * kept: the caller flushes before it changes the array. */
int restore_mirror_targets(struct restore_mirror *m, struct restore_target **t, size_t nt);
/* Stages len bytes of data (NULL: zeros) for disk offset off on every target of the group. */
int restore_mirror_append(struct restore_mirror *m, uint64_t off, const uint8_t *data, size_t len);
/* Makes [off, off+len) read as zeros: a hole or BLKZEROOUT where the target can (a new file
 * already reads as zeros), written zeros where it cannot. */
int restore_mirror_zero(struct restore_mirror *m, uint64_t off, uint64_t len);
/* Whether bytes of [off, off+len) of the current group are still staged or being written (a
 * read of them from a target must wait for restore_mirror_flush). */
bool restore_mirror_holds(const struct restore_mirror *m, uint64_t off, uint64_t len);
/* Writes what is staged and waits for every write in flight. */
int restore_mirror_flush(struct restore_mirror *m);

/* restore.c: one pass of data onto the targets, shared by the file and the pipe passes. */
struct restore_pass {
    struct asr_restore *rs;
    const struct asr_restore_options *opt;
    struct asr_restore_stats *st;
    struct restore_mirror *m;
    struct restore_target **group; /* targets of the current disk */
    uint32_t disk;
    bool have_disk;
    uint64_t done, total;
    size_t damaged_cap, unreadable_cap;
};
/* Sends what follows to the targets of image disk `disk`. */
int restore_pass_disk(struct restore_pass *p, uint32_t disk);
/* An extent the image cannot give (a damaged chunk `ref`, or ASR_REF_UNREADABLE): listed in the
 * stats and zeroed on the targets. */
int restore_pass_lost(struct restore_pass *p, uint32_t volume, const struct asr_extent *e, uint64_t ref,
                      struct asr_error *err);
unsigned restore_worker_count(unsigned asked); /* 0: one per online core */

/* restore_stream.c: the pass from a pipe. */
int restore_stream_pass(struct restore_pass *p, struct asr_error *err);

/* restore_layout.c: raw boot regions byte-exact, then libfdisk where the table must change
 * (a larger GPT disk, new ids, growth). Runs after the data, so that an interrupted restore
 * does not leave a table that looks finished. */
int asr_restore_layout(struct asr_restore *rs, const struct asr_restore_options *opt, struct asr_restore_stats *st,
                       struct asr_error *err);
/* Bytes at the end of a target that disk d's partition table takes there (a GPT's backup entries
 * and header), so that --discard and --zero-unused spare them. */
uint64_t asr_restore_table_tail(const struct asr_disk_desc *d);

/* restore_target.c: reads exactly len bytes at off from a target, through O_DIRECT when it can
 * (what is on the media, not what the page cache remembers), any alignment. */
int asr_target_read(struct restore_target *t, uint64_t off, void *buf, size_t len, struct asr_error *err);
/* The same in one request, for a caller whose off, len and buf are aligned to t->align (and buf
 * to 4096) whenever t->direct. */
int asr_target_read_aligned(struct restore_target *t, uint64_t off, void *buf, size_t len, struct asr_error *err);
/* Writes len bytes at off through the page cache, all of them. */
int asr_target_pwrite(struct restore_target *t, const void *buf, size_t len, uint64_t off, struct asr_error *err);
int asr_target_sync(struct restore_target *t, struct asr_error *err);

#endif
