/* backup --freeze: which filesystems a backup freezes and when, reading a frozen volume's map
 * again, and thawing on every way out of the process, signals included. The freezing itself
 * (FIFREEZE, the guardian process) is engine/disk/freeze.c's; the maps are analyze's. */
#include "asr_engine.h"
#include "freeze.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct asr_backup_freeze {
    struct asr_backup_source src[ASR_MAX_DISKS]; /* the caller's, whose volume arrays it changes */
    size_t n;
    struct asr_backup_freeze_options fo;
    struct freezer *fz;
};

/* ---- signals: thaw first --------------------------------------------------------------------- */

/* What the handlers thaw and flag; one freezing backup per process. */
static struct freezer *_Atomic caught;
static volatile int *_Atomic caught_interrupt;
static atomic_bool in_use;

/* Every signal a handler is installed for here, with what it replaced, to put back at the end. */
static struct sigaction old_action[64 + 1];
static bool replaced[64 + 1];

static void replace(int sig, const struct sigaction *sa)
{
    if (sig > 0 && sig < (int)(sizeof old_action / sizeof old_action[0]) && sigaction(sig, sa, &old_action[sig]) == 0)
        replaced[sig] = true;
}

/* SIGINT, SIGTERM and SIGTSTP: thaw at once, whatever the backup is blocked on, then stop as
 * usual. */
static void on_stop(int sig)
{
    (void)sig;
    freezer_thaw_from_signal(atomic_load(&caught));
    volatile int *flag = atomic_load(&caught_interrupt);
    if (flag)
        *flag = 1;
}

/* Every other signal that would end the process (a crash, SIGHUP, ...): thaw, then end as it
 * would have. A fault repeats once the handler returns; a signal sent with kill() or raise()
 * does not, so it is raised again. */
static const int fatal_signals[] = {SIGHUP,  SIGQUIT,  SIGILL,  SIGTRAP,   SIGABRT, SIGBUS,    SIGFPE,
                                    SIGUSR1, SIGSEGV,  SIGUSR2, SIGPIPE,   SIGALRM, SIGSTKFLT, SIGXCPU,
                                    SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,    SIGPWR,  SIGSYS};

static void on_fatal(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    freezer_thaw_from_signal(atomic_load(&caught));
    if (sig > 0 && sig < (int)(sizeof old_action / sizeof old_action[0]))
        sigaction(sig, &old_action[sig], NULL);
    if (info->si_code <= 0)
        raise(sig);
}

/* A signal that is ignored stays ignored (SIGPIPE and SIGXFSZ in asrimg; SIGHUP under nohup):
 * it ends nothing, and the filesystems stay frozen through it. */
static void catch_fatal(int sig, const struct sigaction *sa)
{
    struct sigaction now;
    if (sigaction(sig, NULL, &now) == 0 && now.sa_handler != SIG_IGN)
        replace(sig, sa);
}

static void catch_signals(struct freezer *fz, volatile int *interrupt)
{
    atomic_store(&caught_interrupt, interrupt);
    atomic_store(&caught, fz);
    struct sigaction fatal = {.sa_sigaction = on_fatal, .sa_flags = SA_SIGINFO};
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        catch_fatal(fatal_signals[i], &fatal);
    for (int sig = SIGRTMIN; sig <= SIGRTMAX && sig < (int)(sizeof old_action / sizeof old_action[0]); sig++)
        catch_fatal(sig, &fatal);
    /* A stopped process holding a filesystem frozen hangs everything that writes to it: Ctrl-Z
     * stops the backup instead, and a backup in the background writes to its terminal. */
    struct sigaction stop = {.sa_handler = on_stop}, ign = {.sa_handler = SIG_IGN};
    replace(SIGINT, &stop);
    replace(SIGTERM, &stop);
    replace(SIGTSTP, &stop);
    replace(SIGTTOU, &ign);
    replace(SIGTTIN, &ign);
}

/* The handlers as they were; then none of them can still reach the freezer. */
static void release_signals(void)
{
    for (int sig = 1; sig < (int)(sizeof old_action / sizeof old_action[0]); sig++)
        if (replaced[sig]) {
            sigaction(sig, &old_action[sig], NULL);
            replaced[sig] = false;
        }
    atomic_store(&caught, NULL);
    atomic_store(&caught_interrupt, NULL);
}

/* ---- around each volume's reads -------------------------------------------------------------- */

static bool interrupted(const struct asr_backup_freeze *f)
{
    return f->fo.interrupt && *f->fo.interrupt;
}

/* rc, its message prefixed with the volume it is about. */
static int about_volume(const struct asr_backup_freeze *f, const struct asr_volume_info *v, int rc,
                        struct asr_error *err)
{
    char msg[sizeof err->msg];
    memcpy(msg, err->msg, sizeof msg);
    return asr_fail_public(err, (enum asr_status)rc, "volume %u (%s): %s", v->partition_number,
                           asr_disk_path(f->src[v->disk_index].disk), msg);
}

static void thaw_warning(const struct asr_backup_freeze *f, const struct asr_volume_info *v, const char *why)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "volume %u (%s): %s", v->partition_number, asr_disk_path(f->src[v->disk_index].disk),
             why);
    if (f->fo.warn)
        f->fo.warn(msg, f->fo.warn_ctx);
}

