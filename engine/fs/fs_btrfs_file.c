/* Small files read by path from btrfs (fs_file.h), on the btrfs core (fs_btrfs_internal.h:
 * superblock, chunk map, checked tree blocks, bounded searches) and btrfs_items.h's parsing.
 *
 * A path is walked from the root directory of the subvolume the volume was opened at (the top
 * level, id 5, unless fs_btrfs_vol_open_subvol says otherwise), one name at a time: the
 * directory's DIR_ITEM for the name's hash, then the inode item the entry's location names. An
 * entry whose location is a ROOT_ITEM is a subvolume, crossed into at its own tree's root
 * directory, as the kernel shows it when the top level is mounted (subvolid=5): Fedora's root
 * is read there as /root/etc/fstab. Symbolic links are followed, absolute ones from the opened
 * subvolume's root, at most FOLLOW_MAX of them in one lookup; ".." goes back to the directory
 * the walk came from (a directory has one parent). File data comes from the inode's
 * EXTENT_DATA items: inline, regular and preallocated extents, zlib, lzo and zstd compressed
 * (btrfs_decomp.h), holes and what no extent covers reading as zeros; the file's size is
 * checked against the caller's cap before anything is read, and the reads are bounded by a
 * budget from that size, so extent items that repeat or overlap cannot make a read run on. */
#include "btrfs_decomp.h"
#include "btrfs_items.h"
#include "fs_btrfs_internal.h"
#include "fs_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FOLLOW_MAX 40          /* symbolic links in one lookup, as Linux's MAXSYMLINKS */
#define SYMLINK_MAX 4095u      /* a btrfs symlink's target is one inline extent of a sector at most */
#define WALK_MAX_DEPTH 1024u   /* directories on the way: paths and link targets bound it already */
#define WALK_MAX_BYTES 65536u  /* the names still to walk, link targets spliced in */
#define SUBVOL_MAX 65536u      /* subvolumes listed: snapper keeps hundreds, not this */
#define SUBVOL_DEPTH_MAX 256u  /* subvolumes nested in each other, directories on one's way */

struct btrfs_vol {
    struct fs_vol base; /* first: a struct fs_vol * points here */
    struct btrfs_fs *fs;
    struct btrfs_root top; /* the subvolume whose root directory is "/" */
};

/* An inode of one subvolume, as the walk met it. */
struct node {
    struct btrfs_root tree;
    uint64_t ino;
    struct btrfs_inode inode;
};

/* ---- core calls, their statuses made the reader's ------------------------------------------ */

/* The core's ASR_E_LIMIT is a search that read too many blocks: metadata repeating itself, not
 * a file over the caller's cap. BTRFS_E_ELSEWHERE stays inside engine/fs: a block on another
 * device of the filesystem is something this reader cannot read. */
static int core_rc(int rc, struct asr_error *err)
{
    int to = rc == ASR_E_LIMIT ? ASR_E_CORRUPT : rc == BTRFS_E_ELSEWHERE ? ASR_E_UNSUPPORTED : rc;
    if (to != rc && err)
        err->code = (enum asr_status)to;
    return to;
}

static int search(struct btrfs_vol *v, const struct btrfs_root *tree, const struct btrfs_key *min,
                  const struct btrfs_key *max, btrfs_item_fn fn, void *ctx, struct asr_error *err)
{
    return core_rc(btrfs_search(v->fs, tree->bytenr, tree->level, min, max, fn, ctx, err), err);
}

static int find_subvol(struct btrfs_vol *v, uint64_t id, struct btrfs_root *out, bool *found, struct asr_error *err)
{
    return core_rc(btrfs_find_root(v->fs, id, out, found, err), err);
}

/* ---- inodes and directory entries ---------------------------------------------------------- */

struct inode_ctx {
    uint64_t tree;
    struct btrfs_inode *out;
    bool found;
};

static int take_inode(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct inode_ctx *c = ctx;
    c->found = true;
    int rc = btrfs_parse_inode(it, c->tree, c->out, err);
    return rc == ASR_OK ? BTRFS_STOP : rc;
}

/* n->inode for n->tree and n->ino. The placeholder a snapshot holds for a subvolume nested in
 * the one it copied (subvol_linked_here) has no inode item: an empty directory. */
