/* What each partition of a disk holds and how a backup takes it: probing with libblkid, used
 * bytes from the filesystem's own metadata (full capture, with the reason, when that is not
 * possible), and ASR's "critical volume" decision (needed to boot) with the reason for it. */
#include "analyze.h"
#include "fs_ext_internal.h"
#include "guid.h"
#include "probe.h"
#include "readat.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- partition types ------------------------------------------------------------------- */

struct critical_type {
    const char *guid; /* as written, first three fields big-endian */
    const char *why;
};

static const struct critical_type critical_gpt_types[] = {
    {"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System partition"},
    {"21686148-6449-6E6F-744E-656564454649", "BIOS boot partition (GRUB core)"},
    {"E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft Reserved partition"},
    {"BC13C2FF-59E6-4262-A352-B275FD6F7172", "Linux extended boot (XBOOTLDR) partition"},
    {"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux root (x86-64) partition type"},
    {"44479540-F297-41B2-9AF7-D131D5F0458A", "Linux root (x86) partition type"},
    {"B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "Linux root (ARM64) partition type"},
    {"69DAD710-2CE4-4E3C-B16C-21A1D49ABED3", "Linux root (ARM) partition type"},
    {"8484680C-9521-48C6-9C11-B0720656F69E", "Linux /usr (x86-64) partition type"},
    {"B0E01050-EE5F-4390-949A-9101B17104E9", "Linux /usr (ARM64) partition type"},
};

/* Types whose contents have no filesystem to read: captured whole (zero blocks elided). */
static const char *const whole_gpt_types[] = {
    "21686148-6449-6E6F-744E-656564454649", /* BIOS boot */
    "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", /* Microsoft Reserved */
};

/* ---- probing and used maps --------------------------------------------------------------- */

/* Fills m's type, uuid and label as libblkid finds them. Returns probe_window's status: 1
 * found, 0 nothing found, -1 an error, -2 ambivalent, and below that a read's -errno. */
static int probe_once(const struct asr_window *w, struct asr_usedmap *m)
{
    struct probe found;
    int rc = probe_window(w, NULL, &found);
    if (rc == 1) {
        memcpy(m->fs_type, found.type, sizeof m->fs_type);
        memcpy(m->fs_uuid, found.uuid, sizeof m->fs_uuid);
        memcpy(m->fs_label, found.label, sizeof m->fs_label);
    }
    return rc;
}

/* probe_once, tried again when a read failed (readat.h: it may go away). When it does not, why
 * says what and where, which libblkid does not: it reads the first 256 KiB of a volume at once,
 * where most filesystems keep their superblock, descriptors or $MFT. Each used-map parser is
 * asked in turn (each checks its own signature first and reads only what it needs): the first
 * to meet a read error names the structure and the sector (not the type: a bad first sector
 * fails whichever parser asks first). Failing that, the volume's first MiB
 * is read sector by sector to name the bad one, and failing that the volume is named. */
static bool probe(const struct asr_window *w, struct asr_usedmap *m, char *why, size_t n)
{
    int rc = probe_once(w, m);
    for (int i = 1; i < ASR_READ_TRIES && rc < -2; i++)
        rc = probe_once(w, m);
    if (rc >= -2)
        return true;
    static const asr_used_fn parsers[] = {asr_ntfs_used, asr_exfat_used, asr_ext_used, asr_xfs_used, asr_btrfs_used,
                                          asr_fat_used};
    for (size_t i = 0; i < sizeof parsers / sizeof parsers[0]; i++) {
        struct asr_usedmap tried = {0};
        struct asr_error err = {0};
        int prc = parsers[i](w, &tried, &err);
        asr_usedmap_free(&tried);
        if (prc == ASR_E_IO) {
            snprintf(why, n, "cannot probe its filesystem type: %.250s", err.msg);
            return false;
        }
    }
    size_t len = w->size < (1u << 20) ? (size_t)w->size : 1u << 20;
    uint8_t *head = malloc(len);
    struct asr_error err = {0};
    if (head && asr_window_read(w, NULL, 0, head, len, &err) == ASR_E_IO)
        snprintf(why, n, "cannot probe its filesystem type: %.250s", err.msg);
    else
        snprintf(why, n, "cannot probe its filesystem type: a read of %.200s between bytes %llu and %llu failed: %s",
                 w->path, (unsigned long long)w->base, (unsigned long long)(w->base + w->size), strerror(-rc));
    free(head);
    return false;
}

/* Fills v->map and v->natural_capture, with the reason in v->warning when the capture is whole.
 * Returns the parser's status (ASR_OK when there was no parser to ask), which decide_critical
 * uses to know whether the filesystem's metadata can be trusted. */
int analyze_map_volume(const struct asr_window *w, bool no_filesystem_type, struct asr_volume_info *v)
{
    if (!probe(w, &v->map, v->read_error, sizeof v->read_error)) {
        /* Not "no filesystem recognised": the filesystem may be there, behind a bad sector. */
        snprintf(v->warning, sizeof v->warning, "%.300s: captured whole", v->read_error);
        v->natural_capture = ASR_CAPTURE_FULL;
        return ASR_E_IO;
    }
    char fs[32], uuid[64], label[64];
    memcpy(fs, v->map.fs_type, sizeof fs);
    memcpy(uuid, v->map.fs_uuid, sizeof uuid);
    memcpy(label, v->map.fs_label, sizeof label);
    v->natural_capture = ASR_CAPTURE_FULL;
    if (no_filesystem_type) {
        snprintf(v->warning, sizeof v->warning, "%s partitions hold no filesystem: captured whole, zero blocks elided",
                 v->type_name);
        return ASR_OK;
    }
    asr_used_fn parse = asr_used_parser(fs);
    if (!parse) {
        snprintf(v->warning, sizeof v->warning, "%s: captured whole, zero blocks elided",
                 fs[0] ? "filesystem type not supported for used-block capture" : "no filesystem recognised");
        if (fs[0])
            snprintf(v->warning + strlen(v->warning), sizeof v->warning - strlen(v->warning), " (%s)", fs);
        return ASR_OK;
    }
    struct asr_error why = {0};
    int rc = parse(w, &v->map, &why);
    /* A hibernated swap area is captured whole, not by its header. Its pages are the memory image
     * the machine resumes from, and the header says there is one: restored header-only, the
     * kernel would try to resume from whatever the restore target held in those pages. At best
     * it refuses (a compressed image carries a CRC) and the machine boots as after a crash; at
     * worst (an uncompressed image has none) it runs garbage over every filesystem it had
     * mounted. Restored whole, with the disks it was hibernated with, it resumes as it would
     * have. Rewriting the header to plain swap instead would throw the session away behind the
     * user's back, and a backup never changes what it copies. Correct over small: the cost is
     * the size of the image, and the warning says where it went. */
    if (rc == ASR_OK && parse == asr_swap_used && strcmp(fs, "swap") != 0)
        /* blkid saw a hibernation signature the header parser did not: trust the warier one. */
        rc = asr_fail_public(&why, ASR_E_UNSUPPORTED, "swap: blkid reports a hibernation image (%s)", fs);
    if (rc != ASR_OK) {
        /* Listed by blkid's names, whatever the parser had filled in before it stopped. */
        asr_usedmap_free(&v->map);
        memcpy(v->map.fs_type, fs, sizeof fs);
        memcpy(v->map.fs_uuid, uuid, sizeof uuid);
        memcpy(v->map.fs_label, label, sizeof label);
        if (rc == ASR_E_IO) /* a read error, not metadata to distrust: a backup stops on it */
            snprintf(v->read_error, sizeof v->read_error, "%.31s metadata: %.270s", fs, why.msg);
        if (rc == ASR_E_UNSUPPORTED && parse == asr_swap_used)
            snprintf(v->warning, sizeof v->warning,
                     "%.200s: captured whole, since the machine resumes from these pages", why.msg);
        else
            snprintf(v->warning, sizeof v->warning, "%.31s metadata unusable (%.250s): captured whole", fs, why.msg);
        return rc;
    }
    v->natural_capture = parse == asr_swap_used ? ASR_CAPTURE_HEADER : ASR_CAPTURE_USED;
    snprintf(v->warning, sizeof v->warning, "%s", v->map.note); /* what the map took beyond its bitmap */
    /* blkid's view of the names wins where the parser had none. */
    memcpy(v->map.fs_type, fs, sizeof fs);
    if (!v->map.fs_uuid[0])
        memcpy(v->map.fs_uuid, uuid, sizeof uuid);
    if (!v->map.fs_label[0])
        memcpy(v->map.fs_label, label, sizeof label);
    return ASR_OK;
}

uint64_t asr_volume_capture_bytes(const struct asr_volume_info *v)
{
    if (v->capture == ASR_CAPTURE_SKIP)
        return 0;
    return v->capture == ASR_CAPTURE_FULL ? v->size_bytes : asr_ranges_bytes(&v->map.used);
}

/* ---- critical volumes ---------------------------------------------------------------------- */

/* Is this volume mounted at a boot-critical point on this machine, under any name the kernel
 * gives it (asr_volume_mounts): a partition of the disk, a loop device at its offset, or a device
 * stacked on it, as a root on LVM or dm-crypt is. */
static bool mounted_critical(const struct asr_disk *d, const struct asr_volume_info *v, char *why, size_t n)
{
    static const char *const points[] = {"/", "/boot", "/boot/efi", "/usr"};
    struct asr_mounts m;
    struct asr_error err = {0};
    if (asr_volume_mounts(d, v, &m, &err) != ASR_OK)
        return false;
    bool found = false;
    for (size_t i = 0; i < m.n && !found; i++)
        for (size_t k = 0; k < sizeof points / sizeof points[0] && !found; k++)
            if (!strcmp(m.v[i].point, points[k])) {
                found = true;
                snprintf(why, n, "mounted at %s on this machine", points[k]);
            }
    asr_mounts_free(&m);
    return found;
}

struct boot_dir_scan {
    bool found;
};

static int find_kernel(struct ext2_dir_entry *de, int offset, int blocksize, char *buf, void *priv)
{
    (void)offset, (void)blocksize, (void)buf;
    struct boot_dir_scan *s = priv;
    int len = ext2fs_dirent_name_len(de);
    if (len >= 7 && strncmp(de->name, "vmlinuz", 7) == 0) {
        s->found = true;
        return DIRENT_ABORT;
    }
    return 0;
}

/* Contents that show a Linux filesystem is needed to boot, read with libext2fs (no mount) through
 * the same window I/O manager as the used map (fs_ext_internal.h): a directory whose blocks point
 * past the partition reads nothing from the next one, and the reason then says so. map_rc is what
 * asr_ext_used said of this volume. */
static bool ext_boot_content(const struct asr_window *w, int map_rc, char *why, size_t n)
{
    /* Trust follows the map's checks. A refusal for a journal the map cannot replay
     * (ASR_E_UNSUPPORTED: on another device, fast commits) means its bitmaps may be stale, not its
     * directories unreadable: the root filesystem of a disk copied from a running or crashed
     * machine is just that, and must still be found critical (ext_open checks its structure
     * again). Any other
     * refusal means the superblock, descriptors or bitmap failed their checks or could not be
     * read: names found through such metadata are no evidence either way, and libext2fs is not
     * hardened against it. The volume is then not looked into, and the reason says so, so that
     * the listing shows why a volume that may be a root filesystem is not selected by default
     * (its map warning says what failed; --volumes still takes it, whole). */
    if (map_rc != ASR_OK && map_rc != ASR_E_UNSUPPORTED) {
        snprintf(why, n, "nothing shows it is needed to boot (ext metadata failed its checks: contents not read)");
        return false;
    }
    struct ext_io io;
    ext2_filsys fs;
    struct asr_error err = {0};
    if (ext_open(w, &io, &fs, &err) != ASR_OK) {
        snprintf(why, n, "nothing shows it is needed to boot (ext contents unreadable: %.90s)", err.msg);
        return false;
    }
    static const char *const paths[] = {"/boot/grub", "/boot/grub2", "/loader", "/etc/fstab", "/etc/os-release",
                                        "/grub", "/grub2"};
    bool found = false;
    ext2_ino_t ino;
    for (size_t i = 0; !found && i < sizeof paths / sizeof paths[0]; i++) {
        io.left = EXT_LOOKUP_READ_LIMIT;
        if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, paths[i], &ino) == 0) {
            snprintf(why, n, "holds %s", paths[i]);
            found = true;
        }
    }
    static const char *const kernel_dirs[] = {"/boot", "/"};
    for (size_t i = 0; !found && i < 2; i++) {
        struct boot_dir_scan scan = {false};
        io.left = EXT_LOOKUP_READ_LIMIT;
        if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, kernel_dirs[i], &ino) == 0 &&
            ext2fs_dir_iterate(fs, ino, 0, NULL, find_kernel, &scan) == 0 && scan.found) {
            snprintf(why, n, "holds %svmlinuz*", i == 0 ? "/boot/" : "/");
            found = true;
        }
    }
    ext2fs_close_free(&fs);
    /* A name found is evidence even if some other read failed; nothing found after a refused
     * read is no evidence of absence. */
    if (!found && io.refused)
        snprintf(why, n, "nothing shows it is needed to boot (ext directories unreadable: %.90s)", io.why.msg);
    return found;
}

