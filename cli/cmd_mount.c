/* asrimg mount / umount: an image's disks and volumes as read-only files in a FUSE directory
 * (DIR/disk0.img, DIR/disk0p2.img, DIR/README), served by an image view (asr_view: a bounded cache
 * of decoded chunks, read-ahead, many readers at once) in libfuse's multithreaded loop; umount
 * runs fusermount3, lazily when a file under DIR is still open. */
#include "cli.h"

#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <mntent.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "image_ref.h"
#include "mount_readme.h"
#include "util.h"

struct mounted {
    struct asr_reader *r;
    struct asr_view *v;
    char *readme;
    size_t readme_len;
    time_t when;
    bool daemon;
};

static struct mounted *ctx(void)
{
    return fuse_get_context()->private_data;
}

/* The view file at path ("/disk0.img"), or -1. */
static int file_of(const struct mounted *m, const char *path)
{
    if (path[0] != '/')
        return -1;
    for (uint32_t i = 0; i < asr_view_file_count(m->v); i++)
        if (!strcmp(path + 1, asr_view_file(m->v, i)->name))
            return (int)i;
    return -1;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    /* Nothing under DIR ever changes: let the kernel keep pages and attributes. */
    cfg->kernel_cache = 1;
    cfg->entry_timeout = cfg->attr_timeout = 3600;
    return ctx();
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    const struct mounted *m = ctx();
    memset(st, 0, sizeof *st);
    st->st_mtime = st->st_atime = st->st_ctime = m->when;
    st->st_uid = getuid();
    st->st_gid = getgid();
    if (!strcmp(path, "/")) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        return 0;
    }
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    if (!strcmp(path, "/README")) {
        st->st_size = (off_t)m->readme_len;
        return 0;
    }
    int i = file_of(m, path);
    if (i < 0)
        return -ENOENT;
    st->st_size = (off_t)asr_view_file(m->v, (uint32_t)i)->size;
    st->st_blocks = (blkcnt_t)((asr_view_file(m->v, (uint32_t)i)->size + 511) / 512);
    return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags)
{
    (void)off;
    (void)fi;
    (void)flags;
    const struct mounted *m = ctx();
    if (strcmp(path, "/"))
        return -ENOTDIR;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    fill(buf, "README", NULL, 0, 0);
    for (uint32_t i = 0; i < asr_view_file_count(m->v); i++)
        fill(buf, asr_view_file(m->v, i)->name, NULL, 0, 0);
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
    const struct mounted *m = ctx();
    int i = strcmp(path, "/README") ? file_of(m, path) : -2;
    if (i == -1)
        return -ENOENT;
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
        return -EROFS;
    fi->fh = (uint64_t)(i + 2); /* 0: README, 1 + n: view file n */
    fi->keep_cache = 1;
    return 0;
}

static int fs_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    struct mounted *m = ctx();
    if (off < 0)
        return -EINVAL;
    if (fi->fh == 0) {
        if ((uint64_t)off >= m->readme_len)
            return 0;
        size_t n = m->readme_len - (size_t)off < len ? m->readme_len - (size_t)off : len;
        memcpy(buf, m->readme + off, n);
        return (int)n;
    }
    uint32_t i = (uint32_t)(fi->fh - 2);
    uint64_t size = asr_view_file(m->v, i)->size;
    if ((uint64_t)off >= size)
        return 0;
    if (len > size - (uint64_t)off)
        len = (size_t)(size - (uint64_t)off);
    struct asr_error err = {0};
    int rc = asr_view_read(m->v, i, (uint64_t)off, buf, len, &err);
    if (rc == ASR_E_NOMEM)
        return -ENOMEM;
    if (rc == ASR_E_UNREADABLE) {
        /* Damaged chunks are logged by the view itself; an unreadable source range only here. */
        if (m->daemon)
            syslog(LOG_ERR, "%s", err.msg);
        else
            fprintf(stderr, "asrimg: error: %s\n", err.msg);
    }
    return rc ? -EIO : (int)len;
}

static const struct fuse_operations ops = {
    .init = fs_init,
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
};

static void log_damage(const char *line, void *arg)
{
    const struct mounted *m = arg;
    if (m->daemon)
        syslog(LOG_ERR, "%s", line);
    else
        fprintf(stderr, "asrimg: error: %s\n", line);
}

