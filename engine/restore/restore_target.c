/* Restore targets: opening the disks an image will be laid onto and checking ASR's rules before a
 * single byte is written (enough targets, none twice or sharing storage, each as large as its
 * disk with the same sector size, none in use, none holding the image), locking them for the
 * whole restore, and what each holds now, for the plan. Also the plain positioned I/O the other
 * restore modules use on a target. */
#include "asr_store.h"
#include "image_source.h"
#include "probe.h"
#include "readat.h"
#include "restore_target.h"
#include "blockdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIRECT_ALIGN_FILES 4096u /* a safe O_DIRECT alignment for files when statx does not say */

/* ---- plain I/O ------------------------------------------------------------------------------ */

int target_pwrite(struct restore_target *t, const void *buf, size_t len, uint64_t off, struct asr_error *err)
{
    size_t done;
    int rc = asr_pwrite_full(t->fd_buffered, buf, len, off, &done);
    if (rc)
        return asr_fail_public(err, ASR_E_IO, "cannot write %s at offset %llu (a write of %zu bytes): %s", t->path,
                               (unsigned long long)(off + done), len - done, rc < 0 ? strerror(-rc) : "no space");
    return ASR_OK;
}

/* A failed read is read again a unit at a time (readat.h): an error that goes away is no
 * error, and one that stays is named at its own sector, not at the start of a large read. */
static int read_fail(struct restore_target *t, int rc, uint64_t at, struct asr_error *err)
{
    return asr_fail_public(err, ASR_E_IO, "cannot read %s at offset %llu: %s", t->path, (unsigned long long)at,
                           read_strerror(rc));
}

int target_read_aligned(struct restore_target *t, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    uint64_t bad;
    int rc = read_located(t->direct ? t->fd : t->fd_buffered, buf, len, off, t->align, &bad);
    return rc ? read_fail(t, rc, bad, err) : ASR_OK;
}

int target_read(struct restore_target *t, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    int rc;
    uint64_t bad = off;
    if (!t->direct) {
        rc = read_located(t->fd_buffered, buf, len, off, 512, &bad);
    } else {
        /* Widen to the alignment through a bounce buffer; 1 MiB at a time keeps it small. */
        uint64_t a = t->align;
        size_t mem_align = a < 4096 ? 4096 : (size_t)a;
        size_t bounce_len = ((1u << 20) + 2 * (size_t)a + mem_align - 1) / mem_align * mem_align;
        uint8_t *bounce = aligned_alloc(mem_align, bounce_len);
        if (!bounce)
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        rc = 0;
        uint8_t *p = buf;
        while (len && !rc) {
            uint64_t from = off / a * a;
            size_t n = len < (1u << 20) ? len : (1u << 20);
            uint64_t to = (off + n + a - 1) / a * a;
            if (to > t->info.size_bytes / a * a) /* the odd tail of a file: not for O_DIRECT */
                rc = read_located(t->fd_buffered, p, n, off, 512, &bad);
            else if (!(rc = read_located(t->fd, bounce, (size_t)(to - from), from, (uint32_t)a, &bad)))
                memcpy(p, bounce + (off - from), n);
            if (!rc) {
                p += n;
                off += n;
                len -= n;
            }
        }
        free(bounce);
    }
    return rc ? read_fail(t, rc, bad, err) : ASR_OK;
}

int target_sync(struct restore_target *t, struct asr_error *err)
{
    if (fsync(t->fd_buffered) != 0 || (t->fd != t->fd_buffered && fsync(t->fd) != 0))
        return asr_fail_public(err, ASR_E_IO, "cannot sync %s: %s", t->path, strerror(errno));
    return ASR_OK;
}

/* ---- the plan ------------------------------------------------------------------------------ */

