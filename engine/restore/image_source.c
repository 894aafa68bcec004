/* The image a restore reads, opened once whichever way it comes: a file or split set (the reader,
 * its index giving every volume's extents up front), or a stream from a pipe (the layout first, a
 * volume's extents only as its data passes, noted here by the stream pass for --verify). The
 * restore, its checks and plan, the comparison and the command ask the image; only the two
 * passes that read the data (restore_file.c, restore_stream.c) take the reader or the stream. */
#include "asr_store.h"
#include "grow.h"
#include "image_source.h"

#include <stdlib.h>
#include <string.h>

/* Extents of one volume as a streamed restore met them. */
struct extent_list {
    struct asr_extent *v;
    uint64_t n;
    size_t cap;
};

struct asr_image {
    struct asr_reader *r; /* a file or split set; NULL for a stream */
    struct asr_stream *s; /* a stream; NULL for a file */
    char *path;           /* the file's, or NULL */
    bool owned;           /* r or s is closed with the image */
    struct asr_store_ref *ref; /* a store snapshot: owns r and its store */
    struct extent_list *seen; /* per volume, for a stream */
};

static int wrap(struct asr_reader *r, struct asr_stream *s, const char *path, bool owned, struct asr_image **out,
                struct asr_error *err)
{
    struct asr_image *im = calloc(1, sizeof *im);
    bool ok = im && (!path || (im->path = strdup(path)));
    /* One more than the volumes: calloc(0) may give NULL, which would read as out of memory. */
    if (ok && s)
        ok = (im->seen = calloc(asr_stream_volume_count(s) + 1, sizeof *im->seen)) != NULL;
    if (!ok) {
        if (im)
            free(im->path);
        free(im);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    im->r = r;
    im->s = s;
    im->owned = owned;
    *out = im;
    return ASR_OK;
}

int image_borrow(struct asr_reader *r, struct asr_stream *s, const char *path, struct asr_image **out,
                 struct asr_error *err)
{
    *out = NULL;
    return wrap(r, s, path, false, out, err);
}

/* STORE::SNAPSHOT: the snapshot's reader, chunks read from the store. */
static int open_snapshot(const char *ref, struct asr_image **out, struct asr_error *err)
{
    struct asr_store_ref *sr = NULL;
    int rc = asr_store_ref_open(ref, &sr, err);
    if (!rc && (rc = wrap(asr_store_ref_reader(sr), NULL, asr_store_ref_name(sr), false, out, err)))
        asr_store_ref_free(sr);
    if (!rc)
        (*out)->ref = sr;
    return rc;
}

int asr_image_open(const char *path, struct asr_image **out, struct asr_error *err)
{
    struct asr_reader *r = NULL;
    *out = NULL;
    if (asr_store_is_ref(path))
        return open_snapshot(path, out, err);
    int rc = asr_reader_open(path, &r, err);
    if (!rc && (rc = wrap(r, NULL, path, true, out, err)))
        asr_reader_free(r);
    return rc;
}

int asr_image_open_stream(int fd, const char *name, struct asr_image **out, struct asr_error *err)
{
    struct asr_stream *s = NULL;
    *out = NULL;
    int rc = asr_stream_open_fd(fd, name, &s, err);
    if (!rc && (rc = wrap(NULL, s, NULL, true, out, err)))
        asr_stream_free(s);
    return rc;
}

void asr_image_free(struct asr_image *im)
{
    if (!im)
        return;
    if (im->seen)
        for (uint32_t v = 0; v < asr_image_volume_count(im); v++)
            free(im->seen[v].v);
    free(im->seen);
    if (im->owned) {
        asr_reader_free(im->r);
        asr_stream_free(im->s);
    }
    asr_store_ref_free(im->ref);
    free(im->path);
    free(im);
}

bool asr_image_is_stream(const struct asr_image *im) { return im->s != NULL; }
struct asr_reader *image_reader(const struct asr_image *im) { return im->r; }
struct asr_stream *image_stream(const struct asr_image *im) { return im->s; }
const char *image_path(const struct asr_image *im) { return im->path; }

const struct asr_image_info *asr_image_info(const struct asr_image *im)
{
    return im->r ? asr_reader_info(im->r) : asr_stream_info(im->s);
}

uint32_t asr_image_disk_count(const struct asr_image *im)
{
    return im->r ? asr_reader_disk_count(im->r) : asr_stream_disk_count(im->s);
}

const struct asr_disk_desc *asr_image_disk(const struct asr_image *im, uint32_t i)
{
    return im->r ? asr_reader_disk(im->r, i) : asr_stream_disk(im->s, i);
}

uint32_t asr_image_volume_count(const struct asr_image *im)
{
    return im->r ? asr_reader_volume_count(im->r) : asr_stream_volume_count(im->s);
}

const struct asr_volume_desc *asr_image_volume(const struct asr_image *im, uint32_t i)
{
    return im->r ? asr_reader_volume(im->r, i) : asr_stream_volume(im->s, i);
}

uint32_t asr_image_stack_count(const struct asr_image *im)
{
    return im->r ? asr_reader_stack_count(im->r) : asr_stream_stack_count(im->s);
}

const struct asr_stack_desc *asr_image_stack(const struct asr_image *im, uint32_t i)
{
    return im->r ? asr_reader_stack(im->r, i) : asr_stream_stack(im->s, i);
}

const struct asr_machine_desc *asr_image_machine(const struct asr_image *im)
{
    return im->r ? asr_reader_machine(im->r) : asr_stream_machine(im->s);
}

const struct asr_volume_stats *asr_image_volume_stats(const struct asr_image *im, uint32_t i)
{
    return im->r ? asr_reader_volume_stats(im->r, i) : asr_stream_volume_stats(im->s, i);
}

const struct asr_extent *image_extents(const struct asr_image *im, uint32_t v, uint64_t *n)
{
    if (im->r)
        return asr_reader_extents(im->r, v, n);
    *n = im->seen[v].n;
    return im->seen[v].v;
}

int image_note_extent(struct asr_image *im, uint32_t v, const struct asr_extent *e, struct asr_error *err)
{
    struct extent_list *l = &im->seen[v];
    struct asr_extent *g = asr_grow(l->v, &l->cap, l->n + 1, sizeof *g, 256);
    if (!g)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    l->v = g;
    l->v[l->n++] = *e;
    return ASR_OK;
}
