/* gc and verify of the chunk store (SPEC.md 19.8, 19.5) on a directory. Snapshots here are bare
 * lists of chunk ids (the store reads them through a test reader, s->read_ids), so the rules are
 * tested apart from the image format: what gc condemns, what it deletes and when it waits for a
 * running backup, a backup that reused a condemned pack sparing it, a snapshot committed during a
 * gc sparing its packs, each snapshot read once a gc, the index merged, and verify
 * naming each damaged and missing chunk with the snapshots it hurts; list's sizes. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "asr_store.h"
#include "internal.h"
#include "storefix.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(store_gc, .fini = teardown);

/* A snapshot file: "IDS1" and the ids. */
static int read_ids(struct asr_store *s, const char *path, const char *name, struct asr_store_id **ids, uint64_t *n,
                    uint64_t *logical, struct asr_error *err)
{
    (void)s;
    size_t len;
    uint8_t *b = read_file(path, &len);
    if (len < 4 || memcmp(b, "IDS1", 4) || (len - 4) % 32) {
        free(b);
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: not a test snapshot", name);
    }
    *n = (len - 4) / 32;
    *ids = malloc((*n ? *n : 1) * 32);
    memcpy(*ids, b + 4, *n * 32);
    *logical = *n * STOREFIX_CHUNK;
    free(b);
    return ASR_OK;
}

/* A store of 64 KiB packs whose snapshots are test snapshots. */
static struct asr_store *make_store(void)
{
    struct asr_store *s = storefix_store("st", STORE_MIN_PACK_TARGET);
    s->read_ids = read_ids;
    return s;
}

/* Puts chunks [from, to) and commits a snapshot of them; its name in name. */
static void finish(struct asr_store_session *ss, struct storefix_chunk *c, int from, int to, char name[256])
{
    struct asr_error err = {0};
    char *m = scratch_path("manifest");
    FILE *f = fopen(m, "wb");
    fwrite("IDS1", 1, 4, f);
    for (int i = from; i < to; i++) {
        cr_assert_eq(asr_store_session_put(ss, &c[i].id, &c[i].c, &err), ASR_OK, "%s", err.msg);
        fwrite(c[i].id.b, 1, 32, f);
    }
    fclose(f);
    cr_assert_eq(asr_store_session_commit(ss, m, name, 256, &err), ASR_OK, "%s", err.msg);
    asr_store_session_free(ss);
    free(m);
}

static void snapshot(struct asr_store *s, const char *host, struct storefix_chunk *c, int from, int to, char name[256])
{
    finish(storefix_begin(s, host), c, from, to, name);
}

static void gc(struct asr_store *s, struct asr_store_gc_report *rep)
{
    struct asr_error err = {0};
    cr_assert_eq(asr_store_gc(s, rep, &err), ASR_OK, "%s", err.msg);
}

static void delete_snapshot(struct asr_store *s, const char *name)
{
    char key[300];
    struct asr_error err = {0};
    snprintf(key, sizeof key, "snapshots/%s", name);
    cr_assert_eq(s->b->ops->del(s->b, key, &err), ASR_OK);
}

struct problems {
    int n;
    char what[8][256], snaps[8][512];
    struct asr_store_id id[8];
};

static void on_problem(const char *what, const struct asr_store_id *id, const char *snaps, void *ctx)
{
    struct problems *p = ctx;
    if (p->n < 8) {
        snprintf(p->what[p->n], 256, "%s", what);
        snprintf(p->snaps[p->n], 512, "%s", snaps);
        p->id[p->n] = *id;
    }
    p->n++;
}

/* Every chunk of every snapshot reads back through verify --read-data. */
static void verify_clean(struct asr_store *s)
{
    struct problems p = {0};
    struct asr_store_verify_report rep;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_verify(s, true, on_problem, &p, &rep, &err), ASR_OK, "%s; first: %s", err.msg, p.what[0]);
    cr_assert_eq(p.n, 0);
}