/* "gpt, 2 partitions: 1 EFI System 64.0 MiB, 2 Linux filesystem 190.0 MiB" */
static void describe_contents(const char *path, char *out, size_t len)
{
    struct asr_disk *d;
    struct asr_error why = {0};
    if (asr_disk_open(path, &d, &why) != ASR_OK) {
        snprintf(out, len, "no partition table asrimg can read");
        return;
    }
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    if (dd->label == ASR_LABEL_NONE) {
        /* Name a filesystem on the whole disk: "no partition table" alone reads as empty. */
        struct asr_window whole = {.fd = asr_disk_fd(d), .path = path, .base = 0, .size = dd->size_bytes};
        struct probe fs;
        if (probe_window(&whole, NULL, &fs) == 1)
            snprintf(out, len, "no partition table: %s on the whole disk", fs.type);
        else
            snprintf(out, len, "no partition table");
        asr_disk_close(d);
        return;
    }
    size_t used = (size_t)snprintf(out, len, "%s, %u partition%s",
                                   dd->label == ASR_LABEL_GPT ? "gpt" : dd->label == ASR_LABEL_MBR ? "mbr" : "no partition table",
                                   dd->partition_count, dd->partition_count == 1 ? "" : "s");
    for (uint32_t i = 0; i < dd->partition_count && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s %u %s %.1f MiB", i ? "," : ":", dd->partitions[i].number,
                                 asr_disk_type_name(d, i), (double)dd->partitions[i].size_bytes / (1 << 20));
    asr_disk_close(d);
}

/* ---- checks ---------------------------------------------------------------------------------- */

/* What a restore can write: a block device or a regular file (or a path where one will be made). */
static int check_kind(const char *path, struct asr_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? ASR_OK : asr_fail_public(err, ASR_E_IO, "target %s: %s", path, strerror(errno));
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
        return asr_fail_public(err, ASR_E_ARG, "target %s is neither a block device nor a disk image file", path);
    return ASR_OK;
}

/* No target twice, under any name, nor two that share bytes (a loop device over a target file or
 * over a part of a target device): both would be written, each over the other. */
static int check_distinct(const struct asr_restore_target_spec *t, size_t n, struct asr_error *err)
{
    const char *paths[ASR_RESTORE_MAX_TARGETS];
    for (size_t i = 0; i < n; i++) {
        int rc = check_kind(t[i].path, err);
        if (rc)
            return rc;
        paths[i] = t[i].path;
    }
    return asr_check_distinct_storage(paths, n, "target", err);
}

static int check_disks_covered(const struct asr_image *im, const struct asr_restore_target_spec *t, size_t n,
                               struct asr_error *err)
{
    uint32_t disks = asr_image_disk_count(im);
    for (size_t i = 0; i < n; i++)
        if (t[i].disk_index >= disks)
            return asr_fail_public(err, ASR_E_ARG, "target %s is for disk %u, but the image holds %u disk%s", t[i].path,
                                   t[i].disk_index, disks, disks == 1 ? "" : "s");
    for (uint32_t d = 0; d < disks; d++) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = t[i].disk_index == d;
        if (!found)
            return asr_fail_public(err, ASR_E_ARG,
                                   "image disk %u (%s) has no target: give one --to per image disk, or N=TARGET", d,
                                   asr_image_disk(im, d)->source);
    }
    return ASR_OK;
}

/* A snapshot's chunks are in its store: a directory store must not lie on the target (an S3
 * store cannot). */
static int store_not_on_target(const char *ref, const struct restore_target *t, struct asr_disk *bare,
                               struct asr_error *err)
{
    char *url = NULL, *snap = NULL;
    int rc = ASR_OK;
    if (asr_store_split_ref(ref, &url, &snap) && strncmp(url, "s3://", 5)) {
        char path[4200];
        snprintf(path, sizeof path, "%s/config", url);
        struct asr_error why = {0};
        if (asr_check_image_placement(path, -1, &bare, 1, &why) != ASR_OK)
            rc = asr_fail_public(err, ASR_E_ARG, "target %s holds the store being restored from (%s)", t->path, url);
    }
    free(url);
    free(snap);
    return rc;
}

