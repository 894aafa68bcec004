/* Damaged images: every flipped byte is caught by verify and never turns into wrong data from
 * the reader; every truncation is reported as incomplete; split sets with a part missing,
 * reordered, truncated or foreign are refused with the part named; unknown features and newer
 * format versions are handled by their class. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "internal.h"
#include "le.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(damage, .fini = teardown, .timeout = 600);

static const struct sample_opts small = {.level = 3, .max_chunk = 8192, .volume_kib = 64, .fixed_identity = 1};

/* If the reader hands out data at all, it must be the data that was written. */
static void reader_never_lies(const char *path, const struct sample_opts *o)
{
    struct asr_reader *r;
    struct asr_error err = {0};
    if (asr_reader_open(path, &r, &err) != ASR_OK)
        return;
    uint64_t s = sample_volume_size(o);
    uint8_t *buf = malloc(s);
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        int rc = asr_reader_read_volume(r, v, 0, buf, s, &err);
        if (rc != ASR_OK && rc != ASR_E_UNREADABLE)
            continue;
        int unr;
        for (uint64_t i = 0; i < s; i++)
            if (buf[i] != sample_expected(v, i, &unr))
                cr_assert_fail("volume %u byte %llu served wrong data without an error", v, (unsigned long long)i);
    }
    free(buf);
    asr_reader_free(r);
}

