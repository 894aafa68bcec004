/* Copying an image's layout and data into a writer (image_copy.h). */
#include "image_copy.h"

#include <stdlib.h>
#include <string.h>

#define UNMAPPED UINT64_MAX

static int copy_layout(struct asr_reader *r, struct asr_writer *w, uint32_t **ids, struct asr_error *err)
{
    int rc = ASR_OK;
    for (uint32_t i = 0; i < asr_reader_disk_count(r) && rc == ASR_OK; i++)
        rc = asr_writer_add_disk(w, asr_reader_disk(r, i), err);
    for (uint32_t i = 0; i < asr_reader_stack_count(r) && rc == ASR_OK; i++)
        rc = asr_writer_add_stack(w, asr_reader_stack(r, i), err);
    if (rc == ASR_OK && asr_reader_machine(r))
        rc = asr_writer_set_machine(w, asr_reader_machine(r), err);
    uint32_t nv = asr_reader_volume_count(r);
    if (rc == ASR_OK && !(*ids = calloc(nv + 1, sizeof **ids)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < nv && rc == ASR_OK; i++)
        rc = asr_writer_add_volume(w, asr_reader_volume(r, i), &(*ids)[i], err);
    return rc;
}

struct copy {
    struct asr_reader *r;
    struct asr_chunk_reader *cr;
    struct asr_writer *w;
    cli_append_fn append;
    void *ctx;
    uint64_t *map; /* source chunk -> new chunk, UNMAPPED until appended */
    uint8_t *buf;  /* the chunk being copied */
    uint64_t buf_id;
    uint32_t buf_len;
    struct cli_copy_stats *st;
};

/* Source chunk id read into the buffer, and appended when this is its first use. */
static int load(struct copy *c, uint64_t id, struct asr_error *err)
{
    if (c->buf_id == id)
        return ASR_OK;
    c->buf_id = UNMAPPED;
    size_t cap = asr_reader_info(c->r)->max_chunk_size;
    struct asr_chunk record;
    int rc = asr_chunk_reader_read_record(c->cr, id, c->buf, cap, &record, err);
    if (rc == ASR_OK)
        c->buf_len = record.content_len;
    if (rc == ASR_OK && c->map[id] == UNMAPPED) {
        rc = c->append(c->w, c->buf, c->buf_len, &record, &c->map[id], c->ctx, err);
        c->st->chunks++;
    }
    if (rc == ASR_OK)
        c->buf_id = id;
    return rc;
}

/* The volume's content hash recomputed from the bytes passed on, against the one the source
 * recorded: an end-to-end check of everything copied (SPEC.md section 12). */
static int check_volume(struct copy *c, uint32_t v, struct asr_volume_hasher *h, struct asr_error *err)
{
    struct asr_hash128 got = asr_volume_hasher_digest(h);
    const struct asr_volume_stats *want = asr_reader_volume_stats(c->r, v);
    if (!want || memcmp(&got, &want->content_hash, sizeof got))
        return asr_fail_public(err, ASR_E_CORRUPT, "volume %u: the bytes copied do not give its content hash", v);
    return ASR_OK;
}

static int copy_volume(struct copy *c, uint32_t v, uint32_t new_id, uint64_t *done, asr_progress_fn progress,
                       void *pctx, uint64_t total, struct asr_error *err)
{
    uint64_t n;
    const struct asr_extent *e = asr_reader_extents(c->r, v, &n);
    struct asr_volume_hasher *h;
    int rc = asr_volume_hasher_new(asr_reader_info(c->r)->hash_seed, &h, err);
    for (uint64_t i = 0; i < n && rc == ASR_OK; i++) {
        if (e[i].ref >= ASR_REF_UNREADABLE)
            asr_volume_hasher_add(h, &e[i], NULL);
        if (e[i].ref == ASR_REF_ZERO) {
            rc = asr_writer_add_zero(c->w, new_id, e[i].offset, e[i].length, err);
        } else if (e[i].ref == ASR_REF_UNREADABLE) {
            rc = asr_writer_add_unreadable(c->w, new_id, e[i].offset, e[i].length, err);
        } else if ((rc = load(c, e[i].ref, err)) == ASR_OK) {
            if ((uint64_t)e[i].chunk_offset + e[i].length > c->buf_len) /* the reader checked this too */
                return asr_fail_public(err, ASR_E_CORRUPT, "volume %u: an extent past the end of its chunk", v);
            rc = asr_writer_add_extent(c->w, new_id, e[i].offset, e[i].length, c->map[e[i].ref], e[i].chunk_offset,
                                       c->buf + e[i].chunk_offset, err);
            asr_volume_hasher_add(h, &e[i], c->buf + e[i].chunk_offset);
            c->st->data_bytes += e[i].length;
            *done += e[i].length;
            if (progress)
                progress(*done, total, pctx);
        }
    }
    if (rc == ASR_OK)
        rc = check_volume(c, v, h, err);
    asr_volume_hasher_free(h);
    return rc;
}

int cli_image_copy(struct asr_reader *r, struct asr_writer *w, cli_append_fn append, void *ctx,
                   asr_progress_fn progress, void *progress_ctx, struct cli_copy_stats *st, struct asr_error *err)
{
    *st = (struct cli_copy_stats){0};
    const struct asr_image_info *info = asr_reader_info(r);
    uint32_t *ids = NULL;
    struct copy c = {.r = r, .w = w, .append = append, .ctx = ctx, .buf_id = UNMAPPED, .st = st};
    int rc = copy_layout(r, w, &ids, err);
    if (rc == ASR_OK)
        rc = asr_chunk_reader_new(r, &c.cr, err);
    if (rc == ASR_OK) {
        c.map = malloc((info->chunk_count + 1) * sizeof *c.map);
        c.buf = malloc(info->max_chunk_size);
        if (!c.map || !c.buf)
            rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory for %llu chunks",
                                 (unsigned long long)info->chunk_count);
        else
            memset(c.map, 0xff, (info->chunk_count + 1) * sizeof *c.map);
    }
    uint64_t done = 0, total = info->data_bytes;
    for (uint32_t v = 0; v < asr_reader_volume_count(r) && rc == ASR_OK; v++, st->volumes++)
        rc = copy_volume(&c, v, ids[v], &done, progress, progress_ctx, total, err);
    asr_chunk_reader_free(c.cr);
    free(c.map);
    free(c.buf);
    free(ids);
    return rc;
}
