/* What the root filesystems on the disks say the machine needs to boot, decided from the disks
 * themselves (a backup usually runs from a rescue system, where nothing of the machine is
 * mounted): every Linux root found (a filesystem holding /etc/fstab, on a partition, an md array
 * or inside an LV) has its /etc/fstab, /etc/crypttab and mdadm.conf read, and the kernel command lines of the
 * boot loader configurations found on the disks; each device they name is looked up among the
 * partitions and logical volumes. Needed to boot: /, /boot, /boot/efi, /efi, /usr, /var (and
 * below), swap (header only), the LUKS containers and md members named for them, and every layer
 * under those (stacks.c: the PVs of an LV's VG). Data mounts (/home, /srv, ...) are listed as
 * such. A volume that might hold what the machine needs but cannot be looked into (LUKS without a
 * key, md, an unreadable PV, a filesystem asrimg cannot read) is selected whenever the roots found
 * do not account for everything they need, or when no root was found at all: never skipped
 * silently. */
#include "bootscan.h"

#include "analyze.h"
#include "bootconf.h"
#include "fs_file.h"
#include "fs_reader.h"
#include "guid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One volume the configuration may name: a partition, an md array or an LV (a node). */
struct candidate {
    struct asr_volume_info *v;
    const struct asr_window *w;
    size_t node; /* index in m->nodes */
    char name[200];
    char part_uuid[40], part_label[ASR_NAME_MAX + 1];
    const char *vg, *lvname;       /* an LV's */
    const char *md_uuid, *md_name; /* an array's, or a member partition's (blkid's UUID) */
    struct fs_vol *fv;             /* its filesystem, opened on the first read */
    bool fv_failed;
    /* btrfs: the subvolume holding the root, as a path from the top level ("/root"), which every
     * path read is under; "" for the filesystem's top level. */
    char subvol[256];
    /* btrfs: the subvolume a boot loader's rootflags= (subvol= or subvolid=) names for a root=
     * resolved to this volume: looked into first. */
    char hint_path[256];
    uint64_t hint_id;
};

struct scan {
    struct asr_machine *m;
    struct candidate *c;
    size_t n;
    struct bootconf *conf; /* of the root being read */
    bool unresolved;       /* a critical device of some root matches no volume */
    bool any_root;
};

/* ---- reading a small file -------------------------------------------------------------------- */

/* The file at path of the candidate's filesystem into *out (NUL-terminated, malloc'd), through
 * engine/fs/fs_file.h (the volume opened once per candidate, its journal replayed once). 1 when
 * read, 0 when there is no such file or no reader for the filesystem, -1 when it cannot be read. */
static int read_conf(struct candidate *c, const char *path, char **out, size_t *len)
{
    *out = NULL;
    if (!c->w || c->v->map.damaged || c->fv_failed)
        return c->fv_failed ? -1 : 0;
    struct asr_error err = {0};
    if (!c->fv) {
        int rc = fs_vol_open(c->w, c->v->map.fs_type, &c->fv, &err);
        if (rc == ASR_E_UNSUPPORTED)
            return 0;
        if (rc != ASR_OK) {
            c->fv_failed = true;
            return -1;
        }
    }
    char full[512];
    snprintf(full, sizeof full, "%s%s", c->subvol, path);
    uint8_t *buf = NULL;
    int rc = fs_vol_read(c->fv, full, BOOTCONF_MAX_INPUT, &buf, len, &err);
    if (rc == FS_E_NOT_FOUND || rc == FS_E_NOT_FILE)
        return 0;
    if (rc != ASR_OK)
        return -1;
    *out = (char *)buf;
    return 1;
}

/* ---- matching specs to volumes ---------------------------------------------------------------- */

static struct bootvol_ids ids_of(const struct candidate *c)
{
    const struct asr_volume_info *v = c->v;
    bool member = !strcmp(v->map.fs_type, "linux_raid_member"); /* blkid's UUID is the array's */
    return (struct bootvol_ids){
        .fs_uuid = member ? NULL : v->map.fs_uuid,
        .fs_label = member ? NULL : v->map.fs_label,
        .part_uuid = c->part_uuid,
        .part_label = c->part_label,
        .lv_vg = c->vg,
        .lv_name = c->lvname,
        .md_uuid = member ? v->map.fs_uuid : c->md_uuid,
        .md_name = c->md_name,
    };
}

static struct candidate *find(struct scan *s, const struct bootspec *spec)
{
    for (size_t i = 0; i < s->n; i++) {
        struct bootvol_ids ids = ids_of(&s->c[i]);
        if (bootspec_match(spec, &ids))
            return &s->c[i];
    }
    return NULL;
}