Test(damage, every_flipped_byte_is_caught)
{
    char *good = scratch_path("good.asrimg"), *bad = scratch_path("bad.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(good, &small, &err), ASR_OK, "%s", err.msg);
    size_t n;
    uint8_t *img = read_file(good, &n);
    cr_assert_lt(n, 150000, "the flip test wants a small image (%zu bytes)", n);
    write_file(bad, img, n);
    for (size_t i = 0; i < n; i++) {
        patch_byte(bad, i, img[i] ^ 0xff);
        struct asr_verify_report rep;
        err.msg[0] = '\0';
        int rc = asr_verify(bad, NULL, NULL, NULL, NULL, &rep, &err);
        if (rc == ASR_OK)
            cr_assert_fail("verify accepted an image with byte %zu flipped", i);
        cr_assert(rep.problems > 0 || err.msg[0], "byte %zu: verify failed without saying why", i);
        reader_never_lies(bad, &small);
        patch_byte(bad, i, img[i]);
    }
    free(img);
    free(good);
    free(bad);
}

Test(damage, flipped_bit_in_each_chunk_is_located)
{
    char *good = scratch_path("good.asrimg"), *bad = scratch_path("bad.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(good, &small, &err), ASR_OK, "%s", err.msg);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(good, &r, &err), ASR_OK, "%s", err.msg);
    const struct fmt_index *ix = fmt_reader_index(r);
    size_t n;
    uint8_t *img = read_file(good, &n);
    for (uint64_t c = 0; c < ix->chunk_count; c++) {
        uint64_t at = ASR_PART_HEADER_SIZE + ix->chunks[c].offset + ASR_CHUNK_HEADER_SIZE + ix->chunks[c].stored_len / 2;
        img[at] ^= 0x10;
        write_file(bad, img, n);
        struct asr_verify_report rep;
        cr_assert_neq(asr_verify(bad, NULL, NULL, NULL, NULL, &rep, &err), ASR_OK);
        char want[48];
        snprintf(want, sizeof want, "chunk %llu", (unsigned long long)c);
        cr_assert(strstr(err.msg, want), "first problem names %s: %s", want, err.msg);
        img[at] ^= 0x10;
    }
    asr_reader_free(r);
    free(img);
    free(good);
    free(bad);
}

static void expect_incomplete(const char *bad, size_t len)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    int rc = asr_reader_open(bad, &r, &err);
    cr_assert_null(r);
    cr_assert_eq(rc, len < sizeof fmt_part_magic ? ASR_E_NOT_IMAGE : ASR_E_INCOMPLETE,
                 "truncated to %zu bytes: got %s (%s)", len, asr_status_name(rc), err.msg);
}

Test(damage, every_truncation_is_incomplete)
{
    char *good = scratch_path("good.asrimg"), *bad = scratch_path("bad.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(good, &small, &err), ASR_OK, "%s", err.msg);
    size_t n;
    uint8_t *img = read_file(good, &n);
    write_file(bad, img, n);
    for (size_t len = n; len-- > 0;) {
        cr_assert_eq(truncate(bad, (off_t)len), 0);
        expect_incomplete(bad, len);
    }
    free(img);
    free(good);
    free(bad);
}

/* At each structure boundary verify also says incomplete (and fails). */
Test(damage, truncation_at_section_boundaries)
{
    char *good = scratch_path("good.asrimg"), *bad = scratch_path("bad.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(good, &small, &err), ASR_OK, "%s", err.msg);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(good, &r, &err), ASR_OK, "%s", err.msg);
    size_t n;
    uint8_t *img = read_file(good, &n);
    const struct fmt_index *ix = fmt_reader_index(r);
    uint64_t cuts[64], nc = 0;
    cuts[nc++] = ASR_PART_HEADER_SIZE;
    cuts[nc++] = ASR_PART_HEADER_SIZE + get_le32(img + ASR_PART_HEADER_SIZE + 4); /* after the image header */
    cuts[nc++] = ASR_PART_HEADER_SIZE + fmt_reader_data_start(r);
    for (uint64_t c = 0; c < ix->chunk_count && nc < 60; c++)
        cuts[nc++] = ASR_PART_HEADER_SIZE + ix->chunks[c].offset;
    cuts[nc++] = ASR_PART_HEADER_SIZE + fmt_reader_index_offset(r);
    cuts[nc++] = n - ASR_FOOTER_SIZE;
    asr_reader_free(r);
    for (uint64_t k = 0; k < nc; k++) {
        write_file(bad, img, cuts[k]);
        expect_incomplete(bad, cuts[k]);
        struct asr_verify_report rep;
        cr_assert_neq(asr_verify(bad, NULL, NULL, NULL, NULL, &rep, &err), ASR_OK);
        cr_assert_eq(rep.complete, 0);
        cr_assert(strstr(err.msg, "incomplete"), "cut at %llu: %s", (unsigned long long)cuts[k], err.msg);
    }
    free(img);
    free(good);
    free(bad);
}

/* ---- split sets ---------------------------------------------------------------------------- */

static const struct sample_opts split_opts = {.level = 0, .volume_kib = 2048, .split_size = ASR_MIN_SPLIT_SIZE,
                                              .fixed_identity = 0};

static void expect_parts_error(const char *path, const char *needle)
{
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    int rc = asr_reader_open(path, &r, &err);
    cr_assert_null(r);
    cr_assert_eq(rc, ASR_E_PARTS, "got %s: %s", asr_status_name(rc), err.msg);
    cr_assert(strstr(err.msg, needle), "message names %s: %s", needle, err.msg);
    cr_assert_neq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK);
}

Test(damage, split_part_missing)
{
    char *img = scratch_path("s.asrimg"), *p2 = scratch_path("s.asrimg.002"), *aside = scratch_path("aside");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &split_opts, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(rename(p2, aside), 0);
    expect_parts_error(img, "s.asrimg.002");
    free(img);
    free(p2);
    free(aside);
}

Test(damage, split_parts_reordered)
{
    char *img = scratch_path("s.asrimg"), *p2 = scratch_path("s.asrimg.002"), *p3 = scratch_path("s.asrimg.003"),
         *tmp = scratch_path("tmp");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &split_opts, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(rename(p2, tmp), 0);
    cr_assert_eq(rename(p3, p2), 0);
    cr_assert_eq(rename(tmp, p3), 0);
    expect_parts_error(img, "reordered");
    free(img);
    free(p2);
    free(p3);
    free(tmp);
}

Test(damage, split_part_truncated)
{
    char *img = scratch_path("s.asrimg"), *p2 = scratch_path("s.asrimg.002");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &split_opts, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(truncate(p2, ASR_MIN_SPLIT_SIZE - 1), 0);
    expect_parts_error(img, "s.asrimg.002");
    free(img);
    free(p2);
}

Test(damage, split_part_from_another_image)
{
    char *img = scratch_path("s.asrimg"), *other = scratch_path("o.asrimg"), *p2 = scratch_path("s.asrimg.002"),
         *o2 = scratch_path("o.asrimg.002");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &split_opts, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(write_sample_image(other, &split_opts, &err), ASR_OK, "%s", err.msg);
    copy_file(o2, p2);
    expect_parts_error(img, "another image");
    free(img);
    free(other);
    free(p2);
    free(o2);
}

Test(damage, split_last_part_missing_is_incomplete)
{
    char *img = scratch_path("s.asrimg"), *last = NULL;
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &split_opts, &err), ASR_OK, "%s", err.msg);
    struct stat st;
    uint32_t k = 2;
    for (;; k++) {
        char *p = fmt_part_path(img, k);
        if (stat(p, &st) != 0) {
            free(p);
            break;
        }
        free(last);
        last = p;
    }
    cr_assert_not_null(last);
    cr_assert_eq(unlink(last), 0);
    struct asr_reader *r = NULL;
    cr_assert_eq(asr_reader_open(img, &r, &err), ASR_E_INCOMPLETE, "%s", err.msg);
    cr_assert(strstr(err.msg, "parts are missing"), "%s", err.msg);
    free(img);
    free(last);
}

