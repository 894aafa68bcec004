/* LUKS containers read from a window of a disk: see luks.h. The header is parsed by
 * libcryptsetup (the reference implementation, which verifies LUKS2's checksums and JSON, and
 * the passphrase against the keyslots) from a sparse memory file holding a copy of the header
 * area: libcryptsetup wants a path, and the window is a run of a disk (a partition), which it
 * cannot open by itself without a loop device. Only what must be known to size that copy is read
 * here by hand (luks_header_extent). The data is decrypted with OpenSSL's EVP: it is already on
 * every system that has cryptsetup, and its AES-XTS and AES-CBC use AES-NI where the CPU has it. */
#include "luks.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LUKS_MAGIC_1ST "LUKS\xba\xbe"
#define LUKS_MAGIC_2ND "SKUL\xba\xbe"
#define LUKS_MAGIC_LEN 6
#define LUKS1_PHDR 592
#define LUKS1_SLOTS 8
#define LUKS1_SLOT_ENABLED 0x00AC71F3u
#define LUKS1_KEY_MAX 512 /* bytes; LUKS1 volume keys are at most 64 in practice */
#define LUKS2_BIN_HDR 4096
#define SECTOR 512u

/* The header sizes LUKS2 allows (binary header and JSON area), which are also where libcryptsetup
 * looks for the secondary header when the primary is damaged. */
static const uint64_t luks2_sizes[] = {16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304};
#define N_LUKS2_SIZES (sizeof luks2_sizes / sizeof luks2_sizes[0])

struct luks_private {
    struct crypt_device *cd;
    int memfd;
    const struct asr_window *w;
    char fdpath[32];      /* the copy's path, as libcryptsetup names it */
    char last_error[256]; /* libcryptsetup's last error line, for our messages */
};

struct luks_key {
    size_t len, alloc;
    uint8_t bytes[];
};

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* The window in messages: its disk, and where on it when it is a run of one (a partition). One
 * buffer per thread: use it once per message. */
static const char *wname(const struct asr_window *w)
{
    static _Thread_local char buf[192];
    const char *path = w->path ? w->path : "the volume";
    if (w->ops || w->base == 0)
        return path;
    snprintf(buf, sizeof buf, "%s at byte %" PRIu64, path, w->base);
    return buf;
}

/* ---- the header area's extent ------------------------------------------------------------- */

static int luks1_extent(const uint8_t *b, uint64_t window_size, uint64_t *extent, struct asr_error *err)
{
    uint32_t key_bytes = be32(b + 108);
    if (key_bytes == 0 || key_bytes > LUKS1_KEY_MAX)
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS1 header: key size of %" PRIu32 " bytes: byte 108", key_bytes);
    uint64_t end = LUKS1_PHDR;
    for (unsigned i = 0; i < LUKS1_SLOTS; i++) {
        const uint8_t *s = b + 208 + 48 * i;
        if (be32(s) != LUKS1_SLOT_ENABLED)
            continue;
        uint64_t at = (uint64_t)be32(s + 40) * SECTOR, stripes = be32(s + 44);
        /* The AF-split key material: key_bytes * stripes, in whole sectors. */
        uint64_t len = (key_bytes * stripes + SECTOR - 1) / SECTOR * SECTOR;
        if (at > LUKS_HEADER_MAX || len > LUKS_HEADER_MAX - at)
            return asr_fail_public(err, ASR_E_LIMIT,
                                   "LUKS1 header: keyslot %u's material ends past %u MiB (at sector %" PRIu32
                                   ", %" PRIu64 " stripes): byte %u",
                                   i, LUKS_HEADER_MAX >> 20, be32(s + 40), stripes, 208 + 48 * i + 40);
        if (at + len > end)
            end = at + len;
    }
    if (end > window_size)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "LUKS1 header: keyslot material ends at byte %" PRIu64 ", past the %" PRIu64
                               "-byte volume",
                               end, window_size);
    *extent = end;
    return ASR_OK;
}

