/* Test support: scratch directories, file helpers and the sample-image builder described in
 * support.h. The builder writes through the public writer API only. */
#include "support.h"
#include "internal.h" /* fmt_writer_declare_feature */
#include "le.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char scratch[256];

const char *scratch_dir(void)
{
    if (!scratch[0]) {
        /* ASRIMG_TEST_SCRATCH: a directory on another filesystem to run a suite on (store_exfat). */
        const char *parent = getenv("ASRIMG_TEST_SCRATCH");
        snprintf(scratch, sizeof scratch, "%s/asrimg-test-XXXXXX", parent && *parent ? parent : "/tmp");
        cr_assert_not_null(mkdtemp(scratch), "mkdtemp");
    }
    return scratch;
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

void scratch_cleanup(void)
{
    if (scratch[0])
        nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    scratch[0] = '\0';
}

char *scratch_path(const char *name)
{
    char *p = malloc(strlen(scratch_dir()) + strlen(name) + 2);
    cr_assert_not_null(p);
    sprintf(p, "%s/%s", scratch_dir(), name);
    return p;
}

uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "create %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

void patch_byte(const char *path, uint64_t off, uint8_t value)
{
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(pwrite(fd, &value, 1, (off_t)off), 1);
    close(fd);
}

void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *b = read_file(from, &n);
    write_file(to, b, n);
    free(b);
}

/* ---- sample content ---------------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

uint8_t pattern_byte(uint32_t seed, uint64_t off)
{
    if (seed == 1) /* incompressible */
        return (uint8_t)(mix(off / 8 + 0x9e3779b97f4a7c15ull) >> (8 * (off % 8)));
    /* compressible: text-like lines that change slowly */
    static const char words[] = "asrimg restores disks bare metal; ";
    return (uint8_t)words[(off + (off / 4096) * seed) % (sizeof words - 1)];
}

static uint64_t g_size = 512 * 1024;

uint64_t sample_volume_size(const struct sample_opts *o)
{
    return (uint64_t)(o && o->volume_kib ? o->volume_kib : 512) * 1024;
}

int sample_expected(uint32_t v, uint64_t off, int *unreadable)
{
    uint64_t s = g_size;
    *unreadable = 0;
    switch (v) {
    case 0:
        if (off < s / 2 || off >= 3 * s / 4)
            return pattern_byte(0, off);
        return 0;
    case 1:
        if (off < s / 2)
            return pattern_byte(1, off);
        if (off < 3 * s / 4)
            return pattern_byte(1, off - s / 2);
        if (off < 3 * s / 4 + 1000)
            return pattern_byte(1, 100 + off - 3 * s / 4);
        return 0;
    default:
        if (off >= 4096 && off < 8192) {
            *unreadable = 1;
            return 0;
        }
        if (off >= s - 65536)
            return 0;
        return pattern_byte(2, off);
    }
}

/* ---- builder --------------------------------------------------------------------------------- */

struct builder {
    struct asr_writer *w;
    struct asr_error *err;
    uint32_t chunk;
    int level;
    uint8_t *buf, *enc;
    uint64_t *piece_chunk; /* per volume-1 piece: its chunk id */
};

static int put_data(struct builder *b, uint32_t v, uint64_t off, uint64_t len)
{
    for (uint64_t at = off; at < off + len; at += b->chunk) {
        uint32_t n = (uint32_t)(off + len - at < b->chunk ? off + len - at : b->chunk);
        int unr;
        for (uint32_t i = 0; i < n; i++)
            b->buf[i] = (uint8_t)sample_expected(v, at + i, &unr);
        struct asr_chunk c;
        uint64_t id;
        int rc = asr_chunk_encode(b->buf, n, b->level, asr_writer_hash_seed(b->w), b->enc, asr_chunk_bound(b->chunk),
                                  &c, b->err);
        if (!rc)
            rc = asr_writer_append_chunk(b->w, &c, &id, b->err);
        if (!rc)
            rc = asr_writer_add_extent(b->w, v, at, n, id, 0, b->buf, b->err);
        if (rc)
            return rc;
        if (v == 1)
            b->piece_chunk[at / b->chunk] = id;
    }
    return ASR_OK;
}

