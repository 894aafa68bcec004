/* LVM2 read from the PVs themselves (engine/disk/lvm.c): PVs made by lvm2's own tools
 * (lvm_fixture.sh, run first by ctest) with a linear LV, an LV in two segments and an LV striped
 * over two PVs, checked against `lvs --segments`; then the same PV damaged: a label or text
 * checksum wrong, metadata cut short or over the size cap, text wrapped around the circular
 * buffer (must read the same), segment types this reader does not handle, references out of
 * bounds. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "lvm.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(lvm, .fini = teardown, .timeout = 60);

#define MDA_OFF 4096u /* where pvcreate puts the first metadata area */

static char *fx(const char *name)
{
    char *p = NULL;
    cr_assert(asprintf(&p, "%s/%s", LVM_FIXTURES, name) > 0);
    if (access(p, R_OK))
        cr_skip_test("no LVM2 fixtures (lvm_fixture.sh needs root, loop devices and lvm2)");
    return p;
}

static uint32_t crc(uint32_t c, const uint8_t *b, size_t n)
{
    while (n--) {
        c ^= *b++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c;
}
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

static int read_pv(const char *path, uint64_t size, struct lvm_pv_info **out, struct asr_error *err)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "%s", path);
    struct asr_window w = {.fd = fd, .path = path, .base = 0, .size = size};
    if (!size)
        w.size = (uint64_t)lseek(fd, 0, SEEK_END);
    int rc = lvm_read_pv(&w, out, err);
    close(fd);
    return rc;
}

static struct lvm_pv_info *must_read(const char *path)
{
    struct lvm_pv_info *p = NULL;
    struct asr_error err = {0};
    int rc = read_pv(path, 0, &p, &err);
    cr_assert_eq(rc, ASR_OK, "%s: %s", path, err.msg);
    cr_assert(p->has_vg);
    return p;
}