/* Pack i of 4-chunk packs: chunks [4i, 4i+4) as put in order by one session. */
Test(store_gc, frees_what_no_snapshot_uses)
{
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, 16, 3, false);
    char a[256], b[256];
    snapshot(s, "pc1", c, 0, 10, a);  /* packs P0 {0-3}, P1 {4-7}, P2 {8,9} */
    snapshot(s, "pc2", c, 5, 14, b);  /* reuses 5-9; packs P3 {10-13} */
    cr_assert_eq(storefix_count(s, "packs/"), 4);
    verify_clean(s);
    struct asr_store_gc_report rep;
    gc(s, &rep);
    cr_assert_eq(rep.packs_condemned, 0, "every pack is used");
    delete_snapshot(s, a); /* prune */
    gc(s, &rep);
    cr_assert_eq(rep.packs_condemned, 1, "P0 only: P1 and P2 hold chunks pc2 uses");
    cr_assert_eq(rep.packs_deleted, 0, "never in the gc that condemns");
    cr_assert_eq(storefix_count(s, "gc/"), 1);
    gc(s, &rep);
    cr_assert_eq(rep.packs_deleted, 1);
    cr_assert_eq(rep.bytes_deleted, 4 * 64 + c[0].c.stored_len + c[1].c.stored_len + c[2].c.stored_len +
                                        c[3].c.stored_len + 4 * 48 + 64);
    cr_assert_eq(rep.packs_condemned, 0);
    cr_assert_eq(storefix_count(s, "packs/"), 3);
    cr_assert_eq(storefix_count(s, "gc/"), 0);
    cr_assert_eq(storefix_count(s, "index/"), 1, "the index merged into one object");
    verify_clean(s);
    /* The merged index still serves every chunk pc2 uses; P0's chunks are gone from it. */
    struct asr_store_session *ss = storefix_begin(s, "pc3");
    for (int i = 0; i < 14; i++)
        cr_assert_eq(asr_store_session_has(ss, &c[i].id, NULL, NULL), i >= 4, "chunk %d", i);
    asr_store_session_free(ss);
    free(c);
    asr_store_close(s);
}

/* gc's merge writes index objects of at most store_index_part entries, each with a pack table
 * of the packs its own entries are in: one object for a fleet's store would pass the cap on an
 * object read whole. The parts serve every chunk as one object did. */
Test(store_gc, merged_index_written_in_parts)
{
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, 16, 3, false);
    char a[256], b[256];
    snapshot(s, "pc1", c, 0, 10, a); /* packs P0 {0-3}, P1 {4-7}, P2 {8,9} */
    snapshot(s, "pc2", c, 5, 14, b); /* reuses 5-9; packs P3 {10-13} */
    delete_snapshot(s, a);
    struct asr_store_gc_report rep;
    gc(s, &rep); /* condemns P0 */
    store_index_part = 3;
    gc(s, &rep); /* deletes P0 and merges: chunks 4-13, ten entries */
    store_index_part = STORE_INDEX_PART;
    cr_assert_eq(rep.packs_deleted, 1);
    uint64_t entries = 0;
    /* Three entries in pack order span at most two packs. */
    cr_assert_eq(storefix_index_objects(s, 3, 2, &entries), 4, "ten entries in parts of three");
    cr_assert_eq(entries, 10);
    verify_clean(s);
    struct asr_store_session *ss = storefix_begin(s, "pc3");
    for (int i = 0; i < 14; i++)
        cr_assert_eq(asr_store_session_has(ss, &c[i].id, NULL, NULL), i >= 4, "chunk %d", i);
    asr_store_session_free(ss);
    free(c);
    asr_store_close(s);
}

/* A backup running when gc condemns is waited for; it reused a condemned pack (it read the index
 * before the condemnation), so its snapshot spares that pack. */
