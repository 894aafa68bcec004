/* The sequential reader: reads an image front to back from a source that cannot seek (a pipe,
 * or a split set's parts concatenated in order), checking every record as it passes, since the
 * index at the end arrives last. Memory is bounded by the caps of SPEC.md section 15, plus
 * 4 bytes per chunk (their content lengths, which extent records are checked against). */
#include "internal.h"
#include "le.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "xxhash_fast.h"
#include <zstd.h>

#define IN_BUFFER (256u << 10)
/* A read at least this long, with nothing buffered, goes straight to its destination: chunk
 * data lands in the caller's buffer without a copy through ours. */
#define DIRECT_READ (64u << 10)
#define SECTION_STEP (1u << 20) /* a section's first buffer; it doubles as its bytes arrive */
#define EXTENT_BODY_MAX (8u + ASR_MAX_EXTENT_RECORD * ASR_EXTENT_SIZE)
/* The index lists every chunk in 32 bytes within its 1 GiB cap: no image has more chunks. */
#define MAX_CHUNKS ((ASR_MAX_INDEX_SIZE - ASR_INDEX_FIXED) / ASR_CHUNK_ENTRY_SIZE)

/* What the stream has seen of one volume, to check its extents and then the index's copy. */
struct volume_seen {
    uint64_t end;         /* end of its last extent: the next must start at or after it */
    uint64_t fingerprint; /* sum over its extents of XXH3-64(entry bytes, seed = ordinal) */
    struct asr_volume_stats stats;
};

struct asr_stream {
    asr_stream_read_fn read;
    void *ctx;
    int fd;      /* asr_stream_open_fd's descriptor (ctx points here) */
    char *name;  /* for messages */
    struct asr_error fatal; /* the error that ended the stream, returned by every later call */
    bool failed, ended;

    /* input: physical bytes, part headers included */
    uint8_t *in;
    size_t in_pos, in_len;
    bool eof;
    uint64_t physical;   /* bytes consumed */
    uint64_t in_part;    /* bytes of the current part consumed, its header included */
    uint64_t split_size; /* 0: one part */
    uint32_t parts;      /* part headers seen */
    uint8_t part_uuid[16];

    /* logical stream */
    uint64_t logical;          /* bytes consumed */
    XXH3_state_t *stream_hash; /* of [0, index offset), for the index's stream_hash */
    bool hashing;
    XXH3_state_t *data_hash;   /* of the pending chunk's stored bytes */
    bool data_hashing;

    struct asr_image_header header;
    struct asr_layout layout;
    struct asr_image_info info;
    struct volume_seen *volumes;
    bool have_stats; /* the index has been read: volume stats are final */

    /* records */
    uint64_t next_chunk;
    uint32_t *chunk_len; /* content length of each chunk so far */
    uint64_t chunk_cap;
    XXH3_state_t *table_hash; /* the index's chunk table as the chunk records predict it */
    uint64_t damaged;         /* chunks whose stored bytes failed their checksum in passing */
    struct asr_chunk_header pending; /* the chunk whose stored bytes are next */
    uint64_t pending_at;
    uint32_t pending_left; /* its stored bytes not yet consumed */
    uint8_t *chunk_buf;    /* max_chunk_size bytes, for read_chunk_data with no buffer */
    uint8_t *ext_body;     /* one extent record's content */
    struct asr_extent *ext;
};

/* ---- errors -------------------------------------------------------------------------------- */

