/* gen_seeds: writes the fuzz seed corpora, reproducibly: small .asrimg images through the writer
 * (DIR/image/) and small partitioned disk images built byte by byte (DIR/layout/). Run by hand
 * when the format changes and commit the files. Usage: gen_seeds DIR (normally fuzz/corpus) */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "asr_format.h"
#include "internal.h" /* fmt_writer_declare_feature: images from a "later version"; chunk records */

#define KIB 1024u
#define SEED_MAX (64u * KIB) /* every seed stays below this */

static const char *outdir;
static struct asr_error err;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gen_seeds: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s\n", err.msg[0] ? ": " : "", err.msg);
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc)
        die("%s", what);
}

/* ---- content ------------------------------------------------------------------------------ */

/* Compressible: text-like lines with a salt. */
static void fill_text(uint8_t *p, size_t n, unsigned salt)
{
    static const char words[] = "the quick brown fox jumps over the lazy dog; asrimg restores disks. ";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i % 61 == 60 ? '\n' : words[(i * 7 + salt) % (sizeof words - 1)]);
}

/* Incompressible: xorshift64 bytes. */
static void fill_noise(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* ---- partition table bytes ------------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v), put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v), put32(p + 4, (uint32_t)(v >> 32)); }

/* One MBR-style partition entry (no CHS) at p. */
static void mbr_entry(uint8_t *p, uint8_t boot, uint8_t type, uint32_t lba, uint32_t sectors)
{
    memset(p, 0, 16);
    p[0] = boot;
    p[4] = type;
    put32(p + 8, lba);
    put32(p + 12, sectors);
}

struct gpt_fields {
    uint64_t first_usable, last_usable;
    uint32_t entry_count;
    const uint8_t *disk_guid;
};

static void gpt_header(uint8_t *h, const struct gpt_fields *g, uint64_t self, uint64_t other, uint64_t entries_lba,
                       uint32_t entries_crc)
{
    memset(h, 0, 512);
    memcpy(h, "EFI PART", 8);
    put32(h + 8, 0x00010000);
    put32(h + 12, 92);
    put64(h + 24, self);
    put64(h + 32, other);
    put64(h + 40, g->first_usable);
    put64(h + 48, g->last_usable);
    memcpy(h + 56, g->disk_guid, 16);
    put64(h + 72, entries_lba);
    put32(h + 80, g->entry_count);
    put32(h + 84, 128);
    put32(h + 88, entries_crc);
    put32(h + 16, fmt_crc32(h, 92));
}

static void gpt_entry(uint8_t *e, const void *type, uint8_t id, uint64_t first, uint64_t last, const char *name)
{
    memcpy(e, type, 16);
    for (int i = 0; i < 16; i++)
        e[16 + i] = (uint8_t)(id * 16 + i);
    put64(e + 32, first);
    put64(e + 40, last);
    for (size_t i = 0; name[i] && i < 36; i++)
        e[56 + 2 * i] = (uint8_t)name[i];
}

/* ---- images ------------------------------------------------------------------------------- */

struct img {
    struct asr_writer *w;
    char path[4096];
    int level;
    uint32_t max_chunk;
};

static void img_begin(struct img *m, const char *name, uint32_t max_chunk, int level, uint64_t split)
{
    struct asr_writer_options o = {.split_size = split, .max_chunk_size = max_chunk, .overwrite = 1,
                                   .creator_version = "0.1.0", .fixed_identity = 1,
                                   .hash_seed = 0xf0221e5eedull, .created_unix = 1790000000};
    memcpy(o.uuid, "asrimg-fuzz-seed", 16);
    snprintf(m->path, sizeof m->path, "%s/image/%s.asrimg", outdir, name);
    m->level = level;
    m->max_chunk = max_chunk;
    check(asr_writer_create(m->path, &o, &m->w, &err), m->path);
}

static void img_end(struct img *m)
{
    check(asr_writer_finish(m->w, &err), m->path);
    asr_writer_free(m->w);
    struct stat st;
    if (stat(m->path, &st) != 0)
        die("%s: %s", m->path, strerror(errno));
    if ((uint64_t)st.st_size >= SEED_MAX)
        die("%s: %lld bytes, over the seed limit", m->path, (long long)st.st_size);
    printf("%s: %lld bytes\n", m->path, (long long)st.st_size);
}

/* Stores content as new chunks of at most max_chunk bytes placed at volume offset off; returns
 * the first chunk's id. */
static uint64_t put_data(struct img *m, uint32_t v, uint64_t off, const uint8_t *content, size_t n)
{
    static uint8_t enc[ASR_MAX_CHUNK_SIZE / 256];
    uint64_t first = UINT64_MAX;
    for (size_t at = 0; at < n; at += m->max_chunk) {
        size_t len = n - at < m->max_chunk ? n - at : m->max_chunk;
        struct asr_chunk c;
        uint64_t id;
        if (asr_chunk_bound(len) > sizeof enc)
            die("chunk of %zu bytes too large for a seed", len);
        check(asr_chunk_encode(content + at, len, m->level, asr_writer_hash_seed(m->w), enc, sizeof enc, &c, &err),
              "encode");
        check(asr_writer_append_chunk(m->w, &c, &id, &err), "append chunk");
        check(asr_writer_add_extent(m->w, v, off + at, len, id, 0, content + at, &err), "add extent");
        if (first == UINT64_MAX)
            first = id;
    }
    return first;
}

