/* The machine's LVM2 stacks (engine/analyze/stacks.c, bootscan.c) on PVs made by lvm2's own tools
 * (lvm_fixture.sh): a VG over two disks with a linear LV, an LV in two segments and an LV striped
 * over both. Real ext4 filesystems and a swap area are written into the LVs at the places
 * `lvs --segments` gives (not through the code under test); the striped one is a root whose
 * /etc/fstab names the others by /dev/mapper and /dev/VG names. Checked: which LVs and PVs are
 * critical and why, and that copying only the PVs' used maps onto garbage brings back every
 * critical LV intact (e2fsck clean, fstab equal). Then selection by VG/LV, and a VG missing a PV. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "fsfix.h"
#include "lvm.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(stacks, .fini = teardown, .timeout = 120);

#define EXTENT (1u << 20) /* lvm_fixture.sh: vgcreate -s 1M */
#define MAX_SEGS 8

/* One line of segs.txt: an LV segment and where its extents are (stripes over PVs). */
struct seg {
    char lv[32];
    unsigned start, size, stripes, stripe_sectors;
    char pv[2][8];
    unsigned pe[2];
};

struct fixture {
    char *a, *b;          /* the two PV disks, copied */
    char vg[64];
    uint64_t pe_start;    /* bytes, read from the PV label */
    struct seg segs[MAX_SEGS];
    size_t nsegs;
};

static void load_segs(struct fixture *f)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/segs.txt", LVM_FIXTURES) > 0);
    FILE *in = fopen(path, "r");
    if (!in)
        cr_skip_test("no LVM2 fixtures (lvm_fixture.sh needs root, loop devices and lvm2)");
    char line[256];
    while (fgets(line, sizeof line, in) && f->nsegs < MAX_SEGS) {
        struct seg *s = &f->segs[f->nsegs];
        unsigned a0, a1, b0 = 0, b1 = 0;
        int n = sscanf(line, "%31[^;];%u;%u;%u;%u;%7[^:]:%u-%u %7[^:]:%u-%u", s->lv, &s->start, &s->size, &s->stripes,
                       &s->stripe_sectors, s->pv[0], &a0, &a1, s->pv[1], &b0, &b1);
        cr_assert(n == 8 || n == 11, "segs.txt: %s", line);
        s->pe[0] = a0, s->pe[1] = b0;
        f->nsegs++;
    }
    fclose(in);
    free(path);
}

/* Byte off of LV lv, as lvm2's segment list places it: the file and the byte in it. */
static const char *place(const struct fixture *f, const char *lv, uint64_t off, uint64_t *at, uint64_t *contig)
{
    for (size_t i = 0; i < f->nsegs; i++) {
        const struct seg *s = &f->segs[i];
        uint64_t start = (uint64_t)s->start * EXTENT, len = (uint64_t)s->size * EXTENT;
        if (strcmp(s->lv, lv) || off < start || off >= start + len)
            continue;
        uint64_t in = off - start;
        unsigned k = 0;
        uint64_t into = in;
        *contig = len - in;
        if (s->stripes > 1) {
            uint64_t chunk = (uint64_t)s->stripe_sectors * 512, c = in / chunk;
            k = (unsigned)(c % s->stripes);
            into = c / s->stripes * chunk + in % chunk;
            *contig = chunk - in % chunk;
        }
        *at = f->pe_start + (uint64_t)s->pe[k] * EXTENT + into;
        return !strcmp(s->pv[k], "a.img") ? f->a : f->b;
    }
    cr_assert_fail("LV %s has no byte %llu", lv, (unsigned long long)off);
    return NULL;
}

static uint64_t lv_size(const struct fixture *f, const char *lv)
{
    uint64_t n = 0;
    for (size_t i = 0; i < f->nsegs; i++)
        if (!strcmp(f->segs[i].lv, lv))
            n += (uint64_t)f->segs[i].size * EXTENT;
    return n;
}

