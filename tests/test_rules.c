/* Checksum-valid images that break one consistency rule of SPEC.md each (sections 6, 7 and 9),
 * as a buggy or hostile writer would make them: the writer refuses the layout, the reader, the
 * sequential reader and the verifier each refuse the image with a line naming the rule and where,
 * and `asrimg restore` refuses it before writing a byte, from a file and from a pipe. The layouts
 * are real ones (GPT headers and entry arrays with their CRCs, an MBR with an EBR chain, a bare
 * disk) that every reader accepts and restores before one field is changed. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fsfix.h"
#include "internal.h"
#include "le.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(rules, .fini = teardown, .timeout = 120);

#define MIB (1ull << 20)
#define SS 512u
#define DISK (4 * MIB)
#define SECTORS (DISK / SS)
#define ENTRIES 128u
#define ARRAY (ENTRIES * 128u) /* 32 sectors */
#define TARGET DISK            /* every test disk fits a target of this size */

/* One disk as a test lays it out: its records, the bytes of its raw regions, its volumes. */
static struct {
    struct asr_disk_desc disk;
    struct asr_partition_desc parts[6];
    struct asr_region_desc regions[8];
    struct asr_volume_desc vols[4];
    uint32_t nvols;
    uint8_t sector0[SS], hdr[SS], entries[ARRAY], bentries[ARRAY], bhdr[SS], ebr[2][SS], gap[3584];
} L;

static const uint8_t esp_type[16] = {0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
                                     0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b};
static const uint8_t linux_type[16] = {0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
                                       0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4};

static struct asr_volume_desc volume(uint32_t part, uint64_t off, uint64_t size, const char *fs)
{
    struct asr_volume_desc v = {.partition_number = part, .disk_offset = off, .size_bytes = size,
                                .used_bytes = size / 2, .block_size = 4096};
    snprintf(v.fs_type, sizeof v.fs_type, "%s", fs);
    return v;
}

static void mbr_entry(uint8_t *sector, unsigned i, uint8_t boot, uint8_t type, uint64_t lba, uint64_t sectors)
{
    uint8_t *e = sector + 446 + 16 * i;
    memset(e, 0, 16);
    e[0] = boot;
    e[4] = type;
    put_le32(e + 8, (uint32_t)lba);
    put_le32(e + 12, (uint32_t)sectors);
    sector[510] = 0x55;
    sector[511] = 0xaa;
}

/* ---- GPT ---------------------------------------------------------------------------------- */

static void gpt_seal(uint8_t *h)
{
    put_le32(h + 16, 0);
    put_le32(h + 16, fmt_crc32(h, 92));
}

static void gpt_header(uint8_t *h, uint64_t self, uint64_t other, uint64_t entries_lba, const uint8_t *entries)
{
    memset(h, 0, SS);
    memcpy(h, "EFI PART", 8);
    put_le32(h + 8, 0x00010000);
    put_le32(h + 12, 92);
    put_le64(h + 24, self);
    put_le64(h + 32, other);
    put_le64(h + 40, L.disk.gpt_first_usable_lba);
    put_le64(h + 48, L.disk.gpt_last_usable_lba);
    memcpy(h + 56, L.disk.disk_id, 16);
    put_le64(h + 72, entries_lba);
    put_le32(h + 80, ENTRIES);
    put_le32(h + 84, 128);
    put_le32(h + 88, fmt_crc32(entries, ARRAY));
    gpt_seal(h);
}

/* A 4 MiB GPT disk: an EFI System partition of 1 MiB at 1 MiB and a Linux one after it, both
 * imaged; protective MBR, both headers and both entry arrays, CRCs right. */
