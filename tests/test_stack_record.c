/* The stack table (format/stacks.c, SPEC.md section 6, feature "stacks"): every field through
 * the writer, the reader and the sequential reader; the rules the writer and the readers share;
 * and a damaged table, byte by byte, refused with a message naming the record and the field. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "internal.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(stacks, .fini = teardown);

#define MIB (1ull << 20)

/* Disk 0: 64 MiB without a partition table. Disk 1: 8 MiB MBR, partition 1 (0x83) 4 MiB at 4 MiB,
 * partition 2 an empty extended one (2 MiB at 1 MiB). */
static uint8_t mbr[512];
static struct asr_region_desc mbr_reg = {ASR_REGION_MBR, 0, 512, mbr};
static struct asr_partition_desc parts[2] = {
    {.number = 1, .kind = ASR_PART_PRIMARY, .mbr_type = 0x83, .capture = ASR_CAPTURE_USED, .start_bytes = 4 * MIB,
     .size_bytes = 4 * MIB},
    {.number = 2, .kind = ASR_PART_EXTENDED, .mbr_type = 0x05, .start_bytes = MIB, .size_bytes = 2 * MIB},
};
static struct asr_disk_desc disks[2] = {
    {.source = "bare", .size_bytes = 64 * MIB, .logical_sector = 512, .physical_sector = 512},
    {.source = "mbr", .size_bytes = 8 * MIB, .logical_sector = 512, .physical_sector = 512, .label = ASR_LABEL_MBR,
     .partition_count = 2, .partitions = parts, .region_count = 1, .regions = &mbr_reg},
};

static struct asr_stack_member vg_members[3];
static struct asr_stack_volume vg_volumes[2];
static struct asr_stack_member luks_member;
static struct asr_stack_volume luks_volume;
static struct asr_stack_member md_members[2];
static struct asr_stack_volume md_volume;
static struct asr_stack_desc stacks[3];

/* A VG over both disks and a PV not given to the backup, LUKS inside one of its LVs, and an md
 * RAID1 whose members are both absent: every kind, every place, every field set. */
static void fixture(void)
{
    memset(mbr, 0, sizeof mbr);
    mbr[446 + 4] = 0x83, mbr[446 + 9] = 0x20, mbr[446 + 13] = 0x20;
    mbr[462 + 4] = 0x05, mbr[462 + 9] = 0x08, mbr[462 + 13] = 0x10;
    mbr[510] = 0x55, mbr[511] = 0xaa;
    vg_members[0] = (struct asr_stack_member){.on = ASR_MEMBER_PARTITION, .disk = 1, .partition = 1,
                                              .data_offset = MIB, .data_bytes = 3 * MIB, .uuid = "pv-on-disk1-part1"};
    vg_members[1] = (struct asr_stack_member){.on = ASR_MEMBER_PARTITION, .disk = 0, .partition = 0,
                                              .data_offset = MIB, .data_bytes = 60 * MIB, .uuid = "pv-whole-disk0"};
    vg_members[2] = (struct asr_stack_member){.on = ASR_MEMBER_ABSENT, .data_offset = MIB, .data_bytes = 8 * MIB,
                                              .uuid = "pv-absent"};
    vg_volumes[0] = (struct asr_stack_volume){.name = "root", .uuid = "lv-root", .size_bytes = 16 * MIB,
                                              .used_bytes = 5 * MIB, .capture = ASR_CAPTURE_USED, .critical = true,
                                              .fs_type = "ext4", .fs_uuid = "fs-root", .fs_label = "rootfs",
                                              .mount = "/"};
    vg_volumes[1] = (struct asr_stack_volume){.name = "data", .uuid = "lv-data", .size_bytes = 8 * MIB,
                                              .capture = ASR_CAPTURE_FULL, .fs_type = "crypto_LUKS"};
    luks_member = (struct asr_stack_member){.on = ASR_MEMBER_STACK, .stack = 0, .volume = 1, .data_offset = 2 * MIB,
                                            .data_bytes = 6 * MIB};
    luks_volume = (struct asr_stack_volume){.size_bytes = 6 * MIB, .used_bytes = 1, .capture = ASR_CAPTURE_FULL,
                                            .fs_type = "xfs", .mount = "/srv/a long mount point"};
    md_members[0] = (struct asr_stack_member){.on = ASR_MEMBER_ABSENT, .role = 0, .data_offset = 8192,
                                              .data_bytes = 10 * MIB, .uuid = "md-dev-0"};
    md_members[1] = (struct asr_stack_member){.on = ASR_MEMBER_ABSENT, .role = 1, .data_offset = 8192,
                                              .data_bytes = 10 * MIB, .uuid = "md-dev-1"};
    md_volume = (struct asr_stack_volume){.name = "md0", .size_bytes = 10 * MIB, .capture = ASR_CAPTURE_SKIP,
                                          .fs_type = "swap", .critical = true};
    stacks[0] = (struct asr_stack_desc){.kind = ASR_STACK_LVM_VG, .seqno = 42, .unit_bytes = MIB, .name = "vg0",
                                        .uuid = "vg-uuid", .member_count = 3, .members = vg_members,
                                        .volume_count = 2, .volumes = vg_volumes};
    stacks[1] = (struct asr_stack_desc){.kind = ASR_STACK_LUKS, .unit_bytes = 4096, .name = "data_crypt",
                                        .uuid = "luks-uuid", .member_count = 1, .members = &luks_member,
                                        .volume_count = 1, .volumes = &luks_volume};
    stacks[2] = (struct asr_stack_desc){.kind = ASR_STACK_MD, .level = 1, .seqno = 99, .name = "host:0",
                                        .uuid = "md-uuid", .member_count = 2, .members = md_members,
                                        .volume_count = 1, .volumes = &md_volume};
}

