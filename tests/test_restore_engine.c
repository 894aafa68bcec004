/* The restore engine on the sample image of support.c (two disks, GPT and MBR with a logical
 * partition; stored, compressed, deduplicated, zero and unreadable extents, some of them ending
 * and starting off any sector boundary): every captured byte lands where it belongs on every
 * mirror, nothing else of a garbage-filled target changes, damage stops or is listed, refusals
 * write nothing, and the read-back comparison names a changed byte. The end-to-end checks on
 * real filesystems are tests/restore_test.sh. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "internal.h" /* fmt_part_path */
#include "restore_plan.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(restore, .fini = teardown);

static const struct sample_opts opts = {.level = 3, .max_chunk = 65536, .volume_kib = 512};

static char *sample(void)
{
    char *img = scratch_path("s.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(img, &opts, &err), ASR_OK, "%s", err.msg);
    return img;
}

/* A target file of `size` bytes of garbage that a test can recompute: byte i is garbage(i). */
static uint8_t garbage(uint64_t i) { return (uint8_t)(i * 131 + (i >> 9) * 7 + 0x5a); }

static char *garbage_target(const char *name, uint64_t size)
{
    char *path = scratch_path(name);
    uint8_t *b = malloc(size);
    for (uint64_t i = 0; i < size; i++)
        b[i] = garbage(i);
    write_file(path, b, size);
    free(b);
    return path;
}

static struct asr_reader *open_image(const char *img)
{
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(img, &r, &err), ASR_OK, "%s", err.msg);
    return r;
}

/* What byte `off` of disk d must read after a restore: captured bytes from the image, region
 * bytes from the layout, the garbage elsewhere. */
static int expected_disk_byte(const struct asr_reader *r, uint32_t d, uint64_t off, uint8_t *want)
{
    const struct asr_disk_desc *dd = asr_reader_disk(r, d);
    for (uint32_t i = 0; i < dd->region_count; i++)
        if (off >= dd->regions[i].offset && off < dd->regions[i].offset + dd->regions[i].length) {
            *want = dd->regions[i].data[off - dd->regions[i].offset];
            return 1;
        }
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
        if (vd->disk_index != d || off < vd->disk_offset || off >= vd->disk_offset + vd->size_bytes)
            continue;
        uint64_t n, at = off - vd->disk_offset;
        const struct asr_extent *e = asr_reader_extents(r, v, &n);
        for (uint64_t k = 0; k < n; k++)
            if (at >= e[k].offset && at < e[k].offset + e[k].length) {
                int unreadable;
                int b = sample_expected(v, at, &unreadable);
                *want = unreadable ? 0 : (uint8_t)b; /* unreadable ranges are zeroed */
                return 1;
            }
    }
    *want = garbage(off);
    return 0;
}

static void check_target(const struct asr_reader *r, uint32_t d, const char *path)
{
    size_t len;
    uint8_t *got = read_file(path, &len);
    cr_assert_eq(len, asr_reader_disk(r, d)->size_bytes);
    for (uint64_t off = 0; off < len; off++) {
        uint8_t want;
        int captured = expected_disk_byte(r, d, off, &want);
        if (got[off] != want)
            cr_assert_fail("%s byte %llu: got 0x%02x, want 0x%02x (%s)", path, (unsigned long long)off, got[off], want,
                           captured ? "captured" : "not captured: must stay as it was");
    }
    free(got);
}

static int restore(struct asr_reader *r, const char *img, const struct asr_restore_target_spec *t, size_t n,
                   const struct asr_restore_options *o, struct asr_restore_stats *st, struct asr_error *err)
{
    struct asr_restore *rs;
    int rc = asr_restore_open(r, img, t, n, false, &rs, err);
    if (rc)
        return rc;
    rc = asr_restore_run(rs, o, st, err);
    asr_restore_free(rs);
    return rc;
}

static uint64_t le_at(const uint8_t *b, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | b[i];
    return v;
}

/* The middle of chunk `id`'s stored bytes in a single-file image. */
static uint64_t chunk_middle(const char *img, uint64_t id)
{
    size_t len;
    uint8_t *b = read_file(img, &len);
    uint64_t at = 0;
    for (size_t i = 64; i + 64 < len && !at; i++)
        if (!memcmp(b + i, "ACNK", 4) && le_at(b + i + 8, 8) == id)
            at = i + 64 + le_at(b + i + 16, 4) / 2;
    cr_assert_gt(at, 0, "no record of chunk %llu found", (unsigned long long)id);
    free(b);
    return at;
}

/* Chunk `id`'s stored bytes (of a single-file image): flip one in the middle. */
static uint64_t damage_chunk(const char *img, uint64_t id)
{
    uint64_t at = chunk_middle(img, id);
    size_t len;
    uint8_t *b = read_file(img, &len);
    patch_byte(img, at, b[at] ^ 0x40);
    free(b);
    return at;
}

/* The first data chunk's stored bytes: flip one in the middle. */
static uint64_t damage_first_chunk(const char *img) { return damage_chunk(img, 0); }

/* The sample image, open, and a garbage target for each of its disks: a (disk 0) and c (disk 1). */
struct fixture {
    char *img, *a, *c;
    struct asr_reader *r;
    struct asr_restore_target_spec t[2];
};

static void fixture_make(struct fixture *f, bool damaged)
{
    f->img = sample();
    if (damaged)
        damage_first_chunk(f->img);
    f->r = open_image(f->img);
    f->a = garbage_target("a", asr_reader_disk(f->r, 0)->size_bytes);
    f->c = garbage_target("c", asr_reader_disk(f->r, 1)->size_bytes);
    f->t[0] = (struct asr_restore_target_spec){f->a, 0};
    f->t[1] = (struct asr_restore_target_spec){f->c, 1};
}

