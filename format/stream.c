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

    struct fmt_scan sc; /* the records' rules; header, layout and what the volumes hold so far */
    struct asr_image_info info;
    bool have_stats; /* the index has been read: volume stats are final */

    /* records */
    XXH3_state_t *table_hash; /* the index's chunk table as the chunk records predict it */
    uint64_t damaged;         /* chunks whose stored bytes failed their checksum in passing */
    struct fmt_chunk_header pending; /* the chunk whose stored bytes are next */
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
    return fmt_fail(&s->fatal, code, "%s: %s", s->name, msg);
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
    struct fmt_part_header h;
    struct asr_error why = {0};
    if (memcmp(raw, fmt_part_magic, sizeof fmt_part_magic) != 0)
        return stop(s, ASR_E_PARTS,
                    "no part header at input offset %llu where part %u must begin: parts missing, or not "
                    "concatenated whole and in order",
                    (unsigned long long)at, k);
    if ((rc = fmt_part_header_decode(raw, &h, &why)))
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

/* The rest of a section envelope whose tag is already in raw[0..4): read and checked. */
static int section_envelope(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_SECTION_HEADER_SIZE],
                            struct fmt_section_header *h)
{
    int rc = pull(s, raw + 4, ASR_SECTION_HEADER_SIZE - 4);
    return rc ? rc : fmt_scan_envelope(&s->sc, raw, at, UINT64_MAX, h);
}

/* A section's envelope (at logical offset at, its first four bytes already in raw) and content:
 * the content is read into *body (malloc'd), grown as its bytes arrive, so that a length the
 * stream does not back up with bytes cannot make it allocate the section's cap. */
static int read_section(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_SECTION_HEADER_SIZE],
                        struct fmt_section_header *h, uint8_t **body)
{
    int rc = section_envelope(s, at, raw, h);
    if (rc)
        return rc;
    size_t n = (size_t)h->content_len, have = 0, room = 0;
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
                return stop(s, ASR_E_NOMEM, "section at logical offset %llu: out of memory", (unsigned long long)at);
            }
            b = bigger;
        }
        if ((rc = pull(s, b + have, room - have))) {
            free(b);
            return rc;
        }
        have = room;
    } while (have < n);
    if ((rc = fmt_scan_content(&s->sc, h, b, at))) {
        free(b);
        return rc;
    }
    *body = b;
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
    if (memcmp(raw, fmt_part_magic, got < sizeof fmt_part_magic ? got : sizeof fmt_part_magic) != 0)
        return stop(s, ASR_E_NOT_IMAGE, "not an asrimg image (no magic at its start)");
    if (got < sizeof raw)
        return stop(s, ASR_E_INCOMPLETE, "image stream ended inside its part header, after %zu bytes", got);
    struct fmt_part_header h;
    struct asr_error why = {0};
    if ((rc = fmt_part_header_decode(raw, &h, &why)))
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
    if (!(rc = pull(s, raw + sizeof fixed, len - sizeof fixed)))
        rc = fmt_scan_header(&s->sc, raw, len, s->part_uuid);
    free(raw);
    if (!rc && s->sc.external)
        return stop(s, ASR_E_UNSUPPORTED, "a store snapshot (feature external-chunks): its chunks are in the store, "
                    "which a sequential read cannot fetch; open it as STORE::SNAPSHOT");
    return rc;
}

/* The layout section, then the volume table. */
static int open_layout(struct asr_stream *s)
{
    for (int k = 0; k < 2; k++) {
        uint8_t raw[ASR_SECTION_HEADER_SIZE], *body = NULL;
        struct fmt_section_header h;
        uint64_t at = s->logical;
        int rc = pull(s, raw, 4);
        if (!rc && !(rc = read_section(s, at, raw, &h, &body))) {
            rc = fmt_scan_layout(&s->sc, h.tag, body, (size_t)h.content_len, at);
            free(body);
        }
        if (rc)
            return rc;
    }
    return ASR_OK;
}

static void fill_info(struct asr_stream *s)
{
    struct asr_image_info *i = &s->info;
    fmt_image_info_from_header(&s->sc.header, i);
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
    fill_info(s);
    return ASR_OK;
}