static int stop(struct asr_stream *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Ends the stream: the error is kept and every later call returns it. */
static int stop(struct asr_stream *s, int code, const char *fmt, ...)
{
    char msg[ASR_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->failed = true;
    return asr_fail(&s->fatal, code, "%s: %s", s->name, msg);
}

static int incomplete(struct asr_stream *s)
{
    return stop(s, ASR_E_INCOMPLETE,
                "image stream ended at logical offset %llu before its footer (interrupted backup or truncated "
                "transfer)",
                (unsigned long long)s->logical);
}

static int report(const struct asr_stream *s, struct asr_error *err)
{
    if (err)
        *err = s->fatal;
    return s->fatal.code;
}

/* ---- physical input ---------------------------------------------------------------------- */

/* One call of the read function, retried on EINTR; 0 at the end of input. */
static int read_some(struct asr_stream *s, uint8_t *dst, size_t len, size_t *got)
{
    ssize_t n;
    do
        n = s->read(s->ctx, dst, len);
    while (n == -EINTR);
    if (n < 0) /* -errno; anything beyond errno's range is taken as EIO */
        return stop(s, ASR_E_IO, "read error at input offset %llu: %s", (unsigned long long)s->physical,
                    strerror(n >= -4095 ? (int)-n : EIO));
    if ((size_t)n > len)
        return stop(s, ASR_E_ARG, "the read function returned %zd bytes for a read of %zu", n, len);
    if (n == 0)
        s->eof = true;
    *got = (size_t)n;
    return ASR_OK;
}

/* Up to max input bytes: *got of them at *at, which is dst (filled) or, when dst is NULL, the
 * input buffer (valid until the next call). *got is 0 only at the end of input. */
static int take(struct asr_stream *s, uint8_t *dst, size_t max, const uint8_t **at, size_t *got)
{
    *got = 0;
    if (s->in_pos == s->in_len) {
        if (s->eof)
            return ASR_OK;
        if (dst && max >= DIRECT_READ) {
            *at = dst;
            return read_some(s, dst, max, got);
        }
        s->in_pos = s->in_len = 0;
        int rc = read_some(s, s->in, IN_BUFFER, &s->in_len);
        if (rc || s->in_len == 0)
            return rc;
    }
    size_t n = s->in_len - s->in_pos < max ? s->in_len - s->in_pos : max;
    const uint8_t *p = s->in + s->in_pos;
    s->in_pos += n;
    if (dst) {
        memcpy(dst, p, n);
        p = dst;
    }
    *at = p;
    *got = n;
    return ASR_OK;
}

/* Exactly n input bytes into dst; *got < n only at the end of input. */
static int take_exact(struct asr_stream *s, uint8_t *dst, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        const uint8_t *at;
        size_t k;
        int rc = take(s, dst + *got, n - *got, &at, &k);
        if (rc)
            return rc;
        if (k == 0)
            break;
        *got += k;
    }
    s->physical += *got;
    s->in_part += *got;
    return ASR_OK;
}

/* The part header that starts every split_size input bytes: of this image, next in order, at
 * the payload offset its number implies. */
static int next_part(struct asr_stream *s)
{
    uint8_t raw[ASR_PART_HEADER_SIZE];
    size_t got;
    uint32_t k = s->parts + 1;
    uint64_t at = s->physical;
    s->in_part = 0;
    int rc = take_exact(s, raw, sizeof raw, &got);
    if (rc)
        return rc;
    if (got < sizeof raw)
        return incomplete(s);
    struct asr_part_header h;
    struct asr_error why = {0};
    if (memcmp(raw, asr_part_magic, sizeof asr_part_magic) != 0)
        return stop(s, ASR_E_PARTS,
                    "no part header at input offset %llu where part %u must begin: parts missing, or not "
                    "concatenated whole and in order",
                    (unsigned long long)at, k);
    if ((rc = asr_part_header_decode(raw, &h, &why)))
        return stop(s, rc, "part %u header at input offset %llu: %s", k, (unsigned long long)at, why.msg);
    if (memcmp(h.uuid, s->part_uuid, 16) != 0)
        return stop(s, ASR_E_PARTS, "part %u at input offset %llu belongs to another image", k,
                    (unsigned long long)at);
    if (h.part_number != k)
        return stop(s, ASR_E_PARTS, "input offset %llu holds part %u where part %u must be: parts reordered",
                    (unsigned long long)at, h.part_number, k);
    if (h.split_size != s->split_size || h.payload_offset != s->logical)
        return stop(s, ASR_E_PARTS, "part %u at input offset %llu disagrees with part 1 on the split size", k,
                    (unsigned long long)at);
    s->parts = k;
    s->info.part_count = k;
    return ASR_OK;
}

/* ---- logical stream ---------------------------------------------------------------------- */

static void digest(struct asr_stream *s, const uint8_t *p, size_t n)
{
    if (s->hashing)
        XXH3_128bits_update(s->stream_hash, p, n);
    if (s->data_hashing)
        XXH3_64bits_update(s->data_hash, p, n);
}

/* Exactly n logical bytes into dst (or skipped when dst is NULL), part headers stripped, fed to
 * the running hashes. The end of input here is an incomplete image. */
static int pull(struct asr_stream *s, uint8_t *dst, size_t n)
{
    while (n) {
        if (s->split_size && s->in_part == s->split_size) {
            int rc = next_part(s);
            if (rc)
                return rc;
        }
        size_t want = n;
        if (s->split_size && want > s->split_size - s->in_part)
            want = (size_t)(s->split_size - s->in_part);
        const uint8_t *at;
        size_t got;
        int rc = take(s, dst, want, &at, &got);
        if (rc)
            return rc;
        if (got == 0)
            return incomplete(s);
        digest(s, at, got);
        s->physical += got;
        s->in_part += got;
        s->logical += got;
        n -= got;
        if (dst)
            dst += got;
    }
    return ASR_OK;
}

/* The rest of a section envelope whose tag is already in raw[0..4): read, checked, and its
 * content length within [min, max]. */
static int section_envelope(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_SECTION_HEADER_SIZE], const char *what,
                            uint64_t min, uint64_t max, struct asr_section_header *h)
{
    struct asr_error why = {0};
    int rc = pull(s, raw + 4, ASR_SECTION_HEADER_SIZE - 4);
    if (rc)
        return rc;
    if (asr_section_header_decode(raw, h, &why))
        return stop(s, ASR_E_CORRUPT, "%s at logical offset %llu: %s", what, (unsigned long long)at, why.msg);
    if (h->content_len < min || h->content_len > max)
        return stop(s, ASR_E_CORRUPT, "%s at logical offset %llu: length %llu out of range (%llu to %llu)", what,
                    (unsigned long long)at, (unsigned long long)h->content_len, (unsigned long long)min,
                    (unsigned long long)max);
    return ASR_OK;
}

/* A section's envelope (at logical offset at, its first four bytes already in raw) and content:
 * the content is read into *body (malloc'd), grown as its bytes arrive, so that a length the
 * stream does not back up with bytes cannot make it allocate the section's cap. */
