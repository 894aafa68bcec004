/* The image writer: appends header, layout, volume table, chunks and extent records to a byte
 * stream that is only ever appended to (so a pipe works), cuts it into parts when split, and
 * ends it with the index and footer. A store snapshot (feature external-chunks) holds, instead
 * of chunks and extent records, one section of the chunks' store ids. A file image is written as NAME.partial and renamed into
 * place only after everything is synced, so an interrupted backup never looks valid (outfiles.c
 * owns those files). */
#include "internal.h"
#include "sink.h"
#include "grow.h"
#include "le.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "xxhash_fast.h"

/* ---- writer state ------------------------------------------------------------------------ */

struct volume_state {
    struct asr_volume_desc desc;
    struct asr_extent *extents;
    uint64_t count;
    size_t cap;
    uint64_t end;           /* end of the last extent added */
    struct asr_extent run;  /* open run of zero or unreadable bytes, not yet final */
    bool run_open;
    XXH3_state_t *hash;
    struct asr_volume_stats stats;
};

struct asr_writer {
    struct fmt_sink sink;
    struct fmt_image_header header;
    bool sealed, finished, failed;
    uint32_t disk_count;
    struct asr_disk_desc *disks;
    uint32_t volume_count;
    struct volume_state *volumes;
    uint32_t stack_count;
    struct asr_stack_desc *stacks;
    struct asr_machine_desc *machine; /* feature machine: appended to the image header */
    struct fmt_chunk_entry *chunks;
    uint64_t chunk_count;
    size_t chunk_cap;
    /* extents not yet written as an AEXT record; all of one volume */
    uint32_t pending_volume;
    uint32_t pending_count;
    uint8_t *pending;
    bool overwrite;
    bool external;    /* a store snapshot: chunks are store ids, kept for the store id section */
    uint8_t *ids;     /* ASR_STORE_ID_SIZE bytes a chunk */
    size_t ids_cap;   /* in chunks */
    bool unchecked_layout; /* fmt_writer_unchecked_layout: a test writing what readers must refuse */
};

static int writer_failed(struct asr_writer *w, int rc)
{
    if (rc)
        w->failed = true;
    return rc;
}

static void init_header(struct asr_writer *w, const struct asr_writer_options *opt)
{
    struct fmt_image_header *h = &w->header;
    h->format_version = ASR_FORMAT_VERSION;
    h->max_chunk_size = opt->max_chunk_size ? opt->max_chunk_size : ASR_DEFAULT_CHUNK_SIZE;
    snprintf(h->creator, sizeof h->creator, "asrimg");
    snprintf(h->creator_version, sizeof h->creator_version, "%s",
             opt->creator_version ? opt->creator_version : asr_version());
    if (opt->fixed_identity) {
        memcpy(h->uuid, opt->uuid, 16);
        h->hash_seed = opt->hash_seed;
        h->created_unix = opt->created_unix;
    } else {
        uint8_t rnd[24];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            /* No entropy syscall: fall back to time and address bits, still unique enough to tell
             * images apart; the seed only needs to differ between images. */
            uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)w << 16);
            for (size_t i = 0; i < sizeof rnd; i++)
                rnd[i] = (uint8_t)(t >> (8 * (i % 8))) ^ (uint8_t)(i * 37);
        }
        memcpy(h->uuid, rnd, 16);
        h->uuid[6] = (h->uuid[6] & 0x0f) | 0x40; /* RFC 4122 version 4 */
        h->uuid[8] = (h->uuid[8] & 0x3f) | 0x80;
        h->hash_seed = get_le64(rnd + 16);
        h->created_unix = (uint64_t)time(NULL);
    }
    /* A snapshot's chunks and their content hashes are shared by every snapshot of the store. */
    if (opt->external_chunks)
        h->hash_seed = opt->hash_seed;
    if (opt->split_size) {
        h->compat |= ASR_FEATURE_COMPAT_SPLIT;
        struct fmt_feature_name *f = &h->features[h->feature_count++];
        f->cls = ASR_FEATURE_COMPAT;
        f->bit = 0;
        snprintf(f->name, sizeof f->name, "split-set");
    }
}

