/* Linux md RAID read from its members (see md.h): the four superblock formats found by where
 * they lie, checked as mdadm checks them, the internal bitmap and bad-block log located, and the
 * array's bytes mapped onto the members by the level's layout. Internal to the engine. */
#include "md.h"
#include "le.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512u
#define MD_MAGIC 0xa92b4efcu
#define BITMAP_MAGIC 0x6d746962u
#define SB1_BASE 256u        /* struct mdp_superblock_1 before its dev_roles */
#define SB1_MAX 4096u        /* mdadm's largest 1.x superblock */
#define SB0_BYTES 4096u      /* MD_SB_BYTES */
#define SB0_RESERVED 65536u  /* MD_RESERVED_BYTES: the 0.90 superblock's area at the end */
#define SB0_DISKS 27u        /* MD_SB_DISKS */
#define BITMAP_SB 256u

/* 1.x feature_map bits */
#define FEAT_BITMAP 1u
#define FEAT_RESHAPE 4u

enum { NO_SB = -1 }; /* internal: no magic at this place */

static uint32_t get32be(const uint8_t *p)
{
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

const char *md_level_name(int level)
{
    switch (level) {
    case -1: return "linear";
    case 0: return "raid0";
    case 1: return "raid1";
    case 4: return "raid4";
    case 5: return "raid5";
    case 6: return "raid6";
    case 10: return "raid10";
    default: return NULL;
    }
}

/* The levels md knows but this reader refuses, by the names mdadm gives them. */
static const char *refused_level_name(int level)
{
    switch (level) {
    case -4: return "multipath";
    case -5: return "faulty";
    case -1000000: return "container";
    default: return "unknown";
    }
}

/* Where a superblock was looked for, for messages. */
struct place {
    const struct asr_window *w;
    const char *path;
    const char *version; /* "1.2", ... */
    uint64_t off;
    int number; /* 120, ... */
    struct asr_error *err;
};

static int fail(const struct place *pl, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(const struct place *pl, int code, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return asr_fail_public(pl->err, code, "md: superblock %s at byte %" PRIu64 " of %s: %s", pl->version, pl->off,
                           pl->path, what);
}

/* Whether [off, off+len) lies inside the window. */
static bool fits(const struct place *pl, uint64_t off, uint64_t len)
{
    return off <= pl->w->size && len <= pl->w->size - off;
}
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

/* mdadm's uuid text: four groups of eight hex digits, the bytes in order. */
static void uuid_text(const uint8_t u[16], char out[36])
{
    char *p = out;
    for (int i = 0; i < 16; i++) {
        p += sprintf(p, "%02x", u[i]);
        if (i % 4 == 3 && i < 15)
            *p++ = ':';
    }
    *p = 0;
}

/* The array's size from one member's, as md computes it (raid10_size, raid0's zones with one
 * zone); 0 for linear, whose size needs every member. */
static int array_size(const struct place *pl, struct md_member *m)
{
    uint64_t n = m->raid_disks, v = 0, per = m->dev_used;
    bool over = false;
    switch (m->level) {
    case 1:
        v = per;
        break;
    case 4:
    case 5:
        over = __builtin_mul_overflow(per, n - 1, &v);
        break;
    case 6:
        over = __builtin_mul_overflow(per, n - 2, &v);
        break;
    case 0:
        over = __builtin_mul_overflow(m->data_size / m->chunk * m->chunk, n, &v);
        break;
    case 10: {
        uint64_t near = m->layout & 255, far = (m->layout >> 8) & 255;
        if (!near || !far)
            return fail(pl, ASR_E_CORRUPT, "raid10 layout 0x%x has no copies", m->layout);
        uint64_t chunks = per / m->chunk / far;
        over = __builtin_mul_overflow(chunks, n, &chunks) || __builtin_mul_overflow(chunks / near, m->chunk, &v);
        break;
    }
    default:
        break;
    }
    if (over)
        return fail(pl, ASR_E_CORRUPT, "the array's size overflows (%" PRIu64 " bytes on %u devices)", per,
                    m->raid_disks);
    m->array_size = v;
    return ASR_OK;
}

/* Checks shared by both formats once the fields are in m: the level, the chunk, the data area. */
static int check_common(const struct place *pl, struct md_member *m, uint32_t max_roles)
{
    if (!md_level_name(m->level))
        return fail(pl, ASR_E_UNSUPPORTED, "level %d (%s) is not read", m->level, refused_level_name(m->level));
    /* The fewest devices mdadm creates each level with: parity needs some besides the data. */
    uint32_t fewest = m->level == 6 ? 4 : m->level >= 4 ? 2 : 1;
    if (m->raid_disks < fewest || m->raid_disks > max_roles)
        return fail(pl, ASR_E_CORRUPT, "%u raid devices for %s (%u to %u)", m->raid_disks, md_level_name(m->level),
                    fewest, max_roles);
    bool striped = m->level == 0 || m->level >= 4;
    if (striped && (m->chunk == 0 || m->chunk % SECTOR || m->chunk > (1ull << 30)))
        return fail(pl, ASR_E_CORRUPT, "chunk size %" PRIu64 " bytes for %s", m->chunk, md_level_name(m->level));
    if (!striped)
        m->chunk = 0;
    if (m->role < MD_ROLE_JOURNAL && m->role >= m->raid_disks)
        return fail(pl, ASR_E_CORRUPT, "this device's role %u is out of range (%u raid devices)", m->role,
                    m->raid_disks);
    if (!fits(pl, m->data_offset, m->data_size) || m->data_size == 0)
        return fail(pl, ASR_E_CORRUPT, "data area of %" PRIu64 " bytes at byte %" PRIu64 " is not inside the %" PRIu64
                    "-byte device", m->data_size, m->data_offset, pl->w->size);
    if (overlaps(m->data_offset, m->data_size, m->super_offset, m->super_bytes))
        return fail(pl, ASR_E_CORRUPT, "data area at byte %" PRIu64 " overlaps the superblock", m->data_offset);
    if (m->level >= 1 && (m->dev_used == 0 || m->dev_used > m->data_size))
        return fail(pl, ASR_E_CORRUPT, "used size of %" PRIu64 " bytes per device does not fit its %" PRIu64
                    "-byte data area", m->dev_used, m->data_size);
    return array_size(pl, m);
}

/* The write-intent bitmap whose superblock is at off (bytes of the window): its extent, from
 * its superblock's chunk size and the size it covers; limit bounds its end. */
static int read_bitmap(const struct place *pl, struct md_member *m, uint64_t off, uint64_t limit)
{
    uint8_t b[BITMAP_SB];
    if (!fits(pl, off, sizeof b) || off + sizeof b > limit)
        return fail(pl, ASR_E_CORRUPT, "internal bitmap at byte %" PRIu64 " is outside its room", off);
    int rc = asr_window_read(pl->w, "md bitmap", off, b, sizeof b, pl->err);
    if (rc)
        return rc;
    uint32_t version = get_le32(b + 4), chunk = get_le32(b + 52);
    uint64_t sync = get_le64(b + 40);
    if (get_le32(b) != BITMAP_MAGIC)
        return fail(pl, ASR_E_CORRUPT, "no bitmap magic at byte %" PRIu64 " (the feature bit says there is one)", off);
    if (version < 3 || version > 5)
        return fail(pl, ASR_E_UNSUPPORTED, "bitmap version %u at byte %" PRIu64, version, off);
    if (chunk < SECTOR || (chunk & (chunk - 1)) || sync > pl->w->size / SECTOR)
        return fail(pl, ASR_E_CORRUPT, "bitmap at byte %" PRIu64 ": chunk %u bytes over %" PRIu64 " sectors", off,
                    chunk, sync);
    uint64_t bits = (sync * SECTOR + chunk - 1) / chunk;
    uint64_t bytes = (BITMAP_SB + (bits + 7) / 8 + SECTOR - 1) / SECTOR * SECTOR;
    if (!fits(pl, off, bytes) || off + bytes > limit)
        return fail(pl, ASR_E_CORRUPT, "bitmap of %" PRIu64 " bytes at byte %" PRIu64 " passes its room", bytes, off);
    if (overlaps(off, bytes, m->data_offset, m->data_size) || overlaps(off, bytes, m->super_offset, m->super_bytes))
        return fail(pl, ASR_E_CORRUPT, "bitmap at byte %" PRIu64 " overlaps the data or the superblock", off);
    m->bitmap_offset = off;
    m->bitmap_bytes = bytes;
    return ASR_OK;
}

/* An offset in sectors relative to the superblock, as 1.x writes bitmap_offset and bblog_offset. */
static bool relative(const struct place *pl, int32_t sectors, uint64_t *out)
{
    int64_t at = (int64_t)pl->off + (int64_t)sectors * SECTOR;
    if (at < 0 || (uint64_t)at > pl->w->size)
        return false;
    *out = (uint64_t)at;
    return true;
}

static uint32_t csum_fold(uint64_t sum) { return (uint32_t)((sum & 0xffffffffu) + (sum >> 32)); }

/* mdadm's calc_sb_1_csum: little-endian 32-bit words over 256 + 2*max_dev bytes with sb_csum
 * as zero, a trailing 16-bit word, the carry folded in once. */
static uint32_t csum1(const uint8_t *sb, uint32_t max_dev)
{
    size_t size = SB1_BASE + 2 * (size_t)max_dev, i = 0;
    uint64_t sum = 0;
    for (; size - i >= 4; i += 4)
        sum += i == 216 ? 0 : get_le32(sb + i);
    if (size - i == 2)
        sum += get_le16(sb + i);
    return csum_fold(sum);
}

static int read_v1(struct place *pl, struct md_member *m)
{
    uint8_t sb[SB1_MAX];
    uint64_t room = pl->w->size - pl->off;
    size_t len = room < sizeof sb ? (size_t)room : sizeof sb;
    if (len < SB1_BASE)
        return NO_SB;
    int rc = asr_window_read(pl->w, "md superblock", pl->off, sb, len, pl->err);
    if (rc)
        return rc;
    if (get_le32(sb) != MD_MAGIC)
        return NO_SB;
    *m = (struct md_member){.found = true};
    if (get_le32(sb + 4) != 1)
        return fail(pl, ASR_E_UNSUPPORTED, "major version %u", get_le32(sb + 4));
    uint32_t max_dev = get_le32(sb + 220);
    if (max_dev > MD_MAX_DEVS || SB1_BASE + 2 * (size_t)max_dev > len)
        return fail(pl, ASR_E_CORRUPT, "max_dev %u is over %u or passes the device", max_dev, MD_MAX_DEVS);
    uint32_t want = csum1(sb, max_dev), have = get_le32(sb + 216);
    if (want != have)
        return fail(pl, ASR_E_CORRUPT, "checksum 0x%08x where its contents give 0x%08x", have, want);
    if (get_le64(sb + 144) != pl->off / SECTOR)
        return fail(pl, ASR_E_CORRUPT, "it records super_offset %" PRIu64 " sectors (it is at sector %" PRIu64 ")",
                    get_le64(sb + 144), pl->off / SECTOR);
    m->feature_map = get_le32(sb + 8);
    memcpy(m->uuid, sb + 16, 16);
    uuid_text(m->uuid, m->uuid_text);
    for (size_t i = 0; i < 32 && sb[32 + i]; i++) /* a name goes into messages: no control bytes */
        m->name[i] = sb[32 + i] < 0x20 || sb[32 + i] == 0x7f ? '?' : (char)sb[32 + i];
    m->ctime = get_le64(sb + 64) & 0xffffffffffull;
    m->level = (int32_t)get_le32(sb + 72);
    m->layout = get_le32(sb + 76);
    m->chunk = (uint64_t)get_le32(sb + 88) * SECTOR;
    m->raid_disks = get_le32(sb + 92);
    m->reshaping = m->feature_map & FEAT_RESHAPE;
    uint64_t data_offset = get_le64(sb + 128), data_size = get_le64(sb + 136), used = get_le64(sb + 80);
    uint64_t limit = pl->w->size / SECTOR;
    if (data_offset > limit || data_size > limit || used > limit)
        return fail(pl, ASR_E_CORRUPT, "data offset %" PRIu64 ", data size %" PRIu64 " or used size %" PRIu64
                    " sectors is past the end of the %" PRIu64 "-sector device", data_offset, data_size, used, limit);
    m->data_offset = data_offset * SECTOR;
    m->data_size = data_size * SECTOR;
    m->dev_used = used * SECTOR;
    uint32_t dev_number = get_le32(sb + 160);
    if (dev_number >= max_dev)
        return fail(pl, ASR_E_CORRUPT, "device number %u has no role (max_dev %u)", dev_number, max_dev);
    m->role = get_le16(sb + SB1_BASE + 2 * dev_number);
    memcpy(m->dev_uuid, sb + 168, 16);
    m->events = get_le64(sb + 200);
    m->super_offset = pl->off;
    m->super_bytes = (SB1_BASE + 2 * (uint64_t)max_dev + SECTOR - 1) / SECTOR * SECTOR;
    if ((rc = check_common(pl, m, MD_MAX_DEVS)))
        return rc;
    if (m->feature_map & FEAT_BITMAP) {
        uint64_t at;
        if (!relative(pl, (int32_t)get_le32(sb + 96), &at))
            return fail(pl, ASR_E_CORRUPT, "bitmap offset %d sectors points outside the device",
                        (int32_t)get_le32(sb + 96));
        if ((rc = read_bitmap(pl, m, at, pl->w->size)))
            return rc;
    }
    uint16_t bbsize = get_le16(sb + 186);
    int32_t bboff = (int32_t)get_le32(sb + 188);
    if (bbsize && bboff) {
        uint64_t at, bytes = (uint64_t)bbsize * SECTOR;
        if (!relative(pl, bboff, &at) || !fits(pl, at, bytes) || overlaps(at, bytes, m->data_offset, m->data_size) ||
            overlaps(at, bytes, m->super_offset, m->super_bytes))
            return fail(pl, ASR_E_CORRUPT, "bad-block log of %u sectors at %d sectors from it lies outside its room",
                        bbsize, bboff);
        if (overlaps(at, bytes, m->bitmap_offset, m->bitmap_bytes))
            return fail(pl, ASR_E_CORRUPT, "bad-block log at %d sectors from it overlaps the bitmap", bboff);
        m->bblog_offset = at;
        m->bblog_bytes = bytes;
    }
    return ASR_OK;
}

/* mdadm's calc_sb0_csum: the 1024 native words with sb_csum as zero, the carry folded once. */
static uint32_t csum0(const uint8_t *sb)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < SB0_BYTES; i += 4)
        sum += i == 38 * 4 ? 0 : get_le32(sb + i);
    return csum_fold(sum);
}

