/* The machine's storage stacks, read from the disks themselves: md arrays assembled from their
 * members, LVM2 volume groups from their PVs (on partitions or on arrays; one VG may span
 * disks), LUKS containers opened with a key given (decrypted in user space), and each array
 * and logical volume read through a window pieced together from the volumes under it, so its filesystem is probed, mapped and judged as a partition's is. Once
 * selected, what each stacked volume captures is pushed down through the layers: an LV's used
 * bytes onto its PVs' extents, an array's onto every mirror (RAID1) or its stripes (RAID0), until
 * an opened LUKS volume's as the ciphertext of the same sectors, until it lands on partitions,
 * whose used maps then hold their own metadata verbatim (PV label and metadata areas, md
 * superblocks and bitmaps, LUKS headers and keyslots) plus what the volumes above capture, and
 * whose cleared ranges what those volumes' filesystems never read (an empty ext journal's log),
 * which a backup records as zeros (read instead through LUKS and onto parity arrays).
 * Unallocated extents and unselected volumes are left out. */
#include "stacks.h"

#include "analyze.h"
#include "grow.h"

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

static int pieces_add(struct pieces *p, uint64_t off, uint64_t len)
{
    if (!len)
        return ASR_OK;
    struct asr_range *v = asr_grow(p->v, &p->cap, p->n + 1, sizeof *v, 256);
    if (!v)
        return ASR_E_NOMEM;
    p->v = v;
    p->v[p->n++] = (struct asr_range){off, len};
    return ASR_OK;
}

static struct node *add_node(struct asr_machine *m, enum node_kind kind, struct asr_error *err)
{
    struct node **v = asr_grow(m->nodes, &m->cap, m->nnodes + 1, sizeof *v, 32);
    struct node *n = calloc(1, sizeof *n);
    if (!v || !n) {
        free(n);
        if (v)
            m->nodes = v;
        asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        return NULL;
    }
    m->nodes = v;
    *n = (struct node){.kind = kind, .vg = SIZE_MAX, .array = SIZE_MAX, .opened = SIZE_MAX, .container = SIZE_MAX};
    n->vol = kind == NODE_PARTITION ? NULL : &n->sv.info;
    m->nodes[m->nnodes++] = n;
    return n;
}

static const char *node_name(const struct asr_machine *m, size_t i, char *buf, size_t len)
{
    const struct node *n = m->nodes[i];
    if (n->kind == NODE_PARTITION)
        snprintf(buf, len, "disk %u partition %u", n->vol->disk_index, n->vol->partition_number);
    else
        snprintf(buf, len, "%s %.160s", n->kind == NODE_LV ? "LV" : n->kind == NODE_MD ? "array" : "LUKS volume",
                 n->sv.name);
    return buf;
}

static int add_partitions(struct asr_machine *m, struct asr_error *err)
{
    for (uint32_t d = 0; d < m->ndisks; d++)
        for (size_t i = 0; i < m->counts[d]; i++) {
            struct asr_volume_info *v = &m->vols[d][i];
            if (v->kind != ASR_VOLUME_PARTITION)
                continue;
            struct node *n = add_node(m, NODE_PARTITION, err);
            if (!n)
                return err->code;
            n->vol = v;
            n->readable = !v->read_error[0];
            n->critical_own = v->critical;
            n->w = (struct asr_window){.fd = asr_disk_fd(m->disks[d]), .path = asr_disk_path(m->disks[d]),
                                       .base = v->start_bytes, .size = v->size_bytes};
        }
    return ASR_OK;
}

/* A stacked node's own analysis, once its window reads: filesystem, used map, content. */
static void judge(struct node *n)
{
    n->readable = true;
    int map_rc = analyze_map_volume(&n->w, false, n->vol);
    analyze_boot_content(&n->w, map_rc, n->vol);
}

/* The same, for a node read through its pieced window. */
static void look_into(struct node *n)
{
    window_map_window(&n->map, n->sv.name, &n->w);
    judge(n);
}

/* ---- md arrays ------------------------------------------------------------------------------ */

static void find_members(struct asr_machine *m)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        struct node *n = m->nodes[i];
        if (!n->readable || strcmp(n->vol->map.fs_type, "linux_raid_member"))
            continue;
        struct asr_error why = {0};
        if (md_read_member(&n->w, &n->member, &why) != ASR_OK) {
            char name[200];
            n->member_error = true;
            n->member.found = false;
            snprintf(n->vol->warning, sizeof n->vol->warning, "md member unreadable (%.250s): captured whole",
                     why.msg);
            machine_warn(m, "%s: md member unreadable, its array cannot be looked into: %s",
                         node_name(m, i, name, sizeof name), why.msg);
        }
    }
}

/* What node n takes, or what it clears. */
static struct pieces *pieces_of(struct node *n, bool clear)
{
    return clear ? &n->clear : &n->take;
}