static int writer_alloc(const struct asr_writer_options *opt, struct asr_writer **out, struct asr_error *err)
{
    static const struct asr_writer_options defaults = {0};
    if (!opt)
        opt = &defaults;
    if (opt->max_chunk_size > ASR_MAX_CHUNK_SIZE || (opt->max_chunk_size && opt->max_chunk_size < 4096))
        return fmt_fail(err, ASR_E_ARG, "max chunk size %u outside 4096..%u", opt->max_chunk_size,
                        ASR_MAX_CHUNK_SIZE);
    if (opt->split_size && opt->split_size < ASR_MIN_SPLIT_SIZE)
        return fmt_fail(err, ASR_E_ARG, "split size %llu below the minimum of %u bytes",
                        (unsigned long long)opt->split_size, ASR_MIN_SPLIT_SIZE);
    if (opt->split_size && opt->external_chunks)
        return fmt_fail(err, ASR_E_ARG, "a store snapshot is a single part: it cannot be split");
    struct asr_writer *w = calloc(1, sizeof *w);
    if (!w)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    w->pending = malloc(8 + (size_t)ASR_MAX_EXTENT_RECORD * ASR_EXTENT_SIZE);
    w->overwrite = opt->overwrite;
    w->external = opt->external_chunks;
    init_header(w, opt);
    if (w->external && fmt_writer_declare_feature(w, ASR_FEATURE_INCOMPAT, 2, "external-chunks")) {
        asr_writer_free(w);
        return fmt_fail(err, ASR_E_LIMIT, "cannot declare the external-chunks feature");
    }
    if (fmt_sink_init(&w->sink, opt->split_size, w->header.uuid) || !w->pending) {
        asr_writer_free(w);
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    }
    *out = w;
    return ASR_OK;
}

int asr_writer_create(const char *path, const struct asr_writer_options *opt, struct asr_writer **out,
                      struct asr_error *err)
{
    *out = NULL;
    struct asr_writer *w;
    int rc = writer_alloc(opt, &w, err);
    if (rc)
        return rc;
    if ((rc = fmt_outfiles_open(path, w->overwrite, opt ? opt->may_replace : NULL, opt ? opt->may_replace_ctx : NULL,
                                &w->sink.files, &w->sink.fd, err))) {
        asr_writer_free(w);
        return rc;
    }
    *out = w;
    return ASR_OK;
}

int asr_writer_create_fd(int fd, const struct asr_writer_options *opt, struct asr_writer **out,
                         struct asr_error *err)
{
    *out = NULL;
    if (opt && opt->split_size)
        return fmt_fail(err, ASR_E_ARG, "a split image needs a file name, not a descriptor");
    struct asr_writer *w;
    int rc = writer_alloc(opt, &w, err);
    if (rc)
        return rc;
    w->sink.fd = fd;
    *out = w;
    return ASR_OK;
}

int fmt_writer_declare_feature(struct asr_writer *w, enum asr_feature_class cls, unsigned bit, const char *name)
{
    struct fmt_image_header *h = &w->header;
    if (w->sealed || bit > 63 || cls > ASR_FEATURE_COMPAT || h->feature_count >= ASR_MAX_FEATURE_NAMES || !name ||
        !name[0] || strlen(name) >= sizeof h->features[0].name)
        return ASR_E_ARG;
    uint64_t *set = cls == ASR_FEATURE_INCOMPAT ? &h->incompat : cls == ASR_FEATURE_RO_COMPAT ? &h->ro_compat : &h->compat;
    *set |= 1ull << bit;
    struct fmt_feature_name *f = &h->features[h->feature_count++];
    f->cls = (uint8_t)cls;
    f->bit = (uint8_t)bit;
    snprintf(f->name, sizeof f->name, "%s", name);
    return ASR_OK;
}

void fmt_writer_unchecked_layout(struct asr_writer *w) { w->unchecked_layout = true; }