/* Contents that show an NTFS volume is needed to boot Windows, read through the window
 * (ntfs_lookup.c), so a disk image from another machine is judged like a live disk. A volume whose
 * directories cannot be read says so in the reason rather than passing silently as data. */
static bool ntfs_boot_content(const struct asr_window *w, char *why, size_t n)
{
    static const struct {
        const char *path, *why;
        bool dir;
    } marks[] = {
        {"/Windows/System32", "holds \\Windows\\System32: a Windows system volume", true},
        {"/bootmgr", "holds \\bootmgr: the Windows Boot Manager", false},
    };
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        bool found, dir;
        struct asr_error err = {0};
        if (asr_ntfs_lookup(w, marks[i].path, &found, &dir, &err) != ASR_OK) {
            snprintf(why, n, "nothing shows it is needed to boot (NTFS directories unreadable: %.80s)", err.msg);
            return false;
        }
        if (found && dir == marks[i].dir) {
            snprintf(why, n, "%s", marks[i].why);
            return true;
        }
    }
    return false;
}

static void decide_critical(const struct asr_disk *d, const struct asr_partition_desc *p, const struct asr_window *w,
                            int map_rc, struct asr_volume_info *v)
{
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    if (p && dd->label == ASR_LABEL_GPT) {
        char g[ASR_GUID_TEXT];
        asr_guid_text(p->type_guid, ASR_GUID_GPT | ASR_GUID_UPPER, g);
        for (size_t i = 0; i < sizeof critical_gpt_types / sizeof critical_gpt_types[0]; i++)
            if (strcmp(g, critical_gpt_types[i].guid) == 0) {
                v->critical = true;
                snprintf(v->reason, sizeof v->reason, "%s", critical_gpt_types[i].why);
                return;
            }
    }
    if (p && dd->label == ASR_LABEL_MBR && (p->bootable || p->mbr_type == 0xef)) {
        v->critical = true;
        snprintf(v->reason, sizeof v->reason, "%s", p->bootable ? "active (bootable) MBR partition" : "EFI System (type 0xef)");
        return;
    }
    if (mounted_critical(d, v, v->reason, sizeof v->reason)) {
        v->critical = true;
        return;
    }
    analyze_boot_content(w, map_rc, v);
}