/* Whether v is one of the backup's volumes (the hooks are handed v by asr_backup_run). */
static bool ours(const struct asr_backup_freeze *f, const struct asr_volume_info *v)
{
    if (v->disk_index >= f->n)
        return false;
    const struct asr_backup_source *s = &f->src[v->disk_index];
    for (size_t k = 0; k < s->count; k++)
        if (&s->vols[k] == v)
            return true;
    return false;
}

static int freeze_volume(struct asr_volume_info *v, void *ctx, struct asr_error *err)
{
    struct asr_backup_freeze *f = ctx;
    if (interrupted(f))
        return asr_fail_public(err, ASR_E_STATE, "interrupted");
    if (!ours(f, v))
        return asr_fail_public(err, ASR_E_ARG, "freeze: a volume that is not one of this backup's");
    const struct asr_disk *d = f->src[v->disk_index].disk;
    struct asr_mounts m;
    int rc = asr_volume_mounts(d, v, &m, err);
    if (rc == ASR_OK)
        rc = freezer_freeze(f->fz, &m, err);
    asr_mounts_free(&m);
    /* The map read before the freeze misses what was allocated since: read it from the frozen state. */
    if (rc == ASR_OK && freezer_frozen_count(f->fz) && (rc = asr_volume_remap(d, v, false, err)) != ASR_OK) {
        struct asr_error ignored;
        freezer_thaw(f->fz, &ignored); /* after_volume runs only when this succeeds */
    }
    /* A signal thaws in the middle of this, and the map may then fail to read (ext's journal to
     * replay again): the signal is the reason to give. */
    if (rc != ASR_OK && interrupted(f))
        return asr_fail_public(err, ASR_E_STATE, "interrupted");
    return rc == ASR_OK ? ASR_OK : about_volume(f, v, rc, err);
}

static void thaw_volume(const struct asr_volume_info *v, void *ctx)
{
    struct asr_backup_freeze *f = ctx;
    struct asr_error err = {0};
    if (freezer_thaw(f->fz, &err) != ASR_OK)
        thaw_warning(f, v, err.msg);
}

/* Before anything is recorded: a volume captured whole only because it is mounted read-write (an
 * ext journal the map cannot replay makes its bitmaps untrustworthy) is frozen a moment, which
 * leaves it clean, to read its used map. It is then captured by that map, frozen again and mapped
 * again when it is read: a frozen root filesystem is not read whole. Freezing fails here as it
 * would there. */
static int recapture(struct asr_backup_freeze *f, struct asr_error *err)
{
    for (size_t i = 0; i < f->n; i++)
        for (size_t k = 0; k < f->src[i].count; k++) {
            struct asr_volume_info *v = &f->src[i].vols[k];
            if (v->capture != ASR_CAPTURE_FULL)
                continue;
            struct asr_mounts m;
            int rc = asr_volume_mounts(f->src[i].disk, v, &m, err);
            if (rc == ASR_OK && asr_mounts_writable(&m) && (rc = freezer_freeze(f->fz, &m, err)) == ASR_OK) {
                rc = asr_volume_remap(f->src[i].disk, v, true, err);
                struct asr_error terr = {0};
                if (freezer_thaw(f->fz, &terr) != ASR_OK)
                    thaw_warning(f, v, terr.msg);
            }
            asr_mounts_free(&m);
            if (interrupted(f))
                return asr_fail_public(err, ASR_E_STATE, "interrupted");
            if (rc != ASR_OK)
                return about_volume(f, v, rc, err);
        }
    return ASR_OK;
}

/* ---- the whole ------------------------------------------------------------------------------- */

int asr_backup_freeze_start(const struct asr_backup_source *src, size_t n, const struct asr_backup_freeze_options *fo,
                            struct asr_backup_options *opt, struct asr_backup_freeze **out, struct asr_error *err)
{
    *out = NULL;
    if (n > ASR_MAX_DISKS)
        return asr_fail_public(err, ASR_E_LIMIT, "freeze: more than %u disks", ASR_MAX_DISKS);
    if (atomic_exchange(&in_use, true))
        return asr_fail_public(err, ASR_E_STATE, "freeze: another backup of this process is freezing");
    struct asr_backup_freeze *f = calloc(1, sizeof *f);
    if (!f) {
        atomic_store(&in_use, false);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    *f = (struct asr_backup_freeze){.n = n, .fo = *fo};
    if (n)
        memcpy(f->src, src, n * sizeof *src);
    int rc = freezer_new(&f->fz, err);
    if (rc == ASR_OK) {
        catch_signals(f->fz, f->fo.interrupt);
        rc = recapture(f, err);
    }
    if (rc != ASR_OK) {
        asr_backup_freeze_end(f);
        return rc;
    }
    opt->before_volume = freeze_volume;
    opt->after_volume = thaw_volume;
    opt->hook_ctx = f;
    *out = f;
    return ASR_OK;
}

void asr_backup_freeze_end(struct asr_backup_freeze *f)
{
    if (!f)
        return;
    release_signals();
    freezer_free(f->fz); /* every path out of a backup has thawed already: this is for the rest */
    free(f);
    atomic_store(&in_use, false);
}