uint64_t asr_writer_hash_seed(const struct asr_writer *w) { return w->header.hash_seed; }
uint32_t asr_writer_max_chunk_size(const struct asr_writer *w) { return w->header.max_chunk_size; }

uint64_t asr_writer_image_bytes(const struct asr_writer *w)
{
    return w->sink.logical + (uint64_t)w->sink.part * ASR_PART_HEADER_SIZE;
}

/* ---- layout ------------------------------------------------------------------------------- */

static int copy_disk(struct asr_disk_desc *dst, const struct asr_disk_desc *src)
{
    *dst = *src;
    dst->partitions = NULL;
    dst->regions = NULL;
    struct asr_partition_desc *parts = calloc(src->partition_count + 1u, sizeof *parts);
    struct asr_region_desc *regions = calloc(src->region_count + 1u, sizeof *regions);
    dst->partitions = parts;
    dst->regions = regions;
    if (!parts || !regions)
        return -1;
    if (src->partition_count)
        memcpy(parts, src->partitions, src->partition_count * sizeof *parts);
    for (uint32_t i = 0; i < src->region_count; i++) {
        regions[i] = src->regions[i];
        uint8_t *data = malloc(src->regions[i].length);
        regions[i].data = data;
        if (!data)
            return -1;
        memcpy(data, src->regions[i].data, src->regions[i].length);
    }
    return 0;
}

static void free_disk(struct asr_disk_desc *d)
{
    for (uint32_t i = 0; d->regions && i < d->region_count; i++)
        free((void *)d->regions[i].data);
    free((void *)d->regions);
    free((void *)d->partitions);
}

int asr_writer_add_disk(struct asr_writer *w, const struct asr_disk_desc *d, struct asr_error *err)
{
    if (w->sealed || w->volume_count)
        return fmt_fail(err, ASR_E_STATE, "disks must be added before volumes and data");
    if (w->disk_count >= ASR_MAX_DISKS)
        return fmt_fail(err, ASR_E_LIMIT, "more than %u disks", ASR_MAX_DISKS);
    struct asr_error why = {0};
    if (!w->unchecked_layout && asr_disk_desc_valid(d, &why))
        return fmt_fail(err, ASR_E_ARG, "disk %u: %s", w->disk_count, why.msg);
    struct asr_disk_desc *grown = realloc(w->disks, (w->disk_count + 1) * sizeof *grown);
    if (!grown)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    w->disks = grown;
    if (copy_disk(&w->disks[w->disk_count], d)) {
        free_disk(&w->disks[w->disk_count]);
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    }
    w->disk_count++;
    return ASR_OK;
}

int asr_writer_add_volume(struct asr_writer *w, const struct asr_volume_desc *v, uint32_t *volume_id,
                          struct asr_error *err)
{
    if (w->sealed)
        return fmt_fail(err, ASR_E_STATE, "volumes must be added before data");
    if (w->volume_count >= ASR_MAX_VOLUMES)
        return fmt_fail(err, ASR_E_LIMIT, "more than %u volumes", ASR_MAX_VOLUMES);
    struct asr_error why = {0};
    if (v->kind == ASR_VOLUME_AREA && !(w->header.incompat & ASR_FEATURE_INCOMPAT_AREAS) &&
        fmt_writer_declare_feature(w, ASR_FEATURE_INCOMPAT, 0, "disk-areas"))
        return fmt_fail(err, ASR_E_LIMIT, "cannot declare the disk-areas feature");
    if (!w->unchecked_layout && fmt_volume_desc_check(v, w->disks, w->disk_count, w->header.incompat, &why))
        return fmt_fail(err, ASR_E_ARG, "volume %u: %s", w->volume_count, why.msg);
    struct volume_state *grown = realloc(w->volumes, (w->volume_count + 1) * sizeof *grown);
    if (!grown)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    w->volumes = grown;
    struct volume_state *vs = &w->volumes[w->volume_count];
    memset(vs, 0, sizeof *vs);
    vs->desc = *v;
    if (!(vs->hash = XXH3_createState()))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    XXH3_128bits_reset_withSeed(vs->hash, w->header.hash_seed);
    if (volume_id)
        *volume_id = w->volume_count;
    w->volume_count++;
    return ASR_OK;
}

