/* asrimg-eiofs: a FUSE filesystem with one file, `disk`, that reads through to a backing disk
 * image except where a read overlaps a configured bad range: that read fails with EIO as a
 * whole, as a disk command touching a bad sector does. It stands in for dm-error and dm-flakey,
 * which not every test machine has, so read_error_test.sh and read_fault_test.sh can show what a
 * backup, a restore and a verify do with a failing disk.
 *
 * Usage: asrimg-eiofs BACKING MOUNTPOINT [--bad START:LEN[:N]]... [--short START:LEN]...
 *                     [--vanish-after BYTES] [--writable] [--bad-write START:LEN]... [--fail-fsync]
 *                     [--log FILE] [--all-direct] [--refuse-o-direct] [FUSE options]
 *
 * By default `disk` behaves like a block device: O_DIRECT reads reach us with the caller's own
 * offset and length, while ordinary reads go through the kernel's page cache, which reads whole
 * pages (and ahead), so a 512-byte read of a good sector fails when a bad one shares its page.
 * --all-direct serves ordinary opens in direct_io mode too, every read passed as issued;
 * --refuse-o-direct fails O_DIRECT opens with EINVAL, as some filesystems do, to exercise a
 * reader's fallback. --log appends a line per open (saying O_DIRECT) and per read, so a test
 * can tell which path a reader took and how it probed.
 *
 * Other faults: --bad ...:N fails only the first N reads touching the range (an error that goes
 * away when read again); --short makes a read touching the range return fewer bytes than asked
 * (those before the range, or half the read, at least 512), all of them in the end to a reader
 * that asks again (with --all-direct: the page cache takes a short read for the end of the file);
 * --vanish-after makes the disk go away once that many bytes were read: every read fails with
 * EIO and its size reads as 0, as a disk unplugged mid-read. --writable takes writes (a restore
 * target): --bad-write fails those touching a range with EIO, --fail-fsync every fsync. */
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

enum kind { BAD_READ, SHORT_READ, BAD_WRITE };

struct range {
    uint64_t start, len;
    enum kind kind;
    uint64_t left; /* BAD_READ: failures still to give (UINT64_MAX: always) */
};

static struct {
    int fd;
    uint64_t size;
    struct range bad[MAX_BAD];
    unsigned nbad;
    FILE *log;
    bool all_direct, refuse_o_direct, writable, fail_fsync;
    uint64_t vanish_after, served; /* vanish_after 0: never */
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

/* The first range of that kind [off, off+len) touches, or NULL. */
static struct range *touched(enum kind kind, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < fs.nbad; i++)
        if (fs.bad[i].kind == kind && off < fs.bad[i].start + fs.bad[i].len && fs.bad[i].start < off + len)
            return &fs.bad[i];
    return NULL;
}

/* A read touching a bad range fails, unless the range has given all its failures. */
static bool read_fails(uint64_t off, uint64_t len)
{
    bool fails = false;
    for (unsigned i = 0; i < fs.nbad; i++) {
        struct range *r = &fs.bad[i];
        if (r->kind != BAD_READ || r->left == 0 || !(off < r->start + r->len && r->start < off + len))
            continue;
        fails = true;
        if (r->left != UINT64_MAX)
            r->left--;
    }
    return fails;
}

static bool vanished(void)
{
    return fs.vanish_after && fs.served >= fs.vanish_after;
}

