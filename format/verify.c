/* The verifier: walks the logical stream from its first byte to the index, checking every
 * structure it meets (so every byte is covered by some checksum), cross-checks what it saw with
 * the index, and recomputes each volume's content hash. It reports each bad structure with its
 * location and carries on past damage by resynchronising on the next valid record. */
#include "internal.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"
#include <zstd.h>

#define RESYNC_WINDOW (64u << 10)

struct verifier {
    struct asr_partset *ps;
    struct asr_reader *r; /* NULL when the image does not open: scan only */
    const struct asr_index *ix;
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
    bool have_header, seen_layout, seen_volumes, layout_bad;
    struct asr_layout layout;
    uint64_t next_chunk;
    uint64_t *cursor;     /* per volume: inline extents matched against the index so far */
    uint8_t *referenced;  /* bitmap: chunks some extent uses (content checked in the volume pass) */
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
        asr_partset_locate(v->ps, off, &p.part, &p.part_offset);
    else
        p.logical_offset = 0;
    if (v->rep->problems++ == 0) {
        if (p.part)
            asr_fail(&v->first, code, "%s: %s: %s offset %llu", what, msg, asr_partset_path(v->ps, p.part),
                     (unsigned long long)p.part_offset);
        else
            asr_fail(&v->first, code, "%s: %s", what, msg);
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
    if (stored < RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE)
        stored = RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE;
    uint8_t *a = realloc(v->stored, stored), *b = a ? realloc(v->content, max_chunk) : NULL;
    if (a)
        v->stored = a;
    if (b)
        v->content = b;
    return a && b ? 0 : -1;
}

/* ---- resynchronisation -------------------------------------------------------------------- */

static bool plausible_record(const uint8_t *p, size_t avail)
{
    struct asr_chunk_header c;
    struct asr_section_header s;
    uint32_t tag = get_le32(p);
    if (tag == ASR_TAG_CHUNK && avail >= ASR_CHUNK_HEADER_SIZE)
        return asr_chunk_header_decode(p, &c, NULL) == ASR_OK;
    if ((tag == ASR_TAG_EXTENTS || tag == ASR_TAG_LAYOUT || tag == ASR_TAG_VOLUMES) &&
        avail >= ASR_SECTION_HEADER_SIZE)
        return asr_section_header_decode(p, &s, NULL) == ASR_OK;
    return false;
}

/* Next offset after from where a record with a valid header starts (v->end if none). */
static uint64_t resync(struct verifier *v, uint64_t from)
{
    v->stream_valid = false;
    uint8_t *win = v->stored; /* at least RESYNC_WINDOW + a header */
    for (uint64_t at = from + 1; at < v->end;) {
        uint64_t left = v->end - at;
        size_t n = left < RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE ? (size_t)left : RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE;
        if (asr_partset_read(v->ps, at, win, n, NULL) != ASR_OK)
            return v->end;
        size_t scan = n > ASR_CHUNK_HEADER_SIZE ? n - ASR_SECTION_HEADER_SIZE + 1 : 1;
        for (size_t i = 0; i < scan && i + 4 <= n; i++)
            if (win[i] == 'A' && plausible_record(win + i, n - i))
                return at + i;
        at += scan > RESYNC_WINDOW ? RESYNC_WINDOW : scan;
    }
    return v->end;
}

/* ---- one structure each ------------------------------------------------------------------- */

static uint64_t check_header(struct verifier *v)
{
    struct asr_image_header h;
    struct asr_error why = {0};
    size_t avail = v->end < ASR_IMAGE_HEADER_MAX ? (size_t)v->end : ASR_IMAGE_HEADER_MAX;
    if (asr_partset_read(v->ps, 0, v->stored, avail, &why) || asr_image_header_decode(v->stored, avail, &h, &why)) {
        problem(v, ASR_E_CORRUPT, "image header", 0, "%s", why.msg);
        if (size_buffers(v, ASR_MAX_CHUNK_SIZE)) {
            problem(v, ASR_E_NOMEM, "verify", UINT64_MAX, "out of memory");
            return v->end;
        }
        return resync(v, 0);
    }
    if (asr_image_header_check_support(&h, &why))
        problem(v, ASR_E_UNSUPPORTED, "image header", 0, "%s", why.msg);
    if (h.ro_compat & ~ASR_KNOWN_RO_COMPAT)
        problem(v, ASR_E_UNSUPPORTED, "image header", 0,
                "read-only-compatible features 0x%llx are unknown to this asrimg: not every check can be made",
                (unsigned long long)(h.ro_compat & ~ASR_KNOWN_RO_COMPAT));
    if (memcmp(h.uuid, asr_partset_uuid(v->ps), 16) != 0)
        problem(v, ASR_E_CORRUPT, "image header", 0, "image id differs from the part header's");
    v->have_header = true;
    v->layout.incompat = h.incompat;
    v->max_chunk = h.max_chunk_size;
    v->seed = h.hash_seed;
    covered(v, v->stored, h.header_len);
    if (size_buffers(v, v->max_chunk)) {
        problem(v, ASR_E_NOMEM, "verify", UINT64_MAX, "out of memory");
        return v->end;
    }
    return h.header_len;
}

/* Reads a section at pos into v->section (body after the envelope). 0 on failure (reported). */
static uint64_t read_checked_section(struct verifier *v, uint64_t pos, const char *what, uint64_t cap,
                                     uint64_t *body_len)
{
    struct asr_section_header s;
    struct asr_error why = {0};
    uint8_t hdr[ASR_SECTION_HEADER_SIZE];
    if (v->end - pos < ASR_SECTION_HEADER_SIZE || asr_partset_read(v->ps, pos, hdr, sizeof hdr, &why) ||
        asr_section_header_decode(hdr, &s, &why)) {
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg[0] ? why.msg : "truncated");
        return 0;
    }
    if (s.content_len > cap || s.content_len > v->end - pos - ASR_SECTION_HEADER_SIZE) {
        problem(v, ASR_E_CORRUPT, what, pos, "length %llu out of range", (unsigned long long)s.content_len);
        return 0;
    }
    size_t need = ASR_SECTION_HEADER_SIZE + (size_t)s.content_len;
    if (need > v->section_cap) {
        uint8_t *grown = realloc(v->section, need);
        if (!grown) {
            problem(v, ASR_E_NOMEM, what, pos, "out of memory for %zu bytes", need);
            return 0;
        }
        v->section = grown;
        v->section_cap = need;
    }
    uint8_t *raw = v->section;
    memcpy(raw, hdr, sizeof hdr);
    if (asr_partset_read(v->ps, pos + ASR_SECTION_HEADER_SIZE, raw + ASR_SECTION_HEADER_SIZE, s.content_len, &why) ||
        asr_checksum64(raw + ASR_SECTION_HEADER_SIZE, s.content_len) != s.content_hash) {
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg[0] ? why.msg : "checksum mismatch");
        return 0;
    }
    *body_len = s.content_len;
    return ASR_SECTION_HEADER_SIZE + s.content_len;
}

