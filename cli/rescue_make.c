/* asrimg rescue make / rescue update: the recovery drive. make builds the environment (the
 * ESP is sized from it: two environments fit, so update can write the new one before removing
 * the old), shows what it will overwrite and asks (or --yes), partitions the drive, makes the
 * filesystems, writes the ESP (shim and Debian's signed GRUB on the UEFI paths, GRUB for BIOS, one
 * grub.cfg per firmware path, the environment, the marker) and reports. update recognises a drive
 * by the marker on its ESP, writes the new environment beside the old one, switches grub.cfg to it
 * and removes the old one; the data partition is never opened. */
#include "rescue_drive.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "args.h"
#include "clock.h"
#include "json.h"
#include "rescue_disk.h"
#include "util.h"

#define MIB (1ull << 20)
#define ESP_MIN (64 * MIB)   /* FAT32 needs 65525 clusters: 32 MiB at 512 bytes, with room */
#define DATA_MIN (64 * MIB)
#define GPT_TAIL MIB         /* the backup GPT and alignment at the end */
#define KERNEL_ARGS_MAX 512

struct make_args {
    const char *drive, *data_fs, *label, *root, *kernel_args;
    uint64_t size;
    bool have_size, yes, json;
};

/* ---- arguments --------------------------------------------------------------------------------- */

static bool label_ok(const char *l)
{
    size_t n = strlen(l);
    return n > 0 && n <= 11 && strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* Words that reach the kernel line inside grub.cfg: no quoting, no GRUB syntax, nothing a menu
 * entry could be broken out of. */
static bool kernel_args_ok(const char *s)
{
    return strlen(s) < KERNEL_ARGS_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.,=:/+@ ") == strlen(s);
}

static int parse_args(int argc, char **argv, bool update, struct make_args *a)
{
    *a = (struct make_args){.data_fs = "exfat", .label = "ASRIMG", .root = "/", .kernel_args = ""};
    const char *cmd = update ? "rescue update" : "rescue make";
    argv[0] = (char *)cmd; /* the option table's name for it */
    struct cli_args p;
    cli_args_init(&p, argc, argv);
    for (const char *v;;) {
        int o = cli_args_next(&p, &v);
        switch (o) {
        case ARG_END:
            if (!a->drive)
                return cli_error("%s: which drive? (see 'asrimg %s --help')", cmd, cmd), EXIT_USAGE;
            return EXIT_OK;
        case ARG_HELP: return ARG_HELP;
        case ARG_USAGE: return EXIT_USAGE;
        case ARG_WORD:
            if (a->drive)
                return cli_error("%s: one drive at a time ('%s', then '%s')", cmd, a->drive, v), EXIT_USAGE;
            a->drive = v;
            break;
        case OPT_SIZE:
            if (!cli_parse_size(v, &a->size) || a->size == 0)
                return cli_error("%s: --size %s: not a size (4G, 512M, 1073741824)", cmd, v), EXIT_USAGE;
            a->have_size = true;
            break;
        case OPT_DATA_FS:
            if (strcmp(v, "exfat") && strcmp(v, "ext4") && strcmp(v, "fat32"))
                return cli_error("%s: --data-fs %s: exfat, ext4 or fat32", cmd, v), EXIT_USAGE;
            a->data_fs = v;
            break;
        case OPT_LABEL:
            if (!label_ok(v))
                return cli_error("%s: --label %s: 1 to 11 letters, digits, '-' or '_'", cmd, v), EXIT_USAGE;
            a->label = v;
            break;
        case OPT_SYSTEM_ROOT: a->root = v; break;
        case OPT_KERNEL_ARGS:
            if (!kernel_args_ok(v))
                return cli_error("%s: --kernel-args '%s': words of letters, digits and . , = : / + @ - _ only", cmd, v),
                       EXIT_USAGE;
            a->kernel_args = v;
            break;
        case OPT_YES: a->yes = true; break;
        case OPT_JSON: a->json = true; break;
        default: return EXIT_USAGE;
        }
    }
}

/* ---- the drive ------------------------------------------------------------------------------- */

struct drive {
    const char *path;
    int fd;
    bool block, created, wrote_table;
    uint64_t size;
    struct rescue_layout lay;
    char esp_dev[64], data_dev[64];
    char work[64]; /* the environment is built here */
};

/* Detaches the loops, writes everything they wrote back to the drive, closes it. After a run
 * that failed the result is ignored; after one that succeeded, a write-back failure fails it:
 * the drive may not hold what the report says. */
static int drive_close(struct drive *d, bool failed, struct asr_error *err)
{
    struct asr_error flush_err = {0};
    int rc = rescue_loop_detach(d->esp_dev, &flush_err);
    int rc2 = rescue_loop_detach(d->data_dev, rc ? &(struct asr_error){0} : &flush_err);
    rc = rc ? rc : rc2;
    d->esp_dev[0] = d->data_dev[0] = '\0';
    if (!rc && d->fd >= 0 && fsync(d->fd))
        rc = asr_fail_public(&flush_err, ASR_E_IO, "rescue: %s: cannot write it back: %s", d->path, strerror(errno));
    /* A real drive's new partitions appear under /dev (sdX1 ...) only once the kernel re-reads
     * its table; a loop device without partition scanning says EINVAL, which is fine. */
    if (d->fd >= 0 && d->block && d->wrote_table)
        ioctl(d->fd, BLKRRPART);
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    /* A file this run created and could not finish is no recovery drive: it goes. */
    if (failed && d->created)
        unlink(d->path);
    if (d->work[0]) {
        const char *names[] = {"initrd.img", "core.img", "grub-bios.cfg", "grub-efi.cfg", "rescue.conf"};
        char p[PATH_MAX];
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(p, sizeof p, "%s/%s", d->work, names[i]);
            unlink(p);
        }
        rmdir(d->work);
        d->work[0] = '\0';
    }
    if (rc && !failed)
        *err = flush_err;
    return failed ? ASR_OK : rc;
}

