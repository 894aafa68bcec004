/* Engine-internal: a few small files read by path from a filesystem in a window, without
 * mounting it: what a root's /etc/fstab, /etc/crypttab, /etc/mdadm/mdadm.conf and
 * /etc/os-release say, and the boot loader's configuration on /boot or an ESP. fs_file.c owns the
 * dispatch by blkid type and the one-shot calls; fs_ext_file.c (ext2/3/4, libext2fs through the
 * window I/O manager), fs_fat_file.c (FAT12/16/32, long names), fs_exfat_file.c and
 * fs_btrfs_file.c (the top-level subvolume; fs_reader.h opens others) and
 * fs_xfs_file.c (XFS v4 and v5) each read one format. Every
 * read goes through the window and is bounded: a file larger than the caller's cap is refused
 * before it is read, and no metadata, however damaged, makes a lookup run on or read outside
 * the volume. Read-only. */
#ifndef ASR_FS_FILE_H
#define ASR_FS_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"
#include "fs_reader.h" /* the statuses, entry kinds and struct fs_vol the readers share */

/* struct fs_vol (fs_reader.h): an open filesystem, for reading several files at the cost of
 * one open (the one-shot calls below open and close one each time). */

/* Opens the filesystem in w that blkid named fs_type ("ext4", "vfat", ...): ASR_E_UNSUPPORTED
 * for a type this interface does not read (ntfs, swap, ...), ASR_E_CORRUPT (or the
 * window's ASR_E_IO) when its superblock or boot sector fails its checks or describes more than
 * this reader holds (ASR_E_LIMIT is kept for files over the cap). An ext filesystem
 * with a journal to recover is read as the recovery will leave it when this reader can replay
 * the journal, else as it stands. */
int fs_vol_open(const struct asr_window *w, const char *fs_type, struct fs_vol **out, struct asr_error *err);
void fs_vol_close(struct fs_vol *v); /* NULL-safe */

/* Reads the regular file at the absolute path (names separated by '/', "." and repeated '/'
 * ignored, ".." the parent; ext and xfs follow symbolic links within the filesystem, absolute ones
 * from its root, 8 deep at most; FAT compares names ignoring ASCII case) into
 * *out (malloc'd, NUL-terminated past *len bytes for text parsers; free it). ASR_OK; FS_E_NOT_FOUND;
 * FS_E_NOT_FILE; ASR_E_LIMIT when the file holds more than cap bytes (nothing read);
 * ASR_E_CORRUPT when metadata on the way is damaged (a cluster chain that loops or ends early,
 * an entry pointing outside the volume, symbolic links that loop, a checksum that fails);
 * ASR_E_IO when the disk fails a read; ASR_E_ARG for a path that is not absolute;
 * ASR_E_UNSUPPORTED when metadata or data on the way lies where the reader cannot read it
 * (btrfs: only on another device of a multi-device filesystem). err says what
 * and where in one line in every case but ASR_OK. */
int fs_vol_read(struct fs_vol *v, const char *path, size_t cap, uint8_t **out, size_t *len, struct asr_error *err);

/* Calls fn for each entry of the directory at the absolute path. ASR_OK; FS_E_NOT_FOUND;
 * FS_E_NOT_DIR; ASR_E_CORRUPT, ASR_E_IO, ASR_E_ARG as above. */
int fs_vol_list(struct fs_vol *v, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err);

/* One-shot: fs_vol_open, then fs_vol_read or fs_vol_list, then fs_vol_close. */
int fs_read_file(const struct asr_window *w, const char *fs_type, const char *path, size_t cap, uint8_t **out,
                 size_t *len, struct asr_error *err);
int fs_list_dir(const struct asr_window *w, const char *fs_type, const char *path, fs_dir_fn fn, void *ctx,
                struct asr_error *err);

#endif