int asr_writer_add_stack(struct asr_writer *w, const struct asr_stack_desc *s, struct asr_error *err)
{
    if (w->sealed)
        return fmt_fail(err, ASR_E_STATE, "stacks must be added before data");
    if (w->stack_count >= ASR_MAX_STACKS)
        return fmt_fail(err, ASR_E_LIMIT, "more than %u stacks", ASR_MAX_STACKS);
    if (!asr_stack_kind_name(s->kind))
        return fmt_fail(err, ASR_E_ARG, "stack %u: kind %u unknown", w->stack_count, s->kind);
    struct asr_stack_desc *grown = realloc(w->stacks, (w->stack_count + 1) * sizeof *grown);
    if (!grown)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    w->stacks = grown;
    /* The rules judge a stack against the disks and the stacks before it, and its counts before
     * anything is copied by them: the caller's stack in place first, then the copy. */
    struct asr_stack_desc *st = &w->stacks[w->stack_count];
    *st = *s;
    struct asr_error why = {0};
    if (!w->unchecked_layout && asr_stacks_valid(w->stacks, w->stack_count + 1, w->disks, w->disk_count, &why))
        return fmt_fail(err, ASR_E_ARG, "%s", why.msg);
    if (fmt_stack_copy(st, s)) {
        fmt_stack_free(st);
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    }
    if (!(w->header.incompat & ASR_FEATURE_INCOMPAT_STACKS) &&
        fmt_writer_declare_feature(w, ASR_FEATURE_INCOMPAT, 1, "stacks")) {
        fmt_stack_free(st);
        return fmt_fail(err, ASR_E_LIMIT, "cannot declare the stacks feature");
    }
    w->stack_count++;
    return ASR_OK;
}

int asr_writer_set_machine(struct asr_writer *w, const struct asr_machine_desc *m, struct asr_error *err)
{
    if (w->sealed)
        return fmt_fail(err, ASR_E_STATE, "the machine record comes before the first chunk or extent");
    if (!w->machine && !(w->machine = malloc(sizeof *w->machine)))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    *w->machine = *m;
    if (!(w->header.compat & ASR_FEATURE_COMPAT_MACHINE) &&
        fmt_writer_declare_feature(w, ASR_FEATURE_COMPAT, 1, "machine"))
        return fmt_fail(err, ASR_E_LIMIT, "cannot declare the machine feature");
    return ASR_OK;
}

static int put_section(struct asr_writer *w, uint32_t tag, const uint8_t *body, size_t len,
                       struct asr_error *err)
{
    struct fmt_section_header s = {tag, 0, len, fmt_checksum64(body, len)};
    uint8_t raw[ASR_SECTION_HEADER_SIZE];
    fmt_section_header_encode(&s, raw);
    int rc = fmt_sink_put(&w->sink, raw, sizeof raw, err);
    return rc ? rc : fmt_sink_put(&w->sink, body, len, err);
}

