/* Where a source volume is mounted on this machine, and freezing its filesystems while it is read
 * (asrimg backup --freeze). A volume has as many names as there are devices that start where it
 * starts: a partition of the source disk, a loop device over the disk's file or device at the
 * volume's offset (the kernel here does not scan loop devices for partitions), the disk itself;
 * and filesystems reach it through devices stacked on those (LVM, dm-crypt, md).
 * Freezing must never outlive the backup: a frozen root filesystem hangs the machine, so every way
 * out thaws, down to a child process that thaws if this one is killed outright. */
#include "asr_engine.h"
#include "blockdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the names of a volume ----------------------------------------------------------------- */

/* Byte x of the source disk is byte x + base of id: the disk itself at base 0, what it is made of
 * (a loop device's backing) at a positive base, devices over it (partitions, loop devices at an
 * offset) at a negative one. A device is the volume at start S when its base is -S. */
struct view {
    struct asr_ident id;
    int64_t base;
};

#define MAX_VIEWS 64

struct views {
    struct view v[MAX_VIEWS];
    size_t n;
    bool grew;
};

static const struct view *views_find(const struct views *s, struct asr_ident id)
{
    for (size_t i = 0; i < s->n; i++)
        if (asr_ident_eq(s->v[i].id, id))
            return &s->v[i];
    return NULL;
}

static void views_add(struct views *s, struct asr_ident id, int64_t base)
{
    if (views_find(s, id) || s->n == MAX_VIEWS)
        return;
    s->v[s->n++] = (struct view){id, base};
    s->grew = true;
}

/* What a source block device is made of: the disk it is a partition of, what a loop device reads. */
static void add_beneath(struct views *s, dev_t dev, int64_t base, int depth)
{
    uint64_t start;
    dev_t disk = asr_blk_whole_disk(dev, &start);
    views_add(s, asr_ident_block(dev), base);
    views_add(s, asr_ident_block(disk), base + (int64_t)start);
    struct asr_loop lo;
    if (depth > 8 || !asr_blk_loop(disk, &lo))
        return;
    int64_t b = base + (int64_t)start + (int64_t)lo.offset;
    if (lo.backing.is_file)
        views_add(s, lo.backing, b);
    else
        add_beneath(s, lo.backing.dev, b, depth + 1);
}

static bool add_loop_over(dev_t loop, void *ctx)
{
    struct views *s = ctx;
    struct asr_loop lo;
    const struct view *under;
    if (asr_blk_loop(loop, &lo) && (under = views_find(s, lo.backing)))
        views_add(s, asr_ident_block(loop), under->base - (int64_t)lo.offset);
    return s->n < MAX_VIEWS;
}

struct partition_ctx {
    struct views *s;
    int64_t base;
};

static bool add_partition(dev_t part, uint64_t start, void *ctx)
{
    struct partition_ctx *p = ctx;
    views_add(p->s, asr_ident_block(part), p->base - (int64_t)start);
    return p->s->n < MAX_VIEWS;
}

/* Every device over the source disk, to closure: loop devices over it or over a partition of it,
 * loop devices over those, partitions of a loop device set up with partition scanning. */
static void collect_views(const struct asr_disk *d, struct views *s)
{
    dev_t rdev;
    struct stat st;
    if (asr_disk_is_block(d, &rdev))
        add_beneath(s, rdev, 0, 0);
    else if (fstat(asr_disk_fd(d), &st) == 0)
        views_add(s, (struct asr_ident){true, st.st_dev, st.st_ino}, 0);
    do {
        s->grew = false;
        asr_blk_each_loop(add_loop_over, s);
        for (size_t i = 0; i < s->n; i++)
            if (!s->v[i].id.is_file)
                asr_blk_each_partition(s->v[i].id.dev, add_partition, &(struct partition_ctx){s, s->v[i].base});
    } while (s->grew && s->n < MAX_VIEWS);
}

