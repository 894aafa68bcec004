/* The image reader: opens an image by its footer, checks header, layout, volume table and
 * index against each other and against the file sizes, then serves chunks and volume byte
 * ranges with every chunk's checksums verified on the way. A store snapshot (feature
 * external-chunks) is opened the same way with a chunk source: its chunks are fetched from the
 * store by the ids its store id section lists, and checked like an image's plus against the id. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"
#include <zstd.h>

struct asr_reader {
    struct fmt_partset *ps;
    struct fmt_scan sc; /* opening: the records' rules; then header and layout */
    struct asr_error *err; /* where sc's problem goes while opening */
    struct fmt_footer footer;
    struct fmt_index index;   /* a lazy reader's holds only counts and statistics */
    struct fmt_lazy_index *lazy; /* the index read in place (asr_reader_open_lazy), else NULL */
    uint64_t lazy_sums[2];       /* its chunks' stored and content bytes */
    struct asr_image_info info;
    uint64_t data_start;
    bool external;                /* a store snapshot: chunks come from src */
    struct asr_chunk_source src;
    uint8_t *ids;                 /* its store id section's content: 32 bytes a chunk */
    uint64_t ids_len;
    struct asr_chunk_reader *chunks; /* for read_chunk and read_volume */
    uint8_t *cache;    /* the last chunk's content */
    uint64_t cache_id; /* UINT64_MAX: empty */
    uint32_t cache_len;
};

/* Chunk id's store id in hex, for messages (hex holds 65 bytes). */
static const char *store_hex(const struct asr_reader *r, uint64_t id, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = r->ids + id * ASR_STORE_ID_SIZE;
    for (unsigned i = 0; i < ASR_STORE_ID_SIZE; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 15];
    }
    hex[2 * ASR_STORE_ID_SIZE] = 0;
    return hex;
}

/* "part 2 offset 1234 (logical 5678)" for messages */
static const char *where(const struct asr_reader *r, uint64_t off, char *buf, size_t n)
{
    uint32_t part;
    uint64_t foff;
    fmt_partset_locate(r->ps, off, &part, &foff);
    snprintf(buf, n, "%s offset %llu", fmt_partset_path(r->ps, part), (unsigned long long)foff);
    return buf;
}

/* The scanner's problem, said with the part and file offset where it is. */
static void scan_problem(void *ctx, const struct fmt_problem *p)
{
    const struct asr_reader *r = ctx;
    char at[512];
    if (p->alone)
        fmt_fail(r->err, p->code, "%s", p->msg);
    else
        fmt_fail(r->err, p->code, "%s: %s: %s", p->what, p->msg, where(r, p->at, at, sizeof at));
}

/* Reads the section at off whose body must end by limit (the one the grammar wants next); body
 * is malloc'd. */
static int read_section(struct asr_reader *r, uint64_t off, const char *what, uint64_t limit,
                        struct fmt_section_header *s, uint8_t **body, struct asr_error *err)
{
    char at[512];
    uint8_t raw[ASR_SECTION_HEADER_SIZE];
    *body = NULL;
    if (off > limit || limit - off < ASR_SECTION_HEADER_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "%s missing: %s", what, where(r, off, at, sizeof at));
    int rc = fmt_partset_read(r->ps, off, raw, sizeof raw, err);
    if (rc || (rc = fmt_scan_envelope(&r->sc, raw, off, limit - off, s)))
        return rc;
    if (!(*body = malloc(s->content_len ? s->content_len : 1)))
        return fmt_fail(err, ASR_E_NOMEM, "%s: out of memory", what);
    if ((rc = fmt_partset_read(r->ps, off + ASR_SECTION_HEADER_SIZE, *body, s->content_len, err)))
        return rc;
    return fmt_scan_content(&r->sc, s, *body, off);
}

