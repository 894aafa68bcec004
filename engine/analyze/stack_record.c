/* The machine's storage stacks as an image records them (SPEC.md section 6, feature stacks): one
 * record per md array, opened LUKS container and LVM2 volume group stacks.c assembled, in that
 * order, so that a member inside an earlier stack's volume (a PV in LUKS or on an array) names a
 * record before its own; members where they lie (absent PVs included), volumes with what analysis
 * and selection decided. Each is checked against the rules the format applies before a backup
 * hands it to the writer, so metadata the format refuses leaves that one stack out of the record
 * (its bytes are captured all the same), never the backup. */
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

/* Where each node lies as a member: a partition, or the volume of a record made before. */
struct places {
    uint32_t *record, *volume; /* per node; UINT32_MAX: not a volume of any record */
};

static void place(const struct asr_machine *m, const struct places *p, size_t node, struct asr_stack_member *mb)
{
    const struct node *n = m->nodes[node];
    if (n->kind == NODE_PARTITION) {
        mb->on = ASR_MEMBER_PARTITION;
        mb->disk = n->vol->disk_index;
        mb->partition = n->vol->partition_number;
    } else if (p->record[node] != UINT32_MAX) {
        mb->on = ASR_MEMBER_STACK;
        mb->stack = p->record[node];
        mb->volume = p->volume[node];
    } else {
        mb->on = ASR_MEMBER_ABSENT; /* on a volume whose own record was left out */
    }
}

static void describe(const struct node *n, const char *name, const char *uuid, struct asr_stack_volume *o)
{
    const struct asr_volume_info *info = n->vol;
    snprintf(o->name, sizeof o->name, "%.127s", name);
    snprintf(o->uuid, sizeof o->uuid, "%s", uuid);
    o->size_bytes = info->size_bytes;
    o->used_bytes = asr_volume_capture_bytes(info);
    o->capture = info->capture;
    o->critical = info->critical;
    snprintf(o->fs_type, sizeof o->fs_type, "%s", info->map.fs_type);
    snprintf(o->fs_uuid, sizeof o->fs_uuid, "%s", info->map.fs_uuid);
    snprintf(o->fs_label, sizeof o->fs_label, "%s", info->map.fs_label);
    snprintf(o->mount, sizeof o->mount, "%s", n->sv.mount);
}

/* Allocates s's members and volumes; false when out of memory. */
static bool room(struct asr_stack_desc *s, size_t members, size_t volumes)
{
    s->members = calloc(members + 1, sizeof *s->members);
    s->volumes = calloc(volumes + 1, sizeof *s->volumes);
    s->member_count = (uint32_t)members;
    s->volume_count = (uint32_t)volumes;
    return s->members && s->volumes;
}

/* One record: false when it cannot be made (sizes overflow, too many members); *nomem when out
 * of memory. node is the stack's volume node (array, LUKS volume), or SIZE_MAX for a VG g. */
static bool array_record(const struct asr_machine *m, const struct places *p, size_t node, struct asr_stack_desc *s,
                         bool *nomem)
{
    const struct node *an = m->nodes[node];
    const struct md_set *a = &m->arrays[an->array];
    const struct md_member *first = &a->members[0];
    *s = (struct asr_stack_desc){.kind = ASR_STACK_MD, .level = first->level < 0 ? UINT32_MAX : (uint32_t)first->level,
                                 .seqno = first->events, .unit_bytes = first->chunk};
    snprintf(s->name, sizeof s->name, "%.127s", an->sv.name);
    snprintf(s->uuid, sizeof s->uuid, "%s", first->uuid_text);
    if (a->n > ASR_MAX_STACK_MEMBERS)
        return false;
    if (!room(s, a->n, 1))
        return !(*nomem = true);
    struct asr_stack_member *mb = (struct asr_stack_member *)s->members;
    for (size_t k = 0; k < a->n; k++) {
        place(m, p, a->member_node[k], &mb[k]);
        mb[k].role = a->members[k].role;
        mb[k].data_offset = a->members[k].data_offset;
        mb[k].data_bytes = a->members[k].data_size;
    }
    describe(an, "array", first->uuid_text, (struct asr_stack_volume *)s->volumes);
    return true;
}

static bool luks_record(const struct asr_machine *m, const struct places *p, size_t node, struct asr_stack_desc *s,
                        bool *nomem)
{
    const struct node *l = m->nodes[node], *c = m->nodes[l->container];
    *s = (struct asr_stack_desc){.kind = ASR_STACK_LUKS, .unit_bytes = c->luks.sector_size};
    snprintf(s->name, sizeof s->name, "%.127s", l->sv.name);
    snprintf(s->uuid, sizeof s->uuid, "%s", c->luks.uuid);
    if (!room(s, 1, 1))
        return !(*nomem = true);
    struct asr_stack_member *mb = (struct asr_stack_member *)s->members;
    place(m, p, l->container, mb);
    mb->data_offset = c->luks.data_offset;
    mb->data_bytes = c->luks.data_size;
    describe(l, "plaintext", c->luks.uuid, (struct asr_stack_volume *)s->volumes);
    return true;
}