static void same_member(const struct asr_stack_member *a, const struct asr_stack_member *b)
{
    cr_assert_eq(a->on, b->on);
    cr_assert_eq(a->disk, b->disk);
    cr_assert_eq(a->partition, b->partition);
    cr_assert_eq(a->stack, b->stack);
    cr_assert_eq(a->volume, b->volume);
    cr_assert_eq(a->role, b->role);
    cr_assert_eq(a->data_offset, b->data_offset);
    cr_assert_eq(a->data_bytes, b->data_bytes);
    cr_assert_str_eq(a->uuid, b->uuid);
}

static void same_volume(const struct asr_stack_volume *a, const struct asr_stack_volume *b)
{
    cr_assert_str_eq(a->name, b->name);
    cr_assert_str_eq(a->uuid, b->uuid);
    cr_assert_eq(a->size_bytes, b->size_bytes);
    cr_assert_eq(a->used_bytes, b->used_bytes);
    cr_assert_eq(a->capture, b->capture);
    cr_assert_eq(a->critical, b->critical);
    cr_assert_str_eq(a->fs_type, b->fs_type);
    cr_assert_str_eq(a->fs_uuid, b->fs_uuid);
    cr_assert_str_eq(a->fs_label, b->fs_label);
    cr_assert_str_eq(a->mount, b->mount);
}

static void same_stacks(uint32_t n, const struct asr_stack_desc *(*get)(const void *, uint32_t), const void *src)
{
    cr_assert_eq(n, 3);
    for (uint32_t i = 0; i < n; i++) {
        const struct asr_stack_desc *a = get(src, i), *b = &stacks[i];
        cr_assert_not_null(a);
        cr_assert_eq(a->kind, b->kind);
        cr_assert_eq(a->level, b->level);
        cr_assert_eq(a->seqno, b->seqno);
        cr_assert_eq(a->unit_bytes, b->unit_bytes);
        cr_assert_str_eq(a->name, b->name);
        cr_assert_str_eq(a->uuid, b->uuid);
        cr_assert_eq(a->member_count, b->member_count);
        cr_assert_eq(a->volume_count, b->volume_count);
        for (uint32_t k = 0; k < a->member_count; k++)
            same_member(&a->members[k], &b->members[k]);
        for (uint32_t k = 0; k < a->volume_count; k++)
            same_volume(&a->volumes[k], &b->volumes[k]);
    }
    cr_assert_null(get(src, n));
}