/* The rules that need the target open: size, sector size, in use, holding the image. */
static int check_target(const struct asr_image *im, struct restore_target *t, struct asr_disk *bare, bool read_only,
                        struct asr_error *err)
{
    const struct asr_disk_desc *want = asr_image_disk(im, t->info.disk_index);
    const struct asr_disk_desc *have = asr_disk_desc(bare);
    if (have->size_bytes < want->size_bytes)
        return asr_fail_public(err, ASR_E_ARG,
                               "target %s is smaller than the disk it would replace (%llu bytes, image disk %u has "
                               "%llu): a restore needs a disk at least as large",
                               t->path, (unsigned long long)have->size_bytes, t->info.disk_index,
                               (unsigned long long)want->size_bytes);
    if (t->info.is_block && have->logical_sector != want->logical_sector)
        return asr_fail_public(err, ASR_E_ARG,
                               "target %s has %u-byte sectors, image disk %u had %u-byte sectors: partition tables "
                               "and filesystems count in sectors, so the restore is impossible",
                               t->path, have->logical_sector, t->info.disk_index, want->logical_sector);
    if (read_only)
        return ASR_OK;
    bool busy;
    char what[600];
    int rc = asr_disk_in_use(bare, &busy, what, sizeof what, err);
    if (rc)
        return rc;
    if (busy)
        return asr_fail_public(err, ASR_E_ARG, "target %s is in use: %s", t->path, what);
    const char *image_file = image_path(im);
    if (!image_file)
        return ASR_OK;
    if (asr_store_is_ref(image_file))
        return store_not_on_target(image_file, t, bare, err);
    const struct asr_image_info *info = asr_image_info(im);
    for (uint32_t part = 1; part <= info->part_count; part++) {
        char path[4200];
        if (part == 1)
            snprintf(path, sizeof path, "%s", image_file);
        else
            snprintf(path, sizeof path, "%s.%03u", image_file, part);
        struct asr_error why = {0};
        if (asr_check_image_placement(path, -1, &bare, 1, &why) != ASR_OK)
            return asr_fail_public(err, ASR_E_ARG, "target %s holds the image being restored (%s)", t->path, path);
    }
    return ASR_OK;
}

/* ---- locks ---------------------------------------------------------------------------------- */

/* Two asrimg runs on one target would interleave their writes, or compare bytes half written.
 * O_EXCL keeps a second writer off a block device, but not off a file, nor off the file a loop
 * device reads: so every target, and every file or device a loop device target reads, is flock'ed
 * from before its checks until asr_restore_free, exclusively by a restore and shared by verify
 * --against. (udev, too, leaves a locked block device alone: it does not probe a half-written
 * partition table.) */

static bool holds_lock(const struct asr_restore *rs, const struct stat *st)
{
    struct stat h;
    for (size_t i = 0; i < rs->nlocks; i++)
        if (fstat(rs->locks[i], &h) == 0 && h.st_dev == st->st_dev && h.st_ino == st->st_ino)
            return true;
    return false;
}

static int locked_out(const struct asr_restore *rs, const char *target, const char *path, struct asr_error *err)
{
    bool same = !strcmp(target, path);
    if (rs->read_only)
        return asr_fail_public(err, ASR_E_ARG,
                               "target %s is being restored by another asrimg%s%s%s: compare it once that is done", target,
                               same ? "" : " (through ", same ? "" : path, same ? "" : ", which it reads)");
    return asr_fail_public(err, ASR_E_ARG,
                           "target %s is in use: another asrimg restore or verify --against holds %s (locked)", target,
                           same ? "it" : path);
}

/* Locks fd, open on path (target itself or what it reads), and keeps it in rs->locks; closes it
 * when this restore holds that lock already (flock would refuse it to us) or cannot keep it. */
