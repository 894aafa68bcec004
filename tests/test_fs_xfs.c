/* XFS used-byte maps (asr_xfs_used) on filesystems made by mkfs.xfs (v5 and v4, reflink and
 * rmap, one AG and many, 1 KiB, 512-byte and 4 KiB blocks, 4 KiB sectors), filled through the
 * kernel (a loop mount) and aged by deleting: only the reported ranges are copied onto random
 * garbage, then xfs_repair -n and a file-by-file compare of the copy mounted read-only judge it;
 * partclone.xfs cross-checks the bytes. Damaged headers, a realtime subvolume, an external log
 * and a log still to recover must be refused, saying what and where. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "fsfix.h"
#include "support.h"

static char mounted[2][512];

static void unmount_all(void)
{
    for (int i = 0; i < 2; i++)
        if (mounted[i][0])
            fsfix_sh("umount %s", mounted[i]);
    mounted[0][0] = mounted[1][0] = '\0';
}

static void teardown(void)
{
    unmount_all();
    scratch_cleanup();
}

TestSuite(fs_xfs, .fini = teardown, .timeout = 180);

#define MIB (1ull << 20)

static void need_xfs(bool mount)
{
    fsfix_need("mkfs.xfs");
    fsfix_need("xfs_db");
    fsfix_need("xfs_repair");
    if (mount && (geteuid() != 0 || fsfix_sh("grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null") != 0))
        cr_skip_test("mounting XFS needs root and the kernel's xfs");
}

/* A sparse file of mib MiB holding a new filesystem (mkfs.xfs opts). */
static char *make_fs(const char *name, uint64_t mib, const char *opts)
{
    char *img = scratch_path(name);
    cr_assert_eq(fsfix_sh("rm -f %1$s; truncate -s %2$lluM %1$s && mkfs.xfs -q -f %3$s %1$s 2>/dev/null", img,
                          (unsigned long long)mib, opts),
                 0, "mkfs.xfs %s", opts);
    return img;
}

/* Mounts img (read-write: "", or options) at a fresh directory, remembered for the teardown. */
static char *mount_fs(int slot, const char *img, const char *opts)
{
    char *dir = scratch_path(slot ? "mnt-copy" : "mnt");
    cr_assert_eq(fsfix_sh("mkdir -p %1$s && mount -o loop%2$s%3$s %4$s %1$s", dir, opts[0] ? "," : "", opts, img), 0,
                 "mount %s", img);
    snprintf(mounted[slot], sizeof mounted[slot], "%s", dir);
    return dir;
}

static void unmount_fs(int slot)
{
    cr_assert_eq(fsfix_sh("umount %s", mounted[slot]), 0);
    mounted[slot][0] = '\0';
}

/* The tree every fixture holds: 300 small files of varied sizes, nested directories, a long
 * name, an empty file, a 3 MiB file, a sparse file with data in its middle, symlinks short and
 * long; then aged: every third small file deleted, and a late file written into the holes. */
static void fill(const char *dir)
{
    cr_assert_eq(
        fsfix_sh("set -e; cd %1$s; mkdir -p etc/deep/deeper many;"
                 "for i in $(seq 1 300); do head -c $(( (i * 7919) %% 9000 )) /dev/urandom > many/f$i; done;"
                 "head -c 4097 /dev/urandom > 'etc/A long file name.dat'; : > etc/empty;"
                 "echo 'UUID=0 / xfs defaults 0 0' > etc/fstab;"
                 "head -c 70000 /dev/urandom > etc/deep/deeper/nested.bin; head -c 3M /dev/urandom > big.bin;"
                 "truncate -s 2M sparse.bin; head -c 5000 /dev/urandom | dd of=sparse.bin bs=1 seek=1000000"
                 " conv=notrunc status=none;"
                 "ln -s big.bin short-link; ln -s $(printf 'a-long-symlink-target-%%.0s' $(seq 1 10)) long-link;"
                 "sync; for i in $(seq 3 3 300); do rm many/f$i; done; sync;"
                 "head -c 200000 /dev/urandom > late.bin",
                 dir),
        0);
}

