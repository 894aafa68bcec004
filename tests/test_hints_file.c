/* The re-backup hints file (engine/backup/hints.c, SPEC.md section 19.10): what one backup
 * records reads back the same in the next; a missing file is no hints; a file of another store
 * or chunk size is not used; every rule a damaged file breaks (its checksum repaired, so that the
 * rule itself must catch it) is refused naming the file and the rule, leaving no hints; a patched
 * region's patch and blocks read back as recorded. The
 * pipeline's use of them is tests/hints_test.sh's, on real ext4. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "hints.h"
#include "le.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(hints_file, .fini = teardown);

#define AVG (16u << 10)
static const uint8_t check_a[ASR_BACKUP_HINTS_CHECK] = {1, 2, 3};
static const uint8_t check_b[ASR_BACKUP_HINTS_CHECK] = {9, 9, 9};
static const uint8_t key1[HINT_KEY_SIZE] = {0x11}, key2[HINT_KEY_SIZE] = {0x22};

/* Entry `tag`'s blocks, each from its base. */
static struct hint_block blocks[8][24];

static struct hint entry(uint64_t offset, uint32_t len, uint8_t tag)
{
    struct hint h = {.offset = offset, .len = len};
    h.verify = (struct asr_hash128){tag, (uint64_t)tag << 8};
    h.content = (struct asr_hash128){(uint64_t)tag << 16, (uint64_t)tag << 24};
    memset(h.sid.b, tag, sizeof h.sid.b);
    for (size_t i = 0; i < hint_block_count(offset, len); i++)
        blocks[tag][i] = (struct hint_block){(uint64_t)tag << 32 | i, HINT_FROM_BASE};
    h.blocks = blocks[tag];
    return h;
}

/* Entry `tag` patched: its second block from a patch. */
static struct hint patched(uint64_t offset, uint32_t len, uint8_t tag)
{
    struct hint h = entry(offset, len, tag);
    h.flags = HINT_PATCHED;
    h.patch_content = (struct asr_hash128){7, 8};
    memset(h.patch_sid.b, 0x70 + tag, sizeof h.patch_sid.b);
    uint32_t a, b;
    hint_block_range(offset, len, 1, &a, &b);
    blocks[tag][1].from = 0;
    h.patch_len = b - a;
    return h;
}

/* The fields of two entries, and their blocks, equal. */
static bool same_entry(const struct hint *a, const struct hint *b)
{
    struct hint x = *a, y = *b;
    x.blocks = y.blocks = NULL;
    return !memcmp(&x, &y, sizeof x) &&
           !memcmp(a->blocks, b->blocks, hint_block_count(a->offset, a->len) * sizeof *a->blocks);
}

/* Two volumes: three chunks in the first (the last patched), one in the second; written to path. */
static void write_sample(const char *path, struct asr_backup_hints **keep)
{
    struct asr_backup_hints *h;
    struct asr_error err = {0};
    cr_assert_eq(asr_backup_hints_new(check_a, AVG, &h, &err), ASR_OK, "%s", err.msg);
    struct hint e[] = {entry(0, 20000, 1), entry(20000, 4096, 2), patched(65536, 65536, 3)};
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(hints_record(h, key1, &e[i], &err), ASR_OK, "%s", err.msg);
    struct hint f = entry(4096, 100, 4);
    cr_assert_eq(hints_record(h, key2, &f, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_backup_hints_write(h, path, &err), ASR_OK, "%s", err.msg);
    if (keep)
        *keep = h;
    else
        asr_backup_hints_free(h);
}

static void spit(const char *path, const uint8_t *b, size_t len, bool repair)
{
    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    if (repair && len >= 8)
        put_le64(c + len - 8, XXH3_64bits(c, len - 8));
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(c, 1, len, f), len);
    fclose(f);
    free(c);
}

/* Reads path with hints for check_a and AVG: the code, err filled. */
static int read_back(const char *path, struct asr_backup_hints **out, struct asr_error *err)
{
    cr_assert_eq(asr_backup_hints_new(check_a, AVG, out, err), ASR_OK, "%s", err->msg);
    return asr_backup_hints_read(*out, path, err);
}

