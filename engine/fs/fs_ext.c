/* ext2/3/4 used-byte map: libext2fs opens the filesystem through an I/O manager that reads only
 * inside the window (fs_ext_io.c: every read is asr_window_read, so no partition device node, no
 * second open of the disk, and no read past the partition whatever the metadata says), then reads
 * the block bitmap (computing BLOCK_UNINIT groups, per cluster under bigalloc); its set runs,
 * together with every block the metadata references (fs_ext_refs.c: a damaged bitmap may call
 * them free), become byte ranges. A journal still to replay is read (fs_ext_journal.c) and the
 * filesystem mapped a second time as the replay will leave it. */
#include "fs_ext_internal.h"
#include "guid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Features an ext2 or ext3 driver understands, as libblkid defines them: anything beyond these
 * (or the internal journal, for ext3) is what makes blkid call a filesystem ext4. */
#define EXT2_RO_COMPAT_BTREE_DIR 0x0004u /* named by blkid; libext2fs no longer defines it */
#define EXT3_RO_COMPAT_KNOWN \
    (EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE | EXT2_RO_COMPAT_BTREE_DIR)
#define EXT3_INCOMPAT_KNOWN \
    (EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_RECOVER | EXT2_FEATURE_INCOMPAT_META_BG)

/* ---- the map ---------------------------------------------------------------------------- */

static int record(struct asr_ranges *r, uint64_t off, uint64_t len, struct asr_error *err)
{
    int rc = asr_ranges_add(r, off, len);
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "ext: cannot record used bytes %llu+%llu (%s)", (unsigned long long)off,
                               (unsigned long long)len, asr_status_name(rc));
    return ASR_OK;
}

/* Emits every run of set bits of a block bitmap of fs, found a run at a time with the bitmap's
 * own search (never bit by bit). Under bigalloc the bitmap has a bit per cluster; libext2fs's
 * search takes and returns block numbers, aligned to clusters, so a run is [set, zero) in
 * blocks either way, clipped to the last block. */
static int emit_bitmap(ext2_filsys fs, ext2fs_block_bitmap map, const struct ext_io *wi, struct asr_ranges *out,
                       struct asr_error *err)
{
    uint64_t bs = fs->blocksize, count = ext2fs_blocks_count(fs->super);
    blk64_t at = fs->super->s_first_data_block, last = count - 1;
    while (at <= last) {
        blk64_t set, zero;
        errcode_t e = ext2fs_find_first_set_block_bitmap2(map, at, last, &set);
        if (e == ENOENT)
            break;
        if (e)
            return ext_fail(err, wi, "searching a block bitmap", e);
        e = ext2fs_find_first_zero_block_bitmap2(map, set, last, &zero);
        if (e == ENOENT)
            zero = count;
        else if (e)
            return ext_fail(err, wi, "searching a block bitmap", e);
        if (zero > count) /* the last cluster may reach past the last block */
            zero = count;
        if (zero <= set)
            return asr_fail_public(err, ASR_E_CORRUPT, "ext: block bitmap search went backwards at block %llu",
                                   (unsigned long long)set);
        /* The head may have been added first; a run may start inside it (4 KiB blocks: block 0). */
        uint64_t off = set * bs, end = zero * bs;
        if (out->n && off < out->v[out->n - 1].offset + out->v[out->n - 1].length)
            off = out->v[out->n - 1].offset + out->v[out->n - 1].length;
        if (end > off) {
            int rc = record(out, off, end - off, err);
            if (rc != ASR_OK)
                return rc;
        }
        at = zero;
    }
    return ASR_OK;
}

/* What a map found beyond the block bitmap, for its note. */
struct findings {
    uint64_t extra;        /* bytes the metadata references that the bitmap marks free */
    uint64_t outside;      /* references past the filesystem (nothing there to capture) */
    bool bitmap_csum;      /* some block bitmap failed its checksum */
    uint64_t transactions; /* committed transactions in a journal to replay */
    uint64_t named;        /* blocks the log names */
    uint64_t replay_extra; /* bytes the filesystem as replayed adds */
    uint64_t cleared;      /* bytes of an empty journal's log, left unread */
    char log_kept[160];    /* why an empty journal's log is read all the same */
};

