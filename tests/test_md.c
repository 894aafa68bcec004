/* md RAID read from its members (engine/disk/md.c). This machine has no md driver, so members
 * are written by md_gen.py (superblocks 1.2, 1.1, 1.0 and 0.90, with and without an internal
 * bitmap), which `mdadm --examine` must accept, and the reader's fields are compared with what
 * mdadm prints. Then a real ext4 filesystem laid onto RAID1, RAID0 and RAID10 members by the
 * generator is read back through a window pieced together from md_array_locate: the same used
 * map as on the plain file, the same bytes. Then damaged and foreign members, each refused by
 * name, and sets of members that are not one array. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsfix.h"
#include "md.h"
#include "support.h"
#include "window_map.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(md, .fini = teardown, .timeout = 120);

#define MIB (1ull << 20)

/* Members are written by md_gen.py in batches (python starts once per batch): gen_add queues
 * one into scratch file name (size bytes; opts as the script takes them) and returns its path
 * (malloc'd); gen_run writes the queued ones. */
static char *batch;
static size_t batch_len;

static char *gen_add(const char *name, uint64_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static char *gen_add(const char *name, uint64_t size, const char *fmt, ...)
{
    char opts[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(opts, sizeof opts, fmt, ap);
    va_end(ap);
    char *path = scratch_path(name), *line = NULL;
    int n = asprintf(&line, "%s --size %llu %s\n", path, (unsigned long long)size, opts);
    cr_assert(n > 0);
    batch = realloc(batch, batch_len + (size_t)n + 1);
    memcpy(batch + batch_len, line, (size_t)n + 1);
    batch_len += (size_t)n;
    free(line);
    return path;
}

static void gen_run(void)
{
    fsfix_need("python3");
    char *lines = scratch_path("batch.txt");
    write_file(lines, batch, batch_len);
    cr_assert_eq(fsfix_sh("python3 %s --batch %s", MD_GEN, lines), 0, "md_gen.py:\n%s", batch);
    free(lines);
    free(batch);
    batch = NULL;
    batch_len = 0;
}

static int read_member(const char *path, struct md_member *m, struct asr_error *err)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "%s", path);
    struct asr_window w = {.fd = fd, .path = path, .base = 0, .size = (uint64_t)lseek(fd, 0, SEEK_END)};
    int rc = md_read_member(&w, m, err);
    close(fd);
    return rc;
}

static struct md_member must_read(const char *path)
{
    struct md_member m;
    struct asr_error err = {0};
    cr_assert_eq(read_member(path, &m, &err), ASR_OK, "%s", err.msg);
    cr_assert(m.found);
    return m;
}

/* The value mdadm --examine prints after "key :" (first occurrence), or "" (static buffer). */
static const char *field(const char *out, const char *key)
{
    static char v[256];
    v[0] = 0;
    for (const char *p = out; (p = strstr(p, key)); p++) {
        const char *q = p + strlen(key);
        while (*q == ' ')
            q++;
        if (*q != ':' || (p > out && p[-1] != ' ' && p[-1] != '\n'))
            continue;
        q++;
        while (*q == ' ')
            q++;
        size_t n = strcspn(q, "\n");
        n = n < sizeof v - 1 ? n : sizeof v - 1;
        memcpy(v, q, n);
        v[n] = 0;
        break;
    }
    return v;
}

static uint64_t num(const char *s) { return strtoull(s, NULL, 10); }