/* Marks c needed to boot, saying why (the first reason found stays), and the layers under it. */
static void need(struct scan *s, struct candidate *c, const char *why)
{
    struct asr_volume_info *v = c->v;
    if (!v->critical) {
        v->critical = true;
        snprintf(v->reason, sizeof v->reason, "%.300s", why);
    }
    stacks_need_below(s->m, c->node);
}

static void data_volume(struct candidate *c, const char *why)
{
    if (!c->v->critical)
        snprintf(c->v->reason, sizeof c->v->reason, "data volume: not needed to boot (%.250s)", why);
}

/* ---- one root ---------------------------------------------------------------------------------- */

static void resolve_mounts(struct scan *s, const struct candidate *root)
{
    const struct bootconf *bc = s->conf;
    for (size_t i = 0; i < bc->n_mounts; i++) {
        const struct bootmount *mt = &bc->mounts[i];
        if (mt->role == BOOTROLE_IGNORED || mt->role == BOOTROLE_SWAPFILE || mt->role == BOOTROLE_NOAUTO)
            continue;
        char why[256];
        const char *what = mt->role == BOOTROLE_SWAP ? "swap" : mt->target;
        snprintf(why, sizeof why, "%.60s in /etc/fstab of %.150s", what, root->name);
        struct candidate *c = find(s, &mt->spec);
        struct node *n = c ? s->m->nodes[c->node] : NULL;
        if (n && n->kind != NODE_PARTITION && !n->sv.mount[0] && mt->role != BOOTROLE_SWAP)
            snprintf(n->sv.mount, sizeof n->sv.mount, "%s", mt->target); /* what the image records */
        if (c && mt->role == BOOTROLE_DATA)
            data_volume(c, why);
        else if (c)
            need(s, c, why);
        else if (mt->role != BOOTROLE_DATA && !mt->nofail) {
            s->unresolved = true;
            machine_warn(s->m, "%s: %s, named by /etc/fstab of %s, is on no volume asrimg can see on these "
                         "disks: the restored machine would wait for it at boot", what, mt->source, root->name);
        }
    }
    /* crypttab and mdadm.conf: the containers and arrays the root's system opens at boot. Which
     * of them hold a critical mount cannot be told without looking inside, so each is needed. */
    for (size_t i = 0; i < bc->n_crypts; i++) {
        struct candidate *c = find(s, &bc->crypts[i].spec);
        char why[256];
        snprintf(why, sizeof why, "LUKS container %.60s in /etc/crypttab of %.150s", bc->crypts[i].name, root->name);
        if (c)
            need(s, c, why);
    }
    for (size_t i = 0; i < bc->n_arrays; i++)
        for (size_t k = 0; k < s->n; k++) {
            struct bootvol_ids ids = ids_of(&s->c[k]);
            char why[256];
            snprintf(why, sizeof why, "member of md array %.60s in mdadm.conf of %.150s",
                     bc->arrays[i].device[0] ? bc->arrays[i].device : bc->arrays[i].spec.value, root->name);
            if (bc->arrays[i].spec.kind != BOOTSPEC_NONE && bootspec_match(&bc->arrays[i].spec, &ids))
                need(s, &s->c[k], why);
        }
}

/* The root's configuration: its fstab (already read: fstab, len), crypttab and mdadm.conf. */
static void read_root(struct scan *s, struct candidate *root, const char *fstab, size_t len)
{
    static const char *const more[] = {"/etc/crypttab", "/etc/mdadm/mdadm.conf", "/etc/mdadm.conf"};
    memset(s->conf, 0, sizeof *s->conf);
    struct asr_error err = {0};
    if (bootconf_fstab(s->conf, fstab, len, &err) != ASR_OK) {
        machine_warn(s->m, "%s: /etc/fstab: %s", root->name, err.msg);
        s->unresolved = true;
    }
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        char *text = NULL;
        size_t n = 0;
        int rc = read_conf(root, more[i], &text, &n);
        if (rc < 0)
            machine_warn(s->m, "%s: %s cannot be read", root->name, more[i]);
        int (*parse)(struct bootconf *, const char *, size_t, struct asr_error *) =
            i == 0 ? bootconf_crypttab : bootconf_mdadm;
        if (rc == 1 && parse(s->conf, text, n, &err) != ASR_OK)
            machine_warn(s->m, "%s: %s: %s", root->name, more[i], err.msg);
        free(text);
    }
    resolve_mounts(s, root);
}

/* ---- the kernel command lines of the boot loaders found ------------------------------------------ */

