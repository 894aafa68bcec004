/* The recovery environment: a Debian kernel from --system-root and an initramfs built here (a
 * newc cpio through libarchive, zstd-compressed: Debian's kernels take zstd and gzip, and zstd
 * unpacks fastest) holding busybox (static), this very asrimg and the shared objects it runs with,
 * the storage, USB, keyboard and filesystem modules a PC needs with their dependencies, and the
 * /init script (cli/rescue_init.sh, embedded in asrimg at build time so the environment always
 * matches the asrimg that made it).
 *
 * The shared objects are those the dynamic loader mapped into this process when it started
 * (dl_iterate_phdr, before anything is dlopen'd): exactly the DT_NEEDED closure as ld.so resolved
 * it on this machine, with ld.so itself, found without parsing ldd's text or following ELF
 * dynamic entries and search paths a second time. libarchive is dlopen'd here, not linked: it
 * needs libxml2 and ICU (31 MiB of libicudata) that asrimg would otherwise carry into every
 * initramfs without ever using them there. */
#include "rescue_drive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "clock.h"

extern const unsigned char rescue_init_sh[];
extern const unsigned long rescue_init_sh_len;

/* The modules the environment loads, in this order (each after its dependencies). Missing ones
 * are built into the kernel or absent from it; either way there is nothing to load. */
static const char *const wanted_modules[] = {
    /* checksums ext4 and btrfs ask for by name (ext4's softdep), before what needs them */
    "crc32c_generic", "crc32c_intel",
    /* virtual machines */
    "virtio_pci", "virtio_blk", "virtio_scsi",
    /* NVMe (and Intel VMD in front of it), AHCI/SATA, older IDE-mode SATA, SCSI disks */
    "vmd", "nvme", "ahci", "ata_piix", "sd_mod",
    /* USB: host controllers, mass storage and UAS, keyboards for the shell and the questions */
    "xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usb_storage", "uas", "usbhid", "hid_generic",
    /* MMC/SD */
    "sdhci_pci", "sdhci_acpi", "rtsx_pci_sdmmc", "mmc_block",
    /* RAID and HBA controllers common in servers */
    "megaraid_sas", "mpt3sas", "hpsa", "aacraid", "smartpqi",
    /* the data partition's filesystems and their code pages, and the UEFI variables */
    "ext4", "vfat", "exfat", "nls_cp437", "nls_iso8859_1", "nls_utf8", "efivarfs",
};

#define MODULES_MAX 4096      /* files indexed under lib/modules/VER/kernel */
#define MODULE_BYTES_MAX (64u << 20) /* a .ko larger than this is not a driver we want */
#define LOAD_MAX 256          /* modules in the environment, dependencies included */

struct module {
    char *name; /* '-' as '_', as the kernel names it */
    char *path;
    bool seen, loaded;
};

struct modules {
    struct module v[MODULES_MAX];
    size_t n;
    const struct module *order[LOAD_MAX];
    size_t norder;
    bool compressed; /* a .ko.xz or .ko.zst seen: busybox insmod here takes only .ko */
};

static struct modules *index_target;

/* A path under --system-root (at most ROOT_MAX bytes, checked first, so none is cut short). */
#define ROOT_MAX 1024
__attribute__((format(printf, 2, 3))) static void pathf(char out[PATH_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
} /* nftw has no context pointer */

static void normalize(char *s)
{
    for (; *s; s++)
        if (*s == '-')
            *s = '_';
}

static int index_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (type != FTW_F)
        return 0;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t len = strlen(base);
    if (len > 7 && (!strcmp(base + len - 7, ".ko.zst") || (len > 6 && !strcmp(base + len - 6, ".ko.xz"))))
        index_target->compressed = true;
    if (len < 4 || strcmp(base + len - 3, ".ko") || index_target->n == MODULES_MAX)
        return 0;
    struct module *m = &index_target->v[index_target->n];
    m->name = strndup(base, len - 3);
    m->path = strdup(path);
    if (!m->name || !m->path) {
        free(m->name), free(m->path);
        return -1;
    }
    normalize(m->name);
    index_target->n++;
    return 0;
}

static struct module *module_find(struct modules *ms, const char *name)
{
    for (size_t i = 0; i < ms->n; i++)
        if (!strcmp(ms->v[i].name, name))
            return &ms->v[i];
    return NULL;
}

