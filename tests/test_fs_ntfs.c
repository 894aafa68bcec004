/* NTFS used-byte maps (asr_ntfs_used) and path lookup (asr_ntfs_lookup) on volumes made by mkntfs,
 * filled through ntfs-3g (FUSE, on a loop device) or ntfscp, and placed at 1 MiB inside GPT or
 * MBR disk images: only the reported ranges are copied onto garbage, then ntfsfix and a read-back
 * of every file judge the copy and partclone.ntfs's independent map is compared range by range;
 * `asrimg layout --json` shows which NTFS volumes are critical by content; damaged volumes are
 * refused with a clear message. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "asr_engine.h"
#include "fsfix.h"
#include "le.h"
#include "support.h"

#define MIB (1ull << 20)
#define PART_START MIB /* where every fixture's partition starts */

static char loopdev[64], mountpoint[512];

static void unmount_all(void)
{
    if (mountpoint[0])
        fsfix_sh("umount %1$s 2>/dev/null || fusermount -u %1$s", mountpoint);
    if (loopdev[0])
        fsfix_sh("losetup -d %s", loopdev);
    mountpoint[0] = loopdev[0] = '\0';
}

static void teardown(void)
{
    unmount_all();
    scratch_cleanup();
}

TestSuite(fs_ntfs, .fini = teardown, .timeout = 120);

/* ---- bytes on disk ------------------------------------------------------------------------ */

static void put_le(const char *path, uint64_t off, uint64_t v, unsigned bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    fsfix_write_at(path, off, b, bytes);
}

/* The boot sector fields the tests use to find and damage structures, read independently of the
 * parser (mkntfs lays the first MFT records out contiguously). */
struct geom {
    uint32_t sector, record;
    uint64_t cluster, sectors, clusters, mft;
};

static struct geom read_geom(const char *img, uint64_t base)
{
    uint8_t b[512];
    fsfix_read_at(img, base, b, sizeof b);
    struct geom g = {.sector = get_le16(b + 11), .sectors = get_le64(b + 0x28)};
    g.cluster = b[13] <= 0x80 ? (uint64_t)g.sector * b[13] : (uint64_t)g.sector << (256 - b[13]);
    int8_t rs = (int8_t)b[0x40];
    g.record = rs > 0 ? (uint32_t)(rs * g.cluster) : 1u << -rs;
    g.clusters = g.sectors * g.sector / g.cluster;
    g.mft = get_le64(b + 0x30) * g.cluster;
    return g;
}

/* Offset (from the volume start) of the first attribute of type in MFT record rec. */
static uint64_t attr_at(const char *img, const struct geom *g, unsigned rec, uint32_t type)
{
    uint8_t r[4096];
    cr_assert_leq(g->record, sizeof r);
    uint64_t at = g->mft + (uint64_t)rec * g->record;
    fsfix_read_at(img, at, r, g->record);
    cr_assert_eq(memcmp(r, "FILE", 4), 0, "record %u", rec);
    for (uint32_t a = get_le16(r + 0x14); a + 8 <= g->record && get_le32(r + a) != 0xFFFFFFFF;
         a += get_le32(r + a + 4)) {
        cr_assert_gt(get_le32(r + a + 4), 0);
        if (get_le32(r + a) == type)
            return at + a;
    }
    cr_assert_fail("record %u has no attribute 0x%X", rec, type);
    return 0;
}

/* ---- volumes and disks --------------------------------------------------------------------- */

/* mkntfs on a file: -Q skips zeroing, -F accepts a file, -p/-H/-S give the geometry a boot
 * sector records (mkntfs cannot ask a file for it). */
static char *make_volume(const char *name, uint64_t size, const char *opts)
{
    fsfix_need("mkntfs");
    char *img = scratch_path(name);
    cr_assert_eq(fsfix_sh("rm -f %1$s && truncate -s %2$llu %1$s && mkntfs -Q -F -p 2048 -H 255 -S 63 %3$s %1$s "
                          ">/dev/null 2>&1",
                          img, (unsigned long long)size, opts),
                 0, "mkntfs %s", opts);
    return img;
}

/* A disk of garbage with one partition table entry at 1 MiB holding vol (the table's own
 * structures are written over the garbage; everything else stays random), so the parser can only
 * get the right answers by reading relative to the partition's start. label "gpt" or "dos". */
static char *make_disk(const char *vol, uint64_t vol_size, const char *label, const char *type)
{
    fsfix_need("sfdisk");
    char *disk = scratch_path("disk.img");
    unsigned long long total = PART_START + vol_size + MIB;
    cr_assert_eq(fsfix_sh("set -e; head -c %2$llu /dev/urandom > %1$s;"
                          "printf 'label: %3$s\\nstart=2048, size=%4$llu, type=%5$s\\n' | sfdisk -q %1$s;"
                          "dd if=%6$s of=%1$s bs=1M seek=1 conv=notrunc status=none",
                          disk, total, label, (unsigned long long)(vol_size / 512), type, vol),
                 0);
    return disk;
}

#define BASIC_DATA "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"

/* ntfs-3g, run as root on a block device, mounts with FUSE's blkdev option, so umount waits for
 * everything to be written back; hence the loop device. Skips when FUSE is unavailable. */