void analyze_boot_content(const struct asr_window *w, int map_rc, struct asr_volume_info *v)
{
    if (asr_used_parser(v->map.fs_type) == asr_ext_used && ext_boot_content(w, map_rc, v->reason, sizeof v->reason)) {
        v->critical = true;
        return;
    }
    if (!strcmp(v->map.fs_type, "ntfs") && ntfs_boot_content(w, v->reason, sizeof v->reason)) {
        v->critical = true;
        return;
    }
    if (!v->reason[0])
        snprintf(v->reason, sizeof v->reason, "nothing shows it is needed to boot");
}

/* ---- per disk ------------------------------------------------------------------------------ */

static void analyze_one(struct asr_disk *d, uint32_t disk_index, const struct asr_partition_desc *p, uint32_t pi,
                        struct asr_volume_info *v)
{
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    memset(v, 0, sizeof *v);
    v->disk_index = disk_index;
    v->partition_number = p ? p->number : 0;
    v->start_bytes = p ? p->start_bytes : 0;
    v->size_bytes = p ? p->size_bytes : dd->size_bytes;
    snprintf(v->type_name, sizeof v->type_name, "%s", p ? asr_disk_type_name(d, pi) : "whole disk");
    struct asr_window w = {.fd = asr_disk_fd(d), .path = asr_disk_path(d), .base = v->start_bytes, .size = v->size_bytes};
    bool no_fs = false;
    if (p && dd->label == ASR_LABEL_GPT) {
        char g[ASR_GUID_TEXT];
        asr_guid_text(p->type_guid, ASR_GUID_GPT | ASR_GUID_UPPER, g);
        for (size_t i = 0; i < sizeof whole_gpt_types / sizeof whole_gpt_types[0]; i++)
            no_fs |= strcmp(g, whole_gpt_types[i]) == 0;
    }
    int map_rc = analyze_map_volume(&w, no_fs, v);
    const char *whole = p ? NULL : asr_disk_full_capture_reason(d);
    if (whole && v->natural_capture != ASR_CAPTURE_FULL) {
        v->natural_capture = ASR_CAPTURE_FULL;
        snprintf(v->warning, sizeof v->warning, "captured whole, zero blocks elided: %s", whole);
    }
    decide_critical(d, p, &w, map_rc, v);
    v->capture = v->natural_capture;
}