/* Many one-block files, every other one deleted: thousands of free extents, so the bnobt
 * grows past one level on small blocks (printf is a shell builtin: no process per file). */
static void fragment(const char *dir, unsigned files, unsigned bytes)
{
    cr_assert_eq(fsfix_sh("set -e; cd %1$s; mkdir frag; for i in $(seq 1 %2$u); do printf '%%%3$us' x > frag/$i;"
                          " done; sync; for i in $(seq 1 2 %2$u); do rm frag/$i; done",
                          dir, files, bytes),
                 0);
}

/* v4 (crc=0), which this kernel no longer mounts: the tree is written by mkfs.xfs -p from a
 * protofile made from a directory (no aging: nothing can delete from it). */
static char *make_v4(const char *opts, uint64_t mib, char **tree)
{
    *tree = scratch_path("tree");
    char *proto = scratch_path("proto"), *img = scratch_path("fs.img");
    cr_assert_eq(
        fsfix_sh("set -e; mkdir -p %1$s/etc/deep/deeper %1$s/many; cd %1$s;"
                 "for i in $(seq 1 40); do head -c $(( (i * 7919) %% 9000 )) /dev/urandom > many/f$i; done;"
                 "head -c 70000 /dev/urandom > etc/deep/deeper/nested.bin; : > etc/empty;"
                 "echo 'UUID=0 / xfs defaults 0 0' > etc/fstab; head -c 3M /dev/urandom > big.bin;"
                 "ln -s big.bin short-link; ln -s $(printf 'a-long-symlink-target-%%.0s' $(seq 1 10)) long-link;"
                 "gen() { for e in \"$1\"/*; do n=${e##*/};"
                 " if [ -L \"$e\" ]; then echo \"$n l--777 0 0 $(readlink \"$e\")\";"
                 " elif [ -d \"$e\" ]; then echo \"$n d--755 0 0\"; gen \"$e\"; echo '$';"
                 " else echo \"$n ---644 0 0 $e\"; fi; done; };"
                 "{ echo /dev/null; echo 0 0; echo d--755 0 0; gen %1$s; echo '$'; } > %2$s;"
                 "truncate -s %3$lluM %4$s; mkfs.xfs -q -f %5$s -p %2$s %4$s 2>/dev/null",
                 *tree, proto, (unsigned long long)mib, img, opts),
        0, "mkfs.xfs %s -p", opts);
    free(proto);
    return img;
}

/* Every regular file of tree read back from img the way XFS finds it, through xfs_db: the path
 * looked up from the root, then the extents of its data fork copied into place (holes zero). */
static void check_files_xfs_db(const char *img, const char *tree)
{
    char *tmp = scratch_path("readback");
    cr_assert_eq(fsfix_sh("set -e; cd %1$s; bs=$(xfs_db -r -c 'sb 0' -c 'print blocksize' %2$s | sed 's/.*= //');"
                          "agb=$(xfs_db -r -c 'sb 0' -c 'print agblocks' %2$s | sed 's/.*= //');"
                          "find . -type f | while read -r f; do rm -f %3$s; : > %3$s;"
                          " xfs_db -r -c \"path ${f#.}\" -c bmap %2$s | while read -r _ _ off _ _ where _ cnt _; do"
                          "  ag=${where#(}; ag=${ag%%%%/*}; bno=${where#*/}; bno=${bno%%)};"
                          "  dd if=%2$s of=%3$s bs=$bs skip=$((ag * agb + bno)) seek=$off count=$cnt conv=notrunc"
                          "   status=none; done;"
                          " truncate -s $(stat -c %%s \"$f\") %3$s; cmp %3$s \"$f\"; done",
                          tree, img, tmp),
                 0, "a file read back from the copy through xfs_db differs");
    free(tmp);
}
/* Every name with its type, size and link target, and every file's SHA-256: what "every file
 * equal" means. */
static char *manifest(const char *dir)
{
    char *m = fsfix_sh_out("cd %s && { find . -printf '%%y %%p %%s %%l\\n'; find . -type f -print0 | xargs -0 -r "
                           "sha256sum; } | LC_ALL=C sort",
                           dir);
    cr_assert_not_null(m, "manifest of %s", dir);
    return m;
}