/* ---- a store snapshot ------------------------------------------------------------------------- */

static uint8_t snap_recs[64 * KIB]; /* the records fuzz_image.c's fake store serves */
static size_t snap_recs_len;

/* content as one chunk kept by the fake store (id: XXH3-64 of the content, then zeros), placed
 * at volume offset off. */
static uint64_t put_external(struct img *m, uint32_t v, uint64_t off, const uint8_t *content, size_t n)
{
    static uint8_t enc[ASR_MAX_CHUNK_SIZE / 256];
    struct asr_chunk c;
    uint64_t id;
    uint8_t sid[32] = {0};
    uint64_t h = XXH3_64bits(content, n);
    for (int i = 0; i < 8; i++)
        sid[i] = (uint8_t)(h >> (8 * i));
    check(asr_chunk_encode(content, n, m->level, asr_writer_hash_seed(m->w), enc, sizeof enc, &c, &err), "encode");
    size_t len = ASR_CHUNK_HEADER_SIZE + c.stored_len;
    if (snap_recs_len + 36 + len > sizeof snap_recs)
        die("snapshot records too large for a seed");
    uint8_t *e = snap_recs + snap_recs_len;
    memcpy(e, sid, 32);
    put32(e + 32, (uint32_t)len);
    struct fmt_chunk_header ch = {c.codec, 0, c.stored_len, c.content_len, c.content_hash,
                                  XXH3_64bits(c.stored, c.stored_len)};
    fmt_chunk_header_encode(&ch, e + 36);
    memcpy(e + 36 + ASR_CHUNK_HEADER_SIZE, c.stored, c.stored_len);
    snap_recs_len += 36 + len;
    check(asr_writer_append_external(m->w, sid, &c, &id, &err), "append external");
    check(asr_writer_add_extent(m->w, v, off, n, id, 0, content, &err), "add extent");
    return id;
}

static void add_bare_disk(struct img *m, uint64_t size);
static struct asr_volume_desc volume(uint32_t disk, uint32_t part, uint64_t off, uint64_t size, const char *fs);
static void add_volume(struct img *m, struct asr_volume_desc v);

/* A store snapshot (feature external-chunks) with its records, as fuzz_image.c reads it: "ASRSNAP1",
 * the snapshot's length (u32), the snapshot, the records. The snapshot alone is snapshot-bare. */
static void seed_snapshot(void)
{
    struct img m = {.level = 3, .max_chunk = 16 * KIB};
    struct asr_writer_options o = {.max_chunk_size = 16 * KIB, .overwrite = 1, .creator_version = "0.1.0",
                                   .fixed_identity = 1, .hash_seed = 0xf0221e5eedull, .created_unix = 1790000000,
                                   .external_chunks = 1};
    memcpy(o.uuid, "asrimg-fuzz-seed", 16);
    snprintf(m.path, sizeof m.path, "%s/image/snapshot-bare.asrimg", outdir);
    check(asr_writer_create(m.path, &o, &m.w, &err), m.path);
    add_bare_disk(&m, 256 * KIB);
    add_volume(&m, volume(0, 0, 0, 256 * KIB, "ext4"));
    static uint8_t text[8 * KIB], noise[3 * KIB];
    fill_text(text, sizeof text, 5);
    uint64_t first = put_external(&m, 0, 0, text, sizeof text);
    check(asr_writer_add_zero(m.w, 0, 8 * KIB, 56 * KIB, &err), "zero");
    fill_noise(noise, sizeof noise, 6);
    put_external(&m, 0, 64 * KIB, noise, sizeof noise);
    check(asr_writer_add_extent(m.w, 0, 128 * KIB, 2000, first, 100, text + 100, &err), "reference");
    check(asr_writer_add_unreadable(m.w, 0, 200 * KIB, 4 * KIB, &err), "unreadable");
    img_end(&m);
    FILE *f = fopen(m.path, "rb");
    static uint8_t snap[SEED_MAX];
    size_t n = f ? fread(snap, 1, sizeof snap, f) : 0;
    if (f)
        fclose(f);
    char path[4096];
    snprintf(path, sizeof path, "%s/image/snapshot.asrimg", outdir);
    uint8_t head[12] = "ASRSNAP1";
    put32(head + 8, (uint32_t)n);
    FILE *out = fopen(path, "wb");
    if (!n || !out || fwrite(head, 1, sizeof head, out) != sizeof head || fwrite(snap, 1, n, out) != n ||
        fwrite(snap_recs, 1, snap_recs_len, out) != snap_recs_len || fclose(out))
        die("%s: cannot write", path);
    printf("%s: %zu bytes\n", path, sizeof head + n + snap_recs_len);
}

