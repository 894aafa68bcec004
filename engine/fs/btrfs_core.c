/* The btrfs core (fs_btrfs_internal.h): superblock, chunk map, checked tree-block reads and the
 * bounded B-tree search, for one device of a filesystem seen through its window. Written from
 * the on-disk format btrfs documents (btrfs-progs' and the kernel's docs); no Debian library
 * reads btrfs from a byte window. Everything read is untrusted: sizes are capped before
 * allocating, every offset inside a block is checked before use, and a search can neither loop
 * (child keys must lie inside the parent pointer's range, levels strictly fall) nor run away
 * (fs->max_nodes). */
#include "crc32c.h"
#include "fs_btrfs_internal.h"
#include "grow.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BTRFS_MAGIC "_BHRfS_M"
#define BTRFS_CSUM_CRC32C 0
#define SYS_ARRAY_MAX 2048u
#define CHUNK_ITEM_SIZE 48u
#define STRIPE_ITEM_SIZE 32u
#define MAX_CHUNKS (1u << 20)      /* 1 Mi chunks of >= 1 MiB each: a 1 PiB filesystem */
#define MAX_NODES_CAP (1ull << 26) /* blocks one search may read */

/* Incompatible features whose on-disk effect this code reads (or that do not touch what it
 * reads): mixed backrefs, default subvolume, mixed groups, lzo, zstd, big metadata, extended
 * irefs, RAID5/6, skinny metadata, no holes, metadata uuid, RAID1C3/4, simple quotas. Zoned
 * (superblocks elsewhere), extent tree v2 and the RAID stripe tree (another logical map) are not. */
#define INCOMPAT_KNOWN (0xFFFull | (1ull << 16))
#define INCOMPAT_ZONED (1ull << 12)

/* Superblock field offsets. */
enum {
    SB_CSUM = 0x00,
    SB_FSID = 0x20,
    SB_BYTENR = 0x30,
    SB_FLAGS = 0x38,
    SB_MAGIC = 0x40,
    SB_GENERATION = 0x48,
    SB_ROOT = 0x50,
    SB_CHUNK_ROOT = 0x58,
    SB_LOG_ROOT = 0x60,
    SB_TOTAL_BYTES = 0x70,
    SB_BYTES_USED = 0x78,
    SB_NUM_DEVICES = 0x88,
    SB_SECTORSIZE = 0x90,
    SB_NODESIZE = 0x94,
    SB_SYS_ARRAY_SIZE = 0xA0,
    SB_COMPAT_RO = 0xB4,
    SB_INCOMPAT = 0xBC,
    SB_CSUM_TYPE = 0xC4,
    SB_ROOT_LEVEL = 0xC6,
    SB_CHUNK_ROOT_LEVEL = 0xC7,
    SB_DEV_ITEM = 0xC9,
    SB_LABEL = 0x12B,
    SB_METADATA_UUID = 0x23B,
    SB_SYS_ARRAY = 0x32B,
};
/* dev_item fields (inside the superblock at SB_DEV_ITEM). */
enum { DEV_DEVID = 0, DEV_TOTAL_BYTES = 8, DEV_UUID = 66 };
/* Tree block header fields. */
enum {
    HDR_CSUM = 0x00,
    HDR_FSID = 0x20,
    HDR_BYTENR = 0x30,
    HDR_GENERATION = 0x50,
    HDR_NRITEMS = 0x60,
    HDR_LEVEL = 0x64
};

int btrfs_key_cmp(const struct btrfs_key *a, const struct btrfs_key *b)
{
    if (a->objectid != b->objectid)
        return a->objectid < b->objectid ? -1 : 1;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return 0;
}

static void read_key(const uint8_t *p, struct btrfs_key *k)
{
    k->objectid = get_le64(p);
    k->type = p[8];
    k->offset = get_le64(p + 9);
}

const char *btrfs_profile_name(uint64_t type)
{
    switch (type & BTRFS_BLOCK_GROUP_PROFILES) {
    case 0: return "single";
    case BTRFS_BLOCK_GROUP_RAID0: return "RAID0";
    case BTRFS_BLOCK_GROUP_RAID1: return "RAID1";
    case BTRFS_BLOCK_GROUP_DUP: return "DUP";
    case BTRFS_BLOCK_GROUP_RAID10: return "RAID10";
    case BTRFS_BLOCK_GROUP_RAID5: return "RAID5";
    case BTRFS_BLOCK_GROUP_RAID6: return "RAID6";
    case BTRFS_BLOCK_GROUP_RAID1C3: return "RAID1C3";
    case BTRFS_BLOCK_GROUP_RAID1C4: return "RAID1C4";
    default: return "mixed profiles";
    }
}