/* Copies between an LV's bytes and a plain file, piece by piece, in either direction. */
static void lv_copy(const struct fixture *f, const char *lv, const char *file, bool into_lv, const char *a,
                    const char *b)
{
    uint64_t size = lv_size(f, lv);
    uint8_t *buf = malloc(EXTENT);
    for (uint64_t off = 0; off < size;) {
        uint64_t at, contig;
        const char *pv = place(f, lv, off, &at, &contig);
        pv = pv == f->a ? a : b;
        size_t n = contig < EXTENT ? (size_t)contig : EXTENT;
        if (into_lv) {
            fsfix_read_at(file, off, buf, n);
            fsfix_write_at(pv, at, buf, n);
        } else {
            fsfix_read_at(pv, at, buf, n);
            fsfix_write_at(file, off, buf, n);
        }
        off += n;
    }
    free(buf);
}

static void build(struct fixture *f)
{
    load_segs(f);
    fsfix_need("mkfs.ext4");
    f->a = scratch_path("a.img");
    f->b = scratch_path("b.img");
    cr_assert_eq(fsfix_sh("cp --sparse=always %s/a.img %s && cp --sparse=always %s/b.img %s", LVM_FIXTURES, f->a,
                          LVM_FIXTURES, f->b), 0);
    struct asr_window w = fsfix_window(f->a, 0, 64u << 20);
    struct lvm_pv_info *p = NULL;
    struct asr_error err = {0};
    cr_assert_eq(lvm_read_pv(&w, &p, &err), ASR_OK, "%s", err.msg);
    snprintf(f->vg, sizeof f->vg, "%s", p->vg.name);
    f->pe_start = p->data_offset;
    lvm_pv_info_free(p);
    close(w.fd);
    /* The root in the striped LV; /var in the two-segment LV; /home (data) in "root"; swap in "gap". */
    const char *d = scratch_dir();
    cr_assert_eq(fsfix_sh("mkdir -p %s/rootfs/etc && printf '/dev/mapper/%s-stripe / ext4 errors=remount-ro 0 1\\n"
                          "/dev/%s/two /var ext4 defaults 0 2\\n/dev/mapper/%s-root /home ext4 defaults 0 2\\n"
                          "/dev/%s/gap none swap sw 0 0\\n' > %s/rootfs/etc/fstab && echo ID=debian > "
                          "%s/rootfs/etc/os-release && cp -r /usr/share/doc/coreutils %s/rootfs/",
                          d, f->vg, f->vg, f->vg, f->vg, d, d, d), 0);
    cr_assert_eq(fsfix_sh("cd %s && truncate -s %llu root.fs && truncate -s %llu var.fs && truncate -s %llu home.fs && "
                          "truncate -s %llu swap.fs && mkfs.ext4 -q -d rootfs root.fs && "
                          "mkfs.ext4 -q -d /usr/share/doc/bash var.fs && mkfs.ext4 -q home.fs && mkswap -q swap.fs", d,
                          (unsigned long long)lv_size(f, "stripe"), (unsigned long long)lv_size(f, "two"),
                          (unsigned long long)lv_size(f, "root"), (unsigned long long)lv_size(f, "gap")), 0);
    static const char *const put[][2] = {{"stripe", "root.fs"}, {"two", "var.fs"}, {"gap", "swap.fs"}};
    for (size_t i = 0; i < 3; i++) {
        char *fs = scratch_path(put[i][1]);
        lv_copy(f, put[i][0], fs, true, f->a, f->b);
        free(fs);
    }
    char *home = scratch_path("home.fs");
    lv_copy(f, "root", home, true, f->a, f->b);
    free(home);
}

struct machine {
    struct asr_disk *disk[2];
    struct asr_volume_info *vols[2];
    size_t counts[2];
    struct asr_machine *m;
};

static void analyze(struct machine *mc, const char *const *paths, uint32_t n)
{
    struct asr_error err = {0};
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(asr_disk_open(paths[i], &mc->disk[i], &err), ASR_OK, "%s", err.msg);
        cr_assert_eq(asr_disk_analyze(mc->disk[i], i, &mc->vols[i], &mc->counts[i], &err), ASR_OK, "%s", err.msg);
    }
    cr_assert_eq(asr_machine_analyze(mc->disk, mc->vols, mc->counts, n, NULL, &mc->m, &err), ASR_OK, "%s", err.msg);
}

static void release(struct machine *mc, uint32_t n)
{
    asr_machine_free(mc->m);
    for (uint32_t i = 0; i < n; i++) {
        asr_volume_infos_free(mc->vols[i], mc->counts[i]);
        asr_disk_close(mc->disk[i]);
    }
}

