/* Index objects (SPEC.md 19.4): encoding, decoding with every count checked against the object's
 * size before anything is allocated, and the chunk table loaded from them: id -> pack, offset and
 * lengths, an open-addressing hash table behind a reader-writer lock (restore threads look up in
 * parallel; a backup's writer inserts). */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "grow.h"
#include "le.h"

#define INDEX_TAG "ASIX"

/* ---- index objects ------------------------------------------------------------------------- */

int store_index_encode(const struct store_index *ix, uint8_t **out, size_t *len, struct asr_error *err)
{
    *out = NULL;
    if (ix->count > (STORE_MAX_OBJECT - STORE_INDEX_HEADER_SIZE) / STORE_INDEX_ENTRY_SIZE)
        return store_fail(err, ASR_E_LIMIT, "index object: %llu entries", (unsigned long long)ix->count);
    size_t n = STORE_INDEX_HEADER_SIZE + (size_t)ix->pack_count * STORE_OID_SIZE +
               (size_t)ix->count * STORE_INDEX_ENTRY_SIZE + 8;
    uint8_t *b = calloc(1, n);
    if (!b)
        return store_fail(err, ASR_E_NOMEM, "index object: out of memory");
    memcpy(b, INDEX_TAG, 4);
    put_le32(b + 4, STORE_INDEX_VERSION);
    put_le32(b + 8, ix->pack_count);
    put_le64(b + 16, ix->count);
    uint8_t *p = b + STORE_INDEX_HEADER_SIZE;
    for (uint32_t i = 0; i < ix->pack_count; i++, p += STORE_OID_SIZE)
        memcpy(p, ix->packs[i], STORE_OID_SIZE);
    for (uint64_t i = 0; i < ix->count; i++, p += STORE_INDEX_ENTRY_SIZE) {
        const struct store_ientry *e = &ix->entries[i];
        memcpy(p, e->id.b, 32);
        put_le32(p + 32, e->pack);
        put_le32(p + 36, e->record_len);
        put_le64(p + 40, e->offset);
        put_le32(p + 48, e->content_len);
    }
    put_le64(p, XXH3_64bits(b, n - 8));
    *out = b;
    *len = n;
    return ASR_OK;
}

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* The header, checksum and sizes of an index object: its pack and entry counts. */
static int index_head(const uint8_t *in, size_t len, uint32_t *pack_count_out, uint64_t *count_out,
                      struct asr_error *err)
{
    if (len < STORE_INDEX_HEADER_SIZE + 8 || memcmp(in, INDEX_TAG, 4))
        return store_fail(err, ASR_E_CORRUPT, "not an index object (tag ASIX)");
    uint32_t version = get_le32(in + 4);
    if (version != STORE_INDEX_VERSION)
        return store_fail(err, ASR_E_UNSUPPORTED, "index object version %u (this asrimg reads version %u)", version,
                          STORE_INDEX_VERSION);
    if (get_le64(in + len - 8) != XXH3_64bits(in, len - 8))
        return store_fail(err, ASR_E_CORRUPT, "index object checksum mismatch");
    if (!zero(in + 12, 4) || !zero(in + 24, 8))
        return store_fail(err, ASR_E_CORRUPT, "index object: reserved bytes not zero");
    uint32_t pack_count = get_le32(in + 8);
    uint64_t count = get_le64(in + 16);
    size_t body = len - STORE_INDEX_HEADER_SIZE - 8;
    if (pack_count > body / STORE_OID_SIZE)
        return store_fail(err, ASR_E_CORRUPT, "index object: %u packs in %zu bytes", pack_count, len);
    size_t rest = body - (size_t)pack_count * STORE_OID_SIZE;
    if (count > rest / STORE_INDEX_ENTRY_SIZE || count * STORE_INDEX_ENTRY_SIZE != rest)
        return store_fail(err, ASR_E_CORRUPT, "index object: %llu entries and %u packs do not fill %zu bytes",
                          (unsigned long long)count, pack_count, len);
    *pack_count_out = pack_count;
    *count_out = count;
    return ASR_OK;
}