const char *btrfs_csum_name(uint16_t type, char buf[16])
{
    static const char *const names[] = {"crc32c", "xxhash64", "sha256", "blake2b"};
    if (type < sizeof names / sizeof names[0])
        return names[type];
    snprintf(buf, 16, "type %u", type);
    return buf;
}

/* Stripes holding data (not parity) in one row of the chunk. */
static uint64_t data_stripes(const struct btrfs_chunk *c)
{
    switch (c->type & BTRFS_BLOCK_GROUP_PROFILES) {
    case BTRFS_BLOCK_GROUP_RAID0: return c->num_stripes;
    case BTRFS_BLOCK_GROUP_RAID10: return c->num_stripes / c->sub_stripes;
    case BTRFS_BLOCK_GROUP_RAID5: return c->num_stripes - 1u;
    case BTRFS_BLOCK_GROUP_RAID6: return c->num_stripes - 2u;
    default: return 1; /* single, DUP, RAID1*: each stripe holds the whole chunk */
    }
}

uint64_t btrfs_stripe_size(const struct btrfs_chunk *c) { return c->length / data_stripes(c); }

unsigned btrfs_chunk_place(const struct btrfs_chunk *c, uint64_t logical, struct btrfs_place *out, uint64_t *run)
{
    uint64_t off = logical - c->logical, profile = c->type & BTRFS_BLOCK_GROUP_PROFILES;
    if (!(profile &
          (BTRFS_BLOCK_GROUP_RAID0 | BTRFS_BLOCK_GROUP_RAID10 | BTRFS_BLOCK_GROUP_RAID5 | BTRFS_BLOCK_GROUP_RAID6))) {
        unsigned n = c->num_stripes < BTRFS_MAX_COPIES ? c->num_stripes : BTRFS_MAX_COPIES;
        for (unsigned i = 0; i < n; i++)
            out[i] = (struct btrfs_place){c->stripes[i].devid, c->stripes[i].offset + off};
        *run = c->length - off;
        return n;
    }
    uint64_t nr = off / c->stripe_len, in = off % c->stripe_len, first, copies = 1;
    uint64_t ds = data_stripes(c);
    if (profile == BTRFS_BLOCK_GROUP_RAID0) {
        first = nr % ds;
        nr /= ds;
    } else if (profile == BTRFS_BLOCK_GROUP_RAID10) {
        first = nr % ds * c->sub_stripes;
        nr /= ds;
        copies = c->sub_stripes;
    } else { /* RAID5/6: parity rotates one stripe per row */
        uint64_t idx = nr % ds;
        nr /= ds;
        first = (nr + idx) % c->num_stripes;
    }
    for (unsigned i = 0; i < copies; i++)
        out[i] =
            (struct btrfs_place){c->stripes[first + i].devid, c->stripes[first + i].offset + nr * c->stripe_len + in};
    *run = c->stripe_len - in;
    if (*run > c->length - off)
        *run = c->length - off;
    return (unsigned)copies;
}

const struct btrfs_chunk *btrfs_chunk_find(const struct btrfs_fs *fs, uint64_t logical)
{
    size_t lo = 0, hi = fs->nchunks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct btrfs_chunk *c = &fs->chunks[mid];
        if (logical < c->logical)
            hi = mid;
        else if (logical - c->logical >= c->length)
            lo = mid + 1;
        else
            return c;
    }
    return NULL;
}

/* ---- superblock ---------------------------------------------------------------------------- */