/* ---- mountinfo ----------------------------------------------------------------------------- */

/* mountinfo writes space, tab, newline and backslash in names as \ooo. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p;) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
}

static bool starts_rw(const char *opts)
{
    return !strncmp(opts, "rw", 2) && (opts[2] == ',' || opts[2] == 0);
}

struct mountinfo_line {
    int id;
    dev_t dev;
    char *point, *mount_opts, *fs_type, *source, *super_opts;
};

/* "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS", split in place. */
static bool parse_line(char *line, struct mountinfo_line *m)
{
    char *save, *f[6];
    line[strcspn(line, "\n")] = 0;
    for (int i = 0; i < 6; i++)
        if (!(f[i] = strtok_r(i ? NULL : line, " ", &save)))
            return false;
    unsigned ma, mi;
    if (sscanf(f[0], "%d", &m->id) != 1 || sscanf(f[2], "%u:%u", &ma, &mi) != 2)
        return false;
    m->dev = makedev(ma, mi);
    m->point = f[4];
    m->mount_opts = f[5];
    char *t;
    while ((t = strtok_r(NULL, " ", &save)) && strcmp(t, "-"))
        ;
    if (!t || !(m->fs_type = strtok_r(NULL, " ", &save)) || !(m->source = strtok_r(NULL, " ", &save)) ||
        !(m->super_opts = strtok_r(NULL, " ", &save)))
        return false;
    unescape(m->point);
    unescape(m->source);
    return true;
}

/* The devices whose filesystems live on the volume: those that start where it starts, and those
 * stacked on them (LVM, dm-crypt, md), which a filesystem mounted from reaches it through. */
struct devset {
    dev_t v[MAX_VIEWS];
    size_t n;
};

static bool devset_add(dev_t dev, void *ctx)
{
    struct devset *d = ctx;
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i] == dev)
            return true;
    if (d->n == MAX_VIEWS)
        return false;
    d->v[d->n++] = dev;
    return true;
}

static void volume_devices(const struct views *s, int64_t at, struct devset *d)
{
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i].id.is_file && s->v[i].base == at)
            devset_add(s->v[i].id.dev, d);
    for (size_t i = 0; i < d->n; i++) /* d grows as holders are found: their holders in turn */
        asr_blk_each_holder(d->v[i], devset_add, d);
}

static bool in_devset(const struct devset *d, dev_t dev)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i] == dev)
            return true;
    return false;
}

/* mountinfo's major:minor is the superblock's device, which for btrfs is an anonymous one: the
 * mount's source then names the block device. Only /dev paths are looked at, so that a source
 * on a network filesystem never gets a stat that could hang. */
static bool mount_on_volume(const struct devset *d, const struct mountinfo_line *m)
{
    if (in_devset(d, m->dev))
        return true;
    struct stat st;
    return !strncmp(m->source, "/dev/", 5) && stat(m->source, &st) == 0 && S_ISBLK(st.st_mode) &&
           in_devset(d, st.st_rdev);
}

static int mounts_add(struct asr_mounts *out, const struct mountinfo_line *m, struct asr_error *err)
{
    struct asr_mount *grown = realloc(out->v, (out->n + 1) * sizeof *grown);
    if (!grown)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    out->v = grown;
    struct asr_mount *a = &out->v[out->n];
    *a = (struct asr_mount){.dev = m->dev,
                            .id = m->id,
                            .read_write = starts_rw(m->super_opts),
                            .mount_read_write = starts_rw(m->mount_opts),
                            .point = strdup(m->point)};
    if (!a->point)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    snprintf(a->fs_type, sizeof a->fs_type, "%s", m->fs_type);
    out->n++;
    return ASR_OK;
}

/* Every block device that shows some byte of the disk: the disk, what it is made of, partitions
 * and loop devices over any part of it; then whatever is stacked on those. */