int luks_header_extent(const uint8_t *buf, size_t n, uint64_t at, uint64_t window_size, int *version,
                       uint64_t *extent, struct asr_error *err)
{
    if (n < LUKS2_BIN_HDR)
        return asr_fail_public(err, ASR_E_ARG, "LUKS header: %zu bytes given, 4096 needed", n);
    bool primary = at == 0;
    if (memcmp(buf, primary ? LUKS_MAGIC_1ST : LUKS_MAGIC_2ND, LUKS_MAGIC_LEN))
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS header: no %s LUKS magic: byte %" PRIu64,
                               primary ? "primary" : "secondary", at);
    uint16_t v = be16(buf + 6);
    if (v == 1 && primary) {
        *version = 1;
        return luks1_extent(buf, window_size, extent, err);
    }
    if (v != 2)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS header: version %u: byte %" PRIu64, v, at + 6);
    uint64_t hdr_size = be64(buf + 8), hdr_offset = be64(buf + 256);
    size_t k = 0;
    while (k < N_LUKS2_SIZES && luks2_sizes[k] != hdr_size)
        k++;
    if (k == N_LUKS2_SIZES)
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS2 header: header size %" PRIu64 " is not one LUKS2 allows: byte %" PRIu64,
                               hdr_size, at + 8);
    if (hdr_offset != at || (!primary && at != hdr_size))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "LUKS2 header: the header says it is at byte %" PRIu64 " (size %" PRIu64 "): byte %" PRIu64,
                               hdr_offset, hdr_size, at);
    if (2 * hdr_size > window_size)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "LUKS2 header: two %" PRIu64 "-byte headers do not fit in the %" PRIu64 "-byte volume",
                               hdr_size, window_size);
    *version = 2;
    *extent = 2 * hdr_size;
    return ASR_OK;
}

/* ---- the copy libcryptsetup reads ---------------------------------------------------------- */

/* Copies [off, off+len) of the window to the same offset of the memory file. */
static int copy_area(struct luks_private *p, uint64_t off, uint64_t len, struct asr_error *err)
{
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    int rc = ASR_OK;
    while (len && rc == ASR_OK) {
        size_t take = len < CHUNK ? (size_t)len : CHUNK;
        rc = asr_window_read(p->w, "the LUKS header", off, buf, take, err);
        if (rc == ASR_OK && pwrite(p->memfd, buf, take, (off_t)off) != (ssize_t)take)
            rc = asr_fail_public(err, ASR_E_IO, "a copy of the LUKS header in memory: %s", strerror(errno));
        off += take, len -= take;
    }
    free(buf);
    return rc;
}

/* Keeps libcryptsetup's last error, on one line, without a final period and with "the device"
 * for the copy's /proc path (the message adds the volume's name). */
