/* Public API of the engine (engine/): reading disks, their layout, and which bytes of each
 * volume are in use. The CLI and tests use only this header; the engine uses format/ only
 * through asr_format.h. Errors follow format/'s convention: enum asr_status plus a message. */
#ifndef ASR_ENGINE_H
#define ASR_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "asr_format.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- byte ranges ------------------------------------------------------------------------- */

struct asr_range {
    uint64_t offset, length;
};

/* A sorted list of non-overlapping, non-touching ranges, built in increasing order. */
struct asr_ranges {
    struct asr_range *v;
    size_t n, cap;
};

/* Appends [off, off+len): off must not be below the end of the last range (touching ranges merge).
 * Returns ASR_OK, ASR_E_ARG (out of order) or ASR_E_NOMEM. len 0 is a no-op. */
int asr_ranges_add(struct asr_ranges *r, uint64_t off, uint64_t len);
uint64_t asr_ranges_bytes(const struct asr_ranges *r);
void asr_ranges_free(struct asr_ranges *r);

/* ---- a window onto a disk ---------------------------------------------------------------- */

/* A volume as a byte window [base, base+size) of an open disk. Every read through it is checked
 * against the window, so a parser fed garbage can never read outside its partition. */
struct asr_window {
    int fd;
    const char *path; /* the disk, for libraries that open it themselves (libext2fs) */
    uint64_t base;
    uint64_t size;
};

/* Reads exactly len bytes at off within the window; ASR_E_CORRUPT naming the offset when the
 * range falls outside it (metadata pointing outside its volume), ASR_E_IO on a read error. */
int asr_window_read(const struct asr_window *w, uint64_t off, void *buf, size_t len, struct asr_error *err);

/* ---- used-byte maps ---------------------------------------------------------------------- */

struct asr_usedmap {
    struct asr_ranges used; /* byte ranges of the volume that hold data or metadata */
    uint32_t block_size;    /* the filesystem's allocation unit (cluster) */
    char fs_type[32];
    char fs_uuid[64];
    char fs_label[64];
};

/* Each parser fills out->used with every byte the filesystem needs: boot sectors and their
 * backups, allocation metadata, directories, journals, and the clusters its allocation map marks
 * used. On metadata that fails the filesystem's own rules it returns ASR_E_CORRUPT with a message
 * saying what and where; the caller then falls back to a full capture. */
int asr_fat_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_exfat_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_ntfs_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_ext_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
int asr_swap_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err);
void asr_usedmap_free(struct asr_usedmap *m);

#ifdef __cplusplus
}
#endif
#endif
