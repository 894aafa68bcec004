/* Re-backup hints (SPEC.md section 19.10): a file private to the machine that says, per volume,
 * where the last backup into a store cut its chunks, what each chunk's bytes (and each of its
 * 4 KiB blocks) hashed to under a seed only this file knows, and the chunk's store id (or, for a
 * patched region, its base's and its patch's). The pipeline (backup.c) checks the bytes at
 * the same offset against the hint with one XXH3 pass instead of running the chunker and the
 * store's HMAC over them. The file is read as untrusted bytes like an image: a damaged one is
 * refused with what and where, and the backup then runs without it. Hand-written: it is our own
 * small format, serialized field by field with the little-endian helpers. */
#include "hints.h"

#include "grow.h"
#include "io.h"
#include "le.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#define HINTS_MAGIC "ASRHINT"        /* 8 bytes with its NUL */
#define HINTS_VERSION 2u
#define HINTS_HEADER 64u
#define HINTS_VOLUME 32u
#define HINTS_ENTRY 136u
#define HINTS_BLOCK 9u
#define HINTS_TRAILER 8u
#define HINTS_MAX_VOLUMES 4096u
#define HINTS_MAX_FILE (1ull << 30) /* about 13 million chunks: over 3 TiB at the default size */

struct asr_backup_hints {
    uint8_t store_check[ASR_STORE_ID_SIZE];
    uint32_t avg_chunk;
    uint64_t seed;
    /* What the last backup left (loaded), and what this one records (written). */
    struct hint_list *old;
    size_t nold;
    struct hint *old_entries;
    struct hint_block *old_blocks;
    /* Recorded as the file lays them out: volumes naming their run of one entry table. */
    struct rec_volume *rec;
    size_t nrec, rec_cap;
    struct hint *rec_entries;
    size_t nrec_entries, rec_entries_cap;
    struct hint_block *rec_blocks; /* the entries' blocks one after another */
    size_t nrec_blocks, rec_blocks_cap;
};

struct rec_volume {
    uint8_t key[HINT_KEY_SIZE];
    size_t first, n;
};

static int random_seed(uint64_t *seed, struct asr_error *err)
{
    uint8_t b[8];
    int e = asr_random_full(b, sizeof b);
    if (e)
        return asr_fail_public(err, ASR_E_IO, "re-backup hints: no random bytes: %s", strerror(-e));
    *seed = get_le64(b);
    return ASR_OK;
}

int asr_backup_hints_new(const uint8_t store_check[ASR_BACKUP_HINTS_CHECK], uint32_t avg_chunk,
                         struct asr_backup_hints **out, struct asr_error *err)
{
    *out = NULL;
    struct asr_backup_hints *h = calloc(1, sizeof *h);
    if (!h)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
    memcpy(h->store_check, store_check, ASR_STORE_ID_SIZE);
    h->avg_chunk = avg_chunk;
    int rc = random_seed(&h->seed, err);
    if (rc != ASR_OK) {
        free(h);
        return rc;
    }
    *out = h;
    return ASR_OK;
}

static void free_old(struct asr_backup_hints *h)
{
    free(h->old);
    free(h->old_entries);
    free(h->old_blocks);
    h->old = NULL;
    h->old_entries = NULL;
    h->old_blocks = NULL;
    h->nold = 0;
}

void asr_backup_hints_free(struct asr_backup_hints *h)
{
    if (!h)
        return;
    free_old(h);
    free(h->rec);
    free(h->rec_entries);
    free(h->rec_blocks);
    free(h);
}

uint64_t asr_backup_hints_loaded(const struct asr_backup_hints *h)
{
    uint64_t n = 0;
    for (size_t i = 0; h && i < h->nold; i++)
        n += h->old[i].n;
    return n;
}

uint64_t hints_seed(const struct asr_backup_hints *h) { return h->seed; }

uint32_t hints_avg_chunk(const struct asr_backup_hints *h) { return h->avg_chunk; }

const struct hint_list *hints_for_volume(const struct asr_backup_hints *h, const uint8_t key[HINT_KEY_SIZE])
{
    for (size_t i = 0; h && i < h->nold; i++)
        if (!memcmp(h->old[i].key, key, HINT_KEY_SIZE))
            return h->old[i].n ? &h->old[i] : NULL;
    return NULL;
}