static int unite(struct asr_ranges *into, const struct asr_ranges *more, struct asr_error *err)
{
    struct asr_ranges u = {0};
    int rc = asr_ranges_union(into, more, &u);
    if (rc != ASR_OK)
        return asr_fail_public(err, rc, "ext: cannot record used bytes (%s)", asr_status_name(rc));
    asr_ranges_free(into);
    *into = u;
    return ASR_OK;
}

/* The block bitmap, read even when some group's fails its checksum: with every referenced block
 * added to it, a bitmap with a known flaw is still a sound map, and whole capture is kept for
 * metadata that fails its structural checks. */
static int read_bitmap(ext2_filsys fs, const struct ext_io *wi, struct findings *f, struct asr_error *err)
{
    errcode_t e = ext2fs_read_block_bitmap(fs);
    if (e == EXT2_ET_BLOCK_BITMAP_CSUM_INVALID) {
        f->bitmap_csum = true;
        int saved = fs->flags;
        fs->flags |= EXT2_FLAG_IGNORE_CSUM_ERRORS;
        e = ext2fs_read_block_bitmap(fs);
        fs->flags = saved;
    }
    return e ? ext_fail(err, wi, "cannot read the block bitmap", e) : ASR_OK;
}

/* One view of the filesystem: the head, the bitmap's runs and every block the metadata
 * references, into out. */
static int map_view(ext2_filsys fs, const struct ext_io *wi, struct asr_ranges *out, struct findings *f,
                    struct asr_error *err)
{
    int rc = read_bitmap(fs, wi, f, err);
    if (rc != ASR_OK)
        return rc;
    uint64_t head = (uint64_t)fs->super->s_first_data_block * fs->blocksize;
    struct asr_ranges bitmap = {0}, refs = {0};
    rc = record(&bitmap, 0, head > EXT_HEAD_BYTES ? head : EXT_HEAD_BYTES, err);
    if (rc == ASR_OK)
        rc = emit_bitmap(fs, fs->block_map, wi, &bitmap, err);
    ext2fs_block_bitmap map = NULL;
    if (rc == ASR_OK) {
        /* Sparse where it can be: the referenced blocks are mostly long extents. */
        int saved = fs->default_bitmap_type;
        fs->default_bitmap_type = EXT2FS_BMAP64_RBTREE;
        errcode_t e = ext2fs_allocate_block_bitmap(fs, "referenced blocks", &map);
        fs->default_bitmap_type = saved;
        if (e)
            rc = ext_fail(err, wi, "allocating a block bitmap", e);
    }
    struct ext_walk walk = {0};
    if (rc == ASR_OK)
        rc = ext_walk_refs(fs, wi, map, &walk, err);
    if (rc == ASR_OK)
        rc = emit_bitmap(fs, map, wi, &refs, err);
    if (map)
        ext2fs_free_block_bitmap(map);
    uint64_t bitmap_bytes = asr_ranges_bytes(&bitmap);
    *out = bitmap; /* the caller frees it, whatever happened */
    if (rc == ASR_OK)
        rc = unite(out, &refs, err);
    asr_ranges_free(&refs);
    if (rc == ASR_OK) {
        f->extra += asr_ranges_bytes(out) - bitmap_bytes;
        f->outside += walk.outside;
    }
    return rc;
}

/* blkid's names: ext4 as soon as a feature ext3 lacks is on, else ext3 with a journal. */
static const char *fs_name(struct ext2_super_block *s)
{
    if ((s->s_feature_ro_compat & ~(uint32_t)EXT3_RO_COMPAT_KNOWN) ||
        (s->s_feature_incompat & ~(uint32_t)EXT3_INCOMPAT_KNOWN))
        return "ext4";
    return ext2fs_has_feature_journal(s) ? "ext3" : "ext2";
}

static void fill_names(struct ext2_super_block *s, struct asr_usedmap *out)
{
    snprintf(out->fs_type, sizeof out->fs_type, "%s", fs_name(s));
    asr_guid_text(s->s_uuid, 0, out->fs_uuid);
    /* s_volume_name is NUL-padded but not NUL-terminated when all 16 bytes are used. */
    size_t n = strnlen((const char *)s->s_volume_name, EXT2_LABEL_LEN);
    snprintf(out->fs_label, sizeof out->fs_label, "%.*s", (int)n, (const char *)s->s_volume_name);
}

