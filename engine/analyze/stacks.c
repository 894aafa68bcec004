/* The machine's LVM2 stacks, read from the disks themselves: the PVs among the analysed
 * partitions, the volume groups they make up (one VG may span disks), each logical volume read
 * through a window pieced together from its extents, so its filesystem is probed, mapped and
 * judged as a partition's is; and, once selected, each PV partition's used map: its label and
 * metadata areas verbatim, plus the bytes its selected LVs capture, translated onto it.
 * Unallocated extents and unselected LVs are left out. */
#include "stacks.h"

#include "analyze.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LVM_SECTOR 512u

void machine_warn(struct asr_machine *m, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    char *w = realloc(m->warnings, m->wlen + n + 2);
    if (!w)
        return;
    m->warnings = w;
    memcpy(w + m->wlen, line, n);
    m->wlen += n;
    w[m->wlen++] = '\n';
    w[m->wlen] = 0;
}

/* ---- PVs and VGs ------------------------------------------------------------------------------ */

static const char *vol_name(const struct asr_volume_info *v, char *buf, size_t n)
{
    snprintf(buf, n, "disk %u partition %u", v->disk_index, v->partition_number);
    return buf;
}

static int collect_pvs(struct asr_machine *m, struct asr_error *err)
{
    size_t total = 0;
    for (uint32_t d = 0; d < m->ndisks; d++)
        total += m->counts[d];
    if (!(m->pvs = calloc(total + 1, sizeof *m->pvs)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t d = 0; d < m->ndisks; d++)
        for (size_t i = 0; i < m->counts[d]; i++) {
            struct asr_volume_info *v = &m->vols[d][i];
            if (v->kind != ASR_VOLUME_PARTITION || strcmp(v->map.fs_type, "LVM2_member") || v->read_error[0])
                continue;
            struct pv_slot *p = &m->pvs[m->npvs++];
            *p = (struct pv_slot){.vol = v, .vg = SIZE_MAX, .critical_own = v->critical};
            p->w = (struct asr_window){.fd = asr_disk_fd(m->disks[d]), .path = asr_disk_path(m->disks[d]),
                                       .base = v->start_bytes, .size = v->size_bytes};
            struct asr_error why = {0};
            int rc = lvm_read_pv(&p->w, &p->info, &why);
            if (rc == ASR_E_NOMEM)
                return asr_fail_public(err, rc, "%s", why.msg);
            if (rc != ASR_OK) {
                char name[64];
                snprintf(v->warning, sizeof v->warning, "LVM2 PV unreadable (%.250s): captured whole", why.msg);
                machine_warn(m, "%s: LVM2 PV unreadable, its logical volumes cannot be looked into: %s",
                             vol_name(v, name, sizeof name), why.msg);
            }
        }
    return ASR_OK;
}

/* The PV's label UUID (32 characters) against the metadata's dashed form. */
static bool same_pv(const char *dashed, const char *plain)
{
    size_t k = 0;
    for (const char *c = dashed; *c; c++)
        if (*c != '-' && (k >= 32 || *c != plain[k++]))
            return false;
    return k == 32 && plain[k] == 0;
}

static int group_vgs(struct asr_machine *m, struct asr_error *err)
{
    if (!(m->vgs = calloc(m->npvs + 1, sizeof *m->vgs)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->npvs; i++) {
        struct pv_slot *p = &m->pvs[i];
        if (!p->info || !p->info->has_vg)
            continue;
        size_t g = 0;
        while (g < m->nvgs && strcmp(m->vgs[g].meta->uuid, p->info->vg.uuid))
            g++;
        if (g == m->nvgs)
            m->vgs[m->nvgs++].meta = &p->info->vg;
        else if (p->info->vg.seqno > m->vgs[g].meta->seqno)
            m->vgs[g].meta = &p->info->vg; /* a PV that missed the last update holds an older copy */
        p->vg = g;
    }
    for (size_t g = 0; g < m->nvgs; g++) {
        struct vg_set *s = &m->vgs[g];
        if (!(s->slot = malloc((s->meta->npvs + 1) * sizeof *s->slot)))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        s->complete = true;
        for (size_t k = 0; k < s->meta->npvs; k++) {
            s->slot[k] = SIZE_MAX;
            for (size_t i = 0; i < m->npvs; i++)
                if (m->pvs[i].vg == g && same_pv(s->meta->pvs[k].uuid, m->pvs[i].info->uuid))
                    s->slot[k] = i;
            if (s->slot[k] == SIZE_MAX) {
                s->complete = false;
                const char *seen = s->meta->pvs[k].device;
                machine_warn(m, "VG %s: its PV %s (last seen on %s) is on no disk of this backup: its logical "
                             "volumes cannot be read, and its PVs here are captured whole", s->meta->name,
                             s->meta->pvs[k].uuid, seen ? seen : "an unknown device");
            }
        }
    }
    return ASR_OK;
}

/* ---- LVs ----------------------------------------------------------------------------------- */

static bool lv_visible(const struct lvm_lv *lv)
{
    for (size_t i = 0; i < lv->nstatus; i++)
        if (!strcmp(lv->status[i], "VISIBLE"))
            return true;
    return false;
}

/* The LV's window: every byte located on its PV and added as a piece of that PV's window. */
static int map_lv(struct asr_machine *m, struct lv_slot *l, uint64_t size, struct asr_error *err)
{
    const struct vg_set *s = &m->vgs[l->vg];
    for (uint64_t off = 0; off < size;) {
        size_t pv;
        uint64_t at, contig;
        int rc = lvm_lv_locate(s->meta, l->lv, off, &pv, &at, &contig, err);
        if (rc != ASR_OK)
            return rc;
        if (contig > size - off)
            contig = size - off;
        if ((rc = window_map_add(&l->map, &m->pvs[s->slot[pv]].w, at, contig, err)) != ASR_OK)
            return rc;
        off += contig;
    }
    return ASR_OK;
}

static int analyze_lv(struct asr_machine *m, size_t g, const struct lvm_lv *lv, struct asr_error *err)
{
    const struct vg_set *s = &m->vgs[g];
    size_t i = m->nlvs++;
    struct lv_slot *l = &m->lvs[i];
    struct asr_stacked_volume *sv = &m->stacked[i];
    struct asr_volume_info *v = &sv->info;
    *l = (struct lv_slot){.vg = g, .lv = lv};
    bool visible = lv_visible(lv);
    snprintf(sv->name, sizeof sv->name, visible ? "%s/%s" : "%s/[%s]", s->meta->name, lv->name);
    v->kind = ASR_VOLUME_PARTITION;
    v->size_bytes = lv->extents * s->meta->extent_size * LVM_SECTOR;
    /* Where it starts, for listings: the partition of its first extent. */
    struct lvm_area *areas = NULL;
    size_t na = 0;
    if (lvm_lv_map(s->meta, lv, &areas, &na, err) != ASR_OK)
        return err->code;
    if (na) {
        const struct asr_volume_info *first = m->pvs[s->slot[areas[0].pv]].vol;
        v->disk_index = first->disk_index;
        v->partition_number = first->partition_number;
    }
    free(areas);
    const char *unmapped = lvm_lv_unmapped(lv);
    if (unmapped || !visible) {
        l->auxiliary = true;
        v->natural_capture = ASR_CAPTURE_FULL;
        snprintf(v->type_name, sizeof v->type_name, "LVM2 %s%s", unmapped ? unmapped : "hidden LV",
                 unmapped ? " LV" : "");
        if (unmapped)
            snprintf(v->warning, sizeof v->warning, "segment type '%s' is not mapped: its data lies in hidden LVs, "
                     "captured whole with the VG", unmapped);
        else
            snprintf(v->warning, sizeof v->warning, "hidden LV (part of a RAID, mirror, thin or cache LV): its "
                     "extents are captured whole with the VG");
        snprintf(v->reason, sizeof v->reason, "part of VG %s: taken with it", s->meta->name);
        if (unmapped)
            machine_warn(m, "LV %s is of type '%s', which asrimg does not map: its extents are captured whole",
                         sv->name, unmapped);
        return ASR_OK;
    }
    snprintf(v->type_name, sizeof v->type_name, "LVM2 logical volume");
    struct asr_error why = {0};
    int rc = map_lv(m, l, v->size_bytes, &why);
    if (rc == ASR_E_NOMEM)
        return asr_fail_public(err, rc, "%s", why.msg);
    if (rc != ASR_OK) { /* extents outside their PV's partition: the metadata is not to be trusted */
        l->auxiliary = true;
        v->natural_capture = ASR_CAPTURE_FULL;
        snprintf(v->warning, sizeof v->warning, "its extents do not fit its PVs (%.250s): captured whole", why.msg);
        machine_warn(m, "LV %s: %s", sv->name, why.msg);
        return ASR_OK;
    }
    l->mapped = true;
    window_map_window(&l->map, sv->name, &l->w);
    int map_rc = analyze_map_volume(&l->w, false, v);
    analyze_boot_content(&l->w, map_rc, v);
    return ASR_OK;
}

static int analyze_lvs(struct asr_machine *m, struct asr_error *err)
{
    size_t total = 0;
    for (size_t g = 0; g < m->nvgs; g++)
        if (m->vgs[g].complete)
            total += m->vgs[g].meta->nlvs;
    m->stacked = calloc(total + 1, sizeof *m->stacked);
    m->lvs = calloc(total + 1, sizeof *m->lvs);
    if (!m->stacked || !m->lvs)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t g = 0; g < m->nvgs; g++)
        for (size_t k = 0; m->vgs[g].complete && k < m->vgs[g].meta->nlvs; k++) {
            int rc = analyze_lv(m, g, &m->vgs[g].meta->lvs[k], err);
            if (rc != ASR_OK)
                return rc;
        }
    return ASR_OK;
}

void stacks_need_pvs(struct asr_machine *m, size_t lv)
{
    const struct vg_set *s = &m->vgs[m->lvs[lv].vg];
    for (size_t k = 0; k < s->meta->npvs; k++) {
        struct asr_volume_info *v = m->pvs[s->slot[k]].vol;
        if (v->critical)
            continue;
        v->critical = true;
        snprintf(v->reason, sizeof v->reason, "PV of VG %s, which holds LV %.60s (%.60s)", s->meta->name,
                 m->stacked[lv].name, m->stacked[lv].info.reason);
    }
}

/* ---- the machine ---------------------------------------------------------------------------- */

int asr_machine_analyze(struct asr_disk *const *disks, struct asr_volume_info *const *vols, const size_t *counts,
                        uint32_t n, struct asr_machine **out, struct asr_error *err)
{
    *out = NULL;
    struct asr_machine *m = calloc(1, sizeof *m);
    if (!m)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    *m = (struct asr_machine){.disks = disks, .vols = vols, .counts = counts, .ndisks = n};
    int rc = collect_pvs(m, err);
    if (rc == ASR_OK)
        rc = group_vgs(m, err);
    if (rc == ASR_OK)
        rc = analyze_lvs(m, err);
    for (size_t i = 0; rc == ASR_OK && i < m->nlvs; i++)
        if (m->stacked[i].info.critical)
            stacks_need_pvs(m, i);
    if (rc == ASR_OK)
        rc = bootscan_analyze(m, err);
    if (rc != ASR_OK) {
        asr_machine_free(m);
        return rc;
    }
    *out = m;
    return ASR_OK;
}

void asr_machine_free(struct asr_machine *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nlvs; i++) {
        window_map_free(&m->lvs[i].map);
        asr_usedmap_free(&m->stacked[i].info.map);
    }
    for (size_t g = 0; g < m->nvgs; g++)
        free(m->vgs[g].slot);
    for (size_t i = 0; i < m->npvs; i++)
        lvm_pv_info_free(m->pvs[i].info);
    free(m->pvs);
    free(m->vgs);
    free(m->lvs);
    free(m->stacked);
    free(m->warnings);
    free(m);
}