static int read_inode(struct btrfs_vol *v, struct node *n, const char *path, struct asr_error *err)
{
    if (n->ino == BTRFS_EMPTY_SUBVOL_DIR_OBJECTID) {
        n->inode = (struct btrfs_inode){.mode = S_IFDIR | 0755, .nlink = 1};
        return ASR_OK;
    }
    struct btrfs_key k = {n->ino, BTRFS_INODE_ITEM_KEY, 0};
    struct inode_ctx c = {n->tree.objectid, &n->inode, false};
    int rc = search(v, &n->tree, &k, &k, take_inode, &c, err);
    if (rc == ASR_OK && !c.found)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %.200s: inode %llu of tree %llu has no inode item", path,
                               (unsigned long long)n->ino, (unsigned long long)n->tree.objectid);
    return rc;
}

struct name_ctx {
    uint64_t tree;
    const char *name;
    size_t len;
    struct btrfs_dir_entry e;
    bool found;
};

/* The DIR_ITEM of one hash: the entry with the name wanted, among those sharing the hash. */
static int match_name(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct name_ctx *c = ctx;
    uint32_t pos = 0;
    for (;;) {
        bool done;
        int rc = btrfs_dir_entry_next(it, c->tree, &pos, &c->e, &done, err);
        if (rc != ASR_OK || done)
            return rc;
        if (c->e.name_len == c->len && !memcmp(c->e.name, c->name, c->len)) {
            c->found = true;
            return BTRFS_STOP;
        }
    }
}

struct ref_ctx {
    uint64_t dirid;
    const char *name;
    size_t len;
    bool linked;
};

static int match_root_ref(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct ref_ctx *c = ctx;
    struct btrfs_root_ref r;
    int rc = btrfs_parse_root_ref(it, &r, err);
    if (rc == ASR_OK)
        c->linked = r.dirid == c->dirid && r.name_len == c->len && !memcmp(r.name, c->name, c->len);
    return rc == ASR_OK ? BTRFS_STOP : rc;
}

/* Whether subvolume id is linked at name in directory dir: the root tree's ROOT_REF from dir's
 * subvolume says so. A snapshot copies its parent's entries for the subvolumes nested in it,
 * but not their ROOT_REFs: the kernel shows each as an empty directory, and so does this. */
static int subvol_linked_here(struct btrfs_vol *v, const struct node *dir, uint64_t id, const char *name, size_t len,
                              bool *linked, struct asr_error *err)
{
    struct btrfs_root rt = {.objectid = BTRFS_ROOT_TREE_OBJECTID, .bytenr = v->fs->root, .level = v->fs->root_level};
    struct ref_ctx c = {dir->ino, name, len, false};
    struct btrfs_key k = {dir->tree.objectid, BTRFS_ROOT_REF_KEY, id};
    int rc = search(v, &rt, &k, &k, match_root_ref, &c, err);
    *linked = c.linked;
    return rc;
}

/* Where the entry name of directory dir leads, as a node (its inode read); *found false when
 * the directory holds no such name. */
static int lookup_name(struct btrfs_vol *v, const struct node *dir, const char *name, size_t len, struct node *out,
                       bool *found, const char *path, struct asr_error *err)
{
    *found = false;
    if (dir->ino == BTRFS_EMPTY_SUBVOL_DIR_OBJECTID)
        return ASR_OK;
    struct name_ctx c = {.tree = dir->tree.objectid, .name = name, .len = len};
    struct btrfs_key k = {dir->ino, BTRFS_DIR_ITEM_KEY, btrfs_name_hash((const uint8_t *)name, len)};
    int rc = search(v, &dir->tree, &k, &k, match_name, &c, err);
    if (rc != ASR_OK || !c.found)
        return rc;
    const struct btrfs_key *at = &c.e.location;
    if (at->type == BTRFS_ROOT_ITEM_KEY) { /* a subvolume: its tree's root directory */
        bool linked = false, there = false;
        rc = subvol_linked_here(v, dir, at->objectid, name, len, &linked, err);
        if (rc == ASR_OK && linked)
            rc = find_subvol(v, at->objectid, &out->tree, &there, err);
        if (rc != ASR_OK)
            return rc;
        if (linked && !there)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: %.200s: the entry names subvolume %llu, which has no root item", path,
                                   (unsigned long long)at->objectid);
        out->tree = linked ? out->tree : dir->tree;
        out->ino = linked ? out->tree.root_dirid : BTRFS_EMPTY_SUBVOL_DIR_OBJECTID;
    } else if (at->type == BTRFS_INODE_ITEM_KEY) {
        out->tree = dir->tree;
        out->ino = at->objectid;
    } else {
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %.200s: the entry's location has key type %u", path,
                               at->type);
    }
    *found = true;
    return read_inode(v, out, path, err);
}

/* ---- file data ----------------------------------------------------------------------------- */

