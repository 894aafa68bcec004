/* UEFI variables through efivarfs: which firmware the machine booted with, and reading and
 * writing the global variables boot entries live in (Boot####, BootOrder). Each file is the
 * variable's 4-byte attributes then its data.
 *
 * Why not libefivar's efi_get_variable/efi_set_variable: libefivar 37 (Debian 12) takes its
 * efivarfs directory from EFIVARFS_PATH once, in a constructor before main, so tests cannot point
 * one process at a directory of their own (ASRIMG_EFIVARS_DIR, read at the call), and it reads a
 * variable whole whatever its size. These few calls bound every read by the caller's cap. */
#include "asr_engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "le.h"
#include <efivar/efivar.h> /* efivar-dp.h needs its types */

#define EFIVARS_DEFAULT "/sys/firmware/efi/efivars"
#define GLOBAL_GUID "8be4df61-93ca-11d2-aa0d-00e098032b8c" /* EFI_GLOBAL_VARIABLE */

const char *asr_efivars_dir(void)
{
    const char *d = getenv("ASRIMG_EFIVARS_DIR");
    return d && d[0] ? d : EFIVARS_DEFAULT;
}

uint8_t asr_firmware_booted(void)
{
    struct stat st;
    if (getenv("ASRIMG_EFIVARS_DIR") || stat("/sys/firmware/efi", &st) == 0)
        return ASR_FIRMWARE_UEFI;
    return stat("/sys/firmware", &st) == 0 ? ASR_FIRMWARE_BIOS : ASR_FIRMWARE_UNKNOWN;
}

