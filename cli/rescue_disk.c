/* The recovery drive's disk: its GPT (libfdisk: a BIOS boot partition, the ESP, the data
 * partition), each partition reached through a loop device over its byte range (losetup
 * --offset/--sizelimit: the same path for an image file and a real drive, and no partition
 * scanning needed), filesystems made by their mkfs tools, the ESP written with mtools, and GRUB
 * for BIOS: grub-mkimage's core.img in the BIOS boot partition and boot.img in the protective
 * MBR's code area. grub-bios-setup cannot do that last step here: it insists on guessing the
 * device of its -d directory and mapping it to a GRUB drive, which fails for tmpfs, FUSE and any
 * host disk not in the device map; so the two fields it would fill are filled here, as GRUB's
 * boot.S and diskboot.S define them. */
#include "rescue_disk.h"

#include <errno.h>
#include <fcntl.h>
#include <libfdisk/libfdisk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "tool.h"

#define GPT_BIOS_BOOT "21686148-6449-6E6F-744E-656564454649"
#define GPT_ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_BASIC_DATA "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
#define GPT_LINUX_DATA "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

static int fdisk_fail(struct asr_error *err, const char *path, const char *what, int e)
{
    return asr_fail_public(err, ASR_E_IO, "rescue: %s: %s: %s", path, what, strerror(e < 0 ? -e : e));
}

static int ignore_ask(struct fdisk_context *cxt, struct fdisk_ask *ask, void *data)
{
    (void)cxt, (void)ask, (void)data;
    return 0;
}

static struct fdisk_context *fdisk_open(int fd, const char *path, bool write, struct asr_error *err)
{
    struct fdisk_context *cxt = fdisk_new_context();
    if (!cxt) {
        asr_fail_public(err, ASR_E_NOMEM, "rescue: out of memory");
        return NULL;
    }
    fdisk_set_ask(cxt, ignore_ask, NULL);
    int e = fdisk_assign_device_by_fd(cxt, fd, path, !write);
    if (e) {
        fdisk_fail(err, path, "libfdisk cannot open it", e);
        fdisk_unref_context(cxt);
        return NULL;
    }
    return cxt;
}

/* Adds one partition of `sectors` (0: to the end) of type `type` and name `name`. */
static int add_part(struct fdisk_context *cxt, const char *path, uint64_t start, uint64_t sectors, const char *type,
                    const char *name, struct asr_error *err)
{
    struct fdisk_parttype *t = fdisk_label_get_parttype_from_string(fdisk_get_label(cxt, NULL), type);
    struct fdisk_partition *pa = fdisk_new_partition();
    int e = !t || !pa ? -ENOMEM : 0;
    if (!e)
        e = fdisk_partition_set_start(pa, start);
    if (!e)
        e = sectors ? fdisk_partition_set_size(pa, sectors) : fdisk_partition_end_follow_default(pa, 1);
    if (!e)
        e = fdisk_partition_set_type(pa, t);
    if (!e)
        e = fdisk_partition_set_name(pa, name);
    if (!e)
        e = fdisk_partition_partno_follow_default(pa, 1);
    if (!e)
        e = fdisk_add_partition(cxt, pa, NULL);
    fdisk_unref_partition(pa);
    fdisk_unref_parttype(t);
    return e ? fdisk_fail(err, path, "cannot add a partition", e) : ASR_OK;
}

/* The three partitions as libfdisk reads them back: the ESP by its type, the BIOS boot partition
 * by its, the data partition as the one after the ESP. */