static void gpt_layout(void)
{
    memset(&L, 0, sizeof L);
    L.disk = (struct asr_disk_desc){.size_bytes = DISK, .logical_sector = SS, .physical_sector = 4096,
                                    .label = ASR_LABEL_GPT, .gpt_first_usable_lba = 34,
                                    .gpt_last_usable_lba = SECTORS - 34, .gpt_entry_count = ENTRIES,
                                    .gpt_entry_size = 128, .partition_count = 2, .partitions = L.parts,
                                    .region_count = 5, .regions = L.regions};
    snprintf(L.disk.source, sizeof L.disk.source, "/dev/rules-gpt");
    for (int i = 0; i < 16; i++)
        L.disk.disk_id[i] = (uint8_t)(0xd0 + i);
    for (int i = 0; i < 2; i++) {
        struct asr_partition_desc *p = &L.parts[i];
        *p = (struct asr_partition_desc){.number = (uint32_t)i + 1, .kind = ASR_PART_GPT,
                                         .capture = i ? ASR_CAPTURE_FULL : ASR_CAPTURE_USED,
                                         .start_bytes = (uint64_t)(i + 1) * MIB, .size_bytes = MIB,
                                         .attributes = i ? 1ull << 60 : 1};
        memcpy(p->type_guid, i ? linux_type : esp_type, 16);
        for (int k = 0; k < 16; k++)
            p->part_guid[k] = (uint8_t)(0x10 * (i + 1) + k);
        snprintf(p->name, sizeof p->name, i ? "root" : "EFI System");
        uint8_t *e = L.entries + 128 * i;
        memcpy(e, p->type_guid, 16);
        memcpy(e + 16, p->part_guid, 16);
        put_le64(e + 32, p->start_bytes / SS);
        put_le64(e + 40, (p->start_bytes + p->size_bytes) / SS - 1);
        put_le64(e + 48, p->attributes);
        for (size_t k = 0; p->name[k]; k++)
            e[56 + 2 * k] = (uint8_t)p->name[k];
    }
    memcpy(L.bentries, L.entries, ARRAY);
    mbr_entry(L.sector0, 0, 0, 0xee, 1, SECTORS - 1);
    gpt_header(L.hdr, 1, SECTORS - 1, 2, L.entries);
    gpt_header(L.bhdr, SECTORS - 1, 1, SECTORS - 33, L.bentries);
    L.regions[0] = (struct asr_region_desc){ASR_REGION_MBR, 0, SS, L.sector0};
    L.regions[1] = (struct asr_region_desc){ASR_REGION_GPT_HEADER, SS, SS, L.hdr};
    L.regions[2] = (struct asr_region_desc){ASR_REGION_GPT_ENTRIES, 2 * SS, ARRAY, L.entries};
    L.regions[3] = (struct asr_region_desc){ASR_REGION_GPT_BACKUP_ENTRIES, (SECTORS - 33) * SS, ARRAY, L.bentries};
    L.regions[4] = (struct asr_region_desc){ASR_REGION_GPT_BACKUP_HEADER, (SECTORS - 1) * SS, SS, L.bhdr};
    L.vols[0] = volume(1, MIB, MIB, "vfat");
    L.vols[1] = volume(2, 2 * MIB, MIB, "ext4");
    L.nvols = 2;
}

/* ---- MBR and bare disks ------------------------------------------------------------------- */

/* A 4 MiB MBR disk: bootable primary 1 (imaged), extended 2 holding logicals 5 (imaged) and 6,
 * with sector 0, a gap region and the two EBRs. */
static void mbr_layout(void)
{
    memset(&L, 0, sizeof L);
    L.disk = (struct asr_disk_desc){.size_bytes = DISK, .logical_sector = SS, .physical_sector = SS,
                                    .label = ASR_LABEL_MBR, .disk_id = {0x78, 0x56, 0x34, 0x12},
                                    .partition_count = 4, .partitions = L.parts, .region_count = 4,
                                    .regions = L.regions};
    snprintf(L.disk.source, sizeof L.disk.source, "/dev/rules-mbr");
    L.parts[0] = (struct asr_partition_desc){.number = 1, .kind = ASR_PART_PRIMARY, .mbr_type = 0x0c, .bootable = 1,
                                             .capture = ASR_CAPTURE_USED, .start_bytes = MIB, .size_bytes = MIB};
    L.parts[1] = (struct asr_partition_desc){.number = 2, .kind = ASR_PART_EXTENDED, .mbr_type = 0x05,
                                             .start_bytes = 2 * MIB, .size_bytes = 2 * MIB};
    L.parts[2] = (struct asr_partition_desc){.number = 5, .kind = ASR_PART_LOGICAL, .mbr_type = 0x83,
                                             .capture = ASR_CAPTURE_FULL, .start_bytes = 2 * MIB + 4096,
                                             .size_bytes = MIB - 4096};
    L.parts[3] = (struct asr_partition_desc){.number = 6, .kind = ASR_PART_LOGICAL, .mbr_type = 0x82,
                                             .start_bytes = 3 * MIB + 4096, .size_bytes = MIB - 4096};
    put_le32(L.sector0 + 440, 0x12345678);
    mbr_entry(L.sector0, 0, 0x80, 0x0c, MIB / SS, MIB / SS);
    mbr_entry(L.sector0, 1, 0, 0x05, 2 * MIB / SS, 2 * MIB / SS);
    mbr_entry(L.ebr[0], 0, 0, 0x83, 8, (MIB - 4096) / SS);
    mbr_entry(L.ebr[0], 1, 0, 0x05, MIB / SS, MIB / SS);
    mbr_entry(L.ebr[1], 0, 0, 0x82, 8, (MIB - 4096) / SS);
    for (size_t i = 0; i < sizeof L.gap; i++)
        L.gap[i] = (uint8_t)(i * 7 + 3);
    L.regions[0] = (struct asr_region_desc){ASR_REGION_MBR, 0, SS, L.sector0};
    L.regions[1] = (struct asr_region_desc){ASR_REGION_GAP, SS, sizeof L.gap, L.gap};
    L.regions[2] = (struct asr_region_desc){ASR_REGION_EBR, 2 * MIB, SS, L.ebr[0]};
    L.regions[3] = (struct asr_region_desc){ASR_REGION_EBR, 3 * MIB, SS, L.ebr[1]};
    L.vols[0] = volume(1, MIB, MIB, "vfat");
    L.vols[1] = volume(5, 2 * MIB + 4096, MIB - 4096, "ext4");
    L.nvols = 2;
}

