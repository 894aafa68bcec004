/* Where a source volume is mounted on this machine, and whether a restore target is in use. A
 * volume has as many names as there are devices that start where it starts: a partition of the
 * source disk, a loop device over the disk's file or device at the volume's offset (the kernel
 * here does not scan loop devices for partitions), the disk itself; and filesystems reach it
 * through devices stacked on those (LVM, dm-crypt, md). Mounts and swap areas are read from
 * /proc through libmount. Freezing them is freeze.c's. */
#include "asr_engine.h"
#include "blockdev.h"

#include <errno.h>
#include <libmount/libmount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the names of a volume ----------------------------------------------------------------- */

/* Byte x of the source disk is byte x + base of id: the disk itself at base 0, what it is made of
 * (a loop device's backing) at a positive base, devices over it (partitions, loop devices at an
 * offset) at a negative one. A device is the volume at start S when its base is -S. */
struct view {
    struct ident id;
    int64_t base;
};

#define MAX_VIEWS 64

struct views {
    struct view v[MAX_VIEWS];
    size_t n;
    bool grew;
};

static const struct view *views_find(const struct views *s, struct ident id)
{
    for (size_t i = 0; i < s->n; i++)
        if (ident_eq(s->v[i].id, id))
            return &s->v[i];
    return NULL;
}

static void views_add(struct views *s, struct ident id, int64_t base)
{
    if (views_find(s, id) || s->n == MAX_VIEWS)
        return;
    s->v[s->n++] = (struct view){id, base};
    s->grew = true;
}

/* What a source block device is made of: the disk it is a partition of, what a loop device reads. */
static void add_beneath(struct views *s, dev_t dev, int64_t base, int depth)
{
    uint64_t start;
    dev_t disk = blk_whole_disk(dev, &start);
    views_add(s, ident_block(dev), base);
    views_add(s, ident_block(disk), base + (int64_t)start);
    struct loop lo;
    if (depth > 8 || !blk_loop(disk, &lo))
        return;
    int64_t b = base + (int64_t)start + (int64_t)lo.offset;
    if (lo.backing.is_file)
        views_add(s, lo.backing, b);
    else
        add_beneath(s, lo.backing.dev, b, depth + 1);
}

static bool add_loop_over(dev_t loop, void *ctx)
{
    struct views *s = ctx;
    struct loop lo;
    const struct view *under;
    if (blk_loop(loop, &lo) && (under = views_find(s, lo.backing)))
        views_add(s, ident_block(loop), under->base - (int64_t)lo.offset);
    return s->n < MAX_VIEWS;
}

struct partition_ctx {
    struct views *s;
    int64_t base;
};

static bool add_partition(dev_t part, uint64_t start, void *ctx)
{
    struct partition_ctx *p = ctx;
    views_add(p->s, ident_block(part), p->base - (int64_t)start);
    return p->s->n < MAX_VIEWS;
}

/* Every device over the source disk, to closure: loop devices over it or over a partition of it,
 * loop devices over those, partitions of a loop device set up with partition scanning. */
static void collect_views(const struct asr_disk *d, struct views *s)
{
    dev_t rdev;
    struct stat st;
    if (asr_disk_is_block(d, &rdev))
        add_beneath(s, rdev, 0, 0);
    else if (fstat(asr_disk_fd(d), &st) == 0)
        views_add(s, (struct ident){true, st.st_dev, st.st_ino}, 0);
    do {
        s->grew = false;
        blk_each_loop(add_loop_over, s);
        for (size_t i = 0; i < s->n; i++)
            if (!s->v[i].id.is_file)
                blk_each_partition(s->v[i].id.dev, add_partition, &(struct partition_ctx){s, s->v[i].base});
    } while (s->grew && s->n < MAX_VIEWS);
}

/* ---- mountinfo and swaps, through libmount (which reads their escaped names) ----------------- */

/* The table libmount reads from path: mountinfo's format, or /proc/swaps' when swaps. Lines it
 * cannot parse are left out, as the kernel never writes one. */