/* Entry i of an index object whose head index_head checked: decoded into e, or what is wrong with it. */
static const char *index_entry(const uint8_t *in, uint32_t pack_count, uint64_t i, struct store_ientry *e)
{
    const uint8_t *p = in + STORE_INDEX_HEADER_SIZE + (size_t)pack_count * STORE_OID_SIZE + i * STORE_INDEX_ENTRY_SIZE;
    memcpy(e->id.b, p, 32);
    e->pack = get_le32(p + 32);
    e->record_len = get_le32(p + 36);
    e->offset = get_le64(p + 40);
    e->content_len = get_le32(p + 48);
    if (e->pack >= pack_count)
        return "a pack outside the pack table";
    if (!zero(p + 52, 4))
        return "reserved bytes not zero";
    if (e->content_len == 0 || e->content_len > ASR_MAX_CHUNK_SIZE)
        return "a content length out of range";
    if (e->record_len <= STORE_CHUNK_HEADER_SIZE || e->record_len - STORE_CHUNK_HEADER_SIZE > e->content_len)
        return "a record length out of range";
    if (e->offset > UINT64_MAX - e->record_len)
        return "an offset out of range";
    return NULL;
}

static const uint8_t *index_pack(const uint8_t *in, uint32_t p) { return in + STORE_INDEX_HEADER_SIZE + (size_t)p * STORE_OID_SIZE; }

/* The whole object checked (head, then every entry): its pack and entry counts. */
static int index_check(const uint8_t *in, size_t len, uint32_t *pack_count, uint64_t *count, struct asr_error *err)
{
    int rc = index_head(in, len, pack_count, count, err);
    for (uint64_t i = 0; !rc && i < *count; i++) {
        struct store_ientry e;
        const char *bad = index_entry(in, *pack_count, i, &e);
        if (bad)
            rc = store_fail(err, ASR_E_CORRUPT, "index object entry %llu: %s", (unsigned long long)i, bad);
    }
    return rc;
}

/* A checked object (index_check) decoded into ix. */
static int index_decode_checked(const uint8_t *in, uint32_t pack_count, uint64_t count, struct store_index *ix,
                                struct asr_error *err)
{
    ix->packs = malloc(pack_count ? (size_t)pack_count * STORE_OID_SIZE : 1);
    ix->entries = malloc(count ? (size_t)count * sizeof *ix->entries : 1);
    if (!ix->packs || !ix->entries) {
        store_index_free(ix);
        return store_fail(err, ASR_E_NOMEM, "index object: out of memory for %llu entries", (unsigned long long)count);
    }
    ix->pack_count = pack_count;
    ix->count = count;
    memcpy(ix->packs, index_pack(in, 0), (size_t)pack_count * STORE_OID_SIZE);
    for (uint64_t i = 0; i < count; i++)
        index_entry(in, pack_count, i, &ix->entries[i]);
    return ASR_OK;
}

int store_index_decode(const uint8_t *in, size_t len, struct store_index *ix, struct asr_error *err)
{
    memset(ix, 0, sizeof *ix);
    uint32_t pack_count;
    uint64_t count;
    int rc = index_check(in, len, &pack_count, &count, err);
    return rc ? rc : index_decode_checked(in, pack_count, count, ix, err);
}

void store_index_free(struct store_index *ix)
{
    free(ix->packs);
    free(ix->entries);
    memset(ix, 0, sizeof *ix);
}

/* Index object key read whole and checked (index_check); a failure names the store and key. */
static int index_get_raw(struct store_backend *b, const char *key, uint8_t **raw, uint32_t *pack_count,
                         uint64_t *count, bool *missing, struct asr_error *err)
{
    size_t len;
    int rc = store_get_whole(b, key, STORE_MAX_OBJECT, raw, &len, missing, err);
    if (rc)
        return rc;
    struct asr_error e2 = {0};
    if ((rc = index_check(*raw, len, pack_count, count, &e2))) {
        store_fail(err, rc, "%s: %s: %s", b->url, key, e2.msg);
        free(*raw);
        *raw = NULL;
    }
    return rc;
}

int store_index_get(struct store_backend *b, const char *key, struct store_index *ix, bool *missing,
                    struct asr_error *err)
{
    uint8_t *raw;
    uint32_t pack_count;
    uint64_t count;
    memset(ix, 0, sizeof *ix);
    int rc = index_get_raw(b, key, &raw, &pack_count, &count, missing, err);
    if (rc)
        return rc;
    rc = index_decode_checked(raw, pack_count, count, ix, err);
    free(raw);
    return rc;
}

