/* The verifier: walks the logical stream from its first byte to the index, checking every
 * structure it meets (so every byte is covered by some checksum), cross-checks what it saw with
 * the index, and recomputes each volume's content hash. It reports each bad structure with its
 * location and carries on past damage by resynchronising on the next valid record. A store
 * snapshot's walk meets its store id section where an image has chunks; its chunks are read
 * from the store, each damaged one reported by id and place, and the rest checked regardless. */
#include "internal.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"
#include <zstd.h>

struct verifier {
    const struct asr_chunk_source *src; /* a store snapshot's chunks; NULL for an image */
    struct fmt_partset *ps;
    struct asr_reader *r; /* NULL when the image does not open: scan only */
    const struct fmt_index *ix;
    asr_problem_fn on_problem;
    void *problem_ctx;
    asr_progress_fn on_progress;
    void *progress_ctx;
    struct asr_verify_report *rep;
    struct asr_error first;
    uint64_t end;         /* scan up to here: the index offset, or the image end if no footer */
    uint64_t total_work;  /* for progress */
    uint32_t max_chunk;
    uint64_t seed;
    struct fmt_scan sc;   /* the record walk, resynchronising after damage */
    uint64_t *cursor;     /* per volume: inline extents matched against the index so far */
    uint8_t *referenced;  /* bitmap: chunks some extent uses (content checked in the volume pass) */
    uint8_t *fetched;     /* snapshot, per chunk: 0 not yet read, 1 good, 2 damaged (reported once) */
    XXH3_state_t *stream;
    bool stream_valid;
    ZSTD_DCtx *dctx;
    uint8_t *stored, *content; /* one chunk as stored; its content */
    uint8_t *section;          /* one section, envelope and body */
    size_t section_cap;
    struct asr_extent *ext;    /* one extent record, decoded */
};

