/* exFAT used-byte maps (asr_exfat_used) on volumes made by mkfs.exfat and filled through
 * exfat-fuse: only the reported ranges are copied onto garbage, then fsck.exfat and a byte compare
 * of every file judge the copy; dump.exfat's cluster count and partclone.exfat's map cross-check. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "asr_engine.h"
#include "clock.h"
#include "fsfix.h"
#include "le.h"
#include "support.h"

static char loopdev[64], mountpoint[512];

static void unmount_all(void)
{
    if (mountpoint[0])
        fsfix_sh("fusermount -u %s", mountpoint);
    if (loopdev[0])
        fsfix_sh("losetup -d %s", loopdev);
    mountpoint[0] = loopdev[0] = '\0';
}

static void teardown(void)
{
    unmount_all();
    scratch_cleanup();
}

TestSuite(fs_exfat, .fini = teardown, .timeout = 120);

/* ---- images and files --------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The boot sector fields the tests use to find and damage structures. */
struct layout {
    uint64_t sector, cluster, fat, fat_bytes, heap;
    uint32_t fats, clusters, root;
};

static struct layout read_layout(const char *img)
{
    uint8_t b[512];
    fsfix_read_at(img, 0, b, sizeof b);
    struct layout l = {
        .sector = 1ull << b[108], .fats = b[110], .clusters = get_le32(b + 92), .root = get_le32(b + 96)};
    l.cluster = l.sector << b[109];
    l.fat = get_le32(b + 80) * l.sector;
    l.fat_bytes = get_le32(b + 84) * l.sector;
    l.heap = get_le32(b + 88) * l.sector;
    return l;
}

static uint64_t cluster_at(const struct layout *l, uint32_t c) { return l->heap + (uint64_t)(c - 2) * l->cluster; }

/* Rewrites the main boot region's checksum sector after a test changed the boot sector, so the
 * damage under test is what the parser meets rather than the checksum. */
static void fix_checksum(const char *img)
{
    uint8_t b[512];
    fsfix_read_at(img, 0, b, sizeof b);
    size_t sector = (size_t)1 << (b[108] >= 9 && b[108] <= 12 ? b[108] : 9);
    uint8_t *region = malloc(12 * sector);
    fsfix_read_at(img, 0, region, 12 * sector);
    uint32_t sum = 0;
    for (size_t i = 0; i < 11 * sector; i++)
        if (i != 106 && i != 107 && i != 112)
            sum = ((sum & 1) ? 0x80000000u : 0) + (sum >> 1) + region[i];
    for (size_t i = 11 * sector; i < 12 * sector; i += 4)
        put32(region + i, sum);
    fsfix_write_at(img, 0, region, 12 * sector);
    free(region);
}

static void make_tree(const char *dir, int small_files, unsigned big_kib)
{
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/docs/deep/deeper %1$s/many; cd %1$s;"
                          "for i in $(seq 1 %2$d); do head -c $(( (i * 7919) %% 9000 )) /dev/urandom > many/f$i.txt; done;"
                          "head -c 4097 /dev/urandom > docs/'A long file name, with spaces.dat'; : > docs/empty;"
                          "head -c 70000 /dev/urandom > docs/deep/deeper/nested.bin;"
                          "head -c %3$uK /dev/urandom > big.bin",
                          dir, small_files, big_kib),
                 0);
}

/* ---- exfat-fuse through a loop device ------------------------------------------------------ */

/* exfat-fuse, run as root, mounts with FUSE's blkdev option, which needs a block device (on a
 * plain file the kernel answers "Block device required"), hence the loop device. The blkdev
 * mount also makes unmounting wait for the daemon to write everything back. */
static void mount_exfat(const char *dev_or_img, bool attach, bool ro)
{
    fsfix_need("mount.exfat-fuse");
    fsfix_need("fusermount");
    fsfix_need("losetup");
    if (geteuid() != 0)
        cr_skip_test("exfat-fuse needs a loop device, and loop devices need root");
    const char *dev = dev_or_img;
    if (attach) {
        char *out = fsfix_sh_out("losetup -f --show %s %s 2>/dev/null", ro ? "-r" : "", dev_or_img);
        if (!out)
            cr_skip_test("losetup cannot attach a loop device here");
        snprintf(loopdev, sizeof loopdev, "%.*s", (int)strcspn(out, "\n"), out);
        free(out);
        dev = loopdev;
    }
    char *mnt = scratch_path("mnt");
    snprintf(mountpoint, sizeof mountpoint, "%s", mnt);
    free(mnt);
    cr_assert_eq(fsfix_sh("mkdir -p %s", mountpoint), 0);
    if (fsfix_sh("mount.exfat-fuse %s %s %s >/dev/null", ro ? "-o ro" : "", dev, mountpoint) != 0) {
        mountpoint[0] = '\0';
        unmount_all();
        cr_skip_test("mount.exfat-fuse cannot mount here (FUSE unavailable?)");
    }
}