/* libfuse's own arguments: read-only, named after the image (a comma or backslash in its name
 * escaped, since fsname is one field of -o). */
static int fuse_arguments(struct fuse_args *fa, const char *image, bool allow_other)
{
    char name[8192], opts[8400];
    size_t k = 0;
    for (const char *p = image; *p && k + 2 < sizeof name; p++) {
        if (*p == ',' || *p == '\\')
            name[k++] = '\\';
        name[k++] = *p;
    }
    name[k] = 0;
    snprintf(opts, sizeof opts, "ro,default_permissions,subtype=asrimg,fsname=%s%s", name,
             allow_other ? ",allow_other" : "");
    if (fuse_opt_add_arg(fa, "asrimg") || fuse_opt_add_arg(fa, "-o") || fuse_opt_add_arg(fa, opts))
        return -1;
    return 0;
}

/* Mounts, goes to the background if asked, and only then starts the view: its read-ahead threads
 * would not survive the fork. */
static int serve(const char *image, const char *dir, struct mounted *m, const struct asr_view_options *vo,
                 bool allow_other)
{
    struct fuse_args fa = FUSE_ARGS_INIT(0, NULL);
    if (fuse_arguments(&fa, image, allow_other)) {
        fuse_opt_free_args(&fa);
        return cli_error("mount: out of memory"), EXIT_FAIL;
    }
    struct fuse *fuse = fuse_new(&fa, &ops, sizeof ops, m);
    fuse_opt_free_args(&fa);
    if (!fuse)
        return cli_error("mount: libfuse refused its options: %s", dir), EXIT_FAIL;
    int rc = EXIT_FAIL;
    struct asr_error err = {0};
    if (fuse_mount(fuse, dir) != 0) {
        cli_error("mount: cannot mount on %s (is /dev/fuse there, fusermount3 installed, DIR a directory?)", dir);
        fuse_destroy(fuse);
        return EXIT_FAIL;
    }
    struct fuse_session *se = fuse_get_session(fuse);
    if (fuse_daemonize(!m->daemon) != 0) {
        cli_error("mount: cannot go to the background: %s", dir);
    } else if (fuse_set_signal_handlers(se) != 0) {
        cli_error("mount: cannot set signal handlers: %s", dir);
    } else if (asr_view_open(m->r, vo, &m->v, &err) != ASR_OK) {
        log_damage(err.msg, m);
    } else {
        if (m->daemon)
            openlog("asrimg", LOG_PID, LOG_DAEMON);
        struct fuse_loop_config lc = {.clone_fd = 0, .max_idle_threads = 16};
        rc = fuse_loop_mt(fuse, &lc) == 0 ? EXIT_OK : EXIT_FAIL;
        fuse_remove_signal_handlers(se);
    }
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    return rc;
}

