/* Positioned reads of a disk as a demanding user expects them: every byte asked for (a short
 * read goes on where it stopped), a failed read tried again before it is believed (a failing disk
 * often reads a sector on the second or third try), a failure named at the first unit that still
 * fails rather than at the start of a large read, and a disk that went away told from a bad
 * sector. Shared by the backup's reader (source.c), disk windows (ranges.c) and restore targets
 * (restore_target.c). Internal to the engine. */
#ifndef ASR_READAT_H
#define ASR_READAT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

#define ASR_READ_TRIES 3 /* reads of a failing unit, in all, before it counts as unreadable */

/* The functions below read every byte asked for (asr_pread_full of common/io.h) and return as it
 * does: 0, -errno, or ASR_IO_SHORT when the file ends before the range. */

/* asr_pread_full, read again while it fails for a reason that may go away, up to ASR_READ_TRIES
 * times in all. */
int read_tries(int fd, void *buf, size_t len, uint64_t off);
/* asr_pread_full; when it fails, read again unit by unit (the last one may be short), each unit
 * with read_tries: 0 when every unit reads, else the first failing unit's status, its offset
 * in *bad_at. */
int read_located(int fd, void *buf, size_t len, uint64_t off, uint32_t unit, uint64_t *bad_at);
/* What a status of the functions above means, for a message. */
const char *read_strerror(int rc);
/* Whether a read that failed with rc means the disk behind fd is gone (unplugged, its driver or
 * FUSE server gone), not that a sector is bad: by errno, or by its size, which then reads as less
 * than `size` (or not at all). *now is the size it reads as now. */
bool read_gone(int fd, int rc, uint64_t size, uint64_t *now);

#endif