static void problem(struct verifier *v, enum asr_status code, const char *what, uint64_t off, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

static void problem(struct verifier *v, enum asr_status code, const char *what, uint64_t off, const char *fmt, ...)
{
    char msg[ASR_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct asr_problem p = {code, what, 0, 0, off, msg};
    if (v->ps && off != UINT64_MAX)
        fmt_partset_locate(v->ps, off, &p.part, &p.part_offset);
    else
        p.logical_offset = 0;
    if (v->rep->problems++ == 0) {
        if (p.part)
            fmt_fail(&v->first, code, "%s: %s: %s offset %llu", what, msg, fmt_partset_path(v->ps, p.part),
                     (unsigned long long)p.part_offset);
        else
            fmt_fail(&v->first, code, "%s: %s", what, msg);
    }
    if (v->on_problem)
        v->on_problem(&p, v->problem_ctx);
}

static void progress(struct verifier *v, uint64_t done)
{
    if (v->on_progress)
        v->on_progress(done, v->total_work, v->progress_ctx);
}

/* A structure passed: its bytes count as checked and feed the whole-stream hash. */
static void covered(struct verifier *v, const uint8_t *bytes, size_t len)
{
    v->rep->structures++;
    v->rep->bytes_checked += len;
    if (v->stream_valid)
        XXH3_128bits_update(v->stream, bytes, len);
}

/* Buffers for one chunk of up to max_chunk bytes (and a resync window): sized from the image
 * header once it is known, so checking an image of small chunks stays small. */
static int size_buffers(struct verifier *v, uint32_t max_chunk)
{
    size_t stored = ASR_CHUNK_HEADER_SIZE + (size_t)max_chunk;
    if (stored < FMT_RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE)
        stored = FMT_RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE;
    uint8_t *a = realloc(v->stored, stored), *b = a ? realloc(v->content, max_chunk) : NULL;
    if (a)
        v->stored = a;
    if (b)
        v->content = b;
    return a && b ? 0 : -1;
}

/* A structure could not be framed: the stream hash is lost, and the walk goes on at the next
 * record whose header checks out. */
static uint64_t resync(struct verifier *v, uint64_t from)
{
    v->stream_valid = false;
    return fmt_scan_resync(v->ps, from, v->end, v->stored);
}

static void scan_problem(void *ctx, const struct fmt_problem *p)
{
    problem(ctx, p->code, p->what, p->at, "%s", p->msg);
}

/* ---- one structure each ------------------------------------------------------------------- */

static uint64_t check_header(struct verifier *v)
{
    struct asr_error why = {0};
    size_t avail = v->end < ASR_IMAGE_HEADER_MAX ? (size_t)v->end : ASR_IMAGE_HEADER_MAX;
    if (fmt_partset_read(v->ps, 0, v->stored, avail, &why)) {
        problem(v, ASR_E_CORRUPT, "image header", 0, "%s", why.msg);
        avail = 0; /* the scanner takes it as damaged and goes on */
    }
    const struct fmt_image_header *h = &v->sc.header;
    if (fmt_scan_header(&v->sc, v->stored, avail, fmt_partset_uuid(v->ps))) {
        if (size_buffers(v, ASR_MAX_CHUNK_SIZE)) {
            problem(v, ASR_E_NOMEM, "verify", UINT64_MAX, "out of memory");
            return v->end;
        }
        return resync(v, 0);
    }
    if (h->ro_compat & ~ASR_KNOWN_RO_COMPAT)
        problem(v, ASR_E_UNSUPPORTED, "image header", 0,
                "read-only-compatible features 0x%llx are unknown to this asrimg: not every check can be made",
                (unsigned long long)(h->ro_compat & ~ASR_KNOWN_RO_COMPAT));
    v->max_chunk = h->max_chunk_size;
    v->seed = h->hash_seed;
    covered(v, v->stored, h->header_len);
    if (size_buffers(v, v->max_chunk)) {
        problem(v, ASR_E_NOMEM, "verify", UINT64_MAX, "out of memory");
        return v->end;
    }
    return h->header_len;
}

/* Reads the section at pos into v->section (body after the envelope). 0 when it cannot be
 * framed (reported). */
static uint64_t read_section(struct verifier *v, uint64_t pos, const char *what, struct fmt_section_header *s)
{
    struct asr_error why = {0};
    uint8_t hdr[ASR_SECTION_HEADER_SIZE];
    if (v->end - pos < ASR_SECTION_HEADER_SIZE || fmt_partset_read(v->ps, pos, hdr, sizeof hdr, &why)) {
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg[0] ? why.msg : "truncated");
        return 0;
    }
    if (fmt_scan_envelope(&v->sc, hdr, pos, v->end - pos, s))
        return 0;
    size_t need = ASR_SECTION_HEADER_SIZE + (size_t)s->content_len;
    if (need > v->section_cap) {
        uint8_t *grown = realloc(v->section, need);
        if (!grown) {
            problem(v, ASR_E_NOMEM, what, pos, "out of memory for %zu bytes", need);
            return 0;
        }
        v->section = grown;
        v->section_cap = need;
    }
    memcpy(v->section, hdr, sizeof hdr);
    if (fmt_partset_read(v->ps, pos + ASR_SECTION_HEADER_SIZE, v->section + ASR_SECTION_HEADER_SIZE, s->content_len,
                         &why)) {
        problem(v, ASR_E_IO, what, pos, "%s", why.msg);
        return 0;
    }
    if (fmt_scan_content(&v->sc, s, v->section + ASR_SECTION_HEADER_SIZE, pos))
        return 0;
    return need;
}

static uint64_t check_layout_section(struct verifier *v, uint64_t pos, uint32_t tag)
{
    struct fmt_section_header s;
    uint64_t n = read_section(v, pos, tag == ASR_TAG_LAYOUT ? "layout section" : "volume table", &s);
    if (!n)
        return 0;
    fmt_scan_layout(&v->sc, s.tag, v->section + ASR_SECTION_HEADER_SIZE, (size_t)s.content_len, pos);
    covered(v, v->section, (size_t)n);
    return n;
}

static void cross_check_chunk(struct verifier *v, uint64_t pos, const struct fmt_chunk_header *h, const char *what)
{
    if (!v->ix)
        return;
    if (h->chunk_id >= v->ix->chunk_count) {
        problem(v, ASR_E_CORRUPT, what, pos, "not in the index");
        return;
    }
    const struct fmt_chunk_entry *e = &v->ix->chunks[h->chunk_id];
    if (!fmt_chunk_agrees(h, pos, h->chunk_id, e))
        problem(v, ASR_E_CORRUPT, what, pos, FMT_CHUNK_DISAGREES);
}

static uint64_t check_chunk(struct verifier *v, uint64_t pos)
{
    struct fmt_chunk_header h;
    struct asr_error why = {0};
    if (v->end - pos < ASR_CHUNK_HEADER_SIZE || fmt_partset_read(v->ps, pos, v->stored, ASR_CHUNK_HEADER_SIZE, &why)) {
        char what[48];
        snprintf(what, sizeof what, "chunk %llu", (unsigned long long)v->sc.next_chunk);
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg[0] ? why.msg : "truncated");
        return 0;
    }
    if (fmt_scan_chunk(&v->sc, v->stored, pos, v->end - pos, &h))
        return 0;
    const char *what = v->sc.what;
    uint8_t *stored = v->stored + ASR_CHUNK_HEADER_SIZE;
    if (fmt_partset_read(v->ps, pos + ASR_CHUNK_HEADER_SIZE, stored, h.stored_len, &why)) {
        problem(v, ASR_E_IO, what, pos, "%s", why.msg);
        return 0;
    }
    cross_check_chunk(v, pos, &h, what);
    /* Referenced chunks get their content checked in the volume pass; check the rest here. */
    bool referenced = v->referenced && h.chunk_id < v->ix->chunk_count &&
                      (v->referenced[h.chunk_id / 8] >> (h.chunk_id % 8)) & 1;
    int rc = referenced ? (XXH3_64bits(stored, h.stored_len) == h.stored_hash
                               ? ASR_OK : fmt_fail(&why, ASR_E_CORRUPT, "stored data checksum mismatch"))
                        : fmt_chunk_decode(&h, stored, v->content, v->max_chunk, v->seed, v->dctx, &why);
    if (rc) {
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg);
        v->stream_valid = false;
        return ASR_CHUNK_HEADER_SIZE + h.stored_len;
    }
    v->rep->chunks++;
    covered(v, v->stored, ASR_CHUNK_HEADER_SIZE + (size_t)h.stored_len);
    return ASR_CHUNK_HEADER_SIZE + h.stored_len;
}

