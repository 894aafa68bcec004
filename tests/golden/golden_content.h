/* What the golden images hold, shared by their generator (make_golden.c, run once per format
 * version) and by test_golden.c, which reads the committed files forever after. Changing this
 * file changes what old images are expected to contain: never edit a version's plan. */
#ifndef ASR_GOLDEN_CONTENT_H
#define ASR_GOLDEN_CONTENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "asr_format.h"

enum golden_kind { G_DATA, G_ZERO, G_UNREADABLE, G_DUP };

struct golden_segment {
    uint32_t volume;
    uint64_t offset, length;
    enum golden_kind kind;
    uint32_t src_volume; /* G_DUP: copy of this volume's bytes ... */
    uint64_t src_offset; /* ... from here (inside one chunk of a G_DATA segment) */
};

#define GOLDEN_V1_CHUNK 32768u
#define GOLDEN_V1_SEED 0x60d5eedull
#define GOLDEN_V1_CREATED 1795400000ull
#define GOLDEN_V1_UUID "golden-image-v1!"
#define GOLDEN_MIB (1ull << 20)

/* Volume 0: 2 MiB on partition 1 (vfat); volume 1: 4 MiB on partition 2 (ext4). */
static const struct golden_segment golden_v1_plan[] = {
    {0, 0, 65536, G_DATA, 0, 0},
    {0, 65536, 65536, G_ZERO, 0, 0},
    {0, 131072, 32768, G_DATA, 0, 0},
    {0, GOLDEN_MIB, 32768, G_DUP, 0, 0},
    {1, 0, 4096, G_DATA, 0, 0},
    {1, 4096, 4096, G_UNREADABLE, 0, 0},
    {1, 8192, 5000, G_DUP, 0, 1234},
    {1, 65536, 100000, G_DATA, 0, 0},
};
#define GOLDEN_V1_SEGMENTS (sizeof golden_v1_plan / sizeof golden_v1_plan[0])

/* Volume 0's second segment is incompressible; everything else compresses. */
static inline uint8_t golden_byte(uint32_t volume, uint64_t off)
{
    if (volume == 0 && off >= 131072 && off < 131072 + 32768) {
        uint64_t x = off * 0x9e3779b97f4a7c15ull;
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ull;
        return (uint8_t)(x >> 32);
    }
    return (uint8_t)("golden asrimg v1 "[(off + volume * 5 + off / 777) % 17]);
}

/* The byte a reader must return at off of volume v (0 where nothing or zero was captured). */
static inline uint8_t golden_expected(uint32_t v, uint64_t off, int *unreadable)
{
    *unreadable = 0;
    for (unsigned i = 0; i < GOLDEN_V1_SEGMENTS; i++) {
        const struct golden_segment *s = &golden_v1_plan[i];
        if (s->volume != v || off < s->offset || off >= s->offset + s->length)
            continue;
        if (s->kind == G_DATA)
            return golden_byte(v, off);
        if (s->kind == G_DUP)
            return golden_byte(s->src_volume, s->src_offset + (off - s->offset));
        *unreadable = s->kind == G_UNREADABLE;
        return 0;
    }
    return 0;
}

/* Raw region bytes: region r's byte i. */
static inline uint8_t golden_region_byte(unsigned r, uint32_t i)
{
    return (uint8_t)(i * 31 + r * 7 + (i >> 8));
}

/* v1-disk-areas.asrimg (feature disk-areas): a 4 MiB MBR disk whose one partition starts at
 * 2 MiB. Raw regions: sector 0 (its table as the record says) and the gap's first 3584 bytes; the rest of the gap, [4096, 2 MiB),
 * is volume 0, a disk area: GOLDEN_AREA_DATA bytes of golden_byte(0, off) at offset 0 and at
 * GOLDEN_AREA_LATE, zeros between. Volume 1 is partition 1 (1 MiB): GOLDEN_AREA_DATA bytes of
 * golden_byte(1, off) at 0. Same identity as v1-basic. */
#define GOLDEN_AREA_START 4096ull
#define GOLDEN_AREA_SIZE (2 * GOLDEN_MIB - GOLDEN_AREA_START)
#define GOLDEN_AREA_DATA 20000u
#define GOLDEN_AREA_LATE (GOLDEN_MIB + 12345)

static inline uint8_t golden_area_expected(uint32_t v, uint64_t off)
{
    bool data = off < GOLDEN_AREA_DATA || (v == 0 && off >= GOLDEN_AREA_LATE && off < GOLDEN_AREA_LATE + GOLDEN_AREA_DATA);
    return data ? golden_byte(v, off) : 0;
}