/* Compares every field mdadm --examine shows with what md_read_member read. */
static void check_against_mdadm(const char *path, const struct md_member *m)
{
    char *out = fsfix_sh_out("mdadm --examine %s 2>&1", path);
    char *exp = fsfix_sh_out("mdadm --examine --export %s 2>&1", path);
    cr_assert(out && exp);
    cr_log_info("%s", out);
    char level[32];
    snprintf(level, sizeof level, "MD_LEVEL=%s\n", md_level_name(m->level));
    cr_assert(strstr(exp, level), "%s in\n%s", level, exp);
    char uuid[64];
    snprintf(uuid, sizeof uuid, "MD_UUID=%s\n", m->uuid_text);
    cr_assert(strstr(exp, uuid), "%s in\n%s", uuid, exp);
    char disks[64];
    snprintf(disks, sizeof disks, "MD_DEVICES=%u\n", m->raid_disks);
    cr_assert(strstr(exp, disks), "%s in\n%s", disks, exp);
    cr_assert_eq(num(field(out, "Events")), m->events);
    cr_assert_str_eq(field(out, "Raid Level"), md_level_name(m->level));
    cr_assert_eq(num(field(out, "Raid Devices")), m->raid_disks);
    if (m->chunk)
        cr_assert_eq(num(field(out, "Chunk Size")) * 1024, m->chunk);
    /* mdadm prints the array's size for the levels with redundancy only; for RAID10 it leaves
     * out the kernel's rounding to whole chunks (raid10_size), so it may say up to a chunk more. */
    uint64_t shown = num(field(out, "Array Size")) * 1024;
    if (m->level == 10)
        cr_assert(shown >= m->array_size && shown - m->array_size < m->chunk, "Array Size %s",
                  field(out, "Array Size"));
    else if (m->level >= 1)
        cr_assert_eq(shown, m->array_size, "Array Size %s", field(out, "Array Size"));
    if (m->version == 90) {
        cr_assert_str_eq(field(out, "UUID"), m->uuid_text);
        cr_assert_str_eq(field(out, "Version"), "0.90.00");
        if (m->level >= 1)
            cr_assert_eq(num(field(out, "Used Dev Size")) * 1024, m->dev_used);
        char this[64];
        snprintf(this, sizeof this, "this     %u", m->role);
        cr_assert(strstr(out, this), "%s", this);
        cr_assert_eq(m->data_offset, 0);
        cr_assert_eq(strstr(out, "Internal Bitmap : present") != NULL, m->bitmap_bytes != 0);
    } else {
        char version[16];
        snprintf(version, sizeof version, "1.%d", m->version / 10 - 10);
        cr_assert_str_eq(field(out, "Version"), version);
        cr_assert_str_eq(field(out, "Array UUID"), m->uuid_text);
        cr_assert_str_eq(field(out, "Name"), m->name);
        cr_assert_eq(num(field(out, "Super Offset")) * 512, m->super_offset);
        cr_assert_eq(num(field(out, "Data Offset")) * 512, m->data_offset); /* "" (1.0) reads 0 */
        cr_assert_eq(num(field(out, "Avail Dev Size")) * 512, m->data_size);
        char role[64];
        snprintf(role, sizeof role, "Active device %u", m->role);
        cr_assert_str_eq(field(out, "Device Role"), role);
        const char *bitmap = field(out, "Internal Bitmap");
        cr_assert_eq(bitmap[0] != 0, m->bitmap_bytes != 0, "Internal Bitmap: %s", bitmap);
        if (m->bitmap_bytes)
            cr_assert_eq((int64_t)m->super_offset + strtoll(bitmap, NULL, 10) * 512, (int64_t)m->bitmap_offset);
        const char *bb = strstr(field(out, "Bad Block Log"), "at offset ");
        cr_assert(bb && m->bblog_bytes);
        cr_assert_eq((int64_t)m->super_offset + strtoll(bb + 10, NULL, 10) * 512, (int64_t)m->bblog_offset);
        cr_assert_str_eq(field(out, "Checksum") + 11, "correct");
    }
    free(out);
    free(exp);
}

Test(md, reads_each_version_as_mdadm_examines)
{
    fsfix_need("mdadm");
    static const char *const versions[] = {"1.2", "1.1", "1.0", "0.90"};
    static const struct { int level; const char *opts; } kinds[] = {
        {1, "--level 1 --raid-disks 2 --role 1 --events 4242"},
        {1, "--level 1 --raid-disks 3 --role 2 --bitmap --name web:root"},
        {0, "--level 0 --raid-disks 2 --role 1 --chunk-kib 128 --max-dev 383"}, /* a 16-bit word ends the checksum */
        {10, "--level 10 --layout 258 --raid-disks 3 --role 0 --chunk-kib 64 --bitmap"},
        {5, "--level 5 --layout 2 --raid-disks 4 --role 3 --chunk-kib 512 --events 77"},
    };
    enum { KINDS = sizeof kinds / sizeof kinds[0] };
    char *paths[4][KINDS];
    for (size_t v = 0; v < 4; v++)
        for (size_t k = 0; k < KINDS; k++) {
            char name[32];
            snprintf(name, sizeof name, "m%zu-%zu.img", v, k);
            paths[v][k] = gen_add(name, 24 * MIB + 7 * 512 + 100, "--metadata %s %s", versions[v], kinds[k].opts);
        }
    gen_run();
    for (size_t v = 0; v < 4; v++)
        for (size_t k = 0; k < KINDS; k++) {
            struct md_member m = must_read(paths[v][k]);
            cr_assert_eq(m.level, kinds[k].level);
            check_against_mdadm(paths[v][k], &m);
            free(paths[v][k]);
        }
}

