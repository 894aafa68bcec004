/* The disk layout of a restore: the raw boot regions written back byte-exact (sector 0 with its
 * boot code and signature, the post-MBR gap, GPT structures, EBRs), then libfdisk wherever the
 * table itself must change: a GPT on a larger disk gets its backup header and entries moved to
 * the real end with fresh CRCs (libfdisk relocates them when it finds them short of the end, and
 * updates the protective MBR's size), --new-ids gives fresh disk and partition identifiers,
 * --grow extends the last partition (and the extended one around it). Everything else of the
 * table stays as the image has it. */
#include "restore_layout.h"

#include <errno.h>
#include <fcntl.h>
#include <libfdisk/libfdisk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

uint64_t restore_table_tail(const struct asr_disk_desc *d)
{
    if (d->label != ASR_LABEL_GPT)
        return 0;
    uint64_t ss = d->logical_sector;
    uint64_t entries = ((uint64_t)d->gpt_entry_count * d->gpt_entry_size + ss - 1) / ss;
    return (1 + entries) * ss;
}

static bool same_size(const struct restore_target *t, const struct asr_disk_desc *d)
{
    return t->info.size_bytes == d->size_bytes;
}

static int write_regions(struct restore_target *t, const struct asr_disk_desc *d, struct asr_restore_stats *st,
                         bool count, struct asr_error *err)
{
    for (uint32_t i = 0; i < d->region_count; i++) {
        const struct asr_region_desc *g = &d->regions[i];
        bool backup = g->kind == ASR_REGION_GPT_BACKUP_ENTRIES || g->kind == ASR_REGION_GPT_BACKUP_HEADER;
        if (backup && !same_size(t, d))
            continue; /* libfdisk writes them at the new end */
        int rc = target_pwrite(t, g->data, g->length, g->offset, err);
        if (rc)
            return rc;
        if (count)
            st->region_bytes += g->length;
    }
    return ASR_OK;
}

/* A target that held a GPT keeps its backup header in its last sector; restoring a disk without
 * a GPT (or a GPT whose end is elsewhere) must not leave that behind for tools to find. */
static int clear_stale_backup_gpt(struct restore_target *t, const struct asr_disk_desc *d, struct asr_error *err)
{
    uint32_t ss = t->info.logical_sector;
    if (d->label == ASR_LABEL_GPT && !same_size(t, d))
        return ASR_OK; /* libfdisk writes the new one there */
    if (d->label == ASR_LABEL_GPT || t->info.size_bytes < 2 * (uint64_t)ss)
        return ASR_OK;
    uint8_t *sector = calloc(1, ss);
    if (!sector)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    int rc = target_read(t, t->info.size_bytes - ss, sector, ss, err);
    if (!rc && !memcmp(sector, "EFI PART", 8)) {
        memset(sector, 0, ss);
        rc = target_pwrite(t, sector, ss, t->info.size_bytes - ss, err);
    }
    free(sector);
    return rc;
}

static int fdisk_fail(struct asr_error *err, const char *path, const char *what, int e)
{
    return asr_fail_public(err, ASR_E_IO, "partition table of %s: %s: %s", path, what, strerror(e < 0 ? -e : e));
}

static void random_guid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_upper(u, out);
}

static int new_ids(struct fdisk_context *cxt, const struct restore_target *t, const struct asr_disk_desc *d,
                   struct asr_error *err)
{
    char id[37];
    if (d->label == ASR_LABEL_GPT) {
        random_guid(id);
    } else {
        uint32_t sig;
        uuid_t u;
        uuid_generate_random(u);
        memcpy(&sig, u, sizeof sig);
        snprintf(id, sizeof id, "0x%08x", sig ? sig : 1u);
    }
    int e = fdisk_set_disklabel_id_from_string(cxt, id);
    if (e)
        return fdisk_fail(err, t->path, "cannot set a new disk identifier", e);
    if (d->label != ASR_LABEL_GPT)
        return ASR_OK;
    for (size_t i = 0; i < fdisk_get_npartitions(cxt); i++) {
        if (!fdisk_is_partition_used(cxt, i))
            continue;
        struct fdisk_partition *pa = fdisk_new_partition();
        random_guid(id);
        e = pa ? fdisk_partition_set_uuid(pa, id) : -1;
        if (!e)
            e = fdisk_set_partition(cxt, i, pa);
        fdisk_unref_partition(pa);
        if (e)
            return fdisk_fail(err, t->path, "cannot give a partition a new GUID", e);
    }
    return ASR_OK;
}