/* v1-stacks.asrimg (feature stacks): disk 0 is an 8 MiB MBR disk (id 0x5eed57ac) with partition
 * 1 (bootable, 0x83, 1 MiB at 1 MiB, volume 0) and partition 2 (0x8e, 6 MiB at 2 MiB, volume 1);
 * disk 1 a 4 MiB disk without a partition table (volume 2). Each volume holds GOLDEN_AREA_DATA
 * bytes of golden_byte(v, off) at 0 (golden_area_expected(v, off)). Stack 0 is LVM2 VG vg0
 * (1 MiB extents) over PVs on disk 0 partition 2 and the whole of disk 1, with LVs root, home
 * and swap; stack 1 a LUKS container inside vg0/home. Every field is in make_golden.c and
 * test_golden.c. */
#define GOLDEN_STACKS_DISK0 (8 * GOLDEN_MIB)
#define GOLDEN_STACKS_DISK1 (4 * GOLDEN_MIB)


/* v1-machine.asrimg: the v1-basic content with the machine record (feature machine). Two boot
 * entries load from the ESP (partition 1, GUID 10..1f): Boot0001 "debian" shimx64.efi, active;
 * Boot0003 "Linux Boot Manager" systemd-bootx64.efi, inactive, with 10 bytes of optional data.
 * BootOrder 0003, 0001, 2001 (the last loads from no disk of the image, so it has no entry). The
 * load options are written out here byte by byte, as the UEFI specification lays them out, not
 * by the code under test. */
#define GOLDEN_HOSTNAME "golden-host"
#define GOLDEN_ESP_START_LBA 2048u
#define GOLDEN_ESP_SIZE_LBA 4096u

static inline size_t golden_put_utf16(uint8_t *p, const char *s)
{
    size_t n = 0;
    for (; *s; s++, n += 2)
        p[n] = (uint8_t)*s, p[n + 1] = 0;
    p[n] = p[n + 1] = 0;
    return n + 2;
}

/* An EFI_LOAD_OPTION for HD(1,GPT,10..1f,2048,4096)/File(file)/End, then optional. */
static inline uint32_t golden_load_option(uint8_t *out, uint32_t attrs, const char *desc, const char *file,
                                          const uint8_t *optional, uint32_t optional_len)
{
    uint8_t *p = out;
    p[0] = (uint8_t)attrs, p[1] = (uint8_t)(attrs >> 8), p[2] = (uint8_t)(attrs >> 16), p[3] = (uint8_t)(attrs >> 24);
    size_t at = 6 + golden_put_utf16(p + 6, desc);
    uint8_t *path = p + at;
    /* HD(): type 4, subtype 1, length 42 */
    path[0] = 4, path[1] = 1, path[2] = 42, path[3] = 0;
    memset(path + 4, 0, 38);
    path[4] = 1;                                            /* PartitionNumber */
    path[8] = GOLDEN_ESP_START_LBA & 0xff, path[9] = GOLDEN_ESP_START_LBA >> 8; /* PartitionStart */
    path[16] = GOLDEN_ESP_SIZE_LBA & 0xff, path[17] = GOLDEN_ESP_SIZE_LBA >> 8; /* PartitionSize */
    for (int i = 0; i < 16; i++)
        path[24 + i] = (uint8_t)(0x10 + i);                 /* the ESP's part_guid */
    path[40] = 2, path[41] = 2;                             /* MBRType GPT, SignatureType GUID */
    /* File(): type 4, subtype 4, UTF-16 path with its NUL */
    size_t flen = 4 + golden_put_utf16(path + 42 + 4, file);
    path[42] = 4, path[43] = 4, path[44] = (uint8_t)flen, path[45] = (uint8_t)(flen >> 8);
    uint8_t *end = path + 42 + flen;
    end[0] = 0x7f, end[1] = 0xff, end[2] = 4, end[3] = 0;
    size_t plen = 42 + flen + 4;
    p[4] = (uint8_t)plen, p[5] = (uint8_t)(plen >> 8);
    if (optional_len)
        memcpy(path + plen, optional, optional_len);
    return (uint32_t)(at + plen + optional_len);
}

static const uint8_t golden_optional[10] = {'q', 0, 'u', 0, 'i', 0, 'e', 0, 't', 0};

static inline void golden_machine(struct asr_machine_desc *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->hostname, sizeof m->hostname, "%s", GOLDEN_HOSTNAME);
    m->firmware = ASR_FIRMWARE_UEFI;
    m->boot_order_count = 3;
    m->boot_order[0] = 0x0003, m->boot_order[1] = 0x0001, m->boot_order[2] = 0x2001;
    m->entry_count = 2;
    m->entries[0].number = 0x0001;
    m->entries[0].partition = 1;
    m->entries[0].load_option_len =
        golden_load_option(m->entries[0].load_option, 1, "debian", "\\EFI\\debian\\shimx64.efi", NULL, 0);
    m->entries[1].number = 0x0003;
    m->entries[1].partition = 1;
    m->entries[1].load_option_len =
        golden_load_option(m->entries[1].load_option, 0, "Linux Boot Manager", "\\EFI\\systemd\\systemd-bootx64.efi",
                           golden_optional, sizeof golden_optional);
}

#endif