/* ---- index objects in parts ------------------------------------------------------------ */

uint64_t store_index_part = STORE_INDEX_PART;

/* Entries [from, to) of m written as an index object of their own, its pack table the packs they
 * use (renumbered; local_of and seen_in: scratch of m.pack_count each, seen_in[p] the part that
 * numbered pack p last, plus one). */
static int put_index_part(struct store_backend *b, const struct store_index *m, uint64_t from, uint64_t to,
                          uint32_t *local_of, uint64_t *seen_in, struct asr_error *err)
{
    struct store_index part = {.count = to - from};
    part.packs = malloc((size_t)(m->pack_count < part.count ? m->pack_count : part.count) * STORE_OID_SIZE);
    part.entries = malloc((size_t)part.count * sizeof *part.entries);
    int rc = part.packs && part.entries ? ASR_OK : store_fail(err, ASR_E_NOMEM, "index object: out of memory");
    for (uint64_t i = from; i < to && !rc; i++) {
        uint32_t p = m->entries[i].pack;
        if (seen_in[p] != from + 1) {
            seen_in[p] = from + 1;
            local_of[p] = part.pack_count;
            memcpy(part.packs[part.pack_count++], m->packs[p], STORE_OID_SIZE);
        }
        part.entries[i - from] = m->entries[i];
        part.entries[i - from].pack = local_of[p];
    }
    uint8_t *raw = NULL, oid[STORE_OID_SIZE];
    size_t len = 0;
    char hex[STORE_OID_HEX], key[STORE_KEY_NAME_MAX];
    if (!rc && !(rc = store_index_encode(&part, &raw, &len, err)) && !(rc = store_random(oid, sizeof oid, err))) {
        store_hex(oid, sizeof oid, hex);
        snprintf(key, sizeof key, "index/%s", hex);
        rc = b->ops->put(b, key, raw, len, err);
    }
    free(raw);
    store_index_free(&part);
    return rc;
}

int store_index_put_parts(struct store_backend *b, const struct store_index *m, uint64_t *puts,
                          struct asr_error *err)
{
    uint32_t *local_of = malloc((m->pack_count ? m->pack_count : 1) * sizeof *local_of);
    uint64_t *seen_in = calloc(m->pack_count ? m->pack_count : 1, sizeof *seen_in);
    int rc = local_of && seen_in ? ASR_OK : store_fail(err, ASR_E_NOMEM, "index object: out of memory");
    uint64_t per = store_index_part ? store_index_part : 1;
    for (uint64_t from = 0; from < m->count && !rc; from += per, ++*puts)
        rc = put_index_part(b, m, from, from + per < m->count ? from + per : m->count, local_of, seen_in, err);
    free(local_of);
    free(seen_in);
    return rc;
}

/* ---- the chunk table ----------------------------------------------------------------------- */

/* The pack of an expected chunk no index object has listed yet (store_table_expect). */
#define PACK_PENDING UINT32_MAX

struct table_entry {
    struct asr_store_id id;
    struct store_loc loc;
};

struct store_table {
    pthread_rwlock_t lock;
    uint64_t seed;               /* hashing ids is seeded: a hostile index cannot pile them in one place */
    struct table_entry *entries; /* dense, in insertion order */
    size_t count, cap;
    uint32_t *slots; /* entry number + 1; 0 is empty. Power-of-two size, at most half full. */
    size_t nslots;
    uint8_t (*packs)[STORE_OID_SIZE];
    size_t pack_count, pack_cap;
    uint32_t *pack_slots; /* the same for pack IDs */
    size_t npack_slots;
    bool expected; /* only the chunks store_table_expect named are kept */
};

int store_table_new(struct store_table **out, struct asr_error *err)
{
    struct store_table *t = calloc(1, sizeof *t);
    if (!t)
        return store_fail(err, ASR_E_NOMEM, "chunk table: out of memory");
    int rc = store_random(&t->seed, sizeof t->seed, err);
    if (rc) {
        free(t);
        return rc;
    }
    pthread_rwlock_init(&t->lock, NULL);
    *out = t;
    return ASR_OK;
}

void store_table_free(struct store_table *t)
{
    if (!t)
        return;
    pthread_rwlock_destroy(&t->lock);
    free(t->entries);
    free(t->slots);
    free(t->packs);
    free(t->pack_slots);
    free(t);
}