static const struct asr_stacked_volume *lv_named(const struct machine *mc, const struct fixture *f, const char *lv)
{
    const struct asr_stacked_volume *const *v;
    size_t n = asr_machine_stacked(mc->m, &v);
    char name[160];
    snprintf(name, sizeof name, "%s/%s", f->vg, lv);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i]->name, name))
            return v[i];
    cr_assert_fail("no LV %s", name);
    return NULL;
}

/* The PV of each disk: the whole-disk volume. */
static struct asr_volume_info *pv_of(struct machine *mc, uint32_t disk)
{
    for (size_t i = 0; i < mc->counts[disk]; i++)
        if (!strcmp(mc->vols[disk][i].map.fs_type, "LVM2_member"))
            return &mc->vols[disk][i];
    cr_assert_fail("disk %u holds no PV", disk);
    return NULL;
}

/* The selection across the disks, as the CLI applies it: the volumes gathered into one list. */
static void select_all(struct machine *mc, uint32_t n, const char *selection)
{
    struct asr_error err = {0};
    size_t total = 0, at = 0;
    for (uint32_t i = 0; i < n; i++)
        total += mc->counts[i];
    struct asr_volume_info *all = calloc(total, sizeof *all);
    for (uint32_t i = 0; i < n; i++)
        memcpy(all + at, mc->vols[i], mc->counts[i] * sizeof *all), at += mc->counts[i];
    cr_assert_eq(asr_select_volumes(all, total, selection, &err), ASR_OK, "%s", err.msg);
    at = 0;
    for (uint32_t i = 0; i < n; i++)
        memcpy(mc->vols[i], all + at, mc->counts[i] * sizeof *all), at += mc->counts[i];
    free(all);
    cr_assert_eq(asr_machine_select(mc->m, selection, &err), ASR_OK, "%s", err.msg);
}

