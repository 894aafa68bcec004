/* The backup pipeline end to end on real filesystems: disks made with sfdisk, mkfs.vfat and
 * mkfs.ext4 -d, backed up through asr_backup_run, then verified and read back through the format
 * reader and compared byte for byte with the source over every captured range. Also the
 * chunker's shift resistance and the dedup requirement (three copies of a 300 MiB
 * incompressible file at unaligned positions cost at most 1.1x one copy). And --freeze's
 * signal handlers, the engine's only while it freezes. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asr_engine.h"
#include "cdc.h"
#include "dedup.h"
#include "fsfix.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(backup, .fini = teardown, .timeout = 300);

struct run {
    struct asr_disk *disk;
    struct asr_volume_info *vols;
    size_t count;
    struct asr_backup_stats st;
};

/* Backs up disk_path's volumes (selection) into image with the given options. */
static void backup(const char *disk_path, const char *selection, const char *image, struct asr_backup_options opt,
                   struct run *r)
{
    struct asr_error err = {0};
    cr_assert_eq(asr_disk_open(disk_path, &r->disk, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_disk_analyze(r->disk, 0, &r->vols, &r->count, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_select_volumes(r->vols, r->count, selection, &err), ASR_OK, "%s", err.msg);
    struct asr_writer_options wo = {.max_chunk_size = asr_backup_max_chunk(opt.avg_chunk)};
    struct asr_writer *w;
    cr_assert_eq(asr_writer_create(image, &wo, &w, &err), ASR_OK, "%s", err.msg);
    struct asr_backup_source src = {r->disk, r->vols, r->count};
    cr_assert_eq(asr_backup_run(w, &src, 1, &opt, &r->st, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
}

static void run_free(struct run *r)
{
    asr_volume_infos_free(r->vols, r->count);
    asr_disk_close(r->disk);
}

/* verify passes, and every captured byte of every volume reads back equal to the source. */
static void check_image(const char *image, const struct run *r)
{
    struct asr_verify_report rep;
    struct asr_error err = {0};
    cr_assert_eq(asr_verify(image, NULL, NULL, NULL, NULL, &rep, &err), ASR_OK, "verify: %s", err.msg);
    struct asr_reader *rd;
    cr_assert_eq(asr_reader_open(image, &rd, &err), ASR_OK, "%s", err.msg);
    int fd = asr_disk_fd(r->disk);
    size_t cap = 1 << 20;
    uint8_t *a = malloc(cap), *b = malloc(cap);
    uint32_t vid = 0;
    uint64_t compared = 0;
    for (size_t i = 0; i < r->count; i++) {
        const struct asr_volume_info *v = &r->vols[i];
        if (v->capture == ASR_CAPTURE_SKIP)
            continue;
        cr_assert_lt(vid, asr_reader_volume_count(rd));
        struct asr_range whole = {0, v->size_bytes};
        const struct asr_range *rg = v->capture == ASR_CAPTURE_FULL ? &whole : v->map.used.v;
        size_t n = v->capture == ASR_CAPTURE_FULL ? 1 : v->map.used.n;
        for (size_t k = 0; k < n; k++)
            for (uint64_t off = rg[k].offset; off < rg[k].offset + rg[k].length;) {
                size_t len = (size_t)(rg[k].offset + rg[k].length - off < cap ? rg[k].offset + rg[k].length - off : cap);
                cr_assert_eq(pread(fd, a, len, (off_t)(v->start_bytes + off)), (ssize_t)len);
                cr_assert_eq(asr_reader_read_volume(rd, vid, off, b, len, &err), ASR_OK, "volume %u at %llu: %s", vid,
                             (unsigned long long)off, err.msg);
                cr_assert(memcmp(a, b, len) == 0, "volume %u differs at %llu", vid, (unsigned long long)off);
                off += len;
                compared += len;
            }
        vid++;
    }
    cr_assert_eq(vid, asr_reader_volume_count(rd));
    cr_assert_eq(compared, r->st.read_bytes, "every byte read was compared");
    free(a);
    free(b);
    asr_reader_free(rd);
}

static off_t file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_size;
}

/* A GPT disk: a FAT32 EFI System partition with files, an ext4 root with a tree, a swap area,
 * and an unformatted partition holding a little data among zeros (captured whole). */
static char *make_disk(void)
{
    char *img = scratch_path("disk.img");
    const char *d = scratch_dir();
    cr_assert_eq(fsfix_sh("set -e; cd %1$s; mkdir -p root/etc root/many esp;"
                          "cp /etc/os-release root/etc/; cp -r /usr/share/doc/e2fsprogs root/doc 2>/dev/null || true;"
                          "for i in $(seq 1 300); do head -c $(( (i * 7919) %% 20000 )) /dev/urandom > root/many/f$i; done;"
                          "python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(1).randbytes(16 << 20))' > root/big.bin;"
                          "cp root/big.bin root/big-copy.bin;"
                          "head -c 300000 /dev/urandom > esp/BOOTX64.EFI;"
                          "truncate -s 200M %2$s;"
                          "sfdisk --quiet %2$s <<'EOF'\nlabel: gpt\nstart=2048, size=40MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
                          "size=100MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nsize=16MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n"
                          "size=20MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nEOF\n"
                          "mkfs.vfat -F 32 --offset 2048 %2$s $((40 * 1024)) >/dev/null;"
                          "MTOOLS_SKIP_CHECK=1 mcopy -i %2$s@@1M esp/BOOTX64.EFI ::/;"
                          "mkfs.ext4 -q -F -b 4096 -d root -E offset=$((83968 * 512)) %2$s 100M;"
                          "dd if=/dev/zero of=sw bs=1M count=16 status=none; mkswap -q -L swp sw;"
                          "dd if=sw of=%2$s bs=1M seek=$((83968 / 2048 + 100)) conv=notrunc status=none;"
                          "head -c 100000 /dev/urandom | dd of=%2$s bs=1 seek=$(( (83968 + 2 * 116 * 1024) * 512 + 5000000 )) conv=notrunc status=none",
                          d, img),
                 0);
    return img;
}

Test(backup, every_volume_reads_back_equal)
{
    fsfix_need("mkfs.ext4");
    fsfix_need("mkfs.vfat");
    fsfix_need("mkswap");
    fsfix_need("mcopy");
    char *disk = make_disk(), *image = scratch_path("b.asrimg");
    struct run r;
    backup(disk, "all", image, (struct asr_backup_options){.level = 3, .threads = 2}, &r);
    cr_assert_eq(r.count, 4);
    cr_assert_eq(r.vols[0].capture, ASR_CAPTURE_USED);
    cr_assert_eq(r.vols[2].capture, ASR_CAPTURE_HEADER, "swap: %s", r.vols[2].map.fs_type);
    cr_assert_eq(r.vols[3].capture, ASR_CAPTURE_FULL);
    check_image(image, &r);
    /* The 16 MiB copy (fixed pseudo-random bytes, so that this figure is the same on every run:
     * where the cuts fall depends on the data; with fresh random bytes it came out at 12.6 MiB
     * once) deduplicates but for the chunks where it starts and ends, until the cuts
     * fall in step (at most a few chunks of up to 1 MiB; 4 KiB blocks keep ext4's group
     * metadata out of the file, which would cost a resync each); the unformatted partition's
     * zeros are not stored. */
    cr_assert_geq(r.st.dedup_bytes, 13u << 20, "dedup %llu", (unsigned long long)r.st.dedup_bytes);
    cr_assert_geq(r.st.zero_bytes, 19u << 20, "zero %llu", (unsigned long long)r.st.zero_bytes);
    cr_assert_eq(r.st.read_bytes, r.st.new_bytes + r.st.dedup_bytes + r.st.zero_bytes);
    run_free(&r);
    free(disk);
    free(image);
}

Test(backup, stored_level0_one_thread_and_small_chunks)
{
    fsfix_need("mkfs.ext4");
    fsfix_need("mkfs.vfat");
    fsfix_need("mkswap");
    fsfix_need("mcopy");
    char *disk = make_disk(), *image = scratch_path("b0.asrimg");
    struct run r;
    backup(disk, "all", image, (struct asr_backup_options){.level = 0, .threads = 1, .avg_chunk = 4096}, &r);
    check_image(image, &r);
    run_free(&r);
    free(disk);
    free(image);
}

/* The pipeline with workers scanning every read ahead (scan_from 1) and with none (the chunker
 * rolling every byte): the same chunks, so the same image contents, and it reads back equal. */
Test(backup, scans_ahead_cut_like_rolling_end_to_end)
{
    fsfix_need("mkfs.ext4");
    fsfix_need("mkfs.vfat");
    fsfix_need("mkswap");
    fsfix_need("mcopy");
    char *disk = make_disk(), *scanned = scratch_path("scanned.asrimg"), *rolled = scratch_path("rolled.asrimg");
    struct run rs, rr;
    for (uint32_t avg = 16u << 10; avg <= (256u << 10); avg *= 16) {
        unlink(scanned);
        unlink(rolled);
        backup(disk, "all", scanned, (struct asr_backup_options){.level = 0, .avg_chunk = avg, .scan_from = 1}, &rs);
        backup(disk, "all", rolled, (struct asr_backup_options){.level = 0, .avg_chunk = avg, .scan_from = 8}, &rr);
        cr_assert_gt(rs.st.scans, 0, "avg %u: no read was scanned ahead", avg);
        cr_assert_eq(rr.st.scans, 0);
        cr_assert_eq(rs.st.chunks, rr.st.chunks, "avg %u: %llu chunks scanned, %llu rolled", avg,
                     (unsigned long long)rs.st.chunks, (unsigned long long)rr.st.chunks);
        cr_assert_eq(rs.st.stored_bytes, rr.st.stored_bytes);
        cr_assert_eq(rs.st.dedup_bytes, rr.st.dedup_bytes);
        cr_assert_eq(rs.st.dedup_hits, rr.st.dedup_hits);
        cr_log_info("avg %u: %llu chunks, %llu reads scanned ahead", avg, (unsigned long long)rs.st.chunks,
                    (unsigned long long)rs.st.scans);
        check_image(scanned, &rs);
        run_free(&rs);
        run_free(&rr);
    }
    free(disk);
    free(scanned);
    free(rolled);
}

/* Cuts do not depend on how the stream arrives: fed a few bytes at a time (the chunker's
 * byte-at-a-time tail) or in large pieces (its unrolled two-bytes-a-step loop), the same
 * content cuts at the same places. */
Test(backup, chunking_ignores_piece_sizes)
{
    size_t n = 4u << 20;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern_byte(11, i / 5) ^ (uint8_t)(i * 2654435761u >> 11);
    uint64_t cuts[2][256];
    size_t nc[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        struct cdc c;
        cdc_init(&c, 16u << 10, 64u << 10);
        size_t pos = 0, step = 0;
        while (pos < n) {
            size_t want = pass ? 1 + (step++ * 7) % 13 : 1u << 20;
            bool cut;
            pos += cdc_feed(&c, buf + pos, n - pos < want ? n - pos : want, &cut);
            if (cut && nc[pass] < 256)
                cuts[pass][nc[pass]++] = pos;
        }
    }
    cr_assert_gt(nc[0], 50, "%zu chunks in 4 MiB", nc[0]);
    cr_assert_eq(nc[0], nc[1], "%zu cuts fed whole, %zu fed in small pieces", nc[0], nc[1]);
    for (size_t i = 0; i < nc[0]; i++)
        cr_assert_eq(cuts[0][i], cuts[1][i], "cut %zu: at %llu fed whole, %llu fed in small pieces", i,
                     (unsigned long long)cuts[0][i], (unsigned long long)cuts[1][i]);
    free(buf);
}

/* Feeds p[0..len) (at `at` in a scanned read) to a rolling chunker and a marked one and checks
 * that they agree call by call: the bytes taken, the cut and the whole state. Counts cuts. */
static void feed_both(struct cdc *rolled, struct cdc *marked, const uint8_t *p, size_t len,
                      const struct cdc_marks *m, size_t at, size_t *cuts)
{
    while (len) {
        bool cut_r, cut_m;
        size_t take_r = cdc_feed(rolled, p, len, &cut_r);
        size_t take_m = cdc_feed_marked(marked, p, len, m, at, &cut_m);
        cr_assert_eq(take_m, take_r, "at %zu: marked took %zu, rolled %zu", at, take_m, take_r);
        cr_assert_eq(cut_m, cut_r, "at %zu: cut differs", at);
        cr_assert(marked->len == rolled->len && marked->fp == rolled->fp, "at %zu: state differs", at);
        *cuts += cut_r;
        p += take_r;
        at += take_r;
        len -= take_r;
    }
}

/* Cut candidates found ahead (cdc_scan, as the workers do for each read) give the very cuts
 * of rolling every byte, whatever the pieces, the holes between them, the resets (zero runs)
 * and the scan's cap on candidates (hit on repetitive data). */
Test(backup, scanned_marks_cut_like_rolling)
{
    size_t n = 24u << 20;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern_byte(5, i / 7) ^ (uint8_t)(i * 2654435761u >> 9);
    memset(buf + (2u << 20), 0x55, 1u << 20);
    for (size_t i = 5u << 20; i < (5u << 20) + 300000; i++)
        buf[i] = (uint8_t)(i % 3);
    memset(buf + (8u << 20), 0, 512u << 10);
    static const struct {
        uint32_t avg;
        size_t cap;
    } configs[] = {{4u << 10, 64}, {16u << 10, 4096}, {256u << 10, 4096}, {256u << 10, 1}, {64u << 10, 0}};
    struct cdc_marks m = {.v = malloc(4096 * sizeof *m.v)};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        struct cdc rolled, marked;
        cdc_init(&rolled, configs[c].avg, 4 * configs[c].avg);
        cdc_init(&marked, configs[c].avg, 4 * configs[c].avg);
        m.cap = configs[c].cap;
        uint64_t rng = 0x9E3779B97F4A7C15ull * (c + 1);
        size_t pos = 0, cuts = 0, listed = 0;
        while (pos < n) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t read = 1 + (size_t)(rng >> 33) % (1u << 20);
            read = read < n - pos ? read : n - pos;
            cdc_scan(&marked, buf + pos, read, &m);
            listed += m.n;
            for (size_t at = 0; at < read;) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                size_t piece = 1 + (size_t)(rng >> 40) % 300000;
                piece = piece < read - at ? piece : read - at;
                if ((rng >> 20) % 4 == 0) { /* a hole read through: not part of the stream */
                    at += piece % 5000;
                    continue;
                }
                if ((rng >> 24) % 16 == 0) { /* a zero run ended the chunk */
                    cdc_reset(&rolled);
                    cdc_reset(&marked);
                }
                feed_both(&rolled, &marked, buf + pos + at, piece, &m, at, &cuts);
                at += piece;
            }
            pos += read;
        }
        cr_assert_gt(cuts, 20, "avg %u: %zu cuts", configs[c].avg, cuts);
        cr_assert(configs[c].cap < 4096 || listed > cuts, "avg %u: %zu candidates listed", configs[c].avg, listed);
    }
    free(m.v);
    free(buf);
}

