/* btrfs used-byte maps (asr_btrfs_used) on filesystems made by mkfs.btrfs and filled through the
 * kernel (btrfs_fixture.sh: loop devices, compression, a subvolume and its snapshot, junk written
 * then deleted): each device's reported ranges alone are copied onto random garbage, then
 * `btrfs check --readonly` and a file-by-file compare of the read-only mounted copy judge them.
 * Single, DUP, mixed block groups, with and without the free-space tree, RAID1 and RAID0 over two
 * devices. partclone.btrfs cross-checks the single-device maps. Damaged tree blocks, sums other
 * than crc32c and a chunk tree kept on another device must be refused, saying why. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "fs_btrfs_internal.h"
#include "fsfix.h"
#include "le.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(fs_btrfs, .fini = teardown, .timeout = 240);

#define MIB (1ull << 20)

/* ---- fixtures ------------------------------------------------------------------------------ */

static char *dev_path(const char *name, int i)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.40s.%d", name, i);
    return scratch_path(buf);
}

/* The filesystem `name` over ndev sparse files of mib MiB, filled and aged (btrfs_fixture.sh). */
static void make_fs(const char *name, int ndev, unsigned mib, const char *mkfs_opts, const char *mount_opts)
{
    int rc =
        fsfix_sh("%s make %s %s %d %u '%s' '%s'", BTRFS_FIXTURE, scratch_dir(), name, ndev, mib, mkfs_opts, mount_opts);
    if (rc == 77)
        cr_skip_test("btrfs fixtures cannot be made here (see the log)");
    cr_assert_eq(rc, 0, "btrfs_fixture.sh make %s failed", name);
}

/* A filesystem only made by mkfs (no kernel needed). */
static char *mkfs_only(const char *name, unsigned mib, const char *opts)
{
    fsfix_need("mkfs.btrfs");
    char *p = dev_path(name, 0);
    cr_assert_eq(
        fsfix_sh("rm -f %1$s; truncate -s %2$uM %1$s && mkfs.btrfs -q -f %3$s %1$s >/dev/null 2>&1", p, mib, opts), 0,
        "mkfs.btrfs %s", opts);
    return p;
}

/* Every copy on this device of every extent the extent tree lists (data extents and tree blocks,
 * at every stripe: both DUP copies, each RAID1 mirror, RAID0 pieces) must be in the map: checked
 * through the btrfs core's own chunk map, independently of how the map was narrowed. The
 * round trip alone could not see a missing second copy: btrfs check and the kernel read the
 * first one. Returns the bytes checked. */
struct cover_check {
    struct btrfs_fs *fs;
    const struct asr_ranges *used; /* NULL: only gather */
    uint64_t bytes;
    struct asr_range *pieces; /* every copy on this device, in the extent tree's order */
    size_t n, cap;
};

static int cover_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    (void)err;
    struct cover_check *cc = ctx;
    if (it->key.type != BTRFS_EXTENT_ITEM_KEY && it->key.type != BTRFS_METADATA_ITEM_KEY)
        return ASR_OK;
    uint64_t at = it->key.objectid,
             end = at + (it->key.type == BTRFS_EXTENT_ITEM_KEY ? it->key.offset : cc->fs->nodesize);
    while (at < end) {
        const struct btrfs_chunk *c = btrfs_chunk_find(cc->fs, at);
        cr_assert_not_null(c, "extent at logical %llu in no chunk", (unsigned long long)at);
        struct btrfs_place pl[BTRFS_MAX_COPIES];
        uint64_t run;
        unsigned n = btrfs_chunk_place(c, at, pl, &run);
        if (run > end - at)
            run = end - at;
        for (unsigned i = 0; i < n; i++) {
            if (pl[i].devid != cc->fs->devid)
                continue;
            struct asr_ranges piece = {0};
            cr_assert_eq(asr_ranges_add(&piece, pl[i].physical, run), ASR_OK);
            if (cc->used)
                cr_assert_eq(fsfix_not_covered(&piece, cc->used), 0,
                             "copy %u of logical [%llu, +%llu) (device bytes %llu) not in the map", i,
                             (unsigned long long)at, (unsigned long long)run, (unsigned long long)pl[i].physical);
            asr_ranges_free(&piece);
            if (cc->n == cc->cap) {
                cc->cap = cc->cap ? 2 * cc->cap : 256;
                cr_assert_not_null(cc->pieces = realloc(cc->pieces, cc->cap * sizeof *cc->pieces));
            }
            cc->pieces[cc->n++] = (struct asr_range){pl[i].physical, run};
            cc->bytes += run;
        }
        at += run;
    }
    return ASR_OK;
}

