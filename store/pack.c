/* Packs (SPEC.md 19.3): building one in memory (chunk records, then the entry table and the
 * trailer) and reading a stored pack's entries back from its trailer, every field checked against
 * the pack's size before anything is allocated. Building and uploading are separate calls so that
 * the upload can move to a thread of its own. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "grow.h"
#include "le.h"

#define PACK_TAG "APCK"
#define CHUNK_TAG "ACNK"

struct store_pack_writer {
    uint8_t id[STORE_OID_SIZE];
    uint8_t *buf;
    size_t len, cap;
    struct store_entry *entries;
    size_t count, entries_cap;
    bool finished;
};

int store_pack_writer_new(struct store_pack_writer **out, struct asr_error *err)
{
    struct store_pack_writer *pw = calloc(1, sizeof *pw);
    if (!pw)
        return store_fail(err, ASR_E_NOMEM, "pack: out of memory");
    int rc = store_pack_writer_reset(pw, err);
    if (rc) {
        free(pw);
        return rc;
    }
    *out = pw;
    return ASR_OK;
}

void store_pack_writer_free(struct store_pack_writer *pw)
{
    if (!pw)
        return;
    free(pw->buf);
    free(pw->entries);
    free(pw);
}

int store_pack_writer_reset(struct store_pack_writer *pw, struct asr_error *err)
{
    pw->len = 0;
    pw->count = 0;
    pw->finished = false;
    return store_random(pw->id, sizeof pw->id, err);
}

static uint8_t *room(struct store_pack_writer *pw, size_t n)
{
    uint8_t *b = asr_grow(pw->buf, &pw->cap, pw->len + n, 1, 1u << 20);
    if (!b)
        return NULL;
    pw->buf = b;
    b += pw->len;
    pw->len += n;
    return b;
}

int store_pack_add(struct store_pack_writer *pw, const struct asr_store_id *id, const struct asr_chunk *c,
                   struct asr_error *err)
{
    if (pw->finished)
        return store_fail(err, ASR_E_STATE, "pack: add after finish");
    if (c->content_len == 0 || c->content_len > ASR_MAX_CHUNK_SIZE || c->stored_len > c->content_len ||
        (c->codec == ASR_CODEC_STORED && c->stored_len != c->content_len) || c->codec > ASR_CODEC_ZSTD)
        return store_fail(err, ASR_E_ARG, "pack: not a chunk as asr_chunk_encode makes them");
    struct store_entry *e = asr_grow(pw->entries, &pw->entries_cap, pw->count + 1, sizeof *e, 256);
    if (!e)
        return store_fail(err, ASR_E_NOMEM, "pack: out of memory");
    pw->entries = e;
    uint64_t offset = pw->len;
    uint8_t *h = room(pw, STORE_CHUNK_HEADER_SIZE + (size_t)c->stored_len);
    if (!h)
        return store_fail(err, ASR_E_NOMEM, "pack: out of memory");
    /* The chunk record of SPEC.md section 8, chunk_id 0: a pack's chunks belong to no one image. */
    memset(h, 0, STORE_CHUNK_HEADER_SIZE);
    memcpy(h, CHUNK_TAG, 4);
    h[4] = c->codec;
    put_le32(h + 16, c->stored_len);
    put_le32(h + 20, c->content_len);
    put_le64(h + 24, c->content_hash.lo);
    put_le64(h + 32, c->content_hash.hi);
    put_le64(h + 40, XXH3_64bits(c->stored, c->stored_len));
    put_le64(h + 56, XXH3_64bits(h, 56));
    memcpy(h + STORE_CHUNK_HEADER_SIZE, c->stored, c->stored_len);
    e[pw->count++] = (struct store_entry){.id = *id,
                                          .offset = offset,
                                          .record_len = STORE_CHUNK_HEADER_SIZE + c->stored_len,
                                          .content_len = c->content_len};
    return ASR_OK;
}

uint64_t store_pack_records_len(const struct store_pack_writer *pw) { return pw->len; }
size_t store_pack_count(const struct store_pack_writer *pw) { return pw->count; }
const uint8_t *store_pack_id(const struct store_pack_writer *pw) { return pw->id; }
const struct store_entry *store_pack_entries(const struct store_pack_writer *pw) { return pw->entries; }