static int read_v090(struct place *pl, struct md_member *m)
{
    uint8_t sb[SB0_BYTES];
    int rc = asr_window_read(pl->w, "md superblock", pl->off, sb, sizeof sb, pl->err);
    if (rc)
        return rc;
    if (get32be(sb) == MD_MAGIC && get_le32(sb) != MD_MAGIC) {
        *m = (struct md_member){.found = true, .version = 90};
        return fail(pl, ASR_E_UNSUPPORTED, "big-endian byte order (written on another architecture) is not read");
    }
    if (get_le32(sb) != MD_MAGIC)
        return NO_SB;
    *m = (struct md_member){.found = true, .version = 90};
#define W(i) get_le32(sb + 4 * (i))
    if (W(1) != 0 || W(2) != 90)
        return fail(pl, ASR_E_UNSUPPORTED, "version %u.%u", W(1), W(2));
    if (csum0(sb) != W(38))
        return fail(pl, ASR_E_CORRUPT, "checksum 0x%08x where its contents give 0x%08x", W(38), csum0(sb));
    static const int words[4] = {5, 13, 14, 15};
    for (int i = 0; i < 4; i++) /* mdadm prints each word as a number */
        for (int k = 0; k < 4; k++)
            m->uuid[4 * i + k] = (uint8_t)(W(words[i]) >> (24 - 8 * k));
    uuid_text(m->uuid, m->uuid_text);
    m->ctime = W(6);
    m->level = (int32_t)W(7);
    m->raid_disks = W(10);
    m->events = W(39) | (uint64_t)W(40) << 32;
    m->layout = W(64);
    m->chunk = W(65);
    uint32_t raid_disk = W(992 + 3), state = W(992 + 4);
    if (state & 1u)
        m->role = MD_ROLE_FAULTY;
    else if ((state & 6u) == 6u) /* active and in sync */
        m->role = raid_disk;
    else
        m->role = MD_ROLE_SPARE;
    m->super_offset = pl->off;
    m->super_bytes = SB0_BYTES;
    m->dev_used = (uint64_t)W(8) * 1024;
    /* md gives an array the device up to the superblock's area; levels with redundancy use the
     * recorded size of it. */
    m->data_size = m->level >= 1 ? m->dev_used : pl->off;
    if (m->dev_used > pl->off)
        return fail(pl, ASR_E_CORRUPT, "used size of %" PRIu64 " bytes per device passes the superblock", m->dev_used);
    if ((rc = check_common(pl, m, SB0_DISKS)))
        return rc;
    if (W(33) & (1u << 8)) /* MD_SB_BITMAP_PRESENT: the bitmap follows the superblock */
        if ((rc = read_bitmap(pl, m, pl->off + SB0_BYTES, pl->off + SB0_RESERVED)))
            return rc;
#undef W
    return ASR_OK;
}