size_t asr_machine_stacked(const struct asr_machine *m, const struct asr_stacked_volume **v)
{
    *v = m->stacked;
    return m->nlvs;
}

const char *asr_machine_warnings(const struct asr_machine *m) { return m->warnings ? m->warnings : ""; }

/* ---- selection, and the PVs' used maps ----------------------------------------------------- */

/* Whether the comma list names item exactly (spaces around items ignored). */
static bool listed(const char *selection, const char *item)
{
    size_t n = strlen(item);
    for (const char *s = selection; s && *s;) {
        while (isspace((unsigned char)*s))
            s++;
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len && isspace((unsigned char)s[len - 1]))
            len--;
        if (len == n && !strncmp(s, item, n))
            return true;
        s = end ? end + 1 : NULL;
    }
    return false;
}

/* Every VG/LV item of the selection must name an LV. */
static int check_items(const struct asr_machine *m, const char *selection, struct asr_error *err)
{
    for (const char *s = selection; s && *s;) {
        while (isspace((unsigned char)*s))
            s++;
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (memchr(s, '/', len)) {
            bool found = false;
            char item[200];
            snprintf(item, sizeof item, "%.*s", (int)len, s);
            for (size_t i = 0; i < m->nlvs && !found; i++)
                found = listed(item, m->stacked[i].name);
            if (!found)
                return asr_fail_public(err, ASR_E_ARG, "volume selection '%s': no logical volume of that name", item);
        }
        s = end ? end + 1 : NULL;
    }
    return ASR_OK;
}