static void need_spec(struct scan *s, const struct bootspec *spec, const char *what, const char *where)
{
    struct candidate *c = find(s, spec);
    char why[256];
    snprintf(why, sizeof why, "%.60s on the kernel command line in %.150s", what, where);
    if (c)
        need(s, c, why);
}

/* rootflags=subvol=PATH or subvolid=ID (comma-separated mount options) noted on the volume root=
 * names, for read_btrfs_fstab; the first boot loader entry read that names one wins. */
static void note_rootflags(struct scan *s, const struct bootcmdline *k)
{
    struct candidate *c = find(s, &k->root);
    if (!c || c->hint_path[0] || c->hint_id)
        return;
    char flags[sizeof k->rootflags];
    snprintf(flags, sizeof flags, "%s", k->rootflags);
    for (char *save = NULL, *o = strtok_r(flags, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
        if (!strncmp(o, "subvol=", 7) && o[7])
            snprintf(c->hint_path, sizeof c->hint_path, "%s%.250s", o[7] == '/' ? "" : "/", o + 7);
        else if (!strncmp(o, "subvolid=", 9))
            c->hint_id = strtoull(o + 9, NULL, 10);
    }
}

/* What one boot loader configuration's kernel command lines name, needed to boot. */
static void need_cmdline(struct scan *s, const char *where)
{
    const struct bootcmdline *k = &s->conf->cmdline;
    if (k->have_root && k->rootflags[0])
        note_rootflags(s, k);
    if (k->have_root)
        need_spec(s, &k->root, "root=", where);
    if (k->have_resume)
        need_spec(s, &k->resume, "resume=", where);
    for (size_t j = 0; j < k->n_lvs; j++)
        need_spec(s, &k->lvs[j], "rd.lvm.lv=", where);
    for (size_t j = 0; j < k->n_luks; j++)
        need_spec(s, &k->luks[j], "rd.luks.uuid=", where);
    for (size_t j = 0; j < k->n_mds; j++)
        need_spec(s, &k->mds[j], "rd.md.uuid=", where);
}

static void read_loader_file(struct scan *s, struct candidate *c, const char *path,
                             int (*parse)(struct bootconf *, const char *, size_t, struct asr_error *))
{
    char *text = NULL;
    size_t len = 0;
    if (read_conf(c, path, &text, &len) != 1)
        return;
    memset(s->conf, 0, sizeof *s->conf);
    struct asr_error err = {0};
    char where[256];
    snprintf(where, sizeof where, "%.90s of %.150s", path, c->name);
    if (parse(s->conf, text, len, &err) != ASR_OK)
        machine_warn(s->m, "%s: %s", where, err.msg);
    free(text);
    need_cmdline(s, where);
}

#define LOADER_ENTRIES_MAX 64 /* Boot Loader Specification entries read per directory */

struct entries {
    char names[LOADER_ENTRIES_MAX][128];
    size_t n;
};

static int add_entry(void *ctx, const char *name, enum fs_kind kind)
{
    struct entries *e = ctx;
    size_t len = strlen(name);
    if (kind == FS_KIND_FILE && len > 5 && len < sizeof e->names[0] && !strcmp(name + len - 5, ".conf"))
        snprintf(e->names[e->n++], sizeof e->names[0], "%s", name);
    return e->n < LOADER_ENTRIES_MAX ? 0 : 1;
}

/* The boot loaders' configurations on the candidate: GRUB's grub.cfg (on a separate /boot, or
 * under the root's /boot) and the Boot Loader Specification's entries (on the ESP, an XBOOTLDR
 * partition or /boot), whose kernel command lines name the root and the layers under it. */
static void read_cmdlines(struct scan *s, struct candidate *c)
{
    static const char *const grub[] = {"/grub/grub.cfg", "/boot/grub/grub.cfg", "/grub2/grub.cfg",
                                       "/boot/grub2/grub.cfg"};
    for (size_t i = 0; i < sizeof grub / sizeof grub[0]; i++)
        read_loader_file(s, c, grub[i], bootconf_grub);
    static const char *const dirs[] = {"/loader/entries", "/boot/loader/entries"};
    for (size_t i = 0; c->fv && i < sizeof dirs / sizeof dirs[0]; i++) {
        struct entries *e = calloc(1, sizeof *e);
        struct asr_error err = {0};
        char dir[320];
        snprintf(dir, sizeof dir, "%s%s", c->subvol, dirs[i]);
        if (e && fs_vol_list(c->fv, dir, add_entry, e, &err) == ASR_OK)
            for (size_t k = 0; k < e->n; k++) {
                char path[200];
                snprintf(path, sizeof path, "%s/%s", dirs[i], e->names[k]);
                read_loader_file(s, c, path, bootconf_loader_entry);
            }
        free(e);
    }
}

/* ---- volumes that cannot be looked into ---------------------------------------------------------- */

/* Why node i might hold a root (or a volume a root needs) that could not be looked into; NULL
 * when it was looked into, or cannot hold one. */
static const char *opaque(const struct asr_machine *m, size_t i)
{
    const struct asr_volume_info *v = m->nodes[i]->vol;
    const char *t = v->map.fs_type, *layer = stacks_opaque(m, i);
    if (layer)
        return layer;
    if (v->read_error[0])
        return "a read error";
    if (!strcmp(t, "LVM2_member") || !strcmp(t, "linux_raid_member"))
        return NULL; /* a layer the stacks read: what is above it was looked into */
    if (!strcmp(t, "crypto_LUKS"))
        return NULL; /* opened: what is inside was looked into */
    if (t[0] && !asr_used_parser(t) && strcmp(t, "swsuspend"))
        return "a filesystem asrimg cannot read";
    if (t[0] && asr_used_parser(t) == asr_ext_used && v->warning[0] && strstr(v->warning, "metadata unusable"))
        return "ext metadata that failed its checks";
    return NULL;
}

static void select_opaque(struct scan *s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct asr_volume_info *v = s->c[i].v;
        const char *why = opaque(s->m, s->c[i].node);
        if (!why || v->critical)
            continue;
        if (s->any_root && !s->unresolved) {
            snprintf(v->reason, sizeof v->reason, "cannot be looked into (%s); the roots found need nothing from it",
                     why);
            continue;
        }
        v->critical = true;
        snprintf(v->reason, sizeof v->reason, "might hold %s: cannot be looked into (%s), so taken as well as "
                 "possible", s->any_root ? "a volume the root needs" : "the root filesystem", why);
        stacks_need_below(s->m, s->c[i].node);
        machine_warn(s->m, "%s: selected since it might hold %s and cannot be looked into (%s); "
                     "choose volumes with --volumes to leave it out", s->c[i].name,
                     s->any_root ? "a volume the root's /etc/fstab needs" : "the root filesystem (none was found)",
                     why);
    }
}