/* ---- disk descriptions ---------------------------------------------------------------------- */

static struct asr_volume_desc volume(uint32_t disk, uint32_t part, uint64_t off, uint64_t size, const char *fs)
{
    struct asr_volume_desc v = {.disk_index = disk, .partition_number = part, .disk_offset = off,
                                .size_bytes = size, .used_bytes = size / 2, .block_size = 4096};
    snprintf(v.fs_type, sizeof v.fs_type, "%s", fs);
    snprintf(v.fs_uuid, sizeof v.fs_uuid, "%08x-fuzz", (unsigned)(disk * 16 + part));
    snprintf(v.fs_label, sizeof v.fs_label, "vol%u.%u", (unsigned)disk, (unsigned)part);
    return v;
}

/* A disk with no partition table; its one volume is the whole disk. */
static void add_bare_disk(struct img *m, uint64_t size)
{
    struct asr_disk_desc d = {.size_bytes = size, .logical_sector = 512, .physical_sector = 4096,
                              .label = ASR_LABEL_NONE};
    snprintf(d.source, sizeof d.source, "/dev/vdz");
    check(asr_writer_add_disk(m->w, &d, &err), "bare disk");
}

static struct asr_partition_desc gpt_part(uint32_t number, uint64_t start, uint64_t size, uint8_t capture)
{
    struct asr_partition_desc p = {.number = number, .kind = ASR_PART_GPT, .capture = capture,
                                   .start_bytes = start, .size_bytes = size, .attributes = number == 1 ? 1 : 0};
    for (int i = 0; i < 16; i++) {
        p.type_guid[i] = (uint8_t)(0xa0 + i + number);
        p.part_guid[i] = (uint8_t)(0x10 * number + i);
    }
    snprintf(p.name, sizeof p.name, "part-%u", (unsigned)number);
    return p;
}

/* A GPT disk of size bytes (512-byte sectors) with n partitions: its record and the five GPT raw
 * regions as a real disk holds them (protective MBR, both headers and entry arrays of 8 entries
 * at LBAs 2-3 and just before the backup header, CRCs right). */
struct gpt_disk {
    struct asr_disk_desc d;
    struct asr_region_desc r[5];
    uint8_t mbr[512], hdr[512], entries[1024], bentries[1024], bhdr[512];
};

static void gpt_seal(uint8_t *h)
{
    put32(h + 16, 0);
    put32(h + 16, fmt_crc32(h, 92));
}

static void gpt_disk(struct gpt_disk *g, uint64_t size, const struct asr_partition_desc *parts, uint32_t n)
{
    memset(g, 0, sizeof *g);
    uint64_t sectors = size / 512;
    g->d = (struct asr_disk_desc){.size_bytes = size, .logical_sector = 512, .physical_sector = 512,
                                  .label = ASR_LABEL_GPT, .gpt_first_usable_lba = 6,
                                  .gpt_last_usable_lba = sectors - 4, .gpt_entry_count = 8, .gpt_entry_size = 128,
                                  .partition_count = n, .partitions = parts, .region_count = 5, .regions = g->r};
    snprintf(g->d.source, sizeof g->d.source, "/dev/nvme0n1");
    for (int i = 0; i < 16; i++)
        g->d.disk_id[i] = (uint8_t)(0xd0 + i);
    fill_noise(g->mbr, 440, 77);
    mbr_entry(g->mbr + 446, 0, 0xee, 1, (uint32_t)(sectors - 1));
    g->mbr[510] = 0x55, g->mbr[511] = 0xaa;
    for (uint32_t i = 0; i < n; i++) {
        const struct asr_partition_desc *p = &parts[i];
        uint8_t *e = g->entries + 128 * (p->number - 1);
        gpt_entry(e, p->type_guid, (uint8_t)p->number, p->start_bytes / 512, (p->start_bytes + p->size_bytes) / 512 - 1,
                  p->name);
        put64(e + 48, p->attributes);
    }
    memcpy(g->bentries, g->entries, sizeof g->entries);
    struct gpt_fields f = {6, sectors - 4, 8, g->d.disk_id};
    uint32_t crc = fmt_crc32(g->entries, sizeof g->entries);
    gpt_header(g->hdr, &f, 1, sectors - 1, 2, crc);
    gpt_header(g->bhdr, &f, sectors - 1, 1, sectors - 3, crc);
    g->r[0] = (struct asr_region_desc){ASR_REGION_MBR, 0, 512, g->mbr};
    g->r[1] = (struct asr_region_desc){ASR_REGION_GPT_HEADER, 512, 512, g->hdr};
    g->r[2] = (struct asr_region_desc){ASR_REGION_GPT_ENTRIES, 1024, 1024, g->entries};
    g->r[3] = (struct asr_region_desc){ASR_REGION_GPT_BACKUP_ENTRIES, size - 1536, 1024, g->bentries};
    g->r[4] = (struct asr_region_desc){ASR_REGION_GPT_BACKUP_HEADER, size - 512, 512, g->bhdr};
}

