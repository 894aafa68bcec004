/* UEFI load options (EFI_LOAD_OPTION) and the device paths in them, as the machine record keeps
 * them and a restore builds them (SPEC.md section 4): parsing with every length bounded by the
 * bytes present, finding the GPT HD() node that ties an entry to a partition, and building the
 * short-form HD()/File() option that boot managers accept. The bytes come from efivarfs or an
 * image, so nothing here trusts a length it has not checked. */
#include "internal.h"
#include "le.h"

#include <string.h>

#define OPT_FIXED 6u      /* Attributes (u32), FilePathListLength (u16) */
#define NODE_MIN 4u       /* type, subtype, length (u16) */
#define DP_MEDIA 0x04
#define DP_MEDIA_HD 0x01
#define DP_END 0x7f
#define DP_END_INSTANCE 0x01
#define DP_END_ENTIRE 0xff
#define HD_NODE_LEN 42u
#define HD_MBR_GPT 0x02   /* PartitionFormat: GUID partition table */
#define HD_SIG_GUID 0x02  /* SignatureType: a GUID */

/* UTF-16LE code units of the description to UTF-8 for display; an unpaired surrogate or a control
 * character becomes '?', and the text is cut at a character boundary when it would overflow. */
static void desc_utf8(const uint8_t *p, uint32_t units, char *out, size_t cap)
{
    size_t at = 0;
    for (uint32_t i = 0; i < units; i++) {
        uint32_t c = get_le16(p + 2 * i);
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < units) {
            uint32_t lo = get_le16(p + 2 * (i + 1));
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                i++;
            }
        }
        if ((c >= 0xd800 && c <= 0xdfff) || c < 0x20 || c == 0x7f)
            c = '?';
        uint8_t u[4];
        size_t n;
        if (c < 0x80)
            u[0] = (uint8_t)c, n = 1;
        else if (c < 0x800)
            u[0] = (uint8_t)(0xc0 | (c >> 6)), u[1] = (uint8_t)(0x80 | (c & 0x3f)), n = 2;
        else if (c < 0x10000)
            u[0] = (uint8_t)(0xe0 | (c >> 12)), u[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)),
            u[2] = (uint8_t)(0x80 | (c & 0x3f)), n = 3;
        else
            u[0] = (uint8_t)(0xf0 | (c >> 18)), u[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f)),
            u[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (c & 0x3f)), n = 4;
        if (at + n >= cap)
            break;
        memcpy(out + at, u, n);
        at += n;
    }
    out[at] = '\0';
}

/* Walks the device path list: well-formed nodes, exactly one End Entire node, at the end. Notes
 * the first instance's GPT HD() node and the nodes after it. */
static int parse_path(struct asr_load_option *o, struct asr_error *err)
{
    const uint8_t *p = o->path;
    uint32_t at = 0, len = o->path_len;
    bool first = true;
    while (at < len) {
        if (len - at < NODE_MIN)
            return fmt_fail(err, ASR_E_CORRUPT, "device path node at %u truncated", at);
        uint8_t type = p[at], sub = p[at + 1];
        uint16_t nlen = get_le16(p + at + 2);
        if (nlen < NODE_MIN || nlen > len - at)
            return fmt_fail(err, ASR_E_CORRUPT, "device path node at %u: length %u out of range", at, nlen);
        if (type == DP_END && sub == DP_END_ENTIRE) {
            if (at + nlen != len)
                return fmt_fail(err, ASR_E_CORRUPT, "device path ends at %u, before its %u bytes", at, len);
            if (first && o->has_hd)
                o->file_len = at - o->file_at;
            return ASR_OK;
        }
        if (type == DP_END && sub == DP_END_INSTANCE) {
            if (first && o->has_hd)
                o->file_len = at - o->file_at;
            first = false;
        } else if (first && !o->has_hd && type == DP_MEDIA && sub == DP_MEDIA_HD) {
            if (nlen != HD_NODE_LEN)
                return fmt_fail(err, ASR_E_CORRUPT, "HD() node of %u bytes (42)", nlen);
            const uint8_t *h = p + at + NODE_MIN;
            if (h[36] == HD_MBR_GPT && h[37] == HD_SIG_GUID) {
                o->has_hd = true;
                o->hd.partition = get_le32(h);
                o->hd.start_lba = get_le64(h + 4);
                o->hd.size_lba = get_le64(h + 12);
                memcpy(o->hd.guid, h + 20, 16);
                o->file_at = at + nlen;
            }
        }
        at += nlen;
    }
    return fmt_fail(err, ASR_E_CORRUPT, "device path has no End node");
}

