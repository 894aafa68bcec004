/* LVM2 read from the disks themselves (see lvm.h): the PV label, the metadata area header and
 * its circular buffer, a parser of the VG's text metadata into a small tree, and the mapping of
 * LV bytes onto PV bytes. Internal to the engine. */
#include "lvm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512u
#define LABEL_SCAN_SECTORS 4
#define LVM_CRC_INIT 0xf597a6cfu
#define MDA_HEADER_SIZE 512u
#define MDA_VERSION 1u
#define RAW_LOCN_IGNORED 1u
#define MAX_AREAS 8       /* data or metadata areas read from a label */
#define MAX_DEPTH 16      /* section nesting in the text */
#define MAX_NODES 200000  /* tree nodes from one text */
#define MAX_STRIPES 128

static const uint8_t mda_magic[16] = " LVM2 x[5A%r0N*>";

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* lvm2's CRC: the reflected CRC-32 polynomial, its own start value, no final inversion. */
static uint32_t lvm_crc(uint32_t crc, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return crc;
}

/* ---- the text metadata as a tree ---------------------------------------------------------- */

enum cn_kind { CN_SECTION, CN_INT, CN_STR, CN_LIST };

struct cn {
    char *key; /* NULL for list items */
    enum cn_kind kind;
    int64_t i;
    char *s;
    struct cn *child, *next; /* section members or list items; siblings */
};

struct parser {
    const char *p, *end;
    size_t nodes;
    int line;
    int rc; /* why new_node failed */
    struct asr_error *err;
};

static void cn_free(struct cn *n)
{
    while (n) {
        struct cn *next = n->next;
        cn_free(n->child);
        free(n->key);
        free(n->s);
        free(n);
        n = next;
    }
}

static int perr(struct parser *ps, const char *what)
{
    return asr_fail_public(ps->err, ASR_E_CORRUPT, "LVM2 metadata: %s: line %d", what, ps->line);
}

static void skip_space(struct parser *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '\n') {
            ps->line++;
            ps->p++;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ps->p++;
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else {
            break;
        }
    }
}

static struct cn *new_node(struct parser *ps, enum cn_kind kind)
{
    if (++ps->nodes > MAX_NODES) {
        ps->rc = asr_fail_public(ps->err, ASR_E_LIMIT, "LVM2 metadata: more than %d items: line %d", MAX_NODES, ps->line);
        return NULL;
    }
    struct cn *n = calloc(1, sizeof *n);
    if (!n)
        ps->rc = asr_fail_public(ps->err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    else
        n->kind = kind;
    return n;
}

static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '+';
}

