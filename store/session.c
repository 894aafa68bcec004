/* Backup sessions (SPEC.md 19.4, 19.6, 19.8): a session object announced first and renewed by a
 * lease thread, the condemnations and then the index read into a chunk table (condemned packs left
 * out), new chunks packed and each full pack handed to upload threads, which upload it and then an
 * index object of its own, and at commit, once every upload is done, one index object for the
 * session's packs (the per-pack ones removed), a check that the packs it reused still exist when
 * its lease lapsed, and the snapshot, uploaded last under a name nobody holds. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "grow.h"

/* Packs upload while the next one fills: a PUT of 16 MiB would otherwise stall the backup's
 * writer, and with it the whole pipeline (on S3 the servers' own CPU shares the machine too).
 * Two threads keep two PUTs in flight; at most UPLOADS_IN_FLIGHT finished packs wait or upload at
 * once (each keeps its buffer, so memory stays under UPLOADS_IN_FLIGHT + 1 packs), and the writer
 * waits only when that many are out. A directory store uploads the same way: its put writes and
 * syncs a 16 MiB file, which then overlaps the compression too, and measured it did not hurt
 * (first backup of the 1 GiB bench disk, three alternated rounds on the loaded 2-core machine:
 * median 3.86 s against 4.10 s with the put on the writer thread). */
#define UPLOAD_THREADS 2
#define UPLOADS_IN_FLIGHT 3

/* A finished pack handed to the upload threads: the writer that built it (its buffer and entries,
 * valid until it is reset) and the name of its index object. */
struct upload {
    struct store_pack_writer *pw;
    const uint8_t *data;
    size_t len;
    char index_key[STORE_KEY_NAME_MAX];
};

struct asr_store_session {
    struct asr_store *s;
    struct store_backend *b;
    char host[STORE_HOST_MAX + 1];
    char session_key[STORE_KEY_NAME_MAX];
    int64_t start; /* the snapshot's time: the client's clock at begin, UTC */

    struct store_table *table;
    uint32_t known_packs; /* packs numbered below this were in the store at begin */
    uint8_t *used;        /* per known pack: this snapshot reuses a chunk of it */

    struct store_pack_writer *pw; /* the pack being filled */
    int64_t cur_pack; /* the table's number of pw's pack once it holds a chunk, else -1 */

    /* Uploads: a queue of finished packs, served by the upload threads in order. The first
     * upload that fails is kept (up_err) and every later one skipped; put and commit report it. */
    pthread_t uploader[UPLOAD_THREADS];
    int n_uploaders;
    pthread_mutex_t up_mu;
    pthread_cond_t up_work, up_done;
    struct upload queue[UPLOADS_IN_FLIGHT];
    size_t q_head, q_len;
    unsigned in_flight;                                 /* queued or uploading */
    struct store_pack_writer *spare[UPLOADS_IN_FLIGHT]; /* writers back from their upload */
    size_t n_spare;
    bool up_stop;
    int up_failed; /* atomic: up_rc is set, read without up_mu at every put */
    int up_rc;
    struct asr_error up_err;

    /* Every pack this session handed to the uploads, and their entries, for its index at commit. */
    uint8_t (*packs)[STORE_OID_SIZE];
    size_t n_packs, packs_cap;
    struct store_ientry *entries;
    size_t n_entries, entries_cap;
    char (*pack_index)[STORE_KEY_NAME_MAX]; /* the per-pack index objects */
    size_t pack_index_cap;

    /* The lease: the thread rewrites the session object every STORE_LEASE_SECONDS. */
    pthread_t lease;
    bool lease_running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    int lease_seconds; /* STORE_LEASE_SECONDS; tests shorten it */
    int64_t renewed;   /* CLOCK_BOOTTIME seconds (counts a suspend) of the last renewal */
    int64_t worst_gap; /* the longest time between renewals seen */

    struct asr_store_session_stats st;
    bool committed;
};