static void disk_devices(const struct asr_disk *d, const struct views *s, struct devset *out)
{
    uint64_t disk_size = asr_disk_desc(d)->size_bytes;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].id.is_file)
            continue;
        uint64_t size = 0;
        int64_t first = -s->v[i].base; /* the disk byte its byte 0 shows */
        if (!asr_blk_size(s->v[i].id.dev, &size))
            size = UINT64_MAX / 4;
        if (first < (int64_t)disk_size && first + (int64_t)(size > INT64_MAX / 2 ? INT64_MAX / 2 : size) > 0)
            devset_add(s->v[i].id.dev, out);
    }
    for (size_t i = 0; i < out->n; i++)
        asr_blk_each_holder(out->v[i], devset_add, out);
}

/* The devices that show the volume starting at byte `at` of d, or (whole) every device that
 * shows any byte of d, with what is stacked on them. *out is calloc'd. */

static int devices_of(const struct asr_disk *d, int64_t at, bool whole, struct devset **out, struct asr_error *err)
{
    struct views *s = calloc(1, sizeof *s);
    *out = calloc(1, sizeof **out);
    if (!s || !*out) {
        free(s);
        free(*out);
        *out = NULL;
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    collect_views(d, s);
    if (whole)
        disk_devices(d, s, *out);
    else
        volume_devices(s, at, *out);
    free(s);
    return ASR_OK;
}

/* Every mount of a filesystem on one of devs, appended to out. */
static int mounts_on(const struct devset *devs, struct asr_mounts *out, struct asr_error *err)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return asr_fail_public(err, ASR_E_IO, "/proc/self/mountinfo: %s", strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int rc = ASR_OK;
    struct mountinfo_line m;
    while (rc == ASR_OK && getline(&line, &cap, f) > 0)
        if (parse_line(line, &m) && mount_on_volume(devs, &m))
            rc = mounts_add(out, &m, err);
    free(line);
    fclose(f);
    if (rc != ASR_OK)
        asr_mounts_free(out);
    return rc;
}

int asr_volume_mounts(const struct asr_disk *d, const struct asr_volume_info *v, struct asr_mounts *out,
                      struct asr_error *err)
{
    *out = (struct asr_mounts){0};
    struct devset *devs;
    int rc = devices_of(d, -(int64_t)v->start_bytes, false, &devs, err);
    if (!rc)
        rc = mounts_on(devs, out, err);
    free(devs);
    return rc;
}

/* ---- whether a restore target is in use ------------------------------------------------- */

static bool swap_on(const struct devset *devs, char *what, size_t len)
{
    FILE *f = fopen("/proc/swaps", "re");
    if (!f)
        return false;
    char line[512], name[400];
    bool found = false;
    struct stat st;
    while (!found && fgets(line, sizeof line, f))
        if (sscanf(line, "%399s", name) == 1 && name[0] == '/' && stat(name, &st) == 0 && S_ISBLK(st.st_mode) &&
            in_devset(devs, st.st_rdev)) {
            snprintf(what, len, "%s is in use as swap", name);
            found = true;
        }
    fclose(f);
    return found;
}

int asr_disk_in_use(const struct asr_disk *d, bool *in_use, char *what, size_t len, struct asr_error *err)
{
    *in_use = false;
    struct devset *devs;
    struct asr_mounts m = {0};
    int rc = devices_of(d, 0, true, &devs, err);
    if (!rc)
        rc = mounts_on(devs, &m, err);
    if (!rc && m.n) {
        snprintf(what, len, "a filesystem on it is mounted at %s", m.v[0].point);
        *in_use = true;
    }
    if (!rc && !*in_use)
        *in_use = swap_on(devs, what, len);
    asr_mounts_free(&m);
    free(devs);
    return rc;
}

const struct asr_mount *asr_mounts_writable(const struct asr_mounts *m)
{
    const struct asr_mount *first = NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].read_write && m->v[i].mount_read_write)
            return &m->v[i];
        if (m->v[i].read_write && !first)
            first = &m->v[i];
    }
    return first;
}