static void log_to_buffer(int level, const char *msg, void *usrptr)
{
    struct luks_private *p = usrptr;
    if (level != CRYPT_LOG_ERROR || !msg)
        return;
    size_t n = strcspn(msg, "\n"), o = 0, plen = strlen(p->fdpath);
    for (size_t i = 0; i < n && o + 1 < sizeof p->last_error;) {
        if (plen && n - i >= plen && !memcmp(msg + i, p->fdpath, plen)) {
            o += (size_t)snprintf(p->last_error + o, sizeof p->last_error - o, "the device");
            o = o < sizeof p->last_error ? o : sizeof p->last_error - 1;
            i += plen;
        } else {
            unsigned char c = (unsigned char)msg[i++];
            p->last_error[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
    }
    while (o && (p->last_error[o - 1] == '.' || p->last_error[o - 1] == ' '))
        o--;
    p->last_error[o] = '\0';
}

static int crypt_fail(struct luks_private *p, enum asr_status code, const char *what, int rc, struct asr_error *err)
{
    const char *why = p->last_error[0] ? p->last_error : strerror(-rc);
    return asr_fail_public(err, code, "%s: %s: %s", what, why, wname(p->w));
}

/* ---- LUKS2's segment and keyslot areas, from libcryptsetup's JSON ------------------------- */

static bool json_u64(json_object *o, const char *key, uint64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return false;
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        if (i < 0)
            return false;
        *out = (uint64_t)i;
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *s = json_object_get_string(v);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return false;
    *out = x;
    return true;
}

static const char *jstr(json_object *o)
{
    const char *s = o ? json_object_get_string(o) : NULL;
    return s ? s : "";
}

/* An untrusted string for a message: at most 32 characters, control characters as '?'. */
static const char *shown(const char *s, char buf[static 33])
{
    size_t i = 0;
    for (; s[i] && i < 32; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* The one crypt segment's fixed size (0: dynamic, to the end of the window) and, into the memory
 * file, every keyslot's area. */
static int luks2_json(struct luks_private *p, struct luks_header *h, struct asr_error *err)
{
    const char *text = NULL;
    int rc = crypt_dump_json(p->cd, &text, 0);
    if (rc < 0 || !text)
        return crypt_fail(p, ASR_E_CORRUPT, "LUKS2 header: its JSON", rc, err);
    json_object *root = json_tokener_parse(text), *segs, *slots, *seg = NULL;
    if (!root || !json_object_object_get_ex(root, "segments", &segs) || !json_object_is_type(segs, json_type_object) ||
        !json_object_object_get_ex(root, "keyslots", &slots) || !json_object_is_type(slots, json_type_object)) {
        json_object_put(root);
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS2 header: JSON without segments or keyslots: %s", wname(p->w));
    }
    rc = ASR_OK;
    int nsegs = json_object_object_length(segs);
    json_object_object_foreach(segs, key, val)
    {
        (void)key;
        seg = val;
    }
    json_object *type = NULL, *v = NULL;
    char shownbuf[33];
    uint64_t tweak = 0; /* crypt_get_iv_offset() is plain mode's only: LUKS2's is here */
    if (nsegs != 1)
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS2 header: %d data segments (one is handled): %s", nsegs,
                             wname(p->w));
    else if (!json_object_object_get_ex(seg, "type", &type) || strcmp(jstr(type), "crypt"))
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS2 header: a data segment of type '%s': %s",
                             shown(jstr(type), shownbuf), wname(p->w));
    else if (json_object_object_get_ex(seg, "iv_tweak", &v) && (!json_u64(seg, "iv_tweak", &tweak) || tweak != 0))
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS2 header: an IV offset of '%s' sectors: %s",
                             shown(jstr(v), shownbuf), wname(p->w));
    else if (json_object_object_get_ex(seg, "integrity", &v))
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS2 header: authenticated encryption (dm-integrity): %s",
                             wname(p->w));
    else if (json_object_object_get_ex(seg, "size", &v) && !strcmp(jstr(v), "dynamic"))
        h->data_size = 0;
    else if (!json_u64(seg, "size", &h->data_size) || h->data_size == 0)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "LUKS2 header: a data segment without a size: %s", wname(p->w));

    uint64_t total = 0;
    json_object_object_foreach(slots, name, slot)
    {
        json_object *area;
        uint64_t off = 0, size = 0;
        if (rc != ASR_OK)
            break;
        if (!json_object_object_get_ex(slot, "area", &area) || !json_u64(area, "offset", &off) ||
            !json_u64(area, "size", &size)) {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "LUKS2 header: keyslot %s without an area: %s",
                                 shown(name, shownbuf), wname(p->w));
        } else if (size > LUKS_HEADER_MAX - total || off > UINT64_MAX - size) {
            rc = asr_fail_public(err, ASR_E_LIMIT, "LUKS2 header: keyslot areas of more than %u MiB: %s",
                                 LUKS_HEADER_MAX >> 20, wname(p->w));
        } else if (off + size > p->w->size) {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "LUKS2 header: keyslot %s ends at byte %" PRIu64 ", past the %" PRIu64
                                 "-byte volume: %s", shown(name, shownbuf), off + size, p->w->size, wname(p->w));
        } else {
            total += size;
            rc = copy_area(p, off, size, err);
        }
    }
    json_object_put(root);
    return rc;
}

/* ---- the header ---------------------------------------------------------------------------- */

