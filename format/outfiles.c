/* The files of an image written under a name: IMAGE.partial (and IMAGE.NNN.partial), each a new
 * file of this writer's, and their renaming into place. Nothing is ever written through a name
 * that was already there: a leftover symlink, hard link or device node of that name is removed,
 * never followed.
 *
 * Two writers of one image must not share its files. IMAGE.partial is created with O_EXCL and
 * held with flock() until the set is published or given up, so an IMAGE.partial that exists is
 * either held (another backup is writing this image: refused) or a leftover of a writer that
 * died (removed, and created anew). The rule that makes this safe: the name IMAGE.partial is
 * renamed or removed only by whoever holds the lock on the file it names, after checking, lock in
 * hand, that it still names that file (a symlink or anything else not a regular file there was
 * never a writer's: its name is just removed). The later parts are covered by the first's lock.
 * Before renaming or removing, each name is checked once more to be the file this writer created:
 * a name taken over by anyone else is never published nor removed. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rounds of "remove the leftover, create ours" before giving up on a name that keeps changing. */
#define CLAIM_ATTEMPTS 64

struct file_id {
    dev_t dev;
    ino_t ino;
};

struct fmt_outfiles {
    char *base;
    bool overwrite;
    asr_replace_check_fn may_replace;
    void *may_replace_ctx;
    int lock_fd;          /* IMAGE.partial, locked until published or given up */
    struct file_id *ids;  /* ids[k - 1]: the file this writer created as part k */
    uint32_t parts;
    bool published;
};

static char *partial_path(const char *base, uint32_t part)
{
    char *p = fmt_part_path(base, part);
    if (!p)
        return NULL;
    char *q = malloc(strlen(p) + 9);
    if (q)
        sprintf(q, "%s.partial", p);
    free(p);
    return q;
}

/* Whether path names the file id (without following a symlink). */
static bool names_file(const char *path, struct file_id id)
{
    struct stat st;
    return lstat(path, &st) == 0 && st.st_dev == id.dev && st.st_ino == id.ino;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool fd_id(int fd, struct file_id *id)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    *id = (struct file_id){st.st_dev, st.st_ino};
    return true;
}

static int check_replace(const struct fmt_outfiles *o, const char *path, struct asr_error *err)
{
    return o->may_replace ? o->may_replace(path, o->may_replace_ctx, err) : ASR_OK;
}

/* Removes a name that is not a writer's live file: a symlink, device node or FIFO (only the name
 * goes, whatever it leads to), or a regular file no one holds. */
static int remove_name(const char *path, struct asr_error *err)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return ASR_OK;
    return fmt_fail(err, ASR_E_IO, "cannot remove %s: %s", path, strerror(errno));
}

/* An IMAGE.partial that exists: refused when a live writer holds it, else removed. ASR_OK means
 * "look again" (removed, or changed while we looked). */
static int remove_leftover_first(const struct fmt_outfiles *o, const char *path, struct asr_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? ASR_OK : fmt_fail(err, ASR_E_IO, "cannot look at %s: %s", path, strerror(errno));
    int rc = check_replace(o, path, err);
    if (rc)
        return rc;
    if (S_ISDIR(st.st_mode))
        return fmt_fail(err, ASR_E_EXISTS, "%s is a directory", path);
    if (!S_ISREG(st.st_mode))
        return remove_name(path, err);
    /* O_NONBLOCK, O_NOCTTY: should the name have become a FIFO or a terminal meanwhile. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? ASR_OK
                                                 : fmt_fail(err, ASR_E_IO, "cannot open %s: %s", path, strerror(errno));
    struct file_id id;
    if (!fd_id(fd, &id) || id.dev != st.st_dev || id.ino != st.st_ino) {
        close(fd);
        return ASR_OK;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return fmt_fail(err, ASR_E_EXISTS, "another backup is writing %s (%s is in use)", o->base, path);
        return fmt_fail(err, ASR_E_IO, "%s exists and cannot be locked (%s): remove it if no backup is writing it",
                        path, strerror(e));
    }
    /* Ours to hold, so no writer is alive behind it: gone, if the name still gives this file. */
    rc = names_file(path, id) ? remove_name(path, err) : ASR_OK;
    close(fd);
    return rc;
}