static int parse_ident(struct parser *ps, char **out)
{
    const char *s = ps->p;
    while (ps->p < ps->end && is_ident(*ps->p))
        ps->p++;
    if (ps->p == s)
        return perr(ps, "a name expected");
    *out = strndup(s, (size_t)(ps->p - s));
    return *out ? ASR_OK : asr_fail_public(ps->err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
}

/* A value: "string" (\ escapes the next character), an integer, or [ values, ... ]. */
static int parse_value(struct parser *ps, struct cn *n, int depth)
{
    skip_space(ps);
    if (ps->p >= ps->end)
        return perr(ps, "a value expected");
    char c = *ps->p;
    if (c == '"') {
        const char *s = ++ps->p;
        size_t len = 0;
        for (const char *q = s; ; q++, len++) {
            if (q >= ps->end || *q == '\n')
                return perr(ps, "an unterminated string");
            if (*q == '\\' && q + 1 < ps->end)
                q++;
            else if (*q == '"')
                break;
        }
        if (!(n->s = malloc(len + 1)))
            return asr_fail_public(ps->err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
        size_t k = 0;
        while (*ps->p != '"') {
            if (*ps->p == '\\')
                ps->p++;
            n->s[k++] = *ps->p++;
        }
        n->s[k] = 0;
        ps->p++;
        n->kind = CN_STR;
        return ASR_OK;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        bool neg = c == '-';
        if (neg)
            ps->p++;
        uint64_t v = 0;
        const char *s = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            if (v > (uint64_t)INT64_MAX / 10)
                return perr(ps, "an integer out of range");
            v = v * 10 + (uint64_t)(*ps->p++ - '0');
        }
        if (ps->p == s || v > (uint64_t)INT64_MAX)
            return perr(ps, "a bad integer");
        if (ps->p < ps->end && *ps->p == '.')
            return perr(ps, "a real number where none is expected");
        n->kind = CN_INT;
        n->i = neg ? -(int64_t)v : (int64_t)v;
        return ASR_OK;
    }
    if (c == '[') {
        if (depth >= MAX_DEPTH)
            return perr(ps, "nesting too deep");
        ps->p++;
        n->kind = CN_LIST;
        struct cn **tail = &n->child;
        skip_space(ps);
        while (ps->p < ps->end && *ps->p != ']') {
            struct cn *item = new_node(ps, CN_INT);
            if (!item)
                return ps->rc;
            *tail = item;
            tail = &item->next;
            int rc = parse_value(ps, item, depth + 1);
            if (rc)
                return rc;
            skip_space(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                skip_space(ps);
            } else if (ps->p < ps->end && *ps->p != ']') {
                return perr(ps, "',' or ']' expected in a list");
            }
        }
        if (ps->p >= ps->end)
            return perr(ps, "an unterminated list");
        ps->p++;
        return ASR_OK;
    }
    return perr(ps, "a value expected");
}

/* Members until '}' (inside a section) or the end of the text (depth 0). */
static int parse_members(struct parser *ps, struct cn **tail, int depth)
{
    for (;;) {
        skip_space(ps);
        if (ps->p >= ps->end)
            return depth == 0 ? ASR_OK : perr(ps, "an unterminated section");
        if (*ps->p == '}') {
            if (depth == 0)
                return perr(ps, "a '}' without a section");
            ps->p++;
            return ASR_OK;
        }
        struct cn *n = new_node(ps, CN_SECTION);
        if (!n)
            return ps->rc;
        *tail = n;
        tail = &n->next;
        int rc = parse_ident(ps, &n->key);
        if (rc)
            return rc;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == '{') {
            if (depth >= MAX_DEPTH)
                return perr(ps, "nesting too deep");
            ps->p++;
            rc = parse_members(ps, &n->child, depth + 1);
        } else if (ps->p < ps->end && *ps->p == '=') {
            ps->p++;
            rc = parse_value(ps, n, depth);
        } else {
            rc = perr(ps, "'=' or '{' expected");
        }
        if (rc)
            return rc;
    }
}

static const struct cn *cn_get(const struct cn *sec, const char *key)
{
    for (const struct cn *n = sec ? sec->child : NULL; n; n = n->next)
        if (n->key && !strcmp(n->key, key))
            return n;
    return NULL;
}

/* ---- from the tree to struct lvm_vg ------------------------------------------------------- */

static int need_u64(const struct cn *sec, const char *key, uint64_t *out, struct asr_error *err)
{
    const struct cn *n = cn_get(sec, key);
    if (!n || n->kind != CN_INT || n->i < 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: no valid '%s'", sec->key, key);
    *out = (uint64_t)n->i;
    return ASR_OK;
}

static int need_str(const struct cn *sec, const char *key, bool required, char **out, struct asr_error *err)
{
    const struct cn *n = cn_get(sec, key);
    if (!n || n->kind != CN_STR) {
        if (!required && !n)
            return ASR_OK;
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: no valid '%s'", sec->key, key);
    }
    *out = strdup(n->s);
    return *out ? ASR_OK : asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
}

static size_t cn_count(const struct cn *sec)
{
    size_t k = 0;
    for (const struct cn *n = sec ? sec->child : NULL; n; n = n->next)
        k++;
    return k;
}

static int read_pvs(const struct cn *vgs, struct lvm_vg *vg, struct asr_error *err)
{
    const struct cn *pvs = cn_get(vgs, "physical_volumes");
    if (!pvs || pvs->kind != CN_SECTION || !pvs->child)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: no physical_volumes", vg->name);
    size_t k = cn_count(pvs);
    if (!(vg->pvs = calloc(k, sizeof *vg->pvs)))
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    for (const struct cn *n = pvs->child; n; n = n->next) {
        if (n->kind != CN_SECTION)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: physical_volumes: '%s' is not a section", n->key);
        struct lvm_pv *pv = &vg->pvs[vg->npvs++];
        int rc;
        if (!(pv->name = strdup(n->key)))
            return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
        if ((rc = need_str(n, "id", true, &pv->uuid, err)) || (rc = need_str(n, "device", false, &pv->device, err)) ||
            (rc = need_u64(n, "pe_start", &pv->pe_start, err)) || (rc = need_u64(n, "pe_count", &pv->pe_count, err)))
            return rc;
        if (cn_get(n, "dev_size") && (rc = need_u64(n, "dev_size", &pv->dev_size, err)))
            return rc;
        if (pv->pe_count > UINT64_MAX / vg->extent_size ||
            pv->pe_start > UINT64_MAX / SECTOR - pv->pe_count * vg->extent_size ||
            (pv->dev_size && pv->pe_start + pv->pe_count * vg->extent_size > pv->dev_size))
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: %" PRIu64 " extents from sector %" PRIu64
                                   " do not fit the device", n->key, pv->pe_count, pv->pe_start);
    }
    return ASR_OK;
}

