/* What sits on what, as sysfs tells it: partitions and their whole disks, loop devices and the
 * file or device behind them. placement.c asks it where an image would land and which disks are
 * the same storage, mounts.c where a source volume is mounted, restore_target.c what to lock;
 * one reading of sysfs serves them all. Internal to the engine. */
#ifndef ASR_BLOCKDEV_H
#define ASR_BLOCKDEV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Something storage lives on: a block device (its number) or a regular file (device and inode). */
struct ident {
    bool is_file;
    dev_t dev;
    ino_t ino;
};

static inline bool ident_eq(struct ident a, struct ident b)
{
    return a.is_file == b.is_file && a.dev == b.dev && a.ino == b.ino;
}

static inline struct ident ident_block(dev_t dev)
{
    return (struct ident){false, dev, 0};
}

/* The first line of a sysfs attribute, newline removed; false when it cannot be read. */
bool sys_read(const char *path, char *buf, size_t len);

/* A block device's size in bytes; false when sysfs does not say. */
bool blk_size(dev_t dev, uint64_t *bytes);

/* A partition's whole disk, and the partition's start in bytes in *start (may be NULL). Any
 * other device is its own whole disk, at start 0. */
dev_t blk_whole_disk(dev_t dev, uint64_t *start);

/* A bound loop device: what it reads (a regular file, or a block device when a loop device is
 * set up over a disk or a partition) and the window of it. */
struct loop {
    struct ident backing;
    uint64_t offset;
    uint64_t sizelimit; /* 0: to the end of the backing */
};

/* false for anything but a bound loop device, and for one whose backing file is gone (sysfs
 * then shows its old name, which may since name something else). */
bool blk_loop(dev_t dev, struct loop *out);

/* The name of the file or device a bound loop device reads, as sysfs gives it (it may since
 * name something else: compare it with blk_loop's backing); false for anything else. */
bool blk_loop_file(dev_t dev, char *path, size_t len);

/* Calls fn for every loop device that exists now, bound or not, until fn returns false. */
void blk_each_loop(bool (*fn)(dev_t dev, void *ctx), void *ctx);

/* Calls fn for every partition the kernel knows of on a whole disk, with its start in bytes,
 * until fn returns false. */
void blk_each_partition(dev_t disk, bool (*fn)(dev_t part, uint64_t start, void *ctx), void *ctx);

/* Calls fn, until it returns false, for every device stacked directly on dev (its "holders":
 * device-mapper targets such as LVM and dm-crypt, md arrays), or every device dev is stacked on
 * (its "slaves"). */
void blk_each_holder(dev_t dev, bool (*fn)(dev_t dev, void *ctx), void *ctx);
void blk_each_slave(dev_t dev, bool (*fn)(dev_t dev, void *ctx), void *ctx);

#endif