/* The first hint at or after offset, or NULL. */
static const struct hint *hints_from(const struct hint_list *l, uint64_t offset)
{
    size_t lo = 0, hi = l ? l->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return l && lo < l->n ? &l->v[lo] : NULL;
}

const struct hint *hints_at(const struct hint_list *l, uint64_t offset)
{
    const struct hint *h = hints_from(l, offset);
    return h && h->offset == offset ? h : NULL;
}

uint64_t hints_next_start(const struct hint_list *l, uint64_t offset)
{
    const struct hint *h = offset < UINT64_MAX ? hints_from(l, offset + 1) : NULL;
    return h ? h->offset : UINT64_MAX;
}

int hints_record(struct asr_backup_hints *h, const uint8_t key[HINT_KEY_SIZE], const struct hint *e,
                 struct asr_error *err)
{
    if (!h->nrec || memcmp(h->rec[h->nrec - 1].key, key, HINT_KEY_SIZE)) {
        struct rec_volume *v = asr_grow(h->rec, &h->rec_cap, h->nrec + 1, sizeof *v, 8);
        if (!v)
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
        h->rec = v;
        v[h->nrec] = (struct rec_volume){.first = h->nrec_entries};
        memcpy(v[h->nrec].key, key, HINT_KEY_SIZE);
        h->nrec++;
    }
    struct rec_volume *vol = &h->rec[h->nrec - 1];
    const struct hint *last = vol->n ? &h->rec_entries[h->nrec_entries - 1] : NULL;
    if (last && e->offset < last->offset + last->len)
        return asr_fail_public(err, ASR_E_STATE, "re-backup hints: chunk at %llu recorded out of order",
                               (unsigned long long)e->offset);
    size_t nb = hint_block_count(e->offset, e->len);
    struct hint *v = asr_grow(h->rec_entries, &h->rec_entries_cap, h->nrec_entries + 1, sizeof *v, 1024);
    struct hint_block *b =
        v ? asr_grow(h->rec_blocks, &h->rec_blocks_cap, h->nrec_blocks + nb, sizeof *b, 65536) : NULL;
    if (v)
        h->rec_entries = v;
    if (!b)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
    h->rec_blocks = b;
    memcpy(b + h->nrec_blocks, e->blocks, nb * sizeof *b);
    v[h->nrec_entries] = *e;
    v[h->nrec_entries++].blocks = NULL; /* the recorded blocks move as the table grows: by position */
    h->nrec_blocks += nb;
    vol->n++;
    return ASR_OK;
}

/* ---- the file ---------------------------------------------------------------------------------- */

static void put_hash(uint8_t *p, struct asr_hash128 x)
{
    put_le64(p, x.lo);
    put_le64(p + 8, x.hi);
}

static struct asr_hash128 get_hash(const uint8_t *p) { return (struct asr_hash128){get_le64(p), get_le64(p + 8)}; }

static void put_entry(uint8_t *p, const struct hint *e)
{
    put_le64(p, e->offset);
    put_le32(p + 8, e->len);
    put_le32(p + 12, e->flags);
    put_hash(p + 16, e->verify);
    put_hash(p + 32, e->content);
    memcpy(p + 48, e->sid.b, ASR_STORE_ID_SIZE);
    put_hash(p + 80, e->patch_content);
    put_le32(p + 96, e->patch_len);
    put_le32(p + 100, 0);
    memcpy(p + 104, e->patch_sid.b, ASR_STORE_ID_SIZE);
}