/* The extents of a record against the index's copy of them, in order. */
static void cross_check_extents(struct verifier *v, uint64_t pos, uint32_t vol, uint32_t count)
{
    if (!v->ix || !count)
        return;
    if (vol >= v->ix->volume_count || v->cursor[vol] + count > v->ix->stats[vol].extent_count) {
        problem(v, ASR_E_CORRUPT, "extent record", pos, "volume %u: more extents than the index holds", vol);
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        const struct asr_extent *got = &v->ext[i], *want = &v->ix->extents[vol][v->cursor[vol] + i];
        if (got->offset != want->offset || got->length != want->length || got->ref != want->ref ||
            got->chunk_offset != want->chunk_offset) {
            problem(v, ASR_E_CORRUPT, "extent record", pos, "volume %u: extent %u differs from the index", vol, i);
            break;
        }
    }
    v->cursor[vol] += count;
}

static uint64_t check_extent_record(struct verifier *v, uint64_t pos)
{
    struct fmt_section_header s;
    uint64_t n = read_section(v, pos, "extent record", &s);
    if (!n)
        return 0;
    uint32_t vol, count;
    fmt_scan_extents(&v->sc, v->section + ASR_SECTION_HEADER_SIZE, (size_t)s.content_len, pos, &vol, v->ext, &count);
    cross_check_extents(v, pos, vol, count);
    covered(v, v->section, (size_t)n);
    return n;
}