static void add_gpt_disk(struct img *m, uint64_t size, const struct asr_partition_desc *parts, uint32_t n)
{
    static struct gpt_disk g;
    gpt_disk(&g, size, parts, n);
    check(asr_writer_add_disk(m->w, &g.d, &err), "gpt disk");
}

/* An MBR disk: primary 1, extended 2 holding logical 5 and 6, with sector 0 (its table right),
 * gap and EBR regions. */
struct mbr_disk {
    struct asr_disk_desc d;
    struct asr_partition_desc p[4];
    struct asr_region_desc r[4];
    uint8_t sector0[512], gap[1024], ebr[2][512];
};

static void mbr_disk(struct mbr_disk *m, uint64_t size)
{
    memset(m, 0, sizeof *m);
    uint64_t mib = 1024 * KIB;
    m->p[0] = (struct asr_partition_desc){.number = 1, .kind = ASR_PART_PRIMARY, .mbr_type = 0x0c, .bootable = 1,
                                          .capture = ASR_CAPTURE_USED, .start_bytes = mib, .size_bytes = mib};
    m->p[1] = (struct asr_partition_desc){.number = 2, .kind = ASR_PART_EXTENDED, .mbr_type = 0x05,
                                          .capture = ASR_CAPTURE_SKIP, .start_bytes = 2 * mib, .size_bytes = 2 * mib};
    m->p[2] = (struct asr_partition_desc){.number = 5, .kind = ASR_PART_LOGICAL, .mbr_type = 0x83,
                                          .capture = ASR_CAPTURE_FULL, .start_bytes = 2 * mib + 4 * KIB,
                                          .size_bytes = mib - 4 * KIB};
    m->p[3] = (struct asr_partition_desc){.number = 6, .kind = ASR_PART_LOGICAL, .mbr_type = 0x82,
                                          .capture = ASR_CAPTURE_HEADER, .start_bytes = 3 * mib + 4 * KIB,
                                          .size_bytes = mib - 4 * KIB};
    fill_noise(m->sector0, 440, 91);
    put32(m->sector0 + 440, 0x12345678);
    mbr_entry(m->sector0 + 446, 0x80, 0x0c, (uint32_t)(mib / 512), (uint32_t)(mib / 512));
    mbr_entry(m->sector0 + 462, 0, 0x05, (uint32_t)(2 * mib / 512), (uint32_t)(2 * mib / 512));
    m->sector0[510] = 0x55, m->sector0[511] = 0xaa;
    fill_noise(m->gap, sizeof m->gap, 92);
    mbr_entry(m->ebr[0] + 446, 0, 0x83, 8, (uint32_t)((mib - 4 * KIB) / 512));
    mbr_entry(m->ebr[0] + 462, 0, 0x05, (uint32_t)(mib / 512), (uint32_t)(mib / 512));
    mbr_entry(m->ebr[1] + 446, 0, 0x82, 8, (uint32_t)((mib - 4 * KIB) / 512));
    for (int i = 0; i < 2; i++)
        m->ebr[i][510] = 0x55, m->ebr[i][511] = 0xaa;
    m->r[0] = (struct asr_region_desc){ASR_REGION_MBR, 0, 512, m->sector0};
    m->r[1] = (struct asr_region_desc){ASR_REGION_GAP, 512, 1024, m->gap};
    m->r[2] = (struct asr_region_desc){ASR_REGION_EBR, 2 * mib, 512, m->ebr[0]};
    m->r[3] = (struct asr_region_desc){ASR_REGION_EBR, 3 * mib, 512, m->ebr[1]};
    m->d = (struct asr_disk_desc){.size_bytes = size, .logical_sector = 512, .physical_sector = 512,
                                  .label = ASR_LABEL_MBR, .disk_id = {0x78, 0x56, 0x34, 0x12},
                                  .partition_count = 4, .partitions = m->p, .region_count = 4, .regions = m->r};
    snprintf(m->d.source, sizeof m->d.source, "/dev/sda");
}

static void add_mbr_disk(struct img *m, uint64_t size)
{
    static struct mbr_disk d;
    mbr_disk(&d, size);
    check(asr_writer_add_disk(m->w, &d.d, &err), "mbr disk");
}

static void add_volume(struct img *m, struct asr_volume_desc v)
{
    check(asr_writer_add_volume(m->w, &v, NULL, &err), "volume");
}

/* ---- the image seeds ------------------------------------------------------------------------ */

static uint8_t buf_a[64 * KIB], buf_b[64 * KIB];