static bool vg_record(const struct asr_machine *m, const struct places *p, size_t g, struct asr_stack_desc *s,
                      bool *nomem)
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
    for (size_t i = 0; i < m->nnodes; i++)
        nlv += m->nodes[i]->kind == NODE_LV && m->nodes[i]->vg == g;
    if (meta->npvs > ASR_MAX_STACK_MEMBERS || nlv > ASR_MAX_STACK_VOLUMES)
        return false;
    if (!room(s, meta->npvs, nlv))
        return !(*nomem = true);
    struct asr_stack_member *mb = (struct asr_stack_member *)s->members;
    for (size_t k = 0; k < meta->npvs; k++) {
        const struct lvm_pv *pv = &meta->pvs[k];
        if (__builtin_mul_overflow(pv->pe_start, (uint64_t)LVM_SECTOR, &mb[k].data_offset) ||
            __builtin_mul_overflow(pv->pe_count, unit, &mb[k].data_bytes))
            return false;
        snprintf(mb[k].uuid, sizeof mb[k].uuid, "%s", pv->uuid);
        if (v->pv_node[k] == SIZE_MAX)
            mb[k].on = ASR_MEMBER_ABSENT;
        else
            place(m, p, v->pv_node[k], &mb[k]);
    }
    struct asr_stack_volume *vo = (struct asr_stack_volume *)s->volumes;
    uint32_t n = 0;
    for (size_t i = 0; i < m->nnodes; i++) {
        const struct node *l = m->nodes[i];
        if (l->kind == NODE_LV && l->vg == g)
            describe(l, l->lv->name, l->lv->uuid, &vo[n++]);
    }
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
    /* In creation order, which puts every layer before the ones on it: arrays, LUKS volumes, then
     * each VG once (at its first LV, or where its PVs are when it has none). */
    size_t cap = m->nnodes + m->nvgs + 1;
    struct asr_stack_desc *s = calloc(cap, sizeof *s);
    struct places p = {calloc(m->nnodes + 1, sizeof *p.record), calloc(m->nnodes + 1, sizeof *p.volume)};
    bool *vg_done = calloc(m->nvgs + 1, sizeof *vg_done);
    if (!s || !p.record || !p.volume || !vg_done) {
        free(s), free(p.record), free(p.volume), free(vg_done);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->nnodes; i++)
        p.record[i] = p.volume[i] = UINT32_MAX;
    uint32_t n = 0;
    int rc = ASR_OK;
    for (size_t i = 0; rc == ASR_OK && i <= m->nnodes && n < ASR_MAX_STACKS; i++) {
        const struct node *nd_ = i < m->nnodes ? m->nodes[i] : NULL;
        size_t g = SIZE_MAX;
        if (nd_ && nd_->kind == NODE_LV && !vg_done[nd_->vg])
            g = nd_->vg;
        else if (!nd_) /* VGs with no LV: after everything */
            for (size_t k = 0; k < m->nvgs && g == SIZE_MAX; k++)
                if (!vg_done[k])
                    g = k;
        bool nomem = false, ok;
        const char *what;
        if (g != SIZE_MAX) {
            vg_done[g] = true;
            ok = vg_record(m, &p, g, &s[n], &nomem);
            what = m->vgs[g].meta->name;
            if (!nd_)
                i--; /* look for another VG without LVs */
        } else if (nd_ && nd_->kind == NODE_MD) {
            ok = array_record(m, &p, i, &s[n], &nomem);
            what = nd_->sv.name;
        } else if (nd_ && nd_->kind == NODE_LUKS) {
            ok = luks_record(m, &p, i, &s[n], &nomem);
            what = nd_->sv.name;
        } else {
            continue;
        }
        struct asr_error why = {0};
        if (nomem)
            rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        else if (ok && asr_stacks_valid(s, n + 1, disks, nd, &why) == ASR_OK) {
            if (g == SIZE_MAX)
                p.record[i] = n, p.volume[i] = 0;
            else /* the VG's LVs, in record order */
                for (size_t k = 0, v = 0; k < m->nnodes; k++)
                    if (m->nodes[k]->kind == NODE_LV && m->nodes[k]->vg == g)
                        p.record[k] = n, p.volume[k] = (uint32_t)v++;
            n++;
            continue;
        } else {
            size_t used = strlen(skipped);
            if (used < skipped_len)
                snprintf(skipped + used, skipped_len - used, "%s%s: %s", used ? "\n" : "", what,
                         ok ? why.msg : "its sizes overflow");
        }
        free_one(&s[n]);
        s[n] = (struct asr_stack_desc){0};
    }
    free(p.record), free(p.volume), free(vg_done);
    if (rc != ASR_OK) {
        asr_machine_stacks_free(s, n);
        return rc;
    }
    *out = s;
    *count = n;
    return ASR_OK;
}
