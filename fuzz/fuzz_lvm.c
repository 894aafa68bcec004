/* libFuzzer harness for the LVM2 reader (engine/disk/lvm.c): the input is the start of a PV,
 * zero-extended to a 64 MiB window, read twice: as it is, then with its checksums repaired (the
 * label's, the first metadata area header's and its text's), so that mutations get past them to
 * the text parser and the extent checks. The input is also parsed as metadata text alone. An
 * accepted VG's LVs are mapped and every area checked to lie inside its PV's extents; then the
 * window, as a whole disk, goes through the machine's analysis (engine/analyze/stacks.c,
 * bootscan.c) and both selections. replay.c can replay a corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_window.h"
#include "lvm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (64ull << 20)
#define MAX_INPUT (1u << 20)

static uint32_t crc(const uint8_t *b, size_t n)
{
    uint32_t c = 0xf597a6cfu;
    while (n--) {
        c ^= *b++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

/* The label's, the first metadata area's header and (unwrapped) text checksums recomputed. */
static void repair(uint8_t *d, size_t n)
{
    for (size_t s = 0; s < 4 && (s + 1) * 512 <= n; s++) {
        uint8_t *l = d + s * 512;
        if (memcmp(l, "LABELONE", 8))
            continue;
        put32(l + 16, crc(l + 20, 492));
        uint64_t pos = (uint64_t)l[20] | (uint64_t)l[21] << 8;
        if (pos < 32 || pos + 40 + 32 > 512)
            return;
        for (pos += 40; pos + 16 <= 512 && get64(l + pos); pos += 16) /* data areas */
            ;
        uint64_t mda = pos + 32 <= 512 ? get64(l + pos + 16) : 0;
        if (!mda || mda > n || n - mda < 512)
            return;
        uint8_t *h = d + mda;
        uint64_t off = get64(h + 40), len = get64(h + 48);
        if (off < n - mda && len <= n - mda - off)
            put32(h + 56, crc(h + off, len));
        put32(h, crc(h + 4, 508));
        return;
    }
}

static void check(const struct lvm_pv_info *p)
{
    const struct lvm_vg *vg = &p->vg;
    uint64_t ext = vg->extent_size * 512;
    for (size_t i = 0; i < vg->nlvs; i++) {
        const struct lvm_lv *lv = &vg->lvs[i];
        struct lvm_area *a = NULL;
        size_t n = 0;
        struct asr_error err = {0};
        if (lvm_lv_map(vg, lv, &a, &n, &err))
            abort();
        for (size_t k = 0; k < n; k++) {
            if (a[k].pv >= vg->npvs)
                abort();
            const struct lvm_pv *pv = &vg->pvs[a[k].pv];
            uint64_t lo = pv->pe_start * 512, hi = lo + pv->pe_count * ext;
            if (a[k].pv_off < lo || a[k].pv_off > hi || a[k].len > hi - a[k].pv_off ||
                a[k].len * a[k].stripe_count != a[k].lv_len)
                abort();
        }
        free(a);
        uint64_t total = lv->extents * ext;
        for (uint64_t off = 0; off < total; off += total / 7 + 1) {
            size_t pv;
            uint64_t at, contig;
            int rc = lvm_lv_locate(vg, lv, off, &pv, &at, &contig, &err);
            /* A segment of a type not mapped refuses, naming it; only an LV that has one may. */
            if (rc == ASR_E_UNSUPPORTED && lvm_lv_unmapped(lv) && strstr(err.msg, "not supported"))
                continue;
            if (rc || pv >= vg->npvs || contig == 0)
                abort();
        }
    }
}

/* The PV as a whole disk of a machine: its VG assembled (complete when it lists this PV alone),
 * each LV read through its pieced window, probed, mapped and looked into, and both selections
 * composed into the PV's map, which must stay inside the disk. */
static void machine(const char *path)
{
    struct asr_disk *d = NULL;
    struct asr_error err = {0};
    if (asr_disk_open(path, &d, &err) != ASR_OK)
        return;
    struct asr_volume_info *v = NULL;
    size_t n = 0;
    struct asr_machine *m = NULL;
    if (asr_disk_analyze(d, 0, &v, &n, &err) == ASR_OK &&
        asr_machine_analyze(&d, &v, &n, 1, NULL, &m, &err) == ASR_OK) {
        static const char *const selections[] = {"critical", "all"};
        for (size_t s = 0; s < 2; s++)
            if (asr_select_volumes(v, n, selections[s], &err) == ASR_OK &&
                asr_machine_select(m, selections[s], &err) == ASR_OK)
                for (size_t i = 0; i < n; i++)
                    for (size_t k = 0; k < v[i].map.used.n; k++) {
                        const struct asr_range *r = &v[i].map.used.v[k];
                        if (r->offset > v[i].size_bytes || r->length > v[i].size_bytes - r->offset ||
                            (k && r->offset <= v[i].map.used.v[k - 1].offset))
                            abort();
                    }
    }
    asr_machine_free(m);
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
}

static void run(const uint8_t *d, size_t n)
{
    struct asr_window w;
    int fd = fs_window_open(WINDOW, d, n, NULL, 0, &w);
    if (fd < 0)
        return;
    struct lvm_pv_info *p = NULL;
    struct asr_error err = {0};
    int rc = lvm_read_pv(&w, &p, &err);
    if (rc == ASR_OK && p->has_vg) {
        check(p);
        machine(w.path);
    }
    if ((rc == ASR_OK) != (p != NULL) || (rc && !err.msg[0]))
        abort();
    lvm_pv_info_free(p);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    run(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    repair(copy, size);
    run(copy, size);
    free(copy);
    struct lvm_vg vg;
    struct asr_error err = {0};
    if (lvm_parse_metadata((const char *)data, size, &vg, &err) == ASR_OK)
        lvm_vg_free(&vg);
    return 0;
}