/* Data, zero and uncaptured ranges on one whole-disk volume. */
static void seed_data_zero(void)
{
    struct img m;
    img_begin(&m, "data-zero", 16 * KIB, 3, 0);
    add_bare_disk(&m, 256 * KIB);
    add_volume(&m, volume(0, 0, 0, 256 * KIB, "ext4"));
    fill_text(buf_a, 8 * KIB, 1);
    put_data(&m, 0, 0, buf_a, 8 * KIB);
    check(asr_writer_add_zero(m.w, 0, 8 * KIB, 56 * KIB, &err), "zero");
    fill_noise(buf_b, 3 * KIB, 2);
    put_data(&m, 0, 64 * KIB, buf_b, 3 * KIB);
    check(asr_writer_add_zero(m.w, 0, 128 * KIB, 64 * KIB, &err), "zero");
    fill_text(buf_a, 4 * KIB, 3);
    put_data(&m, 0, 252 * KIB, buf_a, 4 * KIB);
    img_end(&m);
}

/* Whole-chunk and unaligned references to chunks of the same and of another volume. */
static void seed_dedup(void)
{
    struct img m;
    img_begin(&m, "dedup", 16 * KIB, 3, 0);
    struct asr_partition_desc p[2] = {gpt_part(1, 8 * KIB, 256 * KIB, ASR_CAPTURE_USED),
                                      gpt_part(2, 264 * KIB, 128 * KIB, ASR_CAPTURE_FULL)};
    add_gpt_disk(&m, 512 * KIB, p, 2);
    add_volume(&m, volume(0, 1, 8 * KIB, 256 * KIB, "vfat"));
    add_volume(&m, volume(0, 2, 264 * KIB, 128 * KIB, "ext4"));
    fill_text(buf_a, 8 * KIB, 4);
    uint64_t ca = put_data(&m, 0, 0, buf_a, 8 * KIB);
    fill_noise(buf_b, 2 * KIB, 5);
    uint64_t cb = put_data(&m, 1, 0, buf_b, 2 * KIB);
    check(asr_writer_add_extent(m.w, 1, 4 * KIB, 3000, ca, 1000, buf_a + 1000, &err), "unaligned ref");
    check(asr_writer_add_extent(m.w, 0, 64 * KIB, 8 * KIB, ca, 0, buf_a, &err), "whole ref");
    check(asr_writer_add_extent(m.w, 0, 80 * KIB, 1 * KIB, cb, 512, buf_b + 512, &err), "cross-volume ref");
    check(asr_writer_add_extent(m.w, 1, 32 * KIB, 2 * KIB, cb, 0, buf_b, &err), "whole ref");
    check(asr_writer_add_unreadable(m.w, 1, 64 * KIB, 4 * KIB, &err), "unreadable");
    check(asr_writer_add_extent(m.w, 1, 68 * KIB, 1, ca, 8 * KIB - 1, buf_a + 8 * KIB - 1, &err), "last byte ref");
    img_end(&m);
}

/* Three disks (MBR with logical partitions, GPT, bare), raw regions, five volumes. */
static void seed_multi(void)
{
    struct img m;
    img_begin(&m, "multi-disk", 32 * KIB, 3, 0);
    uint64_t mib = 1024 * KIB;
    add_mbr_disk(&m, 4 * mib);
    struct asr_partition_desc p[3] = {gpt_part(1, 4 * KIB, 64 * KIB, ASR_CAPTURE_USED),
                                      gpt_part(2, 68 * KIB, 64 * KIB, ASR_CAPTURE_SKIP),
                                      gpt_part(3, 132 * KIB, 100 * KIB, ASR_CAPTURE_FULL)};
    add_gpt_disk(&m, 256 * KIB, p, 3);
    add_bare_disk(&m, 64 * KIB);
    add_volume(&m, volume(0, 1, mib, mib, "vfat"));
    add_volume(&m, volume(0, 5, 2 * mib + 4 * KIB, mib - 4 * KIB, "ext4"));
    add_volume(&m, volume(0, 6, 3 * mib + 4 * KIB, mib - 4 * KIB, "swap"));
    add_volume(&m, volume(1, 1, 4 * KIB, 64 * KIB, "exfat"));
    add_volume(&m, volume(1, 3, 132 * KIB, 100 * KIB, "ntfs"));
    add_volume(&m, volume(2, 0, 0, 64 * KIB, "xfs"));
    for (uint32_t v = 0; v < 6; v++) {
        fill_text(buf_a, 2 * KIB + v * 100, v);
        put_data(&m, v, 0, buf_a, 2 * KIB + v * 100);
        check(asr_writer_add_zero(m.w, v, 8 * KIB, 4 * KIB, &err), "zero");
    }
    img_end(&m);
}