/* Fills the mounted volume like the FAT tests do: junk first, then the tree, then the junk and
 * two tree files deleted (also from the source tree, which stays the expected content), then
 * one late file that may reuse freed clusters. */
static void populate_mounted(const char *tree)
{
    cr_assert_eq(fsfix_sh("set -e; M=%1$s; mkdir $M/junk;"
                          "for i in 1 2 3 4 5 6; do head -c $((i * 30000)) /dev/urandom > $M/junk/j$i; done;"
                          "cp -r %2$s/. $M/; rm -r $M/junk; rm $M/many/f3.txt $M/many/f8.txt %2$s/many/f3.txt %2$s/many/f8.txt;"
                          "head -c 50000 /dev/urandom > %2$s/late.bin; cp %2$s/late.bin $M/",
                          mountpoint, tree),
                 0);
}

/* ---- cross-checks -------------------------------------------------------------------------- */

/* partclone.exfat copies everything before the cluster heap, including the alignment gaps
 * mkfs.exfat leaves after the boot regions and after the FATs (1 MiB each by default), which
 * hold nothing: we skip them. In the heap both follow the allocation bitmap. So partclone's map
 * must equal ours plus exactly those two gaps. */
static bool cross_check_partclone(const char *img, const struct asr_ranges *ours)
{
    if (!fsfix_have("partclone.exfat"))
        return false; /* the caller skips the test, after freeing, once every other check passed */
    struct asr_ranges theirs = {0};
    cr_assert(fsfix_partclone_map("partclone.exfat", img, &theirs), "partclone.exfat could not map %s", img);
    struct layout l = read_layout(img);
    uint64_t gaps = (l.fat - 24 * l.sector) + (l.heap - l.fat - l.fats * l.fat_bytes);
    uint64_t only_ours = fsfix_not_covered(ours, &theirs), only_theirs = fsfix_not_covered(&theirs, ours);
    cr_log_info("used bytes: asrimg %llu, partclone.exfat %llu (only asrimg %llu, only partclone %llu; alignment gaps %llu)",
                (unsigned long long)asr_ranges_bytes(ours), (unsigned long long)asr_ranges_bytes(&theirs),
                (unsigned long long)only_ours, (unsigned long long)only_theirs, (unsigned long long)gaps);
    cr_assert_eq(only_ours, 0, "asrimg maps %llu bytes partclone.exfat does not", (unsigned long long)only_ours);
    cr_assert_eq(only_theirs, gaps, "partclone.exfat maps %llu bytes we skip, the alignment gaps are %llu",
                 (unsigned long long)only_theirs, (unsigned long long)gaps);
    asr_ranges_free(&theirs);
    return true;
}

/* dump.exfat counts the bitmap's free clusters itself: our heap bytes must match. */
static bool check_dump_count(const char *img, uint64_t used)
{
    if (!fsfix_have("dump.exfat"))
        return false;
    uint64_t clusters = fsfix_sh_number("dump.exfat %s | awk -F: '/Total Clusters/ {t = $2} /Free Clusters/ {f = $2} END {print t - f}'",
             img);
    struct layout l = read_layout(img);
    uint64_t meta = 24 * l.sector + l.fats * l.fat_bytes;
    cr_assert_eq(used - meta, clusters * l.cluster, "we map %llu heap clusters, dump.exfat counts %llu in use",
                 (unsigned long long)((used - meta) / l.cluster), (unsigned long long)clusters);
    return true;
}

/* ---- the round trip ---------------------------------------------------------------------- */

struct exfat_case {
    const char *mkfs; /* mkfs.exfat options */
    uint64_t size;
    uint32_t cluster;
    uint32_t sector;  /* 4096: made on a loop device with 4096-byte logical sectors */
    int small_files;
    unsigned big_kib;
    uint64_t base;    /* > 0: embed the volume at this offset of a larger disk file */
};

