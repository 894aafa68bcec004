/* ext2/3/4 used-byte maps (asr_ext_used) on filesystems made and filled by Debian's mke2fs -d and
 * debugfs, read at a 1 MiB partition offset of a GPT disk: only the reported ranges are copied
 * onto garbage, then e2fsck and a file-by-file compare judge the copy; partclone.extfs, dumpe2fs
 * and e2fsck's own count cross-check the map; damaged or unclean filesystems must be refused. The
 * critical-volume check that looks inside (analyze.c) must read through the same window, trust
 * only what the map trusts, and stop on directories whose blocks loop. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "asr_engine.h"
#include "clock.h"
#include "fsfix.h"
#include "le.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(fs_ext, .fini = teardown, .timeout = 180);

#define MIB (1ull << 20)
#define PART_BASE MIB /* where sfdisk puts the partition: sector 2048 */
#define FS_UUID "1b4e28ba-2fa1-11d2-883f-0016d3cca427"

static void need_ext_tools(const char *mkfs)
{
    fsfix_need(mkfs);
    fsfix_need("e2fsck");
    fsfix_need("debugfs");
    fsfix_need("dumpe2fs");
    fsfix_need("sfdisk");
}

/* ---- fixtures ------------------------------------------------------------------------------ */

/* The source tree: a directory of 300 small files of varied sizes, one with 400 entries (an
 * htree index on ext3/4), nested directories, a long name, an empty file, a file of one block
 * plus one byte, a 3 MiB file, a sparse file, and symlinks: short (in the inode), long (in a
 * data block), and dangling. */
static void make_tree(const char *dir)
{
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/etc/deep/deeper/deepest %1$s/many %1$s/htree; cd %1$s;"
                          "for i in $(seq 1 300); do head -c $(( (i * 7919) %% 9000 )) /dev/urandom > many/f$i; done;"
                          "for i in $(seq 1 400); do echo $i > htree/an-entry-with-a-rather-long-name-$i; done;"
                          "head -c 4097 /dev/urandom > 'etc/A long file name.dat'; : > etc/empty;"
                          "head -c 70000 /dev/urandom > etc/deep/deeper/deepest/nested.bin;"
                          "head -c 3M /dev/urandom > big.bin;"
                          "truncate -s 2M sparse.bin; head -c 5000 /dev/urandom | dd of=sparse.bin bs=1 seek=1000000"
                          " conv=notrunc status=none;"
                          "ln -s big.bin short-link; ln -s etc/deep/deeper/deepest/nested.bin relative-link;"
                          "ln -s $(printf 'a-long-symlink-target-%%.0s' $(seq 1 10)) long-link;"
                          "ln -s /nonexistent/target dangling-link",
                          dir),
                 0);
}

/* Groups dumpe2fs shows with BLOCK_UNINIT: the bitmap libext2fs computes instead of reading. */
static unsigned block_uninit_groups(const char *img)
{
    char *out = fsfix_sh_out("dumpe2fs %s 2>/dev/null | grep -c BLOCK_UNINIT || true", img);
    cr_assert_not_null(out, "dumpe2fs %s", img);
    unsigned n = (unsigned)strtoul(out, NULL, 10);
    free(out);
    return n;
}

/* The blocks debugfs lists for the files in paths ("blocks PATH" each), as sorted byte ranges,
 * each block widened to its whole allocation unit of unit bytes. */
static void file_blocks(const char *img, const char *paths, uint64_t bs, uint64_t unit, struct asr_ranges *out)
{
    char *list = fsfix_sh_out("for p in %s; do debugfs -R \"blocks $p\" %s 2>/dev/null; done | tr ' ' '\\n' | grep ."
                              " | sort -n -u",
                              paths, img);
    cr_assert_not_null(list, "debugfs blocks %s", paths);
    for (char *p = list, *end; *p; p = end) {
        uint64_t b = strtoull(p, &end, 10);
        if (end == p)
            break;
        uint64_t from = b * bs / unit * unit, to = from + unit;
        uint64_t last = out->n ? out->v[out->n - 1].offset + out->v[out->n - 1].length : 0;
        if (from < last)
            from = last;
        if (to > from)
            cr_assert_eq(asr_ranges_add(out, from, to - from), ASR_OK);
    }
    free(list);
}

/* Deletes the junk a fixture was made with, the way a used filesystem frees blocks: debugfs
 * unlinks the files and frees their blocks, leaving their old contents on disk. Then writes one
 * late file that may reuse them. Returns (in freed) the junk's blocks the late file did not take:
 * blocks that hold old data and that no map should need. */
static void delete_junk(const char *img, const char *tree, uint64_t bs, uint64_t cluster, struct asr_ranges *freed)
{
    struct asr_ranges junk = {0}, late = {0};
    file_blocks(img, "/junk/j1 /junk/j2 /junk/j3 /junk/j4 /junk/j5 /junk/j6", bs, bs, &junk);
    cr_assert_gt(junk.n, 0, "debugfs lists no blocks for the junk files");
    cr_assert_eq(fsfix_sh("set -e; cd %2$s; printf 'rm /junk/j%%s\\n' 1 2 3 4 5 6 > ../del.cmd;"
                          "echo 'rmdir /junk' >> ../del.cmd; debugfs -w -f ../del.cmd %1$s >/dev/null 2>&1; rm -r junk;"
                          "head -c 50000 /dev/urandom > late.bin;"
                          "debugfs -w -R 'write late.bin late.bin' %1$s >/dev/null 2>&1",
                          img, tree),
                 0);
    /* A cluster the late file took is used as a whole, the rest of it included. */
    file_blocks(img, "/late.bin", bs, cluster, &late);
    cr_assert_gt(late.n, 0);
    fsfix_subtract(&junk, &late, freed);
    asr_ranges_free(&junk);
    asr_ranges_free(&late);
}

/* A GPT disk holding img's bytes in a partition of part bytes at PART_BASE, with garbage in the
 * partition after the filesystem and in the gap after the partition (a next partition's data). */
static char *make_disk(const char *img, uint64_t fs_size, uint64_t part)
{
    char *disk = scratch_path("disk.img");
    cr_assert_eq(fsfix_sh("set -e; rm -f %1$s; truncate -s %2$llu %1$s;"
                          "printf 'label: gpt\\nstart=2048, size=%3$llu, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n'"
                          " | sfdisk -q %1$s >/dev/null;"
                          "dd if=%4$s of=%1$s bs=1M seek=1 conv=notrunc,sparse status=none;"
                          "head -c %5$llu /dev/urandom"
                          " | dd of=%1$s bs=64K seek=%6$llu oflag=seek_bytes conv=notrunc status=none",
                          disk, (unsigned long long)(PART_BASE + part + MIB), (unsigned long long)(part / 512), img,
                          (unsigned long long)(part - fs_size + 512 * 1024), (unsigned long long)(PART_BASE + fs_size)),
                 0);
    return disk;
}

/* e2fsck's count: "N/M files (...), USED/TOTAL blocks". USED is blocks count minus the free
 * blocks the bitmaps hold (under bigalloc, free clusters times the ratio), so with 1 KiB blocks
 * it also counts block 0, which is in no group: exactly what the map must hold, in blocks. */
static void e2fsck_count(const char *img, uint64_t *used, uint64_t *total)
{
    char *out = fsfix_sh_out("e2fsck -fn %s 2>/dev/null", img);
    cr_assert_not_null(out, "e2fsck -fn %s fails", img);
    const char *p = strstr(out, "non-contiguous), ");
    unsigned long long u = 0, t = 0;
    cr_assert(p && sscanf(p, "non-contiguous), %llu/%llu blocks", &u, &t) == 2, "e2fsck said: %s", out);
    free(out);
    *used = u;
    *total = t;
}

/* dumpe2fs's "Free blocks:" lists, group by group, as the complement: the used bytes. Under
 * bigalloc dumpe2fs prints each free run's last cluster by its first block, so a run ends a
 * cluster after its last number. dumpe2fs walks the bitmap bit by bit, an iteration independent
 * of the run search asr_ext_used does. */
static void dumpe2fs_used(const char *img, uint64_t bs, uint64_t cluster, uint64_t fs_bytes, struct asr_ranges *used)
{
    char *out =
        fsfix_sh_out("dumpe2fs %s 2>/dev/null | sed -n 's/^  Free blocks: //p' | tr ',' '\\n' | tr -d ' '", img);
    cr_assert_not_null(out, "dumpe2fs %s", img);
    uint64_t at = 0;
    for (char *p = out, *end; *p; p = end) {
        while (*p == '\n')
            p++;
        if (!*p)
            break;
        unsigned long long a = strtoull(p, &end, 10), b = a;
        if (*end == '-')
            b = strtoull(end + 1, &end, 10);
        uint64_t from = a * bs, to = b * bs + cluster;
        cr_assert_geq(from, at, "dumpe2fs free blocks out of order at %llu", a);
        cr_assert_eq(asr_ranges_add(used, at, from - at), ASR_OK);
        at = to;
    }
    if (fs_bytes > at)
        cr_assert_eq(asr_ranges_add(used, at, fs_bytes - at), ASR_OK);
    free(out);
}

/* Two maps must agree to the byte; logs both sizes first so a failure shows how far apart. */
static void assert_same_map(const char *who, const struct asr_ranges *ours, const struct asr_ranges *theirs)
{
    uint64_t only_ours = fsfix_not_covered(ours, theirs), only_theirs = fsfix_not_covered(theirs, ours);
    cr_log_info("used bytes: asrimg %llu, %s %llu (only asrimg %llu, only %s %llu)",
                (unsigned long long)asr_ranges_bytes(ours), who, (unsigned long long)asr_ranges_bytes(theirs),
                (unsigned long long)only_ours, who, (unsigned long long)only_theirs);
    cr_assert_eq(only_ours, 0, "asrimg maps %llu bytes %s does not", (unsigned long long)only_ours, who);
    cr_assert_eq(only_theirs, 0, "%s maps %llu bytes asrimg does not", who, (unsigned long long)only_theirs);
}

/* Copies only the used ranges of the partition onto garbage and lets e2fsck and debugfs judge.
 * The cleared ranges hold garbage too (a restore writes zeros there): neither e2fsck nor the
 * reads may care. */