/* The scan (four hash chains over a read's quarters) lists exactly the bytes the definition says
 * pass the easy test, one chain byte by byte, at every read size around the lanes' edges, and
 * when its cap stops it, a listing that is complete up to where it says. */
Test(backup, scan_lists_what_the_definition_says)
{
    size_t max_n = (1u << 20) + 13;
    uint8_t *buf = malloc(max_n);
    for (size_t i = 0; i < max_n; i++)
        buf[i] = pattern_byte(3, i / 2) ^ (uint8_t)(i * 2654435761u >> 5);
    memset(buf + 300000, 0x33, 70000); /* a candidate at every byte, or at none */
    struct cdc c;
    cdc_init(&c, 4u << 10, 16u << 10);
    struct cdc_mark *ref = malloc(max_n * sizeof *ref);
    struct cdc_marks m = {.v = malloc(4096 * sizeof *m.v)};
    const size_t sizes[] = {0, 1, 63, 64, 65, 255, 256, 257, 258, 259, 260, 1000, 4099, 65536 + 3, max_n};
    const size_t caps[] = {4096, 1000, 5, 0};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si], nref = 0;
        uint64_t h = 0;
        for (size_t i = 0; i < n; i++) {
            h = (h << 1) + cdc_gear(buf[i]);
            if (i >= 63 && !(h & c.mask_easy))
                ref[nref++] = (struct cdc_mark){(uint32_t)(i + 1), !(h & c.mask_hard)};
        }
        for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
            m.cap = caps[ci];
            cdc_scan(&c, buf, n, &m);
            cr_assert_leq(m.complete_until, n);
            size_t expect = 0;
            while (expect < nref && ref[expect].end <= m.complete_until)
                expect++;
            cr_assert_eq(m.n, expect, "n %zu cap %zu: %zu listed, %zu candidates up to %zu", n, caps[ci], m.n, expect,
                         m.complete_until);
            for (size_t k = 0; k < m.n; k++)
                cr_assert(m.v[k].end == ref[k].end && m.v[k].hard == ref[k].hard, "n %zu cap %zu: mark %zu differs", n,
                          caps[ci], k);
            if (nref <= caps[ci] / 4)
                cr_assert_eq(m.complete_until, n, "n %zu: %zu candidates, cap %zu, not complete", n, nref, caps[ci]);
        }
    }
    free(m.v);
    free(ref);
    free(buf);
}