/* The bnobt's depth in AG 0, as xfs_db reads the AGF. */
static unsigned bno_levels(const char *img)
{
    return (unsigned)fsfix_sh_number("xfs_db -r -c 'agf 0' -c 'print bnolevel' %s | sed 's/.*= //'", img);
}

/* Blocks on the AGFLs (free-list blocks, counted free by XFS), summed over the AGs. */
static uint64_t agfl_blocks(const char *img)
{
    return fsfix_sh_number("n=$(xfs_db -r -c 'sb 0' -c 'print agcount' %1$s | sed 's/.*= //'); t=0;"
                           "for a in $(seq 0 $((n - 1))); do"
                           " c=$(xfs_db -r -c \"agf $a\" -c 'print flcount' %1$s | sed 's/.*= //'); t=$((t + c)); done;"
                           "echo $t",
                           img);
}

struct xfs_case {
    const char *opts;  /* mkfs.xfs options */
    uint64_t mib;      /* filesystem size */
    unsigned frag;     /* one-block files to write and half delete (0: none) */
    unsigned block;    /* block size */
    unsigned min_bno_levels;
    bool reflink;      /* reflinked copies, one partly rewritten */
    bool v4;           /* made by make_v4, checked by check_files_xfs_db */
};

static void run_case(const struct xfs_case *c)
{
    need_xfs(!c->v4);
    char *tree = NULL, *want = NULL, *img;
    if (c->v4) {
        img = make_v4(c->opts, c->mib, &tree);
    } else {
        img = make_fs("fs.img", c->mib, c->opts);
        char *dir = mount_fs(0, img, "");
        fill(dir);
        if (c->frag)
            fragment(dir, c->frag, c->block);
        if (c->reflink)
            cr_assert_eq(
                fsfix_sh("set -e; cd %1$s; cp --reflink=always big.bin clone.bin;"
                         "cp --reflink=always big.bin clone2.bin;"
                         "head -c 100000 /dev/urandom | dd of=clone.bin bs=4096 seek=10 conv=notrunc status=none",
                         dir),
                0);
        cr_assert_eq(fsfix_sh("sync"), 0);
        want = manifest(dir);
        unmount_fs(0);
        free(dir);
    }
    if (c->min_bno_levels)
        cr_assert_geq(bno_levels(img), c->min_bno_levels, "the fixture's bnobt is not deep enough to test the walk");

    struct asr_usedmap m = {0};
    uint64_t size = c->mib * MIB;
    fsfix_map(asr_xfs_used, img, size, &m);
    cr_assert_str_eq(m.fs_type, "xfs");
    cr_assert_eq(m.block_size, c->block);
    cr_assert_str_empty(m.note, "a clean filesystem has nothing to note: %s", m.note);
    uint64_t used = asr_ranges_bytes(&m.used);

    /* The copy: xfs_repair -n clean, and every file the same. */
    char *target = scratch_path("target.img");
    fsfix_copy_used(img, 0, &m.used, target, size);
    cr_assert_eq(fsfix_sh("xfs_repair -n %1$s >/dev/null 2>&1 || xfs_repair -n %1$s", target), 0,
                 "xfs_repair -n finds the used-range copy damaged");
    if (c->v4) {
        check_files_xfs_db(target, tree);
    } else {
        char *copy = mount_fs(1, target, "ro,norecovery");
        char *got = manifest(copy);
        cr_assert_str_eq(got, want, "files read back from the copy differ");
        unmount_fs(1);
        free(got);
        free(copy);
    }

    /* partclone.xfs reads the same bnobt (through libxfs) but also leaves out the blocks on each
     * AGFL: free blocks XFS keeps aside to grow its btrees, outside the bnobt. We keep them (a
     * few blocks per AG, read nowhere: not worth reading the AGFL to drop them). So partclone's
     * map must lie inside ours, and ours may hold at most the AGFL blocks more. */
    if (fsfix_have("partclone.xfs")) {
        struct asr_ranges theirs = {0};
        cr_assert(fsfix_partclone_map("partclone.xfs", img, &theirs), "partclone.xfs could not map %s", img);
        uint64_t only_ours = fsfix_not_covered(&m.used, &theirs), only_theirs = fsfix_not_covered(&theirs, &m.used);
        uint64_t agfl = agfl_blocks(img) * c->block;
        cr_log_info("used bytes: asrimg %llu, partclone.xfs %llu (only asrimg %llu, AGFL %llu)",
                    (unsigned long long)used, (unsigned long long)asr_ranges_bytes(&theirs),
                    (unsigned long long)only_ours, (unsigned long long)agfl);
        cr_assert_eq(only_theirs, 0, "partclone.xfs maps %llu bytes asrimg does not", (unsigned long long)only_theirs);
        cr_assert_leq(only_ours, agfl, "asrimg maps %llu bytes partclone.xfs does not, more than the AGFLs' %llu",
                      (unsigned long long)only_ours, (unsigned long long)agfl);
        asr_ranges_free(&theirs);
    }
    asr_usedmap_free(&m);
    free(want);
    free(tree);
    free(target);
    free(img);
}

