/* Snapshot objects as the store keeps them (SPEC.md 19.6): the snapshot's stream compressed as one
 * zstd frame. Most of a snapshot is tables that compress well (extents, the layout's raw regions,
 * often a megabyte of zeros before the first partition), while the chunk ids in it do not; a
 * re-backup of an unchanged disk adds only its snapshot, so its size is what that backup costs.
 * Reading caps the decompressed size: the bytes come from the store, untrusted. Also the fetch of
 * a snapshot by name into a local file. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define SNAPSHOT_LEVEL 3
#define IO_BYTES (1u << 20)
/* A snapshot holds at most the layout (128 MiB), the volume table (4 MiB), the store ids of the
 * chunks an index of at most 1 GiB can list (16 Mi chunks: 512 MiB), the index and a little more
 * (SPEC.md section 15). */
#define SNAPSHOT_MAX ((uint64_t)2 << 30)

static int io_fail(struct asr_error *err, const char *what, const char *path)
{
    return store_fail(err, ASR_E_IO, "%s %s: %s", what, path, errno ? strerror(errno) : "short write");
}

int store_snapshot_pack(const char *from, const char *to, struct asr_error *err)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    uint8_t *ib = malloc(IO_BYTES), *ob = malloc(ZSTD_CStreamOutSize());
    int rc = ASR_OK;
    if (!in || !out)
        rc = io_fail(err, "cannot open", !in ? from : to);
    else if (!cc || !ib || !ob)
        rc = store_fail(err, ASR_E_NOMEM, "out of memory compressing a snapshot");
    else
        ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, SNAPSHOT_LEVEL);
    for (bool last = false; !rc && !last;) {
        size_t n = fread(ib, 1, IO_BYTES, in);
        if (ferror(in)) {
            rc = io_fail(err, "cannot read", from);
            break;
        }
        last = n < IO_BYTES;
        ZSTD_inBuffer zin = {ib, n, 0};
        size_t left;
        do {
            ZSTD_outBuffer zout = {ob, ZSTD_CStreamOutSize(), 0};
            left = ZSTD_compressStream2(cc, &zout, &zin, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left))
                rc = store_fail(err, ASR_E_IO, "compressing snapshot %s: %s", from, ZSTD_getErrorName(left));
            else if (fwrite(ob, 1, zout.pos, out) != zout.pos)
                rc = io_fail(err, "cannot write", to);
        } while (!rc && (last ? left != 0 : zin.pos < zin.size));
    }
    if (out && fclose(out) && !rc)
        rc = io_fail(err, "cannot write", to);
    if (in)
        fclose(in);
    ZSTD_freeCCtx(cc);
    free(ib);
    free(ob);
    return rc;
}

int store_snapshot_unpack(const char *from, const char *to, const char *name, struct asr_error *err)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    uint8_t *ib = malloc(ZSTD_DStreamInSize()), *ob = malloc(ZSTD_DStreamOutSize());
    int rc = ASR_OK;
    uint64_t total = 0;
    size_t pending = 1; /* ZSTD_decompressStream's hint: 0 once a frame is complete */
    if (!in || !out)
        rc = io_fail(err, "cannot open", !in ? from : to);
    else if (!dc || !ib || !ob)
        rc = store_fail(err, ASR_E_NOMEM, "out of memory reading snapshot %s", name);
    while (!rc) {
        size_t n = fread(ib, 1, ZSTD_DStreamInSize(), in);
        if (ferror(in)) {
            rc = io_fail(err, "cannot read", from);
            break;
        }
        if (!n)
            break;
        ZSTD_inBuffer zin = {ib, n, 0};
        while (!rc && zin.pos < zin.size) {
            ZSTD_outBuffer zout = {ob, ZSTD_DStreamOutSize(), 0};
            pending = ZSTD_decompressStream(dc, &zout, &zin);
            total += zout.pos;
            if (ZSTD_isError(pending))
                rc = store_fail(err, ASR_E_CORRUPT, "snapshot %s is damaged: %s", name, ZSTD_getErrorName(pending));
            else if (total > SNAPSHOT_MAX)
                rc = store_fail(err, ASR_E_LIMIT, "snapshot %s unpacks to more than %llu bytes", name,
                                (unsigned long long)SNAPSHOT_MAX);
            else if (fwrite(ob, 1, zout.pos, out) != zout.pos)
                rc = io_fail(err, "cannot write", to);
        }
    }
    if (!rc && pending != 0)
        rc = store_fail(err, ASR_E_CORRUPT, "snapshot %s is truncated (its zstd frame does not end)", name);
    if (out && fclose(out) && !rc)
        rc = io_fail(err, "cannot write", to);
    if (in)
        fclose(in);
    ZSTD_freeDCtx(dc);
    free(ib);
    free(ob);
    return rc;
}

int asr_store_fetch_snapshot(struct asr_store *s, const char *name, const char *path, struct asr_error *err)
{
    char host[STORE_HOST_MAX + 1], key[STORE_KEY_NAME_MAX];
    int64_t t;
    if (store_snapshot_name_parse(name, host, &t) < 0)
        return store_fail(err, ASR_E_ARG, "%s: \"%s\" is not a snapshot name (HOST/YYYYmmddTHHMMSSZ)", s->b->url,
                          name);
    snprintf(key, sizeof key, "snapshots/%s", name);
    char packed[PATH_MAX];
    if (snprintf(packed, sizeof packed, "%s.zst", path) >= (int)sizeof packed)
        return store_fail(err, ASR_E_ARG, "%s: a path too long", path);
    bool missing = false;
    struct asr_error e2 = {0};
    int rc = s->b->ops->get_file(s->b, key, packed, &missing, &e2);
    if (rc && missing)
        rc = store_fail(err, ASR_E_ARG, "%s: no snapshot %s", s->b->url, name);
    else if (rc)
        rc = store_fail(err, rc, "%s", e2.msg);
    else
        rc = store_snapshot_unpack(packed, path, name, err);
    unlink(packed);
    return rc;
}
