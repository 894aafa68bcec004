/* The record scanner: SPEC.md's record grammar (image header, layout section, volume table, then
 * chunks and extent records up to the index) and every rule a record must meet where it stands
 * in the stream, in one place for the three walkers: the sequential reader and the image reader
 * stop at the first problem, the verifier reports each one and resynchronises. The caller brings
 * the bytes (from a pipe or a file) and says where they are; the scanner checks and keeps the
 * state the rules need across records. */
#include "internal.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"

#define EXTENT_BODY_MAX (8u + ASR_MAX_EXTENT_RECORD * ASR_EXTENT_SIZE)
/* The index lists every chunk in 32 bytes within its 1 GiB cap: no image has more chunks. */
#define MAX_CHUNKS ((ASR_MAX_INDEX_SIZE - ASR_INDEX_FIXED) / ASR_CHUNK_ENTRY_SIZE)
/* A chunk met after damage whose length is unknown: extents into it are not checked. */
#define LEN_UNKNOWN UINT32_MAX

void fmt_scan_init(struct fmt_scan *sc, enum fmt_scan_mode mode, fmt_scan_report_fn report, void *ctx)
{
    memset(sc, 0, sizeof *sc);
    sc->mode = mode;
    sc->report = report;
    sc->ctx = ctx;
}

void fmt_scan_free(struct fmt_scan *sc)
{
    fmt_layout_free(&sc->layout);
    free(sc->machine);
    sc->machine = NULL;
    free(sc->volumes);
    free(sc->chunk_len);
    sc->volumes = NULL;
    sc->chunk_len = NULL;
}

/* Hands one problem to the caller; in stop mode the first one ends the scan. */
static int hand_over(struct fmt_scan *sc, const struct fmt_problem *p)
{
    if (sc->mode == FMT_SCAN_STOP)
        sc->failed = true;
    if (sc->report)
        sc->report(sc->ctx, p);
    return p->code;
}

static int problem(struct fmt_scan *sc, int code, const char *what, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int problem(struct fmt_scan *sc, int code, const char *what, uint64_t at, const char *fmt, ...)
{
    struct fmt_problem p = {.code = code, .what = what, .at = at};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p.msg, sizeof p.msg, fmt, ap);
    va_end(ap);
    return hand_over(sc, &p);
}

/* ---- before the data ------------------------------------------------------------------------- */

/* The machine record that follows the feature names when the header declares it. Checked against
 * the disks when the layout section comes. */
static int scan_machine(struct fmt_scan *sc, const uint8_t *raw)
{
    if (!(sc->header.compat & ASR_FEATURE_COMPAT_MACHINE))
        return ASR_OK;
    if (!(sc->machine = malloc(sizeof *sc->machine)))
        return problem(sc, ASR_E_NOMEM, "image header", 0, "out of memory");
    struct asr_error why = {0};
    int rc = fmt_machine_decode(raw + sc->header.tail_at, sc->header.header_len - 8 - sc->header.tail_at,
                                sc->machine, &why);
    if (rc) {
        free(sc->machine);
        sc->machine = NULL;
        return problem(sc, rc, "image header", 0, "%s", why.msg);
    }
    return ASR_OK;
}

