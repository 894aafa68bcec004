/* Source disks: opening a block device or a disk image file, its geometry, and its layout as
 * the image records it — partitions read with libfdisk, plus the raw regions a restored machine
 * needs byte-exact (sector 0, the post-MBR gap, GPT headers and entry arrays, EBRs). Partitions
 * are addressed by offset on the whole disk, never through /dev/xxxN nodes, which may not exist. */
#include "asr_engine.h"
#include "guid.h"
#include "le.h"
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <libfdisk/libfdisk.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The gap before the first partition is a raw region up to here (GRUB's core image, other boot
 * loaders' sectors: small, and written back with the table); the rest of it, when there is more,
 * is a disk area captured like a volume (zero elimination, dedup, compression). */
#define RAW_GAP_END (1ull << 20)
#define MAX_EBRS 4096u

struct asr_disk {
    int fd;
    char *path;
    bool is_block;
    dev_t rdev;
    struct asr_disk_desc desc;
    struct asr_partition_desc *parts;
    char (*type_names)[64]; /* per partition, as libfdisk names the type */
    struct asr_region_desc *regions;
    struct asr_range front_area; /* the gap before the first partition beyond RAW_GAP_END; length 0: none */
    char warnings[2048];
    char reading[400]; /* which way the layout was read, and why (asr_disk_reading) */
    const char *full_capture; /* asr_disk_full_capture_reason */
};

static void warn(struct asr_disk *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(struct asr_disk *d, const char *fmt, ...)
{
    size_t used = strlen(d->warnings);
    if (used + 2 >= sizeof d->warnings)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->warnings + used, sizeof d->warnings - used - 1, fmt, ap);
    va_end(ap);
    strcat(d->warnings, "\n");
}

/* ---- geometry -------------------------------------------------------------------------- */

static int read_geometry(struct asr_disk *d, struct asr_error *err)
{
    struct stat st;
    if (fstat(d->fd, &st) != 0)
        return asr_fail_public(err, ASR_E_IO, "cannot stat %s: %s", d->path, strerror(errno));
    d->desc.logical_sector = 512;
    d->desc.physical_sector = 512;
    if (S_ISBLK(st.st_mode)) {
        uint64_t size = 0;
        int lss = 0;
        unsigned int pss = 0;
        if (ioctl(d->fd, BLKGETSIZE64, &size) != 0 || ioctl(d->fd, BLKSSZGET, &lss) != 0 ||
            ioctl(d->fd, BLKPBSZGET, &pss) != 0)
            return asr_fail_public(err, ASR_E_IO, "cannot read the geometry of %s: %s", d->path, strerror(errno));
        d->is_block = true;
        d->rdev = st.st_rdev;
        d->desc.size_bytes = size;
        d->desc.logical_sector = (uint32_t)lss;
        d->desc.physical_sector = pss >= (unsigned)lss ? pss : (uint32_t)lss;
    } else if (S_ISREG(st.st_mode)) {
        d->desc.size_bytes = (uint64_t)st.st_size;
    } else {
        return asr_fail_public(err, ASR_E_ARG, "%s is neither a block device nor a disk image file", d->path);
    }
    if (d->desc.size_bytes < d->desc.logical_sector)
        return asr_fail_public(err, ASR_E_ARG, "%s is too small to be a disk (%llu bytes)", d->path,
                               (unsigned long long)d->desc.size_bytes);
    return ASR_OK;
}

/* ---- raw regions ----------------------------------------------------------------------- */

/* What a region is, for a read error's message. */
static const char *region_what(uint16_t kind)
{
    switch (kind) {
    case ASR_REGION_MBR: return "the MBR";
    case ASR_REGION_GAP: return "the post-MBR gap";
    case ASR_REGION_GPT_HEADER: return "the GPT header";
    case ASR_REGION_GPT_ENTRIES: return "the GPT partition entries";
    case ASR_REGION_GPT_BACKUP_ENTRIES: return "the backup GPT partition entries";
    case ASR_REGION_GPT_BACKUP_HEADER: return "the backup GPT header";
    case ASR_REGION_EBR: return "an EBR";
    default: return "a boot region";
    }
}

static int add_region(struct asr_disk *d, uint16_t kind, uint64_t offset, uint64_t length, struct asr_error *err)
{
    if (length == 0 || offset >= d->desc.size_bytes)
        return ASR_OK;
    if (length > d->desc.size_bytes - offset)
        length = d->desc.size_bytes - offset;
    if (d->desc.region_count >= ASR_MAX_REGIONS)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: more than %u raw regions", d->path, ASR_MAX_REGIONS);
    /* Regions are capped per record; a long region is recorded as several. */
    while (length) {
        uint32_t n = length > ASR_MAX_REGION_SIZE ? ASR_MAX_REGION_SIZE : (uint32_t)length;
        struct asr_region_desc *grown = realloc(d->regions, (d->desc.region_count + 1) * sizeof *grown);
        uint8_t *data = malloc(n);
        if (!grown || !data) {
            free(data);
            if (grown)
                d->regions = grown;
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        }
        d->regions = grown;
        struct asr_window whole = {.fd = d->fd, .path = d->path, .base = 0, .size = d->desc.size_bytes};
        int rc = asr_window_read(&whole, region_what(kind), offset, data, n, err);
        if (rc) {
            free(data);
            return rc;
        }
        d->regions[d->desc.region_count++] = (struct asr_region_desc){kind, offset, n, data};
        offset += n;
        length -= n;
    }
    return ASR_OK;
}

/* The EBR chain of an extended partition, walked by hand because libfdisk reports the logical
 * partitions but not where their EBR sectors lie. Every link is bounds-checked and loops end. */
static int add_ebrs(struct asr_disk *d, uint64_t ext_start_lba, uint64_t ext_size_lba, struct asr_error *err)
{
    uint32_t ss = d->desc.logical_sector;
    uint8_t sector[512];
    uint64_t rel = 0;
    for (unsigned hop = 0; hop < MAX_EBRS; hop++) {
        uint64_t lba = ext_start_lba + rel;
        struct asr_window whole = {.fd = d->fd, .path = d->path, .base = 0, .size = d->desc.size_bytes};
        struct asr_error why = {0};
        int rc = rel >= ext_size_lba ? ASR_E_CORRUPT : asr_window_read(&whole, "an EBR", lba * ss, sector, sizeof sector, &why);
        /* A link outside the disk ends the chain; a sector that cannot be read does not: its
         * logical partitions would be restored without the EBR that describes them. */
        if (rc == ASR_E_IO)
            return asr_fail_public(err, rc, "%s", why.msg);
        if (rc != ASR_OK || sector[510] != 0x55 || sector[511] != 0xaa) {
            if (hop == 0)
                warn(d, "extended partition at sector %llu holds no EBR", (unsigned long long)ext_start_lba);
            return ASR_OK;
        }
        if ((rc = add_region(d, ASR_REGION_EBR, lba * ss, ss, err)))
            return rc;
        const uint8_t *link = sector + 446 + 16;
        uint32_t next = get_le32(link + 8);
        if (link[4] == 0 || next == 0 || next <= rel)
            return ASR_OK; /* end of chain, or a link backwards: stop rather than loop */
        rel = next;
    }
    warn(d, "EBR chain longer than %u links: the rest is not recorded", MAX_EBRS);
    return ASR_OK;
}

static uint64_t label_item_u64(struct fdisk_context *cxt, int id)
{
    struct fdisk_labelitem *it = fdisk_new_labelitem();
    uint64_t v = 0;
    if (it && fdisk_get_disklabel_item(cxt, id, it) == 0)
        fdisk_labelitem_get_data_u64(it, &v);
    fdisk_unref_labelitem(it);
    return v;
}

static uint64_t first_partition_start(const struct asr_disk *d)
{
    uint64_t first = d->desc.size_bytes;
    for (uint32_t i = 0; i < d->desc.partition_count; i++)
        if (d->parts[i].start_bytes < first)
            first = d->parts[i].start_bytes;
    return first;
}

/* The bytes between the partition table's own structures (ending at gap_start) and the first
 * partition: a raw region up to RAW_GAP_END, the rest a disk area. A disk with no partition at
 * all has no first partition to stop at: its gap is kept up to RAW_GAP_END only, and said. */
static int add_front_gap(struct asr_disk *d, uint64_t gap_start, struct asr_error *err)
{
    bool none = d->desc.partition_count == 0;
    uint64_t first = first_partition_start(d);
    if (first <= gap_start)
        return ASR_OK;
    uint64_t raw_end = first < RAW_GAP_END ? first : RAW_GAP_END;
    int rc = raw_end > gap_start ? add_region(d, ASR_REGION_GAP, gap_start, raw_end - gap_start, err) : ASR_OK;
    uint64_t area_start = raw_end > gap_start ? raw_end : gap_start;
    if (rc || first <= area_start)
        return rc;
    if (none)
        warn(d, "no partitions: only the first %llu KiB after the partition table are recorded",
             (unsigned long long)((area_start - gap_start) >> 10));
    else
        d->front_area = (struct asr_range){area_start, first - area_start};
    return ASR_OK;
}

static int add_gpt_regions(struct asr_disk *d, struct fdisk_context *cxt, struct asr_error *err)
{
    uint32_t ss = d->desc.logical_sector;
    uint64_t entries_lba = label_item_u64(cxt, GPT_LABELITEM_ENTRIESLBA);
    uint64_t count = label_item_u64(cxt, GPT_LABELITEM_ENTRIESALLOC);
    uint64_t alt_lba = label_item_u64(cxt, GPT_LABELITEM_ALTLBA);
    uint8_t hdr[512];
    struct asr_window whole = {.fd = d->fd, .path = d->path, .base = 0, .size = d->desc.size_bytes};
    int rc = asr_window_read(&whole, "the GPT header", ss, hdr, sizeof hdr, err);
    if (rc)
        return rc;
    uint32_t entry_size = get_le32(hdr + 84);
    if (memcmp(hdr, "EFI PART", 8) != 0 || entry_size < 128 || entry_size > 4096)
        entry_size = 128; /* primary header damaged (libfdisk used the backup): assume the standard size */
    d->desc.gpt_entry_count = (uint32_t)count;
    d->desc.gpt_entry_size = entry_size;
    d->desc.gpt_first_usable_lba = label_item_u64(cxt, GPT_LABELITEM_FIRSTLBA);
    d->desc.gpt_last_usable_lba = label_item_u64(cxt, GPT_LABELITEM_LASTLBA);
    uint64_t entries_bytes = (count * entry_size + ss - 1) / ss * ss;
    if ((rc = add_region(d, ASR_REGION_GPT_HEADER, ss, ss, err)) ||
        (rc = add_region(d, ASR_REGION_GPT_ENTRIES, entries_lba * ss, entries_bytes, err)))
        return rc;
    if ((rc = add_front_gap(d, entries_lba * ss + entries_bytes, err)))
        return rc;
    if (alt_lba > entries_bytes / ss && (alt_lba + 1) * ss <= d->desc.size_bytes) {
        if ((rc = add_region(d, ASR_REGION_GPT_BACKUP_ENTRIES, alt_lba * ss - entries_bytes, entries_bytes, err)) ||
            (rc = add_region(d, ASR_REGION_GPT_BACKUP_HEADER, alt_lba * ss, ss, err)))
            return rc;
    } else {
        warn(d, "backup GPT header location %llu is outside the disk", (unsigned long long)alt_lba);
    }
    return ASR_OK;
}

/* ---- partitions -------------------------------------------------------------------------- */

static void fill_partition(struct asr_disk *d, struct fdisk_context *cxt, struct fdisk_partition *pa,
                           struct asr_partition_desc *p)
{
    uint32_t ss = d->desc.logical_sector;
    memset(p, 0, sizeof *p);
    p->number = (uint32_t)fdisk_partition_get_partno(pa) + 1;
    p->start_bytes = (uint64_t)fdisk_partition_get_start(pa) * ss;
    p->size_bytes = (uint64_t)fdisk_partition_get_size(pa) * ss;
    p->capture = ASR_CAPTURE_SKIP;
    const struct fdisk_parttype *t = fdisk_partition_get_type(pa);
    const char *name = fdisk_partition_get_name(pa);
    if (name)
        snprintf(p->name, sizeof p->name, "%s", name);
    if (d->desc.label == ASR_LABEL_GPT) {
        p->kind = ASR_PART_GPT;
        const char *uuid = fdisk_partition_get_uuid(pa);
        if (t && fdisk_parttype_get_string(t))
            asr_guid_parse(fdisk_parttype_get_string(t), ASR_GUID_GPT, p->type_guid);
        if (uuid)
            asr_guid_parse(uuid, ASR_GUID_GPT, p->part_guid);
        fdisk_gpt_get_partition_attrs(cxt, fdisk_partition_get_partno(pa), &p->attributes);
    } else {
        p->mbr_type = t ? (uint8_t)fdisk_parttype_get_code(t) : 0;
        /* By its type too: libfdisk does not count as a container an extended partition whose
         * first EBR it could not read, and add_ebrs must meet that read error. */
        bool extended = p->mbr_type == 0x05 || p->mbr_type == 0x0f || p->mbr_type == 0x85;
        p->kind = fdisk_partition_is_container(pa) || extended ? ASR_PART_EXTENDED
                  : fdisk_partition_is_nested(pa)              ? ASR_PART_LOGICAL
                                                               : ASR_PART_PRIMARY;
        p->bootable = fdisk_partition_is_bootable(pa) ? 1 : 0;
    }
}

/* libfdisk reports problems (a corrupt primary GPT, say) through its dialog callback; keep
 * them as warnings instead of letting the library print. */
static int on_fdisk_ask(struct fdisk_context *cxt, struct fdisk_ask *ask, void *data)
{
    (void)cxt;
    struct asr_disk *d = data;
    int type = fdisk_ask_get_type(ask);
    if (type == FDISK_ASKTYPE_WARN || type == FDISK_ASKTYPE_WARNX || type == FDISK_ASKTYPE_INFO) {
        const char *msg = fdisk_ask_print_get_mesg(ask);
        if (msg && type != FDISK_ASKTYPE_INFO)
            warn(d, "partition table: %s", msg);
    }
    return 0;
}

static int check_partitions(struct asr_disk *d, struct asr_error *err)
{
    for (uint32_t i = 0; i < d->desc.partition_count; i++) {
        const struct asr_partition_desc *p = &d->parts[i];
        if (p->start_bytes > d->desc.size_bytes || p->size_bytes > d->desc.size_bytes - p->start_bytes)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "%s: partition %u (%llu bytes at %llu) extends past the end of the %llu-byte disk",
                                   d->path, p->number, (unsigned long long)p->size_bytes,
                                   (unsigned long long)p->start_bytes, (unsigned long long)d->desc.size_bytes);
        for (uint32_t j = 0; j < i; j++) {
            const struct asr_partition_desc *q = &d->parts[j];
            if (p->kind == ASR_PART_EXTENDED || q->kind == ASR_PART_EXTENDED)
                continue;
            if (p->start_bytes < q->start_bytes + q->size_bytes && q->start_bytes < p->start_bytes + p->size_bytes)
                warn(d, "partitions %u and %u overlap", q->number, p->number);
        }
    }
    return ASR_OK;
}