static int by_offset(const void *a, const void *b)
{
    const struct asr_range *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* used NULL: only gathers, into alloc (sorted, merged): where the extents' copies lie. */
static uint64_t extents_on_device(const char *dev, uint64_t size, const struct asr_ranges *used,
                                  struct asr_ranges *alloc)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct cover_check cc = {.used = used};
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &cc.fs, &err), ASR_OK, "%s", err.msg);
    struct btrfs_root r;
    bool found;
    cr_assert_eq(btrfs_find_root(cc.fs, BTRFS_EXTENT_TREE_OBJECTID, &r, &found, &err), ASR_OK, "%s", err.msg);
    cr_assert(found);
    cr_assert_eq(btrfs_search(cc.fs, r.bytenr, r.level, NULL, NULL, cover_item, &cc, &err), ASR_OK, "%s", err.msg);
    btrfs_close(cc.fs);
    close(w.fd);
    cr_assert_gt(cc.bytes, 0);
    qsort(cc.pieces, cc.n, sizeof *cc.pieces, by_offset);
    for (size_t i = 0; alloc && i < cc.n;) {
        uint64_t s = cc.pieces[i].offset, e = s + cc.pieces[i].length;
        for (i++; i < cc.n && cc.pieces[i].offset <= e; i++)
            if (cc.pieces[i].offset + cc.pieces[i].length > e)
                e = cc.pieces[i].offset + cc.pieces[i].length;
        cr_assert_eq(asr_ranges_add(alloc, s, e - s), ASR_OK);
    }
    free(cc.pieces);
    return cc.bytes;
}

static uint64_t check_extents_covered(const char *dev, uint64_t size, const struct asr_ranges *used)
{
    return extents_on_device(dev, size, used, NULL);
}

/* Maps every device of `name`, copies each device's ranges alone onto garbage, and has the
 * fixture judge the copies. maps gets each device's map. */
static void round_trip(const char *name, int ndev, uint64_t size, struct asr_usedmap *maps)
{
    char copy_prefix[64];
    snprintf(copy_prefix, sizeof copy_prefix, "%.32s.copy", name);
    for (int i = 0; i < ndev; i++) {
        char *dev = dev_path(name, i), *copy = dev_path(copy_prefix, i);
        fsfix_map(asr_btrfs_used, dev, size, &maps[i]);
        cr_assert_str_eq(maps[i].fs_type, "btrfs");
        cr_assert_eq(maps[i].block_size, 4096);
        check_extents_covered(dev, size, &maps[i].used);
        fsfix_copy_used(dev, 0, &maps[i].used, copy, size);
        free(dev);
        free(copy);
    }
    char *prefix = scratch_path(copy_prefix);
    int rc = fsfix_sh("%s check %s %s %d %s", BTRFS_FIXTURE, scratch_dir(), name, ndev, prefix);
    free(prefix);
    if (rc == 77)
        cr_skip_test("btrfs copies cannot be mounted here (see the log)");
    cr_assert_eq(rc, 0, "%s: the copy made from the map fails btrfs check or differs (see the log)", name);
}

/* The stripes of this device's chunks whose type has any of the bits in `kinds`, in bytes. */
static uint64_t stripes_of(const char *dev, uint64_t size, uint64_t kinds)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    uint64_t sum = 0;
    for (size_t k = 0; k < fs->nchunks; k++)
        for (unsigned i = 0; i < fs->chunks[k].num_stripes; i++)
            if (fs->chunks[k].stripes[i].devid == fs->devid && (fs->chunks[k].type & kinds))
                sum += btrfs_stripe_size(&fs->chunks[k]);
    btrfs_close(fs);
    close(w.fd);
    return sum;
}

static unsigned copies_of(const char *dev, uint64_t size, uint64_t logical, uint64_t *phys);

/* Metadata, system and mixed block groups are narrowed like the data ones: of their stripes on
 * this device the map holds less than half (mkfs and the fixture's files leave them mostly
 * free), yet every copy of every tree block (check_extents_covered). */
