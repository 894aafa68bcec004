/* Fixtures for filesystem tests: run the real tools (mkfs.*, mtools, debugfs, fsck.*), and
 * the central check of the used-cluster maps: copy only the reported ranges onto a target full
 * of random garbage, then let the filesystem's own checker and file reads judge the result. */
#ifndef ASR_TEST_FSFIX_H
#define ASR_TEST_FSFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

/* Runs a shell command (printf-style); returns its exit status. Output goes to the test log. */
int fsfix_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like fsfix_sh but captures stdout into a malloc'd string (NULL on failure). */
char *fsfix_sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command (printf-style) and returns the number it prints (asserting it ran). */
uint64_t fsfix_sh_number(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whether a program is on PATH (tests skip, with the reason, when a tool is missing). */
bool fsfix_have(const char *program);

/* Skips the running test, with the reason, when program is not on PATH. */
void fsfix_need(const char *program);

/* Exactly n bytes at off of path, read or written (asserting). */
void fsfix_read_at(const char *path, uint64_t off, void *buf, size_t n);
void fsfix_write_at(const char *path, uint64_t off, const void *buf, size_t n);

/* Opens path read-only as a window [base, base+size). Close w->fd when done. */
struct asr_window fsfix_window(const char *path, uint64_t base, uint64_t size);

/* Writes dst: size bytes of random garbage, then, for each range in used, the bytes of src at
 * src_base + range offset copied to the same offset. */
void fsfix_copy_used(const char *src, uint64_t src_base, const struct asr_ranges *used, const char *dst,
                     uint64_t size);

/* a minus b into out (all sorted), and the bytes of a not covered by b. */
void fsfix_subtract(const struct asr_ranges *a, const struct asr_ranges *b, struct asr_ranges *out);
uint64_t fsfix_not_covered(const struct asr_ranges *a, const struct asr_ranges *b);

/* The blocks partclone (tool: "partclone.fat", "partclone.ntfs", ...) would copy from the
 * volume in img, from the ddrescue domain log it writes with -D ("+" lines), appended to out in
 * bytes from the volume's start. false when partclone cannot map the volume. */
bool fsfix_partclone_map(const char *tool, const char *img, struct asr_ranges *out);

/* A crash as jbd2 leaves it, written with debugfs: the debugfs commands in cmds_file run on a
 * copy of the ext image img (kept as after), then every block they changed lands in img: the
 * data blocks of the files named in data_paths (space-separated) in place (ordered mode), every
 * other block (bitmap, inode, directory, descriptors, superblock) only in one committed
 * transaction of the journal, written with journal_open's options jo_opts. bs: the block size. */
void fsfix_ext_crash(const char *img, const char *after, unsigned bs, const char *cmds_file, const char *data_paths,
                     const char *jo_opts);

/* Checks ranges are sorted, non-overlapping, inside [0, size). */
void fsfix_check_ranges(const struct asr_ranges *r, uint64_t size);
/* Maps the volume at the start of path (size bytes) with parse, which must succeed; checks the
 * ranges as above and logs the map's note. */
void fsfix_map(asr_used_fn parse, const char *path, uint64_t size, struct asr_usedmap *m);

#endif