/* A snapshot's store id section: one id for each chunk of the index. */
static uint64_t check_ids(struct verifier *v, uint64_t pos)
{
    struct fmt_section_header s;
    uint64_t n = read_section(v, pos, "store id section", &s);
    if (!n)
        return 0;
    fmt_scan_ids(&v->sc, v->section + ASR_SECTION_HEADER_SIZE, (size_t)s.content_len, pos);
    if (v->ix && s.content_len != v->ix->chunk_count * ASR_STORE_ID_SIZE)
        problem(v, ASR_E_CORRUPT, "store id section", pos, "holds %llu bytes for the index's %llu chunks",
                (unsigned long long)s.content_len, (unsigned long long)v->ix->chunk_count);
    covered(v, v->section, (size_t)n);
    return n;
}

/* ---- passes ---------------------------------------------------------------------------------- */

static void scan_stream(struct verifier *v)
{
    uint64_t pos = check_header(v);
    while (pos < v->end) {
        progress(v, pos);
        uint8_t tagb[4];
        uint64_t n = 0;
        if (v->end - pos >= 4 && !fmt_partset_read(v->ps, pos, tagb, 4, NULL)) {
            uint32_t tag = get_le32(tagb);
            if (v->sc.external && tag == ASR_TAG_IDS)
                n = check_ids(v, pos);
            else if (v->sc.external && (tag == ASR_TAG_CHUNK || tag == ASR_TAG_EXTENTS))
                fmt_scan_stray(&v->sc, tagb, pos);
            else if (tag == ASR_TAG_CHUNK)
                n = check_chunk(v, pos);
            else if (tag == ASR_TAG_EXTENTS)
                n = check_extent_record(v, pos);
            else if (tag == ASR_TAG_LAYOUT || tag == ASR_TAG_VOLUMES)
                n = check_layout_section(v, pos, tag);
            else
                fmt_scan_stray(&v->sc, tagb, pos);
        } else {
            problem(v, ASR_E_CORRUPT, "stream", pos, "truncated record");
        }
        pos = n ? pos + n : resync(v, pos);
    }
    fmt_scan_finish(&v->sc);
}

static void check_against_index(struct verifier *v)
{
    if (!v->ix)
        return;
    if (v->sc.next_chunk != v->ix->chunk_count)
        problem(v, ASR_E_CORRUPT, "index", fmt_reader_index_offset(v->r), "lists %llu chunks, the stream holds %llu",
                (unsigned long long)v->ix->chunk_count, (unsigned long long)v->sc.next_chunk);
    for (uint32_t vol = 0; vol < v->ix->volume_count && !v->sc.external; vol++)
        if (v->cursor[vol] != v->ix->stats[vol].extent_count)
            problem(v, ASR_E_CORRUPT, "index", fmt_reader_index_offset(v->r),
                    "volume %u: %llu extents, the stream's extent records hold %llu", vol,
                    (unsigned long long)v->ix->stats[vol].extent_count, (unsigned long long)v->cursor[vol]);
    XXH128_hash_t h = XXH3_128bits_digest(v->stream);
    if (v->stream_valid && !fmt_hash128_eq((struct asr_hash128){h.low64, h.high64}, v->ix->stream_hash))
        problem(v, ASR_E_CORRUPT, "image", UINT64_MAX, "whole-stream checksum mismatch");
}

/* Chunk id's content into v->content, or false with the problem reported. A snapshot's damaged
 * chunk is reported once, however many extents use it. */
static bool read_content(struct verifier *v, uint64_t id, const char *what)
{
    if (v->fetched && v->fetched[id] == 2)
        return false;
    struct asr_error why = {0};
    uint32_t len;
    if (asr_reader_read_chunk(v->r, id, v->content, v->max_chunk, &len, &why)) {
        problem(v, why.code, what, v->fetched ? UINT64_MAX : v->ix->chunks[id].offset, "%s", why.msg);
        if (v->fetched)
            v->fetched[id] = 2;
        return false;
    }
    if (v->fetched && !v->fetched[id]) {
        v->fetched[id] = 1;
        v->rep->chunks++;
        v->rep->store_bytes += v->ix->chunks[id].stored_len;
    }
    return true;
}