/* A string of the header, bounded, control characters as '?' (it ends up in messages). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
    for (char *c = dst; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

static bool handled_cipher(const char *cipher, const char *mode, uint32_t key_size)
{
    if (strcmp(cipher, "aes"))
        return false;
    if (!strcmp(mode, "xts-plain64"))
        return key_size == 32 || key_size == 64;
    if (!strcmp(mode, "cbc-essiv:sha256"))
        return key_size == 16 || key_size == 24 || key_size == 32;
    return false;
}

/* What the loaded header says, checked against the window. */
static int describe(struct luks_private *p, struct luks_header *h, uint64_t extent, struct asr_error *err)
{
    const struct asr_window *w = p->w;
    copy_str(h->uuid, sizeof h->uuid, crypt_get_uuid(p->cd));
    copy_str(h->cipher, sizeof h->cipher, crypt_get_cipher(p->cd));
    copy_str(h->mode, sizeof h->mode, crypt_get_cipher_mode(p->cd));
    if (h->version == 2)
        copy_str(h->label, sizeof h->label, crypt_get_label(p->cd));
    int ks = crypt_get_volume_key_size(p->cd), ss = crypt_get_sector_size(p->cd);
    if (ks <= 0)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS: no keyslot holds the volume key: %s", wname(w));
    h->key_size = (uint32_t)ks;
    h->sector_size = ss > 0 ? (uint32_t)ss : 0;
    if (h->sector_size < SECTOR || h->sector_size > 4096 || (h->sector_size & (h->sector_size - 1)))
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS header: encryption sector of %d bytes: %s", ss, wname(w));
    if (!handled_cipher(h->cipher, h->mode, h->key_size))
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "LUKS: cipher %s-%s with a %" PRIu32 "-bit key (aes-xts-plain64 and aes-cbc-essiv:sha256 are "
                               "handled): %s",
                               h->cipher, h->mode, h->key_size * 8, wname(w));
    if (crypt_get_iv_offset(p->cd) != 0)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS: an IV offset of %" PRIu64 " sectors: %s",
                               crypt_get_iv_offset(p->cd), wname(w));
    uint64_t sectors = crypt_get_data_offset(p->cd);
    if (sectors > UINT64_MAX / SECTOR || sectors * SECTOR > w->size)
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS header: data at sector %" PRIu64 ", past the %" PRIu64 "-byte volume: %s",
                               sectors, w->size, wname(w));
    h->data_offset = sectors * SECTOR;
    h->header_size = h->data_offset;
    /* Data overlapping the header: a header made for a data device of its own (--header). */
    if (h->data_offset < extent)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "LUKS: data at byte %" PRIu64 ", inside the %" PRIu64 "-byte header area (a detached header): %s",
                               h->data_offset, extent, wname(w));
    if (h->data_offset % h->sector_size)
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS header: data at byte %" PRIu64 ", not on a %" PRIu32 "-byte sector: %s",
                               h->data_offset, h->sector_size, wname(w));
    uint64_t room = w->size - h->data_offset;
    if (h->data_size == 0)
        h->data_size = room / h->sector_size * h->sector_size;
    else if (h->data_size > room || h->data_size % h->sector_size)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "LUKS2 header: a %" PRIu64 "-byte segment at byte %" PRIu64 " does not fit the %" PRIu64
                               "-byte volume in whole sectors: %s",
                               h->data_size, h->data_offset, w->size, wname(w));
    return ASR_OK;
}

/* The primary header at byte 0, or a LUKS2 secondary one where libcryptsetup would look. */
static int find_extent(const struct asr_window *w, int *version, uint64_t *extent, struct asr_error *err)
{
    uint8_t buf[LUKS2_BIN_HDR];
    if (w->size < LUKS2_BIN_HDR)
        return asr_fail_public(err, ASR_E_CORRUPT, "LUKS header: a %" PRIu64 "-byte volume is too small: %s", w->size,
                               wname(w));
    int rc = asr_window_read(w, "the LUKS header", 0, buf, sizeof buf, err);
    if (rc != ASR_OK)
        return rc;
    struct asr_error first = {0};
    rc = luks_header_extent(buf, sizeof buf, 0, w->size, version, extent, &first);
    if (rc == ASR_OK)
        return ASR_OK;
    /* A damaged LUKS2 primary: libcryptsetup falls back to a secondary copy, and so does this. */
    bool luks1 = !memcmp(buf, LUKS_MAGIC_1ST, LUKS_MAGIC_LEN) && be16(buf + 6) == 1;
    if (luks1)
        return asr_fail_public(err, first.code, "%s: %s", first.msg, wname(w));
    for (size_t k = 0; k < N_LUKS2_SIZES && luks2_sizes[k] <= w->size - sizeof buf; k++) {
        if (asr_window_read(w, "the LUKS header", luks2_sizes[k], buf, sizeof buf, err) != ASR_OK)
            return err->code;
        struct asr_error e2 = {0};
        if (luks_header_extent(buf, sizeof buf, luks2_sizes[k], w->size, version, extent, &e2) == ASR_OK)
            return ASR_OK;
    }
    return asr_fail_public(err, first.code, "%s: %s", first.msg, wname(w));
}

