/* libFuzzer harness for the btrfs core and used map (engine/fs/btrfs_core.c, fs_btrfs.c). btrfs
 * spreads its metadata over tens of MiB (the superblock at 64 KiB, chunks from 1 MiB, a mirror
 * at 64 MiB), so the input is not the start of a volume but pieces of one: a count n (at most
 * 63), n 16-bit places (each piece lands at place * 4 KiB), then the pieces, 4 KiB each (the last
 * may be short), in a sparse 256 MiB window, zeros elsewhere. Each piece's crc32c is recomputed
 * as a 4 KiB tree block's (the piece at 64 KiB as the superblock's) before it is placed, so that
 * mutations get past the checksums, unless bit 7 of the count says to leave them. The seeds
 * (corpus/btrfs/, written by btrfs_seeds.sh) are every non-zero 4 KiB block of filesystems
 * mkfs.btrfs made with 4 KiB nodes. Then the core itself: the root tree's trees looked up and
 * searched by key range, and logical reads. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "fs_btrfs_internal.h"
#include "fs_window.h"
#include "le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (256ull << 20)
#define PIECE 4096u
#define MAX_PIECES 63u

static int count_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    (void)err;
    size_t *n = ctx;
    /* The core promises the item's data lies inside its leaf: touch every byte of it. */
    volatile uint8_t sum = 0;
    for (uint32_t i = 0; i < it->size; i++)
        sum ^= it->data[i];
    (void)sum;
    return ++*n == 100000 ? BTRFS_STOP : ASR_OK;
}

/* Every tree the root tree names, searched whole and for one key range; a refusal must say why
 * and never be BTRFS_STOP; BTRFS_E_ELSEWHERE only for a filesystem of several devices. */
static void search_trees(const struct asr_window *w)
{
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    int rc = btrfs_open(w, &fs, &err);
    if (rc != ASR_OK) {
        if (fs || !err.msg[0] || rc == BTRFS_E_ELSEWHERE || rc == BTRFS_STOP)
            abort();
        return;
    }
    static const uint64_t trees[] = {BTRFS_EXTENT_TREE_OBJECTID, BTRFS_DEV_TREE_OBJECTID, BTRFS_FS_TREE_OBJECTID,
                                     BTRFS_CSUM_TREE_OBJECTID, BTRFS_FREE_SPACE_TREE_OBJECTID};
    for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
        struct btrfs_root r;
        bool found = false;
        err = (struct asr_error){0};
        rc = btrfs_find_root(fs, trees[i], &r, &found, &err);
        if (rc == ASR_OK && found) {
            size_t n = 0;
            struct btrfs_key min = {256, 0, 0}, max = {256, 255, UINT64_MAX};
            rc = btrfs_search(fs, r.bytenr, r.level, NULL, NULL, count_item, &n, &err);
            if (rc == ASR_OK)
                rc = btrfs_search(fs, r.bytenr, r.level, &min, &max, count_item, &n, &err);
        }
        if (rc == BTRFS_STOP || (rc != ASR_OK && !err.msg[0]) || (rc == BTRFS_E_ELSEWHERE && fs->num_devices < 2))
            abort();
    }
    /* And a few logical reads: the first bytes of every chunk. */
    for (size_t k = 0; k < fs->nchunks && k < 16; k++) {
        uint8_t buf[512];
        err = (struct asr_error){0};
        rc = btrfs_read_logical(fs, "data", fs->chunks[k].logical, buf, sizeof buf, &err);
        if (rc != ASR_OK && !err.msg[0])
            abort();
    }
    btrfs_close(fs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = (data[0] & 0x7F) < MAX_PIECES ? (data[0] & 0x7F) : MAX_PIECES;
    if (size < 1 + 2 * n)
        n = (size - 1) / 2;
    const uint8_t *places = data + 1, *body = data + 1 + 2 * n;
    size_t body_len = size - 1 - 2 * n;
    struct asr_window w;
    int fd = fs_window_open(WINDOW, data, 0, NULL, 0, &w);
    if (fd < 0)
        return 0;
    bool repair = !(data[0] & 0x80);
    for (size_t i = 0; i < n && (size_t)i * PIECE < body_len; i++) {
        uint64_t at = (uint64_t)(places[2 * i] | places[2 * i + 1] << 8) * PIECE;
        size_t len = body_len - i * PIECE < PIECE ? body_len - i * PIECE : PIECE;
        uint8_t piece[PIECE] = {0};
        memcpy(piece, body + i * PIECE, len);
        if (repair) /* the sum covers everything after the 32-byte csum field */
            put_le32(piece, asr_crc32c(piece + 32, PIECE - 32));
        if (pwrite(fd, piece, repair ? PIECE : len, (off_t)at) != (ssize_t)(repair ? PIECE : len))
            abort();
    }
    int rc = fs_window_check(asr_btrfs_used, "btrfs", &w);
    if (rc == BTRFS_E_ELSEWHERE || rc == BTRFS_STOP) /* internal statuses never leave engine/fs/ */
        abort();
    search_trees(&w);
    close(fd);
    return 0;
}
