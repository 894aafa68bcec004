/* Disk layout capture on disks made with sfdisk: GPT and MBR fields and identifiers checked
 * against the raw on-disk bytes, raw boot regions byte-exact, EBR chains, unpartitioned disks,
 * 4Kn loop devices, damaged tables, critical-volume decisions (an XFS root read through its
 * fstab too) and volume selection. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "fsfix.h"
#include "support.h"

static char loopdev[64];

static void teardown(void)
{
    if (loopdev[0])
        fsfix_sh("losetup -d %s", loopdev);
    loopdev[0] = '\0';
    scratch_cleanup();
}

TestSuite(layout, .fini = teardown, .timeout = 120);

static const struct asr_region_desc *region(const struct asr_disk_desc *d, uint16_t kind, unsigned nth)
{
    for (uint32_t i = 0; i < d->region_count; i++)
        if (d->regions[i].kind == kind && nth-- == 0)
            return &d->regions[i];
    return NULL;
}

static void region_matches_disk(const char *path, const struct asr_region_desc *r)
{
    cr_assert_not_null(r);
    uint8_t *raw = malloc(r->length);
    fsfix_read_at(path, r->offset, raw, r->length);
    cr_assert_eq(memcmp(raw, r->data, r->length), 0, "region kind %u at %llu differs from the disk", r->kind,
                 (unsigned long long)r->offset);
    free(raw);
}

static const struct asr_volume_info *vol(const struct asr_volume_info *v, size_t n, uint32_t part)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].partition_number == part)
            return &v[i];
    cr_assert_fail("no volume for partition %u", part);
    return NULL;
}

static char *make_gpt_disk(void)
{
    fsfix_need("sfdisk");
    fsfix_need("mkfs.ext4");
    char *img = scratch_path("gpt.img");
    char *root = scratch_path("rootsrc");
    cr_assert_eq(fsfix_sh("truncate -s 200M %s && sfdisk --quiet %s <<'EOF'\n"
                          "label: gpt\n"
                          "label-id: 11223344-5566-7788-99AA-BBCCDDEEFF00\n"
                          "start=2048, size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=\"bios\"\n"
                          "start=4096, size=32MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI System\", "
                          "uuid=AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE\n"
                          "size=64MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"r\xc3\xb6ot\", attrs=\"GUID:60\"\n"
                          "size=16MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=\"swap\"\n"
                          "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"data\"\n"
                          "EOF",
                          img, img),
                 0);
    cr_assert_eq(fsfix_sh("mkdir -p %s/etc %s/home && echo ID=debian > %s/etc/os-release && "
                          "mkfs.ext4 -q -F -d %s -E offset=%d %s 65536k && mkfs.ext4 -q -F -E offset=%d %s 60000k",
                          root, root, root, root, 69632 * 512, img, 233472 * 512, img),
                 0);
    free(root);
    return img;
}

Test(layout, gpt_fields_match_the_disk)
{
    char *img = make_gpt_disk();
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    cr_assert_eq(dd->label, ASR_LABEL_GPT);
    cr_assert_eq(dd->size_bytes, 200ull << 20);
    cr_assert_eq(dd->logical_sector, 512);
    uint8_t hdr[512];
    fsfix_read_at(img, 512, hdr, sizeof hdr);
    cr_assert_eq(memcmp(dd->disk_id, hdr + 56, 16), 0, "disk GUID as stored in the GPT header");
    cr_assert_eq(dd->disk_id[0], 0x44, "first GUID field little-endian on disk");
    cr_assert_eq(dd->gpt_entry_count, 128);
    cr_assert_eq(dd->gpt_entry_size, 128);
    cr_assert_eq(dd->partition_count, 5);
    for (uint32_t i = 0; i < 5; i++) {
        uint8_t entry[128];
        fsfix_read_at(img, 1024 + 128 * i, entry, sizeof entry);
        const struct asr_partition_desc *p = &dd->partitions[i];
        cr_assert_eq(p->number, i + 1);
        cr_assert_eq(memcmp(p->type_guid, entry, 16), 0, "partition %u type GUID", i + 1);
        cr_assert_eq(memcmp(p->part_guid, entry + 16, 16), 0, "partition %u unique GUID", i + 1);
        uint64_t first, last, attrs;
        memcpy(&first, entry + 32, 8);
        memcpy(&last, entry + 40, 8);
        memcpy(&attrs, entry + 48, 8);
        cr_assert_eq(p->start_bytes, first * 512);
        cr_assert_eq(p->size_bytes, (last - first + 1) * 512);
        cr_assert_eq(p->attributes, attrs);
    }
    cr_assert_eq(dd->partitions[2].attributes, 1ull << 60);
    cr_assert_str_eq(dd->partitions[2].name, "r\xc3\xb6ot", "UTF-16 name converted to UTF-8");
    region_matches_disk(img, region(dd, ASR_REGION_MBR, 0));
    region_matches_disk(img, region(dd, ASR_REGION_GPT_HEADER, 0));
    region_matches_disk(img, region(dd, ASR_REGION_GPT_ENTRIES, 0));
    region_matches_disk(img, region(dd, ASR_REGION_GAP, 0));
    region_matches_disk(img, region(dd, ASR_REGION_GPT_BACKUP_ENTRIES, 0));
    region_matches_disk(img, region(dd, ASR_REGION_GPT_BACKUP_HEADER, 0));
    cr_assert_eq(region(dd, ASR_REGION_GPT_BACKUP_HEADER, 0)->offset, (200ull << 20) - 512);
    cr_assert_eq(region(dd, ASR_REGION_GAP, 0)->offset + region(dd, ASR_REGION_GAP, 0)->length, 1 << 20,
                 "the gap ends where the first partition starts");
    cr_assert_str_eq(asr_disk_warnings(d), "");
    asr_disk_close(d);
    free(img);
}

Test(layout, critical_volumes_and_selection)
{
    char *img = make_gpt_disk();
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 5);
    cr_assert(vol(v, n, 1)->critical, "BIOS boot");
    cr_assert(strstr(vol(v, n, 1)->reason, "BIOS boot"));
    cr_assert_eq(vol(v, n, 1)->natural_capture, ASR_CAPTURE_FULL);
    cr_assert(vol(v, n, 2)->critical, "EFI System");
    cr_assert(vol(v, n, 3)->critical, "a generic Linux type holding /etc/os-release");
    cr_assert(strstr(vol(v, n, 3)->reason, "/etc/os-release"), "%s", vol(v, n, 3)->reason);
    cr_assert_str_eq(vol(v, n, 3)->map.fs_type, "ext4");
    cr_assert_not(vol(v, n, 4)->critical, "swap");
    cr_assert_not(vol(v, n, 5)->critical, "an empty Linux filesystem is generic: nothing says it boots");
    cr_assert_eq(asr_select_volumes(v, n, "critical", &err), ASR_OK);
    cr_assert_eq(vol(v, n, 5)->capture, ASR_CAPTURE_SKIP);
    cr_assert_neq(vol(v, n, 3)->capture, ASR_CAPTURE_SKIP);
    cr_assert_eq(asr_select_volumes(v, n, "0:5", &err), ASR_OK, "%s", err.msg);
    cr_assert_neq(vol(v, n, 5)->capture, ASR_CAPTURE_SKIP);
    cr_assert_eq(vol(v, n, 3)->capture, ASR_CAPTURE_SKIP);
    cr_assert_eq(asr_select_volumes(v, n, "all", &err), ASR_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_neq(v[i].capture, ASR_CAPTURE_SKIP);
    cr_assert_eq(asr_select_volumes(v, n, "0:9", &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "no volume 9"), "%s", err.msg);
    cr_assert_eq(asr_select_volumes(v, n, "x", &err), ASR_E_ARG);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(img);
}

/* A RHEL-like disk: an ESP, /boot and / on XFS, /home on XFS. The root is found by reading its
 * /etc/fstab through the XFS path reader, and what that fstab names decides: /boot and the ESP
 * are needed to boot, /home is data. Every XFS is mapped by its used blocks. */
