/* Internal interfaces shared by the store/ modules: the store object (store.c), object names,
 * packs (pack.c), index and condemnation objects and the chunk table (sindex.c, condemn.c), and the
 * chunk source a snapshot reader uses. Nothing here is part of the public API (asr_store.h). */
#ifndef ASR_STORE_INTERNAL_H
#define ASR_STORE_INTERNAL_H

#include "asr_store.h"
#include "backend.h"

#include <limits.h>
#include <pthread.h>

#define store_fail asr_fail_public /* the short name inside store/ */

#define STORE_VERSION 1u
#define STORE_CONFIG_SIZE 96u
#define STORE_KEY_SIZE 32u
#define STORE_OID_SIZE 16u /* pack, index, session and condemnation IDs */
#define STORE_OID_HEX (2 * STORE_OID_SIZE + 1)
#define STORE_KEY_NAME_MAX 256u /* room for any object name the store makes */
#define STORE_DEFAULT_PACK_TARGET (16u << 20)
#define STORE_MIN_PACK_TARGET (64u << 10)
#define STORE_MAX_PACK_TARGET (1u << 30)
#define STORE_HOST_MAX 63u
#define STORE_CHUNK_HEADER_SIZE 64u
#define STORE_MAX_OBJECT (1ull << 30) /* index and condemnation objects read whole: a cap */
#define STORE_LEASE_SECONDS 300     /* a session rewrites its object this often */
#define STORE_LEASE_EXPIRY 1800     /* gc waits for sessions whose lease is younger than this */

struct store_config {
    uint32_t version;
    uint8_t uuid[16];
    uint64_t hash_seed;
    uint8_t key_check[32];
    uint32_t pack_target;
    uint64_t created_unix;
};

struct store_table;

/* The chunk ids (*ids malloc'd, n of them) and data bytes of the snapshot fetched to path. */
typedef int (*store_read_ids_fn)(struct asr_store *s, const char *path, const char *name, struct asr_store_id **ids,
                                 uint64_t *n, uint64_t *logical, struct asr_error *err);

struct asr_store {
    struct store_backend *b;
    struct store_config cfg;
    uint8_t key[STORE_KEY_SIZE];
    char key_path[PATH_MAX];
    /* The chunk table a snapshot reader uses, loaded at its first fetch. */
    pthread_mutex_t load_lock;
    struct store_table *table;
    /* A handle that serves one snapshot (ref.c): the chunks it uses, the only ones its table
     * loads (store_expect); NULL: every chunk of the store. */
    struct asr_store_id *expect;
    size_t n_expect;
    struct store_windows *windows; /* a remote store's pack windows, made with the table */
    /* How a snapshot's ids are read: the image reader (snapread.c); tests give bare ids. */
    store_read_ids_fn read_ids;
};

/* store.c */
void store_config_encode(const struct store_config *c, uint8_t out[STORE_CONFIG_SIZE]);
int store_config_decode(const uint8_t *in, size_t len, struct store_config *c, struct asr_error *err);
/* pack_target: bytes of records per pack (tests make small packs). */
int store_init_with(const char *url, const struct asr_store_options *opt, uint32_t pack_target, char *key_path,
                    size_t key_path_len, struct asr_error *err);
int store_random(void *buf, size_t len, struct asr_error *err);
void store_hex(const uint8_t *b, size_t n, char *out); /* 2n digits and a NUL */
int store_hex_parse(const char *s, uint8_t *out, size_t n); /* exactly 2n lowercase digits: 0, else -1 */
void store_pack_name(const uint8_t id[STORE_OID_SIZE], char out[STORE_KEY_NAME_MAX]);
bool store_host_valid(const char *host);
/* HMAC-SHA-256 of a || b with key (b may be NULL). */
void store_hmac(const uint8_t key[STORE_KEY_SIZE], const void *a, size_t alen, const void *b, size_t blen,
                uint8_t out[32]);
/* Runs one(ctx, i, err) for every i in [0, n) on up to threads threads at once (the caller's
 * among them), each taking the next i; one must be thread-safe. After a failure no new i starts,
 * and the error is that of the lowest i that failed. For work that is a round trip each to a
 * remote store: reading every snapshot or index object. */