/* Whether a PV the LV lies on is taken whole: named by number in a selection, or, in the default
 * selection, critical for a reason of its own (its type, a mount on this machine), which says
 * nothing of which of its LVs the machine needs. */
static bool pv_named(const struct asr_machine *m, const struct lv_slot *l, const char *selection)
{
    const struct vg_set *s = &m->vgs[l->vg];
    bool critical = !selection || !strcmp(selection, "critical");
    struct lvm_area *a = NULL;
    size_t na = 0;
    struct asr_error ignored;
    bool named = false;
    if (lvm_lv_map(s->meta, l->lv, &a, &na, &ignored) != ASR_OK)
        return false;
    for (size_t k = 0; k < na && !named; k++) {
        const struct pv_slot *p = &m->pvs[s->slot[a[k].pv]];
        char full[32], part[32];
        snprintf(full, sizeof full, "%u:%u", p->vol->disk_index, p->vol->partition_number);
        snprintf(part, sizeof part, "%u", p->vol->partition_number);
        named = critical ? p->critical_own
                         : listed(selection, full) || (p->vol->disk_index == 0 && listed(selection, part));
    }
    free(a);
    return named;
}

static int range_cmp(const void *a, const void *b)
{
    const struct asr_range *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

struct pieces {
    struct asr_range *v;
    size_t n, cap;
};

static int pieces_add(struct pieces *p, uint64_t off, uint64_t len)
{
    if (!len)
        return ASR_OK;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        struct asr_range *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return ASR_E_NOMEM;
        p->v = v, p->cap = cap;
    }
    p->v[p->n++] = (struct asr_range){off, len};
    return ASR_OK;
}

