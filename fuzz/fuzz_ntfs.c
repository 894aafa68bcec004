/* libFuzzer harness for the NTFS used-map parser (engine/fs_ntfs.c): the input is the start of
 * a volume (boot sector, then wherever its MFT and $Bitmap lie), zero-extended to a 64 MiB
 * window so that the backup boot sector at the end is read from the sparse tail. */
#include "fs_window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_window_run(asr_ntfs_used, "ntfs", WINDOW, data, size, data, 0);
    return 0;
}