static int read_table(struct asr_disk *d, struct fdisk_context *cxt, struct asr_error *err)
{
    struct fdisk_table *tb = NULL;
    if (fdisk_get_partitions(cxt, &tb) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: cannot read the partition table", d->path);
    size_t n = fdisk_table_get_nents(tb);
    if (n > ASR_MAX_PARTITIONS)
        n = ASR_MAX_PARTITIONS;
    d->parts = calloc(n + 1, sizeof *d->parts);
    d->type_names = calloc(n + 1, sizeof *d->type_names);
    if (!d->parts || !d->type_names) {
        fdisk_unref_table(tb);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct fdisk_partition *pa = fdisk_table_get_partition(tb, i);
        if (!pa || !fdisk_partition_is_used(pa))
            continue;
        const struct fdisk_parttype *t = fdisk_partition_get_type(pa);
        const char *tn = t ? fdisk_parttype_get_name(t) : NULL;
        snprintf(d->type_names[d->desc.partition_count], sizeof d->type_names[0], "%s", tn ? tn : "unknown");
        fill_partition(d, cxt, pa, &d->parts[d->desc.partition_count++]);
    }
    fdisk_unref_table(tb);
    d->desc.partitions = d->parts;
    return check_partitions(d, err);
}

/* ---- a filesystem on the whole disk, or a partition table -------------------------------- */

/* Sector 0 ends in 55 AA both in an MBR and in the boot sector of a FAT, exFAT or NTFS volume
 * made on the whole disk (USB sticks and SD cards formatted as one device, "superfloppies";
 * mkntfs -F on a disk), and libfdisk reads any such sector as an MBR. The boot code lying where
 * an MBR keeps its four entries then reads either as an empty table (a disk holding nothing to
 * capture: the volume silently left out of every backup, and a restore writing "boot regions"
 * over a filesystem) or as entries of garbage (a sound disk refused as damaged). The kernel,
 * libblkid and Windows look at the boot sector before trusting the table, and so does this
 * reader. The rule:
 *
 *  1. It applies only where libfdisk found an MBR (a GPT and its protective MBR are left alone)
 *     and libblkid recognises sector 0 as the boot sector of a vfat, exfat or ntfs volume: its
 *     superblock probe at offset 0, for those three types only, the filesystems whose boot
 *     sector carries the MBR's signature (each prober validates the BPB; ntfs reads the MFT).
 *  2. The disk is one whole-disk volume when the four entries cannot be a partition table: all
 *     of them unused (type 0), or any of them impossible: a boot flag other than 0x00 or 0x80
 *     (the kernel's own test; text and code in the boot sector fail it), a used entry of no
 *     sectors, one starting at sector 0 (over the boot sector itself), one ending past the end
 *     of the disk, two overlapping; or libfdisk's reading of the table (logical partitions
 *     through EBRs) failing its checks.
 *  3. Otherwise the disk is partitioned if any partition the entries describe holds something
 *     libblkid recognises (a filesystem, swap, LVM, LUKS...): an MBR whose sector also carries a
 *     BPB (old DOS disks, some factory-formatted media) keeps its partitions.
 *  4. If none does, the disk is again one whole-disk volume: boot code that happens to pass for
 *     entries must not hide a filesystem that is recognised behind partitions in which nothing
 *     is. As either reading could be the right one, that volume is captured whole (every
 *     nonzero block, asr_disk_full_capture_reason): the filesystem and whatever the partitions
 *     hold are both kept, and a restore gives the disk back as it was. Correct over small: such
 *     a disk is rare, and its image says why it is large.
 * The image records such a disk as any unpartitioned one (label none, volume partition 0), and
 * asr_disk_reading says which way a disk was read and why. */

static const char *const boot_sector_types[] = {"vfat", "exfat", "ntfs", NULL};

/* "a FAT32 boot sector", "an exFAT boot sector", "an NTFS boot sector". */
static void boot_sector_name(const struct probe *fs, char *out, size_t n)
{
    if (!strcmp(fs->type, "vfat"))
        snprintf(out, n, "a %s boot sector", strncmp(fs->version, "FAT", 3) ? "FAT" : fs->version);
    else
        snprintf(out, n, "an %s boot sector", !strcmp(fs->type, "exfat") ? "exFAT" : "NTFS");
}

enum mbr_entries { ENTRIES_POSSIBLE, ENTRIES_EMPTY, ENTRIES_IMPOSSIBLE };

/* Rule 2 on the four entries of sector 0, as the bytes are; why says what makes them impossible. */
static enum mbr_entries classify_entries(const struct asr_disk *d, char *why, size_t n)
{
    uint8_t s[512];
    struct asr_window whole = {.fd = d->fd, .path = d->path, .base = 0, .size = d->desc.size_bytes};
    if (asr_window_read(&whole, region_what(ASR_REGION_MBR), 0, s, sizeof s, NULL) != ASR_OK)
        return ENTRIES_POSSIBLE; /* libfdisk has just read it: left to the partitioned reading */
    uint64_t sectors = d->desc.size_bytes / d->desc.logical_sector, start[4], end[4];
    bool used[4];
    int nused = 0;
    for (int i = 0; i < 4; i++) {
        const uint8_t *e = s + 446 + 16 * i;
        uint32_t first = get_le32(e + 8), count = get_le32(e + 12);
        used[i] = e[4] != 0;
        start[i] = first;
        end[i] = (uint64_t)first + count;
        if (e[0] != 0x00 && e[0] != 0x80) {
            snprintf(why, n, "entry %d has boot flag 0x%02x, neither 0x00 nor 0x80", i + 1, e[0]);
            return ENTRIES_IMPOSSIBLE;
        }
        if (!used[i])
            continue;
        if (count == 0)
            snprintf(why, n, "entry %d (type 0x%02x) has no sectors", i + 1, e[4]);
        else if (first == 0)
            snprintf(why, n, "entry %d starts at sector 0, over the boot sector", i + 1);
        else if (end[i] > sectors)
            snprintf(why, n, "entry %d (%u sectors at sector %u) ends past the disk's %llu sectors", i + 1, count,
                     first, (unsigned long long)sectors);
        else
            why[0] = '\0';
        for (int j = 0; !why[0] && j < i; j++)
            if (used[j] && start[i] < end[j] && start[j] < end[i])
                snprintf(why, n, "entries %d and %d overlap", j + 1, i + 1);
        if (why[0])
            return ENTRIES_IMPOSSIBLE;
        nused++;
    }
    return nused ? ENTRIES_POSSIBLE : ENTRIES_EMPTY;
}

/* Rule 3: the first partition (not an extended one) in which libblkid recognises something. */
static bool partition_with_contents(const struct asr_disk *d, uint32_t *number, struct probe *found)
{
    for (uint32_t i = 0; i < d->desc.partition_count; i++) {
        const struct asr_partition_desc *p = &d->parts[i];
        if (p->kind == ASR_PART_EXTENDED)
            continue;
        struct asr_window w = {.fd = d->fd, .path = d->path, .base = p->start_bytes, .size = p->size_bytes};
        int rc = probe_window(&w, NULL, found);
        if (rc == 1 || rc == -2) {
            if (rc == -2)
                snprintf(found->type, sizeof found->type, "several signatures");
            *number = p->number;
            return true;
        }
    }
    return false;
}

/* Drops what libfdisk made of sector 0: the disk is one volume, the filesystem of its boot
 * sector. Its warnings went with the table, which is not one. */
static void read_as_whole_disk(struct asr_disk *d, const struct probe *fs, const char *boot, const char *why)
{
    free(d->parts);
    free(d->type_names);
    d->parts = NULL;
    d->type_names = NULL;
    d->desc.partitions = NULL;
    d->desc.partition_count = 0;
    d->desc.label = ASR_LABEL_NONE;
    memset(d->desc.disk_id, 0, sizeof d->desc.disk_id);
    d->warnings[0] = '\0';
    snprintf(d->reading, sizeof d->reading, "read as a whole-disk %.31s: sector 0 is %.47s and %.240s", fs->type, boot, why);
}

/* A disk libfdisk reads as an MBR: its partitions (read_table), or, by rules 1-4 above, one
 * whole-disk volume (label none on return). */
static int read_mbr(struct asr_disk *d, struct fdisk_context *cxt, struct asr_error *err)
{
    struct asr_window whole = {.fd = d->fd, .path = d->path, .base = 0, .size = d->desc.size_bytes};
    struct probe boot;
    if (probe_window(&whole, boot_sector_types, &boot) != 1) {
        snprintf(d->reading, sizeof d->reading, "read as mbr: sector 0 is an MBR, not a filesystem's boot sector");
        return read_table(d, cxt, err);
    }
    char name[48], why[200], reason[240];
    boot_sector_name(&boot, name, sizeof name);
    enum mbr_entries e = classify_entries(d, why, sizeof why);
    if (e != ENTRIES_POSSIBLE) {
        snprintf(reason, sizeof reason, "its MBR entries are %s%s", e == ENTRIES_EMPTY ? "all empty" : "impossible: ",
                 e == ENTRIES_EMPTY ? "" : why);
        read_as_whole_disk(d, &boot, name, reason);
        return ASR_OK;
    }
    int rc = read_table(d, cxt, err);
    if (rc == ASR_E_CORRUPT) {
        /* "PATH: partition 5 ... extends past the end ...": the reason without the path. */
        size_t k = strlen(d->path);
        const char *what = !err ? "its checks" : strncmp(err->msg, d->path, k) || err->msg[k] != ':' ? err->msg
                                                                                                      : err->msg + k + 2;
        snprintf(reason, sizeof reason, "libfdisk's reading of its MBR fails (%.150s)", what);
        read_as_whole_disk(d, &boot, name, reason);
        if (err)
            *err = (struct asr_error){0};
        return ASR_OK;
    }
    if (rc)
        return rc;
    uint32_t number = 0;
    struct probe inside;
    if (!partition_with_contents(d, &number, &inside)) {
        read_as_whole_disk(d, &boot, name,
                           "no partition its MBR entries describe holds anything libblkid recognises "
                           "(captured whole, so that their bytes are kept too)");
        d->full_capture = "sector 0 is also an MBR whose entries point inside the disk, at partitions in which "
                          "nothing is recognised: every byte is kept, whichever reading is right";
        return ASR_OK;
    }
    snprintf(d->reading, sizeof d->reading,
             "read as mbr: its entries are possible and partition %u holds %s, though sector 0 is also %s", number,
             inside.type, name);
    return ASR_OK;
}

static void read_disk_id(struct asr_disk *d, struct fdisk_context *cxt)
{
    char *id = NULL;
    if (fdisk_get_disklabel_id(cxt, &id) == 0 && id) {
        if (d->desc.label == ASR_LABEL_GPT)
            asr_guid_parse(id, ASR_GUID_GPT, d->desc.disk_id);
        else {
            unsigned long sig = strtoul(id, NULL, 16);
            for (int i = 0; i < 4; i++)
                d->desc.disk_id[i] = (uint8_t)(sig >> (8 * i));
        }
    }
    free(id);
}

static int read_layout(struct asr_disk *d, struct asr_error *err)
{
    struct fdisk_context *cxt = fdisk_new_context();
    if (!cxt)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    fdisk_set_ask(cxt, on_fdisk_ask, d);
    /* List-only: libfdisk then skips its check for filesystem signatures that a new partition
     * table would collide with, a full libblkid probe of the disk that a reader does not need,
     * and which runs libblkid 2.38's OCFS prober, unsafe on crafted input (see probe.c).
     * Otherwise it only silences fdisk's interactive hints. */
    fdisk_enable_listonly(cxt, 1);
    /* Sector 0 first: libfdisk says only that it cannot open a disk whose sector 0 fails. */
    uint8_t sector0[512];
    struct asr_window whole = {.fd = d->fd, .path = d->path, .base = 0, .size = d->desc.size_bytes};
    int rc = asr_window_read(&whole, region_what(ASR_REGION_MBR), 0, sector0, sizeof sector0, err);
    if (rc)
        goto out;
    if (fdisk_assign_device(cxt, d->path, 1) != 0) {
        rc = asr_fail_public(err, ASR_E_IO, "libfdisk cannot open %s", d->path);
        goto out;
    }
    if (!fdisk_has_label(cxt)) {
        /* a bare filesystem, or nothing: the whole disk is one volume */
        snprintf(d->reading, sizeof d->reading, "read as a whole disk: sector 0 holds no MBR and there is no GPT");
        goto out;
    }
    if (fdisk_is_label(cxt, GPT))
        d->desc.label = ASR_LABEL_GPT;
    else if (fdisk_is_label(cxt, DOS))
        d->desc.label = ASR_LABEL_MBR;
    else {
        const char *name = fdisk_label_get_name(fdisk_get_label(cxt, NULL));
        warn(d, "partition table type %s is not supported: the disk is treated as unpartitioned", name);
        snprintf(d->reading, sizeof d->reading, "read as a whole disk: its %s partition table is not supported", name);
        goto out;
    }
    read_disk_id(d, cxt);
    if (d->desc.label == ASR_LABEL_GPT) {
        snprintf(d->reading, sizeof d->reading, "read as gpt: sector 0 is its protective (or hybrid) MBR");
        rc = read_table(d, cxt, err);
    } else {
        rc = read_mbr(d, cxt, err);
    }
    if (rc || d->desc.label == ASR_LABEL_NONE)
        goto out;
    rc = add_region(d, ASR_REGION_MBR, 0, d->desc.logical_sector, err);
    if (!rc && d->desc.label == ASR_LABEL_GPT)
        rc = add_gpt_regions(d, cxt, err);
    if (!rc && d->desc.label == ASR_LABEL_MBR) {
        rc = add_front_gap(d, d->desc.logical_sector, err);
        for (uint32_t i = 0; !rc && i < d->desc.partition_count; i++)
            if (d->parts[i].kind == ASR_PART_EXTENDED)
                rc = add_ebrs(d, d->parts[i].start_bytes / d->desc.logical_sector,
                              d->parts[i].size_bytes / d->desc.logical_sector, err);
    }
out:
    fdisk_unref_context(cxt);
    d->desc.regions = d->regions;
    return rc;
}

/* ---- public ------------------------------------------------------------------------------ */

static int disk_open(const char *path, bool with_layout, struct asr_disk **out, struct asr_error *err)
{
    *out = NULL;
    struct asr_disk *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path))) {
        free(d);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    snprintf(d->desc.source, sizeof d->desc.source, "%s", path);
    d->fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = d->fd < 0 ? asr_fail_public(err, ASR_E_IO, "cannot open %s: %s", path, strerror(errno)) : ASR_OK;
    if (!rc)
        rc = read_geometry(d, err);
    if (!rc && with_layout)
        rc = read_layout(d, err);
    if (!rc && with_layout) {
        struct asr_error why = {0};
        if (asr_disk_desc_valid(&d->desc, &why) != ASR_OK)
            rc = asr_fail_public(err, ASR_E_CORRUPT, "%s: %s", path, why.msg);
    }
    if (rc) {
        asr_disk_close(d);
        return rc;
    }
    *out = d;
    return ASR_OK;
}