static void mount_ntfs(const char *img, bool ro)
{
    fsfix_need("ntfs-3g");
    fsfix_need("losetup");
    if (geteuid() != 0)
        cr_skip_test("ntfs-3g on a loop device needs root");
    char *out = fsfix_sh_out("losetup -f --show %s %s 2>/dev/null", ro ? "-r" : "", img);
    if (!out)
        cr_skip_test("losetup cannot attach a loop device here");
    snprintf(loopdev, sizeof loopdev, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    char *mnt = scratch_path("mnt");
    snprintf(mountpoint, sizeof mountpoint, "%s", mnt);
    free(mnt);
    cr_assert_eq(fsfix_sh("mkdir -p %s", mountpoint), 0);
    if (fsfix_sh("ntfs-3g %s %s %s >/dev/null 2>&1", ro ? "-o ro" : "", loopdev, mountpoint) != 0) {
        mountpoint[0] = '\0';
        unmount_all();
        cr_skip_test("ntfs-3g cannot mount here (FUSE unavailable?)");
    }
}

/* Many small files of varied sizes (some resident in their MFT record, some a cluster plus a
 * byte), a directory large enough for a two-level index, nested directories, a long name, one
 * large file of big_kib KiB. */
static void make_tree(const char *dir, int small_files, unsigned big_kib)
{
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/docs/deep/deeper %1$s/many %1$s/index; cd %1$s;"
                          "for i in $(seq 1 %2$d); do head -c $(( (i * 7919) %% 9000 )) /dev/urandom > many/f$i.txt; done;"
                          "for i in $(seq 1 300); do echo $i > index/entry_with_a_long_name_$i; done;"
                          "head -c 4097 /dev/urandom > docs/'A long file name, with spaces.dat'; : > docs/empty;"
                          "head -c 70000 /dev/urandom > docs/deep/deeper/nested.bin;"
                          "head -c %3$uK /dev/urandom > big.bin",
                          dir, small_files, big_kib),
                 0);
}

/* Junk first, then the tree, then the junk and two tree files deleted (also from the source
 * tree, which stays the expected content): their clusters are free but still hold old data,
 * which the copy must not need. Then one late file that may reuse them. */
static void populate_mounted(const char *tree)
{
    cr_assert_eq(fsfix_sh("set -e; M=%1$s; mkdir $M/junk;"
                          "for i in 1 2 3 4 5 6; do head -c $((i * 30000)) /dev/urandom > $M/junk/j$i; done;"
                          "cp -r %2$s/. $M/; rm -r $M/junk; rm $M/many/f3.txt $M/many/f8.txt %2$s/many/f3.txt %2$s/many/f8.txt;"
                          "head -c 50000 /dev/urandom > %2$s/late.bin; cp %2$s/late.bin $M/",
                          mountpoint, tree),
                 0);
}

/* Sets or clears the dirty flag in $Volume's $VOLUME_INFORMATION (record 3), in $MFT and in its
 * mirror ($MFTMirr copies records 0-3; ntfs-3g refuses a volume where they differ): Windows sets
 * it while mounted or when chkdsk is pending, ntfsresize to have chkdsk run after a resize. */
static void set_dirty(const char *vol, bool dirty)
{
    struct geom g = read_geom(vol, 0);
    uint8_t a[32], f[2], b[512];
    fsfix_read_at(vol, 0, b, sizeof b);
    uint64_t info = attr_at(vol, &g, 3, 0x70), mirror = get_le64(b + 0x38) * g.cluster;
    fsfix_read_at(vol, info, a, sizeof a);
    uint64_t flags = info + get_le16(a + 0x14) + 10;
    fsfix_read_at(vol, flags, f, 2);
    put_le(vol, flags, dirty ? get_le16(f) | 1u : get_le16(f) & ~1u, 2);
    put_le(vol, flags - g.mft + mirror, dirty ? get_le16(f) | 1u : get_le16(f) & ~1u, 2);
}

static void ntfscp(const char *vol, const char *dest)
{
    fsfix_need("ntfscp");
    char *src = scratch_path("payload");
    cr_assert_eq(fsfix_sh("head -c 5000 /dev/urandom > %s && ntfscp %s %s '%s' >/dev/null 2>&1", src, vol, src, dest), 0,
                 "ntfscp %s", dest);
    free(src);
}

/* ---- cross-checks -------------------------------------------------------------------------- */

/* partclone.ntfs (libntfs-3g) maps the clusters $Bitmap marks used, clusters [0, nr_clusters),
 * exactly as we do. It leaves out the backup boot sector: that is the sector after the last one
 * the volume counts, beyond every cluster, and partclone's image has no block for it (a restore
 * from partclone relies on the target still holding one). We copy it, because ntfsfix and
 * Windows' chkdsk check it ("Checking the alternate boot sector"). So the maps must differ by
 * exactly that one sector. */
static bool cross_check_partclone(const char *vol, const struct asr_ranges *ours, const struct geom *g)
{
    if (!fsfix_have("partclone.ntfs"))
        return false; /* the caller skips the test, after freeing, once every other check passed */
    struct asr_ranges theirs = {0};
    cr_assert(fsfix_partclone_map("partclone.ntfs", vol, &theirs), "partclone.ntfs could not map %s", vol);
    uint64_t only_ours = fsfix_not_covered(ours, &theirs), only_theirs = fsfix_not_covered(&theirs, ours);
    cr_log_info("used bytes: asrimg %llu, partclone.ntfs %llu (only asrimg %llu: the backup boot sector; only "
                "partclone %llu)",
                (unsigned long long)asr_ranges_bytes(ours), (unsigned long long)asr_ranges_bytes(&theirs),
                (unsigned long long)only_ours, (unsigned long long)only_theirs);
    cr_assert_eq(only_theirs, 0, "partclone.ntfs maps %llu bytes asrimg does not", (unsigned long long)only_theirs);
    cr_assert_eq(only_ours, g->sector, "asrimg maps %llu bytes partclone.ntfs does not; only the %u-byte backup boot "
                                       "sector was expected",
                 (unsigned long long)only_ours, g->sector);
    const struct asr_range *last = &ours->v[ours->n - 1];
    cr_assert(last->offset <= g->sectors * g->sector && last->offset + last->length == (g->sectors + 1) * g->sector,
              "the last range must end with the backup boot sector");
    asr_ranges_free(&theirs);
    return true;
}