Test(layout, xfs_root_found_through_its_fstab)
{
    fsfix_need("sfdisk");
    fsfix_need("mkfs.xfs");
    fsfix_need("mkfs.vfat");
    char *img = scratch_path("rhel.img"), *dir = scratch_path("rhel");
    cr_assert_eq(fsfix_sh(
                     "set -e; mkdir -p %1$s/root/etc; cd %1$s;"
                     "printf 'UUID=c0ffee00-0000-4000-8000-000000000001 / xfs defaults 0 0\\n"
                     "UUID=c0ffee00-0000-4000-8000-000000000002 /boot xfs defaults 0 0\\n"
                     "UUID=1234-ABCD /boot/efi vfat umask=0077 0 2\\n"
                     "UUID=c0ffee00-0000-4000-8000-000000000003 /home xfs defaults 0 0\\n' > root/etc/fstab;"
                     "echo 'ID=\"rhel\"' > root/etc/os-release;"
                     "printf '/dev/null\\n0 0\\nd--755 0 0\\netc d--755 0 0\\nfstab ---644 0 0 %1$s/root/etc/fstab\\n"
                     "os-release ---644 0 0 %1$s/root/etc/os-release\\n$\\n$\\n' > root.proto;"
                     "for f in root boot home; do truncate -s 300M $f.fs; done;"
                     "mkfs.xfs -q -m uuid=c0ffee00-0000-4000-8000-000000000001 -p root.proto root.fs;"
                     "mkfs.xfs -q -m uuid=c0ffee00-0000-4000-8000-000000000002 boot.fs;"
                     "mkfs.xfs -q -m uuid=c0ffee00-0000-4000-8000-000000000003 home.fs;"
                     "rm -f esp.fs; mkfs.vfat -C -i 1234ABCD esp.fs 33792 >/dev/null;"
                     "truncate -s 1000M %2$s; sfdisk --quiet %2$s <<'EOF'\n"
                     "label: gpt\n"
                     "start=2048, size=33MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
                     "size=300MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
                     "size=300MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
                     "size=300MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
                     "EOF\n"
                     "dd if=esp.fs of=%2$s bs=1M seek=1 conv=notrunc,sparse status=none;"
                     "dd if=boot.fs of=%2$s bs=1M seek=34 conv=notrunc,sparse status=none;"
                     "dd if=root.fs of=%2$s bs=1M seek=334 conv=notrunc,sparse status=none;"
                     "dd if=home.fs of=%2$s bs=1M seek=634 conv=notrunc,sparse status=none",
                     dir, img),
                 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    struct asr_machine *m;
    size_t counts[1] = {n};
    cr_assert_eq(asr_machine_analyze(&d, &v, counts, 1, NULL, &m, &err), ASR_OK, "%s", err.msg);
    for (uint32_t p = 2; p <= 4; p++) {
        cr_assert_str_eq(vol(v, n, p)->map.fs_type, "xfs");
        cr_assert_eq(vol(v, n, p)->natural_capture, ASR_CAPTURE_USED, "partition %u: %s", p, vol(v, n, p)->warning);
    }
    cr_assert(vol(v, n, 3)->critical && strstr(vol(v, n, 3)->reason, "/etc/fstab"), "%s", vol(v, n, 3)->reason);
    cr_assert(vol(v, n, 2)->critical && strstr(vol(v, n, 2)->reason, "/boot"), "%s", vol(v, n, 2)->reason);
    cr_assert(vol(v, n, 1)->critical, "%s", vol(v, n, 1)->reason);
    cr_assert(!vol(v, n, 4)->critical && strstr(vol(v, n, 4)->reason, "data volume"), "%s", vol(v, n, 4)->reason);
    asr_machine_free(m);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(img);
    free(dir);
}

Test(layout, mbr_with_logical_partitions)
{
    fsfix_need("sfdisk");
    char *img = scratch_path("mbr.img");
    cr_assert_eq(fsfix_sh("truncate -s 100M %s && sfdisk --quiet %s <<'EOF'\n"
                          "label: dos\n"
                          "label-id: 0x12345678\n"
                          "start=2048, size=20MiB, type=83, bootable\n"
                          "start=43008, size=70MiB, type=5\n"
                          "start=45056, size=20MiB, type=83\n"
                          "start=88064, size=30MiB, type=7\n"
                          "EOF",
                          img, img),
                 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    cr_assert_eq(dd->label, ASR_LABEL_MBR);
    uint8_t mbr[512];
    fsfix_read_at(img, 0, mbr, sizeof mbr);
    cr_assert_eq(memcmp(dd->disk_id, mbr + 440, 4), 0, "disk signature as stored at byte 440");
    cr_assert_eq(dd->disk_id[0], 0x78);
    cr_assert_eq(dd->partition_count, 4);
    cr_assert_eq(dd->partitions[0].bootable, 1);
    cr_assert_eq(dd->partitions[0].mbr_type, 0x83);
    cr_assert_eq(dd->partitions[1].kind, ASR_PART_EXTENDED);
    cr_assert_eq(dd->partitions[2].number, 5);
    cr_assert_eq(dd->partitions[2].kind, ASR_PART_LOGICAL);
    cr_assert_eq(dd->partitions[3].number, 6);
    cr_assert_eq(dd->partitions[3].mbr_type, 0x07);
    region_matches_disk(img, region(dd, ASR_REGION_MBR, 0));
    const struct asr_region_desc *gap = region(dd, ASR_REGION_GAP, 0);
    region_matches_disk(img, gap);
    cr_assert_eq(gap->offset, 512);
    cr_assert_eq(gap->length, (1 << 20) - 512);
    for (unsigned k = 0; k < 2; k++) {
        const struct asr_region_desc *ebr = region(dd, ASR_REGION_EBR, k);
        cr_assert_not_null(ebr, "one EBR per logical partition");
        region_matches_disk(img, ebr);
        cr_assert_eq(ebr->data[510], 0x55);
        cr_assert_eq(ebr->data[511], 0xaa);
    }
    cr_assert_null(region(dd, ASR_REGION_EBR, 2));
    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 3, "the extended container is not a volume");
    cr_assert(vol(v, n, 1)->critical, "the active partition");
    cr_assert_not(vol(v, n, 6)->critical);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(img);
}

Test(layout, unpartitioned_disk_is_one_volume)
{
    fsfix_need("mkfs.ext4");
    char *img = scratch_path("bare.img");
    char *src = scratch_path("baresrc");
    cr_assert_eq(fsfix_sh("mkdir -p %s/boot && touch %s/boot/vmlinuz-6.1.0 && truncate -s 64M %s && "
                          "mkfs.ext4 -q -F -d %s %s",
                          src, src, img, src, img),
                 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_desc(d)->label, ASR_LABEL_NONE);
    cr_assert_eq(asr_disk_desc(d)->region_count, 0);
    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0].partition_number, 0);
    cr_assert_eq(v[0].size_bytes, 64ull << 20);
    cr_assert_str_eq(v[0].map.fs_type, "ext4");
    cr_assert(v[0].critical, "holds /boot/vmlinuz*");
    cr_assert(strstr(v[0].reason, "vmlinuz"), "%s", v[0].reason);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(img);
    free(src);
}

