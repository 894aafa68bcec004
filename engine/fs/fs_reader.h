/* Engine-internal: what the readers of small files by path share with each other and with
 * fs_file.c, which dispatches to them (fs_file.h): the statuses and entry kinds of the
 * interface, the open volume each reader returns, and the name handling FAT and exFAT share
 * (fs_names.c). Kept apart from fs_file.h so that the readers depend on this, and fs_file.c on
 * them, never the other way round. */
#ifndef ASR_FS_READER_H
#define ASR_FS_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

/* Beyond enum asr_status: answers about the path rather than failures of the volume. Numbered
 * well past asr_status's codes, so neither is mistaken for the other (asr_status_name calls
 * them "unknown error": show err->msg). */
#define FS_E_NOT_FOUND 100 /* a component of the path does not exist, or is not a directory */
#define FS_E_NOT_FILE 101  /* fs_read_file: the path is a directory (or a device, a socket...) */
#define FS_E_NOT_DIR 102   /* fs_list_dir: the path is not a directory */

/* What a directory entry is. A symbolic link is reported as one (ext): fs_read_file follows it. */
enum fs_kind { FS_KIND_FILE, FS_KIND_DIR, FS_KIND_SYMLINK, FS_KIND_OTHER };

/* Called for each name of a directory, "." and ".." left out: name is NUL-terminated, not empty
 * and holds no '/' (ext: the bytes as stored; FAT: the long name in UTF-8, else the 8.3 name;
 * entries whose names break these rules are damage, and left out). Return 0 to go on, anything
 * else to stop the listing (fs_list_dir then returns ASR_OK). */
typedef int (*fs_dir_fn)(void *ctx, const char *name, enum fs_kind kind);

struct fs_vol;

struct fs_vol_ops {
    int (*read)(struct fs_vol *v, const char *path, size_t cap, uint8_t **out, size_t *len, struct asr_error *err);
    int (*list)(struct fs_vol *v, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err);
    void (*close)(struct fs_vol *v);
};

/* The first member of each format's open volume. */
struct fs_vol {
    const struct fs_vol_ops *ops;
};

int fs_ext_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err);
int fs_fat_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err);
int fs_exfat_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err);
int fs_xfs_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err);

/* btrfs (fs_btrfs_file.c). fs_btrfs_vol_open opens the top-level subvolume (id 5), as a mount
 * with subvolid=5 shows it: every other subvolume is a directory there, so Fedora's root
 * (subvolume "root") is read as /root/etc/fstab. fs_btrfs_vol_open_subvol opens subvolume id
 * instead ("/" is its root directory, absolute symbolic links resolve in it), or the default
 * subvolume (set-default's; the top level unless moved) for FS_BTRFS_DEFAULT: FS_E_NOT_FOUND
 * when no such subvolume exists. ASR_E_UNSUPPORTED for a filesystem (or a file) whose blocks
 * lie on another of its devices. */
#define FS_BTRFS_DEFAULT 0
int fs_btrfs_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err);
int fs_btrfs_vol_open_subvol(const struct asr_window *w, uint64_t subvol, struct fs_vol **out,
                             struct asr_error *err);

/* A subvolume of a btrfs filesystem: what fstab's subvolid= (id) and subvol= (path) name. */
struct fs_btrfs_subvol {
    uint64_t id, parent; /* parent: the subvolume holding it (0 for the top level) */
    char *path;          /* from the top level: "/" for it, "/root", "/home/nested", as subvol= takes them */
    bool is_default;     /* the default subvolume: mounted when fstab names none */
};
/* Every subvolume of the filesystem in w, the top level (id 5, path "/") first, then in id
 * order, into *out (free with fs_btrfs_subvols_free). Deleted subvolumes not yet cleaned up are
 * left out. ASR_OK, ASR_E_CORRUPT, ASR_E_IO, ASR_E_UNSUPPORTED, ASR_E_NOMEM. */
int fs_btrfs_subvols(const struct asr_window *w, struct fs_btrfs_subvol **out, size_t *n, struct asr_error *err);
void fs_btrfs_subvols_free(struct fs_btrfs_subvol *s, size_t n);

/* n UTF-16 units (ending early at a 0 unit) as UTF-8 into out, which holds 3 * n + 1 bytes;
 * unpaired surrogates become '?'. */
void fs_utf16_to_utf8(const uint16_t *u, size_t n, char *out);
/* Whether a (NUL-terminated) and the n bytes at b are the same name, ASCII letters folded and
 * every other byte compared as it is: how FAT and exFAT names are matched (their own rules fold
 * more, through code pages and the up-case table; the names looked up here are ASCII). */
bool fs_same_name(const char *a, const char *b, size_t n);

/* The readers see paths made absolute and clean by fs_file.c ("/" or "/a/b", no "." names):
 * names of at most FS_NAME_MAX bytes, at most FS_PATH_MAX_PARTS of them (ASR_E_ARG beyond). */
#define FS_NAME_MAX 255
#define FS_PATH_MAX_PARTS 64

#endif