Test(fs_xfs, v5_default) { run_case(&(struct xfs_case){.opts = "", .mib = 300, .block = 4096}); }

Test(fs_xfs, v4_no_crc) { run_case(&(struct xfs_case){.opts = "-m crc=0", .mib = 300, .block = 4096, .v4 = true}); }

/* 512-byte blocks, which only v4 allows. */
Test(fs_xfs, v4_512_blocks)
{
    run_case(&(struct xfs_case){.opts = "-m crc=0 -b size=512", .mib = 300, .block = 512, .v4 = true});
}

/* 1 KiB blocks on v5: leaves of 121 records, so 1000 free extents make a bnobt of two levels. */
Test(fs_xfs, v5_1k_blocks_deep_bnobt)
{
    run_case(&(struct xfs_case){.opts = "-b size=1024", .mib = 300, .frag = 2000, .block = 1024, .min_bno_levels = 2});
}

/* Shared extents and the reverse-map and reference-count btrees: their blocks are not free. */
Test(fs_xfs, reflink_rmapbt)
{
    run_case(&(struct xfs_case){.opts = "-m reflink=1,rmapbt=1", .mib = 300, .block = 4096, .reflink = true});
}

/* The fewest AGs mkfs.xfs makes: two of 150 MiB. */
Test(fs_xfs, two_large_ags) { run_case(&(struct xfs_case){.opts = "-d agcount=2", .mib = 300, .block = 4096}); }

/* 12 AGs, the last shorter than the others (1 GiB is not a multiple of 12 AGs' blocks); more
 * AGs of this size would leave the 64 MiB log no room in one. */
Test(fs_xfs, many_ags_last_short)
{
    run_case(&(struct xfs_case){.opts = "-d agcount=12", .mib = 1024, .block = 4096});
}

/* 4 KiB sectors: the AG headers take a block each. */
Test(fs_xfs, sectors_4k) { run_case(&(struct xfs_case){.opts = "-s size=4096", .mib = 300, .block = 4096}); }

/* ---- refusals ------------------------------------------------------------------------------- */

static int map_err(const char *img, uint64_t size, struct asr_error *err)
{
    struct asr_window w = fsfix_window(img, 0, size);
    struct asr_usedmap m = {0};
    int rc = asr_xfs_used(&w, &m, err);
    close(w.fd);
    cr_assert(rc != ASR_OK || m.used.n, "a map with nothing in it");
    asr_usedmap_free(&m);
    cr_log_info("%s", err->msg);
    return rc;
}

/* Where AG agno's AGF lies, and a field xfs_db prints of it. */
static uint64_t agf_number(const char *img, unsigned agno, const char *field)
{
    return fsfix_sh_number("xfs_db -r -c 'agf %u' -c 'print %s' %s | sed 's/.*= //'", agno, field, img);
}

static uint64_t sb_number(const char *img, const char *field)
{
    return fsfix_sh_number("xfs_db -r -c 'sb 0' -c 'print %s' %s | sed 's/.*= //'", field, img);
}