int luks_read_header(const struct asr_window *w, struct luks_header *h, struct asr_error *err)
{
    memset(h, 0, sizeof *h);
    int version = 0;
    uint64_t extent = 0;
    int rc = find_extent(w, &version, &extent, err);
    if (rc != ASR_OK)
        return rc;
    struct luks_private *p = calloc(1, sizeof *p);
    if (!p)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    p->w = w;
    h->priv = p;
    h->version = version;
    /* Sparse, as large as the window, so libcryptsetup's checks of offsets against the device's
     * size see the real size; only the header area holds data. */
    p->memfd = memfd_create("asrimg-luks-header", MFD_CLOEXEC);
    if (p->memfd < 0 || ftruncate(p->memfd, (off_t)w->size) != 0) {
        rc = asr_fail_public(err, ASR_E_IO, "a memory file for the LUKS header: %s", strerror(errno));
        goto fail;
    }
    if ((rc = copy_area(p, 0, extent, err)) != ASR_OK)
        goto fail;
    snprintf(p->fdpath, sizeof p->fdpath, "/proc/self/fd/%d", p->memfd);
    /* No lock files in /run: the copy is ours alone. The setting is global to libcryptsetup. */
    crypt_metadata_locking(NULL, 0);
    int crc = crypt_init(&p->cd, p->fdpath);
    if (crc < 0) {
        p->cd = NULL;
        rc = crypt_fail(p, ASR_E_IO, "LUKS: libcryptsetup cannot open the header's copy", crc, err);
        goto fail;
    }
    crypt_set_log_callback(p->cd, log_to_buffer, p);
    crc = crypt_load(p->cd, version == 1 ? CRYPT_LUKS1 : CRYPT_LUKS2, NULL);
    if (crc < 0 && version == 2 && crc == -EINVAL && !p->last_error[0]) {
        /* libcryptsetup tells why only in its debug log. */
        rc = asr_fail_public(err, ASR_E_CORRUPT,
                             "LUKS2 header: neither copy valid (checksum or JSON damaged): bytes 0 and %" PRIu64 ": %s",
                             extent / 2, wname(w));
        goto fail;
    }
    if (crc < 0) {
        rc = crypt_fail(p, crc == -EINVAL || crc == -ENOENT ? ASR_E_CORRUPT : ASR_E_UNSUPPORTED,
                        version == 1 ? "LUKS1 header" : "LUKS2 header", crc, err);
        goto fail;
    }
    /* Before the segments: during reencryption there are several, and this says why. */
    if (crypt_reencrypt_status(p->cd, NULL) != CRYPT_REENCRYPT_NONE) {
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED,
                             "LUKS2: reencryption in progress (finish it with cryptsetup first): %s", wname(w));
        goto fail;
    }
    if (version == 2) {
        uint64_t meta = 0, slots = 0;
        if ((rc = luks2_json(p, h, err)) != ASR_OK)
            goto fail;
        if (crypt_get_metadata_size(p->cd, &meta, &slots) == 0 && meta <= UINT64_MAX / 2)
            extent = 2 * meta; /* the keyslot areas are checked inside it by libcryptsetup */
    }
    if ((rc = describe(p, h, extent, err)) != ASR_OK)
        goto fail;
    return ASR_OK;
fail:
    luks_header_free(h);
    return rc;
}

void luks_header_free(struct luks_header *h)
{
    struct luks_private *p = h->priv;
    if (p) {
        if (p->cd)
            crypt_free(p->cd);
        if (p->memfd >= 0)
            close(p->memfd);
        free(p);
    }
    memset(h, 0, sizeof *h);
}

