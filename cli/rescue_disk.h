/* cli/rescue_disk.h: the recovery drive's partitions and filesystems (rescue_disk.c). */
#ifndef ASR_CLI_RESCUE_DISK_H
#define ASR_CLI_RESCUE_DISK_H

#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

enum { RESCUE_PART_BIOS, RESCUE_PART_ESP, RESCUE_PART_DATA, RESCUE_PARTS };

struct rescue_part {
    uint32_t number;  /* 1-based; 0: absent */
    uint64_t offset, size; /* bytes */
    char guid[37];    /* the partition's unique GUID, lowercase */
};

struct rescue_layout {
    uint32_t sector;
    struct rescue_part part[RESCUE_PARTS];
};

/* A new GPT on fd: BIOS boot (1 MiB at 1 MiB), the ESP (esp_bytes), the data partition over the
 * rest (Linux data for ext4, basic data otherwise), read back into lay. */
int rescue_disk_partition(int fd, const char *path, uint64_t esp_bytes, const char *data_fs, struct rescue_layout *lay,
                          struct asr_error *err);
/* The layout of a drive rescue make made (the ESP found by its type, data after it). */
int rescue_disk_read(int fd, const char *path, struct rescue_layout *lay, struct asr_error *err);

/* A loop device over p's bytes of path, its name in dev. Detach writes the device's cache back
 * first (failing if it cannot) and ignores "". */
int rescue_loop_attach(const char *path, const struct rescue_part *p, char *dev, size_t len, struct asr_error *err);
int rescue_loop_detach(const char *dev, struct asr_error *err);

int rescue_mkfs_esp(const char *dev, struct asr_error *err);
/* fs: "exfat", "ext4" or "fat32"; images/ made on it. */
int rescue_mkfs_data(const char *dev, const char *fs, const char *label, struct asr_error *err);
/* One mtools command on the FAT filesystem at dev: tool -i dev [-o] a [b]. */
int rescue_mtools(const char *dev, const char *tool, const char *a, const char *b, const char *doing,
                  struct asr_error *err);
/* A file of the FAT filesystem at dev (mtype) into out. */
int rescue_mtools_read(const char *dev, const char *path, char *out, size_t len, struct asr_error *err);

/* GRUB for BIOS: core.img (made in workdir) into the BIOS boot partition, boot.img into the MBR. */
int rescue_grub_bios(int fd, const char *path, const struct rescue_layout *lay, const char *workdir,
                     struct asr_error *err);

#endif