/* Volume 1's second quarter repeats its first: whole-chunk references, then one reference into
 * the middle of a chunk (what dedup of unaligned copies produces). */
static int put_dups(struct builder *b, uint64_t s)
{
    int rc = ASR_OK;
    for (uint64_t at = s / 2; at < 3 * s / 4 && !rc; at += b->chunk) {
        uint64_t src = at - s / 2;
        for (uint32_t i = 0; i < b->chunk; i++)
            b->buf[i] = pattern_byte(1, src + i);
        rc = asr_writer_add_extent(b->w, 1, at, b->chunk, b->piece_chunk[src / b->chunk], 0, b->buf, b->err);
    }
    for (uint32_t i = 0; i < 1000 && !rc; i++)
        b->buf[i] = pattern_byte(1, 100 + i);
    if (!rc)
        rc = asr_writer_add_extent(b->w, 1, 3 * s / 4, 1000, b->piece_chunk[0], 100, b->buf, b->err);
    if (!rc)
        rc = asr_writer_add_zero(b->w, 1, 3 * s / 4 + 1000, s / 4 - 1000, b->err);
    return rc;
}

static int put_volumes(struct builder *b, uint64_t s)
{
    int rc;
    if ((rc = put_data(b, 0, 0, s / 2)) || (rc = asr_writer_add_zero(b->w, 0, s / 2, s / 8, b->err)) ||
        (rc = asr_writer_add_zero(b->w, 0, s / 2 + s / 8, s / 8, b->err)) || (rc = put_data(b, 0, 3 * s / 4, s / 4)))
        return rc;
    if ((rc = put_data(b, 1, 0, s / 2)) || (rc = put_dups(b, s)))
        return rc;
    if ((rc = put_data(b, 2, 0, 4096)) || (rc = asr_writer_add_unreadable(b->w, 2, 4096, 4096, b->err)) ||
        (rc = put_data(b, 2, 8192, s - 65536 - 8192)))
        return rc;
    return ASR_OK;
}

static uint8_t region_bytes[1 << 20];