Test(lvm, matches_lvs_segments)
{
    char *a = fx("a.img"), *b = fx("b.img"), *segs = fx("segs.txt");
    struct lvm_pv_info *pa = must_read(a), *pb = must_read(b);
    const struct lvm_vg *vg = &pa->vg;
    cr_assert_str_eq(vg->uuid, pb->vg.uuid);
    cr_assert_eq(vg->extent_size, 2048); /* vgcreate -s 1M */
    cr_assert_eq(vg->npvs, 2);
    cr_assert_neq(pa->this_pv, pb->this_pv);
    cr_assert_eq(vg->nlvs, 4);
    const char *file_of[2];
    file_of[pa->this_pv] = "a.img";
    file_of[pb->this_pv] = "b.img";

    FILE *f = fopen(segs, "r");
    cr_assert(f);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64], ranges[256];
        unsigned long long start, count, stripes, ssize;
        cr_assert_eq(sscanf(line, "%63[^;];%llu;%llu;%llu;%llu;%255[^\n]", name, &start, &count, &stripes, &ssize,
                            ranges), 6, "%s", line);
        const struct lvm_lv *lv = lvm_find_lv(vg, name);
        cr_assert(lv, "%s", name);
        const struct lvm_segment *s = NULL;
        for (size_t i = 0; i < lv->nsegs; i++)
            if (lv->segs[i].start_extent == start)
                s = &lv->segs[i];
        cr_assert(s, "%s at %llu", name, start);
        cr_assert_eq(s->extent_count, count, "%s", name);
        cr_assert_eq(s->stripe_count, stripes, "%s", name);
        cr_assert_eq(s->stripe_size, ssize, "%s", name);
        /* "a.img:18-23 b.img:0-5", one range per stripe in stripe order */
        char want[256] = "", one[64];
        for (uint32_t k = 0; k < s->stripe_count; k++) {
            uint64_t per = s->extent_count / s->stripe_count;
            snprintf(one, sizeof one, "%s%s:%llu-%llu", k ? " " : "", file_of[s->stripes[k].pv],
                     (unsigned long long)s->stripes[k].pe, (unsigned long long)(s->stripes[k].pe + per - 1));
            strcat(want, one);
        }
        cr_assert_str_eq(want, ranges, "%s segment at %llu", name, start);
        lines++;
    }
    fclose(f);
    cr_assert_eq(lines, 5);
    cr_assert_eq(lvm_find_lv(vg, "two")->nsegs, 2);

    /* Byte ranges: pe_start*512 + extent*extent_size*512, in LV order. */
    const struct lvm_lv *two = lvm_find_lv(vg, "two");
    struct lvm_area *ar = NULL;
    size_t n = 0;
    struct asr_error err = {0};
    cr_assert_eq(lvm_lv_map(vg, two, &ar, &n, &err), ASR_OK);
    cr_assert_eq(n, 2);
    uint64_t ext = 2048 * 512, pe0 = vg->pvs[pa->this_pv].pe_start * 512;
    cr_assert_eq(ar[0].pv, pa->this_pv);
    cr_assert_eq(ar[0].pv_off, pe0 + 8 * ext);
    cr_assert_eq(ar[0].len, 3 * ext);
    cr_assert_eq(ar[1].pv_off, pe0 + 13 * ext);
    cr_assert_eq(ar[1].lv_off, 3 * ext);
    cr_assert_eq(ar[1].len, 5 * ext);
    free(ar);

    /* Striped: 64 KiB chunks taken in turn from a.img's extent 18 and b.img's extent 0. */
    const struct lvm_lv *st = lvm_find_lv(vg, "stripe");
    cr_assert_eq(lvm_lv_map(vg, st, &ar, &n, &err), ASR_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(ar[1].pv, pb->this_pv);
    cr_assert_eq(ar[1].pv_off, vg->pvs[pb->this_pv].pe_start * 512);
    cr_assert_eq(ar[0].len + ar[1].len, 12 * ext);
    free(ar);
    size_t pv;
    uint64_t off, contig;
    cr_assert_eq(lvm_lv_locate(vg, st, 65536 * 3 + 100, &pv, &off, &contig, &err), ASR_OK);
    cr_assert_eq(pv, pb->this_pv);
    cr_assert_eq(off, vg->pvs[pb->this_pv].pe_start * 512 + 65536 + 100);
    cr_assert_eq(contig, 65536 - 100);
    cr_assert_eq(lvm_lv_locate(vg, st, 65536 * 4, &pv, &off, &contig, &err), ASR_OK);
    cr_assert_eq(off, pe0 + 18 * ext + 2 * 65536);
    cr_assert_eq(lvm_lv_locate(vg, st, 12 * ext, &pv, &off, &contig, &err), ASR_E_ARG);
    lvm_pv_info_free(pa);
    lvm_pv_info_free(pb);
    free(a), free(b), free(segs);
}

/* b.img has two metadata copies (pvcreate --pvmetadatacopies 2): one damaged, the other is read;
 * both damaged, the first one's error is the answer. */