/* A 1 MiB disk without a partition table: one volume, the whole disk. */
static void bare_layout(void)
{
    memset(&L, 0, sizeof L);
    L.disk = (struct asr_disk_desc){.size_bytes = MIB, .logical_sector = SS, .physical_sector = SS,
                                    .partitions = L.parts, .regions = L.regions};
    snprintf(L.disk.source, sizeof L.disk.source, "/dev/rules-bare");
    L.vols[0] = volume(0, 0, MIB, "ext4");
    L.nvols = 1;
}

/* ---- writing and refusing ----------------------------------------------------------------- */

/* The layout as an image with a little data in every volume; checked or not by the writer. */
static int write_layout(const char *path, bool checked, struct asr_error *err)
{
    struct asr_writer_options o = {.overwrite = 1, .max_chunk_size = 65536, .fixed_identity = 1, .hash_seed = 7,
                                   .created_unix = 1700000000};
    memcpy(o.uuid, "rules-image-id!!", 16);
    struct asr_writer *w;
    int rc = asr_writer_create(path, &o, &w, err);
    if (rc)
        return rc;
    if (!checked)
        fmt_writer_unchecked_layout(w);
    rc = asr_writer_add_disk(w, &L.disk, err);
    for (uint32_t v = 0; !rc && v < L.nvols; v++)
        rc = asr_writer_add_volume(w, &L.vols[v], NULL, err);
    static uint8_t content[4096], enc[8192];
    for (uint32_t v = 0; !rc && v < L.nvols; v++) {
        for (size_t i = 0; i < sizeof content; i++)
            content[i] = (uint8_t)("rules! "[i % 7] + v);
        struct asr_chunk c;
        uint64_t id;
        rc = asr_chunk_encode(content, sizeof content, 3, asr_writer_hash_seed(w), enc, sizeof enc, &c, err);
        if (!rc)
            rc = asr_writer_append_chunk(w, &c, &id, err);
        if (!rc)
            rc = asr_writer_add_extent(w, v, 0, sizeof content, id, 0, content, err);
        if (!rc)
            rc = asr_writer_add_zero(w, v, 8192, 4096, err);
    }
    if (!rc)
        rc = asr_writer_finish(w, err);
    asr_writer_free(w);
    return rc;
}

static uint8_t garbage(uint64_t i) { return (uint8_t)(i * 131 + (i >> 9) * 7 + 0x5a); }

static char *garbage_target(void)
{
    char *path = scratch_path("target");
    uint8_t *b = malloc(TARGET);
    for (uint64_t i = 0; i < TARGET; i++)
        b[i] = garbage(i);
    write_file(path, b, TARGET);
    free(b);
    return path;
}

static bool target_untouched(const char *path)
{
    size_t n;
    uint8_t *b = read_file(path, &n);
    bool same = n == TARGET;
    for (uint64_t i = 0; same && i < n; i++)
        same = b[i] == garbage(i);
    free(b);
    return same;
}

/* `asrimg restore` from the file and from a pipe: exit status, one line on stderr, target. A
 * stream says what is wrong with a record only when it arrives: after the layout was written. */