struct data_ctx {
    struct btrfs_vol *v;
    const char *path;
    uint64_t tree;
    uint8_t *buf;
    uint64_t size;   /* the file's size: bytes past it are not read */
    uint64_t next;   /* where the previous extent ended: extents do not overlap */
    uint64_t budget; /* bytes still to be read from the disk for this file */
    uint8_t *cbuf, *dbuf; /* a compressed extent as stored, and decompressed */
};

static int extent_fail(const struct data_ctx *c, const struct btrfs_item *it, struct asr_error *err, int code,
                       const char *what)
{
    char where[160];
    btrfs_item_where(it, c->tree, where, sizeof where);
    return asr_fail_public(err, code, "btrfs: %.200s: %s: %s", c->path, where, what);
}

static int spend(struct data_ctx *c, const struct btrfs_item *it, uint64_t n, struct asr_error *err)
{
    if (n > c->budget)
        return extent_fail(c, it, err, ASR_E_CORRUPT, "the file's extents read far more than its size");
    c->budget -= n;
    return ASR_OK;
}

/* Decompresses n stored bytes at in into c->dbuf (ram bytes, zeros past what the data gives). */
static int decompress(struct data_ctx *c, const struct btrfs_item *it, const struct btrfs_file_extent *x,
                      const uint8_t *in, size_t n, struct asr_error *err)
{
    char where[200];
    btrfs_item_where(it, c->tree, where, sizeof where);
    size_t got;
    int rc = btrfs_decompress(x->compression, in, n, c->dbuf, (size_t)x->ram_bytes, &got, c->v->fs->sectorsize, where,
                              err);
    if (rc == ASR_OK)
        memset(c->dbuf + got, 0, (size_t)x->ram_bytes - got);
    return rc;
}

/* Copies bytes [from, from + len) of a decompressed extent to file offset off. */
static int place_decompressed(struct data_ctx *c, const struct btrfs_item *it, const struct btrfs_file_extent *x,
                              uint64_t from, uint64_t off, uint64_t len, struct asr_error *err)
{
    if (from > x->ram_bytes || len > x->ram_bytes - from)
        return extent_fail(c, it, err, ASR_E_CORRUPT, "the extent's range lies outside its decompressed bytes");
    memcpy(c->buf + off, c->dbuf + from, (size_t)len);
    return ASR_OK;
}

static int read_inline(struct data_ctx *c, const struct btrfs_item *it, const struct btrfs_file_extent *x,
                       uint64_t off, struct asr_error *err)
{
    uint64_t room = c->size - off;
    if (x->compression == BTRFS_COMPRESS_NONE) {
        uint64_t n = x->inline_len < room ? x->inline_len : room;
        memcpy(c->buf + off, x->inline_data, (size_t)n);
        c->next = off + x->inline_len;
        return ASR_OK;
    }
    if (x->ram_bytes > BTRFS_MAX_UNCOMPRESSED)
        return extent_fail(c, it, err, ASR_E_CORRUPT, "an inline extent larger than a compressed extent can be");
    int rc = decompress(c, it, x, x->inline_data, x->inline_len, err);
    if (rc == ASR_OK)
        rc = place_decompressed(c, it, x, 0, off, x->ram_bytes < room ? x->ram_bytes : room, err);
    c->next = off + x->ram_bytes;
    return rc;
}

static int read_regular(struct data_ctx *c, const struct btrfs_item *it, const struct btrfs_file_extent *x,
                        uint64_t off, struct asr_error *err)
{
    if (!x->num_bytes)
        return extent_fail(c, it, err, ASR_E_CORRUPT, "an extent of 0 bytes");
    uint64_t room = c->size - off, n = x->num_bytes < room ? x->num_bytes : room;
    c->next = x->num_bytes > UINT64_MAX - off ? UINT64_MAX : off + x->num_bytes;
    if (x->type == BTRFS_FILE_EXTENT_PREALLOC || x->disk_bytenr == 0)
        return ASR_OK; /* allocated unwritten, or a hole: zeros, as the buffer holds */
    int rc;
    if (x->compression == BTRFS_COMPRESS_NONE) {
        if (x->offset > UINT64_MAX - x->disk_bytenr)
            return extent_fail(c, it, err, ASR_E_CORRUPT, "the extent's offset runs past the address space");
        if ((rc = spend(c, it, n, err)) != ASR_OK)
            return rc;
        return core_rc(btrfs_read_logical(c->v->fs, "file data", x->disk_bytenr + x->offset, c->buf + off, (size_t)n,
                                          err),
                       err);
    }
    if (x->disk_num_bytes > BTRFS_MAX_UNCOMPRESSED || !x->disk_num_bytes || x->ram_bytes > BTRFS_MAX_UNCOMPRESSED)
        return extent_fail(c, it, err, ASR_E_CORRUPT, "a compressed extent larger than btrfs writes them");
    if ((rc = spend(c, it, x->disk_num_bytes, err)) != ASR_OK)
        return rc;
    rc = core_rc(btrfs_read_logical(c->v->fs, "compressed file data", x->disk_bytenr, c->cbuf,
                                    (size_t)x->disk_num_bytes, err),
                 err);
    if (rc == ASR_OK)
        rc = decompress(c, it, x, c->cbuf, (size_t)x->disk_num_bytes, err);
    if (rc == ASR_OK)
        rc = place_decompressed(c, it, x, x->offset, off, n, err);
    return rc;
}