static uint64_t check_layout_section(struct verifier *v, uint64_t pos, uint32_t tag)
{
    bool is_layout = tag == ASR_TAG_LAYOUT;
    const char *what = is_layout ? "layout section" : "volume table";
    uint64_t len, n = read_checked_section(v, pos, what, is_layout ? ASR_MAX_LAYOUT_SIZE : ASR_MAX_VOLTABLE_SIZE, &len);
    if (!n)
        return 0;
    struct asr_error why = {0};
    const uint8_t *body = v->section + ASR_SECTION_HEADER_SIZE;
    if (is_layout ? (v->seen_layout || v->seen_volumes) : (!v->seen_layout || v->seen_volumes))
        problem(v, ASR_E_CORRUPT, what, pos, "out of place");
    else if (!is_layout && v->layout_bad)
        problem(v, ASR_E_CORRUPT, what, pos, "not checked: the layout section before it is damaged");
    else if (is_layout ? asr_layout_decode_disks(body, (size_t)len, &v->layout, &why)
                       : asr_layout_decode_volumes(body, (size_t)len, &v->layout, &why)) {
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg);
        /* A half-decoded layout is no basis for checking volumes against it. */
        if (is_layout) {
            asr_layout_free(&v->layout);
            v->layout_bad = true;
        }
    }
    *(is_layout ? &v->seen_layout : &v->seen_volumes) = true;
    covered(v, v->section, (size_t)n);
    return n;
}

