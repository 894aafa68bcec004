/* Whether disks restored from an image hold the storage stacks the image records (verify
 * --against): the stacks are read from the disks the way a backup reads them (stacks.c, through
 * stack_record.c's records) and each recorded one is looked for by UUID and compared field by
 * field. The bytes themselves are compared elsewhere (asr_restore_compare); this says whether
 * they still make the same arrays, LUKS containers and volume groups: a member restored to the
 * wrong partition, an md superblock or LVM metadata that no longer reads, a LUKS header that no
 * longer loads all show here by name even where a byte comparison cannot point at them. */
#include "stacks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct check {
    const struct asr_stack_desc *want, *found;
    uint32_t nwant, nfound;
    uint32_t *map;  /* per wanted stack: its index among the found ones, UINT32_MAX when none */
    bool *unseen;   /* per wanted stack: inside a locked container, so not looked for */
    bool grown;
    struct asr_stack_check out;
};

static int differs(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int differs(struct check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->out.message, sizeof c->out.message, fmt, ap);
    va_end(ap);
    c->out.status = ASR_E_CORRUPT;
    return ASR_E_CORRUPT;
}

static const char *where(const struct asr_stack_desc *all, const struct asr_stack_member *m, char *buf, size_t n)
{
    if (m->on == ASR_MEMBER_PARTITION)
        snprintf(buf, n, "disk %u partition %u", m->disk, m->partition);
    else if (m->on == ASR_MEMBER_STACK)
        snprintf(buf, n, "volume %u of %s %.127s", m->volume, asr_stack_kind_name(all[m->stack].kind),
                 all[m->stack].name[0] ? all[m->stack].name : all[m->stack].uuid);
    else
        snprintf(buf, n, "no disk of the image");
    return buf;
}

/* The same place: the same partition, or the same volume of the stack found for the recorded
 * one. A member the image records as absent is not looked for. */
static bool same_place(const struct check *c, const struct asr_stack_member *w, const struct asr_stack_member *f)
{
    if (w->on == ASR_MEMBER_ABSENT)
        return true;
    if (w->on != f->on)
        return false;
    if (w->on == ASR_MEMBER_PARTITION)
        return w->disk == f->disk && w->partition == f->partition;
    return w->stack < c->nwant && c->map[w->stack] == f->stack && w->volume == f->volume;
}

/* Data areas keep their size, except where a grown partition lets a container follow it (a LUKS2
 * container sized by its partition). */
static bool same_area(const struct check *c, const struct asr_stack_desc *s, const struct asr_stack_member *w,
                      const struct asr_stack_member *f)
{
    if (w->data_offset != f->data_offset)
        return false;
    if (c->grown && s->kind == ASR_STACK_LUKS)
        return f->data_bytes >= w->data_bytes;
    return w->data_bytes == f->data_bytes;
}

static int compare_member(struct check *c, const struct asr_stack_desc *w, const struct asr_stack_member *wm,
                          const struct asr_stack_member *fm, const char *name)
{
    char a[200], b[200];
    if (!same_place(c, wm, fm))
        return differs(c, "%s is on %s, the image has it on %s", name, where(c->found, fm, a, sizeof a),
                       where(c->want, wm, b, sizeof b));
    if (!same_area(c, w, wm, fm))
        return differs(c, "%s: data area at %llu, %llu bytes; the image records %llu, %llu bytes", name,
                       (unsigned long long)fm->data_offset, (unsigned long long)fm->data_bytes,
                       (unsigned long long)wm->data_offset, (unsigned long long)wm->data_bytes);
    return ASR_OK;
}

/* Every recorded member, found among f's by what identifies it: an md member by its role (slot)
 * in the array, a PV by its UUID, a LUKS container by being the only one. */