static int read_section(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_SECTION_HEADER_SIZE], uint32_t tag,
                        const char *what, uint64_t cap, uint8_t **body, size_t *len)
{
    struct asr_section_header h;
    int rc = section_envelope(s, at, raw, what, 0, cap, &h);
    if (rc)
        return rc;
    if (h.tag != tag)
        return stop(s, ASR_E_CORRUPT, "%s at logical offset %llu: wrong section tag", what, (unsigned long long)at);
    size_t n = (size_t)h.content_len, have = 0, room = 0;
    uint8_t *b = NULL;
    do {
        if (have == room) {
            /* Doubling only once the bytes so far have arrived: at most twice what was received. */
            room = room ? 2 * room : SECTION_STEP;
            if (room > n)
                room = n;
            uint8_t *bigger = realloc(b, room ? room : 1);
            if (!bigger) {
                free(b);
                return stop(s, ASR_E_NOMEM, "%s: out of memory", what);
            }
            b = bigger;
        }
        if ((rc = pull(s, b + have, room - have))) {
            free(b);
            return rc;
        }
        have = room;
    } while (have < n);
    if (asr_checksum64(b, n) != h.content_hash) {
        free(b);
        return stop(s, ASR_E_CORRUPT, "%s at logical offset %llu: checksum mismatch", what, (unsigned long long)at);
    }
    *body = b;
    *len = n;
    return ASR_OK;
}

/* ---- opening: everything before the first chunk ------------------------------------------- */

static int open_part(struct asr_stream *s)
{
    uint8_t raw[ASR_PART_HEADER_SIZE];
    size_t got;
    int rc = take_exact(s, raw, sizeof raw, &got);
    if (rc)
        return rc;
    if (got == 0)
        return stop(s, ASR_E_INCOMPLETE, "the image stream is empty (did the command sending it fail?)");
    if (memcmp(raw, asr_part_magic, got < sizeof asr_part_magic ? got : sizeof asr_part_magic) != 0)
        return stop(s, ASR_E_NOT_IMAGE, "not an asrimg image (no magic at its start)");
    if (got < sizeof raw)
        return stop(s, ASR_E_INCOMPLETE, "image stream ended inside its part header, after %zu bytes", got);
    struct asr_part_header h;
    struct asr_error why = {0};
    if ((rc = asr_part_header_decode(raw, &h, &why)))
        return stop(s, rc, "part header: %s", why.msg);
    if (h.part_number != 1)
        return stop(s, ASR_E_PARTS,
                    "the stream begins with part %u of a split set: send the parts whole and in order, from the "
                    "first (cat IMAGE IMAGE.002 ...)",
                    h.part_number);
    if (h.payload_offset != 0)
        return stop(s, ASR_E_CORRUPT, "part header: part 1 payload offset is not 0");
    memcpy(s->part_uuid, h.uuid, 16);
    s->split_size = h.split_size;
    s->parts = 1;
    return ASR_OK;
}

static int open_header(struct asr_stream *s)
{
    uint8_t fixed[8];
    int rc = pull(s, fixed, sizeof fixed);
    if (rc)
        return rc;
    if (get_le32(fixed) != ASR_TAG_HEADER)
        return stop(s, ASR_E_NOT_IMAGE, "no image header at logical offset 0");
    uint32_t len = get_le32(fixed + 4);
    if (len < ASR_IMAGE_HEADER_FIXED + 14 || len > ASR_IMAGE_HEADER_MAX)
        return stop(s, ASR_E_CORRUPT, "image header at logical offset 0: length %u out of range", len);
    uint8_t *raw = malloc(len);
    if (!raw)
        return stop(s, ASR_E_NOMEM, "out of memory");
    memcpy(raw, fixed, sizeof fixed);
    struct asr_error why = {0};
    if (!(rc = pull(s, raw + sizeof fixed, len - sizeof fixed)) &&
        (rc = asr_image_header_decode(raw, len, &s->header, &why)))
        stop(s, rc, "image header at logical offset 0: %s", why.msg);
    free(raw);
    if (rc)
        return rc;
    if ((rc = asr_image_header_check_support(&s->header, &why)))
        return stop(s, rc, "%s", why.msg);
    if (memcmp(s->header.uuid, s->part_uuid, 16) != 0)
        return stop(s, ASR_E_CORRUPT, "image header and part header disagree on the image id");
    return ASR_OK;
}

static int open_layout(struct asr_stream *s)
{
    struct asr_error why = {0};
    uint8_t raw[ASR_SECTION_HEADER_SIZE], *body;
    size_t len;
    uint64_t at = s->logical;
    int rc = pull(s, raw, 4);
    if (!rc)
        rc = read_section(s, at, raw, ASR_TAG_LAYOUT, "layout section", ASR_MAX_LAYOUT_SIZE, &body, &len);
    if (rc)
        return rc;
    rc = asr_layout_decode_disks(body, len, &s->layout, &why);
    free(body);
    if (rc)
        return stop(s, rc, "layout section at logical offset %llu: %s", (unsigned long long)at, why.msg);
    at = s->logical;
    if ((rc = pull(s, raw, 4)) ||
        (rc = read_section(s, at, raw, ASR_TAG_VOLUMES, "volume table", ASR_MAX_VOLTABLE_SIZE, &body, &len)))
        return rc;
    s->layout.incompat = s->header.incompat;
    rc = asr_layout_decode_volumes(body, len, &s->layout, &why);
    free(body);
    if (rc)
        return stop(s, rc, "volume table at logical offset %llu: %s", (unsigned long long)at, why.msg);
    return ASR_OK;
}