static int read_layout(struct fdisk_context *cxt, const char *path, struct rescue_layout *lay, struct asr_error *err)
{
    uint64_t ss = fdisk_get_sector_size(cxt);
    memset(lay->part, 0, sizeof lay->part);
    lay->sector = (uint32_t)ss;
    if (!fdisk_is_labeltype(cxt, FDISK_DISKLABEL_GPT))
        return asr_fail_public(err, ASR_E_ARG, "rescue: %s has no GPT partition table", path);
    for (size_t i = 0; i < fdisk_get_npartitions(cxt); i++) {
        struct fdisk_partition *pa = NULL;
        if (!fdisk_is_partition_used(cxt, i) || fdisk_get_partition(cxt, i, &pa))
            continue;
        const struct fdisk_parttype *t = fdisk_partition_get_type(pa);
        const char *ts = t ? fdisk_parttype_get_string(t) : NULL, *uuid = fdisk_partition_get_uuid(pa);
        int which = !ts ? -1 : !strcasecmp(ts, GPT_BIOS_BOOT) ? RESCUE_PART_BIOS : !strcasecmp(ts, GPT_ESP) ? RESCUE_PART_ESP : -1;
        if (which < 0 && lay->part[RESCUE_PART_ESP].size && !lay->part[RESCUE_PART_DATA].size)
            which = RESCUE_PART_DATA;
        if (which >= 0 && !lay->part[which].size) {
            struct rescue_part *p = &lay->part[which];
            p->number = (uint32_t)fdisk_partition_get_partno(pa) + 1;
            p->offset = fdisk_partition_get_start(pa) * ss;
            p->size = fdisk_partition_get_size(pa) * ss;
            snprintf(p->guid, sizeof p->guid, "%s", uuid ? uuid : "");
            for (char *c = p->guid; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
        }
        fdisk_unref_partition(pa);
    }
    return ASR_OK;
}

int rescue_disk_partition(int fd, const char *path, uint64_t esp_bytes, const char *data_fs, struct rescue_layout *lay,
                          struct asr_error *err)
{
    struct fdisk_context *cxt = fdisk_open(fd, path, true, err);
    if (!cxt)
        return err->code;
    uint64_t ss = fdisk_get_sector_size(cxt), mib = (1u << 20) / ss;
    /* The signatures of what the drive held before go, so nothing finds an old filesystem. */
    fdisk_enable_wipe(cxt, 1);
    int rc = ASR_OK, e = fdisk_create_disklabel(cxt, "gpt");
    if (e)
        rc = fdisk_fail(err, path, "cannot create a GPT", e);
    if (!rc)
        rc = add_part(cxt, path, mib, mib, GPT_BIOS_BOOT, "BIOS boot", err);
    if (!rc)
        rc = add_part(cxt, path, 2 * mib, esp_bytes / ss, GPT_ESP, "asrimg boot", err);
    if (!rc)
        rc = add_part(cxt, path, 2 * mib + esp_bytes / ss, 0, strcmp(data_fs, "ext4") ? GPT_BASIC_DATA : GPT_LINUX_DATA,
                      "asrimg images", err);
    if (!rc && (e = fdisk_write_disklabel(cxt)))
        rc = fdisk_fail(err, path, "cannot write the GPT", e);
    if (!rc)
        rc = read_layout(cxt, path, lay, err);
    e = fdisk_deassign_device(cxt, 1);
    if (e && !rc)
        rc = fdisk_fail(err, path, "cannot close it", e);
    fdisk_unref_context(cxt);
    return rc;
}

int rescue_disk_read(int fd, const char *path, struct rescue_layout *lay, struct asr_error *err)
{
    struct fdisk_context *cxt = fdisk_open(fd, path, false, err);
    if (!cxt)
        return err->code;
    int rc = fdisk_has_label(cxt) ? read_layout(cxt, path, lay, err)
                                   : asr_fail_public(err, ASR_E_ARG, "rescue: %s has no partition table", path);
    fdisk_deassign_device(cxt, 1);
    fdisk_unref_context(cxt);
    return rc;
}

/* ---- partitions through loop devices ---------------------------------------------------------- */

int rescue_loop_attach(const char *path, const struct rescue_part *p, char *dev, size_t len, struct asr_error *err)
{
    char off[32], size[32], out[256];
    snprintf(off, sizeof off, "%" PRIu64, p->offset);
    snprintf(size, sizeof size, "%" PRIu64, p->size);
    const char *argv[] = {"losetup", "--find", "--show", "--offset", off, "--sizelimit", size, path, NULL};
    int rc = cli_tool_run(argv, "attaching a loop device over a partition", out, sizeof out, err);
    if (rc)
        return rc;
    out[strcspn(out, "\n")] = '\0';
    if (strncmp(out, "/dev/", 5) || strlen(out) >= len)
        return asr_fail_public(err, ASR_E_IO, "losetup (attaching a loop device over a partition) printed no device");
    snprintf(dev, len, "%s", out);
    return ASR_OK;
}

/* The loop device's page cache is written back before the detach: mtools and mkfs write through
 * it, and when udev still holds the device open (it probes after every close that wrote), the
 * kernel only marks it for auto-clear and writes the cache back at udev's last close, which can
 * come after this program has exited and the user has pulled the drive. */
int rescue_loop_detach(const char *dev, struct asr_error *err)
{
    if (!dev[0])
        return ASR_OK;
    int rc = ASR_OK, fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd))
        rc = asr_fail_public(err, ASR_E_IO, "rescue: cannot write back %s before detaching it: %s", dev,
                             strerror(errno));
    if (fd >= 0)
        close(fd);
    struct asr_error ignored;
    const char *argv[] = {"losetup", "--detach", dev, NULL};
    cli_tool_run(argv, "detaching a loop device", NULL, 0, &ignored);
    return rc;
}