/* The lease thread makes requests too. */
static void count_request(struct asr_store_session *ss) { __atomic_fetch_add(&ss->st.requests, 1, __ATOMIC_RELAXED); }

static int64_t boot_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static void session_text(const struct asr_store_session *ss, char *out, size_t n)
{
    snprintf(out, n, "asrimg session 1\nhost %s\nstart %lld\n", ss->host, (long long)ss->start);
}

static int session_write(struct asr_store_session *ss, struct asr_error *err)
{
    char text[160];
    session_text(ss, text, sizeof text);
    return ss->b->ops->put(ss->b, ss->session_key, text, strlen(text), err);
}

/* Notes a renewal at now, keeping the longest gap between two. Called with lock held. */
static void renewed_at(struct asr_store_session *ss, int64_t now)
{
    if (now - ss->renewed > ss->worst_gap)
        ss->worst_gap = now - ss->renewed;
    ss->renewed = now;
}

static void *lease_thread(void *arg)
{
    struct asr_store_session *ss = arg;
    pthread_mutex_lock(&ss->lock);
    while (!ss->stop) {
        struct timespec since;
        clock_gettime(CLOCK_MONOTONIC, &since);
        int w = 0;
        /* The deadline is taken again at each wake-up: a new lease_seconds counts at once. */
        while (!ss->stop && w != ETIMEDOUT) {
            struct timespec until = since;
            until.tv_sec += ss->lease_seconds;
            w = pthread_cond_timedwait(&ss->wake, &ss->lock, &until);
        }
        if (ss->stop)
            break;
        pthread_mutex_unlock(&ss->lock);
        struct asr_error err = {0};
        /* A failed renewal is only a lapse: the commit then checks what gc could have taken. */
        int rc = session_write(ss, &err);
        pthread_mutex_lock(&ss->lock);
        count_request(ss);
        if (!rc)
            renewed_at(ss, boot_seconds());
    }
    pthread_mutex_unlock(&ss->lock);
    return NULL;
}

static void lease_stop(struct asr_store_session *ss)
{
    if (!ss->lease_running)
        return;
    pthread_mutex_lock(&ss->lock);
    ss->stop = true;
    pthread_cond_signal(&ss->wake);
    pthread_mutex_unlock(&ss->lock);
    pthread_join(ss->lease, NULL);
    ss->lease_running = false;
}

void store_session_age(struct asr_store_session *ss, int64_t seconds)
{
    pthread_mutex_lock(&ss->lock);
    ss->renewed -= seconds;
    pthread_mutex_unlock(&ss->lock);
}

void store_session_set_start(struct asr_store_session *ss, int64_t t) { ss->start = t; }

void store_session_lease_every(struct asr_store_session *ss, int seconds)
{
    pthread_mutex_lock(&ss->lock);
    ss->lease_seconds = seconds;
    pthread_cond_signal(&ss->wake);
    pthread_mutex_unlock(&ss->lock);
}

/* ---- uploads ------------------------------------------------------------------------------- */

/* Uploads one finished pack and then its own index object (SPEC.md 19.4: a backup interrupted
 * later leaves its chunks findable; an index never names a pack that is not there yet). Runs on
 * an upload thread. */
static int pack_upload(struct asr_store_session *ss, const struct upload *u, struct asr_error *err)
{
    const uint8_t *id = store_pack_id(u->pw);
    char key[STORE_KEY_NAME_MAX];
    store_pack_name(id, key);
    int rc = ss->b->ops->put(ss->b, key, u->data, u->len, err);
    if (rc)
        return rc;
    count_request(ss);
    size_t count = store_pack_count(u->pw);
    const struct store_entry *entries = store_pack_entries(u->pw);
    struct store_ientry *ie = malloc(count * sizeof *ie);
    if (!ie)
        return store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    for (size_t i = 0; i < count; i++)
        ie[i] = (struct store_ientry){.id = entries[i].id,
                                      .pack = 0,
                                      .record_len = entries[i].record_len,
                                      .offset = entries[i].offset,
                                      .content_len = entries[i].content_len};
    uint8_t packs[1][STORE_OID_SIZE];
    memcpy(packs[0], id, STORE_OID_SIZE);
    struct store_index ix = {.pack_count = 1, .packs = packs, .count = count, .entries = ie};
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (!(rc = store_index_encode(&ix, &raw, &raw_len, err)) &&
        !(rc = ss->b->ops->put(ss->b, u->index_key, raw, raw_len, err)))
        count_request(ss);
    free(raw);
    free(ie);
    return rc;
}