static void fill_info(struct asr_stream *s)
{
    struct asr_image_info *i = &s->info;
    const struct asr_image_header *h = &s->header;
    asr_image_info_from_header(h, i);
    i->part_count = s->parts;
    i->split_size = s->split_size;
    i->image_bytes = s->physical;
}

static int open_all(struct asr_stream *s)
{
    s->in = malloc(IN_BUFFER);
    s->stream_hash = XXH3_createState();
    s->data_hash = XXH3_createState();
    s->table_hash = XXH3_createState();
    s->ext_body = malloc(EXTENT_BODY_MAX);
    s->ext = malloc(ASR_MAX_EXTENT_RECORD * sizeof *s->ext);
    if (!s->in || !s->stream_hash || !s->data_hash || !s->table_hash || !s->ext_body || !s->ext)
        return stop(s, ASR_E_NOMEM, "out of memory");
    XXH3_128bits_reset(s->stream_hash);
    XXH3_64bits_reset(s->table_hash);
    s->hashing = true;
    int rc;
    if ((rc = open_part(s)) || (rc = open_header(s)) || (rc = open_layout(s)))
        return rc;
    if (!(s->volumes = calloc(s->layout.volume_count + 1u, sizeof *s->volumes)))
        return stop(s, ASR_E_NOMEM, "out of memory");
    fill_info(s);
    return ASR_OK;
}

static ssize_t read_fd(void *ctx, void *buf, size_t len)
{
    ssize_t n = read(*(const int *)ctx, buf, len);
    return n < 0 ? -errno : n;
}

static struct asr_stream *stream_new(asr_stream_read_fn fn, void *ctx, const char *name)
{
    struct asr_stream *s = calloc(1, sizeof *s);
    if (s && !(s->name = strdup(name ? name : "image stream"))) {
        free(s);
        return NULL;
    }
    if (s) {
        s->read = fn;
        s->ctx = ctx;
    }
    return s;
}

static int stream_start(struct asr_stream *s, struct asr_stream **out, struct asr_error *err)
{
    if (!s)
        return asr_fail(err, ASR_E_NOMEM, "out of memory");
    if (open_all(s)) {
        int rc = report(s, err);
        asr_stream_free(s);
        return rc;
    }
    *out = s;
    return ASR_OK;
}

int asr_stream_open(asr_stream_read_fn fn, void *ctx, const char *name, struct asr_stream **out,
                    struct asr_error *err)
{
    *out = NULL;
    if (!fn)
        return asr_fail(err, ASR_E_ARG, "no read function");
    return stream_start(stream_new(fn, ctx, name), out, err);
}

int asr_stream_open_fd(int fd, const char *name, struct asr_stream **out, struct asr_error *err)
{
    *out = NULL;
    struct asr_stream *s = stream_new(read_fd, NULL, name);
    if (s) {
        s->fd = fd;
        s->ctx = &s->fd;
    }
    return stream_start(s, out, err);
}

void asr_stream_free(struct asr_stream *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->in);
    XXH3_freeState(s->stream_hash);
    XXH3_freeState(s->data_hash);
    XXH3_freeState(s->table_hash);
    asr_layout_free(&s->layout);
    free(s->volumes);
    free(s->chunk_len);
    free(s->chunk_buf);
    free(s->ext_body);
    free(s->ext);
    free(s);
}

const struct asr_image_info *asr_stream_info(const struct asr_stream *s) { return &s->info; }
const char *asr_stream_name(const struct asr_stream *s) { return s->name; }
uint64_t asr_stream_input_bytes(const struct asr_stream *s) { return s->physical; }
uint64_t asr_stream_damaged_chunks(const struct asr_stream *s) { return s->damaged; }
uint32_t asr_stream_disk_count(const struct asr_stream *s) { return s->layout.disk_count; }
uint32_t asr_stream_volume_count(const struct asr_stream *s) { return s->layout.volume_count; }

const struct asr_disk_desc *asr_stream_disk(const struct asr_stream *s, uint32_t i)
{
    return i < s->layout.disk_count ? &s->layout.disks[i] : NULL;
}

const struct asr_volume_desc *asr_stream_volume(const struct asr_stream *s, uint32_t i)
{
    return i < s->layout.volume_count ? &s->layout.volumes[i] : NULL;
}

const struct asr_volume_stats *asr_stream_volume_stats(const struct asr_stream *s, uint32_t i)
{
    return s->have_stats && i < s->layout.volume_count ? &s->volumes[i].stats : NULL;
}

const char *asr_stream_feature_name(const struct asr_stream *s, enum asr_feature_class cls, unsigned bit)
{
    for (uint32_t i = 0; i < s->header.feature_count; i++)
        if (s->header.features[i].cls == cls && s->header.features[i].bit == bit)
            return s->header.features[i].name;
    return NULL;
}

/* ---- records ------------------------------------------------------------------------------- */