int asr_restore_grow_plan(const struct asr_disk_desc *d, struct asr_grow_plan *plan, char *why, size_t len)
{
    plan->data = plan->container = UINT32_MAX;
    uint64_t data_end = 0;
    for (uint32_t i = 0; i < d->partition_count; i++) {
        const struct asr_partition_desc *p = &d->partitions[i];
        if (p->kind != ASR_PART_EXTENDED && p->start_bytes + p->size_bytes >= data_end) {
            data_end = p->start_bytes + p->size_bytes;
            plan->data = i;
        }
    }
    if (plan->data == UINT32_MAX)
        return ASR_OK;
    const struct asr_partition_desc *data = &d->partitions[plan->data];
    for (uint32_t i = 0; i < d->partition_count; i++) {
        const struct asr_partition_desc *p = &d->partitions[i];
        bool holds = p->kind == ASR_PART_EXTENDED && data->kind == ASR_PART_LOGICAL &&
                     p->start_bytes <= data->start_bytes && p->start_bytes + p->size_bytes >= data_end;
        if (holds)
            plan->container = i;
        else if (p->start_bytes + p->size_bytes > data_end) {
            snprintf(why, len, "partition %u cannot grow: partition %u ends after it", data->number, p->number);
            return ASR_E_UNSUPPORTED;
        }
    }
    if (data->kind == ASR_PART_LOGICAL && plan->container == UINT32_MAX) {
        snprintf(why, len, "partition %u is a logical one with no extended partition around it", data->number);
        return ASR_E_UNSUPPORTED;
    }
    return ASR_OK;
}

/* libfdisk's index of partition `number`, or SIZE_MAX. */
static size_t fdisk_index_of(struct fdisk_context *cxt, uint32_t number)
{
    for (size_t i = 0; i < fdisk_get_npartitions(cxt); i++) {
        struct fdisk_partition *pa = NULL;
        if (!fdisk_is_partition_used(cxt, i) || fdisk_get_partition(cxt, i, &pa) != 0)
            continue;
        bool found = fdisk_partition_get_partno(pa) + 1 == number;
        fdisk_unref_partition(pa);
        if (found)
            return i;
    }
    return SIZE_MAX;
}

/* Partition `number` made to end at LBA `end`; its old and new size in sectors. */
static int extend_to(struct fdisk_context *cxt, const struct restore_target *t, uint32_t number, uint64_t end,
                     uint64_t *old, uint64_t *now, struct asr_error *err)
{
    size_t i = fdisk_index_of(cxt, number);
    struct fdisk_partition *pa = NULL;
    if (i == SIZE_MAX || fdisk_get_partition(cxt, i, &pa) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "partition table of %s: partition %u not found after writing it",
                               t->path, number);
    uint64_t start = fdisk_partition_get_start(pa);
    *old = fdisk_partition_get_size(pa);
    fdisk_unref_partition(pa);
    *now = end + 1 > start + *old ? end + 1 - start : *old;
    if (*now == *old)
        return ASR_OK;
    struct fdisk_partition *grown = fdisk_new_partition();
    int e = grown ? fdisk_partition_set_size(grown, *now) : -ENOMEM;
    if (!e)
        e = fdisk_set_partition(cxt, i, grown);
    fdisk_unref_partition(grown);
    return e ? fdisk_fail(err, t->path, "cannot grow the last partition", e) : ASR_OK;
}

/* --grow: the data partition that ends last (asr_restore_grow_plan) extended to the end of the
 * usable space, its extended partition first when it is a logical one. An MBR addresses 2^32
 * sectors at most: on a larger disk the partition ends there. */