int asr_disk_open(const char *path, struct asr_disk **out, struct asr_error *err)
{
    return disk_open(path, true, out, err);
}

int asr_disk_open_bare(const char *path, struct asr_disk **out, struct asr_error *err)
{
    return disk_open(path, false, out, err);
}

void asr_disk_close(struct asr_disk *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    for (uint32_t i = 0; i < d->desc.region_count; i++)
        free((void *)d->regions[i].data);
    free(d->regions);
    free(d->parts);
    free(d->type_names);
    free(d->path);
    free(d);
}

const struct asr_disk_desc *asr_disk_desc(const struct asr_disk *d) { return &d->desc; }
int asr_disk_fd(const struct asr_disk *d) { return d->fd; }
const char *asr_disk_path(const struct asr_disk *d) { return d->path; }
const char *asr_disk_warnings(const struct asr_disk *d) { return d->warnings; }
const char *asr_disk_reading(const struct asr_disk *d) { return d->reading; }
const char *asr_disk_full_capture_reason(const struct asr_disk *d) { return d->full_capture; }

bool asr_disk_front_area(const struct asr_disk *d, struct asr_range *area)
{
    *area = d->front_area;
    return area->length != 0;
}

const char *asr_disk_type_name(const struct asr_disk *d, uint32_t i)
{
    return i < d->desc.partition_count ? d->type_names[i] : "";
}

/* libfdisk's type tables, without a disk: a label's types are there as soon as a context is. */
void asr_type_name(uint8_t label, uint8_t mbr_type, const char *type_guid, char *out, size_t n)
{
    struct fdisk_context *cxt = label == ASR_LABEL_NONE ? NULL : fdisk_new_context();
    struct fdisk_label *lb = cxt ? fdisk_get_label(cxt, label == ASR_LABEL_GPT ? "gpt" : "dos") : NULL;
    struct fdisk_parttype *t = !lb                      ? NULL
                               : label == ASR_LABEL_GPT ? fdisk_label_get_parttype_from_string(lb, type_guid)
                                                        : fdisk_label_get_parttype_from_code(lb, mbr_type);
    const char *name = t ? fdisk_parttype_get_name(t) : NULL;
    snprintf(out, n, "%s", name ? name : "");
    fdisk_unref_parttype(t); /* a no-op for the tables' own entries */
    fdisk_unref_context(cxt);
}
bool asr_disk_is_block(const struct asr_disk *d, dev_t *rdev)
{
    if (rdev)
        *rdev = d->rdev;
    return d->is_block;
}