static void run_case(const struct exfat_case *c)
{
    fsfix_need("mkfs.exfat");
    fsfix_need("fsck.exfat");
    char *img = scratch_path("exfat.img"), *tree = scratch_path("tree");
    cr_assert_eq(fsfix_sh("truncate -s %llu %s", (unsigned long long)c->size, img), 0);
    make_tree(tree, c->small_files, c->big_kib);
    if (c->sector == 4096) {
        fsfix_need("losetup");
        if (geteuid() != 0)
            cr_skip_test("a 4096-byte-sector volume needs a loop device, and loop devices need root");
        char *out = fsfix_sh_out("losetup -f --show --sector-size 4096 %s 2>/dev/null", img);
        if (!out)
            cr_skip_test("this kernel gives no loop device with 4096-byte sectors");
        snprintf(loopdev, sizeof loopdev, "%.*s", (int)strcspn(out, "\n"), out);
        free(out);
        cr_assert_eq(fsfix_sh("mkfs.exfat %s %s >/dev/null", c->mkfs, loopdev), 0);
        mount_exfat(loopdev, false, false);
    } else {
        cr_assert_eq(fsfix_sh("mkfs.exfat %s %s >/dev/null", c->mkfs, img), 0);
        mount_exfat(img, true, false);
    }
    populate_mounted(tree);
    unmount_all();
    cr_assert_eq(fsfix_sh("fsck.exfat -n %s >/dev/null", img), 0, "the source volume itself is not clean");
    uint64_t files = fsfix_sh_number("find %s -type f -printf '%%s\\n' | awk '{s += $1} END {print s + 0}'", tree);

    char *disk = img;
    if (c->base) {
        disk = scratch_path("disk.img");
        cr_assert_eq(fsfix_sh("set -e; head -c %1$llu /dev/urandom > %2$s; cat %3$s >> %2$s; head -c 1M /dev/urandom >> %2$s",
                              (unsigned long long)c->base, disk, img),
                     0);
    }
    struct asr_window w = fsfix_window(disk, c->base, c->size);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_exfat_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);

    cr_assert_str_eq(m.fs_type, "exfat");
    cr_assert_eq(m.block_size, c->cluster);
    char *blkid = fsfix_sh_out("blkid -p -o value -s UUID %s", img);
    if (blkid)
        cr_assert_eq(strncmp(blkid, m.fs_uuid, strlen(m.fs_uuid)), 0, "uuid %s, blkid says %s", m.fs_uuid, blkid);
    free(blkid);
    fsfix_check_ranges(&m.used, c->size);
    uint64_t used = asr_ranges_bytes(&m.used);
    cr_log_info("mkfs.exfat %s: %llu-byte volume, %llu bytes of files, %llu bytes used in %zu ranges", c->mkfs,
                (unsigned long long)c->size, (unsigned long long)files, (unsigned long long)used, m.used.n);
    cr_assert_geq(used, files);
    cr_assert_leq(used, 2 * files + 128ull * c->cluster + (8u << 20), "used %llu of %llu bytes: too much",
                  (unsigned long long)used, (unsigned long long)c->size);
    if (c->size >= 128 << 20)
        cr_assert_lt(used, c->size / 10, "a mostly empty volume maps %llu of %llu bytes", (unsigned long long)used,
                     (unsigned long long)c->size);

    /* The copy: only our ranges, onto garbage. */
    char *target = scratch_path("target.img");
    fsfix_copy_used(disk, c->base, &m.used, target, c->size);
    cr_assert_eq(fsfix_sh("fsck.exfat -n %s", target), 0, "fsck.exfat finds the used-range copy damaged");
    if (c->sector == 4096) {
        char *out = fsfix_sh_out("losetup -f --show -r --sector-size 4096 %s 2>/dev/null", target);
        cr_assert_not_null(out);
        snprintf(loopdev, sizeof loopdev, "%.*s", (int)strcspn(out, "\n"), out);
        free(out);
        mount_exfat(loopdev, false, true);
    } else {
        mount_exfat(target, true, true);
    }
    cr_assert_eq(fsfix_sh("diff -r %s %s", tree, mountpoint), 0, "files read back from the copy differ");
    unmount_all();

    bool counted = check_dump_count(img, used), crossed = cross_check_partclone(img, &m.used);
    asr_usedmap_free(&m);
    if (disk != img)
        free(disk);
    free(img);
    free(tree);
    free(target);
    if (!counted || !crossed)
        cr_skip_test("%s missing: every check passed but that cross-check", !counted ? "dump.exfat" : "partclone.exfat");
}

Test(fs_exfat, clusters_4k)
{
    run_case(&(struct exfat_case){.mkfs = "-c 4K -L Daten", .size = 64 << 20, .cluster = 4096, .small_files = 80,
                                  .big_kib = 3072});
}

Test(fs_exfat, clusters_128k)
{
    run_case(&(struct exfat_case){.mkfs = "-c 128K", .size = 256 << 20, .cluster = 128 << 10, .small_files = 40,
                                  .big_kib = 4096});
}

/* --pack-bitmap puts the bitmap right after the FATs: the heap starts off the 1 MiB boundary. */
Test(fs_exfat, packed_bitmap)
{
    run_case(&(struct exfat_case){.mkfs = "-c 32K --pack-bitmap", .size = 128 << 20, .cluster = 32 << 10, .small_files = 40,
                                  .big_kib = 2048});
}

Test(fs_exfat, sectors_4096)
{
    run_case(&(struct exfat_case){.mkfs = "-c 4K", .size = 64 << 20, .cluster = 4096, .sector = 4096, .small_files = 40,
                                  .big_kib = 2048});
}

/* A partition at an odd offset (1 MiB + 3 sectors) of a disk whose other bytes are garbage. */
Test(fs_exfat, volume_inside_a_partition)
{
    run_case(&(struct exfat_case){.mkfs = "-c 4K", .size = 64 << 20, .cluster = 4096, .small_files = 40, .big_kib = 1024,
                                  .base = (1 << 20) + 3 * 512});
}