static void check_volumes(struct verifier *v, uint64_t done)
{
    if (!v->r)
        return;
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        problem(v, ASR_E_NOMEM, "volumes", UINT64_MAX, "out of memory");
        return;
    }
    for (uint32_t vol = 0; vol < v->ix->volume_count; vol++) {
        char what[32];
        snprintf(what, sizeof what, "volume %u", vol);
        XXH3_128bits_reset_withSeed(st, v->seed);
        bool ok = true;
        for (uint64_t i = 0; i < v->ix->stats[vol].extent_count; i++) {
            const struct asr_extent *e = &v->ix->extents[vol][i];
            const uint8_t *content = NULL;
            if (e->ref < ASR_REF_UNREADABLE) {
                /* A snapshot goes on past a damaged chunk, to name every other one. */
                if (!read_content(v, e->ref, what)) {
                    ok = false;
                    if (!v->fetched)
                        break;
                    continue;
                }
                content = v->content + e->chunk_offset;
                done += e->length;
                progress(v, done);
            }
            if (ok)
                fmt_volume_hash_extent(st, e, content);
        }
        XXH128_hash_t h = XXH3_128bits_digest(st);
        if (ok && !fmt_hash128_eq((struct asr_hash128){h.low64, h.high64}, v->ix->stats[vol].content_hash))
            problem(v, ASR_E_CORRUPT, what, UINT64_MAX, "content hash mismatch");
        v->rep->volumes++;
    }
    XXH3_freeState(st);
    /* A snapshot's chunks that no extent uses are in the store all the same: check them too, as
     * an image's are checked in its walk. */
    for (uint64_t id = 0; v->fetched && id < v->ix->chunk_count; id++)
        if (!((v->referenced[id / 8] >> (id % 8)) & 1))
            read_content(v, id, "chunk table");
}

/* Whether the image at ps declares external-chunks (-1: its header does not decode; the walk
 * reports that). */
static int is_snapshot(struct verifier *v)
{
    uint64_t size = fmt_partset_size(v->ps);
    size_t avail = size < ASR_IMAGE_HEADER_MAX ? (size_t)size : ASR_IMAGE_HEADER_MAX;
    uint8_t *raw = malloc(avail ? avail : 1);
    struct fmt_image_header *h = malloc(sizeof *h);
    int snap = -1;
    if (raw && h && !fmt_partset_read(v->ps, 0, raw, avail, NULL) && !fmt_image_header_decode(raw, avail, h, NULL))
        snap = (h->incompat & ASR_FEATURE_INCOMPAT_EXTERNAL) != 0;
    free(raw);
    free(h);
    return snap;
}