Test(layout, four_k_native_loop_device)
{
    fsfix_need("losetup");
    fsfix_need("sfdisk");
    if (geteuid() != 0)
        cr_skip_test("loop devices need root");
    char *img = scratch_path("4kn.img");
    cr_assert_eq(fsfix_sh("truncate -s 64M %s", img), 0);
    char *out = fsfix_sh_out("losetup -f --show --sector-size 4096 %s 2>/dev/null", img);
    if (!out)
        cr_skip_test("this kernel gives no loop device with 4096-byte sectors");
    snprintf(loopdev, sizeof loopdev, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    cr_assert_eq(fsfix_sh("sfdisk --quiet %s <<'EOF'\nlabel: gpt\nstart=256, size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
                          "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nEOF",
                          loopdev),
                 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(loopdev, &d, &err), ASR_OK, "%s", err.msg);
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    cr_assert_eq(dd->logical_sector, 4096);
    cr_assert_eq(dd->size_bytes, 64ull << 20);
    cr_assert_eq(dd->partition_count, 2);
    cr_assert_eq(dd->partitions[0].start_bytes, 256ull * 4096);
    cr_assert_eq(region(dd, ASR_REGION_MBR, 0)->length, 4096);
    cr_assert_eq(region(dd, ASR_REGION_GPT_HEADER, 0)->offset, 4096);
    cr_assert_eq(region(dd, ASR_REGION_GPT_BACKUP_HEADER, 0)->offset, (64ull << 20) - 4096);
    region_matches_disk(loopdev, region(dd, ASR_REGION_GPT_ENTRIES, 0));
    asr_disk_close(d);
    free(img);
}

Test(layout, corrupt_primary_gpt_uses_the_backup)
{
    char *img = make_gpt_disk();
    /* Damage the primary header's CRC: libfdisk must fall back to the backup header. */
    cr_assert_eq(fsfix_sh("printf '\\377\\377\\377\\377' | dd of=%s bs=1 seek=528 conv=notrunc status=none", img), 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_desc(d)->partition_count, 5, "partitions come from the backup GPT");
    cr_assert_str_eq(asr_disk_desc(d)->partitions[1].name, "EFI System");
    asr_disk_close(d);
    free(img);
}

Test(layout, partition_past_the_end_is_refused)
{
    fsfix_need("sfdisk");
    char *img = scratch_path("past.img");
    cr_assert_eq(fsfix_sh("truncate -s 100M %s && sfdisk --quiet %s <<'EOF'\nlabel: dos\nstart=2048, size=90MiB, type=83\nEOF\n"
                          "truncate -s 50M %s",
                          img, img, img),
                 0);
    struct asr_disk *d = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_E_CORRUPT);
    cr_assert_null(d);
    cr_assert(strstr(err.msg, "past the end"), "%s", err.msg);
    cr_assert(strstr(err.msg, "partition 1"), "%s", err.msg);
    free(img);
}

