/* Small files read by path (fs_file.h): which format's reader opens a volume blkid named, the
 * checks every path gets before a reader sees it, and the one-shot calls. */
#include "fs_file.h"

#include <stdlib.h>
#include <string.h>

static int open_reader(const struct asr_window *w, const char *fs_type, struct fs_vol **out, struct asr_error *err)
{
    /* The same names as asr_used_parser (fs.c): "ext4dev" is any ext filesystem flagged test_fs. */
    if (!strcmp(fs_type, "ext2") || !strcmp(fs_type, "ext3") || !strcmp(fs_type, "ext4") ||
        !strcmp(fs_type, "ext4dev"))
        return fs_ext_vol_open(w, out, err);
    if (!strcmp(fs_type, "vfat"))
        return fs_fat_vol_open(w, out, err);
    if (!strcmp(fs_type, "exfat"))
        return fs_exfat_vol_open(w, out, err);
    if (!strcmp(fs_type, "btrfs"))
        return fs_btrfs_vol_open(w, out, err);
    if (!strcmp(fs_type, "xfs"))
        return fs_xfs_vol_open(w, out, err);
    return asr_fail_public(err, ASR_E_UNSUPPORTED, "%s: files are not read from this filesystem type",
                           fs_type[0] ? fs_type : "(no type)");
}

int fs_vol_open(const struct asr_window *w, const char *fs_type, struct fs_vol **out, struct asr_error *err)
{
    *out = NULL;
    int rc = open_reader(w, fs_type, out, err);
    /* ASR_E_LIMIT says a file is over the caller's cap; a filesystem the reader cannot hold
     * (ext: group descriptors past 1 GiB) is unreadable here, as corrupt is. */
    if (rc == ASR_E_LIMIT && err)
        err->code = ASR_E_CORRUPT;
    return rc == ASR_E_LIMIT ? ASR_E_CORRUPT : rc;
}

void fs_vol_close(struct fs_vol *v)
{
    if (v)
        v->ops->close(v);
}

/* path as every reader takes it, in *out (malloc'd): absolute, one '/' between names, no "."
 * components and no trailing '/' ("/" for the root), at most FS_PATH_MAX_PARTS names of at most
 * FS_NAME_MAX bytes. ".." stays: only the filesystem knows where it leads through a symlink. */
static int clean_path(const char *path, char **out, struct asr_error *err)
{
    *out = NULL;
    if (path[0] != '/')
        return asr_fail_public(err, ASR_E_ARG, "%.200s: not an absolute path", path);
    char *clean = malloc(strlen(path) + 2);
    if (!clean)
        return asr_fail_public(err, ASR_E_NOMEM, "%.200s: out of memory", path);
    size_t parts = 0, o = 0;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n > FS_NAME_MAX) {
            free(clean);
            return asr_fail_public(err, ASR_E_ARG, "%.200s: a name longer than %d bytes", path, FS_NAME_MAX);
        }
        if (n && !(n == 1 && p[0] == '.')) {
            if (++parts > FS_PATH_MAX_PARTS) {
                free(clean);
                return asr_fail_public(err, ASR_E_ARG, "%.200s: more than %d names", path, FS_PATH_MAX_PARTS);
            }
            clean[o++] = '/';
            memcpy(clean + o, p, n);
            o += n;
        }
        p += n;
    }
    if (!o)
        clean[o++] = '/';
    clean[o] = '\0';
    *out = clean;
    return ASR_OK;
}

int fs_vol_read(struct fs_vol *v, const char *path, size_t cap, uint8_t **out, size_t *len, struct asr_error *err)
{
    *out = NULL;
    *len = 0;
    char *clean;
    int rc = clean_path(path, &clean, err);
    if (rc == ASR_OK)
        rc = v->ops->read(v, clean, cap, out, len, err);
    free(clean);
    return rc;
}

struct named {
    fs_dir_fn fn;
    void *ctx;
};

/* Names no sound filesystem holds, and no path can name: empty, or with a '/' (ext and FAT
 * long names are stored as counted bytes, so damage can put one there). A caller that joins a
 * listed name to its directory must not be led elsewhere. */
static int pass_named(void *ctx, const char *name, enum fs_kind kind)
{
    const struct named *n = ctx;
    return !name[0] || strchr(name, '/') ? 0 : n->fn(n->ctx, name, kind);
}

int fs_vol_list(struct fs_vol *v, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err)
{
    char *clean;
    struct named n = {fn, ctx};
    int rc = clean_path(path, &clean, err);
    if (rc == ASR_OK)
        rc = v->ops->list(v, clean, pass_named, &n, err);
    free(clean);
    return rc;
}

int fs_read_file(const struct asr_window *w, const char *fs_type, const char *path, size_t cap, uint8_t **out,
                 size_t *len, struct asr_error *err)
{
    struct fs_vol *v;
    *out = NULL;
    *len = 0;
    int rc = fs_vol_open(w, fs_type, &v, err);
    if (rc == ASR_OK)
        rc = fs_vol_read(v, path, cap, out, len, err);
    fs_vol_close(v);
    return rc;
}

int fs_list_dir(const struct asr_window *w, const char *fs_type, const char *path, fs_dir_fn fn, void *ctx,
                struct asr_error *err)
{
    struct fs_vol *v;
    int rc = fs_vol_open(w, fs_type, &v, err);
    if (rc == ASR_OK)
        rc = fs_vol_list(v, path, fn, ctx, err);
    fs_vol_close(v);
    return rc;
}

int asr_fs_file_exists(const struct asr_window *w, const char *fs_type, const char *path, bool *found,
                       struct asr_error *err)
{
    uint8_t *data = NULL;
    size_t len;
    *found = false;
    /* A cap of one byte: a larger file answers ASR_E_LIMIT without being read, and is there. */
    int rc = fs_read_file(w, fs_type, path, 1, &data, &len, err);
    free(data);
    if (rc == ASR_OK || rc == ASR_E_LIMIT) {
        *found = true;
        return ASR_OK;
    }
    return rc == FS_E_NOT_FOUND || rc == FS_E_NOT_FILE ? ASR_OK : rc;
}
