/* Store snapshots (feature external-chunks, SPEC.md section 19.6): an image whose chunks are kept
 * by a store and named by store ids. The same calls write a snapshot and an image of its own; the
 * snapshot must read back exactly as the image does, through an in-memory store (memstore.c),
 * every damaged record or id refused for its own chunk only, and a damaged snapshot file refused
 * without a crash. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "internal.h"
#include "le.h"
#include "memstore.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(external, .fini = teardown);

#define DISK_SIZE (1u << 20)
#define SEED 0x5eed5eedull

/* ---- the plan, written twice ------------------------------------------------------------------- */

/* Volume v's byte at off wherever the plan puts data. */
static uint8_t content_byte(uint32_t chunk, uint64_t i)
{
    if (chunk == 1) /* incompressible: stored raw */
        return (uint8_t)(XXH64(&i, sizeof i, 7) >> 13);
    return (uint8_t)("snapshots keep chunks in the store "[(i * 3 + chunk) % 35]);
}

static const uint32_t chunk_len[4] = {40000, 30000, 20000, 5000};

struct plan_writer {
    struct asr_writer *w;
    struct memstore *ms; /* NULL: an image of its own */
    uint8_t ids[4][32];
};

static uint64_t put_chunk(struct plan_writer *p, uint32_t k)
{
    static uint8_t content[40000], enc[65536];
    for (uint32_t i = 0; i < chunk_len[k]; i++)
        content[i] = content_byte(k, i);
    struct asr_chunk c;
    struct asr_error err = {0};
    uint64_t id;
    cr_assert_eq(asr_chunk_encode(content, chunk_len[k], 3, asr_writer_hash_seed(p->w), enc, sizeof enc, &c, &err),
                 ASR_OK, "%s", err.msg);
    if (p->ms) {
        memstore_id(content, chunk_len[k], p->ids[k]);
        cr_assert_eq(memstore_put(p->ms, p->ids[k], &c), 0);
        cr_assert_eq(asr_writer_append_external(p->w, p->ids[k], &c, &id, &err), ASR_OK, "%s", err.msg);
    } else {
        cr_assert_eq(asr_writer_append_chunk(p->w, &c, &id, &err), ASR_OK, "%s", err.msg);
    }
    cr_assert_eq(id, k);
    return id;
}

static void put_extent(struct plan_writer *p, uint32_t v, uint64_t off, uint64_t len, uint32_t k, uint32_t at)
{
    static uint8_t content[40000];
    for (uint32_t i = 0; i < len; i++)
        content[i] = content_byte(k, at + i);
    struct asr_error err = {0};
    cr_assert_eq(asr_writer_add_extent(p->w, v, off, len, k, at, content, &err), ASR_OK, "%s", err.msg);
}

/* Two disks without a partition table, each one volume: data, zero and unreadable extents, chunk
 * 0 used by both volumes, chunk 3 stored but used by no extent. */