Test(hints_file, what_one_backup_records_the_next_reads)
{
    char *path = scratch_path("cache/asrimg/h.bin");
    struct asr_backup_hints *w, *r;
    write_sample(path, &w);
    struct asr_error err = {0};
    cr_assert_eq(read_back(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_backup_hints_loaded(r), 4);
    cr_assert_eq(hints_seed(r), hints_seed(w), "the seed is kept from file to file");
    const struct hint_list *l = hints_for_volume(r, key1);
    cr_assert(l);
    cr_assert_eq(l->n, 3);
    struct hint want = entry(20000, 4096, 2), want_patched = patched(65536, 65536, 3);
    const struct hint *got = hints_at(l, 20000);
    cr_assert(got);
    cr_assert(same_entry(got, &want), "the entry reads back field by field, with its blocks");
    cr_assert(hints_at(l, 65536));
    cr_assert(same_entry(hints_at(l, 65536), &want_patched), "so does a patched one");
    cr_assert_null(hints_at(l, 20001), "only a chunk's first byte finds it");
    cr_assert_null(hints_at(l, 1 << 30));
    cr_assert(hints_at(hints_for_volume(r, key2), 4096));
    uint8_t other[HINT_KEY_SIZE] = {0x33};
    cr_assert_null(hints_for_volume(r, other));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the file is private");
    char *dir = scratch_path("cache/asrimg");
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "so is the directory made for it");
    asr_backup_hints_free(w);
    asr_backup_hints_free(r);
    free(dir);
    free(path);
}

Test(hints_file, a_missing_file_is_no_hints)
{
    char *path = scratch_path("none.bin");
    struct asr_backup_hints *r;
    struct asr_error err = {0};
    cr_assert_eq(read_back(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_backup_hints_loaded(r), 0);
    asr_backup_hints_free(r);
    free(path);
}

Test(hints_file, another_store_or_chunk_size_is_not_used)
{
    char *path = scratch_path("h.bin");
    write_sample(path, NULL);
    struct asr_backup_hints *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_backup_hints_new(check_b, AVG, &r, &err), ASR_OK);
    cr_assert_eq(asr_backup_hints_read(r, path, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "another store or key") && strstr(err.msg, path), "%s", err.msg);
    cr_assert_eq(asr_backup_hints_loaded(r), 0);
    asr_backup_hints_free(r);
    err = (struct asr_error){0};
    cr_assert_eq(asr_backup_hints_new(check_a, AVG * 2, &r, &err), ASR_OK);
    cr_assert_eq(asr_backup_hints_read(r, path, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "16384-byte average chunks"), "%s", err.msg);
    asr_backup_hints_free(r);
    free(path);
}

Test(hints_file, chunks_are_recorded_in_order_only)
{
    struct asr_backup_hints *h;
    struct asr_error err = {0};
    cr_assert_eq(asr_backup_hints_new(check_a, AVG, &h, &err), ASR_OK);
    struct hint a = entry(8192, 8192, 1), b = entry(12288, 100, 2);
    cr_assert_eq(hints_record(h, key1, &a, &err), ASR_OK);
    cr_assert_eq(hints_record(h, key1, &b, &err), ASR_E_STATE, "a chunk inside the one before");
    asr_backup_hints_free(h);
}

/* Layout of the sample: header 64, 2 volumes of 32, then 4 entries of 136, their 5 + 2 + 16 + 1
 * blocks of 9, then the checksum. */
#define ENTRY(i) (64 + 2 * 32 + (i) * 136)
#define BLOCK(i) (ENTRY(4) + (i) * 9)
#define SAMPLE_LEN (BLOCK(24) + 8)

struct damage {
    const char *what;
    size_t at;      /* byte to set (ignored when cut) */
    uint64_t value;
    unsigned width; /* 1, 4 or 8 bytes */
    const char *says;
};