static void cross_check_chunk(struct verifier *v, uint64_t pos, const struct asr_chunk_header *h, const char *what)
{
    if (!v->ix)
        return;
    if (h->chunk_id >= v->ix->chunk_count) {
        problem(v, ASR_E_CORRUPT, what, pos, "not in the index");
        return;
    }
    const struct asr_chunk_entry *e = &v->ix->chunks[h->chunk_id];
    if (e->offset != pos || e->stored_len != h->stored_len || e->content_len != h->content_len ||
        !asr_hash128_eq(e->content_hash, h->content_hash))
        problem(v, ASR_E_CORRUPT, what, pos, "disagrees with its index entry");
}

static uint64_t check_chunk(struct verifier *v, uint64_t pos)
{
    char what[48];
    struct asr_chunk_header h;
    struct asr_error why = {0};
    snprintf(what, sizeof what, "chunk %llu", (unsigned long long)v->next_chunk);
    if (v->end - pos < ASR_CHUNK_HEADER_SIZE || asr_partset_read(v->ps, pos, v->stored, ASR_CHUNK_HEADER_SIZE, &why) ||
        asr_chunk_header_decode(v->stored, &h, &why)) {
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg[0] ? why.msg : "truncated");
        return 0;
    }
    snprintf(what, sizeof what, "chunk %llu", (unsigned long long)h.chunk_id);
    if (h.content_len > v->max_chunk || h.stored_len > v->end - pos - ASR_CHUNK_HEADER_SIZE) {
        problem(v, ASR_E_CORRUPT, what, pos, "length out of range");
        return 0;
    }
    uint8_t *stored = v->stored + ASR_CHUNK_HEADER_SIZE;
    if (asr_partset_read(v->ps, pos + ASR_CHUNK_HEADER_SIZE, stored, h.stored_len, &why)) {
        problem(v, ASR_E_IO, what, pos, "%s", why.msg);
        return 0;
    }
    if (h.chunk_id != v->next_chunk)
        problem(v, ASR_E_CORRUPT, what, pos, "out of sequence: expected chunk %llu",
                (unsigned long long)v->next_chunk);
    v->next_chunk = h.chunk_id + 1;
    cross_check_chunk(v, pos, &h, what);
    /* Referenced chunks get their content checked in the volume pass; check the rest here. */
    bool referenced = v->referenced && h.chunk_id < v->ix->chunk_count &&
                      (v->referenced[h.chunk_id / 8] >> (h.chunk_id % 8)) & 1;
    int rc = referenced ? (XXH3_64bits(stored, h.stored_len) == h.stored_hash
                               ? ASR_OK : asr_fail(&why, ASR_E_CORRUPT, "stored data checksum mismatch"))
                        : asr_chunk_decode(&h, stored, v->content, v->max_chunk, v->seed, v->dctx, &why);
    if (rc) {
        problem(v, ASR_E_CORRUPT, what, pos, "%s", why.msg);
        v->stream_valid = false;
        return ASR_CHUNK_HEADER_SIZE + h.stored_len;
    }
    v->rep->chunks++;
    covered(v, v->stored, ASR_CHUNK_HEADER_SIZE + (size_t)h.stored_len);
    return ASR_CHUNK_HEADER_SIZE + h.stored_len;
}