static uint64_t agf_offset(const char *img, unsigned agno)
{
    return (uint64_t)agno * sb_number(img, "agblocks") * sb_number(img, "blocksize") + sb_number(img, "sectsize");
}

Test(fs_xfs, parser_for_blkid_type) { cr_assert_eq(asr_used_parser("xfs"), asr_xfs_used); }

Test(fs_xfs, agf_bad_magic)
{
    need_xfs(false);
    char *img = make_fs("fs.img", 300, "");
    patch_byte(img, agf_offset(img, 2), 'Y');
    struct asr_error err = {0};
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "AG 2: AGF magic"), "%s", err.msg);
    free(img);
}

Test(fs_xfs, agf_bad_crc)
{
    need_xfs(false);
    char *img = make_fs("fs.img", 300, "");
    uint64_t longest = agf_number(img, 1, "longest");
    patch_byte(img, agf_offset(img, 1) + 59, (uint8_t)(longest - 1)); /* agf_longest's low byte */
    struct asr_error err = {0};
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "AG 1: AGF CRC mismatch"), "%s", err.msg);
    free(img);
}

/* A free extent changed in a bnobt leaf: on v5 its CRC fails; on v4, with no CRC, a record
 * running past the AG's end is caught by the walk. */
Test(fs_xfs, bnobt_bad_crc)
{
    need_xfs(false);
    char *img = make_fs("fs.img", 300, "");
    uint64_t root = agf_number(img, 3, "bnoroot"), bs = sb_number(img, "blocksize");
    uint64_t at = 3 * sb_number(img, "agblocks") * bs + root * bs;
    patch_byte(img, at + 56 + 7, 0x77); /* the first record's blockcount */
    struct asr_error err = {0};
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "AG 3: bnobt block %llu: CRC mismatch", (unsigned long long)root);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(img);
}

Test(fs_xfs, v4_bnobt_record_past_ag)
{
    need_xfs(false);
    char *img = make_fs("fs.img", 300, "-m crc=0");
    uint64_t root = agf_number(img, 1, "bnoroot"), bs = sb_number(img, "blocksize");
    uint64_t at = sb_number(img, "agblocks") * bs + root * bs;
    patch_byte(img, at + 16 + 5, 0x7f); /* the first record's blockcount, now millions */
    struct asr_error err = {0};
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "(bnobt block %llu)", (unsigned long long)root);
    cr_assert(strstr(err.msg, "AG 1: free extent") && strstr(err.msg, want), "%s", err.msg);
    patch_byte(img, at, 'X');
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_CORRUPT);
    snprintf(want, sizeof want, "AG 1: bnobt block %llu: magic", (unsigned long long)root);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    free(img);
}

/* The AGF's free-block count is compared, not trusted: the map follows the bnobt, and says so. */
Test(fs_xfs, agf_freeblks_disagrees)
{
    need_xfs(false);
    char *img = make_fs("fs.img", 300, "-m crc=0");
    struct asr_usedmap before = {0}, after = {0};
    fsfix_map(asr_xfs_used, img, 300 * MIB, &before);
    uint64_t freeblks = agf_number(img, 2, "freeblks");
    patch_byte(img, agf_offset(img, 2) + 55, (uint8_t)(freeblks + 1)); /* agf_freeblks's low byte */
    fsfix_map(asr_xfs_used, img, 300 * MIB, &after);
    cr_assert(strstr(after.note, "1 AGs (first AG 2) count free blocks other than"), "%s", after.note);
    cr_assert(after.damaged);
    cr_assert(!before.damaged && !before.note[0]);
    cr_assert_eq(after.used.n, before.used.n);
    cr_assert_eq(asr_ranges_bytes(&after.used), asr_ranges_bytes(&before.used));
    asr_usedmap_free(&before);
    asr_usedmap_free(&after);
    free(img);
}