int fmt_scan_header(struct fmt_scan *sc, const uint8_t *raw, size_t avail, const uint8_t part_uuid[16])
{
    struct asr_error why = {0};
    int rc = fmt_image_header_decode(raw, avail, &sc->header, &why);
    if (rc) {
        problem(sc, rc, "image header", 0, "%s", why.msg);
        /* Resynchronising goes on to the layout with chunks of any size allowed. */
        memset(&sc->header, 0, sizeof sc->header);
        sc->header.max_chunk_size = ASR_MAX_CHUNK_SIZE;
        sc->stage = FMT_AT_LAYOUT;
        return rc;
    }
    if ((rc = fmt_image_header_check_support(&sc->header, &why))) {
        /* A version or a feature refused: the message stands alone, no place in the file helps. */
        struct fmt_problem p = {.code = rc, .what = "image header", .alone = true};
        snprintf(p.msg, sizeof p.msg, "%s", why.msg);
        if (hand_over(sc, &p) && sc->mode == FMT_SCAN_STOP)
            return rc;
    }
    if (memcmp(sc->header.uuid, part_uuid, 16) != 0) {
        rc = problem(sc, ASR_E_CORRUPT, "image header", 0, "image id differs from the part header's");
        if (sc->mode == FMT_SCAN_STOP)
            return rc;
    }
    sc->layout.incompat = sc->header.incompat;
    sc->external = (sc->header.incompat & ASR_FEATURE_INCOMPAT_EXTERNAL) != 0;
    sc->stage = FMT_AT_LAYOUT;
    return scan_machine(sc, raw);
}

/* What a section with this tag is called, and the content lengths it may have. */
static const char *section_what(uint32_t tag, uint64_t *min, uint64_t *max)
{
    *min = 0;
    switch (tag) {
    case ASR_TAG_LAYOUT:
        *max = ASR_MAX_LAYOUT_SIZE;
        return "layout section";
    case ASR_TAG_VOLUMES:
        *max = ASR_MAX_VOLTABLE_SIZE;
        return "volume table";
    case ASR_TAG_EXTENTS:
        *min = 8 + ASR_EXTENT_SIZE;
        *max = EXTENT_BODY_MAX;
        return "extent record";
    case ASR_TAG_INDEX:
        *min = ASR_INDEX_FIXED;
        *max = ASR_MAX_INDEX_SIZE;
        return "index";
    case ASR_TAG_IDS:
        *max = MAX_CHUNKS * ASR_STORE_ID_SIZE;
        return "store id section";
    default:
        *max = 0;
        return NULL;
    }
}

/* The section the grammar wants at this stage: the layout, the volume table, then extent records
 * or the index (a store snapshot: its one store id section, then the index). */
static uint32_t expected_section(const struct fmt_scan *sc, uint32_t tag)
{
    switch (sc->stage) {
    case FMT_AT_LAYOUT:
        return ASR_TAG_LAYOUT;
    case FMT_AT_VOLUMES:
        return ASR_TAG_VOLUMES;
    case FMT_AT_INDEX:
        return ASR_TAG_INDEX;
    default:
        if (sc->external)
            return ASR_TAG_IDS;
        return tag == ASR_TAG_INDEX ? ASR_TAG_INDEX : ASR_TAG_EXTENTS;
    }
}

int fmt_scan_envelope(struct fmt_scan *sc, const uint8_t raw[ASR_SECTION_HEADER_SIZE], uint64_t at, uint64_t left,
                      struct fmt_section_header *h)
{
    struct asr_error why = {0};
    uint64_t min, max;
    uint32_t want = expected_section(sc, get_le32(raw));
    const char *what = section_what(want, &min, &max);
    int rc = fmt_section_header_decode(raw, h, &why);
    if (rc)
        return problem(sc, rc, what, at, "%s", why.msg);
    if (h->tag != want && !(sc->mode == FMT_SCAN_RESYNC && section_what(h->tag, &min, &max)))
        return problem(sc, ASR_E_CORRUPT, what, at, "wrong section tag");
    what = section_what(h->tag, &min, &max);
    if (left < ASR_SECTION_HEADER_SIZE)
        left = ASR_SECTION_HEADER_SIZE;
    if (max > left - ASR_SECTION_HEADER_SIZE)
        max = left - ASR_SECTION_HEADER_SIZE;
    if (h->content_len < min || h->content_len > max)
        return problem(sc, ASR_E_CORRUPT, what, at, "length %llu out of range (%llu to %llu)",
                       (unsigned long long)h->content_len, (unsigned long long)min, (unsigned long long)max);
    return ASR_OK;
}