void asr_mounts_free(struct asr_mounts *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].point);
    free(m->v);
    *m = (struct asr_mounts){0};
}

/* ---- freezing ------------------------------------------------------------------------------ */

#define MAX_FROZEN 16

struct asr_freezer {
    /* What a signal handler thaws: each frozen filesystem's mount point directory, -1 when none.
     * Set before FIFREEZE, so that a signal arriving during it finds the filesystem to thaw. */
    atomic_int slot[MAX_FROZEN];
    /* Handlers running now: asr_thaw closes the directories only once none can still use one. */
    atomic_int in_handler;
    int fd[MAX_FROZEN];
    char *point[MAX_FROZEN];
    char fs_type[MAX_FROZEN][32];
    size_t n;
    pid_t guardian;
    int guardian_sock; /* our end: a byte says "thawed"; end of file alone says "died" */
};

int asr_freezer_new(struct asr_freezer **out, struct asr_error *err)
{
    struct asr_freezer *f = calloc(1, sizeof *f);
    if (!f)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < MAX_FROZEN; i++)
        atomic_init(&f->slot[i], -1);
    atomic_init(&f->in_handler, 0);
    f->guardian = -1;
    f->guardian_sock = -1;
    *out = f;
    return ASR_OK;
}

size_t asr_frozen_count(const struct asr_freezer *f)
{
    return f ? f->n : 0;
}

/* The guardian's whole life. This process has threads, so only async-signal-safe calls here. It
 * keeps nothing of the parent open but its socket and the directories: a pipe of the image or a
 * terminal must not stay open because of it. Signals meant for the parent must not end or stop
 * it early, so it leaves the terminal's process group (Ctrl-C, Ctrl-Z) and ignores the rest. */
static _Noreturn void guardian_main(int rfd, const int *fds, size_t n)
{
    int keep[MAX_FROZEN + 1];
    keep[0] = rfd;
    for (size_t i = 0; i < n; i++)
        keep[i + 1] = fds[i];
    for (size_t i = 1; i <= n; i++)
        for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned from = 0;
    for (size_t i = 0; i <= n; i++) {
        if ((unsigned)keep[i] > from)
            close_range(from, (unsigned)keep[i] - 1, 0);
        from = (unsigned)keep[i] + 1;
    }
    close_range(from, ~0U, 0);
    setpgid(0, 0);
    static const int ignored[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGPIPE, SIGUSR1,
                                  SIGUSR2, SIGXFSZ, SIGTSTP, SIGTTIN, SIGTTOU};
    struct sigaction ign = {.sa_handler = SIG_IGN};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        sigaction(ignored[i], &ign, NULL);
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i], &dfl, NULL);
    char c;
    ssize_t r;
    do
        r = read(rfd, &c, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1)
        for (size_t i = 0; i < n; i++)
            ioctl(fds[i], FITHAW, 0);
    _exit(0);
}

static int start_guardian(struct asr_freezer *f, struct asr_error *err)
{
    /* A socket pair, not a pipe: telling a guardian that died early must not raise SIGPIPE. */
    int p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
        return asr_fail_public(err, ASR_E_IO, "freeze: cannot create the thaw guardian's socket: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return asr_fail_public(err, ASR_E_IO, "freeze: cannot start the thaw guardian: %s", strerror(e));
    }
    if (pid == 0)
        guardian_main(p[0], f->fd, f->n);
    close(p[0]);
    f->guardian = pid;
    f->guardian_sock = p[1];
    return ASR_OK;
}