/* ---- the scan -------------------------------------------------------------------------------------- */

static void name_partition(const struct asr_machine *m, struct candidate *c)
{
    const struct asr_volume_info *v = c->v;
    const struct asr_disk_desc *dd = asr_disk_desc(m->disks[v->disk_index]);
    snprintf(c->name, sizeof c->name, "disk %u partition %u", v->disk_index, v->partition_number);
    for (uint32_t k = 0; k < dd->partition_count; k++) {
        const struct asr_partition_desc *p = &dd->partitions[k];
        if (p->number != v->partition_number || dd->label != ASR_LABEL_GPT)
            continue;
        char g[ASR_GUID_TEXT];
        asr_guid_text(p->part_guid, ASR_GUID_GPT, g);
        snprintf(c->part_uuid, sizeof c->part_uuid, "%s", g);
        snprintf(c->part_label, sizeof c->part_label, "%s", p->name);
    }
    if (dd->label == ASR_LABEL_MBR) /* PARTUUID of an MBR partition: signature-NN */
        snprintf(c->part_uuid, sizeof c->part_uuid, "%02x%02x%02x%02x-%02x", dd->disk_id[3], dd->disk_id[2],
                 dd->disk_id[1], dd->disk_id[0], v->partition_number);
}

/* Every node that reads, as a candidate. */
static int gather(struct scan *s, struct asr_error *err)
{
    struct asr_machine *m = s->m;
    if (!(s->c = calloc(m->nnodes + 1, sizeof *s->c)))
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->nnodes; i++) {
        const struct node *n = m->nodes[i];
        struct candidate *c = &s->c[s->n++];
        *c = (struct candidate){.v = n->vol, .w = n->readable ? &n->w : NULL, .node = i};
        if (n->kind == NODE_PARTITION) {
            name_partition(m, c);
        } else if (n->kind == NODE_LV) {
            c->vg = m->vgs[n->vg].meta->name;
            c->lvname = n->lv->name;
            snprintf(c->name, sizeof c->name, "LV %s", n->sv.name);
        } else if (n->kind == NODE_LUKS) {
            snprintf(c->name, sizeof c->name, "LUKS volume %s", n->sv.name);
        } else {
            const struct md_member *first = &m->arrays[n->array].members[0];
            c->md_uuid = first->uuid_text;
            c->md_name = first->name;
            snprintf(c->name, sizeof c->name, "array %s", n->sv.name);
        }
    }
    return ASR_OK;
}