static int put_layout(struct asr_writer *w, uint64_t s, struct asr_error *err)
{
    for (size_t i = 0; i < sizeof region_bytes; i++)
        region_bytes[i] = (uint8_t)(i * 13 + (i >> 9));
    /* The lead-in before the first partition (the post-MBR gap) shrinks with small samples so
     * the byte-flip tests stay quick. */
    uint64_t mib = s < 256 * 1024 ? 32768 : 1 << 20;
    static struct asr_partition_desc gpt_parts[2], mbr_parts[3];
    memset(gpt_parts, 0, sizeof gpt_parts);
    memset(mbr_parts, 0, sizeof mbr_parts);
    for (int i = 0; i < 2; i++) {
        struct asr_partition_desc *p = &gpt_parts[i];
        p->number = (uint32_t)i + 1;
        p->kind = ASR_PART_GPT;
        p->capture = ASR_CAPTURE_USED;
        p->start_bytes = mib + (uint64_t)i * s;
        p->size_bytes = s;
        memset(p->type_guid, 0x11 * (i + 1), 16);
        memset(p->part_guid, 0xa0 + i, 16);
        p->attributes = i ? 0x8000000000000000ull : 1;
        snprintf(p->name, sizeof p->name, i ? "data-\xc3\xa9t\xc3\xa9" : "EFI system partition");
    }
    struct asr_region_desc gpt_regions[5] = {
        {ASR_REGION_MBR, 0, 512, region_bytes},
        {ASR_REGION_GPT_HEADER, 512, 512, region_bytes + 512},
        {ASR_REGION_GPT_ENTRIES, 1024, 16384, region_bytes + 1024},
        {ASR_REGION_GPT_BACKUP_ENTRIES, 2 * mib + 2 * s - 33 * 512, 16384, region_bytes + 20000},
        {ASR_REGION_GPT_BACKUP_HEADER, 2 * mib + 2 * s - 512, 512, region_bytes + 40000},
    };
    struct asr_disk_desc gpt = {.size_bytes = 2 * mib + 2 * s, .logical_sector = 512, .physical_sector = 4096,
                                .label = ASR_LABEL_GPT, .gpt_first_usable_lba = 34,
                                .gpt_last_usable_lba = (2 * mib + 2 * s) / 512 - 34, .gpt_entry_count = 128,
                                .gpt_entry_size = 128, .partition_count = 2, .partitions = gpt_parts,
                                .region_count = 5, .regions = gpt_regions};
    snprintf(gpt.source, sizeof gpt.source, "/dev/loop-gpt");
    memset(gpt.disk_id, 0x5a, 16);

    uint64_t ext_start = mib + 65536;
    uint32_t numbers[3] = {1, 2, 5};
    uint8_t kinds[3] = {ASR_PART_PRIMARY, ASR_PART_EXTENDED, ASR_PART_LOGICAL};
    uint8_t types[3] = {0x83, 0x05, 0x83};
    uint64_t starts[3] = {mib, ext_start, ext_start + 65536}, sizes[3] = {65536, s + 65536, s};
    for (int i = 0; i < 3; i++)
        mbr_parts[i] = (struct asr_partition_desc){.number = numbers[i], .kind = kinds[i], .mbr_type = types[i],
                                                   .bootable = i == 0, .capture = i == 2 ? ASR_CAPTURE_USED : ASR_CAPTURE_SKIP,
                                                   .start_bytes = starts[i], .size_bytes = sizes[i]};
    /* Sector 0 holds the table the records describe, as on a real disk (SPEC.md section 6). */
    uint8_t *sector0 = region_bytes + 50000;
    for (int i = 0; i < 2; i++) {
        uint8_t *e = sector0 + 446 + 16 * i;
        memset(e, 0, 16);
        e[0] = i == 0 ? 0x80 : 0;
        e[4] = types[i];
        put_le32(e + 8, (uint32_t)(starts[i] / 512));
        put_le32(e + 12, (uint32_t)(sizes[i] / 512));
    }
    memset(sector0 + 446 + 32, 0, 32);
    sector0[510] = 0x55, sector0[511] = 0xaa;
    struct asr_region_desc mbr_regions[3] = {
        {ASR_REGION_MBR, 0, 512, sector0},
        {ASR_REGION_GAP, 512, (uint32_t)mib - 512, region_bytes + 512},
        {ASR_REGION_EBR, ext_start, 512, region_bytes + 60000},
    };
    struct asr_disk_desc mbr = {.size_bytes = ext_start + 65536 + s + mib, .logical_sector = 512,
                                .physical_sector = 512, .label = ASR_LABEL_MBR, .partition_count = 3,
                                .partitions = mbr_parts, .region_count = 3, .regions = mbr_regions};
    snprintf(mbr.source, sizeof mbr.source, "/dev/loop-mbr");
    memcpy(mbr.disk_id, "\x78\x56\x34\x12", 4);

    struct asr_volume_desc vols[3] = {
        {.disk_index = 0, .partition_number = 1, .disk_offset = mib, .size_bytes = s, .used_bytes = s / 2, .block_size = 4096},
        {.disk_index = 0, .partition_number = 2, .disk_offset = mib + s, .size_bytes = s, .used_bytes = s / 2, .block_size = 512},
        {.disk_index = 1, .partition_number = 5, .disk_offset = ext_start + 65536, .size_bytes = s, .used_bytes = s, .block_size = 1024},
    };
    snprintf(vols[0].fs_type, sizeof vols[0].fs_type, "ext4");
    snprintf(vols[0].fs_uuid, sizeof vols[0].fs_uuid, "0b6c2e9e-7a41-4f3c-9a43-8f0d1d2c3b4a");
    snprintf(vols[0].fs_label, sizeof vols[0].fs_label, "root");
    snprintf(vols[1].fs_type, sizeof vols[1].fs_type, "vfat");
    snprintf(vols[2].fs_type, sizeof vols[2].fs_type, "ext2");
    int rc;
    if ((rc = asr_writer_add_disk(w, &gpt, err)) || (rc = asr_writer_add_disk(w, &mbr, err)))
        return rc;
    for (int i = 0; i < 3; i++)
        if ((rc = asr_writer_add_volume(w, &vols[i], NULL, err)))
            return rc;
    return ASR_OK;
}