static int open_footer(struct asr_reader *r, struct asr_error *err)
{
    uint64_t size = fmt_partset_size(r->ps);
    const char *last = fmt_partset_path(r->ps, fmt_partset_count(r->ps));
    uint8_t raw[ASR_FOOTER_SIZE];
    struct asr_error why = {0};
    if (size < ASR_IMAGE_HEADER_FIXED + ASR_FOOTER_SIZE)
        return fmt_fail(err, ASR_E_INCOMPLETE,
                        "incomplete image: %s holds %llu bytes, too few for a footer (backup interrupted?)",
                        last, (unsigned long long)size);
    int rc = fmt_partset_read(r->ps, size - ASR_FOOTER_SIZE, raw, sizeof raw, err);
    if (rc)
        return rc;
    struct fmt_footer *f = &r->footer;
    if ((rc = fmt_footer_decode(raw, f, &why)))
        return fmt_fail(err, rc,
                        "incomplete image: no valid footer at the end of %s (%s): the backup was interrupted, "
                        "the disk filled up, the copy is truncated or later parts are missing",
                        last, why.msg);
    if (memcmp(f->uuid, fmt_partset_uuid(r->ps), 16) != 0)
        return fmt_fail(err, ASR_E_PARTS, "footer at the end of %s belongs to another image", last);
    if (f->part_count != fmt_partset_count(r->ps))
        return fmt_fail(err, ASR_E_PARTS, "footer says the image has %u parts, %u found beside %s",
                        f->part_count, fmt_partset_count(r->ps), fmt_partset_path(r->ps, 1));
    if (f->index_length < ASR_SECTION_HEADER_SIZE || f->index_offset > size - ASR_FOOTER_SIZE ||
        f->index_length != size - ASR_FOOTER_SIZE - f->index_offset)
        return fmt_fail(err, ASR_E_CORRUPT, "footer: index position does not match the image size (%s)", last);
    return ASR_OK;
}

static int open_header(struct asr_reader *r, struct asr_error *err)
{
    size_t avail = r->footer.index_offset < ASR_IMAGE_HEADER_MAX ? (size_t)r->footer.index_offset
                                                                 : ASR_IMAGE_HEADER_MAX;
    uint8_t *raw = malloc(avail ? avail : 1);
    if (!raw)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    int rc = fmt_partset_read(r->ps, 0, raw, avail, err);
    if (!rc)
        rc = fmt_scan_header(&r->sc, raw, avail, fmt_partset_uuid(r->ps));
    free(raw);
    return rc;
}

/* The layout section and the volume table, after the image header; the data starts after them. */
static int open_layout(struct asr_reader *r, struct asr_error *err)
{
    uint64_t off = r->sc.header.header_len, limit = r->footer.index_offset;
    for (int k = 0; k < 2; k++) {
        uint8_t *body;
        struct fmt_section_header s;
        int rc = read_section(r, off, k ? "volume table" : "layout section", limit, &s, &body, err);
        if (!rc)
            rc = fmt_scan_layout(&r->sc, s.tag, body, (size_t)s.content_len, off);
        free(body);
        if (rc)
            return rc;
        off += ASR_SECTION_HEADER_SIZE + s.content_len;
    }
    r->data_start = off;
    return ASR_OK;
}

/* A snapshot's data is its store id section, from the volume table's end to the index. */
static int open_ids(struct asr_reader *r, struct asr_error *err)
{
    struct fmt_section_header s;
    uint64_t off = r->data_start, limit = r->footer.index_offset;
    char at[512];
    int rc = read_section(r, off, "store id section", limit, &s, &r->ids, err);
    if (rc)
        return rc;
    r->ids_len = s.content_len;
    if (off + ASR_SECTION_HEADER_SIZE + s.content_len != limit)
        return fmt_fail(err, ASR_E_CORRUPT, "store id section: ends %llu bytes before the index: %s",
                        (unsigned long long)(limit - off - ASR_SECTION_HEADER_SIZE - s.content_len),
                        where(r, off, at, sizeof at));
    return fmt_scan_ids(&r->sc, r->ids, (size_t)s.content_len, off);
}