/* max_chunk_size 4096: many chunks, two volumes interleaved so extent records alternate. */
static void seed_small_chunks(void)
{
    struct img m;
    img_begin(&m, "small-chunks", 4 * KIB, 3, 0);
    struct asr_partition_desc p[2] = {gpt_part(1, 4 * KIB, 96 * KIB, ASR_CAPTURE_USED),
                                      gpt_part(2, 100 * KIB, 96 * KIB, ASR_CAPTURE_USED)};
    add_gpt_disk(&m, 200 * KIB, p, 2);
    add_volume(&m, volume(0, 1, 4 * KIB, 96 * KIB, "ext4"));
    add_volume(&m, volume(0, 2, 100 * KIB, 96 * KIB, "ext4"));
    for (unsigned i = 0; i < 6; i++) {
        if (i % 3 == 2)
            fill_noise(buf_a, 4 * KIB + 700, i);
        else
            fill_text(buf_a, 4 * KIB + 700, i);
        put_data(&m, 0, i * 12 * KIB, buf_a, 4 * KIB + 700);
        fill_text(buf_b, 3 * KIB, i + 10);
        put_data(&m, 1, i * 16 * KIB + 5, buf_b, 3 * KIB);
    }
    img_end(&m);
}

/* The same plan with zstd chunks and with stored ones. */
static void seed_codec(const char *name, int level)
{
    struct img m;
    img_begin(&m, name, 32 * KIB, level, 0);
    add_bare_disk(&m, 1024 * KIB);
    add_volume(&m, volume(0, 0, 0, 1024 * KIB, "ext4"));
    size_t n = level ? 48 * KIB : 12 * KIB;
    fill_text(buf_a, n, 7);
    put_data(&m, 0, 4 * KIB, buf_a, n);
    fill_text(buf_b, 5 * KIB, 8);
    put_data(&m, 0, 900 * KIB, buf_b, 5 * KIB);
    img_end(&m);
}

/* Unreadable ranges between data and zeros, up to the volume's last byte. */
static void seed_unreadable(void)
{
    struct img m;
    img_begin(&m, "unreadable", 8 * KIB, 3, 0);
    add_bare_disk(&m, 128 * KIB);
    add_volume(&m, volume(0, 0, 0, 128 * KIB, "ntfs"));
    check(asr_writer_add_unreadable(m.w, 0, 0, 512, &err), "unreadable");
    fill_text(buf_a, 6 * KIB, 9);
    put_data(&m, 0, 512, buf_a, 6 * KIB);
    check(asr_writer_add_unreadable(m.w, 0, 6 * KIB + 512, 4096, &err), "unreadable");
    check(asr_writer_add_zero(m.w, 0, 16 * KIB, 16 * KIB, &err), "zero");
    check(asr_writer_add_unreadable(m.w, 0, 32 * KIB, 4096, &err), "unreadable");
    check(asr_writer_add_unreadable(m.w, 0, 127 * KIB, KIB, &err), "unreadable");
    img_end(&m);
}

/* A split set that fits in its first part (split size set, no IMAGE.002). */
static void seed_split_one_part(void)
{
    struct img m;
    img_begin(&m, "split-one-part", 16 * KIB, 0, ASR_MIN_SPLIT_SIZE);
    add_bare_disk(&m, 64 * KIB);
    add_volume(&m, volume(0, 0, 0, 64 * KIB, "vfat"));
    fill_text(buf_a, 20 * KIB, 11);
    put_data(&m, 0, 0, buf_a, 20 * KIB);
    img_end(&m);
    char second[4200];
    snprintf(second, sizeof second, "%s.002", m.path);
    if (access(second, F_OK) == 0)
        die("%s: written as more than one part", m.path);
}

/* Feature names from a later version: unknown compat and ro-compat bits (readable), or an
 * unknown incompat bit (refused). */
static void seed_features(const char *name, int incompat)
{
    struct img m;
    img_begin(&m, name, 8 * KIB, 3, 0);
    check(fmt_writer_declare_feature(m.w, ASR_FEATURE_COMPAT, 5, "fuzz-compat-names"), "feature");
    check(fmt_writer_declare_feature(m.w, ASR_FEATURE_RO_COMPAT, 63, "fuzz-ro"), "feature");
    if (incompat)
        check(fmt_writer_declare_feature(m.w, ASR_FEATURE_INCOMPAT, 2, "fuzz-incompat"), "feature");
    add_bare_disk(&m, 32 * KIB);
    add_volume(&m, volume(0, 0, 0, 32 * KIB, "btrfs"));
    fill_text(buf_a, 3 * KIB, 12);
    put_data(&m, 0, KIB, buf_a, 3 * KIB);
    img_end(&m);
}

/* A layout and nothing else: no volumes, no chunks. */
static void seed_empty(void)
{
    struct img m;
    img_begin(&m, "no-volumes", 0, 3, 0);
    struct asr_partition_desc p[1] = {gpt_part(1, 4 * KIB, 32 * KIB, ASR_CAPTURE_SKIP)};
    add_gpt_disk(&m, 64 * KIB, p, 1);
    img_end(&m);
}

/* ---- images that break a rule of SPEC.md sections 6 and 7 (every reader refuses them) ---- */

/* Two GPT partitions, both imaged, or the MBR disk with its primary and logicals imaged; bad()
 * may change anything before the layout is written unchecked, as a buggy or hostile writer would. */
