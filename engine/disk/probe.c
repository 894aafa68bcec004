/* libblkid superblock probing of a window of a disk, with the guard every caller needs: see
 * probe.h. */
#include "probe.h"

#include <blkid/blkid.h>
#include <stdio.h>
#include <string.h>

static void copy_value(blkid_probe pr, const char *name, char *out, size_t n)
{
    const char *v;
    if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0)
        snprintf(out, n, "%s", v);
}

int probe_window(const struct asr_window *w, const char *const *only, struct probe *out)
{
    memset(out, 0, sizeof *out);
    blkid_probe pr = blkid_new_probe();
    if (!pr)
        return -1;
    int rc = -1;
    if (blkid_probe_set_device(pr, w->fd, (blkid_loff_t)w->base, (blkid_loff_t)w->size) == 0) {
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
    return rc;
}