static int take_extent(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct data_ctx *c = ctx;
    uint64_t off = it->key.offset;
    if (off >= c->size)
        return BTRFS_STOP; /* preallocated past the end, or nothing more of the file */
    if (off < c->next)
        return extent_fail(c, it, err, ASR_E_CORRUPT, "the extent overlaps the one before it");
    struct btrfs_file_extent x;
    int rc = btrfs_parse_file_extent(it, c->tree, &x, err);
    if (rc != ASR_OK)
        return rc;
    /* Linux's btrfs writes no other compression, and no encryption or encoding at all. */
    if (x.encryption || x.other_encoding || x.compression > BTRFS_COMPRESS_ZSTD) {
        char what[96];
        snprintf(what, sizeof what, "compression %u, encryption %u, encoding %u (btrfs writes 0..3, 0, 0)",
                 x.compression, x.encryption, x.other_encoding);
        return extent_fail(c, it, err, ASR_E_CORRUPT, what);
    }
    return x.type == BTRFS_FILE_EXTENT_INLINE ? read_inline(c, it, &x, off, err) : read_regular(c, it, &x, off, err);
}

/* The data of n (a regular file or a symbolic link), at most cap bytes, into *out (malloc'd,
 * NUL-terminated past *len). */
static int read_data(struct btrfs_vol *v, const struct node *n, size_t cap, const char *path, uint8_t **out,
                     size_t *len, struct asr_error *err)
{
    uint64_t size = n->inode.size;
    if (size > cap)
        return asr_fail_public(err, ASR_E_LIMIT, "btrfs: %.200s: %llu bytes, over the %zu-byte limit", path,
                               (unsigned long long)size, cap);
    struct data_ctx c = {.v = v, .path = path, .tree = n->tree.objectid, .size = size,
                         .budget = 8 * size + (8u << 20)};
    c.buf = calloc(1, (size_t)size + 1);
    c.cbuf = malloc(BTRFS_MAX_UNCOMPRESSED);
    c.dbuf = malloc(BTRFS_MAX_UNCOMPRESSED);
    int rc = ASR_OK;
    if (!c.buf || !c.cbuf || !c.dbuf)
        rc = asr_fail_public(err, ASR_E_NOMEM, "btrfs: %.200s: out of memory for %llu bytes", path,
                             (unsigned long long)size);
    struct btrfs_key min = {n->ino, BTRFS_EXTENT_DATA_KEY, 0}, max = {n->ino, BTRFS_EXTENT_DATA_KEY, UINT64_MAX};
    if (rc == ASR_OK && size)
        rc = search(v, &n->tree, &min, &max, take_extent, &c, err);
    free(c.cbuf);
    free(c.dbuf);
    if (rc != ASR_OK) {
        free(c.buf);
        return rc;
    }
    *out = c.buf;
    *len = (size_t)size;
    return ASR_OK;
}

/* ---- the walk ------------------------------------------------------------------------------ */

/* The names still to walk (link targets spliced in front), and the directories walked. */
struct walk {
    char *rest;
    size_t at;
    struct node *stack;
    size_t depth;
    int links;
};

/* Puts target, then what is left of the path, in w->rest. */
static int splice(struct walk *w, const char *target, size_t tlen, const char *path, struct asr_error *err)
{
    size_t left = strlen(w->rest + w->at);
    if (tlen + 1 + left + 1 > WALK_MAX_BYTES)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %.200s: symbolic links make the path over %u bytes", path,
                               WALK_MAX_BYTES);
    char *r = malloc(tlen + 1 + left + 1);
    if (!r)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: %.200s: out of memory", path);
    memcpy(r, target, tlen);
    r[tlen] = '/';
    memcpy(r + tlen + 1, w->rest + w->at, left + 1);
    free(w->rest);
    w->rest = r;
    w->at = 0;
    return ASR_OK;
}