Test(fs_exfat, label_and_uuid)
{
    fsfix_need("mkfs.exfat");
    char *img = scratch_path("label.img");
    cr_assert_eq(fsfix_sh("truncate -s 16M %1$s && mkfs.exfat -L 'Caf\xc3\xa9 Bilder' %1$s >/dev/null", img), 0);
    struct asr_window w = fsfix_window(img, 0, 16 << 20);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_exfat_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    cr_assert_str_eq(m.fs_label, "Caf\xc3\xa9 Bilder");
    char *blkid = fsfix_sh_out("blkid -p -o value -s UUID %s", img);
    if (blkid)
        cr_assert_eq(strncmp(blkid, m.fs_uuid, 9), 0, "uuid %s, blkid says %s", m.fs_uuid, blkid);
    free(blkid);
    asr_usedmap_free(&m);
    free(img);
}

static bool covered(const struct asr_ranges *r, uint64_t off, uint64_t len)
{
    for (size_t i = 0; i < r->n; i++)
        if (off >= r->v[i].offset && off + len <= r->v[i].offset + r->v[i].length)
            return true;
    return false;
}

static uint64_t root_entry(const char *img, const struct layout *l, uint8_t type);

/* Two FATs and two bitmaps (TexFAT), which no tool here writes, built by hand from a fresh
 * volume: the second bitmap lives in cluster 100 and also marks cluster 200. Whichever FAT is
 * active, the map is the union of both bitmaps. */
Test(fs_exfat, two_fats_two_bitmaps)
{
    fsfix_need("mkfs.exfat");
    char *img = scratch_path("texfat.img");
    cr_assert_eq(fsfix_sh("truncate -s 64M %1$s && mkfs.exfat -c 4K %1$s >/dev/null", img), 0);
    struct layout l = read_layout(img);
    cr_assert_geq(l.heap, l.fat + 2 * l.fat_bytes, "no room for a second FAT");
    uint8_t *fat = malloc(l.fat_bytes);
    fsfix_read_at(img, l.fat, fat, l.fat_bytes);
    put32(fat + 4 * 100, 0xFFFFFFFF); /* the second bitmap: one cluster */
    fsfix_write_at(img, l.fat, fat, l.fat_bytes);
    fsfix_write_at(img, l.fat + l.fat_bytes, fat, l.fat_bytes);
    free(fat);

    uint64_t entry = root_entry(img, &l, 0x81);
    uint8_t e[32];
    fsfix_read_at(img, entry, e, sizeof e);
    size_t need_bytes = (l.clusters + 7) / 8;
    uint8_t *bitmap = malloc(need_bytes);
    fsfix_read_at(img, cluster_at(&l, get_le32(e + 20)), bitmap, need_bytes);
    cr_assert_eq(bitmap[(200 - 2) / 8] | bitmap[(100 - 2) / 8], 0, "clusters 100 and 200 not free");
    bitmap[(100 - 2) / 8] |= 1u << ((100 - 2) % 8);
    fsfix_write_at(img, cluster_at(&l, get_le32(e + 20)), bitmap, need_bytes);
    bitmap[(200 - 2) / 8] |= 1u << ((200 - 2) % 8);
    fsfix_write_at(img, cluster_at(&l, 100), bitmap, need_bytes);
    free(bitmap);
    e[1] = 1; /* BitmapFlags: the bitmap of the second FAT */
    put32(e + 20, 100);
    fsfix_write_at(img, root_entry(img, &l, 0x00), e, sizeof e);
    patch_byte(img, 110, 2);
    fix_checksum(img);

    for (uint8_t active = 0; active < 2; active++) {
        patch_byte(img, 106, active); /* VolumeFlags: outside the checksum */
        struct asr_window w = fsfix_window(img, 0, 64 << 20);
        struct asr_usedmap m = {0};
        struct asr_error err = {0};
        cr_assert_eq(asr_exfat_used(&w, &m, &err), ASR_OK, "active FAT %u: %s", active, err.msg);
        close(w.fd);
        fsfix_check_ranges(&m.used, 64 << 20);
        cr_assert(covered(&m.used, l.fat, 2 * l.fat_bytes), "both FATs are copied");
        cr_assert(covered(&m.used, cluster_at(&l, 100), l.cluster), "the second bitmap is copied");
        cr_assert(covered(&m.used, cluster_at(&l, 200), l.cluster), "a cluster only the second bitmap marks is copied");
        cr_assert(!covered(&m.used, cluster_at(&l, 300), l.cluster), "a free cluster is copied");
        asr_usedmap_free(&m);
    }
    free(img);
}

/* ---- malformed volumes: ASR_E_CORRUPT, never a crash or a read outside the window ------- */

static char *fresh(void)
{
    fsfix_need("mkfs.exfat");
    char *img = scratch_path("damaged.img");
    cr_assert_eq(fsfix_sh("rm -f %1$s && truncate -s 64M %1$s && mkfs.exfat -c 4K %1$s >/dev/null", img), 0);
    return img;
}

