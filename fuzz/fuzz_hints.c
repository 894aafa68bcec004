/* libFuzzer harness for the re-backup hints file (engine/backup/hints.c, SPEC.md section 19.10):
 * a file in the user's cache directory, read as untrusted bytes. Each input is parsed as it is,
 * then again with its checksum repaired (so that mutations reach the rules behind it), by hints
 * made for the store check and chunk size the input names (so that those checks pass too). A
 * refusal must say why; what is accepted must keep the rules the pipeline relies on: every
 * volume's chunks ascending and apart, each no longer than the largest chunk, found again by its
 * offset, and a patch exactly as long as its blocks not from the base. */
#include "hints.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void check_accepted(const struct asr_backup_hints *h, uint32_t avg, const uint8_t *data)
{
    uint32_t nvol = le32(data + 56);
    uint32_t max_len = asr_backup_max_chunk(avg);
    for (uint32_t i = 0; i < nvol; i++) {
        const struct hint_list *l = hints_for_volume(h, data + 64 + (size_t)i * 32);
        for (size_t k = 0; l && k < l->n; k++) {
            if (!l->v[k].len || l->v[k].len > max_len)
                abort();
            if (k && l->v[k].offset < l->v[k - 1].offset + l->v[k - 1].len)
                abort();
            if (hints_at(l, l->v[k].offset) != &l->v[k])
                abort();
            uint64_t patched = 0; /* a patch is exactly the blocks not from the base */
            for (size_t b = 0; b < hint_block_count(l->v[k].offset, l->v[k].len); b++) {
                uint32_t from, to;
                hint_block_range(l->v[k].offset, l->v[k].len, b, &from, &to);
                if (from >= to || to > l->v[k].len)
                    abort();
                patched += l->v[k].blocks[b].from & HINT_FROM_BASE ? 0 : to - from;
            }
            if (patched != (l->v[k].flags & HINT_PATCHED ? l->v[k].patch_len : 0))
                abort();
        }
    }
}

static void parse_one(const uint8_t *data, size_t size)
{
    uint32_t avg = size >= 64 ? le32(data + 12) : 0;
    if (avg < 4096 || (avg & (avg - 1)) || avg > (4u << 20))
        avg = 256u << 10;
    uint8_t check[ASR_BACKUP_HINTS_CHECK] = {0};
    if (size >= 64)
        memcpy(check, data + 24, sizeof check);
    struct asr_backup_hints *h;
    struct asr_error err = {0};
    if (asr_backup_hints_new(check, avg, &h, &err) != ASR_OK)
        abort();
    int rc = hints_parse(h, data, size, "fuzz", &err);
    if (rc != ASR_OK && !err.msg[0])
        abort();
    if (rc == ASR_OK)
        check_accepted(h, avg, data);
    else if (asr_backup_hints_loaded(h))
        abort(); /* a refused file leaves the hints empty */
    asr_backup_hints_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_one(data, size);
    if (size < 72 || size > (64u << 20))
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    uint64_t sum = XXH3_64bits(copy, size - 8);
    for (int i = 0; i < 8; i++)
        copy[size - 8 + i] = (uint8_t)(sum >> (8 * i));
    parse_one(copy, size);
    free(copy);
    return 0;
}
