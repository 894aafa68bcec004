/* Freezing the filesystems of one source volume while it is read (FIFREEZE), for
 * engine/backup/freezing.c, which decides what is frozen when. Internal to the engine. */
#ifndef ASR_FREEZE_H
#define ASR_FREEZE_H
#include "asr_engine.h"

/* Filesystems frozen (FIFREEZE) while a volume is read, so that what is read is one consistent
 * state. A freezer holds the filesystems of one volume at a time. While they are frozen a child
 * process waits on a socket and thaws them if this process dies without doing so (SIGKILL, the
 * OOM killer): a frozen root filesystem hangs the machine. */
struct freezer;
int freezer_new(struct freezer **out, struct asr_error *err);
void freezer_free(struct freezer *f); /* NULL-safe; thaws what is still frozen */
/* Freezes every writable filesystem in m, once each however many times it is mounted. When one
 * cannot be frozen (already frozen, a filesystem that does not support it) it thaws those it
 * froze and returns ASR_E_IO naming the mount point; nothing is left frozen. */
int freezer_freeze(struct freezer *f, const struct asr_mounts *m, struct asr_error *err);
/* How many filesystems f holds frozen now. */
size_t freezer_frozen_count(const struct freezer *f);
/* Thaws what f froze. One already thawed (by freezer_thaw_from_signal, or fsfreeze -u) is no error;
 * ASR_E_IO names one that could not be thawed. */
int freezer_thaw(struct freezer *f, struct asr_error *err);
/* Thaws what f froze, from a signal handler (async-signal-safe, any thread): the program then
 * stops as it would without frozen filesystems. freezer_thaw must still be called. */
void freezer_thaw_from_signal(struct freezer *f);

#endif
