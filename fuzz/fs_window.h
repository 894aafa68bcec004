/* Shared by the filesystem-parser harnesses (fuzz_fat.c, fuzz_exfat.c, fuzz_ntfs.c, fuzz_ext.c,
 * fuzz_xfs.c, fuzz_btrfs.c; fuzz_lvm.c takes the volume file only):
 * the input becomes the start of a volume in a sparse temporary file, zero-extended to a fixed
 * window, so that a small input can still describe a large filesystem; and a map the parser
 * accepted is checked for the invariants every used-byte map must keep; and the small-file
 * reader (fs_file.h) run on the same window, its answers checked against its rules. */
#ifndef FUZZ_FS_WINDOW_H
#define FUZZ_FS_WINDOW_H
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

typedef int (*fs_parser_fn)(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);

/* The input (head replacing its first head_len bytes) at the start of a sparse temporary file of
 * window bytes, one file per process removed at exit: its descriptor, which the caller closes,
 * with *w a window over all of it; -1 when the file could not be written. */
int fs_window_open(uint64_t window, const uint8_t *data, size_t size, const uint8_t *head, size_t head_len,
                   struct asr_window *w);

/* Runs parser on a window of window_size bytes holding head (replacing the input's first
 * head_len bytes; head_len may be 0), the rest of data, then zeros. Aborts when the parser's
 * result breaks an invariant: an accepted map must be a sorted, non-empty-range list inside the
 * window with a block size and fs_type == expect_fs (NULL: any non-empty name, which the harness
 * checks itself); a refusal must leave no ranges and say why. */
void fs_window_run(fs_parser_fn parser, const char *expect_fs, uint64_t window_size, const uint8_t *data,
                   size_t size, const uint8_t *head, size_t head_len);

/* Runs parser on w (a window fs_window_open made, possibly written to since) and aborts as
 * fs_window_run does; returns the parser's status. */
int fs_window_check(fs_parser_fn parser, const char *expect_fs, const struct asr_window *w);

/* Reads each of paths from the filesystem in w as fs_read_file does (engine/fs/fs_file.h), with a
 * 64 KiB cap, and lists each path as a directory, all through one open volume; the first path
 * once more through the one-shot call, which must answer the same. Aborts when an answer breaks
 * the interface's rules: a file longer than the cap or not NUL-terminated, a refusal with a
 * buffer left, a status outside those documented, a message that is empty or not one line, a
 * listed name empty or holding '/'. */
void fs_window_read_files(const struct asr_window *w, const char *fs_type, const char *const *paths, size_t n);

#endif