/* A disk reused for a new array keeps the old array's superblock where the new one's format does
 * not write: the newer (by creation time) is the member's. */
Test(md, a_leftover_superblock_of_an_older_array_loses)
{
    char *a = gen_add("left-a.img", 8 * MIB, "--metadata 0.90 --level 1 --ctime 1500000000 --uuid %032x", 1);
    free(gen_add("left-a.img", 8 * MIB, "--metadata 1.2 --level 1 --ctime 1600000000 --over --uuid %032x", 2));
    char *b = gen_add("left-b.img", 8 * MIB, "--metadata 1.2 --level 0 --ctime 1500000000 --uuid %032x", 3);
    free(gen_add("left-b.img", 8 * MIB, "--metadata 1.0 --level 1 --ctime 1600000000 --over --uuid %032x", 4));
    gen_run();
    struct md_member m = must_read(a);
    cr_assert_eq(m.version, 120);
    cr_assert_str_eq(m.uuid_text, "00000000:00000000:00000000:00000002");
    m = must_read(b);
    cr_assert_eq(m.version, 100);
    cr_assert_str_eq(m.uuid_text, "00000000:00000000:00000000:00000004");
    free(a), free(b);
}

/* ---- a filesystem through the array -------------------------------------------------------- */

#define FS_SIZE (8 * MIB)

static char *make_fs(void)
{
    fsfix_need("mkfs.ext4");
    char *fs = scratch_path("fs.img");
    cr_assert_eq(fsfix_sh("truncate -s %llu %s && mkfs.ext4 -q -b 4096 -d /usr/share/doc/coreutils %s",
                          (unsigned long long)FS_SIZE, fs, fs), 0);
    return fs;
}

struct array {
    size_t n;
    char *paths[4];
    struct asr_window w[4];
    struct md_member m[4];
    struct window_map map;
    struct asr_window aw;
};

/* Opens the members, checks they are one array and pieces the array together run by run. */
static void assemble(struct array *a)
{
    struct asr_error err = {0};
    for (size_t i = 0; i < a->n; i++) {
        a->w[i] = fsfix_window(a->paths[i], 0, 0);
        a->w[i].size = (uint64_t)lseek(a->w[i].fd, 0, SEEK_END);
        cr_assert_eq(md_read_member(&a->w[i], &a->m[i], &err), ASR_OK, "%s", err.msg);
    }
    bool degraded;
    cr_assert_eq(md_check_members(a->m, a->n, &degraded, &err), ASR_OK, "%s", err.msg);
    uint64_t size = a->m[0].array_size, runs = 0;
    for (uint64_t off = 0; off < size;) {
        size_t i;
        uint64_t at, len;
        cr_assert_eq(md_array_locate(a->m, a->n, off, &i, &at, &len, &err), ASR_OK, "%s", err.msg);
        cr_assert(len > 0 && i < a->n);
        cr_assert_eq(window_map_add(&a->map, &a->w[i], at, len, &err), ASR_OK, "%s", err.msg);
        off += len;
        runs++;
    }
    window_map_window(&a->map, "md0", &a->aw);
    cr_assert_eq(a->aw.size, size);
    cr_log_info("array of %llu bytes in %llu runs", (unsigned long long)size, (unsigned long long)runs);
}

static void disassemble(struct array *a)
{
    for (size_t i = 0; i < a->n; i++) {
        close(a->w[i].fd);
        free(a->paths[i]);
    }
    window_map_free(&a->map);
}