static int open_index(struct asr_reader *r, struct asr_error *err)
{
    uint8_t *body;
    struct fmt_section_header s;
    uint64_t off = r->footer.index_offset;
    struct asr_error why = {0};
    r->sc.stage = FMT_AT_INDEX;
    int rc = read_section(r, off, "index", off + r->footer.index_length, &s, &body, err);
    if (!rc) {
        uint8_t env[ASR_SECTION_HEADER_SIZE];
        XXH3_state_t *st = XXH3_createState();
        rc = fmt_partset_read(r->ps, off, env, sizeof env, err);
        if (!rc && !st)
            rc = fmt_fail(err, ASR_E_NOMEM, "out of memory");
        if (!rc) {
            XXH3_64bits_reset(st);
            XXH3_64bits_update(st, env, sizeof env);
            XXH3_64bits_update(st, body, s.content_len);
            if (XXH3_64bits_digest(st) != r->footer.index_hash)
                rc = fmt_fail(err, ASR_E_CORRUPT, "index does not match the footer's checksum of it");
        }
        XXH3_freeState(st);
    }
    if (!rc && (rc = fmt_index_decode(body, (size_t)s.content_len, &r->sc.layout, r->data_start, off,
                                      r->sc.header.max_chunk_size, r->external, &r->index, &why)))
        fmt_fail(err, rc, "%s", why.msg);
    if (!rc && r->external && r->index.chunk_count * ASR_STORE_ID_SIZE != r->ids_len)
        rc = fmt_fail(err, ASR_E_CORRUPT, "index lists %llu chunks, the store id section %llu ids",
                      (unsigned long long)r->index.chunk_count, (unsigned long long)(r->ids_len / ASR_STORE_ID_SIZE));
    free(body);
    return rc;
}

/* The index checked in one pass and left in the image (index_lazy.c). */
static int open_index_lazy(struct asr_reader *r, struct asr_error *err)
{
    uint8_t env[ASR_SECTION_HEADER_SIZE];
    struct fmt_section_header s;
    uint64_t off = r->footer.index_offset;
    r->sc.stage = FMT_AT_INDEX;
    int rc = fmt_partset_read(r->ps, off, env, sizeof env, err);
    if (!rc)
        rc = fmt_scan_envelope(&r->sc, env, off, r->footer.index_length, &s);
    if (rc)
        return rc;
    struct fmt_lazy_args a = {
        .ps = r->ps, .envelope = env, .header = &s, .content_at = off + ASR_SECTION_HEADER_SIZE,
        .index_hash = r->footer.index_hash, .layout = &r->sc.layout,
        .bounds = {r->data_start, off, r->sc.header.max_chunk_size, false}, .sc = &r->sc};
    return fmt_lazy_open(&a, &r->index, r->lazy_sums, &r->lazy, err);
}

/* Chunk id's index entry, from memory or, lazily, from the image. */
static int chunk_entry(const struct asr_reader *r, uint64_t id, struct fmt_chunk_entry *e, struct asr_error *err)
{
    if (r->lazy)
        return fmt_lazy_chunk(r->lazy, id, e, err);
    if (id >= r->index.chunk_count)
        return fmt_fail(err, ASR_E_ARG, "chunk %llu does not exist", (unsigned long long)id);
    *e = r->index.chunks[id];
    return ASR_OK;
}

static void fill_info(struct asr_reader *r)
{
    struct asr_image_info *i = &r->info;
    const struct fmt_image_header *h = &r->sc.header;
    fmt_image_info_from_header(h, i);
    i->part_count = fmt_partset_count(r->ps);
    i->split_size = fmt_partset_split_size(r->ps);
    i->image_bytes = fmt_partset_file_bytes(r->ps);
    i->chunk_count = r->index.chunk_count;
    i->stored_bytes = r->lazy_sums[0];
    i->unique_bytes = r->lazy_sums[1];
    for (uint64_t c = 0; !r->lazy && c < r->index.chunk_count; c++) {
        i->stored_bytes += r->index.chunks[c].stored_len;
        i->unique_bytes += r->index.chunks[c].content_len;
    }
    for (uint32_t v = 0; v < r->index.volume_count; v++) {
        i->data_bytes += r->index.stats[v].data_bytes;
        i->zero_bytes += r->index.stats[v].zero_bytes;
        i->unreadable_bytes += r->index.stats[v].unreadable_bytes;
    }
}

