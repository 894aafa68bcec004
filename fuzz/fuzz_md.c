/* libFuzzer harness for the md RAID reader (engine/disk/md.c): the input is a member read two
 * ways, as the start of a 64 MiB member (zero-extended: superblocks 1.1 and 1.2, their bitmap
 * and bad-block log, a data area up to 64 MiB) and as a whole member by itself (1.0 and 0.90 at
 * its end); each again with the checksums of every superblock place repaired, so that
 * mutations get past them to the field checks. An accepted member must describe areas inside
 * its window that do not overlap, and mapping the array onto it alone must land inside its data
 * area or refuse with a message. The member is read from memory through window ops, with no
 * file written per input. replay.c can replay a corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (64ull << 20)
#define MAX_INPUT (1u << 20)
#define MAGIC 0xa92b4efcu

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

/* The 1.x superblock at off of d (n bytes): sb_csum recomputed over what max_dev covers. */
static void repair1(uint8_t *d, size_t n, uint64_t off)
{
    if (off >= n || n - off < 256 || get32(d + off) != MAGIC)
        return;
    uint8_t *sb = d + off;
    uint64_t len = 256 + 2 * (uint64_t)get32(sb + 220);
    if (len > n - off)
        return;
    uint64_t sum = 0;
    size_t i = 0;
    for (; len - i >= 4; i += 4)
        sum += i == 216 ? 0 : get32(sb + i);
    if (len - i == 2)
        sum += (uint32_t)(sb[i] | sb[i + 1] << 8);
    put32(sb + 216, (uint32_t)((sum & 0xffffffffu) + (sum >> 32)));
}

static void repair0(uint8_t *d, size_t n, uint64_t off)
{
    if (off >= n || n - off < 4096 || get32(d + off) != MAGIC)
        return;
    uint64_t sum = 0;
    for (size_t i = 0; i < 4096; i += 4)
        sum += i == 152 ? 0 : get32(d + off + i);
    put32(d + off + 152, (uint32_t)((sum & 0xffffffffu) + (sum >> 32)));
}

/* Every place a superblock may be in a member of window bytes whose first n bytes are d. */
static void repair(uint8_t *d, size_t n, uint64_t window)
{
    repair1(d, n, 0);
    repair1(d, n, 4096);
    if (window >= 16 * 512)
        repair1(d, n, ((window / 512 - 16) & ~7ull) * 512);
    if (window >= 2 * 65536)
        repair0(d, n, (window & ~65535ull) - 65536);
}

static bool inside(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }
static bool overlap(uint64_t a, uint64_t al, uint64_t b, uint64_t bl) { return al && bl && a < b + bl && b < a + al; }

static void check(const struct md_member *m, uint64_t size)
{
    if (!md_level_name(m->level) || !memchr(m->name, 0, sizeof m->name) || strlen(m->uuid_text) != 35)
        abort();
    if (m->data_size == 0 || !inside(m->data_offset, m->data_size, size) ||
        !inside(m->super_offset, m->super_bytes, size) || !inside(m->bitmap_offset, m->bitmap_bytes, size) ||
        !inside(m->bblog_offset, m->bblog_bytes, size))
        abort();
    if (overlap(m->data_offset, m->data_size, m->super_offset, m->super_bytes) ||
        overlap(m->data_offset, m->data_size, m->bitmap_offset, m->bitmap_bytes) ||
        overlap(m->data_offset, m->data_size, m->bblog_offset, m->bblog_bytes) ||
        overlap(m->bitmap_offset, m->bitmap_bytes, m->bblog_offset, m->bblog_bytes))
        abort();
    if (m->role < MD_ROLE_JOURNAL && m->role >= m->raid_disks)
        abort();
    struct asr_error err = {0};
    bool degraded;
    if (md_check_members(m, 1, &degraded, &err) != ASR_OK && !err.msg[0])
        abort();
    uint64_t total = m->array_size;
    for (uint64_t off = 0; off < total; off += total / 7 + 1) {
        size_t i;
        uint64_t at, len;
        int rc = md_array_locate(m, 1, off, &i, &at, &len, &err);
        if (rc != ASR_OK) {
            if (!err.msg[0])
                abort();
            continue;
        }
        if (i != 0 || len == 0 || at < m->data_offset || !inside(at - m->data_offset, len, m->data_size))
            abort();
        for (uint32_t copy = 0; copy < md_copies(m); copy++) { /* each copy: here, or said absent */
            rc = md_array_locate_copy(m, 1, off, copy, &i, &at, &len, &err);
            if (rc != ASR_OK && !err.msg[0])
                abort();
            if (rc == ASR_OK && i == 0 && (len == 0 || at < m->data_offset || !inside(at - m->data_offset, len, m->data_size)))
                abort();
        }
    }
}

/* The member as a window over memory: the input, then zeros (no file to write per input). */
struct mem {
    const uint8_t *d;
    size_t n;
};

static int mem_read(void *ctx, const char *what, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    (void)what, (void)err;
    const struct mem *m = ctx;
    uint8_t *out = buf;
    size_t have = off < m->n ? m->n - (size_t)off : 0;
    have = have < len ? have : len;
    if (have)
        memcpy(out, m->d + off, have);
    memset(out + have, 0, len - have);
    return ASR_OK;
}

static const struct asr_window_ops mem_ops = {.read = mem_read};

static void run(const uint8_t *d, size_t n, uint64_t window)
{
    struct mem mem = {d, n};
    struct asr_window w = {.fd = -1, .path = "member", .size = window, .ops = &mem_ops, .ctx = &mem};
    struct md_member m;
    struct asr_error err = {0};
    int rc = md_read_member(&w, &m, &err);
    if (rc == ASR_OK)
        check(&m, window);
    else if (!err.msg[0] || (!m.found && !strstr(err.msg, "no md superblock")))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    const uint64_t windows[2] = {WINDOW, size};
    for (int k = 0; k < 2; k++) {
        if (windows[k] == 0)
            continue;
        run(data, size, windows[k]);
        memcpy(copy, data, size);
        repair(copy, size, windows[k]);
        run(copy, size, windows[k]);
    }
    free(copy);
    return 0;
}
