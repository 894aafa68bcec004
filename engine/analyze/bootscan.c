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
#include "stacks.h"

#include "analyze.h"
#include "bootconf.h"
#include "fs_ext_internal.h"
#include "guid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every byte libext2fs may read to find and read one small file (a lookup through a few
 * directories): the same kind of bound analyze.c puts on its lookups. */
#define FILE_READ_LIMIT (16ull << 20)

/* One volume the configuration may name: a partition, an md array or an LV (a node). */
struct candidate {
    struct asr_volume_info *v;
    const struct asr_window *w;
    size_t node; /* index in m->nodes */
    char name[200];
    char part_uuid[40], part_label[ASR_NAME_MAX + 1];
    const char *vg, *lvname;       /* an LV's */
    const char *md_uuid, *md_name; /* an array's, or a member partition's (blkid's UUID) */
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

/* The file at path in the ext filesystem of w into *out (NUL-terminated, malloc'd), up to cap
 * bytes. 1 when read, 0 when there is no such file, -1 when it cannot be read. */
static int ext_read_small(const struct asr_window *w, const char *path, size_t cap, char **out, size_t *len)
{
    *out = NULL;
    struct ext_io io;
    ext2_filsys fs;
    struct asr_error err = {0};
    if (ext_open(w, &io, &fs, &err) != ASR_OK)
        return -1;
    io.left = FILE_READ_LIMIT;
    ext2_ino_t ino;
    int found = 0;
    struct ext2_inode inode;
    if (ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino) == 0 &&
        ext2fs_read_inode(fs, ino, &inode) == 0 && LINUX_S_ISREG(inode.i_mode)) {
        ext2_file_t f;
        found = -1;
        if (ext2fs_file_open(fs, ino, 0, &f) == 0) {
            __u64 size = 0;
            unsigned got = 0;
            if (ext2fs_file_get_lsize(f, &size) == 0 && size <= cap && (*out = malloc(size + 1)) &&
                ext2fs_file_read(f, *out, (unsigned)size, &got) == 0 && got == size) {
                (*out)[size] = 0;
                *len = size;
                found = 1;
            }
            ext2fs_file_close(f);
        }
        if (found != 1) {
            free(*out);
            *out = NULL;
        }
    }
    ext2fs_close_free(&fs);
    return found;
}

static int read_conf(const struct candidate *c, const char *path, char **out, size_t *len)
{
    if (!c->w || asr_used_parser(c->v->map.fs_type) != asr_ext_used || c->v->map.damaged)
        return 0;
    return ext_read_small(c->w, path, BOOTCONF_MAX_INPUT, out, len);
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

static void read_cmdlines(struct scan *s, struct candidate *c)
{
    static const char *const grub[] = {"/grub/grub.cfg", "/boot/grub/grub.cfg", "/grub2/grub.cfg",
                                       "/boot/grub2/grub.cfg"};
    for (size_t i = 0; i < sizeof grub / sizeof grub[0]; i++) {
        char *text = NULL;
        size_t len = 0;
        if (read_conf(c, grub[i], &text, &len) != 1)
            continue;
        memset(s->conf, 0, sizeof *s->conf);
        struct asr_error err = {0};
        char where[256];
        snprintf(where, sizeof where, "%s of %.150s", grub[i], c->name);
        if (bootconf_grub(s->conf, text, len, &err) != ASR_OK)
            machine_warn(s->m, "%s: %s", where, err.msg);
        free(text);
        const struct bootcmdline *k = &s->conf->cmdline;
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

int bootscan_analyze(struct asr_machine *m, struct asr_error *err)
{
    struct scan s = {.m = m};
    int rc = gather(&s, err);
    if (rc == ASR_OK && !(s.conf = calloc(1, sizeof *s.conf)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == ASR_OK && i < s.n; i++) {
        char *text = NULL;
        size_t len = 0;
        int found = read_conf(&s.c[i], "/etc/fstab", &text, &len);
        if (found < 0) { /* it may be a root, whose fstab would name what it needs */
            machine_warn(m, "%s: whether it holds /etc/fstab cannot be read", s.c[i].name);
            s.unresolved = true;
        }
        if (found == 1) {
            s.any_root = true;
            need(&s, &s.c[i], "root filesystem: holds /etc/fstab");
            read_root(&s, &s.c[i], text, len);
        }
        free(text);
    }
    for (size_t i = 0; rc == ASR_OK && i < s.n; i++)
        read_cmdlines(&s, &s.c[i]);
    if (rc == ASR_OK)
        select_opaque(&s);
    free(s.conf);
    free(s.c);
    return rc;
}