static void fixture_free(struct fixture *f)
{
    asr_reader_free(f->r);
    free(f->img), free(f->a), free(f->c);
}

Test(restore, every_captured_byte_on_every_mirror_and_nothing_else)
{
    struct fixture f;
    fixture_make(&f, false);
    char *b = garbage_target("b", asr_reader_disk(f.r, 0)->size_bytes);
    struct asr_restore_target_spec t[] = {f.t[0], f.t[1], {b, 0}};
    struct asr_restore_stats st;
    struct asr_error err = {0};
    cr_assert_eq(restore(f.r, f.img, t, 3, &(struct asr_restore_options){.threads = 2}, &st, &err), ASR_OK, "%s",
                 err.msg);
    cr_assert_gt(st.unreadable_count, 0, "the sample has an unreadable range");
    cr_assert_eq(st.damaged_count, 0);
    check_target(f.r, 0, f.a);
    check_target(f.r, 0, b);
    check_target(f.r, 1, f.c);
    asr_restore_stats_free(&st);
    free(b);
    fixture_free(&f);
}

Test(restore, one_thread_gives_the_same_bytes)
{
    struct fixture f;
    fixture_make(&f, false);
    struct asr_restore_stats st;
    struct asr_error err = {0};
    cr_assert_eq(restore(f.r, f.img, f.t, 2, &(struct asr_restore_options){.threads = 1}, &st, &err), ASR_OK, "%s",
                 err.msg);
    check_target(f.r, 0, f.a);
    check_target(f.r, 1, f.c);
    asr_restore_stats_free(&st);
    fixture_free(&f);
}

Test(restore, a_damaged_chunk_stops_or_is_listed)
{
    struct fixture f;
    fixture_make(&f, true);
    struct asr_restore_stats st;
    struct asr_error err = {0};
    cr_assert_eq(restore(f.r, f.img, f.t, 2, &(struct asr_restore_options){0}, &st, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "chunk 0") && strstr(err.msg, "volume 0 offset 0"), "%s", err.msg);
    asr_restore_stats_free(&st);
    cr_assert_eq(restore(f.r, f.img, f.t, 2, &(struct asr_restore_options){.keep_going = true}, &st, &err), ASR_OK,
                 "%s", err.msg);
    cr_assert_gt(st.damaged_count, 0);
    cr_assert_eq(st.damaged[0].chunk, 0);
    cr_assert_eq(st.damaged[0].volume, 0);
    asr_restore_stats_free(&st);
    fixture_free(&f);
}

static uint8_t *snapshot(const char *path, size_t *len) { return read_file(path, len); }

Test(restore, refusals_write_nothing)
{
    struct fixture f;
    fixture_make(&f, false);
    char *small = garbage_target("small", asr_reader_disk(f.r, 0)->size_bytes - 512);
    size_t n0, n1;
    uint8_t *before_small = snapshot(small, &n0), *before_a = snapshot(f.a, &n1);
    struct asr_restore *rs = NULL;
    struct asr_error err = {0};
    struct asr_restore_target_spec too_small[] = {{small, 0}, f.t[1]};
    cr_assert_eq(asr_restore_open(f.r, f.img, too_small, 2, false, &rs, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "smaller"), "%s", err.msg);
    cr_assert_eq(asr_restore_open(f.r, f.img, f.t, 1, false, &rs, &err), ASR_E_ARG); /* no target for disk 1 */
    cr_assert(strstr(err.msg, "no target"), "%s", err.msg);
    struct asr_restore_target_spec twice[] = {f.t[0], f.t[0], f.t[1]};
    cr_assert_eq(asr_restore_open(f.r, f.img, twice, 3, false, &rs, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "twice"), "%s", err.msg);
    struct asr_restore_target_spec the_image[] = {{f.img, 0}, f.t[1]};
    cr_assert_eq(asr_restore_open(f.r, f.img, the_image, 2, false, &rs, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "smaller") || strstr(err.msg, "holds the image"), "%s", err.msg);
    cr_assert_null(rs);
    size_t m0, m1;
    uint8_t *after_small = snapshot(small, &m0), *after_a = snapshot(f.a, &m1);
    cr_assert(m0 == n0 && !memcmp(before_small, after_small, n0));
    cr_assert(m1 == n1 && !memcmp(before_a, after_a, n1));
    free(before_small), free(after_small), free(before_a), free(after_a);
    free(small);
    fixture_free(&f);
}

struct first_mismatch {
    uint32_t volume;
    uint64_t offset;
    int count;
};

/* Volume data only: the sample's partition tables are made-up bytes that libfdisk cannot read,
 * so the table comparison always has something to say about them. */
/* Keeps the last progress report. */
static void on_progress(const struct asr_restore_progress *p, void *ctx)
{
    cr_assert_leq(p->done, p->total);
    *(struct asr_restore_progress *)ctx = *p;
}

static void on_mismatch(const struct asr_restore_mismatch *m, void *ctx)
{
    struct first_mismatch *f = ctx;
    if (m->volume != UINT32_MAX && !f->count++) {
        f->volume = m->volume;
        f->offset = m->offset;
    }
}