/* The rest of the pending chunk's stored bytes, into dst or skipped. Their checksum is taken in
 * passing: a chunk damaged there is the decoder's to report, and it explains a stream hash
 * mismatch at the index. */
static int finish_chunk_data(struct asr_stream *s, uint8_t *dst)
{
    s->data_hashing = true;
    int rc = pull(s, dst, s->pending_left);
    s->data_hashing = false;
    if (rc)
        return rc;
    s->pending_left = 0;
    if (XXH3_64bits_digest(s->data_hash) != s->pending.stored_hash)
        s->damaged++;
    return ASR_OK;
}

static int chunk_record(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_CHUNK_HEADER_SIZE],
                        struct asr_stream_record *rec)
{
    struct asr_chunk_header h;
    struct asr_error why = {0};
    unsigned long long id = (unsigned long long)s->next_chunk, off = (unsigned long long)at;
    int rc = pull(s, raw + 4, ASR_CHUNK_HEADER_SIZE - 4);
    if (rc)
        return rc;
    if (asr_chunk_header_decode(raw, &h, &why))
        return stop(s, ASR_E_CORRUPT, "chunk %llu at logical offset %llu: %s", id, off, why.msg);
    if (h.chunk_id != s->next_chunk)
        return stop(s, ASR_E_CORRUPT, "chunk at logical offset %llu: numbered %llu, expected chunk %llu", off,
                    (unsigned long long)h.chunk_id, id);
    if (h.content_len > s->header.max_chunk_size)
        return stop(s, ASR_E_CORRUPT, "chunk %llu at logical offset %llu: content length %u over the image's "
                    "maximum of %u", id, off, h.content_len, s->header.max_chunk_size);
    if (s->next_chunk == s->chunk_cap) {
        if (s->chunk_cap >= MAX_CHUNKS)
            return stop(s, ASR_E_CORRUPT, "chunk %llu at logical offset %llu: more chunks than an index can list",
                        id, off);
        uint64_t cap = s->chunk_cap ? s->chunk_cap * 2 : 4096;
        if (cap > MAX_CHUNKS)
            cap = MAX_CHUNKS;
        uint32_t *grown = realloc(s->chunk_len, (size_t)cap * sizeof *grown);
        if (!grown)
            return stop(s, ASR_E_NOMEM, "out of memory for %llu chunk lengths", (unsigned long long)cap);
        s->chunk_len = grown;
        s->chunk_cap = cap;
    }
    s->chunk_len[s->next_chunk++] = h.content_len;
    /* The index's entry for this chunk is known now: hash it, to compare with the index. */
    uint8_t entry[ASR_CHUNK_ENTRY_SIZE];
    asr_chunk_entry_encode(&(struct asr_chunk_entry){at, h.stored_len, h.content_len, h.content_hash}, entry);
    XXH3_64bits_update(s->table_hash, entry, sizeof entry);
    s->info.chunk_count++;
    s->info.stored_bytes += h.stored_len;
    s->info.unique_bytes += h.content_len;
    s->pending = h;
    s->pending_at = at;
    s->pending_left = h.stored_len;
    XXH3_64bits_reset(s->data_hash);
    rec->kind = ASR_STREAM_CHUNK;
    rec->chunk = (struct asr_stream_chunk){.chunk_id = h.chunk_id, .codec = h.codec, .stored_len = h.stored_len,
                                           .content_len = h.content_len, .content_hash = h.content_hash,
                                           .stored_hash = h.stored_hash, .logical_offset = at};
    return ASR_OK;
}

static uint32_t stream_chunk_len(const void *lens, uint64_t id)
{
    return ((const uint32_t *)lens)[id];
}

/* Section 9's rules, across records (asr_extent_check): each extent after the last one of its
 * volume, inside the volume, and a data extent inside a chunk already in the stream. */
static int check_extents(struct asr_stream *s, uint64_t at, uint32_t vol, uint32_t count)
{
    unsigned long long off = (unsigned long long)at;
    if (vol >= s->layout.volume_count)
        return stop(s, ASR_E_CORRUPT, "extent record at logical offset %llu: volume %u does not exist", off, vol);
    struct volume_seen *v = &s->volumes[vol];
    uint64_t size = s->layout.volumes[vol].size_bytes;
    for (uint32_t i = 0; i < count; i++) {
        const struct asr_extent *e = &s->ext[i];
        struct asr_error why = {0};
        int rc = asr_extent_check(e, v->end, size, s->next_chunk, stream_chunk_len, s->chunk_len, &why);
        if (rc)
            return stop(s, rc, "extent record at logical offset %llu: volume %u %s", off, vol, why.msg);
        if (e->ref < ASR_REF_UNREADABLE) {
            v->stats.data_bytes += e->length;
            s->info.data_bytes += e->length;
        } else if (e->ref == ASR_REF_ZERO) {
            v->stats.zero_bytes += e->length;
            s->info.zero_bytes += e->length;
        } else {
            v->stats.unreadable_bytes += e->length;
            s->info.unreadable_bytes += e->length;
        }
        v->end = e->offset + e->length;
        v->fingerprint += XXH3_64bits_withSeed(s->ext_body + 8 + (size_t)i * ASR_EXTENT_SIZE, ASR_EXTENT_SIZE,
                                               v->stats.extent_count++);
    }
    return ASR_OK;
}