/* Every problem the scanner finds ends the stream. */
static void scan_problem(void *ctx, const struct fmt_problem *p)
{
    struct asr_stream *s = ctx;
    if (p->alone)
        stop(s, p->code, "%s", p->msg);
    else
        stop(s, p->code, "%s at logical offset %llu: %s", p->what, (unsigned long long)p->at, p->msg);
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
        fmt_scan_init(&s->sc, FMT_SCAN_STOP, scan_problem, s);
    }
    return s;
}

static int stream_start(struct asr_stream *s, struct asr_stream **out, struct asr_error *err)
{
    if (!s)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
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
        return fmt_fail(err, ASR_E_ARG, "no read function");
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
    fmt_scan_free(&s->sc);
    free(s->chunk_buf);
    free(s->ext_body);
    free(s->ext);
    free(s);
}

const struct asr_image_info *asr_stream_info(const struct asr_stream *s) { return &s->info; }
const char *asr_stream_name(const struct asr_stream *s) { return s->name; }
uint64_t asr_stream_input_bytes(const struct asr_stream *s) { return s->physical; }
uint64_t asr_stream_damaged_chunks(const struct asr_stream *s) { return s->damaged; }
uint32_t asr_stream_disk_count(const struct asr_stream *s) { return s->sc.layout.disk_count; }
uint32_t asr_stream_volume_count(const struct asr_stream *s) { return s->sc.layout.volume_count; }
uint32_t asr_stream_stack_count(const struct asr_stream *s) { return s->sc.layout.stack_count; }

const struct asr_stack_desc *asr_stream_stack(const struct asr_stream *s, uint32_t i)
{
    return i < s->sc.layout.stack_count ? &s->sc.layout.stacks[i] : NULL;
}

const struct asr_machine_desc *asr_stream_machine(const struct asr_stream *s) { return s->sc.machine; }

const struct asr_disk_desc *asr_stream_disk(const struct asr_stream *s, uint32_t i)
{
    return i < s->sc.layout.disk_count ? &s->sc.layout.disks[i] : NULL;
}

const struct asr_volume_desc *asr_stream_volume(const struct asr_stream *s, uint32_t i)
{
    return i < s->sc.layout.volume_count ? &s->sc.layout.volumes[i] : NULL;
}

const struct asr_volume_stats *asr_stream_volume_stats(const struct asr_stream *s, uint32_t i)
{
    return s->have_stats && i < s->sc.layout.volume_count ? &s->sc.volumes[i].stats : NULL;
}

