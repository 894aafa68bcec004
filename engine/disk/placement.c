/* Where an image may go, and which disks are the same storage. An image may never land on a disk
 * being imaged (ASR could not save to the system drive either). Both the sources and the image's
 * location are resolved to what they ultimately live on, through partitions to their whole disk,
 * through loop devices to their backing file or device, and through stacked devices (LVM,
 * dm-crypt, md) to those under them, so that an image on a filesystem mounted from a loop device
 * over the source disk (its file or its device), or on a partition of the source disk, is caught.
 * With --freeze this also keeps the image out of a filesystem being frozen, where writing it would
 * wait for a thaw that never comes. The disks of one backup, and the targets of one restore, are
 * resolved through partitions and loop devices too (not stacked devices), byte ranges included,
 * and compared: a loop device over a target file, or a partition of a source disk, is that
 * storage again and would be read or written twice. And no file the writer removes or replaces
 * (a leftover IMAGE.partial, an older image's parts) may be a source. */
#include "asr_engine.h"
#include "blockdev.h"

#include <errno.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define MAX_CHAIN 16

struct chain {
    struct ident v[MAX_CHAIN];
    size_t n;
};

static void chain_add(struct chain *c, struct ident id)
{
    for (size_t i = 0; i < c->n; i++)
        if (ident_eq(c->v[i], id))
            return;
    if (c->n < MAX_CHAIN)
        c->v[c->n++] = id;
}

static void resolve_dev(dev_t dev, struct chain *c, int depth);

struct resolve_ctx {
    struct chain *c;
    int depth;
};

static bool resolve_slave(dev_t dev, void *ctx)
{
    struct resolve_ctx *r = ctx;
    resolve_dev(dev, r->c, r->depth + 1);
    return true;
}

/* A regular file, and the storage its filesystem lives on. */
static void resolve_file(struct ident file, struct chain *c, int depth)
{
    chain_add(c, file);
    resolve_dev(file.dev, c, depth + 1);
}

/* A block device: its whole disk, and for a loop device what backs it and beyond, for a stacked
 * device (LVM, dm-crypt, md) the devices under it. A loop device over a disk or partition counts
 * too: a filesystem mounted from one lives on that disk (and when that filesystem is frozen by
 * --freeze, an image written into it would never finish). */
static void resolve_dev(dev_t dev, struct chain *c, int depth)
{
    if (depth > 8 || major(dev) == 0) /* 0: tmpfs, overlay and other device-less filesystems */
        return;
    dev_t disk = blk_whole_disk(dev, NULL);
    chain_add(c, ident_block(disk));
    blk_each_slave(disk, resolve_slave, &(struct resolve_ctx){c, depth});
    struct loop lo;
    if (!blk_loop(disk, &lo))
        return;
    if (lo.backing.is_file)
        resolve_file(lo.backing, c, depth + 1);
    else
        resolve_dev(lo.backing.dev, c, depth + 1);
}

/* What a source block device is made of: its whole disk and, for a loop device, its backing (a
 * file, or a disk and what that is made of). Not the filesystem holding a backing file: imaging
 * a disk file does not image the disk the file is stored on. */
static void source_dev(dev_t dev, struct chain *c, int depth)
{
    dev_t disk = blk_whole_disk(dev, NULL);
    chain_add(c, ident_block(disk));
    struct loop lo;
    if (depth > 8 || !blk_loop(disk, &lo))
        return;
    if (lo.backing.is_file)
        chain_add(c, lo.backing);
    else
        source_dev(lo.backing.dev, c, depth + 1);
}

/* The source disk's own identities: the device (whole disk) or file, and what a loop device reads. */
static void source_identities(const struct asr_disk *d, struct chain *c)
{
    dev_t rdev;
    struct stat st;
    if (asr_disk_is_block(d, &rdev))
        source_dev(rdev, c, 0);
    else if (fstat(asr_disk_fd(d), &st) == 0)
        chain_add(c, (struct ident){true, st.st_dev, st.st_ino});
}

/* The first source disk that shares an identity with out, or -1. */
static int imaged_disk(const struct chain *out, struct asr_disk *const *disks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct chain src = {0};
        source_identities(disks[i], &src);
        for (size_t a = 0; a < src.n; a++)
            for (size_t b = 0; b < out->n; b++)
                if (ident_eq(src.v[a], out->v[b]))
                    return (int)i;
    }
    return -1;
}

int asr_check_image_placement(const char *image_path, int image_fd, struct asr_disk *const *disks, size_t n,
                              struct asr_error *err)
{
    struct chain out = {0};
    struct stat st;
    if (image_path) {
        /* The image does not exist yet: its directory says where it will live. */
        char *copy = strdup(image_path);
        if (!copy)
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        int rc = stat(dirname(copy), &st);
        free(copy);
        if (rc != 0)
            return asr_fail_public(err, ASR_E_IO, "%s: cannot reach its directory: %s", image_path, strerror(errno));
        resolve_dev(st.st_dev, &out, 0);
        if (stat(image_path, &st) == 0 && S_ISREG(st.st_mode))
            chain_add(&out, (struct ident){true, st.st_dev, st.st_ino});
    } else if (fstat(image_fd, &st) == 0) {
        if (S_ISREG(st.st_mode))
            resolve_file((struct ident){true, st.st_dev, st.st_ino}, &out, 0);
        else if (S_ISBLK(st.st_mode))
            resolve_dev(st.st_rdev, &out, 0);
    }
    int i = imaged_disk(&out, disks, n);
    if (i >= 0)
        return asr_fail_public(err, ASR_E_ARG, "%s: the image would be written onto %s, which is being imaged",
                               image_path ? image_path : "standard output", asr_disk_path(disks[i]));
    return ASR_OK;
}

