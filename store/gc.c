/* gc (SPEC.md 19.8): frees the packs no snapshot uses without ever waiting a fixed time. Phase 1
 * deletes the packs an earlier gc condemned once every session running at that condemnation has
 * ended (re-reading the snapshots first: a backup may have committed one that uses them), merges
 * the index objects without them and drops the condemnation; phase 2 condemns the packs no
 * snapshot uses, by phase 1's reading if it made one (write gc/ID, list the sessions, rewrite gc/ID
 * with them). Objects go in batch
 * deletes (S3: a thousand a request): a gc may free thousands of packs. Every snapshot is read once
 * per gc, and so is every index object before the merge: a fleet's store holds thousands of each. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

struct sessions {
    uint8_t (*running)[STORE_OID_SIZE]; /* sorted */
    size_t n;
};

/* Sessions whose lease is younger than STORE_LEASE_EXPIRY by the store's clock; older ones are
 * deleted (a crashed backup's). */
static int read_sessions(struct store_backend *b, int64_t now, struct sessions *ss, struct asr_store_gc_report *rep,
                         struct asr_error *err)
{
    struct store_object *o;
    size_t n;
    int rc = b->ops->list(b, "sessions/", &o, &n, err);
    if (rc)
        return rc;
    ss->running = malloc((n ? n : 1) * STORE_OID_SIZE);
    const char **expired = malloc((n ? n : 1) * sizeof *expired);
    size_t n_expired = 0;
    ss->n = 0;
    if (!ss->running || !expired)
        rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        const char *id = o[i].key + strlen("sessions/");
        if (o[i].mtime < now - STORE_LEASE_EXPIRY)
            expired[n_expired++] = o[i].key;
        else if (!store_hex_parse(id, ss->running[ss->n], STORE_OID_SIZE))
            ss->n++;
    }
    uint64_t requests = 0;
    if (!rc && !(rc = store_del_many(b, expired, n_expired, &requests, err))) {
        rep->sessions_running = ss->n;
        rep->sessions_expired = n_expired;
    }
    free(expired);
    store_objects_free(o, n);
    if (!rc && ss->n)
        qsort(ss->running, ss->n, STORE_OID_SIZE, store_oid_cmp);
    return rc;
}

static int new_name(const char *dir, char key[STORE_KEY_NAME_MAX], struct asr_error *err)
{
    uint8_t oid[STORE_OID_SIZE];
    char hex[STORE_OID_HEX];
    int rc = store_random(oid, sizeof oid, err);
    store_hex(oid, sizeof oid, hex);
    snprintf(key, STORE_KEY_NAME_MAX, "%s%s", dir, hex);
    return rc;
}

/* Index objects (store_index_put_parts) of every listing of x (read before the condemned packs were
 * deleted) whose pack exists (duplicates of one id in one pack dropped), written before the objects
 * x read are deleted; index objects written since are not in x and stay. */
static int merge_index(struct store_backend *b, const struct store_indexes *x, struct asr_error *err)
{
    /* Listed after reading the index: a pack is uploaded before any index lists it, so a listed
     * pack that is absent here was deleted. */
    struct store_pack *packs = NULL;
    size_t n_packs = 0;
    struct store_table *t = NULL;
    struct store_index m = {0};
    size_t ecap = 0;
    int rc = store_packs_list(b, &packs, &n_packs, err);
    if (rc || (rc = store_table_new(&t, err)))
        goto out;
    for (size_t i = 0; i < x->n && !rc; i++) {
        const struct store_index *ix = &x->ix[i];
        for (uint64_t j = 0; j < ix->count && !rc; j++) {
            const struct store_ientry *e = &ix->entries[j];
            if (!store_packs_find(packs, n_packs, ix->packs[e->pack]))
                continue;
            /* The table dedups ids; a second listing of an id in another pack is kept too. */
            int64_t p = store_table_pack(t, ix->packs[e->pack]);
            struct store_loc loc;
            if (p < 0) {
                rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
                break;
            }
            if (store_table_find(t, &e->id, &loc) && loc.pack == (uint32_t)p)
                continue;
            struct store_ientry *g = asr_grow(m.entries, &ecap, m.count + 1, sizeof *g, 1024);
            if (!g) {
                rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
                break;
            }
            m.entries = g;
            m.entries[m.count] = *e;
            m.entries[m.count++].pack = (uint32_t)p;
            loc = (struct store_loc){.pack = (uint32_t)p};
            if (store_table_insert(t, &e->id, &loc) < 0)
                rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
        }
    }
    if (!rc && m.count) {
        m.pack_count = store_table_pack_count(t);
        if (!(m.packs = malloc(m.pack_count * (size_t)STORE_OID_SIZE)))
            rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
        for (uint32_t p = 0; p < m.pack_count && !rc; p++)
            store_table_pack_id(t, p, m.packs[p]);
        uint64_t puts = 0;
        if (!rc)
            rc = store_index_put_parts(b, &m, &puts, err);
    }
    uint64_t requests = 0;
    if (!rc)
        rc = store_del_many(b, (const char *const *)x->keys, x->n, &requests, err);
out:
    store_index_free(&m);
    store_table_free(t);
    free(packs);
    return rc;
}