/* The gap before the first partition past its raw region: no filesystem, every byte of it kept
 * (a boot loader or a tool may have put anything there, and a restore cannot tell). */
static void analyze_area(uint32_t disk_index, struct asr_range area, struct asr_volume_info *v)
{
    memset(v, 0, sizeof *v);
    v->disk_index = disk_index;
    v->kind = ASR_VOLUME_AREA;
    v->start_bytes = area.offset;
    v->size_bytes = area.length;
    snprintf(v->type_name, sizeof v->type_name, "pre-partition gap");
    v->natural_capture = v->capture = ASR_CAPTURE_FULL;
    v->critical = true;
    snprintf(v->reason, sizeof v->reason, "part of the disk layout: boot loaders keep code and data before the "
                                          "first partition");
}

int asr_disk_analyze(struct asr_disk *d, uint32_t disk_index, struct asr_volume_info **vols, size_t *count,
                     struct asr_error *err)
{
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    *vols = NULL;
    *count = 0;
    struct asr_range area;
    bool has_area = asr_disk_front_area(d, &area);
    size_t n = (dd->label == ASR_LABEL_NONE ? 1 : dd->partition_count) + has_area;
    struct asr_volume_info *v = calloc(n + 1, sizeof *v);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    if (dd->label == ASR_LABEL_NONE) {
        analyze_one(d, disk_index, NULL, 0, &v[0]);
        *count = 1;
    } else {
        for (uint32_t i = 0; i < dd->partition_count; i++)
            if (dd->partitions[i].kind != ASR_PART_EXTENDED) /* the container holds no filesystem */
                analyze_one(d, disk_index, &dd->partitions[i], i, &v[(*count)++]);
    }
    if (has_area)
        analyze_area(disk_index, area, &v[(*count)++]);
    *vols = v;
    return ASR_OK;
}

