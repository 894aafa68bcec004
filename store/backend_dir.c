/* The directory backend of a chunk store: each object a file under the store's directory, named
 * by its key. A put writes tmp/RANDOM, syncs it, renames it into place and syncs the directory, so
 * an object is whole or absent after a crash; put_file (snapshots) links instead of renaming and
 * never replaces an object. The backend's clock is the filesystem's: mtimes, and "now" is the
 * mtime of a file just written. Every call is thread-safe (no shared state beyond the root fd). */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grow.h"
#include "io.h"

struct dir_backend {
    struct store_backend base;
    int root; /* O_PATH-like directory fd of the store */
};

static int dir_root(struct store_backend *b) { return ((struct dir_backend *)b)->root; }

/* Keys are relative, made of name components; nothing may climb out of the store. */
static bool key_valid(const char *key)
{
    if (!*key || *key == '/' || strlen(key) >= STORE_KEY_NAME_MAX)
        return false;
    for (const char *c = key; *c;) {
        const char *end = strchr(c, '/');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += n + (end ? 1 : 0);
        if (end && !*c)
            return false;
    }
    return true;
}

static int bad_key(struct store_backend *b, const char *key, struct asr_error *err)
{
    return store_fail(err, ASR_E_ARG, "%s: bad object name \"%s\"", b->url, key);
}

static int sync_parent(struct store_backend *b, const char *key, struct asr_error *err);

/* Creates the directories above key (mkdir -p of its parent), each one new synced into its own
 * parent: an object is only as durable as the directory entries leading to it. */
static int make_parents(struct store_backend *b, const char *key, struct asr_error *err)
{
    char path[STORE_KEY_NAME_MAX];
    snprintf(path, sizeof path, "%s", key);
    for (char *c = strchr(path, '/'); c; c = strchr(c + 1, '/')) {
        *c = 0;
        if (mkdirat(dir_root(b), path, 0755) == 0) {
            int rc = sync_parent(b, path, err);
            if (rc)
                return rc;
        } else if (errno != EEXIST) {
            return store_fail(err, ASR_E_IO, "%s: cannot create %s: %s", b->url, path, strerror(errno));
        }
        *c = '/';
    }
    return ASR_OK;
}

static int sync_parent(struct store_backend *b, const char *key, struct asr_error *err)
{
    char path[STORE_KEY_NAME_MAX];
    snprintf(path, sizeof path, "%s", key);
    char *slash = strrchr(path, '/');
    const char *dir = ".";
    if (slash) {
        *slash = 0;
        dir = path;
    }
    int fd = openat(dir_root(b), dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return store_fail(err, ASR_E_IO, "%s: cannot sync %s: %s", b->url, dir, strerror(e));
    }
    close(fd);
    return ASR_OK;
}