/* The filesystem reads through the array as it reads from its file: bytes and used map. */
static void check_fs_through(const char *fs, struct array *a)
{
    cr_assert_geq(a->aw.size, FS_SIZE);
    uint8_t *want = malloc(FS_SIZE), *got = malloc(FS_SIZE);
    fsfix_read_at(fs, 0, want, FS_SIZE);
    struct asr_error err = {0};
    cr_assert_eq(asr_window_read(&a->aw, NULL, 0, got, FS_SIZE, &err), ASR_OK, "%s", err.msg);
    cr_assert(!memcmp(want, got, FS_SIZE), "the array reads as the filesystem laid onto it");
    free(want), free(got);
    struct asr_window direct = fsfix_window(fs, 0, FS_SIZE);
    struct asr_usedmap via = {0}, plain = {0};
    cr_assert_eq(asr_ext_used(&direct, &plain, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_ext_used(&a->aw, &via, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(via.used.n, plain.used.n);
    for (size_t i = 0; i < via.used.n; i++)
        cr_assert(via.used.v[i].offset == plain.used.v[i].offset && via.used.v[i].length == plain.used.v[i].length);
    asr_usedmap_free(&via), asr_usedmap_free(&plain);
    close(direct.fd);
}

Test(md, raid1_each_version_reads_the_filesystem_through_any_member)
{
    char *fs = make_fs();
    static const char *const versions[] = {"1.2", "1.1", "1.0", "0.90"};
    for (size_t v = 0; v < 4; v++)
        for (size_t r = 0; r < 2; r++) {
            char name[32];
            snprintf(name, sizeof name, "r1-%zu-%zu.img", v, r);
            free(gen_add(name, 12 * MIB, "--metadata %s --level 1 --role %zu --bitmap --noise %zu --data-from %s",
                         versions[v], r, 10 * v + r, fs));
        }
    gen_run();
    for (size_t v = 0; v < 4; v++) {
        struct array a = {.n = 2};
        for (size_t r = 0; r < 2; r++) {
            char name[32];
            snprintf(name, sizeof name, "r1-%zu-%zu.img", v, r);
            a.paths[r] = scratch_path(name);
        }
        assemble(&a);
        check_fs_through(fs, &a);
        disassemble(&a);
        /* Each member alone: a degraded mirror still holds every byte. */
        for (size_t r = 0; r < 2; r++) {
            char name[32];
            snprintf(name, sizeof name, "r1-%zu-%zu.img", v, r);
            struct array one = {.n = 1, .paths = {scratch_path(name)}};
            assemble(&one);
            check_fs_through(fs, &one);
            disassemble(&one);
        }
    }
    free(fs);
}

Test(md, raid0_stripes_the_filesystem_over_two_members)
{
    char *fs = make_fs();
    static const char *const versions[] = {"1.2", "0.90"};
    struct array a[2] = {{.n = 2}, {.n = 2}};
    for (size_t v = 0; v < 2; v++)
        /* Listed out of role order: the mapping goes by role. */
        for (size_t r = 0; r < 2; r++) {
            char name[32];
            snprintf(name, sizeof name, "r0-%zu-%zu.img", v, r);
            a[v].paths[1 - r] = gen_add(name, 6 * MIB, "--metadata %s --level 0 --chunk-kib 64 --role %zu --noise %zu "
                                        "--data-from %s", versions[v], r, 7 + r, fs);
        }
    gen_run();
    for (size_t v = 0; v < 2; v++) {
        assemble(&a[v]);
        cr_assert_eq(a[v].m[0].role, 1);
        check_fs_through(fs, &a[v]);
        disassemble(&a[v]);
    }
    free(fs);
}

/* Every copy of every byte, as a capture that must land on every mirror sees them: each copy holds
 * the filesystem's byte, the two copies lie on two members, and a copy on an absent member is
 * reported as such (the other copy then holds the byte). */
static void check_every_copy(const char *fs, struct array *a, size_t present_of)
{
    struct asr_error err = {0};
    uint64_t size = FS_SIZE, chunk = 32 << 10;
    uint8_t *want = malloc(chunk), *got = malloc(chunk);
    size_t absent = 0;
    for (uint64_t off = 0; off < size; off += chunk) {
        fsfix_read_at(fs, off, want, chunk);
        size_t seen[2];
        for (uint32_t copy = 0; copy < md_copies(&a->m[0]); copy++) {
            uint64_t at, len;
            cr_assert_eq(md_array_locate_copy(a->m, a->n, off, copy, &seen[copy], &at, &len, &err), ASR_OK, "%s",
                         err.msg);
            cr_assert_eq(len, chunk, "chunk-aligned offsets run to the chunk's end");
            if (seen[copy] == a->n) {
                absent++;
                continue;
            }
            cr_assert_eq(asr_window_read(&a->w[seen[copy]], NULL, at, got, chunk, &err), ASR_OK, "%s", err.msg);
            cr_assert(!memcmp(want, got, chunk), "copy %u of byte %llu holds the filesystem's bytes", copy,
                      (unsigned long long)off);
        }
        cr_assert(seen[0] != seen[1] || seen[0] == a->n, "the two copies of byte %llu are on two members",
                  (unsigned long long)off);
        cr_assert(seen[0] < a->n || seen[1] < a->n, "some member holds byte %llu", (unsigned long long)off);
    }
    cr_assert_eq(absent > 0, present_of < 3, "copies on the missing member are said to be absent");
    uint64_t at, len;
    size_t i;
    cr_assert_eq(md_array_locate_copy(a->m, a->n, 0, 2, &i, &at, &len, &err), ASR_E_ARG, "raid10 near=2: two copies");
    free(want), free(got);
}

Test(md, raid10_near2_over_three_members_and_with_one_missing_every_copy_located)
{
    char *fs = make_fs();
    char *paths[3];
    for (size_t r = 0; r < 3; r++) {
        char name[32];
        snprintf(name, sizeof name, "r10-%zu.img", r);
        paths[r] = gen_add(name, 8 * MIB,
                           "--level 10 --layout 258 --raid-disks 3 --chunk-kib 32 --role %zu --noise %zu "
                           "--data-from %s", r, 3 + r, fs);
    }
    gen_run();
    struct array a = {.n = 3, .paths = {strdup(paths[0]), strdup(paths[1]), strdup(paths[2])}};
    assemble(&a);
    check_fs_through(fs, &a);
    check_every_copy(fs, &a, 3);
    disassemble(&a);
    for (size_t gone = 0; gone < 3; gone++) {
        struct array b = {.n = 2};
        for (size_t r = 0, k = 0; r < 3; r++)
            if (r != gone)
                b.paths[k++] = strdup(paths[r]);
        assemble(&b);
        check_fs_through(fs, &b);
        check_every_copy(fs, &b, 2);
        disassemble(&b);
    }
    for (size_t r = 0; r < 3; r++)
        free(paths[r]);
    free(fs);
}

/* ---- damaged and foreign members ----------------------------------------------------------- */

static void expect_refusal(const char *path, int code, bool found, const char *needle)
{
    struct md_member m;
    struct asr_error err = {0};
    cr_assert_eq(read_member(path, &m, &err), code, "%s: %s", needle, err.msg);
    cr_assert_eq(m.found, found, "%s", err.msg);
    cr_assert(strstr(err.msg, needle), "'%s' in: %s", needle, err.msg);
    cr_assert(strstr(err.msg, path), "the member is named: %s", err.msg);
    cr_log_info("%s", err.msg);
}

Test(md, damaged_members_are_refused_by_name)
{
    static const char *const versions[] = {"1.2", "1.1", "1.0", "0.90"};
    static const char *const at[] = {"1.2 at byte 4096", "1.1 at byte 0", "1.0 at byte", "0.90 at byte"};
    char *csum[4], *role[4], *multipath[4];
    for (size_t v = 0; v < 4; v++) {
        char name[32];
        snprintf(name, sizeof name, "csum-%zu.img", v);
        csum[v] = gen_add(name, 8 * MIB, "--metadata %s --bad-csum", versions[v]);
        snprintf(name, sizeof name, "role-%zu.img", v);
        role[v] = gen_add(name, 8 * MIB, "--metadata %s --level 0 --role-out-of-range", versions[v]);
        snprintf(name, sizeof name, "multipath-%zu.img", v);
        multipath[v] = gen_add(name, 8 * MIB, "--metadata %s --level=-4", versions[v]);
    }
    char *past = gen_add("past.img", 8 * MIB, "--data-offset-past-end");
    char *maxdev = gen_add("maxdev.img", 8 * MIB, "--max-dev 5000");
    char *cut = gen_add("cut.img", 8 * MIB, "--metadata 1.2");
    char *cut0 = gen_add("cut0.img", 8 * MIB, "--metadata 1.0");
    char *be = gen_add("be.img", 8 * MIB, "--metadata 0.90 --big-endian");
    char *nobitmap = gen_add("nobitmap.img", 8 * MIB, "--metadata 1.2 --bitmap");
    gen_run();
    for (size_t v = 0; v < 4; v++) {
        expect_refusal(csum[v], ASR_E_CORRUPT, true, "checksum");
        expect_refusal(csum[v], ASR_E_CORRUPT, true, at[v]);
        expect_refusal(role[v], ASR_E_CORRUPT, true, "role 5 is out of range");
        expect_refusal(multipath[v], ASR_E_UNSUPPORTED, true, "multipath");
        free(csum[v]), free(role[v]), free(multipath[v]);
    }
    expect_refusal(past, ASR_E_CORRUPT, true, "past the end");
    expect_refusal(maxdev, ASR_E_CORRUPT, true, "max_dev 5000");
    /* A 1.2 member cut short: its data area now passes the end. */
    cr_assert_eq(truncate(cut, 4 * MIB), 0);
    expect_refusal(cut, ASR_E_CORRUPT, true, "past the end");
    /* A 1.0 member cut short: its superblock is no longer where the end says it must be. */
    cr_assert_eq(truncate(cut0, 8 * MIB - 4096), 0);
    expect_refusal(cut0, ASR_E_CORRUPT, false, "no md superblock");
    expect_refusal(be, ASR_E_UNSUPPORTED, true, "big-endian");
    /* A bitmap the feature bit promises must be there. */
    patch_byte(nobitmap, 4096 + 8 * 512, 0);
    expect_refusal(nobitmap, ASR_E_CORRUPT, true, "no bitmap magic");
    free(past), free(maxdev), free(cut), free(cut0), free(be), free(nobitmap);
    char *plain = scratch_path("plain.img");
    cr_assert_eq(fsfix_sh("head -c %llu /dev/urandom > %s", 4 * MIB, plain), 0);
    expect_refusal(plain, ASR_E_CORRUPT, false, "no md superblock");
    free(plain);
}

/* ---- sets of members ----------------------------------------------------------------------- */

/* The members the tests of sets read, all written in one batch. */
static const struct { const char *name, *opts; uint64_t size; } set_members[] = {
    {"a0.img", "--level 0 --role 0", 8 * MIB},
    {"b-uuid.img", "--level 0 --role 1 --uuid 00000000000000000000000000000001", 8 * MIB},
    {"b-stale.img", "--level 0 --role 1 --events 17", 8 * MIB},
    {"b-role0.img", "--level 0 --role 0", 8 * MIB},
    {"b-raid1.img", "--level 1 --role 1", 8 * MIB},
    {"c.img", "--level 1 --raid-disks 4 --role 2", 8 * MIB},
    {"d-spare.img", "--level 1 --raid-disks 4 --role spare", 8 * MIB},
    {"raid5.img", "--level 5 --layout 2 --raid-disks 2 --role 0", 8 * MIB},
    {"far2.img", "--level 10 --layout 513 --raid-disks 2 --role 0", 8 * MIB},
    {"small0.img", "--level 0 --role 1", 6 * MIB},
    {"mirror.img", "--level 1 --role 0", 8 * MIB},
    {"mirror-small.img", "--level 1 --role 1", 7 * MIB},
    {"journal.img", "--level 5 --layout 2 --raid-disks 3 --role journal", 8 * MIB},
    {"raid5-0.img", "--level 5 --layout 2 --raid-disks 3 --role 0", 8 * MIB},
    {"raid5-1.img", "--level 5 --layout 2 --raid-disks 3 --role 1", 8 * MIB},
};

static void gen_set(void)
{
    for (size_t i = 0; i < sizeof set_members / sizeof set_members[0]; i++)
        free(gen_add(set_members[i].name, set_members[i].size, "%s", set_members[i].opts));
    gen_run();
}

static struct md_member member(const char *name)
{
    char *p = scratch_path(name);
    struct md_member m = must_read(p);
    free(p);
    return m;
}

Test(md, members_of_different_arrays_stale_or_doubled_are_named)
{
    gen_set();
    struct md_member m[3];
    struct asr_error err = {0};
    bool degraded = true;
    m[0] = member("a0.img");
    m[1] = member("b-uuid.img");
    cr_assert_eq(md_check_members(m, 2, &degraded, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "belongs to array 00000000:00000000:00000000:00000001"), "%s", err.msg);
    m[1] = member("b-stale.img");
    cr_assert_eq(md_check_members(m, 2, &degraded, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "member 1 (role 1) is stale: events 17"), "%s", err.msg);
    m[1] = member("b-role0.img");
    cr_assert_eq(md_check_members(m, 2, &degraded, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "role 0 is held by members 0 and 1"), "%s", err.msg);
    m[1] = member("b-raid1.img");
    cr_assert_eq(md_check_members(m, 2, &degraded, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "member 1 has level 1"), "%s", err.msg);
    struct md_member mirror[2] = {member("mirror.img"), member("mirror-small.img")};
    cr_assert_eq(md_check_members(mirror, 2, &degraded, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "member 1 uses 6291456 bytes per device where member 0 uses 7340032"), "%s", err.msg);
    /* A raid5 write journal holds no data role: it fills none. Two of three roles are enough. */
    struct md_member r5[3] = {member("raid5-0.img"), member("journal.img"), member("raid5-1.img")};
    cr_assert_eq(r5[1].role, MD_ROLE_JOURNAL);
    cr_assert_eq(md_check_members(r5, 3, &degraded, &err), ASR_OK, "%s", err.msg);
    cr_assert(degraded && strstr(err.msg, "degraded, role 2 missing"), "%s", err.msg);
    cr_assert_eq(md_check_members(r5, 2, &degraded, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "roles 1, 2 of 3 missing"), "%s", err.msg);
    /* RAID0 without its second half cannot be read; a mirror with one side can. */
    cr_assert_eq(md_check_members(m, 1, &degraded, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "role 1 of 2 missing"), "%s", err.msg);
    m[0] = member("c.img");
    cr_assert_eq(md_check_members(m, 1, NULL, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "roles 0, 1, 3 of 4 missing"), "%s", err.msg);
    cr_assert_eq(md_check_members(m, 1, &degraded, &err), ASR_OK);
    cr_assert(degraded);
    cr_assert(strstr(err.msg, "degraded, roles 0, 1, 3 missing"), "%s", err.msg);
    /* A spare holds no role and fills none. */
    m[1] = member("d-spare.img");
    cr_assert_eq(m[1].role, MD_ROLE_SPARE);
    cr_assert_eq(md_check_members(m, 2, NULL, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "roles 0, 1, 3 of 4 missing"), "%s", err.msg);
}

Test(md, layouts_not_mapped_are_refused_by_name)
{
    gen_set();
    struct md_member m[2];
    struct asr_error err = {0};
    size_t i;
    uint64_t at, len;
    m[0] = member("raid5.img");
    cr_assert_eq(md_array_locate(m, 1, 0, &i, &at, &len, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "raid5 arrays are not mapped"), "%s", err.msg);
    m[0] = member("far2.img");
    cr_assert_eq(md_array_locate(m, 1, 0, &i, &at, &len, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "raid10 layout near=1 far=2 is not mapped"), "%s", err.msg);
    m[0] = member("a0.img");
    m[1] = member("small0.img");
    cr_assert_eq(md_array_locate(m, 2, 0, &i, &at, &len, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "unequal size"), "%s", err.msg);
    m[0] = member("mirror.img");
    cr_assert_eq(md_array_locate(m, 1, m[0].array_size, &i, &at, &len, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "past its end"), "%s", err.msg);
    cr_assert_eq(md_array_locate(m, 1, m[0].array_size - 1, &i, &at, &len, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(len, 1);
    cr_assert_eq(at, m[0].data_offset + m[0].array_size - 1);
}