static void get_entry(const uint8_t *p, struct hint *e)
{
    e->offset = get_le64(p);
    e->len = get_le32(p + 8);
    e->flags = get_le32(p + 12);
    e->verify = get_hash(p + 16);
    e->content = get_hash(p + 32);
    memcpy(e->sid.b, p + 48, ASR_STORE_ID_SIZE);
    e->patch_content = get_hash(p + 80);
    e->patch_len = get_le32(p + 96);
    memcpy(e->patch_sid.b, p + 104, ASR_STORE_ID_SIZE);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* The rules an entry of a volume keeps: a chunk's length, ascending, apart, known flags, a patch's
 * fields set only for a patched region (its length checked against its blocks, check_blocks). */
static int check_entry(const uint8_t *p, const struct hint *e, const struct hint *prev, uint32_t max_len,
                       const char *where, uint64_t at, struct asr_error *err)
{
    if (e->flags & ~HINT_PATCHED || get_le32(p + 100) ||
        (!(e->flags & HINT_PATCHED) && !all_zero(p + 80, 24 + ASR_STORE_ID_SIZE)))
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: entry at byte %llu: unknown flags or reserved bytes set",
                               where, (unsigned long long)at);
    if (!e->len || e->len > max_len)
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: entry at byte %llu: length %u outside 1..%u", where,
                               (unsigned long long)at, e->len, max_len);
    if (e->offset > UINT64_MAX - e->len || (prev && e->offset < prev->offset + prev->len))
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: entry at byte %llu: offset %llu out of order", where,
                               (unsigned long long)at, (unsigned long long)e->offset);
    return ASR_OK;
}

static int parse_header(struct asr_backup_hints *h, const uint8_t *buf, size_t len, const char *where,
                        uint32_t *nvol, struct asr_error *err)
{
    if (len < HINTS_HEADER + HINTS_TRAILER || memcmp(buf, HINTS_MAGIC, 8))
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: not a re-backup hints file", where);
    if (len > HINTS_MAX_FILE)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: %zu bytes, more than %llu", where, len,
                               (unsigned long long)HINTS_MAX_FILE);
    if (XXH3_64bits(buf, len - HINTS_TRAILER) != get_le64(buf + len - HINTS_TRAILER))
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: checksum mismatch", where);
    if (get_le32(buf + 8) != HINTS_VERSION)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "%s: version %u (this asrimg writes %u)", where,
                               get_le32(buf + 8), HINTS_VERSION);
    if (memcmp(buf + 24, h->store_check, ASR_STORE_ID_SIZE))
        return asr_fail_public(err, ASR_E_ARG, "%s: made for another store or key", where);
    if (get_le32(buf + 12) != h->avg_chunk)
        return asr_fail_public(err, ASR_E_ARG, "%s: made with %u-byte average chunks, not %u", where,
                               get_le32(buf + 12), h->avg_chunk);
    *nvol = get_le32(buf + 56);
    if (*nvol > HINTS_MAX_VOLUMES || get_le32(buf + 60))
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: %u volumes (at most %u) or reserved bytes set", where,
                               *nvol, HINTS_MAX_VOLUMES);
    if (len < HINTS_HEADER + HINTS_TRAILER + (uint64_t)*nvol * HINTS_VOLUME)
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: %zu bytes do not hold %u volumes", where, len, *nvol);
    return ASR_OK;
}

/* An entry's blocks: each from its base or not, all from it unless the region is patched, and a
 * patch exactly as long as the blocks not from the base. */
static int check_blocks(const struct hint *e, const char *where, uint64_t at, struct asr_error *err)
{
    size_t n = hint_block_count(e->offset, e->len);
    uint64_t patched = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        hint_block_range(e->offset, e->len, i, &a, &b);
        if (e->blocks[i].from & ~HINT_FROM_BASE)
            return asr_fail_public(err, ASR_E_CORRUPT, "%s: block at byte %llu: unknown flags", where,
                                   (unsigned long long)(at + i * HINTS_BLOCK));
        if (!(e->blocks[i].from & HINT_FROM_BASE))
            patched += b - a;
    }
    bool is_patch = e->flags & HINT_PATCHED;
    if (is_patch ? !patched || patched != e->patch_len : patched != 0)
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: blocks at byte %llu: %llu bytes not from the base, for %s",
                               where, (unsigned long long)at, (unsigned long long)patched,
                               is_patch ? "the patch's length" : "a region that is not patched");
    return ASR_OK;
}

/* The volume table: each volume's entries follow the last one's; the entries' count. */
static int parse_volumes(const uint8_t *vt, uint32_t nvol, uint64_t max_entries, struct hint_list *vols,
                         uint64_t *nent, const char *where, struct asr_error *err)
{
    uint64_t next = 0;
    for (uint32_t i = 0; i < nvol; i++) {
        const uint8_t *p = vt + (size_t)i * HINTS_VOLUME;
        uint64_t first = get_le64(p + 16), count = get_le64(p + 24);
        if (first != next || count > max_entries - next)
            return asr_fail_public(err, ASR_E_CORRUPT, "%s: volume %u: entries %llu+%llu do not follow on", where, i,
                                   (unsigned long long)first, (unsigned long long)count);
        memcpy(vols[i].key, p, HINT_KEY_SIZE);
        vols[i].n = (size_t)count;
        next = first + count;
    }
    *nent = next;
    return ASR_OK;
}