static void expect_corrupt_window(const char *img, uint64_t window, const char *fragment)
{
    struct asr_window w = fsfix_window(img, 0, window);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    int rc = asr_exfat_used(&w, &m, &err);
    close(w.fd);
    cr_assert_eq(rc, ASR_E_CORRUPT, "rc %d (%s), expected corrupt: %s", rc, err.msg, fragment);
    cr_assert(strstr(err.msg, fragment), "message \"%s\" lacks \"%s\"", err.msg, fragment);
    cr_assert_eq(m.used.n, 0, "ranges left behind on failure");
    asr_usedmap_free(&m);
}

static void expect_corrupt(const char *img, const char *fragment) { expect_corrupt_window(img, 64 << 20, fragment); }

static void patch32(const char *img, uint64_t off, uint32_t v)
{
    uint8_t b[4];
    put32(b, v);
    fsfix_write_at(img, off, b, 4);
}

/* ---- the walk is bounded: loops, tangles and wild links end it, fast ----------------------- */

/* Writes a file entry set (file, stream extension, one name entry) at volume offset at. */
static void put_set(const char *img, uint64_t at, const char *name, bool dir, bool contiguous, uint32_t first,
                    uint64_t length)
{
    uint8_t e[96] = {0};
    e[0] = 0x85, e[1] = 2, e[4] = dir ? 0x10 : 0x20;
    e[32] = 0xC0, e[33] = (uint8_t)(1 | (contiguous ? 2 : 0)), e[35] = (uint8_t)strlen(name);
    put32(e + 32 + 20, first);
    put32(e + 32 + 24, (uint32_t)length);
    put32(e + 32 + 28, (uint32_t)(length >> 32));
    memcpy(e + 32 + 8, e + 32 + 24, 8); /* ValidDataLength */
    e[64] = 0xC1;
    for (size_t k = 0; name[k] && k < 15; k++)
        e[66 + 2 * k] = (uint8_t)name[k];
    fsfix_write_at(img, at, e, sizeof e);
}

/* A file whose chain loops on itself with a 1 TiB length, a directory listing the root as its
 * subdirectory, one whose chain loops, a link out of the volume, a contiguous file running past
 * the heap's end: mapped, with what is referenced taken. Without loop detection the looping file
 * alone would spend the walk's budget and the volume be captured whole. */
Test(fs_exfat, walk_survives_loops_and_wild_links)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    uint64_t at = root_entry(img, &l, 0x00);
    put_set(img, at, "loop", false, false, 1000, 1ull << 40);
    patch32(img, l.fat + 4 * 1000ull, 1000);
    put_set(img, at + 96, "self", true, false, l.root, l.cluster);
    put_set(img, at + 192, "dloop", true, false, 1100, 1 << 20);
    patch32(img, l.fat + 4 * 1100ull, 1101);
    patch32(img, l.fat + 4 * 1101ull, 1100);
    put_set(img, at + 288, "far", false, true, 0x7FFFFFF0, 1 << 20);
    put_set(img, at + 384, "huge", false, true, l.clusters - 4, 1ull << 62);

    struct asr_usedmap m = {0};
    fsfix_map(asr_exfat_used, img, 64 << 20, &m);
    cr_assert(covered(&m.used, cluster_at(&l, 1000), l.cluster), "the looping file's cluster is not captured");
    cr_assert(covered(&m.used, cluster_at(&l, 1100), 2 * l.cluster), "the looping directory is not captured");
    cr_assert(covered(&m.used, cluster_at(&l, l.clusters - 4), 6 * l.cluster), "the heap's last clusters are not captured");
    cr_assert(!covered(&m.used, cluster_at(&l, 1001), l.cluster), "a free cluster nothing references is captured");
    cr_assert(strstr(m.note, "9 clusters referenced"), "note: \"%s\"", m.note);
    asr_usedmap_free(&m);
    free(img);
}

/* A directory of ten thousand 1 TiB files, all running down one chain through the heap: the walk
 * stops at its budget, and the volume is captured whole. */
Test(fs_exfat, walk_refuses_a_tangle)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    uint8_t *fat = malloc(l.fat_bytes);
    fsfix_read_at(img, l.fat, fat, l.fat_bytes);
    for (uint32_t c = 100; c < l.clusters + 2; c++)
        put32(fat + 4 * (size_t)c, c + 1 < l.clusters + 2 ? c + 1 : 0xFFFFFFFF);
    fsfix_write_at(img, l.fat, fat, l.fat_bytes);
    free(fat);
    put_set(img, root_entry(img, &l, 0x00), "tangle", true, true, 5000, 1 << 20);
    for (uint64_t at = 0; at + 96 <= 1 << 20; at += 96)
        put_set(img, cluster_at(&l, 5000) + at, "f", false, false, 100, 1ull << 40);
    expect_corrupt(img, "cross-linked beyond use");
    free(img);
}

Test(fs_exfat, boot_checksum_mismatch)
{
    char *img = fresh();
    patch_byte(img, 200, 0x5A); /* boot code: covered by the checksum */
    expect_corrupt(img, "boot checksum mismatch");
    free(img);
}

Test(fs_exfat, bytes_per_sector_shift_13)
{
    char *img = fresh();
    patch_byte(img, 108, 13);
    fix_checksum(img);
    expect_corrupt(img, "bytes per sector shift 13");
    free(img);
}