Test(restore, compare_names_a_changed_byte)
{
    struct fixture fx;
    fixture_make(&fx, false);
    struct asr_reader *r = fx.r;
    const char *img = fx.img, *a = fx.a;
    const struct asr_restore_target_spec *t = fx.t;
    struct asr_restore_stats st;
    struct asr_error err = {0};
    cr_assert_eq(restore(r, img, t, 2, &(struct asr_restore_options){0}, &st, &err), ASR_OK, "%s", err.msg);
    asr_restore_stats_free(&st);
    struct asr_restore *rs;
    struct first_mismatch f = {0};
    cr_assert_eq(asr_restore_open(r, img, t, 2, true, &rs, &err), ASR_OK, "%s", err.msg);
    struct asr_restore_progress seen = {0};
    asr_restore_compare(rs, &(struct asr_compare_options){.on_mismatch = on_mismatch, .mismatch_ctx = &f,
                                                          .progress = on_progress, .progress_ctx = &seen},
                        &err);
    cr_assert(seen.verifying && seen.total > 0 && seen.done == seen.total, "progress %llu of %llu",
              (unsigned long long)seen.done, (unsigned long long)seen.total);
    cr_assert_eq(f.count, 0, "volume %u offset %llu differs right after the restore", f.volume,
                 (unsigned long long)f.offset);
    asr_restore_free(rs);
    /* Volume 1, 5000 bytes in: captured data (the sample's first data extent). */
    const struct asr_volume_desc *v1 = asr_reader_volume(r, 1);
    size_t len;
    uint8_t *b = read_file(a, &len);
    patch_byte(a, v1->disk_offset + 5000, b[v1->disk_offset + 5000] ^ 1);
    free(b);
    cr_assert_eq(asr_restore_open(r, img, t, 2, true, &rs, &err), ASR_OK, "%s", err.msg);
    f = (struct first_mismatch){0};
    cr_assert_eq(asr_restore_compare(rs, &(struct asr_compare_options){.on_mismatch = on_mismatch, .mismatch_ctx = &f},
                                     &err),
                 ASR_E_CORRUPT);
    cr_assert_eq(f.count, 1);
    cr_assert_eq(f.volume, 1);
    cr_assert_eq(f.offset, 5000);
    asr_restore_free(rs);
    fixture_free(&fx);
}

/* --grow's choice, on tables built by hand: the data partition that ends last, with its extended
 * partition when it is a logical one; refused when another partition ends after it. */
static struct asr_partition_desc part_at(uint32_t number, enum asr_part_kind kind, uint64_t start_mib,
                                         uint64_t size_mib)
{
    struct asr_partition_desc p = {.number = number, .kind = (uint8_t)kind};
    p.start_bytes = start_mib << 20;
    p.size_bytes = size_mib << 20;
    return p;
}

static int plan_of(struct asr_partition_desc *parts, uint32_t n, struct asr_grow_plan *plan, char *why, size_t len)
{
    struct asr_disk_desc d = {.size_bytes = 64u << 20, .logical_sector = 512, .label = ASR_LABEL_MBR};
    d.partitions = parts;
    d.partition_count = n;
    return asr_restore_grow_plan(&d, plan, why, len);
}

Test(restore, grow_plan_picks_the_data_partition_that_ends_last)
{
    struct asr_grow_plan plan;
    char why[160] = "";
    /* GPT numbering need not follow the disk's order: partition 1 is the last one here. */
    struct asr_partition_desc gpt[] = {part_at(1, ASR_PART_GPT, 40, 20), part_at(2, ASR_PART_GPT, 1, 39)};
    cr_assert_eq(plan_of(gpt, 2, &plan, why, sizeof why), ASR_OK, "%s", why);
    cr_assert_eq(plan.data, 0u);
    cr_assert_eq(plan.container, UINT32_MAX);

    /* A logical partition last: its extended partition (listed before it) grows with it. */
    struct asr_partition_desc logical[] = {part_at(1, ASR_PART_PRIMARY, 2, 24), part_at(2, ASR_PART_EXTENDED, 26, 30),
                                           part_at(5, ASR_PART_LOGICAL, 27, 12), part_at(6, ASR_PART_LOGICAL, 40, 16)};
    cr_assert_eq(plan_of(logical, 4, &plan, why, sizeof why), ASR_OK, "%s", why);
    cr_assert_eq(plan.data, 3u);
    cr_assert_eq(plan.container, 1u);

    /* Free space in the extended partition after its last logical one: still the logical one. */
    logical[1].size_bytes = 36u << 20;
    cr_assert_eq(plan_of(logical, 4, &plan, why, sizeof why), ASR_OK, "%s", why);
    cr_assert_eq(plan.data, 3u);
    cr_assert_eq(plan.container, 1u);

    /* A primary after the extended partition. */
    struct asr_partition_desc after[] = {part_at(2, ASR_PART_EXTENDED, 2, 20), part_at(5, ASR_PART_LOGICAL, 3, 19),
                                         part_at(1, ASR_PART_PRIMARY, 22, 10)};
    cr_assert_eq(plan_of(after, 3, &plan, why, sizeof why), ASR_OK, "%s", why);
    cr_assert_eq(plan.data, 2u);
    cr_assert_eq(plan.container, UINT32_MAX);

    struct asr_partition_desc none[] = {part_at(2, ASR_PART_EXTENDED, 2, 20)};
    cr_assert_eq(plan_of(none, 1, &plan, why, sizeof why), ASR_OK, "%s", why);
    cr_assert_eq(plan.data, UINT32_MAX, "nothing to grow");
}