#define STORE_PARALLEL_READS 8 /* as many as the S3 backend's default requests in flight */
int store_parallel(size_t n, unsigned threads, int (*one)(void *ctx, size_t i, struct asr_error *err), void *ctx,
                   struct asr_error *err);
/* Removes keys (n of them; those not there are fine) with the backend's del_many, else one del
 * each; *requests grows by the requests made. */
int store_del_many(struct store_backend *b, const char *const *keys, size_t n, uint64_t *requests,
                   struct asr_error *err);
/* An object read whole into a malloc'd buffer, refused when larger than cap. *missing as get's. */
int store_get_whole(struct store_backend *b, const char *key, size_t cap, uint8_t **out, size_t *len, bool *missing,
                    struct asr_error *err);

/* pack.c: a pack being built (records, then entries and trailer), and a pack's trailer read back. */
#define STORE_PACK_ENTRY_SIZE 48u
#define STORE_PACK_TRAILER_SIZE 64u
#define STORE_PACK_VERSION 1u

struct store_entry {
    struct asr_store_id id;
    uint64_t offset;
    uint32_t record_len, content_len;
};

struct store_pack_writer;
int store_pack_writer_new(struct store_pack_writer **out, struct asr_error *err);
void store_pack_writer_free(struct store_pack_writer *pw); /* NULL-safe */
/* Starts a new pack (a fresh ID) after the last one was taken. */
int store_pack_writer_reset(struct store_pack_writer *pw, struct asr_error *err);
/* Appends c's record (ACNK header, chunk_id 0, then its stored bytes) under id. */
int store_pack_add(struct store_pack_writer *pw, const struct asr_store_id *id, const struct asr_chunk *c,
                   struct asr_error *err);
uint64_t store_pack_records_len(const struct store_pack_writer *pw);
size_t store_pack_count(const struct store_pack_writer *pw);
const uint8_t *store_pack_id(const struct store_pack_writer *pw);
const struct store_entry *store_pack_entries(const struct store_pack_writer *pw);
/* Appends the entry table and trailer: *data (len bytes) is the whole pack, valid until reset. */
int store_pack_finish(struct store_pack_writer *pw, const uint8_t **data, size_t *len, struct asr_error *err);

struct store_pack_trailer {
    uint32_t version;
    uint64_t count, entries_offset;
    uint8_t id[STORE_OID_SIZE];
    uint64_t entries_hash;
};
/* The trailer at the end of a pack of pack_size bytes; every field checked against that size. */
int store_pack_trailer_decode(const uint8_t in[STORE_PACK_TRAILER_SIZE], uint64_t pack_size,
                              struct store_pack_trailer *t, struct asr_error *err);
/* The entry table (len bytes, as the trailer places it): hash, records contiguous from 0 to
 * entries_offset, lengths in bounds. *out malloc'd. */
int store_pack_entries_decode(const uint8_t *table, size_t len, const struct store_pack_trailer *t,
                              struct store_entry **out, struct asr_error *err);
/* A stored pack's entries, from its trailer (size: the object's size as listed). */
int store_pack_read_entries(struct store_backend *b, const uint8_t id[STORE_OID_SIZE], uint64_t size,
                            struct store_entry **out, uint64_t *count, struct asr_error *err);

/* sindex.c: index objects (SPEC.md 19.4) and the chunk table loaded from them. */
#define STORE_INDEX_HEADER_SIZE 32u
#define STORE_INDEX_ENTRY_SIZE 56u
#define STORE_INDEX_VERSION 1u

struct store_ientry {
    struct asr_store_id id;
    uint32_t pack; /* a number in the pack table */
    uint32_t record_len;
    uint64_t offset;
    uint32_t content_len;
};

struct store_index {
    uint32_t pack_count;
    uint8_t (*packs)[STORE_OID_SIZE];
    uint64_t count;
    struct store_ientry *entries;
};
int store_index_encode(const struct store_index *ix, uint8_t **out, size_t *len, struct asr_error *err);
/* Every count is checked against len before anything is allocated. */
int store_index_decode(const uint8_t *in, size_t len, struct store_index *ix, struct asr_error *err);
void store_index_free(struct store_index *ix);