Test(fs_exfat, clusters_above_32_mib)
{
    char *img = fresh();
    patch_byte(img, 109, 17); /* 512 << 17: 64 MiB clusters */
    fix_checksum(img);
    expect_corrupt(img, "above 32 MiB");
    free(img);
}

Test(fs_exfat, cluster_count_beyond_the_volume)
{
    char *img = fresh();
    patch32(img, 92, 16000); /* the FAT has room for 16382; the volume for 15872 */
    fix_checksum(img);
    expect_corrupt(img, "cluster heap ends");
    free(img);
}

Test(fs_exfat, three_fats)
{
    char *img = fresh();
    patch_byte(img, 110, 3);
    fix_checksum(img);
    expect_corrupt(img, "number of FATs 3");
    free(img);
}

Test(fs_exfat, fat_overlapping_the_boot_regions)
{
    char *img = fresh();
    patch32(img, 80, 12);
    fix_checksum(img);
    expect_corrupt(img, "inside the boot regions");
    free(img);
}

Test(fs_exfat, root_cluster_out_of_range)
{
    char *img = fresh();
    patch32(img, 96, 0x7FFFFFFF);
    fix_checksum(img);
    expect_corrupt(img, "root directory cluster");
    free(img);
}

/* A window that ends before the volume does (truncated image, shrunken partition). */
Test(fs_exfat, truncated_image)
{
    char *img = fresh();
    cr_assert_eq(fsfix_sh("truncate -s 32M %s", img), 0);
    expect_corrupt_window(img, 32 << 20, "exceeds its 33554432-byte window");
    free(img);
}

/* The root directory's FAT entry points at itself. */
Test(fs_exfat, root_chain_self_loop)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    patch32(img, l.fat + 4ull * l.root, l.root);
    expect_corrupt(img, "loops back");
    free(img);
}

/* root -> a free cluster -> root: a two-cluster loop, caught by the cycle check rather than
 * by the length cap. */
Test(fs_exfat, root_chain_two_cluster_loop)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    uint32_t other = l.clusters; /* the last cluster: free on a fresh volume */
    patch32(img, l.fat + 4ull * l.root, other);
    patch32(img, l.fat + 4ull * other, l.root);
    expect_corrupt(img, "loops back");
    free(img);
}

/* A long loop: root -> c1 -> ... -> c300 -> c1. */
Test(fs_exfat, root_chain_long_loop)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    uint32_t first = 1000;
    patch32(img, l.fat + 4ull * l.root, first);
    for (uint32_t c = first; c < first + 300; c++)
        patch32(img, l.fat + 4ull * c, c + 1 < first + 300 ? c + 1 : first);
    expect_corrupt(img, "loops back");
    free(img);
}

Test(fs_exfat, root_chain_to_an_invalid_cluster)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    patch32(img, l.fat + 4ull * l.root, 1);
    expect_corrupt(img, "invalid cluster 1");
    free(img);
}

Test(fs_exfat, root_chain_to_a_bad_cluster_mark)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    patch32(img, l.fat + 4ull * l.root, 0xFFFFFFF7);
    expect_corrupt(img, "bad-cluster mark");
    free(img);
}

/* Offset of the first root directory entry of the given type. */
static uint64_t root_entry(const char *img, const struct layout *l, uint8_t type)
{
    uint8_t e[32];
    for (uint64_t at = cluster_at(l, l->root); at < cluster_at(l, l->root) + l->cluster; at += 32) {
        fsfix_read_at(img, at, e, sizeof e);
        if (e[0] == type)
            return at;
    }
    cr_assert_fail("no entry of type 0x%02X in the root directory", type);
    return 0;
}

Test(fs_exfat, bitmap_too_short)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    uint64_t e = root_entry(img, &l, 0x81);
    patch32(img, e + 24, (l.clusters + 7) / 8 - 1);
    expect_corrupt(img, "allocation bitmap 0 is");
    free(img);
}

Test(fs_exfat, bitmap_outside_the_heap)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    patch32(img, root_entry(img, &l, 0x81) + 20, l.clusters + 2); /* one past the last cluster */
    expect_corrupt(img, "outside the cluster heap");
    free(img);
}

Test(fs_exfat, no_bitmap)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    patch_byte(img, root_entry(img, &l, 0x81), 0x01); /* a deleted entry now */
    expect_corrupt(img, "no allocation bitmap 0");
    free(img);
}


/* ---- damaged volumes: every cluster the directories reference is captured ------------------ */

/* A file or directory as its stream extension describes it. */
struct xfile {
    uint32_t first;
    uint64_t length;
    bool contiguous;
};

/* The clusters of f, in order (at most cap). */
static size_t xfile_clusters(const char *img, const struct layout *l, const struct xfile *f, uint32_t *v, size_t cap)
{
    size_t n = 0, want = (size_t)((f->length + l->cluster - 1) / l->cluster);
    for (uint32_t c = f->first; n < want && n < cap && c >= 2 && c < l->clusters + 2;) {
        v[n++] = c;
        if (f->contiguous) {
            c++;
        } else {
            uint8_t e[4];
            fsfix_read_at(img, l->fat + 4ull * c, e, 4);
            c = get_le32(e);
        }
    }
    return n;
}