Test(store_gc, waits_for_running_backups_and_spares_what_they_used)
{
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, 12, 3, false);
    char a[256], b[256];
    snapshot(s, "pc1", c, 0, 8, a); /* P0 {0-3}, P1 {4-7} */
    struct asr_store_session *late = storefix_begin(s, "pc2");
    for (int i = 0; i < 4; i++)
        cr_assert(asr_store_session_has(late, &c[i].id, NULL, NULL));
    delete_snapshot(s, a);
    struct asr_store_gc_report rep;
    gc(s, &rep);
    cr_assert_eq(rep.packs_condemned, 2);
    cr_assert_eq(rep.sessions_running, 1);
    gc(s, &rep);
    cr_assert_eq(rep.packs_deleted, 0, "pc2's backup is still running");
    cr_assert_eq(rep.packs_waiting, 2);
    /* A backup that starts now does not reuse condemned packs. */
    struct asr_store_session *fresh = storefix_begin(s, "pc3");
    for (int i = 0; i < 8; i++)
        cr_assert_not(asr_store_session_has(fresh, &c[i].id, NULL, NULL), "chunk %d lies only in a condemned pack", i);
    asr_store_session_free(fresh);
    finish(late, c, 0, 4, b); /* uses P0 */
    gc(s, &rep);
    cr_assert_eq(rep.packs_deleted, 1, "P1 deleted, P0 spared: the new snapshot uses it");
    cr_assert_eq(storefix_count(s, "packs/"), 1);
    verify_clean(s);
    free(c);
    asr_store_close(s);
}

/* An interrupted backup's packs are freed once its session is over; an expired session object is
 * removed. */
Test(store_gc, interrupted_backup_freed)
{
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, 8, 3, false);
    struct asr_store_session *ss = storefix_begin(s, "pc1");
    storefix_put(ss, c, 8);
    asr_store_session_free(ss);
    cr_assert_eq(storefix_count(s, "packs/"), 2);
    /* A session object a crashed backup left an hour ago. */
    char *old = scratch_path("st/sessions/00112233445566778899aabbccddeeff");
    write_file(old, "x", 1);
    struct timespec hour_ago[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
    cr_assert_eq(utimensat(AT_FDCWD, old, hour_ago, 0), 0);
    struct asr_store_gc_report rep;
    gc(s, &rep);
    cr_assert_eq(rep.sessions_expired, 1);
    cr_assert_eq(rep.sessions_running, 0);
    cr_assert_eq(rep.packs_condemned, 2);
    gc(s, &rep);
    cr_assert_eq(rep.packs_deleted, 2);
    cr_assert_eq(storefix_count(s, "packs/"), 0);
    cr_assert_eq(storefix_count(s, "index/"), 0);
    free(old), free(c);
    asr_store_close(s);
}

Test(store_gc, verify_names_damaged_and_missing_chunks)
{
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, 10, 3, false);
    char a[256], b[256];
    snapshot(s, "pc1", c, 0, 8, a);   /* P0 {0-3}, P1 {4-7} */
    snapshot(s, "pc2", c, 2, 10, b);  /* P2 {8,9} */
    verify_clean(s);
    struct asr_error err = {0};
    cr_assert_eq(store_load_table(s, &err), ASR_OK);
    struct store_loc loc;
    uint8_t pid[STORE_OID_SIZE];
    char key[STORE_KEY_NAME_MAX], path[PATH_MAX + 300];
    /* Damage a byte of chunk 2's stored bytes (P0, used by both), remove P1. */
    cr_assert(store_table_find(s->table, &c[2].id, &loc));
    store_table_pack_id(s->table, loc.pack, pid);
    store_pack_name(pid, key);
    snprintf(path, sizeof path, "%s/st/%s", scratch_dir(), key);
    size_t len;
    uint8_t *pack = read_file(path, &len);
    patch_byte(path, loc.offset + 64 + 10, (uint8_t)(pack[loc.offset + 64 + 10] ^ 1));
    free(pack);
    cr_assert(store_table_find(s->table, &c[5].id, &loc));
    store_table_pack_id(s->table, loc.pack, pid);
    store_pack_name(pid, key);
    cr_assert_eq(s->b->ops->del(s->b, key, &err), ASR_OK);
    char p1hex[STORE_OID_HEX];
    store_hex(pid, sizeof pid, p1hex);

    struct problems p = {0};
    struct asr_store_verify_report rep;
    cr_assert_eq(asr_store_verify(s, false, on_problem, &p, &rep, &err), ASR_E_CORRUPT);
    cr_assert_eq(rep.missing, 4, "the four chunks of P1");
    cr_assert_eq(rep.damaged, 0, "without --read-data nothing is read");
    cr_assert_eq(p.n, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert(strstr(p.what[i], p1hex) && strstr(p.what[i], "missing"), "%s", p.what[i]);
        char both[600];
        snprintf(both, sizeof both, "%s, %s", a, b);
        cr_assert_str_eq(p.snaps[i], both, "chunks 4-7 are in both snapshots");
    }
    memset(&p, 0, sizeof p);
    cr_assert_eq(asr_store_verify(s, true, on_problem, &p, &rep, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "4 chunks missing, 1 damaged"), "%s", err.msg);
    cr_assert_eq(rep.snapshots, 2);
    cr_assert_eq(rep.chunks, 10);
    int damaged = -1;
    for (int i = 0; i < p.n; i++)
        if (strstr(p.what[i], "damaged"))
            damaged = i;
    cr_assert_geq(damaged, 0);
    cr_assert_eq(memcmp(p.id[damaged].b, c[2].id.b, 32), 0);
    cr_assert(strstr(p.what[damaged], "stored bytes are damaged"), "%s", p.what[damaged]);
    free(c);
    asr_store_close(s);
}