/* Which reader opens the image: a snapshot's chunks are in its store, so only a reader given
 * the store opens one, and such a reader opens nothing else. */
static int check_kind(struct asr_reader *r, const char *path, struct asr_error *err)
{
    if (r->sc.external && !r->external)
        return fmt_fail(err, ASR_E_UNSUPPORTED,
                        "%s is a store snapshot (feature external-chunks): its chunks are in the store; open it as "
                        "STORE::SNAPSHOT", path);
    if (!r->sc.external && r->external)
        return fmt_fail(err, ASR_E_ARG, "%s is not a store snapshot (no feature external-chunks): open it as an image",
                        path);
    if (r->external && (fmt_partset_count(r->ps) != 1 || fmt_partset_split_size(r->ps) ||
                        (r->sc.header.compat & ASR_FEATURE_COMPAT_SPLIT)))
        return fmt_fail(err, ASR_E_CORRUPT, "%s: a store snapshot is one part, not a split set", path);
    return ASR_OK;
}

static int open_image(const char *path, const struct asr_chunk_source *src, bool lazy, struct asr_reader **out,
                      struct asr_error *err)
{
    *out = NULL;
    struct asr_reader *r = calloc(1, sizeof *r);
    if (!r)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    r->cache_id = UINT64_MAX;
    r->err = err;
    if (src) {
        r->external = true;
        r->src = *src;
    }
    fmt_scan_init(&r->sc, FMT_SCAN_STOP, scan_problem, r);
    int rc = fmt_partset_open(path, &r->ps, err);
    if (!rc)
        rc = open_footer(r, err);
    if (!rc)
        rc = open_header(r, err);
    if (!rc)
        rc = check_kind(r, path, err);
    if (!rc)
        rc = open_layout(r, err);
    if (!rc && r->external)
        rc = open_ids(r, err);
    if (!rc)
        rc = lazy && !r->external ? open_index_lazy(r, err) : open_index(r, err);
    if (!rc) {
        r->cache = malloc(r->sc.header.max_chunk_size);
        rc = r->cache ? asr_chunk_reader_new(r, &r->chunks, err) : fmt_fail(err, ASR_E_NOMEM, "out of memory");
    }
    r->err = NULL;
    if (rc) {
        asr_reader_free(r);
        return rc;
    }
    fill_info(r);
    *out = r;
    return ASR_OK;
}

int asr_reader_open(const char *path, struct asr_reader **out, struct asr_error *err)
{
    return open_image(path, NULL, false, out, err);
}

int asr_reader_open_lazy(const char *path, struct asr_reader **out, struct asr_error *err)
{
    return open_image(path, NULL, true, out, err);
}

int asr_reader_open_external(const char *path, const struct asr_chunk_source *src, struct asr_reader **out,
                             struct asr_error *err)
{
    *out = NULL;
    if (!src || !src->fetch || !src->check)
        return fmt_fail(err, ASR_E_ARG, "a store snapshot needs a chunk source with fetch and check");
    return open_image(path, src, false, out, err);
}

const uint8_t *asr_reader_store_id(const struct asr_reader *r, uint64_t chunk_id)
{
    return r->external && chunk_id < r->index.chunk_count ? r->ids + chunk_id * ASR_STORE_ID_SIZE : NULL;
}

void asr_reader_free(struct asr_reader *r)
{
    if (!r)
        return;
    fmt_partset_close(r->ps);
    fmt_scan_free(&r->sc);
    fmt_index_free(&r->index);
    fmt_lazy_free(r->lazy);
    asr_chunk_reader_free(r->chunks);
    free(r->cache);
    free(r->ids);
    free(r);
}

const struct asr_image_info *asr_reader_info(const struct asr_reader *r) { return &r->info; }
uint32_t asr_reader_disk_count(const struct asr_reader *r) { return r->sc.layout.disk_count; }
uint32_t asr_reader_volume_count(const struct asr_reader *r) { return r->sc.layout.volume_count; }
uint32_t asr_reader_stack_count(const struct asr_reader *r) { return r->sc.layout.stack_count; }