static void stop_guardian(struct asr_freezer *f)
{
    if (f->guardian < 0)
        return;
    ssize_t r;
    do
        r = send(f->guardian_sock, "t", 1, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    close(f->guardian_sock);
    /* It exits at once. If someone stopped it (SIGSTOP), do not wait for it: it has been told, and
     * exits without thawing whenever it runs again. */
    for (int i = 0; i < 500; i++) {
        pid_t w = waitpid(f->guardian, NULL, WNOHANG);
        if (w != 0 && !(w < 0 && errno == EINTR))
            break;
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    f->guardian = -1;
    f->guardian_sock = -1;
}

/* The mount point's directory, if it opens onto that very mount: a path can be hidden by a later
 * mount over it, and freezing whatever filesystem answers there instead is not an option. */
static int open_mount(const struct asr_mount *m, char *why, size_t len)
{
    int fd = open(m->point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, len, "%s", strerror(errno));
        return -1;
    }
    struct statx sx;
    struct stat st;
    bool same = statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID)
                    ? sx.stx_mnt_id == (uint64_t)m->id
                    : fstat(fd, &st) == 0 && st.st_dev == m->dev;
    if (!same) {
        snprintf(why, len, "another filesystem is mounted over it");
        close(fd);
        return -1;
    }
    return fd;
}

static void release(struct asr_freezer *f)
{
    for (size_t i = 0; i < f->n; i++) {
        close(f->fd[i]);
        free(f->point[i]);
    }
    f->n = 0;
}

/* One directory per writable filesystem, from the first of its mounts that opens onto it. */
static int open_targets(struct asr_freezer *f, const struct asr_mounts *m, struct asr_error *err)
{
    for (size_t i = 0; i < m->n; i++) {
        bool seen = !m->v[i].read_write;
        for (size_t k = 0; k < i && !seen; k++)
            seen = m->v[k].dev == m->v[i].dev;
        if (seen)
            continue;
        if (f->n == MAX_FROZEN)
            return asr_fail_public(err, ASR_E_LIMIT, "freeze: more than %d filesystems on one volume", MAX_FROZEN);
        char why[128] = "";
        int fd = -1;
        size_t k = i;
        for (; k < m->n && fd < 0; k++)
            if (m->v[k].dev == m->v[i].dev)
                fd = open_mount(&m->v[k], why, sizeof why);
        if (fd < 0)
            return asr_fail_public(err, ASR_E_IO, "cannot open %s to freeze it: %s", m->v[i].point, why);
        f->fd[f->n] = fd;
        memcpy(f->fs_type[f->n], m->v[i].fs_type, sizeof f->fs_type[0]);
        if (!(f->point[f->n] = strdup(m->v[k - 1].point))) {
            close(fd);
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        }
        f->n++;
    }
    return ASR_OK;
}

static const char *freeze_failure(int e)
{
    switch (e) {
    case EBUSY:
        return "it is already frozen (fsfreeze -u thaws it)";
    case EOPNOTSUPP:
        return "this filesystem type cannot be frozen; unmount it or remount it read-only";
    case EPERM:
        return "freezing needs CAP_SYS_ADMIN (run as root)";
    default:
        return strerror(e);
    }
}

int asr_freeze(struct asr_freezer *f, const struct asr_mounts *m, struct asr_error *err)
{
    if (f->n)
        return asr_fail_public(err, ASR_E_STATE, "freeze: filesystems of another volume are still frozen");
    int rc = open_targets(f, m, err);
    if (rc == ASR_OK && f->n)
        rc = start_guardian(f, err);
    if (rc != ASR_OK) {
        release(f);
        return rc;
    }
    for (size_t i = 0; i < f->n; i++) {
        atomic_store(&f->slot[i], f->fd[i]);
        if (ioctl(f->fd[i], FIFREEZE, 0) == 0)
            continue;
        int e = errno;
        atomic_store(&f->slot[i], -1);
        asr_fail_public(err, ASR_E_IO, "cannot freeze %s (%s): %s", f->point[i], f->fs_type[i], freeze_failure(e));
        struct asr_error ignored;
        asr_thaw(f, &ignored);
        return ASR_E_IO;
    }
    return ASR_OK;
}

