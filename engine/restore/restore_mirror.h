/* The mirrored writer (restore_mirror.c). Bytes are appended in disk order (a gap starts a new
 * run); every target of the current group receives each run, and is marked ASR_TARGET_PARTIAL
 * from the first write to it. The first failure sticks in the err given to restore_mirror_new
 * and every later call returns it. Internal to the engine. */
#ifndef ASR_RESTORE_MIRROR_H
#define ASR_RESTORE_MIRROR_H

#include "restore_target.h"

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

#endif
