/* libFuzzer harness for the btrfs path reader (engine/fs/fs_btrfs_file.c) and the compressed
 * extents it reads (btrfs_decomp.c). A btrfs filesystem spreads its metadata over megabytes, so
 * the input is not the start of a volume: it is a list of 4 KiB blocks, each a 4-byte
 * little-endian block number then the block, laid into a sparse 128 MiB window
 * (btrfs_file_seeds.sh writes mkfs.btrfs images so, with 4 KiB tree blocks). Each input runs as
 * given, then with the superblock's and every tree block's crc32c written again (a block is taken
 * for a tree block when it carries the superblock's fsid), so mutations reach the items behind
 * the checksums. Every answer is checked against the interface's rules (fs_file.h, fs_reader.h):
 * a file within the cap and NUL-terminated, a refusal with no buffer, a documented status, a
 * message of one line; listed names not empty and without '/'; subvolume paths absolute. The
 * tail of the input also goes to btrfs_decompress for each compression type. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "btrfs_decomp.h"
#include "crc32c.h"
#include "fs_file.h"
#include "le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (128ull << 20)
#define BLOCK 4096u
#define RECORD (4u + BLOCK)
#define CAP (64u << 10)
#define SUPER_BLOCK (0x10000u / BLOCK)

static const char *const paths[] = {"/root/etc/fstab", "/root/etc/os-release", "/root/etc/zstd.txt",
                                    "/root/etc/lzo.txt", "/root/etc/zlib.txt", "/root/data/reg",
                                    "/root/etc",       "/root/none",           "/"};

static void check_refusal(int rc, const struct asr_error *err)
{
    if ((int)err->code != rc || !err->msg[0] || !memchr(err->msg, 0, sizeof err->msg) || strchr(err->msg, '\n'))
        abort();
}

static void check_read(int rc, const uint8_t *buf, size_t len, const struct asr_error *err)
{
    if (rc == ASR_OK) {
        if (!buf || len > CAP || buf[len] != 0)
            abort();
        return;
    }
    if (buf || len ||
        (rc != FS_E_NOT_FOUND && rc != FS_E_NOT_FILE && rc != ASR_E_LIMIT && rc != ASR_E_CORRUPT && rc != ASR_E_IO &&
         rc != ASR_E_NOMEM && rc != ASR_E_UNSUPPORTED))
        abort();
    check_refusal(rc, err);
}

static int check_name(void *ctx, const char *name, enum fs_kind kind)
{
    size_t *names = ctx;
    if (!name[0] || strchr(name, '/') || strlen(name) > FS_NAME_MAX || (unsigned)kind > FS_KIND_OTHER)
        abort();
    return ++*names == 10000;
}

static void check_list(int rc, const struct asr_error *err)
{
    if (rc == ASR_OK)
        return;
    if (rc != FS_E_NOT_FOUND && rc != FS_E_NOT_DIR && rc != ASR_E_CORRUPT && rc != ASR_E_IO && rc != ASR_E_NOMEM &&
        rc != ASR_E_UNSUPPORTED)
        abort();
    check_refusal(rc, err);
}

static void check_open(int rc, const struct fs_vol *v, const struct asr_error *err)
{
    if (rc == ASR_OK ? !v : v || rc == ASR_E_LIMIT)
        abort();
    if (rc != ASR_OK)
        check_refusal(rc, err);
}

static void read_all(const struct asr_window *w)
{
    struct fs_vol *v;
    struct asr_error err = {0};
    int rc = fs_vol_open(w, "btrfs", &v, &err);
    check_open(rc, v, &err);
    for (size_t i = 0; v && i < sizeof paths / sizeof paths[0]; i++) {
        uint8_t *buf;
        size_t len, names = 0;
        err = (struct asr_error){0};
        int got = fs_vol_read(v, paths[i], CAP, &buf, &len, &err);
        check_read(got, buf, len, &err);
        free(buf);
        err = (struct asr_error){0};
        check_list(fs_vol_list(v, paths[i], check_name, &names, &err), &err);
    }
    fs_vol_close(v);
    if (rc != ASR_OK)
        return;
    /* The subvolumes, and each one opened as the root (the default among them). */
    struct fs_btrfs_subvol *s;
    size_t n;
    err = (struct asr_error){0};
    rc = fs_btrfs_subvols(w, &s, &n, &err);
    if (rc != ASR_OK) {
        check_refusal(rc, &err);
        return;
    }
    for (size_t i = 0; i < n && i < 8; i++) {
        if (!s[i].path || s[i].path[0] != '/')
            abort();
        err = (struct asr_error){0};
        rc = fs_btrfs_vol_open_subvol(w, i ? s[i].id : FS_BTRFS_DEFAULT, &v, &err);
        check_open(rc, v, &err);
        uint8_t *buf;
        size_t len;
        err = (struct asr_error){0};
        if (v) {
            rc = fs_vol_read(v, "/etc/fstab", CAP, &buf, &len, &err);
            check_read(rc, buf, len, &err);
            free(buf);
        }
        fs_vol_close(v);
    }
    fs_btrfs_subvols_free(s, n);
}

/* Writes the crc32c of every block carrying the superblock's fsid (tree blocks of 4 KiB) and of
 * the superblock itself; returns whether anything changed. */
static int repair(int fd, const uint8_t *data, size_t size)
{
    uint8_t super[BLOCK], b[BLOCK];
    if (pread(fd, super, BLOCK, 0x10000) != BLOCK)
        return 0;
    int changed = 0;
    for (size_t at = 0; at + RECORD <= size; at += RECORD) {
        uint32_t n = get_le32(data + at);
        if ((uint64_t)n * BLOCK + BLOCK > WINDOW)
            continue;
        memcpy(b, data + at + 4, BLOCK);
        if (n != SUPER_BLOCK && memcmp(b + 32, super + 32, 16))
            continue;
        uint32_t sum = asr_crc32c(b + 32, BLOCK - 32);
        if (get_le32(b) == sum)
            continue;
        put_le32(b, sum);
        if (pwrite(fd, b, BLOCK, (off_t)n * BLOCK) == BLOCK)
            changed = 1;
    }
    return changed;
}

static void decompress_tail(const uint8_t *data, size_t size)
{
    static uint8_t out[BTRFS_MAX_UNCOMPRESSED];
    size_t at = size / RECORD * RECORD, got;
    for (int type = 0; type <= 4 && at < size; type++) {
        struct asr_error err = {0};
        int rc = btrfs_decompress(type, data + at, size - at, out, sizeof out, &got, BLOCK, "tail", &err);
        if (got > sizeof out || (rc != ASR_OK && (err.code != (enum asr_status)rc || !err.msg[0])))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("btrfs", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)WINDOW)) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    for (size_t at = 0; at + RECORD <= size; at += RECORD) {
        uint64_t off = (uint64_t)get_le32(data + at) * BLOCK;
        if (off + BLOCK <= WINDOW && pwrite(fd, data + at + 4, BLOCK, (off_t)off) != BLOCK)
            abort();
    }
    struct asr_window w = {.fd = fd, .path = "fuzz", .base = 0, .size = WINDOW};
    read_all(&w);
    if (repair(fd, data, size))
        read_all(&w);
    close(fd);
    decompress_tail(data, size);
    return 0;
}