static int check_super(struct btrfs_fs *fs, struct asr_error *err)
{
    const uint8_t *sb = fs->super;
    if (memcmp(sb + SB_MAGIC, BTRFS_MAGIC, 8) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: no superblock magic _BHRfS_M (volume offset %u)",
                               BTRFS_SUPER_OFFSET + SB_MAGIC);
    uint16_t csum_type = get_le16(sb + SB_CSUM_TYPE);
    char name[16];
    if (csum_type != BTRFS_CSUM_CRC32C)
        return asr_fail_public(
            err, ASR_E_UNSUPPORTED,
            "btrfs: checksum type %s cannot be verified here, only crc32c (superblock, volume offset %u)",
            btrfs_csum_name(csum_type, name), BTRFS_SUPER_OFFSET + SB_CSUM_TYPE);
    uint32_t want = get_le32(sb + SB_CSUM), got = asr_crc32c(sb + SB_FSID, BTRFS_SUPER_SIZE - SB_FSID);
    if (want != got)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: superblock checksum mismatch: computed %08x, stored %08x (volume offset %u)",
                               got, want, BTRFS_SUPER_OFFSET);
    if (get_le64(sb + SB_BYTENR) != BTRFS_SUPER_OFFSET)
        return asr_fail_public(
            err, ASR_E_CORRUPT, "btrfs: superblock says it lies at byte %llu, not %u (volume offset %u)",
            (unsigned long long)get_le64(sb + SB_BYTENR), BTRFS_SUPER_OFFSET, BTRFS_SUPER_OFFSET + SB_BYTENR);
    fs->incompat = get_le64(sb + SB_INCOMPAT);
    fs->compat_ro = get_le64(sb + SB_COMPAT_RO);
    uint64_t unknown = fs->incompat & ~INCOMPAT_KNOWN;
    if (unknown)
        return asr_fail_public(
            err, ASR_E_UNSUPPORTED,
            "btrfs: incompatible feature bits %#llx not readable here (superblock, volume offset %u)",
            (unsigned long long)unknown, BTRFS_SUPER_OFFSET + SB_INCOMPAT);
    if (fs->incompat & INCOMPAT_ZONED)
        return asr_fail_public(err, ASR_E_UNSUPPORTED,
                               "btrfs: zoned filesystem not readable here (superblock, volume offset %u)",
                               BTRFS_SUPER_OFFSET + SB_INCOMPAT);
    fs->sectorsize = get_le32(sb + SB_SECTORSIZE);
    fs->nodesize = get_le32(sb + SB_NODESIZE);
    if (fs->sectorsize < 4096 || fs->sectorsize > 65536 || (fs->sectorsize & (fs->sectorsize - 1)))
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: sector size %u not a power of two in 4096..65536 (volume offset %u)",
                               fs->sectorsize, BTRFS_SUPER_OFFSET + SB_SECTORSIZE);
    if (fs->nodesize < fs->sectorsize || fs->nodesize > 65536 || (fs->nodesize & (fs->nodesize - 1)))
        return asr_fail_public(
            err, ASR_E_CORRUPT,
            "btrfs: node size %u not a power of two from the sector size to 65536 (volume offset %u)", fs->nodesize,
            BTRFS_SUPER_OFFSET + SB_NODESIZE);
    fs->root = get_le64(sb + SB_ROOT);
    fs->chunk_root = get_le64(sb + SB_CHUNK_ROOT);
    fs->log_root = get_le64(sb + SB_LOG_ROOT);
    fs->root_level = sb[SB_ROOT_LEVEL];
    fs->chunk_root_level = sb[SB_CHUNK_ROOT_LEVEL];
    if (fs->root_level >= BTRFS_MAX_LEVEL || fs->chunk_root_level >= BTRFS_MAX_LEVEL)
        return asr_fail_public(
            err, ASR_E_CORRUPT, "btrfs: tree root level %u or chunk root level %u above %d (volume offset %u)",
            fs->root_level, fs->chunk_root_level, BTRFS_MAX_LEVEL - 1, BTRFS_SUPER_OFFSET + SB_ROOT_LEVEL);
    fs->generation = get_le64(sb + SB_GENERATION);
    fs->total_bytes = get_le64(sb + SB_TOTAL_BYTES);
    fs->bytes_used = get_le64(sb + SB_BYTES_USED);
    fs->num_devices = get_le64(sb + SB_NUM_DEVICES);
    fs->flags = get_le64(sb + SB_FLAGS);
    if (fs->num_devices == 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: number of devices is 0 (volume offset %u)",
                               BTRFS_SUPER_OFFSET + SB_NUM_DEVICES);
    memcpy(fs->fsid, sb + SB_FSID, 16);
    memcpy(fs->meta_fsid, fs->incompat & BTRFS_INCOMPAT_METADATA_UUID ? sb + SB_METADATA_UUID : sb + SB_FSID, 16);
    fs->devid = get_le64(sb + SB_DEV_ITEM + DEV_DEVID);
    fs->dev_total_bytes = get_le64(sb + SB_DEV_ITEM + DEV_TOTAL_BYTES);
    memcpy(fs->dev_uuid, sb + SB_DEV_ITEM + DEV_UUID, 16);
    memcpy(fs->label, sb + SB_LABEL, 256);
    fs->label[256] = '\0';
    uint64_t nodes = fs->total_bytes / fs->nodesize + 1;
    fs->max_nodes = nodes < MAX_NODES_CAP ? nodes : MAX_NODES_CAP;
    return ASR_OK;
}

/* ---- chunk map ----------------------------------------------------------------------------- */

/* Stripe counts each profile allows. */
static int profile_ok(uint64_t profile, uint16_t n, uint16_t sub)
{
    switch (profile) {
    case 0: return n == 1;
    case BTRFS_BLOCK_GROUP_DUP: return n == 2;
    case BTRFS_BLOCK_GROUP_RAID1: return n == 2;
    case BTRFS_BLOCK_GROUP_RAID1C3: return n == 3;
    case BTRFS_BLOCK_GROUP_RAID1C4: return n == 4;
    case BTRFS_BLOCK_GROUP_RAID0: return n >= 1;
    case BTRFS_BLOCK_GROUP_RAID10: return sub == 2 && n >= 2 && n % 2 == 0;
    case BTRFS_BLOCK_GROUP_RAID5: return n >= 2;
    case BTRFS_BLOCK_GROUP_RAID6: return n >= 3;
    default: return 0; /* more than one profile bit */
    }
}