int asr_thaw(struct asr_freezer *f, struct asr_error *err)
{
    int rc = ASR_OK;
    for (size_t i = 0; i < f->n; i++) {
        int fd = atomic_exchange(&f->slot[i], -1);
        /* EINVAL: not frozen, because a signal handler or fsfreeze -u thawed it already. */
        if (fd >= 0 && ioctl(fd, FITHAW, 0) != 0 && errno != EINVAL && rc == ASR_OK)
            rc = asr_fail_public(err, ASR_E_IO, "cannot thaw %s: %s (fsfreeze -u %s)", f->point[i], strerror(errno),
                                 f->point[i]);
    }
    /* A handler on another thread may have read a descriptor before it was taken from its slot:
     * closing it under the handler could let a new file take its number and be "thawed". */
    while (atomic_load(&f->in_handler))
        sched_yield();
    stop_guardian(f);
    release(f);
    return rc;
}

void asr_thaw_from_signal(struct asr_freezer *f)
{
    if (!f)
        return;
    int saved = errno;
    atomic_fetch_add(&f->in_handler, 1);
    for (size_t i = 0; i < MAX_FROZEN; i++) {
        int fd = atomic_load(&f->slot[i]);
        if (fd >= 0)
            ioctl(fd, FITHAW, 0);
    }
    atomic_fetch_sub(&f->in_handler, 1);
    errno = saved;
}

void asr_freezer_free(struct asr_freezer *f)
{
    if (!f)
        return;
    struct asr_error ignored;
    asr_thaw(f, &ignored);
    free(f);
}

/* ---- the used map again, from the frozen state ------------------------------------------- */

int asr_volume_remap(const struct asr_disk *d, struct asr_volume_info *v, bool recapture, struct asr_error *err)
{
    /* Swap is never mounted: only filesystems reach here, with the parser analyze.c chose. */
    asr_used_fn parse = asr_used_parser(v->map.fs_type);
    bool used = v->capture == ASR_CAPTURE_USED;
    if (!parse || !(used || (recapture && v->capture == ASR_CAPTURE_FULL)))
        return ASR_OK;
    if (v->partition_number == 0 && asr_disk_full_capture_reason(d))
        return ASR_OK; /* whole by the layout's doubt, not for want of a map: stays whole */
    /* The disk's page cache may hold what this process read of the volume before the freeze (and
     * the filesystem wrote through another device, a partition or a loop device, since). */
    int fd = asr_disk_fd(d);
    posix_fadvise(fd, (off_t)v->start_bytes, (off_t)v->size_bytes, POSIX_FADV_DONTNEED);
    struct asr_window w = {.fd = fd, .path = asr_disk_path(d), .base = v->start_bytes, .size = v->size_bytes};
    struct asr_usedmap m = {0};
    struct asr_error why = {0};
    int rc = parse(&w, &m, &why);
    if (rc != ASR_OK) {
        asr_usedmap_free(&m);
        if (!used) /* still unreadable: it stays a whole capture, which is consistent frozen too */
            return ASR_OK;
        return asr_fail_public(err, (enum asr_status)rc, "reading its %s metadata again once frozen: %s",
                               v->map.fs_type, why.msg);
    }
    asr_ranges_free(&v->map.used);
    v->map.used = m.used;
    v->map.block_size = m.block_size;
    memcpy(v->map.note, m.note, sizeof m.note);
    v->map.damaged = m.damaged;
    if (!used) {
        v->capture = v->natural_capture = ASR_CAPTURE_USED;
        snprintf(v->warning, sizeof v->warning, "used map read with the filesystem frozen (--freeze)%s%s",
                 m.note[0] ? "; " : "", m.note);
    } else
        snprintf(v->warning, sizeof v->warning, "%s", m.note);
    return ASR_OK;
}