static void assert_metadata_narrowed(const char *dev, uint64_t size, const struct asr_ranges *used)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    uint64_t total = 0, mapped = 0;
    for (size_t k = 0; k < fs->nchunks; k++)
        for (unsigned i = 0; i < fs->chunks[k].num_stripes; i++) {
            const struct btrfs_chunk *c = &fs->chunks[k];
            if (c->stripes[i].devid != fs->devid || !(c->type & (BTRFS_BLOCK_GROUP_METADATA | BTRFS_BLOCK_GROUP_SYSTEM)))
                continue;
            struct asr_ranges stripe = {0};
            cr_assert_eq(asr_ranges_add(&stripe, c->stripes[i].offset, btrfs_stripe_size(c)), ASR_OK);
            total += btrfs_stripe_size(c);
            mapped += btrfs_stripe_size(c) - fsfix_not_covered(&stripe, used);
            asr_ranges_free(&stripe);
        }
    btrfs_close(fs);
    close(w.fd);
    cr_log_info("%s: %llu of %llu bytes of metadata and system stripes mapped", dev, (unsigned long long)mapped,
                (unsigned long long)total);
    cr_assert_gt(total, 0);
    cr_assert_lt(mapped, total / 2, "metadata block groups not narrowed: %llu of %llu bytes mapped",
                 (unsigned long long)mapped, (unsigned long long)total);
}

/* The bytes of the tree blocks the extent tree lists (one copy each). */
static int tree_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    (void)err;
    uint64_t *n = ctx;
    if (it->key.type == BTRFS_METADATA_ITEM_KEY ||
        (it->key.type == BTRFS_EXTENT_ITEM_KEY && it->size >= 24 && (get_le64(it->data + 16) & 2 /* TREE_BLOCK */)))
        n[0] += n[1];
    return ASR_OK;
}

static uint64_t tree_block_bytes(const char *dev, uint64_t size)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    struct btrfs_root r;
    bool found;
    cr_assert_eq(btrfs_find_root(fs, BTRFS_EXTENT_TREE_OBJECTID, &r, &found, &err), ASR_OK, "%s", err.msg);
    cr_assert(found);
    uint64_t n[2] = {0, fs->nodesize};
    cr_assert_eq(btrfs_search(fs, r.bytenr, r.level, NULL, NULL, tree_item, n, &err), ASR_OK, "%s", err.msg);
    btrfs_close(fs);
    close(w.fd);
    cr_assert_gt(n[0], 0);
    return n[0];
}

/* The root tree's root block (logical), as the superblock gives it. */
static uint64_t root_tree_block(const char *dev, uint64_t size)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    uint64_t r = fs->root;
    btrfs_close(fs);
    close(w.fd);
    return r;
}

/* partclone.btrfs's map of dev, checked against ours: every byte it copies that the filesystem
 * uses is in ours, once ours is widened to its unit. partclone.btrfs copies in blocks of the node
 * size (16 KiB): an extent ending inside such a block, and the 4 KiB superblock mirror at 64 MiB,
 * take the whole block for it; we copy 4 KiB sectors. It also copies bytes nothing uses, which
 * ours leaves out since the metadata block groups are narrowed too (partclone 0.3.x's
 * btrfsclone.c): it marks every file extent's disk_bytenr as if that logical address were a
 * device offset (besides the extent's real place), and after each tree node a run whose length
 * is left uninitialised (stale blocks of earlier generations). So what partclone has and ours
 * does not must hold no copy on this device of any extent the extent tree lists. Returns its
 * byte count, *junk (may be NULL) how many of them hold none; its map in theirs_out (may be NULL). */
