/* Small files read by path from ext2/3/4 (fs_file.h), with libext2fs over the window I/O manager
 * (fs_ext_io.c), as analyze.c's content check reads directories: ext2fs_namei_follow resolves
 * the path from the root, following symbolic links (absolute ones from the filesystem's own root,
 * at most 8 deep), and ext2fs_file_read reads the data whatever maps it (block maps, extents,
 * inline data). Each lookup and each file gets its own read budget
 * (EXT_LOOKUP_READ_LIMIT, plus the file's size), so metadata that repeats itself ends a read
 * instead of running for hours. */
#include "fs_ext_internal.h"
#include "fs_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libext2fs's limit on symbolic links followed in one lookup (EXT2FS_MAX_NESTED_LINKS, private
 * to its namei.c), for the message. */
#define MAX_NESTED_LINKS 8

struct ext_vol {
    struct fs_vol base; /* first: a struct fs_vol * points here */
    /* The journal's replay the reads see (n 0: none), and the window's side of the filesystem
     * as it stands (plain) or as replayed: fs reads through *io, one of the two. */
    struct ext_replay replay;
    struct ext_io plain, replayed;
    struct ext_io *io;
    ext2_filsys fs;
};

/* A libext2fs failure as the reader's status. The window refusing a read past the budget says
 * ASR_E_LIMIT, which here would read as "file too big": it is metadata repeating itself. */
static int ext_file_fail(struct ext_vol *v, struct asr_error *err, const char *what, errcode_t code)
{
    int rc = ext_fail(err, v->io, what, code);
    if (rc == ASR_E_LIMIT && err)
        err->code = ASR_E_CORRUPT;
    return rc == ASR_E_LIMIT ? ASR_E_CORRUPT : rc;
}

/* The inode at path, its links followed. Missing components (or a file where a directory must
 * be) are FS_E_NOT_FOUND, unless a read was refused on the way: then nothing was really looked
 * at, and the refusal is the answer. */
static int lookup(struct ext_vol *v, const char *path, ext2_ino_t *ino, struct ext2_inode *inode,
                  struct asr_error *err)
{
    v->io->left = EXT_LOOKUP_READ_LIMIT;
    v->io->refused = false;
    v->io->what = "a directory";
    char what[300];
    snprintf(what, sizeof what, "%.200s", path);
    errcode_t e = ext2fs_namei_follow(v->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino);
    if (!e) {
        v->io->what = "an inode";
        e = ext2fs_read_inode(v->fs, *ino, inode);
    }
    v->io->what = NULL;
    if (!e)
        return ASR_OK;
    if (!v->io->refused && (e == EXT2_ET_FILE_NOT_FOUND || e == EXT2_ET_NO_DIRECTORY))
        return asr_fail_public(err, FS_E_NOT_FOUND, "ext: %s: not found", what);
    if (!v->io->refused && e == EXT2_ET_SYMLINK_LOOP)
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: %s: symbolic links nest more than %d deep (a loop?)", what,
                               MAX_NESTED_LINKS);
    return ext_file_fail(v, err, what, e);
}

static int ext_vol_read(struct fs_vol *base, const char *path, size_t cap, uint8_t **out, size_t *len,
                        struct asr_error *err)
{
    struct ext_vol *v = (struct ext_vol *)base;
    ext2_ino_t ino;
    struct ext2_inode inode;
    int rc = lookup(v, path, &ino, &inode, err);
    if (rc != ASR_OK)
        return rc;
    if (!LINUX_S_ISREG(inode.i_mode))
        return asr_fail_public(err, FS_E_NOT_FILE, "ext: %.200s: %s, not a regular file", path,
                               LINUX_S_ISDIR(inode.i_mode) ? "a directory" : "a special file");
    uint64_t size = EXT2_I_SIZE(&inode);
    if (size > cap)
        return asr_fail_public(err, ASR_E_LIMIT, "ext: %.200s: %llu bytes, over the %zu-byte limit", path,
                               (unsigned long long)size, cap);
    uint8_t *buf = malloc((size_t)size + 1);
    if (!buf)
        return asr_fail_public(err, ASR_E_NOMEM, "ext: %.200s: out of memory for %llu bytes", path,
                               (unsigned long long)size);
    v->io->left = EXT_LOOKUP_READ_LIMIT + size;
    v->io->refused = false;
    v->io->what = "a file's data";
    ext2_file_t file = NULL;
    errcode_t e = ext2fs_file_open2(v->fs, ino, &inode, 0, &file);
    uint64_t got = 0;
    while (!e && got < size) {
        unsigned int n = 0, want = size - got < (1u << 30) ? (unsigned int)(size - got) : (1u << 30);
        e = ext2fs_file_read(file, buf + got, want, &n);
        if (!e && n == 0)
            break;
        got += n;
    }
    if (file)
        ext2fs_file_close(file);
    v->io->what = NULL;
    if (!e && got < size) {
        free(buf);
        return asr_fail_public(err, ASR_E_CORRUPT, "ext: %.200s: data ends after %llu of its %llu bytes", path,
                               (unsigned long long)got, (unsigned long long)size);
    }
    if (e) {
        free(buf);
        char what[300];
        snprintf(what, sizeof what, "%.200s", path);
        return ext_file_fail(v, err, what, e);
    }
    buf[size] = 0;
    *out = buf;
    *len = (size_t)size;
    return ASR_OK;
}