static int compare_members(struct check *c, const struct asr_stack_desc *w, const struct asr_stack_desc *f)
{
    for (uint32_t k = 0; k < w->member_count; k++) {
        const struct asr_stack_member *wm = &w->members[k], *fm = NULL;
        for (uint32_t i = 0; i < f->member_count && !fm; i++)
            if (w->kind == ASR_STACK_MD ? f->members[i].role == wm->role
                : w->kind == ASR_STACK_LVM_VG ? !strcmp(f->members[i].uuid, wm->uuid)
                                              : f->member_count == 1)
                fm = &f->members[i];
        char name[96];
        if (w->kind == ASR_STACK_MD)
            snprintf(name, sizeof name, "member in slot %u", wm->role);
        else if (w->kind == ASR_STACK_LVM_VG)
            snprintf(name, sizeof name, "PV %s", wm->uuid);
        else
            snprintf(name, sizeof name, "the container");
        if (!fm)
            return differs(c, "%s is missing", name);
        int rc = compare_member(c, w, wm, fm, name);
        if (rc)
            return rc;
    }
    return ASR_OK;
}

static int compare_array(struct check *c, const struct asr_stack_desc *w, const struct asr_stack_desc *f)
{
    if (w->level != f->level || w->unit_bytes != f->unit_bytes)
        return differs(c, "RAID level %u, chunk %llu bytes; the image records level %u, chunk %llu bytes", f->level,
                       (unsigned long long)f->unit_bytes, w->level, (unsigned long long)w->unit_bytes);
    if (w->seqno != f->seqno)
        return differs(c, "event count %llu, the image records %llu (a superblock not restored?)",
                       (unsigned long long)f->seqno, (unsigned long long)w->seqno);
    if (w->member_count != f->member_count)
        return differs(c, "%u members found, the image records %u", f->member_count, w->member_count);
    return compare_members(c, w, f);
}

static int compare_luks(struct check *c, const struct asr_stack_desc *w, const struct asr_stack_desc *f)
{
    if (w->unit_bytes != f->unit_bytes)
        return differs(c, "sector size %llu, the image records %llu", (unsigned long long)f->unit_bytes,
                       (unsigned long long)w->unit_bytes);
    return compare_members(c, w, f);
}

/* LVs are known by their UUID. The seqno says the metadata is the copy imaged. */
static int compare_vg(struct check *c, const struct asr_stack_desc *w, const struct asr_stack_desc *f)
{
    if (w->seqno != f->seqno || w->unit_bytes != f->unit_bytes)
        return differs(c, "metadata seqno %llu, extent %llu bytes; the image records seqno %llu, extent %llu bytes",
                       (unsigned long long)f->seqno, (unsigned long long)f->unit_bytes, (unsigned long long)w->seqno,
                       (unsigned long long)w->unit_bytes);
    if (w->member_count != f->member_count || w->volume_count != f->volume_count)
        return differs(c, "%u PVs and %u LVs found, the image records %u and %u", f->member_count, f->volume_count,
                       w->member_count, w->volume_count);
    int rc = compare_members(c, w, f);
    if (rc)
        return rc;
    for (uint32_t k = 0; k < w->volume_count; k++) {
        const struct asr_stack_volume *wv = &w->volumes[k], *fv = NULL;
        for (uint32_t i = 0; i < f->volume_count && !fv; i++)
            if (!strcmp(f->volumes[i].uuid, wv->uuid))
                fv = &f->volumes[i];
        if (!fv)
            return differs(c, "LV %s (%s) is missing", wv->name, wv->uuid);
        if (strcmp(fv->name, wv->name) || fv->size_bytes != wv->size_bytes)
            return differs(c, "LV %s is %s of %llu bytes, the image records %s of %llu bytes", wv->uuid, fv->name,
                           (unsigned long long)fv->size_bytes, wv->name, (unsigned long long)wv->size_bytes);
    }
    return ASR_OK;
}

/* A LUKS container that no key opened has no record among the found stacks, but its header
 * still reads: the node holding it, or SIZE_MAX. */
static size_t locked_container(const struct asr_machine *m, const char *uuid)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        const struct node *n = m->nodes[i];
        if (n->luks.version && n->opened == SIZE_MAX && !strcmp(n->luks.uuid, uuid))
            return i;
    }
    return SIZE_MAX;
}

static int check_locked(struct check *c, const struct asr_machine *m, const struct asr_stack_desc *w, size_t node)
{
    const struct node *n = m->nodes[node];
    const struct asr_stack_member *wm = &w->members[0];
    if (w->member_count == 1 && wm->on == ASR_MEMBER_PARTITION &&
        (n->kind != NODE_PARTITION || n->vol->disk_index != wm->disk || n->vol->partition_number != wm->partition))
        return differs(c, "its header is not on disk %u partition %u, where the image has it", wm->disk,
                       wm->partition);
    if (w->member_count == 1 && n->luks.data_offset != wm->data_offset)
        return differs(c, "its data area starts at %llu, the image records %llu",
                       (unsigned long long)n->luks.data_offset, (unsigned long long)wm->data_offset);
    snprintf(c->out.message, sizeof c->out.message,
             "header found as recorded; locked (--key-file or --unlock also checks what it holds)");
    return ASR_OK;
}