int asr_check_replaced_file(const char *path, struct asr_disk *const *disks, size_t n, struct asr_error *err)
{
    /* Through a symlink: removing only the link would be harmless, but one that leads to a
     * source is a mistake worth stopping at. */
    struct stat st;
    if (stat(path, &st) != 0 && lstat(path, &st) != 0)
        return ASR_OK;
    struct chain out = {0};
    if (S_ISREG(st.st_mode))
        chain_add(&out, (struct ident){true, st.st_dev, st.st_ino});
    else if (S_ISBLK(st.st_mode))
        source_dev(st.st_rdev, &out, 0);
    int i = imaged_disk(&out, disks, n);
    if (i >= 0)
        return asr_fail_public(err, ASR_E_ARG, "%s is (or leads to) %s, which is being imaged: choose another image name",
                               path, asr_disk_path(disks[i]));
    return ASR_OK;
}

/* ---- the same storage under two names -------------------------------------------------------- */

#define MAX_SPANS 32

/* Bytes [from, to) of something storage lives on. */
struct span {
    struct ident id;
    uint64_t from, to;
};

/* What a path shows: its own bytes first, then the same bytes where they also are (its whole
 * disk, what a loop device reads); or, for a path that does not exist yet, the directory entry
 * that will name it. */
struct shows {
    struct span v[MAX_SPANS];
    size_t n;
    bool missing;
    struct ident dir;
    char name[256];
};

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void shows_add(struct shows *s, struct ident id, uint64_t from, uint64_t to)
{
    if (s->n < MAX_SPANS)
        s->v[s->n++] = (struct span){id, from, to};
}

/* Bytes [from, to) of block device dev: the same on its whole disk (a partition starts inside
 * it) and, for a loop device, in what it reads from its offset on, down to a file or a disk. */
static void shows_dev(struct shows *s, dev_t dev, uint64_t from, uint64_t to, int depth)
{
    uint64_t start;
    dev_t disk = blk_whole_disk(dev, &start);
    shows_add(s, ident_block(dev), from, to);
    from = add_sat(from, start);
    to = add_sat(to, start);
    if (disk != dev)
        shows_add(s, ident_block(disk), from, to);
    struct loop lo;
    if (depth > 8 || !blk_loop(disk, &lo))
        return;
    from = add_sat(from, lo.offset);
    to = add_sat(to, lo.offset);
    if (lo.backing.is_file)
        shows_add(s, lo.backing, from, to);
    else
        shows_dev(s, lo.backing.dev, from, to, depth + 1);
}

static int shows_of(const char *path, const char *what, struct shows *s, struct asr_error *err)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        uint64_t size;
        if (!S_ISBLK(st.st_mode))
            shows_add(s, (struct ident){true, st.st_dev, st.st_ino}, 0, UINT64_MAX); /* a file may grow */
        else
            shows_dev(s, st.st_rdev, 0, blk_size(st.st_rdev, &size) ? size : UINT64_MAX, 0);
        return ASR_OK;
    }
    if (errno != ENOENT)
        return asr_fail_public(err, ASR_E_IO, "%s %s: %s", what, path, strerror(errno));
    s->missing = true;
    char *dir = strdup(path), *base = strdup(path);
    if (!dir || !base) {
        free(dir);
        free(base);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    /* A directory that cannot be reached: the path's own text is all there is to compare. */
    bool dir_known = stat(dirname(dir), &st) == 0;
    if (dir_known)
        s->dir = (struct ident){true, st.st_dev, st.st_ino};
    snprintf(s->name, sizeof s->name, "%s", dir_known ? basename(base) : path);
    free(dir);
    free(base);
    return ASR_OK;
}

enum { APART, SAME, OVERLAP };

static int compare_shows(const struct shows *a, const struct shows *b)
{
    if (a->missing || b->missing)
        return a->missing && b->missing && ident_eq(a->dir, b->dir) && !strcmp(a->name, b->name) ? SAME : APART;
    if (ident_eq(a->v[0].id, b->v[0].id))
        return SAME;
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = 0; j < b->n; j++)
            if (ident_eq(a->v[i].id, b->v[j].id) && a->v[i].from < b->v[j].to && b->v[j].from < a->v[i].to)
                return OVERLAP;
    return APART;
}

int asr_check_distinct_storage(const char *const *paths, size_t n, const char *what, struct asr_error *err)
{
    struct shows *s = calloc(n ? n : 1, sizeof *s);
    if (!s)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    int rc = ASR_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = shows_of(paths[i], what, &s[i], err);
        for (size_t j = 0; j < i && !rc; j++) {
            int c = compare_shows(&s[i], &s[j]);
            if (c == SAME)
                rc = asr_fail_public(err, ASR_E_ARG, "%s %s is given twice (also as %s)", what, paths[i], paths[j]);
            else if (c == OVERLAP)
                rc = asr_fail_public(err, ASR_E_ARG,
                                     "%s %s shares storage with %s %s (a loop device, a partition or the file behind "
                                     "one): give each %s once",
                                     what, paths[i], what, paths[j], what);
        }
    }
    free(s);
    return rc;
}
