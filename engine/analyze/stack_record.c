/* The machine's storage stacks as an image records them (SPEC.md section 6, feature stacks): one
 * LVM2 stack per volume group stacks.c assembled, its PVs where they lie (absent ones included)
 * and its LVs with what analysis and selection decided. Each is checked against the rules the
 * format applies before a backup hands it to the writer, so metadata the format refuses leaves
 * that one VG out of the record (its bytes are captured all the same), never the backup. */
#include "stacks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LVM_SECTOR 512u

static void free_one(struct asr_stack_desc *s)
{
    free((void *)s->members);
    free((void *)s->volumes);
}

void asr_machine_stacks_free(struct asr_stack_desc *s, uint32_t n)
{
    for (uint32_t i = 0; s && i < n; i++)
        free_one(&s[i]);
    free(s);
}

/* VG g as a stack record; false when its numbers overflow (metadata no LVM wrote). */
static bool vg_record(const struct asr_machine *m, size_t g, struct asr_stack_desc *s, bool *nomem)
{
    const struct vg_set *v = &m->vgs[g];
    const struct lvm_vg *meta = v->meta;
    uint64_t unit;
    if (__builtin_mul_overflow(meta->extent_size, (uint64_t)LVM_SECTOR, &unit))
        return false;
    *s = (struct asr_stack_desc){.kind = ASR_STACK_LVM_VG, .seqno = meta->seqno, .unit_bytes = unit};
    snprintf(s->name, sizeof s->name, "%s", meta->name);
    snprintf(s->uuid, sizeof s->uuid, "%s", meta->uuid);
    size_t nlv = 0;
    for (size_t i = 0; i < m->nlvs; i++)
        nlv += m->lvs[i].vg == g;
    if (meta->npvs > ASR_MAX_STACK_MEMBERS || nlv > ASR_MAX_STACK_VOLUMES)
        return false;
    struct asr_stack_member *mb = calloc(meta->npvs + 1, sizeof *mb);
    struct asr_stack_volume *vo = calloc(nlv + 1, sizeof *vo);
    s->members = mb;
    s->volumes = vo;
    if (!mb || !vo) {
        *nomem = true;
        return false;
    }
    for (size_t k = 0; k < meta->npvs; k++) {
        const struct lvm_pv *pv = &meta->pvs[k];
        if (__builtin_mul_overflow(pv->pe_start, (uint64_t)LVM_SECTOR, &mb[k].data_offset) ||
            __builtin_mul_overflow(pv->pe_count, unit, &mb[k].data_bytes))
            return false;
        snprintf(mb[k].uuid, sizeof mb[k].uuid, "%s", pv->uuid);
        if (v->slot[k] == SIZE_MAX) {
            mb[k].on = ASR_MEMBER_ABSENT;
            continue;
        }
        const struct asr_volume_info *part = m->pvs[v->slot[k]].vol;
        mb[k].on = ASR_MEMBER_PARTITION;
        mb[k].disk = part->disk_index;
        mb[k].partition = part->partition_number;
    }
    s->member_count = (uint32_t)meta->npvs;
    uint32_t n = 0;
    for (size_t i = 0; i < m->nlvs; i++) {
        if (m->lvs[i].vg != g)
            continue;
        const struct asr_volume_info *info = &m->stacked[i].info;
        struct asr_stack_volume *o = &vo[n++];
        snprintf(o->name, sizeof o->name, "%s", m->lvs[i].lv->name);
        snprintf(o->uuid, sizeof o->uuid, "%s", m->lvs[i].lv->uuid);
        o->size_bytes = info->size_bytes;
        o->used_bytes = asr_volume_capture_bytes(info);
        o->capture = info->capture;
        o->critical = info->critical;
        snprintf(o->fs_type, sizeof o->fs_type, "%s", info->map.fs_type);
        snprintf(o->fs_uuid, sizeof o->fs_uuid, "%s", info->map.fs_uuid);
        snprintf(o->fs_label, sizeof o->fs_label, "%s", info->map.fs_label);
    }
    s->volume_count = n;
    return true;
}

int asr_machine_stacks(const struct asr_machine *m, struct asr_stack_desc **out, uint32_t *count, char *skipped,
                       size_t skipped_len, struct asr_error *err)
{
    *out = NULL;
    *count = 0;
    if (skipped_len)
        skipped[0] = '\0';
    struct asr_disk_desc disks[ASR_MAX_DISKS];
    uint32_t nd = m->ndisks < ASR_MAX_DISKS ? m->ndisks : ASR_MAX_DISKS;
    for (uint32_t d = 0; d < nd; d++)
        disks[d] = *asr_disk_desc(m->disks[d]);
    struct asr_stack_desc *s = calloc(m->nvgs + 1, sizeof *s);
    if (!s)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    uint32_t n = 0;
    for (size_t g = 0; g < m->nvgs && n < ASR_MAX_STACKS; g++) {
        bool nomem = false;
        struct asr_error why = {0};
        bool ok = vg_record(m, g, &s[n], &nomem);
        if (nomem) {
            free_one(&s[n]);
            asr_machine_stacks_free(s, n);
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        }
        if (ok && asr_stacks_valid(s, n + 1, disks, nd, &why) == ASR_OK) {
            n++;
            continue;
        }
        size_t used = strlen(skipped);
        if (used < skipped_len)
            snprintf(skipped + used, skipped_len - used, "%sVG %s: %s", used ? "\n" : "", m->vgs[g].meta->name,
                     ok ? why.msg : "its sizes overflow");
        free_one(&s[n]);
        s[n] = (struct asr_stack_desc){0};
    }
    *out = s;
    *count = n;
    return ASR_OK;
}