bool asr_efivars_present(const char *dir)
{
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static void var_path(const char *dir, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s-%s", dir, name, GLOBAL_GUID);
}

bool asr_efivar_boot_name(const char *file, uint16_t *number)
{
    /* "Boot####-<global guid>", #### four upper-case hex digits as the UEFI spec names them */
    if (strncmp(file, "Boot", 4) || strlen(file) != 8 + 1 + strlen(GLOBAL_GUID) || file[8] != '-' ||
        strcmp(file + 9, GLOBAL_GUID))
        return false;
    unsigned v = 0;
    for (int i = 4; i < 8; i++) {
        char c = file[i];
        if (c >= '0' && c <= '9')
            v = v * 16 + (unsigned)(c - '0');
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (unsigned)(c - 'A' + 10);
        else
            return false;
    }
    *number = (uint16_t)v;
    return true;
}

int asr_efivar_read(const char *dir, const char *name, uint32_t *attrs, uint8_t *buf, size_t cap, size_t *len,
                    bool *found, struct asr_error *err)
{
    char path[4096];
    var_path(dir, name, path, sizeof path);
    *found = false;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return ASR_OK;
        return asr_fail_public(err, ASR_E_IO, "efivarfs: %s: %s", path, strerror(errno));
    }
    /* One read more than the cap tells a variable too large from one that fits. */
    uint8_t head[4];
    size_t got = 0, want = 4 + cap + 1;
    int rc = ASR_OK;
    while (got < want) {
        uint8_t *dst = got < 4 ? head + got : buf + (got - 4);
        size_t room = got < 4 ? 4 - got : (got - 4 < cap ? cap - (got - 4) : 0);
        uint8_t spare;
        if (room == 0)
            dst = &spare, room = 1;
        ssize_t n = read(fd, dst, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = asr_fail_public(err, ASR_E_IO, "efivarfs: %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (rc)
        return rc;
    if (got < 4)
        return asr_fail_public(err, ASR_E_CORRUPT, "efivarfs: %s: %zu bytes, shorter than its attributes", path, got);
    if (got - 4 > cap)
        return asr_fail_public(err, ASR_E_LIMIT, "efivarfs: %s: over %zu bytes", path, cap);
    *attrs = get_le32(head);
    *len = got - 4;
    *found = true;
    return ASR_OK;
}

/* efivarfs marks some variables immutable (chattr +i) so that a stray rm cannot brick firmware
 * that fails without them; writing or deleting one takes clearing the flag first, as efibootmgr
 * does. A directory of plain files (tests) may not support the flags at all. */
static void make_mutable(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    int flags;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
        flags &= ~FS_IMMUTABLE_FL;
        (void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    close(fd);
}

static bool is_efivarfs(const char *dir)
{
    struct statfs sf;
    return statfs(dir, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)EFIVARFS_MAGIC;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int asr_efivar_write(const char *dir, const char *name, uint32_t attrs, const uint8_t *data, size_t len,
                     struct asr_error *err)
{
    char path[4096], tmp[4200];
    var_path(dir, name, path, sizeof path);
    uint8_t *buf = malloc(4 + len);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    put_le32(buf, attrs);
    memcpy(buf + 4, data, len);
    int rc = ASR_OK;
    if (is_efivarfs(dir)) {
        /* One write() is one SetVariable(): attributes and data together replace the variable. */
        make_mutable(path);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ssize_t w = fd < 0 ? -1 : write(fd, buf, 4 + len);
        if (w != (ssize_t)(4 + len))
            rc = asr_fail_public(err, ASR_E_IO, "efivarfs: writing %s: %s", path,
                                 w < 0 ? strerror(errno) : "the variable was not taken whole");
        if (fd >= 0)
            close(fd);
    } else {
        /* A directory of files in efivarfs format: replaced whole, by rename. */
        snprintf(tmp, sizeof tmp, "%s.asrimg-new", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        bool ok = fd >= 0 && !write_all(fd, buf, 4 + len);
        int saved = errno;
        if (fd >= 0 && close(fd) && ok)
            ok = false, saved = errno;
        if (ok && rename(tmp, path))
            ok = false, saved = errno;
        if (!ok) {
            rc = asr_fail_public(err, ASR_E_IO, "efivars: writing %s: %s", path, strerror(saved));
            if (fd >= 0)
                unlink(tmp);
        }
    }
    free(buf);
    return rc;
}

int asr_efivar_list_boot(const char *dir, uint16_t *numbers, size_t cap, size_t *count, struct asr_error *err)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return asr_fail_public(err, ASR_E_IO, "efivarfs: %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d))) {
        uint16_t n;
        if (!asr_efivar_boot_name(de->d_name, &n))
            continue;
        if (*count == cap) {
            closedir(d);
            return asr_fail_public(err, ASR_E_LIMIT, "efivarfs: %s: over %zu Boot#### variables", dir, cap);
        }
        numbers[(*count)++] = n;
    }
    closedir(d);
    /* Directory order is the filesystem's: sorted, the entries read the same on every run. */
    for (size_t i = 1; i < *count; i++)
        for (size_t j = i; j > 0 && numbers[j - 1] > numbers[j]; j--) {
            uint16_t t = numbers[j];
            numbers[j] = numbers[j - 1];
            numbers[j - 1] = t;
        }
    return ASR_OK;
}

/* Whether a File() node's name is printable ASCII ended by its NUL, with nothing but NULs after:
 * libefivar's UCS-2 conversion mishandles anything else (fuzz_loadopt found a non-ASCII name with
 * bytes after its NUL make it memcpy a negative size, and non-ASCII names come out as garbage). */
static bool file_name_plain(const uint8_t *name, uint32_t len)
{
    bool ended = false;
    for (uint32_t i = 0; i + 1 < len; i += 2) {
        uint16_t c = (uint16_t)(name[i] | name[i + 1] << 8);
        if (c == 0)
            ended = true;
        else if (ended || c < 0x20 || c > 0x7e)
            return false;
    }
    return ended;
}

/* Whether libefivar can format every node of path: it trusts each node type's fixed size rather
 * than the node's length (fuzz_loadopt found it reading past a short node), so it is given only
 * paths of the nodes boot entries hold, each of its exact size: PciRoot() (12 bytes), Pci() (6),
 * HD() (42), File() (a plain name, see above) and End; any other is shown by its size only. */
static bool efivar_formats_safely(const uint8_t *path, uint32_t len)
{
    for (uint32_t at = 0; at + 4 <= len;) {
        uint8_t type = path[at], sub = path[at + 1];
        uint16_t node = (uint16_t)(path[at + 2] | path[at + 3] << 8);
        if (node < 4 || node > len - at)
            return false;
        bool hd = type == 4 && sub == 1 && node == 42;
        bool file = type == 4 && sub == 4 && node % 2 == 0 && file_name_plain(path + at + 4, node - 4u);
        bool end = type == 0x7f && node == 4;
        bool acpi = type == 2 && sub == 1 && node == 12, pci = type == 1 && sub == 1 && node == 6;
        if (!hd && !file && !end && !acpi && !pci)
            return false;
        at += node;
    }
    return true;
}

void asr_efi_path_text(const uint8_t *path, uint32_t len, char *out, size_t n)
{
    /* The caller's path passed asr_load_option_parse, so every node lies inside len. */
    if (!efivar_formats_safely(path, len)) {
        snprintf(out, n, "(a %u-byte device path)", (unsigned)len);
        return;
    }
    ssize_t need = efidp_format_device_path(NULL, 0, (const_efidp)path, (ssize_t)len);
    if (need <= 0 || (size_t)need > n || efidp_format_device_path(out, n, (const_efidp)path, (ssize_t)len) < 0)
        snprintf(out, n, "?");
}
