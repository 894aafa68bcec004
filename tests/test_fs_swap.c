/* Linux swap used-byte maps (asr_swap_used): mkswap's header page at each page size is all that
 * is kept, and a copy of only that page onto garbage must read back (blkid) with the same UUID
 * and label; damaged headers and hibernation images (every signature blkid calls swsuspend) are
 * refused, and the disk analysis captures a swap partition by its header and a hibernated one
 * whole, saying why. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "fsfix.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(fs_swap, .fini = teardown, .timeout = 60);

#define MIB (1ull << 20)
#define PART_BASE MIB /* sector 2048, where sfdisk puts the first partition */
#define UUID "2f6d6a4e-5c3b-4a1e-9d2e-0123456789ab"
#define LABEL "asr-swap"

/* Header fields (union swap_header in the kernel's include/linux/swap.h). */
#define SWAP_VERSION 1024
#define SWAP_LAST_PAGE 1028
#define SWAP_NR_BADPAGES 1032

/* A swap area of mib MiB made by mkswap at page size page, its pages past the header filled with
 * garbage as swapped-out pages would be. */
static char *make_swap(unsigned page, unsigned mib)
{
    fsfix_need("mkswap");
    char *img = scratch_path("swap.img");
    cr_assert_eq(fsfix_sh("set -e; rm -f %1$s; head -c %2$uM /dev/urandom > %1$s;"
                          "mkswap -q -p %3$u -U " UUID " -L " LABEL " %1$s",
                          img, mib, page),
                 0, "mkswap -p %u", page);
    return img;
}

static void put_u32(const char *path, uint64_t off, uint32_t v, bool big)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[big ? 3 - i : i] = (uint8_t)(v >> 8 * i);
    fsfix_write_at(path, off, b, 4);
}

/* A disk image file: size bytes of garbage with img's bytes at base (the window's start). */
static char *embed(const char *img, uint64_t base, uint64_t size)
{
    char *disk = scratch_path("disk.img");
    cr_assert_eq(fsfix_sh("set -e; rm -f %1$s; head -c %2$llu /dev/urandom > %1$s;"
                          "dd if=%3$s of=%1$s bs=64K seek=%4$llu oflag=seek_bytes conv=notrunc status=none",
                          disk, (unsigned long long)size, img, (unsigned long long)base),
                 0);
    return disk;
}

static int map_swap(const char *disk, uint64_t base, uint64_t size, struct asr_usedmap *m, struct asr_error *err)
{
    struct asr_window w = fsfix_window(disk, base, size);
    int rc = asr_swap_used(&w, m, err);
    close(w.fd);
    return rc;
}

/* blkid's value of tag on path ("" when it has none). */
static char *blkid_tag(const char *path, const char *tag)
{
    char *out = fsfix_sh_out("blkid -p -o value -s %s %s || true", tag, path);
    cr_assert_not_null(out);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static void expect_blkid(const char *path, const char *tag, const char *want)
{
    char *v = blkid_tag(path, tag);
    cr_assert_str_eq(v, want, "blkid %s of %s: %s, expected %s", tag, path, v, want);
    free(v);
}

/* At each page size mkswap knows: the map is the header page, nothing more, read at a 1 MiB
 * offset; that page alone on garbage is a swap area blkid names as the original. */
Test(fs_swap, header_page_alone_keeps_identity)
{
    fsfix_need("blkid");
    static const unsigned pages[] = {4096, 8192, 16384, 32768, 65536};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        char *img = make_swap(pages[i], 16), *disk = embed(img, PART_BASE, 18 * MIB);
        char *target = scratch_path("target.img");
        struct asr_usedmap m = {0};
        struct asr_error err = {0};
        cr_assert_eq(map_swap(disk, PART_BASE, 16 * MIB, &m, &err), ASR_OK, "page %u: %s", pages[i], err.msg);
        cr_assert_str_eq(m.fs_type, "swap");
        cr_assert_str_eq(m.fs_uuid, UUID);
        cr_assert_str_eq(m.fs_label, LABEL);
        cr_assert_eq(m.block_size, pages[i]);
        cr_assert_eq(m.used.n, 1);
        cr_assert_eq(m.used.v[0].offset, 0);
        cr_assert_eq(m.used.v[0].length, pages[i], "page %u: %llu bytes mapped", pages[i],
                     (unsigned long long)m.used.v[0].length);
        cr_log_info("mkswap -p %u, 16 MiB: %llu bytes used", pages[i], (unsigned long long)asr_ranges_bytes(&m.used));

        fsfix_copy_used(disk, PART_BASE, &m.used, target, 16 * MIB);
        expect_blkid(target, "TYPE", "swap");
        expect_blkid(target, "UUID", UUID);
        expect_blkid(target, "LABEL", LABEL);
        if (fsfix_have("swaplabel"))
            cr_assert_eq(fsfix_sh("swaplabel %s | grep -qx 'LABEL: " LABEL "'", target), 0);
        asr_usedmap_free(&m);
        free(img);
        free(disk);
        free(target);
    }
}