static int follow(struct btrfs_vol *v, struct walk *w, const struct node *link, const char *path,
                  struct asr_error *err)
{
    if (++w->links > FOLLOW_MAX)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %.200s: more than %d symbolic links (a loop?)", path,
                               FOLLOW_MAX);
    uint8_t *target;
    size_t tlen;
    int rc = read_data(v, link, SYMLINK_MAX, path, &target, &tlen, err);
    if (rc == ASR_E_LIMIT && err)
        err->code = ASR_E_CORRUPT;
    if (rc != ASR_OK)
        return rc == ASR_E_LIMIT ? ASR_E_CORRUPT : rc;
    if (!tlen || memchr(target, '\0', tlen)) {
        free(target);
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %.200s: a symbolic link with an %s target", path,
                               tlen ? "unreadable" : "empty");
    }
    if (target[0] == '/')
        w->depth = 1; /* absolute: from the opened subvolume's root */
    rc = splice(w, (const char *)target, tlen, path, err);
    free(target);
    return rc;
}

/* The inode at path (every symbolic link on the way and at its end followed) into *out. */
static int resolve(struct btrfs_vol *v, const char *path, struct node *out, struct asr_error *err)
{
    struct walk w = {.rest = strdup(path), .stack = malloc(WALK_MAX_DEPTH * sizeof *w.stack)};
    int rc = ASR_OK;
    if (!w.rest || !w.stack)
        rc = asr_fail_public(err, ASR_E_NOMEM, "btrfs: %.200s: out of memory", path);
    if (rc == ASR_OK) {
        w.stack[0] = (struct node){.tree = v->top, .ino = v->top.root_dirid};
        w.depth = 1;
        rc = read_inode(v, &w.stack[0], path, err);
    }
    while (rc == ASR_OK) {
        while (w.rest[w.at] == '/')
            w.at++;
        if (!w.rest[w.at])
            break;
        const char *name = w.rest + w.at;
        size_t len = strcspn(name, "/");
        w.at += len;
        if (len == 1 && name[0] == '.')
            continue;
        const struct node *dir = &w.stack[w.depth - 1];
        if (!S_ISDIR(dir->inode.mode)) {
            rc = asr_fail_public(err, FS_E_NOT_FOUND, "btrfs: %.200s: not found (a file where a directory must be)",
                                 path);
            break;
        }
        if (len == 2 && name[0] == '.' && name[1] == '.') {
            w.depth -= w.depth > 1;
            continue;
        }
        if (w.depth == WALK_MAX_DEPTH) {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "btrfs: %.200s: more than %u directories deep", path,
                                 WALK_MAX_DEPTH);
            break;
        }
        bool found = false;
        struct node next;
        if (len <= FS_NAME_MAX)
            rc = lookup_name(v, dir, name, len, &next, &found, path, err);
        if (rc == ASR_OK && !found)
            rc = asr_fail_public(err, FS_E_NOT_FOUND, "btrfs: %.200s: not found", path);
        else if (rc == ASR_OK && S_ISLNK(next.inode.mode))
            rc = follow(v, &w, &next, path, err);
        else if (rc == ASR_OK)
            w.stack[w.depth++] = next;
    }
    if (rc == ASR_OK)
        *out = w.stack[w.depth - 1];
    free(w.rest);
    free(w.stack);
    return rc;
}

/* ---- the volume's operations --------------------------------------------------------------- */

/* Puts the path in a message that does not name it yet (one of the core's, or an item's that
 * btrfs_items.c wrote): "btrfs: /etc/fstab: tree 256 leaf ... ". */
static int name_path(int rc, const char *path, struct asr_error *err)
{
    if (rc == ASR_OK || !err || strstr(err->msg, path))
        return rc;
    const char *rest = strncmp(err->msg, "btrfs: ", 7) ? err->msg : err->msg + 7;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "btrfs: %.200s: %.300s", path, rest);
    memcpy(err->msg, msg, sizeof msg);
    return rc;
}

static int btrfs_vol_read(struct fs_vol *base, const char *path, size_t cap, uint8_t **out, size_t *len,
                          struct asr_error *err)
{
    struct btrfs_vol *v = (struct btrfs_vol *)base;
    struct node n;
    int rc = resolve(v, path, &n, err);
    if (rc != ASR_OK)
        return name_path(rc, path, err);
    if (!S_ISREG(n.inode.mode))
        return asr_fail_public(err, FS_E_NOT_FILE, "btrfs: %.200s: %s, not a regular file", path,
                               S_ISDIR(n.inode.mode) ? "a directory" : "a special file");
    return name_path(read_data(v, &n, cap, path, out, len, err), path, err);
}