static const struct asr_stack_desc *reader_stack(const void *r, uint32_t i) { return asr_reader_stack(r, i); }
static const struct asr_stack_desc *stream_stack(const void *s, uint32_t i) { return asr_stream_stack(s, i); }

static struct asr_writer *new_writer(const char *path, struct asr_error *err)
{
    struct asr_writer *w;
    struct asr_writer_options o = {.overwrite = 1};
    cr_assert_eq(asr_writer_create(path, &o, &w, err), ASR_OK, "%s", err->msg);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(asr_writer_add_disk(w, &disks[i], err), ASR_OK, "%s", err->msg);
    return w;
}

Test(stacks, round_trip_every_field)
{
    fixture();
    char *path = scratch_path("stacks.asrimg");
    struct asr_error err = {0};
    struct asr_writer *w = new_writer(path, &err);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(asr_writer_add_stack(w, &stacks[i], &err), ASR_OK, "stack %d: %s", i, err.msg);
    struct asr_volume_desc v = {.disk_index = 1, .partition_number = 1, .disk_offset = 4 * MIB, .size_bytes = 4 * MIB,
                                .fs_type = "LVM2_member"};
    cr_assert_eq(asr_writer_add_volume(w, &v, NULL, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_zero(w, 0, 0, 4096, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_stack(w, &stacks[0], &err), ASR_E_STATE, "no stack after data");
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);

    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_reader_info(r)->incompat, ASR_FEATURE_INCOMPAT_STACKS);
    cr_assert_str_eq(asr_reader_feature_name(r, ASR_FEATURE_INCOMPAT, 1), "stacks");
    same_stacks(asr_reader_stack_count(r), reader_stack, r);
    asr_reader_free(r);

    FILE *f = fopen(path, "rb");
    struct asr_stream *s;
    cr_assert_eq(asr_stream_open_fd(fileno(f), NULL, &s, &err), ASR_OK, "%s", err.msg);
    same_stacks(asr_stream_stack_count(s), stream_stack, s);
    asr_stream_free(s);
    fclose(f);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
    free(path);
}

