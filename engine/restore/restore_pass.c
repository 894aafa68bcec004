/* What the file pass (restore_file.c) and the stream pass (restore_stream.c) share: sending the
 * data to the targets of one disk at a time, listing what the image cannot give, and how many
 * workers decode. */
#include "grow.h"
#include "image_source.h"
#include "restore_pass.h"

#include <stdlib.h>
#include <unistd.h>

static int add_range(struct asr_restore_range **v, size_t *n, size_t *cap, struct asr_restore_range r,
                     struct asr_error *err)
{
    if (*n && (*v)[*n - 1].volume == r.volume && (*v)[*n - 1].chunk == r.chunk &&
        (*v)[*n - 1].offset + (*v)[*n - 1].length == r.offset) {
        (*v)[*n - 1].length += r.length;
        return ASR_OK;
    }
    struct asr_restore_range *g = asr_grow(*v, cap, *n + 1, sizeof *g, 16);
    if (!g)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    *v = g;
    (*v)[(*n)++] = r;
    return ASR_OK;
}

int restore_pass_disk(struct restore_pass *p, uint32_t disk)
{
    if (p->have_disk && p->disk == disk)
        return ASR_OK;
    /* What is staged for the previous disk goes to its targets before the group array changes. */
    int rc = restore_mirror_flush(p->m);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < p->rs->n; i++)
        if (p->rs->t[i].info.disk_index == disk)
            p->group[n++] = &p->rs->t[i];
    p->disk = disk;
    p->have_disk = true;
    return restore_mirror_targets(p->m, p->group, n);
}

int restore_pass_lost(struct restore_pass *p, uint32_t volume, const struct asr_extent *e, uint64_t ref,
                      struct asr_error *err)
{
    const struct asr_volume_desc *vd = asr_image_volume(p->rs->im, volume);
    struct asr_restore_range r = {volume, e->offset, e->length, ref};
    int rc = ref == ASR_REF_UNREADABLE
                 ? add_range(&p->st->unreadable, &p->st->unreadable_count, &p->unreadable_cap, r, err)
                 : add_range(&p->st->damaged, &p->st->damaged_count, &p->damaged_cap, r, err);
    return rc ? rc : restore_mirror_zero(p->m, vd->disk_offset + e->offset, e->length);
}

unsigned restore_worker_count(unsigned asked)
{
    if (asked)
        return asked > 64 ? 64 : asked;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}