Test(damage, opening_a_later_part_points_to_the_first)
{
    char *img = scratch_path("s.asrimg"), *p2 = scratch_path("s.asrimg.002");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &split_opts, &err), ASR_OK, "%s", err.msg);
    struct asr_reader *r = NULL;
    cr_assert_eq(asr_reader_open(p2, &r, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "first part"), "%s", err.msg);
    free(img);
    free(p2);
}

/* ---- features and versions --------------------------------------------------------------- */

Test(damage, unknown_incompatible_feature_is_refused_by_name)
{
    char *path = image_with_feature(ASR_FEATURE_INCOMPAT, 9, "quantum-dedup");
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "quantum-dedup"), "names the feature: %s", err.msg);
    cr_assert_neq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK);
    free(path);
}

Test(damage, unknown_compatible_feature_is_accepted)
{
    char *path = image_with_feature(ASR_FEATURE_COMPAT, 17, "pretty-labels");
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(asr_reader_feature_name(r, ASR_FEATURE_COMPAT, 17), "pretty-labels");
    asr_reader_free(r);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
    free(path);
}

Test(damage, unknown_ro_compatible_feature_reads_but_does_not_verify_clean)
{
    char *path = image_with_feature(ASR_FEATURE_RO_COMPAT, 3, "checksums-v2");
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert(asr_reader_info(r)->ro_compat_unknown);
    asr_reader_free(r);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_E_UNSUPPORTED);
    free(path);
}

Test(damage, newer_format_version_is_refused)
{
    char *path = image_with_feature(ASR_FEATURE_COMPAT, 1, "x");
    size_t n;
    uint8_t *img = read_file(path, &n);
    uint8_t *hdr = img + ASR_PART_HEADER_SIZE;
    uint32_t len = get_le32(hdr + 4);
    put_le32(hdr + 8, ASR_FORMAT_VERSION + 1);
    put_le64(hdr + len - 8, XXH3_64bits(hdr, len - 8));
    write_file(path, img, n);
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "version 2"), "%s", err.msg);
    free(img);
    free(path);
}

Test(damage, not_an_image)
{
    char *path = scratch_path("text.asrimg");
    write_file(path, "hello, this is not an image at all, not even close to one", 56);
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_E_NOT_IMAGE);
    cr_assert(strstr(err.msg, "text.asrimg"), "%s", err.msg);
    char *missing = scratch_path("nope.asrimg");
    cr_assert_eq(asr_reader_open(missing, &r, &err), ASR_E_IO);
    cr_assert(strstr(err.msg, "nope.asrimg"), "%s", err.msg);
    free(path);
    free(missing);
}

/* ---- verify walks the records by the rules the sequential reader applies ----------------------- */

static void keep_problem(const struct asr_problem *p, void *ctx)
{
    char *all = ctx;
    size_t used = strlen(all);
    snprintf(all + used, 8192 - used, "%s: %s\n", p->what, p->message);
}

/* An image cut before its footer has no index to cross-check against: its extent records are
 * still held to section 9's rules (here: a data extent naming a chunk not yet in the stream). */
Test(damage, verify_checks_extent_records_without_an_index)
{
    char *good = scratch_path("good.asrimg"), *bad = scratch_path("bad.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(good, &small, &err), ASR_OK, "%s", err.msg);
    int fd = open(good, O_RDONLY);
    struct asr_stream *st;
    cr_assert_eq(asr_stream_open_fd(fd, "good", &st, &err), ASR_OK, "%s", err.msg);
    struct asr_stream_record rec = {0};
    uint64_t record = 0;
    while (!record && asr_stream_next(st, &rec, &err) == ASR_OK && rec.kind != ASR_STREAM_END)
        if (rec.kind == ASR_STREAM_EXTENTS)
            record = rec.logical_offset;
    asr_stream_free(st);
    close(fd);
    cr_assert_gt(record, 0, "no extent record");
    size_t n;
    uint8_t *img = read_file(good, &n), *aext = img + ASR_PART_HEADER_SIZE + record;
    put_le64(aext + ASR_SECTION_HEADER_SIZE + 8 + 16, 9999); /* the first extent's chunk */
    put_le64(aext + 16, XXH3_64bits(aext + ASR_SECTION_HEADER_SIZE, (size_t)get_le64(aext + 8)));
    put_le64(aext + 24, XXH3_64bits(aext, 24));
    write_file(bad, img, n - ASR_FOOTER_SIZE);
    static char problems[8192];
    problems[0] = '\0';
    struct asr_verify_report rep;
    cr_assert_neq(asr_verify(bad, keep_problem, problems, NULL, NULL, &rep, &err), ASR_OK);
    cr_assert_eq(rep.complete, false);
    cr_assert(strstr(problems, "refers to chunk 9999, which is not earlier in the stream"), "%s", problems);
    free(img);
    free(good);
    free(bad);
}