static void entry_encode(const struct store_entry *e, uint8_t *out)
{
    memcpy(out, e->id.b, 32);
    put_le64(out + 32, e->offset);
    put_le32(out + 40, e->record_len);
    put_le32(out + 44, e->content_len);
}

int store_pack_finish(struct store_pack_writer *pw, const uint8_t **data, size_t *len, struct asr_error *err)
{
    if (pw->finished)
        return store_fail(err, ASR_E_STATE, "pack: finished twice");
    uint64_t entries_offset = pw->len;
    uint8_t *t = room(pw, pw->count * STORE_PACK_ENTRY_SIZE + STORE_PACK_TRAILER_SIZE);
    if (!t)
        return store_fail(err, ASR_E_NOMEM, "pack: out of memory");
    for (size_t i = 0; i < pw->count; i++)
        entry_encode(&pw->entries[i], t + i * STORE_PACK_ENTRY_SIZE);
    uint8_t *tr = t + pw->count * STORE_PACK_ENTRY_SIZE;
    memset(tr, 0, STORE_PACK_TRAILER_SIZE);
    memcpy(tr, PACK_TAG, 4);
    put_le32(tr + 4, STORE_PACK_VERSION);
    put_le64(tr + 8, pw->count);
    put_le64(tr + 16, entries_offset);
    memcpy(tr + 24, pw->id, STORE_OID_SIZE);
    put_le64(tr + 40, XXH3_64bits(t, pw->count * STORE_PACK_ENTRY_SIZE));
    put_le64(tr + 56, XXH3_64bits(tr, 56));
    pw->finished = true;
    *data = pw->buf;
    *len = pw->len;
    return ASR_OK;
}

/* ---- reading ------------------------------------------------------------------------------- */

int store_pack_trailer_decode(const uint8_t in[STORE_PACK_TRAILER_SIZE], uint64_t pack_size,
                              struct store_pack_trailer *t, struct asr_error *err)
{
    if (memcmp(in, PACK_TAG, 4))
        return store_fail(err, ASR_E_CORRUPT, "no pack trailer (tag APCK)");
    t->version = get_le32(in + 4);
    if (t->version != STORE_PACK_VERSION)
        return store_fail(err, ASR_E_UNSUPPORTED, "pack version %u (this asrimg reads version %u)", t->version,
                          STORE_PACK_VERSION);
    if (get_le64(in + 56) != XXH3_64bits(in, 56))
        return store_fail(err, ASR_E_CORRUPT, "pack trailer checksum mismatch");
    for (int i = 48; i < 56; i++)
        if (in[i])
            return store_fail(err, ASR_E_CORRUPT, "pack trailer: reserved bytes not zero");
    t->count = get_le64(in + 8);
    t->entries_offset = get_le64(in + 16);
    memcpy(t->id, in + 24, STORE_OID_SIZE);
    t->entries_hash = get_le64(in + 40);
    if (pack_size < STORE_PACK_TRAILER_SIZE || t->entries_offset > pack_size - STORE_PACK_TRAILER_SIZE)
        return store_fail(err, ASR_E_CORRUPT, "pack trailer: entries_offset %llu past the pack's end",
                          (unsigned long long)t->entries_offset);
    uint64_t table = pack_size - STORE_PACK_TRAILER_SIZE - t->entries_offset;
    if (t->count > table / STORE_PACK_ENTRY_SIZE || t->count * STORE_PACK_ENTRY_SIZE != table)
        return store_fail(err, ASR_E_CORRUPT, "pack trailer: %llu entries do not fill the %llu-byte entry table",
                          (unsigned long long)t->count, (unsigned long long)table);
    if (t->count == 0)
        return store_fail(err, ASR_E_CORRUPT, "pack trailer: no entries");
    return ASR_OK;
}

