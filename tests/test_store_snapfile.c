/* Snapshot objects (store/snapfile.c): the snapshot stream packed into one zstd frame and back,
 * and packed objects that are damaged or cut short refused with the snapshot named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static char dir[] = "/tmp/asrimg-snapfile.XXXXXX";

static void setup(void) { cr_assert_not_null(mkdtemp(dir)); }
static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A snapshot-like file: 1 MiB of zeros (the gap a layout keeps), then 3 MiB of pseudo-random ids. */
static size_t make_snapshot(const char *path)
{
    size_t n = 4u << 20;
    uint8_t *b = calloc(1, n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 1u << 20; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (uint8_t)x;
    }
    write_file(path, b, n);
    free(b);
    return n;
}

Test(store_snapfile, round_trip_and_smaller, .init = setup, .fini = teardown)
{
    char a[64], z[64], back[64];
    snprintf(a, sizeof a, "%s/snap", dir);
    snprintf(z, sizeof z, "%s/snap.zst", dir);
    snprintf(back, sizeof back, "%s/back", dir);
    size_t n = make_snapshot(a);
    struct asr_error err = {0};
    cr_assert_eq(store_snapshot_pack(a, z, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(store_snapshot_unpack(z, back, "pc/20261205T000000Z", &err), ASR_OK, "%s", err.msg);
    size_t na, nz, nb;
    uint8_t *x = read_file(a, &na), *y = read_file(back, &nb);
    free(read_file(z, &nz));
    cr_assert_eq(nb, n);
    cr_assert(!memcmp(x, y, n));
    cr_assert_lt(nz, n - (1u << 20) + (64u << 10), "the zeros compress away: %zu of %zu", nz, n);
    free(x);
    free(y);
}

Test(store_snapfile, cut_short_or_damaged_refused, .init = setup, .fini = teardown)
{
    char a[64], z[64], back[64];
    snprintf(a, sizeof a, "%s/snap", dir);
    snprintf(z, sizeof z, "%s/snap.zst", dir);
    snprintf(back, sizeof back, "%s/back", dir);
    make_snapshot(a);
    struct asr_error err = {0};
    cr_assert_eq(store_snapshot_pack(a, z, &err), ASR_OK);
    size_t nz;
    uint8_t *p = read_file(z, &nz);
    write_file(z, p, nz / 2);
    cr_assert_eq(store_snapshot_unpack(z, back, "pc/20261205T000000Z", &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "pc/20261205T000000Z") && strstr(err.msg, "truncated"), "%s", err.msg);
    memset(p, 0x5a, 16); /* no zstd frame at all */
    write_file(z, p, nz);
    cr_assert_eq(store_snapshot_unpack(z, back, "pc/20261205T000000Z", &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "damaged"), "%s", err.msg);
    free(p);
}
