/* The sequential reader (format/stream.c): from golden and freshly written images, read through
 * short reads, a pipe and concatenated split sets, it yields exactly what the seekable reader
 * does; it refuses parts out of order or of another image, reports every truncation as
 * incomplete, damaged chunk data as a decode error that does not end the stream, and a damaged
 * record header as corrupt. */
#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "golden/golden_content.h"
#include "internal.h"
#include "le.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(stream, .fini = teardown, .timeout = 600);

/* ---- inputs ---------------------------------------------------------------------------------- */

/* An image in memory, served in pieces of random sizes (short reads), or failing at an offset. */
struct mem_src {
    const uint8_t *data;
    size_t len, pos;
    uint64_t lcg;
    int short_reads;
    size_t max_piece; /* 0: no cap */
    size_t fail_at;   /* 0: never */
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
    struct mem_src *m = ctx;
    if (m->fail_at && m->pos >= m->fail_at)
        return -EIO;
    size_t n = m->len - m->pos < len ? m->len - m->pos : len;
    if (m->short_reads && n) {
        m->lcg = m->lcg * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = m->lcg >> 33;
        size_t most = (m->lcg >> 62) ? 1 + (size_t)(r % 97) : 1 + (size_t)(r % 200000);
        if (n > most)
            n = most;
    }
    if (m->max_piece && n > m->max_piece)
        n = m->max_piece;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static const char *golden_dir(void)
{
    static char dir[4096];
    if (!dir[0]) {
        char file[4096];
        snprintf(file, sizeof file, "%s", __FILE__);
        snprintf(dir, sizeof dir, "%s/golden", dirname(file));
    }
    return dir;
}

static char *golden_path(const char *name)
{
    char *p = malloc(strlen(golden_dir()) + strlen(name) + 2);
    cr_assert_not_null(p);
    sprintf(p, "%s/%s", golden_dir(), name);
    return p;
}

struct bytes {
    uint8_t *data;
    size_t len;
};

static void append(struct bytes *b, const uint8_t *p, size_t n)
{
    b->data = realloc(b->data, b->len + n + 1);
    cr_assert_not_null(b->data);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void append_file(struct bytes *b, const char *path)
{
    size_t n;
    uint8_t *p = read_file(path, &n);
    append(b, p, n);
    free(p);
}

static char *part_path(const char *base, uint32_t k)
{
    char *p = fmt_part_path(base, k);
    cr_assert_not_null(p);
    return p;
}

static uint32_t part_count(const char *base)
{
    uint32_t k = 1;
    for (;; k++) {
        char *p = part_path(base, k + 1);
        struct stat st;
        int there = stat(p, &st) == 0;
        free(p);
        if (!there)
            return k;
    }
}

/* The parts of a split set (or the one file) concatenated in the order given (1-based). */
static struct bytes concat_parts(const char *base, const uint32_t *order, size_t n)
{
    struct bytes b = {0};
    for (size_t i = 0; i < n; i++) {
        char *p = part_path(base, order[i]);
        append_file(&b, p);
        free(p);
    }
    return b;
}

static struct bytes whole_image(const char *base)
{
    uint32_t n = part_count(base), order[64];
    cr_assert_leq(n, 64);
    for (uint32_t k = 0; k < n; k++)
        order[k] = k + 1;
    return concat_parts(base, order, n);
}

static int open_mem(struct mem_src *m, const struct bytes *b, int short_reads, struct asr_stream **s,
                    struct asr_error *err)
{
    *m = (struct mem_src){.data = b->data, .len = b->len, .lcg = b->len * 2654435761u + 7, .short_reads = short_reads};
    return asr_stream_open(mem_read, m, "test input", s, err);
}

/* ---- walking a stream -------------------------------------------------------------------------- */

struct walk {
    int rc;               /* what ended the walk: ASR_OK at ASR_STREAM_END */
    struct asr_error err;
    uint64_t chunks, records, decode_errors;
    struct asr_error decode_err; /* the first */
    uint64_t boundaries[4096];   /* input bytes consumed after open, after each record, at the end */
    size_t nb;
};

/* Reads every record; with read_data, reads and decodes every chunk, except chunk skip_id. */
static void walk(struct asr_stream *s, struct walk *w, int read_data, uint64_t skip_id)
{
    memset(w, 0, sizeof *w);
    uint32_t max = asr_stream_info(s)->max_chunk_size;
    uint8_t *stored = malloc(max), *content = malloc(max);
    struct asr_chunk_decoder *d;
    cr_assert_eq(asr_chunk_decoder_new(s, &d, &w->err), ASR_OK);
    w->boundaries[w->nb++] = asr_stream_input_bytes(s);
    struct asr_stream_record rec;
    while ((w->rc = asr_stream_next(s, &rec, &w->err)) == ASR_OK && rec.kind != ASR_STREAM_END) {
        w->records++;
        if (rec.kind == ASR_STREAM_CHUNK) {
            w->chunks++;
            if (read_data && rec.chunk.chunk_id != skip_id) {
                if ((w->rc = asr_stream_read_chunk_data(s, &rec.chunk, stored, max, &w->err)))
                    break;
                struct asr_error e = {0};
                if (asr_chunk_decoder_run(d, &rec.chunk, content, max, &e) != ASR_OK && w->decode_errors++ == 0)
                    w->decode_err = e;
            }
        }
        if (w->nb < sizeof w->boundaries / sizeof w->boundaries[0])
            w->boundaries[w->nb++] = asr_stream_input_bytes(s);
    }
    if (w->rc == ASR_OK && w->nb < sizeof w->boundaries / sizeof w->boundaries[0])
        w->boundaries[w->nb++] = asr_stream_input_bytes(s); /* the end of the image */
    asr_chunk_decoder_free(d);
    free(stored);
    free(content);
}

static int stream_status(const struct bytes *b, int short_reads, struct walk *w)
{
    struct mem_src m;
    struct asr_stream *s;
    memset(w, 0, sizeof *w);
    int rc = open_mem(&m, b, short_reads, &s, &w->err);
    if (rc) {
        w->rc = rc;
        return rc;
    }
    walk(s, w, 1, UINT64_MAX);
    asr_stream_free(s);
    return w->rc;
}

/* ---- the stream against the seekable reader -------------------------------------------------- */

static void same_disk(const struct asr_disk_desc *a, const struct asr_disk_desc *b)
{
    cr_assert_str_eq(a->source, b->source);
    cr_assert_eq(a->size_bytes, b->size_bytes);
    cr_assert_eq(a->logical_sector, b->logical_sector);
    cr_assert_eq(a->physical_sector, b->physical_sector);
    cr_assert_eq(a->label, b->label);
    cr_assert_eq(memcmp(a->disk_id, b->disk_id, 16), 0);
    cr_assert_eq(a->gpt_first_usable_lba, b->gpt_first_usable_lba);
    cr_assert_eq(a->gpt_last_usable_lba, b->gpt_last_usable_lba);
    cr_assert_eq(a->gpt_entry_count, b->gpt_entry_count);
    cr_assert_eq(a->gpt_entry_size, b->gpt_entry_size);
    cr_assert_eq(a->partition_count, b->partition_count);
    if (a->partition_count)
        cr_assert_eq(memcmp(a->partitions, b->partitions, a->partition_count * sizeof *a->partitions), 0);
    cr_assert_eq(a->region_count, b->region_count);
    for (uint32_t i = 0; i < a->region_count; i++) {
        cr_assert_eq(a->regions[i].kind, b->regions[i].kind);
        cr_assert_eq(a->regions[i].offset, b->regions[i].offset);
        cr_assert_eq(a->regions[i].length, b->regions[i].length);
        cr_assert_eq(memcmp(a->regions[i].data, b->regions[i].data, a->regions[i].length), 0);
    }
}

/* Streams img (short reads or not) and checks every disk, volume, chunk content and extent (in
 * order) against the seekable reader of path. */
static void same_as_reader(const char *path, const struct bytes *img, int short_reads)
{
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    struct mem_src m;
    struct asr_stream *s;
    cr_assert_eq(open_mem(&m, img, short_reads, &s, &err), ASR_OK, "%s", err.msg);

    const struct asr_image_info *ri = asr_reader_info(r), *si = asr_stream_info(s);
    cr_assert_eq(si->format_version, ri->format_version);
    cr_assert_eq(memcmp(si->uuid, ri->uuid, 16), 0);
    cr_assert_eq(si->hash_seed, ri->hash_seed);
    cr_assert_eq(si->created_unix, ri->created_unix);
    cr_assert_eq(si->max_chunk_size, ri->max_chunk_size);
    cr_assert_eq(si->compat, ri->compat);
    cr_assert_str_eq(si->creator, ri->creator);
    cr_assert_str_eq(si->creator_version, ri->creator_version);
    cr_assert_eq(si->split_size, ri->split_size);
    cr_assert_eq(asr_stream_disk_count(s), asr_reader_disk_count(r));
    for (uint32_t i = 0; i < asr_reader_disk_count(r); i++)
        same_disk(asr_stream_disk(s, i), asr_reader_disk(r, i));
    cr_assert_null(asr_stream_disk(s, asr_stream_disk_count(s)));
    cr_assert_eq(asr_stream_volume_count(s), asr_reader_volume_count(r));
    uint32_t nv = asr_reader_volume_count(r);
    for (uint32_t v = 0; v < nv; v++)
        cr_assert_eq(memcmp(asr_stream_volume(s, v), asr_reader_volume(r, v), sizeof(struct asr_volume_desc)), 0);
    cr_assert_null(asr_stream_volume(s, nv));
    cr_assert_null(asr_stream_volume_stats(s, 0), "no stats before the index");

    uint64_t *cursor = calloc(nv + 1u, sizeof *cursor);
    uint32_t max = si->max_chunk_size;
    uint8_t *stored = malloc(max), *content = malloc(max), *want = malloc(max);
    struct asr_chunk_decoder *d;
    cr_assert_eq(asr_chunk_decoder_new(s, &d, &err), ASR_OK);
    uint64_t next_chunk = 0;
    struct asr_stream_record rec;
    int rc;
    while ((rc = asr_stream_next(s, &rec, &err)) == ASR_OK && rec.kind != ASR_STREAM_END) {
        if (rec.kind == ASR_STREAM_CHUNK) {
            cr_assert_eq(rec.chunk.chunk_id, next_chunk++);
            cr_assert_eq(rec.chunk.logical_offset, rec.logical_offset);
            cr_assert_eq(asr_stream_read_chunk_data(s, &rec.chunk, stored, max, &err), ASR_OK, "%s", err.msg);
            cr_assert_eq(rec.chunk.stored, stored);
            cr_assert_eq(asr_chunk_decoder_run(d, &rec.chunk, content, max, &err), ASR_OK, "%s", err.msg);
            uint32_t len;
            cr_assert_eq(asr_reader_read_chunk(r, rec.chunk.chunk_id, want, max, &len, &err), ASR_OK, "%s", err.msg);
            cr_assert_eq(len, rec.chunk.content_len);
            cr_assert_eq(memcmp(content, want, len), 0, "chunk %llu content", (unsigned long long)rec.chunk.chunk_id);
        } else {
            cr_assert_eq(rec.kind, ASR_STREAM_EXTENTS);
            cr_assert_lt(rec.volume_id, nv);
            uint64_t n;
            const struct asr_extent *e = asr_reader_extents(r, rec.volume_id, &n);
            cr_assert_leq(cursor[rec.volume_id] + rec.extent_count, n);
            for (uint32_t i = 0; i < rec.extent_count; i++) {
                const struct asr_extent *a = &rec.extents[i], *b = &e[cursor[rec.volume_id] + i];
                cr_assert(a->offset == b->offset && a->length == b->length && a->ref == b->ref &&
                              a->chunk_offset == b->chunk_offset,
                          "volume %u extent %llu differs", rec.volume_id, (unsigned long long)(cursor[rec.volume_id] + i));
            }
            cursor[rec.volume_id] += rec.extent_count;
        }
    }
    cr_assert_eq(rc, ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_stream_next(s, &rec, &err), ASR_OK, "END again");
    cr_assert_eq(rec.kind, ASR_STREAM_END);
    cr_assert_eq(asr_stream_damaged_chunks(s), 0);
    for (uint32_t v = 0; v < nv; v++) {
        uint64_t n;
        asr_reader_extents(r, v, &n);
        cr_assert_eq(cursor[v], n, "volume %u: every extent streamed", v);
        const struct asr_volume_stats *a = asr_stream_volume_stats(s, v), *b = asr_reader_volume_stats(r, v);
        cr_assert_not_null(a);
        cr_assert(a->extent_count == b->extent_count && a->data_bytes == b->data_bytes &&
                      a->zero_bytes == b->zero_bytes && a->unreadable_bytes == b->unreadable_bytes &&
                      fmt_hash128_eq(a->content_hash, b->content_hash),
                  "volume %u stats", v);
    }
    cr_assert_eq(next_chunk, ri->chunk_count);
    cr_assert_eq(si->chunk_count, ri->chunk_count);
    cr_assert_eq(si->stored_bytes, ri->stored_bytes);
    cr_assert_eq(si->unique_bytes, ri->unique_bytes);
    cr_assert_eq(si->data_bytes, ri->data_bytes);
    cr_assert_eq(si->zero_bytes, ri->zero_bytes);
    cr_assert_eq(si->unreadable_bytes, ri->unreadable_bytes);
    cr_assert_eq(si->part_count, ri->part_count);
    cr_assert_eq(si->image_bytes, ri->image_bytes);
    cr_assert_eq(asr_stream_input_bytes(s), img->len);
    asr_chunk_decoder_free(d);
    free(stored);
    free(content);
    free(want);
    free(cursor);
    asr_stream_free(s);
    asr_reader_free(r);
}

static void same_both_ways(const char *path)
{
    struct bytes img = whole_image(path);
    same_as_reader(path, &img, 0);
    same_as_reader(path, &img, 1);
    free(img.data);
}

Test(stream, golden_v1_basic)
{
    char *p = golden_path("v1-basic.asrimg");
    same_both_ways(p);
    free(p);
}

Test(stream, golden_v1_split_concatenated)
{
    char *p = golden_path("v1-split.asrimg");
    cr_assert_eq(part_count(p), 4);
    same_both_ways(p);
    free(p);
}

static void written(const struct sample_opts *o)
{
    char *p = scratch_path("img.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(p, o, &err), ASR_OK, "%s", err.msg);
    same_both_ways(p);
    free(p);
}

Test(stream, written_compressed) { written(&(struct sample_opts){.level = 3}); }
Test(stream, written_stored) { written(&(struct sample_opts){.level = 0}); }
Test(stream, written_small_chunks) { written(&(struct sample_opts){.level = 1, .max_chunk = 4096, .volume_kib = 256}); }
Test(stream, written_split_set)
{
    struct sample_opts o = {.level = 0, .volume_kib = 256, .split_size = ASR_MIN_SPLIT_SIZE};
    char *p = scratch_path("img.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(p, &o, &err), ASR_OK, "%s", err.msg);
    cr_assert_gt(part_count(p), 5, "records cross many part boundaries");
    same_both_ways(p);
    free(p);
}

/* ---- a pipe, and a consumer that decodes on worker threads ------------------------------------ */

struct feeder {
    int fd;
    const struct bytes *img;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    size_t done = 0;
    while (done < f->img->len) {
        ssize_t n = write(f->fd, f->img->data + done, f->img->len - done < 4000 ? f->img->len - done : 4000);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(f->fd);
    return NULL;
}

/* Slots a reading thread fills with chunks' stored bytes and workers decode, as a restore does. */
#define SLOTS 4
struct pool {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct slot {
        int state; /* 0 free, 1 filled, 2 being decoded */
        struct asr_stream_chunk chunk;
        uint8_t *stored;
    } slots[SLOTS];
    int done;
    const struct asr_stream *s;
    uint32_t max;
    uint64_t seed;
    struct asr_hash128 *hashes; /* per chunk id: the content hash of what a worker decoded */
    uint64_t decoded, failures;
};

static void *worker(void *arg)
{
    struct pool *p = arg;
    uint8_t *content = malloc(p->max);
    struct asr_chunk_decoder *d = NULL;
    struct asr_error err;
    /* No Criterion assertions off the main thread: failures are counted and checked there. */
    int broken = !content || asr_chunk_decoder_new(p->s, &d, &err) != ASR_OK;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct slot *mine = NULL;
        for (int i = 0; i < SLOTS && !mine; i++)
            if (p->slots[i].state == 1)
                mine = &p->slots[i];
        if (!mine) {
            if (p->done)
                break;
            pthread_cond_wait(&p->changed, &p->lock);
            continue;
        }
        mine->state = 2;
        pthread_mutex_unlock(&p->lock);
        int rc = broken ? ASR_E_NOMEM : asr_chunk_decoder_run(d, &mine->chunk, content, p->max, &err);
        struct asr_hash128 h = rc ? (struct asr_hash128){0, 0} : asr_content_hash(p->seed, content, mine->chunk.content_len);
        pthread_mutex_lock(&p->lock);
        if (rc)
            p->failures++;
        else
            p->hashes[mine->chunk.chunk_id] = h;
        p->decoded++;
        mine->state = 0;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    asr_chunk_decoder_free(d);
    free(content);
    return NULL;
}

Test(stream, from_a_pipe_with_worker_threads)
{
    char *path = golden_path("v1-basic.asrimg");
    struct bytes img = whole_image(path);
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    uint64_t chunks = asr_reader_info(r)->chunk_count;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct feeder f = {fds[1], &img};
    pthread_t feeder_thread;
    pthread_create(&feeder_thread, NULL, feed, &f);
    struct asr_stream *s;
    cr_assert_eq(asr_stream_open_fd(fds[0], "standard input", &s, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(asr_stream_name(s), "standard input");

    uint32_t max = asr_stream_info(s)->max_chunk_size;
    struct pool p = {.s = s, .max = max, .seed = asr_stream_info(s)->hash_seed,
                     .hashes = calloc(chunks + 1, sizeof(struct asr_hash128))};
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.changed, NULL);
    for (int i = 0; i < SLOTS; i++)
        p.slots[i].stored = malloc(max);
    pthread_t workers[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&workers[i], NULL, worker, &p);
    struct asr_stream_record rec;
    int rc;
    while ((rc = asr_stream_next(s, &rec, &err)) == ASR_OK && rec.kind != ASR_STREAM_END) {
        if (rec.kind != ASR_STREAM_CHUNK)
            continue;
        pthread_mutex_lock(&p.lock);
        struct slot *free_slot = NULL;
        while (!free_slot) {
            for (int i = 0; i < SLOTS && !free_slot; i++)
                if (p.slots[i].state == 0)
                    free_slot = &p.slots[i];
            if (!free_slot)
                pthread_cond_wait(&p.changed, &p.lock);
        }
        pthread_mutex_unlock(&p.lock);
        /* The read goes straight into the slot while the workers decode other slots. */
        cr_assert_eq(asr_stream_read_chunk_data(s, &rec.chunk, free_slot->stored, max, &err), ASR_OK, "%s", err.msg);
        pthread_mutex_lock(&p.lock);
        free_slot->chunk = rec.chunk;
        free_slot->state = 1;
        pthread_cond_broadcast(&p.changed);
        pthread_mutex_unlock(&p.lock);
    }
    cr_assert_eq(rc, ASR_OK, "%s", err.msg);
    pthread_mutex_lock(&p.lock);
    p.done = 1;
    pthread_cond_broadcast(&p.changed);
    pthread_mutex_unlock(&p.lock);
    for (int i = 0; i < 2; i++)
        pthread_join(workers[i], NULL);
    pthread_join(feeder_thread, NULL);
    cr_assert_eq(p.decoded, chunks);
    cr_assert_eq(p.failures, 0);
    uint8_t *buf = malloc(max);
    for (uint64_t c = 0; c < chunks; c++) {
        uint32_t len;
        cr_assert_eq(asr_reader_read_chunk(r, c, buf, max, &len, &err), ASR_OK, "%s", err.msg);
        cr_assert(fmt_hash128_eq(p.hashes[c], asr_content_hash(asr_reader_info(r)->hash_seed, buf, len)),
                  "chunk %llu decoded on a worker", (unsigned long long)c);
    }
    free(buf);
    for (int i = 0; i < SLOTS; i++)
        free(p.slots[i].stored);
    free(p.hashes);
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.changed);
    asr_stream_free(s);
    close(fds[0]);
    asr_reader_free(r);
    free(img.data);
    free(path);
}

/* ---- split sets concatenated wrongly --------------------------------------------------------- */

static void parts_refused(const uint32_t *order, size_t n, int want, const char *says)
{
    char *p = golden_path("v1-split.asrimg");
    struct bytes b = concat_parts(p, order, n);
    struct walk w;
    cr_assert_eq(stream_status(&b, 1, &w), want, "got %d: %s", w.rc, w.err.msg);
    cr_assert(strstr(w.err.msg, says), "message says '%s': %s", says, w.err.msg);
    cr_assert(strstr(w.err.msg, "test input: "), "message names the input: %s", w.err.msg);
    free(b.data);
    free(p);
}

Test(stream, parts_out_of_order_are_refused)
{
    parts_refused((const uint32_t[]){1, 3, 2, 4}, 4, ASR_E_PARTS, "holds part 3 where part 2 must be");
    parts_refused((const uint32_t[]){1, 2, 2, 3, 4}, 5, ASR_E_PARTS, "holds part 2 where part 3 must be");
    parts_refused((const uint32_t[]){1, 2, 4}, 3, ASR_E_PARTS, "holds part 4 where part 3 must be");
    parts_refused((const uint32_t[]){2, 3, 4}, 3, ASR_E_PARTS, "begins with part 2");
    parts_refused((const uint32_t[]){1, 2, 3}, 3, ASR_E_INCOMPLETE, "before its footer");
}

Test(stream, part_of_another_image_is_refused)
{
    char *golden = golden_path("v1-split.asrimg"), *other = scratch_path("other.asrimg");
    struct sample_opts o = {.level = 0, .volume_kib = 256, .split_size = ASR_MIN_SPLIT_SIZE, .fixed_identity = 1};
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(other, &o, &err), ASR_OK, "%s", err.msg);
    struct bytes b = concat_parts(golden, (const uint32_t[]){1}, 1);
    char *p2 = part_path(other, 2);
    append_file(&b, p2);
    struct bytes rest = concat_parts(golden, (const uint32_t[]){3, 4}, 2);
    append(&b, rest.data, rest.len);
    struct walk w;
    cr_assert_eq(stream_status(&b, 0, &w), ASR_E_PARTS, "%s", w.err.msg);
    cr_assert(strstr(w.err.msg, "part 2 at input offset 65536 belongs to another image"), "%s", w.err.msg);
    /* Not a part at all where one must begin. */
    memset(b.data + 65536, 'x', 8);
    cr_assert_eq(stream_status(&b, 0, &w), ASR_E_PARTS, "%s", w.err.msg);
    cr_assert(strstr(w.err.msg, "no part header at input offset 65536"), "%s", w.err.msg);
    free(rest.data);
    free(b.data);
    free(p2);
    free(golden);
    free(other);
}

/* ---- truncation ---------------------------------------------------------------------------------- */

static void truncated_is_incomplete(const struct bytes *img, size_t at)
{
    struct bytes t = {img->data, at};
    struct walk w;
    int rc = stream_status(&t, (int)(at & 1), &w);
    cr_assert_eq(rc, ASR_E_INCOMPLETE, "cut at %zu of %zu: %d %s", at, img->len, rc, w.err.msg);
    if (at > ASR_PART_HEADER_SIZE)
        cr_assert(strstr(w.err.msg, "before its footer (interrupted backup or truncated transfer)"), "cut at %zu: %s",
                  at, w.err.msg);
}

/* Every record boundary, and the first, second, middle and last bytes inside each record. */
static void every_truncation(const char *path)
{
    struct bytes img = whole_image(path);
    struct walk full;
    cr_assert_eq(stream_status(&img, 0, &full), ASR_OK, "%s", full.err.msg);
    cr_assert_eq(full.boundaries[full.nb - 1], img.len);
    cr_assert_gt(full.nb, 10, "%zu records", full.nb);
    size_t starts[] = {0, 1, 7, 8, 63, 64, 65, 72, 100, 200, img.len - ASR_FOOTER_SIZE, img.len - 1};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
        truncated_is_incomplete(&img, starts[i]);
    for (size_t i = 0; i + 1 < full.nb; i++) {
        size_t a = full.boundaries[i], b = full.boundaries[i + 1];
        size_t cuts[] = {a, a + 1, a + 4, a + (b - a) / 2, b - 1};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++)
            if (cuts[k] < b)
                truncated_is_incomplete(&img, cuts[k]);
    }
    /* Open ends at the first chunk: every cut in the header, layout and volume table too. */
    for (size_t at = 0; at < full.boundaries[0]; at += 97)
        truncated_is_incomplete(&img, at);
    free(img.data);
}

Test(stream, truncation_is_incomplete)
{
    char *p = golden_path("v1-basic.asrimg");
    every_truncation(p);
    free(p);
}

Test(stream, truncation_of_a_split_set_is_incomplete)
{
    char *p = golden_path("v1-split.asrimg");
    every_truncation(p);
    struct bytes img = whole_image(p);
    /* At each part boundary, and inside each part header. */
    for (size_t part = 1; part < 4; part++)
        for (size_t in = 0; in <= ASR_PART_HEADER_SIZE; in += 9)
            truncated_is_incomplete(&img, part * ASR_MIN_SPLIT_SIZE + in);
    free(img.data);
    free(p);
}

/* ---- damage ---------------------------------------------------------------------------------- */

/* Where the records of a single-part image are: the logical offset of chunk id's record and of
 * the first extent record, the index and the footer. */
struct places {
    uint64_t chunk, chunk_stored_len, extents, index, footer;
};

static struct places find_places(const struct bytes *img, uint64_t id)
{
    struct places pl = {UINT64_MAX, 0, UINT64_MAX, 0, 0};
    struct mem_src m;
    struct asr_stream *s;
    struct asr_error err = {0};
    cr_assert_eq(open_mem(&m, img, 0, &s, &err), ASR_OK, "%s", err.msg);
    struct asr_stream_record rec;
    while (asr_stream_next(s, &rec, &err) == ASR_OK && rec.kind != ASR_STREAM_END) {
        if (rec.kind == ASR_STREAM_CHUNK && rec.chunk.chunk_id == id) {
            pl.chunk = rec.logical_offset;
            pl.chunk_stored_len = rec.chunk.stored_len;
        }
        if (rec.kind == ASR_STREAM_EXTENTS && pl.extents == UINT64_MAX)
            pl.extents = rec.logical_offset;
        pl.index = asr_stream_input_bytes(s) - ASR_PART_HEADER_SIZE;
    }
    cr_assert_eq(rec.kind, ASR_STREAM_END, "%s", err.msg);
    pl.footer = img->len - ASR_PART_HEADER_SIZE - ASR_FOOTER_SIZE;
    asr_stream_free(s);
    return pl;
}

static struct bytes golden_basic(void)
{
    char *p = golden_path("v1-basic.asrimg");
    struct bytes b = whole_image(p);
    free(p);
    return b;
}

Test(stream, damaged_chunk_data_is_a_decode_error_and_the_stream_goes_on)
{
    struct bytes img = golden_basic();
    struct places pl = find_places(&img, 2);
    img.data[ASR_PART_HEADER_SIZE + pl.chunk + ASR_CHUNK_HEADER_SIZE + pl.chunk_stored_len / 2] ^= 0x10;
    for (int short_reads = 0; short_reads < 2; short_reads++) {
        struct mem_src m;
        struct asr_stream *s;
        struct asr_error err = {0};
        cr_assert_eq(open_mem(&m, &img, short_reads, &s, &err), ASR_OK, "%s", err.msg);
        struct walk w;
        walk(s, &w, 1, UINT64_MAX);
        cr_assert_eq(w.rc, ASR_OK, "the stream reaches its end: %s", w.err.msg);
        cr_assert_eq(w.decode_errors, 1);
        cr_assert_eq(w.decode_err.code, ASR_E_CORRUPT);
        char want[128];
        snprintf(want, sizeof want, "test input: chunk 2 at logical offset %llu: ", (unsigned long long)pl.chunk);
        cr_assert(strstr(w.decode_err.msg, want), "names the chunk: %s", w.decode_err.msg);
        cr_assert_eq(asr_stream_damaged_chunks(s), 1);
        asr_stream_free(s);
    }
    /* The same when the consumer skips that chunk's bytes. */
    struct mem_src m;
    struct asr_stream *s;
    struct asr_error err = {0};
    cr_assert_eq(open_mem(&m, &img, 1, &s, &err), ASR_OK, "%s", err.msg);
    struct walk w;
    walk(s, &w, 1, 2);
    cr_assert_eq(w.rc, ASR_OK, "%s", w.err.msg);
    cr_assert_eq(w.decode_errors, 0);
    cr_assert_eq(asr_stream_damaged_chunks(s), 1);
    asr_stream_free(s);
    free(img.data);
}

static void damaged_is_corrupt(const struct bytes *good, uint64_t logical, const char *says)
{
    struct bytes img = {malloc(good->len), good->len};
    memcpy(img.data, good->data, good->len);
    img.data[ASR_PART_HEADER_SIZE + logical] ^= 0x04;
    struct walk w;
    cr_assert_eq(stream_status(&img, 1, &w), ASR_E_CORRUPT, "byte %llu: %d %s", (unsigned long long)logical, w.rc,
                 w.err.msg);
    cr_assert(strstr(w.err.msg, says), "byte %llu: says '%s': %s", (unsigned long long)logical, says, w.err.msg);
    free(img.data);
}

Test(stream, damaged_record_headers_are_corrupt)
{
    struct bytes img = golden_basic();
    struct places pl = find_places(&img, 1);
    char want[128];
    snprintf(want, sizeof want, "test input: chunk 1 at logical offset %llu: ", (unsigned long long)pl.chunk);
    for (uint64_t i = 4; i < ASR_CHUNK_HEADER_SIZE; i += 5)
        damaged_is_corrupt(&img, pl.chunk + i, want);
    damaged_is_corrupt(&img, pl.chunk, "unknown or damaged record at logical offset");
    snprintf(want, sizeof want, "test input: extent record at logical offset %llu: ", (unsigned long long)pl.extents);
    for (uint64_t i = 4; i < ASR_SECTION_HEADER_SIZE + 8 + ASR_EXTENT_SIZE; i += 3)
        damaged_is_corrupt(&img, pl.extents + i, want);
    snprintf(want, sizeof want, "test input: index at logical offset %llu: ", (unsigned long long)pl.index);
    for (uint64_t i = 4; i < 200; i += 7)
        damaged_is_corrupt(&img, pl.index + i, want);
    snprintf(want, sizeof want, "test input: footer at logical offset %llu: ", (unsigned long long)pl.footer);
    for (uint64_t i = 0; i < ASR_FOOTER_SIZE; i += 3)
        damaged_is_corrupt(&img, pl.footer + i, want);
    damaged_is_corrupt(&img, 20, "image header at logical offset 0: image header checksum mismatch");
    free(img.data);
}

/* A tiny image: every flipped byte is refused or, in chunk data, reported by the decoder; the
 * stream never ends cleanly with wrong content. */
Test(stream, every_flipped_byte_is_caught)
{
    char *path = scratch_path("tiny.asrimg");
    struct asr_writer *w;
    struct asr_error err = {0};
    struct asr_writer_options o = {.max_chunk_size = 4096, .fixed_identity = 1, .hash_seed = 5};
    memcpy(o.uuid, "tiny-image-uuid!", 16);
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    struct asr_disk_desc disk = {.size_bytes = 1 << 20, .logical_sector = 512, .physical_sector = 512};
    struct asr_volume_desc vol = {.size_bytes = 1 << 20};
    uint32_t vid;
    cr_assert_eq(asr_writer_add_disk(w, &disk, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_volume(w, &vol, &vid, &err), ASR_OK, "%s", err.msg);
    static uint8_t content[4096], enc[8192];
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < sizeof content; i++)
            content[i] = (uint8_t)(c == 1 ? (i * 2654435761u) >> 13 : (size_t)("tiny image "[i % 11] + c));
        struct asr_chunk ch;
        uint64_t id;
        cr_assert_eq(asr_chunk_encode(content, sizeof content, 3, 5, enc, sizeof enc, &ch, &err), ASR_OK);
        cr_assert_eq(asr_writer_append_chunk(w, &ch, &id, &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(asr_writer_add_extent(w, vid, (uint64_t)c * 8192, 4096, id, 0, content, &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(asr_writer_add_zero(w, vid, (uint64_t)c * 8192 + 4096, 2048, &err), ASR_OK, "%s", err.msg);
    }
    cr_assert_eq(asr_writer_add_unreadable(w, vid, 65536, 512, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    struct bytes img = whole_image(path);
    struct walk clean;
    cr_assert_eq(stream_status(&img, 0, &clean), ASR_OK, "%s", clean.err.msg);
    cr_assert_eq(clean.chunks, 3);
    for (size_t i = 0; i < img.len; i++) {
        img.data[i] ^= 0x01;
        struct walk fw;
        int rc = stream_status(&img, 0, &fw);
        if (rc == ASR_OK && fw.decode_errors == 0)
            cr_assert_fail("byte %zu of %zu flipped went unnoticed", i, img.len);
        if (rc != ASR_OK)
            cr_assert(rc == ASR_E_CORRUPT || rc == ASR_E_NOT_IMAGE || rc == ASR_E_UNSUPPORTED || rc == ASR_E_PARTS,
                      "byte %zu: status %d: %s", i, rc, fw.err.msg);
        img.data[i] ^= 0x01;
    }
    free(img.data);
    free(path);
}

/* ---- records that break a rule behind valid checksums ----------------------------------------- */

/* A copy of the golden single-part image and where its records are, for forging. */
struct forge {
    struct bytes img;
    uint8_t *L; /* logical byte 0 */
    uint64_t ext[2]; /* the first two extent records */
    uint64_t chunk1, index;
};

static struct forge forge_golden(void)
{
    struct forge f = {.img = golden_basic()};
    f.L = f.img.data + ASR_PART_HEADER_SIZE;
    struct mem_src m;
    struct asr_stream *s;
    struct asr_error err = {0};
    cr_assert_eq(open_mem(&m, &f.img, 0, &s, &err), ASR_OK, "%s", err.msg);
    struct asr_stream_record rec;
    int n = 0;
    while (asr_stream_next(s, &rec, &err) == ASR_OK && rec.kind != ASR_STREAM_END) {
        if (rec.kind == ASR_STREAM_EXTENTS && n < 2)
            f.ext[n++] = rec.logical_offset;
        if (rec.kind == ASR_STREAM_CHUNK && rec.chunk.chunk_id == 1)
            f.chunk1 = rec.logical_offset;
    }
    cr_assert_eq(n, 2);
    f.index = get_le64(f.img.data + f.img.len - ASR_FOOTER_SIZE + 8);
    asr_stream_free(s);
    return f;
}

static void fix_section_at(struct forge *f, uint64_t at)
{
    uint8_t *p = f->L + at;
    put_le64(p + 16, fmt_checksum64(p + ASR_SECTION_HEADER_SIZE, (size_t)get_le64(p + 8)));
    put_le64(p + 24, fmt_checksum64(p, 24));
}

static void fix_footer(struct forge *f)
{
    uint8_t *end = f->img.data + f->img.len - ASR_FOOTER_SIZE;
    put_le64(end + 56, fmt_checksum64(end, 56));
}

/* After a change inside the index: its checksums and the footer's hash of it. */
static void fix_index(struct forge *f)
{
    fix_section_at(f, f->index);
    uint8_t *end = f->img.data + f->img.len - ASR_FOOTER_SIZE;
    put_le64(end + 48, XXH3_64bits(f->L + f->index, (size_t)get_le64(end + 16)));
    fix_footer(f);
}

static void forged_is_refused(struct forge *f, int want, const char *says)
{
    struct walk w;
    for (int short_reads = 0; short_reads < 2; short_reads++) {
        cr_assert_eq(stream_status(&f->img, short_reads, &w), want, "%d: %s", w.rc, w.err.msg);
        cr_assert(strstr(w.err.msg, says), "says '%s': %s", says, w.err.msg);
    }
    free(f->img.data);
}

/* The first extent entry of the extent record at at. */
static uint8_t *first_extent(struct forge *f, uint64_t at)
{
    return f->L + at + ASR_SECTION_HEADER_SIZE + 8;
}

Test(stream, extent_rules_are_checked_across_records)
{
    struct forge f = forge_golden();
    put_le32(f.L + f.ext[0] + ASR_SECTION_HEADER_SIZE, 99);
    fix_section_at(&f, f.ext[0]);
    forged_is_refused(&f, ASR_E_CORRUPT, "volume 99 does not exist");

    f = forge_golden();
    uint8_t *e = first_extent(&f, f.ext[0]);
    put_le64(e + 16, 5);
    fix_section_at(&f, f.ext[0]);
    forged_is_refused(&f, ASR_E_CORRUPT, "refers to chunk 5, which is not earlier in the stream");

    f = forge_golden();
    e = first_extent(&f, f.ext[0]);
    put_le32(e + 24, 1);
    fix_section_at(&f, f.ext[0]);
    forged_is_refused(&f, ASR_E_CORRUPT, "runs past the end of chunk 0");

    f = forge_golden();
    e = first_extent(&f, f.ext[0]);
    put_le64(e, 2 * GOLDEN_MIB - 100);
    fix_section_at(&f, f.ext[0]);
    forged_is_refused(&f, ASR_E_CORRUPT, "ends past the volume's 2097152 bytes");

    /* The second record's extent moved back over the first record's. */
    f = forge_golden();
    e = first_extent(&f, f.ext[1]);
    cr_assert_eq(get_le32(f.L + f.ext[1] + ASR_SECTION_HEADER_SIZE), get_le32(f.L + f.ext[0] + ASR_SECTION_HEADER_SIZE));
    put_le64(e, get_le64(e) - 1);
    fix_section_at(&f, f.ext[1]);
    forged_is_refused(&f, ASR_E_CORRUPT, "overlaps or precedes the one before it");
}

Test(stream, chunk_numbering_and_size_are_checked)
{
    struct forge f = forge_golden();
    uint8_t *c = f.L + f.chunk1;
    put_le64(c + 8, 7);
    put_le64(c + 56, fmt_checksum64(c, 56));
    forged_is_refused(&f, ASR_E_CORRUPT, "numbered 7, expected chunk 1");

    f = forge_golden();
    c = f.L + f.chunk1;
    cr_assert_eq(c[4], ASR_CODEC_ZSTD);
    put_le32(c + 20, GOLDEN_MIB);
    put_le64(c + 56, fmt_checksum64(c, 56));
    forged_is_refused(&f, ASR_E_CORRUPT, "content length 1048576 over the image's maximum of 32768");
}

Test(stream, index_must_agree_with_the_stream)
{
    uint8_t *body;
    struct forge f = forge_golden();
    body = f.L + f.index + ASR_SECTION_HEADER_SIZE;
    body[20] ^= 1; /* stream_hash */
    fix_index(&f);
    forged_is_refused(&f, ASR_E_CORRUPT, "whole-stream checksum mismatch");

    f = forge_golden();
    body = f.L + f.index + ASR_SECTION_HEADER_SIZE;
    put_le64(body + 8, get_le64(body + 8) + 1); /* chunk_count */
    fix_index(&f);
    forged_is_refused(&f, ASR_E_CORRUPT, "lists 9 chunks, the stream holds 8");

    f = forge_golden();
    body = f.L + f.index + ASR_SECTION_HEADER_SIZE;
    body[ASR_INDEX_FIXED + ASR_CHUNK_ENTRY_SIZE + 20] ^= 1; /* chunk 1's content hash */
    fix_index(&f);
    forged_is_refused(&f, ASR_E_CORRUPT, "chunk table disagrees with the chunk records in the stream");

    f = forge_golden();
    body = f.L + f.index + ASR_SECTION_HEADER_SIZE;
    uint8_t *vol0 = body + ASR_INDEX_FIXED + 8 * ASR_CHUNK_ENTRY_SIZE;
    cr_assert_eq(get_le32(vol0), 0);
    put_le64(vol0 + ASR_VOLUME_ENTRY_SIZE + 16, 1); /* its first extent: chunk 1, not 0 */
    fix_index(&f);
    forged_is_refused(&f, ASR_E_CORRUPT, "volume 0: extents differ from the stream's extent records");

    f = forge_golden();
    vol0 = f.L + f.index + ASR_SECTION_HEADER_SIZE + ASR_INDEX_FIXED + 8 * ASR_CHUNK_ENTRY_SIZE;
    put_le64(vol0 + 40, get_le64(vol0 + 40) + 1); /* zero_bytes */
    fix_index(&f);
    forged_is_refused(&f, ASR_E_CORRUPT, "volume 0: totals differ");

    f = forge_golden();
    uint8_t *end = f.img.data + f.img.len - ASR_FOOTER_SIZE;
    put_le32(end + 24, 2);
    fix_footer(&f);
    forged_is_refused(&f, ASR_E_PARTS, "the image has 2 parts, the stream held 1");

    f = forge_golden();
    end = f.img.data + f.img.len - ASR_FOOTER_SIZE;
    put_le64(end + 8, get_le64(end + 8) - 8);
    fix_footer(&f);
    forged_is_refused(&f, ASR_E_CORRUPT, "places the index at");
}

Test(stream, part_header_must_match_the_first)
{
    char *p = golden_path("v1-split.asrimg");
    struct bytes b = whole_image(p);
    uint8_t *h = b.data + 2 * ASR_MIN_SPLIT_SIZE;
    put_le64(h + 40, get_le64(h + 40) + 1); /* payload_offset */
    put_le64(h + 56, fmt_checksum64(h, 56));
    struct walk w;
    cr_assert_eq(stream_status(&b, 1, &w), ASR_E_PARTS, "%s", w.err.msg);
    cr_assert(strstr(w.err.msg, "part 3 at input offset 131072 disagrees with part 1"), "%s", w.err.msg);
    h[60] ^= 1; /* and now its checksum is wrong */
    cr_assert_eq(stream_status(&b, 1, &w), ASR_E_CORRUPT, "%s", w.err.msg);
    cr_assert(strstr(w.err.msg, "part 3 header at input offset 131072: part header checksum mismatch"), "%s", w.err.msg);
    free(b.data);
    free(p);
}

/* ---- refusals and misuse ------------------------------------------------------------------ */

Test(stream, unknown_incompatible_feature_is_refused)
{
    char *path = image_with_feature(ASR_FEATURE_INCOMPAT, 9, "quantum-dedup");
    struct bytes img = whole_image(path);
    struct walk w;
    cr_assert_eq(stream_status(&img, 1, &w), ASR_E_UNSUPPORTED, "%s", w.err.msg);
    cr_assert(strstr(w.err.msg, "quantum-dedup"), "names the feature: %s", w.err.msg);
    free(img.data);
    free(path);
}

Test(stream, unknown_compatible_feature_is_read)
{
    char *path = image_with_feature(ASR_FEATURE_COMPAT, 17, "pretty-labels");
    struct bytes img = whole_image(path);
    struct mem_src m;
    struct asr_stream *s;
    struct asr_error err = {0};
    cr_assert_eq(open_mem(&m, &img, 0, &s, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(asr_stream_feature_name(s, ASR_FEATURE_COMPAT, 17), "pretty-labels");
    cr_assert_null(asr_stream_feature_name(s, ASR_FEATURE_COMPAT, 18));
    struct walk w;
    walk(s, &w, 1, UINT64_MAX);
    cr_assert_eq(w.rc, ASR_OK, "%s", w.err.msg);
    cr_assert_eq(w.records, 0, "no data in this image");
    asr_stream_free(s);
    free(img.data);
    free(path);
}

Test(stream, newer_format_version_is_refused)
{
    char *path = image_with_feature(ASR_FEATURE_COMPAT, 1, "x");
    struct bytes img = whole_image(path);
    uint8_t *h = img.data + ASR_PART_HEADER_SIZE;
    uint32_t len = get_le32(h + 4);
    put_le32(h + 8, ASR_FORMAT_VERSION + 1);
    put_le64(h + len - 8, fmt_checksum64(h, len - 8));
    struct walk w;
    cr_assert_eq(stream_status(&img, 0, &w), ASR_E_UNSUPPORTED, "%s", w.err.msg);
    cr_assert(strstr(w.err.msg, "newer"), "%s", w.err.msg);
    free(img.data);
    free(path);
}

Test(stream, not_an_image_or_empty)
{
    struct bytes text = {(uint8_t *)"hello, this is not an image at all, just text............................", 72};
    struct walk w;
    cr_assert_eq(stream_status(&text, 0, &w), ASR_E_NOT_IMAGE, "%s", w.err.msg);
    struct bytes empty = {(uint8_t *)"", 0};
    cr_assert_eq(stream_status(&empty, 0, &w), ASR_E_INCOMPLETE, "%s", w.err.msg);
    cr_assert(strstr(w.err.msg, "empty"), "%s", w.err.msg);
}

Test(stream, read_errors_end_the_stream)
{
    struct bytes img = golden_basic();
    struct mem_src m;
    struct asr_stream *s;
    struct asr_error err = {0};
    m = (struct mem_src){.data = img.data, .len = img.len, .max_piece = 1000, .fail_at = img.len / 2};
    cr_assert_eq(asr_stream_open(mem_read, &m, "test input", &s, &err), ASR_OK, "%s", err.msg);
    struct walk w;
    walk(s, &w, 1, UINT64_MAX);
    cr_assert_eq(w.rc, ASR_E_IO, "%d %s", w.rc, w.err.msg);
    cr_assert(strstr(w.err.msg, strerror(EIO)), "%s", w.err.msg);
    struct asr_stream_record rec;
    cr_assert_eq(asr_stream_next(s, &rec, &err), ASR_E_IO, "the error sticks");
    cr_assert_str_eq(err.msg, w.err.msg);
    asr_stream_free(s);
    free(img.data);
}

Test(stream, chunk_data_calls_out_of_turn)
{
    struct bytes img = golden_basic();
    struct mem_src m;
    struct asr_stream *s;
    struct asr_error err = {0};
    cr_assert_eq(open_mem(&m, &img, 0, &s, &err), ASR_OK, "%s", err.msg);
    struct asr_stream_record rec;
    cr_assert_eq(asr_stream_next(s, &rec, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(rec.kind, ASR_STREAM_CHUNK);
    uint8_t small[16];
    cr_assert_eq(asr_stream_read_chunk_data(s, &rec.chunk, small, sizeof small, &err), ASR_E_ARG);
    struct asr_chunk_decoder *d;
    cr_assert_eq(asr_chunk_decoder_new(s, &d, &err), ASR_OK);
    uint8_t *out = malloc(asr_stream_info(s)->max_chunk_size);
    cr_assert_eq(asr_chunk_decoder_run(d, &rec.chunk, out, asr_stream_info(s)->max_chunk_size, &err), ASR_E_ARG,
                 "no stored bytes yet");
    cr_assert_eq(asr_stream_read_chunk_data(s, &rec.chunk, NULL, 0, &err), ASR_OK, "%s", err.msg);
    cr_assert_not_null(rec.chunk.stored, "the stream's own buffer");
    cr_assert_eq(asr_chunk_decoder_run(d, &rec.chunk, out, asr_stream_info(s)->max_chunk_size, &err), ASR_OK, "%s",
                 err.msg);
    cr_assert_eq(asr_chunk_decoder_run(d, &rec.chunk, out, 10, &err), ASR_E_ARG, "output too small");
    cr_assert_eq(asr_stream_read_chunk_data(s, &rec.chunk, NULL, 0, &err), ASR_E_STATE, "read twice");
    while (asr_stream_next(s, &rec, &err) == ASR_OK && rec.kind == ASR_STREAM_CHUNK)
        ;
    cr_assert_eq(rec.kind, ASR_STREAM_EXTENTS);
    struct asr_stream_chunk none = {0};
    cr_assert_eq(asr_stream_read_chunk_data(s, &none, NULL, 0, &err), ASR_E_STATE, "no chunk pending");
    free(out);
    asr_chunk_decoder_free(d);
    asr_stream_free(s);
    asr_stream_free(NULL);
    asr_chunk_decoder_free(NULL);
    free(img.data);
}