/* Every file and directory of tree is found by asr_ntfs_lookup (with the case changed for
 * some), with the right kind; deleted and invented names are not. */
static void check_lookups(const struct asr_window *w, const char *tree)
{
    char *list = fsfix_sh_out("cd %s && find . -mindepth 1 -printf '%%y %%P\\n'", tree);
    cr_assert_not_null(list);
    unsigned n = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n"), n++) {
        char path[1024];
        snprintf(path, sizeof path, "/%s", line + 2);
        if (n % 3 == 0) /* Windows finds names whatever their case */
            for (char *p = path; *p; p++)
                *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        bool found, dir;
        struct asr_error err = {0};
        cr_assert_eq(asr_ntfs_lookup(w, path, &found, &dir, &err), ASR_OK, "%s: %s", path, err.msg);
        cr_assert(found, "%s not found", path);
        cr_assert_eq(dir, line[0] == 'd', "%s: directory %d", path, dir);
    }
    free(list);
    cr_assert_gt(n, 300);
    static const char *const absent[] = {"/junk", "/many/f3.txt", "/many/f8.txt", "/index/entry_with_a_long_name_301",
                                         "/big.bin/x", "/docs/deep/nothing", "/many/f1.tx", "/many/f1.txt2"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        bool found = true;
        struct asr_error err = {0};
        cr_assert_eq(asr_ntfs_lookup(w, absent[i], &found, NULL, &err), ASR_OK, "%s: %s", absent[i], err.msg);
        cr_assert_not(found, "%s found", absent[i]);
    }
}

/* ---- the round trip ------------------------------------------------------------------------ */

struct ntfs_case {
    const char *mkntfs; /* options */
    uint64_t size;      /* the partition (mkntfs sizes the volume one sector short of it) */
    uint32_t cluster, sector;
    const char *table; /* partition table: "gpt" or "dos" */
    int small_files;
    unsigned big_kib;
};

/* Copies only the used ranges onto garbage, then ntfsfix (which reads $MFT, $MFTMirr, both boot
 * sectors) and a read-only mount with a byte compare of every file judge the copy. */
static void check_copy(const char *disk, const struct asr_ranges *used, uint64_t size, const char *tree)
{
    char *target = scratch_path("target.img");
    fsfix_copy_used(disk, PART_START, used, target, size);
    cr_assert_eq(fsfix_sh("ntfsfix -n %s", target), 0, "ntfsfix finds the used-range copy damaged");
    mount_ntfs(target, true);
    cr_assert_eq(fsfix_sh("diff -r %s %s", tree, mountpoint), 0, "files read back from the copy differ");
    unmount_all();
    free(target);
}

static void run_case(const struct ntfs_case *c)
{
    fsfix_need("ntfsfix");
    char *vol = make_volume("vol.img", c->size, c->mkntfs), *tree = scratch_path("tree");
    make_tree(tree, c->small_files, c->big_kib);
    mount_ntfs(vol, false);
    populate_mounted(tree);
    unmount_all();
    cr_assert_eq(fsfix_sh("ntfsfix -n %s >/dev/null", vol), 0, "the source volume itself is not clean");
    uint64_t files = fsfix_sh_number("find %s -type f -printf '%%s\\n' | awk '{s += $1} END {print s + 0}'", tree);
    uint64_t rounded = fsfix_sh_number("find %s -type f -printf '%%s\\n' | awk '{s += int(($1 + %u) / %u) * %u} END {print s + 0}'",
             tree, c->cluster - 1, c->cluster, c->cluster);

    char *disk = make_disk(vol, c->size, c->table, !strcmp(c->table, "gpt") ? BASIC_DATA : "7");
    struct asr_window w = fsfix_window(disk, PART_START, c->size);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ntfs_used(&w, &m, &err), ASR_OK, "%s", err.msg);

    struct geom g = read_geom(vol, 0);
    cr_assert_eq(g.sector, c->sector);
    cr_assert_str_eq(m.fs_type, "ntfs");
    cr_assert_eq(m.block_size, c->cluster);
    char *blkid = fsfix_sh_out("blkid -p -o value -s UUID %s", vol);
    if (blkid)
        cr_assert_eq(strncmp(blkid, m.fs_uuid, 16), 0, "uuid %s, blkid says %s", m.fs_uuid, blkid);
    free(blkid);
    fsfix_check_ranges(&m.used, c->size);
    uint64_t used = asr_ranges_bytes(&m.used);
    cr_log_info("mkntfs %s: %llu-byte volume, %llu bytes of files (%llu in whole clusters), %llu bytes used in %zu "
                "ranges",
                c->mkntfs, (unsigned long long)c->size, (unsigned long long)files, (unsigned long long)rounded,
                (unsigned long long)used, m.used.n);
    /* Small files live inside their MFT records, so files - (small ones) is the floor; whole
     * clusters per file, the MFT, $LogFile (at most 4 MiB here) and the other system files are
     * well within the ceiling, and far from the volume size. */
    cr_assert_geq(used, files - (uint64_t)c->small_files * 700);
    cr_assert_leq(used, rounded + 12 * MIB + 64ull * c->cluster, "used %llu of %llu bytes: too much",
                  (unsigned long long)used, (unsigned long long)c->size);

    check_lookups(&w, tree);
    close(w.fd);
    check_copy(disk, &m.used, c->size, tree);
    bool crossed = cross_check_partclone(vol, &m.used, &g);
    asr_usedmap_free(&m);
    free(disk);
    free(vol);
    free(tree);
    if (!crossed)
        cr_skip_test("partclone.ntfs missing: every check passed but the partclone cross-check");
}

Test(fs_ntfs, clusters_512_in_mbr_partition)
{
    run_case(&(struct ntfs_case){.mkntfs = "-c 512", .size = 40 * MIB, .cluster = 512, .sector = 512, .table = "dos",
                                 .small_files = 80, .big_kib = 3072});
}

