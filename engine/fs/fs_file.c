/* Small files read by path (fs_file.h): which format's reader opens a volume blkid named, the
 * checks every path gets before a reader sees it, and the one-shot calls. */
#include "fs_file.h"

#include <stdlib.h>
#include <string.h>

int fs_vol_open(const struct asr_window *w, const char *fs_type, struct fs_vol **out, struct asr_error *err)
{
    *out = NULL;
    /* The same names as asr_used_parser (fs.c): "ext4dev" is any ext filesystem flagged test_fs. */
    if (!strcmp(fs_type, "ext2") || !strcmp(fs_type, "ext3") || !strcmp(fs_type, "ext4") ||
        !strcmp(fs_type, "ext4dev"))
        return fs_ext_vol_open(w, out, err);
    if (!strcmp(fs_type, "vfat"))
        return fs_fat_vol_open(w, out, err);
    return asr_fail_public(err, ASR_E_UNSUPPORTED, "%s: files are not read from this filesystem type",
                           fs_type[0] ? fs_type : "(no type)");
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

int fs_vol_list(struct fs_vol *v, const char *path, fs_dir_fn fn, void *ctx, struct asr_error *err)
{
    char *clean;
    int rc = clean_path(path, &clean, err);
    if (rc == ASR_OK)
        rc = v->ops->list(v, clean, fn, ctx, err);
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
