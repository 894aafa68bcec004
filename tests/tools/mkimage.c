/* asrimg-mkimage: packs a raw disk image file into an .asrimg as one full-capture volume with
 * fixed-size chunks, all-zero chunks elided and identical chunks stored once. It exercises the
 * format writer end to end for the sample job and test fixtures until the backup engine exists;
 * it knows nothing of partitions or filesystems. */
#include "asr_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct seen {
    struct asr_hash128 *keys;
    uint64_t *ids;
    size_t cap, used;
};

static uint64_t *seen_find(struct seen *s, struct asr_hash128 h, int *found)
{
    size_t i = (size_t)h.lo & (s->cap - 1);
    while (s->ids[i] != UINT64_MAX && !(s->keys[i].lo == h.lo && s->keys[i].hi == h.hi))
        i = (i + 1) & (s->cap - 1);
    *found = s->ids[i] != UINT64_MAX;
    s->keys[i] = h;
    return &s->ids[i];
}

static int is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int fail(const char *what, const struct asr_error *e)
{
    fprintf(stderr, "asrimg-mkimage: error: %s: %s\n", what, e ? e->msg : strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    struct asr_writer_options opt = {0};
    int level = 3;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-o") && a + 1 < argc)
            out = argv[++a];
        else if (!strcmp(argv[a], "--split") && a + 1 < argc)
            opt.split_size = strtoull(argv[++a], NULL, 0);
        else if (!strcmp(argv[a], "--chunk") && a + 1 < argc)
            opt.max_chunk_size = (uint32_t)strtoul(argv[++a], NULL, 0);
        else if (!strcmp(argv[a], "--level") && a + 1 < argc)
            level = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--force"))
            opt.overwrite = 1;
        else if (!strcmp(argv[a], "--deterministic")) {
            opt.fixed_identity = 1;
            memcpy(opt.uuid, "asrimg-fixture!!", 16);
            opt.hash_seed = 0x5eed;
            opt.created_unix = 1700000000;
        } else if (!in)
            in = argv[a];
        else
            out = NULL, in = NULL, a = argc;
    }
    if (!in || !out) {
        fprintf(stderr, "usage: asrimg-mkimage DISK -o IMAGE [--split BYTES] [--chunk BYTES] [--level N] "
                        "[--force] [--deterministic]\n");
        return 2;
    }
    int fd = open(in, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return fail(in, NULL);
    struct asr_error err = {0};
    struct asr_writer *w;
    if (asr_writer_create(out, &opt, &w, &err))
        return fail("create", &err);
    struct asr_disk_desc disk = {.size_bytes = (uint64_t)st.st_size, .logical_sector = 512, .physical_sector = 512};
    snprintf(disk.source, sizeof disk.source, "%s", in);
    struct asr_volume_desc vol = {.size_bytes = (uint64_t)st.st_size, .used_bytes = (uint64_t)st.st_size};
    snprintf(vol.fs_type, sizeof vol.fs_type, "raw");
    uint32_t vid;
    uint32_t chunk = asr_writer_max_chunk_size(w);
    uint8_t *buf = malloc(chunk), *enc = malloc(asr_chunk_bound(chunk));
    struct seen seen = {calloc(1u << 16, sizeof(struct asr_hash128)), malloc((1u << 16) * sizeof(uint64_t)), 1u << 16, 0};
    int rc = !buf || !enc || !seen.keys || !seen.ids;
    if (!rc)
        memset(seen.ids, 0xff, seen.cap * sizeof(uint64_t));
    if (!rc && (asr_writer_add_disk(w, &disk, &err) || asr_writer_add_volume(w, &vol, &vid, &err)))
        rc = fail("layout", &err);
    for (uint64_t off = 0; !rc && off < (uint64_t)st.st_size; off += chunk) {
        size_t n = (uint64_t)st.st_size - off < chunk ? (size_t)((uint64_t)st.st_size - off) : chunk;
        if (pread(fd, buf, n, (off_t)off) != (ssize_t)n) {
            rc = fail("read", NULL);
            break;
        }
        if (is_zero(buf, n)) {
            if (asr_writer_add_zero(w, vid, off, n, &err))
                rc = fail("zero", &err);
            continue;
        }
        struct asr_chunk c;
        if (asr_chunk_encode(buf, n, level, asr_writer_hash_seed(w), enc, asr_chunk_bound(chunk), &c, &err)) {
            rc = fail("encode", &err);
            break;
        }
        int found = 0;
        uint64_t *slot = seen.used < seen.cap / 2 ? seen_find(&seen, c.content_hash, &found) : NULL;
        uint64_t id = found ? *slot : 0;
        if (!found && asr_writer_append_chunk(w, &c, &id, &err)) {
            rc = fail("chunk", &err);
            break;
        }
        if (slot && !found) {
            *slot = id;
            seen.used++;
        }
        if (asr_writer_add_extent(w, vid, off, n, id, 0, buf, &err))
            rc = fail("extent", &err);
    }
    if (!rc && asr_writer_finish(w, &err))
        rc = fail("finish", &err);
    asr_writer_free(w);
    free(buf);
    free(enc);
    free(seen.keys);
    free(seen.ids);
    close(fd);
    return rc;
}