static int find_pv(const struct lvm_vg *vg, const char *name, size_t *idx)
{
    for (size_t i = 0; i < vg->npvs; i++)
        if (!strcmp(vg->pvs[i].name, name)) {
            *idx = i;
            return 0;
        }
    return -1;
}

static int read_segment(const struct cn *n, const struct lvm_vg *vg, const char *lv, struct lvm_segment *s,
                        struct asr_error *err)
{
    int rc;
    const struct cn *type = cn_get(n, "type");
    if (!type || type->kind != CN_STR)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s: no segment type", lv, n->key);
    if (strcmp(type->s, "striped")) {
        /* A RAID, mirror, thin, cache or snapshot segment names other (hidden) LVs, whose own
         * segments are striped areas on PVs: recorded by type and left unmapped, so that the rest
         * of the VG still reads and the caller can capture such an LV's extents whole. */
        if ((rc = need_u64(n, "start_extent", &s->start_extent, err)) ||
            (rc = need_u64(n, "extent_count", &s->extent_count, err)))
            return rc;
        if (s->extent_count == 0)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s: no extents", lv, n->key);
        if (!(s->type = strdup(type->s)))
            return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
        return ASR_OK;
    }
    uint64_t sc = 0;
    if ((rc = need_u64(n, "start_extent", &s->start_extent, err)) ||
        (rc = need_u64(n, "extent_count", &s->extent_count, err)) || (rc = need_u64(n, "stripe_count", &sc, err)))
        return rc;
    if (sc < 1 || sc > MAX_STRIPES || s->extent_count == 0 || s->extent_count % sc)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s: %" PRIu64 " extents over %" PRIu64
                               " stripes", lv, n->key, s->extent_count, sc);
    s->stripe_count = (uint32_t)sc;
    if (sc > 1 && ((rc = need_u64(n, "stripe_size", &s->stripe_size, err)) || s->stripe_size == 0 ||
                   s->stripe_size > vg->extent_size || vg->extent_size % s->stripe_size))
        return rc ? rc : asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s: bad stripe_size", lv, n->key);
    const struct cn *st = cn_get(n, "stripes");
    if (!st || st->kind != CN_LIST || cn_count(st) != 2 * sc)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s: stripes do not match stripe_count", lv,
                               n->key);
    if (!(s->stripes = calloc(sc, sizeof *s->stripes)))
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    uint64_t area = s->extent_count / sc;
    const struct cn *it = st->child;
    for (uint32_t k = 0; k < sc; k++, it = it->next->next) {
        const struct cn *pe = it->next;
        if (it->kind != CN_STR || pe->kind != CN_INT || pe->i < 0 || find_pv(vg, it->s, &s->stripes[k].pv))
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s: stripe %u names no PV of the VG", lv,
                                   n->key, k);
        s->stripes[k].pe = (uint64_t)pe->i;
        if (s->stripes[k].pe > vg->pvs[s->stripes[k].pv].pe_count ||
            area > vg->pvs[s->stripes[k].pv].pe_count - s->stripes[k].pe)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s: stripe %u past the end of %s", lv,
                                   n->key, k, it->s);
    }
    return ASR_OK;
}