int write_sample_image(const char *path, const struct sample_opts *o, struct asr_error *err)
{
    static const struct sample_opts defaults = {0};
    if (!o)
        o = &defaults;
    g_size = sample_volume_size(o);
    struct asr_writer_options wo = {.split_size = o->split_size, .max_chunk_size = o->max_chunk ? o->max_chunk : 65536,
                                    .overwrite = 1, .fixed_identity = o->fixed_identity, .hash_seed = 42,
                                    .created_unix = 1700000000};
    memcpy(wo.uuid, "sample-image-id!", 16);
    struct builder b = {.err = err, .chunk = wo.max_chunk_size, .level = o->level};
    int rc = asr_writer_create(path, &wo, &b.w, err);
    if (rc)
        return rc;
    b.buf = malloc(b.chunk);
    b.enc = malloc(asr_chunk_bound(b.chunk));
    b.piece_chunk = calloc(g_size / b.chunk + 1, sizeof *b.piece_chunk);
    cr_assert(b.buf && b.enc && b.piece_chunk);
    rc = put_layout(b.w, g_size, err);
    if (!rc)
        rc = put_volumes(&b, g_size);
    if (!rc)
        rc = asr_writer_finish(b.w, err);
    asr_writer_free(b.w);
    free(b.buf);
    free(b.enc);
    free(b.piece_chunk);
    return rc;
}

/* ---- the dedup image ----------------------------------------------------------------------- */

struct dedup_step {
    int new_chunk; /* 1: append chunk `chunk`; 0: the extent */
    uint32_t volume;
    uint64_t offset;
    uint32_t length;
    uint32_t chunk, chunk_offset;
};

static const uint32_t dedup_chunk_len[] = {4096, 16384, 12288, 8192, 4096, 8192, 6000, 4096};
#define DEDUP_CHUNKS (sizeof dedup_chunk_len / sizeof dedup_chunk_len[0])
#define DEDUP_STEPS 128

/* Chunks 0 and 4 look like zeros (a block of a file system table with a few bytes set). */
static uint8_t dedup_chunk_byte(uint32_t c, uint32_t i)
{
    if (c == 0 || c == 4)
        return i == 17 || i == 2048 + c || i == 4000 ? (uint8_t)(0x5a + c) : 0;
    return pattern_byte(c % 3, (uint64_t)i * 7 + c * 1000);
}

