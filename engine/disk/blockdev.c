/* sysfs readings about block devices, shared by placement.c, mounts.c and restore_target.c (see
 * blockdev.h). Every answer is a best effort: a device that vanishes while it is being read is
 * reported as nothing. */
#include "blockdev.h"

#include <dirent.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

bool sys_read(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    buf[strcspn(buf, "\n")] = 0;
    return true;
}

static bool sys_u64(const char *path, uint64_t *v)
{
    char line[64];
    return sys_read(path, line, sizeof line) && sscanf(line, "%" SCNu64, v) == 1;
}

static bool sys_dev(const char *path, dev_t *dev)
{
    char line[64];
    unsigned ma, mi;
    if (!sys_read(path, line, sizeof line) || sscanf(line, "%u:%u", &ma, &mi) != 2)
        return false;
    *dev = makedev(ma, mi);
    return true;
}

bool blk_size(dev_t dev, uint64_t *bytes)
{
    char path[96];
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/size", major(dev), minor(dev));
    uint64_t sectors; /* sysfs counts 512-byte units whatever the sector size */
    if (!sys_u64(path, &sectors))
        return false;
    *bytes = sectors * 512;
    return true;
}

dev_t blk_whole_disk(dev_t dev, uint64_t *start)
{
    if (start)
        *start = 0;
    char path[128], probe[160], real[512], parent[600];
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u", major(dev), minor(dev));
    snprintf(probe, sizeof probe, "%s/partition", path);
    /* sysfs lists a partition inside its disk's directory. */
    if (access(probe, F_OK) != 0 || !realpath(path, real))
        return dev;
    snprintf(parent, sizeof parent, "%s/dev", dirname(real));
    dev_t disk;
    if (!sys_dev(parent, &disk))
        return dev;
    uint64_t sectors;
    snprintf(probe, sizeof probe, "%s/start", path);
    if (start && sys_u64(probe, &sectors))
        *start = sectors * 512; /* sysfs counts 512-byte units whatever the sector size */
    return disk;
}

bool blk_loop_file(dev_t dev, char *path, size_t len)
{
    char attr[160];
    snprintf(attr, sizeof attr, "/sys/dev/block/%u:%u/loop/backing_file", major(dev), minor(dev));
    return sys_read(attr, path, len);
}

bool blk_loop(dev_t dev, struct loop *out)
{
    char path[160], backing[4096];
    if (!blk_loop_file(dev, backing, sizeof backing))
        return false;
    struct stat st;
    if (stat(backing, &st) != 0)
        return false;
    if (S_ISREG(st.st_mode))
        out->backing = (struct ident){true, st.st_dev, st.st_ino};
    else if (S_ISBLK(st.st_mode))
        out->backing = ident_block(st.st_rdev);
    else
        return false;
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/loop/offset", major(dev), minor(dev));
    if (!sys_u64(path, &out->offset))
        return false;
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/loop/sizelimit", major(dev), minor(dev));
    if (!sys_u64(path, &out->sizelimit))
        out->sizelimit = 0;
    return true;
}

void blk_each_loop(bool (*fn)(dev_t dev, void *ctx), void *ctx)
{
    DIR *d = opendir("/sys/block");
    if (!d)
        return;
    struct dirent *e;
    char path[300];
    dev_t dev;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "loop", 4) != 0)
            continue;
        snprintf(path, sizeof path, "/sys/block/%s/dev", e->d_name);
        if (sys_dev(path, &dev) && !fn(dev, ctx))
            break;
    }
    closedir(d);
}

void blk_each_partition(dev_t disk, bool (*fn)(dev_t part, uint64_t start, void *ctx), void *ctx)
{
    char dir[128], path[400];
    snprintf(dir, sizeof dir, "/sys/dev/block/%u:%u", major(disk), minor(disk));
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        dev_t part;
        uint64_t sectors;
        snprintf(path, sizeof path, "%s/%s/partition", dir, e->d_name);
        if (access(path, F_OK) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s/dev", dir, e->d_name);
        if (!sys_dev(path, &part))
            continue;
        snprintf(path, sizeof path, "%s/%s/start", dir, e->d_name);
        if (sys_u64(path, &sectors) && !fn(part, sectors * 512, ctx))
            break;
    }
    closedir(d);
}

static void each_stacked(dev_t dev, const char *which, bool (*fn)(dev_t dev, void *ctx), void *ctx)
{
    char dir[160], path[450];
    snprintf(dir, sizeof dir, "/sys/dev/block/%u:%u/%s", major(dev), minor(dev), which);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    dev_t other;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/dev", dir, e->d_name);
        if (sys_dev(path, &other) && !fn(other, ctx))
            break;
    }
    closedir(d);
}

void blk_each_holder(dev_t dev, bool (*fn)(dev_t dev, void *ctx), void *ctx)
{
    each_stacked(dev, "holders", fn, ctx);
}

void blk_each_slave(dev_t dev, bool (*fn)(dev_t dev, void *ctx), void *ctx)
{
    each_stacked(dev, "slaves", fn, ctx);
}