static uint64_t check_extent_record(struct verifier *v, uint64_t pos)
{
    uint64_t len, n = read_checked_section(v, pos, "extent record", 8 + (uint64_t)ASR_MAX_EXTENT_RECORD * ASR_EXTENT_SIZE, &len);
    if (!n)
        return 0;
    struct asr_extent *ext = v->ext;
    uint32_t vol, count;
    struct asr_error why = {0};
    if (asr_extent_record_decode(v->section + ASR_SECTION_HEADER_SIZE, (size_t)len, &vol, v->ext, &count, &why)) {
        problem(v, ASR_E_CORRUPT, "extent record", pos, "%s", why.msg);
    } else if (v->ix) {
        if (vol >= v->ix->volume_count || v->cursor[vol] + count > v->ix->stats[vol].extent_count) {
            problem(v, ASR_E_CORRUPT, "extent record", pos, "volume %u: more extents than the index holds", vol);
        } else {
            for (uint32_t i = 0; i < count; i++) {
                const struct asr_extent *want = &v->ix->extents[vol][v->cursor[vol] + i];
                if (ext[i].offset != want->offset || ext[i].length != want->length ||
                    ext[i].ref != want->ref || ext[i].chunk_offset != want->chunk_offset) {
                    problem(v, ASR_E_CORRUPT, "extent record", pos, "volume %u: extent %u differs from the index", vol, i);
                    break;
                }
                if (ext[i].ref < v->next_chunk || ext[i].ref >= ASR_REF_UNREADABLE)
                    continue;
                problem(v, ASR_E_CORRUPT, "extent record", pos, "refers to chunk %llu before it was written",
                        (unsigned long long)ext[i].ref);
                break;
            }
            v->cursor[vol] += count;
        }
    }
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
        if (v->end - pos >= 4 && asr_partset_read(v->ps, pos, tagb, 4, NULL) == ASR_OK) {
            uint32_t tag = get_le32(tagb);
            if (tag == ASR_TAG_CHUNK)
                n = check_chunk(v, pos);
            else if (tag == ASR_TAG_EXTENTS)
                n = check_extent_record(v, pos);
            else if (tag == ASR_TAG_LAYOUT || tag == ASR_TAG_VOLUMES)
                n = check_layout_section(v, pos, tag);
            else
                problem(v, ASR_E_CORRUPT, "stream", pos, "unknown or damaged record");
        } else {
            problem(v, ASR_E_CORRUPT, "stream", pos, "truncated record");
        }
        pos = n ? pos + n : resync(v, pos);
    }
    if (!v->seen_layout || !v->seen_volumes)
        problem(v, ASR_E_CORRUPT, v->seen_layout ? "volume table" : "layout section", UINT64_MAX, "missing");
}

static void check_against_index(struct verifier *v)
{
    if (!v->ix)
        return;
    if (v->next_chunk != v->ix->chunk_count)
        problem(v, ASR_E_CORRUPT, "index", asr_reader_index_offset(v->r), "lists %llu chunks, the stream holds %llu",
                (unsigned long long)v->ix->chunk_count, (unsigned long long)v->next_chunk);
    for (uint32_t vol = 0; vol < v->ix->volume_count; vol++)
        if (v->cursor[vol] != v->ix->stats[vol].extent_count)
            problem(v, ASR_E_CORRUPT, "index", asr_reader_index_offset(v->r),
                    "volume %u: %llu extents, the stream's extent records hold %llu", vol,
                    (unsigned long long)v->ix->stats[vol].extent_count, (unsigned long long)v->cursor[vol]);
    XXH128_hash_t h = XXH3_128bits_digest(v->stream);
    if (v->stream_valid && !asr_hash128_eq((struct asr_hash128){h.low64, h.high64}, v->ix->stream_hash))
        problem(v, ASR_E_CORRUPT, "image", UINT64_MAX, "whole-stream checksum mismatch");
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
        for (uint64_t i = 0; i < v->ix->stats[vol].extent_count && ok; i++) {
            const struct asr_extent *e = &v->ix->extents[vol][i];
            const uint8_t *content = NULL;
            if (e->ref < ASR_REF_UNREADABLE) {
                struct asr_error why = {0};
                uint32_t len;
                if (asr_reader_read_chunk(v->r, e->ref, v->content, v->max_chunk, &len, &why)) {
                    problem(v, why.code, what, v->ix->chunks[e->ref].offset, "%s", why.msg);
                    ok = false;
                    break;
                }
                content = v->content + e->chunk_offset;
                done += e->length;
                progress(v, done);
            }
            asr_volume_hash_extent(st, e, content);
        }
        XXH128_hash_t h = XXH3_128bits_digest(st);
        if (ok && !asr_hash128_eq((struct asr_hash128){h.low64, h.high64}, v->ix->stats[vol].content_hash))
            problem(v, ASR_E_CORRUPT, what, UINT64_MAX, "content hash mismatch");
        v->rep->volumes++;
    }
    XXH3_freeState(st);
}