Test(store_gc, list_sizes_and_compressed_chunks)
{
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, 10, 3, true);
    char a[256], b[256];
    snapshot(s, "pc1", c, 0, 6, a);
    sleep(1); /* distinct seconds: sorted by time */
    snapshot(s, "pc2", c, 4, 10, b);
    struct asr_store_snapshot *snaps;
    size_t n;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_list(s, NULL, true, &snaps, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    uint64_t stored[10];
    for (int i = 0; i < 10; i++)
        stored[i] = c[i].c.stored_len;
    cr_assert_str_eq(snaps[0].name, a);
    cr_assert_eq(snaps[0].chunks, 6);
    cr_assert_eq(snaps[0].logical, 6 * STOREFIX_CHUNK);
    cr_assert_eq(snaps[0].stored, stored[0] + stored[1] + stored[2] + stored[3] + stored[4] + stored[5]);
    cr_assert_eq(snaps[0].unique, stored[0] + stored[1] + stored[2] + stored[3]);
    cr_assert_eq(snaps[1].unique, stored[6] + stored[7] + stored[8] + stored[9]);
    cr_assert_lt(stored[0], STOREFIX_CHUNK / 4, "compressed");
    free(snaps);
    verify_clean(s);
    free(c);
    asr_store_close(s);
}

/* Snapshot i of n uses chunks [i, i + 3): its host is "hNN" (NN = i). */
static int host_number(const char *name)
{
    return (name[1] - '0') * 10 + (name[2] - '0');
}

/* Twenty snapshots, read several at once by list, gc and verify: each snapshot's sizes come out
 * as one at a time would give them, and gc keeps every pack. With two snapshots damaged, gc,
 * verify and list fail naming the first of them in order, and gc condemns and deletes nothing. */