static int read_lv(const struct cn *n, const struct lvm_vg *vg, struct lvm_lv *lv, struct asr_error *err)
{
    int rc;
    if (n->kind != CN_SECTION)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: logical_volumes: '%s' is not a section", n->key);
    if (!(lv->name = strdup(n->key)))
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    if ((rc = need_str(n, "id", true, &lv->uuid, err)))
        return rc;
    const struct cn *st = cn_get(n, "status");
    if (st && st->kind == CN_LIST) {
        if (!(lv->status = calloc(cn_count(st) + 1, sizeof *lv->status)))
            return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
        for (const struct cn *i = st->child; i; i = i->next)
            if (i->kind == CN_STR && !(lv->status[lv->nstatus++] = strdup(i->s)))
                return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    }
    uint64_t count = 0;
    if ((rc = need_u64(n, "segment_count", &count, err)))
        return rc;
    if (count == 0 || count > cn_count(n))
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: bad segment_count", lv->name);
    if (!(lv->segs = calloc(count, sizeof *lv->segs)))
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    for (uint64_t k = 0; k < count; k++) {
        char key[32];
        snprintf(key, sizeof key, "segment%" PRIu64, k + 1);
        const struct cn *sn = cn_get(n, key);
        if (!sn || sn->kind != CN_SECTION)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: no %s", lv->name, key);
        struct lvm_segment *s = &lv->segs[lv->nsegs++];
        if ((rc = read_segment(sn, vg, lv->name, s, err)))
            return rc;
        /* Segments follow each other without gaps: an LV's extents are numbered from 0. */
        if (s->start_extent != lv->extents || s->extent_count > UINT64_MAX / vg->extent_size / SECTOR - lv->extents)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s/%s starts at extent %" PRIu64
                                   ", not %" PRIu64, lv->name, key, s->start_extent, lv->extents);
        lv->extents += s->extent_count;
    }
    return ASR_OK;
}

static int tree_to_vg(const struct cn *root, struct lvm_vg *vg, struct asr_error *err)
{
    const struct cn *vgs = NULL;
    for (const struct cn *n = root; n; n = n->next)
        if (n->kind == CN_SECTION) {
            if (vgs)
                return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: more than one volume group");
            vgs = n;
        }
    if (!vgs)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: no volume group");
    int rc;
    if (!(vg->name = strdup(vgs->key)))
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    if ((rc = need_str(vgs, "id", true, &vg->uuid, err)) || (rc = need_u64(vgs, "seqno", &vg->seqno, err)) ||
        (rc = need_u64(vgs, "extent_size", &vg->extent_size, err)))
        return rc;
    if (vg->extent_size == 0 || vg->extent_size > UINT32_MAX)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: bad extent_size %" PRIu64, vg->name,
                               vg->extent_size);
    if ((rc = read_pvs(vgs, vg, err)))
        return rc;
    const struct cn *lvs = cn_get(vgs, "logical_volumes");
    if (!lvs)
        return ASR_OK;
    if (lvs->kind != CN_SECTION)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %s: logical_volumes is not a section", vg->name);
    if (!(vg->lvs = calloc(cn_count(lvs) + 1, sizeof *vg->lvs)))
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    for (const struct cn *n = lvs->child; n; n = n->next)
        if ((rc = read_lv(n, vg, &vg->lvs[vg->nlvs++], err)))
            return rc;
    return ASR_OK;
}

int lvm_parse_metadata(const char *text, size_t len, struct lvm_vg *vg, struct asr_error *err)
{
    memset(vg, 0, sizeof *vg);
    const char *nul = memchr(text, 0, len);
    struct parser ps = {.p = text, .end = nul ? nul : text + len, .line = 1, .err = err};
    struct cn *root = NULL;
    int rc = parse_members(&ps, &root, 0);
    if (!rc)
        rc = tree_to_vg(root, vg, err);
    cn_free(root);
    if (rc)
        lvm_vg_free(vg);
    return rc;
}

void lvm_vg_free(struct lvm_vg *vg)
{
    for (size_t i = 0; i < vg->npvs; i++) {
        free(vg->pvs[i].name);
        free(vg->pvs[i].uuid);
        free(vg->pvs[i].device);
    }
    for (size_t i = 0; i < vg->nlvs; i++) {
        struct lvm_lv *lv = &vg->lvs[i];
        for (size_t k = 0; k < lv->nstatus; k++)
            free(lv->status[k]);
        for (size_t k = 0; k < lv->nsegs; k++) {
            free(lv->segs[k].stripes);
            free(lv->segs[k].type);
        }
        free(lv->status);
        free(lv->segs);
        free(lv->name);
        free(lv->uuid);
    }
    free(vg->pvs);
    free(vg->lvs);
    free(vg->name);
    free(vg->uuid);
    memset(vg, 0, sizeof *vg);
}

