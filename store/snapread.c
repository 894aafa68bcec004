/* Reading snapshots for the store's own bookkeeping: the chunk ids a snapshot uses (through the
 * image reader of format/, asr_reader_open_external), those of many snapshots read at once (gc,
 * verify and `store list` read every snapshot of the store), and the sizes `store list` shows. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grow.h"

int store_reader_ids(struct asr_store *s, const struct asr_reader *r, const char *name, struct asr_store_id **ids,
                     uint64_t *n, struct asr_error *err)
{
    uint64_t count = asr_reader_info(r)->chunk_count;
    struct asr_store_id *out = malloc((count ? count : 1) * sizeof *out);
    if (!out)
        return store_fail(err, ASR_E_NOMEM, "%s: %s: out of memory for %llu chunk ids", s->b->url, name,
                          (unsigned long long)count);
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *id = asr_reader_store_id(r, i);
        if (!id) {
            free(out);
            return store_fail(err, ASR_E_CORRUPT, "%s: %s: chunk %llu has no store id", s->b->url, name,
                              (unsigned long long)i);
        }
        memcpy(out[i].b, id, ASR_STORE_ID_SIZE);
    }
    *ids = out;
    *n = count;
    return ASR_OK;
}

int store_read_ids_image(struct asr_store *s, const char *path, const char *name, struct asr_store_id **ids,
                         uint64_t *n, uint64_t *logical, struct asr_error *err)
{
    struct asr_reader *r = NULL;
    struct asr_chunk_source src;
    store_chunk_source(s, &src);
    int rc = asr_reader_open_external(path, &src, &r, err);
    if (rc)
        return rc;
    rc = store_reader_ids(s, r, name, ids, n, err);
    if (!rc && logical)
        *logical = asr_reader_info(r)->data_bytes;
    asr_reader_free(r);
    return rc;
}

int store_snapshot_ids(struct asr_store *s, const char *name, struct asr_store_id **ids, uint64_t *n,
                       uint64_t *logical, struct asr_error *err)
{
    *ids = NULL;
    *n = 0;
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/asrimg-snapshot-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return store_fail(err, ASR_E_IO, "%s: cannot create: %s", path, strerror(errno));
    close(fd);
    int rc = asr_store_fetch_snapshot(s, name, path, err);
    if (!rc)
        rc = s->read_ids(s, path, name, ids, n, logical, err);
    unlink(path);
    return rc;
}

static int use_cmp(const void *a, const void *b)
{
    const struct store_use *x = a, *y = b;
    int c = memcmp(x->id.b, y->id.b, ASR_STORE_ID_SIZE);
    return c ? c : (x->snap > y->snap) - (x->snap < y->snap);
}

/* store_uses_read's work: every snapshot's ids appended to uses, under mu. */
struct uses_job {
    struct asr_store *s;
    struct asr_store_snapshot *snaps;
    pthread_mutex_t mu;
    struct store_use *uses;
    size_t n_uses, cap;
};

/* Appends snapshot i's ids (count of them) to the job's uses; under j->mu. */
static int append_uses(struct uses_job *j, size_t i, const struct asr_store_id *ids, uint64_t count,
                       struct asr_error *err)
{
    if (!count)
        return ASR_OK;
    struct store_use *grown = asr_grow(j->uses, &j->cap, j->n_uses + count, sizeof *j->uses, 1024);
    if (!grown)
        return store_fail(err, ASR_E_NOMEM, "%s: out of memory for the snapshots' chunks", j->s->b->url);
    j->uses = grown;
    for (uint64_t k = 0; k < count; k++)
        j->uses[j->n_uses++] = (struct store_use){.id = ids[k], .snap = i};
    return ASR_OK;
}

static int read_uses(void *ctx, size_t i, struct asr_error *err)
{
    struct uses_job *j = ctx;
    struct asr_store_id *ids = NULL;
    uint64_t count = 0, logical = 0;
    int rc = store_snapshot_ids(j->s, j->snaps[i].name, &ids, &count, &logical, err);
    if (!rc) {
        pthread_mutex_lock(&j->mu);
        j->snaps[i].logical = logical;
        j->snaps[i].chunks = count;
        rc = append_uses(j, i, ids, count, err);
        pthread_mutex_unlock(&j->mu);
    }
    free(ids);
    return rc;
}

int store_uses_read(struct asr_store *s, struct asr_store_snapshot *snaps, size_t n, struct store_use **uses,
                    size_t *n_uses, struct asr_error *err)
{
    struct uses_job j = {.s = s, .snaps = snaps};
    pthread_mutex_init(&j.mu, NULL);
    int rc = store_parallel(n, STORE_PARALLEL_READS, read_uses, &j, err);
    pthread_mutex_destroy(&j.mu);
    if (rc) {
        free(j.uses);
        return rc;
    }
    if (j.n_uses)
        qsort(j.uses, j.n_uses, sizeof *j.uses, use_cmp);
    *uses = j.uses;
    *n_uses = j.n_uses;
    return ASR_OK;
}

int store_snapshot_sizes(struct asr_store *s, struct asr_store_snapshot *snaps, size_t n, struct asr_error *err)
{
    struct store_use *uses = NULL;
    size_t total = 0;
    int rc = store_load_table(s, err);
    if (!rc)
        rc = store_uses_read(s, snaps, n, &uses, &total, err);
    for (size_t i = 0, j; i < total && !rc; i = j) {
        size_t snaps_using = 0;
        for (j = i; j < total && !memcmp(uses[j].id.b, uses[i].id.b, ASR_STORE_ID_SIZE); j++)
            if (j == i || uses[j].snap != uses[j - 1].snap)
                snaps_using++;
        struct store_loc loc;
        uint64_t stored = store_table_find(s->table, &uses[i].id, &loc) ? loc.record_len - STORE_CHUNK_HEADER_SIZE : 0;
        for (size_t k = i; k < j; k++) {
            if (k > i && uses[k].snap == uses[k - 1].snap)
                continue;
            snaps[uses[k].snap].stored += stored;
            if (snaps_using == 1)
                snaps[uses[k].snap].unique += stored;
        }
    }
    free(uses);
    return rc;
}