Test(layout, overlapping_partitions_warn)
{
    fsfix_need("sfdisk");
    char *img = scratch_path("overlap.img");
    /* sfdisk refuses overlaps, so write the second MBR entry by hand. */
    cr_assert_eq(fsfix_sh("truncate -s 100M %s && sfdisk --quiet %s <<'EOF'\nlabel: dos\nstart=2048, size=40MiB, type=83\n"
                          "start=83968, size=40MiB, type=83\nEOF",
                          img, img),
                 0);
    uint8_t start[4] = {0x00, 0x48, 0x00, 0x00}; /* second entry now starts at sector 18432 */
    int fd = open(img, O_WRONLY);
    cr_assert_eq(pwrite(fd, start, 4, 446 + 16 + 8), 4);
    close(fd);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert(strstr(asr_disk_warnings(d), "overlap"), "warnings: %s", asr_disk_warnings(d));
    asr_disk_close(d);
    free(img);
}

Test(layout, not_a_disk)
{
    struct asr_disk *d = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open("/nonexistent/disk.img", &d, &err), ASR_E_IO);
    cr_assert(strstr(err.msg, "/nonexistent/disk.img"), "%s", err.msg);
    cr_assert_eq(asr_disk_open("/dev/null", &d, &err), ASR_E_ARG);
}

/* An OCFS (version 1) volume header whose MOUNT length field says 65535 for a 128-byte field:
 * libblkid 2.38's prober copies that many bytes off its stack, and blkid -p itself dies of it.
 * Neither libfdisk's collision check (on the whole disk) nor the per-partition probe may run
 * that prober: the disk is read, and the volume is "no filesystem recognised", captured whole.
 * Unpartitioned, then as the first partition of a GPT disk. (The ASan build catches the stray
 * read itself; elsewhere it may or may not crash, depending on what lies above the stack.) */