static void check_copy(const char *disk, uint64_t part, const struct asr_ranges *used, const char *tree)
{
    char *target = scratch_path("target.img"), *out = scratch_path("readback");
    fsfix_copy_used(disk, PART_BASE, used, target, part);
    cr_assert_eq(fsfix_sh("e2fsck -fn %s >/dev/null 2>&1 || e2fsck -fn %s", target, target), 0,
                 "e2fsck finds the used-range copy damaged");
    /* rdump restores files, directories and symlinks (as links); lost+found is mkfs's, not ours. */
    cr_assert_eq(fsfix_sh("mkdir %1$s && debugfs -R 'rdump / %1$s' %2$s >/dev/null 2>&1", out, target), 0);
    cr_assert_eq(fsfix_sh("diff -r --no-dereference -x lost+found %s %s", tree, out), 0,
                 "files read back from the copy differ");
    free(target);
    free(out);
}

struct ext_case {
    const char *mkfs;     /* mkfs.ext2, mkfs.ext3 or mkfs.ext4 */
    const char *opts;     /* its options */
    unsigned fs_mib;      /* the filesystem */
    unsigned part_mib;    /* its partition (0: the same size) */
    const char *type;     /* the type blkid and asr_ext_used name */
    uint32_t block;       /* block size */
    uint32_t cluster;     /* allocation unit (bigalloc: cluster) */
    const char *features; /* space-separated features dumpe2fs must list ("-x": must not) */
    bool uninit;          /* some group must be BLOCK_UNINIT */
    bool junk;            /* files deleted after creation */
    bool partclone_fails; /* partclone 0.3.23 cannot map it (see the case) */
};

/* A fixture's journal is empty (mkfs and debugfs leave nothing to recover): its log, every block
 * of the journal inode but the first (debugfs's list, in logical order), is what the map clears,
 * and nothing else. Without a journal nothing is cleared. */
static void check_cleared(const char *img, const struct ext_case *c, const struct asr_usedmap *m)
{
    fsfix_check_ranges(&m->cleared, (uint64_t)c->fs_mib << 20);
    cr_assert_eq(fsfix_not_covered(&m->cleared, &m->used), asr_ranges_bytes(&m->cleared), "cleared bytes are used too");
    struct asr_ranges log = {0};
    if (!strstr(c->features, "-has_journal") && strcmp(c->mkfs, "mkfs.ext2") != 0) {
        /* debugfs's stat lists the journal inode's runs as (logical[-last]):physical[-last], its
         * tree and indirect blocks as (ETB...) or (IND) and the like: those are not the log. */
        char *runs = fsfix_sh_out("debugfs -R 'stat <8>' %s 2>/dev/null | sed -n '/^\\(BLOCKS\\|EXTENTS\\):/{n;p}' |"
                                  " tr ',' '\\n' | grep -E '^ *\\([0-9]' | sed 's/[():-]/ /g'", img);
        cr_assert_not_null(runs);
        for (char *line = strtok(runs, "\n"); line; line = strtok(NULL, "\n")) {
            unsigned long long n[4];
            int k = sscanf(line, "%llu %llu %llu %llu", &n[0], &n[1], &n[2], &n[3]);
            cr_assert(k == 4 || k == 2, "debugfs run: %s", line);
            uint64_t first = n[0], last = k == 4 ? n[1] : n[0], phys = k == 4 ? n[2] : n[1];
            if (first == 0) /* the journal superblock */
                first = 1, phys++;
            struct asr_ranges one = {0}, u = {0};
            if (first <= last)
                cr_assert_eq(asr_ranges_add(&one, phys * c->block, (last - first + 1) * c->block), ASR_OK);
            cr_assert_eq(asr_ranges_union(&log, &one, &u), ASR_OK); /* in any order */
            asr_ranges_free(&log);
            asr_ranges_free(&one);
            log = u;
        }
        free(runs);
        cr_assert_gt(asr_ranges_bytes(&log), 0);
        cr_assert_not_null(strstr(m->note, "journal empty: its log, "), "note: %s", m->note);
    }
    assert_same_map("the journal's log (cleared)", &m->cleared, &log);
    asr_ranges_free(&log);
}

static void check_features(const char *img, const struct ext_case *c)
{
    char *feat = fsfix_sh_out("dumpe2fs -h %s 2>/dev/null | sed -n 's/^Filesystem features: *//p'", img);
    cr_assert_not_null(feat);
    char *list = strdup(c->features), *save = NULL, padded[1024];
    snprintf(padded, sizeof padded, " %.*s ", (int)strcspn(feat, "\n"), feat);
    for (char *f = strtok_r(list, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
        char word[64];
        snprintf(word, sizeof word, " %s ", f[0] == '-' ? f + 1 : f);
        if (f[0] == '-')
            cr_assert_null(strstr(padded, word), "%s %s made a filesystem with %s:%s", c->mkfs, c->opts, f + 1, padded);
        else
            cr_assert_not_null(strstr(padded, word), "%s %s made a filesystem without %s:%s", c->mkfs, c->opts, f,
                               padded);
    }
    free(list);
    free(feat);
    if (c->uninit)
        cr_assert_gt(block_uninit_groups(img), 0, "the fixture has no BLOCK_UNINIT group to test");
}

static void run_case(const struct ext_case *c)
{
    need_ext_tools(c->mkfs);
    uint64_t fs_size = (uint64_t)c->fs_mib * MIB, part = (uint64_t)(c->part_mib ? c->part_mib : c->fs_mib) * MIB;
    char *img = scratch_path("fs.img"), *tree = scratch_path("tree");
    make_tree(tree);
    if (c->junk)
        cr_assert_eq(fsfix_sh("set -e; mkdir %1$s/junk; for i in 1 2 3 4 5 6; do head -c $((i * 70000)) /dev/urandom"
                              " > %1$s/junk/j$i; done",
                              tree),
                     0);
    cr_assert_eq(fsfix_sh("truncate -s %llu %s && %s -q -F -L asr-label -U " FS_UUID " %s -d %s %s",
                          (unsigned long long)fs_size, img, c->mkfs, c->opts, tree, img),
                 0, "%s %s", c->mkfs, c->opts);
    check_features(img, c);
    struct asr_ranges freed = {0};
    if (c->junk)
        delete_junk(img, tree, c->block, c->cluster, &freed);
    cr_assert_eq(fsfix_sh("e2fsck -fn %s >/dev/null 2>&1", img), 0, "the fixture itself fails e2fsck");

    char *disk = make_disk(img, fs_size, part);
    struct asr_window w = fsfix_window(disk, PART_BASE, part);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ext_used(&w, &m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);

    cr_assert_str_eq(m.fs_type, c->type);
    char *blkid_type = fsfix_sh_out("blkid -p -o value -s TYPE %s", img);
    if (blkid_type)
        cr_assert_eq(strncmp(blkid_type, c->type, strlen(c->type)), 0, "blkid says %s", blkid_type);
    free(blkid_type);
    cr_assert_str_eq(m.fs_uuid, FS_UUID);
    cr_assert_str_eq(m.fs_label, "asr-label");
    cr_assert_eq(m.block_size, c->cluster);
    fsfix_check_ranges(&m.used, fs_size); /* nothing past the filesystem, though the partition is larger */
    check_cleared(img, c, &m);
    /* What the filesystem holds: used, and the empty journal's log, cleared. */
    struct asr_ranges held = {0};
    cr_assert_eq(asr_ranges_union(&m.used, &m.cleared, &held), ASR_OK);
    uint64_t used = asr_ranges_bytes(&held);
    cr_log_info("%s %s: %u MiB, %llu bytes used in %zu ranges", c->mkfs, c->opts, c->fs_mib, (unsigned long long)used,
                m.used.n);

    /* e2fsck's count of used blocks, in bytes, is ours exactly. */
    uint64_t fsck_used, fsck_total;
    e2fsck_count(img, &fsck_used, &fsck_total);
    cr_assert_eq(fsck_total * c->block, fs_size);
    cr_assert_eq(used, fsck_used * c->block, "we map %llu bytes, e2fsck counts %llu blocks of %u used",
                 (unsigned long long)used, (unsigned long long)fsck_used, c->block);

    /* Block by block against dumpe2fs's free lists. */
    struct asr_ranges dump = {0};
    dumpe2fs_used(img, c->block, c->cluster, fs_size, &dump);
    assert_same_map("dumpe2fs", &held, &dump);
    asr_ranges_free(&dump);

    /* The deleted files' blocks still hold their data; none of it is needed. */
    if (c->junk) {
        uint64_t freed_bytes = asr_ranges_bytes(&freed);
        cr_assert_geq(freed_bytes, 1000000, "only %llu bytes of junk left free to test",
                      (unsigned long long)freed_bytes);
        cr_assert_eq(fsfix_not_covered(&freed, &held), freed_bytes, "the map holds blocks of deleted files");
        asr_ranges_free(&freed);
    }

    check_copy(disk, part, &m.used, tree);

    /* partclone.extfs reads the same block bitmaps (through libext2fs, computing BLOCK_UNINIT
     * groups the same way) and, with 1 KiB blocks, also copies block 0, the boot block outside
     * every group. Nothing is counted differently, so no tolerance: the maps must be identical
     * to the byte, and are on every fixture here. */
    bool crossed = false;
    if (c->partclone_fails) {
        cr_log_info("no partclone.extfs cross-check for %s %s (see the case): dumpe2fs and e2fsck were the "
                    "cross-checks", c->mkfs, c->opts);
        crossed = true;
    } else if (fsfix_have("partclone.extfs")) {
        struct asr_ranges theirs = {0};
        cr_assert(fsfix_partclone_map("partclone.extfs", img, &theirs), "partclone.extfs could not map %s", img);
        assert_same_map("partclone.extfs", &held, &theirs);
        asr_ranges_free(&theirs);
        crossed = true;
    }
    asr_usedmap_free(&m);
    asr_ranges_free(&held);
    free(disk);
    free(img);
    free(tree);
    if (!crossed)
        cr_skip_test("partclone.extfs missing: every check passed but the partclone cross-check");
}

Test(fs_ext, ext2_1k_blocks)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext2", .opts = "-b 1024", .fs_mib = 64, .type = "ext2", .block = 1024,
                                .cluster = 1024, .features = "-has_journal -extent", .junk = true});
}