/* ---- the label and the metadata area ------------------------------------------------------ */

struct locn {
    uint64_t off, size;
};

/* A disk_locn list ending with a zero offset, within the label sector. */
static int read_locns(const uint8_t *sec, size_t *pos, struct locn *out, size_t *n, const char *what,
                      struct asr_error *err)
{
    *n = 0;
    for (;;) {
        if (*pos + 16 > SECTOR)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 label: the %s list runs past its sector", what);
        uint64_t off = get64(sec + *pos), size = get64(sec + *pos + 8);
        *pos += 16;
        if (off == 0)
            return ASR_OK;
        if (*n == MAX_AREAS)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 label: more than %d %s", MAX_AREAS, what);
        out[(*n)++] = (struct locn){off, size};
    }
}

static int find_label(const struct asr_window *w, uint8_t *sec, struct asr_error *err)
{
    uint8_t buf[LABEL_SCAN_SECTORS * SECTOR];
    if (w->size < sizeof buf)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 label: the volume is too small to hold one");
    int rc = asr_window_read(w, "the LVM2 label", 0, buf, sizeof buf, err);
    if (rc)
        return rc;
    for (unsigned i = 0; i < LABEL_SCAN_SECTORS; i++) {
        const uint8_t *s = buf + i * SECTOR;
        if (memcmp(s, "LABELONE", 8))
            continue;
        uint32_t crc = lvm_crc(LVM_CRC_INIT, s + 20, SECTOR - 20);
        if (get64(s + 8) != i || get32(s + 16) != crc)
            return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 label: bad checksum or sector number: sector %u", i);
        if (memcmp(s + 24, "LVM2 001", 8))
            return asr_fail_public(err, ASR_E_UNSUPPORTED, "LVM2 label: type '%.8s' not supported: sector %u",
                                   (const char *)s + 24, i);
        memcpy(sec, s, SECTOR);
        return ASR_OK;
    }
    return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 label: none in the first %d sectors", LABEL_SCAN_SECTORS);
}

/* The current metadata text of the metadata area at mda (bytes from the PV's start) into a new
 * NUL-ended buffer; *text NULL when the area holds none (an orphan PV) or is marked ignored. */
static int read_mda(const struct asr_window *w, struct locn mda, char **text, size_t *len, struct asr_error *err)
{
    *text = NULL;
    uint8_t h[MDA_HEADER_SIZE];
    if (mda.size < 2 * MDA_HEADER_SIZE || mda.off > w->size || mda.size > w->size - mda.off)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata area: %" PRIu64 " bytes at %" PRIu64
                               " do not fit the PV", mda.size, mda.off);
    int rc = asr_window_read(w, "the LVM2 metadata area header", mda.off, h, sizeof h, err);
    if (rc)
        return rc;
    if (memcmp(h + 4, mda_magic, 16) || get32(h + 20) != MDA_VERSION)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata area: no header: byte %" PRIu64, mda.off);
    if (get32(h) != lvm_crc(LVM_CRC_INIT, h + 4, sizeof h - 4))
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata area: bad header checksum: byte %" PRIu64, mda.off);
    if (get64(h + 24) != mda.off || get64(h + 32) != mda.size)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata area: header disagrees with the label: byte %" PRIu64,
                               mda.off);
    const uint8_t *r = h + 40; /* raw_locn[0]: the current metadata */
    uint64_t off = get64(r), size = get64(r + 8);
    uint32_t sum = get32(r + 16), flags = get32(r + 20);
    if (off == 0 || (flags & RAW_LOCN_IGNORED))
        return ASR_OK;
    if (size > LVM_METADATA_MAX)
        return asr_fail_public(err, ASR_E_LIMIT, "LVM2 metadata: %" PRIu64 " bytes, more than the %u this reader "
                               "takes: byte %" PRIu64, size, LVM_METADATA_MAX, mda.off);
    uint64_t ring = mda.size - MDA_HEADER_SIZE;
    if (size == 0 || off < MDA_HEADER_SIZE || off >= mda.size || size > ring)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: %" PRIu64 " bytes at %" PRIu64 " do not fit "
                               "the area: byte %" PRIu64, size, off, mda.off);
    /* The buffer is circular: text running past the area's end goes on just after the header. */
    uint64_t first = size < mda.size - off ? size : mda.size - off;
    char *buf = malloc(size + 1);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 metadata: out of memory");
    rc = asr_window_read(w, "the LVM2 metadata", mda.off + off, buf, first, err);
    if (!rc && first < size)
        rc = asr_window_read(w, "the LVM2 metadata", mda.off + MDA_HEADER_SIZE, buf + first, size - first, err);
    if (!rc && lvm_crc(LVM_CRC_INIT, (const uint8_t *)buf, size) != sum)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: bad checksum: byte %" PRIu64, mda.off + off);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[size] = 0;
    *text = buf;
    *len = size;
    return ASR_OK;
}

