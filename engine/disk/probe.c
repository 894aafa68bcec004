/* libblkid superblock probing of a window of a disk, with the guard every caller needs: see
 * probe.h. */
#include "probe.h"

#include "io.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void copy_value(blkid_probe pr, const char *name, char *out, size_t n)
{
    const char *v;
    if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0)
        snprintf(out, n, "%s", v);
}

/* Every signature libblkid knows lies in a volume's first or last MiB (superblocks at 0 to 64 KiB,
 * md 0.90/1.0 and ZFS's last labels near the end). */
#define PROBE_EDGE (1u << 20)

static int copy_edge(const struct asr_window *w, int fd, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len);
    if (!buf)
        return -ENOMEM;
    struct asr_error err = {0};
    int rc = asr_window_read(w, NULL, off, buf, len, &err) == ASR_OK ? 0 : -EIO;
    if (rc == 0 && asr_pwrite_full(fd, buf, len, off, NULL) != 0)
        rc = -ENOMEM; /* a memory file that cannot take a MiB: out of memory, not a bad disk */
    free(buf);
    return rc;
}

/* libblkid reads only through a file descriptor, and a window read through ops (an LV over
 * several PVs, a decrypted volume) has none: its first and last MiB are copied into a sparse
 * memory file of the window's size, where every prober finds its bytes at their offsets. */
static int edges_file(const struct asr_window *w)
{
    int fd = memfd_create("asrimg-probe", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint64_t head = w->size < PROBE_EDGE ? w->size : PROBE_EDGE;
    uint64_t tail_at = w->size - head > head ? w->size - PROBE_EDGE : head;
    int rc = ftruncate(fd, (off_t)w->size) == 0 ? 0 : -errno;
    if (rc == 0)
        rc = copy_edge(w, fd, 0, head);
    if (rc == 0 && w->size > tail_at)
        rc = copy_edge(w, fd, tail_at, w->size - tail_at);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int probe_window(const struct asr_window *w, const char *const *only, struct probe *out)
{
    memset(out, 0, sizeof *out);
    int fd = w->fd;
    uint64_t base = w->base;
    if (w->ops) {
        fd = edges_file(w);
        if (fd < 0)
            return fd == -ENOMEM ? -1 : fd; /* -EIO: a read failed, which the caller may try again */
        base = 0;
    }
    blkid_probe pr = blkid_new_probe();
    if (!pr) {
        if (w->ops)
            close(fd);
        return -1;
    }
    int rc = -1;
    if (blkid_probe_set_device(pr, fd, (blkid_loff_t)base, (blkid_loff_t)w->size) == 0) {
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL |
                                                  BLKID_SUBLKS_VERSION);
        /* libblkid 2.38's prober for OCFS version 1 (Oracle's cluster filesystem of the Linux 2.4
         * days, never in mainline) copies its MOUNT value out of a 128-byte field on its stack
         * with a length read from the disk, up to 64 KiB: one crafted sector at 8 KiB makes it
         * read past its stack, and blkid -p itself dies of SIGSEGV on it (found by fuzz_ext;
         * corpus/ext/crash-blkid-ocfs-mount-len). Unprobed, such a volume is "no filesystem
         * recognised" and captured whole, which is what an OCFS volume would get anyway. A list
         * of types to try replaces this filter, so such a list must not name "ocfs". */
        static char ocfs[] = "ocfs";
        char *unsafe[] = {ocfs, NULL};
        char *names[8] = {NULL};
        size_t k = 0;
        for (; only && only[k] && k + 1 < sizeof names / sizeof names[0]; k++)
            names[k] = (char *)only[k]; /* blkid's prototype lacks the const; it only reads them */
        if (only)
            blkid_probe_filter_superblocks_type(pr, BLKID_FLTR_ONLYIN, names);
        else
            blkid_probe_filter_superblocks_type(pr, BLKID_FLTR_NOTIN, unsafe);
        rc = blkid_do_safeprobe(pr);
        if (rc == 0) {
            copy_value(pr, "TYPE", out->type, sizeof out->type);
            copy_value(pr, "VERSION", out->version, sizeof out->version);
            copy_value(pr, "UUID", out->uuid, sizeof out->uuid);
            copy_value(pr, "LABEL", out->label, sizeof out->label);
        }
        rc = rc == 0 ? (out->type[0] ? 1 : 0) : rc == 1 ? 0 : rc == -2 || rc < -2 ? rc : -1;
    }
    blkid_free_probe(pr);
    if (w->ops)
        close(fd);
    return rc;
}