Test(fs_ext, ext2_4k_blocks)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext2", .opts = "-b 4096 -g 4096", .fs_mib = 96, .type = "ext2",
                                .block = 4096, .cluster = 4096, .features = "-has_journal"});
}

Test(fs_ext, ext3_1k_blocks)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext3", .opts = "-b 1024", .fs_mib = 64, .type = "ext3", .block = 1024,
                                .cluster = 1024, .features = "has_journal -extent", .junk = true});
}

Test(fs_ext, ext3_4k_blocks)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext3", .opts = "-b 4096 -g 8192", .fs_mib = 128, .type = "ext3",
                                .block = 4096, .cluster = 4096, .features = "has_journal"});
}

/* The filesystem is smaller than its partition: the map stops at its last block. */
Test(fs_ext, ext4_1k_blocks_in_larger_partition)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 1024", .fs_mib = 96, .part_mib = 128, .type = "ext4",
                                .block = 1024, .cluster = 1024, .features = "has_journal extent flex_bg metadata_csum",
                                .uninit = true, .junk = true});
}

/* Debian's ext4 defaults (64bit, flex_bg, metadata_csum), with groups small enough to have many. */
Test(fs_ext, ext4_4k_blocks_64bit)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 4096 -g 4096 -O 64bit", .fs_mib = 128, .type = "ext4",
                                .block = 4096, .cluster = 4096, .features = "64bit flex_bg metadata_csum",
                                .uninit = true, .junk = true});
}

/* Without flex_bg every group holds its own bitmaps and inode table, and the BLOCK_UNINIT
 * groups' metadata must be computed from the group itself. */
Test(fs_ext, ext4_without_flex_bg)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 4096 -g 4096 -O ^flex_bg", .fs_mib = 128,
                                .type = "ext4", .block = 4096, .cluster = 4096, .features = "-flex_bg",
                                .uninit = true, .junk = true});
}

/* meta_bg: descriptor blocks spread over the first groups of each meta group (64 groups of 1024
 * blocks, 16 descriptors a block: four meta groups). */
Test(fs_ext, ext4_meta_bg)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 1024 -g 1024 -O meta_bg,^resize_inode", .fs_mib = 64,
                                .type = "ext4", .block = 1024, .cluster = 1024, .features = "meta_bg -resize_inode",
                                .uninit = true, .junk = true});
}

/* 32-bit descriptors and the older crc16 descriptor checksums (uninit_bg), which decide whether
 * BLOCK_UNINIT is believed. */
Test(fs_ext, ext4_32bit_uninit_bg)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 4096 -g 8192 -O ^64bit,^metadata_csum,uninit_bg",
                                .fs_mib = 128, .type = "ext4", .block = 4096, .cluster = 4096,
                                .features = "-64bit -metadata_csum uninit_bg", .uninit = true, .junk = true});
}

/* Features with blocks of their own: the orphan file and the multi-mount protection block (which
 * the kernel rewrites while mounted). No deleted files here: debugfs -w honours MMP by waiting
 * twice its 5 s check interval before every write. (inline_data is not tested: debugfs rdump,
 * the reader here, returns inline files as their 60-byte i_block area.) */
Test(fs_ext, ext4_orphan_file_and_mmp)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 4096 -g 4096 -O orphan_file,mmp", .fs_mib = 64,
                                .type = "ext4", .block = 4096, .cluster = 4096, .features = "orphan_file mmp",
                                .uninit = true});
}

/* bigalloc: a bit per 16 KiB cluster. partclone 0.3.23 refuses bigalloc (partclone.extfs -D
 * fails after 3 s with "extfsclone.c: bitmap error at 0 group"), so it is not asked; e2fsck's
 * count and dumpe2fs's free lists, block by block, are the cross-checks here. */
Test(fs_ext, ext4_bigalloc_4k_blocks)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 4096 -O bigalloc -C 16384 -g 1024", .fs_mib = 128,
                                .type = "ext4", .block = 4096, .cluster = 16384, .features = "bigalloc",
                                .uninit = true, .junk = true, .partclone_fails = true});
}

/* bigalloc with 1 KiB blocks: s_first_data_block is 0 (a cluster holds the boot block and the
 * superblock), unlike every other 1 KiB-block filesystem. */
Test(fs_ext, ext4_bigalloc_1k_blocks)
{
    run_case(&(struct ext_case){.mkfs = "mkfs.ext4", .opts = "-b 1024 -O bigalloc -C 8192 -g 1024", .fs_mib = 64,
                                .type = "ext4", .block = 1024, .cluster = 8192, .features = "bigalloc",
                                .uninit = true, .junk = true, .partclone_fails = true});
}

/* ---- refusals: damaged, unclean or mis-sized filesystems --------------------------------- */

/* Superblock fields (offsets in the primary superblock, itself at 1 KiB). */
#define SB 1024u
#define SB_BLOCKS_LO (SB + 0x04)
#define SB_LOG_BLOCK (SB + 0x18)
#define SB_BLOCKS_PER_GROUP (SB + 0x20)
#define SB_VOLUME_NAME (SB + 0x78)
#define SB_BLOCKS_HI (SB + 0x150)

/* A small filesystem with a few files: enough for every group to have its metadata. */
static char *small_fs(const char *mkfs, const char *opts, unsigned mib)
{
    need_ext_tools(mkfs);
    char *img = scratch_path("fs.img"), *tree = scratch_path("small");
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/d;"
                          "for i in $(seq 1 20); do head -c $((i * 3000)) /dev/urandom > %1$s/d/f$i; done;"
                          "head -c 300K /dev/urandom > %1$s/big; truncate -s %2$uM %3$s;"
                          "%4$s -q -F %5$s -d %1$s %3$s",
                          tree, mib, img, mkfs, opts),
                 0, "%s %s", mkfs, opts);
    free(tree);
    return img;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (uint64_t)st.st_size;
}

static void patch_le32(const char *path, uint64_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        patch_byte(path, off + (uint64_t)i, (uint8_t)(v >> 8 * i));
}

static uint32_t read_le32(const char *path, uint64_t off)
{
    uint8_t b[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, b, 4, (off_t)off), 4);
    close(fd);
    return get_le32(b);
}

/* asr_ext_used on img at PART_BASE of a GPT disk, with a window of part bytes (0: img's size),
 * must fail with code and a message holding want, and leave no ranges. */
static void expect_refusal(const char *img, uint64_t part, int code, const char *want)
{
    char *disk = make_disk(img, file_size(img), file_size(img));
    struct asr_window w = fsfix_window(disk, PART_BASE, part ? part : file_size(img));
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    int rc = asr_ext_used(&w, &m, &err);
    close(w.fd);
    cr_log_info("refused (%s): %s", asr_status_name(rc), err.msg);
    cr_assert_eq(rc, code, "asr_ext_used returned %s (%s), expected %s", asr_status_name(rc), err.msg,
                 asr_status_name(code));
    cr_assert_not_null(strstr(err.msg, want), "message \"%s\" does not say \"%s\"", err.msg, want);
    cr_assert_eq(m.used.n, 0);
    asr_usedmap_free(&m);
    free(disk);
}

/* A blocks count beyond the partition, as a bit flip or a foreign superblock would give: refused
 * before libext2fs sizes its group tables from it. Then the 64-bit high word alone. */
Test(fs_ext, refuses_blocks_count_beyond_partition)
{
    char *img = small_fs("mkfs.ext4", "-b 1024", 32);
    uint32_t lo = read_le32(img, SB_BLOCKS_LO);
    patch_le32(img, SB_BLOCKS_LO, 0x7fffffff);
    expect_refusal(img, 0, ASR_E_CORRUPT, "superblock claims 2147483647 blocks of 1024 bytes, more than the");
    patch_le32(img, SB_BLOCKS_LO, lo);
    patch_le32(img, SB_BLOCKS_HI, 1);
    expect_refusal(img, 0, ASR_E_CORRUPT, "more than the 33554432-byte volume");
    free(img);
}

/* A partition table that cut the filesystem short (or a filesystem grown past its partition). */
Test(fs_ext, refuses_filesystem_larger_than_partition)
{
    char *img = small_fs("mkfs.ext4", "-b 4096", 32);
    expect_refusal(img, 16 * MIB, ASR_E_CORRUPT,
                   "superblock claims 8192 blocks of 4096 bytes, more than the 16777216-byte volume");
    free(img);
}

/* Descriptors for 2^32 groups (2^40 blocks in groups of 256) would need 256 GiB of memory: refused
 * before libext2fs tries to allocate them, even on a volume large enough for the blocks. Only
 * the superblock is read, so the window may claim more than the file holds. */
Test(fs_ext, refuses_descriptor_table_too_large)
{
    char *img = small_fs("mkfs.ext4", "-b 1024 -O 64bit", 16);
    patch_le32(img, SB_BLOCKS_HI, 0x100);
    patch_le32(img, SB_BLOCKS_PER_GROUP, 256);
    struct asr_window w = fsfix_window(img, 0, 1ull << 51);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    int rc = asr_ext_used(&w, &m, &err);
    close(w.fd);
    cr_log_info("refused (%s): %s", asr_status_name(rc), err.msg);
    cr_assert_eq(rc, ASR_E_LIMIT, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "bytes of group descriptors, more than"), "%s", err.msg);
    cr_assert_eq(m.used.n, 0);
    free(img);
}

/* A block size of 1 KiB << 10: no ext filesystem has one. */
Test(fs_ext, refuses_absurd_block_size)
{
    char *img = small_fs("mkfs.ext2", "-b 1024", 16);
    patch_le32(img, SB_LOG_BLOCK, 10);
    expect_refusal(img, 0, ASR_E_CORRUPT, "is not an ext block size");
    free(img);
}

/* A group descriptor putting a block bitmap outside the filesystem: first on ext2, which has no
 * checksum to catch it; then on ext4 with the descriptor's checksum recomputed by debugfs. */