static int prepare(struct verifier *v, const char *path, struct asr_error *err)
{
    int rc = asr_partset_open(path, &v->ps, err);
    if (rc)
        return rc; /* not an image at all, or a broken split set: one error, no structure list */
    struct asr_error why = {0};
    if (asr_reader_open(path, &v->r, &why) != ASR_OK)
        problem(v, why.code, why.code == ASR_E_INCOMPLETE ? "footer" : "image", UINT64_MAX, "%s", why.msg);
    v->end = asr_partset_size(v->ps);
    if (v->r) {
        v->rep->complete = 1;
        v->ix = asr_reader_index(v->r);
        v->end = asr_reader_index_offset(v->r);
        v->cursor = calloc(v->ix->volume_count + 1u, sizeof *v->cursor);
        v->referenced = calloc(v->ix->chunk_count / 8 + 1, 1);
        if (!v->cursor || !v->referenced)
            return asr_fail(err, ASR_E_NOMEM, "out of memory");
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
        struct asr_footer f;
        if (v->end >= ASR_FOOTER_SIZE && !asr_partset_read(v->ps, v->end - ASR_FOOTER_SIZE, raw, sizeof raw, NULL) &&
            !asr_footer_decode(raw, &f, NULL) && f.index_offset < v->end)
            v->end = f.index_offset;
    }
    v->total_work += v->end;
    v->max_chunk = ASR_MAX_CHUNK_SIZE;
    v->stream = XXH3_createState();
    v->dctx = ZSTD_createDCtx();
    v->ext = malloc(ASR_MAX_EXTENT_RECORD * sizeof *v->ext);
    if (!v->stream || !v->dctx || !v->ext || size_buffers(v, ASR_IMAGE_HEADER_MAX))
        return asr_fail(err, ASR_E_NOMEM, "out of memory");
    XXH3_128bits_reset(v->stream);
    v->stream_valid = true;
    return ASR_OK;
}
static void release(struct verifier *v)
{
    asr_reader_free(v->r);
    asr_partset_close(v->ps);
    asr_layout_free(&v->layout);
    XXH3_freeState(v->stream);
    ZSTD_freeDCtx(v->dctx);
    free(v->stored);
    free(v->content);
    free(v->cursor);
    free(v->referenced);
    free(v->section);
    free(v->ext);
}

int asr_verify(const char *path, asr_problem_fn on_problem, void *problem_ctx, asr_progress_fn on_progress,
               void *progress_ctx, struct asr_verify_report *report, struct asr_error *err)
{
    struct asr_verify_report local;
    struct verifier v = {.on_problem = on_problem, .problem_ctx = problem_ctx, .on_progress = on_progress,
                         .progress_ctx = progress_ctx, .rep = report ? report : &local};
    memset(v.rep, 0, sizeof *v.rep);
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