static int extent_record(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_SECTION_HEADER_SIZE],
                         struct asr_stream_record *rec)
{
    struct asr_section_header h;
    struct asr_error why = {0};
    unsigned long long off = (unsigned long long)at;
    int rc = section_envelope(s, at, raw, "extent record", 8 + ASR_EXTENT_SIZE, EXTENT_BODY_MAX, &h);
    if (rc)
        return rc;
    if ((rc = pull(s, s->ext_body, (size_t)h.content_len)))
        return rc;
    if (asr_checksum64(s->ext_body, (size_t)h.content_len) != h.content_hash)
        return stop(s, ASR_E_CORRUPT, "extent record at logical offset %llu: checksum mismatch", off);
    uint32_t vol, count;
    if (asr_extent_record_decode(s->ext_body, (size_t)h.content_len, &vol, s->ext, &count, &why))
        return stop(s, ASR_E_CORRUPT, "extent record at logical offset %llu: %s", off, why.msg);
    if ((rc = check_extents(s, at, vol, count)))
        return rc;
    rec->kind = ASR_STREAM_EXTENTS;
    rec->volume_id = vol;
    rec->extent_count = count;
    rec->extents = s->ext;
    return ASR_OK;
}

/* ---- index and footer ---------------------------------------------------------------------- */

/* Reading the index's content piece by piece, without holding it. */
struct index_walk {
    uint64_t left;           /* content bytes not yet read */
    XXH3_state_t *content;   /* the envelope's content hash */
    XXH3_state_t *whole;     /* the footer's hash of envelope and content */
    char problem[ASR_ERROR_MSG_MAX]; /* the first disagreement with the stream; reading goes on */
};

static int walk_take(struct asr_stream *s, struct index_walk *w, uint8_t *dst, size_t n)
{
    int rc = pull(s, dst, n);
    if (!rc) {
        XXH3_64bits_update(w->content, dst, n);
        XXH3_64bits_update(w->whole, dst, n);
        w->left -= n;
    }
    return rc;
}

