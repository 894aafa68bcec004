/* libFuzzer harness for the FAT12/16/32 used-map parser (engine/fs/fs_fat.c): the input is the
 * start of a volume, zero-extended to a 512 MiB window so that small inputs can still describe
 * FAT32 volumes (65525 clusters or more, even of 4 KiB sectors). replay.c can replay a corpus. */
#include "fs_window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (512ull << 20) /* a sparse tail: reading it costs no disk */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_window_run(asr_fat_used, "vfat", WINDOW, data, size, data, 0);
    return 0;
}