static void *upload_thread(void *arg)
{
    struct asr_store_session *ss = arg;
    pthread_mutex_lock(&ss->up_mu);
    for (;;) {
        while (!ss->q_len && !ss->up_stop)
            pthread_cond_wait(&ss->up_work, &ss->up_mu);
        if (!ss->q_len) /* stopping, and nothing left to upload */
            break;
        struct upload u = ss->queue[ss->q_head];
        ss->q_head = (ss->q_head + 1) % UPLOADS_IN_FLIGHT;
        ss->q_len--;
        bool skip = ss->up_rc != ASR_OK; /* the session cannot commit: save the requests */
        pthread_mutex_unlock(&ss->up_mu);
        struct asr_error err = {0};
        int rc = ASR_OK;
        if (!skip)
            rc = pack_upload(ss, &u, &err);
        pthread_mutex_lock(&ss->up_mu);
        if (rc && !ss->up_rc) {
            ss->up_rc = rc;
            ss->up_err = err;
            __atomic_store_n(&ss->up_failed, 1, __ATOMIC_RELEASE);
        }
        if (!rc && !skip)
            __atomic_fetch_add(&ss->st.packs, 1, __ATOMIC_RELAXED);
        ss->spare[ss->n_spare++] = u.pw;
        ss->in_flight--;
        pthread_cond_broadcast(&ss->up_done);
    }
    pthread_mutex_unlock(&ss->up_mu);
    return NULL;
}

/* The first upload error, if any (copied into err). */
static int upload_error(struct asr_store_session *ss, struct asr_error *err)
{
    if (!__atomic_load_n(&ss->up_failed, __ATOMIC_ACQUIRE))
        return ASR_OK;
    pthread_mutex_lock(&ss->up_mu);
    int rc = ss->up_rc;
    *err = ss->up_err;
    pthread_mutex_unlock(&ss->up_mu);
    return rc;
}

/* Waits until every pack handed off is uploaded (or skipped after a failure). */
static int uploads_wait(struct asr_store_session *ss, struct asr_error *err)
{
    pthread_mutex_lock(&ss->up_mu);
    while (ss->in_flight)
        pthread_cond_wait(&ss->up_done, &ss->up_mu);
    pthread_mutex_unlock(&ss->up_mu);
    return upload_error(ss, err);
}

int store_session_uploads_wait(struct asr_store_session *ss, struct asr_error *err) { return uploads_wait(ss, err); }

/* Lets the upload threads finish what was handed off, and joins them. */
static void uploads_stop(struct asr_store_session *ss)
{
    pthread_mutex_lock(&ss->up_mu);
    ss->up_stop = true;
    pthread_cond_broadcast(&ss->up_work);
    pthread_mutex_unlock(&ss->up_mu);
    for (int i = 0; i < ss->n_uploaders; i++)
        pthread_join(ss->uploader[i], NULL);
    ss->n_uploaders = 0;
}

/* Waits, with up_mu held, while UPLOADS_IN_FLIGHT are out; the first upload error, if any. */
static int wait_room(struct asr_store_session *ss)
{
    while (ss->in_flight == UPLOADS_IN_FLIGHT && !ss->up_rc)
        pthread_cond_wait(&ss->up_done, &ss->up_mu);
    return ss->up_rc;
}

/* Queues u, with up_mu held and room for it. */
static void push(struct asr_store_session *ss, const struct upload *u)
{
    ss->queue[(ss->q_head + ss->q_len) % UPLOADS_IN_FLIGHT] = *u;
    ss->q_len++;
    ss->in_flight++;
    pthread_cond_signal(&ss->up_work);
}