static void walk_problem(struct index_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void walk_problem(struct index_walk *w, const char *fmt, ...)
{
    if (w->problem[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->problem, sizeof w->problem, fmt, ap);
    va_end(ap);
}


/* The fixed part and the chunk table: the table must be exactly the entries the chunk records
 * gave, which the stream hashed as it met them. */
static int walk_chunks(struct asr_stream *s, struct index_walk *w, struct asr_hash128 stream_hash)
{
    uint8_t b[ASR_INDEX_FIXED];
    int rc = walk_take(s, w, b, sizeof b);
    if (rc)
        return rc;
    uint32_t volumes = get_le32(b);
    uint64_t chunks = get_le64(b + 8);
    if (get_le32(b + 4) != 0)
        walk_problem(w, "reserved bytes not zero");
    else if (volumes != s->layout.volume_count)
        walk_problem(w, "lists %u volumes, the volume table %u", volumes, s->layout.volume_count);
    else if (chunks != s->next_chunk)
        walk_problem(w, "lists %llu chunks, the stream holds %llu", (unsigned long long)chunks,
                     (unsigned long long)s->next_chunk);
    /* The stream hash covers damaged chunk data too: such chunks are the decoder's to report, and
     * every other byte before the index has passed a checksum of its own. */
    else if (!asr_hash128_eq(asr_hash128_get(b + 16), stream_hash) && s->damaged == 0)
        walk_problem(w, "whole-stream checksum mismatch: the bytes before the index are not the ones written");
    else if (chunks > w->left / ASR_CHUNK_ENTRY_SIZE)
        walk_problem(w, "ends inside its chunk table");
    if (w->problem[0])
        return ASR_OK;
    XXH3_state_t *table = XXH3_createState();
    if (!table)
        return stop(s, ASR_E_NOMEM, "out of memory");
    XXH3_64bits_reset(table);
    for (uint64_t i = 0; i < chunks && !rc; i++) {
        uint8_t e[ASR_CHUNK_ENTRY_SIZE];
        if (!(rc = walk_take(s, w, e, sizeof e)))
            XXH3_64bits_update(table, e, sizeof e);
    }
    if (!rc && XXH3_64bits_digest(table) != XXH3_64bits_digest(s->table_hash))
        walk_problem(w, "chunk table disagrees with the chunk records in the stream");
    XXH3_freeState(table);
    return rc;
}

/* Each volume entry and its extents: the same extents, in the same order, as the stream's extent
 * records, and the totals they add up to. The volume content hash is kept for the caller. */
static int walk_volumes(struct asr_stream *s, struct index_walk *w)
{
    int rc = ASR_OK;
    for (uint32_t v = 0; v < s->layout.volume_count && !rc && !w->problem[0]; v++) {
        struct volume_seen *seen = &s->volumes[v];
        uint8_t b[ASR_VOLUME_ENTRY_SIZE];
        if (w->left < sizeof b) {
            walk_problem(w, "ends before the entry of volume %u", v);
            break;
        }
        if ((rc = walk_take(s, w, b, sizeof b)))
            break;
        uint64_t count = get_le64(b + 8);
        if (get_le32(b) != v || get_le32(b + 4) != 0 || get_le64(b + 56) != 0)
            walk_problem(w, "volume entry %u malformed", v);
        else if (count != seen->stats.extent_count)
            walk_problem(w, "volume %u: %llu extents, the stream's extent records hold %llu", v,
                         (unsigned long long)count, (unsigned long long)seen->stats.extent_count);
        else if (get_le64(b + 32) != seen->stats.data_bytes || get_le64(b + 40) != seen->stats.zero_bytes ||
                 get_le64(b + 48) != seen->stats.unreadable_bytes)
            walk_problem(w, "volume %u: totals differ from the stream's extent records", v);
        else if (count > w->left / ASR_EXTENT_SIZE)
            walk_problem(w, "volume %u: its extents run past the end of the index", v);
        uint64_t fingerprint = 0;
        for (uint64_t i = 0; i < count && !rc && !w->problem[0]; i++) {
            uint8_t e[ASR_EXTENT_SIZE];
            if (!(rc = walk_take(s, w, e, sizeof e)))
                fingerprint += XXH3_64bits_withSeed(e, sizeof e, i);
        }
        if (!rc && !w->problem[0] && fingerprint != seen->fingerprint)
            walk_problem(w, "volume %u: extents differ from the stream's extent records", v);
        seen->stats.content_hash = asr_hash128_get(b + 16);
    }
    if (!rc && !w->problem[0] && w->left)
        walk_problem(w, "%llu stray bytes at its end", (unsigned long long)w->left);
    /* After a disagreement the rest is read only for the checksums, which say whether the index
     * was damaged or written wrong. */
    while (!rc && w->left) {
        uint8_t skip[4096];
        rc = walk_take(s, w, skip, w->left < sizeof skip ? (size_t)w->left : sizeof skip);
    }
    return rc;
}

static int footer(struct asr_stream *s, uint64_t index_at, uint64_t index_len, uint64_t index_hash)
{
    uint8_t raw[ASR_FOOTER_SIZE];
    unsigned long long off = (unsigned long long)s->logical;
    struct asr_footer f;
    struct asr_error why = {0};
    int rc = pull(s, raw, sizeof raw);
    if (rc)
        return rc;
    if (asr_footer_decode(raw, &f, &why))
        return stop(s, ASR_E_CORRUPT, "footer at logical offset %llu: %s", off, why.msg);
    if (f.index_offset != index_at || f.index_length != index_len)
        return stop(s, ASR_E_CORRUPT, "footer at logical offset %llu: places the index at %llu (%llu bytes), "
                    "it was found at %llu (%llu bytes)", off, (unsigned long long)f.index_offset,
                    (unsigned long long)f.index_length, (unsigned long long)index_at, (unsigned long long)index_len);
    if (memcmp(f.uuid, s->header.uuid, 16) != 0)
        return stop(s, ASR_E_CORRUPT, "footer at logical offset %llu belongs to another image", off);
    if (f.part_count != s->parts)
        return stop(s, ASR_E_PARTS, "footer at logical offset %llu: the image has %u parts, the stream held %u",
                    off, f.part_count, s->parts);
    if (f.index_hash != index_hash)
        return stop(s, ASR_E_CORRUPT, "footer at logical offset %llu: the index does not match its checksum", off);
    return ASR_OK;
}

/* The index, read through without holding it, then the footer: the end of the image. */
static int index_and_footer(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_SECTION_HEADER_SIZE])
{
    struct asr_section_header h;
    unsigned long long off = (unsigned long long)at;
    int rc = section_envelope(s, at, raw, "index", ASR_INDEX_FIXED, ASR_MAX_INDEX_SIZE, &h);
    if (rc)
        return rc;
    XXH128_hash_t sh = XXH3_128bits_digest(s->stream_hash);
    struct index_walk w = {.left = h.content_len, .content = XXH3_createState(), .whole = XXH3_createState()};
    if (!w.content || !w.whole) {
        rc = stop(s, ASR_E_NOMEM, "out of memory");
    } else {
        XXH3_64bits_reset(w.content);
        XXH3_64bits_reset(w.whole);
        XXH3_64bits_update(w.whole, raw, ASR_SECTION_HEADER_SIZE);
        rc = walk_chunks(s, &w, (struct asr_hash128){sh.low64, sh.high64});
        if (!rc)
            rc = walk_volumes(s, &w);
        if (!rc && XXH3_64bits_digest(w.content) != h.content_hash)
            rc = stop(s, ASR_E_CORRUPT, "index at logical offset %llu: checksum mismatch", off);
        else if (!rc && w.problem[0])
            rc = stop(s, ASR_E_CORRUPT, "index at logical offset %llu: %s", off, w.problem);
        if (!rc)
            rc = footer(s, at, ASR_SECTION_HEADER_SIZE + h.content_len, XXH3_64bits_digest(w.whole));
    }
    XXH3_freeState(w.content);
    XXH3_freeState(w.whole);
    return rc;
}

/* ---- the record loop ------------------------------------------------------------------------ */

static int next_record(struct asr_stream *s, struct asr_stream_record *rec)
{
    int rc;
    if (s->pending_left && (rc = finish_chunk_data(s, NULL)))
        return rc;
    uint64_t at = s->logical;
    uint8_t raw[ASR_CHUNK_HEADER_SIZE];
    /* The tag decides whether these bytes are the index, which the stream hash stops before. */
    s->hashing = false;
    rc = pull(s, raw, 4);
    s->hashing = true;
    if (rc)
        return rc;
    uint32_t tag = get_le32(raw);
    rec->logical_offset = at;
    if (tag == ASR_TAG_INDEX) {
        s->hashing = false;
        if ((rc = index_and_footer(s, at, raw)))
            return rc;
        s->ended = true;
        s->have_stats = true;
        rec->kind = ASR_STREAM_END;
        return ASR_OK;
    }
    XXH3_128bits_update(s->stream_hash, raw, 4);
    unsigned long long off = (unsigned long long)at;
    switch (tag) {
    case ASR_TAG_CHUNK:
        return chunk_record(s, at, raw, rec);
    case ASR_TAG_EXTENTS:
        return extent_record(s, at, raw, rec);
    case ASR_TAG_HEADER:
    case ASR_TAG_LAYOUT:
    case ASR_TAG_VOLUMES:
        return stop(s, ASR_E_CORRUPT, "record at logical offset %llu: %.4s out of place after the data began", off,
                    (const char *)raw);
    case ASR_TAG_FOOTER:
        return stop(s, ASR_E_CORRUPT, "footer at logical offset %llu without an index before it", off);
    default:
        return stop(s, ASR_E_CORRUPT, "unknown or damaged record at logical offset %llu (chunk %llu or an extent "
                    "record expected)", off, (unsigned long long)s->next_chunk);
    }
}

int asr_stream_next(struct asr_stream *s, struct asr_stream_record *rec, struct asr_error *err)
{
    memset(rec, 0, sizeof *rec);
    if (s->failed)
        return report(s, err);
    if (s->ended) {
        rec->kind = ASR_STREAM_END;
        rec->logical_offset = s->logical;
        return ASR_OK;
    }
    int rc = next_record(s, rec);
    s->info.image_bytes = s->physical;
    if (rc) {
        memset(rec, 0, sizeof *rec);
        return report(s, err);
    }
    return ASR_OK;
}

int asr_stream_read_chunk_data(struct asr_stream *s, struct asr_stream_chunk *c, void *buf, size_t cap,
                               struct asr_error *err)
{
    if (s->failed)
        return report(s, err);
    if (s->pending_left == 0 || c->chunk_id != s->pending.chunk_id ||
        c->logical_offset != s->pending_at)
        return asr_fail(err, ASR_E_STATE, "%s: chunk %llu is not the chunk just returned, or its data was read "
                        "already", s->name, (unsigned long long)c->chunk_id);
    if (!buf) {
        if (!s->chunk_buf && !(s->chunk_buf = malloc(s->header.max_chunk_size)))
            return asr_fail(err, ASR_E_NOMEM, "%s: out of memory for a chunk buffer", s->name);
        buf = s->chunk_buf;
        cap = s->header.max_chunk_size;
    }
    if (cap < s->pending_left)
        return asr_fail(err, ASR_E_ARG, "%s: buffer of %zu bytes too small for chunk %llu's %u stored bytes",
                        s->name, cap, (unsigned long long)c->chunk_id, s->pending_left);
    int rc = finish_chunk_data(s, buf);
    s->info.image_bytes = s->physical;
    if (rc)
        return report(s, err);
    c->stored = buf;
    return ASR_OK;
}

/* ---- chunk decoders ------------------------------------------------------------------------- */

/* Everything a decoder needs is copied from the stream, so a worker thread touches nothing the
 * reading thread changes. */
struct asr_chunk_decoder {
    char *name;
    uint64_t seed;
    ZSTD_DCtx *dctx;
};

int asr_chunk_decoder_new(const struct asr_stream *s, struct asr_chunk_decoder **out, struct asr_error *err)
{
    *out = NULL;
    struct asr_chunk_decoder *d = calloc(1, sizeof *d);
    if (d) {
        d->seed = s->header.hash_seed;
        d->name = strdup(s->name);
        d->dctx = ZSTD_createDCtx();
    }
    if (!d || !d->name || !d->dctx) {
        asr_chunk_decoder_free(d);
        return asr_fail(err, ASR_E_NOMEM, "out of memory for a chunk decoder");
    }
    *out = d;
    return ASR_OK;
}

void asr_chunk_decoder_free(struct asr_chunk_decoder *d)
{
    if (!d)
        return;
    free(d->name);
    ZSTD_freeDCtx(d->dctx);
    free(d);
}

int asr_chunk_decoder_run(struct asr_chunk_decoder *d, const struct asr_stream_chunk *c, void *out, size_t cap,
                          struct asr_error *err)
{
    if (!c->stored)
        return asr_fail(err, ASR_E_ARG, "%s: chunk %llu has no stored bytes: read them first", d->name,
                        (unsigned long long)c->chunk_id);
    struct asr_chunk_header h = {c->codec, c->chunk_id, c->stored_len, c->content_len, c->content_hash,
                                 c->stored_hash};
    struct asr_error why = {0};
    int rc = asr_chunk_decode(&h, c->stored, out, cap, d->seed, d->dctx, &why);
    if (rc)
        return asr_fail(err, rc, "%s: chunk %llu at logical offset %llu: %s", d->name,
                        (unsigned long long)c->chunk_id, (unsigned long long)c->logical_offset, why.msg);
    return ASR_OK;
}