/* Without stacks nothing changes: no feature, no table, and the reader has none. */
Test(stacks, none_no_feature)
{
    fixture();
    char *path = scratch_path("plain.asrimg");
    struct asr_error err = {0};
    struct asr_writer *w = new_writer(path, &err);
    struct asr_volume_desc v = {.disk_index = 1, .partition_number = 1, .disk_offset = 4 * MIB, .size_bytes = 4 * MIB};
    cr_assert_eq(asr_writer_add_volume(w, &v, NULL, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_reader_info(r)->incompat, 0);
    cr_assert_eq(asr_reader_stack_count(r), 0);
    cr_assert_null(asr_reader_stack(r, 0));
    asr_reader_free(r);
    free(path);
}

static void break_case(size_t i)
{
    switch (i) {
    case 0: stacks[0].kind = 0; break;
    case 1: stacks[0].kind = 77; break;
    case 2: stacks[0].member_count = 0; break;
    case 3: stacks[0].name[0] = 0; break;
    case 4: stacks[0].unit_bytes = 1000; break;
    case 5: stacks[0].level = 1; break;
    case 6: vg_members[0].partition = 3; break;
    case 7: vg_members[0].disk = 2; break;
    case 8: vg_members[1].disk = 1; break;
    case 9: vg_members[0].data_bytes = 4 * MIB; break;
    case 10: vg_members[2] = vg_members[0]; break;
    case 11: vg_members[2].on = 3; break;
    case 12: vg_members[2].partition = 1; break;
    case 13: vg_members[0].stack = 1; break;
    case 14: vg_members[1].uuid[0] = 0; break;
    case 15: vg_members[1].data_bytes = 3 * MIB + 512; break;
    case 16: vg_members[1].role = 2; break;
    case 17: vg_volumes[1].capture = 4; break;
    case 18: vg_volumes[1].used_bytes = 9 * MIB; break;
    case 19: vg_volumes[1].size_bytes = 0; break;
    case 20: strcpy(vg_volumes[1].name, "root"); break;
    case 21: vg_volumes[1].name[0] = 0; break;
    case 22: memset(vg_volumes[1].mount, 'x', sizeof vg_volumes[1].mount); break;
    case 23: memset(stacks[0].name, 'x', sizeof stacks[0].name); break;
    case 24: luks_member.stack = 1; break;
    case 25: luks_member.volume = 2; break;
    case 26: luks_member.data_bytes = 7 * MIB; break;
    case 27: stacks[1].unit_bytes = 3000; break;
    case 28: stacks[1].volume_count = 2; break;
    case 29: luks_volume.size_bytes = 7 * MIB; break;
    case 30: stacks[2].level = 3; break;
    case 31: md_members[1] = luks_member; break;
    case 32: vg_members[0].partition = 2; break;
    case 33: memset(vg_members[1].uuid, 'u', sizeof vg_members[1].uuid); break;
    case 34: vg_volumes[1].size_bytes = 8 * MIB + 512; break;
    case 35: stacks[0].volume_count = 4097; break;
    case 36: stacks[1].level = 2; break;
    case 37: stacks[2].volume_count = 2; stacks[2].volumes = vg_volumes; break;
    }
}

/* The rules (asr_stacks_valid, which every reader applies too), one broken at a time. */
Test(stacks, writer_refuses_broken_stacks)
{
    static const struct {
        int stack; /* the stack added broken (those before it are added whole) */
        const char *why;
    } cases[] = {
        {0, "kind 0"},
        {0, "kind 77 unknown"},
        {0, "member count 0"},
        {0, "without its name"},
        {0, "extent size 1000"},
        {0, "level 1 on a VG"},
        {0, "member 0: partition 3 not on disk 1"},
        {0, "member 0: disk 2 not in the layout"},
        {0, "partition 0 (the whole disk) on disk 1"},
        {0, "member 0: data area of 4194304 bytes at 1048576 outside"},
        {0, "member 2: lies where member 0 of stack 0 does"},
        {0, "member 2: place 3 unknown"},
        {0, "member 2: disk and partition fields not zero"},
        {0, "member 0: stack and volume fields not zero"},
        {0, "member 1: a PV without its uuid"},
        {0, "not whole extents"},
        {0, "role 2 on a PV"},
        {0, "volume 1: capture 4 unknown"},
        {0, "volume 1: used bytes"},
        {0, "volume 1: size 0"},
        {0, "volume 1: name 'root' also volume 0's"},
        {0, "volume 1: an LV without a name"},
        {0, "volume 1: a name too long"},
        {0, "name or uuid too long"},
        {1, "member 0: stack 1 is not an earlier stack"},
        {1, "stack 0 has no volume 2"},
        {1, "outside its 8388608 bytes"},
        {1, "sector size 3000"},
        {1, "1 members and 2 volumes"},
        {1, "its volume is larger than its data area"},
        {2, "RAID level 3 unknown"},
        {2, "member 1: lies where member 0 of stack 1 does"},
        {0, "member 0: partition 2 of disk 1 is an extended partition"},
        {0, "member 1: uuid too long"},
        {0, "volume 1: size 8389120 not whole extents"},
        {0, "volume count 4097 out of range"},
        {1, "level 2 on a LUKS container"},
        {2, "an md array with 2 volumes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture();
        break_case(i);
        char *path = scratch_path("broken.asrimg");
        struct asr_error err = {0};
        struct asr_writer *w = new_writer(path, &err);
        for (int k = 0; k < cases[i].stack; k++)
            cr_assert_eq(asr_writer_add_stack(w, &stacks[k], &err), ASR_OK, "case %zu: %s", i, err.msg);
        int rc = asr_writer_add_stack(w, &stacks[cases[i].stack], &err);
        cr_assert_eq(rc, ASR_E_ARG, "case %zu (%s) accepted", i, cases[i].why);
        cr_assert(strstr(err.msg, cases[i].why), "case %zu: %s", i, err.msg);
        /* The rule is the readers' too: the same stacks fail asr_stacks_valid. */
        if (stacks[cases[i].stack].kind != 77)
            cr_assert_eq(asr_stacks_valid(stacks, (uint32_t)cases[i].stack + 1, disks, 2, &err), ASR_E_CORRUPT,
                         "case %zu", i);
        asr_writer_free(w);
        free(path);
    }
}

Test(stacks, at_most_256)
{
    fixture();
    struct asr_error err = {0};
    /* The count is judged before any stack is looked at. */
    cr_assert_eq(asr_stacks_valid(stacks, ASR_MAX_STACKS + 1, disks, 2, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "257 stacks (at most 256)"), "%s", err.msg);
}

/* ---- damaged tables, decoded as every reader decodes the layout -------------------------- */

struct body {
    uint8_t *p;
    size_t len;
    size_t table; /* where the stack table starts */
};

static struct body encode(uint32_t n)
{
    struct fmt_buf plain = {0}, full = {0};
    struct asr_error err = {0};
    cr_assert_eq(fmt_layout_encode_disks(disks, 2, NULL, 0, &plain, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(fmt_layout_encode_disks(disks, 2, stacks, n, &full, &err), ASR_OK, "%s", err.msg);
    struct body b = {full.data, full.len, plain.len};
    fmt_buf_free(&plain);
    return b;
}

static int decode(const struct body *b, size_t len, uint64_t incompat, struct asr_error *err)
{
    struct fmt_layout l = {.incompat = incompat};
    int rc = fmt_layout_decode_disks(b->p, len, &l, err);
    fmt_layout_free(&l);
    return rc;
}

/* Offsets inside stack 0's record as fixture() fills it. */
#define T(b) ((b)->table)
#define S0(b) (T(b) + 8)                                /* stack 0's fixed part */
#define S0_STR(b) (S0(b) + 32)                          /* its name, "vg0" */
#define M0(b) (S0_STR(b) + 2 + 3 + 2 + 7)               /* member 0's fixed part (after name and uuid) */
#define M1(b) (M0(b) + 32 + 2 + strlen("pv-on-disk1-part1"))
#define V0(b) (M1(b) + 32 + 2 + strlen("pv-whole-disk0") + 32 + 2 + strlen("pv-absent"))

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

Test(stacks, damaged_table_refused)
{
    fixture();
    struct body good = encode(1);
    struct asr_error err = {0};
    cr_assert_eq(decode(&good, good.len, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_OK, "%s", err.msg);
    /* The offsets above are where the fields are. */
    cr_assert_eq(memcmp(good.p + S0_STR(&good) + 2, "vg0", 3), 0);
    cr_assert_eq(good.p[M0(&good)], ASR_MEMBER_PARTITION);
    cr_assert_eq(good.p[M1(&good) + 4], 0);
    cr_assert_eq(memcmp(good.p + V0(&good) + 32 + 2, "root", 4), 0);

    /* Feature and table disagree. */
    cr_assert_eq(decode(&good, good.table, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "stack table missing"), "%s", err.msg);
    cr_assert_eq(decode(&good, good.len, 0, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "stray bytes after the last disk"), "%s", err.msg);

    const struct {
        size_t at;
        int width; /* 1: byte, 4: u32, 8: two u32 */
        uint32_t value;
        const char *why;
    } cases[] = {
        {0, 4, 0, "stack count 0 out of range"},
        {0, 4, 257, "stack count 257 out of range"},
        {0, 4, 2, "stack 1: truncated"}, /* more than the bytes hold */
        {4, 4, 1, "stack count 1 out of range"}, /* the table's reserved word */
        {8 + 1, 1, 1, "stack 0: reserved bytes not zero"},
        {8 + 24, 4, 0, "0 members / 2 volumes out of range"},
        {8 + 24, 4, 4097, "4097 members / 2 volumes out of range"},
        {8 + 28, 4, 100000, "3 members / 100000 volumes out of range"},
        {8 + 0, 1, 0, "stack 0 (vg0): kind 0 is no stack kind"},
        {8 + 16, 4, 1000, "stack 0 (vg0): extent size 1000"},
        {8 + 32 + 2 + 1, 1, 0, "string holds a NUL byte"},
        {8 + 32, 1, 200, "string length 200 out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct body b = encode(1);
        uint8_t *p = b.p + T(&b) + cases[i].at;
        if (cases[i].width == 1)
            *p = (uint8_t)cases[i].value;
        else
            put32(p, cases[i].value);
        cr_assert_eq(decode(&b, b.len, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_E_CORRUPT, "case %zu accepted", i);
        cr_assert(strstr(err.msg, cases[i].why), "case %zu: %s", i, err.msg);
        free(b.p);
    }

    /* Members and volumes, by their own offsets. */
    const struct {
        int base; /* 0: member 0, 1: member 1, 2: volume 0 */
        size_t off;
        uint32_t value;
        int width;
        const char *why;
    } fields[] = {
        {0, 1, 1, 1, "member 0: reserved bytes not zero"},
        {0, 0, 7, 1, "member 0: place 7 unknown"},
        {0, 8, 3, 4, "member 0: partition 3 not on disk 1"},
        {0, 4, 9, 4, "member 0: disk 9 not in the layout"},
        {1, 4, 1, 4, "member 1: partition 0 (the whole disk) on disk 1"},
        {0, 4, 0, 8, "member 1: lies where member 0 of stack 0 does"}, /* member 0 moved onto disk 0 */
        {1, 28, 1, 4, "member 1: data area"},
        {0, 32, 64, 1, "member 0: layout: string length 64 out of range"},
        {2, 17, 2, 1, "volume 0: reserved bits not zero"},
        {2, 20, 1, 1, "volume 0: reserved bits not zero"},
        {2, 16, 9, 1, "volume 0: capture 9 unknown"},
        {2, 12, 1, 4, "volume 0: used bytes"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        struct body b = encode(1);
        size_t base = fields[i].base == 0 ? M0(&b) : fields[i].base == 1 ? M1(&b) : V0(&b);
        uint8_t *p = b.p + base + fields[i].off;
        if (fields[i].width == 1)
            *p = (uint8_t)fields[i].value;
        else
            put32(p, fields[i].value);
        if (fields[i].width == 8)
            put32(p + 4, fields[i].value);
        cr_assert_eq(decode(&b, b.len, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_E_CORRUPT, "field %zu accepted", i);
        cr_assert(strstr(err.msg, fields[i].why), "field %zu: %s", i, err.msg);
        free(b.p);
    }

    /* Counts the bytes left could hold, whose strings then leave too few: the stack's count check
     * passes (3 members of at least 34 bytes in 102), member 2's fixed part is cut. */
    struct body tight = encode(1);
    put32(tight.p + S0(&tight) + 28, 0); /* no volumes */
    cr_assert_eq(decode(&tight, M0(&tight) + 102, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "stack 0: member 2: truncated"), "%s", err.msg);
    free(tight.p);

    /* Cut anywhere inside the table: refused, never read past the end. */
    for (size_t len = good.table + 1; len < good.len; len++)
        cr_assert_eq(decode(&good, len, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_E_CORRUPT, "cut at %zu", len);
    /* Bytes after the last stack. */
    struct body longer = {realloc(good.p, good.len + 1), good.len + 1, good.table};
    longer.p[good.len] = 0;
    cr_assert_eq(decode(&longer, longer.len, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "1 stray bytes after the last stack"), "%s", err.msg);
    free(longer.p);
}

/* A kind this reader does not know is kept, by number, with its generic fields checked. */
Test(stacks, unknown_kind_kept)
{
    fixture();
    struct body b = encode(1);
    b.p[S0(&b)] = 9;
    struct fmt_layout l = {.incompat = ASR_FEATURE_INCOMPAT_STACKS};
    struct asr_error err = {0};
    cr_assert_eq(fmt_layout_decode_disks(b.p, b.len, &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(l.stack_count, 1);
    cr_assert_eq(l.stacks[0].kind, 9);
    cr_assert_null(asr_stack_kind_name(9));
    cr_assert_str_eq(l.stacks[0].volumes[0].name, "root");
    fmt_layout_free(&l);
    /* ... but not a member in the wrong place. */
    put32(b.p + M0(&b) + 8, 3);
    cr_assert_eq(decode(&b, b.len, ASR_FEATURE_INCOMPAT_STACKS, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "partition 3 not on disk 1"), "%s", err.msg);
    free(b.p);
}