static int read_table(const char *path, bool swaps, struct libmnt_table **out, struct asr_error *err)
{
    struct libmnt_table *t = mnt_new_table();
    if (!t)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    int rc = swaps ? mnt_table_parse_swaps(t, path) : mnt_table_parse_file(t, path);
    if (rc != 0) {
        mnt_unref_table(t);
        return asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(rc < 0 ? -rc : EINVAL));
    }
    *out = t;
    return ASR_OK;
}

/* Whether one of mountinfo's option strings says rw (the kernel writes rw or ro in each). */
static bool has_rw(const char *opts)
{
    return opts && mnt_optstr_get_option(opts, "rw", NULL, NULL) == 0;
}

/* The devices whose filesystems live on the volume: those that start where it starts, and those
 * stacked on them (LVM, dm-crypt, md), which a filesystem mounted from reaches it through. */
struct devset {
    dev_t v[MAX_VIEWS];
    size_t n;
};

static bool devset_add(dev_t dev, void *ctx)
{
    struct devset *d = ctx;
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i] == dev)
            return true;
    if (d->n == MAX_VIEWS)
        return false;
    d->v[d->n++] = dev;
    return true;
}

static void volume_devices(const struct views *s, int64_t at, struct devset *d)
{
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i].id.is_file && s->v[i].base == at)
            devset_add(s->v[i].id.dev, d);
    for (size_t i = 0; i < d->n; i++) /* d grows as holders are found: their holders in turn */
        blk_each_holder(d->v[i], devset_add, d);
}

static bool in_devset(const struct devset *d, dev_t dev)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i] == dev)
            return true;
    return false;
}

/* mountinfo's major:minor is the superblock's device, which for btrfs is an anonymous one: the
 * mount's source then names the block device. Only /dev paths are looked at, so that a source
 * on a network filesystem never gets a stat that could hang. */
static bool mount_on_volume(const struct devset *d, struct libmnt_fs *fs)
{
    if (in_devset(d, mnt_fs_get_devno(fs)))
        return true;
    const char *source = mnt_fs_get_source(fs);
    struct stat st;
    return source && !strncmp(source, "/dev/", 5) && stat(source, &st) == 0 && S_ISBLK(st.st_mode) &&
           in_devset(d, st.st_rdev);
}

static int mounts_add(struct asr_mounts *out, struct libmnt_fs *fs, struct asr_error *err)
{
    struct asr_mount *grown = realloc(out->v, (out->n + 1) * sizeof *grown);
    if (!grown)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    out->v = grown;
    struct asr_mount *a = &out->v[out->n];
    const char *type = mnt_fs_get_fstype(fs);
    *a = (struct asr_mount){.dev = mnt_fs_get_devno(fs),
                            .id = mnt_fs_get_id(fs),
                            .read_write = has_rw(mnt_fs_get_fs_options(fs)),
                            .mount_read_write = has_rw(mnt_fs_get_vfs_options(fs)),
                            .point = strdup(mnt_fs_get_target(fs))};
    if (!a->point)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    snprintf(a->fs_type, sizeof a->fs_type, "%s", type ? type : "");
    out->n++;
    return ASR_OK;
}

/* Every block device that shows some byte of the disk: the disk, what it is made of, partitions
 * and loop devices over any part of it; then whatever is stacked on those. */
static void disk_devices(const struct asr_disk *d, const struct views *s, struct devset *out)
{
    uint64_t disk_size = asr_disk_desc(d)->size_bytes;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].id.is_file)
            continue;
        uint64_t size = 0;
        int64_t first = -s->v[i].base; /* the disk byte its byte 0 shows */
        if (!blk_size(s->v[i].id.dev, &size))
            size = UINT64_MAX / 4;
        if (first < (int64_t)disk_size && first + (int64_t)(size > INT64_MAX / 2 ? INT64_MAX / 2 : size) > 0)
            devset_add(s->v[i].id.dev, out);
    }
    for (size_t i = 0; i < out->n; i++)
        blk_each_holder(out->v[i], devset_add, out);
}