struct condemnation {
    char *key;
    struct store_condemn c;
};

static void condemnations_free(struct condemnation *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].key);
        store_condemn_free(&c[i].c);
    }
    free(c);
}

/* The packs of the ready condemnations that still exist (packs, listed) and no snapshot uses
 * (used), in one batch delete; counted in rep once gone. */
static int delete_condemned(struct store_backend *b, const struct condemnation *ready, size_t n_ready,
                            const uint8_t (*used)[STORE_OID_SIZE], size_t n_used, const struct store_pack *packs,
                            size_t n_packs, struct asr_store_gc_report *rep, struct asr_error *err)
{
    char(*names)[STORE_KEY_NAME_MAX] = malloc((n_packs ? n_packs : 1) * sizeof *names);
    const char **keys = malloc((n_packs ? n_packs : 1) * sizeof *keys);
    bool *taken = calloc(n_packs ? n_packs : 1, sizeof *taken); /* per listed pack: in keys */
    uint64_t k = 0, bytes = 0, requests = 0;
    int rc = names && keys && taken ? ASR_OK : store_fail(err, ASR_E_NOMEM, "gc: out of memory");
    for (size_t i = 0; i < n_ready && !rc; i++)
        for (uint64_t j = 0; j < ready[i].c.pack_count; j++) {
            const uint8_t *id = ready[i].c.packs[j];
            const struct store_pack *p = store_packs_find(packs, n_packs, id);
            if (!p || taken[p - packs] || store_oid_in(used, n_used, id))
                continue; /* gone already (or condemned twice), or a snapshot made since uses it */
            taken[p - packs] = true;
            store_pack_name(id, names[k]);
            keys[k] = names[k];
            bytes += p->size;
            k++;
        }
    if (!rc && !(rc = store_del_many(b, keys, k, &requests, err))) {
        rep->packs_deleted += k;
        rep->bytes_deleted += bytes;
    }
    free(taken);
    free(keys);
    free(names);
    return rc;
}

/* Phase 1: the condemnations whose sessions have all ended, their packs deleted where still unused.
 * When it read the snapshots (some condemnation was ready), what they use is left in u (*read set)
 * for phase 2. */
static int phase1(struct asr_store *s, int64_t now, const struct sessions *ss, struct asr_store_gc_report *rep,
                  struct store_usage *u, bool *read, struct asr_error *err)
{
    struct store_backend *b = s->b;
    struct store_object *o;
    size_t n;
    int rc = b->ops->list(b, "gc/", &o, &n, err);
    if (rc)
        return rc;
    struct condemnation *ready = calloc(n ? n : 1, sizeof *ready);
    size_t n_ready = 0;
    if (!ready)
        rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        struct store_condemn c;
        bool missing = false;
        if ((rc = store_condemn_get(b, o[i].key, &c, &missing, err)) || missing)
            continue; /* missing: another gc finished it */
        bool waiting = false;
        if (!(c.flags & STORE_CONDEMN_SESSIONS_LISTED)) {
            /* A gc between its two writes, or one that died there: dropped only when long dead
             * (dropping a condemnation frees nothing, it only lets backups reuse its packs). */
            waiting = o[i].mtime >= now - STORE_LEASE_EXPIRY;
            if (!waiting) {
                store_condemn_free(&c);
                rc = b->ops->del(b, o[i].key, err);
                continue;
            }
        }
        for (uint64_t j = 0; j < c.session_count && !waiting; j++)
            waiting = store_oid_in((const uint8_t(*)[STORE_OID_SIZE])ss->running, ss->n, c.sessions[j]);
        if (waiting) {
            rep->packs_waiting += c.pack_count;
            store_condemn_free(&c);
            continue;
        }
        ready[n_ready].key = o[i].key;
        o[i].key = NULL;
        ready[n_ready++].c = c;
    }
    store_objects_free(o, n);
    uint8_t(*used)[STORE_OID_SIZE] = NULL;
    size_t n_used = 0;
    struct store_pack *packs = NULL;
    size_t n_packs = 0;
    struct store_indexes x = {0};
    if (!rc && n_ready && !(rc = store_usage_read(s, u, err)))
        *read = true;
    if (!rc && n_ready && !(rc = store_indexes_read(b, &x, err)))
        rc = store_used_packs(u, &x, &used, &n_used, err);
    if (!rc && n_ready)
        rc = store_packs_list(b, &packs, &n_packs, err);
    if (!rc)
        rc = delete_condemned(b, ready, n_ready, (const uint8_t(*)[STORE_OID_SIZE])used, n_used, packs, n_packs,
                              rep, err);
    if (!rc && rep->packs_deleted)
        rc = merge_index(b, &x, err);
    store_indexes_free(&x);
    const char **keys = malloc((n_ready ? n_ready : 1) * sizeof *keys);
    if (!rc && !keys)
        rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
    for (size_t i = 0; !rc && i < n_ready; i++)
        keys[i] = ready[i].key;
    uint64_t requests = 0;
    if (!rc)
        rc = store_del_many(b, keys, n_ready, &requests, err);
    free(keys);
    free(used);
    free(packs);
    condemnations_free(ready, n_ready);
    return rc;
}

