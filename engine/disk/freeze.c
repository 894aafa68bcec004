/* Freezing the filesystems on a source volume while it is read (asrimg backup --freeze; which and
 * when is engine/backup/freezing.c's), with FIFREEZE on each mount point mounts.c found.
 * Freezing must never outlive the backup: a frozen root filesystem hangs the machine, so every
 * way out thaws, down to a child process that thaws if this one is killed outright. */
#include "asr_engine.h"
#include "freeze.h"

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- freezing ------------------------------------------------------------------------------ */

#define MAX_FROZEN 16

struct freezer {
    /* What a signal handler thaws: each frozen filesystem's mount point directory, -1 when none.
     * Set before FIFREEZE, so that a signal arriving during it finds the filesystem to thaw. */
    atomic_int slot[MAX_FROZEN];
    /* Handlers running now: freezer_thaw closes the directories only once none can still use one. */
    atomic_int in_handler;
    int fd[MAX_FROZEN];
    char *point[MAX_FROZEN];
    char fs_type[MAX_FROZEN][32];
    size_t n;
    pid_t guardian;
    int guardian_sock; /* our end: a byte says "thawed"; end of file alone says "died" */
};

int freezer_new(struct freezer **out, struct asr_error *err)
{
    struct freezer *f = calloc(1, sizeof *f);
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

size_t freezer_frozen_count(const struct freezer *f)
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

static int start_guardian(struct freezer *f, struct asr_error *err)
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

static void stop_guardian(struct freezer *f)
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

static void release(struct freezer *f)
{
    for (size_t i = 0; i < f->n; i++) {
        close(f->fd[i]);
        free(f->point[i]);
    }
    f->n = 0;
}

/* One directory per writable filesystem, from the first of its mounts that opens onto it. */
static int open_targets(struct freezer *f, const struct asr_mounts *m, struct asr_error *err)
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

int freezer_freeze(struct freezer *f, const struct asr_mounts *m, struct asr_error *err)
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
        freezer_thaw(f, &ignored);
        return ASR_E_IO;
    }
    return ASR_OK;
}

int freezer_thaw(struct freezer *f, struct asr_error *err)
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

void freezer_thaw_from_signal(struct freezer *f)
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

void freezer_free(struct freezer *f)
{
    if (!f)
        return;
    struct asr_error ignored;
    freezer_thaw(f, &ignored);
    free(f);
}