/* The bytes of LV l that its capture takes, located on its PVs: appended to per-PV pieces. */
static int lv_pieces(const struct asr_machine *m, const struct lv_slot *l, const struct asr_volume_info *v,
                     struct pieces *per_pv, struct asr_error *err)
{
    const struct vg_set *s = &m->vgs[l->vg];
    if (!l->mapped) { /* whole: every area of its own */
        struct lvm_area *a = NULL;
        size_t na = 0;
        int rc = lvm_lv_map(s->meta, l->lv, &a, &na, err);
        for (size_t i = 0; rc == ASR_OK && i < na; i++)
            if (pieces_add(&per_pv[s->slot[a[i].pv]], a[i].pv_off, a[i].len))
                rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        free(a);
        return rc;
    }
    struct asr_range whole = {0, v->size_bytes};
    const struct asr_range *r = v->capture == ASR_CAPTURE_FULL ? &whole : v->map.used.v;
    size_t nr = v->capture == ASR_CAPTURE_FULL ? 1 : v->map.used.n;
    for (size_t i = 0; i < nr; i++)
        for (uint64_t off = r[i].offset, end = r[i].offset + r[i].length; off < end;) {
            size_t pv;
            uint64_t at, contig;
            int rc = lvm_lv_locate(s->meta, l->lv, off, &pv, &at, &contig, err);
            if (rc != ASR_OK)
                return rc;
            if (contig > end - off)
                contig = end - off;
            if (pieces_add(&per_pv[s->slot[pv]], at, contig))
                return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
            off += contig;
        }
    return ASR_OK;
}