void asr_volume_infos_free(struct asr_volume_info *v, size_t count)
{
    for (size_t i = 0; v && i < count; i++)
        asr_usedmap_free(&v[i].map);
    free(v);
}

/* ---- selection ------------------------------------------------------------------------------ */

/* A decimal number at s, digits only: strtoul alone would take spaces, a sign (wrapping a
 * negative number) and overflow to ULONG_MAX. */
static bool select_number(const char *s, unsigned long *v, char **end)
{
    errno = 0;
    *v = strtoul(s, end, 10);
    return isdigit((unsigned char)s[0]) && !errno;
}

static int select_item(struct asr_volume_info *v, size_t count, const char *item, struct asr_error *err)
{
    unsigned long disk = 0, part;
    char *end;
    const char *colon = strchr(item, ':');
    const char *comma = strchr(item, ',');
    const char *slash = strchr(item, '/');
    if (slash && (!comma || slash < comma))
        return ASR_OK; /* VG/LV: a volume inside a stack, which asr_machine_select takes */
    if (colon && (!comma || colon < comma)) {
        if (!select_number(item, &disk, &end) || end != colon)
            return asr_fail_public(err, ASR_E_ARG, "volume selection '%s': expected DISK:PART or PART", item);
        item = colon + 1;
    }
    if (!select_number(item, &part, &end) || (*end && *end != ','))
        return asr_fail_public(err, ASR_E_ARG, "volume selection '%s': expected DISK:PART or PART", item);
    for (size_t i = 0; i < count; i++)
        if (v[i].kind == ASR_VOLUME_PARTITION && v[i].disk_index == disk && v[i].partition_number == part) {
            v[i].capture = v[i].natural_capture;
            snprintf(v[i].reason + strlen(v[i].reason), sizeof v[i].reason - strlen(v[i].reason), "%s",
                     v[i].critical ? "" : "; selected by --volumes");
            return ASR_OK;
        }
    return asr_fail_public(err, ASR_E_ARG, "volume selection: no volume %lu on disk %lu", part, disk);
}