Test(fs_ntfs, clusters_4k_in_gpt_partition)
{
    run_case(&(struct ntfs_case){.mkntfs = "-c 4096 -L Daten", .size = 48 * MIB, .cluster = 4096, .sector = 512,
                                 .table = "gpt", .small_files = 120, .big_kib = 4096});
}

Test(fs_ntfs, clusters_64k)
{
    run_case(&(struct ntfs_case){.mkntfs = "-c 65536", .size = 96 * MIB, .cluster = 65536, .sector = 512,
                                 .table = "gpt", .small_files = 60, .big_kib = 3072});
}

Test(fs_ntfs, sectors_4096)
{
    run_case(&(struct ntfs_case){.mkntfs = "-s 4096 -c 4096", .size = 48 * MIB, .cluster = 4096, .sector = 4096,
                                 .table = "gpt", .small_files = 60, .big_kib = 2048});
}

Test(fs_ntfs, label_and_uuid)
{
    char *vol = make_volume("label.img", 16 * MIB, "-L 'Caf\xc3\xa9 Bilder'");
    struct asr_window w = fsfix_window(vol, 0, 16 * MIB);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ntfs_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    cr_assert_str_eq(m.fs_label, "Caf\xc3\xa9 Bilder");
    uint8_t b[512];
    fsfix_read_at(vol, 0, b, sizeof b);
    char serial[17];
    snprintf(serial, sizeof serial, "%016llX", (unsigned long long)get_le64(b + 0x48));
    cr_assert_str_eq(m.fs_uuid, serial);
    asr_usedmap_free(&m);
    free(vol);
}

static bool has_range(const struct asr_ranges *r, uint64_t off, uint64_t len)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].offset <= off && off + len <= r->v[i].offset + r->v[i].length)
            return true;
    return false;
}

/* ntfsresize shrinks the volume but not its partition: the new backup boot sector follows the
 * volume, the old one stays in the partition's last sector (where ntfs-3g's tools look). Both are
 * kept, and every file reads back (ntfscat, no mount needed) from a copy of only the map. */
Test(fs_ntfs, volume_shrunk_inside_its_partition)
{
    fsfix_need("ntfsresize");
    fsfix_need("ntfscat");
    char *vol = make_volume("shrunk.img", 24 * MIB, "-c 4096");
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        ntfscp(vol, name);
    }
    cr_assert_eq(fsfix_sh("echo y | ntfsresize -f -s 16M %s >/dev/null 2>&1", vol), 0, "ntfsresize");
    set_dirty(vol, false); /* as chkdsk would at the next Windows boot */
    struct geom g = read_geom(vol, 0);
    cr_assert_lt(g.sectors * 512, 17 * MIB, "ntfsresize shrank the volume to %llu sectors", (unsigned long long)g.sectors);
    struct asr_window w = fsfix_window(vol, 0, 24 * MIB);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ntfs_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    fsfix_check_ranges(&m.used, 24 * MIB);
    cr_assert(has_range(&m.used, g.sectors * 512, 512), "the backup boot sector after the volume");
    cr_assert(has_range(&m.used, 24 * MIB - 512, 512), "the partition's last sector");
    cr_assert_eq(m.used.v[m.used.n - 1].offset, 24 * MIB - 512, "nothing past the volume but those two sectors");
    cr_assert_eq(m.used.v[m.used.n - 2].offset, g.sectors * 512);
    char *target = scratch_path("target.img"), *payload = scratch_path("payload");
    fsfix_copy_used(vol, 0, &m.used, target, 24 * MIB);
    cr_assert_eq(fsfix_sh("ntfscat %s f4 | cmp - %s", target, payload), 0, "f4 reads back from the copy");
    cr_assert_eq(fsfix_sh("cmp -n 512 -i %llu:%llu %s %s", 24 * MIB - 512, 24 * MIB - 512, vol, target), 0);
    asr_usedmap_free(&m);
    free(target);
    free(payload);
    free(vol);
}

/* ---- critical by content ------------------------------------------------------------------- */

/* asrimg sits beside the test programs in the build tree. */
static char *asrimg_path(void)
{
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/asrimg", self), 0);
    return p;
}

/* `asrimg layout --json disk`: partition number's "critical" and "reason". false when the asrimg
 * program is not built beside the tests. */
static bool layout_json(const char *disk, unsigned number, bool *critical, char *reason, size_t cap)
{
    char *prog = asrimg_path();
    if (access(prog, X_OK) != 0) {
        free(prog);
        return false;
    }
    char *out = fsfix_sh_out("%s layout --json %s", prog, disk);
    free(prog);
    cr_assert_not_null(out, "asrimg layout --json failed");
    char key[32];
    snprintf(key, sizeof key, "{\"number\":%u,", number);
    const char *p = strstr(out, key), *c = p ? strstr(p, "\"critical\":") : NULL, *r = p ? strstr(p, "\"reason\":\"") : NULL;
    cr_assert(p && c && r, "no partition %u in %s", number, out);
    *critical = strncmp(c + 11, "true", 4) == 0;
    r += 10;
    snprintf(reason, cap, "%.*s", (int)strcspn(r, "\""), r);
    free(out);
    return true;
}

/* The library's view of partition number (the same decision `asrimg layout` prints). */
static struct asr_volume_info analyzed(const char *disk, unsigned number)
{
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(disk, &d, &err), ASR_OK, "%s", err.msg);
    struct asr_volume_info *v, out = {0};
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (v[i].partition_number == number) {
            out = v[i];
            out.map.used = (struct asr_ranges){0}; /* the copy keeps the names, not the ranges */
            found = true;
        }
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    cr_assert(found, "no volume %u", number);
    return out;
}