Test(fs_ext, refuses_descriptor_pointing_outside)
{
    char *img = small_fs("mkfs.ext2", "-b 1024", 16);
    /* 1 KiB blocks: descriptors in block 2, 32 bytes each; bg_block_bitmap is the first field. */
    patch_le32(img, 2048 + 32 * 1, 0x00ffffff);
    expect_refusal(img, 0, ASR_E_CORRUPT, "bad block for block bitmap");
    free(img);
    scratch_cleanup();
    img = small_fs("mkfs.ext4", "-b 4096 -g 4096", 64);
    cr_assert_eq(fsfix_sh("debugfs -w -R 'set_bg 2 block_bitmap 4000000' %s >/dev/null 2>&1", img), 0);
    expect_refusal(img, 0, ASR_E_CORRUPT, "bad block for block bitmap");
    free(img);
}

/* metadata_csum: a superblock changed without its checksum. */
Test(fs_ext, refuses_bad_superblock_checksum)
{
    char *img = small_fs("mkfs.ext4", "-b 1024 -L before", 16);
    patch_byte(img, SB_VOLUME_NAME, 'X');
    expect_refusal(img, 0, ASR_E_CORRUPT, "Superblock checksum does not match");
    free(img);
}

/* A descriptor changed without its checksum: here group 0 flagged BLOCK_UNINIT, which if believed
 * would drop the root directory and every file of that group from the map. With crc32c
 * (metadata_csum), then with the crc16 of uninit_bg. */
Test(fs_ext, refuses_bad_descriptor_checksum)
{
    static const char *const opts[] = {"-b 1024", "-b 1024 -O ^metadata_csum,uninit_bg"};
    for (int i = 0; i < 2; i++) {
        char *img = small_fs("mkfs.ext4", opts[i], 16);
        /* bg_flags is at 0x12 of group 0's descriptor (block 2); BLOCK_UNINIT is bit 1. */
        uint8_t b[1];
        int fd = open(img, O_RDONLY | O_CLOEXEC);
        cr_assert_eq(pread(fd, b, 1, 2048 + 0x12), 1);
        close(fd);
        patch_byte(img, 2048 + 0x12, b[0] | 0x02);
        expect_refusal(img, 0, ASR_E_CORRUPT, "group 0 descriptor fails its checksum");
        free(img);
        scratch_cleanup();
    }
}

/* ---- damaged filesystems: the map holds every block the metadata references ------------- */

/* A restored filesystem must read exactly as its source, damaged or not. Each case below damages
 * a filesystem with e2fsprogs' own tools the way e2fsprogs' test images are damaged (a block
 * bitmap calling free what a file, directory, extent tree, xattr or symlink still uses, states
 * that say the bitmaps are not to be trusted), maps it, copies only the mapped bytes onto
 * garbage, and asks e2fsck -fn and debugfs's rdump about both: same report, same files. */

/* A filesystem holding one of everything that has blocks: a file of 200 KiB (on ext2 with 1 KiB
 * blocks: indirect and double-indirect blocks), a sparse file of 24 separate blocks (an extent
 * tree block on ext4), a directory of 300 long names (several blocks, an htree on ext3/4), a
 * symlink too long for its inode, and an xattr too large for the inode (an xattr block). */
static char *damage_fs(const char *mkfs, const char *opts, unsigned mib)
{
    need_ext_tools(mkfs);
    char *img = scratch_path("fs.img"), *tree = scratch_path("damage-tree");
    cr_assert_eq(fsfix_sh("set -e; rm -rf %1$s; mkdir -p %1$s/dir %1$s/d; cd %1$s;"
                          "head -c 200K /dev/urandom > big; for i in $(seq 1 12); do head -c $((i * 900)) /dev/urandom"
                          " > d/f$i; done;"
                          "truncate -s 600K sparse; for i in $(seq 0 23); do head -c 1024 /dev/urandom"
                          " | dd of=sparse bs=1K seek=$((i * 24)) conv=notrunc status=none; done;"
                          "for i in $(seq 1 300); do echo $i > dir/an-entry-with-a-rather-long-name-$i; done;"
                          "ln -s $(printf 'a-long-symlink-target-%%.0s' $(seq 1 8)) long-link;"
                          "head -c 700 /dev/urandom | base64 -w0 > ../xattr-value;"
                          "rm -f %2$s; truncate -s %3$uM %2$s; %4$s -q -F %5$s -d %1$s %2$s;"
                          "debugfs -w -R 'ea_set -f ../xattr-value /d/f3 user.big' %2$s >/dev/null 2>&1",
                          tree, img, mib, mkfs, opts),
                 0, "%s %s", mkfs, opts);
    cr_assert_eq(fsfix_sh("e2fsck -fn %s >/dev/null 2>&1", img), 0, "the fixture is damaged before the damage");
    free(tree);
    return img;
}

/* The block numbers a shell command prints (debugfs's lists), at most max of them. */
static size_t block_list(const char *cmd, uint64_t *v, size_t max)
{
    char *out = fsfix_sh_out("%s", cmd);
    cr_assert_not_null(out, "%s", cmd);
    size_t n = 0;
    for (char *p = out, *end; n < max; p = end) {
        while (*p && (*p < '0' || *p > '9'))
            p++;
        uint64_t b = strtoull(p, &end, 10);
        if (end == p)
            break;
        v[n++] = b;
    }
    free(out);
    cr_assert_gt(n, 0, "no block from: %s", cmd);
    return n;
}

/* Marks blocks free in the block bitmap with debugfs (which keeps its checksum and the free counts
 * right: nothing cheap shows the damage), adding them to freed in bytes. */
static void free_blocks(const char *img, const uint64_t *v, size_t n, uint64_t bs, struct asr_ranges *freed)
{
    char *cmd = scratch_path("freeb.cmd");
    FILE *f = fopen(cmd, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "freeb %llu\n", (unsigned long long)v[i]);
    fclose(f);
    cr_assert_eq(fsfix_sh("debugfs -w -f %s %s >/dev/null 2>&1", cmd, img), 0);
    free(cmd);
    struct asr_ranges add = {0}, all = {0};
    uint64_t sorted[256];
    cr_assert_leq(n, 256);
    memcpy(sorted, v, n * sizeof *v);
    for (size_t i = 1; i < n; i++) /* insertion sort: a few blocks */
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            uint64_t t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        if (!add.n || sorted[i] * bs >= add.v[add.n - 1].offset + add.v[add.n - 1].length)
            cr_assert_eq(asr_ranges_add(&add, sorted[i] * bs, bs), ASR_OK);
    cr_assert_eq(asr_ranges_union(freed, &add, &all), ASR_OK);
    asr_ranges_free(freed);
    asr_ranges_free(&add);
    *freed = all;
}

/* What e2fsck -fn and debugfs's rdump make of img: the checker's report and exit status and
 * rdump's messages (the image's and directory's names taken out), with the tree in dir. */
static char *fs_reading(const char *img, const char *dir)
{
    cr_assert_eq(fsfix_sh("rm -rf %1$s; mkdir %1$s", dir), 0);
    char *out = fsfix_sh_out("{ e2fsck -fn %1$s; echo \"e2fsck exit $?\"; debugfs -R 'rdump / %2$s' %1$s; } 2>&1"
                             " | sed 's|%1$s|IMG|g; s|%2$s|DIR|g'",
                             img, dir);
    cr_assert_not_null(out);
    return out;
}

/* The copy of img holding only used (on garbage) reads as img does: the same e2fsck report, the
 * same files. Returns e2fsck's exit status on the source (the damage must show). */
static int assert_copy_reads_as_source(const char *img, const struct asr_ranges *used)
{
    char *copy = scratch_path("copy.img"), *src_dir = scratch_path("src.d"), *copy_dir = scratch_path("copy.d");
    fsfix_copy_used(img, 0, used, copy, file_size(img));
    char *a = fs_reading(img, src_dir), *b = fs_reading(copy, copy_dir);
    cr_log_info("source reads:\n%s", a);
    cr_assert_str_eq(b, a, "the copy reads differently from its source:\n%s", b);
    cr_assert_eq(fsfix_sh("diff -r --no-dereference %s %s", src_dir, copy_dir), 0,
                 "files read back from the copy differ");
    int rc = fsfix_sh("e2fsck -fn %s >/dev/null 2>&1", img);
    free(a);
    free(b);
    free(copy);
    free(src_dir);
    free(copy_dir);
    return rc;
}