/* A new IMAGE.partial of ours, locked, and still under that name once locked: a writer looking at
 * it as a leftover in the moment between its creation and the lock may have removed it. 1: it is
 * ours; 0: look again. A filesystem without flock (some network ones) leaves it unlocked: another
 * writer then cannot lock it either, and refuses. */
static int lock_created(int fd, const char *path, struct file_id *id)
{
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        return 0;
    return fd_id(fd, id) && names_file(path, *id);
}

static int claim_first(struct fmt_outfiles *o, int *fd_out, struct asr_error *err)
{
    char *path = partial_path(o->base, 1);
    if (!path)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    int rc = ASR_OK;
    *fd_out = -1;
    for (int attempt = 0; !rc && *fd_out < 0 && attempt < CLAIM_ATTEMPTS; attempt++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0 && lock_created(fd, path, &o->ids[0]))
            *fd_out = fd;
        else if (fd >= 0)
            close(fd);
        else if (errno != EEXIST)
            rc = fmt_fail(err, ASR_E_IO, "cannot create %s: %s", path, strerror(errno));
        else
            rc = remove_leftover_first(o, path, err);
    }
    if (!rc && *fd_out < 0)
        rc = fmt_fail(err, ASR_E_IO, "%s keeps changing: is another program writing it?", path);
    free(path);
    return rc;
}

/* With IMAGE.partial held, an IMAGE.NNN.partial already there is no live writer's: removed. */
static int create_part(struct fmt_outfiles *o, const char *path, struct file_id *id, int *fd_out,
                       struct asr_error *err)
{
    for (int attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (!fd_id(fd, id)) {
                int e = errno;
                close(fd);
                return fmt_fail(err, ASR_E_IO, "%s: %s", path, strerror(e));
            }
            *fd_out = fd;
            return ASR_OK;
        }
        struct stat st;
        if (errno != EEXIST)
            return fmt_fail(err, ASR_E_IO, "cannot create %s: %s", path, strerror(errno));
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            return fmt_fail(err, ASR_E_EXISTS, "%s is a directory", path);
        int rc = check_replace(o, path, err);
        if (rc || (rc = remove_name(path, err)))
            return rc;
    }
    return fmt_fail(err, ASR_E_IO, "%s keeps changing: is another program writing it?", path);
}

/* Without overwrite, an image already under the name (its parts 1..parts) is refused. */
static int refuse_existing(const struct fmt_outfiles *o, uint32_t parts, struct asr_error *err)
{
    int rc = ASR_OK;
    for (uint32_t k = 1; !rc && !o->overwrite && k <= parts; k++) {
        char *p = fmt_part_path(o->base, k);
        if (!p)
            rc = fmt_fail(err, ASR_E_NOMEM, "out of memory");
        else if (exists(p))
            rc = fmt_fail(err, ASR_E_EXISTS, "%s already exists (use --force to replace it)", p);
        free(p);
    }
    return rc;
}

int fmt_outfiles_open(const char *base, bool overwrite, asr_replace_check_fn may_replace, void *ctx,
                      struct fmt_outfiles **out, int *fd, struct asr_error *err)
{
    *out = NULL;
    struct fmt_outfiles *o = calloc(1, sizeof *o);
    if (!o)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    o->lock_fd = -1;
    o->overwrite = overwrite;
    o->may_replace = may_replace;
    o->may_replace_ctx = ctx;
    o->base = strdup(base);
    o->ids = malloc(sizeof *o->ids);
    int rc = !o->base || !o->ids ? fmt_fail(err, ASR_E_NOMEM, "out of memory") : refuse_existing(o, 2, err);
    if (!rc && !(rc = claim_first(o, fd, err))) {
        o->parts = 1;
        if ((o->lock_fd = fcntl(*fd, F_DUPFD_CLOEXEC, 0)) < 0)
            rc = fmt_fail(err, ASR_E_IO, "%s: %s", base, strerror(errno));
        else /* again, with the name held: a writer that published meanwhile has done so before */
            rc = refuse_existing(o, 2, err);
        if (rc) {
            close(*fd);
            *fd = -1;
        }
    }
    if (rc) {
        fmt_outfiles_free(o);
        return rc;
    }
    *out = o;
    return ASR_OK;
}