/* The devices that show the volume starting at byte `at` of d, or (whole) every device that
 * shows any byte of d, with what is stacked on them. *out is calloc'd. */

static int devices_of(const struct asr_disk *d, int64_t at, bool whole, struct devset **out, struct asr_error *err)
{
    struct views *s = calloc(1, sizeof *s);
    *out = calloc(1, sizeof **out);
    if (!s || !*out) {
        free(s);
        free(*out);
        *out = NULL;
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    collect_views(d, s);
    if (whole)
        disk_devices(d, s, *out);
    else
        volume_devices(s, at, *out);
    free(s);
    return ASR_OK;
}

/* Every mount of a filesystem on one of devs, appended to out. */
static int mounts_on(const struct devset *devs, struct asr_mounts *out, struct asr_error *err)
{
    struct libmnt_table *t = NULL;
    int rc = read_table("/proc/self/mountinfo", false, &t, err);
    if (rc != ASR_OK)
        return rc;
    struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
    struct libmnt_fs *fs;
    if (!it)
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    while (rc == ASR_OK && mnt_table_next_fs(t, it, &fs) == 0)
        if (mnt_fs_get_target(fs) && mount_on_volume(devs, fs))
            rc = mounts_add(out, fs, err);
    mnt_free_iter(it);
    mnt_unref_table(t);
    if (rc != ASR_OK)
        asr_mounts_free(out);
    return rc;
}

int asr_volume_mounts(const struct asr_disk *d, const struct asr_volume_info *v, struct asr_mounts *out,
                      struct asr_error *err)
{
    *out = (struct asr_mounts){0};
    struct devset *devs;
    int rc = devices_of(d, -(int64_t)v->start_bytes, false, &devs, err);
    if (!rc)
        rc = mounts_on(devs, out, err);
    free(devs);
    return rc;
}

/* ---- whether a restore target is in use ------------------------------------------------- */

/* A swap area on one of devs. Only block devices: a swap file lives on a filesystem, which is
 * mounted. /proc/swaps not readable: nothing found there. */
static bool swap_on(const struct devset *devs, char *what, size_t len)
{
    struct libmnt_table *t = NULL;
    struct asr_error ignored;
    if (read_table("/proc/swaps", true, &t, &ignored) != ASR_OK)
        return false;
    struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
    struct libmnt_fs *fs;
    bool found = false;
    struct stat st;
    while (it && !found && mnt_table_next_fs(t, it, &fs) == 0) {
        const char *name = mnt_fs_get_source(fs);
        if (name && name[0] == '/' && stat(name, &st) == 0 && S_ISBLK(st.st_mode) && in_devset(devs, st.st_rdev)) {
            snprintf(what, len, "%s is in use as swap", name);
            found = true;
        }
    }
    mnt_free_iter(it);
    mnt_unref_table(t);
    return found;
}

int asr_disk_in_use(const struct asr_disk *d, bool *in_use, char *what, size_t len, struct asr_error *err)
{
    *in_use = false;
    struct devset *devs;
    struct asr_mounts m = {0};
    int rc = devices_of(d, 0, true, &devs, err);
    if (!rc)
        rc = mounts_on(devs, &m, err);
    if (!rc && m.n) {
        snprintf(what, len, "a filesystem on it is mounted at %s", m.v[0].point);
        *in_use = true;
    }
    if (!rc && !*in_use)
        *in_use = swap_on(devs, what, len);
    asr_mounts_free(&m);
    free(devs);
    return rc;
}

const struct asr_mount *asr_mounts_writable(const struct asr_mounts *m)
{
    const struct asr_mount *first = NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].read_write && m->v[i].mount_read_write)
            return &m->v[i];
        if (m->v[i].read_write && !first)
            first = &m->v[i];
    }
    return first;
}

void asr_mounts_free(struct asr_mounts *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].point);
    free(m->v);
    *m = (struct asr_mounts){0};
}