Test(restore, grow_plan_refuses_what_it_cannot_grow)
{
    struct asr_grow_plan plan;
    char why[160] = "";
    /* An (empty) extended partition after the last data partition. */
    struct asr_partition_desc ext_after[] = {part_at(1, ASR_PART_PRIMARY, 1, 8), part_at(2, ASR_PART_EXTENDED, 9, 7)};
    cr_assert_eq(plan_of(ext_after, 2, &plan, why, sizeof why), ASR_E_UNSUPPORTED);
    cr_assert(strstr(why, "partition 1 cannot grow: partition 2 ends after it"), "%s", why);

    /* An extended partition that ends after a logical one it does not hold. */
    struct asr_partition_desc apart[] = {part_at(2, ASR_PART_EXTENDED, 30, 10), part_at(5, ASR_PART_LOGICAL, 2, 20)};
    cr_assert_eq(plan_of(apart, 2, &plan, why, sizeof why), ASR_E_UNSUPPORTED);
    cr_assert(strstr(why, "partition 2 ends after it"), "%s", why);

    /* A logical partition with no extended partition (a crafted image). */
    struct asr_partition_desc orphan[] = {part_at(1, ASR_PART_PRIMARY, 1, 8), part_at(5, ASR_PART_LOGICAL, 10, 8)};
    cr_assert_eq(plan_of(orphan, 2, &plan, why, sizeof why), ASR_E_UNSUPPORTED);
    cr_assert(strstr(why, "no extended partition around it"), "%s", why);
}

/* ---- from the file and from a pipe: the same bytes ------------------------------------------- */

static char *golden_image(const char *name)
{
    char file[4096], *p = malloc(8192);
    cr_assert_not_null(p);
    snprintf(file, sizeof file, "%s", __FILE__);
    snprintf(p, 8192, "%s/golden/%s", dirname(file), name);
    return p;
}

/* An image as a pipe carries it: a split set's parts one after another. */
static uint8_t *image_bytes(const char *img, size_t *len)
{
    uint8_t *all = NULL;
    *len = 0;
    for (uint32_t k = 1;; k++) {
        char *part = fmt_part_path(img, k);
        cr_assert_not_null(part);
        if (k > 1 && access(part, F_OK) != 0) {
            free(part);
            return all;
        }
        size_t n;
        uint8_t *b = read_file(part, &n);
        all = realloc(all, *len + n);
        cr_assert_not_null(all);
        memcpy(all + *len, b, n);
        *len += n;
        free(b);
        free(part);
    }
}

struct feeder {
    int fd;
    const uint8_t *data;
    size_t len;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    for (size_t done = 0; done < f->len;) {
        ssize_t n = write(f->fd, f->data + done, f->len - done < 65536 ? f->len - done : 65536);
        if (n <= 0)
            break; /* the restore stopped reading */
        done += (size_t)n;
    }
    close(f->fd);
    return NULL;
}

/* One restore of an image onto garbage targets `NAME-DISK`, one per image disk. */
struct run {
    int rc;
    struct asr_error err;
    struct asr_restore_stats st;
    uint32_t disks;
    char *target[4];
    uint8_t state[4]; /* each target's, as the restore left it */
};

static void run_free(struct run *r)
{
    asr_restore_stats_free(&r->st);
    for (uint32_t d = 0; d < r->disks; d++)
        free(r->target[d]);
}

/* Restores img onto r's targets again: from the file, or (piped) through a pipe fed with its
 * first `cut` bytes (0: all of them). */
static void restore_onto(struct run *r, const char *img, bool piped, size_t cut, const struct asr_restore_options *o)
{
    struct asr_restore_target_spec t[4];
    for (uint32_t d = 0; d < r->disks; d++)
        t[d] = (struct asr_restore_target_spec){r->target[d], d};
    asr_restore_stats_free(&r->st);
    r->err = (struct asr_error){0};
    struct asr_restore *rs = NULL;
    struct asr_reader *rd = NULL;
    struct asr_stream *s = NULL;
    uint8_t *bytes = NULL;
    int fds[2] = {-1, -1};
    pthread_t th;
    struct feeder f;
    if (!piped) {
        rd = open_image(img);
        r->rc = asr_restore_open(rd, img, t, r->disks, false, &rs, &r->err);
    } else {
        signal(SIGPIPE, SIG_IGN); /* a restore that stops reading: the feeder sees EPIPE */
        size_t len;
        bytes = image_bytes(img, &len);
        cr_assert_eq(pipe(fds), 0);
        f = (struct feeder){fds[1], bytes, cut && cut < len ? cut : len};
        cr_assert_eq(pthread_create(&th, NULL, feed, &f), 0);
        r->rc = asr_stream_open_fd(fds[0], "pipe", &s, &r->err);
        if (!r->rc)
            r->rc = asr_restore_open_stream(s, t, r->disks, &rs, &r->err);
    }
    if (!r->rc)
        r->rc = asr_restore_run(rs, o, &r->st, &r->err);
    for (uint32_t d = 0; rs && d < r->disks; d++)
        r->state[d] = asr_restore_target(rs, d)->state;
    asr_restore_free(rs);
    asr_reader_free(rd);
    asr_stream_free(s);
    if (piped) {
        close(fds[0]);
        pthread_join(th, NULL);
    }
    free(bytes);
}

/* The same onto new garbage targets `NAME-DISK`, one per image disk. */
static void restore_run(struct run *out, const char *img, const char *name, bool piped, size_t cut,
                        const struct asr_restore_options *o)
{
    *out = (struct run){0};
    struct asr_reader *r = open_image(img);
    out->disks = asr_reader_disk_count(r);
    cr_assert_leq(out->disks, 4);
    for (uint32_t d = 0; d < out->disks; d++) {
        char n[64];
        snprintf(n, sizeof n, "%s-%u", name, d);
        out->target[d] = garbage_target(n, asr_reader_disk(r, d)->size_bytes);
    }
    asr_reader_free(r);
    restore_onto(out, img, piped, cut, o);
}