/* Maps img (asserting success), logs the note, and checks the map holds want. */
static void map_holding(const char *img, const struct asr_ranges *want, struct asr_usedmap *m)
{
    struct asr_window w = fsfix_window(img, 0, file_size(img));
    struct asr_error err = {0};
    *m = (struct asr_usedmap){0};
    cr_assert_eq(asr_ext_used(&w, m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    fsfix_check_ranges(&m->used, file_size(img));
    cr_log_info("%s: %llu bytes mapped; note: %s", img, (unsigned long long)asr_ranges_bytes(&m->used), m->note);
    if (want)
        cr_assert_eq(fsfix_not_covered(want, &m->used), 0, "the map leaves out %llu bytes the metadata references",
                     (unsigned long long)fsfix_not_covered(want, &m->used));
}

struct damage {
    const char *mkfs, *opts;
    uint32_t bs;
    const char *what;    /* shell printing the blocks to mark free ($IMG: the image) */
    const char *before;  /* shell damaging img first, or NULL */
};

static void run_damage(const struct damage *d)
{
    char *img = damage_fs(d->mkfs, d->opts, 4);
    if (d->before)
        cr_assert_eq(fsfix_sh("IMG=%s; %s", img, d->before), 0, "%s", d->before);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "IMG=%s; %s", img, d->what);
    uint64_t blocks[256];
    size_t n = block_list(cmd, blocks, 256);
    struct asr_ranges freed = {0};
    free_blocks(img, blocks, n, d->bs, &freed);
    struct asr_usedmap m;
    map_holding(img, &freed, &m);
    cr_assert_not_null(strstr(m.note, "that metadata references but the block bitmap marks free, captured too"),
                       "note: %s", m.note);
    cr_assert_neq(assert_copy_reads_as_source(img, &m.used), 0, "e2fsck finds nothing wrong with the damage");
    asr_usedmap_free(&m);
    asr_ranges_free(&freed);
    free(img);
}

#define EXT4_1K "mkfs.ext4", "-b 1024 -I 256", 1024
#define EXT2_1K "mkfs.ext2", "-b 1024 -I 256", 1024

Test(fs_ext, damaged_file_blocks_marked_free)
{
    run_damage(&(struct damage){EXT4_1K, "debugfs -R 'blocks /big' $IMG 2>/dev/null | cut -d' ' -f1-40", NULL});
}

/* Every block of a directory with an htree index, its root and leaves. */
Test(fs_ext, damaged_directory_blocks_marked_free)
{
    run_damage(&(struct damage){EXT4_1K, "debugfs -R 'blocks /dir' $IMG 2>/dev/null", NULL});
}

/* The sparse file's extent tree block, and its first data block. */
Test(fs_ext, damaged_extent_tree_block_marked_free)
{
    run_damage(&(struct damage){EXT4_1K, "debugfs -R 'stat /sparse' $IMG 2>/dev/null | grep -o '(ETB0):[0-9]*';"
                                         "debugfs -R 'blocks /sparse' $IMG 2>/dev/null | cut -d' ' -f1", NULL});
}

Test(fs_ext, damaged_xattr_block_marked_free)
{
    run_damage(&(struct damage){EXT4_1K, "debugfs -R 'stat /d/f3' $IMG 2>/dev/null | sed -n 's/.*File ACL: \\([0-9]*\\).*/\\1/p'"
                                         " | grep -v '^0$'", NULL});
}

Test(fs_ext, damaged_symlink_block_marked_free)
{
    run_damage(&(struct damage){EXT4_1K, "debugfs -R 'blocks /long-link' $IMG 2>/dev/null", NULL});
}

/* ext2's block maps: the indirect and double-indirect blocks of a file, a data block reached only
 * through them, a directory block, and a long symlink's block. */
Test(fs_ext, damaged_block_map_marked_free)
{
    run_damage(&(struct damage){EXT2_1K, "debugfs -R 'stat /big' $IMG 2>/dev/null | grep -o '(D*IND):[0-9]*';"
                                         "debugfs -R 'blocks /big' $IMG 2>/dev/null | cut -d' ' -f150;"
                                         "debugfs -R 'blocks /dir' $IMG 2>/dev/null | cut -d' ' -f2;"
                                         "debugfs -R 'blocks /long-link' $IMG 2>/dev/null", NULL});
}

/* Duplicate blocks: a second file's block map made to point at the first one's blocks, which the
 * bitmap then calls free (e2fsck's pass 1B case). */
Test(fs_ext, damaged_duplicate_blocks_marked_free)
{
    run_damage(&(struct damage){EXT2_1K, "debugfs -R 'blocks /d/f10' $IMG 2>/dev/null | cut -d' ' -f1-3",
                                "for i in 0 1 2; do b=$(debugfs -R 'blocks /d/f10' $IMG 2>/dev/null | cut -d' ' -f$((i + 1)));"
                                " debugfs -w -R \"set_inode_field /d/f11 block[$i] $b\" $IMG >/dev/null 2>&1 || exit 1; done"});
}

/* A directory block whose contents no longer match its checksum (a name changed behind
 * metadata_csum's back), marked free as well: read through, never skipped. */
Test(fs_ext, damaged_directory_checksum_and_bitmap)
{
    run_damage(&(struct damage){EXT4_1K, "debugfs -R 'blocks /dir' $IMG 2>/dev/null | cut -d' ' -f3",
                                "b=$(debugfs -R 'blocks /dir' $IMG 2>/dev/null | cut -d' ' -f3);"
                                " printf 'X' | dd of=$IMG bs=1 seek=$((b * 1024 + 40)) conv=notrunc status=none"});
}

/* Frees the first ten blocks of /big, as the cases above do, into freed. */
static void free_some_of_big(const char *img, struct asr_ranges *freed)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "debugfs -R 'blocks /big' %s 2>/dev/null | cut -d' ' -f1-10", img);
    uint64_t blocks[16];
    size_t n = block_list(cmd, blocks, 16);
    free_blocks(img, blocks, n, 1024, freed);
}

/* States that once made the volume a whole capture (an ext2 not cleanly unmounted, errors the
 * kernel recorded): now the bitmap plus every referenced block, saying what it saw. With damage
 * under it, so that the copy shows the walk was done. */
static void run_state(const char *mkfs, unsigned state, const char *says)
{
    char *img = damage_fs(mkfs, "-b 1024 -I 256", 4);
    struct asr_ranges freed = {0};
    free_some_of_big(img, &freed);
    cr_assert_eq(fsfix_sh("debugfs -w -R 'ssv state %u' %s >/dev/null 2>&1", state, img), 0);
    struct asr_usedmap m;
    map_holding(img, &freed, &m);
    cr_assert_not_null(strstr(m.note, says), "note: %s", m.note);
    cr_assert_not_null(strstr(m.note, "10 KiB (10 blocks) that metadata references but the block bitmap marks free"),
                       "note: %s", m.note);
    assert_copy_reads_as_source(img, &m.used);
    asr_usedmap_free(&m);
    asr_ranges_free(&freed);
    free(img);
}

Test(fs_ext, uncleanly_unmounted_ext2_maps_bitmap_and_references)
{
    run_state("mkfs.ext2", 0, "not cleanly unmounted");
}

Test(fs_ext, recorded_errors_map_bitmap_and_references)
{
    run_state("mkfs.ext4", 3, "superblock records errors");
}

/* A block bitmap whose checksum fails, with a used block of /big flipped to free behind it: a
 * known flaw, not a structure that cannot be read. The map takes the bitmap as it is, plus every
 * referenced block, and says so. */
Test(fs_ext, bad_block_bitmap_checksum_maps_bitmap_and_references)
{
    char *img = damage_fs("mkfs.ext4", "-b 1024 -I 256", 4);
    uint64_t bitmap = fsfix_sh_number("dumpe2fs %s 2>/dev/null | sed -n 's/^  Block bitmap at \\([0-9]*\\).*/\\1/p'"
                                      " | head -1", img);
    uint64_t blk = fsfix_sh_number("debugfs -R 'blocks /big' %s 2>/dev/null | cut -d' ' -f5", img);
    uint64_t bit = blk - 1; /* 1 KiB blocks: group 0 starts at block 1 */
    uint8_t byte;
    fsfix_read_at(img, bitmap * 1024 + bit / 8, &byte, 1);
    cr_assert(byte & 1u << (bit % 8), "block %llu is not marked used", (unsigned long long)blk);
    byte &= (uint8_t)~(1u << (bit % 8));
    fsfix_write_at(img, bitmap * 1024 + bit / 8, &byte, 1);
    struct asr_ranges want = {0};
    cr_assert_eq(asr_ranges_add(&want, blk * 1024, 1024), ASR_OK);
    struct asr_usedmap m;
    map_holding(img, &want, &m);
    cr_assert_not_null(strstr(m.note, "a block bitmap fails its checksum"), "note: %s", m.note);
    cr_assert_not_null(strstr(m.note, "1 KiB (1 blocks) that metadata references"), "note: %s", m.note);
    cr_assert_neq(assert_copy_reads_as_source(img, &m.used), 0);
    asr_usedmap_free(&m);
    asr_ranges_free(&want);
    free(img);
}

/* ---- a journal to recover: the filesystem as the replay leaves it is mapped too ------------ */

/* The copy of img holding only used, and img itself, each recovered and repaired by e2fsck -fy:
 * they must then read alike too. */
static void assert_recovered_copy_reads_as_source(const char *img, const struct asr_ranges *used)
{
    char *copy = scratch_path("copy.img"), *src = scratch_path("recovered.img");
    char *src_dir = scratch_path("src.d"), *copy_dir = scratch_path("copy.d");
    fsfix_copy_used(img, 0, used, copy, file_size(img));
    cr_assert_eq(fsfix_sh("cp --sparse=always %s %s", img, src), 0);
    char *fa = fsfix_sh_out("e2fsck -fy %1$s 2>&1 | sed 's|%1$s|IMG|g'", src);
    char *fb = fsfix_sh_out("e2fsck -fy %1$s 2>&1 | sed 's|%1$s|IMG|g'", copy);
    cr_assert(fa && fb);
    cr_log_info("recovery of the source:\n%s", fa);
    cr_assert_str_eq(fb, fa, "the copy recovers differently from its source:\n%s", fb);
    char *a = fs_reading(src, src_dir), *b = fs_reading(copy, copy_dir);
    cr_assert_str_eq(b, a, "the recovered copy reads differently from its recovered source:\n%s", b);
    cr_assert_eq(fsfix_sh("diff -r --no-dereference %s %s", src_dir, copy_dir), 0,
                 "files read back from the recovered copy differ");
    free(fa);
    free(fb);
    free(a);
    free(b);
    free(copy);
    free(src);
    free(src_dir);
    free(copy_dir);
}

/* needs_recovery set on a journal that holds nothing (s_start 0): the map of what is on disk. */
Test(fs_ext, journal_flagged_but_empty_maps_the_disk)
{
    char *img = damage_fs("mkfs.ext4", "-b 1024 -I 256", 4);
    cr_assert_eq(fsfix_sh("debugfs -w -R 'feature needs_recovery' %s >/dev/null 2>&1", img), 0);
    struct asr_usedmap m;
    map_holding(img, NULL, &m);
    cr_assert_str_eq(m.note, "ext: journal flagged for recovery but holds no transaction");
    cr_assert_eq(m.cleared.n, 0, "a journal flagged for recovery keeps its log");
    assert_copy_reads_as_source(img, &m.used);
    assert_recovered_copy_reads_as_source(img, &m.used);
    asr_usedmap_free(&m);
    free(img);
}

/* A crash as jbd2 leaves it, written with debugfs: /new's data blocks in place (ordered mode), and
 * the metadata that makes them /new's (bitmap, inode, directory, descriptors, superblock) only in
 * a committed transaction of the journal. The bitmap on disk calls /new's blocks free and no inode
 * on disk references them: only the filesystem as replayed shows them. journal_open's options
 * choose the tag format (plain, or checksum v3 tags of 16 bytes). */