/* Adds array bytes [off, off + len) to what each member holding a copy of them takes (or clears):
 * RAID1 every active member at its data offset; RAID0 their one place; RAID10 both copies, on
 * whichever members are present (md_array_locate_copy). */
static int array_pieces(struct asr_machine *m, const struct md_set *a, uint64_t off, uint64_t len, bool clear,
                        struct asr_error *err)
{
    if (a->members[0].level == 1) {
        for (size_t k = 0; k < a->n; k++)
            if (a->members[k].role < a->members[k].raid_disks &&
                pieces_add(pieces_of(m->nodes[a->member_node[k]], clear), a->members[k].data_offset + off, len))
                return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        return ASR_OK;
    }
    for (uint32_t copy = 0; copy < md_copies(&a->members[0]); copy++)
        for (uint64_t at_off = off, end = off + len; at_off < end;) {
            size_t k;
            uint64_t at, contig;
            int rc = md_array_locate_copy(a->members, a->n, at_off, copy, &k, &at, &contig, err);
            if (rc != ASR_OK)
                return rc;
            if (contig > end - at_off)
                contig = end - at_off;
            if (k < a->n && pieces_add(pieces_of(m->nodes[a->member_node[k]], clear), at, contig))
                return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
            at_off += contig;
        }
    return ASR_OK;
}

static int map_array(struct asr_machine *m, struct node *an, const struct md_set *a, struct asr_error *err)
{
    for (uint64_t off = 0; off < an->vol->size_bytes;) {
        size_t k;
        uint64_t at, contig;
        int rc = md_array_locate(a->members, a->n, off, &k, &at, &contig, err);
        if (rc != ASR_OK)
            return rc;
        if (contig > an->vol->size_bytes - off)
            contig = an->vol->size_bytes - off;
        if ((rc = window_map_add(&an->map, &m->nodes[a->member_node[k]]->w, at, contig, err)) != ASR_OK)
            return rc;
        off += contig;
    }
    return ASR_OK;
}

static int assemble_array(struct asr_machine *m, size_t g, struct asr_error *err)
{
    struct md_set *a = &m->arrays[g];
    const struct md_member *first = &a->members[0];
    bool degraded = false;
    struct asr_error why = {0};
    if (md_check_members(a->members, a->n, &degraded, &why) != ASR_OK) {
        machine_warn(m, "md array %s: %s: its members are captured whole", first->uuid_text, why.msg);
        return ASR_OK;
    }
    if (degraded)
        machine_warn(m, "md array %s is degraded (%s): read through the members present", first->uuid_text, why.msg);
    struct node *an = add_node(m, NODE_MD, err);
    if (!an)
        return err->code;
    a->node = m->nnodes - 1;
    an->array = g;
    const char *name = strchr(first->name, ':') ? strchr(first->name, ':') + 1 : first->name;
    snprintf(an->sv.name, sizeof an->sv.name, "md/%s", name[0] ? name : first->uuid_text);
    struct asr_volume_info *v = an->vol;
    const struct asr_volume_info *under = m->nodes[a->member_node[0]]->vol;
    v->kind = ASR_VOLUME_PARTITION;
    v->disk_index = under->disk_index;
    v->partition_number = under->partition_number;
    v->size_bytes = first->array_size;
    const char *level = md_level_name(first->level);
    snprintf(v->type_name, sizeof v->type_name, "md %s array (metadata %d.%d)", level ? level : "?",
             first->version / 100, first->version % 100 / 10);
    for (size_t k = 0; k < a->n; k++)
        m->nodes[a->member_node[k]]->array = g;
    int rc = first->level == 0 || first->level == 1 || first->level == 10 ? map_array(m, an, a, &why) : ASR_E_UNSUPPORTED;
    if (rc == ASR_E_NOMEM)
        return asr_fail_public(err, rc, "%s", why.msg);
    if (rc != ASR_OK) {
        v->natural_capture = ASR_CAPTURE_FULL;
        snprintf(v->warning, sizeof v->warning, "%s: the data area of every member captured whole%s", level ? level : "?",
                 first->level >= 4 && first->level <= 6 ? " (parity must stay consistent)" : "");
        snprintf(v->reason, sizeof v->reason, "cannot be looked into: %s arrays are not mapped", level ? level : "?");
        return ASR_OK;
    }
    look_into(an);
    return ASR_OK;
}