static int prepare(struct verifier *v, const char *path, struct asr_error *err)
{
    int rc = fmt_partset_open(path, &v->ps, err);
    if (rc)
        return rc; /* not an image at all, or a broken split set: one error, no structure list */
    int snap = is_snapshot(v);
    if (snap == 1 && !v->src)
        return fmt_fail(err, ASR_E_UNSUPPORTED,
                        "%s is a store snapshot (feature external-chunks): its chunks are in the store; verify it "
                        "as STORE::SNAPSHOT", path);
    if (snap == 0 && v->src)
        return fmt_fail(err, ASR_E_ARG, "%s is not a store snapshot (no feature external-chunks): verify it as an image",
                        path);
    struct asr_error why = {0};
    if (v->src ? asr_reader_open_external(path, v->src, &v->r, &why) : asr_reader_open(path, &v->r, &why))
        problem(v, why.code, why.code == ASR_E_INCOMPLETE ? "footer" : "image", UINT64_MAX, "%s", why.msg);
    v->end = fmt_partset_size(v->ps);
    if (v->r) {
        v->rep->complete = true;
        v->ix = fmt_reader_index(v->r);
        v->end = fmt_reader_index_offset(v->r);
        v->cursor = calloc(v->ix->volume_count + 1u, sizeof *v->cursor);
        v->referenced = calloc(v->ix->chunk_count / 8 + 1, 1);
        if (v->src)
            v->fetched = calloc(v->ix->chunk_count + 1, 1);
        if (!v->cursor || !v->referenced || (v->src && !v->fetched))
            return fmt_fail(err, ASR_E_NOMEM, "out of memory");
        for (uint32_t vol = 0; vol < v->ix->volume_count; vol++) {
            v->total_work += v->ix->stats[vol].data_bytes;
            for (uint64_t i = 0; i < v->ix->stats[vol].extent_count; i++) {
                uint64_t ref = v->ix->extents[vol][i].ref;
                if (ref < ASR_REF_UNREADABLE)
                    v->referenced[ref / 8] |= (uint8_t)(1u << (ref % 8));
            }
        }
    } else {
        /* Without a trustworthy index, the footer (if any) still bounds the scan. */
        uint8_t raw[ASR_FOOTER_SIZE];
        struct fmt_footer f;
        if (v->end >= ASR_FOOTER_SIZE && !fmt_partset_read(v->ps, v->end - ASR_FOOTER_SIZE, raw, sizeof raw, NULL) &&
            !fmt_footer_decode(raw, &f, NULL) && f.index_offset < v->end)
            v->end = f.index_offset;
    }
    v->total_work += v->end;
    v->max_chunk = ASR_MAX_CHUNK_SIZE;
    v->stream = XXH3_createState();
    v->dctx = ZSTD_createDCtx();
    v->ext = malloc(ASR_MAX_EXTENT_RECORD * sizeof *v->ext);
    if (!v->stream || !v->dctx || !v->ext || size_buffers(v, ASR_IMAGE_HEADER_MAX))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    XXH3_128bits_reset(v->stream);
    v->stream_valid = true;
    return ASR_OK;
}
static void release(struct verifier *v)
{
    asr_reader_free(v->r);
    fmt_partset_close(v->ps);
    fmt_scan_free(&v->sc);
    XXH3_freeState(v->stream);
    ZSTD_freeDCtx(v->dctx);
    free(v->stored);
    free(v->content);
    free(v->cursor);
    free(v->referenced);
    free(v->fetched);
    free(v->section);
    free(v->ext);
}

static int verify_image(const char *path, const struct asr_chunk_source *src, asr_problem_fn on_problem,
                        void *problem_ctx, asr_progress_fn on_progress, void *progress_ctx,
                        struct asr_verify_report *report, struct asr_error *err)
{
    struct asr_verify_report local;
    struct verifier v = {.src = src, .on_problem = on_problem, .problem_ctx = problem_ctx, .on_progress = on_progress,
                         .progress_ctx = progress_ctx, .rep = report ? report : &local};
    memset(v.rep, 0, sizeof *v.rep);
    fmt_scan_init(&v.sc, FMT_SCAN_RESYNC, scan_problem, &v);
    struct asr_error scratch = {0};
    int rc = prepare(&v, path, &scratch);
    if (!rc) {
        scan_stream(&v);
        check_against_index(&v);
        check_volumes(&v, v.end);
        progress(&v, v.total_work);
    } else {
        release(&v);
        if (err)
            *err = scratch;
        return rc;
    }
    release(&v);
    if (v.rep->problems == 0)
        return ASR_OK;
    if (err)
        *err = v.first;
    return v.first.code ? (int)v.first.code : ASR_E_CORRUPT;
}

int asr_verify(const char *path, asr_problem_fn on_problem, void *problem_ctx, asr_progress_fn on_progress,
               void *progress_ctx, struct asr_verify_report *report, struct asr_error *err)
{
    return verify_image(path, NULL, on_problem, problem_ctx, on_progress, progress_ctx, report, err);
}

int asr_verify_external(const char *path, const struct asr_chunk_source *src, asr_problem_fn on_problem,
                        void *problem_ctx, asr_progress_fn on_progress, void *progress_ctx,
                        struct asr_verify_report *report, struct asr_error *err)
{
    if (!src || !src->fetch || !src->check) {
        if (report)
            memset(report, 0, sizeof *report);
        return fmt_fail(err, ASR_E_ARG, "a store snapshot needs a chunk source with fetch and check");
    }
    return verify_image(path, src, on_problem, problem_ctx, on_progress, progress_ctx, report, err);
}
