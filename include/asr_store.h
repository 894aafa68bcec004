/* Public API of the chunk store (store/): many snapshots, each logically a complete image, with
 * every chunk kept once. A store is a directory or an S3 bucket prefix with the same layout
 * (SPEC.md section 19). A snapshot is an .asrimg stream with the feature "external-chunks"
 * (SPEC.md section 19.6): its layout, volume table and index as in a file, and instead of chunk
 * records the store ids of the chunks it uses; the chunks themselves live in the store's packs.
 *
 * Chunk identity in a store is HMAC-SHA-256 of the chunk's content, keyed by the store's secret
 * key (a file kept by the clients, never in the store): ids reveal nothing about content to whoever
 * can only list the store, and no client can make a chunk of other content pass for one it names
 * (every read checks the content against its id).
 *
 * No lock anywhere: correctness never depends on a single writer. Objects are written whole and
 * never changed (a directory store writes a temporary name and renames it); a snapshot is written
 * last, so one that is there is complete; gc deletes only what no running backup can still use
 * (SPEC.md section 19.8). */
#ifndef ASR_STORE_H
#define ASR_STORE_H

#include "asr_format.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASR_STORE_ID_SIZE 32u

struct asr_store_id {
    uint8_t b[ASR_STORE_ID_SIZE];
};

struct asr_store;

/* ---- opening ------------------------------------------------------------------------------- */

/* Where the store is: "DIR" (a path) or "s3://bucket/prefix". S3 settings come from the
 * environment as the AWS tools read them (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
 * AWS_ENDPOINT_URL, ~/.aws/credentials) unless given here. */
struct asr_store_options {
    const char *key_file; /* NULL: ASRIMG_STORE_KEY_FILE, else the default for the store's uuid */
    const char *endpoint; /* S3 only; NULL: AWS_ENDPOINT_URL, else AWS */
    const char *region;   /* S3 only; NULL: AWS_REGION, else us-east-1 */
    unsigned requests;    /* requests in flight; 0: 8 */
};

/* Creates an empty store at url (refused where one is, or where a directory is not empty) and a
 * new random key, written to key_file (default: $HOME/.config/asrimg/store-UUID.key, mode 0600,
 * never overwritten). key_path receives the key file's path. */
int asr_store_init(const char *url, const struct asr_store_options *opt, char *key_path, size_t key_path_len,
                   struct asr_error *err);
/* Opens a store: reads its config, loads the key and checks it against the config (a key of another
 * store is refused, naming the key file). */
int asr_store_open(const char *url, const struct asr_store_options *opt, struct asr_store **out,
                   struct asr_error *err);
void asr_store_close(struct asr_store *s); /* NULL-safe */

const char *asr_store_url(const struct asr_store *s);
/* The XXH3 seed every snapshot of this store uses (chunks are shared, so their content hashes are). */
uint64_t asr_store_hash_seed(const struct asr_store *s);
void asr_store_uuid(const struct asr_store *s, uint8_t uuid[16]);

/* The store id of content (HMAC-SHA-256 with the store's key). Thread-safe. */
void asr_store_chunk_id(const struct asr_store *s, const void *content, size_t len, struct asr_store_id *out);

/* ---- writing a snapshot (a backup or an import) -------------------------------------------- */

struct asr_store_session;

/* Starts a snapshot of host: announces the session (SPEC.md 19.8), then loads the store's chunk
 * index, leaving out chunks gc has condemned. */
int asr_store_session_begin(struct asr_store *s, const char *host, struct asr_store_session **out,
                            struct asr_error *err);
/* Whether the store (or this session) already holds id; its content length and the stored
 * length of its record (a snapshot's chunk table names both) when it does. Thread-safe with
 * respect to other lookups and to asr_store_session_put. */
bool asr_store_session_has(struct asr_store_session *ss, const struct asr_store_id *id, uint32_t *content_len,
                           uint32_t *stored_len);
/* Adds a new chunk (as encoded by asr_chunk_encode, with the store's seed) to the current pack;
 * a full pack goes to the session's upload threads (this waits only while three are out). A chunk
 * already held is not added again (ASR_OK). An upload that failed is reported here, by every call
 * after it, naming the object. Called from one thread (the backup's ordered writer). */
int asr_store_session_put(struct asr_store_session *ss, const struct asr_store_id *id, const struct asr_chunk *c,
                          struct asr_error *err);
/* Uploads the last pack, waits for every upload (the first that failed fails the commit, and no
 * snapshot is made), uploads the session's index, checks that nothing this snapshot uses has been
 * deleted meanwhile, then stores the snapshot file at manifest_path as HOST/TIME and ends the
 * session. name receives "HOST/TIME". */
int asr_store_session_commit(struct asr_store_session *ss, const char *manifest_path, char *name, size_t name_len,
                             struct asr_error *err);
/* Ends a session without a snapshot (NULL-safe), after the uploads it handed off have finished;
 * what it uploaded is reused by the next backup or freed by gc. */
void asr_store_session_free(struct asr_store_session *ss);

struct asr_store_session_stats {
    uint64_t chunks_new, bytes_new;       /* content bytes of chunks added */
    uint64_t stored_new;                  /* their stored (compressed) bytes */
    uint64_t chunks_known, bytes_known;   /* lookups that found a chunk already stored */
    uint64_t packs, requests;             /* objects written, requests made */
};
void asr_store_session_stats(const struct asr_store_session *ss, struct asr_store_session_stats *st);