static void write_ocfs_header(const char *path, uint64_t volume)
{
    static const uint8_t mount_len[2] = {0xff, 0xff};
    fsfix_write_at(path, volume + 8192, "OracleCFS", 9);
    fsfix_write_at(path, volume + 8192 + 8 + 128 + 128, mount_len, sizeof mount_len);
}

Test(layout, crafted_ocfs_header_is_not_probed)
{
    char *bare = scratch_path("ocfs-bare.img"), *gpt = scratch_path("ocfs-gpt.img");
    cr_assert_eq(fsfix_sh("truncate -s 16M %s", bare), 0);
    write_ocfs_header(bare, 0);
    if (fsfix_have("blkid"))
        cr_log_info("blkid -p on the fixture exits with %d (139: SIGSEGV)",
                    fsfix_sh("sh -c 'blkid -p %s' >/dev/null 2>&1", bare));
    fsfix_need("sfdisk");
    cr_assert_eq(fsfix_sh("truncate -s 20M %s && echo 'start=2048, size=16MiB, type=linux' | sfdisk -q -X gpt %s"
                          " >/dev/null",
                          gpt, gpt),
                 0);
    write_ocfs_header(gpt, 1 << 20);
    const char *disks[] = {bare, gpt};
    for (size_t i = 0; i < 2; i++) {
        struct asr_disk *d;
        struct asr_error err = {0};
        cr_assert_eq(asr_disk_open(disks[i], &d, &err), ASR_OK, "%s", err.msg);
        struct asr_volume_info *v;
        size_t n;
        cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(v[0].map.fs_type, "");
        cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_FULL);
        cr_assert_not_null(strstr(v[0].warning, "no filesystem recognised"), "%s", v[0].warning);
        asr_volume_infos_free(v, n);
        asr_disk_close(d);
    }
    free(bare);
    free(gpt);
}

/* ---- a filesystem on the whole disk: boot sector or MBR (the rule is in disk.c) ---------- */

/* A file of mib MiB made by a shell command run on it ("$IMG" names the file). */
static char *made_disk(const char *name, unsigned mib, const char *cmd)
{
    char *img = scratch_path(name);
    cr_assert_eq(fsfix_sh("truncate -s %uM %s && IMG=%s && (%s) >/dev/null 2>&1", mib, img, img, cmd), 0, "%s", cmd);
    return img;
}

struct whole_case {
    const char *name, *tool, *mkfs; /* mkfs: a command on "$IMG" */
    unsigned mib;
    const char *fs, *boot; /* blkid's TYPE, and how the reading names the boot sector */
};

static const struct whole_case whole_cases[] = {
    {"fat12", "mkfs.vfat", "mkfs.vfat -F 12 \"$IMG\"", 4, "vfat", "a FAT12 boot sector"},
    {"fat16", "mkfs.vfat", "mkfs.vfat -F 16 -s 4 \"$IMG\"", 32, "vfat", "a FAT16 boot sector"},
    {"fat16-I", "mkfs.vfat", "mkfs.vfat -I \"$IMG\"", 16, "vfat", "a FAT16 boot sector"},
    {"fat32-s1", "mkfs.vfat", "mkfs.vfat -F 32 -s 1 \"$IMG\"", 40, "vfat", "a FAT32 boot sector"},
    {"fat32-s8-I", "mkfs.vfat", "mkfs.vfat -I -F 32 -s 8 \"$IMG\"", 300, "vfat", "a FAT32 boot sector"},
    {"exfat", "mkfs.exfat", "mkfs.exfat \"$IMG\"", 16, "exfat", "an exFAT boot sector"},
    {"ntfs", "mkntfs", "mkntfs -Q -F -q \"$IMG\"", 16, "ntfs", "an NTFS boot sector"},
};

/* exFAT's boot checksum covers its boot code, where an MBR's entries would lie: after writing
 * there, the checksum sector (11) and the backup boot region (12-23) are made again, as Windows
 * makes them around its own boot code. */
static void exfat_reseal(const char *img)
{
    uint8_t boot[12 * 512];
    fsfix_read_at(img, 0, boot, sizeof boot);
    cr_assert_eq(boot[108], 9, "512-byte sectors");
    uint32_t sum = 0;
    for (size_t i = 0; i < 11 * 512; i++)
        if (i != 106 && i != 107 && i != 112)
            sum = ((sum & 1) ? 0x80000000u : 0) + (sum >> 1) + boot[i];
    for (size_t i = 0; i < 512; i += 4)
        memcpy(boot + 11 * 512 + i, &sum, 4);
    fsfix_write_at(img, 0, boot, sizeof boot);
    fsfix_write_at(img, sizeof boot, boot, sizeof boot);
}

/* d was read as one whole-disk volume of filesystem fs, its reading naming boot and why; the
 * volume's used map comes from the filesystem. */
