/* store verify: every chunk some snapshot uses must be listed by an index object, lie inside a
 * pack the store holds and, with read_data, read back as a record whose header, stored bytes,
 * content hash and store id all check. Each damaged or missing chunk is named once, with the
 * snapshots it hurts. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <xxhash.h>
#include <zstd.h>

#include "le.h"

/* The record rec (loc's length) checked as SPEC.md 19.5 says; content (content_len bytes of room)
 * receives the chunk. NULL on success, else what failed. */
static const char *record_check(struct asr_store *s, const struct asr_store_id *id, const uint8_t *rec,
                                const struct store_loc *loc, uint8_t *content, ZSTD_DCtx *z)
{
    if (memcmp(rec, "ACNK", 4) || get_le64(rec + 56) != XXH3_64bits(rec, 56))
        return "its record header is damaged";
    uint8_t codec = rec[4];
    uint32_t stored_len = get_le32(rec + 16), content_len = get_le32(rec + 20);
    if (stored_len != loc->record_len - STORE_CHUNK_HEADER_SIZE || content_len != loc->content_len)
        return "its record does not match its index entry";
    const uint8_t *stored = rec + STORE_CHUNK_HEADER_SIZE;
    if (get_le64(rec + 40) != XXH3_64bits(stored, stored_len))
        return "its stored bytes are damaged";
    if (codec == ASR_CODEC_STORED) {
        if (stored_len != content_len)
            return "its record is inconsistent";
        memcpy(content, stored, content_len);
    } else if (codec == ASR_CODEC_ZSTD) {
        if (ZSTD_getFrameContentSize(stored, stored_len) != content_len)
            return "its zstd frame declares another size";
        size_t got = ZSTD_decompressDCtx(z, content, content_len, stored, stored_len);
        if (ZSTD_isError(got) || got != content_len)
            return "it does not decompress";
    } else {
        return "its codec is unknown";
    }
    XXH128_hash_t h = XXH3_128bits_withSeed(content, content_len, s->cfg.hash_seed);
    if (h.low64 != get_le64(rec + 24) || h.high64 != get_le64(rec + 32))
        return "its content hash does not match";
    struct asr_store_id got;
    asr_store_chunk_id(s, content, content_len, &got);
    if (CRYPTO_memcmp(got.b, id->b, ASR_STORE_ID_SIZE))
        return "its content is not what its id names";
    return NULL;
}

/* The names of the snapshots that use uses[from..to), comma-separated, malloc'd. */
static char *snapshot_names(const struct store_usage *u, size_t from, size_t to)
{
    size_t n = 1;
    for (size_t i = from; i < to; i++)
        n += strlen(u->snaps[u->uses[i].snap].name) + 2;
    char *out = malloc(n);
    if (!out)
        return NULL;
    out[0] = 0;
    for (size_t i = from; i < to; i++) {
        if (i > from && u->uses[i].snap == u->uses[i - 1].snap)
            continue;
        if (out[0])
            strcat(out, ", ");
        strcat(out, u->snaps[u->uses[i].snap].name);
    }
    return out;
}

int asr_store_verify(struct asr_store *s, bool read_data, asr_store_problem_fn problem, void *ctx,
                     struct asr_store_verify_report *rep, struct asr_error *err)
{
    memset(rep, 0, sizeof *rep);
    struct store_usage u;
    int rc = store_usage_read(s, &u, err);
    if (rc)
        return rc;
    struct store_table *t = NULL;
    struct store_pack *packs = NULL;
    size_t n_packs = 0;
    uint8_t *rec = NULL, *content = NULL;
    ZSTD_DCtx *z = NULL;
    if (!(rc = store_table_new(&t, err)) && !(rc = store_table_load(s->b, t, NULL, 0, NULL, err)))
        rc = store_packs_list(s->b, &packs, &n_packs, err);
    if (!rc && read_data) {
        rec = malloc(STORE_CHUNK_HEADER_SIZE + ASR_MAX_CHUNK_SIZE);
        content = malloc(ASR_MAX_CHUNK_SIZE);
        z = ZSTD_createDCtx();
        if (!rec || !content || !z)
            rc = store_fail(err, ASR_E_NOMEM, "store verify: out of memory");
    }
    rep->snapshots = u.n_snaps;
    rep->packs = n_packs;
    for (size_t i = 0, j; i < u.n_uses && !rc; i = j) {
        for (j = i + 1; j < u.n_uses && !memcmp(u.uses[j].id.b, u.uses[i].id.b, ASR_STORE_ID_SIZE); j++)
            ;
        const struct asr_store_id *id = &u.uses[i].id;
        rep->chunks++;
        char what[256];
        bool missing = false;
        const char *bad = NULL;
        struct store_loc loc;
        uint8_t pack[STORE_OID_SIZE];
        char pack_hex[STORE_OID_HEX];
        if (!store_table_find(t, id, &loc)) {
            missing = true;
            snprintf(what, sizeof what, "missing: no index object lists it");
        } else {
            store_table_pack_id(t, loc.pack, pack);
            store_hex(pack, sizeof pack, pack_hex);
            const struct store_pack *p = store_packs_find(packs, n_packs, pack);
            if (!p) {
                missing = true;
                snprintf(what, sizeof what, "missing: pack %s is not in the store", pack_hex);
            } else if (loc.offset + loc.record_len > p->size) {
                missing = true;
                snprintf(what, sizeof what, "missing: pack %s ends before offset %llu", pack_hex,
                         (unsigned long long)loc.offset);
            } else if (read_data) {
                char key[STORE_KEY_NAME_MAX];
                size_t got = 0;
                bool gone = false;
                struct asr_error e2 = {0};
                store_pack_name(pack, key);
                if ((rc = s->b->ops->get(s->b, key, loc.offset, rec, loc.record_len, &got, &gone, &e2))) {
                    if (!gone) {
                        store_fail(err, rc, "%s", e2.msg);
                        break;
                    }
                    rc = ASR_OK;
                    bad = "its pack went away while verify ran";
                } else {
                    rep->bytes_read += got;
                    bad = got != loc.record_len ? "its pack is shorter than listed"
                                                : record_check(s, id, rec, &loc, content, z);
                }
                if (bad)
                    snprintf(what, sizeof what, "damaged (pack %s offset %llu): %s", pack_hex,
                             (unsigned long long)loc.offset, bad);
            }
        }
        if (!missing && !bad)
            continue;
        if (missing)
            rep->missing++;
        else
            rep->damaged++;
        char *names = snapshot_names(&u, i, j);
        if (problem)
            problem(what, id, names ? names : "(out of memory)", ctx);
        free(names);
    }
    free(rec);
    free(content);
    ZSTD_freeDCtx(z);
    free(packs);
    store_table_free(t);
    store_usage_free(&u);
    if (!rc && (rep->missing || rep->damaged))
        rc = store_fail(err, ASR_E_CORRUPT, "%s: %llu chunks missing, %llu damaged", s->b->url,
                        (unsigned long long)rep->missing, (unsigned long long)rep->damaged);
    return rc;
}