struct list_ctx {
    ext2_filsys fs;
    fs_dir_fn fn;
    void *ctx;
    errcode_t e; /* an inode that could not be read, to say what the type was wanted for */
};

static enum fs_kind kind_of_mode(uint16_t mode)
{
    if (LINUX_S_ISREG(mode))
        return FS_KIND_FILE;
    if (LINUX_S_ISDIR(mode))
        return FS_KIND_DIR;
    return LINUX_S_ISLNK(mode) ? FS_KIND_SYMLINK : FS_KIND_OTHER;
}

static int list_entry(struct ext2_dir_entry *de, int offset, int blocksize, char *buf, void *priv)
{
    (void)offset, (void)blocksize, (void)buf;
    struct list_ctx *c = priv;
    int n = ext2fs_dirent_name_len(de);
    if ((n == 1 && de->name[0] == '.') || (n == 2 && de->name[0] == '.' && de->name[1] == '.') ||
        memchr(de->name, '\0', (size_t)n))
        return 0; /* a NUL in a stored name is damage: no path names it */
    char name[EXT2_NAME_LEN + 1];
    memcpy(name, de->name, (size_t)n);
    name[n] = '\0';
    enum fs_kind kind;
    switch (ext2fs_has_feature_filetype(c->fs->super) ? ext2fs_dirent_file_type(de) : EXT2_FT_UNKNOWN) {
    case EXT2_FT_REG_FILE:
        kind = FS_KIND_FILE;
        break;
    case EXT2_FT_DIR:
        kind = FS_KIND_DIR;
        break;
    case EXT2_FT_SYMLINK:
        kind = FS_KIND_SYMLINK;
        break;
    case EXT2_FT_UNKNOWN: { /* no type in the entry (ext2 without filetype): the inode says */
        struct ext2_inode inode;
        c->e = ext2fs_read_inode(c->fs, de->inode, &inode);
        if (c->e)
            return DIRENT_ABORT;
        kind = kind_of_mode(inode.i_mode);
        break;
    }
    default:
        kind = FS_KIND_OTHER;
    }
    return c->fn(c->ctx, name, kind) ? DIRENT_ABORT : 0;
}

static int ext_vol_list(struct fs_vol *base, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err)
{
    struct ext_vol *v = (struct ext_vol *)base;
    ext2_ino_t ino;
    struct ext2_inode inode;
    int rc = lookup(v, path, &ino, &inode, err);
    if (rc != ASR_OK)
        return rc;
    if (!LINUX_S_ISDIR(inode.i_mode))
        return asr_fail_public(err, FS_E_NOT_DIR, "ext: %.200s: not a directory", path);
    struct list_ctx c = {.fs = v->fs, .fn = fn, .ctx = ctx};
    v->io->left = EXT_LOOKUP_READ_LIMIT;
    v->io->refused = false;
    v->io->what = "a directory";
    errcode_t e = ext2fs_dir_iterate(v->fs, ino, 0, NULL, list_entry, &c);
    v->io->what = NULL;
    if (!e)
        e = c.e;
    if (!e)
        return ASR_OK;
    char what[300];
    snprintf(what, sizeof what, "%.200s", path);
    return ext_file_fail(v, err, what, e);
}

static void ext_vol_close(struct fs_vol *base)
{
    struct ext_vol *v = (struct ext_vol *)base;
    if (v->fs)
        ext2fs_close_free(&v->fs);
    ext_replay_free(&v->replay);
    free(v);
}

static const struct fs_vol_ops ext_vol_ops = {ext_vol_read, ext_vol_list, ext_vol_close};

/* Opened as the used map opens it (ext_open: superblock and descriptors checked). A journal to
 * recover may hold the newest copy of a small file just edited (an fstab written on a running
 * system): it is replayed in memory when this reader can, as asr_ext_used maps it. When it
 * cannot (an external journal, fast commits, a damaged log), the filesystem is read as it
 * stands, which is what it held before those transactions. */
int fs_ext_vol_open(const struct asr_window *w, struct fs_vol **out, struct asr_error *err)
{
    *out = NULL;
    struct ext_vol *v = calloc(1, sizeof *v);
    if (!v)
        return asr_fail_public(err, ASR_E_NOMEM, "ext: out of memory");
    v->base.ops = &ext_vol_ops;
    v->io = &v->plain;
    int rc = ext_open(w, &v->plain, &v->fs, err);
    if (rc == ASR_OK && ext2fs_has_feature_journal_needs_recovery(v->fs->super)) {
        struct asr_error why = {0};
        ext2_filsys replayed;
        if (ext_journal_replay(v->fs, &v->plain, &v->replay, &why) == ASR_OK && v->replay.n &&
            ext_open_replayed(w, &v->replay, &v->replayed, &replayed, &why) == ASR_OK) {
            ext2fs_close_free(&v->fs);
            v->fs = replayed;
            v->io = &v->replayed;
        }
    }
    if (rc != ASR_OK) {
        ext_vol_close(&v->base);
        return rc;
    }
    *out = &v->base;
    return ASR_OK;
}