/* Candidates placed on purpose where the size rules change (the first byte hashed after min, the
 * switch from the hard to the easy test at avg, the forced cut at max): the marked chunker still
 * cuts exactly where rolling does. Random placement almost never lands on these bytes. */
Test(backup, scanned_marks_at_the_size_rules)
{
    size_t n = 4u << 20;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern_byte(9, i / 3) ^ (uint8_t)(i * 2654435761u >> 7);
    struct cdc rolled, marked;
    cdc_init(&rolled, 4u << 10, 16u << 10);
    cdc_init(&marked, 4u << 10, 16u << 10);
    struct cdc_marks m = {.v = malloc(16384 * sizeof *m.v), .cap = 16384};
    cdc_scan(&marked, buf, n, &m);
    cr_assert_eq(m.complete_until, n, "the scan stopped at its cap");
    const size_t places[] = {marked.min + 62, marked.min + 63, marked.min + 64, marked.avg - 1,
                             marked.avg,      marked.max - 1,  marked.max};
    size_t cuts = 0, hard = 0, easy_only = 0;
    for (size_t k = 0; k < m.n && k < 400; k++) {
        size_t byte = m.v[k].end - 1;
        hard += m.v[k].hard;
        easy_only += !m.v[k].hard;
        for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
            if (byte < places[i] || byte - places[i] + 3 * marked.max > n)
                continue;
            size_t start = byte - places[i]; /* the candidate's byte lands at chunk index places[i] */
            cdc_reset(&rolled);
            cdc_reset(&marked);
            for (size_t at = start, step = 0; at < start + 2 * marked.max; step++) {
                size_t piece = step % 3 == 0 ? 70 : 5000 + step * 977 % 9000;
                feed_both(&rolled, &marked, buf + at, piece, &m, at, &cuts);
                at += piece;
            }
        }
    }
    cr_assert_gt(hard, 10, "%zu candidates passing the hard test", hard);
    cr_assert_gt(easy_only, 10, "%zu candidates passing only the easy test", easy_only);
    free(m.v);
    free(buf);
}