static int eio_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    memset(st, 0, sizeof *st);
    if (!strcmp(path, "/")) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
    } else if (!strcmp(path, disk_path)) {
        st->st_mode = S_IFREG | (fs.writable ? 0644 : 0444);
        st->st_nlink = 1;
        st->st_size = vanished() ? 0 : (off_t)fs.size;
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
    if ((fi->flags & O_ACCMODE) != O_RDONLY && !fs.writable)
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
    if (vanished() || read_fails((uint64_t)off, len)) {
        trace("read %" PRIu64 " %zu eio\n", (uint64_t)off, len);
        return -EIO;
    }
    const struct range *s = touched(SHORT_READ, (uint64_t)off, len);
    if (s) { /* fewer bytes than asked, never none: a reader that asks again gets them all */
        size_t keep = s->start > (uint64_t)off ? (size_t)(s->start - (uint64_t)off) : len / 2 / 512 * 512;
        len = keep ? keep : len < 512 ? len : 512;
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
    trace("read %" PRIu64 " %zu %s\n", (uint64_t)off, done, s ? "short" : "ok");
    fs.served += done;
    return (int)done;
}

static int eio_write(const char *path, const char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
    (void)path, (void)fi;
    if (touched(BAD_WRITE, (uint64_t)off, len)) {
        trace("write %" PRIu64 " %zu eio\n", (uint64_t)off, len);
        return -EIO;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fs.fd, buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    if ((uint64_t)off + len > fs.size)
        fs.size = (uint64_t)off + len;
    trace("write %" PRIu64 " %zu ok\n", (uint64_t)off, len);
    return (int)done;
}

static int eio_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path, (void)datasync, (void)fi;
    trace("fsync %s\n", fs.fail_fsync ? "eio" : "ok");
    if (fs.fail_fsync)
        return -EIO;
    return fdatasync(fs.fd) ? -errno : 0;
}

/* Attributes are asked for every time: the size changes when the disk vanishes. */
static void *eio_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->attr_timeout = 0;
    return NULL;
}

static const struct fuse_operations ops = {
    .getattr = eio_getattr,
    .readdir = eio_readdir,
    .open = eio_open,
    .read = eio_read,
    .write = eio_write,
    .fsync = eio_fsync,
    .init = eio_init,
};

static int usage(void)
{
    fprintf(stderr, "usage: asrimg-eiofs BACKING MOUNTPOINT [--bad START:LEN[:N]]... [--short START:LEN]...\n"
                    "                    [--vanish-after BYTES] [--writable] [--bad-write START:LEN]... [--fail-fsync]\n"
                    "                    [--log FILE] [--all-direct] [--refuse-o-direct] [FUSE options]\n");
    return 2;
}

/* START:LEN, and for a bad read range an optional :N (fail only the first N reads). */
static bool parse_range(const char *s, enum kind kind, struct range *r)
{
    char *end;
    errno = 0;
    unsigned long long a = strtoull(s, &end, 0);
    if (errno || end == s || *end != ':')
        return false;
    const char *l = end + 1;
    unsigned long long b = strtoull(l, &end, 0), n = UINT64_MAX;
    if (kind == BAD_READ && *end == ':') {
        const char *c = end + 1;
        n = strtoull(c, &end, 0);
        if (end == c)
            return false;
    }
    if (errno || end == l || *end || b == 0 || a + b < a)
        return false;
    *r = (struct range){a, b, kind, n};
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
        const char *o = argv[i];
        bool bad = !strcmp(o, "--bad"), shrt = !strcmp(o, "--short"), bad_write = !strcmp(o, "--bad-write");
        if ((bad || shrt || bad_write) && i + 1 < argc) {
            i++;
            enum kind kind = bad ? BAD_READ : shrt ? SHORT_READ : BAD_WRITE;
            if (fs.nbad == MAX_BAD || !parse_range(argv[i], kind, &fs.bad[fs.nbad++])) {
                fprintf(stderr, "asrimg-eiofs: error: %s %s: START:LEN%s, at most %d ranges\n", o, argv[i],
                        bad ? "[:N]" : "", MAX_BAD);
                goto out;
            }
        } else if (!strcmp(o, "--vanish-after") && i + 1 < argc) {
            char *end;
            fs.vanish_after = strtoull(argv[++i], &end, 0);
            if (*end || !fs.vanish_after) {
                fprintf(stderr, "asrimg-eiofs: error: --vanish-after %s: a number of bytes\n", argv[i]);
                goto out;
            }
        } else if (!strcmp(o, "--writable")) {
            fs.writable = true;
        } else if (!strcmp(o, "--fail-fsync")) {
            fs.fail_fsync = true;
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
    if ((fs.fd = open(backing, (fs.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)) < 0 || fstat(fs.fd, &st) < 0) {
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