Test(stacks, critical_lvs_and_their_pvs_from_the_roots_fstab)
{
    struct fixture f = {0};
    build(&f);
    struct machine mc = {0};
    const char *paths[] = {f.a, f.b};
    analyze(&mc, paths, 2);
    const struct asr_stacked_volume *root = lv_named(&mc, &f, "stripe"), *var = lv_named(&mc, &f, "two"),
                                    *swap = lv_named(&mc, &f, "gap"), *home = lv_named(&mc, &f, "root");
    cr_assert_str_eq(root->info.map.fs_type, "ext4");
    cr_assert(root->info.critical && strstr(root->info.reason, "/etc/fstab"), "%s", root->info.reason);
    cr_assert(var->info.critical && strstr(var->info.reason, "/var in /etc/fstab of LV"), "%s", var->info.reason);
    cr_assert(swap->info.critical && swap->info.natural_capture == ASR_CAPTURE_HEADER, "%s", swap->info.reason);
    cr_assert(!home->info.critical && strstr(home->info.reason, "data volume"), "%s", home->info.reason);
    for (uint32_t d = 0; d < 2; d++) {
        const struct asr_volume_info *pv = pv_of(&mc, d);
        cr_assert(pv->critical && strstr(pv->reason, "PV of VG"), "disk %u: %s", d, pv->reason);
    }
    cr_assert_str_eq(asr_machine_warnings(mc.m), "");

    /* Only the PVs' used maps, copied onto garbage: every critical LV comes back. */
    select_all(&mc, 2, "critical");
    cr_assert_eq(home->info.capture, ASR_CAPTURE_SKIP);
    char *ga = scratch_path("ga.img"), *gb = scratch_path("gb.img");
    for (uint32_t d = 0; d < 2; d++) {
        const struct asr_volume_info *pv = pv_of(&mc, d);
        cr_assert_eq(pv->capture, ASR_CAPTURE_USED);
        cr_assert_lt(asr_ranges_bytes(&pv->map.used), pv->size_bytes / 2, "unallocated and unselected extents left out");
        fsfix_copy_used(d ? f.b : f.a, 0, &pv->map.used, d ? gb : ga, pv->size_bytes);
    }
    static const char *const lvs[] = {"stripe", "two"};
    for (size_t i = 0; i < 2; i++) {
        char *out = scratch_path(lvs[i]);
        cr_assert_eq(fsfix_sh("truncate -s %llu %s", (unsigned long long)lv_size(&f, lvs[i]), out), 0);
        lv_copy(&f, lvs[i], out, false, ga, gb);
        cr_assert_eq(fsfix_sh("e2fsck -fn %s", out), 0, "LV %s restored from the PVs' used maps", lvs[i]);
        free(out);
    }
    char *sw = scratch_path("gap");
    cr_assert_eq(fsfix_sh("truncate -s %llu %s", (unsigned long long)lv_size(&f, "gap"), sw), 0);
    lv_copy(&f, "gap", sw, false, ga, gb);
    cr_assert_eq(fsfix_sh("blkid -p -s TYPE -o value %s | grep -qx swap", sw), 0, "the swap header comes back");
    char *rootfs = scratch_path("stripe-again");
    cr_assert_eq(fsfix_sh("truncate -s %llu %s", (unsigned long long)lv_size(&f, "stripe"), rootfs), 0);
    lv_copy(&f, "stripe", rootfs, false, ga, gb);
    cr_assert_eq(fsfix_sh("debugfs -R 'cat /etc/fstab' %s 2>/dev/null | cmp - %s/rootfs/etc/fstab", rootfs,
                          scratch_dir()), 0);
    /* And the PV labels and metadata: lvm_read_pv reads the same VG from the copies. */
    struct asr_window w = fsfix_window(ga, 0, 64u << 20);
    struct lvm_pv_info *p = NULL;
    struct asr_error err = {0};
    cr_assert_eq(lvm_read_pv(&w, &p, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(p->vg.name, f.vg);
    lvm_pv_info_free(p);
    close(w.fd);
    free(ga), free(gb), free(sw), free(rootfs);
    release(&mc, 2);
    free(f.a), free(f.b);
}

Test(stacks, selection_by_name)
{
    struct fixture f = {0};
    build(&f);
    struct machine mc = {0};
    const char *paths[] = {f.a, f.b};
    analyze(&mc, paths, 2);
    char sel[200];
    snprintf(sel, sizeof sel, "%s/root", f.vg);
    select_all(&mc, 2, sel);
    cr_assert_eq(lv_named(&mc, &f, "root")->info.capture, ASR_CAPTURE_USED, "named: taken");
    cr_assert_eq(lv_named(&mc, &f, "stripe")->info.capture, ASR_CAPTURE_SKIP, "not named: left");
    cr_assert_eq(pv_of(&mc, 0)->capture, ASR_CAPTURE_USED, "the PV under a selected LV is taken");
    struct asr_error err = {0};
    snprintf(sel, sizeof sel, "%s/nope", f.vg);
    cr_assert_eq(asr_machine_select(mc.m, sel, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "no logical volume"), "%s", err.msg);
    /* A PV named by number takes every LV on it. */
    select_all(&mc, 2, "1:0");
    cr_assert_eq(lv_named(&mc, &f, "stripe")->info.capture, ASR_CAPTURE_USED);
    cr_assert_eq(lv_named(&mc, &f, "root")->info.capture, ASR_CAPTURE_SKIP, "on disk 0 only");
    release(&mc, 2);
    free(f.a), free(f.b);
}

Test(stacks, a_vg_missing_a_pv_is_taken_whole_and_said)
{
    struct fixture f = {0};
    build(&f);
    struct machine mc = {0};
    const char *paths[] = {f.a};
    analyze(&mc, paths, 1);
    const struct asr_stacked_volume *const *v;
    cr_assert_eq(asr_machine_stacked(mc.m, &v), 0, "no LV of an incomplete VG is read");
    cr_assert(strstr(asr_machine_warnings(mc.m), "is on no disk of this backup"), "%s", asr_machine_warnings(mc.m));
    struct asr_volume_info *pv = pv_of(&mc, 0);
    cr_assert_eq(pv->natural_capture, ASR_CAPTURE_FULL);
    cr_assert(pv->critical && strstr(pv->reason, "might hold the root"), "nothing else was found: %s", pv->reason);
    release(&mc, 1);
    free(f.a), free(f.b);
}