static uint64_t partclone_cross_check(const char *dev, uint64_t size, const struct asr_usedmap *m, uint64_t *junk,
                                      struct asr_ranges *theirs_out)
{
    struct asr_ranges theirs = {0}, wide = {0};
    cr_assert(fsfix_partclone_map("partclone.btrfs", dev, &theirs), "partclone.btrfs could not map %s", dev);
    const uint64_t unit = 16384;
    for (size_t i = 0; i < m->used.n; i++) {
        uint64_t s = m->used.v[i].offset / unit * unit;
        uint64_t e = (m->used.v[i].offset + m->used.v[i].length + unit - 1) / unit * unit;
        uint64_t last = wide.n ? wide.v[wide.n - 1].offset + wide.v[wide.n - 1].length : 0;
        if (s < last)
            s = last;
        if (e > s)
            cr_assert_eq(asr_ranges_add(&wide, s, e - s), ASR_OK);
    }
    struct asr_ranges rest = {0}, alloc = {0};
    fsfix_subtract(&theirs, &wide, &rest);
    extents_on_device(dev, size, NULL, &alloc);
    uint64_t t = asr_ranges_bytes(&theirs), extra = asr_ranges_bytes(&rest);
    uint64_t missing = extra - fsfix_not_covered(&rest, &alloc);
    cr_log_info("%s: asrimg %llu bytes, partclone.btrfs %llu (%llu of them not in ours, none in an extent)", dev,
                (unsigned long long)asr_ranges_bytes(&m->used), (unsigned long long)t, (unsigned long long)extra);
    cr_assert_eq(missing, 0, "partclone.btrfs copies %llu bytes of extents our map leaves out",
                 (unsigned long long)missing);
    asr_ranges_free(&rest);
    asr_ranges_free(&alloc);
    if (junk)
        *junk = extra;
    if (theirs_out)
        *theirs_out = theirs;
    else
        asr_ranges_free(&theirs);
    asr_ranges_free(&wide);
    return t;
}

/* ---- round trips --------------------------------------------------------------------------- */

/* mkfs.btrfs's default on a file: DUP metadata and system, single data, the free-space tree;
 * mounted with zstd compression. The map holds both copies of every tree block in use, and of the
 * block groups less than they span: the free room of the metadata and system block groups and the
 * junk's freed data extents are left out (and the copy still checks clean, every file equal). */
Test(fs_btrfs, dup_metadata_free_space_tree_zstd)
{
    const uint64_t size = 160 * MIB;
    make_fs("dup", 1, 160, "", "compress=zstd");
    struct asr_usedmap m = {0};
    round_trip("dup", 1, size, &m);
    cr_assert(strstr(m.note, "metadata DUP") && strstr(m.note, "free-space tree"), "%s", m.note);
    char *dev = dev_path("dup", 0);
    uint64_t meta = stripes_of(dev, size, BTRFS_BLOCK_GROUP_METADATA | BTRFS_BLOCK_GROUP_SYSTEM);
    uint64_t data = stripes_of(dev, size, BTRFS_BLOCK_GROUP_DATA);
    uint64_t used = asr_ranges_bytes(&m.used);
    cr_assert_gt(data, 0);
    cr_assert_lt(used, MIB + 4096 /* the mirror at 64 MiB */ + meta + data, "data block groups not narrowed");
    assert_metadata_narrowed(dev, size, &m.used);
    /* The freed junk (16 MiB) is at least most of what was left out. */
    cr_assert_gt(MIB + 4096 + meta + data - used, 8 * MIB, "too little left out: %llu of %llu bytes kept",
                 (unsigned long long)used, (unsigned long long)(MIB + 4096 + meta + data));
    struct asr_ranges sb = {0};
    cr_assert_eq(asr_ranges_add(&sb, 0, MIB), ASR_OK);
    cr_assert_eq(asr_ranges_add(&sb, 64 * MIB, 4096), ASR_OK);
    cr_assert_eq(fsfix_not_covered(&sb, &m.used), 0, "boot area or superblock mirror left out");
    asr_ranges_free(&sb);

    /* partclone.btrfs copies the extents the extent tree lists, each at its first copy only: for
     * DUP metadata the second copy of every tree block is missing (partclone issues #239, #270:
     * the restored filesystem reports errors). Every byte of an extent it copies is in our map
     * (partclone_cross_check; what else it copies holds nothing: see there). Of the extents ours
     * is larger only by those second copies (every tree block twice), plus the boot area below
     * 1 MiB (kept for boot loaders; partclone takes its first 80 KiB) and the superblock mirror at
     * 64 MiB. With the metadata and system block groups narrowed like the data ones, that keeps us
     * within a small factor of partclone's size (taken whole, they made ours 87.7 MiB against its
     * 8.5 to 13 MiB: the junk it copies varies with where the files land). */
    if (fsfix_have("partclone.btrfs")) {
        struct asr_ranges theirs = {0}, copy = {0};
        uint64_t junk = 0, t = partclone_cross_check(dev, size, &m, &junk, &theirs);
        uint64_t tree = tree_block_bytes(dev, size), shared = t - junk;
        cr_log_info("dup: asrimg %.1f MiB, partclone.btrfs %.1f MiB (%.1f MiB of it in use), tree blocks in use "
                    "%.1f MiB (one copy)",
                    (double)used / MIB, (double)t / MIB, (double)shared / MIB, (double)tree / MIB);
        cr_assert_leq(used, shared + MIB + 4096 + tree,
                      "%llu bytes: more than partclone.btrfs's %llu in use, the boot area, the mirror and the second "
                      "copies of %llu tree block bytes",
                      (unsigned long long)used, (unsigned long long)shared, (unsigned long long)tree);
        cr_assert_leq(used, 2 * t, "%llu bytes, partclone.btrfs %llu: not within a factor of 2",
                      (unsigned long long)used, (unsigned long long)t);
        /* The root tree's root block, at both of its copies: partclone has the first only. */
        uint64_t phys[BTRFS_MAX_COPIES], logical = root_tree_block(dev, size);
        cr_assert_eq(copies_of(dev, size, logical, phys), 2u);
        for (int i = 0; i < 2; i++) {
            asr_ranges_free(&copy);
            cr_assert_eq(asr_ranges_add(&copy, phys[i], 16384), ASR_OK);
            cr_assert_eq(fsfix_not_covered(&copy, &m.used), 0, "copy %d of the root tree block not in our map", i);
            cr_assert_eq(fsfix_not_covered(&copy, &theirs), i == 0 ? 0 : 16384,
                         "partclone.btrfs %s copy %d of the root tree block", i == 0 ? "misses" : "has", i);
        }
        asr_ranges_free(&copy);
        asr_ranges_free(&theirs);
    }
    free(dev);
    asr_usedmap_free(&m);
}