int hints_parse(struct asr_backup_hints *h, const uint8_t *buf, size_t len, const char *where,
                struct asr_error *err)
{
    uint32_t nvol = 0;
    int rc = parse_header(h, buf, len, where, &nvol, err);
    if (rc != ASR_OK)
        return rc;
    uint64_t seed = get_le64(buf + 16), nent = 0, fixed = HINTS_HEADER + (uint64_t)nvol * HINTS_VOLUME + HINTS_TRAILER;
    struct hint_list *vols = calloc(nvol + 1u, sizeof *vols);
    struct hint *ents = NULL;
    struct hint_block *blocks = NULL;
    if (!vols)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
    rc = parse_volumes(buf + HINTS_HEADER, nvol, (len - fixed) / HINTS_ENTRY, vols, &nent, where, err);
    if (rc == ASR_OK && !(ents = calloc(nent + 1, sizeof *ents)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
    uint32_t max_len = asr_backup_max_chunk(h->avg_chunk);
    uint64_t nblocks = 0, k = 0;
    for (uint32_t i = 0; i < nvol && rc == ASR_OK; i++) {
        vols[i].v = ents + k;
        for (uint64_t end = k + vols[i].n; k < end && rc == ASR_OK; k++) {
            uint64_t at = HINTS_HEADER + (uint64_t)nvol * HINTS_VOLUME + k * HINTS_ENTRY;
            get_entry(buf + at, &ents[k]);
            rc = check_entry(buf + at, &ents[k], k > end - vols[i].n ? &ents[k - 1] : NULL, max_len, where, at, err);
            nblocks += rc == ASR_OK ? hint_block_count(ents[k].offset, ents[k].len) : 0;
        }
    }
    uint64_t at = fixed - HINTS_TRAILER + nent * HINTS_ENTRY;
    if (rc == ASR_OK && (nblocks > (len - fixed) / HINTS_BLOCK || len != at + nblocks * HINTS_BLOCK + HINTS_TRAILER))
        rc = asr_fail_public(err, ASR_E_CORRUPT, "%s: %zu bytes do not hold %llu entries and their %llu blocks", where,
                             len, (unsigned long long)nent, (unsigned long long)nblocks);
    if (rc == ASR_OK && !(blocks = calloc(nblocks + 1, sizeof *blocks)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
    for (uint64_t e = 0, b = 0; e < nent && rc == ASR_OK; e++) {
        size_t n = hint_block_count(ents[e].offset, ents[e].len);
        for (size_t i = 0; i < n; i++)
            blocks[b + i] = (struct hint_block){get_le64(buf + at + (b + i) * HINTS_BLOCK),
                                                buf[at + (b + i) * HINTS_BLOCK + 8]};
        ents[e].blocks = blocks + b;
        rc = check_blocks(&ents[e], where, at + b * HINTS_BLOCK, err);
        b += n;
    }
    if (rc != ASR_OK) {
        free(vols);
        free(ents);
        free(blocks);
        return rc;
    }
    free_old(h);
    h->old = vols;
    h->nold = nvol;
    h->old_entries = ents;
    h->old_blocks = blocks;
    h->seed = seed;
    return ASR_OK;
}

int asr_backup_hints_read(struct asr_backup_hints *h, const char *path, struct asr_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ASR_OK
                               : asr_fail_public(err, ASR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = ASR_OK;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) < 0)
        rc = asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(errno));
    else if ((uint64_t)st.st_size > HINTS_MAX_FILE)
        rc = asr_fail_public(err, ASR_E_LIMIT, "%s: %lld bytes, more than %llu", path, (long long)st.st_size,
                             (unsigned long long)HINTS_MAX_FILE);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
    else if (asr_pread_full(fd, buf, (size_t)st.st_size, 0))
        rc = asr_fail_public(err, ASR_E_IO, "%s: cannot read", path);
    else
        rc = hints_parse(h, buf, (size_t)st.st_size, path, err);
    free(buf);
    close(fd);
    return rc;
}

static uint8_t *serialize(const struct asr_backup_hints *h, size_t *len, struct asr_error *err)
{
    uint64_t nent = h->nrec_entries, nblocks = h->nrec_blocks;
    uint64_t et = HINTS_HEADER + (uint64_t)h->nrec * HINTS_VOLUME, bt = et + nent * HINTS_ENTRY;
    uint64_t size = bt + nblocks * HINTS_BLOCK + HINTS_TRAILER;
    if (h->nrec > HINTS_MAX_VOLUMES || size > HINTS_MAX_FILE) {
        asr_fail_public(err, ASR_E_LIMIT, "re-backup hints: %zu volumes and %llu chunks are more than a file holds",
                        h->nrec, (unsigned long long)nent);
        return NULL;
    }
    uint8_t *b = calloc(1, (size_t)size);
    if (!b) {
        asr_fail_public(err, ASR_E_NOMEM, "out of memory for re-backup hints");
        return NULL;
    }
    memcpy(b, HINTS_MAGIC, 8);
    put_le32(b + 8, HINTS_VERSION);
    put_le32(b + 12, h->avg_chunk);
    put_le64(b + 16, h->seed);
    memcpy(b + 24, h->store_check, ASR_STORE_ID_SIZE);
    put_le32(b + 56, (uint32_t)h->nrec);
    uint8_t *vt = b + HINTS_HEADER;
    for (size_t i = 0; i < h->nrec; i++) {
        memcpy(vt + i * HINTS_VOLUME, h->rec[i].key, HINT_KEY_SIZE);
        put_le64(vt + i * HINTS_VOLUME + 16, h->rec[i].first);
        put_le64(vt + i * HINTS_VOLUME + 24, h->rec[i].n);
    }
    for (size_t k = 0; k < h->nrec_entries; k++)
        put_entry(b + et + k * HINTS_ENTRY, &h->rec_entries[k]);
    for (size_t k = 0; k < h->nrec_blocks; k++) {
        put_le64(b + bt + k * HINTS_BLOCK, h->rec_blocks[k].hash);
        b[bt + k * HINTS_BLOCK + 8] = h->rec_blocks[k].from;
    }
    put_le64(b + size - HINTS_TRAILER, XXH3_64bits(b, (size_t)size - HINTS_TRAILER));
    *len = (size_t)size;
    return b;
}

/* mkdir -p of the directories above path, private to the user: the file says what was stored. */
static int make_private_dirs(const char *path, struct asr_error *err)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir)
        return asr_fail_public(err, ASR_E_ARG, "%s: path too long", path);
    for (char *c = strchr(dir + 1, '/'); c; c = strchr(c + 1, '/')) {
        *c = 0;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return asr_fail_public(err, ASR_E_IO, "%s: cannot create: %s", dir, strerror(errno));
        *c = '/';
    }
    return ASR_OK;
}

int asr_backup_hints_write(const struct asr_backup_hints *h, const char *path, struct asr_error *err)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= sizeof tmp)
        return asr_fail_public(err, ASR_E_ARG, "%s: path too long", path);
    size_t len = 0;
    uint8_t *b = serialize(h, &len, err);
    if (!b)
        return err->code;
    int rc = make_private_dirs(path, err);
    int fd = rc == ASR_OK ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    if (rc == ASR_OK && fd < 0)
        rc = asr_fail_public(err, ASR_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    /* No fsync: a file a crash leaves short or stale is refused by its checksum or its seed's
     * hashes, and costs one backup its speed, never its correctness; a sync would cost every
     * backup a disk flush. */
    if (rc == ASR_OK && asr_write_full(fd, b, len))
        rc = asr_fail_public(err, ASR_E_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) < 0 && rc == ASR_OK)
        rc = asr_fail_public(err, ASR_E_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (rc == ASR_OK && rename(tmp, path) < 0)
        rc = asr_fail_public(err, ASR_E_IO, "%s: cannot replace: %s", path, strerror(errno));
    if (rc != ASR_OK && fd >= 0)
        unlink(tmp);
    free(b);
    return rc;
}