const char *asr_stream_feature_name(const struct asr_stream *s, enum asr_feature_class cls, unsigned bit)
{
    for (uint32_t i = 0; i < s->sc.header.feature_count; i++)
        if (s->sc.header.features[i].cls == cls && s->sc.header.features[i].bit == bit)
            return s->sc.header.features[i].name;
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
    struct fmt_chunk_header h;
    int rc = pull(s, raw + 4, ASR_CHUNK_HEADER_SIZE - 4);
    if (rc || (rc = fmt_scan_chunk(&s->sc, raw, at, UINT64_MAX, &h)))
        return rc;
    /* The index's entry for this chunk is known now: hash it, to compare with the index. */
    uint8_t entry[ASR_CHUNK_ENTRY_SIZE];
    fmt_chunk_entry_encode(&(struct fmt_chunk_entry){at, h.stored_len, h.content_len, h.content_hash}, entry);
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

static int extent_record(struct asr_stream *s, uint64_t at, uint8_t raw[ASR_SECTION_HEADER_SIZE],
                         struct asr_stream_record *rec)
{
    struct fmt_section_header h;
    uint32_t vol, count;
    int rc = section_envelope(s, at, raw, &h);
    if (rc || (rc = pull(s, s->ext_body, (size_t)h.content_len)) ||
        (rc = fmt_scan_content(&s->sc, &h, s->ext_body, at)) ||
        (rc = fmt_scan_extents(&s->sc, s->ext_body, (size_t)h.content_len, at, &vol, s->ext, &count)))
        return rc;
    for (uint32_t i = 0; i < count; i++) {
        const struct asr_extent *e = &s->ext[i];
        uint64_t *total = e->ref < ASR_REF_UNREADABLE ? &s->info.data_bytes
                          : e->ref == ASR_REF_ZERO    ? &s->info.zero_bytes
                                                      : &s->info.unreadable_bytes;
        *total += e->length;
    }
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
    else if (volumes != s->sc.layout.volume_count)
        walk_problem(w, "lists %u volumes, the volume table %u", volumes, s->sc.layout.volume_count);
    else if (chunks != s->sc.next_chunk)
        walk_problem(w, "lists %llu chunks, the stream holds %llu", (unsigned long long)chunks,
                     (unsigned long long)s->sc.next_chunk);
    /* The stream hash covers damaged chunk data too: such chunks are the decoder's to report, and
     * every other byte before the index has passed a checksum of its own. */
    else if (!fmt_hash128_eq(fmt_hash128_get(b + 16), stream_hash) && s->damaged == 0)
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
    for (uint32_t v = 0; v < s->sc.layout.volume_count && !rc && !w->problem[0]; v++) {
        struct fmt_scan_volume *seen = &s->sc.volumes[v];
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
        seen->stats.content_hash = fmt_hash128_get(b + 16);
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
    struct fmt_footer f;
    struct asr_error why = {0};
    int rc = pull(s, raw, sizeof raw);
    if (rc)
        return rc;
    if (fmt_footer_decode(raw, &f, &why))
        return stop(s, ASR_E_CORRUPT, "footer at logical offset %llu: %s", off, why.msg);
    if (f.index_offset != index_at || f.index_length != index_len)
        return stop(s, ASR_E_CORRUPT, "footer at logical offset %llu: places the index at %llu (%llu bytes), "
                    "it was found at %llu (%llu bytes)", off, (unsigned long long)f.index_offset,
                    (unsigned long long)f.index_length, (unsigned long long)index_at, (unsigned long long)index_len);
    if (memcmp(f.uuid, s->sc.header.uuid, 16) != 0)
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
    struct fmt_section_header h;
    unsigned long long off = (unsigned long long)at;
    int rc = section_envelope(s, at, raw, &h);
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
    if (tag == ASR_TAG_CHUNK)
        return chunk_record(s, at, raw, rec);
    if (tag == ASR_TAG_EXTENTS)
        return extent_record(s, at, raw, rec);
    return fmt_scan_stray(&s->sc, raw, at);
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
        return fmt_fail(err, ASR_E_STATE, "%s: chunk %llu is not the chunk just returned, or its data was read "
                        "already", s->name, (unsigned long long)c->chunk_id);
    if (!buf) {
        if (!s->chunk_buf && !(s->chunk_buf = malloc(s->sc.header.max_chunk_size)))
            return fmt_fail(err, ASR_E_NOMEM, "%s: out of memory for a chunk buffer", s->name);
        buf = s->chunk_buf;
        cap = s->sc.header.max_chunk_size;
    }
    if (cap < s->pending_left)
        return fmt_fail(err, ASR_E_ARG, "%s: buffer of %zu bytes too small for chunk %llu's %u stored bytes",
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
        d->seed = s->sc.header.hash_seed;
        d->name = strdup(s->name);
        d->dctx = ZSTD_createDCtx();
    }
    if (!d || !d->name || !d->dctx) {
        asr_chunk_decoder_free(d);
        return fmt_fail(err, ASR_E_NOMEM, "out of memory for a chunk decoder");
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
        return fmt_fail(err, ASR_E_ARG, "%s: chunk %llu has no stored bytes: read them first", d->name,
                        (unsigned long long)c->chunk_id);
    struct fmt_chunk_header h = {c->codec, c->chunk_id, c->stored_len, c->content_len, c->content_hash,
                                 c->stored_hash};
    struct asr_error why = {0};
    int rc = fmt_chunk_decode(&h, c->stored, out, cap, d->seed, d->dctx, &why);
    if (rc)
        return fmt_fail(err, rc, "%s: chunk %llu at logical offset %llu: %s", d->name,
                        (unsigned long long)c->chunk_id, (unsigned long long)c->logical_offset, why.msg);
    return ASR_OK;
}