/* The entry set named name (ASCII) in directory dir. */
static struct xfile find_xfile(const char *img, const struct layout *l, const struct xfile *dir, const char *name)
{
    uint32_t clusters[64];
    size_t n = xfile_clusters(img, l, dir, clusters, 64);
    uint8_t *d = malloc(n * l->cluster);
    for (size_t k = 0; k < n; k++)
        fsfix_read_at(img, cluster_at(l, clusters[k]), d + k * l->cluster, l->cluster);
    for (size_t i = 0; i + 32 <= n * l->cluster && d[i]; i += 32) {
        if (d[i] != 0x85)
            continue;
        const uint8_t *stream = d + i + 32;
        char got[256];
        size_t len = 0;
        for (size_t k = 2; k <= d[i + 1] && len < stream[3] && i + 32 * (k + 1) <= n * l->cluster; k++)
            for (int u = 0; u < 15 && len < stream[3]; u++)
                got[len++] = (char)d[i + 32 * k + 2 + 2 * u];
        got[len] = '\0';
        if (!strcmp(got, name)) {
            struct xfile f = {get_le32(stream + 20), get_le64(stream + 24), stream[1] & 2};
            free(d);
            return f;
        }
    }
    free(d);
    cr_assert_fail("no entry %s in the directory at cluster %u", name, dir->first);
    return (struct xfile){0};
}

/* Clears cluster c's bit in the allocation bitmap, which the root directory locates. */
static void clear_bit(const char *img, const struct layout *l, uint32_t c)
{
    uint8_t e[32], byte;
    fsfix_read_at(img, root_entry(img, l, 0x81), e, sizeof e);
    uint64_t at = cluster_at(l, get_le32(e + 20)) + (c - 2) / 8;
    fsfix_read_at(img, at, &byte, 1);
    patch_byte(img, at, (uint8_t)(byte & ~(1u << ((c - 2) % 8))));
}

/* What the tools see on a volume, into the directory view: fsck.exfat -n's report (the volume's
 * name made neutral) and exit status, and every file exfat-fuse reads. */
static void exfat_view(const char *img, const char *view)
{
    cr_assert_eq(fsfix_sh("V=%2$s; mkdir -p $V; fsck.exfat -n %1$s >$V/fsck.txt 2>&1; echo \"exit $?\" >>$V/fsck.txt;"
                          "sed -i 's|%1$s|VOLUME|g' $V/fsck.txt",
                          img, view),
                 0);
    mount_exfat(img, true, true);
    cr_assert_eq(fsfix_sh("cp -r %s %s/files 2>/dev/null; echo \"exit $?\" >%s/cp.exit", mountpoint, view, view), 0);
    unmount_all();
}

/* A volume whose bitmap has holes where files and directories are: every cluster of the docs
 * directory, the second cluster of many (a directory along a FAT chain), and every cluster of
 * big.bin (contiguous, NoFatChain). Copied by the map onto garbage, it must read as the source
 * does: the same fsck.exfat report, the same files through exfat-fuse (which reads by the
 * directory entries, as every reader does, whatever the bitmap says). */
Test(fs_exfat, damaged_bitmap)
{
    fsfix_need("mkfs.exfat");
    fsfix_need("fsck.exfat");
    char *img = scratch_path("damaged.img"), *tree = scratch_path("tree");
    cr_assert_eq(fsfix_sh("truncate -s 64M %1$s && mkfs.exfat -c 4K %1$s >/dev/null", img), 0);
    make_tree(tree, 80, 512);
    mount_exfat(img, true, false);
    populate_mounted(tree);
    unmount_all();
    struct layout l = read_layout(img);
    struct xfile root = {l.root, 1ull << 30, false}, docs = find_xfile(img, &l, &root, "docs");
    struct xfile many = find_xfile(img, &l, &root, "many"), big = find_xfile(img, &l, &root, "big.bin");
    uint32_t v[1024];
    size_t n = xfile_clusters(img, &l, &docs, v, 1024);
    for (size_t i = 0; i < n; i++)
        clear_bit(img, &l, v[i]);
    n = xfile_clusters(img, &l, &many, v, 1024);
    cr_assert_geq(n, 2, "many is %zu cluster(s)", n);
    cr_assert(!many.contiguous, "exfat-fuse made many contiguous: no FAT chain to test");
    clear_bit(img, &l, v[1]);
    cr_assert(big.contiguous, "big.bin is not marked contiguous");
    n = xfile_clusters(img, &l, &big, v, 1024);
    for (size_t i = 0; i < n; i++)
        clear_bit(img, &l, v[i]);
    cr_assert_neq(fsfix_sh("fsck.exfat -n %s >/dev/null", img), 0, "the damage went unnoticed by fsck.exfat");

    struct asr_usedmap m = {0};
    fsfix_map(asr_exfat_used, img, 64 << 20, &m);
    cr_assert(strstr(m.note, "free in the allocation bitmap"), "note: \"%s\"", m.note);

    char *target = scratch_path("target.img"), *src_view = scratch_path("src.view"), *copy_view = scratch_path("copy.view");
    fsfix_copy_used(img, 0, &m.used, target, 64 << 20);
    exfat_view(img, src_view);
    exfat_view(target, copy_view);
    cr_assert_eq(fsfix_sh("diff -r %s %s", src_view, copy_view), 0, "the copy reads differently from its source");
    /* The damage is invisible to readers, or the comparison above proves less: exfat-fuse reads
     * every file of the source. */
    cr_assert_eq(fsfix_sh("diff -r %s %s/files", tree, src_view), 0);
    asr_usedmap_free(&m);
    free(target);
    free(src_view);
    free(copy_view);
    free(img);
    free(tree);
}

