/* Engine-internal: what fs_fat.c knows of a FAT12/16/32 volume that its path reader
 * (fs_fat_file.c) needs too: the geometry derived from a validated BPB, and FAT entries read
 * through a small cache. Everything here reads only through the window. */
#ifndef ASR_FS_FAT_INTERNAL_H
#define ASR_FS_FAT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "asr_engine.h"

/* Entries the walk keeps at hand for following chains: an even count, so that a FAT12 piece
 * starts on a whole byte (128 KiB of FAT32). Chains of files written in one go run through it
 * sequentially. */
#define FAT_CACHE_ENTRIES (1u << 15)
/* The specification's limit on a directory: 65536 entries of 32 bytes. */
#define DIR_MAX_BYTES (65536u * 32)

struct fat_geom {
    uint32_t bits; /* 12, 16 or 32 */
    uint32_t clusters; /* data clusters, numbered 2 .. clusters + 1 */
    uint32_t root_cluster; /* FAT32 only */
    uint64_t cluster_bytes;
    uint64_t fat_offset;   /* bytes: the FAT copy the allocation is read from */
    uint64_t root_offset;  /* bytes: the FAT12/16 fixed root directory */
    uint64_t root_bytes;   /* its length (0 on FAT32) */
    uint64_t data_offset;  /* bytes: cluster 2 */
    bool has_serial;       /* the extended boot signature says the volume serial is there */
    uint32_t serial;
};

/* Validates the BPB in b (the volume's first 512 bytes) against a window of `window` bytes and
 * derives the layout: every field that decides where a later read goes is checked here.
 * ASR_E_CORRUPT saying which field fails. */
int fat_parse_bpb(const uint8_t *b, uint64_t window, struct fat_geom *g, struct asr_error *err);
/* Reads the boot sector of the volume in w and parses it as above: the one way both the used map
 * and the path reader learn a volume's geometry. */
int fat_read_geom(const struct asr_window *w, struct fat_geom *g, struct asr_error *err);

/* Whether FAT entry value v (masked to the FAT's width) marks its cluster as holding data (not
 * free, not the bad mark); the first end-of-chain value; whether c is a data cluster. */
int fat_entry_used(uint32_t v, uint32_t bits);
uint32_t fat_end_of_chain(uint32_t bits);
int fat_valid_cluster(const struct fat_geom *g, uint64_t c);

/* FAT entries read FAT_CACHE_ENTRIES at a time (set w and g, zero the rest, before use). */
struct fat_cache {
    const struct asr_window *w;
    const struct fat_geom *g;
    uint64_t start; /* entry index of buf's first entry: a multiple of FAT_CACHE_ENTRIES */
    uint32_t count; /* entries held; 0: none */
    uint8_t buf[FAT_CACHE_ENTRIES * 4];
};
/* The entry of data cluster c (fat_valid_cluster), masked to the FAT's width. */
int fat_entry(struct fat_cache *fc, uint32_t c, uint32_t *v, struct asr_error *err);

#endif