/* Writes the part header, image header, layout and volume table: everything before data. */
static int seal(struct asr_writer *w, struct asr_error *err)
{
    if (w->finished || w->failed)
        return fmt_fail(err, ASR_E_STATE, "writer already finished or failed");
    if (w->sealed)
        return ASR_OK;
    w->sealed = true;
    struct asr_volume_desc *descs = calloc(w->volume_count + 1u, sizeof *descs);
    if (!descs)
        return writer_failed(w, fmt_fail(err, ASR_E_NOMEM, "out of memory"));
    for (uint32_t i = 0; i < w->volume_count; i++)
        descs[i] = w->volumes[i].desc;
    /* Checked before the first byte: the rules across volumes can only be judged once all are in. */
    struct asr_error why = {0};
    int rc = w->unchecked_layout ? ASR_OK
                                 : fmt_volume_table_check(w->disks, w->disk_count, descs, w->volume_count, &why);
    if (rc) {
        free(descs);
        return writer_failed(w, fmt_fail(err, rc == ASR_E_NOMEM ? rc : ASR_E_ARG, "volume table: %s", why.msg));
    }
    /* The machine record names partitions of the disks: judged once they are all in. */
    if (w->machine && !w->unchecked_layout && asr_machine_valid(w->machine, w->disks, w->disk_count, &why)) {
        free(descs);
        return writer_failed(w, fmt_fail(err, ASR_E_ARG, "%s", why.msg));
    }
    rc = writer_failed(w, fmt_sink_write_part_header(&w->sink, err));
    if (rc) {
        free(descs);
        return rc;
    }
    struct fmt_buf body = {0};
    if (w->machine) {
        if (fmt_machine_encode(w->machine, &body))
            rc = fmt_fail(err, ASR_E_NOMEM, "out of memory");
        w->header.tail = body.data;
        w->header.tail_len = (uint32_t)body.len;
    }
    uint8_t hdr[ASR_IMAGE_HEADER_MAX];
    size_t n = rc ? 1 : fmt_image_header_encode(&w->header, hdr, sizeof hdr);
    if (n == 0)
        rc = fmt_fail(err, ASR_E_LIMIT, "image header too large");
    else if (!rc)
        rc = fmt_sink_put(&w->sink, hdr, n, err);
    w->header.tail = NULL;
    w->header.tail_len = 0;
    body.len = 0;
    if (!rc)
        rc = fmt_layout_encode_disks(w->disks, w->disk_count, w->stacks, w->stack_count, &body, err);
    if (!rc)
        rc = put_section(w, ASR_TAG_LAYOUT, body.data, body.len, err);
    body.len = 0;
    if (!rc)
        rc = fmt_layout_encode_volumes(descs, w->volume_count, &body, err);
    if (!rc)
        rc = put_section(w, ASR_TAG_VOLUMES, body.data, body.len, err);
    free(descs);
    fmt_buf_free(&body);
    return writer_failed(w, rc);
}

/* ---- data ------------------------------------------------------------------------------------ */

static int flush_pending(struct asr_writer *w, struct asr_error *err)
{
    if (!w->pending_count)
        return ASR_OK;
    put_le32(w->pending, w->pending_volume);
    put_le32(w->pending + 4, w->pending_count);
    size_t len = 8 + (size_t)w->pending_count * ASR_EXTENT_SIZE;
    w->pending_count = 0;
    return put_section(w, ASR_TAG_EXTENTS, w->pending, len, err);
}

/* An extent becomes final: into the volume's map, its hash and the next inline record. */
static int finalize_extent(struct asr_writer *w, uint32_t v, const struct asr_extent *e, const void *content,
                           struct asr_error *err)
{
    struct volume_state *vs = &w->volumes[v];
    struct asr_extent *extents = asr_grow(vs->extents, &vs->cap, vs->count + 1, sizeof *extents, 64);
    if (!extents)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory for the extent map");
    vs->extents = extents;
    vs->extents[vs->count++] = *e;
    fmt_volume_hash_extent(vs->hash, e, content);
    if (e->ref == ASR_REF_ZERO)
        vs->stats.zero_bytes += e->length;
    else if (e->ref == ASR_REF_UNREADABLE)
        vs->stats.unreadable_bytes += e->length;
    else
        vs->stats.data_bytes += e->length;
    if (w->external)
        return ASR_OK; /* a snapshot's extents are in its index only */
    if (w->pending_count && (w->pending_volume != v || w->pending_count == ASR_MAX_EXTENT_RECORD)) {
        int rc = flush_pending(w, err);
        if (rc)
            return rc;
    }
    w->pending_volume = v;
    fmt_extent_encode(e, w->pending + 8 + (size_t)w->pending_count * ASR_EXTENT_SIZE);
    w->pending_count++;
    return ASR_OK;
}

static int close_run(struct asr_writer *w, uint32_t v, struct asr_error *err)
{
    struct volume_state *vs = &w->volumes[v];
    if (!vs->run_open)
        return ASR_OK;
    vs->run_open = false;
    return finalize_extent(w, v, &vs->run, NULL, err);
}

