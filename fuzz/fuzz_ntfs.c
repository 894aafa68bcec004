/* libFuzzer harness for the NTFS readers: the used-map parser (engine/fs/fs_ntfs.c) and the path
 * lookup of the critical-volume check (engine/fs/ntfs_lookup.c). The input is the start of a volume
 * (boot sector, then wherever its MFT, $Bitmap and directory index blocks lie), zero-extended to
 * a 64 MiB window so that the backup boot sector at the end is read from the sparse tail. The
 * seeds (corpus/ntfs/, written by ntfs_seeds.py) hold \Windows\System32 and \bootmgr with
 * every structure both readers need inside the first 256 KiB; ntfs.dict has the signatures. */
#include <stdlib.h>

#include "fs_window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (64ull << 20)

/* The paths analyze.c looks for, plus one two levels deeper and one with a doubled separator. */
static const char *const paths[] = {"/Windows/System32", "/bootmgr", "/Windows/System32/drivers/etc/hosts",
                                    "//many/f1.txt"};

/* Runs the map, then every lookup on the same window. A lookup must either succeed (a directory
 * only where it was found) or say why it failed. */
static int used_then_lookups(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = asr_ntfs_used(w, out, err);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        bool found = true, dir = true;
        struct asr_error lerr = {0};
        if (asr_ntfs_lookup(w, paths[i], &found, &dir, &lerr) == ASR_OK) {
            if (dir && !found)
                abort();
        } else if (!lerr.msg[0] || found || dir) {
            abort();
        }
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_window_run(used_then_lookups, "ntfs", WINDOW, data, size, data, 0);
    return 0;
}