/* A header written by a big-endian machine (version 1 in its byte order) is a swap area too. */
Test(fs_swap, big_endian_header)
{
    char *img = make_swap(4096, 4);
    put_u32(img, SWAP_VERSION, 1, true);
    put_u32(img, SWAP_LAST_PAGE, 1023, true);
    put_u32(img, SWAP_NR_BADPAGES, 0, true);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(map_swap(img, 0, 4 * MIB, &m, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(m.fs_uuid, UUID);
    cr_assert_eq(asr_ranges_bytes(&m.used), 4096);
    asr_usedmap_free(&m);
    free(img);
}

/* The old version 0 header ("SWAP-SPACE"): a page bitmap, no names; still one page. */
Test(fs_swap, version_0_header)
{
    char *img = make_swap(4096, 4);
    fsfix_write_at(img, 4096 - 10, "SWAP-SPACE", 10);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(map_swap(img, 0, 4 * MIB, &m, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(m.fs_type, "swap");
    cr_assert_str_eq(m.fs_uuid, "");
    cr_assert_eq(asr_ranges_bytes(&m.used), 4096);
    asr_usedmap_free(&m);
    free(img);
}

static void expect_refusal(const char *img, uint64_t size, int code, const char *want)
{
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    int rc = map_swap(img, 0, size, &m, &err);
    cr_log_info("refused (%s): %s", asr_status_name(rc), err.msg);
    cr_assert_eq(rc, code, "asr_swap_used returned %s (%s), expected %s", asr_status_name(rc), err.msg,
                 asr_status_name(code));
    cr_assert_not_null(strstr(err.msg, want), "message \"%s\" does not say \"%s\"", err.msg, want);
    cr_assert_eq(m.used.n, 0);
    asr_usedmap_free(&m);
}

Test(fs_swap, refuses_unknown_version)
{
    char *img = make_swap(4096, 4);
    put_u32(img, SWAP_VERSION, 2, false);
    expect_refusal(img, 4 * MIB, ASR_E_CORRUPT, "header version 2 unknown");
    free(img);
}

/* The bad-page list ends where the signature starts: 637 entries in a 4 KiB page, as the
 * kernel's MAX_SWAP_BADPAGES; one more cannot be a real header. */
Test(fs_swap, bad_page_count_bounded_by_the_page)
{
    char *img = make_swap(4096, 4);
    put_u32(img, SWAP_NR_BADPAGES, 637, false);
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    cr_assert_eq(map_swap(img, 0, 4 * MIB, &m, &err), ASR_OK, "%s", err.msg);
    asr_usedmap_free(&m);
    put_u32(img, SWAP_NR_BADPAGES, 638, false);
    expect_refusal(img, 4 * MIB, ASR_E_CORRUPT, "638 bad pages listed, more than the header holds (637)");
    free(img);
}

Test(fs_swap, refuses_no_signature)
{
    char *img = scratch_path("garbage.img");
    cr_assert_eq(fsfix_sh("head -c 1M /dev/urandom > %s", img), 0);
    expect_refusal(img, MIB, ASR_E_CORRUPT, "no SWAPSPACE2 or SWAP-SPACE signature");
    free(img);
    img = make_swap(4096, 4);
    expect_refusal(img, 4095, ASR_E_CORRUPT, "no SWAPSPACE2 or SWAP-SPACE signature"); /* smaller than a page */
    free(img);
}

/* Hibernation as the kernel (and uswsusp) leaves it: the signature at the end of the header
 * page replaced by the hibernation one, the original kept in the 10 bytes before it, and the
 * memory image in the pages after (here the garbage make_swap left). */
static void hibernate(const char *img, uint64_t at, unsigned page, const char *sig)
{
    char tail[20] = "SWAPSPACE2";
    memcpy(tail + 10, sig, strlen(sig));
    fsfix_write_at(img, at + page - sizeof tail, tail, sizeof tail);
}

/* Each signature blkid knows as swsuspend is refused, saying which and where: the swap area then
 * holds the memory image, which a header-only capture would lose. */
Test(fs_swap, refuses_hibernation_images)
{
    static const char *const sigs[] = {"S1SUSPEND", "S2SUSPEND", "ULSUSPEND", "LINHIB0001"};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        char *img = make_swap(4096, 4);
        hibernate(img, 0, 4096, sigs[i]);
        if (fsfix_have("blkid"))
            expect_blkid(img, "TYPE", "swsuspend");
        char want[64];
        snprintf(want, sizeof want, "holds a hibernation image (%s signature at offset 4086)", sigs[i]);
        expect_refusal(img, 4 * MIB, ASR_E_UNSUPPORTED, want);
        free(img);
    }
}

/* At a larger page size too: mkswap -p 16384, hibernated by a kernel with 16 KiB pages. */
Test(fs_swap, refuses_hibernation_image_at_larger_page_size)
{
    char *img = make_swap(16384, 4);
    hibernate(img, 0, 16384, "S1SUSPEND");
    if (fsfix_have("blkid"))
        expect_blkid(img, "TYPE", "swsuspend");
    expect_refusal(img, 4 * MIB, ASR_E_UNSUPPORTED, "holds a hibernation image (S1SUSPEND signature at offset 16374)");
    free(img);
}

/* A valid 4 KiB header does not excuse a hibernation signature where a 64 KiB page would end:
 * blkid looks at every page size, and so does the parser, the wary way round (a whole capture
 * costs space; a header-only one of a real image would lose it). */
Test(fs_swap, hibernation_signature_at_any_page_size_wins)
{
    char *img = make_swap(4096, 4);
    fsfix_write_at(img, 65536 - 10, "LINHIB0001", 10);
    expect_refusal(img, 4 * MIB, ASR_E_UNSUPPORTED, "holds a hibernation image (LINHIB0001 signature at offset 65526)");
    free(img);
}

/* TuxOnIce keeps the swap signature valid and writes its own magic at offset 0; blkid calls that
 * swsuspend too. */
Test(fs_swap, refuses_tuxonice_image)
{
    char *img = make_swap(4096, 4);
    fsfix_write_at(img, 0, "\xed\xc3\x02\xe9\x98\x56\xe5\x0c", 8);
    if (fsfix_have("blkid"))
        expect_blkid(img, "TYPE", "swsuspend");
    expect_refusal(img, 4 * MIB, ASR_E_UNSUPPORTED, "holds a hibernation image (TuxOnIce signature at offset 0)");
    free(img);
}

/* The disk analysis: a swap partition is captured by its header; a hibernated one, which blkid
 * calls "swsuspend", goes to the same header parser, is refused there, and is captured whole with
 * a warning saying why, keeping the names blkid read from its header. */
Test(fs_swap, analysis_captures_swap_header_and_hibernated_swap_whole)
{
    fsfix_need("sfdisk");
    char *img = make_swap(4096, 16), *disk = scratch_path("disk.img");
    cr_assert_eq(fsfix_sh("set -e; truncate -s 40M %1$s;"
                          "printf 'label: gpt\\nstart=2048, size=32768, type=swap\\n"
                          "start=34816, size=32768, type=swap\\n'"
                          " | sfdisk -q %1$s >/dev/null;"
                          "dd if=%2$s of=%1$s bs=1M seek=1 conv=notrunc status=none;"
                          "dd if=%2$s of=%1$s bs=1M seek=17 conv=notrunc status=none",
                          disk, img),
                 0);
    hibernate(disk, 17 * MIB, 4096, "S1SUSPEND");
    if (fsfix_have("blkid")) {
        char *type = fsfix_sh_out("blkid -p -O %llu -o value -s TYPE %s", 17 * MIB, disk);
        cr_assert_not_null(type);
        cr_assert_str_eq(type, "swsuspend\n", "blkid says %s", type);
        free(type);
    }
    struct asr_disk *d = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(disk, &d, &err), ASR_OK, "%s", err.msg);
    struct asr_volume_info *v = NULL;
    size_t n = 0;
    cr_assert_eq(asr_disk_analyze(d, 0, &v, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].map.fs_type, "swap");
    cr_assert_str_eq(v[0].map.fs_uuid, UUID);
    cr_assert_str_eq(v[0].map.fs_label, LABEL);
    cr_assert_eq(v[0].natural_capture, ASR_CAPTURE_HEADER, "swap capture %u (%s)", v[0].natural_capture, v[0].warning);
    cr_assert_eq(asr_ranges_bytes(&v[0].map.used), 4096);
    cr_log_info("hibernated swap: capture %u, warning: %s", v[1].natural_capture, v[1].warning);
    cr_assert_str_eq(v[1].map.fs_type, "swsuspend");
    cr_assert_str_eq(v[1].map.fs_uuid, UUID);
    cr_assert_str_eq(v[1].map.fs_label, LABEL);
    cr_assert_eq(v[1].natural_capture, ASR_CAPTURE_FULL);
    cr_assert_eq(v[1].map.used.n, 0);
    cr_assert_str_eq(v[1].warning, "swap: holds a hibernation image (S1SUSPEND signature at offset 4086): captured "
                                   "whole, since the machine resumes from these pages");
    /* Selected, it is read whole. */
    cr_assert_eq(asr_select_volumes(v, n, "all", &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_volume_capture_bytes(&v[1]), 16 * MIB);
    cr_assert_eq(asr_volume_capture_bytes(&v[0]), 4096);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    free(img);
    free(disk);
}