/* A chunk boundary depends only on content: data shifted by an odd number of bytes cuts at
 * the same content positions after the first chunk or two. */
Test(backup, chunking_resists_shifts)
{
    size_t n = 16u << 20;
    uint8_t *buf = malloc(n + 4099);
    for (size_t i = 0; i < n + 4099; i++)
        buf[i] = pattern_byte(7, i / 3) ^ (uint8_t)(i * 2654435761u >> 13);
    struct cdc c;
    uint64_t cuts_a[512], cuts_b[512];
    size_t na = 0, nb = 0;
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *p = buf + (pass ? 4099 : 0);
        size_t len = n, pos = 0;
        uint64_t *cuts = pass ? cuts_b : cuts_a;
        size_t *nc = pass ? &nb : &na;
        cdc_init(&c, 64u << 10, 256u << 10);
        while (pos < len) {
            bool cut;
            size_t k = cdc_feed(&c, p + pos, (len - pos) < 100000 ? len - pos : 100000, &cut);
            pos += k;
            if (cut && *nc < 512)
                cuts[(*nc)++] = pos + (pass ? 4099 : 0); /* in the coordinates of buf */
        }
    }
    size_t common = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t k = 0; k < nb; k++)
            if (cuts_a[i] == cuts_b[k])
                common++;
    cr_assert_gt(na, 100, "%zu chunks in 16 MiB", na);
    cr_assert_geq(common + 3, na < nb ? na : nb, "%zu of %zu/%zu cuts shared", common, na, nb);
    free(buf);
}