static const struct damage damages[] = {
    {"magic", 0, 'X', 1, "not a re-backup hints file"},
    {"version", 8, 3, 4, "version 3"},
    {"reserved", 60, 1, 4, "reserved bytes"},
    {"volume count", 56, 5000, 4, "5000 volumes"},
    {"volume count past the file", 56, 4000, 4, "do not hold 4000 volumes"},
    {"first volume's entries not first", 64 + 16, 1, 8, "do not follow on"},
    {"second volume's entries past the end", 64 + 32 + 24, 100, 8, "do not follow on"},
    {"an entry left over", 64 + 32 + 24, 0, 8, "do not hold 3 entries"},
    {"flags", ENTRY(0) + 12, 2, 4, "unknown flags"},
    {"reserved entry bytes", ENTRY(2) + 100, 1, 4, "reserved bytes set"},
    {"a patch's length on a region not patched", ENTRY(0) + 96, 5, 4, "reserved bytes set"},
    {"a patch's length not its blocks'", ENTRY(2) + 96, 8192, 4, "for the patch's length"},
    {"a patched region with every block from its base", BLOCK(7 + 1) + 8, 1, 1, "for the patch's length"},
    {"block flags", BLOCK(0) + 8, 2, 1, "unknown flags"},
    {"a block not from the base of a region not patched", BLOCK(0) + 8, 0, 1, "a region that is not patched"},
    {"zero length", ENTRY(1) + 8, 0, 4, "length 0 outside"},
    {"longer than the largest chunk", ENTRY(2) + 8, 4 * AVG + 1, 4, "outside 1..65536"},
    {"overlapping the chunk before", ENTRY(1), 19999, 8, "out of order"},
    {"offset wrapping", ENTRY(2), UINT64_MAX - 10, 8, "out of order"},
};

Test(hints_file, every_rule_a_damaged_file_breaks_is_named)
{
    char *path = scratch_path("h.bin"), *bad = scratch_path("bad.bin");
    write_sample(path, NULL);
    size_t len;
    uint8_t *good = read_file(path, &len);
    cr_assert_eq(len, (size_t)SAMPLE_LEN);
    for (size_t i = 0; i < sizeof damages / sizeof damages[0]; i++) {
        const struct damage *d = &damages[i];
        uint8_t *b = malloc(len);
        memcpy(b, good, len);
        if (d->width == 1)
            b[d->at] = (uint8_t)d->value;
        else if (d->width == 4)
            put_le32(b + d->at, (uint32_t)d->value);
        else
            put_le64(b + d->at, d->value);
        spit(bad, b, len, true);
        struct asr_backup_hints *r;
        struct asr_error err = {0};
        int rc = read_back(bad, &r, &err);
        cr_expect_neq(rc, ASR_OK, "%s: accepted", d->what);
        cr_expect(strstr(err.msg, d->says) && strstr(err.msg, bad), "%s: \"%s\" does not say \"%s\"", d->what,
                  err.msg, d->says);
        cr_expect_eq(asr_backup_hints_loaded(r), 0, "%s: hints left after a refusal", d->what);
        asr_backup_hints_free(r);
        free(b);
    }
    /* The checksum itself, and files cut short or grown by a part of an entry. */
    uint8_t *b = malloc(len + 40);
    memcpy(b, good, len);
    b[ENTRY(3) + 20] ^= 1;
    spit(bad, b, len, false);
    struct asr_backup_hints *r;
    struct asr_error err = {0};
    cr_assert_eq(read_back(bad, &r, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "checksum mismatch"), "%s", err.msg);
    asr_backup_hints_free(r);
    size_t cuts[] = {0, 7, 63, 71, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(bad, good, cuts[i], cuts[i] >= 8);
        err = (struct asr_error){0};
        cr_expect_neq(read_back(bad, &r, &err), ASR_OK, "cut to %zu bytes: accepted", cuts[i]);
        cr_expect(err.msg[0], "cut to %zu bytes: no message", cuts[i]);
        asr_backup_hints_free(r);
    }
    memcpy(b, good, len - 8);
    memset(b + len - 8, 0, 40);
    spit(bad, b, len + 32, true);
    err = (struct asr_error){0};
    cr_assert_eq(read_back(bad, &r, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "do not hold 4 entries and their 24 blocks"), "%s", err.msg);
    asr_backup_hints_free(r);
    free(b);
    free(good);
    free(bad);
    free(path);
}