Test(lvm, second_copy)
{
    char *b = fx("b.img"), *copy = scratch_path("b.img");
    copy_file(b, copy);
    size_t len;
    uint8_t *all = read_file(b, &len);
    uint64_t text = MDA_OFF + get64(all + MDA_OFF + 40);
    uint64_t mda2 = len - 1; /* the second area's header: the last one in the PV with the magic */
    while (mda2 > MDA_OFF && (mda2 % 512 || memcmp(all + mda2 + 4, " LVM2 x[5A%r0N*>", 16)))
        mda2--;
    cr_assert_gt(mda2, MDA_OFF, "no second metadata area in b.img");
    uint64_t text2 = mda2 + get64(all + mda2 + 40);
    patch_byte(copy, text + 20, all[text + 20] ^ 1);
    struct lvm_pv_info *p = must_read(copy);
    cr_assert_eq(p->vg.nlvs, 4);
    lvm_pv_info_free(p);
    patch_byte(copy, text2 + 20, all[text2 + 20] ^ 1);
    struct asr_error err = {0};
    cr_assert_eq(read_pv(copy, 0, &p, &err), ASR_E_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "bad checksum: byte %llu", (unsigned long long)text); /* the first copy's */
    cr_assert(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
    free(all), free(b), free(copy);
}

/* lvm2's own updates wrapped c.img's text around its 60 KiB metadata area. */
Test(lvm, wrapped_by_lvm2)
{
    char *c = fx("c.img");
    size_t len;
    uint8_t *all = read_file(c, &len);
    const uint8_t *h = all + MDA_OFF;
    cr_assert_gt(get64(h + 40) + get64(h + 48), get64(h + 32), "the fixture's text does not wrap");
    free(all);
    struct lvm_pv_info *p = must_read(c);
    cr_assert_eq(p->vg.nlvs, 1);
    const struct lvm_lv *lv = lvm_find_lv(&p->vg, "lv");
    cr_assert(lv);
    cr_assert_eq(lv->extents, 1);
    cr_assert_eq(lv->segs[0].stripes[0].pe, 0);
    cr_assert_eq(p->vg.pvs[p->this_pv].pe_start, 128); /* --dataalignment 64k */
    lvm_pv_info_free(p);
    free(c);
}

/* ---- damaged copies of a.img's first MiB (label and metadata area) ------------------------ */

struct pvcopy {
    uint8_t *buf; /* the first MiB */
    size_t len;
    uint64_t mda_size, text_off, text_len;
};

static struct pvcopy load(void)
{
    char *a = fx("a.img");
    struct pvcopy c = {0};
    uint8_t *all = read_file(a, &c.len);
    c.len = 1u << 20;
    c.buf = malloc(c.len);
    memcpy(c.buf, all, c.len);
    free(all);
    free(a);
    uint8_t *h = c.buf + MDA_OFF;
    cr_assert_eq(memcmp(h + 4, " LVM2 x[5A%r0N*>", 16), 0);
    c.mda_size = get64(h + 32);
    c.text_off = get64(h + 40);
    c.text_len = get64(h + 48);
    return c;
}

static void fix_header(struct pvcopy *c)
{
    uint8_t *h = c->buf + MDA_OFF;
    put32(h, crc(0xf597a6cfu, h + 4, 508));
}

/* New text at offset off of the metadata area (wrapping after its end), checksums fixed. */
static void put_text(struct pvcopy *c, const char *text, size_t len, uint64_t off)
{
    uint8_t *h = c->buf + MDA_OFF, *area = c->buf + MDA_OFF;
    uint64_t first = len < c->mda_size - off ? len : c->mda_size - off;
    memcpy(area + off, text, first);
    memcpy(area + 512, text + first, len - first);
    put64(h + 40, off);
    put64(h + 48, len);
    put32(h + 56, crc(0xf597a6cfu, (const uint8_t *)text, len));
    fix_header(c);
}

static char *text_of(const struct pvcopy *c)
{
    char *t = malloc(c->text_len + 1);
    memcpy(t, c->buf + MDA_OFF + c->text_off, c->text_len);
    t[c->text_len] = 0;
    return t;
}

static int read_copy(const struct pvcopy *c, uint64_t window, struct lvm_pv_info **p, struct asr_error *err)
{
    char *path = scratch_path("pv.img");
    write_file(path, c->buf, c->len);
    cr_assert_eq(truncate(path, 64 << 20), 0);
    int rc = read_pv(path, window, p, err);
    free(path);
    return rc;
}

static void expect(const struct pvcopy *c, uint64_t window, int code, const char *words)
{
    struct lvm_pv_info *p = NULL;
    struct asr_error err = {0};
    int rc = read_copy(c, window, &p, &err);
    cr_assert_eq(rc, code, "got %d (%s), want %d", rc, err.msg, code);
    cr_assert(strstr(err.msg, words), "'%s' lacks '%s'", err.msg, words);
    cr_assert_null(p);
}

Test(lvm, label_checksum)
{
    struct pvcopy c = load();
    c.buf[512 + 100] ^= 1; /* pv_header, inside the label's checksummed bytes */
    expect(&c, 0, ASR_E_CORRUPT, "LVM2 label: bad checksum");
    free(c.buf);
}

Test(lvm, no_label)
{
    struct pvcopy c = load();
    memset(c.buf, 0, 2048);
    expect(&c, 0, ASR_E_CORRUPT, "LVM2 label: none");
    free(c.buf);
}

Test(lvm, header_and_text_checksums)
{
    struct pvcopy c = load();
    c.buf[MDA_OFF + 100] ^= 1;
    expect(&c, 0, ASR_E_CORRUPT, "bad header checksum");
    c.buf[MDA_OFF + 100] ^= 1;
    c.buf[MDA_OFF + c.text_off + 10] ^= 1;
    expect(&c, 0, ASR_E_CORRUPT, "LVM2 metadata: bad checksum");
    free(c.buf);
}

Test(lvm, truncated)
{
    struct pvcopy c = load();
    /* The PV cut inside its metadata text: the read falls outside the window. */
    expect(&c, MDA_OFF + c.text_off + c.text_len / 2, ASR_E_CORRUPT, "metadata area");
    /* The text itself cut short, checksums fixed: the parser sees the end mid-section. */
    char *t = text_of(&c);
    put_text(&c, t, c.text_len / 2, c.text_off);
    expect(&c, 0, ASR_E_CORRUPT, "LVM2 metadata: ");
    free(t);
    free(c.buf);
}

Test(lvm, over_the_cap)
{
    struct pvcopy c = load();
    put64(c.buf + MDA_OFF + 48, LVM_METADATA_MAX + 1);
    fix_header(&c);
    expect(&c, 0, ASR_E_LIMIT, "more than");
    free(c.buf);
}

Test(lvm, wrapped_buffer_reads_the_same)
{
    struct pvcopy c = load();
    char *t = text_of(&c);
    put_text(&c, t, c.text_len, c.mda_size - 300); /* 300 bytes at the end, the rest after the header */
    struct lvm_pv_info *p = NULL;
    struct asr_error err = {0};
    cr_assert_eq(read_copy(&c, 0, &p, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(p->vg.nlvs, 4);
    cr_assert_eq(lvm_find_lv(&p->vg, "two")->nsegs, 2);
    lvm_pv_info_free(p);
    /* A wrapped text longer than the ring is refused. */
    put64(c.buf + MDA_OFF + 48, c.mda_size);
    fix_header(&c);
    expect(&c, 0, ASR_E_CORRUPT, "do not fit");
    free(t);
    free(c.buf);
}

static void expect_text(const char *from, const char *to, int code, const char *words)
{
    struct pvcopy c = load();
    char *t = text_of(&c), *at = strstr(t, from);
    cr_assert(at, "%s", from);
    char *n = NULL;
    cr_assert(asprintf(&n, "%.*s%s%s", (int)(at - t), t, to, at + strlen(from)) > 0);
    put_text(&c, n, strlen(n), c.text_off);
    expect(&c, 0, code, words);
    /* The text alone says the same. */
    struct lvm_vg vg;
    struct asr_error err = {0};
    cr_assert_eq(lvm_parse_metadata(n, strlen(n), &vg, &err), code, "%s", err.msg);
    free(n);
    free(t);
    free(c.buf);
}

/* A type this reader does not map is recorded by name, the rest of the VG still reads, and the
 * LV's bytes refuse to map (the caller captures its extents whole, naming the type). */
Test(lvm, unsupported_types_named)
{
    const char *types[] = {"thin-pool", "thin", "raid1", "mirror", "cache", "snapshot", "error", "zero"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        struct pvcopy c = load();
        char *t = text_of(&c), *at = strstr(t, "type = \"striped\"");
        cr_assert(at);
        char *n = NULL;
        cr_assert(asprintf(&n, "%.*stype = \"%s\"%s", (int)(at - t), t, types[i], at + strlen("type = \"striped\"")) > 0);
        struct lvm_vg vg;
        struct asr_error err = {0};
        cr_assert_eq(lvm_parse_metadata(n, strlen(n), &vg, &err), ASR_OK, "%s: %s", types[i], err.msg);
        const struct lvm_lv *odd = NULL;
        size_t mapped = 0;
        for (size_t k = 0; k < vg.nlvs; k++)
            if (lvm_lv_unmapped(&vg.lvs[k]))
                odd = &vg.lvs[k];
            else
                mapped++;
        cr_assert(odd, "%s: one LV is left unmapped", types[i]);
        cr_assert_str_eq(lvm_lv_unmapped(odd), types[i]);
        cr_assert_eq(mapped, vg.nlvs - 1, "%s: the other LVs still map", types[i]);
        size_t pv;
        uint64_t off, contig;
        cr_assert_eq(lvm_lv_locate(&vg, odd, 0, &pv, &off, &contig, &err), ASR_E_UNSUPPORTED);
        char *words = NULL;
        cr_assert(asprintf(&words, "segment type '%s' not supported", types[i]) > 0);
        cr_assert(strstr(err.msg, words), "%s", err.msg);
        struct lvm_area *areas = NULL;
        size_t na = 9;
        cr_assert_eq(lvm_lv_map(&vg, odd, &areas, &na, &err), ASR_OK);
        cr_assert_eq(na, 0, "%s: an unmapped segment has no areas on PVs", types[i]);
        free(areas), free(words), free(n), free(t), free(c.buf);
        lvm_vg_free(&vg);
    }
}

Test(lvm, references_out_of_bounds)
{
    expect_text("\"pv0\", 0", "\"pv7\", 0", ASR_E_CORRUPT, "names no PV");
    expect_text("\"pv0\", 0", "\"pv0\", 60", ASR_E_CORRUPT, "past the end");
    expect_text("extent_size = 2048", "extent_size = 0", ASR_E_CORRUPT, "bad extent_size");
    expect_text("pe_count = ", "pe_count = 99999999", ASR_E_CORRUPT, "do not fit the device");
    expect_text("segment_count = 2", "segment_count = 3", ASR_E_CORRUPT, "no segment3");
    expect_text("stripe_count = 2", "stripe_count = 3", ASR_E_CORRUPT, "stripes");
    expect_text("seqno = ", "seqno = -", ASR_E_CORRUPT, "seqno");
    expect_text("\"striped\"", "\"striped", ASR_E_CORRUPT, "unterminated string");
}

Test(lvm, text_limits)
{
    /* Nesting past the cap and a deep list are refused without recursion running away. */
    char deep[2048] = "vg {\n";
    for (int i = 0; i < 100; i++)
        strcat(deep, "a {");
    struct lvm_vg vg;
    struct asr_error err = {0};
    cr_assert_eq(lvm_parse_metadata(deep, strlen(deep), &vg, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "nesting too deep"), "%s", err.msg);
    const char *big = "vg { x = 99999999999999999999999 }";
    cr_assert_eq(lvm_parse_metadata(big, strlen(big), &vg, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "integer"), "%s", err.msg);
    /* Items past the cap (a text under LVM_METADATA_MAX can hold half a million): ASR_E_LIMIT. */
    size_t n = 300000, len = 0;
    char *many = malloc(2 * n + 32);
    len += (size_t)sprintf(many, "vg { x = [");
    for (size_t i = 0; i < n; i++)
        many[len++] = '1', many[len++] = ',';
    len += (size_t)sprintf(many + len, "] }");
    cr_assert_eq(lvm_parse_metadata(many, len, &vg, &err), ASR_E_LIMIT, "%s", err.msg);
    free(many);
}