/* Three copies of a 300 MiB incompressible file at different, unaligned positions: the image is
 * at most 1.1x the image of the same volume holding one copy. */
Test(backup, three_unaligned_copies_cost_one, .timeout = 600)
{
    fsfix_need("mkfs.ext4");
    const char *d = scratch_dir();
    char *one = scratch_path("one.img"), *three = scratch_path("three.img");
    cr_assert_eq(fsfix_sh("set -e; cd %1$s; mkdir -p a b/x b/y b/z;"
                          "head -c 300M /dev/urandom > a/data.bin;"
                          "cp a/data.bin b/x/data.bin; head -c 12345 /dev/urandom > b/x/pad1;"
                          "head -c 777777 /dev/urandom > b/y/pad2; cp a/data.bin b/y/data.bin;"
                          "head -c 5000 /dev/urandom > b/z/pad3; cp a/data.bin b/z/data.bin;"
                          "mkfs.ext4 -q -F -b 1024 -d a %2$s 400M; mkfs.ext4 -q -F -b 1024 -d b %3$s 1100M",
                          d, one, three),
                 0);
    char *img1 = scratch_path("one.asrimg"), *img3 = scratch_path("three.asrimg");
    struct run r1, r3;
    backup(one, "all", img1, (struct asr_backup_options){.level = 1}, &r1);
    backup(three, "all", img3, (struct asr_backup_options){.level = 1}, &r3);
    off_t s1 = file_size(img1), s3 = file_size(img3);
    cr_log_info("one copy: %lld bytes; three copies: %lld bytes (%.3fx); dedup %llu of %llu read", (long long)s1,
                (long long)s3, (double)s3 / (double)s1, (unsigned long long)r3.st.dedup_bytes,
                (unsigned long long)r3.st.read_bytes);
    cr_assert_leq((double)s3, 1.1 * (double)s1, "three copies: %lld bytes, one copy: %lld", (long long)s3,
                  (long long)s1);
    run_free(&r1);
    run_free(&r3);
    free(one);
    free(three);
    free(img1);
    free(img3);
}