int store_pack_entries_decode(const uint8_t *table, size_t len, const struct store_pack_trailer *t,
                              struct store_entry **out, struct asr_error *err)
{
    *out = NULL;
    if (t->count > len / STORE_PACK_ENTRY_SIZE || t->count * STORE_PACK_ENTRY_SIZE != len)
        return store_fail(err, ASR_E_CORRUPT, "pack entry table of %zu bytes for %llu entries", len,
                          (unsigned long long)t->count);
    if (XXH3_64bits(table, len) != t->entries_hash)
        return store_fail(err, ASR_E_CORRUPT, "pack entry table hash mismatch");
    struct store_entry *e = calloc(t->count ? t->count : 1, sizeof *e);
    if (!e)
        return store_fail(err, ASR_E_NOMEM, "pack: out of memory for %llu entries", (unsigned long long)t->count);
    uint64_t next = 0;
    for (uint64_t i = 0; i < t->count; i++) {
        const uint8_t *p = table + i * STORE_PACK_ENTRY_SIZE;
        memcpy(e[i].id.b, p, 32);
        e[i].offset = get_le64(p + 32);
        e[i].record_len = get_le32(p + 40);
        e[i].content_len = get_le32(p + 44);
        /* Records lie one after another from 0 to entries_offset, in entry order. */
        if (e[i].offset != next || e[i].record_len <= STORE_CHUNK_HEADER_SIZE ||
            e[i].record_len > t->entries_offset - next || e[i].content_len == 0 ||
            e[i].content_len > ASR_MAX_CHUNK_SIZE || e[i].record_len - STORE_CHUNK_HEADER_SIZE > e[i].content_len) {
            store_fail(err, ASR_E_CORRUPT, "pack entry %llu: record at %llu (%u bytes, content %u) out of place",
                       (unsigned long long)i, (unsigned long long)e[i].offset, e[i].record_len, e[i].content_len);
            free(e);
            return ASR_E_CORRUPT;
        }
        next += e[i].record_len;
    }
    if (next != t->entries_offset) {
        free(e);
        return store_fail(err, ASR_E_CORRUPT, "pack: records end at %llu, the entry table starts at %llu",
                          (unsigned long long)next, (unsigned long long)t->entries_offset);
    }
    *out = e;
    return ASR_OK;
}

int store_pack_read_entries(struct store_backend *b, const uint8_t id[STORE_OID_SIZE], uint64_t size,
                            struct store_entry **out, uint64_t *count, struct asr_error *err)
{
    char key[STORE_KEY_NAME_MAX];
    store_pack_name(id, key);
    *out = NULL;
    *count = 0;
    uint8_t tr[STORE_PACK_TRAILER_SIZE];
    size_t got = 0;
    bool missing = false;
    struct asr_error e2 = {0};
    struct store_pack_trailer t;
    if (size < STORE_PACK_TRAILER_SIZE)
        return store_fail(err, ASR_E_CORRUPT, "%s: %s: %llu bytes, too short for a pack", b->url, key,
                          (unsigned long long)size);
    int rc = b->ops->get(b, key, size - STORE_PACK_TRAILER_SIZE, tr, sizeof tr, &got, &missing, err);
    if (rc)
        return rc;
    if (got != sizeof tr)
        return store_fail(err, ASR_E_CORRUPT, "%s: %s: shorter than listed", b->url, key);
    if ((rc = store_pack_trailer_decode(tr, size, &t, &e2)))
        return store_fail(err, rc, "%s: %s: %s", b->url, key, e2.msg);
    if (memcmp(t.id, id, STORE_OID_SIZE))
        return store_fail(err, ASR_E_CORRUPT, "%s: %s: its trailer names another pack", b->url, key);
    size_t len = (size_t)(t.count * STORE_PACK_ENTRY_SIZE);
    uint8_t *table = malloc(len);
    if (!table)
        return store_fail(err, ASR_E_NOMEM, "%s: %s: out of memory", b->url, key);
    if (!(rc = b->ops->get(b, key, t.entries_offset, table, len, &got, &missing, err))) {
        if (got != len)
            rc = store_fail(err, ASR_E_CORRUPT, "%s: %s: shorter than listed", b->url, key);
        else if ((rc = store_pack_entries_decode(table, len, &t, out, &e2)))
            store_fail(err, rc, "%s: %s: %s", b->url, key, e2.msg);
    }
    free(table);
    if (!rc)
        *count = t.count;
    return rc;
}