/* The root directory's cluster marked free in the bitmap: captured (it is the root), with a
 * note, rather than the whole volume. */
Test(fs_exfat, root_cluster_free_in_the_bitmap)
{
    char *img = fresh();
    struct layout l = read_layout(img);
    clear_bit(img, &l, l.root);
    struct asr_window w = fsfix_window(img, 0, 64 << 20);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_exfat_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    cr_assert(covered(&m.used, cluster_at(&l, l.root), l.cluster), "the root directory's cluster is not captured");
    cr_assert(strstr(m.note, "1 cluster referenced by directory entries is free") && strstr(m.note, "the root directory"),
              "note: \"%s\"", m.note);
    asr_usedmap_free(&m);
    free(img);
}

/* The volume: 2 TiB (sparse), one directory cluster marked free. Mapped by the bitmap plus
 * that cluster in well under a second, not captured whole. */
Test(fs_exfat, huge_volume_with_one_free_directory_cluster)
{
    fsfix_need("mkfs.exfat");
    char *img = scratch_path("huge.img");
    uint64_t size = 2ull << 40;
    if (fsfix_sh("truncate -s %llu %s && mkfs.exfat %s >/dev/null", (unsigned long long)size, img, img) != 0)
        cr_skip_test("no room for a sparse 2 TiB file here");
    struct layout l = read_layout(img);
    clear_bit(img, &l, l.root);
    struct asr_window w = fsfix_window(img, 0, size);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    double t0 = asr_now();
    cr_assert_eq(asr_exfat_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    double seconds = asr_now() - t0;
    close(w.fd);
    uint64_t used = asr_ranges_bytes(&m.used);
    cr_log_info("2 TiB exFAT, root cluster free in the bitmap: %llu bytes used, mapped in %.3f s: %s",
                (unsigned long long)used, seconds, m.note);
    cr_assert(covered(&m.used, cluster_at(&l, l.root), l.cluster), "the root directory's cluster is not captured");
    cr_assert_lt(used, 256ull << 20, "%llu bytes of an empty 2 TiB volume", (unsigned long long)used);
    asr_usedmap_free(&m);
    free(img);
}

/* Random boot sectors with the fixed fields and checksum right, so the geometry checks and
 * everything after them meet garbage: rejected or mapped in bounds, never a crash. */
Test(fs_exfat, random_boot_sectors)
{
    char *img = scratch_path("random.img");
    uint8_t sector[512];
    for (int i = 0; i < 300; i++) {
        for (size_t got = 0; got < sizeof sector;)
            got += (size_t)getrandom(sector + got, sizeof sector - got, 0);
        memcpy(sector, "\xEB\x76\x90" "EXFAT   ", 11);
        memset(sector + 11, 0, 53);
        sector[105] = 1;
        sector[108] = 9;
        sector[109] %= 8;
        sector[110] = 1 + (sector[110] & 1);
        put32(sector + 72, 1u << 12); /* 2 MiB */
        put32(sector + 76, 0);
        put32(sector + 80, 24 + (get_le32(sector + 80) % 64));
        put32(sector + 84, 1 + get_le32(sector + 84) % 64);
        put32(sector + 88, get_le32(sector + 80) + 2 * get_le32(sector + 84) + get_le32(sector + 88) % 64);
        put32(sector + 92, 1 + get_le32(sector + 92) % 4096);
        put32(sector + 96, 2 + get_le32(sector + 96) % 16);
        sector[510] = 0x55, sector[511] = 0xAA;
        write_file(img, sector, sizeof sector);
        cr_assert_eq(truncate(img, 2 << 20), 0);
        fix_checksum(img);
        struct asr_window w = fsfix_window(img, 0, 2 << 20);
        struct asr_usedmap m = {0};
        struct asr_error err = {0};
        int rc = asr_exfat_used(&w, &m, &err);
        close(w.fd);
        if (rc == ASR_OK)
            fsfix_check_ranges(&m.used, 2 << 20);
        else
            cr_assert_eq(rc, ASR_E_CORRUPT, "rc %d: %s", rc, err.msg);
        asr_usedmap_free(&m);
    }
    free(img);
}