/* Single metadata and no free-space tree: data block groups are narrowed from the extent tree. */
Test(fs_btrfs, single_extent_tree)
{
    const uint64_t size = 160 * MIB;
    make_fs("single", 1, 160, "-m single -d single -R ^free-space-tree", "");
    struct asr_usedmap m = {0};
    round_trip("single", 1, size, &m);
    cr_assert(strstr(m.note, "metadata single") && strstr(m.note, "(extent tree)"), "%s", m.note);
    char *dev = dev_path("single", 0);
    uint64_t all = stripes_of(dev, size, ~0ull);
    cr_assert_lt(asr_ranges_bytes(&m.used) + 8 * MIB, MIB + 4096 + all, "the freed junk was not left out");
    assert_metadata_narrowed(dev, size, &m.used); /* from METADATA_ITEMs (skinny) */
    /* Without DUP every extent partclone copies is in ours too; ours is larger by the boot area. */
    if (fsfix_have("partclone.btrfs"))
        partclone_cross_check(dev, size, &m, NULL, NULL);
    free(dev);
    asr_usedmap_free(&m);
}

/* Without skinny metadata a tree block is an EXTENT_ITEM flagged TREE_BLOCK (key offset the node
 * size), not a METADATA_ITEM: the extent tree narrows the metadata block groups from those. */
Test(fs_btrfs, no_skinny_metadata_extent_tree)
{
    const uint64_t size = 160 * MIB;
    make_fs("fat", 1, 160, "-O ^skinny-metadata -R ^free-space-tree", "");
    struct asr_usedmap m = {0};
    round_trip("fat", 1, size, &m);
    cr_assert(strstr(m.note, "metadata DUP") && strstr(m.note, "(extent tree)"), "%s", m.note);
    char *dev = dev_path("fat", 0);
    assert_metadata_narrowed(dev, size, &m.used);
    free(dev);
    asr_usedmap_free(&m);
}

/* Mixed block groups (-M, small filesystems): data and metadata share block groups, narrowed as
 * one (tree blocks and data extents alike). */
Test(fs_btrfs, mixed_block_groups)
{
    const uint64_t size = 96 * MIB;
    make_fs("mixed", 1, 96, "-M", "compress=zstd");
    struct asr_usedmap m = {0};
    round_trip("mixed", 1, size, &m);
    cr_assert(strstr(m.note, "mixed block groups"), "%s", m.note);
    char *dev = dev_path("mixed", 0);
    assert_metadata_narrowed(dev, size, &m.used);
    free(dev);
    asr_usedmap_free(&m);
}