static void restore_by_cli(const char *img, int want_status, const char *says, bool piped_writes_first)
{
    char *target = garbage_target(), *log = scratch_path("restore.err");
    for (int piped = 0; piped < 2; piped++) {
        int rc = piped ? fsfix_sh("%s restore - --to %s --yes >/dev/null 2>%s <%s", ASRIMG_BIN, target, log, img)
                       : fsfix_sh("%s restore %s --to %s --yes >/dev/null 2>%s", ASRIMG_BIN, img, target, log);
        size_t n;
        char *out = (char *)read_file(log, &n);
        out[n] = '\0';
        cr_assert_eq(rc, want_status, "restore%s exited %d: %s", piped ? " -" : "", rc, out);
        if (want_status) {
            /* Refused at once: the error is all it says. Mid-stream: after the plan. */
            bool one_line = strncmp(out, "asrimg: error: ", 15) == 0 && strchr(out, '\n') == out + n - 1;
            cr_assert(one_line || (piped && piped_writes_first && strstr(out, "\nasrimg: error: ")),
                      "one error line: %s", out);
            cr_assert(strstr(out, says), "restore%s says '%s': %s", piped ? " -" : "", says, out);
            cr_assert(target_untouched(target) || (piped && piped_writes_first),
                      "restore%s wrote to the target before refusing", piped ? " -" : "");
        } else {
            cr_assert_not(target_untouched(target), "restore%s wrote nothing", piped ? " -" : "");
        }
        free(out);
    }
    free(target);
    free(log);
}

/* The image's status and message through the sequential reader, records and all. */
static int stream_status(const char *img, struct asr_error *err)
{
    int fd = open(img, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct asr_stream *s;
    int rc = asr_stream_open_fd(fd, "bad.asrimg", &s, err);
    struct asr_stream_record rec = {0};
    while (!rc && rec.kind != ASR_STREAM_END)
        rc = asr_stream_next(s, &rec, err);
    asr_stream_free(s);
    close(fd);
    return rc;
}

/* The current layout breaks the rule `says` describes: everyone refuses it, saying so. */
static void refused_everywhere(const char *says)
{
    char *img = scratch_path("bad.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_layout(img, true, &err), ASR_E_ARG, "the writer accepted it (%s)", err.msg);
    cr_assert(strstr(err.msg, says), "the writer says '%s': %s", says, err.msg);
    cr_assert_eq(write_layout(img, false, &err), ASR_OK, "%s", err.msg);

    struct asr_reader *r = NULL;
    cr_assert_eq(asr_reader_open(img, &r, &err), ASR_E_CORRUPT, "the reader: %s", err.msg);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, says), "the reader says '%s': %s", says, err.msg);
    cr_assert(strstr(err.msg, "bad.asrimg offset "), "the reader says where: %s", err.msg);

    cr_assert_eq(stream_status(img, &err), ASR_E_CORRUPT, "the sequential reader: %s", err.msg);
    cr_assert(strstr(err.msg, says), "the sequential reader says '%s': %s", says, err.msg);
    cr_assert(strstr(err.msg, "at logical offset "), "the sequential reader says where: %s", err.msg);

    struct asr_verify_report rep;
    cr_assert_eq(asr_verify(img, NULL, NULL, NULL, NULL, &rep, &err), ASR_E_CORRUPT, "verify: %s", err.msg);
    cr_assert(strstr(err.msg, says), "verify says '%s': %s", says, err.msg);

    restore_by_cli(img, 1, says, false);
    free(img);
}