/* The filesystem as its journal's recovery will leave it, mapped too: the replay writes the
 * blocks the log names (captured, so the copy reads as its source even before recovery), and
 * the bitmaps and inodes it writes may use blocks the ones on disk do not show yet. */
static int map_replayed(const struct asr_window *w, ext2_filsys fs, const struct ext_io *wi,
                        struct asr_ranges *used, struct findings *f, struct asr_error *err)
{
    struct ext_replay r;
    int rc = ext_journal_replay(fs, wi, &r, err);
    if (rc != ASR_OK)
        return rc;
    f->transactions = r.transactions;
    f->named = asr_ranges_bytes(&r.named) / fs->blocksize;
    if (r.named.n) {
        uint64_t before = asr_ranges_bytes(used);
        struct ext_io io;
        ext2_filsys replayed;
        struct asr_ranges view = {0};
        struct asr_error why = {0};
        rc = ext_open_replayed(w, &r, &io, &replayed, &why);
        if (rc == ASR_OK) {
            struct findings g = {0};
            rc = map_view(replayed, &io, &view, &g, &why);
            ext2fs_close_free(&replayed);
        }
        if (rc != ASR_OK)
            asr_fail_public(err, rc, "ext: the filesystem as its journal would replay it: %s", why.msg);
        if (rc == ASR_OK)
            rc = unite(used, &view, err);
        if (rc == ASR_OK)
            rc = unite(used, &r.named, err);
        asr_ranges_free(&view);
        f->replay_extra = rc == ASR_OK ? asr_ranges_bytes(used) - before : 0;
    }
    ext_replay_free(&r);
    return rc;
}

/* ---- an empty journal's log ------------------------------------------------------------ */

/* Whether the state lets an empty journal's log go unread: cleanly unmounted (or frozen, which
 * flushes the journal and clears the recovery flag), no errors recorded, nothing to recover. */
static bool state_clean(struct ext2_super_block *s) /* libext2fs takes it non-const */
{
    return (s->s_state & EXT2_VALID_FS) && !(s->s_state & EXT2_ERROR_FS) &&
           !ext2fs_has_feature_journal_needs_recovery(s);
}

/* Moves an empty journal's log from used to cleared. A journal whose superblock or map fails its
 * checks keeps its log in used, read as before (the note says why); so does a log not wholly in
 * use, which a sound filesystem never has. */
static int clear_dead_log(ext2_filsys fs, const struct ext_io *wi, struct asr_usedmap *out, struct findings *f,
                          struct asr_error *err)
{
    struct asr_ranges log = {0}, rest = {0};
    struct asr_error why = {0};
    int rc = ext_journal_dead_log(fs, wi, &log, &why);
    if (rc == ASR_E_NOMEM)
        return asr_fail_public(err, rc, "%s", why.msg);
    if (rc != ASR_OK)
        snprintf(f->log_kept, sizeof f->log_kept, "%.150s", why.msg);
    if (rc == ASR_OK && log.n)
        rc = asr_ranges_minus(&out->used, &log, &rest);
    if (rc == ASR_E_NOMEM) {
        asr_ranges_free(&log);
        return asr_fail_public(err, rc, "ext: out of memory");
    }
    uint64_t bytes = asr_ranges_bytes(&log);
    if (rc == ASR_OK && bytes && asr_ranges_bytes(&out->used) - asr_ranges_bytes(&rest) == bytes) {
        asr_ranges_free(&out->used);
        out->used = rest;
        out->cleared = log;
        f->cleared = bytes;
        return ASR_OK;
    }
    if (rc == ASR_OK && bytes)
        snprintf(f->log_kept, sizeof f->log_kept, "the block bitmap marks part of it free");
    asr_ranges_free(&rest);
    asr_ranges_free(&log);
    return ASR_OK;
}

int asr_ext_cleared(const struct asr_window *w, struct asr_ranges *out, struct asr_error *err)
{
    *out = (struct asr_ranges){0};
    struct ext_io io;
    ext2_filsys fs;
    int rc = ext_open(w, &io, &fs, err);
    if (rc != ASR_OK)
        return rc;
    if (state_clean(fs->super))
        rc = ext_journal_dead_log(fs, &io, out, err);
    ext2fs_close_free(&fs);
    return rc;
}