static void write_plan(const char *path, struct memstore *ms)
{
    struct asr_writer_options o = {.max_chunk_size = 65536, .overwrite = 1, .fixed_identity = 1, .hash_seed = SEED,
                                   .created_unix = 1790000000, .external_chunks = ms != NULL};
    memcpy(o.uuid, "snapshot-test-id", 16);
    struct plan_writer p = {.ms = ms};
    struct asr_error err = {0};
    cr_assert_eq(asr_writer_create(path, &o, &p.w, &err), ASR_OK, "%s", err.msg);
    for (uint32_t d = 0; d < 2; d++) {
        struct asr_disk_desc disk = {.size_bytes = DISK_SIZE, .logical_sector = 512, .physical_sector = 512};
        snprintf(disk.source, sizeof disk.source, "/dev/snap%u", d);
        cr_assert_eq(asr_writer_add_disk(p.w, &disk, &err), ASR_OK, "%s", err.msg);
    }
    for (uint32_t d = 0; d < 2; d++) {
        struct asr_volume_desc v = {.disk_index = d, .size_bytes = DISK_SIZE, .used_bytes = 100000, .block_size = 4096};
        snprintf(v.fs_type, sizeof v.fs_type, "raw");
        cr_assert_eq(asr_writer_add_volume(p.w, &v, NULL, &err), ASR_OK, "%s", err.msg);
    }
    put_chunk(&p, 0);
    put_extent(&p, 0, 0, 40000, 0, 0);
    cr_assert_eq(asr_writer_add_zero(p.w, 0, 40960, 65536, &err), ASR_OK, "%s", err.msg);
    put_chunk(&p, 1);
    put_extent(&p, 0, 200000, 30000, 1, 0);
    cr_assert_eq(asr_writer_add_unreadable(p.w, 0, 300000, 4096, &err), ASR_OK, "%s", err.msg);
    put_extent(&p, 1, 1000, 5000, 0, 1234); /* chunk 0 again, from the other volume */
    put_chunk(&p, 2);
    put_chunk(&p, 3);
    put_extent(&p, 1, 100000, 20000, 2, 0);
    cr_assert_eq(asr_writer_add_zero(p.w, 1, 500000, 8192, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(p.w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(p.w);
}

struct pair {
    char *image, *snap;
    struct memstore ms;
    struct asr_chunk_source src;
};

static void write_pair(struct pair *p)
{
    memset(p, 0, sizeof *p);
    p->image = scratch_path("image.asrimg");
    p->snap = scratch_path("snap.asrimg");
    write_plan(p->image, NULL);
    write_plan(p->snap, &p->ms);
    p->src = memstore_source(&p->ms);
}

static void free_pair(struct pair *p)
{
    free(p->image);
    free(p->snap);
    memstore_free(&p->ms);
}

static struct asr_reader *open_snap(struct pair *p)
{
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open_external(p->snap, &p->src, &r, &err), ASR_OK, "%s", err.msg);
    return r;
}

static char *hex(const uint8_t id[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
    return out;
}

/* ---- reading back -------------------------------------------------------------------------------- */

/* Every byte of both volumes, read in pieces, equal to the image's. */
static void same_volumes(struct asr_reader *snap, struct asr_reader *img)
{
    static uint8_t a[DISK_SIZE], b[DISK_SIZE];
    const size_t steps[] = {DISK_SIZE, 65536, 4097};
    for (uint32_t v = 0; v < 2; v++)
        for (size_t k = 0; k < 3; k++)
            for (uint64_t off = 0; off < DISK_SIZE; off += steps[k]) {
                size_t n = DISK_SIZE - off < steps[k] ? (size_t)(DISK_SIZE - off) : steps[k];
                struct asr_error ea = {0}, eb = {0};
                int ra = asr_reader_read_volume(snap, v, off, a, n, &ea);
                int rb = asr_reader_read_volume(img, v, off, b, n, &eb);
                cr_assert_eq(ra, rb, "volume %u at %llu: %s / %s", v, (unsigned long long)off, ea.msg, eb.msg);
                cr_assert(ra == ASR_OK || ra == ASR_E_UNREADABLE, "%s", ea.msg);
                cr_assert_eq(memcmp(a, b, n), 0, "volume %u at %llu", v, (unsigned long long)off);
            }
}

Test(external, round_trip_equals_image)
{
    struct pair p;
    write_pair(&p);
    struct asr_error err = {0};
    struct asr_reader *img, *snap = open_snap(&p);
    cr_assert_eq(asr_reader_open(p.image, &img, &err), ASR_OK, "%s", err.msg);
    same_volumes(snap, img);
    /* and the bytes themselves, where the plan put them */
    uint8_t buf[8];
    cr_assert_eq(asr_reader_read_volume(snap, 1, 1000, buf, 8, &err), ASR_OK, "%s", err.msg);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(buf[i], content_byte(0, 1234 + (uint64_t)i));
    cr_assert_eq(asr_reader_read_volume(snap, 0, 200000, buf, 8, &err), ASR_OK, "%s", err.msg);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(buf[i], content_byte(1, (uint64_t)i));

    const struct asr_image_info *si = asr_reader_info(snap), *ii = asr_reader_info(img);
    cr_assert_eq(si->incompat, ASR_FEATURE_INCOMPAT_EXTERNAL);
    cr_assert_eq(ii->incompat, 0);
    cr_assert_str_eq(asr_reader_feature_name(snap, ASR_FEATURE_INCOMPAT, 2), "external-chunks");
    cr_assert_eq(si->hash_seed, SEED);
    cr_assert_eq(memcmp(si->uuid, ii->uuid, 16), 0);
    cr_assert_eq(si->chunk_count, 4);
    cr_assert_eq(si->chunk_count, ii->chunk_count);
    cr_assert_eq(si->stored_bytes, ii->stored_bytes);
    cr_assert_lt(si->stored_bytes, si->unique_bytes, "the text chunks are zstd records");
    cr_assert_eq(si->unique_bytes, ii->unique_bytes);
    cr_assert_eq(si->data_bytes, ii->data_bytes);
    cr_assert_eq(si->zero_bytes, ii->zero_bytes);
    cr_assert_eq(si->unreadable_bytes, ii->unreadable_bytes);
    cr_assert_eq(si->part_count, 1);
    size_t snap_len, img_len;
    uint8_t *raw = read_file(p.snap, &snap_len), *iraw = read_file(p.image, &img_len);
    cr_assert_eq(si->image_bytes, snap_len);
    cr_assert_lt(snap_len, img_len - si->stored_bytes, "no chunk data in the snapshot");
    cr_assert_null(memmem(raw, snap_len, "ACNK", 4));
    cr_assert_null(memmem(raw, snap_len, "AEXT", 4));
    cr_assert_not_null(memmem(raw, snap_len, "ASID", 4));
    free(raw);
    free(iraw);
    for (uint32_t v = 0; v < 2; v++) {
        uint64_t ns, ni;
        const struct asr_extent *es = asr_reader_extents(snap, v, &ns), *ei = asr_reader_extents(img, v, &ni);
        cr_assert_eq(ns, ni);
        for (uint64_t i = 0; i < ns; i++)
            cr_assert(es[i].offset == ei[i].offset && es[i].length == ei[i].length && es[i].ref == ei[i].ref &&
                      es[i].chunk_offset == ei[i].chunk_offset, "volume %u extent %llu", v, (unsigned long long)i);
        const struct asr_volume_stats *ss = asr_reader_volume_stats(snap, v), *is = asr_reader_volume_stats(img, v);
        cr_assert(ss->extent_count == is->extent_count && ss->data_bytes == is->data_bytes &&
                  ss->zero_bytes == is->zero_bytes && ss->unreadable_bytes == is->unreadable_bytes &&
                  ss->content_hash.lo == is->content_hash.lo && ss->content_hash.hi == is->content_hash.hi,
                  "volume %u: extents, totals and content hash", v);
    }
    char where[128], h[65];
    for (uint64_t c = 0; c < 4; c++) {
        const uint8_t *id = asr_reader_store_id(snap, c);
        cr_assert_not_null(id);
        cr_assert_not_null(memstore_find(&p.ms, id));
        cr_assert_null(asr_reader_store_id(img, c));
        char want[128];
        snprintf(want, sizeof want, "store id %s", hex(id, h));
        cr_assert_str_eq(asr_reader_chunk_where(snap, c, where, sizeof where), want);
        uint32_t len;
        static uint8_t chunk[65536];
        cr_assert_eq(asr_reader_read_chunk(snap, c, chunk, sizeof chunk, &len, &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(len, chunk_len[c]);
        cr_assert_eq(chunk[len - 1], content_byte((uint32_t)c, len - 1));
    }
    cr_assert_null(asr_reader_store_id(snap, 4));
    asr_reader_prefetch(snap, 0, 1 << 20); /* nothing to read ahead in the file */
    asr_reader_free(snap);
    asr_reader_free(img);
    free_pair(&p);
}

/* fetch runs on every thread that decodes chunks. */
struct reader_thread {
    struct asr_reader *r;
    int failures;
};

static void *read_all(void *arg)
{
    struct reader_thread *t = arg;
    struct asr_chunk_reader *c;
    struct asr_error err = {0};
    static __thread uint8_t buf[65536];
    if (asr_chunk_reader_new(t->r, &c, &err))
        return (void *)1;
    for (int round = 0; round < 50; round++)
        for (uint64_t id = 0; id < 4; id++) {
            uint32_t len;
            if (asr_chunk_reader_read(c, id, buf, sizeof buf, &len, &err) || len != chunk_len[id] ||
                buf[len / 2] != content_byte((uint32_t)id, len / 2))
                t->failures++;
        }
    asr_chunk_reader_free(c);
    return NULL;
}

Test(external, chunk_readers_on_threads)
{
    struct pair p;
    write_pair(&p);
    struct asr_reader *r = open_snap(&p);
    pthread_t th[4];
    struct reader_thread t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct reader_thread){r, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, read_all, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        cr_assert_null(ret);
        cr_assert_eq(t[i].failures, 0);
    }
    cr_assert_geq(p.ms.fetches, 4 * 50 * 4);
    asr_reader_free(r);
    free_pair(&p);
}

/* A record read with its content is the one the image or store holds, checked: its lengths and
 * content hash are the content's, and its stored bytes give the content (what export copies). */
static void records_match_content(struct asr_reader *r)
{
    struct asr_chunk_reader *c;
    struct asr_error err = {0};
    static uint8_t buf[65536], out[65536];
    cr_assert_eq(asr_chunk_reader_new(r, &c, &err), ASR_OK, "%s", err.msg);
    for (uint32_t id = 0; id < 4; id++) {
        struct asr_chunk rec;
        cr_assert_eq(asr_chunk_reader_read_record(c, id, buf, sizeof buf, &rec, &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(rec.content_len, chunk_len[id]);
        cr_assert_eq(buf[rec.content_len - 1], content_byte(id, rec.content_len - 1));
        struct asr_hash128 h = asr_content_hash(SEED, buf, rec.content_len);
        cr_assert(h.lo == rec.content_hash.lo && h.hi == rec.content_hash.hi, "chunk %u: content hash", id);
        cr_assert_eq(rec.codec, id == 1 ? ASR_CODEC_STORED : ASR_CODEC_ZSTD, "chunk %u: codec %u", id, rec.codec);
        size_t n = rec.stored_len;
        if (rec.codec == ASR_CODEC_ZSTD)
            n = ZSTD_decompress(out, sizeof out, rec.stored, rec.stored_len);
        else
            memcpy(out, rec.stored, rec.stored_len);
        cr_assert_eq(n, rec.content_len, "chunk %u", id);
        cr_assert_eq(memcmp(out, buf, n), 0, "chunk %u: the stored bytes give the content", id);
    }
    asr_chunk_reader_free(c);
}

Test(external, records_read_with_their_content)
{
    struct pair p;
    write_pair(&p);
    struct asr_reader *snap = open_snap(&p), *img;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(p.image, &img, &err), ASR_OK, "%s", err.msg);
    records_match_content(snap);
    records_match_content(img);
    asr_reader_free(snap);
    asr_reader_free(img);
    free_pair(&p);
}

/* ---- which reader opens what ---------------------------------------------------------------------- */

static int problems_seen;
static void count_problem(const struct asr_problem *pr, void *ctx)
{
    (void)pr, (void)ctx;
    problems_seen++;
}

Test(external, readers_refuse_the_other_kind)
{
    struct pair p;
    write_pair(&p);
    struct asr_reader *r = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open(p.snap, &r, &err), ASR_E_UNSUPPORTED);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "is a store snapshot") && strstr(err.msg, "STORE::SNAPSHOT"), "%s", err.msg);
    cr_assert(strstr(err.msg, p.snap), "%s", err.msg);

    FILE *f = fopen(p.snap, "rb");
    struct asr_stream *s = NULL;
    cr_assert_eq(asr_stream_open_fd(fileno(f), "snap", &s, &err), ASR_E_UNSUPPORTED);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "store snapshot"), "%s", err.msg);
    fclose(f);

    problems_seen = 0;
    struct asr_verify_report rep;
    cr_assert_eq(asr_verify(p.snap, count_problem, NULL, NULL, NULL, &rep, &err), ASR_E_UNSUPPORTED);
    cr_assert(strstr(err.msg, "store snapshot"), "%s", err.msg);
    cr_assert_eq(problems_seen, 0);

    cr_assert_eq(asr_reader_open_external(p.image, &p.src, &r, &err), ASR_E_ARG);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "not a store snapshot"), "%s", err.msg);
    cr_assert_eq(asr_verify_external(p.image, &p.src, count_problem, NULL, NULL, NULL, &rep, &err), ASR_E_ARG);
    cr_assert_eq(problems_seen, 0);
    struct asr_chunk_source none = {0};
    cr_assert_eq(asr_reader_open_external(p.snap, &none, &r, &err), ASR_E_ARG);
    free_pair(&p);
}

