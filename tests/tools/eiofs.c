/* asrimg-eiofs: a FUSE filesystem with one file, `disk`, that reads through to a backing disk
 * image except where a read overlaps a configured bad range: that read fails with EIO as a
 * whole, as a disk command touching a bad sector does. It stands in for dm-error, which not
 * every test machine has, so read_error_test.sh can show what a backup does with a failing disk.
 *
 * Usage: asrimg-eiofs BACKING MOUNTPOINT [--bad START:LEN]... [--log FILE]
 *                     [--all-direct] [--refuse-o-direct] [FUSE options]
 *
 * By default `disk` behaves like a block device: O_DIRECT reads reach us with the caller's own
 * offset and length, while ordinary reads go through the kernel's page cache, which reads whole
 * pages (and ahead), so a 512-byte read of a good sector fails when a bad one shares its page.
 * --all-direct serves ordinary opens in direct_io mode too, every read passed as issued;
 * --refuse-o-direct fails O_DIRECT opens with EINVAL, as some filesystems do, to exercise a
 * reader's fallback. --log appends a line per open (saying O_DIRECT) and per read, so a test
 * can tell which path a reader took and how it probed. */
#define FUSE_USE_VERSION 31
#include <fuse.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BAD 64

struct range {
    uint64_t start, len;
};

static struct {
    int fd;
    uint64_t size;
    struct range bad[MAX_BAD];
    unsigned nbad;
    FILE *log;
    bool all_direct, refuse_o_direct;
} fs;

static const char disk_path[] = "/disk";

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    if (!fs.log)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(fs.log, fmt, ap);
    va_end(ap);
    fflush(fs.log); /* the test reads the log while we still run */
}

static bool overlaps_bad(uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < fs.nbad; i++)
        if (off < fs.bad[i].start + fs.bad[i].len && fs.bad[i].start < off + len)
            return true;
    return false;
}

static int eio_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    memset(st, 0, sizeof *st);
    if (!strcmp(path, "/")) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
    } else if (!strcmp(path, disk_path)) {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)fs.size;
    } else {
        return -ENOENT;
    }
    return 0;
}

static int eio_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                       enum fuse_readdir_flags flags)
{
    (void)off, (void)fi, (void)flags;
    if (strcmp(path, "/"))
        return -ENOENT;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    fill(buf, disk_path + 1, NULL, 0, 0);
    return 0;
}

static int eio_open(const char *path, struct fuse_file_info *fi)
{
    if (strcmp(path, disk_path))
        return -ENOENT;
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
        return -EROFS;
    if (fs.refuse_o_direct && (fi->flags & O_DIRECT))
        return -EINVAL;
    fi->direct_io = fs.all_direct || (fi->flags & O_DIRECT);
    fi->keep_cache = 0; /* each open starts cold, as the first read of a failing disk would */
    trace("open%s\n", fi->flags & O_DIRECT ? " O_DIRECT" : "");
    return 0;
}

static int eio_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
    (void)path, (void)fi;
    if ((uint64_t)off >= fs.size)
        return 0;
    if (len > fs.size - (uint64_t)off)
        len = (size_t)(fs.size - (uint64_t)off);
    /* A disk fails the whole command, not just the bad sectors in it. */
    if (overlaps_bad((uint64_t)off, len)) {
        trace("read %" PRIu64 " %zu eio\n", (uint64_t)off, len);
        return -EIO;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fs.fd, buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    trace("read %" PRIu64 " %zu ok\n", (uint64_t)off, len);
    return (int)done;
}

static const struct fuse_operations ops = {
    .getattr = eio_getattr,
    .readdir = eio_readdir,
    .open = eio_open,
    .read = eio_read,
};

static int usage(void)
{
    fprintf(stderr, "usage: asrimg-eiofs BACKING MOUNTPOINT [--bad START:LEN]... [--log FILE] [--all-direct]\n"
                    "                    [--refuse-o-direct] [FUSE options]\n");
    return 2;
}

static bool parse_range(const char *s, struct range *r)
{
    char *end;
    errno = 0;
    unsigned long long a = strtoull(s, &end, 0);
    if (errno || end == s || *end != ':')
        return false;
    const char *l = end + 1;
    unsigned long long b = strtoull(l, &end, 0);
    if (errno || end == l || *end || b == 0 || a + b < a)
        return false;
    *r = (struct range){a, b};
    return true;
}

int main(int argc, char **argv)
{
    /* Our options come out of argv; the mount point and the rest go to fuse_main. */
    char **fargv = calloc((size_t)argc + 1, sizeof *fargv);
    if (!fargv)
        return 1;
    int fargc = 0, rc = 2;
    const char *backing = NULL, *log_path = NULL;
    fs.fd = -1;
    fargv[fargc++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bad") && i + 1 < argc) {
            i++;
            if (fs.nbad == MAX_BAD || !parse_range(argv[i], &fs.bad[fs.nbad++])) {
                fprintf(stderr, "asrimg-eiofs: error: --bad %s: START:LEN, at most %d of them\n", argv[i], MAX_BAD);
                goto out;
            }
        } else if (!strcmp(argv[i], "--all-direct")) {
            fs.all_direct = true;
        } else if (!strcmp(argv[i], "--refuse-o-direct")) {
            fs.refuse_o_direct = true;
        } else if (!strcmp(argv[i], "--log") && i + 1 < argc) {
            log_path = argv[++i];
        } else if (!backing && argv[i][0] != '-') {
            backing = argv[i];
        } else {
            fargv[fargc++] = argv[i];
        }
    }
    if (!backing) {
        rc = usage();
        goto out;
    }
    rc = 1;
    /* Opened before fuse_main, which moves to / when it daemonizes (no -f). */
    struct stat st;
    if ((fs.fd = open(backing, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fs.fd, &st) < 0) {
        fprintf(stderr, "asrimg-eiofs: error: %s: %s\n", backing, strerror(errno));
        goto out;
    }
    fs.size = (uint64_t)st.st_size;
    if (log_path && !(fs.log = fopen(log_path, "a"))) {
        fprintf(stderr, "asrimg-eiofs: error: %s: %s\n", log_path, strerror(errno));
        goto out;
    }
    rc = fuse_main(fargc, fargv, &ops, NULL);
out:
    if (fs.log)
        fclose(fs.log);
    if (fs.fd >= 0)
        close(fs.fd);
    free(fargv);
    return rc;
}