struct store_loc {
    uint32_t pack; /* a number in the table's pack list */
    uint32_t record_len, content_len;
    uint64_t offset;
};
/* id -> where, thread-safe (a reader-writer lock: lookups in parallel, inserts one at a time). */
int store_table_new(struct store_table **out, struct asr_error *err);
void store_table_free(struct store_table *t); /* NULL-safe */
/* The number of pack id in the table, added when new; -1 when out of memory. */
int64_t store_table_pack(struct store_table *t, const uint8_t id[STORE_OID_SIZE]);
void store_table_pack_id(struct store_table *t, uint32_t num, uint8_t out[STORE_OID_SIZE]);
uint32_t store_table_pack_count(struct store_table *t);
/* 1: added; 0: id was there (kept as it was); -1: out of memory. */
int store_table_insert(struct store_table *t, const struct asr_store_id *id, const struct store_loc *loc);
/* Before store_table_load: the table keeps only these n chunks (each found where the first index
 * object listing it says), and numbers only their packs; the others are never held. 0, or -1
 * when out of memory. */
int store_table_expect(struct store_table *t, const struct asr_store_id *ids, size_t n);
bool store_table_find(struct store_table *t, const struct asr_store_id *id, struct store_loc *loc);
uint64_t store_table_count(struct store_table *t);
/* Loads every index object of the store into t, leaving out the entries in the packs of exclude
 * (sorted, n_exclude IDs). *objects: the index objects read (may be NULL). */
int store_table_load(struct store_backend *b, struct store_table *t, const uint8_t (*exclude)[STORE_OID_SIZE],
                     size_t n_exclude, uint64_t *objects, struct asr_error *err);
/* The entries of m as new index objects of at most store_index_part entries each (256 Ki: 14 MiB
 * objects; tests make it smaller), each with a pack table of the packs its own entries are in:
 * a reader holds an index object whole while it reads it, several at once, and one for millions
 * of chunks would pass the cap on it (STORE_MAX_OBJECT). *puts counts the objects put. */
#define STORE_INDEX_PART (256u << 10)
extern uint64_t store_index_part;
int store_index_put_parts(struct store_backend *b, const struct store_index *m, uint64_t *puts,
                          struct asr_error *err);
/* The index object of a store key ("index/ID") read and decoded. */
int store_index_get(struct store_backend *b, const char *key, struct store_index *ix, bool *missing,
                    struct asr_error *err);

/* condemn.c: condemnation objects gc/ID (SPEC.md 19.8). */
#define STORE_CONDEMN_HEADER_SIZE 32u
#define STORE_CONDEMN_SESSIONS_LISTED 1u
struct store_condemn {
    uint32_t flags;
    uint64_t pack_count, session_count;
    uint8_t (*packs)[STORE_OID_SIZE];
    uint8_t (*sessions)[STORE_OID_SIZE];
};
int store_condemn_encode(const struct store_condemn *c, uint8_t **out, size_t *len, struct asr_error *err);
int store_condemn_decode(const uint8_t *in, size_t len, struct store_condemn *c, struct asr_error *err);
/* The condemnation object key read and decoded; *missing (ASR_OK) when it is not there. */
int store_condemn_get(struct store_backend *b, const char *key, struct store_condemn *c, bool *missing,
                      struct asr_error *err);
void store_condemn_free(struct store_condemn *c);
/* Every pack any condemnation of the store names, sorted, duplicates removed. */
int store_condemned_packs(struct store_backend *b, uint8_t (**out)[STORE_OID_SIZE], size_t *count,
                          struct asr_error *err);
bool store_oid_in(const uint8_t (*sorted)[STORE_OID_SIZE], size_t n, const uint8_t id[STORE_OID_SIZE]);
int store_oid_cmp(const void *a, const void *b);

/* chunks.c: chunks by id for a snapshot reader (asr_reader_open_external), from the store's
 * index, loaded at the first fetch. fetch and check are thread-safe. */
void store_chunk_source(struct asr_store *s, struct asr_chunk_source *out);
/* Loads the store's chunk table now (else the first fetch does). */
int store_load_table(struct asr_store *s, struct asr_error *err);
/* Before the table loads: s serves one snapshot, whose chunks are ids (n of them; s takes them,
 * malloc'd): the table holds theirs alone, so that reading a snapshot of a fleet's store takes
 * memory for its own chunks, not for every chunk the store holds. Ignored once it has loaded. */
