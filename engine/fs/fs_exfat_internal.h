/* Engine-internal: what fs_exfat.c knows of an exFAT volume that its path reader
 * (fs_exfat_file.c) needs too: the geometry from a validated boot sector, the boot region's
 * checksum, FAT entries through a small cache, and FAT chains followed with loop detection.
 * Everything here reads only through the window. */
#ifndef ASR_FS_EXFAT_INTERNAL_H
#define ASR_FS_EXFAT_INTERNAL_H

#include <stdint.h>

#include "asr_engine.h"

#define EXFAT_EOC 0xFFFFFFFFu
#define EXFAT_DIR_MAX_BYTES (256ull << 20) /* the specification's limit on a directory's size */
#define EXFAT_FAT_CACHE_BYTES (64u << 10)
#define EXFAT_READ_PIECE (1u << 20) /* bitmap and directory reads: bounded whatever the volume says */

/* Directory entry types. */
#define ENTRY_END 0x00
#define ENTRY_FILE 0x85
#define ENTRY_STREAM 0xC0
#define ENTRY_NAME 0xC1

struct exfat_geom {
    uint32_t sector_shift, cluster_shift; /* cluster_shift: log2 of cluster bytes */
    uint32_t clusters;                    /* ClusterCount: clusters 2 .. clusters + 1 */
    uint32_t root_cluster;
    uint32_t fats;
    uint64_t fat_offset, fat_bytes; /* first FAT and the length of each, in bytes */
    uint64_t active_fat_offset;
    uint64_t heap_offset;
    uint32_t active; /* VolumeFlags.ActiveFat: which FAT and which bitmap are current */
    uint32_t serial;
};

/* Reads the boot sector, checks the fields of it that place everything else, then reads the
 * main boot region and checks its checksum sector: the one way both the used map and the path
 * reader learn a volume's geometry. */
int exfat_read_geom(const struct asr_window *w, struct exfat_geom *g, struct asr_error *err);

uint64_t exfat_cluster_offset(const struct exfat_geom *g, uint32_t c);
int exfat_valid_cluster(const struct exfat_geom *g, uint64_t c);

/* FAT entries read EXFAT_FAT_CACHE_BYTES at a time (set w and g, zero the rest, before use). */
struct exfat_cache {
    const struct asr_window *w;
    const struct exfat_geom *g;
    uint64_t start; /* entry index of buf[0] */
    uint32_t count; /* entries held; 0: empty */
    uint8_t buf[EXFAT_FAT_CACHE_BYTES];
};

int exfat_fat_entry(struct exfat_cache *fc, uint32_t c, uint32_t *next, struct asr_error *err);

/* A FAT chain walk with Brent's cycle detection: a loop is caught within twice its length
 * rather than after the length cap, which on a large volume would take millions of reads. */
struct exfat_chain {
    struct exfat_cache *fc;
    const char *what;
    uint32_t cur, tortoise;
    uint64_t steps, limit, power, lam;
};

/* Starts a chain at first (ASR_E_CORRUPT when it is no cluster), at most limit clusters long. */
int exfat_chain_start(struct exfat_chain *ch, struct exfat_cache *fc, const char *what, uint32_t first, uint64_t limit,
                      struct asr_error *err);
/* Advances to the next cluster of the chain; *done when the current one ends it. ASR_E_CORRUPT
 * for a link out of the heap, a loop, or a chain past its limit. */
int exfat_chain_next(struct exfat_chain *ch, int *done, struct asr_error *err);

#endif