static void assert_whole_disk(const char *img, const char *fs, const char *boot, const char *why)
{
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s: %s", img, err.msg);
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    cr_assert_eq(dd->label, ASR_LABEL_NONE, "%s: read as a partition table (%s)", img, asr_disk_reading(d));
    cr_assert_eq(dd->partition_count, 0);
    cr_assert_eq(dd->region_count, 0, "no boot regions: sector 0 belongs to the filesystem");
    char want[160];
    snprintf(want, sizeof want, "read as a whole-disk %s: sector 0 is %s and ", fs, boot);
    cr_assert_eq(strncmp(asr_disk_reading(d), want, strlen(want)), 0, "%s: %s", img, asr_disk_reading(d));
    cr_assert_not_null(strstr(asr_disk_reading(d), why), "%s: %s", img, asr_disk_reading(d));
    cr_assert_str_eq(asr_disk_warnings(d), "");
    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0].partition_number, 0);
    cr_assert_eq(v[0].start_bytes, 0);
    cr_assert_eq(v[0].size_bytes, dd->size_bytes);
    cr_assert_str_eq(v[0].map.fs_type, fs);
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_USED, "%s: %s", img, v[0].warning);
    cr_assert_gt(asr_ranges_bytes(&v[0].map.used), 0);
    cr_assert_eq(asr_select_volumes(v, n, "all", &err), ASR_OK);
    cr_assert_gt(asr_volume_capture_bytes(&v[0]), 0, "a recognised filesystem is never 'nothing to capture'");
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
}

/* mkfs.vfat, mkfs.exfat and mkntfs -F on a whole disk leave sector 0 ending in 55 AA with zeros
 * where an MBR keeps its entries: libfdisk reads an empty MBR. */
Test(layout, boot_sector_filesystems_on_the_whole_disk)
{
    for (size_t i = 0; i < sizeof whole_cases / sizeof whole_cases[0]; i++) {
        const struct whole_case *c = &whole_cases[i];
        if (!fsfix_have(c->tool)) {
            cr_log_warn("%s: %s not installed, skipped", c->name, c->tool);
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "%s.img", c->name);
        char *img = made_disk(name, c->mib, c->mkfs);
        uint8_t sig[2];
        fsfix_read_at(img, 510, sig, 2);
        cr_assert(sig[0] == 0x55 && sig[1] == 0xaa, "%s: the fixture's sector 0 ends in 55 AA", c->name);
        assert_whole_disk(img, c->fs, c->boot, "its MBR entries are all empty");
        free(img);
    }
}

/* What lies where an MBR keeps its entries in boot sectors made elsewhere: Windows' messages
 * (FAT32 by Windows XP, NTFS by Windows 7), boot code read as an entry past the end (the
 * numbers of the report), and every other impossibility of the rule, one at a time. */
Test(layout, boot_sector_with_impossible_entries_is_one_volume)
{
    fsfix_need("mkfs.vfat");
    static const char xp[] = "\r\nRemove disks or other media.\xff\r\nDisk error\xff\r\nPress any key to restart\r\n";
    static const char win7[] = "A disk read error occurred\r\n\0BOOTMGR is missing\r\n\0BOOTMGR is compressed\r\n\0"
                               "Press Ctrl+Alt+Del to restart\r\n";
    /* boot flag, type, first sector, sectors */
    struct entry {
        uint8_t boot, type;
        uint32_t first, count;
    };
    static const struct {
        const char *what;
        struct entry e[4];
        const char *why;
    } cases[] = {
        {"past the end", {{0, 0x07, 6579571, 1917848077}}, "entry 1 (1917848077 sectors at sector 6579571) ends past"},
        {"no sectors", {{0x80, 0x0c, 2048, 0}}, "entry 1 (type 0x0c) has no sectors"},
        {"at sector 0", {{0, 0x0c, 2048, 4096}, {0, 0x0c, 0, 8192}}, "entry 2 starts at sector 0"},
        {"overlapping", {{0, 0x0c, 2048, 8192}, {0, 0x83, 16384, 4096}, {0, 0x83, 8192, 4096}},
         "entries 1 and 3 overlap"},
        {"bad boot flag", {{0, 0x0c, 2048, 4096}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0x01, 0, 0, 0}},
         "entry 4 has boot flag 0x01"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *img = made_disk("entries.img", 32, "mkfs.vfat -F 16 \"$IMG\"");
        for (int k = 0; k < 4; k++) {
            uint8_t raw[16] = {cases[i].e[k].boot, 0, 0, 0, cases[i].e[k].type};
            memcpy(raw + 8, &cases[i].e[k].first, 4);
            memcpy(raw + 12, &cases[i].e[k].count, 4);
            fsfix_write_at(img, 446 + 16 * k, raw, sizeof raw);
        }
        cr_log_info("%s", cases[i].what);
        assert_whole_disk(img, "vfat", "a FAT16 boot sector", cases[i].why);
        free(img);
    }
    char *fat32 = made_disk("xp.img", 40, "mkfs.vfat -F 32 \"$IMG\"");
    fsfix_write_at(fat32, 0x1ac, xp, sizeof xp - 1);
    assert_whole_disk(fat32, "vfat", "a FAT32 boot sector", "entry 1 has boot flag 0x6f");
    free(fat32);
    if (fsfix_have("mkntfs")) {
        char *ntfs = made_disk("win7.img", 16, "mkntfs -Q -F -q \"$IMG\"");
        fsfix_write_at(ntfs, 0x18a, win7, sizeof win7 - 1);
        assert_whole_disk(ntfs, "ntfs", "an NTFS boot sector", "its MBR entries are impossible: entry 1 has boot flag");
        free(ntfs);
    }
    if (fsfix_have("mkfs.exfat")) {
        char *exfat = made_disk("exfat-garbage.img", 16, "mkfs.exfat \"$IMG\"");
        uint8_t e[16] = {0x00, 0x20, 0x21, 0x00, 0x07, 0xfe, 0xff, 0xff, 0x73, 0x65, 0x64, 0x00, 0x0d, 0x0a, 0x50, 0x72};
        fsfix_write_at(exfat, 446, e, sizeof e);
        exfat_reseal(exfat);
        assert_whole_disk(exfat, "exfat", "an exFAT boot sector", "entry 1 (");
        free(exfat);
    }
}