/* Whether stack i lies inside a stack that could not be looked into. */
static bool inside_unseen(const struct check *c, const struct asr_stack_desc *w)
{
    for (uint32_t k = 0; k < w->member_count; k++)
        if (w->members[k].on == ASR_MEMBER_STACK && w->members[k].stack < c->nwant && c->unseen[w->members[k].stack])
            return true;
    return false;
}

static int check_one(struct check *c, const struct asr_machine *m, uint32_t i)
{
    const struct asr_stack_desc *w = &c->want[i];
    c->out = (struct asr_stack_check){.stack = i, .status = ASR_OK};
    for (uint32_t k = 0; k < c->nfound && c->map[i] == UINT32_MAX; k++)
        if (c->found[k].kind == w->kind && !strcmp(c->found[k].uuid, w->uuid))
            c->map[i] = k;
    if (c->map[i] == UINT32_MAX) {
        size_t node = w->kind == ASR_STACK_LUKS ? locked_container(m, w->uuid) : SIZE_MAX;
        if (node != SIZE_MAX) {
            c->unseen[i] = true;
            return check_locked(c, m, w, node);
        }
        if (inside_unseen(c, w)) {
            c->unseen[i] = true;
            c->out.status = ASR_E_UNSUPPORTED;
            snprintf(c->out.message, sizeof c->out.message, "not checked: it lies inside a locked LUKS container");
            return ASR_OK;
        }
        return differs(c, "not found on the disks (UUID %s)", w->uuid);
    }
    const struct asr_stack_desc *f = &c->found[c->map[i]];
    int rc = w->kind == ASR_STACK_MD     ? compare_array(c, w, f)
             : w->kind == ASR_STACK_LUKS ? compare_luks(c, w, f)
             : w->kind == ASR_STACK_LVM_VG ? compare_vg(c, w, f)
                                           : ASR_OK;
    if (!rc && w->kind != ASR_STACK_MD && w->kind != ASR_STACK_LUKS && w->kind != ASR_STACK_LVM_VG) {
        c->out.status = ASR_E_UNSUPPORTED;
        snprintf(c->out.message, sizeof c->out.message, "not checked: a kind of stack (%u) this version does not know",
                 w->kind);
    } else if (!rc)
        snprintf(c->out.message, sizeof c->out.message, "found as recorded: %u %s%s", w->member_count,
                 w->kind == ASR_STACK_LVM_VG ? "PV" : w->kind == ASR_STACK_MD ? "member" : "container",
                 w->member_count == 1 ? "" : "s");
    return rc;
}

int asr_machine_check_stacks(const struct asr_machine *m, const struct asr_stack_desc *want, uint32_t n, bool grown,
                             asr_stack_check_fn fn, void *ctx, struct asr_error *err)
{
    struct check c = {.want = want, .nwant = n, .grown = grown};
    struct asr_stack_desc *found = NULL;
    char skipped[512];
    int rc = asr_machine_stacks(m, &found, &c.nfound, skipped, sizeof skipped, err);
    if (rc)
        return rc;
    c.found = found;
    c.map = malloc((n + 1) * sizeof *c.map);
    c.unseen = calloc(n + 1, sizeof *c.unseen);
    if (!c.map || !c.unseen) {
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        n = 0;
    }
    for (uint32_t i = 0; i < n; i++)
        c.map[i] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        int one = check_one(&c, m, i);
        if (fn)
            fn(ctx, &c.out);
        if (one && !rc)
            rc = asr_fail_public(err, one, "%s %s: %s", asr_stack_kind_name(want[i].kind) ? asr_stack_kind_name(want[i].kind) : "stack",
                                 want[i].name[0] ? want[i].name : want[i].uuid, c.out.message);
    }
    free(c.map);
    free(c.unseen);
    asr_machine_stacks_free(found, c.nfound);
    return rc;
}
