/* What libblkid's superblock probe recognises in a window of a disk: the one place the engine
 * asks it, so that every caller (a volume's filesystem in analyze.c, the boot sector and the
 * partitions weighed by disk.c's layout reader) runs only the probers that are safe on crafted
 * input. Internal to the engine. */
#ifndef ASR_PROBE_H
#define ASR_PROBE_H

#include "asr_engine.h"

struct probe {
    char type[32];    /* blkid's TYPE ("vfat", "ntfs", ...); "" when nothing or several matched */
    char version[32]; /* its VERSION ("FAT32", ...), when it has one */
    char uuid[64];
    char label[64];
};

/* Probes w for one filesystem (or other superblock: swap, LVM, LUKS, ...). only, when not NULL,
 * is a NULL-terminated list of the TYPEs to try; else every type blkid knows but the unsafe
 * ones. Returns 1 when one was recognised (out filled), 0 when none was, -2 when several were
 * (blkid calls that ambiguous: something is there, out says nothing), -1 when blkid failed, and
 * below -2 a read's -errno (the caller may try again: readat.h). */
int probe_window(const struct asr_window *w, const char *const *only, struct probe *out);

#endif