/* Parses the chunk item at p (avail bytes) for logical address `logical` into c (stripes
 * allocated); *used: the item's size. where names the item for messages. */
static int parse_chunk(const struct btrfs_fs *fs, uint64_t logical, const uint8_t *p, size_t avail,
                       struct btrfs_chunk *c, size_t *used, const char *where, struct asr_error *err)
{
    if (avail < CHUNK_ITEM_SIZE)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: chunk item for logical %llu cut short (%s)",
                               (unsigned long long)logical, where);
    *c = (struct btrfs_chunk){.logical = logical,
                              .length = get_le64(p),
                              .stripe_len = get_le64(p + 16),
                              .type = get_le64(p + 24),
                              .num_stripes = get_le16(p + 44),
                              .sub_stripes = get_le16(p + 46)};
    uint64_t profile = c->type & BTRFS_BLOCK_GROUP_PROFILES;
    if (c->num_stripes == 0 || c->num_stripes > BTRFS_MAX_STRIPES ||
        avail - CHUNK_ITEM_SIZE < (size_t)c->num_stripes * STRIPE_ITEM_SIZE)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: chunk at logical %llu has %u stripes, beyond its item (%s)",
                               (unsigned long long)logical, c->num_stripes, where);
    if (!profile_ok(profile, c->num_stripes, c->sub_stripes) ||
        !(c->type & (BTRFS_BLOCK_GROUP_DATA | BTRFS_BLOCK_GROUP_METADATA | BTRFS_BLOCK_GROUP_SYSTEM)))
        return asr_fail_public(
            err, ASR_E_CORRUPT,
            "btrfs: chunk at logical %llu: type %#llx with %u stripes (sub-stripes %u) is no valid profile (%s)",
            (unsigned long long)logical, (unsigned long long)c->type, c->num_stripes, c->sub_stripes, where);
    if (c->length == 0 || c->length % fs->sectorsize || logical % fs->sectorsize || c->length > UINT64_MAX - logical)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: chunk at logical %llu of length %llu misaligned or too long (%s)",
                               (unsigned long long)logical, (unsigned long long)c->length, where);
    if (c->stripe_len < 4096 || c->stripe_len > (1u << 30) || (c->stripe_len & (c->stripe_len - 1)))
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: chunk at logical %llu: stripe length %llu invalid (%s)",
                               (unsigned long long)logical, (unsigned long long)c->stripe_len, where);
    if (c->length % data_stripes(c))
        return asr_fail_public(
            err, ASR_E_CORRUPT,
            "btrfs: chunk at logical %llu: length %llu does not divide over its %llu data stripes (%s)",
            (unsigned long long)logical, (unsigned long long)c->length, (unsigned long long)data_stripes(c), where);
    uint64_t ssize = btrfs_stripe_size(c);
    if (!(c->stripes = calloc(c->num_stripes, sizeof *c->stripes)))
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory for a chunk's stripes");
    for (unsigned i = 0; i < c->num_stripes; i++) {
        const uint8_t *s = p + CHUNK_ITEM_SIZE + i * STRIPE_ITEM_SIZE;
        c->stripes[i] = (struct btrfs_stripe){get_le64(s), get_le64(s + 8)};
        if (c->stripes[i].offset > UINT64_MAX - ssize) {
            uint64_t at = c->stripes[i].offset;
            free(c->stripes);
            c->stripes = NULL;
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: chunk at logical %llu: stripe %u at device byte %llu overflows (%s)",
                                   (unsigned long long)logical, i, (unsigned long long)at, where);
        }
    }
    *used = CHUNK_ITEM_SIZE + (size_t)c->num_stripes * STRIPE_ITEM_SIZE;
    return ASR_OK;
}

static int same_chunk(const struct btrfs_chunk *a, const struct btrfs_chunk *b)
{
    if (a->logical != b->logical || a->length != b->length || a->type != b->type || a->stripe_len != b->stripe_len ||
        a->num_stripes != b->num_stripes || a->sub_stripes != b->sub_stripes)
        return 0;
    return memcmp(a->stripes, b->stripes, a->num_stripes * sizeof *a->stripes) == 0;
}

/* Inserts c (its stripes then owned by fs) in logical order; the chunk tree repeats the system
 * array's chunks, which must then agree. Overlaps are corrupt. */