/* ---- filesystems ------------------------------------------------------------------------------- */

int rescue_mkfs_esp(const char *dev, struct asr_error *err)
{
    const char *argv[] = {"mkfs.vfat", "-F", "32", "-n", "ASRIMG-BOOT", dev, NULL};
    return cli_tool_run(argv, "making the ESP's FAT32 filesystem", NULL, 0, err);
}

/* exFAT has no way to fill a new filesystem at mkfs time: images/ is made through exfat-fuse. */
static int exfat_mkdir(const char *dev, const char *dir, struct asr_error *err)
{
    char mnt[] = "/tmp/asrimg-rescue-mnt.XXXXXX";
    if (!mkdtemp(mnt))
        return asr_fail_public(err, ASR_E_IO, "rescue: cannot make a mount point in /tmp: %s", strerror(errno));
    const char *mount_argv[] = {"mount.exfat-fuse", dev, mnt, NULL};
    int rc = cli_tool_run(mount_argv, "mounting the exFAT data partition to make images/", NULL, 0, err);
    if (!rc) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", mnt, dir);
        if (mkdir(path, 0755) && errno != EEXIST)
            rc = asr_fail_public(err, ASR_E_IO, "rescue: cannot make %s on the data partition: %s", dir, strerror(errno));
        const char *umount_argv[] = {"umount", mnt, NULL};
        struct asr_error e2;
        int urc = cli_tool_run(umount_argv, "unmounting the exFAT data partition", NULL, 0, &e2);
        if (urc && !rc)
            *err = e2, rc = urc;
    }
    rmdir(mnt);
    return rc;
}

int rescue_mkfs_data(const char *dev, const char *fs, const char *label, struct asr_error *err)
{
    if (!strcmp(fs, "ext4")) {
        /* ext4 is filled at mkfs time (-d) from a directory holding an empty images/. */
        char dir[] = "/tmp/asrimg-rescue-root.XXXXXX", images[64];
        if (!mkdtemp(dir))
            return asr_fail_public(err, ASR_E_IO, "rescue: cannot make a directory in /tmp: %s", strerror(errno));
        snprintf(images, sizeof images, "%s/images", dir);
        mkdir(images, 0755);
        const char *argv[] = {"mkfs.ext4", "-q", "-F", "-L", label, "-d", dir, dev, NULL};
        int rc = cli_tool_run(argv, "making the data partition's ext4 filesystem", NULL, 0, err);
        rmdir(images);
        rmdir(dir);
        return rc;
    }
    if (!strcmp(fs, "fat32")) {
        const char *argv[] = {"mkfs.vfat", "-F", "32", "-n", label, dev, NULL};
        int rc = cli_tool_run(argv, "making the data partition's FAT32 filesystem", NULL, 0, err);
        return rc ? rc : rescue_mtools(dev, "mmd", "::/images", NULL, "making images/ on the data partition", err);
    }
    const char *argv[] = {"mkfs.exfat", "-L", label, dev, NULL};
    int rc = cli_tool_run(argv, "making the data partition's exFAT filesystem", NULL, 0, err);
    return rc ? rc : exfat_mkdir(dev, "images", err);
}

int rescue_mtools(const char *dev, const char *tool, const char *a, const char *b, const char *doing, struct asr_error *err)
{
    /* mcopy -o: replace without asking; -D o for mmd: an existing directory is fine. */
    const char *argv[8];
    size_t n = 0;
    argv[n++] = tool;
    argv[n++] = "-i";
    argv[n++] = dev;
    if (!strcmp(tool, "mcopy"))
        argv[n++] = "-o";
    argv[n++] = a;
    if (b)
        argv[n++] = b;
    argv[n] = NULL;
    setenv("MTOOLS_SKIP_CHECK", "1", 1);
    return cli_tool_run(argv, doing, NULL, 0, err);
}

int rescue_mtools_read(const char *dev, const char *path, char *out, size_t len, struct asr_error *err)
{
    setenv("MTOOLS_SKIP_CHECK", "1", 1);
    const char *argv[] = {"mtype", "-i", dev, path, NULL};
    return cli_tool_run(argv, "reading the recovery drive's marker", out, len, err);
}

/* ---- GRUB for BIOS ------------------------------------------------------------------------------ */

#define GRUB_PC_DIR "/usr/lib/grub/i386-pc"
/* boot.S: where the MBR code finds core.img's first sector (8 bytes LE), the boot drive (0xff:
 * the one the BIOS booted), and the two bytes that, NOPed, make it trust the BIOS's drive number
 * on hard disks (grub-bios-setup does the same unless --allow-floppy). */