/* The packs that the chunks u names lie in, by the index objects as they are now. */
static int packs_of(struct asr_store *s, const struct store_usage *u, uint8_t (**used)[STORE_OID_SIZE],
                    size_t *n_used, struct asr_error *err)
{
    struct store_indexes x;
    int rc = store_indexes_read(s->b, &x, err);
    if (!rc) {
        rc = store_used_packs(u, &x, used, n_used, err);
        store_indexes_free(&x);
    }
    return rc;
}

/* Phase 2: condemn the packs no snapshot uses that no condemnation names yet. u: the snapshots as
 * phase 1 read them, if it did. A snapshot committed since then is not in it, and a pack only it
 * uses is condemned; that is safe (SPEC.md 19.8): the gc that would delete the pack first waits
 * for every session running at the condemnation to end and then reads the snapshots afresh, so it
 * spares the pack; meanwhile backups only upload its chunks again. */
static int phase2(struct asr_store *s, const struct store_usage *u, struct asr_store_gc_report *rep,
                  struct asr_error *err)
{
    struct store_backend *b = s->b;
    uint8_t(*used)[STORE_OID_SIZE] = NULL, (*condemned)[STORE_OID_SIZE] = NULL;
    size_t n_used = 0, n_condemned = 0, n_packs = 0;
    struct store_pack *packs = NULL;
    struct store_condemn c = {0};
    struct store_usage fresh = {0};
    int rc = u ? ASR_OK : store_usage_read(s, &fresh, err);
    if (!rc)
        rc = packs_of(s, u ? u : &fresh, &used, &n_used, err);
    store_usage_free(&fresh);
    if (!rc)
        rc = store_condemned_packs(b, &condemned, &n_condemned, err);
    if (!rc)
        rc = store_packs_list(b, &packs, &n_packs, err);
    if (!rc && !(c.packs = malloc((n_packs ? n_packs : 1) * (size_t)STORE_OID_SIZE)))
        rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
    for (size_t i = 0; i < n_packs && !rc; i++)
        if (!store_oid_in((const uint8_t(*)[STORE_OID_SIZE])used, n_used, packs[i].id) &&
            !store_oid_in((const uint8_t(*)[STORE_OID_SIZE])condemned, n_condemned, packs[i].id))
            memcpy(c.packs[c.pack_count++], packs[i].id, STORE_OID_SIZE);
    char key[STORE_KEY_NAME_MAX];
    uint8_t *raw = NULL;
    size_t len;
    if (!rc && c.pack_count && !(rc = new_name("gc/", key, err)) && !(rc = store_condemn_encode(&c, &raw, &len, err)))
        rc = b->ops->put(b, key, raw, len, err);
    free(raw);
    raw = NULL;
    if (!rc && c.pack_count) {
        /* Listed after the condemnation is written: a session announced later read it. */
        struct store_object *o = NULL;
        size_t n = 0;
        if (!(rc = b->ops->list(b, "sessions/", &o, &n, err))) {
            if (!(c.sessions = malloc((n ? n : 1) * (size_t)STORE_OID_SIZE)))
                rc = store_fail(err, ASR_E_NOMEM, "gc: out of memory");
            for (size_t i = 0; i < n && !rc; i++)
                if (!store_hex_parse(o[i].key + strlen("sessions/"), c.sessions[c.session_count], STORE_OID_SIZE))
                    c.session_count++;
        }
        store_objects_free(o, n);
        c.flags = STORE_CONDEMN_SESSIONS_LISTED;
        if (!rc && !(rc = store_condemn_encode(&c, &raw, &len, err)))
            rc = b->ops->put(b, key, raw, len, err);
        free(raw);
    }
    if (!rc)
        rep->packs_condemned = c.pack_count;
    store_condemn_free(&c);
    free(used);
    free(condemned);
    free(packs);
    return rc;
}

int asr_store_gc(struct asr_store *s, struct asr_store_gc_report *rep, struct asr_error *err)
{
    memset(rep, 0, sizeof *rep);
    int64_t now;
    struct sessions ss = {0};
    struct store_usage u;
    bool read = false;
    int rc = s->b->ops->now(s->b, &now, err);
    if (!rc)
        rc = read_sessions(s->b, now, &ss, rep, err);
    if (!rc && s->b->ops->sweep) /* a crashed writer's files: untouched for as long as a lease lapses */
        rc = s->b->ops->sweep(s->b, now - STORE_LEASE_EXPIRY, &rep->temporaries_removed, err);
    if (!rc)
        rc = phase1(s, now, &ss, rep, &u, &read, err);
    if (!rc)
        rc = phase2(s, read ? &u : NULL, rep, err);
    if (read)
        store_usage_free(&u);
    free(ss.running);
    return rc;
}