static int add_chunk(struct btrfs_fs *fs, struct btrfs_chunk *c, const char *where, struct asr_error *err)
{
    size_t at = fs->nchunks;
    while (at > 0 && fs->chunks[at - 1].logical > c->logical)
        at--;
    if (at > 0 && fs->chunks[at - 1].logical == c->logical && same_chunk(&fs->chunks[at - 1], c)) {
        free(c->stripes);
        return ASR_OK;
    }
    const struct btrfs_chunk *prev = at > 0 ? &fs->chunks[at - 1] : NULL,
                             *next = at < fs->nchunks ? &fs->chunks[at] : NULL;
    if ((prev && prev->logical + prev->length > c->logical) || (next && c->logical + c->length > next->logical)) {
        free(c->stripes);
        return asr_fail_public(
            err, ASR_E_CORRUPT, "btrfs: chunk at logical %llu overlaps the chunk at %llu (%s)",
            (unsigned long long)c->logical,
            (unsigned long long)(prev && prev->logical + prev->length > c->logical ? prev->logical : next->logical),
            where);
    }
    struct btrfs_chunk *v = NULL;
    if (fs->nchunks >= MAX_CHUNKS || !(v = asr_grow(fs->chunks, &fs->chunks_cap, fs->nchunks + 1, sizeof *v, 64))) {
        free(c->stripes);
        return fs->nchunks >= MAX_CHUNKS
                   ? asr_fail_public(err, ASR_E_LIMIT, "btrfs: more than %u chunks (%s)", MAX_CHUNKS, where)
                   : asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory for the chunk map");
    }
    fs->chunks = v;
    memmove(v + at + 1, v + at, (fs->nchunks - at) * sizeof *v);
    v[at] = *c;
    fs->nchunks++;
    return ASR_OK;
}

/* The superblock's copy of the system chunks, which map the chunk tree itself. */
static int parse_sys_array(struct btrfs_fs *fs, struct asr_error *err)
{
    uint32_t size = get_le32(fs->super + SB_SYS_ARRAY_SIZE);
    if (size > SYS_ARRAY_MAX)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: system chunk array of %u bytes, more than %u (volume offset %u)", size,
                               SYS_ARRAY_MAX, BTRFS_SUPER_OFFSET + SB_SYS_ARRAY_SIZE);
    const uint8_t *a = fs->super + SB_SYS_ARRAY;
    size_t pos = 0;
    while (pos < size) {
        char where[64];
        snprintf(where, sizeof where, "system chunk array, volume offset %zu", BTRFS_SUPER_OFFSET + SB_SYS_ARRAY + pos);
        struct btrfs_key k;
        if (size - pos < 17)
            return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: key cut short (%s)", where);
        read_key(a + pos, &k);
        if (k.type != BTRFS_CHUNK_ITEM_KEY)
            return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: item of type %u where a chunk item belongs (%s)", k.type,
                                   where);
        struct btrfs_chunk c;
        size_t used;
        int rc = parse_chunk(fs, k.offset, a + pos + 17, size - pos - 17, &c, &used, where, err);
        if (rc == ASR_OK)
            rc = add_chunk(fs, &c, where, err);
        if (rc != ASR_OK)
            return rc;
        pos += 17 + used;
    }
    if (fs->nchunks == 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: system chunk array is empty (volume offset %u)",
                               BTRFS_SUPER_OFFSET + SB_SYS_ARRAY);
    return ASR_OK;
}

static int chunk_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct btrfs_fs *fs = ctx;
    if (it->key.type != BTRFS_CHUNK_ITEM_KEY)
        return ASR_OK;
    char where[96];
    snprintf(where, sizeof where, "chunk tree leaf at logical %llu, item %u", (unsigned long long)it->leaf, it->slot);
    struct btrfs_chunk c;
    size_t used;
    int rc = parse_chunk(fs, it->key.offset, it->data, it->size, &c, &used, where, err);
    if (rc == ASR_OK && used != it->size) {
        free(c.stripes);
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: chunk item of %u bytes for %u stripes (%s)", it->size,
                               c.num_stripes, where);
    }
    return rc == ASR_OK ? add_chunk(fs, &c, where, err) : rc;
}

/* ---- tree blocks --------------------------------------------------------------------------- */

uint32_t btrfs_nritems(const uint8_t *block) { return get_le32(block + HDR_NRITEMS); }
uint8_t btrfs_level(const uint8_t *block) { return block[HDR_LEVEL]; }
uint64_t btrfs_generation(const uint8_t *block) { return get_le64(block + HDR_GENERATION); }

void btrfs_block_key(const uint8_t *block, uint32_t i, struct btrfs_key *key)
{
    uint32_t size = block[HDR_LEVEL] ? BTRFS_KEY_PTR_SIZE : BTRFS_ITEM_SIZE;
    read_key(block + BTRFS_HEADER_SIZE + (size_t)i * size, key);
}