static void same_targets(const struct run *a, const struct run *b, const char *what)
{
    cr_assert_eq(a->disks, b->disks);
    for (uint32_t d = 0; d < a->disks; d++) {
        size_t na, nb;
        uint8_t *x = read_file(a->target[d], &na), *y = read_file(b->target[d], &nb);
        cr_assert_eq(na, nb);
        size_t i = 0;
        while (i < na && x[i] == y[i])
            i++;
        cr_assert_eq(i, na, "%s: disk %u differs at byte %zu (0x%02x from the file, 0x%02x from the pipe)", what, d,
                     i, x[i], y[i]);
        free(x), free(y);
    }
}

/* Restores img from the file and through a pipe (with 1 and with 4 threads): the same bytes. */
static void same_both_ways(const char *img, const char *what)
{
    struct run file, pipe1, pipe4;
    restore_run(&file, img, "file", false, 0, &(struct asr_restore_options){.threads = 2});
    cr_assert_eq(file.rc, ASR_OK, "%s from the file: %s", what, file.err.msg);
    restore_run(&pipe1, img, "pipe1", true, 0, &(struct asr_restore_options){.threads = 1});
    cr_assert_eq(pipe1.rc, ASR_OK, "%s from a pipe: %s", what, pipe1.err.msg);
    restore_run(&pipe4, img, "pipe4", true, 0, &(struct asr_restore_options){.threads = 4});
    cr_assert_eq(pipe4.rc, ASR_OK, "%s from a pipe, 4 threads: %s", what, pipe4.err.msg);
    same_targets(&file, &pipe1, what);
    same_targets(&file, &pipe4, what);
    for (uint32_t d = 0; d < file.disks; d++)
        cr_assert(file.state[d] == ASR_TARGET_RESTORED && pipe1.state[d] == ASR_TARGET_RESTORED);
    cr_assert_eq(file.st.data_bytes, pipe1.st.data_bytes);
    cr_assert_eq(file.st.unreadable_count, pipe1.st.unreadable_count);
    run_free(&file), run_free(&pipe1), run_free(&pipe4);
}

/* The image source gives one layout whichever way the image comes; a stream, which passes once,
 * is refused for a comparison (that reads the image at will) before any target is opened. */
Test(restore, one_image_source_from_a_file_or_a_pipe_and_no_comparison_with_a_pipe)
{
    struct fixture fx;
    fixture_make(&fx, false);
    struct asr_image *file, *piped;
    struct asr_error err = {0};
    cr_assert_eq(asr_image_open(fx.img, &file, &err), ASR_OK, "%s", err.msg);
    signal(SIGPIPE, SIG_IGN); /* the feeder sees EPIPE once the pipe is closed unread */
    size_t len;
    uint8_t *bytes = image_bytes(fx.img, &len);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct feeder f = {fds[1], bytes, len};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, feed, &f), 0);
    cr_assert_eq(asr_image_open_stream(fds[0], "pipe", &piped, &err), ASR_OK, "%s", err.msg);
    cr_assert(!asr_image_is_stream(file) && asr_image_is_stream(piped));
    cr_assert_eq(asr_image_info(file)->hash_seed, asr_image_info(piped)->hash_seed);
    cr_assert_eq(asr_image_disk_count(file), 2);
    cr_assert_eq(asr_image_disk_count(piped), 2);
    for (uint32_t d = 0; d < 2; d++)
        cr_assert_eq(asr_image_disk(file, d)->size_bytes, asr_image_disk(piped, d)->size_bytes);
    cr_assert_eq(asr_image_volume_count(file), asr_image_volume_count(piped));
    for (uint32_t v = 0; v < asr_image_volume_count(file); v++) {
        cr_assert_eq(asr_image_volume(file, v)->disk_offset, asr_image_volume(piped, v)->disk_offset);
        cr_assert_not_null(asr_image_volume_stats(file, v));
        cr_assert_null(asr_image_volume_stats(piped, v), "a stream's totals come at its end");
    }
    struct asr_restore *rs = NULL;
    cr_assert_eq(asr_restore_open_image(piped, fx.t, 2, true, &rs, &err), ASR_E_ARG);
    cr_assert_null(rs);
    cr_assert_eq(asr_restore_open_image(file, fx.t, 2, true, &rs, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_restore_compare(rs, &(struct asr_compare_options){0}, &err), ASR_E_CORRUPT,
                 "garbage targets compared as the image");
    asr_restore_free(rs);
    asr_image_free(piped);
    asr_image_free(file);
    close(fds[0]);
    pthread_join(th, NULL);
    free(bytes);
    fixture_free(&fx);
}

Test(restore, every_sample_image_the_same_from_a_pipe)
{
    static const struct sample_opts variants[] = {
        {.level = 3, .max_chunk = 65536, .volume_kib = 512},
        {.level = 0},
        {.level = 1, .max_chunk = 4096, .volume_kib = 256},
        {.level = 0, .volume_kib = 256, .split_size = ASR_MIN_SPLIT_SIZE},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char name[32], what[64];
        snprintf(name, sizeof name, "v%zu.asrimg", i);
        snprintf(what, sizeof what, "sample image %zu", i);
        char *img = scratch_path(name);
        struct asr_error err = {0};
        cr_assert_eq(write_sample_image(img, &variants[i], &err), ASR_OK, "%s", err.msg);
        same_both_ways(img, what);
        free(img);
    }
}

Test(restore, golden_images_the_same_from_a_pipe)
{
    static const char *const names[] = {"v1-basic.asrimg", "v1-split.asrimg"};
    for (size_t i = 0; i < 2; i++) {
        char *img = golden_image(names[i]);
        same_both_ways(img, names[i]);
        free(img);
    }
}