static void uuid_plain(const uint8_t *src, char *dst)
{
    for (int i = 0; i < 32; i++)
        dst[i] = (src[i] >= 0x21 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[32] = 0;
}

/* Whether the metadata's "xxxxxx-xxxx-...." names the label's 32-character UUID. */
static bool uuid_match(const char *dashed, const char *plain)
{
    size_t k = 0;
    for (const char *p = dashed; *p; p++)
        if (*p != '-' && (k >= 32 || *p != plain[k++]))
            return false;
    return k == 32;
}

int lvm_read_pv(const struct asr_window *w, struct lvm_pv_info **out, struct asr_error *err)
{
    *out = NULL;
    uint8_t sec[SECTOR];
    int rc = find_label(w, sec, err);
    if (rc)
        return rc;
    size_t pos = get32(sec + 20);
    if (pos < 32 || pos > SECTOR - 40 - 32)
        return asr_fail_public(err, ASR_E_CORRUPT, "LVM2 label: pv_header offset %zu outside its sector", pos);
    struct lvm_pv_info *p = calloc(1, sizeof *p);
    if (!p)
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2 label: out of memory");
    uuid_plain(sec + pos, p->uuid);
    p->device_size = get64(sec + pos + 32);
    pos += 40;
    struct locn da[MAX_AREAS], ma[MAX_AREAS];
    size_t nda, nma;
    if ((rc = read_locns(sec, &pos, da, &nda, "data areas", err)) ||
        (rc = read_locns(sec, &pos, ma, &nma, "metadata areas", err)))
        goto fail;
    if (nda == 0) {
        rc = asr_fail_public(err, ASR_E_CORRUPT, "LVM2 label: no data area");
        goto fail;
    }
    p->data_offset = da[0].off;
    /* Each metadata area holds a copy: the newest that reads and parses wins, so one damaged
     * copy is survived; when none does, the first copy's error is the answer. */
    struct asr_error first = {0};
    for (size_t i = 0; i < nma; i++) {
        char *text = NULL;
        size_t len = 0;
        struct lvm_vg vg;
        struct asr_error e = {0};
        rc = read_mda(w, ma[i], &text, &len, &e);
        bool had_text = text != NULL;
        if (!rc && had_text)
            rc = lvm_parse_metadata(text, len, &vg, &e);
        free(text);
        if (rc == ASR_E_IO || rc == ASR_E_NOMEM) {
            asr_fail_public(err, e.code, "%s", e.msg);
            goto fail;
        }
        if (rc) {
            if (!first.code)
                first = e;
            continue;
        }
        if (!had_text)
            continue;
        if (p->has_vg && vg.seqno <= p->vg.seqno) {
            lvm_vg_free(&vg);
            continue;
        }
        lvm_vg_free(&p->vg);
        p->vg = vg;
        p->has_vg = true;
    }
    if (!p->has_vg) {
        if (first.code) {
            rc = asr_fail_public(err, first.code, "%s", first.msg);
            goto fail;
        }
        *out = p; /* an orphan PV, or every copy of the metadata elsewhere */
        return ASR_OK;
    }
    for (p->this_pv = 0; p->this_pv < p->vg.npvs; p->this_pv++)
        if (uuid_match(p->vg.pvs[p->this_pv].uuid, p->uuid))
            break;
    if (p->this_pv == p->vg.npvs) {
        rc = asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: VG %s does not list this PV (%s)", p->vg.name, p->uuid);
        goto fail;
    }
    if (p->vg.pvs[p->this_pv].pe_start * SECTOR != p->data_offset) {
        rc = asr_fail_public(err, ASR_E_CORRUPT, "LVM2 metadata: pe_start of %s disagrees with its label",
                             p->vg.pvs[p->this_pv].name);
        goto fail;
    }
    *out = p;
    return ASR_OK;
fail:
    lvm_pv_info_free(p);
    return rc;
}

void lvm_pv_info_free(struct lvm_pv_info *p)
{
    if (!p)
        return;
    lvm_vg_free(&p->vg);
    free(p);
}

/* ---- LV bytes on PV bytes ----------------------------------------------------------------- */

const char *lvm_lv_unmapped(const struct lvm_lv *lv)
{
    for (size_t i = 0; i < lv->nsegs; i++)
        if (lv->segs[i].type)
            return lv->segs[i].type;
    return NULL;
}

const struct lvm_lv *lvm_find_lv(const struct lvm_vg *vg, const char *name)
{
    for (size_t i = 0; i < vg->nlvs; i++)
        if (!strcmp(vg->lvs[i].name, name))
            return &vg->lvs[i];
    return NULL;
}

/* Bounds were checked when the metadata was read: extents fit each PV and the LV's total fits
 * a uint64_t in bytes. */
int lvm_lv_map(const struct lvm_vg *vg, const struct lvm_lv *lv, struct lvm_area **out, size_t *n,
               struct asr_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < lv->nsegs; i++)
        total += lv->segs[i].stripe_count;
    *n = 0;
    if (!(*out = calloc(total ? total : 1, sizeof **out)))
        return asr_fail_public(err, ASR_E_NOMEM, "LVM2: out of memory");
    uint64_t ext = (uint64_t)vg->extent_size * SECTOR;
    for (size_t i = 0; i < lv->nsegs; i++) {
        const struct lvm_segment *s = &lv->segs[i];
        if (s->type)
            continue; /* unmapped: no areas of its own */
        uint64_t area = s->extent_count / s->stripe_count;
        for (uint32_t k = 0; k < s->stripe_count; k++) {
            const struct lvm_pv *pv = &vg->pvs[s->stripes[k].pv];
            (*out)[(*n)++] = (struct lvm_area){
                .pv = s->stripes[k].pv,
                .pv_off = pv->pe_start * SECTOR + s->stripes[k].pe * ext,
                .len = area * ext,
                .lv_off = s->start_extent * ext,
                .lv_len = s->extent_count * ext,
                .stripe = k,
                .stripe_count = s->stripe_count,
                .stripe_bytes = s->stripe_size * SECTOR,
            };
        }
    }
    return ASR_OK;
}