int luks_ciphertext_ranges(const struct luks_header *h, const struct asr_ranges *used, struct asr_ranges *out,
                           struct asr_error *err)
{
    if (asr_ranges_add(out, 0, h->header_size) != ASR_OK)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    const uint64_t ss = h->sector_size;
    for (size_t i = 0; i < used->n; i++) {
        const struct asr_range *r = &used->v[i];
        if (r->offset > h->data_size || r->length > h->data_size - r->offset)
            return asr_fail_public(err, ASR_E_ARG, "a used range at byte %" PRIu64 " past the %" PRIu64 "-byte LUKS volume",
                                   r->offset, h->data_size);
        uint64_t lo = h->data_offset + r->offset / ss * ss;
        uint64_t hi = h->data_offset + (r->offset + r->length + ss - 1) / ss * ss; /* data_size is whole sectors */
        /* Two ranges within one sector: the second starts where the first's widening ended. */
        const struct asr_range *last = out->n ? &out->v[out->n - 1] : NULL;
        if (last && lo < last->offset + last->length)
            lo = last->offset + last->length;
        if (lo < hi && asr_ranges_add(out, lo, hi - lo) != ASR_OK)
            return asr_fail_public(err, ASR_E_ARG, "used ranges out of order at byte %" PRIu64 " of the LUKS volume",
                                   r->offset);
    }
    return ASR_OK;
}

/* ---- the key ------------------------------------------------------------------------------- */

/* Secret bytes: page-aligned so mlock covers them alone; wiped and unlocked when freed. */
static void *secret_alloc(size_t len, size_t *alloc)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *alloc = (len + page - 1) / page * page;
    void *p = mmap(NULL, *alloc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    (void)mlock(p, *alloc); /* best effort: RLIMIT_MEMLOCK may forbid it */
    (void)madvise(p, *alloc, MADV_DONTDUMP);
    return p;
}

static void secret_free(void *p, size_t alloc)
{
    if (!p)
        return;
    explicit_bzero(p, alloc);
    munlock(p, alloc);
    munmap(p, alloc);
}

void luks_key_free(struct luks_key *key)
{
    if (key)
        secret_free(key, key->alloc);
}

int luks_unlock(const struct luks_header *h, const void *passphrase, size_t len, struct luks_key **key,
                struct asr_error *err)
{
    *key = NULL;
    struct luks_private *p = h->priv;
    if (!p || !p->cd)
        return asr_fail_public(err, ASR_E_STATE, "LUKS: unlock without a header read");
    size_t alloc, size = h->key_size;
    struct luks_key *k = secret_alloc(sizeof *k + size, &alloc);
    if (!k)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the LUKS key");
    k->alloc = alloc;
    p->last_error[0] = '\0';
    int rc = crypt_volume_key_get(p->cd, CRYPT_ANY_SLOT, (char *)k->bytes, &size, passphrase, len);
    if (rc < 0 || size != h->key_size) {
        luks_key_free(k);
        if (rc == -EPERM || rc == -ENOENT)
            return asr_fail_public(err, ASR_E_ARG, "LUKS: no keyslot opens with this passphrase: %s", wname(p->w));
        return crypt_fail(p, ASR_E_IO, "LUKS: the volume key", rc < 0 ? rc : -EINVAL, err);
    }
    k->len = size;
    *key = k;
    return ASR_OK;
}

int luks_unlock_keyfile(const struct luks_header *h, const char *path, struct luks_key **key, struct asr_error *err)
{
    *key = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return asr_fail_public(err, ASR_E_IO, "key file: %s: %s", strerror(errno), path);
    struct stat st;
    if (fstat(fd, &st) != 0 || (S_ISREG(st.st_mode) && (uint64_t)st.st_size > LUKS_KEYFILE_MAX)) {
        close(fd);
        return asr_fail_public(err, ASR_E_LIMIT, "key file: more than %u MiB: %s", LUKS_KEYFILE_MAX >> 20, path);
    }
    size_t alloc, len = 0;
    uint8_t *buf = secret_alloc(LUKS_KEYFILE_MAX + 1, &alloc);
    if (!buf) {
        close(fd);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for the key file");
    }
    int rc = ASR_OK;
    for (;;) {
        ssize_t n = read(fd, buf + len, LUKS_KEYFILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = asr_fail_public(err, ASR_E_IO, "key file: %s: %s", strerror(errno), path);
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > LUKS_KEYFILE_MAX) {
            rc = asr_fail_public(err, ASR_E_LIMIT, "key file: more than %u MiB: %s", LUKS_KEYFILE_MAX >> 20, path);
            break;
        }
    }
    close(fd);
    if (rc == ASR_OK)
        rc = luks_unlock(h, buf, len, key, err);
    secret_free(buf, alloc);
    return rc;
}

