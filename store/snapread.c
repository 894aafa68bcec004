/* Reading snapshots for the store's own bookkeeping: the chunk ids a snapshot uses (through the
 * image reader of format/, asr_reader_open_external) and the sizes `store list` shows. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int store_read_ids_image(struct asr_store *s, const char *path, const char *name, struct asr_store_id **ids,
                         uint64_t *n, uint64_t *logical, struct asr_error *err)
{
    struct asr_reader *r = NULL;
    struct asr_chunk_source src;
    store_chunk_source(s, &src);
    int rc = asr_reader_open_external(path, &src, &r, err);
    if (rc)
        return rc;
    const struct asr_image_info *info = asr_reader_info(r);
    uint64_t count = info->chunk_count;
    struct asr_store_id *out = malloc((count ? count : 1) * sizeof *out);
    if (!out) {
        asr_reader_free(r);
        return store_fail(err, ASR_E_NOMEM, "%s: %s: out of memory for %llu chunk ids", s->b->url, name,
                          (unsigned long long)count);
    }
    for (uint64_t i = 0; i < count && !rc; i++) {
        const uint8_t *id = asr_reader_store_id(r, i);
        if (!id)
            rc = store_fail(err, ASR_E_CORRUPT, "%s: %s: chunk %llu has no store id", s->b->url, name,
                            (unsigned long long)i);
        else
            memcpy(out[i].b, id, ASR_STORE_ID_SIZE);
    }
    if (logical)
        *logical = info->data_bytes;
    asr_reader_free(r);
    if (rc) {
        free(out);
        return rc;
    }
    *ids = out;
    *n = count;
    return ASR_OK;
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

struct use {
    struct asr_store_id id;
    size_t snap;
};

static int use_cmp(const void *a, const void *b)
{
    const struct use *x = a, *y = b;
    int c = memcmp(x->id.b, y->id.b, ASR_STORE_ID_SIZE);
    return c ? c : (x->snap > y->snap) - (x->snap < y->snap);
}

int store_snapshot_sizes(struct asr_store *s, struct asr_store_snapshot *snaps, size_t n, struct asr_error *err)
{
    int rc = store_load_table(s, err);
    struct use *uses = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct asr_store_id *ids;
        uint64_t count;
        if ((rc = store_snapshot_ids(s, snaps[i].name, &ids, &count, &snaps[i].logical, err)))
            break;
        snaps[i].chunks = count;
        struct use *u = count ? realloc(uses, (total + count) * sizeof *uses) : uses;
        if (count && !u) {
            rc = store_fail(err, ASR_E_NOMEM, "store list: out of memory");
        } else {
            uses = u;
            for (uint64_t j = 0; j < count; j++)
                uses[total++] = (struct use){.id = ids[j], .snap = i};
        }
        free(ids);
    }
    if (!rc && total)
        qsort(uses, total, sizeof *uses, use_cmp);
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