struct list_ctx {
    uint64_t tree;
    fs_dir_fn fn;
    void *ctx;
};

static int list_entry(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct list_ctx *c = ctx;
    if (it->key.type != BTRFS_DIR_INDEX_KEY)
        return ASR_OK;
    uint32_t pos = 0;
    bool done;
    struct btrfs_dir_entry e;
    int rc = btrfs_dir_entry_next(it, c->tree, &pos, &e, &done, err);
    if (rc != ASR_OK || done)
        return rc;
    if (memchr(e.name, '\0', e.name_len))
        return ASR_OK; /* no path names it */
    char name[FS_NAME_MAX + 1];
    memcpy(name, e.name, e.name_len);
    name[e.name_len] = '\0';
    enum fs_kind kind = e.type == BTRFS_FT_REG_FILE  ? FS_KIND_FILE
                        : e.type == BTRFS_FT_DIR     ? FS_KIND_DIR
                        : e.type == BTRFS_FT_SYMLINK ? FS_KIND_SYMLINK
                                                     : FS_KIND_OTHER;
    return c->fn(c->ctx, name, kind) ? BTRFS_STOP : ASR_OK;
}

static int btrfs_vol_list(struct fs_vol *base, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err)
{
    struct btrfs_vol *v = (struct btrfs_vol *)base;
    struct node n;
    int rc = resolve(v, path, &n, err);
    if (rc != ASR_OK)
        return name_path(rc, path, err);
    if (!S_ISDIR(n.inode.mode))
        return asr_fail_public(err, FS_E_NOT_DIR, "btrfs: %.200s: not a directory", path);
    if (n.ino == BTRFS_EMPTY_SUBVOL_DIR_OBJECTID)
        return ASR_OK;
    struct list_ctx c = {n.tree.objectid, fn, ctx};
    struct btrfs_key min = {n.ino, BTRFS_DIR_INDEX_KEY, 0}, max = {n.ino, BTRFS_DIR_INDEX_KEY, UINT64_MAX};
    return name_path(search(v, &n.tree, &min, &max, list_entry, &c, err), path, err);
}

static void btrfs_vol_close(struct fs_vol *base)
{
    struct btrfs_vol *v = (struct btrfs_vol *)base;
    btrfs_close(v->fs);
    free(v);
}

static const struct fs_vol_ops btrfs_vol_ops = {btrfs_vol_read, btrfs_vol_list, btrfs_vol_close};

/* ---- subvolumes ---------------------------------------------------------------------------- */

struct default_ctx {
    uint64_t id;
};

static int take_default(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct default_ctx *c = ctx;
    uint32_t pos = 0;
    for (;;) {
        bool done;
        struct btrfs_dir_entry e;
        int rc = btrfs_dir_entry_next(it, BTRFS_ROOT_TREE_OBJECTID, &pos, &e, &done, err);
        if (rc != ASR_OK || done)
            return rc;
        if (e.name_len == 7 && !memcmp(e.name, "default", 7)) {
            c->id = e.location.objectid;
            return BTRFS_STOP;
        }
    }
}

/* The default subvolume's id: the root tree directory's entry "default" (set-default moves it),
 * the top level when there is none. */
static int default_subvol(struct btrfs_vol *v, uint64_t *id, struct asr_error *err)
{
    struct btrfs_root rt = {.objectid = BTRFS_ROOT_TREE_OBJECTID, .bytenr = v->fs->root, .level = v->fs->root_level};
    struct default_ctx c = {BTRFS_FS_TREE_OBJECTID};
    struct btrfs_key k = {BTRFS_ROOT_TREE_DIR_OBJECTID, BTRFS_DIR_ITEM_KEY,
                          btrfs_name_hash((const uint8_t *)"default", 7)};
    int rc = search(v, &rt, &k, &k, take_default, &c, err);
    *id = c.id;
    return rc;
}