Test(fs_xfs, superblock_damage)
{
    need_xfs(false);
    char *img = make_fs("fs.img", 300, "");
    struct asr_error err = {0};
    /* The volume is smaller than the filesystem says. */
    cr_assert_eq(map_err(img, 200 * MIB, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "exceed the"), "%s", err.msg);
    patch_byte(img, 108, 'L'); /* the label, covered by the CRC */
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "superblock CRC mismatch"), "%s", err.msg);
    patch_byte(img, 0, 'Y');
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "not XFSB"), "%s", err.msg);
    free(img);
}

Test(fs_xfs, realtime_refused)
{
    need_xfs(false);
    char *rt = scratch_path("rt.img");
    cr_assert_eq(fsfix_sh("truncate -s 64M %s", rt), 0);
    char opts[600];
    snprintf(opts, sizeof opts, "-r rtdev=%s", rt);
    char *img = make_fs("fs.img", 300, opts);
    struct asr_error err = {0};
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "realtime subvolume"), "%s", err.msg);
    free(rt);
    free(img);
}

Test(fs_xfs, external_log_refused)
{
    need_xfs(false);
    char *log = scratch_path("log.img");
    cr_assert_eq(fsfix_sh("truncate -s 64M %s", log), 0);
    char opts[600];
    snprintf(opts, sizeof opts, "-l logdev=%s", log);
    char *img = make_fs("fs.img", 300, opts);
    struct asr_error err = {0};
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "external device"), "%s", err.msg);
    free(log);
    free(img);
}

/* A filesystem shut down after its log was written but before its metadata was: the AGFs and
 * bnobt on disk still call the new files' blocks free, so only recovery makes the map right.
 * The map refuses (the volume is then captured whole); once recovered, it maps. */
Test(fs_xfs, dirty_log_refused)
{
    need_xfs(true);
    char *img = make_fs("fs.img", 300, "");
    char *dir = mount_fs(0, img, "");
    fill(dir);
    cr_assert_eq(fsfix_sh("sync && xfs_io -x -c 'shutdown -f' %s", dir), 0);
    unmount_fs(0);
    struct asr_error err = {0};
    cr_assert_eq(map_err(img, 300 * MIB, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "log holds changes not yet written back"), "%s", err.msg);
    free(dir);
    dir = mount_fs(0, img, ""); /* recovers the log */
    unmount_fs(0);
    struct asr_usedmap m = {0};
    fsfix_map(asr_xfs_used, img, 300 * MIB, &m);
    asr_usedmap_free(&m);
    free(dir);
    free(img);
}

/* A mounted filesystem frozen (fsfreeze, as backup --freeze does) has written its metadata back
 * and covered its log (records logging only the superblock after the tail): it maps while
 * mounted, and the copy of the map holds every file as it was at the freeze. */
Test(fs_xfs, frozen_while_mounted_maps)
{
    need_xfs(true);
    fsfix_need("fsfreeze");
    char *img = make_fs("fs.img", 300, "");
    char *dir = mount_fs(0, img, "");
    fill(dir);
    char *want = manifest(dir);
    cr_assert_eq(fsfix_sh("fsfreeze -f %s", dir), 0);
    struct asr_window w = fsfix_window(img, 0, 300 * MIB);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    int rc = asr_xfs_used(&w, &m, &err);
    close(w.fd);
    char *target = scratch_path("target.img");
    if (rc == ASR_OK)
        fsfix_copy_used(img, 0, &m.used, target, 300 * MIB);
    cr_assert_eq(fsfix_sh("fsfreeze -u %s", dir), 0);
    cr_assert_eq(rc, ASR_OK, "%s", err.msg);
    unmount_fs(0);
    /* A frozen log is covered, not unmounted: its last records log the superblock alone (the
     * free-block count xfs_repair -n would find stale). Mounting the copy replays them, as it
     * would on the source; then it is checked. */
    char *copy = mount_fs(1, target, "");
    char *got = manifest(copy);
    cr_assert_str_eq(got, want, "files read back from the copy differ");
    unmount_fs(1);
    cr_assert_eq(fsfix_sh("xfs_repair -n %1$s >/dev/null 2>&1 || xfs_repair -n %1$s", target), 0);
    asr_usedmap_free(&m);
    free(got);
    free(copy);
    free(want);
    free(target);
    free(dir);
    free(img);
}