/* RAID1 data and metadata over two devices: each device's map is computed from its own window,
 * and each copy restored from its own map; the pair checks clean. Both maps hold every block
 * group (mirrors), narrowed alike. */
Test(fs_btrfs, raid1_two_devices)
{
    const uint64_t size = 160 * MIB;
    make_fs("raid1", 2, 160, "-d raid1 -m raid1", "compress=zstd");
    struct asr_usedmap m[2] = {0};
    round_trip("raid1", 2, size, m);
    for (int i = 0; i < 2; i++) {
        cr_assert(strstr(m[i].note, "device") && strstr(m[i].note, "of 2") && strstr(m[i].note, "data RAID1"), "%s",
                  m[i].note);
        char *dev = dev_path("raid1", i);
        cr_assert_lt(asr_ranges_bytes(&m[i].used) + 8 * MIB, stripes_of(dev, size, ~0ull) + MIB + 4096);
        assert_metadata_narrowed(dev, size, &m[i].used);
        free(dev);
        asr_usedmap_free(&m[i]);
    }
}

/* RAID0 data over two devices: a data extent lies in 64 KiB stripes alternating between them, so
 * each device's narrowed map must take exactly its own stripes of each extent. */
Test(fs_btrfs, raid0_data_two_devices)
{
    const uint64_t size = 160 * MIB;
    make_fs("raid0", 2, 160, "-d raid0 -m raid1 -R ^free-space-tree", "");
    struct asr_usedmap m[2] = {0};
    round_trip("raid0", 2, size, m);
    for (int i = 0; i < 2; i++) {
        cr_assert(strstr(m[i].note, "data RAID0"), "%s", m[i].note);
        char *dev = dev_path("raid0", i);
        assert_metadata_narrowed(dev, size, &m[i].used);
        free(dev);
        asr_usedmap_free(&m[i]);
    }
}

/* A crash right after an fsync: the superblock points at a log tree that mounting replays, whose
 * blocks and the fsynced data no allocation tree records yet. The map then takes every block
 * group whole, data and metadata (and says so); the copy checks clean and, replayed, holds the
 * fsynced file. */
Test(fs_btrfs, log_tree_after_fsync)
{
    const uint64_t size = 160 * MIB;
    int rc = fsfix_sh("%s crash %s crash 1 160", BTRFS_FIXTURE, scratch_dir());
    if (rc == 77)
        cr_skip_test("btrfs fixtures cannot be made here (see the log)");
    cr_assert_eq(rc, 0);
    char *dev = dev_path("crash.crash", 0);
    struct asr_window w = fsfix_window(dev, 0, size);
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    bool log = fs->log_root != 0;
    btrfs_close(fs);
    close(w.fd);
    if (!log)
        cr_skip_test("the kernel committed before the copy: no log tree to test");
    /* The round trip's names: the crash copy is the device, its copy is judged. */
    cr_assert_eq(fsfix_sh("cd %s && mv crash.crash.0 crashed.0 && mv crash.expect crashed.expect", scratch_dir()), 0);
    struct asr_usedmap m = {0};
    round_trip("crashed", 1, size, &m);
    cr_assert(strstr(m.note, "taken whole: a log tree"), "%s", m.note);
    char *d = dev_path("crashed", 0);
    cr_assert_geq(asr_ranges_bytes(&m.used), stripes_of(d, size, ~0ull) + MIB);
    free(d);
    free(dev);
    asr_usedmap_free(&m);
}

/* A GPT disk: an ESP and a btrfs that holds no root (no /etc/fstab at its top level or in any
 * subvolume). Its files are read by path, so the machine's analysis looks into it, finds no root
 * there and says so; it is mapped by its used blocks. (A btrfs root in a subvolume: the
 * fedora-btrfs layout of tests/stack_backup_test.sh.) */