int lvm_lv_locate(const struct lvm_vg *vg, const struct lvm_lv *lv, uint64_t lv_off, size_t *pv, uint64_t *pv_off,
                  uint64_t *contig, struct asr_error *err)
{
    uint64_t ext = (uint64_t)vg->extent_size * SECTOR;
    for (size_t i = 0; i < lv->nsegs; i++) {
        const struct lvm_segment *s = &lv->segs[i];
        uint64_t start = s->start_extent * ext, len = s->extent_count * ext;
        if (lv_off < start || lv_off - start >= len)
            continue;
        if (s->type)
            return asr_fail_public(err, ASR_E_UNSUPPORTED, "LVM2 logical volume: %s: segment type '%s' not "
                                   "supported (only linear and striped)", lv->name, s->type);
        uint64_t in = lv_off - start;
        uint32_t k = 0;
        uint64_t at = in, left = len - in;
        if (s->stripe_count > 1) {
            uint64_t chunk = s->stripe_size * SECTOR, c = in / chunk;
            k = (uint32_t)(c % s->stripe_count);
            at = (c / s->stripe_count) * chunk + in % chunk;
            left = chunk - in % chunk;
        }
        *pv = s->stripes[k].pv;
        *pv_off = vg->pvs[*pv].pe_start * SECTOR + s->stripes[k].pe * ext + at;
        *contig = left;
        return ASR_OK;
    }
    return asr_fail_public(err, ASR_E_ARG, "LVM2: byte %" PRIu64 " past the end of %s", lv_off, lv->name);
}