Test(store_gc, many_snapshots_read_at_once)
{
    enum { N = 20 };
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, N + 2, 3, true);
    char name[N][256], host[8];
    for (int i = 0; i < N; i++) {
        snprintf(host, sizeof host, "h%02d", i);
        snapshot(s, host, c, i, i + 3, name[i]);
    }
    struct asr_store_snapshot *snaps;
    size_t n;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_list(s, NULL, true, &snaps, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, N);
    for (size_t k = 0; k < n; k++) {
        int i = host_number(snaps[k].name);
        cr_assert_str_eq(snaps[k].name, name[i]);
        cr_assert_eq(snaps[k].chunks, 3);
        cr_assert_eq(snaps[k].logical, 3 * STOREFIX_CHUNK);
        cr_assert_eq(snaps[k].stored, c[i].c.stored_len + c[i + 1].c.stored_len + c[i + 2].c.stored_len, "%s",
                     snaps[k].name);
        /* chunk j is used by snapshots j-2..j: only the first and the last have one of their own */
        uint64_t unique = i == 0 ? c[0].c.stored_len : i == N - 1 ? c[N + 1].c.stored_len : 0;
        cr_assert_eq(snaps[k].unique, unique, "%s", snaps[k].name);
    }
    free(snaps);
    struct asr_store_gc_report rep;
    gc(s, &rep);
    cr_assert_eq(rep.packs_condemned, 0, "every pack is used");
    verify_clean(s);

    size_t packs = storefix_count(s, "packs/");
    for (int i = 5; i <= 13; i += 8) {
        char key[300];
        snprintf(key, sizeof key, "snapshots/%s", name[i]);
        cr_assert_eq(s->b->ops->put(s->b, key, "not zstd", 8, &err), ASR_OK, "%s", err.msg);
    }
    delete_snapshot(s, name[0]); /* chunk 0's pack would be free, but gc cannot know it */
    cr_assert_eq(asr_store_gc(s, &rep, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, name[5]) && strstr(err.msg, "damaged"), "%s", err.msg);
    cr_assert_eq(storefix_count(s, "gc/"), 0, "nothing condemned");
    cr_assert_eq(storefix_count(s, "packs/"), packs, "nothing deleted");
    struct problems p = {0};
    struct asr_store_verify_report vrep;
    err = (struct asr_error){0};
    cr_assert_neq(asr_store_verify(s, false, on_problem, &p, &vrep, &err), ASR_OK);
    cr_assert(strstr(err.msg, name[5]), "%s", err.msg);
    err = (struct asr_error){0};
    cr_assert_eq(asr_store_list(s, NULL, true, &snaps, &n, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, name[5]), "%s", err.msg);
    free(c);
    asr_store_close(s);
}

/* read_ids counted; once the hook_at-th read is done, hook runs (once, on the reading thread). */
static struct {
    pthread_mutex_t mu;
    unsigned reads, hook_at;
    void (*hook)(void);
} counted = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int read_ids_counted(struct asr_store *s, const char *path, const char *name, struct asr_store_id **ids,
                            uint64_t *n, uint64_t *logical, struct asr_error *err)
{
    int rc = read_ids(s, path, name, ids, n, logical, err);
    pthread_mutex_lock(&counted.mu);
    void (*hook)(void) = ++counted.reads == counted.hook_at ? counted.hook : NULL;
    if (hook)
        counted.hook = NULL;
    pthread_mutex_unlock(&counted.mu);
    if (hook)
        hook();
    return rc;
}

static unsigned reads_during_gc(struct asr_store *s, struct asr_store_gc_report *rep)
{
    counted.reads = 0;
    gc(s, rep);
    return counted.reads;
}

/* A gc reads each snapshot once, also when it deletes (phase 1 reads them before deleting, phase 2
 * condemns by the same reading), and frees the same packs as before. */
Test(store_gc, reads_each_snapshot_once)
{
    struct asr_store *s = make_store();
    s->read_ids = read_ids_counted;
    struct storefix_chunk *c = storefix_chunks(s, 0, 16, 3, false);
    char name[4][256];
    snapshot(s, "pc0", c, 0, 4, name[0]); /* P0 */
    snapshot(s, "pc1", c, 4, 8, name[1]); /* P1 */
    snapshot(s, "pc2", c, 8, 12, name[2]); /* P2 */
    snapshot(s, "pc3", c, 12, 16, name[3]); /* P3 */
    delete_snapshot(s, name[0]);
    struct asr_store_gc_report rep;
    cr_assert_eq(reads_during_gc(s, &rep), 3, "nothing to delete: phase 2 alone reads");
    cr_assert_eq(rep.packs_condemned, 1);
    delete_snapshot(s, name[1]);
    cr_assert_eq(reads_during_gc(s, &rep), 2, "each of the two snapshots left, once");
    cr_assert_eq(rep.packs_deleted, 1, "P0");
    cr_assert_eq(rep.packs_condemned, 1, "P1, by the snapshots phase 1 read");
    cr_assert_eq(reads_during_gc(s, &rep), 2);
    cr_assert_eq(rep.packs_deleted, 1, "P1");
    cr_assert_eq(rep.packs_condemned, 0);
    cr_assert_eq(storefix_count(s, "packs/"), 2);
    verify_clean(s);
    free(c);
    asr_store_close(s);
}

