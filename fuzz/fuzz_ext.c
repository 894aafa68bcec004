/* libFuzzer harness for the ext2/3/4 readers: the used-map parser (engine/fs/fs_ext.c) and, through
 * the disk analysis, the critical-volume check that looks for /boot/grub, /etc/fstab and vmlinuz*
 * with libext2fs (engine/analyze/analyze.c), both over the window I/O manager. The input is the start of
 * a volume, zero-extended to a 16 MiB window, analysed as an unpartitioned disk. The seeds
 * (corpus/ext/, written by ext_seeds.py) hold every path the check looks for inside their first
 * 256 KiB; ext.dict has the magics. Then the small-file reader (engine/fs/fs_ext_file.c) reads
 * and lists a few of those paths. libext2fs itself is not instrumented: its crashes show as
 * signals, its stray reads of heap memory not at all. */
#include <stdlib.h>
#include <string.h>

#include "fs_window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (16ull << 20) /* a sparse tail: reading it costs no disk */

/* The map, then the whole analysis of the same file as a disk without a partition table: one
 * volume, whose content check must say why it is or is not critical, and whose map, when it is
 * captured by used blocks, is the very map asr_ext_used gave. */
static int used_then_analysis(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = asr_ext_used(w, out, err);
    if (rc == ASR_OK && strcmp(out->fs_type, "ext2") && strcmp(out->fs_type, "ext3") && strcmp(out->fs_type, "ext4"))
        abort();
    struct asr_disk *d = NULL;
    struct asr_error derr = {0};
    if (asr_disk_open(w->path, &d, &derr) != ASR_OK)
        return rc;
    struct asr_volume_info *v = NULL;
    size_t n = 0;
    if (asr_disk_analyze(d, 0, &v, &n, &derr) == ASR_OK && asr_disk_desc(d)->label == ASR_LABEL_NONE) {
        if (n != 1 || !v[0].reason[0] || !memchr(v[0].reason, 0, sizeof v[0].reason))
            abort();
        if (v[0].natural_capture == ASR_CAPTURE_USED && !strncmp(v[0].map.fs_type, "ext", 3) &&
            (rc != ASR_OK || v[0].map.used.n != out->used.n ||
             memcmp(v[0].map.used.v, out->used.v, out->used.n * sizeof out->used.v[0]) != 0))
            abort();
    }
    asr_volume_infos_free(v, n);
    asr_disk_close(d);
    /* And the small-file reader (fs_ext_file.c) on the paths the seeds hold: files, a
     * symlinked directory, directories, a path through a file. */
    static const char *const paths[] = {"/etc/fstab", "/etc/os-release", "/vmlinuz", "/boot/grub2/x", "/boot",
                                        "/",          "/etc/fstab/x"};
    fs_window_read_files(w, "ext4", paths, sizeof paths / sizeof paths[0]);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_window_run(used_then_analysis, NULL, WINDOW, data, size, data, 0);
    return 0;
}