int fmt_scan_content_hash(struct fmt_scan *sc, const struct fmt_section_header *h, uint64_t hash, uint64_t at)
{
    uint64_t min, max;
    if (hash != h->content_hash)
        return problem(sc, ASR_E_CORRUPT, section_what(h->tag, &min, &max), at, "checksum mismatch");
    return ASR_OK;
}

int fmt_scan_content(struct fmt_scan *sc, const struct fmt_section_header *h, const uint8_t *body, uint64_t at)
{
    return fmt_scan_content_hash(sc, h, fmt_checksum64(body, (size_t)h->content_len), at);
}

int fmt_scan_layout(struct fmt_scan *sc, uint32_t tag, const uint8_t *body, size_t len, uint64_t at)
{
    bool is_layout = tag == ASR_TAG_LAYOUT;
    const char *what = is_layout ? "layout section" : "volume table";
    enum fmt_scan_stage stage = is_layout ? FMT_AT_LAYOUT : FMT_AT_VOLUMES;
    struct asr_error why = {0};
    int rc = ASR_OK;
    if (sc->stage != stage)
        rc = problem(sc, ASR_E_CORRUPT, what, at, "out of place");
    else if (!is_layout && sc->layout_bad)
        rc = problem(sc, ASR_E_CORRUPT, what, at, "not checked: the layout section before it is damaged");
    else if ((rc = is_layout ? fmt_layout_decode_disks(body, len, &sc->layout, &why)
                             : fmt_layout_decode_volumes(body, len, &sc->layout, &why))) {
        problem(sc, rc, what, at, "%s", why.msg);
        /* A half-decoded layout is no basis for checking volumes against it. */
        if (is_layout) {
            uint64_t incompat = sc->layout.incompat;
            fmt_layout_free(&sc->layout);
            sc->layout.incompat = incompat;
            sc->layout_bad = true;
        }
    }
    if (!rc && is_layout && sc->machine && (rc = asr_machine_valid(sc->machine, sc->layout.disks,
                                                                     sc->layout.disk_count, &why)))
        problem(sc, rc, "image header", 0, "%s", why.msg);
    if (!rc && !is_layout && !(sc->volumes = calloc(sc->layout.volume_count + 1u, sizeof *sc->volumes)))
        rc = problem(sc, ASR_E_NOMEM, what, at, "out of memory");
    if (sc->stage <= stage)
        sc->stage = stage + 1;
    return rc;
}

/* ---- the data ---------------------------------------------------------------------------------- */

/* Room in chunk_len for chunk id; chunks skipped over (after damage) have unknown lengths. */
static int note_chunk(struct fmt_scan *sc, uint64_t id, uint32_t content_len, const char *what, uint64_t at)
{
    if (id >= sc->chunk_cap) {
        if (id >= MAX_CHUNKS)
            return problem(sc, ASR_E_CORRUPT, what, at, "more chunks than an index can list");
        uint64_t cap = sc->chunk_cap ? sc->chunk_cap * 2 : 4096;
        while (cap <= id)
            cap *= 2;
        if (cap > MAX_CHUNKS)
            cap = MAX_CHUNKS;
        uint32_t *grown = realloc(sc->chunk_len, (size_t)cap * sizeof *grown);
        if (!grown)
            return problem(sc, ASR_E_NOMEM, what, at, "out of memory for %llu chunk lengths", (unsigned long long)cap);
        sc->chunk_len = grown;
        sc->chunk_cap = cap;
    }
    for (uint64_t i = sc->next_chunk; i < id; i++)
        sc->chunk_len[i] = LEN_UNKNOWN;
    sc->chunk_len[id] = content_len;
    if (id >= sc->next_chunk)
        sc->next_chunk = id + 1;
    return ASR_OK;
}