/* A new file tmp/RANDOM, open for writing; its name in tmp. */
static int tmp_create(struct store_backend *b, char tmp[64], int *fd, struct asr_error *err)
{
    uint8_t rnd[STORE_OID_SIZE];
    char hex[STORE_OID_HEX];
    int rc = store_random(rnd, sizeof rnd, err);
    if (rc)
        return rc;
    store_hex(rnd, sizeof rnd, hex);
    snprintf(tmp, 64, "tmp/%s", hex);
    *fd = openat(dir_root(b), tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (*fd < 0)
        return store_fail(err, ASR_E_IO, "%s: cannot create %s: %s", b->url, tmp, strerror(errno));
    return ASR_OK;
}

/* Whether linkat's errno says the filesystem has no hard links (exFAT, FAT; FUSE ones say so
 * with EPERM or ENOSYS). */
static bool no_hard_links(int e) { return e == EPERM || e == EOPNOTSUPP || e == ENOSYS; }

/* Moves tmp to key unless key exists (ASR_E_EXISTS), where the filesystem has no hard links to
 * do it in one step (nor, like exfat-fuse, renameat2's RENAME_NOREPLACE): whoever publishes key
 * first takes tmp/claim+KEY ('/' as '+', which no key holds) with O_EXCL, checks that key is
 * still absent, renames tmp over it and drops the claim. Two writers of one key never both get
 * the claim, and one that comes after the other published finds key there; readers never see key
 * but whole. A writer killed holding the claim leaves it in tmp/, where gc's sweep removes it
 * once a lease has lapsed (19.1): until then nobody takes that key (a backup takes the next
 * second's name). */
static int publish_claimed(struct store_backend *b, const char *tmp, const char *key, struct asr_error *err)
{
    char claim[STORE_KEY_NAME_MAX + 16];
    snprintf(claim, sizeof claim, "tmp/claim+%s", key);
    for (char *c = claim + strlen("tmp/claim+"); *c; c++)
        if (*c == '/')
            *c = '+';
    int fd = openat(dir_root(b), claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == EEXIST ? store_fail(err, ASR_E_EXISTS, "%s: %s is being written", b->url, key)
                               : store_fail(err, ASR_E_IO, "%s: cannot write %s: %s", b->url, claim, strerror(errno));
    close(fd);
    struct stat st;
    int rc = ASR_OK;
    if (!fstatat(dir_root(b), key, &st, AT_SYMLINK_NOFOLLOW))
        rc = store_fail(err, ASR_E_EXISTS, "%s: %s already exists", b->url, key);
    else if (errno != ENOENT)
        rc = store_fail(err, ASR_E_IO, "%s: cannot check %s: %s", b->url, key, strerror(errno));
    else if (renameat(dir_root(b), tmp, dir_root(b), key) < 0)
        rc = store_fail(err, ASR_E_IO, "%s: cannot write %s: %s", b->url, key, strerror(errno));
    else
        rc = sync_parent(b, key, err);
    unlinkat(dir_root(b), claim, 0);
    return rc;
}

/* Syncs and closes the temporary file fd, then moves it to key: renamed (replacing) or linked
 * (never replacing: ASR_E_EXISTS; publish_claimed where hard links are not to be had). The
 * temporary name is gone either way. */
static int tmp_commit(struct store_backend *b, const char *tmp, int fd, const char *key, bool replace,
                      struct asr_error *err)
{
    int rc = ASR_OK;
    if (fsync(fd) < 0)
        rc = store_fail(err, ASR_E_IO, "%s: cannot sync %s: %s", b->url, key, strerror(errno));
    close(fd);
    if (!rc)
        rc = make_parents(b, key, err);
    if (!rc && replace) {
        if (renameat(dir_root(b), tmp, dir_root(b), key) < 0)
            rc = store_fail(err, ASR_E_IO, "%s: cannot write %s: %s", b->url, key, strerror(errno));
        else
            return sync_parent(b, key, err);
    } else if (!rc) {
        if (linkat(dir_root(b), tmp, dir_root(b), key, 0) == 0)
            rc = sync_parent(b, key, err);
        else if (no_hard_links(errno))
            rc = publish_claimed(b, tmp, key, err);
        else
            rc = errno == EEXIST ? store_fail(err, ASR_E_EXISTS, "%s: %s already exists", b->url, key)
                                 : store_fail(err, ASR_E_IO, "%s: cannot write %s: %s", b->url, key, strerror(errno));
    }
    unlinkat(dir_root(b), tmp, 0);
    return rc;
}

#define DIRECT_ALIGN 4096u          /* offsets, lengths and memory of O_DIRECT writes: suits 512 and 4Kn disks */
#define DIRECT_PIECE (4u << 20)      /* bytes a direct write takes at once, through a bounce buffer */
#define DIRECT_MIN (2 * DIRECT_PIECE) /* smaller objects go through the page cache */

/* The first bulk bytes of data (a multiple of DIRECT_ALIGN) written to fd, opened O_DIRECT, in
 * DIRECT_PIECE writes through the aligned bounce buffer; how many went in whole pieces (fewer where
 * a write is refused, EINVAL on a filesystem without O_DIRECT, or cut short). */
static size_t write_direct(int fd, const uint8_t *data, size_t bulk, void *bounce)
{
    size_t done = 0;
    while (done < bulk) {
        size_t n = bulk - done < DIRECT_PIECE ? bulk - done : DIRECT_PIECE;
        memcpy(bounce, data + done, n);
        ssize_t w = write(fd, bounce, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w != (ssize_t)n)
            break;
        done += n;
    }
    return done;
}

/* Writes the new file fd, with O_DIRECT where the filesystem takes it: a pack is written once and
 * not read back soon, and through the page cache its copy and writeback cost the CPU the backup
 * compresses on. Measured on the 2-core machine, the first backup of the bench disk into a
 * directory store (36 packs of 16 MiB): 1.7-2.2 s of system CPU and 6.0-6.5 s through the page
 * cache, 0.8-0.9 s and 5.3-6.0 s direct. The aligned bulk goes direct from an aligned bounce
 * buffer (the caller's memory need not be aligned); the odd tail, and everything where O_DIRECT
 * is refused (FUSE, some filesystems), through the page cache. 0, or a negative errno or
 * ASR_IO_SHORT. */
static int write_new_file(int fd, const uint8_t *data, size_t len)
{
    size_t done = 0;
    int flags = len >= DIRECT_MIN ? fcntl(fd, F_GETFL) : -1;
    void *bounce = NULL;
    if (flags >= 0 && !posix_memalign(&bounce, DIRECT_ALIGN, DIRECT_PIECE) &&
        fcntl(fd, F_SETFL, flags | O_DIRECT) == 0) {
        done = write_direct(fd, data, len / DIRECT_ALIGN * DIRECT_ALIGN, bounce);
        /* The rest through the page cache, from where the whole direct pieces end. */
        if (fcntl(fd, F_SETFL, flags) != 0 || lseek(fd, (off_t)done, SEEK_SET) < 0) {
            int e = errno;
            free(bounce);
            return -e;
        }
    }
    free(bounce);
    return asr_write_full(fd, data + done, len - done);
}

static int dir_put(struct store_backend *b, const char *key, const void *data, size_t len, struct asr_error *err)
{
    if (!key_valid(key))
        return bad_key(b, key, err);
    char tmp[64];
    int fd, rc = tmp_create(b, tmp, &fd, err);
    if (rc)
        return rc;
    int w = write_new_file(fd, data, len);
    if (w) {
        close(fd);
        unlinkat(dir_root(b), tmp, 0);
        return store_fail(err, ASR_E_IO, "%s: cannot write %s: %s", b->url, key,
                          w < 0 ? strerror(-w) : "no space left");
    }
    return tmp_commit(b, tmp, fd, key, true, err);
}

static int copy_fd(int in, int out)
{
    static const size_t n = 1u << 20;
    char *buf = malloc(n);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    for (;;) {
        ssize_t got = read(in, buf, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = got < 0 ? -errno : 0;
            break;
        }
        if ((rc = asr_write_full(out, buf, (size_t)got)))
            break;
    }
    free(buf);
    return rc == ASR_IO_SHORT ? -ENOSPC : rc;
}

static int dir_put_file(struct store_backend *b, const char *key, const char *path, struct asr_error *err)
{
    if (!key_valid(key))
        return bad_key(b, key, err);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return store_fail(err, ASR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    char tmp[64];
    int fd, rc = tmp_create(b, tmp, &fd, err);
    if (!rc) {
        int c = copy_fd(in, fd);
        if (c) {
            close(fd);
            unlinkat(dir_root(b), tmp, 0);
            rc = store_fail(err, ASR_E_IO, "%s: cannot copy %s to %s: %s", b->url, path, key, strerror(-c));
        } else {
            rc = tmp_commit(b, tmp, fd, key, false, err);
        }
    }
    close(in);
    return rc;
}

static int open_object(struct store_backend *b, const char *key, bool *missing, struct asr_error *err)
{
    if (missing)
        *missing = false;
    if (!key_valid(key))
        return -bad_key(b, key, err);
    int fd = openat(dir_root(b), key, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && missing)
            *missing = true;
        return -store_fail(err, ASR_E_IO, "%s: cannot read %s: %s", b->url, key,
                           errno == ENOENT ? "no such object" : strerror(errno));
    }
    return fd;
}

static int dir_get(struct store_backend *b, const char *key, uint64_t offset, void *buf, size_t cap, size_t *got,
                   bool *missing, struct asr_error *err)
{
    *got = 0;
    int fd = open_object(b, key, missing, err);
    if (fd < 0)
        return -fd;
    while (*got < cap) {
        ssize_t n = pread(fd, (char *)buf + *got, cap - *got, (off_t)(offset + *got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return store_fail(err, ASR_E_IO, "%s: cannot read %s at %llu: %s", b->url, key,
                              (unsigned long long)(offset + *got), strerror(e));
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    close(fd);
    return ASR_OK;
}

static int dir_get_file(struct store_backend *b, const char *key, const char *path, bool *missing,
                        struct asr_error *err)
{
    int fd = open_object(b, key, missing, err);
    if (fd < 0)
        return -fd;
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = ASR_OK;
    if (out < 0) {
        rc = store_fail(err, ASR_E_IO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        int c = copy_fd(fd, out);
        if (c)
            rc = store_fail(err, ASR_E_IO, "%s: cannot copy %s to %s: %s", b->url, key, path, strerror(-c));
        if (close(out) < 0 && !rc)
            rc = store_fail(err, ASR_E_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    close(fd);
    return rc;
}

struct listing {
    struct store_object *o;
    size_t n, cap;
};

static int list_add(struct listing *l, const char *key, const struct stat *st)
{
    struct store_object *o = asr_grow(l->o, &l->cap, l->n + 1, sizeof *o, 64);
    if (!o)
        return -1;
    l->o = o;
    if (!(o[l->n].key = strdup(key)))
        return -1;
    o[l->n].size = (uint64_t)st->st_size;
    o[l->n].mtime = (int64_t)st->st_mtim.tv_sec;
    l->n++;
    return 0;
}

/* Every file under directory dir (a key prefix ending in '/', or "" for the root) whose key
 * starts with prefix. tmp/ holds no objects. A directory removed meanwhile is empty. */
static int list_dir(struct store_backend *b, const char *dir, const char *prefix, struct listing *l,
                    struct asr_error *err)
{
    int fd = openat(dir_root(b), *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ASR_OK;
        return store_fail(err, ASR_E_IO, "%s: cannot list %s: %s", b->url, *dir ? dir : "/", strerror(errno));
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return store_fail(err, ASR_E_NOMEM, "%s: cannot list %s", b->url, dir);
    }
    int rc = ASR_OK;
    struct dirent *e;
    while (!rc && (errno = 0, e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (!*dir && !strcmp(e->d_name, "tmp")))
            continue;
        char key[STORE_KEY_NAME_MAX];
        if ((size_t)snprintf(key, sizeof key, "%s%s", dir, e->d_name) >= sizeof key)
            continue; /* no object of the store has so long a name */
        size_t kl = strlen(key), pl = strlen(prefix);
        if (strncmp(key, prefix, kl < pl ? kl : pl))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* deleted since readdir */
        if (S_ISDIR(st.st_mode)) {
            if (kl + 1 < sizeof key) {
                key[kl] = '/';
                key[kl + 1] = 0;
                rc = list_dir(b, key, prefix, l, err);
            }
        } else if (S_ISREG(st.st_mode) && kl >= pl) {
            if (list_add(l, key, &st) < 0)
                rc = store_fail(err, ASR_E_NOMEM, "%s: out of memory listing %s", b->url, prefix);
        }
    }
    if (!rc && errno)
        rc = store_fail(err, ASR_E_IO, "%s: cannot list %s: %s", b->url, dir, strerror(errno));
    closedir(d);
    return rc;
}

static int dir_list(struct store_backend *b, const char *prefix, struct store_object **out, size_t *count,
                    struct asr_error *err)
{
    struct listing l = {0};
    *out = NULL;
    *count = 0;
    /* Walk from the deepest directory the prefix names. */
    char dir[STORE_KEY_NAME_MAX];
    snprintf(dir, sizeof dir, "%s", prefix);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
    size_t dl = strlen(dir);
    if (dl) {
        dir[dl - 1] = 0;
        bool ok = key_valid(dir);
        dir[dl - 1] = '/';
        if (!ok)
            return bad_key(b, prefix, err);
    }
    int rc = list_dir(b, dir, prefix, &l, err);
    if (rc) {
        store_objects_free(l.o, l.n);
        return rc;
    }
    *out = l.o;
    *count = l.n;
    return ASR_OK;
}

static int dir_del(struct store_backend *b, const char *key, struct asr_error *err)
{
    if (!key_valid(key))
        return bad_key(b, key, err);
    if (unlinkat(dir_root(b), key, 0) < 0 && errno != ENOENT)
        return store_fail(err, ASR_E_IO, "%s: cannot delete %s: %s", b->url, key, strerror(errno));
    return ASR_OK;
}

static int dir_now(struct store_backend *b, int64_t *now, struct asr_error *err)
{
    char tmp[64];
    int fd, rc = tmp_create(b, tmp, &fd, err);
    if (rc)
        return rc;
    struct stat st;
    if (write(fd, "now\n", 4) != 4 || fstat(fd, &st) < 0)
        rc = store_fail(err, ASR_E_IO, "%s: cannot write %s: %s", b->url, tmp, strerror(errno));
    else
        *now = (int64_t)st.st_mtim.tv_sec;
    close(fd);
    unlinkat(dir_root(b), tmp, 0);
    return rc;
}

static void dir_close(struct store_backend *b)
{
    close(dir_root(b));
    free(b);
}

/* A put writes tmp/RANDOM and renames it; a writer killed in between leaves it. One untouched
 * since older_than belongs to no live put: a put writes its file in one go (its mtime moves with
 * every write), and one stopped for longer than that loses its file and fails, never writes a
 * wrong object. */
static int dir_sweep(struct store_backend *b, int64_t older_than, uint64_t *removed, struct asr_error *err)
{
    *removed = 0;
    int fd = openat(dir_root(b), "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ASR_OK : store_fail(err, ASR_E_IO, "%s: cannot list tmp/: %s", b->url, strerror(errno));
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return store_fail(err, ASR_E_NOMEM, "%s: cannot list tmp/", b->url);
    }
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && !fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode) &&
            (int64_t)st.st_mtim.tv_sec < older_than && !unlinkat(dirfd(d), e->d_name, 0))
            (*removed)++;
    closedir(d);
    return ASR_OK;
}

static const struct store_backend_ops dir_ops = {
    .put = dir_put,
    .put_file = dir_put_file,
    .get = dir_get,
    .get_file = dir_get_file,
    .list = dir_list,
    .del = dir_del,
    .now = dir_now,
    .sweep = dir_sweep,
    .close = dir_close,
};

/* Whether the directory fd holds anything. */
static int dir_empty(int fd, bool *empty)
{
    int dup_fd = dup(fd);
    DIR *d = dup_fd < 0 ? NULL : fdopendir(dup_fd);
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return -1;
    }
    struct dirent *e;
    *empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            *empty = false;
    closedir(d);
    return 0;
}

int store_backend_dir_open(const char *path, bool create, struct store_backend **out, struct asr_error *err)
{
    *out = NULL;
    if (!*path)
        return store_fail(err, ASR_E_ARG, "store: empty path");
    if (create && mkdir(path, 0755) < 0 && errno != EEXIST)
        return store_fail(err, ASR_E_IO, "%s: cannot create: %s", path, strerror(errno));
    int root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return store_fail(err, ASR_E_IO, "%s: cannot open the store: %s", path, strerror(errno));
    if (create) {
        bool empty = false;
        if (dir_empty(root, &empty) < 0 || !empty) {
            close(root);
            return store_fail(err, ASR_E_EXISTS, "%s: not an empty directory: a store is made in a new one", path);
        }
    }
    /* A store opened only to read may be on read-only media: tmp/ is needed by writers only. */
    if (mkdirat(root, "tmp", 0755) < 0 && errno != EEXIST && create) {
        int e = errno;
        close(root);
        return store_fail(err, ASR_E_IO, "%s: cannot create tmp/: %s", path, strerror(e));
    }
    struct dir_backend *d = calloc(1, sizeof *d);
    if (!d) {
        close(root);
        return store_fail(err, ASR_E_NOMEM, "%s: out of memory", path);
    }
    d->base.ops = &dir_ops;
    snprintf(d->base.url, sizeof d->base.url, "%s", path);
    d->root = root;
    *out = &d->base;
    return ASR_OK;
}
