/* Where an image may go: never onto a disk being imaged (ASR could not save to the system drive
 * either). Both the sources and the image's location are resolved to what they ultimately live
 * on, through partitions to their whole disk and through loop devices to their backing file,
 * so that an image on a filesystem mounted from a loop device over the source disk file, or on
 * a partition of the source disk, is caught. */
#include "asr_engine.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_CHAIN 16

/* Something storage lives on: a whole block device, or a regular file (device and inode). */
struct identity {
    bool is_file;
    dev_t dev;
    ino_t ino;
};

struct chain {
    struct identity v[MAX_CHAIN];
    size_t n;
};

static void chain_add(struct chain *c, struct identity id)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].is_file == id.is_file && c->v[i].dev == id.dev && c->v[i].ino == id.ino)
            return;
    if (c->n < MAX_CHAIN)
        c->v[c->n++] = id;
}

static bool read_sys(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    return ok;
}

/* A partition's whole disk: sysfs lists a partition inside its disk's directory. */
static dev_t whole_disk(dev_t dev)
{
    char path[128], real[512], line[64];
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u", major(dev), minor(dev));
    char probe[160];
    snprintf(probe, sizeof probe, "%s/partition", path);
    if (access(probe, F_OK) != 0 || !realpath(path, real))
        return dev;
    char parent[600];
    snprintf(parent, sizeof parent, "%s/dev", dirname(real));
    unsigned ma, mi;
    if (read_sys(parent, line, sizeof line) && sscanf(line, "%u:%u", &ma, &mi) == 2)
        return makedev(ma, mi);
    return dev;
}

static void resolve_dev(dev_t dev, struct chain *c, int depth);

/* A loop device's backing file (false for any other device, or a backing file gone). */
static bool loop_backing(dev_t disk, struct stat *st)
{
    char path[128], backing[4096];
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/loop/backing_file", major(disk), minor(disk));
    return read_sys(path, backing, sizeof backing) && stat(backing, st) == 0 && S_ISREG(st->st_mode);
}

/* A regular file, and the storage its filesystem lives on. */
static void resolve_file(const struct stat *st, struct chain *c, int depth)
{
    chain_add(c, (struct identity){true, st->st_dev, st->st_ino});
    resolve_dev(st->st_dev, c, depth + 1);
}

/* A block device: its whole disk, and for a loop device its backing file and beyond. */
static void resolve_dev(dev_t dev, struct chain *c, int depth)
{
    if (depth > 8 || major(dev) == 0) /* 0: tmpfs, overlay and other device-less filesystems */
        return;
    dev_t disk = whole_disk(dev);
    chain_add(c, (struct identity){false, disk, 0});
    struct stat st;
    if (loop_backing(disk, &st))
        resolve_file(&st, c, depth + 1);
}

/* The source disk's own identities: the device (whole disk) or file, and a loop device's file. */
static void source_identities(const struct asr_disk *d, struct chain *c)
{
    dev_t rdev;
    struct stat st;
    if (asr_disk_is_block(d, &rdev)) {
        dev_t disk = whole_disk(rdev);
        chain_add(c, (struct identity){false, disk, 0});
        if (loop_backing(disk, &st))
            chain_add(c, (struct identity){true, st.st_dev, st.st_ino});
    } else if (fstat(asr_disk_fd(d), &st) == 0) {
        chain_add(c, (struct identity){true, st.st_dev, st.st_ino});
    }
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
            chain_add(&out, (struct identity){true, st.st_dev, st.st_ino});
    } else if (fstat(image_fd, &st) == 0) {
        if (S_ISREG(st.st_mode))
            resolve_file(&st, &out, 0);
        else if (S_ISBLK(st.st_mode))
            resolve_dev(st.st_rdev, &out, 0);
    }
    for (size_t i = 0; i < n; i++) {
        struct chain src = {0};
        source_identities(disks[i], &src);
        for (size_t a = 0; a < src.n; a++)
            for (size_t b = 0; b < out.n; b++)
                if (src.v[a].is_file == out.v[b].is_file && src.v[a].dev == out.v[b].dev &&
                    src.v[a].ino == out.v[b].ino)
                    return asr_fail_public(err, ASR_E_ARG,
                                           "%s: the image would be written onto %s, which is being imaged",
                                           image_path ? image_path : "standard output", asr_disk_path(disks[i]));
    }
    return ASR_OK;
}