static int drive_size(struct drive *d, struct asr_error *err)
{
    struct stat st;
    if (fstat(d->fd, &st))
        return asr_fail_public(err, ASR_E_IO, "rescue: %s: %s", d->path, strerror(errno));
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(d->fd, BLKGETSIZE64, &d->size))
            return asr_fail_public(err, ASR_E_IO, "rescue: %s: cannot read its size: %s", d->path, strerror(errno));
        d->block = true;
    } else if (S_ISREG(st.st_mode)) {
        d->size = (uint64_t)st.st_size;
    } else {
        return asr_fail_public(err, ASR_E_ARG, "rescue: %s is neither a block device nor a file", d->path);
    }
    return ASR_OK;
}

/* Opens an existing drive for reading and writing: a block device exclusively, so a drive with
 * a mounted or otherwise used partition is refused before anything is written. */
static int drive_open(struct drive *d, struct asr_error *err)
{
    struct stat st;
    if (stat(d->path, &st))
        return asr_fail_public(err, ASR_E_IO, "rescue: %s: %s", d->path, strerror(errno));
    d->fd = open(d->path, O_RDWR | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
    if (d->fd < 0)
        return asr_fail_public(err, ASR_E_IO, "rescue: %s: %s", d->path,
                               errno == EBUSY ? "in use (a partition of it is mounted, or another program holds it)"
                                              : strerror(errno));
    return drive_size(d, err);
}

static int mkwork(struct drive *d, struct asr_error *err)
{
    snprintf(d->work, sizeof d->work, "/tmp/asrimg-rescue.XXXXXX");
    if (!mkdtemp(d->work)) {
        d->work[0] = '\0';
        return asr_fail_public(err, ASR_E_IO, "rescue: cannot make a work directory in /tmp: %s", strerror(errno));
    }
    return ASR_OK;
}

/* ---- the ESP's contents ---------------------------------------------------------------------- */

static int write_text(const struct drive *d, const char *name, const char *text, char *path, struct asr_error *err)
{
    snprintf(path, PATH_MAX, "%s/%s", d->work, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        if (f)
            fclose(f);
        return asr_fail_public(err, ASR_E_IO, "rescue: cannot write %s: %s", path, strerror(errno));
    }
    return ASR_OK;
}

static void grub_cfg(char *out, size_t len, const char *env_dir, const char *drive_guid, const char *kernel_args,
                     const char *firmware)
{
    snprintf(out, len,
             "# asrimg recovery drive, %s: written by asrimg %s (rescue make / rescue update rewrite it)\n"
             "serial --unit=0 --speed=115200\n"
             "terminal_input console serial\n"
             "terminal_output console serial\n"
             "set timeout=2\n"
             "set default=0\n"
             "menuentry \"asrimg rescue: restore a backup\" {\n"
             "    linux /asrimg/%s/vmlinuz asrimg.drive=%s console=tty0 console=ttyS0,115200 quiet %s\n"
             "    initrd /asrimg/%s/initrd.img\n"
             "}\n"
             "menuentry \"asrimg rescue: a shell\" {\n"
             "    linux /asrimg/%s/vmlinuz asrimg.drive=%s console=tty0 console=ttyS0,115200 asrimg.shell %s\n"
             "    initrd /asrimg/%s/initrd.img\n"
             "}\n",
             firmware, asr_version(), env_dir, drive_guid, kernel_args, env_dir, env_dir, drive_guid, kernel_args,
             env_dir);
}

/* Writes environment number gen onto the ESP, then the boot loaders and both grub.cfg pointing
 * at it, then the marker: until the marker is written, the drive still names the old one. */
static int write_esp(struct drive *d, const struct rescue_env *env, unsigned gen, const char *kernel_args,
                     struct asr_error *err)
{
    const char *dev = d->esp_dev;
    char env_dir[32], dst[64], path[PATH_MAX], cfg[2048];
    snprintf(env_dir, sizeof env_dir, "env-%u", gen);
    snprintf(dst, sizeof dst, "::/asrimg/%s", env_dir);
    int rc = rescue_mtools(dev, "mmd", dst, NULL, "making the environment's directory on the ESP", err);
    snprintf(dst, sizeof dst, "::/asrimg/%s/vmlinuz", env_dir);
    if (!rc)
        rc = rescue_mtools(dev, "mcopy", env->kernel, dst, "copying the kernel onto the ESP", err);
    snprintf(dst, sizeof dst, "::/asrimg/%s/initrd.img", env_dir);
    if (!rc)
        rc = rescue_mtools(dev, "mcopy", env->initrd, dst, "copying the initramfs onto the ESP", err);
    /* shim on the removable-media path and as Debian installs it, each with Debian's signed GRUB
     * beside it (shim loads grubx64.efi from its own directory; without fbx64.efi it does so
     * directly). That GRUB reads $prefix/grub.cfg, its prefix built in as /EFI/debian. */
    static const char *const efi[][2] = {{"::/EFI/BOOT/BOOTX64.EFI", "shim"},
                                         {"::/EFI/BOOT/grubx64.efi", "grub"},
                                         {"::/EFI/debian/shimx64.efi", "shim"},
                                         {"::/EFI/debian/grubx64.efi", "grub"}};
    for (size_t i = 0; !rc && i < sizeof efi / sizeof efi[0]; i++)
        rc = rescue_mtools(dev, "mcopy", !strcmp(efi[i][1], "shim") ? env->shim : env->grub_efi, efi[i][0],
                           "copying shim and GRUB onto the ESP", err);
    const char *guid = d->lay.part[RESCUE_PART_DATA].guid;
    grub_cfg(cfg, sizeof cfg, env_dir, guid, kernel_args, "UEFI");
    if (!rc)
        rc = write_text(d, "grub-efi.cfg", cfg, path, err);
    if (!rc)
        rc = rescue_mtools(dev, "mcopy", path, "::/EFI/debian/grub.cfg", "writing grub.cfg for UEFI", err);
    grub_cfg(cfg, sizeof cfg, env_dir, guid, kernel_args, "BIOS");
    if (!rc)
        rc = write_text(d, "grub-bios.cfg", cfg, path, err);
    if (!rc)
        rc = rescue_mtools(dev, "mcopy", path, "::/boot/grub/grub.cfg", "writing grub.cfg for BIOS", err);
    snprintf(cfg, sizeof cfg,
             "asrimg-rescue-drive\nformat=%d\nenv=%s\ndata=%s\nasrimg=%s\nkernel=%s\nkernel_args=%s\n", RESCUE_FORMAT,
             env_dir, guid, asr_version(), env->kver, kernel_args);
    if (!rc)
        rc = write_text(d, "rescue.conf", cfg, path, err);
    if (!rc)
        rc = rescue_mtools(dev, "mcopy", path, "::/" RESCUE_MARKER, "writing the drive's marker", err);
    return rc;
}

/* ---- the report ------------------------------------------------------------------------------ */

struct report {
    const char *cmd, *data_fs, *label;
    unsigned gen, old_gen;
    double env_seconds, total_seconds;
};

static void print_report(const struct drive *d, const struct rescue_env *env, const struct report *r, bool json)
{
    char b1[32], b2[32], b3[32], b4[32];
    if (!json) {
        fprintf(stderr, "%s: %s: environment env-%u: kernel %s (%s), initramfs %s (%s, %zu modules of %s, %zu "
                        "libraries), made in %.1f s; done in %.1f s\n",
                r->cmd, d->path, r->gen, env->kver, cli_bytes(env->kernel_bytes, b1, sizeof b1),
                cli_bytes(env->initrd_bytes, b2, sizeof b2), env->compression, env->modules,
                cli_bytes(env->modules_bytes, b3, sizeof b3), env->libs, env->seconds, r->total_seconds);
        if (r->data_fs)
            fprintf(stderr, "%s: data partition %u: %s, label %s, %s, partition GUID %s; images go in images/\n", r->cmd,
                    d->lay.part[RESCUE_PART_DATA].number, r->data_fs, r->label,
                    cli_bytes(d->lay.part[RESCUE_PART_DATA].size, b4, sizeof b4), d->lay.part[RESCUE_PART_DATA].guid);
        return;
    }
    struct json j;
    json_begin(&j, stdout);
    json_obj(&j, NULL);
    json_str(&j, "command", r->cmd);
    json_str(&j, "drive", d->path);
    json_u64(&j, "drive_bytes", d->size);
    json_arr(&j, "partitions");
    static const char *const role[] = {"bios_boot", "esp", "data"};
    for (int i = 0; i < RESCUE_PARTS; i++) {
        const struct rescue_part *p = &d->lay.part[i];
        json_obj(&j, NULL);
        json_str(&j, "role", role[i]);
        json_u64(&j, "number", p->number);
        json_u64(&j, "offset", p->offset);
        json_u64(&j, "bytes", p->size);
        json_str(&j, "guid", p->guid);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    if (r->data_fs) {
        json_str(&j, "data_fs", r->data_fs);
        json_str(&j, "label", r->label);
    }
    json_obj(&j, "environment");
    char dir[32];
    snprintf(dir, sizeof dir, "env-%u", r->gen);
    json_str(&j, "dir", dir);
    if (r->old_gen) {
        snprintf(dir, sizeof dir, "env-%u", r->old_gen);
        json_str(&j, "replaced", dir);
    }
    json_u64(&j, "format", RESCUE_FORMAT);
    json_str(&j, "kernel_version", env->kver);
    json_u64(&j, "kernel_bytes", env->kernel_bytes);
    json_u64(&j, "initramfs_bytes", env->initrd_bytes);
    json_str(&j, "initramfs_compression", env->compression);
    json_u64(&j, "modules", env->modules);
    json_u64(&j, "modules_not_in_kernel", env->modules_missing);
    json_u64(&j, "modules_bytes", env->modules_bytes);
    json_u64(&j, "libraries", env->libs);
    json_u64(&j, "libraries_bytes", env->libs_bytes);
    json_end_obj(&j);
    json_obj(&j, "seconds");
    json_dbl(&j, "environment", r->env_seconds);
    json_dbl(&j, "total", r->total_seconds);
    json_end_obj(&j);
    json_end_obj(&j);
    json_finish(&j);
}

/* ---- rescue make ------------------------------------------------------------------------------ */

/* The ESP holds two environments (update writes the new one before removing the old), shim and
 * GRUB twice, and room for a kernel and initramfs a quarter larger than today's. */
static uint64_t esp_bytes(const struct rescue_env *env)
{
    uint64_t need = 2 * rescue_env_bytes(env) + 2 * env->efi_bytes + 2 * MIB;
    need += need / 4;
    need = (need + MIB - 1) / MIB * MIB;
    return need < ESP_MIN ? ESP_MIN : need;
}

/* What rescue make is about to overwrite, on standard error. */
static void show_target(const struct drive *d, const struct make_args *a, uint64_t esp)
{
    char b1[32], b2[32];
    fprintf(stderr, "rescue make: %s (%s%s) becomes a recovery drive:\n", d->path, cli_bytes(d->size, b1, sizeof b1),
            d->block ? ", a block device" : d->created ? ", a new file" : ", a file");
    fprintf(stderr, "  partition 1: BIOS boot, 1 MiB\n  partition 2: EFI system partition (FAT32), %s\n"
                    "  partition 3: data, %s labelled %s, %s, with images/\n",
            cli_bytes(esp, b1, sizeof b1), a->data_fs, a->label, cli_bytes(d->size - esp - 2 * MIB - GPT_TAIL, b2, sizeof b2));
    if (!d->created) {
        struct rescue_layout old = {0};
        struct asr_error ignored;
        bool table = rescue_disk_read(d->fd, d->path, &old, &ignored) == ASR_OK;
        fprintf(stderr, "  everything on it now is overwritten%s\n",
                table ? ": its GPT and every partition it lists" : "");
    }
}

static bool confirmed(const struct make_args *a, const struct drive *d)
{
    if (a->yes || d->created)
        return true;
    return cli_confirm("Type 'yes' to overwrite the drive above: ");
}

/* The drive: an existing one opened; FILE.img with --size created (or, existing, resized after
 * the confirmation). */
static int prepare_drive(const struct make_args *a, struct drive *d, struct asr_error *err)
{
    struct stat st;
    if (stat(a->drive, &st) && errno == ENOENT) {
        if (!a->have_size)
            return asr_fail_public(err, ASR_E_ARG, "rescue make: %s does not exist (give --size to create an image file)",
                                   a->drive);
        d->fd = open(a->drive, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (d->fd < 0)
            return asr_fail_public(err, ASR_E_IO, "rescue make: cannot create %s: %s", a->drive, strerror(errno));
        d->created = true;
        d->size = a->size;
        return ASR_OK;
    }
    int rc = drive_open(d, err);
    if (rc)
        return rc;
    if (a->have_size && d->block)
        return asr_fail_public(err, ASR_E_ARG, "rescue make: --size is for image files; %s is a block device", a->drive);
    if (a->have_size)
        d->size = a->size;
    return ASR_OK;
}

static int make(const struct make_args *a, struct drive *d, struct rescue_env *env, struct report *r,
                struct asr_error *err)
{
    double t0 = asr_now();
    int rc = prepare_drive(a, d, err);
    if (!rc)
        rc = mkwork(d, err);
    if (!rc)
        rc = rescue_env_build(a->root, d->work, env, err);
    if (rc)
        return rc;
    r->env_seconds = env->seconds;
    uint64_t esp = esp_bytes(env);
    char b1[32], b2[32];
    if (d->size < 2 * MIB + esp + DATA_MIN + GPT_TAIL)
        return asr_fail_public(err, ASR_E_ARG, "rescue make: %s: %s is too small (the ESP takes %s; at least %s)",
                               d->path, cli_bytes(d->size, b1, sizeof b1), cli_bytes(esp, b2, sizeof b2),
                               cli_bytes(2 * MIB + esp + DATA_MIN + GPT_TAIL, b1, sizeof b1));
    show_target(d, a, esp);
    if (!confirmed(a, d))
        return asr_fail_public(err, ASR_E_ARG, "rescue make would overwrite %s: pass --yes to confirm%s", d->path,
                               isatty(STDIN_FILENO) ? "" : " (no terminal to ask on)");
    if (!d->block && ftruncate(d->fd, (off_t)d->size))
        return asr_fail_public(err, ASR_E_IO, "rescue make: %s: cannot size it: %s", d->path, strerror(errno));
    d->wrote_table = true;
    if ((rc = rescue_disk_partition(d->fd, d->path, esp, a->data_fs, &d->lay, err)))
        return rc;
    if (fsync(d->fd))
        return asr_fail_public(err, ASR_E_IO, "rescue make: %s: %s", d->path, strerror(errno));
    if ((rc = rescue_loop_attach(d->path, &d->lay.part[RESCUE_PART_ESP], d->esp_dev, sizeof d->esp_dev, err)) ||
        (rc = rescue_loop_attach(d->path, &d->lay.part[RESCUE_PART_DATA], d->data_dev, sizeof d->data_dev, err)) ||
        (rc = rescue_mkfs_esp(d->esp_dev, err)) || (rc = rescue_mkfs_data(d->data_dev, a->data_fs, a->label, err)))
        return rc;
    const char *dirs[] = {"::/EFI", "::/EFI/BOOT", "::/EFI/debian", "::/boot", "::/boot/grub", "::/asrimg"};
    for (size_t i = 0; !rc && i < sizeof dirs / sizeof dirs[0]; i++)
        rc = rescue_mtools(d->esp_dev, "mmd", dirs[i], NULL, "making the ESP's directories", err);
    if (!rc)
        rc = write_esp(d, env, 1, a->kernel_args, err);
    if (!rc)
        rc = rescue_grub_bios(d->fd, d->path, &d->lay, d->work, err);
    r->gen = 1;
    r->total_seconds = asr_now() - t0;
    return rc;
}

int rescue_make(int argc, char **argv)
{
    struct make_args a;
    int rc = parse_args(argc, argv, false, &a);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    struct drive d = {.path = a.drive, .fd = -1};
    struct rescue_env env = {0};
    struct report r = {.cmd = "rescue make", .data_fs = a.data_fs, .label = a.label};
    struct asr_error err = {0};
    rc = make(&a, &d, &env, &r, &err);
    int close_rc = drive_close(&d, rc != ASR_OK, &err);
    rc = rc ? rc : close_rc;
    if (rc) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    print_report(&d, &env, &r, a.json);
    return EXIT_OK;
}

/* ---- rescue update ---------------------------------------------------------------------------- */

/* The marker's env=env-N: N, or 0 when the marker is not one rescue make wrote. Its text comes
 * from the drive: untrusted, read by fixed rules. */
static unsigned parse_marker(const char *text, const char *data_guid, int *format)
{
    *format = -1;
    if (strncmp(text, "asrimg-rescue-drive\n", 20))
        return 0;
    unsigned gen = 0;
    bool data_ok = false;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        unsigned long v;
        char num[16];
        if (n > 7 && !strncmp(p, "format=", 7) && n - 7 < sizeof num) {
            memcpy(num, p + 7, n - 7), num[n - 7] = '\0';
            *format = cli_parse_uint(num, 1000000, &v) ? (int)v : -1;
        } else if (n > 8 && !strncmp(p, "env=env-", 8) && n - 8 < sizeof num) {
            memcpy(num, p + 8, n - 8), num[n - 8] = '\0';
            gen = cli_parse_uint(num, 100000000, &v) && v ? (unsigned)v : 0;
        } else if (n == 5 + 36 && !strncmp(p, "data=", 5)) {
            data_ok = !strncasecmp(p + 5, data_guid, 36);
        }
        p += n + (p[n] == '\n');
    }
    return data_ok ? gen : 0;
}

#define NOT_OURS "rescue update: %s is not a recovery drive made by asrimg rescue make (%s); nothing was written"

static int update(const struct make_args *a, struct drive *d, struct rescue_env *env, struct report *r,
                  struct asr_error *err)
{
    double t0 = asr_now();
    int rc = drive_open(d, err);
    if (!rc)
        rc = rescue_disk_read(d->fd, d->path, &d->lay, err);
    if (rc) {
        char why_not[ASR_ERROR_MSG_MAX];
        snprintf(why_not, sizeof why_not, "%s", err->msg);
        return asr_fail_public(err, ASR_E_ARG, NOT_OURS, d->path, why_not);
    }
    if (!d->lay.part[RESCUE_PART_ESP].number || !d->lay.part[RESCUE_PART_DATA].number ||
        !d->lay.part[RESCUE_PART_BIOS].number)
        return asr_fail_public(err, ASR_E_ARG, NOT_OURS, d->path, "no BIOS boot, EFI system and data partitions");
    if ((rc = rescue_loop_attach(d->path, &d->lay.part[RESCUE_PART_ESP], d->esp_dev, sizeof d->esp_dev, err)))
        return rc;
    char marker[4096];
    struct asr_error why;
    if (rescue_mtools_read(d->esp_dev, "::/" RESCUE_MARKER, marker, sizeof marker, &why))
        return asr_fail_public(err, ASR_E_ARG, NOT_OURS, d->path, "no /" RESCUE_MARKER " on its ESP");
    int format;
    unsigned gen = parse_marker(marker, d->lay.part[RESCUE_PART_DATA].guid, &format);
    if (format > RESCUE_FORMAT)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "rescue update: %s holds an environment of format %d, newer than this asrimg's %d: "
                               "update it with that asrimg", d->path, format, RESCUE_FORMAT);
    if (!gen || format != RESCUE_FORMAT)
        return asr_fail_public(err, ASR_E_ARG, NOT_OURS, d->path, "its ESP's marker is not one rescue make writes");
    if ((rc = mkwork(d, err)) || (rc = rescue_env_build(a->root, d->work, env, err)))
        return rc;
    r->env_seconds = env->seconds;
    r->old_gen = gen;
    r->gen = gen + 1;
    /* The kernel arguments stay as rescue make (or the last update) wrote them, unless given. */
    char kargs[KERNEL_ARGS_MAX] = "";
    const char *k = strstr(marker, "\nkernel_args=");
    if (a->kernel_args[0] || !k)
        snprintf(kargs, sizeof kargs, "%s", a->kernel_args);
    else
        snprintf(kargs, sizeof kargs, "%.*s", (int)strcspn(k + 13, "\n"), k + 13);
    if (!kernel_args_ok(kargs))
        kargs[0] = '\0';
    if ((rc = write_esp(d, env, r->gen, kargs, err))) {
        /* The old environment and its grub.cfg stay unless the marker moved on. */
        char dst[64];
        snprintf(dst, sizeof dst, "::/asrimg/env-%u", r->gen);
        rescue_mtools(d->esp_dev, "mdeltree", dst, NULL, "removing the unfinished environment", &why);
        return rc;
    }
    char old[64];
    snprintf(old, sizeof old, "::/asrimg/env-%u", gen);
    if ((rc = rescue_mtools(d->esp_dev, "mdeltree", old, NULL, "removing the old environment", err)))
        return rc;
    rc = rescue_grub_bios(d->fd, d->path, &d->lay, d->work, err);
    r->total_seconds = asr_now() - t0;
    return rc;
}

int rescue_update(int argc, char **argv)
{
    struct make_args a;
    int rc = parse_args(argc, argv, true, &a);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    struct drive d = {.path = a.drive, .fd = -1};
    struct rescue_env env = {0};
    struct report r = {.cmd = "rescue update"};
    struct asr_error err = {0};
    rc = update(&a, &d, &env, &r, &err);
    int close_rc = drive_close(&d, rc != ASR_OK, &err);
    rc = rc ? rc : close_rc;
    if (rc) {
        cli_error("%s", err.msg);
        return EXIT_FAIL;
    }
    print_report(&d, &env, &r, a.json);
    return EXIT_OK;
}