static int lock_fd(struct asr_restore *rs, const char *target, const char *path, int fd, struct asr_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || holds_lock(rs, &st)) {
        close(fd);
        return ASR_OK;
    }
    if (flock(fd, (rs->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        /* Anything but a lock held elsewhere (a filesystem without locks): the checks still
         * stand, only this guard is missing. */
        return e == EWOULDBLOCK ? locked_out(rs, target, path, err) : ASR_OK;
    }
    int *grown = realloc(rs->locks, (rs->nlocks + 1) * sizeof *grown);
    if (!grown) {
        close(fd);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    rs->locks = grown;
    rs->locks[rs->nlocks++] = fd;
    return ASR_OK;
}

/* Locks path; *blk: the device it is, when a block device. expect: what a loop device reads, as
 * sysfs named it; a name that since means something else (or nothing) is not locked. */
static int lock_one(struct asr_restore *rs, const char *target, const char *path, const struct ident *expect,
                    dev_t *blk, struct asr_error *err)
{
    *blk = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return expect ? ASR_OK : asr_fail_public(err, ASR_E_IO, "target %s: %s", path, strerror(e));
    }
    struct ident id =
        S_ISBLK(st.st_mode) ? ident_block(st.st_rdev) : (struct ident){true, st.st_dev, st.st_ino};
    if (expect && !ident_eq(id, *expect)) {
        close(fd);
        return ASR_OK;
    }
    if (S_ISBLK(st.st_mode))
        *blk = st.st_rdev;
    return lock_fd(rs, target, path, fd, err);
}

/* The target, then through loop devices what each reads, down to a file or a disk. */
static int lock_target(struct asr_restore *rs, const char *target, struct asr_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", target);
    struct loop lo;
    const struct ident *expect = NULL;
    for (int depth = 0; depth <= 8; depth++) {
        dev_t dev;
        int rc = lock_one(rs, target, path, expect, &dev, err);
        if (rc || !dev)
            return rc;
        dev = blk_whole_disk(dev, NULL);
        if (!blk_loop(dev, &lo) || !blk_loop_file(dev, path, sizeof path))
            return ASR_OK;
        expect = &lo.backing;
    }
    return ASR_OK;
}

/* ---- opening ---------------------------------------------------------------------------------- */

/* O_DIRECT where the target allows it, and the alignment its I/O then needs. */
static int open_for_io(struct restore_target *t, bool read_only, struct asr_error *err)
{
    int mode = read_only ? O_RDONLY : O_RDWR;
    int excl = t->info.is_block && !read_only ? O_EXCL : 0;
    t->fd = open(t->path, mode | excl | O_DIRECT | O_CLOEXEC);
    t->direct = t->fd >= 0;
    if (t->fd < 0 && errno != EBUSY)
        t->fd = open(t->path, mode | excl | O_CLOEXEC);
    if (t->fd < 0)
        return asr_fail_public(err, errno == EBUSY ? ASR_E_ARG : ASR_E_IO, "target %s: %s", t->path,
                               errno == EBUSY ? "in use (mounted, or held open by another program)" : strerror(errno));
    /* A second descriptor through the page cache; O_EXCL is per open, so this one is plain. */
    t->fd_buffered = t->direct ? open(t->path, mode | O_CLOEXEC) : t->fd;
    if (t->fd_buffered < 0)
        return asr_fail_public(err, ASR_E_IO, "target %s: %s", t->path, strerror(errno));
    t->align = t->info.logical_sector;
    if (!t->info.is_block) {
        struct statx sx;
        t->align = DIRECT_ALIGN_FILES;
        if (statx(t->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
            sx.stx_dio_offset_align >= 512 && sx.stx_dio_offset_align <= 65536)
            t->align = sx.stx_dio_offset_align;
        if (t->info.logical_sector > t->align)
            t->align = t->info.logical_sector;
    }
    return ASR_OK;
}

/* The new file stays open as its lock. Another asrimg that took it in the instant between its
 * creation and the lock owns it now: it is refused here, and not removed. */
static int create_file(struct asr_restore *rs, struct restore_target *t, struct asr_error *err)
{
    int fd = open(t->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return asr_fail_public(err, ASR_E_IO, "cannot create target %s: %s", t->path, strerror(errno));
    if (ftruncate(fd, (off_t)t->info.size_bytes) != 0) {
        int rc = asr_fail_public(err, ASR_E_IO, "cannot size target %s: %s", t->path, strerror(errno));
        close(fd);
        unlink(t->path);
        return rc;
    }
    return lock_fd(rs, t->path, t->path, fd, err);
}

static int open_target(struct asr_restore *rs, struct restore_target *t, struct asr_error *err)
{
    bool read_only = rs->read_only;
    const struct asr_disk_desc *want = asr_image_disk(rs->im, t->info.disk_index);
    struct stat st;
    if (stat(t->path, &st) != 0) {
        if (read_only)
            return asr_fail_public(err, ASR_E_IO, "target %s: %s", t->path, strerror(errno));
        /* A new image file: the original disk's size, sparse, made only when the restore runs. */
        t->info.create = true;
        t->info.size_bytes = want->size_bytes;
        t->info.logical_sector = want->logical_sector;
        snprintf(t->info.holds, sizeof t->info.holds, "nothing (a new file)");
        return ASR_OK;
    }
    struct asr_disk *bare;
    int rc = lock_target(rs, t->path, err);
    if (!rc)
        rc = asr_disk_open_bare(t->path, &bare, err);
    if (rc)
        return rc;
    t->info.is_block = asr_disk_is_block(bare, NULL);
    t->info.size_bytes = asr_disk_desc(bare)->size_bytes;
    t->info.logical_sector = t->info.is_block ? asr_disk_desc(bare)->logical_sector : want->logical_sector;
    rc = check_target(rs->im, t, bare, read_only, err);
    asr_disk_close(bare);
    if (rc)
        return rc;
    describe_contents(t->path, t->info.holds, sizeof t->info.holds);
    return open_for_io(t, read_only, err);
}

/* Runs when the restore begins: a target that is a new file exists only from then on. */
static int materialize(struct asr_restore *rs, struct restore_target *t, struct asr_error *err)
{
    if (!t->info.create || t->fd >= 0)
        return ASR_OK;
    int rc = create_file(rs, t, err);
    if (!rc)
        rc = open_for_io(t, false, err);
    return rc;
}

int restore_targets_ready(struct asr_restore *rs, struct asr_error *err)
{
    for (size_t i = 0; i < rs->n; i++) {
        int rc = materialize(rs, &rs->t[i], err);
        if (rc)
            return rc;
    }
    return ASR_OK;
}

int asr_restore_open_image(struct asr_image *im, const struct asr_restore_target_spec *spec, size_t n, bool read_only,
                           struct asr_restore **out, struct asr_error *err)
{
    *out = NULL;
    if (n == 0 || n > ASR_RESTORE_MAX_TARGETS)
        return asr_fail_public(err, ASR_E_ARG, "%zu targets: give between 1 and %u", n, ASR_RESTORE_MAX_TARGETS);
    if (read_only && asr_image_is_stream(im)) /* a comparison reads the image at will */
        return asr_fail_public(err, ASR_E_ARG, "an image stream cannot be compared with disks: give the image file");
    int rc = check_disks_covered(im, spec, n, err);
    if (!rc)
        rc = check_distinct(spec, n, err);
    if (rc)
        return rc;
    struct asr_restore *rs = calloc(1, sizeof *rs);
    if (!rs || !(rs->t = calloc(n, sizeof *rs->t))) {
        free(rs);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    rs->im = im;
    rs->read_only = read_only;
    for (size_t i = 0; i < n; i++) {
        rs->t[i].fd = rs->t[i].fd_buffered = -1;
        rs->t[i].path = strdup(spec[i].path);
        rs->t[i].info.path = rs->t[i].path;
        rs->t[i].info.disk_index = spec[i].disk_index;
        rs->n++;
        rc = rs->t[i].path ? open_target(rs, &rs->t[i], err) : asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        if (rc) {
            asr_restore_free(rs);
            return rc;
        }
    }
    *out = rs;
    return ASR_OK;
}

/* Around a reader or a stream the caller holds: the image made for it goes with the restore. */
static int open_borrowed(struct asr_reader *r, struct asr_stream *s, const char *image_path,
                         const struct asr_restore_target_spec *spec, size_t n, bool read_only,
                         struct asr_restore **out, struct asr_error *err)
{
    struct asr_image *im;
    *out = NULL;
    int rc = image_borrow(r, s, image_path, &im, err);
    if (!rc)
        rc = asr_restore_open_image(im, spec, n, read_only, out, err);
    if (rc)
        asr_image_free(im);
    else
        (*out)->own_im = true;
    return rc;
}

int asr_restore_open(struct asr_reader *r, const char *image_path, const struct asr_restore_target_spec *spec, size_t n,
                     bool read_only, struct asr_restore **out, struct asr_error *err)
{
    return open_borrowed(r, NULL, image_path, spec, n, read_only, out, err);
}

int asr_restore_open_stream(struct asr_stream *s, const struct asr_restore_target_spec *spec, size_t n,
                            struct asr_restore **out, struct asr_error *err)
{
    return open_borrowed(NULL, s, NULL, spec, n, false, out, err);
}

void asr_restore_free(struct asr_restore *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        struct restore_target *t = &rs->t[i];
        if (t->fd_buffered >= 0 && t->fd_buffered != t->fd)
            close(t->fd_buffered);
        if (t->fd >= 0)
            close(t->fd);
        free(t->path);
    }
    for (size_t i = 0; i < rs->nlocks; i++) /* after the targets' own descriptors: held to the last */
        close(rs->locks[i]);
    free(rs->locks);
    if (rs->own_im)
        asr_image_free(rs->im);
    free(rs->t);
    free(rs);
}

size_t asr_restore_target_count(const struct asr_restore *rs) { return rs->n; }

const struct asr_restore_target_info *asr_restore_target(const struct asr_restore *rs, size_t i)
{
    return i < rs->n ? &rs->t[i].info : NULL;
}