/* An extended partition inside the disk whose EBR describes a logical partition past its end:
 * the entries pass, libfdisk's reading of the chain does not. */
Test(layout, boot_sector_with_an_impossible_ebr_chain_is_one_volume)
{
    fsfix_need("mkfs.vfat");
    char *img = made_disk("ebr.img", 32, "mkfs.vfat -F 16 \"$IMG\"");
    uint8_t entry[16] = {0, 0, 0, 0, 0x05}, ebr[512] = {0};
    uint32_t first = 40000, count = 20000, logical[2] = {1, 100000000};
    memcpy(entry + 8, &first, 4);
    memcpy(entry + 12, &count, 4);
    fsfix_write_at(img, 446, entry, sizeof entry);
    ebr[446 + 4] = 0x83;
    memcpy(ebr + 446 + 8, logical, 8);
    ebr[510] = 0x55, ebr[511] = 0xaa;
    fsfix_write_at(img, 40000ull * 512, ebr, sizeof ebr);
    assert_whole_disk(img, "vfat", "a FAT16 boot sector", "libfdisk's reading of its MBR fails (partition 5");
    free(img);
}

/* Sector 0 of a partitioned disk overwritten, but for its disk signature and table, by the boot
 * sector of a FAT16 filesystem the size of the disk (blkid -p calls the disk vfat). */
static char *mbr_disk_with_bpb(const char *name)
{
    fsfix_need("sfdisk");
    fsfix_need("mkfs.vfat");
    fsfix_need("blkid");
    char *img = made_disk(name, 64, "printf 'label: dos\\nstart=2048, size=32MiB, type=c\\nstart=67584, type=83\\n' | "
                                    "sfdisk -q \"$IMG\"");
    char *bpb = made_disk("bpb.img", 64, "mkfs.vfat -F 16 \"$IMG\"");
    cr_assert_eq(fsfix_sh("dd if=%s of=%s bs=440 count=1 conv=notrunc status=none", bpb, img), 0);
    char *type = fsfix_sh_out("blkid -p -o value -s TYPE %s", img);
    cr_assert_not_null(type);
    cr_assert_str_eq(type, "vfat\n", "the fixture's sector 0 is a FAT boot sector");
    free(type);
    free(bpb);
    return img;
}

/* The converse: an MBR whose sector also carries a BPB, with entries pointing at filesystems,
 * stays partitioned, and its reading says why. */
Test(layout, mbr_with_a_bpb_in_sector_0_stays_partitioned)
{
    fsfix_need("mkfs.ext4");
    char *img = mbr_disk_with_bpb("bpb-mbr.img");
    cr_assert_eq(fsfix_sh("mkfs.vfat --offset 2048 %s 32768 >/dev/null 2>&1 && mkfs.ext4 -q -F -E offset=%d %s 30M",
                          img, 67584 * 512, img),
                 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    cr_assert_eq(dd->label, ASR_LABEL_MBR, "%s", asr_disk_reading(d));
    cr_assert_eq(dd->partition_count, 2);
    region_matches_disk(img, region(dd, ASR_REGION_MBR, 0));
    cr_assert_str_eq(asr_disk_reading(d),
                     "read as mbr: its entries are possible and partition 1 holds vfat, though sector 0 is also a "
                     "FAT16 boot sector");
    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(vol(v, n, 1)->map.fs_type, "vfat");
    cr_assert_str_eq(vol(v, n, 2)->map.fs_type, "ext4");
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    /* Only the second partition formatted: the table still stands. */
    cr_assert_eq(fsfix_sh("dd if=/dev/zero of=%s bs=1M seek=1 count=1 conv=notrunc status=none", img), 0);
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_desc(d)->label, ASR_LABEL_MBR, "%s", asr_disk_reading(d));
    cr_assert_not_null(strstr(asr_disk_reading(d), "partition 2 holds ext4"), "%s", asr_disk_reading(d));
    asr_disk_close(d);
    free(img);
}

/* The same table with nothing recognisable in its partitions: read as the whole-disk vfat, but
 * captured whole, so that nothing is lost whichever reading is right. */