int md_read_member(const struct asr_window *w, struct md_member *out, struct asr_error *err)
{
    *out = (struct md_member){0};
    const char *path = w->path ? w->path : "the volume";
    uint64_t sectors = w->size / SECTOR;
    struct place places[4];
    int np = 0;
    places[np++] = (struct place){w, path, "1.2", 4096, 120, NULL};
    places[np++] = (struct place){w, path, "1.1", 0, 110, NULL};
    if (sectors >= 16)
        places[np++] = (struct place){w, path, "1.0", ((sectors - 16) & ~(uint64_t)7) * SECTOR, 100, NULL};
    if (w->size >= 2 * SB0_RESERVED)
        places[np++] =
            (struct place){w, path, "0.90", (w->size & ~(uint64_t)(SB0_RESERVED - 1)) - SB0_RESERVED, 90, NULL};
    struct md_member best = {0};
    struct asr_error first = {0};
    bool have = false;
    for (int i = 0; i < np; i++) {
        struct place *pl = &places[i];
        if (pl->off >= w->size)
            continue;
        struct md_member m = {0};
        struct asr_error e = {0};
        pl->err = &e;
        int rc = pl->number == 90 ? read_v090(pl, &m) : read_v1(pl, &m);
        if (rc == NO_SB)
            continue;
        if (rc == ASR_E_IO || rc == ASR_E_NOMEM)
            return asr_fail_public(err, e.code, "%s", e.msg);
        if (rc) {
            if (!first.code)
                first = e;
            continue;
        }
        m.version = pl->number;
        if (!have || m.ctime > best.ctime) /* a leftover of an older array loses */
            best = m;
        have = true;
    }
    if (have) {
        *out = best;
        return ASR_OK;
    }
    *out = (struct md_member){.found = first.code != 0};
    if (first.code)
        return asr_fail_public(err, first.code, "%s", first.msg);
    return asr_fail_public(err, ASR_E_CORRUPT, "md: no md superblock on %s (none of 1.2, 1.1, 1.0 or 0.90)", path);
}