static void modules_free(struct modules *ms)
{
    for (size_t i = 0; i < ms->n; i++)
        free(ms->v[i].name), free(ms->v[i].path);
    free(ms);
}

/* Reads a whole file of at most max bytes: the bytes (malloc'd) and *len, or NULL with errno. */
static unsigned char *read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        int e = fstat(fd, &st) ? errno : EFBIG;
        close(fd);
        errno = e;
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        got += (size_t)n;
    }
    close(fd);
    if (buf)
        buf[got] = '\0';
    *len = got;
    return buf;
}

/* The "depends=" line of a module's .modinfo section, copied into out ("" when it has none).
 * The file is untrusted like any input: every offset is checked against its size. */
static bool modinfo_depends(const unsigned char *b, size_t len, char *out, size_t outlen)
{
    out[0] = '\0';
    if (len < sizeof(Elf64_Ehdr) || memcmp(b, ELFMAG, SELFMAG) || b[EI_CLASS] != ELFCLASS64 || b[EI_DATA] != ELFDATA2LSB)
        return false;
    Elf64_Ehdr eh;
    memcpy(&eh, b, sizeof eh);
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > len ||
        (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > len - eh.e_shoff || eh.e_shstrndx >= eh.e_shnum)
        return false;
    Elf64_Shdr strs;
    memcpy(&strs, b + eh.e_shoff + (size_t)eh.e_shstrndx * sizeof strs, sizeof strs);
    if (strs.sh_offset > len || strs.sh_size > len - strs.sh_offset)
        return false;
    for (size_t i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, b + eh.e_shoff + i * sizeof sh, sizeof sh);
        if (sh.sh_name >= strs.sh_size || sh.sh_offset > len || sh.sh_size > len - sh.sh_offset)
            continue;
        const char *name = (const char *)b + strs.sh_offset + sh.sh_name;
        if (strnlen(name, strs.sh_size - sh.sh_name) == strs.sh_size - sh.sh_name || strcmp(name, ".modinfo"))
            continue;
        const char *p = (const char *)b + sh.sh_offset, *end = p + sh.sh_size;
        while (p < end) {
            size_t n = strnlen(p, (size_t)(end - p));
            if (n > 8 && !strncmp(p, "depends=", 8) && n - 8 < outlen) {
                memcpy(out, p + 8, n - 8);
                out[n - 8] = '\0';
            }
            p += n + 1;
        }
        return true;
    }
    return false;
}

/* Puts m after its dependencies in the load order (depth first; a cycle is cut where it closes). */
static int module_add(struct modules *ms, struct module *m, int depth, struct asr_error *err)
{
    if (m->loaded || m->seen)
        return ASR_OK;
    if (depth > 32 || ms->norder == LOAD_MAX)
        return asr_fail_public(err, ASR_E_CORRUPT, "rescue: kernel module %s: dependencies too deep or too many", m->name);
    m->seen = true;
    size_t len;
    unsigned char *b = read_file(m->path, MODULE_BYTES_MAX, &len);
    if (!b)
        return asr_fail_public(err, ASR_E_IO, "rescue: cannot read the kernel module %s: %s", m->path, strerror(errno));
    char deps[1024];
    bool ok = modinfo_depends(b, len, deps, sizeof deps);
    free(b);
    if (!ok)
        return asr_fail_public(err, ASR_E_CORRUPT, "rescue: kernel module %s: not an ELF module with a .modinfo", m->path);
    for (char *save = NULL, *d = strtok_r(deps, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
        normalize(d);
        struct module *dep = module_find(ms, d);
        if (!dep)
            return asr_fail_public(err, ASR_E_CORRUPT, "rescue: kernel module %s needs %s, which %s/.. does not hold",
                                   m->name, d, m->path);
        int rc = module_add(ms, dep, depth + 1, err);
        if (rc)
            return rc;
    }
    m->loaded = true;
    ms->order[ms->norder++] = m;
    return ASR_OK;
}

static int modules_select(const char *dir, struct modules *ms, size_t *missing, struct asr_error *err)
{
    char kernel_dir[PATH_MAX];
    pathf(kernel_dir, "%s/kernel", dir);
    index_target = ms;
    if (nftw(kernel_dir, index_one, 16, FTW_PHYS))
        return asr_fail_public(err, ASR_E_IO, "rescue: cannot list the kernel modules in %s: %s", kernel_dir,
                               strerror(errno));
    if (!ms->n && ms->compressed)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "rescue: the kernel modules in %s are compressed (.ko.xz/.ko.zst); the environment "
                               "loads plain .ko modules (Debian 12's linux-image packages ship them so)", kernel_dir);
    *missing = 0;
    for (size_t i = 0; i < sizeof wanted_modules / sizeof wanted_modules[0]; i++) {
        struct module *m = module_find(ms, wanted_modules[i]);
        if (!m) {
            ++*missing;
            continue;
        }
        int rc = module_add(ms, m, 0, err);
        if (rc)
            return rc;
    }
    return ASR_OK;
}