Test(layout, bpb_and_entries_pointing_at_nothing_is_captured_whole)
{
    char *img = mbr_disk_with_bpb("bpb-empty.img");
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_desc(d)->label, ASR_LABEL_NONE, "%s", asr_disk_reading(d));
    cr_assert_not_null(strstr(asr_disk_reading(d), "no partition its MBR entries describe holds anything"), "%s",
                       asr_disk_reading(d));
    cr_assert_not_null(asr_disk_full_capture_reason(d));
    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].map.fs_type, "vfat");
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_FULL);
    cr_assert_not_null(strstr(v[0].warning, "every byte is kept"), "%s", v[0].warning);
    cr_assert_eq(asr_volume_remap(d, &v[0], true, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_FULL, "--freeze's second map does not shrink it");
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(img);
}

/* A GPT is left alone, even when its protective MBR carries a FAT boot sector's BPB. */
Test(layout, gpt_whose_protective_mbr_carries_a_bpb_stays_gpt)
{
    fsfix_need("mkfs.vfat");
    char *img = make_gpt_disk();
    char *bpb = made_disk("gpt-bpb.img", 200, "mkfs.vfat -F 32 \"$IMG\"");
    cr_assert_eq(fsfix_sh("dd if=%s of=%s bs=440 count=1 conv=notrunc status=none", bpb, img), 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_desc(d)->label, ASR_LABEL_GPT);
    cr_assert_eq(asr_disk_desc(d)->partition_count, 5);
    cr_assert_str_eq(asr_disk_reading(d), "read as gpt: sector 0 is its protective (or hybrid) MBR");
    asr_disk_close(d);
    free(bpb);
    free(img);
}

/* The gap before a first partition at 100 MiB: its first MiB is a raw region, the rest a disk
 * area volume, always captured (whatever --volumes says), found on MBR and GPT alike. */
static void check_wide_gap(const char *label, uint64_t gap_start)
{
    fsfix_need("sfdisk");
    char *img = scratch_path("widegap.img");
    cr_assert_eq(fsfix_sh("rm -f %s && truncate -s 160M %s && printf 'label: %s\\nstart=204800, size=20480\\n' | "
                          "sfdisk --quiet %s",
                          img, img, label, img),
                 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    const struct asr_disk_desc *dd = asr_disk_desc(d);
    const struct asr_region_desc *gap = region(dd, ASR_REGION_GAP, 0);
    cr_assert_not_null(gap, "%s: a raw gap region", label);
    cr_assert_eq(gap->offset, gap_start, "%s", label);
    cr_assert_eq(gap->offset + gap->length, 1 << 20, "%s: the raw region stops at 1 MiB", label);
    cr_assert_null(region(dd, ASR_REGION_GAP, 1), "%s: no more raw gap regions", label);
    struct asr_range area;
    cr_assert(asr_disk_front_area(d, &area), "%s", label);
    cr_assert_eq(area.offset, 1 << 20, "%s", label);
    cr_assert_eq(area.length, (100ull << 20) - (1 << 20), "%s: the area ends at the first partition", label);
    cr_assert_str_eq(asr_disk_warnings(d), "", "%s", label);

    struct asr_volume_info *v;
    size_t n;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 2, "%s: the partition and the area", label);
    const struct asr_volume_info *a = v[0].kind == ASR_VOLUME_AREA ? &v[0] : &v[1];
    cr_assert_eq(a->kind, ASR_VOLUME_AREA);
    cr_assert_eq(a->start_bytes, area.offset);
    cr_assert_eq(a->size_bytes, area.length);
    cr_assert_eq(a->natural_capture, ASR_CAPTURE_FULL);
    const char *selections[] = {"critical", "all", "1", NULL};
    for (const char **s = selections; *s; s++) {
        cr_assert_eq(asr_select_volumes(v, n, *s, &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(a->capture, ASR_CAPTURE_FULL, "%s: the area is captured with --volumes %s", label, *s);
    }
    cr_assert_neq(asr_select_volumes(v, n, "0", &err), ASR_OK, "%s: 0 names no volume on a partitioned disk", label);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(img);
}

Test(layout, wide_gap_becomes_a_disk_area)
{
    check_wide_gap("dos", 512);
    check_wide_gap("gpt", 1024 + 128 * 128);
}

/* A table with no partition: no first partition to stop at, so the gap is its first MiB only,
 * and the layout says so. */
Test(layout, no_partitions_keeps_the_first_mib_and_says_so)
{
    fsfix_need("sfdisk");
    char *img = scratch_path("empty.img");
    cr_assert_eq(fsfix_sh("truncate -s 64M %s && echo 'label: dos' | sfdisk --quiet %s", img, img), 0);
    struct asr_disk *d;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(img, &d, &err), ASR_OK, "%s", err.msg);
    struct asr_range area;
    cr_assert_not(asr_disk_front_area(d, &area));
    cr_assert_eq(region(asr_disk_desc(d), ASR_REGION_GAP, 0)->length, (1 << 20) - 512);
    cr_assert(strstr(asr_disk_warnings(d), "no partitions") != NULL, "%s", asr_disk_warnings(d));
    asr_disk_close(d);
    free(img);
}
