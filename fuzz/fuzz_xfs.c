/* libFuzzer harness for the XFS used-map parser (engine/fs/fs_xfs.c) and the small-file reader on
 * the same volume (engine/fs/fs_xfs_file.c). An XFS is at least 300 MiB with its AG headers, log
 * and inodes spread over it, so the input is not the start of a volume but records of it: a
 * 4-byte big-endian sector number, a 2-byte big-endian length, that many bytes (xfs_seeds.py
 * writes the non-zero sectors of mkfs.xfs's filesystems so), written into a sparse 512 MiB
 * window. Each input runs as given, then with the CRC of every v5 metadata block it holds
 * recomputed (superblock, AGF, free-space and block-map btree blocks, inodes, directory and
 * symbolic link blocks, found by their magic at sector starts), so mutations reach past the
 * checksums. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_window.h"
#include "xfs_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (512ull << 20) /* a sparse file: reading it costs no disk */
#define REC_HEAD 6

/* Paths of the seeds' tree: files, a symbolic link, directories of each size, misses. */
static const char *const paths[] = {
    "/etc/fstab", "/etc/os-release", "/boot/vmlinuz", "/d20", "/d150/entry-with-a-long-name-149", "/d150",
    "/",          "/etc/fstab/x",    "/usr/none"};

static int used_then_files(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = asr_xfs_used(w, out, err);
    fs_window_read_files(w, "xfs", paths, sizeof paths / sizeof paths[0]);
    return rc;
}

/* Sizes a v5 block's checksum covers, from the input's own superblock (the first record, when
 * it starts at sector 0); 0 when there is none to trust. */
struct sizes {
    size_t sect, block, inode, dir;
};

static struct sizes sizes_of(const uint8_t *data, size_t size)
{
    struct sizes z = {0};
    if (size < REC_HEAD + 264 || xfs_be32(data) != 0 || xfs_be16(data + 4) < 264 ||
        xfs_be32(data + REC_HEAD) != 0x58465342u)
        return z;
    const uint8_t *sb = data + REC_HEAD;
    unsigned bl = sb[120], sl = sb[121], il = sb[122], dl = sb[192];
    if (bl < 9 || bl > 16 || sl < 9 || sl > bl || il < 8 || il > 11 || il > bl || bl + dl > 16)
        return z;
    return (struct sizes){(size_t)1 << sl, (size_t)1 << bl, (size_t)1 << il, (size_t)1 << (bl + dl)};
}

/* The length and CRC offset of the v5 metadata block starting at p, by its magic (0: none). */
static size_t crc_span(const uint8_t *p, size_t avail, const struct sizes *z, size_t *crc_off)
{
    static const struct {
        uint32_t magic;
        size_t off;
        int kind; /* 0 sector, 1 block, 2 inode, 3 directory block */
    } kinds[] = {{0x58465342u, 224, 0}, {0x58414746u, 216, 0}, {0x41423342u, 52, 1}, {0x424D4133u, 64, 1},
                 {0x58534C4Du, 12, 1},  {0x58444233u, 4, 3},   {0x58444433u, 4, 3}};
    if (avail < 8)
        return 0;
    size_t len = 0;
    if (xfs_be16(p) == 0x494E && p[4] == 3) {
        len = z->inode;
        *crc_off = 100;
    }
    for (size_t i = 0; !len && i < sizeof kinds / sizeof kinds[0]; i++)
        if (xfs_be32(p) == kinds[i].magic) {
            len = kinds[i].kind == 0 ? z->sect : kinds[i].kind == 1 ? z->block : kinds[i].kind == 2 ? z->inode : z->dir;
            *crc_off = kinds[i].off;
        }
    return len && len <= avail && *crc_off + 4 <= len ? len : 0;
}

/* Writes the records into the window's file; with z, each v5 block found gets its CRC anew.
 * Returns whether any CRC changed. */
static bool write_records(int fd, const uint8_t *data, size_t size, const struct sizes *z)
{
    bool changed = false;
    uint8_t *copy = z ? malloc(65535) : NULL;
    for (size_t at = 0; at + REC_HEAD <= size;) {
        uint64_t off = (uint64_t)xfs_be32(data + at) * 512;
        size_t len = xfs_be16(data + at + 4);
        at += REC_HEAD;
        if (len > size - at)
            len = size - at;
        const uint8_t *bytes = data + at;
        if (copy) {
            memcpy(copy, bytes, len);
            for (size_t s = 0; s < len; s += 512) {
                size_t crc_off, span = crc_span(copy + s, len - s, z, &crc_off);
                if (!span)
                    continue;
                uint32_t c = xfs_crc(copy + s, span, crc_off);
                uint8_t le[4] = {(uint8_t)c, (uint8_t)(c >> 8), (uint8_t)(c >> 16), (uint8_t)(c >> 24)};
                changed |= memcmp(copy + s + crc_off, le, 4) != 0;
                memcpy(copy + s + crc_off, le, 4);
            }
            bytes = copy;
        }
        if (off < WINDOW && len <= WINDOW - off && pwrite(fd, bytes, len, (off_t)off) != (ssize_t)len)
            abort();
        at += len;
    }
    free(copy);
    return changed;
}

static void run(const uint8_t *data, size_t size, const struct sizes *z)
{
    struct asr_window w;
    int fd = fs_window_open(WINDOW, data, 0, data, 0, &w);
    if (fd < 0)
        return;
    bool changed = write_records(fd, data, size, z);
    if (!z || changed)
        fs_window_check(used_then_files, "xfs", &w);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, NULL);
    struct sizes z = sizes_of(data, size);
    if (z.block)
        run(data, size, &z);
    return 0;
}