/* ---- reading a snapshot --------------------------------------------------------------------- */

/* A local copy of snapshot name ("HOST/TIME") at path (a temporary file the caller removes), to
 * open with asr_store_reader_open. */
int asr_store_fetch_snapshot(struct asr_store *s, const char *name, const char *path, struct asr_error *err);
/* Opens a fetched snapshot: the image reader, with chunks read from the store and checked
 * against their ids. The store must outlive the reader. */
int asr_store_reader_open(struct asr_store *s, const char *manifest_path, struct asr_reader **out,
                          struct asr_error *err);

/* ---- listing and maintenance ----------------------------------------------------------------- */

struct asr_store_snapshot {
    char name[256];     /* HOST/TIME */
    char host[128];
    int64_t time;       /* unix seconds, from the name */
    uint64_t logical;   /* data bytes of its volumes (before dedup) */
    uint64_t stored;    /* stored bytes of the chunks it uses */
    uint64_t unique;    /* stored bytes of chunks no other snapshot uses */
    uint64_t chunks;
};
/* Snapshots, oldest first; host NULL: all. *out is malloc'd. with_sizes: read every snapshot
 * to fill logical/stored/unique (else only the names). */
int asr_store_list(struct asr_store *s, const char *host, bool with_sizes, struct asr_store_snapshot **out,
                   size_t *count, struct asr_error *err);

struct asr_store_keep {
    unsigned last, daily, weekly, monthly; /* 0: that rule keeps nothing */
};
/* Which of snaps (oldest first, one host's) the rules keep: keep[i] true or false. Pure: the
 * calendar is UTC; a day, ISO week or month keeps its newest snapshot, for the newest N of them. */
void asr_store_keep_select(const struct asr_store_snapshot *snaps, size_t n, const struct asr_store_keep *rules,
                           bool *keep);
/* Deletes the snapshots the rules do not keep, for each host (or only host). dry_run: only says. */
struct asr_store_prune_report {
    size_t kept, removed;
};
int asr_store_prune(struct asr_store *s, const char *host, const struct asr_store_keep *rules, bool dry_run,
                    struct asr_store_prune_report *rep, struct asr_error *err);

/* Frees chunks no snapshot uses: condemns the packs no snapshot needs, and deletes packs
 * condemned by an earlier gc once every backup that could have used them has ended
 * (SPEC.md 19.8). */
struct asr_store_gc_report {
    uint64_t packs_condemned, packs_deleted, bytes_deleted, packs_waiting;
    uint64_t sessions_running, sessions_expired;
    uint64_t temporaries_removed; /* unfinished files of crashed writers (a directory store's tmp/) */
};
int asr_store_gc(struct asr_store *s, struct asr_store_gc_report *rep, struct asr_error *err);

/* Checks every snapshot's chunks exist (read_data: and read and check each), calling problem
 * once per damaged or missing chunk with the snapshots that use it. Returns ASR_OK when clean,
 * ASR_E_CORRUPT when anything was named. */
typedef void (*asr_store_problem_fn)(const char *what, const struct asr_store_id *id, const char *snapshots,
                                     void *ctx);
struct asr_store_verify_report {
    uint64_t snapshots, chunks, packs, bytes_read, damaged, missing;
};
int asr_store_verify(struct asr_store *s, bool read_data, asr_store_problem_fn problem, void *ctx,
                     struct asr_store_verify_report *rep, struct asr_error *err);

/* "STORE::SNAPSHOT" split at its last "::": true and both parts (caller frees) when it is one. */
bool asr_store_split_ref(const char *ref, char **store, char **snapshot);

/* A snapshot named "STORE::HOST/TIME" opened for reading in one call (store options from the
 * environment: ASRIMG_STORE_KEY_FILE, AWS_*): the store, the snapshot fetched into a temporary
 * file (removed at once; the reader keeps it open) and its reader. HOST/TIME may be "HOST/latest"
 * or "latest" (the newest snapshot, of HOST or of any host). */
struct asr_store_ref;
int asr_store_ref_open(const char *ref, struct asr_store_ref **out, struct asr_error *err);
struct asr_reader *asr_store_ref_reader(struct asr_store_ref *r);
struct asr_store *asr_store_ref_store(struct asr_store_ref *r);
const char *asr_store_ref_name(const struct asr_store_ref *r); /* "STORE::HOST/TIME", resolved */
/* Closes the reader, then the store. */
void asr_store_ref_free(struct asr_store_ref *r); /* NULL-safe */
/* asr_verify for a snapshot "STORE::HOST/TIME": its structure, every chunk it uses read from the
 * store and checked against its id, every volume's content hash (asr_verify_external). */
int asr_store_verify_snapshot(const char *ref, asr_problem_fn on_problem, void *problem_ctx,
                              asr_progress_fn on_progress, void *progress_ctx, struct asr_verify_report *report,
                              struct asr_error *err);
/* True when ref names a store snapshot rather than an image file (it contains "::"). */
bool asr_store_is_ref(const char *ref);

#ifdef __cplusplus
}
#endif

#endif