/* The PV partition's map: label and metadata (everything outside the extents), then the pieces. */
static int compose_pv(const struct asr_machine *m, struct pv_slot *p, struct pieces *pc, struct asr_error *err)
{
    const struct lvm_vg *vg = m->vgs[p->vg].meta;
    const struct lvm_pv *me = &vg->pvs[p->info->this_pv];
    uint64_t pe_start = me->pe_start * LVM_SECTOR;
    uint64_t pe_end = pe_start + me->pe_count * vg->extent_size * LVM_SECTOR;
    if (pieces_add(pc, 0, pe_start < p->vol->size_bytes ? pe_start : p->vol->size_bytes) ||
        (pe_end < p->vol->size_bytes && pieces_add(pc, pe_end, p->vol->size_bytes - pe_end)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    qsort(pc->v, pc->n, sizeof *pc->v, range_cmp);
    struct asr_ranges out = {0};
    for (size_t i = 0; i < pc->n; i++) {
        uint64_t off = pc->v[i].offset, end = off + pc->v[i].length;
        if (out.n) {
            struct asr_range *last = &out.v[out.n - 1];
            uint64_t last_end = last->offset + last->length;
            if (off <= last_end) { /* overlapping or touching: extend */
                if (end > last_end)
                    last->length = end - last->offset;
                continue;
            }
        }
        if (asr_ranges_add(&out, off, end - off) != ASR_OK) {
            asr_ranges_free(&out);
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        }
    }
    asr_ranges_free(&p->vol->map.used);
    p->vol->map.used = out;
    p->vol->map.block_size = LVM_SECTOR;
    p->vol->natural_capture = ASR_CAPTURE_USED;
    if (p->vol->capture != ASR_CAPTURE_SKIP)
        p->vol->capture = ASR_CAPTURE_USED;
    snprintf(p->vol->warning, sizeof p->vol->warning, "LVM2 PV of VG %s: its label and metadata, and the bytes its "
             "selected logical volumes capture (listed under storage stacks)", vg->name);
    return ASR_OK;
}

int asr_machine_select(struct asr_machine *m, const char *selection, struct asr_error *err)
{
    bool all = selection && !strcmp(selection, "all"), critical = !selection || !strcmp(selection, "critical");
    int rc = all || critical ? ASR_OK : check_items(m, selection, err);
    if (rc != ASR_OK)
        return rc;
    bool *vg_used = calloc(m->nvgs + 1, sizeof *vg_used);
    struct pieces *per_pv = calloc(m->npvs + 1, sizeof *per_pv);
    if (!vg_used || !per_pv) {
        free(vg_used), free(per_pv);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->nlvs; i++) {
        struct lv_slot *l = &m->lvs[i];
        struct asr_volume_info *v = &m->stacked[i].info;
        bool take = !l->auxiliary && (all || (critical && v->critical) || pv_named(m, l, selection) ||
                                      (!critical && listed(selection, m->stacked[i].name)));
        v->capture = take ? v->natural_capture : ASR_CAPTURE_SKIP;
        vg_used[l->vg] |= take;
    }
    /* What a selected LV needs: its VG's hidden and unmapped LVs whole, and its PVs. */
    for (size_t i = 0; i < m->nlvs; i++) {
        struct lv_slot *l = &m->lvs[i];
        if (l->auxiliary && vg_used[l->vg])
            m->stacked[i].info.capture = ASR_CAPTURE_FULL;
        if (m->stacked[i].info.capture == ASR_CAPTURE_SKIP)
            continue;
        const struct vg_set *s = &m->vgs[l->vg];
        for (size_t k = 0; k < s->meta->npvs; k++) {
            struct asr_volume_info *pv = m->pvs[s->slot[k]].vol;
            if (pv->capture == ASR_CAPTURE_SKIP) {
                pv->capture = ASR_CAPTURE_USED;
                size_t len = strlen(pv->reason);
                snprintf(pv->reason + len, sizeof pv->reason - len, "; holds selected LV %.60s", m->stacked[i].name);
            }
        }
        if ((rc = lv_pieces(m, l, &m->stacked[i].info, per_pv, err)) != ASR_OK)
            break;
    }
    for (size_t i = 0; rc == ASR_OK && i < m->npvs; i++)
        if (m->pvs[i].vg != SIZE_MAX && m->vgs[m->pvs[i].vg].complete)
            rc = compose_pv(m, &m->pvs[i], &per_pv[i], err);
    for (size_t i = 0; i < m->npvs; i++)
        free(per_pv[i].v);
    free(per_pv);
    free(vg_used);
    return rc;
}