Test(fs_btrfs, btrfs_without_a_root_is_looked_into)
{
    fsfix_need("sfdisk");
    fsfix_need("mkfs.vfat");
    char *fs = mkfs_only("root", 128, "");
    char *disk = scratch_path("disk.img");
    cr_assert_eq(fsfix_sh("set -e; truncate -s 200M %1$s;"
                          "printf 'label: gpt\nstart=2048, size=32MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
                          "start=67584, size=128MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' | sfdisk -q %1$s;"
                          "mkfs.vfat --offset 2048 %1$s 32768 >/dev/null 2>&1;"
                          "dd if=%2$s of=%1$s bs=1M seek=33 conv=notrunc,sparse status=none",
                          disk, fs),
                 0);
    struct asr_disk *d = NULL;
    struct asr_volume_info *v = NULL;
    size_t n = 0;
    struct asr_machine *m = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(disk, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_machine_analyze(&d, &v, &n, 1, NULL, &m, &err), ASR_OK, "%s", err.msg);
    const struct asr_volume_info *root = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].map.fs_type, "btrfs"))
            root = &v[i];
    cr_assert_not_null(root);
    cr_assert_eq(root->natural_capture, ASR_CAPTURE_USED, "%s", root->warning);
    cr_assert(!root->critical && strstr(root->reason, "nothing shows it is needed to boot"), "%s", root->reason);
    asr_machine_free(m);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(disk);
    free(fs);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static int map_status(const char *dev, uint64_t size, struct asr_error *err)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct asr_usedmap m = {0};
    int rc = asr_btrfs_used(&w, &m, err);
    close(w.fd);
    if (rc != ASR_OK)
        cr_assert_eq(m.used.n, 0, "a refusal leaves no ranges");
    asr_usedmap_free(&m);
    return rc;
}

/* The device bytes of every copy of the tree block at logical. */
static unsigned copies_of(const char *dev, uint64_t size, uint64_t logical, uint64_t *phys)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    const struct btrfs_chunk *c = btrfs_chunk_find(fs, logical);
    cr_assert_not_null(c);
    struct btrfs_place pl[BTRFS_MAX_COPIES];
    uint64_t run;
    unsigned n = btrfs_chunk_place(c, logical, pl, &run);
    for (unsigned i = 0; i < n; i++)
        phys[i] = pl[i].physical;
    btrfs_close(fs);
    close(w.fd);
    return n;
}

/* The logical address of the root block of each tree the map reads: chunk, root, dev, and the
 * free-space or the extent tree. */
static size_t tree_roots(const char *dev, uint64_t size, uint64_t *out, const char **names)
{
    struct asr_window w = fsfix_window(dev, 0, size);
    struct btrfs_fs *fs = NULL;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    size_t n = 0;
    out[n] = fs->chunk_root, names[n++] = "chunk";
    out[n] = fs->root, names[n++] = "root";
    static const struct {
        uint64_t id;
        const char *name;
    } trees[] = {{BTRFS_DEV_TREE_OBJECTID, "dev"},
                 {BTRFS_FREE_SPACE_TREE_OBJECTID, "free-space"},
                 {BTRFS_EXTENT_TREE_OBJECTID, "extent"}};
    for (size_t i = 0; i < 3; i++) {
        struct btrfs_root r;
        bool found;
        cr_assert_eq(btrfs_find_root(fs, trees[i].id, &r, &found, &err), ASR_OK, "%s", err.msg);
        if (found && (trees[i].id != BTRFS_EXTENT_TREE_OBJECTID || n == 3)) /* extent: when no free-space tree */
            out[n] = r.bytenr, names[n++] = trees[i].name;
    }
    btrfs_close(fs);
    close(w.fd);
    return n;
}

static void flip(const char *path, uint64_t off)
{
    uint8_t b;
    fsfix_read_at(path, off, &b, 1);
    b ^= 0x40;
    fsfix_write_at(path, off, &b, 1);
}

/* A tree block whose checksum fails, in every tree the map reads: with DUP metadata one bad copy
 * is read past (the other copy is good: same map), both bad is ASR_E_CORRUPT naming the block's
 * logical address and the checksum. With single metadata, one bad copy is enough to refuse. */