/* ---- the shared objects this process runs with ----------------------------------------------- */

#define LIBS_MAX 64

struct libs {
    char *path[LIBS_MAX];
    size_t n;
    bool overflow;
};

static int collect_lib(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct libs *l = data;
    /* The program itself has no name here, and the vDSO no path: neither is a file to copy. */
    if (!info->dlpi_name || info->dlpi_name[0] != '/')
        return 0;
    if (l->n == LIBS_MAX) {
        l->overflow = true;
        return 1;
    }
    l->path[l->n] = strdup(info->dlpi_name);
    if (l->path[l->n])
        l->n++;
    return 0;
}

/* ---- libarchive, loaded when an initramfs is written ------------------------------------------ */

#define ARCHIVE_FUNCTIONS(X)                                                                                          \
    X(archive_write_new) X(archive_write_set_format_cpio_newc) X(archive_write_add_filter_zstd)                       \
    X(archive_write_add_filter_gzip) X(archive_write_open_filename) X(archive_error_string) X(archive_entry_new)      \
    X(archive_entry_set_pathname) X(archive_entry_set_mode) X(archive_entry_set_uid) X(archive_entry_set_gid)         \
    X(archive_entry_set_mtime) X(archive_entry_set_nlink) X(archive_entry_set_symlink) X(archive_entry_set_rdev)      \
    X(archive_entry_set_size) X(archive_write_header) X(archive_entry_free) X(archive_write_data)                     \
    X(archive_write_close) X(archive_write_free)

static struct {
#define MEMBER(f) __typeof__(f) *f;
    ARCHIVE_FUNCTIONS(MEMBER)
#undef MEMBER
} la;