int fmt_scan_chunk(struct fmt_scan *sc, const uint8_t raw[ASR_CHUNK_HEADER_SIZE], uint64_t at, uint64_t left,
                   struct fmt_chunk_header *h)
{
    struct asr_error why = {0};
    uint64_t expect = sc->next_chunk;
    snprintf(sc->what, sizeof sc->what, "chunk %llu", (unsigned long long)expect);
    int rc = fmt_chunk_header_decode(raw, h, &why);
    if (rc)
        return problem(sc, rc, sc->what, at, "%s", why.msg);
    if (h->content_len > sc->header.max_chunk_size)
        return problem(sc, ASR_E_CORRUPT, sc->what, at, "content length %u over the image's maximum of %u",
                       h->content_len, sc->header.max_chunk_size);
    if (h->stored_len > left - (left < ASR_CHUNK_HEADER_SIZE ? left : ASR_CHUNK_HEADER_SIZE))
        return problem(sc, ASR_E_CORRUPT, sc->what, at, "stored length %u runs past the end of the data",
                       h->stored_len);
    if (h->chunk_id != expect) {
        /* Resynchronising takes the numbering the stream now shows. */
        rc = problem(sc, ASR_E_CORRUPT, sc->what, at, "numbered %llu, expected chunk %llu",
                     (unsigned long long)h->chunk_id, (unsigned long long)expect);
        snprintf(sc->what, sizeof sc->what, "chunk %llu", (unsigned long long)h->chunk_id);
        if (sc->mode == FMT_SCAN_STOP)
            return rc;
    }
    return note_chunk(sc, h->chunk_id, h->content_len, sc->what, at);
}

static uint32_t scan_chunk_len(const void *sc, uint64_t id)
{
    return ((const struct fmt_scan *)sc)->chunk_len[id];
}

int fmt_scan_extents(struct fmt_scan *sc, const uint8_t *body, size_t len, uint64_t at, uint32_t *volume,
                     struct asr_extent *ext, uint32_t *count)
{
    struct asr_error why = {0};
    int rc = fmt_extent_record_decode(body, len, volume, ext, count, &why);
    if (rc) {
        *count = 0;
        return problem(sc, rc, "extent record", at, "%s", why.msg);
    }
    uint32_t vol = *volume;
    if (sc->stage != FMT_AT_DATA || !sc->volumes)
        return ASR_OK; /* resynchronising past a damaged volume table: nothing to check against */
    if (vol >= sc->layout.volume_count)
        return problem(sc, ASR_E_CORRUPT, "extent record", at, "volume %u does not exist", vol);
    struct fmt_scan_volume *v = &sc->volumes[vol];
    uint64_t size = sc->layout.volumes[vol].size_bytes;
    for (uint32_t i = 0; i < *count; i++) {
        const struct asr_extent *e = &ext[i];
        struct asr_extent place = *e;
        if (e->ref < ASR_REF_UNREADABLE && e->ref < sc->next_chunk && sc->chunk_len[e->ref] == LEN_UNKNOWN)
            place.ref = ASR_REF_ZERO; /* its chunk was lost to damage: only its place can be checked */
        if ((rc = fmt_extent_check(&place, v->end, size, sc->next_chunk, scan_chunk_len, sc, &why))) {
            problem(sc, rc, "extent record", at, "volume %u %s", vol, why.msg);
            if (sc->mode == FMT_SCAN_STOP)
                return rc;
        }
        if (e->ref < ASR_REF_UNREADABLE)
            v->stats.data_bytes += e->length;
        else if (e->ref == ASR_REF_ZERO)
            v->stats.zero_bytes += e->length;
        else
            v->stats.unreadable_bytes += e->length;
        v->end = e->offset + e->length;
        v->fingerprint += XXH3_64bits_withSeed(body + 8 + (size_t)i * ASR_EXTENT_SIZE, ASR_EXTENT_SIZE,
                                               v->stats.extent_count++);
    }
    return rc;
}