/* Checks both views of the partition; skips at the end when only the CLI could not be run. */
static void expect_critical(const char *disk, unsigned number, bool critical, const char *reason_part)
{
    struct asr_volume_info v = analyzed(disk, number);
    cr_assert_str_eq(v.map.fs_type, "ntfs");
    cr_assert_eq(v.critical, critical, "critical %d: %s", v.critical, v.reason);
    cr_assert(strstr(v.reason, reason_part), "reason \"%s\" lacks \"%s\"", v.reason, reason_part);
    bool cli_critical;
    char reason[256];
    if (!layout_json(disk, number, &cli_critical, reason, sizeof reason))
        cr_skip_test("asrimg not built beside the tests: the library's decision checked, not the CLI's");
    cr_assert_eq(cli_critical, critical, "asrimg layout --json: critical %d, reason %s", cli_critical, reason);
    cr_assert(strstr(reason, reason_part), "asrimg layout --json reason \"%s\" lacks \"%s\"", reason, reason_part);
}

/* A Windows system volume in a "Microsoft basic data" partition of a GPT disk from another
 * machine: nothing in the partition table says it boots, \Windows\System32 does. */
Test(fs_ntfs, windows_system32_makes_a_volume_critical)
{
    char *vol = make_volume("win.img", 24 * MIB, "-c 4096 -L Windows");
    mount_ntfs(vol, false);
    cr_assert_eq(fsfix_sh("set -e; cd %s; mkdir -p Windows/System32/drivers/etc Users/Public 'Program Files';"
                          "for i in $(seq 1 60); do echo $i > Windows/System32/lib$i.dll; done;"
                          "for i in $(seq 1 80); do echo $i > Windows/entry$i.log; done;"
                          "echo 127.0.0.1 localhost > Windows/System32/drivers/etc/hosts",
                          mountpoint),
                 0);
    unmount_all();
    char *disk = make_disk(vol, 24 * MIB, "gpt", BASIC_DATA);
    expect_critical(disk, 1, true, "a Windows system volume");
    free(disk);
    free(vol);
}

/* \bootmgr in a plain NTFS partition (MBR type 0x07, not active): Windows' boot manager, so the
 * volume is needed to boot. Marked dirty it is still critical, and still mapped (its $Bitmap
 * united with what its records reference), saying so. ntfscp writes without a mount, so this runs
 * without FUSE. */
Test(fs_ntfs, bootmgr_makes_a_volume_critical)
{
    char *vol = make_volume("boot.img", 16 * MIB, "-c 4096");
    ntfscp(vol, "bootmgr");
    ntfscp(vol, "BCD.txt");
    char *disk = make_disk(vol, 16 * MIB, "dos", "7");
    expect_critical(disk, 1, true, "the Windows Boot Manager");
    struct asr_volume_info v = analyzed(disk, 1);
    cr_assert_eq(v.natural_capture, ASR_CAPTURE_USED, "%s", v.warning);

    set_dirty(vol, true);
    free(disk);
    disk = make_disk(vol, 16 * MIB, "dos", "7");
    v = analyzed(disk, 1);
    cr_assert(v.critical, "%s", v.reason);
    cr_assert_eq(v.natural_capture, ASR_CAPTURE_USED, "%s", v.warning);
    cr_assert(strstr(v.warning, "marked dirty"), "%s", v.warning);
    free(disk);
    free(vol);
}

/* A data volume: files at the root (one named Windows, which is no directory), in a "Microsoft
 * basic data" partition. Nothing shows it boots. */
Test(fs_ntfs, data_volume_is_not_critical)
{
    char *vol = make_volume("data.img", 16 * MIB, "-c 4096 -L Data");
    ntfscp(vol, "Windows");
    ntfscp(vol, "bootmgr.bak");
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "report-%02d.txt", i);
        ntfscp(vol, name);
    }
    char *disk = make_disk(vol, 16 * MIB, "gpt", BASIC_DATA);
    expect_critical(disk, 1, false, "nothing shows it is needed to boot");
    free(disk);
    free(vol);
}

/* A root index whose blocks are damaged: the lookup says what is wrong, and the volume's reason
 * says its directories could not be read rather than passing silently as data. */
Test(fs_ntfs, damaged_directory_index)
{
    char *vol = make_volume("index.img", 16 * MIB, "-c 4096");
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "file-number-%02d", i);
        ntfscp(vol, name);
    }
    struct asr_window w = fsfix_window(vol, 0, 16 * MIB);
    bool found;
    struct asr_error err = {0};
    cr_assert_eq(asr_ntfs_lookup(&w, "/file-number-39", &found, NULL, &err), ASR_OK, "%s", err.msg);
    cr_assert(found);
    /* Every index block of the volume (mkntfs's and the root's) loses its signature. */
    cr_assert_eq(fsfix_sh("grep -obUa INDX %1$s | cut -d: -f1 | while read o; do "
                          "[ $((o %% 4096)) -eq 0 ] && printf 'XXXX' | dd of=%1$s bs=1 seek=$o conv=notrunc status=none; "
                          "done; true",
                          vol),
                 0);
    cr_assert_eq(asr_ntfs_lookup(&w, "/bootmgr", &found, NULL, &err), ASR_E_CORRUPT, "%s", err.msg);
    cr_assert(strstr(err.msg, "not INDX"), "%s", err.msg);
    close(w.fd);
    char *disk = make_disk(vol, 16 * MIB, "gpt", BASIC_DATA);
    expect_critical(disk, 1, false, "NTFS directories unreadable");
    free(disk);
    free(vol);
}

/* ---- malformed volumes: a clear error, never a crash or a read outside the window ---------- */