static void run_journal_transaction(const char *mkfs_opts, const char *jo_opts)
{
    char *img = damage_fs("mkfs.ext4", mkfs_opts, 4), *after = scratch_path("after.img");
    char *data = scratch_path("new.bin"), *cmds = scratch_path("write.cmd");
    cr_assert_eq(fsfix_sh("head -c 40K /dev/urandom > %1$s; echo 'write %1$s /new' > %2$s", data, cmds), 0);
    fsfix_ext_crash(img, after, 1024, cmds, "/new", jo_opts);
    cr_assert_neq(fsfix_sh("debugfs -R 'stat /new' %s 2>/dev/null | grep -q Inode:", img), 0,
                  "the fixture shows /new before recovery");
    struct asr_ranges want = {0};
    file_blocks(after, "/new", 1024, 1024, &want);
    struct asr_usedmap m;
    map_holding(img, &want, &m);
    cr_assert_not_null(strstr(m.note, "journal to recover: 1 transactions naming "), "note: %s", m.note);
    cr_assert_not_null(strstr(m.note, "the filesystem as replayed mapped too (+4"), "note: %s", m.note);
    cr_assert_eq(m.cleared.n, 0, "a journal to recover keeps its log");
    assert_copy_reads_as_source(img, &m.used);
    assert_recovered_copy_reads_as_source(img, &m.used);
    /* And the recovered copy holds /new. */
    char *copy = scratch_path("copy.img");
    cr_assert_eq(fsfix_sh("debugfs -R 'dump /new %s.out' %s >/dev/null 2>&1 && cmp %s.out %s", data, copy, data, data),
                 0, "/new reads differently after recovery");
    asr_usedmap_free(&m);
    asr_ranges_free(&want);
    free(copy);
    free(img);
    free(after);
    free(data);
    free(cmds);
}

Test(fs_ext, journal_transaction_replayed_in_the_map)
{
    run_journal_transaction("-b 1024 -I 256 -O ^metadata_csum", "");
}

Test(fs_ext, journal_transaction_with_v3_checksums_replayed_in_the_map)
{
    run_journal_transaction("-b 1024 -I 256", "-c -v 3");
}

/* Mounts img at mnt (made here) with the kernel and writes through it, mounted still: 30 new
 * files and a copy of /d, synced. The test is skipped where the kernel cannot mount it. */
static int kernel_writes(const char *img, const char *mnt)
{
    cr_assert_eq(fsfix_sh("mkdir %s", mnt), 0);
    if (fsfix_sh("mount -o loop %s %s 2>/dev/null", img, mnt) != 0)
        cr_skip_test("cannot mount an ext4 loop device here (needs root, loop and ext4 in the kernel)");
    return fsfix_sh("set -e; for i in $(seq 1 30); do head -c $((i * 5000)) /dev/urandom > %1$s/new$i; done;"
                    "mkdir %1$s/dir; cp -r %1$s/d %1$s/dir/; sync",
                    mnt);
}

/* The real thing: a copy taken while the kernel has the filesystem mounted read-write. */
Test(fs_ext, copy_of_mounted_filesystem_maps_disk_and_journal)
{
    char *img = small_fs("mkfs.ext4", "-b 4096", 32), *mnt = scratch_path("mnt"), *copy = scratch_path("mounted.img");
    int rc = kernel_writes(img, mnt);
    if (rc == 0)
        rc = fsfix_sh("cp --sparse=always %s %s", img, copy);
    cr_assert_eq(fsfix_sh("umount %s", mnt), 0);
    cr_assert_eq(rc, 0);
    struct asr_usedmap m;
    map_holding(copy, NULL, &m);
    cr_assert_not_null(strstr(m.note, "ext: journal to recover: "), "note: %s", m.note);
    cr_assert_eq(m.cleared.n, 0, "a mounted filesystem's journal keeps its log");
    assert_copy_reads_as_source(copy, &m.used);
    assert_recovered_copy_reads_as_source(copy, &m.used);
    asr_usedmap_free(&m);
    free(img);
    free(mnt);
    free(copy);
}

/* Unmounted after the kernel wrote through its journal: the log holds old transactions, s_start
 * is 0, and the map clears the log. A copy of the used bytes with garbage in the log (worse than
 * a restore, which writes zeros there) is clean for e2fsck, mounts, takes writes and is clean
 * again: neither reads the old log. */
Test(fs_ext, unmounted_filesystem_clears_its_journals_old_log)
{
    char *img = small_fs("mkfs.ext4", "-b 4096", 32), *mnt = scratch_path("mnt"), *copy = scratch_path("copy.img");
    int rc = kernel_writes(img, mnt);
    cr_assert_eq(fsfix_sh("umount %s", mnt), 0);
    cr_assert_eq(rc, 0);
    char *logdump = fsfix_sh_out("debugfs -R 'logdump' %s 2>&1", img);
    cr_assert(logdump && strstr(logdump, "Journal starts at block 0"), "%s", logdump ? logdump : "");
    free(logdump);
    struct asr_usedmap m;
    map_holding(img, NULL, &m);
    cr_assert_gt(asr_ranges_bytes(&m.cleared), 1u << 20, "note: %s", m.note);
    uint64_t old_log = fsfix_sh_number("debugfs -R 'cat <8>' %s 2>/dev/null | tail -c +4097 | tr -d '\\000' | wc -c",
                                       img);
    cr_assert_gt(old_log, 0, "the kernel left nothing in the log: nothing to test");
    assert_copy_reads_as_source(img, &m.used);
    fsfix_copy_used(img, 0, &m.used, copy, file_size(img));
    cr_assert_eq(fsfix_sh("mount -o loop %s %s", copy, mnt), 0, "the copy does not mount");
    rc = fsfix_sh("set -e; for i in $(seq 1 20); do head -c 70000 /dev/urandom > %1$s/more$i; done; rm %1$s/new1; sync",
                  mnt);
    cr_assert_eq(fsfix_sh("umount %s", mnt), 0);
    cr_assert_eq(rc, 0, "the mounted copy did not take writes");
    cr_assert_eq(fsfix_sh("e2fsck -fn %1$s >/dev/null 2>&1 || e2fsck -fn %1$s", copy), 0,
                 "the copy is damaged after a mount and writes");
    asr_usedmap_free(&m);
    free(img);
    free(mnt);
    free(copy);
}

/* A journal this reader cannot replay stays a reason for whole capture: here one whose log start
 * lies outside the log. */
Test(fs_ext, refuses_journal_it_cannot_replay)
{
    char *img = small_fs("mkfs.ext4", "-b 4096", 32);
    cr_assert_eq(fsfix_sh("debugfs -w -R 'feature needs_recovery' %s >/dev/null 2>&1", img), 0);
    /* The journal superblock's s_start (offset 28, big-endian) set past its s_maxlen. */
    uint64_t jsb = fsfix_sh_number("debugfs -R 'bmap <8> 0' %s 2>/dev/null", img) * 4096;
    const uint8_t start[4] = {0x7f, 0, 0, 0};
    fsfix_write_at(img, jsb + 28, start, sizeof start);
    expect_refusal(img, 0, ASR_E_CORRUPT, "journal log starts at block 2130706432, outside its");
    free(img);
}

/* No filesystem at all: garbage, zeros, a window too small for a superblock. */
Test(fs_ext, refuses_garbage_and_tiny_windows)
{
    char *img = scratch_path("garbage.img");
    cr_assert_eq(fsfix_sh("head -c 4M /dev/urandom > %s", img), 0);
    expect_refusal(img, 0, ASR_E_CORRUPT, "no superblock magic");
    cr_assert_eq(fsfix_sh("truncate -s 0 %1$s && truncate -s 4M %1$s", img), 0);
    expect_refusal(img, 0, ASR_E_CORRUPT, "no superblock magic");
    expect_refusal(img, 2047, ASR_E_CORRUPT, "too small for a superblock");
    free(img);
}

/* A disk that ends inside the filesystem (a truncated image file): group 1's bitmap lies past the
 * end, and the read error the window met is the message, not libext2fs's "short read". */
Test(fs_ext, reports_a_disk_ending_inside_the_filesystem)
{
    char *img = small_fs("mkfs.ext2", "-b 1024", 16);
    cr_assert_eq(fsfix_sh("truncate -s 8200K %s", img), 0); /* group 1 starts at 8193 KiB */
    struct asr_window w = fsfix_window(img, 0, 16 * MIB);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    int rc = asr_ext_used(&w, &m, &err);
    close(w.fd);
    cr_log_info("refused (%s): %s", asr_status_name(rc), err.msg);
    cr_assert_eq(rc, ASR_E_IO, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "cannot read the block bitmap: cannot read"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "unexpected end of file"), "%s", err.msg);
    cr_assert_eq(m.used.n, 0);
    free(img);
}

/* ---- the window is the only way in ------------------------------------------------------- */

/* libext2fs reads only through the window: with no path to open, the map is the same. Every read
 * is then asr_window_read, which refuses anything outside [base, base+size). */