#define BTRFS_ROOT_TRIES 64 /* subvolumes looked into for /etc/fstab */

/* Whether subvolume v is the one pass p of read_btrfs_fstab looks at: 0, the one rootflags=
 * names; 1, the default one; 2, every other. */
static bool in_pass(const struct candidate *c, const struct fs_btrfs_subvol *v, int p)
{
    bool named = (c->hint_id && v->id == c->hint_id) || (c->hint_path[0] && !strcmp(v->path, c->hint_path));
    return p == 0 ? named : p == 1 ? !named && v->is_default : !named && !v->is_default;
}

/* A btrfs root usually lies in a subvolume (Fedora's "root", Ubuntu's "@", openSUSE's default
 * snapshot), not at the top level read_conf looked at first: the subvolume the boot loader's
 * rootflags= names, then the default one, then the others in id order (snapshots of the root,
 * an old install's root, hold an /etc/fstab too), until one holds /etc/fstab. Sets c->subvol to
 * it; same results as read_conf. */
static int read_btrfs_fstab(struct candidate *c, char **text, size_t *len)
{
    struct fs_btrfs_subvol *sv = NULL;
    size_t n = 0;
    struct asr_error err = {0};
    if (!c->w || fs_btrfs_subvols(c->w, &sv, &n, &err) != ASR_OK)
        return 0; /* the top level read (read_conf) already said what the volume allows */
    int found = 0;
    for (int pass = 0, tried = 0; pass < 3 && found == 0; pass++)
        for (size_t i = 0; i < n && found == 0 && tried < BTRFS_ROOT_TRIES; i++) {
            if (!in_pass(c, &sv[i], pass) || !strcmp(sv[i].path, "/") || strlen(sv[i].path) >= sizeof c->subvol)
                continue;
            snprintf(c->subvol, sizeof c->subvol, "%s", sv[i].path);
            tried++;
            found = read_conf(c, "/etc/fstab", text, len);
            if (found != 1)
                c->subvol[0] = '\0';
        }
    fs_btrfs_subvols_free(sv, n);
    return found;
}

/* Whether candidate c is a root (holds /etc/fstab: at its top level, or with in_subvol in a btrfs
 * subvolume); a root is marked needed and its configuration read. read_conf's results. */
static int find_root(struct scan *s, struct candidate *c, bool in_subvol)
{
    char *text = NULL;
    size_t len = 0;
    int found = in_subvol ? read_btrfs_fstab(c, &text, &len) : read_conf(c, "/etc/fstab", &text, &len);
    if (found < 0) { /* it may be a root, whose fstab would name what it needs */
        machine_warn(s->m, "%s: whether it holds /etc/fstab cannot be read", c->name);
        s->unresolved = true;
    }
    if (found == 1) {
        s->any_root = true;
        char why[320];
        snprintf(why, sizeof why, "root filesystem: holds /etc/fstab%s%.256s", c->subvol[0] ? " in subvolume " : "",
                 c->subvol);
        need(s, c, why);
        if (in_subvol) /* found after the boot loader's root= marked it: this says more */
            snprintf(c->v->reason, sizeof c->v->reason, "%s", why);
        read_root(s, c, text, len);
    }
    free(text);
    return found;
}

int bootscan_analyze(struct asr_machine *m, struct asr_error *err)
{
    struct scan s = {.m = m};
    int rc = gather(&s, err);
    if (rc == ASR_OK && !(s.conf = calloc(1, sizeof *s.conf)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    /* Roots at the top of their filesystems; then every boot loader configuration (whose
     * rootflags= may name a btrfs root's subvolume); then roots in btrfs subvolumes, and the boot
     * loader files inside those subvolumes. */
    bool *in_subvol = calloc(s.n + 1, sizeof *in_subvol);
    if (rc == ASR_OK && !in_subvol)
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == ASR_OK && i < s.n; i++)
        in_subvol[i] = find_root(&s, &s.c[i], false) == 0 && !strcmp(s.c[i].v->map.fs_type, "btrfs");
    for (size_t i = 0; rc == ASR_OK && i < s.n; i++)
        read_cmdlines(&s, &s.c[i]);
    for (size_t i = 0; rc == ASR_OK && i < s.n; i++)
        if (in_subvol[i] && find_root(&s, &s.c[i], true) == 1)
            read_cmdlines(&s, &s.c[i]);
    free(in_subvol);
    if (rc == ASR_OK)
        select_opaque(&s);
    for (size_t i = 0; i < s.n; i++)
        fs_vol_close(s.c[i].fv);
    free(s.conf);
    free(s.c);
    return rc;
}