static size_t dedup_plan(struct dedup_step *s, int gap)
{
    size_t n = 0;
#define NEW(c) (s[n++] = (struct dedup_step){1, 0, 0, 0, (c), 0})
#define PUT(v, o, l, c, co) (s[n++] = (struct dedup_step){0, (v), (o), (l), (c), (co)})
    NEW(0);
    for (uint64_t k = 0; k < 24; k++) /* laid at many places, back to back */
        PUT(0, 4096 * k, 4096, 0, 0);
    PUT(0, 98304, 1000, 0, 0); /* once more in two pieces, then inside what is laid */
    PUT(0, 99304, 3096, 0, 1000);
    PUT(0, 110000, 3072, 0, 512);
    NEW(1);
    PUT(0, 120000, 16384, 1, 0);
    PUT(0, 140000, 4096, 0, 0); /* used again after the next chunk: read back */
    PUT(0, 145000, 200, 0, 100);
    NEW(2); /* laid only in pieces that partly overlap */
    PUT(0, 150000, 6000, 2, 0);
    PUT(0, 160000, 8288, 2, 4000);
    PUT(0, 170000, 7000, 2, 2000);
    NEW(3);
    PUT(0, 180000, 8192, 3, 0);
    PUT(0, 190000, 12288, 2, 0); /* from both pieces */
    PUT(0, 205000, 2000, 2, 5000);
    PUT(0, 210000, 96, 0, 4000);
    PUT(0, 215000, 8384, 1, 8000);
    PUT(1, 0, 4096, 0, 0); /* from another volume of the disk */
    PUT(1, 10000, 8092, 3, 100);
    PUT(2, 0, 4096, 0, 0); /* from another disk */
    PUT(2, 4096, 4096, 0, 0);
    NEW(4);
    for (uint64_t k = 0; k < 8; k++)
        PUT(2, 8192 + 4096 * k, 4096, 4, 0);
    NEW(5);
    PUT(2, 50000, 8192, 5, 0);
    PUT(2, 60000, 4096, 4, 0);
    PUT(2, 70000, 12288, 2, 0);
    PUT(2, 90000, 16384, 1, 0);
    if (gap == 2) /* a patched region's shape: runs alternating between two chunks, back to back */
        for (uint64_t k = 0; k < 8; k++)
            PUT(2, 150000 + 4096 * k, 4096, k % 2 ? 5 : 4, k % 2 ? 4096 * (uint32_t)(k / 2 % 2) : 0);
    if (gap == 1) {
        NEW(6); /* bytes 2000 to 4000 are not laid while it is the last chunk */
        PUT(2, 110000, 2000, 6, 0);
        PUT(2, 120000, 2000, 6, 4000);
        NEW(7);
        PUT(2, 130000, 4096, 7, 0);
        PUT(2, 140000, 3000, 6, 1000);
    }
#undef NEW
#undef PUT
    cr_assert_leq(n, DEDUP_STEPS);
    return n;
}

uint8_t dedup_expected(uint32_t v, uint64_t off, int gap, int *captured)
{
    struct dedup_step s[DEDUP_STEPS];
    size_t n = dedup_plan(s, gap);
    for (size_t i = 0; i < n; i++)
        if (!s[i].new_chunk && s[i].volume == v && off >= s[i].offset && off < s[i].offset + s[i].length) {
            *captured = 1;
            return dedup_chunk_byte(s[i].chunk, s[i].chunk_offset + (uint32_t)(off - s[i].offset));
        }
    *captured = 0;
    return 0;
}

/* A writer of a 256 KiB disk's image (64 KiB chunks at most, hash seed 7), its layout put. */
static int small_image_writer(const char *path, struct asr_writer **w, struct asr_error *err)
{
    g_size = 256 * 1024;
    struct asr_writer_options wo = {.max_chunk_size = 65536, .overwrite = 1, .hash_seed = 7,
                                    .created_unix = 1700000000};
    int rc = asr_writer_create(path, &wo, w, err);
    if (!rc && (rc = put_layout(*w, g_size, err))) {
        asr_writer_free(*w);
        *w = NULL;
    }
    return rc;
}

/* data (len bytes, at most 64 KiB) encoded at level into enc and appended to w: its number in *id. */
static int append_small_chunk(struct asr_writer *w, const uint8_t *data, uint32_t len, int level, uint8_t *enc,
                              uint64_t *id, struct asr_error *err)
{
    struct asr_chunk ch;
    *id = UINT64_MAX;
    int rc = asr_chunk_encode(data, len, level, asr_writer_hash_seed(w), enc, asr_chunk_bound(65536), &ch, err);
    return rc ? rc : asr_writer_append_chunk(w, &ch, id, err);
}