/* ---- arrays ------------------------------------------------------------------------------ */

static bool active(const struct md_member *m) { return m->role < m->raid_disks; }

/* The first member holding role r, or n. */
static size_t with_role(const struct md_member *m, size_t n, uint32_t r)
{
    for (size_t i = 0; i < n; i++)
        if (active(&m[i]) && m[i].role == r)
            return i;
    return n;
}

/* Whether the members present (have[role]) still hold every byte of the array. */
static bool complete_without(const struct md_member *m, const bool *have)
{
    uint32_t n = m->raid_disks, missing = 0;
    for (uint32_t r = 0; r < n; r++)
        missing += !have[r];
    switch (m->level) {
    case 1: return missing < n;
    case 4:
    case 5: return missing <= 1;
    case 6: return missing <= 2;
    case 10:
        if ((m->layout & ~0xffu) != 0x100u) /* far or offset copies: not worked out here */
            return false;
        /* near=k: array chunk c's copies are the k device slots from k*c on, in turn. */
        for (uint64_t c = 0; c < n; c++) {
            uint32_t near = m->layout & 0xffu, held = 0;
            for (uint32_t k = 0; k < near; k++)
                held += have[(c * near + k) % n];
            if (!held)
                return false;
        }
        return true;
    default: return false;
    }
}