static struct gpt_disk bad_gpt;
static struct mbr_disk bad_mbr;
static struct asr_partition_desc bad_parts[2];
static struct asr_volume_desc bad_vols[3];

static void seed_bad(const char *name, void (*bad)(uint32_t *nvols), bool mbr)
{
    struct img m;
    img_begin(&m, name, 8 * KIB, 3, 0);
    fmt_writer_unchecked_layout(m.w);
    uint32_t nvols = 2;
    if (mbr) {
        mbr_disk(&bad_mbr, 4096 * KIB);
        bad_vols[0] = volume(0, 1, 1024 * KIB, 1024 * KIB, "vfat");
        bad_vols[1] = volume(0, 5, 2052 * KIB, 1020 * KIB, "ext4");
        bad_vols[2] = volume(0, 6, 3076 * KIB, 1020 * KIB, "swap");
        nvols = 3;
    } else {
        bad_parts[0] = gpt_part(1, 8 * KIB, 128 * KIB, ASR_CAPTURE_USED);
        bad_parts[1] = gpt_part(2, 136 * KIB, 64 * KIB, ASR_CAPTURE_FULL);
        gpt_disk(&bad_gpt, 256 * KIB, bad_parts, 2);
        bad_vols[0] = volume(0, 1, 8 * KIB, 128 * KIB, "vfat");
        bad_vols[1] = volume(0, 2, 136 * KIB, 64 * KIB, "ext4");
    }
    bad(&nvols);
    check(asr_writer_add_disk(m.w, mbr ? &bad_mbr.d : &bad_gpt.d, &err), "disk");
    for (uint32_t v = 0; v < nvols; v++)
        add_volume(&m, bad_vols[v]);
    for (uint32_t v = 0; v < nvols; v++) {
        fill_text(buf_a, 2 * KIB, v + 20);
        put_data(&m, v, 0, buf_a, 2 * KIB);
    }
    img_end(&m);
}

/* Issue 12: partition 0 (the whole disk) on a partitioned disk. */
static void partition0_on_gpt(uint32_t *n) { (void)n, bad_vols[0].partition_number = 0; }

/* Issue 12: a primary GPT header, its CRC right, whose entry array is 4 TiB away. */
static void gpt_entries_4tib(uint32_t *n)
{
    (void)n;
    put64(bad_gpt.hdr + 72, 4ull << 31);
    gpt_seal(bad_gpt.hdr);
}

/* The records (and volumes) of the two partitions swapped; the GPT entries not. */
static void gpt_records_swapped(uint32_t *n)
{
    (void)n;
    bad_parts[0].start_bytes = bad_vols[0].disk_offset = 72 * KIB;
    bad_parts[1].start_bytes = bad_vols[1].disk_offset = 8 * KIB;
}

static void volumes_overlap(uint32_t *n)
{
    bad_vols[2] = bad_vols[1];
    *n = 3;
}

static void captured_without_volume(uint32_t *n) { *n = 1; }

/* Sector 0 places partition 1 a MiB after its record. */
static void mbr_entry_moved(uint32_t *n)
{
    (void)n;
    mbr_entry(bad_mbr.sector0 + 446, 0x80, 0x0c, 4096, 2048);
}

/* Logical 5 grown over the EBR of logical 6. */
static void logical_over_ebr(uint32_t *n)
{
    (void)n;
    bad_mbr.p[2].size_bytes = bad_vols[1].size_bytes = 1028 * KIB;
}

static void seed_bad_images(void)
{
    seed_bad("bad-partition0-on-gpt", partition0_on_gpt, false);
    seed_bad("bad-gpt-entries-4tib", gpt_entries_4tib, false);
    seed_bad("bad-gpt-records-swapped", gpt_records_swapped, false);
    seed_bad("bad-volumes-overlap", volumes_overlap, false);
    seed_bad("bad-captured-without-volume", captured_without_volume, false);
    seed_bad("bad-mbr-entry-moved", mbr_entry_moved, true);
    seed_bad("bad-volume-over-ebr", logical_over_ebr, true);
}

/* ---- the layout seeds: raw disks ----------------------------------------------------------- */

static uint8_t raw[64 * KIB]; /* the disk being built */


static void write_disk(const char *name, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/layout/%s.img", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(raw, 1, size, f) != size || fclose(f) != 0)
        die("%s: %s", path, strerror(errno));
    printf("%s: %zu bytes\n", path, size);
}

/* A FAT12 filesystem of n sectors at sector s: boot sector, two FATs, root directory. */
static void put_fat12(uint32_t s, uint32_t n, uint32_t hidden)
{
    uint8_t *b = raw + (size_t)s * 512;
    memcpy(b, "\xeb\x3c\x90MSWIN4.1", 11);
    put16(b + 11, 512);
    b[13] = 1;         /* sectors per cluster */
    put16(b + 14, 1);  /* reserved sectors */
    b[16] = 2;         /* FATs */
    put16(b + 17, 16); /* root entries */
    put16(b + 19, (uint16_t)n);
    b[21] = 0xf8;
    put16(b + 22, 1); /* sectors per FAT */
    put16(b + 24, 32);
    put16(b + 26, 2);
    put32(b + 28, hidden);
    b[36] = 0x80;
    b[38] = 0x29;
    put32(b + 39, 0x1234abcd);
    memcpy(b + 43, "FUZZFAT    FAT12   ", 19);
    b[510] = 0x55, b[511] = 0xaa;
    for (int f = 1; f <= 2; f++)
        memcpy(b + 512 * f, "\xf8\xff\xff", 3);
    memcpy(b + 512 * 3, "FUZZFAT    \x08", 12); /* volume label entry */
}