static void expect_refused(const char *img, uint64_t base, uint64_t window, int code, const char *fragment)
{
    struct asr_window w = fsfix_window(img, base, window);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    int rc = asr_ntfs_used(&w, &m, &err);
    close(w.fd);
    cr_assert_eq(rc, code, "rc %d (%s), expected %d: %s", rc, err.msg, code, fragment);
    cr_assert(strstr(err.msg, fragment), "message \"%s\" lacks \"%s\"", err.msg, fragment);
    cr_assert_eq(m.used.n, 0, "ranges left behind on failure");
    asr_usedmap_free(&m);
}

static char *fresh(void) { return make_volume("damaged.img", 8 * MIB, "-c 4096"); }

Test(fs_ntfs, cluster_size_zero)
{
    char *img = fresh();
    put_le(img, 13, 0, 1);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "sectors per cluster 0x00 invalid");
    free(img);
}

Test(fs_ntfs, cluster_size_not_a_power_of_two)
{
    char *img = fresh();
    put_le(img, 13, 3, 1);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "sectors per cluster 0x03 invalid");
    free(img);
}

Test(fs_ntfs, cluster_size_above_2_mib)
{
    char *img = fresh();
    put_le(img, 13, 0xF0, 1); /* 2^16 sectors */
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "cluster size above 2 MiB");
    free(img);
}

Test(fs_ntfs, bytes_per_sector_invalid)
{
    char *img = fresh();
    put_le(img, 11, 1000, 2);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "bytes per sector 1000 invalid");
    free(img);
}

Test(fs_ntfs, total_sectors_beyond_the_partition)
{
    char *img = fresh();
    put_le(img, 0x28, 8 * MIB / 512 + 1, 8);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "do not fit the 8388608-byte volume");
    put_le(img, 0x28, ~0ull, 8);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "do not fit");
    free(img);
}

/* A partition smaller than the filesystem on it (a truncated image, a shrunk table). */
Test(fs_ntfs, partition_smaller_than_the_volume)
{
    char *img = fresh();
    expect_refused(img, 0, 4 * MIB, ASR_E_CORRUPT, "do not fit the 4194304-byte volume");
    free(img);
}

Test(fs_ntfs, mft_cluster_outside_the_volume)
{
    char *img = fresh();
    put_le(img, 0x30, 8 * MIB / 4096, 8);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "$MFT cluster 2048 (boot sector offset 0x30) outside");
    put_le(img, 0x30, 1ull << 62, 8);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "$MFT cluster");
    free(img);
}

Test(fs_ntfs, mft_cluster_pointing_at_no_record)
{
    char *img = fresh();
    put_le(img, 0x30, 1, 8);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "signature is not FILE");
    free(img);
}

Test(fs_ntfs, mft_record_size_invalid)
{
    char *img = fresh();
    put_le(img, 0x40, 0xE0, 1); /* 2^32 bytes */
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "MFT record size");
    put_le(img, 0x40, 3, 1); /* 3 clusters */
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "MFT record size 12288");
    free(img);
}

/* The offset of $Bitmap's mapping pairs (record 6's $DATA) in a fresh volume. */
static uint64_t bitmap_pairs(const char *img, struct geom *g)
{
    *g = read_geom(img, 0);
    uint64_t data = attr_at(img, g, 6, 0x80);
    uint8_t a[0x48];
    fsfix_read_at(img, data, a, sizeof a);
    cr_assert_eq(a[8], 1, "$Bitmap's $DATA is non-resident");
    return data + get_le16(a + 0x20);
}

Test(fs_ntfs, bitmap_run_outside_the_volume)
{
    char *img = fresh();
    struct geom g;
    uint64_t pairs = bitmap_pairs(img, &g);
    uint8_t p[16];
    fsfix_read_at(img, pairs, p, sizeof p);
    unsigned ls = p[0] & 15, os = p[0] >> 4;
    cr_assert_geq(os, 2);
    put_le(img, pairs + 1 + ls, 0x7FF0, 2); /* LCN 32752 of a 2047-cluster volume */
    for (unsigned i = 2; i < os; i++)
        put_le(img, pairs + 1 + ls + i, 0, 1);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "starts outside the volume");
    free(img);
}

Test(fs_ntfs, bitmap_run_header_invalid)
{
    char *img = fresh();
    struct geom g;
    uint64_t pairs = bitmap_pairs(img, &g);
    put_le(img, pairs, 0x09, 1); /* a 9-byte length field */
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "mapping pair header 0x09");
    put_le(img, pairs, 0x01, 1); /* a hole: no LCN */
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "sparse run");
    free(img);
}

Test(fs_ntfs, bitmap_runs_disagree_with_last_vcn)
{
    char *img = fresh();
    struct geom g;
    bitmap_pairs(img, &g);
    put_le(img, attr_at(img, &g, 6, 0x80) + 0x18, 5000, 8);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "last VCN is 5000");
    free(img);
}

Test(fs_ntfs, bitmap_too_short_for_the_volume)
{
    char *img = fresh();
    struct geom g;
    bitmap_pairs(img, &g);
    put_le(img, attr_at(img, &g, 6, 0x80) + 0x30, 16, 8); /* data size: 128 clusters */
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "$Bitmap sizes");
    free(img);
}

/* A bitmap that marks the boot sector free is not the bitmap of this volume. */
Test(fs_ntfs, bitmap_marking_the_boot_sector_free)
{
    char *img = fresh();
    struct geom g;
    uint64_t pairs = bitmap_pairs(img, &g);
    uint8_t p[16];
    fsfix_read_at(img, pairs, p, sizeof p);
    unsigned ls = p[0] & 15, os = p[0] >> 4;
    uint64_t lcn = 0;
    for (unsigned i = 0; i < os; i++)
        lcn |= (uint64_t)p[1 + ls + i] << (8 * i);
    put_le(img, lcn * g.cluster, 0, 1);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "marks the boot sector or the $MFT free");
    free(img);
}