/* A snapshot records no codec (the store's record has it): only the lengths are checked there. */
static int check_chunk(const struct asr_writer *w, const struct asr_chunk *c, struct asr_error *err)
{
    bool codec_ok = w->external || (c->codec <= ASR_CODEC_ZSTD &&
                                    (c->codec == ASR_CODEC_STORED) == (c->stored_len == c->content_len));
    if (!codec_ok || c->content_len == 0 || c->content_len > w->header.max_chunk_size ||
        c->stored_len == 0 || c->stored_len > c->content_len)
        return fmt_fail(err, ASR_E_ARG, "chunk: codec %u with %u stored / %u content bytes is invalid "
                        "(max chunk %u; zstd chunks must be smaller than their content)",
                        c->codec, c->stored_len, c->content_len, w->header.max_chunk_size);
    return ASR_OK;
}

/* Room for one more chunk in the chunk table, after the layout is out and the pending extents
 * (which refer only to earlier chunks) are written. */
static int next_chunk_slot(struct asr_writer *w, struct asr_error *err)
{
    int rc = seal(w, err);
    if (!rc)
        rc = flush_pending(w, err);
    if (!rc) {
        struct fmt_chunk_entry *chunks = asr_grow(w->chunks, &w->chunk_cap, w->chunk_count + 1, sizeof *chunks, 64);
        if (chunks)
            w->chunks = chunks;
        else
            rc = fmt_fail(err, ASR_E_NOMEM, "out of memory for the chunk table");
    }
    return writer_failed(w, rc);
}

int asr_writer_append_chunk(struct asr_writer *w, const struct asr_chunk *c, uint64_t *chunk_id,
                            struct asr_error *err)
{
    if (w->external)
        return fmt_fail(err, ASR_E_STATE, "a store snapshot holds no chunks: add them with asr_writer_append_external");
    int rc = check_chunk(w, c, err);
    if (rc || (rc = next_chunk_slot(w, err)))
        return rc;
    struct fmt_chunk_header h = {c->codec, w->chunk_count, c->stored_len, c->content_len, c->content_hash,
                                 fmt_checksum64(c->stored, c->stored_len)};
    uint8_t raw[ASR_CHUNK_HEADER_SIZE];
    fmt_chunk_header_encode(&h, raw);
    w->chunks[w->chunk_count] = (struct fmt_chunk_entry){w->sink.logical, c->stored_len, c->content_len,
                                                         c->content_hash};
    rc = fmt_sink_put(&w->sink, raw, sizeof raw, err);
    if (!rc)
        rc = fmt_sink_put(&w->sink, c->stored, c->stored_len, err);
    if (rc)
        return writer_failed(w, rc);
    if (chunk_id)
        *chunk_id = w->chunk_count;
    w->chunk_count++;
    return ASR_OK;
}

int asr_writer_append_external(struct asr_writer *w, const uint8_t store_id[32], const struct asr_chunk *c,
                               uint64_t *chunk_id, struct asr_error *err)
{
    if (!w->external)
        return fmt_fail(err, ASR_E_STATE, "only a store snapshot (external_chunks) refers to chunks by store id");
    int rc = check_chunk(w, c, err);
    if (rc || (rc = next_chunk_slot(w, err)))
        return rc;
    uint8_t *ids = asr_grow(w->ids, &w->ids_cap, w->chunk_count + 1, ASR_STORE_ID_SIZE, 64);
    if (!ids)
        return writer_failed(w, fmt_fail(err, ASR_E_NOMEM, "out of memory for the store ids"));
    w->ids = ids;
    memcpy(w->ids + w->chunk_count * ASR_STORE_ID_SIZE, store_id, ASR_STORE_ID_SIZE);
    /* Its offset, the store id section's, is known at the end. */
    w->chunks[w->chunk_count] = (struct fmt_chunk_entry){0, c->stored_len, c->content_len, c->content_hash};
    if (chunk_id)
        *chunk_id = w->chunk_count;
    w->chunk_count++;
    return ASR_OK;
}

