/* Encoders and decoders of the fixed-layout records of SPEC.md: part header, image header,
 * section envelope, chunk header, footer, extent and chunk-table entries. Each encoder sits
 * beside its decoder so a field's offset is written down in exactly two adjacent places. */
#include "grow.h"
#include "internal.h"
#include "le.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "xxhash_fast.h"

const uint8_t fmt_part_magic[8] = {0x89, 'A', 'S', 'R', '\r', '\n', 0x1a, '\n'};

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

void fmt_hash128_put(uint8_t out[16], struct asr_hash128 h)
{
    put_le64(out, h.lo);
    put_le64(out + 8, h.hi);
}

struct asr_hash128 fmt_hash128_get(const uint8_t in[16])
{
    return (struct asr_hash128){get_le64(in), get_le64(in + 8)};
}

bool fmt_hash128_eq(struct asr_hash128 a, struct asr_hash128 b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

/* ---- part header ---------------------------------------------------------------------- */

void fmt_part_header_encode(const struct fmt_part_header *h, uint8_t out[ASR_PART_HEADER_SIZE])
{
    memset(out, 0, ASR_PART_HEADER_SIZE);
    memcpy(out, fmt_part_magic, 8);
    put_le32(out + 8, h->format_version);
    put_le32(out + 12, h->part_number);
    memcpy(out + 16, h->uuid, 16);
    put_le64(out + 32, h->split_size);
    put_le64(out + 40, h->payload_offset);
    put_le64(out + 56, fmt_checksum64(out, 56));
}

int fmt_part_header_decode(const uint8_t in[ASR_PART_HEADER_SIZE], struct fmt_part_header *h,
                           struct asr_error *err)
{
    if (memcmp(in, fmt_part_magic, 8) != 0)
        return fmt_fail(err, ASR_E_NOT_IMAGE, "no asrimg magic at offset 0");
    if (get_le64(in + 56) != fmt_checksum64(in, 56))
        return fmt_fail(err, ASR_E_CORRUPT, "part header checksum mismatch");
    h->format_version = get_le32(in + 8);
    h->part_number = get_le32(in + 12);
    memcpy(h->uuid, in + 16, 16);
    h->split_size = get_le64(in + 32);
    h->payload_offset = get_le64(in + 40);
    if (!all_zero(in + 48, 8))
        return fmt_fail(err, ASR_E_CORRUPT, "part header reserved bytes not zero");
    if (h->part_number == 0 || h->part_number > ASR_MAX_PARTS)
        return fmt_fail(err, ASR_E_CORRUPT, "part header: part number %u out of range", h->part_number);
    if (h->split_size != 0 && h->split_size < ASR_MIN_SPLIT_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "part header: split size %llu below the minimum",
                        (unsigned long long)h->split_size);
    return ASR_OK;
}

/* ---- image header --------------------------------------------------------------------- */

static size_t put_str16(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    put_le16(p, (uint16_t)n);
    memcpy(p + 2, s, n);
    return 2 + n;
}

size_t fmt_image_header_encode(const struct fmt_image_header *h, uint8_t *out, size_t out_cap)
{
    size_t need = ASR_IMAGE_HEADER_FIXED + 2 + strlen(h->creator) + 2 + strlen(h->creator_version) + 2 + 8;
    for (uint32_t i = 0; i < h->feature_count; i++)
        need += 3 + strlen(h->features[i].name);
    need += h->tail_len;
    if (need > out_cap || need > ASR_IMAGE_HEADER_MAX)
        return 0;
    memset(out, 0, need);
    put_le32(out + 0, ASR_TAG_HEADER);
    put_le32(out + 4, (uint32_t)need);
    put_le32(out + 8, h->format_version);
    put_le64(out + 16, h->incompat);
    put_le64(out + 24, h->ro_compat);
    put_le64(out + 32, h->compat);
    memcpy(out + 40, h->uuid, 16);
    put_le64(out + 56, h->hash_seed);
    put_le64(out + 64, h->created_unix);
    put_le32(out + 72, h->max_chunk_size);
    size_t at = ASR_IMAGE_HEADER_FIXED;
    at += put_str16(out + at, h->creator);
    at += put_str16(out + at, h->creator_version);
    put_le16(out + at, (uint16_t)h->feature_count);
    at += 2;
    for (uint32_t i = 0; i < h->feature_count; i++) {
        const struct fmt_feature_name *f = &h->features[i];
        size_t n = strlen(f->name);
        out[at] = f->cls;
        out[at + 1] = f->bit;
        out[at + 2] = (uint8_t)n;
        memcpy(out + at + 3, f->name, n);
        at += 3 + n;
    }
    if (h->tail_len)
        memcpy(out + at, h->tail, h->tail_len);
    at += h->tail_len;
    put_le64(out + at, fmt_checksum64(out, at));
    return need;
}

static int get_str16(struct fmt_cursor *c, char *dst, size_t dst_cap, struct asr_error *err)
{
    const uint8_t *p = fmt_cursor_take(c, 2);
    if (!p)
        return fmt_fail(err, ASR_E_CORRUPT, "%s: truncated string length", c->what);
    uint16_t n = get_le16(p);
    if (n >= dst_cap)
        return fmt_fail(err, ASR_E_CORRUPT, "%s: string of %u bytes exceeds %zu", c->what, n, dst_cap - 1);
    if (!(p = fmt_cursor_take(c, n)))
        return fmt_fail(err, ASR_E_CORRUPT, "%s: truncated string", c->what);
    memcpy(dst, p, n);
    dst[n] = '\0';
    if (memchr(dst, '\0', n))
        return fmt_fail(err, ASR_E_CORRUPT, "%s: string holds a NUL byte", c->what);
    return ASR_OK;
}

static int decode_feature_names(struct fmt_cursor *c, struct fmt_image_header *h, struct asr_error *err)
{
    const uint8_t *p = fmt_cursor_take(c, 2);
    if (!p)
        return fmt_fail(err, ASR_E_CORRUPT, "image header: truncated feature count");
    h->feature_count = get_le16(p);
    if (h->feature_count > ASR_MAX_FEATURE_NAMES)
        return fmt_fail(err, ASR_E_CORRUPT, "image header: %u feature names exceed %u", h->feature_count,
                        ASR_MAX_FEATURE_NAMES);
    for (uint32_t i = 0; i < h->feature_count; i++) {
        struct fmt_feature_name *f = &h->features[i];
        if (!(p = fmt_cursor_take(c, 3)))
            return fmt_fail(err, ASR_E_CORRUPT, "image header: truncated feature name %u", i);
        f->cls = p[0];
        f->bit = p[1];
        uint8_t n = p[2];
        if (f->cls > ASR_FEATURE_COMPAT || f->bit > 63 || n == 0 || n >= sizeof f->name)
            return fmt_fail(err, ASR_E_CORRUPT, "image header: feature name %u malformed", i);
        if (!(p = fmt_cursor_take(c, n)))
            return fmt_fail(err, ASR_E_CORRUPT, "image header: truncated feature name %u", i);
        memcpy(f->name, p, n);
        f->name[n] = '\0';
        if (memchr(f->name, '\0', n))
            return fmt_fail(err, ASR_E_CORRUPT, "image header: feature name %u holds a NUL byte", i);
    }
    return ASR_OK;
}

int fmt_image_header_decode(const uint8_t *in, size_t avail, struct fmt_image_header *h,
                            struct asr_error *err)
{
    if (avail < ASR_IMAGE_HEADER_FIXED)
        return fmt_fail(err, ASR_E_CORRUPT, "image header truncated");
    if (get_le32(in) != ASR_TAG_HEADER)
        return fmt_fail(err, ASR_E_NOT_IMAGE, "no image header tag");
    memset(h, 0, sizeof *h);
    h->header_len = get_le32(in + 4);
    if (h->header_len < ASR_IMAGE_HEADER_FIXED + 14 || h->header_len > ASR_IMAGE_HEADER_MAX ||
        h->header_len > avail)
        return fmt_fail(err, ASR_E_CORRUPT, "image header length %u out of range", h->header_len);
    if (get_le64(in + h->header_len - 8) != fmt_checksum64(in, h->header_len - 8))
        return fmt_fail(err, ASR_E_CORRUPT, "image header checksum mismatch");
    h->format_version = get_le32(in + 8);
    h->incompat = get_le64(in + 16);
    h->ro_compat = get_le64(in + 24);
    h->compat = get_le64(in + 32);
    memcpy(h->uuid, in + 40, 16);
    h->hash_seed = get_le64(in + 56);
    h->created_unix = get_le64(in + 64);
    h->max_chunk_size = get_le32(in + 72);
    if (get_le32(in + 12) != 0 || get_le32(in + 76) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "image header reserved bytes not zero");
    if (h->max_chunk_size == 0 || h->max_chunk_size > ASR_MAX_CHUNK_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "image header: max chunk size %u out of range", h->max_chunk_size);
    struct fmt_cursor c = {in + ASR_IMAGE_HEADER_FIXED, h->header_len - 8 - ASR_IMAGE_HEADER_FIXED,
                           "image header"};
    int rc;
    if ((rc = get_str16(&c, h->creator, sizeof h->creator, err)) ||
        (rc = get_str16(&c, h->creator_version, sizeof h->creator_version, err)) ||
        (rc = decode_feature_names(&c, h, err)))
        return rc;
    h->tail_at = (uint32_t)(c.p - in);
    /* A later version may append fields before the checksum; this reader ignores them. */
    return ASR_OK;
}

static const char *feature_name(const struct fmt_image_header *h, unsigned cls, unsigned bit)
{
    for (uint32_t i = 0; i < h->feature_count; i++)
        if (h->features[i].cls == cls && h->features[i].bit == bit)
            return h->features[i].name;
    return NULL;
}

int fmt_image_header_check_support(const struct fmt_image_header *h, struct asr_error *err)
{
    return fmt_image_header_check_known(h, ASR_KNOWN_INCOMPAT, err);
}

int fmt_image_header_check_known(const struct fmt_image_header *h, uint64_t known, struct asr_error *err)
{
    if (h->format_version == 0 || h->format_version > ASR_FORMAT_VERSION)
        return fmt_fail(err, ASR_E_UNSUPPORTED,
                        "image format version %u is newer than this asrimg %s reads (up to %u)",
                        h->format_version, asr_version(), ASR_FORMAT_VERSION);
    uint64_t unknown = h->incompat & ~known;
    if (unknown) {
        unsigned bit = (unsigned)__builtin_ctzll(unknown);
        const char *name = feature_name(h, ASR_FEATURE_INCOMPAT, bit);
        return fmt_fail(err, ASR_E_UNSUPPORTED,
                        "image needs feature '%s' (incompatible bit %u), which asrimg %s does not support",
                        name ? name : "unnamed", bit, asr_version());
    }
    return ASR_OK;
}

/* ---- section envelope ------------------------------------------------------------------ */

void fmt_section_header_encode(const struct fmt_section_header *s, uint8_t out[ASR_SECTION_HEADER_SIZE])
{
    put_le32(out + 0, s->tag);
    put_le32(out + 4, s->flags);
    put_le64(out + 8, s->content_len);
    put_le64(out + 16, s->content_hash);
    put_le64(out + 24, fmt_checksum64(out, 24));
}

int fmt_section_header_decode(const uint8_t in[ASR_SECTION_HEADER_SIZE], struct fmt_section_header *s,
                              struct asr_error *err)
{
    if (get_le64(in + 24) != fmt_checksum64(in, 24))
        return fmt_fail(err, ASR_E_CORRUPT, "section header checksum mismatch");
    s->tag = get_le32(in + 0);
    s->flags = get_le32(in + 4);
    s->content_len = get_le64(in + 8);
    s->content_hash = get_le64(in + 16);
    if (s->flags != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "section flags 0x%x not zero", s->flags);
    return ASR_OK;
}

/* ---- chunk header ---------------------------------------------------------------------- */

void fmt_chunk_header_encode(const struct fmt_chunk_header *c, uint8_t out[ASR_CHUNK_HEADER_SIZE])
{
    memset(out, 0, ASR_CHUNK_HEADER_SIZE);
    put_le32(out + 0, ASR_TAG_CHUNK);
    out[4] = c->codec;
    put_le64(out + 8, c->chunk_id);
    put_le32(out + 16, c->stored_len);
    put_le32(out + 20, c->content_len);
    fmt_hash128_put(out + 24, c->content_hash);
    put_le64(out + 40, c->stored_hash);
    put_le64(out + 56, fmt_checksum64(out, 56));
}

int fmt_chunk_header_decode(const uint8_t in[ASR_CHUNK_HEADER_SIZE], struct fmt_chunk_header *c,
                            struct asr_error *err)
{
    if (get_le32(in) != ASR_TAG_CHUNK)
        return fmt_fail(err, ASR_E_CORRUPT, "no chunk tag");
    if (get_le64(in + 56) != fmt_checksum64(in, 56))
        return fmt_fail(err, ASR_E_CORRUPT, "chunk header checksum mismatch");
    c->codec = in[4];
    c->chunk_id = get_le64(in + 8);
    c->stored_len = get_le32(in + 16);
    c->content_len = get_le32(in + 20);
    c->content_hash = fmt_hash128_get(in + 24);
    c->stored_hash = get_le64(in + 40);
    if (in[5] || in[6] || in[7] || !all_zero(in + 48, 8))
        return fmt_fail(err, ASR_E_CORRUPT, "chunk header reserved bytes not zero");
    if (c->codec > ASR_CODEC_ZSTD)
        return fmt_fail(err, ASR_E_CORRUPT, "chunk codec %u unknown", c->codec);
    if (c->content_len == 0 || c->content_len > ASR_MAX_CHUNK_SIZE)
        return fmt_fail(err, ASR_E_CORRUPT, "chunk content length %u out of range", c->content_len);
    /* Writers store raw whenever zstd does not shrink the content, so a zstd chunk is always
     * strictly smaller than its content: this also bounds every stored length. */
    if (c->stored_len == 0 || c->stored_len > c->content_len ||
        (c->codec == ASR_CODEC_STORED) != (c->stored_len == c->content_len))
        return fmt_fail(err, ASR_E_CORRUPT, "chunk stored length %u inconsistent", c->stored_len);
    return ASR_OK;
}

/* ---- footer ---------------------------------------------------------------------------- */

void fmt_footer_encode(const struct fmt_footer *f, uint8_t out[ASR_FOOTER_SIZE])
{
    memset(out, 0, ASR_FOOTER_SIZE);
    put_le32(out + 0, ASR_TAG_FOOTER);
    put_le32(out + 4, f->format_version);
    put_le64(out + 8, f->index_offset);
    put_le64(out + 16, f->index_length);
    put_le32(out + 24, f->part_count);
    memcpy(out + 32, f->uuid, 16);
    put_le64(out + 48, f->index_hash);
    put_le64(out + 56, fmt_checksum64(out, 56));
}

int fmt_footer_decode(const uint8_t in[ASR_FOOTER_SIZE], struct fmt_footer *f, struct asr_error *err)
{
    if (get_le32(in) != ASR_TAG_FOOTER)
        return fmt_fail(err, ASR_E_INCOMPLETE, "no footer tag");
    if (get_le64(in + 56) != fmt_checksum64(in, 56))
        return fmt_fail(err, ASR_E_INCOMPLETE, "footer checksum mismatch");
    f->format_version = get_le32(in + 4);
    f->index_offset = get_le64(in + 8);
    f->index_length = get_le64(in + 16);
    f->part_count = get_le32(in + 24);
    memcpy(f->uuid, in + 32, 16);
    f->index_hash = get_le64(in + 48);
    if (get_le32(in + 28) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "footer reserved bytes not zero");
    return ASR_OK;
}

/* ---- extent and chunk-table entries ---------------------------------------------------- */

void fmt_extent_encode(const struct asr_extent *e, uint8_t out[ASR_EXTENT_SIZE])
{
    put_le64(out + 0, e->offset);
    put_le64(out + 8, e->length);
    put_le64(out + 16, e->ref);
    put_le32(out + 24, e->chunk_offset);
    put_le32(out + 28, 0);
}

int fmt_extent_decode(const uint8_t in[ASR_EXTENT_SIZE], struct asr_extent *e, struct asr_error *err)
{
    e->offset = get_le64(in + 0);
    e->length = get_le64(in + 8);
    e->ref = get_le64(in + 16);
    e->chunk_offset = get_le32(in + 24);
    if (get_le32(in + 28) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "extent reserved bytes not zero");
    if (e->length == 0 || e->offset + e->length < e->offset)
        return fmt_fail(err, ASR_E_CORRUPT, "extent at %llu has a bad length", (unsigned long long)e->offset);
    if (e->ref >= ASR_REF_UNREADABLE && e->chunk_offset != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "zero or unreadable extent with a chunk offset");
    return ASR_OK;
}

void fmt_chunk_entry_encode(const struct fmt_chunk_entry *c, uint8_t out[ASR_CHUNK_ENTRY_SIZE])
{
    put_le64(out + 0, c->offset);
    put_le32(out + 8, c->stored_len);
    put_le32(out + 12, c->content_len);
    fmt_hash128_put(out + 16, c->content_hash);
}

void fmt_chunk_entry_decode(const uint8_t in[ASR_CHUNK_ENTRY_SIZE], struct fmt_chunk_entry *c)
{
    c->offset = get_le64(in + 0);
    c->stored_len = get_le32(in + 8);
    c->content_len = get_le32(in + 12);
    c->content_hash = fmt_hash128_get(in + 16);
}

/* ---- buffers and cursors --------------------------------------------------------------- */

uint8_t *fmt_buf_extend(struct fmt_buf *b, size_t n)
{
    if (b->failed)
        return NULL;
    if (n > b->cap - b->len) {
        uint8_t *p = n <= SIZE_MAX - b->len ? asr_grow(b->data, &b->cap, b->len + n, 1, 4096) : NULL;
        if (!p) {
            b->failed = true;
            return NULL;
        }
        b->data = p;
    }
    uint8_t *at = b->data + b->len;
    memset(at, 0, n);
    b->len += n;
    return at;
}

void fmt_buf_free(struct fmt_buf *b)
{
    free(b->data);
    *b = (struct fmt_buf){0};
}

const uint8_t *fmt_cursor_take(struct fmt_cursor *c, size_t n)
{
    if (n > c->left)
        return NULL;
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

void fmt_image_info_from_header(const struct fmt_image_header *h, struct asr_image_info *i)
{
    i->format_version = h->format_version;
    i->incompat = h->incompat;
    i->ro_compat = h->ro_compat;
    i->compat = h->compat;
    memcpy(i->uuid, h->uuid, 16);
    i->hash_seed = h->hash_seed;
    i->created_unix = h->created_unix;
    i->max_chunk_size = h->max_chunk_size;
    memcpy(i->creator, h->creator, sizeof i->creator);
    memcpy(i->creator_version, h->creator_version, sizeof i->creator_version);
    i->ro_compat_unknown = (h->ro_compat & ~ASR_KNOWN_RO_COMPAT) != 0;
}

/* Length-prefixed strings (le16 length, no NUL), as the layout and the stack table write them. */
int fmt_put_str(struct fmt_buf *out, const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return -1;
    uint8_t *p = fmt_buf_extend(out, 2 + n);
    if (!p)
        return -1;
    put_le16(p, (uint16_t)n);
    memcpy(p + 2, s, n);
    return 0;
}

int fmt_take_str(struct fmt_cursor *c, char *dst, size_t max, struct asr_error *err)
{
    const uint8_t *p = fmt_cursor_take(c, 2);
    if (!p)
        return fmt_fail(err, ASR_E_CORRUPT, "%s: truncated", c->what);
    uint16_t n = get_le16(p);
    if (n > max || !(p = fmt_cursor_take(c, n)))
        return fmt_fail(err, ASR_E_CORRUPT, "%s: string length %u out of range", c->what, n);
    memcpy(dst, p, n);
    dst[n] = '\0';
    if (memchr(dst, '\0', n))
        return fmt_fail(err, ASR_E_CORRUPT, "%s: string holds a NUL byte", c->what);
    return ASR_OK;
}