/* Every captured byte of the dedup image where it belongs on r's targets. */
static void check_dedup_targets(const struct run *r, const char *img, int gap)
{
    struct asr_reader *rd = open_image(img);
    for (uint32_t d = 0; d < r->disks; d++) {
        size_t len;
        uint8_t *got = read_file(r->target[d], &len);
        for (uint32_t v = 0; v < asr_reader_volume_count(rd); v++) {
            const struct asr_volume_desc *vd = asr_reader_volume(rd, v);
            for (uint64_t off = 0; vd->disk_index == d && off < vd->size_bytes; off++) {
                int captured;
                uint8_t want = dedup_expected(v, off, gap, &captured);
                if (captured && got[vd->disk_offset + off] != want)
                    cr_assert_fail("volume %u offset %llu: got 0x%02x, want 0x%02x", v, (unsigned long long)off,
                                   got[vd->disk_offset + off], want);
            }
        }
        free(got);
    }
    asr_reader_free(rd);
}

/* Issue 12: a chunk laid at many places, and used again after the next chunk, failed from a pipe
 * as "damaged" (the read-back added up its placements and wanted exactly the extent's length). */
Test(restore, dedup_of_repeated_blocks_the_same_from_a_pipe)
{
    char *img = scratch_path("dedup.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_dedup_image(img, 0, &err), ASR_OK, "%s", err.msg);
    struct run file;
    restore_run(&file, img, "dfile", false, 0, &(struct asr_restore_options){0});
    cr_assert_eq(file.rc, ASR_OK, "%s", file.err.msg);
    check_dedup_targets(&file, img, 0);
    run_free(&file);
    same_both_ways(img, "the dedup image");
    free(img);
}

/* Chunks the image's extents use, each counted once. */
static uint64_t distinct_chunks(const char *img)
{
    struct asr_reader *r = open_image(img);
    uint64_t chunks = asr_reader_info(r)->chunk_count, n = 0;
    bool *seen = calloc(chunks ? chunks : 1, sizeof *seen);
    cr_assert_not_null(seen);
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        uint64_t count;
        const struct asr_extent *e = asr_reader_extents(r, v, &count);
        for (uint64_t i = 0; i < count; i++)
            if (e[i].ref < chunks && !seen[e[i].ref])
                seen[e[i].ref] = true, n++;
    }
    free(seen);
    asr_reader_free(r);
    return n;
}

/* A chunk used again after other chunks (a file stored twice; a patched region's runs alternating
 * between its base and its patch) is decoded once, kept for its later runs: with 1 and 3 workers,
 * every byte right, and the same from a pipe. */
Test(restore, a_chunk_used_again_later_is_decoded_once)
{
    for (int gap = 0; gap <= 2; gap++) {
        char name[32];
        snprintf(name, sizeof name, "dedup%d.asrimg", gap);
        char *img = scratch_path(name);
        struct asr_error err = {0};
        cr_assert_eq(write_dedup_image(img, gap, &err), ASR_OK, "%s", err.msg);
        uint64_t distinct = distinct_chunks(img);
        for (unsigned threads = 1; threads <= 3; threads += 2) {
            struct run a;
            restore_run(&a, img, "k", false, 0, &(struct asr_restore_options){.threads = threads});
            cr_assert_eq(a.rc, ASR_OK, "%s", a.err.msg);
            check_dedup_targets(&a, img, gap);
            cr_assert_eq(a.st.chunks_decoded, distinct, "gap %d: %llu decodes of %llu chunks", gap,
                         (unsigned long long)a.st.chunks_decoded, (unsigned long long)distinct);
            run_free(&a);
        }
        if (gap != 1) /* gap 1 leaves bytes a pipe cannot go back for (the test after this one) */
            same_both_ways(img, "chunks used again later");
        free(img);
    }
}

/* The plan under budgets from none to all: run by run, a kept run finds its chunk in its place
 * (copied there after its decode's last run, freed after its last kept run), a place is filled
 * only when free, the places hold at most the budget and one chunk more; no budget decodes more
 * than none, and one for everything decodes each chunk once. */
static uint64_t check_plan(struct asr_reader *r, uint64_t budget)
{
    struct restore_plan pl;
    struct asr_error err = {0};
    cr_assert_eq(restore_plan_make(r, budget, &pl, &err), ASR_OK, "%s", err.msg);
    uint64_t *holds = malloc((pl.places ? pl.places : 1) * sizeof *holds), held = 0, decodes = 0;
    cr_assert_not_null(holds);
    for (uint32_t k = 0; k < pl.places; k++)
        holds[k] = UINT64_MAX;
    for (size_t i = 0; i < pl.nunits; i++) {
        const struct plan_unit *u = &pl.units[i];
        if (u->ref >= ASR_REF_UNREADABLE)
            continue;
        if (u->kept != PLAN_NOT_KEPT) {
            cr_assert_lt(u->kept, pl.places);
            cr_assert_eq(holds[u->kept], u->ref, "run %zu: place %u holds chunk %llu, not %llu", i, u->kept,
                         (unsigned long long)holds[u->kept], (unsigned long long)u->ref);
            if (!u->keep_after)
                held -= asr_reader_chunk_len(r, u->ref), holds[u->kept] = UINT64_MAX;
            continue;
        }
        cr_assert_lt(u->seq, pl.nseq);
        cr_assert_eq(pl.units[pl.seq_unit[u->seq]].ref, u->ref, "run %zu: decode %zu is another chunk's", i, u->seq);
        cr_assert_leq(pl.seq_unit[u->seq], i);
        cr_assert_leq(u->seq, decodes, "run %zu takes a decode not made yet", i);
        decodes += pl.seq_unit[u->seq] == i;
        uint32_t k = pl.keep_to[u->seq];
        if (pl.last_use[u->seq] == i && k != PLAN_NOT_KEPT) {
            cr_assert_lt(k, pl.places);
            cr_assert_eq(holds[k], UINT64_MAX, "run %zu: place %u still holds chunk %llu", i, k,
                         (unsigned long long)holds[k]);
            holds[k] = u->ref;
            held += asr_reader_chunk_len(r, u->ref);
            cr_assert_leq(held, budget + asr_reader_info(r)->max_chunk_size, "run %zu: %llu bytes kept", i,
                          (unsigned long long)held);
        }
    }
    cr_assert_eq(decodes, pl.nseq);
    free(holds);
    restore_plan_free(&pl);
    return decodes;
}