int md_check_members(const struct md_member *m, size_t n, bool *degraded, struct asr_error *err)
{
    if (degraded)
        *degraded = false;
    if (n == 0)
        return asr_fail_public(err, ASR_E_ARG, "md: no members");
    const struct md_member *a = &m[0];
    uint64_t events = 0;
    for (size_t i = 0; i < n; i++)
        events = m[i].events > events ? m[i].events : events;
    for (size_t i = 0; i < n; i++) {
        const struct md_member *b = &m[i];
        if (memcmp(a->uuid, b->uuid, 16))
            return asr_fail_public(err, ASR_E_CORRUPT, "md array %s: member %zu belongs to array %s", a->uuid_text, i,
                                   b->uuid_text);
        if (a->level != b->level || a->layout != b->layout || a->chunk != b->chunk || a->raid_disks != b->raid_disks ||
            a->reshaping != b->reshaping)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "md array %s: member %zu has level %d, layout 0x%x, chunk %" PRIu64
                                   ", %u devices where member 0 has %d, 0x%x, %" PRIu64 ", %u",
                                   a->uuid_text, i, b->level, b->layout, b->chunk, b->raid_disks, a->level, a->layout,
                                   a->chunk, a->raid_disks);
        if (a->level >= 1 && a->dev_used != b->dev_used)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "md array %s: member %zu uses %" PRIu64 " bytes per device where member 0 uses %"
                                   PRIu64,
                                   a->uuid_text, i, b->dev_used, a->dev_used);
        if (b->events != events)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "md array %s: member %zu (role %u) is stale: events %" PRIu64
                                   " where another has %" PRIu64,
                                   a->uuid_text, i, b->role, b->events, events);
    }
    bool *have = calloc(a->raid_disks ? a->raid_disks : 1, sizeof *have);
    if (!have)
        return asr_fail_public(err, ASR_E_NOMEM, "md: out of memory");
    int rc = ASR_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!active(&m[i]))
            continue;
        if (have[m[i].role])
            rc = asr_fail_public(err, ASR_E_CORRUPT, "md array %s: role %u is held by members %zu and %zu",
                                 a->uuid_text, m[i].role, with_role(m, n, m[i].role), i);
        have[m[i].role] = true;
    }
    char list[256] = "";
    size_t len = 0, missing = 0;
    for (uint32_t r = 0; r < a->raid_disks && !rc; r++) {
        if (have[r])
            continue;
        if (len < sizeof list - 16)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%u", missing ? ", " : "", r);
        else if (len < sizeof list - 1)
            len += (size_t)snprintf(list + len, sizeof list - len, " ...");
        missing++;
    }
    if (!rc && missing) {
        const char *roles = missing == 1 ? "role" : "roles";
        if (degraded && complete_without(a, have)) {
            *degraded = true; /* the caller may go on: the message says what is missing */
            asr_fail_public(err, ASR_OK, "md array %s: degraded, %s %s missing", a->uuid_text, roles, list);
        } else {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "md array %s: %s %s of %u missing", a->uuid_text, roles, list,
                                 a->raid_disks);
        }
    }
    free(have);
    return rc;
}