int fmt_outfiles_next(struct fmt_outfiles *o, int *fd, struct asr_error *err)
{
    *fd = -1;
    if (o->parts >= ASR_MAX_PARTS)
        return fmt_fail(err, ASR_E_LIMIT, "more than %u parts: use a larger split size", ASR_MAX_PARTS);
    struct file_id *grown = realloc(o->ids, (o->parts + 1) * sizeof *grown);
    if (!grown)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    o->ids = grown;
    char *path = partial_path(o->base, o->parts + 1);
    if (!path)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    int rc = create_part(o, path, &o->ids[o->parts], fd, err);
    free(path);
    if (!rc)
        o->parts++;
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Part k's .partial is still the file this writer created, and what its final name replaces
 * may go. */
static int check_part(const struct fmt_outfiles *o, uint32_t k, struct asr_error *err)
{
    char *from = partial_path(o->base, k), *to = fmt_part_path(o->base, k);
    int rc = ASR_OK;
    if (!from || !to)
        rc = fmt_fail(err, ASR_E_NOMEM, "out of memory");
    else if (!names_file(from, o->ids[k - 1]))
        rc = fmt_fail(err, ASR_E_STATE, "%s was replaced or removed while the image was written: not published", from);
    else if (exists(to))
        rc = check_replace(o, to, err);
    free(from);
    free(to);
    return rc;
}

/* Everything publishing renames or removes, checked before anything is: every part, and the
 * parts of an older, longer image after the new set's last (their count in *stale). */
static int check_publish(const struct fmt_outfiles *o, uint32_t *stale, struct asr_error *err)
{
    int rc = refuse_existing(o, o->parts, err);
    for (uint32_t k = 1; !rc && k <= o->parts; k++)
        rc = check_part(o, k, err);
    *stale = 0;
    for (uint32_t k = o->parts + 1; !rc && k <= ASR_MAX_PARTS; k++) {
        char *p = fmt_part_path(o->base, k);
        bool there = p && exists(p);
        rc = !p ? fmt_fail(err, ASR_E_NOMEM, "out of memory") : there ? check_replace(o, p, err) : ASR_OK;
        free(p);
        if (!there)
            break;
        (*stale)++;
    }
    return rc;
}

static int rename_part(const struct fmt_outfiles *o, uint32_t k, struct asr_error *err)
{
    char *from = partial_path(o->base, k), *to = fmt_part_path(o->base, k);
    int rc = !from || !to ? fmt_fail(err, ASR_E_NOMEM, "out of memory")
             : rename(from, to) != 0 ? fmt_fail(err, ASR_E_IO, "cannot rename %s: %s", from, strerror(errno))
                                     : ASR_OK;
    free(from);
    free(to);
    return rc;
}

/* Parts N..2 are renamed first, an older image's extra parts removed, and part 1 renamed last:
 * the image's own name appears only when the whole set is in place. */
int fmt_outfiles_publish(struct fmt_outfiles *o, struct asr_error *err)
{
    uint32_t stale;
    int rc = check_publish(o, &stale, err);
    for (uint32_t k = o->parts; !rc && k >= 2; k--)
        rc = rename_part(o, k, err);
    /* An older part that cannot be removed does not hold back the complete new image. */
    for (uint32_t k = o->parts + 1; !rc && k <= o->parts + stale; k++) {
        char *p = fmt_part_path(o->base, k);
        if (p)
            unlink(p);
        free(p);
    }
    if (rc || (rc = rename_part(o, 1, err)))
        return rc;
    o->published = true;
    fsync_dir_of(o->base);
    close(o->lock_fd);
    o->lock_fd = -1;
    return ASR_OK;
}

void fmt_outfiles_free(struct fmt_outfiles *o)
{
    if (!o)
        return;
    /* Unpublished: remove our .partial files, the first last and while still holding it. */
    for (uint32_t k = o->parts; !o->published && k >= 1; k--) {
        char *p = partial_path(o->base, k);
        if (p && names_file(p, o->ids[k - 1]))
            unlink(p);
        free(p);
    }
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    free(o->ids);
    free(o->base);
    free(o);
}