/* Linux swap (version 1) in n sectors at sector s, with a 4096-byte page. */
static void put_swap(uint32_t s, uint32_t n)
{
    uint8_t *b = raw + (size_t)s * 512;
    put32(b + 1024, 1);                /* version */
    put32(b + 1028, n / 8 - 1);        /* last page */
    memcpy(b + 1036, "fuzzswapuuid0001", 16);
    memcpy(b + 1052, "fuzzswap", 8);
    memcpy(b + 4086, "SWAPSPACE2", 10);
}

/* 128 sectors: primary 1 (FAT12), extended 2 holding logical 5 (ext-typed) and 6 (swap). */
static void seed_mbr_disk(void)
{
    memset(raw, 0, sizeof raw);
    put32(raw + 440, 0x1234fedc);
    mbr_entry(raw + 446, 0x80, 0x01, 8, 24);  /* primary 1: sectors 8..31 */
    mbr_entry(raw + 462, 0x00, 0x05, 32, 96); /* extended 2: sectors 32..127 */
    raw[510] = 0x55, raw[511] = 0xaa;
    uint8_t *ebr1 = raw + 32 * 512, *ebr2 = raw + 42 * 512;
    mbr_entry(ebr1 + 446, 0, 0x83, 2, 8);   /* logical 5: sectors 34..41 */
    mbr_entry(ebr1 + 462, 0, 0x05, 10, 86); /* next EBR at 32 + 10 */
    ebr1[510] = 0x55, ebr1[511] = 0xaa;
    mbr_entry(ebr2 + 446, 0, 0x82, 2, 84);  /* logical 6: sectors 44..127 */
    ebr2[510] = 0x55, ebr2[511] = 0xaa;
    put_fat12(8, 24, 8);
    put_swap(44, 84);
    write_disk("mbr-ebr", sizeof raw);
}

/* 128 sectors: protective MBR, GPT with an EFI System partition (FAT12) and a Linux one. */
static void seed_gpt_disk(void)
{
    static const char esp[] = "\x28\x73\x2a\xc1\x1f\xf8\xd2\x11\xba\x4b\x00\xa0\xc9\x3e\xc9\x3b";
    static const char linux_fs[] = "\xaf\x3d\xc6\x0f\x83\x84\x72\x47\x8e\x79\x3d\x69\xd8\x47\x7d\xe4";
    memset(raw, 0, sizeof raw);
    mbr_entry(raw + 446, 0, 0xee, 1, 127);
    raw[510] = 0x55, raw[511] = 0xaa;
    uint8_t *entries = raw + 2 * 512;
    gpt_entry(entries, esp, 1, 34, 63, "EFI System");
    gpt_entry(entries + 128, linux_fs, 2, 64, 94, "root");
    uint32_t crc = fmt_crc32(entries, 128 * 128);
    memcpy(raw + 95 * 512, entries, 128 * 128);
    uint8_t guid[16];
    for (int i = 0; i < 16; i++)
        guid[i] = (uint8_t)(0xd0 + i);
    struct gpt_fields g = {34, 94, 128, guid};
    gpt_header(raw + 512, &g, 1, 127, 2, crc);
    gpt_header(raw + 127 * 512, &g, 127, 1, 95, crc);
    put_fat12(34, 30, 34);
    write_disk("gpt", sizeof raw);
}

/* A FAT12 filesystem on the whole disk, no partition table. */
static void seed_bare_disk(void)
{
    memset(raw, 0, sizeof raw);
    put_fat12(0, 64, 0);
    write_disk("bare-fat", 32 * KIB);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR   (writes DIR/image/*.asrimg and DIR/layout/*.img)\n");
        return 2;
    }
    outdir = argv[1];
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/image", outdir);
    mkdir(sub, 0755);
    snprintf(sub, sizeof sub, "%s/layout", outdir);
    mkdir(sub, 0755);
    seed_data_zero();
    seed_dedup();
    seed_multi();
    seed_small_chunks();
    seed_codec("zstd-level3", 3);
    seed_codec("stored-level0", 0);
    seed_unreadable();
    seed_split_one_part();
    seed_features("later-version-readable", 0);
    seed_features("later-version-incompat", 1);
    seed_empty();
    seed_snapshot();
    seed_bad_images();
    seed_mbr_disk();
    seed_gpt_disk();
    seed_bare_disk();
    return 0;
}