/* The checks on one copy; where names the copy (logical and device byte). */
static int check_block(const struct btrfs_fs *fs, uint64_t logical, int level, const uint8_t *b, const char *where,
                       struct asr_error *err)
{
    uint32_t want = get_le32(b + HDR_CSUM), got = asr_crc32c(b + HDR_FSID, fs->nodesize - HDR_FSID);
    if (want != got)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: tree block checksum mismatch: computed %08x, stored %08x (%s)", got, want,
                               where);
    if (get_le64(b + HDR_BYTENR) != logical)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree block says it is at logical %llu (%s)",
                               (unsigned long long)get_le64(b + HDR_BYTENR), where);
    if (memcmp(b + HDR_FSID, fs->meta_fsid, 16) != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree block of another filesystem (fsid differs) (%s)",
                               where);
    uint8_t lv = b[HDR_LEVEL];
    if (lv >= BTRFS_MAX_LEVEL || (level >= 0 && lv != level))
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree block of level %u where level %d belongs (%s)", lv,
                               level, where);
    uint32_t n = get_le32(b + HDR_NRITEMS), room = fs->nodesize - BTRFS_HEADER_SIZE;
    uint32_t each = lv ? BTRFS_KEY_PTR_SIZE : BTRFS_ITEM_SIZE;
    if (n > room / each || (lv && n == 0))
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree block of level %u holds %u items (%s)", lv, n, where);
    struct btrfs_key prev = {0}, k;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = b + BTRFS_HEADER_SIZE + (size_t)i * each;
        read_key(p, &k);
        if (i && btrfs_key_cmp(&prev, &k) >= 0)
            return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree block keys out of order at item %u (%s)", i, where);
        prev = k;
        if (lv) {
            uint64_t ptr = get_le64(p + 17);
            if (ptr == 0 || ptr % fs->sectorsize)
                return asr_fail_public(err, ASR_E_CORRUPT,
                                       "btrfs: tree node pointer %u to logical %llu misaligned (%s)", i,
                                       (unsigned long long)ptr, where);
        } else {
            uint64_t off = get_le32(p + 17), size = get_le32(p + 21);
            if (off + size > room || off < (uint64_t)n * BTRFS_ITEM_SIZE)
                return asr_fail_public(err, ASR_E_CORRUPT,
                                       "btrfs: leaf item %u's data [%llu, +%llu) outside the leaf's data area (%s)", i,
                                       (unsigned long long)off, (unsigned long long)size, where);
        }
    }
    return ASR_OK;
}

/* A block or byte with no copy on this device: on a filesystem of several devices, the others hold
 * it (BTRFS_E_ELSEWHERE); on one of a single device, its chunk names a device that cannot exist. */
static int elsewhere_status(const struct btrfs_fs *fs)
{
    return fs->num_devices < 2 ? ASR_E_CORRUPT : BTRFS_E_ELSEWHERE;
}

int btrfs_read_tree_block(struct btrfs_fs *fs, uint64_t logical, int level, uint8_t *buf, struct asr_error *err)
{
    const struct btrfs_chunk *c = btrfs_chunk_find(fs, logical);
    if (!c)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree block at logical %llu lies in no chunk",
                               (unsigned long long)logical);
    struct btrfs_place pl[BTRFS_MAX_COPIES];
    uint64_t run;
    unsigned n = btrfs_chunk_place(c, logical, pl, &run);
    if (run < fs->nodesize)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree block at logical %llu crosses a stripe or chunk end",
                               (unsigned long long)logical);
    int rc = BTRFS_E_ELSEWHERE, first = ASR_OK;
    struct asr_error first_err = {0};
    for (unsigned i = 0; i < n; i++) {
        if (pl[i].devid != fs->devid)
            continue;
        char where[96];
        snprintf(where, sizeof where, "logical %llu, volume offset %llu", (unsigned long long)logical,
                 (unsigned long long)pl[i].physical);
        rc = asr_window_read(fs->w, "a btrfs tree block", pl[i].physical, buf, fs->nodesize, err);
        if (rc == ASR_OK)
            rc = check_block(fs, logical, level, buf, where, err);
        if (rc == ASR_OK)
            return ASR_OK;
        if (first == ASR_OK) { /* the first copy's failure is the one worth telling */
            first = rc;
            if (err)
                first_err = *err;
        }
    }
    if (first != ASR_OK) {
        if (err)
            *err = first_err;
        return first;
    }
    char devs[64] = "";
    size_t o = 0;
    for (unsigned i = 0; i < n && o < sizeof devs - 24; i++)
        o += (size_t)snprintf(devs + o, sizeof devs - o, "%s%llu", i ? ", " : "", (unsigned long long)pl[i].devid);
    return asr_fail_public(
        err, elsewhere_status(fs),
        "btrfs: tree block at logical %llu is only on device%s %s, not on this one (device %llu of %llu)",
        (unsigned long long)logical, n == 1 ? "" : "s", devs, (unsigned long long)fs->devid,
        (unsigned long long)fs->num_devices);
}