int asr_load_option_parse(const uint8_t *b, size_t n, struct asr_load_option *o, struct asr_error *err)
{
    memset(o, 0, sizeof *o);
    if (n < OPT_FIXED + 2 + NODE_MIN)
        return fmt_fail(err, ASR_E_CORRUPT, "load option of %zu bytes too short", n);
    if (n > ASR_LOAD_OPTION_MAX)
        return fmt_fail(err, ASR_E_CORRUPT, "load option of %zu bytes over %u", n, ASR_LOAD_OPTION_MAX);
    o->attributes = get_le32(b);
    o->path_len = get_le16(b + 4);
    size_t at = OPT_FIXED;
    while (at + 2 <= n && get_le16(b + at))
        at += 2;
    if (at + 2 > n)
        return fmt_fail(err, ASR_E_CORRUPT, "load option description not terminated");
    o->desc = b + OPT_FIXED;
    o->desc_len = (uint32_t)(at + 2 - OPT_FIXED);
    desc_utf8(o->desc, o->desc_len / 2 - 1, o->description, sizeof o->description);
    at += 2;
    if (o->path_len < NODE_MIN || o->path_len > n - at)
        return fmt_fail(err, ASR_E_CORRUPT, "device path of %u bytes does not fit in the load option's %zu",
                        o->path_len, n);
    o->path = b + at;
    o->optional = b + at + o->path_len;
    o->optional_len = (uint32_t)(n - at - o->path_len);
    return parse_path(o, err);
}

int asr_load_option_build(uint32_t attributes, const uint8_t *desc, uint32_t desc_len, const struct asr_hd_node *hd,
                          const uint8_t *file, uint32_t file_len, const uint8_t *optional, uint32_t optional_len,
                          uint8_t *out, size_t cap, size_t *len, struct asr_error *err)
{
    if (desc_len < 2 || desc_len % 2 || get_le16(desc + desc_len - 2))
        return fmt_fail(err, ASR_E_ARG, "description not NUL-terminated UTF-16");
    uint64_t path_len = (uint64_t)HD_NODE_LEN + file_len + NODE_MIN;
    uint64_t need = OPT_FIXED + (uint64_t)desc_len + path_len + optional_len;
    if (path_len > UINT16_MAX || need > cap || need > ASR_LOAD_OPTION_MAX)
        return fmt_fail(err, ASR_E_LIMIT, "load option of %llu bytes over %u", (unsigned long long)need,
                        ASR_LOAD_OPTION_MAX);
    uint8_t *p = out;
    put_le32(p, attributes);
    put_le16(p + 4, (uint16_t)path_len);
    memcpy(p + OPT_FIXED, desc, desc_len);
    p += OPT_FIXED + desc_len;
    p[0] = DP_MEDIA;
    p[1] = DP_MEDIA_HD;
    put_le16(p + 2, HD_NODE_LEN);
    put_le32(p + 4, hd->partition);
    put_le64(p + 8, hd->start_lba);
    put_le64(p + 16, hd->size_lba);
    memcpy(p + 24, hd->guid, 16);
    p[40] = HD_MBR_GPT;
    p[41] = HD_SIG_GUID;
    p += HD_NODE_LEN;
    if (file_len)
        memcpy(p, file, file_len);
    p += file_len;
    p[0] = DP_END;
    p[1] = DP_END_ENTIRE;
    put_le16(p + 2, NODE_MIN);
    p += NODE_MIN;
    if (optional_len)
        memcpy(p, optional, optional_len);
    *len = (size_t)need;
    return ASR_OK;
}