void store_expect(struct asr_store *s, struct asr_store_id *ids, size_t n);

/* list.c: snapshot names. TIME is YYYYmmddTHHMMSSZ, UTC. */
#define STORE_TIME_TEXT 17
void store_time_format(int64_t t, char out[STORE_TIME_TEXT]);
int store_time_parse(const char *text, int64_t *t); /* 0, or -1 when not a TIME */
/* "HOST/TIME": 0 with host (STORE_HOST_MAX + 1 bytes) and time, or -1. */
int store_snapshot_name_parse(const char *name, char *host, int64_t *t);

/* snapread.c: the chunk ids snapshot name uses (*ids malloc'd) and its data bytes (logical),
 * through s->read_ids, which store_read_ids_image is unless a test says otherwise. */
int store_read_ids_image(struct asr_store *s, const char *path, const char *name, struct asr_store_id **ids,
                         uint64_t *n, uint64_t *logical, struct asr_error *err);
/* The same from an open snapshot reader r (name for messages). */
int store_reader_ids(struct asr_store *s, const struct asr_reader *r, const char *name, struct asr_store_id **ids,
                     uint64_t *n, struct asr_error *err);
int store_snapshot_ids(struct asr_store *s, const char *name, struct asr_store_id **ids, uint64_t *n,
                       uint64_t *logical, struct asr_error *err);
/* Fills logical, stored, unique and chunks of snaps. */
int store_snapshot_sizes(struct asr_store *s, struct asr_store_snapshot *snaps, size_t n, struct asr_error *err);

/* usage.c: what the snapshots use (gc, verify). */
struct store_use {
    struct asr_store_id id;
    size_t snap; /* in snaps */
};
/* snapread.c: the chunk ids of snaps[0..n) as (id, snapshot) pairs sorted by id, then snapshot
 * (*uses malloc'd), each snapshot's logical and chunks filled; several snapshots are read at once.
 * The first failure in snapshot order is the error. */
int store_uses_read(struct asr_store *s, struct asr_store_snapshot *snaps, size_t n, struct store_use **uses,
                    size_t *n_uses, struct asr_error *err);
struct store_usage {
    struct asr_store_snapshot *snaps; /* every snapshot, oldest first, logical and chunks filled */
    size_t n_snaps;
    struct store_use *uses; /* sorted by id, then snapshot */
    size_t n_uses;
};
int store_usage_read(struct asr_store *s, struct store_usage *u, struct asr_error *err);
bool store_usage_has(const struct store_usage *u, const struct asr_store_id *id);
void store_usage_free(struct store_usage *u);

struct store_pack {
    uint8_t id[STORE_OID_SIZE];
    uint64_t size;
};
/* The store's packs, sorted by ID. */
int store_packs_list(struct store_backend *b, struct store_pack **out, size_t *count, struct asr_error *err);
const struct store_pack *store_packs_find(const struct store_pack *p, size_t n, const uint8_t id[STORE_OID_SIZE]);

/* Every index object, decoded, with its name. */
struct store_indexes {
    char **keys;
    struct store_index *ix;
    size_t n;
};
int store_indexes_read(struct store_backend *b, struct store_indexes *x, struct asr_error *err);
void store_indexes_free(struct store_indexes *x);
/* The packs that hold, by any listing, a chunk u uses: sorted, unique. */
int store_used_packs(const struct store_usage *u, const struct store_indexes *x, uint8_t (**out)[STORE_OID_SIZE],
                     size_t *count, struct asr_error *err);

/* session.c, for tests: pretends the session's lease was last renewed seconds ago; sets the
 * time its snapshot is named after; renews the lease every seconds; waits for the packs handed to
 * the upload threads so far (their first error, if any). */
void store_session_age(struct asr_store_session *ss, int64_t seconds);
void store_session_set_start(struct asr_store_session *ss, int64_t t);
void store_session_lease_every(struct asr_store_session *ss, int seconds);
int store_session_uploads_wait(struct asr_store_session *ss, struct asr_error *err);

/* snapfile.c: a snapshot's stream to and from the object the store keeps (one zstd frame). */
int store_snapshot_pack(const char *from, const char *to, struct asr_error *err);
int store_snapshot_unpack(const char *from, const char *to, const char *name, struct asr_error *err);

#endif