static void damage_each_tree(const char *opts, bool dup)
{
    const uint64_t size = 128 * MIB;
    char *img = mkfs_only("damage", 128, opts);
    struct asr_usedmap good = {0};
    fsfix_map(asr_btrfs_used, img, size, &good);
    uint64_t roots[5];
    const char *names[5];
    size_t n = tree_roots(img, size, roots, names);
    cr_assert_geq(n, 4);
    char *work = scratch_path("damaged.img");
    for (size_t t = 0; t < n; t++) {
        uint64_t phys[BTRFS_MAX_COPIES];
        unsigned copies = copies_of(img, size, roots[t], phys);
        cr_assert_eq(copies, dup ? 2u : 1u, "%s tree", names[t]);
        copy_file(img, work);
        flip(work, phys[0] + 200); /* inside the first item or pointer: the checksum fails */
        struct asr_error err = {0};
        if (dup) {
            struct asr_usedmap m = {0};
            fsfix_map(asr_btrfs_used, work, size, &m);
            cr_assert_eq(m.used.n, good.used.n, "%s tree: one bad copy changed the map", names[t]);
            asr_usedmap_free(&m);
            flip(work, phys[1] + 200);
        }
        cr_assert_eq(map_status(work, size, &err), ASR_E_CORRUPT, "%s tree: %s", names[t], err.msg);
        char where[48];
        snprintf(where, sizeof where, "logical %llu", (unsigned long long)roots[t]);
        cr_assert(strstr(err.msg, "checksum mismatch") && strstr(err.msg, where), "%s tree: %s", names[t], err.msg);
        cr_log_info("%s", err.msg);
    }
    asr_usedmap_free(&good);
    free(work);
    free(img);
}

Test(fs_btrfs, bad_tree_block_dup) { damage_each_tree("", true); }
Test(fs_btrfs, bad_tree_block_single) { damage_each_tree("-m single -R ^free-space-tree", false); }

/* The superblock's own checksum and magic. */
Test(fs_btrfs, bad_superblock)
{
    const uint64_t size = 128 * MIB;
    char *img = mkfs_only("sb", 128, "");
    struct asr_error err = {0};
    flip(img, BTRFS_SUPER_OFFSET + 0x100);
    cr_assert_eq(map_status(img, size, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "superblock checksum mismatch"), "%s", err.msg);
    flip(img, BTRFS_SUPER_OFFSET + 0x40);
    cr_assert_eq(map_status(img, size, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    /* A window too small to hold the superblock. */
    cr_assert_neq(map_status(img, 32768, &err), ASR_OK);
    free(img);
}

/* Checksums this code cannot verify are refused by name (the caller then captures whole). */
Test(fs_btrfs, other_checksum_types_refused)
{
    static const char *const types[] = {"xxhash", "sha256", "blake2"};
    static const char *const names[] = {"xxhash64", "sha256", "blake2b"};
    for (size_t i = 0; i < 3; i++) {
        char opts[32];
        snprintf(opts, sizeof opts, "--csum %s", types[i]);
        char *img = mkfs_only("csum", 128, opts);
        struct asr_error err = {0};
        cr_assert_eq(map_status(img, 128 * MIB, &err), ASR_E_UNSUPPORTED, "%s: %s", types[i], err.msg);
        cr_assert(strstr(err.msg, names[i]), "%s", err.msg);
        free(img);
    }
}

/* Two devices, metadata single: the chunk tree lies on one device only. The other device alone
 * cannot be mapped: ASR_E_UNSUPPORTED saying so (the caller captures it whole); the device
 * holding the chunk tree maps, its map holding only its own stripes. */
Test(fs_btrfs, chunk_tree_on_another_device)
{
    fsfix_need("mkfs.btrfs");
    const uint64_t size = 128 * MIB;
    char *a = dev_path("multi", 0), *b = dev_path("multi", 1);
    cr_assert_eq(fsfix_sh("rm -f %1$s %2$s; truncate -s 128M %1$s %2$s &&"
                          " mkfs.btrfs -q -f -m single -d single %1$s %2$s >/dev/null 2>&1",
                          a, b),
                 0);
    struct asr_error err[2] = {0};
    int rc[2] = {map_status(a, size, &err[0]), map_status(b, size, &err[1])};
    int ok = rc[0] == ASR_OK ? 0 : 1;
    cr_assert_eq(rc[ok], ASR_OK, "%s", err[ok].msg);
    cr_assert_eq(rc[!ok], ASR_E_UNSUPPORTED, "%s", err[!ok].msg);
    cr_assert(strstr(err[!ok].msg, "chunk tree") && strstr(err[!ok].msg, "not on this one"), "%s", err[!ok].msg);
    cr_log_info("%s", err[!ok].msg);
    free(a);
    free(b);
}

/* Not btrfs: zeros and random bytes. */
Test(fs_btrfs, not_btrfs)
{
    char *img = scratch_path("zero.img");
    cr_assert_eq(fsfix_sh("truncate -s 1M %s", img), 0);
    struct asr_error err = {0};
    cr_assert_eq(map_status(img, MIB, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    free(img);
}