const struct asr_stack_desc *asr_reader_stack(const struct asr_reader *r, uint32_t i)
{
    return i < r->sc.layout.stack_count ? &r->sc.layout.stacks[i] : NULL;
}

const struct asr_machine_desc *asr_reader_machine(const struct asr_reader *r) { return r->sc.machine; }

const char *asr_reader_hostname(const struct asr_reader *r)
{
    return r->sc.machine && r->sc.machine->hostname[0] ? r->sc.machine->hostname : NULL;
}

const struct asr_disk_desc *asr_reader_disk(const struct asr_reader *r, uint32_t i)
{
    return i < r->sc.layout.disk_count ? &r->sc.layout.disks[i] : NULL;
}

const struct asr_volume_desc *asr_reader_volume(const struct asr_reader *r, uint32_t i)
{
    return i < r->sc.layout.volume_count ? &r->sc.layout.volumes[i] : NULL;
}

const struct asr_volume_stats *asr_reader_volume_stats(const struct asr_reader *r, uint32_t i)
{
    return i < r->index.volume_count ? &r->index.stats[i] : NULL;
}

const struct asr_extent *asr_reader_extents(const struct asr_reader *r, uint32_t v, uint64_t *count)
{
    bool have = v < r->index.volume_count && !r->lazy;
    *count = have ? r->index.stats[v].extent_count : 0;
    return have ? r->index.extents[v] : NULL;
}

int asr_reader_extents_at(const struct asr_reader *r, uint32_t v, uint64_t off, struct asr_extent *out, size_t max,
                          size_t *n, struct asr_error *err)
{
    *n = 0;
    if (r->lazy)
        return fmt_lazy_extents(r->lazy, v, off, out, max, n, err);
    if (v >= r->index.volume_count)
        return fmt_fail(err, ASR_E_ARG, "volume %u does not exist", v);
    const struct asr_extent *ext = r->index.extents[v];
    uint64_t count = r->index.stats[v].extent_count;
    for (uint64_t i = asr_extents_first_after(ext, count, off); i < count && *n < max; i++)
        out[(*n)++] = ext[i];
    return ASR_OK;
}

bool asr_reader_is_lazy(const struct asr_reader *r) { return r->lazy != NULL; }

const char *asr_reader_feature_name(const struct asr_reader *r, enum asr_feature_class cls, unsigned bit)
{
    for (uint32_t i = 0; i < r->sc.header.feature_count; i++)
        if (r->sc.header.features[i].cls == cls && r->sc.header.features[i].bit == bit)
            return r->sc.header.features[i].name;
    return NULL;
}

/* A chunk reader of its own per thread: partset reads are positioned (pread), so any number of
 * chunk readers share one reader's files; each has its own buffer and zstd context. */
struct asr_chunk_reader {
    const struct asr_reader *r;
    ZSTD_DCtx *dctx;
    uint8_t *stored; /* one chunk as stored: header and data */
};

int asr_chunk_reader_new(const struct asr_reader *r, struct asr_chunk_reader **out, struct asr_error *err)
{
    *out = NULL;
    struct asr_chunk_reader *c = calloc(1, sizeof *c);
    if (c) {
        c->r = r;
        c->dctx = ZSTD_createDCtx();
        c->stored = malloc(ASR_CHUNK_HEADER_SIZE + (size_t)r->sc.header.max_chunk_size);
    }
    if (!c || !c->dctx || !c->stored) {
        asr_chunk_reader_free(c);
        return fmt_fail(err, ASR_E_NOMEM, "out of memory for a chunk reader");
    }
    *out = c;
    return ASR_OK;
}

void asr_chunk_reader_free(struct asr_chunk_reader *c)
{
    if (!c)
        return;
    ZSTD_freeDCtx(c->dctx);
    free(c->stored);
    free(c);
}

