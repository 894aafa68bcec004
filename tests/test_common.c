/* common/: the small utilities every folder uses. GUID text in both byte orders and cases against
 * what GPT and blkid show for the same bytes, whole reads and writes through short transfers, the
 * end of a file and a full device, the monotonic clock against a sleep, growable arrays keeping
 * their contents and refusing sizes that overflow, CRC-32C against published check values. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "asr_engine.h"
#include "clock.h"
#include "crc32c.h"
#include "grow.h"
#include "guid.h"
#include "io.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(common, .fini = teardown, .timeout = 60);

/* ---- guid ------------------------------------------------------------------------------------ */

/* The EFI System type as a GPT entry stores it (offset 0 of the entry). */
static const uint8_t esp_on_disk[16] = {0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11,
                                        0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B};

Test(common, guid_text_gpt_order_and_case)
{
    char s[ASR_GUID_TEXT];
    asr_guid_text(esp_on_disk, ASR_GUID_GPT | ASR_GUID_UPPER, s);
    cr_assert_str_eq(s, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    asr_guid_text(esp_on_disk, ASR_GUID_GPT, s);
    cr_assert_str_eq(s, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    /* A filesystem UUID (ext, swap) is stored in text order. */
    asr_guid_text(esp_on_disk, 0, s);
    cr_assert_str_eq(s, "28732ac1-1ff8-d211-ba4b-00a0c93ec93b");
    asr_guid_text(esp_on_disk, ASR_GUID_UPPER, s);
    cr_assert_str_eq(s, "28732AC1-1FF8-D211-BA4B-00A0C93EC93B");
}

Test(common, guid_parse_round_trips)
{
    uint8_t b[16];
    cr_assert_eq(asr_guid_parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", ASR_GUID_GPT, b), 0);
    cr_assert_arr_eq(b, esp_on_disk, 16);
    cr_assert_eq(asr_guid_parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", ASR_GUID_GPT, b), 0);
    cr_assert_arr_eq(b, esp_on_disk, 16);
    cr_assert_eq(asr_guid_parse("28732ac1-1ff8-d211-ba4b-00a0c93ec93b", 0, b), 0);
    cr_assert_arr_eq(b, esp_on_disk, 16);
}

Test(common, guid_parse_refuses_non_guids)
{
    static const char *const bad[] = {"",
                                      "C12A7328",
                                      "C12A7328-F81F-11D2-BA4B-00A0C93EC93",
                                      "C12A7328F81F11D2BA4B00A0C93EC93B",
                                      "G12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                                      "0x12345678"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t b[16];
        memset(b, 0xAA, sizeof b);
        cr_assert_eq(asr_guid_parse(bad[i], ASR_GUID_GPT, b), -1, "\"%s\"", bad[i]);
        for (int j = 0; j < 16; j++)
            cr_assert_eq(b[j], 0xAA, "\"%s\" changed the output", bad[i]);
    }
}

/* ---- io -------------------------------------------------------------------------------------- */

static int scratch_file(const char *name, size_t size)
{
    char *path = scratch_path(name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    free(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    return fd;
}

Test(common, io_whole_transfers_and_the_end_of_a_file)
{
    int fd = scratch_file("f", 0);
    uint8_t out[10000], in[sizeof out];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 7);
    size_t done = 1;
    cr_assert_eq(asr_pwrite_full(fd, out, sizeof out, 100, &done), 0);
    cr_assert_eq(done, sizeof out);
    cr_assert_eq(asr_pread_full(fd, in, sizeof in, 100), 0);
    cr_assert_arr_eq(in, out, sizeof out);
    /* The file ends 1 byte short of the range: not an errno, and nothing past it invented. */
    cr_assert_eq(asr_pread_full(fd, in, sizeof in, 101), ASR_IO_SHORT);
    cr_assert_eq(asr_pread_full(fd, in, 1, 100 + sizeof out), ASR_IO_SHORT);
    cr_assert_eq(asr_pread_full(fd, in, 0, 1u << 30), 0);
    close(fd);
    cr_assert_eq(asr_pread_full(fd, in, 1, 0), -EBADF);
}

/* A pipe takes at most its capacity per write and gives what is there per read: the writer and
 * the reader see short transfers and carry on. */
Test(common, io_write_full_through_a_pipe)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
    static uint8_t out[1 << 18], in[sizeof out];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i ^ (i >> 9));
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(p[0]);
        _exit(asr_write_full(p[1], out, sizeof out) == 0 ? 0 : 1);
    }
    close(p[1]);
    size_t got = 0;
    for (ssize_t n; got < sizeof in && (n = read(p[0], in + got, sizeof in - got)) > 0;)
        got += (size_t)n;
    close(p[0]);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(got, sizeof out);
    cr_assert_arr_eq(in, out, sizeof out);
    /* Positioned transfers on a pipe are the caller's mistake, returned as such. */
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(asr_pread_full(p[0], in, 1, 0), -ESPIPE);
    size_t done = 1;
    cr_assert_eq(asr_pwrite_full(p[1], out, 1, 0, &done), -ESPIPE);
    cr_assert_eq(done, 0);
    close(p[0]);
    close(p[1]);
}

Test(common, io_full_device)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    uint8_t b[512] = {0};
    size_t done = 1;
    cr_assert_eq(asr_pwrite_full(fd, b, sizeof b, 0, &done), -ENOSPC);
    cr_assert_eq(done, 0);
    cr_assert_eq(asr_write_full(fd, b, sizeof b), -ENOSPC);
    close(fd);
}

/* ---- clock ----------------------------------------------------------------------------------- */

Test(common, clock_measures_a_sleep_in_both_units)
{
    double t0 = asr_now();
    uint64_t n0 = asr_now_ns();
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    uint64_t n1 = asr_now_ns();
    double t1 = asr_now();
    cr_assert_geq(n1 - n0, 20u * 1000 * 1000);
    cr_assert_geq(t1 - t0, 0.020);
    cr_assert_lt(t1 - t0, 5.0);
    cr_assert_geq(t1 - t0, (double)(n1 - n0) / 1e9, "the two clocks disagree");
}

/* ---- grow ------------------------------------------------------------------------------------ */

Test(common, grow_doubles_keeps_contents_and_refuses_overflow)
{
    size_t cap = 0;
    uint32_t *v = asr_grow(NULL, &cap, 1, sizeof *v, 16);
    cr_assert_not_null(v);
    cr_assert_eq(cap, 16);
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t *g = asr_grow(v, &cap, i + 1, sizeof *g, 16);
        cr_assert_not_null(g);
        v = g;
        v[i] = i * 3;
    }
    cr_assert_eq(cap, 1024, "doubled from 16: %zu", cap);
    for (uint32_t i = 0; i < 1000; i++)
        cr_assert_eq(v[i], i * 3);
    cr_assert_eq(asr_grow(v, &cap, 1024, sizeof *v, 16), v, "room enough: the same array");
    cr_assert_eq(cap, 1024);
    /* A jump past twice the capacity doubles as often as it takes. */
    uint32_t *g = asr_grow(v, &cap, 5000, sizeof *g, 16);
    cr_assert_not_null(g);
    v = g;
    cr_assert_eq(cap, 8192);
    /* Sizes that overflow are refused without touching the array or its capacity. */
    cr_assert_null(asr_grow(v, &cap, SIZE_MAX / 2, sizeof *v, 16));
    cr_assert_null(asr_grow(v, &cap, SIZE_MAX, 1 << 20, 16));
    cr_assert_eq(cap, 8192);
    cr_assert_eq(v[999], 999 * 3);
    free(v);
}