int cmd_mount(int argc, char **argv)
{
    const char *image = NULL, *dir = NULL, *v;
    bool allow_other = false, daemon = false;
    uint64_t cache = ASR_VIEW_DEFAULT_CACHE;
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    for (int opt; (opt = cli_args_next(&args, &v));) {
        if (opt == OPT_ALLOW_OTHER)
            allow_other = true;
        else if (opt == OPT_DAEMON)
            daemon = true;
        else if (opt == OPT_CACHE) {
            if (!cli_parse_size(v, &cache) || cache < ASR_VIEW_MIN_CACHE)
                return cli_error("mount: --cache: '%s' is not a size of at least %llu MiB", v,
                                 (unsigned long long)(ASR_VIEW_MIN_CACHE >> 20)), EXIT_USAGE;
        } else if (opt == ARG_HELP)
            return EXIT_OK;
        else if (opt != ARG_WORD)
            return EXIT_USAGE;
        else if (!image)
            image = v;
        else if (!dir)
            dir = v;
        else
            return cli_error("mount: one image and one directory (see 'asrimg mount --help')"), EXIT_USAGE;
    }
    if (!dir)
        return cli_error("mount: an image and a directory are needed (see 'asrimg mount --help')"), EXIT_USAGE;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error("mount: not a directory: %s", dir), EXIT_FAIL;
    /* Absolute paths: the daemon runs from /, and README names them. An image realpath cannot
     * resolve is left to the reader, which says why it cannot open it. */
    char *abs_image = realpath(image, NULL), *abs_dir = realpath(dir, NULL);
    struct mounted m = {.when = time(NULL), .daemon = daemon};
    struct cli_image_ref im = {0};
    struct asr_error err = {0};
    int rc = EXIT_FAIL;
    if (!abs_dir) {
        cli_error("mount: %s: %s", dir, strerror(errno));
        goto out;
    }
    if (!abs_image && !(abs_image = strdup(image))) {
        cli_error("mount: out of memory");
        goto out;
    }
    if (cli_image_ref_open_lazy(abs_image, &im, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        goto out;
    }
    m.r = im.r;
    m.when = (time_t)asr_reader_info(m.r)->created_unix;
    struct asr_view_options vo = {.cache_bytes = cache, .log = log_damage, .log_ctx = &m};
    /* The README from a view without read-ahead threads; the one that serves starts in serve(). */
    struct asr_view *names;
    if (asr_view_open(m.r, &(struct asr_view_options){.readahead_threads = ASR_VIEW_NO_READAHEAD}, &names, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        goto out;
    }
    m.readme = cli_mount_readme(abs_image, abs_dir, m.r, names, &m.readme_len);
    asr_view_free(names);
    if (!m.readme) {
        cli_error("mount: out of memory");
        goto out;
    }
    rc = serve(abs_image, abs_dir, &m, &vo, allow_other);
out:
    asr_view_free(m.v);
    cli_image_ref_close(&im);
    free(m.readme);
    free(abs_image);
    free(abs_dir);
    return rc;
}

/* fusermount3 with args; its exit status, or -1 when it cannot run. quiet: its stderr to /dev/null. */
static int fusermount(const char *const *args, bool quiet)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    extern char **environ;
    int e = posix_spawnp(&pid, "fusermount3", &fa, NULL, (char *const *)args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e) {
        errno = e;
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* dir is where asrimg mount serves an image (its process alive or killed): /proc/self/mounts
 * lists it as fuse.asrimg. */
static bool is_asrimg_mount(const char *dir)
{
    char *abs = realpath(dir, NULL); /* a dead mount may not resolve: then as given */
    if (!abs)
        abs = strdup(dir);
    FILE *f = abs ? setmntent("/proc/self/mounts", "r") : NULL;
    bool found = false;
    for (struct mntent *e; f && !found && (e = getmntent(f));)
        found = !strcmp(e->mnt_dir, abs) && !strcmp(e->mnt_type, "fuse.asrimg");
    if (f)
        endmntent(f);
    free(abs);
    return found;
}

int cmd_umount(int argc, char **argv)
{
    const char *dir = NULL, *v;
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    for (int opt; (opt = cli_args_next(&args, &v));) {
        if (opt == ARG_HELP)
            return EXIT_OK;
        else if (opt != ARG_WORD)
            return EXIT_USAGE;
        else if (!dir)
            dir = v;
        else
            return cli_error("umount: one directory at a time"), EXIT_USAGE;
    }
    if (!dir)
        return cli_error("umount: no directory given (see 'asrimg umount --help')"), EXIT_USAGE;
    if (!is_asrimg_mount(dir))
        return cli_error("umount: %s: not a mount of asrimg mount", dir), EXIT_FAIL;
    const char *plain[] = {"fusermount3", "-u", "--", dir, NULL};
    int rc = fusermount(plain, true);
    if (rc == 0)
        return EXIT_OK;
    if (rc < 0)
        return cli_error("umount: cannot run fusermount3 (is fuse3 installed?): %s", strerror(errno)), EXIT_FAIL;
    /* Busy (a file under it still open): detach it now; the last reader's close ends it. */
    const char *lazy[] = {"fusermount3", "-u", "-z", "--", dir, NULL};
    if (fusermount(lazy, false) != 0)
        return cli_error("umount: fusermount3 could not unmount %s", dir), EXIT_FAIL;
    fprintf(stderr, "asrimg: note: %s was busy: detached; files open under it stay readable until closed\n", dir);
    return EXIT_OK;
}