static int grow_last(struct fdisk_context *cxt, const struct restore_target *t, const struct asr_disk_desc *d,
                     struct asr_restore_stats *st, struct asr_error *err)
{
    struct asr_grow_plan plan;
    char why[160];
    if (asr_restore_grow_plan(d, &plan, why, sizeof why))
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "--grow: %s: %s", t->path, why);
    if (plan.data == UINT32_MAX)
        return ASR_OK;
    uint64_t end = fdisk_get_last_lba(cxt), old, now;
    bool capped = d->label == ASR_LABEL_MBR && end > UINT32_MAX;
    if (capped)
        end = UINT32_MAX;
    int rc = ASR_OK;
    if (plan.container != UINT32_MAX)
        rc = extend_to(cxt, t, d->partitions[plan.container].number, end, &old, &now, err);
    if (!rc)
        rc = extend_to(cxt, t, d->partitions[plan.data].number, end, &old, &now, err);
    if (rc || now == old)
        return rc;
    uint64_t ss = t->info.logical_sector;
    st->grown_partition = d->partitions[plan.data].number;
    st->grown_from = old * ss;
    st->grown_to = now * ss;
    st->grown_to_mbr_limit = capped;
    return ASR_OK;
}

static int ignore_ask(struct fdisk_context *cxt, struct fdisk_ask *ask, void *data)
{
    (void)cxt;
    (void)ask;
    (void)data;
    return 0;
}

static int rewrite_table(struct restore_target *t, const struct asr_disk_desc *d, const struct asr_restore_options *opt,
                         struct asr_restore_stats *st, struct asr_error *err)
{
    struct fdisk_context *cxt = fdisk_new_context();
    if (!cxt)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    fdisk_set_ask(cxt, ignore_ask, NULL);
    /* Through our own descriptor: a block device we hold O_EXCL refuses a second exclusive open. */
    int rc = ASR_OK, e = fdisk_assign_device_by_fd(cxt, t->fd_buffered, t->path, 0);
    if (e)
        rc = fdisk_fail(err, t->path, "libfdisk cannot open it", e);
    else if (!fdisk_has_label(cxt))
        rc = asr_fail_public(err, ASR_E_CORRUPT, "partition table of %s: not found after writing it", t->path);
    if (!rc && opt->new_ids)
        rc = new_ids(cxt, t, d, err);
    if (!rc && opt->grow)
        rc = grow_last(cxt, t, d, st, err);
    if (!rc && (e = fdisk_write_disklabel(cxt)))
        rc = fdisk_fail(err, t->path, "cannot write it", e);
    /* Writing through libfdisk's own descriptor: ours must not serve stale pages afterwards. */
    if (e = fdisk_deassign_device(cxt, 1), e && !rc)
        rc = fdisk_fail(err, t->path, "cannot close it", e);
    fdisk_unref_context(cxt);
    if (!rc)
        posix_fadvise(t->fd_buffered, 0, 0, POSIX_FADV_DONTNEED);
    return rc;
}

int asr_restore_check_options(const struct asr_restore *rs, const struct asr_restore_options *opt,
                              struct asr_error *err)
{
    for (uint32_t d = 0; d < asr_image_disk_count(rs->im) && opt->grow; d++) {
        struct asr_grow_plan plan;
        char why[160];
        if (asr_restore_grow_plan(asr_image_disk(rs->im, d), &plan, why, sizeof why))
            return asr_fail_public(err, ASR_E_UNSUPPORTED, "--grow: image disk %u: %s (nothing was written)", d, why);
    }
    return ASR_OK;
}

int restore_write_layout(struct asr_restore *rs, const struct asr_restore_options *opt, struct asr_restore_stats *st,
                       struct asr_error *err)
{
    for (size_t i = 0; i < rs->n; i++) {
        struct restore_target *t = &rs->t[i];
        const struct asr_disk_desc *d = asr_image_disk(rs->im, t->info.disk_index);
        int rc = write_regions(t, d, st, i == 0, err);
        if (!rc)
            rc = clear_stale_backup_gpt(t, d, err);
        if (!rc)
            rc = target_sync(t, err);
        bool change = d->label != ASR_LABEL_NONE && (opt->new_ids || opt->grow);
        if (!rc && (change || (d->label == ASR_LABEL_GPT && !same_size(t, d))))
            rc = rewrite_table(t, d, opt, st, err);
        if (rc)
            return rc;
        t->info.state = ASR_TARGET_RESTORED;
    }
    return ASR_OK;
}
