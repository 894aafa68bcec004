/* asrimg-bigimage: writes a synthetic image of a large disk for bench/mount.sh's lazy-open rows:
 * one disk of GIB GiB without a partition table, captured whole by distinct chunks of CHUNK_KIB
 * KiB (each names its number in its first bytes, the rest a repeating pattern), one extent each.
 * Its index is what a real backup of that much used data has: 32 bytes a chunk and 32 an extent
 * (256 MiB for 1 TiB of 256 KiB chunks), while the file stays small (the chunks compress to a few
 * dozen bytes), so it is made in minutes. Usage: asrimg-bigimage PATH GIB [CHUNK_KIB] */
#include "asr_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const struct asr_error *err)
{
    fprintf(stderr, "asrimg-bigimage: %s: %s\n", what, err->msg);
    return 1;
}

static int write_image(const char *path, uint64_t disk_bytes, uint32_t chunk_bytes, uint8_t *content, uint8_t *enc,
                       size_t enc_cap)
{
    struct asr_writer_options o = {.max_chunk_size = chunk_bytes, .overwrite = true};
    struct asr_writer *w = NULL;
    struct asr_error err = {0};
    if (asr_writer_create(path, &o, &w, &err))
        return fail("create", &err);
    struct asr_disk_desc disk = {.size_bytes = disk_bytes, .logical_sector = 512, .physical_sector = 4096};
    snprintf(disk.source, sizeof disk.source, "synthetic");
    struct asr_volume_desc v = {.size_bytes = disk_bytes, .used_bytes = disk_bytes, .block_size = 4096};
    snprintf(v.fs_type, sizeof v.fs_type, "raw");
    struct asr_chunk_encoder *e = NULL;
    int rc = asr_writer_add_disk(w, &disk, &err) || asr_writer_add_volume(w, &v, NULL, &err) ||
             asr_chunk_encoder_new(1, &e, &err);
    uint64_t seed = asr_writer_hash_seed(w), n = disk_bytes / chunk_bytes;
    for (uint64_t i = 0; !rc && i < n; i++) {
        memcpy(content, &i, sizeof i);
        struct asr_chunk c;
        uint64_t id;
        rc = asr_chunk_encoder_run(e, content, chunk_bytes, asr_content_hash(seed, content, chunk_bytes), enc, enc_cap,
                                   &c, &err) ||
             asr_writer_append_chunk(w, &c, &id, &err) ||
             asr_writer_add_extent(w, 0, i * chunk_bytes, chunk_bytes, id, 0, content, &err);
        if (i % 65536 == 0)
            fprintf(stderr, "\rasrimg-bigimage: %llu of %llu chunks", (unsigned long long)i, (unsigned long long)n);
    }
    if (!rc)
        rc = asr_writer_finish(w, &err);
    fprintf(stderr, "\n");
    asr_chunk_encoder_free(e);
    asr_writer_free(w);
    return rc ? fail(path, &err) : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: asrimg-bigimage PATH GIB [CHUNK_KIB]\n");
        return 2;
    }
    uint64_t gib = strtoull(argv[2], NULL, 10), kib = argc > 3 ? strtoull(argv[3], NULL, 10) : 256;
    if (!gib || gib > 16384 || kib < 4 || kib > 16384 || (kib & (kib - 1))) {
        fprintf(stderr, "asrimg-bigimage: GIB 1 to 16384, CHUNK_KIB a power of two from 4 to 16384\n");
        return 2;
    }
    uint32_t chunk_bytes = (uint32_t)(kib << 10);
    size_t enc_cap = asr_chunk_bound(chunk_bytes);
    uint8_t *content = malloc(chunk_bytes), *enc = malloc(enc_cap);
    if (!content || !enc) {
        fprintf(stderr, "asrimg-bigimage: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < chunk_bytes; i++)
        content[i] = (uint8_t)("a big image for the lazy index "[i % 31]);
    int rc = write_image(argv[1], gib << 30, chunk_bytes, content, enc, enc_cap);
    free(content);
    free(enc);
    return rc;
}