/* A torn write of record 6: a stride's last bytes no longer hold the update sequence number. */
Test(fs_ntfs, torn_mft_record)
{
    char *img = fresh();
    struct geom g = read_geom(img, 0);
    uint64_t end = g.mft + 6ull * g.record + 510;
    uint8_t b[2];
    fsfix_read_at(img, end, b, 2);
    put_le(img, end, get_le16(b) ^ 0x5555, 2);
    expect_refused(img, 0, 8 * MIB, ASR_E_CORRUPT, "MFT record 6: update sequence mismatch");
    free(img);
}

Test(fs_ntfs, dirty_volume)
{
    char *img = fresh();
    struct asr_window w = fsfix_window(img, 0, 8 * MIB);
    struct asr_usedmap clean = {0}, dirty = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ntfs_used(&w, &clean, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(clean.note[0], '\0', "a clean volume gets no note: %s", clean.note);
    set_dirty(img, true);
    cr_assert_eq(asr_ntfs_used(&w, &dirty, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    cr_assert(strstr(dirty.note, "marked dirty ($Volume flags 0x0001)"), "%s", dirty.note);
    cr_assert(strstr(dirty.note, "reference no cluster $Bitmap marks free"), "%s", dirty.note);
    cr_assert_eq(fsfix_not_covered(&clean.used, &dirty.used) + fsfix_not_covered(&dirty.used, &clean.used), 0,
                 "the dirty flag alone changes the map");
    asr_usedmap_free(&clean);
    asr_usedmap_free(&dirty);
    free(img);
}

/* ---- $Bitmap with holes: what the records reference is captured too ------------------------ */

struct nrun {
    uint64_t vcn, lcn, len;
};

/* The runs of every non-resident attribute ntfsinfo lists for sel ("-F path" or "-i N"): an
 * independent reading of the mapping pairs. */
static size_t runs_of(const char *vol, const char *sel, struct nrun *out, size_t cap)
{
    char *s = fsfix_sh_out("ntfsinfo -f %s -v %s 2>/dev/null | awk '/Runlist:/ {r = 1; next} "
                           "r && /^\t+0x[0-9a-f]+\t+0x[0-9a-f]+\t+0x[0-9a-f]+$/ {print $1, $2, $3; next} {r = 0}'",
                           sel, vol);
    cr_assert_not_null(s, "ntfsinfo %s", sel);
    size_t n = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        cr_assert_lt(n, cap);
        char *p = line;
        out[n].vcn = strtoull(p, &p, 0);
        out[n].lcn = strtoull(p, &p, 0);
        out[n].len = strtoull(p, &p, 0);
        n++;
    }
    free(s);
    cr_assert_gt(n, 0, "ntfsinfo lists no runs for %s", sel);
    return n;
}

/* Clears the $Bitmap bits of the clusters of every run of sel (found through $Bitmap's own runs);
 * returns how many were set. */
static uint64_t free_in_bitmap(const char *vol, const char *sel)
{
    struct geom g = read_geom(vol, 0);
    struct nrun bm[16], r[64];
    size_t nbm = runs_of(vol, "-i 6", bm, 16), nr = runs_of(vol, sel, r, 64);
    uint64_t cleared = 0;
    for (size_t i = 0; i < nr; i++)
        for (uint64_t c = r[i].lcn; c < r[i].lcn + r[i].len; c++) {
            uint64_t byte = c / 8, vcn = byte / g.cluster, at = UINT64_MAX;
            for (size_t k = 0; k < nbm; k++)
                if (vcn >= bm[k].vcn && vcn < bm[k].vcn + bm[k].len)
                    at = (bm[k].lcn + vcn - bm[k].vcn) * g.cluster + byte % g.cluster;
            cr_assert_neq(at, UINT64_MAX, "cluster %llu past $Bitmap's runs", (unsigned long long)c);
            uint8_t b;
            fsfix_read_at(vol, at, &b, 1);
            cleared += b >> (c % 8) & 1;
            put_le(vol, at, b & ~(1u << (c % 8)), 1);
        }
    return cleared;
}

/* A volume whose $Bitmap marks a file's data and the root directory's index blocks free (dirty
 * or not): the map takes them anyway, says how many, and a copy of only the map reads exactly
 * like its source: every file (ntfscat) and ntfsfix's report. */
static void bitmap_hole_case(bool dirty)
{
    fsfix_need("ntfsinfo");
    fsfix_need("ntfscat");
    fsfix_need("ntfsfix");
    char *vol = make_volume("hole.img", 16 * MIB, "-c 4096"), *big = scratch_path("big");
    cr_assert_eq(fsfix_sh("head -c 300000 /dev/urandom > %s && ntfscp %s %s big.bin", big, vol, big), 0);
    for (int i = 0; i < 40; i++) { /* enough names for the root index to need blocks */
        char name[64];
        snprintf(name, sizeof name, "a-file-with-a-long-name-number-%02d", i);
        ntfscp(vol, name);
    }
    if (dirty)
        set_dirty(vol, true);
    uint64_t holes = free_in_bitmap(vol, "-F big.bin");
    holes += free_in_bitmap(vol, "-F /");
    cr_assert_geq(holes, 74, "300000 bytes of file and the root's index blocks");

    struct asr_window w = fsfix_window(vol, 0, 16 * MIB);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ntfs_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    char want[128];
    snprintf(want, sizeof want, "%llu clusters referenced by MFT records but free in $Bitmap, captured too",
             (unsigned long long)holes);
    cr_assert(strstr(m.note, want), "note \"%s\" lacks \"%s\"", m.note, want);
    cr_assert_eq(strstr(m.note, "marked dirty") != NULL, dirty, "%s", m.note);

    char *target = scratch_path("target.img");
    fsfix_copy_used(vol, 0, &m.used, target, 16 * MIB);
    cr_assert_eq(fsfix_sh("ntfscat -f %1$s big.bin 2>/dev/null | cmp - %2$s && ntfscat -f %3$s big.bin 2>/dev/null | cmp - %2$s", vol, big, target),
                 0, "big.bin reads back from the copy");
    cr_assert_eq(fsfix_sh("for i in $(seq -w 0 39); do f=a-file-with-a-long-name-number-$i;"
                          "ntfscat -f %1$s $f 2>/dev/null > %3$s.a && ntfscat -f %2$s $f 2>/dev/null > %3$s.b && cmp -s %3$s.a %3$s.b || exit 1; done",
                          vol, target, big),
                 0, "a small file reads differently from the copy");
    cr_assert_eq(fsfix_sh("ntfsfix -n %1$s 2>&1 | sed s,%1$s,X, > %3$s.a; ntfsfix -n %2$s 2>&1 | sed s,%2$s,X, > %3$s.b;"
                          " diff %3$s.a %3$s.b",
                          vol, target, big),
                 0, "ntfsfix -n reads the copy differently");

    /* The listing (and the backup's report) says the same. */
    char *disk = make_disk(vol, 16 * MIB, "gpt", BASIC_DATA);
    struct asr_volume_info v = analyzed(disk, 1);
    cr_assert_eq(v.natural_capture, ASR_CAPTURE_USED, "%s", v.warning);
    cr_assert(strstr(v.warning, want), "%s", v.warning);
    asr_usedmap_free(&m);
    free(disk);
    free(target);
    free(big);
    free(vol);
}

Test(fs_ntfs, bitmap_hole_clean_volume) { bitmap_hole_case(false); }

Test(fs_ntfs, bitmap_hole_dirty_volume) { bitmap_hole_case(true); }

/* Random boot sectors with the NTFS signature: mostly refused early, never a crash (ASan watches). */
Test(fs_ntfs, random_boot_sectors)
{
    char *img = scratch_path("random.img");
    uint8_t sector[512];
    for (int i = 0; i < 300; i++) {
        for (size_t got = 0; got < sizeof sector;)
            got += (size_t)getrandom(sector + got, sizeof sector - got, 0);
        memcpy(sector + 3, "NTFS    ", 8);
        sector[11] = 0, sector[12] = 2; /* 512-byte sectors, to get past the first checks */
        if (i % 2)
            memset(sector + 0x0E, 0, 0x24 - 0x0E); /* FAT fields zero: on to the geometry */
        write_file(img, sector, sizeof sector);
        cr_assert_eq(truncate(img, 1 << 20), 0);
        struct asr_window w = fsfix_window(img, 0, 1 << 20);
        struct asr_usedmap m = {0};
        struct asr_error err = {0};
        int rc = asr_ntfs_used(&w, &m, &err);
        bool found;
        struct asr_error lerr = {0};
        int lrc = asr_ntfs_lookup(&w, "/Windows/System32", &found, NULL, &lerr);
        close(w.fd);
        cr_assert_eq(rc, ASR_E_CORRUPT, "rc %d: %s", rc, err.msg);
        cr_assert_eq(lrc, ASR_E_CORRUPT, "rc %d: %s", lrc, lerr.msg);
        cr_assert_eq(m.used.n, 0);
        asr_usedmap_free(&m);
    }
    free(img);
}

/* Random bytes flipped in the first MFT records (the system files, the root directory and its
 * index) of a volume with files: every outcome is a map inside the window or a refusal that says
 * why; the lookup too. */
Test(fs_ntfs, damaged_mft_records)
{
    char *img = make_volume("flip.img", 8 * MIB, "-c 4096");
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof name, "file-%02d", i);
        ntfscp(img, name);
    }
    struct geom g = read_geom(img, 0);
    size_t span = 16 * g.record;
    uint8_t *orig = malloc(span), *work = malloc(span);
    fsfix_read_at(img, g.mft, orig, span);
    unsigned accepted = 0;
    for (int i = 0; i < 400; i++) {
        memcpy(work, orig, span);
        uint32_t r[8];
        cr_assert_eq(getrandom(r, sizeof r, 0), (ssize_t)sizeof r);
        static const unsigned read_records[] = {0, 3, 5, 6};
        for (unsigned k = 0; k < 1 + r[0] % 3; k++) {
            size_t at = read_records[r[1 + 2 * k] % 4] * (size_t)g.record + r[2 + 2 * k] % g.record;
            work[at] ^= (uint8_t)(1 + r[7] % 255);
        }
        fsfix_write_at(img, g.mft, work, span);
        struct asr_window w = fsfix_window(img, 0, 8 * MIB);
        struct asr_usedmap m = {0};
        struct asr_error err = {0};
        int rc = asr_ntfs_used(&w, &m, &err);
        bool found;
        struct asr_error lerr = {0};
        int lrc = asr_ntfs_lookup(&w, "/file-29", &found, NULL, &lerr);
        close(w.fd);
        if (rc == ASR_OK) {
            fsfix_check_ranges(&m.used, 8 * MIB);
            accepted++;
        } else {
            cr_assert(rc == ASR_E_CORRUPT || rc == ASR_E_UNSUPPORTED, "rc %d: %s", rc, err.msg);
            cr_assert_neq(err.msg[0], '\0');
            cr_assert_eq(m.used.n, 0);
        }
        cr_assert(lrc == ASR_OK || ((lrc == ASR_E_CORRUPT || lrc == ASR_E_UNSUPPORTED) && lerr.msg[0]), "rc %d: %s", lrc,
                  lerr.msg);
        asr_usedmap_free(&m);
    }
    cr_log_info("%u of 400 damaged MFTs still mapped (flips in unused bytes)", accepted);
    free(orig);
    free(work);
    free(img);
}