int fmt_scan_ids(struct fmt_scan *sc, const uint8_t *body, size_t len, uint64_t at)
{
    (void)body;
    if (sc->stage != FMT_AT_DATA || !sc->external)
        return problem(sc, ASR_E_CORRUPT, "store id section", at, "out of place");
    sc->stage = FMT_AT_INDEX;
    if (len % ASR_STORE_ID_SIZE)
        return problem(sc, ASR_E_CORRUPT, "store id section", at, "length %zu is not a whole number of %u-byte ids",
                       len, ASR_STORE_ID_SIZE);
    sc->next_chunk = len / ASR_STORE_ID_SIZE;
    return ASR_OK;
}

bool fmt_chunk_agrees(const struct fmt_chunk_header *h, uint64_t at, uint64_t id, const struct fmt_chunk_entry *e)
{
    return h->chunk_id == id && e->offset == at && e->stored_len == h->stored_len &&
           e->content_len == h->content_len && fmt_hash128_eq(e->content_hash, h->content_hash);
}

int fmt_scan_stray(struct fmt_scan *sc, const uint8_t tag[4], uint64_t at)
{
    switch (get_le32(tag)) {
    case ASR_TAG_HEADER:
    case ASR_TAG_LAYOUT:
    case ASR_TAG_VOLUMES:
        return problem(sc, ASR_E_CORRUPT, "record", at, "%.4s out of place after the data began", (const char *)tag);
    case ASR_TAG_FOOTER:
        return problem(sc, ASR_E_CORRUPT, "footer", at, "without an index before it");
    default:
        if (sc->external)
            return problem(sc, ASR_E_CORRUPT, "unknown or damaged record", at,
                           "a store snapshot holds only its store id section before the index");
        return problem(sc, ASR_E_CORRUPT, "unknown or damaged record", at, "chunk %llu or an extent record expected",
                       (unsigned long long)sc->next_chunk);
    }
}

void fmt_scan_finish(struct fmt_scan *sc)
{
    if (sc->stage < FMT_AT_DATA)
        problem(sc, ASR_E_CORRUPT, sc->stage == FMT_AT_VOLUMES ? "volume table" : "layout section", UINT64_MAX,
                "missing");
    else if (sc->external && sc->stage == FMT_AT_DATA)
        problem(sc, ASR_E_CORRUPT, "store id section", UINT64_MAX, "missing");
}

/* ---- resynchronisation ------------------------------------------------------------------------ */

static bool plausible_record(const uint8_t *p, size_t avail)
{
    struct fmt_chunk_header c;
    struct fmt_section_header s;
    uint32_t tag = get_le32(p);
    if (tag == ASR_TAG_CHUNK && avail >= ASR_CHUNK_HEADER_SIZE)
        return !fmt_chunk_header_decode(p, &c, NULL);
    if ((tag == ASR_TAG_EXTENTS || tag == ASR_TAG_LAYOUT || tag == ASR_TAG_VOLUMES) &&
        avail >= ASR_SECTION_HEADER_SIZE)
        return !fmt_section_header_decode(p, &s, NULL);
    return false;
}

uint64_t fmt_scan_resync(struct fmt_partset *ps, uint64_t from, uint64_t end, uint8_t *win)
{
    for (uint64_t at = from + 1; at < end;) {
        uint64_t left = end - at;
        size_t n = left < FMT_RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE ? (size_t)left
                                                                    : FMT_RESYNC_WINDOW + ASR_CHUNK_HEADER_SIZE;
        if (fmt_partset_read(ps, at, win, n, NULL))
            return end;
        size_t scan = n > ASR_CHUNK_HEADER_SIZE ? n - ASR_SECTION_HEADER_SIZE + 1 : 1;
        for (size_t i = 0; i < scan && i + 4 <= n; i++)
            if (win[i] == 'A' && plausible_record(win + i, n - i))
                return at + i;
        at += scan > FMT_RESYNC_WINDOW ? FMT_RESYNC_WINDOW : scan;
    }
    return end;
}