static int check_range(struct asr_writer *w, uint32_t v, uint64_t offset, uint64_t length, struct asr_error *err)
{
    if (v >= w->volume_count)
        return fmt_fail(err, ASR_E_ARG, "volume %u does not exist", v);
    const struct volume_state *vs = &w->volumes[v];
    if (length == 0 || offset < vs->end || offset > vs->desc.size_bytes ||
        length > vs->desc.size_bytes - offset)
        return fmt_fail(err, ASR_E_ARG, "volume %u: extent of %llu bytes at %llu out of order or outside the volume",
                        v, (unsigned long long)length, (unsigned long long)offset);
    return seal(w, err);
}

int asr_writer_add_extent(struct asr_writer *w, uint32_t v, uint64_t offset, uint64_t length,
                          uint64_t chunk_id, uint32_t chunk_offset, const void *content, struct asr_error *err)
{
    int rc = check_range(w, v, offset, length, err);
    if (rc)
        return rc;
    if (chunk_id >= w->chunk_count || (uint64_t)chunk_offset + length > w->chunks[chunk_id].content_len || !content)
        return fmt_fail(err, ASR_E_ARG, "volume %u: extent at %llu refers outside chunk %llu", v,
                        (unsigned long long)offset, (unsigned long long)chunk_id);
    struct asr_extent e = {offset, length, chunk_id, chunk_offset};
    w->volumes[v].end = offset + length;
    if ((rc = close_run(w, v, err)) || (rc = finalize_extent(w, v, &e, content, err)))
        return writer_failed(w, rc);
    return ASR_OK;
}

/* Zero and unreadable ranges merge with a touching range of the same kind, so a long run of
 * zero blocks costs one extent. */
static int add_run(struct asr_writer *w, uint32_t v, uint64_t offset, uint64_t length, uint64_t ref,
                   struct asr_error *err)
{
    int rc = check_range(w, v, offset, length, err);
    if (rc)
        return rc;
    struct volume_state *vs = &w->volumes[v];
    vs->end = offset + length;
    if (vs->run_open && vs->run.ref == ref && vs->run.offset + vs->run.length == offset) {
        vs->run.length += length;
        return ASR_OK;
    }
    if ((rc = close_run(w, v, err)))
        return writer_failed(w, rc);
    vs->run = (struct asr_extent){offset, length, ref, 0};
    vs->run_open = true;
    return ASR_OK;
}

int asr_writer_add_zero(struct asr_writer *w, uint32_t v, uint64_t offset, uint64_t length, struct asr_error *err)
{
    return add_run(w, v, offset, length, ASR_REF_ZERO, err);
}

int asr_writer_add_unreadable(struct asr_writer *w, uint32_t v, uint64_t offset, uint64_t length,
                              struct asr_error *err)
{
    return add_run(w, v, offset, length, ASR_REF_UNREADABLE, err);
}

/* ---- finish --------------------------------------------------------------------------------- */