uint32_t asr_reader_chunk_len(const struct asr_reader *r, uint64_t chunk_id)
{
    struct fmt_chunk_entry e;
    struct asr_error err = {0};
    return chunk_entry(r, chunk_id, &e, &err) ? 0 : e.content_len;
}

void asr_reader_prefetch(const struct asr_reader *r, uint64_t chunk_id, uint64_t bytes)
{
    struct fmt_chunk_entry e;
    struct asr_error err = {0};
    if (!r->external && !chunk_entry(r, chunk_id, &e, &err)) /* a snapshot's file holds no chunk */
        fmt_partset_prefetch(r->ps, e.offset, bytes);
}

void asr_reader_prefetch_chunks(const struct asr_reader *r, const uint64_t *chunk_ids, size_t n, uint64_t bytes)
{
    if (!r->external || !r->src.prefetch || !n)
        return;
    uint8_t *ids = malloc(n * ASR_STORE_ID_SIZE);
    if (!ids)
        return; /* advice only */
    size_t k = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < n && sum < bytes; i++) {
        if (chunk_ids[i] >= r->index.chunk_count)
            continue;
        memcpy(ids + k++ * ASR_STORE_ID_SIZE, r->ids + chunk_ids[i] * ASR_STORE_ID_SIZE, ASR_STORE_ID_SIZE);
        sum += ASR_CHUNK_HEADER_SIZE + (uint64_t)r->index.chunks[chunk_ids[i]].stored_len;
    }
    r->src.prefetch(r->src.ctx, ids, k);
    free(ids);
}

const char *asr_reader_chunk_where(const struct asr_reader *r, uint64_t id, char *buf, size_t n)
{
    struct fmt_chunk_entry e;
    struct asr_error err = {0};
    if (chunk_entry(r, id, &e, &err)) {
        snprintf(buf, n, "%s", err.msg);
        return buf;
    }
    if (r->external) {
        char hex[2 * ASR_STORE_ID_SIZE + 1];
        snprintf(buf, n, "store id %s", store_hex(r, id, hex));
        return buf;
    }
    return where(r, e.offset, buf, n);
}

/* A snapshot's chunk id, from the store: the record the source fetches is checked as an image's
 * chunk record is (numbered 0, as the store keeps it, and wherever it lies), then its content
 * against the store id. */
static int read_external(struct asr_chunk_reader *c, uint64_t id, const struct fmt_chunk_entry *e, void *buf,
                         size_t cap, struct fmt_chunk_header *hout, struct asr_error *err)
{
    const struct asr_reader *r = c->r;
    const uint8_t *sid = r->ids + id * ASR_STORE_ID_SIZE;
    char hex[2 * ASR_STORE_ID_SIZE + 1], place[256] = "";
    struct fmt_chunk_header h;
    struct asr_error why = {0};
    size_t cap_rec = ASR_CHUNK_HEADER_SIZE + (size_t)r->sc.header.max_chunk_size, len = 0;
    int rc = r->src.fetch(r->src.ctx, sid, c->stored, cap_rec, &len, place, sizeof place, &why);
    place[sizeof place - 1] = 0;
    if (rc)
        return fmt_fail(err, rc, "chunk %llu (store id %s): %s%s%s", (unsigned long long)id, store_hex(r, id, hex),
                        why.msg[0] ? why.msg : "cannot be fetched", place[0] ? ": " : "", place);
    if (len < ASR_CHUNK_HEADER_SIZE || len > cap_rec)
        rc = fmt_fail(&why, ASR_E_CORRUPT, "record of %zu bytes", len);
    else if (!(rc = fmt_chunk_header_decode(c->stored, &h, &why)) &&
             (h.chunk_id != 0 || h.stored_len != e->stored_len || h.content_len != e->content_len ||
              !fmt_hash128_eq(h.content_hash, e->content_hash)))
        rc = fmt_fail(&why, ASR_E_CORRUPT, FMT_CHUNK_DISAGREES);
    else if (!rc && len != ASR_CHUNK_HEADER_SIZE + (size_t)h.stored_len)
        rc = fmt_fail(&why, ASR_E_CORRUPT, "record of %zu bytes for %u stored bytes", len, h.stored_len);
    if (!rc)
        rc = fmt_chunk_decode(&h, c->stored + ASR_CHUNK_HEADER_SIZE, buf, cap, r->sc.header.hash_seed, c->dctx, &why);
    if (!rc && !r->src.check(r->src.ctx, sid, buf, h.content_len))
        rc = fmt_fail(&why, ASR_E_CORRUPT, "content does not match its id");
    if (rc)
        return fmt_fail(err, rc, "chunk %llu (store id %s): %s: %s", (unsigned long long)id, store_hex(r, id, hex),
                        why.msg, place[0] ? place : "the store");
    *hout = h;
    return ASR_OK;
}