/* copy: which copy of the byte (RAID10: 0 or 1, in slot order; RAID0 and RAID1: 0 only), or -1
 * for the first copy a present member holds. A copy whose member is absent: *member = n. */
static int locate(const struct md_member *m, size_t n, uint64_t array_off, int copy, size_t *member,
                  uint64_t *member_off, uint64_t *contig, struct asr_error *err)
{
    if (n == 0)
        return asr_fail_public(err, ASR_E_ARG, "md: no members");
    const struct md_member *a = &m[0];
    const char *level = md_level_name(a->level) ? md_level_name(a->level) : "unknown";
    if (a->reshaping)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "md array %s: a reshape is under way: not mapped", a->uuid_text);
    if (a->level == 0) {
        for (size_t i = 1; i < n; i++)
            if (m[i].data_size / a->chunk != a->data_size / a->chunk)
                return asr_fail_public(err, ASR_E_UNSUPPORTED,
                                       "md array %s: raid0 over members of unequal size (several zones) is not mapped",
                                       a->uuid_text);
    } else if (a->level == 10) {
        if (a->layout != 0x102)
            return asr_fail_public(err, ASR_E_UNSUPPORTED,
                                   "md array %s: raid10 layout near=%u far=%u%s is not mapped (near=2 is)",
                                   a->uuid_text, a->layout & 255, (a->layout >> 8) & 255,
                                   a->layout >> 16 ? " offset" : "");
    } else if (a->level != 1) {
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "md array %s: %s arrays are not mapped", a->uuid_text, level);
    }
    if (array_off >= a->array_size)
        return asr_fail_public(err, ASR_E_ARG, "md array %s: byte %" PRIu64 " is past its end (%" PRIu64 " bytes)",
                               a->uuid_text, array_off, a->array_size);
    size_t i = n;
    uint64_t at = 0, len = 0;
    if (a->level == 1) {
        for (i = 0; i < n && !active(&m[i]); i++)
            ;
        at = array_off;
        len = a->array_size - array_off;
    } else {
        uint64_t c = array_off / a->chunk, in = array_off % a->chunk;
        uint32_t copies = a->level == 10 ? 2 : 1;
        for (uint32_t k = 0; k < copies && i == n; k++) {
            if (copy >= 0 && k != (uint32_t)copy)
                continue;
            uint64_t slot = c * copies + k;
            i = with_role(m, n, (uint32_t)(slot % a->raid_disks));
            at = slot / a->raid_disks * a->chunk + in;
        }
        len = a->chunk - in;
    }
    if (i == n && copy >= 0) {
        *member = n; /* that copy's member is not here */
        *contig = len;
        return ASR_OK;
    }
    if (i == n)
        return asr_fail_public(err, ASR_E_CORRUPT, "md array %s: no member present holds byte %" PRIu64, a->uuid_text,
                               array_off);
    if (at > m[i].data_size || len > m[i].data_size - at)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "md array %s: byte %" PRIu64 " lies past the data area of member %zu (%" PRIu64
                               " bytes)",
                               a->uuid_text, array_off, i, m[i].data_size);
    *member = i;
    *member_off = m[i].data_offset + at;
    *contig = len;
    return ASR_OK;
}

int md_array_locate(const struct md_member *m, size_t n, uint64_t array_off, size_t *member, uint64_t *member_off,
                    uint64_t *contig, struct asr_error *err)
{
    return locate(m, n, array_off, -1, member, member_off, contig, err);
}

int md_array_locate_copy(const struct md_member *m, size_t n, uint64_t array_off, uint32_t copy, size_t *member,
                         uint64_t *member_off, uint64_t *contig, struct asr_error *err)
{
    if (n && copy >= md_copies(&m[0]))
        return asr_fail_public(err, ASR_E_ARG, "md array %s: no copy %u of a byte", m[0].uuid_text, copy);
    return locate(m, n, array_off, (int)copy, member, member_off, contig, err);
}

uint32_t md_copies(const struct md_member *m)
{
    return m->level == 10 ? 2 : 1;
}