int write_dedup_image(const char *path, int gap, struct asr_error *err)
{
    struct asr_writer *w;
    int rc = small_image_writer(path, &w, err);
    if (rc)
        return rc;
    uint8_t *content[DEDUP_CHUNKS] = {0}, *enc = malloc(asr_chunk_bound(65536));
    cr_assert_not_null(enc);
    struct dedup_step s[DEDUP_STEPS];
    size_t n = dedup_plan(s, gap);
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t c = s[i].chunk;
        if (!s[i].new_chunk) {
            rc = asr_writer_add_extent(w, s[i].volume, s[i].offset, s[i].length, c, s[i].chunk_offset,
                                       content[c] + s[i].chunk_offset, err);
            continue;
        }
        cr_assert(c < DEDUP_CHUNKS && (content[c] = malloc(dedup_chunk_len[c])));
        for (uint32_t k = 0; k < dedup_chunk_len[c]; k++)
            content[c][k] = dedup_chunk_byte(c, k);
        uint64_t id;
        rc = append_small_chunk(w, content[c], dedup_chunk_len[c], 3, enc, &id, err);
        cr_assert(rc || id == c, "chunk %u got id %llu", c, (unsigned long long)id);
    }
    if (!rc)
        rc = asr_writer_finish(w, err);
    asr_writer_free(w);
    for (size_t c = 0; c < DEDUP_CHUNKS; c++)
        free(content[c]);
    free(enc);
    return rc;
}

/* Chunks of random sizes appended first, then volume 0 laid in 1 KiB extents, each from a chunk
 * and offset drawn from seed: chunks used again at every distance, for the restore's plan. */
int write_random_reuse_image(const char *path, unsigned seed, struct asr_error *err)
{
    enum { CHUNKS = 14, PIECE = 1024 };
    struct asr_writer *w;
    int rc = small_image_writer(path, &w, err);
    if (rc)
        return rc;
    uint8_t *content[CHUNKS] = {0}, *enc = malloc(asr_chunk_bound(65536));
    uint32_t len[CHUNKS];
    cr_assert_not_null(enc);
    for (uint32_t c = 0; c < CHUNKS && !rc; c++) {
        len[c] = 2 * PIECE + (uint32_t)rand_r(&seed) % (30 * PIECE);
        cr_assert_not_null(content[c] = malloc(len[c]));
        for (uint32_t k = 0; k < len[c]; k++)
            content[c][k] = pattern_byte(c % 3, (uint64_t)k * 5 + c * 777);
        uint64_t id;
        rc = append_small_chunk(w, content[c], len[c], 1, enc, &id, err);
    }
    for (uint64_t off = 0; off + PIECE <= g_size && !rc; off += PIECE) {
        uint32_t c = (uint32_t)rand_r(&seed) % CHUNKS, at = (uint32_t)rand_r(&seed) % (len[c] - PIECE);
        rc = asr_writer_add_extent(w, 0, off, PIECE, c, at, content[c] + at, err);
    }
    if (!rc)
        rc = asr_writer_finish(w, err);
    asr_writer_free(w);
    for (size_t c = 0; c < CHUNKS; c++)
        free(content[c]);
    free(enc);
    return rc;
}

char *image_with_feature(enum asr_feature_class cls, unsigned bit, const char *name)
{
    char *path = scratch_path("feat.asrimg");
    struct asr_writer *w;
    struct asr_error err = {0};
    struct asr_writer_options o = {.overwrite = 1};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(fmt_writer_declare_feature(w, cls, bit, name), ASR_OK);
    struct asr_disk_desc d = {.size_bytes = 4096, .logical_sector = 512, .physical_sector = 512};
    cr_assert_eq(asr_writer_add_disk(w, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    return path;
}