/* Queues the finished pack of ss->pw (data, len bytes) for upload, waiting while
 * UPLOADS_IN_FLIGHT are out, and gives ss->pw a new pack to fill: a writer back from its upload,
 * else a new one. */
static int hand_off(struct asr_store_session *ss, const uint8_t *data, size_t len, const char *index_key,
                    struct asr_error *err)
{
    pthread_mutex_lock(&ss->up_mu);
    int rc = wait_room(ss);
    struct store_pack_writer *next = !rc && ss->n_spare ? ss->spare[--ss->n_spare] : NULL;
    pthread_mutex_unlock(&ss->up_mu);
    if (rc)
        return upload_error(ss, err);
    /* Only this thread queues: the room found above stays. */
    rc = next ? store_pack_writer_reset(next, err) : store_pack_writer_new(&next, err);
    pthread_mutex_lock(&ss->up_mu);
    if (rc) {
        if (next)
            ss->spare[ss->n_spare++] = next;
    } else {
        struct upload u = {.pw = ss->pw, .data = data, .len = len};
        snprintf(u.index_key, sizeof u.index_key, "%s", index_key);
        push(ss, &u);
        ss->pw = next;
    }
    pthread_mutex_unlock(&ss->up_mu);
    return rc;
}

/* A directory store on exFAT or FAT (names compared without case) would put a host whose name
 * differs from another's only by case into the other's directory, where list, prune and restore
 * take its snapshots for the other host's: prune would weigh two machines' snapshots as one's.
 * Refused before anything is written. An object store, or a filesystem that tells the two apart,
 * does not find the other host's snapshot under this host's spelling. */
static int host_distinct(struct store_backend *b, const char *host, struct asr_error *err)
{
    if (b->remote)
        return ASR_OK;
    struct store_object *o;
    size_t n, len = strlen(host);
    int rc = b->ops->list(b, "snapshots/", &o, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *h = o[i].key + strlen("snapshots/"), *slash = strchr(h, '/');
        if (!slash || (size_t)(slash - h) != len || strncasecmp(h, host, len) || !strncmp(h, host, len))
            continue;
        char key[STORE_KEY_NAME_MAX];
        uint8_t byte;
        size_t got = 0;
        bool missing = false;
        struct asr_error probe = {0};
        snprintf(key, sizeof key, "snapshots/%s%s", host, slash);
        if (!b->ops->get(b, key, 0, &byte, 1, &got, &missing, &probe) && got == 1)
            rc = store_fail(err, ASR_E_ARG,
                            "%s: host \"%s\" and the store's host \"%.*s\" differ only by case, which the filesystem "
                            "under the store does not tell apart: back up as \"%.*s\" (--host), or give this machine "
                            "another name",
                            b->url, host, (int)len, h, (int)len, h);
        break; /* one snapshot of that spelling tells */
    }
    store_objects_free(o, n);
    return rc;
}