static int open_at(const struct asr_window *w, uint64_t subvol, struct btrfs_vol **out, struct asr_error *err)
{
    *out = NULL;
    struct btrfs_vol *v = calloc(1, sizeof *v);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory");
    v->base.ops = &btrfs_vol_ops;
    int rc = core_rc(btrfs_open(w, &v->fs, err), err);
    if (rc == ASR_OK && subvol == FS_BTRFS_DEFAULT)
        rc = default_subvol(v, &subvol, err);
    bool found = false;
    if (rc == ASR_OK)
        rc = find_subvol(v, subvol, &v->top, &found, err);
    if (rc == ASR_OK && !found)
        rc = asr_fail_public(err, subvol == BTRFS_FS_TREE_OBJECTID ? ASR_E_CORRUPT : FS_E_NOT_FOUND,
                             "btrfs: subvolume %llu: not found", (unsigned long long)subvol);
    if (rc != ASR_OK) {
        btrfs_close(v->fs);
        free(v);
        return rc;
    }
    *out = v;
    return ASR_OK;
}

int fs_btrfs_vol_open_subvol(const struct asr_window *w, uint64_t subvol, struct fs_vol **out, struct asr_error *err)
{
    struct btrfs_vol *v;
    int rc = open_at(w, subvol, &v, err);
    *out = rc == ASR_OK ? &v->base : NULL;
    return rc;
}

int fs_btrfs_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err)
{
    return fs_btrfs_vol_open_subvol(w, BTRFS_FS_TREE_OBJECTID, out, err);
}

/* What ROOT_BACKREF says of each subvolume: where its parent holds it. */
struct backref {
    uint64_t id, parent, dirid;
    char name[FS_NAME_MAX + 1];
};

struct backrefs {
    struct backref *v;
    size_t n, cap;
};

static int take_backref(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct backrefs *b = ctx;
    if (it->key.type != BTRFS_ROOT_BACKREF_KEY)
        return ASR_OK;
    struct btrfs_root_ref r;
    int rc = btrfs_parse_root_ref(it, &r, err);
    if (rc != ASR_OK)
        return rc;
    if (b->n == b->cap) {
        if (b->cap >= SUBVOL_MAX)
            return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: the root tree lists more than %u subvolumes",
                                   SUBVOL_MAX);
        size_t cap = b->cap ? 2 * b->cap : 16;
        struct backref *nv = realloc(b->v, cap * sizeof *nv);
        if (!nv)
            return asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory for the subvolume list");
        b->v = nv;
        b->cap = cap;
    }
    struct backref *e = &b->v[b->n++];
    *e = (struct backref){.id = it->key.objectid, .parent = it->key.offset, .dirid = r.dirid};
    memcpy(e->name, r.name, r.name_len);
    e->name[r.name_len] = '\0';
    return ASR_OK;
}

/* Prepends "/name" to the path being built backwards at buf[*at..]. */
static int prepend(char *buf, size_t *at, const uint8_t *name, size_t len, struct asr_error *err)
{
    if (len + 1 > *at)
        return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: a subvolume's path is over %u bytes", WALK_MAX_BYTES);
    *at -= len;
    memcpy(buf + *at, name, len);
    buf[--*at] = '/';
    return ASR_OK;
}

struct iref_ctx {
    uint64_t tree, parent;
    uint8_t name[FS_NAME_MAX];
    uint16_t len;
    bool found;
};

static int take_iref(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    struct iref_ctx *c = ctx;
    uint32_t pos = 0;
    uint64_t index;
    const uint8_t *name;
    bool done;
    int rc = btrfs_inode_ref_next(it, c->tree, &pos, &index, &name, &c->len, &done, err);
    if (rc != ASR_OK || done)
        return rc;
    memcpy(c->name, name, c->len);
    c->parent = it->key.offset;
    c->found = true;
    return BTRFS_STOP;
}

/* Prepends the path of directory dirid inside subvolume id (its INODE_REFs up to the root). */
static int prepend_dir(struct btrfs_vol *v, uint64_t id, uint64_t dirid, char *buf, size_t *at,
                       struct asr_error *err)
{
    struct btrfs_root tree;
    bool found;
    int rc = find_subvol(v, id, &tree, &found, err);
    if (rc == ASR_OK && !found)
        rc = asr_fail_public(err, ASR_E_CORRUPT, "btrfs: subvolume %llu holds subvolumes but has no root item",
                             (unsigned long long)id);
    for (unsigned steps = 0; rc == ASR_OK && dirid != tree.root_dirid; steps++) {
        if (steps == SUBVOL_DEPTH_MAX)
            return asr_fail_public(err, ASR_E_CORRUPT,
                                   "btrfs: subvolume %llu: directory %llu is over %u levels deep (a loop?)",
                                   (unsigned long long)id, (unsigned long long)dirid, SUBVOL_DEPTH_MAX);
        struct iref_ctx c = {.tree = id};
        struct btrfs_key min = {dirid, BTRFS_INODE_REF_KEY, 0}, max = {dirid, BTRFS_INODE_REF_KEY, UINT64_MAX};
        rc = search(v, &tree, &min, &max, take_iref, &c, err);
        if (rc == ASR_OK && !c.found)
            return asr_fail_public(err, ASR_E_CORRUPT, "btrfs: subvolume %llu: directory %llu has no inode reference",
                                   (unsigned long long)id, (unsigned long long)dirid);
        if (rc == ASR_OK)
            rc = prepend(buf, at, c.name, c.len, err);
        dirid = c.parent;
    }
    return rc;
}