Test(fs_ext, reads_only_through_the_window)
{
    char *img = small_fs("mkfs.ext4", "-b 4096 -O meta_bg,^resize_inode -g 1024", 64);
    char *disk = make_disk(img, file_size(img), file_size(img));
    struct asr_window w = fsfix_window(disk, PART_BASE, file_size(img));
    struct asr_usedmap a = {0}, b = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ext_used(&w, &a, &err), ASR_OK, "%s", err.msg);
    w.path = NULL;
    cr_assert_eq(asr_ext_used(&w, &b, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    cr_assert_eq(a.used.n, b.used.n);
    cr_assert_eq(memcmp(a.used.v, b.used.v, a.used.n * sizeof a.used.v[0]), 0);
    asr_usedmap_free(&a);
    asr_usedmap_free(&b);
    free(disk);
    free(img);
}

/* Random damage to the metadata (superblock, descriptors, bitmaps, inode tables) of filesystems
 * without checksums, which would catch most of it first: every run must either refuse with a
 * message and no ranges, or give a valid map inside the window. Never crash (ASan builds check
 * every access). The seed is logged so a failure can be replayed. */
static void corrupt_repeatedly(const char *mkfs, const char *opts)
{
    char *img = small_fs(mkfs, opts, 8);
    uint64_t size = file_size(img);
    int rw = open(img, O_RDWR | O_CLOEXEC);
    cr_assert_geq(rw, 0);
    struct asr_window w = fsfix_window(img, 0, size);
    uint64_t seed;
    cr_assert_eq(getrandom(&seed, sizeof seed, 0), (ssize_t)sizeof seed);
    seed |= 1;
    cr_log_info("%s %s: corruption seed %llu", mkfs, opts, (unsigned long long)seed);
    unsigned accepted = 0, refused = 0;
    for (int round = 0; round < 1000; round++) {
        enum { N = 6 };
        uint64_t off[N];
        uint8_t old[N];
        for (int i = 0; i < N; i++) { /* xorshift64 */
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            /* Half the hits in the first 8 KiB (superblock, descriptors), the rest in 256 KiB. */
            off[i] = seed % (i % 2 ? 8192 : 256 * 1024);
            cr_assert_eq(pread(rw, &old[i], 1, (off_t)off[i]), 1);
            uint8_t v = (uint8_t)(seed >> 32);
            cr_assert_eq(pwrite(rw, &v, 1, (off_t)off[i]), 1);
        }
        struct asr_usedmap m = {0};
        struct asr_error err = {0};
        if (asr_ext_used(&w, &m, &err) == ASR_OK) {
            fsfix_check_ranges(&m.used, size);
            cr_assert_gt(m.used.n, 0);
            accepted++;
        } else {
            cr_assert_neq(err.msg[0], '\0', "a refusal without a message");
            cr_assert_eq(m.used.n, 0);
            refused++;
        }
        asr_usedmap_free(&m);
        for (int i = N - 1; i >= 0; i--)
            cr_assert_eq(pwrite(rw, &old[i], 1, (off_t)off[i]), 1);
    }
    cr_log_info("%s %s: %u damaged copies mapped, %u refused", mkfs, opts, accepted, refused);
    close(w.fd);
    close(rw);
    free(img);
}

Test(fs_ext, survives_random_metadata_damage_ext2)
{
    corrupt_repeatedly("mkfs.ext2", "-b 1024 -g 1024");
}

Test(fs_ext, survives_random_metadata_damage_ext4)
{
    corrupt_repeatedly("mkfs.ext4", "-b 1024 -g 1024 -O ^metadata_csum,^uninit_bg,meta_bg,^resize_inode");
}

/* ---- the disk analysis dispatches to asr_ext_used --------------------------------------- */

/* A GPT disk with a clean ext4 and one whose journal needs a recovery this reader cannot follow
 * (its log starts outside the log): the first is captured by its used map (the very map
 * asr_ext_used gives on its own), the second whole, saying why. */
Test(fs_ext, analysis_uses_the_map_or_says_why_not)
{
    char *img = small_fs("mkfs.ext4", "-b 4096 -L clean", 32), *dirty = scratch_path("dirty.img");
    char *disk = scratch_path("disk.img");
    cr_assert_eq(fsfix_sh("set -e; cp --sparse=always %1$s %2$s;"
                          "debugfs -w -R 'feature needs_recovery' %2$s >/dev/null 2>&1;"
                          "j=$(debugfs -R 'bmap <8> 0' %2$s 2>/dev/null);"
                          "printf '\\177' | dd of=%2$s bs=1 seek=$((j * 4096 + 28)) conv=notrunc status=none;"
                          "truncate -s 66M %3$s;"
                          "printf 'label: gpt\\nstart=2048, size=65536, type=linux\\n"
                          "start=67584, size=65536, type=linux\\n'"
                          " | sfdisk -q %3$s >/dev/null;"
                          "dd if=%1$s of=%3$s bs=1M seek=1 conv=notrunc,sparse status=none;"
                          "dd if=%2$s of=%3$s bs=1M seek=33 conv=notrunc,sparse status=none",
                          img, dirty, disk),
                 0);
    struct asr_window w = fsfix_window(disk, PART_BASE, 32 * MIB);
    struct asr_usedmap alone = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ext_used(&w, &alone, &err), ASR_OK, "%s", err.msg);
    close(w.fd);

    struct asr_disk *d = NULL;
    cr_assert_eq(asr_disk_open(disk, &d, &err), ASR_OK, "%s", err.msg);
    struct asr_volume_info *v = NULL;
    size_t n = 0;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].map.fs_type, "ext4");
    cr_assert_str_eq(v[0].map.fs_label, "clean");
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_USED, "capture %u: %s", v[0].natural_capture, v[0].warning);
    cr_assert_eq(v[0].map.block_size, 4096);
    cr_assert_eq(v[0].map.used.n, alone.used.n);
    cr_assert_eq(memcmp(v[0].map.used.v, alone.used.v, alone.used.n * sizeof alone.used.v[0]), 0);
    cr_log_info("clean ext4: %llu of %llu bytes used; needs_recovery ext4: capture %u, warning: %s",
                (unsigned long long)asr_ranges_bytes(&v[0].map.used), (unsigned long long)v[0].size_bytes,
                v[1].natural_capture, v[1].warning);
    cr_assert_eq(v[1].natural_capture, ASR_CAPTURE_FULL);
    cr_assert_not_null(strstr(v[1].warning, "journal log starts at block 2130706432, outside its"), "warning: %s",
                       v[1].warning);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    asr_usedmap_free(&alone);
    free(img);
    free(dirty);
    free(disk);
}

/* ---- the critical-volume check looks inside through the same window ---------------------- */

#define FSTAB_MARKER "UUID=asrimg-marker / ext4 defaults 0 1"

/* A filesystem of mib MiB whose only boot mark is /etc/fstab (holding FSTAB_MARKER), in its own
 * directory block: the analysis calls it critical for that file alone. */
static char *fs_with_fstab(const char *name, const char *mkfs, const char *opts, unsigned mib)
{
    need_ext_tools(mkfs);
    char *img = scratch_path(name), *tree = scratch_path("fstab-tree");
    cr_assert_eq(fsfix_sh("set -e; rm -rf %1$s; mkdir -p %1$s/etc %1$s/data; echo '" FSTAB_MARKER "' > %1$s/etc/fstab;"
                          "head -c 200K /dev/urandom > %1$s/data/file; rm -f %2$s; truncate -s %3$uM %2$s;"
                          "%4$s -q -F %5$s -d %1$s %2$s",
                          tree, img, mib, mkfs, opts),
                 0, "%s %s", mkfs, opts);
    free(tree);
    return img;
}

/* A GPT disk of generic Linux partitions (a type that is not critical by itself) of n_mib[i]
 * MiB each, back to back from 1 MiB, with img[i] (NULL: none) written at each start. The images
 * may be larger than their partitions: their tails then land in the next one. */
static char *gpt_disk(const char *const *img, const unsigned *n_mib, int n)
{
    char *disk = scratch_path("analysed.img");
    unsigned total = 2;
    char table[512] = "label: gpt\\n";
    for (int i = 0; i < n; i++) {
        snprintf(table + strlen(table), sizeof table - strlen(table), "start=%u, size=%u, type=linux\\n",
                 2048 + (total - 2) * 2048, n_mib[i] * 2048);
        total += n_mib[i];
    }
    cr_assert_eq(fsfix_sh("set -e; rm -f %1$s; truncate -s %2$uM %1$s; printf '%3$s' | sfdisk -q %1$s >/dev/null",
                          disk, total + 32, table),
                 0);
    unsigned at = 1;
    for (int i = 0; i < n; i++) {
        if (img[i])
            cr_assert_eq(fsfix_sh("dd if=%s of=%s bs=1M seek=%u conv=notrunc,sparse status=none", img[i], disk, at), 0);
        at += n_mib[i];
    }
    return disk;
}

static void analyze(const char *disk, struct asr_disk **d, struct asr_volume_info **v, size_t *n)
{
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(disk, d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_analyze(*d, 0, v, n, &err), ASR_OK, "%s", err.msg);
    for (size_t i = 0; i < *n; i++)
        cr_log_info("partition %u: %s, capture %u, critical %d (%s); warning: %s", (*v)[i].partition_number,
                    (*v)[i].map.fs_type, (*v)[i].natural_capture, (*v)[i].critical, (*v)[i].reason, (*v)[i].warning);
}

/* Moves the first (only) block of directory dir of the 1 KiB-block ext2 filesystem at byte base
 * of path to block to, and writes that directory block at disk byte offset copy_at: wherever it
 * now lies, the directory still lists the same names for a reader that goes there. */
static void move_dir_block(const char *path, uint64_t base, const char *dir, uint64_t to, uint64_t copy_at)
{
    uint64_t from = fsfix_sh_number("debugfs -R 'blocks %s' '%s?offset=%llu' 2>/dev/null", dir, path,
                                    (unsigned long long)base);
    cr_assert_gt(from, 0, "debugfs lists no block for %s", dir);
    uint8_t block[1024];
    fsfix_read_at(path, base + from * 1024, block, sizeof block);
    cr_assert_eq(fsfix_sh("debugfs -w -R 'set_inode_field %s block[0] %llu' '%s?offset=%llu' >/dev/null 2>&1", dir,
                          (unsigned long long)to, path, (unsigned long long)base),
                 0);
    fsfix_write_at(path, copy_at, block, sizeof block);
}

/* libext2fs's own reader (what the content check used to open) follows /etc wherever it points:
 * here past the partition, into the next one, where it finds the marker. */
static void unbounded_reader_finds_marker(const char *disk)
{
    char *out = fsfix_sh_out("debugfs -R 'cat /etc/fstab' '%s?offset=%llu' 2>/dev/null", disk, PART_BASE);
    cr_assert_not_null(out);
    cr_assert_not_null(strstr(out, FSTAB_MARKER), "the fixture is wrong: debugfs reads \"%s\"", out);
    free(out);
}

/* A sound superblock whose /etc directory block lies past the end of the filesystem and of its
 * partition, where the next partition holds a copy of it. The used map does not look at
 * directories and accepts the volume; the content check must then read only inside the
 * partition: /etc is unreadable to it, the volume is not called critical for an fstab read from
 * the neighbour, and the reason names the read the window refused. The third partition, an
 * intact copy, shows the check finds /etc/fstab when it is there. */
