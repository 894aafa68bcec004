/* libFuzzer harness for the chunk store's object decoders (store/): the config, a pack's trailer
 * and entry table, index objects and condemnations, each read from a store anyone with write
 * access to the bucket may have written. Every input goes through each decoder: a refusal must
 * say why, and what one accepts must encode back to the same bytes (config, index, condemnation)
 * or lie inside the pack (entries). replay.c can replay a corpus; store_seeds.c writes the seeds. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void refused_says_why(int rc, const struct asr_error *err)
{
    if (rc && !err->msg[0])
        abort();
}

static void same_or_abort(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen != blen || memcmp(a, b, alen))
        abort();
}

static void fuzz_config(const uint8_t *data, size_t size)
{
    struct store_config c;
    struct asr_error err = {0};
    int rc = store_config_decode(data, size, &c, &err);
    refused_says_why(rc, &err);
    if (rc)
        return;
    uint8_t back[STORE_CONFIG_SIZE];
    store_config_encode(&c, back);
    same_or_abort(data, size, back, sizeof back);
}

static void fuzz_pack(const uint8_t *data, size_t size)
{
    struct store_pack_trailer t;
    struct asr_error err = {0};
    if (size < STORE_PACK_TRAILER_SIZE)
        return;
    int rc = store_pack_trailer_decode(data + size - STORE_PACK_TRAILER_SIZE, size, &t, &err);
    refused_says_why(rc, &err);
    if (rc)
        return;
    struct store_entry *e;
    rc = store_pack_entries_decode(data + t.entries_offset, (size_t)(size - STORE_PACK_TRAILER_SIZE - t.entries_offset),
                                   &t, &e, &err);
    refused_says_why(rc, &err);
    if (rc)
        return;
    for (uint64_t i = 0; i < t.count; i++)
        if (e[i].offset + e[i].record_len > t.entries_offset)
            abort();
    free(e);
}

static void fuzz_index(const uint8_t *data, size_t size)
{
    struct store_index ix;
    struct asr_error err = {0};
    int rc = store_index_decode(data, size, &ix, &err);
    refused_says_why(rc, &err);
    if (rc)
        return;
    uint8_t *back;
    size_t len;
    if (store_index_encode(&ix, &back, &len, &err) == ASR_OK) {
        same_or_abort(data, size, back, len);
        free(back);
    }
    store_index_free(&ix);
}

static void fuzz_condemn(const uint8_t *data, size_t size)
{
    struct store_condemn c;
    struct asr_error err = {0};
    int rc = store_condemn_decode(data, size, &c, &err);
    refused_says_why(rc, &err);
    if (rc)
        return;
    uint8_t *back;
    size_t len;
    if (store_condemn_encode(&c, &back, &len, &err) == ASR_OK) {
        same_or_abort(data, size, back, len);
        free(back);
    }
    store_condemn_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_config(data, size);
    fuzz_pack(data, size);
    fuzz_index(data, size);
    fuzz_condemn(data, size);
    return 0;
}
