/* Windows pieced together from other windows (engine/disk/window_map.c): a real ext4 filesystem
 * cut into pieces laid out of order over two files, as an LV's extents lie on two PVs, must read,
 * probe and map through the pieced window exactly as through the file it came from; reads across
 * piece edges, at the end and past it, and a piece outside its parent are checked. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsfix.h"
#include "probe.h"
#include "support.h"
#include "window_map.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(window_map, .fini = teardown, .timeout = 60);

#define FS_SIZE (32u << 20)
#define PIECE (1u << 20) /* an LVM extent's worth, of 4 MiB extents scaled down */
#define PIECES (FS_SIZE / PIECE)

/* Piece i of the filesystem goes to file i % 2, at a scrambled slot after a 64 KiB head. */
static uint64_t slot(unsigned i) { return 65536 + (uint64_t)((i * 7u) % PIECES) * PIECE; }

struct scattered {
    char *fs, *a, *b;
    struct asr_window wa, wb;
    struct window_map map;
    struct asr_window w;
};

static void scatter(struct scattered *s)
{
    fsfix_need("mkfs.ext4");
    s->fs = scratch_path("fs.img");
    s->a = scratch_path("pv-a.img");
    s->b = scratch_path("pv-b.img");
    cr_assert_eq(fsfix_sh("truncate -s %u %s && mkfs.ext4 -q -b 4096 -d /usr/share/doc/coreutils %s", FS_SIZE,
                          s->fs, s->fs), 0);
    uint64_t pv_size = 65536 + (uint64_t)PIECES * PIECE;
    cr_assert_eq(fsfix_sh("head -c %llu /dev/urandom > %s && cp %s %s", (unsigned long long)pv_size, s->a, s->a,
                          s->b), 0);
    uint8_t *buf = malloc(PIECE);
    for (unsigned i = 0; i < PIECES; i++) {
        fsfix_read_at(s->fs, (uint64_t)i * PIECE, buf, PIECE);
        fsfix_write_at(i % 2 ? s->b : s->a, slot(i), buf, PIECE);
    }
    free(buf);
    s->wa = fsfix_window(s->a, 0, pv_size);
    s->wb = fsfix_window(s->b, 0, pv_size);
    struct asr_error err = {0};
    for (unsigned i = 0; i < PIECES; i++)
        cr_assert_eq(window_map_add(&s->map, i % 2 ? &s->wb : &s->wa, slot(i), PIECE, &err), ASR_OK, "%s", err.msg);
    window_map_window(&s->map, "vg/lv", &s->w);
    cr_assert_eq(s->w.size, FS_SIZE);
}

static void unscatter(struct scattered *s)
{
    close(s->wa.fd);
    close(s->wb.fd);
    window_map_free(&s->map);
    free(s->fs), free(s->a), free(s->b);
}

Test(window_map, reads_across_pieces_like_the_source)
{
    struct scattered s = {0};
    scatter(&s);
    uint8_t *want = malloc(FS_SIZE), *got = malloc(FS_SIZE);
    fsfix_read_at(s.fs, 0, want, FS_SIZE);
    struct asr_error err = {0};
    cr_assert_eq(asr_window_read(&s.w, NULL, 0, got, FS_SIZE, &err), ASR_OK, "%s", err.msg);
    cr_assert(!memcmp(want, got, FS_SIZE), "the whole window reads as the filesystem it was cut from");
    /* Odd ranges straddling edges, and the last byte. */
    static const struct { uint64_t off, len; } cuts[] = {{PIECE - 1, 2}, {3 * PIECE - 4096, 3 * PIECE}, {FS_SIZE - 1, 1},
                                                          {12345, 2 * PIECE + 777}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        memset(got, 0, cuts[i].len);
        cr_assert_eq(asr_window_read(&s.w, "a cut", cuts[i].off, got, cuts[i].len, &err), ASR_OK, "%s", err.msg);
        cr_assert(!memcmp(want + cuts[i].off, got, cuts[i].len), "cut %zu", i);
    }
    cr_assert_eq(asr_window_read(&s.w, "past the end", FS_SIZE - 1, got, 2, &err), ASR_E_CORRUPT);
    free(want), free(got);
    unscatter(&s);
}

Test(window_map, probes_and_maps_like_the_source)
{
    struct scattered s = {0};
    scatter(&s);
    struct probe p;
    cr_assert_eq(probe_window(&s.w, NULL, &p), 1, "libblkid sees the filesystem through the pieces");
    cr_assert_str_eq(p.type, "ext4");
    struct asr_window direct = fsfix_window(s.fs, 0, FS_SIZE);
    struct asr_usedmap via = {0}, want = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ext_used(&direct, &want, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_ext_used(&s.w, &via, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(via.used.n, want.used.n);
    for (size_t i = 0; i < via.used.n; i++)
        cr_assert(via.used.v[i].offset == want.used.v[i].offset && via.used.v[i].length == want.used.v[i].length);
    /* And the map is right: only those ranges copied, the filesystem checks clean. */
    char *copy = scratch_path("copy.img");
    fsfix_copy_used(s.fs, 0, &via.used, copy, FS_SIZE);
    cr_assert_eq(fsfix_sh("e2fsck -fn %s", copy), 0);
    asr_usedmap_free(&via), asr_usedmap_free(&want);
    close(direct.fd);
    free(copy);
    unscatter(&s);
}

Test(window_map, refuses_a_piece_outside_its_parent)
{
    struct asr_window parent = {.fd = -1, .path = "pv", .base = 0, .size = 1 << 20};
    struct window_map m = {0};
    struct asr_error err = {0};
    cr_assert_eq(window_map_add(&m, &parent, (1 << 20) - 4096, 8192, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "outside"), "%s", err.msg);
    cr_assert_eq(window_map_add(&m, &parent, UINT64_MAX - 10, 20, &err), ASR_E_ARG);
    cr_assert_eq(window_map_add(&m, &parent, 0, 4096, &err), ASR_OK);
    cr_assert_eq(window_map_add(&m, &parent, 4096, 4096, &err), ASR_OK);
    cr_assert_eq(m.n, 1, "adjacent runs of one parent merge");
    cr_assert_eq(m.size, 8192);
    window_map_free(&m);
}