/* Reads chunk id into buf (cap bytes), checking it against its index entry and its checksums;
 * *hout is the header of its record, whose stored bytes stay in c->stored until the next read. */
static int read_checked(struct asr_chunk_reader *c, uint64_t id, void *buf, size_t cap, struct fmt_chunk_header *hout,
                        struct asr_error *err)
{
    const struct asr_reader *r = c->r;
    struct fmt_chunk_entry entry;
    int rc = chunk_entry(r, id, &entry, err);
    if (rc)
        return rc;
    const struct fmt_chunk_entry *e = &entry;
    if (cap < e->content_len)
        return fmt_fail(err, ASR_E_ARG, "buffer of %zu bytes too small for chunk of %u", cap, e->content_len);
    if (r->external)
        return read_external(c, id, e, buf, cap, hout, err);
    char at[512];
    struct fmt_chunk_header h;
    struct asr_error why = {0};
    rc = fmt_partset_read(r->ps, e->offset, c->stored, ASR_CHUNK_HEADER_SIZE + (size_t)e->stored_len, err);
    if (rc)
        return rc;
    if (!(rc = fmt_chunk_header_decode(c->stored, &h, &why)) && !fmt_chunk_agrees(&h, e->offset, id, e))
        rc = fmt_fail(&why, ASR_E_CORRUPT, FMT_CHUNK_DISAGREES);
    if (!rc)
        rc = fmt_chunk_decode(&h, c->stored + ASR_CHUNK_HEADER_SIZE, buf, cap, r->sc.header.hash_seed, c->dctx, &why);
    if (rc)
        return fmt_fail(err, rc, "chunk %llu: %s: %s", (unsigned long long)id, why.msg,
                        where(r, e->offset, at, sizeof at));
    *hout = h;
    return ASR_OK;
}

int asr_chunk_reader_read(struct asr_chunk_reader *c, uint64_t id, void *buf, size_t cap, uint32_t *content_len,
                          struct asr_error *err)
{
    struct fmt_chunk_header h;
    int rc = read_checked(c, id, buf, cap, &h, err);
    if (!rc && content_len)
        *content_len = h.content_len;
    return rc;
}

int asr_chunk_reader_read_record(struct asr_chunk_reader *c, uint64_t id, void *buf, size_t cap,
                                 struct asr_chunk *record, struct asr_error *err)
{
    struct fmt_chunk_header h;
    int rc = read_checked(c, id, buf, cap, &h, err);
    if (rc)
        return rc;
    *record = (struct asr_chunk){.codec = h.codec, .stored = c->stored + ASR_CHUNK_HEADER_SIZE,
                                 .stored_len = h.stored_len, .content_len = h.content_len,
                                 .content_hash = h.content_hash};
    return ASR_OK;
}

/* Loads chunk id into the cache. */
static int load_chunk(struct asr_reader *r, uint64_t id, struct asr_error *err)
{
    if (r->cache_id == id)
        return ASR_OK;
    r->cache_id = UINT64_MAX;
    int rc = asr_chunk_reader_read(r->chunks, id, r->cache, r->sc.header.max_chunk_size, &r->cache_len, err);
    if (rc)
        return rc;
    r->cache_id = id;
    return ASR_OK;
}