/* The backup the hook makes in the middle of a gc: a snapshot of chunks 8-11, which lie in a pack
 * no snapshot used when the gc read them. */
static struct {
    struct asr_store *s;
    struct storefix_chunk *c;
    char name[256];
} during;

static void backup_during_gc(void)
{
    struct asr_store_session *ss = storefix_begin(during.s, "pc3");
    for (int i = 8; i < 12; i++)
        cr_assert(asr_store_session_has(ss, &during.c[i].id, NULL, NULL), "chunk %d reused", i);
    finish(ss, during.c, 8, 12, during.name);
}

/* A snapshot committed after a gc read the snapshots (a backup that reused an unused pack) may see
 * that pack condemned by that gc, whose phase 2 goes by phase 1's reading; the next gc reads the
 * snapshots again before it deletes and spares the pack (SPEC.md 19.8), and nothing is lost. */
Test(store_gc, snapshot_made_during_gc_spared)
{
    struct asr_store *s = make_store();
    s->read_ids = read_ids_counted;
    struct storefix_chunk *c = storefix_chunks(s, 0, 12, 3, false);
    char a[256], q[256], p[256];
    snapshot(s, "pc1", c, 0, 4, a); /* A {0-3}, kept */
    snapshot(s, "pc0", c, 4, 8, q); /* Q {4-7} */
    delete_snapshot(s, q);
    struct asr_store_gc_report rep;
    gc(s, &rep);
    cr_assert_eq(rep.packs_condemned, 1, "Q");
    snapshot(s, "pc2", c, 8, 12, p); /* P {8-11}: unused once pruned, not condemned */
    delete_snapshot(s, p);
    during.s = s;
    during.c = c;
    counted.hook_at = 1; /* phase 1's reading: the one snapshot left, pc1's */
    counted.hook = backup_during_gc;
    cr_assert_eq(reads_during_gc(s, &rep), 1, "the snapshot made during it was not read");
    cr_assert_null(counted.hook, "the backup ran");
    cr_assert_eq(rep.packs_deleted, 1, "Q");
    cr_assert_eq(rep.packs_condemned, 1, "P: the gc read the snapshots before the backup used it");
    cr_assert_eq(storefix_count(s, "packs/"), 2, "A and P");
    gc(s, &rep);
    cr_assert_eq(rep.packs_deleted, 0, "P spared: the snapshot made during the last gc uses it");
    cr_assert_eq(rep.packs_condemned, 0);
    cr_assert_eq(storefix_count(s, "packs/"), 2);
    cr_assert_eq(storefix_count(s, "gc/"), 0);
    verify_clean(s);
    free(c);
    asr_store_close(s);
}

/* Two backups and gc (with prune) at once, in threads on one store: afterwards every snapshot
 * left reads back whole, and gc run to the end leaves only packs some snapshot uses. */
struct runner {
    struct asr_store *s;
    struct storefix_chunk *c;
    const char *host;
    int first, rounds, failed;
    char err[ASR_ERROR_MSG_MAX];
    volatile int *done;
};