static int load_libarchive(struct asr_error *err)
{
    static void *handle;
    if (handle)
        return ASR_OK;
    void *h = dlopen("libarchive.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return asr_fail_public(err, ASR_E_ARG, "rescue: cannot load libarchive.so.13 (Debian package libarchive13): %s",
                               dlerror());
#define LOAD(f)                                                                                                        \
    if (!(*(void **)&la.f = dlsym(h, #f)))                                                                             \
        return asr_fail_public(err, ASR_E_ARG, "rescue: libarchive.so.13 has no %s", #f);
    ARCHIVE_FUNCTIONS(LOAD)
#undef LOAD
    handle = h;
    return ASR_OK;
}

/* ---- the cpio archive ------------------------------------------------------------------------ */

struct cpio {
    struct archive *a;
    const char *path; /* for messages */
    struct asr_error *err;
};

static int cpio_fail(struct cpio *c, const char *what)
{
    return asr_fail_public(c->err, ASR_E_IO, "rescue: writing the initramfs %s: %s: %s", c->path, what,
                           la.archive_error_string(c->a) ? la.archive_error_string(c->a) : "failed");
}

static int cpio_entry(struct cpio *c, const char *name, mode_t mode, const void *data, size_t len, const char *link,
                      dev_t rdev)
{
    struct archive_entry *e = la.archive_entry_new();
    if (!e)
        return asr_fail_public(c->err, ASR_E_NOMEM, "rescue: out of memory");
    la.archive_entry_set_pathname(e, name);
    la.archive_entry_set_mode(e, mode);
    la.archive_entry_set_uid(e, 0);
    la.archive_entry_set_gid(e, 0);
    la.archive_entry_set_mtime(e, 0, 0); /* the same inputs make the same archive */
    la.archive_entry_set_nlink(e, S_ISDIR(mode) ? 2 : 1);
    if (link)
        la.archive_entry_set_symlink(e, link);
    if (S_ISCHR(mode))
        la.archive_entry_set_rdev(e, rdev);
    la.archive_entry_set_size(e, S_ISREG(mode) ? (la_int64_t)len : 0);
    int rc = la.archive_write_header(c->a, e);
    la.archive_entry_free(e);
    if (rc != ARCHIVE_OK)
        return cpio_fail(c, name);
    if (S_ISREG(mode) && len && la.archive_write_data(c->a, data, len) != (la_ssize_t)len)
        return cpio_fail(c, name);
    return ASR_OK;
}

/* The directories leading to name ("lib/x86_64-linux-gnu/x.so" adds "lib", then
 * "lib/x86_64-linux-gnu"), each once: cpio needs them before what they hold. */
struct dirs {
    char *v[128];
    size_t n;
};

static int cpio_parents(struct cpio *c, struct dirs *d, const char *name)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        bool have = false;
        for (size_t i = 0; i < d->n && !have; i++)
            have = !strcmp(d->v[i], buf);
        if (!have) {
            if (d->n == sizeof d->v / sizeof d->v[0] || !(d->v[d->n] = strdup(buf)))
                return asr_fail_public(c->err, ASR_E_NOMEM, "rescue: too many directories in the initramfs");
            d->n++;
            int rc = cpio_entry(c, buf, S_IFDIR | 0755, NULL, 0, NULL, 0);
            if (rc)
                return rc;
        }
        *s = '/';
    }
    return ASR_OK;
}

/* A file of the host (followed through symlinks) as name in the archive; its size added to *sum. */
static int cpio_file(struct cpio *c, struct dirs *d, const char *name, const char *from, mode_t perm, uint64_t *sum,
                     const char *package)
{
    size_t len;
    unsigned char *b = read_file(from, 256u << 20, &len);
    if (!b)
        return asr_fail_public(c->err, ASR_E_IO, "rescue: cannot read %s%s%s%s: %s", from, package ? " (from the Debian package " : "",
                               package ? package : "", package ? ")" : "", strerror(errno));
    int rc = cpio_parents(c, d, name);
    if (!rc)
        rc = cpio_entry(c, name, S_IFREG | perm, b, len, NULL, 0);
    free(b);
    if (sum)
        *sum += len;
    return rc;
}

/* ---- finding the pieces ---------------------------------------------------------------------- */

static bool is_file(const char *path)
{
    struct stat st;
    return !stat(path, &st) && S_ISREG(st.st_mode);
}

static int need(const char *path, const char *what, const char *package, struct asr_error *err)
{
    if (is_file(path))
        return ASR_OK;
    return asr_fail_public(err, ASR_E_ARG, "rescue: no %s at %s (Debian package %s)", what, path, package);
}

/* The running kernel when root is / and its image is there; else the newest vmlinuz-VER in
 * ROOT/boot that has ROOT/lib/modules/VER. */
static int find_kernel(struct rescue_env *env, struct asr_error *err)
{
    struct utsname u;
    char path[PATH_MAX], mods[PATH_MAX];
    if (!strcmp(env->root, "/") && !uname(&u)) {
        snprintf(path, sizeof path, "/boot/vmlinuz-%s", u.release);
        snprintf(mods, sizeof mods, "/lib/modules/%s/kernel", u.release);
        if (is_file(path) && !access(mods, R_OK)) {
            snprintf(env->kver, sizeof env->kver, "%s", u.release);
            pathf(env->kernel, "%s", path);
            return ASR_OK;
        }
    }
    char boot[PATH_MAX];
    pathf(boot, "%s/boot", env->root);
    DIR *dir = opendir(boot);
    env->kver[0] = '\0';
    for (struct dirent *de; dir && (de = readdir(dir));) {
        const char *v = de->d_name + 8;
        if (strncmp(de->d_name, "vmlinuz-", 8) || strlen(v) >= sizeof env->kver)
            continue;
        pathf(path, "%s/%s", boot, de->d_name);
        pathf(mods, "%s/lib/modules/%s/kernel", env->root, v);
        if (!is_file(path) || access(mods, R_OK) || (env->kver[0] && strverscmp(v, env->kver) <= 0))
            continue;
        snprintf(env->kver, sizeof env->kver, "%s", v);
        pathf(env->kernel, "%s", path);
    }
    if (dir)
        closedir(dir);
    if (!env->kver[0])
        return asr_fail_public(err, ASR_E_ARG,
                               "rescue: no kernel in %s (vmlinuz-VERSION with its lib/modules/VERSION; Debian "
                               "package linux-image-amd64)", boot);
    return ASR_OK;
}

static const char *busybox_path(void)
{
    static const char *const where[] = {"/bin/busybox", "/usr/bin/busybox", "/sbin/busybox"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
        if (is_file(where[i]))
            return where[i];
    return NULL;
}

/* A dynamically linked busybox would need its own libraries in the initramfs: the static one is
 * what Debian's busybox-static installs. */
static bool elf_static(const char *path)
{
    size_t len;
    unsigned char *b = read_file(path, 64u << 20, &len);
    if (!b)
        return false;
    bool ok = false;
    Elf64_Ehdr eh;
    if (len >= sizeof eh && !memcmp(b, ELFMAG, SELFMAG) && b[EI_CLASS] == ELFCLASS64) {
        memcpy(&eh, b, sizeof eh);
        ok = eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phoff <= len &&
             (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) <= len - eh.e_phoff;
        for (size_t i = 0; ok && i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            memcpy(&ph, b + eh.e_phoff + i * sizeof ph, sizeof ph);
            ok = ph.p_type != PT_INTERP;
        }
    }
    free(b);
    return ok;
}

/* ---- the initramfs --------------------------------------------------------------------------- */

static int add_modules(struct cpio *c, struct dirs *d, struct rescue_env *env, struct asr_error *err)
{
    char dir[PATH_MAX];
    pathf(dir, "%s/lib/modules/%s", env->root, env->kver);
    struct modules *ms = calloc(1, sizeof *ms);
    if (!ms)
        return asr_fail_public(err, ASR_E_NOMEM, "rescue: out of memory");
    int rc = modules_select(dir, ms, &env->modules_missing, err);
    /* The load order, one name a line: the init loads them so, no modules.dep needed. */
    char *list = calloc(ms->norder + 1, 64);
    size_t at = 0;
    if (!rc && !list)
        rc = asr_fail_public(err, ASR_E_NOMEM, "rescue: out of memory");
    for (size_t i = 0; !rc && i < ms->norder; i++) {
        char name[PATH_MAX];
        snprintf(name, sizeof name, "lib/modules/%s.ko", ms->order[i]->name);
        rc = cpio_file(c, d, name, ms->order[i]->path, 0644, &env->modules_bytes, NULL);
        at += (size_t)snprintf(list + at, 64, "%.62s\n", ms->order[i]->name);
    }
    env->modules = ms->norder;
    if (!rc)
        rc = cpio_entry(c, "lib/modules/load.list", S_IFREG | 0644, list, at, NULL, 0);
    free(list);
    modules_free(ms);
    return rc;
}

static int add_programs(struct cpio *c, struct dirs *d, struct rescue_env *env, const struct libs *l,
                        struct asr_error *err)
{
    const char *bb = busybox_path();
    if (!bb || !elf_static(bb))
        return asr_fail_public(err, ASR_E_ARG, "rescue: no static busybox at /bin/busybox (Debian package busybox-static)");
    int rc = cpio_file(c, d, "bin/busybox", bb, 0755, NULL, NULL);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!rc && n <= 0)
        rc = asr_fail_public(err, ASR_E_IO, "rescue: cannot find this asrimg (/proc/self/exe): %s", strerror(errno));
    if (!rc) {
        self[n] = '\0';
        rc = cpio_file(c, d, "usr/bin/asrimg", "/proc/self/exe", 0755, NULL, NULL);
    }
    for (size_t i = 0; !rc && i < l->n; i++)
        rc = cpio_file(c, d, l->path[i] + 1, l->path[i], 0755, &env->libs_bytes, NULL);
    env->libs = l->n;
    return rc;
}

static int write_initrd(struct rescue_env *env, const struct libs *l, struct asr_error *err)
{
    struct cpio c = {la.archive_write_new(), env->initrd, err};
    if (!c.a)
        return asr_fail_public(err, ASR_E_NOMEM, "rescue: out of memory");
    env->compression = "zstd";
    int rc = la.archive_write_set_format_cpio_newc(c.a) != ARCHIVE_OK ? cpio_fail(&c, "newc cpio") : ASR_OK;
    if (!rc && la.archive_write_add_filter_zstd(c.a) != ARCHIVE_OK) {
        env->compression = "gzip";
        if (la.archive_write_add_filter_gzip(c.a) != ARCHIVE_OK)
            rc = cpio_fail(&c, "compression");
    }
    if (!rc && la.archive_write_open_filename(c.a, env->initrd) != ARCHIVE_OK)
        rc = cpio_fail(&c, "create");
    struct dirs d = {0};
    static const char *const dirs[] = {"dev", "proc", "sys", "run", "tmp", "mnt", "mnt/rescue", "sbin", "usr",
                                       "usr/sbin", "etc", "root"};
    for (size_t i = 0; !rc && i < sizeof dirs / sizeof dirs[0]; i++)
        rc = cpio_entry(&c, dirs[i], S_IFDIR | (strcmp(dirs[i], "tmp") ? 0755 : 01777), NULL, 0, NULL, 0);
    /* The kernel opens /dev/console for init's output before anything mounts devtmpfs. */
    if (!rc)
        rc = cpio_entry(&c, "dev/console", S_IFCHR | 0600, NULL, 0, NULL, makedev(5, 1));
    if (!rc)
        rc = cpio_entry(&c, "init", S_IFREG | 0755, rescue_init_sh, rescue_init_sh_len, NULL, 0);
    char release[256];
    int rl = snprintf(release, sizeof release, "format=%d\nasrimg=%s\nkernel=%s\n", RESCUE_FORMAT, asr_version(),
                      env->kver);
    if (!rc)
        rc = cpio_entry(&c, "etc/asrimg-rescue", S_IFREG | 0644, release, (size_t)rl, NULL, 0);
    if (!rc)
        rc = add_programs(&c, &d, env, l, err);
    if (!rc)
        rc = add_modules(&c, &d, env, err);
    for (size_t i = 0; i < d.n; i++)
        free(d.v[i]);
    if (la.archive_write_close(c.a) != ARCHIVE_OK && !rc)
        rc = cpio_fail(&c, "finish");
    la.archive_write_free(c.a);
    return rc;
}

int rescue_env_build(const char *root, const char *workdir, struct rescue_env *env, struct asr_error *err)
{
    *env = (struct rescue_env){0};
    double t0 = asr_now();
    if (strlen(root) > ROOT_MAX || strlen(workdir) > ROOT_MAX)
        return asr_fail_public(err, ASR_E_ARG, "rescue: --system-root %.64s...: longer than %d bytes", root, ROOT_MAX);
    pathf(env->root, "%s", root);
    int rc = find_kernel(env, err);
    if (rc)
        return rc;
    pathf(env->shim, "%s/usr/lib/shim/shimx64.efi.signed", root);
    pathf(env->grub_efi, "%s/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", root);
    if ((rc = need(env->shim, "signed shim", "shim-signed", err)) ||
        (rc = need(env->grub_efi, "signed GRUB for UEFI", "grub-efi-amd64-signed", err)) ||
        (rc = need("/usr/lib/grub/i386-pc/boot.img", "GRUB for BIOS", "grub-pc-bin", err)))
        return rc;
    struct stat st;
    if (!stat(env->kernel, &st))
        env->kernel_bytes = (uint64_t)st.st_size;
    if (!stat(env->shim, &st))
        env->efi_bytes += (uint64_t)st.st_size;
    if (!stat(env->grub_efi, &st))
        env->efi_bytes += (uint64_t)st.st_size;
    pathf(env->initrd, "%s/initrd.img", workdir);
    /* What asrimg started with, before libarchive joins it. */
    struct libs l = {0};
    dl_iterate_phdr(collect_lib, &l);
    if (l.overflow)
        rc = asr_fail_public(err, ASR_E_LIMIT, "rescue: asrimg runs with more than %d shared objects", LIBS_MAX);
    if (!rc)
        rc = load_libarchive(err);
    if (!rc)
        rc = write_initrd(env, &l, err);
    for (size_t i = 0; i < l.n; i++)
        free(l.path[i]);
    if (rc)
        return rc;
    if (!stat(env->initrd, &st))
        env->initrd_bytes = (uint64_t)st.st_size;
    env->seconds = asr_now() - t0;
    return ASR_OK;
}

uint64_t rescue_env_bytes(const struct rescue_env *env)
{
    return env->kernel_bytes + env->initrd_bytes;
}