Test(external, writer_rules)
{
    char *path = scratch_path("w.asrimg");
    struct asr_writer *w;
    struct asr_error err = {0};
    struct asr_writer_options o = {.split_size = ASR_MIN_SPLIT_SIZE, .external_chunks = true, .hash_seed = 9};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_E_ARG, "a snapshot is one part");
    o.split_size = 0;
    /* The store's seed, without fixed identity too: chunks are shared by every snapshot. */
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_hash_seed(w), 9);
    uint8_t content[100] = {1, 2, 3}, id[32] = {7};
    struct asr_chunk c = {ASR_CODEC_STORED, content, 100, 100, asr_content_hash(9, content, 100)};
    uint64_t n = 99;
    cr_assert_eq(asr_writer_append_chunk(w, &c, &n, &err), ASR_E_STATE);
    cr_assert_eq(n, 99);
    struct asr_chunk bad = c;
    bad.stored_len = 101;
    cr_assert_eq(asr_writer_append_external(w, id, &bad, &n, &err), ASR_E_ARG);
    bad.stored_len = 100;
    bad.content_len = ASR_DEFAULT_CHUNK_SIZE + 1; /* over the snapshot's max chunk size */
    cr_assert_eq(asr_writer_append_external(w, id, &bad, &n, &err), ASR_E_ARG);
    /* The codec is the store's business: a stored length below the content's needs no zstd mark. */
    bad = c;
    bad.stored_len = 50;
    bad.codec = 7;
    cr_assert_eq(asr_writer_append_external(w, id, &bad, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 0);
    cr_assert_eq(asr_writer_append_external(w, id, &c, &n, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    asr_writer_free(w);
    o.external_chunks = false;
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert_neq(asr_writer_hash_seed(w), 9, "an image's seed is its own");
    cr_assert_eq(asr_writer_append_external(w, id, &c, &n, &err), ASR_E_STATE);
    asr_writer_free(w);
    free(path);
}

/* A snapshot is one file: a split set declaring the feature is refused as such. */
Test(external, split_set_refused)
{
    char *path = scratch_path("split.asrimg");
    struct asr_writer *w;
    struct asr_error err = {0};
    struct asr_writer_options o = {.split_size = ASR_MIN_SPLIT_SIZE, .hash_seed = 3};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(fmt_writer_declare_feature(w, ASR_FEATURE_INCOMPAT, 2, "external-chunks"), ASR_OK);
    struct asr_disk_desc disk = {.size_bytes = DISK_SIZE, .logical_sector = 512, .physical_sector = 512};
    cr_assert_eq(asr_writer_add_disk(w, &disk, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    struct memstore ms = {0};
    struct asr_chunk_source src = memstore_source(&ms);
    struct asr_reader *r = NULL;
    cr_assert_eq(asr_reader_open_external(path, &src, &r, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "one part"), "%s", err.msg);
    cr_assert_null(r);
    free(path);
}

/* A snapshot with nothing captured has an empty store id section. */
Test(external, no_chunks)
{
    char *path = scratch_path("empty.asrimg");
    struct asr_writer *w;
    struct asr_error err = {0};
    struct asr_writer_options o = {.external_chunks = true, .hash_seed = 3};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    struct asr_disk_desc disk = {.size_bytes = DISK_SIZE, .logical_sector = 512, .physical_sector = 512};
    cr_assert_eq(asr_writer_add_disk(w, &disk, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    struct memstore ms = {0};
    struct asr_chunk_source src = memstore_source(&ms);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open_external(path, &src, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_reader_info(r)->chunk_count, 0);
    asr_reader_free(r);
    cr_assert_eq(asr_verify_external(path, &src, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
    free(path);
}

/* ---- damage in the store ---------------------------------------------------------------------------- */

/* Reads of volume v at [off, off+len) of a snapshot whose chunk k's record is damaged. */
static void read_range(struct asr_reader *r, uint32_t v, uint64_t off, size_t len, int want, const char *needle)
{
    static uint8_t buf[128 * 1024];
    cr_assert_leq(len, sizeof buf);
    struct asr_error err = {0};
    int rc = asr_reader_read_volume(r, v, off, buf, len, &err);
    cr_assert_eq(rc, want, "volume %u at %llu: %s", v, (unsigned long long)off, err.msg);
    if (needle)
        cr_assert(strstr(err.msg, needle), "%s lacks %s", err.msg, needle);
}

enum damage { FLIP_STORED, FLIP_HEADER, NUMBERED, SHORT, OTHER_RECORD, MISSING };

static void damage_record(struct pair *p, uint32_t k, enum damage d)
{
    struct memrec *rec = &p->ms.recs[k]; /* records are kept in the order of the plan's chunks */
    switch (d) {
    case FLIP_STORED:
        rec->rec[ASR_CHUNK_HEADER_SIZE + 10] ^= 0x40;
        break;
    case FLIP_HEADER:
        rec->rec[20] ^= 1;
        break;
    case NUMBERED: /* a record numbered as in an image: not how a store keeps it */
        put_le64(rec->rec + 8, k + 1);
        put_le64(rec->rec + 56, XXH3_64bits(rec->rec, 56));
        break;
    case SHORT:
        rec->len -= 1;
        break;
    case OTHER_RECORD: { /* the store answers with another chunk's record */
        struct memrec *o = &p->ms.recs[(k + 2) % p->ms.count];
        uint8_t *copy = malloc(o->len);
        memcpy(copy, o->rec, o->len);
        free(rec->rec);
        rec->rec = copy;
        rec->len = o->len;
        break;
    }
    case MISSING:
        rec->id[0] ^= 0xff;
        break;
    }
}

Test(external, damaged_record_fails_its_ranges_only)
{
    for (enum damage d = FLIP_STORED; d <= MISSING; d++) {
        struct pair p;
        write_pair(&p);
        char h[65];
        char needle[100];
        snprintf(needle, sizeof needle, "chunk 1 (store id %s)", hex(p.ms.recs[1].id, h));
        damage_record(&p, 1, d);
        struct asr_reader *r = open_snap(&p);
        read_range(r, 0, 200000, 30000, ASR_E_CORRUPT, needle);
        read_range(r, 0, 229990, 20, ASR_E_CORRUPT, "memstore");
        read_range(r, 0, 0, 40000, ASR_OK, NULL);
        read_range(r, 0, 100000, 100000, ASR_OK, NULL); /* zeros and nothing, up to the chunk */
        read_range(r, 0, 230000, 65536, ASR_OK, NULL);
        read_range(r, 1, 0, 65536, ASR_OK, NULL);
        read_range(r, 1, 100000, 20000, ASR_OK, NULL);
        /* and again: damage is not remembered as good */
        read_range(r, 0, 200000, 1, ASR_E_CORRUPT, needle);
        asr_reader_free(r);
        free_pair(&p);
    }
}

Test(external, content_not_matching_its_id)
{
    struct pair p;
    write_pair(&p);
    memcpy(p.ms.refuse, p.ms.recs[2].id, 32);
    p.ms.refuse_set = true;
    char h[65], needle[160];
    snprintf(needle, sizeof needle, "chunk 2 (store id %s): content does not match its id: memstore record 2",
             hex(p.ms.recs[2].id, h));
    struct asr_reader *r = open_snap(&p);
    read_range(r, 1, 100000, 20000, ASR_E_CORRUPT, needle);
    read_range(r, 1, 0, 65536, ASR_OK, NULL);
    read_range(r, 0, 0, 65536, ASR_OK, NULL);
    uint32_t len;
    static uint8_t buf[65536];
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_read_chunk(r, 2, buf, sizeof buf, &len, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, needle), "%s", err.msg);
    asr_reader_free(r);
    free_pair(&p);
}

/* ---- damage in the snapshot file ------------------------------------------------------------------ */

/* Recomputes the index's envelope and the footer over it after a test changed the index. */
static void reseal_index(uint8_t *raw, size_t len)
{
    uint8_t *foot = raw + len - ASR_FOOTER_SIZE;
    uint8_t *ix = raw + ASR_PART_HEADER_SIZE + get_le64(foot + 8);
    uint64_t body = get_le64(ix + 8);
    put_le64(ix + 16, XXH3_64bits(ix + ASR_SECTION_HEADER_SIZE, body));
    put_le64(ix + 24, XXH3_64bits(ix, 24));
    put_le64(foot + 48, XXH3_64bits(ix, ASR_SECTION_HEADER_SIZE + body));
    put_le64(foot + 56, XXH3_64bits(foot, 56));
}

static void reseal_envelope(uint8_t *s)
{
    put_le64(s + 16, XXH3_64bits(s + ASR_SECTION_HEADER_SIZE, get_le64(s + 8)));
    put_le64(s + 24, XXH3_64bits(s, 24));
}

enum file_damage { IDS_SHORTER, IDS_HUGE, IDS_BYTE, IDS_ODD, IDS_TAG, EXTRA_ID, ENTRY_OFFSET, ENTRY_COUNT, TRUNCATED, DAMAGES };

Test(external, damaged_snapshot_refused)
{
    struct pair p;
    write_pair(&p);
    size_t len;
    uint8_t *orig = read_file(p.snap, &len);
    uint8_t *sid = memmem(orig, len, "ASID", 4);
    cr_assert_not_null(sid);
    size_t at = (size_t)(sid - orig);
    char *bad = scratch_path("bad.asrimg");
    for (int d = 0; d < DAMAGES; d++) {
        uint8_t *raw = malloc(len + 32);
        memcpy(raw, orig, len);
        uint8_t *s = raw + at;
        size_t n = len;
        uint8_t *ix = raw + ASR_PART_HEADER_SIZE + get_le64(raw + len - ASR_FOOTER_SIZE + 8);
        switch (d) {
        case IDS_SHORTER: /* the section says it ends an id early: a gap before the index */
            put_le64(s + 8, get_le64(s + 8) - 32);
            reseal_envelope(s);
            break;
        case IDS_HUGE:
            put_le64(s + 8, 1ull << 40);
            put_le64(s + 24, XXH3_64bits(s, 24));
            break;
        case IDS_BYTE: /* an id changed under its checksum */
            s[ASR_SECTION_HEADER_SIZE + 5] ^= 1;
            break;
        case IDS_ODD: /* not a whole number of ids, the rest as the envelope says */
            put_le64(s + 8, get_le64(s + 8) - 1);
            reseal_envelope(s);
            break;
        case IDS_TAG:
            memcpy(s, "AEXT", 4);
            put_le64(s + 24, XXH3_64bits(s, 24));
            break;
        case EXTRA_ID: { /* one id more than the index lists, the section still ending at the index */
            uint64_t end = at + ASR_SECTION_HEADER_SIZE + get_le64(s + 8);
            memmove(raw + end + 32, raw + end, len - end);
            memcpy(raw + end, s + ASR_SECTION_HEADER_SIZE, 32);
            n = len + 32;
            put_le64(s + 8, get_le64(s + 8) + 32);
            reseal_envelope(s);
            uint8_t *foot = raw + n - ASR_FOOTER_SIZE;
            uint64_t index_off = get_le64(foot + 8) + 32;
            put_le64(foot + 8, index_off);
            XXH128_hash_t h = XXH3_128bits(raw + ASR_PART_HEADER_SIZE, index_off);
            ix = raw + ASR_PART_HEADER_SIZE + index_off;
            put_le64(ix + ASR_SECTION_HEADER_SIZE + 16, h.low64);
            put_le64(ix + ASR_SECTION_HEADER_SIZE + 24, h.high64);
            reseal_index(raw, n);
            break;
        }
        case ENTRY_OFFSET: /* chunk 2's entry names another place */
            put_le64(ix + ASR_SECTION_HEADER_SIZE + ASR_INDEX_FIXED + 2 * ASR_CHUNK_ENTRY_SIZE,
                     get_le64(ix + ASR_SECTION_HEADER_SIZE + ASR_INDEX_FIXED) + 32);
            reseal_index(raw, len);
            break;
        case ENTRY_COUNT: /* the index lists fewer chunks than the section names */
            put_le64(ix + ASR_SECTION_HEADER_SIZE + 8, 3);
            reseal_index(raw, len);
            break;
        case TRUNCATED:
            n = at + 40;
            break;
        }
        write_file(bad, raw, n);
        struct asr_reader *r = NULL;
        struct asr_error err = {0};
        int rc = asr_reader_open_external(bad, &p.src, &r, &err);
        cr_assert(rc == ASR_E_CORRUPT || rc == ASR_E_INCOMPLETE, "damage %d: %d %s", d, rc, err.msg);
        cr_assert_null(r);
        cr_assert(err.msg[0]);
        struct asr_verify_report rep;
        problems_seen = 0;
        cr_assert_neq(asr_verify_external(bad, &p.src, count_problem, NULL, NULL, NULL, &rep, &err), ASR_OK,
                      "damage %d", d);
        cr_assert_gt(problems_seen, 0, "damage %d", d);
        free(raw);
    }
    free(orig);
    free(bad);
    free_pair(&p);
}

/* ---- verify ------------------------------------------------------------------------------------------ */

struct seen {
    int count;
    char msgs[8][ASR_ERROR_MSG_MAX];
};

static void keep_problem(const struct asr_problem *pr, void *ctx)
{
    struct seen *s = ctx;
    if (s->count < 8)
        snprintf(s->msgs[s->count], sizeof s->msgs[0], "%s: %s", pr->what, pr->message);
    s->count++;
}

Test(external, verify_clean_and_damaged)
{
    struct pair p;
    write_pair(&p);
    struct asr_verify_report rep;
    struct asr_error err = {0};
    struct seen seen = {0};
    cr_assert_eq(asr_verify_external(p.snap, &p.src, keep_problem, &seen, NULL, NULL, &rep, &err), ASR_OK, "%s",
                 err.msg);
    cr_assert_eq(seen.count, 0);
    cr_assert(rep.complete);
    cr_assert_eq(rep.problems, 0);
    cr_assert_eq(rep.chunks, 4, "the chunk no extent uses is checked too");
    cr_assert_eq(rep.volumes, 2);
    size_t len;
    uint8_t *raw = read_file(p.snap, &len);
    cr_assert_eq(rep.bytes_checked, get_le64(raw + len - ASR_FOOTER_SIZE + 8), "every byte before the index");
    free(raw);
    uint64_t stored = 0;
    for (size_t i = 0; i < p.ms.count; i++)
        stored += p.ms.recs[i].len - ASR_CHUNK_HEADER_SIZE;
    cr_assert_eq(p.ms.count, 4);
    cr_assert_eq(rep.store_bytes, stored, "every chunk's stored bytes, read from the store");

    /* Chunks 0 (used by both volumes) and 1 (volume 0 too) and 3 (used by none) damaged: each named
     * once, by its id and its place, the check going on past each; the volume content hashes that
     * need them are not judged. */
    char h0[65], h1[65], h3[65];
    hex(p.ms.recs[0].id, h0);
    hex(p.ms.recs[1].id, h1);
    hex(p.ms.recs[3].id, h3);
    damage_record(&p, 0, FLIP_STORED);
    damage_record(&p, 1, NUMBERED);
    damage_record(&p, 3, FLIP_HEADER);
    memset(&seen, 0, sizeof seen);
    int rc = asr_verify_external(p.snap, &p.src, keep_problem, &seen, NULL, NULL, &rep, &err);
    cr_assert_eq(rc, ASR_E_CORRUPT, "%s", err.msg);
    cr_assert_eq(seen.count, 3, "%s | %s | %s | %s", seen.msgs[0], seen.msgs[1], seen.msgs[2], seen.msgs[3]);
    cr_assert(strstr(seen.msgs[0], h0) && strstr(seen.msgs[0], "stored data checksum mismatch: memstore record 0"),
              "%s", seen.msgs[0]);
    cr_assert(strstr(seen.msgs[1], h1) && strstr(seen.msgs[1], "disagrees with its index entry: memstore record 1"),
              "%s", seen.msgs[1]);
    cr_assert(strstr(seen.msgs[2], h3) && strstr(seen.msgs[2], "memstore record 3"), "%s", seen.msgs[2]);
    cr_assert(strstr(err.msg, h0), "the first problem: %s", err.msg);
    cr_assert_eq(rep.chunks, 1);
    cr_assert_eq(rep.problems, 3);
    free_pair(&p);
}

/* ---- advice to the store ---------------------------------------------------------------------- */

/* The memstore's source, with a prefetch that keeps what it was told. */
struct advised {
    struct asr_chunk_source inner;
    uint8_t ids[8][32];
    size_t n, calls;
};

static int advised_fetch(void *ctx, const uint8_t id[32], void *buf, size_t cap, size_t *len, char *where,
                         size_t where_len, struct asr_error *err)
{
    struct advised *a = ctx;
    return a->inner.fetch(a->inner.ctx, id, buf, cap, len, where, where_len, err);
}

static bool advised_check(void *ctx, const uint8_t id[32], const void *content, size_t len)
{
    struct advised *a = ctx;
    return a->inner.check(a->inner.ctx, id, content, len);
}

static void advised_prefetch(void *ctx, const uint8_t *store_ids, size_t n)
{
    struct advised *a = ctx;
    a->calls++;
    a->n = n < 8 ? n : 8;
    memcpy(a->ids, store_ids, a->n * 32);
}

/* asr_reader_prefetch_chunks names the chunks to the store in the order given (a restore's, which
 * may go back to a chunk stored long before), up to the bytes asked for; an image's reader, and
 * asr_reader_prefetch of a snapshot, name none. */
Test(external, prefetch_names_the_chunks_in_the_order_given)
{
    struct pair p;
    write_pair(&p);
    struct advised a = {.inner = p.src};
    struct asr_chunk_source src = {.fetch = advised_fetch, .check = advised_check, .ctx = &a,
                                   .prefetch = advised_prefetch};
    struct asr_reader *r;
    struct asr_error err = {0};
    cr_assert_eq(asr_reader_open_external(p.snap, &src, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_geq(asr_reader_info(r)->chunk_count, 3);
    const uint64_t order[] = {2, 0, 1, 99};
    asr_reader_prefetch_chunks(r, order, 4, UINT64_MAX);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.n, 3, "%zu ids (a chunk that does not exist is left out)", a.n);
    for (size_t i = 0; i < 3; i++)
        cr_assert(!memcmp(a.ids[i], asr_reader_store_id(r, order[i]), 32), "id %zu", i);
    /* bytes: the chunks until their records reach it, the one that reaches it included */
    asr_reader_prefetch_chunks(r, order, 3, 1);
    cr_assert_eq(a.n, 1);
    cr_assert(!memcmp(a.ids[0], asr_reader_store_id(r, 2), 32));
    asr_reader_prefetch(r, 0, UINT64_MAX);
    cr_assert_eq(a.calls, 2);
    asr_reader_free(r);
    struct asr_reader *img;
    cr_assert_eq(asr_reader_open(p.image, &img, &err), ASR_OK, "%s", err.msg);
    asr_reader_prefetch_chunks(img, order, 3, UINT64_MAX);
    asr_reader_free(img);
    cr_assert_eq(a.calls, 2);
    free_pair(&p);
}