static void *backups(void *arg)
{
    struct runner *r = arg;
    for (int round = 0; round < r->rounds && !r->failed; round++) {
        struct asr_store_session *ss;
        struct asr_error err = {0};
        char m[PATH_MAX], name[256];
        snprintf(m, sizeof m, "%s/m-%s", scratch_dir(), r->host);
        if (asr_store_session_begin(r->s, r->host, &ss, &err)) {
            r->failed = 1;
            snprintf(r->err, sizeof r->err, "%s", err.msg);
            break;
        }
        FILE *f = fopen(m, "wb");
        fwrite("IDS1", 1, 4, f);
        /* Rounds alternate between two sets of chunks, some shared with the other host: a round
         * reuses what prune left to gc since the round before last. */
        int from = r->first + (round % 2) * 10;
        for (int i = from; i < from + 8 && !r->failed; i++) {
            if (!asr_store_session_has(ss, &r->c[i].id, NULL, NULL) && asr_store_session_put(ss, &r->c[i].id, &r->c[i].c, &err))
                r->failed = 1;
            fwrite(r->c[i].id.b, 1, 32, f);
        }
        fclose(f);
        usleep(600 * 1000); /* a backup that lasts: gc runs meanwhile */
        if (!r->failed && asr_store_session_commit(ss, m, name, sizeof name, &err))
            r->failed = 1;
        if (r->failed)
            snprintf(r->err, sizeof r->err, "%s", err.msg);
        asr_store_session_free(ss);
        usleep(400 * 1000 + 10000 * (unsigned)round); /* snapshots a second apart */
    }
    __atomic_add_fetch(r->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

Test(store_gc, two_backups_and_gc_at_once, .timeout = 60)
{
    struct asr_store *s = make_store();
    struct storefix_chunk *c = storefix_chunks(s, 0, 40, 3, false);
    volatile int done = 0;
    struct runner a = {.s = s, .c = c, .host = "pca", .first = 0, .rounds = 4, .done = &done};
    struct runner b = {.s = s, .c = c, .host = "pcb", .first = 5, .rounds = 4, .done = &done};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, backups, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, backups, &b), 0);
    struct asr_store_keep last1 = {.last = 1};
    int gcs = 0, failed = 0;
    char msg[ASR_ERROR_MSG_MAX] = "";
    while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) < 2 && !failed) {
        struct asr_store_gc_report rep;
        struct asr_store_prune_report prep;
        struct asr_error err = {0};
        if (asr_store_prune(s, NULL, &last1, false, &prep, &err) || asr_store_gc(s, &rep, &err)) {
            failed = 1;
            snprintf(msg, sizeof msg, "%s", err.msg);
        }
        gcs++;
        usleep(200 * 1000);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_not(a.failed, "%s", a.err);
    cr_assert_not(b.failed, "%s", b.err);
    cr_assert_not(failed, "%s", msg);
    cr_assert_gt(gcs, 3);
    verify_clean(s);
    struct asr_store_gc_report rep;
    gc(s, &rep);
    gc(s, &rep);
    gc(s, &rep);
    verify_clean(s);
    cr_assert_eq(storefix_count(s, "gc/"), 0);
    cr_assert_eq(storefix_count(s, "sessions/"), 0);
    /* What is left is what the snapshots use... */
    struct store_usage u;
    struct store_indexes x;
    struct asr_error err = {0};
    uint8_t(*used)[STORE_OID_SIZE];
    size_t n_used;
    cr_assert_eq(store_usage_read(s, &u, &err), ASR_OK);
    cr_assert_geq(u.n_snaps, 2, "prune keeps the last of each host");
    cr_assert_eq(store_indexes_read(s->b, &x, &err), ASR_OK);
    cr_assert_eq(store_used_packs(&u, &x, &used, &n_used, &err), ASR_OK);
    /* ...and no pack no snapshot uses survived the last gcs. */
    cr_assert_eq(storefix_count(s, "packs/"), n_used);
    free(used);
    store_indexes_free(&x);
    store_usage_free(&u);
    free(c);
    asr_store_close(s);
}

/* A crashed writer's unfinished file in tmp/ goes once nothing has written to it for as long as a
 * lease lapses; one written to since (a live put's) stays. */
Test(store_gc, removes_unfinished_files_of_crashed_writers)
{
    struct asr_store *s = make_store();
    char *stale = scratch_path("st/tmp/0123456789abcdef"), *live = scratch_path("st/tmp/fedcba9876543210");
    write_file(stale, "half a pack", 11);
    write_file(live, "a pack being written", 20);
    time_t then = time(NULL) - STORE_LEASE_EXPIRY - 60;
    struct timespec old[2] = {{.tv_sec = then}, {.tv_sec = then}};
    cr_assert_eq(utimensat(AT_FDCWD, stale, old, 0), 0);
    struct asr_store_gc_report rep;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_gc(s, &rep, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(rep.temporaries_removed, 1);
    cr_assert_neq(access(stale, F_OK), 0, "the stale file is gone");
    cr_assert_eq(access(live, F_OK), 0, "the live one stays");
    asr_store_close(s);
    free(stale);
    free(live);
}