int btrfs_read_logical(struct btrfs_fs *fs, const char *what, uint64_t logical, void *buf, size_t len,
                       struct asr_error *err)
{
    uint8_t *p = buf;
    while (len) {
        const struct btrfs_chunk *c = btrfs_chunk_find(fs, logical);
        if (!c)
            return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %s at logical %llu lies in no chunk",
                                   what ? what : "data", (unsigned long long)logical);
        struct btrfs_place pl[BTRFS_MAX_COPIES];
        uint64_t run;
        unsigned n = btrfs_chunk_place(c, logical, pl, &run), i = 0;
        while (i < n && pl[i].devid != fs->devid)
            i++;
        if (i == n)
            return asr_fail_public(err, elsewhere_status(fs),
                                   "btrfs: %s at logical %llu is only on device %llu, not on this one (device %llu)",
                                   what ? what : "data", (unsigned long long)logical, (unsigned long long)pl[0].devid,
                                   (unsigned long long)fs->devid);
        size_t piece = run < len ? (size_t)run : len;
        int rc = asr_window_read(fs->w, what, pl[i].physical, p, piece, err);
        if (rc != ASR_OK)
            return rc;
        p += piece;
        len -= piece;
        logical += piece;
    }
    return ASR_OK;
}

/* ---- search -------------------------------------------------------------------------------- */

struct search {
    struct btrfs_fs *fs;
    const struct btrfs_key *min, *max;
    btrfs_item_fn fn;
    void *ctx;
    uint8_t *bufs; /* one nodesize buffer per level */
    uint64_t nodes;
};

/* Visits the block at logical of level level, whose keys must lie in [lo, hi) (hi NULL: no end);
 * gen: the generation its parent pointer gives (0 for a root: not checked). */
static int visit(struct search *s, uint64_t logical, int level, uint64_t gen, const struct btrfs_key *lo,
                 const struct btrfs_key *hi, struct asr_error *err)
{
    struct btrfs_fs *fs = s->fs;
    if (++s->nodes > fs->max_nodes)
        return asr_fail_public(err, ASR_E_LIMIT, "btrfs: a tree search read more than %llu blocks (at logical %llu)",
                               (unsigned long long)fs->max_nodes, (unsigned long long)logical);
    uint8_t *b = s->bufs + (size_t)level * fs->nodesize;
    int rc = btrfs_read_tree_block(fs, logical, level, b, err);
    if (rc != ASR_OK)
        return rc;
    if (gen && btrfs_generation(b) != gen)
        return asr_fail_public(
            err, ASR_E_CORRUPT, "btrfs: tree block at logical %llu has generation %llu, its parent expects %llu",
            (unsigned long long)logical, (unsigned long long)btrfs_generation(b), (unsigned long long)gen);
    uint32_t n = btrfs_nritems(b);
    struct btrfs_key k;
    if (n) {
        btrfs_block_key(b, 0, &k);
        struct btrfs_key last;
        btrfs_block_key(b, n - 1, &last);
        if ((lo && btrfs_key_cmp(&k, lo) < 0) || (hi && btrfs_key_cmp(&last, hi) >= 0))
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: tree block at logical %llu holds keys outside its parent's range",
                                   (unsigned long long)logical);
    }
    for (uint32_t i = 0; i < n; i++) {
        btrfs_block_key(b, i, &k);
        const uint8_t *p = b + BTRFS_HEADER_SIZE + (size_t)i * (level ? BTRFS_KEY_PTR_SIZE : BTRFS_ITEM_SIZE);
        if (s->max && btrfs_key_cmp(&k, s->max) > 0)
            return BTRFS_STOP;
        if (level == 0) {
            if (s->min && btrfs_key_cmp(&k, s->min) < 0)
                continue;
            struct btrfs_item it = {k, b + BTRFS_HEADER_SIZE + get_le32(p + 17), get_le32(p + 21), logical, i};
            rc = s->fn(s->ctx, &it, err);
        } else {
            struct btrfs_key next;
            if (i + 1 < n)
                btrfs_block_key(b, i + 1, &next);
            if (i + 1 < n && s->min && btrfs_key_cmp(&next, s->min) <= 0)
                continue; /* the whole child is below min */
            rc = visit(s, get_le64(p + 17), level - 1, get_le64(p + 25), &k, i + 1 < n ? &next : hi, err);
        }
        if (rc != ASR_OK)
            return rc;
    }
    return ASR_OK;
}