static int group_arrays(struct asr_machine *m, struct asr_error *err)
{
    size_t parts = m->nnodes;
    if (!(m->arrays = calloc(parts + 1, sizeof *m->arrays)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < parts; i++) {
        struct node *n = m->nodes[i];
        if (!n->member.found)
            continue;
        size_t g = 0;
        while (g < m->narrays && memcmp(m->arrays[g].members[0].uuid, n->member.uuid, 16))
            g++;
        struct md_set *a = &m->arrays[g];
        if (g == m->narrays) {
            m->narrays++;
            a->node = SIZE_MAX;
            a->members = calloc(parts, sizeof *a->members);
            a->member_node = calloc(parts, sizeof *a->member_node);
            if (!a->members || !a->member_node)
                return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        }
        a->members[a->n] = n->member;
        a->member_node[a->n++] = i;
    }
    for (size_t g = 0; g < m->narrays; g++) {
        int rc = assemble_array(m, g, err);
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

/* ---- LUKS containers --------------------------------------------------------------------------- */

/* The first key of the options that opens the container, or NULL (a wrong key is no error). */
static struct luks_key *try_keys(const struct asr_machine *m, const struct node *c, struct asr_error *err)
{
    const struct asr_machine_options *o = m->opt;
    struct luks_key *key = NULL;
    for (size_t k = 0; o && k < o->n_key_files && !key; k++)
        if (luks_unlock_keyfile(&c->luks, o->key_files[k], &key, err) == ASR_E_NOMEM)
            return NULL;
    if (o && o->passphrase && !key)
        luks_unlock(&c->luks, o->passphrase, o->passphrase_len, &key, err);
    return key;
}

static int open_luks(struct asr_machine *m, size_t i, struct asr_error *err)
{
    struct node *c = m->nodes[i];
    char name[200];
    struct asr_error why = {0};
    int rc = luks_read_header(&c->w, &c->luks, &why);
    if (rc == ASR_E_NOMEM)
        return asr_fail_public(err, rc, "%s", why.msg);
    if (rc != ASR_OK) {
        c->luks_error = true;
        snprintf(c->vol->warning, sizeof c->vol->warning, "LUKS header unusable (%.250s): captured whole", why.msg);
        machine_warn(m, "%s: LUKS header unusable, what it holds cannot be looked into: %s",
                     node_name(m, i, name, sizeof name), why.msg);
        return ASR_OK;
    }
    struct luks_key *key = try_keys(m, c, &why);
    if (!key) {
        snprintf(c->vol->warning, sizeof c->vol->warning, "LUKS%d container, not opened: its ciphertext captured "
                 "whole (--key-file or --unlock opens it, and then only its used sectors are stored)", c->luks.version);
        return ASR_OK;
    }
    struct node *l = add_node(m, NODE_LUKS, err);
    if (!l) {
        luks_key_free(key);
        return err->code;
    }
    l->container = i;
    snprintf(l->sv.name, sizeof l->sv.name, "luks/%s", c->luks.uuid);
    rc = luks_volume_open(&c->w, &c->luks, key, l->sv.name, &l->plain, &l->w, &why);
    luks_key_free(key);
    if (rc != ASR_OK) {
        m->nnodes--; /* not a volume after all */
        free(l);
        if (rc == ASR_E_NOMEM)
            return asr_fail_public(err, rc, "%s", why.msg);
        machine_warn(m, "%s: the LUKS volume cannot be opened: %s", node_name(m, i, name, sizeof name), why.msg);
        return ASR_OK;
    }
    c->opened = m->nnodes - 1;
    struct asr_volume_info *v = l->vol;
    v->kind = ASR_VOLUME_PARTITION;
    v->disk_index = c->vol->disk_index;
    v->partition_number = c->vol->partition_number;
    v->size_bytes = c->luks.data_size;
    snprintf(v->type_name, sizeof v->type_name, "LUKS%d volume (%.16s-%.24s)", c->luks.version, c->luks.cipher,
             c->luks.mode);
    judge(l);
    return ASR_OK;
}

static int find_luks(struct asr_machine *m, struct asr_error *err)
{
    for (size_t i = 0, n = m->nnodes; i < n; i++)
        if (m->nodes[i]->readable && !strcmp(m->nodes[i]->vol->map.fs_type, "crypto_LUKS")) {
            int rc = open_luks(m, i, err);
            if (rc != ASR_OK)
                return rc;
        }
    return ASR_OK;
}

/* ---- PVs and VGs ------------------------------------------------------------------------------ */

static int find_pvs(struct asr_machine *m, struct asr_error *err)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        struct node *n = m->nodes[i];
        if (!n->readable || strcmp(n->vol->map.fs_type, "LVM2_member"))
            continue;
        struct asr_error why = {0};
        int rc = lvm_read_pv(&n->w, &n->pv, &why);
        if (rc == ASR_E_NOMEM)
            return asr_fail_public(err, rc, "%s", why.msg);
        if (rc != ASR_OK) {
            char name[200];
            n->pv_error = true;
            snprintf(n->vol->warning, sizeof n->vol->warning, "LVM2 PV unreadable (%.250s): captured whole", why.msg);
            machine_warn(m, "%s: LVM2 PV unreadable, its logical volumes cannot be looked into: %s",
                         node_name(m, i, name, sizeof name), why.msg);
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
    if (!(m->vgs = calloc(m->nnodes + 1, sizeof *m->vgs)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->nnodes; i++) {
        struct node *n = m->nodes[i];
        if (!n->pv || !n->pv->has_vg)
            continue;
        size_t g = 0;
        while (g < m->nvgs && strcmp(m->vgs[g].meta->uuid, n->pv->vg.uuid))
            g++;
        if (g == m->nvgs)
            m->vgs[m->nvgs++].meta = &n->pv->vg;
        else if (n->pv->vg.seqno > m->vgs[g].meta->seqno)
            m->vgs[g].meta = &n->pv->vg; /* a PV that missed the last update holds an older copy */
        n->vg = g;
    }
    for (size_t g = 0; g < m->nvgs; g++) {
        struct vg_set *s = &m->vgs[g];
        if (!(s->pv_node = malloc((s->meta->npvs + 1) * sizeof *s->pv_node)))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        s->complete = true;
        for (size_t k = 0; k < s->meta->npvs; k++) {
            s->pv_node[k] = SIZE_MAX;
            for (size_t i = 0; i < m->nnodes; i++)
                if (m->nodes[i]->vg == g && same_pv(s->meta->pvs[k].uuid, m->nodes[i]->pv->uuid))
                    s->pv_node[k] = i;
            if (s->pv_node[k] != SIZE_MAX && m->nodes[s->pv_node[k]]->kind != NODE_PARTITION) {
                /* A PV on an array: taken by what its LVs capture, as a PV partition is (land). */
                struct asr_volume_info *v = m->nodes[s->pv_node[k]]->vol;
                v->natural_capture = ASR_CAPTURE_USED;
                snprintf(v->warning, sizeof v->warning, "LVM2 PV of VG %s: its label and metadata, and the bytes its "
                         "selected logical volumes capture", s->meta->name);
            }
            if (s->pv_node[k] == SIZE_MAX) {
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

/* A run of an LV's bytes on one of its PVs: len bytes at the PV's offset at. */
typedef int (*pv_run_fn)(struct node *pv, uint64_t at, uint64_t len, void *ctx, struct asr_error *err);

/* Calls take for each run of the LV's bytes [off, end) on its PVs, in order. */
static int lv_pv_runs(struct asr_machine *m, const struct node *l, uint64_t off, uint64_t end, pv_run_fn take,
                      void *ctx, struct asr_error *err)
{
    const struct vg_set *s = &m->vgs[l->vg];
    while (off < end) {
        size_t pv;
        uint64_t at, contig;
        int rc = lvm_lv_locate(s->meta, l->lv, off, &pv, &at, &contig, err);
        if (rc != ASR_OK)
            return rc;
        if (contig > end - off)
            contig = end - off;
        if ((rc = take(m->nodes[s->pv_node[pv]], at, contig, ctx, err)) != ASR_OK)
            return rc;
        off += contig;
    }
    return ASR_OK;
}

static int map_run(struct node *pv, uint64_t at, uint64_t len, void *ctx, struct asr_error *err)
{
    struct node *l = ctx;
    return window_map_add(&l->map, &pv->w, at, len, err);
}

/* The LV's window: every byte located on its PV and added as a piece of that PV's window. */
static int map_lv(struct asr_machine *m, struct node *l, struct asr_error *err)
{
    return lv_pv_runs(m, l, 0, l->vol->size_bytes, map_run, l, err);
}

static int analyze_lv(struct asr_machine *m, size_t g, const struct lvm_lv *lv, struct asr_error *err)
{
    const struct vg_set *s = &m->vgs[g];
    struct node *l = add_node(m, NODE_LV, err);
    if (!l)
        return err->code;
    l->vg = g;
    l->lv = lv;
    struct asr_volume_info *v = l->vol;
    bool visible = lv_visible(lv);
    snprintf(l->sv.name, sizeof l->sv.name, visible ? "%s/%s" : "%s/[%s]", s->meta->name, lv->name);
    v->kind = ASR_VOLUME_PARTITION;
    v->size_bytes = lv->extents * s->meta->extent_size * LVM_SECTOR;
    /* Where it starts, for listings: the partition under its first extent. */
    struct lvm_area *areas = NULL;
    size_t na = 0;
    if (lvm_lv_map(s->meta, lv, &areas, &na, err) != ASR_OK)
        return err->code;
    if (na) {
        const struct asr_volume_info *first = m->nodes[s->pv_node[areas[0].pv]]->vol;
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
                         l->sv.name, unmapped);
        return ASR_OK;
    }
    snprintf(v->type_name, sizeof v->type_name, "LVM2 logical volume");
    struct asr_error why = {0};
    int rc = map_lv(m, l, &why);
    if (rc == ASR_E_NOMEM)
        return asr_fail_public(err, rc, "%s", why.msg);
    if (rc != ASR_OK) { /* extents outside their PV: the metadata is not to be trusted */
        l->auxiliary = true;
        v->natural_capture = ASR_CAPTURE_FULL;
        snprintf(v->warning, sizeof v->warning, "its extents do not fit its PVs (%.250s): captured whole", why.msg);
        machine_warn(m, "LV %s: %s", l->sv.name, why.msg);
        return ASR_OK;
    }
    look_into(l);
    return ASR_OK;
}

static int analyze_lvs(struct asr_machine *m, struct asr_error *err)
{
    for (size_t g = 0; g < m->nvgs; g++)
        for (size_t k = 0; m->vgs[g].complete && k < m->vgs[g].meta->nlvs; k++) {
            int rc = analyze_lv(m, g, &m->vgs[g].meta->lvs[k], err);
            if (rc != ASR_OK)
                return rc;
        }
    return ASR_OK;
}

/* ---- the layers under a node ------------------------------------------------------------------- */

/* The nodes directly under node i: an LV's PVs (those its extents lie on, or all of its VG's when
 * it maps none), an array's members. *out is malloc'd. */
static size_t parents(const struct asr_machine *m, size_t i, size_t **out)
{
    const struct node *n = m->nodes[i];
    *out = NULL;
    size_t cnt = 0;
    if (n->kind == NODE_MD) {
        const struct md_set *a = &m->arrays[n->array];
        if ((*out = malloc((a->n + 1) * sizeof **out)))
            for (size_t k = 0; k < a->n; k++)
                (*out)[cnt++] = a->member_node[k];
    } else if (n->kind == NODE_LV) {
        const struct vg_set *s = &m->vgs[n->vg];
        if ((*out = malloc((s->meta->npvs + 1) * sizeof **out)))
            for (size_t k = 0; k < s->meta->npvs; k++)
                (*out)[cnt++] = s->pv_node[k];
    } else if (n->kind == NODE_LUKS && (*out = malloc(sizeof **out))) {
        (*out)[cnt++] = n->container;
    }
    return cnt;
}

void stacks_need_below(struct asr_machine *m, size_t i)
{
    size_t *up = NULL, n = parents(m, i, &up);
    const struct node *child = m->nodes[i];
    for (size_t k = 0; k < n; k++) {
        struct node *p = m->nodes[up[k]];
        if (p->vol->critical)
            continue;
        p->vol->critical = true;
        if (child->kind == NODE_LV)
            snprintf(p->vol->reason, sizeof p->vol->reason, "PV of VG %s, which holds LV %.60s (%.150s)",
                     m->vgs[child->vg].meta->name, child->sv.name, child->vol->reason);
        else if (child->kind == NODE_LUKS)
            snprintf(p->vol->reason, sizeof p->vol->reason, "LUKS container of %.60s (%.200s)", child->sv.name,
                     child->vol->reason);
        else
            snprintf(p->vol->reason, sizeof p->vol->reason, "member of md array %.60s (%.200s)", child->sv.name,
                     child->vol->reason);
        stacks_need_below(m, up[k]);
    }
    free(up);
}

const char *stacks_opaque(const struct asr_machine *m, size_t i)
{
    const struct node *n = m->nodes[i];
    if (n->pv_error)
        return "an LVM2 PV whose metadata cannot be read";
    if (n->pv && n->pv->has_vg && (n->vg == SIZE_MAX || !m->vgs[n->vg].complete))
        return "an LVM2 PV whose VG is not complete on these disks";
    if (n->member_error)
        return "an md member whose superblock cannot be read";
    if (n->member.found && (n->array == SIZE_MAX || m->arrays[n->array].node == SIZE_MAX))
        return "an md member whose array cannot be assembled from these disks";
    if (n->kind == NODE_MD && !n->readable)
        return "an md array of a level asrimg does not map";
    if (n->readable && !strcmp(n->vol->map.fs_type, "crypto_LUKS") && n->opened == SIZE_MAX)
        return n->luks_error ? "a LUKS container whose header cannot be read"
                             : "a LUKS container, opened without its key (--key-file or --unlock)";
    return NULL;
}

/* ---- the machine ---------------------------------------------------------------------------- */

int stacks_assemble(struct asr_machine *m, struct asr_error *err)
{
    int rc = add_partitions(m, err);
    if (rc == ASR_OK) {
        find_members(m);
        rc = group_arrays(m, err);
    }
    if (rc == ASR_OK)
        rc = find_luks(m, err);
    if (rc == ASR_OK)
        rc = find_pvs(m, err);
    if (rc == ASR_OK)
        rc = group_vgs(m, err);
    if (rc == ASR_OK)
        rc = analyze_lvs(m, err);
    for (size_t i = 0; rc == ASR_OK && i < m->nnodes; i++)
        if (m->nodes[i]->kind != NODE_PARTITION && m->nodes[i]->vol->critical)
            stacks_need_below(m, i);
    return rc;
}

int stacks_list(struct asr_machine *m, struct asr_error *err)
{
    if (!(m->stacked = calloc(m->nnodes + 1, sizeof *m->stacked)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i]->kind != NODE_PARTITION)
            m->stacked[m->nstacked++] = &m->nodes[i]->sv;
    return ASR_OK;
}

void asr_machine_free(struct asr_machine *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nnodes; i++) {
        struct node *n = m->nodes[i];
        window_map_free(&n->map);
        luks_volume_free(n->plain);
        luks_header_free(&n->luks);
        if (n->kind != NODE_PARTITION)
            asr_usedmap_free(&n->sv.info.map);
        lvm_pv_info_free(n->pv);
        free(n->take.v);
        free(n->clear.v);
        free(n);
    }
    for (size_t g = 0; g < m->nvgs; g++)
        free(m->vgs[g].pv_node);
    for (size_t g = 0; g < m->narrays; g++) {
        free(m->arrays[g].members);
        free(m->arrays[g].member_node);
    }
    free(m->nodes);
    free(m->vgs);
    free(m->arrays);
    free(m->stacked);
    free(m->warnings);
    free(m);
}

size_t asr_machine_stacked(const struct asr_machine *m, const struct asr_stacked_volume *const **v)
{
    *v = m->stacked;
    return m->nstacked;
}

const char *asr_machine_warnings(const struct asr_machine *m) { return m->warnings ? m->warnings : ""; }

/* ---- selection ------------------------------------------------------------------------------- */

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

/* Every NAME/NAME item of the selection must name a stacked volume. */
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
            for (size_t i = 0; i < m->nstacked && !found; i++)
                found = listed(item, m->stacked[i]->name);
            if (!found)
                return asr_fail_public(err, ASR_E_ARG, "volume selection '%s': no logical volume or array of that name",
                                       item);
        }
        s = end ? end + 1 : NULL;
    }
    return ASR_OK;
}

/* Whether node i is taken whole by the selection, or lies on a node that is: a partition named
 * by number or a stacked volume named by name; in the default selection, a partition critical
 * for a reason of its own (its type, a mount on this machine), which says nothing of which
 * volumes above it the machine needs. */
static bool on_taken(const struct asr_machine *m, size_t i, const char *selection, bool critical)
{
    const struct node *n = m->nodes[i];
    if (n->kind == NODE_PARTITION) {
        char full[32], part[32];
        snprintf(full, sizeof full, "%u:%u", n->vol->disk_index, n->vol->partition_number);
        snprintf(part, sizeof part, "%u", n->vol->partition_number);
        return critical ? n->critical_own : listed(selection, full) || (n->vol->disk_index == 0 && listed(selection, part));
    }
    if (!critical && listed(selection, n->sv.name))
        return true;
    bool on = false;
    if (n->kind == NODE_LV) { /* only the PVs its extents lie on */
        const struct vg_set *s = &m->vgs[n->vg];
        struct lvm_area *a = NULL;
        size_t na = 0;
        struct asr_error ignored;
        if (lvm_lv_map(s->meta, n->lv, &a, &na, &ignored) == ASR_OK)
            for (size_t k = 0; k < na && !on; k++)
                on = on_taken(m, s->pv_node[a[k].pv], selection, critical);
        free(a);
        return on;
    }
    size_t *up = NULL, cnt = parents(m, i, &up);
    for (size_t k = 0; k < cnt && !on; k++)
        on = on_taken(m, up[k], selection, critical);
    free(up);
    return on;
}

static void choose(struct asr_machine *m, const char *selection)
{
    bool all = selection && !strcmp(selection, "all"), critical = !selection || !strcmp(selection, "critical");
    bool *vg_used = calloc(m->nvgs + 1, sizeof *vg_used);
    for (size_t i = 0; i < m->nnodes; i++) {
        struct node *n = m->nodes[i];
        if (n->kind == NODE_PARTITION)
            continue;
        bool take = !n->auxiliary && (all || (critical && n->vol->critical) || on_taken(m, i, selection, critical));
        n->vol->capture = take ? n->vol->natural_capture : ASR_CAPTURE_SKIP;
        if (take && n->kind == NODE_LV && vg_used)
            vg_used[n->vg] = true;
    }
    for (size_t i = 0; vg_used && i < m->nnodes; i++) /* what a selected LV needs: its VG's hidden LVs */
        if (m->nodes[i]->auxiliary && vg_used[m->nodes[i]->vg])
            m->nodes[i]->vol->capture = ASR_CAPTURE_FULL;
    free(vg_used);
}

/* ---- pushing captures down ------------------------------------------------------------------ */

/* Node i's own capture in its own bytes, added to what the volumes above it need. */
static int own_capture(struct node *n)
{
    const struct asr_volume_info *v = n->vol;
    if (v->capture == ASR_CAPTURE_SKIP)
        return ASR_OK;
    if (v->capture == ASR_CAPTURE_FULL)
        return pieces_add(&n->take, 0, v->size_bytes);
    for (size_t k = 0; k < v->map.used.n; k++)
        if (pieces_add(&n->take, v->map.used.v[k].offset, v->map.used.v[k].length))
            return ASR_E_NOMEM;
    /* Cleared ranges go down the stack as cleared ranges of the partitions under it (zeros in an
     * LV are zeros in its PV extents and on every mirror), but through LUKS as ciphertext read
     * (push_luks). */
    for (size_t k = 0; k < v->map.cleared.n; k++)
        if (pieces_add(&n->clear, v->map.cleared.v[k].offset, v->map.cleared.v[k].length))
            return ASR_E_NOMEM;
    return ASR_OK;
}

static int push_run(struct node *pv, uint64_t at, uint64_t len, void *ctx, struct asr_error *err)
{
    const int *clear = ctx;
    return pieces_add(pieces_of(pv, *clear), at, len) ? asr_fail_public(err, ASR_E_NOMEM, "out of memory") : ASR_OK;
}

/* The bytes an LV takes (or clears), located on its PVs. An LV with no mapped bytes (a type not
 * mapped) holds nothing of its own: its data lies in its hidden LVs. */
static int push_lv(struct asr_machine *m, struct node *l, struct asr_error *err)
{
    if (lvm_lv_unmapped(l->lv))
        return ASR_OK;
    for (int clear = 0; clear < 2; clear++) {
        const struct pieces *p = pieces_of(l, clear);
        for (size_t i = 0; i < p->n; i++) {
            int rc = lv_pv_runs(m, l, p->v[i].offset, p->v[i].offset + p->v[i].length, push_run, &clear, err);
            if (rc != ASR_OK)
                return rc;
        }
    }
    return ASR_OK;
}

/* The bytes an array takes, on its members: mapped arrays through their layout (RAID1 and RAID10:
 * every copy); the levels and layouts not mapped (parity, linear, RAID10 far/offset) as every
 * member's whole data area, which keeps mirrors and parity consistent. */
static int push_array(struct asr_machine *m, struct node *an, struct asr_error *err)
{
    const struct md_set *a = &m->arrays[an->array];
    if (an->readable) {
        for (int clear = 0; clear < 2; clear++)
            for (size_t i = 0; i < pieces_of(an, clear)->n; i++) {
                const struct asr_range *r = &pieces_of(an, clear)->v[i];
                int rc = array_pieces(m, a, r->offset, r->length, clear, err);
                if (rc != ASR_OK)
                    return rc;
            }
        return ASR_OK;
    }
    /* Cleared ranges are not zeroed on a parity array's members: its data areas go whole. */
    for (size_t k = 0; (an->take.n || an->clear.n) && k < a->n; k++)
        if (pieces_add(&m->nodes[a->member_node[k]]->take, a->members[k].data_offset, a->members[k].data_size))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    return ASR_OK;
}

static int range_cmp(const void *a, const void *b);

/* p's pieces sorted and merged where they overlap or touch, cut at limit, as ranges. */
static int merged(struct pieces *p, uint64_t limit, struct asr_ranges *out)
{
    *out = (struct asr_ranges){0};
    if (!p->n)
        return ASR_OK;
    qsort(p->v, p->n, sizeof *p->v, range_cmp);
    for (size_t i = 0; i < p->n; i++) {
        uint64_t off = p->v[i].offset, end = off + p->v[i].length;
        if (end > limit)
            end = limit; /* a member's data area reaches no further than the partition */
        if (off >= end)
            continue;
        if (out->n && off <= out->v[out->n - 1].offset + out->v[out->n - 1].length) {
            struct asr_range *last = &out->v[out->n - 1];
            if (end > last->offset + last->length)
                last->length = end - last->offset;
            continue;
        }
        if (asr_ranges_add(out, off, end - off) != ASR_OK)
            return ASR_E_NOMEM;
    }
    return ASR_OK;
}

/* What an opened LUKS volume takes, as ciphertext sectors of its container (the header and
 * keyslot areas with them): never a byte of plaintext. Its cleared ranges are taken too: zeros
 * of plaintext are not zeros of ciphertext. */
static int push_luks(struct asr_machine *m, struct node *l, struct asr_error *err)
{
    for (size_t i = 0; i < l->clear.n; i++)
        if (pieces_add(&l->take, l->clear.v[i].offset, l->clear.v[i].length))
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    if (!l->take.n)
        return ASR_OK;
    struct node *c = m->nodes[l->container];
    struct asr_ranges in = {0}, out = {0};
    int rc = merged(&l->take, UINT64_MAX, &in);
    if (rc == ASR_OK)
        rc = luks_ciphertext_ranges(&c->luks, &in, &out, err);
    else
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == ASR_OK && i < out.n; i++)
        if (pieces_add(&c->take, out.v[i].offset, out.v[i].length))
            rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    asr_ranges_free(&in);
    asr_ranges_free(&out);
    return rc;
}

/* The volume's own structures, kept verbatim whenever anything of it is captured: a PV's label
 * and metadata areas (all outside its extents), an md member's superblock, bitmap and bad-block
 * log (all outside its data area). */
static int own_metadata(const struct asr_machine *m, const struct node *n, struct pieces *p)
{
    uint64_t size = n->vol->size_bytes;
    if (n->pv && n->vg != SIZE_MAX && m->vgs[n->vg].complete) {
        const struct lvm_vg *vg = m->vgs[n->vg].meta;
        const struct lvm_pv *me = &vg->pvs[n->pv->this_pv];
        uint64_t pe_start = me->pe_start * LVM_SECTOR, pe_end = pe_start + me->pe_count * vg->extent_size * LVM_SECTOR;
        if (pieces_add(p, 0, pe_start < size ? pe_start : size) || (pe_end < size && pieces_add(p, pe_end, size - pe_end)))
            return ASR_E_NOMEM;
    }
    if (n->member.found && n->array != SIZE_MAX && m->arrays[n->array].node != SIZE_MAX) {
        uint64_t end = n->member.data_offset + n->member.data_size;
        if (pieces_add(p, 0, n->member.data_offset) || (end < size && pieces_add(p, end, size - end)))
            return ASR_E_NOMEM;
    }
    if (n->opened != SIZE_MAX) { /* the header and keyslots; whatever follows a fixed-size segment */
        uint64_t end = n->luks.data_offset + n->luks.data_size;
        if (pieces_add(p, 0, n->luks.data_offset) || (end < size && pieces_add(p, end, size - end)))
            return ASR_E_NOMEM;
    }
    return ASR_OK;
}

static int range_cmp(const void *a, const void *b)
{
    const struct asr_range *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* A partition under a stack: its used map becomes its metadata plus what the volumes above take,
 * its cleared ranges what they clear (where nothing above takes the same bytes). */
static int land(struct asr_machine *m, struct node *n, struct asr_error *err)
{
    bool in_stack = (n->pv && n->vg != SIZE_MAX && m->vgs[n->vg].complete) ||
                    (n->member.found && n->array != SIZE_MAX && m->arrays[n->array].node != SIZE_MAX) ||
                    n->opened != SIZE_MAX;
    if (!in_stack)
        return ASR_OK;
    struct asr_volume_info *v = n->vol;
    if (v->capture == ASR_CAPTURE_SKIP && (n->take.n || n->clear.n)) { /* a volume above it was selected */
        v->capture = ASR_CAPTURE_USED;
        size_t len = strlen(v->reason);
        snprintf(v->reason + len, sizeof v->reason - len, "; holds a selected volume");
    }
    struct asr_ranges used = {0}, clear = {0}, cleared = {0};
    if (own_metadata(m, n, &n->take) || merged(&n->take, v->size_bytes, &used) ||
        merged(&n->clear, v->size_bytes, &clear) || asr_ranges_minus(&clear, &used, &cleared)) {
        asr_ranges_free(&used);
        asr_ranges_free(&clear);
        asr_ranges_free(&cleared);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    asr_ranges_free(&clear);
    asr_ranges_free(&v->map.used);
    asr_ranges_free(&v->map.cleared);
    v->map.used = used;
    v->map.cleared = cleared;
    v->map.block_size = LVM_SECTOR;
    v->natural_capture = ASR_CAPTURE_USED;
    if (v->capture != ASR_CAPTURE_SKIP)
        v->capture = ASR_CAPTURE_USED;
    snprintf(v->warning, sizeof v->warning, "%s: its own metadata, and the bytes its selected volumes capture "
             "(listed under storage stacks)", n->pv ? "LVM2 PV" : n->opened != SIZE_MAX ? "LUKS container" : "md member");
    return ASR_OK;
}

int asr_machine_select(struct asr_machine *m, const char *selection, struct asr_error *err)
{
    bool all = selection && !strcmp(selection, "all"), critical = !selection || !strcmp(selection, "critical");
    int rc = all || critical ? ASR_OK : check_items(m, selection, err);
    if (rc != ASR_OK)
        return rc;
    choose(m, selection);
    for (size_t i = 0; i < m->nnodes; i++)
        m->nodes[i]->take.n = m->nodes[i]->clear.n = 0;
    /* Top down: each stacked node after every node above it, since nodes come after their parents. */
    for (size_t i = m->nnodes; rc == ASR_OK && i-- > 0;) {
        struct node *n = m->nodes[i];
        if (n->kind == NODE_PARTITION) {
            rc = land(m, n, err);
            continue;
        }
        if (own_capture(n) || (n->take.n && own_metadata(m, n, &n->take)))
            rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        else if (n->kind == NODE_LV)
            rc = push_lv(m, n, err);
        else if (n->kind == NODE_LUKS)
            rc = push_luks(m, n, err);
        else
            rc = push_array(m, n, err);
    }
    return rc;
}
