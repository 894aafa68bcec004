/* store_seeds: writes the seed corpus of fuzz_store (DIR/store/): a config, a pack of three
 * chunks, an index object and a condemnation, as a store makes them. Run by hand when a store
 * object's layout changes and commit the files. Usage: store_seeds DIR (normally fuzz/corpus) */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "le.h"

static const char *outdir;

static void put(const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/store/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
        fprintf(stderr, "store_seeds: cannot write %s\n", path);
        exit(1);
    }
}

static void check(int rc, const struct asr_error *err)
{
    if (rc) {
        fprintf(stderr, "store_seeds: %s\n", err->msg);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: store_seeds DIR\n");
        return 2;
    }
    outdir = argv[1];
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/store", outdir);
    mkdir(dir, 0755);
    struct asr_error err = {0};

    struct store_config c = {.version = 1, .hash_seed = 42, .pack_target = 1u << 20, .created_unix = 1764950400};
    for (int i = 0; i < 16; i++)
        c.uuid[i] = (uint8_t)(i * 7 + 1);
    memset(c.key_check, 0x5a, sizeof c.key_check);
    uint8_t config[STORE_CONFIG_SIZE];
    store_config_encode(&c, config);
    put("config", config, sizeof config);

    /* Three small chunks: one stored, two compressed. */
    struct store_pack_writer *pw;
    check(store_pack_writer_new(&pw, &err), &err);
    struct store_ientry ie[3];
    for (int i = 0; i < 3; i++) {
        uint8_t content[300], out[1024];
        for (size_t j = 0; j < sizeof content; j++)
            content[j] = i == 0 ? (uint8_t)(j * 131 + 7 * (j >> 3)) : (uint8_t)(j / 50 + i);
        struct asr_chunk ch;
        check(asr_chunk_encode(content, sizeof content, i ? 3 : 0, 42, out, sizeof out, &ch, &err), &err);
        struct asr_store_id id;
        memset(id.b, 0x10 + i, sizeof id.b);
        check(store_pack_add(pw, &id, &ch, &err), &err);
    }
    const uint8_t *pack;
    size_t pack_len;
    check(store_pack_finish(pw, &pack, &pack_len, &err), &err);
    /* A fixed pack ID (the writer draws one at random), so the seeds are the same on every run. */
    uint8_t *fixed = malloc(pack_len), *tr = fixed + pack_len - STORE_PACK_TRAILER_SIZE;
    memcpy(fixed, pack, pack_len);
    memset(tr + 24, 0xab, STORE_OID_SIZE);
    put_le64(tr + 56, XXH3_64bits(tr, 56));
    put("pack", fixed, pack_len);
    const struct store_entry *e = store_pack_entries(pw);
    for (int i = 0; i < 3; i++)
        ie[i] = (struct store_ientry){.id = e[i].id,
                                      .pack = (uint32_t)(i == 2),
                                      .record_len = e[i].record_len,
                                      .offset = e[i].offset,
                                      .content_len = e[i].content_len};
    uint8_t packs[2][STORE_OID_SIZE];
    memcpy(packs[0], tr + 24, STORE_OID_SIZE);
    free(fixed);
    memset(packs[1], 0xee, STORE_OID_SIZE);
    struct store_index ix = {.pack_count = 2, .packs = packs, .count = 3, .entries = ie};
    uint8_t *raw;
    size_t len;
    check(store_index_encode(&ix, &raw, &len, &err), &err);
    put("index", raw, len);
    free(raw);
    store_pack_writer_free(pw);

    uint8_t sessions[1][STORE_OID_SIZE];
    memset(sessions[0], 0x33, STORE_OID_SIZE);
    struct store_condemn cd = {.flags = STORE_CONDEMN_SESSIONS_LISTED,
                               .pack_count = 2,
                               .session_count = 1,
                               .packs = packs,
                               .sessions = sessions};
    check(store_condemn_encode(&cd, &raw, &len, &err), &err);
    put("condemnation", raw, len);
    free(raw);
    return 0;
}