int btrfs_search(struct btrfs_fs *fs, uint64_t root, uint8_t level, const struct btrfs_key *min,
                 const struct btrfs_key *max, btrfs_item_fn fn, void *ctx, struct asr_error *err)
{
    if (level >= BTRFS_MAX_LEVEL)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: tree root at logical %llu of level %u, above %d",
                               (unsigned long long)root, level, BTRFS_MAX_LEVEL - 1);
    struct search s = {fs, min, max, fn, ctx, malloc((size_t)(level + 1) * fs->nodesize), 0};
    if (!s.bufs)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory for a tree search");
    int rc = visit(&s, root, level, 0, NULL, NULL, err);
    free(s.bufs);
    return rc == BTRFS_STOP ? ASR_OK : rc;
}

struct find_root {
    struct btrfs_root *out;
    bool *found;
};

/* ROOT_ITEM: an inode item (160 bytes), then generation, root_dirid, bytenr, byte_limit,
 * bytes_used, last_snapshot, flags (8 bytes each), refs (4), drop_progress (a key), drop_level,
 * level: 239 bytes in the oldest layout. */
#define ROOT_ITEM_MIN 239u
int btrfs_root_item(const struct btrfs_item *it, struct btrfs_root *out, struct asr_error *err)
{
    if (it->size < ROOT_ITEM_MIN)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "btrfs: root item of %u bytes for tree %llu (root tree leaf at logical %llu, item %u)",
                               it->size, (unsigned long long)it->key.objectid, (unsigned long long)it->leaf, it->slot);
    const uint8_t *d = it->data;
    *out = (struct btrfs_root){.objectid = it->key.objectid,
                               .key_offset = it->key.offset,
                               .generation = get_le64(d + 160),
                               .root_dirid = get_le64(d + 168),
                               .bytenr = get_le64(d + 176),
                               .flags = get_le64(d + 208),
                               .refs = get_le32(d + 216),
                               .level = d[238]};
    if (out->level >= BTRFS_MAX_LEVEL)
        return asr_fail_public(
            err, ASR_E_CORRUPT, "btrfs: root of tree %llu at level %u (root tree leaf at logical %llu, item %u)",
            (unsigned long long)it->key.objectid, out->level, (unsigned long long)it->leaf, it->slot);
    return ASR_OK;
}

static int root_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct find_root *f = ctx;
    if (it->key.type != BTRFS_ROOT_ITEM_KEY)
        return ASR_OK;
    int rc = btrfs_root_item(it, f->out, err);
    if (rc == ASR_OK)
        *f->found = true;
    return rc; /* the last one (highest offset) wins */
}

int btrfs_find_root(struct btrfs_fs *fs, uint64_t objectid, struct btrfs_root *out, bool *found, struct asr_error *err)
{
    struct btrfs_key min = {objectid, BTRFS_ROOT_ITEM_KEY, 0}, max = {objectid, BTRFS_ROOT_ITEM_KEY, UINT64_MAX};
    struct find_root f = {out, found};
    *found = false;
    memset(out, 0, sizeof *out);
    return btrfs_search(fs, fs->root, fs->root_level, &min, &max, root_item, &f, err);
}

/* ---- open / close -------------------------------------------------------------------------- */

int btrfs_open(const struct asr_window *w, struct btrfs_fs **out, struct asr_error *err)
{
    *out = NULL;
    struct btrfs_fs *fs = calloc(1, sizeof *fs);
    if (!fs)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory");
    fs->w = w;
    int rc = asr_window_read(w, "the btrfs superblock", BTRFS_SUPER_OFFSET, fs->super, BTRFS_SUPER_SIZE, err);
    if (rc == ASR_OK)
        rc = check_super(fs, err);
    if (rc == ASR_OK)
        rc = parse_sys_array(fs, err);
    if (rc == ASR_OK)
        rc = btrfs_search(fs, fs->chunk_root, fs->chunk_root_level, NULL, NULL, chunk_item, fs, err);
    if (rc == BTRFS_E_ELSEWHERE) {
        char msg[ASR_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        rc = asr_fail_public(err, ASR_E_UNSUPPORTED, "btrfs: the chunk tree cannot be read from this device alone: %s",
                             msg + (strncmp(msg, "btrfs: ", 7) ? 0 : 7));
    }
    if (rc != ASR_OK) {
        btrfs_close(fs);
        return rc;
    }
    *out = fs;
    return ASR_OK;
}

void btrfs_close(struct btrfs_fs *fs)
{
    if (!fs)
        return;
    for (size_t i = 0; i < fs->nchunks; i++)
        free(fs->chunks[i].stripes);
    free(fs->chunks);
    free(fs);
}