/* ---- the decrypted volume ------------------------------------------------------------------ */

struct luks_volume {
    const struct asr_window *parent;
    uint64_t data_offset, size;
    uint32_t sector_size;
    unsigned iv_shift;         /* IV = plaintext offset >> iv_shift */
    EVP_CIPHER_CTX *data;      /* keyed; each read decrypts with a copy (reads may be concurrent) */
    EVP_CIPHER_CTX *essiv;     /* cbc-essiv: AES-ECB keyed with the hash of the volume key; else NULL */
    char path[128];
};

void luks_volume_free(struct luks_volume *v)
{
    if (!v)
        return;
    EVP_CIPHER_CTX_free(v->data);
    EVP_CIPHER_CTX_free(v->essiv);
    free(v);
}

/* Decrypts n whole sectors in place; the first's IV is `sector`, 512-byte units (see iv_shift). */
static int decrypt_sectors(const struct luks_volume *v, EVP_CIPHER_CTX *c, EVP_CIPHER_CTX *e, uint8_t *buf, size_t n,
                           uint64_t sector)
{
    const uint64_t step = v->sector_size >> v->iv_shift;
    for (size_t i = 0; i < n; i++, sector += step) {
        uint8_t iv[16] = {0}, essiv[16 + 16];
        for (int b = 0; b < 8; b++)
            iv[b] = (uint8_t)(sector >> 8 * b); /* plain64: the sector number, little-endian */
        int out;
        if (e) {
            if (EVP_EncryptUpdate(e, essiv, &out, iv, 16) != 1 || out != 16)
                return -1;
            memcpy(iv, essiv, 16);
        }
        uint8_t *s = buf + i * v->sector_size;
        if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, iv) != 1 ||
            EVP_DecryptUpdate(c, s, &out, s, (int)v->sector_size) != 1 || out != (int)v->sector_size)
            return -1;
    }
    return 0;
}

/* Reads and decrypts the whole sectors [first, first + n) into buf. */
static int read_sectors(const struct luks_volume *v, EVP_CIPHER_CTX *c, EVP_CIPHER_CTX *e, const char *what,
                        uint64_t first, uint8_t *buf, size_t n, struct asr_error *err)
{
    uint64_t off = first * v->sector_size;
    int rc = asr_window_read(v->parent, what, v->data_offset + off, buf, n * v->sector_size, err);
    if (rc != ASR_OK)
        return rc;
    if (decrypt_sectors(v, c, e, buf, n, off >> v->iv_shift) != 0)
        return asr_fail_public(err, ASR_E_IO, "LUKS: OpenSSL failed to decrypt sector %" PRIu64 ": %s", first, v->path);
    return ASR_OK;
}

static int volume_read(void *ctx, const char *what, uint64_t off, void *out, size_t len, struct asr_error *err)
{
    const struct luks_volume *v = ctx;
    if (off > v->size || len > v->size - off)
        return asr_fail_public(err, ASR_E_CORRUPT, "a read of %zu bytes at byte %" PRIu64 " past the %" PRIu64 "-byte %s",
                               len, off, v->size, v->path);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new(), *e = v->essiv ? EVP_CIPHER_CTX_new() : NULL;
    if (!c || (v->essiv && !e) || EVP_CIPHER_CTX_copy(c, v->data) != 1 || (e && EVP_CIPHER_CTX_copy(e, v->essiv) != 1)) {
        EVP_CIPHER_CTX_free(c);
        EVP_CIPHER_CTX_free(e);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for a cipher context");
    }
    const uint32_t ss = v->sector_size;
    uint8_t *dst = out;
    uint8_t scratch[4096];
    int rc = ASR_OK;
    while (len && rc == ASR_OK) {
        uint64_t sector = off / ss;
        uint32_t in = (uint32_t)(off % ss);
        if (in || len < ss) {
            /* A partial sector, through the scratch sector. */
            size_t take = ss - in < len ? ss - in : len;
            rc = read_sectors(v, c, e, what, sector, scratch, 1, err);
            if (rc == ASR_OK)
                memcpy(dst, scratch + in, take);
            dst += take, off += take, len -= take;
        } else {
            /* Whole sectors straight into the caller's buffer, decrypted there. */
            size_t n = len / ss;
            rc = read_sectors(v, c, e, what, sector, dst, n, err);
            dst += n * ss, off += (uint64_t)n * ss, len -= n * ss;
        }
    }
    explicit_bzero(scratch, sizeof scratch);
    EVP_CIPHER_CTX_free(c);
    EVP_CIPHER_CTX_free(e);
    return rc;
}