static int write_index_and_footer(struct asr_writer *w, struct asr_error *err)
{
    int rc = 0;
    for (uint32_t v = 0; v < w->volume_count && !rc; v++)
        rc = close_run(w, v, err);
    if (rc || (rc = flush_pending(w, err)))
        return rc;
    if (w->external) {
        /* The chunks' store ids, where a file image has its chunk records: every chunk's entry
         * names this section. */
        static const uint8_t none[1];
        for (uint64_t i = 0; i < w->chunk_count; i++)
            w->chunks[i].offset = w->sink.logical;
        if ((rc = put_section(w, ASR_TAG_IDS, w->ids ? w->ids : none, (size_t)w->chunk_count * ASR_STORE_ID_SIZE,
                              err)))
            return rc;
    }
    struct fmt_index ix = {.volume_count = w->volume_count, .chunk_count = w->chunk_count, .chunks = w->chunks};
    XXH128_hash_t sh = XXH3_128bits_digest(w->sink.stream_hash);
    ix.stream_hash = (struct asr_hash128){sh.low64, sh.high64};
    w->sink.hashing = false;
    ix.stats = calloc(w->volume_count + 1u, sizeof *ix.stats);
    ix.extents = calloc(w->volume_count + 1u, sizeof *ix.extents);
    struct fmt_buf body = {0};
    if (!ix.stats || !ix.extents) {
        rc = fmt_fail(err, ASR_E_NOMEM, "out of memory");
    } else {
        for (uint32_t v = 0; v < w->volume_count; v++) {
            struct volume_state *vs = &w->volumes[v];
            XXH128_hash_t h = XXH3_128bits_digest(vs->hash);
            vs->stats.content_hash = (struct asr_hash128){h.low64, h.high64};
            vs->stats.extent_count = vs->count;
            ix.stats[v] = vs->stats;
            ix.extents[v] = vs->extents;
        }
        rc = fmt_index_encode(&ix, &body, err);
    }
    uint64_t index_offset = w->sink.logical;
    if (!rc)
        rc = put_section(w, ASR_TAG_INDEX, body.data, body.len, err);
    if (!rc) {
        /* index_hash covers the envelope too: recompute it the way the reader will see it. */
        uint8_t env[ASR_SECTION_HEADER_SIZE];
        struct fmt_section_header s = {ASR_TAG_INDEX, 0, body.len, fmt_checksum64(body.data, body.len)};
        fmt_section_header_encode(&s, env);
        XXH3_state_t *st = XXH3_createState();
        if (!st) {
            rc = fmt_fail(err, ASR_E_NOMEM, "out of memory");
        } else {
            XXH3_64bits_reset(st);
            XXH3_64bits_update(st, env, sizeof env);
            XXH3_64bits_update(st, body.data, body.len);
            struct fmt_footer f = {ASR_FORMAT_VERSION, index_offset, ASR_SECTION_HEADER_SIZE + body.len, 0, {0},
                                   XXH3_64bits_digest(st)};
            XXH3_freeState(st);
            memcpy(f.uuid, w->header.uuid, 16);
            /* The part count is fixed once we know where the footer's last byte lands. */
            uint64_t end = w->sink.logical + ASR_FOOTER_SIZE;
            f.part_count = w->sink.split_size ? (uint32_t)((end - 1) / (w->sink.split_size - ASR_PART_HEADER_SIZE)) + 1 : 1;
            uint8_t raw[ASR_FOOTER_SIZE];
            fmt_footer_encode(&f, raw);
            rc = fmt_sink_put(&w->sink, raw, sizeof raw, err);
        }
    }
    free(ix.stats);
    free(ix.extents);
    fmt_buf_free(&body);
    if (!rc)
        rc = fmt_sink_flush(&w->sink, err);
    return rc;
}

int asr_writer_finish(struct asr_writer *w, struct asr_error *err)
{
    if (w->finished || w->failed)
        return fmt_fail(err, ASR_E_STATE, "writer already finished or failed");
    int rc = seal(w, err);
    if (!rc)
        rc = write_index_and_footer(w, err);
    if (!rc && w->sink.files) {
        rc = fmt_sink_close(&w->sink, err);
        if (!rc)
            rc = fmt_outfiles_publish(w->sink.files, err);
    }
    if (rc)
        return writer_failed(w, rc);
    w->finished = true;
    return ASR_OK;
}

void asr_writer_free(struct asr_writer *w)
{
    if (!w)
        return;
    if (w->sink.files) {
        if (w->sink.fd >= 0)
            close(w->sink.fd);
        fmt_outfiles_free(w->sink.files); /* an unfinished image's .partial files go */
    }
    for (uint32_t i = 0; i < w->disk_count; i++)
        free_disk(&w->disks[i]);
    free(w->disks);
    for (uint32_t i = 0; i < w->stack_count; i++)
        fmt_stack_free(&w->stacks[i]);
    free(w->stacks);
    free(w->machine);
    for (uint32_t v = 0; v < w->volume_count; v++) {
        free(w->volumes[v].extents);
        XXH3_freeState(w->volumes[v].hash);
    }
    free(w->volumes);
    free(w->chunks);
    free(w->ids);
    free(w->pending);
    fmt_sink_free(&w->sink);
    free(w);
}