Test(restore, plans_keep_chunks_where_they_lay_them_within_the_budget)
{
    for (int gap = 0; gap <= 2; gap++) {
        char *img = scratch_path("plan.asrimg");
        struct asr_error err = {0};
        cr_assert_eq(write_dedup_image(img, gap, &err), ASR_OK, "%s", err.msg);
        struct asr_reader *r = open_image(img);
        const uint64_t budgets[] = {0, 4096, 8192, 12288, 20000, 40000, 64ull << 20};
        uint64_t none = 0, decodes = 0;
        for (size_t b = 0; b < sizeof budgets / sizeof *budgets; b++) {
            decodes = check_plan(r, budgets[b]);
            if (!b)
                none = decodes;
            cr_assert_leq(decodes, none, "gap %d: budget %llu decodes %llu, none %llu", gap,
                          (unsigned long long)budgets[b], (unsigned long long)decodes, (unsigned long long)none);
        }
        cr_assert_lt(decodes, none, "gap %d: keeping saves decodes", gap);
        cr_assert_eq(decodes, distinct_chunks(img), "gap %d: a budget for all decodes each chunk once", gap);
        asr_reader_free(r);
        free(img);
    }
}

/* Every data extent of the image's disk 0 on the target path: the bytes of its chunk. */
static void check_extents(const char *img, const char *path)
{
    struct asr_reader *r = open_image(img);
    struct asr_chunk_reader *cr;
    struct asr_error err = {0};
    cr_assert_eq(asr_chunk_reader_new(r, &cr, &err), ASR_OK, "%s", err.msg);
    uint32_t cap = asr_reader_info(r)->max_chunk_size;
    uint8_t *chunk = malloc(cap);
    size_t len;
    uint8_t *got = read_file(path, &len);
    cr_assert(chunk && got);
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
        uint64_t n;
        const struct asr_extent *e = asr_reader_extents(r, v, &n);
        for (uint64_t k = 0; vd->disk_index == 0 && k < n; k++) {
            if (e[k].ref >= ASR_REF_UNREADABLE)
                continue;
            cr_assert_eq(asr_chunk_reader_read(cr, e[k].ref, chunk, cap, NULL, &err), ASR_OK, "%s", err.msg);
            cr_assert_leq(vd->disk_offset + e[k].offset + e[k].length, len);
            cr_assert(!memcmp(got + vd->disk_offset + e[k].offset, chunk + e[k].chunk_offset, e[k].length),
                      "volume %u extent at %llu", v, (unsigned long long)e[k].offset);
        }
    }
    free(got);
    free(chunk);
    asr_chunk_reader_free(cr);
    asr_reader_free(r);
}

/* The same checks on chunks used again at random distances, under budgets of a few chunks: the
 * plan gives kept chunks up and fills their places again (a place given up before it was filled
 * is free only once the chunk before it was freed). */
Test(restore, plans_of_random_reuse_keep_chunks_where_they_lay_them)
{
    char *img = scratch_path("reuse.asrimg");
    for (unsigned seed = 1; seed <= 40; seed++) {
        struct asr_error err = {0};
        cr_assert_eq(write_random_reuse_image(img, seed, &err), ASR_OK, "%s", err.msg);
        struct asr_reader *r = open_image(img);
        uint64_t none = check_plan(r, 0);
        for (uint64_t budget = 8192; budget <= 131072; budget += 8192)
            cr_assert_leq(check_plan(r, budget), none, "seed %u budget %llu", seed, (unsigned long long)budget);
        cr_assert_eq(check_plan(r, 64ull << 20), distinct_chunks(img), "seed %u", seed);
        asr_reader_free(r);
    }
    struct run a;
    restore_run(&a, img, "reuse", false, 0, &(struct asr_restore_options){.threads = 2});
    cr_assert_eq(a.rc, ASR_OK, "%s", a.err.msg);
    cr_assert_eq(a.st.chunks_decoded, distinct_chunks(img));
    check_extents(img, a.target[0]);
    run_free(&a);
    free(img);
}

/* Bytes of a chunk that no extent laid while the pipe carried it: refused as what it is (not as
 * damage), and the file restores. */