/* ---- crc32c ---------------------------------------------------------------------------------- */

/* The check value of the CRC-32C catalogue entry, an iSCSI test vector (RFC 3720 B.4: 32 zero
 * bytes), and the same sums taken in pieces of every split (the 8-byte path and the tail). */
Test(common, crc32c_known_values_and_pieces)
{
    cr_assert_eq(asr_crc32c("123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xFF, sizeof ones);
    cr_assert_eq(asr_crc32c(zeros, sizeof zeros), 0x8A9136AAu);
    cr_assert_eq(asr_crc32c(ones, sizeof ones), 0x62A8AB43u);
    cr_assert_eq(asr_crc32c("", 0), 0u);
    uint8_t buf[100];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    uint32_t whole = asr_crc32c(buf, sizeof buf);
    for (size_t split = 0; split <= sizeof buf; split++) {
        uint32_t c = asr_crc32c_update(~0u, buf, split);
        c = asr_crc32c_update(c, buf + split, sizeof buf - split);
        cr_assert_eq(~c, whole, "split at %zu", split);
    }
}

/* asr_ranges_minus (engine/disk/ranges.c): against a byte map of random sorted ranges and cuts,
 * touching, overlapping several, covering all, and none. */
static void random_ranges(struct asr_ranges *r, bool *map, unsigned *seed, unsigned span)
{
    for (unsigned at = (unsigned)rand_r(seed) % 8; at < span;) {
        unsigned len = 1 + (unsigned)rand_r(seed) % 12;
        if (at + len > span)
            len = span - at;
        cr_assert_eq(asr_ranges_add(r, at, len), ASR_OK);
        for (unsigned i = at; i < at + len; i++)
            map[i] = true;
        at += len + (unsigned)rand_r(seed) % 10; /* 0: touching, merged by asr_ranges_add */
    }
}

Test(common, ranges_minus_matches_a_byte_map)
{
    enum { SPAN = 200 };
    unsigned seed = 18;
    for (int round = 0; round < 500; round++) {
        bool in_a[SPAN] = {false}, in_cut[SPAN] = {false};
        struct asr_ranges a = {0}, cut = {0}, out = {0};
        random_ranges(&a, in_a, &seed, SPAN);
        if (round % 5)
            random_ranges(&cut, in_cut, &seed, round % 7 ? SPAN : 40);
        cr_assert_eq(asr_ranges_minus(&a, &cut, &out), ASR_OK);
        bool got[SPAN] = {false};
        for (size_t i = 0; i < out.n; i++) {
            cr_assert(out.v[i].length > 0 && out.v[i].offset + out.v[i].length <= SPAN);
            cr_assert(i == 0 || out.v[i].offset > out.v[i - 1].offset + out.v[i - 1].length, "ranges apart");
            for (uint64_t b = out.v[i].offset; b < out.v[i].offset + out.v[i].length; b++)
                got[b] = true;
        }
        for (unsigned b = 0; b < SPAN; b++)
            cr_assert_eq(got[b], in_a[b] && !in_cut[b], "round %d byte %u", round, b);
        asr_ranges_free(&a), asr_ranges_free(&cut), asr_ranges_free(&out);
    }
}