Test(fs_ext, content_check_never_reads_past_the_partition)
{
    char *fs = fs_with_fstab("fs.img", "mkfs.ext2", "-b 1024", 16);
    const char *imgs[] = {fs, NULL, fs};
    const unsigned mib[] = {16, 16, 16};
    char *disk = gpt_disk(imgs, mib, 3);
    /* Block 16384 + 1000: 1000 KiB into partition 2, which starts right after partition 1. */
    move_dir_block(disk, PART_BASE, "/etc", 16384 + 1000, PART_BASE + (16384 + 1000) * 1024ull);
    unbounded_reader_finds_marker(disk);

    struct asr_disk *d;
    struct asr_volume_info *v;
    size_t n;
    analyze(disk, &d, &v, &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0].map.fs_type, "ext2");
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_USED, "%s", v[0].warning);
    cr_assert_not(v[0].critical, "critical for what lies in the next partition: %s", v[0].reason);
    cr_assert_not_null(strstr(v[0].reason, "nothing shows it is needed to boot (ext directories unreadable: "),
                       "reason: %s", v[0].reason);
    cr_assert_not_null(strstr(v[0].reason, "lies outside the 16777216-byte volume"), "reason: %s", v[0].reason);
    cr_assert(v[2].critical, "the intact copy: %s", v[2].reason);
    cr_assert_str_eq(v[2].reason, "holds /etc/fstab");
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(fs);
    free(disk);
}

/* A superblock claiming more blocks than the partition (a 32 MiB filesystem in 16 MiB), its /etc
 * block in the part that lies in the next partition. The map refuses the volume, and the content
 * check does not look inside what the map could not trust: not critical, and the reason says the
 * contents were not read (the warning says why). */
Test(fs_ext, content_check_skips_filesystem_larger_than_its_partition)
{
    char *fs = fs_with_fstab("fs.img", "mkfs.ext2", "-b 1024", 32);
    const char *imgs[] = {fs, NULL};
    const unsigned mib[] = {16, 32};
    char *disk = gpt_disk(imgs, mib, 2);
    /* Rewrite partition 2 over the filesystem's tail first, as its own data would be. */
    cr_assert_eq(fsfix_sh("head -c 16M /dev/urandom | dd of=%s bs=1M seek=17 conv=notrunc status=none", disk), 0);
    move_dir_block(disk, PART_BASE, "/etc", 20000, PART_BASE + 20000 * 1024ull);
    unbounded_reader_finds_marker(disk);

    struct asr_disk *d;
    struct asr_volume_info *v;
    size_t n;
    analyze(disk, &d, &v, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_FULL);
    cr_assert_not_null(strstr(v[0].warning, "more than the 16777216-byte volume"), "warning: %s", v[0].warning);
    cr_assert_not(v[0].critical, "critical for what lies in the next partition: %s", v[0].reason);
    cr_assert_str_eq(v[0].reason,
                     "nothing shows it is needed to boot (ext metadata failed its checks: contents not read)");
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(fs);
    free(disk);
}

/* Trust follows the map's checks: a journal to replay (the root of a disk copied from a running
 * or crashed machine) leaves directories readable, so the volume is found critical, and captured
 * by its map with the map's note as its warning; a descriptor failing its checksum is not looked
 * into. */
Test(fs_ext, content_check_trusts_what_the_map_trusts)
{
    char *clean = fs_with_fstab("clean.img", "mkfs.ext4", "-b 1024", 16);
    char *dirty = scratch_path("dirty.img"), *broken = scratch_path("broken.img");
    cr_assert_eq(fsfix_sh("set -e; cp --sparse=always %1$s %2$s; cp --sparse=always %1$s %3$s;"
                          "debugfs -w -R 'feature needs_recovery' %2$s >/dev/null 2>&1",
                          clean, dirty, broken),
                 0);
    /* bg_flags of group 1's descriptor (block 2, 64 bytes each with 64bit) gains INODE_ZEROED
     * without its checksum: harmless in itself, but the descriptor no longer proves itself. */
    uint8_t desc[64];
    fsfix_read_at(broken, 2048 + 64, desc, sizeof desc);
    desc[0x12] ^= 0x04;
    fsfix_write_at(broken, 2048 + 64, desc, sizeof desc);
    const char *imgs[] = {clean, dirty, broken};
    const unsigned mib[] = {16, 16, 16};
    char *disk = gpt_disk(imgs, mib, 3);

    struct asr_disk *d;
    struct asr_volume_info *v;
    size_t n;
    analyze(disk, &d, &v, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_USED, "%s", v[0].warning);
    cr_assert(v[0].critical, "%s", v[0].reason);
    cr_assert_str_eq(v[0].reason, "holds /etc/fstab");
    cr_assert_eq(v[1].natural_capture, ASR_CAPTURE_USED, "%s", v[1].warning);
    cr_assert_str_eq(v[1].warning, "ext: journal flagged for recovery but holds no transaction");
    cr_assert(v[1].critical, "%s", v[1].reason);
    cr_assert_str_eq(v[1].reason, "holds /etc/fstab");
    cr_assert_eq(v[2].natural_capture, ASR_CAPTURE_FULL);
    cr_assert_not_null(strstr(v[2].warning, "group 1 descriptor fails its checksum"), "warning: %s", v[2].warning);
    cr_assert_not(v[2].critical, "%s", v[2].reason);
    cr_assert_str_eq(v[2].reason,
                     "nothing shows it is needed to boot (ext metadata failed its checks: contents not read)");
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(clean);
    free(dirty);
    free(broken);
    free(disk);
}

/* blkid calls any ext filesystem flagged test_fs "ext4dev": the same format, mapped by the same
 * parser, its name kept as blkid gives it. */
Test(fs_ext, analysis_maps_ext4dev)
{
    char *fs = fs_with_fstab("fs.img", "mkfs.ext4", "-b 4096", 16);
    fsfix_need("tune2fs");
    fsfix_need("blkid");
    cr_assert_eq(fsfix_sh("tune2fs -E test_fs %s >/dev/null 2>&1", fs), 0);
    char *type = fsfix_sh_out("blkid -p -o value -s TYPE %s", fs);
    cr_assert_not_null(type);
    cr_assert_str_eq(type, "ext4dev\n", "blkid says %s", type);
    free(type);
    struct asr_window w = fsfix_window(fs, 0, 16 * MIB);
    struct asr_usedmap alone = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ext_used(&w, &alone, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    const char *imgs[] = {fs};
    const unsigned mib[] = {16};
    char *disk = gpt_disk(imgs, mib, 1);

    struct asr_disk *d;
    struct asr_volume_info *v;
    size_t n;
    analyze(disk, &d, &v, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].map.fs_type, "ext4dev");
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_USED, "%s", v[0].warning);
    cr_assert_eq(v[0].map.block_size, 4096);
    cr_assert_eq(v[0].map.used.n, alone.used.n);
    cr_assert_eq(memcmp(v[0].map.used.v, alone.used.v, alone.used.n * sizeof alone.used.v[0]), 0);
    cr_assert(v[0].critical, "%s", v[0].reason);
    cr_assert_str_eq(v[0].reason, "holds /etc/fstab");
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    asr_usedmap_free(&alone);
    free(fs);
    free(disk);
}

/* /boot's triple-indirect block points at a double-indirect block full of pointers to one
 * indirect block full of pointers to /boot's real directory block: libext2fs would list that
 * block 256^3 times (1 KiB blocks: 20 s per lookup) or 1024^3 times (4 KiB blocks: hours). Each
 * lookup stops at its read limit instead, says so when nothing is found, and a lookup elsewhere
 * (/etc/fstab) still succeeds. */
static void loop_boot(const char *img, uint32_t bs, uint32_t first_free)
{
    uint64_t dir = fsfix_sh_number("debugfs -R 'blocks /boot' %s 2>/dev/null", img);
    cr_assert_gt(dir, 0);
    uint32_t t = first_free, d = first_free + 1, i = first_free + 2;
    const uint32_t chain[][2] = {{t, d}, {d, i}, {i, (uint32_t)dir}};
    uint8_t *block = malloc(bs);
    for (size_t k = 0; k < 3; k++) {
        for (uint32_t at = 0; at < bs; at += 4)
            for (int b = 0; b < 4; b++)
                block[at + (uint32_t)b] = (uint8_t)(chain[k][1] >> 8 * b);
        fsfix_write_at(img, (uint64_t)chain[k][0] * bs, block, bs);
    }
    free(block);
    cr_assert_eq(fsfix_sh("debugfs -w -R 'set_inode_field /boot block[TIND] %u' %s >/dev/null 2>&1", t, img), 0);
}

Test(fs_ext, content_check_stops_a_directory_looping_through_its_blocks)
{
    static const struct {
        uint32_t bs, first_free;
        bool fstab;
    } cases[] = {{1024, 16000, true}, {1024, 16000, false}, {4096, 4000, true}, {4096, 4000, false}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char opts[32];
        snprintf(opts, sizeof opts, "-b %u", cases[c].bs);
        char *fs = fs_with_fstab("fs.img", "mkfs.ext2", opts, 16);
        cr_assert_eq(fsfix_sh("debugfs -w -R 'mkdir /boot' %s >/dev/null 2>&1", fs), 0);
        if (!cases[c].fstab)
            cr_assert_eq(fsfix_sh("debugfs -w -R 'rm /etc/fstab' %s >/dev/null 2>&1", fs), 0);
        loop_boot(fs, cases[c].bs, cases[c].first_free);
        const char *imgs[] = {fs};
        const unsigned mib[] = {16};
        char *disk = gpt_disk(imgs, mib, 1);

        double t0 = asr_now();
        struct asr_disk *d;
        struct asr_volume_info *v;
        size_t n;
        analyze(disk, &d, &v, &n);
        double s = asr_now() - t0;
        cr_log_info("%u-byte blocks, fstab %d: analysed in %.2f s", cases[c].bs, cases[c].fstab, s);
        cr_assert_lt(s, 20.0, "the looping directory was walked for %.1f s", s);
        cr_assert_eq(n, 1);
        cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_USED, "%s", v[0].warning);
        if (cases[c].fstab) {
            cr_assert(v[0].critical, "%s", v[0].reason);
            cr_assert_str_eq(v[0].reason, "holds /etc/fstab");
        } else {
            cr_assert_not(v[0].critical, "%s", v[0].reason);
            cr_assert_not_null(strstr(v[0].reason, "(ext directories unreadable: read of block "), "%s", v[0].reason);
            cr_assert_not_null(strstr(v[0].reason, "passes this walk's read limit"), "%s", v[0].reason);
        }
        asr_volume_infos_free(v, n);
        asr_disk_close(d);
        free(fs);
        free(disk);
        scratch_cleanup();
    }
}