int asr_store_session_begin(struct asr_store *s, const char *host, struct asr_store_session **out,
                            struct asr_error *err)
{
    *out = NULL;
    if (!host || !store_host_valid(host))
        return store_fail(err, ASR_E_ARG,
                          "host name \"%s\": 1 to 63 of A-Z a-z 0-9 . _ -, not starting with a dot (give --host)",
                          host ? host : "");
    struct asr_store_session *ss = calloc(1, sizeof *ss);
    if (!ss)
        return store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    ss->s = s;
    ss->b = s->b;
    ss->cur_pack = -1;
    snprintf(ss->host, sizeof ss->host, "%s", host);
    ss->start = (int64_t)time(NULL);
    pthread_mutex_init(&ss->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the wall clock may step meanwhile */
    pthread_cond_init(&ss->wake, &ca);
    pthread_condattr_destroy(&ca);
    ss->renewed = boot_seconds();
    ss->lease_seconds = STORE_LEASE_SECONDS;
    pthread_mutex_init(&ss->up_mu, NULL);
    pthread_cond_init(&ss->up_work, NULL);
    pthread_cond_init(&ss->up_done, NULL);

    uint8_t sid[STORE_OID_SIZE];
    char hex[STORE_OID_HEX];
    int rc = store_random(sid, sizeof sid, err);
    store_hex(sid, sizeof sid, hex);
    snprintf(ss->session_key, sizeof ss->session_key, "sessions/%s", hex);
    if (!rc)
        rc = host_distinct(ss->b, host, err);
    /* The order is the rule of SPEC.md 19.8: session object, then condemnations, then index. */
    if (!rc && !(rc = session_write(ss, err)))
        count_request(ss);
    /* Renewed from now on: reading a large index takes a while too. */
    if (!rc) {
        if (pthread_create(&ss->lease, NULL, lease_thread, ss))
            rc = store_fail(err, ASR_E_NOMEM, "store session: cannot start the lease thread");
        else
            ss->lease_running = true;
    }
    uint8_t(*condemned)[STORE_OID_SIZE] = NULL;
    size_t n_condemned = 0;
    if (!rc)
        rc = store_condemned_packs(ss->b, &condemned, &n_condemned, err);
    if (!rc)
        rc = store_table_new(&ss->table, err);
    if (!rc)
        rc = store_table_load(ss->b, ss->table, (const uint8_t(*)[STORE_OID_SIZE])condemned, n_condemned, NULL, err);
    free(condemned);
    if (!rc) {
        ss->known_packs = store_table_pack_count(ss->table);
        if (!(ss->used = calloc(ss->known_packs + 1, 1)))
            rc = store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    }
    if (!rc)
        rc = store_pack_writer_new(&ss->pw, err);
    for (int i = 0; !rc && i < UPLOAD_THREADS; i++) {
        if (pthread_create(&ss->uploader[i], NULL, upload_thread, ss))
            rc = store_fail(err, ASR_E_NOMEM, "store session: cannot start an upload thread");
        else
            ss->n_uploaders++;
    }
    if (rc) {
        asr_store_session_free(ss);
        return rc;
    }
    *out = ss;
    return ASR_OK;
}

/* Notes that the snapshot reuses a chunk of a pack that was in the store at begin. */
static void mark_used(struct asr_store_session *ss, const struct store_loc *loc)
{
    if (loc->pack < ss->known_packs)
        __atomic_store_n(&ss->used[loc->pack], 1, __ATOMIC_RELAXED);
}

bool asr_store_session_has(struct asr_store_session *ss, const struct asr_store_id *id, uint32_t *content_len,
                           uint32_t *stored_len)
{
    struct store_loc loc;
    if (!store_table_find(ss->table, id, &loc))
        return false;
    mark_used(ss, &loc);
    __atomic_fetch_add(&ss->st.chunks_known, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ss->st.bytes_known, loc.content_len, __ATOMIC_RELAXED);
    if (content_len)
        *content_len = loc.content_len;
    if (stored_len) /* the table keeps only entries whose record holds at least its header */
        *stored_len = loc.record_len - STORE_CHUNK_HEADER_SIZE;
    return true;
}

/* Closes the current pack, keeps its entries for the session's index, and hands it to the
 * uploads. */
static int pack_flush(struct asr_store_session *ss, struct asr_error *err)
{
    size_t count = store_pack_count(ss->pw);
    if (!count)
        return ASR_OK;
    const uint8_t *data;
    size_t len;
    int rc = store_pack_finish(ss->pw, &data, &len, err);
    if (rc)
        return rc;
    uint8_t(*packs)[STORE_OID_SIZE] = asr_grow(ss->packs, &ss->packs_cap, ss->n_packs + 1, STORE_OID_SIZE, 16);
    if (packs)
        ss->packs = packs;
    size_t idx_cap = ss->pack_index_cap;
    char(*pix)[STORE_KEY_NAME_MAX] =
        packs ? asr_grow(ss->pack_index, &idx_cap, ss->n_packs + 1, STORE_KEY_NAME_MAX, 16) : NULL;
    if (pix) {
        ss->pack_index = pix;
        ss->pack_index_cap = idx_cap;
    }
    struct store_ientry *ie = pix ? asr_grow(ss->entries, &ss->entries_cap, ss->n_entries + count, sizeof *ie, 256)
                                  : NULL;
    if (!ie)
        return store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    ss->entries = ie;
    uint8_t oid[STORE_OID_SIZE];
    char hex[STORE_OID_HEX];
    if ((rc = store_random(oid, sizeof oid, err)))
        return rc;
    store_hex(oid, sizeof oid, hex);
    snprintf(ss->pack_index[ss->n_packs], STORE_KEY_NAME_MAX, "index/%s", hex);
    memcpy(ss->packs[ss->n_packs], store_pack_id(ss->pw), STORE_OID_SIZE);
    const struct store_entry *e = store_pack_entries(ss->pw);
    for (size_t i = 0; i < count; i++)
        ie[ss->n_entries + i] = (struct store_ientry){.id = e[i].id,
                                                      .pack = (uint32_t)ss->n_packs,
                                                      .record_len = e[i].record_len,
                                                      .offset = e[i].offset,
                                                      .content_len = e[i].content_len};
    if ((rc = hand_off(ss, data, len, ss->pack_index[ss->n_packs], err)))
        return rc;
    ss->n_entries += count;
    ss->n_packs++;
    ss->cur_pack = -1;
    return ASR_OK;
}

int asr_store_session_put(struct asr_store_session *ss, const struct asr_store_id *id, const struct asr_chunk *c,
                          struct asr_error *err)
{
    if (ss->committed)
        return store_fail(err, ASR_E_STATE, "store session: put after commit");
    int rc = upload_error(ss, err);
    if (rc)
        return rc;
    struct store_loc known;
    if (store_table_find(ss->table, id, &known)) {
        mark_used(ss, &known);
        ss->st.chunks_known++;
        ss->st.bytes_known += c->content_len;
        return ASR_OK;
    }
    uint64_t offset = store_pack_records_len(ss->pw);
    rc = store_pack_add(ss->pw, id, c, err);
    if (rc)
        return rc;
    if (ss->cur_pack < 0 && (ss->cur_pack = store_table_pack(ss->table, store_pack_id(ss->pw))) < 0)
        return store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    struct store_loc loc = {.pack = (uint32_t)ss->cur_pack,
                            .record_len = STORE_CHUNK_HEADER_SIZE + c->stored_len,
                            .content_len = c->content_len,
                            .offset = offset};
    if (store_table_insert(ss->table, id, &loc) < 0)
        return store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    ss->st.chunks_new++;
    ss->st.bytes_new += c->content_len;
    ss->st.stored_new += c->stored_len;
    if (store_pack_records_len(ss->pw) >= ss->s->cfg.pack_target)
        return pack_flush(ss, err);
    return ASR_OK;
}

/* The session's packs in one index object (a backup of millions of new chunks: several,
 * store_index_put_parts); the per-pack ones then go (one pack: its own stays), in one batch
 * delete (S3: one request a thousand). */
static int write_session_index(struct asr_store_session *ss, struct asr_error *err)
{
    if (ss->n_packs <= 1)
        return ASR_OK;
    struct store_index ix = {.pack_count = (uint32_t)ss->n_packs,
                             .packs = ss->packs,
                             .count = ss->n_entries,
                             .entries = ss->entries};
    uint64_t puts = 0;
    int rc = store_index_put_parts(ss->b, &ix, &puts, err);
    __atomic_fetch_add(&ss->st.requests, puts, __ATOMIC_RELAXED);
    const char **keys = rc ? NULL : malloc(ss->n_packs * sizeof *keys);
    if (!rc && !keys)
        rc = store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    for (size_t i = 0; keys && i < ss->n_packs; i++)
        keys[i] = ss->pack_index[i];
    uint64_t requests = 0;
    if (!rc)
        rc = store_del_many(ss->b, keys, ss->n_packs, &requests, err);
    __atomic_fetch_add(&ss->st.requests, requests, __ATOMIC_RELAXED);
    free(keys);
    return rc;
}

/* The first of n packs (IDs from pack_id) that is not in have (sorted), or -1. */
static int64_t first_gone(const uint8_t (*have)[STORE_OID_SIZE], size_t m, struct asr_store_session *ss, size_t n,
                          bool own)
{
    for (size_t p = 0; p < n; p++) {
        uint8_t id[STORE_OID_SIZE];
        if (own)
            memcpy(id, ss->packs[p], STORE_OID_SIZE);
        else if (ss->used[p])
            store_table_pack_id(ss->table, (uint32_t)p, id);
        else
            continue;
        if (!store_oid_in(have, m, id))
            return (int64_t)p;
    }
    return -1;
}

/* When the lease lapsed, a gc may have deleted packs this snapshot reuses, and the packs the
 * session uploaded itself (no snapshot used them yet): each must still be there (SPEC.md 19.8). */
static int check_reused(struct asr_store_session *ss, struct asr_error *err)
{
    pthread_mutex_lock(&ss->lock);
    renewed_at(ss, boot_seconds());
    bool lapsed = ss->worst_gap > STORE_LEASE_EXPIRY - 2 * STORE_LEASE_SECONDS;
    pthread_mutex_unlock(&ss->lock);
    if (!lapsed)
        return ASR_OK;
    struct store_object *objs = NULL;
    size_t n = 0;
    int rc = ss->b->ops->list(ss->b, "packs/", &objs, &n, err);
    if (rc)
        return rc;
    count_request(ss);
    uint8_t(*have)[STORE_OID_SIZE] = malloc((n ? n : 1) * STORE_OID_SIZE);
    size_t m = 0;
    for (size_t i = 0; have && i < n; i++) {
        const char *slash = strrchr(objs[i].key, '/');
        if (slash && !store_hex_parse(slash + 1, have[m], STORE_OID_SIZE))
            m++;
    }
    store_objects_free(objs, n);
    if (!have)
        return store_fail(err, ASR_E_NOMEM, "store session: out of memory");
    if (m)
        qsort(have, m, STORE_OID_SIZE, store_oid_cmp);
    const uint8_t(*sorted)[STORE_OID_SIZE] = (const uint8_t(*)[STORE_OID_SIZE])have;
    int64_t reused = first_gone(sorted, m, ss, ss->known_packs, false);
    int64_t own = reused < 0 ? first_gone(sorted, m, ss, ss->n_packs, true) : -1;
    if (reused >= 0 || own >= 0) {
        uint8_t id[STORE_OID_SIZE];
        char hex[STORE_OID_HEX];
        if (reused >= 0)
            store_table_pack_id(ss->table, (uint32_t)reused, id);
        else
            memcpy(id, ss->packs[own], STORE_OID_SIZE);
        store_hex(id, sizeof id, hex);
        rc = store_fail(err, ASR_E_STATE,
                        "%s: no snapshot made: pack %s, whose chunks this backup %s, was deleted by gc while the "
                        "backup was stopped longer than its lease; run the backup again",
                        ss->b->url, hex, reused >= 0 ? "reuses" : "uploaded");
    }
    free(have);
    return rc;
}

/* Uploads the snapshot (packed_path: compressed, snapfile.c) as HOST/TIME, TIME the session's
 * start or the first free second after. */
static int upload_packed(struct asr_store_session *ss, const char *packed_path, char *name, size_t name_len,
                         struct asr_error *err)
{
    char prefix[16 + STORE_HOST_MAX];
    snprintf(prefix, sizeof prefix, "snapshots/%s/", ss->host);
    struct store_object *objs = NULL;
    size_t n = 0;
    int rc = ss->b->ops->list(ss->b, prefix, &objs, &n, err);
    if (rc)
        return rc;
    count_request(ss);
    int64_t t = ss->start;
    for (int tries = 0; tries < 3600; tries++, t++) {
        char when[STORE_TIME_TEXT], key[STORE_KEY_NAME_MAX];
        store_time_format(t, when);
        snprintf(key, sizeof key, "%s%s", prefix, when);
        bool taken = false;
        for (size_t i = 0; i < n && !taken; i++)
            taken = !strcmp(objs[i].key, key);
        if (taken)
            continue;
        /* A directory store never replaces an object here (ASR_E_EXISTS): another backup of
         * this host took the name since the listing. */
        rc = ss->b->ops->put_file(ss->b, key, packed_path, err);
        if (rc == ASR_E_EXISTS)
            continue;
        if (!rc) {
            count_request(ss);
            snprintf(name, name_len, "%s/%s", ss->host, when);
        }
        break;
    }
    store_objects_free(objs, n);
    return rc;
}

static int upload_snapshot(struct asr_store_session *ss, const char *manifest_path, char *name, size_t name_len,
                           struct asr_error *err)
{
    char packed[PATH_MAX];
    if (snprintf(packed, sizeof packed, "%s.zst", manifest_path) >= (int)sizeof packed)
        return store_fail(err, ASR_E_ARG, "%s: a path too long", manifest_path);
    int rc = store_snapshot_pack(manifest_path, packed, err);
    if (!rc)
        rc = upload_packed(ss, packed, name, name_len, err);
    unlink(packed);
    return rc;
}

int asr_store_session_commit(struct asr_store_session *ss, const char *manifest_path, char *name, size_t name_len,
                             struct asr_error *err)
{
    if (ss->committed)
        return store_fail(err, ASR_E_STATE, "store session: committed twice");
    /* Every pack and its index object are there before the session's index names them. */
    int rc = upload_error(ss, err);
    if (!rc)
        rc = pack_flush(ss, err);
    if (!rc)
        rc = uploads_wait(ss, err);
    if (!rc)
        rc = write_session_index(ss, err);
    if (!rc)
        rc = check_reused(ss, err);
    if (!rc)
        rc = upload_snapshot(ss, manifest_path, name, name_len, err);
    if (rc)
        return rc;
    ss->committed = true;
    lease_stop(ss);
    struct asr_error ignored = {0};
    /* A session object left behind only makes gc wait for its lease to expire. */
    if (!ss->b->ops->del(ss->b, ss->session_key, &ignored))
        count_request(ss);
    return ASR_OK;
}

void asr_store_session_free(struct asr_store_session *ss)
{
    if (!ss)
        return;
    /* What was handed off still uploads (the next backup reuses it), under the lease. */
    uploads_stop(ss);
    lease_stop(ss);
    if (!ss->committed && ss->session_key[0]) {
        struct asr_error ignored = {0};
        ss->b->ops->del(ss->b, ss->session_key, &ignored);
    }
    store_table_free(ss->table);
    store_pack_writer_free(ss->pw);
    for (size_t i = 0; i < ss->n_spare; i++)
        store_pack_writer_free(ss->spare[i]);
    free(ss->used);
    free(ss->packs);
    free(ss->entries);
    free(ss->pack_index);
    pthread_cond_destroy(&ss->wake);
    pthread_mutex_destroy(&ss->lock);
    pthread_cond_destroy(&ss->up_work);
    pthread_cond_destroy(&ss->up_done);
    pthread_mutex_destroy(&ss->up_mu);
    free(ss);
}

void asr_store_session_stats(const struct asr_store_session *ss, struct asr_store_session_stats *st)
{
    *st = ss->st;
    st->chunks_known = __atomic_load_n(&ss->st.chunks_known, __ATOMIC_RELAXED);
    st->bytes_known = __atomic_load_n(&ss->st.bytes_known, __ATOMIC_RELAXED);
    st->requests = __atomic_load_n(&ss->st.requests, __ATOMIC_RELAXED);
    st->packs = __atomic_load_n(&ss->st.packs, __ATOMIC_RELAXED);
}