static size_t slot_of(const struct store_table *t, const void *key, size_t klen, size_t nslots)
{
    return (size_t)XXH3_64bits_withSeed(key, klen, t->seed) & (nslots - 1);
}

/* Rebuilds slots (nslots of them) for the n keys of size klen at stride in base. */
static uint32_t *rehash(const struct store_table *t, const uint8_t *base, size_t stride, size_t klen, size_t n,
                        size_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t s = slot_of(t, base + i * stride, klen, nslots);
        while (slots[s])
            s = (s + 1) & (nslots - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    return slots;
}

/* Finds key among n keys at stride in base through slots: its number, or -1 and *free_slot. */
static int64_t probe(const struct store_table *t, const uint32_t *slots, size_t nslots, const uint8_t *base,
                     size_t stride, const void *key, size_t klen, size_t *free_slot)
{
    if (!nslots)
        return -1;
    size_t s = slot_of(t, key, klen, nslots);
    while (slots[s]) {
        size_t i = slots[s] - 1;
        if (!memcmp(base + i * stride, key, klen))
            return (int64_t)i;
        s = (s + 1) & (nslots - 1);
    }
    if (free_slot)
        *free_slot = s;
    return -1;
}

/* Room for one more key: slots at most half full. */
static int grow_slots(const struct store_table *t, uint32_t **slots, size_t *nslots, const uint8_t *base,
                      size_t stride, size_t klen, size_t n)
{
    if (n + 1 <= *nslots / 2)
        return 0;
    if (n >= UINT32_MAX - 1)
        return -1;
    size_t want = *nslots ? *nslots * 2 : 1024;
    uint32_t *s = rehash(t, base, stride, klen, n, want);
    if (!s)
        return -1;
    free(*slots);
    *slots = s;
    *nslots = want;
    return 0;
}

static int64_t pack_locked(struct store_table *t, const uint8_t id[STORE_OID_SIZE])
{
    size_t free_slot = 0;
    int64_t i = probe(t, t->pack_slots, t->npack_slots, (const uint8_t *)t->packs, STORE_OID_SIZE, id,
                      STORE_OID_SIZE, &free_slot);
    if (i >= 0)
        return i;
    if (grow_slots(t, &t->pack_slots, &t->npack_slots, (const uint8_t *)t->packs, STORE_OID_SIZE, STORE_OID_SIZE,
                   t->pack_count) < 0)
        return -1;
    uint8_t(*p)[STORE_OID_SIZE] = asr_grow(t->packs, &t->pack_cap, t->pack_count + 1, STORE_OID_SIZE, 64);
    if (!p)
        return -1;
    t->packs = p;
    probe(t, t->pack_slots, t->npack_slots, (const uint8_t *)t->packs, STORE_OID_SIZE, id, STORE_OID_SIZE,
          &free_slot);
    memcpy(t->packs[t->pack_count], id, STORE_OID_SIZE);
    t->pack_slots[free_slot] = (uint32_t)(t->pack_count + 1);
    return (int64_t)t->pack_count++;
}

int64_t store_table_pack(struct store_table *t, const uint8_t id[STORE_OID_SIZE])
{
    pthread_rwlock_wrlock(&t->lock);
    int64_t n = pack_locked(t, id);
    pthread_rwlock_unlock(&t->lock);
    return n;
}

void store_table_pack_id(struct store_table *t, uint32_t num, uint8_t out[STORE_OID_SIZE])
{
    pthread_rwlock_rdlock(&t->lock);
    if (num < t->pack_count)
        memcpy(out, t->packs[num], STORE_OID_SIZE);
    else
        memset(out, 0, STORE_OID_SIZE);
    pthread_rwlock_unlock(&t->lock);
}

uint32_t store_table_pack_count(struct store_table *t)
{
    pthread_rwlock_rdlock(&t->lock);
    uint32_t n = (uint32_t)t->pack_count;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

static int64_t entry_locked(const struct store_table *t, const struct asr_store_id *id)
{
    return probe(t, t->slots, t->nslots, (const uint8_t *)t->entries, sizeof *t->entries, id->b, 32, NULL);
}

static int insert_locked(struct store_table *t, const struct asr_store_id *id, const struct store_loc *loc)
{
    size_t free_slot = 0;
    const size_t stride = sizeof *t->entries;
    if (probe(t, t->slots, t->nslots, (const uint8_t *)t->entries, stride, id->b, 32, &free_slot) >= 0)
        return 0;
    struct table_entry *e = NULL;
    if (grow_slots(t, &t->slots, &t->nslots, (const uint8_t *)t->entries, stride, 32, t->count) < 0 ||
        !(e = asr_grow(t->entries, &t->cap, t->count + 1, stride, 1024)))
        return -1;
    t->entries = e;
    probe(t, t->slots, t->nslots, (const uint8_t *)t->entries, stride, id->b, 32, &free_slot);
    e[t->count] = (struct table_entry){.id = *id, .loc = *loc};
    t->slots[free_slot] = (uint32_t)(t->count + 1);
    t->count++;
    return 1;
}

int store_table_insert(struct store_table *t, const struct asr_store_id *id, const struct store_loc *loc)
{
    pthread_rwlock_wrlock(&t->lock);
    int rc = insert_locked(t, id, loc);
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

int store_table_expect(struct store_table *t, const struct asr_store_id *ids, size_t n)
{
    pthread_rwlock_wrlock(&t->lock);
    t->expected = true;
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++)
        rc = insert_locked(t, &ids[i], &(struct store_loc){.pack = PACK_PENDING});
    pthread_rwlock_unlock(&t->lock);
    return rc < 0 ? -1 : 0;
}

bool store_table_find(struct store_table *t, const struct asr_store_id *id, struct store_loc *loc)
{
    pthread_rwlock_rdlock(&t->lock);
    int64_t i = entry_locked(t, id);
    bool found = i >= 0 && t->entries[i].loc.pack != PACK_PENDING;
    if (found && loc)
        *loc = t->entries[i].loc;
    pthread_rwlock_unlock(&t->lock);
    return found;
}

uint64_t store_table_count(struct store_table *t)
{
    pthread_rwlock_rdlock(&t->lock);
    uint64_t n = t->count;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

/* A pack of an index object, beside its number in the table: */
enum { PACK_EXCLUDED = -2, PACK_UNNUMBERED = -3 };
/* Where entry e of an index object goes in t: the number of its entry to fill (an expected chunk
 * not listed yet), PLACE_INSERT, or PLACE_SKIP (excluded pack, a chunk not expected, one listed
 * already). */
enum { PLACE_INSERT = -1, PLACE_SKIP = -2 };
static int64_t entry_place(const struct store_table *t, const struct store_ientry *e, const int64_t *num)
{
    if (num[e->pack] == PACK_EXCLUDED)
        return PLACE_SKIP;
    if (!t->expected)
        return PLACE_INSERT;
    int64_t i = entry_locked(t, &e->id);
    return i >= 0 && t->entries[i].loc.pack == PACK_PENDING ? i : PLACE_SKIP;
}

/* The entries of an index object (raw, its head checked: pack_count packs, count entries) into
 * t, those of excluded packs left out; when t expects chunks, only theirs, and only the packs
 * they are in numbered. Straight from the object's bytes: a fleet's store holds millions of
 * entries, and a decoded copy would double what loading them takes. */
static int table_add_raw(struct store_table *t, const uint8_t *raw, uint32_t pack_count, uint64_t count,
                         const uint8_t (*exclude)[STORE_OID_SIZE], size_t n_exclude, struct asr_error *err)
{
    int64_t *num = malloc((pack_count ? pack_count : 1) * sizeof *num);
    if (!num)
        return store_fail(err, ASR_E_NOMEM, "chunk table: out of memory");
    pthread_rwlock_wrlock(&t->lock);
    bool nomem = false;
    for (uint32_t p = 0; p < pack_count && !nomem; p++) {
        const uint8_t *id = index_pack(raw, p);
        num[p] = store_oid_in(exclude, n_exclude, id) ? PACK_EXCLUDED : t->expected ? PACK_UNNUMBERED : pack_locked(t, id);
        nomem = num[p] == -1;
    }
    for (uint64_t i = 0; i < count && !nomem; i++) {
        struct store_ientry e;
        index_entry(raw, pack_count, i, &e);
        int64_t slot = entry_place(t, &e, num);
        if (slot == PLACE_SKIP)
            continue;
        if (num[e.pack] == PACK_UNNUMBERED && (num[e.pack] = pack_locked(t, index_pack(raw, e.pack))) < 0) {
            nomem = true;
            break;
        }
        struct store_loc loc = {
            .pack = (uint32_t)num[e.pack], .record_len = e.record_len, .content_len = e.content_len, .offset = e.offset};
        if (slot >= 0)
            t->entries[slot].loc = loc;
        else
            nomem = insert_locked(t, &e.id, &loc) < 0;
    }
    pthread_rwlock_unlock(&t->lock);
    free(num);
    return nomem ? store_fail(err, ASR_E_NOMEM, "chunk table: out of memory") : ASR_OK;
}


static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* store_table_load's work for one listing: each index object not loaded yet read, added to the
 * table and its name kept, under mu; one gone since the listing asks for another round. */
struct load_job {
    struct store_backend *b;
    struct store_table *t;
    const uint8_t (*exclude)[STORE_OID_SIZE];
    size_t n_exclude;
    const struct store_object *objs;
    const size_t *todo; /* numbers in objs */
    bool last_round;
    pthread_mutex_t mu;
    bool again;
    char **loaded;
    size_t n_loaded, cap;
};

static int load_one(void *ctx, size_t i, struct asr_error *err)
{
    struct load_job *j = ctx;
    const char *key = j->objs[j->todo[i]].key;
    uint8_t *raw = NULL;
    uint32_t pack_count = 0;
    uint64_t count = 0;
    bool missing = false;
    int rc = index_get_raw(j->b, key, &raw, &pack_count, &count, &missing, err);
    if (rc) {
        if (!missing || j->last_round)
            return rc;
        pthread_mutex_lock(&j->mu);
        j->again = true;
        pthread_mutex_unlock(&j->mu);
        return ASR_OK;
    }
    pthread_mutex_lock(&j->mu);
    rc = table_add_raw(j->t, raw, pack_count, count, j->exclude, j->n_exclude, err);
    char **l = rc ? NULL : asr_grow(j->loaded, &j->cap, j->n_loaded + 1, sizeof *j->loaded, 64);
    if (l)
        j->loaded = l;
    if (!rc && (!l || !(j->loaded[j->n_loaded] = strdup(key))))
        rc = store_fail(err, ASR_E_NOMEM, "chunk table: out of memory");
    else if (!rc)
        j->n_loaded++;
    pthread_mutex_unlock(&j->mu);
    free(raw);
    return rc;
}

int store_table_load(struct store_backend *b, struct store_table *t, const uint8_t (*exclude)[STORE_OID_SIZE],
                     size_t n_exclude, uint64_t *objects, struct asr_error *err)
{
    /* gc merges index objects (writes the merged one, then removes the old ones): one removed
     * between the listing and its read is in an object a new listing shows. The objects are read
     * STORE_PARALLEL_READS at once: a fleet's store holds an index object a backup until gc
     * merges them, and each is a round trip. */
    struct load_job j = {.b = b, .t = t, .exclude = exclude, .n_exclude = n_exclude, .again = true};
    pthread_mutex_init(&j.mu, NULL);
    int rc = ASR_OK;
    for (int round = 0; j.again && !rc; round++) {
        j.again = false;
        struct store_object *objs = NULL;
        size_t n = 0, n_todo = 0;
        if ((rc = b->ops->list(b, "index/", &objs, &n, err)))
            break;
        if (j.n_loaded)
            qsort(j.loaded, j.n_loaded, sizeof *j.loaded, name_cmp);
        size_t *todo = malloc((n ? n : 1) * sizeof *todo);
        if (!todo)
            rc = store_fail(err, ASR_E_NOMEM, "chunk table: out of memory");
        for (size_t i = 0; todo && i < n; i++)
            if (!j.n_loaded || !bsearch(&objs[i].key, j.loaded, j.n_loaded, sizeof *j.loaded, name_cmp))
                todo[n_todo++] = i;
        j.objs = objs;
        j.todo = todo;
        j.last_round = round >= 8;
        if (!rc)
            rc = store_parallel(n_todo, STORE_PARALLEL_READS, load_one, &j, err);
        free(todo);
        store_objects_free(objs, n);
    }
    pthread_mutex_destroy(&j.mu);
    for (size_t i = 0; i < j.n_loaded; i++)
        free(j.loaded[i]);
    free(j.loaded);
    if (objects)
        *objects = j.n_loaded;
    return rc;
}