/* The first backref of subvolume id: they were collected in key order, by id. */
static const struct backref *backref_of(const struct backrefs *b, uint64_t id)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->n && b->v[lo].id == id ? &b->v[lo] : NULL;
}

/* Subvolume id's path from the top level, "/a/b", into *out (malloc'd). */
static int subvol_path(struct btrfs_vol *v, const struct backrefs *b, uint64_t id, char **out, struct asr_error *err)
{
    char *buf = malloc(WALK_MAX_BYTES);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory");
    size_t at = WALK_MAX_BYTES - 1;
    buf[at] = '\0';
    int rc = ASR_OK;
    for (unsigned steps = 0; rc == ASR_OK && id != BTRFS_FS_TREE_OBJECTID; steps++) {
        const struct backref *r = backref_of(b, id);
        if (steps == SUBVOL_DEPTH_MAX || !r) {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "btrfs: subvolume %llu: %s", (unsigned long long)id,
                                 r ? "nested over 256 deep (a loop?)" : "no reference from a parent subvolume");
            break;
        }
        rc = prepend(buf, &at, (const uint8_t *)r->name, strlen(r->name), err);
        if (rc == ASR_OK)
            rc = prepend_dir(v, r->parent, r->dirid, buf, &at, err);
        id = r->parent;
    }
    if (rc == ASR_OK && !buf[at])
        buf[--at] = '/';
    if (rc == ASR_OK && !(*out = strdup(buf + at)))
        rc = asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory");
    free(buf);
    return rc;
}

void fs_btrfs_subvols_free(struct fs_btrfs_subvol *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i].path);
    free(s);
}

int fs_btrfs_subvols(const struct asr_window *w, struct fs_btrfs_subvol **out, size_t *n, struct asr_error *err)
{
    *out = NULL;
    *n = 0;
    struct btrfs_vol *v;
    int rc = open_at(w, BTRFS_FS_TREE_OBJECTID, &v, err);
    if (rc != ASR_OK)
        return rc;
    uint64_t def = 0;
    struct backrefs b = {0};
    struct btrfs_root rt = {.objectid = BTRFS_ROOT_TREE_OBJECTID, .bytenr = v->fs->root, .level = v->fs->root_level};
    struct btrfs_key min = {BTRFS_FIRST_FREE_OBJECTID, BTRFS_ROOT_BACKREF_KEY, 0},
                     max = {BTRFS_LAST_FREE_OBJECTID, BTRFS_ROOT_BACKREF_KEY, UINT64_MAX};
    rc = default_subvol(v, &def, err);
    if (rc == ASR_OK)
        rc = search(v, &rt, &min, &max, take_backref, &b, err);
    struct fs_btrfs_subvol *s = rc == ASR_OK ? calloc(b.n + 1, sizeof *s) : NULL;
    if (rc == ASR_OK && !s)
        rc = asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory for the subvolume list");
    size_t k = 0;
    if (rc == ASR_OK) {
        s[k] = (struct fs_btrfs_subvol){.id = BTRFS_FS_TREE_OBJECTID, .is_default = def == BTRFS_FS_TREE_OBJECTID};
        rc = (s[k].path = strdup("/")) ? ASR_OK : asr_fail_public(err, ASR_E_NOMEM, "btrfs: out of memory");
        k += rc == ASR_OK;
    }
    for (size_t i = 0; rc == ASR_OK && i < b.n; i++) {
        if (backref_of(&b, b.v[i].id) != &b.v[i])
            continue; /* one path per subvolume (a second backref is damage) */
        s[k] = (struct fs_btrfs_subvol){.id = b.v[i].id, .parent = b.v[i].parent, .is_default = def == b.v[i].id};
        rc = subvol_path(v, &b, b.v[i].id, &s[k].path, err);
        k += rc == ASR_OK;
    }
    free(b.v);
    btrfs_vol_close(&v->base);
    if (rc != ASR_OK) {
        fs_btrfs_subvols_free(s, k);
        return rc;
    }
    *out = s;
    *n = k;
    return ASR_OK;
}