int asr_reader_read_chunk(struct asr_reader *r, uint64_t id, void *buf, size_t cap, uint32_t *content_len,
                          struct asr_error *err)
{
    int rc = load_chunk(r, id, err);
    if (rc)
        return rc;
    if (cap < r->cache_len)
        return fmt_fail(err, ASR_E_ARG, "buffer of %zu bytes too small for chunk of %u", cap, r->cache_len);
    memcpy(buf, r->cache, r->cache_len);
    if (content_len)
        *content_len = r->cache_len;
    return ASR_OK;
}

int asr_reader_walk_extents(const struct asr_reader *r, uint32_t v, uint64_t off, uint64_t len, asr_extent_fn fn,
                            void *ctx, struct asr_error *err)
{
    enum { BATCH = 64 };
    struct asr_extent batch[BATCH];
    uint64_t end = off + len, pos = off;
    size_t n = 0;
    do {
        int rc = asr_reader_extents_at(r, v, pos, batch, BATCH, &n, err);
        for (size_t i = 0; !rc && i < n && batch[i].offset < end; i++) {
            uint64_t from = batch[i].offset > pos ? batch[i].offset : pos;
            uint64_t to = batch[i].offset + batch[i].length < end ? batch[i].offset + batch[i].length : end;
            rc = fn(&batch[i], from, to, ctx);
            pos = to;
        }
        if (rc)
            return rc;
    } while (n == BATCH && batch[BATCH - 1].offset < end && pos < end);
    return ASR_OK;
}

struct volume_read {
    struct asr_reader *r;
    uint32_t v;
    uint64_t offset;
    uint8_t *buf;
    uint64_t unreadable_at; /* UINT64_MAX: none */
    struct asr_error *err;
};

static int read_extent(const struct asr_extent *e, uint64_t from, uint64_t to, void *ctx)
{
    struct volume_read *vr = ctx;
    struct asr_reader *r = vr->r;
    if (e->ref == ASR_REF_ZERO)
        return ASR_OK;
    if (e->ref == ASR_REF_UNREADABLE) {
        if (vr->unreadable_at == UINT64_MAX)
            vr->unreadable_at = from;
        return ASR_OK;
    }
    int rc = load_chunk(r, e->ref, vr->err);
    if (rc)
        return rc;
    uint64_t in = e->chunk_offset + (from - e->offset);
    if (in > r->cache_len || to - from > r->cache_len - in) /* a lazy index checks this only now */
        return fmt_fail(vr->err, ASR_E_CORRUPT, "volume %u extent at %llu runs past the end of chunk %llu", vr->v,
                        (unsigned long long)e->offset, (unsigned long long)e->ref);
    memcpy(vr->buf + (from - vr->offset), r->cache + in, to - from);
    return ASR_OK;
}

int asr_reader_read_volume(struct asr_reader *r, uint32_t v, uint64_t offset, void *buf, size_t len,
                           struct asr_error *err)
{
    if (v >= r->sc.layout.volume_count)
        return fmt_fail(err, ASR_E_ARG, "volume %u does not exist", v);
    uint64_t size = r->sc.layout.volumes[v].size_bytes;
    if (offset > size || len > size - offset)
        return fmt_fail(err, ASR_E_ARG, "read of %zu bytes at %llu past the end of volume %u", len,
                        (unsigned long long)offset, v);
    memset(buf, 0, len);
    struct volume_read vr = {r, v, offset, buf, UINT64_MAX, err};
    int rc = asr_reader_walk_extents(r, v, offset, len, read_extent, &vr, err);
    if (rc)
        return rc;
    if (vr.unreadable_at != UINT64_MAX)
        return fmt_fail(err, ASR_E_UNREADABLE, "volume %u offset %llu was unreadable on the source disk", v,
                        (unsigned long long)vr.unreadable_at);
    return ASR_OK;
}

/* For the verifier: the parts of the reader it cross-checks a sequential scan against. */
const struct fmt_index *fmt_reader_index(const struct asr_reader *r) { return &r->index; }
uint64_t fmt_reader_data_start(const struct asr_reader *r) { return r->data_start; }
uint64_t fmt_reader_index_offset(const struct asr_reader *r) { return r->footer.index_offset; }