/* --freeze's signal handlers are the engine's only while it freezes: one freezing backup at a
 * time, and the program's own handlers are back once it ends (nothing to freeze here). */
static void interrupt_handler(int sig) { (void)sig; }

Test(backup, freeze_holds_the_signals_only_while_it_lasts)
{
    struct sigaction mine = {.sa_handler = interrupt_handler}, saved, now;
    cr_assert_eq(sigaction(SIGINT, &mine, &saved), 0);
    volatile int interrupt = 0;
    struct asr_backup_freeze_options fo = {.interrupt = &interrupt};
    struct asr_backup_options opt = {0};
    struct asr_backup_freeze *f, *g;
    struct asr_error err = {0};
    cr_assert_eq(asr_backup_freeze_start(NULL, 0, &fo, &opt, &f, &err), ASR_OK, "%s", err.msg);
    cr_assert(opt.before_volume && opt.after_volume && opt.hook_ctx == f);
    cr_assert_eq(sigaction(SIGINT, NULL, &now), 0);
    cr_assert_neq(now.sa_handler, interrupt_handler, "SIGINT thaws first while frozen");
    cr_assert_eq(asr_backup_freeze_start(NULL, 0, &fo, &opt, &g, &err), ASR_E_STATE, "a second one at once");
    cr_assert_null(g);
    raise(SIGINT);
    cr_assert_eq(interrupt, 1, "SIGINT sets the interrupt flag");
    asr_backup_freeze_end(f);
    cr_assert_eq(sigaction(SIGINT, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, interrupt_handler, "the program's handler is back");
    cr_assert_eq(asr_backup_freeze_start(NULL, 0, &fo, &opt, &f, &err), ASR_OK, "%s", err.msg);
    asr_backup_freeze_end(f);
    sigaction(SIGINT, &saved, NULL);
}