int asr_select_volumes(struct asr_volume_info *v, size_t count, const char *selection, struct asr_error *err)
{
    bool all = selection && !strcmp(selection, "all"), critical = !selection || !strcmp(selection, "critical");
    for (size_t i = 0; i < count; i++)
        v[i].capture = all || v[i].kind == ASR_VOLUME_AREA || (critical && v[i].critical) ? v[i].natural_capture
                                                                                           : ASR_CAPTURE_SKIP;
    if (all || critical)
        return ASR_OK;
    for (const char *item = selection; item && *item;) {
        while (isspace((unsigned char)*item))
            item++;
        int rc = select_item(v, count, item, err);
        if (rc)
            return rc;
        item = strchr(item, ',');
        item = item ? item + 1 : NULL;
    }
    return ASR_OK;
}

/* ---- the used map again, from the frozen state ------------------------------------------- */

int asr_volume_remap(const struct asr_disk *d, struct asr_volume_info *v, bool recapture, struct asr_error *err)
{
    /* Swap is never mounted: only filesystems reach here, with the parser analyze.c chose. */
    asr_used_fn parse = asr_used_parser(v->map.fs_type);
    bool used = v->capture == ASR_CAPTURE_USED;
    /* A PV's map is its LVs' maps translated (stacks.c), read before the freeze: kept, it would
     * miss what the frozen LVs allocated since. Said, not done silently. */
    if (used && !strcmp(v->map.fs_type, "LVM2_member"))
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "reading the used maps of its logical volumes again once "
                               "frozen is not supported yet: back up from a rescue system, or without --freeze");
    if (!parse || !(used || (recapture && v->capture == ASR_CAPTURE_FULL)))
        return ASR_OK;
    if (v->partition_number == 0 && asr_disk_full_capture_reason(d))
        return ASR_OK; /* whole by the layout's doubt, not for want of a map: stays whole */
    /* The disk's page cache may hold what this process read of the volume before the freeze (and
     * the filesystem wrote through another device, a partition or a loop device, since). */
    int fd = asr_disk_fd(d);
    posix_fadvise(fd, (off_t)v->start_bytes, (off_t)v->size_bytes, POSIX_FADV_DONTNEED);
    struct asr_window w = {.fd = fd, .path = asr_disk_path(d), .base = v->start_bytes, .size = v->size_bytes};
    struct asr_usedmap m = {0};
    struct asr_error why = {0};
    int rc = parse(&w, &m, &why);
    if (rc != ASR_OK) {
        asr_usedmap_free(&m);
        if (!used) /* still unreadable: it stays a whole capture, which is consistent frozen too */
            return ASR_OK;
        return asr_fail_public(err, (enum asr_status)rc, "reading its %s metadata again once frozen: %s",
                               v->map.fs_type, why.msg);
    }
    asr_ranges_free(&v->map.used);
    asr_ranges_free(&v->map.cleared);
    v->map.used = m.used;
    v->map.cleared = m.cleared;
    v->map.block_size = m.block_size;
    memcpy(v->map.note, m.note, sizeof m.note);
    v->map.damaged = m.damaged;
    if (!used) {
        v->capture = v->natural_capture = ASR_CAPTURE_USED;
        snprintf(v->warning, sizeof v->warning, "used map read with the filesystem frozen (--freeze)%s%s",
                 m.note[0] ? "; " : "", m.note);
    } else
        snprintf(v->warning, sizeof v->warning, "%s", m.note);
    return ASR_OK;
}