static void volume_prefetch(void *ctx, uint64_t off, uint64_t len)
{
    const struct luks_volume *v = ctx;
    if (off >= v->size)
        return;
    if (len > v->size - off)
        len = v->size - off;
    uint64_t lo = off / v->sector_size * v->sector_size;
    asr_window_prefetch(v->parent, v->data_offset + lo, len + (off - lo));
}

static const struct asr_window_ops volume_ops = {.read = volume_read, .prefetch = volume_prefetch};

static const EVP_CIPHER *data_cipher(const struct luks_header *h)
{
    if (!strcmp(h->mode, "xts-plain64"))
        return h->key_size == 64 ? EVP_aes_256_xts() : h->key_size == 32 ? EVP_aes_128_xts() : NULL;
    if (!strcmp(h->mode, "cbc-essiv:sha256"))
        return h->key_size == 32 ? EVP_aes_256_cbc() : h->key_size == 24 ? EVP_aes_192_cbc()
             : h->key_size == 16 ? EVP_aes_128_cbc() : NULL;
    return NULL;
}

int luks_volume_open(const struct asr_window *parent, const struct luks_header *h, const struct luks_key *key,
                     const char *path, struct luks_volume **vp, struct asr_window *out, struct asr_error *err)
{
    *vp = NULL;
    const EVP_CIPHER *cipher = strcmp(h->cipher, "aes") ? NULL : data_cipher(h);
    if (!cipher)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS: cipher %s-%s with a %" PRIu32 "-bit key: %s", h->cipher,
                               h->mode, h->key_size * 8, wname(parent));
    if (!key || key->len != h->key_size)
        return asr_fail_public(err, ASR_E_ARG, "LUKS: a key of the wrong size for %s", wname(parent));
    if (h->sector_size < SECTOR || h->sector_size > 4096 || h->data_offset > parent->size ||
        h->data_size > parent->size - h->data_offset)
        return asr_fail_public(err, ASR_E_ARG, "LUKS: a header that does not fit %s", wname(parent));
    struct luks_volume *v = calloc(1, sizeof *v);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    v->parent = parent;
    v->data_offset = h->data_offset;
    v->size = h->data_size;
    v->sector_size = h->sector_size;
    /* dm-crypt counts IVs in 512-byte sectors whatever the encryption sector, unless the table
     * says iv_large_sectors, which cryptsetup sets only for plain mode (--iv-large-sectors), never
     * for LUKS: a 4096-byte sector's IV is the number of its first 512-byte sector. */
    v->iv_shift = 9;
    snprintf(v->path, sizeof v->path, "%s", path ? path : "LUKS volume");
    int rc = ASR_OK;
    v->data = EVP_CIPHER_CTX_new();
    if (!v->data || EVP_DecryptInit_ex(v->data, cipher, NULL, key->bytes, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(v->data, 0) != 1)
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS: OpenSSL refuses the %s-%s key: %s", h->cipher, h->mode,
                             wname(parent));
    if (rc == ASR_OK && !strcmp(h->mode, "cbc-essiv:sha256")) {
        uint8_t salt[32];
        unsigned int n = 0;
        v->essiv = EVP_CIPHER_CTX_new();
        if (EVP_Digest(key->bytes, key->len, salt, &n, EVP_sha256(), NULL) != 1 || n != sizeof salt || !v->essiv ||
            EVP_EncryptInit_ex(v->essiv, EVP_aes_256_ecb(), NULL, salt, NULL) != 1 ||
            EVP_CIPHER_CTX_set_padding(v->essiv, 0) != 1)
            rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "LUKS: OpenSSL cannot make ESSIV: %s", wname(parent));
        explicit_bzero(salt, sizeof salt);
    }
    if (rc != ASR_OK) {
        luks_volume_free(v);
        return rc;
    }
    *vp = v;
    *out = (struct asr_window){.fd = -1, .path = v->path, .size = v->size, .ops = &volume_ops, .ctx = v};
    return ASR_OK;
}