static void accepted_everywhere(void)
{
    char *img = scratch_path("good.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_layout(img, true, &err), ASR_OK, "%s", err.msg);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(img, &r, &err), ASR_OK, "%s", err.msg);
    asr_reader_free(r);
    cr_assert_eq(stream_status(img, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_verify(img, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
    restore_by_cli(img, 0, NULL, false);
    free(img);
}

/* ---- the layouts as they are ------------------------------------------------------------- */

Test(rules, real_layouts_are_read_and_restored)
{
    gpt_layout();
    accepted_everywhere();
    mbr_layout();
    accepted_everywhere();
    bare_layout();
    accepted_everywhere();
}

/* A GPT header damaged on the source disk (libfdisk read the backup) is kept as it was found:
 * not a header, so not compared; nor is an entry array whose CRC is not its header's. */
Test(rules, damaged_gpt_copies_are_restored_as_found)
{
    gpt_layout();
    put_le64(L.hdr + 72, 4ull << 31); /* the entry array 4 TiB away, and the header's CRC now wrong */
    accepted_everywhere();
    gpt_layout();
    L.bentries[40] ^= 1; /* the backup array's first entry starts elsewhere: its CRC is wrong */
    accepted_everywhere();
}

/* ---- section 7: volumes ------------------------------------------------------------------ */

/* Issue 12: a volume claiming partition 0 (the whole disk) on a partitioned disk was restored
 * over the partition table and every partition. */
Test(rules, partition_0_only_on_an_unpartitioned_disk)
{
    gpt_layout();
    L.vols[0].partition_number = 0;
    refused_everywhere("partition 0 (a whole unpartitioned disk) on disk 0, which has a GPT");
    gpt_layout();
    L.vols[0] = volume(0, 0, DISK, "ext4"); /* the whole disk, even */
    L.nvols = 1;
    refused_everywhere("partition 0 (a whole unpartitioned disk) on disk 0, which has a GPT");
    mbr_layout();
    L.vols[1].partition_number = 0;
    refused_everywhere("partition 0 (a whole unpartitioned disk) on disk 0, which has an MBR");
    bare_layout();
    L.vols[0].size_bytes = MIB - SS;
    refused_everywhere("partition 0 (the whole disk) is 1048064 bytes at 0, disk 0 is 1048576 bytes");
}

Test(rules, volume_matches_a_captured_partition)
{
    gpt_layout();
    L.vols[0].disk_offset += SS;
    L.vols[0].size_bytes -= SS;
    refused_everywhere("volume 0: 1048064 bytes at 1049088 do not match partition 1 of disk 0");
    gpt_layout();
    L.vols[1].partition_number = 7;
    refused_everywhere("volume 1: partition 7 not on disk 0");
    gpt_layout();
    L.parts[1].capture = ASR_CAPTURE_SKIP;
    refused_everywhere("partition 2 of disk 0 is recorded as not captured (capture skip)");
    gpt_layout();
    L.nvols = 1;
    refused_everywhere("partition 2 of disk 0 is recorded as captured but has no volume");
    mbr_layout();
    L.parts[1].capture = ASR_CAPTURE_FULL;
    L.vols[2] = volume(2, 2 * MIB, 2 * MIB, "raw");
    L.nvols = 3;
    refused_everywhere("partition 2 of disk 0 is an extended partition, which holds no filesystem");
    gpt_layout();
    L.vols[1].disk_index = 1;
    refused_everywhere("volume 1: disk index 1 out of range");
    gpt_layout();
    L.vols[1].used_bytes = MIB + 1;
    refused_everywhere("volume 1: used bytes exceed its size");
}

Test(rules, volumes_overlap_neither_each_other_nor_raw_regions)
{
    gpt_layout();
    L.vols[2] = L.vols[0];
    L.nvols = 3;
    refused_everywhere("volumes 0 and 2 overlap on disk 0");
    /* Logical 5 grown over the EBR of logical 6 (and sector 0 agrees: logicals are not in it). */
    mbr_layout();
    L.parts[2].size_bytes = L.vols[1].size_bytes = MIB + 4096;
    refused_everywhere("overlap raw region 3 (kind 7, 512 bytes at 3145728) of disk 0");
    /* Primary 1 from sector 0 on: over the MBR itself. */
    mbr_layout();
    L.parts[0].start_bytes = L.vols[0].disk_offset = 0;
    L.parts[0].size_bytes = L.vols[0].size_bytes = 2 * MIB;
    mbr_entry(L.sector0, 0, 0x80, 0x0c, 0, 2 * MIB / SS);
    L.disk.partition_count = 1; /* no extended partition and logicals in its way */
    L.disk.region_count = 1;    /* nor the gap region, which must end before it */
    L.nvols = 1;
    refused_everywhere("overlap raw region 0 (kind 1, 512 bytes at 0) of disk 0");
}

/* ---- section 6: the disk record ---------------------------------------------------------- */

Test(rules, disk_fields)
{
    gpt_layout();
    L.disk.logical_sector = 1000;
    refused_everywhere("disk 0: sector sizes 1000/4096 invalid");
    mbr_layout();
    L.disk.disk_id[7] = 1;
    refused_everywhere("disk 0: disk id holds bytes after the 4-byte MBR signature");
    mbr_layout();
    L.disk.gpt_entry_count = 128;
    refused_everywhere("disk 0: GPT fields set on a disk with an MBR");
    gpt_layout();
    L.disk.gpt_entry_size = 200;
    refused_everywhere("disk 0: GPT of 128 entries of 200 bytes");
    gpt_layout();
    L.disk.gpt_last_usable_lba = SECTORS;
    refused_everywhere("disk 0: GPT usable LBAs 34..8192 not inside LBAs 2..8191 of the disk");
}

/* ---- section 6: partitions --------------------------------------------------------------- */

Test(rules, partition_records)
{
    gpt_layout();
    L.parts[1].start_bytes = DISK - SS;
    refused_everywhere("partition 2 (1048576 bytes at 4193792) extends past the end of the disk");
    gpt_layout();
    L.parts[1].number = 1;
    L.nvols = 1;
    refused_everywhere("two partitions numbered 1");
    gpt_layout();
    L.parts[1].size_bytes -= 100;
    refused_everywhere("partition 2 (1048476 bytes at 2097152) not on 512-byte sector boundaries");
    gpt_layout();
    L.parts[1].size_bytes = 2 * MIB - 32 * SS; /* one sector past the last usable LBA */
    refused_everywhere("partition 2 (LBAs 4096..8159) outside the GPT's usable LBAs 34..8158");
    gpt_layout();
    L.parts[1].number = ENTRIES + 1;
    L.vols[1].partition_number = ENTRIES + 1;
    refused_everywhere("partition 129 beyond the GPT's 128 entries");
    gpt_layout();
    L.parts[0].bootable = 1;
    refused_everywhere("partition 1 is not a GPT entry (kind 0, MBR type 0x00, bootable 1) on a GPT disk");
    mbr_layout();
    L.parts[2].attributes = 1;
    refused_everywhere("partition 5 carries GPT fields on an MBR disk");
    mbr_layout();
    L.parts[2].number = 3;
    L.vols[1].partition_number = 3;
    refused_everywhere("partition 3 is logical: MBR numbers 1 to 4 are primary or extended");
    mbr_layout();
    L.parts[3].kind = ASR_PART_EXTENDED;
    L.parts[3].number = 4;
    refused_everywhere("2 extended partitions (an MBR holds one)");
    mbr_layout();
    L.parts[3].start_bytes = MIB + 4096; /* logical 6 (not imaged) moved out of its extended partition */
    refused_everywhere("logical partition 6 (1044480 bytes at 1052672) not inside an extended partition");
    bare_layout();
    L.parts[0] = (struct asr_partition_desc){.number = 1, .start_bytes = 0, .size_bytes = MIB};
    L.disk.partition_count = 1;
    refused_everywhere("partition 1 on a disk with no partition table");
}

/* ---- section 6: raw regions -------------------------------------------------------------- */

Test(rules, raw_region_places)
{
    gpt_layout();
    L.regions[4].offset = DISK;
    refused_everywhere("raw region 4 (kind 6, 512 bytes at 4194304) invalid or outside the disk");
    gpt_layout();
    L.regions[1].offset = 2 * SS;
    refused_everywhere("raw region 1 (kind 3, 512 bytes at 1024) not where its kind lies");
    gpt_layout();
    L.regions[0].length = 256;
    refused_everywhere("raw region 0 (kind 1, 256 bytes at 0) not where its kind lies");
    gpt_layout();
    L.regions[5] = L.regions[4];
    L.disk.region_count = 6;
    refused_everywhere("raw region 5: a second region of kind 6");
    mbr_layout();
    L.regions[2].kind = ASR_REGION_GPT_BACKUP_HEADER;
    refused_everywhere("raw region 2 (kind 6 at 2097152) on a disk with an MBR");
    gpt_layout();
    L.regions[5] = (struct asr_region_desc){ASR_REGION_EBR, 34 * SS, SS, L.gap};
    L.disk.region_count = 6;
    refused_everywhere("raw region 5 (kind 7 at 17408) on a disk with a GPT");
    bare_layout();
    L.regions[0] = (struct asr_region_desc){ASR_REGION_OTHER, 0, SS, L.gap};
    L.disk.region_count = 1;
    refused_everywhere("raw region 0 (kind 8 at 0) on a disk with no partition table");
    mbr_layout();
    static uint8_t mib_of_gap[MIB];
    L.regions[1] = (struct asr_region_desc){ASR_REGION_GAP, SS, MIB, mib_of_gap};
    refused_everywhere("raw region 1 (the gap after sector 0, 1048576 bytes at 512) runs into the first partition");
    mbr_layout();
    L.regions[3].offset = MIB / 2;
    refused_everywhere("raw region 3 (an EBR at 524288) not inside an extended partition");
    mbr_layout();
    L.regions[0] = L.regions[3];
    L.disk.region_count = 3;
    refused_everywhere("MBR disk without a raw region holding sector 0");
}

/* ---- section 6: the partition table bytes ------------------------------------------------- */

Test(rules, mbr_sector_0_agrees_with_the_records)
{
    mbr_layout();
    L.sector0[511] = 0;
    refused_everywhere("sector 0 holds no MBR (bytes 510-511 are 55 00, not 55 aa)");
    mbr_layout();
    mbr_entry(L.sector0, 0, 0x80, 0x0c, 2 * MIB / SS, MIB / SS); /* the table moves partition 1 */
    refused_everywhere("partition 1: the MBR entry in sector 0 (type 0x0c, bootable, 1048576 bytes at 2097152) "
                       "differs from its record (type 0x0c, bootable, 1048576 bytes at 1048576)");
    mbr_layout();
    L.parts[0].mbr_type = 0x83;
    refused_everywhere("partition 1: the MBR entry in sector 0 (type 0x0c");
    mbr_layout();
    L.parts[0].bootable = 0;
    refused_everywhere("partition 1: the MBR entry in sector 0 (type 0x0c, bootable");
}

/* Issue 12: a primary GPT header (its CRC right) whose entry array is 4 TiB away restored as an
 * invalid GPT. */
Test(rules, gpt_header_places_its_entry_array_on_the_disk)
{
    gpt_layout();
    put_le64(L.hdr + 72, 4ull << 31);
    gpt_seal(L.hdr);
    refused_everywhere("primary GPT header places its entry array (16384 bytes) at LBA 8589934592, outside LBAs "
                       "2..8191 of the disk");
    gpt_layout();
    put_le64(L.bhdr + 72, SECTORS - 31);
    gpt_seal(L.bhdr);
    refused_everywhere("backup GPT header places its entry array (16384 bytes) at LBA 8161, outside LBAs 2..8191");
    gpt_layout();
    put_le64(L.hdr + 72, 100);
    gpt_seal(L.hdr);
    refused_everywhere("primary GPT header places its entry array at LBAs 100..131, inside the usable LBAs 34..8158");
    gpt_layout();
    put_le64(L.hdr + 72, SECTORS - 33); /* the backup array's place: not where region 4 is */
    gpt_seal(L.hdr);
    refused_everywhere("primary GPT header places its entry array (16384 bytes) at LBA 8159, where the image's raw "
                       "regions of kind 4 do not hold it");
    /* Cut in two regions that do not follow one another. */
    gpt_layout();
    L.regions[2].length = ARRAY / 2;
    L.regions[5] = (struct asr_region_desc){ASR_REGION_GPT_ENTRIES, 2 * SS + ARRAY / 2 + SS, ARRAY / 2 - SS,
                                            L.entries + ARRAY / 2 + SS};
    L.disk.region_count = 6;
    refused_everywhere("where the image's raw regions of kind 4 do not hold it");
}

Test(rules, gpt_header_agrees_with_the_disk_record)
{
    gpt_layout();
    put_le64(L.hdr + 24, 2);
    gpt_seal(L.hdr);
    refused_everywhere("primary GPT header at LBA 1 says it is at LBA 2");
    gpt_layout();
    L.disk.gpt_first_usable_lba = 40;
    refused_everywhere("primary GPT header (usable LBAs 34..8158, 128 entries of 128 bytes) differs from the disk "
                       "record (usable LBAs 40..8158, 128 entries of 128 bytes)");
    gpt_layout();
    L.disk.disk_id[3] ^= 1;
    refused_everywhere("primary GPT header's disk GUID differs from the disk record's");
    gpt_layout();
    put_le64(L.hdr + 32, SECTORS - 2);
    gpt_seal(L.hdr);
    refused_everywhere("primary GPT header places the backup header at LBA 8190, the image holds it at LBA 8191");
    gpt_layout();
    put_le64(L.bhdr + 32, 2);
    gpt_seal(L.bhdr);
    refused_everywhere("backup GPT header places the primary header at LBA 2, the image holds it at LBA 1");
}

/* Issue 12's other half: the ESP's record 1 MiB off the place its GPT entry gives it. */
Test(rules, gpt_entries_agree_with_the_partition_records)
{
    gpt_layout();
    L.parts[0].start_bytes = L.vols[0].disk_offset = 2 * MIB; /* the records swapped, the table not */
    L.parts[1].start_bytes = L.vols[1].disk_offset = MIB;
    refused_everywhere("partition 1: its record and entry 0 of the primary GPT entry array differ in place (entry: "
                       "LBAs 2048..4095; record: 1048576 bytes at 2097152)");
    gpt_layout();
    L.parts[0].type_guid[0] ^= 1;
    refused_everywhere("partition 1: its record and entry 0 of the primary GPT entry array differ in type GUID");
    gpt_layout();
    L.parts[1].part_guid[15] ^= 1;
    refused_everywhere("partition 2: its record and entry 1 of the primary GPT entry array differ in unique GUID");
    gpt_layout();
    L.parts[1].attributes = 0;
    refused_everywhere("entry 1 of the primary GPT entry array differ in attributes");
    /* A valid backup array that disagrees, beside a primary that agrees. */
    gpt_layout();
    put_le64(L.bentries + 128 + 40, SECTORS - 40);
    put_le32(L.bhdr + 88, fmt_crc32(L.bentries, ARRAY));
    gpt_seal(L.bhdr);
    refused_everywhere("partition 2: its record and entry 1 of the backup GPT entry array differ in place");
}

/* ---- section 9: extents ------------------------------------------------------------------- */

/* The writer never writes a bad extent: the GPT layout's image with extent `which` of volume 0
 * changed alike in its extent record and in the index, every checksum over them made right
 * (the record's, the index's stream hash and checksums, the footer's). */
static void forged_extent_refused(unsigned which, void (*change)(uint8_t *e), const char *says)
{
    gpt_layout();
    char *img = scratch_path("bad.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_layout(img, true, &err), ASR_OK, "%s", err.msg);
    int fd = open(img, O_RDONLY);
    struct asr_stream *st;
    cr_assert_eq(asr_stream_open_fd(fd, "good", &st, &err), ASR_OK, "%s", err.msg);
    struct asr_stream_record rec = {0};
    uint64_t record = 0;
    unsigned before = 0; /* volume 0's extents in its earlier records */
    while (!record && asr_stream_next(st, &rec, &err) == ASR_OK && rec.kind != ASR_STREAM_END) {
        if (rec.kind != ASR_STREAM_EXTENTS || rec.volume_id != 0)
            continue;
        if (which < before + rec.extent_count)
            record = rec.logical_offset;
        else
            before += rec.extent_count;
    }
    asr_stream_free(st);
    close(fd);
    cr_assert_gt(record, 0, "volume 0 has no extent %u", which);

    size_t n;
    uint8_t *f = read_file(img, &n), *l = f + ASR_PART_HEADER_SIZE, *end = f + n - ASR_FOOTER_SIZE;
    uint64_t index = get_le64(end + 8), index_len = get_le64(end + 16);
    uint8_t *aext = l + record, *ix = l + index, *body = ix + ASR_SECTION_HEADER_SIZE;
    change(aext + ASR_SECTION_HEADER_SIZE + 8 + ASR_EXTENT_SIZE * (which - before));
    change(body + ASR_INDEX_FIXED + get_le64(body + 8) * ASR_CHUNK_ENTRY_SIZE + ASR_VOLUME_ENTRY_SIZE +
           ASR_EXTENT_SIZE * which);
    put_le64(aext + 16, fmt_checksum64(aext + ASR_SECTION_HEADER_SIZE, (size_t)get_le64(aext + 8)));
    put_le64(aext + 24, fmt_checksum64(aext, 24));
    XXH128_hash_t h = XXH3_128bits(l, (size_t)index);
    fmt_hash128_put(body + 16, (struct asr_hash128){h.low64, h.high64});
    put_le64(ix + 16, fmt_checksum64(body, (size_t)get_le64(ix + 8)));
    put_le64(ix + 24, fmt_checksum64(ix, 24));
    put_le64(end + 48, XXH3_64bits(ix, (size_t)index_len));
    put_le64(end + 56, fmt_checksum64(end, 56));
    write_file(img, f, n);
    free(f);

    struct asr_reader *r = NULL;
    cr_assert_eq(asr_reader_open(img, &r, &err), ASR_E_CORRUPT, "the reader: %s", err.msg);
    cr_assert(strstr(err.msg, says), "the reader says '%s': %s", says, err.msg);
    cr_assert_eq(stream_status(img, &err), ASR_E_CORRUPT, "the sequential reader: %s", err.msg);
    cr_assert(strstr(err.msg, says), "the sequential reader says '%s': %s", says, err.msg);
    cr_assert_eq(asr_verify(img, NULL, NULL, NULL, NULL, NULL, &err), ASR_E_CORRUPT, "verify: %s", err.msg);
    cr_assert(strstr(err.msg, says), "verify says '%s': %s", says, err.msg);
    restore_by_cli(img, 1, says, true);
    free(img);
}

static void past_the_volume(uint8_t *e) { put_le64(e, MIB - 100); }
static void chunk_9(uint8_t *e) { put_le64(e + 16, 9); }
static void one_byte_into_the_chunk(uint8_t *e) { put_le32(e + 24, 1); }
static void back_over_the_first(uint8_t *e) { put_le64(e, 4095); }

Test(rules, extents_lie_in_their_volume_and_chunk_in_order)
{
    forged_extent_refused(0, past_the_volume, "extent at 1048476 ends past the volume's 1048576 bytes");
    forged_extent_refused(0, chunk_9, "extent at 0 refers to chunk 9, which is not earlier in the stream");
    forged_extent_refused(0, one_byte_into_the_chunk, "extent at 0 runs past the end of chunk 0");
    forged_extent_refused(1, back_over_the_first, "extent at 4095 overlaps or precedes the one before it");
}