Test(restore, bytes_a_pipe_cannot_go_back_for_are_named)
{
    char *img = scratch_path("gap.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_dedup_image(img, 1, &err), ASR_OK, "%s", err.msg);
    struct run file, piped;
    restore_run(&file, img, "gfile", false, 0, &(struct asr_restore_options){0});
    cr_assert_eq(file.rc, ASR_OK, "%s", file.err.msg);
    check_dedup_targets(&file, img, 1);
    restore_run(&piped, img, "gpipe", true, 0, &(struct asr_restore_options){.keep_going = true});
    cr_assert_eq(piped.rc, ASR_E_UNSUPPORTED, "%s", piped.err.msg);
    cr_assert(strstr(piped.err.msg, "volume 2 offset 140000 uses bytes 1000 to 4000 of chunk 6") &&
                  strstr(piped.err.msg, "restore from the image file") && !strstr(piped.err.msg, "damaged"),
              "%s", piped.err.msg);
    run_free(&file), run_free(&piped);
    free(img);
}

/* A damaged chunk used again after later chunks: from a pipe, --keep-going lists and zeroes the
 * same ranges as from the file (the read-back knows it was damaged, not never laid). */
Test(restore, a_damaged_chunk_used_again_from_a_pipe)
{
    char *img = sample();
    struct asr_reader *r = open_image(img);
    uint64_t n;
    const struct asr_extent *e = asr_reader_extents(r, 1, &n);
    uint64_t reused = e[0].ref; /* volume 1's first chunk: its second quarter repeats the first */
    asr_reader_free(r);
    damage_chunk(img, reused);
    struct run file, piped;
    restore_run(&file, img, "kfile", false, 0, &(struct asr_restore_options){.keep_going = true});
    cr_assert_eq(file.rc, ASR_OK, "%s", file.err.msg);
    cr_assert_geq(file.st.damaged_count, 2, "the chunk is used in two places");
    restore_run(&piped, img, "kpipe", true, 0, &(struct asr_restore_options){.keep_going = true});
    cr_assert_eq(piped.rc, ASR_OK, "%s", piped.err.msg);
    same_targets(&file, &piped, "a damaged chunk, --keep-going");
    cr_assert_eq(piped.st.damaged_count, file.st.damaged_count);
    for (size_t i = 0; i < file.st.damaged_count; i++) {
        const struct asr_restore_range *a = &file.st.damaged[i], *b = &piped.st.damaged[i];
        cr_assert(a->volume == b->volume && a->offset == b->offset && a->length == b->length && a->chunk == b->chunk,
                  "damaged range %zu: volume %u offset %llu length %llu from the file, volume %u offset %llu length "
                  "%llu from the pipe",
                  i, a->volume, (unsigned long long)a->offset, (unsigned long long)a->length, b->volume,
                  (unsigned long long)b->offset, (unsigned long long)b->length);
    }
    run_free(&file), run_free(&piped);
    restore_run(&piped, img, "spipe", true, 0, &(struct asr_restore_options){0});
    cr_assert_eq(piped.rc, ASR_E_CORRUPT);
    cr_assert(strstr(piped.err.msg, "--keep-going"), "%s", piped.err.msg);
    run_free(&piped);
    free(img);
}

/* ---- what a failure leaves ---------------------------------------------------------------- */

static bool all_garbage(const char *path)
{
    size_t len;
    uint8_t *b = read_file(path, &len);
    size_t i = 0;
    while (i < len && b[i] == garbage(i))
        i++;
    free(b);
    return i == len;
}

/* A stream cut in its last chunk: the targets are partly written (with one thread, the laying
 * trails the reading by a few chunks at most: it reached disk 1); the same restore again with
 * the whole stream gives what the file gives. */
Test(restore, a_cut_stream_says_what_each_target_holds)
{
    char *img = sample();
    struct asr_reader *r = open_image(img);
    uint64_t last = asr_reader_info(r)->chunk_count - 1;
    asr_reader_free(r);
    struct run file, piped;
    restore_run(&file, img, "cfile", false, 0, &(struct asr_restore_options){0});
    cr_assert_eq(file.rc, ASR_OK, "%s", file.err.msg);
    restore_run(&piped, img, "cpipe", true, chunk_middle(img, last), &(struct asr_restore_options){.threads = 1});
    cr_assert_eq(piped.rc, ASR_E_INCOMPLETE, "%s", piped.err.msg);
    cr_assert(strstr(piped.err.msg, "before its footer"), "%s", piped.err.msg);
    cr_assert(piped.state[0] == ASR_TARGET_PARTIAL && piped.state[1] == ASR_TARGET_PARTIAL, "states %u %u",
              piped.state[0], piped.state[1]);
    cr_assert(!all_garbage(piped.target[0]) && !all_garbage(piped.target[1]), "both were written to");
    restore_onto(&piped, img, true, 0, &(struct asr_restore_options){0});
    cr_assert_eq(piped.rc, ASR_OK, "%s", piped.err.msg);
    cr_assert(piped.state[0] == ASR_TARGET_RESTORED && piped.state[1] == ASR_TARGET_RESTORED);
    same_targets(&file, &piped, "a cut stream, then the whole one");
    run_free(&file), run_free(&piped);
    free(img);
}

/* A damaged chunk stops a restore from the file: the targets it wrote are partly written, one
 * it never reached untouched; a damaged first chunk stops it before anything is written. */
Test(restore, a_damaged_chunk_says_what_each_target_holds)
{
    char *img = sample();
    struct asr_reader *r = open_image(img);
    uint64_t n;
    uint64_t later = asr_reader_extents(r, 1, &n)[0].ref; /* after volume 0's chunks */
    asr_reader_free(r);
    char *copy = scratch_path("first.asrimg");
    copy_file(img, copy);
    damage_chunk(img, later);
    damage_chunk(copy, 0);
    struct run run;
    restore_run(&run, img, "dlater", false, 0, &(struct asr_restore_options){0});
    cr_assert_eq(run.rc, ASR_E_CORRUPT, "%s", run.err.msg);
    cr_assert_eq(run.state[0], ASR_TARGET_PARTIAL);
    cr_assert_eq(run.state[1], ASR_TARGET_UNTOUCHED);
    cr_assert(all_garbage(run.target[1]));
    run_free(&run);
    restore_run(&run, copy, "dfirst", false, 0, &(struct asr_restore_options){0});
    cr_assert_eq(run.rc, ASR_E_CORRUPT, "%s", run.err.msg);
    cr_assert(run.state[0] == ASR_TARGET_UNTOUCHED && run.state[1] == ASR_TARGET_UNTOUCHED);
    cr_assert(all_garbage(run.target[0]) && all_garbage(run.target[1]), "nothing was written");
    run_free(&run);
    free(img), free(copy);
}