#define BOOT_KERNEL_SECTOR 0x5c
#define BOOT_DRIVE 0x64
#define BOOT_DRIVE_CHECK 0x66
/* The MBR's code ends where the disk signature, the partition table and 0x55AA begin. */
#define MBR_CODE_END 440
/* diskboot.S: core.img's first sector ends with a block list (start 8 bytes LE, length 2 bytes
 * LE, segment 2 bytes) saying where the rest of core.img is. */
#define DISKBOOT_LIST_START (512 - 12)

int rescue_grub_bios(int fd, const char *path, const struct rescue_layout *lay, const char *workdir, struct asr_error *err)
{
    char core[PATH_MAX];
    snprintf(core, sizeof core, "%s/core.img", workdir);
    char prefix[32];
    /* "(,gptN)": partition N of the disk the BIOS booted, whatever number it has then. */
    snprintf(prefix, sizeof prefix, "(,gpt%u)/boot/grub", lay->part[RESCUE_PART_ESP].number);
    const char *argv[] = {"grub-mkimage", "-O", "i386-pc", "-d", GRUB_PC_DIR, "-o", core, "-p", prefix,
                          "biosdisk", "part_gpt", "fat", "normal", "configfile", "linux", "echo", "serial",
                          "terminal", "test", "search", "boot", "halt", "reboot", NULL};
    int rc = cli_tool_run(argv, "making GRUB's core.img for BIOS", NULL, 0, err);
    if (rc)
        return rc;
    size_t core_len, boot_len;
    int cfd = open(core, O_RDONLY | O_CLOEXEC);
    struct stat st;
    unsigned char *img = NULL, mbr[512], boot[512];
    if (cfd < 0 || fstat(cfd, &st))
        rc = asr_fail_public(err, ASR_E_IO, "rescue: cannot read %s: %s", core, strerror(errno));
    core_len = rc ? 0 : (size_t)st.st_size;
    const struct rescue_part *bb = &lay->part[RESCUE_PART_BIOS];
    if (!rc && (core_len < 1024 || core_len > bb->size))
        rc = asr_fail_public(err, ASR_E_LIMIT, "rescue: GRUB's core.img (%zu bytes) does not fit the BIOS boot partition (%" PRIu64 ")",
                             core_len, bb->size);
    size_t sectors = (core_len + 511) / 512;
    if (!rc && !(img = calloc(sectors, 512)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "rescue: out of memory");
    if (!rc && asr_pread_full(cfd, img, core_len, 0))
        rc = asr_fail_public(err, ASR_E_IO, "rescue: cannot read %s", core);
    if (cfd >= 0)
        close(cfd);
    int bfd = rc ? -1 : open(GRUB_PC_DIR "/boot.img", O_RDONLY | O_CLOEXEC);
    if (!rc && (bfd < 0 || asr_pread_full(bfd, boot, sizeof boot, 0)))
        rc = asr_fail_public(err, ASR_E_IO, "rescue: cannot read " GRUB_PC_DIR "/boot.img (Debian package grub-pc-bin)");
    if (bfd >= 0)
        close(bfd);
    boot_len = sizeof boot;
    (void)boot_len;
    if (!rc && asr_pread_full(fd, mbr, sizeof mbr, 0))
        rc = asr_fail_public(err, ASR_E_IO, "rescue: %s: cannot read the protective MBR", path);
    if (rc) {
        free(img);
        return rc;
    }
    /* core.img in the BIOS boot partition, its block list pointing past its first sector. */
    uint64_t first = bb->offset / 512, rest = first + 1;
    for (int i = 0; i < 8; i++)
        img[DISKBOOT_LIST_START + i] = (unsigned char)(rest >> (8 * i));
    img[DISKBOOT_LIST_START + 8] = (unsigned char)((sectors - 1) & 0xff);
    img[DISKBOOT_LIST_START + 9] = (unsigned char)((sectors - 1) >> 8);
    /* boot.img's code over the MBR's, the partition table and signature kept. */
    memcpy(mbr, boot, MBR_CODE_END);
    for (int i = 0; i < 8; i++)
        mbr[BOOT_KERNEL_SECTOR + i] = (unsigned char)(first >> (8 * i));
    mbr[BOOT_DRIVE] = 0xff;
    mbr[BOOT_DRIVE_CHECK] = 0x90;
    mbr[BOOT_DRIVE_CHECK + 1] = 0x90;
    if (asr_pwrite_full(fd, img, sectors * 512, bb->offset, NULL) || asr_pwrite_full(fd, mbr, sizeof mbr, 0, NULL) ||
        fsync(fd))
        rc = asr_fail_public(err, ASR_E_IO, "rescue: %s: cannot write GRUB for BIOS: %s", path, strerror(errno));
    free(img);
    return rc;
}