/* Says what the map holds beyond the bitmap on disk, and why it looked ("" when nothing was found
 * on a clean filesystem). */
static void write_note(struct ext2_super_block *s, const struct findings *f, uint64_t bs, char *note, size_t n)
{
    size_t at = 0;
    note[0] = '\0';
#define NOTE(...) (at += (size_t)snprintf(note + at, at < n ? n - at : 0, __VA_ARGS__), at = at < n ? at : n)
    bool flagged = !(s->s_state & EXT2_VALID_FS) || (s->s_state & EXT2_ERROR_FS) || f->bitmap_csum;
    if (!(s->s_state & EXT2_VALID_FS))
        NOTE("not cleanly unmounted; ");
    if (s->s_state & EXT2_ERROR_FS)
        NOTE("superblock records errors; ");
    if (f->bitmap_csum)
        NOTE("a block bitmap fails its checksum; ");
    if (f->transactions)
        NOTE("journal to recover: %llu transactions naming %llu blocks, the filesystem as replayed mapped too "
             "(+%llu KiB); ",
             (unsigned long long)f->transactions, (unsigned long long)f->named,
             (unsigned long long)(f->replay_extra >> 10));
    else if (ext2fs_has_feature_journal_needs_recovery(s))
        NOTE("journal flagged for recovery but holds no transaction; ");
    if (f->extra)
        NOTE("%llu KiB (%llu blocks) that metadata references but the block bitmap marks free, captured too; ",
             (unsigned long long)(f->extra >> 10), (unsigned long long)(f->extra / bs));
    else if (flagged)
        NOTE("every block the metadata references is marked used in the block bitmap; ");
    if (f->outside)
        NOTE("%llu references to blocks outside the filesystem (nothing to capture); ", (unsigned long long)f->outside);
    if (f->cleared)
        NOTE("journal empty: its log, %llu KiB, captured as zeros without reading it (jbd2 never reads it); ",
             (unsigned long long)(f->cleared >> 10));
    else if (f->log_kept[0])
        NOTE("journal log captured as it is: %s; ", f->log_kept);
#undef NOTE
    if (at >= 2 && note[at - 2] == ';')
        note[at - 2] = '\0';
}

/* With the filesystem open and its structure checked: the map of what is on disk, and of what
 * the journal's recovery will leave when there is a journal to recover. */
static int map_open(const struct asr_window *w, ext2_filsys fs, const struct ext_io *wi, struct asr_usedmap *out,
                    struct asr_error *err)
{
    struct findings f = {0};
    int rc = map_view(fs, wi, &out->used, &f, err);
    if (rc == ASR_OK && ext2fs_has_feature_journal_needs_recovery(fs->super))
        rc = map_replayed(w, fs, wi, &out->used, &f, err);
    if (rc == ASR_OK && state_clean(fs->super) && !f.bitmap_csum && !f.extra)
        rc = clear_dead_log(fs, wi, out, &f, err);
    if (rc != ASR_OK)
        return rc;
    out->block_size = (uint32_t)EXT2_CLUSTER_SIZE(fs->super);
    fill_names(fs->super, out);
    char note[sizeof out->note - 8];
    write_note(fs->super, &f, fs->blocksize, note, sizeof note);
    if (note[0])
        snprintf(out->note, sizeof out->note, "ext: %s", note);
    /* A journal to replay is how a mounted or crashed ext3/4 always looks: a note, not damage. */
    out->damaged = !(fs->super->s_state & EXT2_VALID_FS) || (fs->super->s_state & EXT2_ERROR_FS) || f.bitmap_csum ||
                   f.extra;
    return ASR_OK;
}

int asr_ext_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    /* No read limit: the map reads each bitmap block, inode table block in use and tree block
     * once, and check_super capped the number of groups. */
    struct ext_io io;
    ext2_filsys fs;
    int rc = ext_open(w, &io, &fs, err);
    if (rc != ASR_OK)
        return rc;
    rc = map_open(w, fs, &io, out, err);
    ext2fs_close_free(&fs);
    if (rc != ASR_OK) {
        asr_ranges_free(&out->used);
        asr_ranges_free(&out->cleared);
        out->note[0] = '\0';
    }
    return rc;
}
